/*
 * bench.h - what the files of the benchmark (build/bench) share; bench.c's
 * top comment says what it measures and names the file of each part.
 */
#ifndef COW_BENCH_H
#define COW_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sqlite3.h>

struct sizes {
    int64_t bulk_rows;  /* rows inserted by bulk (and read by reads/aggregate) */
    int64_t txns;       /* autocommit inserts of txn-wal and txn-delete */
    int64_t reads;      /* point reads of reads */
    int64_t commits;    /* single-row transactions of commits, per mode */
    int64_t snap_mib[3]; /* database sizes of snapshot, MiB */
    int64_t churn_mib;  /* the table churn fills, MiB (--size) */
    double reloc_secs;  /* reloc-latency: the writer's time per case, seconds */
    double conc_secs;   /* conc: each cell's running time, seconds */
};

struct opts {
    struct sizes sz;
    int repeat;
    const char *only;   /* comma-separated workload names, or NULL for all */
    const char *skip;   /* comma-separated workload names not to run, or NULL */
    const char *vfs_a;
    const char *vfs_b;
    const char *dir;    /* parent of the temporary directory, or NULL */
    const char *conc_cell; /* conc: the one cell to run ("thr 4 NORMAL"), or NULL */
    int keep;
    int verbose;
};

struct workload {
    const char *name;
    const char *stem;   /* database file stem: reads/aggregate use bulk's */
    int creates;        /* removes the database before each run */
    double (*run)(const char *path, const char *vfs, uint64_t *check);
};
#define NWORKLOADS 6
/* The workloads with tables of their own (commits_table, snapshot_table),
 * run after the others, in this order. */
#define COMMITS "commits"
#define SNAPSHOT "snapshot"
#define CHURN "churn"
#define RELOCLAT "reloc-latency"
#define CONC "conc"

/* ---- util.c ---- */
/* Sum of st_size of PATH and its -wal, -journal, -shm companions. */
int64_t db_bytes(const char *path);
/* Closes DB; 0, or -1 (reported). */
int db_close(sqlite3 *db);
/* Opens PATH on VFS, creating it; returns NULL (reported) on failure. */
sqlite3 *db_open(const char *path, const char *vfs);
/* The database path of workload file STEM on VFS number WHICH (0 = A, 1 = B). */
void db_path(char *buf, size_t n, const char *stem, int which);
/* Removes PATH and its -wal, -journal, -shm companions (those there are). */
void db_remove(const char *path);
/* Runs SQL on DB; 0, or -1 (reported; sets failed). */
int exec(sqlite3 *db, const char *sql);
/* Fills BUF with a random lowercase text of 50..100 bytes; returns the length. */
int make_payload(char *buf);
/* Makes workdir, the run's temporary directory (see bench.c); 0 or -1. */
int make_workdir(void);
/* CLOCK_MONOTONIC, in seconds. */
double now_s(void);
/* A prepared statement of SQL, or NULL (reported). */
sqlite3_stmt *prepare(sqlite3 *db, const char *sql);
/* The next value of the PRNG (splitmix64, from a fixed seed). */
uint64_t prng_next(void);
/* A uniform integer in [lo, hi]. */
int64_t prng_range(int64_t lo, int64_t hi);
/* Resets the PRNG to the fixed seed: every run draws the same values. */
void prng_reset(void);
/* Removes workdir and the files in it. */
void remove_workdir(void);
/* Prints WHAT failed with RC (DB's message if DB) and sets failed. */
void report(sqlite3 *db, const char *what, int rc);
/* Checks that PRAGMA journal_mode took: a VFS may refuse WAL. */
int set_journal_mode(sqlite3 *db, const char *mode);
/* Inserts rows 1..N into t through INS (bound to ?1 id, ?2 payload), each
 * with a make_payload() text, resetting INS after each; 0, or -1 (reported
 * as WHAT's failure). */
int insert_rows(sqlite3 *db, sqlite3_stmt *ins, int64_t n, const char *what);

/* ---- workloads.c ---- */
/*
 * Opens PATH on VFS as the autocommit workloads (txn-wal, txn-delete,
 * commits) need it: journal mode MODE, synchronous=FULL, the table t made,
 * *INS its insert statement (?1 id, ?2 payload; the caller finalizes it).
 * Returns the connection, or NULL (reported; nothing left open).
 */
sqlite3 *open_autocommit_db(const char *path, const char *vfs, const char *mode,
                            sqlite3_stmt **ins);
/* Each workload runs on database PATH through VFS, sets *CHECK to a
 * checksum of what it read (or 0), and returns its time in seconds, or a
 * negative value on an error (reported). */
double run_aggregate(const char *path, const char *vfs, uint64_t *check);
double run_bulk(const char *path, const char *vfs, uint64_t *check);
double run_reads(const char *path, const char *vfs, uint64_t *check);
double run_updates(const char *path, const char *vfs, uint64_t *check);
double run_txn_delete(const char *path, const char *vfs, uint64_t *check);
double run_txn_wal(const char *path, const char *vfs, uint64_t *check);

/* ---- countvfs.c ---- */
/* A counting VFS over the VFS NAME (see countvfs.c). */
struct countvfs {
    sqlite3_vfs base;      /* "NAME-count"; pAppData points here */
    sqlite3_vfs *real;     /* NAME */
    int dirsync;           /* NAME is unix: count its directory syncs */
    uint64_t syncs;        /* xSync calls */
    uint64_t dirsyncs;     /* directory fsyncs unixSync added to them */
    char name[80];
};
extern struct countvfs countvfs[2]; /* one per side of the bench */
/*
 * Registers "REAL-count" in countvfs[WHICH] (once); returns its name, or
 * NULL if REAL is not registered.  The wrapper has REAL's iVersion (at most
 * 3), so SQLite calls only the methods REAL has.
 */
const char *countvfs_register(int which, const char *real_name);

/* ---- churn.c ---- */
/*
 * The churn workload (see churn.c) on both VFSs, once each; prints its
 * table: the files' sizes and allocated bytes after it, their ratio, the
 * times.  Returns 0 or -1 (reported).
 */
int churn_table(const char *const vfs[2]);
/* The size in bytes of a copy of the cow container PATH after PRAGMA
 * cow_balance and close (the copy is removed), or -1 (reported). */
int64_t balanced_bytes(const char *path);
/* Opens PATH on cow with URI parameters PARAMS ("reloc=0"; "" for none),
 * creating it; the connection, or NULL (reported). */
sqlite3 *cow_open(const char *path, const char *params);
/* Copies file FROM to TO (a container, to work on copies of it); 0, or -1
 * (not reported). */
int copy_file(const char *from, const char *to);
/* One churn run (see churn.c) on database PATH through VFS (COW: VFS is
 * cow, which takes a snapshot and runs with reloc=0); *CHECK gets the rows
 * left and their bytes.  Returns the seconds it took, or -1 (reported). */
double run_churn(const char *path, const char *vfs, int cow, uint64_t *check);

/* ---- reloclat.c ---- */
/*
 * The reloc-latency workload (see reloclat.c), cow only: a writer's commit
 * latencies on a churned container without relocation, during PRAGMA
 * cow_balance on another connection, and with the background relocator;
 * prints its table.  Returns 0 or -1 (reported).
 */
int reloclat_table(void);

/* ---- conc.c ---- */
/*
 * The conc workload (see conc.c) on both VFSs: concurrent writers and
 * readers, N threads and N processes; prints its table, then checks both
 * databases.  Returns 0 or -1 (reported).
 */
int conc_table(const char *const vfs[2]);
/*
 * The hidden sub-command "bench --conc-worker ..." (ARGC, ARGV after it):
 * one worker process of conc's proc cells; the protocol with its parent is
 * at conc.c's conc_procs.  Returns the exit status: 0, 1 on an error
 * (reported on stderr), 2 on usage.
 */
int conc_worker_main(int argc, char **argv);

/* ---- commits.c ---- */
/*
 * The commits workload, on both VFSs, alternately, --repeat times per
 * journal mode; prints its own table: medians of commits per second and of
 * flushes per commit, and the ratio of commits per second B/A (above 1: B
 * commits faster).  A VFS that is not cow runs through its counting VFS.
 * Returns 0 or -1 (reported).
 */
int commits_table(const char *const vfs[2]);

/* ---- harness.c ---- */
/* Makes sure bulk's database exists on both VFSs (untimed) for reads/aggregate. */
int ensure_bulk(int *have_bulk);
/* The median of the N values at V (sorts them). */
double median(double *v, int n);
/* Prints a table's header: the first column FIRST (width W), then the N
 * (at most 8) headings H, each at least 9 wide; their widths go to colw. */
void print_header(const char *first, int w, char h[][64], int n);
/* print_header() of a table comparing VFS[0] and VFS[1]: the first column
 * FIRST (width W), then "A UNIT", "B UNIT", "B/A", "A UNIT2", "B UNIT2". */
void print_vs_header(const char *first, int w, const char *const vfs[2], const char *unit,
                     const char *unit2);
/* Prints a row of the main table: workload NAME, its times on A and B
 * (seconds), their ratio, and the sizes of its databases (bytes). */
void print_row(const char *name, double ta, double tb, int64_t ba, int64_t bb);
/* Whether workload NAME runs (--only, --skip). */
int selected(const char *name);
/* The workloads of the main table, in the order they run. */
extern const struct workload workloads[NWORKLOADS];

/* ---- snapshot.c ---- */
/*
 * The snapshot workload (see above) on both VFSs, one of which must be cow;
 * prints its tables.  Returns 0 or -1 (reported).
 */
int snapshot_table(const char *const vfs[2]);

/* ---- bench.c ---- */
extern int colw[8];        /* widths of the table's columns after the first */
extern int failed;         /* an error or a mismatch was seen */
extern struct opts opt;
extern char workdir[4096]; /* the mkdtemp directory */

#endif
