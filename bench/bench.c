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
 *   updates     10,000 autocommit single-row UPDATEs of random rows of bulk's
 *               table, journal_mode=WAL, synchronous=NORMAL (a large
 *               database; see run_updates)
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
 *   churn       a table of 64 MiB (--size) churned with a snapshot held
 *               (see churn.c): the files' sizes and allocated bytes after
 *               it, in a table of its own
 *   reloc-latency
 *               cow only: a writer's commit times on a churned container
 *               (churn's work) without relocation, during PRAGMA
 *               cow_balance on another connection, and with the
 *               background relocator (see reloclat.c), in synchronous
 *               NORMAL and FULL
 *   conc        concurrent connections on one database (see conc.c): N
 *               threads and N processes (1, 2, 4, 8), half of them
 *               committing small write transactions (synchronous NORMAL,
 *               FULL, and batches of 100 UPDATEs), the others reading rows
 *               by primary key, each cell 1.2 s (--quick 0.3): transactions
 *               and reads per second, in a table of its own; both
 *               databases are checked at the end
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
 *
 * Files: bench.c (options, main), harness.c (the workload list, medians,
 * the main table), workloads.c, commits.c with countvfs.c, snapshot.c,
 * churn.c, reloclat.c, conc.c,
 * util.c (PRNG, SQL helpers, paths, the temporary directory); bench.h
 * what they share.
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

/* ---- sizes, options and state ---- */

static const struct sizes full_sizes = { 1000000, 10000, 100000, 2000, { 1, 64, 1024 }, 64, 5.0, 1.2 };
static const struct sizes quick_sizes = { 20000, 500, 5000, 200, { 1, 8, 64 }, 8, 1.5, 0.3 };



struct opts opt;
char workdir[4096]; /* the mkdtemp directory */
int failed;         /* an error or a mismatch was seen */
int colw[8];        /* widths of the table's columns after the first */


/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bench [--quick] [--repeat N] [--only NAME[,NAME...]]\n"
        "             [--skip NAME[,NAME...]] [--vfs-a NAME] [--vfs-b NAME]\n"
        "             [--size MIB] [--conc-secs S] [--conc-cell NAME]\n"
        "             [--dir DIR] [--keep] [-v]\n"
        "  --quick      small sizes for a smoke test (%lld rows, %lld txns, %lld reads,\n"
        "               %lld commits, snapshot databases of %lld, %lld and %lld MiB,\n"
        "               churn of %lld MiB, reloc-latency's writer %.1f s a case,\n"
        "               conc's cells %.1f s each)\n"
        "  --repeat N   run each workload N times per VFS, alternately; print medians\n"
        "               (snapshot, churn and reloc-latency have fixed counts of their own)\n"
        "  --only LIST  workloads: bulk, txn-wal, txn-delete, reads, aggregate, updates,\n"
        "               commits, snapshot, churn, reloc-latency, conc\n"
        "  --size MIB   the table churn and reloc-latency fill (default %lld)\n"
        "  --conc-secs S  each cell of conc runs S seconds (default %.1f)\n"
        "  --conc-cell NAME  only that cell of conc (e.g. \"thr 4 NORMAL\")\n"
        "  --skip LIST  workloads not to run (e.g. --skip snapshot)\n"
        "  --vfs-a NAME the reference VFS (default unix)\n"
        "  --vfs-b NAME the VFS measured against it (default cow)\n"
        "  --dir DIR    make the temporary directory in DIR (default build/,\n"
        "               else $TMPDIR, /var/tmp, .)\n"
        "  --keep       keep the databases\n",
        (long long)quick_sizes.bulk_rows, (long long)quick_sizes.txns,
        (long long)quick_sizes.reads, (long long)quick_sizes.commits,
        (long long)quick_sizes.snap_mib[0], (long long)quick_sizes.snap_mib[1],
        (long long)quick_sizes.snap_mib[2], (long long)quick_sizes.churn_mib,
        quick_sizes.reloc_secs, quick_sizes.conc_secs, (long long)full_sizes.churn_mib,
        full_sizes.conc_secs);
}

/* The options that take a name or a list: where each one's value goes. */
static const char **string_opt(const char *a)
{
    static const struct {
        const char *name;
        const char **val;
    } opts[] = {
        { "--only", &opt.only },   { "--skip", &opt.skip }, { "--vfs-a", &opt.vfs_a },
        { "--vfs-b", &opt.vfs_b }, { "--dir", &opt.dir }, { "--conc-cell", &opt.conc_cell },
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(a, opts[i].name) == 0)
            return opts[i].val;
    return NULL;
}

static int parse_args(int argc, char **argv)
{
    long size_mib = 0;
    double conc_secs = 0;
    opt.sz = full_sizes;
    opt.repeat = 1;
    opt.vfs_a = "unix";
    opt.vfs_b = COWVFS_NAME;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = string_opt(a);
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
        } else if (val && strcmp(a, "--size") == 0) {
            char *end;
            size_mib = strtol(val, &end, 10);
            if (*end || size_mib < 1 || size_mib > 65536) {
                fprintf(stderr, "bench: bad --size %s (MiB, 1..65536)\n", val);
                return -1;
            }
            i++;
        } else if (val && strcmp(a, "--conc-secs") == 0) {
            char *end;
            conc_secs = strtod(val, &end);
            if (*end || !(conc_secs >= 0.05 && conc_secs <= 3600)) {
                fprintf(stderr, "bench: bad --conc-secs %s (0.05..3600)\n", val);
                return -1;
            }
            i++;
        } else if (val && dst) {
            *dst = val;
            i++;
        } else {
            fprintf(stderr, "bench: bad argument %s\n", a);
            return -1;
        }
    }
    if (size_mib)
        opt.sz.churn_mib = size_mib;
    if (conc_secs > 0)
        opt.sz.conc_secs = conc_secs;
    for (int l = 0; l < 2; l++) {
        /* Every name in --only and --skip must be a workload. */
        const char *p = l ? opt.skip : opt.only;
        while (p && *p) {
            size_t len = strcspn(p, ",");
            int found = (len == strlen(COMMITS) && strncmp(p, COMMITS, len) == 0) ||
                        (len == strlen(SNAPSHOT) && strncmp(p, SNAPSHOT, len) == 0) ||
                        (len == strlen(CHURN) && strncmp(p, CHURN, len) == 0) ||
                        (len == strlen(RELOCLAT) && strncmp(p, RELOCLAT, len) == 0) ||
                        (len == strlen(CONC) && strncmp(p, CONC, len) == 0);
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

    if (argc > 1 && strcmp(argv[1], "--conc-worker") == 0)
        return conc_worker_main(argc - 2, argv + 2); /* conc.c: no options, no table */
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
        printf("times: median seconds, open to close; sizes: the database's "
               "files on disk after the run\n\n");
        print_vs_header("workload", 11, vfs, "s", "MiB");
    }

    times[0] = calloc((size_t)opt.repeat, sizeof(double));
    times[1] = calloc((size_t)opt.repeat, sizeof(double));
    if (!times[0] || !times[1]) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }

    /* sizes of the main table's workloads: unix's, cow's, cow's after a
     * balance (on a copy, untimed) */
    int64_t sizes[NWORKLOADS][3];
    int nsized = 0;
    const char *sized_name[NWORKLOADS];
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
        int c = strcmp(vfs[0], COWVFS_NAME) == 0 ? 0 : 1;
        char cpath[4200];
        db_path(cpath, sizeof cpath, wl->stem, c);
        sized_name[nsized] = wl->name;
        sizes[nsized][0] = bytes[1 - c];
        sizes[nsized][1] = bytes[c];
        sizes[nsized][2] = balanced_bytes(cpath);
        nsized++;
    }
    if (nsized && !failed) {
        int c = strcmp(vfs[0], COWVFS_NAME) == 0 ? 0 : 1;
        char h[5][64];
        printf("\nsizes: the files after each run, and %s's container after PRAGMA cow_balance\n"
               "(on a copy, untimed); target: within 1.25x %s + 1 MiB\n\n",
               COWVFS_NAME, vfs[1 - c]);
        snprintf(h[0], sizeof h[0], "%s MiB", vfs[1 - c]);
        snprintf(h[1], sizeof h[1], "%s MiB", COWVFS_NAME);
        snprintf(h[2], sizeof h[2], "balanced");
        snprintf(h[3], sizeof h[3], "bal/%s", vfs[1 - c]);
        snprintf(h[4], sizeof h[4], "target");
        print_header("workload", 11, h, 5);
        for (int i = 0; i < nsized; i++) {
            double u = sizes[i][0] / 1048576.0, b = sizes[i][2] / 1048576.0;
            printf("%-11s | %*.1f | %*.1f | %*.1f | %*.2f | %*s\n", sized_name[i], colw[0], u,
                   colw[1], sizes[i][1] / 1048576.0, colw[2], b, colw[3], u > 0 ? b / u : 0.0,
                   colw[4], sizes[i][2] < 0 ? "-" : b <= 1.25 * u + 1 ? "met" : "missed");
        }
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
    if (!failed && selected(CHURN)) {
        if (timed || selected(COMMITS) || selected(SNAPSHOT))
            printf("\n");
        churn_table(vfs);
    }
    if (!failed && selected(RELOCLAT)) {
        if (timed || selected(COMMITS) || selected(SNAPSHOT) || selected(CHURN))
            printf("\n");
        reloclat_table();
    }
    if (!failed && selected(CONC)) {
        if (timed || selected(COMMITS) || selected(SNAPSHOT) || selected(CHURN) ||
            selected(RELOCLAT))
            printf("\n");
        conc_table(vfs);
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
