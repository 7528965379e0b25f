"""A VM's startup config, put where the device reads it at boot, before its first boot.

Each way is named by the catalog (``vm_startup_config``); a kind with none ignores the
topology's startup-config (deploy warns). The one way today is mini-ios' "nvram": a raw
layout at the start of its data disk (images/mini-ios/README.md), which its boot reads,
checks (md5) and applies, as IOS applies its startup-config from NVRAM.
"""

from __future__ import annotations

import hashlib

from lab.errors import ProviderError
from vendors.model import VendorConfig, VmStartupConfig

SECTOR = 512
MINI_IOS_MAGIC = "MINI-IOS-NVRAM 1"
MINI_IOS_MAX = 262144


def data_disk_seed(vendor: VendorConfig, node_name: str, config: str | None) -> bytes | None:
    """Raw bytes for the start of a new data disk that carry ``config``; None for none."""
    if config is None or vendor.vm_startup_config is VmStartupConfig.NONE:
        return None
    if vendor.vm_startup_config is VmStartupConfig.MINI_IOS_NVRAM:
        return _mini_ios_nvram(node_name, config)
    raise ProviderError(f"node {node_name}: unknown startup config way {vendor.vm_startup_config}")


def _mini_ios_nvram(node_name: str, config: str) -> bytes:
    body = _from_bang(config).encode()
    if len(body) > MINI_IOS_MAX:
        raise ProviderError(f"node {node_name}: startup config of {len(body)} bytes is over the {MINI_IOS_MAX} of nvram")
    header = f"{MINI_IOS_MAGIC}\nlength {len(body)}\nmd5 {hashlib.md5(body).hexdigest()}\n".encode()  # noqa: S324 - the image's checksum
    return _padded(header) + _padded(body)


def _from_bang(config: str) -> str:
    """The config as the device saves it: without the lines ``show running-config`` prints
    before it, ending with a newline."""
    lines = config.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    text = "\n".join(lines)
    return text + "\n" if text else ""


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % SECTOR)
