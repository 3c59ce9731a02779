/*
 * model.c - the model of the model test (model_run.c): reporting, values
 * and names, the model's databases and connections, comparing with the
 * model (see model.h).  Every open goes through the target's VFS
 * (m->vfs) and container (m->path).
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
#include "model.h"

/* ---------------------------------------------------------------------------
 * Reporting
 */

/* Appends a step to the current operation's entry of the log. */
void mlog(struct model *m, const char *fmt, ...)
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
_Noreturn void mfail(struct model *m, const char *fmt, ...)
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

/* A random integer in [0, N), from the model's PRNG. */
int rnd(struct model *m, int n)
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
const char *schema(struct model *m, int c, int e, char buf[16])
{
    if (m->mainof[c] == e)
        return "main";
    if (c >= NCONN || !(m->d[e].att & (1u << c)))
        mfail(m, "the test asked connection %d (main e%d) for e%d, which it does not have open",
              c, m->mainof[c], e);
    return sname(e, buf);
}

/* For messages. */
const char *dname(const struct model *m, int e)
{
    return e == LIVE ? "the live database" : m->d[e].name;
}

/* NAME cut to 40 bytes for the log (four buffers in turn). */
const char *lname(const char *name)
{
    static char buf[4][64];
    static int i;
    char *b = buf[i++ % 4];

    if (strlen(name) <= 40)
        return name;
    snprintf(b, sizeof buf[0], "%.32s...(%zu)", name, strlen(name));
    return b;
}

/* "snapshot", "branch" or "live" for KIND. */
const char *kname(int kind)
{
    return kind == COWVFS_SNAPSHOT ? "snapshot" : kind == COWVFS_BRANCH ? "branch" : "live";
}

/* %-encodes S for a URI into OUT (3 * strlen(S) + 1 bytes). */
void uri_enc(const char *s, char *out)
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
int run(struct model *m, int c, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(m->db[c], sql, NULL, NULL, &err);

    snprintf(m->err, sizeof m->err, "%s", err ? err : "");
    sqlite3_free(err);
    return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(m->db[c]);
}

/* Runs SQL on connection C; fails the model unless it succeeds. */
void ok(struct model *m, int c, const char *sql)
{
    int rc = run(m, c, sql);
    if (rc != SQLITE_OK)
        mfail(m, "connection %d: %s: %d %s", c, sql, rc, m->err);
}

/* The first column of the first row of SQL on C as text, in OUT. */
void conn_text(struct model *m, int c, const char *sql, char *out, size_t n)
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
int mdb_new(struct model *m, const char *name, int kind, int source)
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
int pick(struct model *m, int kind, int not)
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
void new_name(struct model *m, int kind, char out[256])
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

/* Opens connection C (< NCONN) on the live database, with the mval()
 * function (and a 10-page cache for SPILL_CONN); fails the model if it
 * cannot. */
void conn_open(struct model *m, int c)
{
    int rc = sqlite3_open_v2(m->path, &m->db[c],
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, m->vfs);
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
void xconn_open(struct model *m, int c, int e)
{
    char enc[800];
    int snap = m->d[e].kind == COWVFS_SNAPSHOT;
    int flags =
        SQLITE_OPEN_URI | (snap && rnd(m, 2) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);

    uri_enc(m->d[e].name, enc);
    char *uri = sqlite3_mprintf("file:%s?vfs=%s&%s=%s", m->path, m->vfs,
                                snap ? "snapshot" : "branch", enc);
    mlog(m, "c%d opens e%d as its main database", c, e);
    int rc = sqlite3_open_v2(uri, &m->db[c], flags, m->vfs);
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

/* Closes connection C (it must close) and forgets what it had ATTACHed. */
void conn_close(struct model *m, int c)
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
void xconn_close_all(struct model *m, int e)
{
    for (int c = NCONN; c < NALL; c++)
        if (m->db[c] && (e < 0 || m->mainof[c] == e)) {
            mlog(m, "close c%d (main e%d)", c, m->mainof[c]);
            conn_close(m, c);
        }
}

/* ATTACHes snapshot or branch E on connection C as schema "eE". */
void do_attach(struct model *m, int c, int e)
{
    char enc[800], sb[16];

    uri_enc(m->d[e].name, enc);
    char *sql = sqlite3_mprintf("ATTACH 'file:%s?vfs=%s&%s=%s' AS %s", m->path, m->vfs,
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

/* DETACHes E from connection C. */
void do_detach(struct model *m, int c, int e)
{
    char sql[64];

    snprintf(sql, sizeof sql, "DETACH e%d", e);
    mlog(m, "c%d detach e%d", c, e);
    ok(m, c, sql);
    m->d[e].att &= ~(1u << c);
    m->natt[c]--;
}

/* Detaches E everywhere and closes the connections whose main one it is. */
void detach_all(struct model *m, int e)
{
    for (int c = 0; c < NCONN; c++)
        if (m->d[e].att & (1u << c))
            do_detach(m, c, e);
    xconn_close_all(m, e);
}

/* Detaches from C a random database other than KEEP. */
void detach_one(struct model *m, int c, int keep)
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
int any_conn(struct model *m)
{
    int c = rnd(m, NALL);

    return m->db[c] ? c : rnd(m, NCONN);
}

/* A connection with E open: one that has it, else one E is ATTACHed to. */
int open_on(struct model *m, int e)
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
int main_on(struct model *m, int e)
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
int other_on(struct model *m, int e, int c, int avoid)
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
void check_vals(struct model *m, int c, int e, const int *want, const char *why)
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
void check_db(struct model *m, int c, int e, const char *why)
{
    check_vals(m, c, e, m->d[e].val, why);
}

/* Compares E through every connection that has it open. */
void check_every_conn(struct model *m, int e, const char *why)
{
    for (int c = 0; c < NALL; c++)
        if (e == LIVE ? c < NCONN : (m->d[e].att & (1u << c)) != 0)
            check_db(m, c, e, why);
}

/* Compares E through a connection, ATTACHing it for the while if no
 * connection has it open; with INTEGRITY, runs integrity_check on it too. */
void check_any(struct model *m, int e, int integrity, const char *why)
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
        conn_text(m, c, sql, out, sizeof out);
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
void check_listing(struct model *m, int way)
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
void verify_all(struct model *m)
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
