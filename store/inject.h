/*
 * inject.h - named injection points for deterministic race tests.
 *
 * Store code marks a point with COW_INJECT("subsystem:where"), for example
 * COW_INJECT("writeback:after_oe").  In a build without COW_DEBUG the macro
 * expands to nothing: no call, no symbol, no data (inject.c compiles to an
 * empty object).  In a test build (-DCOW_DEBUG) each pass through a point
 * is a "hit", which a test can count, stop or hook:
 *
 *   cow_inject_arm("writeback:after_oe", COW_INJECT_NOT_ME, 0, 1);
 *   start thread A, which reaches the point and blocks there;
 *   cow_inject_wait("writeback:after_oe", 1, 5000);   A is stopped there
 *   run operation B on this thread, observe state;
 *   cow_inject_release("writeback:after_oe");          A goes on
 *   join A; cow_inject_reset();
 *
 * Names are string literals (static storage, compared by content); the
 * table holds COW_INJECT_MAX_POINTS distinct names per run.
 *
 * What a hit does, in order: it adds one to the point's hit counter; if a
 * callback is set (and applies to this thread) it runs the callback on the
 * hitting thread; then, if the point is armed (and the arm applies to this
 * thread), it blocks until released.
 *
 * Locking: the mechanism has one internal mutex of its own, below every
 * other lock (a leaf: it is never held while store or VFS code runs, nor
 * while a callback runs).  A hit on a point that is neither armed nor
 * hooked takes no lock at all (relaxed atomics only), so points add no
 * happens-before edges that could hide a race from ThreadSanitizer.  A
 * point may be placed anywhere, with or without store->lock held.
 *
 * DEADLOCK RISK: a thread blocked at a point keeps every lock it holds.
 * If the point is inside store->lock, every other store entry point of
 * that store (including the background committer) waits until the test
 * calls cow_inject_release(); the test thread must not call into that
 * store meanwhile, or it deadlocks on itself.  Only park a thread under a
 * lock when the test means to observe exactly that.  Blocked threads have
 * no timeout; cow_inject_reset() releases them all.
 *
 * Errors: the test API returns 0 on success or a positive errno value
 * (EINVAL, ENOSPC, ETIMEDOUT, ENOENT), like pthreads; never a COW_E* code.
 */
#ifndef COW_INJECT_H
#define COW_INJECT_H

#ifdef COW_DEBUG

/* Records a hit of point NAME (a string literal).  Use COW_INJECT(). */
void cow_inject_hit(const char *name);
/* The "" "" makes a non-literal argument a compile error. */
#define COW_INJECT(name) cow_inject_hit("" name "")

/* Distinct point names the table holds (arm/set_callback return ENOSPC,
 * and hits of further names are not counted, past it). */
#define COW_INJECT_MAX_POINTS 256

/* Flags of cow_inject_arm() and cow_inject_set_callback(). */
#define COW_INJECT_NOT_ME 0x1 /* the calling thread's own hits pass: they
                               * neither block, run the callback, nor
                               * count towards SKIP */
#define COW_INJECT_ONCE 0x2   /* callback only: run it for one hit, then
                               * remove it */

/*
 * Arms point NAME: the hits after the first SKIP that apply (see
 * COW_INJECT_NOT_ME) block, COUNT of them (COUNT >= 1), each until
 * cow_inject_release(NAME).  After COUNT threads have blocked, the arm is
 * used up and later hits pass.  Arming a point that is already armed
 * replaces its SKIP, COUNT and FLAGS; threads already blocked stay blocked.
 * NAME must have static storage (a literal); it is not copied.
 * Returns 0, EINVAL (NAME NULL or COUNT 0) or ENOSPC (table full).
 * Locking: takes the inject mutex; callable from any thread.
 */
int cow_inject_arm(const char *name, unsigned flags, unsigned skip, unsigned count);

/*
 * Waits until at least NTHREADS threads (NTHREADS >= 1) are blocked at
 * NAME, for at most TIMEOUT_MS milliseconds (CLOCK_MONOTONIC).  Returns 0,
 * ETIMEDOUT (never hangs past the timeout), EINVAL (NAME NULL or NTHREADS
 * 0) or ENOSPC (table full).  Call it from the test thread, never from a
 * thread that holds a lock the awaited thread needs on its way to NAME.
 */
int cow_inject_wait(const char *name, unsigned nthreads, unsigned timeout_ms);

/*
 * Releases every thread blocked at NAME and disarms NAME (an arm not used
 * up yet blocks nobody more).  Returns 0 if at least one thread was
 * released, ENOENT if none was blocked (the point is disarmed anyway),
 * EINVAL if NAME is NULL.  Does not wait for the released threads to run.
 */
int cow_inject_release(const char *name);

/* The number of threads blocked at NAME now (0 for an unknown name). */
unsigned cow_inject_blocked(const char *name);

/*
 * Makes every hit of NAME that applies (see COW_INJECT_NOT_ME,
 * COW_INJECT_ONCE) call CB(ARG, NAME) on the hitting thread, before any
 * blocking.  CB runs with no inject lock held, and with whatever locks the
 * hitting thread holds (the same deadlock risk as blocking: a callback at a
 * point inside store->lock must not call into that store).  A hit of NAME
 * made by CB itself, on the same thread, does not run CB again.  CB NULL
 * removes the callback.  ARG stays owned by the caller and must stay valid
 * until the callback is removed and any running call of CB has returned
 * (cow_inject_reset() waits for that).  Replacing a callback keeps the
 * point's other state.  Returns 0, EINVAL (NAME NULL) or ENOSPC.
 */
int cow_inject_set_callback(const char *name, void (*cb)(void *arg, const char *name),
                            void *arg, unsigned flags);

/* Hits of NAME since the last cow_inject_reset() (0 for an unknown name);
 * every hit counts, armed or not. */
unsigned long cow_inject_hits(const char *name);

/*
 * Disarms every point, removes every callback, releases every blocked
 * thread, waits until each has left its point and every running callback
 * has returned, and sets every hit counter to 0.  Call it at the end of a
 * test (after joining the test's threads is best; a hit racing with the
 * reset may count either before or after it).  Never call it from a
 * callback (it would wait for itself).  The mechanism allocates no memory,
 * so there is nothing to free.
 */
void cow_inject_reset(void);

#else /* !COW_DEBUG */

#define COW_INJECT(name) do { } while (0)

#endif /* COW_DEBUG */

#endif /* COW_INJECT_H */
