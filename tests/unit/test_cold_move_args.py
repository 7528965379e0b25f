"""A cold move's host steps take flow parameters (the API is the trust boundary): what they
refuse before touching anything (tasks.cold_move). Pure logic."""

from __future__ import annotations

import pytest

from lab.errors import TopologyError
from tasks import cold_move


def test_node_names_that_could_name_a_path_are_refused() -> None:
    assert cold_move._node_name("r1") == "r1"
    for bad in ("../etc", "r1/x", "", None, 7):
        with pytest.raises(TopologyError, match="invalid node name"):
            cold_move._node_name(bad)


def test_only_unicast_mac_addresses_are_taken() -> None:
    assert cold_move._macs({"eth1": "02:AA:bb:cc:dd:01"}) == {"eth1": "02:aa:bb:cc:dd:01"}
    assert cold_move._macs(None) == {}
    for bad in ("01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "02:aa:bb:cc:dd", "zz:aa:bb:cc:dd:ee", 5):
        with pytest.raises(TopologyError, match="not unicast"):
            cold_move._macs({"eth1": bad})


def test_tunnels_are_checked_field_by_field() -> None:
    entry = {"link_id": "a--b", "node": "r1", "vni": 4096, "remote": "10.213.0.2", "peer": "sim-2"}
    assert cold_move._tunnels([entry]) == [entry]
    assert cold_move._tunnels([{**entry, "vlan": "12", "peer": ""}])[0]["vlan"] == 12
    for bad in ({"vni": 0}, {"vni": 1 << 24}, {"remote": "sim-2"}, {"remote": "10.0.0.1; rm"}, {"node": "../x"},
                {"peer": "a b"}, {"vni": "x"}):
        with pytest.raises(TopologyError):
            cold_move._tunnels([{**entry, **bad}])
    with pytest.raises(TopologyError):
        cold_move._tunnels([{"link_id": "a--b"}])
