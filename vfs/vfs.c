/*
 * vfs.c - the "cow" SQLite VFS: registration, the sqlite3_vfs methods, the
 * registry of open containers, name mapping and error mapping.
 *
 * NAMES.  The path SQLite gives for a main database (after xFullPathname,
 * delegated to the default VFS) is the container file.  The database and
 * the files SQLite derives from its name live inside that container, as
 * store files named "db" plus the suffix SQLite appended to the path:
 *
 *     /dir/app.db                  the container; store file "db"
 *     /dir/app.db-journal          store file "db-journal"
 *     /dir/app.db-wal              store file "db-wal"
 *
 * xOpen maps by the open flags (SQLITE_OPEN_MAIN_DB, _MAIN_JOURNAL, _WAL);
 * xDelete and xAccess, which get only a name, parse the suffix.  Nothing
 * else is kept beside the container (a new one is formatted in a temporary
 * "-cownew" file renamed onto it; see bdev.h), except, during a
 * multi-database commit, a super-journal (below) and the journal mirror
 * "/dir/app.db-journal" that other VFSes read (vfs_mirror.c; the cow VFS
 * answers for that name from the container): there is no -shm file
 * either (the WAL-index is a POSIX shared-memory object, vfs_shm.c, and the
 * locks are on bytes of the container, vfs_lock.c).  A journal or WAL name
 * whose prefix is not a container (an ordinary file, or nothing) belongs
 * to the default VFS, and so do temporary files (no name, or
 * SQLITE_OPEN_TEMP_DB, _TEMP_JOURNAL, _TRANSIENT_DB, _SUBJOURNAL): the
 * default VFS opens those straight into the sqlite3_file SQLite gave us, so
 * its own io methods serve them (szOsFile is the larger of the two VFSes').
 *
 * SUPER-JOURNALS.  A transaction that writes several attached databases
 * makes a super-journal "/dir/app.db-mj01ABCD9EF" through the main
 * database's VFS, and each child database, after a crash, asks its own VFS
 * whether that name exists (pager.c pager_playback): its hot journal is
 * rolled back only if it does.  A child on another VFS (unix) can see only
 * a real file, so the super-journal is one, made by the default VFS beside
 * the container, as SQLite makes it beside any database; a child in a
 * container finds it the same way (xAccess asks the default VFS first).
 * It exists only during such a commit and, after a crash in one, until
 * recovery has rolled every child back.  A super-journal inside a container
 * (store file "db-mj01ABCD9EF", made by versions before this rule) is still
 * found, read and deleted, never created, except for a device container
 * (vfs_dev.h, RADOS): nothing is "beside" an object, and a child on
 * another client must find it, so its super-journals are store files of
 * the main database's container (cowSuperBeside), and it has no journal
 * mirror (vfs_mirror.c).
 *
 * SNAPSHOTS AND BRANCHES.  The URI parameter snapshot=NAME or branch=NAME
 * of a main database names a database of the container other than the live
 * one (vfs_snap.c makes them).  SQLite hands the journal's and WAL's names
 * to xOpen, xAccess and xDelete from the same allocation as the main
 * database's, URI parameters included (names SQLite makes otherwise, such as
 * super-journals, have none), so each of them finds its database with
 * sqlite3_uri_parameter(); a caller of these methods other than SQLite must
 * pass names of that layout (sqlite3_create_filename()).  A snapshot opens
 * read-only whatever the flags say; branch= on a snapshot is refused.
 *
 * THE REGISTRY.  A container is opened once per process (cow_store_open
 * takes an exclusive flock, which a second open in the same process would
 * also conflict with) and shared through a cowContainer, found by the
 * container path and, failing that, by st_dev/st_ino so that two spellings
 * of one file share one store.  Each database of it that is open (the live
 * one, a snapshot, a branch) is a cowInode with its own SQLite lock states
 * and WAL-index, shared by every connection to that database.  Each cowFile
 * (main database, journal, WAL, super-journal) holds a reference to its
 * cowInode, each cowInode one to its cowContainer; the last release closes
 * the store, which commits.
 *
 * LOCK ORDER (outermost first; also in docs/DESIGN.md and store/store_int.h):
 *
 *     gRegistry.mutex  ->  cowInode.mutex  ->  the store's internal lock
 *
 *   gRegistry.mutex   the registry: the list of cowContainers, their
 *                     cowInodes, nRef and bUnlinkOnClose.  Held across
 *                     cow_store_open and cow_store_close, so that a
 *                     container is never open twice (a second flock would
 *                     fail with COW_EBUSY).
 *   cowInode.mutex    one database's SQLite lock states (nShared, pOwner,
 *                     eLock, every cowFile.eFileLock, its list of main
 *                     database files) and its WAL-index (cowShmNode, cowShm
 *                     masks).  Held for short in-memory work, around
 *                     cow_exists+cow_file_open in an exclusive open, and
 *                     around the store call of a snapshot or restore (which
 *                     must see no lock change; vfs_snap.c).
 *   cowContainer.mutex  the container's settings and its journal mirror
 *                     (vfs_mirror.c; held across the mirror's default-VFS
 *                     calls and store reads, so only the store lock is
 *                     taken inside it).
 *   store lock        taken inside every store call.
 *
 *   The process-level locks (OFD locks on the container's lock bytes,
 *   vfs_lock.c) are set under cowInode.mutex but never waited for
 *   (F_OFD_SETLK): a conflict is SQLITE_BUSY, so they are not in this order.
 *
 *   gRegisterMutex    a leaf, held only by cowvfs_register() around
 *                     sqlite3_vfs_register().
 *
 * No VFS lock is held while SQLite code runs, except sqlite3_log() and the
 * sqlite3_malloc family.
 */
#include "sqlite_api.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h> /* memfd_create */
#include <sys/stat.h>
#include <unistd.h>

#include "cowvfs.h"
#include "lockspace.h"
#include "vfs_dev.h"
#include "vfs_int.h"

/* The file types xOpen can be asked for (flags & COWVFS_TYPE_MASK). */
#define COWVFS_TYPE_MASK                                                        \
    (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TRANSIENT_DB |     \
     SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_TEMP_JOURNAL |                      \
     SQLITE_OPEN_SUBJOURNAL | SQLITE_OPEN_SUPER_JOURNAL | SQLITE_OPEN_WAL)

/* The store file of the main database; others are this plus a suffix. */
#define COWVFS_DB_NAME "db"


/* The registry of open containers. */
static struct {
    cowvfsMutex mutex;     /* the registry mutex (outermost lock) */
    cowContainer *pFirst;  /* open containers; protected by mutex */
} gRegistry = { COWVFS_MUTEX_INITIALIZER, 0 };

/* Serialises cowvfs_register(); a leaf lock. */
static pthread_mutex_t gRegisterMutex = PTHREAD_MUTEX_INITIALIZER;
/* The VFS that was the default at registration: temporary files, foreign
 * names and the OS services go to it.  Written once, under gRegisterMutex,
 * before cowVfs is published with sqlite3_vfs_register(); read-only after. */
static sqlite3_vfs *gDefault;
/* cowVfs has been registered; protected by gRegisterMutex. */
static int gRegistered;

/* The device VFS (vfs_dev.h): gDevOpen, gDevVfs and gDevIo are written once,
 * under gRegisterMutex, before gDevOn is set (release) and the VFS
 * published; read after an acquire load of gDevOn. */
static cowvfsDevOpener gDevOpen;
static sqlite3_vfs gDevVfs;
static sqlite3_io_methods gDevIo;
static int gDevOn;
/* The name (with URI parameters) of the device VFS call in progress on
 * this thread, for the opener (vfs_dev.h), or NULL. */
static __thread const char *tDevUri;

/* 1 if ZPATH names a device VFS's container (vfs_dev.h). */
static int cowIsDevPath(const char *zPath)
{
    return zPath[0] != '/' && __atomic_load_n(&gDevOn, __ATOMIC_ACQUIRE);
}

/* cow_store_open(), or the device VFS's opener for its containers. */
static int cowStoreOpen(const char *zPath, int flags, cow_store **ppStore)
{
    if (cowIsDevPath(zPath))
        return gDevOpen(zPath, tDevUri, flags, ppStore);
    return cow_store_open(zPath, flags, ppStore);
}

/* A device container's lock descriptor: a private memory file (mode 0600,
 * so the WAL-index named after it is this user's), its identity in *PST. */
static int cowDevLockOpen(const char *zPath, struct stat *pSt, int *pFd)
{
    int fd = memfd_create("cowvfs-dev-locks", MFD_CLOEXEC);
    *pFd = -1;
    if (fd < 0 || fchmod(fd, 0600) != 0 || fstat(fd, pSt) != 0) {
        sqlite3_log(SQLITE_CANTOPEN, "cow: a lock file for %s: %s", zPath, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SQLITE_CANTOPEN;
    }
    *pFd = fd;
    return SQLITE_OK;
}

/* ---------------------------------------------------------------------------
 * The debug mutex
 */

/* Each thread's identity for cowvfsMutex.owner: the address of a
 * thread-local (one definition, in this file, so that it is the same in every
 * caller). */
static _Thread_local char tlsMutexId;

void cowvfsMutexInit(cowvfsMutex *mu)
{
    pthread_mutex_init(&mu->m, 0);
    mu->owner = 0;
}

void cowvfsMutexDestroy(cowvfsMutex *mu)
{
    pthread_mutex_destroy(&mu->m);
}

void cowvfsMutexEnter(cowvfsMutex *mu)
{
    pthread_mutex_lock(&mu->m);
#ifdef COW_DEBUG
    __atomic_store_n(&mu->owner, (const void *)&tlsMutexId, __ATOMIC_RELAXED);
#endif
}

void cowvfsMutexLeave(cowvfsMutex *mu)
{
#ifdef COW_DEBUG
    __atomic_store_n(&mu->owner, (const void *)0, __ATOMIC_RELAXED);
#endif
    pthread_mutex_unlock(&mu->m);
}

int cowvfsMutexHeld(cowvfsMutex *mu)
{
#ifdef COW_DEBUG
    return __atomic_load_n(&mu->owner, __ATOMIC_RELAXED) == (const void *)&tlsMutexId;
#else
    (void)mu;
    (void)tlsMutexId;
    return 1;
#endif
}

/* ---------------------------------------------------------------------------
 * Errors
 */

/*
 * Maps a store error COWRC (COW_OK or COW_E*) to the SQLite extended result
 * code for an operation of kind EOP.  The one place where store errors
 * become SQLite errors:
 *
 *   COW_EIO_READ      SQLITE_IOERR_READ
 *   COW_EIO_WRITE     SQLITE_IOERR_WRITE
 *   COW_EIO_FLUSH     SQLITE_IOERR_FSYNC
 *   COW_EIO_TRUNCATE  SQLITE_IOERR_TRUNCATE
 *   COW_EIO_STAT      SQLITE_IOERR_FSTAT
 *   COW_ECSUM         SQLITE_IOERR_DATA
 *   COW_ECORRUPT      SQLITE_CORRUPT at open, else SQLITE_IOERR_CORRUPTFS
 *   COW_ENOTCONTAINER SQLITE_NOTADB
 *   COW_ENOSPC        SQLITE_FULL
 *   COW_ENOMEM        SQLITE_NOMEM at open, else SQLITE_IOERR_NOMEM
 *   COW_EROFS         SQLITE_READONLY
 *   COW_EBUSY         SQLITE_BUSY
 *   COW_EIO_LOCK      SQLITE_CANTOPEN at open, else SQLITE_IOERR_LOCK
 *   COW_EFAILED       SQLITE_IOERR
 *   COW_ENOENT        SQLITE_CANTOPEN at open, SQLITE_IOERR_DELETE_NOENT in
 *                     xDelete, else SQLITE_IOERR
 *   others            SQLITE_CANTOPEN at open, else SQLITE_IOERR
 *
 * and in xDelete every failure but COW_ENOENT and COW_ENOMEM is
 * SQLITE_IOERR_DELETE, in xAccess every I/O failure SQLITE_IOERR_ACCESS.
 */
int cowvfsMapError(int cowrc, enum cowvfsOp eOp)
{
    int rc;
    int bOpen = (eOp == COWVFS_OP_OPEN);

    switch (cowrc) {
    case COW_OK: rc = SQLITE_OK; break;
    case COW_EIO_READ: rc = SQLITE_IOERR_READ; break;
    case COW_EIO_WRITE: rc = SQLITE_IOERR_WRITE; break;
    case COW_EIO_FLUSH: rc = SQLITE_IOERR_FSYNC; break;
    case COW_EIO_TRUNCATE: rc = SQLITE_IOERR_TRUNCATE; break;
    case COW_EIO_STAT: rc = SQLITE_IOERR_FSTAT; break;
    case COW_ECSUM: rc = SQLITE_IOERR_DATA; break;
    case COW_ECORRUPT: rc = bOpen ? SQLITE_CORRUPT : SQLITE_IOERR_CORRUPTFS; break;
    case COW_ENOTCONTAINER: rc = SQLITE_NOTADB; break;
    case COW_ENOSPC: rc = SQLITE_FULL; break;
    case COW_ENOMEM: rc = bOpen ? SQLITE_NOMEM : SQLITE_IOERR_NOMEM; break;
    case COW_EROFS: rc = SQLITE_READONLY; break;
    case COW_EBUSY: rc = SQLITE_BUSY; break;
    case COW_EIO_LOCK: rc = bOpen ? SQLITE_CANTOPEN : SQLITE_IOERR_LOCK; break;
    case COW_EFAILED: rc = SQLITE_IOERR; break;
    case COW_ENOENT:
        rc = bOpen ? SQLITE_CANTOPEN
                   : eOp == COWVFS_OP_DELETE ? SQLITE_IOERR_DELETE_NOENT : SQLITE_IOERR;
        break;
    default: rc = bOpen ? SQLITE_CANTOPEN : SQLITE_IOERR; break;
    }
    if (rc != SQLITE_OK && eOp == COWVFS_OP_DELETE && rc != SQLITE_IOERR_DELETE_NOENT &&
        rc != SQLITE_IOERR_NOMEM)
        rc = SQLITE_IOERR_DELETE;
    if (eOp == COWVFS_OP_ACCESS && (rc & 0xff) == SQLITE_IOERR && rc != SQLITE_IOERR_NOMEM)
        rc = SQLITE_IOERR_ACCESS;
    return rc;
}

/*
 * Maps COWRC with cowvfsMapError() and logs the failure with sqlite3_log():
 * "cow: <ZOP> <ZFILE> at offset <IOFF>: <reason>", where the reason is ZWHY
 * if not NULL, else the store's cow_store_last_error() (PSTORE may be NULL
 * after a failed cow_store_open; see docs/DESIGN.md, "What the VFS needs
 * from the store").  Returns the SQLite code.
 */
int cowvfsError(cow_store *pStore, int cowrc, enum cowvfsOp eOp, const char *zOp,
                const char *zFile, sqlite3_int64 iOff)
{
    int rc = cowvfsMapError(cowrc, eOp);
    const char *zWhy = cow_store_last_error(pStore);

    if (zWhy == 0 || zWhy[0] == 0)
        zWhy = cow_strerror(cowrc);
    sqlite3_log(rc, "cow: %s %s at offset %lld: %s", zOp, zFile ? zFile : "?",
                (long long)iOff, zWhy);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Names
 */

static int cowIsHex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/*
 * If ZNAME ends in the suffix SQLite appends for a file of type ETYPE
 * (SQLITE_OPEN_MAIN_JOURNAL "-journal", SQLITE_OPEN_WAL "-wal",
 * SQLITE_OPEN_SUPER_JOURNAL "-mj" and nine hex digits, see vdbeaux.c), or
 * for any of them when ETYPE is 0, returns the length of the prefix (the
 * container path); else -1.
 */
static int cowSuffixOffset(const char *zName, int eType)
{
    size_t n = strlen(zName);
    int rc = -1;

    if ((eType == 0 || eType == SQLITE_OPEN_MAIN_JOURNAL) && n > 8 &&
        memcmp(zName + n - 8, "-journal", 8) == 0) {
        rc = (int)(n - 8);
        goto out;
    }
    if ((eType == 0 || eType == SQLITE_OPEN_WAL) && n > 4 &&
        memcmp(zName + n - 4, "-wal", 4) == 0) {
        rc = (int)(n - 4);
        goto out;
    }
    if ((eType == 0 || eType == SQLITE_OPEN_SUPER_JOURNAL) && n > 12 &&
        memcmp(zName + n - 12, "-mj", 3) == 0) {
        size_t i;
        for (i = n - 9; i < n; i++)
            if (!cowIsHex(zName[i]))
                goto out;
        rc = (int)(n - 12);
    }
out:
    return rc;
}

/* 1 if ZNAME is a super-journal's name ("-mj" and nine hex digits). */
static int cowIsSuperJournal(const char *zName)
{
    return cowSuffixOffset(zName, SQLITE_OPEN_SUPER_JOURNAL) > 0;
}

/* 1 if super-journal ZNAME belongs beside its container, a file of the
 * default VFS (SUPER-JOURNALS at the top): a file container's (a full path
 * of the default VFS, starting with '/').  A device container's (vfs_dev.h:
 * a RADOS object name) has no "beside" on this machine, and another
 * client must find it: it is a store file of the main database's
 * container, as every child of such a transaction is a container too. */
static int cowSuperBeside(const char *zName)
{
    return !cowIsDevPath(zName);
}

/* 1 if the default VFS has file ZNAME (an error reads as no). */
static int cowDefaultHas(const char *zName)
{
    int res = 0;

    if (gDefault->xAccess(gDefault, zName, SQLITE_ACCESS_EXISTS, &res) != SQLITE_OK)
        res = 0;
    return res;
}

/*
 * The snapshot or branch a name SQLite gave (a main database, or a
 * journal or WAL derived from it, which carry its URI parameters) asks for
 * with the URI parameter snapshot=NAME or branch=NAME, or NULL for the live
 * database.  *PBSNAPSHOT (if not NULL) is set to 1 for snapshot=.
 */
static const char *cowUriSubvol(const char *zName, int *pbSnapshot)
{
    const char *z = sqlite3_uri_parameter(zName, "snapshot");

    if (pbSnapshot)
        *pbSnapshot = z != 0;
    if (z == 0)
        z = sqlite3_uri_parameter(zName, "branch");
    return z;
}

/* ---------------------------------------------------------------------------
 * The registry
 */

/*
 * Returns the open container named ZPATH or, failing that, the one whose
 * st_dev/st_ino are ZPATH's, or NULL.  *PBSTAT is set to 1 if ZPATH was
 * stat()ed successfully into *PST (only done when the name alone did not
 * match), else 0.  Caller holds the registry mutex.
 */
static cowContainer *cowRegistryFind(const char *zPath, struct stat *pSt, int *pbStat)
{
    cowContainer *p;

    assert(cowvfsMutexHeld(&gRegistry.mutex));
    *pbStat = 0;
    for (p = gRegistry.pFirst; p; p = p->pNext)
        if (strcmp(p->zPath, zPath) == 0)
            goto out;
    if (cowIsDevPath(zPath) || stat(zPath, pSt) != 0)
        goto out;
    *pbStat = 1;
    for (p = gRegistry.pFirst; p; p = p->pNext)
        if (p->dev == pSt->st_dev && p->ino == pSt->st_ino)
            goto out;
out:
    return p;
}

/*
 * Returns in *PPCONT the container ZPATH with one more reference (nRef),
 * opening it with cow_store_open() if it is not open in this process (see
 * cowvfsInodeAcquire for ACQ).  Caller holds the registry mutex.  Errors
 * as cowvfsInodeAcquire.
 */
static int cowContainerAcquire(const char *zPath, int acq, cowContainer **ppCont)
{
    int rc = SQLITE_OK;
    int crc;
    struct stat st;
    int bStat;
    size_t nPath = strlen(zPath);
    cowContainer *p;
    cow_store *pStore = 0;
    int fdLock = -1;

    assert(cowvfsMutexHeld(&gRegistry.mutex));
    *ppCont = 0;
    p = cowRegistryFind(zPath, &st, &bStat);
    if (p) {
        p->nRef++;
        goto out;
    }
    if ((acq & ACQ_PROBE) && !bStat && !cowIsDevPath(zPath)) {
        rc = SQLITE_NOTFOUND;
        goto out;
    }
    crc = cowStoreOpen(zPath,
                       ((acq & ACQ_CREATE) ? COW_OPEN_CREATE : 0) |
                           ((acq & ACQ_READONLY) ? COW_OPEN_READONLY : 0),
                       &pStore);
    if (crc != COW_OK) {
        pStore = 0;
        if ((acq & ACQ_PROBE) && (crc == COW_ENOTCONTAINER || crc == COW_ENOENT))
            rc = SQLITE_NOTFOUND;
        else
            rc = cowvfsError(0, crc, COWVFS_OP_OPEN, "open container", zPath, 0);
        goto out;
    }
    if (cowIsDevPath(zPath)) {
        rc = cowDevLockOpen(zPath, &st, &fdLock);
        if (rc != SQLITE_OK)
            goto out;
    } else if (stat(zPath, &st) != 0) {
        rc = SQLITE_CANTOPEN;
        sqlite3_log(rc, "cow: stat %s after opening it: %s", zPath, strerror(errno));
        goto out;
    }
    if (fdLock < 0)
        rc = cowvfsLockOpen(zPath, &fdLock);
    if (rc != SQLITE_OK)
        goto out;
    p = sqlite3_malloc64(sizeof(*p) + nPath + 1);
    if (p == 0) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memset(p, 0, sizeof(*p));
    p->zPath = (char *)&p[1];
    memcpy(p->zPath, zPath, nPath + 1);
    p->dev = st.st_dev;
    p->ino = st.st_ino;
    p->pStore = pStore;
    pStore = 0;
    p->bReadonly = (acq & ACQ_READONLY) != 0;
    p->fdLock = fdLock;
    fdLock = -1;
    cowvfsMutexInit(&p->mutex);
    p->nRef = 1;
    p->commitIntervalMs = COW_COMMIT_INTERVAL_MS;
    p->dirtyLimit = COW_DIRTY_LIMIT;
    if (!p->bReadonly && !cowIsDevPath(zPath)) {
        /* a journal mirror beside it: adopted or removed (vfs_mirror.c) */
        char *zJournal = sqlite3_mprintf("%s-journal", zPath);
        if (zJournal == 0) {
            rc = SQLITE_NOMEM;
            pStore = p->pStore;
            fdLock = p->fdLock;
            cowvfsMutexDestroy(&p->mutex);
            sqlite3_free(p);
            p = 0;
            goto out;
        }
        cowvfsMirrorOpen(p, zJournal);
        sqlite3_free(zJournal);
    }
    p->pNext = gRegistry.pFirst;
    gRegistry.pFirst = p;
out:
    cowvfsLockClose(fdLock);
    if (pStore)
        cow_store_close(pStore);
    if (rc == SQLITE_OK)
        *ppCont = p;
    return rc;
}

/*
 * Drops one reference to PCONT; the last one unlinks it from the registry,
 * closes the store (which commits; a failure is logged, the container then
 * holds the previous commit) and, if bUnlinkOnClose, removes the container
 * file.  Caller holds the registry mutex.
 */
static void cowContainerRelease(cowContainer *pCont)
{
    cowContainer **pp;
    int crc;

    assert(cowvfsMutexHeld(&gRegistry.mutex));
    if (--pCont->nRef > 0)
        return;
    for (pp = &gRegistry.pFirst; *pp; pp = &(*pp)->pNext) {
        if (*pp == pCont) {
            *pp = pCont->pNext;
            break;
        }
    }
    /* Every cowInode is gone, so no lock is held any more; closing drops
     * this process's locks in any case (vfs_lock.c). */
    cowvfsLockClose(pCont->fdLock);
    crc = cow_store_close(pCont->pStore);
    if (crc != COW_OK)
        cowvfsError(0, crc, COWVFS_OP_IO, "close container", pCont->zPath, 0);
    if (pCont->bUnlinkOnClose && cowIsDevPath(pCont->zPath))
        sqlite3_log(SQLITE_WARNING, "cow: %s is kept (delete on close: not for a device's "
                                    "container)", pCont->zPath);
    else if (pCont->bUnlinkOnClose && unlink(pCont->zPath) != 0)
        sqlite3_log(SQLITE_IOERR_DELETE, "cow: unlink %s (delete on close): %s", pCont->zPath,
                    strerror(errno));
    cowvfsMirrorFree(pCont);
    cowvfsMutexDestroy(&pCont->mutex);
    sqlite3_free(pCont);
}

/*
 * Returns in *PPINODE a reference to the database ZSUBVOL ("" or NULL: the
 * live one; else a snapshot or branch) of container ZPATH, opening the
 * container with cow_store_open() if it is not open in this process (with
 * COW_OPEN_CREATE if ACQ has ACQ_CREATE, COW_OPEN_READONLY if
 * ACQ_READONLY).  A container already open is shared as it is, even if it
 * was opened read-only and the caller wants to write (the caller checks
 * cowInode.bReadonly, which a snapshot also sets).  An unfinished branch
 * (vfs_snap.c) is found only with ACQ_UNFINISHED.  The caller drops the
 * reference with cowvfsInodeRelease().
 *
 * Takes the registry mutex.  Returns SQLITE_OK, SQLITE_NOTFOUND (ACQ_PROBE
 * only: ZPATH does not exist or is not a container; nothing logged),
 * SQLITE_CANTOPEN (logged: no snapshot or branch ZSUBVOL), or the mapped
 * and logged error of cow_store_open (SQLITE_NOTADB, SQLITE_CORRUPT,
 * SQLITE_BUSY, SQLITE_CANTOPEN, SQLITE_NOMEM, SQLITE_IOERR_*), or
 * SQLITE_NOMEM.
 */
int cowvfsInodeAcquire(const char *zPath, const char *zSubvol, int acq, cowInode **ppInode)
{
    int rc;
    int crc;
    int eKind = 0;
    uint64_t iId = 0;
    size_t nSub;
    cowContainer *pCont = 0;
    cowInode *p = 0;

    *ppInode = 0;
    if (zSubvol == 0)
        zSubvol = "";
    nSub = strlen(zSubvol);
    cowvfsMutexEnter(&gRegistry.mutex);
    rc = cowContainerAcquire(zPath, acq, &pCont);
    if (rc != SQLITE_OK)
        goto out;
    for (p = pCont->pFirst; p; p = p->pNext)
        if (strcmp(p->zSubvol, zSubvol) == 0)
            break;
    if (p) {
        p->nRef++;
        cowContainerRelease(pCont); /* p holds one already */
        pCont = 0;
        goto out;
    }
    if (nSub) {
        crc = cow_subvol_kind(pCont->pStore, zSubvol, &eKind);
        /* made by another process since this one's last load: look again
         * after a refresh (docs/DESIGN.md, "Several processes") */
        if (crc == COW_ENOENT && cow_store_refresh(pCont->pStore) == COW_OK)
            crc = cow_subvol_kind(pCont->pStore, zSubvol, &eKind);
        if (crc == COW_OK && eKind == COW_SUBVOL_INCOMPLETE && !(acq & ACQ_UNFINISHED))
            crc = COW_ENOENT;
        if (crc == COW_OK)
            crc = cow_subvol_id(pCont->pStore, zSubvol, &iId);
        if (crc != COW_OK) {
            rc = SQLITE_CANTOPEN;
            sqlite3_log(rc, "cow: open %s: %s", zPath,
                        crc == COW_ENOENT ? "no snapshot or branch of that name"
                                          : cow_store_last_error(pCont->pStore));
            goto out;
        }
    } else {
        cow_subvol_id(pCont->pStore, "", &iId); /* the live one: 256, cannot fail */
    }
    p = sqlite3_malloc64(sizeof(*p) + nSub + 1);
    if (p == 0) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memset(p, 0, sizeof(*p));
    p->zSubvol = (char *)&p[1];
    memcpy(p->zSubvol, zSubvol, nSub + 1);
    p->pCont = pCont;
    p->pStore = pCont->pStore;
    p->eKind = eKind;
    p->bReadonly = pCont->bReadonly || eKind == COW_SUBVOL_SNAPSHOT;
    p->iSubvolId = iId;
    p->iLockBase = COW_LOCK_DB(iId);
    /* open in this process: another one cannot delete it (a read lock,
     * shared with every other process that has it open; advisory: a
     * failure only weakens that refusal) */
    (void)cowvfsLockSet(pCont->fdLock, p->iLockBase + COW_LOCK_OPEN, 1, F_RDLCK,
                        SQLITE_IOERR_RDLOCK);
    cowvfsMutexInit(&p->mutex);
    p->nRef = 1;
    p->eLock = NO_LOCK;
    p->shm.fd = -1;
    p->pNext = pCont->pFirst;
    pCont->pFirst = p;
    pCont = 0;
out:
    if (pCont)
        cowContainerRelease(pCont);
    cowvfsMutexLeave(&gRegistry.mutex);
    if (rc == SQLITE_OK)
        *ppInode = p;
    return rc;
}

/*
 * Drops one reference to PINODE; with BUNLINK (a main database opened with
 * SQLITE_OPEN_DELETEONCLOSE) the container file is to be removed once the
 * container's last reference is gone.  The last release of PINODE unlinks
 * it from its container and frees it with any WAL-index left; the last one
 * of the container closes the store (see cowContainerRelease).  Takes the
 * registry mutex; the caller must not hold PINODE->mutex.
 */
void cowvfsInodeRelease(cowInode *pInode, int bUnlink)
{
    cowInode **pp;
    cowContainer *pCont = pInode->pCont;

    cowvfsMutexEnter(&gRegistry.mutex);
    if (bUnlink)
        pCont->bUnlinkOnClose = 1;
    if (--pInode->nRef > 0)
        goto out;
    for (pp = &pCont->pFirst; *pp; pp = &(*pp)->pNext) {
        if (*pp == pInode) {
            *pp = pInode->pNext;
            break;
        }
    }
    cowvfsShmFree(pInode);
    (void)cowvfsLockSet(pCont->fdLock, pInode->iLockBase + COW_LOCK_OPEN, 1, F_UNLCK,
                        SQLITE_IOERR_UNLOCK);
    cowvfsMutexDestroy(&pInode->mutex);
    sqlite3_free(pInode);
    cowContainerRelease(pCont);
out:
    cowvfsMutexLeave(&gRegistry.mutex);
}

/*
 * Splits ZNAME, whose first NPREFIX bytes are a container path, into that
 * path (*pzContainer) and the name of the file inside the container
 * (*pzStoreName: "db" plus the suffix).  Both are sqlite3_malloc()ed and
 * owned by the caller, also on failure.  Returns SQLITE_OK or SQLITE_NOMEM.
 */
static int cowSplitName(const char *zName, int nPrefix, char **pzContainer, char **pzStoreName)
{
    *pzContainer = sqlite3_mprintf("%.*s", nPrefix, zName);
    *pzStoreName = sqlite3_mprintf(COWVFS_DB_NAME "%s", zName + nPrefix);
    return (*pzContainer && *pzStoreName) ? SQLITE_OK : SQLITE_NOMEM;
}

/*
 * Runs XOP on the store of container ZPATH: the open one if there is one
 * (with a reference held, the registry mutex released), else a private
 * store opened for the call and closed after it (under the registry mutex,
 * never published), read-only unless BWRITE.  XOP gets the store, whether
 * it cannot be written, and ARG.
 *
 * Returns XOP's result; SQLITE_NOTFOUND (nothing logged) if ZPATH does not
 * exist or is not a container, so that the caller asks the default VFS; or
 * the mapped and logged error of opening or closing the container.
 */
static int cowWithStore(const char *zPath, int bWrite,
                        int (*xOp)(cow_store *, int, void *), void *pArg)
{
    int rc = SQLITE_OK;
    int crc;
    struct stat st;
    int bStat;
    int bLocked;
    cowContainer *p;
    cow_store *pStore = 0;

    cowvfsMutexEnter(&gRegistry.mutex);
    bLocked = 1;
    p = cowRegistryFind(zPath, &st, &bStat);
    if (p) {
        p->nRef++;
        cowvfsMutexLeave(&gRegistry.mutex);
        bLocked = 0;
        rc = xOp(p->pStore, p->bReadonly, pArg);
        cowvfsMutexEnter(&gRegistry.mutex);
        cowContainerRelease(p);
        cowvfsMutexLeave(&gRegistry.mutex);
        goto out;
    }
    if (!bStat && !cowIsDevPath(zPath)) {
        rc = SQLITE_NOTFOUND;
        goto out;
    }
    crc = cowStoreOpen(zPath, bWrite ? 0 : COW_OPEN_READONLY, &pStore);
    if (crc != COW_OK) {
        pStore = 0;
        if (crc == COW_ENOTCONTAINER || crc == COW_ENOENT)
            rc = SQLITE_NOTFOUND;
        else
            rc = cowvfsError(0, crc, COWVFS_OP_OPEN, "open container", zPath, 0);
        goto out;
    }
    rc = xOp(pStore, bWrite ? 0 : access(zPath, R_OK | W_OK) != 0, pArg);
    crc = cow_store_close(pStore);
    pStore = 0;
    if (crc != COW_OK) {
        int rc2 = cowvfsError(0, crc, COWVFS_OP_IO, "close container", zPath, 0);
        if (rc == SQLITE_OK)
            rc = rc2;
    }
out:
    if (bLocked)
        cowvfsMutexLeave(&gRegistry.mutex);
    return rc;
}

/* ---------------------------------------------------------------------------
 * sqlite3_vfs methods
 */

/*
 * Applies the URI parameters of main database ZNAME to P's container:
 *
 *   commit_interval=MS  cow_store_set_commit_interval(MS), as PRAGMA
 *                       cow_commit_interval=MS (the container's setting,
 *                       shared by all its connections; 0 turns background
 *                       commits off)
 *
 *   dirty_limit=N       cow_store_set_dirty_limit(N bytes), as PRAGMA
 *                       cow_dirty_limit=N (the container's setting)
 *
 *   reloc=0|1, reloc_slack=PCT, reloc_rate=MIBS
 *                       the background relocator's settings, as PRAGMA
 *                       cow_reloc, cow_reloc_slack and cow_reloc_rate
 *                       (vfs_reloc.c)
 *
 * (wal_nodatacow=0|1 is read when the WAL is opened, in cowOpen: 0 keeps
 * a new WAL copy on write, with data checksums.)
 *
 * A value that is not an integer in range is logged and ignored.
 */
static void cowApplyUriParams(cowFile *p, const char *zName)
{
    const char *zVal = sqlite3_uri_parameter(zName, "commit_interval");
    sqlite3_int64 v;

    if (zVal) {
        v = sqlite3_uri_int64(zName, "commit_interval", -1);
        if (v < 0 || (sqlite3_uint64)v > UINT_MAX)
            sqlite3_log(SQLITE_WARNING,
                        "cow: open %s: commit_interval=%s ignored (not 0..%u ms)", p->zPath,
                        zVal, UINT_MAX);
        else
            cowvfsSetCommitInterval(p->pInode, (unsigned)v);
    }
    zVal = sqlite3_uri_parameter(zName, "dirty_limit");
    if (zVal) {
        v = sqlite3_uri_int64(zName, "dirty_limit", -1);
        if (v < 4096 || (sqlite3_uint64)v >= (1ull << 62))
            sqlite3_log(SQLITE_WARNING,
                        "cow: open %s: dirty_limit=%s ignored (not 4096..2^62 bytes)", p->zPath,
                        zVal);
        else
            cowvfsSetDirtyLimit(p->pInode, (sqlite3_uint64)v);
    }
    cowvfsRelocUriParams(p, zName);
}

/*
 * Opens ZNAME.  Main databases, journals and WALs of containers become
 * cowFiles on store files (see NAMES at the top), and so does a
 * super-journal an earlier version left in a container; all other files,
 * new super-journals included (SUPER-JOURNALS), go to the default VFS,
 * which opens them into PFILE itself.
 *
 * A main database's container is opened with cow_store_open (created if
 * missing and SQLITE_OPEN_CREATE is given); a file that is not a container
 * fails with SQLITE_NOTADB or SQLITE_CORRUPT and is never written; a
 * container in use by another process fails with SQLITE_BUSY.  If the
 * container is already open read-only in this process, a read-write open is
 * downgraded to read-only and *POUTFLAGS says so, as unixOpen does for a
 * file it may not write.  Errors are logged.
 */
static int cowOpen(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *pFile, int flags,
                   int *pOutFlags)
{
    cowFile *p = (cowFile *)pFile;
    int rc = SQLITE_OK;
    int crc;
    int eType = flags & COWVFS_TYPE_MASK;
    int nPrefix;
    int acq = 0;
    int bReadonly;
    int bCreate;
    int bExists = 0;
    int bSnapshot = 0;
    const char *zSubvol = 0;
    struct stat st;
    char *zContainer = 0;
    char *zStoreName = 0;
    char *zPath = 0;
    cowInode *pInode = 0;
    cow_file *pCf = 0;

    (void)pVfs;
    memset(p, 0, sizeof(*p));
    if (zName == 0 ||
        (eType != SQLITE_OPEN_MAIN_DB && eType != SQLITE_OPEN_MAIN_JOURNAL &&
         eType != SQLITE_OPEN_WAL && eType != SQLITE_OPEN_SUPER_JOURNAL)) {
        rc = gDefault->xOpen(gDefault, zName, pFile, flags, pOutFlags);
        goto out;
    }
    /* A super-journal is a file of the default VFS (SUPER-JOURNALS at the
     * top); only one that an earlier version left in a container, which
     * SQLite opens to read, comes from the store. */
    if (eType == SQLITE_OPEN_SUPER_JOURNAL && cowIsSuperJournal(zName) &&
        cowSuperBeside(zName) && ((flags & SQLITE_OPEN_CREATE) || cowDefaultHas(zName))) {
        rc = gDefault->xOpen(gDefault, zName, pFile, flags, pOutFlags);
        goto out;
    }
    /* pager_delsuper() opens the child journals a super-journal lists with
     * SQLITE_OPEN_SUPER_JOURNAL (so that the VFS does not treat their names
     * as database-derived): any of our suffixes goes with that flag. */
    if (eType == SQLITE_OPEN_MAIN_DB)
        nPrefix = (int)strlen(zName);
    else
        nPrefix = cowSuffixOffset(zName, eType == SQLITE_OPEN_SUPER_JOURNAL ? 0 : eType);
    if (nPrefix <= 0) {
        rc = gDefault->xOpen(gDefault, zName, pFile, flags, pOutFlags);
        goto out;
    }
    rc = cowSplitName(zName, nPrefix, &zContainer, &zStoreName);
    zPath = sqlite3_mprintf("%s", zName);
    if (rc != SQLITE_OK || zPath == 0) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    if (eType == SQLITE_OPEN_MAIN_DB && (flags & SQLITE_OPEN_NOFOLLOW) &&
        lstat(zContainer, &st) == 0 && S_ISLNK(st.st_mode)) {
        rc = SQLITE_CANTOPEN_SYMLINK;
        sqlite3_log(rc, "cow: open %s: a symbolic link (SQLITE_OPEN_NOFOLLOW)", zContainer);
        goto out;
    }
    if (eType != SQLITE_OPEN_SUPER_JOURNAL) {
        zSubvol = cowUriSubvol(zName, &bSnapshot);
        if (bSnapshot && sqlite3_uri_parameter(zName, "branch")) {
            rc = SQLITE_CANTOPEN;
            sqlite3_log(rc, "cow: open %s: give snapshot= or branch=, not both", zContainer);
            goto out;
        }
        if (zSubvol && !cow_subvol_name_valid(zSubvol)) {
            rc = SQLITE_CANTOPEN;
            sqlite3_log(rc, "cow: open %s: \"%s\" is not a snapshot or branch name (1 to 255 "
                            "bytes of UTF-8, no '/')",
                        zContainer, zSubvol);
            goto out;
        }
        if (sqlite3_uri_boolean(zName, "cow_unfinished", 0))
            acq |= ACQ_UNFINISHED;
    }
    if (flags & SQLITE_OPEN_READONLY)
        acq |= ACQ_READONLY;
    if (eType == SQLITE_OPEN_MAIN_DB)
        acq |= (flags & SQLITE_OPEN_CREATE) && !zSubvol ? ACQ_CREATE : 0;
    else
        acq |= ACQ_PROBE;
    rc = cowvfsInodeAcquire(zContainer, zSubvol, acq, &pInode);
    if (rc == SQLITE_NOTFOUND) {
        /* A journal, WAL or super-journal of something that is not a
         * container: an ordinary file of the default VFS. */
        rc = gDefault->xOpen(gDefault, zName, pFile, flags, pOutFlags);
        goto out;
    }
    if (rc != SQLITE_OK)
        goto out;
    cowvfsMirrorCollect(pInode->pCont); /* after a stale mirror (vfs_mirror.c) */

    if (!bSnapshot && pInode->eKind == COW_SUBVOL_SNAPSHOT) {
        rc = SQLITE_CANTOPEN;
        sqlite3_log(rc, "cow: open %s: %s is a snapshot (read-only): open it with snapshot=",
                    zContainer, zSubvol);
        goto out;
    }
    bReadonly = (flags & SQLITE_OPEN_READONLY) != 0;
    if ((pInode->bReadonly || bSnapshot) && !bReadonly) {
        flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
        bReadonly = 1;
        if (!bSnapshot)
            sqlite3_log(SQLITE_READONLY,
                        "cow: open %s: the container is open read-only in this process; "
                        "opening %s read-only",
                        zContainer, zStoreName);
    }
    bCreate = (flags & SQLITE_OPEN_CREATE) != 0 && !bReadonly;

    /* Under the lock-state mutex so that an exclusive create is atomic with
     * respect to every other open of this process. */
    cowvfsMutexEnter(&pInode->mutex);
    crc = COW_OK;
    if (bCreate && (flags & SQLITE_OPEN_EXCLUSIVE))
        crc = cow_subvol_exists(pInode->pStore, pInode->zSubvol, zStoreName, &bExists);
    if (crc == COW_OK && !bExists)
        crc = cow_subvol_file_open(pInode->pStore, pInode->zSubvol, zStoreName, bCreate, &pCf);
    if (crc == COW_OK && !bExists && eType == SQLITE_OPEN_MAIN_DB) {
        p->pNextDb = pInode->pFiles;
        pInode->pFiles = p;
    }
    cowvfsMutexLeave(&pInode->mutex);
    if (crc == COW_OK && bExists) {
        rc = SQLITE_CANTOPEN;
        sqlite3_log(rc, "cow: open %s: %s exists (SQLITE_OPEN_EXCLUSIVE)", zName, zStoreName);
        goto out;
    }
    if (crc == COW_ENOENT && eType == SQLITE_OPEN_WAL && pInode->bReadonly) {
        /* A read-only store cannot create the WAL: a missing one reads as
         * empty, which is what it is. */
        pCf = 0;
    } else if (crc != COW_OK) {
        pCf = 0;
        rc = cowvfsError(pInode->pStore, crc, COWVFS_OP_OPEN, "open", zName, 0);
        goto out;
    }

    p->pInode = pInode;
    pInode = 0;
    p->pCf = pCf;
    pCf = 0;
    p->zName = zStoreName;
    zStoreName = 0;
    p->zPath = zPath;
    zPath = 0;
    p->eType = eType;
    p->eFileLock = NO_LOCK;
    if (bReadonly)
        p->ctrlFlags |= COWFILE_READONLY;
    if (flags & SQLITE_OPEN_DELETEONCLOSE)
        p->ctrlFlags |= COWFILE_DELETE;
    if (eType != SQLITE_OPEN_MAIN_DB || !(flags & SQLITE_OPEN_URI) ||
        sqlite3_uri_boolean(zName, "psow", 1))
        p->ctrlFlags |= COWFILE_PSOW;
    p->base.pMethods = &cowvfsIoMethods;
    if (eType == SQLITE_OPEN_WAL && p->pCf && !bReadonly &&
        (rc = cowvfsWalInPlace(p, sqlite3_uri_boolean(zName, "wal_nodatacow", 1))) != SQLITE_OK) {
        cowvfsIoMethods.xClose(pFile); /* a failed xOpen leaves pMethods NULL */
        goto out;
    }
    if (eType == SQLITE_OPEN_MAIN_DB && (flags & SQLITE_OPEN_URI))
        cowApplyUriParams(p, zName);
    if (pOutFlags)
        *pOutFlags = flags;
out:
    if (pCf)
        cow_file_close(pCf);
    if (pInode)
        cowvfsInodeRelease(pInode, 0);
    sqlite3_free(zContainer);
    sqlite3_free(zStoreName);
    sqlite3_free(zPath);
    return rc;
}

/* Arguments of cowDeleteOp() and cowAccessOp(). */
struct cowNameOp {
    const char *zName;      /* the name SQLite gave (for logs) */
    const char *zStoreName; /* the store file */
    const char *zSubvol;    /* its snapshot or branch, NULL for the live files */
    int iArg;               /* xDelete: syncDir; xAccess: flags */
    int res;                /* xAccess: the answer */
};

/* Removes a store file (xDelete); with syncDir, commits so that the removal
 * is durable, as unixDelete fsyncs the directory. */
static int cowDeleteOp(cow_store *pStore, int bReadonly, void *pArg)
{
    struct cowNameOp *a = pArg;
    int rc = SQLITE_OK;
    int crc;

    (void)bReadonly;
    crc = cow_subvol_unlink(pStore, a->zSubvol, a->zStoreName);
    if (crc == COW_ENOENT) {
        rc = SQLITE_IOERR_DELETE_NOENT; /* as unixDelete: not logged */
        goto out;
    }
    if (crc != COW_OK) {
        rc = cowvfsError(pStore, crc, COWVFS_OP_DELETE, "delete", a->zName, 0);
        goto out;
    }
    if (a->iArg) {
        crc = cow_store_commit(pStore);
        if (crc != COW_OK)
            rc = cowvfsError(pStore, crc, COWVFS_OP_IO, "commit after deleting", a->zName, 0);
    }
out:
    return rc;
}

/*
 * The live database's journal ZJOURNAL of container ZCONTAINER has just
 * been deleted from the store: its mirror beside the container goes too
 * (vfs_mirror.c).  A container not open in this process has no mirror
 * state: a file found at ZJOURNAL is removed (it names what the container
 * no longer holds).  Returns SQLITE_OK or the logged error of the removal.
 */
static int cowMirrorDrop(const char *zContainer, const char *zJournal)
{
    int rc = SQLITE_OK;
    struct stat st;
    int bStat;
    cowContainer *p;

    cowvfsMutexEnter(&gRegistry.mutex);
    p = cowRegistryFind(zContainer, &st, &bStat);
    if (p)
        p->nRef++;
    cowvfsMutexLeave(&gRegistry.mutex);
    if (p) {
        rc = cowvfsMirrorJournalDeleted(p);
        cowvfsMutexEnter(&gRegistry.mutex);
        cowContainerRelease(p);
        cowvfsMutexLeave(&gRegistry.mutex);
    } else if (cowDefaultHas(zJournal)) {
        rc = gDefault->xDelete(gDefault, zJournal, 1);
        if (rc == SQLITE_IOERR_DELETE_NOENT)
            rc = SQLITE_OK;
        if (rc != SQLITE_OK)
            sqlite3_log(rc, "cow: remove the journal mirror %s: failed", zJournal);
    }
    return rc;
}

/*
 * Deletes ZNAME: a journal or WAL of a container is removed from the store
 * (opening the container for the call if it is not open in this process);
 * so is a super-journal of a container unless the default VFS has it (see
 * SUPER-JOURNALS at the top); any other name goes to the default VFS.
 * Returns SQLITE_OK, SQLITE_IOERR_DELETE_NOENT if there is no such file,
 * SQLITE_IOERR_DELETE or another logged error.
 */
static int cowDelete(sqlite3_vfs *pVfs, const char *zName, int syncDir)
{
    int rc = SQLITE_OK;
    int nPrefix = cowSuffixOffset(zName, 0);
    char *zContainer = 0;
    char *zStoreName = 0;
    struct cowNameOp a;

    (void)pVfs;
    if (nPrefix <= 0 ||
        (cowIsSuperJournal(zName) && cowSuperBeside(zName) && cowDefaultHas(zName))) {
        rc = gDefault->xDelete(gDefault, zName, syncDir);
        goto out;
    }
    if (cowSplitName(zName, nPrefix, &zContainer, &zStoreName) != SQLITE_OK) {
        rc = SQLITE_IOERR_NOMEM;
        goto out;
    }
    memset(&a, 0, sizeof(a));
    a.zName = zName;
    a.zStoreName = zStoreName;
    a.zSubvol = cowUriSubvol(zName, 0);
    a.iArg = syncDir;
    rc = cowWithStore(zContainer, 1, cowDeleteOp, &a);
    if (rc == SQLITE_NOTFOUND) {
        rc = gDefault->xDelete(gDefault, zName, syncDir);
        goto out;
    }
    if ((rc == SQLITE_OK || rc == SQLITE_IOERR_DELETE_NOENT) && a.zSubvol == 0 &&
        cowSuffixOffset(zName, SQLITE_OPEN_MAIN_JOURNAL) > 0) {
        int rc2 = cowMirrorDrop(zContainer, zName);
        if (rc2 != SQLITE_OK)
            rc = rc2;
    }
out:
    sqlite3_free(zContainer);
    sqlite3_free(zStoreName);
    return rc;
}

/* Answers xAccess from the store. */
static int cowAccessOp(cow_store *pStore, int bReadonly, void *pArg)
{
    struct cowNameOp *a = pArg;
    int rc = SQLITE_OK;
    int crc;
    int bExists = 0;

    crc = cow_subvol_exists(pStore, a->zSubvol, a->zStoreName, &bExists);
    if (crc == COW_ENOENT) /* no such snapshot or branch */
        crc = COW_OK;
    if (crc != COW_OK) {
        rc = cowvfsError(pStore, crc, COWVFS_OP_ACCESS, "access", a->zName, 0);
        goto out;
    }
    a->res = bExists && (a->iArg != SQLITE_ACCESS_READWRITE || !bReadonly);
out:
    return rc;
}

/*
 * xAccess.  For a journal or WAL of a container the answer comes from the
 * store: SQLITE_ACCESS_EXISTS and _READ say whether the store file exists
 * (whatever its size: a truncated journal still exists), _READWRITE also
 * that the store may be written.  A container that is not open in this
 * process is opened read-only for the call.  A super-journal of a
 * container is looked up with the default VFS first, then in the store
 * (SUPER-JOURNALS at the top).  Other names go to the default VFS.
 */
static int cowAccess(sqlite3_vfs *pVfs, const char *zName, int flags, int *pResOut)
{
    int rc = SQLITE_OK;
    int nPrefix = cowSuffixOffset(zName, 0);
    char *zContainer = 0;
    char *zStoreName = 0;
    struct cowNameOp a;

    (void)pVfs;
    *pResOut = 0;
    if (nPrefix <= 0) {
        rc = gDefault->xAccess(gDefault, zName, flags, pResOut);
        goto out;
    }
    if (cowIsSuperJournal(zName) && cowSuperBeside(zName)) {
        /* beside the container (SUPER-JOURNALS at the top), else maybe an
         * earlier version's inside it */
        rc = gDefault->xAccess(gDefault, zName, flags, pResOut);
        if (rc != SQLITE_OK || *pResOut)
            goto out;
    }
    if (cowSplitName(zName, nPrefix, &zContainer, &zStoreName) != SQLITE_OK) {
        rc = SQLITE_IOERR_NOMEM;
        goto out;
    }
    memset(&a, 0, sizeof(a));
    a.zName = zName;
    a.zStoreName = zStoreName;
    a.zSubvol = cowUriSubvol(zName, 0);
    a.iArg = flags;
    rc = cowWithStore(zContainer, 0, cowAccessOp, &a);
    if (rc == SQLITE_NOTFOUND) {
        rc = gDefault->xAccess(gDefault, zName, flags, pResOut);
        goto out;
    }
    if (rc == SQLITE_OK)
        *pResOut = a.res;
out:
    sqlite3_free(zContainer);
    sqlite3_free(zStoreName);
    return rc;
}

/* The VFS that was the default at registration (gDefault); set once
 * before the cow VFS is published, so no lock is needed to read it. */
sqlite3_vfs *cowvfsDefaultVfs(void)
{
    return gDefault;
}

static sqlite3_vfs cowVfs;

/* The cow VFS (what SQLite would call through). */
sqlite3_vfs *cowvfsSelf(void)
{
    return &cowVfs;
}

/* The default VFS's full path (it canonicalises, resolving symlinks). */
static int cowFullPathname(sqlite3_vfs *pVfs, const char *zName, int nOut, char *zOut)
{
    (void)pVfs;
    return gDefault->xFullPathname(gDefault, zName, nOut, zOut);
}

/* The rest of the sqlite3_vfs methods: the default VFS's. */

static void *cowDlOpen(sqlite3_vfs *pVfs, const char *zPath)
{
    (void)pVfs;
    return gDefault->xDlOpen(gDefault, zPath);
}

static void cowDlError(sqlite3_vfs *pVfs, int nByte, char *zErrMsg)
{
    (void)pVfs;
    gDefault->xDlError(gDefault, nByte, zErrMsg);
}

static void (*cowDlSym(sqlite3_vfs *pVfs, void *pHandle, const char *zSymbol))(void)
{
    (void)pVfs;
    return gDefault->xDlSym(gDefault, pHandle, zSymbol);
}

static void cowDlClose(sqlite3_vfs *pVfs, void *pHandle)
{
    (void)pVfs;
    gDefault->xDlClose(gDefault, pHandle);
}

static int cowRandomness(sqlite3_vfs *pVfs, int nByte, char *zOut)
{
    (void)pVfs;
    return gDefault->xRandomness(gDefault, nByte, zOut);
}

static int cowSleep(sqlite3_vfs *pVfs, int nMicro)
{
    (void)pVfs;
    return gDefault->xSleep(gDefault, nMicro);
}

static int cowCurrentTime(sqlite3_vfs *pVfs, double *pTime)
{
    (void)pVfs;
    return gDefault->xCurrentTime(gDefault, pTime);
}

static int cowGetLastError(sqlite3_vfs *pVfs, int nBuf, char *zBuf)
{
    (void)pVfs;
    return gDefault->xGetLastError ? gDefault->xGetLastError(gDefault, nBuf, zBuf) : 0;
}

static int cowCurrentTimeInt64(sqlite3_vfs *pVfs, sqlite3_int64 *pTime)
{
    int rc;
    double r = 0.0;

    (void)pVfs;
    if (gDefault->iVersion >= 2 && gDefault->xCurrentTimeInt64) {
        rc = gDefault->xCurrentTimeInt64(gDefault, pTime);
        goto out;
    }
    rc = gDefault->xCurrentTime(gDefault, &r);
    *pTime = (sqlite3_int64)(r * 86400000.0);
out:
    return rc;
}

static int cowSetSystemCall(sqlite3_vfs *pVfs, const char *zName, sqlite3_syscall_ptr pNew)
{
    (void)pVfs;
    return gDefault->iVersion >= 3 && gDefault->xSetSystemCall
               ? gDefault->xSetSystemCall(gDefault, zName, pNew)
               : SQLITE_NOTFOUND;
}

static sqlite3_syscall_ptr cowGetSystemCall(sqlite3_vfs *pVfs, const char *zName)
{
    (void)pVfs;
    return gDefault->iVersion >= 3 && gDefault->xGetSystemCall
               ? gDefault->xGetSystemCall(gDefault, zName)
               : 0;
}

static const char *cowNextSystemCall(sqlite3_vfs *pVfs, const char *zName)
{
    (void)pVfs;
    return gDefault->iVersion >= 3 && gDefault->xNextSystemCall
               ? gDefault->xNextSystemCall(gDefault, zName)
               : 0;
}

static sqlite3_vfs cowVfs = {
    3,                   /* iVersion */
    0,                   /* szOsFile (set by cowvfs_register) */
    0,                   /* mxPathname (set by cowvfs_register) */
    0,                   /* pNext */
    COWVFS_NAME,         /* zName */
    0,                   /* pAppData */
    cowOpen,             /* xOpen */
    cowDelete,           /* xDelete */
    cowAccess,           /* xAccess */
    cowFullPathname,     /* xFullPathname */
    cowDlOpen,           /* xDlOpen */
    cowDlError,          /* xDlError */
    cowDlSym,            /* xDlSym */
    cowDlClose,          /* xDlClose */
    cowRandomness,       /* xRandomness */
    cowSleep,            /* xSleep */
    cowCurrentTime,      /* xCurrentTime */
    cowGetLastError,     /* xGetLastError */
    cowCurrentTimeInt64, /* xCurrentTimeInt64 */
    cowSetSystemCall,    /* xSetSystemCall */
    cowGetSystemCall,    /* xGetSystemCall */
    cowNextSystemCall,   /* xNextSystemCall */
};

/*
 * Registers the "cow" VFS (see include/cowvfs.h).  The first call records
 * the current default VFS, to which temporary files and the OS services are
 * delegated.  Later calls are no-ops, except that MAKE_DEFAULT makes cow the
 * default.  Thread-safe (gRegisterMutex).  Returns SQLITE_OK, SQLITE_ERROR
 * if there is no default VFS to build on, or the error of
 * sqlite3_vfs_register (SQLITE_NOMEM, SQLITE_MISUSE).
 */
int cowvfs_register(int make_default)
{
    int rc = SQLITE_OK;
    sqlite3_vfs *pDefault;

    pthread_mutex_lock(&gRegisterMutex);
    if (gRegistered && !make_default)
        goto out;
    if (gDefault == 0) {
        pDefault = sqlite3_vfs_find(0);
        if (pDefault == 0 || pDefault == &cowVfs) {
            rc = SQLITE_ERROR;
            goto out;
        }
        cowVfs.szOsFile = (int)sizeof(cowFile) > pDefault->szOsFile ? (int)sizeof(cowFile)
                                                                     : pDefault->szOsFile;
        cowVfs.mxPathname = pDefault->mxPathname;
        gDefault = pDefault;
    }
    rc = sqlite3_vfs_register(&cowVfs, make_default);
    if (rc == SQLITE_OK)
        gRegistered = 1;
    /* cow_snapshots on every connection opened from now on */
    if (rc == SQLITE_OK)
        rc = sqlite3_auto_extension((void (*)(void))cowvfsAutoExtension);
out:
    pthread_mutex_unlock(&gRegisterMutex);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The device VFS (vfs_dev.h)
 */

/* A device container never moves: it has no path to be renamed; and its
 * VFS is the device VFS ("cow-rados"), not "cow". */
static int cowDevFileControl(sqlite3_file *pFile, int op, void *pArg)
{
    if (op == SQLITE_FCNTL_HAS_MOVED) {
        *(int *)pArg = 0;
        return SQLITE_OK;
    }
    if (op == SQLITE_FCNTL_VFSNAME) {
        *(char **)pArg = sqlite3_mprintf("%s", gDevVfs.zName);
        return SQLITE_OK;
    }
    return cowvfsIoMethods.xFileControl(pFile, op, pArg);
}

static int cowDevOpen(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *pFile, int flags,
                      int *pOutFlags)
{
    int rc;

    tDevUri = zName;
    rc = cowOpen(pVfs, zName, pFile, flags, pOutFlags);
    tDevUri = 0;
    if (rc == SQLITE_OK && pFile->pMethods == &cowvfsIoMethods)
        pFile->pMethods = &gDevIo;
    return rc;
}

static int cowDevDelete(sqlite3_vfs *pVfs, const char *zName, int syncDir)
{
    int rc;

    tDevUri = zName;
    rc = cowDelete(pVfs, zName, syncDir);
    tDevUri = 0;
    return rc;
}

static int cowDevAccess(sqlite3_vfs *pVfs, const char *zName, int flags, int *pResOut)
{
    int rc;

    tDevUri = zName;
    rc = cowAccess(pVfs, zName, flags, pResOut);
    tDevUri = 0;
    return rc;
}

/* The name as given, without leading '/'s (file:///POOL/NAME, as
 * libcephsqlite spells it, is POOL/NAME). */
static int cowDevFullPathname(sqlite3_vfs *pVfs, const char *zName, int nOut, char *zOut)
{
    size_t n;

    (void)pVfs;
    while (*zName == '/')
        zName++;
    n = strlen(zName);
    if (n == 0 || n >= (size_t)nOut) {
        sqlite3_log(SQLITE_CANTOPEN, "cow: \"%s\" is not a container name of this VFS", zName);
        return SQLITE_CANTOPEN;
    }
    memcpy(zOut, zName, n + 1);
    return SQLITE_OK;
}

int cowvfsRegisterDev(const char *zName, cowvfsDevOpener xOpen)
{
    int rc = cowvfs_register(0);

    if (rc != SQLITE_OK)
        return rc;
    pthread_mutex_lock(&gRegisterMutex);
    if (__atomic_load_n(&gDevOn, __ATOMIC_ACQUIRE)) {
        rc = strcmp(gDevVfs.zName, zName) == 0 && gDevOpen == xOpen ? SQLITE_OK : SQLITE_MISUSE;
        goto out;
    }
    gDevVfs = cowVfs;
    gDevVfs.zName = zName;
    gDevVfs.xOpen = cowDevOpen;
    gDevVfs.xDelete = cowDevDelete;
    gDevVfs.xAccess = cowDevAccess;
    gDevVfs.xFullPathname = cowDevFullPathname;
    gDevIo = cowvfsIoMethods;
    gDevIo.xFileControl = cowDevFileControl;
    gDevOpen = xOpen;
    __atomic_store_n(&gDevOn, 1, __ATOMIC_RELEASE);
    rc = sqlite3_vfs_register(&gDevVfs, 0);
out:
    pthread_mutex_unlock(&gRegisterMutex);
    return rc;
}

const char *cowvfsVfsNameFor(const char *zPath)
{
    return cowIsDevPath(zPath) ? gDevVfs.zName : COWVFS_NAME;
}

int cowvfsIsContainerFile(sqlite3_file *pFile)
{
    return pFile->pMethods == &cowvfsIoMethods ||
           (__atomic_load_n(&gDevOn, __ATOMIC_ACQUIRE) && pFile->pMethods == &gDevIo);
}
