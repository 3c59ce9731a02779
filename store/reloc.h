/*
 * reloc.h - relocation: moving live blocks out of block groups and giving
 * the container file's unused tail back (reloc.c).  The public entry is
 * cow_store_balance (store.h).
 *
 * Who may call it: store.c (df, stats) and the background relocator
 * (relocator.c).  It calls down into commit.c, the remap tree
 * (remaptree.c), the allocator and the device.
 */
#ifndef COW_RELOC_H
#define COW_RELOC_H

#include <stdint.h>

#include "store_int.h"

/*
 * Bytes relocation could give back now: the container file's size minus
 * the blocks it physically holds (alloc_physical_blocks).  Lock held.
 * Never fails.
 */
uint64_t reloc_slack_bytes(cow_store *st);

/*
 * Cuts the container file to the device_bytes of the last superblock
 * written, when everything is durable (no running
 * transaction, the last commit flushed): the file then holds every block
 * a crash could go back to.  Called after a balance and at close.  Lock
 * held.  COW_EIO_TRUNCATE (the file keeps its size: harmless).
 */
int reloc_trim(cow_store *st);

/* Bytes of used blocks stored away from their own address (the remap
 * runs' total).  Lock held. */
uint64_t reloc_remapped_bytes(cow_store *st);

/*
 * Bytes of bookends a balance would drop where they lie (reloc.c
 * unmapped_runs): blocks of data extents that no file extent item of any
 * tree maps, stored at their own address, into *BYTES.  A walk of the
 * extent tree and every subvolume tree.  Lock held.  COW_ENOMEM, or the
 * walks' read errors.
 */
int reloc_unmapped_bytes(cow_store *st, uint64_t *bytes);

/*
 * On a device whose readers are on other clients (bdev.h readers_oldest:
 * RADOS), what the last commits freed is held until a look at the
 * readers' pins, begun after it was flushed, ends: waits for one (a round
 * trip to the cluster; at most MAX_MS milliseconds, polled every 2 ms with
 * store->lock let go meanwhile), then a flushed commit lets go of what no
 * reader pins, so that a balance or a close gives it back as on a file.
 * Nothing on other devices or with nothing held.  store->lock held.
 * Errors: the commit's.
 */
int reloc_let_go_held(cow_store *st, unsigned max_ms);
/* reloc_let_go_held's bounds: a close (relocator_close_balance) and a
 * balance asked for (cow_store_balance), milliseconds. */
#define RELOC_CLOSE_LOOK_MS 1000u
#define RELOC_BALANCE_LOOK_MS 5000u

#ifdef COW_DEBUG
/* For tests: where a cut of a SIZE-byte file may go now (bytes; 0: no
 * cut), as a balance's cut decides it (reloc.c cut_target, invariant 12),
 * with no limit on the bytes cut.  Lock held. */
uint64_t reloc_test_cut_target(cow_store *st, uint64_t size);
#endif

#endif
