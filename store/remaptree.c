/*
 * remaptree.c - the remap tree kept in step with the remap table.
 *
 * Every change to where blocks are stored goes to both the table
 * (remap.c) and the remap tree, in the running transaction: relocation
 * adds and moves runs (reloc.c), the commit cuts the runs of freed blocks
 * (remaptree_commit_frees).  A run's old physical place is pinned, never
 * cleared at once: the last flushed commit may still name it (invariant
 * 7).  The remap tree's own blocks are read at their own addresses and
 * are never remapped (relocation copies them on write instead), so it can
 * be read first at open (btrfs's remap tree has its own block groups for
 * the same reason).  The idea is btrfs's remap tree (the 2025 series
 * "btrfs: remap tree").
 *
 * Locking: store->lock held by every caller.
 */
#include <stdlib.h>
#include <string.h>

#include "lockdep.h"
#include "remap.h"
#include "remaptree.h"
#include "store_int.h"
#include "vec.h"

#define BLK COW_BLOCK_SIZE

/* ---- the table and the tree together ---- */

static int ensure_tree(cow_store *st)
{
    if (st->remap_tree.bytenr)
        return COW_OK;
    st->remap_tree.objectid = COW_REMAP_TREE_OBJECTID;
    st->remap_tree.refcounted = 0;
    return bt_create(st, &st->remap_tree);
}

/* A new run, in the tree and the table. */
static int put_run(cow_store *st, uint64_t logical, uint64_t len, uint64_t phys)
{
    struct remap_run r = {logical, len, phys};
    uint8_t d[REMAP_ITEM_SIZE];
    struct cow_key k = {logical, COW_REMAP_ITEM, len};
    put64(d + REMAP_PHYSICAL, phys);
    int rc = ensure_tree(st);
    if (!rc)
        rc = bt_insert(st, &st->remap_tree, &k, d, sizeof d);
    if (!rc)
        rc = remap_insert(st, remap_find(st, logical), &r);
    st->txn_dirty = 1;
    st->log_blocked = 1; /* the log cannot express remap changes */
    return rc;
}

/* Run AT leaves the tree and the table. */
static int drop_run(cow_store *st, size_t at)
{
    struct cow_key k = {st->remap[at].logical, COW_REMAP_ITEM, st->remap[at].len};
    int rc = bt_delete(st, &st->remap_tree, &k);
    if (rc == COW_ENOENT)
        rc = COW_CORRUPT("remap item (%llu %u %llu) is in memory, not in the remap tree",
                         (unsigned long long)k.objectid, k.type, (unsigned long long)k.offset);
    if (!rc)
        remap_remove(st, at);
    st->txn_dirty = 1;
    st->log_blocked = 1;
    return rc;
}

/* Replaces run AT by what is left of it outside [A, A + N), and, with
 * NEWPHYS != 0, [A, A + N) stored at NEWPHYS. */
static int cut_run(cow_store *st, size_t at, uint64_t a, uint64_t n, uint64_t newphys)
{
    struct remap_run r = st->remap[at];
    int rc = drop_run(st, at);
    if (!rc && r.logical < a)
        rc = put_run(st, r.logical, a - r.logical, r.phys);
    if (!rc && newphys)
        rc = put_run(st, a, n, newphys);
    if (!rc && a + n < r.logical + r.len)
        rc = put_run(st, a + n, r.logical + r.len - (a + n),
                     r.phys ? r.phys + (a + n - r.logical) : 0);
    return rc;
}

int remaptree_add(cow_store *st, uint64_t logical, uint64_t len, uint64_t phys)
{
    lk_assert_held(&st->lock);
    if (remap_overlaps(st, logical, len))
        return COW_CORRUPT("relocating [%llu, +%llu), which is remapped already",
                           (unsigned long long)logical, (unsigned long long)len);
    int rc = put_run(st, logical, len, phys);
    if (!rc)
        rc = alloc_phys_pin(st, logical, len);
    return rc;
}

int remaptree_move(cow_store *st, uint64_t logical, uint64_t len, uint64_t phys)
{
    lk_assert_held(&st->lock);
    size_t i = remap_find(st, logical);
    if (i >= st->nremap || st->remap[i].logical > logical ||
        st->remap[i].logical + st->remap[i].len < logical + len)
        return COW_ENOENT;
    uint64_t old = st->remap[i].phys + (logical - st->remap[i].logical);
    int rc = cut_run(st, i, logical, len, phys);
    if (!rc)
        rc = alloc_phys_pin(st, old, len);
    return rc;
}

int remaptree_commit_frees(cow_store *st)
{
    lk_assert_held(&st->lock);
    while (st->npinned_remapped < st->npinned) {
        /* a copy: changing the remap tree appends to st->pinned */
        struct byte_run fr = st->pinned[st->npinned_remapped];
        uint64_t a = fr.bytenr, end = fr.bytenr + fr.bytes;
        while (a < end) {
            uint64_t phys, run;
            remap_translate(st, a, end - a, &phys, &run);
            int rc = phys ? alloc_phys_pin(st, phys, run) : COW_OK; /* 0: dropped */
            if (!rc && phys != a)
                rc = cut_run(st, remap_find(st, a), a, run, 0);
            if (rc)
                return rc;
            a += run;
        }
        st->npinned_remapped++;
    }
    return COW_OK;
}

/* ---- load ---- */

static int load_leaf(cow_store *st, void *arg, struct eb *e)
{
    (void)arg;
    const uint8_t *b = e->data;
    if (tb_level(b) != 0)
        return COW_OK;
    for (unsigned i = 0; i < tb_nritems(b); i++) {
        struct cow_key k;
        key_get(&k, leaf_item(b, i));
        if (k.type != COW_REMAP_ITEM || leaf_data_size(b, i) != REMAP_ITEM_SIZE)
            return COW_CORRUPT("remap tree block %llu item %u is not a remap item",
                               (unsigned long long)e->bytenr, i);
        struct remap_run r = {k.objectid, k.offset, get64(b + leaf_data_off(b, i))};
        /* the walk goes in key order: a run must start past the last */
        if (st->nremap) {
            const struct remap_run *p = &st->remap[st->nremap - 1];
            if (p->logical + p->len > r.logical)
                return COW_CORRUPT("remap items (%llu, +%llu) and (%llu, +%llu) overlap",
                                   (unsigned long long)p->logical, (unsigned long long)p->len,
                                   (unsigned long long)r.logical, (unsigned long long)r.len);
        }
        for (int a = 0; a < COW_SB_COPIES && st->log_blocks; a++) {
            uint64_t s0 = st->log_area[a], s1 = s0 + (uint64_t)st->log_blocks * BLK;
            if ((r.logical < s1 && r.logical + r.len > s0) ||
                (r.phys && r.phys < s1 && r.phys + r.len > s0))
                return COW_CORRUPT("remap item (%llu, +%llu) -> %llu touches a log area",
                                   (unsigned long long)r.logical, (unsigned long long)r.len,
                                   (unsigned long long)r.phys);
        }
        int rc = remap_insert(st, st->nremap, &r);
        if (rc)
            return rc;
    }
    return COW_OK;
}

int remaptree_load(cow_store *st)
{
    lk_assert_held(&st->lock);
    st->nremap = 0;
    if (!st->remap_tree.bytenr)
        return COW_OK;
    return bt_walk_blocks(st, &st->remap_tree, load_leaf, NULL);
}

int remaptree_apply_physical(cow_store *st)
{
    lk_assert_held(&st->lock);
    for (size_t i = 0; i < st->nremap; i++) {
        const struct remap_run *r = &st->remap[i];
        if (!alloc_is_used(st, r->logical, r->len))
            return COW_CORRUPT("remap item (%llu, +%llu) names blocks nothing uses",
                               (unsigned long long)r->logical, (unsigned long long)r->len);
        alloc_phys_clear(st, r->logical, r->len);
    }
    for (size_t i = 0; i < st->nremap; i++) {
        if (!st->remap[i].phys)
            continue; /* dropped: not stored */
        int rc = alloc_phys_set(st, st->remap[i].phys, st->remap[i].len);
        if (rc)
            return rc;
    }
    return COW_OK;
}

/* ---- copy on write of the remap tree's own blocks ---- */

struct cow_keys {
    struct cow_key *k;
    size_t n, cap;
    uint64_t start, end;
    int empty_root; /* the root is an empty leaf inside the range */
};

static int note_block(cow_store *st, void *arg, struct eb *e)
{
    (void)st;
    struct cow_keys *ck = arg;
    if (e->bytenr < ck->start || e->bytenr >= ck->end)
        return COW_OK;
    const uint8_t *b = e->data;
    if (tb_nritems(b) == 0) {
        ck->empty_root = 1;
        return COW_OK;
    }
    if (vec_reserve(ck->k, ck->cap, ck->n + 1))
        return cow_set_error(COW_ENOMEM, "out of memory");
    /* the first key under this block: a change there copies the block */
    key_get(&ck->k[ck->n++], tb_level(b) ? node_ptr(b, 0) : leaf_item(b, 0));
    return COW_OK;
}

int remaptree_cow_in(cow_store *st, uint64_t start, uint64_t len)
{
    lk_assert_held(&st->lock);
    if (!st->remap_tree.bytenr)
        return COW_OK;
    struct cow_keys ck = {NULL, 0, 0, start, start + len, 0};
    int rc = bt_walk_blocks(st, &st->remap_tree, note_block, &ck);
    for (size_t i = 0; i < ck.n && !rc; i++) {
        /* a node's first key is a lower bound: rewrite the first item at
         * or after it, which lies under that node */
        struct cow_key found;
        uint8_t d[REMAP_ITEM_SIZE];
        size_t sz;
        rc = bt_seek_ge(st, &st->remap_tree, &ck.k[i], &found, d, sizeof d, &sz);
        if (rc == COW_ENOENT) {
            rc = COW_OK;
            continue;
        }
        if (!rc)
            rc = bt_put(st, &st->remap_tree, &found, d, sz);
    }
    free(ck.k);
    if (!rc && ck.empty_root) {
        uint64_t old = st->remap_tree.bytenr;
        rc = bt_create(st, &st->remap_tree);
        if (!rc)
            rc = bt_free_block(st, &st->remap_tree, old, 0);
    }
    st->txn_dirty = 1;
    return rc;
}

