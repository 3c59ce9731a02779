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

/* The VFS on Ceph RADOS (README "On Ceph RADOS"): only in builds with
 * librados (build/cowvfs_rados.so, entry point sqlite3_cowvfsrados_init). */
#define COWVFS_RADOS_NAME "cow-rados"

/*
 * Registers the "cow-rados" VFS (and "cow" if need be), never as the
 * default: file:POOL/NAME?vfs=cow-rados (or POOL:NAMESPACE/NAME), URI
 * parameters ceph_conf=PATH and ceph_id=NAME besides cow's.  Once it is
 * registered, the container functions below take a path that does not
 * start with '/' as a RADOS container.  Safe to call more than once and
 * from several threads.  Returns SQLITE_OK or the error of cowvfs_register()
 * or sqlite3_vfs_register().
 */
int cowvfs_rados_register(void);

/* ---------------------------------------------------------------------------
 * Snapshots and branches
 *
 * A snapshot is a read-only copy of a database, a branch a writable one;
 * both live in the database's container and share every unchanged block
 * with their source (copy on write), so making one takes constant time
 * whatever the database's size.  A snapshot holds the database at a
 * transaction boundary: the last committed state when it is taken, with
 * the database file, journal and WAL taken at one instant (no checkpoint is
 * needed in WAL mode); taken inside the caller's own write transaction, it
 * holds the state before that transaction.  Branches can be made of the
 * live database, of a snapshot or of another branch, snapshots of a branch.
 *
 * Open one with a URI: file:app.db?vfs=cow&snapshot=NAME (read-only: writes
 * fail with SQLITE_READONLY) or file:app.db?vfs=cow&branch=NAME; ATTACH
 * takes the same URIs.  From SQL (the stock shell with .load): PRAGMA
 * cow_snapshot('NAME'), cow_branch('NAME'), cow_restore('NAME') and
 * cow_delete('NAME'), on the schema they name (PRAGMA aux.cow_snapshot(..)),
 * and the table-valued function cow_snapshots (SELECT * FROM cow_snapshots,
 * or cow_snapshots('aux')), registered for every connection once the
 * extension is loaded or cowvfs_register() has run.
 *
 * Names: 1 to 255 bytes of UTF-8, no '/', unique in the container.
 *
 * Every function returns an SQLite result code and, if PZERRMSG is not
 * NULL, on failure sets *PZERRMSG to a message (free it with sqlite3_free;
 * NULL on success).  Errors:
 *   SQLITE_ERROR     a bad or duplicate name, no snapshot or branch of
 *                    that name, a restore target that is a snapshot, a
 *                    schema that is not a cow database
 *   SQLITE_BUSY      another connection is inside a transaction (restore),
 *                    or another connection's commit did not finish within
 *                    COWVFS_BUSY_MS (snapshot, branch); the container is in
 *                    use by another process (the _container_ functions)
 *   SQLITE_READONLY  the container is open read-only
 *   SQLITE_FULL, SQLITE_IOERR_*, SQLITE_NOMEM, SQLITE_CANTOPEN,
 *   SQLITE_NOTADB, SQLITE_CORRUPT  as for any container operation
 * On error nothing was made, deleted or restored.
 */

/* How long a snapshot or branch waits for another connection's commit in
 * progress (the database file being written) before SQLITE_BUSY. */
#define COWVFS_BUSY_MS 10000

#define COWVFS_SNAPSHOT 1 /* read-only */
#define COWVFS_BRANCH 2   /* writable */

/* One snapshot or branch, as listed (pointers valid during the callback). */
typedef struct cowvfs_subvol_info {
    const char *zName;
    int eKind;                   /* COWVFS_SNAPSHOT or COWVFS_BRANCH */
    long long iCreatedMs;        /* creation time, ms since 1970 (UTC) */
    const char *zSource;         /* what it was made from: NULL for the live
                                  * database, "(deleted)" if that is gone */
    long long nExclusive;        /* bytes only it references (tree blocks and
                                  * data extents): what deleting it frees */
    long long nShared;           /* bytes it shares with others */
} cowvfs_subvol_info;

/* Called once per snapshot and branch, oldest first; a non-zero return
 * stops the listing and is returned by the list function. */
typedef int (*cowvfs_list_fn)(void *pArg, const cowvfs_subvol_info *pInfo);

struct sqlite3;

/*
 * On an open connection: ZSCHEMA ("main", "temp" is refused, an attached
 * name, or NULL for "main") names a database opened with the cow VFS:
 * the live database, a snapshot or a branch.
 *
 *   cowvfs_snapshot  makes snapshot ZNAME of that database
 *   cowvfs_branch    makes branch ZNAME of it
 *   cowvfs_restore   resets it (the live database or a branch) to snapshot
 *                    or branch ZNAME, in constant time.  Every connection,
 *                    the caller included, sees the restored content at its
 *                    next transaction.  SQLITE_BUSY, changing nothing, while
 *                    any connection (the caller too) is inside a transaction
 *                    on that database.
 *   cowvfs_delete    deletes snapshot or branch ZNAME of the container,
 *                    freeing exactly the space only it held; SQLITE_BUSY if
 *                    it is open
 *   cowvfs_list      lists the container's snapshots and branches
 *
 * Thread-safe as any SQLite call on DB (the connection's mutex is taken).
 */
int cowvfs_snapshot(struct sqlite3 *db, const char *zSchema, const char *zName,
                    char **pzErrMsg);
int cowvfs_branch(struct sqlite3 *db, const char *zSchema, const char *zName, char **pzErrMsg);
int cowvfs_restore(struct sqlite3 *db, const char *zSchema, const char *zName,
                   char **pzErrMsg);
int cowvfs_delete(struct sqlite3 *db, const char *zSchema, const char *zName, char **pzErrMsg);
int cowvfs_list(struct sqlite3 *db, const char *zSchema, cowvfs_list_fn xCallback, void *pArg,
                char **pzErrMsg);

/*
 * The same by container path, for containers no other process has open
 * (offline use, e.g. cowctl).  ZSOURCE / ZTARGET name a snapshot or branch,
 * or are NULL for the live database.  A container open in this process
 * through the VFS is used as it is, with the same rules as above.
 */
int cowvfs_container_snapshot(const char *zPath, const char *zSource, const char *zName,
                              char **pzErrMsg);
int cowvfs_container_branch(const char *zPath, const char *zSource, const char *zName,
                            char **pzErrMsg);
int cowvfs_container_restore(const char *zPath, const char *zTarget, const char *zName,
                             char **pzErrMsg);
int cowvfs_container_delete(const char *zPath, const char *zName, char **pzErrMsg);
int cowvfs_container_list(const char *zPath, cowvfs_list_fn xCallback, void *pArg,
                          char **pzErrMsg);

#ifdef __cplusplus
}
#endif

#endif /* COWVFS_H */
