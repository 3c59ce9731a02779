/*
 * inject.c - named injection points (test builds only; see inject.h).
 *
 * Without COW_DEBUG this file is empty: no code, no symbols.
 *
 * The points live in a fixed open-addressed table keyed by name.  A slot's
 * name, hit counter and "active" flag are atomics, so that a hit of a
 * point nobody armed or hooked costs a hash, a probe and two relaxed
 * atomic operations, and takes no lock: relaxed operations create no
 * happens-before edge, so points do not hide races from ThreadSanitizer.
 * Everything else in a slot, and g_inside, is protected by g_mu, which is
 * a leaf lock: it is never held while a callback runs, and nothing else is
 * locked while it is held.  A blocked thread waits on g_cond (g_mu
 * released).  Slots are never freed; a reset clears their state.
 *
 * Not the store's hash table (hmap.h) on purpose: that one is protected by
 * its owner's lock and grows by reallocating its buckets, while this table
 * is looked up without any lock from every thread (a slot is claimed with
 * one compare-and-swap of its name), so it must never move or grow: fixed
 * size, open addressing, string keys.
 */
#include "inject.h"

#ifdef COW_DEBUG

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

struct inject_point {
    _Atomic(const char *) name;  /* set once (a literal); never cleared */
    atomic_ulong hits;           /* relaxed */
    atomic_int active;           /* armed or hooked (relaxed; set under g_mu) */

    /* Protected by g_mu: */
    unsigned skip;               /* applying hits left to pass before blocking */
    unsigned count;              /* hits left to block; 0: not armed */
    unsigned arm_flags;          /* COW_INJECT_NOT_ME */
    pthread_t arm_owner;         /* the thread that armed it */
    unsigned nblocked;           /* threads blocked here, not released yet */
    unsigned long gen;           /* bumped by each release */
    void (*cb)(void *arg, const char *name);
    void *cb_arg;
    unsigned cb_flags;           /* COW_INJECT_NOT_ME, COW_INJECT_ONCE */
    pthread_t cb_owner;          /* the thread that set the callback */
};

static struct inject_point g_points[COW_INJECT_MAX_POINTS];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond; /* CLOCK_MONOTONIC; any change: broadcast */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static unsigned g_inside; /* threads blocked at a point or in a callback */

/* The point whose callback runs on this thread (no recursion into it). */
static __thread struct inject_point *tl_cb_point;

static void inject_init_once(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g_cond, &ca);
    pthread_condattr_destroy(&ca);
}

static void inject_init(void)
{
    pthread_once(&g_once, inject_init_once);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot of NAME; with CREATE, claims a free slot for a new name.  NULL
 * if absent (or the table is full).  Lock-free. */
static struct inject_point *point_find(const char *name, int create)
{
    uint32_t h = name_hash(name);
    for (unsigned i = 0; i < COW_INJECT_MAX_POINTS; i++) {
        struct inject_point *p = &g_points[(h + i) % COW_INJECT_MAX_POINTS];
        const char *n = atomic_load_explicit(&p->name, memory_order_relaxed);
        if (!n) {
            if (!create)
                return NULL;
            if (atomic_compare_exchange_strong_explicit(&p->name, &n, name,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed))
                return p;
            /* another thread claimed it first: n is its name */
        }
        if (n == name || strcmp(n, name) == 0)
            return p;
    }
    return NULL;
}

/* Recomputes p->active after a change.  g_mu held. */
static void point_update_active(struct inject_point *p)
{
    atomic_store_explicit(&p->active, p->count > 0 || p->cb != NULL, memory_order_relaxed);
}

static int applies(unsigned flags, pthread_t owner, pthread_t self)
{
    return !((flags & COW_INJECT_NOT_ME) && pthread_equal(owner, self));
}

void cow_inject_hit(const char *name)
{
    struct inject_point *p = point_find(name, 1);
    if (!p)
        return;
    atomic_fetch_add_explicit(&p->hits, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&p->active, memory_order_relaxed))
        return;

    inject_init();
    pthread_t self = pthread_self();
    pthread_mutex_lock(&g_mu);
    if (p->cb && tl_cb_point != p && applies(p->cb_flags, p->cb_owner, self)) {
        void (*cb)(void *, const char *) = p->cb;
        void *arg = p->cb_arg;
        if (p->cb_flags & COW_INJECT_ONCE) {
            p->cb = NULL;
            p->cb_arg = NULL;
            point_update_active(p);
        }
        g_inside++;
        pthread_mutex_unlock(&g_mu);

        struct inject_point *prev = tl_cb_point;
        tl_cb_point = p;
        cb(arg, name);
        tl_cb_point = prev;

        pthread_mutex_lock(&g_mu);
        g_inside--;
        pthread_cond_broadcast(&g_cond);
    }
    if (p->count > 0 && applies(p->arm_flags, p->arm_owner, self)) {
        if (p->skip > 0) {
            p->skip--;
        } else {
            unsigned long gen = p->gen;
            p->count--;
            point_update_active(p);
            p->nblocked++;
            g_inside++;
            pthread_cond_broadcast(&g_cond); /* cow_inject_wait() */
            while (p->gen == gen)
                pthread_cond_wait(&g_cond, &g_mu);
            g_inside--;
            pthread_cond_broadcast(&g_cond); /* cow_inject_reset() */
        }
    }
    pthread_mutex_unlock(&g_mu);
}

int cow_inject_arm(const char *name, unsigned flags, unsigned skip, unsigned count)
{
    if (!name || count == 0)
        return EINVAL;
    struct inject_point *p = point_find(name, 1);
    if (!p)
        return ENOSPC;
    inject_init();
    pthread_mutex_lock(&g_mu);
    p->skip = skip;
    p->count = count;
    p->arm_flags = flags & COW_INJECT_NOT_ME;
    p->arm_owner = pthread_self();
    point_update_active(p);
    pthread_mutex_unlock(&g_mu);
    return 0;
}

int cow_inject_wait(const char *name, unsigned nthreads, unsigned timeout_ms)
{
    if (!name || nthreads == 0)
        return EINVAL;
    struct inject_point *p = point_find(name, 1);
    if (!p)
        return ENOSPC;
    inject_init();

    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)timeout_ms * 1000000u;
    dl.tv_sec += (time_t)(ns / 1000000000u);
    dl.tv_nsec = (long)(ns % 1000000000u);

    int rc = 0;
    pthread_mutex_lock(&g_mu);
    while (p->nblocked < nthreads) {
        if (pthread_cond_timedwait(&g_cond, &g_mu, &dl) == ETIMEDOUT) {
            rc = p->nblocked < nthreads ? ETIMEDOUT : 0;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int cow_inject_release(const char *name)
{
    if (!name)
        return EINVAL;
    struct inject_point *p = point_find(name, 0);
    if (!p)
        return ENOENT;
    inject_init();
    int rc = ENOENT;
    pthread_mutex_lock(&g_mu);
    p->skip = 0;
    p->count = 0;
    point_update_active(p);
    if (p->nblocked > 0) {
        p->nblocked = 0;
        p->gen++;
        pthread_cond_broadcast(&g_cond);
        rc = 0;
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

unsigned cow_inject_blocked(const char *name)
{
    struct inject_point *p = name ? point_find(name, 0) : NULL;
    if (!p)
        return 0;
    pthread_mutex_lock(&g_mu);
    unsigned n = p->nblocked;
    pthread_mutex_unlock(&g_mu);
    return n;
}

int cow_inject_set_callback(const char *name, void (*cb)(void *arg, const char *name),
                            void *arg, unsigned flags)
{
    if (!name)
        return EINVAL;
    struct inject_point *p = point_find(name, 1);
    if (!p)
        return ENOSPC;
    inject_init();
    pthread_mutex_lock(&g_mu);
    p->cb = cb;
    p->cb_arg = cb ? arg : NULL;
    p->cb_flags = flags & (COW_INJECT_NOT_ME | COW_INJECT_ONCE);
    p->cb_owner = pthread_self();
    point_update_active(p);
    pthread_mutex_unlock(&g_mu);
    return 0;
}

unsigned long cow_inject_hits(const char *name)
{
    struct inject_point *p = name ? point_find(name, 0) : NULL;
    return p ? atomic_load_explicit(&p->hits, memory_order_relaxed) : 0;
}

void cow_inject_reset(void)
{
    inject_init();
    pthread_mutex_lock(&g_mu);
    for (unsigned i = 0; i < COW_INJECT_MAX_POINTS; i++) {
        struct inject_point *p = &g_points[i];
        p->skip = 0;
        p->count = 0;
        p->arm_flags = 0;
        p->cb = NULL;
        p->cb_arg = NULL;
        p->cb_flags = 0;
        if (p->nblocked > 0) {
            p->nblocked = 0;
            p->gen++;
        }
        point_update_active(p);
        atomic_store_explicit(&p->hits, 0, memory_order_relaxed);
    }
    pthread_cond_broadcast(&g_cond);
    while (g_inside > 0)
        pthread_cond_wait(&g_cond, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

#else /* !COW_DEBUG: an empty unit (the typedef keeps ISO C happy) */

typedef int cow_inject_unused;

#endif /* COW_DEBUG */
