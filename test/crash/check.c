/*
 * check.c - the crash simulator's checks of one crash state (see
 * driver.c).
 */
#include "crash.h"

/* ---------------------------------------------------------------------------
 * Checking one crash state
 */

/* 1 if what the ops O did must survive crash state S: the operation had
 * returned (snapshots, branches and deletions are durable when they
 * return: include/store.h), or its last flush had completed. */
int span_done(const struct opspan *o, const struct state *s)
{
    return o->start != SIZE_MAX && (s->point >= o->ret || s->point >= o->durable);
}

/* What crash state S must hold of snapshot or branch REC: it exists once
 * its making survives and until its deletion begins, it is gone before
 * its making began and once its deletion survives, and in between (a
 * crash inside either operation) it may be there or not. */
int rec_expect(const struct snaprec *rec, const struct state *s)
{
    if (s->point <= rec->made.start || span_done(&rec->gone, s))
        return REC_ABSENT;
    if (span_done(&rec->made, s) && s->point <= rec->gone.start)
        return REC_PRESENT;
    return REC_EITHER;
}

void bounds_at(const struct run *r, const struct state *s, struct bounds *b)
{
    b->kmax = -1;
    b->kmin = -1;
    b->kmin_step = -1;
    b->kmin_rec = -1;
    b->inflight = -1;
    for (size_t i = 0; i < r->nsteps; i++) {
        const struct step *st = &r->steps[i];
        if (st->start < s->point && st->ret >= s->point && b->inflight < 0)
            b->inflight = (int)i;
        if (st->kind != STEP_TXN)
            continue;
        if (st->start < s->point)
            b->kmax = st->txn;
        if (st->ret <= s->point && (st->durable || s->app_crash)) {
            b->kmin = st->txn;
            b->kmin_step = (int)i;
        }
    }
    /* Making a snapshot writes back and commits everything before it with
     * a flush (store/subvol.c), so the live database keeps at least the
     * transaction that was committed then, whatever synchronous says. */
    for (size_t i = 0; i < r->nrecs; i++) {
        if (span_done(&r->recs[i].made, s) && r->recs[i].live_k > b->kmin) {
            b->kmin = r->recs[i].live_k;
            b->kmin_step = -1;
            b->kmin_rec = (int)i;
        }
    }
}

/* fscks image I (the memfd under g.im[I].p); 0 if clean. */
static int check_fsck(int i, const char *when, struct msg *m)
{
    char *rep = NULL;
    size_t rlen = 0;
    FILE *out = open_memstream(&rep, &rlen);
    struct cow_fsck_result res;
    int n = cow_fsck(g.im[i].path, COW_FSCK_DATA | (g.verbose ? COW_FSCK_NOTES : 0), out, &res);
    fclose(out);
    if (n != 0)
        msg_add(m, "fsck %s%s: %d problems:\n%.2000s", when, i ? " (second container)" : "", n,
                rep);
    else if (g.verbose)
        printf("fsck %s: clean (generation %" PRIu64 ", %" PRIu64 " log records, %" PRIu64
               " notes)\n%s",
               when, res.generation, res.log_records, res.notes, rep);
    free(rep);
    return n != 0;
}

/*
 * Checks file ROLE of a crash state, SIZE bytes in BUF (zero-padded to a
 * whole sector): every sector must hold zeros or something SQLite once
 * wrote there (else garbage), and the whole file must equal SQLite's view
 * of it at one instant no later than TMAX (else a mix of old and new
 * content, or stale data).  Except the WAL: the VFS makes it nodatacow
 * (docs/DESIGN.md, "Nodatacow WAL"), overwritten in place, so a crash may
 * leave old and new sectors side by side, as any file system that writes
 * in place does; SQLite's frame salts and checksums sort them out, and
 * the database must still open to an acknowledged state.  Garbage (bytes
 * SQLite never wrote there: stale data of another file) still fails.
 */
/* The VFS grows a nodatacow WAL in chunks of written zeros (vfs_io.c
 * cowWalGrow, COWVFS_WAL_GROW_MAX): to a multiple of 4 KiB less than
 * 256 KiB + 4 KiB past the end of the write that made it grow, which is
 * SQLite's size right after that write (a truncate sets the size
 * exactly). */
#define WAL_GROW_SLACK (256 * 1024 + 4096)

static int check_file(int role, const uint8_t *buf, uint64_t size, uint64_t tmax, int grows,
                      struct msg *m)
{
    const struct shadow *sh = &g.shadow[role];
    const char *name = role_store_name[role];
    static const struct verlist none;
    struct tset a = {0}, b = {0};
    int nbad = 0, mixed = 0, bad = 0;
    uint64_t mixed_at = 0;

    tset_add(&a, 0, tmax + 1);
    /* a WAL grown by a chunk: SQLite's size at some instant, plus less
     * than a chunk, 4 KiB aligned; the sectors past what SQLite ever
     * wrote must hold zeros (below: they have no history) */
    int grown = grows && role == ROLE_WAL && size % 4096 == 0;
    if (size > sh->maxsize && !(grown && size < sh->maxsize + WAL_GROW_SLACK)) {
        msg_add(m, "data: %s is %" PRIu64 " bytes, more than SQLite ever wrote (%" PRIu64 ")\n",
                name, size, sh->maxsize);
        bad = 1;
    }
    tset_match(&a, &sh->sizes, size, 1, &b);
    if (b.n == 0 && grown && size >= WAL_GROW_SLACK)
        tset_match_range(&a, &sh->sizes, size - WAL_GROW_SLACK + 1, size, 1, &b);
    else if (b.n == 0 && grown)
        tset_match_range(&a, &sh->sizes, 0, size, 1, &b);
    if (b.n == 0 && !bad) {
        msg_add(m, "data: %s is %" PRIu64 " bytes, a size it never had up to the crash\n", name,
                size);
        bad = 1;
    }
    struct tset t = a;
    a = b;
    b = t;
    for (uint64_t i = 0; i * SECTOR < size; i++) {
        const uint8_t *sec = buf + i * SECTOR;
        uint64_t h = sector_hash(sec);
        int ever = tset_match(&a, i < sh->nsec ? &sh->sec[i] : &none, h, 0, &b);
        if (!ever && h != g.zero_hash) {
            if (nbad++ < 4) {
                msg_add(m, "data: %s bytes %" PRIu64 "..%" PRIu64
                           " hold what SQLite never wrote there:",
                        name, i * SECTOR, i * SECTOR + SECTOR - 1);
                for (int k = 0; k < 16; k++)
                    msg_add(m, " %02x", sec[k]);
                msg_add(m, " ...\n");
            }
            bad = 1;
        } else if (b.n == 0 && a.n != 0 && !mixed) {
            mixed = 1;
            mixed_at = i;
        }
        t = a;
        a = b;
        b = t;
    }
    if (nbad > 4)
        msg_add(m, "data: %s: %d such sectors in all\n", name, nbad);
    if (mixed && !nbad && role != ROLE_WAL) {
        msg_add(m, "data: %s (%" PRIu64 " bytes) is no state SQLite ever saw: bytes %" PRIu64
                   "..%" PRIu64 " do not belong with the bytes before them (stale or mixed "
                   "content)\n",
                name, size, mixed_at * SECTOR, mixed_at * SECTOR + SECTOR - 1);
        bad = 1;
    }
    if (g.verbose)
        printf("data: %s: %" PRIu64 " bytes, %d sectors of garbage, %s\n", name, size, nbad,
               mixed ? (role == ROLE_WAL ? "no single instant (in place: allowed)"
                                         : "no single instant")
                     : "as SQLite saw it at some instant");
    free(a.iv);
    free(b.iv);
    return bad;
}

/* The last shadow change that may be durable at a crash before op POINT:
 * every change that began before POINT. */
static uint64_t tmax_at(size_t point)
{
    uint64_t lo = 0, hi = g.vclock;
    while (lo < hi) {
        uint64_t mid = (lo + hi + 1) / 2;
        if (g.mut_op[mid] < point)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Opens the image read-only with the store (its log replayed in memory)
 * and checks db, db-journal and db-wal with check_file().  Sets PRE[i] to
 * what the image holds of R's snapshot or branch i before recovery: 0
 * (nothing), its kind, or COW_SUBVOL_INCOMPLETE (an unfinished branch,
 * which only the next writable open deletes). */
static int check_data(const struct run *r, size_t point, int *pre, struct msg *m)
{
    cow_store *st = NULL;
    int bad = 0;
    uint64_t tmax = tmax_at(point);
    g.cur = &ramdevs[0].dev;
    int rc = cow_store_open(g.path, COW_OPEN_READONLY, &st);
    if (rc != COW_OK) {
        msg_add(m, "data: the store does not open the crash image read-only: %s: %s\n",
                cow_strerror(rc), cow_store_last_error(NULL));
        bad = 1;
        goto out;
    }
    for (int role = 0; role < NROLES; role++) {
        cow_file *f = NULL;
        uint64_t size = 0;
        int exists = 0;
        uint8_t *buf = NULL;
        rc = cow_exists(st, role_store_name[role], &exists);
        if (rc == COW_OK && exists)
            rc = cow_file_open(st, role_store_name[role], 0, &f);
        if (rc == COW_OK && exists)
            rc = cow_file_size(f, &size);
        size_t n = (size_t)((size + SECTOR - 1) / SECTOR * SECTOR), nread = 0;
        if (rc == COW_OK) {
            buf = xrealloc(NULL, n);
            if (n)
                rc = cow_file_read(f, buf, n, 0, &nread);
        }
        if (rc != COW_OK) {
            msg_add(m, "data: %s: %s: %s\n", role_store_name[role], cow_strerror(rc),
                    cow_store_last_error(st));
            bad = 1;
        } else {
            int grows = 0;
            if (f && cow_file_nodatacow(f, &grows) != COW_OK)
                grows = 0;
            bad |= check_file(role, buf, size, tmax, grows, m); /* a missing file is empty */
        }
        free(buf);
        if (f)
            cow_file_close(f);
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        rc = cow_subvol_kind(st, r->recs[i].name, &pre[i]);
        if (rc == COW_ENOENT) {
            pre[i] = 0;
        } else if (rc != COW_OK) {
            msg_add(m, "data: snapshot or branch %s: %s: %s\n", r->recs[i].name,
                    cow_strerror(rc), cow_store_last_error(st));
            pre[i] = -1;
            bad = 1;
        }
    }
out:
    if (st)
        cow_store_close(st);
    g.cur = NULL;
    return bad;
}

/* sqlite3_step() for loops: SQLITE_OK for a row, SQLITE_DONE at the end,
 * else the error. */
static int step_row(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/*
 * Reads database DB through SQLite into *GOT: PRAGMA integrity_check, the
 * schema, table tx and every row, each of which must carry its checksum
 * and a transaction no later than KMAX (KMAX_IS says which that is).  *PK
 * is the last transaction tx holds (-1 without tx).  WHO names the
 * database in messages.  Returns 0,
 * 1 if the content is wrong, -1 if it could not be read.
 */
static int read_db(sqlite3 *db, const char *who, int kmax, const char *kmax_is, struct snap *got,
                   int *pk, struct msg *m)
{
    sqlite3_stmt *st = NULL;
    int bad = 0, has_tx = 0, k = -1;
    memset(got, 0, sizeof *got);
    *pk = -1;
    /* integrity_check */
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    int nrow = 0, ok = 0;
    while (rc == SQLITE_OK && (rc = step_row(st)) == SQLITE_OK) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (nrow++ == 0 && t && strcmp(t, "ok") == 0)
            ok = 1;
        else if (nrow < 6)
            msg_add(m, "%s: integrity_check: %s\n", who, t ? t : "(null)");
    }
    if (rc != SQLITE_DONE) {
        msg_add(m, "%s: integrity_check: %s (last log: %s)\n", who, sqlite3_errmsg(db),
                g.lastlog);
        goto fatal;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!ok || nrow != 1)
        goto fatal;
    /* the schema */
    rc = sqlite3_prepare_v2(db, "SELECT type, name FROM sqlite_schema", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = step_row(st)) == SQLITE_OK) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        int ti;
        char c, extra;
        if (!type || !name) {
            rc = SQLITE_CORRUPT;
            break;
        }
        if (strcmp(type, "table") == 0 && strcmp(name, "tx") == 0)
            has_tx = 1;
        else if (strcmp(type, "table") == 0 && sscanf(name, "t%d%c", &ti, &extra) == 1 &&
                 ti >= 0 && ti < NT)
            got->exists[ti] = 1;
        else if (strcmp(type, "index") == 0 && sscanf(name, "i%d%c%c", &ti, &c, &extra) == 2 &&
                 ti >= 0 && ti < NT && (c == 'a' || c == 'b'))
            got->idx[ti] |= (uint8_t)(c == 'a' ? 1 : 2);
        else {
            msg_add(m, "%s: unexpected %s %s in the schema\n", who, type, name);
            bad = 1;
        }
    }
    if (rc != SQLITE_DONE) {
        msg_add(m, "%s: reading the schema: %s\n", who, sqlite3_errmsg(db));
        goto fatal;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* tx: rows 0..k, each with its tag */
    if (has_tx) {
        int64_t expect = 0;
        rc = sqlite3_prepare_v2(db, "SELECT n, tag FROM tx ORDER BY n", -1, &st, NULL);
        while (rc == SQLITE_OK && (rc = step_row(st)) == SQLITE_OK) {
            int64_t n = sqlite3_column_int64(st, 0);
            if (n != expect || sqlite3_column_int64(st, 1) != tx_tag(n)) {
                msg_add(m, "%s: tx holds row %" PRId64 " (tag %s) where row %" PRId64
                           " belongs\n",
                        who, n, sqlite3_column_int64(st, 1) == tx_tag(n) ? "right" : "wrong",
                        expect);
                bad = 1;
                break;
            }
            expect++;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_OK) {
            msg_add(m, "%s: reading tx: %s\n", who, sqlite3_errmsg(db));
            goto fatal;
        }
        sqlite3_finalize(st);
        st = NULL;
        k = (int)expect - 1;
        if (k < 0) {
            msg_add(m, "%s: tx exists but is empty\n", who);
            bad = 1;
        }
    }
    /* the rows of every table */
    for (int ti = 0; ti < NT; ti++) {
        if (!got->exists[ti])
            continue;
        char sql[64];
        int nck = 0;
        snprintf(sql, sizeof sql, "SELECT id, txn, k, pad, ck FROM t%d", ti);
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        while (rc == SQLITE_OK && (rc = step_row(st)) == SQLITE_OK) {
            int64_t id = sqlite3_column_int64(st, 0), txn = sqlite3_column_int64(st, 1);
            int64_t kk = sqlite3_column_int64(st, 2), ck = sqlite3_column_int64(st, 4);
            const void *pad = sqlite3_column_blob(st, 3);
            size_t n = (size_t)sqlite3_column_bytes(st, 3);
            if (!pad)
                pad = "";
            if (row_ck(ti, id, txn, kk, pad, n) != ck && nck++ < 3) {
                msg_add(m, "%s: t%d row %" PRId64 " (txn %" PRId64
                           ") fails its checksum: garbage in a row\n",
                        who, ti, id, txn);
                bad = 1;
            }
            if (txn > kmax) {
                msg_add(m, "%s: t%d row %" PRId64 " was written by txn %" PRId64
                           ", later than txn %d, %s\n",
                        who, ti, id, txn, kmax, kmax_is);
                bad = 1;
            }
            got->count[ti]++;
            got->sum[ti] += row_hash(ti, id, txn, kk, pad, n, ck);
        }
        if (rc != SQLITE_DONE) {
            msg_add(m, "%s: reading t%d: %s (last log: %s)\n", who, ti, sqlite3_errmsg(db),
                    g.lastlog);
            goto fatal;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    *pk = k;
    return bad;
fatal:
    sqlite3_finalize(st);
    return -1;
}

/* Compares GOT, which holds transaction K by its table tx, with WANT, the
 * model after that transaction; WHY says what a difference means. */
static int snap_compare(const char *who, int k, const struct snap *got, const struct snap *want,
                        const char *why, struct msg *m)
{
    int bad = 0;
    for (int ti = 0; ti < NT; ti++) {
        if (got->exists[ti] != want->exists[ti] || got->idx[ti] != want->idx[ti] ||
            got->count[ti] != want->count[ti] || got->sum[ti] != want->sum[ti]) {
            msg_add(m, "%s: tx says txn %d, but t%d differs from the model after it: "
                       "%s, indexes %d, %" PRIu64 " rows (model: %s, indexes %d, %" PRIu64
                       " rows%s): %s\n",
                    who, k, ti, got->exists[ti] ? "exists" : "missing", got->idx[ti],
                    got->count[ti], want->exists[ti] ? "exists" : "missing", want->idx[ti],
                    want->count[ti],
                    got->count[ti] == want->count[ti] && got->sum[ti] != want->sum[ti]
                        ? ", same count, different rows"
                        : "",
                    why);
            bad = 1;
        }
    }
    return bad;
}

/* The store's kinds and the VFS's are compared as they are. */
_Static_assert(COW_SUBVOL_SNAPSHOT == COWVFS_SNAPSHOT && COW_SUBVOL_BRANCH == COWVFS_BRANCH,
               "snapshot kinds differ between store.h and cowvfs.h");

/* The listing of a container after recovery (cowvfs_container_list), per
 * record of the run: its kind, or 0 if it is not listed. */
struct listing {
    const struct run *r;
    int *kind;
    int *src_deleted;    /* listed with source "(deleted)" */
    struct usage *usage; /* the space of each listed one */
    struct msg *m;
    int bad;
};

/* cowvfs_container_list()'s callback: fills L->kind. */
static int listing_cb(void *arg, const cowvfs_subvol_info *si)
{
    struct listing *l = arg;
    const struct snaprec *rec = rec_find(l->r, si->zName);
    if (!rec) {
        msg_add(l->m, "snapshots: %s %s is listed, but the workload never made it\n",
                si->eKind == COWVFS_SNAPSHOT ? "snapshot" : "branch", si->zName);
        l->bad = 1;
        return 0;
    }
    size_t i = (size_t)(rec - l->r->recs);
    l->kind[i] = si->eKind;
    l->usage[i].listed = 1;
    l->usage[i].exclusive = si->nExclusive;
    l->usage[i].shared = si->nShared;
    l->src_deleted[i] = si->zSource && strcmp(si->zSource, "(deleted)") == 0;
    if (si->eKind != rec->kind || (si->zSource == NULL) != (rec->source[0] == 0) ||
        (si->zSource && !l->src_deleted[i] && strcmp(si->zSource, rec->source) != 0)) {
        msg_add(l->m, "snapshots: %s is listed as a %s of %s, but it is a %s of %s\n",
                si->zName, si->eKind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                si->zSource ? si->zSource : "the live database",
                rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                rec->source[0] ? rec->source : "the live database");
        l->bad = 1;
    }
    return 0;
}

/*
 * Relocation keeps sharing (issue 14): no balance changes the space a
 * snapshot or branch references, exclusive or shared (store.h
 * cow_store_balance), and a crash inside one leaves each block group
 * where it was or where it went.  So in a crash state inside balance step
 * B->inflight (S), once recovered to the transaction K that was the last
 * committed when the balance began, every snapshot and branch must have
 * exactly the space the record phase saw then (workloads.c balance_step;
 * the state before and after the balance have the same).  Only states
 * after the balance's first commit is durable are compared: that commit
 * also makes durable what the store held in memory when the balance began
 * (in DELETE mode the journal's unlink after a COMMIT: a crash before it
 * brings the journal back, which a snapshot made inside that transaction
 * shares); before it, the state is whatever the last flush before the
 * balance left, which the other checks bound.  L is the listing after
 * recovery.
 *
 * That this check can fail was shown by comparing with 4096 bytes more
 * exclusive for the first snapshot or branch compared in each state (a
 * hack since removed): `crash --workload reloc-delete --min-states 600`
 * then failed 146 of 819 states of seed 366946666, each "sharing:
 * relocation changed the space of b0".
 */
static int check_usage(const struct run *r, const struct state *s, const struct bounds *b,
                       int k, const struct listing *l, struct msg *m)
{
    if (b->inflight < 0)
        return 0;
    const struct step *st = &r->steps[b->inflight];
    if (!st->size_before || !st->usage || k != st->usage_k || st->committed == SIZE_MAX ||
        s->point <= st->committed)
        return 0;
    int bad = 0;
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct usage *want = i < st->nusage ? &st->usage[i] : NULL, *got = &l->usage[i];
        if (!got->listed && (!want || !want->listed))
            continue;
        g.usagechecks++;
        if (want && got->listed == want->listed && got->exclusive == want->exclusive &&
            got->shared == want->shared)
            continue;
        msg_add(m, "sharing: relocation changed the space of %s: after a crash inside %s "
                   "(ops %zu..%zu) and recovery to txn %d, %s",
                r->recs[i].name, st->what, st->start, st->ret, k,
                got->listed ? "listed" : "not listed");
        if (got->listed)
            msg_add(m, " with %lld bytes exclusive and %lld shared", got->exclusive, got->shared);
        if (want && want->listed)
            msg_add(m, "; when the balance began, %lld and %lld\n", want->exclusive,
                    want->shared);
        else
            msg_add(m, "; it was not listed when the balance began\n");
        bad = 1;
    }
    return bad;
}

/* Adds WHAT and the ops of O to M. */
void span_describe(struct msg *m, const char *what, const struct opspan *o)
{
    msg_add(m, "%s at ops %zu..%zu", what, o->start, o->ret);
    if (o->durable != SIZE_MAX)
        msg_add(m, ", its last flush op %zu", o->durable - 1);
}

/*
 * Checks the snapshots and branches of crash state S after recovery, the
 * live database open (so the container stays open): the listing holds
 * exactly those that must or may exist (rec_expect), each of the kind and
 * source made, and the same as before recovery (PRE, from check_data: an
 * unfinished branch only while its making was in flight); each one opens
 * through SQLite, passes integrity_check, and holds exactly the state it
 * was made of.  Branches open read-write, so SQLite may write them (the
 * fsck after recovery runs later).  The space of each, as listed before
 * any is opened, is checked by check_usage() with LIVE_K, the transaction the
 * live database recovered to (-1: unknown), and B its bounds.
 * *UNFINISHED is set if PRE had an
 * unfinished branch, which the live database's open must have deleted.
 */
static int check_snaps(const struct run *r, const struct state *s, const struct bounds *b,
                       int live_k, const int *pre, int checkpoint, int *unfinished,
                       struct msg *m)
{
    struct listing l = {r, NULL, NULL, NULL, m, 0};
    char *err = NULL;
    l.kind = xrealloc(NULL, r->nrecs * sizeof *l.kind);
    l.src_deleted = xrealloc(NULL, r->nrecs * sizeof *l.src_deleted);
    memset(l.kind, 0, r->nrecs * sizeof *l.kind);
    memset(l.src_deleted, 0, r->nrecs * sizeof *l.src_deleted);
    l.usage = xrealloc(NULL, r->nrecs * sizeof *l.usage);
    memset(l.usage, 0, r->nrecs * sizeof *l.usage);
    int rc = cowvfs_container_list(g.path, listing_cb, &l, &err);
    if (rc != SQLITE_OK) {
        msg_add(m, "snapshots: cowvfs_container_list: %d: %s (last log: %s)\n", rc,
                err ? err : "?", g.lastlog);
        l.bad = 1;
        goto out;
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct snaprec *rec = &r->recs[i];
        int e = rec_expect(rec, s), has = l.kind[i] != 0;
        if (e == REC_EITHER)
            g.either[has]++;
        if (pre[i] == COW_SUBVOL_INCOMPLETE) {
            *unfinished = 1;
            if (s->point <= rec->made.start || span_done(&rec->made, s)) {
                msg_add(m, "snapshots: %s was an unfinished branch before recovery, but its "
                           "making was not in flight (",
                        rec->name);
                span_describe(m, "made", &rec->made);
                msg_add(m, ")\n");
                l.bad = 1;
            }
        } else if (pre[i] >= 0 && pre[i] != l.kind[i]) {
            msg_add(m, "snapshots: %s was %s before recovery and %s after it\n", rec->name,
                    pre[i] ? "there" : "not there", has ? "listed" : "not listed");
            l.bad = 1;
        }
        if ((e == REC_PRESENT && !has) || (e == REC_ABSENT && has)) {
            msg_add(m, "snapshots: %s %s %s, but ",
                    rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch", rec->name,
                    has ? "exists" : "is missing");
            if (e == REC_PRESENT)
                span_describe(m, "its making had survived the crash: made", &rec->made);
            else if (s->point <= rec->made.start)
                span_describe(m, "its making had not begun: made", &rec->made);
            else
                span_describe(m, "its deletion had survived the crash: deleted", &rec->gone);
            msg_add(m, "\n");
            l.bad = 1;
        }
        /* its source is named while the source is listed */
        if (has && rec->source[0]) {
            const struct snaprec *src = rec_find(r, rec->source);
            int src_has = src && l.kind[src - r->recs] != 0;
            if (src_has == l.src_deleted[i]) {
                msg_add(m, "snapshots: %s's source %s is %s, but the listing says %s\n",
                        rec->name, rec->source, src_has ? "there" : "deleted",
                        l.src_deleted[i] ? "(deleted)" : rec->source);
                l.bad = 1;
            }
        }
    }
    if (check_usage(r, s, b, live_k, &l, m))
        l.bad = 1;
    /* each one that exists holds exactly the state it was made of */
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct snaprec *rec = &r->recs[i];
        if (!l.kind[i])
            continue;
        char who[64];
        sqlite3 *db = NULL;
        struct snap got;
        int k;
        snprintf(who, sizeof who, "%s %s", rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                 rec->name);
        g.lastlog[0] = 0;
        char *uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0&reloc=0&%s=%s", g.path,
                                    rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                                    rec->name);
        rc = sqlite3_open_v2(uri, &db,
                             SQLITE_OPEN_URI | (rec->kind == COWVFS_SNAPSHOT
                                                    ? SQLITE_OPEN_READONLY
                                                    : SQLITE_OPEN_READWRITE),
                             NULL);
        sqlite3_free(uri);
        g.snapchecks++;
        if (rc != SQLITE_OK) {
            msg_add(m, "%s: open: %s (last log: %s)\n", who, sqlite3_errmsg(db), g.lastlog);
            l.bad = 1;
        } else {
            if (!checkpoint)
                sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
            int got_bad = read_db(db, who, rec->k, "the one it was made of", &got, &k, m);
            if (got_bad == 0 && k != rec->k) {
                msg_add(m, "%s: holds txn %d, but it was made of txn %d (%s)\n", who, k, rec->k,
                        rec->in_txn ? "inside the transaction after it" : "between transactions");
                got_bad = 1;
            } else if (got_bad == 0) {
                got_bad = snap_compare(who, k, &got, &rec->want,
                                       "not the committed state it was made of", m);
            }
            if (got_bad)
                l.bad = 1;
            else if (g.verbose)
                printf("%s: integrity ok, holds txn %d as made\n", who, k);
        }
        if (db && sqlite3_close(db) != SQLITE_OK) {
            msg_add(m, "%s: close: %s (last log: %s)\n", who, sqlite3_errmsg(db), g.lastlog);
            l.bad = 1;
        }
    }
    if (g.verbose) {
        int n = 0;
        for (size_t i = 0; i < r->nrecs; i++)
            n += l.kind[i] != 0;
        printf("snapshots: %d listed%s\n", n, l.bad ? "" : ", each where and as expected");
    }
out:
    sqlite3_free(err);
    free(l.kind);
    free(l.src_deleted);
    free(l.usage);
    return l.bad;
}

/* After recovery, PRE's unfinished branches must be gone: the store's
 * first writable open deletes them (store.c), or they would hold their
 * space forever.  Opens the image read-only with the store. */
static int check_unfinished_gone(const struct run *r, const int *pre, struct msg *m)
{
    cow_store *st = NULL;
    int bad = 0;
    g.cur = &ramdevs[0].dev;
    int rc = cow_store_open(g.path, COW_OPEN_READONLY, &st);
    if (rc != COW_OK) {
        msg_add(m, "snapshots: the store does not open the image after recovery: %s: %s\n",
                cow_strerror(rc), cow_store_last_error(NULL));
        bad = 1;
        goto out;
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        int kind = 0;
        if (pre[i] != COW_SUBVOL_INCOMPLETE)
            continue;
        rc = cow_subvol_kind(st, r->recs[i].name, &kind);
        if (rc != COW_ENOENT) {
            msg_add(m, "snapshots: the unfinished branch %s is still there after recovery "
                       "(kind %d, %s)\n",
                    r->recs[i].name, kind, cow_strerror(rc));
            bad = 1;
        }
    }
out:
    if (st)
        cow_store_close(st);
    g.cur = NULL;
    if (g.nopen) {
        msg_add(m, "snapshots: the store is still open after close\n");
        bad = 1;
        g.nopen = 0;
    }
    return bad;
}

/* Reads the database through SQLite and compares it with the model; then
 * the snapshots and branches (check_snaps, with PRE from check_data). */
static int check_sqlite(const struct run *r, const struct state *s, const struct bounds *b,
                        const int *pre, int checkpoint, struct msg *m)
{
    sqlite3 *db = NULL;
    int bad = 0, k = -1, unfinished = 0;
    struct snap got;
    g.cur = &ramdevs[0].dev;
    if (r->w->attach == ATT_COW)
        g.cur2 = &ramdevs[1].dev;
    g.lastlog[0] = 0;
    if ((r->w->attach == ATT_UNIX_MAIN || r->w->attach == ATT_UNIX) && s->number % 2 == 0) {
        /* Half the states: the unix database recovered first, on its own,
         * as `sqlite3 main.db` does (issue 12's reproducer): its recovery
         * looks for the cow database's journal through crashfs, where only
         * the journal mirror beside the container stands for it
         * (vfs/vfs_mirror.c).  The other half: the cow database first. */
        sqlite3 *u = NULL;
        char *auri = aux_uri(r);
        int urc = sqlite3_open_v2(auri, &u,
                                  SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                                  NULL);
        sqlite3_free(auri);
        if (urc == SQLITE_OK)
            urc = sqlite3_exec(u, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
        if (urc != SQLITE_OK) {
            msg_add(m, "sqlite: the unix database, recovered first: %s (last log: %s)\n",
                    sqlite3_errmsg(u), g.lastlog);
            bad = 1;
        }
        if (sqlite3_close(u) != SQLITE_OK && !bad) {
            msg_add(m, "sqlite: close of the unix database: %s\n", sqlite3_errmsg(u));
            bad = 1;
        }
        if (bad)
            goto out;
    }
    char *uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0&reloc=0", g.path);
    int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                             NULL);
    sqlite3_free(uri);
    if (rc != SQLITE_OK) {
        msg_add(m, "sqlite: open: %s (last log: %s)\n", sqlite3_errmsg(db), g.lastlog);
        bad = 1;
        goto out;
    }
    /* SQLite's checkpoint at close is ordinary work after recovery, and a
     * third of the time of a state: only some states do it. */
    if (!checkpoint)
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    if (r->w->attach) {
        /* ATTACH reads the main database's schema first: its recovery runs
         * first, as when the application opens it again */
        char *auri = aux_uri(r);
        char *sql = sqlite3_mprintf("ATTACH '%s' AS aux", auri);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
        sqlite3_free(auri);
        if (rc != SQLITE_OK) {
            msg_add(m, "sqlite: ATTACH of the second database: %s (last log: %s)\n",
                    sqlite3_errmsg(db), g.lastlog);
            bad = 1;
            goto out;
        }
    }
    int got_bad = read_db(db, "sqlite", b->kmax, "the last one begun", &got, &k, m);
    if (got_bad < 0) {
        bad = 1;
        goto snaps;
    }
    bad |= got_bad;
    /* which transaction this is */
    if (k > r->ntxn - 1 || k > b->kmax) {
        msg_add(m, "sqlite: the database holds txn %d, which had not begun (last begun: %d)\n",
                k, b->kmax);
        bad = 1;
        goto snaps;
    }
    bad |= snap_compare("sqlite", k, &got, &r->snaps[k + 1], "a transaction half there", m);
    if (k < b->kmin && b->kmin_step >= 0) {
        msg_add(m, "sqlite: the database holds txn %d, but the COMMIT of txn %d had returned "
                   "(%s)%s\n",
                k, b->kmin, r->steps[b->kmin_step].what,
                r->steps[b->kmin_step].durable ? ""
                                               : " and every write was kept (application crash)");
        bad = 1;
    } else if (k < b->kmin) {
        msg_add(m, "sqlite: the database holds txn %d, but %s %s had been made after txn %d "
                   "committed (",
                k, r->recs[b->kmin_rec].kind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                r->recs[b->kmin_rec].name, b->kmin);
        span_describe(m, "made", &r->recs[b->kmin_rec].made);
        msg_add(m, "), which commits everything before it\n");
        bad = 1;
    }
    if (r->w->attach)
        bad |= check_aux(r, db, k, m);
    if (g.verbose)
        printf("sqlite: integrity ok, holds txn %d (allowed %d..%d)\n", k, b->kmin, b->kmax);
snaps:
    if (r->nrecs)
        bad |= check_snaps(r, s, b, k, pre, checkpoint, &unfinished, m);
out:
    if (db && sqlite3_close(db) != SQLITE_OK) {
        msg_add(m, "sqlite: close: %s (last log: %s)\n", sqlite3_errmsg(db), g.lastlog);
        bad = 1;
    }
    g.cur = g.cur2 = NULL;
    if (g.nopen || g.nopen2) {
        msg_add(m, "sqlite: a store is still open after close\n");
        bad = 1;
        g.nopen = g.nopen2 = 0;
    }
    if (unfinished)
        bad |= check_unfinished_gone(r, pre, m);
    return bad;
}

/* All the checks of one crash state, the images in g.im; 0 if it passes,
 * else 1 with M set.  SQLite's recovery changes them. */
int check_state(const struct run *r, const struct state *s, struct msg *m)
{
    struct bounds b;
    int bad = 0;
    double t0 = now_secs(), t1;
    int *pre = xrealloc(NULL, r->nrecs * sizeof *pre);
    for (size_t i = 0; i < r->nrecs; i++)
        pre[i] = -1;
    bounds_at(r, s, &b);
    /* a crash inside a balance never leaves the container larger than it
     * was before the balance began, but for one block group its own tree
     * blocks may need when the container is full (recovery may then grow
     * it as any writable open can, for its own commit: that is not
     * relocation's) */
    for (size_t i = 0; i < r->nsteps; i++) {
        const struct step *st = &r->steps[i];
        /* the file grows by whole groups (1 MiB here): up to the end of
         * the group after the one it ended in */
        uint64_t allowed = (st->size_before + (1u << 20) - 1) / (1u << 20) * (1u << 20) +
                           (1u << 20);
        if (st->size_before && st->start <= s->point && s->point < st->ret &&
            g.im[0].len > allowed) {
            msg_add(m, "a crash inside %s left the container at %zu bytes, %llu before it "
                       "began (one block group more is allowed)\n",
                    st->what, g.im[0].len, (unsigned long long)st->size_before);
            bad = 1;
        }
    }
    if (r->w->attach == ATT_COW && g.im[1].len > 0)
        bad |= check_fsck(1, "of the crash image", m);
    if (g.im[0].len > 0) {
        bad |= check_fsck(0, "of the crash image", m);
        g.secs[T_FSCK] += (t1 = now_secs()) - t0;
        bad |= check_data(r, s->point, pre, m);
        g.secs[T_DATA] += (t0 = now_secs()) - t1;
    }
    if (check_sqlite(r, s, &b, pre, s->number % 4 == 3, m)) {
        bad = 1;
        g.secs[T_SQLITE] += now_secs() - t0;
    } else {
        g.secs[T_SQLITE] += (t1 = now_secs()) - t0;
        bad |= check_fsck(0, "after recovery", m);
        if (r->w->attach == ATT_COW && g.im[1].len > 0)
            bad |= check_fsck(1, "after recovery", m);
        g.secs[T_FSCK] += now_secs() - t1;
    }
    free(pre);
    return bad;
}
