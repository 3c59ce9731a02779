/*
 * cache.c - cached tree blocks ("extent buffers"), read and verified once.
 *
 * Every tree block read from the device is checked (invariant 6): crc32c,
 * magic, its own address, and the generation and level its parent expects
 * (which catches a lost or misdirected write); and, once, when it enters
 * the cache, its structure and every item in it (validate.c, btrfs's
 * tree-checker), so that nothing reads a field of a block that did not
 * pass.  A block freed by a commit is
 * dropped from the cache; clean blocks otherwise stay cached (metadata of a
 * 1 GiB database is a few MiB).  Protected by store->lock.
 *
 * With other processes (xproc.c) the cache outlives a reload: another
 * process may have freed a cached block's address and written a new
 * block there.  A tree block is never changed once written, and every
 * pointer carries the generation of the block it points at, so a clean
 * cached block whose generation is not the one a pointer expects is such
 * a stale copy: it is read again (and checked as a first read is); only a
 * mismatch that the device's copy repeats is an error.
 */
#include <stdlib.h>
#include <string.h>

#include "validate.h"
#include "remap.h"
#include "store_int.h"

int cache_init(struct eb_cache *c)
{
    memset(c, 0, sizeof *c);
    return hm_init(&c->map, 1024) ? cow_set_error(COW_ENOMEM, "out of memory") : COW_OK;
}

static void eb_free(struct eb *e)
{
    free(e->data);
    free(e);
}

void cache_destroy(struct eb_cache *c)
{
    struct hm_node *n, *next;
    hm_for_each_safe(&c->map, n, next)
        eb_free(hm_entry(n, struct eb, hnode));
    hm_destroy(&c->map);
    memset(c, 0, sizeof *c);
}

struct eb *cache_find(struct eb_cache *c, uint64_t bytenr)
{
    struct hm_node *n = hm_find(&c->map, bytenr);
    return n ? hm_entry(n, struct eb, hnode) : NULL;
}

static int cache_insert(struct eb_cache *c, uint64_t bytenr, struct eb **out)
{
    struct eb *e = calloc(1, sizeof *e);
    if (!e)
        return cow_set_error(COW_ENOMEM, "out of memory");
    e->data = malloc(COW_BLOCK_SIZE);
    if (!e->data || hm_insert(&c->map, &e->hnode, bytenr)) {
        eb_free(e);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    e->bytenr = bytenr;
    *out = e;
    return COW_OK;
}

void cache_drop(struct eb_cache *c, uint64_t bytenr)
{
    struct eb *e = cache_find(c, bytenr);
    if (!e)
        return;
    if (e->dirty) {
        struct eb **dp = &c->dirty;
        while (*dp && *dp != e)
            dp = &(*dp)->dnext;
        if (*dp) {
            *dp = e->dnext;
            c->ndirty--;
        }
    }
    hm_remove(&c->map, &e->hnode);
    eb_free(e);
}

void cache_mark_dirty(struct eb_cache *c, struct eb *e)
{
    if (!e->dirty) {
        e->dirty = 1;
        e->dnext = c->dirty;
        c->dirty = e;
        c->ndirty++;
    }
}

int cache_read(cow_store *st, uint64_t bytenr, uint64_t gen, int level, struct eb **out)
{
    lk_assert_held(&st->lock);
    int rc;
    struct eb *e = cache_find(&st->cache, bytenr);
    int cached = e != NULL;
    if (!e) {
        uint64_t end;
        if (bytenr < 2 * COW_BLOCK_SIZE || bytenr % COW_BLOCK_SIZE ||
            range_end(bytenr, COW_BLOCK_SIZE, &end) || end > st->total_bytes)
            return COW_CORRUPT("tree block address %llu out of range",
                               (unsigned long long)bytenr);
        rc = cache_insert(&st->cache, bytenr, &e);
        if (rc)
            return rc;
        rc = remap_read(st, e->data, COW_BLOCK_SIZE, bytenr);
        if (rc == COW_OK)
            rc = check_tree_block(st, bytenr, e->data);
        if (rc) {
            cache_drop(&st->cache, bytenr);
            return rc;
        }
    }
    if (gen && get64(e->data + TB_GENERATION) != gen && !e->dirty && cached) {
        /* a stale copy of an address another process reused (above) */
        rc = remap_read(st, e->data, COW_BLOCK_SIZE, bytenr);
        if (rc == COW_OK)
            rc = check_tree_block(st, bytenr, e->data);
        if (rc) {
            cache_drop(&st->cache, bytenr);
            return rc;
        }
    }
    if (gen && get64(e->data + TB_GENERATION) != gen)
        return COW_CORRUPT("block %llu: generation %llu, parent expects %llu",
                           (unsigned long long)bytenr,
                           (unsigned long long)get64(e->data + TB_GENERATION),
                           (unsigned long long)gen);
    if (get64(e->data + TB_GENERATION) > st->transid) /* also bounds it below 2^48 */
        return COW_CORRUPT("block %llu: generation %llu, past the running transaction %llu",
                           (unsigned long long)bytenr,
                           (unsigned long long)get64(e->data + TB_GENERATION),
                           (unsigned long long)st->transid);
    if (level >= 0 && (int)tb_level(e->data) != level)
        return COW_CORRUPT("block %llu: level %u, parent expects %d", (unsigned long long)bytenr,
                           tb_level(e->data), level);
    *out = e;
    return COW_OK;
}

int cache_new(cow_store *st, uint64_t bytenr, struct eb **out)
{
    lk_assert_held(&st->lock);
    struct eb *e = cache_find(&st->cache, bytenr);
    int rc;
    if (!e) {
        rc = cache_insert(&st->cache, bytenr, &e);
        if (rc)
            return rc;
    }
    memset(e->data, 0, COW_BLOCK_SIZE);
    cache_mark_dirty(&st->cache, e);
    *out = e;
    return COW_OK;
}
