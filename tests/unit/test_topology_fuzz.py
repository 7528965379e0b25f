"""Topology fuzzing: thousands of generated documents, valid and broken. Validation never
raises anything but TopologyError, and every problem it reports names a place."""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lab.errors import TopologyError
from topology import Lab, resolve

KINDS = ["linux", "frr", "ceos", "srl", "mini-ios", "cisco_iosv", "vjunos-router", "sonic-vs", "nope", ""]
IFACES = ["eth1", "eth2", "eth0", "Ethernet1", "e1-1", "ethernet-1/2", "GigabitEthernet0/1", "Gi0/2", "ge-0/0/0",
          "eth99", "Ethernet4", "", "x", "eth-1"]
NAMES = st.sampled_from(["r1", "r2", "r3", "PC1", "spine_1", "bad name", "", "-x", "a" * 31, "v1"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.text(max_size=12), st.floats(allow_nan=False))

node_fields = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.one_of(st.sampled_from(KINDS), SCALARS),
        "image": st.one_of(st.text(max_size=10), SCALARS),
        "startup-config": st.one_of(st.sampled_from(["hostname x\n", "missing.conf", "/etc/passwd", ""]), SCALARS),
        "env": st.one_of(st.dictionaries(st.text(max_size=5), SCALARS, max_size=3), SCALARS),
        "binds": st.one_of(st.lists(st.sampled_from(["a:/b", "/etc:/x", "a", "a:b", "a:/b:ro", "a:/b:zz"]), max_size=3), SCALARS),
        "exec": st.one_of(st.lists(st.sampled_from(["ip link", "echo 'unterminated", "", "configure terminal"]), max_size=3), SCALARS),
        "memory": st.one_of(st.sampled_from(["512MB", "2GB", "lots", "0"]), SCALARS),
        "cpus": SCALARS,
        "group": st.one_of(st.sampled_from(["g1", "nope"]), SCALARS),
        "type": st.just("ixr6"),
        "typo": SCALARS,
    },
)
endpoint = st.one_of(st.builds(lambda n, i: f"{n}:{i}", NAMES, st.sampled_from(IFACES)), SCALARS, st.just("a:b:c"))
link = st.one_of(
    st.fixed_dictionaries({"endpoints": st.lists(endpoint, min_size=0, max_size=3)}),
    st.fixed_dictionaries({"endpoints": st.lists(endpoint, min_size=2, max_size=2), "mtu": st.just(9000)}),
    SCALARS,
)
valid_ish = st.builds(
    lambda kinds, links: {
        "name": "fuzz-ok",
        "topology": {
            "nodes": {f"n{i}": {"kind": kind} for i, kind in enumerate(kinds)},
            "links": [{"endpoints": [f"n{a}:eth{p}", f"n{b}:eth{q}"]} for a, p, b, q in links],
        },
    },
    st.lists(st.sampled_from(["linux", "frr", "ceos", "mini-ios"]), min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3), st.integers(0, 4), st.integers(1, 3)), max_size=4),
)
document = st.one_of(
    valid_ish,
    st.fixed_dictionaries(
        {
            "name": st.one_of(st.sampled_from(["lab1", "fuzz-lab", "Bad", "", "a" * 25]), SCALARS),
            "topology": st.one_of(
                st.fixed_dictionaries(
                    {"nodes": st.one_of(st.dictionaries(NAMES, st.one_of(node_fields, SCALARS), max_size=5), SCALARS)},
                    optional={
                        "links": st.one_of(st.lists(link, max_size=6), SCALARS),
                        "defaults": st.one_of(node_fields, SCALARS),
                        "kinds": st.one_of(st.dictionaries(st.sampled_from(KINDS), node_fields, max_size=2), SCALARS),
                        "groups": st.one_of(st.dictionaries(st.just("g1"), node_fields, max_size=1), SCALARS),
                    },
                ),
                SCALARS,
            ),
        },
        optional={"mgmt": st.just({"network": "x"}), "extra": SCALARS},
    ),
    SCALARS,
    st.lists(SCALARS, max_size=3),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=document)
def test_generated_documents_are_accepted_or_refused_cleanly(doc, tmp_path_factory) -> None:
    base = Path(tmp_path_factory.getbasetemp())
    try:
        lab = resolve(doc, base)
    except TopologyError as err:
        assert err.problems, "a refusal says why"
        assert all(isinstance(p, str) and p.strip() for p in err.problems)
        event("refused")
        return
    assert isinstance(lab, Lab) and lab.nodes
    event("accepted")


@settings(max_examples=1500, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_but_topology_error(text: str) -> None:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # load_topology turns these into TopologyError with the line: covered in test_topology_validation
    with contextlib.suppress(TopologyError):
        resolve(document, Path.cwd())
