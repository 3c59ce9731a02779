/*
 * lockdep.h - debug-build checks that the caller of a function holds the
 * lock the function needs (docs/DESIGN.md, "Threads and locks"), as vfs/
 * asserts its mutexes at the callee.
 *
 * Any store source may use it.  The checks are asserts: compiled out with
 * NDEBUG, never a side effect.
 */
#ifndef COW_LOCKDEP_H
#define COW_LOCKDEP_H

#include <assert.h>

#include "store_int.h"

/* Asserts that the calling thread holds ST's store->lock (struct cow_mutex
 * records its owner: cow_mutex_held). */
#define lk_assert_store(st) assert(cow_mutex_held(&(st)->lock))

#endif /* COW_LOCKDEP_H */
