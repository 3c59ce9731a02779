#!/bin/sh
# test/slt_full.sh CORPUS_DIR [PATH...]
#
# Runs the sqllogictest corpus twice with build/slt: through the "cow" VFS
# and through SQLite's default VFS.  Passes (exit 0) only if both runs
# report 0 failed records and ran the same records: records written for
# one VFS only ("onlyif cow", "skipif unix") are skipped by the other run
# and counted "for another VFS", so passed + for-another-VFS and skipped -
# for-another-VFS must be equal in both runs.
#
# PATHs (files or directories, relative to CORPUS_DIR) restrict the run to
# part of the corpus; without them the whole of CORPUS_DIR runs.  Run from
# the repository root.  Environment: SLT (default build/slt), SLT_JOBS
# (files run at a time, default: one per CPU).
#
# Exit status: 0 pass, 1 fail, 2 usage error or a run that did not finish.
set -eu

SLT=${SLT:-build/slt}

if [ $# -lt 1 ]; then
    echo "usage: $0 CORPUS_DIR [PATH...]" >&2
    exit 2
fi
corpus=$1
shift
if [ ! -d "$corpus" ]; then
    echo "$0: $corpus: not a directory" >&2
    exit 2
fi
if [ ! -x "$SLT" ]; then
    echo "$0: $SLT is not built (make $SLT)" >&2
    exit 2
fi
jobs=${SLT_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}

# The inputs: CORPUS_DIR itself, or each PATH prefixed with it.
if [ $# -eq 0 ]; then
    set -- "$corpus"
else
    n=$#
    while [ "$n" -gt 0 ]; do
        set -- "$@" "$corpus/$1"
        shift
        n=$((n - 1))
    done
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/slt_full.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# run NAME SLT-ARGS...: runs build/slt, showing its output, keeping the
# output in $tmp/NAME.out and the exit status in $tmp/NAME.rc.
run() {
    name=$1
    shift
    echo "+ $SLT $*"
    {
        rc=0
        "$SLT" "$@" || rc=$?
        echo "$rc" >"$tmp/$name.rc"
    } | tee "$tmp/$name.out"
    echo
}

run default --jobs "$jobs" "$@"
run cow --vfs cow --jobs "$jobs" "$@"

# summary NAME: prints "P S F V" from the last line of the run's output,
# "P passed, F failed, S skipped (V for another VFS)", or nothing if it is
# not there.
summary() {
    tail -n 1 "$tmp/$1.out" | sed -n \
        's/^\([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped (\([0-9]*\) for another VFS)$/\1 \3 \2 \4/p'
}

status=0
echo "summary:"
for name in default cow; do
    rc=$(cat "$tmp/$name.rc")
    sum=$(summary "$name")
    time=$(tail -n 2 "$tmp/$name.out" | sed -n 's/^[0-9]* files, \(.*\)$/\1/p')
    printf '  %-8s %s  (%s, exit %s)\n' "$name" \
        "$(tail -n 1 "$tmp/$name.out")" "${time:-no time}" "$rc"
    if [ -z "$sum" ] || [ "$rc" -eq 2 ]; then
        echo "  $name: the run did not complete" >&2
        status=2
    fi
done
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

read -r d_pass d_skip d_fail d_vfs <<EOF
$(summary default)
EOF
read -r c_pass c_skip c_fail c_vfs <<EOF
$(summary cow)
EOF
if [ "$d_fail" -ne 0 ] || [ "$c_fail" -ne 0 ]; then
    echo "FAIL: failed records (default $d_fail, cow $c_fail)"
    exit 1
fi
if [ $((d_pass + d_vfs)) -ne $((c_pass + c_vfs)) ] ||
    [ $((d_skip - d_vfs)) -ne $((c_skip - c_vfs)) ]; then
    echo "FAIL: counts differ (passed $d_pass / $c_pass," \
        "skipped $d_skip / $c_skip, for another VFS $d_vfs / $c_vfs)"
    exit 1
fi
echo "PASS: cow and default agree: $((d_pass - c_vfs)) records passed in both," \
    "$d_vfs only through cow, $c_vfs only through default; 0 failed," \
    "$((d_skip - d_vfs)) skipped"
