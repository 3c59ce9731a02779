/*
 * super.c - the superblock: its two copies, what makes a copy valid, and
 * writing one for a commit (the format is store/format.h, "superblock").
 *
 * Two copies at blocks 0 and 1; a commit writes the copy that does not
 * hold the last flushed commit, so a torn write leaves the other whole.  A
 * copy is valid when its crc, magic, version and every field pass
 * sb_invalid.  A one-flush commit's copy also lists the blocks the commit
 * wrote with a crc of their crcs (the list txn_note_written keeps), and is
 * valid only if every listed block holds what it held when written
 * (sb_commit_intact): the superblock and the blocks go to the device under
 * one flush, so a copy whose blocks did not all arrive is the torn commit
 * of a power loss.  btrfs keeps more copies (fs/btrfs/disk-io.c
 * write_all_supers) but flushes twice per commit.
 *
 * Who may call it: commit.c (load, format, commit, seal).  It calls only
 * down: the device.  Locking: store->lock held by the callers that pass a
 * store.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c.h"
#include "lockdep.h"
#include "store_int.h"
#include "super.h"

void sb_rootref_put(uint8_t *p, const struct cow_root *r)
{
    put64(p + RR_BYTENR, r->bytenr);
    put48(p + RR_GENERATION, r->generation);
    p[RR_LEVEL] = (uint8_t)r->level;
    p[RR_LEVEL + 1] = 0;
}

void sb_rootref_get(const uint8_t *p, struct cow_root *r)
{
    r->bytenr = get64(p + RR_BYTENR);
    r->generation = get48(p + RR_GENERATION);
    r->level = p[RR_LEVEL];
}

/* ---- superblock ---- */

/* Superblock copy B is of format version 1 (format.h): its commit list is
 * at SB_COMMIT_LIST_V1 and it names no previous commit.  Only for a copy
 * whose version sb_invalid() accepted. */
int sb_is_v1(const uint8_t *b)
{
    return get32(b + SB_VERSION) == COW_FORMAT_VERSION_1;
}

int sb_is_old(const uint8_t *b)
{
    return get32(b + SB_VERSION) != COW_FORMAT_VERSION;
}

/* Where copy B's commit list starts, and how many entries it may hold. */
static size_t list_offset(const uint8_t *b)
{
    uint32_t ver = get32(b + SB_VERSION);
    return ver == COW_FORMAT_VERSION_1   ? SB_COMMIT_LIST_V1
           : ver == COW_FORMAT_VERSION_2 ? SB_COMMIT_LIST_V2
                                         : SB_COMMIT_LIST;
}

static uint32_t list_max(const uint8_t *b)
{
    return (uint32_t)((COW_BLOCK_SIZE - list_offset(b)) / SB_COMMIT_ENTRY);
}

/* Entry I of copy B's commit list. */
const uint8_t *sb_commit_entry(const uint8_t *b, uint32_t i)
{
    return b + list_offset(b) + (size_t)i * SB_COMMIT_ENTRY;
}

uint64_t sb_device_bytes(const uint8_t *b)
{
    return sb_is_old(b) ? get64(b + SB_TOTAL_BYTES) : get64(b + SB_DEVICE_BYTES);
}

/* Why superblock copy B cannot be used (its own fields), or NULL.  Every
 * generation is bounded here: one of 2^48 or more would make the next
 * commit write root references that no longer match (they hold 48 bits).
 * Versions 1 and 2 are read; a version-1 copy has no prev_generation. */
const char *sb_invalid(const uint8_t *b)
{
    if (get64(b + SB_MAGIC) != COW_SB_MAGIC)
        return "no superblock magic";
    if (crc32c(0, b + 4, COW_BLOCK_SIZE - 4) != get32(b + SB_CSUM))
        return "bad checksum";
    uint64_t bg = get64(b + SB_BG_SIZE), total = get64(b + SB_TOTAL_BYTES);
    uint64_t gen = get64(b + SB_GENERATION);
    uint32_t ver = get32(b + SB_VERSION);
    if (ver != COW_FORMAT_VERSION && ver != COW_FORMAT_VERSION_1 && ver != COW_FORMAT_VERSION_2)
        return "a format version this build does not read";
    int v1 = sb_is_v1(b);
    if (get32(b + SB_BLOCK_SIZE) != COW_BLOCK_SIZE ||
        (get32(b + SB_FLAGS) & ~COW_SB_ONE_FLUSH) != 0 ||
        get32(b + SB_COMMIT_NRANGES) > list_max(b))
        return "bad block size, flags or commit list length";
    if (gen == 0 || gen > COW_MAX_GENERATION || (!v1 && get64(b + SB_PREV_GENERATION) >= gen))
        return "generation out of range";
    if (get48(b + SB_ROOT_TREE + RR_GENERATION) > gen ||
        get48(b + SB_EXTENT_TREE + RR_GENERATION) > gen ||
        get48(b + SB_CSUM_TREE + RR_GENERATION) > gen ||
        (!sb_is_old(b) && get48(b + SB_REMAP_TREE + RR_GENERATION) > gen))
        return "a root generation past the superblock's";
    if (bg < 64 * COW_BLOCK_SIZE || bg % COW_BLOCK_SIZE || bg > (1ull << 34) || total == 0 ||
        total % bg)
        return "bad block group size or total bytes";
    uint64_t dev = sb_device_bytes(b);
    if (dev < 2 * COW_BLOCK_SIZE || dev % COW_BLOCK_SIZE || dev > total)
        return "device_bytes out of range";
    if (!sb_is_old(b) && get48(b + SB_REMAP_TREE + RR_GENERATION) == 0 &&
        !bytes_zero(b + SB_REMAP_TREE, 16))
        return "a remap tree reference without a generation";
    /* bytes the format leaves zero (sb_write starts from a zeroed block):
     * after the log area length, after prev_log_records (version 2), and
     * after the commit list (with no ONE_FLUSH flag, no list, count or
     * crc); a version-1 copy's list starts where prev_generation is now */
    size_t end = list_offset(b);
    if (get32(b + SB_FLAGS) & COW_SB_ONE_FLUSH)
        end += (size_t)get32(b + SB_COMMIT_NRANGES) * SB_COMMIT_ENTRY;
    else if (!bytes_zero(b + SB_COMMIT_NRANGES, SB_LOG_ID - SB_COMMIT_NRANGES))
        return "a commit list without the one-flush flag";
    if (!bytes_zero(b + SB_LOG_BLOCKS + 4, 4) ||
        (!v1 && !bytes_zero(b + SB_PREV_LOG_RECORDS + 4, 4)) ||
        !bytes_zero(b + end, COW_BLOCK_SIZE - end))
        return "reserved or unused bytes that are not zero";
    return NULL;
}

int sb_valid(const uint8_t *b)
{
    return sb_invalid(b) == NULL;
}

/* crc32c over a sequence of block crcs, each as 4 little-endian bytes. */
uint32_t sb_crc_of_crcs(uint32_t acc, const uint32_t *crcs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t le[4];
        put32(le, crcs[i]);
        acc = crc32c(acc, le, 4);
    }
    return acc;
}

/* Writes superblock copy SLOT for the running transaction with log id
 * LOG_ID; ONE_FLUSH adds the commit list (flag ONE_FLUSH). */
int sb_write(cow_store *st, int slot, int one_flush, uint64_t log_id)
{
    uint8_t b[COW_BLOCK_SIZE];
    memset(b, 0, sizeof b);
    put32(b + SB_VERSION, COW_FORMAT_VERSION);
    put64(b + SB_MAGIC, COW_SB_MAGIC);
    put64(b + SB_GENERATION, st->transid);
    put32(b + SB_BLOCK_SIZE, COW_BLOCK_SIZE);
    put64(b + SB_BG_SIZE, st->bg_size);
    put64(b + SB_TOTAL_BYTES, st->total_bytes);
    uint64_t used = 0;
    for (size_t i = 0; i < st->nbgs; i++)
        used += st->bgs[i].used;
    put64(b + SB_BYTES_USED, used);
    sb_rootref_put(b + SB_ROOT_TREE, &st->root_tree);
    sb_rootref_put(b + SB_EXTENT_TREE, &st->extent_tree);
    sb_rootref_put(b + SB_CSUM_TREE, &st->csum_tree);
    memcpy(b + SB_UUID, st->uuid, 16);
    put64(b + SB_CTIME, st->ctime);
    put64(b + SB_LOG_AREA0, st->log_area[0]);
    put64(b + SB_LOG_AREA1, st->log_area[1]);
    put32(b + SB_LOG_BLOCKS, st->log_blocks);
    put64(b + SB_LOG_ID, log_id);
    /* the commit the other copy holds and its log, for open to check a
     * torn copy against (format.h) */
    put64(b + SB_PREV_GENERATION, st->durable_gen);
    put32(b + SB_PREV_LOG_RECORDS, st->durable_log);
    st->sb_device_bytes = alloc_device_bytes(st);
    if (st->sb_device_bytes > st->cut_floor)
        st->cut_floor = st->sb_device_bytes; /* a crash may come back to it */
    put64(b + SB_DEVICE_BYTES, st->sb_device_bytes);
    if (st->remap_tree.bytenr)
        sb_rootref_put(b + SB_REMAP_TREE, &st->remap_tree);
    if (st->transid > COW_MAX_GENERATION)
        return cow_set_error(COW_ENOSPC, "generation %llu: the container has made its last "
                                         "commit (generations are 48 bits)",
                             (unsigned long long)st->transid);
    if (st->durable_gen >= st->transid)
        return COW_CORRUPT("superblock generation %llu after %llu", (unsigned long long)st->transid,
                           (unsigned long long)st->durable_gen);
    if (one_flush) {
        put32(b + SB_FLAGS, COW_SB_ONE_FLUSH);
        put32(b + SB_COMMIT_NRANGES, (uint32_t)st->nwruns);
        put32(b + SB_COMMIT_CRC, sb_crc_of_crcs(0, st->wcrcs, st->nwcrcs));
        for (size_t i = 0; i < st->nwruns; i++) {
            uint8_t *e = b + SB_COMMIT_LIST + i * SB_COMMIT_ENTRY;
            put64(e, st->wruns[i].bytenr);
            put32(e + 8, (uint32_t)st->wruns[i].nblocks);
        }
    }
    put32(b + SB_CSUM, crc32c(0, b + 4, COW_BLOCK_SIZE - 4));
    int rc = st->dev->write(st->dev, b, COW_BLOCK_SIZE, (uint64_t)slot * COW_BLOCK_SIZE);
    if (rc == COW_OK)
        st->sb_old_version &= ~(1 << slot);
    return rc;
}

/*
 * A one-flush superblock is valid only if every block its commit wrote made
 * it to the device: recompute the crc over the listed blocks.  Nor if the
 * device is smaller than the superblock says: the container grew in that
 * commit (a grow is durable at the next flush, and this commit's flush is
 * the one that did not complete), and the grow was lost while the
 * superblock was kept.  Returns 1 if they match, 0 if not (a torn commit),
 * or an error.
 */
int sb_commit_intact(cow_store *st, const uint8_t *sb, uint64_t devsize)
{
    if (!(get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH))
        return 1;
    if (sb_device_bytes(sb) > devsize)
        return 0;
    uint32_t n = get32(sb + SB_COMMIT_NRANGES), acc = 0;
    uint64_t total = 0;
    uint8_t *buf = malloc(64 * COW_BLOCK_SIZE);
    int rc = 1;
    if (!buf)
        return cow_set_error(COW_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n && rc == 1; i++) {
        const uint8_t *e = sb_commit_entry(sb, i);
        uint64_t at = get64(e), nb = get32(e + 8);
        total += nb;
        if (at % COW_BLOCK_SIZE || nb == 0 || total > COW_ONE_FLUSH_MAX_BLOCKS ||
            at > devsize || nb * COW_BLOCK_SIZE > devsize - at) {
            rc = 0;
            break;
        }
        while (nb > 0 && rc == 1) {
            uint64_t k = nb < 64 ? nb : 64;
            int r = st->dev->read(st->dev, buf, (size_t)(k * COW_BLOCK_SIZE), at);
            if (r) {
                rc = r;
                break;
            }
            for (uint64_t j = 0; j < k; j++) {
                uint32_t c = crc32c(0, buf + j * COW_BLOCK_SIZE, COW_BLOCK_SIZE);
                acc = sb_crc_of_crcs(acc, &c, 1);
            }
            at += k * COW_BLOCK_SIZE;
            nb -= k;
        }
    }
    free(buf);
    if (rc == 1 && acc != get32(sb + SB_COMMIT_CRC))
        rc = 0;
    return rc;
}

