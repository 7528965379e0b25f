"""providers.labs releases a lab's network and files once, after no node of it remains, and
keeps them when a node remains or when it cannot tell (the order only; the real runtimes are
in tests/integration/test_lab_teardown.py)."""

from __future__ import annotations

import pytest

from lab.errors import ProviderError
from providers import labs
from providers.base import CleanupReport, NodeState, NodeStatus
from vendors.model import Provider


class FakeProvider:
    def __init__(self, name: Provider, leaves: list[NodeStatus] | None = None, fails: bool = False) -> None:
        self.name, self.leaves, self.fails = name, leaves or [], fails
        self.removed: list[str] = []

    def remove_lab_nodes(self, lab_id: str) -> CleanupReport:
        if self.fails:
            raise ProviderError("daemon down")
        self.removed.append(lab_id)
        return CleanupReport(removed={"nodes": [lab_id]})


@pytest.fixture
def released(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(labs.network, "release_lab", lambda lab: calls.append(f"network {lab}") or CleanupReport())
    monkeypatch.setattr(labs, "remove_lab_files", lambda lab: calls.append(f"files {lab}") or CleanupReport())
    return calls


def _with(monkeypatch: pytest.MonkeyPatch, providers: list[FakeProvider], remaining: list[NodeStatus] | Exception):
    monkeypatch.setattr(labs, "all_providers", lambda: providers)

    def nodes(lab_id: str) -> list[NodeStatus]:
        if isinstance(remaining, Exception):
            raise remaining
        return remaining

    monkeypatch.setattr(labs, "lab_nodes", nodes)


def test_the_network_and_files_go_once_after_every_provider(monkeypatch, released) -> None:  # noqa: ANN001
    providers = [FakeProvider(Provider.DOCKER), FakeProvider(Provider.LIBVIRT)]
    _with(monkeypatch, providers, [])
    report = labs.destroy_lab("l1")
    assert report.ok and [p.removed for p in providers] == [["l1"], ["l1"]]
    assert released == ["network l1", "files l1"]


def test_a_node_that_remains_keeps_the_labs_network_and_files(monkeypatch, released) -> None:  # noqa: ANN001
    vm = NodeStatus("l1", "v1", "mini-ios", Provider.LIBVIRT, NodeState.RUNNING, "arch-l1-v1")
    _with(monkeypatch, [FakeProvider(Provider.DOCKER), FakeProvider(Provider.LIBVIRT)], [vm])
    report = labs.destroy_lab("l1")
    assert released == []
    assert report.errors == ["lab l1: nodes v1 remain: its network (ports, VLANs) and files are kept"]


def test_when_it_cannot_tell_what_remains_it_keeps_them(monkeypatch, released) -> None:  # noqa: ANN001
    _with(monkeypatch, [FakeProvider(Provider.DOCKER), FakeProvider(Provider.LIBVIRT, fails=True)],
          ProviderError("libvirt: no answer"))
    report = labs.destroy_lab("l1")
    assert released == []
    assert report.errors[0] == "libvirt: lab l1: daemon down"
    assert "cannot tell which nodes remain" in report.errors[1]
