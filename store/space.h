/*
 * space.h - space reservation beside the allocator: the data blocks that
 * buffered writes and ordered extents will need, held from the xWrite that
 * dirties a page until its ordered extent completes, so that a full disk
 * fails the xWrite (COW_ENOSPC), never the writeback.
 *
 * The store counts what every reservation holds (store->reserved) and how
 * much of it is already allocated (store->oe_alloc: the new extents of
 * ordered extents in flight); free space beyond what the others hold is
 * what a new reservation may take.  A reservation itself (struct
 * cow_resv) travels with the call that made it and is never shared state
 * (docs/DESIGN.md, invariant 4): resv_reserve() fills it, each page the
 * call dirties takes one block of it (resv_take), an ordered extent takes
 * its pages' blocks over (resv_merge), and resv_release() returns what is
 * left, exactly once.  btrfs: the data space_info's bytes_may_use
 * (fs/btrfs/delalloc-space.c, btrfs_check_data_free_space and
 * btrfs_free_reserved_data_space).
 *
 * Who may call it: the page cache (pcache.c), ordered extents (ordered.c)
 * and files (file.c, preallocation).  It calls only the allocator.
 *
 * Units: blocks of COW_BLOCK_SIZE bytes.  Locking: store->lock held by
 * every caller (asserted in debug builds).
 */
#ifndef COW_SPACE_H
#define COW_SPACE_H

#include <stdint.h>

#include "store_int.h"

/* A reservation of data blocks, held by the call that made it (invariant
 * 4): resv_reserve() adds to it, each page a write dirties takes one, and
 * resv_release() returns the rest.  Never shared between calls. */
struct cow_resv {
    uint64_t blocks;
};

/* Free metadata blocks that must exist while the pages buffered and in
 * flight, plus BLOCKS more changes (a page or an extent each), are written
 * back and committed: a bound on what that can allocate (space.c explains
 * it). */
uint64_t resv_meta_blocks(cow_store *st, uint64_t blocks);

/* Makes sure BLOCKS data blocks are free beyond what every reservation
 * still needs, and the metadata room for CHANGES more changes
 * (resv_meta_blocks), growing the container if needed; reserves nothing
 * (a preallocation allocates at once).  Errors: COW_ENOSPC,
 * COW_EIO_TRUNCATE, COW_ENOMEM. */
int resv_room(cow_store *st, uint64_t blocks, uint64_t changes);

/* Adds BLOCKS data blocks to R once resv_room(st, BLOCKS, PAGES) holds;
 * nothing when PAGES is 0.  Errors as resv_room (nothing reserved). */
int resv_reserve(cow_store *st, struct cow_resv *r, uint64_t blocks, uint64_t pages);

/* Returns R's blocks to free space; R is empty after. */
void resv_release(cow_store *st, struct cow_resv *r);

/* BLOCKS of R go to a holder that keeps them reserved without a struct
 * cow_resv of its own (a dirty page: one block, given back by
 * resv_release of a reservation made for it when the page is dropped). */
void resv_take(struct cow_resv *r, uint64_t blocks);

/* Moves FROM's blocks into TO (an ordered extent taking over the blocks
 * its pages held, and any it reserved for them); FROM is empty after. */
void resv_merge(struct cow_resv *to, struct cow_resv *from);

/* R's blocks are allocated now (the new extent of an ordered extent): they
 * no longer need free space.  resv_unmark_allocated() undoes it, before R
 * is released or handed back (the ordered extent completed). */
void resv_mark_allocated(cow_store *st, const struct cow_resv *r);
void resv_unmark_allocated(cow_store *st, const struct cow_resv *r);

#endif /* COW_SPACE_H */
