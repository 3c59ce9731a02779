#!/bin/sh
# test/tools.sh - end-to-end tests of cowctl with the real store and VFS.
#
# Run from the repository root by `make check-tools`, which first builds
# build/cowctl, build/cowvfs.so and build/asan-cowctl (ASan + UBSan).
# Every test prints "ok   NAME" or "FAIL NAME" (with what went wrong); the
# script ends with "N passed, N failed" and exits 1 if anything failed.
#
# Containers are made with the stock sqlite3 shell loading the extension,
# then looked at (ls, df, dump), checked (fsck, always with the sanitized
# build), snapshotted, branched, restored and pruned (snapshot, branch,
# restore, delete, list, df; the contents checked through the shell),
# damaged on purpose (tree block, data block, superblocks, truncated, random
# bytes, an ordinary database) and checked again: fsck must find a problem
# and say so in a line, never crash.
set -eu

root=$(pwd)
ctl=$root/build/cowctl
actl=$root/build/asan-cowctl
ext=$root/build/cowvfs
for f in "$ctl" "$actl" "$ext.so"; do
    if [ ! -x "$f" ] && [ ! -f "$f" ]; then
        echo "test/tools.sh: $f is missing; run it with make check-tools" >&2
        exit 1
    fi
done
command -v sqlite3 >/dev/null || { echo "test/tools.sh: the sqlite3 shell is missing" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cowvfs-tools.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
cd "$tmp"

# Leaks count as failures too; set ASAN_OPTIONS=detect_leaks=0 where
# LeakSanitizer cannot run (under ptrace).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export ASAN_OPTIONS

pass=0
fail=0

ok() {
    pass=$((pass + 1))
    echo "ok   $1"
}

bad() {
    fail=$((fail + 1))
    echo "FAIL $1: $2"
    if [ -s out ]; then sed -n '1,8s/^/       out: /p' out; fi
    if [ -s err ]; then sed -n '1,8s/^/       err: /p' err; fi
}

# run CMD...: runs it, stdout to ./out, stderr to ./err, status to $rc.
run() {
    rc=0
    "$@" >out 2>err || rc=$?
}

# sane: 0 unless the last run crashed or a sanitizer spoke.
sane() {
    if grep -q -e 'Sanitizer' -e 'runtime error' err; then return 1; fi
    [ "$rc" -lt 128 ]
}

# exited_as NAME STATUS: 0 if the last run exited with STATUS without
# crashing; else reports NAME as failed (bad) and returns 1.
exited_as() {
    if ! sane; then
        bad "$1" "crashed or sanitizer report (exit $rc)"
    elif [ "$rc" -ne "$2" ]; then
        bad "$1" "exit $rc, expected $2"
    else
        return 0
    fi
    return 1
}

# expect NAME STATUS CMD...: the command exits with STATUS, without crashing.
expect() {
    name=$1
    want=$2
    shift 2
    run "$@"
    if exited_as "$name" "$want"; then
        ok "$name"
    fi
}

# expect_grep NAME STATUS FILE PATTERN CMD...: as expect, and FILE (out or
# err) has a line matching PATTERN (grep -E).
expect_grep() {
    name=$1
    want=$2
    file=$3
    pat=$4
    shift 4
    run "$@"
    if ! exited_as "$name" "$want"; then
        return 0
    fi
    if grep -E -q -- "$pat" "$file"; then
        ok "$name"
    else
        bad "$name" "no line matching /$pat/ in $file"
    fi
}

# cowsql DB: runs the SQL on stdin through the cow VFS in the stock shell.
cowsql() {
    { printf '.load %s\n.open file:%s?vfs=cow%s\n' "$ext" "$1" "${COWSQL_PARAMS:-}"; cat; } |
        sqlite3 -bail
}

# flip FILE OFFSET: inverts the byte at OFFSET.
flip() {
    v=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    v=$((v ^ 255))
    # shellcheck disable=SC2059
    printf "\\$(printf '%03o' "$v")" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# ---------------------------------------------------------------- usage
expect "usage: no command exits 2" 2 "$ctl"
expect "usage: unknown command exits 2" 2 "$ctl" frobnicate x
expect "usage: fsck without PATH exits 2" 2 "$ctl" fsck
expect "usage: fsck with two paths exits 2" 2 "$ctl" fsck a b
expect "usage: unknown option exits 2" 2 "$ctl" ls --bogus x
expect "usage: import with one argument exits 2" 2 "$ctl" import x
expect "usage: dump --block not a multiple of 4096 exits 2" 2 "$ctl" dump --block 123 x
expect "usage: dump --block without value exits 2" 2 "$ctl" dump x --block
expect_grep "usage: bad arguments print a usage line on stderr" 2 err '^usage: cowctl fsck' \
    "$ctl" fsck
expect_grep "--help lists the commands" 0 out 'cowctl import' "$ctl" --help
expect_grep "usage: snapshot without NAME exits 2" 2 err '^usage: cowctl snapshot PATH NAME' \
    "$ctl" snapshot x
expect "usage: branch without arguments exits 2" 2 "$ctl" branch
expect "usage: restore without NAME exits 2" 2 "$ctl" restore x
expect "usage: delete without NAME exits 2" 2 "$ctl" delete x
expect "usage: delete with three arguments exits 2" 2 "$ctl" delete x y z
expect "usage: list without PATH exits 2" 2 "$ctl" list
expect "usage: snapshot --from without value exits 2" 2 "$ctl" snapshot x y --from
expect "usage: snapshot --from '' exits 2" 2 "$ctl" snapshot x y --from ''
expect "usage: restore --into '' exits 2" 2 "$ctl" restore x y --into=
expect "usage: restore --from is not an option of restore" 2 "$ctl" restore x y --from z
expect "usage: balance without PATH exits 2" 2 "$ctl" balance
expect_grep "usage: balance --usage above 100 exits 2" 2 err 'needs a percent, 0 to 100' \
    "$ctl" balance --usage 101 x
expect "usage: balance --usage not a number exits 2" 2 "$ctl" balance --usage=most x
for c in fsck ls df balance dump import export snapshot branch restore delete list; do
    expect_grep "$c --help" 0 out "^usage: cowctl $c" "$ctl" "$c" --help
done

# ---------------------------------------------------------------- a container
# (made without relocation, which its close would run after this churn:
# dump --block and the damage below address blocks by their logical
# address, which is where they are stored only when nothing was remapped)
COWSQL_PARAMS='&reloc=0' cowsql app.db <<'EOF'
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB);
INSERT INTO t SELECT value, 'row ' || value, randomblob(value % 700) FROM generate_series(1, 4000);
CREATE INDEX tb ON t(b);
DELETE FROM t WHERE a % 3 = 0;
UPDATE t SET c = randomblob(100) WHERE a % 5 = 0;
EOF
if [ -f app.db ] && [ ! -e app.db-journal ] && [ ! -e app.db-wal ]; then
    ok "sqlite3 shell makes a container and nothing beside it"
else
    bad "sqlite3 shell makes a container and nothing beside it" "$(ls)"
fi
dbsize=$(printf 'SELECT page_count * page_size FROM pragma_page_count, pragma_page_size;\n' | cowsql app.db)

expect_grep "fsck: a fresh container is clean" 0 out 'clean' "$actl" fsck app.db
fsck_used=$(sed -n 's/.* \([0-9][0-9]*\) bytes used.*/\1/p' out)
# fsck_field NAME: the bytes fsck's clean line in ./out gives as "N NAME".
fsck_field() { grep -o -E "[0-9]+ $1\b" out | awk 'NR == 1 { print $1 }'; }
fsck_phys=$(fsck_field physical)
fsck_remap=$(fsck_field remapped)
expect "fsck -q: prints nothing when clean" 0 "$actl" fsck -q app.db
if [ -s out ]; then bad "fsck -q: output" "printed something"; fi
expect "fsck --no-data -v: clean" 0 "$actl" fsck --no-data -v app.db

expect_grep "ls: lists db" 0 out "^ *$dbsize +[0-9]+  db\$" "$actl" ls app.db
expect_grep "df: shows used bytes" 0 out '^used +[0-9]+' "$actl" df app.db
df_used=$(awk '$1 == "used" { print $2 }' out)
if [ -n "$fsck_used" ] && [ "$df_used" = "$fsck_used" ]; then
    ok "df used bytes = fsck's recomputed bytes ($df_used)"
else
    bad "df used bytes = fsck's recomputed bytes" "df $df_used, fsck $fsck_used"
fi
expect_grep "df: shows the slack relocation could give back" 0 out \
    '^slack +[0-9]+ .*\(relocation could give back\)$' "$actl" df app.db
for f in physical remapped; do
    if grep -E -q "^$f +[0-9]+" out; then ok "df: shows $f bytes"; else bad "df: shows $f bytes" "missing"; fi
done
df_phys=$(awk '$1 == "physical" { print $2 }' out)
df_remap=$(awk '$1 == "remapped" { print $2 }' out)
if [ -n "$fsck_phys" ] && [ "$fsck_phys" = "$df_phys" ] && [ "$fsck_remap" = "$df_remap" ]; then
    ok "fsck's physical and remapped bytes = df's ($df_phys, $df_remap)"
else
    bad "fsck's physical and remapped bytes = df's" \
        "fsck $fsck_phys, $fsck_remap; df $df_phys, $df_remap"
fi
expect_grep "dump: decodes the subvolume tree" 0 out '^subvolume 256 tree' "$actl" dump app.db
for pat in 'INODE_ITEM' 'name "db"' 'EXTENT_DATA' 'METADATA_ITEM' 'BLOCK_GROUP_ITEM' 'EXTENT_CSUM' \
    'ROOT_ITEM' '^using superblock copy' '^  log areas ' '^log' '^  end: '; do
    if grep -q -- "$pat" out; then ok "dump shows $pat"; else bad "dump shows $pat" "missing"; fi
done
# format version 3: each superblock copy's device_bytes and remap tree root
for pat in '^  device_bytes [0-9]+$' '^  remap tree +(none|bytenr [0-9]+ )'; do
    n=$(grep -E -c -- "$pat" out || true)
    if [ "$n" = 2 ]; then ok "dump shows $pat twice"; else bad "dump shows $pat twice" "$n times"; fi
done
fsroot=$(sed -n 's/^subvolume 256 tree (root \([0-9]*\),.*/\1/p' out | head -n 1)
extroot=$(sed -n 's/^extent tree (root \([0-9]*\),.*/\1/p' out | head -n 1)
data=$(sed -n 's/.*disk_bytenr \([0-9]*\) .*/\1/p' out | head -n 1)
expect_grep "dump --block: a superblock" 0 out '^superblock copy 1' "$actl" dump --block 4096 app.db
expect_grep "dump --block: a tree block" 0 out "(leaf|node) $fsroot " "$actl" dump --block "$fsroot" app.db
expect_grep "dump --block: a data block is hex-dumped" 0 out '^  [0-9a-f]{8} ' \
    "$actl" dump --block "$data" app.db

# ---------------------------------------------------------------- WAL mode
cowsql wal.db <<'EOF' >/dev/null
PRAGMA journal_mode = WAL;
CREATE TABLE w(x);
INSERT INTO w SELECT randomblob(200) FROM generate_series(1, 2000);
EOF
expect_grep "fsck: a WAL-mode container is clean" 0 out 'clean' "$actl" fsck wal.db
expect "ls: a WAL-mode container" 0 "$actl" ls wal.db

# ---------------------------------------------------------------- pending log
# The shell killed right after WAL commits with synchronous=FULL: their
# xSyncs went to the log, which nothing replayed.  Pending records are
# legal (a note); dump lists the same records fsck counts.
{ cowsql log.db <<'EOF'
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE l(x);
INSERT INTO l VALUES (randomblob(5000));
INSERT INTO l VALUES (randomblob(5000));
INSERT INTO l VALUES (randomblob(50000));
.system kill -9 $PPID
EOF
} >/dev/null 2>&1 || true
# What the killed shell left in shared memory (as a killed unix process
# leaves its -shm file; the next process to open log.db would take it
# over): removed, so that the tests leave nothing behind.
shmname="/dev/shm/cowvfs-$(stat -c '%d %i' log.db | awk '{ printf "%x-%x", $1, $2 }')"
rm -f "$shmname" "$shmname"-*
expect_grep "fsck: a container with a pending log is clean" 0 out 'clean' "$actl" fsck -v log.db
nlog=$(sed -n 's/^note: log: \([0-9]*\) records\{0,1\} .*/\1/p' out)
expect_grep "dump: a container with a pending log" 0 out '^  end: ' "$actl" dump log.db
ndump=$(grep -c '^  record seq ' out || true)
if [ "${nlog:-0}" = "$ndump" ]; then
    ok "fsck and dump agree on the pending log records ($ndump)"
else
    bad "fsck and dump agree on the pending log records" "fsck ${nlog:-0}, dump $ndump"
fi
if [ "$ndump" -ge 2 ]; then
    # A torn last record (a crash in the middle of its xSync): the log ends
    # before it, and that is legal too.  (A torn earlier record is damage
    # when a later one says it was flushed.)
    last=$(sed -n "s/^  record seq $ndump at block \([0-9]*\) (\([0-9]*\)).*/\1 \2/p" out)
    lastblk=${last% *}
    cp log.db d-log.db
    flip d-log.db $((${last#* } + 100))
    expect_grep "fsck: a torn last log record ends the log (note)" 0 out \
        "^note: log: $((ndump - 1)) records? .*crc mismatch" "$actl" fsck -v d-log.db
    expect_grep "dump: says why the log ends" 0 out "^  end: block $lastblk .*crc mismatch" \
        "$actl" dump d-log.db
else
    echo "skip torn log record: the store left fewer than 2 records"
fi

# ---------------------------------------------------------------- import / export
sqlite3 plain.db >/dev/null <<'EOF'
PRAGMA journal_mode = WAL;
PRAGMA wal_autocheckpoint = 0;
CREATE TABLE p(a INTEGER PRIMARY KEY, b TEXT, c BLOB);
INSERT INTO p SELECT value, 'plain ' || value, randomblob(value % 900) FROM generate_series(1, 3000);
CREATE INDEX pb ON p(b);
.system cp plain.db walsrc.db && cp plain.db-wal walsrc.db-wal
EOF
cp walsrc.db nowal.db
n=$(sqlite3 nowal.db 'SELECT count(*) FROM sqlite_schema')
if [ -s walsrc.db-wal ] && [ "$n" = 0 ]; then
    ok "import source: the data is only in the WAL"
else
    bad "import source: the data is only in the WAL" "wal size $(wc -c <walsrc.db-wal), tables without it: $n"
fi
walsum=$(cksum <walsrc.db-wal)
# The reference dump from a copy: closing a read-write connection would
# checkpoint the WAL into the source.
cp walsrc.db ref.db
cp walsrc.db-wal ref.db-wal
sqlite3 ref.db .dump >src.dump

expect "import: plain db with WAL content" 0 "$actl" import walsrc.db imported.db
if [ "$(cksum <walsrc.db-wal)" = "$walsum" ] && [ "$(wc -c <walsrc.db)" -eq 4096 ]; then
    ok "import: the source is not written (no checkpoint)"
else
    bad "import: the source is not written (no checkpoint)" "source changed"
fi
expect_grep "import: the new container is clean" 0 out 'clean' "$actl" fsck imported.db
expect_grep "import: ls shows the db" 0 out '  db$' "$actl" ls imported.db
expect "export: back to a plain db" 0 "$actl" export imported.db exported.db
sqlite3 exported.db .dump >exp.dump
if cmp -s src.dump exp.dump; then
    ok "import + export: .dump identical ($(wc -l <src.dump) lines)"
else
    bad "import + export: .dump identical" "$(diff src.dump exp.dump | head -n 5)"
fi
printf 'SELECT count(*) FROM p;\n' | cowsql imported.db >cnt
if [ "$(cat cnt)" = 3000 ]; then ok "import: the cow VFS reads the rows"; else bad "import: the cow VFS reads the rows" "$(cat cnt)"; fi
# a container as import's source, and export --container: container to
# container (the live database), the same rows
expect "import: from a container" 0 "$actl" import imported.db recopied.db
expect "export --container: to a new container" 0 "$actl" export --container recopied.db reexported.db
expect_grep "export --container: the copy is clean" 0 out 'clean' "$actl" fsck reexported.db
expect "export: the copy of the copy, plain" 0 "$actl" export reexported.db replain.db
sqlite3 replain.db .dump >re.dump
if cmp -s src.dump re.dump; then
    ok "container -> container -> container -> plain: .dump identical"
else
    bad "container -> container -> container -> plain: .dump identical" "$(diff src.dump re.dump | head -n 5)"
fi

# Progress (tools/progress.c): on a terminal only.  script(1) (util-linux,
# in every Debian) gives the command a pseudo-terminal.
if command -v script >/dev/null 2>&1; then
    script -qec "\"$actl\" import walsrc.db progress.db" /dev/null >progress.out 2>&1
    if tr '\r' '\n' <progress.out | grep -q '^import 100% \[#*\]'; then
        ok "import: a progress line on a terminal"
    else
        bad "import: a progress line on a terminal" "$(tr '\r' '\n' <progress.out | tail -n 3)"
    fi
    script -qec "\"$actl\" fsck imported.db" /dev/null >progress.out 2>&1
    if tr '\r' '\n' <progress.out | grep -q '^fsck 100% \[#*\]'; then
        ok "fsck: a progress line on a terminal"
    else
        bad "fsck: a progress line on a terminal" "$(tr '\r' '\n' <progress.out | tail -n 3)"
    fi
else
    bad "import: a progress line on a terminal" "script(1) is missing (util-linux)"
fi
"$actl" fsck imported.db >/dev/null 2>progress.err
if [ ! -s progress.err ]; then ok "fsck: no progress when stderr is not a terminal"; else bad "fsck: no progress when stderr is not a terminal" "$(head -c 200 progress.err)"; fi
"$actl" export imported.db progress-plain.db 2>progress.err
if [ ! -s progress.err ]; then ok "export: no progress when stderr is not a terminal"; else bad "export: no progress when stderr is not a terminal" "$(head -c 200 progress.err)"; fi

cp imported.db keep.db
expect_grep "import: refuses an existing target" 1 err 'exists' "$actl" import walsrc.db imported.db
if cmp -s imported.db keep.db; then ok "import: existing target untouched"; else bad "import: existing target untouched" "changed"; fi
expect_grep "export: refuses an existing target" 1 err 'exists' "$actl" export imported.db exported.db
touch stale.db-journal
expect_grep "export: refuses a target with a stale journal beside it" 1 err 'exists' \
    "$actl" export imported.db stale.db
if [ ! -e stale.db ]; then ok "export: nothing created beside a stale journal"; else bad "export: nothing created beside a stale journal" "stale.db exists"; fi
head -c 10000 /dev/urandom >junk.bin
expect_grep "import: a file that is not a database fails" 1 err '.' "$actl" import junk.bin x.db
if [ ! -e x.db ]; then ok "import: a failed import leaves no container"; else bad "import: a failed import leaves no container" "x.db exists"; fi
expect_grep "import: a missing source fails" 1 err 'No such file' "$actl" import missing.db y.db
expect_grep "export: a source that is not a container fails" 1 err '.' \
    "$actl" export walsrc.db z.db
if [ ! -e z.db ]; then ok "export: a failed export leaves no file"; else bad "export: a failed export leaves no file" "z.db exists"; fi

# ---------------------------------------------------------------- snapshots and branches
# q DB SQL: the shell's output of SQL on DB through the cow VFS, errors
# included (they then fail the comparison they are part of).
q() {
    printf '%s\n' "$2" | cowsql "$1" 2>&1 || true
}

# expect_eq NAME WANT GOT: GOT is WANT (no command output shown: none ran).
expect_eq() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        fail=$((fail + 1))
        echo "FAIL $1: got '$3', expected '$2'"
    fi
}

# A summary of table s, one line: its rows, its largest key and the total
# length of its text.
sumsql="SELECT count(*) || ' ' || max(a) || ' ' || total(length(b)) FROM"

q snap.db "CREATE TABLE s(a INTEGER PRIMARY KEY, b TEXT);
INSERT INTO s SELECT value, 'snap ' || value || printf('%.*c', value % 300, 'x') FROM generate_series(1, 2000);" >/dev/null
orig=$(q snap.db "$sumsql s;")
t0=$(date -u +%Y-%m-%dT%H:%M:%SZ)
expect "snapshot: of the live database" 0 "$actl" snapshot snap.db before
t1=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ -s out ] || [ -s err ]; then bad "snapshot: prints nothing on success" "output"; else ok "snapshot: prints nothing on success"; fi
q snap.db "DELETE FROM s WHERE a BETWEEN 1001 AND 1100; UPDATE s SET b = 'changed' WHERE a <= 50;
INSERT INTO s VALUES (5000, 'after');" >/dev/null
changed=$(q snap.db "$sumsql s;")
if [ "$changed" != "$orig" ]; then ok "the live database changed ($changed)"; else bad "the live database changed" "$changed"; fi
snapuri="'file:snap.db?vfs=cow&snapshot=before'"
expect_eq "the snapshot holds the rows of before the change" "$orig" \
    "$(q snap.db "ATTACH $snapuri AS p; $sumsql p.s;")"
expect_eq "the snapshot passes integrity_check" ok \
    "$(q snap.db "ATTACH $snapuri AS p; PRAGMA p.integrity_check;")"
if q snap.db "ATTACH $snapuri AS p; INSERT INTO p.s VALUES (9999, 'no');" | grep -q 'readonly'; then
    ok "the snapshot refuses writes"
else
    bad "the snapshot refuses writes" "no readonly error"
fi

expect "branch: --from a snapshot" 0 "$actl" branch snap.db work --from before
branchuri="'file:snap.db?vfs=cow&branch=work'"
expect_eq "the branch starts as its snapshot" "$orig" \
    "$(q snap.db "ATTACH $branchuri AS w; $sumsql w.s;")"
q snap.db "ATTACH $branchuri AS w; INSERT INTO w.s VALUES (7000, 'on the branch');
DELETE FROM w.s WHERE a BETWEEN 10 AND 19;" >/dev/null
expect_eq "the branch takes writes" "1991 7000" \
    "$(q snap.db "ATTACH $branchuri AS w; SELECT count(*) || ' ' || max(a) FROM w.s;")"
expect_eq "writing the branch leaves the snapshot alone" "$orig" \
    "$(q snap.db "ATTACH $snapuri AS p; $sumsql p.s;")"
expect_eq "writing the branch leaves the live database alone" "$changed" \
    "$(q snap.db "$sumsql s;")"
expect "snapshot: --from a branch" 0 "$actl" snapshot snap.db "work-1" --from=work
expect_eq "a snapshot of the branch holds the branch" "1991 7000" \
    "$(q snap.db "ATTACH 'file:snap.db?vfs=cow&snapshot=work-1' AS w; SELECT count(*) || ' ' || max(a) FROM w.s;")"

ts='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
expect_grep "list: a header line" 0 out '^NAME +KIND +CREATED +SOURCE +EXCLUSIVE +SHARED$' \
    "$actl" list snap.db
for pat in "^before +snapshot +$ts +- +[0-9]+ +[0-9]+\$" "^work +branch +$ts +before +[0-9]+ +[0-9]+\$" \
    "^work-1 +snapshot +$ts +work +[0-9]+ +[0-9]+\$"; do
    if grep -E -q -- "$pat" out; then ok "list shows /$pat/"; else bad "list shows /$pat/" "missing"; fi
done
expect_eq "list: oldest first, one line each" "NAME before work work-1" "$(awk '{ print $1 }' out | tr '\n' ' ' | sed 's/ $//')"
created=$(awk '$1 == "before" { print $3 }' out)
digits() { printf '%s' "$1" | tr -dc 0-9; }
if [ "$(digits "$created")" -ge "$(digits "$t0")" ] 2>/dev/null &&
    [ "$(digits "$created")" -le "$(digits "$t1")" ]; then
    ok "list: the creation time is now, in UTC ($created)"
else
    bad "list: the creation time is now, in UTC" "'$created' not in $t0 .. $t1"
fi
# The columns line up under the header.
if awk 'NR == 1 { k = index($0, "KIND"); e = index($0, "EXCLUSIVE") + 9 }
        NR > 1 && (substr($0, k - 2, 2) != "  " || substr($0, k, 1) == " " || substr($0, e, 1) != " ") { bad = 1 }
        END { exit bad }' out; then
    ok "list: an aligned table"
else
    bad "list: an aligned table" "misaligned"
fi
work_excl=$(awk '$1 == "work" { print $5 }' out)

expect_grep "df: a table of exclusive and shared bytes" 0 out '^KIND +EXCLUSIVE +SHARED +NAME$' \
    "$actl" df snap.db
for pat in '^live +[0-9]+ +[0-9.]+ [KMG]?i?B +[0-9]+ +[0-9.]+ [KMG]?i?B +-$' \
    '^snapshot +[0-9]+ .* before$' '^branch +[0-9]+ .* work$' '^snapshot +[0-9]+ .* work-1$' \
    '^used +[0-9]+' '^generation +[0-9]+$'; do
    if grep -E -q -- "$pat" out; then ok "df shows /$pat/"; else bad "df shows /$pat/" "missing"; fi
done
# The live database and the snapshot diverged: each has bytes of its own,
# and they still share the rows nobody changed.
live_excl=$(awk '$1 == "live" { print $2 }' out)
live_shared=$(awk '$1 == "live" { print $5 }' out)
if [ "${live_excl:-0}" -gt 0 ] && [ "${live_shared:-0}" -gt 0 ]; then
    ok "df: the changed live database has exclusive and shared bytes ($live_excl, $live_shared)"
else
    bad "df: the changed live database has exclusive and shared bytes" "'$live_excl' '$live_shared'"
fi
expect_eq "df and list agree on the branch's exclusive bytes" "$work_excl" \
    "$(awk '$1 == "branch" && $NF == "work" { print $2 }' out)"

expect_grep "snapshot: a bad name fails" 1 err '^cowctl: snapshot: snap.db: .*bad snapshot or branch name' \
    "$actl" snapshot snap.db a/b
expect_grep "branch: an empty name fails" 1 err 'bad snapshot or branch name' \
    "$actl" branch snap.db ''
expect_grep "snapshot: a duplicate name fails" 1 err '^cowctl: snapshot: snap.db: .*named before exists' \
    "$actl" snapshot snap.db before
expect_grep "branch: a name taken by a snapshot fails" 1 err 'exists' \
    "$actl" branch snap.db work-1
expect_grep "branch: --from a missing snapshot fails" 1 err 'no snapshot or branch named nope' \
    "$actl" branch snap.db other --from nope
expect_grep "restore: into a snapshot fails" 1 err 'is a snapshot' \
    "$actl" restore snap.db work --into before
expect_grep "restore: from a missing snapshot fails" 1 err 'nope' "$actl" restore snap.db nope
expect_grep "delete: a missing snapshot fails" 1 err 'no snapshot or branch named nope' \
    "$actl" delete snap.db nope
expect_grep "snapshot: a missing container fails" 1 err 'No such file' \
    "$actl" snapshot missing.db x
expect_grep "list: an ordinary database fails" 1 err '^cowctl: list: exported.db: ' \
    "$actl" list exported.db
expect_eq "failed commands made nothing" "NAME before work work-1" \
    "$("$ctl" list snap.db | awk '{ print $1 }' | tr '\n' ' ' | sed 's/ $//')"

# A name with a tab and a backslash is listed escaped, on one line.
expect "branch: a name with a tab" 0 "$actl" branch snap.db "$(printf 'odd\tname\\x')"
expect_grep "list: control characters and backslashes escaped" 0 out '^odd\\tname\\\\x +branch ' \
    "$actl" list snap.db
expect "delete: the name with a tab" 0 "$actl" delete snap.db "$(printf 'odd\tname\\x')"

# ---------------------------------------------------------------- balance
# A container after churn (the issue's measure: 16,384 rows of 500 bytes,
# 90% deleted, VACUUM, the WAL checkpointed away), with the relocator off
# while it is made so that the slack is still there.
{ printf '.load %s\n.open file:churn.db?vfs=cow&reloc=0\n' "$ext"; cat <<'EOF'; } | sqlite3 -bail >/dev/null
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16384)
INSERT INTO t SELECT i, randomblob(500) FROM n;
DELETE FROM t WHERE id % 10 != 0;
VACUUM;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
# (read with the relocator off too: the background relocator of a session
# that only reads would otherwise do the balance's work before it)
churn_sum=$(printf 'SELECT count(*), sum(id) FROM t;\n' | COWSQL_PARAMS='&reloc=0' cowsql churn.db)
cp churn.db churn-tty.db
# df_field FIELD: the bytes of df's line FIELD in ./out.
df_field() { awk -v f="$1" '$1 == f { print $2 }' out; }
expect "df: before balance" 0 "$actl" df churn.db
slack0=$(df_field slack)
if [ -n "$slack0" ] && [ "$slack0" -eq $(($(df_field container) - $(df_field physical))) ] &&
    [ "$slack0" -gt 0 ]; then
    ok "df: slack = container - physical, and some after churn ($slack0)"
else
    bad "df: slack = container - physical, and some after churn" \
        "slack $slack0, container $(df_field container), physical $(df_field physical)"
fi
size0=$(stat -c %s churn.db)
expect "balance: exits 0" 0 "$actl" balance churn.db
if grep -E -q '^balance: group 1 of [0-9]+ relocated, ' out; then
    ok "balance: a plain line per group when stderr is not a terminal"
else
    bad "balance: a plain line per group when stderr is not a terminal" "none"
fi
if [ ! -s err ]; then ok "balance: no progress line when stderr is not a terminal"; else bad "balance: no progress line when stderr is not a terminal" "$(head -c 200 err)"; fi
summary=$(grep -E '^churn.db: [0-9]+ of [0-9]+ block groups relocated, [0-9]+ bytes moved .*; container [0-9]+ -> [0-9]+ bytes' out || true)
before=$(echo "$summary" | sed -n 's/.*container \([0-9]*\) -> .*/\1/p')
after=$(echo "$summary" | sed -n 's/.* -> \([0-9]*\) bytes.*/\1/p')
# Where churn leaves its free space depends on when the background
# writeback ran: when it is all at the end, the shell's close already cut
# it (close trims a free tail even with the relocator off) and the balance
# has less than a block group (1 MiB) to give back.
if [ "$slack0" -ge 1048576 ]; then shrink_wanted=1; else shrink_wanted=0; fi
if [ -n "$summary" ] && [ "$before" = "$size0" ] && [ "$(stat -c %s churn.db)" = "$after" ] &&
    { [ "$after" -lt "$before" ] || { [ $shrink_wanted = 0 ] && [ "$after" -le "$before" ]; }; }; then
    ok "balance: the summary says the container shrank (when it had a group's slack), and it did ($before -> $after, slack before $slack0)"
else
    bad "balance: the summary says the container shrank, and it did" \
        "summary '$summary'; file $size0 -> $(stat -c %s churn.db); slack before $slack0"
fi
expect_grep "balance: the container is clean after it" 0 out 'clean' "$actl" fsck churn.db
fsck_phys=$(fsck_field physical)
fsck_remap=$(fsck_field remapped)
expect "df: after balance" 0 "$actl" df churn.db
if { [ "$(df_field slack)" -lt "$slack0" ] || { [ $shrink_wanted = 0 ] && [ "$(df_field slack)" -le "$slack0" ]; }; } &&
    [ "$(df_field slack)" -eq $(($(df_field container) - $(df_field physical))) ]; then
    ok "df: less slack after balance (when it had a group's; $slack0 -> $(df_field slack))"
else
    bad "df: less slack after balance" "$slack0 -> $(df_field slack)"
fi
if [ -n "$fsck_remap" ] && [ "$fsck_remap" -gt 0 ] && [ "$fsck_remap" = "$(df_field remapped)" ] &&
    [ "$fsck_phys" = "$(df_field physical)" ]; then
    ok "fsck after balance: remapped bytes, and they and the physical bytes are df's ($fsck_remap, $fsck_phys)"
else
    bad "fsck after balance: remapped bytes, and they and the physical bytes are df's" \
        "fsck $fsck_remap remapped, $fsck_phys physical; df $(df_field remapped), $(df_field physical)"
fi
# (after df and fsck: the session's own commit may copy a remapped tree
# block, which changes what is remapped)
expect_eq "balance: the rows are all there" "$churn_sum" \
    "$(printf 'SELECT count(*), sum(id) FROM t;\n' | cowsql churn.db)"
if command -v script >/dev/null 2>&1; then
    script -qec "\"$actl\" balance --usage 100 churn-tty.db" /dev/null >progress.out 2>&1
    if tr '\r' '\n' <progress.out | grep -q '^balance 100% \[#*\] .*/s'; then
        ok "balance: a progress line on a terminal"
    else
        bad "balance: a progress line on a terminal" "$(tr '\r' '\n' <progress.out | tail -n 3)"
    fi
    if ! tr '\r' '\n' <progress.out | grep -q '^balance: group'; then
        ok "balance: no plain lines on a terminal"
    else
        bad "balance: no plain lines on a terminal" "$(tr '\r' '\n' <progress.out | head -n 3)"
    fi
else
    bad "balance: a progress line on a terminal" "script(1) is missing (util-linux)"
fi
expect_grep "balance: not a container fails" 1 err '^cowctl: balance: ' "$actl" balance src.dump

# Close gives the space back after a WAL's churn: a table written in one
# transaction, then 500 single-row WAL transactions and the WAL deleted
# (bench's bulk and updates, --quick).  The first balance at close could
# move data down, but the tree blocks left at the tail found no metadata
# room below (a data group there held only remapped blocks), so the file
# kept 1.7 MiB of slack: close now balances again while that gives back,
# and such a group takes tree blocks.  The updates leave bookends (pages of
# the table's extents no item maps any more), which close drops where they
# lie: the container went from 3.8 to 2.8 MiB, with holes among the kept
# blocks (about 580 KiB of slack, under the 1.7 MiB of that bug).
cowsql upd.db <<'EOF' >/dev/null
CREATE TABLE t(id INTEGER PRIMARY KEY, payload TEXT NOT NULL);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO t SELECT i, substr(lower(hex(randomblob(60))), 1, 50 + abs(random()) % 51) FROM n;
COMMIT;
EOF
{ echo 'PRAGMA journal_mode=WAL;'; echo 'PRAGMA synchronous=NORMAL;'
  i=0; while [ $i -lt 500 ]; do
      echo 'UPDATE t SET payload = substr(payload, 2) || substr(payload, 1, 1) WHERE id = abs(random()) % 20000 + 1;'
      i=$((i + 1)); done
  echo 'PRAGMA journal_mode=DELETE;'; } | cowsql upd.db >/dev/null
expect "df: after a WAL's churn and close" 0 "$actl" df upd.db
if [ -n "$(df_field slack)" ] && [ "$(df_field slack)" -lt 786432 ]; then
    ok "close: a WAL's churn leaves under 768 KiB of slack ($(df_field slack) of $(df_field container))"
else
    bad "close: a WAL's churn leaves under 768 KiB of slack" \
        "slack $(df_field slack) of $(df_field container)"
fi
if [ -n "$(df_field container)" ] && [ "$(df_field container)" -lt 3407872 ]; then
    ok "close: a WAL's churn leaves a container under 3.25 MiB, bookends dropped ($(df_field container))"
else
    bad "close: a WAL's churn leaves a container under 3.25 MiB, bookends dropped" \
        "container $(df_field container)"
fi
expect_grep "close: the container is clean after a WAL's churn" 0 out 'clean' "$actl" fsck upd.db

# The container held open by another process (docs/DESIGN.md, "Several
# processes"): cowctl works on it, and the other process goes on reading.
rm -f held held.out
{ printf '.load %s\n.open file:snap.db?vfs=cow\nSELECT count(*) FROM s;\n.system touch held; while [ -e held ]; do sleep 0.1; done\nSELECT count(*) FROM s;\nSELECT count(*) FROM cow_snapshots;\n' "$ext" |
    sqlite3 >held.out; } 2>&1 &
holder=$!
i=0
while [ ! -e held ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if [ -e held ]; then
    for c in "list snap.db" "snapshot snap.db held1" "branch snap.db held2" "delete snap.db held1" \
        "delete snap.db held2" "balance snap.db"; do
        # shellcheck disable=SC2086
        expect "${c%% *}: a container open in another process" 0 "$actl" $c
    done
    expect_grep "fsck: a container open in another process is refused, clearly" 1 err \
        '^cowctl: fsck: snap.db: the container is open in another process; fsck checks a closed' \
        "$actl" fsck snap.db
else
    bad "a shell holds the container open" "it never did"
fi
rm -f held
wait $holder || true
nsnap=$(q snap.db "SELECT count(*) FROM cow_snapshots;")
expect_eq "the process that held it open read it throughout" "$(q snap.db "SELECT count(*) FROM s;")
$(q snap.db "SELECT count(*) FROM s;")
$nsnap" "$(cat held.out)"

expect "restore: the live database from the snapshot" 0 "$actl" restore snap.db before
expect_eq "restore: the live rows are back" "$orig" "$(q snap.db "$sumsql s;")"
expect_eq "restore: the restored database passes integrity_check" ok \
    "$(q snap.db "PRAGMA integrity_check;")"
expect_eq "restore: the snapshot is unchanged" "$orig" \
    "$(q snap.db "ATTACH $snapuri AS p; $sumsql p.s;")"
expect "restore --into: the branch from the snapshot" 0 "$actl" restore snap.db before --into work
expect_eq "restore --into: the branch's rows are the snapshot's" "$orig" \
    "$(q snap.db "ATTACH $branchuri AS w; $sumsql w.s;")"
expect_eq "restore --into: the live database is left alone" "$orig" "$(q snap.db "$sumsql s;")"
q snap.db "INSERT INTO s VALUES (6000, 'after the restore');" >/dev/null
expect_eq "restore: the restored database takes writes" "2001 6000" \
    "$(q snap.db "SELECT count(*) || ' ' || max(a) FROM s;")"

# Deleting frees exactly the bytes list called exclusive.
expect "list before delete" 0 "$actl" list snap.db
work_excl=$(awk '$1 == "work" { print $5 }' out)
expect "df before delete" 0 "$actl" df snap.db
used_before=$(awk '$1 == "used" { print $2 }' out)
expect "delete: a branch" 0 "$actl" delete snap.db work
expect "df after delete" 0 "$actl" df snap.db
used_after=$(awk '$1 == "used" { print $2 }' out)
if [ -n "$work_excl" ] && [ -n "$used_before" ] && [ -n "$used_after" ] &&
    [ $((used_before - used_after)) -eq "$work_excl" ]; then
    ok "delete: frees the branch's exclusive bytes ($work_excl)"
else
    bad "delete: frees the branch's exclusive bytes" "used $used_before -> $used_after, exclusive '$work_excl'"
fi
if grep -q ' work$' out; then bad "df: a deleted branch is gone" "still listed"; else ok "df: a deleted branch is gone"; fi
expect "list after delete" 0 "$actl" list snap.db
if awk '$1 == "work" { found = 1 } END { exit found }' out; then
    ok "list: the deleted branch is gone"
else
    bad "list: the deleted branch is gone" "still listed"
fi
if grep -E -q "^work-1 +snapshot +$ts +\\(deleted\\) " out; then
    ok "list: a snapshot of a deleted branch names its source (deleted)"
else
    bad "list: a snapshot of a deleted branch names its source (deleted)" "no line"
fi
expect_grep "delete: a deleted branch cannot be deleted again" 1 err 'no snapshot or branch named work' \
    "$actl" delete snap.db work
if q snap.db "ATTACH $branchuri AS w; SELECT count(*) FROM w.s;" | grep -q -i 'unable to open'; then
    ok "a deleted branch cannot be opened"
else
    bad "a deleted branch cannot be opened" "it opened"
fi
expect "delete: the other snapshots" 0 "$actl" delete snap.db work-1
expect "delete: ... and the first" 0 "$actl" delete snap.db before
expect_grep "list: none left, the header only" 0 out '^NAME ' "$actl" list snap.db
expect_eq "list: nothing but the header" 1 "$(wc -l <out | tr -d ' ')"
expect_eq "the live database survived it all" "2001 6000" \
    "$(q snap.db "SELECT count(*) || ' ' || max(a) FROM s;")"
expect_grep "fsck: clean after snapshots, branches, restores and deletes" 0 out 'clean' \
    "$actl" fsck snap.db

# ---------------------------------------------------------------- damage
# expect_damage NAME FILE PATTERN: fsck (sanitized) exits 1 with a problem
# line matching PATTERN; dump, ls and df do not crash on it.
expect_damage() {
    expect_grep "fsck finds: $1" 1 out "$3" "$actl" fsck "$2"
    for c in dump ls df; do
        run "$actl" "$c" "$2"
        if sane && [ "$rc" -le 1 ]; then ok "$c survives: $1"; else bad "$c survives: $1" "exit $rc"; fi
    done
}

cp app.db d-tree.db
flip d-tree.db $((fsroot + 200))
expect_damage "a flipped byte in a tree block" d-tree.db "tree block $fsroot: bad checksum"

cp app.db d-ext.db
flip d-ext.db $((extroot + 60))
expect_damage "a flipped key in the extent tree root" d-ext.db "extent tree block $extroot: bad checksum"

cp app.db d-data.db
flip d-data.db $((data + 1000))
expect_damage "a flipped byte in a data block" d-data.db "data extent [0-9]+: 1 of [0-9]+ blocks fail"
expect "fsck --no-data does not read data blocks" 0 "$actl" fsck --no-data d-data.db

# The newest superblock copy torn: legal (a crash while writing it), the
# older copy is used; -v says so in a note.
run "$actl" dump app.db
newest=$(sed -n 's/^using superblock copy \([01]\),.*/\1/p' out)
cp app.db d-sb1.db
flip d-sb1.db $((newest * 4096 + 50))
expect_grep "fsck: a torn newest superblock is legal (note)" 0 out '^note: superblock copy' \
    "$actl" fsck -v d-sb1.db
cp d-sb1.db d-sb2.db
flip d-sb2.db $(((1 - newest) * 4096 + 50))
expect_damage "both superblocks damaged" d-sb2.db 'no valid superblock'

head -c 300000 app.db >d-trunc.db
expect_damage "a truncated container" d-trunc.db 'beyond the end of the file|past the end'
head -c 6000 app.db >d-trunc2.db
# Copy 0 is whole: it is used, and its trees are past the end of the file.
expect_damage "a container cut inside superblock 1" d-trunc2.db 'beyond the end of the file'
head -c 3000 app.db >d-trunc3.db
expect_damage "a container cut inside superblock 0" d-trunc3.db 'no valid superblock'
head -c 1048576 /dev/urandom >d-random.db
expect_damage "random bytes" d-random.db 'no valid superblock'
expect_damage "an ordinary SQLite database" exported.db 'not a cowvfs container'
: >d-empty.db
expect_damage "an empty file" d-empty.db 'file is empty'
expect_grep "fsck: a missing file is an error on stderr" 1 err 'No such file' "$actl" fsck missing.db
mkdir adir
expect_grep "fsck: a directory is an error on stderr" 1 err 'not a regular file' "$actl" fsck adir

# Several random flips in tree blocks and superblocks: never a crash.
i=0
before=$fail
while [ $i -lt 20 ]; do
    cp app.db d-fuzz.db
    for off in $(od -An -tu4 -N12 /dev/urandom); do
        flip d-fuzz.db $((off % (fsroot + 8192)))
    done
    run "$actl" fsck d-fuzz.db
    if ! sane || [ "$rc" -gt 1 ]; then bad "fuzz $i: fsck survives random flips" "exit $rc"; cp d-fuzz.db "$root/build/fuzz-fail-$i.db" || true; fi
    run "$actl" dump d-fuzz.db
    if ! sane || [ "$rc" -gt 1 ]; then bad "fuzz $i: dump survives random flips" "exit $rc"; fi
    i=$((i + 1))
done
if [ "$fail" -eq "$before" ]; then ok "20 rounds of random flips: fsck and dump survive"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
