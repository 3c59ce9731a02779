/*
 * check_model_found.c - the "model_found" suite: what the model test
 * (model_run.c) found, each alone.  The tcase restore_modes holds what it
 * found first: a restore to a rollback-mode snapshot did not drop the
 * caches of connections in WAL mode.  The tcase restore_source_in_txn holds
 * what it found next: a restore from a source inside a write transaction in
 * rollback mode copied that transaction's journal into the target (it now
 * restores from a copy of the source taken at a transaction boundary).
 */
#include <check.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowvfs.h"
#include "testutil.h"
#include "vfsutil.h"

/* ---------------------------------------------------------------------------
 * What the model found, alone
 */

static sqlite3 *plain_open(const char *path)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "cow");
    ck_assert_msg(rc == SQLITE_OK, "open %s: %d", path, rc);
    return db;
}

static void plain_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %d %s", sql, rc, err ? err : "");
    sqlite3_free(err);
}

static char *plain_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    ck_assert_msg(rc == SQLITE_OK, "%s: %d %s", sql, rc, sqlite3_errmsg(db));
    rc = sqlite3_step(st);
    ck_assert_msg(rc == SQLITE_ROW, "%s: %d %s", sql, rc, sqlite3_errmsg(db));
    v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

#define ck_assert_sql(db, sql, expect)                                                     \
    do {                                                                                    \
        char *v_ = plain_text((db), (sql));                                                 \
        ck_assert_msg(strcmp(v_, (expect)) == 0, "%s gave %s, not %s", (sql), v_, (expect)); \
        free(v_);                                                                           \
    } while (0)

/*
 * A database whose connections are in WAL mode, restored to a snapshot
 * taken in rollback mode: every connection must see the restored content
 * at its next transaction, and a write through one must not corrupt the
 * database.  The connection that reads first after the restore rebuilds
 * the WAL-index from the (empty) WAL; another that had cached the header
 * of an empty WAL finds the same header and keeps its stale pages.  Two
 * ways to have such a header cached: (0) every connection closed and
 * reopened before the restore; (1) an earlier restore to a rollback-mode
 * snapshot.
 */
START_TEST(test_restore_journal_modes)
{
    char *dir = NULL, *path = NULL;
    sqlite3 *a, *b;

    dir = test_base_dir();
    ck_assert_int_ge(asprintf(&path, "%s/modes.db", dir), 0);
    a = plain_open(path);
    ck_assert_sql(a, "PRAGMA journal_mode=delete", "delete");
    plain_exec(a, "CREATE TABLE t(k INTEGER PRIMARY KEY, x TEXT);"
                  "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)"
                  "INSERT INTO t SELECT i, printf('%0100d', i) FROM c");
    ck_assert_sql(a, "PRAGMA cow_snapshot('s2000')", "s2000");
    plain_exec(a, "DELETE FROM t WHERE k > 1500");
    ck_assert_sql(a, "PRAGMA cow_snapshot('s1500')", "s1500");
    ck_assert_sql(a, "PRAGMA journal_mode=wal", "wal");
    plain_exec(a, "DELETE FROM t WHERE k > 1000");
    if (_i == 0) {
        ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
        a = plain_open(path);
    }
    b = plain_open(path);
    ck_assert_sql(a, "SELECT count(*) FROM t", "1000");
    ck_assert_sql(b, "SELECT count(*) FROM t", "1000");
    if (_i == 1) {
        ck_assert_sql(a, "PRAGMA cow_restore('s2000')", "s2000");
        ck_assert_sql(a, "SELECT count(*) FROM t", "2000");
        ck_assert_sql(b, "SELECT count(*) FROM t", "2000");
    }
    ck_assert_sql(a, "PRAGMA cow_restore('s1500')", "s1500");
    ck_assert_sql(a, "SELECT count(*) FROM t", "1500");
    ck_assert_sql(b, "SELECT count(*) FROM t", "1500");
    plain_exec(b, "INSERT INTO t VALUES (5000, 'b')");
    ck_assert_sql(a, "PRAGMA integrity_check", "ok");
    ck_assert_sql(a, "SELECT count(*) FROM t", "1501");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    test_fsck_clean(path);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}
END_TEST

/*
 * A restore from a branch that another connection is inside a write
 * transaction on (rollback mode): the target must hold the branch's
 * committed content, and keep what is committed to it afterwards.  A
 * restore that copied the branch's rollback journal, hot, into the target
 * (as it once did) fails both cases: (0) the target's connections are in
 * WAL mode and ignore it; a commit after the restore is gone once the
 * database is closed and reopened in rollback mode (the journal is rolled
 * back over it); (1) the transaction spilled and the target's connections
 * are in rollback mode: rolling the journal back puts page 1 back as the
 * branch had it, change counter included, which is the counter an idle
 * connection of the target cached with other content (one commit on each
 * side since the branch), so that connection keeps reading its old pages.
 */
START_TEST(test_restore_source_in_txn)
{
    char *dir = NULL, *path = NULL, *uri = NULL;
    sqlite3 *a, *l, *bw;

    dir = test_base_dir();
    ck_assert_int_ge(asprintf(&path, "%s/srctxn.db", dir), 0);
    ck_assert_int_ge(asprintf(&uri, "file:%s?vfs=cow&branch=b", path), 0);
    a = plain_open(path);
    ck_assert_sql(a, "PRAGMA journal_mode=delete", "delete");
    plain_exec(a, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);"
                  "INSERT INTO t VALUES (1, 'orig')");
    ck_assert_sql(a, "PRAGMA cow_branch('b')", "b");
    if (_i == 0)
        ck_assert_sql(a, "PRAGMA journal_mode=wal", "wal");
    l = plain_open(path);
    plain_exec(a, "INSERT INTO t VALUES (2, 'live')");
    ck_assert_sql(l, "SELECT group_concat(v) FROM t", "orig,live");
    ck_assert_int_eq(sqlite3_open_v2(uri, &bw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "cow"),
                     SQLITE_OK);
    plain_exec(bw, "INSERT INTO t VALUES (3, 'branch')");
    plain_exec(bw, "PRAGMA cache_size=5; BEGIN");
    if (_i == 0)
        plain_exec(bw, "INSERT INTO t VALUES (4, 'uncommitted')");
    else
        plain_exec(bw, "WITH RECURSIVE c(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM c "
                       "WHERE i < 3000) INSERT INTO t SELECT i, printf('%0300d', i) FROM c");
    ck_assert_sql(a, "PRAGMA cow_restore('b')", "b");
    plain_exec(bw, "ROLLBACK");
    ck_assert_int_eq(sqlite3_close(bw), SQLITE_OK);
    ck_assert_sql(a, "SELECT group_concat(v) FROM t", "orig,branch");
    ck_assert_sql(l, "SELECT group_concat(v) FROM t", "orig,branch");
    plain_exec(a, "INSERT INTO t VALUES (5, 'after')");
    ck_assert_int_eq(sqlite3_close(l), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    a = plain_open(path);
    ck_assert_sql(a, "SELECT group_concat(v) FROM t", "orig,branch,after");
    ck_assert_sql(a, "PRAGMA integrity_check", "ok");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    test_fsck_clean(path);
    unlink(path);
    rmdir(dir);
    free(uri);
    free(path);
    free(dir);
}
END_TEST

Suite *model_found_suite(void)
{
    Suite *s = suite_create("model_found");
    TCase *tc;
    tc = vfs_tcase(s, "restore_modes", 60, NULL);
    tcase_add_loop_test(tc, test_restore_journal_modes, 0, 2);
    tc = vfs_tcase(s, "restore_source_in_txn", 60, NULL);
    tcase_add_loop_test(tc, test_restore_source_in_txn, 0, 2);
    return s;
}
