#!/bin/bash
# Build the mini-ios test VM image (an IOSv look-alike) from Debian packages.
#
#   images/mini-ios/build.sh [OUTDIR]      (root; default /var/lib/archetype/images/mini-ios)
#
# Produces OUTDIR/vmlinuz (Debian 12 kernel), OUTDIR/initrd.img (busybox + NIC/disk
# drivers + the IOS-style CLI + dropbear, the SSH server, with the libraries it links)
# and OUTDIR/VERSION (the build stamp: every package version and the sources' sum).
# Re-running with unchanged inputs only compares the stamp and exits (~0.3 s).
#
# Environment:
#   MINI_IOS_CACHE        download cache (default /var/cache/archetype/mini-ios)
#   MINI_IOS_KERNEL_PKG   kernel package (default: what linux-image-amd64 depends on)
#   MINI_IOS_MODULES      modules to load at boot, deps are added from modules.dep
#   MINI_IOS_FORCE=1      rebuild even if the stamp matches
set -euo pipefail

OUT=${1:-/var/lib/archetype/images/mini-ios}
CACHE=${MINI_IOS_CACHE:-/var/cache/archetype/mini-ios}
MODULES=${MINI_IOS_MODULES:-e1000 e1000e virtio_net virtio_pci virtio_blk}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STAMP_FORMAT=2
# dropbear (SSH on the management address, as IOS' "transport input ssh") and what it links
SSH_PKGS="dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g"
LOGIN_USER=admin LOGIN_PASSWORD=admin  # cli.sh's login: the same over SSH

log() { echo "mini-ios: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
for t in apt-get apt-cache dpkg-deb gzip sha256sum; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
mkdir -p "$CACHE" "$OUT"

# one build at a time (parallel test runs share the cache and the output)
exec 9>"$CACHE/.lock"
command -v flock >/dev/null && flock 9

# ---------------------------------------------------------------- inputs
# One apt-cache call (~0.3 s) gives the kernel meta package's dependency and
# the candidate versions, so that an up-to-date re-run stays fast.
cached_deb() { # PKG -> newest cached .deb of PKG, empty if none
    ls -1 "$CACHE/$1"_*.deb 2>/dev/null | sort -V | tail -n 1 || true
}
KPKG=${MINI_IOS_KERNEL_PKG:-}
info=$(apt-cache show --no-all-versions ${KPKG:-linux-image-amd64} busybox-static $SSH_PKGS 2>/dev/null || true)
field() { # PKG FIELD -> value of FIELD in PKG's record of $info
    awk -v p="$1" -v f="$2:" '$1 == "Package:" { cur = $2 } cur == p && $1 == f { sub(/^[^ ]+ /, ""); print; exit }' <<<"$info"
}
KPKG_VER=
if [ -z "$KPKG" ]; then
    # Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
    dep=$(field linux-image-amd64 Depends)
    KPKG=$(sed -n 's/^\(linux-image-[0-9][^ ,]*\).*/\1/p' <<<"$dep")
    KPKG_VER=$(sed -n 's/^linux-image-[0-9][^ ,]* (= \([^)]*\)).*/\1/p' <<<"$dep")
else
    KPKG_VER=$(field "$KPKG" Version)
fi
if [ -z "$KPKG" ]; then # no apt metadata: fall back to a cached kernel package
    f=$(ls -1 "$CACHE"/linux-image-[0-9]*-amd64_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$f" ] || die "cannot find the kernel package (apt-cache show linux-image-amd64 failed; run apt-get update)"
    KPKG=$(dpkg-deb -f "$f" Package)
fi
if [ -z "$KPKG_VER" ]; then
    KPKG_VER=$(apt-cache policy "$KPKG" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" { print $2 }' || true)
fi
BB_VER=$(field busybox-static Version)
debfile() { # PKG VERSION -> cache path; an unknown VERSION means the newest cached one
    if [ -n "$2" ]; then
        echo "$CACHE/${1}_${2//:/%3a}_amd64.deb"
    else
        cached_deb "$1"
    fi
}
KDEB=$(debfile "$KPKG" "$KPKG_VER")
BBDEB=$(debfile busybox-static "$BB_VER")
[ -n "$KDEB" ] || die "package $KPKG is unknown to apt and not cached"
[ -n "$BBDEB" ] || die "package busybox-static is unknown to apt and not cached"
[ -n "$KPKG_VER" ] || KPKG_VER=$(dpkg-deb -f "$KDEB" Version)
[ -n "$BB_VER" ] || BB_VER=$(dpkg-deb -f "$BBDEB" Version)
declare -A SSH_VER=() SSH_DEB=()
for p in $SSH_PKGS; do
    SSH_VER[$p]=$(field "$p" Version)
    SSH_DEB[$p]=$(debfile "$p" "${SSH_VER[$p]}")
    [ -n "${SSH_DEB[$p]}" ] || die "package $p is unknown to apt and not cached"
    [ -n "${SSH_VER[$p]}" ] || SSH_VER[$p]=$(dpkg-deb -f "${SSH_DEB[$p]}" Version)
done
ssh_versions=$(for p in $SSH_PKGS; do printf ' %s=%s' "$p" "${SSH_VER[$p]}"; done)
KVER=${KPKG#linux-image-}          # e.g. 6.1.0-56-amd64

src_sum=$(cat "$SRC/build.sh" "$SRC/init.sh" "$SRC/cli.sh" | sha256sum | cut -d' ' -f1)
STAMP="mini-ios stamp format $STAMP_FORMAT
kernel $KPKG $KPKG_VER
busybox busybox-static $BB_VER
modules $MODULES
ssh$ssh_versions
sources $src_sum"

if [ "${MINI_IOS_FORCE:-0}" != 1 ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ] \
    && [ -f "$OUT/VERSION" ] && [ "$(cat "$OUT/VERSION")" = "$STAMP" ]; then
    log "up to date in $OUT ($KPKG $KPKG_VER)"
    exit 0
fi

# -------------------------------------------------------------- downloads
download() { # PKG VERSION DEBFILE
    [ -s "$3" ] && return 0
    log "downloading $1 $2"
    (cd "$CACHE" && apt-get download -q -o APT::Sandbox::User=root "$1=$2" >/dev/null) \
        || die "apt-get download $1=$2 failed"
    [ -s "$3" ] || die "download of $1 did not produce $3"
}
download "$KPKG" "$KPKG_VER" "$KDEB"
download busybox-static "$BB_VER" "$BBDEB"
for p in $SSH_PKGS; do download "$p" "${SSH_VER[$p]}" "${SSH_DEB[$p]}"; done

# ------------------------------------------------------------------ build
WORK=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
K=$WORK/kernel
ROOT=$WORK/root
mkdir -p "$K" "$ROOT"

log "extracting $KPKG $KPKG_VER"
dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$K" "./boot/vmlinuz-$KVER" "./lib/modules/$KVER"
dpkg-deb -x "$BBDEB" "$WORK/bb"
BB=$WORK/bb/bin/busybox
[ -x "$BB" ] || die "busybox-static package has no bin/busybox"

# modules.dep is made at install time by depmod: make it for the extracted tree
if command -v depmod >/dev/null; then
    depmod -b "$K" "$KVER"
else
    "$BB" depmod -b "$K" "$KVER"
fi
MODDIR=$K/lib/modules/$KVER
DEP=$MODDIR/modules.dep

# load order: each wanted module after its dependencies (modprobe loads the
# modules.dep list in reverse), without duplicates
mkdir -p "$ROOT/lib/modules"
declare -A seen=()
order=()
for m in $MODULES; do
    line=$(grep -E "(^|/)${m}\.ko(\.xz|\.zst|\.gz)?:" "$DEP" || true)
    [ -n "$line" ] || die "module $m not found in $KPKG"
    read -r -a deps <<<"${line#*:}"
    list=()
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do list+=("${deps[i]}"); done
    list+=("${line%%:*}")
    for p in "${list[@]}"; do
        name=$(basename "$p")
        name=${name%.xz}; name=${name%.zst}; name=${name%.gz}; name=${name%.ko}
        [ -n "${seen[$name]:-}" ] && continue
        seen[$name]=1
        order+=("$name")
        case $p in
        *.ko) cp "$MODDIR/$p" "$ROOT/lib/modules/$name.ko" ;;
        *.ko.xz) xz -dc "$MODDIR/$p" >"$ROOT/lib/modules/$name.ko" ;;
        *.ko.zst) zstd -qdc "$MODDIR/$p" >"$ROOT/lib/modules/$name.ko" ;;
        *.ko.gz) gzip -dc "$MODDIR/$p" >"$ROOT/lib/modules/$name.ko" ;;
        esac
    done
done
printf '%s\n' "${order[@]}" >"$ROOT/lib/modules/load.order"
log "modules: ${order[*]}"

# root filesystem: busybox with applet links, /init, the CLI
mkdir -p "$ROOT"/{bin,dev,etc,proc,sys,run,tmp,root,usr,var}
ln -s bin "$ROOT/sbin"
ln -s ../bin "$ROOT/usr/bin"
ln -s ../bin "$ROOT/usr/sbin"
cp "$BB" "$ROOT/bin/busybox"
for a in $("$BB" --list); do
    [ "$a" = busybox ] || [ -e "$ROOT/bin/$a" ] || ln -s busybox "$ROOT/bin/$a"
done
install -m 0755 "$SRC/init.sh" "$ROOT/init"
install -m 0755 "$SRC/cli.sh" "$ROOT/bin/ios"
printf '#!/bin/sh\nexec /bin/ios vty\n' >"$ROOT/bin/ios-vty"   # telnetd -l takes no arguments
chmod 0755 "$ROOT/bin/ios-vty"
echo 'root:x:0:0:root:/root:/bin/ios' >"$ROOT/etc/passwd"

# SSH: dropbear checks the login (admin, uid 0: the CLI changes interfaces and routes)
# and runs its shell, the CLI without a login prompt. Host keys are made at boot (init.sh).
SSH=$WORK/ssh
mkdir -p "$SSH"
for p in $SSH_PKGS; do dpkg-deb -x "${SSH_DEB[$p]}" "$SSH"; done
LOADER=$SSH/lib64/ld-linux-x86-64.so.2
[ -e "$LOADER" ] || LOADER=$SSH/usr/lib64/ld-linux-x86-64.so.2
[ -x "$SSH/usr/sbin/dropbear" ] || die "dropbear-bin has no usr/sbin/dropbear"
install -m 0755 "$SSH/usr/sbin/dropbear" "$ROOT/bin/dropbear"
mkdir -p "$ROOT/lib64" "$ROOT/lib/x86_64-linux-gnu" "$ROOT/etc/dropbear"
cp -L "$LOADER" "$ROOT/lib64/ld-linux-x86-64.so.2"
# the libraries dropbear links, resolved by the packages' own loader in the packages' tree
libpath=$SSH/lib/x86_64-linux-gnu:$SSH/usr/lib/x86_64-linux-gnu
libs=$("$LOADER" --library-path "$libpath" --list "$SSH/usr/sbin/dropbear" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
[ -n "$libs" ] || die "cannot list dropbear's libraries"
for lib in $libs; do
    case $lib in "$SSH"/*) ;; *) die "dropbear links $lib from outside the packages" ;; esac
    cp -L "$lib" "$ROOT/lib/x86_64-linux-gnu/"
done
hash=$("$BB" mkpasswd -m sha512 "$LOGIN_PASSWORD")
echo "$LOGIN_USER:$hash:0:0:$LOGIN_USER:/root:/bin/ios-ssh" >>"$ROOT/etc/passwd"
echo /bin/ios-ssh >"$ROOT/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\n' >"$ROOT/etc/nsswitch.conf"
printf '#!/bin/sh\nexec /bin/ios ssh\n' >"$ROOT/bin/ios-ssh"
chmod 0755 "$ROOT/bin/ios-ssh"
echo 'root:x:0:' >"$ROOT/etc/group"
echo Router >"$ROOT/etc/hostname"
mknod -m 600 "$ROOT/dev/console" c 5 1 2>/dev/null \
    || log "warning: cannot mknod /dev/console (no CAP_MKNOD?): the kernel will start /init without a console"
printf '%s\n' "$STAMP" >"$ROOT/etc/mini-ios-version"

log "packing initrd"
if command -v cpio >/dev/null; then
    (cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 >"$WORK/initrd.img"
else
    (cd "$ROOT" && find . | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -6 >"$WORK/initrd.img"
fi

# install atomically: images first, the stamp last
cp "$K/boot/vmlinuz-$KVER" "$OUT/.vmlinuz.tmp"
cp "$WORK/initrd.img" "$OUT/.initrd.img.tmp"
rm -f "$OUT/VERSION"
mv -f "$OUT/.vmlinuz.tmp" "$OUT/vmlinuz"
mv -f "$OUT/.initrd.img.tmp" "$OUT/initrd.img"
printf '%s\n' "$STAMP" >"$OUT/VERSION"
log "built $OUT (vmlinuz $(du -k "$OUT/vmlinuz" | cut -f1)K, initrd.img $(du -k "$OUT/initrd.img" | cut -f1)K)"
