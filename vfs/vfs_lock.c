/*
 * vfs_lock.c - the process-level locks of the cow VFS: open-file-
 * description locks (fcntl F_OFD_SETLK / F_OFD_GETLK, Linux 3.15) on
 * bytes of the container file far past its data (store/lockspace.h).
 *
 * Each process opens the container once more, for its locks alone: one
 * lock descriptor per cowContainer (vfs.c), opened with the container and
 * closed at its last release.  Every database of the container (the live
 * one, each snapshot and branch) has its own COW_LOCK_DB_SPAN bytes, laid
 * out as os_unix.c lays its locks on a database file and its -shm file:
 * PENDING, RESERVED and SHARED for SQLite's file locks (vfs_io.c), the
 * eight WAL-index locks and the WAL-index's dead-man switch (vfs_shm.c).
 *
 * Why OFD locks.  A POSIX (F_SETLK) lock belongs to the process, so
 * closing ANY descriptor of the file drops every lock the process holds on
 * it: os_unix.c must defer closes while locks are held (unixInodeInfo's
 * pUnused list) and the store, which opens the container through a
 * descriptor of its own, would drop SQLite's locks whenever it closed one.
 * An OFD lock belongs to the open file description: only closing the lock
 * descriptor itself (the last descriptor of that description) drops it, so
 * that known issue of os_unix.c does not arise here.  Locks of two open
 * file descriptions conflict even within one process, and a lock request on
 * bytes this description already holds converts the lock, as POSIX locks
 * do within a process; every process therefore keeps exactly one lock
 * descriptor per container and orders its own connections in memory first
 * (cowInode, cowShmNode), as os_unix.c does.  A description inherited
 * across fork() is shared, with its locks: a child must open containers
 * itself.
 *
 * The locks are never waited for (F_OFD_SETLK, not F_OFD_SETLKW): a
 * conflict is SQLITE_BUSY and SQLite's busy handler retries, as with the
 * unix VFS built without SQLITE_ENABLE_SETLK_TIMEOUT.
 */
#include "sqlite_api.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "vfs_int.h"

/*
 * Opens container ZPATH for its locks into *PFD: read-write when the file
 * allows it, else read-only (F_OFD_SETLK of F_WRLCK needs a descriptor open
 * for writing, EBADF otherwise; a read-only process in WAL mode still takes
 * WAL-index locks exclusively, for SQLite's recovery and read marks, so
 * read-write is tried first even for a read-only store: nothing is ever
 * written through it).  Close-on-exec.  Returns SQLITE_OK, or
 * SQLITE_CANTOPEN (logged) with *PFD -1.
 */
int cowvfsLockOpen(const char *zPath, int *pFd)
{
    int fd;

    do
        fd = open(zPath, O_RDWR | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        do
            fd = open(zPath, O_RDONLY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
    }
    *pFd = fd;
    if (fd < 0) {
        sqlite3_log(SQLITE_CANTOPEN, "cow: open %s for its locks: %s", zPath, strerror(errno));
        return SQLITE_CANTOPEN;
    }
    return SQLITE_OK;
}

/* Closes lock descriptor FD (from cowvfsLockOpen; -1 is ignored), which
 * drops every lock it holds. */
void cowvfsLockClose(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* The SQLite result for errno ERR of a lock call, as os_unix.c's
 * sqliteErrorFromPosixError: a conflict (or a transient failure) is
 * SQLITE_BUSY, EPERM SQLITE_PERM, anything else RCERR. */
static int cowLockErrno(int err, int rcErr)
{
    switch (err) {
    case EACCES:
    case EAGAIN:
    case ETIMEDOUT:
    case EBUSY:
    case EINTR:
    case ENOLCK:
        return SQLITE_BUSY;
    case EPERM:
        return SQLITE_PERM;
    default:
        return rcErr;
    }
}

/*
 * Sets a lock of type ETYPE (F_RDLCK, F_WRLCK, or F_UNLCK to release) on
 * NBYTE bytes from byte IOFF of the file of lock descriptor FD, without
 * waiting (F_OFD_SETLK).  Locks FD already holds on those bytes are
 * converted.  Returns SQLITE_OK; SQLITE_BUSY if another open file
 * description (another process's, or another descriptor of this one) holds
 * a conflicting lock; SQLITE_PERM; or RCERR (one of SQLITE_IOERR_LOCK,
 * _UNLOCK, _RDLOCK, _SHMLOCK: logged) for any other failure, e.g. EBADF
 * for F_WRLCK on a descriptor open read-only.
 */
int cowvfsLockSet(int fd, sqlite3_uint64 iOff, int nByte, int eType, int rcErr)
{
    struct flock fl;
    int rc = SQLITE_OK;
    int err;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = (short)eType;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)iOff;
    fl.l_len = (off_t)nByte;
    fl.l_pid = 0; /* required for OFD locks */
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        err = errno;
        rc = cowLockErrno(err, rcErr);
        if (rc != SQLITE_BUSY)
            sqlite3_log(rc, "cow: fcntl(F_OFD_SETLK, type %d, byte %llu+%d): %s", eType,
                        (unsigned long long)iOff, nByte, strerror(err));
    }
    return rc;
}

/*
 * Sets *PETYPE to the type of a lock another open file description holds
 * on NBYTE bytes from byte IOFF of FD's file (the first found; on one byte
 * all holders' locks are of one type): F_WRLCK, F_RDLCK or F_UNLCK (none).  Locks of FD's own description are not seen
 * (F_OFD_GETLK).  Returns SQLITE_OK, or RCERR (logged) if fcntl fails.
 * Like os_unix.c's F_GETLK probes (unixCheckReservedLock,
 * unixLockSharedMemory).
 */
int cowvfsLockHolder(int fd, sqlite3_uint64 iOff, int nByte, int *peType, int rcErr)
{
    struct flock fl;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK; /* conflicts with any lock */
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)iOff;
    fl.l_len = (off_t)nByte;
    fl.l_pid = 0;
    *peType = F_UNLCK;
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0) {
        sqlite3_log(rcErr, "cow: fcntl(F_OFD_GETLK, byte %llu+%d): %s",
                    (unsigned long long)iOff, nByte, strerror(errno));
        return rcErr;
    }
    *peType = fl.l_type;
    return SQLITE_OK;
}
