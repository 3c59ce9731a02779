/*
 * bgsum.h - sums over the block groups: free blocks by group type, and
 * the used bytes of metadata groups, kept as the groups change.
 *
 * Reserving space asks how much is free by type at every write
 * (alloc.c alloc_reserve, space.c): summing over every group each time
 * cost 14% of a 1 GB database's single-row transactions (a thousand
 * groups of 1 MiB; btrfs keeps such totals per space_info,
 * space-info.c).  The sums follow each change of a group's nfree and used
 * (bgsum_nfree_add, bgsum_used_add: the allocator changes them through
 * these only); what changes which groups count makes them stale: a
 * group's type or the groups themselves (bgsum_stale), the file's end
 * (noticed at the next use).  Then they are summed again at their next
 * use.  Test builds (COW_DEBUG) check them against a full sum at every
 * use and abort on a difference.
 *
 * Locking: store->lock held by every caller.
 */
#ifndef COW_BGSUM_H
#define COW_BGSUM_H

#include "store_int.h"

/* Group G lies wholly inside the file as it is (its space reserved):
 * only such groups' free blocks count as free. */
static inline int bgsum_backed(const cow_store *st, const struct bgroup *g)
{
    return st->file_bytes == 0 || g->start + g->len <= st->file_bytes;
}

/* G->nfree += D (blocks, may be negative), and the sums with it. */
static inline void bgsum_nfree_add(cow_store *st, struct bgroup *g, int64_t d)
{
    g->nfree += (uint64_t)d;
    if (!st->sums_stale && bgsum_backed(st, g))
        st->sum_free[g->flags & 3] += (uint64_t)d;
}

/* G->used += D (bytes, may be negative), and the sums with it. */
static inline void bgsum_used_add(cow_store *st, struct bgroup *g, int64_t d)
{
    g->used += (uint64_t)d;
    if (!st->sums_stale && (g->flags & COW_BG_METADATA))
        st->sum_meta_used += (uint64_t)d;
}

/* The sums no longer hold (a group's type changed, groups were added or
 * dropped): summed again at the next use. */
static inline void bgsum_stale(cow_store *st)
{
    st->sums_stale = 1;
}

/* Free blocks of the groups of type exactly FLAGS (COW_BG_DATA,
 * COW_BG_METADATA or COW_BG_MIXED) that the file covers. */
uint64_t bgsum_free(cow_store *st, uint64_t flags);

/* Used bytes of the groups whose type includes COW_BG_METADATA. */
uint64_t bgsum_meta_used(cow_store *st);

#endif /* COW_BGSUM_H */
