"""Whole labs on dockerd: find them by our labels, remove what they own.

Everything here trusts the labels only (DESIGN.md, Identity): a container merely named
``archetype-x-y`` is never listed, so never removed. Removals run in a thread pool (the
client's connection pool is sized for it) and one failure never stops the rest: every
failure ends up in the ``CleanupReport``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
import requests.exceptions
from docker import APIClient

from lab import names
from providers.base import CleanupReport, DiscoveredLab, NodeState, NodeStatus
from providers.network import mgmt as mgmt_bridges
from vendors.model import Provider

log = logging.getLogger("archetype.docker")

REMOVE_WORKERS = 16
PROVIDER = Provider.DOCKER
# What a docker call raises: the daemon's answers, and the transport (daemon down, timeout).
DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


def explain(err: Exception) -> str:
    if isinstance(err, docker.errors.APIError):
        return str(err.explanation or err)
    return str(err)


def our_containers(api: APIClient, lab_id: str | None = None) -> list[dict[str, Any]]:
    """Containers carrying our lab and node labels, running or not: one API call, no
    inspect (the list result has labels and state)."""
    label = names.LABEL_LAB if lab_id is None else f"{names.LABEL_LAB}={lab_id}"
    rows = api.containers(all=True, filters={"label": label})
    return [r for r in rows if (r.get("Labels") or {}).get(names.LABEL_NODE)]


def _runtime_name(row: dict[str, Any]) -> str:
    return (row.get("Names") or ["/" + row["Id"][:12]])[0].lstrip("/")


def mgmt_address(row: dict[str, Any], label: str) -> str | None:
    """The container's management address: its veth on the lab's bridge has the address its
    label keeps; a container of a lab made before the bridge was ours has it on its (one)
    docker network (in the list, or in its IPAM config when stopped)."""
    labels = row.get("Labels") or (row.get("Config") or {}).get("Labels") or {}
    if labels.get(label):
        return labels[label]
    live, static = ("IPAddress", "IPv4Address") if label == names.LABEL_MGMT_IPV4 else ("GlobalIPv6Address", "IPv6Address")
    for endpoint in ((row.get("NetworkSettings") or {}).get("Networks") or {}).values():
        address = endpoint.get(live) or ((endpoint.get("IPAMConfig") or {}).get(static))
        if address:
            return address
    return None


def discover(api: APIClient) -> list[DiscoveredLab]:
    labs: dict[str, list[NodeStatus]] = {}
    for row in our_containers(api):
        labels = row["Labels"]
        state = NodeState.RUNNING if row.get("State") == "running" else NodeState.STOPPED
        lab_id = labels[names.LABEL_LAB]
        labs.setdefault(lab_id, []).append(
            NodeStatus(
                lab_id,
                labels[names.LABEL_NODE],
                labels.get(names.LABEL_KIND, ""),
                PROVIDER,
                state,
                _runtime_name(row),
                mgmt_ipv4=mgmt_address(row, names.LABEL_MGMT_IPV4),
                mgmt_ipv6=mgmt_address(row, names.LABEL_MGMT_IPV6),
            )
        )
    return [
        DiscoveredLab(lab_id, sorted(nodes, key=lambda n: n.name)) for lab_id, nodes in sorted(labs.items())
    ]


def labs_with_resources(api: APIClient) -> set[str]:
    """Labs that own our containers or a management network (our bridge, or a docker
    network of a lab made before) on this host."""
    labs = {row["Labels"][names.LABEL_LAB] for row in our_containers(api)}
    labs |= {
        (n.get("Labels") or {})[names.LABEL_LAB] for n in api.networks(filters={"label": names.LABEL_LAB})
    }
    return labs | mgmt_bridges.bridge_labs()


def remove_mgmt_bridge(lab_id: str, report: CleanupReport) -> None:
    """The lab's management bridge, the host ends of its veths still there, its outbound
    rules (all found by their markers)."""
    try:
        for name in mgmt_bridges.remove_bridge(lab_id):
            report.add("mgmt-bridge", name)
    except Exception as err:  # noqa: BLE001 - reported, the rest goes on
        report.errors.append(f"lab {lab_id}: cannot remove its management bridge: {err}")


def remove_lab_containers(api: APIClient, lab_id: str, report: CleanupReport) -> list[str]:
    """Remove the lab's containers; the names of the nodes that are gone."""
    try:
        rows = our_containers(api, lab_id)
    except DOCKER_ERRORS as err:
        report.errors.append(f"lab {lab_id}: cannot list its containers: {explain(err)}")
        return []
    targets = [(row["Id"], _runtime_name(row), row["Labels"][names.LABEL_NODE]) for row in rows]
    workers = max(1, min(REMOVE_WORKERS, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docker-rm") as pool:
        gone = list(pool.map(lambda t: remove_container(api, lab_id, t[0], t[1], report), targets))
    return [node for (_, _, node), ok in zip(targets, gone, strict=True) if ok]


def remove_container(
    api: APIClient, lab_id: str, container_id: str, name: str, report: CleanupReport
) -> bool:
    """Force-remove one container with its anonymous volumes; gone already is fine.
    Whether it is gone (or going: a removal already in progress)."""
    try:
        api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError as err:
        if err.status_code == 409 and "already in progress" in explain(err):
            return True
        report.errors.append(f"lab {lab_id}: cannot remove container {name}: {explain(err)}")
        return False
    except Exception as err:  # noqa: BLE001 - one failure does not stop the rest
        report.errors.append(f"lab {lab_id}: cannot remove container {name}: {err!r}")
        return False
    report.add("containers", name)  # list.append: safe from the pool's threads
    return True


def remove_mgmt_networks(api: APIClient, lab_id: str, report: CleanupReport) -> None:
    """The lab's management network(s), found by label (never by name alone)."""
    try:
        found = api.networks(filters={"label": f"{names.LABEL_LAB}={lab_id}"})
    except DOCKER_ERRORS as err:
        report.errors.append(f"lab {lab_id}: cannot list its networks: {explain(err)}")
        return
    for net in found:
        try:
            _remove_network(api, net["Id"])
            report.add("networks", net.get("Name", net["Id"][:12]))
        except docker.errors.NotFound:
            continue
        except DOCKER_ERRORS as err:
            report.errors.append(
                f"lab {lab_id}: cannot remove network {net.get('Name')}: {_why(api, net, err)}"
            )


def _why(api: APIClient, net: dict[str, Any], err: Exception) -> str:
    """The error, and the known dockerd 20.10 defect when it applies: a network whose
    endpoint count went stale (moby/moby#42119) cannot be removed though nothing is
    attached; dockerd recounts its endpoints when it restarts."""
    text = explain(err)
    if "active endpoints" not in text:
        return text
    try:
        attached = api.inspect_network(net["Id"]).get("Containers") or {}
    except DOCKER_ERRORS:
        return text
    if attached:
        return f"{text} (still attached: {', '.join(c.get('Name', '?') for c in attached.values())})"
    return (
        f"{text}, yet no container is attached: dockerd's endpoint count is stale (moby/moby#42119); "
        "it is recounted when dockerd restarts, after which cleanup removes the network"
    )


def _remove_network(api: APIClient, network_id: str, wait: float = 5.0) -> None:
    """dockerd releases a removed container's endpoint a moment after the removal
    returns: "has active endpoints" is retried for a few seconds."""
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            api.remove_network(network_id)
        except docker.errors.APIError as err:
            if "active endpoints" not in explain(err) or time.monotonic() >= deadline:
                raise
        else:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
