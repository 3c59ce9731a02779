/*
 * fuzzlib.h - what the libFuzzer harnesses (test/fuzz/fuzz_*.c), the seed
 * maker (test/fuzz/mkbases.c) and the corruption sweep (test/sweep/sweep.c)
 * share: the small valid containers they start from ("bases"), made through
 * the real VFS on an in-memory device, and the mutations applied to them.
 *
 * BASES.  fz_make_bases() runs SQLite workloads through the "cow" VFS on a
 * memdev (test/testutil.h) served by the COW_DEBUG opener hook of
 * store/bdev.c, so no file is written: a cleanly closed container, one with
 * snapshots and branches, and two crash images (the memdev's durable image
 * while the database is still open after its last acknowledged commit)
 * whose log areas hold records pending replay, one of them with
 * preallocated extents, and one with a snapshot after a balance that
 * moved blocks (its reads go through the remap tree).  Every commit of
 * every base changes what SQLite reads, so a container that opens at an
 * older commit reads differently.
 *
 * FUZZ INPUT.  The fuzzers do not mutate whole containers (1 MiB block
 * groups; a small one is 2-3 MiB): an input is a base number and a list
 * of patches applied to a copy of that base (fz_apply):
 *
 *   byte 0        base index (mod the number of bases); bit 7: fix the
 *                 checksums up after patching (fz_fix_checksums), so that a
 *                 patch reaches the parsers behind the checksum checks
 *   then patches  u16 block (little-endian; bits 0-14 an index, mod the
 *                 number of candidate blocks: with bit 15 clear the
 *                 base's metadata blocks (superblocks, tree blocks, log
 *                 blocks), with it set every block that is not all zero;
 *                 for the replay harness, the log areas') | u16 offset in the
 *                 block (mod 4096) | u8 n | bytes
 *                 n < 0x80: n % 32 + 1 bytes follow and replace the bytes
 *                 at that offset (cut at the block's end);
 *                 n >= 0x80: no bytes follow; the image is cut at the
 *                 start of that block (a truncated container)
 *
 * Thread-safety: none (the harnesses and the sweep are single-threaded
 * around these calls).
 */
#ifndef COW_FUZZLIB_H
#define COW_FUZZLIB_H

#include <stddef.h>
#include <stdint.h>

struct sqlite3;

/* A base container and the blocks a harness patches. */
struct fz_base {
    char name[32];     /* "clean", "snap", "wal", "persist", "reloc" */
    uint8_t *img;      /* the image (owned) */
    size_t len;        /* its length in bytes (a multiple of 4096) */
    int crashed;       /* 1: a crash image (log records pending replay) */
    int remapped;      /* 1: made by a balance that moved blocks (the remap
                        * tree holds REMAP_ITEMs); fz_make_bases only */
    uint32_t *blocks;  /* block numbers that are not all zero (owned) */
    size_t nblocks;
    uint32_t *metablocks; /* superblocks, tree blocks, log records (owned) */
    size_t nmetablocks;
    uint32_t *logblocks; /* the blocks of both log areas (owned) */
    size_t nlogblocks;
};

/*
 * Makes the bases (about a second under ASan).  Sets *OUT to an array of
 * *N bases; free with fz_free_bases().  Exits the process with a message
 * if a workload fails (a bug in the store or this code, never an input).
 * Registers the cow VFS and leaves the opener hook (fz_vfs_serve) set.
 */
void fz_make_bases(struct fz_base **out, size_t *n);

/* Writes each base to DIR/NAME.img; reads them back (fz_load_bases()
 * sorts by file name).  Both exit with a message on an I/O error. */
void fz_save_bases(const struct fz_base *b, size_t n, const char *dir);
void fz_load_bases(const char *dir, struct fz_base **out, size_t *n);
void fz_free_bases(struct fz_base *b, size_t n);

/* The directory of the running executable's bases: $FUZZ_BASES if set,
 * else "bases" next to /proc/self/exe.  Static buffer. */
const char *fz_bases_dir(void);

/* Fills B's block lists from its image (fz_make_bases and fz_load_bases
 * do it). */
void fz_index_base(struct fz_base *b);

/*
 * Applies the fuzz input DATA (SIZE bytes; see above) to a copy of one of
 * the N bases.  LOGONLY: patches go to the log-area blocks (the replay
 * harness); else to the metadata blocks or to every block that is not
 * all zero, as each patch's block number says.  *IMG is a buffer of
 * *CAP bytes, grown as needed (realloc; the caller frees it); *LEN is set
 * to the image's length.  Returns the base's index.
 */
size_t fz_apply(const struct fz_base *bases, size_t n, const uint8_t *data, size_t size,
                int logonly, uint8_t **img, size_t *cap, size_t *len);

/*
 * What every libFuzzer harness (fuzz_*.c) keeps between inputs: the bases
 * it loaded once and the buffer each input's image is built in.
 */
struct fz_harness {
    struct fz_base *bases;
    size_t nbases;
    uint8_t *img; /* the current input's image (grown by fz_harness_apply) */
    size_t cap;   /* img's size in bytes */
};

/* The entry points libFuzzer calls; each harness defines both. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loads the bases of fz_bases_dir() into H (exits with a message if they
 * cannot be read, as fz_load_bases does). */
void fz_harness_init(struct fz_harness *h);
/* fz_apply() of the input DATA (SIZE bytes) to H's bases, into H->img;
 * returns the image's length in bytes. */
size_t fz_harness_apply(struct fz_harness *h, const uint8_t *data, size_t size, int logonly);

/*
 * Recomputes the checksums a patch of block BLK (number) broke: the
 * block's own if it is a superblock, a tree block (tree magic) or part of
 * a log record (magic at the record's first block, found by walking the
 * log area from its start), then the commit_crc of each ONE_FLUSH
 * superblock copy and its crc.  LOGAREA: the two log areas' bytenrs and
 * their length in blocks, as the base's superblocks gave them (the patched
 * superblocks may say anything).
 */
void fz_fix_checksums(uint8_t *img, size_t len, uint64_t blk, const uint64_t logarea[2],
                      uint32_t logblocks);
/* The log areas of IMG's superblock copy 0 (zeros if unreadable). */
void fz_log_areas(const uint8_t *img, size_t len, uint64_t logarea[2], uint32_t *logblocks);

/*
 * The VFS on an in-memory device: while set, sqlite3_open_v2() of
 * fz_vfs_path() through "cow" opens a memdev made from IMG (copied; LEN
 * bytes).  fz_vfs_path() names an empty placeholder file (made on first
 * use, under TMPDIR or /tmp, removed at exit) that the VFS stat()s.
 * fz_vfs_serve(NULL, 0) makes the next open a new empty memdev (a new
 * container).  The device of the last open is fz_vfs_dev() (freed at the
 * next fz_vfs_serve).
 */
void fz_vfs_serve(const uint8_t *img, size_t len);
const char *fz_vfs_path(void);

/* In a child process after fork(): the next fz_vfs_path() makes a
 * placeholder of its own.  Processes that share a placeholder share what
 * the cow VFS keeps per container file between processes (its locks, the
 * WAL-index in shared memory: docs/DESIGN.md, "Several processes"), so
 * parallel jobs serving different images must not.  The parent's file is
 * left to the parent. */
void fz_vfs_own_path(void);
/* Removes the placeholder fz_vfs_path() made (for a child that ends with
 * _exit, which runs no atexit handler). */
void fz_vfs_drop_path(void);
/* The same without a copy: the device reads and writes *IMG (*LEN bytes
 * of *CAP allocated) in place, growing it with realloc; flush does
 * nothing.  The caller keeps the buffer alive while a store is open. */
void fz_vfs_serve_buf(uint8_t **img, size_t *len, size_t *cap);
/* Such a device for cow_store_open_dev() (which owns and frees it). */
struct cow_dev *fz_buf_dev(uint8_t **img, size_t *len, size_t *cap);
struct cow_dev *fz_vfs_dev(void);

/*
 * Reads a database as a check would: PRAGMA integrity_check must say "ok",
 * then every row of every table in sqlite_schema order is hashed into
 * *HASH (FNV-1a over each value's type and bytes).  Returns SQLITE_OK, the
 * first error's code, or SQLITE_CORRUPT when integrity_check reports a
 * problem.  A read that sees a different database gives a different hash.
 */
int fz_sql_read_all(struct sqlite3 *db, uint64_t *hash);

/* Opens fz_vfs_path() through cow (URI; SUFFIX "" or "&snapshot=NAME"...)
 * and runs fz_sql_read_all(); the connection is closed.  FLAGS as for
 * sqlite3_open_v2 (SQLITE_OPEN_URI is added).  Returns the SQLite code. */
int fz_sql_check(const char *suffix, int flags, uint64_t *hash);

#endif /* COW_FUZZLIB_H */
