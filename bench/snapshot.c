/*
 * snapshot.c - the snapshot workload: the time of cowvfs_snapshot,
 * cowvfs_branch and cowvfs_delete, the cost of the first writes after a
 * snapshot, and the copies another VFS makes instead (VACUUM INTO, the
 * backup API), per database size, in tables of their own.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cowvfs.h"
#include "bench.h"

/* ---- snapshot ----
 *
 * For each size of opt.sz.snap_mib, one database is built on both VFSs (the
 * same rows: ids 1..rows, random blobs of SNAP_PAYLOAD_MIN..MAX bytes,
 * page_size 4096, inserted in one transaction in DELETE mode until the
 * database has the size, then switched to WAL, untimed), measured, and
 * removed before the next size is built, so that at most one size is on
 * disk.  The VFS that is cow is measured against the other one ("ref").
 *
 * On cow, on one connection (journal_mode=WAL, synchronous=FULL):
 *   - SNAP_N snapshots, each after one single-row UPDATE transaction
 *     (untimed), so that each snapshots a database changed since the last
 *     (the snapshot's commit also commits that change); then
 *     SNAP_N branches the same way; then SNAP_N "idle" snapshots one after
 *     the other, with nothing written since the last; then every one of
 *     them is deleted.  Each call is timed on its own: median and p90,
 *     microseconds.  The last snapshot after an UPDATE is opened
 *     (snapshot=NAME) and checked: all rows, and the row updated just
 *     before it as it was then, not as it was changed after.
 *   - first writes: SNAP_BATCHES times, a batch of SNAP_WRITES single-row
 *     UPDATE transactions with no snapshot in the container ("none"), then a
 *     snapshot (untimed) and a batch right after it ("after"), then that
 *     snapshot deleted (untimed): microseconds per transaction, the batch's
 *     total over SNAP_WRITES, and the first transaction of the batch alone.
 *     In WAL mode the batch ends with PRAGMA wal_checkpoint(TRUNCATE),
 *     timed, since the database file (what the snapshot shares) is written
 *     only by checkpoints: SNAP_WRITES frames stay under the autocheckpoint.
 *     Then the same in DELETE mode, where each commit writes the file.
 * On ref, the copies one makes without snapshots, into a new file on the
 * same VFS: VACUUM INTO, and sqlite3_backup_step(-1) from an open
 * connection (the time includes opening and closing the copy; the copy is
 * in DELETE mode, synchronous=FULL, as the backup API makes it), median of
 * SNAP_COPIES each; each copy is removed after it is timed.
 *
 * A size is skipped, with a message, when the file system of the work
 * directory has less than SNAP_ROOM times its size free: the two databases,
 * a copy and the container's own space.
 */

#define SNAP_N 21          /* snapshots, and branches, per size */
#define SNAP_WRITES 200    /* UPDATE transactions of one first-writes batch */
#define SNAP_BATCHES 5     /* first-writes batches, per mode and kind */
#define SNAP_COPIES 3      /* VACUUM INTO and backups, per size */
#define SNAP_ROOM 5        /* free space needed, in multiples of the size */
#define SNAP_PAGE 4096     /* page_size of the databases */
#define SNAP_PAYLOAD_MIN 100
#define SNAP_PAYLOAD_MAX 1900
#define SNAP_NSIZES ((int)(sizeof opt.sz.snap_mib / sizeof opt.sz.snap_mib[0]))

/* The calls timed, in the order they are made (snapshot, branch and idle:
 * SNAP_N each, named PREFIX-I) and the rows of the table. */
enum { SC_SNAP, SC_BRANCH, SC_IDLE, SC_DELETE, SNAP_CALLS };
static const char *const snap_calls[SNAP_CALLS] = { "snapshot", "branch", "idle snapshot",
                                                   "delete" };
static const char *const snap_prefix[SC_DELETE] = { "snap", "branch", "idle" };

struct snap_result {
    int ran;               /* measured (else skipped or failed) */
    int64_t rows;
    double build[2];       /* seconds to build the database: ref, cow */
    int64_t bytes[2];      /* the database's files on disk: ref, cow */
    double med[SNAP_CALLS], p90[SNAP_CALLS]; /* microseconds, by snap_calls */
    double vacuum_med, backup_med; /* seconds */
    /* first writes, [0] WAL, [1] DELETE: microseconds per transaction
     * (median over batches) and of a batch's first transaction (median) */
    double w_none[2], w_after[2];
    double w1_none[2], w1_after[2];
};

static const char snap_create_sql[] =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)";
/* The new payload has the old one's length, so no row moves. */
static const char snap_update_sql[] =
    "UPDATE t SET payload = substr(?2, 1, length(payload)) WHERE id = ?1";

/* Fills BUF with N bytes from the PRNG. */
static void fill_random(unsigned char *buf, int n)
{
    for (int i = 0; i < n; i += 8) {
        uint64_t r = prng_next();
        for (int k = 0; k < 8 && i + k < n; k++)
            buf[i + k] = (unsigned char)(r >> (8 * k));
    }
}

/* The value at rank P percent (nearest rank) of the N sorted values V. */
static double percentile(const double *v, int n, int p)
{
    int i = (n * p + 99) / 100 - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* Free bytes for an unprivileged user in the file system of DIR, or -1. */
static int64_t free_bytes(const char *dir)
{
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return -1;
    return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

/* Prints a ratio with three significant digits or more, or "-". */
static void fmt_ratio(char *buf, size_t n, double num, double den)
{
    double x = den > 0 && num >= 0 ? num / den : -1;
    if (x < 0)
        snprintf(buf, n, "-");
    else if (x >= 100)
        snprintf(buf, n, "%.0f", x);
    else if (x >= 10)
        snprintf(buf, n, "%.1f", x);
    else
        snprintf(buf, n, "%.2f", x);
}

/*
 * Builds snapshot's database at PATH on VFS: *ROWS rows, or if *ROWS is 0,
 * rows until the database has TARGET bytes (*ROWS gets their number).
 * Leaves it in WAL mode.  Returns 0 or -1 (reported).
 */
static int snap_build(const char *path, const char *vfs, int64_t target, int64_t *rows)
{
    unsigned char buf[SNAP_PAYLOAD_MAX];
    sqlite3 *db;
    sqlite3_stmt *ins = NULL, *pc = NULL;
    int64_t want = *rows, i;
    char sql[64];

    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d", SNAP_PAGE);
    if (exec(db, sql) || exec(db, "PRAGMA cache_size=-65536") ||
        set_journal_mode(db, "delete") || exec(db, snap_create_sql) || exec(db, "BEGIN"))
        goto out;
    ins = prepare(db, "INSERT INTO t(id, payload) VALUES(?1, ?2)");
    pc = prepare(db, "PRAGMA page_count");
    if (!ins || !pc)
        goto out;
    for (i = 0; want == 0 || i < want; i++) {
        if (want == 0 && i % 64 == 0) {
            if (sqlite3_step(pc) != SQLITE_ROW) {
                report(db, "PRAGMA page_count", sqlite3_errcode(db));
                goto out;
            }
            int64_t pages = sqlite3_column_int64(pc, 0);
            sqlite3_reset(pc);
            if (pages * SNAP_PAGE >= target)
                break;
        }
        int n = (int)prng_range(SNAP_PAYLOAD_MIN, SNAP_PAYLOAD_MAX);
        fill_random(buf, n);
        sqlite3_bind_int64(ins, 1, i + 1);
        sqlite3_bind_blob(ins, 2, buf, n, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            report(db, "snapshot: insert", sqlite3_errcode(db));
            goto out;
        }
        sqlite3_reset(ins);
    }
    *rows = i;
    sqlite3_finalize(ins);
    sqlite3_finalize(pc);
    ins = pc = NULL;
    if (exec(db, "COMMIT") || set_journal_mode(db, "wal"))
        goto out;
    return db_close(db);
out:
    sqlite3_finalize(ins);
    sqlite3_finalize(pc);
    sqlite3_close(db);
    return -1;
}

/* One autocommit UPDATE of row ID (0: a random one of ROWS) with UPD
 * (snap_update_sql); the new payload is the prefix of BUF (filled here,
 * SNAP_PAYLOAD_MAX bytes); *PID gets the row if PID.  0 or -1 (reported). */
static int snap_update(sqlite3 *db, sqlite3_stmt *upd, int64_t id, int64_t rows,
                       unsigned char *buf, int64_t *pid)
{
    if (id == 0)
        id = prng_range(1, rows);
    fill_random(buf, SNAP_PAYLOAD_MAX);
    sqlite3_bind_int64(upd, 1, id);
    sqlite3_bind_blob(upd, 2, buf, SNAP_PAYLOAD_MAX, SQLITE_STATIC);
    if (sqlite3_step(upd) != SQLITE_DONE) {
        report(db, "snapshot: update", sqlite3_errcode(db));
        sqlite3_reset(upd);
        return -1;
    }
    sqlite3_reset(upd);
    if (pid)
        *pid = id;
    return 0;
}

/* Reports a failed snapshot call: WHAT, NAME, the code RC and message ERR
 * (freed). */
static void snap_report(const char *what, const char *name, int rc, char *err)
{
    fprintf(stderr, "bench: %s %s: %s (%d)\n", what, name,
            err ? err : sqlite3_errstr(rc), rc);
    sqlite3_free(err);
    failed = 1;
}

/* Makes (or deletes, if DEL) snapshot or branch NAME of DB's main database;
 * *US gets the microseconds of the call if US.  0 or -1 (reported). */
static int snap_call(sqlite3 *db, int (*fn)(sqlite3 *, const char *, const char *, char **),
                     const char *what, const char *name, double *us)
{
    char *err = NULL;
    double t0 = now_s();
    int rc = fn(db, "main", name, &err);
    double t = now_s() - t0;
    if (rc != SQLITE_OK) {
        snap_report(what, name, rc, err);
        return -1;
    }
    if (us)
        *us = t * 1e6;
    return 0;
}

/*
 * Opens snapshot NAME of the container at PATH (read-only) and checks it:
 * ROWS rows, and row ID's payload the prefix of BUF, not of LATER (the
 * update made after the snapshot).  0 or -1 (reported).
 */
static int snap_verify(const char *path, const char *name, int64_t rows, int64_t id,
                       const unsigned char *buf, const unsigned char *later)
{
    char uri[4400];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t count = -1;
    int now = -1, after = -1;
    int rc;

    snprintf(uri, sizeof uri, "file:%s?vfs=%s&snapshot=%s", path, COWVFS_NAME, name);
    rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    if (rc != SQLITE_OK) {
        report(db, uri, rc);
        sqlite3_close(db);
        return -1;
    }
    st = prepare(db, "SELECT count(*), (SELECT payload = substr(?2, 1, length(payload)) "
                     "FROM t WHERE id = ?1), (SELECT payload = substr(?3, 1, "
                     "length(payload)) FROM t WHERE id = ?1) FROM t");
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, buf, SNAP_PAYLOAD_MAX, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, later, SNAP_PAYLOAD_MAX, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        report(db, "snapshot: check", sqlite3_errcode(db));
        goto out;
    }
    count = sqlite3_column_int64(st, 0);
    now = sqlite3_column_int(st, 1);
    after = sqlite3_column_int(st, 2);
out:
    sqlite3_finalize(st);
    if (sqlite3_close(db) != SQLITE_OK)
        report(db, "close", sqlite3_errcode(db));
    if (count != rows || now != 1 || after != 0) {
        fprintf(stderr, "bench: snapshot %s: %lld rows (expected %lld); row %lld %s\n",
                name, (long long)count, (long long)rows, (long long)id,
                now == 1 && after == 0 ? "as it was"
                : after == 1          ? "as changed after the snapshot"
                                      : "neither as it was nor as changed after");
        failed = 1;
        return -1;
    }
    return 0;
}

/*
 * One first-writes batch on DB: SNAP_WRITES UPDATE transactions with UPD,
 * then, if CKPT, a TRUNCATE checkpoint.  *PER gets microseconds per
 * transaction (the whole batch over SNAP_WRITES), *FIRST those of the first
 * transaction.  0 or -1 (reported).
 */
static int snap_batch(sqlite3 *db, sqlite3_stmt *upd, int ckpt, int64_t rows, double *per,
                      double *first)
{
    unsigned char buf[SNAP_PAYLOAD_MAX];
    double t0 = now_s();
    for (int k = 0; k < SNAP_WRITES; k++) {
        if (snap_update(db, upd, 0, rows, buf, NULL))
            return -1;
        if (k == 0)
            *first = (now_s() - t0) * 1e6;
    }
    if (ckpt && exec(db, "PRAGMA wal_checkpoint(TRUNCATE)"))
        return -1;
    *per = (now_s() - t0) * 1e6 / SNAP_WRITES;
    return 0;
}

/* The name of the I-th snapshot or branch snap_cow makes. */
static void snap_name(char *buf, size_t n, int i)
{
    snprintf(buf, n, "%s-%d", snap_prefix[i / SNAP_N], i % SNAP_N);
}

/* The cow side of one size: the database at PATH (built) on VFS.  Fills the
 * med, p90 and first-writes fields of RES.  0 or -1. */
static int snap_cow(const char *path, const char *vfs, struct snap_result *res)
{
    static const char *const modes[] = { "wal", "delete" };
    unsigned char buf[SNAP_PAYLOAD_MAX], kept[SNAP_PAYLOAD_MAX];
    double t[SC_DELETE * SNAP_N], td[SC_DELETE * SNAP_N];
    double wn[SNAP_BATCHES], wa[SNAP_BATCHES], w1n[SNAP_BATCHES], w1a[SNAP_BATCHES];
    char name[64];
    sqlite3 *db;
    sqlite3_stmt *upd = NULL;
    int64_t id = 0;
    int made = 0; /* snapshots and branches made, not deleted */
    int i;

    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    if (set_journal_mode(db, "wal") || exec(db, "PRAGMA synchronous=FULL"))
        goto out;
    upd = prepare(db, snap_update_sql);
    if (!upd)
        goto out;

    for (i = 0; i < SC_DELETE * SNAP_N; i++, made++) {
        int c = i / SNAP_N;
        snap_name(name, sizeof name, i);
        if (c != SC_IDLE && snap_update(db, upd, 0, res->rows, c == SC_SNAP ? kept : buf, &id))
            goto out;
        if (snap_call(db, c == SC_BRANCH ? cowvfs_branch : cowvfs_snapshot, snap_calls[c],
                      name, &t[i]))
            goto out;
        if (i == SNAP_N - 1) {
            /* the row the last snapshot must hold as it was, changed after it */
            if (snap_update(db, upd, id, res->rows, buf, NULL) ||
                snap_verify(path, name, res->rows, id, kept, buf))
                goto out;
        }
    }
    for (i = 0; i < SC_DELETE * SNAP_N; i++) {
        snap_name(name, sizeof name, i);
        if (snap_call(db, cowvfs_delete, "delete", name, &td[i]))
            goto out;
    }
    made = 0;
    for (int c = 0; c < SC_DELETE; c++) {
        res->med[c] = median(&t[c * SNAP_N], SNAP_N);
        res->p90[c] = percentile(&t[c * SNAP_N], SNAP_N, 90);
    }
    res->med[SC_DELETE] = median(td, SC_DELETE * SNAP_N);
    res->p90[SC_DELETE] = percentile(td, SC_DELETE * SNAP_N, 90);

    for (int m = 0; m < 2; m++) {
        if (set_journal_mode(db, modes[m]))
            goto out;
        for (int b = 0; b < SNAP_BATCHES; b++) {
            if (snap_batch(db, upd, m == 0, res->rows, &wn[b], &w1n[b]))
                goto out;
            snprintf(name, sizeof name, "writes-%s-%d", modes[m], b);
            if (snap_call(db, cowvfs_snapshot, "snapshot", name, NULL))
                goto out;
            if (snap_batch(db, upd, m == 0, res->rows, &wa[b], &w1a[b])) {
                (void)cowvfs_delete(db, "main", name, NULL);
                goto out;
            }
            if (snap_call(db, cowvfs_delete, "delete", name, NULL))
                goto out;
        }
        res->w_none[m] = median(wn, SNAP_BATCHES);
        res->w_after[m] = median(wa, SNAP_BATCHES);
        res->w1_none[m] = median(w1n, SNAP_BATCHES);
        res->w1_after[m] = median(w1a, SNAP_BATCHES);
    }
    sqlite3_finalize(upd);
    return db_close(db);
out:
    /* the container is removed anyway; the names are deleted for --keep */
    for (i = 0; i < made; i++) {
        snap_name(name, sizeof name, i);
        (void)cowvfs_delete(db, "main", name, NULL);
    }
    sqlite3_finalize(upd);
    sqlite3_close(db);
    return -1;
}

/* The ref side of one size: VACUUM INTO and backups of the database at PATH
 * on VFS into COPY (removed after each).  Fills vacuum_med, backup_med of
 * RES.  0 or -1 (reported). */
static int snap_copies(const char *path, const char *copy, const char *vfs,
                       struct snap_result *res)
{
    double tv[SNAP_COPIES], tb[SNAP_COPIES];
    sqlite3 *db, *dst = NULL;
    sqlite3_stmt *vac = NULL;

    db = db_open(path, vfs);
    if (!db)
        return -1;
    if (set_journal_mode(db, "wal") || exec(db, "PRAGMA synchronous=FULL"))
        goto out;
    vac = prepare(db, "VACUUM INTO ?1");
    if (!vac)
        goto out;
    for (int c = 0; c < SNAP_COPIES; c++) {
        sqlite3_backup *bk;
        double t0;
        int rc;

        db_remove(copy);
        sqlite3_bind_text(vac, 1, copy, -1, SQLITE_STATIC);
        t0 = now_s();
        rc = sqlite3_step(vac);
        tv[c] = now_s() - t0;
        sqlite3_reset(vac);
        if (rc != SQLITE_DONE) {
            report(db, "VACUUM INTO", rc);
            goto out;
        }
        db_remove(copy);

        t0 = now_s();
        dst = db_open(copy, vfs);
        if (!dst)
            goto out;
        bk = sqlite3_backup_init(dst, "main", db, "main");
        if (!bk) {
            report(dst, "sqlite3_backup_init", sqlite3_errcode(dst));
            goto out;
        }
        rc = sqlite3_backup_step(bk, -1);
        if (rc != SQLITE_DONE) {
            sqlite3_backup_finish(bk);
            report(dst, "sqlite3_backup_step", rc);
            goto out;
        }
        rc = sqlite3_backup_finish(bk);
        if (rc != SQLITE_OK) {
            report(dst, "sqlite3_backup_finish", rc);
            goto out;
        }
        rc = db_close(dst);
        dst = NULL;
        tb[c] = now_s() - t0;
        if (rc)
            goto out;
        db_remove(copy);
    }
    res->vacuum_med = median(tv, SNAP_COPIES);
    res->backup_med = median(tb, SNAP_COPIES);
    sqlite3_finalize(vac);
    return db_close(db);
out:
    sqlite3_close(dst);
    sqlite3_finalize(vac);
    sqlite3_close(db);
    db_remove(copy);
    return -1;
}

/*
 * The snapshot workload (see above) on both VFSs, one of which must be cow;
 * prints its tables.  Returns 0 or -1 (reported).
 */
int snapshot_table(const char *const vfs[2])
{
    struct snap_result res[SNAP_NSIZES];
    int cw = strcmp(vfs[1], COWVFS_NAME) == 0 ? 1 : 0; /* the cow side */
    int rf = !cw;                                         /* the other side */
    int first = -1;   /* the first size measured */
    int gib = -1;     /* the 1 GiB size, if measured */
    char h[8][64];
    char label[64], r1[32], r2[32], r3[32];

    if (strcmp(vfs[cw], COWVFS_NAME) != 0) {
        printf("snapshot: skipped: neither VFS is %s\n", COWVFS_NAME);
        return 0;
    }
    memset(res, 0, sizeof res);
    printf("snapshot: databases of %lld, %lld and %lld MiB (random blobs of %d..%d bytes,\n"
           "page_size %d), journal_mode=WAL, synchronous=FULL; on %s, %d snapshots and %d\n"
           "branches of the live database on an open connection, each after one UPDATE,\n"
           "and %d snapshots one after the other, then all deleted; on %s, VACUUM INTO\n"
           "and sqlite3_backup_step(-1) into a new file, %d of each\n\n",
           (long long)opt.sz.snap_mib[0], (long long)opt.sz.snap_mib[1],
           (long long)opt.sz.snap_mib[2], SNAP_PAYLOAD_MIN, SNAP_PAYLOAD_MAX, SNAP_PAGE,
           vfs[cw], SNAP_N, SNAP_N, SNAP_N, vfs[rf], SNAP_COPIES);
    fflush(stdout);

    for (int s = 0; s < SNAP_NSIZES && !failed; s++) {
        int64_t mib = opt.sz.snap_mib[s];
        int64_t size = mib * 1048576;
        int64_t avail = free_bytes(workdir);
        char path[2][4200], copy[4200], stem[32];
        double t0;

        if (avail >= 0 && avail < SNAP_ROOM * size) {
            printf("%lld MiB: skipped: needs %lld MiB free in %s, %lld MiB available\n",
                   (long long)mib, (long long)(SNAP_ROOM * mib), workdir,
                   (long long)(avail / 1048576));
            fflush(stdout);
            continue;
        }
        snprintf(stem, sizeof stem, "snap-%lld", (long long)mib);
        for (int w = 0; w < 2; w++) {
            db_path(path[w], sizeof path[w], stem, w);
            db_remove(path[w]);
        }
        snprintf(copy, sizeof copy, "%s/%s-copy.db", workdir, stem);
        res[s].rows = 0;
        t0 = now_s();
        if (snap_build(path[rf], vfs[rf], size, &res[s].rows))
            goto fail;
        res[s].build[0] = now_s() - t0;
        t0 = now_s();
        if (snap_build(path[cw], vfs[cw], size, &res[s].rows))
            goto fail;
        res[s].build[1] = now_s() - t0;
        res[s].bytes[0] = db_bytes(path[rf]);
        res[s].bytes[1] = db_bytes(path[cw]);
        printf("%lld MiB: %lld rows, built in %.2f s on %s and %.2f s on %s "
               "(one transaction, untimed below)\n",
               (long long)mib, (long long)res[s].rows, res[s].build[0], vfs[rf],
               res[s].build[1], vfs[cw]);
        fflush(stdout);
        if (snap_cow(path[cw], vfs[cw], &res[s]) || snap_copies(path[rf], copy, vfs[rf], &res[s]))
            goto fail;
        res[s].ran = 1;
        if (first < 0)
            first = s;
        if (mib == 1024)
            gib = s;
        if (!opt.keep)
            for (int w = 0; w < 2; w++)
                db_remove(path[w]);
        continue;
    fail:
        fprintf(stderr, "bench: snapshot failed at %lld MiB\n", (long long)mib);
        failed = 1;
    }
    if (first < 0)
        return failed ? -1 : 0;

    printf("\n%s: microseconds per call, median and p90; vs %lld MiB: the median over\n"
           "that of the same call at %lld MiB.  snapshot, branch: each after one UPDATE\n"
           "transaction; idle snapshot: nothing written since the last snapshot; delete:\n"
           "all of them\n\n",
           vfs[cw], (long long)opt.sz.snap_mib[first], (long long)opt.sz.snap_mib[first]);
    snprintf(h[0], sizeof h[0], "median us");
    snprintf(h[1], sizeof h[1], "p90 us");
    snprintf(h[2], sizeof h[2], "vs %lld MiB", (long long)opt.sz.snap_mib[first]);
    print_header("size, call", 22, h, 3);
    for (int s = 0; s < SNAP_NSIZES; s++) {
        if (!res[s].ran)
            continue;
        for (int c = 0; c < SNAP_CALLS; c++) {
            snprintf(label, sizeof label, "%lld MiB %s", (long long)opt.sz.snap_mib[s],
                     snap_calls[c]);
            fmt_ratio(r1, sizeof r1, res[s].med[c], res[first].med[c]);
            printf("%-22s | %*.1f | %*.1f | %*s\n", label, colw[0], res[s].med[c], colw[1],
                   res[s].p90[c], colw[2], r1);
        }
    }
    if (gib >= 0) {
        for (int c = SC_SNAP; c <= SC_IDLE; c += SC_IDLE - SC_SNAP) {
            double m = res[gib].med[c];
            printf("target, %s at 1 GiB (median under 1000 us and within 1.5x of "
                   "%lld MiB): %s\n",
                   snap_calls[c], (long long)opt.sz.snap_mib[first],
                   m < 1000 && m <= 1.5 * res[first].med[c] ? "met" : "missed");
        }
    }

    printf("\ncopies on %s: median seconds of VACUUM INTO and of a backup; each over "
           "the\n%s snapshot median (after an UPDATE); the database's files on disk\n\n",
           vfs[rf], vfs[cw]);
    snprintf(h[0], sizeof h[0], "vacuum s");
    snprintf(h[1], sizeof h[1], "backup s");
    snprintf(h[2], sizeof h[2], "vacuum/snap");
    snprintf(h[3], sizeof h[3], "backup/snap");
    snprintf(h[4], sizeof h[4], "%s MiB", vfs[rf]);
    snprintf(h[5], sizeof h[5], "%s MiB", vfs[cw]);
    print_header("size", 9, h, 6);
    for (int s = 0; s < SNAP_NSIZES; s++) {
        if (!res[s].ran)
            continue;
        snprintf(label, sizeof label, "%lld MiB", (long long)opt.sz.snap_mib[s]);
        fmt_ratio(r1, sizeof r1, res[s].vacuum_med * 1e6, res[s].med[SC_SNAP]);
        fmt_ratio(r2, sizeof r2, res[s].backup_med * 1e6, res[s].med[SC_SNAP]);
        printf("%-9s | %*.3f | %*.3f | %*s | %*s | %*.1f | %*.1f\n", label, colw[0],
               res[s].vacuum_med, colw[1], res[s].backup_med, colw[2], r1, colw[3], r2,
               colw[4], (double)res[s].bytes[0] / 1048576.0, colw[5],
               (double)res[s].bytes[1] / 1048576.0);
    }

    printf("\nfirst writes on %s: %d single-row UPDATE transactions with no snapshot\n"
           "(none) and right after a snapshot (after), median of %d batches: microseconds\n"
           "per transaction (in WAL mode with the TRUNCATE checkpoint that writes them to\n"
           "the database file), and of the batch's first transaction alone\n\n",
           vfs[cw], SNAP_WRITES, SNAP_BATCHES);
    snprintf(h[0], sizeof h[0], "none us/txn");
    snprintf(h[1], sizeof h[1], "after us/txn");
    snprintf(h[2], sizeof h[2], "after/none");
    snprintf(h[3], sizeof h[3], "none 1st us");
    snprintf(h[4], sizeof h[4], "after 1st us");
    print_header("size, mode", 15, h, 5);
    for (int s = 0; s < SNAP_NSIZES; s++) {
        if (!res[s].ran)
            continue;
        for (int m = 0; m < 2; m++) {
            snprintf(label, sizeof label, "%lld MiB %s", (long long)opt.sz.snap_mib[s],
                     m ? "delete" : "wal");
            fmt_ratio(r3, sizeof r3, res[s].w_after[m], res[s].w_none[m]);
            printf("%-15s | %*.1f | %*.1f | %*s | %*.1f | %*.1f\n", label, colw[0],
                   res[s].w_none[m], colw[1], res[s].w_after[m], colw[2], r3, colw[3],
                   res[s].w1_none[m], colw[4], res[s].w1_after[m]);
        }
    }
    fflush(stdout);
    return failed ? -1 : 0;
}
