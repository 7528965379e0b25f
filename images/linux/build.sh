#!/usr/bin/env bash
# Build the tiny Linux host image (default tag archetype/linux:latest) with no registry:
# Debian's statically linked busybox in an otherwise empty rootfs, with applet links,
# imported with `docker import`. About 2 MB; builds in about a second.
#
# Usage: images/linux/build.sh [TAG]
# Env:   ARCHETYPE_BUILD_HASH  stored as the image label archetype.build-hash
set -euo pipefail

TAG=${1:-archetype/linux:latest}
CACHE=${ARCHETYPE_CACHE:-/var/cache/archetype}

log() { printf '[linux-image] %s\n' "$*" >&2; }

WORK=$(mktemp -d /var/tmp/archetype-linux.XXXXXX)
trap 'rm -rf --one-file-system "$WORK"' EXIT
ROOT=$WORK/rootfs
mkdir -p "$ROOT" "$CACHE/debs"

# busybox-static's .deb: the one apt would install now, fetched once into the cache. With
# no package lists (no `apt-get update` yet), fall back to the installed package's binary.
busybox=""
if (cd "$CACHE/debs" && apt-get download busybox-static >"$WORK/download.log" 2>&1); then
    deb=$(ls -t "$CACHE"/debs/busybox-static_*.deb | head -1)
    dpkg-deb -x "$deb" "$WORK/deb"
    busybox=$WORK/deb/bin/busybox
    # Keep only the newest .deb.
    ls -t "$CACHE"/debs/busybox-static_*.deb | tail -n +2 | xargs -r rm -f
elif [[ -x /bin/busybox ]] && dpkg-query -W busybox-static >/dev/null 2>&1; then
    log "apt-get download failed ($(tail -1 "$WORK/download.log")); using the installed /bin/busybox"
    busybox=/bin/busybox
else
    log "cannot get busybox-static: $(cat "$WORK/download.log")"
    exit 1
fi

install -D -m 0755 "$busybox" "$ROOT/bin/busybox"
# One link per applet, at the path busybox itself reports (bin/sh, sbin/ip, usr/bin/...).
"$ROOT/bin/busybox" --list-full | while read -r applet; do
    [[ $applet == bin/busybox ]] && continue
    mkdir -p "$ROOT/$(dirname "$applet")"
    ln -sf /bin/busybox "$ROOT/$applet"
done

mkdir -p "$ROOT"/{etc,root,tmp,proc,sys,dev,run,var/run,home}
chmod 1777 "$ROOT/tmp"
cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo 'hosts: files dns' >"$ROOT/etc/nsswitch.conf"

log "importing $TAG"
# PID 1 is the shell: it has no default signal handlers, so trap TERM/INT explicitly and
# sleep in the background so that the trap runs at once (docker stop returns in < 1 s).
tar --numeric-owner -C "$ROOT" -c . | docker import \
    -c 'CMD ["/bin/sh","-c","trap '"'"'exit 0'"'"' TERM INT; while :; do sleep 1 & wait $!; done"]' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c "LABEL archetype.build-hash=${ARCHETYPE_BUILD_HASH:-none} archetype.image=linux" \
    - "$TAG" >/dev/null
log "built $TAG"
