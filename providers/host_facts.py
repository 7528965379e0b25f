"""What this host can offer a fleet: name, data-plane address, free capacity, runtimes,
images, and the labs it runs (published by its worker; ``archetype hosts`` lists them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lab.settings import get_settings
from providers import all_providers
from providers.labs import discover
from providers.limits import host_cpus

MAX_IMAGES = 60  # a Prefect variable holds at most 5000 characters of JSON


def memory_free_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return int(fields["MemAvailable"].split()[0]) // 1024


def gather() -> dict[str, Any]:
    settings = get_settings()
    providers: list[str] = []
    images: list[str] = []
    for provider in all_providers():
        try:
            provider.discover_labs()  # answers: the runtime is there
        except Exception:  # noqa: BLE001 - a runtime that does not answer is not offered
            continue
        providers.append(provider.name)
        if provider.name == "docker":
            images = _docker_images(provider)
    vm_images = sorted(
        str(p.relative_to(settings.image_dir)) for p in settings.image_dir.rglob("*") if p.is_file()
    )[:MAX_IMAGES] if settings.image_dir.is_dir() else []
    from providers.network.vxlan import underlay_mtu

    address = settings.data_address
    labs = [found.as_dict() for found in discover()]
    return {
        "name": settings.host_name,
        "address": address,
        "cpus": host_cpus(),
        "memory_free_mb": _free_for_labs(settings.host_memory_mb, labs),
        "providers": providers,
        "images": images,
        "vm_images": vm_images,
        "underlay_mtu": underlay_mtu(address) if address else None,
        "access": list(settings.host_access),
        "docker_url": settings.docker_fleet_url or (f"ssh://root@{address}" if address else None),
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labs": {lab["lab_id"]: [[n["name"], n["kind"], n["provider"], n["state"], n["runtime_name"], n.get("mgmt_ipv4"),
                                n.get("mgmt_ipv6")] for n in lab["nodes"]]
                 for lab in labs},
    }


def _free_for_labs(offered: int, labs: list[dict[str, Any]]) -> int:
    """Free memory for placement: the kernel's, or what the host offers minus its nodes'
    (simulated hosts share one kernel: each offers its part)."""
    if not offered:
        return memory_free_mb()
    from vendors import catalog
    from vendors.model import Provider

    used = 0
    for lab in labs:
        for node in lab["nodes"]:
            vendor = catalog().find(node["kind"])
            used += vendor.memory_mb if vendor is not None and vendor.provider is Provider.LIBVIRT else 64
    return max(0, min(memory_free_mb(), offered - used))


def _docker_images(provider: Any) -> list[str]:
    tags = sorted(tag for image in provider.client.images.list() for tag in image.tags)
    ours = [t for t in tags if t.startswith("archetype/")]
    return (ours + [t for t in tags if t not in ours])[:MAX_IMAGES]
