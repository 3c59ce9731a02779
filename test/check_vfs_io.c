/*
 * check_vfs_io.c - the "vfs_io" suite: every io method of the cow VFS
 * called directly, locking, and the WAL-index (shared memory, WAL with
 * threads).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowvfs.h"
#include "crc32c.h"
#include "format.h"
#include "store.h"
#include "testutil.h"
#include "vfsutil.h"
#include "../tools/fsck.h"

/* ---------------------------------------------------------------------------
 * Every io method, called directly
 */

START_TEST(test_io_methods)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char *full = full_path(path);
    char jname[1024], wname[1024], mjname[1024];
    unsigned char buf[8192], pat[4096];
    sqlite3_int64 size = -1;
    int res = -1, rc;
    char *z = NULL;

    sqlite3_file *f = raw_open_ok(full, RW_CREATE | SQLITE_OPEN_MAIN_DB);
    ck_assert_int_eq(f->pMethods->iVersion, 3);

    /* xWrite, xFileSize, xRead, short reads */
    memset(pat, 0x5a, sizeof pat);
    ck_assert_int_eq(f->pMethods->xWrite(f, pat, 4096, 0), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xWrite(f, pat, 4096, 8192), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xFileSize(f, &size), SQLITE_OK);
    ck_assert_int_eq(size, 12288);
    ck_assert_int_eq(f->pMethods->xRead(f, buf, 4096, 0), SQLITE_OK);
    ck_assert_int_eq(memcmp(buf, pat, 4096), 0);
    ck_assert_int_eq(f->pMethods->xRead(f, buf, 4096, 4096), SQLITE_OK); /* the hole */
    for (int i = 0; i < 4096; i++)
        ck_assert_int_eq(buf[i], 0);
    memset(buf, 0xaa, sizeof buf);
    ck_assert_int_eq(f->pMethods->xRead(f, buf, 100, 12288 - 50), SQLITE_IOERR_SHORT_READ);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(buf[i], 0x5a);
    for (int i = 50; i < 100; i++)
        ck_assert_int_eq(buf[i], 0);
    memset(buf, 0xaa, sizeof buf);
    ck_assert_int_eq(f->pMethods->xRead(f, buf, 512, 1 << 20), SQLITE_IOERR_SHORT_READ);
    for (int i = 0; i < 512; i++)
        ck_assert_int_eq(buf[i], 0);

    /* xTruncate, xSync */
    ck_assert_int_eq(f->pMethods->xTruncate(f, 4096), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xFileSize(f, &size), SQLITE_OK);
    ck_assert_int_eq(size, 4096);
    ck_assert_int_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xSync(f, SQLITE_SYNC_FULL), SQLITE_OK);

    /* xLock, xUnlock, xCheckReservedLock (one file: always granted) */
    ck_assert_int_eq(f->pMethods->xLock(f, SQLITE_LOCK_SHARED), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xCheckReservedLock(f, &res), SQLITE_OK);
    ck_assert_int_eq(res, 0);
    ck_assert_int_eq(f->pMethods->xLock(f, SQLITE_LOCK_RESERVED), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xCheckReservedLock(f, &res), SQLITE_OK);
    ck_assert_int_eq(res, 1);
    ck_assert_int_eq(f->pMethods->xLock(f, SQLITE_LOCK_EXCLUSIVE), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xUnlock(f, SQLITE_LOCK_SHARED), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xCheckReservedLock(f, &res), SQLITE_OK);
    ck_assert_int_eq(res, 0);
    ck_assert_int_eq(f->pMethods->xUnlock(f, SQLITE_LOCK_NONE), SQLITE_OK);

    /* xSectorSize, xDeviceCharacteristics */
    ck_assert_int_eq(f->pMethods->xSectorSize(f), 4096);
    ck_assert_int_eq(f->pMethods->xDeviceCharacteristics(f),
                     SQLITE_IOCAP_POWERSAFE_OVERWRITE | SQLITE_IOCAP_SAFE_APPEND |
                         SQLITE_IOCAP_SEQUENTIAL);

    /* xFileControl */
    ck_assert_int_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_VFSNAME, &z), SQLITE_OK);
    /* the VFS that opened it: "cow", or the device VFS's own name
     * (vfs.c cowDevFileControl) */
    ck_assert_str_eq(z, vt->vfs);
    sqlite3_free(z);
    sqlite3_int64 hint = 1 << 20;
    ck_assert_int_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_SIZE_HINT, &hint), SQLITE_OK);
    int chunk = 65536;
    ck_assert_int_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_CHUNK_SIZE, &chunk), SQLITE_OK);
    int ls = 0;
    ck_assert_int_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_LOCKSTATE, &ls), SQLITE_NOTFOUND);
    int moved = -1;
    ck_assert_int_eq(f->pMethods->xFileControl(f, SQLITE_FCNTL_HAS_MOVED, &moved), SQLITE_OK);
    ck_assert_int_eq(moved, 0);

    /* xShmMap, xShmLock, xShmBarrier, xShmUnmap */
    void volatile *reg = (void *)1;
    ck_assert_int_eq(f->pMethods->xShmMap(f, 0, 32768, 0, &reg), SQLITE_OK);
    ck_assert_ptr_null((void *)reg);
    ck_assert_int_eq(f->pMethods->xShmMap(f, 0, 32768, 1, &reg), SQLITE_OK);
    ck_assert_ptr_nonnull((void *)reg);
    for (int i = 0; i < 32768; i++)
        ck_assert_int_eq(((volatile unsigned char *)reg)[i], 0);
    ck_assert_int_eq(f->pMethods->xShmLock(f, 0, 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE),
                     SQLITE_OK);
    f->pMethods->xShmBarrier(f);
    ck_assert_int_eq(f->pMethods->xShmLock(f, 0, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE),
                     SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xShmUnmap(f, 1), SQLITE_OK);

    /* xFetch maps a page of the file (the bytes xRead gives) until xUnfetch;
     * past the end of file, or across blocks, it gives no pointer */
    void *pp = (void *)1;
    sqlite3_int64 fsz = 0;
    ck_assert_int_eq(f->pMethods->xFileSize(f, &fsz), SQLITE_OK);
    ck_assert_int_ge(fsz, 4096);
    ck_assert_int_eq(f->pMethods->xFetch(f, 0, 4096, &pp), SQLITE_OK);
    ck_assert_ptr_nonnull(pp);
    {
        char rb[4096];
        ck_assert_int_eq(f->pMethods->xRead(f, rb, 4096, 0), SQLITE_OK);
        ck_assert(memcmp(rb, pp, 4096) == 0);
    }
    ck_assert_int_eq(f->pMethods->xUnfetch(f, 0, pp), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xFetch(f, (fsz + 4095) / 4096 * 4096, 4096, &pp), SQLITE_OK);
    ck_assert_ptr_null(pp);
    ck_assert_int_eq(f->pMethods->xFetch(f, 0, 8192, &pp), SQLITE_OK);
    ck_assert_ptr_null(pp);
    ck_assert_int_eq(f->pMethods->xUnfetch(f, 0, NULL), SQLITE_OK);

    /* A rollback journal: inside the container, exists even when empty. */
    snprintf(jname, sizeof jname, "%s-journal", full);
    ck_assert_int_eq(raw_access(jname), 0);
    sqlite3_file *j = raw_open_ok(jname, RW_CREATE | SQLITE_OPEN_MAIN_JOURNAL);
    ck_assert_ptr_eq(j->pMethods, f->pMethods);
    ck_assert_int_eq(j->pMethods->xWrite(j, pat, 512, 0), SQLITE_OK);
    ck_assert_int_eq(raw_access(jname), 1);
    ck_assert_int_eq(j->pMethods->xTruncate(j, 0), SQLITE_OK);
    raw_close(j);
    ck_assert_int_eq(raw_access(jname), 1);
    ck_assert_dir(dir, "app.db");
    ck_assert_int_eq(target_vfs()->xDelete(target_vfs(), vfs_name(jname), 1), SQLITE_OK);
    ck_assert_int_eq(raw_access(jname), 0);
    ck_assert_int_eq(target_vfs()->xDelete(target_vfs(), vfs_name(jname), 0),
                     SQLITE_IOERR_DELETE_NOENT);

    /* A journal opened read-only refuses writes; a missing one cannot be
     * opened without CREATE. */
    j = raw_open(jname, SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_JOURNAL, &rc);
    ck_assert_int_eq(rc, SQLITE_CANTOPEN);
    j = raw_open_ok(jname, RW_CREATE | SQLITE_OPEN_MAIN_JOURNAL);
    raw_close(j);
    j = raw_open_ok(jname, SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_JOURNAL);
    ck_assert_int_eq(j->pMethods->xWrite(j, pat, 512, 0), SQLITE_READONLY);
    ck_assert_int_eq(j->pMethods->xTruncate(j, 0), SQLITE_READONLY);
    raw_close(j);

    /* DELETEONCLOSE removes the store file. */
    j = raw_open_ok(jname, RW_CREATE | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_DELETEONCLOSE);
    ck_assert_int_eq(j->pMethods->xWrite(j, pat, 512, 0), SQLITE_OK);
    raw_close(j);
    ck_assert_int_eq(raw_access(jname), 0);

    /* WAL */
    snprintf(wname, sizeof wname, "%s-wal", full);
    sqlite3_file *w = raw_open_ok(wname, RW_CREATE | SQLITE_OPEN_WAL);
    ck_assert_int_eq(w->pMethods->xWrite(w, pat, 4096, 0), SQLITE_OK);
    /* only the database claims SEQUENTIAL: the WAL's and the journal's own
     * xSync log that file alone (vfs_io.c cowDeviceCharacteristics) */
    ck_assert_int_eq(w->pMethods->xDeviceCharacteristics(w) & SQLITE_IOCAP_SEQUENTIAL, 0);
    raw_close(w);
    ck_assert_int_eq(raw_access(wname), 1);
    ck_assert_int_eq(target_vfs()->xDelete(target_vfs(), vfs_name(wname), 0), SQLITE_OK);
    ck_assert_int_eq(raw_access(wname), 0);

    /* A super-journal is a file of the default VFS beside the container,
     * so that a child database on another VFS can see it after a crash
     * (vfs.c, SUPER-JOURNALS); it claims no SEQUENTIAL, so SQLite syncs
     * it before the child journals name it.  A device container has
     * nothing beside it: its super-journals are store files of it. */
    snprintf(mjname, sizeof mjname, "%s-mj01AB2C9D4", full);
    sqlite3_file *mj =
        raw_open_ok(mjname, RW_CREATE | SQLITE_OPEN_EXCLUSIVE | SQLITE_OPEN_SUPER_JOURNAL);
    if (vt->local)
        ck_assert_ptr_ne(mj->pMethods, f->pMethods);
    else
        ck_assert_ptr_eq(mj->pMethods, f->pMethods);
    ck_assert_int_eq(mj->pMethods->xWrite(mj, "x.db-journal\0", 13, 0), SQLITE_OK);
    ck_assert_int_eq(mj->pMethods->xDeviceCharacteristics(mj) & SQLITE_IOCAP_SEQUENTIAL, 0);
    ck_assert_int_eq(raw_access(mjname), 1);
    if (vt->local)
        ck_assert_int_eq(access(mjname, F_OK), 0);
    raw_close(mj);
    ck_assert_int_eq(target_vfs()->xDelete(target_vfs(), vfs_name(mjname), 1), SQLITE_OK);
    ck_assert_int_eq(raw_access(mjname), 0);
    if (vt->local)
        ck_assert_int_ne(access(mjname, F_OK), 0);

    /* A second handle on the main database, read-only. */
    sqlite3_file *ro = raw_open_ok(full, SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_DB);
    ck_assert_int_eq(ro->pMethods->xRead(ro, buf, 4096, 0), SQLITE_OK);
    ck_assert_int_eq(memcmp(buf, pat, 4096), 0);
    ck_assert_int_eq(ro->pMethods->xWrite(ro, pat, 4096, 0), SQLITE_READONLY);
    ck_assert_int_eq(ro->pMethods->xSync(ro, 0), SQLITE_OK);
    raw_close(ro);

    /* Temporary files belong to the default VFS. */
    sqlite3_file *t = raw_open_ok(NULL, RW_CREATE | SQLITE_OPEN_TEMP_DB |
                                            SQLITE_OPEN_DELETEONCLOSE | SQLITE_OPEN_EXCLUSIVE);
    ck_assert_ptr_ne(t->pMethods, f->pMethods);
    ck_assert_int_eq(t->pMethods->xWrite(t, pat, 4096, 4096), SQLITE_OK);
    ck_assert_int_eq(t->pMethods->xRead(t, buf, 4096, 4096), SQLITE_OK);
    ck_assert_int_eq(memcmp(buf, pat, 4096), 0);
    raw_close(t);

    raw_close(f);
    ck_assert_dir(dir, "app.db");

    /* The data survived the close (the last close commits). */
    f = raw_open_ok(full, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MAIN_DB);
    ck_assert_int_eq(f->pMethods->xRead(f, buf, 4096, 0), SQLITE_OK);
    ck_assert_int_eq(memcmp(buf, pat, 4096), 0);
    raw_close(f);

    /* DELETEONCLOSE on a main database removes the container (a file's;
     * a device's is kept, vfs.c, and tdir_remove removes it). */
    char *path2 = cpath(dir, "gone.db");
    char *full2 = full_path(path2);
    f = raw_open_ok(full2, RW_CREATE | SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_DELETEONCLOSE);
    ck_assert_int_eq(f->pMethods->xWrite(f, pat, 4096, 0), SQLITE_OK);
    ck_assert_int_eq(vt->exists(full2), 1);
    raw_close(f);
    ck_assert_int_eq(vt->exists(full2), !vt->local);
    ck_assert_dir(dir, "app.db");

    free(path2);
    free(full2);
    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* The sqlite3_vfs methods that are delegated to the default VFS. */
START_TEST(test_vfs_methods)
{
    sqlite3_vfs *v = cow_vfs();
    sqlite3_vfs *d = sqlite3_vfs_find("unix");
    char buf[256];
    double now = 0;
    sqlite3_int64 now64 = 0;

    ck_assert_int_eq(v->iVersion, 3);
    ck_assert_str_eq(v->zName, "cow");
    ck_assert_int_ge(v->szOsFile, d->szOsFile);
    ck_assert_int_eq(v->mxPathname, d->mxPathname);
    ck_assert_int_eq(v->xRandomness(v, 16, buf), 16);
    ck_assert_int_ge(v->xSleep(v, 1000), 0);
    ck_assert_int_eq(v->xCurrentTime(v, &now), SQLITE_OK);
    ck_assert(now > 2460000.0); /* a Julian day after 2023 */
    ck_assert_int_eq(v->xCurrentTimeInt64(v, &now64), SQLITE_OK);
    ck_assert(now64 > (sqlite3_int64)2460000 * 86400000);
    ck_assert_int_eq(v->xGetLastError(v, sizeof buf, buf), d->xGetLastError(d, sizeof buf, buf));
    ck_assert_ptr_nonnull(v->xGetSystemCall(v, "open"));
    ck_assert_ptr_eq(v->xGetSystemCall(v, "open"), d->xGetSystemCall(d, "open"));
    ck_assert_ptr_nonnull(v->xNextSystemCall(v, NULL));
    ck_assert_int_eq(v->xSetSystemCall(v, "no_such_call", NULL), SQLITE_NOTFOUND);
    void *h = v->xDlOpen(v, "libc.so.6");
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull((void *)v->xDlSym(v, h, "strlen"));
    v->xDlClose(v, h);
    ck_assert_ptr_null(v->xDlOpen(v, "/nonexistent/libnothing.so"));
    buf[0] = 0;
    v->xDlError(v, sizeof buf, buf);
    ck_assert_int_gt(strlen(buf), 0);

    /* Registration is idempotent; make_default works and can be repeated. */
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
    ck_assert_ptr_eq(sqlite3_vfs_find(COWVFS_NAME), v);
    ck_assert_int_eq(cowvfs_register(1), SQLITE_OK);
    ck_assert_ptr_eq(sqlite3_vfs_find(NULL), v);
    ck_assert_int_eq(cowvfs_register(1), SQLITE_OK);
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
    ck_assert_ptr_eq(sqlite3_vfs_find(NULL), v); /* stays the default */
    ck_assert_int_eq(sqlite3_vfs_register(d, 1), SQLITE_OK);
}
END_TEST

/* The loadable-extension entry point works in the static build too. */
int sqlite3_cowvfs_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

START_TEST(test_ext_entry)
{
    char *err = NULL;
    ck_assert_int_eq(sqlite3_cowvfs_init(NULL, &err, NULL), SQLITE_OK_LOAD_PERMANENTLY);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(sqlite3_vfs_find(COWVFS_NAME));
}
END_TEST

/* ---------------------------------------------------------------------------
 * Locking
 */

/* SQLite's lock state machine between three files of one container. */
START_TEST(test_lock_states)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char *full = full_path(path);
    int res = -1;

    sqlite3_file *a = raw_open_ok(full, RW_CREATE | SQLITE_OPEN_MAIN_DB);
    sqlite3_file *b = raw_open_ok(full, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MAIN_DB);
    sqlite3_file *c = raw_open_ok(full, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MAIN_DB);
    const sqlite3_io_methods *m = a->pMethods;

    ck_assert_int_eq(m->xLock(a, SQLITE_LOCK_SHARED), SQLITE_OK);
    ck_assert_int_eq(m->xLock(b, SQLITE_LOCK_SHARED), SQLITE_OK);
    /* one RESERVED */
    ck_assert_int_eq(m->xLock(a, SQLITE_LOCK_RESERVED), SQLITE_OK);
    ck_assert_int_eq(m->xLock(b, SQLITE_LOCK_RESERVED), SQLITE_BUSY);
    ck_assert_int_eq(m->xLock(b, SQLITE_LOCK_EXCLUSIVE), SQLITE_BUSY);
    ck_assert_int_eq(m->xCheckReservedLock(b, &res), SQLITE_OK);
    ck_assert_int_eq(res, 1);
    /* RESERVED does not keep new readers out */
    ck_assert_int_eq(m->xLock(c, SQLITE_LOCK_SHARED), SQLITE_OK);
    ck_assert_int_eq(m->xUnlock(c, SQLITE_LOCK_NONE), SQLITE_OK);
    /* EXCLUSIVE while B reads: BUSY, A is left PENDING, which keeps new
     * readers out */
    ck_assert_int_eq(m->xLock(a, SQLITE_LOCK_EXCLUSIVE), SQLITE_BUSY);
    ck_assert_int_eq(m->xLock(c, SQLITE_LOCK_SHARED), SQLITE_BUSY);
    ck_assert_int_eq(m->xCheckReservedLock(c, &res), SQLITE_OK);
    ck_assert_int_eq(res, 1);
    /* once B is gone, A gets EXCLUSIVE; nobody else gets anything */
    ck_assert_int_eq(m->xUnlock(b, SQLITE_LOCK_NONE), SQLITE_OK);
    ck_assert_int_eq(m->xLock(a, SQLITE_LOCK_EXCLUSIVE), SQLITE_OK);
    ck_assert_int_eq(m->xLock(b, SQLITE_LOCK_SHARED), SQLITE_BUSY);
    ck_assert_int_eq(m->xLock(c, SQLITE_LOCK_SHARED), SQLITE_BUSY);
    /* back to SHARED: others may read again, and one may reserve */
    ck_assert_int_eq(m->xUnlock(a, SQLITE_LOCK_SHARED), SQLITE_OK);
    ck_assert_int_eq(m->xCheckReservedLock(b, &res), SQLITE_OK);
    ck_assert_int_eq(res, 0);
    ck_assert_int_eq(m->xLock(b, SQLITE_LOCK_SHARED), SQLITE_OK);
    ck_assert_int_eq(m->xLock(b, SQLITE_LOCK_RESERVED), SQLITE_OK);
    ck_assert_int_eq(m->xLock(a, SQLITE_LOCK_RESERVED), SQLITE_BUSY);
    ck_assert_int_eq(m->xUnlock(a, SQLITE_LOCK_NONE), SQLITE_OK);
    /* B alone: straight to EXCLUSIVE */
    ck_assert_int_eq(m->xLock(b, SQLITE_LOCK_EXCLUSIVE), SQLITE_OK);
    ck_assert_int_eq(m->xLock(a, SQLITE_LOCK_SHARED), SQLITE_BUSY);
    ck_assert_int_eq(m->xUnlock(b, SQLITE_LOCK_NONE), SQLITE_OK);
    ck_assert_int_eq(m->xLock(a, SQLITE_LOCK_SHARED), SQLITE_OK);
    /* SHARED -> EXCLUSIVE directly (as a hot-journal rollback does) */
    ck_assert_int_eq(m->xLock(a, SQLITE_LOCK_EXCLUSIVE), SQLITE_OK);
    /* requests SQLite never makes are refused, not crashed on */
    ck_assert_int_eq(m->xLock(c, SQLITE_LOCK_RESERVED), SQLITE_MISUSE);
    ck_assert_int_eq(m->xLock(c, SQLITE_LOCK_PENDING), SQLITE_MISUSE);
    ck_assert_int_eq(m->xUnlock(a, SQLITE_LOCK_RESERVED), SQLITE_MISUSE);
    /* closing a file releases its lock */
    raw_close(a);
    ck_assert_int_eq(m->xLock(c, SQLITE_LOCK_SHARED), SQLITE_OK);
    ck_assert_int_eq(m->xLock(c, SQLITE_LOCK_EXCLUSIVE), SQLITE_OK);
    raw_close(c);
    ck_assert_int_eq(m->xLock(b, SQLITE_LOCK_SHARED), SQLITE_OK);
    raw_close(b);

    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Two connections: RESERVED and EXCLUSIVE make the other one BUSY until
 * they are released. */
START_TEST(test_lock_connections)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    sqlite3 *a = db_open(path, RW_CREATE, vt->vfs);
    sqlite3 *b = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);

    EXEC(a, "CREATE TABLE t(x)");
    EXEC(a, "INSERT INTO t VALUES(1)");

    /* A holds RESERVED: B may read but not write */
    EXEC(a, "BEGIN IMMEDIATE");
    EXEC(a, "INSERT INTO t VALUES(2)");
    ck_assert_int_eq(exec_rc(b, "BEGIN IMMEDIATE"), SQLITE_BUSY);
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 1);
    ck_assert_int_eq(exec_rc(b, "INSERT INTO t VALUES(3)"), SQLITE_BUSY);
    EXEC(a, "COMMIT");
    EXEC(b, "BEGIN IMMEDIATE");
    EXEC(b, "INSERT INTO t VALUES(3)");
    EXEC(b, "COMMIT");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 3);

    /* A holds EXCLUSIVE: B cannot even read */
    EXEC(a, "BEGIN EXCLUSIVE");
    ck_assert_int_eq(exec_rc(b, "SELECT count(*) FROM t"), SQLITE_BUSY);
    EXEC(a, "COMMIT");
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 3);

    /* B reads in a transaction: A's commit (EXCLUSIVE) is BUSY until B ends */
    EXEC(b, "BEGIN");
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 3);
    EXEC(a, "BEGIN");
    EXEC(a, "INSERT INTO t VALUES(4)");
    ck_assert_int_eq(exec_rc(a, "COMMIT"), SQLITE_BUSY);
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 3);
    EXEC(b, "COMMIT");
    EXEC(a, "COMMIT");
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 4);
    ck_assert_text((a, "PRAGMA integrity_check"), "ok");

    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    free(path);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * The WAL-index
 */

START_TEST(test_shm)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    char *full = full_path(path);
    sqlite3_file *a = raw_open_ok(full, RW_CREATE | SQLITE_OPEN_MAIN_DB);
    sqlite3_file *b = raw_open_ok(full, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MAIN_DB);
    const sqlite3_io_methods *m = a->pMethods;
    void volatile *pa = NULL, *pb = NULL, *p1 = NULL;
    const int SH = SQLITE_SHM_SHARED, EX = SQLITE_SHM_EXCLUSIVE;
    const int L = SQLITE_SHM_LOCK, U = SQLITE_SHM_UNLOCK;

    ck_assert_int_eq(m->xShmMap(a, 0, 32768, 0, &pa), SQLITE_OK);
    ck_assert_ptr_null((void *)pa);
    ck_assert_int_eq(m->xShmMap(a, 0, 32768, 1, &pa), SQLITE_OK);
    ck_assert_ptr_nonnull((void *)pa);
    ck_assert_int_eq(m->xShmMap(b, 0, 32768, 0, &pb), SQLITE_OK);
    ck_assert_ptr_eq((void *)pa, (void *)pb); /* one WAL-index per container */
    ((volatile char *)pa)[100] = 7;
    m->xShmBarrier(a);
    ck_assert_int_eq(((volatile char *)pb)[100], 7);
    /* extending to region 2 allocates region 1 too; addresses stay put */
    ck_assert_int_eq(m->xShmMap(b, 2, 32768, 1, &pb), SQLITE_OK);
    ck_assert_ptr_nonnull((void *)pb);
    ck_assert_int_eq(m->xShmMap(a, 1, 32768, 0, &p1), SQLITE_OK);
    ck_assert_ptr_nonnull((void *)p1);
    ck_assert_int_eq(((volatile char *)p1)[5], 0);
    ck_assert_int_eq(m->xShmMap(a, 0, 32768, 0, &pb), SQLITE_OK);
    ck_assert_ptr_eq((void *)pa, (void *)pb);
    ck_assert_int_eq(m->xShmMap(a, 3, 32768, 0, &pb), SQLITE_OK);
    ck_assert_ptr_null((void *)pb);
    ck_assert_int_eq(m->xShmMap(a, 0, 4096, 1, &pb), SQLITE_IOERR_SHMSIZE);

    /* EXCLUSIVE excludes everything; SHARED excludes EXCLUSIVE */
    ck_assert_int_eq(m->xShmLock(a, 0, 1, L | EX), SQLITE_OK);
    ck_assert_int_eq(m->xShmLock(b, 0, 1, L | SH), SQLITE_BUSY);
    ck_assert_int_eq(m->xShmLock(b, 0, 1, L | EX), SQLITE_BUSY);
    ck_assert_int_eq(m->xShmLock(b, 1, 1, L | EX), SQLITE_OK); /* other slots are free */
    ck_assert_int_eq(m->xShmLock(a, 0, 1, U | EX), SQLITE_OK);
    ck_assert_int_eq(m->xShmLock(b, 0, 1, L | SH), SQLITE_OK);
    ck_assert_int_eq(m->xShmLock(a, 0, 1, L | SH), SQLITE_OK);
    ck_assert_int_eq(m->xShmLock(a, 0, 1, L | SH), SQLITE_OK); /* already held */
    ck_assert_int_eq(m->xShmLock(a, 0, 1, L | EX), SQLITE_BUSY);
    ck_assert_int_eq(m->xShmLock(b, 0, 1, U | SH), SQLITE_OK);
    ck_assert_int_eq(m->xShmLock(a, 0, 1, U | SH), SQLITE_OK);
    /* ranges are all or nothing */
    ck_assert_int_eq(m->xShmLock(a, 0, 3, L | EX), SQLITE_BUSY); /* B holds slot 1 */
    ck_assert_int_eq(m->xShmLock(b, 0, 1, L | SH), SQLITE_OK);   /* so slot 0 is free */
    ck_assert_int_eq(m->xShmLock(b, 0, 1, U | SH), SQLITE_OK);
    ck_assert_int_eq(m->xShmLock(a, 3, 5, L | EX), SQLITE_OK);
    ck_assert_int_eq(m->xShmLock(b, 7, 1, L | SH), SQLITE_BUSY);
    ck_assert_int_eq(m->xShmLock(b, 2, 1, L | EX), SQLITE_OK);
    /* bad arguments are refused */
    ck_assert_int_eq(m->xShmLock(a, 7, 2, L | SH), SQLITE_MISUSE);
    ck_assert_int_eq(m->xShmLock(a, -1, 1, L | SH), SQLITE_MISUSE);
    ck_assert_int_eq(m->xShmLock(a, 0, 1, L), SQLITE_MISUSE);

    /* unmapping releases the connection's slots; the regions stay while
     * another connection has them */
    ck_assert_int_eq(m->xShmUnmap(a, 0), SQLITE_OK);
    ck_assert_int_eq(m->xShmLock(b, 7, 1, L | EX), SQLITE_OK);
    ck_assert_int_eq(m->xShmMap(b, 0, 32768, 0, &pb), SQLITE_OK);
    ck_assert_ptr_eq((void *)pa, (void *)pb);
    ck_assert_int_eq(((volatile char *)pb)[100], 7);
    ck_assert_int_eq(m->xShmUnmap(b, 1), SQLITE_OK);
    /* the last unmap discards the WAL-index */
    ck_assert_int_eq(m->xShmMap(a, 0, 32768, 0, &pa), SQLITE_OK);
    ck_assert_ptr_null((void *)pa);
    ck_assert_int_eq(m->xShmMap(a, 0, 32768, 1, &pa), SQLITE_OK);
    ck_assert_int_eq(((volatile char *)pa)[100], 0);
    raw_close(a); /* xClose unmaps */
    raw_close(b);
    ck_assert_dir(dir, "app.db");

    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* One writer thread and several reader threads on separate connections in
 * WAL mode; readers check an invariant the writer keeps in every commit. */

#define WAL_NREADERS 3
#define WAL_NWRITES 400

struct wal_shared {
    const char *path;
    int nwrites;       /* WAL_NWRITES scaled to the target */
    int done;          /* writer finished; atomic */
    int failed;        /* atomic */
    char why[256];     /* first failure (under mu) */
    pthread_mutex_t mu;
    long reads[WAL_NREADERS];
};

static void wal_fail(struct wal_shared *s, const char *what, sqlite3 *db)
{
    pthread_mutex_lock(&s->mu);
    if (!s->failed)
        snprintf(s->why, sizeof s->why, "%s: %s", what, db ? sqlite3_errmsg(db) : "");
    __atomic_store_n(&s->failed, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&s->mu);
}

static void *wal_writer(void *arg)
{
    struct wal_shared *s = arg;
    sqlite3 *db = NULL;
    char sql[200];

    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE, vt->vfs) != SQLITE_OK) {
        wal_fail(s, "writer open", db);
        goto out;
    }
    sqlite3_busy_timeout(db, 10000);
    for (int i = 1; i <= s->nwrites && !__atomic_load_n(&s->failed, __ATOMIC_SEQ_CST); i++) {
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE; UPDATE c SET a = a + 1, b = b - 1;"
                 "INSERT INTO log VALUES(%d, randomblob(300)); COMMIT;",
                 i);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            wal_fail(s, "writer", db);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
out:
    __atomic_store_n(&s->done, 1, __ATOMIC_SEQ_CST);
    sqlite3_close(db);
    return NULL;
}

struct wal_reader_arg {
    struct wal_shared *s;
    int idx;
};

static void *wal_reader(void *arg)
{
    struct wal_reader_arg *ra = arg;
    struct wal_shared *s = ra->s;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    sqlite3_int64 last = 0;

    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE, vt->vfs) != SQLITE_OK) {
        wal_fail(s, "reader open", db);
        goto out;
    }
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_prepare_v2(db,
                           "SELECT a, b, (SELECT count(*) FROM log), "
                           "(SELECT coalesce(max(n), 0) FROM log) FROM c",
                           -1, &st, NULL) != SQLITE_OK) {
        wal_fail(s, "reader prepare", db);
        goto out;
    }
    for (;;) {
        int done = __atomic_load_n(&s->done, __ATOMIC_SEQ_CST);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            wal_fail(s, "reader step", db);
            goto out;
        }
        sqlite3_int64 a = sqlite3_column_int64(st, 0), b = sqlite3_column_int64(st, 1);
        sqlite3_int64 n = sqlite3_column_int64(st, 2), mx = sqlite3_column_int64(st, 3);
        sqlite3_reset(st);
        if (a + b != 0 || n != a || mx != a || a < last) {
            char why[200];
            snprintf(why, sizeof why, "reader saw a=%lld b=%lld count=%lld max=%lld last=%lld",
                     (long long)a, (long long)b, (long long)n, (long long)mx, (long long)last);
            wal_fail(s, why, NULL);
            goto out;
        }
        last = a;
        s->reads[ra->idx]++;
        if (done || __atomic_load_n(&s->failed, __ATOMIC_SEQ_CST))
            break;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

START_TEST(test_wal_threads)
{
    char *dir = tdir_make();
    char *path = cpath(dir, "app.db");
    struct wal_shared s;
    struct wal_reader_arg ra[WAL_NREADERS];
    pthread_t w, r[WAL_NREADERS];
    sqlite3 *db = db_open(path, RW_CREATE, vt->vfs);

    ck_assert_text((db, "PRAGMA journal_mode=WAL"), "wal");
    EXEC(db, "PRAGMA wal_autocheckpoint=20");
    EXEC(db, "CREATE TABLE c(a INTEGER, b INTEGER); INSERT INTO c VALUES(0, 0);"
             "CREATE TABLE log(n INTEGER, pad BLOB)");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

    memset(&s, 0, sizeof s);
    s.path = path;
    s.nwrites = vt_scaled(WAL_NWRITES);
    pthread_mutex_init(&s.mu, NULL);
    for (int i = 0; i < WAL_NREADERS; i++) {
        ra[i].s = &s;
        ra[i].idx = i;
        ck_assert_int_eq(pthread_create(&r[i], NULL, wal_reader, &ra[i]), 0);
    }
    ck_assert_int_eq(pthread_create(&w, NULL, wal_writer, &s), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < WAL_NREADERS; i++)
        pthread_join(r[i], NULL);
    ck_assert_msg(!s.failed, "%s", s.why);
    for (int i = 0; i < WAL_NREADERS; i++)
        ck_assert_int_gt(s.reads[i], 0);

    db = db_open(path, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(db, "SELECT a FROM c"), s.nwrites);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM log"), s.nwrites);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    vt->fsck_clean(path);
    pthread_mutex_destroy(&s.mu);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* On any target: every io method, the lock states between files and
 * between connections, the WAL-index, WAL with threads.  The sqlite3_vfs
 * methods, registration and the extension's entry point are the cow VFS's
 * own (test_vfs_methods, test_ext_entry): nothing of a device. */
void vfs_io_any_target(TCase *tc)
{
    tcase_add_test(tc, test_io_methods);
    tcase_add_test(tc, test_shm);
    tcase_add_test(tc, test_lock_states);
    tcase_add_test(tc, test_lock_connections);
    tcase_add_test(tc, test_wal_threads);
}

Suite *vfs_io_suite(void)
{
    Suite *s = suite_create("vfs_io");

    vfs_tcase(s, "io", 60, test_io_methods, test_vfs_methods, test_ext_entry, test_shm, NULL);

    vfs_tcase(s, "locking", 60, test_lock_states, test_lock_connections, NULL);

    vfs_tcase(s, "wal_threads", 300, test_wal_threads, NULL);

    return s;
}
