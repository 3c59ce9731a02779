/*
 * bgsum.c - sums over the block groups (bgsum.h).
 */
#include "bgsum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockdep.h"

/* The sums from scratch into FREE[4] and *META_USED. */
static void sums_scan(const cow_store *st, uint64_t free[4], uint64_t *meta_used)
{
    free[0] = free[1] = free[2] = free[3] = 0;
    *meta_used = 0;
    for (size_t i = 0; i < st->nbgs; i++) {
        const struct bgroup *g = &st->bgs[i];
        if (bgsum_backed(st, g))
            free[g->flags & 3] += g->nfree;
        if (g->flags & COW_BG_METADATA)
            *meta_used += g->used;
    }
}

/* Makes the sums valid (test builds: checks them). */
static void sums_valid(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (st->sums_stale || st->sums_file_bytes != st->file_bytes) {
        /* (the file's end moves in several modules: the sums follow it
         * here rather than at each) */
        sums_scan(st, st->sum_free, &st->sum_meta_used);
        st->sums_stale = 0;
        st->sums_file_bytes = st->file_bytes;
        return;
    }
#ifdef COW_DEBUG
    uint64_t f[4], mu;
    sums_scan(st, f, &mu);
    if (memcmp(f, st->sum_free, sizeof f) != 0 || mu != st->sum_meta_used) {
        fprintf(stderr,
                "bgsum: the group sums are out of date: free %llu/%llu/%llu (kept "
                "%llu/%llu/%llu), metadata used %llu (kept %llu)\n",
                (unsigned long long)f[1], (unsigned long long)f[2], (unsigned long long)f[3],
                (unsigned long long)st->sum_free[1], (unsigned long long)st->sum_free[2],
                (unsigned long long)st->sum_free[3], (unsigned long long)mu,
                (unsigned long long)st->sum_meta_used);
        abort();
    }
#endif
}

uint64_t bgsum_free(cow_store *st, uint64_t flags)
{
    sums_valid(st);
    return st->sum_free[flags & 3];
}

uint64_t bgsum_meta_used(cow_store *st)
{
    sums_valid(st);
    return st->sum_meta_used;
}
