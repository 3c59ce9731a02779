/*
 * vfsutil.h - helpers shared by the suites that test the "cow" SQLite VFS
 * (check_vfs_*.c): a directory per test, checked by fsck when removed;
 * opening and querying databases; reading and writing whole files; the cow
 * VFS's methods called directly.  Each helper fails the test (ck_assert)
 * when what it does fails, unless it says it returns an error.
 *
 * Every test works in its own temporary directory under the test case's
 * base directory and removes it.  Tests that can only pass if the VFS keeps
 * every file inside the container list that directory and expect the
 * container alone.
 */
#ifndef COW_VFSUTIL_H
#define COW_VFSUTIL_H

#include "testutil.h" /* <check.h>, with its cheap ck_assert_msg */
#include <sqlite3.h>
#include <stddef.h>
#include <string.h>

#define RW_CREATE (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)

struct cow_store;

/*
 * Where a test runs (the target): a VFS and the way its containers are
 * named, checked and removed.  The tests of check_vfs_io.c,
 * check_vfs_journal.c, check_vfs_snap.c and check_vfs_files.c that are
 * about SQLite through the VFS (not about the local file) use the current
 * target, vt: the cow VFS on container files (cow_target) in
 * build/check_all, the cow-rados VFS on containers in a RADOS pool in
 * build/check_rados (check_rados_vfs.c sets vt in its fixture).  The same
 * test bodies run on both; what only a file has (directory listings, a
 * super-journal beside the container) is checked where vt->local says
 * there is one.
 */
struct vfs_target {
    const char *vfs; /* the VFS name, registered by the test case's fixture */
    int local;       /* 1: containers are files in the test's directory */
    /* Container NAME of the test whose directory (tdir_make()) is DIR:
     * "DIR/NAME" for cow, "POOL/NAME-..." for cow-rados; malloc()ed. */
    char *(*path)(const char *dir, const char *name);
    /* cow_store_open() of container PATH with FLAGS (COW_OPEN_*). */
    int (*store_open)(const char *path, int flags, struct cow_store **out);
    /* Fails the test (Check) unless container PATH, which no connection
     * has open, passes fsck with data checksums. */
    void (*fsck_clean)(const char *path);
    /* 1 if container PATH exists. */
    int (*exists)(const char *path);
    /* Removes container PATH (it exists, and nothing has it open). */
    void (*remove)(const char *path);
    /* A process that had container PATH open was killed (SIGKILL): returns
     * once this process can open it for writing (NULL: at once, as for a
     * file, whose locks die with their process). */
    void (*after_kill)(const char *path);
    /* Iteration counts of the long tests, in percent of the cow ones. */
    int scale;
};
/* The cow VFS on container files (vfs_setup's). */
extern const struct vfs_target cow_target;
/* The current target: cow_target unless a fixture set another. */
extern const struct vfs_target *vt;
/* Container NAME of the test whose directory is DIR on the current target
 * (vt->path), malloc()ed; tdir_remove() checks and removes it. */
char *cpath(const char *dir, const char *name);
/* N iterations scaled to the current target (vt->scale), at least 1. */
int vt_scaled(int n);

/* The suites of check_vfs_lock.c and check_mproc.c (several processes). */
Suite *vfs_lock_suite(void);
Suite *mproc_suite(void);

/* The tests of each of these suites that hold on any target (see struct
 * vfs_target above), added to TC, for a runner of another target
 * (check_rados_vfs.c); the cow suites hold them too, as they always did. */
void vfs_io_any_target(TCase *tc);
void vfs_journal_any_target(TCase *tc);
void vfs_snap_any_target(TCase *tc);
void vfs_files_any_target(TCase *tc);

/* Checked fixture: registers the cow VFS (cowvfs_register). */
void vfs_setup(void);
/* Adds to suite S a test case NAME with a base directory per case
 * (test_base_setup, unchecked), vfs_setup as its checked fixture, TIMEOUT
 * seconds, and the tests that follow, up to a NULL (as test_case). */
TCase *vfs_tcase(Suite *s, const char *name, int timeout, ...);
/* A fresh directory for one test, in the test case's base directory
 * (test_base_setup); the caller removes it with tdir_remove(). */
char *tdir_make(void);
/* Removes DIR and the files in it (the tests make no subdirectories) and
 * frees DIR.  With CHECK (tdir_remove always), every container in it must
 * first pass fsck: every test that writes a container checks it at the end.
 * On a target that is not local, the containers cpath() named since
 * tdir_make() are checked and removed the same way. */
void tdir_remove_fsck(char *dir, int check);
void tdir_remove(char *dir);
/* "DIR/NAME", malloc()ed. */
char *tpath(const char *dir, const char *name);
/* The names in DIR, sorted, separated by one space, into OUT (N bytes). */
void dir_list(const char *dir, char *out, size_t n);
/* The names of the store files in container PATH of the current target
 * (not open in this process), sorted, separated by one space. */
void store_names(const char *path, char out[1024]);
/* Opens PATH with FLAGS through VFS (NULL: the default); busy timeout 0. */
sqlite3 *db_open(const char *path, int flags, const char *vfs);
/* Runs SQL; returns its result code (the extended one). */
int exec_rc(sqlite3 *db, const char *sql);
/* The first column of the first row of SQL as an integer (-1 if no row). */
sqlite3_int64 query_int(sqlite3 *db, const char *sql);
/* The first column of the first row of SQL as text (malloc()ed), or NULL. */
char *query_text(sqlite3 *db, const char *sql);
/* The whole file PATH, malloc()ed (one byte more than *N); *N its length. */
void *read_whole(const char *path, size_t *n);
/* Writes N bytes at BUF to PATH, replacing what it held. */
void write_whole(const char *path, const void *buf, size_t n);
/* The cow VFS (registered by vfs_setup). */
sqlite3_vfs *cow_vfs(void);
/* The current target's VFS (vt->vfs). */
sqlite3_vfs *target_vfs(void);
/* Makes *OUT a copy of the registered VFS BASE named NAME, not registered
 * (the caller sets the methods it changes, then sqlite3_vfs_register()s
 * it).  Returns BASE's VFS; fails the test if BASE is not registered. */
sqlite3_vfs *vfs_derive(sqlite3_vfs *out, const char *base, const char *name);
/* The full path SQLite would use for PATH (the target VFS's), calloc()ed. */
char *full_path(const char *path);
/*
 * ZNAME as SQLite hands names to a VFS: with four zero bytes before it and
 * an empty parameter list after it (sqlite3_create_filename()'s layout), so
 * that sqlite3_uri_parameter() may be used on it, as xOpen, xAccess and
 * xDelete of the cow VFS do (snapshot=, branch=).  From a ring of buffers
 * (valid until 8 more calls); NULL for NULL.
 */
const char *vfs_name(const char *zName);
/* Opens ZNAME through the target VFS's xOpen directly; the sqlite3_file
 * is malloc()ed.  NULL with *pRc the error if xOpen fails. */
sqlite3_file *raw_open(const char *zName, int flags, int *pRc);
/* raw_open(), failing the test unless it succeeds. */
sqlite3_file *raw_open_ok(const char *zName, int flags);
/* xClose (must succeed) and frees F. */
void raw_close(sqlite3_file *f);
/* The target VFS's xAccess(SQLITE_ACCESS_EXISTS) of ZNAME. */
int raw_access(const char *zName);
/* A database with NROWS rows in table t, made through VFS. */
void make_db(const char *path, const char *vfs, int nrows);
/* Counter NAME of PRAGMA cow_stats on DB's main database (-1 if absent). */
long long cow_stat(sqlite3 *db, const char *name);

/*
 * The spy VFS "cowspy": spy_vfs_register() makes spy_vfs, the target's VFS
 * (vt->vfs) with xOpen spy_open and xDelete spy_delete, and registers it (a test
 * unregisters it when done: sqlite3_vfs_unregister(&spy_vfs)).  spy_open counts
 * super-journal opens (spy_super_opens; spy_super_name the last one's
 * name); spy_delete counts super-journal ("-mj") deletes
 * (spy_super_deletes), or with spy_die_on_super_delete kills the process
 * (SIGKILL) at the first one.  Both forward to the target's VFS.
 */
extern sqlite3_vfs spy_vfs;
extern int spy_super_opens, spy_super_deletes, spy_die_on_super_delete;
extern char spy_super_name[1024];
int spy_open(sqlite3_vfs *v, const char *z, sqlite3_file *f, int flags, int *out);
int spy_delete(sqlite3_vfs *v, const char *z, int sync);
void spy_vfs_register(void);

/* Asserts that directory DIR holds EXPECT (dir_list()); on a target that
 * is not local (vt->local 0) the containers are elsewhere and it checks
 * nothing. */
#define ck_assert_dir(dir, expect)                                                      \
    do {                                                                                \
        char list_[1024];                                                               \
        if (!vt->local)                                                                 \
            break;                                                                      \
        dir_list((dir), list_, sizeof list_);                                           \
        ck_assert_msg(strcmp(list_, (expect)) == 0, "directory holds \"%s\", not \"%s\"", \
                      list_, (expect));                                                 \
    } while (0)

#define ck_assert_store(path, expect)                                                   \
    do {                                                                                \
        char names_[1024];                                                              \
        store_names((path), names_);                                                    \
        ck_assert_msg(strcmp(names_, (expect)) == 0, "%s holds \"%s\", not \"%s\"",     \
                      (path), names_, (expect));                                        \
    } while (0)

#define EXEC(db, sql)                                                                    \
    do {                                                                                 \
        char *err_ = NULL;                                                               \
        int rc_ = sqlite3_exec((db), (sql), NULL, NULL, &err_);                          \
        ck_assert_msg(rc_ == SQLITE_OK, "%s: %d %s", (sql), rc_, err_ ? err_ : "");      \
        sqlite3_free(err_);                                                              \
    } while (0)

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

#endif
