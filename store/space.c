/*
 * space.c - space reservation beside the allocator (see space.h).
 *
 * Locking: store->lock held by every caller (asserted).
 */
#include <assert.h>

#include "lockdep.h"
#include "space.h"

uint64_t resv_meta_blocks(cow_store *st, uint64_t blocks)
{
    lk_assert_held(&st->lock);
    /* Completing an ordered extent changes the fs tree (its EXTENT_DATA
     * and INODE_ITEM) and the csum tree: each copies at most a path and
     * splits once, a block per level plus one.  The commit after it adds
     * extent-tree and root-tree paths.  Over a transaction no tree block
     * is copied twice, so all of it together never needs more than a
     * copy of every metadata block in use, plus splits for the new items
     * (at most three per block, a leaf holding 20 or more).  Whichever
     * bound is smaller. */
    blocks += st->ndirty + st->oe_blocks;
    uint64_t per = (uint64_t)st->fs_tree.level + 2 + st->csum_tree.level + 2;
    uint64_t a = per * blocks + 64;
    uint64_t b = alloc_meta_used_blocks(st) + blocks / 8 + 64;
    return a < b ? a : b;
}

int resv_room(cow_store *st, uint64_t blocks, uint64_t changes)
{
    lk_assert_held(&st->lock);
    /* Free data space for these blocks beyond what other reservations
     * still need (in-flight ordered extents hold theirs allocated), and
     * free metadata space for what completing all of them (and the pages
     * already buffered) can take. */
    uint64_t held = st->reserved - st->oe_alloc;
    return alloc_reserve(st, held + blocks, resv_meta_blocks(st, changes));
}

int resv_reserve(cow_store *st, struct cow_resv *r, uint64_t blocks, uint64_t pages)
{
    lk_assert_held(&st->lock);
    if (pages == 0)
        return COW_OK;
    int rc = resv_room(st, blocks, pages);
    if (rc)
        return rc;
    st->reserved += blocks;
    r->blocks += blocks;
    return COW_OK;
}

void resv_release(cow_store *st, struct cow_resv *r)
{
    lk_assert_held(&st->lock);
    assert(st->reserved >= r->blocks);
    st->reserved -= r->blocks;
    r->blocks = 0;
}

void resv_take(struct cow_resv *r, uint64_t blocks)
{
    assert(r->blocks >= blocks);
    r->blocks -= blocks;
}

void resv_merge(struct cow_resv *to, struct cow_resv *from)
{
    to->blocks += from->blocks;
    from->blocks = 0;
}

void resv_mark_allocated(cow_store *st, const struct cow_resv *r)
{
    lk_assert_held(&st->lock);
    st->oe_alloc += r->blocks;
}

void resv_unmark_allocated(cow_store *st, const struct cow_resv *r)
{
    lk_assert_held(&st->lock);
    assert(st->oe_alloc >= r->blocks);
    st->oe_alloc -= r->blocks;
}
