#!/bin/sh
# test/rados/tests.sh CHECK_RADOS COWCTL SO SLT_RADOS SLT_DIR - make
# test-rados's body, run by test/rados/run.sh against its cluster
# (CEPH_CONF, COW_RADOS_POOL set): the Check runner; the project's
# sqllogictest files (SLT_DIR) through cow-rados (SLT_RADOS, build/slt_rados:
# 0 failed); then cowctl --rados (import, refusal to overwrite, ls,
# snapshot, branch, list, df, fsck, dump, export, delete, balance, a
# container a writer holds refused, a missing one, restore, a namespace,
# a local container imported and exported back) and the sqlite3 shell
# with the extension SO, a multi-database transaction included.  Exits 1 at the first failure.
set -u
CHECK=$1 COWCTL=$2 SO=$3 SLT=$4 SLT_DIR=$5
P=$COW_RADOS_POOL
T=$(mktemp -d "${TMPDIR:-/tmp}/cowctl-rados.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "test-rados: cowctl: $*"; exit 1; }

"$CHECK" || exit 1

SLT_RADOS_POOL=$P "$SLT" --vfs cow-rados "$SLT_DIR" >"$T/slt.out" 2>&1 ||
    { cat "$T/slt.out"; fail "sqllogictest through cow-rados"; }
tail -n 1 "$T/slt.out" | grep -q " 0 failed" || { cat "$T/slt.out"; fail "sqllogictest"; }
echo "test-rados: sqllogictest through cow-rados: $(tail -n 1 "$T/slt.out")"

C="$P/ctl-$$"
sqlite3 "$T/plain.db" "CREATE TABLE t(a); INSERT INTO t VALUES (1),(2),(3);" || fail "sqlite3"
"$COWCTL" --rados "$C" import "$T/plain.db" || fail "import"
"$COWCTL" --rados "$C" import "$T/plain.db" 2>"$T/err" && fail "a second import overwrote"
grep -q "exists" "$T/err" || fail "a second import: $(cat "$T/err")"
"$COWCTL" --rados "$C" ls | grep -q " db$" || fail "ls shows no db"
"$COWCTL" --rados "$C" snapshot s1 || fail "snapshot"
"$COWCTL" --rados "$C" branch b1 || fail "branch"
[ "$("$COWCTL" --rados "$C" list | grep -c -E '^(s1 +snapshot|b1 +branch) ')" = 2 ] ||
    fail "list: $("$COWCTL" --rados "$C" list)"
"$COWCTL" --rados "$C" df | grep -q "^container" || fail "df"
"$COWCTL" --rados "$C" fsck | grep -q "$C: clean" || fail "fsck"
"$COWCTL" --rados "$C" dump | grep -q "superblock copy 0 (block 0): valid" || fail "dump"
"$COWCTL" --rados "$C" export "$T/out.db" || fail "export"
[ "$(sqlite3 "$T/out.db" "SELECT group_concat(a) FROM t")" = "1,2,3" ] || fail "export's rows"
"$COWCTL" --rados "$C" delete s1 || fail "delete"
"$COWCTL" --rados "$C" balance >/dev/null || fail "balance"
"$COWCTL" --rados "$C" fsck -q || fail "fsck after balance"
# the snapshot through SQL, then a writer holding the container: refused
out=$(printf '.load %s\n.open file:%s?vfs=cow-rados&branch=b1\nSELECT count(*) FROM t;\n' \
    "$SO" "$C" | sqlite3) || fail "branch through SQL"
[ "$out" = 3 ] || fail "branch through SQL: $out"
mkfifo "$T/fifo"
sqlite3 <"$T/fifo" >"$T/holder.out" 2>&1 &
holder=$!
exec 3>"$T/fifo"
printf '.load %s\n.open file:%s?vfs=cow-rados\nINSERT INTO t VALUES (4);\nSELECT 42;\n' "$SO" "$C" >&3
for i in $(seq 100); do grep -q 42 "$T/holder.out" && break; sleep 0.1; done
grep -q 42 "$T/holder.out" || { exec 3>&-; wait $holder; fail "holder: $(cat "$T/holder.out")"; }
"$COWCTL" --rados "$C" ls 2>"$T/err" && { exec 3>&-; wait $holder; fail "ls while a writer has it"; }
"$COWCTL" --rados "$C" fsck 2>"$T/err2" && { exec 3>&-; wait $holder; fail "fsck while a writer has it"; }
exec 3>&-
wait $holder
grep -q "another client" "$T/err" || fail "ls while a writer has it: $(cat "$T/err")"
grep -q "another client" "$T/err2" || fail "fsck while a writer has it: $(cat "$T/err2")"
[ "$("$COWCTL" --rados "$C" export "$T/out2.db" && sqlite3 "$T/out2.db" "SELECT count(*) FROM t")" = 4 ] ||
    fail "the writer's row"
# fsck and dump read the container where it lies: with $TMPDIR missing (no
# local copy can be made) a clean container is clean (exit 0); garbage
# written with the rados CLI into one block of its subvolume tree, inside
# object 0 (a new container's objects are 4 MiB), is found (exit 1)
D="$P/dmg-$$"
"$COWCTL" --rados "$D" import "$T/plain.db" || fail "import (damage)"
TMPDIR="$T/none" "$COWCTL" --rados "$D" fsck >"$T/out" 2>&1 ||
    fail "fsck of a clean container without \$TMPDIR: $(cat "$T/out")"
grep -q "$D: clean" "$T/out" || fail "fsck of a clean container: $(cat "$T/out")"
TMPDIR="$T/none" "$COWCTL" --rados "$D" dump >"$T/dump" 2>&1 || fail "dump without \$TMPDIR"
leaf=$(sed -n 's/^subvolume 256 tree (root \([0-9]*\),.*/\1/p' "$T/dump")
[ -n "$leaf" ] && [ "$leaf" -lt 4194304 ] || fail "dump: no subvolume 256 root below 4 MiB"
printf 'not a tree block' >"$T/garbage"
rados -p "$P" put "dmg-$$.0000000000000000" "$T/garbage" --offset $((leaf + 200)) ||
    fail "rados put"
TMPDIR="$T/none" "$COWCTL" --rados "$D" fsck >"$T/out" 2>&1 && fail "fsck of a damaged container: exit 0"
[ $? = 1 ] || fail "fsck of a damaged container: exit status not 1: $(cat "$T/out")"
grep -q "subvolume 256 tree block $leaf: bad checksum" "$T/out" ||
    fail "fsck of a damaged container: $(cat "$T/out")"
"$COWCTL" --rados "$D" dump --block "$leaf" | grep -q "csum BAD" || fail "dump of the damaged block"
[ ! -e "$T/none" ] || fail "\$TMPDIR appeared"
echo "test-rados: cowctl --rados fsck and dump read in place: damage found, no local copy"
"$COWCTL" --rados "$P/no-such-$$" ls 2>"$T/err" && fail "ls of a missing container"
grep -q "no container" "$T/err" || fail "ls of a missing container: $(cat "$T/err")"

# a transaction over two attached RADOS databases (rollback journals): its
# super-journal is a store file of the main database's container (there
# is no "beside" a RADOS object, vfs.c SUPER-JOURNALS), gone after the
# commit; both databases have the rows
MA="$P/mA-$$" MB="$P/mB-$$"
out=$(printf '.load %s
.open file:%s?vfs=cow-rados
PRAGMA journal_mode=DELETE;
CREATE TABLE a(x);
ATTACH '"'"'file:%s?vfs=cow-rados'"'"' AS b;
PRAGMA b.journal_mode=DELETE;
CREATE TABLE b.t(x);
BEGIN; INSERT INTO a VALUES (1); INSERT INTO b.t VALUES (2); COMMIT;
SELECT (SELECT count(*) FROM a) || (SELECT count(*) FROM b.t);
' "$SO" "$MA" "$MB" |
    sqlite3 2>&1) || fail "a multi-database commit: $out"
[ "$(echo "$out" | tail -n 1)" = 11 ] || fail "a multi-database commit: $out"
"$COWCTL" --rados "$MA" ls | grep -q -- "-mj" && fail "a super-journal left: $("$COWCTL" --rados "$MA" ls)"
"$COWCTL" --rados "$MB" fsck -q || fail "fsck of the attached database"
# restore: the live database back to a snapshot, through cowctl --rados
"$COWCTL" --rados "$C" snapshot s3 || fail "snapshot s3"
printf '.load %s\n.open file:%s?vfs=cow-rados\nINSERT INTO t VALUES (5);\n' "$SO" "$C" | sqlite3 ||
    fail "insert after s3"
"$COWCTL" --rados "$C" restore s3 || fail "restore s3"
[ "$("$COWCTL" --rados "$C" export "$T/out3.db" && sqlite3 "$T/out3.db" "SELECT group_concat(a) FROM t")" = "1,2,3,4" ] ||
    fail "restore s3: $(sqlite3 "$T/out3.db" "SELECT group_concat(a) FROM t")"
"$COWCTL" --rados "$C" fsck -q || fail "fsck after restore"

# a namespace (POOL:NAMESPACE/NAME) and ceph_id=: the objects are in that
# namespace only, and the database opens by the same name
N="$P:ns-$$/nsdb"
"$COWCTL" --rados "$N" import "$T/plain.db" || fail "import into a namespace"
rados -p "$P" --namespace "ns-$$" ls | grep -q "^nsdb\.0000000000000000$" ||
    fail "no object nsdb.0000000000000000 in namespace ns-$$: $(rados -p "$P" --namespace "ns-$$" ls)"
rados -p "$P" ls | grep -q "^nsdb\." && fail "the namespace's objects are in the default namespace"
out=$(printf '.load %s\n.open file:%s?vfs=cow-rados&ceph_id=admin\nSELECT count(*) FROM t;\n' "$SO" "$N" |
    sqlite3 2>&1) || fail "open in a namespace: $out"
[ "$out" = 3 ] || fail "open in a namespace: $out"
"$COWCTL" --rados "$P/nsdb" ls 2>/dev/null && fail "the namespace's container found without it"
# a local container to RADOS (import), and RADOS to a local container
# (export --container): the same rows
L="$P/fromlocal-$$"
printf '.load %s\n.open file:%s/local.db?vfs=cow\nCREATE TABLE t(a); INSERT INTO t VALUES (7),(8);\n' \
    "$SO" "$T" | sqlite3 || fail "a local container"
"$COWCTL" --rados "$L" import "$T/local.db" || fail "import from a local container"
"$COWCTL" --rados "$L" export --container "$T/back.db" || fail "export --container"
"$COWCTL" fsck -q "$T/back.db" || fail "fsck of the exported container"
"$COWCTL" export "$T/back.db" "$T/back-plain.db" || fail "export of the exported container"
[ "$(sqlite3 "$T/back-plain.db" "SELECT group_concat(a) FROM t")" = "7,8" ] ||
    fail "local container -> RADOS -> local container: $(sqlite3 "$T/back-plain.db" "SELECT group_concat(a) FROM t")"
echo "test-rados: cowctl --rados: all passed"
