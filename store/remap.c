/*
 * remap.c - the remap table: where relocated blocks are stored, and reads
 * of blocks by their logical address.
 *
 * The table is a sorted array of runs (struct remap_run) mirroring the
 * REMAP_ITEMs of the remap tree (remaptree.c keeps the two in step); each
 * group counts the runs that start in it, so a read in a group nothing
 * was relocated out of costs one test.  This module sits beside the block
 * cache, below the btree: it reads and changes only memory and the device.
 *
 * Locking: store->lock held by every caller.
 */
#include <stdlib.h>
#include <string.h>

#include "lockdep.h"
#include "remap.h"
#include "store_int.h"
#include "vec.h"

#define BLK COW_BLOCK_SIZE

static struct bgroup *group_of(cow_store *st, uint64_t bytenr)
{
    uint64_t i = bytenr / st->bg_size;
    return i < st->nbgs ? &st->bgs[i] : NULL;
}

size_t remap_find(cow_store *st, uint64_t logical)
{
    size_t lo = 0, hi = st->nremap;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct remap_run *r = &st->remap[mid];
        if (r->logical + r->len <= logical)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void remap_translate(cow_store *st, uint64_t logical, uint64_t len, uint64_t *phys,
                     uint64_t *run)
{
    *phys = logical;
    *run = len;
    if (st->nremap == 0)
        return;
    struct bgroup *g = group_of(st, logical);
    if (g && g->nremap == 0) {
        /* runs never cross a group: only the rest of this group counts */
        return;
    }
    size_t i = remap_find(st, logical);
    if (i >= st->nremap)
        return;
    const struct remap_run *r = &st->remap[i];
    if (r->logical <= logical) {
        uint64_t off = logical - r->logical;
        *phys = r->phys ? r->phys + off : 0; /* 0: dropped, not stored */
        if (r->len - off < len)
            *run = r->len - off;
    } else if (r->logical - logical < len) {
        *run = r->logical - logical;
    }
}

int remap_overlaps(cow_store *st, uint64_t logical, uint64_t len)
{
    size_t i = remap_find(st, logical);
    return i < st->nremap && st->remap[i].logical < logical + len;
}

int remap_read(cow_store *st, void *buf, size_t len, uint64_t logical)
{
    uint8_t *p = buf;
    while (len > 0) {
        uint64_t phys, run;
        remap_translate(st, logical, len, &phys, &run);
        /* a dropped run (physical 0) reads as zeros: nothing maps it, and
         * a caller that checked it against its checksum would fail */
        int rc = phys ? st->dev->read(st->dev, p, (size_t)run, phys) : COW_OK;
        if (!phys)
            memset(p, 0, (size_t)run);
        if (rc)
            return rc;
        p += run;
        logical += run;
        len -= (size_t)run;
    }
    return COW_OK;
}

int remap_insert(cow_store *st, size_t at, const struct remap_run *r)
{
    if (vec_reserve(st->remap, st->cremap, st->nremap + 1))
        return cow_set_error(COW_ENOMEM, "out of memory");
    memmove(&st->remap[at + 1], &st->remap[at], (st->nremap - at) * sizeof *st->remap);
    st->remap[at] = *r;
    st->nremap++;
    struct bgroup *g = group_of(st, r->logical);
    if (g)
        g->nremap++;
    return COW_OK;
}

void remap_remove(cow_store *st, size_t at)
{
    struct bgroup *g = group_of(st, st->remap[at].logical);
    if (g && g->nremap)
        g->nremap--;
    memmove(&st->remap[at], &st->remap[at + 1], (st->nremap - at - 1) * sizeof *st->remap);
    st->nremap--;
}

void remap_destroy(cow_store *st)
{
    free(st->remap);
    st->remap = NULL;
    st->nremap = st->cremap = 0;
}
