/*
 * check_vfs.c - tests of the "cow" SQLite VFS (vfs/).
 *
 * Every test works in its own temporary directory under /tmp (mkdtemp) and
 * removes it.  Tests that can only pass if the VFS keeps every file inside
 * the container list that directory and expect the container alone.
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
#include "../tools/fsck.h"

#define RW_CREATE (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)

/* ---------------------------------------------------------------------------
 * Helpers
 */

static void vfs_setup(void)
{
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
}

/* Each test makes its own directory in the test case's base directory
 * (test_base_setup) and removes it when it passes. */
static char *tdir_make(void)
{
    return test_base_dir();
}

/* 1 if PATH starts like a container (superblock magic in either copy). */
static int is_container(const char *path)
{
    unsigned char b[2 * COW_BLOCK_SIZE];
    int fd = open(path, O_RDONLY);
    int yes = 0;
    if (fd < 0)
        return 0;
    if (pread(fd, b, sizeof b, 0) == (ssize_t)sizeof b)
        yes = get64(b + SB_MAGIC) == COW_SB_MAGIC ||
              get64(b + COW_BLOCK_SIZE + SB_MAGIC) == COW_SB_MAGIC;
    close(fd);
    return yes;
}

/* Removes DIR and the files in it (the tests make no subdirectories).
 * With CHECK, every container in it must first pass fsck: every test that
 * writes a container checks it at the end. */
static void tdir_remove_fsck(char *dir, int check)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    char buf[4096];

    if (dp) {
        while ((de = readdir(dp)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(buf, sizeof buf, "%s/%s", dir, de->d_name);
            if (check && is_container(buf))
                test_fsck_clean(buf);
            unlink(buf);
        }
        closedir(dp);
    }
    rmdir(dir);
    free(dir);
}

static void tdir_remove(char *dir)
{
    tdir_remove_fsck(dir, 1);
}

static char *tpath(const char *dir, const char *name)
{
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in DIR, sorted, separated by one space. */
static void dir_list(const char *dir, char *out, size_t n)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    char *names[64];
    int k = 0;

    ck_assert_ptr_nonnull(dp);
    while ((de = readdir(dp)) != NULL && k < 64) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        names[k++] = strdup(de->d_name);
    }
    closedir(dp);
    qsort(names, (size_t)k, sizeof names[0], cmpstr);
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        if (i)
            strncat(out, " ", n - strlen(out) - 1);
        strncat(out, names[i], n - strlen(out) - 1);
        free(names[i]);
    }
}

#define ck_assert_dir(dir, expect)                                                      \
    do {                                                                                \
        char list_[1024];                                                               \
        dir_list((dir), list_, sizeof list_);                                           \
        ck_assert_msg(strcmp(list_, (expect)) == 0, "directory holds \"%s\", not \"%s\"", \
                      list_, (expect));                                                 \
    } while (0)

/* The names of the store files in container PATH (not open in this
 * process), sorted, separated by one space. */
static int store_names_cb(void *arg, const struct cow_file_info *fi)
{
    char *out = arg;
    if (out[0])
        strncat(out, " ", 1023 - strlen(out));
    strncat(out, fi->name, 1023 - strlen(out));
    return 0;
}

static void store_names(const char *path, char out[1024])
{
    cow_store *st = NULL;
    char *names[64], *tok, *save = NULL, tmp[1024];
    int k = 0;

    out[0] = 0;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_READONLY, &st), COW_OK);
    ck_assert_int_eq(cow_list(st, store_names_cb, out), COW_OK);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    snprintf(tmp, sizeof tmp, "%s", out);
    for (tok = strtok_r(tmp, " ", &save); tok && k < 64; tok = strtok_r(NULL, " ", &save))
        names[k++] = tok;
    qsort(names, (size_t)k, sizeof names[0], cmpstr);
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        if (i)
            strcat(out, " ");
        strcat(out, names[i]);
    }
}

#define ck_assert_store(path, expect)                                                   \
    do {                                                                                \
        char names_[1024];                                                              \
        store_names((path), names_);                                                    \
        ck_assert_msg(strcmp(names_, (expect)) == 0, "%s holds \"%s\", not \"%s\"",     \
                      (path), names_, (expect));                                        \
    } while (0)

static sqlite3 *db_open(const char *path, int flags, const char *vfs)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, vfs);
    ck_assert_msg(rc == SQLITE_OK, "open %s via %s: %d %s", path, vfs ? vfs : "default", rc,
                  db ? sqlite3_errmsg(db) : "");
    sqlite3_busy_timeout(db, 0);
    return db;
}

#define EXEC(db, sql)                                                                    \
    do {                                                                                 \
        char *err_ = NULL;                                                               \
        int rc_ = sqlite3_exec((db), (sql), NULL, NULL, &err_);                          \
        ck_assert_msg(rc_ == SQLITE_OK, "%s: %d %s", (sql), rc_, err_ ? err_ : "");      \
        sqlite3_free(err_);                                                              \
    } while (0)

/* Runs SQL; returns its result code (the extended one). */
static int exec_rc(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db);
}

/* The first column of the first row of SQL as an integer (-1 if no row). */
static sqlite3_int64 query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 v = -1;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    rc = sqlite3_step(st);
    ck_assert_msg(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %d %s", sql, rc, sqlite3_errmsg(db));
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The first column of the first row of SQL as text (malloc()ed), or NULL. */
static char *query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    rc = sqlite3_step(st);
    ck_assert_msg(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %d %s", sql, rc, sqlite3_errmsg(db));
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

/* Asserts that SQL's first value is the text EXPECT. */
#define ck_assert_text(args, expect)                                                     \
    do {                                                                                 \
        char *v_ = query_text args;                                                      \
        ck_assert_msg(v_ != NULL && strcmp(v_, (expect)) == 0, "got \"%s\", not \"%s\"", \
                      v_ ? v_ : "(no row)", (expect));                                   \
        free(v_);                                                                        \
    } while (0)

/* Asserts that SQL returns no row. */
#define ck_assert_no_row(db, sql)                                                        \
    do {                                                                                 \
        char *v_ = query_text((db), (sql));                                              \
        ck_assert_msg(v_ == NULL, "%s gave \"%s\"", (sql), v_);                        \
        free(v_);                                                                        \
    } while (0)

static void *read_whole(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;

    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void write_whole(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(buf, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static sqlite3_vfs *cow_vfs(void)
{
    sqlite3_vfs *v = sqlite3_vfs_find(COWVFS_NAME);
    ck_assert_ptr_nonnull(v);
    return v;
}

/* The full path SQLite would use for PATH. */
static char *full_path(const char *path)
{
    sqlite3_vfs *v = cow_vfs();
    char *out = calloc(1, (size_t)v->mxPathname + 1);
    ck_assert_int_eq(v->xFullPathname(v, path, v->mxPathname + 1, out), SQLITE_OK);
    return out;
}

/*
 * ZNAME as SQLite hands names to a VFS: with four zero bytes before it and
 * an empty parameter list after it (sqlite3_create_filename()'s layout), so
 * that sqlite3_uri_parameter() may be used on it, as xOpen, xAccess and
 * xDelete of the cow VFS do (snapshot=, branch=).  From a ring of buffers
 * (valid until 8 more calls); NULL for NULL.
 */
static const char *vfs_name(const char *zName)
{
    static char ring[8][4200];
    static int next;
    char *b = ring[next++ % 8];
    size_t n;

    if (zName == NULL)
        return NULL; /* a temporary file */
    n = strlen(zName);

    ck_assert_uint_lt(n, sizeof ring[0] - 8);
    memset(b, 0, 4);
    memcpy(b + 4, zName, n);
    memset(b + 4 + n, 0, 3);
    return b + 4;
}

/* Opens ZNAME through the cow VFS directly; the sqlite3_file is malloc()ed. */
static sqlite3_file *raw_open(const char *zName, int flags, int *pRc)
{
    sqlite3_vfs *v = cow_vfs();
    sqlite3_file *f = calloc(1, (size_t)v->szOsFile);
    int out = 0;

    ck_assert_ptr_nonnull(f);
    *pRc = v->xOpen(v, vfs_name(zName), f, flags, &out);
    if (*pRc != SQLITE_OK) {
        if (f->pMethods)
            f->pMethods->xClose(f);
        free(f);
        return NULL;
    }
    return f;
}

static sqlite3_file *raw_open_ok(const char *zName, int flags)
{
    int rc;
    sqlite3_file *f = raw_open(zName, flags, &rc);
    ck_assert_msg(rc == SQLITE_OK, "xOpen %s flags %#x: %d", zName, flags, rc);
    return f;
}

static void raw_close(sqlite3_file *f)
{
    ck_assert_int_eq(f->pMethods->xClose(f), SQLITE_OK);
    free(f);
}

static int raw_access(const char *zName)
{
    sqlite3_vfs *v = cow_vfs();
    int res = -1;
    ck_assert_int_eq(v->xAccess(v, vfs_name(zName), SQLITE_ACCESS_EXISTS, &res), SQLITE_OK);
    return res;
}

/* A database with some rows, made through VFS. */
static void make_db(const char *path, const char *vfs, int nrows)
{
    sqlite3 *db = db_open(path, RW_CREATE, vfs);
    char sql[256];

    EXEC(db, "CREATE TABLE IF NOT EXISTS t(x INTEGER PRIMARY KEY, y TEXT)");
    if (nrows <= 0)
        goto out;
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) "
             "INSERT INTO t(y) SELECT 'COWDATAMARKER-' || i || '-' || hex(randomblob(40)) FROM c",
             nrows);
    EXEC(db, sql);
out:
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* ---- sqlite3_log capture ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[8192];

static void log_cb(void *arg, int code, const char *msg)
{
    (void)arg;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(log_buf);
    snprintf(log_buf + n, sizeof log_buf - n, "[%d] %s\n", code, msg);
    pthread_mutex_unlock(&log_mu);
}

/* Routes sqlite3_log to log_buf (SQLite must be re-initialised for that). */
static void log_capture_begin(void)
{
    sqlite3_shutdown();
    ck_assert_int_eq(sqlite3_config(SQLITE_CONFIG_LOG, log_cb, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_initialize(), SQLITE_OK);
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
    log_buf[0] = 0;
}

static void log_capture_end(void)
{
    sqlite3_shutdown();
    sqlite3_config(SQLITE_CONFIG_LOG, NULL, NULL);
    sqlite3_initialize();
}

/* ---------------------------------------------------------------------------
 * Every io method, called directly
 */

START_TEST(test_io_methods)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
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
    ck_assert_str_eq(z, "cow");
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
    ck_assert_int_eq(cow_vfs()->xDelete(cow_vfs(), vfs_name(jname), 1), SQLITE_OK);
    ck_assert_int_eq(raw_access(jname), 0);
    ck_assert_int_eq(cow_vfs()->xDelete(cow_vfs(), vfs_name(jname), 0), SQLITE_IOERR_DELETE_NOENT);

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
    ck_assert_int_eq(cow_vfs()->xDelete(cow_vfs(), vfs_name(wname), 0), SQLITE_OK);
    ck_assert_int_eq(raw_access(wname), 0);

    /* A super-journal is a file of the default VFS beside the container,
     * so that a child database on another VFS can see it after a crash
     * (vfs.c, SUPER-JOURNALS); it claims no SEQUENTIAL, so SQLite syncs
     * it before the child journals name it. */
    snprintf(mjname, sizeof mjname, "%s-mj01AB2C9D4", full);
    sqlite3_file *mj =
        raw_open_ok(mjname, RW_CREATE | SQLITE_OPEN_EXCLUSIVE | SQLITE_OPEN_SUPER_JOURNAL);
    ck_assert_ptr_ne(mj->pMethods, f->pMethods);
    ck_assert_int_eq(mj->pMethods->xWrite(mj, "x.db-journal\0", 13, 0), SQLITE_OK);
    ck_assert_int_eq(mj->pMethods->xDeviceCharacteristics(mj) & SQLITE_IOCAP_SEQUENTIAL, 0);
    ck_assert_int_eq(raw_access(mjname), 1);
    ck_assert_int_eq(access(mjname, F_OK), 0);
    raw_close(mj);
    ck_assert_int_eq(cow_vfs()->xDelete(cow_vfs(), vfs_name(mjname), 1), SQLITE_OK);
    ck_assert_int_eq(raw_access(mjname), 0);
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

    /* DELETEONCLOSE on a main database removes the container. */
    char *path2 = tpath(dir, "gone.db");
    char *full2 = full_path(path2);
    f = raw_open_ok(full2, RW_CREATE | SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_DELETEONCLOSE);
    ck_assert_int_eq(f->pMethods->xWrite(f, pat, 4096, 0), SQLITE_OK);
    ck_assert_int_eq(access(full2, F_OK), 0);
    raw_close(f);
    ck_assert_int_ne(access(full2, F_OK), 0);
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
    char *path = tpath(dir, "app.db");
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
    char *path = tpath(dir, "app.db");
    sqlite3 *a = db_open(path, RW_CREATE, "cow");
    sqlite3 *b = db_open(path, SQLITE_OPEN_READWRITE, "cow");

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
    char *path = tpath(dir, "app.db");
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

    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK) {
        wal_fail(s, "writer open", db);
        goto out;
    }
    sqlite3_busy_timeout(db, 10000);
    for (int i = 1; i <= WAL_NWRITES && !__atomic_load_n(&s->failed, __ATOMIC_SEQ_CST); i++) {
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

    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK) {
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
    char *path = tpath(dir, "app.db");
    struct wal_shared s;
    struct wal_reader_arg ra[WAL_NREADERS];
    pthread_t w, r[WAL_NREADERS];
    sqlite3 *db = db_open(path, RW_CREATE, "cow");

    ck_assert_text((db, "PRAGMA journal_mode=WAL"), "wal");
    EXEC(db, "PRAGMA wal_autocheckpoint=20");
    EXEC(db, "CREATE TABLE c(a INTEGER, b INTEGER); INSERT INTO c VALUES(0, 0);"
             "CREATE TABLE log(n INTEGER, pad BLOB)");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

    memset(&s, 0, sizeof s);
    s.path = path;
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

    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT a FROM c"), WAL_NWRITES);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM log"), WAL_NWRITES);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    test_fsck_clean(path);
    pthread_mutex_destroy(&s.mu);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Journal modes: transactions, a rollback, integrity, reopen, no stray files
 */

static const char *const journal_modes[] = {"delete", "truncate", "persist",
                                            "memory", "off",      "wal"};

START_TEST(test_journal_modes)
{
    const char *mode = journal_modes[_i];
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *full = full_path(path);
    char sql[200], jname[1024];
    sqlite3 *db = db_open(path, RW_CREATE, "cow");

    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    ck_assert_text((db, sql), mode);
    EXEC(db, "PRAGMA cache_size=20"); /* spill pages to the database mid-transaction */
    EXEC(db, "CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT)");
    EXEC(db, "CREATE INDEX t_y ON t(y)");
    EXEC(db, "BEGIN;"
             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<2000)"
             "INSERT INTO t(y) SELECT hex(randomblob(60)) FROM c;"
             "COMMIT");
    EXEC(db, "UPDATE t SET y = 'committed-' || x WHERE x % 3 = 0");
    ck_assert_dir(dir, "app.db");

    /* A rollback.  With journal_mode=OFF SQLite cannot undo pages already
     * written to the database, so keep that transaction inside the cache. */
    if (strcmp(mode, "off") == 0)
        EXEC(db, "PRAGMA cache_size=2000");
    EXEC(db, "BEGIN");
    EXEC(db, "UPDATE t SET y = 'rolled-back' WHERE x % 2 = 0");
    EXEC(db, "DELETE FROM t WHERE x % 5 = 0");
    EXEC(db, "INSERT INTO t(y) SELECT y || 'dup' FROM t");
    ck_assert_dir(dir, "app.db");
    EXEC(db, "ROLLBACK");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 2000);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y = 'rolled-back'"), 0);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'committed-%'"), 666);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");

    /* PERSIST keeps the journal, inside the container. */
    snprintf(jname, sizeof jname, "%s-journal", full);
    if (strcmp(mode, "persist") == 0)
        ck_assert_int_eq(raw_access(jname), 1);

    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 2000);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'committed-%'"), 666);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    if (strcmp(mode, "wal") == 0)
        ck_assert_text((db, "PRAGMA journal_mode"), "wal");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    test_fsck_clean(path);
    /* what is left inside: TRUNCATE and PERSIST keep their journal */
    ck_assert_store(path, strcmp(mode, "truncate") == 0 || strcmp(mode, "persist") == 0
                              ? "db db-journal"
                              : "db");

    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Files that are not containers
 */

enum { BAD_SQLITE, BAD_RANDOM, BAD_EMPTY, BAD_TRUNCATED, BAD_SUPERBLOCKS, BAD_SB_AND_TREE, BAD_N };
static const char *const bad_names[] = {"sqlite database", "random bytes", "empty file",
                                        "truncated container", "both superblocks damaged",
                                        "superblock and tree blocks damaged"};

static int sb_ok(const unsigned char *b)
{
    return get64(b + SB_MAGIC) == COW_SB_MAGIC &&
           get32(b + SB_CSUM) == crc32c(0, b + 4, COW_BLOCK_SIZE - 4);
}

/* Makes the bad file of kind KIND at PATH. */
static void make_bad(int kind, const char *path)
{
    size_t n = 0;
    unsigned char *buf;

    switch (kind) {
    case BAD_SQLITE:
        make_db(path, "unix", 50);
        break;
    case BAD_RANDOM: {
        unsigned x = 12345;
        n = 65536;
        buf = malloc(n);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (unsigned char)(x >> 16);
        }
        write_whole(path, buf, n);
        free(buf);
        break;
    }
    case BAD_EMPTY:
        write_whole(path, "", 0);
        break;
    case BAD_TRUNCATED:
        make_db(path, "cow", 200);
        ck_assert_int_eq(truncate(path, 3 * COW_BLOCK_SIZE), 0);
        break;
    case BAD_SUPERBLOCKS:
        make_db(path, "cow", 200);
        buf = read_whole(path, &n);
        buf[SB_GENERATION] ^= 0x01;
        buf[COW_BLOCK_SIZE + SB_GENERATION] ^= 0x01;
        write_whole(path, buf, n);
        free(buf);
        break;
    case BAD_SB_AND_TREE: {
        make_db(path, "cow", 200);
        buf = read_whole(path, &n);
        int newest = -1, flipped = 0;
        uint64_t done = 0;
        for (int i = 0; i < COW_SB_COPIES; i++) {
            const unsigned char *sb = buf + (size_t)i * COW_BLOCK_SIZE;
            if (!sb_ok(sb))
                continue;
            /* damage the root tree block this superblock points at (once:
             * both copies may share it) */
            uint64_t root = get64(sb + SB_ROOT_TREE + RR_BYTENR);
            ck_assert(root % COW_BLOCK_SIZE == 0 && root + COW_BLOCK_SIZE <= n);
            if (root != done)
                buf[root + TB_HEADER_SIZE + 7] ^= 0x40;
            done = root;
            flipped++;
            if (newest < 0 || get64(sb + SB_GENERATION) >
                                  get64(buf + (size_t)newest * COW_BLOCK_SIZE + SB_GENERATION))
                newest = i;
        }
        ck_assert_int_gt(flipped, 0);
        /* and the newest superblock */
        buf[(size_t)newest * COW_BLOCK_SIZE + SB_BYTES_USED] ^= 0x10;
        write_whole(path, buf, n);
        free(buf);
        break;
    }
    }
}

START_TEST(test_bad_files)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "bad.db");
    size_t n0, n1;
    sqlite3 *db = NULL;
    int rc;

    make_bad(_i, path);
    unsigned char *before = read_whole(path, &n0);
    log_capture_begin();

    /* The empty file is formatted when SQLITE_OPEN_CREATE is given (as an
     * empty file is an empty database for the unix VFS); without it, it is
     * not a container. */
    int flags = _i == BAD_EMPTY ? SQLITE_OPEN_READWRITE : RW_CREATE;
    rc = sqlite3_open_v2(path, &db, flags, "cow");
    if (rc == SQLITE_OK) {
        /* would be a bug; make it visible */
        rc = sqlite3_exec(db, "SELECT * FROM sqlite_schema", NULL, NULL, NULL);
    }
    ck_assert_msg((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT,
                  "%s: open gave %d (%s)", bad_names[_i], rc, sqlite3_errstr(rc));
    sqlite3_close(db);
    db = NULL;
    /* read-only too */
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, "cow");
    ck_assert_msg((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT,
                  "%s: read-only open gave %d", bad_names[_i], rc);
    sqlite3_close(db);

    /* the reason was logged */
    ck_assert_msg(strstr(log_buf, "cow: open container") != NULL, "log: %s", log_buf);
    ck_assert_msg(strstr(log_buf, path) != NULL, "log: %s", log_buf);
    log_capture_end();

    /* the file was not touched, and nothing appeared beside it */
    unsigned char *after = read_whole(path, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_msg(memcmp(before, after, n0) == 0, "%s was modified", bad_names[_i]);
    ck_assert_dir(dir, "bad.db");

    /* an ordinary database is still fine through unix */
    if (_i == BAD_SQLITE) {
        db = db_open(path, SQLITE_OPEN_READWRITE, "unix");
        ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 50);
        sqlite3_close(db);
    }
    /* and fsck reports it */
    ck_assert_msg(cow_fsck(path, COW_FSCK_DATA, NULL, NULL) != 0, "fsck passed %s",
                  bad_names[_i]);
    free(before);
    free(after);
    free(path);
    tdir_remove_fsck(dir, 0);
}
END_TEST

/* A damaged data block is an error on read (SQLITE_IOERR_DATA), never data. */
START_TEST(test_bad_data_block)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    size_t n;
    int hits = 0;

    make_db(path, "cow", 300);
    unsigned char *buf = read_whole(path, &n);
    for (size_t off = 2 * COW_BLOCK_SIZE; off + 13 <= n; off++) {
        if (memcmp(buf + off, "COWDATAMARKER", 13) == 0) {
            buf[off] ^= 0x20; /* 'C' -> 'c' */
            hits++;
        }
    }
    ck_assert_int_gt(hits, 0);
    write_whole(path, buf, n);
    free(buf);

    log_capture_begin();
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    int rc = exec_rc(db, "SELECT count(*) FROM t WHERE y LIKE 'cowdata%'");
    ck_assert_msg(rc == SQLITE_IOERR_DATA, "gave %d %s", rc, sqlite3_errmsg(db));
    sqlite3_close(db);
    ck_assert_msg(strstr(log_buf, "cow: read") != NULL, "log: %s", log_buf);
    log_capture_end();
    ck_assert_int_gt(cow_fsck(path, COW_FSCK_DATA, NULL, NULL), 0);
    free(path);
    tdir_remove_fsck(dir, 0);
}
END_TEST

/*
 * A full disk (simulated with RLIMIT_FSIZE in this forked test process) is
 * SQLITE_FULL from the statement that needs the space, and loses nothing:
 * every transaction committed before is there after a reopen, the database
 * passes integrity_check and the container fsck.
 */
static const char *const full_modes[] = {"delete", "wal"};

START_TEST(test_disk_full)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "full.db");
    char sql[256];
    sqlite3 *db = db_open(path, RW_CREATE, "cow");

    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", full_modes[_i]);
    EXEC(db, sql);
    EXEC(db, "CREATE TABLE t(x INTEGER PRIMARY KEY, y)");
    EXEC(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
             "INSERT INTO t(y) SELECT randomblob(200) FROM n");

    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    struct rlimit lim = {24u << 20, rl.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    log_capture_begin();
    int rc = SQLITE_OK, ok = 0;
    for (int i = 0; i < 1000 && rc == SQLITE_OK; i++) {
        rc = exec_rc(db, "INSERT INTO t(y) VALUES (randomblob(60000))");
        if (rc == SQLITE_OK)
            ok++;
    }
    ck_assert_msg((rc & 0xff) == SQLITE_FULL, "%s: gave %d %s after %d inserts", full_modes[_i],
                  rc, sqlite3_errmsg(db), ok);
    ck_assert_int_gt(ok, 0);
    log_capture_end();
    sqlite3_close(db);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);

    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    char *ic = query_text(db, "PRAGMA integrity_check");
    ck_assert_str_eq(ic, "ok");
    free(ic);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 500 + ok);
    /* and the store still works once there is room again */
    EXEC(db, "INSERT INTO t(y) VALUES ('after')");
    sqlite3_close(db);
    test_fsck_clean(path);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* A missing path with CREATE becomes a container; without CREATE it is
 * SQLITE_CANTOPEN and nothing is created. */
START_TEST(test_create)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "new.db");
    sqlite3 *db = NULL;
    size_t n;

    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow"), SQLITE_CANTOPEN);
    sqlite3_close(db);
    ck_assert_dir(dir, "");

    db = db_open(path, RW_CREATE, "cow");
    ck_assert_int_eq(access(path, F_OK), 0);
    EXEC(db, "CREATE TABLE t(x); INSERT INTO t VALUES('hello')");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    unsigned char *buf = read_whole(path, &n);
    ck_assert_uint_ge(n, 2 * COW_BLOCK_SIZE);
    ck_assert_int_ne(memcmp(buf, "SQLite format 3", 15), 0);
    ck_assert(sb_ok(buf) || sb_ok(buf + COW_BLOCK_SIZE));
    free(buf);
    ck_assert_dir(dir, "new.db");

    /* it is a container, not an SQLite file */
    db = db_open(path, SQLITE_OPEN_READWRITE, "unix");
    ck_assert_int_eq(exec_rc(db, "SELECT * FROM t"), SQLITE_NOTADB);
    sqlite3_close(db);
    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_text((db, "SELECT x FROM t"), "hello");
    sqlite3_close(db);

    /* an empty existing file with CREATE is formatted */
    char *empty = tpath(dir, "empty.db");
    write_whole(empty, "", 0);
    db = db_open(empty, RW_CREATE, "cow");
    EXEC(db, "CREATE TABLE t(x)");
    sqlite3_close(db);
    ck_assert_dir(dir, "empty.db new.db");

    free(empty);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* SQLITE_OPEN_READONLY: reads work, writes are refused, the container is
 * not modified. */
START_TEST(test_readonly)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    size_t n0, n1;

    make_db(path, "cow", 100);
    unsigned char *before = read_whole(path, &n0);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READONLY, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 100);
    ck_assert_int_eq(exec_rc(db, "INSERT INTO t(y) VALUES('no')") & 0xff, SQLITE_READONLY);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 100);
    /* a second, read-write connection while the store is open read-only
     * is downgraded (as unix does for a file it may not write) */
    sqlite3 *db2 = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(sqlite3_db_readonly(db2, "main"), 1);
    ck_assert_int_eq(exec_rc(db2, "INSERT INTO t(y) VALUES('no')") & 0xff, SQLITE_READONLY);
    sqlite3_close(db2);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    unsigned char *after = read_whole(path, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert(memcmp(before, after, n0) == 0);
    free(before);
    free(after);

    /* a WAL database whose WAL was checkpointed away reads fine read-only */
    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_text((db, "PRAGMA journal_mode=WAL"), "wal");
    EXEC(db, "INSERT INTO t(y) VALUES('wal')");
    sqlite3_close(db);
    before = read_whole(path, &n0);
    db = db_open(path, SQLITE_OPEN_READONLY, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 101);
    ck_assert_int_eq(exec_rc(db, "INSERT INTO t(y) VALUES('no')") & 0xff, SQLITE_READONLY);
    sqlite3_close(db);
    after = read_whole(path, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert(memcmp(before, after, n0) == 0);
    ck_assert_dir(dir, "app.db");

    free(before);
    free(after);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * File controls and pragmas
 */

static int io_caps(sqlite3 *db)
{
    sqlite3_file *f = NULL;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f), SQLITE_OK);
    return f->pMethods->xDeviceCharacteristics(f);
}

/* Reads counter NAME from PRAGMA cow_stats. */
static long long cow_stat(sqlite3 *db, const char *name)
{
    char *t = query_text(db, "PRAGMA cow_stats"), key[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = t ? strstr(t, key) : NULL;
    long long v = p ? atoll(p + strlen(key)) : -1;
    free(t);
    return v;
}

/*
 * SQLITE_FCNTL_SIZE_HINT preallocates up to the hint rounded up to
 * CHUNK_SIZE, without changing the database's size; SQLite's own hints
 * (growing the database, checkpoints) make the pages land in preallocated
 * blocks, written in place; a truncation keeps its chunk preallocated; the
 * content, integrity_check and fsck are right throughout.
 */
START_TEST(test_size_hint_preallocates)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "hint.db");
    sqlite3 *db = db_open(path, RW_CREATE, "cow");
    int chunk = 256 * 1024;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk), SQLITE_OK);
    EXEC(db, "PRAGMA auto_vacuum=FULL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    /* a hint by hand: 1 MiB ahead, the size unchanged */
    sqlite3_int64 hint = 1000000;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_SIZE_HINT, &hint), SQLITE_OK);
    long long pre = cow_stat(db, "preallocated");
    ck_assert_int_ge(pre, 1000000 - 8192);
    ck_assert_int_eq(pre % chunk, 0); /* from 0 (SQLite's first hint) to chunk boundaries */
    sqlite3_int64 size = -1;
    sqlite3_file *fd = NULL;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &fd), SQLITE_OK);
    ck_assert_int_eq(fd->pMethods->xFileSize(fd, &size), SQLITE_OK);
    ck_assert_int_eq(size, query_int(db, "PRAGMA page_count") * 4096);
    /* SQLite's growth writes into it, in place */
    EXEC(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<3000) "
             "INSERT INTO t SELECT x, randomblob(600) FROM c");
    ck_assert_int_gt(cow_stat(db, "written_in_place"), 500000);
    ck_assert_int_gt(cow_stat(db, "preallocated"), pre); /* and hints further */
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    int pages = query_int(db, "PRAGMA page_count");
    /* a shrink (auto_vacuum) truncates; the chunk stays preallocated */
    EXEC(db, "DELETE FROM t WHERE id > 1000");
    ck_assert_int_lt(query_int(db, "PRAGMA page_count"), pages);
    ck_assert_int_eq(fd->pMethods->xFileSize(fd, &size), SQLITE_OK);
    ck_assert_int_eq(size, query_int(db, "PRAGMA page_count") * 4096);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 1000);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);
    db = db_open(path, RW_CREATE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 1000);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

START_TEST(test_file_controls)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *moved = tpath(dir, "moved.db");
    char *full = full_path(path);
    char uri[1200], wname[1100];
    char *z = NULL;
    int v;
    sqlite3 *db = db_open(path, RW_CREATE, "cow");

    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_VFSNAME, &z), SQLITE_OK);
    ck_assert_str_eq(z, "cow");
    sqlite3_free(z);

    /* PRAGMA cow_generation grows with commits; cow_commit commits */
    EXEC(db, "CREATE TABLE t(x)");
    char *g1 = query_text(db, "PRAGMA cow_generation");
    ck_assert_ptr_nonnull(g1);
    ck_assert_uint_eq(strspn(g1, "0123456789"), strlen(g1));
    EXEC(db, "INSERT INTO t VALUES(1)");
    char *g2 = query_text(db, "PRAGMA cow_generation");
    ck_assert(strtoull(g2, NULL, 10) > strtoull(g1, NULL, 10));
    ck_assert_text((db, "PRAGMA cow_commit"), "ok");
    ck_assert_text((db, "PRAGMA main.COW_COMMIT"), "ok");
    ck_assert_int_ne(exec_rc(db, "PRAGMA cow_generation=5"), SQLITE_OK);
    /* unknown cow_* and other pragmas fall through to SQLite */
    ck_assert_no_row(db, "PRAGMA cow_no_such_pragma");
    EXEC(db, "PRAGMA user_version=7");
    ck_assert_int_eq(query_int(db, "PRAGMA user_version"), 7);
    ck_assert_int_eq(query_int(db, "PRAGMA page_size"), 4096);
    free(g1);
    free(g2);

    /* SIZE_HINT and CHUNK_SIZE are accepted; others are SQLITE_NOTFOUND */
    sqlite3_int64 hint = 1 << 20;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_SIZE_HINT, &hint), SQLITE_OK);
    v = 65536;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_CHUNK_SIZE, &v), SQLITE_OK);
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_LOCKSTATE, &v),
                     SQLITE_NOTFOUND);

    /* POWERSAFE_OVERWRITE: get, clear, set */
    ck_assert_int_eq(io_caps(db), SQLITE_IOCAP_POWERSAFE_OVERWRITE | SQLITE_IOCAP_SAFE_APPEND |
                                      SQLITE_IOCAP_SEQUENTIAL);
    v = -1;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_POWERSAFE_OVERWRITE, &v),
                     SQLITE_OK);
    ck_assert_int_eq(v, 1);
    v = 0;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_POWERSAFE_OVERWRITE, &v);
    v = -1;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_POWERSAFE_OVERWRITE, &v);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(io_caps(db), SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_SEQUENTIAL);
    v = 1;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_POWERSAFE_OVERWRITE, &v);
    ck_assert_int_eq(io_caps(db) & SQLITE_IOCAP_POWERSAFE_OVERWRITE,
                     SQLITE_IOCAP_POWERSAFE_OVERWRITE);

    /* PERSIST_WAL: get, set; a persisted WAL stays inside the container */
    v = -1;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &v), SQLITE_OK);
    ck_assert_int_eq(v, 0);
    v = 1;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &v);
    v = -1;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &v);
    ck_assert_int_eq(v, 1);
    ck_assert_text((db, "PRAGMA journal_mode=WAL"), "wal");
    EXEC(db, "INSERT INTO t VALUES(2)");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    snprintf(wname, sizeof wname, "%s-wal", full);
    ck_assert_int_eq(raw_access(wname), 1);
    ck_assert_dir(dir, "app.db");

    /* psow=0 in the URI */
    snprintf(uri, sizeof uri, "file:%s?psow=0", path);
    db = db_open(uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "cow");
    ck_assert_int_eq(io_caps(db) & SQLITE_IOCAP_POWERSAFE_OVERWRITE, 0);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 2);

    /* HAS_MOVED */
    v = -1;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &v), SQLITE_OK);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(rename(path, moved), 0);
    v = -1;
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &v), SQLITE_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "moved.db");

    free(full);
    free(moved);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Temporary files, ATTACH and super-journals, other processes, the registry
 */

START_TEST(test_temp_files)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    sqlite3 *db = db_open(path, RW_CREATE, "cow");

    EXEC(db, "PRAGMA temp_store=FILE");
    EXEC(db, "PRAGMA cache_size=10");
    EXEC(db, "CREATE TEMP TABLE tt(x INTEGER, pad BLOB)");
    EXEC(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<20000)"
             "INSERT INTO tt SELECT (i * 7919) % 20000, randomblob(200) FROM c");
    EXEC(db, "CREATE TABLE t(x INTEGER)");
    /* a big sort spills to temporary files; so does a big statement journal */
    EXEC(db, "INSERT INTO t SELECT x FROM tt ORDER BY pad");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM (SELECT x FROM tt ORDER BY pad DESC)"),
                     20000);
    ck_assert_int_eq(query_int(db, "SELECT sum(x) FROM t"), (sqlite3_int64)19999 * 20000 / 2);
    EXEC(db, "BEGIN; UPDATE t SET x = x + 1; SAVEPOINT s; UPDATE t SET x = x + 1;"
             "ROLLBACK TO s; COMMIT");
    ck_assert_int_eq(query_int(db, "SELECT sum(x) FROM t"),
                     (sqlite3_int64)19999 * 20000 / 2 + 20000);
    ck_assert_text((db, "PRAGMA temp.integrity_check"), "ok");
    ck_assert_text((db, "PRAGMA main.integrity_check"), "ok");
    ck_assert_dir(dir, "app.db");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    free(path);
    tdir_remove(dir);
}
END_TEST

/* A VFS that forwards to cow and counts super-journal opens and deletes. */
static sqlite3_vfs spy_vfs;
static int spy_super_opens, spy_super_deletes;
static char spy_super_name[1024];

static int spy_open(sqlite3_vfs *v, const char *z, sqlite3_file *f, int flags, int *out)
{
    (void)v;
    if (flags & SQLITE_OPEN_SUPER_JOURNAL) {
        spy_super_opens++;
        snprintf(spy_super_name, sizeof spy_super_name, "%s", z);
    }
    return cow_vfs()->xOpen(cow_vfs(), z, f, flags, out);
}

static int spy_die_on_super_delete;

static int spy_delete(sqlite3_vfs *v, const char *z, int sync)
{
    (void)v;
    if (strstr(z, "-mj") && spy_die_on_super_delete)
        kill(getpid(), SIGKILL);
    if (strstr(z, "-mj"))
        spy_super_deletes++;
    return cow_vfs()->xDelete(cow_vfs(), z, sync);
}

START_TEST(test_attach_super_journal)
{
    char *dir = tdir_make();
    char *a = tpath(dir, "a.db");
    char *b = tpath(dir, "b.db");
    char *fulla = full_path(a);
    char sql[1200];

    spy_vfs = *cow_vfs();
    spy_vfs.zName = "cowspy";
    spy_vfs.pNext = NULL;
    spy_vfs.xOpen = spy_open;
    spy_vfs.xDelete = spy_delete;
    ck_assert_int_eq(sqlite3_vfs_register(&spy_vfs, 0), SQLITE_OK);

    sqlite3 *db = db_open(a, RW_CREATE, "cowspy");
    snprintf(sql, sizeof sql, "ATTACH '%s' AS aux", b);
    EXEC(db, sql);
    ck_assert_text((db, "PRAGMA main.journal_mode"), "delete");
    ck_assert_text((db, "PRAGMA aux.journal_mode"), "delete");
    EXEC(db, "CREATE TABLE main.t(x); CREATE TABLE aux.u(x)");

    spy_super_opens = spy_super_deletes = 0;
    EXEC(db, "BEGIN; INSERT INTO main.t VALUES(1); INSERT INTO aux.u VALUES(1); COMMIT");
    ck_assert_int_eq(spy_super_opens, 1);
    ck_assert_int_eq(spy_super_deletes, 1);
    ck_assert_int_eq(strncmp(spy_super_name, fulla, strlen(fulla)), 0);
    ck_assert_int_eq(strncmp(spy_super_name + strlen(fulla), "-mj", 3), 0);
    ck_assert_int_eq(raw_access(spy_super_name), 0); /* deleted after the commit */

    /* a transaction across both, rolled back */
    EXEC(db, "BEGIN; INSERT INTO main.t VALUES(2); INSERT INTO aux.u VALUES(2); ROLLBACK");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM main.t"), 1);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM aux.u"), 1);

    /* only the auxiliary database written: still a super-journal, beside
     * main's container, synced (no SEQUENTIAL claim) */
    spy_super_opens = 0;
    EXEC(db, "BEGIN; INSERT INTO aux.u VALUES(3); INSERT INTO main.t VALUES(3); COMMIT");
    ck_assert_int_eq(spy_super_opens, 1);
    ck_assert_dir(dir, "a.db b.db");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

    db = db_open(b, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM u"), 2);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    sqlite3_close(db);
    db = db_open(a, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 2);
    sqlite3_close(db);
    ck_assert_dir(dir, "a.db b.db");
    ck_assert_store(a, "db");
    ck_assert_store(b, "db");
    test_fsck_clean(a);
    test_fsck_clean(b);
    ck_assert_int_eq(sqlite3_vfs_unregister(&spy_vfs), SQLITE_OK);

    free(fulla);
    free(a);
    free(b);
    tdir_remove(dir);
}
END_TEST

/* A container held by another process: SQLITE_BUSY, logged. */
START_TEST(test_other_process)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    int c2p[2], p2c[2];
    char ch = 0;
    sqlite3 *db = NULL;

    make_db(path, "cow", 10);
    ck_assert_int_eq(pipe(c2p), 0);
    ck_assert_int_eq(pipe(p2c), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sqlite3 *cdb = NULL;
        int ok = sqlite3_open_v2(path, &cdb, SQLITE_OPEN_READWRITE, "cow") == SQLITE_OK &&
                 sqlite3_exec(cdb, "SELECT * FROM t", NULL, NULL, NULL) == SQLITE_OK;
        if (write(c2p[1], ok ? "y" : "n", 1) != 1 || read(p2c[0], &ch, 1) != 1)
            ok = 0;
        sqlite3_close(cdb);
        _exit(ok ? 0 : 1);
    }
    ck_assert_int_eq(read(c2p[0], &ch, 1), 1);
    ck_assert_int_eq(ch, 'y');

    log_capture_begin();
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(rc, SQLITE_BUSY);
    sqlite3_close(db);
    ck_assert_msg(strstr(log_buf, "another process") != NULL, "log: %s", log_buf);
    log_capture_end();

    ck_assert_int_eq(write(p2c[1], "x", 1), 1);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 10);
    sqlite3_close(db);
    close(c2p[0]);
    close(c2p[1]);
    close(p2c[0]);
    close(p2c[1]);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Two spellings of one container (hard link, symlink) share one store;
 * xAccess/xDelete reach containers that are not open; names that are not
 * a container's go to the default VFS. */
START_TEST(test_registry_and_names)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *hard = tpath(dir, "hard.db");
    char *sym = tpath(dir, "sym.db");
    char *full = full_path(path);
    char name[1200];
    sqlite3_vfs *v = cow_vfs();
    int res = -1;

    make_db(path, "cow", 10);
    ck_assert_int_eq(link(path, hard), 0);
    ck_assert_int_eq(symlink(path, sym), 0);
    sqlite3 *d1 = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    sqlite3 *d2 = db_open(hard, SQLITE_OPEN_READWRITE, "cow");
    sqlite3 *d3 = db_open(sym, SQLITE_OPEN_READWRITE, "cow");
    EXEC(d2, "INSERT INTO t(y) VALUES('via hard link')");
    ck_assert_int_eq(query_int(d1, "SELECT count(*) FROM t"), 11);
    ck_assert_int_eq(query_int(d3, "SELECT count(*) FROM t"), 11);
    EXEC(d2, "BEGIN IMMEDIATE");
    ck_assert_int_eq(exec_rc(d1, "BEGIN IMMEDIATE"), SQLITE_BUSY); /* one lock state */
    EXEC(d2, "COMMIT");
    sqlite3_close(d1);
    sqlite3_close(d2);
    sqlite3_close(d3);
    unlink(hard);
    unlink(sym);

    /* a persisted journal in a container that is not open */
    d1 = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_text((d1, "PRAGMA journal_mode=PERSIST"), "persist");
    EXEC(d1, "INSERT INTO t(y) VALUES('x')");
    sqlite3_close(d1);
    snprintf(name, sizeof name, "%s-journal", full);
    ck_assert_int_eq(v->xAccess(v, vfs_name(name), SQLITE_ACCESS_EXISTS, &res), SQLITE_OK);
    ck_assert_int_eq(res, 1);
    ck_assert_int_eq(v->xAccess(v, vfs_name(name), SQLITE_ACCESS_READWRITE, &res), SQLITE_OK);
    ck_assert_int_eq(res, 1);
    ck_assert_int_eq(v->xDelete(v, vfs_name(name), 1), SQLITE_OK);
    ck_assert_int_eq(raw_access(name), 0);
    snprintf(name, sizeof name, "%s-wal", full);
    ck_assert_int_eq(raw_access(name), 0);
    ck_assert_int_eq(v->xDelete(v, vfs_name(name), 0), SQLITE_IOERR_DELETE_NOENT);
    d1 = db_open(path, SQLITE_OPEN_READWRITE, "cow"); /* nothing left locked */
    ck_assert_int_eq(query_int(d1, "SELECT count(*) FROM t"), 12);
    sqlite3_close(d1);
    ck_assert_dir(dir, "app.db");

    /* an ordinary file's journal beside it is the default VFS's */
    char *plain = tpath(dir, "plain.db");
    make_db(plain, "unix", 5);
    snprintf(name, sizeof name, "%s-journal", plain);
    write_whole(name, "not empty", 9);
    ck_assert_int_eq(raw_access(name), 1);
    ck_assert_int_eq(v->xDelete(v, vfs_name(name), 0), SQLITE_OK);
    ck_assert_int_ne(access(name, F_OK), 0);
    ck_assert_int_eq(raw_access(name), 0);
    snprintf(name, sizeof name, "%s/nothing.db-wal", dir);
    ck_assert_int_eq(raw_access(name), 0);
    ck_assert_dir(dir, "app.db plain.db");
    /* and the container itself is an ordinary name too */
    ck_assert_int_eq(raw_access(full), 1);

    free(plain);
    free(full);
    free(sym);
    free(hard);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Crashes: a process killed mid-transaction leaves a hot journal or a WAL
 * inside the container; the next open recovers through the VFS.
 */

/* Runs FN(PATH) in a child process that must die of SIGKILL. */
static void run_killed_child(void (*fn)(const char *), const char *path)
{
    int status = 0;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fn(path);
        _exit(3); /* fn did not kill itself */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x", status);
}

static int child_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* Spills a big update into the database and commits the store (so the hot
 * journal and the half-written database are durable), then dies. */
static void crash_in_update(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK ||
        !child_exec(db, "PRAGMA cache_size=5") || !child_exec(db, "BEGIN") ||
        !child_exec(db, "UPDATE t SET y = 'crash-' || x") ||
        !child_exec(db, "PRAGMA cow_commit"))
        _exit(4);
    kill(getpid(), SIGKILL);
}

START_TEST(test_crash_hot_journal)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *full = full_path(path);
    char jname[1100];

    make_db(path, "cow", 400);
    run_killed_child(crash_in_update, path);
    snprintf(jname, sizeof jname, "%s-journal", full);
    ck_assert_int_eq(raw_access(jname), 1); /* hot */
    ck_assert_dir(dir, "app.db");

    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 400);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'crash-%'"), 0);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(raw_access(jname), 0); /* rolled back and deleted */
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    test_fsck_clean(path);
    ck_assert_store(path, "db");
    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Commits 50 transactions to the WAL (each synced), spills an uncommitted
 * one into it, commits the store and dies. */
static void crash_in_wal(const char *path)
{
    sqlite3 *db = NULL;
    char sql[100];
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK ||
        !child_exec(db, "PRAGMA wal_autocheckpoint=0") ||
        !child_exec(db, "PRAGMA synchronous=FULL"))
        _exit(4);
    for (int i = 0; i < 50; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO t(y) VALUES('wal-%d')", i);
        if (!child_exec(db, sql))
            _exit(5);
    }
    if (!child_exec(db, "PRAGMA cache_size=5") || !child_exec(db, "BEGIN") ||
        !child_exec(db, "UPDATE t SET y = 'crash-' || x") ||
        !child_exec(db, "PRAGMA cow_commit"))
        _exit(6);
    kill(getpid(), SIGKILL);
}

START_TEST(test_crash_wal)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *full = full_path(path);
    char wname[1100];

    make_db(path, "cow", 300);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_text((db, "PRAGMA journal_mode=WAL"), "wal");
    sqlite3_close(db);
    run_killed_child(crash_in_wal, path);
    snprintf(wname, sizeof wname, "%s-wal", full);
    ck_assert_int_eq(raw_access(wname), 1);
    ck_assert_dir(dir, "app.db");

    /* a fresh WAL-index is rebuilt from the WAL: committed frames count,
     * the uncommitted ones do not */
    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 350);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'wal-%'"), 50);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'crash-%'"), 0);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_int_eq(raw_access(wname), 0); /* checkpointed and removed at close */
    ck_assert_dir(dir, "app.db");
    test_fsck_clean(path);
    free(full);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Dies just before deleting the super-journal: both databases are written
 * and synced, both journals hot and naming it. */
static void crash_before_super_delete(const char *a)
{
    sqlite3 *db = NULL;
    char sql[1200];
    snprintf(sql, sizeof sql, "ATTACH '%s2' AS aux", a); /* "a.db2": the other container */
    spy_die_on_super_delete = 1;
    if (sqlite3_open_v2(a, &db, SQLITE_OPEN_READWRITE, "cowspy") != SQLITE_OK ||
        !child_exec(db, sql) ||
        !child_exec(db, "BEGIN; UPDATE main.t SET y = 'new'; UPDATE aux.t SET y = 'new'; COMMIT"))
        _exit(4);
    _exit(5); /* the commit finished without deleting the super-journal? */
}

START_TEST(test_crash_super_journal)
{
    char *dir = tdir_make();
    char *a = tpath(dir, "a.db");
    char *b = tpath(dir, "a.db2");

    spy_vfs = *cow_vfs();
    spy_vfs.zName = "cowspy";
    spy_vfs.pNext = NULL;
    spy_vfs.xOpen = spy_open;
    spy_vfs.xDelete = spy_delete;
    ck_assert_int_eq(sqlite3_vfs_register(&spy_vfs, 0), SQLITE_OK);
    make_db(a, "cow", 50);
    make_db(b, "cow", 50);
    run_killed_child(crash_before_super_delete, a);
    /* the super-journal is a file beside a.db (vfs.c, SUPER-JOURNALS), and
     * so are the mirrors of the two journals that name it (vfs_mirror.c) */
    char list[1024];
    dir_list(dir, list, sizeof list);
    ck_assert_msg(strncmp(list, "a.db a.db-journal a.db-mj", 25) == 0 && strlen(list) == 54 &&
                      strcmp(list + 34, " a.db2 a.db2-journal") == 0,
                  "directory holds \"%s\"", list);

    /* Opening the auxiliary database alone finds its hot journal, sees
     * the super-journal beside a.db (whose container is not open in this
     * process) and rolls back: the multi-database transaction never
     * committed. */
    sqlite3 *db = db_open(b, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y = 'new'"), 0);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    sqlite3_close(db);
    db = db_open(a, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y = 'new'"), 0);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 50);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    sqlite3_close(db);
    ck_assert_dir(dir, "a.db a.db2");
    ck_assert_store(a, "db"); /* the super-journal is gone */
    ck_assert_store(b, "db");
    test_fsck_clean(a);
    test_fsck_clean(b);
    ck_assert_int_eq(sqlite3_vfs_unregister(&spy_vfs), SQLITE_OK);
    free(a);
    free(b);
    tdir_remove(dir);
}
END_TEST

/* A transaction SQLite reported committed survives an application crash in
 * every journal mode and synchronous level, as on unix. */
static const char *const sync_levels[] = {"off", "normal", "full"};
static const char *crash_mode, *crash_sync;

static void commit_then_die(const char *path)
{
    sqlite3 *db = NULL;
    char sql[200];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s; PRAGMA synchronous=%s", crash_mode,
             crash_sync);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK ||
        !child_exec(db, sql) || !child_exec(db, "INSERT INTO t(y) VALUES('one')") ||
        !child_exec(db, "BEGIN; INSERT INTO t(y) VALUES('two'); UPDATE t SET y = 'three' "
                        "WHERE y = 'one'; COMMIT"))
        _exit(4);
    kill(getpid(), SIGKILL);
}

START_TEST(test_app_crash_durable)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");

    crash_mode = journal_modes[_i / 3];
    crash_sync = sync_levels[_i % 3];
    make_db(path, "cow", 10);
    run_killed_child(commit_then_die, path);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_msg(query_int(db, "SELECT count(*) FROM t") == 12 &&
                      query_int(db, "SELECT count(*) FROM t WHERE y IN ('two', 'three')") == 2,
                  "journal_mode=%s synchronous=%s: committed rows lost", crash_mode, crash_sync);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_dir(dir, "app.db");
    free(path);
    tdir_remove(dir);
}
END_TEST

/* WAL commits under synchronous=FULL through the log, then SIGKILL: no
 * commit after the syncs, so the rows come back by log replay. */
static void wal_syncs_then_die(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK ||
        !child_exec(db, "PRAGMA journal_mode=WAL") || !child_exec(db, "PRAGMA synchronous=FULL") ||
        !child_exec(db, "PRAGMA cow_commit_interval=0") || !child_exec(db, "PRAGMA cow_commit"))
        _exit(4);
    long long s0 = cow_stat(db, "log_syncs"), f0 = cow_stat(db, "flushes");
    for (int i = 0; i < 30; i++)
        if (!child_exec(db, "INSERT INTO t(y) VALUES('logged')"))
            _exit(4);
    long long ls = cow_stat(db, "log_syncs") - s0, fl = cow_stat(db, "flushes") - f0;
    if (ls < 25 || fl > 35) /* one flush per commit, through the log */
        _exit(5);
    kill(getpid(), SIGKILL);
}

START_TEST(test_wal_log_replay)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");

    make_db(path, "cow", 10);
    run_killed_child(wal_syncs_then_die, path);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_gt(cow_stat(db, "replayed"), 0);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t WHERE y = 'logged'"), 30);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Threads opening and closing connections to two containers at once: the
 * registry opens each store once and closes it with the last file. */
#define REG_NTHREADS 4
#define REG_NITER 25

struct reg_arg {
    const char *paths[2];
    int idx;
    int failed;
    char why[200];
};

static void *reg_thread(void *p)
{
    struct reg_arg *a = p;
    for (int i = 0; i < REG_NITER && !a->failed; i++) {
        sqlite3 *db = NULL;
        const char *path = a->paths[(i + a->idx) % 2];
        char sql[100];
        snprintf(sql, sizeof sql, "INSERT INTO t(y) VALUES('thread %d iter %d')", a->idx, i);
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK) {
            snprintf(a->why, sizeof a->why, "open: %s", db ? sqlite3_errmsg(db) : "");
            a->failed = 1;
        } else {
            sqlite3_busy_timeout(db, 20000);
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
                snprintf(a->why, sizeof a->why, "insert: %s", sqlite3_errmsg(db));
                a->failed = 1;
            }
        }
        sqlite3_close(db);
    }
    return NULL;
}

START_TEST(test_registry_threads)
{
    char *dir = tdir_make();
    char *p1 = tpath(dir, "one.db");
    char *p2 = tpath(dir, "two.db");
    pthread_t th[REG_NTHREADS];
    struct reg_arg args[REG_NTHREADS];

    make_db(p1, "cow", 0);
    make_db(p2, "cow", 0);
    for (int i = 0; i < REG_NTHREADS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].paths[0] = p1;
        args[i].paths[1] = p2;
        args[i].idx = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, reg_thread, &args[i]), 0);
    }
    for (int i = 0; i < REG_NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < REG_NTHREADS; i++)
        ck_assert_msg(!args[i].failed, "thread %d: %s", i, args[i].why);
    sqlite3 *db = db_open(p1, SQLITE_OPEN_READWRITE, "cow");
    sqlite3_int64 n1 = query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'thread %'");
    sqlite3_close(db);
    db = db_open(p2, SQLITE_OPEN_READWRITE, "cow");
    sqlite3_int64 n2 = query_int(db, "SELECT count(*) FROM t WHERE y LIKE 'thread %'");
    sqlite3_close(db);
    ck_assert_int_eq(n1 + n2, REG_NTHREADS * REG_NITER);
    ck_assert_dir(dir, "one.db two.db");
    test_fsck_clean(p1);
    test_fsck_clean(p2);
    free(p1);
    free(p2);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Snapshots and branches
 */

static const char *const snap_modes[] = {"delete", "wal"};

/* Opens a second connection to PATH's live database in MODE. */
static sqlite3 *snap_conn(const char *path, const char *mode)
{
    char sql[100];
    sqlite3 *db = db_open(path, RW_CREATE, "cow");
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    ck_assert_text((db, sql), mode);
    return db;
}

/* ATTACHes URI (%s: the container path) as SCHEMA. */
static void snap_attach(sqlite3 *db, const char *path, const char *param, const char *schema)
{
    char sql[2048];
    snprintf(sql, sizeof sql, "ATTACH 'file:%s?vfs=cow&%s' AS %s", path, param, schema);
    EXEC(db, sql);
}

/* The result of "PRAGMA SCHEMA.cow_OP('NAME')": its code, and its text in
 * OUT (or the error message). */
static int snap_pragma(sqlite3 *db, const char *schema, const char *op, const char *name,
                       char out[512])
{
    char sql[600];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "PRAGMA %s.cow_%s('%s')", schema, op, name);
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    out[0] = 0;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            snprintf(out, 512, "%s", (const char *)sqlite3_column_text(st, 0));
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        snprintf(out, 512, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

#define SNAP_OK(db, schema, op, name)                                                       \
    do {                                                                                    \
        char out_[512];                                                                     \
        int rc_ = snap_pragma((db), (schema), (op), (name), out_);                          \
        ck_assert_msg(rc_ == SQLITE_OK, "cow_%s(%s): %d %s", (op), (name), rc_, out_);      \
        ck_assert_str_eq(out_, (name));                                                     \
    } while (0)

/*
 * A snapshot of a live database while another connection writes, read
 * through ATTACH next to the live data; read-only; branches of it and
 * snapshots of those; the listing; names; deletion only when not open.
 */
START_TEST(test_snapshot_basic)
{
    const char *mode = snap_modes[_i];
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char out[512];
    sqlite3 *a = snap_conn(path, mode);
    sqlite3 *b;

    EXEC(a, "CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT);"
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<1000)"
            "INSERT INTO t(y) SELECT hex(randomblob(100)) FROM c");
    b = snap_conn(path, mode);
    SNAP_OK(a, "main", "snapshot", "s1");
    EXEC(b, "UPDATE t SET y = 'changed' WHERE x <= 10; DELETE FROM t WHERE x > 900");
    snap_attach(a, path, "snapshot=s1", "s");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s.t"), 1000);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 900);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t JOIN s.t AS o USING (x) "
                                  "WHERE t.y <> o.y"),
                     10);
    ck_assert_text((a, "PRAGMA s.integrity_check"), "ok");
    ck_assert_int_eq(exec_rc(a, "INSERT INTO s.t(y) VALUES ('no')") & 0xff, SQLITE_READONLY);

    /* names: taken, bad; nothing changes */
    ck_assert_int_eq(snap_pragma(a, "main", "snapshot", "s1", out), SQLITE_ERROR);
    ck_assert_int_eq(snap_pragma(a, "main", "branch", "a/b", out), SQLITE_ERROR);
    ck_assert_int_eq(snap_pragma(a, "main", "snapshot", "", out), SQLITE_ERROR);
    ck_assert_int_eq(exec_rc(a, "PRAGMA cow_snapshot"), SQLITE_ERROR);

    /* a branch of the snapshot diverges; a snapshot of the branch */
    SNAP_OK(a, "s", "branch", "b1");
    snap_attach(a, path, "branch=b1", "br");
    EXEC(a, "INSERT INTO br.t(y) VALUES ('branch only')");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM br.t"), 1001);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s.t"), 1000);
    SNAP_OK(a, "br", "snapshot", "s2");
    EXEC(a, "DELETE FROM br.t WHERE x < 500");
    snap_attach(a, path, "snapshot=s2", "s2");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s2.t"), 1001);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM br.t"), 502);
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t"), 900);

    /* the listing */
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM cow_snapshots"), 3);
    ck_assert_text((a, "SELECT group_concat(name || ':' || kind || ':' || ifnull(source, '-'), "
                       "' ') FROM cow_snapshots"),
                   "s1:snapshot:- b1:branch:s1 s2:snapshot:b1");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM cow_snapshots('s2')"), 3);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM cow_snapshots WHERE "
                                  "created LIKE '2___-__-__ __:__:__.___'"),
                     3);

    /* URIs that name nothing, or the wrong kind */
    char sql[2048];
    snprintf(sql, sizeof sql, "ATTACH 'file:%s?vfs=cow&snapshot=nope' AS n", path);
    ck_assert_int_eq(exec_rc(a, sql) & 0xff, SQLITE_CANTOPEN);
    snprintf(sql, sizeof sql, "ATTACH 'file:%s?vfs=cow&branch=s1' AS n", path);
    ck_assert_int_eq(exec_rc(a, sql) & 0xff, SQLITE_CANTOPEN);

    /* delete: refused while open, then frees it */
    ck_assert_int_eq(snap_pragma(b, "main", "delete", "s2", out), SQLITE_BUSY);
    EXEC(a, "DETACH s2");
    SNAP_OK(b, "main", "delete", "s2");
    ck_assert_int_eq(snap_pragma(b, "main", "delete", "s2", out), SQLITE_ERROR);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM cow_snapshots"), 2);

    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    /* all of it after a reopen */
    a = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    snap_attach(a, path, "snapshot=s1", "s");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s.t"), 1000);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 900);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * A transaction boundary: a snapshot taken inside the caller's own write
 * transaction (in rollback mode also one that spilled pages to the
 * database file), or while another connection is inside one, holds the
 * last committed state.
 */
START_TEST(test_snapshot_in_transaction)
{
    const char *mode = snap_modes[_i];
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    sqlite3 *a = snap_conn(path, mode);
    sqlite3 *b = snap_conn(path, mode);

    EXEC(a, "CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT);"
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<500)"
            "INSERT INTO t(y) SELECT hex(randomblob(200)) FROM c");
    /* the caller's own transaction, small (in the cache) */
    EXEC(a, "BEGIN; INSERT INTO t(y) VALUES ('mine')");
    SNAP_OK(a, "main", "snapshot", "own");
    EXEC(a, "COMMIT");
    /* ... and big enough to spill (rollback mode writes the database file) */
    EXEC(a, "PRAGMA cache_size=10");
    EXEC(a, "BEGIN; UPDATE t SET y = hex(randomblob(200));"
            "INSERT INTO t(y) SELECT y FROM t");
    SNAP_OK(a, "main", "snapshot", "spilled");
    SNAP_OK(a, "main", "branch", "spilled-branch");
    EXEC(a, "ROLLBACK");
    /* another connection's transaction in progress, spilled (it holds
     * EXCLUSIVE in rollback mode: no wait, SQLite rolls it back inside the
     * snapshot) */
    EXEC(b, "PRAGMA cache_size=10");
    EXEC(b, "BEGIN; UPDATE t SET y = 'spilled by b'; INSERT INTO t(y) SELECT y FROM t");
    SNAP_OK(a, "main", "snapshot", "other-spilled");
    EXEC(b, "COMMIT");
    snap_attach(a, path, "snapshot=other-spilled", "osp");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM osp.t"), 501);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM osp.t WHERE y = 'spilled by b'"), 0);
    ck_assert_text((a, "PRAGMA osp.integrity_check"), "ok");
    EXEC(a, "DETACH osp");
    EXEC(b, "DELETE FROM t WHERE x > 501");
    /* another connection's transaction in progress */
    EXEC(b, "BEGIN IMMEDIATE; DELETE FROM t WHERE x > 100");
    SNAP_OK(a, "main", "snapshot", "other");
    EXEC(b, "COMMIT");

    snap_attach(a, path, "snapshot=own", "own");
    snap_attach(a, path, "snapshot=spilled", "sp");
    snap_attach(a, path, "branch=spilled-branch", "spb");
    snap_attach(a, path, "snapshot=other", "oth");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM own.t"), 500);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM sp.t"), 501);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM sp.t WHERE y = 'mine'"), 1);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM spb.t"), 501);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM oth.t"), 501);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 100);
    ck_assert_text((a, "PRAGMA sp.integrity_check"), "ok");
    ck_assert_text((a, "PRAGMA spb.integrity_check"), "ok");
    ck_assert_text((a, "PRAGMA oth.integrity_check"), "ok");
    EXEC(a, "INSERT INTO spb.t(y) VALUES ('writable')");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * Restore: refused while any connection is inside a transaction; after it,
 * every connection (with pages cached) sees the snapshot's content; in WAL
 * mode also when both WALs are empty (checkpointed and truncated).
 */
static const char *const restore_modes[] = {"delete", "wal", "wal-empty"};

START_TEST(test_snapshot_restore)
{
    const char *mode = strncmp(restore_modes[_i], "wal", 3) == 0 ? "wal" : "delete";
    int bEmpty = strcmp(restore_modes[_i], "wal-empty") == 0;
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char out[512];
    sqlite3 *a = snap_conn(path, mode);
    sqlite3 *b = snap_conn(path, mode);

    EXEC(a, "CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT);"
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300)"
            "INSERT INTO t(y) SELECT 'v1' FROM c");
    if (bEmpty)
        EXEC(a, "PRAGMA wal_checkpoint(TRUNCATE)");
    SNAP_OK(a, "main", "snapshot", "v1");
    EXEC(a, "UPDATE t SET y = 'v2'");
    if (bEmpty)
        EXEC(a, "PRAGMA wal_checkpoint(TRUNCATE)");
    /* b caches the v2 pages */
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t WHERE y = 'v2'"), 300);

    /* refused while b is in a transaction, and while a is */
    EXEC(b, "BEGIN; SELECT count(*) FROM t");
    ck_assert_int_eq(snap_pragma(a, "main", "restore", "v1", out), SQLITE_BUSY);
    EXEC(b, "COMMIT");
    EXEC(a, "BEGIN IMMEDIATE");
    ck_assert_int_eq(snap_pragma(b, "main", "restore", "v1", out), SQLITE_BUSY);
    EXEC(a, "COMMIT");
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t WHERE y = 'v2'"), 300);
    ck_assert_int_eq(snap_pragma(a, "main", "restore", "nope", out), SQLITE_ERROR);

    SNAP_OK(a, "main", "restore", "v1");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t WHERE y = 'v1'"), 300);
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM t WHERE y = 'v1'"), 300);
    ck_assert_text((b, "PRAGMA integrity_check"), "ok");
    /* and diverges again, the snapshot unchanged */
    EXEC(b, "INSERT INTO t(y) VALUES ('v3')");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 301);
    snap_attach(a, path, "snapshot=v1", "s");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM s.t"), 300);
    /* a snapshot cannot be restored */
    ck_assert_int_eq(snap_pragma(a, "s", "restore", "v1", out), SQLITE_ERROR);
    EXEC(a, "DETACH s");
    /* a branch can */
    SNAP_OK(a, "main", "branch", "br");
    snap_attach(a, path, "branch=br", "br");
    EXEC(a, "DELETE FROM br.t");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM br.t"), 0);
    SNAP_OK(a, "br", "restore", "v1");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM br.t"), 300);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 301);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(b), SQLITE_OK);
    a = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 301);
    ck_assert_text((a, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

struct snap_names {
    int n;
    char names[8][64];
    long long excl[8], shared[8];
};

static int snap_list_cb(void *arg, const cowvfs_subvol_info *si)
{
    struct snap_names *sn = arg;
    if (sn->n < 8) {
        snprintf(sn->names[sn->n], 64, "%s:%s:%s", si->zName,
                 si->eKind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                 si->zSource ? si->zSource : "-");
        sn->excl[sn->n] = si->nExclusive;
        sn->shared[sn->n] = si->nShared;
    }
    sn->n++;
    return 0;
}

/* The C API, on a connection and by container path. */
START_TEST(test_snapshot_c_api)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *err = NULL;
    struct snap_names sn;
    sqlite3 *a = snap_conn(path, "wal");

    EXEC(a, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)");
    ck_assert_int_eq(cowvfs_snapshot(a, NULL, "c1", &err), SQLITE_OK);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(cowvfs_snapshot(a, "main", "c1", &err), SQLITE_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "c1"));
    sqlite3_free(err);
    ck_assert_int_eq(cowvfs_snapshot(a, "temp", "c2", &err), SQLITE_ERROR);
    sqlite3_free(err);
    ck_assert_int_eq(cowvfs_snapshot(a, "nosuch", "c2", NULL), SQLITE_ERROR);
    ck_assert_int_eq(cowvfs_branch(a, "main", "c2", NULL), SQLITE_OK);
    EXEC(a, "INSERT INTO t VALUES (3)");
    memset(&sn, 0, sizeof sn);
    ck_assert_int_eq(cowvfs_list(a, "main", snap_list_cb, &sn, NULL), SQLITE_OK);
    ck_assert_int_eq(sn.n, 2);
    ck_assert_str_eq(sn.names[0], "c1:snapshot:-");
    ck_assert_str_eq(sn.names[1], "c2:branch:-");
    ck_assert_int_eq(cowvfs_restore(a, "main", "c1", NULL), SQLITE_OK);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 2);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);

    /* offline, by path */
    ck_assert_int_eq(cowvfs_container_snapshot(path, NULL, "p1", NULL), SQLITE_OK);
    ck_assert_int_eq(cowvfs_container_branch(path, "p1", "p2", NULL), SQLITE_OK);
    ck_assert_int_eq(cowvfs_container_branch(path, "nope", "p3", &err), SQLITE_ERROR);
    sqlite3_free(err);
    ck_assert_int_eq(cowvfs_container_delete(path, "c1", NULL), SQLITE_OK);
    memset(&sn, 0, sizeof sn);
    ck_assert_int_eq(cowvfs_container_list(path, snap_list_cb, &sn, NULL), SQLITE_OK);
    ck_assert_int_eq(sn.n, 3);
    ck_assert_str_eq(sn.names[0], "c2:branch:-");
    ck_assert_str_eq(sn.names[1], "p1:snapshot:-");
    ck_assert_str_eq(sn.names[2], "p2:branch:p1");
    a = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    EXEC(a, "INSERT INTO t VALUES (4)");
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    ck_assert_int_eq(cowvfs_container_restore(path, NULL, "p1", NULL), SQLITE_OK);
    ck_assert_int_eq(cowvfs_container_restore(path, "p1", "p2", &err), SQLITE_ERROR);
    sqlite3_free(err);
    a = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM t"), 2);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    char *missing = tpath(dir, "missing.db");
    ck_assert_int_ne(cowvfs_container_snapshot(missing, NULL, "x", &err), SQLITE_OK);
    sqlite3_free(err);
    free(missing);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Snapshots while writers commit: shared state of the threads. */
struct snap_conc {
    const char *path;
    const char *mode;
    uint64_t seed;     /* test_seed(), read before the threads start */
    int stop;          /* atomic: the writers stop */
    int commits;       /* atomic: transactions committed */
    char fail[256];    /* the first failure, under mu */
    pthread_mutex_t mu;
};

static void snap_conc_fail(struct snap_conc *c, const char *what, sqlite3 *db)
{
    pthread_mutex_lock(&c->mu);
    if (!c->fail[0])
        snprintf(c->fail, sizeof c->fail, "%s: %s", what, db ? sqlite3_errmsg(db) : "");
    pthread_mutex_unlock(&c->mu);
    __atomic_store_n(&c->stop, 1, __ATOMIC_SEQ_CST);
}

/* Moves random amounts between accounts (the total never changes); every
 * fourth transaction also rewrites every row, with a cache small enough to
 * spill in rollback mode. */
static void *snap_conc_writer(void *arg)
{
    struct snap_conc *c = arg;
    sqlite3 *db = NULL;
    uint64_t rs = c->seed ^ (uintptr_t)&db;
    char sql[300];

    if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK) {
        snap_conc_fail(c, "writer open", db);
        goto out;
    }
    sqlite3_busy_timeout(db, 20000);
    sqlite3_exec(db, "PRAGMA cache_size=8", NULL, NULL, NULL);
    for (int i = 0; !__atomic_load_n(&c->stop, __ATOMIC_SEQ_CST); i++) {
        int a = (int)(test_rand(&rs) % 200) + 1, b = (int)(test_rand(&rs) % 200) + 1;
        int amt = (int)(test_rand(&rs) % 50);
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE;"
                 "UPDATE acct SET bal = bal - %d, pad = hex(randomblob(100)) WHERE id = %d;"
                 "UPDATE acct SET bal = bal + %d WHERE id = %d;"
                 "%s"
                 "COMMIT",
                 amt, a, amt, b,
                 i % 4 == 0 ? "UPDATE acct SET pad = hex(randomblob(300));" : "");
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            snap_conc_fail(c, "writer", db);
            break;
        }
        __atomic_add_fetch(&c->commits, 1, __ATOMIC_SEQ_CST);
    }
out:
    sqlite3_close(db);
    return NULL;
}

/*
 * Snapshots and branches taken while two writer threads commit
 * continuously (and spill): every snapshot shows a state some commit
 * produced, so the invariant all transactions keep (the total of the
 * balances) holds in each, and each passes integrity_check.
 */
START_TEST(test_snapshot_concurrent_writers)
{
    struct snap_conc c;
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    pthread_t w[2];
    sqlite3 *db = snap_conn(path, snap_modes[_i]);
    char name[32], *err = NULL;

    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    c.path = path;
    c.mode = snap_modes[_i];
    c.seed = test_seed();
    EXEC(db, "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER, pad TEXT);"
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<200)"
             "INSERT INTO acct SELECT i, 1000, hex(randomblob(300)) FROM n");
    sqlite3_busy_timeout(db, 20000);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&w[i], NULL, snap_conc_writer, &c), 0);
    int taken = 0;
    for (int i = 0; i < 40 && !__atomic_load_n(&c.stop, __ATOMIC_SEQ_CST); i++) {
        /* let some commits happen between snapshots */
        int at = __atomic_load_n(&c.commits, __ATOMIC_SEQ_CST);
        for (int spin = 0; spin < 2000 && __atomic_load_n(&c.commits, __ATOMIC_SEQ_CST) < at + 3;
             spin++)
            usleep(1000);
        snprintf(name, sizeof name, "%s%d", i % 3 == 2 ? "b" : "s", i);
        int rc = i % 3 == 2 ? cowvfs_branch(db, "main", name, &err)
                            : cowvfs_snapshot(db, "main", name, &err);
        ck_assert_msg(rc == SQLITE_OK, "%s: %d %s", name, rc, err ? err : "");
        taken++;
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    ck_assert_msg(!c.fail[0], "%s", c.fail);
    fprintf(stderr, "snapshot_threads %s: %d snapshots and branches, %d commits\n", c.mode, taken, c.commits);
    ck_assert_int_ge(c.commits, taken);
    for (int i = 0; i < taken; i++) {
        snprintf(name, sizeof name, "%s%d", i % 3 == 2 ? "b" : "s", i);
        snap_attach(db, path, i % 3 == 2 ? (snprintf(c.fail, sizeof c.fail, "branch=%s", name),
                                            c.fail)
                                         : (snprintf(c.fail, sizeof c.fail, "snapshot=%s", name),
                                            c.fail),
                    "x");
        c.fail[0] = 0;
        ck_assert_int_eq(query_int(db, "SELECT sum(bal) FROM x.acct"), 200000);
        ck_assert_int_eq(query_int(db, "SELECT count(*) FROM x.acct"), 200);
        ck_assert_text((db, "PRAGMA x.integrity_check"), "ok");
        EXEC(db, "DETACH x");
    }
    ck_assert_int_eq(query_int(db, "SELECT sum(bal) FROM acct"), 200000);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    pthread_mutex_destroy(&c.mu);
    free(path);
    tdir_remove(dir);
}
END_TEST

Suite *vfs_suite(void)
{
    Suite *s = suite_create("vfs");
    TCase *tc;

    tc = tcase_create("snapshot");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_snapshot_basic, 0, 2);
    tcase_add_loop_test(tc, test_snapshot_in_transaction, 0, 2);
    tcase_add_loop_test(tc, test_snapshot_restore, 0, 3);
    tcase_add_test(tc, test_snapshot_c_api);
    suite_add_tcase(s, tc);

    tc = tcase_create("snapshot_threads");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_snapshot_concurrent_writers, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("io");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_io_methods);
    tcase_add_test(tc, test_vfs_methods);
    tcase_add_test(tc, test_ext_entry);
    tcase_add_test(tc, test_shm);
    suite_add_tcase(s, tc);

    tc = tcase_create("locking");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_lock_states);
    tcase_add_test(tc, test_lock_connections);
    suite_add_tcase(s, tc);

    tc = tcase_create("wal_threads");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_wal_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("journal_modes");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_journal_modes, 0,
                        (int)(sizeof journal_modes / sizeof journal_modes[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_files");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bad_files, 0, BAD_N);
    tcase_add_test(tc, test_bad_data_block);
    tcase_add_loop_test(tc, test_disk_full, 0, 2);
    tcase_add_test(tc, test_create);
    tcase_add_test(tc, test_readonly);
    suite_add_tcase(s, tc);

    tc = tcase_create("fcntl");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_file_controls);
    tcase_add_test(tc, test_size_hint_preallocates);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_temp_files);
    tcase_add_test(tc, test_attach_super_journal);
    tcase_add_test(tc, test_other_process);
    tcase_add_test(tc, test_registry_and_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("crash_and_threads");
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crash_hot_journal);
    tcase_add_test(tc, test_crash_wal);
    tcase_add_test(tc, test_crash_super_journal);
    tcase_add_test(tc, test_wal_log_replay);
    tcase_add_loop_test(tc, test_app_crash_durable, 0,
                        3 * (int)(sizeof journal_modes / sizeof journal_modes[0]));
    tcase_add_test(tc, test_registry_threads);
    suite_add_tcase(s, tc);

    return s;
}
