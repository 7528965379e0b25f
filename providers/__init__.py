"""The runtimes (docker, libvirt), host networking and the serial console: no Prefect here."""

from __future__ import annotations

from functools import cache

from providers.base import NodeProvider


@cache
def get_provider(name: str) -> NodeProvider:
    """The process-wide provider for a catalog ``provider`` value ("docker" or "libvirt")."""
    if name == "docker":
        from providers.docker import DockerProvider

        return DockerProvider()
    if name == "libvirt":
        from providers.libvirt import LibvirtProvider

        return LibvirtProvider()
    raise ValueError(f"unknown provider {name!r}")


def all_providers() -> list[NodeProvider]:
    return [get_provider("docker"), get_provider("libvirt")]
