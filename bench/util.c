/*
 * util.c - what the benchmarks share (see bench.h): the PRNG, timing,
 * opening and running SQL with errors reported, the databases' paths and
 * sizes, the temporary directory.
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

/* ---- PRNG: splitmix64, fixed seed ---- */

#define BENCH_SEED 0x636f777666730001ULL

static uint64_t prng_state;

void prng_reset(void)
{
    prng_state = BENCH_SEED;
}

uint64_t prng_next(void)
{
    uint64_t z = (prng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform integer in [lo, hi]. */
int64_t prng_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(prng_next() % (uint64_t)(hi - lo + 1));
}

/* Fills BUF with a random lowercase text of 50..100 bytes; returns the length. */
int make_payload(char *buf)
{
    int n = (int)prng_range(50, 100);
    for (int i = 0; i < n; i++)
        buf[i] = (char)('a' + prng_next() % 26);
    buf[n] = 0;
    return n;
}

/* ---- helpers ---- */

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void report(sqlite3 *db, const char *what, int rc)
{
    fprintf(stderr, "bench: %s: %s (%d)\n", what,
            db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
    failed = 1;
}

/* Opens PATH on VFS, creating it; returns NULL (reported) on failure. */
sqlite3 *db_open(const char *path, const char *vfs)
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

int db_close(sqlite3 *db)
{
    int rc = sqlite3_close(db);
    if (rc != SQLITE_OK) {
        report(db, "close", rc);
        return -1;
    }
    return 0;
}

int exec(sqlite3 *db, const char *sql)
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

sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
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
int set_journal_mode(sqlite3 *db, const char *mode)
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
void db_path(char *buf, size_t n, const char *stem, int which)
{
    snprintf(buf, n, "%s/%s-%c.db", workdir, stem, which ? 'b' : 'a');
}

/* Sum of st_size of PATH and its -wal, -journal, -shm companions. */
int64_t db_bytes(const char *path)
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

void db_remove(const char *path)
{
    static const char *const sfx[] = { "", "-wal", "-journal", "-shm" };
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        if (unlink(p) != 0 && errno != ENOENT)
            fprintf(stderr, "bench: unlink %s: %s\n", p, strerror(errno));
    }
}


/* ---- temporary directory ---- */

int make_workdir(void)
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

void remove_workdir(void)
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

int insert_rows(sqlite3 *db, sqlite3_stmt *ins, int64_t n, const char *what)
{
    char buf[128];
    for (int64_t i = 1; i <= n; i++) {
        int len = make_payload(buf);
        sqlite3_bind_int64(ins, 1, i);
        sqlite3_bind_text(ins, 2, buf, len, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            report(db, what, sqlite3_errcode(db));
            return -1;
        }
        sqlite3_reset(ins);
    }
    return 0;
}
