/*
 * vfsutil.c - helpers of the vfs_* suites (see vfsutil.h).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
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

static char *file_path(const char *dir, const char *name)
{
    return tpath(dir, name);
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void file_remove(const char *path)
{
    ck_assert_int_eq(unlink(path), 0);
}

const struct vfs_target cow_target = {
    .vfs = COWVFS_NAME,
    .local = 1,
    .path = file_path,
    .store_open = cow_store_open,
    .fsck_clean = test_fsck_clean,
    .exists = file_exists,
    .remove = file_remove,
    .after_kill = NULL,
    .scale = 100,
};

const struct vfs_target *vt = &cow_target;

/* The containers cpath() named on a target that is not local, since the
 * last tdir_make(), for tdir_remove (a test runs in a process of its own). */
#define MAX_CPATHS 16
static char *cpaths[MAX_CPATHS];
static int ncpaths;

char *cpath(const char *dir, const char *name)
{
    char *p = vt->path(dir, name);
    ck_assert_ptr_nonnull(p);
    if (!vt->local) {
        for (int i = 0; i < ncpaths; i++)
            if (strcmp(cpaths[i], p) == 0)
                return p;
        ck_assert_int_lt(ncpaths, MAX_CPATHS);
        cpaths[ncpaths++] = strdup(p);
    }
    return p;
}

int vt_scaled(int n)
{
    int m = (int)((long long)n * vt->scale / 100);
    return m > 0 ? m : 1;
}

void vfs_setup(void)
{
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
}

TCase *vfs_tcase(Suite *s, const char *name, int timeout, ...)
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    tcase_set_timeout(tc, timeout);
    va_list ap;
    va_start(ap, timeout);
    test_case_addv(tc, ap);
    va_end(ap);
    suite_add_tcase(s, tc);
    return tc;
}

/* Each test makes its own directory in the test case's base directory
 * (test_base_setup) and removes it when it passes. */
char *tdir_make(void)
{
    for (int i = 0; i < ncpaths; i++)
        free(cpaths[i]);
    ncpaths = 0;
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
void tdir_remove_fsck(char *dir, int check)
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
    for (int i = 0; i < ncpaths; i++) {
        if (vt->exists(cpaths[i])) {
            if (check)
                vt->fsck_clean(cpaths[i]);
            vt->remove(cpaths[i]);
        }
        free(cpaths[i]);
    }
    ncpaths = 0;
}

void tdir_remove(char *dir)
{
    tdir_remove_fsck(dir, 1);
}

char *tpath(const char *dir, const char *name)
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
void dir_list(const char *dir, char *out, size_t n)
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

void store_names(const char *path, char out[1024])
{
    cow_store *st = NULL;
    char *names[64], *tok, *save = NULL, tmp[1024];
    int k = 0;

    out[0] = 0;
    ck_assert_int_eq(vt->store_open(path, COW_OPEN_READONLY, &st), COW_OK);
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

sqlite3 *db_open(const char *path, int flags, const char *vfs)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, vfs);
    ck_assert_msg(rc == SQLITE_OK, "open %s via %s: %d %s", path, vfs ? vfs : "default", rc,
                  db ? sqlite3_errmsg(db) : "");
    sqlite3_busy_timeout(db, 0);
    return db;
}

/* Runs SQL; returns its result code (the extended one). */
int exec_rc(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db);
}

/* The first column of the first row of SQL as an integer (-1 if no row). */
sqlite3_int64 query_int(sqlite3 *db, const char *sql)
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
char *query_text(sqlite3 *db, const char *sql)
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

void *read_whole(const char *path, size_t *n)
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

void write_whole(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(buf, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

sqlite3_vfs *cow_vfs(void)
{
    sqlite3_vfs *v = sqlite3_vfs_find(COWVFS_NAME);
    ck_assert_ptr_nonnull(v);
    return v;
}

sqlite3_vfs *target_vfs(void)
{
    sqlite3_vfs *v = sqlite3_vfs_find(vt->vfs);
    ck_assert_ptr_nonnull(v);
    return v;
}

sqlite3_vfs *vfs_derive(sqlite3_vfs *out, const char *base, const char *name)
{
    sqlite3_vfs *b = sqlite3_vfs_find(base);
    ck_assert_ptr_nonnull(b);
    *out = *b;
    out->zName = name;
    out->pNext = NULL;
    return b;
}

/* The full path SQLite would use for PATH. */
char *full_path(const char *path)
{
    sqlite3_vfs *v = target_vfs();
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
const char *vfs_name(const char *zName)
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

/* Opens ZNAME through the target VFS directly; the sqlite3_file is
 * malloc()ed. */
sqlite3_file *raw_open(const char *zName, int flags, int *pRc)
{
    sqlite3_vfs *v = target_vfs();
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

sqlite3_file *raw_open_ok(const char *zName, int flags)
{
    int rc;
    sqlite3_file *f = raw_open(zName, flags, &rc);
    ck_assert_msg(rc == SQLITE_OK, "xOpen %s flags %#x: %d", zName, flags, rc);
    return f;
}

void raw_close(sqlite3_file *f)
{
    ck_assert_int_eq(f->pMethods->xClose(f), SQLITE_OK);
    free(f);
}

int raw_access(const char *zName)
{
    sqlite3_vfs *v = target_vfs();
    int res = -1;
    ck_assert_int_eq(v->xAccess(v, vfs_name(zName), SQLITE_ACCESS_EXISTS, &res), SQLITE_OK);
    return res;
}

/* A database with some rows, made through VFS. */
void make_db(const char *path, const char *vfs, int nrows)
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

/* Reads counter NAME from PRAGMA cow_stats. */
long long cow_stat(sqlite3 *db, const char *name)
{
    char *t = query_text(db, "PRAGMA cow_stats"), key[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = t ? strstr(t, key) : NULL;
    long long v = p ? atoll(p + strlen(key)) : -1;
    free(t);
    return v;
}

/* A VFS that forwards to the target's and counts super-journal opens and
 * deletes. */
sqlite3_vfs spy_vfs;
int spy_super_opens, spy_super_deletes;
char spy_super_name[1024];

int spy_open(sqlite3_vfs *v, const char *z, sqlite3_file *f, int flags, int *out)
{
    (void)v;
    if (flags & SQLITE_OPEN_SUPER_JOURNAL) {
        spy_super_opens++;
        snprintf(spy_super_name, sizeof spy_super_name, "%s", z);
    }
    return target_vfs()->xOpen(target_vfs(), z, f, flags, out);
}

int spy_die_on_super_delete;

int spy_delete(sqlite3_vfs *v, const char *z, int sync)
{
    (void)v;
    if (strstr(z, "-mj") && spy_die_on_super_delete)
        kill(getpid(), SIGKILL);
    if (strstr(z, "-mj"))
        spy_super_deletes++;
    return target_vfs()->xDelete(target_vfs(), z, sync);
}

void spy_vfs_register(void)
{
    vfs_derive(&spy_vfs, vt->vfs, "cowspy");
    spy_vfs.xOpen = spy_open;
    spy_vfs.xDelete = spy_delete;
    ck_assert_int_eq(sqlite3_vfs_register(&spy_vfs, 0), SQLITE_OK);
}
