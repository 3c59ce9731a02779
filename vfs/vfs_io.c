/*
 * vfs_io.c - the sqlite3_io_methods of files that live in a container: the
 * main database, its journal, WAL and super-journals.
 *
 * I/O goes straight to the store (cow_file_read/write/truncate/sync/size);
 * the store serialises on its own lock and makes every write visible to
 * every handle at once, so the connections of this process see each other's
 * writes exactly as they would through one file system.
 *
 * LOCKING.  SQLite's file locks order the connections of this process in
 * memory and those of other processes through OFD locks on the database's
 * bytes of the container (vfs_lock.c, store/lockspace.h: PENDING, RESERVED
 * and SHARED at cowInode.iLockBase), exactly as unixLock() and
 * posixUnlock() combine a unixInodeInfo with POSIX locks on a database
 * file.  In memory, per database, cowInode {nShared, pOwner, eLock},
 * protected by cowInode.mutex:
 *
 *   SHARED     refused (SQLITE_BUSY) while another file of the process
 *              holds PENDING or EXCLUSIVE; otherwise nShared is counted up.
 *              The first SHARED of the process read-locks PENDING (refused
 *              while another process holds it: a writer waits for readers
 *              to drain), read-locks SHARED and drops PENDING.
 *   RESERVED   needs SHARED; refused while another file holds RESERVED or
 *              more (there is one pOwner); write-locks RESERVED (refused
 *              while another process holds it).
 *   EXCLUSIVE  needs SHARED; refused while another file holds RESERVED or
 *              more; write-locks PENDING and records it (new SHARED locks,
 *              here and in other processes, are refused from then on), then
 *              write-locks SHARED once this file is the only SHARED holder
 *              of the process (refused while other processes read).  On
 *              SQLITE_BUSY the file is left at PENDING, as unixLock() leaves
 *              it, so that readers drain and a retry succeeds.
 *   PENDING    is never requested by SQLite; asking for it is SQLITE_MISUSE.
 *   xUnlock    to SHARED drops pOwner (SHARED back to a read lock, PENDING
 *              and RESERVED unlocked); to NONE also the SHARED count, and
 *              the last SHARED of the process unlocks the three bytes.
 *   xCheckReservedLock  true while any file of the process holds RESERVED
 *              or more, or another process holds RESERVED (F_OFD_GETLK).
 *
 * STORE COHERENCE.  Another process may change the container; the store
 * catches up (cowvfsStoreRefresh) when a connection takes SHARED from NONE,
 * and, in WAL mode, at the first read after a connection takes a read-mark
 * slot or its first slot (vfs_shm.c; cowvfsStoreCatchUp), and makes this
 * process's changes visible to others (cowvfsStorePublish) at the end of
 * every write transaction (cowvfsCommitTxn) and when a checkpoint has
 * copied frames into the database (SQLITE_FCNTL_CKPT_DONE, before it
 * raises nBackfill); at xShmBarrier it announces them (a refresh then
 * waits for that publication) (docs/DESIGN.md, "Publishing and
 * refreshing").
 *
 * COMMITS.  The store makes writes durable only when it commits or logs
 * them; until then they live in the process.  xSync makes the file's
 * changes durable (cow_file_sync: a log record and one flush, or a full
 * commit; the database's xSync also every other file's, see cowSync), but
 * SQLite's commit point is not always followed by an xSync:
 * in DELETE mode it is the deletion of the journal, in TRUNCATE mode
 * (synchronous=NORMAL) its truncation, and with synchronous=OFF, or in WAL
 * mode with NORMAL, nothing is synced at all.  On unix those transactions
 * survive an application crash (the kernel has the writes); here they
 * would be lost.  So the end of every write transaction persists the store
 * (cowvfsCommitTxn): a rollback-journal transaction ends when the database
 * file drops its RESERVED-or-higher lock, a WAL transaction when the
 * connection releases the WAL write lock (vfs_shm.c).  cow_store_persist
 * does not flush: it appends a log record, or commits without flush when
 * the log cannot express the changes.  An application crash needs only the
 * kernel to have the writes, and a power loss goes back to the last flushed
 * commit or log record, which is what synchronous=OFF and NORMAL allow.
 * Extra commits or log records never hurt consistency: each holds a prefix
 * of the write history.  Not covered: locking_mode=EXCLUSIVE below
 * synchronous=FULL (SQLite keeps the lock, and in WAL mode takes no WAL
 * locks, so only xSync persists).
 */
#include "sqlite_api.h"

#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "cowvfs.h"
#include "lockspace.h"
#include "vfs_int.h"

/* The sector size reported: the store's block size. */
#define COWVFS_SECTOR_SIZE 4096

/* The store's commits so far. */
static sqlite3_uint64 cowCommitCount(cow_store *pStore)
{
    struct cow_stats st;

    cow_store_stats(pStore, &st);
    return st.commits;
}

/* Logs and maps a store error COWRC of operation ZOP on P at offset IOFF. */
static int cowIoError(cowFile *p, int cowrc, const char *zOp, sqlite3_int64 iOff)
{
    return cowvfsError(p->pInode->pStore, cowrc, COWVFS_OP_IO, zOp, p->zPath, iOff);
}

/*
 * Persists P's store at the end of a write transaction (cow_store_persist,
 * see COMMITS above).  Nothing to do for a read-only store.  Returns
 * SQLITE_OK or the mapped, logged error (after which the store has failed:
 * SQLite sees I/O errors until the container is reopened, never stale
 * data).  Called with no VFS lock held.
 */
int cowvfsCommitTxn(cowFile *p)
{
    int rc = SQLITE_OK;
    int crc;

    if (p->pInode->bReadonly)
        goto out;
    crc = cow_store_persist(p->pInode->pStore);
    if (crc != COW_OK) {
        rc = cowIoError(p, crc, "persist at the end of a transaction", 0);
        goto out;
    }
    rc = cowvfsStorePublish(p);
out:
    return rc;
}

/*
 * Brings PINODE's store up to what other processes have published, before
 * a connection reads: called when a connection takes SHARED from NONE
 * (xLock) and, in WAL mode, by cowvfsStoreCatchUp, with no VFS lock held.
 * Returns SQLITE_OK or the mapped, logged error (the caller then gives the
 * lock back, or fails the read).
 *
 * cow_store_refresh (store.h): when another process published since this
 * one's last load, rereads the superblock, roots and remap table, rebinds
 * the open files that changed and drops their cached pages; a no-op for
 * the owner and for a process alone.
 */
int cowvfsStoreRefresh(cowInode *pInode)
{
    int crc = cow_store_refresh(pInode->pStore);
    if (crc == COW_OK)
        return SQLITE_OK;
    return cowvfsError(pInode->pStore, crc, COWVFS_OP_IO, "refresh", pInode->pCont->zPath, 0);
}

void cowvfsStoreStale(cowContainer *pCont)
{
    __atomic_add_fetch(&pCont->staleSeq, 1, __ATOMIC_SEQ_CST);
}

int cowvfsStoreCatchUp(cowInode *pInode)
{
    cowContainer *pCont = pInode->pCont;
    sqlite3_uint64 stale = __atomic_load_n(&pCont->staleSeq, __ATOMIC_SEQ_CST);
    sqlite3_uint64 fresh = __atomic_load_n(&pCont->freshSeq, __ATOMIC_SEQ_CST);
    int rc;

    if (fresh >= stale)
        return SQLITE_OK;
    rc = cowvfsStoreRefresh(pInode);
    if (rc != SQLITE_OK)
        return rc;
    /* every lock counted up to STALE is served: raise freshSeq to it
     * (never lower it: a later refresh may have raised it further) */
    while (fresh < stale &&
           !__atomic_compare_exchange_n(&pCont->freshSeq, &fresh, stale, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
        ;
    return SQLITE_OK;
}

/* Adds DELTA (+1 or -1) to *PN unless that takes it from or to 0; 1 if
 * it did.  Only the count's moves between 0 and 1 need pCont->mutex. */
static int readCountStep(int *pN, int delta)
{
    int n = __atomic_load_n(pN, __ATOMIC_RELAXED);
    while (n > 0 && n + delta > 0)
        if (__atomic_compare_exchange_n(pN, &n, n + delta, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return 1;
    return 0;
}

void cowvfsReadBegin(cowContainer *pCont)
{
    if (readCountStep(&pCont->nReading, 1))
        return; /* another connection reads: the process stays pinned */
    cowvfsMutexEnter(&pCont->mutex);
    __atomic_add_fetch(&pCont->nReading, 1, __ATOMIC_ACQ_REL);
    cowvfsMutexLeave(&pCont->mutex);
}

void cowvfsReadEnd(cowContainer *pCont)
{
    if (readCountStep(&pCont->nReading, -1))
        return; /* not the last one */
    cowvfsMutexEnter(&pCont->mutex);
    assert(__atomic_load_n(&pCont->nReading, __ATOMIC_RELAXED) > 0);
    /* the last one, unless a connection began meanwhile (without the
     * mutex: the count was above 0); from 1 to 0 only under the mutex,
     * so a connection that finds 0 waits here for the unpin and refreshes
     * after it */
    if (__atomic_sub_fetch(&pCont->nReading, 1, __ATOMIC_ACQ_REL) == 0)
        cow_store_unpin(pCont->pStore);
    cowvfsMutexLeave(&pCont->mutex);
}

/*
 * Makes the changes of P's store readable by other processes
 * (cow_store_publish: writes back, commits without flush, bumps the shared
 * sequence number; a no-op while no other process has the container open
 * or when this one does not own it): called at the end of every write
 * transaction (cowvfsCommitTxn, after the persist) and at xShmBarrier, with
 * no VFS lock held.  Nothing for a read-only store.  Returns SQLITE_OK or
 * the mapped, logged error of the commit.
 */
int cowvfsStorePublish(cowFile *p)
{
    int crc;

    if (p->pInode->bReadonly)
        return SQLITE_OK;
    crc = cow_store_publish(p->pInode->pStore);
    if (crc == COW_OK)
        return SQLITE_OK;
    return cowIoError(p, crc, "publish", 0);
}

/* Logs and returns RC for an error the VFS found itself (no store message). */
static int cowIoRefuse(cowFile *p, int rc, const char *zOp, sqlite3_int64 iOff, const char *zWhy)
{
    sqlite3_log(rc, "cow: %s %s at offset %lld: %s", zOp, p->zPath, (long long)iOff, zWhy);
    return rc;
}

/*
 * Releases P's lock down to ELOCK (SHARED_LOCK or NO_LOCK), in memory and
 * in the process-level locks (posixUnlock).  Dropping RESERVED or more ends
 * a write transaction: the store is committed first (cowvfsCommitTxn); the
 * lock is released even if that fails, and its error is returned.
 * Otherwise SQLITE_OK; SQLITE_IOERR_RDLOCK or SQLITE_IOERR_UNLOCK (logged)
 * if the lock descriptor refuses (the in-memory state is released anyway);
 * SQLITE_MISUSE (logged) for another ELOCK.  Takes pInode->mutex (not
 * across the commit).
 */
static int cowUnlock(sqlite3_file *pFile, int eFileLock)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    int fd = pInode->pCont->fdLock;
    int rc = SQLITE_OK;
    int rc2;

    if (eFileLock != SHARED_LOCK && eFileLock != NO_LOCK) {
        rc = cowIoRefuse(p, SQLITE_MISUSE, "unlock", 0, "bad lock level");
        goto out;
    }
    /* Only this connection changes p->eFileLock, so it can be read here. */
    if (p->eFileLock > SHARED_LOCK)
        rc = cowvfsCommitTxn(p);
    cowvfsMutexEnter(&pInode->mutex);
    if (p->eFileLock > SHARED_LOCK) {
        assert(pInode->pOwner == p);
        rc2 = SQLITE_OK;
        if (eFileLock == SHARED_LOCK && p->eFileLock == EXCLUSIVE_LOCK)
            rc2 = cowvfsLockSet(fd, pInode->iLockBase + COW_LOCK_SHARED, 1, F_RDLCK,
                                SQLITE_IOERR_RDLOCK);
        if (rc2 == SQLITE_OK) /* PENDING and RESERVED, adjacent */
            rc2 = cowvfsLockSet(fd, pInode->iLockBase + COW_LOCK_PENDING, 2, F_UNLCK,
                                SQLITE_IOERR_UNLOCK);
        if (rc == SQLITE_OK)
            rc = rc2;
        pInode->pOwner = 0;
        p->eFileLock = SHARED_LOCK;
    }
    if (eFileLock == NO_LOCK && p->eFileLock == SHARED_LOCK) {
        assert(pInode->nShared > 0);
        pInode->nShared--;
        p->eFileLock = NO_LOCK;
        if (pInode->nShared == 0) {
            /* PENDING, RESERVED and SHARED; not the whole file, as
             * posixUnlock does: the descriptor also holds the WAL-index
             * locks and the other databases' */
            rc2 = cowvfsLockSet(fd, pInode->iLockBase + COW_LOCK_PENDING, 3, F_UNLCK,
                                SQLITE_IOERR_UNLOCK);
            if (rc == SQLITE_OK)
                rc = rc2;
        }
    }
    pInode->eLock = pInode->pOwner    ? pInode->pOwner->eFileLock
                    : pInode->nShared ? SHARED_LOCK
                                      : NO_LOCK;
    cowvfsMutexLeave(&pInode->mutex);
    if (p->eFileLock == NO_LOCK && p->bReadPin) {
        p->bReadPin = 0;
        cowvfsReadEnd(pInode->pCont);
    }
out:
    return rc;
}

/*
 * The first SHARED lock of the process on PINODE's database: a read lock
 * on PENDING (refused while another process holds it write-locked), a read
 * lock on SHARED, and PENDING dropped again, as unixLock() takes SHARED.
 * Returns SQLITE_OK, SQLITE_BUSY, or an error of cowvfsLockSet (logged).
 * Caller holds pInode->mutex.
 */
static int cowLockSharedFirst(cowInode *pInode)
{
    int fd = pInode->pCont->fdLock;
    sqlite3_uint64 iBase = pInode->iLockBase;
    int rc;
    int rc2;

    rc = cowvfsLockSet(fd, iBase + COW_LOCK_PENDING, 1, F_RDLCK, SQLITE_IOERR_LOCK);
    if (rc != SQLITE_OK)
        return rc;
    rc = cowvfsLockSet(fd, iBase + COW_LOCK_SHARED, 1, F_RDLCK, SQLITE_IOERR_LOCK);
    rc2 = cowvfsLockSet(fd, iBase + COW_LOCK_PENDING, 1, F_UNLCK, SQLITE_IOERR_UNLOCK);
    if (rc == SQLITE_OK && rc2 != SQLITE_OK) {
        cowvfsLockSet(fd, iBase + COW_LOCK_SHARED, 1, F_UNLCK, SQLITE_IOERR_UNLOCK);
        rc = rc2;
    }
    return rc;
}

/*
 * Raises P's lock to ELOCK (SHARED_LOCK, RESERVED_LOCK or EXCLUSIVE_LOCK)
 * following the state machine at the top of this file.  A connection that
 * takes SHARED from NONE then refreshes the store (cowvfsStoreRefresh; if
 * that fails, the lock is given back and its error returned).  Returns
 * SQLITE_OK; SQLITE_BUSY if a lock of another connection, of this process
 * or another, conflicts; SQLITE_PERM or SQLITE_IOERR_LOCK (logged) if the
 * lock descriptor fails otherwise; SQLITE_MISUSE (logged) for a request
 * SQLite never makes (PENDING, or more than SHARED without holding SHARED).
 * Takes pInode->mutex.
 */
static int cowLock(sqlite3_file *pFile, int eFileLock)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    int fd = pInode->pCont->fdLock;
    int rc = SQLITE_OK;
    int bRefresh = 0;

    cowvfsMutexEnter(&pInode->mutex);
    if (p->eFileLock >= eFileLock)
        goto out;
    if ((eFileLock != SHARED_LOCK && eFileLock != RESERVED_LOCK &&
         eFileLock != EXCLUSIVE_LOCK) ||
        (eFileLock > SHARED_LOCK && p->eFileLock == NO_LOCK)) {
        rc = SQLITE_MISUSE;
        goto out;
    }

    /* Another file holds more than SHARED: no new lock of any kind once it
     * holds PENDING or more, and nothing above SHARED while it holds
     * RESERVED. */
    if (pInode->pOwner && pInode->pOwner != p &&
        (pInode->eLock >= PENDING_LOCK || eFileLock > SHARED_LOCK)) {
        rc = SQLITE_BUSY;
        goto out;
    }

    if (eFileLock == SHARED_LOCK) {
        if (pInode->nShared == 0) {
            rc = cowLockSharedFirst(pInode);
            if (rc != SQLITE_OK)
                goto out;
        }
        pInode->nShared++;
        p->eFileLock = SHARED_LOCK;
        if (pInode->eLock < SHARED_LOCK)
            pInode->eLock = SHARED_LOCK;
        bRefresh = 1;
        goto out;
    }

    /* RESERVED or EXCLUSIVE: P holds SHARED or more and no other file of
     * the process holds more than SHARED. */
    if (eFileLock == RESERVED_LOCK) {
        rc = cowvfsLockSet(fd, pInode->iLockBase + COW_LOCK_RESERVED, 1, F_WRLCK,
                           SQLITE_IOERR_LOCK);
        if (rc != SQLITE_OK)
            goto out;
        pInode->pOwner = p;
        p->eFileLock = pInode->eLock = RESERVED_LOCK;
        goto out;
    }
    if (pInode->nSnapWait > 0) {
        /* a snapshot waits for a commit in progress: no new one starts
         * until it is taken (the caller's busy handler retries) */
        rc = SQLITE_BUSY;
        goto out;
    }
    if (p->eFileLock < PENDING_LOCK) {
        rc = cowvfsLockSet(fd, pInode->iLockBase + COW_LOCK_PENDING, 1, F_WRLCK,
                           SQLITE_IOERR_LOCK);
        if (rc != SQLITE_OK)
            goto out;
        pInode->pOwner = p;
        p->eFileLock = pInode->eLock = PENDING_LOCK;
    }
    if (pInode->nShared > 1) {
        rc = SQLITE_BUSY; /* readers of this process remain; stay at PENDING */
        goto out;
    }
    rc = cowvfsLockSet(fd, pInode->iLockBase + COW_LOCK_SHARED, 1, F_WRLCK, SQLITE_IOERR_LOCK);
    if (rc != SQLITE_OK)
        goto out; /* readers of other processes remain; stay at PENDING */
    p->eFileLock = pInode->eLock = EXCLUSIVE_LOCK;
out:
    cowvfsMutexLeave(&pInode->mutex);
    if (rc == SQLITE_MISUSE)
        cowIoRefuse(p, rc, "lock", 0, "bad lock request");
    if (bRefresh) {
        if (!p->pShm) { /* WAL mode: the WAL-index locks count */
            p->bReadPin = 1;
            cowvfsReadBegin(pInode->pCont);
        }
        rc = cowvfsStoreRefresh(pInode);
        if (rc != SQLITE_OK)
            cowUnlock(pFile, NO_LOCK);
    }
    return rc;
}

/*
 * Sets *PRESOUT to 1 if any file of the process holds RESERVED or more on
 * P's database, or another process holds RESERVED (unixCheckReservedLock),
 * else 0.  Returns SQLITE_OK, or SQLITE_IOERR_CHECKRESERVEDLOCK (logged) if
 * the lock descriptor cannot be asked.
 */
static int cowCheckReservedLock(sqlite3_file *pFile, int *pResOut)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    int rc = SQLITE_OK;
    int eType = F_UNLCK;

    cowvfsMutexEnter(&pInode->mutex);
    *pResOut = pInode->eLock > SHARED_LOCK;
    if (!*pResOut) {
        rc = cowvfsLockHolder(pInode->pCont->fdLock, pInode->iLockBase + COW_LOCK_RESERVED, 1,
                              &eType, SQLITE_IOERR_CHECKRESERVEDLOCK);
        *pResOut = rc == SQLITE_OK && eType != F_UNLCK;
    }
    cowvfsMutexLeave(&pInode->mutex);
    return rc;
}

/*
 * Closes P: drops its lock and WAL-index, removes the store file if it was
 * opened SQLITE_OPEN_DELETEONCLOSE (a main database: the container too,
 * once its last file closes), closes the store file and drops the
 * container reference (the last one closes the store, which commits).
 * Returns SQLITE_OK or the logged error of the removal.
 */
static int cowClose(sqlite3_file *pFile)
{
    cowFile *p = (cowFile *)pFile;
    int rc = SQLITE_OK;
    int crc;

    if (p->pInode == 0)
        goto out;
    cowUnlock(pFile, NO_LOCK);
    if (p->eType == SQLITE_OPEN_MAIN_DB) {
        cowFile **pp;
        cowvfsMutexEnter(&p->pInode->mutex);
        for (pp = &p->pInode->pFiles; *pp; pp = &(*pp)->pNextDb)
            if (*pp == p) {
                *pp = p->pNextDb;
                break;
            }
        cowvfsMutexLeave(&p->pInode->mutex);
    }
    if (p->pShm)
        cowvfsShmUnmap(pFile, 0);
    if ((p->ctrlFlags & COWFILE_DELETE) && p->pCf) {
        crc = cow_unlink(p->pInode->pStore, p->zName);
        if (crc != COW_OK && crc != COW_ENOENT)
            rc = cowvfsError(p->pInode->pStore, crc, COWVFS_OP_DELETE, "delete on close",
                             p->zPath, 0);
    }
    if (p->ctrlFlags & COWFILE_INPLACE)
        __atomic_sub_fetch(&p->pInode->nInPlaceWal, 1, __ATOMIC_RELEASE);
    if (p->pCf)
        cow_file_close(p->pCf);
    cowvfsInodeRelease(p->pInode,
                       (p->ctrlFlags & COWFILE_DELETE) && p->eType == SQLITE_OPEN_MAIN_DB);
    sqlite3_free(p->zName);
    sqlite3_free(p->zPath);
    memset(p, 0, sizeof(*p));
out:
    return rc;
}

/*
 * Reads IAMT bytes at IOFST.  Past the end of the file the buffer is
 * zero-filled and SQLITE_IOERR_SHORT_READ returned (not logged: SQLite
 * expects it, e.g. for page 1 of a new database).  Errors (logged):
 * SQLITE_IOERR_READ, SQLITE_IOERR_DATA (checksum mismatch),
 * SQLITE_IOERR_CORRUPTFS, SQLITE_IOERR_NOMEM, SQLITE_IOERR.
 */
static int cowRead(sqlite3_file *pFile, void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    cowFile *p = (cowFile *)pFile;
    int rc = SQLITE_OK;
    int crc;
    size_t nRead = 0;

    if (iAmt < 0 || iOfst < 0) {
        rc = cowIoRefuse(p, SQLITE_IOERR_READ, "read", iOfst, "negative offset or length");
        goto out;
    }
    rc = cowvfsStoreCatchUp(p->pInode);
    if (rc != SQLITE_OK)
        goto out;
    if (p->pCf) {
        crc = cow_file_read(p->pCf, zBuf, (size_t)iAmt, (uint64_t)iOfst, &nRead);
        if (crc != COW_OK) {
            rc = cowIoError(p, crc, "read", iOfst);
            goto out;
        }
    }
    if (nRead < (size_t)iAmt) {
        memset((char *)zBuf + nRead, 0, (size_t)iAmt - nRead);
        rc = SQLITE_IOERR_SHORT_READ;
    }
out:
    return rc;
}

/*
 * A nodatacow WAL grows in chunks (cowWalGrow): by its size, at least
 * COWVFS_WAL_GROW_MIN and at most COWVFS_WAL_GROW_MAX bytes a step
 * (docs/DESIGN.md, "Nodatacow WAL": geometric so that a small database's
 * WAL stays small, bounded so that a step's zeros cost little); at most
 * COWVFS_WAL_GROW_MAX_SHARED while other processes have the container
 * open, where a step also costs the writer the ownership and each of the
 * others a reload, and where readers keep SQLite from restarting the WAL,
 * so that it grows as far as unix's (70 MiB in bench conc's proc 8 NORMAL).
 */
#define COWVFS_WAL_GROW_MIN (64 * 1024)
#define COWVFS_WAL_GROW_MAX (256 * 1024)
#define COWVFS_WAL_GROW_MAX_SHARED (4096 * 1024)

/*
 * Before a write that ends at byte IEND of P's nodatacow WAL: when IEND is
 * past the file's size, grows the file (cow_file_grow: written zeros,
 * committed and flushed once) to max(size + step, IEND) rounded up to 4
 * KiB, the step being the size bounded by COWVFS_WAL_GROW_MIN and _MAX
 * (_MAX_SHARED while other processes have the container open).
 * Nothing when the file is no longer nodatacow (a restore rebound it).
 * The frames written there from then on overwrite old extents in place:
 * no commit, no publication per transaction in the WAL's first cycle,
 * only one per chunk.  SQLite reads a WAL past its last valid frame and
 * stops at the first frame that does not check (wal.c walIndexRecover),
 * as with the unix VFS's chunks (os_unix.c fcntlSizeHint).  Errors as
 * xWrite's (logged).
 */
static int cowWalGrow(cowFile *p, sqlite3_int64 iEnd)
{
    uint64_t size = 0, step, end;
    int yes = 0;
    unsigned seq = __atomic_load_n(&p->pInode->pCont->truncSeq, __ATOMIC_ACQUIRE);
    int crc;

    /* inside what this handle saw or grew, with no truncate since in this
     * process: nothing to do, without the store's lock (a WAL truncated
     * by another process meanwhile grows through the page cache up to
     * there, as any file: only its chunking is missed) */
    if (iEnd <= p->iGrown && seq == p->iGrownSeq)
        return SQLITE_OK;
    crc = cow_file_size(p->pCf, &size);

    /* a restore rebinds the handle to the WAL of the restored tree, which
     * may be a file without the flag: that one grows as any other */
    if (crc == COW_OK && (uint64_t)iEnd > size)
        crc = cow_file_nodatacow(p->pCf, &yes);
    if (crc == COW_OK && yes && (uint64_t)iEnd > size) {
        uint64_t max = cow_store_processes(p->pInode->pStore) > 1 ? COWVFS_WAL_GROW_MAX_SHARED
                                                                  : COWVFS_WAL_GROW_MAX;
        step = size < COWVFS_WAL_GROW_MIN ? COWVFS_WAL_GROW_MIN : size > max ? max : size;
        end = size + step > (uint64_t)iEnd ? size + step : (uint64_t)iEnd;
        end = (end + COWVFS_SECTOR_SIZE - 1) / COWVFS_SECTOR_SIZE * COWVFS_SECTOR_SIZE;
        crc = cow_file_grow(p->pCf, end);
        if (crc == COW_OK)
            size = end;
    }
    if (crc == COW_OK && yes && size <= INT64_MAX) {
        p->iGrown = (sqlite3_int64)size;
        p->iGrownSeq = seq;
    }
    return crc == COW_OK ? SQLITE_OK : cowIoError(p, crc, "write (growing the WAL)", iEnd);
}

/*
 * Writes IAMT bytes at IOFST (the file grows as needed; a nodatacow WAL in
 * chunks, cowWalGrow).  The data goes to new space in the container (or
 * over a nodatacow WAL's old blocks) and is durable at the next commit
 * (xSync).
 * Errors (logged): SQLITE_READONLY (opened read-only), SQLITE_FULL,
 * SQLITE_IOERR_WRITE, SQLITE_IOERR_NOMEM, SQLITE_IOERR_CORRUPTFS,
 * SQLITE_IOERR.
 */
static int cowWrite(sqlite3_file *pFile, const void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    cowFile *p = (cowFile *)pFile;
    int rc = SQLITE_OK;
    int crc;

    if (iAmt < 0 || iOfst < 0) {
        rc = cowIoRefuse(p, SQLITE_IOERR_WRITE, "write", iOfst, "negative offset or length");
        goto out;
    }
    if ((p->ctrlFlags & COWFILE_READONLY) || p->pCf == 0) {
        rc = cowIoRefuse(p, SQLITE_READONLY, "write", iOfst, "opened read-only");
        goto out;
    }
    /* a super-journal record is mirrored before the journal holds it;
     * a new or zeroed header may end it (vfs_mirror.c) */
    if (p->eType == SQLITE_OPEN_MAIN_JOURNAL) {
        rc = cowvfsMirrorBeforeWrite(p, zBuf, iAmt, iOfst);
        if (rc != SQLITE_OK)
            goto out;
    }
    if ((p->ctrlFlags & COWFILE_INPLACE) && iOfst <= INT64_MAX - iAmt) {
        rc = cowWalGrow(p, iOfst + iAmt);
        if (rc != SQLITE_OK)
            goto out;
    }
    crc = cow_file_write(p->pCf, zBuf, (size_t)iAmt, (uint64_t)iOfst);
    if (crc != COW_OK)
        rc = cowIoError(p, crc, "write", iOfst);
    else if (p->eType == SQLITE_OPEN_MAIN_JOURNAL)
        rc = cowvfsMirrorAfterChange(p, iOfst);
out:
    return rc;
}

/*
 * Preallocates P's file up to SIZE bytes rounded up to its chunk size
 * (cow_file_preallocate: extents that read as zeros and are written in
 * place, the size unchanged).  Errors (logged): SQLITE_FULL,
 * SQLITE_IOERR_WRITE, SQLITE_IOERR_NOMEM, SQLITE_IOERR.
 */
static int cowPreallocate(cowFile *p, sqlite3_int64 size)
{
    int crc;

    if ((p->ctrlFlags & COWFILE_READONLY) || p->pCf == 0 || size <= 0)
        return SQLITE_OK;
    if (p->szChunk > 0)
        size = (size + p->szChunk - 1) / p->szChunk * p->szChunk;
    crc = cow_file_preallocate(p->pCf, (uint64_t)size);
    return crc == COW_OK ? SQLITE_OK : cowIoError(p, crc, "preallocate", size);
}

/* Sets the file's size to SIZE bytes.  Errors (logged): SQLITE_READONLY,
 * SQLITE_IOERR_TRUNCATE, SQLITE_FULL, SQLITE_IOERR_NOMEM, SQLITE_IOERR. */
static int cowTruncate(sqlite3_file *pFile, sqlite3_int64 size)
{
    cowFile *p = (cowFile *)pFile;
    int rc = SQLITE_OK;
    int crc;

    if (size < 0) {
        rc = cowIoRefuse(p, SQLITE_IOERR_TRUNCATE, "truncate", size, "negative size");
        goto out;
    }
    if ((p->ctrlFlags & COWFILE_READONLY) || p->pCf == 0) {
        rc = cowIoRefuse(p, SQLITE_READONLY, "truncate", size, "opened read-only");
        goto out;
    }
    crc = cow_file_truncate(p->pCf, (uint64_t)size);
    /* after (failed or not): a WAL's next write looks at its size again,
     * in every handle of the process (cowWalGrow) */
    __atomic_add_fetch(&p->pInode->pCont->truncSeq, 1, __ATOMIC_ACQ_REL);
    if (crc != COW_OK) {
        rc = cowIoError(p, crc, "truncate", size);
        goto out;
    }
    if (p->szChunk > 0)
        rc = cowPreallocate(p, size); /* keeps its chunk allocated, as unix does */
    if (rc == SQLITE_OK && p->eType == SQLITE_OPEN_MAIN_JOURNAL)
        rc = cowvfsMirrorAfterChange(p, -1); /* its record may be gone */
out:
    return rc;
}

/*
 * Makes the file's writes durable.  A WAL, journal or super-journal:
 * cow_file_sync, a log record of that file's changes and one flush, or,
 * when the log cannot express them, a flushed commit of the container.
 *
 * The main database: every write made so far to any file of the container
 * becomes durable, in one flush: cow_store_persist (one log record of every
 * file with unlogged changes, or a commit without flush when the log cannot
 * express them), then cow_file_sync, which finds the database logged and
 * only flushes (after a commit, cow_store_commit, which flushes it and
 * frees what the commit before it kept pinned).  This is what lets the
 * database claim SQLITE_IOCAP_SEQUENTIAL (see cowDeviceCharacteristics):
 * SQLite then never syncs the rollback journal, and relies on the journal
 * being durable no later than the pages written after it.  A record of the
 * database file alone would make the pages durable without the journal's
 * latest writes, in TRUNCATE and PERSIST mode (the journal exists, so the
 * log can express the change) and in DELETE mode after a commit made
 * during the transaction (a snapshot, the background commit): a crash then
 * keeps the transaction, where SQLite expects a hot journal that names the
 * super-journal of a multi-database commit and rolls the transaction back
 * while that super-journal exists (issue 12; seq suite, crash simulator
 * attach workloads).
 *
 * Errors (logged): SQLITE_IOERR_FSYNC, SQLITE_IOERR_WRITE, SQLITE_FULL,
 * SQLITE_IOERR_NOMEM, SQLITE_IOERR (the store failed earlier).
 */
static int cowSync(sqlite3_file *pFile, int flags)
{
    cowFile *p = (cowFile *)pFile;
    int rc = SQLITE_OK;
    int crc = COW_OK;

    (void)flags;
    if ((p->ctrlFlags & COWFILE_READONLY) || p->pCf == 0)
        goto out;
    if (p->eType == SQLITE_OPEN_MAIN_DB) {
        cow_store *pStore = p->pInode->pStore;
        sqlite3_uint64 nCommit = cowCommitCount(pStore);
        crc = cow_store_persist(pStore);
        /* A commit (the log could not express a change, such as a journal
         * created in this transaction) is made durable as a commit, which
         * also frees the space the previous commit kept pinned; a log
         * record by a flush (cow_file_sync finds the database logged). */
        if (crc == COW_OK && cowCommitCount(pStore) != nCommit) {
            crc = cow_store_commit(pStore);
            goto done;
        }
    }
    if (crc == COW_OK)
        crc = cow_file_sync(p->pCf);
done:
    if (crc != COW_OK)
        rc = cowIoError(p, crc, "sync", 0);
out:
    return rc;
}

/* Sets *PSIZE to the file's size in bytes.  Errors (logged):
 * SQLITE_IOERR_FSTAT, SQLITE_IOERR_CORRUPTFS, SQLITE_IOERR. */
static int cowFileSize(sqlite3_file *pFile, sqlite3_int64 *pSize)
{
    cowFile *p = (cowFile *)pFile;
    int rc = SQLITE_OK;
    int crc;
    uint64_t size = 0;

    *pSize = 0;
    if (p->pCf == 0)
        goto out;
    rc = cowvfsStoreCatchUp(p->pInode);
    if (rc != SQLITE_OK)
        goto out;
    crc = cow_file_size(p->pCf, &size);
    if (crc != COW_OK) {
        rc = cowIoError(p, crc, "size", 0);
        goto out;
    }
    if (size > (uint64_t)INT64_MAX) {
        rc = cowIoRefuse(p, SQLITE_IOERR_FSTAT, "size", 0, "size out of range");
        goto out;
    }
    *pSize = (sqlite3_int64)size;
out:
    return rc;
}

/* Gets (*PARG < 0) or sets (*PARG 0 or 1) the ctrlFlags bit MASK, as
 * unixModeBit does for SQLITE_FCNTL_PERSIST_WAL and _POWERSAFE_OVERWRITE. */
static void cowModeBit(cowFile *p, int mask, int *pArg)
{
    if (*pArg < 0)
        *pArg = (p->ctrlFlags & mask) != 0;
    else if (*pArg == 0)
        p->ctrlFlags &= ~mask;
    else
        p->ctrlFlags |= mask;
}

/* 1 if the container path no longer names the file that was opened. */
static int cowHasMoved(cowFile *p)
{
    struct stat st;

    cowContainer *pCont = p->pInode->pCont;

    return stat(pCont->zPath, &st) != 0 || st.st_dev != pCont->dev || st.st_ino != pCont->ino;
}

/*
 * Sets the interval of PINODE's background commits to MS milliseconds
 * (cow_store_set_commit_interval; 0 turns them off) and records it in
 * PINODE->commitIntervalMs, which PRAGMA cow_commit_interval reads back.
 * Takes pInode->mutex (and, inside it, the store's lock).
 */
void cowvfsSetCommitInterval(cowInode *pInode, unsigned ms)
{
    cowContainer *pCont = pInode->pCont;

    cowvfsMutexEnter(&pCont->mutex);
    cow_store_set_commit_interval(pCont->pStore, ms);
    pCont->commitIntervalMs = ms;
    cowvfsMutexLeave(&pCont->mutex);
}

/*
 * Sets the dirty limit of PINODE's store to NBYTES bytes
 * (cow_store_set_dirty_limit) and records it in PINODE->dirtyLimit, which
 * PRAGMA cow_dirty_limit reads back.  Takes pInode->mutex (and, inside it,
 * the store's lock).
 */
void cowvfsSetDirtyLimit(cowInode *pInode, sqlite3_uint64 nBytes)
{
    if (nBytes < 4096)
        nBytes = 4096;
    cowvfsMutexEnter(&pInode->pCont->mutex);
    cow_store_set_dirty_limit(pInode->pStore, nBytes);
    pInode->pCont->dirtyLimit = nBytes;
    cowvfsMutexLeave(&pInode->pCont->mutex);
}

/* Parses Z, decimal digits only, as a number of milliseconds in
 * 0..UINT_MAX into *PMS; returns 0, or -1 if Z is anything else. */
static int cowParseMs(const char *z, unsigned *pMs)
{
    sqlite3_uint64 v = 0;
    int n = 0;

    for (; *z >= '0' && *z <= '9'; z++, n++) {
        v = v * 10 + (sqlite3_uint64)(*z - '0');
        if (v > UINT_MAX)
            return -1;
    }
    if (n == 0 || *z != 0)
        return -1;
    *pMs = (unsigned)v;
    return 0;
}

/* Parses Z, decimal digits only, as a byte count below 2^62 into *PN;
 * returns 0, or -1 if Z is anything else. */
static int cowParseBytes(const char *z, sqlite3_uint64 *pN)
{
    sqlite3_uint64 v = 0;
    int n = 0;

    for (; *z >= '0' && *z <= '9'; z++, n++) {
        v = v * 10 + (sqlite3_uint64)(*z - '0');
        if (v >= (1ull << 62))
            return -1;
    }
    if (n == 0 || *z != 0)
        return -1;
    *pN = v;
    return 0;
}

/* The cow_* pragmas (see cowPragma). */
enum {
    COWPRAGMA_GENERATION,
    COWPRAGMA_COMMIT,
    COWPRAGMA_STATS,
    COWPRAGMA_COMMIT_INTERVAL,
    COWPRAGMA_DIRTY_LIMIT
};
static const struct {
    const char *zName;
    int bValue; /* may be given a value ("PRAGMA x=v") */
} aCowPragma[] = {
    { "cow_generation", 0 },
    { "cow_commit", 0 },
    { "cow_stats", 0 },
    { "cow_commit_interval", 1 },
    { "cow_dirty_limit", 1 },
};

/*
 * SQLITE_FCNTL_PRAGMA: AZARG[1] is the pragma's name, AZARG[2] its value or
 * NULL; a result or error message goes to AZARG[0] (sqlite3_mprintf()ed,
 * freed by SQLite).  Only pragmas named cow_* are ours:
 *
 *   PRAGMA cow_generation        the generation of the store's last commit
 *   PRAGMA cow_commit            commits the store now; "ok"
 *   PRAGMA cow_stats             the store's counters since it was opened
 *                                (struct cow_stats), one text value:
 *                                "flushes=N commits=N commits_flushed=N
 *                                syncs=N log_syncs=N log_records=N
 *                                log_blocks=N replayed=N ordered_extents=N
 *                                preallocated=N written_in_place=N
 *                                dirty_bytes=N reserved_bytes=N
 *                                reloc_groups=N reloc_bytes=N reloc_dropped=N reloc_runs=N
 *                                container_bytes=N grown=N reloads=N
 *                                reloads_skipped=N held_bytes=N
 *                                written_foreign=N"
 *   PRAGMA cow_commit_interval   the interval of the store's background
 *                                commits in ms (COW_COMMIT_INTERVAL_MS
 *                                unless set)
 *   PRAGMA cow_commit_interval=MS  sets it (0 turns background commits
 *                                off) for the container, so for every
 *                                connection to it; returns MS.  The URI
 *                                parameter commit_interval=MS does the same
 *                                at open (vfs.c)
 *   PRAGMA cow_dirty_limit       bytes of buffered (delalloc) writes of all
 *                                the container's files before writers
 *                                write back (COW_DIRTY_LIMIT unless set)
 *   PRAGMA cow_dirty_limit=N     sets it (at least 4096) for the
 *                                container; returns N.  URI parameter
 *                                dirty_limit=N does the same at open
 *
 * PRAGMA cow_snapshot, cow_branch, cow_restore and cow_delete are
 * vfs_snap.c's; cow_balance, cow_reloc, cow_reloc_slack and cow_reloc_rate
 * vfs_reloc.c's.
 *
 * Any other pragma, unknown cow_* ones included, is SQLITE_NOTFOUND so that
 * SQLite handles it.  Errors: SQLITE_ERROR (a value given to a pragma that
 * takes none, or an interval or limit that is not an integer in range),
 * SQLITE_NOMEM, or the mapped (logged) error of the commit.
 */
static int cowPragma(cowFile *p, char **azArg)
{
    cow_store *pStore = p->pInode->pStore;
    const char *zName = azArg[1];
    const char *zVal = azArg[2];
    int rc = SQLITE_OK;
    int crc;
    int i;
    unsigned ms;
    sqlite3_uint64 nLimit;
    struct cow_stats cs;

    if (zName == 0 || sqlite3_strnicmp(zName, "cow_", 4) != 0) {
        rc = SQLITE_NOTFOUND;
        goto out;
    }
    rc = cowvfsSnapPragma(p, zName, zVal, &azArg[0]); /* snapshots, branches */
    if (rc != SQLITE_NOTFOUND)
        goto out;
    rc = cowvfsRelocPragma(p, zName, zVal, &azArg[0]); /* balance, relocator */
    if (rc != SQLITE_NOTFOUND)
        goto out;
#ifdef COW_DEBUG
    /* Test builds only: the ownership handed to another process that
     * changes nothing, and back (cow_store_test_handoff), for the crash
     * simulator and the model test. */
    if (sqlite3_stricmp(zName, "cow_test_handoff") == 0) {
        crc = cow_store_test_handoff(pStore);
        rc = crc == COW_OK ? SQLITE_OK
                           : cowvfsError(pStore, crc, COWVFS_OP_IO, "handoff", p->zPath, 0);
        goto out;
    }
#endif
    rc = SQLITE_OK;
    for (i = 0; i < (int)(sizeof(aCowPragma) / sizeof(aCowPragma[0])); i++)
        if (sqlite3_stricmp(zName, aCowPragma[i].zName) == 0)
            break;
    if (i == (int)(sizeof(aCowPragma) / sizeof(aCowPragma[0]))) {
        rc = SQLITE_NOTFOUND;
        goto out;
    }
    if (zVal && !aCowPragma[i].bValue) {
        azArg[0] = sqlite3_mprintf("PRAGMA %s takes no value", zName);
        rc = SQLITE_ERROR;
        goto out;
    }
    switch (i) {
    case COWPRAGMA_GENERATION:
        azArg[0] = sqlite3_mprintf("%llu", (unsigned long long)cow_store_generation(pStore));
        break;
    case COWPRAGMA_COMMIT:
        crc = cow_store_commit(pStore);
        if (crc != COW_OK) {
            rc = cowIoError(p, crc, "commit (PRAGMA cow_commit)", 0);
            azArg[0] = sqlite3_mprintf("cow_commit: %s", cow_store_last_error(pStore));
            goto out;
        }
        azArg[0] = sqlite3_mprintf("ok");
        break;
    case COWPRAGMA_STATS:
        cow_store_stats(pStore, &cs);
        azArg[0] = sqlite3_mprintf("flushes=%llu commits=%llu commits_flushed=%llu syncs=%llu "
                                   "log_syncs=%llu log_records=%llu log_blocks=%llu "
                                   "replayed=%llu ordered_extents=%llu preallocated=%llu "
                                   "written_in_place=%llu dirty_bytes=%llu reserved_bytes=%llu "
                                   "reloc_groups=%llu reloc_bytes=%llu reloc_dropped=%llu "
                                   "reloc_runs=%llu container_bytes=%llu grown=%llu reloads=%llu "
                                   "reloads_skipped=%llu held_bytes=%llu written_foreign=%llu",
                                   (unsigned long long)cs.flushes,
                                   (unsigned long long)cs.commits,
                                   (unsigned long long)cs.commits_flushed,
                                   (unsigned long long)cs.syncs,
                                   (unsigned long long)cs.log_syncs,
                                   (unsigned long long)cs.log_records,
                                   (unsigned long long)cs.log_blocks,
                                   (unsigned long long)cs.replayed,
                                   (unsigned long long)cs.ordered_extents,
                                   (unsigned long long)cs.preallocated,
                                   (unsigned long long)cs.written_in_place,
                                   (unsigned long long)cs.dirty_bytes,
                                   (unsigned long long)cs.reserved_bytes,
                                   (unsigned long long)cs.reloc_groups,
                                   (unsigned long long)cs.reloc_bytes,
                                   (unsigned long long)cs.reloc_dropped,
                                   (unsigned long long)cs.reloc_runs,
                                   (unsigned long long)cs.container_bytes,
                                   (unsigned long long)cs.grown,
                                   (unsigned long long)cs.reloads,
                                   (unsigned long long)cs.reloads_skipped,
                                   (unsigned long long)cs.held_bytes,
                                   (unsigned long long)cs.written_foreign);
        break;
    case COWPRAGMA_DIRTY_LIMIT:
        if (zVal == 0) {
            cowvfsMutexEnter(&p->pInode->pCont->mutex);
            nLimit = p->pInode->pCont->dirtyLimit;
            cowvfsMutexLeave(&p->pInode->pCont->mutex);
        } else if (cowParseBytes(zVal, &nLimit) != 0) {
            azArg[0] = sqlite3_mprintf("PRAGMA %s: %s is not a number of bytes", zName, zVal);
            rc = SQLITE_ERROR;
            goto out;
        } else {
            cowvfsSetDirtyLimit(p->pInode, nLimit);
            nLimit = nLimit < 4096 ? 4096 : nLimit;
        }
        azArg[0] = sqlite3_mprintf("%llu", (unsigned long long)nLimit);
        break;
    default: /* COWPRAGMA_COMMIT_INTERVAL */
        if (zVal == 0) {
            cowvfsMutexEnter(&p->pInode->pCont->mutex);
            ms = p->pInode->pCont->commitIntervalMs;
            cowvfsMutexLeave(&p->pInode->pCont->mutex);
        } else if (cowParseMs(zVal, &ms) != 0) {
            azArg[0] = sqlite3_mprintf("PRAGMA %s: %s is not a number of milliseconds "
                                       "(0..%u)",
                                       zName, zVal, UINT_MAX);
            rc = SQLITE_ERROR;
            goto out;
        } else {
            cowvfsSetCommitInterval(p->pInode, ms);
        }
        azArg[0] = sqlite3_mprintf("%u", ms);
        break;
    }
    if (azArg[0] == 0)
        rc = SQLITE_NOMEM;
out:
    return rc;
}

/*
 * File controls: SQLITE_FCNTL_VFSNAME, _SIZE_HINT (preallocates up to the
 * hint, rounded up to the chunk size: SQLite hints before it grows the
 * database, at checkpoints and in VACUUM), _CHUNK_SIZE (the rounding),
 * _POWERSAFE_OVERWRITE and _PERSIST_WAL (get/set), _HAS_MOVED, _PRAGMA
 * (cow_* pragmas) and _CKPT_DONE (publishes the store).  Everything else is
 * SQLITE_NOTFOUND.
 */
static int cowFileControl(sqlite3_file *pFile, int op, void *pArg)
{
    cowFile *p = (cowFile *)pFile;
    int rc = SQLITE_OK;

    switch (op) {
    case SQLITE_FCNTL_VFSNAME:
        *(char **)pArg = sqlite3_mprintf("%s", COWVFS_NAME);
        break;
    case SQLITE_FCNTL_SIZE_HINT:
        rc = cowPreallocate(p, *(sqlite3_int64 *)pArg);
        break;
    case SQLITE_FCNTL_CHUNK_SIZE:
        p->szChunk = *(int *)pArg > 0 ? *(int *)pArg : 0;
        break;
    case SQLITE_FCNTL_POWERSAFE_OVERWRITE:
        cowModeBit(p, COWFILE_PSOW, (int *)pArg);
        break;
    case SQLITE_FCNTL_PERSIST_WAL:
        cowModeBit(p, COWFILE_PERSIST_WAL, (int *)pArg);
        break;
    case SQLITE_FCNTL_HAS_MOVED:
        *(int *)pArg = cowHasMoved(p);
        break;
    case SQLITE_FCNTL_PRAGMA:
        rc = cowPragma(p, (char **)pArg);
        break;
    case SQLITE_FCNTL_CKPT_DONE:
        /* A checkpoint copied WAL frames into the database and is about to
         * raise the WAL-index's nBackfill (wal.c walCheckpoint), after
         * which readers of other processes read those pages from the
         * database file: publish them first.  A hint: the result is
         * ignored (a failed store reports itself at the next I/O). */
        rc = cowvfsStorePublish(p);
        break;
    default:
        rc = SQLITE_NOTFOUND;
        break;
    }
    return rc;
}

/* The store's block size. */
static int cowSectorSize(sqlite3_file *pFile)
{
    (void)pFile;
    return COWVFS_SECTOR_SIZE;
}

/*
 * What the store guarantees, in SQLite's terms.  Every write goes to newly
 * allocated space (copy on write) and becomes durable atomically with a
 * commit or log record that holds it; nothing committed is overwritten in
 * place.  So, after a crash:
 *
 *   SQLITE_IOCAP_POWERSAFE_OVERWRITE  bytes outside a write are never
 *       disturbed - unless turned off by SQLITE_FCNTL_POWERSAFE_OVERWRITE
 *       or psow=0;
 *   SQLITE_IOCAP_SAFE_APPEND  a file's new size is durable together with
 *       the data that extended it, so an append never leaves garbage;
 *   SQLITE_IOCAP_SEQUENTIAL  (the main database only) the database's xSync
 *       makes every earlier write of every file of the container durable
 *       in one flush (cowSync), and so does every commit and the record at
 *       the end of a transaction: the database's writes are never durable
 *       ahead of a write made before them.  SQLite reads this flag from the
 *       database file to skip syncing the rollback journal (pager.c
 *       syncJournal) and the WAL header (wal.c); both then rely on it.
 *       Not while a nodatacow WAL of the database is open: its frames are
 *       overwritten in place, and a new frame over an old one must not be
 *       durable before the restarted WAL's header, which SQLite then syncs
 *       (cowvfsWalInPlace; found by the crash simulator: a WAL holding an
 *       old header and a prefix of old frames, replayed over a database
 *       checkpointed past them);
 *
 * A journal's or WAL's own xSync logs that file alone, so its writes can be
 * durable ahead of earlier writes of the database: those files do not claim
 * SEQUENTIAL (SQLite never asks them).  A super-journal is a file of the
 * default VFS (vfs.c, NAMES), which claims what that file system offers;
 * one left in a container by an earlier version is opened here only to be
 * read and deleted, and claims no SEQUENTIAL either, so SQLite syncs it.
 */
static int cowDeviceCharacteristics(sqlite3_file *pFile)
{
    cowFile *p = (cowFile *)pFile;
    int dc = SQLITE_IOCAP_SAFE_APPEND;

    if (p->eType == SQLITE_OPEN_MAIN_DB &&
        __atomic_load_n(&p->pInode->nInPlaceWal, __ATOMIC_ACQUIRE) == 0)
        dc |= SQLITE_IOCAP_SEQUENTIAL;
    if (p->ctrlFlags & COWFILE_PSOW)
        dc |= SQLITE_IOCAP_POWERSAFE_OVERWRITE;
    return dc;
}

int cowvfsWalInPlace(cowFile *p, int bWant)
{
    uint64_t size = 0;
    int yes = 0;
    int crc = cow_file_nodatacow(p->pCf, &yes);

    if (crc == COW_OK && !yes && bWant)
        crc = cow_file_size(p->pCf, &size);
    if (crc == COW_OK && !yes && bWant && size == 0) {
        crc = cow_file_set_nodatacow(p->pCf);
        yes = crc == COW_OK;
    }
    if (crc != COW_OK)
        return cowIoError(p, crc, "nodatacow", 0);
    if (yes) {
        p->ctrlFlags |= COWFILE_INPLACE;
        __atomic_add_fetch(&p->pInode->nInPlaceWal, 1, __ATOMIC_ACQ_REL);
    }
    return SQLITE_OK;
}

/*
 * Memory-mapped reads (PRAGMA mmap_size): a pointer into the store's cache
 * of the file (cow_file_fetch), pinned until xUnfetch, for a range inside
 * one 4 KiB block; otherwise *PP is NULL and SQLite uses xRead.  Errors
 * as xRead (SQLITE_IOERR_READ, SQLITE_CORRUPT on a checksum mismatch).
 */
static int cowFetch(sqlite3_file *pFile, sqlite3_int64 iOfst, int iAmt, void **pp)
{
    cowFile *p = (cowFile *)pFile;
    int crc;

    *pp = 0;
    if (p->pCf == 0 || iOfst < 0 || iAmt <= 0)
        return SQLITE_OK;
    if (cowvfsStoreCatchUp(p->pInode) != SQLITE_OK)
        return SQLITE_OK; /* no mapping: SQLite reads with xRead, which reports it */
    crc = cow_file_fetch(p->pCf, (uint64_t)iOfst, (size_t)iAmt, pp);
    if (crc != COW_OK)
        return cowIoError(p, crc, "fetch", iOfst);
    return SQLITE_OK;
}

/* Releases a page from cowFetch; PPAGE NULL (SQLite saying mappings may be
 * stale) needs nothing: fetched pages stay valid until released. */
static int cowUnfetch(sqlite3_file *pFile, sqlite3_int64 iOfst, void *pPage)
{
    cowFile *p = (cowFile *)pFile;

    if (pPage && p->pCf && iOfst >= 0)
        cow_file_unfetch(p->pCf, (uint64_t)iOfst, pPage);
    return SQLITE_OK;
}

const sqlite3_io_methods cowvfsIoMethods = {
    3,                        /* iVersion */
    cowClose,                 /* xClose */
    cowRead,                  /* xRead */
    cowWrite,                 /* xWrite */
    cowTruncate,              /* xTruncate */
    cowSync,                  /* xSync */
    cowFileSize,              /* xFileSize */
    cowLock,                  /* xLock */
    cowUnlock,                /* xUnlock */
    cowCheckReservedLock,     /* xCheckReservedLock */
    cowFileControl,           /* xFileControl */
    cowSectorSize,            /* xSectorSize */
    cowDeviceCharacteristics, /* xDeviceCharacteristics */
    cowvfsShmMap,             /* xShmMap */
    cowvfsShmLock,            /* xShmLock */
    cowvfsShmBarrier,         /* xShmBarrier */
    cowvfsShmUnmap,           /* xShmUnmap */
    cowFetch,                 /* xFetch */
    cowUnfetch,               /* xUnfetch */
};
