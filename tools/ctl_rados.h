/*
 * ctl_rados.h - cowctl on a container in RADOS (cowctl --rados POOL/NAME
 * COMMAND): opening its store, reading it for fsck and dump (where it
 * lies: no local copy), whether it exists, removing it.  Built only with
 * librados (the Makefile defines COWCTL_RADOS).  The cluster is the one
 * $CEPH_CONF names (else librados's usual search), as client "admin".
 *
 * Every open takes the container's writer's lock (store/bdev_rados.h), so
 * that, as for a file container, a container in use by a writer elsewhere
 * is refused ("in use"), never waited for, and nothing changes it while a
 * command reads it.
 */
#ifndef COW_CTL_RADOS_H
#define COW_CTL_RADOS_H

#include <stddef.h>

#include "bdev.h"
#include "fsck.h"
#include "store.h"

/* The VFS name for copies through SQLite (import, export). */
#define CTL_RADOS_VFS "cow-rados"

/* Opens the store of SPEC with cow_store_open()'s FLAGS (COW_OPEN_READONLY:
 * the store never writes; the lock is taken all the same).  COW_E* codes
 * as bdev_rados_open() and cow_store_open_dev(); the reason is in
 * cow_store_last_error(NULL). */
int ctl_rados_open_store(const char *spec, int flags, cow_store **out);

/*
 * A container in RADOS as fsck and dump read it, where it lies: SRC reads
 * through the RADOS device (store/bdev_rados.h, its read method), which
 * holds the writer's lock until ctl_rados_src_close().  A read that fails
 * is EIO to the checker; the first one's reason is kept in FIRST_ERROR,
 * and NFAILED counts them.
 */
struct ctl_rados_src {
    struct cow_fsck_src src; /* name: the spec; arg: this struct */
    struct cow_dev *dev;
    uint64_t nfailed;
    char first_error[256];
};

/* Opens container SPEC (which must outlive RS) for reading into RS, under
 * its writer's lock, so that no writer changes it while it is checked.
 * Returns 0, or a COW_E* code as bdev_rados_open() (COW_EBUSY: a writer
 * has it; the reason in cow_store_last_error(NULL)).  Nothing is copied. */
int ctl_rados_src_open(const char *spec, struct ctl_rados_src *rs);

/* RS reading through DEV, a device of container SPEC (both must outlive
 * RS) that the caller keeps open and keeps writers away from (a test's
 * fsck of the store it has open, test/check_rados_store.c); not for
 * ctl_rados_src_close().  Returns 0, or DEV's size error. */
int ctl_rados_src_on(struct cow_dev *dev, const char *spec, struct ctl_rados_src *rs);

/* Releases RS (ctl_rados_src_open()'s) and the writer's lock. */
void ctl_rados_src_close(struct ctl_rados_src *rs);

/* 1 if container SPEC exists (made or being made), 0 if not, a negative
 * COW_E* code if that cannot be told. */
int ctl_rados_exists(const char *spec);

/* Removes container SPEC: bdev_rados_remove(). */
int ctl_rados_remove(const char *spec);

#endif
