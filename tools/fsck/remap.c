/*
 * remap.c - the remap tree of format version 3 in the checker: each
 * REMAP_ITEM's own rules (pass 2), the translation of logical addresses
 * that every read of a tree or data block goes through, and (pass 3) the
 * remap runs against the used space and the physical space of the file
 * (see fsck.c).
 *
 * Relocation (docs/DESIGN.md, "Relocation"; the idea of btrfs's remap
 * tree, the 2025 series "btrfs: remap tree") moves blocks without changing
 * what names them: trees, file extent items and checksums keep the logical
 * address, and a REMAP_ITEM says where the bytes of a logical run now are.
 * So block accounting stays logical (a block group's used bytes are what
 * the trees reference in it), and the physical accounting is checked
 * here: every used block is stored at its own address or at its run's
 * target, below device_bytes, and no physical block holds two of them.  A
 * block whose logical content was remapped away is physically free: a
 * target may land on it.
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* remap runs and translation                                          */
/* ------------------------------------------------------------------ */

/* Appends R to T.  Returns 0 or -ENOMEM. */
int fsck_remaps_add(struct remaps *t, const struct remap *r)
{
    if (fsck_vec_reserve((void **)&t->v, &t->cap, t->n + 1, sizeof(*t->v)))
        return -ENOMEM;
    t->v[t->n++] = *r;
    return 0;
}

static int remap_logical_cmp(const void *a, const void *b)
{
    const struct remap *x = a, *y = b;
    if (x->logical != y->logical)
        return x->logical < y->logical ? -1 : 1;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int remap_physical_cmp(const void *a, const void *b)
{
    const struct remap *x = a, *y = b;
    return x->physical < y->physical ? -1 : x->physical > y->physical;
}

/* Sorts T by logical address (then length). */
void fsck_remaps_sort(struct remaps *t)
{
    if (t->n > 1)
        qsort(t->v, t->n, sizeof(*t->v), remap_logical_cmp);
}

/* Frees T's runs and empties it (T itself is the caller's). */
void fsck_remaps_free(struct remaps *t)
{
    free(t->v);
    memset(t, 0, sizeof(*t));
}

/*
 * The run of T (sorted, NULL = empty) holding ADDR, or NULL; *CONTIG gets
 * the bytes from ADDR that stay in one piece: to the end of that run, or,
 * outside every run, to the start of the next one (a binary search).
 */
static const struct remap *remap_at(const struct remaps *t, uint64_t addr, uint64_t *contig)
{
    size_t lo = 0, hi = t ? t->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid].logical <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* lo: the first run starting above ADDR */
    if (lo > 0 && addr - t->v[lo - 1].logical < t->v[lo - 1].len) {
        const struct remap *r = &t->v[lo - 1];
        *contig = r->len - (addr - r->logical);
        return r;
    }
    *contig = t && lo < t->n ? t->v[lo].logical - addr : UINT64_MAX - addr;
    return NULL;
}

/*
 * Where the byte at logical address LOGICAL is stored, through the runs of
 * T (sorted by logical address, not overlapping; NULL = nothing remapped):
 * in a run, at its physical address plus the offset; elsewhere at LOGICAL.
 * *CONTIG gets how many bytes from LOGICAL are stored contiguously from
 * there (at least 1).
 */
uint64_t fsck_remap_phys(const struct remaps *t, uint64_t logical, uint64_t *contig)
{
    const struct remap *r = remap_at(t, logical, contig);
    if (*contig == 0)
        *contig = 1; /* LOGICAL == UINT64_MAX: one byte */
    if (r && r->physical == 0)
        return 0; /* a dropped run: not stored */
    return r ? r->physical + (logical - r->logical) : logical;
}

/*
 * Reads LEN bytes at logical address LOGICAL from the container SRC, each
 * piece from where T (as fsck_remap_phys) says it is stored.  Returns as
 * fsck_read_at(): 0, 1 if a piece lies past the end of the file (the rest
 * of BUF is zeroed), or a positive errno.
 */
int fsck_read_logical(const struct cow_fsck_src *src, const struct remaps *t, void *buf,
                      size_t len, uint64_t logical)
{
    uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        uint64_t contig, at = fsck_remap_phys(t, fsck_range_end(logical, done), &contig);
        size_t n = contig < len - done ? (size_t)contig : len - done;
        if (at == 0) { /* dropped: nothing may read it */
            memset(p + done, 0, len - done);
            return FSCK_READ_DROPPED;
        }
        int rd = fsck_read_at(src, p + done, n, at);
        if (rd) {
            memset(p + done, 0, len - done);
            return rd;
        }
        done += n;
    }
    return 0;
}

/* The end (exclusive) of the highest physical byte that the logical range
 * [LOGICAL, LOGICAL + LEN) is stored in, through T: what the file must
 * reach to read it all.  UINT64_MAX if a piece's end overflows. */
uint64_t fsck_phys_end(const struct remaps *t, uint64_t logical, uint64_t len)
{
    uint64_t end = 0, done = 0;
    while (done < len) {
        uint64_t contig, at = fsck_remap_phys(t, fsck_range_end(logical, done), &contig);
        uint64_t n = contig < len - done ? contig : len - done;
        uint64_t e = at ? fsck_range_end(at, n) : 0; /* a dropped run is stored nowhere */
        if (e > end)
            end = e;
        if (e == UINT64_MAX || fsck_range_end(logical, done) == UINT64_MAX)
            return UINT64_MAX;
        done += n;
    }
    return end;
}

/* ------------------------------------------------------------------ */
/* pass 2: one REMAP_ITEM                                              */
/* ------------------------------------------------------------------ */

/* "(L REMAP_ITEM N) in leaf X" for messages. */
static const char *remap_str(const struct remap *r, char *buf, size_t len)
{
    snprintf(buf, len, "REMAP_ITEM (%" PRIu64 " REMAP_ITEM %" PRIu64 ") of leaf %" PRIu64,
             r->logical, r->len, r->leaf);
    return buf;
}

/*
 * Checks the REMAP_ITEM with key K and data P (8 bytes) of leaf LEAF (WHERE
 * names it in messages) against the rules format.h gives one item:
 * whole blocks, length > 0, physical != logical, each run inside one block
 * group, the logical one inside total_bytes and the physical one inside
 * device_bytes; and keeps it in f->rm, usable for translation when its
 * runs are whole blocks at two places inside the container.
 */
void fsck_check_remap_item(struct fsck *f, const char *where, const struct cow_key *k,
                           const uint8_t *p, uint64_t leaf)
{
    char ks[80];
    fsck_key_str(k, ks, sizeof(ks));
    struct remap r = {k->objectid, k->offset, get64(p + REMAP_PHYSICAL), leaf, 0};
    int ok = 1;
    f->r->remap_items++;
    if (r.len == 0 || r.len % BS) {
        fsck_problem(f, "%s: %s: length %" PRIu64 " is not a positive multiple of 4096", where,
                     ks, r.len);
        ok = 0;
    }
    if (r.logical % BS) {
        fsck_problem(f, "%s: %s: logical address %" PRIu64 " is not a block address", where, ks,
                     r.logical);
        ok = 0;
    }
    if (r.physical % BS) {
        fsck_problem(f, "%s: %s: physical address %" PRIu64 " is not a block address", where,
                     ks, r.physical);
        ok = 0;
    }
    int dropped = r.physical == 0; /* not stored: the run's blocks were dropped */
    if (r.physical == r.logical) {
        fsck_problem(f, "%s: %s: physical address %" PRIu64 " is the logical one (a block not "
                        "moved has no REMAP_ITEM)",
                     where, ks, r.physical);
        ok = 0;
    }
    if (ok) {
        uint64_t lend = fsck_range_end(r.logical, r.len), pend = fsck_range_end(r.physical, r.len);
        uint64_t bg = f->bg_size;
        if (lend > f->total) {
            fsck_problem(f, "%s: %s: logical run [%" PRIu64 ", %" PRIu64 ") ends beyond "
                            "total_bytes %" PRIu64,
                         where, ks, r.logical, lend, f->total);
            ok = 0;
        } else if (bg && r.logical / bg != (lend - 1) / bg) {
            fsck_problem(f, "%s: %s: logical run [%" PRIu64 ", %" PRIu64 ") crosses a block "
                            "group boundary (block groups of %" PRIu64 " bytes)",
                         where, ks, r.logical, lend, bg);
        }
        if (dropped)
            ; /* no physical run */
        else if (pend > f->device)
            fsck_problem(f, "%s: %s: physical run [%" PRIu64 ", %" PRIu64 ") ends beyond "
                            "device_bytes %" PRIu64,
                         where, ks, r.physical, pend, f->device);
        else if (bg && r.physical / bg != (pend - 1) / bg)
            fsck_problem(f, "%s: %s: physical run [%" PRIu64 ", %" PRIu64 ") crosses a block "
                            "group boundary (block groups of %" PRIu64 " bytes)",
                         where, ks, r.physical, pend, bg);
    }
    r.usable = ok;
    if (fsck_remaps_add(&f->rm, &r))
        fsck_set_fatal(f, -ENOMEM);
}

/*
 * After the remap tree's walk: the usable REMAP_ITEMs sorted by logical
 * address into f->xlate, the translation every later read goes through; a
 * run overlapping the one before it is reported and left out.
 */
void fsck_remap_build(struct fsck *f)
{
    char a[128], b[128];
    for (size_t i = 0; i < f->rm.n; i++)
        if (f->rm.v[i].usable && fsck_remaps_add(&f->xlate, &f->rm.v[i])) {
            fsck_set_fatal(f, -ENOMEM);
            return;
        }
    fsck_remaps_sort(&f->xlate);
    size_t n = 0;
    for (size_t i = 0; i < f->xlate.n; i++) {
        struct remap *r = &f->xlate.v[i];
        if (n && fsck_range_end(f->xlate.v[n - 1].logical, f->xlate.v[n - 1].len) > r->logical) {
            fsck_problem(f, "remap tree: %s remaps [%" PRIu64 ", %" PRIu64 "), which overlaps "
                            "the logical run of %s",
                         remap_str(r, a, sizeof(a)), r->logical,
                         fsck_range_end(r->logical, r->len),
                         remap_str(&f->xlate.v[n - 1], b, sizeof(b)));
            continue;
        }
        f->xlate.v[n++] = *r;
        f->r->remapped_bytes += r->len;
    }
    f->xlate.n = n;
    if (!f->tree_ok[T_REMAP])
        fsck_note(f, "the remap tree is damaged: blocks it moved may not be found");
}

/* ------------------------------------------------------------------ */
/* pass 3: remap runs against the used space; physical space           */
/* ------------------------------------------------------------------ */

/* Used space that never moves: the superblocks, the log areas and the
 * remap tree's own blocks (read before the remap tree is known). */
static int span_fixed(const struct span *s)
{
    return s->kind == SP_SB || s->kind == SP_LOG || (s->kind == SP_TREE && s->sub == T_REMAP);
}

/* The index of the last span of f->sp starting at or below ADDR, or 0. */
static size_t span_floor(const struct fsck *f, uint64_t addr)
{
    size_t lo = 0, hi = f->nsp;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->sp[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

/*
 * Every block of run R's logical range is used by a data extent or a tree
 * block of a tree other than the remap tree: none is free (reported only
 * when every used range is known, f->space_ok), none is a superblock, log
 * area or remap tree block (those never move).
 */
static void check_run_used(struct fsck *f, const struct remap *r)
{
    char a[128], b[96];
    uint64_t end = fsck_range_end(r->logical, r->len), pos = r->logical;
    int gap_seen = 0;
    for (size_t j = span_floor(f, r->logical); j < f->nsp && f->sp[j].start < end; j++) {
        const struct span *s = &f->sp[j];
        uint64_t se = fsck_range_end(s->start, s->len);
        if (se <= r->logical)
            continue;
        if (s->start > pos && !gap_seen && f->space_ok) {
            fsck_problem(f, "remap tree: %s remaps block %" PRIu64 ", which is not used (only "
                            "used blocks are remapped)",
                         remap_str(r, a, sizeof(a)), pos);
            gap_seen = 1;
        }
        if (span_fixed(s))
            fsck_problem(f, "remap tree: %s remaps %s, which never moves",
                         remap_str(r, a, sizeof(a)), fsck_span_str(s, b, sizeof(b)));
        else if (r->physical == 0 && s->kind != SP_DATA)
            fsck_problem(f, "remap tree: %s drops blocks of %s: only blocks of data extents "
                            "may be dropped",
                         remap_str(r, a, sizeof(a)), fsck_span_str(s, b, sizeof(b)));
        if (se > pos)
            pos = se;
    }
    if (pos < end && !gap_seen && f->space_ok)
        fsck_problem(f, "remap tree: %s remaps block %" PRIu64 ", which is not used (only used "
                        "blocks are remapped)",
                     remap_str(r, a, sizeof(a)), pos);
}

/* A piece of the file's physical space that holds something: a used range
 * (or the part of it no run remaps) at its own address, or a run's target. */
struct ppiece {
    uint64_t start, len;
    const struct span *sp; /* a used range stored at its own address, or */
    const struct remap *rm; /* the target of this run */
};

static int ppiece_cmp(const void *a, const void *b)
{
    const struct ppiece *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (x->rm != NULL) - (y->rm != NULL);
}

static const char *ppiece_str(const struct ppiece *p, char *buf, size_t len)
{
    char a[128];
    if (p->rm)
        snprintf(buf, len, "the target [%" PRIu64 ", %" PRIu64 ") of %s", p->rm->physical,
                 fsck_range_end(p->rm->physical, p->rm->len), remap_str(p->rm, a, sizeof(a)));
    else if (p->start == p->sp->start && p->len == p->sp->len)
        snprintf(buf, len, "%s (not remapped)", fsck_span_str(p->sp, a, sizeof(a)));
    else
        snprintf(buf, len, "[%" PRIu64 ", %" PRIu64 ") of %s (not remapped)", p->start,
                 fsck_range_end(p->start, p->len), fsck_span_str(p->sp, a, sizeof(a)));
    return buf;
}

static int ppiece_add(struct ppiece **v, size_t *n, size_t *cap, struct ppiece p)
{
    if (fsck_vec_reserve((void **)v, cap, *n + 1, sizeof(**v)))
        return -ENOMEM;
    (*v)[(*n)++] = p;
    return 0;
}

/*
 * Pass 3, after fsck_check_space (f->sp): each remap run against the used
 * space (check_run_used), then the physical space: every used block is
 * stored at its own address unless a run remaps it, or in that run's
 * target; all of it must lie below device_bytes (and inside the file), and
 * no two pieces may share a block, except two used ranges at their own
 * addresses (a logical overlap, which fsck_check_space reports).  Keeps
 * the targets sorted by physical address in f->xphys for the log's check.
 */
void fsck_check_remap_space(struct fsck *f)
{
    for (size_t i = 0; i < f->xlate.n && !f->fatal; i++)
        check_run_used(f, &f->xlate.v[i]);
    struct ppiece *pc = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < f->nsp; i++) {
        const struct span *s = &f->sp[i];
        uint64_t end = fsck_range_end(s->start, s->len);
        if (span_fixed(s) || !f->xlate.n) {
            if (ppiece_add(&pc, &n, &cap, (struct ppiece){s->start, s->len, s, NULL}))
                goto nomem;
            continue;
        }
        for (uint64_t pos = s->start; pos < end;) {
            uint64_t contig;
            const struct remap *r = remap_at(&f->xlate, pos, &contig);
            uint64_t m = contig < end - pos ? contig : end - pos;
            if (!r && ppiece_add(&pc, &n, &cap, (struct ppiece){pos, m, s, NULL}))
                goto nomem;
            pos += m;
        }
    }
    for (size_t i = 0; i < f->xlate.n; i++) {
        const struct remap *r = &f->xlate.v[i];
        if (r->physical && /* a dropped run is stored nowhere */
            ppiece_add(&pc, &n, &cap, (struct ppiece){r->physical, r->len, NULL, r}))
            goto nomem;
    }
    if (n > 1)
        qsort(pc, n, sizeof(*pc), ppiece_cmp);
    for (size_t i = 0; i < n; i++)
        f->r->physical_bytes += pc[i].len;
    char a[256], b[256];
    size_t last = 0; /* the piece reaching furthest so far */
    for (size_t i = 0; i < n; i++) {
        uint64_t end = fsck_range_end(pc[i].start, pc[i].len);
        /* a target's bounds were checked with its item, a used range
         * beyond total_bytes by fsck_check_space */
        if (!pc[i].rm && fsck_range_end(pc[i].sp->start, pc[i].sp->len) <= f->total) {
            if (end > f->device)
                fsck_problem(f, "%s is stored at [%" PRIu64 ", %" PRIu64 "), beyond "
                                "device_bytes %" PRIu64,
                             ppiece_str(&pc[i], a, sizeof(a)), pc[i].start, end, f->device);
            else if (end > f->fsize)
                fsck_problem(f, "%s ends at %" PRIu64 ", beyond the end of the file (%" PRIu64
                                " bytes)",
                             ppiece_str(&pc[i], a, sizeof(a)), end, f->fsize);
        } else if (pc[i].rm && end <= f->device && end > f->fsize) {
            fsck_problem(f, "%s ends beyond the end of the file (%" PRIu64 " bytes)",
                         ppiece_str(&pc[i], a, sizeof(a)), f->fsize);
        }
        uint64_t lend = fsck_range_end(pc[last].start, pc[last].len);
        if (i && lend > pc[i].start && (pc[i].rm || pc[last].rm)) {
            uint64_t oe = end < lend ? end : lend;
            fsck_problem(f, "physical blocks [%" PRIu64 ", %" PRIu64 ") hold both %s and %s",
                         pc[i].start, oe, ppiece_str(&pc[last], a, sizeof(a)),
                         ppiece_str(&pc[i], b, sizeof(b)));
        }
        if (i == 0 || end > lend)
            last = i;
    }
    free(pc);
    /* the targets by physical address, for logged extents (log.c) */
    for (size_t i = 0; i < f->xlate.n; i++)
        if (f->xlate.v[i].physical && fsck_remaps_add(&f->xphys, &f->xlate.v[i]))
            goto nomem_done;
    if (f->xphys.n > 1)
        qsort(f->xphys.v, f->xphys.n, sizeof(*f->xphys.v), remap_physical_cmp);
    return;
nomem:
    free(pc);
nomem_done:
    fsck_set_fatal(f, -ENOMEM);
}

/* The run whose target overlaps the physical range [START, START + LEN),
 * or NULL (f->xphys, kept by fsck_check_remap_space). */
const struct remap *fsck_remap_target_in(const struct fsck *f, uint64_t start, uint64_t len)
{
    uint64_t end = fsck_range_end(start, len);
    size_t lo = 0, hi = f->xphys.n;
    while (lo < hi) { /* the first target starting at or above END */
        size_t mid = lo + (hi - lo) / 2;
        if (f->xphys.v[mid].physical < end)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* targets do not overlap each other (else reported): only the last
     * one starting below END can reach into the range */
    if (lo && fsck_range_end(f->xphys.v[lo - 1].physical, f->xphys.v[lo - 1].len) > start)
        return &f->xphys.v[lo - 1];
    return NULL;
}
