/*
 * slt_util.h - the sqllogictest runner's small utilities (build/slt,
 * sqllogictest/slt.c): its exit statuses, allocation that never fails
 * (running out of memory ends the program), growable arrays and a clock.
 */
#ifndef SLT_UTIL_H
#define SLT_UTIL_H

#include <stddef.h>

/* Exit statuses (slt.c's file comment says when each is given). */
#define EXIT_PASS   0
#define EXIT_FAILED 1
#define EXIT_USAGE  2

/* Prints "slt: out of memory" and exits with EXIT_USAGE.  Allocation
 * failure is not a test result, so it is not worth unwinding for. */
_Noreturn void die_nomem(void);

/* malloc(SIZE), realloc(P, SIZE) and strdup(S) that never return NULL
 * (die_nomem()); a SIZE of 0 allocates 1 byte.  The caller owns the
 * result and frees it with free(). */
void *xmalloc(size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);

/* Returns array P (capacity *CAP elements of ELEM bytes) grown so that
 * it holds at least NEED elements, updating *CAP.  The capacity at least
 * doubles, so appends are amortised O(1).  P may be NULL; the result
 * replaces it (P is freed or reused, as by realloc). */
void *grow(void *p, size_t *cap, size_t need, size_t elem);

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC), for
 * wall-time measurements. */
double now_seconds(void);

#endif
