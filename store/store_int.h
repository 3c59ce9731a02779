/*
 * store_int.h - the store's internal structures, shared by the store sources.
 *
 * Lock order (outermost first; see docs/DESIGN.md):
 *   VFS registry mutex -> VFS per-container lock-state mutex -> store->lock
 * Inside the store there is one lock, store->lock, held by every public
 * entry point for the whole operation, except while data is written
 * (ordered extents), while a sync's flush runs (txn.c txn_flush_wait)
 * and while a read reads the device and checks checksums (file.c
 * file_read; what it reads is kept from reuse, alloc_reader_begin).
 * Everything in struct cow_store below is protected by it unless said
 * otherwise.  Every
 * internal function that needs it asserts so at its top in debug builds:
 * lk_assert_held(&st->lock) (lockdep.h).
 */
#ifndef COW_STORE_INT_H
#define COW_STORE_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "bdev.h"
#include "format.h"
#include "hmap.h"
#include "lockdep.h"
#include "store.h"

/* ---- errors ---- */
/* Records a message for cow_store_last_error() and returns RC. */
int cow_set_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Corruption found on disk: records the message with where it was found,
 * "(detected at store/FILE.c:LINE)", and returns COW_ECORRUPT. */
#define COW_CORRUPT(...) cow_corrupt_at(__FILE__, __LINE__, __VA_ARGS__)
/* COW_CORRUPT's function: FILE is a source path (__FILE__), of which the
 * message keeps the base name under "store/"; LINE its line. */
int cow_corrupt_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Overflow-safe end of a byte range: 0 on success, COW_EINVAL on overflow. */
static inline int range_end(uint64_t start, uint64_t len, uint64_t *end)
{
    if (start + len < start)
        return COW_EINVAL;
    *end = start + len;
    return COW_OK;
}

/* 1 if the N bytes at P are all zero.  The format leaves reserved and
 * unused bytes of checksummed blocks zero (superblock, tree block header,
 * log record tail); the store checks them as fsck does, so that the two
 * agree on a block whose crc matches with such a byte set. */
static inline int bytes_zero(const uint8_t *p, size_t n)
{
    /* each byte equal to the one before it, and the first zero: memcmp
     * compares words at a time */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* ---- tree block cache (an "extent buffer" per cached block) ---- */
struct eb {
    uint64_t bytenr;
    uint8_t *data;     /* COW_BLOCK_SIZE bytes */
    int dirty;         /* written by the running transaction (mutable) */
    int shared;        /* dirty, and also reached from a tree cloned by the
                        * running transaction (bt_mark_shared): copied on
                        * change, not changed in place, until the commit */
    struct hm_node hnode; /* in eb_cache.map, key bytenr */
    struct eb *dnext;  /* list of dirty blocks */
};

struct eb_cache {
    struct hmap map;  /* every cached block, by bytenr */
    struct eb *dirty; /* dirty blocks, unordered */
    size_t ndirty;
};

/* ---- a tree (root, extent, csum, or a subvolume tree) ---- */
struct cow_root {
    uint64_t objectid;
    uint64_t bytenr;     /* root block */
    uint64_t generation; /* generation of the root block */
    unsigned level;
    int refcounted;      /* subvolume tree: blocks have METADATA_ITEMs */
    int dirty;           /* root pointer changed in the running transaction */
    /* subvolume trees only: */
    uint64_t next_ino;
    uint64_t flags;
    uint64_t ctime;
    uint64_t source;
    uint64_t last_snapshot; /* ROOT_LAST_SNAPSHOT (format.h) */
};

/* ---- block groups and free space ---- */
struct bgroup {
    uint64_t start;  /* bytes */
    uint64_t len;    /* bytes */
    uint64_t used;   /* bytes allocated in the new (uncommitted) state */
    uint64_t nfree;  /* blocks clear in the bitmap (allocatable now) */
    uint8_t *bitmap; /* 1 bit per block: allocated or pinned */
    uint64_t maxrun; /* upper bound on the longest free run (blocks) */
    uint64_t flags;  /* COW_BG_DATA or COW_BG_METADATA */
    int dirty;       /* used changed since its BLOCK_GROUP_ITEM was written */
    /* Physical use (relocation, docs/DESIGN.md "Relocation"): bit set when
     * the block of the file holds something, or will (reserved, pinned):
     * a used block stored at its own address, or a remap target.  The
     * bitmap above is logical use.  A block is allocatable when both are
     * clear (nfree counts those). */
    uint8_t *pbitmap;
    uint64_t pused;  /* blocks set in pbitmap */
    size_t nremap;   /* remap runs whose logical start is in this group */
    int relocating;  /* being relocated: no allocation (logical or remap
                      * target) and no write in place lands here */
};

/* Commits without flush stop (the next commit flushes) once this many runs
 * of space freed since the last flush are pinned. */
#define COW_MAX_PINNED_RUNS 1024

/* A run of whole blocks at BYTENR, its length in bytes (space freed in
 * the running transaction: alloc_free's pinned runs)... */
struct byte_run {
    uint64_t bytenr;
    uint64_t bytes;
};

/* Space freed and cooled that another process may still read (alloc.c,
 * with a shared state only): kept out of allocation until every live
 * reader reads generation GEN or later.  PHYS: a physical run (its
 * physical bitmap bits), else a logical one (its allocation bitmap bits). */
struct held_run {
    uint64_t bytenr;
    uint64_t bytes;
    uint64_t gen;
    int phys;
};

/* A read of this process in flight with store->lock released (alloc.c
 * alloc_reader_begin): on the reader's stack, in st->readers while it
 * runs.  TICKET: st->rd_next when it began. */
struct cow_reader {
    uint64_t ticket;
    struct cow_reader *prev, *next;
};

/* One change of the running transaction to the free space map, for the
 * shared allocation journal (alloc.c alloc_record_ops). */
struct alloc_op {
    uint64_t bytenr;
    uint64_t bytes;
    unsigned op; /* SHARED_JOP_* */
};

/* A remap item in memory (format.h, REMAP_ITEM): blocks [logical,
 * logical + len) are stored at [phys, phys + len); bytes. */
struct remap_run {
    uint64_t logical;
    uint64_t len;
    uint64_t phys;
};

/* ... and in blocks (blocks written by the running transaction: the
 * one-flush commit list, as SB_COMMIT_RANGES has them).  Two types so
 * that the unit is in the field's name wherever the two meet
 * (txn.c's txn_wlog_drop_freed). */
struct block_run {
    uint64_t bytenr;
    uint64_t nblocks;
};

/* A pending change to an extent's reference count (btrfs's delayed refs). */
struct dref {
    struct hm_node node; /* in cow_store.dref_map, key bytenr */
    uint64_t bytenr;
    uint64_t len;    /* bytes (data) or COW_BLOCK_SIZE (tree block) */
    int64_t delta;
    int is_data;
    unsigned level;  /* tree blocks */
};

/* A byte range [start, end) of a file. */
struct lrange {
    uint64_t start, end;
};

/* Past this many separate changed ranges a file is no longer tracked for
 * the log: its next sync commits instead. */
#define COW_LOG_MAX_RANGES 4096

/* ---- page cache and delayed allocation (pcache.c) ---- */

/* A cached block of a file.  DATA never moves while the page lives, so an
 * xFetch pointer to it stays valid until xUnfetch. */
struct cpage {
    uint64_t idx;        /* file block index */
    uint8_t *data;       /* COW_BLOCK_SIZE bytes: the block as the file has
                          * it now (bytes past the end of file zero) */
    int dirty;           /* delalloc: written since its last writeback, owns
                          * one reserved data block, unless INPLACE */
    int inplace;         /* dirty over a preallocated block (and not in an
                          * ordered extent when dirtied): its writeback
                          * goes there, so it holds no reserved block */
    int wb;              /* ordered extents in flight holding its data */
    int pins;            /* xFetch references */
    int detached;        /* dropped from the cache (truncate, close) while
                          * pinned: freed at the last unfetch */
    int lru;             /* on the store's clean-page LRU (clean, not in
                          * writeback, not pinned: evictable) */
    int uptodate;        /* DATA holds the block (under pcache.lock): a
                          * page just made for a whole-block write is not,
                          * until the write's bytes are in */
    int referenced;      /* atomic: read by pc_read_cached since it was
                          * last on the LRU's tail (a second chance) */
    struct cpage *lprev, *lnext; /* ... its neighbours there */
    struct cow_inode *in; /* the inode whose cache holds it */
    struct hm_node hnode; /* in pcache.pages, key idx */
    struct cpage *hnext; /* the detached list */
    struct cpage *dprev, *dnext; /* the file's dirty list, while dirty */
};

/* A file's cached pages: a hash by block index, and beside it what lets
 * the hot paths visit only the pages they need (not every cached page):
 * the list of dirty pages (writeback), the count of dirty pages also in
 * writeback (the wait before a writeback), and an upper bound on the
 * block indexes cached (truncate, replay and pc_end walk indexes when that
 * is fewer than the pages). */
struct pc_lru;
struct pcache {
    pthread_mutex_t lock;     /* innermost, inside store->lock: the page
                               * hash, each page's DATA and UPTODATE, and
                               * the inode's size while the invalidate lock
                               * is held shared, so that pc_read_cached
                               * reads them without store->lock */
    struct pc_lru *lru;       /* the store's clean-page LRU (st->lru) */
    struct hmap pages;        /* the cached pages by idx (pages.count) */
    size_t ndirty;            /* of which dirty */
    size_t nredirty;          /* ... and also in writeback (wb > 0) */
    struct cpage *dirty;      /* the dirty pages, unordered */
    uint64_t hi;              /* every cached page's index is below this */
    struct cpage *detached;   /* pinned pages no longer in the hash */
    uint64_t tail;            /* 1 + the index of the block the last write
                               * ended inside, 0 if it ended on a boundary */
#ifdef COW_BREAK_RESV_SHARED
    uint64_t wb_resv;         /* make race-proof: per-file reservation state */
#endif
};

/* The clean pages kept after writeback or a read (pcache.c), of every
 * file of a store, least recently used first to go once they pass the
 * budget: as the kernel's page cache keeps a file's pages for the next
 * read or partial write (a WAL rewritten from its start writes 4,120-byte
 * frames over blocks it wrote before).  Dirty pages, pages in writeback
 * and pinned pages are never on it.  Protected by store->lock. */
struct pc_lru {
    struct cpage *head, *tail; /* most and least recently used */
    uint64_t bytes;            /* pages on it, bytes */
    uint64_t budget;           /* at most this many bytes (0: none kept) */
};

/* struct cow_resv: space.h; struct oext: ordered.h. */
struct oext;
struct cow_shared; /* shared.h */

/* ---- in-memory inode (one per file with open handles) ---- */
struct cow_inode {
    struct cow_root *root; /* the subvolume tree it lives in (the live one,
                            * st->fs_tree, or a snapshot's or branch's) */
    uint64_t ino;
    char *name;        /* the name it was opened by (kept across renames),
                        * for cow_subvol_restore's rebinding; NULL for the
                        * transient inodes of cleanup paths */
    uint64_t size;     /* bytes, as the file's users see it (buffered
                        * writes included) */
    uint64_t disk_size;/* bytes, as the INODE_ITEM has it: grows only as
                        * ordered extents complete, so a committed or
                        * logged size never covers data not written yet
                        * (btrfs's disk_i_size) */
    uint64_t nblocks;  /* blocks referenced by EXTENT_DATA items */
    uint64_t generation;
    uint64_t flags;    /* INODE_FLAGS (format.h): COW_INODE_NODATACOW */
    uint64_t item_transid; /* INODE_TRANSID of the item its state comes
                        * from (read, or saved by this process): a reload
                        * that finds the same keeps its cached pages
                        * (file_reload_inode); 0 unknown */
    int nopen;         /* handles open on it */
    int orphan;        /* unlinked while open: freed at last close */
    /* The extent map's modified ranges (extent_map.h em_mark_modified):
     * the block-aligned ranges whose mapping changed since the last commit
     * or the last log record that holds this file, sorted and disjoint;
     * log_size: the INODE_ITEM changed; log_overflow: too many ranges to
     * track (the next sync of this file commits). */
    struct lrange *lr;
    size_t nlr, clr;
    int log_size;
    int log_overflow;
    /* The page cache (pcache.c): delalloc pages, pages in writeback,
     * pages pinned by xFetch, and the last block written (an append's
     * partial first block is merged from there, not read back). */
    struct pcache pc;
    /* Held shared by everything that instantiates a cached page (reads,
     * writes, xFetch, writeback), exclusively by what drops pages and
     * extents together (truncate, a failed write's cleanup): invariant 3.
     * Taken before store->lock, never while holding it. */
    struct cow_rwlock invalidate;
    struct oext *oes;  /* ordered extents in flight */
    int nref;          /* holders outside store->lock (the flusher) */
    int forgotten;     /* no longer in st->inodes; freed when nref drops */
    struct cow_inode *next;
};

/* A snapshot or branch (subvol.c): never freed while the store is open. */
struct cow_subvol {
    struct cow_root root;
    char name[COW_NAME_MAX + 1];
    int dead;               /* deleted */
    struct cow_subvol *next;
};

struct cow_file {
    cow_store *st;
    struct cow_inode *inode;
    char *name;
};

struct cow_store {
    struct cow_mutex lock;
    char *path;
    struct cow_dev *dev;
    int readonly;
    int failed;        /* stopped: a change failed halfway, or a flush
                        * or superblock write failed (txn_abort); set
                        * with an atomic store under store->lock, read
                        * without it by file_read's cached path */

    /* superblock state of the last commit */
    uint64_t generation;   /* last committed generation */
    uint64_t transid;      /* running transaction = generation + 1 */
    uint64_t bg_size;
    uint64_t total_bytes;
    uint8_t uuid[16];
    uint64_t ctime;
    int txn_dirty;         /* anything changed since the last commit */

    struct cow_root root_tree, extent_tree, csum_tree, fs_tree;
    /* The remap tree (objectid 9; bytenr 0 = none) and its items in memory,
     * sorted by logical address (remap.c).  Its blocks are never remapped. */
    struct cow_root remap_tree;
    struct remap_run *remap;
    size_t nremap, cremap;
    /* Physical space released by the running transaction's frees and
     * relocations (remap.c): cleared in the physical bitmaps once the
     * commit that stopped reaching it is flushed (invariant 7).  Pinned
     * runs [0, npinned_remapped) have been turned into such runs. */
    struct byte_run *ppinned;
    size_t nppinned, cppinned;
    size_t npinned_remapped;
    /* Bytes of the pinned runs (alloc_free; at most: a run taken out of
     * the list leaves them counted until the next flushed commit) */
    uint64_t pinned_bytes;
    /* Pinned runs [0, npinned_dropped) have been taken out of the one-flush
     * list of blocks written (txn_wlog_drop_freed): a later commit looks
     * at the runs pinned since only. */
    size_t npinned_dropped;
    /* What the last flushed commit freed (logical and physical runs): kept
     * out of allocation until the next flushed commit, so that the commit
     * before the newest stays whole on the device (open falls back to it
     * when the newest is torn or damaged; see alloc_unpin_all). */
    struct byte_run *cooling, *pcooling;
    size_t ncooling, ccooling, npcooling, cpcooling;
    /* With other processes (st->shared): what cooled, held until their
     * readers moved past it (alloc.c alloc_unpin_all). */
    struct held_run *held;
    size_t nheld, cheld;
    /* Reads of this process in flight with store->lock released, oldest
     * (lowest ticket) first, and the next ticket; and what was to become
     * free while they ran (gen: the ticket of the first reader that
     * cannot read it), set in the maps until every reader with a lower
     * ticket has ended (alloc_reader_end). */
    struct cow_reader *readers, *readers_last;
    uint64_t rd_next;
    struct held_run *rdheld;
    size_t nrdheld, crdheld;
    /* pinned[0, npinned_recorded) and ppinned[0, nppinned_recorded) are in
     * the shared pending frees already (alloc_record_frees) */
    size_t npinned_recorded, nppinned_recorded;
    /* With a shared state: the running transaction's changes to the free
     * space map, in order, for the shared allocation journal
     * (alloc_record_ops at commit); xops_complex: it also did what the
     * journal cannot say (groups added or retyped, physical runs of a
     * relocation), so the journal is invalidated instead. */
    struct alloc_op *xops;
    size_t nxops, cxops;
    int xops_complex;
    /* The free space map is this process's own of generation xbasis_gen
     * (0: none), kept since it let go of the ownership with the shared
     * allocation journal at index xbasis_idx (xproc.c). */
    uint64_t xbasis_gen, xbasis_idx;
    uint64_t loaded_bytes_used;  /* the loaded superblock's bytes_used */
    uint64_t loaded_total_bytes; /* and its total_bytes */
    int keep_alloc; /* commit_load keeps the free space map (xproc.c) when
                     * the groups are unchanged, else clears this */
    uint64_t file_bytes; /* the container file's size as last grown or
                          * shrunk (0: unknown, ask the device) */
    uint64_t sb_device_bytes; /* device_bytes of the last superblock written */
    /* The largest device_bytes of a superblock a crash may go back to (the
     * last flushed commit's, and every commit's since): relocation never
     * cuts the file below it (reloc.c trim).  0 until the first load or
     * commit. */
    uint64_t cut_floor;
    /* Taken around dev->grow and dev->shrink (after store->lock when both
     * are held): relocation cuts the file without store->lock, and a grow
     * meanwhile waits for the cut rather than being undone by it. */
    struct cow_mutex resize_lock;
    uint64_t alloc_soft_end; /* while a balance runs: allocation prefers
                              * groups below this (bytes; 0: none) */
    struct cow_mutex balance_lock; /* one balance at a time (reloc.c) */

    struct eb_cache cache;

    struct bgroup *bgs;
    size_t nbgs, cbgs;
    /* Sums over bgs (bgsum.h): free blocks of the groups the file covers
     * by type (index: flags, COW_BG_DATA .. COW_BG_MIXED), and the used
     * bytes of groups with COW_BG_METADATA; valid unless sums_stale or
     * file_bytes moved (then summed again at the next use). */
    uint64_t sum_free[4];
    uint64_t sum_meta_used;
    int sums_stale;
    uint64_t sums_file_bytes; /* file_bytes when they were summed */
    uint64_t data_cursor, meta_cursor; /* next-fit allocation hints (bytes) */
    /* The running transaction's metadata chunk: [mchunk_next, mchunk_end)
     * is reserved (set in the bitmap, not counted as used) and handed out in
     * order to new tree blocks, so a commit's tree blocks are contiguous. */
    uint64_t mchunk_next, mchunk_end;

    struct byte_run *pinned; /* freed in the running transaction */
    size_t npinned, cpinned;

    struct dref *drefs;        /* pending refcount changes, unsorted: one
                                * per extent, [0, ndrefs) */
    size_t ndrefs, cdrefs;
    struct hmap dref_map;      /* the same by bytenr (refs.c) */

    struct cow_inode *inodes;  /* inodes with open handles */
    struct cow_subvol *subvols; /* snapshots and branches (subvol.c) */

    /* Blocks written by the running transaction, with the crc32c of each
     * (for a one-flush commit's list); wlog_overflow once more than
     * COW_ONE_FLUSH_MAX_BLOCKS were written. */
    struct block_run *wruns;
    size_t nwruns, cwruns;
    uint32_t *wcrcs;
    size_t nwcrcs, cwcrcs;
    int wlog_overflow;
    uint64_t wlog_notes; /* txn_note_written calls, ever: a flush empties
                          * the list only if none came after it started */

    /* Flushes (txn.c), numbered in the order they start: a flush numbered
     * N makes durable everything written before N was taken.  A sync
     * waits for flush_done >= the number it needs (txn_flush_wait), with
     * store->lock released while the device flushes; syncs that need the
     * same flush share it (group commit).  flush_applied: the flush whose
     * durable point (durable_slot, durable_gen, durable_log, ...) is the
     * one in effect.  flush_running: a flush runs with store->lock
     * released; commits wait for it (txn_flush_quiesce).  flush_cond: a
     * flush completed or failed (waits on store->lock). */
    uint64_t flush_started, flush_done, flush_applied;
    int flush_running;
    pthread_cond_t flush_cond;

    struct pc_lru lru;      /* clean pages kept (pcache.c) */
    /* Space reservation (space.c). */
    uint64_t reserved;      /* data blocks reserved: dirty pages + in-flight
                             * ordered extents */
    uint64_t oe_alloc;      /* ... of which already allocated (in flight) */
    /* Delayed allocation (pcache.c). */
    uint64_t ndirty;        /* dirty pages, all files */
    uint64_t dirty_limit;   /* bytes of dirty pages before writers write back */
    int flush_wanted;       /* the flusher should write everything back */
    /* Ordered extents (ordered.c). */
    uint64_t noes;          /* ordered extents in flight, all files */
    uint64_t oe_blocks;     /* ... and the blocks they write */
    pthread_cond_t oe_cond; /* an ordered extent completed (waits on lock) */

    uint64_t ncommits;
    uint64_t ncommits_one_flush;
    struct cow_stats stats;

    /* The log (log.c).  Area k goes with superblock copy k; records build on
     * the last commit (superblock copy last_slot, log_id). */
    uint64_t log_area[COW_SB_COPIES];
    uint32_t log_blocks;   /* length of each area, blocks (0: no areas) */
    uint64_t log_id;       /* log_id of the last commit */
    uint32_t log_next;     /* blocks used in the current area */
    uint64_t log_seq;      /* sequence number of the last record */
    int log_blocked;       /* a change the log cannot express is pending */
    int log_unflushed;     /* records written since the last flush */
    int data_unflushed;    /* data overwritten in place (COW_FE_NODATASUM)
                            * since the last flush: a sync flushes even
                            * with nothing to log */
    uint64_t inplace_writes, nodatasum_writes; /* counts of the two
                            * below, for a flush's durable point (txn.c) */
    int nodatasum_unflushed; /* a NODATASUM extent written to new space
                            * since the last flush: the one-flush list does
                            * not name it (an overwrite in place would make
                            * the list wrong once the extent is old), so
                            * the next commit flushes it before its
                            * superblock (invariant 13) */
    uint64_t log_flush_need; /* the flush number (txn_flush_need) the last
                              * record needs to be durable */
    uint64_t log_csum_probes; /* slots the de-duplication of a record's
                               * csum items examined, all records (tests
                               * check that it grows linearly) */
    uint32_t log_durable;  /* records of the current log known flushed */
    /* What open must find (docs/DESIGN.md, "Damage a crash cannot
     * cause"): at least replay_min records of the log (a torn newer
     * superblock, generation replay_min_gen, says so; 0 = no such copy). */
    uint32_t replay_min;
    uint64_t replay_min_gen;
    char sb_rejected[160]; /* why open did not use the newest copy, or "" */
    int sb_old_version;    /* bit i: superblock copy i is of an older
                            * format version (open read it, no commit has
                            * rewritten it yet; commit_upgrade) */
    int replaying;         /* replay_log runs (a read-only store changes
                            * its trees in memory then, never on disk) */
    uint64_t rng;          /* state for log_id values */

    /* Background commits (store.c).  commit_ms 0 = off. */
    pthread_t committer;
    int committer_running;
    int committer_stop;
    pthread_cond_t committer_cond; /* CLOCK_MONOTONIC; waits on lock */
    unsigned commit_ms;
    uint64_t last_commit_ns;       /* CLOCK_MONOTONIC time of the last commit */
    /* The background relocator and its configuration (relocator.c): set
     * at open, never changed; its fields say what protects them. */
    struct relocator *relocator;
    /* Several processes (xproc.c, shared.c): the container's shared state
     * (NULL: a device no other process can open, such as a test's
     * memdev), set at open, cleared at close.  Protected by store->lock:
     * seen_seq (the publication this process last loaded or made),
     * published_gen (the generation it last published), own_users (calls
     * between xproc_enter and xproc_leave), acquiring (a thread is
     * becoming the owner), disowning (the owner is publishing to let go);
     * own_cond (waits on store->lock) is signalled when the last two
     * clear.  Those three are also read and own_users changed without the
     * lock, atomically, by xproc_enter's and xproc_leave's fast path: all
     * their accesses are atomic (sequentially consistent). */
    struct cow_shared *shared;
    uint64_t open_commits; /* ncommits when open was done: close gives
                            * space back only after changes (store.c) */
    uint64_t seen_seq;
    uint64_t published_gen;
    uint64_t inplace_epoch; /* shared_barrier_epoch() when this process last
                             * loaded or let go: a later barrier makes its
                             * view unfit for writes in place (inplace.c) */
    uint64_t inplace_seen;  /* shared_inplace_seq() its cached nodatacow
                             * pages are as new as (inplace.c) */
    int view_load;          /* commit_load builds no free space map: a
                             * reload of a view (xproc.c reload) */
    int view_partial;       /* the last reload was such a view: the free
                             * space map is empty (cow_store_df loads it) */
    int unpinned;           /* this process pins no generation (xproc_unpin):
                             * its next read refreshes first */
    int view_users;         /* reads in progress through entry.c
                             * (xproc_view_begin): no unpin meanwhile */
    uint64_t load_published; /* commit_load takes the superblock of this
                              * generation as whole without reading its
                              * commit list: another process published it
                              * (xproc.c reload; 0: none) */
    int own_users;
    int acquiring;
    int disowning;
    pthread_cond_t own_cond;
    int last_one_flush; /* the last commit had a commit list (commit_seal) */
    int durable_slot;   /* superblock copy of the last flushed commit */
    int last_slot;      /* superblock copy of the last commit */
    int unflushed;      /* commits since the last flushed one */
    /* The last flushed commit (durable_slot holds it) and how many records
     * of its log were flushed: a superblock records them as
     * prev_generation and prev_log_records. */
    uint64_t durable_gen;
    uint32_t durable_log;
};

/* ---- cache.c ---- */
int cache_init(struct eb_cache *c);
void cache_destroy(struct eb_cache *c);
struct eb *cache_find(struct eb_cache *c, uint64_t bytenr);
/* Reads, verifies and caches the tree block at BYTENR: on its first read,
 * check_tree_block() (validate.h: crc32c, magic, own address, structure,
 * key order, every item); then, if GEN != 0, the generation, and if
 * LEVEL >= 0, the level the parent expects.  A block that fails is not
 * cached.  Errors: COW_ECORRUPT (naming the block and field), COW_EIO_READ,
 * COW_ENOMEM. */
int cache_read(cow_store *st, uint64_t bytenr, uint64_t gen, int level, struct eb **out);
/* A new, zeroed, dirty block at BYTENR (freshly allocated). */
int cache_new(cow_store *st, uint64_t bytenr, struct eb **out);
void cache_drop(struct eb_cache *c, uint64_t bytenr);
void cache_mark_dirty(struct eb_cache *c, struct eb *e);

/* ---- alloc.c ---- */
/* Allocates exactly N contiguous metadata blocks (log areas), growing the
 * container if needed.  COW_ENOSPC, COW_ENOMEM, COW_EIO_TRUNCATE. */
int alloc_contig_meta(cow_store *st, uint64_t n, uint64_t *bytenr);
/* The same, only in free space that ends below BELOW and inside the file
 * (never growing it): COW_ENOSPC when there is none. */
int alloc_contig_meta_below(cow_store *st, uint64_t n, uint64_t below, uint64_t *bytenr);
/* Replay, before it changes any tree: the group holding a logged data
 * extent at BYTENR, empty and of another type in the last commit, is given
 * the data type it had at run time (retype_empty changes a type without a
 * commit), so that the tree blocks replay writes do not go there first
 * (then the group would no longer be empty).  Lock held. */
void alloc_retype_for_data(cow_store *st, uint64_t bytenr);
/* Claims [bytenr, +len) for a data extent that a log record points at
 * (replay): it must lie in one DATA group and be free.  COW_ECORRUPT. */
int alloc_claim_data(cow_store *st, uint64_t bytenr, uint64_t len);
/* Allocates up to WANT contiguous blocks (at least 1); *bytenr and *got
 * (blocks).  META selects the metadata cursor.  Grows the container by
 * whole block groups when nothing is free.  Errors: COW_ENOSPC, COW_ENOMEM,
 * COW_EIO_TRUNCATE. */
int alloc_blocks(cow_store *st, uint64_t want, int meta, uint64_t *bytenr, uint64_t *got);
/* Marks [bytenr, +len) allocated (open-time rebuild).  COW_ECORRUPT if a
 * block is already marked or outside every group. */
int alloc_mark_used(cow_store *st, uint64_t bytenr, uint64_t len);
/* Frees [bytenr, +len): used bytes drop now; the blocks stay allocated
 * (pinned) until the running transaction commits (invariant 7). */
int alloc_free(cow_store *st, uint64_t bytenr, uint64_t len);
/* 1 when the space freed since the last flushed commit (pinned: no one
 * may reuse it before that commit, invariant 7; the running transaction's
 * dropped references included) passes
 * COW_PRESSURE_MIN_BYTES and an eighth of the container: an fsync then
 * makes a flushed commit rather than a log record (file.c file_sync), so
 * that freed space comes back while a workload keeps syncing through the
 * log (WAL mode checkpoints every few MiB; the log alone would keep it
 * pinned until the log area fills or the commit interval passes, and the
 * container would grow by what it frees meanwhile).  Lock held. */
int alloc_space_pressure(cow_store *st);
#define COW_PRESSURE_MIN_BYTES (4ull << 20)
/* Blocks in use in metadata groups (tree blocks, log areas, superblocks). */
uint64_t alloc_meta_used_blocks(cow_store *st);
/* 1 if every block of [bytenr, +len) is free in the allocation map (and
 * inside one block group), else 0. */
int alloc_is_free(cow_store *st, uint64_t bytenr, uint64_t len);
/* 1 if every block of [bytenr, +len) is set in the logical allocation
 * map (used, pinned or reserved) and inside one block group, else 0. */
int alloc_is_used(cow_store *st, uint64_t bytenr, uint64_t len);
/* Returns never-referenced space straight to the free map (a data run that
 * was allocated by this call and never entered any tree). */
void alloc_unalloc(cow_store *st, uint64_t bytenr, uint64_t len);
/* Returns the unused rest of the metadata chunk to free space (after a
 * commit). */
void alloc_release_chunk(cow_store *st);
/* The least file size the container needs now: the end of the highest
 * block set in any physical bitmap (used, pinned, reserved), bytes, at
 * least the two superblocks.  Lock held. */
uint64_t alloc_device_bytes(cow_store *st);
/* Blocks set in the physical bitmaps (everything the file holds). */
uint64_t alloc_physical_blocks(cow_store *st);
/* Physical-only changes for remap runs (remap.c, reloc.c), [bytenr,
 * +len) inside one group: set (a remap target, or the load of one),
 * clear now (a target never referenced), or pin (cleared at the next
 * unpin: the old place of a relocated run, a freed run's place).
 * alloc_phys_set returns COW_ECORRUPT if a block is already set. */
int alloc_phys_set(cow_store *st, uint64_t bytenr, uint64_t len);
void alloc_phys_clear(cow_store *st, uint64_t bytenr, uint64_t len);
int alloc_phys_pin(cow_store *st, uint64_t bytenr, uint64_t len);
/* Allocates up to WANT physically free blocks (at least 1) below LIMIT
 * bytes, lowest address first, outside groups being relocated, for a
 * remap target; sets them in the physical bitmap.  Blocks a tree block
 * could take (free in both bitmaps of a metadata group, not a mixed one)
 * come last, and only while more than KEEP_META blocks tree blocks can
 * take stay inside the file.  *bytenr,
 * *got (blocks).  COW_ENOSPC if there is none.  Lock held. */
int alloc_phys_target(cow_store *st, uint64_t want, uint64_t limit, uint64_t keep_meta,
                      uint64_t *bytenr, uint64_t *got);
/* Free physical blocks below LIMIT bytes outside relocating groups. */
uint64_t alloc_phys_free_below(cow_store *st, uint64_t limit);
/* Metadata blocks free to take now (not pinned or cooling either) that
 * the file covers (metadata and mixed groups wholly inside it, and the
 * metadata chunk's rest), after turning an empty group inside it into
 * metadata if there were fewer than WANT, and then, if still fewer, data
 * groups below EXCEPT that hold nothing of their own (only blocks
 * remapped from other groups): what tree blocks can take without the
 * file growing, counted up to WANT at most.  Group EXCEPT (an index; the
 * one about to be relocated) is not counted.  Lock held. */
uint64_t alloc_meta_room_inside(cow_store *st, uint64_t want, size_t except);
/* Makes sure the container file covers [0, END) with space reserved
 * (growing it to the end of END's group).  COW_ENOSPC, COW_EIO_*. */
int alloc_back(cow_store *st, uint64_t end);
/* After a flushed commit: what the commit before it freed becomes free,
 * and what this one freed waits for the next (cooling).  With a shared
 * state, what cooled is held (st->held, and the shared state's pending
 * frees, for the next owner) until every live reader of another process
 * reads this generation or a later one. */
void alloc_unpin_all(cow_store *st);
/* A read about to use, with store->lock released, blocks it resolved under
 * the lock (file.c file_read, extent_map.h em_read_plan): until
 * alloc_reader_end(RD), no space that becomes free from now on (freed
 * and cooled, invariant 7; held for other processes, invariant 9; the
 * old place of a relocated run) is handed out again: it stays set in
 * the maps, in st->rdheld, until every reader that began before it was
 * to become free has ended.  The idea is LMDB's reader table (a reader
 * pins the transaction it reads), within one process.  RD lives on the
 * caller's stack until alloc_reader_end.  Lock held; cannot fail. */
void alloc_reader_begin(cow_store *st, struct cow_reader *rd);
/* The read RD ended: what only it and older readers kept is released.
 * Lock held. */
void alloc_reader_end(cow_store *st, struct cow_reader *rd);
/* A new owner, after its reload: keeps out of allocation every block the
 * shared state's pending frees name that the rebuilt maps show free (the
 * last owner's frees that readers may still read), in st->held with the
 * entry's generation.  COW_ENOMEM.  Lock held. */
int alloc_hold_shared_frees(cow_store *st);
/*
 * A writer on a device whose readers are on other clients (RADOS: bdev.h
 * readers_oldest), at its open: what the writers before it freed and held
 * for those readers is not recorded anywhere it can read, so every block
 * free now is held, tagged GEN (the generation it loaded), until every
 * reader's pin is at GEN or later (alloc_hold.c release_held).  Until then
 * it allocates only past the container's end.  Lock held.  COW_ENOMEM.
 */
int alloc_hold_free(cow_store *st, uint64_t gen);
/* With a shared state, just before a commit's superblock is written: what
 * this and the commits since the last flushed one freed (the pinned runs,
 * logical and physical, not recorded yet) goes into the shared pending
 * frees, tagged with the commit's generation (st->transid), so that a
 * next owner, even after this one dies just after the superblock, keeps
 * it from other processes' readers of older generations (invariant 9).
 * A commit that then fails or never happens leaves entries of blocks still
 * in use: holding back more is safe (alloc_hold_shared_frees holds only
 * blocks its map finds free).  Takes the shared mutex.  Lock held. */
void alloc_record_frees(cow_store *st);
/* With a shared state, just before the commit's superblock is written:
 * appends the running transaction's changes to the free space map
 * (st->xops) to the shared allocation journal, tagged with its generation
 * (st->transid), or invalidates the journal if the transaction did what
 * it cannot say (st->xops_complex, or the container has relocated
 * blocks); then forgets them.  Takes the shared mutex.  Lock held. */
void alloc_record_ops(cow_store *st);
/* A returning owner whose map is its own of generation st->xbasis_gen
 * (journal index st->xbasis_idx) applies what the commits since did, from
 * the shared journal: their allocations set in the maps (a block of this
 * process's own pinned, cooling or held runs that another owner reused
 * leaves those lists), their frees held (st->held, with their
 * generation, as alloc_hold_shared_frees does), the groups' used bytes.
 * The caller holds the shared mutex.  Returns COW_OK; 1 when the journal
 * no longer has every entry or does not fit the map (the caller rebuilds
 * the map in full); COW_ENOMEM.  Lock held. */
int alloc_apply_journal(cow_store *st);
/* Makes sure at least DATA blocks are free in data groups and META in
 * metadata groups, growing the container if needed.  COW_ENOSPC. */
int alloc_reserve(cow_store *st, uint64_t data, uint64_t meta);
/* Grows the container by one block group of type FLAGS (COW_BG_*). */
int alloc_add_group(cow_store *st, uint64_t flags);
void alloc_destroy(cow_store *st);
/* Sets up in-memory groups for TOTAL bytes (open; no device change). */
int alloc_init_groups(cow_store *st, uint64_t total);

/* ---- btree.c ---- */
int bt_lookup(cow_store *st, struct cow_root *r, const struct cow_key *key, void *buf,
              size_t bufsz, size_t *size);
/* First item with key >= KEY (GE) or last with key <= KEY (LE).  Copies the
 * key to *found and up to BUFSZ data bytes to BUF.  COW_ENOENT if none. */
int bt_seek_ge(cow_store *st, struct cow_root *r, const struct cow_key *key,
               struct cow_key *found, void *buf, size_t bufsz, size_t *size);
int bt_seek_le(cow_store *st, struct cow_root *r, const struct cow_key *key,
               struct cow_key *found, void *buf, size_t bufsz, size_t *size);
/* Inserts KEY (COW_EEXIST if present). */
int bt_insert(cow_store *st, struct cow_root *r, const struct cow_key *key, const void *data,
              size_t len);
/* Inserts or replaces KEY. */
int bt_put(cow_store *st, struct cow_root *r, const struct cow_key *key, const void *data,
           size_t len);
/* Deletes KEY (COW_ENOENT if absent). */
int bt_delete(cow_store *st, struct cow_root *r, const struct cow_key *key);
/* Creates an empty tree (one empty leaf) in the running transaction. */
int bt_create(cow_store *st, struct cow_root *r);
/* Drops the subvolume tree R (a deleted snapshot or branch) in the running
 * transaction: Rodeh's deletion, which frees (at commit) exactly the blocks
 * and data extents no other tree shares, and only reads those.  R's
 * bytenr becomes 0.  Errors of reading and of the refcounts. */
int bt_drop_tree(cow_store *st, struct cow_root *r);
/* Makes R's blocks that the running transaction wrote copy-on-change
 * until the commit (eb.shared), for a clone of R made in the running
 * transaction: both trees then reach them, so neither may change them in
 * place.  Btrfs forces COW on a root snapshotted by the running
 * transaction the same way (BTRFS_ROOT_FORCE_COW).  Only walks the
 * blocks written by the running transaction; cannot fail. */
void bt_mark_shared(cow_store *st, const struct cow_root *r);
/* Calls CB(arg, eb, level) for every block of the tree (pre-order). */
int bt_walk_blocks(cow_store *st, struct cow_root *r,
                   int (*cb)(cow_store *st, void *arg, struct eb *e), void *arg);
/* 1 if item I of leaf B is an EXTENT_DATA item pointing at a data extent
 * (one reference to it: the rule every refcount of data follows), with
 * the extent's start and length (disk bytes) in *bytenr and *len; else 0. */
int bt_leaf_extent(const uint8_t *b, unsigned i, uint64_t *bytenr, uint64_t *len);
/* Frees a tree block no longer referenced from its tree. */
int bt_free_block(cow_store *st, struct cow_root *r, uint64_t bytenr, unsigned level);

/* ---- refs.c (extent tree: refcounts, block groups) ---- */
int refs_add(cow_store *st, uint64_t bytenr, uint64_t len, int is_data, unsigned level,
             int64_t delta);
/* Current refcount of an extent: extent tree plus pending changes. */
int refs_get(cow_store *st, uint64_t bytenr, int is_data, uint64_t *refs);
/* *known = 1 if the extent at BYTENR has an item or a pending change (an
 * extent allocated by the running transaction has one from the start). */
int refs_known(cow_store *st, uint64_t bytenr, int *known);
/* *LEN = the length in bytes of the extent at BYTENR, from its pending
 * change or its EXTENT_ITEM's key (4096 for a tree block's METADATA_ITEM).
 * COW_ENOENT if it has neither; COW_ECORRUPT, I/O errors.  Lock held. */
int refs_extent_len(cow_store *st, uint64_t bytenr, uint64_t *len);
/* The transaction that allocated extent BYTENR (its EXTENT_ITEM's
 * generation; the running one if it has no item yet).  Lock held. */
int refs_generation(cow_store *st, uint64_t bytenr, uint64_t *gen);
/* Applies pending changes to the extent tree (freeing extents at 0). */
int refs_run(cow_store *st);
/* Writes BLOCK_GROUP_ITEMs for groups whose used changed; loops to a fixed point. */
int refs_update_block_groups(cow_store *st);
void refs_reset(cow_store *st);

/* ---- log.c (the fast fsync) ---- */
/* Returned by log_write when the log cannot take the record (not an error:
 * the caller commits instead). */
#define COW_LOG_FULL 1
/* 1 if the log can take records now (areas present, nothing pending that
 * it cannot express, read-write, not failed). */
int log_usable(cow_store *st);
/* Writes one record holding the changes of the N inodes V (which must all
 * be em_modified) and, if FLUSH, flushes the device once with the lock
 * held (txn_flush; without FLUSH, st->log_flush_need is the flush number
 * that makes the record durable: txn_flush_wait).  Returns
 * COW_OK, COW_LOG_FULL (nothing written: the caller commits), or an I/O
 * error (COW_EIO_WRITE, or COW_EIO_FLUSH after which the store is failed),
 * COW_ENOMEM, COW_ECORRUPT. */
int log_write(cow_store *st, struct cow_inode **v, size_t n, int flush);
/* After a commit: the log is empty, every inode clean. */
void log_reset(cow_store *st);
/* The size of the log areas, in blocks, for what ST holds now (format.h:
 * bytes in use but the log areas', and for the largest the bytes its
 * groups cover).
 * SHRINKING: the size relocation takes them down to, which goes down a
 * step only below half of what the step up needs, so that a container
 * near a step does not move its log back and forth.  Lock held. */
uint32_t log_area_blocks(cow_store *st, int shrinking);
/* Allocates the two log areas (a new container, or one made before they
 * existed), of the size for what it holds (format.h: 4 blocks each under
 * COW_LOG_SMALL_AT bytes, 16 under COW_LOG_GROW_AT, then 64).  Errors of
 * alloc_contig_meta. */
int log_alloc_areas(cow_store *st);
/* In a commit (before its block group items): once the container holds
 * enough for the next size up (format.h), moves the log to new areas of
 * that size; the old ones are freed (pinned until the commit is flushed).
 * No-op otherwise, and while a balance runs.  Errors of alloc_contig_meta
 * and alloc_free (the commit aborts). */
int log_grow_areas(cow_store *st);
/* Relocation: moves the two log areas to the lowest free contiguous
 * metadata space if it ends below BELOW (bytes), in the running
 * transaction (records after its commit go to the new areas; the old
 * ones are freed, pinned until that commit is flushed), with smaller
 * areas when the container holds under half of what their size needs.
 * Leaves them where they are otherwise.  Errors of alloc_contig_meta and
 * alloc_free. */
int log_move_areas(cow_store *st, uint64_t below);
/* The next log_id (random). */
uint64_t log_new_id(cow_store *st);

/* ---- names.c ---- */
/* Why the DIR_ITEM data BUF (SIZE bytes) under key offset HASH is not
 * valid (a static string), or NULL: every entry parses, names are 1..255
 * bytes without '/' or NUL and hash to HASH, inodes are files, no name
 * twice. */
const char *names_item_invalid(const uint8_t *buf, size_t size, uint64_t hash);
/* Checks the namespace of subvolume tree R as fsck does (names.c's
 * header): every DIR_ITEM valid, every name on an existing inode without
 * an ORPHAN_ITEM, one name per inode, every inode named or orphaned.
 * Open calls it so that a damaged name is an error, never a file that
 * seems not to exist.  Errors: COW_ECORRUPT (naming the subvolume and
 * inode or item), COW_ENOMEM, I/O errors. */
int names_check(cow_store *st, struct cow_root *r);

/* ---- txn.c ---- */
/* Flushes the device with store->lock held, counting and numbering it
 * (flush_started, flush_done).  COW_EIO_FLUSH. */
int store_flush(cow_store *st);
/* A flush outside a commit with store->lock held (a commit's, or one
 * before a reload): makes the last commit and everything written so far
 * durable.  On failure the store is failed (what reached the device is
 * unknown).  COW_EIO_FLUSH. */
int txn_flush(cow_store *st);
/* The number of the first flush that will cover everything written until
 * now (a flush not started yet).  Lock held. */
uint64_t txn_flush_need(cow_store *st);
/* Returns once a flush numbered NEED or later has completed: waits for a
 * flush in flight, or runs one itself with store->lock released during
 * the device flush (concurrent syncs share flushes: a sync's record
 * written while a flush runs waits for the next one, which one of the
 * waiting syncs runs for all).  What the flush covered becomes durable
 * (durable_slot, durable_log, ... as txn_flush's) unless a newer flush
 * said more already.  On a failed flush the store stops (fsyncgate: what
 * reached the device is unknown) and every waiter fails.  Lock held on
 * entry and return, released meanwhile.  The idea is the journal commit
 * of ext4/jbd2 shared by fsyncs, and SQLite's WAL group commit.
 * Errors: COW_EIO_FLUSH (the device's, or a failed flush of another
 * thread). */
int txn_flush_wait(cow_store *st, uint64_t need);
/* Waits until no flush runs with store->lock released (commits: the
 * superblock copy a commit writes follows from what is durable).  Lock
 * held, released while waiting. */
void txn_flush_quiesce(cow_store *st);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t cow_mono_ns(void);
/* A failure in the middle of a change to the trees (WHY, with its message
 * set): stops the store, since the running transaction holds what other
 * handles wrote and were told succeeded and cannot be undone alone (btrfs:
 * btrfs_abort_transaction, the file system goes read-only).  Every later
 * change and read fails with COW_EFAILED; the container keeps its last
 * commit and log, which reopening recovers.  Returns WHY, its message
 * extended.  Lock held. */
int txn_abort(cow_store *st, int why);
/* Before a change: fails with COW_EROFS or COW_EFAILED. */
int txn_begin_change(cow_store *st);
/* Records that the running transaction wrote N blocks at BYTENR whose
 * crc32c values are CRCS (for the one-flush commit list). */
void txn_note_written(cow_store *st, uint64_t bytenr, uint64_t n, const uint32_t *crcs);
void txn_wlog_reset(cow_store *st);
/* After a flush: the last commit and every block written so far are
 * durable (durable_slot, durable_gen, durable_log; the written-block list
 * starts again). */
void txn_now_durable(cow_store *st);
/* Before a commit's superblock: drops from the written-block list the runs
 * freed again in this transaction (pinned space), which the one-flush
 * list need not cover. */
void txn_wlog_drop_freed(cow_store *st);
/* ---- subvol.c ---- */
/* Open: deletes the subvolumes left INCOMPLETE by a crash (running
 * transaction; the store stops on error: txn_abort).  Lock held. */
int subvol_drop_incomplete(cow_store *st);


/* ---- file.c ---- */
/* For replay.c: the open inode INO of the live subvolume, read in if
 * needed (COW_ECORRUPT if it does not exist); and dropping those that no
 * handle holds once replay is done.  Lock held. */
struct cow_inode;
int file_inode_get(cow_store *st, uint64_t ino, struct cow_inode **out);
void file_inode_forget_unused(cow_store *st);
/* Writes back every open file's dirty pages (pc_writeback on each, the
 * delayed allocations becoming ordered extents); called without
 * store->lock: takes each inode's invalidate lock (shared), then
 * store->lock, as every writer does (lock order in docs/DESIGN.md).
 * Errors: the first error of a file's writeback (COW_ENOSPC, I/O errors;
 * the pages stay dirty), COW_ENOMEM. */
int file_writeback_all(cow_store *st);
int file_name_valid(const char *name);
/* NAME's inode number in the subvolume tree R.  COW_ENOENT. */
int file_lookup(cow_store *st, struct cow_root *r, const char *name, uint64_t *ino);
/* Frees the inodes of R that were unlinked while open (ORPHAN_ITEMs). */
int file_cleanup_orphans(cow_store *st, struct cow_root *r);
/* Removes NAME from the subvolume tree R (an open file becomes an orphan,
 * freed at its last close).  COW_ENOENT if it is not there.  Lock held;
 * on another error the store stopped (txn_abort). */
int file_unlink_in(cow_store *st, struct cow_root *r, const char *name);
/* Points the open inode IN, in the subvolume tree whose root was just
 * replaced (cow_subvol_restore), at the file NAME of that tree, creating
 * it empty if missing: its cached pages are dropped and its size, block
 * count and generation read again.  Lock and IN's invalidate lock (excl)
 * held; the caller stops the store (txn_abort) on error. */
int file_rebind(cow_store *st, struct cow_inode *in);
/* After a reload (xproc.c): points the open inode IN at what its name
 * names in its tree as loaded now (another process may have written,
 * truncated, or removed and made again the file), drops its cached pages,
 * and rereads its size and block count.  A name that is gone leaves IN an
 * empty orphan (reads see no bytes; its last close frees nothing).  Its
 * invalidate lock held exclusively, store->lock held, nothing of it
 * unwritten.  Errors: the tree's (COW_ECORRUPT, COW_EIO_READ, COW_ENOMEM). */
int file_reload_inode(cow_store *st, struct cow_inode *in);
/* cow_file_open() in the subvolume tree R (which must stay allocated while
 * files are open in it). */
/* The bodies of cow_file_write, _truncate, _preallocate, _sync,
 * cow_unlink, cow_rename and cow_file_close (store/entry.c makes this
 * process the container's owner around the ones that change it, then
 * calls these).  Errors: as the public functions say (store.h). */
int file_write(cow_file *f, const void *buf, size_t len, uint64_t off);
int file_truncate(cow_file *f, uint64_t size);
int file_preallocate(cow_file *f, uint64_t end);
int file_set_nodatacow(cow_file *f);
/* cow_file_grow (store.h).  Takes the invalidate lock shared, then
 * store->lock. */
int file_grow(cow_file *f, uint64_t end);
int file_nodatacow(cow_file *f, int *yes);
/* Drops the clean cached pages of every open nodatacow file: another
 * process's overwrites in place change their bytes with no commit to say
 * so (xproc.c calls this when the process stops being the owner).
 * store->lock held. */
void file_forget_nodatacow(cow_store *st);
int file_sync(cow_file *f);
int file_unlink(cow_store *st, const char *name);
int file_rename(cow_store *st, const char *from, const char *to);
void file_close(cow_file *f);
/* the bodies of cow_file_read, cow_file_size, cow_file_fetch and
 * cow_exists (store/entry.c wraps them: xproc_view_begin) */
int file_read(cow_file *f, void *buf, size_t len, uint64_t off, size_t *nread);
int file_size(cow_file *f, uint64_t *size);
int file_fetch(cow_file *f, uint64_t off, size_t len, void **pp);
int file_exists(cow_store *st, const char *name, int *exists);
int file_open_in(cow_store *st, struct cow_root *r, const char *name, int create,
                 cow_file **out);
void file_drop_inodes(cow_store *st);

/* ---- subvol.c: the bodies of the cow_subvol_* functions that change
 * the container (store/entry.c wraps them; errors as store.h says) ---- */
int subvol_create_ex(cow_store *st, const char *name, int kind, const char *source,
                     const char *drop, int incomplete);
int subvol_finish(cow_store *st, const char *name, int kind);
int subvol_restore(cow_store *st, const char *target, const char *source);
int subvol_delete(cow_store *st, const char *name);
int subvol_unlink(cow_store *st, const char *subvol, const char *name);
int subvol_file_open(cow_store *st, const char *subvol, const char *name, int create,
                     cow_file **out);
int subvol_exists(cow_store *st, const char *subvol, const char *name, int *exists);

/* ---- pcache.c (page cache, delayed allocation) ---- */
/* Initialises IN's page cache (its clean pages go on ST's LRU) and
 * invalidate lock (a new inode).  COW_ENOMEM. */
int pc_init(cow_store *st, struct cow_inode *in);
/* Frees every page (pinned ones too: only when the inode goes away),
 * taking them off the LRU.  store->lock held, or no other thread left. */
void pc_destroy(struct cow_inode *in);
/* Drops IN's clean cached pages that nothing holds (not dirty, not in
 * writeback, not pinned), the LRU's and the ones kept for the next
 * partial write alike: their bytes may have changed on the device behind
 * the cache (a nodatacow file rewritten in place by another process).
 * store->lock held; no invalidate lock needed (no page is instantiated,
 * and a reader copies pages under store->lock or pcache.lock). */
void pc_drop_clean(cow_store *st, struct cow_inode *in);
/* Sets the LRU's budget of clean pages, bytes (evicting past it).  Lock
 * held. */
void pc_set_clean_budget(cow_store *st, uint64_t bytes);
/* Reads [off, off+len) of IN (within its size) into BUF: the cached pages
 * are copied now, the rest is resolved into PLAN (extent_map.h
 * em_resolve), which the caller reads (em_read_plan), with store->lock
 * released if it keeps the blocks from reuse (alloc_reader_begin).  Needs
 * IN's invalidate lock (shared) and store->lock.  Errors of em_resolve. */
struct em_plan;
int pc_read(cow_store *st, struct cow_inode *in, uint8_t *buf, uint64_t len, uint64_t off,
            struct em_plan *plan);
/* Reads [off, off+len) bytes of IN into BUF from its cached pages alone,
 * without store->lock: 1 if every block of the range inside the size is
 * cached and up to date (then *NREAD is the bytes inside the size, and
 * BUF is zero past them), else 0 (BUF's content undefined: the caller
 * reads under store->lock, pc_read).  The pages are marked referenced
 * for the LRU (a second chance at eviction), not moved on it.  Needs IN's
 * invalidate lock (shared), which keeps out everything that changes the
 * size other than a write or a growth (they take pcache.lock for it);
 * takes pcache.lock.  The caller has checked that the cache is not stale
 * (a nodatacow file rewritten in place by another process:
 * inplace_forget_stale). */
int pc_read_cached(struct cow_inode *in, uint8_t *buf, size_t len, uint64_t off,
                   size_t *nread);
/* IN's size, bytes, read under pcache.lock: needs IN's invalidate lock
 * (either mode), not store->lock (invariant 16). */
uint64_t pc_size(struct cow_inode *in);
/* Sets IN's size to SIZE bytes under pcache.lock (a growth while readers
 * may read without store->lock: pc_read_cached).  store->lock held. */
void pc_set_size(struct cow_inode *in, uint64_t size);
/* Buffers a write as delalloc pages: reserves the blocks it newly dirties
 * (COW_ENOSPC before anything changes), grows the size.  May write back IN
 * past the dirty limit (releasing store->lock during the I/O).  Needs IN's
 * invalidate lock and store->lock.  On failure the pages it dirtied stay
 * (a short write); the caller punches what lies past the end. */
int pc_write(cow_store *st, struct cow_inode *in, const uint8_t *data, size_t len,
             uint64_t off, int flags);
/* pc_write() flags: leave the size alone and never write back (the
 * zeroing of a last block, pc_zero_tail). */
#define PC_KEEP_SIZE 0x1
/* Before IN grows past its size (a truncate up, a write past the end that
 * does not cover the last block): the bytes of its last block past the
 * size are written as zeros, since a shrink leaves them on the device as
 * they were (it needs no space).  A no-op when the size is block aligned
 * or the last block is dirty (its page holds zeros there).  Errors as
 * pc_write (COW_ENOSPC: nothing changed).  Needs IN's invalidate lock and
 * store->lock. */
int pc_zero_tail(cow_store *st, struct cow_inode *in);
/* A shrink to SIZE bytes: the cached page of the new last block, if any,
 * gets zeros past SIZE (in memory only; see pc_zero_tail).  store->lock. */
void pc_clear_past(struct cow_inode *in, uint64_t size);
/* Writes back IN's dirty pages as ordered extents and completes them;
 * store->lock is released during the device writes.  Needs IN's invalidate
 * lock (either mode) and store->lock. */
int pc_writeback(cow_store *st, struct cow_inode *in);
/* The end (bytes) of IN's highest cached page or ordered extent, 0 if none.
 * store->lock held. */
uint64_t pc_end(struct cow_inode *in);
/* Drops IN's cached pages from block index IDX on (releasing the
 * reservations of dirty ones); pinned pages are detached, not freed.  With
 * the invalidate lock held exclusively, together with the extents. */
void pc_punch(cow_store *st, struct cow_inode *in, uint64_t idx);
/* Drops IN's clean, unpinned pages in [start, end) bytes (their blocks got
 * a new mapping from outside the cache: replay). */
void pc_forget_range(struct cow_inode *in, uint64_t start, uint64_t end);
/* The invalidate lock of IN (see struct cow_inode): shared, exclusive,
 * release.  Taken before store->lock. */
void pc_lock_shared(struct cow_inode *in);
void pc_lock_excl(struct cow_inode *in);
void pc_unlock(struct cow_inode *in);
/* xFetch: a pointer to LEN bytes of IN at OFF inside one cached block,
 * pinned until pc_unfetch(); *PP NULL when the range is not inside one
 * block of the file (the caller reads instead).  Needs the invalidate
 * lock (shared) and store->lock. */
int pc_fetch(cow_store *st, struct cow_inode *in, uint64_t off, size_t len, void **pp);
void pc_unfetch(struct cow_inode *in, uint64_t off, void *ptr);
/* Recomputes the reserved and dirty counts and open inodes' block counts
 * and compares them (after every commit in debug builds).  COW_ECORRUPT
 * with a message naming the first mismatch. */
int pc_check_counts(cow_store *st);

/* ---- store.c ---- */
/* cow_store_open_dev() (a store on a device of the caller's) is in store.h. */

#endif /* COW_STORE_INT_H */
