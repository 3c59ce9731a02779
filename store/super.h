/*
 * super.h - the superblock (super.c): its validity, the one-flush commit's
 * list, writing a copy.  Offsets and fields are in store/format.h.
 *
 * Who may call it: commit.c only.  Units: bytes for addresses, blocks of
 * COW_BLOCK_SIZE in the commit list's runs.
 */
#ifndef COW_SUPER_H
#define COW_SUPER_H

#include <stdint.h>

#include "store_int.h"

/* A superblock's root reference (bytenr, 48-bit generation, level) at P
 * <-> a cow_root's fields. */
void sb_rootref_put(uint8_t *p, const struct cow_root *r);
void sb_rootref_get(const uint8_t *p, struct cow_root *r);

/* 1 if copy B (one block) is of format version 1 (no prev_generation; its
 * commit list starts at SB_COMMIT_LIST_V1). */
int sb_is_v1(const uint8_t *b);

/* 1 if copy B is of a format version older than COW_FORMAT_VERSION (a
 * valid one: upgraded by the next commits, commit_upgrade). */
int sb_is_old(const uint8_t *b);

/* The least file size copy B needs (format.h: device_bytes; total_bytes
 * for versions 1 and 2, whose files cover every block group), bytes. */
uint64_t sb_device_bytes(const uint8_t *b);

/* Entry I of copy B's commit list (its bounds checked by sb_invalid). */
const uint8_t *sb_commit_entry(const uint8_t *b, uint32_t i);

/* Why copy B (one block) is not a valid superblock (crc, magic, version,
 * a field out of range, a byte the format leaves zero set), or NULL. */
const char *sb_invalid(const uint8_t *b);
/* sb_invalid(B) == NULL. */
int sb_valid(const uint8_t *b);

/* ACC extended with the crc32c values CRCS[0..N) (the commit list's crc). */
uint32_t sb_crc_of_crcs(uint32_t acc, const uint32_t *crcs, size_t n);

/* Writes copy SLOT (0 or 1) for the running transaction: the trees' roots,
 * the block groups' bytes_used, the log areas and LOG_ID, prev_generation
 * and prev_log_records (what the last flush covered), and, with ONE_FLUSH,
 * the written-block list (txn_note_written) and its crc.  Does not flush.
 * Lock held.  Errors: COW_ENOSPC (generations exhausted), COW_ECORRUPT
 * (the generations went backwards), I/O errors of the write. */
int sb_write(cow_store *st, int slot, int one_flush, uint64_t log_id);

/* Whether the one-flush commit of copy SB reached the device whole: 1 if
 * SB is not a one-flush commit, or every block its list names (each inside
 * DEVSIZE bytes, at most COW_ONE_FLUSH_MAX_BLOCKS in all) gives the crc of
 * crcs SB carries; 0 if not, or if DEVSIZE is below SB's device_bytes (the
 * commit's grow was lost): a torn commit.  Reads the listed blocks, 64 at a
 * time.  Errors (returned instead): COW_ENOMEM, I/O errors. */
int sb_commit_intact(cow_store *st, const uint8_t *sb, uint64_t devsize);

#endif
