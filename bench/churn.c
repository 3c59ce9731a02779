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
 * ratio of the sizes, and the time of the whole run.  The container only
 * grows today; relocation (issue 14) is what will give this space back,
 * and its figures will join this table.
 *
 * Both VFSs must end with the same rows (count and total length), or the
 * run fails.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

/* One churn run on VFS (COW: it has snapshots); *CHECK gets the rows left
 * and their bytes.  Returns the seconds it took, or -1 (reported). */
static double run_churn(const char *path, const char *vfs, int cow, uint64_t *check)
{
    char sql[512];
    double t0 = now_s();
    sqlite3 *db = db_open(path, vfs);
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

int churn_table(const char *const vfs[2])
{
    double secs[2];
    int64_t size[2], alloc[2];
    uint64_t check[2] = { 0, 0 };
    for (int w = 0; w < 2; w++) {
        char path[4200];
        db_path(path, sizeof path, "churn", w);
        db_remove(path);
        secs[w] = run_churn(path, vfs[w], strcmp(vfs[w], COWVFS_NAME) == 0, &check[w]);
        if (secs[w] < 0) {
            fprintf(stderr, "bench: churn failed on vfs %s\n", vfs[w]);
            failed = 1;
            return -1;
        }
        size[w] = db_bytes(path);
        alloc[w] = db_alloc_bytes(path);
    }
    if (check[0] != check[1]) {
        fprintf(stderr, "bench: churn: rows differ between %s and %s\n", vfs[0], vfs[1]);
        failed = 1;
        return -1;
    }
    printf("churn: a %lld MiB table of %d-byte rows, a snapshot (%s only), %d rounds of\n"
           "overwriting 80%% of the rows and deleting a quarter, VACUUM, the WAL\n"
           "checkpointed (TRUNCATE), the snapshot deleted; the files on disk after it\n"
           "(size: st_size; alloc: st_blocks), and the time of the whole run\n\n",
           (long long)opt.sz.churn_mib, CHURN_ROW, COWVFS_NAME, CHURN_ROUNDS);
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
    return 0;
}
