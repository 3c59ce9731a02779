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
 */
#include <stdlib.h>
#include <string.h>

#include "validate.h"
#include "store_int.h"

static size_t hash_addr(uint64_t bytenr, size_t n)
{
    uint64_t h = (bytenr >> COW_BLOCK_SHIFT) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (n - 1);
}

int cache_init(struct eb_cache *c)
{
    memset(c, 0, sizeof *c);
    c->nbuckets = 1024;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    return c->buckets ? COW_OK : cow_set_error(COW_ENOMEM, "out of memory");
}

void cache_destroy(struct eb_cache *c)
{
    for (size_t i = 0; i < c->nbuckets && c->buckets; i++) {
        struct eb *e = c->buckets[i];
        while (e) {
            struct eb *n = e->hnext;
            free(e->data);
            free(e);
            e = n;
        }
    }
    free(c->buckets);
    memset(c, 0, sizeof *c);
}

struct eb *cache_find(struct eb_cache *c, uint64_t bytenr)
{
    for (struct eb *e = c->buckets[hash_addr(bytenr, c->nbuckets)]; e; e = e->hnext)
        if (e->bytenr == bytenr)
            return e;
    return NULL;
}

static void cache_grow(struct eb_cache *c)
{
    size_t n = c->nbuckets * 2;
    struct eb **b = calloc(n, sizeof *b);
    if (!b)
        return; /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct eb *e = c->buckets[i];
        while (e) {
            struct eb *next = e->hnext;
            size_t h = hash_addr(e->bytenr, n);
            e->hnext = b[h];
            b[h] = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

static int cache_insert(struct eb_cache *c, uint64_t bytenr, struct eb **out)
{
    struct eb *e = calloc(1, sizeof *e);
    if (!e)
        return cow_set_error(COW_ENOMEM, "out of memory");
    e->data = malloc(COW_BLOCK_SIZE);
    if (!e->data) {
        free(e);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    e->bytenr = bytenr;
    if (c->count >= c->nbuckets * 2)
        cache_grow(c);
    size_t h = hash_addr(bytenr, c->nbuckets);
    e->hnext = c->buckets[h];
    c->buckets[h] = e;
    c->count++;
    *out = e;
    return COW_OK;
}

void cache_drop(struct eb_cache *c, uint64_t bytenr)
{
    struct eb **pp = &c->buckets[hash_addr(bytenr, c->nbuckets)];
    while (*pp) {
        struct eb *e = *pp;
        if (e->bytenr == bytenr) {
            if (e->dirty) {
                struct eb **dp = &c->dirty;
                while (*dp && *dp != e)
                    dp = &(*dp)->dnext;
                if (*dp) {
                    *dp = e->dnext;
                    c->ndirty--;
                }
            }
            *pp = e->hnext;
            free(e->data);
            free(e);
            c->count--;
            return;
        }
        pp = &e->hnext;
    }
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
    int rc;
    struct eb *e = cache_find(&st->cache, bytenr);
    if (!e) {
        uint64_t end;
        if (bytenr < 2 * COW_BLOCK_SIZE || bytenr % COW_BLOCK_SIZE ||
            range_end(bytenr, COW_BLOCK_SIZE, &end) || end > st->total_bytes)
            return COW_CORRUPT("tree block address %llu out of range",
                               (unsigned long long)bytenr);
        rc = cache_insert(&st->cache, bytenr, &e);
        if (rc)
            return rc;
        rc = st->dev->read(st->dev, e->data, COW_BLOCK_SIZE, bytenr);
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
