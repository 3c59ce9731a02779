/*
 * extent_map.c - a file's mapping in the trees (see extent_map.h).
 *
 * A file is an INODE_ITEM (size, block count) plus EXTENT_DATA items
 * mapping block-aligned file ranges to ranges of data extents; every data
 * extent has one EXTENT_CSUM item (a crc32c per block) in the csum tree and
 * one EXTENT_ITEM (its refcount) in the extent tree.  A write reaches the
 * trees only here, when its ordered extent completes: the data is on the
 * device before any tree points at it, and nothing the last commit reaches
 * is overwritten (copy on write), except, where no other tree can reach
 * it, a preallocated extent and a NODATASUM extent of a nodatacow file
 * (format.h), which are written in place (nocow_writable).
 *
 * Locking: store->lock held by every caller (asserted).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c.h"
#include "extent_map.h"
#include "lockdep.h"
#include "remap.h"
#include "validate.h"
#include "vec.h"

#define BLK COW_BLOCK_SIZE
#define ROUND_UP(x) (((x) + BLK - 1) & ~(uint64_t)(BLK - 1))
#define ROUND_DOWN(x) ((x) & ~(uint64_t)(BLK - 1))

/* ---- the inode item ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int em_inode_read(cow_store *st, struct cow_inode *in)
{
    lk_assert_held(&st->lock);
    uint8_t it[INODE_ITEM_SIZE];
    size_t size;
    struct cow_key k = {in->ino, COW_INODE_ITEM, 0};
    int rc = bt_lookup(st, in->root, &k, it, sizeof it, &size);
    if (rc)
        return rc;
    if (size != INODE_ITEM_SIZE)
        return COW_CORRUPT("inode %llu item has %zu bytes", (unsigned long long)in->ino, size);
    in->size = in->disk_size = get64(it + INODE_SIZE);
    in->nblocks = get64(it + INODE_NBLOCKS);
    in->generation = get64(it + INODE_GENERATION);
    in->flags = get64(it + INODE_FLAGS);
    in->item_transid = get64(it + INODE_TRANSID);
    return COW_OK;
}

int em_inode_save(cow_store *st, struct cow_inode *in)
{
    lk_assert_held(&st->lock);
    uint8_t it[INODE_ITEM_SIZE];
    memset(it, 0, sizeof it);
    put64(it + INODE_SIZE, in->disk_size);
    put64(it + INODE_NBLOCKS, in->nblocks);
    put64(it + INODE_GENERATION, in->generation);
    put64(it + INODE_TRANSID, st->transid);
    put64(it + INODE_MTIME, now_ns());
    put64(it + INODE_FLAGS, in->flags);
    struct cow_key k = {in->ino, COW_INODE_ITEM, 0};
    in->log_size = 1;
    in->item_transid = st->transid;
    return bt_put(st, in->root, &k, it, sizeof it);
}

/* ---- the modified ranges (what the next log record of the file holds) ---- */

int em_modified(const struct cow_inode *in)
{
    return in->nlr > 0 || in->log_size || in->log_overflow;
}

void em_mark_modified(struct cow_inode *in, uint64_t start, uint64_t end)
{
    in->log_size = 1;
    if (in->log_overflow)
        return;
    /* find the first range ending at or after START */
    size_t lo = 0, hi = in->nlr;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (in->lr[mid].end < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t j = lo;
    while (j < in->nlr && in->lr[j].start <= end) { /* overlapping or touching */
        if (in->lr[j].start < start)
            start = in->lr[j].start;
        if (in->lr[j].end > end)
            end = in->lr[j].end;
        j++;
    }
    if (j > lo) { /* merge [lo, j) into one */
        in->lr[lo].start = start;
        in->lr[lo].end = end;
        memmove(in->lr + lo + 1, in->lr + j, (in->nlr - j) * sizeof *in->lr);
        in->nlr -= j - lo - 1;
        return;
    }
    if (in->nlr >= COW_LOG_MAX_RANGES) {
        in->log_overflow = 1;
        return;
    }
    if (vec_reserve(in->lr, in->clr, in->nlr + 1)) {
        in->log_overflow = 1; /* the next sync commits instead */
        return;
    }
    memmove(in->lr + lo + 1, in->lr + lo, (in->nlr - lo) * sizeof *in->lr);
    in->lr[lo].start = start;
    in->lr[lo].end = end;
    in->nlr++;
}

void em_clear_modified(struct cow_inode *in)
{
    in->nlr = 0;
    in->log_size = in->log_overflow = 0;
}

/* ---- file extent items ---- */

/* The file extent items of a file are parsed by check_file_extent()
 * (validate.c), which bounds every field; struct fext is in validate.h. */
static int fext_parse(cow_store *st, const struct cow_key *k, const uint8_t *d, size_t size,
                      struct fext *fx)
{
    return check_file_extent(st, NULL, k, d, size, fx);
}

static void fext_put(uint8_t *d, const struct fext *fx, uint64_t transid)
{
    memset(d, 0, FE_ITEM_SIZE);
    put64(d + FE_DISK_BYTENR, fx->disk);
    put64(d + FE_DISK_NUM_BYTES, fx->disk_len);
    put64(d + FE_EXTENT_OFFSET, fx->ext_off);
    put64(d + FE_NUM_BYTES, fx->len);
    put32(d + FE_GENERATION, (uint32_t)transid);
    d[FE_TYPE] = fx->type;
}

/* The first extent of INO ending after POS (starting at or before POS, or
 * the next one).  COW_ENOENT if none. */
static int fext_first(cow_store *st, const struct cow_inode *in, uint64_t pos, struct fext *fx)
{
    uint64_t ino = in->ino;
    struct cow_key k = {ino, COW_EXTENT_DATA, pos}, f;
    uint8_t d[FE_ITEM_SIZE];
    size_t size;
    int rc = bt_seek_le(st, in->root, &k, &f, d, sizeof d, &size);
    if (rc == COW_OK && f.objectid == ino && f.type == COW_EXTENT_DATA) {
        rc = fext_parse(st, &f, d, size, fx);
        if (rc)
            return rc;
        if (fx->start + fx->len > pos)
            return COW_OK;
    } else if (rc && rc != COW_ENOENT) {
        return rc;
    }
    rc = bt_seek_ge(st, in->root, &k, &f, d, sizeof d, &size);
    if (rc)
        return rc;
    if (f.objectid != ino || f.type != COW_EXTENT_DATA)
        return COW_ENOENT;
    return fext_parse(st, &f, d, size, fx);
}

/* The extent after the one starting at START. */
static int fext_next(cow_store *st, const struct cow_inode *in, uint64_t start, struct fext *fx)
{
    uint64_t ino = in->ino;
    struct cow_key k = {ino, COW_EXTENT_DATA, start + 1}, f;
    uint8_t d[FE_ITEM_SIZE];
    size_t size;
    int rc = bt_seek_ge(st, in->root, &k, &f, d, sizeof d, &size);
    if (rc)
        return rc;
    if (f.objectid != ino || f.type != COW_EXTENT_DATA)
        return COW_ENOENT;
    return fext_parse(st, &f, d, size, fx);
}

static int fext_insert(cow_store *st, const struct cow_inode *in, const struct fext *fx)
{
    uint8_t d[FE_ITEM_SIZE];
    struct cow_key k = {in->ino, COW_EXTENT_DATA, fx->start};
    fext_put(d, fx, st->transid);
    return bt_insert(st, in->root, &k, d, sizeof d);
}

static int fext_delete(cow_store *st, const struct cow_inode *in, uint64_t start)
{
    struct cow_key k = {in->ino, COW_EXTENT_DATA, start};
    return bt_delete(st, in->root, &k);
}

int em_drop_range(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end)
{
    lk_assert_held(&st->lock);
    struct fext fx;
    int rc = fext_first(st, in, start, &fx);
    while (rc == COW_OK && fx.start < end) {
        uint64_t s = fx.start, e = fx.start + fx.len;
        uint64_t cut0 = s > start ? s : start, cut1 = e < end ? e : end;
        in->nblocks -= (cut1 - cut0) / BLK;
        if (s >= start && e <= end) {
            rc = fext_delete(st, in, s);
            if (!rc)
                rc = refs_add(st, fx.disk, fx.disk_len, 1, 0, -1);
        } else if (s < start && e > end) {
            struct fext right = fx;
            right.start = end;
            right.ext_off = fx.ext_off + (end - s);
            right.len = e - end;
            fx.len = start - s;
            rc = fext_delete(st, in, s);
            if (!rc)
                rc = fext_insert(st, in, &fx);
            if (!rc)
                rc = fext_insert(st, in, &right);
            if (!rc)
                rc = refs_add(st, fx.disk, fx.disk_len, 1, 0, +1);
            return rc;
        } else if (s < start) {
            fx.len = start - s;
            rc = fext_delete(st, in, s);
            if (!rc)
                rc = fext_insert(st, in, &fx);
        } else {
            /* s >= start, e > end: keep the tail */
            struct fext tail = fx;
            tail.start = end;
            tail.ext_off = fx.ext_off + (end - s);
            tail.len = e - end;
            rc = fext_delete(st, in, s);
            if (!rc)
                rc = fext_insert(st, in, &tail);
            return rc;
        }
        if (rc || e >= end)
            return rc; /* items do not overlap: the next starts at or past E */
        rc = fext_next(st, in, s, &fx);
    }
    return rc == COW_ENOENT ? COW_OK : rc;
}

int em_insert(cow_store *st, struct cow_inode *in, uint64_t off, const uint8_t *fe)
{
    lk_assert_held(&st->lock);
    struct fext fx;
    struct cow_key k = {in->ino, COW_EXTENT_DATA, off};
    int rc = fext_parse(st, &k, fe, FE_ITEM_SIZE, &fx);
    if (rc)
        return rc;
    rc = fext_insert(st, in, &fx);
    if (!rc)
        rc = refs_add(st, fx.disk, fx.disk_len, 1, 0, +1);
    if (!rc)
        in->nblocks += fx.len / BLK;
    return rc;
}

int em_for_extents(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end,
                   int (*cb)(void *arg, uint64_t off, const uint8_t *fe), void *arg)
{
    lk_assert_held(&st->lock);
    struct fext fx;
    int rc = fext_first(st, in, start, &fx);
    while (rc == COW_OK && fx.start < end) {
        struct fext c = fx;
        if (c.start < start) {
            c.ext_off += start - c.start;
            c.len -= start - c.start;
            c.start = start;
        }
        if (c.start + c.len > end)
            c.len = end - c.start;
        uint8_t d[FE_ITEM_SIZE];
        fext_put(d, &c, st->transid);
        rc = cb(arg, c.start, d);
        if (rc || fx.start + fx.len >= end)
            return rc; /* items do not overlap: the next starts past END */
        rc = fext_next(st, in, fx.start, &fx);
    }
    return rc == COW_ENOENT ? COW_OK : rc;
}

/* ---- reading ---- */

/*
 * A read goes in two steps: em_resolve, under store->lock, finds the
 * extents, their checksums and where their blocks are stored (the remap
 * table) and notes them in a plan; em_read_plan reads the blocks and
 * checks them against those checksums, with or without the lock (the
 * caller keeps the blocks from being reused meanwhile: alloc.h's readers,
 * file.c file_read).  The checksum check is em_read_plan's alone.
 */

/* The plan's arrays start in its own small buffers (a page read needs no
 * heap) and move to the heap past them. */
/* Makes room in *V (HAVE elements of SIZE bytes, room for *CAP; INL its
 * inline buffer) for NEED.  COW_ENOMEM. */
static int plan_grow(void **v, size_t *cap, size_t have, size_t need, size_t size, void *inl)
{
    if (need <= *cap)
        return COW_OK;
    size_t c = *cap * 2 > need ? *cap * 2 : need;
    void *nv = *v == inl ? malloc(c * size) : realloc(*v, c * size);
    if (!nv)
        return cow_set_error(COW_ENOMEM, "out of memory");
    if (*v == inl)
        memcpy(nv, inl, have * size);
    *v = nv;
    *cap = c;
    return COW_OK;
}

void em_plan_init(struct em_plan *p)
{
    memset(p, 0, sizeof *p);
    p->runs = p->runs_inl;
    p->cruns = EM_PLAN_INLINE;
    p->segs = p->segs_inl;
    p->csegs = EM_PLAN_INLINE;
    p->crcs = p->crcs_inl;
    p->ccrcs = EM_PLAN_INLINE_CRCS;
}

void em_plan_free(struct em_plan *p)
{
    if (p->runs != p->runs_inl)
        free(p->runs);
    if (p->segs != p->segs_inl)
        free(p->segs);
    if (p->crcs != p->crcs_inl)
        free(p->crcs);
    em_plan_init(p);
}

/* Notes in P the read of [disk, disk+len) (whole blocks) of the data
 * extent FX, of which the LEN2 bytes from SKIP go to DST: the crc32c of
 * each block (from the extent's EXTENT_CSUM item) and where the blocks
 * are stored. */
static int plan_run(cow_store *st, struct em_plan *p, const struct fext *fx, uint64_t disk,
                    uint64_t len, uint64_t skip, uint8_t *dst, uint64_t len2)
{
    uint8_t csums[COW_MAX_EXTENT_BLOCKS * 4];
    size_t size;
    /* a NODATASUM extent's crcs say nothing (format.h): none is checked */
    int nocsum = fx->type == COW_FE_NODATASUM;
    int rc = COW_OK;
    if (!nocsum) {
        struct cow_key k = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, fx->disk};
        rc = bt_lookup(st, &st->csum_tree, &k, csums, sizeof csums, &size);
        if (rc == COW_ENOENT)
            return COW_CORRUPT("data extent %llu has no checksums", (unsigned long long)fx->disk);
        if (!rc)
            rc = check_csum_matches(fx->disk, fx->disk_len, size);
    }
    uint64_t nb = len / BLK;
    if (!rc)
        rc = plan_grow((void **)&p->runs, &p->cruns, p->nruns, p->nruns + 1, sizeof *p->runs,
                       p->runs_inl);
    if (!rc)
        rc = plan_grow((void **)&p->crcs, &p->ccrcs, p->ncrcs, p->ncrcs + nb, sizeof *p->crcs,
                       p->crcs_inl);
    if (rc)
        return rc;
    struct em_run *r = &p->runs[p->nruns];
    *r = (struct em_run){.disk = disk, .nblocks = nb, .skip = skip, .dst = dst, .len = len2,
                         .seg = p->nsegs, .crc = p->ncrcs, .nocsum = nocsum};
    for (uint64_t b = 0; b < nb; b++)
        p->crcs[p->ncrcs++] = nocsum ? 0 : get32(csums + ((disk - fx->disk) / BLK + b) * 4);
    /* where the blocks are stored: the remap table's translation, taken
     * now (a relocation meanwhile pins the old place, invariant 7) */
    for (uint64_t at = disk, left = len; left > 0;) {
        uint64_t phys, run;
        remap_translate(st, at, left, &phys, &run);
        rc = plan_grow((void **)&p->segs, &p->csegs, p->nsegs, p->nsegs + 1, sizeof *p->segs,
                       p->segs_inl);
        if (rc)
            return rc;
        p->segs[p->nsegs++] = (struct em_seg){.phys = phys, .len = run};
        r->nseg++;
        at += run;
        left -= run;
    }
    p->nruns++;
    return COW_OK;
}

int em_resolve(cow_store *st, struct cow_inode *in, uint8_t *buf, uint64_t len, uint64_t off,
               struct em_plan *p)
{
    lk_assert_held(&st->lock);
    uint64_t end = off + len;
    struct fext fx;
    memset(buf, 0, (size_t)len);
    int rc = fext_first(st, in, off, &fx);
    while (rc == COW_OK && fx.start < end) {
        uint64_t s = fx.start > off ? fx.start : off;
        uint64_t e = fx.start + fx.len < end ? fx.start + fx.len : end;
        if (fx.type == COW_FE_PREALLOC)
            s = e; /* preallocated, never written: zeros (BUF is zeroed) */
        if (fx.type == COW_FE_NODATASUM && !(in->flags & COW_INODE_NODATACOW)) {
            /* unchecked data in a file whose data is checked: damage */
            return COW_CORRUPT("inode %llu: a NODATASUM extent at %llu in a file without "
                               "the nodatacow flag",
                               (unsigned long long)in->ino, (unsigned long long)fx.start);
        }
        while (s < e) {
            uint64_t bs = ROUND_DOWN(s);
            uint64_t be = ROUND_UP(e);
            if (be - bs > EM_RUN_MAX)
                be = bs + EM_RUN_MAX;
            uint64_t disk = fx.disk + fx.ext_off + (bs - fx.start);
            uint64_t ce = be < e ? be : e;
            rc = plan_run(st, p, &fx, disk, be - bs, s - bs, buf + (s - off), ce - s);
            if (rc)
                return rc;
            s = ce;
        }
        if (fx.start + fx.len >= end)
            break; /* items do not overlap: the next starts past END */
        rc = fext_next(st, in, fx.start, &fx);
    }
    return rc == COW_ENOENT ? COW_OK : rc;
}

/* Checks the NB blocks at DATA, read from the logical address DISK,
 * against their crc32c values CRCS (invariant 6).  COW_ECSUM. */
static int verify_blocks(uint64_t disk, const uint8_t *data, uint64_t nb, const uint32_t *crcs)
{
    for (uint64_t b = 0; b < nb; b++)
        if (crc32c(0, data + b * BLK, BLK) != crcs[b])
            return cow_set_error(COW_ECSUM, "data block %llu does not match its checksum",
                                 (unsigned long long)(disk + b * BLK));
    return COW_OK;
}

int em_read_plan(struct cow_dev *dev, const struct em_plan *p)
{
    uint8_t small[2 * BLK]; /* page-sized reads need no heap buffer */
    uint8_t *tmp = small, *heap = NULL;
    int rc = COW_OK;
    for (size_t i = 0; i < p->nruns && rc == COW_OK; i++) {
        const struct em_run *r = &p->runs[i];
        uint64_t bytes = r->nblocks * BLK;
        if (bytes > sizeof small && !heap) {
            if (!(tmp = heap = malloc(EM_RUN_MAX))) {
                rc = cow_set_error(COW_ENOMEM, "out of memory");
                break;
            }
        }
        uint8_t *q = tmp;
        for (size_t k = 0; k < r->nseg && rc == COW_OK; k++) {
            const struct em_seg *sg = &p->segs[r->seg + k];
            /* a dropped run (physical 0) reads as zeros: nothing maps
             * it, and its checksum check fails (remap.c remap_read) */
            if (sg->phys)
                rc = dev->read(dev, q, (size_t)sg->len, sg->phys);
            else
                memset(q, 0, (size_t)sg->len);
            q += sg->len;
        }
        if (rc == COW_OK && !r->nocsum)
            rc = verify_blocks(r->disk, tmp, r->nblocks, p->crcs + r->crc);
        if (rc == COW_OK)
            memcpy(r->dst, tmp + r->skip, (size_t)r->len);
    }
    free(heap);
    return rc;
}

int em_read(cow_store *st, struct cow_inode *in, uint8_t *buf, uint64_t len, uint64_t off)
{
    lk_assert_held(&st->lock);
    struct em_plan p;
    em_plan_init(&p);
    int rc = em_resolve(st, in, buf, len, off, &p);
    if (rc == COW_OK)
        rc = em_read_plan(st->dev, &p);
    em_plan_free(&p);
    return rc;
}

/* ---- completing ordered extents ---- */

int em_complete(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t disk,
                uint64_t nblocks, const uint32_t *crcs)
{
    lk_assert_held(&st->lock);
    uint8_t csum_item[COW_MAX_EXTENT_BLOCKS * 4];
    /* A nodatacow file's new extent is NODATASUM: young until a flushed
     * commit holds it, and checked meanwhile by replay (its crcs here and
     * in log records); the commit flushes it before its superblock rather
     * than list it (format.h; invariant 13) */
    int nodatasum = (in->flags & COW_INODE_NODATACOW) != 0;
    for (uint64_t b = 0; b < nblocks; b++)
        put32(csum_item + b * 4, crcs[b]);
    if (nodatasum) {
        st->nodatasum_unflushed = 1;
        st->nodatasum_writes++;
    }
    else
        txn_note_written(st, disk, nblocks, crcs);
    /* the data is written: now the trees may point at it */
    struct fext fx = {off, disk, nblocks * BLK, 0, nblocks * BLK,
                      nodatasum ? COW_FE_NODATASUM : COW_FE_REG};
    struct cow_key ck = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, disk};
    int rc = refs_add(st, disk, nblocks * BLK, 1, 0, +1);
    if (!rc)
        rc = bt_insert(st, &st->csum_tree, &ck, csum_item, (size_t)(nblocks * 4));
    if (!rc)
        rc = em_drop_range(st, in, off, off + nblocks * BLK);
    if (!rc)
        rc = fext_insert(st, in, &fx);
    if (!rc) {
        in->nblocks += nblocks;
        uint64_t end = off + nblocks * BLK < in->size ? off + nblocks * BLK : in->size;
        if (end > in->disk_size)
            in->disk_size = end;
        rc = em_inode_save(st, in);
    }
    if (rc)
        return txn_abort(st, rc);
    return COW_OK;
}

/* ---- preallocated extents ---- */

/*
 * Whether the extent of item FX of file IN may be written in place: a
 * preallocated extent, or a NODATASUM extent of a nodatacow file (format.h),
 * allocated after the last snapshot or branch that involved IN's tree
 * (cow_root.last_snapshot), so that no other tree can point at it (btrfs's
 * can_nocow_file_extent).  An older one may be shared with a snapshot or
 * branch, which must keep its content, so it is written copy on write.  A
 * NODATASUM extent must also be old: held by the last flushed commit
 * (allocated no later than st->durable_gen), so that no log record replay
 * may check names it with crcs that an overwrite would make wrong (and no
 * commit lists it: invariant 13).  Sets *YES: 0 no, EM_NOCOW_PREALLOC or
 * EM_NOCOW_OVERWRITE (extent_map.h).  Lock held.
 */
static int nocow_writable_below(cow_store *st, const struct cow_inode *in, const struct fext *fx,
                                uint64_t durable, int *yes)
{
    uint64_t gen;
    *yes = 0;
    int kind = fx->type == COW_FE_PREALLOC ? EM_NOCOW_PREALLOC
               : fx->type == COW_FE_NODATASUM && (in->flags & COW_INODE_NODATACOW)
                   ? EM_NOCOW_OVERWRITE
                   : 0;
    if (!kind)
        return COW_OK;
    /* Invariant 5: relocation copies this group's blocks with the lock
     * released; a write in place now could land in the old copy after it
     * was read and be lost.  Copy on write instead. */
#ifndef COW_BREAK_RELOC_NOCOW
    for (uint64_t b = fx->disk; b < fx->disk + fx->disk_len;) {
        uint64_t phys, run; /* where it is stored may be another group */
        remap_translate(st, b, fx->disk + fx->disk_len - b, &phys, &run);
        uint64_t gl = b / st->bg_size, gp = phys / st->bg_size;
        if ((gl < st->nbgs && st->bgs[gl].relocating) || (gp < st->nbgs && st->bgs[gp].relocating))
            return COW_OK;
        b += run;
    }
#endif
    if (in->root->last_snapshot == 0 && kind == EM_NOCOW_PREALLOC) {
        *yes = kind;
        return COW_OK;
    }
    int rc = refs_generation(st, fx->disk, &gen);
    if (rc == COW_OK && gen > in->root->last_snapshot &&
        (kind == EM_NOCOW_PREALLOC || gen <= durable))
        *yes = kind;
    return rc;
}

/* nocow_writable_below() with this store's last flushed commit. */
static int nocow_writable(cow_store *st, const struct cow_inode *in, const struct fext *fx,
                          int *yes)
{
    return nocow_writable_below(st, in, fx, st->durable_gen, yes);
}

int em_inplace_target(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t len,
                      uint64_t durable, uint64_t *disk, uint64_t *runlen)
{
    lk_assert_held(&st->lock);
    struct fext fx;
    int yes = 0;
    *disk = 0;
    *runlen = 0;
    int rc = fext_first(st, in, off, &fx);
    if (rc == COW_ENOENT)
        return COW_OK;
    if (rc == COW_OK && fx.start <= off && off < fx.start + fx.len)
        rc = nocow_writable_below(st, in, &fx, durable, &yes);
    if (rc || yes != EM_NOCOW_OVERWRITE)
        return rc;
    uint64_t in_item = fx.start + fx.len - off;
    *disk = fx.disk + fx.ext_off + (off - fx.start);
    *runlen = len < in_item ? len : in_item;
    return COW_OK;
}

int em_prealloc_target(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t len,
                       int *nocow, uint64_t *disk, uint64_t *runlen)
{
    lk_assert_held(&st->lock);
    struct fext fx;
    *nocow = 0;
    *disk = 0;
    *runlen = len;
    int rc = fext_first(st, in, off, &fx);
    if (rc == COW_ENOENT)
        return COW_OK;
    if (rc)
        return rc;
    int yes;
    rc = nocow_writable(st, in, &fx, &yes);
    if (rc)
        return rc;
    if (fx.start <= off && yes) {
        uint64_t in_item = fx.start + fx.len - off;
        *nocow = yes;
        *disk = fx.disk + fx.ext_off + (off - fx.start);
        *runlen = len < in_item ? len : in_item;
        return COW_OK;
    }
    /* new space up to the next preallocated range */
    while (fx.start < off + len) {
        if (fx.start > off) {
            rc = nocow_writable(st, in, &fx, &yes);
            if (rc)
                return rc;
            if (yes) {
                *runlen = fx.start - off;
                return COW_OK;
            }
        }
        if (fx.start + fx.len >= off + len)
            return COW_OK; /* items do not overlap: the next starts past the run */
        rc = fext_next(st, in, fx.start, &fx);
        if (rc == COW_ENOENT)
            return COW_OK;
        if (rc)
            return rc;
    }
    return COW_OK;
}

int em_prealloc_at(cow_store *st, struct cow_inode *in, uint64_t idx, int *yes)
{
    lk_assert_held(&st->lock);
    struct fext fx;
    *yes = 0;
    int rc = fext_first(st, in, idx * BLK, &fx);
    if (rc == COW_ENOENT)
        return COW_OK;
    if (rc == COW_OK && fx.start <= idx * BLK)
        rc = nocow_writable(st, in, &fx, yes);
    return rc;
}

int em_complete_prealloc(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t disk,
                         uint64_t nblocks, const uint32_t *crcs)
{
    lk_assert_held(&st->lock);
    struct fext fx;
    uint8_t csum_item[COW_MAX_EXTENT_BLOCKS * 4];
    size_t size;
    uint64_t len = nblocks * BLK;
    int rc = fext_first(st, in, off, &fx);
    if (rc == COW_OK &&
        (fx.start > off || fx.start + fx.len < off + len || fx.type != COW_FE_PREALLOC ||
         fx.disk + fx.ext_off + (off - fx.start) != disk))
        rc = COW_CORRUPT("inode %llu: the preallocated range at %llu changed under its "
                         "ordered extent",
                         (unsigned long long)in->ino, (unsigned long long)off);
    struct cow_key ck = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, fx.disk};
    if (!rc)
        rc = bt_lookup(st, &st->csum_tree, &ck, csum_item, sizeof csum_item, &size);
    if (!rc)
        rc = check_csum_matches(fx.disk, fx.disk_len, size);
    if (!rc) {
        /* the written blocks' checksums, then the mapping: head and tail
         * stay preallocated, the middle becomes a REG item of the same
         * extent (one more reference) */
        uint64_t first = (disk - fx.disk) / BLK;
        for (uint64_t b = 0; b < nblocks; b++)
            put32(csum_item + (first + b) * 4, crcs[b]);
        /* the commit list names where the blocks were written: where
         * relocation put the extent, if it moved (format.h) */
        for (uint64_t b = 0; b < nblocks;) {
            uint64_t phys, run;
            remap_translate(st, disk + b * BLK, (nblocks - b) * BLK, &phys, &run);
            txn_note_written(st, phys, run / BLK, crcs + b);
            b += run / BLK;
        }
        rc = bt_put(st, &st->csum_tree, &ck, csum_item, size);
    }
    if (!rc)
        rc = em_drop_range(st, in, off, off + len);
    if (!rc) {
        struct fext reg = {off, fx.disk, fx.disk_len, disk - fx.disk, len, COW_FE_REG};
        rc = fext_insert(st, in, &reg);
        if (!rc)
            rc = refs_add(st, fx.disk, fx.disk_len, 1, 0, +1);
    }
    if (!rc) {
        in->nblocks += nblocks;
        uint64_t end = off + len < in->size ? off + len : in->size;
        if (end > in->disk_size)
            in->disk_size = end;
        rc = em_inode_save(st, in);
    }
    if (rc)
        return txn_abort(st, rc);
    st->stats.written_in_place += len;
    return COW_OK;
}

int em_complete_overwrite(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t nblocks)
{
    lk_assert_held(&st->lock);
    st->data_unflushed = 1;
    st->inplace_writes++;
    st->stats.written_in_place += nblocks * BLK;
    /* the blocks stay where the trees have them (nocow_writable decided
     * under the lock; a snapshot, branch or relocation waits for ordered
     * extents in flight before it shares or copies them) */
    uint64_t end = off + nblocks * BLK < in->size ? off + nblocks * BLK : in->size;
    if (end <= in->disk_size)
        return COW_OK;
    in->disk_size = end;
    int rc = em_inode_save(st, in);
    return rc ? txn_abort(st, rc) : COW_OK;
}

int em_end(cow_store *st, struct cow_inode *in, uint64_t *end)
{
    lk_assert_held(&st->lock);
    *end = 0;
    struct cow_key k = {in->ino, COW_EXTENT_DATA, UINT64_MAX}, f;
    uint8_t d[FE_ITEM_SIZE];
    size_t size;
    int rc = bt_seek_le(st, in->root, &k, &f, d, sizeof d, &size);
    if (rc == COW_ENOENT)
        return COW_OK;
    if (rc)
        return rc;
    if (f.objectid != in->ino || f.type != COW_EXTENT_DATA)
        return COW_OK;
    struct fext fx;
    rc = fext_parse(st, &f, d, size, &fx);
    if (rc == COW_OK)
        *end = fx.start + fx.len;
    return rc;
}

int em_preallocate(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end,
                   uint64_t *done)
{
    lk_assert_held(&st->lock);
    uint8_t zero[BLK];
    memset(zero, 0, sizeof zero);
    uint32_t zcrc = crc32c(0, zero, BLK);
    uint8_t csum_item[COW_MAX_EXTENT_BLOCKS * 4];
    for (uint64_t b = 0; b < COW_MAX_EXTENT_BLOCKS; b++)
        put32(csum_item + b * 4, zcrc); /* placeholders: no REG item covers them */
    int rc = COW_OK;
    uint64_t at = start;
    while (at < end && rc == COW_OK) {
        uint64_t want = (end - at) / BLK, bytenr, got;
        if (want > COW_MAX_EXTENT_BLOCKS)
            want = COW_MAX_EXTENT_BLOCKS;
        rc = alloc_blocks(st, want, 0, &bytenr, &got);
        if (rc)
            break;
        struct fext fx = {at, bytenr, got * BLK, 0, got * BLK, COW_FE_PREALLOC};
        struct cow_key ck = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, bytenr};
        rc = refs_add(st, bytenr, got * BLK, 1, 0, +1);
        if (!rc)
            rc = bt_insert(st, &st->csum_tree, &ck, csum_item, (size_t)(got * 4));
        if (!rc)
            rc = fext_insert(st, in, &fx);
        if (rc) {
            alloc_unalloc(st, bytenr, got * BLK);
            break;
        }
        in->nblocks += got;
        at += got * BLK;
    }
    *done = at;
    return rc;
}
