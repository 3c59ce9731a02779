/*
 * hmap.c - the store's hash table (hmap.h).
 */
#include <stdlib.h>

#include "hmap.h"
#include "store.h"

static size_t hm_index(const struct hmap *h, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> h->shift);
}

/* Replaces the bucket array with one of N buckets (a power of two >= 2),
 * moving every node.  COW_ENOMEM leaves H as it was. */
static int hm_resize(struct hmap *h, size_t n)
{
    struct hm_node **b = calloc(n, sizeof *b);
    if (!b)
        return COW_ENOMEM;
    struct hm_node **old = h->buckets;
    size_t oldn = h->nbuckets;
    unsigned shift = 64;
    for (size_t m = n; m > 1; m >>= 1)
        shift--;
    h->buckets = b;
    h->nbuckets = n;
    h->shift = shift;
    for (size_t i = 0; i < oldn; i++)
        for (struct hm_node *p = old[i], *next; p; p = next) {
            next = p->next;
            size_t k = hm_index(h, p->key);
            p->next = b[k];
            b[k] = p;
        }
    free(old);
    return COW_OK;
}

int hm_init(struct hmap *h, size_t nbuckets)
{
    h->buckets = NULL;
    h->nbuckets = 0;
    h->shift = 64;
    h->count = 0;
    if (!nbuckets)
        return COW_OK;
    size_t n = 2;
    while (n < nbuckets)
        n *= 2;
    return hm_resize(h, n);
}

void hm_destroy(struct hmap *h)
{
    free(h->buckets);
    hm_init(h, 0);
}

void hm_clear(struct hmap *h)
{
    for (size_t i = 0; i < h->nbuckets; i++)
        h->buckets[i] = NULL;
    h->count = 0;
}

int hm_insert(struct hmap *h, struct hm_node *node, uint64_t key)
{
    if (h->count >= h->nbuckets && hm_resize(h, h->nbuckets ? h->nbuckets * 2 : 64) &&
        !h->nbuckets)
        return COW_ENOMEM;
    size_t k = hm_index(h, key);
    node->key = key;
    node->next = h->buckets[k];
    h->buckets[k] = node;
    h->count++;
    return COW_OK;
}

void hm_remove(struct hmap *h, struct hm_node *node)
{
    struct hm_node **pp = &h->buckets[hm_index(h, node->key)];
    while (*pp != node)
        pp = &(*pp)->next;
    *pp = node->next;
    h->count--;
}

/* The first node in a bucket from I on, or NULL. */
static struct hm_node *hm_scan(const struct hmap *h, size_t i)
{
    for (; i < h->nbuckets; i++)
        if (h->buckets[i])
            return h->buckets[i];
    return NULL;
}

struct hm_node *hm_first(const struct hmap *h)
{
    return h->count ? hm_scan(h, 0) : NULL;
}

struct hm_node *hm_next(const struct hmap *h, const struct hm_node *node)
{
    return node->next ? node->next : hm_scan(h, hm_index(h, node->key) + 1);
}
