#!/usr/bin/env bash
# Build the FRR container image (default tag archetype/frr:latest) with no registry:
# debootstrap a minimal Debian 13 (trixie, FRR 10.3), install FRR with apt inside it, strip
# it, add our entrypoint, `docker import`.
#
# Two steps, not `debootstrap --include=frr`: Debian 12's debootstrap installs trixie's
# extra packages in one dpkg call, where systemd's pre-dependency on libsystemd-shared
# (pulled by frr -> logrotate -> cron-daemon-common) fails. apt inside the new root orders
# them, and is told to take systemd-standalone-sysusers rather than systemd.
# frr-pythontools (frr-reload.py, and python3) is what the entrypoint checks the applied
# configuration with. dropbear-bin is the SSH server (port 22, started by the entrypoint,
# host keys made per container at the first connection) for clients with no docker
# transport (Nornir/netmiko): user admin, password admin (the catalog's default login,
# vendors/kinds/frr.yml), login shell bash, in the groups that may run vtysh.
#
# The debootstrap rootfs is cached as a tarball under $ARCHETYPE_CACHE (default
# /var/cache/archetype), keyed by what goes into it, so a rebuild after `docker rmi` or
# after an entrypoint change takes a few seconds instead of ~50.
#
# Usage: images/frr/build.sh [TAG]
# Env:   ARCHETYPE_BUILD_HASH  stored as the image label archetype.build-hash
#        DEBIAN_MIRROR         default: the first URIs of /etc/apt/sources.list.d/debian.sources
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TAG=${1:-archetype/frr:latest}
CACHE=${ARCHETYPE_CACHE:-/var/cache/archetype}
SUITE=trixie
PACKAGES="frr frr-pythontools systemd-standalone-sysusers iproute2 iputils-ping procps ethtool dropbear-bin"
# Bump when the install or strip steps below change, so the cached rootfs is rebuilt.
RECIPE=4
LOGIN_USER=admin LOGIN_PASSWORD=admin

log() { printf '[frr-image] %s\n' "$*" >&2; }

debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
    local f=/etc/apt/sources.list.d/debian.sources uri=""
    if [[ -r $f ]]; then
        uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
    fi
    if [[ -z $uri && -r /etc/apt/sources.list ]]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
            /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

WORK=""
cleanup() {
    [[ -n $WORK && -d $WORK ]] || return 0
    # debootstrap mounts proc/sys in the target; never rm -rf through a mount.
    local m
    for m in $(awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

MIRROR=$(debian_mirror)
KEY=$(printf '%s\n' "$SUITE" "$PACKAGES" "$MIRROR" "$RECIPE" "$LOGIN_USER:$LOGIN_PASSWORD" | sha256sum | cut -c1-16)
TARBALL=$CACHE/frr-rootfs-$KEY.tar
mkdir -p "$CACHE"
WORK=$(mktemp -d /var/tmp/archetype-frr.XXXXXX)
ROOT=$WORK/rootfs

if [[ -s $TARBALL ]]; then
    log "using cached rootfs $TARBALL"
    mkdir -p "$ROOT"
    tar --numeric-owner -C "$ROOT" -xf "$TARBALL"
else
    log "debootstrap $SUITE from $MIRROR, then apt-get install $PACKAGES (takes ~40 s)"
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
        tail -30 "$WORK/debootstrap.log" >&2
        exit 1
    }
    for m in proc sys; do umount -l "$ROOT/$m" 2>/dev/null || true; done
    # No service starts while packages install (there is no init in the root anyway).
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d" && chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
    echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
    # shellcheck disable=SC2086 # the package list is split on purpose
    { chroot "$ROOT" apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -q --no-install-recommends $PACKAGES; } \
        >"$WORK/apt.log" 2>&1 || {
        tail -30 "$WORK/apt.log" >&2
        exit 1
    }
    chroot "$ROOT" apt-get clean
    # The SSH login: vtysh needs frrvty (the daemons' sockets) and frr (vtysh.conf)
    { chroot "$ROOT" useradd -m -s /bin/bash -G frr,frrvty "$LOGIN_USER" \
        && echo "$LOGIN_USER:$LOGIN_PASSWORD" | chroot "$ROOT" chpasswd; } >>"$WORK/apt.log" 2>&1 || {
        tail -30 "$WORK/apt.log" >&2
        exit 1
    }
    mkdir -p "$ROOT/etc/dropbear"
    rm -f "$ROOT/usr/sbin/policy-rc.d"
    # Strip what a router container never reads.
    rm -rf "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
        "$ROOT"/usr/share/lintian "$ROOT"/usr/share/linda \
        "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin \
        "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/debconf/*-old \
        "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/debootstrap
    find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' \
        -exec rm -rf {} + 2>/dev/null || true
    # Docker provides /dev, /etc/hosts, /etc/resolv.conf and /etc/hostname at run time.
    rm -rf "${ROOT:?}"/dev/*
    : >"$ROOT/etc/resolv.conf"
    echo frr >"$ROOT/etc/hostname"
    # Keep the distribution's daemons file as a template for the entrypoint.
    cp -a "$ROOT/etc/frr/daemons" "$ROOT/etc/frr/daemons.dist"
    tar --numeric-owner -C "$ROOT" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    # Older rootfs tarballs (other keys) are of no further use.
    find "$CACHE" -maxdepth 1 -name 'frr-rootfs-*.tar' ! -name "$(basename "$TARBALL")" -delete
    log "cached rootfs as $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi

install -m 0755 "$HERE/archetype-frr-start" "$ROOT/usr/local/bin/archetype-frr-start"
# No default configuration: the entrypoint creates an empty frr.conf when a lab gives none
# (Debian's only says "log syslog informational", and there is no syslog in a container).
rm -f "$ROOT/etc/frr/frr.conf"
# Debian leaves /etc/frr 0700: the SSH login (group frr) reads vtysh.conf through it.
chmod 0750 "$ROOT/etc/frr"
# Present from the first instant: removed by the entrypoint once frr.conf is applied.
mkdir -p "$ROOT/run" && touch "$ROOT/run/archetype-frr-starting"

log "importing $TAG"
tar --numeric-owner -C "$ROOT" -c . | docker import \
    -c 'ENTRYPOINT ["/usr/local/bin/archetype-frr-start"]' \
    -c 'ENV FRR_DAEMONS="zebra staticd bgpd ospfd ospf6d isisd"' \
    -c "LABEL archetype.build-hash=${ARCHETYPE_BUILD_HASH:-none} archetype.image=frr" \
    - "$TAG" >/dev/null
log "built $TAG"
