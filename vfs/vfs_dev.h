/*
 * vfs_dev.h - the hook through which a second VFS name serves containers
 * that are not files (vfs/vfs_rados.c: "cow-rados", containers in RADOS).
 *
 * Such a VFS is the cow VFS itself (the same sqlite3_vfs methods, the same
 * registry, io methods, pragmas and URI parameters) with three differences:
 * its xFullPathname keeps the name as given (leading '/'s dropped), so its
 * container paths never start with '/' while every cow path does (the
 * default VFS's full paths are absolute): that is how the registry tells
 * them apart (once a device VFS is registered, the container API of
 * include/cowvfs.h takes a path not starting with '/' as one of its
 * containers); its containers are opened through the opener given here
 * instead of cow_store_open(); and, having no file, each gets a private
 * memory file (memfd) for this process's locks and WAL-index name, no
 * journal mirror, and never "moves" (SQLITE_FCNTL_HAS_MOVED is 0).  One
 * process shares nothing with another through them: a device container is
 * written by one process at a time (the device's own lock).
 */
#ifndef COWVFS_VFS_DEV_H
#define COWVFS_VFS_DEV_H

#include "sqlite_api.h"
#include "store.h"

#pragma GCC visibility push(hidden)

/* Opens container ZPATH (as xFullPathname gave it) into *PPSTORE with
 * cow_store_open()'s FLAGS.  ZURI is the name SQLite gave with its URI
 * parameters when the open comes from xOpen, xAccess or xDelete, else NULL.
 * Returns a COW_E* code (COW_ENOENT or COW_ENOTCONTAINER: no container). */
typedef int (*cowvfsDevOpener)(const char *zPath, const char *zUri, int flags,
                               cow_store **ppStore);

/*
 * Registers ZNAME (static storage) as a VFS on the containers XOPEN opens,
 * after registering the cow VFS if need be.  Once only per process (a
 * second call with the same name is a no-op, another name SQLITE_MISUSE).
 * Thread-safe.  Returns SQLITE_OK, SQLITE_MISUSE or the error of
 * cowvfs_register() / sqlite3_vfs_register().
 */
int cowvfsRegisterDev(const char *zName, cowvfsDevOpener xOpen);

/* The VFS name that serves container ZPATH: the device VFS's for a path
 * not starting with '/' when one is registered, else "cow". */
const char *cowvfsVfsNameFor(const char *zPath);

/* 1 if PFILE is a container file of the cow VFS or the device VFS (its io
 * methods are theirs). */
int cowvfsIsContainerFile(sqlite3_file *pFile);

#pragma GCC visibility pop

/* vfs_rados.c: the entry point of build/cowvfs_rados.so (exported). */
int sqlite3_cowvfsrados_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

#endif
