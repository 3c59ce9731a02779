/*
 * hmap.h - the store's hash table: intrusive, chained, keyed by a 64-bit
 * integer (a block's bytenr, a page's file block index, an extent's
 * disk_bytenr).
 *
 * Intrusive as the Linux kernel's hlist tables are (include/linux/
 * hashtable.h, which btrfs's caches use): the entry embeds a struct
 * hm_node, so inserting allocates nothing but, now and then, a larger
 * bucket array, and hm_entry() gets the entry back from its node.  The
 * table never owns the entries: whoever inserted one frees it after
 * hm_remove() (or walks the table with hm_for_each_safe() to free them
 * all before hm_destroy()).
 *
 * Buckets are a power of two; the index is the top bits of key times
 * 2^64/phi (Fibonacci hashing, Knuth 6.4), so keys that differ only in
 * high bits or are all multiples of the block size spread evenly.  The
 * bucket array doubles when the table holds as many entries as buckets.
 *
 * Not thread safe: the owner's lock protects it (store->lock for every
 * table in the store).
 */
#ifndef COW_HMAP_H
#define COW_HMAP_H

#include <stddef.h>
#include <stdint.h>

/* Embedded in each entry.  KEY is set by hm_insert(); read it, never
 * change it while the entry is in a table. */
struct hm_node {
    struct hm_node *next; /* chain of the bucket */
    uint64_t key;
};

/* A zeroed struct hmap is an empty table, as is one after hm_init(). */
struct hmap {
    struct hm_node **buckets; /* NULL until the first insert */
    size_t nbuckets;          /* 0, or a power of two */
    unsigned shift;           /* 64 - log2(nbuckets) */
    size_t count;             /* entries in the table */
};

/* The entry of type TYPE whose struct hm_node member MEMBER is NODE. */
#define hm_entry(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

/* An empty table of at least NBUCKETS buckets (rounded up to a power of
 * two; 0 allocates at the first insert).  COW_OK, COW_ENOMEM (no message
 * set: the caller sets one). */
int hm_init(struct hmap *h, size_t nbuckets);
/* Frees the bucket array (not the entries); H is empty afterwards. */
void hm_destroy(struct hmap *h);
/* Empties H, keeping its bucket array (the entries are not touched). */
void hm_clear(struct hmap *h);

/* Inserts NODE under KEY (keys are not checked for uniqueness: look up
 * first).  Grows the bucket array first when it is full; if that
 * allocation fails the entry goes into the table as it is (longer chains,
 * still correct), so only the first insert into a table with no buckets
 * can fail.  COW_OK, COW_ENOMEM (nothing inserted, no message set). */
int hm_insert(struct hmap *h, struct hm_node *node, uint64_t key);
/* Removes NODE, which must be in H. */
void hm_remove(struct hmap *h, struct hm_node *node);

/* The head of the chain KEY would be in (NULL if none): for a caller that
 * counts what a lookup examines.  Most want hm_find(). */
static inline struct hm_node *hm_bucket(const struct hmap *h, uint64_t key)
{
    if (!h->nbuckets)
        return NULL;
    return h->buckets[(size_t)((key * 0x9E3779B97F4A7C15ull) >> h->shift)];
}

/* The node inserted under KEY (the last inserted of several), or NULL. */
static inline struct hm_node *hm_find(const struct hmap *h, uint64_t key)
{
    for (struct hm_node *n = hm_bucket(h, key); n; n = n->next)
        if (n->key == key)
            return n;
    return NULL;
}

/* Walking every entry, in no particular order: the first node and the one
 * after NODE (NULL at the end). */
struct hm_node *hm_first(const struct hmap *h);
struct hm_node *hm_next(const struct hmap *h, const struct hm_node *node);

/* for (each node N of H): N may not be removed inside the loop. */
#define hm_for_each(h, n) for ((n) = hm_first(h); (n); (n) = hm_next((h), (n)))
/* The same, N may be removed (and freed) inside the loop: TMP holds the
 * next node, taken before the body runs.  The next node is found from the
 * current one's key, so removing any node other than N is not allowed. */
#define hm_for_each_safe(h, n, tmp)                                          \
    for ((n) = hm_first(h), (tmp) = (n) ? hm_next((h), (n)) : NULL; (n);      \
         (n) = (tmp), (tmp) = (n) ? hm_next((h), (n)) : NULL)

#endif /* COW_HMAP_H */
