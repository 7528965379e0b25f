#!/bin/sh
# mini-ios: an IOSv-like CLI for a tiny Linux test VM (busybox ash).
#
#   ios boot      set up the state under /run/ios, print IOS-style boot messages,
#                 load and apply the startup-config saved on the data disk
#   ios session   one console session: "Press RETURN", login, exec/config CLI;
#                 returns on logout (the caller respawns it)
#   ios vty       one telnet session (login, then the CLI); ios ssh: one SSH session
#                 (dropbear checked the login: the CLI at once)
#
# The running configuration lives in files under /run/ios, so every session
# sees the same state. GigabitEthernet0/N is the Linux NIC ethN.
# This is a test double: it is not Cisco software.

S=/run/ios
NVRAM_MAGIC='MINI-IOS-NVRAM 1'
NVRAM_SIZE=262144
IOS_VERSION='15.9(3)M'
CTRLZ=$(printf '\032')
CR=$(printf '\r')
USER_OK=admin
PASS_OK=admin

# ---------------------------------------------------------------- helpers

# lc WORD: lower-case WORD into REPLY (pure shell, no fork)
lc() {
    case $1 in
    *[A-Z]*) ;;
    *) REPLY=$1; return 0 ;;
    esac
    local s=$1 o= c
    while [ -n "$s" ]; do
        c=${s%"${s#?}"}
        s=${s#?}
        case $c in
        A) c=a ;; B) c=b ;; C) c=c ;; D) c=d ;; E) c=e ;; F) c=f ;; G) c=g ;;
        H) c=h ;; I) c=i ;; J) c=j ;; K) c=k ;; L) c=l ;; M) c=m ;; N) c=n ;;
        O) c=o ;; P) c=p ;; Q) c=q ;; R) c=r ;; S) c=s ;; T) c=t ;; U) c=u ;;
        V) c=v ;; W) c=w ;; X) c=x ;; Y) c=y ;; Z) c=z ;;
        esac
        o=$o$c
    done
    REPLY=$o
}

# is WORD KEYWORD MINLEN: WORD is an abbreviation of KEYWORD (case-insensitive)
is() {
    [ -n "$1" ] || return 1
    lc "$1"
    [ ${#REPLY} -ge "$3" ] || return 1
    case $2 in
    "$REPLY"*) return 0 ;;
    esac
    return 1
}

# Error reporting. Parsers return 0 = ok, 1 = invalid input (ERRW = index of the
# offending word in the whole line), 2 = incomplete command, 3 = error printed.
# "bad $#" marks the current $1 as the offending word.
bad() {
    ERRW=$((NW - $1 + 1))
    return 1
}

# ip2int A.B.C.D -> IPN ; returns 1 if not a dotted quad
ip2int() {
    case $1 in
    *[!0-9.]* | *..* | .* | *. | '') return 1 ;;
    esac
    local IFS=. o n=0 c=0
    set -f
    set -- $1
    set +f
    [ $# -eq 4 ] || return 1
    for o; do
        [ ${#o} -le 3 ] || return 1
        o=${o#"${o%%[!0]*}"}
        [ -n "$o" ] || o=0
        [ "$o" -le 255 ] || return 1
        n=$((n * 256 + o))
    done
    IPN=$n
}

int2ip() {
    REPLY="$(($1 >> 24 & 255)).$(($1 >> 16 & 255)).$(($1 >> 8 & 255)).$(($1 & 255))"
}

# mask2len M.M.M.M -> PLEN ; returns 1 if not a contiguous mask
mask2len() {
    ip2int "$1" || return 1
    local inv=$((~IPN & 4294967295)) p=32
    [ $((inv & (inv + 1))) -eq 0 ] || return 1
    while [ $inv -gt 0 ]; do
        inv=$((inv >> 1))
        p=$((p - 1))
    done
    PLEN=$p
}

len2mask() {
    local m=0
    [ "$1" -gt 0 ] && m=$(((4294967295 << (32 - $1)) & 4294967295))
    int2ip $m
}

# parse_if WORD [WORD2]: GigabitEthernet0/N (any abbreviation, optional space
# before 0/N) -> IFC=ethN, IFN=N, IFUSED=number of words used.
# Returns 1 (invalid), 2 (incomplete) or 4 (no such interface).
parse_if() {
    local w=$1 pfx num
    [ -n "$w" ] || return 2
    pfx=${w%%[0-9]*}
    num=${w#"$pfx"}
    IFUSED=1
    if [ -z "$num" ]; then
        [ -n "$2" ] || return 2
        num=$2
        IFUSED=2
    fi
    is "$pfx" gigabitethernet 1 || return 1
    case $num in
    0/[0-9] | 0/[0-9][0-9]) ;;
    *) return 4 ;;
    esac
    IFN=${num#0/}
    IFN=${IFN#0}
    [ -n "$IFN" ] || IFN=0
    IFC=eth$IFN
    [ -d /sys/class/net/$IFC ] || return 4
    [ -d $S/if/$IFC ] || if_init $IFC
    return 0
}

ifname() { REPLY="GigabitEthernet0/${1#eth}"; }

# NICS: the list eth0 eth1 ... in numeric order
list_nics() {
    local n=0
    NICS=
    while [ -e /sys/class/net/eth$n ]; do
        NICS="$NICS eth$n"
        n=$((n + 1))
    done
}

rd() { # rd FILE -> REPLY (first line, empty if missing)
    REPLY=
    [ -f "$1" ] && IFS= read -r REPLY <"$1"
    return 0
}

# ------------------------------------------------------- state and actions

if_init() {
    mkdir -p $S/if/$1
    : >$S/if/$1/shut
    ip link set dev "$1" down 2>/dev/null
}

state_init() {
    mkdir -p $S/if
    echo Router >$S/hostname
    echo yes >$S/domain_lookup
    : >$S/domain_name
    : >$S/routes
    list_nics
    local i
    for i in $NICS; do if_init $i; done
    hostname Router 2>/dev/null
}

set_hostname() {
    echo "$1" >$S/hostname
    hostname "$1" 2>/dev/null
}

if_set_addr() { # IFC addr mask method | IFC "" (remove)
    local d=$S/if/$1
    ip addr flush dev "$1" 2>/dev/null
    if [ -n "$2" ]; then
        mask2len "$3"
        ip addr add "$2/$PLEN" broadcast + dev "$1" 2>/dev/null
        echo "$2 $3" >$d/addr
        echo "$4" >$d/method
    else
        rm -f $d/addr $d/method
    fi
    routes_sync
}

if_set_shut() { # IFC 1|0
    if [ "$2" = 1 ]; then
        : >$S/if/$1/shut
        ip link set dev "$1" down 2>/dev/null
    else
        rm -f $S/if/$1/shut
        ip link set dev "$1" up 2>/dev/null
        routes_sync
    fi
}

# Static routes: $S/routes holds "NET MASK NEXTHOP" lines (NEXTHOP an address
# or an interface name). They stay configured even when not installable.
route_args() { # NET MASK NH -> REPLY = args for "ip route"
    mask2len "$2"
    case $3 in
    GigabitEthernet0/*) REPLY="$1/$PLEN dev eth${3#GigabitEthernet0/}" ;;
    *) REPLY="$1/$PLEN via $3" ;;
    esac
}

routes_sync() {
    [ "$LOADING" = 1 ] && return 0
    local n m h
    while read -r n m h; do
        [ -n "$h" ] || continue
        route_args "$n" "$m" "$h"
        ip route replace $REPLY 2>/dev/null
    done <$S/routes
    # A route not installable yet is fine: its failure must not become the status of the
    # command that called us (`ip address` said "% Incomplete command." after it worked).
    return 0
}

route_add() {
    local n m h
    while read -r n m h; do
        [ "$n $m $h" = "$1 $2 $3" ] && return 0
    done <$S/routes
    echo "$1 $2 $3" >>$S/routes
    route_args "$1" "$2" "$3"
    [ "$LOADING" = 1 ] || ip route replace $REPLY 2>/dev/null
    return 0
}

route_del() { # NET MASK [NH]
    local n m h tmp=$S/routes.new
    : >$tmp
    while read -r n m h; do
        if [ "$n" = "$1" ] && [ "$m" = "$2" ] && { [ -z "$3" ] || [ "$h" = "$3" ]; }; then
            route_args "$n" "$m" "$h"
            ip route del $REPLY 2>/dev/null
        else
            echo "$n $m $h" >>$tmp
        fi
    done <$S/routes
    mv $tmp $S/routes
}

# ------------------------------------------------------ configuration text

gen_config() { # the running configuration, from "!" to "end"
    local h i d a dl dn n m nh
    rd $S/hostname; h=$REPLY
    rd $S/domain_lookup; dl=$REPLY
    rd $S/domain_name; dn=$REPLY
    printf '!\n'
    printf 'version 15.9\nservice timestamps debug datetime msec\nservice timestamps log datetime msec\nno service password-encryption\n!\n'
    printf 'hostname %s\n!\nboot-start-marker\nboot-end-marker\n!\n!\n!\nno aaa new-model\n!\n!\n!\n' "$h"
    printf 'mmi polling-interval 60\nno mmi auto-configure\nno mmi pvc\nmmi snmp-timeout 180\n!\n!\n!\n!\n!\n'
    [ "$dl" = no ] && printf 'no ip domain-lookup\n'
    [ -n "$dn" ] && printf 'ip domain name %s\n' "$dn"
    printf 'ip cef\nno ipv6 cef\n!\nmultilink bundle-name authenticated\n!\n!\n!\n!\n'
    printf 'username admin privilege 15 password 0 admin\n!\nredundancy\n!\n!\n!\n!\n!\n'
    list_nics
    for i in $NICS; do
        d=$S/if/$i
        [ -d $d ] || if_init $i
        ifname $i
        printf 'interface %s\n' "$REPLY"
        if [ -f $d/desc ]; then rd $d/desc; printf ' description %s\n' "$REPLY"; fi
        if [ -f $d/addr ]; then rd $d/addr; printf ' ip address %s\n' "$REPLY"; else printf ' no ip address\n'; fi
        [ -f $d/shut ] && printf ' shutdown\n'
        printf ' duplex auto\n speed auto\n media-type rj45\n!\n'
    done
    printf 'ip forward-protocol nd\n!\n!\nno ip http server\nno ip http secure-server\n'
    while read -r n m nh; do
        [ -n "$nh" ] && printf 'ip route %s %s %s\n' "$n" "$m" "$nh"
    done <$S/routes
    printf '!\nipv6 ioam timestamp\n!\n!\n!\ncontrol-plane\n!\n!\nline con 0\n exec-timeout 0 0\n logging synchronous\nline aux 0\nline vty 0 4\n login local\n transport input telnet\n!\nno scheduler allocate\n!\nend\n'
}

show_running() {
    local f=$S/cfg.$$ n
    gen_config >$f
    n=$(wc -c <$f)
    printf 'Building configuration...\n\nCurrent configuration : %s bytes\n' "${n##* }"
    cat $f
    rm -f $f
}

# ------------------------------------------------- NVRAM on the data disk
# Raw block device (the blank qcow2 the host attaches as vdb). Layout:
#   bytes 0..511   header, text lines padded with NUL bytes:
#                    MINI-IOS-NVRAM 1
#                    length <bytes of config text>
#                    md5 <md5 hex of config text>
#   bytes 512..    the config text (as "show startup-config" prints it)
# A header that is all zero means "blank / no startup-config".

nvram_dev() { # -> NVDEV ; the first of vdb, vda that is blank or ours
    local d hdr=$S/nvhdr.$$ l
    NVDEV=
    for d in /dev/vdb /dev/vda; do
        [ -b $d ] || continue
        dd if=$d of=$hdr bs=512 count=1 2>/dev/null || continue
        l=
        IFS= read -r l <$hdr
        if [ "$l" = "$NVRAM_MAGIC" ] || cmp -s -n 512 $hdr /dev/zero; then
            NVDEV=$d
            break
        fi
    done
    rm -f $hdr
    [ -n "$NVDEV" ]
}

# nvram_read FILE: copy the saved config text to FILE; 1 if none, 2 if corrupt
nvram_read() {
    nvram_dev || return 1
    local hdr=$S/nvhdr.$$ l len= sum= s
    dd if=$NVDEV of=$hdr bs=512 count=1 2>/dev/null
    {
        IFS= read -r l
        [ "$l" = "$NVRAM_MAGIC" ] || { rm -f $hdr; return 1; }
        read -r l len
        read -r l sum
    } <$hdr
    rm -f $hdr
    case $len in '' | *[!0-9]*) return 2 ;; esac
    [ "$len" -le $NVRAM_SIZE ] || return 2
    dd if=$NVDEV of="$1" bs=512 skip=1 count=$len iflag=count_bytes 2>/dev/null
    s=$(md5sum <"$1")
    [ "${s%% *}" = "$sum" ] || return 2
    return 0
}

nvram_write() { # FILE
    nvram_dev || return 1
    local len sum hdr=$S/nvhdr.$$
    len=$(wc -c <"$1")
    len=${len##* }
    [ "$len" -le $NVRAM_SIZE ] || return 3
    sum=$(md5sum <"$1")
    printf '%s\nlength %s\nmd5 %s\n' "$NVRAM_MAGIC" "$len" "${sum%% *}" >$hdr
    # body first, then the header that validates it
    dd if="$1" of=$NVDEV bs=512 seek=1 conv=notrunc,sync,fsync 2>/dev/null || return 2
    dd if=$hdr of=$NVDEV bs=512 count=1 conv=notrunc,sync,fsync 2>/dev/null || return 2
    rm -f $hdr
    return 0
}

nvram_erase() {
    nvram_dev || return 1
    dd if=/dev/zero of=$NVDEV bs=512 count=1 conv=notrunc,fsync 2>/dev/null
}

write_memory() {
    local f=$S/startup.new
    printf 'Building configuration...\n'
    gen_config >$f
    if nvram_write $f; then
        mv $f $S/startup-config
        printf '[OK]\n'
    else
        rm -f $f
        printf '%%Error opening nvram:startup-config (No such device)\n'
    fi
}

# apply_config FILE: feed a saved configuration through the config parser
apply_config() {
    local line smode=$MODE sifc=$IFC
    LOADING=1
    MODE=config
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
        '!'* | '') continue ;;
        end | 'end '*) break ;;
        esac
        set -f
        set -- $line
        set +f
        NW=$#
        config_line "$@" >/dev/null 2>&1
    done <"$1"
    LOADING=0
    MODE=$smode
    IFC=$sifc
    routes_sync
}

# -------------------------------------------------------------- show cmds

show_version() {
    local up mem=0 k v u n=0 i
    fmt_uptime
    up=$REPLY
    while read -r k v u; do
        [ "$k" = MemTotal: ] && { mem=$v; break; }
    done </proc/meminfo
    list_nics
    for i in $NICS; do n=$((n + 1)); done
    rd $S/hostname
    printf 'Cisco IOS Software, IOSv Software (VIOS-ADVENTERPRISEK9-M), Version %s, RELEASE SOFTWARE (fc1)\n' "$IOS_VERSION"
    printf 'Technical Support: http://www.cisco.com/techsupport\nCopyright (c) 1986-2020 by Cisco Systems, Inc.\nCompiled Fri 13-Nov-20 10:41 by prod_rel_team\n'
    printf '(mini-ios: an IOS look-alike test image on Linux %s and BusyBox; not Cisco software)\n\n\n' "$(uname -r)"
    printf 'ROM: Bootstrap program is IOSv\n\n'
    printf '%s uptime is %s\nSystem returned to ROM by reload\n' "$REPLY" "$up"
    printf 'System image file is "flash0:/vios-adventerprisek9-m"\nLast reload reason: Unknown reason\n\n\n\n'
    printf 'Cisco IOSv (revision 1.0) with %sK/%sK bytes of memory.\n' "$((mem * 7 / 8))" "$((mem / 8))"
    printf 'Processor board ID 9MINIIOS001\n%s Gigabit Ethernet interfaces\n' "$n"
    printf 'DRAM configuration is 72 bits wide with parity disabled.\n256K bytes of non-volatile configuration memory.\n'
    if nvram_dev; then
        printf '%sK bytes of virtio data disk %s (nvram)\n' "$(($(cat /sys/class/block/${NVDEV#/dev/}/size) / 2))" "$NVDEV"
    else
        printf 'No data disk: nvram is not available\n'
    fi
    printf '\nConfiguration register is 0x0\n\n'
}

fmt_uptime() {
    local up s w d h m o=
    read -r up _ </proc/uptime
    s=${up%.*}
    w=$((s / 604800)); d=$((s % 604800 / 86400)); h=$((s % 86400 / 3600)); m=$((s % 3600 / 60))
    [ $w -gt 0 ] && { o="$w week"; [ $w -gt 1 ] && o="${o}s"; o="$o, "; }
    [ $d -gt 0 ] && { o="$o$d day"; [ $d -gt 1 ] && o="${o}s"; o="$o, "; }
    [ $h -gt 0 ] && { o="$o$h hour"; [ $h -gt 1 ] && o="${o}s"; o="$o, "; }
    o="$o$m minute"
    [ $m -ne 1 ] && o="${o}s"
    REPLY=$o
}

if_status() { # IFC -> ST (status) PR (protocol)
    local o
    if [ -f $S/if/$1/shut ]; then
        ST='administratively down'; PR=down
        return
    fi
    rd /sys/class/net/$1/carrier; o=$REPLY
    if [ "$o" = 1 ]; then ST=up; PR=up; else ST=down; PR=down; fi
}

show_ip_int_brief() {
    local i a m meth name
    printf '%-26s %-15s %-3s %-6s %-21s %s\n' Interface IP-Address 'OK?' Method Status Protocol
    list_nics
    for i in $NICS; do
        [ -d $S/if/$i ] || if_init $i
        ifname $i
        name=$REPLY
        if [ -f $S/if/$i/addr ]; then
            read -r a m <$S/if/$i/addr
            rd $S/if/$i/method; meth=${REPLY:-manual}
        else
            a=unassigned; meth=unset
        fi
        if_status $i
        printf '%-26s %-15s %-3s %-6s %-21s %s\n' "$name" "$a" YES "$meth" "$ST" "$PR"
    done
}

show_interfaces() { # [IFC]
    local i a m mac mtu rxp rxb txp txb list
    list_nics
    list=${1:-$NICS}
    for i in $list; do
        [ -d $S/if/$i ] || if_init $i
        ifname $i
        a=$REPLY
        if_status $i
        printf '%s is %s, line protocol is %s\n' "$a" "$ST" "$PR"
        rd /sys/class/net/$i/address; mac=$REPLY
        mac=$(echo "$mac" | sed 's/://g; s/\(....\)\(....\)\(....\)/\1.\2.\3/')
        printf '  Hardware is iGbE, address is %s (bia %s)\n' "$mac" "$mac"
        if [ -f $S/if/$i/desc ]; then rd $S/if/$i/desc; printf '  Description: %s\n' "$REPLY"; fi
        if [ -f $S/if/$i/addr ]; then
            read -r a m <$S/if/$i/addr
            mask2len "$m"
            printf '  Internet address is %s/%s\n' "$a" "$PLEN"
        fi
        rd /sys/class/net/$i/mtu; mtu=$REPLY
        printf '  MTU %s bytes, BW 1000000 Kbit/sec, DLY 10 usec,\n     reliability 255/255, txload 1/255, rxload 1/255\n' "$mtu"
        printf '  Encapsulation ARPA, loopback not set\n  Keepalive set (10 sec)\n  Auto Duplex, Auto Speed, link type is auto, media type is RJ45\n'
        rd /sys/class/net/$i/statistics/rx_packets; rxp=$REPLY
        rd /sys/class/net/$i/statistics/rx_bytes; rxb=$REPLY
        rd /sys/class/net/$i/statistics/tx_packets; txp=$REPLY
        rd /sys/class/net/$i/statistics/tx_bytes; txb=$REPLY
        printf '     %s packets input, %s bytes, 0 no buffer\n' "$rxp" "$rxb"
        printf '     %s packets output, %s bytes, 0 underruns\n' "$txp" "$txb"
    done
}

show_ip_route() {
    local l dst via dev src gw=
    printf 'Codes: L - local, C - connected, S - static, R - RIP, M - mobile, B - BGP\n'
    printf '       D - EIGRP, EX - EIGRP external, O - OSPF, IA - OSPF inter area\n'
    printf '       * - candidate default\n\n'
    ip -4 route show >$S/rt.$$ 2>/dev/null
    while read -r l; do
        case $l in default\ via\ *) gw=${l#default via }; gw=${gw%% *} ;; esac
    done <$S/rt.$$
    if [ -n "$gw" ]; then
        printf 'Gateway of last resort is %s to network 0.0.0.0\n\n' "$gw"
    else
        printf 'Gateway of last resort is not set\n\n'
    fi
    while read -r l; do
        set -f; set -- $l; set +f
        dst=$1; via=; dev=; src=
        [ "$dst" = default ] && dst=0.0.0.0/0
        case $dst in */*) ;; *) dst=$dst/32 ;; esac
        shift
        while [ $# -gt 0 ]; do
            case $1 in
            via) via=$2; shift ;;
            dev) dev=$2; shift ;;
            src) src=$2; shift ;;
            esac
            shift
        done
        case $dev in eth*) ifname $dev; dev=$REPLY ;; esac
        if [ -n "$via" ]; then
            if [ "$dst" = 0.0.0.0/0 ]; then
                printf 'S*    %s [1/0] via %s\n' "$dst" "$via"
            else
                printf 'S        %s [1/0] via %s\n' "$dst" "$via"
            fi
        else
            printf 'C        %s is directly connected, %s\n' "$dst" "$dev"
            [ -n "$src" ] && printf 'L        %s/32 is directly connected, %s\n' "$src" "$dev"
        fi
    done <$S/rt.$$
    rm -f $S/rt.$$
}

show_startup() {
    local n
    if [ -f $S/startup-config ]; then
        n=$(wc -c <$S/startup-config)
        printf 'Using %s out of %s bytes\n' "${n##* }" $NVRAM_SIZE
        cat $S/startup-config
    else
        printf 'startup-config is not present\n'
    fi
}

# show ... -> output on stdout; returns the parser status
show_cmd() {
    [ $# -gt 0 ] || return 2
    if is "$1" running-config 2 && [ "$MODE" != user ]; then
        [ $# -eq 1 ] || { shift; bad $#; return; }
        show_running
    elif is "$1" startup-config 3 && [ "$MODE" != user ]; then
        [ $# -eq 1 ] || { shift; bad $#; return; }
        show_startup
    elif is "$1" version 1; then
        [ $# -eq 1 ] || { shift; bad $#; return; }
        show_version
    elif is "$1" ip 2; then
        shift
        [ $# -gt 0 ] || return 2
        if is "$1" interface 1; then
            shift
            if [ $# -eq 0 ]; then
                show_interfaces | grep -E '^[A-Z]|Internet address'
            elif is "$1" brief 1; then
                [ $# -eq 1 ] || { shift; bad $#; return; }
                show_ip_int_brief
            else
                parse_if "$@"
                case $? in 0) ;; 2) return 2 ;; *) bad $#; return ;; esac
                show_interfaces $IFC | grep -E '^[A-Z]|Internet address'
            fi
        elif is "$1" route 1; then
            [ $# -eq 1 ] || { shift; bad $#; return; }
            show_ip_route
        else
            bad $#
        fi
    elif is "$1" interfaces 2; then
        shift
        if [ $# -eq 0 ]; then
            show_interfaces
        else
            parse_if "$@"
            case $? in 0) ;; 2) return 2 ;; *) bad $#; return ;; esac
            show_interfaces $IFC
        fi
    elif is "$1" clock 2; then
        date '+*%H:%M:%S.000 UTC %a %b %d %Y'
    elif is "$1" users 1; then
        printf '    Line       User       Host(s)              Idle       Location\n*  0 con 0     %-10s idle                 00:00:00\n\n' "${LOGIN_USER:-admin}"
    else
        bad $#
    fi
}

# ------------------------------------------------------------------ output

# page FILE: print with IOS paging (terminal length TLEN, 0 = no paging)
page() {
    local f=$1 n=0 per k l
    if [ "${TLEN:-0}" -eq 0 ]; then
        cat "$f"
        return 0
    fi
    per=$((TLEN - 1))
    exec 4<"$f"
    while IFS= read -r l <&4 || [ -n "$l" ]; do
        if [ $n -ge $per ]; then
            printf ' --More-- '
            k=
            IFS= read -rsn1 k || { printf '\n'; break; }
            printf '\b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\b'
            case $k in q | Q) break ;; esac
            n=0
        fi
        printf '%s\n' "$l"
        n=$((n + 1))
    done
    exec 4<&-
    return 0
}

# filter FILE "| include re" etc. -> rewrites FILE; 1 on a bad filter
filter() {
    local f=$1 spec=$2 kind re
    set -f
    set -- $spec
    set +f
    [ $# -ge 2 ] || return 2
    kind=$1
    shift
    re=$*
    if is "$kind" include 1; then
        grep -E -e "$re" "$f" >"$f.f"
    elif is "$kind" exclude 1; then
        grep -v -E -e "$re" "$f" >"$f.f"
    elif is "$kind" begin 1; then
        awk -v re="$re" 'p || $0 ~ re { p = 1; print }' "$f" >"$f.f"
    elif is "$kind" section 1; then
        awk -v re="$re" '/^[^ ]/ { p = ($0 ~ re) } p || ($0 ~ re) { print }' "$f" >"$f.f"
    else
        return 1
    fi
    mv "$f.f" "$f"
    return 0
}

report() { # status from a parser -> IOS error messages
    case $1 in
    1)
        local pos=$((${#PROMPT} + LEAD)) i=1 w
        set -f
        for w in $WORDS; do
            [ $i -ge "$ERRW" ] && break
            pos=$((pos + ${#w} + 1))
            i=$((i + 1))
        done
        set +f
        printf "%${pos}s^\n" ''
        printf "%% Invalid input detected at '^' marker.\n\n"
        ;;
    2) printf '%% Incomplete command.\n\n' ;;
    esac
}

# ---------------------------------------------------------------- exec mode

do_ping() { # ping A.B.C.D [repeat N] [timeout S] [source ADDR|IF]
    local dst=$1 cnt=5 to=2 wt=1 src= ok=0 i r t m min= max=0 sum=0
    [ -n "$dst" ] || return 2
    ip2int "$dst" || { printf '%% Unrecognized host or address, or protocol not running.\n\n'; return 3; }
    shift
    while [ $# -gt 0 ]; do
        if is "$1" repeat 1 && [ -n "$2" ]; then
            case $2 in *[!0-9]* | 0) shift; bad $#; return ;; esac
            cnt=$2; shift 2
        elif is "$1" timeout 1 && [ -n "$2" ]; then
            case $2 in *[!0-9]*) shift; bad $#; return ;; esac
            to=$2; wt=$2; shift 2
        elif is "$1" source 1 && [ -n "$2" ]; then
            if ip2int "$2"; then src=$2; shift 2
            else
                shift
                parse_if "$@" || { bad $#; return; }
                shift $IFUSED
                [ -f $S/if/$IFC/addr ] || { ifname $IFC; printf '%% Invalid source interface - IP not enabled or interface is down\n'; return 3; }
                read -r src m <$S/if/$IFC/addr
            fi
        else
            bad $#
            return
        fi
    done
    printf 'Type escape sequence to abort.\n'
    printf 'Sending %s, 100-byte ICMP Echos to %s, timeout is %s seconds:\n' "$cnt" "$dst" "$to"
    [ -n "$src" ] && printf 'Packet sent with a source address of %s\n' "$src"
    i=0
    while [ $i -lt "$cnt" ]; do
        i=$((i + 1))
        if [ -n "$src" ]; then
            r=$(ping -c 1 -W "$wt" -s 72 -I "$src" "$dst" 2>/dev/null)
        else
            r=$(ping -c 1 -W "$wt" -s 72 "$dst" 2>/dev/null)
        fi
        case $r in
        *'bytes from'*)
            ok=$((ok + 1))
            t=${r#*time=}
            t=${t%% *}
            t=${t%.*}
            [ -n "$t" ] || t=0
            [ "$t" -lt 1 ] && t=1
            sum=$((sum + t))
            [ -z "$min" ] || [ "$t" -lt "$min" ] && min=$t
            [ "$t" -gt "$max" ] && max=$t
            printf '!'
            ;;
        *) printf '.' ;;
        esac
        [ -n "$GOT" ] && break
    done
    printf '\nSuccess rate is %s percent (%s/%s)' "$((ok * 100 / cnt))" "$ok" "$cnt"
    if [ $ok -gt 0 ]; then
        printf ', round-trip min/avg/max = %s/%s/%s ms' "$min" "$((sum / ok))" "$max"
    fi
    printf '\n'
    return 0
}

confirm() { # confirm PROMPT -> 0 if confirmed ([confirm]: RETURN or y)
    local a
    printf '%s' "$1"
    IFS= read -r a || return 1
    case $a in '' | y | Y | yes) return 0 ;; esac
    return 1
}

# run a show command with pipe filter and paging
run_show() {
    local f=$S/out.$$ rc
    show_cmd "$@" >$f
    rc=$?
    if [ $rc -eq 0 ] && [ -n "$PIPE" ]; then
        filter $f "$PIPE"
        rc=$?
        [ $rc -eq 1 ] && { rm -f $f; printf "%% Invalid input detected at '|' filter.\n\n"; return 3; }
    fi
    [ $rc -eq 0 ] && page $f
    rm -f $f
    return $rc
}

exec_cmd() { # words; MODE user|priv (also used by "do"); 10 = logout
    [ $# -gt 0 ] || return 0
    local priv=0
    [ "$MODE" = user ] || priv=1
    if is "$1" show 2; then
        shift
        run_show "$@"
    elif is "$1" enable 2; then
        [ $# -eq 1 ] || { shift; bad $#; return; }
        [ $priv = 0 ] && MODE=priv
        return 0
    elif [ $priv = 1 ] && is "$1" disable 4; then
        MODE=user
    elif is "$1" exit 2 || is "$1" logout 4 || is "$1" quit 1; then
        return 10
    elif is "$1" terminal 3; then
        shift
        [ $# -gt 0 ] || return 2
        if is "$1" length 1; then
            [ -n "$2" ] || { shift; return 2; }
            case $2 in *[!0-9]*) shift; bad $#; return ;; esac
            [ "$2" -le 512 ] || { shift; bad $#; return; }
            TLEN=$2
        elif is "$1" width 1 || is "$1" monitor 1; then
            return 0
        elif is "$1" no 2; then
            return 0
        else
            bad $#
        fi
    elif is "$1" ping 2; then
        shift
        do_ping "$@"
    elif [ $priv = 1 ] && is "$1" configure 4; then
        shift
        if [ $# -eq 0 ]; then
            local a
            printf 'Configuring from terminal, memory, or network [terminal]? '
            IFS= read -r a || return 0
            [ -z "$a" ] || is "$a" terminal 1 || { printf '?Must be "terminal", "memory" or "network"\n'; return 3; }
        elif is "$1" terminal 1; then
            [ $# -eq 1 ] || { shift; bad $#; return; }
        else
            bad $#
            return
        fi
        printf 'Enter configuration commands, one per line.  End with CNTL/Z.\n'
        MODE=config
    elif [ $priv = 1 ] && is "$1" write 2; then
        shift
        if [ $# -eq 0 ] || is "$1" memory 1; then
            write_memory
        elif is "$1" erase 1; then
            erase_startup
        elif is "$1" terminal 1; then
            run_show running-config
        else
            bad $#
        fi
    elif [ $priv = 1 ] && is "$1" copy 3; then
        shift
        [ $# -ge 2 ] || return 2
        if is "$1" running-config 2 && is "$2" startup-config 3; then
            write_memory
        elif is "$1" startup-config 3 && is "$2" running-config 2; then
            if [ -f $S/startup-config ]; then
                apply_config $S/startup-config
                printf '[OK]\n'
            else
                printf '%%Error opening nvram:/startup-config (No such file or directory)\n'
            fi
        else
            bad $#
        fi
    elif [ $priv = 1 ] && is "$1" erase 3; then
        shift
        if is "$1" startup-config 3 || is "$1" nvram: 2; then
            erase_startup
        else
            [ $# -gt 0 ] || return 2
            bad $#
        fi
    elif [ $priv = 1 ] && is "$1" reload 3; then
        if confirm 'Proceed with reload? [confirm]'; then
            printf '\n\n*%s: %%SYS-5-RELOAD: Reload requested by console. Reload Reason: Reload Command.\n' "$(date '+%b %d %H:%M:%S.000')"
            sync
            reboot -f
        fi
        printf '\n'
    elif [ "$1" = '?' ]; then
        if [ $priv = 1 ]; then
            printf 'Exec commands:\n  configure   Enter configuration mode\n  copy        Copy from one file to another\n  disable     Turn off privileged commands\n  enable      Turn on privileged commands\n  erase       Erase a filesystem\n  exit        Exit from the EXEC\n  ping        Send echo messages\n  reload      Halt and perform a cold restart\n  show        Show running system information\n  terminal    Set terminal line parameters\n  write       Write running configuration to memory\n\n'
        else
            printf 'Exec commands:\n  enable      Turn on privileged commands\n  exit        Exit from the EXEC\n  ping        Send echo messages\n  show        Show running system information\n  terminal    Set terminal line parameters\n\n'
        fi
    else
        bad $#
    fi
}

erase_startup() {
    if confirm 'Erasing the nvram filesystem will remove all configuration files! Continue? [confirm]'; then
        if nvram_erase; then
            rm -f $S/startup-config
            printf '[OK]\nErase of nvram: complete\n'
        else
            printf '%%Error opening nvram: (No such device)\n'
        fi
    fi
}

# ------------------------------------------------------------- config mode

ignored_global() { # WORD: accepted for compatibility, not stored
    case $1 in
    version | service | boot-start-marker | boot-end-marker | aaa | mmi | multilink | \
        username | redundancy | control-plane | scheduler | enable | logging | ipv6 | ntp | \
        snmp-server | cdp | lldp | license | archive | clock | memory-size | vtp | \
        spanning-tree | crypto | banner | platform | diagnostic) return 0 ;;
    esac
    return 1
}

# config_global: global configuration commands (NEG=1 for "no ...")
config_global() {
    local neg=0 w
    if is "$1" no 2; then
        neg=1
        shift
        [ $# -gt 0 ] || return 2
    fi
    lc "$1"
    w=$REPLY
    if is "$1" hostname 2; then
        if [ $neg = 1 ]; then set_hostname Router; return 0; fi
        [ -n "$2" ] || return 2
        [ $# -eq 2 ] || { shift 2; bad $#; return; }
        case $2 in
        [A-Za-z]*) ;;
        *) shift; bad $#; return ;;
        esac
        case $2 in *[!A-Za-z0-9._-]*) printf '%% Hostname contains one or more illegal characters.\n'; return 3 ;; esac
        [ ${#2} -le 63 ] || { shift; bad $#; return; }
        set_hostname "$2"
    elif is "$1" interface 3; then
        shift
        [ $neg = 1 ] && { bad $#; return; }
        parse_if "$@"
        case $? in 0) ;; 2) return 2 ;; *) bad $#; return ;; esac
        shift $IFUSED
        [ $# -eq 0 ] || { bad $#; return; }
        MODE=if
        if [ "$LOADING" = 1 ]; then
            # a saved interface block without "shutdown" means "no shutdown"
            if_set_shut $IFC 0
        fi
    elif is "$1" ip 2; then
        shift
        [ $# -gt 0 ] || return 2
        if is "$1" route 2; then
            shift
            [ $# -ge 2 ] || return 2
            ip2int "$1" || { bad $#; return; }
            local net=$IPN n=$1 m=$2 h=$3
            mask2len "$2" || { shift; bad $#; return; }
            [ $(( net & ~IPN & 4294967295 )) -eq 0 ] || { printf '%%Inconsistent address and mask\n'; return 3; }
            if [ -z "$h" ]; then
                [ $neg = 1 ] && { route_del "$n" "$m"; return 0; }
                return 2
            fi
            shift 2
            if ip2int "$1"; then
                h=$1
                shift
            else
                parse_if "$@" || { bad $#; return; }
                ifname $IFC
                h=$REPLY
                shift $IFUSED
            fi
            [ $# -eq 0 ] || { bad $#; return; }
            if [ $neg = 1 ]; then route_del "$n" "$m" "$h"; else route_add "$n" "$m" "$h"; fi
        elif is "$1" domain-lookup 8 || { is "$1" domain 3 && is "$2" lookup 1; }; then
            if [ $neg = 1 ]; then echo no >$S/domain_lookup; else echo yes >$S/domain_lookup; fi
        elif is "$1" domain-name 8 || { is "$1" domain 3 && is "$2" name 1; }; then
            if [ $neg = 1 ]; then : >$S/domain_name; return 0; fi
            is "$1" domain-name 8 && shift || shift 2
            [ $# -eq 1 ] || return 2
            echo "$1" >$S/domain_name
        elif is "$1" cef 3 || is "$1" forward-protocol 2 || is "$1" http 2 || is "$1" routing 4 \
            || is "$1" ssh 2 || is "$1" name-server 2; then
            return 0
        else
            bad $#
        fi
    elif is "$1" line 2; then
        shift
        [ $# -gt 0 ] || return 2
        MODE=line
    elif ignored_global "$w"; then
        return 0
    elif [ $neg = 0 ] && [ "$w" = '?' ]; then
        printf 'Configure commands:\n  do          To run exec commands in config mode\n  end         Exit from configure mode\n  exit        Exit from configure mode\n  hostname    Set system'"'"'s network name\n  interface   Select an interface to configure\n  ip          Global IP configuration subcommands\n  line        Configure a terminal line\n  no          Negate a command or set its defaults\n\n'
    else
        bad $#
    fi
}

config_if() { # interface configuration commands for IFC
    local neg=0 d=$S/if/$IFC
    if is "$1" no 2; then
        neg=1
        shift
        [ $# -gt 0 ] || return 2
    fi
    if is "$1" ip 2 && is "$2" address 2; then
        shift 2
        if [ $neg = 1 ]; then if_set_addr $IFC ""; return 0; fi
        [ $# -ge 2 ] || return 2
        ip2int "$1" || { bad $#; return; }
        local a=$1 m=$2
        ip2int "$m" || { shift; bad $#; return; }
        mask2len "$m" || { printf 'Bad mask 0x%X for address %s\n' "$IPN" "$a"; return 3; }
        shift 2
        [ $# -eq 0 ] || { bad $#; return; }
        if [ "$LOADING" = 1 ]; then if_set_addr $IFC "$a" "$m" NVRAM; else if_set_addr $IFC "$a" "$m" manual; fi
    elif is "$1" shutdown 2; then
        [ $# -eq 1 ] || { shift; bad $#; return; }
        if_set_shut $IFC $((1 - neg))
    elif is "$1" description 3; then
        if [ $neg = 1 ]; then rm -f $d/desc; return 0; fi
        shift
        [ $# -gt 0 ] || return 2
        printf '%s\n' "$*" >$d/desc
    elif is "$1" duplex 2 || is "$1" speed 2 || is "$1" media-type 2 || is "$1" negotiation 3 \
        || is "$1" cdp 2 || is "$1" load-interval 2 || is "$1" keepalive 2 || is "$1" bandwidth 2 \
        || is "$1" mtu 2 || is "$1" ipv6 4 || is "$1" mop 3; then
        return 0
    elif [ "$1" = '?' ]; then
        printf 'Interface configuration commands:\n  description  Interface specific description\n  exit         Exit from interface configuration mode\n  ip           Interface Internet Protocol config commands\n  no           Negate a command or set its defaults\n  shutdown     Shutdown the selected interface\n\n'
    else
        bad $#
    fi
}

config_lineconf() { # line configuration: accepted, not stored
    local w=$1
    is "$w" no 2 && { shift; w=$1; }
    if is "$w" login 3 || is "$w" transport 2 || is "$w" exec-timeout 2 || is "$w" logging 3 \
        || is "$w" privilege 2 || is "$w" password 2 || is "$w" stopbits 2 || is "$w" length 2 \
        || is "$w" width 2 || is "$w" history 2 || is "$w" session-timeout 2 || is "$w" access-class 2; then
        return 0
    fi
    bad $#
}

# one configuration line in MODE config|if|line; global commands typed in a
# sub-mode run in global mode and leave the sub-mode (as IOS does)
config_line() {
    local rc e1
    if is "$1" exit 3; then
        [ $# -eq 1 ] || { shift; bad $#; return; }
        case $MODE in
        config) MODE=priv ;;
        *) MODE=config ;;
        esac
        return 0
    elif is "$1" end 2; then
        [ $# -eq 1 ] || { shift; bad $#; return; }
        MODE=priv
        return 0
    elif is "$1" do 2; then
        shift
        [ $# -gt 0 ] || return 2
        local sm=$MODE
        MODE=priv
        exec_cmd "$@"
        rc=$?
        MODE=$sm
        [ $rc -eq 10 ] && return 0
        return $rc
    fi
    case $MODE in
    if)
        config_if "$@"
        rc=$?
        [ $rc -eq 1 ] || return $rc
        e1=$ERRW
        MODE=config
        config_global "$@"
        rc=$?
        if [ $rc -ne 0 ]; then
            MODE=if
            [ "$e1" -gt "$ERRW" ] && ERRW=$e1
        fi
        return $rc
        ;;
    line)
        config_lineconf "$@"
        rc=$?
        [ $rc -eq 1 ] || return $rc
        e1=$ERRW
        MODE=config
        config_global "$@"
        rc=$?
        if [ $rc -ne 0 ]; then
            MODE=line
            [ "$e1" -gt "$ERRW" ] && ERRW=$e1
        fi
        return $rc
        ;;
    *)
        config_global "$@"
        ;;
    esac
}

# ---------------------------------------------------------------- session

mkprompt() {
    rd $S/hostname
    case $MODE in
    user) PROMPT="$REPLY>" ;;
    priv) PROMPT="$REPLY#" ;;
    config) PROMPT="$REPLY(config)#" ;;
    if) PROMPT="$REPLY(config-if)#" ;;
    line) PROMPT="$REPLY(config-line)#" ;;
    esac
}

process_line() { # returns 10 on logout
    local line=$1 rc
    PIPE=
    case $line in
    *"$CTRLZ"*)
        case $MODE in config | if | line) MODE=priv ;; esac
        return 0
        ;;
    *'|'*)
        PIPE=${line#*|}
        line=${line%%|*}
        ;;
    esac
    set -f
    set -- $line
    set +f
    [ $# -gt 0 ] || return 0
    case $1 in '!'*) return 0 ;; esac
    NW=$#
    WORDS=$*
    local lead=${line%%[! 	]*}
    LEAD=${#lead}
    case $MODE in
    user | priv) exec_cmd "$@" ;;
    *) config_line "$@" ;;
    esac
    rc=$?
    [ $rc -eq 10 ] && return 10
    report $rc
    return 0
}

login() {
    local u p
    printf '\n\nUser Access Verification\n\n'
    while :; do
        printf 'Username: '
        IFS= read -r u || return 1
        [ -n "$u" ] || continue
        printf 'Password: '
        IFS= read -rs p || { printf '\n'; return 1; }
        printf '\n'
        u=${u%"$CR"}
        p=${p%"$CR"}
        if [ "$u" = "$USER_OK" ] && [ "$p" = "$PASS_OK" ]; then
            LOGIN_USER=$u
            printf '\n'
            return 0
        fi
        printf '%% Login invalid\n\n'
    done
}

session() {
    local line eofs=0 h
    stty sane susp undef eof undef quit undef 2>/dev/null
    trap 'GOT=1' INT
    trap '' QUIT TSTP
    rd $S/hostname; h=$REPLY
    if [ -f $S/console-used ]; then
        printf '\n\n%s con0 is now available\n\n\n\n\n\nPress RETURN to get started!\n\n' "$h"
    else
        : >$S/console-used
        printf '\n\nPress RETURN to get started!\n\n\n'
    fi
    GOT=
    while ! IFS= read -r line; do
        [ -n "$GOT" ] && { GOT=; continue; }
        sleep 1
    done
    GOT=
    until login; do
        [ -n "$GOT" ] && { GOT=; printf '\n'; continue; }
        sleep 1
    done
    cli 20
}

# cli MAX_EOFS: the exec/config CLI of a logged-in session, until logout (or MAX_EOFS
# end-of-files in a row: a console that went away; a vty gives up at the first)
cli() {
    local line eofs=0
    MODE=user
    TLEN=24
    while :; do
        mkprompt
        printf '%s' "$PROMPT"
        GOT=
        if ! IFS= read -r line; then
            if [ -n "$GOT" ]; then
                printf '\n'
                continue
            fi
            eofs=$((eofs + 1))
            [ $eofs -ge "$1" ] && break
            sleep 1
            continue
        fi
        eofs=0
        line=${line%"$CR"}
        process_line "$line"
        [ $? -eq 10 ] && break
    done
    rm -f $S/out.$$ $S/cfg.$$
    return 0
}

# vty: one telnet session (busybox telnetd runs it on a pty, as IOS' "line vty 0 4" with
# "login local"): the same login and CLI as the console, ending with the connection
vty() {
    stty sane susp undef eof undef quit undef 2>/dev/null
    trap 'GOT=1' INT
    trap '' QUIT TSTP
    local tries=0
    until login; do
        tries=$((tries + 1))
        [ $tries -ge 3 ] && return 0
    done
    cli 1
}

# ssh: one SSH session (dropbear checked the login, as IOS' "login local" on a vty with
# "transport input ssh"): the CLI, ending with the connection
ssh_session() {
    stty sane susp undef eof undef quit undef 2>/dev/null
    trap 'GOT=1' INT
    trap '' QUIT TSTP
    cli 1
}

# ------------------------------------------------------------------- boot

boot() {
    local i f=$S/startup.load rc n=0 ts
    state_init
    echo 1 >/proc/sys/net/ipv4/ip_forward 2>/dev/null
    list_nics
    for i in $NICS; do n=$((n + 1)); done
    printf '\n              Restricted Rights Legend\n\n'
    printf 'Use, duplication, or disclosure by the Government is\nsubject to restrictions as set forth in subparagraph\n(c) of the Commercial Computer Software - Restricted\nRights clause at FAR sec. 52.227-19 and subparagraph\n(c) (1) (ii) of the Rights in Technical Data and Computer\nSoftware clause at DFARS sec. 252.227-7013.\n\n'
    printf '           Cisco Systems, Inc.\n           170 West Tasman Drive\n           San Jose, California 95134-1706\n\n\n\n'
    printf 'Cisco IOS Software, IOSv Software (VIOS-ADVENTERPRISEK9-M), Version %s, RELEASE SOFTWARE (fc1)\n' "$IOS_VERSION"
    printf 'Technical Support: http://www.cisco.com/techsupport\nCopyright (c) 1986-2020 by Cisco Systems, Inc.\n'
    printf '(mini-ios test image: Linux + BusyBox, not Cisco software)\n\n'
    printf 'Installed image archive\nCisco IOSv (revision 1.0) with 460137K/62464K bytes of memory.\n'
    printf 'Processor board ID 9MINIIOS001\n%s Gigabit Ethernet interfaces\n' "$n"
    printf 'DRAM configuration is 72 bits wide with parity disabled.\n256K bytes of non-volatile configuration memory.\n\n'
    nvram_read $f
    rc=$?
    ts=$(date '+%b %d %H:%M:%S.000')
    case $rc in
    0)
        cp $f $S/startup-config
        apply_config $f
        printf '*%s: %%SYS-5-CONFIG_STARTUP: Loading startup-config from nvram\n' "$ts"
        ;;
    2) printf '*%s: %%SYS-4-NV_INVALID: Startup config in nvram is corrupt, ignored\n' "$ts" ;;
    *)
        if [ -n "$NVDEV" ]; then
            printf '*%s: %%SYS-6-NVRAM: startup-config is not present (blank nvram)\n' "$ts"
        else
            printf '*%s: %%SYS-4-NVRAM: no data disk, nvram not available\n' "$ts"
        fi
        ;;
    esac
    rm -f $f
    for i in $NICS; do
        ifname $i
        if [ -f $S/if/$i/shut ]; then
            printf '*%s: %%LINK-5-CHANGED: Interface %s, changed state to administratively down\n' "$ts" "$REPLY"
        else
            printf '*%s: %%LINK-3-UPDOWN: Interface %s, changed state to up\n' "$ts" "$REPLY"
        fi
    done
    printf '*%s: %%SYS-5-RESTART: System restarted --\n' "$ts"
    printf 'Cisco IOS Software, IOSv Software (VIOS-ADVENTERPRISEK9-M), Version %s, RELEASE SOFTWARE (fc1)\n' "$IOS_VERSION"
}

case $1 in
boot) boot ;;
session) session ;;
vty) vty ;;
ssh) ssh_session ;;
*)
    echo "usage: ios boot|session|vty|ssh" >&2
    exit 2
    ;;
esac
