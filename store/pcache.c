/*
 * pcache.c - the per-file page cache and delayed allocation: the write
 * path between xWrite and the ordered extents.
 *
 * xWrite copies into cached pages of the file (4 KiB blocks) and marks them
 * dirty: delayed allocation (delalloc, as in ext4, XFS and btrfs).  Space
 * is reserved when a page first becomes dirty, by the call that dirties it
 * (space.h: struct cow_resv; docs/DESIGN.md, invariant 4), so a full disk
 * fails the xWrite with COW_ENOSPC, never the writeback.  Reads see the
 * cached pages first, then the extent map (extent_map.h).
 *
 * Writeback (at xSync, at the end of a write transaction, past the dirty
 * limit, and by the background flusher) turns runs of dirty pages into
 * ordered extents (ordered.h): contiguous new space is allocated, or the
 * preallocated extent under the run is written in place; the pages' data
 * and reserved blocks go to the ordered extent, which goes in flight before
 * its range is noted for the log (docs/DESIGN.md, invariant 2: an fsync
 * must never log a mapping whose data is still being written).  The data
 * is written with store->lock released; completion (oe_complete) puts the
 * extent into the trees, and the pages are settled after it: clean, or, if
 * the write failed, dirty again holding their reserved blocks again.
 * Nothing the trees reach changed on a failed write.
 *
 * Pages stay cached while dirty, in writeback (the trees do not point at
 * the new data yet), pinned by xFetch, or when they hold the file's last
 * block (the next append's partial first block) or the block the last
 * write ended inside (the next sequential write's partial first block).
 * The other clean pages go on the store's LRU (struct pc_lru) once written
 * back or unpinned, and stay cached until it passes its byte budget
 * (COW_CLEAN_CACHE by default), least recently used first, as the
 * kernel's page cache keeps them: a WAL rewritten from its start after a
 * checkpoint writes 4,120-byte frames over blocks it wrote before, and
 * each frame's partial last block is then found here instead of being
 * read back and verified.  A clean page is never stale: every change of a
 * file's bytes goes through its pages (a write dirties them), and
 * everything that changes them behind the cache drops them (truncate and
 * a failed write's cleanup: pc_punch; restore and another process's
 * commit: file_rebind, file_reload_inode; replay: pc_forget_range; a
 * nodatacow file rewritten in place by another process: pc_drop_clean).
 * Relocation moves extents, not file bytes, so it changes no page.
 *
 * Calls down only: ordered extents, the extent map, space reservation, the
 * allocator.  Locking: in->invalidate (an rwlock) before store->lock.
 * Pages and counters are protected by store->lock.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "inject.h"
#include "extent_map.h"
#include "ordered.h"
#include "space.h"
#include "lockdep.h"
#include "store_int.h"

#define BLK COW_BLOCK_SIZE
#define ROUND_UP(x) (((x) + BLK - 1) & ~(uint64_t)(BLK - 1))
#define ROUND_DOWN(x) ((x) & ~(uint64_t)(BLK - 1))

#define LOCK(st) cow_mutex_lock(&(st)->lock)
#define UNLOCK(st) cow_mutex_unlock(&(st)->lock)
/* pcache.lock: the page hash, pages' bytes and the size, against
 * pc_read_cached (innermost) */
#define PGLOCK(pc) pthread_mutex_lock(&(pc)->lock)
#define PGUNLOCK(pc) pthread_mutex_unlock(&(pc)->lock)

/* ---- the page hash ---- */

/* ---- the clean-page LRU ---- */

static void lru_del(struct pc_lru *l, struct cpage *p)
{
    if (p->lprev)
        p->lprev->lnext = p->lnext;
    else
        l->head = p->lnext;
    if (p->lnext)
        p->lnext->lprev = p->lprev;
    else
        l->tail = p->lprev;
    p->lprev = p->lnext = NULL;
    p->lru = 0;
    l->bytes -= BLK;
}

/* P (clean, not in writeback, not pinned) becomes the most recently used. */
static void lru_touch(struct pc_lru *l, struct cpage *p)
{
    if (p->lru) {
        if (l->head == p)
            return;
        lru_del(l, p);
    }
    p->lprev = NULL;
    p->lnext = l->head;
    if (l->head)
        l->head->lprev = p;
    l->head = p;
    if (!l->tail)
        l->tail = p;
    p->lru = 1;
    l->bytes += BLK;
}

static void page_free(struct cpage *p);

/* Evicts the least recently used pages until the LRU is within its
 * budget: each is taken out of its file's cache and freed.  A page read
 * without store->lock since it was last here (pc_read_cached: referenced)
 * goes to the head instead, once (the clock algorithm's second chance). */
static void lru_evict(struct pc_lru *l)
{
    while (l->bytes > l->budget && l->tail) {
        struct cpage *p = l->tail;
        struct pcache *pc = &p->in->pc;
        if (__atomic_exchange_n(&p->referenced, 0, __ATOMIC_RELAXED) && l->head != p) {
            lru_touch(l, p);
            continue;
        }
        lru_del(l, p);
        PGLOCK(pc);
        hm_remove(&pc->pages, &p->hnode);
        if (pc->pages.count == 0)
            pc->hi = 0;
        PGUNLOCK(pc);
        page_free(p);
    }
}

void pc_set_clean_budget(cow_store *st, uint64_t bytes)
{
    lk_assert_held(&st->lock);
    st->lru.budget = bytes < BLK ? 0 : bytes;
    lru_evict(&st->lru);
}

int pc_init(cow_store *st, struct cow_inode *in)
{
    memset(&in->pc, 0, sizeof in->pc);
    in->pc.lru = &st->lru;
    if (pthread_mutex_init(&in->pc.lock, NULL))
        return cow_set_error(COW_ENOMEM, "cannot create a file's page lock");
    if (cow_rwlock_init(&in->invalidate)) {
        pthread_mutex_destroy(&in->pc.lock);
        return cow_set_error(COW_ENOMEM, "cannot create a file's invalidate lock");
    }
    return COW_OK;
}

static void page_free(struct cpage *p)
{
    free(p->data);
    free(p);
}

void pc_destroy(struct cow_inode *in)
{
    struct pcache *pc = &in->pc;
    struct hm_node *n, *next;
    hm_for_each_safe(&pc->pages, n, next) {
        struct cpage *p = hm_entry(n, struct cpage, hnode);
        if (p->lru)
            lru_del(pc->lru, p);
        page_free(p);
    }
    for (struct cpage *p = pc->detached, *pn; p; p = pn) {
        pn = p->hnext;
        page_free(p);
    }
    hm_destroy(&pc->pages);
    pthread_mutex_destroy(&pc->lock);
    memset(pc, 0, sizeof *pc);
    cow_rwlock_destroy(&in->invalidate);
}

/* The cached page at file block IDX, or NULL. */
static struct cpage *pc_find(const struct pcache *pc, uint64_t idx)
{
    struct hm_node *n = hm_find(&pc->pages, idx);
    return n ? hm_entry(n, struct cpage, hnode) : NULL;
}

/* A new page of IN at IDX, zeroed, clean, up to date if UPTODATE (else
 * not, until its bytes are in: pc_get, pc_write).  COW_ENOMEM. */
static int pc_new(struct cow_inode *in, uint64_t idx, int uptodate, struct cpage **out)
{
    struct pcache *pc = &in->pc;
    struct cpage *p = calloc(1, sizeof *p);
    int err = !p || !(p->data = calloc(1, BLK));
    if (!err) {
        p->idx = idx;
        p->in = in;
        p->uptodate = uptodate;
        PGLOCK(pc);
        err = hm_insert(&pc->pages, &p->hnode, idx) != 0;
        if (!err && idx >= pc->hi)
            pc->hi = idx + 1;
        PGUNLOCK(pc);
    }
    if (err) {
        if (p)
            free(p->data);
        free(p);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    *out = p;
    return COW_OK;
}

/* Removes P (clean, not in writeback) from the cache: freed, or kept on
 * the detached list while an xFetch holds it. */
static void pc_drop(struct pcache *pc, struct cpage *p)
{
    if (p->lru)
        lru_del(pc->lru, p);
    PGLOCK(pc);
    hm_remove(&pc->pages, &p->hnode);
    if (pc->pages.count == 0)
        pc->hi = 0;
    PGUNLOCK(pc);
    if (p->pins) {
        p->detached = 1;
        p->hnext = pc->detached;
        pc->detached = p;
    } else {
        page_free(p);
    }
}

/* P, once nothing needs it cached (clean, not in writeback, not pinned,
 * and neither the file's last block nor the one the last write ended in:
 * those stay), goes on the LRU, or is dropped if it keeps nothing. */
static void pc_maybe_evict(struct cow_inode *in, struct cpage *p)
{
    if (p->dirty || p->wb || p->pins)
        return;
    if (in->size && p->idx == (in->size - 1) / BLK)
        return;
    if (p->idx + 1 == in->pc.tail)
        return;
    struct pc_lru *l = in->pc.lru;
    if (l->budget == 0) {
        pc_drop(&in->pc, p);
        return;
    }
    lru_touch(l, p);
    lru_evict(l); /* never P, the most recently used (budget >= BLK) */
}

void pc_drop_clean(cow_store *st, struct cow_inode *in)
{
    lk_assert_held(&st->lock);
    (void)st; /* the assert's only use */
    struct hm_node *n, *next;
    hm_for_each_safe(&in->pc.pages, n, next) {
        struct cpage *p = hm_entry(n, struct cpage, hnode);
        if (!p->dirty && !p->wb && !p->pins)
            pc_drop(&in->pc, p);
    }
}

/* The last write ended at byte END: its block, if END is inside one, is
 * the one kept cached; the block kept before is dropped if clean. */
static void pc_set_tail(struct cow_inode *in, uint64_t end)
{
    uint64_t old = in->pc.tail;
    in->pc.tail = end % BLK ? end / BLK + 1 : 0;
    if (old && old != in->pc.tail) {
        struct cpage *p = pc_find(&in->pc, old - 1);
        if (p)
            pc_maybe_evict(in, p);
    }
}

/* ---- dirty pages ---- */

/* P becomes dirty, taking one block of the reservation R, or none if R is
 * NULL (a page written back in place into preallocated space). */
static void page_dirty(cow_store *st, struct cow_inode *in, struct cpage *p, struct cow_resv *r)
{
    if (r)
        resv_take(r, 1);
    struct pcache *pc = &in->pc;
    if (p->lru)
        lru_del(pc->lru, p);
    p->inplace = r == NULL;
    p->dirty = 1;
    p->dprev = NULL;
    p->dnext = pc->dirty;
    if (pc->dirty)
        pc->dirty->dprev = p;
    pc->dirty = p;
    pc->ndirty++;
    pc->nredirty += p->wb > 0;
    st->ndirty++;
}

/* P is no longer dirty; its reserved block goes to the caller. */
static void page_undirty(cow_store *st, struct cow_inode *in, struct cpage *p)
{
    struct pcache *pc = &in->pc;
    p->dirty = 0;
    if (p->dprev)
        p->dprev->dnext = p->dnext;
    else
        pc->dirty = p->dnext;
    if (p->dnext)
        p->dnext->dprev = p->dprev;
    p->dprev = p->dnext = NULL;
    pc->ndirty--;
    pc->nredirty -= p->wb > 0;
    st->ndirty--;
}

/* One ordered extent fewer holds P's data. */
static void page_wb_done(struct cow_inode *in, struct cpage *p)
{
    if (p->wb == 0)
        return;
    p->wb--;
    in->pc.nredirty -= p->dirty && p->wb == 0;
}

/* ---- reading ---- */

int pc_read(cow_store *st, struct cow_inode *in, uint8_t *buf, uint64_t len, uint64_t off,
            struct em_plan *plan)
{
    lk_assert_rw_held(&in->invalidate);
    lk_assert_held(&st->lock);
    if (in->pc.pages.count == 0)
        return em_resolve(st, in, buf, len, off, plan);
    uint64_t end = off + len, pos = off;
    while (pos < end) {
        struct cpage *p = pc_find(&in->pc, pos / BLK);
        if (p) {
            if (p->lru)
                lru_touch(in->pc.lru, p);
            uint64_t n = BLK - pos % BLK;
            if (n > end - pos)
                n = end - pos;
            memcpy(buf + (pos - off), p->data + pos % BLK, (size_t)n);
            pos += n;
            continue;
        }
        /* a run of blocks that are not cached: from the extents */
        uint64_t e = ROUND_DOWN(pos) + BLK;
        while (e < end && !pc_find(&in->pc, e / BLK))
            e += BLK;
        if (e > end)
            e = end;
        int rc = em_resolve(st, in, buf + (pos - off), e - pos, pos, plan);
        if (rc)
            return rc;
        pos = e;
    }
    return COW_OK;
}

/* docs/DESIGN.md, invariant 16. */
int pc_read_cached(struct cow_inode *in, uint8_t *buf, size_t len, uint64_t off,
                   size_t *nread)
{
    lk_assert_rw_held(&in->invalidate);
    struct pcache *pc = &in->pc;
    int hit = 1;
    PGLOCK(pc);
    uint64_t size = in->size, avail = 0;
    if (off < size)
        avail = size - off < len ? size - off : len;
    for (uint64_t pos = off; pos < off + avail;) {
        struct cpage *p = pc_find(pc, pos / BLK);
        if (!p || !p->uptodate) {
            hit = 0;
            break;
        }
        uint64_t n = BLK - pos % BLK;
        if (n > off + avail - pos)
            n = off + avail - pos;
        memcpy(buf + (pos - off), p->data + pos % BLK, (size_t)n);
        __atomic_store_n(&p->referenced, 1, __ATOMIC_RELAXED);
        pos += n;
    }
    PGUNLOCK(pc);
    if (hit) {
        memset(buf + avail, 0, len - (size_t)avail);
        *nread = (size_t)avail;
    }
    return hit;
}

uint64_t pc_size(struct cow_inode *in)
{
    PGLOCK(&in->pc);
    uint64_t size = in->size;
    PGUNLOCK(&in->pc);
    return size;
}

void pc_set_size(struct cow_inode *in, uint64_t size)
{
    PGLOCK(&in->pc);
    in->size = size;
    PGUNLOCK(&in->pc);
}

/* The cached page of block IDX, made (and filled from the extents unless
 * WHOLE: the caller is about to overwrite all of it) if needed. */
static int pc_get(cow_store *st, struct cow_inode *in, uint64_t idx, int whole,
                  struct cpage **out)
{
    struct cpage *p = pc_find(&in->pc, idx);
    if (p && p->lru)
        lru_touch(in->pc.lru, p);
    if (!p) {
        uint64_t at = idx * BLK;
        int fill = at < in->size && !whole;
        /* filled before anyone can read it without store->lock: made up
         * to date only then (a whole-block write makes it so itself) */
        int rc = pc_new(in, idx, !fill && !whole, &p);
        if (rc)
            return rc;
        COW_INJECT("pc:page_made"); /* tests: a page made, its bytes not in yet */
        if (fill) {
            uint64_t n = in->size - at < BLK ? in->size - at : BLK;
            rc = em_read(st, in, p->data, n, at);
            if (rc) {
                pc_drop(&in->pc, p);
                return rc;
            }
            PGLOCK(&in->pc);
            p->uptodate = 1;
            PGUNLOCK(&in->pc);
        }
    }
    *out = p;
    return COW_OK;
}

/* ---- writing ---- */

int pc_write(cow_store *st, struct cow_inode *in, const uint8_t *data, size_t len, uint64_t off,
             int flags)
{
    lk_assert_rw_held(&in->invalidate);
    lk_assert_held(&st->lock);
    uint64_t end;
    int rc = range_end(off, len, &end);
    if (rc || end > (1ull << 62))
        return cow_set_error(COW_EINVAL, "write of %zu bytes at %llu overflows", len,
                             (unsigned long long)off);
    if (len == 0)
        return COW_OK;
    /* Past the dirty limit, this file's dirty pages go to the device
     * first (the writer pays, as with balance_dirty_pages); the others
     * are the flusher's. */
    if (!(flags & PC_KEEP_SIZE) && st->ndirty * BLK > st->dirty_limit) {
        rc = pc_writeback(st, in);
        if (rc)
            return rc;
        if (st->ndirty * BLK > st->dirty_limit / 2) {
            st->flush_wanted = 1;
            pthread_cond_signal(&st->committer_cond);
        }
    }
    if (off > in->size && off / BLK != in->size / BLK && !(flags & PC_KEEP_SIZE)) {
        /* the old last block is not written: its bytes past the old end
         * are zeroed first, as they become part of the file */
        rc = pc_zero_tail(st, in);
        if (rc)
            return rc;
    }
    uint64_t first = off / BLK, last = (end - 1) / BLK;
    uint64_t need = 0, pages = 0, npages = last - first + 1;
    /* Pages this call dirties: each reserves a block, except those over
     * preallocated blocks (not in flight), which are written there. */
    uint8_t small[64], *inplace = npages <= sizeof small ? small : malloc((size_t)npages);
    if (!inplace)
        return cow_set_error(COW_ENOMEM, "out of memory");
    for (uint64_t i = first; i <= last; i++) {
        struct cpage *p = pc_find(&in->pc, i);
        int yes = 0;
        if (!p || (!p->dirty && !p->wb)) {
            rc = em_prealloc_at(st, in, i, &yes);
            if (rc) {
                if (inplace != small)
                    free(inplace);
                return rc;
            }
        }
        inplace[i - first] = (uint8_t)yes;
        need += (!p || !p->dirty) && !yes;
        pages += !p || !p->dirty;
    }
    /* The reservation travels with this call: the pages it dirties take
     * their blocks from R, nothing else does. */
    struct cow_resv own = {0}, *r = &own;
    rc = resv_reserve(st, r, need, pages);
    if (rc) {
        if (inplace != small)
            free(inplace);
        return rc; /* a full disk: nothing changed */
    }
    for (uint64_t i = first; i <= last && rc == COW_OK; i++) {
        struct cpage *p;
        uint64_t bs = i * BLK;
        uint64_t s = off > bs ? off : bs, e = end < bs + BLK ? end : bs + BLK;
        rc = pc_get(st, in, i, s == bs && e == bs + BLK, &p);
        if (rc)
            break;
        PGLOCK(&in->pc);
        memcpy(p->data + (s - bs), data + (s - off), (size_t)(e - s));
        p->uptodate = 1;
        PGUNLOCK(&in->pc);
        if (!p->dirty)
            page_dirty(st, in, p, inplace[i - first] ? NULL : r);
    }
    if (inplace != small)
        free(inplace);
    resv_release(st, r); /* what pages did not take (none, unless failed) */
    if (rc)
        return rc; /* the caller punches what this left past the end */
    /* the INODE_ITEM's size follows at writeback (disk_size) */
    if (end > in->size && !(flags & PC_KEEP_SIZE))
        pc_set_size(in, end);
    pc_set_tail(in, end);
    return COW_OK;
}

int pc_zero_tail(cow_store *st, struct cow_inode *in)
{
    lk_assert_rw_held(&in->invalidate);
    lk_assert_held(&st->lock);
    if (in->size % BLK == 0)
        return COW_OK;
    struct cpage *p = pc_find(&in->pc, in->size / BLK);
    if (p && p->dirty)
        return COW_OK; /* its bytes past the end are zero, and will be written */
    /* a write of zeros over them: the page is read up to the end only
     * (pc_get), reserved and dirtied like any write */
    static const uint8_t zero[BLK];
    return pc_write(st, in, zero, BLK - in->size % BLK, in->size, PC_KEEP_SIZE);
}

void pc_clear_past(struct cow_inode *in, uint64_t size)
{
    if (size % BLK == 0)
        return;
    struct cpage *p = pc_find(&in->pc, size / BLK);
    if (p) {
        PGLOCK(&in->pc);
        memset(p->data + size % BLK, 0, BLK - size % BLK);
        PGUNLOCK(&in->pc);
    }
}

/* ---- writeback ---- */

/* The pages of ordered extent OE of IN after oe_complete (OUTCOME): one
 * ordered extent fewer holds their data; written ones may be evicted,
 * those whose data did not reach the device are dirty again, each taking
 * back its block of OE's reservation (the rest is released). */
static void pages_done(cow_store *st, struct cow_inode *in, struct oext *oe,
                       enum oe_outcome outcome)
{
    uint64_t nb = oe->len / BLK;
    for (uint64_t b = 0; b < nb; b++) {
        struct cpage *p = pc_find(&in->pc, oe->off / BLK + b);
        if (!p)
            continue;
        switch (outcome) {
        case OE_STORE_STOPPED: /* one holder fewer, otherwise left as they are */
            page_wb_done(in, p);
            break;
        case OE_WRITTEN:
            if (p->wb) {
                page_wb_done(in, p);
                pc_maybe_evict(in, p);
            }
            break;
        case OE_WRITE_FAILED:
            page_wb_done(in, p);
            if (!p->dirty) /* in place again: the space is still preallocated */
                page_dirty(st, in, p, oe->nocow ? NULL : &oe->resv);
            break;
        }
    }
    if (outcome == OE_WRITE_FAILED)
        resv_release(st, &oe->resv); /* none left, unless a page was gone */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 1 if a dirty page of IN is also in an ordered extent still in flight. */
static int redirtied_in_flight(const struct cow_inode *in)
{
    return in->pc.nredirty > 0;
}

int pc_writeback(cow_store *st, struct cow_inode *in)
{
    lk_assert_rw_held(&in->invalidate);
    lk_assert_held(&st->lock);
    /* A page written again while its last writeback is in flight waits
     * for that one to complete (wait_on_page_writeback): two ordered
     * extents of one block never run at once, so they cannot complete
     * out of order and put the older data back. */
    while (in->pc.ndirty && redirtied_in_flight(in))
        oe_wait_one(st);
    if (in->pc.ndirty == 0)
        return COW_OK;
    size_t n = 0, nmine = 0;
    uint64_t *v = malloc(in->pc.ndirty * sizeof *v);
    struct oext **mine = malloc(in->pc.ndirty * sizeof *mine);
    if (!v || !mine) {
        free(v);
        free(mine);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    for (struct cpage *p = in->pc.dirty; p; p = p->dnext)
        v[n++] = p->idx;
    assert(n == in->pc.ndirty);
    qsort(v, n, sizeof *v, cmp_u64);
    int rc = COW_OK;
    /* Start: one ordered extent per run of dirty pages (and per
     * contiguous allocation), all under the lock. */
    for (size_t i = 0; i < n && rc == COW_OK;) {
        size_t j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1 && j + 1 - i < COW_MAX_EXTENT_BLOCKS)
            j++;
        /* A run inside a preallocated extent is written there, in place
         * (btrfs's nocow write into prealloc); any other run gets new
         * space, and stops where a preallocated range begins. */
        uint64_t bytenr, got, runlen;
        int nocow;
        rc = em_prealloc_target(st, in, v[i] * BLK, (j - i + 1) * BLK, &nocow, &bytenr,
                                &runlen);
        if (rc)
            break;
        if (nocow)
            got = runlen / BLK;
        else if ((rc = alloc_blocks(st, runlen / BLK, 0, &bytenr, &got)))
            break;
        /* the pages' reserved blocks move to the extent (in-place pages
         * have none) */
        struct cow_resv resv = {0};
        for (uint64_t b = 0; b < got; b++)
            resv.blocks += !pc_find(&in->pc, v[i + b])->inplace;
        if (!nocow && resv.blocks < got) {
            /* not expected: a page dirtied in place no longer over its
             * preallocated block; it needs new space after all */
            struct cow_resv more = {0};
            rc = resv_reserve(st, &more, got - resv.blocks, got - resv.blocks);
            if (rc) {
                alloc_unalloc(st, bytenr, got * BLK);
                break;
            }
            resv_merge(&resv, &more); /* MORE's blocks now belong to the extent */
        }
        struct oext *oe;
        rc = oe_create(v[i] * BLK, got, bytenr, nocow, &resv, &oe);
        if (rc) {
            if (!nocow)
                alloc_unalloc(st, bytenr, got * BLK);
            break;
        }
        for (uint64_t b = 0; b < got; b++) {
            struct cpage *p = pc_find(&in->pc, v[i + b]);
            memcpy(oe->buf + b * BLK, p->data, BLK);
            /* an overwrite in place keeps no checksum (format.h) */
            oe->crcs[b] = nocow == EM_NOCOW_OVERWRITE ? 0 : crc32c(0, p->data, BLK);
            page_undirty(st, in, p);
            p->wb++; /* not dirty now: nredirty unchanged */
        }
        oe_start(st, in, oe); /* linked, then noted for the log */
        mine[nmine++] = oe;
        i += got;
    }
    free(v);
    /* Write each with the lock released, and complete it. */
    for (size_t k = 0; k < nmine; k++) {
        struct oext *oe = mine[k];
        int wrc = oe_write(st, oe);
        enum oe_outcome outcome;
        int crc = oe_complete(st, in, oe, wrc, &outcome);
        pages_done(st, in, oe, outcome);
        oe_free(oe);
        if (rc == COW_OK)
            rc = crc;
    }
    free(mine);
    return rc;
}

/* ---- dropping pages ---- */

/* Drops P at or past the punch point (see pc_punch). */
static void punch_one(cow_store *st, struct cow_inode *in, struct cpage *p)
{
    if (p->dirty) {
        page_undirty(st, in, p);
        if (!p->inplace) {
            struct cow_resv own = {1}; /* its block, released once: here */
            resv_release(st, &own);
        }
    }
    p->wb = 0; /* callers waited for the ordered extents */
    pc_drop(&in->pc, p);
}

void pc_punch(cow_store *st, struct cow_inode *in, uint64_t idx)
{
    lk_assert_held(&st->lock);
    struct pcache *pc = &in->pc;
    if (idx >= pc->hi)
        return;
    if (pc->hi - idx <= pc->pages.count) {
        /* fewer indexes than pages: look each up */
        for (uint64_t i = pc->hi; i-- > idx;) {
            struct cpage *p = pc_find(pc, i);
            if (p)
                punch_one(st, in, p);
        }
    } else {
        struct hm_node *n, *next;
        hm_for_each_safe(&pc->pages, n, next) {
            struct cpage *p = hm_entry(n, struct cpage, hnode);
            if (p->idx >= idx)
                punch_one(st, in, p);
        }
    }
    if (pc->hi > idx)
        pc->hi = idx;
}

void pc_forget_range(struct cow_inode *in, uint64_t start, uint64_t end)
{
    struct pcache *pc = &in->pc;
    if (end > pc->hi * BLK)
        end = pc->hi * BLK;
    if (start >= end)
        return;
    uint64_t first = start / BLK, last = (end - 1) / BLK;
    if (last - first < pc->pages.count) {
        for (uint64_t i = first; i <= last; i++) {
            struct cpage *p = pc_find(pc, i);
            if (p && !p->dirty && !p->wb)
                pc_drop(pc, p);
        }
        return;
    }
    struct hm_node *n, *next;
    hm_for_each_safe(&pc->pages, n, next) {
        struct cpage *p = hm_entry(n, struct cpage, hnode);
        uint64_t at = p->idx * BLK;
        if (!p->dirty && !p->wb && at + BLK > start && at < end)
            pc_drop(pc, p);
    }
}

/* ---- the whole store ---- */

uint64_t pc_end(struct cow_inode *in)
{
    /* down from the bound to the highest page, which becomes the bound:
     * each index passed over is paid for by the page once cached there */
    struct pcache *pc = &in->pc;
    while (pc->hi > 0 && !pc_find(pc, pc->hi - 1))
        pc->hi--;
    uint64_t end = pc->hi * BLK, oend = oe_end(in);
    return oend > end ? oend : end;
}

/* ---- the debug check of the counts ---- */

static int count_blocks_cb(void *arg, uint64_t off, const uint8_t *fe)
{
    (void)off;
    *(uint64_t *)arg += get64(fe + FE_NUM_BYTES) / BLK;
    return COW_OK;
}

int pc_check_counts(cow_store *st)
{
    lk_assert_held(&st->lock);
    uint64_t dirty = 0, inflight = 0, alloc = 0, held = 0, onlru = 0, lrulen = 0;
    for (struct cpage *p = st->lru.head; p; p = p->lnext)
        lrulen++;
    for (struct cow_inode *in = st->inodes; in; in = in->next) {
        uint64_t d = 0, rd = 0, listed = 0, hi = 0;
        struct hm_node *n;
        hm_for_each(&in->pc.pages, n) {
            struct cpage *p = hm_entry(n, struct cpage, hnode);
            if (p->lru && (p->dirty || p->wb || p->pins || p->in != in))
                return COW_CORRUPT("inode %llu: page %llu on the clean-page LRU is %s",
                                   (unsigned long long)in->ino, (unsigned long long)p->idx,
                                   p->in != in ? "another file's" : "in use");
            onlru += p->lru != 0;
            d += p->dirty != 0;
            rd += p->dirty && p->wb;
            held += p->dirty && !p->inplace;
            if (p->idx + 1 > hi)
                hi = p->idx + 1;
        }
        for (struct cpage *p = in->pc.dirty; p; p = p->dnext)
            listed += p->dirty != 0;
        if (d != in->pc.ndirty || listed != d || rd != in->pc.nredirty || hi > in->pc.hi)
            return COW_CORRUPT("inode %llu: %llu dirty pages (%llu listed, %llu in writeback, "
                               "highest %llu), counted %zu (%zu, bound %llu)",
                               (unsigned long long)in->ino, (unsigned long long)d,
                               (unsigned long long)listed, (unsigned long long)rd,
                               (unsigned long long)hi, in->pc.ndirty, in->pc.nredirty,
                               (unsigned long long)in->pc.hi);
        dirty += d;
        oe_count_resv(in, &inflight, &alloc);
        uint64_t nb = 0;
        int rc = em_for_extents(st, in, 0, UINT64_MAX, count_blocks_cb, &nb);
        if (rc)
            return rc;
        if (nb != in->nblocks)
            return COW_CORRUPT("inode %llu: extent items cover %llu blocks, counted %llu",
                               (unsigned long long)in->ino, (unsigned long long)nb,
                               (unsigned long long)in->nblocks);
    }
    if (onlru != lrulen || lrulen * BLK != st->lru.bytes)
        return COW_CORRUPT("clean-page LRU: %llu pages listed, %llu marked, %llu bytes counted",
                           (unsigned long long)lrulen, (unsigned long long)onlru,
                           (unsigned long long)st->lru.bytes);
    if (dirty != st->ndirty || held + inflight != st->reserved || alloc != st->oe_alloc)
        return COW_CORRUPT("reserved %llu blocks, counted %llu (dirty pages %llu of %llu "
                           "counted, in flight %llu, allocated %llu of %llu)",
                           (unsigned long long)(held + inflight),
                           (unsigned long long)st->reserved, (unsigned long long)dirty,
                           (unsigned long long)st->ndirty, (unsigned long long)inflight,
                           (unsigned long long)alloc, (unsigned long long)st->oe_alloc);
    return COW_OK;
}

/* ---- the invalidate lock ---- */

void pc_lock_shared(struct cow_inode *in)
{
    if (cow_rwlock_tryrdlock(&in->invalidate))
        return;
    COW_INJECT("invalidate:wait"); /* a truncate holds it */
    cow_rwlock_rdlock(&in->invalidate);
}

void pc_lock_excl(struct cow_inode *in)
{
#ifdef COW_BREAK_INVALIDATE
    /* BROKEN ON PURPOSE (make race-proof): truncate shares the lock with
     * the readers that instantiate pages (recorded as exclusive, so that
     * the asserts let the race happen and the race test sees it) */
    cow_rwlock_rdlock_as_writer(&in->invalidate);
#else
    cow_rwlock_wrlock(&in->invalidate);
#endif
}

void pc_unlock(struct cow_inode *in)
{
    cow_rwlock_unlock(&in->invalidate);
}

/* ---- xFetch ---- */

int pc_fetch(cow_store *st, struct cow_inode *in, uint64_t off, size_t len, void **pp)
{
    lk_assert_rw_held(&in->invalidate);
    lk_assert_held(&st->lock);
    *pp = NULL;
    if (len == 0 || off / BLK != (off + len - 1) / BLK || off + len > in->size)
        return COW_OK; /* not within one block of the file: the caller reads */
    struct cpage *p;
    int rc = pc_get(st, in, off / BLK, 0, &p);
    if (rc)
        return rc;
    if (p->lru)
        lru_del(in->pc.lru, p); /* pinned: not evictable */
    p->pins++;
    *pp = p->data + off % BLK;
    return COW_OK;
}

void pc_unfetch(struct cow_inode *in, uint64_t off, void *ptr)
{
    uint8_t *base = (uint8_t *)ptr - off % BLK;
    struct cpage *p = pc_find(&in->pc, off / BLK);
    if (p && p->data == base) {
        if (p->pins > 0)
            p->pins--;
        pc_maybe_evict(in, p);
        return;
    }
    for (struct cpage **pp = &in->pc.detached; *pp; pp = &(*pp)->hnext)
        if ((*pp)->data == base) {
            p = *pp;
            if (--p->pins <= 0) {
                *pp = p->hnext;
                page_free(p);
            }
            return;
        }
}
