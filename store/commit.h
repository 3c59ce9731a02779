/*
 * commit.h - the committed state (commit.c): load at open, format, commit,
 * the seal at a clean close and the upgrade of a version-1 container.
 *
 * Who may call it: the store (store.c: open, close, the committer thread),
 * files (file.c: fallbacks of a sync the log cannot take, unlink, rename)
 * and subvolumes (subvol.c: the commit that ends a snapshot, branch,
 * restore or delete).  It calls down into everything the transaction
 * touches (see commit.c).
 *
 * Locking: store->lock held by every caller (asserted in debug builds).
 */
#ifndef COW_COMMIT_H
#define COW_COMMIT_H

#include "store_int.h"

/* Loads the committed state from the newest valid superblock copy (open):
 * the trees' roots, the block groups and free space, the subvolume roots,
 * the log areas; then the log is ready for replay (replay.c).  Errors:
 * COW_ECORRUPT (no valid copy, a torn or damaged commit that a later write
 * proves was flushed, two copies of different containers: the message
 * names the copies and generations), I/O errors, COW_ENOMEM. */
/* Loads the committed state from the superblock (open). */
int commit_load(cow_store *st);

/* Formats a new container in ST (generation 1). */
int commit_format(cow_store *st);

/* Commits the running transaction.  FLUSH 0 makes it survive a crash of
 * the application but not a power loss (no flush; a power loss goes back
 * to the last flushed commit); FLUSH 1 makes it durable.  Errors: no room
 * to grow for the commit (COW_ENOSPC, COW_EIO_TRUNCATE) or a failed write
 * of its tree blocks (COW_EIO_WRITE, COW_ENOSPC, COW_ENOMEM) fail this
 * commit only: the transaction stays whole and the next commit writes it.
 * Any other failure (a tree update, a flush, the superblock write) stops
 * the store (txn_abort; COW_EFAILED from then on).  A stopped store
 * returns COW_EFAILED. */
int commit_transaction(cow_store *st, int flush);

/* At a clean close after a one-flush commit: rewrites the superblock (same
 * trees, next generation) without a commit list, so the last commit no
 * longer depends on validation.  COW_EIO_WRITE, COW_EIO_FLUSH. */
int commit_seal(cow_store *st);

/* At a writable open of a container with a copy of format version 1
 * (docs/FORMAT.md, "Versions"): flushed commits of the same trees until
 * both superblock copies are version 2 (one, when the open's own commit
 * already rewrote one copy), before anything else is written.
 * Without it the copy not yet rewritten would stay version 1, and the
 * previous release, which cannot read version 2, would silently open that
 * older commit.  Does nothing when both copies are version 2.  Errors as
 * commit_transaction.  Lock held. */
int commit_upgrade(cow_store *st);

#endif
