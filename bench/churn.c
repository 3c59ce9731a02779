/*
 * churn.c - the churn workload: what a long-running application with churn
 * leaves on disk, against the other VFS's files after the same work.
 *
 * On each VFS, in WAL mode: fill a table with rows of 500 random bytes up
 * to --size MiB (default 64; --quick 8), take a snapshot (cow only: PRAGMA
 * cow_snapshot; the other VFS has none), then three rounds of overwriting
 * 80% of the rows and deleting a quarter of them (three quarters are gone
 * at the end), VACUUM, PRAGMA wal_checkpoint(TRUNCATE), and delete the
 * snapshot (cow).  Printed: the files' sizes (st_size of the database and
 * its -wal, -journal, -shm) and what they hold allocated (st_blocks), the
 * ratio of the sizes, and the time of the whole run.  cow runs with its
 * background relocator off (URI reloc=0), so that "before" is what the
 * work alone leaves; then, on one copy of the container, PRAGMA
 * cow_balance (its time and MiB/s moved, the sizes after it), and on
 * another, the background relocator with its defaults: how long until
 * the file is within 1.25x of the other VFS's files + 1 MiB (the
 * target), polled every 100 ms for at most 60 s.
 *
 * Both VFSs must end with the same rows (count and total length), or the
 * run fails.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "bench.h"
#include "cowvfs.h"

#define CHURN_ROW 500   /* payload bytes per row */
#define CHURN_ROUNDS 3

/* Sum of st_blocks * 512 of PATH and its companions (what they hold on the
 * device, holes not counted). */
static int64_t db_alloc_bytes(const char *path)
{
    static const char *const sfx[] = { "", "-wal", "-journal", "-shm" };
    int64_t total = 0;
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        char p[4200];
        struct stat sb;
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        if (stat(p, &sb) == 0)
            total += (int64_t)sb.st_blocks * 512;
    }
    return total;
}

sqlite3 *cow_open(const char *path, const char *params)
{
    char uri[4400];
    sqlite3 *db = NULL;
    snprintf(uri, sizeof uri, "file:%s?vfs=%s&%s", path, COWVFS_NAME, params);
    int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                             NULL);
    if (rc != SQLITE_OK) {
        report(db, uri, rc);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    static char buf[1 << 16];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

double run_churn(const char *path, const char *vfs, int cow, uint64_t *check)
{
    char sql[512];
    double t0 = now_s();
    sqlite3 *db = cow ? cow_open(path, "reloc=0") : db_open(path, vfs);
    if (!db)
        return -1;
    int64_t rows = opt.sz.churn_mib * (1 << 20) / (CHURN_ROW + 24);
    if (exec(db, "PRAGMA page_size=4096") || set_journal_mode(db, "wal") ||
        exec(db, "PRAGMA synchronous=NORMAL") ||
        exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB)"))
        goto fail;
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %lld) "
             "INSERT INTO t SELECT i, randomblob(%d) FROM n",
             (long long)rows, CHURN_ROW);
    if (exec(db, sql) || (cow && exec(db, "PRAGMA cow_snapshot('churn')")))
        goto fail;
    for (int r = 0; r < CHURN_ROUNDS; r++) {
        snprintf(sql, sizeof sql, "UPDATE t SET payload = randomblob(%d) WHERE id %% 5 <> %d",
                 CHURN_ROW, r);
        if (exec(db, sql))
            goto fail;
        snprintf(sql, sizeof sql, "DELETE FROM t WHERE id %% 4 = %d", r);
        if (exec(db, sql))
            goto fail;
    }
    if (exec(db, "VACUUM") || exec(db, "PRAGMA wal_checkpoint(TRUNCATE)") ||
        (cow && exec(db, "PRAGMA cow_delete('churn')")))
        goto fail;
    sqlite3_stmt *st = prepare(db, "SELECT count(*), total(length(payload)) FROM t");
    if (!st)
        goto fail;
    if (sqlite3_step(st) != SQLITE_ROW) {
        report(db, "churn: count", sqlite3_errcode(db));
        sqlite3_finalize(st);
        goto fail;
    }
    *check = (uint64_t)sqlite3_column_int64(st, 0) * 1000003u +
             (uint64_t)sqlite3_column_double(st, 1);
    sqlite3_finalize(st);
    if (db_close(db) != 0)
        return -1;
    return now_s() - t0;
fail:
    db_close(db);
    return -1;
}

/* PRAGMA cow_balance on a copy of the container: its seconds, the bytes it
 * moved; the copy's size and allocation after close.  0, or -1. */
static int explicit_balance(const char *path, double *secs, int64_t *moved, int64_t *size,
                            int64_t *alloc)
{
    sqlite3 *db = cow_open(path, "reloc=0");
    if (!db)
        return -1;
    double t0 = now_s();
    sqlite3_stmt *st = prepare(db, "PRAGMA cow_balance");
    int rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    long long m = 0;
    const char *row = rc == 0 ? (const char *)sqlite3_column_text(st, 0) : NULL;
    const char *p = row ? strstr(row, "bytes_moved=") : NULL;
    if (!p || sscanf(p, "bytes_moved=%lld", &m) != 1)
        rc = -1;
    if (rc)
        report(db, "churn: PRAGMA cow_balance", sqlite3_errcode(db));
    sqlite3_finalize(st);
    if (db_close(db) != 0)
        rc = -1;
    *secs = now_s() - t0;
    *moved = m;
    *size = db_bytes(path);
    *alloc = db_alloc_bytes(path);
    return rc;
}

/* The background relocator (defaults) on another copy: seconds until the
 * file is at most TARGET bytes, -1 if not within 60 s. */
static double background_balance(const char *path, int64_t target)
{
    sqlite3 *db = cow_open(path, "");
    if (!db)
        return -1;
    double t0 = now_s(), t = -1;
    /* a read keeps the database open, as an application would */
    if (exec(db, "SELECT count(*) FROM t") == 0)
        while (now_s() - t0 < 60) {
            if (file_size(path) <= target) {
                t = now_s() - t0;
                break;
            }
            sleep_ms(100);
        }
    db_close(db);
    return t;
}

int64_t balanced_bytes(const char *path)
{
    char copy[4300];
    double secs;
    int64_t moved, size = -1, alloc;
    snprintf(copy, sizeof copy, "%s-balance", path);
    if (copy_file(path, copy) == 0 && explicit_balance(copy, &secs, &moved, &size, &alloc) != 0)
        size = -1;
    db_remove(copy);
    return size;
}

int churn_table(const char *const vfs[2])
{
    double secs[2];
    int64_t size[2], alloc[2];
    uint64_t check[2] = { 0, 0 };
    char paths[2][4200];
    int c = strcmp(vfs[0], COWVFS_NAME) == 0 ? 0 : 1;
    for (int w = 0; w < 2; w++) {
        db_path(paths[w], sizeof paths[w], "churn", w);
        db_remove(paths[w]);
        secs[w] = run_churn(paths[w], vfs[w], w == c, &check[w]);
        if (secs[w] < 0) {
            fprintf(stderr, "bench: churn failed on vfs %s\n", vfs[w]);
            failed = 1;
            return -1;
        }
        size[w] = db_bytes(paths[w]);
        alloc[w] = db_alloc_bytes(paths[w]);
    }
    if (check[0] != check[1]) {
        fprintf(stderr, "bench: churn: rows differ between %s and %s\n", vfs[0], vfs[1]);
        failed = 1;
        return -1;
    }
    /* relocation, two ways, each on its own copy of the container */
    char ex[4300], bg[4300];
    snprintf(ex, sizeof ex, "%s-balance", paths[c]);
    snprintf(bg, sizeof bg, "%s-background", paths[c]);
    double bsecs = 0;
    int64_t moved = 0, asize = 0, aalloc = 0;
    int64_t target = size[1 - c] + size[1 - c] / 4 + (1 << 20);
    if (copy_file(paths[c], ex) || copy_file(paths[c], bg) ||
        explicit_balance(ex, &bsecs, &moved, &asize, &aalloc)) {
        fprintf(stderr, "bench: churn: relocation failed\n");
        failed = 1;
        return -1;
    }
    double bgsecs = background_balance(bg, target);
    int64_t bgsize = db_bytes(bg);
    db_remove(ex);
    db_remove(bg);
    printf("churn: a %lld MiB table of %d-byte rows, a snapshot (%s only), %d rounds of\n"
           "overwriting 80%% of the rows and deleting a quarter, VACUUM, the WAL\n"
           "checkpointed (TRUNCATE), the snapshot deleted; the files on disk after it\n"
           "(size: st_size; alloc: st_blocks) and the time of the run, %s with its\n"
           "background relocator off; then PRAGMA cow_balance on a copy (sizes after it,\n"
           "its time and rate), and the background relocator on another copy: seconds\n"
           "until the file is within 1.25x %s + 1 MiB (%.1f MiB; '-': not in 60 s)\n\n",
           (long long)opt.sz.churn_mib, CHURN_ROW, COWVFS_NAME, CHURN_ROUNDS, COWVFS_NAME,
           vfs[1 - c], target / 1048576.0);
    char h[7][64];
    snprintf(h[0], sizeof h[0], "%s MiB", vfs[0]);
    snprintf(h[1], sizeof h[1], "%s MiB", vfs[1]);
    snprintf(h[2], sizeof h[2], "%s/%s", vfs[1], vfs[0]);
    snprintf(h[3], sizeof h[3], "%s alloc", vfs[0]);
    snprintf(h[4], sizeof h[4], "%s alloc", vfs[1]);
    snprintf(h[5], sizeof h[5], "%s s", vfs[0]);
    snprintf(h[6], sizeof h[6], "%s s", vfs[1]);
    print_header("workload", 9, h, 7);
    printf("%-9s | %*.1f | %*.1f | %*.2f | %*.1f | %*.1f | %*.2f | %*.2f\n", "churn", colw[0],
           size[0] / 1048576.0, colw[1], size[1] / 1048576.0, colw[2],
           size[0] ? (double)size[1] / (double)size[0] : 0.0, colw[3], alloc[0] / 1048576.0,
           colw[4], alloc[1] / 1048576.0, colw[5], secs[0], colw[6], secs[1]);
    printf("\n%s after PRAGMA cow_balance: %.1f MiB (alloc %.1f MiB), %.2fx %s; "
           "%.1f MiB moved in %.2f s (%.0f MiB/s)\n",
           COWVFS_NAME, asize / 1048576.0, aalloc / 1048576.0,
           size[1 - c] ? (double)asize / (double)size[1 - c] : 0.0, vfs[1 - c], moved / 1048576.0,
           bsecs, bsecs > 0 ? moved / 1048576.0 / bsecs : 0.0);
    if (bgsecs >= 0)
        printf("%s background relocation: within the target after %.1f s (%.1f MiB at the end)\n",
               COWVFS_NAME, bgsecs, bgsize / 1048576.0);
    else
        printf("%s background relocation: not within the target after 60 s (%.1f MiB)\n",
               COWVFS_NAME, bgsize / 1048576.0);
    if (asize > target)
        printf("%s after balance is above the target (1.25x %s + 1 MiB)\n", COWVFS_NAME,
               vfs[1 - c]);
    return 0;
}
