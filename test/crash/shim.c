/*
 * shim.c - the crash simulator's shim VFS "crashshim" (see driver.c).
 */
#include "crash.h"

/* ---------------------------------------------------------------------------
 * The shim VFS: forwards everything to "cow", records the writes of the
 * record phase, and gives SQLite deterministic randomness.
 */

typedef struct ShimFile {
    sqlite3_file base;   /* first */
    int role;            /* ROLE_* */
    sqlite3_file *pReal; /* cow's file, right after this struct */
} ShimFile;

#define REAL(f) (((ShimFile *)(f))->pReal)

static int shimClose(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods->xClose(REAL(f));
    f->pMethods = 0;
    return rc;
}

static int shimRead(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int shimWrite(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    ShimFile *p = (ShimFile *)f;
    size_t start = g.nops;
    int rc = p->pReal->pMethods->xWrite(p->pReal, buf, n, off);
    if (rc == SQLITE_OK && g.recording && p->role < NROLES) {
        shadow_write(p->role, buf, (size_t)n, (uint64_t)off, start);
        g.nwrites[p->role]++;
    }
    return rc;
}

static int shimTruncate(sqlite3_file *f, sqlite3_int64 size)
{
    ShimFile *p = (ShimFile *)f;
    size_t start = g.nops;
    int rc = p->pReal->pMethods->xTruncate(p->pReal, size);
    if (rc == SQLITE_OK && g.recording && p->role < NROLES)
        shadow_truncate(p->role, (uint64_t)size, start);
    return rc;
}

static int shimSync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int shimFileSize(sqlite3_file *f, sqlite3_int64 *pSize)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), pSize);
}

static int shimLock(sqlite3_file *f, int e)
{
    return REAL(f)->pMethods->xLock(REAL(f), e);
}

static int shimUnlock(sqlite3_file *f, int e)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), e);
}

static int shimCheckReservedLock(sqlite3_file *f, int *pRes)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), pRes);
}

static int shimFileControl(sqlite3_file *f, int op, void *pArg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, pArg);
}

static int shimSectorSize(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int shimDeviceCharacteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int shimShmMap(sqlite3_file *f, int iPg, int pgsz, int bExtend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), iPg, pgsz, bExtend, pp);
}

static int shimShmLock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void shimShmBarrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int shimShmUnmap(sqlite3_file *f, int deleteFlag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), deleteFlag);
}

static int shimFetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int shimUnfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shimIoMethods = {
    3,                         /* iVersion */
    shimClose,                 /* xClose */
    shimRead,                  /* xRead */
    shimWrite,                 /* xWrite */
    shimTruncate,              /* xTruncate */
    shimSync,                  /* xSync */
    shimFileSize,              /* xFileSize */
    shimLock,                  /* xLock */
    shimUnlock,                /* xUnlock */
    shimCheckReservedLock,     /* xCheckReservedLock */
    shimFileControl,           /* xFileControl */
    shimSectorSize,            /* xSectorSize */
    shimDeviceCharacteristics, /* xDeviceCharacteristics */
    shimShmMap,                /* xShmMap */
    shimShmLock,               /* xShmLock */
    shimShmBarrier,            /* xShmBarrier */
    shimShmUnmap,              /* xShmUnmap */
    shimFetch,                 /* xFetch */
    shimUnfetch,               /* xUnfetch */
};

/* The role of a name SQLite gives xDelete: the container path plus a suffix. */
static int role_of_name(const char *zName)
{
    size_t n = strlen(g.path);
    if (!zName || strncmp(zName, g.path, n) != 0)
        return ROLE_OTHER;
    if (strcmp(zName + n, "") == 0)
        return ROLE_DB;
    if (strcmp(zName + n, "-journal") == 0)
        return ROLE_JOURNAL;
    if (strcmp(zName + n, "-wal") == 0)
        return ROLE_WAL;
    return ROLE_OTHER;
}

static int shimOpen(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *f, int flags,
                    int *pOutFlags)
{
    ShimFile *p = (ShimFile *)f;
    (void)pVfs;
    memset(p, 0, sizeof *p);
    p->pReal = (sqlite3_file *)&p[1];
    switch (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL)) {
    case SQLITE_OPEN_MAIN_DB:
        p->role = ROLE_DB;
        break;
    case SQLITE_OPEN_MAIN_JOURNAL:
        p->role = ROLE_JOURNAL;
        break;
    case SQLITE_OPEN_WAL:
        p->role = ROLE_WAL;
        break;
    default:
        p->role = ROLE_OTHER;
    }
    if (p->role != ROLE_OTHER && role_of_name(zName) != p->role)
        p->role = ROLE_OTHER; /* not the harness's container */
    int rc = g.cow->xOpen(g.cow, zName, p->pReal, flags, pOutFlags);
    if (p->pReal->pMethods)
        f->pMethods = &shimIoMethods;
    return rc;
}

static int shimDelete(sqlite3_vfs *pVfs, const char *zName, int syncDir)
{
    (void)pVfs;
    size_t start = g.nops;
    int rc = g.cow->xDelete(g.cow, zName, syncDir);
    int role = role_of_name(zName);
    if (rc == SQLITE_OK && g.recording && role < NROLES)
        shadow_truncate(role, 0, start);
    return rc;
}

static int shimAccess(sqlite3_vfs *pVfs, const char *zName, int flags, int *pRes)
{
    (void)pVfs;
    return g.cow->xAccess(g.cow, zName, flags, pRes);
}

static int shimFullPathname(sqlite3_vfs *pVfs, const char *zName, int nOut, char *zOut)
{
    (void)pVfs;
    return g.cow->xFullPathname(g.cow, zName, nOut, zOut);
}

static void *shimDlOpen(sqlite3_vfs *pVfs, const char *zPath)
{
    (void)pVfs;
    return g.cow->xDlOpen(g.cow, zPath);
}

static void shimDlError(sqlite3_vfs *pVfs, int nByte, char *zErrMsg)
{
    (void)pVfs;
    g.cow->xDlError(g.cow, nByte, zErrMsg);
}

static void (*shimDlSym(sqlite3_vfs *pVfs, void *p, const char *zSym))(void)
{
    (void)pVfs;
    return g.cow->xDlSym(g.cow, p, zSym);
}

static void shimDlClose(sqlite3_vfs *pVfs, void *p)
{
    (void)pVfs;
    g.cow->xDlClose(g.cow, p);
}

/* Deterministic: SQLite seeds its PRNG from the default VFS (this one). */
static int shimRandomness(sqlite3_vfs *pVfs, int nByte, char *zOut)
{
    (void)pVfs;
    for (int i = 0; i < nByte; i++)
        zOut[i] = (char)rnd(&g.vfs_rng);
    return nByte;
}

static int shimSleep(sqlite3_vfs *pVfs, int us)
{
    (void)pVfs;
    return g.cow->xSleep(g.cow, us);
}

static int shimCurrentTime(sqlite3_vfs *pVfs, double *pT)
{
    (void)pVfs;
    return g.cow->xCurrentTime(g.cow, pT);
}

static int shimGetLastError(sqlite3_vfs *pVfs, int n, char *z)
{
    (void)pVfs;
    return g.cow->xGetLastError(g.cow, n, z);
}

static int shimCurrentTimeInt64(sqlite3_vfs *pVfs, sqlite3_int64 *pT)
{
    (void)pVfs;
    return g.cow->xCurrentTimeInt64(g.cow, pT);
}

sqlite3_vfs shimVfs = {
    2,                    /* iVersion */
    0,                    /* szOsFile (set in shim_register) */
    0,                    /* mxPathname (set in shim_register) */
    0,                    /* pNext */
    "crashshim",          /* zName */
    0,                    /* pAppData */
    shimOpen,             /* xOpen */
    shimDelete,           /* xDelete */
    shimAccess,           /* xAccess */
    shimFullPathname,     /* xFullPathname */
    shimDlOpen,           /* xDlOpen */
    shimDlError,          /* xDlError */
    shimDlSym,            /* xDlSym */
    shimDlClose,          /* xDlClose */
    shimRandomness,       /* xRandomness */
    shimSleep,            /* xSleep */
    shimCurrentTime,      /* xCurrentTime */
    shimGetLastError,     /* xGetLastError */
    shimCurrentTimeInt64, /* xCurrentTimeInt64 */
    0,                    /* xSetSystemCall */
    0,                    /* xGetSystemCall */
    0,                    /* xNextSystemCall */
};

void shim_register(void)
{
    cowvfs_register(0); /* cow's default VFS: unix, for temporary files */
    g.cow = sqlite3_vfs_find("cow");
    if (!g.cow) {
        fprintf(stderr, "crash: the cow VFS is not registered\n");
        exit(2);
    }
    shimVfs.szOsFile = (int)sizeof(ShimFile) + g.cow->szOsFile;
    shimVfs.mxPathname = g.cow->mxPathname;
    sqlite3_vfs_register(&shimVfs, 1);
}
