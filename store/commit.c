/*
 * commit.c - the committed state: loaded at open, made at format, and
 * written out by each commit of the running transaction (txn.c).
 *
 * An xSync does not commit: it writes a log record of its file (log.c) and
 * flushes once.  A commit happens on cow_store_commit, every
 * commit_interval (the committer thread), for snapshots, branches and
 * other changes the log cannot express, and as the fallback of an xSync
 * whose record the log cannot take (COW_LOG_FULL).
 *
 * Commit (commit_transaction; btrfs's btrfs_commit_transaction in
 * fs/btrfs/transaction.c), after waiting for the ordered extents in flight:
 *   1. write the subvolume trees' ROOT_ITEMs whose roots moved (roots.c);
 *   2. apply delayed refs to the extent tree (freeing extents at 0);
 *   3. write BLOCK_GROUP_ITEMs until their used bytes stop changing;
 *   4. write every dirty tree block (all to space the last commit does not
 *      reach); a large commit flushes them here, a small one lists its
 *      blocks in the superblock instead (the one-flush commit, super.c);
 *   5. write the superblock copy the last commit did not use, flush (or,
 *      with FLUSH 0, leave it to the next flush);
 *   6. unpin the space this transaction freed (once a flush made it safe).
 * A crash before 5 completes leaves the previous commit (its superblock
 * copy is untouched and everything it reaches is unchanged); after 5 the
 * new one.
 *
 * Failures: a failure that changed nothing, or left the trees whole (no
 * room to grow for the commit, an I/O error writing the tree blocks in 4),
 * fails this commit only: the transaction stays as it was, its blocks
 * dirty, and the next commit writes them again.  A failure in 1-3, a
 * failed flush or one while writing the superblock stops the store
 * (txn_abort).
 *
 * Where it sits: above every module that changes the transaction (the
 * page cache's count check, ordered extents, the log, the roots, the
 * allocator, refcounts, the btree, the superblock), which it calls down
 * into; called by the files, subvolumes and the store (store.c, file.c,
 * subvol.c).
 *
 * Locking: store->lock held by every caller (asserted).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bgsum.h"
#include "commit.h"
#include "shared.h"
#include "crc32c.h"
#include "inject.h"
#include "lockdep.h"
#include "ordered.h"
#include "remaptree.h"
#include "roots.h"
#include "store_int.h"
#include "super.h"
#include "vec.h"

static int mark_block_cb(cow_store *st, void *arg, struct eb *e)
{
    (void)arg;
    return alloc_mark_used(st, e->bytenr, COW_BLOCK_SIZE);
}

struct scan_state {
    uint64_t *bg_used; /* from BLOCK_GROUP_ITEMs, per group; UINT64_MAX = missing */
};

static int scan_extent_leaf(cow_store *st, void *arg, struct eb *e)
{
    struct scan_state *ss = arg;
    const uint8_t *b = e->data;
    if (tb_level(b) != 0)
        return COW_OK;
    for (unsigned i = 0; i < tb_nritems(b); i++) {
        struct cow_key k;
        key_get(&k, leaf_item(b, i));
        unsigned sz = leaf_data_size(b, i);
        int rc = COW_OK;
        if (k.type == COW_EXTENT_ITEM) {
            if (sz != EXT_ITEM_SIZE)
                return COW_CORRUPT("extent item %llu size %u", (unsigned long long)k.objectid, sz);
            rc = alloc_mark_used(st, k.objectid, k.offset);
        } else if (k.type == COW_METADATA_ITEM) {
            if (sz != EXT_ITEM_SIZE)
                return COW_CORRUPT("metadata item %llu size %u", (unsigned long long)k.objectid,
                                   sz);
            rc = alloc_mark_used(st, k.objectid, COW_BLOCK_SIZE);
        } else if (k.type == COW_BLOCK_GROUP_ITEM) {
            uint64_t gi = k.objectid / st->bg_size;
            if (sz != BG_ITEM_SIZE || k.objectid % st->bg_size || k.offset != st->bg_size ||
                gi >= st->nbgs)
                return COW_CORRUPT("bad block group item at %llu",
                                   (unsigned long long)k.objectid);
            ss->bg_used[gi] = get64(b + leaf_data_off(b, i) + BG_USED);
            uint64_t fl = get64(b + leaf_data_off(b, i) + BG_FLAGS);
            if (fl != COW_BG_DATA && fl != COW_BG_METADATA && (fl != COW_BG_MIXED || gi != 0))
                return COW_CORRUPT("block group %llu has type 0x%llx",
                                   (unsigned long long)k.objectid, (unsigned long long)fl);
            st->bgs[gi].flags = fl;
            bgsum_stale(st);
        }
        if (rc)
            return rc;
    }
    return COW_OK;
}

int commit_load(cow_store *st)
{
    lk_assert_held(&st->lock);
    uint8_t sb[2][COW_BLOCK_SIZE];
    const char *why[2]; /* sb_invalid of each copy */
    uint64_t devsize;
    int rc, best = -1, magic = 0;
    struct scan_state ss = {NULL};

    rc = st->dev->size(st->dev, &devsize);
    if (rc)
        return rc;
    /* After an application crash the last commit may still be only in the
     * OS's cache: make it durable before building on it. */
    if (!st->readonly && devsize >= 2 * COW_BLOCK_SIZE) {
        rc = store_flush(st);
        if (rc)
            return rc;
    }
    if (devsize < 2 * COW_BLOCK_SIZE)
        return cow_set_error(COW_ENOTCONTAINER,
                             "%s is not a cowvfs container (%llu bytes, too small)", st->path,
                             (unsigned long long)devsize);
    for (int i = 0; i < 2; i++) {
        rc = st->dev->read(st->dev, sb[i], COW_BLOCK_SIZE, (uint64_t)i * COW_BLOCK_SIZE);
        if (rc)
            return rc;
        why[i] = sb_invalid(sb[i]); /* once: every refresh of a reader reads both */
        if (get64(sb[i] + SB_MAGIC) == COW_SB_MAGIC)
            magic = 1;
        if (!why[i] && sb_is_old(sb[i]))
            st->sb_old_version |= 1 << i;
        if (!why[i] &&
            (best < 0 || get64(sb[i] + SB_GENERATION) > get64(sb[best] + SB_GENERATION)))
            best = i;
    }
    /* A copy whose crc matches was written whole: a field out of range is
     * damage (or another format), and which copy is newest is unknown. */
    for (int i = 0; i < 2; i++) {
        if (get64(sb[i] + SB_MAGIC) != COW_SB_MAGIC ||
            crc32c(0, sb[i] + 4, COW_BLOCK_SIZE - 4) != get32(sb[i] + SB_CSUM) ||
            !why[i])
            continue;
        uint32_t ver = get32(sb[i] + SB_VERSION);
        if (ver != COW_FORMAT_VERSION && ver != COW_FORMAT_VERSION_1 &&
            ver != COW_FORMAT_VERSION_2)
            return COW_CORRUPT("%s: superblock copy %d has format version %u; this version of "
                               "cowvfs reads versions %u to %u",
                               st->path, i, ver, COW_FORMAT_VERSION_1, COW_FORMAT_VERSION);
        return COW_CORRUPT("%s: superblock copy %d is whole (its checksum matches) but has %s "
                           "(generation %llu): damage a crash cannot cause",
                           st->path, i, why[i],
                           (unsigned long long)get64(sb[i] + SB_GENERATION));
    }
    /* Both copies are written with the container's uuid (sb_write), so two
     * valid copies that differ are damage; fsck reports it too. */
    if (!why[0] && !why[1] && memcmp(sb[0] + SB_UUID, sb[1] + SB_UUID, 16))
        return COW_CORRUPT("%s: superblock copies 0 and 1 (generations %llu and %llu) have "
                           "different container uuids",
                           st->path, (unsigned long long)get64(sb[0] + SB_GENERATION),
                           (unsigned long long)get64(sb[1] + SB_GENERATION));
    /* A file shorter than every valid copy says is a truncated container,
     * not a torn commit (sb_commit_intact takes a device smaller than the
     * newest copy says for a lost grow, which only the newest can have):
     * say so rather than blame the commit lists. */
    if (best >= 0 && sb_device_bytes(sb[best]) > devsize &&
        (why[1 - best] || sb_device_bytes(sb[1 - best]) > devsize))
        return COW_CORRUPT("%s is truncated: %llu bytes, the superblock says %llu", st->path,
                           (unsigned long long)devsize,
                           (unsigned long long)sb_device_bytes(sb[best]));
    st->sb_rejected[0] = 0;
    st->replay_min = 0;
    st->replay_min_gen = 0;
    if (best >= 0 && why[1 - best] && get64(sb[1 - best] + SB_MAGIC) == COW_SB_MAGIC)
        snprintf(st->sb_rejected, sizeof st->sb_rejected, "superblock copy %d: %s", 1 - best,
                 why[1 - best]);
    if (best >= 0) {
        /* the newest copy may be a torn one-flush commit: then the other,
         * which must hold the commit the torn one was written after, with
         * at least as many log records as it says were flushed (a torn
         * copy's own fields are whole: its crc matched).  Whether the
         * torn commit was in fact flushed (damage, not a tear) is for
         * replay_log to find: a record built on it says so.  A version-1
         * copy names no commit it was written after: the other copy is
         * only required to be older, whole and intact. */
        /* A commit another process published (xproc.c, under the
         * shared mutex, after its blocks were written: the same file's
         * cache, coherent across processes) is whole unless the machine
         * went down since, which ends every process and the shared state
         * with them.  Its blocks are checked when read (invariant 6). */
        if (st->load_published && get64(sb[best] + SB_GENERATION) == st->load_published &&
            sb_device_bytes(sb[best]) <= devsize)
            rc = 1;
        else
            rc = sb_commit_intact(st, sb[best], devsize);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            const uint8_t *torn = sb[best];
            uint64_t tgen = get64(torn + SB_GENERATION);
            int named = !sb_is_v1(torn); /* it names the commit it was written after */
            uint64_t want = named ? get64(torn + SB_PREV_GENERATION) : 0;
            int other = 1 - best;
            if (sb_device_bytes(torn) > devsize) /* say which: truncation or a lost grow */
                snprintf(st->sb_rejected, sizeof st->sb_rejected,
                         "superblock copy %d (generation %llu): the file is %llu bytes, it "
                         "says %llu (truncated, or the commit's grow was lost)",
                         best, (unsigned long long)tgen, (unsigned long long)devsize,
                         (unsigned long long)sb_device_bytes(torn));
            else
                snprintf(st->sb_rejected, sizeof st->sb_rejected,
                         "superblock copy %d (generation %llu): its commit's blocks do not "
                         "match",
                         best, (unsigned long long)tgen);
            if (why[other]) {
                if (want)
                    return COW_CORRUPT("%s: superblock copy %d (generation %llu) is torn, and "
                                       "copy %d, which must hold generation %llu, is damaged "
                                       "(%s)",
                                       st->path, best, (unsigned long long)tgen, other,
                                       (unsigned long long)want, why[other]);
                return COW_CORRUPT("%s: the newest commit is torn and no older one is valid",
                                   st->path);
            }
            uint64_t ogen = get64(sb[other] + SB_GENERATION);
            if (named && ogen != want)
                return COW_CORRUPT("%s: superblock copy %d (generation %llu) is torn, and copy "
                                   "%d holds generation %llu, not generation %llu it was "
                                   "written after",
                                   st->path, best, (unsigned long long)tgen, other,
                                   (unsigned long long)ogen, (unsigned long long)want);
            if (ogen >= tgen)
                return COW_CORRUPT("%s: superblock copy %d (generation %llu) is torn, and copy "
                                   "%d holds generation %llu, not an older one",
                                   st->path, best, (unsigned long long)tgen, other,
                                   (unsigned long long)ogen);
            rc = sb_commit_intact(st, sb[other], devsize);
            if (rc < 0)
                return rc;
            if (rc == 0)
                return COW_CORRUPT("%s: superblock copies %d (generation %llu) and %d "
                                   "(generation %llu) both have commits whose blocks do not "
                                   "match: generation %llu was flushed, so that is damage",
                                   st->path, best, (unsigned long long)tgen, other,
                                   (unsigned long long)ogen, (unsigned long long)ogen);
            st->replay_min = named ? get32(torn + SB_PREV_LOG_RECORDS) : 0;
            st->replay_min_gen = tgen;
            best = other;
        } else if (!sb_is_v1(sb[best]) && !why[1 - best] &&
                   get64(sb[1 - best] + SB_GENERATION) !=
                                                  get64(sb[best] + SB_PREV_GENERATION)) {
            /* A superblock goes to the copy that does not hold the last
             * flushed commit and names that commit in prev_generation
             * (sb_write), and a flushed copy is never overwritten before
             * the next flush: so a whole other copy holds exactly the
             * newest's prev_generation.  Anything else is damage, such as
             * the older copy's generation raised above the newer one, crc
             * fixed, which would be taken for the newest (found by the
             * corruption sweep). */
            return COW_CORRUPT("%s: superblock copy %d (generation %llu) was written after "
                               "generation %llu, but copy %d holds generation %llu: one of "
                               "them is damaged",
                               st->path, best, (unsigned long long)get64(sb[best] + SB_GENERATION),
                               (unsigned long long)get64(sb[best] + SB_PREV_GENERATION),
                               1 - best,
                               (unsigned long long)get64(sb[1 - best] + SB_GENERATION));
        }
    }
    if (best < 0) {
        if (!magic)
            return cow_set_error(COW_ENOTCONTAINER,
                                 "%s is not a cowvfs container (no superblock magic)", st->path);
        return COW_CORRUPT("%s: both superblocks are damaged (copy 0: %s; copy 1: %s)",
                           st->path, why[0], why[1]);
    }
    const uint8_t *s = sb[best];
    st->durable_slot = st->last_slot = best;
    st->unflushed = 0;
    /* another process (the owner before this load) may have overwritten
     * a nodatacow file in place without a flush: the next sync flushes
     * (invariant 13) */
    st->data_unflushed = !st->readonly;
    st->generation = get64(s + SB_GENERATION);
    st->durable_gen = st->generation;
    /* an owner's load flushed first (above): this generation is durable */
    if (!st->readonly && st->shared && shared_is_owner(st->shared))
        shared_set_durable(st->shared, st->durable_gen);
    st->durable_log = st->log_durable = 0; /* replay_log counts them */
    st->transid = st->generation + 1;
    st->bg_size = get64(s + SB_BG_SIZE);
    uint64_t total = get64(s + SB_TOTAL_BYTES);
    uint64_t need = sb_device_bytes(s);
    if (devsize < need)
        return COW_CORRUPT("%s is truncated: %llu bytes, the superblock says %llu", st->path,
                           (unsigned long long)devsize, (unsigned long long)need);
    st->file_bytes = devsize;
    st->sb_device_bytes = st->cut_floor = need; /* what a crash comes back to */
    memcpy(st->uuid, s + SB_UUID, 16);
    st->ctime = get64(s + SB_CTIME);
    st->log_area[0] = get64(s + SB_LOG_AREA0);
    st->log_area[1] = get64(s + SB_LOG_AREA1);
    st->log_blocks = get32(s + SB_LOG_BLOCKS);
    st->log_id = get64(s + SB_LOG_ID);
    if ((st->log_blocks == 0) != (st->log_area[0] == 0) ||
        (st->log_blocks == 0) != (st->log_area[1] == 0) ||
        st->log_blocks > st->bg_size / COW_BLOCK_SIZE)
        return COW_CORRUPT("%s: the superblock's log areas are inconsistent", st->path);
    memset(&st->root_tree, 0, sizeof st->root_tree);
    memset(&st->extent_tree, 0, sizeof st->extent_tree);
    memset(&st->csum_tree, 0, sizeof st->csum_tree);
    memset(&st->fs_tree, 0, sizeof st->fs_tree);
    memset(&st->remap_tree, 0, sizeof st->remap_tree);
    sb_rootref_get(s + SB_ROOT_TREE, &st->root_tree);
    if (!sb_is_old(s))
        sb_rootref_get(s + SB_REMAP_TREE, &st->remap_tree);
    st->remap_tree.objectid = COW_REMAP_TREE_OBJECTID;
    if (st->remap_tree.level >= COW_MAX_LEVEL)
        return COW_CORRUPT("tree level out of range in the superblock");
    sb_rootref_get(s + SB_EXTENT_TREE, &st->extent_tree);
    sb_rootref_get(s + SB_CSUM_TREE, &st->csum_tree);
    st->root_tree.objectid = COW_ROOT_TREE_OBJECTID;
    st->extent_tree.objectid = COW_EXTENT_TREE_OBJECTID;
    st->csum_tree.objectid = COW_CSUM_TREE_OBJECTID;
    st->fs_tree.objectid = COW_FS_TREE_OBJECTID;
    st->fs_tree.refcounted = 1;
    if (st->root_tree.level >= COW_MAX_LEVEL || st->extent_tree.level >= COW_MAX_LEVEL ||
        st->csum_tree.level >= COW_MAX_LEVEL)
        return COW_CORRUPT("tree level out of range in the superblock");

    /* Since format 3 the file may be shorter than total_bytes, so the size
     * no longer bounds it: every group needs a BLOCK_GROUP_ITEM, stored in
     * extent tree leaves inside the file, which bounds how many there can
     * be (a damaged total_bytes must not size the group table; found by
     * fuzz_open). */
    uint64_t max_groups =
        (devsize / COW_BLOCK_SIZE) * (COW_LEAF_SPACE / (COW_ITEM_SIZE + BG_ITEM_SIZE));
    if (total / st->bg_size > max_groups)
        return COW_CORRUPT("%s: the superblock's total_bytes %llu is more block groups than a "
                           "file of %llu bytes can hold items for",
                           st->path, (unsigned long long)total, (unsigned long long)devsize);
    st->loaded_bytes_used = get64(s + SB_BYTES_USED);
    st->loaded_total_bytes = total;
    if (st->keep_alloc && st->nbgs && total >= st->total_bytes &&
        total % st->bg_size == 0) {
        /* xproc.c: the map stays; groups added since are added by the
         * journal (alloc_apply_journal); until then reads may reach
         * them */
        st->total_bytes = total;
    } else {
        if (st->keep_alloc) {
            alloc_destroy(st); /* groups added or cut since: rebuilt */
            st->keep_alloc = 0;
        }
        st->total_bytes = 0;
        rc = alloc_init_groups(st, total);
        if (rc)
            return rc;
    }
    /* where relocated blocks are, before any other tree is read */
    rc = remaptree_load(st);
    if (rc)
        return rc;

    uint8_t ri[ROOT_ITEM_SIZE];
    size_t sz;
    struct cow_key k = {COW_FS_TREE_OBJECTID, COW_ROOT_ITEM, 0};
    rc = bt_lookup(st, &st->root_tree, &k, ri, sizeof ri, &sz);
    if (rc == COW_ENOENT || (rc == COW_OK && sz != ROOT_ITEM_SIZE))
        return COW_CORRUPT("no valid root item for the database subvolume");
    if (rc)
        return rc;
    roots_item_get(ri, &st->fs_tree);
    if (st->fs_tree.level >= COW_MAX_LEVEL)
        return COW_CORRUPT("subvolume tree level out of range");
    rc = roots_load(st);
    if (rc)
        return rc;
    /* A view of another process's publication (xproc.c) only reads: it
     * needs no free space map, which is most of a load's work.  Becoming
     * the owner reloads in full. */
    if (st->view_load) {
        st->data_cursor = st->meta_cursor = 0;
        st->txn_dirty = 0;
        return COW_OK;
    }

    /* Rebuild free space: superblocks, the unshared trees' blocks, and every
     * extent the extent tree lists. */
    ss.bg_used = malloc(st->nbgs * sizeof *ss.bg_used);
    if (!ss.bg_used)
        return cow_set_error(COW_ENOMEM, "out of memory");
    for (size_t i = 0; i < st->nbgs; i++)
        ss.bg_used[i] = UINT64_MAX;
    rc = alloc_mark_used(st, 0, 2 * COW_BLOCK_SIZE);
    for (int i = 0; i < COW_SB_COPIES && !rc && st->log_blocks; i++)
        rc = alloc_mark_used(st, st->log_area[i], (uint64_t)st->log_blocks * COW_BLOCK_SIZE);
    if (!rc)
        rc = bt_walk_blocks(st, &st->root_tree, mark_block_cb, NULL);
    if (!rc)
        rc = bt_walk_blocks(st, &st->extent_tree, mark_block_cb, NULL);
    if (!rc)
        rc = bt_walk_blocks(st, &st->csum_tree, mark_block_cb, NULL);
    if (!rc && st->remap_tree.bytenr)
        rc = bt_walk_blocks(st, &st->remap_tree, mark_block_cb, NULL);
    if (!rc)
        rc = bt_walk_blocks(st, &st->extent_tree, scan_extent_leaf, &ss);
    if (!rc)
        rc = remaptree_apply_physical(st);
    if (!rc && alloc_device_bytes(st) > need)
        rc = COW_CORRUPT("blocks are stored up to byte %llu, past the %llu bytes the "
                         "superblock says the container needs",
                         (unsigned long long)alloc_device_bytes(st), (unsigned long long)need);
    for (size_t i = 0; i < st->nbgs && !rc; i++) {
        if (ss.bg_used[i] == UINT64_MAX)
            rc = COW_CORRUPT("block group %zu has no item", i);
        else if (ss.bg_used[i] != st->bgs[i].used)
            rc = COW_CORRUPT("block group %zu: item says %llu bytes used, trees use %llu", i,
                             (unsigned long long)ss.bg_used[i],
                             (unsigned long long)st->bgs[i].used);
    }
    free(ss.bg_used);
    if (rc)
        return rc;
    uint64_t used = 0;
    for (size_t i = 0; i < st->nbgs; i++)
        used += st->bgs[i].used;
    if (used != get64(s + SB_BYTES_USED))
        return COW_CORRUPT("superblock says %llu bytes used, trees use %llu",
                           (unsigned long long)get64(s + SB_BYTES_USED),
                           (unsigned long long)used);
    st->data_cursor = st->meta_cursor = 0;
    st->txn_dirty = 0;
    /* the map as loaded: nothing of it for the allocation journal */
    st->nxops = 0;
    st->xops_complex = 0;
    return COW_OK;
}

int commit_format(cow_store *st)
{
    lk_assert_held(&st->lock);
    int rc;
    st->bg_size = COW_DEFAULT_BG_SIZE;
    st->generation = 0;
    st->transid = 1;
    st->total_bytes = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    st->ctime = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    for (int i = 0; i < 16; i++)
        st->uuid[i] = (uint8_t)(crc32c((uint32_t)i, &ts, sizeof ts) >> 8 ^ (uintptr_t)st >> (i % 8));
    /* group 0 holds data too: a small database needs no second group */
    rc = alloc_add_group(st, COW_BG_MIXED);
    if (rc)
        return rc;
    rc = alloc_mark_used(st, 0, 2 * COW_BLOCK_SIZE);
    if (rc)
        return rc;
    rc = log_alloc_areas(st);
    if (rc)
        return rc;
    memset(&st->root_tree, 0, sizeof st->root_tree);
    memset(&st->extent_tree, 0, sizeof st->extent_tree);
    memset(&st->csum_tree, 0, sizeof st->csum_tree);
    memset(&st->fs_tree, 0, sizeof st->fs_tree);
    memset(&st->remap_tree, 0, sizeof st->remap_tree);
    st->root_tree.objectid = COW_ROOT_TREE_OBJECTID;
    st->extent_tree.objectid = COW_EXTENT_TREE_OBJECTID;
    st->csum_tree.objectid = COW_CSUM_TREE_OBJECTID;
    st->remap_tree.objectid = COW_REMAP_TREE_OBJECTID;
    st->fs_tree.objectid = COW_FS_TREE_OBJECTID;
    st->fs_tree.refcounted = 1;
    st->fs_tree.next_ino = COW_FIRST_INO;
    st->fs_tree.ctime = st->ctime;
    if ((rc = bt_create(st, &st->root_tree)) || (rc = bt_create(st, &st->extent_tree)) ||
        (rc = bt_create(st, &st->csum_tree)) || (rc = bt_create(st, &st->fs_tree)))
        return rc;
    /* Zero both superblock slots: until the first commit the device holds
     * no container.  (cow_store_open() formats a temporary file and
     * publishes it only after this commit, so a crash here leaves no
     * half-made container at the path; on other devices the zeros make it
     * recognisably not a container.) */
    uint8_t z[2 * COW_BLOCK_SIZE];
    memset(z, 0, sizeof z);
    rc = st->dev->write(st->dev, z, sizeof z, 0);
    if (rc)
        return rc;
    st->txn_dirty = 1;
    st->durable_slot = 0; /* the first commit goes to copy 1 */
    return commit_transaction(st, 1);
}

static int cmp_eb(const void *a, const void *b)
{
    const struct eb *x = *(const struct eb *const *)a, *y = *(const struct eb *const *)b;
    return x->bytenr < y->bytenr ? -1 : x->bytenr > y->bytenr;
}

/* Writes every dirty block, coalescing neighbours into one write. */
static int write_dirty(cow_store *st)
{
    size_t n = st->cache.ndirty, k = 0;
    int rc = COW_OK;
    if (!n)
        return COW_OK;
    struct eb **v = malloc(n * sizeof *v);
    uint8_t *buf = malloc(64 * COW_BLOCK_SIZE);
    if (!v || !buf) {
        rc = cow_set_error(COW_ENOMEM, "out of memory");
        goto out;
    }
    for (struct eb *e = st->cache.dirty; e; e = e->dnext) {
        put32(e->data + TB_CSUM, crc32c(0, e->data + 4, COW_BLOCK_SIZE - 4));
        v[k++] = e;
    }
    qsort(v, n, sizeof *v, cmp_eb);
    for (size_t i = 0; i < n && !rc;) {
        size_t j = i;
        while (j + 1 < n && j + 1 - i < 64 && v[j + 1]->bytenr == v[j]->bytenr + COW_BLOCK_SIZE)
            j++;
        uint32_t crcs[64];
        for (size_t m = i; m <= j; m++) {
            memcpy(buf + (m - i) * COW_BLOCK_SIZE, v[m]->data, COW_BLOCK_SIZE);
            crcs[m - i] = crc32c(0, v[m]->data, COW_BLOCK_SIZE);
        }
        rc = st->dev->write(st->dev, buf, (j - i + 1) * COW_BLOCK_SIZE, v[i]->bytenr);
        if (rc == COW_OK)
            txn_note_written(st, v[i]->bytenr, j - i + 1, crcs);
        i = j + 1;
    }
out:
    free(v);
    free(buf);
    return rc;
}

/* sb_write(), and with other processes (st->shared) under the shared
 * mutex, GEN published with it: a process that reloads (xproc.c) reads
 * either the superblock before it or this one whole, with the matching
 * publication.  Errors: sb_write's. */
static int sb_write_published(cow_store *st, int slot, int one_flush, uint64_t log_id,
                              uint64_t gen)
{
    if (!st->shared)
        return sb_write(st, slot, one_flush, log_id);
    (void)shared_lock(st->shared); /* a holder that died changed nothing here */
    int rc = sb_write(st, slot, one_flush, log_id);
    COW_INJECT("commit:sb_written"); /* tests: a death before the publication */
    if (rc == COW_OK) {
        shared_publish(st->shared, gen);
        st->seen_seq = shared_seq(st->shared);
        st->published_gen = gen;
    }
    shared_unlock(st->shared);
    return rc;
}

/* Makes the last commit durable (it was made without a flush).  Only when
 * the running transaction is empty (space pinned since is unpinned). */
static int make_durable(cow_store *st)
{
    int rc = txn_flush(st);
    if (rc == COW_OK)
        alloc_unpin_all(st);
    return rc;
}

/* A commit that failed with RC before changing anything the running
 * transaction cannot take again: says so in the error and returns RC. */
static int kept(int rc)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", cow_store_last_error(NULL));
    return cow_set_error(rc, "%s (not committed: the changes stay and the next commit "
                             "writes them)", msg);
}

int commit_transaction(cow_store *st, int flush)
{
    lk_assert_held(&st->lock);
    int rc;
    if (st->failed)
        return cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
    if (st->readonly)
        return COW_OK;
    /* Ordered extents in flight hold allocated space no tree points at
     * yet: they complete first; and a flush in flight (a sync's, with
     * store->lock released) completes before the superblock copy to write
     * is chosen from what is durable (store->lock is released meanwhile). */
    for (;;) {
        oe_wait_all(st);
        if (!st->flush_running)
            break;
        txn_flush_quiesce(st);
    }
    if (st->failed)
        return cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
    /* another process owns the container: this one has nothing to write
     * (a change would have made it the owner, xproc.c) */
    int owner = !st->shared || shared_is_owner(st->shared);
    if (!st->txn_dirty)
        return (flush && (st->unflushed || st->data_unflushed) && owner) ? make_durable(st)
                                                                          : COW_OK;
    if (!owner)
        return txn_abort(st, cow_set_error(COW_EFAILED, "changes made without owning the "
                                                        "container (a bug)"));

    /* Room for what the commit itself allocates (extent and root tree
     * paths); growing here can fail cleanly with ENOSPC. */
    rc = alloc_reserve(st, 0, 64 + st->ndrefs / 8);
    if (rc)
        return kept(rc); /* nothing changed */
    if (st->fs_tree.dirty) {
        uint8_t ri[ROOT_ITEM_SIZE];
        struct cow_key k = {st->fs_tree.objectid, COW_ROOT_ITEM, 0};
        roots_item_put(ri, &st->fs_tree);
        rc = bt_put(st, &st->root_tree, &k, ri, sizeof ri);
        if (rc)
            goto abort;
    }
    rc = roots_commit(st);
    if (!rc)
        rc = log_grow_areas(st);
    if (rc)
        goto abort;
    rc = refs_run(st);
    if (rc)
        goto abort;
    /* Space freed in this transaction, and where it is stored: remap runs
     * of freed blocks go (remap.c); changing the remap tree or the block
     * group items frees blocks again, so until nothing new is freed. */
    do {
        rc = remaptree_commit_frees(st);
        if (!rc)
            rc = refs_update_block_groups(st);
        if (rc)
            goto abort;
    } while (st->npinned_remapped < st->npinned);
    /* The written-block list as it was: a failed write_dirty() may have
     * noted some runs, which the next attempt writes (and notes) again. */
    size_t wruns0 = st->nwruns, wcrcs0 = st->nwcrcs;
    uint64_t wlast0 = st->nwruns ? st->wruns[st->nwruns - 1].nblocks : 0;
    int woverflow0 = st->wlog_overflow;
    rc = write_dirty(st);
    if (rc) {
        /* The trees are whole and every block stays dirty: nothing the
         * last commit reaches was touched (dirty blocks live in space it
         * does not use), so this commit alone fails. */
        st->nwruns = wruns0;
        st->nwcrcs = wcrcs0;
        if (wruns0)
            st->wruns[wruns0 - 1].nblocks = wlast0;
        st->wlog_overflow = woverflow0;
        return kept(rc);
    }
    /* A small commit lists its blocks (every block written since the last
     * flushed commit that the new state references) in the superblock and
     * needs one flush, or none; a large one flushes its blocks before the
     * superblock.  Either way the superblock goes to the copy that does not
     * hold the last flushed commit. */
    txn_wlog_drop_freed(st);
    /* (NODATASUM data is flushed before the superblock, not listed:
     * invariant 13) */
    int one_flush = !st->wlog_overflow && !st->nodatasum_unflushed && st->nwruns <= SB_COMMIT_MAX;
    if (!one_flush)
        flush = 1; /* too much to list: a commit without flush is not possible */
    /* Space freed since the last flush stays pinned; past this much, flush
     * (amortised over many commits) rather than hold more back. */
    if (st->npinned > COW_MAX_PINNED_RUNS)
        flush = 1;
    if (!one_flush) {
        rc = txn_flush(st); /* a failed flush stops the store */
        if (rc)
            return rc;
    }
    int slot = 1 - st->durable_slot;
    uint64_t log_id = log_new_id(st);
    /* before the superblock: a commit whose journal entries are missing
     * was never written (a death in between leaves entries of a commit
     * that never was, which the next owner invalidates); and what it
     * frees is held for other processes' readers before any of them can
     * find it free (after the superblock, a death before the record let
     * the next owner give out what a reader of the last commit reads) */
    alloc_record_frees(st);
    alloc_record_ops(st);
    rc = sb_write_published(st, slot, one_flush, log_id, st->transid);
    if (rc == COW_OK && flush)
        rc = store_flush(st);
    if (rc) {
        /* The new superblock may or may not be on disk: no way back. */
        __atomic_store_n(&st->failed, 1, __ATOMIC_RELEASE);
        return rc;
    }
    st->last_slot = slot;
    st->log_id = log_id;
    /* committed */
    for (struct eb *e = st->cache.dirty; e;) {
        struct eb *next = e->dnext;
        e->dirty = 0;
        e->shared = 0;
        e->dnext = NULL;
        e = next;
    }
    st->cache.dirty = NULL;
    st->cache.ndirty = 0;
    st->root_tree.dirty = st->extent_tree.dirty = st->csum_tree.dirty = 0;
    st->remap_tree.dirty = 0;
    st->fs_tree.dirty = 0;
    roots_committed(st);
    alloc_release_chunk(st);
    st->generation = st->transid;
    st->transid++;
    st->txn_dirty = 0;
    st->ncommits++;
    st->ncommits_one_flush += one_flush && flush;
    st->stats.commits++;
    st->stats.commits_flushed += flush;
    st->last_one_flush = one_flush;
    st->last_commit_ns = cow_mono_ns();
    log_reset(st); /* records build on the new commit, in area SLOT */
#ifdef COW_DEBUG
    /* every count recomputed after every transaction (debug builds) */
    rc = pc_check_counts(st);
    if (rc) {
        __atomic_store_n(&st->failed, 1, __ATOMIC_RELEASE);
        return rc;
    }
#endif
    if (flush) {
        txn_now_durable(st);
        alloc_unpin_all(st);
    } else {
        /* Until a flush, space freed since the last flushed commit stays
         * pinned (that commit is what a power loss goes back to) and the
         * next commit's list keeps covering every block written since. */
        st->unflushed++;
    }
    return COW_OK;
abort:
    /* (1)-(3) may have changed the trees halfway */
    return txn_abort(st, rc);
}

int commit_upgrade(cow_store *st)
{
    lk_assert_held(&st->lock);
    /* each commit writes the copy that does not hold the last one */
    for (int i = 0; i < COW_SB_COPIES && st->sb_old_version; i++) {
        st->txn_dirty = 1; /* the same trees, in the other copy */
        int rc = commit_transaction(st, 1);
        if (rc)
            return rc;
    }
    return COW_OK;
}

int commit_seal(cow_store *st)
{
    lk_assert_held(&st->lock);
    txn_flush_quiesce(st); /* the copy to write follows from what is durable */
    if (st->readonly || st->failed || st->txn_dirty || (st->shared && !shared_is_owner(st->shared)))
        return COW_OK;
    if (st->unflushed) {
        int rc = make_durable(st);
        if (rc)
            return rc;
    }
    if (!st->last_one_flush)
        return COW_OK;
    /* same trees, a superblock that needs no validation */
    txn_wlog_reset(st);
    int slot = 1 - st->durable_slot;
    uint64_t log_id = log_new_id(st);
    int rc = sb_write_published(st, slot, 0, log_id, st->transid);
    if (rc == COW_OK)
        rc = store_flush(st);
    if (rc) {
        __atomic_store_n(&st->failed, 1, __ATOMIC_RELEASE);
        return rc;
    }
    st->log_id = log_id;
    log_reset(st);
    st->durable_slot = st->last_slot = slot;
    st->generation = st->transid;
    st->durable_gen = st->generation;
    if (st->shared && shared_is_owner(st->shared))
        shared_set_durable(st->shared, st->durable_gen); /* inplace.c */
    st->durable_log = 0;
    st->transid++;
    st->last_one_flush = 0;
    return COW_OK;
}

