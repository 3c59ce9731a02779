/*
 * model_run.c - a model-based test of snapshots and branches, through
 * the VFS as an application uses them: model_run() on a target (model.h
 * struct model_target), the cow VFS on a container file (the model suite,
 * check_model.c) or cow-rados on a container in RADOS (check_rados.c's
 * case model).
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
 * instead of the target's count (NOPS on a container file).
 *
 * The model itself (its databases, connections and comparisons) is in
 * model.c and model.h; what this test found, alone, is the model_found
 * suite (check_model_found.c).
 */
#include <check.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowvfs.h"
#include "testutil.h"
#include "model.h"

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
    conn_text(m, c, sql, out, sizeof out);
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
    conn_text(m, c, sql, out, sizeof out);
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

/* Relocation as one more random operation (issue 14): a balance of the
 * whole container from a connection on the live database, moving every
 * group it can, with snapshots and branches open or not; then every
 * database must read exactly as the model says (their sharing is checked
 * by the suites reloc and usage). */
static void op_balance(struct model *m)
{
    int c = open_on(m, LIVE);
    char out[160];
    mlog(m, "c%d PRAGMA cow_balance=100", c);
    conn_text(m, c, "PRAGMA cow_balance=100", out, sizeof out);
    if (strncmp(out, "groups=", 7) != 0)
        mfail(m, "connection %d: PRAGMA cow_balance answered '%s'", c, out);
    verify_all(m);
}

/* As if another process took the ownership of the container and gave it
 * back without changing anything (issue 15): the store publishes what it
 * has and reloads everything from the container; every database must read
 * exactly as the model says. */
static void op_handoff(struct model *m)
{
    int c = open_on(m, LIVE);
    mlog(m, "c%d PRAGMA cow_test_handoff", c);
    ok(m, c, "PRAGMA cow_test_handoff");
    verify_all(m);
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
    m->fsck_clean(m->path);
    conn_open(m, 0);
    conn_text(m, 0, "PRAGMA journal_mode", out, sizeof out);
    m->d[LIVE].wal = strcmp(out, "wal") == 0;
    if (rnd(m, 3) == 0) {
        const char *to = strcmp(out, "wal") == 0 ? "delete" : "wal";
        snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", to);
        mlog(m, "%s (was %s)", sql, out);
        conn_text(m, 0, sql, out, sizeof out);
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
        conn_text(m, c, sql, out, sizeof out);
        const char *to = strcmp(out, "wal") == 0 ? "delete" : "wal";
        snprintf(sql, sizeof sql, "PRAGMA %s.journal_mode=%s", schema(m, c, b, sb), to);
        mlog(m, "c%d %s (was %s)", c, sql, out);
        conn_text(m, c, sql, out, sizeof out);
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
        char *uri = sqlite3_mprintf("file:%s?vfs=%s&%s=%s", m->path, m->vfs,
                                    t != LIVE || rnd(m, 2) ? "branch" : "snapshot", enc);
        mlog(m, "open %s", uri);
        rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, m->vfs);
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
        char *sql = sqlite3_mprintf("ATTACH 'file:%s?vfs=%s&%s=%s' AS x", m->path, m->vfs,
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

/* Runs the model test on T (model.h). */
void model_run(const struct model_target *t)
{
    struct model *m = calloc(1, sizeof *m);
    const char *env;
    char out[64];

    ck_assert_ptr_nonnull(m);
    m->vfs = t->vfs;
    m->path = t->path;
    m->fsck_clean = t->fsck_clean;
    m->rs = test_seed() ^ 0x6d6f64656c000000ull;
    m->nops = t->nops;
    if ((env = getenv("COW_MODEL_OPS")) != NULL && atoi(env) > 0)
        m->nops = atoi(env);
    m->trace = (env = getenv("COW_MODEL_TRACE")) != NULL && *env && strcmp(env, "0") != 0;
    m->before_e = -1;
    for (int c = NCONN; c < NALL; c++)
        m->mainof[c] = -1;

    /* the live database, half of the keys filled */
    mdb_new(m, "", 0, 0);
    for (int k = 0; k < NKEYS; k++)
        m->d[LIVE].val[k] = -1;
    conn_open(m, 0);
    if (rnd(m, 2)) {
        conn_text(m, 0, "PRAGMA journal_mode=wal", out, sizeof out);
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
        else if (r < 96)
            op_reopen(m, 0);
        else if (r < 97)
            op_balance(m);
        else if (r < 98)
            op_handoff(m);
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
    m->fsck_clean(m->path);

    free(m->d);
    free(m);
}
