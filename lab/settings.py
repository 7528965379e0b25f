"""Settings: one pydantic-settings model, environment prefix ``ARCHETYPE_``."""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lab.errors import SettingsError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARCHETYPE_", env_nested_delimiter="__")

    workspace: Path = Field(Path("/var/lib/archetype"), description="Root of every lab's files")
    image_dir: Path = Field(Path("/var/lib/archetype/images"), description="VM images (disks, kernels)")
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Extra folders that startup-config and bind paths may point into, besides the "
        "topology file's folder or the lab's files folder (never /, the project's code or the workspace's internals)",
    )

    ovs_bridge: str = "arch-ovs"
    ovs_datapath_type: str = Field("netdev", description="'netdev' (userspace) or 'system' (kernel)")
    vlan_min: int = Field(100, ge=1, le=4094)
    vlan_max: int = Field(4000, ge=1, le=4094)
    link_mtu: int = Field(1500, ge=576, le=9500)

    mgmt_ipv4_pool: str = Field(
        "10.213.0.0/16",
        description="Where a lab's management subnet is taken from when its topology gives none "
        "(a free /24 or larger per lab, never one used by another docker network or a host route)",
    )

    host_name: str = Field(
        default_factory=socket.gethostname,
        description="This lab host's name: the name of the deployments `archetype serve` makes",
    )
    # Multi-host (a fleet sharing one Prefect server)
    data_address: str | None = Field(None, description="This host's data-plane (underlay) address: VXLAN tunnels end here")
    host_access: list[str] = Field(
        default_factory=list,
        description="argv prefix that runs the archetype CLI on this host from elsewhere (connect, exec); "
        "empty: ssh root@<data address> archetype",
    )
    docker_fleet_url: str | None = Field(
        None,
        description="This host's dockerd as the fleet's other hosts reach it (docker -H), for inventories' "
        "docker connection to its containers; empty: ssh://root@<data address>",
    )
    host_memory_mb: int = Field(
        0, ge=0, description="Memory this host offers to labs, MiB (placement); 0: what the kernel says is available"
    )
    coordinator_routes: bool = Field(
        True,
        description="This process's fleet runs (deploy, move, drain, evacuation, destroy) keep the coordinator "
                    "host's routes to the labs' management addresses, here. A fleet host's worker turns it off "
                    "for its runs: they run on a lab host, which reaches its own nodes on its bridge",
    )
    vxlan_port: int = Field(4789, ge=1, le=65535, description="UDP port of cross-host VXLAN tunnels")
    runner_poll_seconds: float = Field(
        2.0, gt=0,
        description="Seconds between two asks of a served runner (archetype serve, a fleet worker) for scheduled "
                    "runs: what a run started from the UI, the REST API or a fleet's coordinator waits at most "
                    "before its process starts (Prefect's default is 10); one API call per ask",
    )
    step_poll_seconds: float = Field(
        0.25, gt=0,
        description="Seconds between two asks for a short per-host step (a move's migrate-step): by the host's "
                    "worker, which runs it in its own process (deployments/step_runner.py), and by the coordinator "
                    "waiting for a step's end (its first 10 s, then every 1 s); one API call per ask",
    )
    host_facts_interval: float = Field(15.0, description="Seconds between two publications of a host's facts")
    host_alive_seconds: float = Field(60.0, description="A host whose facts are older than this is not alive")
    host_lost_seconds: float = Field(
        180.0, gt=0,
        description="A host whose worker has not published its facts for this long is lost: a deploy of its labs "
                    "(or `archetype hosts evacuate`) re-places its nodes on live hosts",
    )
    host_pickup_timeout: float = Field(60.0, description="Seconds a host has to start its step of a multi-host run")
    host_step_timeout: float = Field(1800.0, description="Seconds a host has to finish its step of a multi-host run")
    server_port: int = Field(
        4200, ge=1, le=65535, description="Port of the local Prefect server the CLI and `archetype serve` share"
    )
    executor_idle_seconds: float = Field(
        3600.0, ge=0, description="The command executor ends after this long without a command (0: never)"
    )
    docker_url: str = "unix:///var/run/docker.sock"
    libvirt_uri: str = "qemu:///system"
    domain_type: str = Field("qemu", description="'qemu' (TCG) or 'kvm'")
    vm_cpu_model: str = Field(
        "qemu64",
        description="CPU model of every VM: a named model migrates between hosts with the same QEMU "
        "('max' and 'host-passthrough' do not); 'host-model'/'host-passthrough' are libvirt's modes",
    )
    migrate_timeout: float = Field(600.0, description="Seconds a live migration may take before it is aborted")
    migrate_bandwidth_mib: int | None = Field(None, ge=1, description="Cap of a live migration's copy, MiB/s (none: no cap)")
    host_memory_reserve_mb: int = Field(
        512, ge=0, description="Memory a host keeps for itself: a node does not migrate in when it would go below"
    )

    max_workers: int | None = Field(
        None, ge=1,
        description="Engine calls (container create/start/exec, readiness probes, domain define) at once per "
                    "engine on this host, like containerlab's --max-workers; none: 4 per CPU (providers.limits)",
    )
    ready_timeout: float = Field(300.0, description="Default readiness timeout, seconds")
    command_timeout: float = Field(30.0, description="Default timeout of one node command, seconds")
    console_timeout: float = Field(30.0, description="Default timeout of one console wait, seconds")
    lab_lock_timeout: float = Field(600.0, description="How long a run waits for another run of the same lab")

    # Images (fnmatch patterns) that get a kind's broad capabilities besides its catalog
    # image: ARCHETYPE_TRUSTED_IMAGES__ceos='["registry.lab/ceos:*"]'
    trusted_images: dict[str, list[str]] = Field(default_factory=dict)

    # Console logins override the catalog's defaults per kind: ARCHETYPE_CONSOLE_PASSWORD__cisco_iosv=...
    console_username: dict[str, str] = Field(default_factory=dict)
    console_password: dict[str, SecretStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _vlan_range_is_ordered(self) -> Settings:
        if self.vlan_min > self.vlan_max:
            raise ValueError(f"vlan_min ({self.vlan_min}) is above vlan_max ({self.vlan_max})")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call ``get_settings.cache_clear()`` after changing env)."""
    try:
        return Settings()
    except ValidationError as err:
        problems = "; ".join(
            f"ARCHETYPE_{'__'.join(map(str, e['loc'])).upper()}: {e['msg']}" if e["loc"] else e["msg"]
            for e in err.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
