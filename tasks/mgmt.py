"""Tasks of the management network and of what runs over it: the lab's network, a node's
config saved on the device."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from providers import get_provider, provider_of
from tasks.retry import retry_if_transient
from topology import Lab, NodeRef
from topology.mgmt import MgmtPlan
from vendors.model import Provider

_RETRYING = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}


@task(name="mgmt-network", task_run_name="mgmt-network/{lab.id}", **_RETRYING)
def ensure_mgmt_network(lab: Lab) -> MgmtPlan:
    """The lab's management network (a docker bridge network that VMs join as well)."""
    plan = get_provider(Provider.DOCKER).ensure_mgmt_network(lab.id, lab.mgmt, len(lab.nodes))  # type: ignore[attr-defined]
    get_run_logger().info("management network %s: %s (bridge %s)", plan.network, plan.ipv4_subnet, plan.bridge)
    return plan


@task(name="save-config", task_run_name="save-config/{node.name}", **{**_RETRYING, "retries": 1})
def save_node_config(lab_id: str, node: NodeRef) -> str:
    output = provider_of(node).save_config(lab_id, node)
    get_run_logger().info("%s: %s", node.name, node.vendor.config_save.command)
    return output


@task(name="saved-configs", task_run_name="saved-configs/{lab.id}", cache_policy=NO_CACHE)
def starting_from_saved_configs(lab: Lab) -> Lab:
    """``deploy --from-configs``: nodes start from their last extracted config."""
    from topology.saved_configs import with_saved_configs

    started, used = with_saved_configs(lab)
    logger = get_run_logger()
    for name in lab.nodes:
        logger.info("%s: %s", name, f"starts from {used[name]}" if name in used else "no saved config: as the topology says")
    return started


@task(name="lab-picture", task_run_name="lab-picture/{lab.id}", cache_policy=NO_CACHE)
def publish_lab_picture(lab: Lab, vlans: dict[str, int]) -> None:
    """The lab's picture in the Prefect UI (a markdown artifact: the SVG and tables)."""
    from prefect.artifacts import create_markdown_artifact

    from lab import names
    from topology.picture import markdown, picture_of

    create_markdown_artifact(
        markdown(picture_of(lab, vlans)),
        key=names.picture_artifact_key(lab.id),
        description=f"Lab {lab.id}: nodes by kind and host, links with interfaces and VLANs",
    )
