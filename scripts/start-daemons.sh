#!/usr/bin/env bash
# Start the host daemons Archetype needs (dockerd, virtlogd + libvirtd, Open vSwitch, and
# the local Prefect server with the command executor) when they do not ANSWER. Idempotent
# and fast when everything is already up.
#
# This machine has no systemd (PID 1 is not an init system), so daemons are started by
# hand. A daemon killed earlier may leave a pid file, a socket or a <defunct> process
# behind: readiness is judged by asking the daemon, never by the existence of a file,
# and stale files are removed before a start.
#
# Usage: scripts/start-daemons.sh [docker|libvirt|ovs|prefect|watch ...]   (default: all five)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

LOG_DIR=/var/log/archetype
mkdir -p "$LOG_DIR" /var/log/libvirt/qemu

log() { printf '[start-daemons] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# pid_live PIDFILE NAME: true when PIDFILE names a live (not zombie) process called NAME.
pid_live() {
    local pidfile=$1 name=$2 pid state comm
    [[ -r $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null) || return 1
    [[ -n $pid && -r /proc/$pid/stat ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] || return 1
    # Field 3 of /proc/PID/stat (after the parenthesised comm) is the state; Z = defunct.
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]]
}

pid_of() { tr -dc '0-9' <"$1" 2>/dev/null || true; }

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.2
    done
}

# kill_stale PIDFILE NAME: a live process that does not answer is killed (it is wedged,
# or half-started by a run that was killed); then the pid file is removed.
kill_stale() {
    local pidfile=$1 name=$2 pid
    if pid_live "$pidfile" "$name"; then
        pid=$(pid_of "$pidfile")
        log "$name (pid $pid) is alive but does not answer: killing it"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 25); do pid_live "$pidfile" "$name" || break; sleep 0.2; done
        if pid_live "$pidfile" "$name"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
    fi
    rm -f "$pidfile"
}

# Run a command fully detached: new session, no inherited stdio (so whoever runs this
# script, e.g. make or CI, never waits on a pipe the daemon keeps open).
spawn() {
    local logfile=$1; shift
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    disown || true
}

# ---------------------------------------------------------------- docker
docker_answers() { timeout 10 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

start_docker() {
    if docker_answers; then log "dockerd answers"; return 0; fi
    # Another run may have started it a moment ago: give a live dockerd a short grace.
    if pid_live /var/run/docker.pid dockerd && wait_for 10 dockerd docker_answers; then
        log "dockerd answers"; return 0
    fi
    kill_stale /var/run/docker.pid dockerd
    rm -f /var/run/docker.sock
    # dockerd's managed containerd: if its pid file is stale, dockerd would try to reuse it.
    if ! pid_live /var/run/docker/containerd/containerd.pid containerd; then
        rm -f /var/run/docker/containerd/containerd.pid
    fi
    log "starting dockerd (log: $LOG_DIR/dockerd.log)"
    spawn "$LOG_DIR/dockerd.log" dockerd --storage-driver=overlay2
    wait_for 60 dockerd docker_answers \
        || die "dockerd did not answer within 60 s; see $LOG_DIR/dockerd.log"
    log "dockerd answers"
}

# ---------------------------------------------------------------- libvirt
# 'virsh version' costs ~4 s here (it probes QEMU); listing domains goes through the QEMU
# driver too and takes ~10 ms.
libvirt_answers() { timeout 10 virsh -c qemu:///system list --all --name >/dev/null 2>&1; }
virtlogd_answers() { timeout 5 virt-admin -c virtlogd:///system srv-list >/dev/null 2>&1; }

fix_kvm_device() {
    # Without udev, /dev/kvm stays root:root 0600, so libvirt (which checks it as the
    # libvirt-qemu user) finds KVM "not usable now" while its cached QEMU probe says KVM
    # was there, declares the cache stale and re-probes QEMU on EVERY lookup: 4-8 s per
    # `virsh version`, getCapabilities() and domain start. Give it the mode Debian's udev
    # rule gives it (root:kvm 0660). Domains still use TCG (type='qemu'): KVM does not work
    # on these hosts, and nothing here turns it on.
    [[ -c /dev/kvm ]] && getent group kvm >/dev/null 2>&1 || return 0
    if [[ $(stat -c '%G %a' /dev/kvm) != "kvm 660" ]]; then
        chgrp kvm /dev/kvm && chmod 0660 /dev/kvm || log "could not set /dev/kvm to root:kvm 0660"
    fi
}

start_libvirt() {
    mkdir -p /var/log/libvirt/qemu /run/libvirt
    fix_kvm_device
    if ! virtlogd_answers; then
        if pid_live /run/virtlogd.pid virtlogd && wait_for 5 virtlogd virtlogd_answers; then
            :
        else
            kill_stale /run/virtlogd.pid virtlogd
            rm -f /run/libvirt/virtlogd-sock /run/libvirt/virtlogd-admin-sock
            log "starting virtlogd"
            spawn "$LOG_DIR/virtlogd.log" virtlogd -d
            wait_for 20 virtlogd virtlogd_answers || die "virtlogd did not answer within 20 s"
        fi
    fi
    log "virtlogd answers"

    if libvirt_answers; then log "libvirtd answers"; return 0; fi
    if pid_live /run/libvirtd.pid libvirtd && wait_for 15 libvirtd libvirt_answers; then
        log "libvirtd answers"; return 0
    fi
    kill_stale /run/libvirtd.pid libvirtd
    rm -f /run/libvirt/libvirt-sock /run/libvirt/libvirt-sock-ro /run/libvirt/libvirt-admin-sock
    log "starting libvirtd (log: $LOG_DIR/libvirtd.log)"
    # Not --listen: that needs TLS certificates. A cold first start takes ~8 s.
    spawn "$LOG_DIR/libvirtd.log" libvirtd -d
    wait_for 60 libvirtd libvirt_answers \
        || die "libvirtd did not answer within 60 s; see $LOG_DIR/libvirtd.log"
    log "libvirtd answers"
}

# ---------------------------------------------------------------- Open vSwitch
OVS_RUN=/run/openvswitch
ovsdb_answers() { timeout 5 ovs-vsctl --timeout=3 show >/dev/null 2>&1; }
vswitchd_answers() { timeout 5 ovs-appctl -T 3 -t ovs-vswitchd version >/dev/null 2>&1; }

start_ovs() {
    if ovsdb_answers && vswitchd_answers; then log "Open vSwitch answers"; return 0; fi
    mkdir -p "$OVS_RUN"
    # ovs-ctl trusts a pid file whose process exists (a <defunct> one included): clear
    # the pid files and control sockets of whichever daemon does not answer.
    if ! ovsdb_answers; then
        kill_stale "$OVS_RUN/ovsdb-server.pid" ovsdb-server
        rm -f "$OVS_RUN"/ovsdb-server.*.ctl "$OVS_RUN/db.sock"
    fi
    if ! vswitchd_answers; then
        kill_stale "$OVS_RUN/ovs-vswitchd.pid" ovs-vswitchd
        rm -f "$OVS_RUN"/ovs-vswitchd.*.ctl
    fi
    log "starting Open vSwitch (log: $LOG_DIR/ovs-ctl.log)"
    # There is no kernel datapath here: bridges must use datapath_type=netdev. The
    # ulimit / kernel-module warnings ovs-ctl prints are harmless.
    setsid /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random \
        </dev/null >>"$LOG_DIR/ovs-ctl.log" 2>&1 \
        || log "ovs-ctl start returned non-zero (checking whether OVS answers anyway)"
    wait_for 30 ovsdb ovsdb_answers || die "ovsdb-server did not answer; see $LOG_DIR/ovs-ctl.log"
    wait_for 30 ovs-vswitchd vswitchd_answers \
        || die "ovs-vswitchd did not answer; see $LOG_DIR/ovs-ctl.log and /var/log/openvswitch/"
    log "Open vSwitch answers"
}

# ---------------------------------------------------------------- Prefect
# The local Prefect server and the command executor (archetype/executor.py), started as a
# user's first flow-backed command would start them, so that this first command pays no
# server start and no imports (the executor starts the server while it imports). With the
# environment of a user's command: no PREFECT_ variable of this shell (make's, CI's, a
# fleet's), so that the defaults of archetype/handoff.py apply as they do for the user's
# `archetype deploy`, which the executor then serves. It stays, as dockerd does
# (ARCHETYPE_EXECUTOR_IDLE_SECONDS=0); it ends when the code it runs changes (the next
# command starts a fresh one) or with `archetype server stop`.
start_prefect() {
    # The interpreter the `archetype` entry point runs: the executor serves only callers of
    # its own checkout and interpreter.
    local python unset=() var word
    python=$(sed -n '1s/^#!//p' "$REPO/.venv/bin/archetype" 2>/dev/null || true)
    if [[ -z $python || ! -x $python ]]; then
        log "no venv ($REPO/.venv): the local Prefect server is left to the first command"
        return 0
    fi
    for var in $(compgen -e); do
        [[ $var == PREFECT_* || $var == ARCHETYPE_SERVER_OWNER ]] && unset+=(-u "$var")
    done
    # Its stdout says `ready [SERVER]` once its socket listens, then closes; a second start
    # finds the running one and says `ready` too. 9>&-: never the setup's lock.
    word=$(cd / && env "${unset[@]}" ARCHETYPE_EXECUTOR_IDLE_SECONDS=0 setsid --fork "$python" -m archetype.executor \
        </dev/null 2>/dev/null 9>&- | head -n1) || true
    [[ $word == ready* ]] || die "the command executor did not start; see ${ARCHETYPE_WORKSPACE:-/var/lib/archetype}/prefect/executor.log"
    # The server may have died under a running executor: a command would start it; do it now.
    env "${unset[@]}" "$python" -c 'from archetype.handoff import apply_defaults; import os; apply_defaults(os.environ)
from deployments import local_server; print(local_server.ensure().ui)' 9>&- >/dev/null \
        || die "the local Prefect server did not start; see ${ARCHETYPE_WORKSPACE:-/var/lib/archetype}/prefect/server.log"
    log "local Prefect server and command executor answer"
}

# ---------------------------------------------------------------- carrier watcher
# flows/carrier_watch.py: a node stopped outside any flow (docker kill, QEMU killed) takes its
# peers' carrier, and gives it back when it starts. One idle process on docker's and
# libvirt's event streams, with no PREFECT_ variable: this host only (a fleet host's watcher
# is started by scripts/sim-fleet.sh, with the fleet's server). After docker and libvirt.
WATCH_PID=/run/archetype/carrier-watch.pid
watch_alive() {
    local pid; pid=$( [[ -r $WATCH_PID ]] && pid_of "$WATCH_PID" )
    [[ -n $pid ]] && grep -qa deployments.carrier_watch "/proc/$pid/cmdline" 2>/dev/null \
        && [[ $(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}
start_watch() {
    local python unset=() var
    python=$(sed -n '1s/^#!//p' "$REPO/.venv/bin/archetype" 2>/dev/null || true)
    [[ -n $python && -x $python ]] || { log "no venv ($REPO/.venv): no carrier watcher"; return 0; }
    if watch_alive; then  # kept, unless the code it runs changed since it started
        [[ -z $(find "$REPO"/{providers,tasks,flows,lab,topology,vendors,deployments} -name '*.py' -newer "$WATCH_PID" \
            -print -quit 2>/dev/null) ]] && return 0
        kill "$(pid_of "$WATCH_PID")" 2>/dev/null || true
        wait_for 10 carrier-watcher-exit bash -c "! kill -0 $(pid_of "$WATCH_PID") 2>/dev/null"
        log "carrier watcher restarted: its code changed"
    fi
    for var in $(compgen -e); do
        [[ $var == PREFECT_* ]] && unset+=(-u "$var")
    done
    rm -f "$WATCH_PID"
    (cd "$REPO" && env "${unset[@]}" setsid --fork "$python" -m deployments.carrier_watch --pidfile "$WATCH_PID" \
        </dev/null >>"$LOG_DIR/carrier-watch.log" 2>&1 9>&-)
    wait_for 10 carrier-watcher watch_alive || die "the carrier watcher did not start; see $LOG_DIR/carrier-watch.log"
    log "carrier watcher runs (pid $(pid_of "$WATCH_PID"))"
}

main() {
    [[ $(id -u) -eq 0 ]] || die "run as root"
    local what=("$@")
    ((${#what[@]})) || what=(docker libvirt ovs prefect watch)
    for w in "${what[@]}"; do
        case $w in
            docker) start_docker ;;
            libvirt) start_libvirt ;;
            ovs) start_ovs ;;
            prefect) start_prefect ;;
            watch) start_watch ;;
            *) die "unknown daemon '$w' (docker, libvirt, ovs, prefect, watch)" ;;
        esac
    done
}

main "$@"
