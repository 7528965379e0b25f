"""VMs: the libvirt provider, its domain XML, disks, readiness watch and serial console."""

from providers.libvirt.provider import LibvirtProvider

__all__ = ["LibvirtProvider"]
