/*
 * ordered.c - ordered extents: creation, completion and waiting (see
 * ordered.h).
 *
 * Who waits for ordered extents: an fsync waits for those overlapping the
 * ranges it is about to log, after collecting the ranges; a commit and a
 * log record of every file (cow_store_persist) wait for all of them; a
 * shrinking truncate waits for those past the new end, holding the
 * invalidate lock exclusively so that no new one starts meanwhile;
 * writeback waits for one when a page it would write is still in flight.
 *
 * Locking: store->lock held by every caller (asserted); the ordered-extent
 * lists and counts are protected by it.  An ordered extent's buffer
 * belongs to the thread that started it.
 */
#include <stdlib.h>

#include "extent_map.h"
#include "inject.h"
#include "lockdep.h"
#include "ordered.h"
#include "remap.h"

#define BLK COW_BLOCK_SIZE

#define LOCK(st) cow_mutex_lock(&(st)->lock)
#define UNLOCK(st) cow_mutex_unlock(&(st)->lock)

static int ranges_overlap(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
    return s1 < e2 && s2 < e1;
}

/* ---- creation ---- */

int oe_create(uint64_t off, uint64_t nblocks, uint64_t disk, int nocow, struct cow_resv *resv,
              struct oext **out)
{
    struct oext *oe = calloc(1, sizeof *oe);
    if (!oe || !(oe->buf = malloc(nblocks * BLK)) || !(oe->crcs = malloc(nblocks * 4))) {
        if (oe)
            oe_free(oe);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    oe->off = off;
    oe->len = nblocks * BLK;
    oe->disk = disk;
    oe->nocow = nocow;
    resv_merge(&oe->resv, resv);
    *out = oe;
    return COW_OK;
}

/* The inode's ordered extents in flight are a doubly linked list: a
 * writeback starts hundreds of them (a checkpoint's scattered pages) and
 * completes them oldest first, which a walk of a singly linked list to
 * unlink each made quadratic (3% of a large database's small
 * transactions, bench updates). */
static void oe_link(struct cow_inode *in, struct oext *oe)
{
    oe->prev = NULL;
    oe->next = in->oes;
    if (in->oes)
        in->oes->prev = oe;
    in->oes = oe;
}

static void oe_unlink(struct cow_inode *in, struct oext *oe)
{
    if (oe->prev)
        oe->prev->next = oe->next;
    else if (in->oes == oe)
        in->oes = oe->next;
    if (oe->next)
        oe->next->prev = oe->prev;
    oe->next = oe->prev = NULL;
}

void oe_start(cow_store *st, struct cow_inode *in, struct oext *oe)
{
    lk_assert_held(&st->lock);
    uint64_t nb = oe->len / BLK;
    if (!oe->nocow)
        resv_mark_allocated(st, &oe->resv); /* its NB blocks */
    st->noes++;
    st->oe_blocks += nb;
#ifdef COW_BREAK_RESV_SHARED
    in->pc.wb_resv += nb;
#endif
#ifdef COW_BREAK_OE_ORDER
    /* BROKEN ON PURPOSE (make race-proof): the extent map becomes
     * visible before its ordered extent exists. */
    em_mark_modified(in, oe->off, oe->off + oe->len);
    UNLOCK(st);
    COW_INJECT("writeback:before_io");
    LOCK(st);
    oe_link(in, oe);
#else
    oe_link(in, oe); /* the ordered extent first, */
    /* then the extent map (an overwrite in place changes no mapping) */
    if (oe->nocow != EM_NOCOW_OVERWRITE)
        em_mark_modified(in, oe->off, oe->off + oe->len);
#endif
}

void oe_free(struct oext *oe)
{
    free(oe->buf);
    free(oe->crcs);
    free(oe);
}

/* ---- writing and completion ---- */

int oe_write(cow_store *st, struct oext *oe)
{
    lk_assert_held(&st->lock);
    /* New space is stored at its own address; a write in place into a
     * preallocated extent goes where relocation put it (its group is not
     * being relocated: extent_map.c's nocow_writable, invariant 5). */
    uint64_t phys = oe->disk, run = oe->len;
    if (oe->nocow)
        remap_translate(st, oe->disk, oe->len, &phys, &run);
    if (!phys) /* a preallocated range is mapped: never dropped */
        return COW_CORRUPT("write in place into block %llu, which relocation dropped",
                           (unsigned long long)oe->disk);
    if (run == oe->len) {
        UNLOCK(st);
        COW_INJECT("writeback:before_io");
        int wrc = st->dev->write(st->dev, oe->buf, (size_t)oe->len, phys);
        LOCK(st);
        return wrc;
    }
    /* several pieces: written one by one, each looked up under the lock */
    int wrc = COW_OK;
    for (uint64_t done = 0; done < oe->len && !wrc;) {
        remap_translate(st, oe->disk + done, oe->len - done, &phys, &run);
        if (!phys)
            return COW_CORRUPT("write in place into block %llu, which relocation dropped",
                               (unsigned long long)(oe->disk + done));
        UNLOCK(st);
        COW_INJECT("writeback:before_io");
        wrc = st->dev->write(st->dev, oe->buf + done, (size_t)run, phys);
        LOCK(st);
        done += run;
    }
    return wrc;
}

int oe_complete(cow_store *st, struct cow_inode *in, struct oext *oe, int wrc,
                enum oe_outcome *outcome)
{
    lk_assert_held(&st->lock);
    uint64_t nb = oe->len / BLK;
    int rc = wrc;
    oe_unlink(in, oe);
    st->noes--;
    st->oe_blocks -= nb;
    if (!oe->nocow)
        resv_unmark_allocated(st, &oe->resv);
    if (st->failed) {
        /* The store stopped meanwhile (txn_abort): nothing enters the
         * trees any more. */
        resv_release(st, &oe->resv);
        *outcome = OE_STORE_STOPPED;
        rc = cow_set_error(COW_EFAILED, "the store stopped while an ordered extent of inode "
                                        "%llu was written; reopen the container",
                           (unsigned long long)in->ino);
    } else if (rc == COW_OK) {
#ifdef COW_BREAK_RESV_SHARED
        /* BROKEN ON PURPOSE (make race-proof): what to release is per-file
         * state, which counts another thread's ordered extents as this
         * one's (the ext4 xattr race): the wrong room, on purpose. */
        st->reserved -= in->pc.wb_resv;
        in->pc.wb_resv = 0;
#else
        resv_release(st, &oe->resv); /* this extent's own, once */
#endif
        *outcome = OE_WRITTEN;
        rc = oe->nocow == EM_NOCOW_OVERWRITE ? em_complete_overwrite(st, in, oe->off, nb)
             : oe->nocow ? em_complete_prealloc(st, in, oe->off, oe->disk, nb, oe->crcs)
                         : em_complete(st, in, oe->off, oe->disk, nb, oe->crcs);
    } else {
        /* The data did not reach the device: the space was never
         * referenced (or stays preallocated); the pages take back their
         * blocks of the reservation. */
        if (!oe->nocow)
            alloc_unalloc(st, oe->disk, oe->len);
        *outcome = OE_WRITE_FAILED;
    }
    st->stats.ordered_extents++;
    pthread_cond_broadcast(&st->oe_cond);
    return rc;
}

/* ---- looking at the ones in flight ---- */

uint64_t oe_end(const struct cow_inode *in)
{
    uint64_t end = 0;
    for (const struct oext *oe = in->oes; oe; oe = oe->next)
        if (oe->off + oe->len > end)
            end = oe->off + oe->len;
    return end;
}

void oe_count_resv(const struct cow_inode *in, uint64_t *held, uint64_t *allocated)
{
    for (const struct oext *oe = in->oes; oe; oe = oe->next) {
        *held += oe->resv.blocks;
        *allocated += oe->nocow ? 0 : oe->resv.blocks;
    }
}

/* 1 if an ordered extent of IN overlaps [start, end). */
static int oe_overlaps(const struct cow_inode *in, uint64_t start, uint64_t end)
{
    for (const struct oext *oe = in->oes; oe; oe = oe->next)
        if (ranges_overlap(oe->off, oe->off + oe->len, start, end))
            return 1;
    return 0;
}

/* ---- waiting ---- */

void oe_wait_one(cow_store *st)
{
    lk_assert_held(&st->lock);
    COW_INJECT("ordered:wait");
    cow_cond_wait(&st->oe_cond, &st->lock);
}

void oe_wait_range(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end)
{
    lk_assert_held(&st->lock);
    while (oe_overlaps(in, start, end))
        oe_wait_one(st);
}

void oe_wait_logged(cow_store *st, struct cow_inode *in)
{
    lk_assert_held(&st->lock);
    for (;;) {
        /* the ranges to log, as they are now; then their ordered extents */
        int busy = 0;
        for (const struct oext *oe = in->oes; oe && !busy; oe = oe->next)
            for (size_t i = 0; i < in->nlr && !busy; i++)
                busy = ranges_overlap(oe->off, oe->off + oe->len, in->lr[i].start,
                                      in->lr[i].end);
        if (!busy && in->log_overflow)
            busy = in->oes != NULL;
        if (!busy)
            return;
        oe_wait_one(st);
    }
}

void oe_wait_all(cow_store *st)
{
    lk_assert_held(&st->lock);
    while (st->noes)
        oe_wait_one(st);
}
