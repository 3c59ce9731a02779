/*
 * refs.c - extent reference counts and block group items (the extent tree).
 *
 * Reference count changes are not applied to the extent tree as they
 * happen: they collect in a hash table of delayed refs (one entry per
 * extent, the net change) and are applied at commit (btrfs's delayed refs).
 * This keeps the extent tree out of the way of every tree change and
 * removes the recursion of "changing the extent tree changes refcounts".
 *
 * An extent whose count reaches 0 is freed: its item (and for data, its
 * checksum item) is deleted and its space pinned until the commit is done.
 * Every delayed-ref entry stands for space that was allocated at some time,
 * so an entry ending at 0 always frees its space (this covers extents
 * allocated and freed within one transaction).
 *
 * Blocks of the root, extent and csum trees have no refcount items (never
 * shared); freeing them pins them directly.  So applying delayed refs only
 * changes trees that make no further delayed refs, and the loop of block
 * group item updates reaches a fixed point after a pass or two.
 *
 * Locking: store->lock held by every caller.
 */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"
#include "vec.h"

/* st->drefs holds the entries (an array that grows, so its entries move:
 * the map is then rebuilt) and st->dref_map finds them by bytenr. */

static struct dref *dref_find(cow_store *st, uint64_t bytenr)
{
    struct hm_node *n = hm_find(&st->dref_map, bytenr);
    return n ? hm_entry(n, struct dref, node) : NULL;
}

/* Room for one more entry in st->drefs.  When the array grows (and its
 * entries move) the map is rebuilt, into buckets allocated first so that
 * a failure leaves both as they were.  COW_ENOMEM. */
static int dref_reserve(cow_store *st)
{
    if (st->ndrefs < st->cdrefs)
        return COW_OK;
    struct hmap m;
    if (hm_init(&m, st->cdrefs ? st->cdrefs * 2 : 16))
        return cow_set_error(COW_ENOMEM, "out of memory");
    if (vec_reserve(st->drefs, st->cdrefs, st->ndrefs + 1)) {
        hm_destroy(&m);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < st->ndrefs; i++)
        hm_insert(&m, &st->drefs[i].node, st->drefs[i].bytenr); /* has buckets: cannot fail */
    hm_destroy(&st->dref_map);
    st->dref_map = m;
    return COW_OK;
}

int refs_add(cow_store *st, uint64_t bytenr, uint64_t len, int is_data, unsigned level,
             int64_t delta)
{
    lk_assert_held(&st->lock);
    struct dref *d = dref_find(st, bytenr);
    if (!d) {
        int rc = dref_reserve(st);
        if (rc)
            return rc;
        d = &st->drefs[st->ndrefs];
        hm_insert(&st->dref_map, &d->node, bytenr); /* reserved: has buckets */
        d->bytenr = bytenr;
        d->len = len;
        d->is_data = is_data;
        d->level = level;
        d->delta = 0;
        st->ndrefs++;
    }
    d->delta += delta;
    st->txn_dirty = 1;
    return COW_OK;
}

/* Finds the EXTENT_ITEM or METADATA_ITEM at BYTENR. */
static int find_item(cow_store *st, uint64_t bytenr, struct cow_key *found, uint8_t *item)
{
    struct cow_key k = {bytenr, COW_EXTENT_ITEM, 0};
    size_t size;
    int rc = bt_seek_ge(st, &st->extent_tree, &k, found, item, EXT_ITEM_SIZE, &size);
    if (rc)
        return rc;
    if (found->objectid != bytenr ||
        (found->type != COW_EXTENT_ITEM && found->type != COW_METADATA_ITEM))
        return COW_ENOENT;
    if (size != EXT_ITEM_SIZE)
        return COW_CORRUPT("extent item %llu has %zu bytes", (unsigned long long)bytenr, size);
    return COW_OK;
}

int refs_get(cow_store *st, uint64_t bytenr, int is_data, uint64_t *refs)
{
    lk_assert_held(&st->lock);
    struct cow_key found;
    uint8_t item[EXT_ITEM_SIZE];
    int64_t n = 0;
    (void)is_data;
    int rc = find_item(st, bytenr, &found, item);
    if (rc == COW_OK)
        n = (int64_t)get64(item + EXT_REFS);
    else if (rc != COW_ENOENT)
        return rc;
    struct dref *d = dref_find(st, bytenr);
    if (d)
        n += d->delta;
    if (n < 0)
        return COW_CORRUPT("extent %llu: negative reference count", (unsigned long long)bytenr);
    *refs = (uint64_t)n;
    return COW_OK;
}

int refs_generation(cow_store *st, uint64_t bytenr, uint64_t *gen)
{
    lk_assert_held(&st->lock);
    struct cow_key found;
    uint8_t item[EXT_ITEM_SIZE];
    int rc = find_item(st, bytenr, &found, item);
    if (rc == COW_ENOENT) { /* allocated by the running transaction */
        *gen = st->transid;
        return COW_OK;
    }
    if (rc == COW_OK)
        *gen = get64(item + EXT_GENERATION);
    return rc;
}

int refs_extent_len(cow_store *st, uint64_t bytenr, uint64_t *len)
{
    lk_assert_held(&st->lock);
    const struct dref *d = dref_find(st, bytenr);
    if (d) {
        *len = d->len;
        return COW_OK;
    }
    struct cow_key found;
    uint8_t item[EXT_ITEM_SIZE];
    int rc = find_item(st, bytenr, &found, item);
    if (rc == COW_OK)
        *len = found.type == COW_EXTENT_ITEM ? found.offset : COW_BLOCK_SIZE;
    return rc;
}

int refs_known(cow_store *st, uint64_t bytenr, int *known)
{
    lk_assert_held(&st->lock);
    struct cow_key found;
    uint8_t item[EXT_ITEM_SIZE];
    *known = dref_find(st, bytenr) != NULL;
    if (*known)
        return COW_OK;
    int rc = find_item(st, bytenr, &found, item);
    if (rc == COW_OK)
        *known = 1;
    return rc == COW_ENOENT ? COW_OK : rc;
}

static int cmp_dref(const void *a, const void *b)
{
    const struct dref *x = a, *y = b;
    return x->bytenr < y->bytenr ? -1 : x->bytenr > y->bytenr;
}

static int apply_one(cow_store *st, const struct dref *d)
{
    struct cow_key found;
    uint8_t item[EXT_ITEM_SIZE];
    int64_t old = 0;
    int rc = find_item(st, d->bytenr, &found, item);
    int have = (rc == COW_OK);
    if (rc && rc != COW_ENOENT)
        return rc;
    if (have)
        old = (int64_t)get64(item + EXT_REFS);
    int64_t now = old + d->delta;
    if (now < 0)
        return COW_CORRUPT("extent %llu: reference count %lld below zero",
                           (unsigned long long)d->bytenr, (long long)now);
    if (now == 0) {
        if (have) {
            rc = bt_delete(st, &st->extent_tree, &found);
            if (rc)
                return rc;
        }
        if (d->is_data) {
            struct cow_key ck = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, d->bytenr};
            rc = bt_delete(st, &st->csum_tree, &ck);
            if (rc && rc != COW_ENOENT)
                return rc;
        }
        return alloc_free(st, d->bytenr, d->len);
    }
    if (have && d->delta == 0)
        return COW_OK;
    struct cow_key k;
    k.objectid = d->bytenr;
    if (d->is_data) {
        k.type = COW_EXTENT_ITEM;
        k.offset = d->len;
    } else {
        k.type = COW_METADATA_ITEM;
        k.offset = d->level;
    }
    if (!have) {
        put64(item + EXT_GENERATION, st->transid);
        put64(item + EXT_FLAGS, d->is_data ? COW_EXT_FLAG_DATA : COW_EXT_FLAG_TREE);
    } else if (key_cmp(&k, &found) != 0) {
        return COW_CORRUPT("extent %llu: item key disagrees with its use",
                           (unsigned long long)d->bytenr);
    }
    put64(item + EXT_REFS, (uint64_t)now);
    return bt_put(st, &st->extent_tree, &k, item, EXT_ITEM_SIZE);
}

int refs_run(cow_store *st)
{
    lk_assert_held(&st->lock);
    int rc = COW_OK;
    if (!st->ndrefs)
        return COW_OK;
    struct dref *v = malloc(st->ndrefs * sizeof *v);
    if (!v)
        return cow_set_error(COW_ENOMEM, "out of memory");
    size_t n = st->ndrefs;
    memcpy(v, st->drefs, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_dref);
    for (size_t i = 0; i < n && !rc; i++)
        rc = apply_one(st, &v[i]);
    free(v);
    if (rc == COW_OK)
        refs_reset(st);
    return rc;
}

void refs_reset(cow_store *st)
{
    lk_assert_held(&st->lock);
    hm_clear(&st->dref_map);
    st->ndrefs = 0;
}

int refs_update_block_groups(cow_store *st)
{
    lk_assert_held(&st->lock);
    for (int pass = 0; pass < 64; pass++) {
        int any = 0;
        for (size_t i = 0; i < st->nbgs; i++) {
            struct bgroup *g = &st->bgs[i];
            if (!g->dirty)
                continue;
            any = 1;
            g->dirty = 0;
            uint8_t item[BG_ITEM_SIZE];
            put64(item + BG_USED, g->used);
            put64(item + BG_FLAGS, g->flags);
            struct cow_key k = {g->start, COW_BLOCK_GROUP_ITEM, g->len};
            int rc = bt_put(st, &st->extent_tree, &k, item, BG_ITEM_SIZE);
            if (rc)
                return rc;
        }
        if (!any)
            return COW_OK;
    }
    return cow_set_error(COW_EINVAL, "block group items did not settle");
}
