/*
 * vec.h - growing the store's arrays: the one place that reallocates an
 * array of elements kept with a count and a capacity (pinned runs, written
 * runs, block groups, a log record's bytes, ...).
 *
 * The array stays the caller's own typed pointer and fields, e.g.
 *     struct byte_run *pinned; size_t npinned, cpinned;
 *     if (vec_reserve(st->pinned, st->cpinned, st->npinned + 1))
 *         return cow_set_error(COW_ENOMEM, "out of memory");
 *     st->pinned[st->npinned++] = run;
 * (git's ALLOC_GROW, with an error instead of dying.)
 */
#ifndef COW_VEC_H
#define COW_VEC_H

#include <stddef.h>

/* Makes the array ARR (an lvalue of pointer type, NULL when empty) of
 * capacity CAP (an lvalue of type size_t, in elements) hold at least NEED
 * elements: it doubles (from 16 elements at least) until it does, keeping
 * the elements already there.  COW_OK, or COW_ENOMEM with ARR and CAP
 * unchanged (no message set: the caller decides what an allocation
 * failure means).  Never shrinks. */
#define vec_reserve(arr, cap, need) vec_reserve_(&(arr), &(cap), (need), sizeof *(arr))

/* vec_reserve()'s function: *ARRP is any object pointer (read and written
 * through memcpy, so the caller's pointer type is kept), ELSIZE the size of
 * one element. */
int vec_reserve_(void *arrp, size_t *cap, size_t need, size_t elsize);

#endif /* COW_VEC_H */
