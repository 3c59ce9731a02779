/*
 * usage.c - the space a subvolume references, split into what only it
 * holds (what deleting it frees) and what it shares with other trees.
 *
 * Sharing is implicit (Rodeh, "B-trees, Shadowing, and Clones", ACM TOS
 * 2008): a tree block's reference count says how many parents point at
 * it, not how many trees reach it, so a block with one parent under a
 * block with two is reached by two trees all the same.  One pre-order walk
 * of the tree (bt_walk_blocks) therefore carries, for each level, whether
 * the path from the root down to the block last visited there is
 * exclusive: a block is exclusive when its own count is 1 and its parent's
 * path is exclusive.  That is exactly the set of blocks bt_drop_tree
 * frees.
 *
 * A data extent's count is the number of (leaf, EXTENT_DATA item) pairs
 * pointing at it (bt_leaf_extent).  The walk counts, per extent, the
 * references from exclusive leaves; the extent is exclusive when they are
 * all of its references, which again is what bt_drop_tree frees.  Each
 * extent is counted once, whole (disk_num_bytes), however many items of
 * the tree point into it.
 *
 * Counts are the effective ones (refs_get: the extent tree plus the
 * pending delayed refs), so blocks and extents of the running transaction
 * count as they will after its commit.  Dirty pages not yet written back
 * are in no tree and not counted.
 *
 * Locking: cow_subvol_usage takes store->lock for the whole walk; the rest
 * runs under it.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "roots.h"
#include "store_int.h"

/* One data extent the tree points at. */
struct xent {
    uint64_t bytenr; /* 0: an empty slot (block 0 is a superblock) */
    uint64_t len;    /* disk bytes */
    uint64_t nexcl;  /* references from exclusive leaves */
};

/* Open-addressing hash table of the extents, keyed by bytenr; cap is a
 * power of 2 (or 0), at most half full. */
struct xtab {
    struct xent *v;
    size_t n, cap;
};

struct usage_walk {
    struct cow_root *r;
    /* excl[l]: the block last visited at level l and its whole path from
     * the root are exclusive.  In pre-order that block is the parent of
     * the next one visited at level l - 1.  excl[r->level + 1] is 1. */
    int excl[COW_MAX_LEVEL + 1];
    struct xtab x;
    struct cow_subvol_usage u;
};

static size_t xent_hash(uint64_t bytenr, size_t cap)
{
    return (size_t)(((bytenr >> COW_BLOCK_SHIFT) * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static int xtab_grow(struct xtab *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    struct xent *v = calloc(cap, sizeof *v);
    if (!v)
        return cow_set_error(COW_ENOMEM, "out of memory");
    for (size_t k = 0; k < t->cap; k++) {
        if (!t->v[k].bytenr)
            continue;
        size_t i = xent_hash(t->v[k].bytenr, cap);
        while (v[i].bytenr)
            i = (i + 1) & (cap - 1);
        v[i] = t->v[k];
    }
    free(t->v);
    t->v = v;
    t->cap = cap;
    return COW_OK;
}

/* Notes one reference of the tree to the extent [bytenr, +len), from an
 * exclusive leaf if EXCL. */
static int xtab_note(struct xtab *t, uint64_t bytenr, uint64_t len, int excl)
{
    size_t i = 0;
    if (t->cap) {
        i = xent_hash(bytenr, t->cap);
        while (t->v[i].bytenr && t->v[i].bytenr != bytenr)
            i = (i + 1) & (t->cap - 1);
    }
    if (!t->cap || !t->v[i].bytenr) {
        if ((t->n + 1) * 2 > t->cap) {
            int rc = xtab_grow(t);
            if (rc)
                return rc;
            i = xent_hash(bytenr, t->cap);
            while (t->v[i].bytenr)
                i = (i + 1) & (t->cap - 1);
        }
        t->v[i].bytenr = bytenr;
        t->v[i].len = len;
        t->n++;
    } else if (t->v[i].len != len) {
        return COW_CORRUPT("data extent %llu is %llu bytes long in one item, %llu in another",
                           (unsigned long long)bytenr, (unsigned long long)t->v[i].len,
                           (unsigned long long)len);
    }
    t->v[i].nexcl += excl != 0;
    return COW_OK;
}

/* bt_walk_blocks callback: classifies block E, and notes the extents a
 * leaf points at. */
static int usage_block(cow_store *st, void *arg, struct eb *e)
{
    struct usage_walk *w = arg;
    unsigned level = tb_level(e->data);
    uint64_t refs;

    /* bt_walk_blocks has checked the level against the parent's */
    assert(level <= w->r->level && w->r->level < COW_MAX_LEVEL);
    int rc = refs_get(st, e->bytenr, 0, &refs);
    if (rc)
        return rc;
    if (refs == 0)
        return COW_CORRUPT("block %llu of subvolume %llu has no references",
                           (unsigned long long)e->bytenr, (unsigned long long)w->r->objectid);
    /* a block the running transaction wrote is reached from this tree
     * only (a snapshot commits the blocks it shares before it returns) */
    assert(!e->dirty || refs == 1);
    /* refs_get may have read extent tree blocks: E stays valid (cached
     * blocks are never evicted while store->lock is held) */
    int excl = refs == 1 && w->excl[level + 1];
    w->excl[level] = excl;
    if (excl)
        w->u.exclusive_bytes += COW_BLOCK_SIZE;
    else
        w->u.shared_bytes += COW_BLOCK_SIZE;
    if (level > 0)
        return COW_OK;
    unsigned n = tb_nritems(e->data);
    for (unsigned i = 0; i < n && rc == COW_OK; i++) {
        uint64_t bytenr, len;
        if (bt_leaf_extent(e->data, i, &bytenr, &len))
            rc = xtab_note(&w->x, bytenr, len, excl);
    }
    return rc;
}

/* Classifies every extent of W's table by its reference count. */
static int usage_extents(cow_store *st, struct usage_walk *w)
{
    for (size_t i = 0; i < w->x.cap; i++) {
        const struct xent *x = &w->x.v[i];
        uint64_t refs;
        if (!x->bytenr)
            continue;
        int rc = refs_get(st, x->bytenr, 1, &refs);
        if (rc)
            return rc;
        if (refs == 0 || x->nexcl > refs)
            return COW_CORRUPT("data extent %llu: %llu references, %llu from exclusive "
                               "leaves of subvolume %llu",
                               (unsigned long long)x->bytenr, (unsigned long long)refs,
                               (unsigned long long)x->nexcl,
                               (unsigned long long)w->r->objectid);
        if (x->nexcl == refs) {
            w->u.exclusive_bytes += x->len;
            w->u.exclusive_data += x->len;
        } else {
            w->u.shared_bytes += x->len;
            w->u.shared_data += x->len;
        }
    }
    return COW_OK;
}

int cow_subvol_usage(cow_store *st, const char *name, struct cow_subvol_usage *u)
{
    struct usage_walk w;
    int rc = COW_OK;

    memset(u, 0, sizeof *u);
    if (name && *name && !roots_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad snapshot or branch name");
    memset(&w, 0, sizeof w);
    cow_mutex_lock(&st->lock);
    w.r = &st->fs_tree;
    if (name && *name) {
        struct cow_subvol *sv = roots_find(st, name);
        if (sv)
            w.r = &sv->root;
        else
            rc = cow_set_error(COW_ENOENT, "no snapshot or branch named %s", name);
    }
    if (rc == COW_OK && w.r->level >= COW_MAX_LEVEL)
        rc = COW_CORRUPT("subvolume %llu: root level %u", (unsigned long long)w.r->objectid,
                         w.r->level);
    if (rc == COW_OK) {
        w.excl[w.r->level + 1] = 1;
        rc = bt_walk_blocks(st, w.r, usage_block, &w);
    }
    if (rc == COW_OK)
        rc = usage_extents(st, &w);
    cow_mutex_unlock(&st->lock);
    if (rc == COW_OK)
        *u = w.u;
    free(w.x.v);
    return rc;
}
