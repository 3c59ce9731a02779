/*
 * bdev_rados.h - the container as objects of a Ceph RADOS pool (librados's
 * C API), a struct cow_dev like the file device (bdev.h).
 *
 * LAYOUT.  Container NAME of pool POOL (namespace NS) is striped over
 * objects of BDEV_RADOS_OBJECT_SIZE bytes named "NAME.%016x" by object
 * index (byte B of the container is byte B % size of object B / size), as
 * rbd and libcephsqlite's SimpleRADOSStriper stripe an image.  Object 0
 * carries the header, an xattr "cowvfs.header" (64 bytes, little-endian:
 * magic "COWRADOS", version 1, flags, the object size, the container's size
 * in bytes, a CRC-32C of the rest), checked at every open before anything
 * else is read: a wrong magic or version is COW_ENOTCONTAINER, a bad CRC or
 * an object size out of range is COW_ECORRUPT, and nothing is written.  An
 * object missing inside the size reads as zeros (the container is sparse,
 * as a file is).  The size changes only by grow (header first, then
 * writes) and shrink (objects past the new size removed, the last one
 * truncated, then the header).
 *
 * THE LOCK.  A writable open takes the cls_lock exclusive lock
 * "cowvfs.lock" on object 0 for BDEV_RADOS_LOCK_SECONDS (by default) and a
 * thread renews it every third of that, as libcephsqlite does.  A lock held
 * by a live client (one that renews it) is COW_EBUSY.  The taker records
 * its address in object 0's xattr "cowvfs.owner", which a clean close
 * removes before unlocking.  A lock whose holder stopped renewing it
 * expires; the next writer, finding an address there that is not its own,
 * blocklists that client (rados_blocklist_add) and waits for the OSD map
 * saying so before it writes anything, so that a client that lost its lock
 * (stalled, partitioned, killed with writes in flight) can never write
 * again: the OSDs refuse it.  A renewal that fails fails the device: every
 * later write and flush is COW_EIO_WRITE / COW_EIO_FLUSH, and the store
 * reports COW_EFAILED and writes no more.  Read-only opens take no lock.
 *
 * FORMAT.  A new container (object 0 missing or empty, with BDEV_CREATE) is
 * made with a header whose "published" flag is clear; the store formats it
 * and flushes its first commit, then calls the device's publish method,
 * which sets the flag.  A container whose flag is clear was never finished
 * (a crash during its format): with BDEV_CREATE it is emptied and formatted
 * again, without it it is COW_ENOTCONTAINER.  A new container closed
 * before it was published is removed.
 *
 * ORDER.  Writes are rados_aio_write()s kept in flight; writes to different
 * objects are not ordered among themselves until a flush returns (the flush
 * waits for every write issued before it): docs/DESIGN.md, "On Ceph RADOS",
 * says why the one-flush commit and the log stay correct.  A read waits for
 * the writes in flight to the objects it reads.
 *
 * THE CLUSTER HANDLE.  Every device of a process shares one connected
 * rados_t per (configuration file, client id), reference-counted: made at
 * the first open, shut down at the last close.
 */
#ifndef COW_BDEV_RADOS_H
#define COW_BDEV_RADOS_H

#include "bdev.h"

/* Bytes per object of a new container (4 MiB, rbd's default).  An existing
 * container keeps the size in its header (64 KiB to 64 MiB, a power of 2). */
#define BDEV_RADOS_OBJECT_SIZE (4u << 20)
/* The lock's duration in seconds unless bdev_rados_set_lock_seconds(). */
#define BDEV_RADOS_LOCK_SECONDS 30

/*
 * Opens container SPEC, "POOL/NAME" or "POOL:NAMESPACE/NAME", as a device.
 * POOL, NAMESPACE and NAME are 1 to 200 bytes without '/' (':' neither in
 * POOL), NAME also without '.' at its end, and without control characters;
 * anything else is COW_EINVAL with a message naming the rule broken.
 * CONF is the Ceph configuration file (NULL: $CEPH_CONF, else librados's
 * search: /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf); ID the client
 * id without "client." (NULL: "admin").  FLAGS: BDEV_READONLY (no lock, no
 * write), BDEV_CREATE (a missing or unfinished container is made; *CREATED
 * is then 1 and the caller formats it: cow_store_open_dev(..., format=1)).
 *
 * Errors: COW_EINVAL (SPEC), COW_ENOENT (no such pool, or container without
 * BDEV_CREATE), COW_EBUSY (a live client holds the writer's lock),
 * COW_ENOTCONTAINER (object 0 is not a container's, or a format never
 * finished), COW_ECORRUPT (a damaged header), COW_EIO_READ (the cluster
 * cannot be reached: the connection gives up after 30 s; a read failed),
 * COW_EIO_WRITE (the header, lock or blocklist could not be written),
 * COW_ENOMEM.  Thread-safe.
 */
int bdev_rados_open(const char *spec, const char *conf, const char *id, int flags,
                    struct cow_dev **out, int *created);

/*
 * Removes container SPEC (every object of it, object 0 and its lock last),
 * after taking its writer's lock as bdev_rados_open() does (CONF and ID as
 * there).  A container never finished is removed too.  Errors as
 * bdev_rados_open() (COW_ENOENT: no such container; COW_EBUSY: a writer has
 * it), and COW_EIO_TRUNCATE (an object could not be removed).
 */
int bdev_rados_remove(const char *spec, const char *conf, const char *id);

/*
 * Sets the writer's lock duration (seconds, 3 to 3600) of devices opened
 * from now on in this process: the time after which a killed writer's lock
 * can be taken over.  Tests shorten it.  COW_EINVAL out of range.
 */
int bdev_rados_set_lock_seconds(unsigned seconds);

#endif
