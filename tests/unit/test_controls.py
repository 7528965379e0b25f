"""A running lab's controls, the pure parts: the state record keeps links' state and
impairment and nodes' exec lines; input checks; the relay's netem model."""

from __future__ import annotations

import argparse

import pytest

from lab.errors import TopologyError
from lab.state import (
    LabState,
    LabStatus,
    LinkConditions,
    LinkRecord,
    NodeRecord,
    state_from_rows,
    state_to_rows,
)
from providers import controls
from providers.network.relay import Direction


def _state() -> LabState:
    return LabState(
        lab_id="ops-u1",
        status=LabStatus.DEPLOYED,
        nodes=[
            NodeRecord(name="r1", kind="frr", provider="docker", runtime_name="archetype-ops-u1-r1",
                       exec_lines=["ip addr add 10.9.0.1/24 dev eth1", "echo 'a b'"]),
            NodeRecord(name="v1", kind="mini-ios", provider="libvirt", runtime_name="arch-ops-u1-v1",
                       exec_lines=["configure terminal", "end"]),
            NodeRecord(name="n1", kind="cisco_n9kv", provider="libvirt", runtime_name="arch-ops-u1-n1"),
        ],
        links=[
            LinkRecord(id="r1:eth1--v1:GigabitEthernet0/1", endpoints=["r1:eth1", "v1:GigabitEthernet0/1"], vlan=301,
                       state="down", conditions=LinkConditions(delay_ms=100, jitter_ms=2.5, loss_percent=1, rate_kbit=512)),
            LinkRecord(id="n1:Ethernet1/1--r1:eth2", endpoints=["r1:eth2", "n1:Ethernet1/1"], vlan=302),
        ],
    )


def test_state_rows_keep_link_controls_and_exec_lines() -> None:
    state = _state()
    back = state_from_rows(state_to_rows(state))
    assert back.links[0].state == "down"
    assert back.links[0].conditions == LinkConditions(delay_ms=100, jitter_ms=2.5, loss_percent=1, rate_kbit=512)
    assert back.links[1].state == "up" and not back.links[1].conditions.active
    assert back.nodes[0].exec_lines == ["ip addr add 10.9.0.1/24 dev eth1", "echo 'a b'"]


def test_rows_from_before_these_columns_still_load() -> None:
    rows = [{k: v for k, v in row.items() if k not in ("impairment", "exec")} for row in state_to_rows(_state())]
    for row in rows:
        if row["item"] == "link":
            row["state"] = ""
    back = state_from_rows(rows)
    assert back.links[0].state == "up" and back.nodes[0].exec_lines == []


def test_node_of_carries_the_recorded_exec_for_post_boot() -> None:
    state = _state()
    r1 = controls.node_of(controls.node_record(state, "r1"))
    assert r1.exec == ("ip addr add 10.9.0.1/24 dev eth1", "echo 'a b'") and r1.vendor.kind == "frr"
    v1 = controls.node_of(controls.node_record(state, "v1"))
    assert v1.post_boot_commands[-2:] == ["configure terminal", "end"]


def test_node_of_names_the_container_as_the_deploy_did() -> None:
    """node start rewires and waits for a container by its name: netlab's `prefix: clab` one too."""
    from lab import names

    for prefix in ("clab", "", None):
        record = controls.node_record(_state(), "r1").model_copy(
            update={"runtime_name": names.container_name("lab1", "r1", prefix)})
        node = controls.node_of(record, "lab1")
        assert node.name_prefix == prefix
        assert names.container_name("lab1", "r1", node.name_prefix) == record.runtime_name


def test_find_link_takes_any_vendor_spelling_and_names_what_is_wrong() -> None:
    state = _state()
    link, index = controls.find_link(state, "v1:Gi0/1")
    assert link.vlan == 301 and index == 1
    with pytest.raises(TopologyError, match="r1 has no link on interface 'eth9'.*r1:eth1, r1:eth2"):
        controls.find_link(state, "r1:eth9")
    with pytest.raises(TopologyError, match="no node 'r7'"):
        controls.find_link(state, "r7:eth1")
    with pytest.raises(TopologyError, match="NODE:INTERFACE"):
        controls.find_link(state, "r1")


def test_link_ends_of_a_node_are_the_deploys() -> None:
    from lab import names

    (end,) = [e for e in controls.link_ends_of(_state(), "v1")]
    assert (end.port, end.vlan, end.port_name) == (1, 301, names.host_port_name("ops-u1", "v1", "GigabitEthernet0/1"))


def test_new_conditions_merge_clear_and_refuse_bad_values() -> None:
    current = LinkConditions(delay_ms=100, loss_percent=5)
    merged = controls.new_conditions(current, clear=False, delay_ms=None, jitter_ms=10, loss_percent=None, rate_kbit=None)
    assert merged == LinkConditions(delay_ms=100, jitter_ms=10, loss_percent=5)
    cleared = controls.new_conditions(current, clear=True, delay_ms=None, jitter_ms=None, loss_percent=None, rate_kbit=None)
    assert not cleared.active
    with pytest.raises(TopologyError) as err:
        controls.new_conditions(current, clear=False, delay_ms=-1, jitter_ms=None, loss_percent=101, rate_kbit=-5)
    assert len(err.value.problems) == 3 and "delay: must be 0 or more" in err.value.problems[0]


def test_a_vm_kind_that_cannot_stop_cleanly_is_refused_and_others_are_not() -> None:
    state = _state()
    with pytest.raises(TopologyError, match="cannot be stopped cleanly"):
        controls.check_can_stop(controls.node_record(state, "n1"))
    controls.check_can_stop(controls.node_record(state, "v1"))
    controls.check_can_stop(controls.node_record(state, "r1"))


def test_lab_checks() -> None:
    with pytest.raises(TopologyError, match="invalid lab id"):
        controls.check_lab("../x", None)
    with pytest.raises(TopologyError, match="no lab 'ops-u2' deployed"):
        controls.check_lab("ops-u2", None)


def test_captured_count_reads_tcpdumps_summary() -> None:
    text = "tcpdump: listening on arv1, link-type EN10MB\n5 packets captured\n7 packets received by filter\n"
    assert controls.captured_count(text) == 5
    assert controls.captured_count("1 packet captured\n") == 1
    assert controls.captured_count("") == 0


class _Out:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)


def _direction(**values: float) -> tuple[Direction, _Out]:
    out = _Out()
    args = argparse.Namespace(delay_ms=0.0, jitter_ms=0.0, loss=0.0, rate_kbit=0)
    vars(args).update(values)
    return Direction(out, args), out  # type: ignore[arg-type]


def test_relay_delays_each_frame() -> None:
    direction, out = _direction(delay_ms=100)
    direction.take(b"x" * 100, now=10.0)
    direction.send_due(10.099)
    assert out.sent == []
    direction.send_due(10.1)
    assert out.sent == [b"x" * 100]


def test_relay_rate_serialises_frames() -> None:
    direction, out = _direction(rate_kbit=8)  # 1000 bytes/s: a 100-byte frame takes 0.1 s
    for _ in range(3):
        direction.take(b"y" * 100, now=0.0)
    direction.send_due(0.25)
    assert len(out.sent) == 2
    direction.send_due(0.31)
    assert len(out.sent) == 3


def test_relay_loses_the_share_asked() -> None:
    direction, out = _direction(loss=30)
    for _ in range(900):  # under the queue limit
        direction.take(b"z", now=0.0)
    direction.send_due(1.0)
    assert 540 < len(out.sent) < 720
