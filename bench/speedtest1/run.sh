#!/bin/sh
# bench/speedtest1/run.sh BIN [SPEEDTEST1-OPTIONS] - make bench-speedtest1's
# body: SQLite's speedtest1 (BIN, bench/speedtest1/main.c) on the unix VFS
# and on cow, one after the other in a new temporary directory (under
# $TMPDIR), with --verify, then a table of each test's seconds on both and
# cow/unix, the totals, and the database's size on disk: unix's file (with
# any -wal or -journal left) against cow's container.  Fails if either run
# fails or if their verification hashes (a hash of every result row)
# differ.  REPEAT=N runs each N times, alternating, and keeps each test's
# fastest.
set -u
BIN=$1
shift
REPEAT=${REPEAT:-1}
T=$(mktemp -d "${TMPDIR:-/tmp}/speedtest1.XXXXXX") || exit 1
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT

size_of() { # bytes of the files of database $1
    du -cb --apparent-size "$1" "$1-wal" "$1-journal" 2>/dev/null | tail -n 1 | cut -f1
}

i=1
while [ "$i" -le "$REPEAT" ]; do
    for v in unix cow; do
        rm -f "$T/$v.db" "$T/$v.db-wal" "$T/$v.db-journal" "$T/$v.db-shm"
        if [ "$v" = cow ]; then set -- --cow "$@"; fi
        "$BIN" "$@" --verify "$T/$v.db" >"$T/$v.$i.out" 2>&1 ||
            { cat "$T/$v.$i.out"; echo "speedtest1: the $v run failed"; exit 1; }
        if [ "$v" = cow ]; then shift; fi
        grep "^Verification Hash" "$T/$v.$i.out" >"$T/$v.$i.hash"
        size_of "$T/$v.db" >"$T/$v.size"
    done
    cmp -s "$T/unix.$i.hash" "$T/cow.$i.hash" ||
        { echo "speedtest1: the results differ: unix $(cat "$T/unix.$i.hash"), cow $(cat "$T/cow.$i.hash")"; exit 1; }
    i=$((i + 1))
done

head -n 1 "$T/unix.1.out"
if [ -s "$T/unix.1.hash" ]; then
    same="results identical ($(cut -d' ' -f3- "$T/unix.1.hash"))"
else
    same="no verification hash to compare: this speedtest1 prints none"
fi
echo "speedtest1 $*, $REPEAT run(s) each (the fastest kept); $same"
# each test line: "NNN - name.......   1.234s"
cat "$T"/unix.*.out | awk '/^ *[0-9]+ - .*s$/ { print "unix", $0 }' >"$T/lines"
cat "$T"/cow.*.out | awk '/^ *[0-9]+ - .*s$/ { print "cow", $0 }' >>"$T/lines"
awk -v us="$(cat "$T/unix.size")" -v cs="$(cat "$T/cow.size")" '
{
    v = $1; n = $2 + 0; t = $NF; sub(/s$/, "", t); t += 0
    name = $0; sub(/^[a-z]+ +[0-9]+ - /, "", name); sub(/\.\.+ +[0-9.]+s$/, "", name)
    if (!(n in nm)) { order[++k] = n; nm[n] = name }
    key = v SUBSEP n
    if (!(key in best) || t < best[key]) best[key] = t
}
END {
    printf "| test | unix s | cow s | cow/unix |\n| --- | ---: | ---: | ---: |\n"
    for (i = 1; i <= k; i++) {
        n = order[i]; u = best["unix", n]; c = best["cow", n]
        tu += u; tc += c
        printf "| %d %s | %.3f | %.3f | %s |\n", n, nm[n], u, c, (u > 0 ? sprintf("%.2f", c / u) : "-")
    }
    printf "| total | %.3f | %.3f | %.2f |\n", tu, tc, (tu > 0 ? tc / tu : 0)
    printf "\nsize: unix %.1f MiB, cow %.1f MiB (%.2fx)\n", us / 1048576, cs / 1048576, (us > 0 ? cs / us : 0)
}' "$T/lines"
