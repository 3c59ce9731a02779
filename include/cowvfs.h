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
 * From the sqlite3 shell:   .load ./build/cowvfs
 *                           .open file:app.db?vfs=cow
 * From Python:              conn.enable_load_extension(True)
 *                           conn.load_extension('./build/cowvfs')
 *                           sqlite3.connect('file:app.db?vfs=cow', uri=True)
 *
 * Files: the path of a main database names the container.  The database,
 * its rollback journal, WAL and super-journals live inside it; the WAL-index
 * is kept in memory (no -shm file).  Temporary files (temp databases, sort
 * files, statement journals) go to the VFS that was the default when cow was
 * registered.
 *
 * Errors: a file that is not a container (an ordinary SQLite database,
 * random bytes, a truncated or damaged container) fails to open with
 * SQLITE_NOTADB or SQLITE_CORRUPT and is never written; the reason goes to
 * sqlite3_log().  I/O errors are the exact SQLite extended codes
 * (SQLITE_IOERR_DATA for a checksum mismatch, SQLITE_IOERR_CORRUPTFS for
 * damaged metadata, SQLITE_FULL, ...), each logged with the operation, the
 * file and the offset.
 *
 * Durability: a transaction is committed to the container when SQLite syncs
 * and at the end of every write transaction, so a transaction SQLite has
 * reported committed survives a crash of the application in every journal
 * mode and synchronous setting (with locking_mode=EXCLUSIVE, only at
 * synchronous=FULL); power-loss durability follows synchronous as usual.
 *
 * PRAGMA cow_generation returns the generation of the container's last
 * commit; PRAGMA cow_commit commits now.
 *
 * Threading: the VFS is safe to use from any number of connections and
 * threads in one process (SQLite's own locking protocol is followed between
 * them).  A container is used by one process at a time: a second process
 * opening it gets SQLITE_BUSY.  In one process a container is opened once; if
 * a read-only connection opened it first, later read-write connections get a
 * read-only database until every connection to it has closed.
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
 * becomes the default VFS.  The first call records the VFS that is the
 * default at that moment (normally "unix"): temporary files and the OS
 * services (randomness, time, dlopen, ...) are delegated to it.  Safe to call
 * more than once and from several threads; a later call with MAKE_DEFAULT 0
 * leaves cow the default if it already is.  Returns SQLITE_OK, SQLITE_ERROR
 * if SQLite has no default VFS to build on, or the error of
 * sqlite3_vfs_register() (SQLITE_NOMEM, SQLITE_MISUSE).
 */
int cowvfs_register(int make_default);

#ifdef __cplusplus
}
#endif

#endif /* COWVFS_H */
