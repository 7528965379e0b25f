"""One exception tree for the whole project.

Every layer raises a subclass of ``ArchetypeError`` with the lab/node named in the
message; ``transient`` tells the flow layer whether a retry may help.
"""

from __future__ import annotations


class ArchetypeError(Exception):
    """Base of every error Archetype raises on purpose."""

    transient: bool = False


class TopologyError(ArchetypeError, ValueError):
    """Invalid user input: carries every problem found, each naming its place."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) or "invalid topology")


class CatalogError(ArchetypeError, KeyError):
    """An unknown kind, or an inconsistent vendor catalog."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0]) if self.args else ""


class ProviderError(ArchetypeError, RuntimeError):
    """A runtime (docker, libvirt, OVS) failed to do what was asked."""

    transient = True


class ImageNotFoundError(ProviderError):
    """The node's image is not on this host: retrying will not help."""

    transient = False


class ConflictError(ProviderError):
    """A resource of the node's name exists and is not this node's (a container or domain
    someone else made): it is left alone, and retrying will not help."""

    transient = False


class CommandError(ProviderError):
    """A command run on a node (exec or console) failed.

    Transient only when it timed out: a command that ran and said no (an exit code, an
    error on the console) would say no again, and may have done half its work."""

    def __init__(self, node: str, command: str, exit_code: int | None, output: str):
        self.node, self.command, self.exit_code, self.output = node, command, exit_code, output
        code = "timed out" if exit_code is None else f"exit code {exit_code}"
        super().__init__(f"node {node}: command {command!r} failed ({code}): {output.strip()[-500:]}")

    @property
    def transient(self) -> bool:  # type: ignore[override]
        return self.exit_code is None


class ConsoleError(ProviderError):
    """A serial console did not answer as expected (timeout, wrong prompt)."""


class NetworkError(ProviderError):
    """Host networking (OVS, veth, VLAN allocation) failed."""


class SettingsError(ArchetypeError, ValueError):
    """The ARCHETYPE_* settings are invalid: input, like a topology."""


class LabBusyError(ArchetypeError):
    """Another deploy/destroy of the same lab holds the lab lock."""

    transient = True
