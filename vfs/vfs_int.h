/*
 * vfs_int.h - structures shared by the files of the "cow" VFS.
 *
 *   vfs.c      registration, the sqlite3_vfs methods, the container registry,
 *              name mapping, error mapping
 *   vfs_io.c   the sqlite3_io_methods of container files: I/O, SQLite's lock
 *              states, file controls
 *   vfs_lock.c the process-level locks: OFD locks on the container's
 *              lock bytes (store/lockspace.h)
 *   vfs_shm.c  the WAL-index, shared between processes (xShmMap, xShmLock,
 *              ...)
 *   vfs_mirror.c  the journal mirror: a copy of a rollback journal's
 *              super-journal record beside the container, for other VFSes
 *   vfs_snap.c snapshots, branches, restore: pragmas, the C API of
 *              include/cowvfs.h, the cow_snapshots table-valued function
 *   vfs_reloc.c  giving space back: PRAGMA cow_balance and the background
 *              relocator's pragmas and URI parameters
 *   ext.c      the loadable-extension entry point
 *
 * The lock order is written at the top of vfs.c.  Every shared field below
 * says which lock protects it.
 */
#ifndef COWVFS_VFS_INT_H
#define COWVFS_VFS_INT_H

#include "sqlite_api.h"

#include <pthread.h>
#include <sys/types.h>

#include "store.h"

/* Internal: none of these is part of the library's interface, so keep them
 * out of the dynamic symbol table of build/cowvfs.so. */
#pragma GCC visibility push(hidden)

typedef struct cowvfsMutex cowvfsMutex;
typedef struct cowContainer cowContainer;
typedef struct cowInode cowInode;
typedef struct cowFile cowFile;
typedef struct cowShm cowShm;
typedef struct cowShmNode cowShmNode;

/*
 * A mutex that, in debug builds (COW_DEBUG), records which thread holds it so
 * that functions can assert(cowvfsMutexHeld(&m)).
 */
struct cowvfsMutex {
    pthread_mutex_t m;
    const void *owner; /* holder's identity (COW_DEBUG only); atomic access */
};
#define COWVFS_MUTEX_INITIALIZER { PTHREAD_MUTEX_INITIALIZER, 0 }
void cowvfsMutexInit(cowvfsMutex *mu);
void cowvfsMutexDestroy(cowvfsMutex *mu);
void cowvfsMutexEnter(cowvfsMutex *mu);
void cowvfsMutexLeave(cowvfsMutex *mu);
/* 1 if the calling thread holds MU; always 1 without COW_DEBUG (asserts only). */
int cowvfsMutexHeld(cowvfsMutex *mu);

/*
 * The WAL-index ("shm") of one database of a container, as this process
 * has it mapped: a POSIX shared-memory object shared by every process
 * (vfs_shm.c), opened by the first connection of the process that attaches
 * and closed when the last one detaches.  All fields: protected by
 * cowInode.mutex.
 */
struct cowShmNode {
    int fd;                      /* the shared-memory object, or -1 (closed) */
    int szRegion;                /* bytes per region (0 until the first map) */
    int nRegion;                 /* entries of apRegion */
    int nPerMap;                 /* regions per mmap() (a page may hold several) */
    char **apRegion;             /* mapped regions (MAP_SHARED); each pointer is
                                  * stable until the node is closed */
    int aLock[SQLITE_SHM_NLOCK]; /* per slot: n>0 SHARED holders, -1 EXCLUSIVE
                                  * (this process's connections) */
    cowShm *pFirst;              /* connections that have it attached */
};

/* One connection's attachment to its container's cowShmNode. */
struct cowShm {
    cowInode *pInode;           /* immutable */
    cowShm *pNext;              /* protected by pInode->mutex */
    unsigned short sharedMask;  /* slots held SHARED; protected by pInode->mutex */
    unsigned short exclMask;    /* slots held EXCLUSIVE; protected by pInode->mutex */
};

/*
 * One open container (store), shared by the databases in it that this
 * process has open: the live one and any snapshots and branches.  Created
 * by the first cowInodeAcquire() that names it, closed and freed when its
 * last cowInode goes.
 */
struct cowContainer {
    /* Immutable once published in the registry: */
    char *zPath;           /* the container path as first given (full path) */
    dev_t dev;             /* st_dev / st_ino of the container at open */
    ino_t ino;
    cow_store *pStore;     /* opened once per process; closed at the last release */
    int bReadonly;         /* pStore was opened with COW_OPEN_READONLY */
    int fdLock;            /* the lock descriptor (vfs_lock.c): this
                            * process's OFD locks on the container; closed at
                            * the last release */

    /* Protected by the registry mutex: */
    int nRef;              /* cowInodes of it */
    int bUnlinkOnClose;    /* unlink zPath after closing the store */
    cowInode *pFirst;      /* its open databases */
    cowContainer *pNext;   /* next in the registry */

    /* Protected by mutex (only the store lock is taken inside it): */
    cowvfsMutex mutex;
    unsigned commitIntervalMs; /* the last cow_store_set_commit_interval()
                            * value (PRAGMA cow_commit_interval, URI
                            * commit_interval), COW_COMMIT_INTERVAL_MS
                            * until set: the store has no getter */
    sqlite3_uint64 dirtyLimit; /* the last cow_store_set_dirty_limit() value
                            * (PRAGMA cow_dirty_limit, URI dirty_limit),
                            * COW_DIRTY_LIMIT until set */
    char *zMirror;         /* the live journal's mirror beside the container
                            * (its path), or NULL: vfs_mirror.c */
    char *zMirrorSuper;    /* the super-journal it names */
    int bMirror;           /* zMirror != NULL, also read without the mutex
                            * (atomic access) as a hint */
    char *zCollect;        /* a super-journal a stale mirror named, for
                            * cowvfsMirrorCollect, or NULL */
    int nReading;          /* connections of the process that may read the
                            * container now (cowvfsReadBegin): at 0 its
                            * generation is unpinned.  Atomic access; its
                            * moves between 0 and 1 under the mutex */

    unsigned truncSeq;     /* atomic: xTruncates of any file of the
                            * container by this process (cowWalGrow) */

    /* Atomic (cowvfsStoreStale, cowvfsStoreCatchUp): */
    sqlite3_uint64 staleSeq; /* WAL locks taken that ask for a refresh */
    sqlite3_uint64 freshSeq; /* staleSeq as a completed refresh began */
};

/*
 * One open database of a container, shared by every cowFile of the process
 * that opens it (like os_unix.c's unixInodeInfo): the live database, or a
 * snapshot or branch (URI parameter snapshot= or branch=), each with its own
 * SQLite lock states and WAL-index.  Created by cowInodeAcquire(), freed by
 * the cowvfsInodeRelease() that drops the last reference; each reference is
 * held by one cowFile (the main database, a journal, a WAL, a
 * super-journal).
 */
struct cowInode {
    /* Immutable once published in the registry: */
    cowContainer *pCont;   /* its container (this inode holds a reference) */
    cow_store *pStore;     /* pCont->pStore */
    char *zSubvol;         /* the snapshot or branch, "" for the live database */
    int eKind;             /* 0 (live), COW_SUBVOL_SNAPSHOT, _BRANCH or
                            * _INCOMPLETE (a branch being made, vfs_snap.c) */
    int bReadonly;         /* the store is read-only, or a snapshot */
    sqlite3_uint64 iSubvolId; /* its subvolume id: 256 for the live database */
    sqlite3_uint64 iLockBase; /* COW_LOCK_DB(iSubvolId): its lock bytes */
    cowvfsMutex mutex;     /* the lock-state mutex (see the lock order) */

    /* Protected by the registry mutex: */
    int nRef;              /* cowFiles holding a reference */
    cowInode *pNext;       /* next database of pCont */

    /* Protected by mutex (SQLite's lock states, see vfs_io.c): */
    int nShared;           /* cowFiles holding SHARED or more */
    cowFile *pOwner;       /* the cowFile holding RESERVED, PENDING or
                            * EXCLUSIVE, or NULL */
    int eLock;             /* pOwner's lock, else SHARED_LOCK if nShared,
                            * else NO_LOCK */
    cowShmNode shm;        /* the WAL-index */
    cowFile *pFiles;       /* its open main-database files (cowFile.pNextDb) */
    int nInPlaceWal;       /* its open nodatacow WALs (cowvfsWalInPlace;
                            * atomic, read by cowDeviceCharacteristics) */
    int nSnapWait;         /* snapshots waiting for a commit to finish: new
                            * EXCLUSIVE locks are refused meanwhile */
};

/* cowFile.ctrlFlags */
#define COWFILE_READONLY 0x01       /* opened read-only: refuse writes */
#define COWFILE_PSOW 0x02           /* claim SQLITE_IOCAP_POWERSAFE_OVERWRITE */
#define COWFILE_PERSIST_WAL 0x04    /* SQLITE_FCNTL_PERSIST_WAL is set */
#define COWFILE_DELETE 0x08         /* SQLITE_OPEN_DELETEONCLOSE */
#define COWFILE_INPLACE 0x10        /* a nodatacow WAL (counted in nInPlaceWal) */

/*
 * An open file of a container: the main database ("db"), its rollback
 * journal ("db-journal"), WAL ("db-wal") or a super-journal ("db-mj...").
 * Used by one connection, whose calls SQLite serialises, so the fields that
 * are not marked otherwise need no lock.
 */
struct cowFile {
    sqlite3_file base;     /* base class; must be first */
    cowInode *pInode;      /* the container; this file holds one reference */
    cow_file *pCf;         /* the store file; NULL for a missing WAL of a
                            * read-only store (reads as empty) */
    char *zPath;           /* the name SQLite opened (for logs); owned */
    char *zName;           /* store file name ("db-wal"); owned */
    int eType;             /* SQLITE_OPEN_MAIN_DB, _MAIN_JOURNAL, _WAL or
                            * _SUPER_JOURNAL */
    int ctrlFlags;         /* COWFILE_* */
    int eFileLock;         /* this file's lock, NO_LOCK..EXCLUSIVE_LOCK;
                            * changed only under pInode->mutex */
    int szChunk;           /* SQLITE_FCNTL_CHUNK_SIZE: preallocation unit, or 0 */
    cowShm *pShm;          /* the WAL-index attachment, or NULL */
    int bReadPin;          /* counted in pCont->nReading for a SHARED lock
                            * outside WAL mode (cowvfsReadBegin) */
    sqlite3_int64 iGrown;  /* a nodatacow WAL: it was at least this long
                            * (bytes) when pCont->truncSeq was iGrownSeq
                            * (cowWalGrow); 0: not known */
    unsigned iGrownSeq;
    cowFile *pNextDb;      /* main databases: next in pInode->pFiles;
                            * protected by pInode->mutex */
};

/* SQLite's lock levels as used by xLock (sqlite3.h has SQLITE_LOCK_*). */
#define NO_LOCK SQLITE_LOCK_NONE
#define SHARED_LOCK SQLITE_LOCK_SHARED
#define RESERVED_LOCK SQLITE_LOCK_RESERVED
#define PENDING_LOCK SQLITE_LOCK_PENDING
#define EXCLUSIVE_LOCK SQLITE_LOCK_EXCLUSIVE

/* ---- vfs.c ---- */

/* The kind of operation an error happened in (for cowvfsMapError). */
enum cowvfsOp {
    COWVFS_OP_OPEN,   /* opening a container or a store file */
    COWVFS_OP_IO,     /* an I/O method of an open file */
    COWVFS_OP_DELETE, /* xDelete */
    COWVFS_OP_ACCESS  /* xAccess */
};

/* cowvfsInodeAcquire() flags */
#define ACQ_CREATE 0x1     /* COW_OPEN_CREATE: make a missing container */
#define ACQ_READONLY 0x2   /* COW_OPEN_READONLY */
#define ACQ_PROBE 0x4      /* SQLITE_NOTFOUND if it is not a container */
#define ACQ_UNFINISHED 0x8 /* an unfinished branch may be opened */

int cowvfsInodeAcquire(const char *zPath, const char *zSubvol, int acq, cowInode **ppInode);
int cowvfsMapError(int cowrc, enum cowvfsOp eOp);
int cowvfsError(cow_store *pStore, int cowrc, enum cowvfsOp eOp, const char *zOp,
                const char *zFile, sqlite3_int64 iOff);
void cowvfsInodeRelease(cowInode *pInode, int bUnlink);

/* ---- vfs_io.c ---- */

extern const sqlite3_io_methods cowvfsIoMethods;
int cowvfsCommitTxn(cowFile *p);
/*
 * For a WAL just opened read-write (vfs.c cowOpen): with BWANT, an empty
 * WAL becomes nodatacow (cow_file_set_nodatacow: its frames are then
 * overwritten in place; docs/DESIGN.md, "Nodatacow WAL"); one that holds
 * frames stays as it is.  A nodatacow WAL is counted in its inode
 * (nInPlaceWal, until cowClose), and the database then stops claiming
 * SQLITE_IOCAP_SEQUENTIAL, so that SQLite syncs a restarted WAL's header
 * before its first frame overwrites an old one (wal.c syncHeader).
 * Returns SQLITE_OK or the logged error of the store.
 */
int cowvfsWalInPlace(cowFile *p, int bWant);
int cowvfsStoreRefresh(cowInode *pInode);
/*
 * Idle pins (docs/DESIGN.md, "Several processes"): PCONT->nReading counts
 * the connections of this process that may read the container now: a
 * database file holding SHARED or more outside WAL mode (cowFile.bReadPin;
 * in WAL mode SQLite holds SHARED for the connection's whole life), and a
 * WAL-index attachment holding any lock slot (a read mark, the writer's,
 * the checkpointer's).  cowvfsReadBegin counts one up, before the refresh
 * that follows the lock; cowvfsReadEnd counts one down, and the last one
 * unpins the process's generation (cow_store_unpin), so that an idle
 * connection (a shell left open) does not keep the owner from reusing
 * what it freed since.  Whatever reads the store later refreshes first
 * (the lock's refresh, or the store's own, store/xproc.h
 * xproc_view_begin).  Only the count's moves between 0 and 1 take
 * pCont->mutex (and, inside it, the store's lock, for the unpin); the
 * others are one atomic step, so that busy connections do not queue on it.
 */
void cowvfsReadBegin(cowContainer *pCont);
void cowvfsReadEnd(cowContainer *pCont);
/*
 * WAL mode's refresh, deferred to the first read after the lock that asks
 * for it (vfs_shm.c cowvfsShmLock): cowvfsStoreStale counts a lock taken;
 * cowvfsStoreCatchUp, called by every read of a container file (xRead,
 * xFileSize, xFetch), refreshes the store (cowvfsStoreRefresh) unless a
 * refresh that began after the last such lock has completed.  Each lock's
 * reads thus see everything published before it was taken.  A refresh
 * may come inside another connection's read transaction: in WAL mode a
 * newer view keeps every snapshot whole (frames are never rewritten while
 * a read mark covers them, and a checkpoint writes into the database only
 * pages that a reader reads from the WAL, or waits for READ_LOCK(0)).
 * CatchUp returns SQLITE_OK or the refresh's logged error.  Lock-free
 * (atomics); the refresh takes the store's locks.
 */
void cowvfsStoreStale(cowContainer *pCont);
int cowvfsStoreCatchUp(cowInode *pInode);
int cowvfsStorePublish(cowFile *p);
void cowvfsSetCommitInterval(cowInode *pInode, unsigned ms);
void cowvfsSetDirtyLimit(cowInode *pInode, sqlite3_uint64 nBytes);

/* The VFS that was the default at registration (cowvfs_register). */
sqlite3_vfs *cowvfsDefaultVfs(void);
/* The cow VFS itself. */
sqlite3_vfs *cowvfsSelf(void);

/* ---- vfs_mirror.c ---- */

int cowvfsMirrorBeforeWrite(cowFile *p, const void *zBuf, int iAmt, sqlite3_int64 iOfst);
int cowvfsMirrorAfterChange(cowFile *p, sqlite3_int64 iOfst);
void cowvfsMirrorCollect(cowContainer *pCont);
int cowvfsMirrorJournalDeleted(cowContainer *pCont);
void cowvfsMirrorOpen(cowContainer *pCont, const char *zJournal);
void cowvfsMirrorFree(cowContainer *pCont);

/* ---- vfs_snap.c ---- */

/* PRAGMA cow_snapshot / cow_branch / cow_restore / cow_delete on P;
 * SQLITE_NOTFOUND for any other pragma (see vfs_snap.c). */
int cowvfsSnapPragma(cowFile *p, const char *zName, const char *zVal, char **pzOut);
/* Registers the cow_snapshots table-valued function on DB. */
int cowvfsSnapRegister(sqlite3 *db);
/* The same as an auto-extension entry point (every new connection). */
int cowvfsAutoExtension(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

/* ---- vfs_reloc.c ---- */

/* PRAGMA cow_balance, cow_reloc, cow_reloc_slack, cow_reloc_rate on P;
 * SQLITE_NOTFOUND for any other pragma (see vfs_reloc.c). */
int cowvfsRelocPragma(cowFile *p, const char *zName, const char *zVal, char **pzOut);
/* The URI parameters reloc=, reloc_slack=, reloc_rate= of main database
 * ZNAME, applied to P's container (bad values logged and ignored). */
void cowvfsRelocUriParams(cowFile *p, const char *zName);

/* ---- vfs_lock.c ---- */

int cowvfsLockOpen(const char *zPath, int *pFd);
void cowvfsLockClose(int fd);
int cowvfsLockSet(int fd, sqlite3_uint64 iOff, int nByte, int eType, int rcErr);
int cowvfsLockHolder(int fd, sqlite3_uint64 iOff, int nByte, int *peType, int rcErr);

/* ---- vfs_shm.c ---- */

int cowvfsShmMap(sqlite3_file *pFile, int iRegion, int szRegion, int bExtend,
                 void volatile **pp);
int cowvfsShmLock(sqlite3_file *pFile, int ofst, int n, int flags);
void cowvfsShmBarrier(sqlite3_file *pFile);
int cowvfsShmUnmap(sqlite3_file *pFile, int deleteFlag);
void cowvfsShmFree(cowInode *pInode);
int cowvfsShmName(cowInode *pInode, char *zBuf, int nBuf);
void cowvfsShmReset(cowShmNode *pNode);

#pragma GCC visibility pop

/* ---- ext.c ---- */

int sqlite3_cowvfs_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

#endif /* COWVFS_VFS_INT_H */
