/*
 * ordered.h - ordered extents: a run of delalloc pages being written to its
 * new extent, from the writeback that starts it to the completion that
 * puts it into the trees, and the waits for them.
 *
 * The idea is btrfs's (fs/btrfs/ordered-data.c, struct
 * btrfs_ordered_extent): writeback copies a run of dirty pages into an
 * ordered extent (oe_create), which goes in flight (oe_start: counted,
 * linked into its inode, and only then its range noted for the log:
 * docs/DESIGN.md, invariant 2); the data is written with store->lock
 * released (oe_write); completion (oe_complete) inserts its checksums and
 * file extent items through the extent map and releases its reservation,
 * exactly once, then wakes the waiters.  The pages stay the page cache's:
 * the writeback that started the ordered extent settles them after
 * oe_complete returns (its outcome says how) and then frees it (oe_free).
 *
 * Who may call it: the page cache (pcache.c: creation and completion);
 * files, the store's persist, transactions and subvolumes (the waits).  It
 * calls only down: the extent map (its completion, and em_mark_modified,
 * which notes the range for the file's next log record), space
 * reservation, the allocator and the device.
 *
 * Ownership: the thread whose writeback created an ordered extent owns it
 * (its buffer, its reservation) until it frees it; the inode's list
 * (cow_inode.oes) only lets others see and wait for it.
 *
 * Locking: store->lock held by every caller (asserted); oe_write and the
 * waits release it meanwhile, and their callers re-check what they looked
 * at before.
 */
#ifndef COW_ORDERED_H
#define COW_ORDERED_H

#include <stdint.h>

#include "space.h"
#include "store_int.h"

/* An ordered extent: a delalloc range being written to its new extent.
 * Exists (in the inode's list) before the range is noted for the log, and
 * its file extent items enter the trees only at completion, after the data
 * is written (invariant 2).  Protected by store->lock. */
struct oext {
    uint64_t off, len;    /* file bytes, block aligned */
    uint64_t disk;        /* disk_bytenr of the new extent (bytes) */
    uint8_t *buf;         /* the data (copied from the pages at the start) */
    uint32_t *crcs;       /* crc32c per block */
    struct cow_resv resv; /* reserved blocks released at completion */
    int nocow;            /* written in place (no space of its own: RESV is
                           * the pages' reservation, not counted in
                           * oe_alloc): EM_NOCOW_PREALLOC into a
                           * preallocated extent, EM_NOCOW_OVERWRITE over a
                           * NODATASUM one (extent_map.h); 0 new space */
    struct oext *next, *prev; /* the inode's list (in->oes) */
};

/* How an ordered extent ended (oe_complete), which says what the pages
 * that held its data become. */
enum oe_outcome {
    OE_WRITTEN,       /* the data is written and its extent went into the
                       * trees (or the attempt stopped the store): the
                       * pages are clean */
    OE_STORE_STOPPED, /* the store had stopped (txn_abort) meanwhile: the
                       * pages are left as they are */
    OE_WRITE_FAILED   /* the data did not reach the device: the pages are
                       * dirty again and take their blocks back from the
                       * ordered extent's RESV, whose rest the caller
                       * releases (resv_release) */
};

/* A new ordered extent for NBLOCKS blocks of file offset OFF (bytes) going
 * to DISK (bytes; NOCOW: in place into a preallocated extent), taking over
 * the reservation RESV (empty after); its buffer (NBLOCKS blocks) and
 * checksums (NBLOCKS) are for the caller to fill.  Not in flight yet
 * (oe_start).  Errors: COW_ENOMEM (nothing taken from RESV).  btrfs:
 * alloc_ordered_extent. */
int oe_create(uint64_t off, uint64_t nblocks, uint64_t disk, int nocow, struct cow_resv *resv,
              struct oext **out);

/* OE, filled, goes in flight: counted in the store, linked into IN, and
 * then its range noted for the log (invariant 2: a log record that holds
 * the range waits for it).  btrfs: btrfs_alloc_ordered_extent's insertion
 * into the inode's tree. */
void oe_start(cow_store *st, struct cow_inode *in, struct oext *oe);

/* Writes OE's data to its extent with store->lock released meanwhile
 * (held again on return).  Returns the device's error (COW_EIO_WRITE,
 * ...) for oe_complete. */
int oe_write(cow_store *st, struct oext *oe);

/* Ends ordered extent OE of IN whose data write returned WRC: unlinked and
 * no longer counted; on success its extent enters the trees
 * (em_complete, em_complete_prealloc) and its reservation is released,
 * once, here; on a failed write its new space goes back to the allocator
 * and its reservation stays in OE->resv for the pages.  Wakes the
 * waiters.  *OUTCOME says which (see enum oe_outcome); OE is the caller's
 * to free (oe_free) once it has settled the pages.  Returns WRC, the
 * extent map's error (the store then stopped), or COW_EFAILED when the
 * store had stopped.  btrfs: btrfs_finish_ordered_io. */
int oe_complete(cow_store *st, struct cow_inode *in, struct oext *oe, int wrc,
                enum oe_outcome *outcome);

/* Frees OE (created, never started, or completed). */
void oe_free(struct oext *oe);

/* The end (bytes) of IN's highest ordered extent in flight, 0 if none. */
uint64_t oe_end(const struct cow_inode *in);

/* Adds to *HELD the blocks IN's ordered extents in flight hold reserved,
 * and to *ALLOCATED those of them already allocated (pc_check_counts). */
void oe_count_resv(const struct cow_inode *in, uint64_t *held, uint64_t *allocated);

/* Waits for the next completion of any ordered extent (store->lock
 * released meanwhile). */
void oe_wait_one(cow_store *st);

/* Waits (releasing store->lock) until no ordered extent of IN overlaps
 * [start, end) (bytes); all of IN's when END is UINT64_MAX and START 0.
 * btrfs: btrfs_wait_ordered_range. */
void oe_wait_range(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end);

/* Waits until no ordered extent of IN overlaps a range noted for the log
 * (before a log record of IN is built; invariant 2). */
void oe_wait_logged(cow_store *st, struct cow_inode *in);

/* Waits until no ordered extent is in flight in the store (a commit, a
 * log record of every file).  btrfs: btrfs_wait_ordered_roots. */
void oe_wait_all(cow_store *st);

#endif /* COW_ORDERED_H */
