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
from topology.paths import PROJECT, Folders, forbidden, inside

# Paths a topology may name, inside and out of its folder (see the `lab_folder` fixture):
# `..`, absolute, symlinks out, the workspace's internals, the project's code.
PATHS = ["cfg/r1.cfg", "cfg", ".", "..", "../..", "cfg/../../x", "/etc/passwd", "/etc", "/", "link-etc",
         "link-passwd", "link-inside", "/var/lib/archetype", "/var/lib/archetype/prefect/prefect.db",
         "/var/lib/archetype/secrets/prefect-api-auth", str(PROJECT), str(PROJECT / "flows"), str(PROJECT / "README.md")]
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
        "startup-config": st.one_of(st.sampled_from(PATHS + ["hostname x\n", "missing.conf", ""]), SCALARS),
        "env": st.one_of(st.dictionaries(st.text(max_size=5), SCALARS, max_size=3), SCALARS),
        "binds": st.one_of(
            st.lists(st.one_of(st.sampled_from(["a:/b", "a", "a:b", "a:/b:ro", "a:/b:zz"]),
                               st.builds(lambda p: f"{p}:/mnt", st.sampled_from(PATHS))), max_size=3),
            SCALARS,
        ),
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
path_fields = st.fixed_dictionaries(
    {},
    optional={
        "startup-config": st.sampled_from(PATHS),
        "binds": st.lists(st.builds(lambda p: f"{p}:/mnt", st.sampled_from(PATHS)), max_size=2),
    },
)
valid_ish = st.builds(
    lambda kinds, links: {
        "name": "fuzz-ok",
        "topology": {
            "nodes": {f"n{i}": {"kind": kind, **fields} for i, (kind, fields) in enumerate(kinds)},
            "links": [{"endpoints": [f"n{a}:eth{p}", f"n{b}:eth{q}"]} for a, p, b, q in links],
        },
    },
    st.lists(st.tuples(st.sampled_from(["linux", "frr", "ceos", "mini-ios"]), path_fields), min_size=1, max_size=5),
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


def lab_folder(tmp_path_factory) -> Path:  # noqa: ANN001
    """A topology's folder with a config, a subfolder and symlinks in and out of it."""
    base = Path(tmp_path_factory.getbasetemp()) / "fuzz-lab"
    if not base.exists():
        (base / "cfg").mkdir(parents=True)
        (base / "cfg" / "r1.cfg").write_text("hostname r1\n")
        (base / "a").mkdir()
        (base / "link-etc").symlink_to("/etc")
        (base / "link-passwd").symlink_to("/etc/passwd")
        (base / "link-inside").symlink_to(base / "cfg")
    return base


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=document)
def test_generated_documents_are_accepted_or_refused_cleanly(doc, tmp_path_factory) -> None:
    base = lab_folder(tmp_path_factory)
    try:
        lab = resolve(doc, base)
    except TopologyError as err:
        assert err.problems, "a refusal says why"
        assert all(isinstance(p, str) and p.strip() for p in err.problems)
        event("refused")
        return
    assert isinstance(lab, Lab) and lab.nodes
    # Every path an accepted lab reads or binds lies inside its allowed folders, and in
    # none of the places no topology may reach (DESIGN.md, Security).
    allowed = Folders.of_file(base).allowed
    bound = [b.host for node in lab.nodes.values() for b in node.binds]
    assert set(bound) <= set(lab.host_paths)
    for path in lab.host_paths:
        assert inside(path, allowed) and forbidden(path) is None, path
    event("accepted with paths" if lab.host_paths else "accepted")


@settings(max_examples=1500, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_but_topology_error(text: str) -> None:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # load_topology turns these into TopologyError with the line: covered in test_topology_validation
    with contextlib.suppress(TopologyError):
        resolve(document, Path.cwd())
