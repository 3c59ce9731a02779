/*
 * bench_rados.c - make bench-rados: cow-rados against libcephsqlite's
 * "ceph" VFS on the same cluster, in the same run (README "On Ceph RADOS").
 *
 *   build/bench_rados [-n COMMITS] [-r ROUNDS] [-p POOL] [-s MIB]...
 *
 * Needs CEPH_CONF (make bench-rados starts tools/ceph-local.sh's cluster,
 * on bluestore)
 * and libcephsqlite.so (Debian libsqlite3-mod-ceph), loaded with
 * sqlite3_load_extension().  Measured, in ROUNDS rounds that alternate the
 * configurations (each round on fresh databases), medians printed:
 *
 *   commits   COMMITS single-row INSERT transactions (a 100-byte blob),
 *             synchronous=FULL: cow-rados in WAL and DELETE mode, ceph in
 *             PERSIST (its recommended mode) and DELETE; commits per
 *             second (wall clock) and this process's CPU per commit
 *             (CLOCK_PROCESS_CPUTIME_ID: librados's threads included)
 *   bulk      100,000 rows of 100 bytes in one transaction, rows per second
 *   reads     10,000 point SELECTs by random key, reads per second (both
 *             after the bulk load, from a warm SQLite page cache of 2,000
 *             pages: the rest comes from the OSD)
 *   snapshot  PRAGMA cow_snapshot in WAL mode (the database built in DELETE
 *             mode) at 1 MiB and 64 MiB of database (or the
 *             sizes -s gives; -s 0: none), the median of 5, each after one
 *             single-row commit, milliseconds; ceph has no snapshots
 *
 * The ratios printed are cow-rados over ceph.  Nothing is asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cowvfs.h"

static const char *pool = "cow";
static int ncommits = 200, nrounds = 3;
static int snap_mib[8], nsnap;

static double now_s(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench_rados: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "bench_rados: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

/* A configuration: VFS, journal mode, and the URI of database NAME. */
struct conf {
    const char *label, *vfs, *mode;
};
static const struct conf confs[] = {
    {"cow-rados WAL", "cow-rados", "WAL"},
    {"cow-rados DELETE", "cow-rados", "DELETE"},
    {"ceph PERSIST", "ceph", "PERSIST"},
    {"ceph DELETE", "ceph", "DELETE"},
};
#define NCONF (sizeof confs / sizeof confs[0])

static sqlite3 *open_db(const struct conf *c, const char *name)
{
    char uri[512];
    sqlite3 *db = NULL;
    if (strcmp(c->vfs, "ceph") == 0) /* libcephsqlite: file:///POOL:NS/NAME */
        snprintf(uri, sizeof uri, "file:///%s:/%s?vfs=ceph", pool, name);
    else
        snprintf(uri, sizeof uri, "file:%s/%s?vfs=cow-rados", pool, name);
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                        NULL) != SQLITE_OK)
        die(db, uri);
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s; PRAGMA synchronous=FULL", c->mode);
    exec(db, sql);
    return db;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One round of every measurement on configuration C: fills the rates. */
static void round_one(const struct conf *c, int round, double *commit_rate, double *commit_cpu_us,
                      double *bulk_rate, double *read_rate)
{
    char name[128];
    snprintf(name, sizeof name, "bench-%d-%d-%s-%s", (int)getpid(), round,
             strcmp(c->vfs, "ceph") ? "cow" : "ceph", c->mode);
    sqlite3 *db = open_db(c, name);
    exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (randomblob(100))", -1, &ins, NULL))
        die(db, "prepare");
    double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < ncommits; i++) {
        if (sqlite3_step(ins) != SQLITE_DONE)
            die(db, "insert");
        sqlite3_reset(ins);
    }
    double t1 = now_s(CLOCK_MONOTONIC), c1 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    *commit_rate = ncommits / (t1 - t0);
    *commit_cpu_us = (c1 - c0) * 1e6 / ncommits;
    sqlite3_finalize(ins);

    t0 = now_s(CLOCK_MONOTONIC);
    exec(db, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<100000)"
             " INSERT INTO t(v) SELECT randomblob(100) FROM n; COMMIT");
    *bulk_rate = 100000 / (now_s(CLOCK_MONOTONIC) - t0);

    exec(db, "PRAGMA cache_size=2000");
    sqlite3_stmt *sel;
    if (sqlite3_prepare_v2(db, "SELECT length(v) FROM t WHERE id=?", -1, &sel, NULL))
        die(db, "prepare");
    unsigned x = 12345;
    t0 = now_s(CLOCK_MONOTONIC);
    for (int i = 0; i < 10000; i++) {
        x = x * 1103515245u + 12345u;
        sqlite3_bind_int64(sel, 1, 1 + (x >> 8) % 100000);
        if (sqlite3_step(sel) != SQLITE_ROW)
            die(db, "select");
        sqlite3_reset(sel);
    }
    *read_rate = 10000 / (now_s(CLOCK_MONOTONIC) - t0);
    sqlite3_finalize(sel);
    sqlite3_close(db);
}

/* PRAGMA cow_snapshot's time (ms, median of 5) on a database of MIB MiB. */
static double snapshot_ms(int mib)
{
    char name[128];
    snprintf(name, sizeof name, "bench-snap-%d-%d", (int)getpid(), mib);
    /* built in DELETE mode (written once, not through the WAL), then WAL */
    sqlite3 *db = open_db(&confs[1], name);
    char sql[320];
    snprintf(sql, sizeof sql,
             "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
             "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<%d)"
             " INSERT INTO t(v) SELECT randomblob(1000) FROM n; COMMIT;"
             "PRAGMA journal_mode=WAL",
             mib * 1000);
    exec(db, sql);
    double v[5];
    for (int i = 0; i < 5; i++) {
        exec(db, "UPDATE t SET v=randomblob(1000) WHERE id=1");
        snprintf(sql, sizeof sql, "PRAGMA cow_snapshot('s%d')", i);
        double t0 = now_s(CLOCK_MONOTONIC);
        exec(db, sql);
        v[i] = (now_s(CLOCK_MONOTONIC) - t0) * 1e3;
    }
    sqlite3_close(db);
    return median(v, 5);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "n:r:p:s:")) != -1) {
        if (opt == 's' && nsnap < 8)
            snap_mib[nsnap++] = atoi(optarg);
        else if (opt == 'n')
            ncommits = atoi(optarg);
        else if (opt == 'r')
            nrounds = atoi(optarg);
        else if (opt == 'p')
            pool = optarg;
        else {
            fprintf(stderr, "usage: %s [-n COMMITS] [-r ROUNDS] [-p POOL] [-s MIB]...\n",
                    argv[0]);
            return 2;
        }
    }
    if (ncommits < 1 || nrounds < 1 || nrounds > 15 || !getenv("CEPH_CONF")) {
        fprintf(stderr, "bench_rados: needs CEPH_CONF (make bench-rados starts a cluster), "
                        "COMMITS >= 1 and ROUNDS 1..15\n");
        return 2;
    }
    if (cowvfs_rados_register() != SQLITE_OK) {
        fprintf(stderr, "bench_rados: cannot register cow-rados\n");
        return 1;
    }
    /* libcephsqlite registers "ceph" when loaded into any connection */
    sqlite3 *db;
    char *err = NULL;
    sqlite3_open(":memory:", &db);
    sqlite3_enable_load_extension(db, 1);
    if (sqlite3_load_extension(db, "libcephsqlite.so", "sqlite3_cephsqlite_init", &err) !=
        SQLITE_OK) {
        fprintf(stderr, "bench_rados: loading libcephsqlite.so (libsqlite3-mod-ceph): %s\n",
                err ? err : "?");
        return 1;
    }
    if (nsnap == 0) {
        snap_mib[nsnap++] = 1;
        snap_mib[nsnap++] = 64;
    }
    double rate[NCONF][15], cpu[NCONF][15], bulk[NCONF][15], rd[NCONF][15];
    for (int r = 0; r < nrounds; r++)
        for (size_t k = 0; k < NCONF; k++) {
            size_t c = (k + (size_t)r) % NCONF; /* alternate who goes first */
            round_one(&confs[c], r, &rate[c][r], &cpu[c][r], &bulk[c][r], &rd[c][r]);
        }
    printf("bench-rados: %d single-row commits x %d rounds, synchronous=FULL, medians\n",
           ncommits, nrounds);
    printf("%-18s %12s %14s %12s %12s\n", "", "commits/s", "CPU/commit us", "bulk rows/s",
           "reads/s");
    double med[NCONF][4];
    for (size_t c = 0; c < NCONF; c++) {
        med[c][0] = median(rate[c], nrounds);
        med[c][1] = median(cpu[c], nrounds);
        med[c][2] = median(bulk[c], nrounds);
        med[c][3] = median(rd[c], nrounds);
        printf("%-18s %12.0f %14.0f %12.0f %12.0f\n", confs[c].label, med[c][0], med[c][1],
               med[c][2], med[c][3]);
    }
    printf("cow-rados WAL / ceph PERSIST: commits %.2fx, bulk %.2fx, reads %.2fx\n",
           med[0][0] / med[2][0], med[0][2] / med[2][2], med[0][3] / med[2][3]);
    printf("cow-rados DELETE / ceph DELETE: commits %.2fx\n", med[1][0] / med[3][0]);
    for (int i = 0; i < nsnap; i++)
        if (snap_mib[i] > 0)
            printf("snapshot (cow-rados WAL, median of 5): %d MiB %.2f ms\n", snap_mib[i],
                   snapshot_ms(snap_mib[i]));
    sqlite3_close(db);
    return 0;
}
