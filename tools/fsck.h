/*
 * fsck.h - an independent checker and dumper for cowvfs containers.
 *
 * The checker depends only on store/format.h and store/crc32c.h, never on
 * the store code, so that a bug in the store cannot hide itself from it.
 * It is linked into cowctl and into the unit tests (which fsck every
 * container they leave behind).
 *
 * It reads the container through a source (struct cow_fsck_src): its size
 * and a read function.  cow_fsck() and cow_dump() check a container file,
 * read with pread(2); cow_fsck_src_progress() and cow_dump_src() check any
 * container the caller can read, where it lies (cowctl --rados reads the
 * objects of a container in RADOS through its block device, tools/ctl_rados.c).
 *
 * All functions are reentrant: all state is local to the call.  They never
 * write to the container.  The file ones try to take a shared flock(2) on
 * it for the duration of the call; if another open file description holds
 * the store's exclusive lock (the container is open, possibly in this very
 * process), they go on without it and, for fsck, say so in a note, since a
 * container that is being written may look inconsistent.  With a source,
 * keeping writers away while it is read is the caller's business.
 */
#ifndef COW_FSCK_H
#define COW_FSCK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* cow_fsck() flags */
#define COW_FSCK_DATA 0x1  /* read every written data block (those a regular
                            * extent item maps) and verify its crc32c */
#define COW_FSCK_NOTES 0x2 /* also write notes (legal oddities) to OUT */
#define COW_FSCK_DEFAULT COW_FSCK_DATA

/* What cow_fsck() found.  Every count is recomputed from the trees. */
struct cow_fsck_result {
    uint64_t problems;        /* problem lines (0 = clean) */
    uint64_t notes;           /* notes: legal but worth knowing */
    int sb_copy;              /* superblock copy used (0 or 1), -1 if none */
    uint64_t generation;      /* generation of that superblock */
    uint64_t container_bytes; /* size of the container (file, or source) */
    uint64_t total_bytes;     /* superblock total_bytes */
    uint64_t bytes_used;      /* recomputed: metadata + data */
    uint64_t metadata_bytes;  /* recomputed: superblocks, log areas, tree blocks */
    uint64_t data_bytes;      /* recomputed: data extents */
    uint64_t tree_blocks;     /* distinct tree blocks, every tree */
    uint64_t shared_blocks;   /* subvolume tree blocks with more than 1 ref */
    uint64_t data_extents;    /* distinct data extents */
    uint64_t data_blocks_verified; /* data blocks read and checked (DATA) */
    uint64_t block_groups;    /* BLOCK_GROUP_ITEMs */
    uint64_t subvolumes;      /* ROOT_ITEMs */
    uint64_t files;           /* INODE_ITEMs of files (ino >= 257), all subvolumes */
    uint64_t log_records;     /* valid log records pending replay (legal: a note) */
    uint64_t log_blocks;      /* ... and their length in blocks */
    uint32_t format_version;  /* of the superblock copy used (1, 2 or 3), 0 if none */
    uint64_t device_bytes;    /* superblock device_bytes (versions 1, 2: total_bytes) */
    uint64_t remap_items;     /* REMAP_ITEMs in the remap tree */
    uint64_t remapped_bytes;  /* bytes their logical runs cover (usable ones) */
    uint64_t physical_bytes;  /* recomputed: bytes of the file holding a used
                               * block, each once, wherever it is stored */
};

/*
 * Checks the container at PATH (a file system path) and everything that can
 * be checked in it: superblocks (format versions 1, 2 and 3), every tree
 * block of every tree (checksum, header, key order, key-pointer bounds),
 * tree block and data extent reference counts, checksum items, block-group
 * accounting (logical), overlapping or out-of-range space (log areas
 * included), the remap tree's REMAP_ITEMs and the physical space they
 * imply (every used block stored once, below device_bytes; every read of
 * a tree or data block goes through them), the files of every subvolume,
 * with COW_FSCK_DATA every written data block against its checksum
 * (preallocated blocks never written hold nothing to check), and the records
 * pending replay in the log.  FLAGS is a mask of COW_FSCK_*.
 *
 * Writes one line per problem to OUT ("tree block 16384 (extent tree): bad
 * checksum ..."); with COW_FSCK_NOTES also notes, each prefixed "note: ".
 * OUT may be NULL.  After 10000 lines further problems are only counted.
 * If RES is not NULL it is filled in (zeroed first), also on failure.
 *
 * Returns the number of problems found (0 = clean; capped at INT_MAX), or a
 * negative errno value if the check could not run at all, after writing one
 * line saying why: -ENOENT, -EACCES, ... from open(2), -EISDIR (not a regular
 * file), an fstat(2) or pread(2) errno (-EIO, ...), or -ENOMEM.  A file that
 * can be read but is not a container (random bytes, an SQLite database, a
 * truncated container) is a problem ("no valid superblock"), not an error.
 * Never crashes and never loops on damaged or hostile input.
 */
int cow_fsck(const char *path, unsigned flags, FILE *out, struct cow_fsck_result *res);

/* Told as cow_fsck_progress() reads: DONE bytes of tree blocks and (with
 * COW_FSCK_DATA) data read so far, of about TOTAL (the superblock's
 * bytes_used: without COW_FSCK_DATA the check ends below it; DONE can pass
 * it on a damaged container).  ARG is the caller's. */
typedef void (*cow_fsck_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* cow_fsck(), calling CB (if not NULL) after each tree block and each run of
 * data blocks it reads: for a progress display (cowctl fsck on a
 * terminal).  Same returns as cow_fsck(). */
int cow_fsck_progress(const char *path, unsigned flags, FILE *out, struct cow_fsck_result *res,
                      cow_fsck_progress_fn cb, void *arg);

/*
 * A container as the checker reads it (the idea of store/bdev.h's struct
 * cow_dev, reduced to reading).  The checker calls READ only for ranges
 * inside [0, SIZE): a read that would pass SIZE is cut there and its rest
 * reads as past the end of the container, a problem it reports.
 */
/* One range of a cow_fsck_src readv: LEN bytes at byte offset OFF into
 * BUF; RC gets 0 or a positive errno value. */
struct cow_fsck_iov {
    void *buf;
    size_t len;
    uint64_t off;
    int rc;
};

struct cow_fsck_src {
    /* Reads LEN bytes at byte offset OFF of the container
     * into BUF.  Returns 0, or a positive errno value (EIO, ...) if they
     * cannot be read; BUF's contents are then undefined.  Called from the
     * calling thread only, one call at a time. */
    int (*read)(void *arg, void *buf, size_t len, uint64_t off);
    uint64_t size;    /* bytes of the container */
    void *arg;        /* the caller's, passed to READ */
    const char *name; /* for messages ("NAME: check stopped: ...") */
    /* Optional (NULL: READ each).  Reads the N ranges of V (each inside
     * [0, SIZE)), all in flight at once where the source can (a RADOS
     * container: one round trip for all), setting each one's RC as READ
     * would return it.  Returns 0 when every RC is set, or a positive
     * errno value if it could not run at all (the checker then reads each
     * range with READ).  Called as READ is.  The checker's data pass
     * reads up to 8 MiB at a time this way. */
    int (*readv)(void *arg, struct cow_fsck_iov *v, size_t n);
};

/*
 * cow_fsck_progress() on the container SRC reads (not NULL, READ and NAME
 * set), which must not change while it is checked.  Returns the number of
 * problems (0 = clean; capped at INT_MAX), or a negative errno value if the
 * check could not run at all (-ENOMEM; -EINVAL for a SRC without READ or
 * NAME), after writing one line saying why.  A read that fails is a
 * problem of the block read ("read failed: Input/output error"), as for a
 * file.
 */
int cow_fsck_src_progress(const struct cow_fsck_src *src, unsigned flags, FILE *out,
                          struct cow_fsck_result *res, cow_fsck_progress_fn cb, void *arg);

/* cow_dump() flags */
#define COW_DUMP_HEX 0x1 /* also hex-dump the data of unknown items */

/*
 * Writes a decoded listing of the container at PATH to OUT: both superblock
 * copies (with device_bytes and the remap tree root from version 3 on),
 * then every block of the remap tree (its REMAP_ITEMs as "logical L length
 * N -> physical P"), of the root, extent and csum trees and of every
 * subvolume tree (from the ROOT_ITEMs of the root tree), each block once,
 * read through the remap runs (a moved block says where it is stored),
 * with every item decoded, then the valid records of the log (in the log
 * area of the superblock copy in use) and why the log ends there.  Works on damaged containers: a block that
 * fails a check is shown with what is wrong, and its children are followed
 * only while levels decrease, so the walk always ends.
 *
 * With BYTENR != UINT64_MAX only that one block is decoded (any block: a
 * superblock at 0 or 4096, a tree block, a log record's first block, or
 * data shown as a hex dump), read at that file offset (no remap runs).
 *
 * Returns 0, or a negative errno value (open, fstat, pread, or -ENOMEM)
 * after writing one line saying why to OUT.  OUT must not be NULL.
 */
int cow_dump(const char *path, unsigned flags, uint64_t bytenr, FILE *out);

/* cow_dump() of the container SRC reads (as for cow_fsck_src_progress()).
 * Returns 0, or a negative errno value (-ENOMEM; -EINVAL for a SRC without
 * READ or NAME) after writing one line saying why to OUT. */
int cow_dump_src(const struct cow_fsck_src *src, unsigned flags, uint64_t bytenr, FILE *out);

#endif /* COW_FSCK_H */
