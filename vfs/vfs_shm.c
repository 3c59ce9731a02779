/*
 * vfs_shm.c - the WAL-index ("shared memory") of the cow VFS, shared by
 * every process that opens the database, as os_unix.c shares a -shm file.
 *
 * THE OBJECT.  Each database of a container (the live one, each snapshot
 * and branch) has its WAL-index in a POSIX shared-memory object named
 * COW_SHM_PREFIX "DEV-INO-ID" (store/lockspace.h: the container's st_dev
 * and st_ino and the database's subvolume id, lower-case hex), a file of
 * the tmpfs /dev/shm on Linux.  It cannot live in the container: it grows
 * with the WAL, and a mapping of the container would make the kernel write
 * every lock word and hash slot back to the disk (docs/DESIGN.md, "Several
 * processes").  It is mapped region by region (MAP_SHARED) as unixShmMap
 * maps a -shm file, into one cowShmNode per database per process (in its
 * cowInode), opened by the first connection of the process that attaches
 * and closed when the last one detaches.
 *
 * THE DEAD-MAN SWITCH.  The byte iLockBase + COW_LOCK_WAL_DMS of the
 * container is read-locked by every process that has the object open, as
 * unixLockSharedMemory locks the -shm file's DMS byte.  A process that
 * opens the node while no process holds it (F_OFD_GETLK) write-locks it
 * first and truncates the object to zero bytes: whatever was there was left
 * by processes that all died (or by another container that had this inode
 * number), and SQLite rebuilds the index from the WAL (walIndexRecover).
 * It then holds the byte read-locked like everyone else.  While another
 * process holds it write-locked, opening is SQLITE_BUSY (SQLite retries).
 * The lock on the byte is always taken before shm_open, so that the object
 * a process opens is the one every holder of the byte has open.  The last
 * connection of the process to detach tries the byte write-locked: if that
 * succeeds no other process has the object open, and it is unlinked, so
 * nothing is left beside the application (SQLite's deleteFlag is not
 * needed for that: the object holds nothing the WAL cannot rebuild).
 *
 * THE LOCKS.  SQLite's SQLITE_SHM_NLOCK slots with SHARED and EXCLUSIVE
 * modes, between the connections of this process in memory, between
 * processes as OFD locks on the bytes iLockBase + COW_LOCK_WAL + i
 * (vfs_lock.c), as unixShmLock does:
 *
 *   cowShmNode.aLock[i]   n > 0: n connections of the process hold slot i
 *                         SHARED (the process holds byte i read-locked);
 *                         -1: one holds it EXCLUSIVE (byte write-locked);
 *                         0: free (byte unlocked)
 *   cowShm.sharedMask     the slots this connection holds SHARED
 *   cowShm.exclMask       the slots this connection holds EXCLUSIVE
 *
 * A request for a range of slots is granted for all of them or, on the
 * first conflict, in this process or another, for none (SQLITE_BUSY).
 * Everything here is protected by cowInode.mutex.
 *
 * Releasing the WAL write lock ends a write transaction: the store is
 * committed first (see COMMITS in vfs_io.c).  Taking a read-mark slot
 * SHARED (a reader starting its snapshot of the WAL) refreshes the store,
 * and xShmBarrier publishes it (STORE COHERENCE in vfs_io.c).
 */
#include "sqlite_api.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lockspace.h"
#include "vfs_int.h"

/* The WAL write lock is slot 0 (WAL_WRITE_LOCK in SQLite's wal.c): held
 * EXCLUSIVE for the whole of a write transaction. */
#define COWVFS_WAL_WRITE_LOCK 0
/* The first read-mark slot (WAL_READ_LOCK(0) in wal.c); slots 3..7 are the
 * readers' (WAL_NREADER). */
#define COWVFS_WAL_READ_LOCK0 3

/*
 * Writes PINODE's WAL-index object name, COW_SHM_PREFIX "DEV-INO-ID" in
 * lower-case hex (store/lockspace.h), into ZBUF (NBUF bytes).  Returns
 * SQLITE_OK, or SQLITE_IOERR_SHMOPEN if it does not fit.
 */
int cowvfsShmName(cowInode *pInode, char *zBuf, int nBuf)
{
    sqlite3_snprintf(nBuf, zBuf, COW_SHM_PREFIX "%llx-%llx-%llx",
                     (unsigned long long)pInode->pCont->dev,
                     (unsigned long long)pInode->pCont->ino,
                     (unsigned long long)pInode->iSubvolId);
    return (int)strlen(zBuf) < nBuf - 1 ? SQLITE_OK : SQLITE_IOERR_SHMOPEN;
}

/* The byte of the container that is slot I's process-level lock. */
static sqlite3_uint64 cowShmLockByte(cowInode *pInode, int i)
{
    return pInode->iLockBase + COW_LOCK_WAL + (sqlite3_uint64)i;
}

/*
 * Opens PINODE's WAL-index object into pInode->shm.fd behind the dead-man
 * switch (see THE DEAD-MAN SWITCH above; unixLockSharedMemory).  Returns
 * SQLITE_OK; SQLITE_BUSY while another process holds the switch
 * write-locked (it is being reset or unlinked); or, logged,
 * SQLITE_IOERR_LOCK, SQLITE_IOERR_SHMOPEN (shm_open or the truncation
 * failed).  On error nothing is held.  Caller holds pInode->mutex; the node
 * is closed (fd -1, no region).
 */
static int cowShmOpenNode(cowInode *pInode)
{
    cowShmNode *pNode = &pInode->shm;
    int fdLock = pInode->pCont->fdLock;
    sqlite3_uint64 iDms = pInode->iLockBase + COW_LOCK_WAL_DMS;
    char zName[96];
    struct stat st;
    int eType;
    int bFirst = 0;
    int fd = -1;
    int rc;

    assert(cowvfsMutexHeld(&pInode->mutex));
    assert(pNode->fd < 0 && pNode->nRegion == 0);
    rc = cowvfsShmName(pInode, zName, (int)sizeof(zName));
    if (rc != SQLITE_OK)
        goto out;
    rc = cowvfsLockHolder(fdLock, iDms, 1, &eType, SQLITE_IOERR_LOCK);
    if (rc != SQLITE_OK)
        goto out;
    if (eType == F_WRLCK) {
        rc = SQLITE_BUSY; /* another process resets or unlinks it */
        goto out;
    }
    /* no holder: the first process, it resets the object; else join */
    bFirst = eType == F_UNLCK;
    rc = cowvfsLockSet(fdLock, iDms, 1, bFirst ? F_WRLCK : F_RDLCK, SQLITE_IOERR_LOCK);
    if (rc != SQLITE_OK)
        goto out;
    if (fstat(fdLock, &st) != 0)
        st.st_mode = 0600;
    fd = shm_open(zName, O_RDWR | O_CREAT | O_CLOEXEC, st.st_mode & 0666);
    if (fd < 0) {
        rc = SQLITE_IOERR_SHMOPEN;
        sqlite3_log(rc, "cow: shm_open %s (WAL-index of %s): %s", zName, pInode->pCont->zPath,
                    strerror(errno));
        goto out;
    }
    if (bFirst) {
        if (ftruncate(fd, 0) != 0) {
            rc = SQLITE_IOERR_SHMOPEN;
            sqlite3_log(rc, "cow: ftruncate %s to 0: %s", zName, strerror(errno));
            goto out;
        }
        rc = cowvfsLockSet(fdLock, iDms, 1, F_RDLCK, SQLITE_IOERR_LOCK); /* downgrade */
        if (rc != SQLITE_OK)
            goto out;
    }
    pNode->fd = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    if (rc != SQLITE_OK) /* the node is closed: this process holds no lock on the switch */
        cowvfsLockSet(fdLock, iDms, 1, F_UNLCK, SQLITE_IOERR_UNLOCK);
    return rc;
}

/*
 * Closes PINODE's WAL-index node (no connection attached): unmaps its
 * regions and closes the object; if no other process has it open (the
 * dead-man switch can be write-locked), unlinks it.  Then gives up the
 * switch and any slot lock left.  Caller holds pInode->mutex or has the
 * only reference to the inode.
 */
static void cowShmCloseNode(cowInode *pInode)
{
    cowShmNode *pNode = &pInode->shm;
    int fdLock = pInode->pCont->fdLock;
    sqlite3_uint64 iDms = pInode->iLockBase + COW_LOCK_WAL_DMS;
    char zName[96];
    int i;

    assert(pNode->pFirst == 0);
    if (pNode->fd < 0)
        goto out;
    for (i = 0; i < pNode->nRegion; i += pNode->nPerMap)
        munmap(pNode->apRegion[i], (size_t)pNode->szRegion * (size_t)pNode->nPerMap);
    close(pNode->fd);
    if (cowvfsLockSet(fdLock, iDms, 1, F_WRLCK, SQLITE_IOERR_LOCK) == SQLITE_OK &&
        cowvfsShmName(pInode, zName, (int)sizeof(zName)) == SQLITE_OK &&
        shm_unlink(zName) != 0 && errno != ENOENT)
        sqlite3_log(SQLITE_IOERR_DELETE, "cow: shm_unlink %s: %s", zName, strerror(errno));
    cowvfsLockSet(fdLock, pInode->iLockBase + COW_LOCK_WAL, SQLITE_SHM_NLOCK, F_UNLCK,
                  SQLITE_IOERR_UNLOCK);
    cowvfsLockSet(fdLock, iDms, 1, F_UNLCK, SQLITE_IOERR_UNLOCK);
out:
    sqlite3_free(pNode->apRegion);
    memset(pNode, 0, sizeof(*pNode));
    pNode->fd = -1;
}

/*
 * Enters P's inode mutex with P attached to the WAL-index node: the first
 * call makes P's cowShm record (allocated before the mutex is taken) and
 * links it into the node, opening the node if it is the process's first
 * (cowShmOpenNode).  Returns SQLITE_OK with the mutex held, or without it
 * SQLITE_IOERR_NOMEM or an error of cowShmOpenNode (SQLITE_BUSY included).
 */
static int cowShmEnter(cowFile *p)
{
    cowInode *pInode = p->pInode;
    cowShm *pNew = 0;
    int rc;

    if (p->pShm == 0) {
        pNew = sqlite3_malloc64(sizeof(*pNew));
        if (pNew == 0)
            return SQLITE_IOERR_NOMEM;
        memset(pNew, 0, sizeof(*pNew));
    }
    cowvfsMutexEnter(&pInode->mutex);
    if (pNew) {
        if (p->pShm == 0) {
            if (pInode->shm.fd < 0) {
                rc = cowShmOpenNode(pInode);
                if (rc != SQLITE_OK) {
                    cowvfsMutexLeave(&pInode->mutex);
                    sqlite3_free(pNew);
                    return rc;
                }
            }
            pNew->pInode = pInode;
            pNew->pNext = pInode->shm.pFirst;
            pInode->shm.pFirst = pNew;
            p->pShm = pNew;
        } else {
            sqlite3_free(pNew); /* attached meanwhile (not by SQLite's own use) */
        }
    }
    return SQLITE_OK;
}

/*
 * Releases slots [OFST, OFST+N) that PSHM holds, in memory and, where no
 * other connection of the process still holds one SHARED, its byte.
 * Returns SQLITE_OK or SQLITE_IOERR_UNLOCK (logged; the slots are released
 * in memory anyway).  Caller holds the inode's mutex.
 */
static int cowShmRelease(cowInode *pInode, cowShm *pShm, int ofst, int n)
{
    cowShmNode *pNode = &pInode->shm;
    int rc = SQLITE_OK;
    int rc2;
    int i;

    assert(cowvfsMutexHeld(&pInode->mutex));
    for (i = ofst; i < ofst + n; i++) {
        unsigned short bit = (unsigned short)(1u << i);
        int bUnlock = 0;
        if (pShm->exclMask & bit) {
            assert(pNode->aLock[i] == -1);
            pNode->aLock[i] = 0;
            bUnlock = 1;
        } else if (pShm->sharedMask & bit) {
            assert(pNode->aLock[i] > 0);
            bUnlock = --pNode->aLock[i] == 0;
        }
        if (bUnlock) {
            rc2 = cowvfsLockSet(pInode->pCont->fdLock, cowShmLockByte(pInode, i), 1, F_UNLCK,
                                SQLITE_IOERR_UNLOCK);
            if (rc == SQLITE_OK)
                rc = rc2;
        }
        pShm->exclMask &= (unsigned short)~bit;
        pShm->sharedMask &= (unsigned short)~bit;
    }
    return rc;
}

/*
 * Closes PINODE's WAL-index node if it is still open (no connection may be
 * attached), unlinking the object if no other process has it open.
 * Caller holds the inode's mutex or has the only reference to the inode.
 */
void cowvfsShmFree(cowInode *pInode)
{
    cowShmCloseNode(pInode);
}

/*
 * Zeroes every region of PNODE in place (connections keep their pointers):
 * the WAL-index is then invalid, so the next reader rebuilds it from the
 * WAL (SQLite's recovery) and drops its page cache.  Used after a restore
 * replaced the database under idle connections.  Caller holds the inode
 * mutex and has made sure no connection holds a WAL-index lock.
 */
void cowvfsShmReset(cowShmNode *pNode)
{
    int i;

    for (i = 0; i < pNode->nRegion; i++)
        memset(pNode->apRegion[i], 0, (size_t)pNode->szRegion);
}

/*
 * Maps regions of PNODE's object up to region NREQ-1 (NREQ a multiple of
 * nPerMap), growing the object first if it is shorter and BEXTEND is set
 * (posix_fallocate: the pages are allocated now, so a full /dev/shm is an
 * error here rather than a SIGBUS later, as unixShmMap writes a byte to
 * each new page).  If it is shorter and BEXTEND is not set, maps nothing.
 * Returns SQLITE_OK, or (logged) SQLITE_IOERR_SHMSIZE (fstat or the growth
 * failed), SQLITE_IOERR_SHMMAP (mmap failed), SQLITE_IOERR_NOMEM.  Caller
 * holds the inode's mutex.
 */
static int cowShmMapRegions(cowInode *pInode, int nReq, int bExtend)
{
    cowShmNode *pNode = &pInode->shm;
    sqlite3_int64 nByte = (sqlite3_int64)nReq * pNode->szRegion;
    size_t nMap = (size_t)pNode->szRegion * (size_t)pNode->nPerMap;
    struct stat st;
    char **apNew;
    int err;
    int rc = SQLITE_OK;

    if (fstat(pNode->fd, &st) != 0) {
        rc = SQLITE_IOERR_SHMSIZE;
        sqlite3_log(rc, "cow: fstat of the WAL-index of %s: %s", pInode->pCont->zPath,
                    strerror(errno));
        goto out;
    }
    if (st.st_size < nByte) {
        if (!bExtend)
            goto out;
        err = posix_fallocate(pNode->fd, 0, (off_t)nByte);
        if (err == EOPNOTSUPP || err == EINVAL)
            err = ftruncate(pNode->fd, (off_t)nByte) == 0 ? 0 : errno;
        if (err != 0) {
            rc = SQLITE_IOERR_SHMSIZE;
            sqlite3_log(rc, "cow: growing the WAL-index of %s to %lld bytes: %s",
                        pInode->pCont->zPath, (long long)nByte, strerror(err));
            goto out;
        }
    }
    apNew = sqlite3_realloc64(pNode->apRegion, (sqlite3_uint64)nReq * sizeof(char *));
    if (apNew == 0) {
        rc = SQLITE_IOERR_NOMEM;
        goto out;
    }
    pNode->apRegion = apNew;
    while (pNode->nRegion < nReq) {
        int i;
        char *pMem = mmap(0, nMap, PROT_READ | PROT_WRITE, MAP_SHARED, pNode->fd,
                          (off_t)pNode->nRegion * pNode->szRegion);
        if (pMem == MAP_FAILED) {
            rc = SQLITE_IOERR_SHMMAP;
            sqlite3_log(rc, "cow: mmap of the WAL-index of %s: %s", pInode->pCont->zPath,
                        strerror(errno));
            goto out;
        }
        for (i = 0; i < pNode->nPerMap; i++)
            pNode->apRegion[pNode->nRegion + i] = pMem + (size_t)i * (size_t)pNode->szRegion;
        pNode->nRegion += pNode->nPerMap;
    }
out:
    return rc;
}

/*
 * xShmMap: sets *PP to region IREGION (SZREGION bytes) of the database's
 * WAL-index, mapped MAP_SHARED at an address stable until the process's
 * last connection unmaps.  If the object does not reach that region yet,
 * BEXTEND grows it (new bytes read as zero); without BEXTEND *PP is NULL
 * and the result SQLITE_OK, per SQLite's contract (unixShmMap).  The first
 * call attaches the connection, opening the object for the process if
 * needed.  Errors: SQLITE_BUSY (another process is resetting or unlinking
 * the object; SQLite retries), and, logged, SQLITE_IOERR_SHMSIZE (a region
 * size other than the first one's, or growth failed), SQLITE_IOERR_SHMMAP
 * (bad arguments, mmap failed), SQLITE_IOERR_SHMOPEN, SQLITE_IOERR_LOCK,
 * SQLITE_IOERR_NOMEM.
 */
int cowvfsShmMap(sqlite3_file *pFile, int iRegion, int szRegion, int bExtend,
                 void volatile **pp)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    cowShmNode *pNode = &pInode->shm;
    long pgsz = sysconf(_SC_PAGESIZE);
    int rc = SQLITE_OK;
    int bLocked = 0;

    *pp = 0;
    if (pgsz <= 0)
        pgsz = 4096;
    if (iRegion < 0 || szRegion <= 0 ||
        (szRegion < pgsz ? pgsz % szRegion : szRegion % pgsz) != 0) {
        rc = SQLITE_IOERR_SHMMAP;
        sqlite3_log(rc, "cow: shm map %s region %d size %d: bad arguments", p->zPath, iRegion,
                    szRegion);
        goto out;
    }
    rc = cowShmEnter(p);
    if (rc != SQLITE_OK)
        goto out;
    bLocked = 1;
    if (pNode->szRegion != 0 && pNode->szRegion != szRegion) {
        rc = SQLITE_IOERR_SHMSIZE;
        sqlite3_log(rc, "cow: shm map %s: region size %d, earlier %d", p->zPath, szRegion,
                    pNode->szRegion);
        goto out;
    }
    if (iRegion >= pNode->nRegion) {
        int nPerMap = szRegion < pgsz ? (int)(pgsz / szRegion) : 1;
        int nReq = (iRegion + nPerMap) / nPerMap * nPerMap;
        pNode->szRegion = szRegion;
        pNode->nPerMap = nPerMap;
        rc = cowShmMapRegions(pInode, nReq, bExtend);
        if (rc != SQLITE_OK)
            goto out;
    }
    if (iRegion < pNode->nRegion)
        *pp = pNode->apRegion[iRegion];
out:
    if (bLocked)
        cowvfsMutexLeave(&pInode->mutex);
    return rc;
}

/*
 * Takes slots [OFST, OFST+N) SHARED for PSHM: refused (SQLITE_BUSY) if a
 * connection of the process holds one EXCLUSIVE, or another process does
 * (the byte's read lock fails); the first holder of a slot in the process
 * read-locks its byte.  Slots PSHM already holds are kept as they are.
 * All or nothing.  Caller holds the inode's mutex.
 */
static int cowShmLockShared(cowInode *pInode, cowShm *pShm, int ofst, int n)
{
    cowShmNode *pNode = &pInode->shm;
    unsigned short taken = 0;
    int rc = SQLITE_OK;
    int i;

    for (i = ofst; i < ofst + n; i++) {
        unsigned short bit = (unsigned short)(1u << i);
        if (((pShm->sharedMask | pShm->exclMask) & bit) == 0 && pNode->aLock[i] < 0)
            return SQLITE_BUSY;
    }
    for (i = ofst; i < ofst + n && rc == SQLITE_OK; i++) {
        unsigned short bit = (unsigned short)(1u << i);
        if (((pShm->sharedMask | pShm->exclMask) & bit) != 0)
            continue;
        if (pNode->aLock[i] == 0)
            rc = cowvfsLockSet(pInode->pCont->fdLock, cowShmLockByte(pInode, i), 1, F_RDLCK,
                               SQLITE_IOERR_SHMLOCK);
        if (rc == SQLITE_OK) {
            pNode->aLock[i]++;
            pShm->sharedMask |= bit;
            taken |= bit;
        }
    }
    if (rc != SQLITE_OK) {
        for (i = ofst; i < ofst + n; i++)
            if (taken & (1u << i)) {
                pShm->sharedMask &= (unsigned short)~(1u << i);
                if (--pNode->aLock[i] == 0)
                    cowvfsLockSet(pInode->pCont->fdLock, cowShmLockByte(pInode, i), 1, F_UNLCK,
                                  SQLITE_IOERR_UNLOCK);
            }
    }
    return rc;
}

/*
 * Takes slots [OFST, OFST+N) EXCLUSIVE for PSHM: refused (SQLITE_BUSY) if
 * another connection of the process holds one at all, or another process
 * does (the bytes' write lock fails).  A slot PSHM holds SHARED alone is
 * upgraded.  All or nothing.  Caller holds the inode's mutex.
 */
static int cowShmLockExcl(cowInode *pInode, cowShm *pShm, int ofst, int n)
{
    cowShmNode *pNode = &pInode->shm;
    int rc;
    int i;

    for (i = ofst; i < ofst + n; i++) {
        unsigned short bit = (unsigned short)(1u << i);
        if ((pShm->exclMask & bit) == 0 &&
            pNode->aLock[i] != ((pShm->sharedMask & bit) ? 1 : 0))
            return SQLITE_BUSY;
    }
    /* one request for the range: bytes this description holds already
     * (PSHM's own slots) are converted */
    rc = cowvfsLockSet(pInode->pCont->fdLock, cowShmLockByte(pInode, ofst), n, F_WRLCK,
                       SQLITE_IOERR_SHMLOCK);
    if (rc != SQLITE_OK)
        return rc;
    for (i = ofst; i < ofst + n; i++) {
        unsigned short bit = (unsigned short)(1u << i);
        pNode->aLock[i] = -1;
        pShm->exclMask |= bit;
        pShm->sharedMask &= (unsigned short)~bit;
    }
    return SQLITE_OK;
}

/*
 * xShmLock: takes or releases the N slots from OFST, SHARED or EXCLUSIVE
 * (FLAGS: SQLITE_SHM_LOCK or _UNLOCK with SQLITE_SHM_SHARED or _EXCLUSIVE),
 * in this process and between processes (THE LOCKS above).  SHARED is
 * refused while another connection holds a slot EXCLUSIVE; EXCLUSIVE while
 * another holds a slot at all.  Slots already held in the mode asked for
 * are kept.  Releasing the WAL write lock commits the store first (the
 * lock is released even if that fails).  Taking a read-mark slot SHARED,
 * or a connection's first slot, marks the store for a refresh before its
 * next read (cowvfsStoreStale): not now, inside walTryBeginRead's window
 * between reading the WAL-index header and checking it again, where a
 * reload (a fraction of a millisecond) against a writer committing
 * thousands of times a second made SQLite retry, then sleep, most reads.
 * Returns SQLITE_OK, SQLITE_BUSY, SQLITE_MISUSE (bad arguments, logged),
 * SQLITE_IOERR_NOMEM, SQLITE_IOERR_SHMLOCK or SQLITE_IOERR_UNLOCK (the
 * lock descriptor failed, logged), an error of attaching (see xShmMap), or
 * the error of the commit (logged; the store has then failed).
 */
int cowvfsShmLock(sqlite3_file *pFile, int ofst, int n, int flags)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    cowShm *pShm;
    int rc = SQLITE_OK;
    int rc2;
    int bLocked = 0;
    int bRefresh = 0;
    int bHeld = 0; /* the connection held a slot before */
    int bHolds = 0; /* and after */

    if (ofst < 0 || n < 1 || ofst + n > SQLITE_SHM_NLOCK ||
        (flags != (SQLITE_SHM_LOCK | SQLITE_SHM_SHARED) &&
         flags != (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) &&
         flags != (SQLITE_SHM_UNLOCK | SQLITE_SHM_SHARED) &&
         flags != (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE))) {
        rc = SQLITE_MISUSE;
        sqlite3_log(rc, "cow: shm lock %s: bad arguments ofst=%d n=%d flags=%d", p->zPath, ofst,
                    n, flags);
        goto out;
    }
    /* Only this connection changes its masks, so they can be read here. */
    if ((flags & SQLITE_SHM_UNLOCK) && p->pShm && ofst <= COWVFS_WAL_WRITE_LOCK &&
        COWVFS_WAL_WRITE_LOCK < ofst + n &&
        (p->pShm->exclMask & (1u << COWVFS_WAL_WRITE_LOCK)))
        rc = cowvfsCommitTxn(p); /* the unlock goes on; this is returned */
    rc2 = cowShmEnter(p);
    if (rc2 != SQLITE_OK) {
        rc = rc2;
        goto out;
    }
    bLocked = 1;
    pShm = p->pShm;
    bHeld = (pShm->sharedMask | pShm->exclMask) != 0;

    if (flags & SQLITE_SHM_UNLOCK) {
        rc2 = cowShmRelease(pInode, pShm, ofst, n);
        if (rc == SQLITE_OK)
            rc = rc2;
    } else if (flags & SQLITE_SHM_SHARED) {
        rc = cowShmLockShared(pInode, pShm, ofst, n);
        bRefresh = rc == SQLITE_OK && ofst + n > COWVFS_WAL_READ_LOCK0;
    } else {
        rc = cowShmLockExcl(pInode, pShm, ofst, n);
    }
    bHolds = (pShm->sharedMask | pShm->exclMask) != 0;
    /* the first slot a connection takes may begin a read (a checkpoint
     * reads the WAL holding no read mark): as a read mark */
    if (!bHeld && bHolds)
        bRefresh = 1;
out:
    if (bLocked)
        cowvfsMutexLeave(&pInode->mutex);
    /* counted while it holds a slot (cowvfsReadBegin), from before the
     * refresh on */
    if (!bHeld && bHolds)
        cowvfsReadBegin(pInode->pCont);
    if (p->bReadPin && p->pShm) {
        /* in WAL mode now: the WAL-index locks count, not SHARED */
        p->bReadPin = 0;
        cowvfsReadEnd(pInode->pCont);
    }
    /* What SQLite reads under this lock is what the others published
     * before it was taken: the store catches up before the next read
     * (cowvfsStoreCatchUp), whichever connection of the process makes it */
    if (bRefresh)
        cowvfsStoreStale(pInode->pCont);
    if ((bHeld || bHolds) && p->pShm && (p->pShm->sharedMask | p->pShm->exclMask) == 0)
        cowvfsReadEnd(pInode->pCont);
    return rc;
}

/*
 * xShmBarrier: a full memory barrier (a locked instruction on x86, a dmb
 * on ARM), so that WAL-index writes made before it are seen by any
 * connection that reads after it, in this process or another (the regions
 * are MAP_SHARED, one set of physical pages).  unixShmBarrier also passes
 * through a mutex (SQLite's static VFS1 mutex) for compilers without a
 * barrier builtin; GCC and clang have __sync_synchronize, and a pass
 * through the inode's mutex made every reader's barrier queue behind the
 * lock requests of every connection.  Before that the store is announced
 * (cow_store_announce): SQLite writes WAL frames before the WAL-index
 * header it writes between two barriers, and a reader in another process
 * reads the frames only after that header, so its refresh (at its first
 * read, cowvfsStoreCatchUp) waits for the publication that ends the write
 * transaction (cowvfsCommitTxn, when SQLite lets go of the write lock).
 */
void cowvfsShmBarrier(sqlite3_file *pFile)
{
    cowFile *p = (cowFile *)pFile;

    /* a header written now names frames the others have not been given
     * yet: they wait for the publication that ends the transaction
     * (cowvfsCommitTxn at the write lock's release) */
    if (!p->pInode->bReadonly)
        cow_store_announce(p->pInode->pStore);
    /* after the announcement too: a header written after this barrier is
     * never seen before it */
    __sync_synchronize();
}

/*
 * xShmUnmap: detaches the connection, releasing its lock slots; the last
 * connection of the process to detach unmaps and closes the object, and
 * unlinks it if no other process has it open (THE DEAD-MAN SWITCH above),
 * DELETEFLAG or not.  Always SQLITE_OK.
 */
int cowvfsShmUnmap(sqlite3_file *pFile, int deleteFlag)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    cowShmNode *pNode = &pInode->shm;
    cowShm *pShm = p->pShm;
    cowShm **pp;
    int bHeld;

    (void)deleteFlag;
    if (pShm == 0)
        goto out;
    /* out of WAL mode with SHARED held: that lock counts again (idle
     * pins, cowvfsReadBegin) */
    if (p->eFileLock >= SHARED_LOCK && !p->bReadPin) {
        p->bReadPin = 1;
        cowvfsReadBegin(pInode->pCont);
    }
    cowvfsMutexEnter(&pInode->mutex);
    bHeld = (pShm->sharedMask | pShm->exclMask) != 0;
    cowShmRelease(pInode, pShm, 0, SQLITE_SHM_NLOCK);
    for (pp = &pNode->pFirst; *pp; pp = &(*pp)->pNext) {
        if (*pp == pShm) {
            *pp = pShm->pNext;
            break;
        }
    }
    if (pNode->pFirst == 0)
        cowShmCloseNode(pInode);
    cowvfsMutexLeave(&pInode->mutex);
    if (bHeld)
        cowvfsReadEnd(pInode->pCont);
    p->pShm = 0;
    sqlite3_free(pShm);
out:
    return SQLITE_OK;
}
