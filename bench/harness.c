/*
 * harness.c - the main table's harness: the list of workloads, selecting
 * them (--only, --skip), medians, the bulk database the read workloads
 * share, and printing the table's rows.
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

/* ---- the workloads of the main table, and the table ---- */


const struct workload workloads[] = {
    { "bulk",       "bulk",   1, run_bulk },
    { "txn-wal",    "wal",    1, run_txn_wal },
    { "txn-delete", "delete", 1, run_txn_delete },
    { "reads",      "bulk",   0, run_reads },
    { "aggregate",  "bulk",   0, run_aggregate },
    { "updates",    "bulk",   0, run_updates },
};

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

int selected(const char *name)
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

double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Makes sure bulk's database exists on both VFSs (untimed) for reads/aggregate. */
int ensure_bulk(int *have_bulk)
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
void print_header(const char *first, int w, char h[][64], int n)
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

void print_row(const char *name, double ta, double tb, int64_t ba, int64_t bb)
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

void print_vs_header(const char *first, int w, const char *const vfs[2], const char *unit,
                     const char *unit2)
{
    char h[5][64];
    snprintf(h[0], sizeof h[0], "%s %s", vfs[0], unit);
    snprintf(h[1], sizeof h[1], "%s %s", vfs[1], unit);
    snprintf(h[2], sizeof h[2], "%s/%s", vfs[1], vfs[0]);
    snprintf(h[3], sizeof h[3], "%s %s", vfs[0], unit2);
    snprintf(h[4], sizeof h[4], "%s %s", vfs[1], unit2);
    print_header(first, w, h, 5);
}
