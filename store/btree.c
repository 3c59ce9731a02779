/*
 * btree.c - one generic copy-on-write B+tree serving every tree.
 *
 * Errors: a failed modification leaves the tree half changed in memory;
 * every caller then stops the store (txn_abort), so a half change is never
 * committed.
 *
 * Keys are (objectid, type, offset) as in btrfs.  A change never touches a
 * block the last commit can reach: the path from the root to the changed
 * leaf is copied first (bt_cow), and a block already written by the running
 * transaction is changed in place.  Leaves split when an insert does not
 * fit; a leaf or node that becomes empty is removed, and one that falls
 * under a quarter full is merged into a neighbour when both fit in one block.
 *
 * Reference counts (subvolume trees only, r->refcounted) follow Rodeh,
 * "B-trees, Shadowing, and Clones" (ACM TOS 2008): copying a block whose
 * refcount is above 1 adds a reference to everything it points at (children,
 * or data extents for a leaf) and drops one from itself; copying a block
 * with refcount 1 just frees it.  Blocks of the other trees are never
 * shared: copying one frees it (pinned until commit).
 *
 * Locking: every function requires store->lock held.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define MAX_LEAF_ITEMS (COW_LEAF_SPACE / COW_ITEM_SIZE + 2)

struct litem {
    struct cow_key key;
    const uint8_t *data;
    unsigned size;
};

struct kptr {
    struct cow_key key;
    uint64_t child;
    uint64_t gen;
};

enum { OP_INSERT, OP_PUT, OP_DELETE };

struct mod_req {
    int op;
    const struct cow_key *key;
    const void *data;
    size_t len;
};

struct mod_res {
    int split;             /* a new right sibling was made */
    struct cow_key skey;   /* its first key */
    uint64_t sbytenr;      /* its address */
    int empty;             /* the block has no items left */
    int underfull;         /* under a quarter full */
};

/* ---- block layout helpers ---- */

static void hdr_init(cow_store *st, struct cow_root *r, uint8_t *b, uint64_t bytenr,
                     unsigned level)
{
    put32(b + TB_MAGIC, COW_TREE_MAGIC);
    put64(b + TB_BYTENR, bytenr);
    put64(b + TB_GENERATION, st->transid);
    put64(b + TB_OWNER, r->objectid);
    b[TB_LEVEL] = (uint8_t)level;
}

static unsigned leaf_load(const uint8_t *b, struct litem *it)
{
    unsigned n = tb_nritems(b);
    for (unsigned i = 0; i < n; i++) {
        key_get(&it[i].key, leaf_item(b, i));
        it[i].data = b + leaf_data_off(b, i);
        it[i].size = leaf_data_size(b, i);
    }
    return n;
}

static size_t leaf_used(const struct litem *it, unsigned n)
{
    size_t u = 0;
    for (unsigned i = 0; i < n; i++)
        u += COW_ITEM_SIZE + it[i].size;
    return u;
}

/* Writes items into block B (header fields other than nritems kept).
 * The item data must not point into B itself. */
static void leaf_store(uint8_t *b, const struct litem *it, unsigned n)
{
    size_t end = COW_BLOCK_SIZE;
    assert(leaf_used(it, n) <= COW_LEAF_SPACE);
    memset(b + TB_HEADER_SIZE, 0, COW_LEAF_SPACE);
    put32(b + TB_NRITEMS, n);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *h = b + TB_HEADER_SIZE + (size_t)i * COW_ITEM_SIZE;
        end -= it[i].size;
        if (it[i].size)
            memcpy(b + end, it[i].data, it[i].size);
        key_put(h, &it[i].key);
        put16(h + 17, (uint16_t)end);
        put16(h + 19, (uint16_t)it[i].size);
    }
}

static unsigned node_load(const uint8_t *b, struct kptr *p)
{
    unsigned n = tb_nritems(b);
    for (unsigned i = 0; i < n; i++) {
        key_get(&p[i].key, node_ptr(b, i));
        p[i].child = node_child(b, i);
        p[i].gen = node_child_gen(b, i);
    }
    return n;
}

static void node_store(uint8_t *b, const struct kptr *p, unsigned n)
{
    assert(n <= COW_NODE_MAX_PTRS);
    memset(b + TB_HEADER_SIZE, 0, COW_LEAF_SPACE);
    put32(b + TB_NRITEMS, n);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *h = b + TB_HEADER_SIZE + (size_t)i * COW_KP_SIZE;
        key_put(h, &p[i].key);
        put64(h + 17, p[i].child);
        put64(h + 25, p[i].gen);
    }
}

/* Index of the first item >= KEY; *exact set if equal. */
static unsigned leaf_find(const uint8_t *b, const struct cow_key *key, int *exact)
{
    unsigned lo = 0, hi = tb_nritems(b);
    *exact = 0;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        struct cow_key k;
        key_get(&k, leaf_item(b, mid));
        int c = key_cmp(&k, key);
        if (c == 0) {
            *exact = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Index of the last pointer with key <= KEY, or 0. */
static unsigned node_find(const uint8_t *b, const struct cow_key *key)
{
    unsigned lo = 0, hi = tb_nritems(b);
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        struct cow_key k;
        key_get(&k, node_ptr(b, mid));
        if (key_cmp(&k, key) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

static void first_key(const uint8_t *b, struct cow_key *k)
{
    if (tb_level(b) == 0)
        key_get(k, leaf_item(b, 0));
    else
        key_get(k, node_ptr(b, 0));
}

/* ---- allocation and copy on write ---- */

static int new_block(cow_store *st, struct cow_root *r, unsigned level, struct eb **out)
{
    uint64_t bytenr, got;
    int rc = alloc_blocks(st, 1, 1, &bytenr, &got);
    if (rc)
        return rc;
    rc = cache_new(st, bytenr, out);
    if (rc) {
        alloc_unalloc(st, bytenr, COW_BLOCK_SIZE);
        return rc;
    }
    hdr_init(st, r, (*out)->data, bytenr, level);
    if (r->refcounted) {
        rc = refs_add(st, bytenr, COW_BLOCK_SIZE, 0, level, +1);
        if (rc)
            return rc;
    }
    return COW_OK;
}

int bt_free_block(cow_store *st, struct cow_root *r, uint64_t bytenr, unsigned level)
{
    lk_assert_held(&st->lock);
    if (r->refcounted)
        return refs_add(st, bytenr, COW_BLOCK_SIZE, 0, level, -1);
    return alloc_free(st, bytenr, COW_BLOCK_SIZE);
}

int bt_leaf_extent(const uint8_t *b, unsigned i, uint64_t *bytenr, uint64_t *len)
{
    struct cow_key k;
    key_get(&k, leaf_item(b, i));
    if (k.type != COW_EXTENT_DATA || leaf_data_size(b, i) < FE_ITEM_SIZE)
        return 0;
    const uint8_t *fe = b + leaf_data_off(b, i);
    *bytenr = get64(fe + FE_DISK_BYTENR);
    *len = get64(fe + FE_DISK_NUM_BYTES);
    return *bytenr != 0;
}

/* Adds DELTA to the reference count of every data extent leaf B's
 * EXTENT_DATA items point at. */
static int leaf_extent_refs(cow_store *st, const uint8_t *b, int64_t delta)
{
    unsigned n = tb_nritems(b);
    int rc = COW_OK;
    for (unsigned i = 0; i < n && !rc; i++) {
        uint64_t bytenr, len;
        if (bt_leaf_extent(b, i, &bytenr, &len))
            rc = refs_add(st, bytenr, len, 1, 0, delta);
    }
    return rc;
}

/* Rodeh: a shared block is being copied: everything it points at gains a
 * reference from the copy. */
static int add_child_refs(cow_store *st, const uint8_t *b)
{
    unsigned n = tb_nritems(b);
    int rc = COW_OK;
    if (tb_level(b) == 0)
        return leaf_extent_refs(st, b, +1);
    for (unsigned i = 0; i < n && !rc; i++)
        rc = refs_add(st, node_child(b, i), COW_BLOCK_SIZE, 0, tb_level(b) - 1, +1);
    return rc;
}

/* Marks the block at BYTENR shared if the running transaction wrote it,
 * and so on down: a block it wrote is reached only through blocks it
 * wrote (a change copies the whole path), so the walk stops at the first
 * clean block.  Dirty blocks are always cached. */
static void mark_shared(cow_store *st, uint64_t bytenr)
{
    struct eb *e = cache_find(&st->cache, bytenr);
    if (!e || !e->dirty)
        return;
    e->shared = 1;
    if (tb_level(e->data) == 0)
        return;
    unsigned n = tb_nritems(e->data);
    for (unsigned i = 0; i < n; i++)
        mark_shared(st, node_child(e->data, i));
}

/* Returns a writable copy of the block at BYTENR (itself if the running
 * transaction already wrote it).  *out is the copy; its address may differ. */
static int bt_cow(cow_store *st, struct cow_root *r, uint64_t bytenr, uint64_t gen, int level,
                  struct eb **out)
{
    struct eb *old, *ne;
    int rc = cache_read(st, bytenr, gen, level, &old);
    if (rc)
        return rc;
    if (old->dirty && !old->shared) {
        *out = old;
        return COW_OK;
    }
    rc = new_block(st, r, (unsigned)level, &ne);
    if (rc)
        return rc;
    /* new_block may have grown the cache table: OLD's pointer is stable. */
    memcpy(ne->data + TB_HEADER_SIZE, old->data + TB_HEADER_SIZE, COW_LEAF_SPACE);
    put32(ne->data + TB_NRITEMS, tb_nritems(old->data));
    if (r->refcounted) {
        uint64_t refs;
        rc = refs_get(st, bytenr, 0, &refs);
        if (rc)
            return rc;
        if (refs > 1) {
            rc = add_child_refs(st, old->data);
            if (rc)
                return rc;
        }
        rc = refs_add(st, bytenr, COW_BLOCK_SIZE, 0, (unsigned)level, -1);
    } else {
        rc = alloc_free(st, bytenr, COW_BLOCK_SIZE);
    }
    if (rc)
        return rc;
    *out = ne;
    return COW_OK;
}

void bt_mark_shared(cow_store *st, const struct cow_root *r)
{
    lk_assert_held(&st->lock);
    mark_shared(st, r->bytenr);
}

/* ---- modification ---- */

/* Bytes B's N items take (headers and data) if their data is packed as
 * leaf_store lays it out (item 0's at the block's end, each next item's
 * right below the one before), else 0 with *PACKED clear: blocks read from
 * the device may legally have gaps (validate.c, check_leaf). */
static size_t leaf_packed_used(const uint8_t *b, unsigned n, int *packed)
{
    unsigned expect = COW_BLOCK_SIZE;
    *packed = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned size = leaf_data_size(b, i);
        if (size > expect || leaf_data_off(b, i) != expect - size)
            return 0;
        expect -= size;
    }
    *packed = 1;
    return (size_t)n * COW_ITEM_SIZE + (COW_BLOCK_SIZE - expect);
}

/*
 * Q's change made to packed leaf B of N items in place, the way btrfs's
 * setup_items_for_insert and btrfs_del_items shift items within a leaf
 * (fs/btrfs/ctree.c): the data of the items after POS moves by the change
 * in size, their headers by one slot when an item comes or goes, and the
 * bytes freed are zeroed.  The result is byte for byte what leaf_store
 * makes of the same items.  POS and EXACT are leaf_find's for Q's key; the
 * caller checked that the result fits.  Returns the new item count.
 */
static unsigned leaf_splice(uint8_t *b, unsigned n, unsigned pos, int exact,
                            const struct mod_req *q)
{
    int remove = q->op == OP_DELETE;
    size_t top = pos ? leaf_data_off(b, pos - 1) : COW_BLOCK_SIZE; /* above item POS's data */
    size_t low = n ? leaf_data_off(b, n - 1) : COW_BLOCK_SIZE;     /* the lowest data byte */
    size_t old = exact ? leaf_data_size(b, pos) : 0, size = remove ? 0 : q->len;
    size_t after = exact ? pos + 1 : pos; /* the first item whose data moves */
    /* the data of items AFTER.. is [LOW, TOP - OLD): it moves down by
     * SIZE - OLD (up when negative) */
    if (size >= old) {
        memmove(b + low - (size - old), b + low, top - old - low);
    } else {
        memmove(b + low + (old - size), b + low, top - old - low);
        memset(b + low, 0, old - size);
    }
    for (size_t i = after; i < n; i++) {
        uint8_t *h = (uint8_t *)leaf_item(b, (unsigned)i);
        put16(h + 17, (uint16_t)(get16(h + 17) + old - size));
    }
    uint8_t *h = (uint8_t *)leaf_item(b, pos);
    if (remove) {
        memmove(h, h + COW_ITEM_SIZE, (n - pos - 1) * (size_t)COW_ITEM_SIZE);
        memset((uint8_t *)leaf_item(b, n - 1), 0, COW_ITEM_SIZE);
        n--;
    } else {
        if (!exact) {
            memmove(h + COW_ITEM_SIZE, h, (n - pos) * (size_t)COW_ITEM_SIZE);
            key_put(h, q->key);
            n++;
        }
        put16(h + 17, (uint16_t)(top - size));
        put16(h + 19, (uint16_t)size);
        if (size)
            memcpy(b + top - size, q->data, size);
    }
    put32(b + TB_NRITEMS, n);
    return n;
}

static int mod_leaf(cow_store *st, struct cow_root *r, struct eb *e, const struct mod_req *q,
                    struct mod_res *res)
{
    uint8_t scratch[COW_BLOCK_SIZE];
    struct litem it[MAX_LEAF_ITEMS];
    int exact, packed;
    unsigned pos = leaf_find(e->data, q->key, &exact);
    if (q->op == OP_PUT && exact && leaf_data_size(e->data, pos) == q->len) {
        /* an item replaced by one of its size (a reference count, an inode
         * or root item): in place, the leaf's layout and fill unchanged */
        memcpy(e->data + leaf_data_off(e->data, pos), q->data, q->len);
        memset(res, 0, sizeof *res);
        return COW_OK;
    }
    if (q->op == OP_DELETE && !exact)
        return COW_ENOENT;
    if (q->op == OP_INSERT && exact)
        return COW_EEXIST;
    /* A change that fits, to a packed leaf: in place, without rebuilding
     * the leaf (which costs a copy of the block and every item's header
     * written again: most of a small transaction's tree updates). */
    unsigned n = tb_nritems(e->data);
    size_t used = leaf_packed_used(e->data, n, &packed);
    if (packed) {
        size_t old = exact ? COW_ITEM_SIZE + leaf_data_size(e->data, pos) : 0;
        size_t add = q->op == OP_DELETE ? 0 : COW_ITEM_SIZE + q->len;
        if (used - old + add <= COW_LEAF_SPACE) {
            n = leaf_splice(e->data, n, pos, exact, q);
            used = used - old + add;
            memset(res, 0, sizeof *res);
            res->empty = (n == 0);
            res->underfull = used < COW_LEAF_SPACE / 4;
            return COW_OK;
        }
    }
    memcpy(scratch, e->data, COW_BLOCK_SIZE);
    n = leaf_load(scratch, it);
    if (q->op == OP_DELETE) {
        memmove(&it[pos], &it[pos + 1], (n - pos - 1) * sizeof it[0]);
        n--;
    } else {
        if (!exact) {
            memmove(&it[pos + 1], &it[pos], (n - pos) * sizeof it[0]);
            n++;
        }
        it[pos].key = *q->key;
        it[pos].data = q->data;
        it[pos].size = (unsigned)q->len;
    }

    used = leaf_used(it, n);
    memset(res, 0, sizeof *res);
    if (used <= COW_LEAF_SPACE) {
        leaf_store(e->data, it, n);
        res->empty = (n == 0);
        res->underfull = used < COW_LEAF_SPACE / 4;
        return COW_OK;
    }

    /* split: the first k items stay, the rest move to a new right leaf */
    unsigned k = 0;
    size_t left = 0, best = (size_t)-1;
    for (unsigned i = 1; i < n; i++) {
        left += COW_ITEM_SIZE + it[i - 1].size;
        size_t right = used - left;
        if (left > COW_LEAF_SPACE)
            break;
        if (right > COW_LEAF_SPACE)
            continue;
        size_t worst = left > right ? left : right;
        if (worst < best) {
            best = worst;
            k = i;
        }
    }
    if (k == 0)
        return cow_set_error(COW_EINVAL, "item of %zu bytes does not fit in a leaf", q->len);
    struct eb *ne;
    int rc = new_block(st, r, 0, &ne);
    if (rc)
        return rc;
    leaf_store(e->data, it, k);
    leaf_store(ne->data, it + k, n - k);
    res->split = 1;
    res->skey = it[k].key;
    res->sbytenr = ne->bytenr;
    return COW_OK;
}

static int mod_rec(cow_store *st, struct cow_root *r, struct eb *e, const struct mod_req *q,
                   struct mod_res *res);

/* Merges the child at SLOT with a neighbour if both fit in one block. */
static int try_merge(cow_store *st, struct cow_root *r, struct kptr *p, unsigned *np,
                     unsigned slot, unsigned clevel)
{
    unsigned n = *np;
    if (n < 2)
        return COW_OK;
    unsigned li = slot > 0 ? slot - 1 : slot;
    unsigned ri = li + 1;
    struct eb *l, *rb;
    int rc = bt_cow(st, r, p[li].child, p[li].gen, (int)clevel, &l);
    if (rc)
        return rc;
    p[li].child = l->bytenr;
    p[li].gen = st->transid;
    rc = bt_cow(st, r, p[ri].child, p[ri].gen, (int)clevel, &rb);
    if (rc)
        return rc;
    p[ri].child = rb->bytenr;
    p[ri].gen = st->transid;

    if (clevel == 0) {
        uint8_t s1[COW_BLOCK_SIZE], s2[COW_BLOCK_SIZE];
        struct litem it[2 * MAX_LEAF_ITEMS];
        memcpy(s1, l->data, COW_BLOCK_SIZE);
        memcpy(s2, rb->data, COW_BLOCK_SIZE);
        unsigned n1 = leaf_load(s1, it);
        unsigned n2 = leaf_load(s2, it + n1);
        if (leaf_used(it, n1 + n2) > COW_LEAF_SPACE)
            return COW_OK;
        leaf_store(l->data, it, n1 + n2);
    } else {
        struct kptr kp[2 * COW_NODE_MAX_PTRS];
        unsigned n1 = node_load(l->data, kp);
        unsigned n2 = node_load(rb->data, kp + n1);
        if (n1 + n2 > COW_NODE_MAX_PTRS)
            return COW_OK;
        node_store(l->data, kp, n1 + n2);
    }
    put32(rb->data + TB_NRITEMS, 0);
    rc = bt_free_block(st, r, rb->bytenr, clevel);
    if (rc)
        return rc;
    if (tb_nritems(l->data))
        first_key(l->data, &p[li].key);
    memmove(&p[ri], &p[ri + 1], (n - ri - 1) * sizeof p[0]);
    *np = n - 1;
    return COW_OK;
}

static int mod_node(cow_store *st, struct cow_root *r, struct eb *e, const struct mod_req *q,
                    struct mod_res *res)
{
    struct kptr p[COW_NODE_MAX_PTRS + 1];
    unsigned level = tb_level(e->data);
    unsigned n = tb_nritems(e->data);
    unsigned slot;
    struct eb *ce;
    struct mod_res cres;
    struct cow_key ck;
    int rc;

    if (n == 0)
        return COW_CORRUPT("empty node %llu", (unsigned long long)e->bytenr);
    slot = node_find(e->data, q->key);
    rc = bt_cow(st, r, node_child(e->data, slot), node_child_gen(e->data, slot), (int)level - 1,
                &ce);
    if (rc)
        return rc;
    /* the pointer to the child's copy, in place (E is writable) */
    put64((uint8_t *)node_ptr(e->data, slot) + 17, ce->bytenr);
    put64((uint8_t *)node_ptr(e->data, slot) + 25, st->transid);
    rc = mod_rec(st, r, ce, q, &cres);
    if (rc)
        return rc; /* the caller aborts the transaction */
    if (!cres.split && !cres.empty && !cres.underfull) {
        /* the common case: only the child's first key may have changed */
        first_key(ce->data, &ck);
        key_put((uint8_t *)node_ptr(e->data, slot), &ck);
        memset(res, 0, sizeof *res);
        res->underfull = n < COW_NODE_MAX_PTRS / 4;
        return COW_OK;
    }
    node_load(e->data, p);
    if (!cres.empty)
        first_key(ce->data, &p[slot].key);

    if (cres.split) {
        memmove(&p[slot + 2], &p[slot + 1], (n - slot - 1) * sizeof p[0]);
        p[slot + 1].key = cres.skey;
        p[slot + 1].child = cres.sbytenr;
        p[slot + 1].gen = st->transid;
        n++;
    } else if (cres.empty) {
        rc = bt_free_block(st, r, ce->bytenr, level - 1);
        if (rc)
            return rc;
        memmove(&p[slot], &p[slot + 1], (n - slot - 1) * sizeof p[0]);
        n--;
    } else if (cres.underfull) {
        rc = try_merge(st, r, p, &n, slot, level - 1);
        if (rc)
            return rc;
    }

    memset(res, 0, sizeof *res);
    if (n <= COW_NODE_MAX_PTRS) {
        node_store(e->data, p, n);
        res->empty = (n == 0);
        res->underfull = n < COW_NODE_MAX_PTRS / 4;
        return COW_OK;
    }
    /* split the node in half */
    struct eb *ne;
    unsigned k = n / 2;
    rc = new_block(st, r, level, &ne);
    if (rc)
        return rc; /* the caller aborts the transaction: E is never used */
    node_store(e->data, p, k);
    node_store(ne->data, p + k, n - k);
    res->split = 1;
    res->skey = p[k].key;
    res->sbytenr = ne->bytenr;
    return COW_OK;
}

static int mod_rec(cow_store *st, struct cow_root *r, struct eb *e, const struct mod_req *q,
                   struct mod_res *res)
{
    if (tb_level(e->data) == 0)
        return mod_leaf(st, r, e, q, res);
    return mod_node(st, r, e, q, res);
}

static int bt_modify(cow_store *st, struct cow_root *r, const struct mod_req *q)
{
    struct eb *re;
    struct mod_res res;
    int rc;

    lk_assert_held(&st->lock);
    rc = txn_begin_change(st);
    if (rc)
        return rc;
    if (q->op != OP_DELETE && q->len > COW_MAX_ITEM_DATA)
        return cow_set_error(COW_EINVAL, "item of %zu bytes is too large", q->len);
    st->txn_dirty = 1;
    rc = bt_cow(st, r, r->bytenr, r->generation, (int)r->level, &re);
    if (rc)
        return rc;
    if (re->bytenr != r->bytenr) {
        r->bytenr = re->bytenr;
        r->dirty = 1;
    }
    r->generation = st->transid;
    rc = mod_rec(st, r, re, q, &res);
    if (rc)
        return rc;

    if (res.split) {
        struct eb *nr;
        struct kptr p[2];
        rc = new_block(st, r, r->level + 1, &nr);
        if (rc)
            return rc;
        first_key(re->data, &p[0].key);
        p[0].child = re->bytenr;
        p[0].gen = st->transid;
        p[1].key = res.skey;
        p[1].child = res.sbytenr;
        p[1].gen = st->transid;
        node_store(nr->data, p, 2);
        r->bytenr = nr->bytenr;
        r->level++;
        r->dirty = 1;
        return COW_OK;
    }
    /* collapse a root node with a single child */
    while (r->level > 0 && tb_nritems(re->data) == 1) {
        uint64_t child = node_child(re->data, 0);
        uint64_t cgen = node_child_gen(re->data, 0);
        struct eb *ce;
        rc = cache_read(st, child, cgen, (int)r->level - 1, &ce);
        if (rc)
            return rc;
        rc = bt_free_block(st, r, re->bytenr, r->level);
        if (rc)
            return rc;
        r->bytenr = child;
        r->generation = cgen;
        r->level--;
        r->dirty = 1;
        re = ce;
    }
    return COW_OK;
}

int bt_insert(cow_store *st, struct cow_root *r, const struct cow_key *key, const void *data,
              size_t len)
{
    lk_assert_held(&st->lock);
    int rc = bt_lookup(st, r, key, NULL, 0, NULL);
    if (rc == COW_OK)
        return COW_EEXIST;
    if (rc != COW_ENOENT)
        return rc;
    struct mod_req q = {OP_INSERT, key, data, len};
    return bt_modify(st, r, &q);
}

int bt_put(cow_store *st, struct cow_root *r, const struct cow_key *key, const void *data,
           size_t len)
{
    lk_assert_held(&st->lock);
    struct mod_req q = {OP_PUT, key, data, len};
    return bt_modify(st, r, &q);
}

int bt_delete(cow_store *st, struct cow_root *r, const struct cow_key *key)
{
    lk_assert_held(&st->lock);
    int rc = bt_lookup(st, r, key, NULL, 0, NULL);
    if (rc)
        return rc;
    struct mod_req q = {OP_DELETE, key, NULL, 0};
    return bt_modify(st, r, &q);
}

/* Drops one reference to the subvolume tree block BYTENR (generation GEN,
 * LEVEL): Rodeh's deletion.  A block shared with another tree just loses
 * the reference; one held only here releases everything it points at
 * (children, or data extents for a leaf), then itself. */
static int drop_block(cow_store *st, uint64_t bytenr, uint64_t gen, unsigned level)
{
    uint64_t refs;
    int rc = refs_get(st, bytenr, 0, &refs);
    if (rc)
        return rc;
    if (refs <= 1) {
        struct eb *e;
        uint8_t b[COW_BLOCK_SIZE]; /* a copy: the recursion reads more blocks */
        rc = cache_read(st, bytenr, gen, (int)level, &e);
        if (rc)
            return rc;
        memcpy(b, e->data, sizeof b);
        unsigned n = tb_nritems(b);
        if (level == 0)
            rc = leaf_extent_refs(st, b, -1);
        for (unsigned i = 0; i < n && level > 0 && !rc; i++)
            rc = drop_block(st, node_child(b, i), node_child_gen(b, i), level - 1);
        if (rc)
            return rc;
    }
    return refs_add(st, bytenr, COW_BLOCK_SIZE, 0, level, -1);
}

int bt_drop_tree(cow_store *st, struct cow_root *r)
{
    lk_assert_held(&st->lock);
    if (!r->refcounted)
        return cow_set_error(COW_EINVAL, "only subvolume trees are dropped");
    int rc = drop_block(st, r->bytenr, r->generation, r->level);
    if (rc == COW_OK)
        r->bytenr = 0;
    return rc;
}

int bt_create(cow_store *st, struct cow_root *r)
{
    lk_assert_held(&st->lock);
    struct eb *e;
    int rc = new_block(st, r, 0, &e);
    if (rc)
        return rc;
    r->bytenr = e->bytenr;
    r->generation = st->transid;
    r->level = 0;
    r->dirty = 1;
    st->txn_dirty = 1;
    return COW_OK;
}

/* ---- lookups ---- */

static void copy_out(const uint8_t *b, unsigned i, struct cow_key *found, void *buf,
                     size_t bufsz, size_t *size)
{
    if (found)
        key_get(found, leaf_item(b, i));
    size_t s = leaf_data_size(b, i);
    if (buf && bufsz)
        memcpy(buf, b + leaf_data_off(b, i), s < bufsz ? s : bufsz);
    if (size)
        *size = s;
}

int bt_lookup(cow_store *st, struct cow_root *r, const struct cow_key *key, void *buf,
              size_t bufsz, size_t *size)
{
    lk_assert_held(&st->lock);
    uint64_t bytenr = r->bytenr, gen = r->generation;
    int level = (int)r->level;
    for (;;) {
        struct eb *e;
        int rc = cache_read(st, bytenr, gen, level, &e);
        if (rc)
            return rc;
        if (level == 0) {
            int exact;
            unsigned i = leaf_find(e->data, key, &exact);
            if (!exact)
                return COW_ENOENT;
            copy_out(e->data, i, NULL, buf, bufsz, size);
            return COW_OK;
        }
        if (tb_nritems(e->data) == 0)
            return COW_CORRUPT("empty node %llu", (unsigned long long)bytenr);
        unsigned s = node_find(e->data, key);
        bytenr = node_child(e->data, s);
        gen = node_child_gen(e->data, s);
        level--;
    }
}

static int seek_rec(cow_store *st, uint64_t bytenr, uint64_t gen, int level,
                    const struct cow_key *key, int ge, struct cow_key *found, void *buf,
                    size_t bufsz, size_t *size)
{
    struct eb *e;
    int rc = cache_read(st, bytenr, gen, level, &e);
    if (rc)
        return rc;
    unsigned n = tb_nritems(e->data);
    if (level == 0) {
        int exact;
        unsigned i = leaf_find(e->data, key, &exact);
        if (ge) {
            if (i >= n)
                return COW_ENOENT;
        } else if (!exact) {
            if (i == 0)
                return COW_ENOENT;
            i--;
        }
        copy_out(e->data, i, found, buf, bufsz, size);
        return COW_OK;
    }
    if (n == 0)
        return COW_CORRUPT("empty node %llu", (unsigned long long)bytenr);
    unsigned s = node_find(e->data, key);
    if (ge) {
        for (unsigned i = s; i < n; i++) {
            rc = seek_rec(st, node_child(e->data, i), node_child_gen(e->data, i), level - 1, key,
                          ge, found, buf, bufsz, size);
            if (rc != COW_ENOENT)
                return rc;
            /* the cache may have been grown by a read: E stays valid */
        }
    } else {
        for (unsigned i = s + 1; i-- > 0;) {
            rc = seek_rec(st, node_child(e->data, i), node_child_gen(e->data, i), level - 1, key,
                          ge, found, buf, bufsz, size);
            if (rc != COW_ENOENT)
                return rc;
        }
    }
    return COW_ENOENT;
}

int bt_seek_ge(cow_store *st, struct cow_root *r, const struct cow_key *key,
               struct cow_key *found, void *buf, size_t bufsz, size_t *size)
{
    lk_assert_held(&st->lock);
    return seek_rec(st, r->bytenr, r->generation, (int)r->level, key, 1, found, buf, bufsz,
                    size);
}

int bt_seek_le(cow_store *st, struct cow_root *r, const struct cow_key *key,
               struct cow_key *found, void *buf, size_t bufsz, size_t *size)
{
    lk_assert_held(&st->lock);
    return seek_rec(st, r->bytenr, r->generation, (int)r->level, key, 0, found, buf, bufsz,
                    size);
}

static int walk_rec(cow_store *st, uint64_t bytenr, uint64_t gen, int level,
                    int (*cb)(cow_store *, void *, struct eb *), void *arg)
{
    struct eb *e;
    int rc = cache_read(st, bytenr, gen, level, &e);
    if (rc)
        return rc;
    rc = cb(st, arg, e);
    if (rc || level == 0)
        return rc;
    /* copy the pointers: callbacks may not change the tree, but reads may
     * grow the cache */
    unsigned n = tb_nritems(e->data);
    if (n == 0)
        return COW_CORRUPT("empty node %llu", (unsigned long long)bytenr);
    struct kptr p[COW_NODE_MAX_PTRS];
    node_load(e->data, p);
    for (unsigned i = 0; i < n && !rc; i++)
        rc = walk_rec(st, p[i].child, p[i].gen, level - 1, cb, arg);
    return rc;
}

int bt_walk_blocks(cow_store *st, struct cow_root *r,
                   int (*cb)(cow_store *st, void *arg, struct eb *e), void *arg)
{
    lk_assert_held(&st->lock);
    return walk_rec(st, r->bytenr, r->generation, (int)r->level, cb, arg);
}
