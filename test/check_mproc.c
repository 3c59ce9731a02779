/*
 * check_mproc.c - the "mproc" suite: several processes (fork) run random
 * SQL transactions on one container at once, through the cow VFS, in WAL
 * and rollback (DELETE) mode, against a model.
 *
 * Each worker k owns the rows of process k: table r(proc, seq, val) holds
 * its rows seq = 1..n, and table c(proc, n, total) its counter n and the
 * sum of its vals, both changed in one write transaction.  A worker:
 *
 *   writes   BEGIN IMMEDIATE; a row (k, n+1, v); c's row k to (n+1,
 *            total+v); COMMIT (and remembers n and total);
 *   aborts   the same, then ROLLBACK: nothing of it may ever be seen;
 *   reads    BEGIN; for every process q, what it sees must be a committed
 *            prefix of q's transactions: count(r) = max(seq) = c.n and
 *            sum(val) = c.total; its own q = k equal to what it committed;
 *            every q's n never smaller than at its previous read; COMMIT.
 *
 * busy_timeout is 10 s, so every lock conflict is waited out.  At the end
 * the test process checks every worker's count and sum, integrity_check,
 * and fsck (tdir_remove).
 *
 * Case "announce": a reader in another process that begins while the
 * writer has written its WAL-index header but not yet published its
 * commit waits for the publication (vfs_shm.c cowvfsShmBarrier).
 *
 * Case "grow": a WAL in its first cycle makes about one commit per chunk
 * it grows by, not one per transaction (vfs_io.c cowWalGrow).
 *
 * Case "idle": a connection of another process that read once and then
 * sits idle must not keep the writer from reusing the space it frees
 * (idle pins, vfs_io.c cowvfsReadBegin).
 *
 * Run alone with CK_RUN_SUITE=mproc ./build/check_all (or make mproc).
 */
#include <check.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../store/inject.h"
#include "cowvfs.h"
#include "testutil.h"
#include "vfsutil.h"

#define MPROC_MAX 8

/* A worker's result, sent to the test process over a pipe. */
struct mproc_result {
    int status;          /* 0, or what went wrong (MPROC_*) */
    int rc;              /* the SQLite result of a failed statement */
    long long n;         /* rows committed */
    long long total;     /* their vals' sum */
    long long nRead;     /* read transactions checked */
    long long nAbort;    /* transactions rolled back */
    char msg[160];
};
#define MPROC_SQL 1      /* a statement failed */
#define MPROC_MODEL 2    /* a read saw something no committed prefix has */

/* The worker's model: what it committed, and each process's last seen n. */
struct mproc_worker {
    sqlite3 *db;
    int k;
    int nProc;
    long long n, total;
    long long aSeen[MPROC_MAX];
    struct mproc_result res;
};

/* Runs SQL on W's connection; records a failure in W->res. */
static int w_exec(struct mproc_worker *w, const char *zSql)
{
    int rc = sqlite3_exec(w->db, zSql, NULL, NULL, NULL);
    if (rc != SQLITE_OK && w->res.status == 0) {
        w->res.status = MPROC_SQL;
        w->res.rc = sqlite3_extended_errcode(w->db);
        snprintf(w->res.msg, sizeof w->res.msg, "%.60s: %.90s", zSql, sqlite3_errmsg(w->db));
    }
    return rc;
}

/* Three integers of one row of SQL into A (-1 each if no row). */
static int w_query3(struct mproc_worker *w, const char *zSql, long long a[3])
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(w->db, zSql, -1, &st, NULL);
    a[0] = a[1] = a[2] = -1;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            for (int i = 0; i < 3; i++)
                a[i] = sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK && w->res.status == 0) {
        w->res.status = MPROC_SQL;
        w->res.rc = sqlite3_extended_errcode(w->db);
        snprintf(w->res.msg, sizeof w->res.msg, "%.60s: %.90s", zSql, sqlite3_errmsg(w->db));
    }
    sqlite3_finalize(st);
    return rc;
}

/* One write transaction of W, committed (BROLLBACK 0) or rolled back. */
static int w_write(struct mproc_worker *w, long long v, int bRollback)
{
    char sql[256];

    if (w_exec(w, "BEGIN IMMEDIATE") != SQLITE_OK)
        return -1;
    snprintf(sql, sizeof sql,
             "INSERT INTO r VALUES (%d, %lld, %lld);"
             "UPDATE c SET n = n + 1, total = total + %lld WHERE proc = %d",
             w->k, w->n + 1, v, v, w->k);
    if (w_exec(w, sql) != SQLITE_OK) {
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (bRollback) {
        w->res.nAbort++;
        return w_exec(w, "ROLLBACK") == SQLITE_OK ? 0 : -1;
    }
    if (w_exec(w, "COMMIT") != SQLITE_OK) {
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    w->n++;
    w->total += v;
    return 0;
}

/* One read transaction of W, checked against the model. */
static int w_read(struct mproc_worker *w)
{
    char sql[200];
    long long a[3], b[3];

    if (w_exec(w, "BEGIN") != SQLITE_OK)
        return -1;
    for (int q = 0; q < w->nProc; q++) {
        snprintf(sql, sizeof sql, "SELECT count(*), max(seq), sum(val) FROM r WHERE proc = %d", q);
        if (w_query3(w, sql, a) != SQLITE_OK)
            goto fail;
        snprintf(sql, sizeof sql, "SELECT n, total, 0 FROM c WHERE proc = %d", q);
        if (w_query3(w, sql, b) != SQLITE_OK)
            goto fail;
        if (a[0] != b[0] || a[1] != b[0] || a[2] != b[1] || b[0] < w->aSeen[q] ||
            (q == w->k && (b[0] != w->n || b[1] != w->total))) {
            w->res.status = MPROC_MODEL;
            snprintf(w->res.msg, sizeof w->res.msg,
                     "proc %d sees proc %d: rows %lld max %lld sum %lld, counter %lld total %lld, "
                     "saw %lld before, committed %lld",
                     w->k, q, a[0], a[1], a[2], b[0], b[1], w->aSeen[q], q == w->k ? w->n : -1);
            goto fail;
        }
        w->aSeen[q] = b[0];
    }
    w->res.nRead++;
    return w_exec(w, "COMMIT") == SQLITE_OK ? 0 : -1;
fail:
    sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* Worker K of NPROC on container PATH: NTXN random transactions; sends its
 * result to FD and exits. */
static void worker_main(const char *path, int k, int nProc, int nTxn, uint64_t seed, int fd)
{
    struct mproc_worker w;
    uint64_t rs = seed ^ ((uint64_t)(k + 1) * 0x9e3779b97f4a7c15ull);

    memset(&w, 0, sizeof w);
    w.k = k;
    w.nProc = nProc;
    int rc = sqlite3_open_v2(path, &w.db, SQLITE_OPEN_READWRITE, "cow");
    if (rc != SQLITE_OK) {
        w.res.status = MPROC_SQL;
        w.res.rc = rc;
        snprintf(w.res.msg, sizeof w.res.msg, "open: %.140s",
                 w.db ? sqlite3_errmsg(w.db) : "no memory");
    } else {
        sqlite3_busy_timeout(w.db, 10000);
    }
    for (int i = 0; i < nTxn && w.res.status == 0; i++) {
        unsigned r = (unsigned)(test_rand(&rs) % 100);
        long long v = (long long)(test_rand(&rs) % 1000) + 1;
        if (r < 50)
            w_write(&w, v, 0);
        else if (r < 60)
            w_write(&w, v, 1);
        else
            w_read(&w);
    }
    if (w.res.status == 0)
        w_read(&w);
    w.res.n = w.n;
    w.res.total = w.total;
    if (sqlite3_close(w.db) != SQLITE_OK && w.res.status == 0) {
        w.res.status = MPROC_SQL;
        snprintf(w.res.msg, sizeof w.res.msg, "close failed");
    }
    _exit(write(fd, &w.res, sizeof w.res) == (ssize_t)sizeof w.res ? 0 : 3);
}

/* NPROC workers of NTXN transactions each on a new container in journal
 * mode ZMODE. */
static void run_mproc(const char *zMode, int nProc, int nTxn)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "mp.db");
    char sql[200];
    uint64_t seed = test_seed();
    int aFd[MPROC_MAX];
    pid_t aPid[MPROC_MAX];
    struct mproc_result aRes[MPROC_MAX];

    sqlite3 *db = db_open(path, RW_CREATE, "cow");
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", zMode);
    ck_assert_int_eq(exec_rc(db, sql), SQLITE_OK);
    ck_assert_int_eq(exec_rc(db, "CREATE TABLE r(proc, seq, val, PRIMARY KEY(proc, seq));"
                                 "CREATE TABLE c(proc PRIMARY KEY, n, total)"),
                     SQLITE_OK);
    for (int k = 0; k < nProc; k++) {
        snprintf(sql, sizeof sql, "INSERT INTO c VALUES (%d, 0, 0)", k);
        ck_assert_int_eq(exec_rc(db, sql), SQLITE_OK);
    }
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK); /* nothing open across fork */

    for (int k = 0; k < nProc; k++) {
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        aPid[k] = fork();
        ck_assert_int_ge(aPid[k], 0);
        if (aPid[k] == 0) {
            close(p[0]);
            worker_main(path, k, nProc, nTxn, seed, p[1]);
        }
        close(p[1]);
        aFd[k] = p[0];
    }
    for (int k = 0; k < nProc; k++) {
        int st = -1;
        memset(&aRes[k], 0, sizeof aRes[k]);
        ssize_t got = read(aFd[k], &aRes[k], sizeof aRes[k]);
        close(aFd[k]);
        ck_assert_int_eq(waitpid(aPid[k], &st, 0), aPid[k]);
        ck_assert_msg(got == (ssize_t)sizeof aRes[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "%s: worker %d died (status %d)", zMode, k, st);
    }
    for (int k = 0; k < nProc; k++)
        ck_assert_msg(aRes[k].status == 0, "%s, %d processes: worker %d: %s (rc %d)", zMode,
                      nProc, k, aRes[k].msg, aRes[k].rc);

    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    for (int k = 0; k < nProc; k++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM r WHERE proc = %d", k);
        ck_assert_int_eq(query_int(db, sql), aRes[k].n);
        snprintf(sql, sizeof sql, "SELECT coalesce(sum(val), 0) FROM r WHERE proc = %d", k);
        ck_assert_int_eq(query_int(db, sql), aRes[k].total);
        snprintf(sql, sizeof sql, "SELECT n FROM c WHERE proc = %d", k);
        ck_assert_int_eq(query_int(db, sql), aRes[k].n);
        ck_assert_int_gt(aRes[k].nRead, 0);
    }
    char *ic = query_text(db, "PRAGMA integrity_check");
    ck_assert_str_eq(ic, "ok");
    free(ic);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);
    free(path);
    tdir_remove(dir);
}

START_TEST(test_mproc_wal_2)
{
    run_mproc("wal", 2, 300);
}
END_TEST

START_TEST(test_mproc_wal_8)
{
    run_mproc("wal", 8, 80);
}
END_TEST

START_TEST(test_mproc_delete_2)
{
    run_mproc("delete", 2, 300);
}
END_TEST

START_TEST(test_mproc_delete_8)
{
    run_mproc("delete", 8, 80);
}
END_TEST

/* The idle reader: reads the table once (its connection then holds no
 * read lock: NO_LOCK in rollback mode, no WAL read mark in WAL mode),
 * says so on OUT, sits idle until IN closes, then must read the writer's
 * last rows.  Exit status 0 or the step that failed. */
static void idle_reader(const char *path, int in, int out)
{
    sqlite3 *db;
    char c = 1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK)
        _exit(10);
    sqlite3_busy_timeout(db, 10000);
    if (query_int(db, "SELECT count(*) FROM t") != 64)
        _exit(11);
    if (write(out, &c, 1) != 1)
        _exit(12);
    while (read(in, &c, 1) == 1) /* idle until the writer is done */
        ;
    if (query_int(db, "SELECT count(*) FROM t WHERE v = 20") != 64)
        _exit(13);
    _exit(sqlite3_close(db) == SQLITE_OK ? 0 : 14);
}

/*
 * An idle connection of another process keeps no generation pinned: the
 * writer rewrites a 2 MiB table 20 times while the reader's connection
 * stays open but reads nothing, and the container must stay under LIMIT
 * MiB (the space each rewrite frees is reused), where a reader pinned at
 * its first read's generation holds back every rewrite's old copy.
 * Measured with relocation off (the sizes are about reuse): alone, 16 MiB
 * in DELETE mode and 28 MiB in WAL mode (its frames too); with a pinned
 * reader, 87 and 69 MiB.  Fails when the VFS never unpins (vfs_io.c
 * cowvfsReadEnd) or an owner that lets go pins a generation nothing
 * reads (xproc.c xproc_yield_locked).
 */
static void run_idle(const char *zMode, long long limit)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "idle.db");
    char uri[4300], sql[200];
    int toR[2], fromR[2];
    char c;
    ck_assert_int_eq(pipe(toR), 0);
    ck_assert_int_eq(pipe(fromR), 0);
    pid_t pid = fork(); /* before this process opens anything */
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(toR[1]);
        close(fromR[0]);
        if (read(toR[0], &c, 1) != 1) /* the table exists */
            _exit(9);
        idle_reader(path, toR[0], fromR[1]);
    }
    close(toR[0]);
    close(fromR[1]);
    snprintf(uri, sizeof uri, "file:%s?reloc=0", path);
    sqlite3 *db = db_open(uri, RW_CREATE | SQLITE_OPEN_URI, "cow");
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", zMode);
    ck_assert_int_eq(exec_rc(db, sql), SQLITE_OK);
    ck_assert_int_eq(exec_rc(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v, b);"
                                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                                 "FROM n WHERE i < 64) "
                                 "INSERT INTO t SELECT i, 0, randomblob(32768) FROM n"),
                     SQLITE_OK);
    c = 1;
    ck_assert_int_eq(write(toR[1], &c, 1), 1);
    ck_assert_int_eq(read(fromR[0], &c, 1), 1); /* it read, and is idle */
    for (int i = 1; i <= 20; i++) {
        snprintf(sql, sizeof sql, "UPDATE t SET v = %d, b = randomblob(32768)", i);
        ck_assert_int_eq(exec_rc(db, sql), SQLITE_OK);
        if (i % 4 == 0)
            ck_assert_int_eq(exec_rc(db, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
    }
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_msg(sb.st_size < limit * 1024 * 1024,
                  "%s: the container is %lld bytes after 20 rewrites of a 2 MiB table: the "
                  "idle reader holds the space back",
                  zMode, (long long)sb.st_size);
    close(toR[1]); /* the reader reads the last rewrite */
    int st = -1;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the reader failed: status %d",
                  zMode, st);
    close(fromR[0]);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);
    free(path);
    tdir_remove(dir);
}

START_TEST(test_mproc_idle_wal)
{
    run_idle("wal", 52);
}
END_TEST

START_TEST(test_mproc_idle_delete)
{
    run_idle("delete", 32);
}
END_TEST

/* The writer's callback at "commit:sb_written" (its commit at the end of
 * the write transaction, after SQLite wrote the WAL-index header, before
 * the publication): tells the reader, then takes its time. */
static void announce_cb(void *arg, const char *name)
{
    char c = 1;
    (void)name;
    if (write(*(int *)arg, &c, 1) != 1)
        return;
    usleep(400 * 1000);
}

/*
 * A reader in another process that begins a read transaction after the
 * writer wrote its WAL-index header (the new frames named there) but
 * before the writer published the commit that gives the others those
 * frames: the reader's refresh waits for that publication and reads the
 * new row.  The writer stops between its superblock and the publication
 * for 0.4 s (an injection callback), and tells the reader to go.  Fails
 * (SQLITE_IOERR_SHORT_READ, or the old value) when the header is not
 * announced (cow_store_announce at xShmBarrier).  The WAL is copy on
 * write (wal_nodatacow=0): a nodatacow WAL's frames land in place and the
 * publication is a writeback with no commit to stop in.
 */
START_TEST(test_mproc_reader_waits_for_publication)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "an.db");
    int go[2], ready[2];
    char c;
    /* the WAL copied on write: the end of each transaction is a commit
     * (a nodatacow WAL's frames land in place, in chunks, with none) */
    char uri[4300];
    snprintf(uri, sizeof uri, "file:%s?wal_nodatacow=0", path);
    sqlite3 *db = db_open(uri, RW_CREATE | SQLITE_OPEN_URI, "cow");
    ck_assert_int_eq(exec_rc(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(id PRIMARY KEY, v);"
                                 "INSERT INTO t VALUES (1, 0)"),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK); /* nothing open across fork */
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sqlite3 *r;
        close(go[1]);
        close(ready[0]);
        if (sqlite3_open_v2(uri, &r, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "cow") !=
            SQLITE_OK)
            _exit(10);
        sqlite3_busy_timeout(r, 10000);
        if (query_int(r, "SELECT v FROM t WHERE id = 1") != 0)
            _exit(11);
        /* again once the writer owns the container and published: this
         * process has loaded everything published before the last commit */
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1 ||
            query_int(r, "SELECT v FROM t WHERE id = 1") != 2)
            _exit(16);
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(12);
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(r, "SELECT v FROM t WHERE id = 1", -1, &s, NULL) != SQLITE_OK)
            _exit(13);
        int rc = sqlite3_step(s);
        int v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
        sqlite3_finalize(s);
        if (rc != SQLITE_ROW)
            _exit(20 + (rc & 0xff) % 200); /* the error, for the message */
        _exit(v == 1 ? (sqlite3_close(r) == SQLITE_OK ? 0 : 15) : 14);
    }
    close(go[0]);
    close(ready[1]);
    ck_assert_int_eq(read(ready[0], &c, 1), 1); /* it read the old row */
    db = db_open(uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "cow");
    sqlite3_busy_timeout(db, 10000);
    /* NORMAL: no xSync at the commit (an fsync's log record also marks the
     * container unpublished, and would hide what this test looks at) */
    ck_assert_int_eq(exec_rc(db, "PRAGMA synchronous=NORMAL"), SQLITE_OK);
    /* this process becomes the owner and publishes; the reader loads that */
    ck_assert_int_eq(exec_rc(db, "UPDATE t SET v = 2 WHERE id = 1"), SQLITE_OK);
    c = 1;
    ck_assert_int_eq(write(go[1], &c, 1), 1);
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    ck_assert_int_eq(exec_rc(db, "BEGIN IMMEDIATE"), SQLITE_OK);
    ck_assert_int_eq(cow_inject_set_callback("commit:sb_written", announce_cb, &go[1],
                                             COW_INJECT_ONCE),
                     0);
    ck_assert_int_eq(exec_rc(db, "UPDATE t SET v = 1 WHERE id = 1; COMMIT"), SQLITE_OK);
    int st = -1;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    unsigned long hits = cow_inject_hits("commit:sb_written");
    cow_inject_reset();
    ck_assert_uint_gt(hits, 0); /* the writer did stop there */
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "the reader failed: exit %d (14: it read the old row; 20 and up: error "
                  "20 + rc)",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    close(go[1]);
    close(ready[0]);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * A WAL database open in two processes: the writer's transactions in the
 * WAL's first cycle (no checkpoint: every frame goes past the end the
 * WAL had) commit the store about once per chunk the WAL grows by
 * (vfs_io.c cowWalGrow), not once per transaction: each transaction's
 * frames overwrite the chunk's zeros in place, with nothing to publish.
 * 300 single-row transactions write about 1.2 MiB of frames, which the
 * chunks (64 KiB, then doubling, at most 256 KiB a step) cover in 7 steps;
 * without them each transaction's publication is a commit (300 or more).
 * The other process then reads every row, and fsck is clean.
 */
START_TEST(test_mproc_wal_grows_in_chunks)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "grow.db");
    int toR[2], fromR[2];
    char c;
    ck_assert_int_eq(pipe(toR), 0);
    ck_assert_int_eq(pipe(fromR), 0);
    pid_t pid = fork(); /* before this process opens anything */
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sqlite3 *r;
        close(toR[1]);
        close(fromR[0]);
        if (read(toR[0], &c, 1) != 1) /* the table exists */
            _exit(9);
        if (sqlite3_open_v2(path, &r, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK)
            _exit(10);
        sqlite3_busy_timeout(r, 10000);
        if (query_int(r, "SELECT count(*) FROM t") != 0)
            _exit(11);
        if (write(fromR[1], &c, 1) != 1)
            _exit(12);
        while (read(toR[0], &c, 1) == 1) /* open, idle, until the writer is done */
            ;
        if (query_int(r, "SELECT count(*) FROM t") != 300)
            _exit(13);
        _exit(sqlite3_close(r) == SQLITE_OK ? 0 : 14);
    }
    close(toR[0]);
    close(fromR[1]);
    sqlite3 *db = db_open(path, RW_CREATE, "cow");
    sqlite3_busy_timeout(db, 10000);
    ck_assert_int_eq(exec_rc(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                 "PRAGMA wal_autocheckpoint=0;"
                                 "CREATE TABLE t(id INTEGER PRIMARY KEY, v)"),
                     SQLITE_OK);
    ck_assert_int_eq(exec_rc(db, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK); /* a new cycle */
    c = 1;
    ck_assert_int_eq(write(toR[1], &c, 1), 1);
    ck_assert_int_eq(read(fromR[0], &c, 1), 1); /* the container is open twice */
    long long commits0 = cow_stat(db, "commits");
    for (int i = 1; i <= 300; i++) {
        char sql[100];
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d, randomblob(100))", i);
        ck_assert_int_eq(exec_rc(db, sql), SQLITE_OK);
    }
    long long commits = cow_stat(db, "commits") - commits0;
    long long grown = cow_stat(db, "grown");
    ck_assert_msg(commits <= 12,
                  "300 transactions in the WAL's first cycle made %lld commits (a chunk's "
                  "growth makes one)",
                  commits);
    ck_assert_msg(grown >= 1024 * 1024, "the WAL grew by %lld bytes in chunks", grown);
    close(toR[1]); /* the reader reads every row */
    int st = -1;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the reader failed: status %d", st);
    close(fromR[0]);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);
    free(path);
    tdir_remove(dir);
}
END_TEST

Suite *mproc_suite(void)
{
    Suite *s = suite_create("mproc");

    vfs_tcase(s, "wal", 600, test_mproc_wal_2, test_mproc_wal_8, NULL);
    vfs_tcase(s, "delete", 600, test_mproc_delete_2, test_mproc_delete_8, NULL);
    vfs_tcase(s, "idle", 300, test_mproc_idle_wal, test_mproc_idle_delete, NULL);
    vfs_tcase(s, "announce", 120, test_mproc_reader_waits_for_publication, NULL);
    vfs_tcase(s, "grow", 120, test_mproc_wal_grows_in_chunks, NULL);
    return s;
}
