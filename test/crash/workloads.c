/*
 * workloads.c - the crash simulator's workloads, their model of the
 * database, and the record phase (see driver.c).
 */
#include "crash.h"
#include "format.h" /* COW_ONE_FLUSH_MAX_BLOCKS */

/* ---------------------------------------------------------------------------
 * Workloads and the model of the database
 */

const char *const jm_name[] = {"DELETE", "TRUNCATE", "PERSIST", "WAL"};
const char *const sy_name[] = {"OFF", "NORMAL", "FULL", "EXTRA"};

const struct workload workloads[] = {
    {"delete-extra", JM_DELETE, SY_EXTRA, 4096, "NONE", 2000, 0, 0, 0, 0, 0, ATT_NONE, 0, 0},
    {"delete-full", JM_DELETE, SY_FULL, 4096, "FULL", 16, 0, 0, 0, 0, 0, ATT_NONE, 0, 0},
    {"snap-delete", JM_DELETE, SY_FULL, 2048, "INCREMENTAL", 12, 0, 0, 65536, 12, 0, ATT_NONE, 0, 0},
    {"truncate-full", JM_TRUNCATE, SY_FULL, 1024, "INCREMENTAL", 40, 0, 0, 0, 0, 0, ATT_NONE, 0, 0},
    {"persist-normal", JM_PERSIST, SY_NORMAL, 2048, "NONE", 2000, 0, 0, 0, 0, 0, ATT_NONE, 0, 0},
    {"wal-full", JM_WAL, SY_FULL, 4096, "NONE", 2000, 0, 0, 0, 0, 0, ATT_NONE, 0, 0},
    {"wal-normal", JM_WAL, SY_NORMAL, 1024, "FULL", 24, 0, 0, 0, 0, 0, ATT_NONE, 0, 0},
    {"snap-wal", JM_WAL, SY_NORMAL, 4096, "FULL", 20, 0, 0, 131072, 12, 0, ATT_NONE, 0, 0},
    {"mixed", JM_WAL, SY_FULL, 4096, "INCREMENTAL", 64, 1, 0, 0, 0, 0, ATT_NONE, 0, 0},
    {"wal-big", JM_WAL, SY_FULL, 4096, "FULL", 200, 0, 1, 0, 0, 0, ATT_NONE, 0, 0},
    {"chunk-extra", JM_DELETE, SY_EXTRA, 4096, "FULL", 16, 0, 0, 65536, 0, 0, ATT_NONE, 0, 0},
    {"wal-chunk", JM_WAL, SY_FULL, 2048, "INCREMENTAL", 200, 0, 0, 262144, 0, 0, ATT_NONE, 0, 0},
    {"big-commit", JM_DELETE, SY_FULL, 4096, "FULL", 2000, 0, 0, 0, 0, 25, ATT_NONE, 0, 0},
    {"attach-delete", JM_DELETE, SY_FULL, 4096, "NONE", 16, 0, 0, 0, 0, 0, ATT_COW, 0, 0},
    {"attach-truncate", JM_TRUNCATE, SY_FULL, 1024, "INCREMENTAL", 2000, 0, 0, 0, 0, 0,
     ATT_COW, 0, 0},
    {"attach-persist", JM_PERSIST, SY_FULL, 2048, "FULL", 40, 0, 0, 0, 0, 0, ATT_UNIX, 0, 0},
    {"attach-unix", JM_TRUNCATE, SY_FULL, 4096, "NONE", 2000, 0, 0, 0, 0, 0, ATT_UNIX, 0, 0},
    {"attach-unix-main", JM_TRUNCATE, SY_FULL, 4096, "FULL", 2000, 0, 0, 0, 0, 0,
     ATT_UNIX_MAIN, 0, 0},
    {"reloc-wal", JM_WAL, SY_FULL, 4096, "FULL", 40, 0, 1, 0, 10, 0, ATT_NONE, 30, 0},
    {"reloc-delete", JM_DELETE, SY_FULL, 4096, "INCREMENTAL", 40, 0, 1, 65536, 10, 0, ATT_NONE,
     30, 0},
    {"handoff-wal", JM_WAL, SY_NORMAL, 4096, "FULL", 40, 0, 0, 0, 10, 0, ATT_NONE, 0, 40},
    {"handoff-delete", JM_DELETE, SY_FULL, 2048, "INCREMENTAL", 24, 1, 0, 0, 10, 0, ATT_NONE, 10,
     40},
};
const size_t nworkloads = sizeof workloads / sizeof workloads[0];

/*
 * Whether SQLite promises that a COMMIT that returned survives a power
 * loss: with synchronous=EXTRA always; with FULL except in DELETE mode
 * (the journal's unlink is not synced: a power loss can bring the journal
 * back, which then rolls the transaction back; SQLite documents EXTRA for
 * that); with NORMAL only in PERSIST mode (the zeroed journal header is
 * synced; TRUNCATE's truncation and the WAL are not).
 */
int durable(int jm, int sy)
{
    if (sy >= SY_EXTRA)
        return 1;
    if (sy == SY_FULL)
        return jm != JM_DELETE;
    return jm == JM_PERSIST;
}

/* The checksum a row carries (ck), from its other fields. */
int64_t row_ck(int t, int64_t id, int64_t txn, int64_t k, const void *pad, size_t n)
{
    uint64_t h = hash_bytes(pad, n, 0x5eed);
    h = mix64(h ^ mix64((uint64_t)t ^ ((uint64_t)id << 8)) ^ mix64((uint64_t)txn) ^
              mix64((uint64_t)k + 7));
    return (int64_t)(h & (uint64_t)INT64_MAX);
}

/* The hash of a whole row, as the digest sums it. */
uint64_t row_hash(int t, int64_t id, int64_t txn, int64_t k, const void *pad, size_t n,
                         int64_t ck)
{
    return mix64(hash_bytes(pad, n, (uint64_t)ck) ^ mix64((uint64_t)id * 31 + (uint64_t)t) ^
                 mix64((uint64_t)txn ^ ((uint64_t)k << 1)));
}

/* The tag of row n of table tx. */
int64_t tx_tag(int64_t n)
{
    return (int64_t)(mix64((uint64_t)n ^ 0x7478) & (uint64_t)INT64_MAX);
}

static void snap_take(const struct run *r, struct snap *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < NT; i++) {
        s->exists[i] = (uint8_t)r->t[i].exists;
        s->idx[i] = (uint8_t)r->t[i].idx;
        s->count[i] = r->t[i].n;
        s->sum[i] = r->t[i].sum;
    }
}

int run_fail(struct run *r, const char *fmt, ...)
{
    va_list ap;
    if (r->failed)
        return 1;
    va_start(ap, fmt);
    vsnprintf(r->errbuf, sizeof r->errbuf, fmt, ap);
    va_end(ap);
    r->failed = 1;
    return 1;
}

int exec(struct run *r, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(r->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        run_fail(r, "%s: %s (last log: %s)", sql, err ? err : "?", g.lastlog);
        sqlite3_free(err);
        return 1;
    }
    return 0;
}

int execf(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    int rc = exec(r, sql);
    sqlite3_free(sql);
    return rc;
}

static struct step *step_begin(struct run *r, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct step *step_begin(struct run *r, int kind, const char *fmt, ...)
{
    va_list ap;
    if (r->nsteps == r->capsteps) {
        r->capsteps = r->capsteps ? 2 * r->capsteps : 256;
        r->steps = xrealloc(r->steps, r->capsteps * sizeof *r->steps);
    }
    struct step *s = &r->steps[r->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->txn = -1;
    va_start(ap, fmt);
    vsnprintf(s->what, sizeof s->what, fmt, ap);
    va_end(ap);
    s->start = g.nops;
    return s;
}

static void step_end(struct step *s)
{
    s->ret = g.nops;
}

/* Opens the workload's connection and applies its settings. */
static int wl_open(struct run *r)
{
    /* ATT_UNIX_MAIN: the connection's main database is the unix one, and
     * the cow database is ATTACHed as "c" (aux_attach): statements name
     * its tables unqualified (SQLite finds them there), and what would go
     * to main (CREATE, the pragmas below, VACUUM) names c */
    char *uri = r->w->attach == ATT_UNIX_MAIN
                    ? aux_uri(r)
                    : sqlite3_mprintf("file:%s?vfs=crashshim&commit_interval=0&reloc=0", g.path);
    int rc = sqlite3_open_v2(uri, &r->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    if (rc != SQLITE_OK)
        return run_fail(r, "open: %s (last log: %s)", sqlite3_errmsg(r->db), g.lastlog);
    if (r->w->attach == ATT_UNIX_MAIN && aux_attach(r))
        return 1;
    int chunk = r->w->chunk;
    if (chunk && sqlite3_file_control(r->db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk) != SQLITE_OK)
        return run_fail(r, "SQLITE_FCNTL_CHUNK_SIZE: %s", sqlite3_errmsg(r->db));
    if (execf(r,
              "PRAGMA %spage_size=%d; PRAGMA %sauto_vacuum=%s; PRAGMA journal_mode=%s;"
              "PRAGMA synchronous=%s; PRAGMA %scache_size=%d; PRAGMA temp_store=MEMORY;"
              "PRAGMA wal_autocheckpoint=200; PRAGMA journal_size_limit=%d",
              r->cs, r->w->page_size, r->cs, r->w->vacuum, jm_name[r->jm], sy_name[r->sy], r->cs,
              r->w->cache_size, r->jm == JM_PERSIST ? 65536 : -1))
        return 1;
    return r->w->attach && r->w->attach != ATT_UNIX_MAIN ? aux_attach(r) : 0;
}

static int wl_close(struct run *r)
{
    int rc = sqlite3_close(r->db);
    r->db = NULL;
    if (rc != SQLITE_OK)
        return run_fail(r, "close: %d (last log: %s)", rc, g.lastlog);
    return 0;
}

/* A pad: mostly short, sometimes spilling to overflow pages. */
static size_t pad_len(struct run *r)
{
    uint64_t x = rnd_below(&r->rng, 100);
    size_t n;
    if (x < 8)
        n = 1500 + rnd_below(&r->rng, 5000);
    else if (x < 10)
        n = 0;
    else
        n = 8 + rnd_below(&r->rng, 400);
    return r->w->big ? 6 * n : n;
}

/* Index of the row with ID in T, or the insertion point with *found = 0. */
size_t row_find(const struct mtable *t, int64_t id, int *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->rows[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < t->n && t->rows[lo].id == id;
    return lo;
}

/* Writes row ID of table TI (insert or replace its fields) in SQL and in
 * the model. */
static int row_put_n(struct run *r, int ti, int64_t id, int update, size_t n)
{
    struct mtable *t = &r->t[ti];
    uint8_t *pad = xrealloc(NULL, n);
    for (size_t i = 0; i < n; i++)
        pad[i] = (uint8_t)rnd(&r->rng);
    int64_t k = (int64_t)(rnd(&r->rng) >> 1);
    int64_t txn = r->ntxn;
    int64_t ck = row_ck(ti, id, txn, k, pad, n);
    char sql[128];
    if (update)
        snprintf(sql, sizeof sql, "UPDATE t%d SET txn=?2, k=?3, pad=?4, ck=?5 WHERE id=?1", ti);
    else
        snprintf(sql, sizeof sql, "INSERT INTO t%d(id, txn, k, pad, ck) VALUES(?1,?2,?3,?4,?5)",
                 ti);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, txn);
        sqlite3_bind_int64(st, 3, k);
        sqlite3_bind_blob(st, 4, pad, (int)n, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, ck);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            rc = sqlite3_changes(r->db) == 1 ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    uint64_t h = row_hash(ti, id, txn, k, pad, n, ck);
    free(pad);
    if (rc != SQLITE_OK)
        return run_fail(r, "%s (id %" PRId64 "): %s (last log: %s)", sql, id,
                        sqlite3_errmsg(r->db), g.lastlog);
    int found;
    size_t at = row_find(t, id, &found);
    if (found != update)
        return run_fail(r, "model: row %" PRId64 " of t%d %s", id, ti,
                        found ? "exists" : "is missing");
    if (found) {
        t->sum -= t->rows[at].h;
    } else {
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 64;
            t->rows = xrealloc(t->rows, t->cap * sizeof *t->rows);
        }
        memmove(&t->rows[at + 1], &t->rows[at], (t->n - at) * sizeof *t->rows);
        t->n++;
        t->rows[at].id = id;
    }
    t->rows[at].h = h;
    t->sum += h;
    return 0;
}

/* row_put_n() with a pad of random length (pad_len). */
static int row_put(struct run *r, int ti, int64_t id, int update)
{
    return row_put_n(r, ti, id, update, pad_len(r));
}

/* Deletes rows of table TI with ids in [lo, hi]. */
static int rows_delete(struct run *r, int ti, int64_t lo, int64_t hi)
{
    struct mtable *t = &r->t[ti];
    if (execf(r, "DELETE FROM t%d WHERE id BETWEEN %" PRId64 " AND %" PRId64, ti, lo, hi))
        return 1;
    int found;
    size_t a = row_find(t, lo, &found), b = a;
    while (b < t->n && t->rows[b].id <= hi)
        t->sum -= t->rows[b++].h;
    if ((int64_t)(b - a) != sqlite3_changes64(r->db))
        return run_fail(r, "DELETE FROM t%d: %lld rows deleted, the model has %zu", ti,
                        (long long)sqlite3_changes64(r->db), b - a);
    memmove(&t->rows[a], &t->rows[b], (t->n - b) * sizeof *t->rows);
    t->n -= b - a;
    return 0;
}

static int table_create(struct run *r, int ti)
{
    if (execf(r, "CREATE TABLE %st%d(id INTEGER PRIMARY KEY, txn INTEGER, k INTEGER, pad BLOB,"
                 " ck INTEGER)",
              r->cs, ti))
        return 1;
    r->t[ti].exists = 1;
    return 0;
}

static int table_drop(struct run *r, int ti)
{
    if (execf(r, "DROP TABLE t%d", ti))
        return 1;
    struct mtable *t = &r->t[ti];
    t->exists = 0;
    t->idx = 0;
    t->n = 0;
    t->sum = 0;
    return 0;
}

/* A table that exists, at random (t0 always does after setup). */
static int pick_table(struct run *r)
{
    int c[NT], n = 0;
    for (int i = 0; i < NT; i++)
        if (r->t[i].exists)
            c[n++] = i;
    return n ? c[rnd_below(&r->rng, (uint64_t)n)] : 0;
}

static int op_insert(struct run *r, int ti, int nrows)
{
    for (int i = 0; i < nrows && !r->failed; i++) {
        struct mtable *t = &r->t[ti];
        t->next_id += 1 + (rnd_below(&r->rng, 8) == 0 ? (int64_t)rnd_below(&r->rng, 50) : 0);
        row_put(r, ti, t->next_id, 0);
    }
    return r->failed;
}

static int op_update(struct run *r, int ti, int nrows)
{
    for (int i = 0; i < nrows && r->t[ti].n && !r->failed; i++)
        row_put(r, ti, r->t[ti].rows[rnd_below(&r->rng, r->t[ti].n)].id, 1);
    return r->failed;
}

static int op_delete(struct run *r, int ti, int nrows)
{
    for (int i = 0; i < nrows && r->t[ti].n && !r->failed; i++) {
        int64_t id = r->t[ti].rows[rnd_below(&r->rng, r->t[ti].n)].id;
        rows_delete(r, ti, id, id);
    }
    return r->failed;
}

/*
 * Replaces table t5 by one of rows 8000 bytes long, more than
 * COW_ONE_FLUSH_MAX_BLOCKS blocks (8 MiB) of them: the store's commit of
 * this transaction cannot list its blocks in the superblock and flushes
 * them before it writes the superblock (the two-flush commit).
 */
static int op_huge(struct run *r)
{
    const size_t pad = 8000;
    const size_t want = (size_t)COW_ONE_FLUSH_MAX_BLOCKS * 4096 * 9 / 8;
    if (r->t[NT - 1].exists && table_drop(r, NT - 1))
        return 1;
    if (table_create(r, NT - 1))
        return 1;
    for (size_t done = 0; done < want && !r->failed; done += pad) {
        struct mtable *t = &r->t[NT - 1];
        row_put_n(r, NT - 1, ++t->next_id, 0, pad);
    }
    return r->failed;
}

/* Deletes a run of about FRAC percent of the rows of TI. */
static int op_delete_range(struct run *r, int ti, int frac)
{
    struct mtable *t = &r->t[ti];
    if (!t->n)
        return 0;
    size_t len = t->n * (size_t)frac / 100 + 1;
    size_t a = (size_t)rnd_below(&r->rng, t->n);
    size_t b = a + len - 1 < t->n ? a + len - 1 : t->n - 1;
    return rows_delete(r, ti, t->rows[a].id, t->rows[b].id);
}

/* ---------------------------------------------------------------------------
 * Snapshots and branches (workloads with snaps)
 *
 * Between transactions a step makes a snapshot or branch of the live
 * database (PRAGMA cow_snapshot / cow_branch), deletes one (cow_delete),
 * or makes a branch of a snapshot or a snapshot of a branch through the C
 * API (cowvfs_container_branch / _snapshot); some transactions take a
 * snapshot before their COMMIT, some of them after SQLite spilled pages to
 * the database file or WAL.  Each one made is recorded with the model
 * state it must hold and the ops of its making and deletion; nothing
 * writes to the branches, so a branch too holds exactly that state.
 */

/* At most this many exist at once: every crash state opens and reads each
 * one, so they cost check time. */
#define SNAP_MAXLIVE 3

/* Sets O to the ops from START up to now; it is durable once its last
 * flush completed (without one, never). */
static void span_set(struct opspan *o, size_t start)
{
    o->start = start;
    o->ret = g.nops;
    o->durable = SIZE_MAX;
    for (size_t i = g.nops; i > start; i--)
        if (g.ops[i - 1].type == OP_FLUSH) {
            o->durable = i;
            break;
        }
}

/* The name the next snapshot or branch (KIND) gets. */
static void rec_name(const struct run *r, int kind, char *name, size_t n)
{
    snprintf(name, n, "%c%zu", kind == COWVFS_SNAPSHOT ? 's' : 'b', r->nrecs);
}

/* Records snapshot or branch NAME (KIND) of SOURCE ("": the live
 * database), made by the ops since START, which holds the database after
 * transaction K (model WANT). */
static struct snaprec *rec_add(struct run *r, const char *name, int kind, const char *source,
                               int k, const struct snap *want, size_t start)
{
    if (r->nrecs == r->caprecs) {
        r->caprecs = r->caprecs ? 2 * r->caprecs : 16;
        r->recs = xrealloc(r->recs, r->caprecs * sizeof *r->recs);
    }
    struct snaprec *rec = &r->recs[r->nrecs++];
    memset(rec, 0, sizeof *rec);
    snprintf(rec->name, sizeof rec->name, "%s", name);
    snprintf(rec->source, sizeof rec->source, "%s", source);
    rec->kind = kind;
    rec->k = k;
    rec->live_k = r->ntxn - 1;
    rec->want = *want;
    span_set(&rec->made, start);
    rec->gone.start = rec->gone.ret = rec->gone.durable = SIZE_MAX;
    r->nlive++;
    return rec;
}

/* The record named NAME, or NULL. */
const struct snaprec *rec_find(const struct run *r, const char *name)
{
    char c, extra;
    size_t i;
    if (sscanf(name, "%c%zu%c", &c, &i, &extra) != 2 || i >= r->nrecs ||
        strcmp(r->recs[i].name, name) != 0)
        return NULL;
    return &r->recs[i];
}

/* A snapshot or branch (KIND) of the live database by its pragma: the
 * last committed state, also inside a write transaction (IN_TXN). */
static int snap_make(struct run *r, int kind, int in_txn)
{
    char name[16];
    size_t start = g.nops;
    rec_name(r, kind, name, sizeof name);
    if (execf(r, "PRAGMA cow_%s('%s')", kind == COWVFS_SNAPSHOT ? "snapshot" : "branch", name))
        return 1;
    rec_add(r, name, kind, "", r->ntxn - 1, &r->snaps[r->ntxn], start)->in_txn = in_txn;
    return 0;
}

/* One step between transactions that makes or deletes a snapshot or
 * branch.  Only the C API reaches a source other than the live database
 * (the workload's connection is the live database's). */
static int wl_snap(struct run *r)
{
    enum { SNAP, BRANCH, DELETE, API, NKINDS };
    int weight[NKINDS] = {35, 25, 25, 15};
    if (r->nlive == 0)
        weight[DELETE] = weight[API] = 0;
    if (r->nlive >= SNAP_MAXLIVE)
        weight[SNAP] = weight[BRANCH] = weight[API] = 0;
    int kind = pick_weighted(&r->rng, weight, NKINDS);

    struct step *s;
    char name[16];
    if (kind == SNAP || kind == BRANCH) {
        int sk = kind == SNAP ? COWVFS_SNAPSHOT : COWVFS_BRANCH;
        rec_name(r, sk, name, sizeof name);
        s = step_begin(r, STEP_OTHER, "cow_%s('%s') of txn %d",
                       sk == COWVFS_SNAPSHOT ? "snapshot" : "branch", name, r->ntxn - 1);
        snap_make(r, sk, 0);
        step_end(s);
        return r->failed;
    }
    /* a random one of those that exist */
    size_t pick = (size_t)rnd_below(&r->rng, (uint64_t)r->nlive), i;
    for (i = 0; i < r->nrecs; i++)
        if (r->recs[i].gone.start == SIZE_MAX && pick-- == 0)
            break;
    if (kind == DELETE) {
        s = step_begin(r, STEP_OTHER, "cow_delete('%s')", r->recs[i].name);
        if (!execf(r, "PRAGMA cow_delete('%s')", r->recs[i].name)) {
            span_set(&r->recs[i].gone, s->start);
            r->nlive--;
            r->ndeletes++;
        }
    } else {
        const struct snaprec src = r->recs[i]; /* rec_add may move it */
        int sk = src.kind == COWVFS_SNAPSHOT ? COWVFS_BRANCH : COWVFS_SNAPSHOT;
        char *err = NULL;
        rec_name(r, sk, name, sizeof name);
        s = step_begin(r, STEP_OTHER, "cowvfs_container_%s('%s') of %s (txn %d)",
                       sk == COWVFS_SNAPSHOT ? "snapshot" : "branch", name, src.name, src.k);
        int rc = sk == COWVFS_SNAPSHOT ? cowvfs_container_snapshot(g.path, src.name, name, &err)
                                       : cowvfs_container_branch(g.path, src.name, name, &err);
        if (rc != SQLITE_OK)
            run_fail(r, "%s: %d: %s (last log: %s)", s->what, rc, err ? err : "?", g.lastlog);
        else
            rec_add(r, name, sk, src.name, src.k, &src.want, s->start);
        sqlite3_free(err);
    }
    step_end(s);
    return r->failed;
}

/* One write transaction of a few random operations, then its row in tx. */
static int wl_txn(struct run *r, int bulk)
{
    int k = r->ntxn;
    char what[80] = "";
    size_t wl = 0;
    struct step *s = step_begin(r, STEP_TXN, "txn %d", k);
#define WHAT(...) (wl += (size_t)snprintf(what + wl, wl < sizeof what ? sizeof what - wl : 0, \
                                          __VA_ARGS__),                                      \
                   wl = wl < sizeof what ? wl : sizeof what)
    if (exec(r, "BEGIN"))
        return 1;
    /* what SQLite wrote before this transaction: more means it spilled */
    uint64_t spill0 = g.nwrites[ROLE_DB] + g.nwrites[ROLE_WAL];
    if (k == 0) {
        /* setup: tx and t0 */
        if (execf(r, "CREATE TABLE %stx(n INTEGER PRIMARY KEY, tag INTEGER)", r->cs) ||
            table_create(r, 0))
            return 1;
        op_insert(r, 0, 20);
        WHAT(" setup");
    } else if (r->w->huge && k % r->w->huge == 2) {
        op_huge(r);
        WHAT(" huge t%d", NT - 1);
    } else if (r->w->huge && k % r->w->huge == 3 && r->t[NT - 1].exists) {
        /* and gone again, so that few states check a large database */
        table_drop(r, NT - 1);
        WHAT(" drop t%d", NT - 1);
    } else if (bulk) {
        int ti = pick_table(r);
        op_insert(r, ti, 60 + (int)rnd_below(&r->rng, 120));
        WHAT(" bulk t%d", ti);
    } else {
        int nop = 1 + (int)rnd_below(&r->rng, 3);
        for (int i = 0; i < nop && !r->failed; i++) {
            int ti = pick_table(r);
            uint64_t x = rnd_below(&r->rng, 100);
            if (x < 35) {
                op_insert(r, ti, 1 + (int)rnd_below(&r->rng, 8));
                WHAT(" ins t%d", ti);
            } else if (x < 55) {
                op_update(r, ti, 1 + (int)rnd_below(&r->rng, 6));
                WHAT(" upd t%d", ti);
            } else if (x < 70) {
                op_delete(r, ti, 1 + (int)rnd_below(&r->rng, 6));
                WHAT(" del t%d", ti);
            } else if (x < 76) {
                op_delete_range(r, ti, 20 + (int)rnd_below(&r->rng, 60));
                WHAT(" delrange t%d", ti);
            } else if (x < 84) {
                int tj = 1 + (int)rnd_below(&r->rng, NT - 1);
                if (!r->t[tj].exists) {
                    table_create(r, tj);
                    op_insert(r, tj, (int)rnd_below(&r->rng, 30));
                    WHAT(" create t%d", tj);
                } else {
                    table_drop(r, tj);
                    WHAT(" drop t%d", tj);
                }
            } else if (x < 92) {
                unsigned b = 1u << rnd_below(&r->rng, 2);
                if (r->t[ti].idx & b) {
                    execf(r, "DROP INDEX i%d%c", ti, b == 1 ? 'a' : 'b');
                    WHAT(" dropidx i%d%c", ti, b == 1 ? 'a' : 'b');
                } else {
                    execf(r,
                          b == 1 ? "CREATE INDEX %si%da ON t%d(k)"
                                 : "CREATE INDEX %si%db ON t%d(txn, id)",
                          r->cs, ti, ti);
                    WHAT(" idx i%d%c", ti, b == 1 ? 'a' : 'b');
                }
                r->t[ti].idx ^= b;
            } else {
                op_update(r, ti, 10 + (int)rnd_below(&r->rng, 30));
                WHAT(" updmany t%d", ti);
            }
        }
    }
    /* A snapshot inside this transaction holds the one before it: bulk
     * transactions have usually spilled (written the database file in
     * rollback mode, uncommitted frames in WAL mode) by now. */
    if (r->w->snaps && k > 0 && !r->failed && r->nlive < SNAP_MAXLIVE &&
        rnd_below(&r->rng, 100) < (bulk ? 50u : (unsigned)r->w->snaps / 2)) {
        int spilled = g.nwrites[ROLE_DB] + g.nwrites[ROLE_WAL] != spill0;
        int sk = rnd_below(&r->rng, 3) ? COWVFS_SNAPSHOT : COWVFS_BRANCH;
        char name[16];
        rec_name(r, sk, name, sizeof name);
        if (snap_make(r, sk, 1 + spilled))
            return 1;
        WHAT(" +%s%s", name, spilled ? " (spilled)" : "");
        r->nintxn++;
        r->nspilled += spilled;
    }
#undef WHAT
    if (r->failed)
        return 1;
    if ((r->w->attach && aux_txn(r, k)) ||
        execf(r, "INSERT INTO tx(n, tag) VALUES(%d, %lld)", k, (long long)tx_tag(k)) ||
        exec(r, "COMMIT"))
        return 1;
    step_end(s);
    s->txn = k;
    s->durable = durable(r->jm, r->sy);
    snprintf(s->what, sizeof s->what, "txn %d (%s %s):%s", k, jm_name[r->jm], sy_name[r->sy],
             what);
    r->ntxn++;
    snap_take(r, &r->snaps[r->ntxn]);
    if (r->w->attach)
        aux_take(r);
    return 0;
}

/* usage_take()'s listing. */
struct usage_list {
    const struct run *r;
    struct usage *u;
};

/* cowvfs_container_list()'s callback for usage_take(). */
static int usage_cb(void *arg, const cowvfs_subvol_info *si)
{
    struct usage_list *l = arg;
    const struct snaprec *rec = rec_find(l->r, si->zName);
    if (rec) {
        struct usage *u = &l->u[rec - l->r->recs];
        u->listed = 1;
        u->exclusive = si->nExclusive;
        u->shared = si->nShared;
    }
    return 0;
}

/* The space of every snapshot and branch of R's container now, through
 * the connection's container (cowvfs_container_list, which only reads):
 * sets *OUT (malloc'd, R->nrecs entries indexed as R->recs; the caller
 * frees it).  Returns 0, or 1 with R failed. */
static int usage_take(struct run *r, struct usage **out)
{
    struct usage_list l = {r, xrealloc(NULL, (r->nrecs + 1) * sizeof *l.u)};
    char *err = NULL;
    memset(l.u, 0, (r->nrecs + 1) * sizeof *l.u);
    *out = l.u;
    int rc = cowvfs_container_list(g.path, usage_cb, &l, &err);
    if (rc != SQLITE_OK)
        run_fail(r, "cowvfs_container_list: %d: %s", rc, err ? err : "?");
    sqlite3_free(err);
    return rc != SQLITE_OK;
}

/*
 * A step of PRAGMA cow_balance: relocation of every group it can move,
 * then the file cut; the checks of every crash state apply (snapshots'
 * contents too).  It keeps every snapshot's and branch's space as it was
 * (relocation rewrites no tree: store.h cow_store_balance): the step
 * records that space for the crash states inside the balance (check.c
 * check_usage), and R fails if the balance, not crashed, changed it.
 */
static void wl_balance(struct run *r)
{
    struct step *s = step_begin(r, STEP_OTHER, "cow_balance");
    struct usage *after = NULL;
    /* the largest the device can be after a crash right now: any prefix
     * of its pending size changes may be kept */
    uint64_t size = 0;
    size_t nunits, nsizes;
    g.cur->size(g.cur, &size);
    memdev_pending(g.cur, &nunits, &nsizes);
    for (size_t k = 0; k <= nsizes; k++) {
        uint64_t sz = memdev_crash_size(g.cur, k);
        if (sz > size)
            size = sz;
    }
    s->size_before = size ? size : 1;
    r->nbalances++;
    s->usage_k = r->ntxn - 1;
    s->nusage = r->nrecs;
    s->committed = SIZE_MAX;
    if (usage_take(r, &s->usage) || execf(r, "PRAGMA %scow_balance=100", r->cs) ||
        usage_take(r, &after)) {
        free(after);
        step_end(s);
        return;
    }
    /* its first commit: the first flush after a superblock write */
    int super = 0;
    for (size_t i = s->start; i < g.nops && s->committed == SIZE_MAX; i++) {
        const struct op *o = &g.ops[i];
        if (o->type == OP_WRITE && o->dev == 0 && o->off < COW_SB_COPIES * COW_BLOCK_SIZE)
            super = 1;
        else if (o->type == OP_FLUSH && o->dev == 0 && super)
            s->committed = i;
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct usage *a = &s->usage[i], *b = &after[i];
        if (a->listed != b->listed || a->exclusive != b->exclusive || a->shared != b->shared) {
            run_fail(r, "cow_balance changed %s: %s, %lld bytes exclusive and %lld shared "
                        "before; %s, %lld and %lld after",
                     r->recs[i].name, a->listed ? "listed" : "not listed", a->exclusive,
                     a->shared, b->listed ? "listed" : "not listed", b->exclusive, b->shared);
            break;
        }
    }
    free(after);
    step_end(s);
}

/* A step that changes no content: checkpoint, VACUUM, reopen, ... */
static int wl_other(struct run *r)
{
    enum { CKPT, VACUUM, INCR, REOPEN, JMODE, SYNC, BALANCE, HANDOFF, NKINDS };
    int weight[NKINDS] = {0};
    weight[CKPT] = r->jm == JM_WAL ? 30 : 0;
    weight[VACUUM] = 15;
    weight[INCR] = strcmp(r->w->vacuum, "INCREMENTAL") == 0 ? 15 : 0;
    weight[REOPEN] = 15;
    weight[JMODE] = r->w->mixed ? 15 : 0;
    weight[SYNC] = r->w->mixed ? 10 : 0;
    weight[BALANCE] = r->w->reloc;
    weight[HANDOFF] = r->w->handoff;
    int kind = pick_weighted(&r->rng, weight, NKINDS);

    struct step *s;
    if (kind == CKPT) {
        static const char *const mode[] = {"PASSIVE", "FULL", "RESTART", "TRUNCATE"};
        const char *m = mode[rnd_below(&r->rng, 4)];
        s = step_begin(r, STEP_OTHER, "wal_checkpoint(%s)", m);
        execf(r, "PRAGMA wal_checkpoint(%s)", m);
    } else if (kind == VACUUM) {
        s = step_begin(r, STEP_OTHER, "VACUUM");
        execf(r, "VACUUM %s", *r->cs ? "c" : "main");
    } else if (kind == INCR) {
        s = step_begin(r, STEP_OTHER, "incremental_vacuum");
        execf(r, "PRAGMA %sincremental_vacuum", r->cs);
    } else if (kind == REOPEN) {
        s = step_begin(r, STEP_OTHER, "close and reopen");
        if (!wl_close(r))
            wl_open(r);
    } else if (kind == BALANCE) {
        wl_balance(r);
        return r->failed;
    } else if (kind == HANDOFF) {
        s = step_begin(r, STEP_OTHER, "cow_test_handoff");
        execf(r, "PRAGMA %scow_test_handoff", r->cs);
    } else if (kind == JMODE) {
        int jm = (int)rnd_below(&r->rng, 4);
        s = step_begin(r, STEP_OTHER, "journal_mode=%s", jm_name[jm]);
        if (!execf(r, "PRAGMA journal_mode=%s", jm_name[jm]))
            r->jm = jm;
    } else {
        int sy = 1 + (int)rnd_below(&r->rng, 3);
        s = step_begin(r, STEP_OTHER, "synchronous=%s", sy_name[sy]);
        if (!execf(r, "PRAGMA synchronous=%s", sy_name[sy]))
            r->sy = sy;
    }
    step_end(s);
    return r->failed;
}

void run_free(struct run *r)
{
    if (r->db)
        sqlite3_close(r->db);
    for (int i = 0; i < NT; i++)
        free(r->t[i].rows);
    free(r->snaps);
    for (size_t i = 0; i < r->nsteps; i++)
        free(r->steps[i].usage);
    free(r->steps);
    free(r->recs);
    free(r->aux.rows);
    free(r->aux_snaps);
    memset(r, 0, sizeof *r);
}

void record_reset(void)
{
    for (size_t i = 0; i < g.nops; i++)
        free(g.ops[i].data);
    g.nops = 0;
    g.trace = 0;
    for (int i = 0; i < NROLES; i++)
        shadow_free(&g.shadow[i]);
    g.vclock = 0;
    memset(g.nwrites, 0, sizeof g.nwrites);
    crashfs_reset();
}

/*
 * The record phase: runs workload W with SEED for NTXN transactions on a
 * fresh device, logging ops, versions and steps into R.  Returns 0, or 1
 * with R->errbuf set.
 */
int record(struct run *r, const struct workload *w, uint64_t seed, int ntxn)
{
    memset(r, 0, sizeof *r);
    r->w = w;
    r->seed = seed;
    r->rng = mix64(seed ^ hash_bytes(w->name, strlen(w->name), 0));
    r->jm = w->journal;
    r->sy = w->sync;
    r->cs = w->attach == ATT_UNIX_MAIN ? "c." : "";
    r->snaps = xrealloc(NULL, (size_t)(ntxn + 2) * sizeof *r->snaps);
    snap_take(r, &r->snaps[0]);
    r->aux_snaps = xrealloc(NULL, (size_t)(ntxn + 2) * sizeof *r->aux_snaps);
    memset(&r->aux_snaps[0], 0, sizeof r->aux_snaps[0]);
    record_reset();
    g.vfs_rng = mix64(r->rng ^ 0x7261);
    sqlite3_randomness(0, NULL); /* SQLite reseeds from shimRandomness */

    struct cow_dev *dev = memdev_new(NULL), *dev2 = NULL;
    g.cur = dev;
    if (w->attach == ATT_COW)
        g.cur2 = dev2 = memdev_new(NULL);
    g.recording = 1;
    if (wl_open(r) == 0) {
        while (r->ntxn < ntxn && !r->failed) {
            if (w->snaps && r->ntxn > 0 && rnd_below(&r->rng, 100) < (uint64_t)w->snaps) {
                wl_snap(r);
                continue;
            }
            uint64_t x = rnd_below(&r->rng, 100);
            /* a relocation workload balances at least once, halfway
             * (usually with snapshots there: check.c check_usage) */
            if (w->reloc && !r->nbalances && r->ntxn >= ntxn / 2) {
                wl_balance(r);
                continue;
            }
            if (r->ntxn > 0 && x < 14)
                wl_other(r);
            else
                wl_txn(r, r->ntxn > 0 && x < 18);
        }
    }
    if (r->db && !r->failed) {
        struct step *s = step_begin(r, STEP_OTHER, "close");
        wl_close(r);
        step_end(s);
    }
    g.recording = 0;
    if (r->db) {
        sqlite3_close(r->db);
        r->db = NULL;
    }
    g.cur = g.cur2 = NULL;
    if (g.nopen || g.nopen2) {
        run_fail(r, "a store is still open after the last connection closed");
        g.nopen = g.nopen2 = 0;
    }
    dev->close(dev);
    if (dev2)
        dev2->close(dev2);
    return r->failed;
}
