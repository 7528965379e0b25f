#!/bin/sh
# mini-ios /init (PID 1, busybox ash): mount the basics, load the NIC and disk
# drivers, apply the saved config, then run the IOS-style console session on
# ttyS0 forever (a getty/login-like respawn loop).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/ TERM=vt100

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run /tmp
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp

# Drivers, in dependency order (computed at build time from modules.dep)
while read -r m; do
    [ -n "$m" ] && insmod "/lib/modules/$m.ko" 2>/dev/null
done </lib/modules/load.order
# wait (briefly) for the block device nodes of the virtio disks
i=0
while [ $i -lt 20 ]; do
    ok=1
    for b in /sys/block/vd*; do
        [ -e "$b" ] || continue
        [ -b "/dev/${b##*/}" ] || ok=0
    done
    [ $ok = 1 ] && break
    usleep 50000
    i=$((i + 1))
done

# keep kernel messages (link up/down etc.) off the CLI console
echo 1 >/proc/sys/kernel/printk
ip link set lo up

/bin/ios boot >/dev/console 2>&1

# telnet on every address (IOS' "line vty 0 4" with "transport input telnet"): the same
# login and CLI as the console, one session per connection (busybox telnetd, a daemon)
telnetd -p 23 -K -l /bin/ios-vty
# SSH on every address (IOS' "transport input ssh"): dropbear checks the login (admin/admin)
# and runs the CLI; its host keys are made at the first connection (-R), so every VM has
# its own. No port forwarding (-j -k): the CLI is all it serves.
dropbear -R -j -k -p 22 -P /run/dropbear.pid

# console sessions on ttyS0, respawned forever; the CLI never gives a shell
while :; do
    t0=$(cut -d. -f1 /proc/uptime)
    setsid -c /bin/ios session </dev/ttyS0 >/dev/ttyS0 2>&1
    t1=$(cut -d. -f1 /proc/uptime)
    [ $((t1 - t0)) -lt 1 ] && sleep 1
done
