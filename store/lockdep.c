/*
 * lockdep.c - the store's mutex and its holder check (lockdep.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "lockdep.h"

#ifdef COW_DEBUG
/* Each thread's identity for cow_mutex.owner: the address of a
 * thread-local (vfs/vfs.c's cowvfsMutex does the same). */
static _Thread_local char tl_lock_id;
#endif

void cow_mutex_init(struct cow_mutex *mu)
{
    pthread_mutex_init(&mu->m, NULL);
    mu->owner = NULL;
}

void cow_mutex_destroy(struct cow_mutex *mu)
{
    pthread_mutex_destroy(&mu->m);
}

/* Records the calling thread as MU's holder (just locked), or nobody. */
static void set_owner(struct cow_mutex *mu, int held)
{
#ifdef COW_DEBUG
    __atomic_store_n(&mu->owner, held ? (const void *)&tl_lock_id : NULL, __ATOMIC_RELAXED);
#else
    (void)mu;
    (void)held;
#endif
}

void cow_mutex_lock(struct cow_mutex *mu)
{
    pthread_mutex_lock(&mu->m);
    set_owner(mu, 1);
}

void cow_mutex_unlock(struct cow_mutex *mu)
{
    set_owner(mu, 0);
    pthread_mutex_unlock(&mu->m);
}

void cow_cond_wait(pthread_cond_t *cond, struct cow_mutex *mu)
{
    set_owner(mu, 0);
    pthread_cond_wait(cond, &mu->m);
    set_owner(mu, 1);
}

void cow_cond_timedwait(pthread_cond_t *cond, struct cow_mutex *mu, const struct timespec *abstime)
{
    set_owner(mu, 0);
    pthread_cond_timedwait(cond, &mu->m, abstime);
    set_owner(mu, 1);
}

int lk_held(struct cow_mutex *mu)
{
#ifdef COW_DEBUG
    return __atomic_load_n(&mu->owner, __ATOMIC_RELAXED) == (const void *)&tl_lock_id;
#else
    (void)mu;
    return 1;
#endif
}

void lk_not_held(const char *expr, const char *func, const char *file, int line)
{
    fprintf(stderr, "lock not held: %s in %s (%s:%d)\n", expr, func, file, line);
    fflush(stderr);
    abort();
}

/* ---- the rwlock ---- */

int cow_rwlock_init(struct cow_rwlock *rw)
{
    rw->writer = NULL;
    rw->readers = 0;
    return pthread_rwlock_init(&rw->rw, NULL);
}

void cow_rwlock_destroy(struct cow_rwlock *rw)
{
    pthread_rwlock_destroy(&rw->rw);
}

void cow_rwlock_rdlock(struct cow_rwlock *rw)
{
    pthread_rwlock_rdlock(&rw->rw);
#ifdef COW_DEBUG
    __atomic_add_fetch(&rw->readers, 1, __ATOMIC_RELAXED);
#endif
}

int cow_rwlock_tryrdlock(struct cow_rwlock *rw)
{
    if (pthread_rwlock_tryrdlock(&rw->rw) != 0)
        return 0;
#ifdef COW_DEBUG
    __atomic_add_fetch(&rw->readers, 1, __ATOMIC_RELAXED);
#endif
    return 1;
}

void cow_rwlock_wrlock(struct cow_rwlock *rw)
{
    pthread_rwlock_wrlock(&rw->rw);
#ifdef COW_DEBUG
    __atomic_store_n(&rw->writer, (const void *)&tl_lock_id, __ATOMIC_RELAXED);
#endif
}

void cow_rwlock_rdlock_as_writer(struct cow_rwlock *rw)
{
    pthread_rwlock_rdlock(&rw->rw);
#ifdef COW_DEBUG
    __atomic_store_n(&rw->writer, (const void *)&tl_lock_id, __ATOMIC_RELAXED);
#endif
}

void cow_rwlock_unlock(struct cow_rwlock *rw)
{
#ifdef COW_DEBUG
    /* the writer is the caller if anyone: a writer excludes readers */
    if (__atomic_load_n(&rw->writer, __ATOMIC_RELAXED) == (const void *)&tl_lock_id)
        __atomic_store_n(&rw->writer, NULL, __ATOMIC_RELAXED);
    else
        __atomic_sub_fetch(&rw->readers, 1, __ATOMIC_RELAXED);
#endif
    pthread_rwlock_unlock(&rw->rw);
}

int lk_rw_held(struct cow_rwlock *rw, int shared_ok)
{
#ifdef COW_DEBUG
    if (__atomic_load_n(&rw->writer, __ATOMIC_RELAXED) == (const void *)&tl_lock_id)
        return 1;
    return shared_ok && __atomic_load_n(&rw->readers, __ATOMIC_RELAXED) > 0;
#else
    (void)rw;
    (void)shared_ok;
    return 1;
#endif
}
