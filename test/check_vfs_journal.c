/*
 * check_vfs_journal.c - the "vfs_journal" suite: the journal modes
 * (transactions, a rollback, integrity, reopen, no stray files), and
 * crashes: a process killed mid-transaction leaves a hot journal or a WAL
 * inside the container, which the next open recovers through the VFS.
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
#include <sys/mman.h>
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
 * Journal modes: transactions, a rollback, integrity, reopen, no stray files
 */

static const char *const journal_modes[] = {"delete", "truncate", "persist",
                                            "memory", "off",      "wal"};

START_TEST(test_journal_modes)
{
    const char *mode = journal_modes[_i];
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char *full = full_path(path);
    char sql[200], jname[1024];
    sqlite3 *db = db_open(path, RW_CREATE, vt->vfs);

    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    ck_assert_text((db, sql), mode);
    EXEC(db, "PRAGMA cache_size=20"); /* spill pages to the database mid-transaction */
    EXEC(db, "CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT)");
    EXEC(db, "CREATE INDEX t_y ON t(y)");
    EXEC(db, "BEGIN;"
             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<2000)"
             "INSERT INTO t(y) SELECT hex(randomblob(60)) FROM c;"
             "COMMIT");
    EXEC(db, "UPDATE t SET y = 'committed-' || x WHERE x % 3 = 0");
    ck_assert_dir(dir, "app.db");

    /* A rollback.  With journal_mode=OFF SQLite cannot undo pages already
     * written to the database, so keep that transaction inside the cache. */
    if (strcmp(mode, "off") == 0)
        EXEC(db, "PRAGMA cache_size=2000");
    EXEC(db, "BEGIN");
    EXEC(db, "UPDATE t SET y = 'rolled-back' WHERE x % 2 = 0");
    EXEC(db, "DELETE FROM t WHERE x % 5 = 0");
    EXEC(db, "INSERT INTO t(y) SELECT y || 'dup' FROM t");
    ck_assert_dir(dir, "app.db");
    EXEC(db, "ROLLBACK");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 2000);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y = 'rolled-back'"), 0);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'committed-%'"), 666);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");

    /* PERSIST keeps the journal, inside the container. */
    snprintf(jname, sizeof jname, "%s-journal", full);
    if (strcmp(mode, "persist") == 0)
        ck_assert_int_eq(raw_access(jname), 1);

    db = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 2000);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'committed-%'"), 666);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    if (strcmp(mode, "wal") == 0)
        ck_assert_text((db, "PRAGMA journal_mode"), "wal");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    vt->fsck_clean(path);
    /* what is left inside: TRUNCATE and PERSIST keep their journal */
    ck_assert_store(path, strcmp(mode, "truncate") == 0 || strcmp(mode, "persist") == 0
                              ? "db db-journal"
                              : "db");

    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Crashes: a process killed mid-transaction leaves a hot journal or a WAL
 * inside the container; the next open recovers through the VFS.
 */

/* Runs FN(PATH) in a child process that must die of SIGKILL; returns once
 * this process may open PATH for writing (vt->after_kill). */
static void run_killed_child(void (*fn)(const char *), const char *path)
{
    int status = 0;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fn(path);
        _exit(3); /* fn did not kill itself */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x", status);
    if (vt->after_kill)
        vt->after_kill(path);
}

static int child_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* In a child: an uncommitted update of every row of t, too big for a
 * 5-page cache, so that it spills into the database (or the WAL), then a
 * store commit making that durable.  0 if a statement failed. */
static int spill_update_and_commit(sqlite3 *db)
{
    return child_exec(db, "PRAGMA cache_size=5") && child_exec(db, "BEGIN") &&
           child_exec(db, "UPDATE t SET y = 'crash-' || x") &&
           child_exec(db, "PRAGMA cow_commit");
}

/* Spills a big update into the database and commits the store (so the hot
 * journal and the half-written database are durable), then dies. */
static void crash_in_update(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vt->vfs) != SQLITE_OK ||
        !spill_update_and_commit(db))
        _exit(4);
    kill(getpid(), SIGKILL);
}

START_TEST(test_crash_hot_journal)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char *full = full_path(path);
    char jname[1100];

    make_db(path, vt->vfs, 400);
    run_killed_child(crash_in_update, path);
    snprintf(jname, sizeof jname, "%s-journal", full);
    ck_assert_int_eq(raw_access(jname), 1); /* hot */
    ck_assert_dir(dir, "app.db");

    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 400);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'crash-%'"), 0);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(raw_access(jname), 0); /* rolled back and deleted */
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    vt->fsck_clean(path);
    ck_assert_store(path, "db");
    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Commits 50 transactions to the WAL (each synced), spills an uncommitted
 * one into it, commits the store and dies. */
static void crash_in_wal(const char *path)
{
    sqlite3 *db = NULL;
    char sql[100];
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vt->vfs) != SQLITE_OK ||
        !child_exec(db, "PRAGMA wal_autocheckpoint=0") ||
        !child_exec(db, "PRAGMA synchronous=FULL"))
        _exit(4);
    for (int i = 0; i < 50; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO t(y) VALUES('wal-%d')", i);
        if (!child_exec(db, sql))
            _exit(5);
    }
    if (!spill_update_and_commit(db))
        _exit(6);
    kill(getpid(), SIGKILL);
}

START_TEST(test_crash_wal)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char *full = full_path(path);
    char wname[1100];

    make_db(path, vt->vfs, 300);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_text((db, "PRAGMA journal_mode=WAL"), "wal");
    sqlite3_close(db);
    run_killed_child(crash_in_wal, path);
    snprintf(wname, sizeof wname, "%s-wal", full);
    ck_assert_int_eq(raw_access(wname), 1);
    ck_assert_dir(dir, "app.db");

    /* a fresh WAL-index is rebuilt from the WAL: committed frames count,
     * the uncommitted ones do not */
    db = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 350);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'wal-%'"), 50);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'crash-%'"), 0);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_int_eq(raw_access(wname), 0); /* checkpointed and removed at close */
    ck_assert_dir(dir, "app.db");
    vt->fsck_clean(path);
    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Dies just before deleting the super-journal: both databases are written
 * and synced, both journals hot and naming it. */
static void crash_before_super_delete(const char *a)
{
    sqlite3 *db = NULL;
    char sql[1200];
    snprintf(sql, sizeof sql, "ATTACH '%s2' AS aux", a); /* "a.db2": the other container */
    spy_die_on_super_delete = 1;
    if (sqlite3_open_v2(a, &db, SQLITE_OPEN_READWRITE, "cowspy") != SQLITE_OK ||
        !child_exec(db, sql) ||
        !child_exec(db, "BEGIN; UPDATE main.t SET y = 'new'; UPDATE aux.t SET y = 'new'; COMMIT"))
        _exit(4);
    _exit(5); /* the commit finished without deleting the super-journal? */
}

START_TEST(test_crash_super_journal)
{
    char *dir = tdir_make();
    char *a = cpath(dir, "a.db");
    char *b = cpath(dir, "a.db2");
    char list[1024];

    spy_vfs_register();
    make_db(a, vt->vfs, 50);
    make_db(b, vt->vfs, 50);
    run_killed_child(crash_before_super_delete, a);
    if (vt->local) {
        /* the super-journal is a file beside a.db (vfs.c, SUPER-JOURNALS),
         * and so are the mirrors of the two journals that name it
         * (vfs_mirror.c) */
        dir_list(dir, list, sizeof list);
        ck_assert_msg(strncmp(list, "a.db a.db-journal a.db-mj", 25) == 0 &&
                          strlen(list) == 54 && strcmp(list + 34, " a.db2 a.db2-journal") == 0,
                      "directory holds \"%s\"", list);
    } else {
        /* the child held b too */
        vt->after_kill(b);
        /* a device container's super-journal is a store file of it, and
         * there are no mirrors */
        store_names(a, list);
        ck_assert_msg(strncmp(list, "db db-journal db-mj", 19) == 0 && strlen(list) == 28,
                      "%s holds \"%s\"", a, list);
        ck_assert_store(b, "db db-journal");
    }

    /* Opening the auxiliary database alone finds its hot journal, sees
     * the super-journal beside a.db (whose container is not open in this
     * process) and rolls back: the multi-database transaction never
     * committed. */
    sqlite3 *db = db_open(b, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y = 'new'"), 0);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    sqlite3_close(db);
    db = db_open(a, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y = 'new'"), 0);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 50);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    sqlite3_close(db);
    ck_assert_dir(dir, "a.db a.db2");
    ck_assert_store(a, "db"); /* the super-journal is gone */
    ck_assert_store(b, "db");
    vt->fsck_clean(a);
    vt->fsck_clean(b);
    ck_assert_int_eq(sqlite3_vfs_unregister(&spy_vfs), SQLITE_OK);
    free(a);
    free(b);
    tdir_remove(dir);
}
END_TEST

/* A transaction SQLite reported committed survives an application crash in
 * every journal mode and synchronous level, as on unix: loop index I is
 * journal mode I / 3 at synchronous level I % 3, for I below 3 * (the
 * number of modes).  Past that, I is mode I - 3 * (the number of modes)
 * at synchronous=EXTRA.  Where the container is not a local file (RADOS),
 * an application's crash loses what a power loss loses, so only what
 * SQLite makes durable against a power loss must survive: every mode at
 * FULL, but DELETE only at EXTRA (at FULL the journal's deletion is not
 * synced, and a journal back after the crash rolls the commit back). */
static const char *const sync_levels[] = {"off", "normal", "full"};
static const char *crash_mode, *crash_sync;
#define NMODES ((int)(sizeof journal_modes / sizeof journal_modes[0]))
#define CRASH_EXTRA(m) (3 * NMODES + (m)) /* mode M at synchronous=EXTRA */

static void commit_then_die(const char *path)
{
    sqlite3 *db = NULL;
    char sql[200];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s; PRAGMA synchronous=%s", crash_mode,
             crash_sync);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vt->vfs) != SQLITE_OK ||
        !child_exec(db, sql) || !child_exec(db, "INSERT INTO t(y) VALUES('one')") ||
        !child_exec(db, "BEGIN; INSERT INTO t(y) VALUES('two'); UPDATE t SET y = 'three' "
                        "WHERE y = 'one'; COMMIT"))
        _exit(4);
    kill(getpid(), SIGKILL);
}

START_TEST(test_app_crash_durable)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");

    crash_mode = journal_modes[_i < 3 * NMODES ? _i / 3 : _i - 3 * NMODES];
    crash_sync = _i < 3 * NMODES ? sync_levels[_i % 3] : "extra";
    make_db(path, vt->vfs, 10);
    run_killed_child(commit_then_die, path);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_msg(query_int(db, "SELECT count(*) FROM t") == 12 &&
                      query_int(db, "SELECT count(*) FROM t WHERE y IN ('two', 'three')") == 2,
                  "journal_mode=%s synchronous=%s: committed rows lost", crash_mode, crash_sync);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    free(path);
    tdir_remove(dir);
}
END_TEST

/* WAL commits under synchronous=FULL through the log, then SIGKILL: no
 * commit after the syncs, so the rows come back by log replay.  The WAL
 * is copy on write (wal_nodatacow=0): a nodatacow WAL's frames land in
 * place, in chunks, and its syncs only flush, with nothing to log.  At
 * least 30 rows, and on until the last one's sync was logged (a sync
 * commits when the log areas are full: a new container's take 4
 * records); how many, in *wal_rows (shared with the parent). */
static int *wal_rows;

static void wal_syncs_then_die(const char *path)
{
    sqlite3 *db = NULL;
    char uri[4300];
    snprintf(uri, sizeof uri, "file:%s?wal_nodatacow=0", path);
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, vt->vfs) != SQLITE_OK ||
        !child_exec(db, "PRAGMA journal_mode=WAL") || !child_exec(db, "PRAGMA synchronous=FULL") ||
        !child_exec(db, "PRAGMA cow_commit_interval=0") || !child_exec(db, "PRAGMA cow_commit"))
        _exit(4);
    long long s0 = cow_stat(db, "log_syncs"), f0 = cow_stat(db, "flushes"), last = s0;
    int n = 0;
    while (n < 30 || cow_stat(db, "log_syncs") == last) {
        last = cow_stat(db, "log_syncs");
        if (n == 60 || !child_exec(db, "INSERT INTO t(y) VALUES('logged')"))
            _exit(4);
        n++;
    }
    long long ls = cow_stat(db, "log_syncs") - s0, fl = cow_stat(db, "flushes") - f0;
    /* one flush per commit, most through the log */
    if (ls < n * 3 / 4 || fl > n + 5)
        _exit(5);
    *wal_rows = n;
    kill(getpid(), SIGKILL);
}

START_TEST(test_wal_log_replay)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");

    wal_rows = mmap(NULL, sizeof *wal_rows, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
    ck_assert_ptr_ne(wal_rows, MAP_FAILED);
    make_db(path, vt->vfs, 10);
    run_killed_child(wal_syncs_then_die, path);
    ck_assert_int_ge(*wal_rows, 30);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_gt(cow_stat(db, "replayed"), 0);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y = 'logged'"), *wal_rows);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    munmap(wal_rows, sizeof *wal_rows);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Threads opening and closing connections to two containers at once: the
 * registry opens each store once and closes it with the last file. */
#define REG_NTHREADS 4
#define REG_NITER 25

struct reg_arg {
    const char *paths[2];
    int idx;
    int failed;
    char why[200];
};

static void *reg_thread(void *p)
{
    struct reg_arg *a = p;
    for (int i = 0; i < REG_NITER && !a->failed; i++) {
        sqlite3 *db = NULL;
        const char *path = a->paths[(i + a->idx) % 2];
        char sql[100];
        snprintf(sql, sizeof sql, "INSERT INTO t(y) VALUES('thread %d iter %d')", a->idx, i);
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vt->vfs) != SQLITE_OK) {
            snprintf(a->why, sizeof a->why, "open: %s", db ? sqlite3_errmsg(db) : "");
            a->failed = 1;
        } else {
            sqlite3_busy_timeout(db, 20000);
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
                snprintf(a->why, sizeof a->why, "insert: %s", sqlite3_errmsg(db));
                a->failed = 1;
            }
        }
        sqlite3_close(db);
    }
    return NULL;
}

START_TEST(test_registry_threads)
{
    char *dir = tdir_make();
    char *p1 = cpath(dir, "one.db");
    char *p2 = cpath(dir, "two.db");
    pthread_t th[REG_NTHREADS];
    struct reg_arg args[REG_NTHREADS];

    make_db(p1, vt->vfs, 0);
    make_db(p2, vt->vfs, 0);
    for (int i = 0; i < REG_NTHREADS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].paths[0] = p1;
        args[i].paths[1] = p2;
        args[i].idx = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, reg_thread, &args[i]), 0);
    }
    for (int i = 0; i < REG_NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < REG_NTHREADS; i++)
        ck_assert_msg(!args[i].failed, "thread %d: %s", i, args[i].why);
    sqlite3 *db = db_open(p1, SQLITE_OPEN_READWRITE, vt->vfs);
    sqlite3_int64 n1 = query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'thread %'");
    sqlite3_close(db);
    db = db_open(p2, SQLITE_OPEN_READWRITE, vt->vfs);
    sqlite3_int64 n2 = query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'thread %'");
    sqlite3_close(db);
    ck_assert_int_eq(n1 + n2, REG_NTHREADS * REG_NITER);
    ck_assert_dir(dir, "one.db two.db");
    vt->fsck_clean(p1);
    vt->fsck_clean(p2);
    free(p1);
    free(p2);
    tdir_remove(dir);
}
END_TEST

/* On any target: the journal modes, hot-journal, WAL and super-journal
 * recovery after a crash, log replay, the registry under threads, and of
 * test_app_crash_durable what must survive a power loss: every journal
 * mode but DELETE at synchronous=FULL, DELETE at EXTRA (see there). */
void vfs_journal_any_target(TCase *tc)
{
    tcase_add_loop_test(tc, test_journal_modes, 0, NMODES);
    tcase_add_test(tc, test_crash_hot_journal);
    tcase_add_test(tc, test_crash_wal);
    tcase_add_test(tc, test_crash_super_journal);
    tcase_add_test(tc, test_wal_log_replay);
    tcase_add_test(tc, test_registry_threads);
    tcase_add_loop_test(tc, test_app_crash_durable, CRASH_EXTRA(0), CRASH_EXTRA(1)); /* delete */
    for (int m = 1; m < NMODES; m++) /* synchronous=full: 3 * m + 2 */
        tcase_add_loop_test(tc, test_app_crash_durable, 3 * m + 2, 3 * m + 3);
}

Suite *vfs_journal_suite(void)
{
    Suite *s = suite_create("vfs_journal");
    TCase *tc;

    tc = vfs_tcase(s, "journal_modes", 120, NULL);
    tcase_add_loop_test(tc, test_journal_modes, 0, NMODES);

    tc = vfs_tcase(s, "crash_and_threads", 120, test_crash_hot_journal, test_crash_wal,
                   test_crash_super_journal, test_wal_log_replay, test_registry_threads, NULL);
    tcase_add_loop_test(tc, test_app_crash_durable, 0, 3 * NMODES);

    return s;
}
