/*
 * validate.h - validation of on-disk structures where they enter the store.
 *
 * "Validate at the boundary, once": a tree block is checked in full when
 * it is read from the device (cache_read), before anything looks at it:
 * its header, the layout of its items or key pointers, key order, and
 * every item's fields against the format's limits (store/format.h) and the
 * container's size.  A block that passes stays cached, so every reader of
 * an item read from disk sees only items that passed; items the running
 * transaction writes come from the store's own code.  Log record items are
 * checked by the same per-type functions when a record is parsed
 * (replay.c rec_parse).  The idea and the list of checks follow btrfs's
 * tree-checker (fs/btrfs/tree-checker.c: check_leaf, check_node and the
 * check_*_item functions), and match what cowctl fsck (tools/fsck/, which
 * shares no code with the store on purpose) reports as a problem.
 *
 * Every failure returns COW_ECORRUPT with a message naming the block (or
 * log record), the item and the field; nothing is changed.  Locking: none
 * of these functions change anything; the store's fields they read
 * (total_bytes, bg_size) are protected by store->lock, held by callers.
 */
#ifndef COW_VALIDATE_H
#define COW_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "store.h"

/* Where an item lives, for messages: item SLOT of the tree block at byte
 * ID (KIND "block") or of the log record with sequence number ID (KIND
 * "log record"). */
struct check_where {
    const char *kind;
    uint64_t id;
    unsigned slot;
};

/* A file extent item (EXTENT_DATA), validated: see check_file_extent(). */
struct fext {
    uint64_t start;    /* file offset (key offset), bytes */
    uint64_t disk;     /* disk_bytenr: start of the data extent */
    uint64_t disk_len; /* disk_num_bytes: length of the whole data extent */
    uint64_t ext_off;  /* extent_offset: where in the extent the item starts */
    uint64_t len;      /* num_bytes: file bytes covered */
    uint8_t type;      /* COW_FE_REG or COW_FE_PREALLOC */
};

/*
 * Checks the tree block B (COW_BLOCK_SIZE bytes) read from BYTENR:
 * checksum, magic, own address, level < COW_MAX_LEVEL, a known owner tree,
 * a generation of 1 up to the running transaction (st->transid; so are
 * the generations in root, extent and inode items),
 * then, for a leaf, nritems, every item's data inside the data area and
 * no two overlapping, keys strictly ascending, and each item as
 * check_item() does; for a node, 1..COW_NODE_MAX_PTRS pointers with keys
 * strictly ascending, each child a block address inside the container
 * other than BYTENR, with a generation of 1 up to the block's own.
 * (Which level and generation the parent expects is cache_read's check;
 * that the keys under a child lie between its pointer's key and the
 * next is fsck's, not made on each read.)  Cost: one pass over the items,
 * plus a sort of the item spans in the rare leaf whose data is not packed
 * in item order.  COW_OK or COW_ECORRUPT.
 */
int check_tree_block(cow_store *st, uint64_t bytenr, const uint8_t *b);

/*
 * Checks one item: key K, SIZE bytes of data at D, found at W, in a tree
 * whose owner object id is OWNER (0: a log record, where only EXTENT_CSUM,
 * EXTENT_DATA and INODE_ITEM may appear, and a LOG_RANGE, checked by the
 * log).  Each item type has its fixed size or bounds and field checks
 * (the check_* functions below); a type the format defines in another
 * tree is corrupt; a type it does not define is not read by the store and
 * passes (as in btrfs's tree-checker; fsck reports it).  COW_OK or
 * COW_ECORRUPT.
 */
int check_item(cow_store *st, const struct check_where *w, uint64_t owner,
               const struct cow_key *k, const uint8_t *d, size_t size);

/*
 * Parses the EXTENT_DATA item (key K, SIZE bytes at D) into *FX: exactly
 * FE_ITEM_SIZE bytes; file offset, extent_offset and num_bytes multiples
 * of 4096 (num_bytes > 0); disk_bytenr a block address and disk_num_bytes
 * a multiple of 4096 in 4096 .. COW_MAX_EXTENT_BLOCKS * 4096, the extent
 * inside the container; extent_offset + num_bytes <= disk_num_bytes and
 * the file range not past 2^64 (all through range_end); type REG or
 * PREALLOC.  W may be NULL (an item the store built itself).  COW_OK or
 * COW_ECORRUPT; *FX is set only on success.
 */
int check_file_extent(cow_store *st, const struct check_where *w, const struct cow_key *k,
                      const uint8_t *d, size_t size, struct fext *fx);

/*
 * An EXTENT_CSUM item of SIZE bytes keyed K: object id 7, the key offset a
 * block address, SIZE a multiple of 4 in 4 .. COW_MAX_EXTENT_BLOCKS * 4
 * (one crc32c per block of an extent of at most 1 MiB), the extent inside
 * the container.  *NBLOCKS (if not NULL) gets SIZE / 4.
 */
int check_csum_item(cow_store *st, const struct check_where *w, const struct cow_key *k,
                    size_t size, uint64_t *nblocks);

/*
 * Where a data extent's checksums are used (read, log, preallocation):
 * the EXTENT_CSUM item of extent DISK found with SIZE bytes must hold one
 * crc32c per block of the DISK_LEN bytes its file extent item says
 * (already bounded by check_file_extent).  COW_OK or COW_ECORRUPT.
 */
int check_csum_matches(uint64_t disk, uint64_t disk_len, size_t size);

#endif /* COW_VALIDATE_H */
