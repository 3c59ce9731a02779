/*
 * cowvfs.h - the public interface of cowvfs.
 *
 * cowvfs is an SQLite VFS named "cow" whose files live in a copy-on-write
 * extent store: one container file per database holds the database and its
 * rollback journal, WAL and super-journal, with no files beside it.
 *
 * Use from C:
 *
 *     #include <cowvfs.h>
 *     cowvfs_register(0);
 *     sqlite3_open_v2("file:app.db?vfs=cow", &db,
 *                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
 *                     SQLITE_OPEN_URI, NULL);
 *
 * and link with -lcowvfs (pkg-config cowvfs).  As a loadable extension
 * (build/cowvfs.so), the entry point is sqlite3_cowvfs_init: the VFS stays
 * registered after the loading connection closes.
 *
 * Threading: the VFS is safe to use from any number of connections and
 * threads in one process (SQLite's own locking protocol is followed between
 * them).  A container is used by one process at a time: a second process
 * opening it gets SQLITE_BUSY.
 */
#ifndef COWVFS_H
#define COWVFS_H

#ifdef __cplusplus
extern "C" {
#endif

#define COWVFS_VERSION "0.1.0"

/* The VFS name registered with SQLite. */
#define COWVFS_NAME "cow"

/*
 * Registers the "cow" VFS with SQLite.  If MAKE_DEFAULT is non-zero it also
 * becomes the default VFS.  Safe to call more than once and from several
 * threads.  Returns SQLITE_OK, or SQLITE_NOMEM / SQLITE_ERROR from
 * sqlite3_vfs_register().
 */
int cowvfs_register(int make_default);

#ifdef __cplusplus
}
#endif

#endif /* COWVFS_H */
