/*
 * xproc.h - several processes on one container (docs/DESIGN.md, "Several
 * processes"): who may change the container (the owner), publishing what
 * the owner changed, and refreshing what a process has in memory when
 * another one published.
 *
 * The store keeps its running transaction in memory (dirty tree blocks,
 * delayed refs, the allocator), so one process at a time changes the
 * container: every store call that changes something runs between
 * xproc_enter() and xproc_leave(), which make this process the owner
 * first.  Asked by another process (shared_owner_wanted; its watcher
 * thread wakes the committer), the owner publishes (writes back, commits
 * without flush) and lets go at its next quiet moment (no call between
 * enter and leave), from its committer thread (xproc_yield).  Another
 * process's state in memory is a view of the last published commit,
 * refreshed when it changed; it keeps its tree block cache (cache.c reads
 * a stale block again) and, if it owned before, its free space map, which
 * the shared allocation journal brings up to date when it owns again
 * (alloc_apply_journal).  The shared state itself (a robust mutex, the
 * owner, the publication sequence number, the reader table, the pending
 * frees, the journal) is store/shared.c's.
 *
 * Ideas: LMDB's single writer with a robust mutex and a reader table
 * (mdb.c: mdb_txn_renew0, mdb_find_oldest), SQLite's os_unix.c (a
 * process that finds its copy stale rereads, as pager.c does with its
 * change counter).
 *
 * Locking: none of these is called with store->lock or an invalidate lock
 * held, except where said.  st->shared is set at open and cleared at
 * close; the fields of struct cow_store they use say what protects them.
 */
#ifndef COW_XPROC_H
#define COW_XPROC_H

#include "store_int.h"

/* How long a change waits for the owner in another process to let go, and
 * a refresh for the owner to publish, ms: long enough for any publication,
 * short enough that a wedged owner gives COW_EBUSY (SQLITE_BUSY). */
#define XPROC_WAIT_MS 10000u

/*
 * At open, before the first superblock read: maps the container's shared
 * state (shared_open on FD, the container's descriptor; FD must stay open
 * until xproc_detach) and, for a writable store, becomes the owner (the
 * current owner publishes and lets go first; a dead one is recovered from
 * by the load that follows, as after a crash).  *ALONE: no other process
 * has the container open, so open's cleanups of a crash's leftovers
 * (orphan files, unfinished branches) may run.  A read-only store waits
 * until the owner published what it has.  Errors: shared_open's
 * (COW_ENOMEM, COW_EBUSY, COW_EIO_*), COW_EBUSY (the owner did not let
 * go or publish within XPROC_WAIT_MS).
 */
int xproc_attach(cow_store *st, int fd, int *alone);

/* After open's load and first commit, store->lock held: records what
 * this process loaded as seen, and publishes it if it is the owner (a new
 * container's first generation, or a dead owner's log replayed).  A
 * writable store starts its watcher thread (shared_watch: wakes the
 * committer when another process asks for the ownership; without a
 * thread the committer's poll serves). */
void xproc_opened(cow_store *st);

/* At close, after the last commit: lets go of the ownership and unmaps
 * the shared state (the last process removes it).  A no-op without one. */
void xproc_detach(cow_store *st);

/*
 * Before a store call that changes anything: makes this process the owner
 * and counts the call (st->own_users) until xproc_leave().  Becoming the
 * owner after another process changed the container reloads everything
 * this process has in memory from the last published commit (xproc.c
 * reload_ex: superblock, trees, the free space map from the allocation
 * journal or rebuilt, open files rebound, cached pages dropped); after an
 * owner that died, the load replays the log as open does.
 * Returns at once when already owner, with no handoff under way (then
 * without store->lock: one atomic count and four atomic loads; the rest
 * takes it).  Errors: COW_EBUSY (the owner did
 * not let go within XPROC_WAIT_MS), the load's errors (the store then
 * stops: COW_EFAILED from then on).
 */
int xproc_enter(cow_store *st);

/* The end of a call xproc_enter() let in. */
void xproc_leave(cow_store *st);

/*
 * A view of the latest published state: when another process published
 * since this one's last load, reloads (as xproc_enter, without becoming
 * the owner).  Called by the VFS when a connection starts reading (SQLite
 * takes a SHARED lock, or a WAL read lock).  Records the generation read
 * in the reader table, so that no owner reuses space it can reach.  The
 * owner itself needs nothing.  Errors: COW_EBUSY (the owner did not
 * publish what it had within XPROC_WAIT_MS), the load's errors.
 */
int xproc_refresh(cow_store *st);

/*
 * The owner makes what it changed visible to the other processes: writes
 * back every file, commits without flush if anything changed, and
 * publishes the generation.  Called at the end of each SQLite write
 * transaction and when SQLite publishes a WAL-index header
 * (cow_store_publish), only while another process has the container
 * open.  A no-op for a non-owner or a store alone.  Errors: the
 * writeback's and commit's.
 */
int xproc_publish(cow_store *st);

/* Before something that needs the free space map (cow_store_df): a
 * process whose last reload was a view's (no map: xproc_refresh) loads
 * the same publication again in full.  Errors: the load's. */
int xproc_full_view(cow_store *st);

/* After a log record or a commit-less persist (cow_file_sync,
 * cow_store_persist alone): the owner has changes that ended a transaction
 * and that only its log holds, so a process that opens or refreshes waits
 * for a publication (shared_wait_published).  Changes in the middle of a
 * transaction do not count: a reader does not read them.  Nothing when the
 * owner has nothing unpublished (no running transaction's change, nothing
 * dirty or in flight: a sync of a WAL written in place).  Takes
 * store->lock; a no-op for a non-owner or without a shared state. */
void xproc_logged(cow_store *st);

/* cow_store_announce: marks the shared state unpublished
 * (shared_set_unpublished) if this process owns the container, has
 * changes, and others have it open.  Takes store->lock (not alone). */
void xproc_announce(cow_store *st);

/* cow_store_unpin: this process reads nothing until its next refresh; its
 * pin in the reader table goes (the owner has none, and takes none when
 * it lets go: xproc_yield_locked), unless a read through xproc_view_begin
 * is in progress (then nothing changes).
 * The next xproc_view_begin refreshes first.  Takes store->lock. */
void xproc_unpin(cow_store *st);

/*
 * Around a read of the container that the VFS may make while none of its
 * connections holds a lock (SQLite reads a database header, opens and
 * looks up files without one): store/entry.c wraps cow_file_read,
 * cow_file_size, cow_file_fetch, cow_exists and cow_subvol_exists, and
 * the lookups of cow_file_open, in them.  After xproc_unpin, begin
 * refreshes first (xproc_refresh: pinned again, on the latest
 * publication); between begin and end no unpin takes effect, so what the
 * read reaches is never reused meanwhile (invariant 9).  An idea of
 * LMDB's reader table (mdb.c, mdb_txn_renew0: a read-only transaction
 * takes its slot's txnid before it reads, and mdb_txn_reset gives it
 * back).  begin takes store->lock; errors (then no end): xproc_refresh's.
 * end: one atomic decrement.
 */
int xproc_view_begin(cow_store *st);
void xproc_view_end(cow_store *st);

/*
 * The committer thread's check, store->lock held (let go meanwhile): when
 * another process waits for the ownership or for a publication and no
 * call is between enter and leave, publishes and lets go.  Returns 1 if
 * it did anything (the caller re-checks its own state).
 */
int xproc_yield_locked(cow_store *st);

/* 1 when ST may change the container now: no shared state, or this
 * process owns it.  store->lock held. */
int xproc_may_change(cow_store *st);

/* 1 when no other process has the container open (or there is no shared
 * state).  store->lock held. */
int xproc_alone(cow_store *st);

/* The processes that have the container open, this one included (1
 * without shared state): shared_nprocs_hint's count, lock-free, a dead
 * process counted until a sweep.  No lock needed. */
unsigned xproc_processes(cow_store *st);

/* How long the committer sleeps at most between looks for another
 * process's request, ns: XPROC_POLL_MS while others have the container
 * open, XPROC_IDLE_POLL_MS alone (a process that opens then waits that
 * long at most for the first publication). */
uint64_t xproc_poll_ns(cow_store *st);
#define XPROC_IDLE_POLL_MS 50u

/* How often the committer looks for another process's request while the
 * container is shared, ms: a backstop, since a writable store's watcher
 * thread (shared_watch) wakes the committer as soon as another process
 * asks. */
#define XPROC_POLL_MS 10u

#ifdef COW_DEBUG
/*
 * Test builds only (cow_store_test_handoff): what a handoff of the
 * ownership to another process that changed nothing, and back, does to
 * this store: it publishes (writes back, commits without flush) and then
 * reloads as a new owner (flush, load, replay), with or without a shared
 * state, so that the crash simulator can crash it anywhere.  No other
 * thread may be changing the store.  Errors: the publication's and the
 * reload's.
 */
int xproc_test_handoff(cow_store *st);

/* Test builds only: how many times this process took the ownership back
 * with its own free space map and the shared allocation journal
 * (alloc_apply_journal) instead of rebuilding the map. */
unsigned long xproc_test_journal_reloads(void);
#endif

#endif /* COW_XPROC_H */
