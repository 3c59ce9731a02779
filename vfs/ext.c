/*
 * ext.c - the loadable-extension entry point of the cow VFS.
 *
 *     sqlite> .load ./build/cowvfs
 *     sqlite> .open file:app.db?vfs=cow
 *
 * In the build of build/cowvfs.so (-DCOWVFS_LOADABLE) this file owns the
 * sqlite3_api pointer (SQLITE_EXTENSION_INIT1) that every sqlite3_* call of
 * vfs/ goes through; see vfs/sqlite_api.h.  In the static library the entry
 * point also exists and simply registers the VFS (usable with
 * sqlite3_auto_extension()).
 */
#include "sqlite_api.h"

#ifdef COWVFS_LOADABLE
SQLITE_EXTENSION_INIT1
#endif

#include "cowvfs.h"
#include "vfs_int.h"

/*
 * The entry point SQLite derives from the file name cowvfs.so.  Registers
 * the "cow" VFS (not as the default) and returns SQLITE_OK_LOAD_PERMANENTLY
 * so that SQLite never unloads the library: the VFS stays registered after
 * the loading connection closes.  On failure returns the error of
 * cowvfs_register() with a message in *PZERRMSG (sqlite3_mprintf()ed).
 */
int sqlite3_cowvfs_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
    int rc;

#ifdef COWVFS_LOADABLE
    SQLITE_EXTENSION_INIT2(pApi);
#else
    (void)pApi;
#endif
    rc = cowvfs_register(0);
    if (rc != SQLITE_OK) {
        if (pzErrMsg)
            *pzErrMsg = sqlite3_mprintf("cow: cannot register the VFS: %s", sqlite3_errstr(rc));
        goto out;
    }
    /* cow_snapshots: on this connection now, on later ones through the
     * auto-extension cowvfs_register() installed */
    if (db) {
        rc = cowvfsSnapRegister(db);
        if (rc != SQLITE_OK) {
            if (pzErrMsg)
                *pzErrMsg = sqlite3_mprintf("cow: cannot register cow_snapshots: %s",
                                            sqlite3_errstr(rc));
            goto out;
        }
    }
    rc = SQLITE_OK_LOAD_PERMANENTLY;
out:
    return rc;
}
