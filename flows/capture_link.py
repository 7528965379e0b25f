"""capture-link: a pcap file of one link end's traffic, under the workspace
(``captures/<lab>/``), for users of the UI and the REST API. `archetype capture` streams
the same tcpdump to stdout or a file of the user's, directly, without Prefect."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from lab.errors import TopologyError
from tasks import controls
from tasks.controls import capture_to_file

MAX_COUNT = 1_000_000
MAX_SECONDS = 3600


@flow(name="capture-link", flow_run_name="capture-link/{lab}/{endpoint}")
def capture_link(lab: str, endpoint: str, count: int = 100, seconds: float = 60) -> dict[str, Any]:
    """Capture a link end's packets (both directions, on its host port) into a pcap file.

    Args:
        lab: the lab id.
        endpoint: NODE:INTERFACE (e.g. r1:eth1).
        count: stop after this many packets.
        seconds: stop after this long in any case.
    """
    problems = []
    if not 1 <= count <= MAX_COUNT:
        problems.append(f"count: between 1 and {MAX_COUNT}, not {count}")
    if not 0 < seconds <= MAX_SECONDS:
        problems.append(f"seconds: more than 0 and at most {MAX_SECONDS}, not {seconds}")
    if problems:
        raise TopologyError(problems)
    port = controls.live_port(lab, endpoint)
    folder = controls.captures_dir(lab)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    node, _, interface = endpoint.partition(":")
    slug = "".join(c if c.isalnum() else "-" for c in f"{node}-{interface}")
    path = folder / f"{slug}-{time.strftime('%Y%m%dT%H%M%S')}.pcap"
    packets = capture_to_file(port, str(path), count, seconds)
    create_markdown_artifact(f"{packets} packets of `{endpoint}` (host port `{port}`) in `{path}` on this lab host",
                             description=f"capture of {endpoint} in lab {lab}")
    return {"lab_id": lab, "endpoint": endpoint, "port": port, "path": str(path), "packets": packets}
