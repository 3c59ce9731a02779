/*
 * bench.c - the same SQLite workloads on two VFSs in one run.
 *
 * By default VFS A is SQLite's "unix" and VFS B is "cow" (cowvfs_register()
 * is called first).  Each workload runs A then B, alternately, --repeat
 * times; the median of each is printed with the ratio B/A and the size on
 * disk of the database (all of its files: db, -wal, -journal, -shm).
 *
 *   bulk        1,000,000 rows inserted in one transaction
 *   txn-wal     10,000 autocommit inserts, journal_mode=WAL, synchronous=FULL
 *   txn-delete  the same with journal_mode=DELETE (rollback journal)
 *   reads       100,000 random point reads by primary key on bulk's table
 *               (fresh connection, default cache size)
 *   aggregate   one full-table scan: count(*), sum(length(payload)), avg(id)
 *   commits     2,000 single-row transactions, synchronous=FULL, in WAL mode
 *               and in DELETE mode: commits per second and device flushes
 *               per commit on each VFS, in a table of its own (see
 *               run_commits and the counting VFS)
 *   snapshot    per database size (1 MiB, 64 MiB and 1 GiB; --quick: 1, 8
 *               and 64 MiB), in tables of their own (see snapshot_table):
 *               on cow, the time of cowvfs_snapshot (right after a write,
 *               and with none since the last), cowvfs_branch and
 *               cowvfs_delete on an open connection (median and p90 of 21
 *               each) and the cost of the first writes after a snapshot
 *               (single-row UPDATE transactions after a fresh snapshot and
 *               with none, in WAL and in DELETE mode); on the other VFS, the
 *               copies one makes without snapshots, VACUUM INTO and the
 *               online backup API, of the same database (median of 3 each)
 *
 * Every run draws from a PRNG reset to the same seed, so both VFSs do the
 * same work; reads and aggregate compare a checksum of what they read and
 * fail if the two VFSs disagree.
 *
 * Databases live in a fresh directory (mkdtemp) under build/ when it exists,
 * else $TMPDIR, /var/tmp or ".", and are removed at the end (--keep keeps
 * them).  The operating system's page cache is not dropped between runs: the
 * read workloads measure a warm OS cache and a cold SQLite cache for both.
 *
 * --only and --skip select workloads by name; without --only all run.
 *
 * Exit status: 0, or 1 on an SQLite error or a result mismatch, 2 on usage.
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

/* ---- sizes ---- */

struct sizes {
    int64_t bulk_rows;  /* rows inserted by bulk (and read by reads/aggregate) */
    int64_t txns;       /* autocommit inserts of txn-wal and txn-delete */
    int64_t reads;      /* point reads of reads */
    int64_t commits;    /* single-row transactions of commits, per mode */
    int64_t snap_mib[3]; /* database sizes of snapshot, MiB */
};

static const struct sizes full_sizes = { 1000000, 10000, 100000, 2000, { 1, 64, 1024 } };
static const struct sizes quick_sizes = { 20000, 500, 5000, 200, { 1, 8, 64 } };

/* ---- options and state ---- */

struct opts {
    struct sizes sz;
    int repeat;
    const char *only;   /* comma-separated workload names, or NULL for all */
    const char *skip;   /* comma-separated workload names not to run, or NULL */
    const char *vfs_a;
    const char *vfs_b;
    const char *dir;    /* parent of the temporary directory, or NULL */
    int keep;
    int verbose;
};

static struct opts opt;
static char workdir[4096]; /* the mkdtemp directory */
static int failed;         /* an error or a mismatch was seen */
static int colw[8];        /* widths of the table's columns after the first */

/* ---- PRNG: splitmix64, fixed seed ---- */

#define BENCH_SEED 0x636f777666730001ULL

static uint64_t prng_state;

static void prng_reset(void)
{
    prng_state = BENCH_SEED;
}

static uint64_t prng_next(void)
{
    uint64_t z = (prng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform integer in [lo, hi]. */
static int64_t prng_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(prng_next() % (uint64_t)(hi - lo + 1));
}

/* Fills BUF with a random lowercase text of 50..100 bytes; returns the length. */
static int make_payload(char *buf)
{
    int n = (int)prng_range(50, 100);
    for (int i = 0; i < n; i++)
        buf[i] = (char)('a' + prng_next() % 26);
    buf[n] = 0;
    return n;
}

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(sqlite3 *db, const char *what, int rc)
{
    fprintf(stderr, "bench: %s: %s (%d)\n", what,
            db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
    failed = 1;
}

/* Opens PATH on VFS, creating it; returns NULL (reported) on failure. */
static sqlite3 *db_open(const char *path, const char *vfs)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    if (rc != SQLITE_OK) {
        char what[4200];
        snprintf(what, sizeof what, "open %s (vfs %s)", path, vfs);
        report(db, what, rc);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int db_close(sqlite3 *db)
{
    int rc = sqlite3_close(db);
    if (rc != SQLITE_OK) {
        report(db, "close", rc);
        return -1;
    }
    return 0;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "bench: %s: %s (%d)\n", sql, err ? err : "?", rc);
        sqlite3_free(err);
        failed = 1;
        return -1;
    }
    return 0;
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        report(db, sql, rc);
        return NULL;
    }
    return st;
}

/* Checks that PRAGMA journal_mode took: a VFS may refuse WAL. */
static int set_journal_mode(sqlite3 *db, const char *mode)
{
    char sql[64];
    sqlite3_stmt *st;
    int ok = 0;

    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    st = prepare(db, sql);
    if (!st)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *got = (const char *)sqlite3_column_text(st, 0);
        ok = got && strcasecmp(got, mode) == 0;
        if (!ok)
            fprintf(stderr, "bench: journal_mode=%s gave %s\n", mode,
                    got ? got : "(null)");
    } else {
        report(db, sql, sqlite3_errcode(db));
    }
    sqlite3_finalize(st);
    if (!ok)
        failed = 1;
    return ok ? 0 : -1;
}

/* The database path of workload file STEM on VFS number WHICH (0 = A, 1 = B). */
static void db_path(char *buf, size_t n, const char *stem, int which)
{
    snprintf(buf, n, "%s/%s-%c.db", workdir, stem, which ? 'b' : 'a');
}

/* Sum of st_size of PATH and its -wal, -journal, -shm companions. */
static int64_t db_bytes(const char *path)
{
    static const char *const sfx[] = { "", "-wal", "-journal", "-shm" };
    int64_t total = 0;
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        char p[4200];
        struct stat sb;
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        if (stat(p, &sb) == 0)
            total += (int64_t)sb.st_size;
    }
    return total;
}

static void db_remove(const char *path)
{
    static const char *const sfx[] = { "", "-wal", "-journal", "-shm" };
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        if (unlink(p) != 0 && errno != ENOENT)
            fprintf(stderr, "bench: unlink %s: %s\n", p, strerror(errno));
    }
}

/* ---- workloads ----
 *
 * Each returns the elapsed seconds (open to close included), or -1 on error.
 * *check receives a value that must be the same for both VFSs (0 when the
 * workload has nothing to compare).
 */

static const char create_sql[] =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, payload TEXT NOT NULL)";

static double run_bulk(const char *path, const char *vfs, uint64_t *check)
{
    char buf[128];
    sqlite3 *db;
    sqlite3_stmt *ins = NULL;
    double t0 = now_s(), t = -1;

    *check = 0;
    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    if (exec(db, create_sql) || exec(db, "BEGIN"))
        goto out;
    ins = prepare(db, "INSERT INTO t(id, payload) VALUES(?1, ?2)");
    if (!ins)
        goto out;
    for (int64_t i = 1; i <= opt.sz.bulk_rows; i++) {
        int n = make_payload(buf);
        sqlite3_bind_int64(ins, 1, i);
        sqlite3_bind_text(ins, 2, buf, n, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            report(db, "bulk insert", sqlite3_errcode(db));
            goto out;
        }
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    ins = NULL;
    if (exec(db, "COMMIT"))
        goto out;
    if (db_close(db) == 0)
        t = now_s() - t0;
    return t;
out:
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return -1;
}

static double run_txn(const char *path, const char *vfs, const char *mode,
                      uint64_t *check)
{
    char buf[128];
    sqlite3 *db;
    sqlite3_stmt *ins = NULL;
    double t0 = now_s(), t = -1;

    *check = 0;
    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    if (set_journal_mode(db, mode) || exec(db, "PRAGMA synchronous=FULL") ||
        exec(db, create_sql))
        goto out;
    ins = prepare(db, "INSERT INTO t(id, payload) VALUES(?1, ?2)");
    if (!ins)
        goto out;
    for (int64_t i = 1; i <= opt.sz.txns; i++) {
        int n = make_payload(buf);
        sqlite3_bind_int64(ins, 1, i);
        sqlite3_bind_text(ins, 2, buf, n, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            report(db, "autocommit insert", sqlite3_errcode(db));
            goto out;
        }
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    ins = NULL;
    if (db_close(db) == 0)
        t = now_s() - t0;
    return t;
out:
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return -1;
}

static double run_txn_wal(const char *path, const char *vfs, uint64_t *check)
{
    return run_txn(path, vfs, "wal", check);
}

static double run_txn_delete(const char *path, const char *vfs, uint64_t *check)
{
    return run_txn(path, vfs, "delete", check);
}

static double run_reads(const char *path, const char *vfs, uint64_t *check)
{
    sqlite3 *db;
    sqlite3_stmt *sel = NULL;
    uint64_t sum = 0;
    double t0 = now_s(), t = -1;

    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    sel = prepare(db, "SELECT payload FROM t WHERE id = ?1");
    if (!sel)
        goto out;
    for (int64_t i = 0; i < opt.sz.reads; i++) {
        int64_t id = prng_range(1, opt.sz.bulk_rows);
        sqlite3_bind_int64(sel, 1, id);
        if (sqlite3_step(sel) != SQLITE_ROW) {
            fprintf(stderr, "bench: reads: row %lld missing\n", (long long)id);
            failed = 1;
            goto out;
        }
        const unsigned char *p = sqlite3_column_text(sel, 0);
        int n = sqlite3_column_bytes(sel, 0);
        sum = sum * 31 + (uint64_t)n + (p && n ? p[n - 1] : 0);
        if (sqlite3_step(sel) != SQLITE_DONE) {
            report(db, "reads", sqlite3_errcode(db));
            goto out;
        }
        sqlite3_reset(sel);
    }
    sqlite3_finalize(sel);
    sel = NULL;
    if (db_close(db) == 0)
        t = now_s() - t0;
    *check = sum;
    return t;
out:
    sqlite3_finalize(sel);
    sqlite3_close(db);
    return -1;
}

static double run_aggregate(const char *path, const char *vfs, uint64_t *check)
{
    sqlite3 *db;
    sqlite3_stmt *sel = NULL;
    double t0 = now_s(), t = -1;

    db = db_open(path, vfs);
    if (!db)
        return -1;
    sel = prepare(db, "SELECT count(*), sum(length(payload)), avg(id), "
                      "max(payload) FROM t");
    if (!sel)
        goto out;
    if (sqlite3_step(sel) != SQLITE_ROW) {
        report(db, "aggregate", sqlite3_errcode(db));
        goto out;
    }
    int64_t count = sqlite3_column_int64(sel, 0);
    int64_t bytes = sqlite3_column_int64(sel, 1);
    if (count != opt.sz.bulk_rows) {
        fprintf(stderr, "bench: aggregate: count %lld, expected %lld\n",
                (long long)count, (long long)opt.sz.bulk_rows);
        failed = 1;
        goto out;
    }
    *check = (uint64_t)count * 1000003u + (uint64_t)bytes;
    if (opt.verbose)
        printf("  aggregate on %s: count=%lld bytes=%lld avg(id)=%.1f\n", vfs,
               (long long)count, (long long)bytes, sqlite3_column_double(sel, 2));
    sqlite3_finalize(sel);
    sel = NULL;
    if (db_close(db) == 0)
        t = now_s() - t0;
    return t;
out:
    sqlite3_finalize(sel);
    sqlite3_close(db);
    return -1;
}

/* ---- the counting VFS ----
 *
 * For the commits workload, a VFS that is not cow runs through "NAME-count"
 * (e.g. "unix-count"): a thin wrapper that forwards every sqlite3_vfs
 * method to NAME and wraps its files' io methods, forwarding each of them
 * too, so that the xSync calls SQLite makes can be counted.  On unix one
 * xSync is one fdatasync (fsync where SQLite is built without fdatasync;
 * F_FULLFSYNC on macOS with PRAGMA fullfsync), a device flush.  unixSync
 * also fsyncs the directory once, at the first xSync of a journal,
 * super-journal or WAL it created (os_unix.c, UNIXFILE_DIRSYNC): in DELETE
 * mode that is once per transaction, so the wrapper counts it too, as
 * unixOpen decides it (SQLITE_OPEN_CREATE and one of those types), when it
 * wraps a unix VFS.  For cow the flushes are the store's own count of its
 * device flushes (PRAGMA cow_stats, flushes=N), whatever SQLite asked.
 */

struct countvfs {
    sqlite3_vfs base;      /* "NAME-count"; pAppData points here */
    sqlite3_vfs *real;     /* NAME */
    int dirsync;           /* NAME is unix: count its directory syncs */
    uint64_t syncs;        /* xSync calls */
    uint64_t dirsyncs;     /* directory fsyncs unixSync added to them */
    char name[80];
};

struct countfile {
    sqlite3_file base;
    struct countvfs *cv;
    int dirsync;           /* the next xSync also fsyncs the directory */
    sqlite3_file *real;    /* NAME's file, allocated right after this */
};

static struct countvfs countvfs[2]; /* one per side of the bench */

#define REAL(f) (((struct countfile *)(f))->real)
#define RM(f) (REAL(f)->pMethods)

static int cf_close(sqlite3_file *f)
{
    int rc = RM(f)->xClose(REAL(f));
    f->pMethods = NULL;
    return rc;
}

static int cf_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return RM(f)->xRead(REAL(f), buf, n, off);
}

static int cf_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    return RM(f)->xWrite(REAL(f), buf, n, off);
}

static int cf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return RM(f)->xTruncate(REAL(f), size);
}

static int cf_sync(sqlite3_file *f, int flags)
{
    struct countfile *p = (struct countfile *)f;
    p->cv->syncs++;
    if (p->dirsync) {
        p->cv->dirsyncs++;
        p->dirsync = 0;
    }
    return RM(f)->xSync(REAL(f), flags);
}

static int cf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return RM(f)->xFileSize(REAL(f), size);
}

static int cf_lock(sqlite3_file *f, int lock)
{
    return RM(f)->xLock(REAL(f), lock);
}

static int cf_unlock(sqlite3_file *f, int lock)
{
    return RM(f)->xUnlock(REAL(f), lock);
}

static int cf_check_reserved(sqlite3_file *f, int *res)
{
    return RM(f)->xCheckReservedLock(REAL(f), res);
}

static int cf_file_control(sqlite3_file *f, int op, void *arg)
{
    return RM(f)->xFileControl(REAL(f), op, arg);
}

static int cf_sector_size(sqlite3_file *f)
{
    return RM(f)->xSectorSize(REAL(f));
}

static int cf_device_characteristics(sqlite3_file *f)
{
    return RM(f)->xDeviceCharacteristics(REAL(f));
}

static int cf_shm_map(sqlite3_file *f, int i, int sz, int extend, void volatile **pp)
{
    return RM(f)->xShmMap(REAL(f), i, sz, extend, pp);
}

static int cf_shm_lock(sqlite3_file *f, int ofst, int n, int flags)
{
    return RM(f)->xShmLock(REAL(f), ofst, n, flags);
}

static void cf_shm_barrier(sqlite3_file *f)
{
    RM(f)->xShmBarrier(REAL(f));
}

static int cf_shm_unmap(sqlite3_file *f, int del)
{
    return RM(f)->xShmUnmap(REAL(f), del);
}

static int cf_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return RM(f)->xFetch(REAL(f), off, n, pp);
}

static int cf_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return RM(f)->xUnfetch(REAL(f), off, p);
}

/* The same methods as iVersion 1, 2 and 3: a file gets the version of the
 * real file's methods, so that SQLite never calls one the real file lacks. */
#define COUNT_IO(v)                                                        \
    { v, cf_close, cf_read, cf_write, cf_truncate, cf_sync, cf_file_size,  \
      cf_lock, cf_unlock, cf_check_reserved, cf_file_control,              \
      cf_sector_size, cf_device_characteristics, cf_shm_map, cf_shm_lock,  \
      cf_shm_barrier, cf_shm_unmap, cf_fetch, cf_unfetch }
static const sqlite3_io_methods count_io[3] = { COUNT_IO(1), COUNT_IO(2), COUNT_IO(3) };

#define CV(v) ((struct countvfs *)(v)->pAppData)
#define RV(v) (CV(v)->real)

static int cv_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags,
                   int *out_flags)
{
    struct countfile *p = (struct countfile *)f;
    int type = flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL |
                        SQLITE_OPEN_WAL);
    int rc;

    memset(p, 0, sizeof *p);
    p->cv = CV(v);
    p->real = (sqlite3_file *)&p[1];
    p->dirsync = p->cv->dirsync && (flags & SQLITE_OPEN_CREATE) && type != 0;
    rc = RV(v)->xOpen(RV(v), name, p->real, flags, out_flags);
    if (p->real->pMethods == NULL) {
        f->pMethods = NULL;
        return rc;
    }
    if (rc != SQLITE_OK) {
        p->real->pMethods->xClose(p->real);
        f->pMethods = NULL;
        return rc;
    }
    int ver = p->real->pMethods->iVersion;
    f->pMethods = &count_io[(ver < 1 ? 1 : ver > 3 ? 3 : ver) - 1];
    return rc;
}

static int cv_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    return RV(v)->xDelete(RV(v), name, sync_dir);
}

static int cv_access(sqlite3_vfs *v, const char *name, int flags, int *res)
{
    return RV(v)->xAccess(RV(v), name, flags, res);
}

static int cv_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return RV(v)->xFullPathname(RV(v), name, n, out);
}

static void *cv_dl_open(sqlite3_vfs *v, const char *path)
{
    return RV(v)->xDlOpen(RV(v), path);
}

static void cv_dl_error(sqlite3_vfs *v, int n, char *msg)
{
    RV(v)->xDlError(RV(v), n, msg);
}

static void (*cv_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return RV(v)->xDlSym(RV(v), h, sym);
}

static void cv_dl_close(sqlite3_vfs *v, void *h)
{
    RV(v)->xDlClose(RV(v), h);
}

static int cv_randomness(sqlite3_vfs *v, int n, char *out)
{
    return RV(v)->xRandomness(RV(v), n, out);
}

static int cv_sleep(sqlite3_vfs *v, int us)
{
    return RV(v)->xSleep(RV(v), us);
}

static int cv_current_time(sqlite3_vfs *v, double *t)
{
    return RV(v)->xCurrentTime(RV(v), t);
}

static int cv_get_last_error(sqlite3_vfs *v, int n, char *buf)
{
    return RV(v)->xGetLastError ? RV(v)->xGetLastError(RV(v), n, buf) : 0;
}

static int cv_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *t)
{
    return RV(v)->xCurrentTimeInt64(RV(v), t);
}

static int cv_set_system_call(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr fn)
{
    return RV(v)->xSetSystemCall(RV(v), name, fn);
}

static sqlite3_syscall_ptr cv_get_system_call(sqlite3_vfs *v, const char *name)
{
    return RV(v)->xGetSystemCall(RV(v), name);
}

static const char *cv_next_system_call(sqlite3_vfs *v, const char *name)
{
    return RV(v)->xNextSystemCall(RV(v), name);
}

/*
 * Registers "REAL-count" in countvfs[WHICH] (once); returns its name, or
 * NULL if REAL is not registered.  The wrapper has REAL's iVersion (at most
 * 3), so SQLite calls only the methods REAL has.
 */
static const char *countvfs_register(int which, const char *real_name)
{
    struct countvfs *cv = &countvfs[which];
    sqlite3_vfs *real;

    if (cv->real)
        return cv->name;
    real = sqlite3_vfs_find(real_name);
    if (!real)
        return NULL;
    snprintf(cv->name, sizeof cv->name, "%s-count", real_name);
    cv->real = real;
    cv->dirsync = strncmp(real_name, "unix", 4) == 0;
    cv->base.iVersion = real->iVersion < 3 ? real->iVersion : 3;
    cv->base.szOsFile = (int)sizeof(struct countfile) + real->szOsFile;
    cv->base.mxPathname = real->mxPathname;
    cv->base.zName = cv->name;
    cv->base.pAppData = cv;
    cv->base.xOpen = cv_open;
    cv->base.xDelete = cv_delete;
    cv->base.xAccess = cv_access;
    cv->base.xFullPathname = cv_full_pathname;
    cv->base.xDlOpen = cv_dl_open;
    cv->base.xDlError = cv_dl_error;
    cv->base.xDlSym = cv_dl_sym;
    cv->base.xDlClose = cv_dl_close;
    cv->base.xRandomness = cv_randomness;
    cv->base.xSleep = cv_sleep;
    cv->base.xCurrentTime = cv_current_time;
    cv->base.xGetLastError = cv_get_last_error;
    cv->base.xCurrentTimeInt64 = cv_current_time_int64;
    cv->base.xSetSystemCall = cv_set_system_call;
    cv->base.xGetSystemCall = cv_get_system_call;
    cv->base.xNextSystemCall = cv_next_system_call;
    if (sqlite3_vfs_register(&cv->base, 0) != SQLITE_OK) {
        cv->real = NULL;
        return NULL;
    }
    return cv->name;
}

/* ---- commits ---- */

/* Sets *flushes to the cow store's device flushes so far (PRAGMA cow_stats)
 * or, on a counting VFS, to the flushes it counted; 0 or -1 (reported). */
static int get_flushes(sqlite3 *db, int which, int cow, uint64_t *flushes)
{
    sqlite3_stmt *st;
    const char *txt = NULL;
    const char *f;
    int rc = -1;

    if (!cow) {
        *flushes = countvfs[which].syncs + countvfs[which].dirsyncs;
        return 0;
    }
    st = prepare(db, "PRAGMA cow_stats");
    if (!st)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        txt = (const char *)sqlite3_column_text(st, 0);
    f = txt ? strstr(txt, "flushes=") : NULL;
    if (f && (f == txt || f[-1] == ' ')) {
        *flushes = strtoull(f + 8, NULL, 10);
        rc = 0;
    } else {
        fprintf(stderr, "bench: PRAGMA cow_stats gave %s\n", txt ? txt : "no row");
        failed = 1;
    }
    sqlite3_finalize(st);
    return rc;
}

/*
 * opt.sz.commits autocommit single-row inserts in journal mode MODE with
 * synchronous=FULL on VFS (side WHICH of the bench; COW: VFS is cow, whose
 * flushes PRAGMA cow_stats counts, else VFS is a counting VFS).  Only the
 * inserts are timed: *cps gets the commits per second, *fpc the flushes
 * per commit, *check the rows in the table.  Returns 0, or -1 (reported).
 */
static int run_commits(const char *path, const char *vfs, int which, int cow,
                       const char *mode, double *cps, double *fpc, uint64_t *check)
{
    char buf[128];
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    uint64_t f0, f1;
    double t0, t;

    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    if (set_journal_mode(db, mode) || exec(db, "PRAGMA synchronous=FULL") ||
        exec(db, create_sql))
        goto out;
    st = prepare(db, "INSERT INTO t(id, payload) VALUES(?1, ?2)");
    if (!st || get_flushes(db, which, cow, &f0))
        goto out;
    t0 = now_s();
    for (int64_t i = 1; i <= opt.sz.commits; i++) {
        int n = make_payload(buf);
        sqlite3_bind_int64(st, 1, i);
        sqlite3_bind_text(st, 2, buf, n, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            report(db, "commits insert", sqlite3_errcode(db));
            goto out;
        }
        sqlite3_reset(st);
    }
    t = now_s() - t0;
    if (get_flushes(db, which, cow, &f1))
        goto out;
    sqlite3_finalize(st);
    st = prepare(db, "SELECT count(*) FROM t");
    if (!st || sqlite3_step(st) != SQLITE_ROW) {
        report(db, "commits count", sqlite3_errcode(db));
        goto out;
    }
    *check = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    *cps = t > 0 ? (double)opt.sz.commits / t : 0;
    *fpc = (double)(f1 - f0) / (double)opt.sz.commits;
    if (opt.verbose)
        printf("  commits %s on %s: %lld in %.3f s, %llu flushes\n", mode, vfs,
               (long long)opt.sz.commits, t, (unsigned long long)(f1 - f0));
    return db_close(db);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return -1;
}

struct workload {
    const char *name;
    const char *stem;   /* database file stem: reads/aggregate use bulk's */
    int creates;        /* removes the database before each run */
    double (*run)(const char *path, const char *vfs, uint64_t *check);
};

static const struct workload workloads[] = {
    { "bulk",       "bulk",   1, run_bulk },
    { "txn-wal",    "wal",    1, run_txn_wal },
    { "txn-delete", "delete", 1, run_txn_delete },
    { "reads",      "bulk",   0, run_reads },
    { "aggregate",  "bulk",   0, run_aggregate },
};
#define NWORKLOADS ((int)(sizeof workloads / sizeof workloads[0]))
/* The workloads with tables of their own (commits_table, snapshot_table),
 * run after the others, in this order. */
#define COMMITS "commits"
#define SNAPSHOT "snapshot"

/* Whether NAME is in the comma-separated LIST. */
static int in_list(const char *list, const char *name)
{
    const char *p = list;
    size_t n = strlen(name);
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int selected(const char *name)
{
    if (opt.skip && in_list(opt.skip, name))
        return 0;
    return !opt.only || in_list(opt.only, name);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Makes sure bulk's database exists on both VFSs (untimed) for reads/aggregate. */
static int ensure_bulk(int *have_bulk)
{
    for (int w = 0; w < 2; w++) {
        char path[4200];
        uint64_t check;
        if (have_bulk[w])
            continue;
        db_path(path, sizeof path, "bulk", w);
        db_remove(path);
        if (opt.verbose)
            printf("  preparing %s on %s (untimed)\n", path,
                   w ? opt.vfs_b : opt.vfs_a);
        if (run_bulk(path, w ? opt.vfs_b : opt.vfs_a, &check) < 0)
            return -1;
        have_bulk[w] = 1;
    }
    return 0;
}

/* Prints a table's header: the first column FIRST (width W), then the N
 * (at most 8) headings H, each at least 9 wide; their widths go to colw. */
static void print_header(const char *first, int w, char h[][64], int n)
{
    printf("%-*s", w, first);
    for (int c = 0; c < n; c++) {
        size_t len = strlen(h[c]);
        colw[c] = len > 9 ? (int)len : 9;
        printf(" | %*s", colw[c], h[c]);
    }
    printf("\n");
    for (int k = 0; k <= w; k++)
        putchar('-');
    for (int c = 0; c < n; c++) {
        printf("+");
        for (int k = 0; k < colw[c] + 2; k++)
            putchar('-');
    }
    printf("\n");
    fflush(stdout);
}

static void print_row(const char *name, double ta, double tb, int64_t ba,
                      int64_t bb)
{
    char ratio[32];
    if (ta > 0 && tb >= 0)
        snprintf(ratio, sizeof ratio, "%.2f", tb / ta);
    else
        snprintf(ratio, sizeof ratio, "-");
    printf("%-11s | %*.3f | %*.3f | %*s | %*.1f | %*.1f\n", name, colw[0], ta,
           colw[1], tb, colw[2], ratio, colw[3], (double)ba / 1048576.0,
           colw[4], (double)bb / 1048576.0);
    fflush(stdout);
}

/*
 * The commits workload, on both VFSs, alternately, --repeat times per
 * journal mode; prints its own table: medians of commits per second and of
 * flushes per commit, and the ratio of commits per second B/A (above 1: B
 * commits faster).  A VFS that is not cow runs through its counting VFS.
 * Returns 0 or -1 (reported).
 */
static int commits_table(const char *const vfs[2])
{
    static const char *const modes[] = { "wal", "delete" };
    const char *run_vfs[2];
    int cow[2];
    double *cps[2], *fpc[2];
    char h[5][64];
    int rc = -1;

    for (int w = 0; w < 2; w++) {
        cow[w] = strcmp(vfs[w], COWVFS_NAME) == 0;
        run_vfs[w] = cow[w] ? vfs[w] : countvfs_register(w, vfs[w]);
        if (!run_vfs[w]) {
            fprintf(stderr, "bench: cannot register a counting VFS over %s\n", vfs[w]);
            failed = 1;
            return -1;
        }
    }
    cps[0] = calloc((size_t)opt.repeat, sizeof(double));
    cps[1] = calloc((size_t)opt.repeat, sizeof(double));
    fpc[0] = calloc((size_t)opt.repeat, sizeof(double));
    fpc[1] = calloc((size_t)opt.repeat, sizeof(double));
    if (!cps[0] || !cps[1] || !fpc[0] || !fpc[1]) {
        fprintf(stderr, "bench: out of memory\n");
        failed = 1;
        goto out;
    }

    printf("commits: %lld single-row transactions per journal mode, "
           "synchronous=FULL\n"
           "c/s: median commits per second (the inserts only); fl/c: device "
           "flushes per commit\n"
           "(%s: fdatasync/fsync calls, counted by VFS %s; %s: the store's "
           "flushes, PRAGMA cow_stats)\n\n",
           (long long)opt.sz.commits, vfs[0], run_vfs[0], vfs[1]);
    snprintf(h[0], sizeof h[0], "%s c/s", vfs[0]);
    snprintf(h[1], sizeof h[1], "%s c/s", vfs[1]);
    snprintf(h[2], sizeof h[2], "%s/%s", vfs[1], vfs[0]);
    snprintf(h[3], sizeof h[3], "%s fl/c", vfs[0]);
    snprintf(h[4], sizeof h[4], "%s fl/c", vfs[1]);
    print_header("commits", 14, h, 5);

    for (int m = 0; m < 2; m++) {
        char name[32];
        char ratio[32];
        double c[2], f[2];
        for (int r = 0; r < opt.repeat; r++) {
            uint64_t check[2] = { 0, 0 };
            for (int w = 0; w < 2; w++) {
                char path[4200];
                char stem[32];
                snprintf(stem, sizeof stem, "commits-%s", modes[m]);
                db_path(path, sizeof path, stem, w);
                db_remove(path);
                if (run_commits(path, run_vfs[w], w, cow[w], modes[m], &cps[w][r],
                                &fpc[w][r], &check[w]) != 0) {
                    fprintf(stderr, "bench: commits (%s) failed on vfs %s\n",
                            modes[m], run_vfs[w]);
                    failed = 1;
                    goto out;
                }
            }
            if (check[0] != check[1]) {
                fprintf(stderr, "bench: commits (%s): results differ between %s "
                        "and %s\n", modes[m], vfs[0], vfs[1]);
                failed = 1;
                goto out;
            }
        }
        for (int w = 0; w < 2; w++) {
            c[w] = median(cps[w], opt.repeat);
            f[w] = median(fpc[w], opt.repeat);
        }
        snprintf(name, sizeof name, "commits-%s", modes[m]);
        if (c[0] > 0)
            snprintf(ratio, sizeof ratio, "%.2f", c[1] / c[0]);
        else
            snprintf(ratio, sizeof ratio, "-");
        printf("%-14s | %*.0f | %*.0f | %*s | %*.2f | %*.2f\n", name, colw[0], c[0],
               colw[1], c[1], colw[2], ratio, colw[3], f[0], colw[4], f[1]);
        fflush(stdout);
    }
    rc = 0;
out:
    for (int w = 0; w < 2; w++) {
        free(cps[w]);
        free(fpc[w]);
    }
    return rc;
}

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
static int snapshot_table(const char *const vfs[2])
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

/* ---- temporary directory ---- */

static int make_workdir(void)
{
    const char *parent = opt.dir;
    struct stat sb;

    if (!parent) {
        const char *tmp = getenv("TMPDIR");
        if (stat("build", &sb) == 0 && S_ISDIR(sb.st_mode))
            parent = "build";
        else if (tmp && *tmp)
            parent = tmp;
        else if (stat("/var/tmp", &sb) == 0)
            parent = "/var/tmp";
        else
            parent = ".";
    }
    snprintf(workdir, sizeof workdir, "%s/bench-tmp.XXXXXX", parent);
    if (!mkdtemp(workdir)) {
        fprintf(stderr, "bench: mkdtemp %s: %s\n", workdir, strerror(errno));
        return -1;
    }
    return 0;
}

static void remove_workdir(void)
{
    DIR *d = opendir(workdir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char p[4400];
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", workdir, de->d_name);
        unlink(p);
    }
    closedir(d);
    if (rmdir(workdir) != 0)
        fprintf(stderr, "bench: rmdir %s: %s\n", workdir, strerror(errno));
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bench [--quick] [--repeat N] [--only NAME[,NAME...]]\n"
        "             [--skip NAME[,NAME...]] [--vfs-a NAME] [--vfs-b NAME]\n"
        "             [--dir DIR] [--keep] [-v]\n"
        "  --quick      small sizes for a smoke test (%lld rows, %lld txns, %lld reads,\n"
        "               %lld commits, snapshot databases of %lld, %lld and %lld MiB)\n"
        "  --repeat N   run each workload N times per VFS, alternately; print medians\n"
        "               (snapshot has fixed counts of its own)\n"
        "  --only LIST  workloads: bulk, txn-wal, txn-delete, reads, aggregate,\n"
        "               commits, snapshot\n"
        "  --skip LIST  workloads not to run (e.g. --skip snapshot)\n"
        "  --vfs-a NAME the reference VFS (default unix)\n"
        "  --vfs-b NAME the VFS measured against it (default cow)\n"
        "  --dir DIR    make the temporary directory in DIR (default build/,\n"
        "               else $TMPDIR, /var/tmp, .)\n"
        "  --keep       keep the databases\n",
        (long long)quick_sizes.bulk_rows, (long long)quick_sizes.txns,
        (long long)quick_sizes.reads, (long long)quick_sizes.commits,
        (long long)quick_sizes.snap_mib[0], (long long)quick_sizes.snap_mib[1],
        (long long)quick_sizes.snap_mib[2]);
}

static int parse_args(int argc, char **argv)
{
    opt.sz = full_sizes;
    opt.repeat = 1;
    opt.vfs_a = "unix";
    opt.vfs_b = COWVFS_NAME;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            opt.sz = quick_sizes;
        } else if (strcmp(a, "--keep") == 0) {
            opt.keep = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            opt.verbose = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (val && strcmp(a, "--repeat") == 0) {
            char *end;
            long n = strtol(val, &end, 10);
            if (*end || n < 1 || n > 1000) {
                fprintf(stderr, "bench: bad --repeat %s\n", val);
                return -1;
            }
            opt.repeat = (int)n;
            i++;
        } else if (val && strcmp(a, "--only") == 0) {
            opt.only = val;
            i++;
        } else if (val && strcmp(a, "--skip") == 0) {
            opt.skip = val;
            i++;
        } else if (val && strcmp(a, "--vfs-a") == 0) {
            opt.vfs_a = val;
            i++;
        } else if (val && strcmp(a, "--vfs-b") == 0) {
            opt.vfs_b = val;
            i++;
        } else if (val && strcmp(a, "--dir") == 0) {
            opt.dir = val;
            i++;
        } else {
            fprintf(stderr, "bench: bad argument %s\n", a);
            return -1;
        }
    }
    for (int l = 0; l < 2; l++) {
        /* Every name in --only and --skip must be a workload. */
        const char *p = l ? opt.skip : opt.only;
        while (p && *p) {
            size_t len = strcspn(p, ",");
            int found = (len == strlen(COMMITS) && strncmp(p, COMMITS, len) == 0) ||
                        (len == strlen(SNAPSHOT) && strncmp(p, SNAPSHOT, len) == 0);
            for (int w = 0; w < NWORKLOADS; w++)
                if (strlen(workloads[w].name) == len &&
                    strncmp(p, workloads[w].name, len) == 0)
                    found = 1;
            if (!found) {
                fprintf(stderr, "bench: unknown workload %.*s\n", (int)len, p);
                return -1;
            }
            p += len;
            if (*p == ',')
                p++;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *vfs[2];
    int have_bulk[2] = { 0, 0 };
    double *times[2];
    int timed = 0; /* workloads of the times table selected */

    if (parse_args(argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    vfs[0] = opt.vfs_a;
    vfs[1] = opt.vfs_b;

    int rc = cowvfs_register(0);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "bench: cowvfs_register: %s\n", sqlite3_errstr(rc));
        return 1;
    }
    for (int w = 0; w < 2; w++) {
        if (!sqlite3_vfs_find(vfs[w])) {
            fprintf(stderr, "bench: no VFS named \"%s\" is registered\n", vfs[w]);
            return 1;
        }
    }
    if (make_workdir() != 0)
        return 1;

    printf("cowvfs bench: SQLite %s, cowvfs %s, %lld rows, %lld txns, "
           "%lld reads, %lld commits, repeat %d\n",
           sqlite3_libversion(), COWVFS_VERSION, (long long)opt.sz.bulk_rows,
           (long long)opt.sz.txns, (long long)opt.sz.reads,
           (long long)opt.sz.commits, opt.repeat);
    printf("databases in %s\n", workdir);
    for (int wi = 0; wi < NWORKLOADS; wi++)
        timed += selected(workloads[wi].name);
    if (!timed)
        printf("\n");
    if (timed) {
        char h[5][64];
        printf("times: median seconds, open to close; sizes: the database's "
               "files on disk after the run\n\n");
        snprintf(h[0], sizeof h[0], "%s s", vfs[0]);
        snprintf(h[1], sizeof h[1], "%s s", vfs[1]);
        snprintf(h[2], sizeof h[2], "%s/%s", vfs[1], vfs[0]);
        snprintf(h[3], sizeof h[3], "%s MiB", vfs[0]);
        snprintf(h[4], sizeof h[4], "%s MiB", vfs[1]);
        print_header("workload", 11, h, 5);
    }

    times[0] = calloc((size_t)opt.repeat, sizeof(double));
    times[1] = calloc((size_t)opt.repeat, sizeof(double));
    if (!times[0] || !times[1]) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }

    for (int wi = 0; wi < NWORKLOADS && !failed; wi++) {
        const struct workload *wl = &workloads[wi];
        int64_t bytes[2] = { 0, 0 };

        if (!selected(wl->name))
            continue;
        if (!wl->creates && ensure_bulk(have_bulk) != 0)
            break;
        for (int r = 0; r < opt.repeat && !failed; r++) {
            uint64_t check[2] = { 0, 0 };
            for (int w = 0; w < 2 && !failed; w++) {
                char path[4200];
                db_path(path, sizeof path, wl->stem, w);
                if (wl->creates)
                    db_remove(path);
                double t = wl->run(path, vfs[w], &check[w]);
                if (t < 0) {
                    fprintf(stderr, "bench: %s failed on vfs %s\n", wl->name,
                            vfs[w]);
                    failed = 1;
                    break;
                }
                times[w][r] = t;
                bytes[w] = db_bytes(path);
                if (opt.verbose)
                    printf("  %s run %d on %s: %.3f s\n", wl->name, r + 1,
                           vfs[w], t);
                if (wl->run == run_bulk)
                    have_bulk[w] = 1;
            }
            if (!failed && check[0] != check[1]) {
                fprintf(stderr, "bench: %s: results differ between %s and %s\n",
                        wl->name, vfs[0], vfs[1]);
                failed = 1;
            }
        }
        if (failed)
            break;
        print_row(wl->name, median(times[0], opt.repeat),
                  median(times[1], opt.repeat), bytes[0], bytes[1]);
    }

    free(times[0]);
    free(times[1]);
    if (!failed && selected(COMMITS)) {
        if (timed)
            printf("\n");
        commits_table(vfs);
    }
    if (!failed && selected(SNAPSHOT)) {
        if (timed || selected(COMMITS))
            printf("\n");
        snapshot_table(vfs);
    }
    if (opt.keep)
        printf("\ndatabases kept in %s\n", workdir);
    else
        remove_workdir();
    if (failed) {
        fprintf(stderr, "bench: FAILED\n");
        return 1;
    }
    return 0;
}
