"""The carrier watcher's host side (``providers.carrier``), for ``flows.carrier_watch``: the
runtimes' event streams and this host made to match them."""

from __future__ import annotations

from providers.carrier import Change, NodeEvent, docker_events, follow_remote, libvirt_events, reconcile

__all__ = ["Change", "NodeEvent", "docker_events", "follow_remote", "libvirt_events", "reconcile"]
