/*
 * conc.c - the conc workload: concurrent connections on one database,
 * transactions per second and point reads per second, unix against cow in
 * the same run (issue 15: cow's concurrent writers were 0.36x unix's).
 *
 * One database per VFS (conc-a.db, conc-b.db), WAL mode, a table of
 * CONC_ROWS rows (an integer key, a counter v, 50..100 bytes of text)
 * filled once, untimed.  Then each cell runs on both VFSs, unix first: N
 * workers (N = 1, 2, 4, 8) start together and run for opt.sz.conc_secs
 * (1.2 s, --conc-secs; --quick 0.3 s).  Half of them, at least one, are
 * writers, the others readers:
 *
 *   writer   transactions back to back, each one of
 *              NORMAL  a single-row UPDATE (v = v + 1 of a random row),
 *                      autocommit, synchronous=NORMAL
 *              FULL    the same with synchronous=FULL
 *              batch   BEGIN IMMEDIATE, CONC_BATCH such UPDATEs, COMMIT,
 *                      synchronous=NORMAL
 *   reader   SELECT v, payload of a random row by primary key, autocommit
 *
 * Every connection has busy_timeout CONC_BUSY_MS; an SQLITE_BUSY that
 * still comes back is counted and the statement retried.  The workers of a
 * cell are either
 *
 *   thr   N threads of this process, each with its own connection, or
 *   proc  N processes: this program run again (posix_spawn of
 *         /proc/self/exe with the hidden sub-command --conc-worker, see
 *         conc_worker_main), one connection each; a pipe starts them all
 *         at once when every one has opened its connection, and each
 *         writes back its counts.  The parent holds no connection to the
 *         database while they run.
 *
 * --conc-cell NAME runs only the cell NAME ("thr 4 NORMAL": to profile it).
 * With COW_BENCH_STATS set in the environment, each process worker prints
 * its counts and, on cow, its PRAGMA cow_stats to stderr.
 *
 * Printed per cell: transactions per second and reads per second on each
 * VFS (the sums over the workers of their counts over their own running
 * time; with --repeat N, the medians of N runs per VFS, A then B, then B
 * then A, and so on: a single cell varies by up to 2x between runs on a
 * busy or small machine) and cow's ratio to unix's (the target: at least
 * CONC_TARGET in every column: "met" or "missed"), and any SQLITE_BUSY
 * retries; with -v also the writers' CPU time per transaction (their
 * threads' CPU clocks) and the share of their running time they were on a
 * CPU (the rest they wait: for the write lock, SQLite's busy handler
 * sleeping between tries, the device, a core).  Nothing is asserted
 * about the times (the machine may be busy); at the end each database must
 * hold CONC_ROWS rows whose v add up to the updates its writers committed,
 * and pass PRAGMA integrity_check, or the bench fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench.h"
#include "cowvfs.h"

extern char **environ;

#define CONC_ROWS 5000       /* rows of the table */
#define CONC_BATCH 100       /* UPDATEs per transaction of the batch kind */
#define CONC_BUSY_MS 10000   /* busy_timeout of every connection */
#define CONC_MAXN 8          /* the most workers of a cell */
#define CONC_TARGET 0.9      /* the target: cow/unix at least this */

enum conc_kind { CONC_NORMAL, CONC_FULL, CONC_BATCHED, CONC_NKINDS };
static const char *const kind_name[CONC_NKINDS] = { "NORMAL", "FULL", "batch" };
static const char *const kind_sync[CONC_NKINDS] = { "NORMAL", "FULL", "NORMAL" };

/* What one worker does. */
struct conc_job {
    const char *path, *vfs;
    int writer;           /* 1: write transactions, 0: point reads */
    enum conc_kind kind;
    uint64_t seed;        /* of the worker's own PRNG */
    double secs;          /* how long it runs */
};

/* What workers counted; summed over a cell's workers. */
struct conc_count {
    long long txns;       /* write transactions committed */
    long long rows;       /* UPDATEs committed (txns x rows per txn) */
    long long reads;      /* point reads */
    long long busy;       /* SQLITE_BUSY after busy_timeout, retried */
    double txn_rate;      /* sum over the workers of txns / their seconds */
    double read_rate;     /* the same of reads */
    double wcpu, wsecs;   /* writers: CPU seconds of their threads, running seconds */
};

/* One worker's connection and statements. */
struct conc_conn {
    sqlite3 *db;
    sqlite3_stmt *upd, *sel, *begin, *commit;
    uint64_t prng;        /* splitmix64 state */
};

static uint64_t conc_rand(struct conc_conn *c)
{
    uint64_t z = (c->prng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Closes C's statements and connection; 0, or -1 (reported). */
static int conc_close(struct conc_conn *c)
{
    sqlite3_finalize(c->upd);
    sqlite3_finalize(c->sel);
    sqlite3_finalize(c->begin);
    sqlite3_finalize(c->commit);
    int rc = c->db ? db_close(c->db) : 0;
    memset(c, 0, sizeof *c);
    return rc;
}

/* Opens J's connection into C: busy_timeout, WAL (checked), J's
 * synchronous, the statements.  0, or -1 (reported; nothing left open). */
static int conc_open(const struct conc_job *j, struct conc_conn *c)
{
    char sql[64];
    memset(c, 0, sizeof *c);
    c->prng = j->seed;
    c->db = db_open(j->path, j->vfs);
    if (!c->db)
        return -1;
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", kind_sync[j->kind]);
    sqlite3_extended_result_codes(c->db, 1); /* errors reported with their extended codes */
    if (sqlite3_busy_timeout(c->db, CONC_BUSY_MS) != SQLITE_OK ||
        set_journal_mode(c->db, "wal") || exec(c->db, sql) ||
        !(c->upd = prepare(c->db, "UPDATE conc SET v = v + 1 WHERE id = ?1")) ||
        !(c->sel = prepare(c->db, "SELECT v, payload FROM conc WHERE id = ?1")) ||
        !(c->begin = prepare(c->db, "BEGIN IMMEDIATE")) ||
        !(c->commit = prepare(c->db, "COMMIT"))) {
        conc_close(c);
        return -1;
    }
    return 0;
}

/* Steps ST to SQLITE_DONE, retrying an SQLITE_BUSY (counted in *BUSY;
 * BUSY NULL: an SQLITE_BUSY is an error); 0, or -1 (reported as WHAT). */
static int step_done(struct conc_conn *c, sqlite3_stmt *st, long long *busy, const char *what)
{
    for (;;) {
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE)
            return 0;
        if ((rc & 0xff) != SQLITE_BUSY || !busy) {
            report(c->db, what, rc);
            return -1;
        }
        (*busy)++;
    }
}

/* One write transaction of kind KIND; counts it in N.  0, or -1. */
static int conc_write(struct conc_conn *c, enum conc_kind kind, struct conc_count *n)
{
    int rows = kind == CONC_BATCHED ? CONC_BATCH : 1;
    if (rows > 1 && step_done(c, c->begin, &n->busy, "conc: BEGIN IMMEDIATE"))
        return -1;
    for (int i = 0; i < rows; i++) {
        sqlite3_bind_int64(c->upd, 1, (int64_t)(conc_rand(c) % CONC_ROWS) + 1);
        /* inside BEGIN IMMEDIATE the write lock is held: no SQLITE_BUSY */
        if (step_done(c, c->upd, rows > 1 ? NULL : &n->busy, "conc: UPDATE")) {
            if (rows > 1)
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    if (rows > 1 && step_done(c, c->commit, &n->busy, "conc: COMMIT")) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    n->txns++;
    n->rows += rows;
    return 0;
}

/* One point read; counts it in N.  0, or -1 (reported). */
static int conc_read(struct conc_conn *c, struct conc_count *n)
{
    int64_t id = (int64_t)(conc_rand(c) % CONC_ROWS) + 1;
    for (;;) {
        sqlite3_bind_int64(c->sel, 1, id);
        int rc = sqlite3_step(c->sel);
        if (rc == SQLITE_ROW && sqlite3_column_bytes(c->sel, 1) < 50) {
            /* every row the fill made has 50..100 bytes of text */
            fprintf(stderr, "bench: conc: row %lld read with %d bytes\n", (long long)id,
                    sqlite3_column_bytes(c->sel, 1));
            sqlite3_reset(c->sel);
            failed = 1;
            return -1;
        }
        if (rc == SQLITE_ROW)
            rc = sqlite3_step(c->sel);
        sqlite3_reset(c->sel);
        if (rc == SQLITE_DONE)
            break;
        if ((rc & 0xff) != SQLITE_BUSY) {
            report(c->db, "conc: point read", rc);
            return -1;
        }
        n->busy++;
    }
    n->reads++;
    return 0;
}

/* The CPU time of the calling thread so far, in seconds. */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs J's work on C for J->secs from now; N gets its counts and rates.
 * 0, or -1 (reported). */
static int conc_run(const struct conc_job *j, struct conc_conn *c, struct conc_count *n)
{
    double t0 = now_s(), t = t0, cpu0 = thread_cpu_s();
    memset(n, 0, sizeof *n);
    while (t - t0 < j->secs) {
        if (j->writer ? conc_write(c, j->kind, n) : conc_read(c, n))
            return -1;
        t = now_s();
    }
    n->txn_rate = (double)n->txns / (t - t0);
    n->read_rate = (double)n->reads / (t - t0);
    if (j->writer) {
        n->wcpu = thread_cpu_s() - cpu0;
        n->wsecs = t - t0;
    }
    return 0;
}

/* Adds the counts of A to S. */
static void conc_add(struct conc_count *s, const struct conc_count *a)
{
    s->txns += a->txns;
    s->rows += a->rows;
    s->reads += a->reads;
    s->busy += a->busy;
    s->txn_rate += a->txn_rate;
    s->read_rate += a->read_rate;
    s->wcpu += a->wcpu;
    s->wsecs += a->wsecs;
}

/* ---- N threads ---- */

struct conc_thread {
    struct conc_job job;
    pthread_barrier_t *start; /* every worker's connection open */
    struct conc_count n;
    int rc;                   /* 0, or -1 (reported) */
};

static void *conc_thread_main(void *arg)
{
    struct conc_thread *w = arg;
    struct conc_conn c;
    /* for perf report --comm */
    pthread_setname_np(pthread_self(), w->job.writer ? "conc-writer" : "conc-reader");
    int rc = conc_open(&w->job, &c);
    /* the barrier is waited at even after a failed open, so that the
     * others do not wait forever; they run and are counted, and the cell
     * fails */
    pthread_barrier_wait(w->start);
    if (rc == 0)
        rc = conc_run(&w->job, &c, &w->n);
    if (conc_close(&c) != 0)
        rc = -1;
    w->rc = rc;
    return NULL;
}

/* The N jobs of J (J[0..N)) on N threads; their counts summed into S.
 * 0, or -1 (reported). */
static int conc_threads(const struct conc_job *j, int n, struct conc_count *s)
{
    struct conc_thread w[CONC_MAXN];
    pthread_t th[CONC_MAXN];
    pthread_barrier_t start;
    int started = 0, rc = 0;

    if (pthread_barrier_init(&start, NULL, (unsigned)n) != 0) {
        fprintf(stderr, "bench: conc: pthread_barrier_init failed\n");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].job = j[i];
        w[i].start = &start;
        if (pthread_create(&th[i], NULL, conc_thread_main, &w[i]) != 0)
            break;
        started++;
    }
    if (started < n) {
        /* the started ones wait at the barrier for n: they cannot be
         * released; this is a failure of the machine, not of a VFS */
        fprintf(stderr, "bench: conc: cannot start %d threads\n", n);
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (w[i].rc != 0)
            rc = -1;
        conc_add(s, &w[i].n);
    }
    pthread_barrier_destroy(&start);
    return rc;
}

/* ---- N processes ---- */

/* sqlite3_log's callback in a worker process: errors to stderr (the cow
 * VFS logs each one with the operation that failed), notices and
 * warnings not. */
static void conc_log(void *arg, int code, const char *msg)
{
    (void)arg;
    if ((code & 0xff) != SQLITE_NOTICE && (code & 0xff) != SQLITE_WARNING)
        fprintf(stderr, "bench: conc worker %d: sqlite3_log (%d): %s\n", (int)getpid(), code,
                msg);
}

/*
 * The hidden sub-command: bench --conc-worker PATH VFS WRITER KIND SEED
 * SECS (ARGV[0..6) here).  Registers cow (with sqlite3_log's errors going
 * to stderr), opens the connection, writes "ready" to stdout,
 * waits for stdin to close (the parent's start), runs the job, writes
 * "TXNS ROWS READS BUSY TXN_RATE READ_RATE WCPU WSECS" (struct conc_count)
 * and closes.  Returns the exit
 * status: 0, 1 on an error (reported on stderr), 2 on usage.
 */
int conc_worker_main(int argc, char **argv)
{
    struct conc_job j;
    struct conc_conn c;
    struct conc_count n;
    char b;

    if (argc != 6) {
        fprintf(stderr, "bench: --conc-worker PATH VFS WRITER KIND SEED SECS\n");
        return 2;
    }
    j.path = argv[0];
    j.vfs = argv[1];
    j.writer = atoi(argv[2]);
    j.kind = (enum conc_kind)atoi(argv[3]);
    j.seed = strtoull(argv[4], NULL, 10);
    j.secs = atof(argv[5]);
    if (j.kind < 0 || j.kind >= CONC_NKINDS || j.secs <= 0) {
        fprintf(stderr, "bench: --conc-worker: bad KIND or SECS\n");
        return 2;
    }
    sqlite3_config(SQLITE_CONFIG_LOG, conc_log, NULL);
    int rc = cowvfs_register(0);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "bench: cowvfs_register: %s\n", sqlite3_errstr(rc));
        return 1;
    }
    if (conc_open(&j, &c) != 0)
        return 1;
    printf("ready\n");
    fflush(stdout);
    while (read(0, &b, 1) > 0)
        ;
    rc = conc_run(&j, &c, &n);
    if (getenv("COW_BENCH_STATS"))
        fprintf(stderr, "worker %d %s %s: txns %lld reads %lld busy %lld\n", (int)getpid(), j.vfs,
                j.writer ? "w" : "r", n.txns, n.reads, n.busy);
    if (getenv("COW_BENCH_STATS") && strcmp(j.vfs, "cow") == 0) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(c.db, "PRAGMA cow_stats", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                fprintf(stderr, "worker %d (%s): %s\n", (int)getpid(), j.writer ? "w" : "r",
                        (const char *)sqlite3_column_text(st, 0));
            sqlite3_finalize(st);
        }
    }
    if (conc_close(&c) != 0)
        rc = -1;
    if (rc != 0)
        return 1;
    printf("%lld %lld %lld %lld %.6f %.6f %.6f %.6f\n", n.txns, n.rows, n.reads, n.busy,
           n.txn_rate, n.read_rate, n.wcpu, n.wsecs);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Starts one worker process for J; its stdin is GO (the start pipe's read
 * end), its stdout a new pipe whose read end goes to *OUT.  *PID its pid.
 * 0, or -1 (reported). */
static int conc_spawn(const struct conc_job *j, int go, pid_t *pid, FILE **out)
{
    char writer[8], kind[8], seed[32], secs[32];
    char *argv[] = { "bench", "--conc-worker", (char *)j->path, (char *)j->vfs,
                     writer, kind, seed, secs, NULL };
    posix_spawn_file_actions_t fa;
    int p[2];

    snprintf(writer, sizeof writer, "%d", j->writer);
    snprintf(kind, sizeof kind, "%d", (int)j->kind);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)j->seed);
    snprintf(secs, sizeof secs, "%.6f", j->secs);
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "bench: conc: pipe: %s\n", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, go, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    int rc = posix_spawn(pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        fprintf(stderr, "bench: conc: posix_spawn: %s\n", strerror(rc));
        close(p[0]);
        return -1;
    }
    *out = fdopen(p[0], "r");
    if (!*out) {
        close(p[0]);
        return -1; /* the worker sees its stdout closed and fails */
    }
    return 0;
}

/* The N jobs of J on N processes (see the top); their counts summed into
 * S.  0, or -1 (reported). */
static int conc_procs(const struct conc_job *j, int n, struct conc_count *s)
{
    pid_t pid[CONC_MAXN];
    FILE *out[CONC_MAXN];
    char line[256];
    int go[2], started = 0, rc = 0;

    if (pipe2(go, O_CLOEXEC) != 0) {
        fprintf(stderr, "bench: conc: pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL);
    for (; started < n; started++)
        if (conc_spawn(&j[started], go[0], &pid[started], &out[started]) != 0) {
            rc = -1;
            break;
        }
    close(go[0]);
    for (int i = 0; i < started && rc == 0; i++)
        if (!fgets(line, sizeof line, out[i]) || strcmp(line, "ready\n") != 0) {
            fprintf(stderr, "bench: conc: worker %d did not start\n", i);
            rc = -1;
        }
    close(go[1]); /* the start (or, after a failure, the end) */
    for (int i = 0; i < started; i++) {
        struct conc_count c;
        int st;
        if (rc != 0) {
            kill(pid[i], SIGKILL);
        } else if (!fgets(line, sizeof line, out[i]) ||
                   sscanf(line, "%lld %lld %lld %lld %lf %lf %lf %lf", &c.txns, &c.rows,
                          &c.reads, &c.busy, &c.txn_rate, &c.read_rate, &c.wcpu,
                          &c.wsecs) != 8) {
            fprintf(stderr, "bench: conc: worker %d gave no counts\n", i);
            rc = -1;
        } else {
            conc_add(s, &c);
        }
        fclose(out[i]);
        if (waitpid(pid[i], &st, 0) != pid[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (rc == 0)
                fprintf(stderr, "bench: conc: worker %d failed\n", i);
            rc = -1;
        }
    }
    if (rc)
        failed = 1;
    return rc;
}

/* ---- the table ---- */

/* Fills PATH on VFS with the table conc (CONC_ROWS rows, WAL mode).  0, or
 * -1 (reported). */
static int conc_fill(const char *path, const char *vfs)
{
    sqlite3_stmt *ins = NULL;
    char buf[128];
    int rc = -1;

    db_remove(path);
    prng_reset();
    sqlite3 *db = db_open(path, vfs);
    if (!db)
        return -1;
    if (set_journal_mode(db, "wal") ||
        exec(db, "CREATE TABLE conc(id INTEGER PRIMARY KEY, v INTEGER NOT NULL, "
                 "payload TEXT NOT NULL)") ||
        exec(db, "BEGIN") ||
        !(ins = prepare(db, "INSERT INTO conc(id, v, payload) VALUES(?1, 0, ?2)")))
        goto out;
    for (int64_t i = 1; i <= CONC_ROWS; i++) {
        int len = make_payload(buf);
        sqlite3_bind_int64(ins, 1, i);
        sqlite3_bind_text(ins, 2, buf, len, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            report(db, "conc: fill", sqlite3_errcode(db));
            goto out;
        }
        sqlite3_reset(ins);
    }
    rc = exec(db, "COMMIT");
out:
    sqlite3_finalize(ins);
    if (db_close(db) != 0)
        rc = -1;
    return rc;
}

/* Checks PATH on VFS at the end: CONC_ROWS rows, their v adding up to
 * ROWS (the UPDATEs committed), PRAGMA integrity_check ok.  0, or -1
 * (reported). */
static int conc_verify(const char *path, const char *vfs, long long rows)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    sqlite3 *db = db_open(path, vfs);
    if (!db)
        return -1;
    st = prepare(db, "PRAGMA integrity_check");
    if (!st)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        fprintf(stderr, "bench: conc: %s: integrity_check: %s\n", vfs,
                sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0)
                                           : sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_finalize(st);
    st = prepare(db, "SELECT count(*), sum(v) FROM conc");
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        goto out;
    long long count = sqlite3_column_int64(st, 0), sum = sqlite3_column_int64(st, 1);
    if (count != CONC_ROWS || sum != rows) {
        fprintf(stderr, "bench: conc: %s: %lld rows whose v add up to %lld; expected %d "
                        "rows and %lld (the UPDATEs committed)\n",
                vfs, count, sum, CONC_ROWS, rows);
        goto out;
    }
    printf("%s: %d rows, v adds up to the %lld UPDATEs committed, integrity_check ok\n",
           vfs, CONC_ROWS, rows);
    rc = 0;
out:
    sqlite3_finalize(st);
    if (db_close(db) != 0)
        rc = -1;
    if (rc)
        failed = 1;
    return rc;
}

/* A ratio cell: B/A, or "-" when A did none. */
static void ratio_str(char *buf, size_t n, double a, double b)
{
    if (a > 0)
        snprintf(buf, n, "%.2f", b / a);
    else
        snprintf(buf, n, "-");
}

/* Prints the row of cell NAME: the counts S of each side (VFS), and the
 * ratios; with -v the writers' CPU time per transaction. */
static void conc_row(const char *name, const char *const vfs[2], const struct conc_count s[2])
{
    char c[6][32];
    for (int w = 0; w < 2; w++) {
        snprintf(c[w], sizeof c[w], "%.0f", s[w].txn_rate);
        /* N = 1: a writer alone, no reader */
        snprintf(c[3 + w], sizeof c[3 + w], s[w].reads ? "%.0f" : "-", s[w].read_rate);
    }
    ratio_str(c[2], sizeof c[2], s[0].txn_rate, s[1].txn_rate);
    ratio_str(c[5], sizeof c[5], s[0].read_rate, s[1].read_rate);
    int met = s[1].txn_rate >= CONC_TARGET * s[0].txn_rate &&
              s[1].read_rate >= CONC_TARGET * s[0].read_rate;
    printf("%-14s", name);
    for (int i = 0; i < 6; i++)
        printf(" | %*s", colw[i], c[i]);
    printf(" | %*s\n", colw[6], met ? "met" : "missed");
    if (opt.verbose)
        for (int w = 0; w < 2; w++)
            if (s[w].txns)
                printf("  %s writers: %.1f us CPU per transaction, on a CPU %.0f%% of "
                       "their time\n", vfs[w],
                       s[w].wcpu / (double)s[w].txns * 1e6,
                       s[w].wsecs > 0 ? 100 * s[w].wcpu / s[w].wsecs : 0.0);
    fflush(stdout);
}

int conc_table(const char *const vfs[2])
{
    static const int ns[] = { 1, 2, 4, 8 };
    char path[2][4200];
    long long rows[2] = { 0, 0 }, busy[2] = { 0, 0 };
    int cell = 0, rc = -1;
    double *txn_rates[2] = { NULL, NULL }, *read_rates[2] = { NULL, NULL };

    for (int w = 0; w < 2; w++) {
        txn_rates[w] = calloc((size_t)opt.repeat, sizeof(double));
        read_rates[w] = calloc((size_t)opt.repeat, sizeof(double));
        if (!txn_rates[w] || !read_rates[w]) {
            fprintf(stderr, "bench: conc: out of memory\n");
            failed = 1;
            goto fail;
        }
    }

    for (int w = 0; w < 2; w++) {
        db_path(path[w], sizeof path[w], "conc", w);
        if (conc_fill(path[w], vfs[w]) != 0) {
            fprintf(stderr, "bench: conc: filling the table on %s failed\n", vfs[w]);
            failed = 1;
            goto fail;
        }
    }
    printf("conc: N workers on one database (WAL, busy_timeout %d ms, %d rows), %g s a "
           "cell;\nhalf of them (at least one) commit write transactions, the others read "
           "rows by\nprimary key: NORMAL, FULL: one UPDATE per transaction (synchronous=NORMAL,"
           "\nFULL); batch: %d UPDATEs per transaction (NORMAL); thr: N threads, proc: N\n"
           "processes; target: %s at least %.1fx %s in both columns%s\n\n",
           CONC_BUSY_MS, CONC_ROWS, opt.sz.conc_secs, CONC_BATCH, vfs[1], CONC_TARGET, vfs[0],
           opt.repeat > 1 ? ";\nthe medians of --repeat runs of each cell, in alternating order"
                          : "");
    char h[7][64];
    snprintf(h[0], sizeof h[0], "%s txn/s", vfs[0]);
    snprintf(h[1], sizeof h[1], "%s txn/s", vfs[1]);
    snprintf(h[2], sizeof h[2], "%s/%s", vfs[1], vfs[0]);
    snprintf(h[3], sizeof h[3], "%s reads/s", vfs[0]);
    snprintf(h[4], sizeof h[4], "%s reads/s", vfs[1]);
    snprintf(h[5], sizeof h[5], "%s/%s", vfs[1], vfs[0]);
    snprintf(h[6], sizeof h[6], "%.1fx", CONC_TARGET);
    print_header("cell", 14, h, 7);
    for (int k = 0; k < CONC_NKINDS; k++)
        for (int procs = 0; procs < 2; procs++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++, cell++) {
                int n = ns[ni];
                struct conc_count s[2];
                char name[32];
                snprintf(name, sizeof name, "%s %d %s", procs ? "proc" : "thr", n,
                         kind_name[k]);
                if (opt.conc_cell && strcmp(opt.conc_cell, name) != 0)
                    continue;
                memset(s, 0, sizeof s);
                /* --repeat N: the cell N times, A then B, then B then A,
                 * and so on; the medians of the rates, the sums of the
                 * rest */
                for (int r = 0; r < opt.repeat; r++)
                    for (int o = 0; o < 2; o++) {
                        int w = r % 2 ? 1 - o : o;
                        struct conc_job j[CONC_MAXN];
                        struct conc_count one;
                        uint64_t seed =
                            0x636f6e63ULL * 1000 + (uint64_t)(cell * opt.repeat + r) * 16;
                        for (int i = 0; i < n; i++)
                            j[i] = (struct conc_job){ path[w], vfs[w], i < (n + 1) / 2,
                                                      (enum conc_kind)k, seed + (uint64_t)i,
                                                      opt.sz.conc_secs };
                        memset(&one, 0, sizeof one);
                        if ((procs ? conc_procs : conc_threads)(j, n, &one) != 0) {
                            fprintf(stderr, "bench: conc: %s %d %s failed on %s\n",
                                    procs ? "proc" : "thr", n, kind_name[k], vfs[w]);
                            failed = 1;
                            goto fail;
                        }
                        txn_rates[w][r] = one.txn_rate;
                        read_rates[w][r] = one.read_rate;
                        s[w].txns += one.txns;
                        s[w].reads += one.reads;
                        s[w].wcpu += one.wcpu;
                        s[w].wsecs += one.wsecs;
                        rows[w] += one.rows;
                        busy[w] += one.busy;
                    }
                for (int w = 0; w < 2; w++) {
                    s[w].txn_rate = median(txn_rates[w], opt.repeat);
                    s[w].read_rate = median(read_rates[w], opt.repeat);
                }
                conc_row(name, vfs, s);
                fflush(stdout);
            }
    printf("\nSQLITE_BUSY after the busy_timeout, retried: %s %lld, %s %lld\n", vfs[0],
           busy[0], vfs[1], busy[1]);
    for (int w = 0; w < 2; w++)
        if (conc_verify(path[w], vfs[w], rows[w]) != 0)
            goto fail;
    rc = 0;
fail:
    for (int w = 0; w < 2; w++) {
        free(txn_rates[w]);
        free(read_rates[w]);
    }
    return rc;
}
