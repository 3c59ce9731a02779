#!/bin/sh
# test/rados/run.sh BINARY [ARGS...] - make test-rados and bench-rados:
# starts a cluster (tools/ceph-local.sh), runs BINARY (build/check_rados,
# build/bench_rados) with ARGS against it (CEPH_CONF and COW_RADOS_POOL
# set), and always stops the cluster (trap), whatever BINARY does.  Exits
# with BINARY's status (1 if the cluster does not start).
set -u
BIN=$1
shift
t0=$(date +%s)
# bluestore, so that an OSD restart keeps the objects (check_rados's
# osd_restart_under_load)
out=$(CEPH_LOCAL_STORE=${CEPH_LOCAL_STORE:-bluestore} tools/ceph-local.sh start cow) || { echo "test-rados: the test cluster did not start"; exit 1; }
eval "$out"
export CEPH_CONF CEPH_LOCAL_DIR
trap 'tools/ceph-local.sh stop "$CEPH_LOCAL_DIR"' EXIT
trap 'exit 130' INT TERM
echo "test-rados: cluster up in $(($(date +%s) - t0)) s ($CEPH_LOCAL_DIR)"
COW_RADOS_POOL=$POOL CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-300} "$BIN" "$@"
rc=$?
echo "test-rados: exit $rc after $(($(date +%s) - t0)) s"
exit $rc
