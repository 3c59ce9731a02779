/*
 * vfs_snap.c - snapshots and branches of SQLite databases: the SQLite side
 * of the store's clone hook (store/subvol.c), reached through pragmas
 * (SQLITE_FCNTL_PRAGMA), the C API of include/cowvfs.h and the
 * cow_snapshots table-valued function.
 *
 * A TRANSACTION BOUNDARY.  The store takes a snapshot of every file of the
 * database (db, db-journal, db-wal) at one instant, under store->lock, after
 * writing back everything buffered: the image of a crash that lost nothing
 * and reordered nothing, which SQLite knows how to recover.  What is left to
 * make it the committed state at that instant:
 *
 *   WAL mode      nothing.  A commit is a WAL frame with a commit mark, so
 *                 frames of transactions in progress (other connections' or
 *                 the caller's own) are ignored when the snapshot's
 *                 WAL-index is rebuilt from its WAL; a checkpoint in
 *                 progress leaves the WAL whole.  No checkpoint is needed.
 *
 *   rollback      the database file holds uncommitted changes only while a
 *                 connection holds EXCLUSIVE (it spilled its cache, or is
 *                 committing), and then the journal is hot.  So:
 *                 - another connection (of this process, or of another:
                   this call holds a read lock on the database's SHARED
                   byte while it makes the snapshot, which another
                   process's EXCLUSIVE conflicts with, and failing to
                   get it means one holds EXCLUSIVE) at EXCLUSIVE with a
                   hot journal:
 *                   the image is one SQLite recovers: the general path
 *                   below; without one (journal_mode MEMORY or OFF, whose
 *                   changes SQLite cannot undo), wait (at most
 *                   COWVFS_BUSY_MS) until it drops EXCLUSIVE, refusing new
 *                   EXCLUSIVE locks meanwhile (nSnapWait), so that a stream
 *                   of commits cannot starve the snapshot;
 *                 - then, under the database's lock-state mutex (no lock
 *                   changes while the snapshot is taken), if the database
 *                   file is known to hold no uncommitted change (no
 *                   EXCLUSIVE holder, and no hot journal), the journal of a
 *                   transaction in progress is dropped from the new
 *                   snapshot in the same commit;
 *                 - otherwise (a transaction in progress spilled, or a
 *                   crash left a hot journal nobody rolled back yet) the
 *                   snapshot is made as an unfinished branch, SQLite itself
 *                   rolls the journal back in it (an internal connection
 *                   reads the schema), and the branch is finished as what
 *                   was asked for.  A crash before that leaves nothing (the
 *                   next open deletes unfinished branches).
 *   Not covered: journal_mode=MEMORY or OFF inside the caller's own spilled
 *   transaction (there is no journal to roll back: the snapshot then holds
 *   the spilled pages, as a crash would).
 *
 * RESTORE.  The database's tree is replaced by a copy of the snapshot's
 * (constant time, store/subvol.c) while the lock-state mutex is held and no
 * connection is inside a transaction; open files are rebound by name.  A
 * snapshot is a committed state by construction; a branch may be inside a
 * transaction (its journal hot in the copy), so a restore from a branch
 * restores from a copy of it made as a snapshot is (above), kept hidden as
 * an unfinished branch and deleted after.  Idle
 * connections keep page caches, which SQLite validates at the start of each
 * transaction: in rollback mode by the change counter of page 1, which
 * restore sets above every value the database had; in WAL mode by the
 * WAL-index header, which restore invalidates (the next reader rebuilds it
 * from the restored WAL, and if that WAL is empty restore first writes one
 * holding page 1, with fresh salts, so that the rebuilt header differs from
 * every header a connection may have cached).
 *
 * Locking: the functions here take the registry mutex (acquiring
 * databases), a database's lock-state mutex, and inside it the store's
 * lock, in the lock order of vfs.c.  The internal connection of the
 * recovery runs with no VFS lock held.
 */
#include "sqlite_api.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cowvfs.h"
#include "lockspace.h"
#include "vfs_dev.h"
#include "vfs_int.h"

/* The file names inside a database (vfs.c: "db" plus SQLite's suffix). */
#define SNAP_DB "db"
#define SNAP_JOURNAL "db-journal"
#define SNAP_WAL "db-wal"

static sqlite3_int64 cowNowMs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (sqlite3_int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Maps a store error of a snapshot operation to an SQLite code and sets
 * *PZERR (if PZERR) to "ZWHAT: reason".  Name and kind errors are
 * SQLITE_ERROR, a read-only store or snapshot SQLITE_READONLY, a file in use
 * SQLITE_BUSY; the rest as cowvfsMapError (logged).
 */
static int cowSnapError(cow_store *pStore, int crc, const char *zWhat, char **pzErr)
{
    int rc;
    const char *zWhy = cow_store_last_error(pStore);

    if (zWhy == 0 || zWhy[0] == 0)
        zWhy = cow_strerror(crc);
    switch (crc) {
    case COW_EINVAL:
    case COW_EEXIST:
    case COW_ENOENT: rc = SQLITE_ERROR; break;
    case COW_EROFS: rc = SQLITE_READONLY; break;
    case COW_EBUSY: rc = SQLITE_BUSY; break;
    default:
        rc = cowvfsMapError(crc, COWVFS_OP_IO);
        sqlite3_log(rc, "cow: %s: %s", zWhat, zWhy);
        break;
    }
    if (pzErr) /* name and kind errors say it all themselves */
        *pzErr = rc == SQLITE_ERROR ? sqlite3_mprintf("%s", zWhy)
                                    : sqlite3_mprintf("%s: %s", zWhat, zWhy);
    return rc;
}

/* Sets *PZERR (if PZERR) to a message made from ZFMT; returns RC. */
static int cowSnapRefuse(int rc, char **pzErr, const char *zFmt, ...)
{
    va_list ap;

    if (pzErr) {
        va_start(ap, zFmt);
        *pzErr = sqlite3_vmprintf(zFmt, ap);
        va_end(ap);
    }
    return rc;
}

/*
 * 1 if file ZFILE of database ZSUBVOL exists and is a hot rollback journal
 * in SQLite's sense (not empty, first byte not zero: pager.c's
 * hasHotJournal, given that nobody holds a lock), else 0 (also on errors:
 * the caller then takes the general path, which is always correct).
 */
static int cowJournalIsHot(cow_store *pStore, const char *zSubvol)
{
    cow_file *pCf = 0;
    unsigned char c = 0;
    size_t n = 0;
    int bHot = 0;

    if (cow_subvol_file_open(pStore, zSubvol, SNAP_JOURNAL, 0, &pCf) != COW_OK)
        goto out;
    if (cow_file_read(pCf, &c, 1, 0, &n) == COW_OK && n == 1 && c != 0)
        bHot = 1;
    cow_file_close(pCf);
out:
    return bHot;
}

/* Appends Z to the URI being built in *PZ, %-encoding all but unreserved
 * characters and '/'.  *PZ is NULL on out-of-memory. */
static void cowUriAppend(char **pz, const char *z)
{
    char *zOut;
    size_t n = 0;
    size_t i;
    size_t nOld;

    if (*pz == 0)
        return;
    nOld = strlen(*pz);
    zOut = sqlite3_realloc64(*pz, nOld + strlen(z) * 3 + 1);
    if (zOut == 0) {
        sqlite3_free(*pz);
        *pz = 0;
        return;
    }
    for (i = 0; z[i]; i++) {
        unsigned char c = (unsigned char)z[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
            zOut[nOld + n++] = (char)c;
        } else {
            zOut[nOld + n++] = '%';
            zOut[nOld + n++] = "0123456789ABCDEF"[c >> 4];
            zOut[nOld + n++] = "0123456789ABCDEF"[c & 15];
        }
    }
    zOut[nOld + n] = 0;
    *pz = zOut;
}

/*
 * Rolls back the hot journal in the unfinished branch ZNAME of container
 * ZPATH by letting SQLite open it and read its schema (an internal
 * connection, which deletes the journal afterwards).  Returns SQLITE_OK or
 * SQLite's error, with *PZERR set.  No VFS lock may be held.
 */
static int cowSnapRecover(const char *zPath, const char *zName, char **pzErr)
{
    int rc;
    sqlite3 *db = 0;
    char *zUri = sqlite3_mprintf("file:");

    cowUriAppend(&zUri, zPath);
    if (zUri) {
        char *z = sqlite3_mprintf("%s?vfs=%s&cow_unfinished=1&branch=", zUri,
                                  cowvfsVfsNameFor(zPath));
        sqlite3_free(zUri);
        zUri = z;
    }
    cowUriAppend(&zUri, zName);
    if (zUri == 0) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = sqlite3_open_v2(zUri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA schema_version", 0, 0, 0);
    if (rc != SQLITE_OK)
        cowSnapRefuse(rc, pzErr, "rolling back the journal of a transaction in progress in "
                                 "the new snapshot: %s",
                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
out:
    if (db)
        sqlite3_close(db);
    sqlite3_free(zUri);
    return rc;
}

/*
 * Makes snapshot or branch (EKIND COWVFS_SNAPSHOT / _BRANCH) ZNAME of
 * database PINODE at a transaction boundary (see the top of this file).
 * PCALLER is the main-database file of the connection asking, or NULL (the
 * container API).  If BHIDDEN, the result is left an unfinished branch
 * (hidden from listings, deleted by the next writable open of the
 * container if nobody deletes it before): restore's copy of a branch.
 * Returns SQLITE_OK; SQLITE_BUSY when another connection kept the database
 * file locked for writing longer than COWVFS_BUSY_MS; the errors of
 * cowSnapError; *PZERR set on error.
 */
static int cowSnapCreate(cowInode *pInode, cowFile *pCaller, const char *zName, int eKind,
                         int bHidden, char **pzErr)
{
    cow_store *pStore = pInode->pStore;
    sqlite3_int64 iStart = cowNowMs();
    int bWaiting = 0;
    int bRecover = 0;
    int bHeldShared = 0; /* this call holds a read lock on the SHARED byte */
    int rc = SQLITE_OK;
    int crc;
    cowFile *pOwner;

    if (pInode->pCont->bReadonly)
        return cowSnapRefuse(SQLITE_READONLY, pzErr, "%s is open read-only",
                             pInode->pCont->zPath);
    if (!cow_subvol_name_valid(zName))
        return cowSnapRefuse(SQLITE_ERROR, pzErr,
                             "bad snapshot or branch name \"%s\" (1 to 255 bytes of UTF-8, "
                             "no '/')",
                             zName);
    for (;;) {
        int bOtherProc = 0;
        cowvfsMutexEnter(&pInode->mutex);
        pOwner = pInode->pOwner;
        if (!(pOwner && pOwner != pCaller && pOwner->eFileLock == EXCLUSIVE_LOCK)) {
            /* Other processes: while nobody here holds SHARED or more, this
             * process holds no lock on the SHARED byte; a read lock on it,
             * until the snapshot is made, keeps them from EXCLUSIVE (they
             * take it as a write lock there, as os_unix.c does), and
             * failing to get it means one of them holds EXCLUSIVE: it
             * writes the database file, as a connection here could. */
            if (pInode->nShared == 0 && !pOwner && pInode->pCont->fdLock >= 0) {
                int rcl = cowvfsLockSet(pInode->pCont->fdLock, pInode->iLockBase + COW_LOCK_SHARED,
                                        1, F_RDLCK, SQLITE_IOERR_LOCK);
                if (rcl == SQLITE_OK)
                    bHeldShared = 1;
                else if (rcl == SQLITE_BUSY)
                    bOtherProc = 1;
                else {
                    cowvfsMutexLeave(&pInode->mutex);
                    if (bWaiting) {
                        cowvfsMutexEnter(&pInode->mutex);
                        pInode->nSnapWait--;
                        cowvfsMutexLeave(&pInode->mutex);
                    }
                    return cowSnapRefuse(rcl, pzErr, "locking the database against other "
                                                     "processes' writes failed");
                }
            }
            if (!bOtherProc)
                break;
        }
        /* another connection, here or in another process, writes the
         * database file: with a hot journal, the image is one SQLite
         * recovers (rolled back below); without (journal_mode MEMORY or
         * OFF), wait for its commit.  (Another process's buffered writes
         * reach the store when this one takes the container's ownership to
         * make the snapshot: the image is that of a crash there.) */
        if (cowJournalIsHot(pStore, pInode->zSubvol)) {
            bRecover = 1;
            break;
        }
        if (!bWaiting) {
            pInode->nSnapWait++;
            bWaiting = 1;
        }
        cowvfsMutexLeave(&pInode->mutex);
        if (cowNowMs() - iStart > COWVFS_BUSY_MS) {
            cowvfsMutexEnter(&pInode->mutex);
            pInode->nSnapWait--;
            cowvfsMutexLeave(&pInode->mutex);
            return cowSnapRefuse(SQLITE_BUSY, pzErr,
                                 "another connection kept writing the database for more "
                                 "than %d ms",
                                 COWVFS_BUSY_MS);
        }
        usleep(200);
    }
    if (bWaiting)
        pInode->nSnapWait--;
    /* Under the mutex: nobody else holds EXCLUSIVE, and nobody can take it
     * until the snapshot is made. */
    if ((pOwner == pCaller && pCaller && pCaller->eFileLock == EXCLUSIVE_LOCK) ||
        (pOwner == 0 && pInode->nShared == 0))
        bRecover = bRecover || cowJournalIsHot(pStore, pInode->zSubvol);
    if (bRecover)
        crc = cow_subvol_create_ex(pStore, zName, COW_SUBVOL_BRANCH, pInode->zSubvol, 0, 1);
    else
        crc = cow_subvol_create_ex(pStore, zName,
                                   eKind == COWVFS_SNAPSHOT && !bHidden ? COW_SUBVOL_SNAPSHOT
                                                                        : COW_SUBVOL_BRANCH,
                                   pInode->zSubvol, SNAP_JOURNAL, bHidden);
    if (bHeldShared) /* nobody here took a lock meanwhile (the mutex is held) */
        (void)cowvfsLockSet(pInode->pCont->fdLock, pInode->iLockBase + COW_LOCK_SHARED, 1, F_UNLCK,
                            SQLITE_IOERR_UNLOCK);
    cowvfsMutexLeave(&pInode->mutex);
    if (crc != COW_OK) {
        rc = cowSnapError(pStore, crc, eKind == COWVFS_SNAPSHOT ? "snapshot" : "branch", pzErr);
        goto out;
    }
    if (!bRecover)
        goto out;
    rc = cowSnapRecover(pInode->pCont->zPath, zName, pzErr);
    if (rc == SQLITE_OK && !bHidden) {
        crc = cow_subvol_finish(pStore, zName,
                                eKind == COWVFS_SNAPSHOT ? COW_SUBVOL_SNAPSHOT
                                                         : COW_SUBVOL_BRANCH);
        if (crc != COW_OK)
            rc = cowSnapError(pStore, crc, "finishing the snapshot", pzErr);
    }
    if (rc != SQLITE_OK)
        (void)cow_subvol_delete(pStore, zName); /* else the next open does it */
out:
    return rc;
}

/* Big-endian 32-bit integers of SQLite's file formats. */
static uint32_t cowGet32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void cowPut32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The WAL checksum (SQLite's file format, section 4.1) over N bytes (a
 * multiple of 8) of A as big-endian words, continuing from S[0], S[1]. */
static void cowWalChecksum(const unsigned char *a, size_t n, uint32_t *s)
{
    size_t i;

    for (i = 0; i + 8 <= n; i += 8) {
        s[0] += cowGet32(a + i) + s[1];
        s[1] += cowGet32(a + i + 4) + s[0];
    }
}

/*
 * Writes to PWAL (empty or holding no frame) a WAL of one frame: page 1 of
 * the database PDB as it is, as the commit of a transaction, with fresh
 * random salts (SQLite's file format, section 4).  Its recovery gives a
 * WAL-index header no connection can have cached, so every connection drops
 * its page cache (see RESTORE at the top).  Does nothing when PDB has no
 * SQLite header.  Returns a COW_* code.
 */
static int cowWalSynth(cow_file *pDb, cow_file *pWal)
{
    unsigned char hdr[100];
    unsigned char *a = 0;
    size_t n = 0;
    uint64_t nSize = 0;
    uint32_t szPage;
    uint32_t s[2] = { 0, 0 };
    uint32_t salt[2];
    int crc;

    crc = cow_file_read(pDb, hdr, sizeof(hdr), 0, &n);
    if (crc != COW_OK || n < sizeof(hdr) || memcmp(hdr, "SQLite format 3", 16) != 0)
        goto out;
    szPage = (uint32_t)hdr[16] << 8 | hdr[17];
    if (szPage == 1)
        szPage = 65536;
    if (szPage < 512 || (szPage & (szPage - 1)) != 0)
        goto out;
    crc = cow_file_size(pDb, &nSize);
    if (crc != COW_OK || nSize < szPage)
        goto out;
    a = sqlite3_malloc64(32 + 24 + szPage);
    if (a == 0) {
        crc = COW_ENOMEM;
        goto out;
    }
    crc = cow_file_read(pDb, a + 56, szPage, 0, &n);
    if (crc != COW_OK)
        goto out;
    sqlite3_randomness(sizeof(salt), salt);
    cowPut32(a, 0x377f0683); /* big-endian checksums */
    cowPut32(a + 4, 3007000);
    cowPut32(a + 8, szPage);
    cowPut32(a + 12, 0);
    cowPut32(a + 16, salt[0]);
    cowPut32(a + 20, salt[1]);
    cowWalChecksum(a, 24, s);
    cowPut32(a + 24, s[0]);
    cowPut32(a + 28, s[1]);
    cowPut32(a + 32, 1);                            /* page number */
    cowPut32(a + 36, (uint32_t)(nSize / szPage));   /* commit: database pages */
    cowPut32(a + 40, salt[0]);
    cowPut32(a + 44, salt[1]);
    cowWalChecksum(a + 32, 8, s);
    cowWalChecksum(a + 56, szPage, s);
    cowPut32(a + 48, s[0]);
    cowPut32(a + 52, s[1]);
    crc = cow_file_truncate(pWal, 0);
    if (crc == COW_OK)
        crc = cow_file_write(pWal, a, 56 + (size_t)szPage, 0);
out:
    sqlite3_free(a);
    return crc;
}

/*
 * 1 if a connection of PINODE is inside a transaction: a rollback-mode
 * connection holds any lock on the database file (it takes SHARED for each
 * transaction and drops it after), a WAL-mode connection holds a WAL-index
 * lock (it keeps SHARED on the file while open, so that says nothing), or
 * any connection holds more than SHARED.  Caller holds PINODE->mutex.
 */
static int cowInTransaction(cowInode *pInode)
{
    cowFile *f;

    for (f = pInode->pFiles; f; f = f->pNextDb) {
        if (f->eFileLock > SHARED_LOCK)
            return 1;
        if (f->eFileLock == SHARED_LOCK && f->pShm == 0)
            return 1;
        if (f->pShm && (f->pShm->sharedMask | f->pShm->exclMask))
            return 1;
    }
    return 0;
}

/*
 * 1 if a connection of another process is inside a transaction on
 * PINODE's database, as its locks on the container show (vfs_lock.c):
 * RESERVED or PENDING; in WAL mode (another process has the WAL-index
 * mapped: its dead-man switch is held) a WAL lock (the write lock, a read
 * mark); else SHARED, which a connection in rollback mode holds only inside
 * a transaction (in WAL mode every open connection holds it).  A probe
 * that fails counts as busy.
 */
static int cowOtherInTransaction(cowInode *pInode)
{
    int fd = pInode->pCont->fdLock;
    sqlite3_uint64 b = pInode->iLockBase;
    int eType, eWal;
    if (fd < 0)
        return 0;
    if (cowvfsLockHolder(fd, b + COW_LOCK_PENDING, 2, &eType, SQLITE_IOERR_LOCK) != SQLITE_OK ||
        eType != F_UNLCK)
        return 1;
    if (cowvfsLockHolder(fd, b + COW_LOCK_WAL_DMS, 1, &eWal, SQLITE_IOERR_LOCK) != SQLITE_OK)
        return 1;
    if (eWal != F_UNLCK)
        return cowvfsLockHolder(fd, b + COW_LOCK_WAL, 8, &eType, SQLITE_IOERR_LOCK) != SQLITE_OK ||
               eType != F_UNLCK;
    return cowvfsLockHolder(fd, b + COW_LOCK_SHARED, 1, &eType, SQLITE_IOERR_LOCK) != SQLITE_OK ||
           eType != F_UNLCK;
}

/* 1 if another process has database ZNAME of PINODE's container open
 * (its COW_LOCK_OPEN byte is read-locked by someone else). */
static int cowOtherHasOpen(cowInode *pInode, const char *zName)
{
    uint64_t iId;
    int eType;
    if (pInode->pCont->fdLock < 0 || cow_subvol_id(pInode->pStore, zName, &iId) != COW_OK)
        return 0;
    return cowvfsLockHolder(pInode->pCont->fdLock, COW_LOCK_DB(iId) + COW_LOCK_OPEN, 1, &eType,
                            SQLITE_IOERR_LOCK) != SQLITE_OK ||
           eType != F_UNLCK;
}

/*
 * Resets database PINODE (the live one or a branch) to snapshot or branch
 * ZSOURCE (see RESTORE at the top).  PCALLER: the asking connection's
 * main-database file, or NULL.  Returns SQLITE_OK; SQLITE_BUSY (changing
 * nothing) while any connection is inside a transaction on PINODE;
 * SQLITE_ERROR (PINODE is a snapshot, or ZSOURCE is missing or PINODE
 * itself); the errors of cowSnapError; *PZERR set on error.
 */
static int cowSnapRestore(cowInode *pInode, cowFile *pCaller, const char *zSource, char **pzErr)
{
    static unsigned nTmp; /* names of the copies of branches */
    cow_store *pStore = pInode->pStore;
    char zCopy[64];
    const char *zFrom = zSource;
    int eSrcKind;
    unsigned char aOld[100];
    unsigned char aNew[100];
    size_t nOld = 0;
    size_t nNew = 0;
    int rc = SQLITE_OK;
    int crc;
    cow_file *pDb = 0;
    cow_file *pWal = 0;
    uint64_t nWal = 0;
    int bWalConns;

    if (pInode->eKind == COW_SUBVOL_SNAPSHOT)
        return cowSnapRefuse(SQLITE_ERROR, pzErr,
                             "%s is a snapshot (read-only): restore the live database or a "
                             "branch",
                             pInode->zSubvol);
    if (pInode->bReadonly || (pCaller && (pCaller->ctrlFlags & COWFILE_READONLY)))
        return cowSnapRefuse(SQLITE_READONLY, pzErr, "the database is open read-only");
    if (!cow_subvol_name_valid(zSource))
        return cowSnapRefuse(SQLITE_ERROR, pzErr, "bad snapshot or branch name \"%s\"", zSource);
    if (strcmp(zSource, pInode->zSubvol) == 0)
        return cowSnapRefuse(SQLITE_ERROR, pzErr, "cannot restore %s from itself", zSource);
    crc = cow_subvol_kind(pStore, zSource, &eSrcKind);
    if (crc == COW_ENOENT || (crc == COW_OK && eSrcKind == COW_SUBVOL_INCOMPLETE))
        return cowSnapRefuse(SQLITE_ERROR, pzErr, "no snapshot or branch named %s", zSource);
    if (crc != COW_OK)
        return cowSnapError(pStore, crc, "restore", pzErr);
    cowvfsMutexEnter(&pInode->mutex);
    rc = cowInTransaction(pInode) || cowOtherInTransaction(pInode);
    cowvfsMutexLeave(&pInode->mutex);
    if (rc)
        return cowSnapRefuse(SQLITE_BUSY, pzErr,
                             "cannot restore while a connection is inside a transaction on "
                             "the database");
    if (eSrcKind == COW_SUBVOL_BRANCH) {
        /* A branch may be inside a transaction, or hold a crash's hot
         * journal: its tree is not a committed state.  Restore from a copy
         * taken at a transaction boundary, as a snapshot is, hidden (an
         * unfinished branch: a crash leaves nothing behind). */
        cowInode *pSrc = 0;
        sqlite3_snprintf((int)sizeof(zCopy), zCopy, "cow-restore-%ld-%u", (long)getpid(),
                         __atomic_add_fetch(&nTmp, 1, __ATOMIC_RELAXED));
        rc = cowvfsInodeAcquire(pInode->pCont->zPath, zSource, 0, &pSrc);
        if (rc != SQLITE_OK)
            return cowSnapRefuse(rc, pzErr, "restore: cannot open %s: %s", zSource,
                                 sqlite3_errstr(rc));
        rc = cowSnapCreate(pSrc, 0, zCopy, COWVFS_SNAPSHOT, 1, pzErr);
        cowvfsInodeRelease(pSrc, 0);
        if (rc != SQLITE_OK)
            return rc;
        zFrom = zCopy;
    }
    cowvfsMutexEnter(&pInode->mutex);
    if (cowInTransaction(pInode) || cowOtherInTransaction(pInode)) {
        rc = cowSnapRefuse(SQLITE_BUSY, pzErr,
                           "cannot restore while a connection is inside a transaction on "
                           "the database");
        goto out;
    }
    crc = cow_subvol_file_open(pStore, pInode->zSubvol, SNAP_DB, 0, &pDb);
    if (crc == COW_OK)
        crc = cow_file_read(pDb, aOld, sizeof(aOld), 0, &nOld);
    if (crc == COW_OK)
        crc = cow_subvol_restore(pStore, pInode->zSubvol, zFrom);
    if (crc == COW_OK)
        crc = cow_file_read(pDb, aNew, sizeof(aNew), 0, &nNew);
    if (crc != COW_OK) {
        rc = cowSnapError(pStore, crc, "restore", pzErr);
        goto out;
    }
    bWalConns = pInode->shm.nRegion > 0; /* connections in WAL mode */
    cowvfsShmReset(&pInode->shm);
    if (nNew == sizeof(aNew) && aNew[18] != 2 && nOld == sizeof(aOld)) {
        /* rollback mode: a change counter above any the database had, so
         * that every cached page 1 differs */
        uint32_t iOld = cowGet32(aOld + 24);
        uint32_t iNew = cowGet32(aNew + 24);
        unsigned char b[4];
        cowPut32(b, (iOld > iNew ? iOld : iNew) + 1);
        crc = cow_file_write(pDb, b, 4, 24);
        if (crc == COW_OK)
            crc = cow_file_write(pDb, b, 4, 92);
    }
    if (crc == COW_OK && nNew == sizeof(aNew) && (aNew[18] == 2 || bWalConns)) {
        /* connections in WAL mode (the restored database's, or the ones
         * open now, which stay in WAL mode until they next open): an empty
         * WAL would give a WAL-index header that some of them may have
         * cached; give it one frame of new salts */
        crc = cow_subvol_file_open(pStore, pInode->zSubvol, SNAP_WAL, 1, &pWal);
        if (crc == COW_OK)
            crc = cow_file_size(pWal, &nWal);
        if (crc == COW_OK && nWal <= 32 + 24)
            crc = cowWalSynth(pDb, pWal);
    }
    if (crc == COW_OK)
        crc = cow_store_persist(pStore);
    if (crc != COW_OK)
        rc = cowSnapError(pStore, crc, "restore (after the tree was restored)", pzErr);
out:
    cowvfsMutexLeave(&pInode->mutex);
    if (pWal)
        cow_file_close(pWal);
    if (pDb)
        cow_file_close(pDb);
    if (zFrom != zSource) /* else the next writable open deletes it */
        (void)cow_subvol_delete(pStore, zCopy);
    return rc;
}

/* Deletes snapshot or branch ZNAME of PINODE's container. */
static int cowSnapDelete(cowInode *pInode, const char *zName, char **pzErr)
{
    int crc;

    if (pInode->pCont->bReadonly)
        return cowSnapRefuse(SQLITE_READONLY, pzErr, "%s is open read-only",
                             pInode->pCont->zPath);
    if (cowOtherHasOpen(pInode, zName))
        return cowSnapRefuse(SQLITE_BUSY, pzErr,
                             "%s is open in another process (close its connections first)",
                             zName);
    crc = cow_subvol_delete(pInode->pStore, zName);
    if (crc == COW_EBUSY)
        return cowSnapRefuse(SQLITE_BUSY, pzErr, "%s is open (close its connections first)",
                             zName);
    return crc == COW_OK ? SQLITE_OK : cowSnapError(pInode->pStore, crc, "delete", pzErr);
}

/* ---------------------------------------------------------------------------
 * Listing
 */

/* The listing of a container, gathered before any callback runs (so that
 * no store lock is held while the caller's code runs). */
typedef struct cowSnapList cowSnapList;
struct cowSnapList {
    int n;
    int nAlloc;
    struct cow_subvol_info *a;
    struct cow_subvol_usage *aUse;
};

static int cowSnapListCb(void *pArg, const struct cow_subvol_info *si)
{
    cowSnapList *l = pArg;

    if (l->n == l->nAlloc) {
        int nNew = l->nAlloc ? l->nAlloc * 2 : 16;
        struct cow_subvol_info *a = sqlite3_realloc64(l->a, sizeof(*a) * (size_t)nNew);
        if (a == 0)
            return COW_ENOMEM;
        l->a = a;
        l->nAlloc = nNew;
    }
    l->a[l->n++] = *si;
    return 0;
}

static void cowSnapListFree(cowSnapList *l)
{
    sqlite3_free(l->a);
    sqlite3_free(l->aUse);
    memset(l, 0, sizeof(*l));
}

/* Lists PSTORE's snapshots and branches with their space into *L (freed by
 * cowSnapListFree, also on error). */
static int cowSnapListGet(cow_store *pStore, cowSnapList *l, char **pzErr)
{
    int crc;
    int i;

    memset(l, 0, sizeof(*l));
    crc = cow_subvol_list(pStore, cowSnapListCb, l);
    if (crc == COW_OK && l->n) {
        l->aUse = sqlite3_malloc64(sizeof(*l->aUse) * (size_t)l->n);
        if (l->aUse == 0)
            crc = COW_ENOMEM;
    }
    for (i = 0; crc == COW_OK && i < l->n; i++) {
        crc = cow_subvol_usage(pStore, l->a[i].name, &l->aUse[i]);
        if (crc == COW_ENOENT) { /* deleted meanwhile: no space */
            memset(&l->aUse[i], 0, sizeof(l->aUse[i]));
            crc = COW_OK;
        }
    }
    if (crc != COW_OK)
        return cowSnapError(pStore, crc, "list", pzErr);
    return SQLITE_OK;
}

/* Calls XCB for each entry of L; returns the first non-zero result. */
static int cowSnapListCall(const cowSnapList *l, cowvfs_list_fn xCb, void *pArg)
{
    int i;
    int rc = 0;

    for (i = 0; i < l->n && rc == 0; i++) {
        cowvfs_subvol_info info;
        info.zName = l->a[i].name;
        info.eKind = l->a[i].kind == COW_SUBVOL_SNAPSHOT ? COWVFS_SNAPSHOT : COWVFS_BRANCH;
        info.iCreatedMs = (long long)(l->a[i].ctime_ns / 1000000);
        info.zSource = l->a[i].source[0] ? l->a[i].source : 0;
        info.nExclusive = (long long)l->aUse[i].exclusive_bytes;
        info.nShared = (long long)l->aUse[i].shared_bytes;
        rc = xCb(pArg, &info);
    }
    return rc;
}

/* ---------------------------------------------------------------------------
 * Pragmas
 */

/*
 * The snapshot pragmas of SQLITE_FCNTL_PRAGMA (vfs_io.c's cowPragma) on
 * database file P (the schema the pragma names):
 *
 *   PRAGMA cow_snapshot('NAME')   snapshot of this database; returns NAME
 *   PRAGMA cow_branch('NAME')     branch of it; returns NAME
 *   PRAGMA cow_restore('NAME')    resets it to snapshot or branch NAME;
 *                                 returns NAME
 *   PRAGMA cow_delete('NAME')     deletes snapshot or branch NAME of the
 *                                 container; returns NAME
 *
 * Returns SQLITE_NOTFOUND for any other pragma; else SQLITE_OK with the
 * result in *PZOUT, or an error with its message in *PZOUT (both
 * sqlite3_mprintf()ed, freed by SQLite).
 */
int cowvfsSnapPragma(cowFile *p, const char *zName, const char *zVal, char **pzOut)
{
    int rc;
    char *zErr = 0;

    if (sqlite3_stricmp(zName, "cow_snapshot") != 0 && sqlite3_stricmp(zName, "cow_branch") != 0 &&
        sqlite3_stricmp(zName, "cow_restore") != 0 && sqlite3_stricmp(zName, "cow_delete") != 0)
        return SQLITE_NOTFOUND;
    if (zVal == 0) {
        *pzOut = sqlite3_mprintf("PRAGMA %s needs a name: PRAGMA %s('name')", zName, zName);
        return SQLITE_ERROR;
    }
    if (sqlite3_stricmp(zName, "cow_snapshot") == 0)
        rc = cowSnapCreate(p->pInode, p, zVal, COWVFS_SNAPSHOT, 0, &zErr);
    else if (sqlite3_stricmp(zName, "cow_branch") == 0)
        rc = cowSnapCreate(p->pInode, p, zVal, COWVFS_BRANCH, 0, &zErr);
    else if (sqlite3_stricmp(zName, "cow_restore") == 0)
        rc = cowSnapRestore(p->pInode, p, zVal, &zErr);
    else
        rc = cowSnapDelete(p->pInode, zVal, &zErr);
    if (rc == SQLITE_OK) {
        *pzOut = sqlite3_mprintf("%s", zVal);
        if (*pzOut == 0)
            rc = SQLITE_NOMEM;
    } else {
        *pzOut = zErr;
        zErr = 0;
    }
    sqlite3_free(zErr);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The C API (include/cowvfs.h)
 */

/* The main-database file of schema ZSCHEMA of DB if the cow VFS opened it;
 * SQLITE_ERROR with *PZERR otherwise.  Caller holds DB's mutex. */
static int cowApiFile(sqlite3 *db, const char *zSchema, cowFile **pp, char **pzErr)
{
    sqlite3_file *pFile = 0;
    int rc;

    *pp = 0;
    if (zSchema == 0)
        zSchema = "main";
    rc = sqlite3_file_control(db, zSchema, SQLITE_FCNTL_FILE_POINTER, &pFile);
    if (rc != SQLITE_OK || pFile == 0 || !cowvfsIsContainerFile(pFile))
        return cowSnapRefuse(SQLITE_ERROR, pzErr, "schema \"%s\" is not a database of the %s VFS",
                             zSchema, COWVFS_NAME);
    *pp = (cowFile *)pFile;
    return SQLITE_OK;
}

/* The operations of the C API, by what they act on. */
enum cowApiOp { API_SNAPSHOT, API_BRANCH, API_RESTORE, API_DELETE };

static int cowApiRun(cowInode *pInode, cowFile *pCaller, enum cowApiOp eOp, const char *zName,
                     char **pzErr)
{
    switch (eOp) {
    case API_SNAPSHOT: return cowSnapCreate(pInode, pCaller, zName, COWVFS_SNAPSHOT, 0, pzErr);
    case API_BRANCH: return cowSnapCreate(pInode, pCaller, zName, COWVFS_BRANCH, 0, pzErr);
    case API_RESTORE: return cowSnapRestore(pInode, pCaller, zName, pzErr);
    default: return cowSnapDelete(pInode, zName, pzErr);
    }
}

static int cowApiDb(sqlite3 *db, const char *zSchema, enum cowApiOp eOp, const char *zName,
                    char **pzErr)
{
    cowFile *p;
    int rc;

    if (pzErr)
        *pzErr = 0;
    if (db == 0 || zName == 0)
        return SQLITE_MISUSE;
    sqlite3_mutex_enter(sqlite3_db_mutex(db));
    rc = cowApiFile(db, zSchema, &p, pzErr);
    if (rc == SQLITE_OK)
        rc = cowApiRun(p->pInode, p, eOp, zName, pzErr);
    sqlite3_mutex_leave(sqlite3_db_mutex(db));
    return rc;
}

int cowvfs_snapshot(sqlite3 *db, const char *zSchema, const char *zName, char **pzErrMsg)
{
    return cowApiDb(db, zSchema, API_SNAPSHOT, zName, pzErrMsg);
}

int cowvfs_branch(sqlite3 *db, const char *zSchema, const char *zName, char **pzErrMsg)
{
    return cowApiDb(db, zSchema, API_BRANCH, zName, pzErrMsg);
}

int cowvfs_restore(sqlite3 *db, const char *zSchema, const char *zName, char **pzErrMsg)
{
    return cowApiDb(db, zSchema, API_RESTORE, zName, pzErrMsg);
}

int cowvfs_delete(sqlite3 *db, const char *zSchema, const char *zName, char **pzErrMsg)
{
    return cowApiDb(db, zSchema, API_DELETE, zName, pzErrMsg);
}

int cowvfs_list(sqlite3 *db, const char *zSchema, cowvfs_list_fn xCallback, void *pArg,
                char **pzErrMsg)
{
    cowFile *p;
    cowSnapList l;
    int rc;

    if (pzErrMsg)
        *pzErrMsg = 0;
    if (db == 0 || xCallback == 0)
        return SQLITE_MISUSE;
    memset(&l, 0, sizeof(l));
    sqlite3_mutex_enter(sqlite3_db_mutex(db));
    rc = cowApiFile(db, zSchema, &p, pzErrMsg);
    if (rc == SQLITE_OK)
        rc = cowSnapListGet(p->pInode->pStore, &l, pzErrMsg);
    sqlite3_mutex_leave(sqlite3_db_mutex(db));
    if (rc == SQLITE_OK)
        rc = cowSnapListCall(&l, xCallback, pArg);
    cowSnapListFree(&l);
    return rc;
}

/* The container API: the database ZSUBVOL of container ZPATH through the
 * registry (opened for the call if this process does not have it open). */
static int cowApiPath(const char *zPath, const char *zSubvol, enum cowApiOp eOp,
                      const char *zName, char **pzErr)
{
    cowInode *pLive = 0;
    cowInode *pInode = 0;
    int rc;

    if (pzErr)
        *pzErr = 0;
    if (zPath == 0 || zName == 0)
        return SQLITE_MISUSE;
    rc = cowvfsInodeAcquire(zPath, 0, 0, &pLive);
    if (rc != SQLITE_OK)
        return cowSnapRefuse(rc, pzErr, "cannot open %s: %s", zPath, sqlite3_errstr(rc));
    rc = cowvfsInodeAcquire(zPath, zSubvol, 0, &pInode);
    if (rc != SQLITE_OK) {
        int eKind;
        int crc = cow_subvol_kind(pLive->pStore, zSubvol, &eKind);
        if (crc == COW_OK || crc == COW_ENOENT || crc == COW_EINVAL)
            rc = cowSnapRefuse(SQLITE_ERROR, pzErr, "no snapshot or branch named %s", zSubvol);
        else
            rc = cowSnapError(pLive->pStore, crc, zSubvol, pzErr);
    } else
        rc = cowApiRun(pInode, 0, eOp, zName, pzErr);
    if (pInode)
        cowvfsInodeRelease(pInode, 0);
    cowvfsInodeRelease(pLive, 0);
    return rc;
}

int cowvfs_container_snapshot(const char *zPath, const char *zSource, const char *zName,
                              char **pzErrMsg)
{
    return cowApiPath(zPath, zSource, API_SNAPSHOT, zName, pzErrMsg);
}

int cowvfs_container_branch(const char *zPath, const char *zSource, const char *zName,
                            char **pzErrMsg)
{
    return cowApiPath(zPath, zSource, API_BRANCH, zName, pzErrMsg);
}

int cowvfs_container_restore(const char *zPath, const char *zTarget, const char *zName,
                             char **pzErrMsg)
{
    return cowApiPath(zPath, zTarget, API_RESTORE, zName, pzErrMsg);
}

int cowvfs_container_delete(const char *zPath, const char *zName, char **pzErrMsg)
{
    return cowApiPath(zPath, 0, API_DELETE, zName, pzErrMsg);
}

int cowvfs_container_list(const char *zPath, cowvfs_list_fn xCallback, void *pArg,
                          char **pzErrMsg)
{
    cowInode *pInode = 0;
    cowSnapList l;
    int rc;

    if (pzErrMsg)
        *pzErrMsg = 0;
    if (zPath == 0 || xCallback == 0)
        return SQLITE_MISUSE;
    memset(&l, 0, sizeof(l));
    rc = cowvfsInodeAcquire(zPath, 0, ACQ_READONLY, &pInode);
    if (rc != SQLITE_OK)
        return cowSnapRefuse(rc, pzErrMsg, "cannot open %s: %s", zPath, sqlite3_errstr(rc));
    rc = cowSnapListGet(pInode->pStore, &l, pzErrMsg);
    cowvfsInodeRelease(pInode, 0);
    if (rc == SQLITE_OK)
        rc = cowSnapListCall(&l, xCallback, pArg);
    cowSnapListFree(&l);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The cow_snapshots table-valued function
 *
 *   SELECT * FROM cow_snapshots;            the container of "main"
 *   SELECT * FROM cow_snapshots('aux');     that of schema "aux"
 *
 * One row per snapshot and branch, oldest first: name, kind ('snapshot' or
 * 'branch'), created (UTC, 'YYYY-MM-DD HH:MM:SS.SSS'), source (NULL for the
 * live database), exclusive_bytes, shared_bytes.  An eponymous-only virtual
 * table, read-only.
 */

#define SNAPCOL_SCHEMA 6

typedef struct cowSnapVtab {
    sqlite3_vtab base;
    sqlite3 *db;
} cowSnapVtab;

typedef struct cowSnapCursor {
    sqlite3_vtab_cursor base;
    cowSnapList l;
    int i;
} cowSnapCursor;

static int cowSnapConnect(sqlite3 *db, void *pAux, int argc, const char *const *argv,
                          sqlite3_vtab **ppVtab, char **pzErr)
{
    cowSnapVtab *v;
    int rc;

    (void)pAux;
    (void)argc;
    (void)argv;
    (void)pzErr;
    rc = sqlite3_declare_vtab(db, "CREATE TABLE x(name TEXT, kind TEXT, created TEXT, "
                                  "source TEXT, exclusive_bytes INTEGER, shared_bytes INTEGER, "
                                  "schema HIDDEN)");
    if (rc != SQLITE_OK)
        return rc;
    v = sqlite3_malloc(sizeof(*v));
    if (v == 0)
        return SQLITE_NOMEM;
    memset(v, 0, sizeof(*v));
    v->db = db;
    *ppVtab = &v->base;
    return SQLITE_OK;
}

static int cowSnapDisconnect(sqlite3_vtab *pVtab)
{
    sqlite3_free(pVtab);
    return SQLITE_OK;
}

/* Uses an equality constraint on the hidden schema column, if any. */
static int cowSnapBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo)
{
    int i;

    (void)pVtab;
    pInfo->idxNum = 0;
    for (i = 0; i < pInfo->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &pInfo->aConstraint[i];
        if (c->iColumn == SNAPCOL_SCHEMA && c->op == SQLITE_INDEX_CONSTRAINT_EQ) {
            if (!c->usable)
                return SQLITE_CONSTRAINT;
            pInfo->aConstraintUsage[i].argvIndex = 1;
            pInfo->aConstraintUsage[i].omit = 1;
            pInfo->idxNum = 1;
            break;
        }
    }
    pInfo->estimatedCost = 100;
    pInfo->estimatedRows = 10;
    return SQLITE_OK;
}

static int cowSnapOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor)
{
    cowSnapCursor *c = sqlite3_malloc(sizeof(*c));

    (void)pVtab;
    if (c == 0)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    *ppCursor = &c->base;
    return SQLITE_OK;
}

static int cowSnapClose(sqlite3_vtab_cursor *pCursor)
{
    cowSnapCursor *c = (cowSnapCursor *)pCursor;

    cowSnapListFree(&c->l);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int cowSnapFilter(sqlite3_vtab_cursor *pCursor, int idxNum, const char *idxStr, int argc,
                         sqlite3_value **argv)
{
    cowSnapCursor *c = (cowSnapCursor *)pCursor;
    cowSnapVtab *v = (cowSnapVtab *)pCursor->pVtab;
    const char *zSchema = "main";
    cowFile *p;
    char *zErr = 0;
    int rc;

    (void)idxStr;
    cowSnapListFree(&c->l);
    c->i = 0;
    if (idxNum == 1 && argc > 0 && sqlite3_value_type(argv[0]) != SQLITE_NULL)
        zSchema = (const char *)sqlite3_value_text(argv[0]);
    rc = cowApiFile(v->db, zSchema, &p, &zErr);
    if (rc == SQLITE_OK)
        rc = cowSnapListGet(p->pInode->pStore, &c->l, &zErr);
    if (rc != SQLITE_OK) {
        sqlite3_free(v->base.zErrMsg);
        v->base.zErrMsg = zErr;
        zErr = 0;
    }
    sqlite3_free(zErr);
    return rc;
}

static int cowSnapNext(sqlite3_vtab_cursor *pCursor)
{
    ((cowSnapCursor *)pCursor)->i++;
    return SQLITE_OK;
}

static int cowSnapEof(sqlite3_vtab_cursor *pCursor)
{
    cowSnapCursor *c = (cowSnapCursor *)pCursor;

    return c->i >= c->l.n;
}

static int cowSnapColumn(sqlite3_vtab_cursor *pCursor, sqlite3_context *ctx, int iCol)
{
    cowSnapCursor *c = (cowSnapCursor *)pCursor;
    const struct cow_subvol_info *si = &c->l.a[c->i];
    const struct cow_subvol_usage *u = &c->l.aUse[c->i];
    char zTime[32];
    time_t t;
    struct tm tm;

    switch (iCol) {
    case 0: sqlite3_result_text(ctx, si->name, -1, SQLITE_TRANSIENT); break;
    case 1:
        sqlite3_result_text(ctx, si->kind == COW_SUBVOL_SNAPSHOT ? "snapshot" : "branch", -1,
                            SQLITE_STATIC);
        break;
    case 2:
        t = (time_t)(si->ctime_ns / 1000000000ull);
        gmtime_r(&t, &tm);
        strftime(zTime, sizeof(zTime), "%Y-%m-%d %H:%M:%S", &tm);
        sqlite3_result_text(ctx,
                            sqlite3_mprintf("%s.%03u", zTime,
                                            (unsigned)(si->ctime_ns / 1000000 % 1000)),
                            -1, sqlite3_free);
        break;
    case 3:
        if (si->source[0])
            sqlite3_result_text(ctx, si->source, -1, SQLITE_TRANSIENT);
        else
            sqlite3_result_null(ctx);
        break;
    case 4: sqlite3_result_int64(ctx, (sqlite3_int64)u->exclusive_bytes); break;
    case 5: sqlite3_result_int64(ctx, (sqlite3_int64)u->shared_bytes); break;
    default: sqlite3_result_null(ctx); break;
    }
    return SQLITE_OK;
}

static int cowSnapRowid(sqlite3_vtab_cursor *pCursor, sqlite3_int64 *pRowid)
{
    cowSnapCursor *c = (cowSnapCursor *)pCursor;

    *pRowid = (sqlite3_int64)c->l.a[c->i].id;
    return SQLITE_OK;
}

static const sqlite3_module cowSnapModule = {
    .iVersion = 0,
    .xCreate = 0, /* eponymous-only */
    .xConnect = cowSnapConnect,
    .xBestIndex = cowSnapBestIndex,
    .xDisconnect = cowSnapDisconnect,
    .xOpen = cowSnapOpen,
    .xClose = cowSnapClose,
    .xFilter = cowSnapFilter,
    .xNext = cowSnapNext,
    .xEof = cowSnapEof,
    .xColumn = cowSnapColumn,
    .xRowid = cowSnapRowid,
};

/* Registers the cow_snapshots table-valued function on DB. */
int cowvfsSnapRegister(sqlite3 *db)
{
    return sqlite3_create_module(db, "cow_snapshots", &cowSnapModule, 0);
}

/* The auto-extension (sqlite3_auto_extension) that registers cow_snapshots
 * on every new connection. */
int cowvfsAutoExtension(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
    (void)pzErrMsg;
    (void)pApi;
    return cowvfsSnapRegister(db);
}
