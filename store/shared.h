/*
 * shared.h - the store's state shared by every process that has one
 * container open (docs/DESIGN.md, "Several processes"; store/lockspace.h
 * for the bytes locked and the object's name).
 *
 * The state is a POSIX shared-memory object, "/cowvfs-DEV-INO", mapped by
 * each process, with open-file-description locks on bytes of the container
 * file past COW_LOCK_BASE:
 *
 *   - the dead-man switch (COW_LOCK_STORE_DMS): read-locked by every process
 *     that maps the object; the process that gets it write-locked is alone,
 *     and (re)initialises the object at open or unlinks it at close, as
 *     SQLite's unixLockSharedMemory and unixShmPurge do with a -shm file;
 *   - one slot byte per process (COW_LOCK_SLOT(i)), write-locked while the
 *     process has slot i: a slot whose byte is unlocked belongs to a dead
 *     process, found without trusting pids (LMDB's reader table, with the
 *     liveness test of its mdb_reader_check done by the kernel's locks).
 *
 * What the object holds: a robust process-shared mutex (a holder that dies
 * leaves it EOWNERDEAD: LMDB's mdb_mutex_failed), the owner (the one
 * process that may change the container), the publication sequence number
 * and generation, the reader table (each process's pinned generation),
 * the pending frees (space the owner freed that readers may still read)
 * and the allocation journal (what each commit did to the free space map,
 * for an owner that comes back).
 *
 * Invariants that make it safe against a process killed at any instruction:
 *   - the object's name is unlinked only by a process holding the dead-man
 *     switch write-locked, and every process checks, holding the switch,
 *     that the name still refers to the object it mapped: no process ever
 *     runs on an object that was unlinked (or is about to be);
 *   - the owner, the publication and the want bits change by single atomic
 *     operations, so a death leaves no half-made change to them;
 *   - the pending frees are changed by appending (the entry, then the
 *     count) or by building a new table beside the live one and switching
 *     to it in one store: a death leaves the old table or the new one.
 *
 * Threads: every function may be called from any thread, except that one
 * process's calls of shared_own, shared_disown and shared_wait_published
 * must be serialised by the caller (the store calls them under store->lock).
 * After fork() a child must not use its parent's cow_shared (the open file
 * description, and so its locks, is the parent's): it opens its own.
 */
#ifndef COW_SHARED_H
#define COW_SHARED_H

#include <stddef.h>
#include <stdint.h>

struct cow_shared;

/* Entries of the pending-frees table; coalesced when full. */
#define SHARED_FREES_MAX 16384u

/*
 * Maps the shared state of the container open as FD, whose container uuid
 * is UUID (16 bytes, the superblock's).  FD is an open descriptor of the
 * container: its open file description carries this process's locks, so
 * it must stay open (not necessarily this descriptor: one referring to the
 * same open file description) until shared_close(), and a process calls
 * shared_open once per open file description (the locks of one
 * description never conflict with each other).  The caller keeps
 * ownership of FD.  FD may be read-only (O_RDONLY): such a process takes
 * read locks only, so it is never "first": it builds the state itself
 * only when it finds none and F_OFD_GETLK shows that nobody else holds the
 * dead-man switch, and it never unlinks the object (shared_close).
 *
 * If this process gets the dead-man switch write-locked it is the only one
 * with the container open (first, or every earlier one died): it
 * (re)initialises the object, whatever it held.  Otherwise the object must
 * be a valid state of this container.  Then the switch is held read-locked,
 * and a free process slot taken (the first whose byte this process can
 * write-lock; a dead process's slot is free), its pid recorded and its
 * pinned generation cleared; dead processes' slots are cleared.
 *
 * Blocks only while another process initialises or unlinks the object
 * (microseconds), and retries for up to a second while the object is
 * being replaced.
 *
 * On success *OUT is the caller's until shared_close().
 * Errors: COW_EBUSY (another container's state is held under this name:
 * the container was replaced while processes have it open; or the object
 * is of another layout, held by another version; or all COW_SHARED_SLOTS
 * slots are taken), COW_EIO_STAT (fstat of FD), COW_EIO_LOCK (a lock or
 * shared-memory call failed), COW_ENOMEM.
 */
int shared_open(int fd, const uint8_t uuid[16], struct cow_shared **out);

/*
 * Leaves the shared state: lets go of ownership (without publishing: the
 * caller publishes first if it has changes), clears and unlocks the
 * process slot, unmaps the object and releases the dead-man switch.  If
 * this process can then write-lock the switch, nobody else has the object
 * mapped: it unlinks the name (an opener that opened the object before
 * finds the name gone, or another object under it, and starts again).
 * Frees SH; NULL is a no-op.  Never fails (a failed unlink leaves an
 * object the next opener reinitialises).  A process whose descriptor is
 * read-only cannot write-lock the switch: when it is last, the object
 * stays under its name (about 2 MiB of /dev/shm) until the next opener
 * reinitialises it (a read-write one) or joins it (a read-only one: the
 * state of dead processes is safe to join, their slots being dead).
 */
void shared_close(struct cow_shared *sh);

/* ---- the mutex ---- */

/*
 * Locks the state's process-shared mutex (robust: PTHREAD_MUTEX_ROBUST).
 * Returns COW_OK; or COW_ERECOVER when its previous holder died holding
 * it: the caller holds it now (pthread_mutex_consistent is done), and
 * whatever the caller's own code guards with it may be half-changed.
 * (This module's structures stay consistent at every store, so they need
 * no repair.)  COW_EIO_LOCK if the mutex cannot be had at all (cannot
 * happen while every locker goes through here).  Not recursive.
 */
int shared_lock(struct cow_shared *sh);

/* Unlocks the mutex; the calling thread holds it. */
void shared_unlock(struct cow_shared *sh);

/* ---- ownership: one process changes the container at a time ---- */

/*
 * Makes this process the owner, waiting up to TIMEOUT_MS milliseconds
 * while another live process owns (it sees shared_owner_wanted() and lets
 * go).  At once if this process owns already.  While it waits its want bit
 * is raised; it sleeps on a futex word of the state that shared_disown and
 * shared_publish bump, and every 10 ms checks the owner's liveness by its
 * slot's lock (F_OFD_GETLK), since a dead owner never wakes anybody.
 * Taking ownership clears the "unpublished" flag (the new owner has
 * changed nothing yet).
 * Returns COW_OK; COW_ERECOVER when the previous owner died owning: this
 * process is owner now and must recover the container from disk (as open
 * does after a crash) before changing anything; COW_EBUSY on timeout.
 * Do not hold the mutex.
 */
int shared_own(struct cow_shared *sh, unsigned timeout_ms);

/* Lets go of ownership (a no-op if not owner) and wakes the processes
 * waiting in shared_own or shared_wait_published.  Publish first. */
void shared_disown(struct cow_shared *sh);

/* 1 if this process is the owner, else 0.  One atomic load. */
int shared_is_owner(struct cow_shared *sh);

/*
 * 1 if another live process waits to own (shared_own: its want-to-own bit
 * is raised), else 0.  The owner's cheap test: two atomic loads when
 * nobody waits; when a bit is raised, the waiter's liveness is checked
 * with F_OFD_GETLK and a dead waiter's bits cleared.
 */
int shared_owner_wanted(struct cow_shared *sh);

/* 1 if another live process waits to own or for a publication
 * (shared_wait_published), else 0; as shared_owner_wanted. */
int shared_wanted(struct cow_shared *sh);

/* 1 while the owner has changes that readers wait for (set by
 * shared_set_unpublished, cleared by a publication).  One atomic load. */
int shared_unpublished(struct cow_shared *sh);

/*
 * Sleeps until another live process raises its want bit (shared_own or
 * shared_wait_published) or TIMEOUT_MS milliseconds pass; 1 if one wants,
 * else 0.  For the owner's background thread, so that an idle owner lets
 * go when asked instead of keeping waiters until their timeout.  Sleeps on
 * a futex word that a waiter bumps when it raises its bit; a waiter that
 * dies leaves a bit that shared_owner_wanted clears.
 */
int shared_wait_wanted(struct cow_shared *sh, unsigned timeout_ms);

/*
 * Starts a thread that calls CB(ARG) soon after another process starts
 * waiting (raises its want bit: shared_own, shared_wait_published) while
 * this process owns, and again while such a waiter still waits, at most
 * once a second: so that an owner lets go when asked at once instead of
 * at its committer's next look.  The thread sleeps on a futex word of the
 * state that a waiter bumps when it raises its bit (Linux's futex, as
 * shared_wait_wanted).  CB runs on that thread with no lock held; it must
 * not call shared_unwatch or shared_close.  A no-op if a watcher runs.
 * Errors: COW_ENOMEM (no thread).
 */
int shared_watch(struct cow_shared *sh, void (*cb)(void *arg), void *arg);

/* Stops and joins the watcher thread (a no-op without one; SH NULL too).
 * shared_close calls it; call it earlier when CB's state goes first.  Not
 * from CB. */
void shared_unwatch(struct cow_shared *sh);

/* ---- publication ---- */

/*
 * The owner, after a commit that readers may see: stores GENERATION (the
 * commit's), bumps the sequence number, clears "unpublished" and wakes
 * waiters.  Lock-free.
 */
void shared_publish(struct cow_shared *sh, uint64_t generation);

/* The publication sequence number: bumped by each shared_publish (a
 * process behind it refreshes).  Starts at 1 when the state is created. */
uint64_t shared_seq(struct cow_shared *sh);

/* The generation last published (0 before the first publication). */
uint64_t shared_generation(struct cow_shared *sh);

/* The owner has changes that readers cannot see yet (shared_publish clears
 * it).  Lock-free. */
void shared_set_unpublished(struct cow_shared *sh);

/* ---- writes in place by processes that do not own ---- */

/*
 * Before a process that does not own the container writes a nodatacow
 * file's bytes in place (store/inplace.c): raises this process's "writing"
 * flag, then checks that no barrier is up and none ended since EPOCH_SEEN
 * (shared_barrier_epoch() when this process loaded its view), that nothing
 * was published since SEEN_SEQ (its view is the newest) and that the owner
 * has nothing unpublished.  Returns 1 with the flag up: the write may go,
 * then shared_inplace_end(); else the flag is down, and the result is -1
 * when only the view is old (a reload may make it fit), 0 when a barrier
 * is up or the owner has unpublished changes (the write must take the
 * ownership).  Lock-free; sequentially consistent.  The idea of a lock that
 * nocow writers share and a snapshot takes alone is btrfs's
 * (fs/btrfs/locking.c, btrfs_drew_write_lock / btrfs_drew_read_lock around
 * btrfs_check_nocow_lock and create_snapshot).
 */
int shared_inplace_begin(struct cow_shared *sh, uint64_t seen_seq, uint64_t epoch_seen);

/* shared_inplace_begin() for the owner, whose view is the newest by
 * definition: only the barrier (raised by another of its threads) is
 * checked.  1 with the flag up, or 0. */
int shared_inplace_begin_owner(struct cow_shared *sh);

/* After the write (WROTE: something was written; 0: the write did not
 * go in place after all): bumps the count of writes in place if WROTE
 * (cached pages of nodatacow files are stale: shared_inplace_seq), then
 * lowers the flag. */
void shared_inplace_end(struct cow_shared *sh, int wrote);

/* Writes in place by non-owners so far (acquire). */
uint64_t shared_inplace_seq(struct cow_shared *sh);

/*
 * The owner, before an operation that may move, share or free a
 * nodatacow file's blocks behind a non-owner's back (a relocation, a
 * snapshot or branch, a restore): raises the barrier (a count: several
 * may be up), then waits until no other live process has its "writing"
 * flag up (a write of a few KiB; a dead process's flag is cleared).  The
 * operation must publish what it changed before shared_barrier_lower().
 * Do not hold the mutex.
 */
void shared_barrier_raise(struct cow_shared *sh);

/* Ends one barrier: bumps the epoch (every non-owner's view is now
 * suspect until it reloads), then lowers the count. */
void shared_barrier_lower(struct cow_shared *sh);

/* A new owner after one that died (maybe with a barrier up): no barrier,
 * a new epoch. */
void shared_barrier_reset(struct cow_shared *sh);

/* The barrier epoch (bumped by each shared_barrier_lower and reset). */
uint64_t shared_barrier_epoch(struct cow_shared *sh);

/* An owner made generation GEN durable (its flush completed): raises the
 * shared durable generation to GEN (never lowers it).  Lock-free. */
void shared_set_durable(struct cow_shared *sh, uint64_t gen);

/* The newest generation an owner made durable, 0 if none yet. */
uint64_t shared_durable(struct cow_shared *sh);

/*
 * A reader: if the owner has unpublished changes, raises the want bit and
 * waits until they are published, or there is no live owner (the dead
 * owner's unpublished changes are gone; the next owner recovers), or
 * TIMEOUT_MS milliseconds passed.  Returns COW_OK, or COW_EBUSY on
 * timeout.  Do not hold the mutex.
 */
int shared_wait_published(struct cow_shared *sh, unsigned timeout_ms);

/* ---- the reader table ---- */

/*
 * Records that this process reads the trees of generation GEN (0: it reads
 * nothing).  Lock-free; a sequentially consistent store.  As LMDB's
 * mdb_txn_renew0 does, a reader pins the generation it read, then reads
 * shared_generation() again and pins again if it moved: an owner whose
 * shared_min_pinned() ran between the read and the pin missed it.
 */
void shared_pin(struct cow_shared *sh, uint64_t gen);

/* shared_pin(SH, 0) unless this process's pin is 0 already (one load when
 * it is: no write to the shared line). */
void shared_unpin_if_pinned(struct cow_shared *sh);

/*
 * The lowest non-zero generation pinned by a live process (this one
 * included), UINT64_MAX if none.  Slots of dead processes are cleared on
 * the way.  One F_OFD_GETLK per other process with a pin.  Takes the
 * mutex: do not hold it.
 */
uint64_t shared_min_pinned(struct cow_shared *sh);

/* The number of live processes with the state open, this one included
 * (>= 1).  One F_OFD_GETLK per other process; dead slots are cleared.
 * Takes the mutex: do not hold it. */
unsigned shared_nprocs(struct cow_shared *sh);

/* shared_nprocs() without the mutex and without checking that the other
 * slots' processes are alive: a dead process still counts until a sweep
 * (shared_nprocs, shared_min_pinned) clears its slot, so the count errs on
 * the side of "not alone".  Lock-free: the hot paths' test. */
unsigned shared_nprocs_hint(struct cow_shared *sh);

/* ---- pending frees (the caller holds the mutex for these) ---- */

/*
 * Records that generation GEN freed the LEN bytes at START, which readers
 * of generations before GEN may still read.  PHYS: START is a physical
 * address (a place relocation copied an extent to, store/remap.c), else
 * a logical one; the two are kept apart (a logical address past the
 * file's end is no place in the file).  Never fails: when the table
 * is full it is coalesced (touching runs merged first, then the runs
 * closest together, gaps included, each kind apart) into a new table at
 * most half full; a merged run covers both and the gap between them, with
 * the larger generation.  So the table over-approximates: every byte added stays
 * covered by an entry of a generation >= its own until taken, but an
 * entry may cover bytes never added (see shared_frees_take).  LEN 0 is a
 * no-op.  O(1), or O(n log n) when coalescing.  The mutex is held (asserted
 * in debug builds).
 */
void shared_frees_add(struct cow_shared *sh, uint64_t gen, uint64_t start, uint64_t len,
                      int phys);

/*
 * Removes every entry whose generation is below BELOW_GEN and reports each
 * to CB(ARG, start, len, phys) (PHYS: its kind, as added), after the table
 * no longer holds it.  Returns the number of entries removed.  A reported
 * run may include bytes never freed (gaps closed by coalescing): CB must
 * release only what its own allocator knows to be freed in the run, never
 * mark the whole run free.  CB must not call shared_frees_*.  The mutex is held (asserted in debug
 * builds).
 */
size_t shared_frees_take(struct cow_shared *sh, uint64_t below_gen,
                         void (*cb)(void *arg, uint64_t start, uint64_t len, int phys),
                         void *arg);

/* Bytes covered by the pending frees (gaps closed by coalescing included).
 * O(entries).  The mutex is held. */
uint64_t shared_frees_bytes(struct cow_shared *sh);

/* Entries in the pending-frees table now (for tests and statistics).  The
 * mutex is held. */
size_t shared_frees_count(struct cow_shared *sh);

/* Calls CB(ARG, gen, start, len, phys) for every pending free, in no order
 * (a new owner holds them back).  The caller holds the mutex; CB must not
 * call shared_frees_*. */
void shared_frees_foreach(struct cow_shared *sh,
                          void (*cb)(void *arg, uint64_t gen, uint64_t start, uint64_t len,
                                     int phys),
                          void *arg);

/* ---- the allocation journal (the caller holds the mutex for these) ----
 *
 * What each commit allocated and freed, in order, so that a process that
 * owned the container before can bring its free space map up to date
 * when it owns again, instead of rebuilding it from the extent tree
 * (store/alloc.c alloc_apply_journal; docs/DESIGN.md "Several
 * processes").  A ring of SHARED_JOURNAL_MAX entries; a reader remembers
 * the head when it let go and reads from there.  Entries of a commit are
 * appended before its superblock is written, so a commit whose entries
 * are missing was never published; an owner that recovers from a dead one
 * invalidates everything before (shared_journal_invalidate). */
#define SHARED_JOURNAL_MAX 32768u
#define SHARED_JOP_ALLOC 1u   /* blocks allocated (both maps) */
#define SHARED_JOP_UNALLOC 2u /* blocks allocated earlier in the same
                               * transaction, given back at once */
#define SHARED_JOP_FREE 3u    /* blocks freed (readers may still read them) */
#define SHARED_JOP_PFREE 6u   /* where freed blocks were stored (their own
                               * address, or a relocation's target) */
#define SHARED_JOP_GROUP 4u   /* a block group added at START; LEN: its type
                               * (COW_BG_*) */
#define SHARED_JOP_TYPE 5u    /* the block group at START retyped to LEN */

/* Appends one entry: generation GEN's commit did OP on the LEN bytes at
 * START.  Never fails; the ring overwrites its oldest entry. */
void shared_journal_append(struct cow_shared *sh, uint64_t gen, unsigned op, uint64_t start,
                           uint64_t len);

/* The number of entries ever appended (the next entry's index). */
uint64_t shared_journal_head(struct cow_shared *sh);

/* Makes every entry appended so far unreadable: their commits may not
 * match the container (a dead owner's), or were not journalled whole. */
void shared_journal_invalidate(struct cow_shared *sh);

/* Calls CB(ARG, gen, op, start, len) for each entry from index FROM to the
 * head, in order; stops at CB's first non-zero return and returns it.
 * Returns 1 without calling CB when the entries from FROM are no longer
 * all there (overwritten or invalidated), 0 after the last entry. */
int shared_journal_read(struct cow_shared *sh, uint64_t from,
                        int (*cb)(void *arg, uint64_t gen, unsigned op, uint64_t start,
                                  uint64_t len),
                        void *arg);

/* The owner has nothing unpublished after all (what it changed is
 * published, or nothing changed): clears the flag and wakes the readers
 * waiting in shared_wait_published, without a new publication.
 * Lock-free. */
void shared_clear_unpublished(struct cow_shared *sh);

/* This process's slot (0 .. COW_SHARED_SLOTS-1). */
unsigned shared_slot(struct cow_shared *sh);

#endif /* COW_SHARED_H */
