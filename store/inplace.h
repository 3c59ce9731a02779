/*
 * inplace.h - writes of a nodatacow file's bytes in place by a process that
 * does not own the container (docs/DESIGN.md, "Several processes":
 * "Writes in place without the ownership"; invariant 14).
 *
 * A nodatacow WAL that grew in chunks (cow_file_grow) is overwritten in
 * place: such a write changes no tree, no free space map and no checksum.
 * So another process's writer need not take the ownership for it (a
 * handoff per transaction: 0.34x unix's rate with four processes): it
 * writes the bytes where its view of the trees says they are, as a unix
 * writer writes its WAL.  What makes that safe:
 *
 *   - its view is the newest: nothing was published since it loaded, no
 *     barrier ended since, and the owner has nothing unpublished
 *     (shared_inplace_begin), so the file's extents, their sharing and
 *     their place are what the owner has;
 *   - the owner does nothing behind its back that moves, shares or frees
 *     those blocks: a relocation, a snapshot or branch, a restore raise
 *     the shared barrier first and wait for writes in place in flight
 *     (inplace_barrier_raise), btrfs's drew lock between nocow writers
 *     and snapshots (fs/btrfs/locking.c);
 *   - SQLite's own locks order the rest: a WAL is written only under its
 *     write lock, and its truncation, growth and deletion too;
 *   - the extent is in a commit that an owner made durable
 *     (shared_durable): a flush by this process then makes the bytes
 *     durable, and no commit list or log record names them (invariant 13);
 *   - whoever caches pages of a nodatacow file drops them when another
 *     process wrote in place since (inplace_forget_stale).
 */
#ifndef COW_INPLACE_H
#define COW_INPLACE_H

#include "store_int.h"

/*
 * Writes LEN bytes of BUF at byte OFF of file F in place, if this process
 * has the container open with others, does not own it, and [OFF, OFF +
 * LEN) lies inside F's size in extents F may overwrite in place
 * (em_inplace_target; at most 16 runs): then *DONE = 1 and the result is
 * the write's.  Otherwise nothing was written, and *DONE = -1 when this
 * process's view is older than the last publication or barrier (after a
 * refresh, xproc_refresh, the write may be tried again), else 0: the
 * caller takes the ownership and writes as usual.  Takes store->lock (let go
 * while writing); call between xproc_view_begin and xproc_view_end (the
 * view read is pinned).  Errors (with *DONE = 1): COW_EIO_WRITE,
 * COW_ENOSPC (the device's), the trees' (COW_EIO_READ, COW_CORRUPT).
 */
int inplace_write(cow_file *f, const void *buf, size_t len, uint64_t off, int *done);

/*
 * 1 if a write may go in place now (inplace_write): other processes have
 * the container open, as far as one atomic load of their count tells.  0
 * for a store without shared state or a process alone: the caller writes
 * as usual, without inplace_write's locks (a process that opens meanwhile
 * reads what the next publication gives it).  No lock needed.
 */
int inplace_possible(cow_store *st);

/*
 * Drops the clean cached pages of every nodatacow file of ST if another
 * process wrote in place since they were cached (shared_inplace_seq).
 * One atomic load when none did.  Store lock held.
 */
void inplace_forget_stale(cow_store *st);
/* 1 if no other process wrote a nodatacow file in place since
 * inplace_forget_stale last looked (or the store has no shared state):
 * the cached pages of nodatacow files may be read without store->lock
 * (pc_read_cached).  Two atomic loads; no lock needed. */
int inplace_fresh(cow_store *st);

/*
 * The owner, around an operation that may move, share or free a nodatacow
 * file's blocks (relocate_group, a snapshot or branch, a restore): raises
 * the shared barrier and waits for the writes in place in flight
 * (shared_barrier_raise); lowering it ends the barrier (the epoch moves:
 * every non-owner reloads before its next write in place).  No-ops
 * without shared state.  Do not hold store->lock to raise.
 */
void inplace_barrier_raise(cow_store *st);
void inplace_barrier_lower(cow_store *st);

#endif
