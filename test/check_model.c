/*
 * check_model.c - a model-based test of snapshots and branches, through
 * the VFS as an application uses them.
 *
 * One container and three connections to its live database, which ATTACH
 * snapshots and branches as they need them (model database N as schema
 * "eN"), and three more whose main database is a snapshot or branch
 * (branch=NAME, snapshot=NAME), opened and closed at random, now and then
 * several on the same one.  Every operation below may act through either
 * kind: a write or a restore of a branch through a connection whose main
 * database it is, a snapshot or branch of "main" there (a snapshot of a
 * branch), a delete of a database that a connection has open as its main
 * one (SQLITE_BUSY, as while it is ATTACHed).  Every database holds a
 * table t(k INTEGER PRIMARY KEY, v TEXT) with an index on v; the model
 * keeps, for the live database and for every snapshot and branch, the
 * value of each of NKEYS keys as the number it is made from (valstr(): a
 * few hundred bytes, or now and then a few thousand that need overflow
 * pages), with each one's kind and source.
 *
 * Random operations, drawn from test_seed() (COW_TEST_SEED replays a run):
 * writes on the live database or a branch (single rows and ranges, alone or
 * in transactions, some rolled back, some big enough to spill the cache of
 * the connection with a small one); snapshots and branches of the live
 * database, of branches and of snapshots, by pragma, C API or container
 * path, also inside the caller's own write transaction and while another
 * connection is inside one; restores of the live database or a branch to
 * any snapshot or branch (also one in the other journal mode), refused
 * with SQLITE_BUSY while a connection is inside a transaction on it, and
 * undo (snapshot, commit, restore, commit); deletes, refused with
 * SQLITE_BUSY while the database is open; checkpoints, VACUUM, ATTACH and
 * DETACH, closing and reopening one or every connection (switching the
 * journal mode of the live database or a branch between delete and WAL
 * when only one connection is open), and bad names, taken names and other
 * errors that must change nothing (writes through a connection whose main
 * database is a snapshot fail with SQLITE_READONLY; opening a snapshot with
 * branch= or a name that is not there fails with SQLITE_CANTOPEN).  And
 * with a transaction held meanwhile: a reader of a snapshot or branch, while
 * its source (the live database, a branch or a snapshot) is written,
 * restored or deleted, keeps reading what it read, inside its transaction
 * and at its next one; a reader of a database in WAL mode sees another
 * connection's commit at its next transaction only; a restore from a
 * source that a connection is reading, or writing (in any journal mode,
 * spilled or not), takes the source's committed content.
 *
 * After each operation the databases it touched are compared with the
 * model.  After a restore every connection that has the database open must
 * read the restored content at its next transaction, whether that comes
 * right away or after other connections' commits (their page caches must
 * be dropped).  Every CHECK_EVERY operations and at the end: every
 * database through every connection, integrity_check, and the listing (SQL,
 * C API and by path) against the model's names, kinds and sources.  fsck
 * whenever every connection is closed.
 *
 * A failure prints the seed and the last LOGN operations.  COW_MODEL_TRACE=1
 * prints every operation as it runs; COW_MODEL_OPS=N runs N operations
 * instead of NOPS.
 *
 * The tcase restore_modes holds, alone, what this test found first: a
 * restore to a rollback-mode snapshot did not drop the caches of
 * connections in WAL mode.  The tcase restore_source_in_txn holds what it
 * found next: a restore from a source inside a write transaction in
 * rollback mode copied that transaction's journal into the target (it
 * now restores from a copy of the source taken at a transaction
 * boundary).
 */
#include <check.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowvfs.h"
#include "testutil.h"

#define NKEYS 300         /* keys 0 .. NKEYS-1 */
#define NCONN 3           /* connections to the live database */
#define NXCONN 3          /* connections whose main database is another */
#define NALL (NCONN + NXCONN)
#define SPILL_CONN 2      /* the one with a 10-page cache */
#define MAX_ATT 4         /* ATTACHed databases a connection keeps */
#define MAX_SUBVOLS 14    /* snapshots and branches alive at most */
#define NOPS 3000         /* operations per run */
#define CHECK_EVERY 100   /* operations between full comparisons */
#define VAL_MAX 100000000 /* values are made from numbers below this */
#define LOGN 40           /* operations kept for a failure report */
#define LOGLEN 1024

#define LIVE 0 /* the model's index of the live database */


/* How a snapshot operation is asked for. */
enum { VIA_PRAGMA, VIA_API, VIA_PATH };

/* One database of the model: the live one (index 0), a snapshot or a
 * branch. */
struct mdb {
    char name[256]; /* "" for the live database */
    int kind;       /* 0 (live), COWVFS_SNAPSHOT or COWVFS_BRANCH */
    int source;     /* the index it was made from */
    int alive;      /* 0 once deleted */
    unsigned att;   /* bit c: open on connection c (ATTACHed, or its main one) */
    int wal;        /* its header says WAL mode (else rollback) */
    int val[NKEYS]; /* committed content: key k holds valstr(val[k]); -1 absent */
};

struct model {
    char *dir;
    char *path;
    uint64_t rs;
    sqlite3 *db[NALL]; /* the first NCONN on the live database, then the others */
    int natt[NALL];   /* databases ATTACHed on each connection */
    int mainof[NALL]; /* each connection's main database, -1 when closed */
    struct mdb *d;    /* every database ever made, in creation order */
    int nd, capd;
    int nsub;         /* snapshots and branches alive */
    int op, nops;
    int counter;      /* for names */
    int trace;
    int before[NKEYS]; /* the target's content before the last restore */
    int before_e;      /* ... and the target, -1 if none */
    char err[1024];   /* the message of the last SQL or snapshot call */
    char log[LOGN][LOGLEN];
};

static void vfs_setup(void)
{
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
}

/* ---------------------------------------------------------------------------
 * Reporting
 */

static void mlog(struct model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void mfail(struct model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends a step to the current operation's entry of the log. */
static void mlog(struct model *m, const char *fmt, ...)
{
    char *slot = m->log[m->op % LOGN];
    size_t n = strlen(slot);
    va_list ap;

    if (n && n + 3 < LOGLEN) {
        memcpy(slot + n, "; ", 3);
        n += 2;
    }
    va_start(ap, fmt);
    if (n + 1 < LOGLEN)
        vsnprintf(slot + n, LOGLEN - n, fmt, ap);
    va_end(ap);
    if (m->trace) {
        fprintf(stderr, "model %d: ", m->op);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

/* Fails the test with the seed and the last operations on stderr. */
static _Noreturn void mfail(struct model *m, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "model: operation %d failed: %s\n"
            "model: COW_TEST_SEED=%llu; the last operations:\n",
            m->op, msg, (unsigned long long)test_seed());
    for (int i = m->op - LOGN + 1; i <= m->op; i++)
        if (i >= 0)
            fprintf(stderr, "  %d: %s\n", i, m->log[i % LOGN]);
    ck_abort_msg("model operation %d: %s", m->op, msg);
}

static int rnd(struct model *m, int n)
{
    return (int)(test_rand(&m->rs) % (uint64_t)n);
}

/* ---------------------------------------------------------------------------
 * Values, names, SQL
 */

/* Writes the value made from N (0 <= N < VAL_MAX) to BUF (at least 4096
 * bytes); returns its length.  Its first 8 bytes are N in decimal. */
static int valstr(int n, char *buf)
{
    int len = n % 53 == 0 ? 1500 + n % 2000 : 8 + n % 61 * 4;

    snprintf(buf, 9, "%08d", n);
    for (int i = 8; i < len; i++)
        buf[i] = (char)('a' + (n + i) % 26);
    buf[len] = 0;
    return len;
}

/* SQL function mval(N): valstr(N). */
static void mval_func(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char buf[4096];
    sqlite3_int64 n = sqlite3_value_int64(argv[0]);

    (void)argc;
    if (n < 0 || n >= VAL_MAX) {
        sqlite3_result_error(ctx, "mval: out of range", -1);
        return;
    }
    int len = valstr((int)n, buf);
    sqlite3_result_text(ctx, buf, len, SQLITE_TRANSIENT);
}

/* The schema of database E on a connection that has it open. */
static const char *sname(int e, char buf[16])
{
    if (e == LIVE)
        return "main";
    snprintf(buf, 16, "e%d", e);
    return buf;
}

/* The schema of database E on connection C, which has it open: "main" where
 * it is the main database, else its ATTACH name. */
static const char *schema(struct model *m, int c, int e, char buf[16])
{
    if (m->mainof[c] == e)
        return "main";
    if (c >= NCONN || !(m->d[e].att & (1u << c)))
        mfail(m, "the test asked connection %d (main e%d) for e%d, which it does not have open",
              c, m->mainof[c], e);
    return sname(e, buf);
}

/* For messages. */
static const char *dname(const struct model *m, int e)
{
    return e == LIVE ? "the live database" : m->d[e].name;
}

/* NAME cut to 40 bytes for the log (four buffers in turn). */
static const char *lname(const char *name)
{
    static char buf[4][64];
    static int i;
    char *b = buf[i++ % 4];

    if (strlen(name) <= 40)
        return name;
    snprintf(b, sizeof buf[0], "%.32s...(%zu)", name, strlen(name));
    return b;
}

static const char *kname(int kind)
{
    return kind == COWVFS_SNAPSHOT ? "snapshot" : kind == COWVFS_BRANCH ? "branch" : "live";
}

/* %-encodes S for a URI into OUT (3 * strlen(S) + 1 bytes). */
static void uri_enc(const char *s, char *out)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = "0123456789ABCDEF"[c >> 4];
            *out++ = "0123456789ABCDEF"[c & 15];
        }
    }
    *out = 0;
}

/* Runs SQL on connection C; the extended result code, message in m->err. */
static int run(struct model *m, int c, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(m->db[c], sql, NULL, NULL, &err);

    snprintf(m->err, sizeof m->err, "%s", err ? err : "");
    sqlite3_free(err);
    return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(m->db[c]);
}

static void ok(struct model *m, int c, const char *sql)
{
    int rc = run(m, c, sql);
    if (rc != SQLITE_OK)
        mfail(m, "connection %d: %s: %d %s", c, sql, rc, m->err);
}

/* The first column of the first row of SQL on C as text, in OUT. */
static void query_text(struct model *m, int c, const char *sql, char *out, size_t n)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(m->db[c], sql, -1, &st, NULL);

    out[0] = 0;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        snprintf(m->err, sizeof m->err, "%s", sqlite3_errmsg(m->db[c]));
        sqlite3_finalize(st);
        mfail(m, "connection %d: %s: %d %s", c, sql, rc, m->err);
    }
    sqlite3_finalize(st);
}

/* ---------------------------------------------------------------------------
 * The model's databases and the connections
 */

/* A new snapshot or branch NAME of SOURCE, with SOURCE's committed content
 * (the first call: the live database, empty). */
static int mdb_new(struct model *m, const char *name, int kind, int source)
{
    if (m->nd == m->capd) {
        m->capd = m->capd ? 2 * m->capd : 64;
        m->d = realloc(m->d, (size_t)m->capd * sizeof *m->d);
        ck_assert_ptr_nonnull(m->d);
    }
    struct mdb *d = &m->d[m->nd];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->kind = kind;
    d->source = source;
    d->alive = 1;
    if (m->nd) {
        d->wal = m->d[source].wal;
        memcpy(d->val, m->d[source].val, sizeof d->val);
        m->nsub++;
    }
    return m->nd++;
}

static int name_taken(const struct model *m, const char *name)
{
    for (int i = 1; i < m->nd; i++)
        if (m->d[i].alive && strcmp(m->d[i].name, name) == 0)
            return 1;
    return 0;
}

/* A random alive snapshot or branch of KIND (0: either) other than NOT; 0
 * (LIVE) if there is none. */
static int pick(struct model *m, int kind, int not)
{
    int n = 0;

    for (int i = 1; i < m->nd; i++)
        n += m->d[i].alive && i != not && (!kind || m->d[i].kind == kind);
    if (n == 0)
        return LIVE;
    n = rnd(m, n);
    for (int i = 1; i < m->nd; i++)
        if (m->d[i].alive && i != not && (!kind || m->d[i].kind == kind) && n-- == 0)
            return i;
    return LIVE;
}

/* A fresh name, now and then one with spaces, non-ASCII UTF-8, 255 bytes,
 * or the name of a deleted database. */
static void new_name(struct model *m, int kind, char out[256])
{
    for (;;) {
        int r = rnd(m, 16);
        int id = ++m->counter;
        int dead = 0;

        for (int i = 1; i < m->nd; i++)
            dead += !m->d[i].alive;
        if (r == 0 && dead) {
            int n = rnd(m, dead);
            for (int i = 1; i < m->nd; i++)
                if (!m->d[i].alive && n-- == 0)
                    snprintf(out, 256, "%s", m->d[i].name);
        } else if (r == 1) {
            snprintf(out, 256, "\xc3\xbcn\xc3\xaf c\xc3\xb8" "d\xc3\xa9 \xe2\x82\xac%d", id);
        } else if (r == 2) {
            int n = snprintf(out, 256, "long-%d-", id);
            memset(out + n, 'x', (size_t)(255 - n));
            out[255] = 0;
        } else if (r == 3) {
            snprintf(out, 256, "v%d.(x) y~z_%s", id, kname(kind));
        } else {
            snprintf(out, 256, "%c%d", kind == COWVFS_SNAPSHOT ? 's' : 'b', id);
        }
        if (!name_taken(m, out))
            return;
    }
}

static void conn_open(struct model *m, int c)
{
    int rc = sqlite3_open_v2(m->path, &m->db[c],
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, "cow");
    if (rc != SQLITE_OK)
        mfail(m, "open connection %d: %d %s", c, rc, sqlite3_errmsg(m->db[c]));
    rc = sqlite3_create_function(m->db[c], "mval", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                 mval_func, NULL, NULL);
    if (rc != SQLITE_OK)
        mfail(m, "mval on connection %d: %d", c, rc);
    if (c == SPILL_CONN)
        ok(m, c, "PRAGMA main.cache_size=10");
    m->natt[c] = 0;
    m->mainof[c] = LIVE;
}

/* Opens connection C (one of the last NXCONN) on snapshot or branch E as its
 * main database: snapshot=NAME for a snapshot (read-only whatever the
 * flags say, so now and then READWRITE), branch=NAME for a branch. */
static void xconn_open(struct model *m, int c, int e)
{
    char enc[800];
    int snap = m->d[e].kind == COWVFS_SNAPSHOT;
    int flags =
        SQLITE_OPEN_URI | (snap && rnd(m, 2) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);

    uri_enc(m->d[e].name, enc);
    char *uri = sqlite3_mprintf("file:%s?vfs=cow&%s=%s", m->path, snap ? "snapshot" : "branch",
                                enc);
    mlog(m, "c%d opens e%d as its main database", c, e);
    int rc = sqlite3_open_v2(uri, &m->db[c], flags, "cow");
    sqlite3_free(uri);
    if (rc != SQLITE_OK)
        mfail(m, "open connection %d on %s %s: %d %s", c, kname(m->d[e].kind), dname(m, e), rc,
              sqlite3_errmsg(m->db[c]));
    rc = sqlite3_create_function(m->db[c], "mval", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                 mval_func, NULL, NULL);
    if (rc != SQLITE_OK)
        mfail(m, "mval on connection %d: %d", c, rc);
    m->natt[c] = 0;
    m->mainof[c] = e;
    m->d[e].att |= 1u << c;
}

static void conn_close(struct model *m, int c)
{
    int rc = sqlite3_close(m->db[c]);
    if (rc != SQLITE_OK)
        mfail(m, "close connection %d: %d %s", c, rc, sqlite3_errmsg(m->db[c]));
    m->db[c] = NULL;
    m->natt[c] = 0;
    if (c >= NCONN)
        m->mainof[c] = -1;
    for (int i = 0; i < m->nd; i++)
        m->d[i].att &= ~(1u << c);
}

/* Closes every connection whose main database is E (all of them for -1). */
static void xconn_close_all(struct model *m, int e)
{
    for (int c = NCONN; c < NALL; c++)
        if (m->db[c] && (e < 0 || m->mainof[c] == e)) {
            mlog(m, "close c%d (main e%d)", c, m->mainof[c]);
            conn_close(m, c);
        }
}

static void do_attach(struct model *m, int c, int e)
{
    char enc[800], sb[16];

    uri_enc(m->d[e].name, enc);
    char *sql = sqlite3_mprintf("ATTACH 'file:%s?vfs=cow&%s=%s' AS %s", m->path,
                                m->d[e].kind == COWVFS_SNAPSHOT ? "snapshot" : "branch", enc,
                                sname(e, sb));
    mlog(m, "c%d attach e%d", c, e);
    ok(m, c, sql);
    sqlite3_free(sql);
    if (c == SPILL_CONN) {
        char sql2[64];
        snprintf(sql2, sizeof sql2, "PRAGMA e%d.cache_size=10", e);
        ok(m, c, sql2);
    }
    m->d[e].att |= 1u << c;
    m->natt[c]++;
}

static void do_detach(struct model *m, int c, int e)
{
    char sql[64];

    snprintf(sql, sizeof sql, "DETACH e%d", e);
    mlog(m, "c%d detach e%d", c, e);
    ok(m, c, sql);
    m->d[e].att &= ~(1u << c);
    m->natt[c]--;
}

/* Detaches E everywhere and closes the connections whose main one it is. */
static void detach_all(struct model *m, int e)
{
    for (int c = 0; c < NCONN; c++)
        if (m->d[e].att & (1u << c))
            do_detach(m, c, e);
    xconn_close_all(m, e);
}

/* Detaches from C a random database other than KEEP. */
static void detach_one(struct model *m, int c, int keep)
{
    int n = 0;

    for (int i = 1; i < m->nd; i++)
        n += i != keep && (m->d[i].att & (1u << c));
    if (n == 0)
        return;
    n = rnd(m, n);
    for (int i = 1; i < m->nd; i++)
        if (i != keep && (m->d[i].att & (1u << c)) && n-- == 0) {
            do_detach(m, c, i);
            return;
        }
}

/* A random connection with E open, -1 if none. */
static int conn_of(struct model *m, int e)
{
    if (e == LIVE)
        return rnd(m, NCONN);
    unsigned a = m->d[e].att;
    if (!a)
        return -1;
    int r = rnd(m, __builtin_popcount(a));
    for (int c = 0; c < NALL; c++)
        if ((a & (1u << c)) && r-- == 0)
            return c;
    return -1;
}

/* A random open connection, of either kind. */
static int any_conn(struct model *m)
{
    int c = rnd(m, NALL);

    return m->db[c] ? c : rnd(m, NCONN);
}

/* A connection with E open: one that has it, else one E is ATTACHed to. */
static int open_on(struct model *m, int e)
{
    int c = conn_of(m, e);
    int i;

    if (c >= 0)
        return c;
    c = rnd(m, NCONN);
    for (i = 0; i < NCONN && m->natt[(c + i) % NCONN] >= MAX_ATT; i++)
        ;
    if (i == NCONN)
        detach_one(m, c, e);
    else
        c = (c + i) % NCONN;
    do_attach(m, c, e);
    return c;
}

/* A connection whose main database is E, a snapshot or branch, opening one
 * if none is and a slot is free; else a connection with E open (open_on). */
static int main_on(struct model *m, int e)
{
    int c = -1;

    if (e == LIVE)
        return open_on(m, e);
    for (int y = NCONN; y < NALL; y++)
        if (m->mainof[y] == e && (c < 0 || rnd(m, 2)))
            c = y;
    for (int y = NCONN; y < NALL && c < 0; y++)
        if (!m->db[y]) {
            xconn_open(m, y, e);
            c = y;
        }
    return c >= 0 ? c : open_on(m, e);
}

/* A connection other than C (and AVOID, -1 for none) with E open, ATTACHing
 * E to one if needed. */
static int other_on(struct model *m, int e, int c, int avoid)
{
    int cand[NALL], n = 0, y;

    for (y = 0; y < NALL; y++)
        if (y != c && y != avoid && (e == LIVE ? y < NCONN : (m->d[e].att & (1u << y)) != 0))
            cand[n++] = y;
    if (n)
        return cand[rnd(m, n)];
    for (y = 0; y < NCONN; y++)
        if (y != c && y != avoid)
            cand[n++] = y;
    y = cand[rnd(m, n)];
    if (m->natt[y] >= MAX_ATT)
        detach_one(m, y, e);
    do_attach(m, y, e);
    return y;
}

/* ---------------------------------------------------------------------------
 * Comparing with the model
 */

/* Reads table t of database E through connection C into GOT. */
static void read_db(struct model *m, int c, int e, int *got)
{
    char sql[64], sb[16], buf[4096];
    sqlite3_stmt *st = NULL;
    int rc, prev = -1;

    for (int k = 0; k < NKEYS; k++)
        got[k] = -1;
    snprintf(sql, sizeof sql, "SELECT k, v FROM %s.t ORDER BY k", schema(m, c, e, sb));
    rc = sqlite3_prepare_v2(m->db[c], sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        mfail(m, "connection %d: %s: %d %s", c, sql, rc, sqlite3_errmsg(m->db[c]));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 k = sqlite3_column_int64(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        int n = -1;

        if (v && len >= 8 && strspn(v, "0123456789") >= 8) {
            memcpy(buf, v, 8);
            buf[8] = 0;
            n = atoi(buf);
            if (valstr(n, buf) != len || memcmp(buf, v, (size_t)len) != 0)
                n = -1;
        }
        if (k < 0 || k >= NKEYS || k <= prev || n < 0) {
            sqlite3_finalize(st);
            mfail(m, "%s through connection %d: bad row k=%lld (%d bytes)", dname(m, e), c,
                  (long long)k, len);
        }
        got[k] = n;
        prev = (int)k;
    }
    if (rc != SQLITE_DONE) {
        snprintf(m->err, sizeof m->err, "%s", sqlite3_errmsg(m->db[c]));
        sqlite3_finalize(st);
        mfail(m, "connection %d: %s: %d %s", c, sql, rc, m->err);
    }
    sqlite3_finalize(st);
}

/* Compares database E, read through connection C, with WANT (the model's
 * content of E, or what a reader inside a transaction must still see). */
static void check_vals(struct model *m, int c, int e, const int *want, const char *why)
{
    int got[NKEYS], ndiff = 0;
    char det[400] = "";

    read_db(m, c, e, got);
    for (int k = 0; k < NKEYS; k++) {
        if (got[k] == want[k])
            continue;
        if (ndiff < 5) {
            size_t n = strlen(det);
            snprintf(det + n, sizeof det - n, " k=%d: %d, model %d", k, got[k], want[k]);
        }
        ndiff++;
    }
    if (ndiff) {
        /* what it holds instead, if the model knows it */
        for (int i = 0; i < m->nd; i++)
            if (memcmp(got, m->d[i].val, sizeof got) == 0) {
                size_t n = strlen(det);
                snprintf(det + n, sizeof det - n, "; it holds what e%d holds", i);
            }
        if (m->before_e == e && memcmp(got, m->before, sizeof got) == 0) {
            size_t n = strlen(det);
            snprintf(det + n, sizeof det - n, "; it holds what it held before the last restore");
        }
        if (want != m->d[e].val && memcmp(got, m->d[e].val, sizeof got) == 0) {
            size_t n = strlen(det);
            snprintf(det + n, sizeof det - n, "; it holds the model's current content");
        }
        mfail(m,
              "%s: %s %s (e%d, %s) through connection %d (main e%d) differs from the model in "
              "%d keys:%s",
              why, kname(m->d[e].kind), dname(m, e), e, m->d[e].wal ? "wal" : "delete", c,
              m->mainof[c], ndiff, det);
    }
}

/* Compares database E, read through connection C, with the model. */
static void check_db(struct model *m, int c, int e, const char *why)
{
    check_vals(m, c, e, m->d[e].val, why);
}

/* Compares E through every connection that has it open. */
static void check_every_conn(struct model *m, int e, const char *why)
{
    for (int c = 0; c < NALL; c++)
        if (e == LIVE ? c < NCONN : (m->d[e].att & (1u << c)) != 0)
            check_db(m, c, e, why);
}

/* Compares E through a connection, ATTACHing it for the while if no
 * connection has it open; with INTEGRITY, runs integrity_check on it too. */
static void check_any(struct model *m, int e, int integrity, const char *why)
{
    int c = conn_of(m, e);
    int tmp = c < 0;
    char sql[64], sb[16], out[256];

    if (tmp) {
        c = rnd(m, NCONN);
        do_attach(m, c, e);
    }
    check_db(m, c, e, why);
    if (integrity) {
        snprintf(sql, sizeof sql, "PRAGMA %s.integrity_check", schema(m, c, e, sb));
        query_text(m, c, sql, out, sizeof out);
        if (strcmp(out, "ok") != 0)
            mfail(m, "%s: %s through connection %d: %s", why, dname(m, e), c, out);
    }
    if (tmp)
        do_detach(m, c, e);
}

/* The listing, as any of the three ways gives it. */
struct lrow {
    char name[256];
    int kind;
    int has_source;
    char source[256];
};

struct listing {
    struct lrow a[64];
    int n;
};

static int list_cb(void *arg, const cowvfs_subvol_info *si)
{
    struct listing *l = arg;

    if (l->n < 64) {
        struct lrow *r = &l->a[l->n];
        snprintf(r->name, sizeof r->name, "%s", si->zName);
        r->kind = si->eKind;
        r->has_source = si->zSource != NULL;
        snprintf(r->source, sizeof r->source, "%s", si->zSource ? si->zSource : "");
    }
    l->n++;
    return 0;
}

/* Compares L (got HOW) with the model: oldest first, names, kinds, sources
 * (NULL for the live database, "(deleted)" for one that is gone). */
static void compare_listing(struct model *m, const struct listing *l, const char *how)
{
    int i = 0;

    if (l->n > (int)(sizeof l->a / sizeof l->a[0]))
        mfail(m, "%s lists %d databases, the model %d", how, l->n, m->nsub);
    for (int e = 1; e < m->nd; e++) {
        const struct mdb *d = &m->d[e];
        const char *src;

        if (!d->alive)
            continue;
        src = d->source == LIVE ? NULL : m->d[d->source].alive ? m->d[d->source].name : "(deleted)";
        if (i >= l->n)
            mfail(m, "%s lists %d databases; the model has more (%s)", how, l->n, lname(d->name));
        const struct lrow *r = &l->a[i];
        if (strcmp(r->name, d->name) != 0 || r->kind != d->kind || r->has_source != (src != NULL) ||
            (src && strcmp(r->source, src) != 0))
            mfail(m, "%s: entry %d is \"%s\" %s from \"%s\", the model's \"%s\" %s from \"%s\"",
                  how, i, lname(r->name), kname(r->kind),
                  r->has_source ? lname(r->source) : "(live)", lname(d->name), kname(d->kind),
                  src ? lname(src) : "(live)");
        i++;
    }
    if (i != l->n)
        mfail(m, "%s lists %d databases, the model %d", how, l->n, i);
}

/* The listing through SQL (cow_snapshots), the C API or by path (WAY 0, 1,
 * 2), compared with the model. */
static void check_listing(struct model *m, int way)
{
    struct listing l;
    char *err = NULL;
    int c = any_conn(m), e, rc;
    char sb[16];

    /* a schema of C: main (the live database, a snapshot or a branch) or an
     * attached database */
    e = m->mainof[c];
    for (int i = 1; i < m->nd; i++)
        if ((m->d[i].att & (1u << c)) && rnd(m, 3) == 0)
            e = i;
    memset(&l, 0, sizeof l);
    if (way == 0) {
        char sql[128];
        sqlite3_stmt *st = NULL;
        if (e == m->mainof[c] && rnd(m, 2))
            snprintf(sql, sizeof sql, "SELECT name, kind, source FROM cow_snapshots");
        else
            snprintf(sql, sizeof sql, "SELECT name, kind, source FROM cow_snapshots('%s')",
                     schema(m, c, e, sb));
        rc = sqlite3_prepare_v2(m->db[c], sql, -1, &st, NULL);
        while (rc == SQLITE_OK || rc == SQLITE_ROW) {
            if ((rc = sqlite3_step(st)) != SQLITE_ROW)
                break;
            if (l.n < 64) {
                struct lrow *r = &l.a[l.n];
                const char *kind = (const char *)sqlite3_column_text(st, 1);
                snprintf(r->name, sizeof r->name, "%s", (const char *)sqlite3_column_text(st, 0));
                r->kind = kind && strcmp(kind, "snapshot") == 0 ? COWVFS_SNAPSHOT
                          : kind && strcmp(kind, "branch") == 0 ? COWVFS_BRANCH
                                                                : -1;
                r->has_source = sqlite3_column_type(st, 2) != SQLITE_NULL;
                snprintf(r->source, sizeof r->source, "%s",
                         r->has_source ? (const char *)sqlite3_column_text(st, 2) : "");
            }
            l.n++;
        }
        if (rc != SQLITE_DONE) {
            snprintf(m->err, sizeof m->err, "%s", sqlite3_errmsg(m->db[c]));
            sqlite3_finalize(st);
            mfail(m, "connection %d: %s: %d %s", c, sql, rc, m->err);
        }
        sqlite3_finalize(st);
        compare_listing(m, &l, sql);
    } else if (way == 1) {
        rc = cowvfs_list(m->db[c], e == m->mainof[c] && rnd(m, 2) ? NULL : schema(m, c, e, sb),
                         list_cb, &l, &err);
        if (rc != SQLITE_OK)
            mfail(m, "cowvfs_list on connection %d: %d %s", c, rc, err ? err : "");
        compare_listing(m, &l, "cowvfs_list");
    } else {
        rc = cowvfs_container_list(m->path, list_cb, &l, &err);
        if (rc != SQLITE_OK)
            mfail(m, "cowvfs_container_list: %d %s", rc, err ? err : "");
        compare_listing(m, &l, "cowvfs_container_list");
    }
    sqlite3_free(err);
}

/* Every database through every connection that has it open (the others
 * ATTACHed for the while), integrity_check on each, the listing three ways. */
static void verify_all(struct model *m)
{
    mlog(m, "verify all");
    for (int e = 0; e < m->nd; e++) {
        if (!m->d[e].alive)
            continue;
        check_every_conn(m, e, "full comparison");
        check_any(m, e, 1, "full comparison");
    }
    for (int way = 0; way < 3; way++)
        check_listing(m, way);
}

/* ---------------------------------------------------------------------------
 * Operations
 */

/* Sizes of changes. */
enum { CH_ANY, CH_BIG, CH_SMALL };

/* Writes to SQL one random change of table t of database E, for connection
 * C, and applies it to PEND.  SIZE: CH_ANY; CH_BIG, one that rewrites every
 * key (and spills a small cache); CH_SMALL, one of a single key. */
static void gen_change(struct model *m, int c, int e, int *pend, char *sql, size_t n, int size)
{
    char sb[16];
    const char *s = schema(m, c, e, sb);
    int big = size == CH_BIG;
    int r = big ? 5 : size == CH_SMALL ? rnd(m, 5) : rnd(m, 10);
    int k = rnd(m, NKEYS), v = rnd(m, VAL_MAX);
    int lo = big ? 0 : rnd(m, NKEYS);
    int len = big ? NKEYS : 1 + rnd(m, rnd(m, 4) == 0 ? NKEYS : 20);
    int hi = lo + len - 1 < NKEYS ? lo + len - 1 : NKEYS - 1;
    int a = rnd(m, 1000), b = rnd(m, 1000000);
    int mod = 2 + rnd(m, 7), rem = rnd(m, mod);

    switch (r) {
    case 0:
    case 1:
    case 2:
        snprintf(sql, n, "INSERT OR REPLACE INTO %s.t(k, v) VALUES (%d, mval(%d))", s, k, v);
        pend[k] = v;
        break;
    case 3:
        snprintf(sql, n, "UPDATE %s.t SET v = mval(%d) WHERE k = %d", s, v, k);
        if (pend[k] >= 0)
            pend[k] = v;
        break;
    case 4:
        snprintf(sql, n, "DELETE FROM %s.t WHERE k = %d", s, k);
        pend[k] = -1;
        break;
    case 5:
    case 6:
        snprintf(sql, n,
                 "WITH RECURSIVE c(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM c WHERE i < %d) "
                 "INSERT OR REPLACE INTO %s.t(k, v) SELECT i, mval(i * %d + %d) FROM c",
                 lo, hi, s, a, b);
        for (int i = lo; i <= hi; i++)
            pend[i] = i * a + b;
        break;
    case 7:
        snprintf(sql, n, "UPDATE %s.t SET v = mval(k * %d + %d) WHERE k BETWEEN %d AND %d", s, a,
                 b, lo, hi);
        for (int i = lo; i <= hi; i++)
            if (pend[i] >= 0)
                pend[i] = i * a + b;
        break;
    case 8:
        snprintf(sql, n, "DELETE FROM %s.t WHERE k BETWEEN %d AND %d", s, lo, hi);
        for (int i = lo; i <= hi; i++)
            pend[i] = -1;
        break;
    default:
        snprintf(sql, n, "DELETE FROM %s.t WHERE k %% %d = %d AND k < %d", s, mod, rem, hi);
        for (int i = rem; i < hi; i += mod)
            pend[i] = -1;
        break;
    }
}

/* Runs NST random changes of E on connection C (in the caller's
 * transaction, or each on its own), applying them to PEND.  SIZE: as for
 * gen_change, CH_BIG for the first only. */
static void changes(struct model *m, int c, int e, int *pend, int nst, int size)
{
    char sql[600];

    for (int i = 0; i < nst; i++) {
        gen_change(m, c, e, pend, sql, sizeof sql, size == CH_BIG && i > 0 ? CH_ANY : size);
        mlog(m, "c%d %s", c, sql);
        ok(m, c, sql);
    }
}

/* Opens a read transaction on E on connection C. */
static void begin_read(struct model *m, int c, int e)
{
    char sql[64], sb[16], out[64];

    ok(m, c, "BEGIN");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.t", schema(m, c, e, sb));
    query_text(m, c, sql, out, sizeof out);
}

/* Makes, restores or deletes (OP: "snapshot", "branch", "restore",
 * "delete") NAME on database E: a pragma on connection C, the C API on C,
 * or the container API (C unused).  Returns the result code; the message
 * in m->err. */
static int cow_op(struct model *m, int via, int c, int e, const char *op, const char *name)
{
    char sb[16];
    const char *s = via == VIA_PATH ? NULL : schema(m, c, e, sb);
    char *err = NULL;
    int rc;

    m->err[0] = 0;
    if (via == VIA_PATH)
        mlog(m, "%s %s of e%d by path", op, lname(name), e);
    else
        mlog(m, "%s %s of e%d via %s on c%d's %s", op, lname(name), e,
             via == VIA_PRAGMA ? "pragma" : "api", c, s);
    if (via == VIA_PRAGMA) {
        char *sql = sqlite3_mprintf("PRAGMA %s.cow_%s('%s')", s, op, name);
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(m->db[c], sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                const char *r = (const char *)sqlite3_column_text(st, 0);
                if (r == NULL || strcmp(r, name) != 0) {
                    sqlite3_finalize(st);
                    mfail(m, "%s returned \"%s\"", sql, r ? r : "NULL");
                }
                rc = SQLITE_OK;
            } else if (rc == SQLITE_DONE) {
                sqlite3_finalize(st);
                mfail(m, "%s returned no row", sql);
            }
        }
        if (rc != SQLITE_OK)
            snprintf(m->err, sizeof m->err, "%s", sqlite3_errmsg(m->db[c]));
        sqlite3_finalize(st);
        sqlite3_free(sql);
        return rc;
    }
    if (via == VIA_API) {
        const char *z = strcmp(s, "main") == 0 && rnd(m, 2) ? NULL : s;
        if (strcmp(op, "snapshot") == 0)
            rc = cowvfs_snapshot(m->db[c], z, name, &err);
        else if (strcmp(op, "branch") == 0)
            rc = cowvfs_branch(m->db[c], z, name, &err);
        else if (strcmp(op, "restore") == 0)
            rc = cowvfs_restore(m->db[c], z, name, &err);
        else
            rc = cowvfs_delete(m->db[c], z, name, &err);
    } else {
        const char *sub = e == LIVE ? NULL : m->d[e].name;
        if (strcmp(op, "snapshot") == 0)
            rc = cowvfs_container_snapshot(m->path, sub, name, &err);
        else if (strcmp(op, "branch") == 0)
            rc = cowvfs_container_branch(m->path, sub, name, &err);
        else if (strcmp(op, "restore") == 0)
            rc = cowvfs_container_restore(m->path, sub, name, &err);
        else
            rc = cowvfs_container_delete(m->path, name, &err);
    }
    if ((rc == SQLITE_OK) != (err == NULL))
        mfail(m, "%s %s: %d with message \"%s\"", op, lname(name), rc, err ? err : "(none)");
    snprintf(m->err, sizeof m->err, "%s", err ? err : "");
    sqlite3_free(err);
    return rc;
}

static int rnd_via(struct model *m)
{
    int r = rnd(m, 10);
    return r < 6 ? VIA_PRAGMA : r < 9 ? VIA_API : VIA_PATH;
}

/* 1 if database E is in WAL mode as connection C sees it. */
static int is_wal(struct model *m, int c, int e)
{
    char sql[64], sb[16], out[64];

    snprintf(sql, sizeof sql, "PRAGMA %s.journal_mode", schema(m, c, e, sb));
    query_text(m, c, sql, out, sizeof out);
    return strcmp(out, "wal") == 0;
}

/* Writes on the live database or a branch; now and then, in WAL mode, while
 * another connection reads it inside a transaction (which must go on
 * seeing what it read, and the commit at its next transaction). */
static void op_write(struct model *m)
{
    int e = rnd(m, 3) == 0 ? pick(m, COWVFS_BRANCH, 0) : LIVE;
    int c = rnd(m, 3) == 0 ? main_on(m, e) : open_on(m, e);
    int pend[NKEYS], old[NKEYS];
    int size = c == SPILL_CONN && rnd(m, 4) == 0 ? CH_BIG : CH_ANY;
    int y = -1;

    if (rnd(m, 4) == 0) {
        y = other_on(m, e, c, -1);
        if (is_wal(m, y, e)) {
            mlog(m, "c%d reads e%d in a transaction meanwhile", y, e);
            memcpy(old, m->d[e].val, sizeof old);
            begin_read(m, y, e);
        } else {
            y = -1;
        }
    }
    memcpy(pend, m->d[e].val, sizeof pend);
    if (rnd(m, 4) == 0) {
        changes(m, c, e, pend, 1, size);
        memcpy(m->d[e].val, pend, sizeof pend);
    } else {
        ok(m, c, rnd(m, 3) ? "BEGIN" : "BEGIN IMMEDIATE");
        changes(m, c, e, pend, 1 + rnd(m, 6), size);
        if (rnd(m, 5) == 0) {
            mlog(m, "rollback");
            ok(m, c, "ROLLBACK");
        } else {
            ok(m, c, "COMMIT");
            memcpy(m->d[e].val, pend, sizeof pend);
        }
    }
    check_db(m, c, e, "after a write");
    if (y >= 0) {
        check_vals(m, y, e, old,
                   "a reader inside its transaction, after another connection's write");
        ok(m, y, "COMMIT");
        check_db(m, y, e, "a reader at its next transaction, after another connection's write");
    }
    if (e == LIVE || rnd(m, 2))
        check_db(m, other_on(m, e, c, -1), e, "after a write, another connection");
}

static void op_delete(struct model *m);

/* A snapshot or branch (KIND) of the live database or of a snapshot or
 * branch, plain, inside the caller's own write transaction, while another
 * connection is inside a write transaction, or while one reads. */
static void op_create(struct model *m, int kind)
{
    if (m->nsub >= MAX_SUBVOLS) {
        op_delete(m);
        return;
    }
    int src = rnd(m, 5) < 2 ? pick(m, 0, 0) : LIVE;
    int via = rnd_via(m);
    int ctx = rnd(m, 8); /* 0-4 plain, 5 own transaction, 6 another's, 7 another reads */
    int writable = m->d[src].kind != COWVFS_SNAPSHOT;
    int c = rnd(m, 3) == 0 ? main_on(m, src) : open_on(m, src), y = -1, e, rc, commit = 0;
    int pend[NKEYS];
    char name[256];

    new_name(m, kind, name);
    if (ctx == 5 && via == VIA_PATH)
        via = VIA_API;
    /* not the connection with the small cache: if it spilled, it would hold
     * the database file locked and the snapshot would wait for it */
    if (ctx >= 6)
        y = other_on(m, src, c, SPILL_CONN);
    memcpy(pend, m->d[src].val, sizeof pend);
    mlog(m, "%s of e%d, context %d", kname(kind), src, ctx);
    if (ctx == 5 || ctx == 6) {
        int w = ctx == 5 ? c : y;
        if (writable) {
            ok(m, w, "BEGIN");
            /* in the own transaction, now and then enough to spill; in
             * another's, little enough not to */
            changes(m, w, src, pend, 1 + rnd(m, 3),
                    ctx == 6                             ? CH_SMALL
                    : w == SPILL_CONN && rnd(m, 2) == 0 ? CH_BIG
                                                         : CH_ANY);
        } else {
            begin_read(m, w, src);
        }
    } else if (ctx == 7) {
        begin_read(m, y, src);
    }
    rc = cow_op(m, via, c, src, kind == COWVFS_SNAPSHOT ? "snapshot" : "branch", name);
    if (rc != SQLITE_OK)
        mfail(m, "%s \"%s\" of %s: %d %s", kname(kind), lname(name), dname(m, src), rc, m->err);
    e = mdb_new(m, name, kind, src);
    if (ctx == 5 || ctx == 6) {
        int w = ctx == 5 ? c : y;
        if (writable && ctx == 5 && rnd(m, 2))
            changes(m, w, src, pend, 1 + rnd(m, 3), CH_ANY);
        commit = writable && rnd(m, 4) != 0;
        mlog(m, "c%d %s", w, commit ? "commit" : "rollback");
        ok(m, w, commit ? "COMMIT" : "ROLLBACK");
        if (commit)
            memcpy(m->d[src].val, pend, sizeof pend);
    } else if (ctx == 7) {
        ok(m, y, "COMMIT");
    }
    check_any(m, e, rnd(m, 4) == 0, "a new snapshot or branch");
    check_db(m, c, src, "the source of a new snapshot or branch");
}

/* Restores the live database or a branch to a snapshot or branch; now and
 * then while a connection is inside a transaction on it (SQLITE_BUSY,
 * nothing changes). */
static void op_restore(struct model *m)
{
    int t = rnd(m, 5) < 3 ? LIVE : pick(m, COWVFS_BRANCH, 0);
    int s = pick(m, 0, t);
    int via = rnd_via(m);
    int c = -1, rc;

    if (s == LIVE) {
        op_create(m, rnd(m, 2) ? COWVFS_SNAPSHOT : COWVFS_BRANCH);
        return;
    }
    if (via != VIA_PATH)
        c = rnd(m, 2) ? main_on(m, t) : open_on(m, t);
    /* every connection that has T open caches its pages */
    check_every_conn(m, t, "before a restore");
    if (rnd(m, 4) == 0) {
        int h = c >= 0 ? (rnd(m, 3) == 0 ? c : other_on(m, t, c, -1)) : open_on(m, t);
        int write = rnd(m, 2), commit = 0;
        int pend[NKEYS];

        memcpy(pend, m->d[t].val, sizeof pend);
        mlog(m, "c%d holds a %s transaction on e%d", h, write ? "write" : "read", t);
        if (write) {
            ok(m, h, "BEGIN");
            changes(m, h, t, pend, 1 + rnd(m, 3), CH_ANY);
        } else {
            begin_read(m, h, t);
        }
        rc = cow_op(m, via, c, t, "restore", m->d[s].name);
        if (rc != SQLITE_BUSY)
            mfail(m, "restore of %s to \"%s\" while connection %d is inside a transaction: %d "
                     "(%s), not SQLITE_BUSY",
                  dname(m, t), lname(m->d[s].name), h, rc, m->err);
        commit = write && rnd(m, 2);
        ok(m, h, commit ? "COMMIT" : "ROLLBACK");
        if (commit)
            memcpy(m->d[t].val, pend, sizeof pend);
        check_every_conn(m, t, "after a refused restore");
        check_any(m, t, 0, "after a refused restore");
        return;
    }
    /* now and then from a source that a connection is inside a transaction
     * on: the restore takes its committed content */
    int h = -1, hwrite = 0, spend[NKEYS];
    if (rnd(m, 5) == 0) {
        /* the caller too, unless ATTACHing S there would detach T */
        int full = c >= 0 && !(m->d[s].att & (1u << c)) && m->natt[c] >= MAX_ATT;
        h = other_on(m, s, SPILL_CONN, full ? c : -1);
        hwrite = m->d[s].kind == COWVFS_BRANCH && rnd(m, 2);
        memcpy(spend, m->d[s].val, sizeof spend);
        /* now and then the connection with the small cache, which spills:
         * WAL frames without a commit mark, or a hot journal */
        if (hwrite && rnd(m, 2) &&
            ((m->d[s].att & (1u << SPILL_CONN)) || m->natt[SPILL_CONN] < MAX_ATT)) {
            if (!(m->d[s].att & (1u << SPILL_CONN)))
                do_attach(m, SPILL_CONN, s);
            h = SPILL_CONN;
        }
        mlog(m, "c%d holds a %s transaction on the source e%d", h, hwrite ? "write" : "read", s);
        if (hwrite) {
            ok(m, h, "BEGIN");
            changes(m, h, s, spend, 1 + rnd(m, 3), h == SPILL_CONN ? CH_BIG : CH_ANY);
        } else {
            begin_read(m, h, s);
        }
    }
    rc = cow_op(m, via, c, t, "restore", m->d[s].name);
    if (rc != SQLITE_OK)
        mfail(m, "restore of %s to \"%s\": %d %s", dname(m, t), lname(m->d[s].name), rc, m->err);
    memcpy(m->before, m->d[t].val, sizeof m->before);
    m->before_e = t;
    memcpy(m->d[t].val, m->d[s].val, sizeof m->d[t].val);
    if (h >= 0) {
        int commit = hwrite && rnd(m, 2);
        mlog(m, "c%d %s", h, commit ? "commit" : "rollback");
        ok(m, h, commit ? "COMMIT" : "ROLLBACK");
        if (commit)
            memcpy(m->d[s].val, spend, sizeof spend);
    }
    m->d[t].wal = m->d[s].wal;
    /* through every connection now, or through the caller only, the others
     * at some later transaction (after other commits) */
    if (rnd(m, 2))
        check_every_conn(m, t, "after a restore");
    else if (c >= 0)
        check_db(m, c, t, "after a restore");
    check_any(m, s, 0, "the source of a restore");
}

/* Opens or closes a connection whose main database is a snapshot or a
 * branch (now and then one that another connection has as its main
 * database too), or writes through one whose main database is a snapshot:
 * refused with SQLITE_READONLY, alone or inside a transaction, changing
 * nothing. */
static void op_xconn(struct model *m)
{
    int c = NCONN + rnd(m, NXCONN), e;

    if (m->db[c] && m->d[m->mainof[c]].kind == COWVFS_SNAPSHOT && rnd(m, 2)) {
        int pend[NKEYS], tx = rnd(m, 2), rc;
        char sql[600];

        e = m->mainof[c];
        memcpy(pend, m->d[e].val, sizeof pend);
        if (tx)
            ok(m, c, "BEGIN");
        gen_change(m, c, e, pend, sql, sizeof sql, CH_ANY);
        mlog(m, "c%d %s%s", c, tx ? "in a transaction: " : "", sql);
        rc = run(m, c, sql);
        if ((rc & 0xff) != SQLITE_READONLY)
            mfail(m, "a write to snapshot %s, the main database of connection %d: %d (%s), not "
                     "SQLITE_READONLY",
                  dname(m, e), c, rc, m->err);
        if (tx)
            ok(m, c, rnd(m, 2) ? "COMMIT" : "ROLLBACK");
        check_db(m, c, e, "a snapshot after a write through its connection was refused");
        return;
    }
    if (m->db[c]) {
        mlog(m, "close c%d (main e%d)", c, m->mainof[c]);
        conn_close(m, c);
        if (rnd(m, 2))
            return;
    }
    e = LIVE;
    if (rnd(m, 2)) /* one that another connection has as its main database */
        for (int y = NCONN; y < NALL; y++)
            if (m->db[y] && (e == LIVE || rnd(m, 2)))
                e = m->mainof[y];
    if (e == LIVE)
        e = pick(m, 0, 0);
    if (e == LIVE)
        return;
    xconn_open(m, c, e);
    check_db(m, c, e, "a connection whose main database it is, just opened");
}

/* Snapshot or branch E, read inside a transaction (through a connection
 * whose main database it is, when one is open or can be), while its
 * source, or the nearest one up its chain that is still there (the live
 * database, a branch or a snapshot: E may share blocks with it), is
 * written, restored or deleted: E must not change, inside that transaction,
 * at the reader's next one, or through another connection. */
static void op_reader(struct model *m)
{
    int e = pick(m, 0, 0), s, x = LIVE, r, a, c = -1, via = rnd_via(m), rc;
    int pend[NKEYS];
    static const char *const what[] = {"written", "restored", "deleted"};

    if (e == LIVE)
        return;
    for (s = m->d[e].source; !m->d[s].alive; s = m->d[s].source)
        ;
    a = rnd(m, 3);
    if (m->d[s].kind == COWVFS_SNAPSHOT)
        a = 2; /* all a snapshot can go through */
    if (a == 1 && (x = pick(m, 0, s)) == LIVE)
        a = 0;
    if (a == 2 && s == LIVE)
        a = rnd(m, 2) ? 0 : (x = pick(m, 0, s)) == LIVE ? 0 : 1;
    r = rnd(m, 4) ? main_on(m, e) : open_on(m, e);
    /* a deleted source must be closed everywhere, the reader included */
    if (a == 2 && r < NCONN && (m->d[s].att & (1u << r)))
        do_detach(m, r, s);
    mlog(m, "c%d reads e%d in a transaction while its source e%d is %s", r, e, s, what[a]);
    begin_read(m, r, e);
    check_db(m, r, e, "a reader, at the start of its transaction");
    if (a == 0) {
        int w = other_on(m, s, r, -1);
        memcpy(pend, m->d[s].val, sizeof pend);
        changes(m, w, s, pend, 1 + rnd(m, 3), CH_ANY);
        memcpy(m->d[s].val, pend, sizeof pend);
    } else if (a == 1) {
        if (via != VIA_PATH)
            c = other_on(m, s, r, -1);
        rc = cow_op(m, via, c, s, "restore", m->d[x].name);
        if (rc != SQLITE_OK)
            mfail(m, "restore of %s to \"%s\" while connection %d reads e%d: %d %s", dname(m, s),
                  lname(m->d[x].name), r, e, rc, m->err);
        memcpy(m->before, m->d[s].val, sizeof m->before);
        m->before_e = s;
        memcpy(m->d[s].val, m->d[x].val, sizeof m->d[s].val);
        m->d[s].wal = m->d[x].wal;
    } else {
        detach_all(m, s);
        c = via == VIA_PATH ? -1 : any_conn(m);
        rc = cow_op(m, via, c, c < 0 ? LIVE : m->mainof[c], "delete", m->d[s].name);
        if (rc != SQLITE_OK)
            mfail(m, "delete of \"%s\" while connection %d reads e%d, made from it: %d %s",
                  lname(m->d[s].name), r, e, rc, m->err);
        m->d[s].alive = 0;
        m->nsub--;
    }
    check_db(m, r, e, "a reader inside its transaction, after its source changed");
    ok(m, r, "COMMIT");
    check_db(m, r, e, "a reader at its next transaction, after its source changed");
    if (rnd(m, 2))
        check_db(m, other_on(m, e, r, -1), e, "after its source changed, another connection");
    if (m->d[s].alive)
        check_any(m, s, 0, "the source of a snapshot or branch being read");
}

/* Undo, the way an application would: a snapshot, one small commit that
 * every connection reads, a restore to the snapshot and another small
 * commit, then every connection reads again.  Each connection's cache is
 * at the first commit, the database at the second: different content with
 * the same change counter if restore did not move it past every value it
 * had. */
static void op_undo(struct model *m)
{
    int t, c, e, rc;
    int pend[NKEYS];
    char name[256];

    if (m->nsub >= MAX_SUBVOLS) {
        op_delete(m);
        return;
    }
    t = rnd(m, 3) ? LIVE : pick(m, COWVFS_BRANCH, 0);
    c = open_on(m, t);
    new_name(m, COWVFS_SNAPSHOT, name);
    mlog(m, "undo on e%d", t);
    rc = cow_op(m, VIA_API, c, t, "snapshot", name);
    if (rc != SQLITE_OK)
        mfail(m, "snapshot \"%s\" of %s: %d %s", lname(name), dname(m, t), rc, m->err);
    e = mdb_new(m, name, COWVFS_SNAPSHOT, t);
    memcpy(pend, m->d[t].val, sizeof pend);
    changes(m, c, t, pend, 1, CH_SMALL);
    memcpy(m->d[t].val, pend, sizeof pend);
    if (t != LIVE && rnd(m, 2))
        other_on(m, t, c, -1);
    check_every_conn(m, t, "undo: after the first commit");
    rc = cow_op(m, rnd(m, 2) ? VIA_API : VIA_PRAGMA, c, t, "restore", name);
    if (rc != SQLITE_OK)
        mfail(m, "restore of %s to \"%s\": %d %s", dname(m, t), lname(name), rc, m->err);
    memcpy(m->before, m->d[t].val, sizeof m->before);
    m->before_e = t;
    memcpy(m->d[t].val, m->d[e].val, sizeof pend);
    memcpy(pend, m->d[t].val, sizeof pend);
    changes(m, c, t, pend, 1, CH_SMALL);
    memcpy(m->d[t].val, pend, sizeof pend);
    check_every_conn(m, t, "undo: after the restore and another commit");
}

/* Deletes a snapshot or branch; refused while it is open (ATTACHed, or the
 * main database of a connection, the one asking included). */
static void op_delete(struct model *m)
{
    int e = pick(m, 0, 0);
    int via = rnd_via(m);
    int c, on, rc;

    if (e == LIVE) {
        op_create(m, rnd(m, 2) ? COWVFS_SNAPSHOT : COWVFS_BRANCH);
        return;
    }
    if (!m->d[e].att || rnd(m, 2))
        detach_all(m, e);
    /* the pragma or C API on main (the live database, a snapshot or a
     * branch, E itself too) or on an attached database of C */
    c = any_conn(m);
    on = m->mainof[c];
    for (int i = 1; i < m->nd; i++)
        if ((m->d[i].att & (1u << c)) && rnd(m, 3) == 0)
            on = i;
    rc = cow_op(m, via, c, on, "delete", m->d[e].name);
    if (m->d[e].att) {
        mlog(m, "refused: open on connections 0x%x", m->d[e].att);
        if (rc != SQLITE_BUSY)
            mfail(m, "delete of \"%s\" while it is open: %d (%s), not SQLITE_BUSY",
                  lname(m->d[e].name), rc, m->err);
        check_listing(m, rnd(m, 3));
        if (rnd(m, 2))
            check_every_conn(m, e, "after a refused delete");
        return;
    }
    if (rc != SQLITE_OK)
        mfail(m, "delete of \"%s\": %d %s", lname(m->d[e].name), rc, m->err);
    m->d[e].alive = 0;
    m->nsub--;
    if (rnd(m, 4) == 0) {
        rc = cow_op(m, via, c, on, "delete", m->d[e].name);
        if (rc != SQLITE_ERROR)
            mfail(m, "delete of \"%s\" again: %d (%s), not SQLITE_ERROR", lname(m->d[e].name), rc,
                  m->err);
    }
    check_listing(m, rnd(m, 3));
}

static void op_checkpoint(struct model *m)
{
    static const char *const modes[] = {"PASSIVE", "FULL", "RESTART", "TRUNCATE"};
    int c = any_conn(m), e;
    char sql[100], sb[16];

    if (m->d[m->mainof[c]].kind == COWVFS_SNAPSHOT)
        c = rnd(m, NCONN);
    e = m->mainof[c];
    for (int i = 1; i < m->nd; i++)
        if ((m->d[i].att & (1u << c)) && m->d[i].kind == COWVFS_BRANCH && rnd(m, 3) == 0)
            e = i;
    snprintf(sql, sizeof sql, "PRAGMA %s.wal_checkpoint(%s)", schema(m, c, e, sb),
             modes[rnd(m, 4)]);
    mlog(m, "c%d %s", c, sql);
    ok(m, c, sql);
    check_db(m, c, e, "after a checkpoint");
}

static void op_vacuum(struct model *m)
{
    int e = rnd(m, 3) == 0 ? pick(m, COWVFS_BRANCH, 0) : LIVE;
    int c = open_on(m, e);
    char sql[64];

    if (m->mainof[c] == e)
        snprintf(sql, sizeof sql, "%s", rnd(m, 2) ? "VACUUM" : "VACUUM main");
    else
        snprintf(sql, sizeof sql, "VACUUM e%d", e);
    mlog(m, "c%d %s", c, sql);
    ok(m, c, sql);
    check_db(m, c, e, "after VACUUM");
    check_db(m, other_on(m, e, c, -1), e, "after VACUUM, another connection");
}

static void op_attach(struct model *m)
{
    int e = pick(m, 0, 0);
    int c = rnd(m, NCONN);

    if (e == LIVE || (m->d[e].att & (1u << c)) || m->natt[c] >= MAX_ATT)
        return;
    do_attach(m, c, e);
    check_db(m, c, e, "after ATTACH");
}

static void op_detach(struct model *m)
{
    detach_one(m, rnd(m, NCONN), LIVE);
}

/* Closes and reopens one connection, or every one: then fsck, and with only
 * one connection open now and then a switch of the journal mode of the live
 * database or of a branch (ATTACHed, or as the main database of a
 * connection that stays open). */
static void op_reopen(struct model *m, int all)
{
    char sql[64], out[64], sb[16];

    if (!all) {
        int c = any_conn(m), e = m->mainof[c];
        mlog(m, "reopen c%d", c);
        conn_close(m, c);
        if (c < NCONN)
            conn_open(m, c);
        else
            xconn_open(m, c, e);
        check_db(m, c, e, "after reopening a connection");
        return;
    }
    mlog(m, "close all, fsck, reopen");
    for (int c = 0; c < NCONN; c++)
        conn_close(m, c);
    xconn_close_all(m, -1);
    test_fsck_clean(m->path);
    conn_open(m, 0);
    query_text(m, 0, "PRAGMA journal_mode", out, sizeof out);
    m->d[LIVE].wal = strcmp(out, "wal") == 0;
    if (rnd(m, 3) == 0) {
        const char *to = strcmp(out, "wal") == 0 ? "delete" : "wal";
        snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", to);
        mlog(m, "%s (was %s)", sql, out);
        query_text(m, 0, sql, out, sizeof out);
        if (strcmp(out, to) != 0)
            mfail(m, "%s gave %s", sql, out);
        m->d[LIVE].wal = strcmp(to, "wal") == 0;
    }
    int b = pick(m, COWVFS_BRANCH, 0);
    if (b != LIVE && rnd(m, 3) == 0) {
        int c = rnd(m, 2) ? 0 : NCONN;
        if (c == 0)
            do_attach(m, 0, b);
        else
            xconn_open(m, c, b);
        snprintf(sql, sizeof sql, "PRAGMA %s.journal_mode", schema(m, c, b, sb));
        query_text(m, c, sql, out, sizeof out);
        const char *to = strcmp(out, "wal") == 0 ? "delete" : "wal";
        snprintf(sql, sizeof sql, "PRAGMA %s.journal_mode=%s", schema(m, c, b, sb), to);
        mlog(m, "c%d %s (was %s)", c, sql, out);
        query_text(m, c, sql, out, sizeof out);
        if (strcmp(out, to) != 0)
            mfail(m, "%s gave %s", sql, out);
        m->d[b].wal = strcmp(to, "wal") == 0;
        check_db(m, c, b, "after a journal mode change");
        if (c == 0)
            do_detach(m, 0, b);
    }
    for (int c = 1; c < NCONN; c++)
        conn_open(m, c);
    verify_all(m);
}

/* Errors that must change nothing: bad and taken names, restores from
 * nothing, of a snapshot, from itself, deleting what is not there, writing
 * a snapshot (ATTACHed or as the main database), opening or ATTACHing what
 * is not there or the wrong kind. */
static void op_errors(struct model *m)
{
    static const char *const bad[] = {"", "a/b", "/", "\xff", "\xc0\x80", "\xed\xa0\x80",
                                      "ok\xf4\x90\x80\x80", NULL /* 256 bytes */};
    char name[300], sb[16];
    int r = rnd(m, 9), rc, want = SQLITE_ERROR;
    int e = pick(m, 0, 0);
    int via = rnd_via(m), c = rnd(m, NCONN);

    switch (r) {
    case 0: { /* a bad name */
        int i = rnd(m, (int)(sizeof bad / sizeof bad[0]));
        if (bad[i])
            snprintf(name, sizeof name, "%s", bad[i]);
        else {
            memset(name, 'n', 256);
            name[256] = 0;
        }
        if (i >= 3 && via == VIA_PRAGMA) /* not valid UTF-8: not in SQL text */
            via = VIA_API;
        if (via != VIA_PATH && e != LIVE)
            c = open_on(m, e);
        rc = cow_op(m, via, c, e, rnd(m, 2) ? "snapshot" : "branch", name);
        break;
    }
    case 1: /* a taken name */
        if (e == LIVE)
            return;
        snprintf(name, sizeof name, "%s", m->d[e].name);
        {
            int src = rnd(m, 2) ? LIVE : e;
            if (via != VIA_PATH)
                c = open_on(m, src);
            rc = cow_op(m, via, c, src, rnd(m, 2) ? "snapshot" : "branch", name);
        }
        break;
    case 2: { /* restore from nothing */
        int t = rnd(m, 2) ? LIVE : pick(m, COWVFS_BRANCH, 0);
        snprintf(name, sizeof name, "nothing-%d", ++m->counter);
        if (via != VIA_PATH)
            c = open_on(m, t);
        rc = cow_op(m, via, c, t, "restore", name);
        break;
    }
    case 3: { /* restore a branch from itself */
        int t = pick(m, COWVFS_BRANCH, 0);
        if (t == LIVE)
            return;
        if (via != VIA_PATH)
            c = open_on(m, t);
        rc = cow_op(m, via, c, t, "restore", m->d[t].name);
        break;
    }
    case 4: { /* restore a snapshot */
        int t = pick(m, COWVFS_SNAPSHOT, 0);
        int s = pick(m, 0, t);
        if (t == LIVE || s == LIVE)
            return;
        if (via != VIA_PATH)
            c = open_on(m, t);
        rc = cow_op(m, via, c, t, "restore", m->d[s].name);
        break;
    }
    case 5: /* delete what is not there */
        snprintf(name, sizeof name, "nothing-%d", ++m->counter);
        rc = cow_op(m, via, c, LIVE, "delete", name);
        break;
    case 6: { /* write a snapshot */
        int t = pick(m, COWVFS_SNAPSHOT, 0);
        char sql[100];
        if (t == LIVE)
            return;
        c = open_on(m, t);
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s.t(k, v) VALUES (%d, 'x')",
                 schema(m, c, t, sb), rnd(m, NKEYS));
        mlog(m, "c%d %s", c, sql);
        rc = run(m, c, sql) & 0xff;
        want = SQLITE_READONLY;
        check_db(m, c, t, "a snapshot after a write was refused");
        break;
    }
    case 7: { /* open as the main database what is not there, a snapshot as
               * a branch */
        int t = pick(m, COWVFS_SNAPSHOT, 0);
        char enc[800];
        sqlite3 *db = NULL;
        if (t != LIVE && rnd(m, 2))
            uri_enc(m->d[t].name, enc);
        else
            snprintf(enc, sizeof enc, "nothing-%d", ++m->counter);
        char *uri = sqlite3_mprintf("file:%s?vfs=cow&%s=%s", m->path,
                                    t != LIVE || rnd(m, 2) ? "branch" : "snapshot", enc);
        mlog(m, "open %s", uri);
        rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "cow");
        snprintf(m->err, sizeof m->err, "%s", db ? sqlite3_errmsg(db) : "");
        rc &= 0xff;
        sqlite3_close(db);
        sqlite3_free(uri);
        want = SQLITE_CANTOPEN;
        break;
    }
    default: { /* ATTACH what is not there, a snapshot as a branch */
        int t = pick(m, COWVFS_SNAPSHOT, 0);
        char enc[800];
        if (t != LIVE && rnd(m, 2))
            uri_enc(m->d[t].name, enc);
        else
            snprintf(enc, sizeof enc, "nothing-%d", ++m->counter);
        char *sql = sqlite3_mprintf("ATTACH 'file:%s?vfs=cow&%s=%s' AS x", m->path,
                                    t != LIVE || rnd(m, 2) ? "branch" : "snapshot", enc);
        mlog(m, "c%d %s", c, sql);
        rc = run(m, c, sql) & 0xff;
        sqlite3_free(sql);
        want = SQLITE_CANTOPEN;
        break;
    }
    }
    if (rc != want)
        mfail(m, "error case %d: %d (%s), not %d", r, rc, m->err, want);
    check_listing(m, rnd(m, 3));
    check_db(m, rnd(m, NCONN), LIVE, "after an error");
}

/* ---------------------------------------------------------------------------
 * The test
 */

START_TEST(test_model)
{
    struct model *m = calloc(1, sizeof *m);
    const char *env;
    char out[64];

    ck_assert_ptr_nonnull(m);
    m->rs = test_seed() ^ 0x6d6f64656c000000ull;
    m->nops = NOPS;
    if ((env = getenv("COW_MODEL_OPS")) != NULL && atoi(env) > 0)
        m->nops = atoi(env);
    m->trace = (env = getenv("COW_MODEL_TRACE")) != NULL && *env && strcmp(env, "0") != 0;
    m->before_e = -1;
    for (int c = NCONN; c < NALL; c++)
        m->mainof[c] = -1;
    m->dir = test_base_dir();
    ck_assert_int_ge(asprintf(&m->path, "%s/model.db", m->dir), 0);

    /* the live database, half of the keys filled */
    mdb_new(m, "", 0, 0);
    for (int k = 0; k < NKEYS; k++)
        m->d[LIVE].val[k] = -1;
    conn_open(m, 0);
    if (rnd(m, 2)) {
        query_text(m, 0, "PRAGMA journal_mode=wal", out, sizeof out);
        ck_assert_str_eq(out, "wal");
        m->d[LIVE].wal = 1;
    }
    ok(m, 0, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v)");
    {
        char sql[300];
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 2 FROM c WHERE i < %d) "
                 "INSERT INTO t(k, v) SELECT i, mval(i * 7 + 11) FROM c",
                 NKEYS - 2);
        ok(m, 0, sql);
        for (int k = 0; k < NKEYS; k += 2)
            m->d[LIVE].val[k] = k * 7 + 11;
    }
    for (int c = 1; c < NCONN; c++)
        conn_open(m, c);
    verify_all(m);

    for (m->op = 1; m->op <= m->nops; m->op++) {
        int r = rnd(m, 100);
        m->log[m->op % LOGN][0] = 0;
        if (r < 30)
            op_write(m);
        else if (r < 39)
            op_create(m, COWVFS_SNAPSHOT);
        else if (r < 47)
            op_create(m, COWVFS_BRANCH);
        else if (r < 57)
            op_restore(m);
        else if (r < 64)
            op_delete(m);
        else if (r < 68)
            op_checkpoint(m);
        else if (r < 71)
            op_vacuum(m);
        else if (r < 76)
            op_attach(m);
        else if (r < 80)
            op_detach(m);
        else if (r < 84)
            op_errors(m);
        else if (r < 85)
            check_listing(m, rnd(m, 3));
        else if (r < 86)
            op_undo(m);
        else if (r < 91)
            op_xconn(m);
        else if (r < 95)
            op_reader(m);
        else if (r < 97)
            op_reopen(m, 0);
        else
            op_reopen(m, 1);
        if (m->op % CHECK_EVERY == 0)
            verify_all(m);
    }

    /* the end: everything, then again after closing and reopening */
    m->log[m->op % LOGN][0] = 0;
    verify_all(m);
    op_reopen(m, 1);
    for (int c = 0; c < NCONN; c++)
        conn_close(m, c);
    xconn_close_all(m, -1);
    test_fsck_clean(m->path);

    unlink(m->path);
    rmdir(m->dir);
    free(m->path);
    free(m->dir);
    free(m->d);
    free(m);
}
END_TEST

/* ---------------------------------------------------------------------------
 * What the model found, alone
 */

static sqlite3 *plain_open(const char *path)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "cow");
    ck_assert_msg(rc == SQLITE_OK, "open %s: %d", path, rc);
    return db;
}

static void plain_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %d %s", sql, rc, err ? err : "");
    sqlite3_free(err);
}

static char *plain_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    ck_assert_msg(rc == SQLITE_OK, "%s: %d %s", sql, rc, sqlite3_errmsg(db));
    rc = sqlite3_step(st);
    ck_assert_msg(rc == SQLITE_ROW, "%s: %d %s", sql, rc, sqlite3_errmsg(db));
    v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

#define ck_assert_sql(db, sql, expect)                                                     \
    do {                                                                                    \
        char *v_ = plain_text((db), (sql));                                                 \
        ck_assert_msg(strcmp(v_, (expect)) == 0, "%s gave %s, not %s", (sql), v_, (expect)); \
        free(v_);                                                                           \
    } while (0)

/*
 * A database whose connections are in WAL mode, restored to a snapshot
 * taken in rollback mode: every connection must see the restored content
 * at its next transaction, and a write through one must not corrupt the
 * database.  The connection that reads first after the restore rebuilds
 * the WAL-index from the (empty) WAL; another that had cached the header
 * of an empty WAL finds the same header and keeps its stale pages.  Two
 * ways to have such a header cached: (0) every connection closed and
 * reopened before the restore; (1) an earlier restore to a rollback-mode
 * snapshot.
 */
START_TEST(test_restore_journal_modes)
{
    char *dir = NULL, *path = NULL;
    sqlite3 *a, *b;

    dir = test_base_dir();
    ck_assert_int_ge(asprintf(&path, "%s/modes.db", dir), 0);
    a = plain_open(path);
    ck_assert_sql(a, "PRAGMA journal_mode=delete", "delete");
    plain_exec(a, "CREATE TABLE t(k INTEGER PRIMARY KEY, x TEXT);"
                  "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)"
                  "INSERT INTO t SELECT i, printf('%0100d', i) FROM c");
    ck_assert_sql(a, "PRAGMA cow_snapshot('s2000')", "s2000");
    plain_exec(a, "DELETE FROM t WHERE k > 1500");
    ck_assert_sql(a, "PRAGMA cow_snapshot('s1500')", "s1500");
    ck_assert_sql(a, "PRAGMA journal_mode=wal", "wal");
    plain_exec(a, "DELETE FROM t WHERE k > 1000");
    if (_i == 0) {
        ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
        a = plain_open(path);
    }
    b = plain_open(path);
    ck_assert_sql(a, "SELECT count(*) FROM t", "1000");
    ck_assert_sql(b, "SELECT count(*) FROM t", "1000");
    if (_i == 1) {
        ck_assert_sql(a, "PRAGMA cow_restore('s2000')", "s2000");
        ck_assert_sql(a, "SELECT count(*) FROM t", "2000");
        ck_assert_sql(b, "SELECT count(*) FROM t", "2000");
    }
    ck_assert_sql(a, "PRAGMA cow_restore('s1500')", "s1500");
    ck_assert_sql(a, "SELECT count(*) FROM t", "1500");
    ck_assert_sql(b, "SELECT count(*) FROM t", "1500");
    plain_exec(b, "INSERT INTO t VALUES (5000, 'b')");
    ck_assert_sql(a, "PRAGMA integrity_check", "ok");
    ck_assert_sql(a, "SELECT count(*) FROM t", "1501");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    test_fsck_clean(path);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}
END_TEST

/*
 * A restore from a branch that another connection is inside a write
 * transaction on (rollback mode): the target must hold the branch's
 * committed content, and keep what is committed to it afterwards.  A
 * restore that copied the branch's rollback journal, hot, into the target
 * (as it once did) fails both cases: (0) the target's connections are in
 * WAL mode and ignore it; a commit after the restore is gone once the
 * database is closed and reopened in rollback mode (the journal is rolled
 * back over it); (1) the transaction spilled and the target's connections
 * are in rollback mode: rolling the journal back puts page 1 back as the
 * branch had it, change counter included, which is the counter an idle
 * connection of the target cached with other content (one commit on each
 * side since the branch), so that connection keeps reading its old pages.
 */
START_TEST(test_restore_source_in_txn)
{
    char *dir = NULL, *path = NULL, *uri = NULL;
    sqlite3 *a, *l, *bw;

    dir = test_base_dir();
    ck_assert_int_ge(asprintf(&path, "%s/srctxn.db", dir), 0);
    ck_assert_int_ge(asprintf(&uri, "file:%s?vfs=cow&branch=b", path), 0);
    a = plain_open(path);
    ck_assert_sql(a, "PRAGMA journal_mode=delete", "delete");
    plain_exec(a, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);"
                  "INSERT INTO t VALUES (1, 'orig')");
    ck_assert_sql(a, "PRAGMA cow_branch('b')", "b");
    if (_i == 0)
        ck_assert_sql(a, "PRAGMA journal_mode=wal", "wal");
    l = plain_open(path);
    plain_exec(a, "INSERT INTO t VALUES (2, 'live')");
    ck_assert_sql(l, "SELECT group_concat(v) FROM t", "orig,live");
    ck_assert_int_eq(sqlite3_open_v2(uri, &bw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "cow"),
                     SQLITE_OK);
    plain_exec(bw, "INSERT INTO t VALUES (3, 'branch')");
    plain_exec(bw, "PRAGMA cache_size=5; BEGIN");
    if (_i == 0)
        plain_exec(bw, "INSERT INTO t VALUES (4, 'uncommitted')");
    else
        plain_exec(bw, "WITH RECURSIVE c(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM c "
                       "WHERE i < 3000) INSERT INTO t SELECT i, printf('%0300d', i) FROM c");
    ck_assert_sql(a, "PRAGMA cow_restore('b')", "b");
    plain_exec(bw, "ROLLBACK");
    ck_assert_int_eq(sqlite3_close(bw), SQLITE_OK);
    ck_assert_sql(a, "SELECT group_concat(v) FROM t", "orig,branch");
    ck_assert_sql(l, "SELECT group_concat(v) FROM t", "orig,branch");
    plain_exec(a, "INSERT INTO t VALUES (5, 'after')");
    ck_assert_int_eq(sqlite3_close(l), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    a = plain_open(path);
    ck_assert_sql(a, "SELECT group_concat(v) FROM t", "orig,branch,after");
    ck_assert_sql(a, "PRAGMA integrity_check", "ok");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    test_fsck_clean(path);
    unlink(path);
    rmdir(dir);
    free(uri);
    free(path);
    free(dir);
}
END_TEST

Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");

    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_model);
    suite_add_tcase(s, tc);

    tc = tcase_create("restore_modes");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_restore_journal_modes, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("restore_source_in_txn");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_restore_source_in_txn, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
