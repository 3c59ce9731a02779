/*
 * reloclat.c - the reloc-latency workload: how long a writer's commits
 * take while relocation runs on the same container (issue 14's target: no
 * wait over 50 ms, p99 within 2x of the same writer without relocation).
 *
 * cow only.  First the churn workload's work (churn.c, run_churn: a table
 * of --size MiB, a snapshot, three rounds of overwrites and deletes,
 * VACUUM, the snapshot deleted) leaves a container with most of it free.
 * Then, for each synchronous setting (NORMAL, FULL) and each case, on a
 * fresh copy of that container, a writer thread on a connection of its
 * own commits single-row transactions (an INSERT of 100 random bytes,
 * autocommit, WAL mode) back to back and times each one:
 *
 *   none      the relocator off (URI reloc=0), no balance: the baseline;
 *             the writer runs opt.sz.reloc_secs (5 s; --quick 1.5)
 *   balance   the same, while the main thread runs PRAGMA cow_balance on
 *             another connection, again and again (the first one moves
 *             the churn's blocks; the later ones what the writer's own
 *             commits leave) until the writer has run as long as in
 *             "none"; the writer starts RL_WARMUP_S before the first
 *             balance and stops when the last one ends
 *   1st balance
 *             the commits of "balance" that started during the first
 *             PRAGMA cow_balance, the one that moves the churn's blocks
 *   relocator the background relocator with its defaults (no URI
 *             parameter); the writer runs until the relocator has moved
 *             nothing for RL_IDLE_S (polled through PRAGMA cow_stats on
 *             the main thread's connection every RL_POLL_MS), and at least
 *             as long as in "none", at most RL_MAX_S
 *
 * Counted are the commits that start after the warm-up (RL_WARMUP_S) and,
 * in "balance", before the last balance ends; in "relocator", before the
 * last poll that saw reloc_bytes grow.  Printed per case: the commits,
 * commits per second, p50, p99 and the longest commit (microseconds), the
 * p99 against "none" of the same setting, and the commits over 50 ms;
 * below the table, the balances' count, time and bytes moved, what the
 * relocator moved, and the device flushes of each case (PRAGMA cow_stats:
 * a flush of relocation's commits holds store->lock, and a writer waits
 * for it).  Nothing is asserted about the times: the numbers are for
 * reading (the machine may be busy).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "bench.h"
#include "cowvfs.h"

#define RL_WARMUP_S 0.2       /* commits before this are not counted */
#define RL_IDLE_S 2.5         /* "relocator": this long with nothing moved ends it */
#define RL_MAX_S 30.0         /* "relocator": the writer's longest run */
#define RL_POLL_MS 100
#define RL_PAYLOAD 100        /* bytes per inserted row */
#define RL_SLOW_US 50000.0    /* the target: no commit waits longer (us) */

enum rl_case { RL_NONE, RL_BALANCE, RL_FIRST, RL_RELOCATOR, RL_NCASES };
static const char *const rl_case_name[RL_NCASES] = { "none", "balance", "1st balance",
                                                     "relocator" };

/* One commit: when it started and how long it took (seconds, now_s()). */
struct rl_commit {
    double start, secs;
};

/* The writer thread's state.  The main thread sets path, params and sync
 * before the thread starts, and stop (atomically) to end it; the thread
 * owns v, n, cap and rc until it is joined. */
struct rl_writer {
    const char *path, *params, *sync;
    int stop;
    struct rl_commit *v;
    size_t n, cap;
    int rc; /* 0, or -1 (reported) */
};

/* Sets the writer's connection up: WAL, synchronous SYNC, table w. */
static sqlite3 *rl_writer_open(struct rl_writer *w, sqlite3_stmt **ins)
{
    char sql[128];
    sqlite3 *db = cow_open(w->path, w->params);
    if (!db)
        return NULL;
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", w->sync);
    if (set_journal_mode(db, "wal") || exec(db, sql) ||
        exec(db, "CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY, v BLOB)"))
        goto fail;
    snprintf(sql, sizeof sql, "INSERT INTO w(v) VALUES(randomblob(%d))", RL_PAYLOAD);
    *ins = prepare(db, sql);
    if (*ins)
        return db;
fail:
    db_close(db);
    return NULL;
}

/* The writer thread: single-row commits until stop, each one timed. */
static void *rl_writer_main(void *arg)
{
    struct rl_writer *w = arg;
    sqlite3_stmt *ins = NULL;
    sqlite3 *db = rl_writer_open(w, &ins);
    w->rc = db ? 0 : -1;
    while (db && !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        if (w->n == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 4096;
            struct rl_commit *v = realloc(w->v, cap * sizeof *v);
            if (!v) {
                fprintf(stderr, "bench: reloc-latency: out of memory\n");
                w->rc = -1;
                break;
            }
            w->v = v;
            w->cap = cap;
        }
        double t0 = now_s();
        int rc = sqlite3_step(ins);
        double t1 = now_s();
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE) {
            report(db, "reloc-latency: insert", rc);
            w->rc = -1;
            break;
        }
        w->v[w->n++] = (struct rl_commit){ t0, t1 - t0 };
    }
    sqlite3_finalize(ins);
    if (db && db_close(db) != 0)
        w->rc = -1;
    return NULL;
}

/* A number from PRAGMA cow_stats on DB: the value of "NAME=" in its row,
 * in *V; 0, or -1 (reported). */
static int cow_stat(sqlite3 *db, const char *name, long long *v)
{
    char key[64];
    sqlite3_stmt *st = prepare(db, "PRAGMA cow_stats");
    const char *row = st && sqlite3_step(st) == SQLITE_ROW
                          ? (const char *)sqlite3_column_text(st, 0) : NULL;
    const char *p = NULL;
    snprintf(key, sizeof key, "%s=", name);
    for (const char *q = row; q && (q = strstr(q, key)) != NULL; q++)
        if (q == row || q[-1] == ' ') {
            p = q;
            break;
        }
    int rc = p && sscanf(p + strlen(key), "%lld", v) == 1 ? 0 : -1;
    if (rc)
        report(db, "reloc-latency: PRAGMA cow_stats", sqlite3_errcode(db));
    sqlite3_finalize(st);
    return rc;
}

/* One PRAGMA cow_balance on DB; *MOVED += its bytes_moved.  0, or -1. */
static int balance_once(sqlite3 *db, long long *moved)
{
    long long m = 0;
    sqlite3_stmt *st = prepare(db, "PRAGMA cow_balance");
    const char *row = st && sqlite3_step(st) == SQLITE_ROW
                          ? (const char *)sqlite3_column_text(st, 0) : NULL;
    const char *p = row ? strstr(row, "bytes_moved=") : NULL;
    int rc = p && sscanf(p, "bytes_moved=%lld", &m) == 1 ? 0 : -1;
    if (rc)
        report(db, "reloc-latency: PRAGMA cow_balance", sqlite3_errcode(db));
    sqlite3_finalize(st);
    *moved += m;
    return rc;
}

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

/* What one case measured. */
struct rl_result {
    size_t commits;
    double secs;            /* the counted window */
    double p50, p99, max;   /* microseconds */
    size_t slow;            /* commits over RL_SLOW_US */
    int balances;           /* "balance": PRAGMA cow_balance runs */
    double bal_first, bal_total; /* their times: the first, all (seconds) */
    long long moved;        /* bytes relocated during the case */
    long long flushes;      /* device flushes during the case (cow_stats) */
};

static int cmp_secs(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fills R's latency figures from the commits of W that started in
 * [FROM, TO). */
static int summarize(const struct rl_writer *w, double from, double to, struct rl_result *r)
{
    double *lat = malloc((w->n ? w->n : 1) * sizeof *lat);
    if (!lat) {
        fprintf(stderr, "bench: reloc-latency: out of memory\n");
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->v[i].start >= from && w->v[i].start < to)
            lat[n++] = w->v[i].secs * 1e6;
    qsort(lat, n, sizeof *lat, cmp_secs);
    r->commits = n;
    r->secs = to - from;
    r->p50 = n ? lat[n / 2] : 0;
    r->p99 = n ? lat[(size_t)((double)(n - 1) * 0.99)] : 0;
    r->max = n ? lat[n - 1] : 0;
    r->slow = 0;
    for (size_t i = 0; i < n; i++)
        r->slow += lat[i] > RL_SLOW_US;
    free(lat);
    return 0;
}

/* One case C (not RL_FIRST) on a fresh copy of the churned container
 * CHURNED, with synchronous SYNC; the writer runs about SECS seconds (see
 * the top).  "balance" fills FIRST too: the commits that started during
 * the first balance alone. */
static int run_case(const char *churned, enum rl_case c, const char *sync, double secs,
                    struct rl_result *r, struct rl_result *first)
{
    char path[4300];
    struct rl_writer w = { 0 };
    pthread_t th;
    sqlite3 *side = NULL;
    long long moved0 = 0, moved = 0, flushes0 = 0, flushes = 0;
    double first_from = 0, first_to = 0;
    int rc = 0;

    memset(r, 0, sizeof *r);
    snprintf(path, sizeof path, "%s-lat", churned);
    db_remove(path);
    if (copy_file(churned, path) != 0) {
        fprintf(stderr, "bench: reloc-latency: cannot copy %s\n", churned);
        return -1;
    }
    w.path = path;
    w.params = c == RL_RELOCATOR ? "" : "reloc=0";
    w.sync = sync;
    /* the side connection opens first, so that the container's relocator
     * settings are the case's */
    side = cow_open(path, w.params);
    if (!side || cow_stat(side, "reloc_bytes", &moved0) ||
        cow_stat(side, "flushes", &flushes0)) {
        db_close(side);
        db_remove(path);
        return -1;
    }
    double t0 = now_s(), from = t0 + RL_WARMUP_S, to;
    if (pthread_create(&th, NULL, rl_writer_main, &w) != 0) {
        fprintf(stderr, "bench: reloc-latency: cannot start the writer\n");
        db_close(side);
        db_remove(path);
        return -1;
    }
    sleep_s(RL_WARMUP_S);
    if (c == RL_NONE) {
        sleep_s(secs);
        to = now_s();
    } else if (c == RL_BALANCE) {
        do {
            double b0 = now_s();
            rc = balance_once(side, &moved);
            double b = now_s() - b0;
            if (r->balances++ == 0) {
                r->bal_first = b;
                first_from = b0;
                first_to = b0 + b;
            }
            r->bal_total += b;
        } while (rc == 0 && now_s() - from < secs);
        to = now_s();
    } else {
        double last = from;
        long long seen = moved0;
        while (rc == 0) {
            sleep_s(RL_POLL_MS / 1000.0);
            double t = now_s();
            rc = cow_stat(side, "reloc_bytes", &moved);
            if (rc == 0 && moved != seen) {
                seen = moved;
                last = t;
            }
            if (t - from >= RL_MAX_S || (t - from >= secs && t - last >= RL_IDLE_S))
                break;
        }
        moved -= moved0;
        /* counted: up to the last poll that saw bytes moved (the whole
         * run when nothing moved) */
        to = moved > 0 ? last : now_s();
    }
    __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    if (rc == 0)
        rc = cow_stat(side, "flushes", &flushes);
    r->moved = moved;
    r->flushes = flushes - flushes0;
    if (db_close(side) != 0)
        rc = -1;
    if (rc == 0 && w.rc == 0)
        rc = summarize(&w, from, to, r);
    if (rc == 0 && w.rc == 0 && c == RL_BALANCE) {
        rc = summarize(&w, first_from, first_to, first);
        first->bal_first = r->bal_first;
    }
    free(w.v);
    db_remove(path);
    return rc == 0 && w.rc == 0 ? 0 : -1;
}

int reloclat_table(void)
{
    static const char *const syncs[] = { "NORMAL", "FULL" };
    char churned[4200];
    uint64_t check;
    double secs = opt.sz.reloc_secs;
    struct rl_result res[2][RL_NCASES];

    db_path(churned, sizeof churned, "reloclat", 1);
    db_remove(churned);
    double tc = run_churn(churned, COWVFS_NAME, 1, &check);
    if (tc < 0) {
        fprintf(stderr, "bench: reloc-latency: the churn failed\n");
        failed = 1;
        return -1;
    }
    int64_t churned_bytes = db_bytes(churned);
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < RL_NCASES; c++)
            if (c != RL_FIRST &&
                run_case(churned, (enum rl_case)c, syncs[s], secs, &res[s][c],
                         &res[s][RL_FIRST]) != 0) {
                fprintf(stderr, "bench: reloc-latency: %s, synchronous=%s failed\n",
                        rl_case_name[c], syncs[s]);
                db_remove(churned);
                failed = 1;
                return -1;
            }
    db_remove(churned);

    printf("reloc-latency: a writer on its own connection commits single-row INSERTs\n"
           "(WAL) back to back on a copy of a churned %s container (churn's work on\n"
           "%lld MiB, %.1f MiB left, %.2f s); cases: none (relocator off), balance\n"
           "(PRAGMA cow_balance again and again on another connection), relocator (the\n"
           "background relocator's defaults); commit times in us, p99 against none,\n"
           "and the commits over %.0f ms (target: none; p99 within 2x of none)\n\n",
           COWVFS_NAME, (long long)opt.sz.churn_mib, churned_bytes / 1048576.0, tc,
           RL_SLOW_US / 1000.0);
    char h[7][64] = { "commits", "per s", "p50 us", "p99 us", "max us", "p99/none", "" };
    snprintf(h[6], sizeof h[6], ">%.0fms", RL_SLOW_US / 1000.0);
    print_header("case", 18, h, 7);
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < RL_NCASES; c++) {
            const struct rl_result *r = &res[s][c];
            char name[32];
            snprintf(name, sizeof name, "%s %s", rl_case_name[c], syncs[s]);
            printf("%-18s | %*zu | %*.0f | %*.0f | %*.0f | %*.0f | %*.2f | %*zu\n", name,
                   colw[0], r->commits, colw[1], r->secs > 0 ? (double)r->commits / r->secs : 0.0,
                   colw[2], r->p50, colw[3], r->p99, colw[4], r->max, colw[5],
                   res[s][RL_NONE].p99 > 0 ? r->p99 / res[s][RL_NONE].p99 : 0.0, colw[6],
                   r->slow);
        }
    printf("\n");
    for (int s = 0; s < 2; s++) {
        const struct rl_result *b = &res[s][RL_BALANCE], *g = &res[s][RL_RELOCATOR];
        printf("synchronous=%s: balance: %d in %.2f s (the first %.3f s), %.1f MiB moved, "
               "%lld flushes (none: %lld);\n  relocator: %.1f MiB moved, %lld flushes, "
               "counted over %.1f s\n",
               syncs[s], b->balances, b->bal_total, b->bal_first, b->moved / 1048576.0,
               b->flushes, res[s][RL_NONE].flushes, g->moved / 1048576.0, g->flushes, g->secs);
    }
    return 0;
}
