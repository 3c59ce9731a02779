/*
 * commits.c - the commits workload: single-row transactions, commits per
 * second and device flushes per commit on each VFS, in a table of its own.
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
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    uint64_t f0, f1;
    double t0, t;

    prng_reset();
    db = open_autocommit_db(path, vfs, mode, &st);
    if (!db)
        return -1;
    if (get_flushes(db, which, cow, &f0))
        goto out;
    t0 = now_s();
    if (insert_rows(db, st, opt.sz.commits, "commits insert"))
        goto out;
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



/*
 * The commits workload, on both VFSs, alternately, --repeat times per
 * journal mode; prints its own table: medians of commits per second and of
 * flushes per commit, and the ratio of commits per second B/A (above 1: B
 * commits faster).  A VFS that is not cow runs through its counting VFS.
 * Returns 0 or -1 (reported).
 */
int commits_table(const char *const vfs[2])
{
    static const char *const modes[] = { "wal", "delete" };
    const char *run_vfs[2];
    int cow[2];
    double *cps[2], *fpc[2];
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
    print_vs_header("commits", 14, vfs, "c/s", "fl/c");

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
