#!/usr/bin/env bash
# ceph-local.sh - a throw-away Ceph cluster for tests: one monitor and one
# OSD (memstore: objects held in the OSD's memory), on 127.0.0.1 only, in a
# temporary directory, without cephx and without a manager.
#
#   tools/ceph-local.sh start [POOL]   start it (pool POOL, default "cow"),
#                                      print CEPH_CONF=..., CEPH_LOCAL_DIR=...
#                                      and POOL=... lines (eval-able)
#   tools/ceph-local.sh stop DIR       stop the daemons it started (by their
#                                      process ids, recorded in DIR/pids) and
#                                      remove DIR
#   tools/ceph-local.sh restart-osd DIR  kill -9 the OSD and start it again
#                                      (for fault tests; needs bluestore)
#
# CEPH_LOCAL_STORE=bluestore keeps the objects in a sparse 4 GiB file
# (DIR/osd.0.block) instead of the OSD's memory (memstore, the default).
#
# Needs the Debian packages ceph-mon ceph-osd ceph-common (make deps-rados).
# The monitor listens on a free port chosen at start (two clusters may run
# side by side); the OSD picks its own ports.  Nothing outside DIR is
# written.  Start fails (status 1, the logs' tails printed, every daemon
# stopped) if the cluster does not take a write within 60 s.
#
# Pitfalls this script avoids: the monitor must be given a "v2:" address
# (a plain address makes the client try the v1 protocol, which nothing
# listens on), and the admin sockets and pid files must go under DIR (the
# defaults are under /var/run/ceph, shared and root-only).
set -euo pipefail

die() { echo "ceph-local.sh: $*" >&2; exit 1; }

stop_cluster() {
    local d=$1 p i
    [ -f "$d/pids" ] || die "$d/pids: no cluster of ours there"
    # the OSD first (recorded last), then the monitor
    for p in $(tac "$d/pids"); do kill "$p" 2>/dev/null || true; done
    for p in $(cat "$d/pids"); do
        for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$d"
}

# Kills the OSD (kill -9) and starts it again on the same data (a fault
# test: only bluestore keeps the objects), replacing its pid in DIR/pids.
restart_osd() {
    local d=$1 old i
    [ -f "$d/pids" ] || die "$d/pids: no cluster of ours there"
    old=$(sed -n 2p "$d/pids")
    [ -n "$old" ] || die "$d/pids: no OSD recorded"
    kill -9 "$old" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    export CEPH_CONF="$d/ceph.conf"
    # its own session: not in the caller's process group (Check kills that
    # group when a test case ends)
    setsid ceph-osd -f -i 0 >>"$d/log/osd.out" 2>&1 &
    sed -i "2s/.*/$!/" "$d/pids"
    timeout 60 bash -c 'until ceph osd stat 2>/dev/null | grep -q "1 up"; do sleep 0.2; done' ||
        die "the OSD did not come back within 60 s"
}

case "${1:-}" in
stop)
    stop_cluster "${2:-${CEPH_LOCAL_DIR:-}}"
    exit 0
    ;;
restart-osd)
    restart_osd "${2:-${CEPH_LOCAL_DIR:-}}"
    exit 0
    ;;
start) ;;
*) die "usage: $0 start [POOL] | stop DIR | restart-osd DIR" ;;
esac
POOL=${2:-cow}
# memstore (objects in the OSD's memory: lost when it stops) or bluestore
# (on a sparse 4 GiB file beside the OSD's directory, never inside it:
# bluestore refuses a block file there), from $CEPH_LOCAL_STORE
STORE=${CEPH_LOCAL_STORE:-memstore}
case $STORE in memstore | bluestore) ;; *) die "CEPH_LOCAL_STORE=$STORE: memstore or bluestore" ;; esac
for b in ceph-mon ceph-osd ceph monmaptool ceph-authtool rados; do
    command -v "$b" >/dev/null ||
        die "$b is missing: install ceph-mon ceph-osd ceph-common (make deps-rados)"
done

D=$(mktemp -d "${TMPDIR:-/tmp}/ceph-local.XXXXXX")
: >"$D/pids"
# On any failure from here on: show why, stop what started, remove DIR.
trap 'rc=$?; if [ $rc -ne 0 ]; then tail -n 20 "$D"/log/* >&2 2>/dev/null || true; stop_cluster "$D"; fi' EXIT

# A free TCP port for the monitor (the kernel's choice; it is released
# before ceph-mon binds it, so a race with another program is possible but
# unlikely; a collision makes ceph-mon fail and this script report it).
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
FSID=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$D/run" "$D/log" "$D/mon.a" "$D/osd.0"
cat >"$D/ceph.conf" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$PORT
public addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd crush chooseleaf type = 0
osd objectstore = $STORE
memstore device bytes = 1073741824
bluestore block path = $D/osd.0.block
bluestore block create = true
bluestore block size = 4294967296
bluestore fsck on mount = false
bluestore fsck on mkfs = false
bluestore cache size = 268435456
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2
ms async op threads = 1
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
keyring = $D/keyring
mon data = $D/\$name
osd data = $D/osd.\$id
EOF
export CEPH_CONF="$D/ceph.conf"
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    >/dev/null
monmaptool --create --fsid "$FSID" --addv a "v2:127.0.0.1:$PORT" "$D/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" >>"$D/log/mkfs.out" 2>&1
setsid ceph-mon -f -i a >>"$D/log/mon.a.out" 2>&1 &
echo $! >>"$D/pids"
timeout 30 bash -c 'until ceph -s >/dev/null 2>&1; do sleep 0.2; done' ||
    die "the monitor did not answer within 30 s (port $PORT)"
OSDUUID=$(cat /proc/sys/kernel/random/uuid)
ID=$(ceph osd new "$OSDUUID")
ceph-osd -i "$ID" --mkfs --osd-uuid "$OSDUUID" >>"$D/log/mkfs.out" 2>&1
setsid ceph-osd -f -i "$ID" >>"$D/log/osd.out" 2>&1 &
echo $! >>"$D/pids"
timeout 60 bash -c 'until ceph osd stat 2>/dev/null | grep -q "1 up"; do sleep 0.2; done' ||
    die "the OSD did not come up within 60 s"
ceph osd pool create "$POOL" 8 8 >/dev/null 2>&1 || die "cannot create pool $POOL"
ceph osd pool application enable "$POOL" rados >/dev/null 2>&1 || true
echo probe >"$D/probe"
timeout 60 bash -c "until rados -p '$POOL' put probe '$D/probe' 2>/dev/null; do sleep 0.2; done" ||
    die "pool $POOL took no write within 60 s"
rados -p "$POOL" rm probe >/dev/null 2>&1 || true
rm -f "$D/probe"
echo "CEPH_CONF=$D/ceph.conf"
echo "CEPH_LOCAL_DIR=$D"
echo "POOL=$POOL"
