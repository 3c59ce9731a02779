/*
 * check_vfs_snap.c - the "vfs_snap" suite: snapshots and branches through
 * the VFS (pragmas, the C API, restore, concurrent writers).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowvfs.h"
#include "crc32c.h"
#include "format.h"
#include "store.h"
#include "testutil.h"
#include "vfsutil.h"
#include "../tools/fsck.h"

/* ---------------------------------------------------------------------------
 * Snapshots and branches
 */

static const char *const snap_modes[] = {"delete", "wal"};

/* Opens a second connection to PATH's live database in MODE. */
static sqlite3 *snap_conn(const char *path, const char *mode)
{
    char sql[100];
    sqlite3 *db = db_open(path, RW_CREATE, vt->vfs);
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    ck_assert_text((db, sql), mode);
    return db;
}

/* ATTACHes URI (%s: the container path) as SCHEMA. */
static void snap_attach(sqlite3 *db, const char *path, const char *param, const char *schema)
{
    char sql[2048];
    snprintf(sql, sizeof sql, "ATTACH 'file:%s?vfs=%s&%s' AS %s", path, vt->vfs, param, schema);
    EXEC(db, sql);
}

/* The result of "PRAGMA SCHEMA.cow_OP('NAME')": its code, and its text in
 * OUT (or the error message). */
static int snap_pragma(sqlite3 *db, const char *schema, const char *op, const char *name,
                       char out[512])
{
    char sql[600];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "PRAGMA %s.cow_%s('%s')", schema, op, name);
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    out[0] = 0;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            snprintf(out, 512, "%s", (const char *)sqlite3_column_text(st, 0));
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        snprintf(out, 512, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

#define SNAP_OK(db, schema, op, name)                                                       \
    do {                                                                                    \
        char out_[512];                                                                     \
        int rc_ = snap_pragma((db), (schema), (op), (name), out_);                          \
        ck_assert_msg(rc_ == SQLITE_OK, "cow_%s(%s): %d %s", (op), (name), rc_, out_);      \
        ck_assert_str_eq(out_, (name));                                                     \
    } while (0)

/*
 * A snapshot of a live database while another connection writes, read
 * through ATTACH next to the live data; read-only; branches of it and
 * snapshots of those; the listing; names; deletion only when not open.
 */
START_TEST(test_snapshot_basic)
{
    const char *mode = snap_modes[_i];
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char out[512];
    sqlite3 *a = snap_conn(path, mode);
    sqlite3 *b;

    EXEC(a, "CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT);"
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<1000)"
            "INSERT INTO t(y) SELECT hex(randomblob(100)) FROM c");
    b = snap_conn(path, mode);
    SNAP_OK(a, "main", "snapshot", "s1");
    EXEC(b, "UPDATE t SET y = 'changed' WHERE x <= 10; DELETE FROM t WHERE x > 900");
    snap_attach(a, path, "snapshot=s1", "s");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s.t"), 1000);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 900);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t JOIN s.t AS o USING (x) "
                                  "WHERE t.y <> o.y"),
                     10);
    ck_assert_text((a, "PRAGMA s.integrity_check"), "ok");
    ck_assert_int_eq(exec_rc(a, "INSERT INTO s.t(y) VALUES ('no')") & 0xff, SQLITE_READONLY);

    /* names: taken, bad; nothing changes */
    ck_assert_int_eq(snap_pragma(a, "main", "snapshot", "s1", out), SQLITE_ERROR);
    ck_assert_int_eq(snap_pragma(a, "main", "branch", "a/b", out), SQLITE_ERROR);
    ck_assert_int_eq(snap_pragma(a, "main", "snapshot", "", out), SQLITE_ERROR);
    ck_assert_int_eq(exec_rc(a, "PRAGMA cow_snapshot"), SQLITE_ERROR);

    /* a branch of the snapshot diverges; a snapshot of the branch */
    SNAP_OK(a, "s", "branch", "b1");
    snap_attach(a, path, "branch=b1", "br");
    EXEC(a, "INSERT INTO br.t(y) VALUES ('branch only')");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM br.t"), 1001);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s.t"), 1000);
    SNAP_OK(a, "br", "snapshot", "s2");
    EXEC(a, "DELETE FROM br.t WHERE x < 500");
    snap_attach(a, path, "snapshot=s2", "s2");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s2.t"), 1001);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM br.t"), 502);
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 900);

    /* the listing */
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM cow_snapshots"), 3);
    ck_assert_text((a, "SELECT group_concat(name || ':' || kind || ':' || ifnull(source, '-'), "
                       "' ') FROM cow_snapshots"),
                   "s1:snapshot:- b1:branch:s1 s2:snapshot:b1");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM cow_snapshots('s2')"), 3);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM cow_snapshots WHERE "
                                  "created LIKE '2___-__-__ __:__:__.___'"),
                     3);

    /* URIs that name nothing, or the wrong kind */
    char sql[2048];
    snprintf(sql, sizeof sql, "ATTACH 'file:%s?vfs=%s&snapshot=nope' AS n", path, vt->vfs);
    ck_assert_int_eq(exec_rc(a, sql) & 0xff, SQLITE_CANTOPEN);
    snprintf(sql, sizeof sql, "ATTACH 'file:%s?vfs=%s&branch=s1' AS n", path, vt->vfs);
    ck_assert_int_eq(exec_rc(a, sql) & 0xff, SQLITE_CANTOPEN);

    /* delete: refused while open, then frees it */
    ck_assert_int_eq(snap_pragma(b, "main", "delete", "s2", out), SQLITE_BUSY);
    EXEC(a, "DETACH s2");
    SNAP_OK(b, "main", "delete", "s2");
    ck_assert_int_eq(snap_pragma(b, "main", "delete", "s2", out), SQLITE_ERROR);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM cow_snapshots"), 2);

    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    /* all of it after a reopen */
    a = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    snap_attach(a, path, "snapshot=s1", "s");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s.t"), 1000);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 900);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * A transaction boundary: a snapshot taken inside the caller's own write
 * transaction (in rollback mode also one that spilled pages to the
 * database file), or while another connection is inside one, holds the
 * last committed state.
 */
START_TEST(test_snapshot_in_transaction)
{
    const char *mode = snap_modes[_i];
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    sqlite3 *a = snap_conn(path, mode);
    sqlite3 *b = snap_conn(path, mode);

    EXEC(a, "CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT);"
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<500)"
            "INSERT INTO t(y) SELECT hex(randomblob(200)) FROM c");
    /* the caller's own transaction, small (in the cache) */
    EXEC(a, "BEGIN; INSERT INTO t(y) VALUES ('mine')");
    SNAP_OK(a, "main", "snapshot", "own");
    EXEC(a, "COMMIT");
    /* ... and big enough to spill (rollback mode writes the database file) */
    EXEC(a, "PRAGMA cache_size=10");
    EXEC(a, "BEGIN; UPDATE t SET y = hex(randomblob(200));"
            "INSERT INTO t(y) SELECT y FROM t");
    SNAP_OK(a, "main", "snapshot", "spilled");
    SNAP_OK(a, "main", "branch", "spilled-branch");
    EXEC(a, "ROLLBACK");
    /* another connection's transaction in progress, spilled (it holds
     * EXCLUSIVE in rollback mode: no wait, SQLite rolls it back inside the
     * snapshot) */
    EXEC(b, "PRAGMA cache_size=10");
    EXEC(b, "BEGIN; UPDATE t SET y = 'spilled by b'; INSERT INTO t(y) SELECT y FROM t");
    SNAP_OK(a, "main", "snapshot", "other-spilled");
    EXEC(b, "COMMIT");
    snap_attach(a, path, "snapshot=other-spilled", "osp");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM osp.t"), 501);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM osp.t WHERE y = 'spilled by b'"), 0);
    ck_assert_text((a, "PRAGMA osp.integrity_check"), "ok");
    EXEC(a, "DETACH osp");
    EXEC(b, "DELETE FROM t WHERE x > 501");
    /* another connection's transaction in progress */
    EXEC(b, "BEGIN IMMEDIATE; DELETE FROM t WHERE x > 100");
    SNAP_OK(a, "main", "snapshot", "other");
    EXEC(b, "COMMIT");

    snap_attach(a, path, "snapshot=own", "own");
    snap_attach(a, path, "snapshot=spilled", "sp");
    snap_attach(a, path, "branch=spilled-branch", "spb");
    snap_attach(a, path, "snapshot=other", "oth");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM own.t"), 500);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM sp.t"), 501);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM sp.t WHERE y = 'mine'"), 1);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM spb.t"), 501);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM oth.t"), 501);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 100);
    ck_assert_text((a, "PRAGMA sp.integrity_check"), "ok");
    ck_assert_text((a, "PRAGMA spb.integrity_check"), "ok");
    ck_assert_text((a, "PRAGMA oth.integrity_check"), "ok");
    EXEC(a, "INSERT INTO spb.t(y) VALUES ('writable')");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * Restore: refused while any connection is inside a transaction; after it,
 * every connection (with pages cached) sees the snapshot's content; in WAL
 * mode also when both WALs are empty (checkpointed and truncated).
 */
static const char *const restore_modes[] = {"delete", "wal", "wal-empty"};

START_TEST(test_snapshot_restore)
{
    const char *mode = strncmp(restore_modes[_i], "wal", 3) == 0 ? "wal" : "delete";
    int bEmpty = strcmp(restore_modes[_i], "wal-empty") == 0;
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char out[512];
    sqlite3 *a = snap_conn(path, mode);
    sqlite3 *b = snap_conn(path, mode);

    EXEC(a, "CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT);"
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300)"
            "INSERT INTO t(y) SELECT 'v1' FROM c");
    if (bEmpty)
        EXEC(a, "PRAGMA wal_checkpoint(TRUNCATE)");
    SNAP_OK(a, "main", "snapshot", "v1");
    EXEC(a, "UPDATE t SET y = 'v2'");
    if (bEmpty)
        EXEC(a, "PRAGMA wal_checkpoint(TRUNCATE)");
    /* b caches the v2 pages */
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t WHERE y = 'v2'"), 300);

    /* refused while b is in a transaction, and while a is */
    EXEC(b, "BEGIN; SELECT count(*) FROM t");
    ck_assert_int_eq(snap_pragma(a, "main", "restore", "v1", out), SQLITE_BUSY);
    EXEC(b, "COMMIT");
    EXEC(a, "BEGIN IMMEDIATE");
    ck_assert_int_eq(snap_pragma(b, "main", "restore", "v1", out), SQLITE_BUSY);
    EXEC(a, "COMMIT");
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t WHERE y = 'v2'"), 300);
    ck_assert_int_eq(snap_pragma(a, "main", "restore", "nope", out), SQLITE_ERROR);

    SNAP_OK(a, "main", "restore", "v1");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t WHERE y = 'v1'"), 300);
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t WHERE y = 'v1'"), 300);
    ck_assert_text((b, "PRAGMA integrity_check"), "ok");
    /* and diverges again, the snapshot unchanged */
    EXEC(b, "INSERT INTO t(y) VALUES ('v3')");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 301);
    snap_attach(a, path, "snapshot=v1", "s");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s.t"), 300);
    /* a snapshot cannot be restored */
    ck_assert_int_eq(snap_pragma(a, "s", "restore", "v1", out), SQLITE_ERROR);
    EXEC(a, "DETACH s");
    /* a branch can */
    SNAP_OK(a, "main", "branch", "br");
    snap_attach(a, path, "branch=br", "br");
    EXEC(a, "DELETE FROM br.t");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM br.t"), 0);
    SNAP_OK(a, "br", "restore", "v1");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM br.t"), 300);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 301);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    a = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 301);
    ck_assert_text((a, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

struct snap_names {
    int n;
    char names[8][64];
    long long excl[8], shared[8];
};

static int snap_list_cb(void *arg, const cowvfs_subvol_info *si)
{
    struct snap_names *sn = arg;
    if (sn->n < 8) {
        snprintf(sn->names[sn->n], 64, "%s:%s:%s", si->zName,
                 si->eKind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                 si->zSource ? si->zSource : "-");
        sn->excl[sn->n] = si->nExclusive;
        sn->shared[sn->n] = si->nShared;
    }
    sn->n++;
    return 0;
}

/* The C API, on a connection and by container path. */
START_TEST(test_snapshot_c_api)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char *err = NULL;
    struct snap_names sn;
    sqlite3 *a = snap_conn(path, "wal");

    EXEC(a, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)");
    ck_assert_int_eq(cowvfs_snapshot(a, NULL, "c1", &err), SQLITE_OK);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(cowvfs_snapshot(a, "main", "c1", &err), SQLITE_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "c1"));
    sqlite3_free(err);
    ck_assert_int_eq(cowvfs_snapshot(a, "temp", "c2", &err), SQLITE_ERROR);
    sqlite3_free(err);
    ck_assert_int_eq(cowvfs_snapshot(a, "nosuch", "c2", NULL), SQLITE_ERROR);
    ck_assert_int_eq(cowvfs_branch(a, "main", "c2", NULL), SQLITE_OK);
    EXEC(a, "INSERT INTO t VALUES (3)");
    memset(&sn, 0, sizeof sn);
    ck_assert_int_eq(cowvfs_list(a, "main", snap_list_cb, &sn, NULL), SQLITE_OK);
    ck_assert_int_eq(sn.n, 2);
    ck_assert_str_eq(sn.names[0], "c1:snapshot:-");
    ck_assert_str_eq(sn.names[1], "c2:branch:-");
    ck_assert_int_eq(cowvfs_restore(a, "main", "c1", NULL), SQLITE_OK);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 2);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);

    /* offline, by path */
    ck_assert_int_eq(cowvfs_container_snapshot(path, NULL, "p1", NULL), SQLITE_OK);
    ck_assert_int_eq(cowvfs_container_branch(path, "p1", "p2", NULL), SQLITE_OK);
    ck_assert_int_eq(cowvfs_container_branch(path, "nope", "p3", &err), SQLITE_ERROR);
    sqlite3_free(err);
    ck_assert_int_eq(cowvfs_container_delete(path, "c1", NULL), SQLITE_OK);
    memset(&sn, 0, sizeof sn);
    ck_assert_int_eq(cowvfs_container_list(path, snap_list_cb, &sn, NULL), SQLITE_OK);
    ck_assert_int_eq(sn.n, 3);
    ck_assert_str_eq(sn.names[0], "c2:branch:-");
    ck_assert_str_eq(sn.names[1], "p1:snapshot:-");
    ck_assert_str_eq(sn.names[2], "p2:branch:p1");
    a = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    EXEC(a, "INSERT INTO t VALUES (4)");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(cowvfs_container_restore(path, NULL, "p1", NULL), SQLITE_OK);
    ck_assert_int_eq(cowvfs_container_restore(path, "p1", "p2", &err), SQLITE_ERROR);
    sqlite3_free(err);
    a = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 2);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    char *missing = cpath(dir, "missing.db");
    ck_assert_int_ne(cowvfs_container_snapshot(missing, NULL, "x", &err), SQLITE_OK);
    sqlite3_free(err);
    free(missing);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Snapshots while writers commit: shared state of the threads. */
struct snap_conc {
    const char *path;
    const char *mode;
    uint64_t seed;     /* test_seed(), read before the threads start */
    int stop;          /* atomic: the writers stop */
    int commits;       /* atomic: transactions committed */
    char fail[256];    /* the first failure, under mu */
    pthread_mutex_t mu;
};

static void snap_conc_fail(struct snap_conc *c, const char *what, sqlite3 *db)
{
    pthread_mutex_lock(&c->mu);
    if (!c->fail[0])
        snprintf(c->fail, sizeof c->fail, "%s: %s", what, db ? sqlite3_errmsg(db) : "");
    pthread_mutex_unlock(&c->mu);
    __atomic_store_n(&c->stop, 1, __ATOMIC_SEQ_CST);
}

/* Moves random amounts between accounts (the total never changes); every
 * fourth transaction also rewrites every row, with a cache small enough to
 * spill in rollback mode. */
static void *snap_conc_writer(void *arg)
{
    struct snap_conc *c = arg;
    sqlite3 *db = NULL;
    uint64_t rs = c->seed ^ (uintptr_t)&db;
    char sql[300];

    if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE, vt->vfs) != SQLITE_OK) {
        snap_conc_fail(c, "writer open", db);
        goto out;
    }
    sqlite3_busy_timeout(db, 20000);
    sqlite3_exec(db, "PRAGMA cache_size=8", NULL, NULL, NULL);
    for (int i = 0; !__atomic_load_n(&c->stop, __ATOMIC_SEQ_CST); i++) {
        int a = (int)(test_rand(&rs) % 200) + 1, b = (int)(test_rand(&rs) % 200) + 1;
        int amt = (int)(test_rand(&rs) % 50);
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE;"
                 "UPDATE acct SET bal = bal - %d, pad = hex(randomblob(100)) WHERE id = %d;"
                 "UPDATE acct SET bal = bal + %d WHERE id = %d;"
                 "%s"
                 "COMMIT",
                 amt, a, amt, b,
                 i % 4 == 0 ? "UPDATE acct SET pad = hex(randomblob(300));" : "");
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            snap_conc_fail(c, "writer", db);
            break;
        }
        __atomic_add_fetch(&c->commits, 1, __ATOMIC_SEQ_CST);
    }
out:
    sqlite3_close(db);
    return NULL;
}

/*
 * Snapshots and branches taken while two writer threads commit
 * continuously (and spill): every snapshot shows a state some commit
 * produced, so the invariant all transactions keep (the total of the
 * balances) holds in each, and each passes integrity_check.
 */
START_TEST(test_snapshot_concurrent_writers)
{
    struct snap_conc c;
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    pthread_t w[2];
    sqlite3 *db = snap_conn(path, snap_modes[_i]);
    char name[32], *err = NULL;

    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    c.path = path;
    c.mode = snap_modes[_i];
    c.seed = test_seed();
    EXEC(db, "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER, pad TEXT);"
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<200)"
             "INSERT INTO acct SELECT i, 1000, hex(randomblob(300)) FROM n");
    sqlite3_busy_timeout(db, 20000);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&w[i], NULL, snap_conc_writer, &c), 0);
    int taken = 0;
    for (int i = 0; i < 40 && !__atomic_load_n(&c.stop, __ATOMIC_SEQ_CST); i++) {
        /* let some commits happen between snapshots */
        int at = __atomic_load_n(&c.commits, __ATOMIC_SEQ_CST);
        for (int spin = 0; spin < 2000 && __atomic_load_n(&c.commits, __ATOMIC_SEQ_CST) < at + 3;
             spin++)
            usleep(1000);
        snprintf(name, sizeof name, "%s%d", i % 3 == 2 ? "b" : "s", i);
        int rc = i % 3 == 2 ? cowvfs_branch(db, "main", name, &err)
                            : cowvfs_snapshot(db, "main", name, &err);
        ck_assert_msg(rc == SQLITE_OK, "%s: %d %s", name, rc, err ? err : "");
        taken++;
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    ck_assert_msg(!c.fail[0], "%s", c.fail);
    fprintf(stderr, "snapshot_threads %s: %d snapshots and branches, %d commits\n", c.mode, taken, c.commits);
    ck_assert_int_ge(c.commits, taken);
    for (int i = 0; i < taken; i++) {
        snprintf(name, sizeof name, "%s%d", i % 3 == 2 ? "b" : "s", i);
        snap_attach(db, path, i % 3 == 2 ? (snprintf(c.fail, sizeof c.fail, "branch=%s", name),
                                            c.fail)
                                         : (snprintf(c.fail, sizeof c.fail, "snapshot=%s", name),
                                            c.fail),
                    "x");
        c.fail[0] = 0;
        ck_assert_int_eq(query_int(db, "SELECT sum(bal) FROM x.acct"), 200000);
        ck_assert_int_eq(query_int(db, "SELECT count(*) FROM x.acct"), 200);
        ck_assert_text((db, "PRAGMA x.integrity_check"), "ok");
        EXEC(db, "DETACH x");
    }
    ck_assert_int_eq(query_int(db, "SELECT sum(bal) FROM acct"), 200000);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    pthread_mutex_destroy(&c.mu);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* On any target: all of them (every case takes, reads, restores and
 * deletes snapshots and branches through SQL or the C API). */
void vfs_snap_any_target(TCase *tc)
{
    tcase_add_test(tc, test_snapshot_c_api);
    tcase_add_loop_test(tc, test_snapshot_basic, 0, 2);
    tcase_add_loop_test(tc, test_snapshot_in_transaction, 0, 2);
    tcase_add_loop_test(tc, test_snapshot_restore, 0, 3);
    tcase_add_loop_test(tc, test_snapshot_concurrent_writers, 0, 2);
}

Suite *vfs_snap_suite(void)
{
    Suite *s = suite_create("vfs_snap");
    TCase *tc;

    tc = vfs_tcase(s, "snapshot", 120, test_snapshot_c_api, NULL);
    tcase_add_loop_test(tc, test_snapshot_basic, 0, 2);
    tcase_add_loop_test(tc, test_snapshot_in_transaction, 0, 2);
    tcase_add_loop_test(tc, test_snapshot_restore, 0, 3);

    tc = vfs_tcase(s, "snapshot_threads", 300, NULL);
    tcase_add_loop_test(tc, test_snapshot_concurrent_writers, 0, 2);

    return s;
}
