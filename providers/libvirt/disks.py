"""A VM node's disk files: its qcow2 overlay on the vendor image, and its data volume.

Both are made with ``qemu-img`` (argument lists, never a shell). A file that exists is
kept: the data volume must survive a restart, and a converging deploy reuses the overlay.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab.errors import ImageNotFoundError, ProviderError
from providers.libvirt.domain_xml import DiskPlan, DomainPlan

QEMU_IMG_TIMEOUT = 60.0


def check_images(plan: DomainPlan) -> None:
    """Every vendor file the domain needs is on this host, or ImageNotFoundError naming it."""
    for path in plan.required_files():
        if not path.is_file():
            raise ImageNotFoundError(
                f"node {plan.marker.node_name} ({plan.marker.kind}): image file {path} not found "
                "(see the kind's vm block in the catalog and the image_dir setting)"
            )


def _qemu_img(*args: str) -> None:
    argv = ["qemu-img", "create", "-q", *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ProviderError(f"{' '.join(argv)}: {err}") from err
    if result.returncode != 0:
        raise ProviderError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")


def ensure_disk(disk: DiskPlan) -> bool:
    """Create the disk file if it is missing; True when this call made it."""
    if disk.path.exists():
        return False
    disk.path.parent.mkdir(parents=True, exist_ok=True)
    partial = disk.path.with_name(disk.path.name + ".partial")
    if disk.backing is not None:
        _qemu_img("-f", "qcow2", "-F", "qcow2", "-b", str(disk.backing), str(partial))
    else:
        _qemu_img("-f", "qcow2", str(partial), f"{disk.size_mb}M")
    partial.rename(disk.path)  # never a half-made disk under the real name
    return True


def ensure_disks(plan: DomainPlan) -> list[Path]:
    """Every disk of the plan exists; the files made by this call (to undo on failure)."""
    made: list[Path] = []
    try:
        for disk in plan.disks:
            if ensure_disk(disk):
                made.append(disk.path)
    except BaseException:
        remove_files(made)
        raise
    return made


def remove_files(paths: list[Path]) -> list[str]:
    """Remove files (missing is fine); errors as text."""
    errors = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            errors.append(f"cannot remove {path}: {err}")
    return errors
