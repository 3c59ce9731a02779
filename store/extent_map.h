/*
 * extent_map.h - a file's mapping in the trees: its EXTENT_DATA items, the
 * EXTENT_CSUM item and refcount of each data extent they point at, and the
 * INODE_ITEM that sums them up (size as written, block count).
 *
 * Who may call it: the page cache and delayed allocation (pcache.c: reads
 * of blocks not cached, where writeback puts a run), ordered extents
 * (ordered.c: completion), the log (log.c: building a record, replay) and
 * files (file.c: open, truncate, preallocation, unlink).  It calls only
 * down: the btree, refcounts, the allocator, the device, and the running
 * transaction (txn_note_written, txn_abort).  It never touches the page
 * cache: a caller that changes the mapping of blocks that may be cached
 * drops those pages itself (pc_forget_range, pc_punch).
 *
 * Preallocation: em_preallocate allocates the extents and inserts their
 * PREALLOC items (the trees' side, btrfs's btrfs_prealloc_file_range in
 * fs/btrfs/inode.c); the room it needs beside the reservations (space.h),
 * the log note and the inode item are cow_file_preallocate's (file.c), as
 * btrfs_fallocate reserves before it calls down.
 *
 * Units: file offsets and lengths in bytes, block aligned unless said
 * otherwise; block counts in COW_BLOCK_SIZE blocks.
 *
 * Locking: every function needs store->lock (asserted in debug builds).
 * Those that change the mapping of blocks a page may cache are called with
 * the inode's invalidate lock held, or at open (replay), when no page is.
 */
#ifndef COW_EXTENT_MAP_H
#define COW_EXTENT_MAP_H

#include <stdint.h>

#include "store_int.h"

/* Reads IN's INODE_ITEM (from IN->root, IN->ino) into its size, disk_size,
 * nblocks and generation.  Errors: COW_ENOENT (no such inode),
 * COW_ECORRUPT (an item of the wrong size), I/O errors. */
int em_inode_read(cow_store *st, struct cow_inode *in);

/* Writes IN's INODE_ITEM from disk_size, nblocks and generation (the
 * running transaction, mtime now) and marks the size for the log
 * (IN->log_size).  Errors of bt_put (COW_ENOSPC, COW_ENOMEM, I/O). */
int em_inode_save(cow_store *st, struct cow_inode *in);

/* Drops IN's mapping of [start, end) (bytes, block aligned; END may be
 * UINT64_MAX): items inside go, items crossing an edge are trimmed, an
 * item spanning the whole range is split in two (one more reference on
 * its extent); dropped extents lose a reference.  Updates IN->nblocks;
 * the caller saves the inode.  Errors of the trees; on one the running
 * transaction is half changed (the caller stops the store: txn_abort).
 * btrfs: btrfs_drop_extents (fs/btrfs/file.c). */
int em_drop_range(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end);

/* Inserts the EXTENT_DATA item FE (FE_ITEM_SIZE bytes, as on disk) at file
 * offset OFF of IN, adding a reference to its extent and its blocks to
 * IN->nblocks (replay: the range was dropped first).  Errors:
 * COW_ECORRUPT (FE does not parse: check_file_extent), COW_EEXIST, the
 * trees' errors.  btrfs: insert_reserved_file_extent (fs/btrfs/inode.c). */
int em_insert(cow_store *st, struct cow_inode *in, uint64_t off, const uint8_t *fe);

/* Calls CB for each EXTENT_DATA item of IN overlapping [start, end)
 * (bytes; END may be UINT64_MAX), in file order, clipped to the range
 * (item bytes as on disk, FE_ITEM_SIZE, generation the running
 * transaction).  Stops at CB's first non-zero return and returns it;
 * otherwise the trees' errors or COW_OK. */
int em_for_extents(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end,
                   int (*cb)(void *arg, uint64_t off, const uint8_t *fe), void *arg);

/* *END = the end (bytes) of IN's last EXTENT_DATA item, 0 if it has none.
 * Errors of the trees. */
int em_end(cow_store *st, struct cow_inode *in, uint64_t *end);

/* Reads [off, off+len) (bytes, any alignment, within IN's blocks) of IN
 * from its extents only, not the page cache, into BUF: every block read
 * is checked against its crc32c; holes and preallocated ranges read as
 * zeros.  Errors: COW_ECSUM (a block does not match its checksum),
 * COW_ECORRUPT (an extent without its checksums), COW_EIO_READ,
 * COW_ENOMEM.  btrfs: btrfs_lookup_csums_list + the read path's
 * verification (fs/btrfs/file-item.c, inode.c). */
int em_read(cow_store *st, struct cow_inode *in, uint8_t *buf, uint64_t len, uint64_t off);

/*
 * em_read in two steps, so that the device reads and the checksum checks
 * can run with store->lock released (file.c file_read).  A plan holds,
 * for each run of blocks of one data extent to read (at most EM_RUN_MAX
 * bytes), the crc32c of each block, where the blocks are stored (the
 * remap table's translation) and where the wanted bytes go.
 *
 * em_plan_init makes an empty plan; em_plan_free frees what it holds and
 * empties it.  em_resolve (store->lock held) zeroes BUF, then adds to P
 * the runs of [off, off+len) of IN (bytes, any alignment, within IN's
 * blocks) that extents hold (holes and preallocated ranges stay zero);
 * errors: COW_ECORRUPT (an extent without its checksums, or a bad item),
 * COW_ENOMEM, the trees' errors.  em_read_plan reads P's runs from DEV
 * and checks every block against its crc32c (invariant 6), copying the
 * wanted bytes into place; it needs no lock, but the blocks must not be
 * reused while it runs (alloc_reader_begin, or store->lock held since
 * em_resolve); errors: COW_ECSUM, COW_EIO_READ, COW_ENOMEM.  btrfs splits
 * a read the same way: btrfs_get_extent and the csum lookup
 * (btrfs_lookup_bio_sums) before the bio, the verification at its end.
 */
#define EM_RUN_MAX (64u * 1024)   /* bytes of one run */
#define EM_PLAN_INLINE 4          /* runs and segments held without malloc */
#define EM_PLAN_INLINE_CRCS 16    /* block checksums held without malloc */
struct em_seg {
    uint64_t phys; /* physical address (bytes); 0: dropped, reads as zeros */
    uint64_t len;  /* bytes */
};
struct em_run {
    uint64_t disk;    /* logical address of its first block (bytes) */
    uint64_t nblocks;
    uint64_t skip;    /* bytes of the first block before the wanted ones */
    uint8_t *dst;     /* where the LEN wanted bytes go */
    uint64_t len;
    size_t seg, nseg; /* its physical runs: segs[seg, seg + nseg) */
    size_t crc;       /* its blocks' crc32c: crcs[crc, crc + nblocks) */
    int nocsum;       /* a NODATASUM extent's: nothing to check (format.h) */
};
struct em_plan {
    struct em_run *runs;
    size_t nruns, cruns;
    struct em_seg *segs;
    size_t nsegs, csegs;
    uint32_t *crcs;
    size_t ncrcs, ccrcs;
    struct em_run runs_inl[EM_PLAN_INLINE];
    struct em_seg segs_inl[EM_PLAN_INLINE];
    uint32_t crcs_inl[EM_PLAN_INLINE_CRCS];
};
void em_plan_init(struct em_plan *p);
void em_plan_free(struct em_plan *p);
int em_resolve(cow_store *st, struct cow_inode *in, uint8_t *buf, uint64_t len, uint64_t off,
               struct em_plan *p);
int em_read_plan(struct cow_dev *dev, const struct em_plan *p);

/* An ordered extent's completion, after its data is on the device: points
 * IN's [off, off + nblocks blocks) at the new extent at DISK (bytes) whose
 * blocks have the crc32c values CRCS: refcount, csum item, old mapping
 * dropped, REG item inserted, disk_size grown (up to the size), inode
 * saved; the blocks are noted for the one-flush commit.  Stops the store
 * (txn_abort) on failure and returns its error.  btrfs:
 * btrfs_finish_ordered_io's insert_ordered_extent_file_extent. */
int em_complete(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t disk,
                uint64_t nblocks, const uint32_t *crcs);

/* The completion of an ordered extent written in place into a preallocated
 * extent, at DISK (bytes): the written blocks' checksums go into the
 * extent's csum item and the PREALLOC item is split around a REG item for
 * them.  Errors: COW_ECORRUPT if the range is no longer that preallocated
 * extent's; the store is stopped (txn_abort) on any failure.  btrfs:
 * btrfs_mark_extent_written (fs/btrfs/file.c). */
int em_complete_prealloc(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t disk,
                         uint64_t nblocks, const uint32_t *crcs);

/* How a run is written in place (em_prealloc_target): into a preallocated
 * extent (its completion turns the range into a REG item with checksums,
 * em_complete_prealloc), or over a NODATASUM extent of a nodatacow file
 * (nothing in the trees changes but the size, em_complete_overwrite). */
#define EM_NOCOW_PREALLOC 1
#define EM_NOCOW_OVERWRITE 2

/* The completion of an ordered extent written in place over a NODATASUM
 * extent of a nodatacow file (EM_NOCOW_OVERWRITE): the trees keep their
 * mapping; only the inode's disk_size grows if the write reached past it
 * (then the inode item is saved, and the next log record holds it).  The
 * data is noted unflushed (st->data_unflushed: the next sync flushes).
 * Errors of saving the inode (the store is stopped, txn_abort).  btrfs:
 * the nocow branch of btrfs_finish_ordered_io. */
int em_complete_overwrite(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t nblocks);

/*
 * Where writeback puts the dirty run [off, off+len) of IN (bytes, block
 * aligned): if OFF lies in a preallocated range, or a NODATASUM extent of
 * a nodatacow file (format.h), that may be written in place, *nocow =
 * EM_NOCOW_PREALLOC or EM_NOCOW_OVERWRITE, *disk is OFF's block in that
 * extent and *runlen the part of the run inside it; otherwise *nocow = 0
 * and *runlen the part of the run before the next such range (new space
 * is allocated for it).  An extent older than the last snapshot or branch
 * of IN's tree may be shared, and one in a group being relocated is being
 * copied (invariant 5): both are written copy on write.  Errors from
 * reading the trees.  btrfs: can_nocow_extent (fs/btrfs/inode.c).
 */
int em_prealloc_target(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t len,
                       int *nocow, uint64_t *disk, uint64_t *runlen);

/*
 * For a write in place by a process that does not own the container
 * (store/inplace.c): if byte OFF of file IN lies in a NODATASUM extent of
 * a nodatacow file that may be overwritten in place (em_prealloc_target's
 * test, with DURABLE, the newest generation an owner made durable, in
 * place of this store's own), sets *DISK to the logical container
 * address of byte OFF and *RUNLEN to the bytes of [OFF, OFF + LEN) inside
 * that extent (> 0); otherwise both 0.  Store lock held.  Errors: the
 * trees' (COW_EIO_READ, COW_CORRUPT).
 */
int em_inplace_target(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t len,
                      uint64_t durable, uint64_t *disk, uint64_t *runlen);

/* *yes = EM_NOCOW_PREALLOC or EM_NOCOW_OVERWRITE if file block IDX of IN
 * may be written in place (see em_prealloc_target), else 0.  Errors from
 * reading the trees. */
int em_prealloc_at(cow_store *st, struct cow_inode *in, uint64_t idx, int *yes);

/* Allocates data extents for [start, end) of IN (bytes, block aligned,
 * past everything IN holds) and inserts them as PREALLOC items with
 * placeholder checksums, adding their blocks to IN->nblocks.  *DONE = how
 * far it got (START if nothing), also on error.  The caller made sure the
 * space is there (resv_room), notes [start, *done) for the log and saves
 * the inode.  Errors of the allocator and the trees (the part not
 * inserted is given back).  btrfs: btrfs_prealloc_file_range. */
int em_preallocate(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end,
                   uint64_t *done);

/*
 * The ranges whose mapping changed since the file's last log record (or the
 * last commit), which the next record of the file holds (log.c), as btrfs's
 * extent map tree keeps its modified_extents list for the tree-log
 * (fs/btrfs/extent_map.c, btrfs_log_changed_extents).  In cow_inode: lr
 * (sorted, disjoint, block aligned; at most COW_LOG_MAX_RANGES, then
 * log_overflow: the next sync of the file commits instead), log_size (the
 * INODE_ITEM changed).  These take no store pointer: every caller holds
 * store->lock.
 *
 * em_mark_modified notes [START, END) (bytes, block aligned; END may be
 * UINT64_MAX), merging with ranges it overlaps or touches; it cannot fail
 * (out of memory sets log_overflow).  em_modified: whether the file has
 * changes the log has not taken.  em_clear_modified: after a commit or a
 * record that holds them.
 */
void em_mark_modified(struct cow_inode *in, uint64_t start, uint64_t end);
int em_modified(const struct cow_inode *in);
void em_clear_modified(struct cow_inode *in);

#endif /* COW_EXTENT_MAP_H */
