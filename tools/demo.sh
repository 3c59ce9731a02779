#!/bin/sh
# tools/demo.sh [CORPUS_DIR] - cowvfs shown step by step (run by `make demo`).
#
# Works in build/demo (wiped first): a stock sqlite3 shell session loads the
# extension and makes a database in a container, cowctl looks inside it, a
# snapshot is taken, compared with the live data in one query and branched, the
# project's sqllogictest files run through cow and unix (and a slice of the
# development corpus CORPUS_DIR through cow, when it is given), Debian's Python
# reads the same database, and the directory is listed to show that app.db
# is the only file.  Exits non-zero as soon as a step fails.
set -eu

# The development corpus is optional: the Makefile passes
# ../shared/sqllogictest when it is there, or SLT_CORPUS.
corpus=${1:-}
case $corpus in
'' | /*) ;;
*) corpus=$(pwd)/$corpus ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

demo=build/demo
db=$demo/app.db
python=/usr/bin/python3
n=0
t0=$(date +%s)
log=$(mktemp "${TMPDIR:-/tmp}/cowvfs-demo.XXXXXX")

step() {
    n=$((n + 1))
    printf '\n=== Step %d: %s\n' "$n" "$*"
}

# Prints a command the way a person would type it, then runs it.
run() {
    printf '$ %s\n' "$*"
    "$@"
}

# sql_session URI [NOTE]: the SQL on stdin in the stock sqlite3 shell, which
# loads the extension, opens URI and echoes each command before its output
# (line-buffered by stdbuf, so .shell output lands after its command).  The
# output is shown and kept in $log; the shell's exit status is left in $rc.
sql_session() {
    echo "\$ sqlite3 -bail -echo <<'EOF'${2:+    ($2)}"
    rc=0
    { printf '.load ./build/cowvfs\n.open %s\n.mode box\n' "$1"; cat; } |
        stdbuf -oL sqlite3 -bail -echo >"$log" 2>&1 || rc=$?
    cat "$log"
}

finish() {
    rc=$?
    rm -f "$log"
    if [ "$rc" -ne 0 ]; then
        printf '\ndemo: FAILED at step %d (exit %d)\n' "$n" "$rc" >&2
    fi
    exit "$rc"
}
trap finish EXIT

for f in build/cowvfs.so build/cowctl build/slt; do
    if [ ! -f "$f" ]; then
        echo "demo: $f is missing; run 'make' first" >&2
        exit 1
    fi
done
if [ -n "$corpus" ]; then
    if [ ! -f "$corpus/select1.test" ] || [ ! -d "$corpus/evidence" ]; then
        echo "demo: no select1.test and evidence/ in the sqllogictest corpus $corpus" >&2
        exit 1
    fi
    corpus=$(cd "$corpus" && pwd)
fi

step "a fresh work directory, $demo"
run rm -rf "$demo"
run mkdir -p "$demo"

step "the stock sqlite3 shell ($(sqlite3 --version | cut -d' ' -f1)) loads the extension and creates app.db in a container"
sql_session "file:$db?vfs=cow" "the shell echoes each command before its output" <<EOF
CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT);
INSERT INTO notes(title, body) VALUES
  ('first', 'hello from the cow VFS'),
  ('second', 'every file of this database lives in one container'),
  ('third', 'committed data is never overwritten');
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
  INSERT INTO notes(title, body) SELECT 'row ' || i, printf('%.*c', 200, 'x') FROM n;
.shell ls -A $demo
COMMIT;
SELECT id, title, body FROM notes WHERE id <= 3;
SELECT count(*) AS rows, sum(length(body)) AS bytes FROM notes;
PRAGMA journal_mode=WAL;
INSERT INTO notes(title, body) VALUES ('fourth', 'written through the WAL');
.shell ls -A $demo
SELECT id, title, body FROM notes WHERE title = 'fourth';
PRAGMA integrity_check;
EOF
cat "$log"
[ "$rc" -eq 0 ] || exit "$rc"
# The two .shell ls above ran inside a rollback-journal transaction and with
# a WAL connection open: the unix VFS would have shown app.db-journal, then
# app.db-wal and app.db-shm.
if grep -Eq '^app\.db-(journal|wal|shm)$' "$log"; then
    echo "demo: a -journal, -wal or -shm file appeared beside app.db" >&2
    exit 1
fi
echo "(mid-transaction and with the WAL open, ls showed app.db alone)"

step "a second sqlite3 session reopens the container and reads what the first one wrote"
sql_session "file:$db?vfs=cow" <<EOF
SELECT count(*) AS rows, max(id) AS last_id FROM notes;
SELECT title, body FROM notes ORDER BY id DESC LIMIT 1;
EOF
[ "$rc" -eq 0 ] || exit "$rc"

step "the container is not an SQLite file: the stock shell without the extension refuses it"
echo "\$ sqlite3 -readonly $db 'SELECT count(*) FROM notes'"
rc=0
sqlite3 -readonly "$db" 'SELECT count(*) FROM notes' >"$log" 2>&1 || rc=$?
cat "$log"
if [ "$rc" -eq 0 ] || ! grep -q 'not a database' "$log"; then
    echo "demo: the unix VFS should have refused the container" >&2
    exit 1
fi
echo "(exit $rc, as expected: only the cow VFS reads it)"

step "cowctl: the files inside the container"
run build/cowctl ls "$db"

step "cowctl: space used in the container"
run build/cowctl df "$db"

step "cowctl: check every tree, reference count and checksum"
run build/cowctl fsck "$db"

step "an instant snapshot of the live database, changes after it, and one query joining the two"
sql_session "file:$db?vfs=cow" <<EOF
PRAGMA cow_snapshot('before-cleanup');
DELETE FROM notes WHERE title LIKE 'row %' AND id % 10 <> 0;
UPDATE notes SET body = 'edited after the snapshot' WHERE title = 'first';
ATTACH 'file:$db?vfs=cow&snapshot=before-cleanup' AS snap;
SELECT (SELECT count(*) FROM snap.notes) AS rows_then, (SELECT count(*) FROM notes) AS rows_now;
SELECT s.title, s.body AS then_body, n.body AS now_body
  FROM snap.notes AS s JOIN notes AS n USING (id) WHERE s.body <> n.body;
INSERT INTO snap.notes(title) VALUES ('a snapshot is read-only');
EOF
cat "$log"
if [ "$rc" -eq 0 ] || ! grep -q 'attempt to write a readonly database' "$log" ||
    ! grep -q '1004 .* 104 ' "$log"; then
    echo "demo: the snapshot should hold 1004 rows, the live database 104, and refuse writes" >&2
    exit 1
fi
echo "(the write to the snapshot failed, as expected: snapshots are read-only)"

step "a branch of the snapshot diverges on its own; cow_snapshots lists both"
sql_session "file:$db?vfs=cow&snapshot=before-cleanup" <<EOF
PRAGMA cow_branch('experiment');
ATTACH 'file:$db?vfs=cow&branch=experiment' AS exp;
UPDATE exp.notes SET title = upper(title) WHERE id <= 3;
SELECT (SELECT group_concat(title, ',') FROM exp.notes WHERE id <= 3) AS branch,
       (SELECT group_concat(title, ',') FROM main.notes WHERE id <= 3) AS snapshot;
SELECT name, kind, source, exclusive_bytes, shared_bytes FROM cow_snapshots;
EOF
cat "$log"
[ "$rc" -eq 0 ] || exit "$rc"
if ! grep -q 'FIRST,SECOND,THIRD .* first,second,third' "$log"; then
    echo "demo: the branch should have diverged from the snapshot" >&2
    exit 1
fi

step "the project's sqllogictest files (sqllogictest/*.test) through cow and unix, results compared"
run sh test/slt_full.sh sqllogictest
if [ -n "$corpus" ]; then
    run build/slt --vfs cow "$corpus/select1.test" "$corpus/evidence"
else
    echo "(no development corpus: ../shared/sqllogictest is absent and SLT_CORPUS unset; it is optional)"
fi

step "Debian's Python ($python) loads the extension and reads the same database"
script="import sqlite3

# Any connection can load the extension; the cow VFS stays registered after.
boot = sqlite3.connect(':memory:')
boot.enable_load_extension(True)
boot.load_extension('./build/cowvfs')
boot.close()

con = sqlite3.connect('file:$db?vfs=cow', uri=True)
print('journal_mode:', con.execute('PRAGMA journal_mode').fetchone()[0])
for row in con.execute('SELECT id, title, body FROM notes WHERE id <= 3 OR title = ?', ('fourth',)):
    print(row)
print('rows:', con.execute('SELECT count(*) FROM notes').fetchone()[0])
con.close()"
echo "\$ $python - <<'EOF'"
printf '%s\n' "$script" | sed 's/^/    /'
echo "EOF"
printf '%s\n' "$script" | "$python" -

step "nothing but app.db beside it: no -journal, -wal or -shm files"
run ls -la "$demo"
extra=
for f in "$demo"/* "$demo"/.[!.]* "$demo"/..?*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    [ "$f" = "$db" ] || extra="$extra ${f##*/}"
done
if [ -n "$extra" ]; then
    echo "demo: unexpected files in $demo:$extra" >&2
    exit 1
fi
echo "only app.db: the database, its journal and its WAL all live inside it"

printf '\ndemo: all %d steps passed in %d s\n' "$n" "$(($(date +%s) - t0))"
