"""The topology model: a raw document becomes a validated, resolved lab whose nodes carry
their vendor entry. Above ``vendors/`` and ``lab/``; below providers, tasks and flows."""

from topology.document import Lab, Node, NodeRef, load_topology, resolve
from topology.links import Endpoint, Link
from topology.node_fields import Bind

__all__ = ["Bind", "Endpoint", "Lab", "Link", "Node", "NodeRef", "load_topology", "resolve"]
