/*
 * runs.h - lists of byte runs (struct byte_run, store_int.h): the
 * allocator's pinned, cooling and held space is kept as such lists, and
 * an owner that takes the container back carves out of them what another
 * owner reused meanwhile (alloc.c).
 *
 * A list is the caller's own array with a count and a capacity, grown
 * with vec_reserve (vec.h).  Runs are in bytes and never overlap within
 * a list.  No locking: the caller's (store->lock for the allocator's).
 */
#ifndef COW_RUNS_H
#define COW_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include "store_int.h"

/* Moves the N runs of FROM onto the end of *TO (count *NTO, capacity
 * *CTO), growing it.  0, or -1 without memory (*TO unchanged). */
int runs_append(struct byte_run **to, size_t *nto, size_t *cto, const struct byte_run *from,
                size_t n);

/* Removes [B, +LEN) (bytes) from the runs *V[0..*N) (capacity *C),
 * splitting a run that covers it inside and dropping runs it covers
 * whole (the order of the list changes).  Returns the bytes removed, or
 * UINT64_MAX without memory for a split (the list is then whole, some
 * runs already cut). */
uint64_t runs_carve(struct byte_run **v, size_t *n, size_t *c, uint64_t b, uint64_t len);

/* Cuts [B, +LEN) out of one run [*START, +*BYTES) (bytes); the bytes
 * removed (0: they do not overlap).  A cut inside the run leaves it its
 * head and gives its tail in *TAIL_START, *TAIL_BYTES (else *TAIL_BYTES
 * is 0); a cut over all of it leaves *BYTES 0.  runs_carve's step, for
 * lists of other elements (alloc.c's held runs). */
uint64_t runs_cut(uint64_t *start, uint64_t *bytes, uint64_t b, uint64_t len,
                  uint64_t *tail_start, uint64_t *tail_bytes);

#endif /* COW_RUNS_H */
