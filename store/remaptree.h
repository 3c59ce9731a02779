/*
 * remaptree.h - the remap tree kept in step with the remap table
 * (remaptree.c; format.h, REMAP_ITEM).
 *
 * Who may call it: commit.c (load, the commit's pass over freed space)
 * and reloc.c (adding and moving runs).  It calls down into the btree,
 * the allocator's physical bitmaps and the table (remap.c).  Units:
 * bytes.  Locking: store->lock held by every caller (asserted).
 */
#ifndef COW_REMAPTREE_H
#define COW_REMAPTREE_H

#include <stdint.h>

#include "store_int.h"

/*
 * Reads the remap tree (st->remap_tree, read at its blocks' own
 * addresses) into the table, checking each item against format.h (whole
 * blocks, each run inside one group, logical runs not overlapping).
 * Called at open after the groups exist and before any other tree is
 * read.  Errors: COW_ECORRUPT, COW_ENOMEM, I/O errors.
 */
int remaptree_load(cow_store *st);

/*
 * After open has marked every used block (at its own address, both
 * bitmaps): moves each remap run's physical use from its logical blocks
 * to its target, checking that every logical block is used and that no
 * target is stored twice or on a block stored at its own address.
 * Errors: COW_ECORRUPT, COW_ENOMEM.
 */
int remaptree_apply_physical(cow_store *st);

/*
 * The commit's pass over space freed by the running transaction (pinned
 * runs not seen yet): each freed block's physical place is pinned
 * (alloc_phys_pin: cleared once the commit is flushed), and the remap
 * runs of freed blocks are cut from the table and the remap tree, so that
 * a remap item never names a free block.  Loops until no new pinned run
 * appears (changing the remap tree frees its old blocks, never
 * remapped).  Errors: COW_ENOMEM, btree errors (the commit aborts).
 */
int remaptree_commit_frees(cow_store *st);

/*
 * Records that [LOGICAL, +LEN), stored at its own address until now, is
 * stored at PHYS: a new remap item, and the old place pinned.  PHYS is
 * already set in the physical bitmap (alloc_phys_target), or 0: the
 * blocks are dropped (no file extent item maps them).  Errors:
 * COW_ENOMEM, btree errors.
 */
int remaptree_add(cow_store *st, uint64_t logical, uint64_t len, uint64_t phys);

/*
 * Moves the part [LOGICAL, +LEN) of an existing remap run to PHYS (set
 * already), pinning its old target: the run is split as needed.
 * COW_ENOENT if that range is not wholly inside one run.  Errors:
 * COW_ENOMEM, btree errors.
 */
int remaptree_move(cow_store *st, uint64_t logical, uint64_t len, uint64_t phys);

/*
 * Rewrites (copy on write) every block of the remap tree stored in
 * [START, START + LEN), so that relocating that range never has to remap
 * the remap tree.  Errors: btree errors.
 */
int remaptree_cow_in(cow_store *st, uint64_t start, uint64_t len);

#endif
