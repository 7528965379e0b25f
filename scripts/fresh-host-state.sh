#!/usr/bin/env bash
# Bring this host back to a fresh machine's state for what the test suite can rebuild
# cheaply, so that a run on a used machine equals a run on a fresh one (`make test` calls
# it first; CI runs `make test`). A test that passed only because state from an earlier
# run existed (a secret file, a workspace made earlier) then fails here as on a new host.
#
# Removed: the simulated fleet (scripts/sim-fleet.sh), ending its daemons by the pids it
# recorded first (never by name), then its state and run folders, its namespaces, underlay
# links and stale pid files. Kept: docker images, the venv, the VM images, the host's own
# daemons and workspace (tests use their own lab ids and clean up after themselves).
#
# Usage: scripts/fresh-host-state.sh     (as root; idempotent; a few seconds)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIM_STATE=/var/lib/archetype-sim
SIM_RUN=/run/archetype-sim
SIM_LOGS=/var/log/archetype-sim
UL_NS=archsim-ul

log() { printf '[fresh-host-state] %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || { log "ERROR: run as root"; exit 1; }
START=$SECONDS

# 1. The fleet's daemons, by their recorded pids: `sim-fleet.sh down` stops each host's
#    worker, VMs, containers, libvirtd, virtlogd, dockerd and OVS, the Prefect server and
#    Postgres, and unmounts the namespaces. A fleet whose processes died long ago (a
#    killed CI job) has stale pid files only: down checks that each pid lives first.
if [[ -d $SIM_RUN || -d $SIM_STATE ]] || ip netns list 2>/dev/null | grep -qw "$UL_NS"; then
    bash "$REPO/scripts/sim-fleet.sh" down || log "sim-fleet.sh down failed (continuing: what is left goes below)"
fi

# 2. What down may leave when a run was cut short: mounts of the namespace files, the
#    underlay namespace and its host link.
if [[ -d $SIM_RUN ]]; then
    while read -r mountpoint; do
        umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || true
    done < <(awk -v run="$SIM_RUN/" 'index($2, run) == 1 {print $2}' /proc/self/mounts | sort -r)
fi
ip link del archsim0 2>/dev/null || true
ip netns del "$UL_NS" 2>/dev/null || true

# 3. The fleet's state (secrets, Postgres, per-host docker data, workspaces, image cache)
#    and run folders (namespaces, sockets, pid files), and its logs.
rm -rf "$SIM_RUN" "$SIM_STATE" "$SIM_LOGS"

log "simulated fleet state removed ($SIM_STATE, $SIM_RUN, $SIM_LOGS) in $((SECONDS - START)) s"
