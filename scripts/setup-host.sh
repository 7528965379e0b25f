#!/usr/bin/env bash
# Prepare this host for Archetype, idempotently: Debian packages, the Python venv,
# the daemons (dockerd, virtlogd + libvirtd, Open vSwitch), the local images and the
# workspace. Runs as root on Debian 12 without systemd and without internet (only the
# Debian and PyPI mirrors). A re-run when everything is in place takes a few seconds.
#
# Usage: scripts/setup-host.sh [--venv-only | --permissions-only]
#        --venv-only: only create/refresh .venv (what `make test-unit` and `make lint` need)
#        --permissions-only: only make the workspace root-only (fixes an existing host)
# Env:   ARCHETYPE_WORKSPACE (default /var/lib/archetype)
#        ARCHETYPE_SKIP_IMAGES=1  skip the image builds (daemons and venv only)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKSPACE=${ARCHETYPE_WORKSPACE:-/var/lib/archetype}
CACHE=/var/cache/archetype
VENV=$REPO/.venv
START=$(date +%s.%N)

log() { printf '[setup-host] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
step_start() { STEP_T0=$(date +%s.%N); }
step_done() { log "$1 ($(elapsed "$STEP_T0") s)"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts daemons)"

# One setup at a time on a host (two concurrent image builds would race on the tags).
mkdir -p /run/lock
exec 9>/run/lock/archetype-setup-host.lock
flock 9

# ---------------------------------------------------------------- packages
APT_PACKAGES=(
    # containers
    docker.io iptables
    # VMs (libvirt-dev, pkg-config, gcc and python3-dev build libvirt-python)
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
    pkg-config gcc python3-dev qemu-system-x86 qemu-utils
    # UEFI firmware for the kinds that boot only with it (cisco_n9kv: vm.firmware uefi)
    ovmf
    # networking
    openvswitch-switch uuid-runtime iproute2 ethtool
    # packet capture (`archetype capture`)
    tcpdump
    # image builds (FRR rootfs, busybox images, the mini-ios kernel + initramfs)
    debootstrap busybox-static kmod cpio
    # the project itself
    python3 python3-venv make git ca-certificates procps util-linux
    # multi-host: the Prefect server's Postgres (a simulated fleet, scripts/sim-fleet.sh; curl checks its API)
    postgresql curl
)

install_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) != ii* ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "apt packages: all ${#APT_PACKAGES[@]} present"
        return 0
    fi
    log "apt packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    apt-get "${apt_opts[@]}" update -q
    apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------- workspace
make_dirs() {
    mkdir -p "$WORKSPACE"/{images,disks,data,configs,labs,vlans,locks,logs,prefect,secrets,files} \
        /var/log/libvirt/qemu /var/log/archetype "$CACHE"
}

# Root only (DESIGN.md, Security): configs, serial logs, locks, secrets and the Prefect
# database hold what users typed. Folders 0700, files 0600. The workspace root, disks/,
# data/ and images/ are 0711 (search only, no listing): QEMU runs as libvirt-qemu and must reach a
# VM's disks and kernel through them. Fixes hosts set up before this rule.
PRIVATE_DIRS=(configs logs locks prefect secrets vlans labs files)
secure_workspace() {
    mkdir -p "$WORKSPACE"
    chmod 0711 "$WORKSPACE"
    local d
    for d in disks data images; do
        [[ -d $WORKSPACE/$d ]] && chmod 0711 "$WORKSPACE/$d"
    done
    # each lab's folder of disks/ and data/ too (the code makes them so: providers/workspace.py)
    find "$WORKSPACE/disks" "$WORKSPACE/data" -mindepth 1 -maxdepth 1 -type d -exec chmod 0711 {} + 2>/dev/null || true
    for d in "${PRIVATE_DIRS[@]}"; do
        mkdir -p "$WORKSPACE/$d"
        chmod 0700 "$WORKSPACE/$d"
    done
    # Files Archetype wrote before (labs/ holds files bound into containers: their own
    # modes stay, the 0700 folder above them keeps host users out).
    for d in configs logs locks prefect secrets vlans; do
        find "$WORKSPACE/$d" -mindepth 1 -type d -exec chmod 0700 {} +
        find "$WORKSPACE/$d" -type f -exec chmod go-rwx {} +
    done
    log "workspace $WORKSPACE: root only (0711 root, 0700 folders, 0600 files)"
}

# ---------------------------------------------------------------- venv
setup_venv() {
    local sha stamp
    sha=$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)
    stamp=$VENV/.installed-$sha
    if [[ -d $VENV ]] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "venv: $VENV is broken, recreating it"
        rm -rf "$VENV"
    fi
    if [[ ! -d $VENV ]]; then
        log "venv: creating $VENV"
        python3 -m venv "$VENV"
    fi
    if [[ -e $stamp ]]; then
        log "venv: up to date with pyproject.toml"
        return 0
    fi
    log "venv: pip install -e '.[test]' (pyproject.toml changed or first install)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO[test]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
}

# ---------------------------------------------------------------- images
# Hash of everything that goes into an image: the files of its images/ folder plus
# extra strings (package versions, mirror). Stored as the label archetype.build-hash.
inputs_hash() {
    local dir=$1; shift
    {
        (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
        printf '%s\n' "$@"
    } | sha256sum | cut -c1-16
}

# ensure_image TAG DIR [EXTRA...]: build TAG with DIR/build.sh unless an image with the
# same inputs hash already exists.
ensure_image() {
    local tag=$1 dir=$2; shift 2
    local want have
    want=$(inputs_hash "$dir" "$@")
    have=$(docker image inspect -f '{{index .Config.Labels "archetype.build-hash"}}' "$tag" 2>/dev/null || true)
    if [[ $have == "$want" ]]; then
        log "image $tag: up to date ($want)"
        return 0
    fi
    if [[ -n $have ]]; then
        log "image $tag: inputs changed ($have -> $want), rebuilding"
    else
        log "image $tag: missing, building"
    fi
    REBUILT=1
    step_start
    ARCHETYPE_BUILD_HASH=$want ARCHETYPE_CACHE=$CACHE bash "$dir/build.sh" "$tag"
    step_done "image $tag built"
}

debian_mirror() {
    awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true
}

REBUILT=0
build_images() {
    ensure_image archetype/linux:latest "$REPO/images/linux" \
        "busybox-static $(dpkg-query -W -f='${Version}' busybox-static)"
    ensure_image archetype/frr:latest "$REPO/images/frr" "mirror ${DEBIAN_MIRROR:-$(debian_mirror)}"
    # The images replaced above, now untagged.
    if ((REBUILT)); then
        docker image prune -f --filter label=archetype.build-hash >/dev/null 2>&1 || true
    fi
}

build_vm_images() {
    local script=$REPO/images/mini-ios/build.sh
    if [[ -f $script ]]; then
        step_start
        bash "$script" "$WORKSPACE/images/mini-ios"
        step_done "mini-ios VM image ready in $WORKSPACE/images/mini-ios"
    else
        log "mini-ios: images/mini-ios/build.sh not present, skipped"
    fi
}

summary() {
    local t
    t=$(elapsed "$START")
    echo
    echo "Archetype host setup done in ${t} s"
    printf '  %-10s %s\n' \
        docker "$(docker info --format 'server {{.ServerVersion}}, {{.Driver}}, {{.Containers}} containers' 2>/dev/null)" \
        libvirt "$(virsh -c qemu:///system list --all --name 2>/dev/null | grep -c . || true) domains (qemu:///system answers)" \
        ovs "$(ovs-vsctl --timeout=3 get Open_vSwitch . ovs_version 2>/dev/null | tr -d '"'), bridges: $(ovs-vsctl --timeout=3 list-br 2>/dev/null | tr '\n' ' ')" \
        venv "$VENV ($("$VENV/bin/python" -V 2>&1))" \
        workspace "$WORKSPACE"
    if [[ ${ARCHETYPE_SKIP_IMAGES:-0} != 1 ]]; then
        docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' --filter 'reference=archetype/*' | awk '{printf "  %-10s %s  %s\n", "image", $1, $2}'
        if [[ -d $WORKSPACE/images/mini-ios ]]; then
            echo "  mini-ios   $(du -sh "$WORKSPACE/images/mini-ios" | cut -f1) in $WORKSPACE/images/mini-ios"
        fi
    fi
}

main() {
    if [[ ${1:-} == --venv-only ]]; then
        setup_venv
        return 0
    fi
    if [[ ${1:-} == --permissions-only ]]; then
        secure_workspace
        return 0
    fi
    step_start; install_packages; step_done "packages checked"
    make_dirs
    secure_workspace
    step_start; setup_venv; step_done "venv checked"
    # 9>&-: the daemons must not inherit the setup lock, or they would hold it for their
    # whole life and the next setup (make demo after make test...) would wait forever.
    step_start; bash "$REPO/scripts/start-daemons.sh" 9>&-; step_done "daemons answer"
    if [[ ${ARCHETYPE_SKIP_IMAGES:-0} != 1 ]]; then
        build_images
        build_vm_images
    fi
    summary
}

main "$@"
