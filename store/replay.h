/*
 * replay.h - the log's replay at open (replay.c).  Called by open
 * (store.c) only; it sits above the files (file.c), whose inode cache it
 * uses, and changes the extent map (extent_map.h) directly.
 */
#ifndef COW_REPLAY_H
#define COW_REPLAY_H

#include <stdint.h>

#include "store.h"

/*
 * Applies the valid records of the log area of the last commit
 * (st->log_area[st->last_slot]) to the running transaction, in order, and
 * counts them in *NAPPLIED; the log then continues after them.  The first
 * record that is not whole or not of this log, or whose data does not match
 * its checksums, ends the log (a sync that never returned).  Then checks
 * that no whole record proves a flushed commit or record the container
 * lacks (the rest of this area and all of the other).  Reads at most the
 * two areas (2 * st->log_blocks blocks).  store->lock held (asserted).
 * Errors: COW_ECORRUPT (a whole record that does not parse, contradicts
 * the trees, or proves a loss: the message names the record, item and
 * field), I/O errors, COW_ENOMEM, COW_ENOSPC, COW_EROFS (a read-only store
 * needs more space to replay).  Idea: btrfs's btrfs_recover_log_trees
 * (fs/btrfs/tree-log.c).
 */
int replay_log(cow_store *st, uint64_t *napplied);

#endif
