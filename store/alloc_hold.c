/*
 * alloc_hold.c - the free space map's held runs: space other processes
 * (store/shared.c's reader table) or readers on other clients (bdev.h
 * readers_oldest) may still read, kept out of allocation until every
 * reader has moved past the generation that freed it (invariant 9;
 * docs/DESIGN.md "Several processes", "Readers on other clients").  The
 * rest of the map is alloc.c's; the helpers both use are in alloc_int.h.
 *
 * Locking: store->lock held by every caller.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"
#include "bgsum.h"
#include "inject.h"
#include "shared.h"
#include "store_int.h"
#include "vec.h"

int alloc_held_add(cow_store *st, uint64_t bytenr, uint64_t bytes, uint64_t gen, int phys)
{
    if (vec_reserve(st->held, st->cheld, st->nheld + 1))
        return -1;
    st->held[st->nheld++] = (struct held_run){bytenr, bytes, gen, phys};
    return 0;
}

int alloc_held_claim(cow_store *st, uint64_t bytenr, uint64_t len)
{
    uint64_t end = bytenr + len;
    for (size_t k = 0; k < st->nheld; k++) {
        struct held_run h = st->held[k];
        uint64_t a = h.bytenr > bytenr ? h.bytenr : bytenr;
        uint64_t e = h.bytenr + h.bytes < end ? h.bytenr + h.bytes : end;
        if (a >= e)
            continue;
        if (h.bytenr < a && e < h.bytenr + h.bytes) { /* split: the rest after */
            if (alloc_held_add(st, e, h.bytenr + h.bytes - e, h.gen, h.phys))
                return cow_set_error(COW_ENOMEM, "out of memory");
            st->held[k].bytes = a - h.bytenr;
        } else if (h.bytenr < a) {
            st->held[k].bytes = a - h.bytenr;
        } else if (e < h.bytenr + h.bytes) {
            st->held[k].bytenr = e;
            st->held[k].bytes = h.bytenr + h.bytes - e;
        } else {
            st->held[k--] = st->held[--st->nheld];
        }
        alloc_release_run(st, a, e - a, h.phys);
    }
    return COW_OK;
}

/* shared_frees_take()'s callback: the table is only a record for the next
 * owner; what this one holds is in st->held. */
static void take_none(void *arg, uint64_t start, uint64_t len, int phys)
{
    (void)arg;
    (void)start;
    (void)len;
    (void)phys;
}

/* Lets go of the held runs every live reader has moved past (generation
 * at least theirs), and drops them from the shared state's pending
 * frees.  Lock held; takes the shared mutex. */
static void release_held(cow_store *st)
{
    /* readers of other processes (the shared reader table: takes the
     * mutex itself) and of other clients (bdev.h readers_oldest) */
    uint64_t min = st->shared ? shared_min_pinned(st->shared) : UINT64_MAX;
    if (st->dev->readers_oldest) {
        uint64_t m = st->dev->readers_oldest(st->dev, st->durable_gen);
        min = m < min ? m : min;
    }
#ifdef COW_BREAK_XPROC_UNPINNED
    min = UINT64_MAX; /* make race-proof: other processes' readers ignored */
#endif
    size_t keep = 0;
    for (size_t k = 0; k < st->nheld; k++) {
        struct held_run *h = &st->held[k];
        if (h->gen > min)
            st->held[keep++] = *h;
        else
            alloc_release_run(st, h->bytenr, h->bytes, h->phys);
    }
    st->nheld = keep;
    if (!st->shared)
        return;
    (void)shared_lock(st->shared); /* a dead holder changed nothing here */
    COW_INJECT("alloc:release_held"); /* tests: a death holding the mutex */
    shared_frees_take(st->shared, min == UINT64_MAX ? UINT64_MAX : min + 1, take_none, NULL);
    shared_unlock(st->shared);
}

/* What cooled (st->cooling, st->pcooling) moves to st->held and to the
 * shared state's pending frees, tagged with this generation; then what
 * readers moved past is released.  No memory to hold a run: it is released
 * at once, as alloc_unpin_all does without memory for cooling (a reader
 * that still reads it may then read reused blocks: its checksums say so). */
void alloc_hold_cooled(cow_store *st)
{
    uint64_t gen = st->generation;
    if (st->shared)
        (void)shared_lock(st->shared);
    for (size_t k = 0; k < st->ncooling + st->npcooling; k++) {
        int phys = k >= st->ncooling;
        const struct byte_run *r = phys ? &st->pcooling[k - st->ncooling] : &st->cooling[k];
        if (alloc_held_add(st, r->bytenr, r->bytes, gen, phys))
            alloc_release_run(st, r->bytenr, r->bytes, phys);
    }
    if (st->shared)
        shared_unlock(st->shared);
    release_held(st); /* (the shared pending frees have them since their commit) */
}

/* alloc_hold_shared_frees()'s callback: the free blocks of one pending
 * free, held. */
struct hold_arg {
    cow_store *st;
    int rc;
};

static void hold_one(void *arg, uint64_t gen, uint64_t start, uint64_t len, int phys)
{
    struct hold_arg *a = arg;
    cow_store *st = a->st;
    /* A pending free holds the free blocks of its range in the map of its
     * kind only (an entry the table coalesced may cover more: holding
     * more back is safe).  Past the groups there is nothing to read; nor,
     * for a physical run, past the file's end: no cut goes below a
     * physical run the owner holds, so nothing there is a block a reader
     * reads, and a bit set there would make the next superblock's
     * device_bytes claim bytes the file does not have (a logical address
     * of a relocated group may lie far past the end: invariant 12).
     * Consecutive blocks make one held run. */
    uint64_t limit = st->total_bytes;
    if (phys && st->file_bytes && st->file_bytes < limit)
        limit = st->file_bytes;
    uint64_t end = start + len < start || start + len > limit ? limit : start + len;
    uint64_t run = 0, nrun = 0; /* the open run */
    if (a->rc)
        return;
    for (uint64_t b = start - start % COW_BLOCK_SIZE; b < end; b += COW_BLOCK_SIZE) {
        struct bgroup *g = bg_of(st, b);
        if (!g)
            continue;
        uint64_t i = (b - g->start) / COW_BLOCK_SIZE;
        uint8_t *map = phys ? g->pbitmap : g->bitmap;
        int take_it = !bit_get(map, i); /* else in use, or held already */
        /* a run ends at a block not taken, and at a group's end */
        if (nrun && (!take_it || run + nrun * COW_BLOCK_SIZE != b || b == g->start)) {
            if (alloc_held_add(st, run, nrun * COW_BLOCK_SIZE, gen, phys)) {
                a->rc = cow_set_error(COW_ENOMEM, "out of memory");
                return;
            }
            nrun = 0;
        }
        if (!take_it)
            continue;
        if (!nrun)
            run = b;
        nrun++;
        if (!bit_get(phys ? g->bitmap : g->pbitmap, i))
            bgsum_nfree_add(st, g, -1);
        bit_set(map, i);
        if (phys)
            g->pused++;
    }
    if (nrun && alloc_held_add(st, run, nrun * COW_BLOCK_SIZE, gen, phys))
        a->rc = cow_set_error(COW_ENOMEM, "out of memory");
}

void alloc_record_frees(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (!st->shared)
        return;
    (void)shared_lock(st->shared); /* a dead holder changed nothing here */
    for (size_t k = st->npinned_recorded; k < st->npinned; k++) {
        shared_frees_add(st->shared, st->transid, st->pinned[k].bytenr, st->pinned[k].bytes,
                         0);
        COW_INJECT("alloc:record_frees"); /* tests: a death halfway */
    }
    for (size_t k = st->nppinned_recorded; k < st->nppinned; k++)
        shared_frees_add(st->shared, st->transid, st->ppinned[k].bytenr,
                         st->ppinned[k].bytes, 1);
    shared_unlock(st->shared);
    st->npinned_recorded = st->npinned;
    st->nppinned_recorded = st->nppinned;
}

int alloc_hold_shared_frees(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (!st->shared)
        return COW_OK;
    struct hold_arg a = {st, COW_OK};
    (void)shared_lock(st->shared);
    COW_INJECT("alloc:hold_shared_frees"); /* tests: a death holding the mutex */
    shared_frees_foreach(st->shared, hold_one, &a);
    shared_unlock(st->shared);
    return a.rc;
}


int alloc_hold_free(cow_store *st, uint64_t gen)
{
    lk_assert_held(&st->lock);
    struct hold_arg a = {st, COW_OK};
    /* every free block of both maps, as one pending free of the whole
     * container would be held (hold_one keeps the logical map to the
     * groups, the physical one to the file) */
    hold_one(&a, gen, 0, st->total_bytes, 0);
    hold_one(&a, gen, 0, st->total_bytes, 1);
    return a.rc;
}
