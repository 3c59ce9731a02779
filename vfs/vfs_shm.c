/*
 * vfs_shm.c - the WAL-index ("shared memory") of the cow VFS.
 *
 * A container can only be open in one process (the store flocks it), so the
 * WAL-index need not be shared between processes: it lives in memory, one
 * cowShmNode per container (in its cowInode), and there is no -shm file.
 * Every connection of the process that maps it sees the same regions.  When
 * the last connection unmaps, the regions are freed; the next connection
 * finds a zeroed WAL-index and SQLite rebuilds it from the WAL (walIndex-
 * Recover), exactly as after the last unix connection closes.
 *
 * The WAL locks are SQLite's SQLITE_SHM_NLOCK slots with SHARED and
 * EXCLUSIVE modes, between the connections of this process, as unixShmLock
 * does between connections:
 *
 *   cowShmNode.aLock[i]   n > 0: n connections hold slot i SHARED;
 *                         -1: one holds it EXCLUSIVE; 0: free
 *   cowShm.sharedMask     the slots this connection holds SHARED
 *   cowShm.exclMask       the slots this connection holds EXCLUSIVE
 *
 * A request for a range of slots is granted for all of them or, on the
 * first conflict, for none (SQLITE_BUSY).  Everything here is protected by
 * cowInode.mutex.
 *
 * Releasing the WAL write lock ends a write transaction: the store is
 * committed first (see COMMITS in vfs_io.c).
 */
#include "sqlite_api.h"

#include <assert.h>
#include <string.h>

#include "vfs_int.h"

/* The WAL write lock is slot 0 (WAL_WRITE_LOCK in SQLite's wal.c): held
 * EXCLUSIVE for the whole of a write transaction. */
#define COWVFS_WAL_WRITE_LOCK 0

/*
 * Enters P's inode mutex with P attached to the shared-memory node: the
 * first call makes P's cowShm record (allocated before the mutex is taken)
 * and links it into the node.  Returns SQLITE_OK with the mutex held, or
 * SQLITE_IOERR_NOMEM without it.
 */
static int cowShmEnter(cowFile *p)
{
    cowInode *pInode = p->pInode;
    cowShm *pNew = 0;

    if (p->pShm == 0) {
        pNew = sqlite3_malloc64(sizeof(*pNew));
        if (pNew == 0)
            return SQLITE_IOERR_NOMEM;
        memset(pNew, 0, sizeof(*pNew));
    }
    cowvfsMutexEnter(&pInode->mutex);
    if (pNew) {
        if (p->pShm == 0) {
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

/* Releases every lock slot PSHM holds.  Caller holds the inode's mutex. */
static void cowShmReleaseAll(cowShmNode *pNode, cowShm *pShm)
{
    int i;

    assert(cowvfsMutexHeld(&pShm->pInode->mutex));
    for (i = 0; i < SQLITE_SHM_NLOCK; i++) {
        unsigned short bit = (unsigned short)(1u << i);
        if (pShm->exclMask & bit) {
            assert(pNode->aLock[i] == -1);
            pNode->aLock[i] = 0;
        } else if (pShm->sharedMask & bit) {
            assert(pNode->aLock[i] > 0);
            pNode->aLock[i]--;
        }
    }
    pShm->exclMask = 0;
    pShm->sharedMask = 0;
}

/*
 * Frees the regions of PNODE and resets it to empty (no connection may be
 * attached).  Caller holds the inode's mutex or has the only reference to
 * the inode.
 */
void cowvfsShmFree(cowShmNode *pNode)
{
    int i;

    assert(pNode->pFirst == 0);
    for (i = 0; i < pNode->nRegion; i++)
        sqlite3_free(pNode->apRegion[i]);
    sqlite3_free(pNode->apRegion);
    memset(pNode, 0, sizeof(*pNode));
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
 * xShmMap: sets *PP to region IREGION (SZREGION bytes, zeroed when first
 * allocated, at a stable address until the last connection unmaps).  If the
 * region does not exist yet, BEXTEND allocates it and every region before
 * it; without BEXTEND *PP is NULL and the result SQLITE_OK, per SQLite's
 * contract.  The first call attaches the connection.  Errors (logged):
 * SQLITE_IOERR_SHMSIZE (a region size other than the first one's),
 * SQLITE_IOERR_SHMMAP (bad arguments), SQLITE_IOERR_NOMEM.
 */
int cowvfsShmMap(sqlite3_file *pFile, int iRegion, int szRegion, int bExtend,
                 void volatile **pp)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    cowShmNode *pNode = &pInode->shm;
    int rc = SQLITE_OK;
    int bLocked = 0;

    *pp = 0;
    if (iRegion < 0 || szRegion <= 0) {
        rc = SQLITE_IOERR_SHMMAP;
        sqlite3_log(rc, "cow: shm map %s region %d size %d: bad arguments", p->zPath, iRegion,
                    szRegion);
        goto out;
    }
    rc = cowShmEnter(p);
    if (rc != SQLITE_OK)
        goto out;
    bLocked = 1;
    if (pNode->nRegion > 0 && pNode->szRegion != szRegion) {
        rc = SQLITE_IOERR_SHMSIZE;
        sqlite3_log(rc, "cow: shm map %s: region size %d, earlier %d", p->zPath, szRegion,
                    pNode->szRegion);
        goto out;
    }
    if (iRegion >= pNode->nRegion) {
        char **apNew;
        if (!bExtend)
            goto out;
        apNew = sqlite3_realloc64(pNode->apRegion, (sqlite3_uint64)(iRegion + 1) * sizeof(char *));
        if (apNew == 0) {
            rc = SQLITE_IOERR_NOMEM;
            goto out;
        }
        pNode->apRegion = apNew;
        pNode->szRegion = szRegion;
        while (pNode->nRegion <= iRegion) {
            char *pRegion = sqlite3_malloc64((sqlite3_uint64)szRegion);
            if (pRegion == 0) {
                rc = SQLITE_IOERR_NOMEM;
                goto out;
            }
            memset(pRegion, 0, (size_t)szRegion);
            pNode->apRegion[pNode->nRegion++] = pRegion;
        }
    }
    *pp = pNode->apRegion[iRegion];
out:
    if (bLocked)
        cowvfsMutexLeave(&pInode->mutex);
    return rc;
}

/*
 * xShmLock: takes or releases the N slots from OFST, SHARED or EXCLUSIVE
 * (FLAGS: SQLITE_SHM_LOCK or _UNLOCK with SQLITE_SHM_SHARED or _EXCLUSIVE).
 * SHARED is refused while another connection holds a slot EXCLUSIVE;
 * EXCLUSIVE while another holds a slot at all.  Slots already held in the
 * mode asked for are kept.  Releasing the WAL write lock commits the store
 * first (the lock is released even if that fails).  Returns SQLITE_OK,
 * SQLITE_BUSY, SQLITE_MISUSE (bad arguments, logged), SQLITE_IOERR_NOMEM or
 * the error of the commit (logged; SQLite ignores it, the store has failed).
 */
int cowvfsShmLock(sqlite3_file *pFile, int ofst, int n, int flags)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    cowShmNode *pNode = &pInode->shm;
    cowShm *pShm;
    int rc = SQLITE_OK;
    int bLocked = 0;
    int i;

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
    int rcEnter = cowShmEnter(p);
    if (rcEnter != SQLITE_OK) {
        rc = rcEnter;
        goto out;
    }
    bLocked = 1;
    pShm = p->pShm;

    if (flags & SQLITE_SHM_UNLOCK) {
        for (i = ofst; i < ofst + n; i++) {
            unsigned short bit = (unsigned short)(1u << i);
            if (pShm->exclMask & bit) {
                pNode->aLock[i] = 0;
            } else if (pShm->sharedMask & bit) {
                assert(pNode->aLock[i] > 0);
                pNode->aLock[i]--;
            }
            pShm->exclMask &= (unsigned short)~bit;
            pShm->sharedMask &= (unsigned short)~bit;
        }
    } else if (flags & SQLITE_SHM_SHARED) {
        for (i = ofst; i < ofst + n; i++) {
            unsigned short bit = (unsigned short)(1u << i);
            if (((pShm->sharedMask | pShm->exclMask) & bit) == 0 && pNode->aLock[i] < 0) {
                rc = SQLITE_BUSY;
                goto out;
            }
        }
        for (i = ofst; i < ofst + n; i++) {
            unsigned short bit = (unsigned short)(1u << i);
            if (((pShm->sharedMask | pShm->exclMask) & bit) == 0) {
                pNode->aLock[i]++;
                pShm->sharedMask |= bit;
            }
        }
    } else {
        for (i = ofst; i < ofst + n; i++) {
            unsigned short bit = (unsigned short)(1u << i);
            if ((pShm->exclMask & bit) == 0 &&
                pNode->aLock[i] != ((pShm->sharedMask & bit) ? 1 : 0)) {
                rc = SQLITE_BUSY;
                goto out;
            }
        }
        for (i = ofst; i < ofst + n; i++) {
            unsigned short bit = (unsigned short)(1u << i);
            if ((pShm->exclMask & bit) == 0) {
                pNode->aLock[i] = -1;
                pShm->exclMask |= bit;
                pShm->sharedMask &= (unsigned short)~bit;
            }
        }
    }
out:
    if (bLocked)
        cowvfsMutexLeave(&pInode->mutex);
    return rc;
}

/*
 * xShmBarrier: a full memory barrier, plus a pass through the container's
 * mutex as unixShmBarrier does, so that WAL-index writes made before it are
 * seen by any connection that reads after it.
 */
void cowvfsShmBarrier(sqlite3_file *pFile)
{
    cowFile *p = (cowFile *)pFile;

    __sync_synchronize();
    cowvfsMutexEnter(&p->pInode->mutex);
    cowvfsMutexLeave(&p->pInode->mutex);
}

/*
 * xShmUnmap: detaches the connection, releasing its lock slots; the last
 * connection to detach frees the regions (DELETEFLAG or not: there is no
 * file to delete and the contents are rebuilt from the WAL when needed).
 * Always SQLITE_OK.
 */
int cowvfsShmUnmap(sqlite3_file *pFile, int deleteFlag)
{
    cowFile *p = (cowFile *)pFile;
    cowInode *pInode = p->pInode;
    cowShmNode *pNode = &pInode->shm;
    cowShm *pShm = p->pShm;
    cowShm **pp;

    (void)deleteFlag;
    if (pShm == 0)
        goto out;
    cowvfsMutexEnter(&pInode->mutex);
    cowShmReleaseAll(pNode, pShm);
    for (pp = &pNode->pFirst; *pp; pp = &(*pp)->pNext) {
        if (*pp == pShm) {
            *pp = pShm->pNext;
            break;
        }
    }
    if (pNode->pFirst == 0)
        cowvfsShmFree(pNode);
    cowvfsMutexLeave(&pInode->mutex);
    p->pShm = 0;
    sqlite3_free(pShm);
out:
    return SQLITE_OK;
}
