/*
 * log.c - the log: the fast fsync (its replay at open is replay.c).
 *
 * The idea is btrfs's tree-log (fs/btrfs/tree-log.c): an fsync of one file
 * does not commit the whole transaction; it writes copies of that file's
 * changed items (extent items, inode item, checksums) to a log and flushes
 * once, and mount replays the log after a crash.  Ours differs in where
 * the log lives: instead of a tree whose root the superblock must point at
 * (a second flush), records are appended to a preallocated area that goes
 * with the superblock copy of the last commit, and each record validates
 * itself: a crc over the record, the commit it builds on (log_id,
 * generation), a sequence number, and the checksums of every data block it
 * points at.  A record torn by a power loss, or one whose data did not
 * reach the device, fails a check and ends replay there: it belongs to a
 * sync that never returned.  So the data and the record can go to the
 * device together, under one flush.  The format is in store/format.h.
 *
 * What a record holds for a file: for each range whose mapping changed
 * since the file's last record (or the last commit), the extent items now
 * covering it (a LOG_RANGE item, then EXTENT_DATA items), the checksums of
 * the data extents they point at, and the inode item (size, block count).
 * Replay drops the range's mapping and inserts the logged items, as the
 * write did; data extents that the last commit does not know are claimed
 * from free space (they were allocated after it).
 *
 * What keeps the data a record points at intact until replay no longer
 * needs it (invariant 1): data is written copy-on-write to new space only;
 * space freed after the last commit stays pinned until a later commit is
 * flushed; and log area k is rewritten only after a commit to superblock
 * copy k, which never holds the last flushed commit.
 *
 * The order of the fast fsync (docs/DESIGN.md, invariant 2: a sync must
 * never log a mapping whose data is still being written, or replay would
 * point the file at blocks that never reached the device): writeback links
 * an ordered extent into its inode before it notes the range here, and an
 * extent item enters the trees only when its ordered extent completes,
 * after the data is written.  Every caller of log_write first waits for
 * the ordered extents overlapping the ranges it logs (oe_wait_logged,
 * oe_wait_all in ordered.c), so a record never points at data not written.
 *
 * The flush (file.c file_sync): the record is written under store->lock,
 * and the sync then waits for a flush that started after it
 * (txn_flush_wait: the lock is released while the device flushes, and
 * syncs whose records one flush covers share it).  What a record claims
 * (LOG_DURABLE, COW_LOG_BASE_DURABLE) comes from the last completed
 * flush's durable point, never from one still in flight (invariant 8),
 * and no commit runs while such a flush is in flight (txn_flush_quiesce),
 * so a log area is reused only as before.
 *
 * Locking: store->lock held by every caller (asserted).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "crc32c.h"
#include "extent_map.h"
#include "lockdep.h"
#include "store_int.h"
#include "validate.h"
#include "vec.h"

#define BLK COW_BLOCK_SIZE

int log_usable(cow_store *st)
{
    lk_assert_held(&st->lock);
    return st->log_blocks && !st->log_blocked && !st->readonly && !st->failed;
}

void log_reset(cow_store *st)
{
    lk_assert_held(&st->lock);
    st->log_next = 0;
    st->log_seq = 0;
    st->log_blocked = 0;
    st->log_unflushed = 0;
    st->log_durable = 0;
    for (struct cow_inode *in = st->inodes; in; in = in->next)
        em_clear_modified(in);
}

uint64_t log_new_id(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (st->rng == 0) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        }
        st->rng = seed | 1;
    }
    /* splitmix64 */
    uint64_t z = (st->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 1;
}

uint32_t log_area_blocks(cow_store *st, int shrinking)
{
    lk_assert_held(&st->lock);
    /* what it holds besides the log areas themselves: the blocks in use
     * (not those freed and still pinned: a move of the areas would
     * count the old ones and grow them back at once) */
    uint64_t phys = 0, areas = 2 * (uint64_t)st->log_blocks * BLK;
    for (size_t i = 0; i < st->nbgs; i++)
        phys += st->bgs[i].used;
    phys = phys > areas ? phys - areas : 0;
    if (shrinking)
        return phys >= COW_LOG_GROW_AT / 2 ? COW_LOG_AREA_BLOCKS
               : phys >= COW_LOG_SMALL_AT / 2 ? COW_LOG_AREA_BLOCKS_SMALL
                                              : COW_LOG_AREA_BLOCKS_TINY;
    if (phys >= COW_LOG_GROW_AT / 2 && st->total_bytes >= COW_LOG_GROW_AT)
        return COW_LOG_AREA_BLOCKS;
    return phys >= COW_LOG_SMALL_AT ? COW_LOG_AREA_BLOCKS_SMALL : COW_LOG_AREA_BLOCKS_TINY;
}

int log_alloc_areas(cow_store *st)
{
    lk_assert_held(&st->lock);
    uint64_t at;
    uint32_t n = log_area_blocks(st, 0);
    int rc = alloc_contig_meta(st, 2 * (uint64_t)n, &at);
    if (rc)
        return rc;
    st->log_area[0] = at;
    st->log_area[1] = at + (uint64_t)n * BLK;
    st->log_blocks = n;
    st->txn_dirty = 1;
    return COW_OK;
}

int log_move_areas(cow_store *st, uint64_t below)
{
    lk_assert_held(&st->lock);
    if (!st->log_blocks)
        return COW_OK;
    /* a container that holds little again gets small areas again */
    uint32_t nb = log_area_blocks(st, 1);
    if (nb > st->log_blocks)
        nb = st->log_blocks;
    uint64_t n = 2 * (uint64_t)nb, at;
    int rc = alloc_contig_meta_below(st, n, below, &at);
    if (rc == COW_ENOSPC)
        return COW_OK; /* nowhere lower: they stay (relocation never grows the file) */
    if (rc)
        return rc;
    if (at >= st->log_area[0]) {
        alloc_unalloc(st, at, n * BLK);
        return COW_OK;
    }
    /* as log_grow_areas: the old areas stay pinned until this commit is
     * flushed, the other superblock copy still names them */
    uint64_t len = (uint64_t)st->log_blocks * BLK;
    for (int i = 0; i < COW_SB_COPIES && !rc; i++)
        rc = alloc_free(st, st->log_area[i], len);
    if (rc)
        return rc;
    st->log_area[0] = at;
    st->log_area[1] = at + (uint64_t)nb * BLK;
    st->log_blocks = nb;
    st->txn_dirty = 1;
    st->log_blocked = 1; /* the next change commits: the new areas take effect */
    return COW_OK;
}

int log_grow_areas(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (!st->log_blocks || st->log_blocks >= COW_LOG_AREA_BLOCKS ||
        st->alloc_soft_end /* a balance runs */)
        return COW_OK;
    uint32_t nb = log_area_blocks(st, 0);
    if (nb <= st->log_blocks)
        return COW_OK;
    /* The old areas stay pinned until this commit is flushed: the other
     * superblock copy, and the records built on it, still name them
     * (invariant 1).  Records after this commit go to the new ones. */
    uint64_t old[COW_SB_COPIES] = {st->log_area[0], st->log_area[1]}, at;
    uint64_t len = (uint64_t)st->log_blocks * BLK;
    int rc = alloc_contig_meta(st, 2 * (uint64_t)nb, &at);
    for (int i = 0; i < COW_SB_COPIES && !rc; i++)
        rc = alloc_free(st, old[i], len);
    if (rc)
        return rc;
    st->log_area[0] = at;
    st->log_area[1] = at + (uint64_t)nb * BLK;
    st->log_blocks = nb;
    st->txn_dirty = 1;
    return COW_OK;
}

/* ---- building a record ---- */

struct rec {
    uint8_t *b;
    size_t len, cap;
    uint32_t nitems;
    /* The data extents whose EXTENT_CSUM is in the record: a set of
     * struct hm_node (malloc'd, key disk_bytenr). */
    struct hmap csummed;
    uint64_t probes; /* lookups plus nodes examined (st->log_csum_probes) */
};

/* 1 if DISK is in the set, counting the probes. */
static int csummed_has(struct rec *r, uint64_t disk)
{
    r->probes++;
    for (struct hm_node *n = hm_bucket(&r->csummed, disk); n; n = n->next) {
        r->probes++;
        if (n->key == disk)
            return 1;
    }
    return 0;
}

/* Adds DISK (not in it yet) to the set.  COW_ENOMEM. */
static int csummed_add(struct rec *r, uint64_t disk)
{
    struct hm_node *n = malloc(sizeof *n);
    if (!n || hm_insert(&r->csummed, n, disk)) {
        free(n);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    return COW_OK;
}

static void csummed_free(struct rec *r)
{
    struct hm_node *n, *next;
    hm_for_each_safe(&r->csummed, n, next)
        free(n);
    hm_destroy(&r->csummed);
}

static int rec_reserve(struct rec *r, size_t more)
{
    if (vec_reserve(r->b, r->cap, r->len + more))
        return cow_set_error(COW_ENOMEM, "out of memory");
    return COW_OK;
}

static int rec_item(struct rec *r, const struct cow_key *k, const void *data, size_t size)
{
    int rc = rec_reserve(r, LOG_ITEM_HEADER + size);
    if (rc)
        return rc;
    key_put(r->b + r->len, k);
    put16(r->b + r->len + COW_KEY_SIZE, (uint16_t)size);
    if (size)
        memcpy(r->b + r->len + LOG_ITEM_HEADER, data, size);
    r->len += LOG_ITEM_HEADER + size;
    r->nitems++;
    return COW_OK;
}

struct build {
    cow_store *st;
    struct rec csums; /* EXTENT_CSUM items, applied first */
    struct rec items; /* everything else */
    struct cow_inode *in;
};

/* Adds the EXTENT_CSUM item of data extent DISK (DISK_LEN bytes, bounded by
 * check_file_extent) unless already there: a hash set, so a record of n
 * extents costs O(n), not O(n^2). */
static int add_csum(struct build *b, uint64_t disk, uint64_t disk_len)
{
    struct rec *r = &b->csums;
    if (csummed_has(r, disk))
        return COW_OK;
    uint8_t c[COW_MAX_EXTENT_BLOCKS * 4];
    size_t size;
    struct cow_key k = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, disk};
    int rc = bt_lookup(b->st, &b->st->csum_tree, &k, c, sizeof c, &size);
    if (rc == COW_ENOENT)
        return COW_CORRUPT("data extent %llu has no checksums", (unsigned long long)disk);
    if (!rc)
        rc = check_csum_matches(disk, disk_len, size); /* SIZE <= sizeof c */
    if (!rc)
        rc = csummed_add(r, disk);
    if (rc)
        return rc;
    return rec_item(r, &k, c, size);
}

static int build_extent_cb(void *arg, uint64_t off, const uint8_t *fe)
{
    struct build *b = arg;
    int rc = add_csum(b, get64(fe + FE_DISK_BYTENR), get64(fe + FE_DISK_NUM_BYTES));
    if (rc)
        return rc;
    struct cow_key k = {b->in->ino, COW_EXTENT_DATA, off};
    return rec_item(&b->items, &k, fe, FE_ITEM_SIZE);
}

static int build_inode(struct build *b, struct cow_inode *in)
{
    if (in->root != &b->st->fs_tree)
        return COW_LOG_FULL; /* records hold the live files only */
    b->in = in;
    for (size_t i = 0; i < in->nlr; i++) {
        uint8_t end[8];
        put64(end, in->lr[i].end);
        struct cow_key k = {in->ino, COW_LOG_RANGE, in->lr[i].start};
        int rc = rec_item(&b->items, &k, end, sizeof end);
        if (!rc)
            rc = em_for_extents(b->st, in, in->lr[i].start, in->lr[i].end, build_extent_cb, b);
        if (rc)
            return rc;
    }
    uint8_t it[INODE_ITEM_SIZE];
    memset(it, 0, sizeof it);
    put64(it + INODE_SIZE, in->disk_size);
    put64(it + INODE_NBLOCKS, in->nblocks);
    put64(it + INODE_GENERATION, in->generation);
    put64(it + INODE_FLAGS, in->flags);
    put64(it + INODE_TRANSID, b->st->transid);
    struct cow_key k = {in->ino, COW_INODE_ITEM, 0};
    return rec_item(&b->items, &k, it, sizeof it);
}

int log_write(cow_store *st, struct cow_inode **v, size_t n, int flush)
{
    lk_assert_held(&st->lock);
    struct build b = {.st = st};
    int rc = COW_OK;
    uint8_t *buf = NULL;
    if (!log_usable(st))
        return COW_LOG_FULL;
    for (size_t i = 0; i < n && rc == COW_OK; i++) {
        if (v[i]->log_overflow)
            rc = COW_LOG_FULL;
        else
            rc = build_inode(&b, v[i]);
    }
    if (rc)
        goto out;
    size_t body = LOG_HEADER_SIZE + b.csums.len + b.items.len;
    uint64_t nb = (body + BLK - 1) / BLK;
    if (nb > st->log_blocks - st->log_next) {
        rc = COW_LOG_FULL;
        goto out;
    }
    buf = calloc(nb, BLK);
    if (!buf) {
        rc = cow_set_error(COW_ENOMEM, "out of memory");
        goto out;
    }
    put32(buf + LOG_MAGIC, COW_LOG_MAGIC);
    put64(buf + LOG_ID, st->log_id);
    put64(buf + LOG_GENERATION, st->generation);
    put64(buf + LOG_SEQ, st->log_seq + 1);
    put32(buf + LOG_NBLOCKS, (uint32_t)nb);
    put32(buf + LOG_NITEMS, b.csums.nitems + b.items.nitems);
    /* what a later record proves: see format.h */
    put32(buf + LOG_DURABLE, st->log_durable);
    put32(buf + LOG_FLAGS, st->unflushed ? 0 : COW_LOG_BASE_DURABLE);
    if (b.csums.len)
        memcpy(buf + LOG_HEADER_SIZE, b.csums.b, b.csums.len);
    if (b.items.len)
        memcpy(buf + LOG_HEADER_SIZE + b.csums.len, b.items.b, b.items.len);
    put32(buf + LOG_CSUM, crc32c(0, buf + 4, (size_t)(nb * BLK - 4)));
    uint64_t at = st->log_area[st->last_slot] + (uint64_t)st->log_next * BLK;
    rc = st->dev->write(st->dev, buf, (size_t)(nb * BLK), at);
    if (rc)
        goto out; /* nothing changed: the next record goes to the same place */
    st->log_next += (uint32_t)nb;
    st->log_seq++;
    st->log_unflushed = 1;
    st->log_flush_need = txn_flush_need(st);
    st->stats.log_records++;
    st->stats.log_blocks += nb;
    for (size_t i = 0; i < n; i++) {
        v[i]->nlr = 0;
        v[i]->log_size = 0;
    }
    if (flush)
        rc = txn_flush(st); /* a failure stops the store (fsyncgate) */
out:
    st->log_csum_probes += b.csums.probes;
    free(buf);
    free(b.csums.b);
    csummed_free(&b.csums);
    free(b.items.b);
    return rc;
}
