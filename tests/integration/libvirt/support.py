"""Helpers of the libvirt integration tests: availability checks, lab ids, nodes."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

import libvirt
import pytest

from lab.settings import get_settings
from providers.base import LinkEnd
from topology import Node

libvirt.registerErrorHandler(lambda *_: None, None)

MINI_IOS = ("mini-ios/vmlinuz", "mini-ios/initrd.img")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(what: str) -> None:
    if in_ci():
        pytest.fail(what, pytrace=False)
    pytest.skip(what)


def require_libvirt() -> None:
    try:
        conn = libvirt.open(get_settings().libvirt_uri)
        conn.listAllDomains()
        conn.close()
    except libvirt.libvirtError as err:
        unavailable(f"libvirtd does not answer (scripts/start-daemons.sh): {err}")


def require_mini_ios() -> None:
    image_dir = get_settings().image_dir
    missing = [p for p in MINI_IOS if not (image_dir / p).is_file()]
    if missing:
        unavailable(f"mini-ios is not built ({', '.join(missing)} under {image_dir}): run images/mini-ios/build.sh")


def lab_id(prefix: str = "lv") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def mini_ios(name: str, *exec_lines: str) -> Node:
    return Node.of(name=name, kind="mini-ios", image="mini-ios/vmlinuz", exec=tuple(exec_lines))


@dataclass
class Booted:
    lab_id: str
    nodes: dict[str, Node]
    ends: dict[str, list[LinkEnd]]
    ready_seconds: dict[str, float]  # define + boot to ready, per node
    pattern_to_ready: dict[str, float]  # at most this long from the pattern in the serial log to wait_ready's return (seen nodes only)
    log_at_ready: dict[str, str]  # each node's serial log as it was when wait_ready returned
