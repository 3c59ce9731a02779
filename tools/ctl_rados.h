/*
 * ctl_rados.h - cowctl on a container in RADOS (cowctl --rados POOL/NAME
 * COMMAND): opening its store, a local image of it for fsck and dump,
 * whether it exists, removing it.  Built only with librados (the Makefile
 * defines COWCTL_RADOS).  The cluster is the one $CEPH_CONF names (else
 * librados's usual search), as client "admin".
 *
 * Every open takes the container's writer's lock (store/bdev_rados.h), so
 * that, as for a file container, a container in use by a writer elsewhere
 * is refused ("in use"), never waited for, and nothing changes it while a
 * command reads it.
 */
#ifndef COW_CTL_RADOS_H
#define COW_CTL_RADOS_H

#include <stddef.h>

#include "store.h"

/* The VFS name for copies through SQLite (import, export). */
#define CTL_RADOS_VFS "cow-rados"

/* Opens the store of SPEC with cow_store_open()'s FLAGS (COW_OPEN_READONLY:
 * the store never writes; the lock is taken all the same).  COW_E* codes
 * as bdev_rados_open() and cow_store_open_dev(); the reason is in
 * cow_store_last_error(NULL). */
int ctl_rados_open_store(const char *spec, int flags, cow_store **out);

/*
 * Copies container SPEC, byte for byte, into a new sparse temporary file
 * (in $TMPDIR, else /tmp; its name in PATH, of N bytes), for the tools that
 * read a container file (fsck, dump).  The caller unlinks it.  Returns 0,
 * or a COW_E* code (the reason in cow_store_last_error(NULL); COW_EIO_WRITE
 * for the local file).
 */
int ctl_rados_image(const char *spec, char *path, size_t n);

/* 1 if container SPEC exists (made or being made), 0 if not, a negative
 * COW_E* code if that cannot be told. */
int ctl_rados_exists(const char *spec);

/* Removes container SPEC: bdev_rados_remove(). */
int ctl_rados_remove(const char *spec);

#endif
