/*
 * vfs_rados.c - the "cow-rados" VFS: the cow VFS on containers in a Ceph
 * RADOS pool (store/bdev_rados.h), and the entry point of the loadable
 * extension build/cowvfs_rados.so.
 *
 *     sqlite> .load ./build/cowvfs_rados
 *     sqlite> .open file:POOL/NAME?vfs=cow-rados&ceph_conf=/etc/ceph/ceph.conf
 *
 * The name is POOL/NAME or POOL:NAMESPACE/NAME (leading '/'s are dropped,
 * so libcephsqlite's file:///POOL:NS/NAME works too).  URI parameters of
 * the main database: ceph_conf=PATH (the Ceph configuration; default
 * $CEPH_CONF, then librados's search path) and ceph_id=NAME (the client id
 * without "client."; default "admin"); every parameter and pragma of the
 * cow VFS works as with it (vfs_dev.h: it is the same code).  Opens made
 * without a URI name (the container API of include/cowvfs.h) use the
 * defaults.
 */
#include "sqlite_api.h"

#include "bdev_rados.h"
#include "cowvfs.h"
#include "vfs_dev.h"
#include "vfs_int.h"

/*
 * The opener of vfs_dev.h: bdev_rados_open(), then a store on it.  A
 * read-only open takes no lock: a writer on another client may commit
 * while it loads.  Its device pins what it reads (bdev.h reader_pin,
 * invariant 9), and its load takes a log the writer moved on meanwhile as
 * the end of what it reads (replay.c), so it opens the state it found.
 */
static int cowRadosOpen(const char *zPath, const char *zUri, int flags, cow_store **ppStore)
{
    const char *zConf = zUri ? sqlite3_uri_parameter(zUri, "ceph_conf") : 0;
    const char *zId = zUri ? sqlite3_uri_parameter(zUri, "ceph_id") : 0;
    int bflags = ((flags & COW_OPEN_READONLY) ? BDEV_READONLY : 0) |
                 ((flags & COW_OPEN_CREATE) ? BDEV_CREATE : 0);
    struct cow_dev *dev = 0;
    int created = 0;
    int rc;

    *ppStore = 0;
    rc = bdev_rados_open(zPath, zConf, zId, bflags, &dev, &created);
    if (rc != COW_OK) {
        sqlite3_log(SQLITE_CANTOPEN, "cow-rados: open %s: %s", zPath, cow_store_last_error(0));
        return rc;
    }
    return cow_store_open_dev(zPath, dev, flags, created, ppStore);
}

/*
 * Registers the "cow-rados" VFS (and "cow", if it is not yet), not as the
 * default.  Thread-safe; later calls are no-ops.  Returns SQLITE_OK or the
 * error of the registration (cowvfsRegisterDev).
 */
int cowvfs_rados_register(void)
{
    return cowvfsRegisterDev(COWVFS_RADOS_NAME, cowRadosOpen);
}

/*
 * The entry point SQLite derives from the file name cowvfs_rados.so:
 * registers "cow" and "cow-rados" and the cow_snapshots function (as
 * sqlite3_cowvfs_init does), and stays loaded
 * (SQLITE_OK_LOAD_PERMANENTLY).  On failure returns the error with a
 * message in *PZERRMSG (sqlite3_mprintf()ed).
 */
int sqlite3_cowvfsrados_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
    int rc = sqlite3_cowvfs_init(db, pzErrMsg, pApi);
    if (rc != SQLITE_OK_LOAD_PERMANENTLY)
        return rc;
    rc = cowvfs_rados_register();
    if (rc != SQLITE_OK) {
        if (pzErrMsg)
            *pzErrMsg = sqlite3_mprintf("cow: cannot register the cow-rados VFS: %s",
                                        sqlite3_errstr(rc));
        return rc;
    }
    return SQLITE_OK_LOAD_PERMANENTLY;
}
