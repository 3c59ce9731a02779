/*
 * alloc_int.h - what alloc.c and alloc_hold.c (the free space map and its
 * held runs) share, and nothing else includes: the bitmap helpers and the
 * two steps each calls of the other.  Store lock held by every caller.
 */
#ifndef COW_ALLOC_INT_H
#define COW_ALLOC_INT_H

#include <stdint.h>

#include "store_int.h"

static inline int bit_get(const uint8_t *bm, uint64_t i)
{
    return (bm[i >> 3] >> (i & 7)) & 1;
}
static inline void bit_set(uint8_t *bm, uint64_t i)
{
    bm[i >> 3] |= (uint8_t)(1u << (i & 7));
}
static inline void bit_clear(uint8_t *bm, uint64_t i)
{
    bm[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

/* Block I of G is taken logically or physically (not allocatable). */
static inline int busy(const struct bgroup *g, uint64_t i)
{
    return bit_get(g->bitmap, i) | bit_get(g->pbitmap, i);
}

static inline struct bgroup *bg_of(cow_store *st, uint64_t bytenr)
{
    if (st->bg_size == 0)
        return NULL;
    uint64_t i = bytenr / st->bg_size;
    return i < st->nbgs ? &st->bgs[i] : NULL;
}

/* Makes [BYTENR, +BYTES) free in the physical map if PHYS, else the
 * logical one, or keeps it set while reads of this process that began
 * before run (alloc.c). */
void alloc_release_run(cow_store *st, uint64_t bytenr, uint64_t bytes, int phys);

/* Appends a held run [BYTENR, +BYTES) freed by generation GEN (PHYS: of the
 * physical map).  0, or -1 without memory (the caller releases the run). */
int alloc_held_add(cow_store *st, uint64_t bytenr, uint64_t bytes, uint64_t gen, int phys);

/* Takes [BYTENR, +LEN) out of the held runs of both maps, their bits
 * cleared: blocks a replayed log record names, which the writer that
 * logged them allocated once no reader could read what was there before
 * (it held its own frees so), so holding them for readers is pointless,
 * and a takeover that holds every free block (alloc_hold_free) made replay
 * refuse them as in use: a RADOS container whose killed writer had logged
 * syncs did not open again (test/check_rados_vfs.c, vfs_journal).  Lock
 * held.  COW_ENOMEM (a run split in two). */
int alloc_held_claim(cow_store *st, uint64_t bytenr, uint64_t len);

/* What cooled moves to the held runs (and the shared pending frees), tagged
 * with this generation; then what readers moved past is released
 * (alloc_hold.c). */
void alloc_hold_cooled(cow_store *st);

#endif
