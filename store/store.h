/*
 * store.h - the extent store's API for the VFS and the tools.
 *
 * The store knows nothing of SQLite.  A store is one container file holding
 * named files in a copy-on-write extent store (see docs/DESIGN.md and
 * store/format.h).
 *
 * Threading: every function here may be called from any thread.  A store
 * serialises its metadata work on one internal mutex (store->lock); see
 * docs/DESIGN.md for the lock order.  A cow_file handle may be used by one
 * thread at a time, or by several if the caller serialises them (SQLite does,
 * per connection).
 *
 * Errors: every function returns COW_OK (0) or a negative COW_E* code;
 * cow_strerror() names it.  After an error, cow_store_last_error() gives a
 * sentence saying what failed and where (file, offset, block).
 */
#ifndef COW_STORE_H
#define COW_STORE_H

#include <stddef.h>
#include <stdint.h>

enum {
    COW_OK = 0,
    COW_EIO_READ = -1,     /* a read of the container failed */
    COW_EIO_WRITE = -2,    /* a write of the container failed */
    COW_EIO_FLUSH = -3,    /* a flush (fdatasync) of the container failed */
    COW_ENOSPC = -4,       /* no space left to grow the container */
    COW_ENOMEM = -5,       /* out of memory */
    COW_ECORRUPT = -6,     /* metadata failed a check (checksum, order, ...) */
    COW_ECSUM = -7,        /* data block does not match its checksum */
    COW_ENOTCONTAINER = -8,/* the file is not a cowvfs container */
    COW_ENOENT = -9,       /* no such file in the container (or no container) */
    COW_EEXIST = -10,      /* a file of that name exists */
    COW_EINVAL = -11,      /* bad argument (name, offset overflow, ...) */
    COW_EBUSY = -12,       /* the container is in use by another process */
    COW_EROFS = -13,       /* the store was opened read-only */
    COW_EIO_TRUNCATE = -14,/* growing or shrinking the container failed */
    COW_EIO_STAT = -15,    /* fstat of the container failed */
    COW_EFAILED = -16,     /* an earlier commit failed; reopen the store */
    COW_ERECOVER = -17,    /* another process died holding the shared state's mutex or
                            * owning the container: the caller holds it now and
                            * must recover what the dead one may have half-changed */
    COW_EIO_LOCK = -18,    /* locking the container's bytes, or mapping the shared
                            * memory beside it, failed (fcntl, shm_open, mmap) */
};

/* Names a COW_E* code ("checksum mismatch", ...); never NULL. */
const char *cow_strerror(int rc);

typedef struct cow_store cow_store;
typedef struct cow_file cow_file;

/* cow_store_open() flags */
#define COW_OPEN_CREATE 0x1   /* make a new container if PATH does not exist */
#define COW_OPEN_READONLY 0x2 /* never write to the container */

/*
 * Opens the container at PATH (UTF-8 file system path).
 *
 * The container is locked (flock, exclusive) for as long as it is open in
 * this process; a second process gets COW_EBUSY.  Within one process, open
 * the store once and share it (the VFS keeps a registry).
 *
 * A path that is not a container (an SQLite database, random bytes, a
 * truncated or damaged container) fails with COW_ENOTCONTAINER or
 * COW_ECORRUPT, and the file is never written.  A missing PATH with
 * COW_OPEN_CREATE becomes a new empty container; without it, COW_ENOENT.
 * An empty (0-byte) existing file with COW_OPEN_CREATE is formatted too.
 *
 * Open goes back to an older commit or log record only where a crash can
 * explain it: a commit or record that a later write proves was flushed,
 * found damaged, is COW_ECORRUPT naming the generations, as is a file the
 * container holds that cannot be found by its name (docs/DESIGN.md,
 * "Damage a crash cannot cause").  It reads both log areas (2 x 256 KiB).
 *
 * On success *out owns the store; release it with cow_store_close().
 * Errors: COW_ENOENT, COW_EBUSY, COW_ENOTCONTAINER, COW_ECORRUPT,
 * COW_EIO_READ, COW_EIO_WRITE, COW_EIO_FLUSH, COW_ENOSPC, COW_ENOMEM.
 */
int cow_store_open(const char *path, int flags, cow_store **out);

struct cow_dev; /* store/bdev.h */
/*
 * Opens a store on device DEV (store/bdev.h; e.g. bdev_rados_open()'s),
 * taking ownership of it even on failure; NAME names the container in
 * messages.  FORMAT (the device was just made: its opener's *created)
 * formats a new container on it, then calls DEV's publish method.  FLAGS as
 * cow_store_open's (COW_OPEN_CREATE is the opener's business).  Errors as
 * cow_store_open().
 */
int cow_store_open_dev(const char *name, struct cow_dev *dev, int flags, int format,
                       cow_store **out);

/*
 * Makes every change so far survive a crash of the application (not a
 * power loss), without flushing.  When the changes since the last commit
 * are file data and sizes only, each changed file's new extents are
 * appended to the log (no flush; open replays them); otherwise the running
 * transaction is committed without flush.  Either way the kernel has the
 * writes in an order that is always consistent, and a power loss may take
 * the container back to the last flushed commit or log record, never to
 * anything inconsistent.  For SQLite's transactions under synchronous=OFF
 * or NORMAL, whose contract is exactly that.
 * Errors as cow_store_commit().
 */
int cow_store_persist(cow_store *st);

/*
 * Several processes on one container (docs/DESIGN.md, "Several
 * processes"): any number of processes open a container; one at a time
 * (the owner) changes it, and the others read the last generation it
 * published.  A store call that changes anything makes its process the
 * owner first (the previous owner publishes and lets go; COW_EBUSY if it
 * does not within 10 s).
 *
 * cow_store_refresh: before a read that must see every transaction another
 * process ended (SQLite takes a SHARED lock or a WAL read lock): when
 * another process published since, reloads what this one holds in memory
 * (the trees' roots, the open files).  A no-op for the owner and for a
 * store alone.  Errors: COW_EBUSY (the owner did not publish in time),
 * the load's errors (COW_ECORRUPT, COW_EIO_READ, COW_ENOMEM; the store then
 * stops).
 *
 * cow_store_publish: the owner makes what it changed readable by the
 * others (writes back, commits without flush), while other processes
 * have the container open: at the end of a write transaction and when
 * SQLite publishes a WAL-index header.  A no-op otherwise.  Errors:
 * cow_store_commit()'s.  cow_store_persist() publishes instead of logging
 * while other processes have the container open.
 */
int cow_store_refresh(cow_store *st);
int cow_store_publish(cow_store *st);

/*
 * The owner's changes are about to become visible through a channel of
 * its own (SQLite's WAL-index header, written between two xShmBarrier
 * calls) before they are published: a process that refreshes from now on
 * waits for the next publication (cow_store_publish, or the committer's
 * when another process asks).  A no-op for a non-owner, a process alone
 * (one atomic load), or with nothing changed.  (Publishing at the barrier itself, between the
 * header's two copies, left the header torn for the length of a commit:
 * every reader in another process then retried, and slept.)
 */
void cow_store_announce(cow_store *st);

/*
 * This process reads nothing of the container until its next
 * cow_store_refresh() (SQLite holds no lock on any of its databases):
 * its pin in the reader table goes, so that the owner may reuse the space
 * of generations it no longer reads.  The refresh reloads if anything was
 * published meanwhile (and so anything released).  A no-op for the owner
 * and a store alone.
 */
void cow_store_unpin(cow_store *st);

/*
 * How many processes have the container open, this one included (>= 1;
 * 1 for a device no other process can open).  A hint: lock-free, and a
 * process killed since still counts until a sweep clears its slot
 * (shared_nprocs_hint).  The VFS grows a WAL in larger steps while others
 * are open (vfs_io.c cowWalGrow).  Never fails.
 */
unsigned cow_store_processes(cow_store *st);

#ifdef COW_DEBUG
/* Test builds only: as if the ownership went to another process that
 * changed nothing and came back (store/xproc.h xproc_test_handoff). */
int cow_store_test_handoff(cow_store *st);
#endif

/*
 * Commits (unless read-only or failed) and closes the store; frees it.
 * Files still open are closed.  Returns the commit's error if it failed
 * (the container then holds the previous commit).
 */
int cow_store_close(cow_store *st);

/*
 * Commits the running transaction: every change made through any file so far
 * becomes durable (one or two flushes), and the log is emptied.  A no-op when nothing changed.
 * Errors: COW_ENOSPC or COW_EIO_TRUNCATE (no room to grow for the commit)
 * and COW_EIO_WRITE (writing its tree blocks) fail this commit only: every
 * change stays in the running transaction and the next commit writes it.
 * A failure past that point (a flush, the superblock write) or in the
 * middle of a tree update stops the store: this call returns the error,
 * every later one COW_EFAILED, and reopening the container recovers its
 * last commit and log (everything a sync made durable).
 */
int cow_store_commit(cow_store *st);

/* The message of the calling thread's most recent store error (thread-local;
 * ST may be NULL, e.g. after a failed cow_store_open()).  Never NULL. */
const char *cow_store_last_error(cow_store *st);

/* The container path given at open (owned by the store). */
const char *cow_store_path(cow_store *st);

/* Generation of the last commit. */
uint64_t cow_store_generation(cow_store *st);

/* Counters since the store was opened (for PRAGMA cow_stats, benchmarks). */
struct cow_stats {
    uint64_t flushes;          /* device flushes (fdatasync of the container) */
    uint64_t commits;          /* full transaction commits */
    uint64_t commits_flushed;  /* ... of which ended with a flush */
    uint64_t syncs;            /* cow_file_sync calls */
    uint64_t log_syncs;        /* ... answered by the log (one flush at most) */
    uint64_t log_records;      /* log records written, with or without flush */
    uint64_t log_blocks;       /* blocks of log records written */
    uint64_t replayed;         /* log records replayed when the store opened */
    uint64_t ordered_extents;  /* ordered extents completed (writeback) */
    uint64_t preallocated;     /* bytes preallocated (cow_file_preallocate) */
    uint64_t written_in_place; /* bytes written in place: into preallocated
                                * extents, over nodatacow files' own */
    uint64_t dirty_bytes;      /* buffered (delalloc) bytes now */
    uint64_t reserved_bytes;   /* data space reserved for them now */
    uint64_t reloc_groups;     /* block groups relocated (balance and the
                                * background relocator) */
    uint64_t reloc_bytes;      /* bytes they moved */
    uint64_t reloc_dropped;    /* bytes they dropped (data no file maps) */
    uint64_t reloc_runs;       /* balances run (explicit or background) */
    uint64_t container_bytes;  /* the container file's size now */
    uint64_t reloads;          /* times this process reloaded what another
                                * process published (xproc.c) */
    uint64_t reloads_skipped;  /* times it became the owner again with
                                * nothing published since it let go, and
                                * went on without a reload (xproc.c) */
    uint64_t held_bytes;       /* space freed but held now, because readers in
                                * other processes or on other clients may
                                * still read it (invariant 9) */
    uint64_t grown;            /* bytes nodatacow files grew by in chunks
                                * (cow_file_grow) */
    uint64_t written_foreign;  /* bytes this process wrote in place while
                                * another process owned the container
                                * (store/inplace.c) */
};

/* Copies the store's counters to *out.  Takes store->lock; never fails. */
void cow_store_stats(cow_store *st, struct cow_stats *out);

/*
 * Sets the interval of background commits, in milliseconds (0 turns them
 * off; the default is COW_COMMIT_INTERVAL_MS).  A background thread commits
 * the running transaction with a flush, which empties the log, whenever
 * this long has passed since the last commit and something changed.
 * Takes store->lock; never fails on an open store.
 */
void cow_store_set_commit_interval(cow_store *st, unsigned ms);
#define COW_COMMIT_INTERVAL_MS 5000u

/*
 * Sets the dirty limit in bytes (the default is COW_DIRTY_LIMIT; at least
 * one block is kept).  Writes are buffered in a per-file page cache
 * (delayed allocation); once this many bytes of all files are buffered, a
 * writer first writes its own file's buffered data to the device, and the
 * background flusher writes the rest.  Takes store->lock; never fails.
 */
void cow_store_set_dirty_limit(cow_store *st, uint64_t bytes);
#define COW_DIRTY_LIMIT (32ull << 20)

/*
 * Sets how many bytes of clean pages (file blocks written back, or read
 * through xFetch) the store keeps cached, of all files together (the
 * default is COW_CLEAN_CACHE; under one block, 0: none beyond each file's
 * last block and the block its last write ended inside).  The least
 * recently used go first.  They serve reads and the partial blocks of
 * later writes without reading the device.  Takes store->lock; never
 * fails.
 */
void cow_store_set_clean_cache(cow_store *st, uint64_t bytes);
#define COW_CLEAN_CACHE (8ull << 20)

/*
 * Writes every file's buffered data to the device as ordered extents and
 * puts it into the running transaction (not durable until a sync or
 * commit).  Errors: COW_EIO_WRITE (the data stays buffered), COW_ENOSPC,
 * COW_ENOMEM, COW_EFAILED.
 */
int cow_store_writeback(cow_store *st);

/* ---- files (names are 1..255 bytes, no '/', e.g. "db", "db-wal") ---- */

/*
 * Opens file NAME; with CREATE, creates it empty if missing.  *out is a
 * handle owned by the caller until cow_file_close().  Several handles may be
 * open on one file.  Errors: COW_ENOENT, COW_EINVAL (bad name), COW_EROFS,
 * COW_ENOMEM, I/O and corruption errors.
 */
int cow_file_open(cow_store *st, const char *name, int create, cow_file **out);

/* Releases a handle.  The file's data stays (delete it with cow_unlink). */
void cow_file_close(cow_file *f);

/*
 * Reads LEN bytes at byte offset OFF into BUF.  Bytes past the end of file
 * are zero-filled and *nread tells how many were inside the file (a short
 * read when *nread < LEN).  Holes read as zeros.  Every block read is
 * verified against its checksum: COW_ECSUM on a mismatch.
 */
int cow_file_read(cow_file *f, void *buf, size_t len, uint64_t off, size_t *nread);

/*
 * Writes LEN bytes at byte offset OFF (any alignment; the file grows as
 * needed, with a hole between the old end and OFF).  The data is buffered
 * in the file's page cache (delayed allocation) with its space reserved:
 * a full disk fails here with COW_ENOSPC, never later.  Writeback puts it
 * in newly allocated space (copy on write); it becomes durable at the next
 * sync or commit.  Errors: COW_ENOSPC, COW_EINVAL (offset overflow),
 * COW_ENOMEM, and I/O errors of a writeback past the dirty limit.
 */
int cow_file_write(cow_file *f, const void *buf, size_t len, uint64_t off);

/* Sets the size to SIZE bytes (shrinks, dropping extents, or grows with a
 * hole).  Space preallocated past SIZE is freed, even when SIZE is the
 * current size (as ftruncate frees fallocate's KEEP_SIZE blocks). */
int cow_file_truncate(cow_file *f, uint64_t size);

/*
 * Preallocates the file up to END bytes (rounded up to 4 KiB) without
 * changing its size, like fallocate(FALLOC_FL_KEEP_SIZE): the range from
 * the end of everything the file holds (its size, extents, buffered
 * pages) to END gets data extents of up to 1 MiB, mapped as PREALLOC
 * items, which read as zeros.  A later write there goes through an ordered
 * extent like any other, but into the preallocated blocks themselves
 * (written in place: nothing else can see them yet, as in btrfs), so a
 * file grown into its preallocation stays contiguous and its writes need
 * no new space.  For SQLITE_FCNTL_SIZE_HINT and CHUNK_SIZE.
 *
 * A no-op when END is not past that end.  All or nothing: COW_ENOSPC
 * (nothing allocated) when the space is not there beyond what buffered
 * writes have reserved.  Takes the file's invalidate lock exclusively,
 * then store->lock.  Errors: COW_ENOSPC, COW_EINVAL (END past 2^62),
 * COW_ENOMEM, COW_EIO_*, COW_EFAILED, COW_ENOENT (file unlinked).
 */
int cow_file_preallocate(cow_file *f, uint64_t end);

/*
 * Makes file F nodatacow (btrfs's NODATACOW, `chattr +C`): from now on its
 * data is overwritten in place wherever no snapshot or branch shares it
 * and relocation is not copying it, and carries no data checksums
 * (format.h, COW_FE_NODATASUM).  An overwrite then changes no metadata: no
 * allocation, no log record, no commit; a sync only flushes.  For files
 * that check their own content and are rewritten in place, as SQLite's
 * WAL (its frames carry salts and checksums; the cow VFS sets it on WAL
 * files, docs/DESIGN.md "Nodatacow WAL").  New blocks still go to new
 * space.  Only while the file is empty (no size, no extents, no buffered
 * data): COW_EINVAL otherwise.  A no-op if F is nodatacow already; the
 * flag stays for the file's life and goes with it into snapshots and
 * branches.  Takes the invalidate lock exclusively, then store->lock.
 * Errors: COW_EINVAL (not empty), COW_EROFS, COW_EFAILED, COW_ENOMEM,
 * COW_ENOENT (unlinked), I/O and corruption errors.
 */
int cow_file_set_nodatacow(cow_file *f);

/*
 * Grows nodatacow file F to END bytes at once (a chunk of a WAL, so that
 * the frames written there later need no metadata change): the bytes from
 * the current size to END are written as zeros, to new space, as
 * NODATASUM extents (real data, not PREALLOC: writing into a preallocated
 * extent converts it, a metadata change, and another process reading
 * through the last commit would read zeros there), the size becomes END,
 * and everything written so far is committed with a flush (as
 * cow_store_commit), which makes those extents old at once (invariant 13):
 * later writes in [old size, END) overwrite them in place, with no
 * allocation, no log record and no commit.  The idea is the unix VFS's
 * chunk size (SQLITE_FCNTL_CHUNK_SIZE, os_unix.c fcntlSizeHint), which
 * grows a file with written zeros; a WAL longer than its valid frames is
 * fine for SQLite (docs/DESIGN.md, "Nodatacow WAL").  A no-op when END is
 * not past the size.  Costs one commit and two flushes (young NODATASUM
 * data is flushed before the superblock).  Takes the file's invalidate
 * lock shared, then store->lock; both are let go for the commit.  Errors:
 * COW_EINVAL (F is not nodatacow, END past 2^62), COW_EROFS, COW_ENOSPC,
 * COW_ENOMEM, COW_ENOENT (unlinked), COW_EFAILED, and the commit's
 * (cow_store_commit); on failure the file may have grown with zeros that
 * are not committed yet (the next commit holds them).
 */
int cow_file_grow(cow_file *f, uint64_t end);

/* *yes = 1 if file F is nodatacow (cow_file_set_nodatacow), else 0.
 * Errors: COW_ENOENT (unlinked), and a refresh's after an unpin. */
int cow_file_nodatacow(cow_file *f, int *yes);

/* The file's size in bytes. */
int cow_file_size(cow_file *f, uint64_t *size);

/*
 * Makes this file's changes durable: its data, size and extents survive a
 * power loss once this returns.  The fast fsync (btrfs's tree-log idea):
 * when the changes since the last commit are file data and sizes only,
 * the file's new extent items, size and checksums go into one log record
 * next to the data and the container is flushed once; open replays the
 * log.  Anything the log cannot express (files created, removed or renamed
 * since the last commit, a grown container, a full log) falls back to a
 * full commit with a flush.  Errors as cow_store_commit(); a failed log
 * write leaves the store as it was and is reported, never ignored.
 */
int cow_file_sync(cow_file *f);

/*
 * xFetch: points *PP at LEN bytes of the file at byte offset OFF, in the
 * store's cache of the file, valid and pinned until cow_file_unfetch()
 * (neither a truncate nor writeback frees that memory meanwhile; a later
 * write to the range changes the bytes seen there, as a shared mapping
 * would).  Only ranges inside one 4 KiB block of the file are fetched;
 * otherwise *PP is NULL and the caller reads instead (SQLite then uses
 * xRead).  Errors: COW_ECSUM, COW_ENOMEM, I/O errors.
 */
int cow_file_fetch(cow_file *f, uint64_t off, size_t len, void **pp);
/* Releases a pointer from cow_file_fetch() (OFF as given there); P NULL is
 * a no-op. */
void cow_file_unfetch(cow_file *f, uint64_t off, void *p);

/* The handle's store and name (owned by the handle). */
cow_store *cow_file_store(cow_file *f);
const char *cow_file_name(cow_file *f);

/* Removes NAME.  Open handles keep working until closed (data freed then). */
int cow_unlink(cow_store *st, const char *name);

/* Sets *exists to 1 if NAME exists, else 0. */
int cow_exists(cow_store *st, const char *name, int *exists);

/* Renames FROM to TO, replacing TO if it exists. */
int cow_rename(cow_store *st, const char *from, const char *to);

/* ---- snapshots and branches ---- */

#define COW_SUBVOL_SNAPSHOT 1 /* read-only */
#define COW_SUBVOL_BRANCH 2   /* writable */

/*
 * Makes a snapshot (KIND COW_SUBVOL_SNAPSHOT, read-only) or a branch
 * (COW_SUBVOL_BRANCH, writable) named NAME of SOURCE: the live files when
 * SOURCE is NULL or "", else the snapshot or branch of that name.  It holds
 * every file of the source as written before this call (buffered writes
 * are written back first) and shares every block with it: the cost is two
 * commits (the second flushed), whatever the source's size; later changes
 * on either side copy only the paths they change (Rodeh, ACM TOS 2008).
 * Durable when it returns.  This is the store's view: SQLite consistency
 * (a transaction boundary) is the VFS's business.
 *
 * NAME: 1..255 bytes of UTF-8, no '/', unique among snapshots and branches.
 * Errors: COW_EINVAL (bad name or kind), COW_EEXIST (name taken), COW_ENOENT
 * (no such SOURCE), COW_EROFS, COW_EFAILED, and those of a commit; on error
 * nothing was made.  Takes store->lock.
 */
int cow_subvol_create(cow_store *st, const char *name, int kind, const char *source);

/* 1 if NAME is a valid snapshot or branch name: 1..255 bytes of UTF-8
 * (RFC 3629) without '/'; else 0. */
int cow_subvol_name_valid(const char *name);

/*
 * cow_subvol_create() for the VFS, with two extras, in the same commit:
 *
 *   DROP      (NULL or a file name) is removed from the new subvolume if it
 *             is there: the VFS drops a rollback journal that holds no
 *             change the database file has (a writer that has not yet
 *             written the database), so the snapshot has no hot journal.
 *   INCOMPLETE  the subvolume is made as a branch that is not finished:
 *             cow_subvol_list() skips it, cow_subvol_kind() reports it as
 *             COW_SUBVOL_INCOMPLETE, only cow_subvol_file_open() reaches it,
 *             and the next writable open of the store deletes it (a crash
 *             before cow_subvol_finish() leaves nothing).  The VFS lets
 *             SQLite roll back a hot journal in it, then finishes it.
 *
 * Errors as cow_subvol_create().
 */
int cow_subvol_create_ex(cow_store *st, const char *name, int kind, const char *source,
                         const char *drop, int incomplete);

/*
 * Finishes NAME, made with INCOMPLETE: it becomes a snapshot or branch
 * (KIND) and is listed from now on; one flushed commit.  Errors: COW_ENOENT
 * (no such incomplete subvolume), COW_EINVAL, COW_EROFS, and those of a
 * commit.  Takes store->lock.
 */
int cow_subvol_finish(cow_store *st, const char *name, int kind);

#define COW_SUBVOL_INCOMPLETE 3 /* cow_subvol_kind(): not finished */

/*
 * Sets *KIND to COW_SUBVOL_SNAPSHOT, _BRANCH or _INCOMPLETE for the
 * subvolume NAME.  COW_ENOENT if there is none, COW_EINVAL for a bad name.
 * Takes store->lock.
 */
int cow_subvol_kind(cow_store *st, const char *name, int *kind);

/*
 * Sets *ID to the subvolume id (257 and up: the objectid of its ROOT_ITEM)
 * of the snapshot or branch NAME, finished or not; NULL or "" is the live
 * subvolume (256).  The VFS locks bytes of the container at COW_LOCK_DB(id)
 * (lockspace.h).  COW_ENOENT if there is none, COW_EINVAL for a bad name.
 * Takes store->lock.
 */
int cow_subvol_id(cow_store *st, const char *name, uint64_t *id);

/*
 * Resets TARGET (NULL or "": the live files; else a branch) to SOURCE (a
 * snapshot or a branch other than TARGET, or an unfinished branch: the
 * VFS restores from one it made of a branch at a transaction boundary,
 * since a branch in use may hold a transaction in progress; the store
 * copies whatever SOURCE holds): TARGET's tree becomes a copy of
 * SOURCE's root (reference count +1, shared as a snapshot shares it) and its
 * old tree is dropped, in one flushed commit, whatever the size.
 *
 * Handles open on TARGET's files stay valid: each is rebound, by its name,
 * to the file of that name in the restored tree, with its cached pages
 * dropped; a name SOURCE does not have is created empty.  The caller makes
 * sure nothing reads or writes TARGET's files meanwhile (the VFS holds
 * every SQLite lock of the database).  Buffered writes of TARGET are
 * written back first and then discarded with the old tree.
 *
 * Errors: COW_EINVAL (bad names, SOURCE == TARGET), COW_ENOENT (no such
 * SOURCE or TARGET), COW_EROFS (TARGET is a snapshot, or the store is
 * read-only), COW_EBUSY (a file of TARGET was unlinked while open),
 * COW_EFAILED, and those of a commit; on error nothing changed.  Takes
 * the open files' invalidate locks, then store->lock.
 */
int cow_subvol_restore(cow_store *st, const char *target, const char *source);

/* Space a subvolume references (see cow_subvol_usage()). */
struct cow_subvol_usage {
    uint64_t exclusive_bytes; /* tree blocks and data extents referenced by
                               * this subvolume only: what deleting it frees */
    uint64_t shared_bytes;    /* ... referenced by it and by others */
    uint64_t exclusive_data;  /* the data extents in exclusive_bytes */
    uint64_t shared_data;     /* the data extents in shared_bytes */
};

/*
 * Computes the space NAME (NULL or "": the live files) references, by
 * walking its tree: a tree block is exclusive when it and every block on
 * its path from the root have a reference count of 1 (Rodeh's implicit
 * sharing: a block under a shared block is shared); a data extent is
 * exclusive when every reference to it comes from exclusive leaves of this
 * tree.  Extents are counted whole (disk bytes).  Cost: one walk of the
 * tree.  Errors: COW_EINVAL, COW_ENOENT, COW_ENOMEM, I/O and corruption
 * errors.  Takes store->lock.
 */
int cow_subvol_usage(cow_store *st, const char *name, struct cow_subvol_usage *u);

/*
 * Deletes the snapshot or branch NAME: its tree is dropped (Rodeh's
 * deletion) and exactly the blocks and extents only it held are freed, in
 * one flushed commit.  Errors: COW_EINVAL, COW_ENOENT, COW_EBUSY (a file of
 * it is open), COW_EROFS, COW_EFAILED, and those of a commit; on error
 * nothing changed.  Takes store->lock.
 */
int cow_subvol_delete(cow_store *st, const char *name);

struct cow_subvol_info {
    char name[256];
    uint64_t id;          /* subvolume id (257 and up) */
    int kind;             /* COW_SUBVOL_SNAPSHOT or COW_SUBVOL_BRANCH */
    uint64_t ctime_ns;    /* creation time, ns since the Unix epoch */
    uint64_t source_id;   /* what it was made from: 256 = the live files */
    char source[256];     /* its name, "" for the live files, "(deleted)" */
};

/* Calls CB for each snapshot and branch, oldest first, skipping those
 * still being made (cow_subvol_create_incomplete); stops early if CB
 * returns != 0 (and returns that).  COW_ENOMEM. */
int cow_subvol_list(cow_store *st, int (*cb)(void *arg, const struct cow_subvol_info *si),
                    void *arg);

/*
 * cow_file_open() in the snapshot or branch SUBVOL (NULL or "": the live
 * files).  In a snapshot, files open but writes, truncation and
 * preallocation fail with COW_EROFS, and CREATE of a missing file is
 * COW_EROFS.  Branch files sync by a full commit (the log holds only the
 * live files).  Errors: as cow_file_open(), COW_ENOENT (no such SUBVOL),
 * COW_EROFS.
 */
int cow_subvol_file_open(cow_store *st, const char *subvol, const char *name, int create,
                         cow_file **out);

/* cow_exists() and cow_unlink() in the snapshot or branch SUBVOL (NULL or
 * "": the live files).  COW_ENOENT also for a missing SUBVOL; unlinking in
 * a snapshot is COW_EROFS. */
int cow_subvol_exists(cow_store *st, const char *subvol, const char *name, int *exists);
int cow_subvol_unlink(cow_store *st, const char *subvol, const char *name);

/* ---- listing and usage ---- */

struct cow_file_info {
    const char *name; /* valid during the callback */
    uint64_t ino;
    uint64_t size;    /* bytes */
    uint64_t nblocks; /* 4 KiB blocks referenced */
};

/* Calls CB for each file, in name-hash order; stops early if CB returns != 0. */
int cow_list(cow_store *st, int (*cb)(void *arg, const struct cow_file_info *fi),
             void *arg);

struct cow_df {
    uint64_t container_bytes; /* size of the container file */
    uint64_t total_bytes;     /* bytes covered by block groups */
    uint64_t used_bytes;      /* allocated: data + metadata + superblocks */
    uint64_t data_bytes;      /* data extents */
    uint64_t metadata_bytes;  /* tree blocks + superblocks */
    uint64_t free_bytes;      /* total - used */
    uint64_t nblock_groups;
    uint64_t generation;
    uint64_t physical_bytes;  /* blocks that hold something: every used
                               * block once, wherever relocation put it */
    uint64_t slack_bytes;     /* container_bytes - physical_bytes: what
                               * relocation could give back at most */
    uint64_t remapped_bytes;  /* used blocks that relocation moved (read
                               * through the remap tree) */
};

int cow_store_df(cow_store *st, struct cow_df *df);

/* ---- relocation (store/reloc.c; docs/DESIGN.md, "Relocation") ---- */

/* What cow_store_balance() did, or has done so far (progress). */
struct cow_balance_result {
    uint64_t groups_total;     /* block groups chosen to relocate */
    uint64_t groups_done;      /* ... of them visited so far (progress) */
    uint64_t groups_relocated; /* ... of those, the ones that moved
                                * something (a group that does not fit
                                * below it, or holds nothing, stays) */
    uint64_t bytes_moved;      /* bytes copied to new places */
    uint64_t bytes_dropped;    /* bytes of data extents no file maps (the
                                * "bookends" of extents partly overwritten),
                                * given back without a copy */
    uint64_t container_before; /* container file size before, bytes */
    uint64_t container_after;  /* ... after (0 until the end) */
};

struct cow_balance_opts {
    /* Relocate block groups at most this full, in percent of their size
     * (0..100; 100 relocates every group but group 0).  Groups that start
     * past what the file needs (the bytes it holds, an eighth more and a
     * block group of room, an eighth of one in a container of under eight
     * groups' worth) are relocated whatever their usage, so that the file
     * can shrink. */
    unsigned usage_pct;
    /* Stop after moving about this many bytes (0: no limit); the
     * background relocator moves in such steps. */
    uint64_t max_bytes;
    /* Optional: called after each group with the totals so far, outside
     * store->lock; a non-zero return stops the balance after that group
     * (what was relocated stays relocated). */
    int (*progress)(void *arg, const struct cow_balance_result *so_far);
    void *arg;
};
#define COW_BALANCE_DEFAULT_USAGE 90u

/*
 * Relocates the live blocks of the chosen block groups into other space
 * and gives the container file's unused tail back to the host file
 * system (btrfs's balance, with the remap tree's mechanism: live data and
 * tree blocks are copied, then remap items that translate their logical
 * addresses are committed; no tree or file extent item changes, so every
 * snapshot's and branch's sharing and usage are exactly as before).  Runs
 * while other threads read and write: store->lock is held only to choose
 * blocks and to commit, never while copying.  O NULL: the defaults
 * (COW_BALANCE_DEFAULT_USAGE, no limit).  R may be NULL.
 *
 * Each relocated group is one flushed commit: a crash leaves each group
 * either where it was or where it went, never both (invariant 5).
 * Errors: COW_EROFS, COW_EFAILED, COW_ENOMEM, COW_ENOSPC (no room to copy
 * into: nothing of that group changed), I/O errors (reading or writing
 * the copies: that group stays where it was; a failed commit stops the
 * store as any commit does).
 */
int cow_store_balance(cow_store *st, const struct cow_balance_opts *o,
                      struct cow_balance_result *r);

/* The background relocator (store/relocator.c): a thread that runs a
 * limited balance whenever the container's slack passes a threshold. */
struct cow_reloc_config {
    int enabled;            /* default 1 */
    unsigned slack_pct;     /* start when slack_bytes exceeds this percent of
                             * the container (default 25) ... */
    uint64_t slack_min;     /* ... and this many bytes (default 1 MiB) */
    uint64_t rate;          /* bytes moved per second at most (default
                             * 64 MiB/s; 0: no limit) */
};
#define COW_RELOC_SLACK_PCT 25u
#define COW_RELOC_SLACK_MIN (1ull << 20)
#define COW_RELOC_RATE (64ull << 20)

/* Reads and sets the relocator's configuration (takes store->lock; never
 * fails on an open store; a read-only store never relocates). */
void cow_store_get_reloc(cow_store *st, struct cow_reloc_config *c);
void cow_store_set_reloc(cow_store *st, const struct cow_reloc_config *c);

#endif /* COW_STORE_H */
