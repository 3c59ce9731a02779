/*
 * lockspace.h - the bytes of the container file that processes lock, and
 * the names of the shared-memory objects they map (docs/DESIGN.md,
 * "Several processes").  Every process that opens a container, whatever
 * its version, must agree on these: they are a protocol, as the lock
 * bytes of SQLite's os_unix.c are (PENDING_BYTE and the -shm file's
 * lock offsets).
 *
 * All locks are open-file-description locks (fcntl F_OFD_SETLK, Linux
 * 3.15 and later) on bytes past COW_LOCK_BASE: no container is that long,
 * and a lock on bytes past the end of a file costs nothing and is dropped
 * when its process dies.
 */
#ifndef COW_LOCKSPACE_H
#define COW_LOCKSPACE_H

#include <stdint.h>

/* The first locked byte (2^62: far past any data, within off_t). */
#define COW_LOCK_BASE (1ull << 62)

/* The store's shared state (store/shared.c). */
#define COW_LOCK_STORE_DMS (COW_LOCK_BASE + 0) /* dead-man switch: read-locked by
                                                * every process that maps the
                                                * state; write-locked by the
                                                * one that (re)initialises it
                                                * or, at close, finds itself
                                                * last and unlinks it */
#define COW_SHARED_SLOTS 256u                  /* processes at once */
#define COW_LOCK_SLOT(i) (COW_LOCK_BASE + 1024 + (uint64_t)(i)) /* write-locked by
                                                * the process in slot i */

/* One range of COW_LOCK_DB_SPAN bytes per database of the container (the
 * live one is subvolume 256; snapshots and branches 257 and up), laid out
 * as os_unix.c locks a database and its -shm file. */
#define COW_LOCK_DB_SPAN 64u
#define COW_LOCK_DB(id) (COW_LOCK_BASE + (1ull << 20) + (uint64_t)(id) * COW_LOCK_DB_SPAN)
#define COW_LOCK_PENDING 0u   /* + COW_LOCK_DB(id): SQLite's PENDING_BYTE */
#define COW_LOCK_RESERVED 1u  /* RESERVED_BYTE */
#define COW_LOCK_SHARED 2u    /* the SHARED byte (one byte: no Windows readers) */
#define COW_LOCK_WAL 8u       /* the eight WAL-index locks: +8 .. +15 */
#define COW_LOCK_WAL_DMS 16u  /* the WAL-index's dead-man switch */
#define COW_LOCK_OPEN 17u     /* read-locked by every process that has the
                               * database open: deleting a snapshot or
                               * branch probes it (no other process may
                               * have it open) */

/* Shared-memory object names (shm_open): "/cowvfs-DEV-INO" for the store's
 * state, "/cowvfs-DEV-INO-ID" for database ID's WAL-index; DEV and INO in
 * lower-case hex, from the container's st_dev and st_ino. */
#define COW_SHM_PREFIX "/cowvfs-"

#endif /* COW_LOCKSPACE_H */
