/*
 * remap.h - the remap table: where relocated blocks are stored, and reads
 * by logical address (remap.c).
 *
 * Relocation (reloc.c) moves the bytes of live blocks without changing
 * any pointer to them: trees, file extent items and checksums keep naming
 * blocks by their logical address, and a REMAP_ITEM in the remap tree
 * says where a run of them is stored now (format.h, REMAP_ITEM; the idea
 * is btrfs's remap tree, the 2025 series "btrfs: remap tree").  Every
 * block not in a remap run is stored at its own address.
 *
 * Who may call it: the readers of blocks by their logical address
 * (cache.c, extent_map.c, replay.c, ordered.c's writes in place) and
 * remaptree.c, which keeps the table in step with the remap tree.  It
 * calls only the device.  Units: bytes.  Locking: store->lock held by
 * every caller.
 */
#ifndef COW_REMAP_H
#define COW_REMAP_H

#include <stddef.h>
#include <stdint.h>

#include "store_int.h"

/*
 * Where logical block range [LOGICAL, +LEN) starts being stored: *phys
 * (0: not stored, a dropped run), and *run, how many bytes from LOGICAL
 * (at most LEN) are stored contiguously from there.  Cannot fail.
 */
void remap_translate(cow_store *st, uint64_t logical, uint64_t len, uint64_t *phys,
                     uint64_t *run);

/*
 * Reads LEN bytes of blocks named by their logical address LOGICAL into
 * BUF, wherever they are stored (one device read per contiguous piece);
 * dropped blocks read as zeros.  Errors: the device's.
 */
int remap_read(cow_store *st, void *buf, size_t len, uint64_t logical);

/* 1 if [LOGICAL, +LEN) has any block in a remap run. */
int remap_overlaps(cow_store *st, uint64_t logical, uint64_t len);

/* Index of the first run whose logical end lies past LOGICAL (st->nremap
 * if none): the runs from there on are the only ones that may overlap
 * [LOGICAL, ...). */
size_t remap_find(cow_store *st, uint64_t logical);

void remap_destroy(cow_store *st);

/* Inserts run R at index AT of the table (remap_find's answer for its
 * logical start) / removes run AT; keeps the groups' counts.  Only
 * remaptree.c changes the table.  remap_insert: COW_ENOMEM. */
int remap_insert(cow_store *st, size_t at, const struct remap_run *r);
void remap_remove(cow_store *st, size_t at);

#endif
