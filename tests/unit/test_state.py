"""The state artifact's table reads back into the same record (recovery relies on it)."""

from __future__ import annotations

import json

from lab import names
from lab.state import (
    LabState,
    LabStatus,
    LinkRecord,
    NodePhase,
    NodeRecord,
    Stage,
    state_from_rows,
    state_to_rows,
)


def test_rows_round_trip_through_json() -> None:
    state = LabState(
        lab_id="demo",
        status=LabStatus.FAILED,
        nodes=[
            NodeRecord(name="r1", kind="frr", provider="docker", runtime_name="archetype-demo-r1", state=NodePhase.READY, ready_seconds=0.42),
            NodeRecord(name="v1", kind="mini-ios", provider="libvirt", runtime_name="arch-demo-v1", state=NodePhase.FAILED, failed_stage=Stage.READY, error="timeout"),
        ],
        links=[LinkRecord(id="r1:eth1--v1:Gi0/1", endpoints=["r1:eth1", "v1:Gi0/1"], vlan=117, ports=["arvabc", "arvdef"])],
        errors=["v1: ready: timeout"],
    )
    rows = json.loads(json.dumps(state_to_rows(state)))  # Artifact.get gives table data back as JSON
    back = state_from_rows(rows)
    assert back == state
    assert back.vlans() == {"r1:eth1--v1:Gi0/1": 117}
    assert [row["state"] for row in rows if row["item"] == "node"] == ["ready", "failed (ready)"]


def test_every_row_has_the_same_columns_for_the_ui_table() -> None:
    state = LabState(lab_id="x", status=LabStatus.ALLOCATED, nodes=[NodeRecord(name="a", kind="linux", provider="docker", runtime_name="c")])
    rows = state_to_rows(state)
    assert len({tuple(row) for row in rows}) == 1


def test_destroyed_labs_are_not_known() -> None:
    assert not LabState(lab_id="x", status=LabStatus.DESTROYED).is_known
    assert LabState(lab_id="x", status=LabStatus.ALLOCATED).is_known


def test_names_and_keys() -> None:
    assert names.container_name("my-lab", "r1") == "archetype-my-lab-r1"
    assert names.domain_name("my-lab", "PC1") == "arch-my-lab-PC1"
    assert names.config_artifact_key("my-lab", "PC_1") == "lab-my-lab-config-pc-1"
    port = names.host_port_name("a-lab-with-a-long-id", "node_with_long_name_0123456789", "GigabitEthernet0/15")
    assert len(port) <= 15 and port == names.host_port_name("a-lab-with-a-long-id", "node_with_long_name_0123456789", "GigabitEthernet0/15")
    assert names.link_id("r2:eth1", "r1:eth1") == "r1:eth1--r2:eth1"


def test_a_fleet_labs_management_subnet_and_node_addresses_read_back() -> None:
    state = LabState(lab_id="m", status=LabStatus.ALLOCATED, mgmt_ipv4_subnet="172.20.7.0/24",
                     nodes=[NodeRecord(name="a", kind="frr", provider="docker", runtime_name="c", host="sim-1",
                                       mgmt_ipv4="172.20.7.2")])
    back = state_from_rows(json.loads(json.dumps(state_to_rows(state))))
    assert back.mgmt_ipv4_subnet == "172.20.7.0/24"
    assert back.nodes[0].mgmt_ipv4 == "172.20.7.2"
    old = [{k: v for k, v in row.items() if k != "mgmt"} for row in state_to_rows(state)]  # a record from before
    assert state_from_rows(old).mgmt_ipv4_subnet is None
