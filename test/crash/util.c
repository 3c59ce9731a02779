/*
 * util.c - the crash simulator's hashing, PRNG, hash set and
 * failure messages (see driver.c).
 */
#include "crash.h"

/* ---------------------------------------------------------------------------
 * Hashing and the PRNG
 */

uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    uint64_t w;
    h = mix64(h ^ n);
    while (n >= 8) {
        memcpy(&w, b, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ull;
        b += 8;
        n -= 8;
    }
    if (n) {
        w = 0;
        memcpy(&w, b, n);
        h = mix64(h ^ w ^ 0xff);
    }
    return h;
}

/* splitmix64 */
uint64_t rnd(uint64_t *s)
{
    return mix64(*s += 0x9e3779b97f4a7c15ull);
}

/* A number in [0, n). */
uint64_t rnd_below(uint64_t *s, uint64_t n)
{
    return n ? rnd(s) % n : 0;
}

/* An index in [0, n), each with probability WEIGHT[i] over their sum
 * (which must be positive). */
int pick_weighted(uint64_t *s, const int *weight, int n)
{
    int sum = 0, i = 0;
    for (int k = 0; k < n; k++)
        sum += weight[k];
    int x = (int)rnd_below(s, (uint64_t)sum);
    while (x >= weight[i])
        x -= weight[i++];
    return i;
}

void hset_clear(struct hset *h)
{
    if (h->slot)
        memset(h->slot, 0, h->cap * sizeof *h->slot);
    h->n = 0;
}

void hset_free(struct hset *h)
{
    free(h->slot);
    memset(h, 0, sizeof *h);
}

/* Adds K; returns 1 if it was new. */
int hset_add(struct hset *h, uint64_t k)
{
    k |= 1;
    if (2 * (h->n + 1) > h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 1024;
        uint64_t *s = calloc(cap, sizeof *s);
        if (!s) {
            fprintf(stderr, "crash: out of memory\n");
            exit(2);
        }
        for (size_t i = 0; i < h->cap; i++) {
            if (!h->slot[i])
                continue;
            size_t j = (size_t)mix64(h->slot[i]) & (cap - 1);
            while (s[j])
                j = (j + 1) & (cap - 1);
            s[j] = h->slot[i];
        }
        free(h->slot);
        h->slot = s;
        h->cap = cap;
    }
    for (size_t i = (size_t)mix64(k) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (h->slot[i] == k)
            return 0;
        if (h->slot[i] == 0) {
            h->slot[i] = k;
            h->n++;
            return 1;
        }
    }
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "crash: out of memory\n");
        exit(2);
    }
    return p;
}

void msg_add(struct msg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if (m->n + (size_t)k + 1 > m->cap) {
        m->cap = 2 * (m->n + (size_t)k + 1);
        m->s = xrealloc(m->s, m->cap);
    }
    va_start(ap, fmt);
    vsnprintf(m->s + m->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    m->n += (size_t)k;
}
