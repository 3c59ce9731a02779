/*
 * vfs_mirror.c - the journal mirror: what another VFS must see of a
 * container's rollback journal while it names a super-journal.
 *
 * A transaction over several attached databases (a multi-database commit)
 * writes, at the end of each database's rollback journal, the name of its
 * super-journal (pager.c writeSuperJournal: the 4-byte page number
 * PAGER_SJ_PGNO, the name, its 4-byte length, its 4-byte checksum and the
 * 8-byte journal magic).  After a crash, the recovery of any one of the
 * databases deletes the super-journal unless another database's journal
 * still names it (pager.c pager_delsuper), and a journal whose
 * super-journal is gone is not hot: its database keeps the transaction.
 * pager_delsuper looks at the other journals through ITS OWN database's
 * VFS, by the names the super-journal lists.  A unix database recovered
 * first would look for "/dir/aux.db-journal" of a cow database on the file
 * system, find nothing (the journal lives inside the container), delete
 * the super-journal, and the cow database would then keep the transaction
 * that the unix one rolled back (issue 12).
 *
 * So while the live database's journal names a super-journal, a real file
 * of the default VFS stands at the journal's own path beside the container,
 * holding a copy of the journal's super-journal record and nothing else:
 * pager.c readSuperJournal reads only the end of a journal (its size, the
 * length, checksum and magic in its last 16 bytes, the name before them),
 * so it finds the same name there.  The record starts with PAGER_SJ_PGNO,
 * whose first byte is 0 (the number is below 2^24), so SQLite would never
 * take the mirror for a hot journal of its own (pager.c hasHotJournal).
 *
 * Its life, for a journal of the live database:
 *   - made when SQLite writes the record's last 8 bytes (the magic, one
 *     xWrite of 8 bytes), BEFORE the container's journal holds them: the
 *     mirror is written, fsynced, and its directory fsynced (the default
 *     VFS's xSync of a journal it created).  The container's journal can
 *     become durable at any moment after (a background commit, the
 *     database's xSync), and the database may already hold pages of the
 *     transaction (a cache spill writes them before the commit), so the
 *     mirror has to be there first: the other way round, a crash between
 *     the two left a journal that names the super-journal durably, no
 *     mirror, and a unix database recovered first deleted the
 *     super-journal (the crash simulator's attach-persist found it);
 *   - removed (the directory fsynced) as soon as the container's journal
 *     stops naming that super-journal: deleted, truncated, or rewritten at
 *     offset 0 (pager.c pager_end_transaction of the commit, of a
 *     rollback, of the recovery of a hot journal).  By then the
 *     super-journal is gone (a commit), or the database has been rolled
 *     back and synced (pager.c pager_playback syncs it before it ends the
 *     journal), so a crash between the two is harmless;
 *   - at the first writable open of the container in a process, one found
 *     beside it is adopted if the container's journal names the same
 *     super-journal, and removed otherwise: a stale one, left by a crash
 *     between the mirror and the record reaching the container (or by a
 *     removal that failed).  A unix database recovered while it was there
 *     kept the super-journal for it, and no journal that names it is left
 *     to delete it: cowvfsMirrorCollect then does what pager_delsuper
 *     does for it.
 * A transaction over one database writes no record, so it makes no mirror
 * and pays nothing but a test of each journal write's length.
 *
 * The container stays authoritative for the cow VFS itself: its xAccess,
 * xOpen and xDelete of "NAME-journal" answer from the store (vfs.c); the
 * mirror is for other VFSes only.  Snapshots cannot be written, and a
 * branch's journal goes by the same path as the live database's (the
 * super-journal lists names without URI parameters), so only the live
 * database has a mirror.
 *
 * State: cowContainer.zMirror, zMirrorSuper and zCollect, under
 * cowContainer.mutex, which is held across the file operations here (the
 * store's lock and the default VFS's calls are taken inside it; neither
 * calls back into this VFS; cowvfsMirrorCollect, which calls the cow VFS,
 * holds it only to take zCollect).
 */
#include "sqlite_api.h"

#include <assert.h>
#include <string.h>

#include "vfs_int.h"

/* pager.c aJournalMagic: the journal header's magic, also the last 8
 * bytes of a super-journal record. */
static const unsigned char aJournalMagic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};

/* Reading a journal through either a store file or a default-VFS file. */
struct mirrorSrc {
    cow_file *pCf;       /* a store file, or NULL */
    sqlite3_file *pFile; /* a default-VFS file, or NULL */
};

/* Reads N bytes at OFF of SRC; 0, or -1 on any error or short read. */
static int mirrorRead(struct mirrorSrc *src, void *buf, int n, sqlite3_int64 off)
{
    size_t nRead = 0;

    if (src->pCf)
        return cow_file_read(src->pCf, buf, (size_t)n, (uint64_t)off, &nRead) == COW_OK &&
                       nRead == (size_t)n
                   ? 0
                   : -1;
    return src->pFile->pMethods->xRead(src->pFile, buf, n, off) == SQLITE_OK ? 0 : -1;
}

static int mirrorSize(struct mirrorSrc *src, sqlite3_int64 *pSize)
{
    uint64_t size = 0;

    if (src->pCf) {
        if (cow_file_size(src->pCf, &size) != COW_OK || size > (uint64_t)INT64_MAX)
            return -1;
        *pSize = (sqlite3_int64)size;
        return 0;
    }
    return src->pFile->pMethods->xFileSize(src->pFile, pSize) == SQLITE_OK ? 0 : -1;
}

static sqlite3_uint64 mirrorGet32(const unsigned char *p)
{
    return ((sqlite3_uint64)p[0] << 24) | ((sqlite3_uint64)p[1] << 16) |
           ((sqlite3_uint64)p[2] << 8) | p[3];
}

/*
 * The super-journal record at the end of the journal SRC, read as pager.c
 * readSuperJournal reads it (the same bounds: a length of 1 to NMAX-1
 * bytes, the magic, the checksum of the name's bytes as C chars).  On
 * success returns 1 with *PZSUPER (sqlite3_malloc()ed, the caller frees)
 * the name.  Returns 0 if the journal names no super-journal, -1 on a
 * read error or SQLITE_NOMEM (nothing returned).
 */
static int mirrorRecord(struct mirrorSrc *src, int nMax, char **pzSuper)
{
    sqlite3_int64 szJ = 0;
    unsigned char aTail[16];
    sqlite3_uint64 len;
    unsigned cksum;
    char *zSuper = 0;
    int res = 0;
    int i;

    *pzSuper = 0;
    if (mirrorSize(src, &szJ) != 0) {
        res = -1;
        goto out;
    }
    if (szJ < 16)
        goto out;
    if (mirrorRead(src, aTail, 16, szJ - 16) != 0) {
        res = -1;
        goto out;
    }
    len = mirrorGet32(aTail);
    cksum = (unsigned)mirrorGet32(aTail + 4);
    if (len == 0 || len >= (sqlite3_uint64)nMax || (sqlite3_int64)len > szJ - 16 ||
        memcmp(aTail + 8, aJournalMagic, 8) != 0)
        goto out;
    zSuper = sqlite3_malloc((int)len + 1);
    if (zSuper == 0) {
        res = -1;
        goto out;
    }
    if (mirrorRead(src, zSuper, (int)len, szJ - 16 - (sqlite3_int64)len) != 0) {
        res = -1;
        goto out;
    }
    zSuper[len] = 0;
    for (i = 0; i < (int)len; i++)
        cksum -= (unsigned)(int)zSuper[i]; /* as pager.c: a char, signed here */
    if (cksum != 0 || zSuper[0] == 0)
        goto out;
    *pzSuper = zSuper;
    zSuper = 0;
    res = 1;
out:
    sqlite3_free(zSuper);
    return res;
}

/* The bound pager.c gives readSuperJournal: mxPathname + 1. */
static int mirrorMaxName(void)
{
    return cowvfsDefaultVfs()->mxPathname + 1;
}

/*
 * Removes the mirror of PCONT (it must have one) with the default VFS's
 * xDelete, the directory synced.  Returns SQLITE_OK (also if it was
 * gone already) or the default VFS's error (logged; the state is kept so
 * that a later change of the journal tries again).  Caller holds
 * pCont->mutex.
 */
static int mirrorRemove(cowContainer *pCont)
{
    sqlite3_vfs *pVfs = cowvfsDefaultVfs();
    int rc;

    assert(cowvfsMutexHeld(&pCont->mutex) && pCont->zMirror);
    rc = pVfs->xDelete(pVfs, pCont->zMirror, 1);
    if (rc == SQLITE_IOERR_DELETE_NOENT)
        rc = SQLITE_OK;
    if (rc != SQLITE_OK) {
        sqlite3_log(rc,
                    "cow: remove the journal mirror %s (it names super-journal %s): "
                    "failed",
                    pCont->zMirror, pCont->zMirrorSuper);
        goto out;
    }
    sqlite3_free(pCont->zMirror);
    sqlite3_free(pCont->zMirrorSuper);
    pCont->zMirror = pCont->zMirrorSuper = 0;
    __atomic_store_n(&pCont->bMirror, 0, __ATOMIC_RELAXED);
out:
    return rc;
}

/*
 * Writes the mirror ZPATH holding record ZREC (NREC bytes): created or
 * truncated, written, then synced with the default VFS's xSync, which for
 * a journal it created also syncs the directory.  Returns SQLITE_OK or the
 * default VFS's error (logged).
 */
static int mirrorWrite(const char *zPath, const unsigned char *zRec, int nRec)
{
    sqlite3_vfs *pVfs = cowvfsDefaultVfs();
    sqlite3_file *pFile = sqlite3_malloc(pVfs->szOsFile);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MAIN_JOURNAL;
    int rc;

    if (pFile == 0)
        return SQLITE_NOMEM;
    memset(pFile, 0, (size_t)pVfs->szOsFile);
    rc = pVfs->xOpen(pVfs, zPath, pFile, flags, &flags);
    if (rc == SQLITE_OK)
        rc = pFile->pMethods->xTruncate(pFile, 0);
    if (rc == SQLITE_OK)
        rc = pFile->pMethods->xWrite(pFile, zRec, nRec, 0);
    if (rc == SQLITE_OK)
        rc = pFile->pMethods->xSync(pFile, SQLITE_SYNC_FULL);
    if (pFile->pMethods)
        pFile->pMethods->xClose(pFile);
    sqlite3_free(pFile);
    if (rc != SQLITE_OK)
        sqlite3_log(rc, "cow: write the journal mirror %s: failed", zPath);
    return rc;
}

/*
 * Before P (the live database's rollback journal) is written: if the write
 * is the last part of a super-journal record (one xWrite of the 8-byte
 * magic, ZBUF, at IOFST, after the page number, name, length and checksum
 * pager.c writeSuperJournal wrote before it), makes the mirror of the
 * record as it will be once the write is done, durable, before the
 * container's journal holds it (see the top).  Returns SQLITE_OK (also
 * when the write is anything else, or when the bytes before it are not a
 * valid record) or the logged error of the default VFS, which fails the
 * write: SQLite then rolls the transaction back.  Takes pCont->mutex.
 */
int cowvfsMirrorBeforeWrite(cowFile *p, const void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    cowContainer *pCont = p->pInode->pCont;
    unsigned char aLen[8];
    unsigned char *zRec = 0;
    char *zSuper = 0;
    char *zMirror = 0;
    sqlite3_uint64 len;
    unsigned cksum;
    size_t nRead = 0;
    int nRec;
    int rc = SQLITE_OK;
    int i;

    assert(p->eType == SQLITE_OPEN_MAIN_JOURNAL && p->pCf);
    if (iAmt != 8 || memcmp(zBuf, aJournalMagic, 8) != 0 || iOfst < 16 ||
        p->pInode->zSubvol[0] != 0 || pCont->zPath[0] != '/')
        return SQLITE_OK; /* the common case; or a branch (see the top), or
                           * a device container (vfs_dev.h: its path does not
                           * start with '/'), which has no "beside" */
    if (cow_file_read(p->pCf, aLen, 8, (uint64_t)(iOfst - 8), &nRead) != COW_OK || nRead != 8)
        return SQLITE_OK; /* not a record SQLite wrote: SQLite reads it the same */
    len = mirrorGet32(aLen);
    cksum = (unsigned)mirrorGet32(aLen + 4);
    if (len == 0 || len >= (sqlite3_uint64)mirrorMaxName() || (sqlite3_int64)len + 12 > iOfst)
        return SQLITE_OK;
    nRec = (int)len + 20;
    zRec = sqlite3_malloc(nRec);
    zSuper = sqlite3_malloc((int)len + 1);
    if (zRec == 0 || zSuper == 0) {
        rc = SQLITE_IOERR_NOMEM;
        goto out;
    }
    nRead = 0;
    if (cow_file_read(p->pCf, zRec, (size_t)len + 12, (uint64_t)(iOfst - 12 - (sqlite3_int64)len),
                      &nRead) != COW_OK ||
        nRead != (size_t)len + 12)
        goto out;
    memcpy(zRec + len + 12, aJournalMagic, 8);
    memcpy(zSuper, zRec + 4, (size_t)len);
    zSuper[len] = 0;
    for (i = 0; i < (int)len; i++)
        cksum -= (unsigned)(int)zSuper[i]; /* as pager.c: a char, signed here */
    if (cksum != 0 || zSuper[0] == 0)
        goto out;

    cowvfsMutexEnter(&pCont->mutex);
    if (pCont->zMirror && strcmp(pCont->zMirrorSuper, zSuper) == 0)
        goto unlock; /* it holds this record already */
    zMirror = sqlite3_mprintf("%s", p->zPath);
    if (zMirror == 0) {
        rc = SQLITE_IOERR_NOMEM;
        goto unlock;
    }
    rc = mirrorWrite(zMirror, zRec, nRec);
    if (rc != SQLITE_OK) {
        /* a part of it may be there: removed, or else stale and removed
         * at the next writable open */
        cowvfsDefaultVfs()->xDelete(cowvfsDefaultVfs(), zMirror, 1);
        goto unlock;
    }
    sqlite3_free(pCont->zMirror);
    sqlite3_free(pCont->zMirrorSuper);
    pCont->zMirror = zMirror;
    zMirror = 0;
    pCont->zMirrorSuper = zSuper;
    zSuper = 0;
    __atomic_store_n(&pCont->bMirror, 1, __ATOMIC_RELAXED);
unlock:
    cowvfsMutexLeave(&pCont->mutex);
out:
    sqlite3_free(zMirror);
    sqlite3_free(zSuper);
    sqlite3_free(zRec);
    return rc;
}

/*
 * After P (the live database's rollback journal) was truncated (IOFST -1)
 * or written at IOFST, while the container has a mirror: a truncation, or
 * a write at offset 0 (a new header, or the header zeroed: pager.c
 * zeroJournalHdr), can end the record's meaning, so the journal's end is
 * read again (as readSuperJournal reads it) and the mirror removed if the
 * journal no longer names its super-journal.  Writes elsewhere cannot
 * (between the record and the truncation that follows it in PERSIST mode
 * the journal's end is not yet the record).  Returns SQLITE_OK, or
 * SQLITE_IOERR_READ or the default VFS's error (logged), which fails the
 * call.  Takes pCont->mutex.
 */
int cowvfsMirrorAfterChange(cowFile *p, sqlite3_int64 iOfst)
{
    cowContainer *pCont = p->pInode->pCont;
    struct mirrorSrc src;
    char *zSuper = 0;
    int rc = SQLITE_OK;
    int res;

    assert(p->eType == SQLITE_OPEN_MAIN_JOURNAL && p->pCf);
    if (!__atomic_load_n(&pCont->bMirror, __ATOMIC_RELAXED) || iOfst > 0 ||
        p->pInode->zSubvol[0] != 0)
        return SQLITE_OK; /* the common case: no mirror */
    memset(&src, 0, sizeof(src));
    src.pCf = p->pCf;
    cowvfsMutexEnter(&pCont->mutex);
    if (pCont->zMirror == 0)
        goto out;
    res = mirrorRecord(&src, mirrorMaxName(), &zSuper);
    if (res < 0) {
        rc = SQLITE_IOERR_READ;
        sqlite3_log(rc, "cow: read the end of %s (a super-journal record?): failed", p->zPath);
        goto out;
    }
    if (res == 0 || strcmp(zSuper, pCont->zMirrorSuper) != 0)
        rc = mirrorRemove(pCont);
out:
    cowvfsMutexLeave(&pCont->mutex);
    sqlite3_free(zSuper);
    return rc;
}

/*
 * The live database's journal of PCONT was deleted (xDelete): removes its
 * mirror if it has one.  Returns SQLITE_OK or the logged error of the
 * removal.  Takes pCont->mutex.
 */
int cowvfsMirrorJournalDeleted(cowContainer *pCont)
{
    int rc = SQLITE_OK;

    if (!__atomic_load_n(&pCont->bMirror, __ATOMIC_RELAXED))
        return SQLITE_OK;
    cowvfsMutexEnter(&pCont->mutex);
    if (pCont->zMirror)
        rc = mirrorRemove(pCont);
    cowvfsMutexLeave(&pCont->mutex);
    return rc;
}

/*
 * At the first writable open of PCONT in this process: a file at ZJOURNAL
 * (the live journal's path, beside the container) is adopted as the
 * mirror if the container's journal names the same super-journal, and
 * removed otherwise (its super-journal is then left in pCont->zCollect
 * for cowvfsMirrorCollect).  Nothing there: nothing to do (one xAccess).
 * Errors are logged and leave the file where it is (the open goes on: the
 * mirror can only keep a super-journal longer, never lose a transaction).
 * Caller holds the registry mutex and publishes PCONT after this.
 */
void cowvfsMirrorOpen(cowContainer *pCont, const char *zJournal)
{
    sqlite3_vfs *pVfs = cowvfsDefaultVfs();
    struct mirrorSrc src;
    sqlite3_file *pFile = 0;
    cow_file *pCf = 0;
    char *zMirrorSuper = 0;
    char *zSuper = 0;
    int bExists = 0;
    int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_JOURNAL;
    int res = 0;
    int crc;

    if (pVfs->xAccess(pVfs, zJournal, SQLITE_ACCESS_EXISTS, &bExists) != SQLITE_OK || !bExists)
        goto out;
    pFile = sqlite3_malloc(pVfs->szOsFile);
    if (pFile == 0)
        goto out;
    memset(pFile, 0, (size_t)pVfs->szOsFile);
    memset(&src, 0, sizeof(src));
    if (pVfs->xOpen(pVfs, zJournal, pFile, flags, &flags) != SQLITE_OK)
        goto fail;
    src.pFile = pFile;
    res = mirrorRecord(&src, mirrorMaxName(), &zMirrorSuper);
    pFile->pMethods->xClose(pFile);
    if (res < 0)
        goto fail;
    crc = cow_file_open(pCont->pStore, "db-journal", 0, &pCf);
    if (crc == COW_OK) {
        memset(&src, 0, sizeof(src));
        src.pCf = pCf;
        res = mirrorRecord(&src, mirrorMaxName(), &zSuper);
        cow_file_close(pCf);
        if (res < 0)
            goto fail;
    } else if (crc != COW_ENOENT) {
        goto fail;
    }
    if (zSuper && zMirrorSuper && strcmp(zSuper, zMirrorSuper) == 0) {
        pCont->zMirror = sqlite3_mprintf("%s", zJournal);
        if (pCont->zMirror == 0)
            goto out;
        pCont->zMirrorSuper = zMirrorSuper;
        zMirrorSuper = 0;
        pCont->bMirror = 1;
        goto out;
    }
    sqlite3_log(SQLITE_NOTICE,
                "cow: %s names super-journal %s, which the container's journal "
                "does not: removed (a stale journal mirror)",
                zJournal, zMirrorSuper ? zMirrorSuper : "(none)");
    if (pVfs->xDelete(pVfs, zJournal, 1) == SQLITE_OK) {
        /* a unix database's recovery may have kept the super-journal for
         * it: cowvfsMirrorCollect looks (outside the registry mutex) */
        pCont->zCollect = zMirrorSuper;
        zMirrorSuper = 0;
        goto out;
    }
fail:
    sqlite3_log(SQLITE_WARNING,
                "cow: could not check or remove %s beside the container "
                "(a journal mirror): left as it is",
                zJournal);
out:
    sqlite3_free(pFile);
    sqlite3_free(zMirrorSuper);
    sqlite3_free(zSuper);
}

/*
 * A stale mirror removed by cowvfsMirrorOpen named super-journal
 * pCont->zCollect: a unix database recovered while it was there kept that
 * super-journal, and no journal that names it may be left to delete it.
 * So this does what pager.c pager_delsuper does: each journal the
 * super-journal lists is looked up with the cow VFS (a container's journal
 * in its store, any other file through the default VFS) and its end read
 * as readSuperJournal reads it; if none names the super-journal, it is
 * deleted.  Called by xOpen after the container is acquired, with no lock
 * held.  Errors are logged and leave the super-journal (it is only kept
 * longer).  Takes pCont->mutex briefly.
 */
void cowvfsMirrorCollect(cowContainer *pCont)
{
    sqlite3_vfs *pDef = cowvfsDefaultVfs();
    sqlite3_vfs *pCow = cowvfsSelf();
    sqlite3_file *pFile = 0;
    struct mirrorSrc src;
    sqlite3_int64 size = 0;
    char *zSuper;
    char *zList = 0;
    char *zChild;
    char *zName = 0;
    int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_SUPER_JOURNAL;
    int bExists = 0;
    int res;

    cowvfsMutexEnter(&pCont->mutex);
    zSuper = pCont->zCollect;
    pCont->zCollect = 0;
    cowvfsMutexLeave(&pCont->mutex);
    if (zSuper == 0)
        return;
    if (pDef->xAccess(pDef, zSuper, SQLITE_ACCESS_EXISTS, &bExists) != SQLITE_OK || !bExists)
        goto out;
    pFile = sqlite3_malloc(pCow->szOsFile > pDef->szOsFile ? pCow->szOsFile : pDef->szOsFile);
    if (pFile == 0)
        goto fail;
    memset(pFile, 0, (size_t)pDef->szOsFile);
    if (pDef->xOpen(pDef, zSuper, pFile, flags, &flags) != SQLITE_OK)
        goto fail;
    if (pFile->pMethods->xFileSize(pFile, &size) != SQLITE_OK || size > (1 << 20) ||
        (zList = sqlite3_malloc64((sqlite3_uint64)size + 2)) == 0 ||
        (size > 0 && pFile->pMethods->xRead(pFile, zList, (int)size, 0) != SQLITE_OK)) {
        pFile->pMethods->xClose(pFile);
        goto fail;
    }
    pFile->pMethods->xClose(pFile);
    zList[size] = zList[size + 1] = 0; /* as pager_delsuper lays the names out */
    for (zChild = zList; zChild < zList + size; zChild += strlen(zChild) + 1) {
        if (*zChild == 0)
            continue;
        bExists = 0;
        if (pCow->xAccess(pCow, zChild, SQLITE_ACCESS_EXISTS, &bExists) != SQLITE_OK)
            goto fail;
        if (!bExists)
            continue;
        memset(pFile, 0, (size_t)pCow->szOsFile);
        flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_SUPER_JOURNAL;
        if (pCow->xOpen(pCow, zChild, pFile, flags, &flags) != SQLITE_OK)
            goto fail;
        memset(&src, 0, sizeof(src));
        src.pFile = pFile;
        res = mirrorRecord(&src, mirrorMaxName(), &zName);
        pFile->pMethods->xClose(pFile);
        if (res < 0)
            goto fail;
        if (res > 0 && strcmp(zName, zSuper) == 0)
            goto out; /* a journal still needs it */
        sqlite3_free(zName);
        zName = 0;
    }
    if (pDef->xDelete(pDef, zSuper, 1) != SQLITE_OK)
        goto fail;
    sqlite3_log(SQLITE_NOTICE,
                "cow: deleted super-journal %s, kept by a stale journal mirror "
                "and named by no journal",
                zSuper);
    goto out;
fail:
    sqlite3_log(SQLITE_WARNING,
                "cow: could not check super-journal %s (named by a stale "
                "journal mirror): left as it is",
                zSuper);
out:
    sqlite3_free(zName);
    sqlite3_free(zList);
    sqlite3_free(pFile);
    sqlite3_free(zSuper);
}

/* Frees PCONT's mirror state (the container is being closed: the file
 * stays while the journal names it, and the next open adopts it). */
void cowvfsMirrorFree(cowContainer *pCont)
{
    sqlite3_free(pCont->zMirror);
    sqlite3_free(pCont->zMirrorSuper);
    sqlite3_free(pCont->zCollect);
    pCont->zMirror = pCont->zMirrorSuper = pCont->zCollect = 0;
    pCont->bMirror = 0;
}
