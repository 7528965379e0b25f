"""The registry of device kinds: one YAML file per kind under ``vendors/kinds/``.

An entry may start from another with ``parent: KIND`` (netlab-style inheritance): the
parent's fields are deep-merged under the child's. The registry refuses duplicate names
and, on a miss, lists what it knows.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lab.errors import CatalogError
from vendors.model import VendorConfig

KINDS_DIR = Path(__file__).parent / "kinds"


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_parent(name: str, raw: dict[str, dict[str, Any]], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    entry = dict(raw[name])
    parent = entry.pop("parent", None)
    if parent is None:
        return entry
    if parent in seen or parent not in raw:
        raise CatalogError(f"kind {name}: bad parent {parent!r}")
    inherited = _resolve_parent(parent, raw, (*seen, name))
    for field in ("kind", "aliases"):  # identity is never inherited
        inherited.pop(field, None)
    return _deep_merge(inherited, entry)


class Catalog:
    def __init__(self, entries: list[VendorConfig]):
        self._by_kind: dict[str, VendorConfig] = {}
        self._by_name: dict[str, VendorConfig] = {}
        for entry in entries:
            if entry.kind in self._by_kind:
                raise CatalogError(f"kind {entry.kind} is registered twice")
            self._by_kind[entry.kind] = entry
            for name in (entry.kind, *entry.aliases):
                if name in self._by_name:
                    raise CatalogError(f"name {name!r} is used by {self._by_name[name].kind} and {entry.kind}")
                self._by_name[name] = entry

    def get(self, name: str) -> VendorConfig:
        try:
            return self._by_name[name]
        except KeyError:
            raise CatalogError(
                f"kind {name!r} is not supported. Supported kinds are {sorted(self._by_kind)}"
            ) from None

    def find(self, name: str) -> VendorConfig | None:
        return self._by_name.get(name)

    def kinds(self) -> list[VendorConfig]:
        return [self._by_kind[k] for k in sorted(self._by_kind)]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


def load_catalog(directory: Path = KINDS_DIR) -> Catalog:
    raw: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        raw[data["kind"]] = data
    abstract = {name for name, data in raw.items() if data.get("abstract")}
    entries = []
    for name in raw:
        if name in abstract:
            continue
        resolved = _resolve_parent(name, raw)
        resolved.pop("abstract", None)
        try:
            entries.append(VendorConfig.model_validate(resolved))
        except ValueError as err:
            raise CatalogError(f"vendors/kinds/{name}.yml: {err}") from err
    return Catalog(entries)


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    return load_catalog()


def get_vendor(kind: str) -> VendorConfig:
    return catalog().get(kind)
