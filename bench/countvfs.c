/*
 * countvfs.c - the counting VFS: a shim over a real VFS that counts the
 * device flushes (xSync) of the commits workload.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cowvfs.h"
#include "bench.h"

/* ---- the counting VFS ----
 *
 * For the commits workload, a VFS that is not cow runs through "NAME-count"
 * (e.g. "unix-count"): a thin wrapper that forwards every sqlite3_vfs
 * method to NAME and wraps its files' io methods, forwarding each of them
 * too, so that the xSync calls SQLite makes can be counted.  On unix one
 * xSync is one fdatasync (fsync where SQLite is built without fdatasync;
 * F_FULLFSYNC on macOS with PRAGMA fullfsync), a device flush.  unixSync
 * also fsyncs the directory once, at the first xSync of a journal,
 * super-journal or WAL it created (os_unix.c, UNIXFILE_DIRSYNC): in DELETE
 * mode that is once per transaction, so the wrapper counts it too, as
 * unixOpen decides it (SQLITE_OPEN_CREATE and one of those types), when it
 * wraps a unix VFS.  For cow the flushes are the store's own count of its
 * device flushes (PRAGMA cow_stats, flushes=N), whatever SQLite asked.
 */

struct countfile {
    sqlite3_file base;
    struct countvfs *cv;
    int dirsync;           /* the next xSync also fsyncs the directory */
    sqlite3_file *real;    /* NAME's file, allocated right after this */
};

struct countvfs countvfs[2]; /* one per side of the bench */

#define REAL(f) (((struct countfile *)(f))->real)
#define RM(f) (REAL(f)->pMethods)

static int cf_close(sqlite3_file *f)
{
    int rc = RM(f)->xClose(REAL(f));
    f->pMethods = NULL;
    return rc;
}

static int cf_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return RM(f)->xRead(REAL(f), buf, n, off);
}

static int cf_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    return RM(f)->xWrite(REAL(f), buf, n, off);
}

static int cf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return RM(f)->xTruncate(REAL(f), size);
}

static int cf_sync(sqlite3_file *f, int flags)
{
    struct countfile *p = (struct countfile *)f;
    p->cv->syncs++;
    if (p->dirsync) {
        p->cv->dirsyncs++;
        p->dirsync = 0;
    }
    return RM(f)->xSync(REAL(f), flags);
}

static int cf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return RM(f)->xFileSize(REAL(f), size);
}

static int cf_lock(sqlite3_file *f, int lock)
{
    return RM(f)->xLock(REAL(f), lock);
}

static int cf_unlock(sqlite3_file *f, int lock)
{
    return RM(f)->xUnlock(REAL(f), lock);
}

static int cf_check_reserved(sqlite3_file *f, int *res)
{
    return RM(f)->xCheckReservedLock(REAL(f), res);
}

static int cf_file_control(sqlite3_file *f, int op, void *arg)
{
    return RM(f)->xFileControl(REAL(f), op, arg);
}

static int cf_sector_size(sqlite3_file *f)
{
    return RM(f)->xSectorSize(REAL(f));
}

static int cf_device_characteristics(sqlite3_file *f)
{
    return RM(f)->xDeviceCharacteristics(REAL(f));
}

static int cf_shm_map(sqlite3_file *f, int i, int sz, int extend, void volatile **pp)
{
    return RM(f)->xShmMap(REAL(f), i, sz, extend, pp);
}

static int cf_shm_lock(sqlite3_file *f, int ofst, int n, int flags)
{
    return RM(f)->xShmLock(REAL(f), ofst, n, flags);
}

static void cf_shm_barrier(sqlite3_file *f)
{
    RM(f)->xShmBarrier(REAL(f));
}

static int cf_shm_unmap(sqlite3_file *f, int del)
{
    return RM(f)->xShmUnmap(REAL(f), del);
}

static int cf_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return RM(f)->xFetch(REAL(f), off, n, pp);
}

static int cf_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return RM(f)->xUnfetch(REAL(f), off, p);
}

/* The same methods as iVersion 1, 2 and 3: a file gets the version of the
 * real file's methods, so that SQLite never calls one the real file lacks. */
#define COUNT_IO(v)                                                        \
    { v, cf_close, cf_read, cf_write, cf_truncate, cf_sync, cf_file_size,  \
      cf_lock, cf_unlock, cf_check_reserved, cf_file_control,              \
      cf_sector_size, cf_device_characteristics, cf_shm_map, cf_shm_lock,  \
      cf_shm_barrier, cf_shm_unmap, cf_fetch, cf_unfetch }
static const sqlite3_io_methods count_io[3] = { COUNT_IO(1), COUNT_IO(2), COUNT_IO(3) };

#define CV(v) ((struct countvfs *)(v)->pAppData)
#define RV(v) (CV(v)->real)

static int cv_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags,
                   int *out_flags)
{
    struct countfile *p = (struct countfile *)f;
    int type = flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL |
                        SQLITE_OPEN_WAL);
    int rc;

    memset(p, 0, sizeof *p);
    p->cv = CV(v);
    p->real = (sqlite3_file *)&p[1];
    p->dirsync = p->cv->dirsync && (flags & SQLITE_OPEN_CREATE) && type != 0;
    rc = RV(v)->xOpen(RV(v), name, p->real, flags, out_flags);
    if (p->real->pMethods == NULL) {
        f->pMethods = NULL;
        return rc;
    }
    if (rc != SQLITE_OK) {
        p->real->pMethods->xClose(p->real);
        f->pMethods = NULL;
        return rc;
    }
    int ver = p->real->pMethods->iVersion;
    f->pMethods = &count_io[(ver < 1 ? 1 : ver > 3 ? 3 : ver) - 1];
    return rc;
}

static int cv_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    return RV(v)->xDelete(RV(v), name, sync_dir);
}

static int cv_access(sqlite3_vfs *v, const char *name, int flags, int *res)
{
    return RV(v)->xAccess(RV(v), name, flags, res);
}

static int cv_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return RV(v)->xFullPathname(RV(v), name, n, out);
}

static void *cv_dl_open(sqlite3_vfs *v, const char *path)
{
    return RV(v)->xDlOpen(RV(v), path);
}

static void cv_dl_error(sqlite3_vfs *v, int n, char *msg)
{
    RV(v)->xDlError(RV(v), n, msg);
}

static void (*cv_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return RV(v)->xDlSym(RV(v), h, sym);
}

static void cv_dl_close(sqlite3_vfs *v, void *h)
{
    RV(v)->xDlClose(RV(v), h);
}

static int cv_randomness(sqlite3_vfs *v, int n, char *out)
{
    return RV(v)->xRandomness(RV(v), n, out);
}

static int cv_sleep(sqlite3_vfs *v, int us)
{
    return RV(v)->xSleep(RV(v), us);
}

static int cv_current_time(sqlite3_vfs *v, double *t)
{
    return RV(v)->xCurrentTime(RV(v), t);
}

static int cv_get_last_error(sqlite3_vfs *v, int n, char *buf)
{
    return RV(v)->xGetLastError ? RV(v)->xGetLastError(RV(v), n, buf) : 0;
}

static int cv_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *t)
{
    return RV(v)->xCurrentTimeInt64(RV(v), t);
}

static int cv_set_system_call(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr fn)
{
    return RV(v)->xSetSystemCall(RV(v), name, fn);
}

static sqlite3_syscall_ptr cv_get_system_call(sqlite3_vfs *v, const char *name)
{
    return RV(v)->xGetSystemCall(RV(v), name);
}

static const char *cv_next_system_call(sqlite3_vfs *v, const char *name)
{
    return RV(v)->xNextSystemCall(RV(v), name);
}

/*
 * Registers "REAL-count" in countvfs[WHICH] (once); returns its name, or
 * NULL if REAL is not registered.  The wrapper has REAL's iVersion (at most
 * 3), so SQLite calls only the methods REAL has.
 */
const char *countvfs_register(int which, const char *real_name)
{
    struct countvfs *cv = &countvfs[which];
    sqlite3_vfs *real;

    if (cv->real)
        return cv->name;
    real = sqlite3_vfs_find(real_name);
    if (!real)
        return NULL;
    snprintf(cv->name, sizeof cv->name, "%s-count", real_name);
    cv->real = real;
    cv->dirsync = strncmp(real_name, "unix", 4) == 0;
    cv->base.iVersion = real->iVersion < 3 ? real->iVersion : 3;
    cv->base.szOsFile = (int)sizeof(struct countfile) + real->szOsFile;
    cv->base.mxPathname = real->mxPathname;
    cv->base.zName = cv->name;
    cv->base.pAppData = cv;
    cv->base.xOpen = cv_open;
    cv->base.xDelete = cv_delete;
    cv->base.xAccess = cv_access;
    cv->base.xFullPathname = cv_full_pathname;
    cv->base.xDlOpen = cv_dl_open;
    cv->base.xDlError = cv_dl_error;
    cv->base.xDlSym = cv_dl_sym;
    cv->base.xDlClose = cv_dl_close;
    cv->base.xRandomness = cv_randomness;
    cv->base.xSleep = cv_sleep;
    cv->base.xCurrentTime = cv_current_time;
    cv->base.xGetLastError = cv_get_last_error;
    cv->base.xCurrentTimeInt64 = cv_current_time_int64;
    cv->base.xSetSystemCall = cv_set_system_call;
    cv->base.xGetSystemCall = cv_get_system_call;
    cv->base.xNextSystemCall = cv_next_system_call;
    if (sqlite3_vfs_register(&cv->base, 0) != SQLITE_OK) {
        cv->real = NULL;
        return NULL;
    }
    return cv->name;
}
