/*
 * workloads.c - the timed workloads of the main table (bulk, txn-wal,
 * txn-delete, reads, aggregate, updates): each runs on one VFS and returns
 * its time.
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

/* ---- workloads ----
 *
 * Each returns the elapsed seconds (open to close included), or -1 on error.
 * *check receives a value that must be the same for both VFSs (0 when the
 * workload has nothing to compare).
 */

static const char create_sql[] =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, payload TEXT NOT NULL)";

/* The end of a workload that went well: finalizes ST (NULL: none) and
 * closes DB; returns the seconds since T0, or -1 if closing failed
 * (reported). */
static double workload_end(sqlite3 *db, sqlite3_stmt *st, double t0)
{
    sqlite3_finalize(st);
    return db_close(db) == 0 ? now_s() - t0 : -1;
}

/* The end of a workload that failed (already reported): finalizes ST
 * (NULL: none) and closes DB; returns -1. */
static double workload_failed(sqlite3 *db, sqlite3_stmt *st)
{
    sqlite3_finalize(st);
    sqlite3_close(db);
    return -1;
}

sqlite3 *open_autocommit_db(const char *path, const char *vfs, const char *mode,
                            sqlite3_stmt **ins)
{
    sqlite3 *db = db_open(path, vfs);
    *ins = NULL;
    if (!db)
        return NULL;
    if (set_journal_mode(db, mode) || exec(db, "PRAGMA synchronous=FULL") ||
        exec(db, create_sql) ||
        !(*ins = prepare(db, "INSERT INTO t(id, payload) VALUES(?1, ?2)"))) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

double run_bulk(const char *path, const char *vfs, uint64_t *check)
{
    sqlite3 *db;
    sqlite3_stmt *ins = NULL;
    double t0 = now_s();

    *check = 0;
    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    if (exec(db, create_sql) || exec(db, "BEGIN"))
        return workload_failed(db, NULL);
    ins = prepare(db, "INSERT INTO t(id, payload) VALUES(?1, ?2)");
    if (!ins || insert_rows(db, ins, opt.sz.bulk_rows, "bulk insert"))
        return workload_failed(db, ins);
    sqlite3_finalize(ins);
    if (exec(db, "COMMIT"))
        return workload_failed(db, NULL);
    return workload_end(db, NULL, t0);
}

static double run_txn(const char *path, const char *vfs, const char *mode,
                      uint64_t *check)
{
    sqlite3 *db;
    sqlite3_stmt *ins;
    double t0 = now_s();

    *check = 0;
    prng_reset();
    db = open_autocommit_db(path, vfs, mode, &ins);
    if (!db)
        return -1;
    if (insert_rows(db, ins, opt.sz.txns, "autocommit insert"))
        return workload_failed(db, ins);
    return workload_end(db, ins, t0);
}

double run_txn_wal(const char *path, const char *vfs, uint64_t *check)
{
    return run_txn(path, vfs, "wal", check);
}

double run_txn_delete(const char *path, const char *vfs, uint64_t *check)
{
    return run_txn(path, vfs, "delete", check);
}

double run_reads(const char *path, const char *vfs, uint64_t *check)
{
    sqlite3 *db;
    sqlite3_stmt *sel;
    uint64_t sum = 0;
    double t0 = now_s();

    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    sel = prepare(db, "SELECT payload FROM t WHERE id = ?1");
    if (!sel)
        return workload_failed(db, NULL);
    for (int64_t i = 0; i < opt.sz.reads; i++) {
        int64_t id = prng_range(1, opt.sz.bulk_rows);
        sqlite3_bind_int64(sel, 1, id);
        if (sqlite3_step(sel) != SQLITE_ROW) {
            fprintf(stderr, "bench: reads: row %lld missing\n", (long long)id);
            failed = 1;
            return workload_failed(db, sel);
        }
        const unsigned char *p = sqlite3_column_text(sel, 0);
        int n = sqlite3_column_bytes(sel, 0);
        sum = sum * 31 + (uint64_t)n + (p && n ? p[n - 1] : 0);
        if (sqlite3_step(sel) != SQLITE_DONE) {
            report(db, "reads", sqlite3_errcode(db));
            return workload_failed(db, sel);
        }
        sqlite3_reset(sel);
    }
    *check = sum;
    return workload_end(db, sel, t0);
}

double run_aggregate(const char *path, const char *vfs, uint64_t *check)
{
    sqlite3 *db;
    sqlite3_stmt *sel;
    double t0 = now_s();

    db = db_open(path, vfs);
    if (!db)
        return -1;
    sel = prepare(db, "SELECT count(*), sum(length(payload)), avg(id), "
                      "max(payload) FROM t");
    if (!sel)
        return workload_failed(db, NULL);
    if (sqlite3_step(sel) != SQLITE_ROW) {
        report(db, "aggregate", sqlite3_errcode(db));
        return workload_failed(db, sel);
    }
    int64_t count = sqlite3_column_int64(sel, 0);
    int64_t bytes = sqlite3_column_int64(sel, 1);
    if (count != opt.sz.bulk_rows) {
        fprintf(stderr, "bench: aggregate: count %lld, expected %lld\n",
                (long long)count, (long long)opt.sz.bulk_rows);
        failed = 1;
        return workload_failed(db, sel);
    }
    *check = (uint64_t)count * 1000003u + (uint64_t)bytes;
    if (opt.verbose)
        printf("  aggregate on %s: count=%lld bytes=%lld avg(id)=%.1f\n", vfs,
               (long long)count, (long long)bytes, sqlite3_column_double(sel, 2));
    return workload_end(db, sel, t0);
}

/*
 * updates: opt.sz.txns autocommit single-row UPDATEs of random rows of
 * bulk's table, journal_mode=WAL, synchronous=NORMAL: small transactions
 * on a large database (1,000,000 rows, over 100 MB), whose pages mostly
 * miss SQLite's cache, and whose container has a hundred block groups and
 * more.  The payload is rotated by one character, so its length (and
 * aggregate's sum) stays; the database goes back to journal_mode=DELETE
 * at the end (a checkpoint), as bulk left it.
 */
double run_updates(const char *path, const char *vfs, uint64_t *check)
{
    sqlite3 *db;
    sqlite3_stmt *upd;
    uint64_t sum = 0;
    double t0 = now_s();

    prng_reset();
    db = db_open(path, vfs);
    if (!db)
        return -1;
    if (set_journal_mode(db, "wal") || exec(db, "PRAGMA synchronous=NORMAL"))
        return workload_failed(db, NULL);
    upd = prepare(db, "UPDATE t SET payload = substr(payload, 2) || substr(payload, 1, 1) "
                      "WHERE id = ?1");
    if (!upd)
        return workload_failed(db, NULL);
    for (int64_t i = 0; i < opt.sz.txns; i++) {
        int64_t id = prng_range(1, opt.sz.bulk_rows);
        sqlite3_bind_int64(upd, 1, id);
        if (sqlite3_step(upd) != SQLITE_DONE) {
            report(db, "updates", sqlite3_errcode(db));
            return workload_failed(db, upd);
        }
        sum = sum * 31 + (uint64_t)sqlite3_changes(db) * (uint64_t)id;
        sqlite3_reset(upd);
    }
    sqlite3_finalize(upd);
    if (set_journal_mode(db, "delete"))
        return workload_failed(db, NULL);
    *check = sum;
    return workload_end(db, NULL, t0);
}
