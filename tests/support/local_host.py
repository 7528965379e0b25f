"""A fresh lab host for the command line, on this machine: its own workspace and server
port, no local Prefect server or executor running, no PREFECT_API_URL. Whatever its
commands start (the local server, the executor) is stopped at the end."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.prefect_server import ARCHETYPE, free_port

CLEARED = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_HOME")


@contextmanager
def fresh_host(folder: Path) -> Iterator[dict[str, str]]:
    """The environment of the host's commands (its workspace in ``folder``)."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(ARCHETYPE_WORKSPACE=str(folder / "ws"), ARCHETYPE_SERVER_PORT=str(free_port()))
    try:
        yield env
    finally:
        subprocess.run([ARCHETYPE, "server", "stop"], env=env, capture_output=True, timeout=60)
