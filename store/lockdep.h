/*
 * lockdep.h - the store's mutex (struct cow_mutex, cow_mutex_*) and the
 * debug check that a function's caller holds it (lk_assert_held).
 *
 * The rule (docs/DESIGN.md, "Threads and locks"): a function that needs a
 * lock held says so in its comment and asserts it at its top, in the
 * callee, as vfs/ does with cowvfsMutexHeld() and as the Linux kernel does
 * with lockdep_assert_held():
 *
 *     int alloc_free(cow_store *st, ...)
 *     {
 *         lk_assert_held(&st->lock);
 *
 * In debug builds (COW_DEBUG: the tests, the crash simulator, the
 * fuzzers) the mutex records which thread holds it, and lk_assert_held()
 * prints the function, file and line and aborts when the calling thread
 * does not hold it (whether another thread does or nobody does).  Without
 * COW_DEBUG nothing is recorded and lk_assert_held() compiles to nothing.
 */
#ifndef COW_LOCKDEP_H
#define COW_LOCKDEP_H

#include <pthread.h>
#include <time.h>

/* A pthread mutex that, in debug builds, records its holder.  OWNER is the
 * holding thread's identity (the address of a thread-local, lockdep.c),
 * NULL when not held; read and written atomically, so that a thread that
 * does not hold the mutex may check it (under TSan too). */
struct cow_mutex {
    pthread_mutex_t m;
    const void *owner; /* COW_DEBUG only; NULL otherwise */
};
void cow_mutex_init(struct cow_mutex *mu);
void cow_mutex_destroy(struct cow_mutex *mu);
void cow_mutex_lock(struct cow_mutex *mu);
void cow_mutex_unlock(struct cow_mutex *mu);
/* Waits on COND, releasing MU meanwhile, until a signal; MU is held again
 * on return (its owner recorded). */
void cow_cond_wait(pthread_cond_t *cond, struct cow_mutex *mu);
/* Waits on COND, releasing MU meanwhile, until ABSTIME (CLOCK_MONOTONIC) or
 * a signal; MU is held again on return (its owner recorded). */
void cow_cond_timedwait(pthread_cond_t *cond, struct cow_mutex *mu, const struct timespec *abstime);

/* 1 if the calling thread holds MU; always 1 without COW_DEBUG (for
 * asserts only: never decide anything else on it). */
int lk_held(struct cow_mutex *mu);
/* lk_assert_held()'s failure: prints "lock not held: EXPR in FUNC
 * (FILE:LINE)" on stderr and aborts. */
_Noreturn void lk_not_held(const char *expr, const char *func, const char *file, int line);

#ifdef COW_DEBUG
/* Aborts (lk_not_held) unless the calling thread holds the cow_mutex MU. */
#define lk_assert_held(mu) \
    ((void)(lk_held(mu) || (lk_not_held(#mu, __func__, __FILE__, __LINE__), 0)))
#else
#define lk_assert_held(mu) ((void)0)
#endif

#endif /* COW_LOCKDEP_H */
