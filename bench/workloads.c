/*
 * workloads.c - the timed workloads of the main table (bulk, txn-wal,
 * txn-delete, reads, aggregate): each runs on one VFS and returns its time.
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

const char create_sql[] =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, payload TEXT NOT NULL)";

double run_bulk(const char *path, const char *vfs, uint64_t *check)
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

double run_aggregate(const char *path, const char *vfs, uint64_t *check)
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
