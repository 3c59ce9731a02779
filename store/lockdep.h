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

/*
 * A pthread rwlock that, in debug builds, records its exclusive holder and
 * how many hold it shared: the files' invalidate lock (docs/DESIGN.md,
 * invariant 3).  A shared holder is not known by thread (a thread may hold
 * several: restore locks every file of a tree), so the shared check is
 * "held shared by someone, or exclusively by the caller": it catches a
 * function called with the lock not held at all.
 */
struct cow_rwlock {
    pthread_rwlock_t rw;
    const void *writer; /* COW_DEBUG only: the exclusive holder, or NULL */
    int readers;        /* COW_DEBUG only: shared holders */
};
/* 0 or an errno of pthread_rwlock_init. */
int cow_rwlock_init(struct cow_rwlock *rw);
void cow_rwlock_destroy(struct cow_rwlock *rw);
void cow_rwlock_rdlock(struct cow_rwlock *rw);
/* 1 if taken shared without waiting, else 0 (not taken). */
int cow_rwlock_tryrdlock(struct cow_rwlock *rw);
void cow_rwlock_wrlock(struct cow_rwlock *rw);
/* Takes RW shared but records the caller as its exclusive holder: only for
 * the deliberately broken build of make race-proof (COW_BREAK_INVALIDATE),
 * so that the asserts let its race happen for the race test to see. */
void cow_rwlock_rdlock_as_writer(struct cow_rwlock *rw);
void cow_rwlock_unlock(struct cow_rwlock *rw);
/* 1 if the calling thread holds RW exclusively, or (with SHARED_OK) if
 * anyone holds it shared; always 1 without COW_DEBUG (asserts only). */
int lk_rw_held(struct cow_rwlock *rw, int shared_ok);

#ifdef COW_DEBUG
/* Aborts unless RW is held shared (by someone) or exclusively (by the
 * caller). */
#define lk_assert_rw_held(rw) \
    ((void)(lk_rw_held(rw, 1) || (lk_not_held(#rw, __func__, __FILE__, __LINE__), 0)))
/* Aborts unless the calling thread holds RW exclusively. */
#define lk_assert_rw_excl(rw) \
    ((void)(lk_rw_held(rw, 0) || (lk_not_held(#rw " (exclusive)", __func__, __FILE__, __LINE__), 0)))
#else
#define lk_assert_rw_held(rw) ((void)0)
#define lk_assert_rw_excl(rw) ((void)0)
#endif

#endif /* COW_LOCKDEP_H */
