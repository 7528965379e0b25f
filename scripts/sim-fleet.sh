#!/usr/bin/env bash
# A simulated fleet of lab hosts on this one machine (tests and demos of multi-host labs).
#
#   scripts/sim-fleet.sh up [N]    start hosts sim-1..sim-N (default 2), the underlay, Postgres
#                                  and a Prefect server with API auth; print the CLI's env
#   scripts/sim-fleet.sh down      end every daemon it started (by recorded pid) and remove it all
#   scripts/sim-fleet.sh env       print the env (PREFECT_API_URL, auth) of a running fleet
#   scripts/sim-fleet.sh worker-stop HOST | worker-start HOST    (fault tests)
#   scripts/sim-fleet.sh host-stop HOST | host-start HOST    a host dies (worker killed, nodes and
#                                  daemons stopped, its state kept) and comes back (a lost host)
#
# Each host lives in its own network + mount + UTS namespaces, held open by bind mounts
# under /run/archetype-sim/HOST/ns (entered with nsenter, never `ip netns exec`, which makes
# a new mount namespace per call). Inside, per-host folders are bound over the daemons'
# default paths (/run/libvirt, /run/openvswitch, /var/lib/archetype, ...), so the code's
# defaults stay unchanged; only dockerd's socket is elsewhere (DOCKER_HOST).
# The underlay is a Linux bridge in a namespace of its own (archsim-ul: its iptables are
# empty, so the host's FORWARD DROP policy never sees the tunnels), a veth per host, and a
# veth to the host (10.213.0.254) where the Prefect server listens. Addresses: 10.213.0.0/24,
# inside these namespaces only. Underlay MTU 1550: a 1500-byte link fits a VXLAN tunnel.
# Idempotent: `up` twice starts only what does not answer. Other labs on the host are
# untouched: the fleet has its own daemons, bridges and workspace.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${ARCHETYPE_PYTHON:-$REPO/.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=/work/main/.venv/bin/python
STATE=/var/lib/archetype-sim          # kept across up/down: docker image cache
RUN=/run/archetype-sim                # runtime: namespaces, sockets, pids
LOGS=/var/log/archetype-sim
SUBNET=10.213.0
HOST_ADDR=$SUBNET.254
UL_NS=archsim-ul
UNDERLAY_MTU=${SIM_UNDERLAY_MTU:-1550}
API_PORT=${SIM_API_PORT:-4290}
PG_PORT=${SIM_PG_PORT:-5439}
PG_BIN=/usr/lib/postgresql/15/bin
API_URL=http://$HOST_ADDR:$API_PORT/api
IMAGES=(archetype/frr:latest archetype/linux:latest)

log() { printf '[sim-fleet] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

wait_for() {  # wait_for SECONDS CMD...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.3
    done
}

pid_alive() {  # pid_alive PIDFILE: a live, non-zombie process
    local pid state
    [[ -r $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid && -r /proc/$pid/stat ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]]
}

stop_pid() {  # stop_pid PIDFILE [SIGNAL]: TERM (or SIGNAL), then KILL after 10 s
    local pidfile=$1 sig=${2:-TERM} pid
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(tr -dc '0-9' <"$pidfile")
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 50); do pid_alive "$pidfile" || break; sleep 0.2; done
    pid_alive "$pidfile" && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

# ------------------------------------------------------------------ per host helpers
hdir() { echo "$STATE/hosts/$1"; }
rdir() { echo "$RUN/$1"; }
addr_of() { echo "$SUBNET.${1#sim-}"; }
in_host() {  # in_host HOST CMD...: run CMD inside the host's namespaces
    local ns; ns=$(rdir "$1")/ns; shift
    nsenter --net="$ns/net" --mount="$ns/mnt" --uts="$ns/uts" -- "$@"
}
host_env() {  # the environment of everything Archetype runs on HOST, one VAR=value a line
    local h=$1 ns; ns=$(rdir "$1")/ns
    cat <<EOF
DOCKER_HOST=unix:///run/docker/docker.sock
ARCHETYPE_DOCKER_URL=unix:///run/docker/docker.sock
ARCHETYPE_DOCKER_FLEET_URL=unix://$(rdir "$h")/docker/docker.sock
ARCHETYPE_HOST_NAME=$h
ARCHETYPE_DATA_ADDRESS=$(addr_of "$h")
ARCHETYPE_HOST_ACCESS=["nsenter","--net=$ns/net","--mount=$ns/mnt","--uts=$ns/uts","--","env","DOCKER_HOST=unix:///run/docker/docker.sock","ARCHETYPE_DOCKER_URL=unix:///run/docker/docker.sock","PYTHONPATH=$REPO","PREFECT_API_URL=","$PYTHON","-c","from archetype.cli import main; main()"]
ARCHETYPE_CLEANUP_CRON=0 0 1 1 *
ARCHETYPE_HOST_MEMORY_MB=${SIM_HOST_MEMORY_MB:-8192}
PREFECT_HOME=/var/lib/archetype/prefect
PREFECT_API_URL=$API_URL
PREFECT_API_AUTH_STRING=$(cat "$STATE/api-auth")
PREFECT_SERVER_ANALYTICS_ENABLED=false
DO_NOT_TRACK=1
PYTHONPATH=$REPO
EOF
}
spawn_in() {  # spawn_in HOST LOGFILE PIDFILE CMD...: a detached process in the host, pid recorded
    local h=$1 logfile=$2 pidfile=$3; shift 3
    setsid nsenter --net="$(rdir "$h")/ns/net" --mount="$(rdir "$h")/ns/mnt" --uts="$(rdir "$h")/ns/uts" -- \
        "$@" </dev/null >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
    disown || true
}

# ------------------------------------------------------------------ underlay
underlay_up() {
    mkdir -p "$RUN" "$STATE" "$LOGS"
    if ! ip netns list | grep -qw "$UL_NS"; then
        ip netns add "$UL_NS"
    fi
    ip -n "$UL_NS" link show ul0 >/dev/null 2>&1 || {
        ip -n "$UL_NS" link add ul0 type bridge
        ip -n "$UL_NS" link set ul0 mtu "$UNDERLAY_MTU" up
        ip -n "$UL_NS" link set lo up
    }
    if ! ip link show archsim0 >/dev/null 2>&1; then
        ip link add archsim0 mtu "$UNDERLAY_MTU" type veth peer name ul-host mtu "$UNDERLAY_MTU" netns "$UL_NS"
        ip -n "$UL_NS" link set ul-host master ul0 up
        ip addr add "$HOST_ADDR/24" dev archsim0
        ip link set archsim0 up
    fi
}

# ------------------------------------------------------------------ namespaces and binds
BINDS=(  # per-host folder (under the host's state dir or run dir) -> the path it covers
    "S:workspace:/var/lib/archetype"
    "S:docker:/var/lib/docker"
    "S:libvirt-lib:/var/lib/libvirt"
    "S:libvirt-etc:/etc/libvirt"
    "S:libvirt-log:/var/log/libvirt"
    "S:libvirt-cache:/var/cache/libvirt"
    "S:ovs-etc:/etc/openvswitch"
    "S:ovs-lib:/var/lib/openvswitch"
    "S:ovs-log:/var/log/openvswitch"
    "R:libvirt:/run/libvirt"
    "R:openvswitch:/run/openvswitch"
    "R:docker:/run/docker"
)

namespaces_up() {
    local h=$1 ns; ns=$(rdir "$h")/ns
    mkdir -p "$ns"
    if in_host "$h" true 2>/dev/null; then return 0; fi
    mountpoint -q "$ns" || { mount --bind "$ns" "$ns"; mount --make-private "$ns"; }
    touch "$ns/net" "$ns/mnt" "$ns/uts"
    unshare --net="$ns/net" --mount="$ns/mnt" --uts="$ns/uts" --propagation private true
    local s r
    s=$(hdir "$h"); r=$(rdir "$h")
    mkdir -p "$s" "$r"
    if [[ ! -f $s/libvirt-etc/libvirtd.conf ]]; then
        # the daemons' configuration only: not the host's domain and network definitions
        mkdir -p "$s/libvirt-etc" && find /etc/libvirt -maxdepth 1 -type f -exec cp -a {} "$s/libvirt-etc/" \;
    fi
    configure_libvirt "$h"
    mkdir -p "$s/workspace/images" "$s/libvirt-log/qemu"
    chmod 0711 "$s/workspace" "$s/workspace/images"  # QEMU (libvirt-qemu) reaches VM files through them
    local spec kind sub target script="set -e; hostname $h; ip link set lo up"
    for spec in "${BINDS[@]}"; do
        IFS=: read -r kind sub target <<<"$spec"
        local src; if [[ $kind == S ]]; then src=$s/$sub; else src=$r/$sub; fi
        mkdir -p "$src" "$target"
        script+="; mount --bind $src $target"
    done
    # sysfs of the host's own netns for what reads /sys/class/net (cgroups stay as they are)
    mkdir -p "$r/sys"
    script+="; mount -t sysfs sysfs $r/sys; mount --bind $r/sys/class/net /sys/class/net"
    script+="; mount --bind $r/sys/devices/virtual/net /sys/devices/virtual/net"
    in_host "$h" sh -c "$script"
    # underlay leg
    ip link add "ul-$h" mtu "$UNDERLAY_MTU" type veth peer name underlay0 mtu "$UNDERLAY_MTU" netns "$ns/net"
    ip link set "ul-$h" netns "$UL_NS"
    ip -n "$UL_NS" link set "ul-$h" master ul0 up
    in_host "$h" ip addr add "$(addr_of "$h")/24" dev underlay0
    in_host "$h" ip link set underlay0 up
}

configure_libvirt() {  # own host_uuid; TCP listening on the underlay address (migration, issue 12)
    local h=$1 etc addr uuid
    etc=$(hdir "$h")/libvirt-etc; addr=$(addr_of "$h")
    [[ -f $(hdir "$h")/host-uuid ]] || cat /proc/sys/kernel/random/uuid >"$(hdir "$h")/host-uuid"
    uuid=$(cat "$(hdir "$h")/host-uuid")
    sed -i '/^# archetype-sim/,$d' "$etc/libvirtd.conf" "$etc/qemu.conf"
    cat >>"$etc/libvirtd.conf" <<EOF
# archetype-sim
host_uuid = "$uuid"
listen_tls = 0
listen_tcp = 1
auth_tcp = "none"
listen_addr = "$addr"
EOF
    cat >>"$etc/qemu.conf" <<EOF
# archetype-sim
security_driver = "none"
# The simulated hosts share the image files (kernel, initrd): libvirt's remembered owner
# (an xattr on the file) made a second host refuse them ("Setting different DAC user or
# group ... already in use").
remember_owner = 0
migration_address = "$addr"
EOF
}

# ------------------------------------------------------------------ per-host daemons
docker_answers() { in_host "$1" env DOCKER_HOST=unix:///run/docker/docker.sock timeout 10 docker info >/dev/null 2>&1; }
libvirt_answers() { in_host "$1" timeout 10 virsh -c qemu:///system list --name >/dev/null 2>&1; }
ovs_answers() { in_host "$1" timeout 5 ovs-vsctl --timeout=3 show >/dev/null 2>&1 \
    && in_host "$1" timeout 5 ovs-appctl -T 3 -t ovs-vswitchd version >/dev/null 2>&1; }

daemons_up() {
    local h=$1 r l; r=$(rdir "$h"); l=$LOGS/$h; mkdir -p "$l" "$r/pids"
    if ! docker_answers "$h"; then
        stop_pid "$r/pids/dockerd"
        rm -f "$r/docker/docker.sock" "$r/docker/dockerd.pid"
        spawn_in "$h" "$l/dockerd.log" "$r/pids/dockerd" dockerd --storage-driver=overlay2 \
            --data-root /var/lib/docker --exec-root /run/docker/exec --pidfile /run/docker/dockerd.pid \
            -H unix:///run/docker/docker.sock --bridge=none --iptables=false --ip-masq=false
        wait_for 60 docker_answers "$h" || die "dockerd of $h did not answer; see $l/dockerd.log"
    fi
    if ! libvirt_answers "$h"; then
        stop_pid "$r/pids/libvirtd"; stop_pid "$r/pids/virtlogd"
        rm -f "$r"/libvirt/*.pid "$r"/libvirt/*sock*
        spawn_in "$h" "$l/virtlogd.log" "$r/pids/virtlogd" virtlogd -p /run/libvirt/virtlogd.pid
        spawn_in "$h" "$l/libvirtd.log" "$r/pids/libvirtd" libvirtd --listen -p /run/libvirt/libvirtd.pid
        wait_for 90 libvirt_answers "$h" || die "libvirtd of $h did not answer; see $l/libvirtd.log"
    fi
    if ! ovs_answers "$h"; then
        rm -f "$r"/openvswitch/*.pid "$r"/openvswitch/*.ctl "$r/openvswitch/db.sock"
        in_host "$h" /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random \
            </dev/null >>"$l/ovs-ctl.log" 2>&1 || true
        wait_for 30 ovs_answers "$h" || die "Open vSwitch of $h did not answer; see $l/ovs-ctl.log"
        cp "$r/openvswitch/ovsdb-server.pid" "$r/pids/ovsdb-server"
        cp "$r/openvswitch/ovs-vswitchd.pid" "$r/pids/ovs-vswitchd"
    fi
}

images_up() {  # the lab images (docker save | load, cached) and the VM kernels
    local h=$1 cache missing=()
    for image in "${IMAGES[@]}"; do  # missing, or not the host's build of it (save | load keeps the id)
        [[ $(in_host "$h" env DOCKER_HOST=unix:///run/docker/docker.sock docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) \
            == $(docker image inspect --format '{{.Id}}' "$image") ]] || missing+=("$image")
    done
    if ((${#missing[@]})); then
        cache=$STATE/cache/images-$(docker image inspect --format '{{.Id}}' "${IMAGES[@]}" | sha1sum | cut -c1-12).tar
        if [[ ! -s $cache ]]; then
            mkdir -p "$STATE/cache"; rm -f "$STATE"/cache/images-*.tar
            docker save -o "$cache.tmp" "${IMAGES[@]}" && mv "$cache.tmp" "$cache"
        fi
        in_host "$h" env DOCKER_HOST=unix:///run/docker/docker.sock docker load -q -i "$cache" >/dev/null
    fi
    local src=/var/lib/archetype/images dst; dst=$(hdir "$h")/workspace/images
    if [[ -d $src ]] && ! diff -rq "$src" "$dst" >/dev/null 2>&1; then
        cp -a "$src/." "$dst/"
    fi
}

worker_start() {  # the host's worker, and beside it its carrier watcher (flows/carrier_watch.py)
    local h=$1 r l; r=$(rdir "$h"); l=$LOGS/$h; mkdir -p "$l" "$r/pids"
    local vars; mapfile -t vars < <(host_env "$h")
    pid_alive "$r/pids/watcher" \
        || spawn_in "$h" "$l/watcher.log" "$r/pids/watcher" env "${vars[@]}" "$PYTHON" -m deployments.carrier_watch
    pid_alive "$r/pids/worker" && return 0
    spawn_in "$h" "$l/worker.log" "$r/pids/worker" env "${vars[@]}" "$PYTHON" -m deployments.fleet_worker
}

worker_stop() {  # SIGKILL to the worker's whole process group (its flow runs included), and its watcher
    local h=$1 pidfile pid; pidfile=$(rdir "$h")/pids/worker
    stop_pid "$(rdir "$h")/pids/watcher" KILL
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(tr -dc '0-9' <"$pidfile")
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 25); do pid_alive "$pidfile" || break; sleep 0.2; done
    rm -f "$pidfile"
}

host_stop() {  # a host that dies: its worker killed, nothing of its labs running, its daemons stopped;
    # its state stays (containers and domains defined, OVS database, workspace), as a machine's disk does
    local h=$1 r; r=$(rdir "$h")
    worker_stop "$h"
    if docker_answers "$h"; then
        local ids; ids=$(in_host "$h" env DOCKER_HOST=unix:///run/docker/docker.sock docker ps -q 2>/dev/null || true)
        [[ -n $ids ]] && in_host "$h" env DOCKER_HOST=unix:///run/docker/docker.sock docker kill $ids >/dev/null 2>&1 || true
    fi
    if libvirt_answers "$h"; then
        for dom in $(in_host "$h" timeout 20 virsh -c qemu:///system list --name 2>/dev/null | grep -v '^$'); do
            in_host "$h" timeout 20 virsh -c qemu:///system destroy "$dom" >/dev/null 2>&1 || true
        done
    fi
    stop_pid "$r/pids/libvirtd"; stop_pid "$r/pids/virtlogd"; stop_pid "$r/pids/dockerd"
    stop_pid "$r/pids/ovs-vswitchd"; stop_pid "$r/pids/ovsdb-server"
}

host_start() {  # the host back: its daemons, then its worker
    [[ -e $(rdir "$1")/ns/net ]] || die "no host $1 (scripts/sim-fleet.sh up)"
    daemons_up "$1"
    worker_start "$1"
}

# ------------------------------------------------------------------ control plane
pg_answers() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
api_answers() { curl -sf -o /dev/null -u "$(cat "$STATE/api-auth")" "$API_URL/health" \
    || curl -sf -o /dev/null -H "Authorization: Basic $(base64 -w0 <"$STATE/api-auth")" "$API_URL/health"; }

control_plane_up() {
    local pgdata=$STATE/postgres secret
    # ( ... ): a subshell, so that the umask stays with the secrets. A { ...; } group kept it
    # for the rest of the script, and every simulated host's workspace came out 0700.
    [[ -s $STATE/api-auth ]] || ( umask 077; printf 'archetype:%s' "$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" >"$STATE/api-auth" )
    [[ -s $STATE/pg-password ]] || ( umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$STATE/pg-password" )
    chmod 600 "$STATE/api-auth" "$STATE/pg-password"
    secret=$(cat "$STATE/pg-password")
    if ! pg_answers; then
        mkdir -p "$RUN/pg"; chown postgres "$RUN/pg"
        if [[ ! -s $pgdata/PG_VERSION ]]; then
            mkdir -p "$pgdata"; chown postgres "$pgdata"; chmod 700 "$pgdata"
            local pw; pw=$(mktemp); printf '%s\n' "$secret" >"$pw"; chown postgres "$pw"
            runuser -u postgres -- "$PG_BIN/initdb" -D "$pgdata" -U prefect --pwfile="$pw" \
                --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$LOGS/initdb.log" 2>&1
            rm -f "$pw"
        fi
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pgdata" -l "$RUN/pg/postgres.log" -w \
            -o "-p $PG_PORT -k $RUN/pg -c listen_addresses=127.0.0.1" start >/dev/null
        wait_for 30 pg_answers || die "Postgres did not answer; see $RUN/pg/postgres.log"
        PGPASSWORD=$secret "$PG_BIN/../bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U prefect -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname='prefect'" | grep -q 1 \
            || PGPASSWORD=$secret "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U prefect prefect
    fi
    if ! api_answers; then
        stop_pid "$RUN/server.pid"
        mkdir -p "$STATE/prefect-server"
        PREFECT_HOME=$STATE/prefect-server \
        PREFECT_SERVER_DATABASE_CONNECTION_URL="postgresql+asyncpg://prefect:$secret@127.0.0.1:$PG_PORT/prefect" \
        PREFECT_SERVER_API_AUTH_STRING=$(cat "$STATE/api-auth") \
        PREFECT_SERVER_UI_API_URL=$API_URL PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 \
            setsid "$(dirname "$PYTHON")/prefect" server start --host "$HOST_ADDR" --port "$API_PORT" \
            </dev/null >>"$LOGS/server.log" 2>&1 &
        echo $! >"$RUN/server.pid"; disown || true
        wait_for 120 api_answers || die "the Prefect server did not answer; see $LOGS/server.log"
    fi
}

print_env() {
    echo "export PREFECT_API_URL=$API_URL"
    echo "export PREFECT_API_AUTH_STRING='$(cat "$STATE/api-auth")'"
    echo "export ARCHETYPE_FLEET=1"
}

hosts_running() { local d; for d in "$RUN"/sim-*; do [[ -d $d ]] && basename "$d"; done; }

up() {
    local n=${1:-2} h
    [[ $(id -u) -eq 0 ]] || die "run as root"
    [[ $n =~ ^[1-9]$ ]] || die "HOSTS must be 1..9"
    underlay_up
    control_plane_up
    for i in $(seq "$n"); do
        h=sim-$i
        namespaces_up "$h"
        daemons_up "$h"
        images_up "$h"
        worker_start "$h"
    done
    log "fleet up: $(seq -s ' ' -f 'sim-%g' "$n"); server $API_URL"
    print_env
}

down() {
    local h r
    for h in $(hosts_running); do
        r=$(rdir "$h")
        worker_stop "$h"
        if [[ -e $r/ns/mnt ]] && in_host "$h" true 2>/dev/null; then
            # VMs outlive libvirtd and containers outlive nothing we want: remove them first
            for dom in $(in_host "$h" timeout 20 virsh -c qemu:///system list --all --name 2>/dev/null | grep -v '^$'); do
                in_host "$h" timeout 20 virsh -c qemu:///system destroy "$dom" >/dev/null 2>&1 || true
                in_host "$h" timeout 20 virsh -c qemu:///system undefine "$dom" --nvram >/dev/null 2>&1 || true
            done
            local ids; ids=$(in_host "$h" env DOCKER_HOST=unix:///run/docker/docker.sock timeout 20 docker ps -aq 2>/dev/null || true)
            [[ -n $ids ]] && in_host "$h" env DOCKER_HOST=unix:///run/docker/docker.sock docker rm -f $ids >/dev/null 2>&1 || true
        fi
        stop_pid "$r/pids/libvirtd"; stop_pid "$r/pids/virtlogd"; stop_pid "$r/pids/dockerd"
        stop_pid "$r/pids/ovs-vswitchd"; stop_pid "$r/pids/ovsdb-server"
        if [[ -d $r/ns ]]; then
            umount "$r/ns/net" "$r/ns/mnt" "$r/ns/uts" 2>/dev/null || true
            umount "$r/ns" 2>/dev/null || true
        fi
        ip -n "$UL_NS" link del "ul-$h" 2>/dev/null || true
        rm -rf "$r"
        # the host's labs and records go; its docker data-root (the image cache) stays
        local s; s=$(hdir "$h")
        find "$s/workspace" -mindepth 1 -maxdepth 1 ! -name images -exec rm -rf {} + 2>/dev/null || true
        rm -rf "$s/libvirt-lib" "$s/libvirt-log" "$s/libvirt-cache" "$s/ovs-etc" "$s/ovs-lib" "$s/ovs-log"
    done
    stop_pid "$RUN/server.pid" INT
    if pg_answers; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STATE/postgres" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$STATE/postgres" "$STATE/prefect-server"
    ip link del archsim0 2>/dev/null || true
    ip netns del "$UL_NS" 2>/dev/null || true
    rm -rf "$RUN"
    log "fleet down"
}

case ${1:-} in
    up) up "${2:-2}" ;;
    down) down ;;
    env) print_env ;;
    worker-stop) worker_stop "${2:?host}" ;;
    worker-start) worker_start "${2:?host}" ;;
    host-stop) host_stop "${2:?host}" ;;
    host-start) host_start "${2:?host}" ;;
    *) die "usage: $0 up [N] | down | env | worker-stop HOST | worker-start HOST | host-stop HOST | host-start HOST" ;;
esac
