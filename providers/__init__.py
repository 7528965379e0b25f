"""The runtimes (docker, libvirt), host networking and the serial console: no Prefect here.

One explicit registry, keyed by the catalog's ``Provider``: a kind names its provider,
and ``provider_of(node)`` gives the process-wide instance. A new runtime is one entry in
``_FACTORIES`` (and must pass tests/integration/test_provider_conformance.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from lab.errors import CatalogError
from providers.base import NodeProvider
from topology import NodeRef
from vendors.model import Provider


def _docker() -> NodeProvider:
    from providers.docker import DockerProvider

    return DockerProvider()


def _libvirt() -> NodeProvider:
    from providers.libvirt import LibvirtProvider

    return LibvirtProvider()


# Imported on first use: a host without libvirt-python can still run containers.
_FACTORIES: dict[Provider, Callable[[], NodeProvider]] = {
    Provider.DOCKER: _docker,
    Provider.LIBVIRT: _libvirt,
}


@cache
def get_provider(which: Provider) -> NodeProvider:
    """The process-wide provider of one runtime."""
    try:
        return _FACTORIES[Provider(which)]()
    except (ValueError, KeyError):
        raise CatalogError(f"provider {which!r} is not supported. Supported providers are {sorted(_FACTORIES)}") from None


def provider_of(node: NodeRef) -> NodeProvider:
    """The provider that runs ``node``, from its vendor entry."""
    return get_provider(node.vendor.provider)


def all_providers() -> list[NodeProvider]:
    return [get_provider(which) for which in _FACTORIES]
