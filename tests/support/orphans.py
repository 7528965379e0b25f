"""Orphan cleanup as the cleanup-orphans flow does it, limited to the test's own labs
(other engineers' labs run on this host: a test never removes what it did not make)."""

from __future__ import annotations

from collections.abc import Iterable

from providers import labs
from providers.base import CleanupReport


def remove_orphan(orphan: str, known: Iterable[str], keep: Iterable[str] = ()) -> CleanupReport:
    """``orphan`` must be found among the orphans given ``known`` and the labs in ``keep``
    must not; then ``orphan`` alone is destroyed. Fails if the selection is wrong, so a
    cleanup that asks nothing, or asks and keeps everything, cannot pass."""
    found = labs.find_orphans(set(known))
    assert orphan in found.labs, f"{orphan} is not among the orphans {found.labs}"
    kept_wrongly = [lab for lab in keep if lab in found.labs]
    assert not kept_wrongly, f"known labs {kept_wrongly} were taken for orphans"
    return labs.destroy_lab(orphan)
