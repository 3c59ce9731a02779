/*
 * replay.c - the log's replay at open: the records of the fast fsync
 * (log.c writes them) applied onto the last commit.
 *
 * The idea is btrfs's log replay (fs/btrfs/tree-log.c btrfs_recover_log_trees):
 * after a crash, mount finds the log that the last commit's superblock names
 * and applies each logged item to the file it belongs to.  Ours reads the
 * records of the log area in use one after the other, as long as each is
 * whole and belongs to this log (crc, log_id, generation, the next sequence
 * number), its items parse (validate.c), and the data blocks its extent items
 * point at match their logged checksums: the first record that fails a check
 * ends the log (a torn record, or one whose data did not reach the device,
 * belongs to a sync that never returned).  A whole record that does not
 * parse, or that proves something the container no longer has (a flushed
 * commit or record: check_lost), is damage, never a crash: open fails
 * with COW_ECORRUPT ("Damage a crash cannot cause" in docs/DESIGN.md).
 *
 * Each record is applied as the write did it: a LOG_RANGE drops the mapping
 * of its range, the EXTENT_DATA items are inserted (extent_map.h), data
 * extents the commit does not know are claimed from free space (they were
 * allocated after it), and the INODE_ITEM sets the size once the block count
 * matches.  The clean cached pages of the ranges it changes are dropped
 * (pc_forget_range).  Replay sits above the files (it opens inodes through
 * file.c's cache) and is called once, by open (store.c).
 *
 * Locking: store->lock held by every caller (asserted).
 */
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "extent_map.h"
#include "lockdep.h"
#include "replay.h"
#include "remap.h"
#include "store_int.h"
#include "validate.h"
#include "vec.h"

#define BLK COW_BLOCK_SIZE

/* Why a record is not valid (ends the log), or NULL. */
static const char *rec_check(cow_store *st, const uint8_t *h, uint64_t seq, uint32_t room)
{
    if (get32(h + LOG_MAGIC) != COW_LOG_MAGIC)
        return "no record";
    if (get64(h + LOG_ID) != st->log_id || get64(h + LOG_GENERATION) != st->generation)
        return "a record of an older commit";
    if (get64(h + LOG_SEQ) != seq)
        return "out of sequence";
    uint32_t nb = get32(h + LOG_NBLOCKS);
    if (nb == 0 || nb > room)
        return "bad length";
    return NULL;
}

struct litem {
    struct cow_key k;
    const uint8_t *d;
    size_t size;
};

/*
 * The shape log_write gives a record (build_inode): an inode's LOG_RANGE
 * items, then the EXTENT_DATA items inside them, then its INODE_ITEM,
 * which closes its ranges.  Replay drops each range's mapping before it
 * inserts the extents, so an extent outside every range would overlap the
 * mapping it keeps (found by the corruption sweep: a record, crc fixed,
 * with an extent's offset changed read other data without an error; fsck
 * reported it, tools/fsck/log.c, whose rule this is).  V holds the N
 * parsed items of record SEQ.  COW_OK, COW_ECORRUPT, COW_ENOMEM.
 */
static int rec_ranges_ok(cow_store *st, const struct litem *v, size_t n, uint64_t seq)
{
    struct lrange {
        uint64_t ino, start, end;
    } *rg = malloc((n ? n : 1) * sizeof *rg);
    size_t nrg = 0;
    uint64_t next_off = 0; /* where the next extent of the last range may start */
    int rc = COW_OK;
    if (!rg)
        return cow_set_error(COW_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == COW_OK; i++) {
        const struct litem *it = &v[i];
        if (it->k.type == COW_LOG_RANGE) {
            rg[nrg++] = (struct lrange){it->k.objectid, it->k.offset, get64(it->d)};
            next_off = it->k.offset;
        } else if (it->k.type == COW_INODE_ITEM) {
            size_t keep = 0; /* close the inode's ranges */
            for (size_t j = 0; j < nrg; j++)
                if (rg[j].ino != it->k.objectid)
                    rg[keep++] = rg[j];
            nrg = keep;
        } else if (it->k.type == COW_EXTENT_DATA) {
            uint64_t end = UINT64_MAX;
            int covered = 0;
            if (range_end(it->k.offset, get64(it->d + FE_NUM_BYTES), &end) == COW_OK)
                for (size_t j = nrg; j-- > 0 && !covered;)
                    covered = rg[j].ino == it->k.objectid && rg[j].start <= it->k.offset &&
                              end <= rg[j].end;
            if (!covered)
                rc = COW_CORRUPT("%s: log record %llu item %zu: EXTENT_DATA (%llu, %llu) not "
                                 "inside a LOG_RANGE of its inode before it",
                                 st->path, (unsigned long long)seq, i,
                                 (unsigned long long)it->k.objectid,
                                 (unsigned long long)it->k.offset);
            /* em_for_extents gives a range's extents in file order,
             * none overlapping: one that starts before the previous one
             * ends would map a block twice (an offset moved, crc fixed,
             * inside a range to the end of the file: found by the sweep) */
            else if (it->k.offset < next_off)
                rc = COW_CORRUPT("%s: log record %llu item %zu: EXTENT_DATA (%llu, %llu) "
                                 "starts before the end (%llu) of the extent item before it",
                                 st->path, (unsigned long long)seq, i,
                                 (unsigned long long)it->k.objectid,
                                 (unsigned long long)it->k.offset,
                                 (unsigned long long)next_off);
            next_off = end;
        }
    }
    if (rc == COW_OK && nrg)
        rc = COW_CORRUPT("%s: log record %llu: LOG_RANGE (%llu, %llu) of inode %llu is not "
                         "followed by the inode's INODE_ITEM",
                         st->path, (unsigned long long)seq, (unsigned long long)rg[0].start,
                         (unsigned long long)rg[0].end, (unsigned long long)rg[0].ino);
    free(rg);
    return rc;
}

/*
 * Parses the items of a whole record R of LEN bytes (nblocks * 4096, its
 * crc checked), the record with sequence number SEQ: every item inside
 * the record and checked by check_item() (EXTENT_CSUM, EXTENT_DATA,
 * INODE_ITEM) or here (LOG_RANGE: 8 bytes, an inode's block-aligned range
 * [start, end) with end > start, end block aligned or 2^64-1).  The item
 * count is bounded by what LEN can hold before it sizes the array.  On
 * success *OUT (freed by the caller) holds *NOUT items pointing into R.
 * COW_OK, COW_ECORRUPT (the message names the record, item and field),
 * COW_ENOMEM.
 */
static int rec_parse(cow_store *st, const uint8_t *r, size_t len, uint64_t seq,
                     struct litem **out, size_t *nout)
{
    uint32_t n = get32(r + LOG_NITEMS);
    if (len < LOG_HEADER_SIZE || n > (len - LOG_HEADER_SIZE) / LOG_ITEM_HEADER)
        return COW_CORRUPT("%s: log record %llu: nitems %u, more than its %zu bytes hold",
                           st->path, (unsigned long long)seq, n, len);
    struct litem *v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return cow_set_error(COW_ENOMEM, "out of memory");
    int rc = COW_OK;
    size_t p = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < n && rc == COW_OK; i++) {
        struct check_where w = {"log record", seq, i};
        struct litem *it = &v[i];
        if (len - p < LOG_ITEM_HEADER) {
            rc = COW_CORRUPT("%s: log record %llu item %u: header past the record's end",
                             st->path, (unsigned long long)seq, i);
            break;
        }
        key_get(&it->k, r + p);
        it->size = get16(r + p + COW_KEY_SIZE);
        it->d = r + p + LOG_ITEM_HEADER;
        if (it->size > len - p - LOG_ITEM_HEADER) {
            rc = COW_CORRUPT("%s: log record %llu item %u: %zu bytes past the record's end",
                             st->path, (unsigned long long)seq, i, it->size);
            break;
        }
        p += LOG_ITEM_HEADER + it->size;
        if (it->k.type != COW_LOG_RANGE) {
            rc = check_item(st, &w, 0, &it->k, it->d, it->size);
            continue;
        }
        uint64_t end = it->size == 8 ? get64(it->d) : 0;
        if (it->size != 8 || it->k.objectid < COW_FIRST_INO || it->k.offset % BLK ||
            end <= it->k.offset || (end % BLK && end != UINT64_MAX))
            rc = COW_CORRUPT("%s: log record %llu item %u: bad LOG_RANGE (%llu, %llu) of "
                             "inode %llu",
                             st->path, (unsigned long long)seq, i,
                             (unsigned long long)it->k.offset, (unsigned long long)end,
                             (unsigned long long)it->k.objectid);
    }
    if (rc == COW_OK)
        rc = rec_ranges_ok(st, v, n, seq);
    /* log_write builds a record in a zeroed buffer: bytes after the items
     * that are not zero are damage (fsck reports them too) */
    if (rc == COW_OK && p < len && !bytes_zero(r + p, len - p))
        rc = COW_CORRUPT("%s: log record %llu: bytes %zu..%zu after the items are not zero",
                         st->path, (unsigned long long)seq, p, len - 1);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *nout = n;
    return COW_OK;
}

/*
 * 1 if the data the record points at matches its checksums: for each
 * EXTENT_CSUM item, the blocks of that extent that the record's REG
 * EXTENT_DATA items point at, and its NODATASUM items if the extent is new
 * since the last commit (young: never overwritten in place, invariant 13;
 * an old one may have been, and its crcs say nothing).  (Blocks only
 * PREALLOC items point at were never written; their checksums are
 * placeholders.)
 */
static int rec_data_ok(cow_store *st, const struct litem *v, size_t n, uint8_t *tmp)
{
    uint8_t want[COW_MAX_EXTENT_BLOCKS];
    for (size_t i = 0; i < n; i++) {
        if (v[i].k.type != COW_EXTENT_CSUM)
            continue;
        uint64_t disk = v[i].k.offset, nb = v[i].size / 4, end;
        if (disk % BLK || disk == 0 || nb == 0 || nb > COW_MAX_EXTENT_BLOCKS ||
            range_end(disk, nb * BLK, &end) || end > st->total_bytes)
            return 0;
        /* An extent past the file's end (the file was cut, and the grow
         * that covered it again was lost with the crash) never reached the
         * device, even one preallocated whose data is not checked below:
         * the flush that made the record durable would have made the grow
         * durable too.  A remapped (older) extent is known, not claimed. */
        uint64_t phys, run;
        remap_translate(st, disk, nb * BLK, &phys, &run);
        if (phys == disk && st->file_bytes && end > st->file_bytes)
            return 0;
        memset(want, 0, (size_t)nb);
        int any = 0, known = 1;
        if (refs_known(st, disk, &known))
            return 0;
        for (size_t j = 0; j < n; j++) {
            const uint8_t *fe = v[j].d;
            if (v[j].k.type != COW_EXTENT_DATA || v[j].size != FE_ITEM_SIZE ||
                get64(fe + FE_DISK_BYTENR) != disk ||
                !(fe[FE_TYPE] == COW_FE_REG || (fe[FE_TYPE] == COW_FE_NODATASUM && !known)))
                continue;
            uint64_t b0 = get64(fe + FE_EXTENT_OFFSET) / BLK;
            uint64_t b1 = b0 + get64(fe + FE_NUM_BYTES) / BLK;
            if (b1 < b0 || b1 > nb)
                return 0;
            for (uint64_t b = b0; b < b1; b++)
                want[b] = 1;
            any = 1;
        }
        if (!any)
            continue;
        if (remap_read(st, tmp, (size_t)(nb * BLK), disk))
            return 0;
        for (uint64_t b = 0; b < nb; b++)
            if (want[b] && crc32c(0, tmp + b * BLK, BLK) != get32(v[i].d + b * 4))
                return 0;
    }
    return 1;
}

/* Applies one valid record to the running transaction. */
/*
 * Data extents the log's records claim, reserved in the physical bitmaps
 * before any record is applied: replaying a record copies tree blocks,
 * and in a group that holds data and tree blocks both (group 0) a new
 * tree block must not land on data a later record names (at run time the
 * log changed no tree, so its data took the lowest free blocks).
 */
struct reserved {
    struct byte_run *v;
    size_t n, cap;
};

/* Releases the reservation of [DISK, +LEN) if it holds one. */
static void unreserve(cow_store *st, struct reserved *rs, uint64_t disk, uint64_t len)
{
    for (size_t i = 0; rs && i < rs->n; i++)
        if (rs->v[i].bytenr == disk && rs->v[i].bytes == len) {
            alloc_phys_clear(st, disk, len);
            rs->v[i] = rs->v[--rs->n];
            return;
        }
}

static int rec_apply(cow_store *st, const struct litem *v, size_t n, struct reserved *rs)
{
    struct cow_inode *in = NULL;
    int rc = COW_OK;
    for (size_t i = 0; i < n && rc == COW_OK; i++) {
        const struct litem *it = &v[i];
        if (it->k.type == COW_EXTENT_CSUM) {
            uint64_t disk = it->k.offset, len = it->size / 4 * BLK;
            int known;
            rc = refs_known(st, disk, &known);
            if (rc)
                continue;
            if (known) {
                /* the tree has its checksums, but blocks preallocated then
                 * written in place since have newer ones here */
                rc = bt_put(st, &st->csum_tree, &it->k, it->d, it->size);
                continue;
            }
            /* allocated after the last commit: claim it, with a pending
             * reference change of 0 that the items below add to (a claimed
             * extent nothing ends up pointing at is freed at commit) */
            unreserve(st, rs, disk, len);
            rc = alloc_claim_data(st, disk, len);
            if (!rc)
                rc = bt_put(st, &st->csum_tree, &it->k, it->d, it->size);
            if (!rc)
                rc = refs_add(st, disk, len, 1, 0, 0);
            continue;
        }
        if (!in || in->ino != it->k.objectid) {
            rc = file_inode_get(st, it->k.objectid, &in);
            if (rc == COW_ECORRUPT)
                rc = COW_CORRUPT("the log names inode %llu, which does not exist",
                                 (unsigned long long)it->k.objectid);
            if (rc)
                break;
        }
        switch (it->k.type) {
        case COW_LOG_RANGE:
            if (get64(it->d) <= it->k.offset || it->k.offset % BLK ||
                (get64(it->d) % BLK && get64(it->d) != UINT64_MAX))
                rc = COW_CORRUPT("log: bad range of inode %llu", (unsigned long long)in->ino);
            else {
                /* clean cached pages of the range would hide its new mapping */
                pc_forget_range(in, it->k.offset, get64(it->d));
                rc = em_drop_range(st, in, it->k.offset, get64(it->d));
            }
            break;
        case COW_EXTENT_DATA: {
            uint64_t disk = get64(it->d + FE_DISK_BYTENR), elen = 0;
            rc = refs_extent_len(st, disk, &elen);
            if (rc == COW_ENOENT)
                rc = COW_CORRUPT("log: inode %llu points at unknown extent %llu",
                                 (unsigned long long)in->ino, (unsigned long long)disk);
            /* the item names the whole extent, as fsck checks it (a
             * disk_num_bytes changed, crc fixed, was replayed: found by
             * the corruption sweep) */
            else if (rc == COW_OK && elen != get64(it->d + FE_DISK_NUM_BYTES))
                rc = COW_CORRUPT("log: inode %llu: EXTENT_DATA at %llu has disk_num_bytes "
                                 "%llu, extent %llu is %llu bytes",
                                 (unsigned long long)in->ino, (unsigned long long)it->k.offset,
                                 (unsigned long long)get64(it->d + FE_DISK_NUM_BYTES),
                                 (unsigned long long)disk, (unsigned long long)elen);
            if (rc == COW_OK)
                rc = em_insert(st, in, it->k.offset, it->d);
            if (rc == COW_OK)
                pc_forget_range(in, it->k.offset,
                                it->k.offset + get64(it->d + FE_NUM_BYTES));
            break;
        }
        case COW_INODE_ITEM:
            if (get64(it->d + INODE_NBLOCKS) != in->nblocks)
                rc = COW_CORRUPT("log: inode %llu has %llu blocks after replay, the log says %llu",
                                 (unsigned long long)in->ino, (unsigned long long)in->nblocks,
                                 (unsigned long long)get64(it->d + INODE_NBLOCKS));
            else {
                in->size = in->disk_size = get64(it->d + INODE_SIZE);
                in->flags = get64(it->d + INODE_FLAGS); /* checked by the record's parse */
                rc = em_inode_save(st, in);
            }
            break;
        }
    }
    return rc;
}

/* A whole record found by scan_area, by its header fields. */
struct log_found {
    uint64_t log_id, generation, seq;
    uint32_t durable, flags;
    uint32_t block; /* where it starts in its area */
};

/*
 * Reads log area K (0 or 1) from block FROM to its end and calls CB for
 * every whole record there (magic, a length that fits, crc), whatever
 * commit it builds on; a block that does not start one is stepped over, a
 * whole record is stepped over as a whole.  CB returns non-zero to stop
 * the scan (returned).  Reads at most the area (sb.log_blocks blocks), in
 * reads of 64 blocks.  Errors: I/O errors, COW_ENOMEM, or CB's.
 */
static int scan_area(cow_store *st, int k, uint32_t from,
                         int (*cb)(cow_store *st, void *arg, int k, const struct log_found *r),
                         void *arg)
{
    enum { CHUNK = 64 };
    uint64_t area = st->log_area[k];
    uint8_t *chunk = malloc((size_t)CHUNK * BLK), *whole = NULL;
    size_t cap = 0;
    int rc = COW_OK;
    if (!chunk)
        return cow_set_error(COW_ENOMEM, "out of memory");
    for (uint32_t pos = from; pos < st->log_blocks && rc == COW_OK;) {
        uint32_t n = st->log_blocks - pos < CHUNK ? st->log_blocks - pos : CHUNK;
        uint32_t next = pos + n;
        rc = st->dev->read(st->dev, chunk, (size_t)n * BLK, area + (uint64_t)pos * BLK);
        for (uint32_t i = 0; i < n && rc == COW_OK; i++) {
            const uint8_t *h = chunk + (size_t)i * BLK;
            uint32_t at = pos + i, nb = get32(h + LOG_NBLOCKS);
            if (get32(h + LOG_MAGIC) != COW_LOG_MAGIC || nb == 0 || nb > st->log_blocks - at)
                continue;
            uint32_t crc;
            if (i + nb <= n) {
                crc = crc32c(0, h + 4, (size_t)nb * BLK - 4);
            } else { /* runs past this chunk: read it whole */
                if (vec_reserve(whole, cap, (size_t)nb * BLK)) {
                    rc = cow_set_error(COW_ENOMEM, "out of memory");
                    break;
                }
                rc = st->dev->read(st->dev, whole, (size_t)nb * BLK, area + (uint64_t)at * BLK);
                if (rc)
                    break;
                crc = crc32c(0, whole + 4, (size_t)nb * BLK - 4);
            }
            if (crc != get32(h + LOG_CSUM))
                continue;
            struct log_found f = {get64(h + LOG_ID), get64(h + LOG_GENERATION),
                                  get64(h + LOG_SEQ), get32(h + LOG_DURABLE),
                                  get32(h + LOG_FLAGS), at};
            rc = cb(st, arg, k, &f);
            if (at + nb > next) {
                next = at + nb; /* step over it, past this chunk */
                break;
            }
            i += nb - 1;
        }
        pos = next;
    }
    free(chunk);
    free(whole);
    return rc;
}

struct lost {
    int k;                /* area of the record found */
    struct log_found rec; /* the record that proves a loss */
    int lost_commit;      /* 1: it proves a commit flushed, 0: a record;
                           * 2: it has this commit's log_id, another generation */
};

/* The record proves a flushed commit or record that open did not find. */
static int lost_cb(cow_store *st, void *arg, int k, const struct log_found *r)
{
    struct lost *l = arg;
    int base_durable = (r->flags & COW_LOG_BASE_DURABLE) || r->durable > 0;
    /* every superblock write takes a new log_id (log_new_id) and records
     * carry the log_id and generation of the commit they build on, so a
     * whole record of this log_id with another generation is damage to
     * it or to the superblock (found by the corruption sweep: a superblock
     * generation changed, crc fixed, opened with no error and no replay) */
    if (r->log_id == st->log_id && r->generation != st->generation) {
        l->lost_commit = 2;
    } else if (base_durable && (r->generation > st->generation ||
                         (r->generation == st->generation && r->log_id != st->log_id))) {
        l->lost_commit = 1;
    } else if (k == st->last_slot && r->log_id == st->log_id &&
               r->generation == st->generation && r->seq > st->log_seq &&
               r->durable > st->log_seq) {
        l->lost_commit = 0;
    } else {
        return 0;
    }
    l->k = k;
    l->rec = *r;
    return 1;
}

/*
 * After replay has applied st->log_seq records: is there proof that the
 * container held more (docs/DESIGN.md, "Damage a crash cannot cause")?  A
 * torn newer superblock saying more records were flushed, a whole record
 * after the end of the log saying the one that ends it was flushed, or a
 * whole record in either area saying a newer commit was flushed: each is
 * damage a crash cannot cause, and the open fails with COW_ECORRUPT
 * rather than go back past what was acknowledged.  Reads the rest of this
 * area and the whole other one.
 */
static int check_lost(cow_store *st)
{
    if (!st->log_blocks)
        return COW_OK;
    if (st->log_seq < st->replay_min)
        return COW_CORRUPT("%s: log record %llu of generation %llu is damaged or missing: "
                           "superblock generation %llu (torn) was written after %u records "
                           "of that log were flushed",
                           st->path, (unsigned long long)(st->log_seq + 1),
                           (unsigned long long)st->generation,
                           (unsigned long long)st->replay_min_gen, st->replay_min);
    struct lost l = {0};
    int rc = COW_OK;
    for (int i = 0; i < COW_SB_COPIES && rc == COW_OK; i++) {
        int k = i ? 1 - st->last_slot : st->last_slot;
        rc = scan_area(st, k, k == st->last_slot ? st->log_next : 0, lost_cb, &l);
    }
    if (rc != 1)
        return rc;
    if (l.lost_commit == 2)
        return COW_CORRUPT("%s: log record %llu (log area %d block %u) has the log_id of "
                           "commit generation %llu but generation %llu: the record or the "
                           "superblock is damaged",
                           st->path, (unsigned long long)l.rec.seq, l.k, l.rec.block,
                           (unsigned long long)st->generation,
                           (unsigned long long)l.rec.generation);
    if (!l.lost_commit)
        return COW_CORRUPT("%s: log record %llu of generation %llu is damaged: record %llu "
                           "(log area %d block %u), written after it was flushed, is intact",
                           st->path, (unsigned long long)(st->log_seq + 1),
                           (unsigned long long)st->generation, (unsigned long long)l.rec.seq,
                           l.k, l.rec.block);
    return COW_CORRUPT("%s: commit generation %llu was flushed (log record %llu in log area %d "
                       "says so) but the newest valid commit is generation %llu%s%s",
                       st->path, (unsigned long long)l.rec.generation,
                       (unsigned long long)l.rec.seq, l.k, (unsigned long long)st->generation,
                       st->sb_rejected[0] ? ": " : "", st->sb_rejected);
}

/* Reads the valid records of the log from its start and reserves every
 * data extent they name that is free now (struct reserved).  Stops at
 * the first record that does not check, as replay does. */
static int reserve_logged_data(cow_store *st, uint64_t area, struct reserved *rs)
{
    uint8_t *rec = NULL;
    size_t cap = 0;
    uint32_t next = 0;
    uint64_t seq = 0;
    int rc = COW_OK;
    while (next < st->log_blocks) {
        uint32_t room = st->log_blocks - next;
        uint64_t at = area + (uint64_t)next * BLK;
        if (vec_reserve(rec, cap, BLK)) {
            rc = cow_set_error(COW_ENOMEM, "out of memory");
            break;
        }
        if ((rc = st->dev->read(st->dev, rec, BLK, at)) != COW_OK)
            break;
        if (rec_check(st, rec, seq + 1, room))
            break;
        uint32_t nb = get32(rec + LOG_NBLOCKS);
        if (vec_reserve(rec, cap, (size_t)nb * BLK)) {
            rc = cow_set_error(COW_ENOMEM, "out of memory");
            break;
        }
        if (nb > 1 && (rc = st->dev->read(st->dev, rec + BLK, (size_t)(nb - 1) * BLK, at + BLK)))
            break;
        if (crc32c(0, rec + 4, (size_t)nb * BLK - 4) != get32(rec + LOG_CSUM))
            break;
        struct litem *v = NULL;
        size_t n = 0;
        if (rec_parse(st, rec, (size_t)nb * BLK, seq + 1, &v, &n) != COW_OK) {
            rc = COW_OK; /* the replay itself reports it */
            break;
        }
        for (size_t i = 0; i < n && !rc; i++) {
            if (v[i].k.type != COW_EXTENT_CSUM)
                continue;
            uint64_t disk = v[i].k.offset, len = v[i].size / 4 * BLK;
            if (!len || !alloc_is_free(st, disk, len))
                continue;
            /* its group a data group again now, not after replay's first
             * tree block landed there (found by the crash simulator) */
            alloc_retype_for_data(st, disk);
            if (vec_reserve(rs->v, rs->cap, rs->n + 1))
                rc = cow_set_error(COW_ENOMEM, "out of memory");
            else if ((rc = alloc_phys_set(st, disk, len)) == COW_OK)
                rs->v[rs->n++] = (struct byte_run){disk, len};
        }
        free(v);
        if (rc)
            break;
        next += nb;
        seq++;
    }
    free(rec);
    return rc;
}

int replay_log(cow_store *st, uint64_t *napplied)
{
    lk_assert_held(&st->lock);
    uint8_t *rec = NULL, *tmp = NULL;
    struct reserved rs = {NULL, 0, 0};
    int rc = COW_OK;
    *napplied = 0;
    st->log_next = 0;
    st->log_seq = 0;
    if (!st->log_blocks)
        return COW_OK;
    uint64_t area = st->log_area[st->last_slot];
    /* an empty log (the usual open) costs one block read */
    size_t cap = BLK;
    rec = malloc(cap);
    if (!rec) {
        rc = cow_set_error(COW_ENOMEM, "out of memory");
        goto out;
    }
    st->replaying = 1;
    rc = reserve_logged_data(st, area, &rs);
    if (rc)
        goto out;
    for (;;) {
        uint32_t room = st->log_blocks - st->log_next;
        if (room == 0)
            break;
        uint64_t at = area + (uint64_t)st->log_next * BLK;
        rc = st->dev->read(st->dev, rec, BLK, at);
        if (rc)
            goto out;
        if (rec_check(st, rec, st->log_seq + 1, room))
            break;
        uint32_t nb = get32(rec + LOG_NBLOCKS);
        if (vec_reserve(rec, cap, (size_t)nb * BLK)) {
            rc = cow_set_error(COW_ENOMEM, "out of memory");
            goto out;
        }
        if (nb > 1) {
            rc = st->dev->read(st->dev, rec + BLK, (size_t)(nb - 1) * BLK, at + BLK);
            if (rc)
                goto out;
        }
        if (crc32c(0, rec + 4, (size_t)nb * BLK - 4) != get32(rec + LOG_CSUM))
            break; /* torn */
        if (get32(rec + LOG_DURABLE) > st->log_seq ||
            (get32(rec + LOG_FLAGS) & ~COW_LOG_BASE_DURABLE)) {
            rc = COW_CORRUPT("%s: log record %llu of generation %llu is whole but says %u "
                             "records were flushed before it (flags 0x%x)",
                             st->path, (unsigned long long)(st->log_seq + 1),
                             (unsigned long long)st->generation, get32(rec + LOG_DURABLE),
                             get32(rec + LOG_FLAGS));
            goto out;
        }
        struct litem *v = NULL;
        size_t n = 0;
        rc = rec_parse(st, rec, (size_t)nb * BLK, st->log_seq + 1, &v, &n);
        if (rc)
            goto out; /* whole but does not parse: damage, not a crash */
        if (!tmp && !(tmp = malloc(COW_MAX_EXTENT_BLOCKS * BLK))) {
            free(v);
            rc = cow_set_error(COW_ENOMEM, "out of memory");
            goto out;
        }
        if (!rec_data_ok(st, v, n, tmp)) {
            free(v); /* its data never reached the device: the sync never returned */
            rc = COW_OK;
            break;
        }
        rc = rec_apply(st, v, n, &rs);
        free(v);
        if (rc)
            goto out;
        st->txn_dirty = 1;
        st->log_next += nb;
        st->log_seq++;
        (*napplied)++;
    }
    rc = check_lost(st);
    /* A reader on another client (RADOS), beside a live writer: the log it
     * read after the superblocks may hold that writer's newer records
     * (written since, over the ones of the commit read: the areas are
     * reused), and a commit's superblock may show before its blocks do
     * (RADOS orders writes to different objects only at a flush).  Not
     * damage: the reader keeps the commit it read and the records of it
     * that it found whole, a state that was acknowledged.  The writer made
     * these checks at its own open; fsck makes them on a closed one. */
    if (rc == COW_ECORRUPT && st->readonly && st->dev->writer_elsewhere &&
        st->dev->writer_elsewhere(st->dev) == 1)
        rc = COW_OK;
    if (rc == COW_OK)
        st->log_durable = st->durable_log = (uint32_t)st->log_seq; /* read back: on the device */
out:
    /* what was not claimed (records not replayed) is free again */
    for (size_t i = 0; i < rs.n; i++)
        alloc_phys_clear(st, rs.v[i].bytenr, rs.v[i].bytes);
    free(rs.v);
    st->replaying = 0;
    file_inode_forget_unused(st);
    free(rec);
    free(tmp);
    return rc;
}
