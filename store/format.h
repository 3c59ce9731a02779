/*
 * format.h - the on-disk format of a cowvfs container, in one place.
 *
 * Everything on disk is little-endian and read/written through the get/put
 * helpers at the end of this file (never by casting a struct onto a buffer).
 * docs/FORMAT.md explains the format in prose; this header is the reference.
 *
 * A container is a sequence of 4 KiB blocks.  Addresses ("bytenr") are byte
 * offsets in the container file, always multiples of COW_BLOCK_SIZE.
 *
 * Space is divided into block groups of sb.bg_size bytes (default 1 MiB).
 * Block group 0 starts at byte 0; its first two blocks are the superblock
 * copies.  The container grows by whole block groups.
 *
 * SUPERBLOCK (block 0 holds copy 0, block 1 holds copy 1; a commit writes
 * the copy that does not hold the last flushed commit; open picks the valid
 * copy with the highest generation):
 *
 *   offset size  meaning
 *   0      4     crc32c of bytes 4..4095
 *   4      4     format version: COW_FORMAT_VERSION (3); versions 1, 2 below
 *   8      8     magic (COW_SB_MAGIC)
 *   16     8     generation of the commit that wrote this copy
 *   24     4     block size in bytes (4096)
 *   28     4     flags: bit 0 COW_SB_ONE_FLUSH (below); other bits 0
 *   32     8     bg_size: block group size in bytes (multiple of 4096)
 *   40     8     total_bytes: container size covered by block groups
 *   48     8     bytes_used: allocated bytes (all block groups)
 *   56     16    root tree   (struct cow_rootref, below)
 *   72     16    extent tree (struct cow_rootref)
 *   88     16    csum tree   (struct cow_rootref)
 *   104    8     log area 0: bytenr of the log area that goes with
 *                superblock copy 0 (0 = the container has no log areas)
 *   112    8     log area 1: bytenr of copy 1's log area
 *   120    4     log area length in blocks (both areas)
 *   124    4     zero
 *   128    16    container uuid (random at creation)
 *   144    8     creation time, nanoseconds since the Unix epoch
 *   152    4     commit_nranges: entries in the commit list (ONE_FLUSH only)
 *   156    4     commit_crc: crc32c over the crc32c of every block in the
 *                commit list, each as 4 little-endian bytes, in list order
 *   160    8     log_id: a random number chosen by each commit; the log
 *                records that build on this commit carry it
 *   168    8     prev_generation: the generation of the last commit known
 *                flushed when this copy was written, which the other copy
 *                holds (0 = none: the container's first commit)
 *   176    4     prev_log_records: how many log records built on that
 *                commit were known flushed when this copy was written
 *   180    4     zero
 *   184    8     device_bytes: the least container file size this commit
 *                needs: every block its state reaches lies below it,
 *                wherever relocation put it (a multiple of 4096, at most
 *                total_bytes; the file may be longer)
 *   192    16    remap tree (struct cow_rootref; all zero = no remap tree)
 *   208    12*n  commit list: bytenr u64 | nblocks u32 per entry, the runs
 *                of blocks (data and tree) the commit wrote, by the
 *                addresses they were written at (remap tree blocks and new
 *                blocks are never remapped: logical = physical)
 *   ...    ...   zero
 *
 *   VERSION 2 (read, upgraded by the first commit like version 1) is the
 *   same up to offset 184, where its commit list begins
 *   (SB_COMMIT_LIST_V2, at most SB_COMMIT_MAX_V2 = 326 entries); it has no
 *   device_bytes (read as total_bytes: its file covers every group) and
 *   no remap tree.
 *
 *   VERSION 1 (the previous release; read, and upgraded by the first
 *   commit, which writes version 2: docs/FORMAT.md, "Versions") is the
 *   same up to offset 168, where its commit list begins
 *   (SB_COMMIT_LIST_V1, at most SB_COMMIT_MAX_V1 = 327 entries); it has no
 *   prev_generation or prev_log_records, so a version-1 copy says nothing
 *   about the other copy (as a container's first commit: no damage is
 *   inferred from it).  Its log records have bytes 40..47 zero (durable 0,
 *   no flags: nothing known flushed), which version 2 reads as they are.
 *   The two copies may have different versions (version 2 newer after the
 *   first commit of an upgrade; version 1 newer if a release reading only
 *   version 1 committed since).
 *
 *   generation, prev_generation and every other generation in the
 *   container are at most COW_MAX_GENERATION (2^48 - 1: root references
 *   hold 48 bits); prev_generation < generation.
 *
 *   flags bit 0, COW_SB_ONE_FLUSH: the commit was made with one flush (its
 *   blocks and this superblock written, then flushed together).  Such a
 *   superblock is valid only if the blocks of its commit list match
 *   commit_crc; otherwise the commit was torn by a crash and the other copy
 *   (the previous commit, which the torn one never overwrote) is used.
 *   Without the flag, the commit's blocks were flushed before the superblock
 *   was written (two flushes) and the list is empty.
 *
 *   A torn commit is told from a damaged one by what was written after it
 *   (docs/DESIGN.md, "Damage a crash cannot cause"): a log record that
 *   says the commit it builds on was flushed proves that commit durable,
 *   so its superblock or blocks not matching is damage; and a torn copy's
 *   prev_generation and prev_log_records say what the other copy and its
 *   log must hold.
 *
 *   struct cow_rootref: bytenr u64 | generation u48 | level u8 | pad u8
 *
 * TREE BLOCK (every block of every tree):
 *
 *   offset size  meaning
 *   0      4     crc32c of bytes 4..4095
 *   4      4     magic (COW_TREE_MAGIC)
 *   8      8     bytenr: this block's own address
 *   16     8     generation of the transaction that wrote it
 *   24     8     owner: object id of the tree it was allocated for
 *   32     4     nritems
 *   36     1     level (0 = leaf)
 *   37     11    zero
 *   48     ...   items (leaf) or key pointers (node)
 *
 *   Leaf item header (COW_ITEM_SIZE = 21 bytes), sorted by key:
 *     0 key (17 bytes) | 17 data offset u16 (from block start) | 19 size u16
 *   Item data is packed from the end of the block downwards, in item order.
 *
 *   Node key pointer (COW_KP_SIZE = 33 bytes), sorted by key:
 *     0 key (17 bytes) | 17 child bytenr u64 | 25 child generation u64
 *   The key of pointer i is the lowest key in child i's subtree at the time
 *   it was last updated (a lower bound: every key under child i is >= key i
 *   and < key i+1).
 *
 *   Key (17 bytes): objectid u64 | type u8 | offset u64, compared in that
 *   order as unsigned numbers.
 *
 * TREES (object ids; root tree, extent tree and csum tree roots are in the
 * superblock, subvolume (fs) tree roots are ROOT_ITEMs in the root tree):
 */
#ifndef COW_FORMAT_H
#define COW_FORMAT_H

#include <stdint.h>
#include <string.h>

#define COW_BLOCK_SIZE 4096u
#define COW_BLOCK_SHIFT 12
#define COW_FORMAT_VERSION 3u   /* what every commit writes */
#define COW_FORMAT_VERSION_1 1u /* still read: see the superblock table */
#define COW_FORMAT_VERSION_2 2u /* still read: see the superblock table */
#define COW_SB_MAGIC 0x3153465657304f43ull /* "CO0WVFS1" */
#define COW_TREE_MAGIC 0x65657254u         /* "Tree" */
#define COW_SB_COPIES 2
#define COW_DEFAULT_BG_SIZE (1ull << 20)

/* superblock field offsets */
#define SB_CSUM 0
#define SB_VERSION 4
#define SB_MAGIC 8
#define SB_GENERATION 16
#define SB_BLOCK_SIZE 24
#define SB_FLAGS 28
#define SB_BG_SIZE 32
#define SB_TOTAL_BYTES 40
#define SB_BYTES_USED 48
#define SB_ROOT_TREE 56
#define SB_EXTENT_TREE 72
#define SB_CSUM_TREE 88
#define SB_LOG_AREA0 104
#define SB_LOG_AREA1 112
#define SB_LOG_BLOCKS 120
#define SB_UUID 128
#define SB_CTIME 144
#define SB_COMMIT_NRANGES 152
#define SB_COMMIT_CRC 156
#define SB_LOG_ID 160
#define SB_PREV_GENERATION 168
#define SB_PREV_LOG_RECORDS 176
#define SB_DEVICE_BYTES 184
#define SB_REMAP_TREE 192
#define SB_COMMIT_LIST 208
#define SB_COMMIT_ENTRY 12
#define SB_COMMIT_MAX ((COW_BLOCK_SIZE - SB_COMMIT_LIST) / SB_COMMIT_ENTRY) /* 324 */
/* Version 2: the commit list began where device_bytes now is. */
#define SB_COMMIT_LIST_V2 184
#define SB_COMMIT_MAX_V2 ((COW_BLOCK_SIZE - SB_COMMIT_LIST_V2) / SB_COMMIT_ENTRY) /* 326 */
/* Version 1: the commit list began where prev_generation now is. */
#define SB_COMMIT_LIST_V1 168
#define SB_COMMIT_MAX_V1 ((COW_BLOCK_SIZE - SB_COMMIT_LIST_V1) / SB_COMMIT_ENTRY) /* 327 */
/* The largest generation: root references store 48 bits. */
#define COW_MAX_GENERATION ((1ull << 48) - 1)
#define COW_SB_ONE_FLUSH 0x1u
/* A one-flush commit lists at most this many blocks (8 MiB), which bounds
 * the reading open does to validate it; larger commits flush twice. */
#define COW_ONE_FLUSH_MAX_BLOCKS 2048u

/* rootref (16 bytes) */
#define RR_BYTENR 0
#define RR_GENERATION 8 /* 6 bytes */
#define RR_LEVEL 14

/* tree block header */
#define TB_CSUM 0
#define TB_MAGIC 4
#define TB_BYTENR 8
#define TB_GENERATION 16
#define TB_OWNER 24
#define TB_NRITEMS 32
#define TB_LEVEL 36
#define TB_HEADER_SIZE 48
#define COW_MAX_LEVEL 8

#define COW_KEY_SIZE 17
#define COW_ITEM_SIZE 21 /* key + data offset u16 + data size u16 */
#define COW_KP_SIZE 33   /* key + child bytenr + child generation */
#define COW_LEAF_SPACE (COW_BLOCK_SIZE - TB_HEADER_SIZE)
#define COW_NODE_MAX_PTRS (COW_LEAF_SPACE / COW_KP_SIZE) /* 122 */
/* Largest item data; keeps any leaf splittable into two that fit. */
#define COW_MAX_ITEM_DATA 1200u

/* ---- tree object ids ---- */
#define COW_ROOT_TREE_OBJECTID 1ull
#define COW_EXTENT_TREE_OBJECTID 2ull
#define COW_CSUM_TREE_OBJECTID 7ull
#define COW_REMAP_TREE_OBJECTID 9ull
#define COW_FS_TREE_OBJECTID 256ull /* the live subvolume */
/* Subvolumes (snapshots and branches) get ids from 257 upwards. */

/* In a subvolume (fs) tree */
#define COW_ROOT_DIR_OBJECTID 256ull /* the one directory: holds all names */
#define COW_FIRST_INO 257ull

/* In a subvolume tree: ORPHAN_ITEMs, key (5, 48, ino), no data, mark an
 * inode unlinked while still open; open removes orphans and their data. */
#define COW_ORPHAN_OBJECTID 5ull

/* ---- item types ---- */
#define COW_ORPHAN_ITEM 48
#define COW_INODE_ITEM 1
#define COW_DIR_ITEM 84
#define COW_EXTENT_DATA 108
#define COW_EXTENT_CSUM 128
#define COW_ROOT_ITEM 132
#define COW_ROOT_NAME 144
#define COW_EXTENT_ITEM 168
#define COW_METADATA_ITEM 169
#define COW_BLOCK_GROUP_ITEM 192
#define COW_REMAP_ITEM 200

/*
 * REMAP_ITEM, key (logical bytenr, 200, length in bytes), in the remap
 * tree only, 8 bytes:  0 physical bytenr u64, or 0: the run is not stored
 * at all (it lies in a data extent that is still in use, but no file
 * extent item of any tree maps these blocks: relocation dropped them, as
 * btrfs's defrag drops an extent's unreferenced "bookend" blocks; nothing
 * may read them).
 * The blocks [logical, logical + length), which every tree and checksum
 * still names by their logical address, are stored at [physical,
 * physical + length) (relocation moved them; docs/DESIGN.md,
 * "Relocation").  Every other block is stored at its own address.  Both
 * runs are whole blocks (length a multiple of 4096, > 0), each inside
 * one block group and inside device_bytes, physical != logical.  A run
 * of physical 0 (not stored) covers blocks of data extents only, and no
 * EXTENT_DATA item of any tree maps any of its blocks.  The
 * logical runs do not overlap, and every block in them is used (a data
 * extent, a tree block, never a superblock, log area or remap tree
 * block); the physical runs overlap neither each other nor any used
 * block that is not remapped.  The remap tree's own blocks are never
 * remapped (they are read before it), and a tree block's header keeps
 * its logical bytenr.
 */
#define REMAP_PHYSICAL 0
#define REMAP_ITEM_SIZE 8

/*
 * INODE_ITEM, key (ino, 1, 0), 48 bytes:
 *   0 size u64 (bytes) | 8 nblocks u64 (4 KiB blocks referenced by the
 *   file's EXTENT_DATA items) | 16 generation u64 (created) | 24 transid u64
 *   (last changed) | 32 mtime u64 (ns) | 40 flags u64:
 *   COW_INODE_NODATACOW: the file's data is written in place where no
 *   other tree can reach it, without data checksums (btrfs's
 *   BTRFS_INODE_NODATACOW, which implies NODATASUM): its new extents are
 *   COW_FE_NODATASUM.  Set only while the file is empty (cow_file_set_
 *   nodatacow, as chattr +C), kept by clones.  No other bit is defined.
 */
#define COW_INODE_NODATACOW 0x1ull
#define COW_INODE_FLAGS_KNOWN COW_INODE_NODATACOW
#define INODE_SIZE 0
#define INODE_NBLOCKS 8
#define INODE_GENERATION 16
#define INODE_TRANSID 24
#define INODE_MTIME 32
#define INODE_FLAGS 40
#define INODE_ITEM_SIZE 48

/*
 * DIR_ITEM, key (256, 84, name_hash), a list of entries whose names hash
 * to name_hash = crc32c(0, name, name_len) (the standard CRC-32C):
 *   entry: 0 ino u64 | 8 name_len u16 | 10 name bytes (1..255, no '/')
 */
#define DIR_ENTRY_INO 0
#define DIR_ENTRY_NAMELEN 8
#define DIR_ENTRY_NAME 10
#define COW_NAME_MAX 255

/*
 * EXTENT_DATA, key (ino, 108, file offset in bytes, block aligned), 40 bytes:
 *   0 disk_bytenr u64 (start of the data extent; 0 = hole, never stored)
 *   8 disk_num_bytes u64 (length of the whole data extent)
 *   16 extent_offset u64 (where in the extent this item's bytes start)
 *   24 num_bytes u64 (file bytes covered, multiple of 4096)
 *   32 generation u32 (low bits of the writing transaction) | 36 type u8
 *   (COW_FE_REG, COW_FE_PREALLOC or COW_FE_NODATASUM) | 37 pad
 *
 * A NODATASUM extent belongs to a COW_INODE_NODATACOW file: its blocks are
 * overwritten in place while no snapshot or branch can reach them and
 * their group is not being relocated (extent_map.c nocow_writable), so
 * their content has no checksum: the extent's EXTENT_CSUM item holds
 * zeros, is never checked, and only makes replay claim the extent like
 * any other.  The one-flush commit list never names its blocks.
 */
#define FE_DISK_BYTENR 0
#define FE_DISK_NUM_BYTES 8
#define FE_EXTENT_OFFSET 16
#define FE_NUM_BYTES 24
#define FE_GENERATION 32
#define FE_TYPE 36
#define FE_ITEM_SIZE 40
#define COW_FE_REG 0
#define COW_FE_PREALLOC 1
#define COW_FE_NODATASUM 2
#define COW_MAX_EXTENT_BLOCKS 256u /* 1 MiB; csum item stays < 1200 bytes */

/*
 * EXTENT_CSUM, key (7, 128, disk_bytenr of a data extent): crc32c (u32)
 * of each 4 KiB block of the extent, in order.  One item per data extent.
 */

/*
 * ROOT_ITEM, key (subvol id, 132, 0), 64 bytes:
 *   0 bytenr u64 | 8 generation u64 | 16 level u8 | 17 pad[7]
 *   24 next_ino u64 (next free inode number) | 32 flags u64 |
 *   40 ctime u64 (ns) | 48 source subvol id u64 |
 *   56 last_snapshot u64: the transaction of the last snapshot or branch
 *      made of this tree or that this tree was made as (or restored from);
 *      an extent allocated in it or before may be shared, so it is never
 *      written in place (btrfs's root_item.last_snapshot); 0 = never
 */
#define ROOT_BYTENR 0
#define ROOT_GENERATION 8
#define ROOT_LEVEL 16
#define ROOT_NEXT_INO 24
#define ROOT_FLAGS 32
#define ROOT_CTIME 40
#define ROOT_SOURCE 48
#define ROOT_LAST_SNAPSHOT 56
#define ROOT_ITEM_SIZE 64
/* ROOT_ITEM flags: the live subvolume (256) has none; every other one has
 * exactly one of SNAPSHOT and BRANCH, and a branch may have INCOMPLETE: it
 * is being made (the VFS is rolling back a hot journal in it before it
 * becomes what was asked for); the next writable open deletes it. */
#define COW_ROOT_F_SNAPSHOT 0x1ull   /* read-only */
#define COW_ROOT_F_BRANCH 0x2ull     /* writable */
#define COW_ROOT_F_INCOMPLETE 0x4ull /* with BRANCH: not finished */

/*
 * ROOT_NAME, key (subvol id, 144, 0), in the root tree: the name of a
 * snapshot or branch (btrfs keeps subvolume names in ROOT_REF/BACKREF
 * items): 1..255 bytes of UTF-8, no '/' and no NUL, unique in the
 * container.  Every subvolume but 256 has exactly one; 256 has none.
 */

/*
 * EXTENT_ITEM, key (disk_bytenr, 168, num_bytes): a data extent.
 * METADATA_ITEM, key (bytenr, 169, level): a subvolume tree block.
 * Both 24 bytes:  0 refs u64 | 8 generation u64 | 16 flags u64
 * Data extent refs count the (tree block, EXTENT_DATA item) pairs pointing
 * at the extent, a shared tree block counted once.  Tree block refs count
 * the node pointers and ROOT_ITEMs pointing at it, again per distinct block.
 * Blocks of the root, extent and csum trees are never shared and have
 * no METADATA_ITEM; they are found by walking those trees.
 */
#define EXT_REFS 0
#define EXT_GENERATION 8
#define EXT_FLAGS 16
#define EXT_ITEM_SIZE 24
#define COW_EXT_FLAG_DATA 1
#define COW_EXT_FLAG_TREE 2

/*
 * BLOCK_GROUP_ITEM, key (group start, 192, group length), 16 bytes:
 *   0 used u64 (allocated bytes in the group: data, tree blocks of every
 *   tree, superblocks, log areas) | 8 flags u64: the group's type, exactly
 *   one of COW_BG_DATA (data extents only) or COW_BG_METADATA (tree blocks,
 *   log areas and, in group 0, the superblocks only), except that group 0
 *   may be both (COW_BG_MIXED: data as well; version 3 makes it so, so
 *   that a small database needs one group).  Group 0 is never DATA only.
 */
#define BG_USED 0
#define BG_FLAGS 8
#define BG_ITEM_SIZE 16
#define COW_BG_DATA 0x1ull
#define COW_BG_METADATA 0x2ull
#define COW_BG_MIXED (COW_BG_DATA | COW_BG_METADATA) /* group 0 only */

/*
 * LOG AREAS AND LOG RECORDS (the fast fsync; see docs/DESIGN.md, "Log").
 *
 * Each superblock copy k has a log area of sb.log_blocks blocks at
 * sb.log_area[k], allocated in a METADATA group when the container is made
 * and owned by the superblock (counted in its group's used bytes, no
 * extent item).  After a commit writes copy k, xSync appends log records to
 * area k, one after another from its first block, and flushes once: the
 * record and the data it points at reach the device together.  Area k is
 * only rewritten by a commit that writes copy k, which never holds the
 * last flushed commit, so the log that a power loss goes back to is never
 * overwritten.
 *
 * A record is one or more whole blocks:
 *
 *   offset size  meaning
 *   0      4     crc32c of bytes 4 .. nblocks*4096-1 of the record
 *   4      4     magic (COW_LOG_MAGIC)
 *   8      8     log_id of the superblock the record builds on
 *   16     8     generation of that superblock
 *   24     8     sequence number: 1 for the first record after the commit
 *   32     4     nblocks: the record's length in blocks (1 .. area length)
 *   36     4     nitems
 *   40     4     durable: how many records of this log (sequence numbers
 *                1..durable) were known flushed when this one was written
 *                (0 .. sequence number - 1)
 *   44     4     flags: bit 0 COW_LOG_BASE_DURABLE, the commit the record
 *                builds on was known flushed when it was written (always
 *                set when durable > 0); other bits zero
 *   48     ...   items, back to back: key (17) | size u16 | data
 *   ...          zero up to the end of the last block
 *
 * Items, in the order replay applies them:
 *   EXTENT_CSUM (7, 128, disk_bytenr): the crc32c of every block of a data
 *     extent that the items after it point at.  Replay reads the extent
 *     and checks it: a mismatch means the xSync that wrote the record never
 *     returned, and replay ends before this record.
 *   LOG_RANGE (ino, 230, start): data end u64: the file's mapping of
 *     [start, end) (bytes, block aligned; end may be 2^64-1) is replaced by
 *     the EXTENT_DATA items that follow for that inode.
 *   EXTENT_DATA (ino, 108, offset): as in the subvolume tree.
 *   INODE_ITEM (ino, 1, 0): as in the subvolume tree; ends the inode's
 *     items; replay sets the size and checks the block count.
 *
 * Replay (at open) starts at the area of the superblock copy in use and
 * applies records while each one is whole (crc), names this superblock
 * (log_id, generation), has the next sequence number and points only at
 * data matching its checksums; the first record that does not ends the
 * log.  The result is then committed, which empties the log.
 *
 * durable and COW_LOG_BASE_DURABLE let open tell damage from a tear: a
 * whole record whose durable is at least k proves records 1..k were
 * flushed, so the log ending before record k is damage; a whole record
 * with the flag proves its commit was flushed, so opening at an older
 * commit is damage.  (A record written without a flush, as
 * cow_store_persist writes them, can reach the device before the records
 * and commit before it: it proves only what was flushed when it was
 * written.)
 */
#define COW_LOG_MAGIC 0x676f4c43u /* "CLog" */
#define LOG_CSUM 0
#define LOG_MAGIC 4
#define LOG_ID 8
#define LOG_GENERATION 16
#define LOG_SEQ 24
#define LOG_NBLOCKS 32
#define LOG_NITEMS 36
#define LOG_DURABLE 40
#define LOG_FLAGS 44
#define LOG_HEADER_SIZE 48
#define COW_LOG_BASE_DURABLE 0x1u
#define LOG_ITEM_HEADER 19 /* key (17) + size u16 */
#define COW_LOG_RANGE 230
#define COW_LOG_AREA_BLOCKS 64u /* 256 KiB per superblock copy */
/* Area sizes follow what the container holds (log.c, log_area_tier), so
 * that a small database stays small: a new container starts with areas of
 * COW_LOG_AREA_BLOCKS_TINY blocks (16 KiB each), gets areas of
 * COW_LOG_AREA_BLOCKS_SMALL (64 KiB) once it holds COW_LOG_SMALL_AT bytes,
 * and of COW_LOG_AREA_BLOCKS once it covers COW_LOG_GROW_AT bytes and
 * holds half of that (log_grow_areas); relocation takes them back down
 * when it holds under half of a step again (log_move_areas).  Readers
 * take any size from 1 block to a block group (store/commit.c). */
#define COW_LOG_AREA_BLOCKS_TINY 4u
#define COW_LOG_AREA_BLOCKS_SMALL 16u
#define COW_LOG_SMALL_AT (512ull << 10)
#define COW_LOG_GROW_AT (4ull << 20)

/* ---- little-endian helpers ---- */
static inline uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}
static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t get48(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get16(p + 4) << 32);
}
static inline void put48(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put16(p + 4, (uint16_t)(v >> 32));
}

/* A key, in memory. */
struct cow_key {
    uint64_t objectid;
    uint8_t type;
    uint64_t offset;
};

static inline void key_get(struct cow_key *k, const uint8_t *p)
{
    k->objectid = get64(p);
    k->type = p[8];
    k->offset = get64(p + 9);
}
static inline void key_put(uint8_t *p, const struct cow_key *k)
{
    put64(p, k->objectid);
    p[8] = k->type;
    put64(p + 9, k->offset);
}
static inline int key_cmp(const struct cow_key *a, const struct cow_key *b)
{
    if (a->objectid != b->objectid)
        return a->objectid < b->objectid ? -1 : 1;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    return 0;
}

/* Tree block accessors. */
static inline uint32_t tb_nritems(const uint8_t *b) { return get32(b + TB_NRITEMS); }
static inline unsigned tb_level(const uint8_t *b) { return b[TB_LEVEL]; }
static inline const uint8_t *leaf_item(const uint8_t *b, unsigned i)
{
    return b + TB_HEADER_SIZE + (size_t)i * COW_ITEM_SIZE;
}
static inline unsigned leaf_data_off(const uint8_t *b, unsigned i)
{
    return get16(leaf_item(b, i) + 17);
}
static inline unsigned leaf_data_size(const uint8_t *b, unsigned i)
{
    return get16(leaf_item(b, i) + 19);
}
static inline const uint8_t *node_ptr(const uint8_t *b, unsigned i)
{
    return b + TB_HEADER_SIZE + (size_t)i * COW_KP_SIZE;
}
static inline uint64_t node_child(const uint8_t *b, unsigned i)
{
    return get64(node_ptr(b, i) + 17);
}
static inline uint64_t node_child_gen(const uint8_t *b, unsigned i)
{
    return get64(node_ptr(b, i) + 25);
}

#endif /* COW_FORMAT_H */
