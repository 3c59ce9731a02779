/*
 * check_vfs_lock.c - the "vfs_lock" suite: SQLite's locks and the
 * WAL-index between processes (vfs/vfs_lock.c, vfs/vfs_shm.c), with the
 * lock bytes and object names of store/lockspace.h.
 *
 * Child processes (fork) open the container through SQLite and run the
 * SQL the test sends them over a pipe; the test process itself opens
 * nothing through the VFS (a child would inherit its lock descriptor, and
 * with it its OFD locks), it probes the lock bytes through a lock
 * descriptor of its own (cowvfsLockOpen) and looks at the WAL-index object
 * in /dev/shm.  Until the store can be shared, the children that are there
 * at once open the container read-only (the store lets several read-only
 * openers in) or one of them alone read-write.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowvfs.h"
#include "lockspace.h"
#include "testutil.h"
#include "vfs_int.h"
#include "vfsutil.h"

/* The live database's lock bytes. */
#define LIVE COW_LOCK_DB(256)

/* ---------------------------------------------------------------------------
 * Child processes that run SQL on request
 */

struct child {
    pid_t pid;
    int fdCmd; /* test -> child: struct child_msg */
    int fdRes; /* child -> test: int result codes */
};

struct child_msg {
    char sql[240]; /* "" ends the child (closes its connection, exits 0) */
};

/* The child's side: opens ZURI (flags FLAGS | SQLITE_OPEN_URI, the cow
 * VFS), reports the open's result, then runs each SQL it is sent and
 * reports its extended result code. */
static void child_main(const char *zUri, int flags, int fdCmd, int fdRes)
{
    sqlite3 *db = NULL;
    struct child_msg m;
    int rc = sqlite3_open_v2(zUri, &db, flags | SQLITE_OPEN_URI, "cow");

    sqlite3_busy_timeout(db, 0);
    if (write(fdRes, &rc, sizeof rc) != (ssize_t)sizeof rc)
        _exit(3);
    while (read(fdCmd, &m, sizeof m) == (ssize_t)sizeof m && m.sql[0]) {
        rc = sqlite3_exec(db, m.sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            rc = sqlite3_extended_errcode(db);
        if (write(fdRes, &rc, sizeof rc) != (ssize_t)sizeof rc)
            _exit(3);
    }
    _exit(sqlite3_close(db) == SQLITE_OK ? 0 : 4);
}

/* Starts a child that opens ZURI with FLAGS; fails the test unless the open
 * succeeds. */
static struct child child_start(const char *zUri, int flags)
{
    int cmd[2], res[2];
    struct child c;
    int rc = -1;

    ck_assert_int_eq(pipe(cmd), 0);
    ck_assert_int_eq(pipe(res), 0);
    c.pid = fork();
    ck_assert_int_ge(c.pid, 0);
    if (c.pid == 0) {
        close(cmd[1]);
        close(res[0]);
        child_main(zUri, flags, cmd[0], res[1]);
    }
    close(cmd[0]);
    close(res[1]);
    c.fdCmd = cmd[1];
    c.fdRes = res[0];
    ck_assert_int_eq(read(c.fdRes, &rc, sizeof rc), (ssize_t)sizeof rc);
    ck_assert_msg(rc == SQLITE_OK, "child: open %s: %d", zUri, rc);
    return c;
}

/* Has C run SQL; returns its result code. */
static int child_do(struct child *c, const char *zSql)
{
    struct child_msg m;
    int rc = -1;

    memset(&m, 0, sizeof m);
    ck_assert_uint_lt(strlen(zSql), sizeof m.sql);
    strcpy(m.sql, zSql);
    ck_assert_int_eq(write(c->fdCmd, &m, sizeof m), (ssize_t)sizeof m);
    ck_assert_int_eq(read(c->fdRes, &rc, sizeof rc), (ssize_t)sizeof rc);
    return rc;
}

/* Ends C cleanly (it closes its connection); fails unless it exits 0. */
static void child_quit(struct child *c)
{
    struct child_msg m;
    int st = -1;

    memset(&m, 0, sizeof m);
    ck_assert_int_eq(write(c->fdCmd, &m, sizeof m), (ssize_t)sizeof m);
    ck_assert_int_eq(waitpid(c->pid, &st, 0), c->pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    close(c->fdCmd);
    close(c->fdRes);
}

/* Kills C with SIGKILL (nothing of it runs: its locks go with it). */
static void child_kill(struct child *c)
{
    int st = -1;

    ck_assert_int_eq(kill(c->pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(c->pid, &st, 0), c->pid);
    ck_assert(WIFSIGNALED(st));
    close(c->fdCmd);
    close(c->fdRes);
}

/* ---------------------------------------------------------------------------
 * Helpers
 */

/* Makes container PATH holding table t(x) with N rows, in journal mode
 * ZMODE, and closes it. */
static void make_container(const char *path, const char *zMode, int n)
{
    char sql[200];
    sqlite3 *db = db_open(path, RW_CREATE, "cow");

    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", zMode);
    ck_assert_int_eq(exec_rc(db, sql), SQLITE_OK);
    ck_assert_int_eq(exec_rc(db, "CREATE TABLE t(x)"), SQLITE_OK);
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<%d) "
             "INSERT INTO t SELECT i FROM n",
             n);
    ck_assert_int_eq(exec_rc(db, sql), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* "file:PATH?QUERY", malloc()ed. */
static char *uri(const char *path, const char *zQuery)
{
    size_t n = strlen(path) + strlen(zQuery) + 8;
    char *z = malloc(n);
    snprintf(z, n, "file:%s?%s", path, zQuery);
    return z;
}

/* The lock type another description holds on N bytes at OFF of FD's file. */
static int holder(int fd, uint64_t off, int n)
{
    int eType = -1;
    ck_assert_int_eq(cowvfsLockHolder(fd, off, n, &eType, SQLITE_IOERR_LOCK), SQLITE_OK);
    return eType;
}

/* /dev/shm path of the WAL-index object of database ID of container PATH,
 * derived from lockspace.h's rule (not from the VFS's code). */
static void shm_path(const char *path, uint64_t id, char *out, size_t n)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    snprintf(out, n, "/dev/shm%s%llx-%llx-%llx", COW_SHM_PREFIX, (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino, (unsigned long long)id);
}

/* The size of file PATH, or -1 if it does not exist. */
static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* ---------------------------------------------------------------------------
 * The lock functions across processes
 */

/*
 * A child holds RESERVED through SQLite (BEGIN IMMEDIATE): another
 * description's write lock on the byte is SQLITE_BUSY and F_OFD_GETLK sees
 * it; after kill -9 of the child the lock is free.  Then a child left at
 * PENDING (its commit waits for a reader: the test's read lock on SHARED):
 * a new reader's read lock on PENDING is SQLITE_BUSY, free after kill -9.
 */
START_TEST(test_lock_fork_reserved_pending)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *u = uri(path, "");
    int fd = -1;

    make_container(path, "delete", 10);
    ck_assert_int_eq(cowvfsLockOpen(path, &fd), SQLITE_OK);

    struct child c = child_start(u, SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_RESERVED, 1), F_UNLCK);
    ck_assert_int_eq(child_do(&c, "BEGIN IMMEDIATE"), SQLITE_OK);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_RESERVED, 1), F_WRLCK);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_SHARED, 1), F_RDLCK);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_RESERVED, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_BUSY);
    /* a reader may still come in (RESERVED lets readers in) */
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_SHARED, 1, F_RDLCK, SQLITE_IOERR_LOCK),
                     SQLITE_OK);
    /* the child's commit needs EXCLUSIVE: PENDING taken, SHARED refused */
    ck_assert_int_eq(child_do(&c, "INSERT INTO t VALUES (100)"), SQLITE_OK);
    ck_assert_int_eq(child_do(&c, "COMMIT"), SQLITE_BUSY);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_PENDING, 1), F_WRLCK);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_PENDING, 1, F_RDLCK, SQLITE_IOERR_LOCK),
                     SQLITE_BUSY);
    /* the reader leaves: the commit goes through */
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_SHARED, 1, F_UNLCK, SQLITE_IOERR_UNLOCK),
                     SQLITE_OK);
    ck_assert_int_eq(child_do(&c, "COMMIT"), SQLITE_OK);
    ck_assert_int_eq(holder(fd, LIVE, 3), F_UNLCK);

    /* kill -9 at RESERVED, and at PENDING */
    ck_assert_int_eq(child_do(&c, "BEGIN IMMEDIATE"), SQLITE_OK);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_RESERVED, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_BUSY);
    child_kill(&c);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_RESERVED, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_OK);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_RESERVED, 1, F_UNLCK, SQLITE_IOERR_UNLOCK),
                     SQLITE_OK);

    c = child_start(u, SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_SHARED, 1, F_RDLCK, SQLITE_IOERR_LOCK),
                     SQLITE_OK);
    ck_assert_int_eq(child_do(&c, "BEGIN IMMEDIATE"), SQLITE_OK);
    ck_assert_int_eq(child_do(&c, "INSERT INTO t VALUES (101)"), SQLITE_OK);
    ck_assert_int_eq(child_do(&c, "COMMIT"), SQLITE_BUSY);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_PENDING, 1, F_RDLCK, SQLITE_IOERR_LOCK),
                     SQLITE_BUSY);
    child_kill(&c);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_PENDING, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_OK);
    cowvfsLockClose(fd);

    /* the killed transaction is rolled back (its hot journal), 100 stays */
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 11);
    ck_assert_int_eq(query_int(db, "SELECT max(x) FROM t"), 100);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    free(u);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * The WAL write lock (slot 0) held by a child in a write transaction is
 * seen from another description (write lock SQLITE_BUSY), and freed by
 * kill -9; the transaction is lost, the committed rows stay.
 */
START_TEST(test_lock_fork_wal_write)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *u = uri(path, "");
    char zShm[512];
    int fd = -1;

    make_container(path, "wal", 10);
    shm_path(path, 256, zShm, sizeof zShm);
    ck_assert_int_eq(cowvfsLockOpen(path, &fd), SQLITE_OK);
    struct child c = child_start(u, SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(child_do(&c, "BEGIN; INSERT INTO t VALUES (100)"), SQLITE_OK);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_WAL + 0, 1), F_WRLCK);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_WAL + 0, 1, F_WRLCK, SQLITE_IOERR_SHMLOCK),
                     SQLITE_BUSY);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_WAL_DMS, 1), F_RDLCK);
    ck_assert_int_ge(file_size(zShm), 32768);
    child_kill(&c);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_WAL + 0, 1, F_WRLCK, SQLITE_IOERR_SHMLOCK),
                     SQLITE_OK);
    ck_assert_int_eq(holder(fd, LIVE, COW_LOCK_DB_SPAN), F_UNLCK);
    cowvfsLockClose(fd);
    /* the dead process left its WAL-index behind; the next opener resets
     * it and, closing last, removes it */
    ck_assert_int_ge(file_size(zShm), 32768);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 10);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_int_eq(file_size(zShm), -1);
    free(u);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Two read-only processes
 */

/*
 * Rollback mode: two processes that open the container read-only hold
 * SHARED together (both read locks are there); a writer of a third
 * description that holds PENDING keeps a new reader out (SQLITE_BUSY) but
 * not the one already in; EXCLUSIVE (a write lock on SHARED) is refused
 * while they read.  xCheckReservedLock sees another description's RESERVED.
 */
START_TEST(test_ro_two_rollback)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *u = uri(path, "mode=ro");
    int fd = -1;

    make_container(path, "delete", 20);
    ck_assert_int_eq(cowvfsLockOpen(path, &fd), SQLITE_OK);
    struct child a = child_start(u, SQLITE_OPEN_READONLY);
    struct child b = child_start(u, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(child_do(&a, "BEGIN; SELECT count(*) FROM t"), SQLITE_OK);
    ck_assert_int_eq(child_do(&b, "BEGIN; SELECT count(*) FROM t"), SQLITE_OK);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_SHARED, 1), F_RDLCK);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_SHARED, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_BUSY);
    /* a ends its transaction: b still reads */
    ck_assert_int_eq(child_do(&a, "COMMIT"), SQLITE_OK);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_SHARED, 1), F_RDLCK);
    /* a writer (this description) announces itself: PENDING */
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_PENDING, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_OK);
    ck_assert_int_eq(child_do(&a, "SELECT count(*) FROM t"), SQLITE_BUSY);
    ck_assert_int_eq(child_do(&b, "SELECT count(*) FROM t"), SQLITE_OK); /* already in */
    ck_assert_int_eq(child_do(&b, "COMMIT"), SQLITE_OK);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_SHARED, 1), F_UNLCK);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_SHARED, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_OK); /* EXCLUSIVE */
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE, 3, F_UNLCK, SQLITE_IOERR_UNLOCK), SQLITE_OK);
    ck_assert_int_eq(child_do(&a, "SELECT count(*) FROM t"), SQLITE_OK);
    child_quit(&a);
    child_quit(&b);
    ck_assert_int_eq(holder(fd, LIVE, COW_LOCK_DB_SPAN), F_UNLCK);

    /* xCheckReservedLock sees RESERVED held by another description (no
     * child is started after this open) */
    sqlite3 *db = NULL;
    sqlite3_file *f = NULL;
    int res = -1;
    ck_assert_int_eq(sqlite3_open_v2(u, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, "cow"),
                     SQLITE_OK);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 20);
    ck_assert_int_eq(sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f), SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xCheckReservedLock(f, &res), SQLITE_OK);
    ck_assert_int_eq(res, 0);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_RESERVED, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xCheckReservedLock(f, &res), SQLITE_OK);
    ck_assert_int_eq(res, 1);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_RESERVED, 1, F_UNLCK, SQLITE_IOERR_UNLOCK),
                     SQLITE_OK);
    ck_assert_int_eq(f->pMethods->xCheckReservedLock(f, &res), SQLITE_OK);
    ck_assert_int_eq(res, 0);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    cowvfsLockClose(fd);
    free(u);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * WAL mode: two read-only processes share one WAL-index object (the first
 * mapper creates it, the second joins it: both hold the dead-man switch
 * read-locked) and hold WAL read locks at once; the object stays while
 * either has it open and is unlinked by the last one to close.  A reader
 * whose read-mark slots are all write-locked elsewhere cannot start.
 */
START_TEST(test_ro_two_wal)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *u = uri(path, "mode=ro");
    char zShm[512];
    int fd = -1;

    make_container(path, "wal", 20);
    shm_path(path, 256, zShm, sizeof zShm);
    ck_assert_int_eq(file_size(zShm), -1); /* the writer closed last: removed */
    ck_assert_int_eq(cowvfsLockOpen(path, &fd), SQLITE_OK);
    struct child a = child_start(u, SQLITE_OPEN_READONLY);
    struct child b = child_start(u, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(child_do(&a, "BEGIN; SELECT count(*) FROM t"), SQLITE_OK);
    ck_assert_int_ge(file_size(zShm), 32768);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_WAL_DMS, 1), F_RDLCK);
    ck_assert_int_eq(child_do(&b, "BEGIN; SELECT count(*) FROM t"), SQLITE_OK);
    /* readers hold read-mark slots (3..7) shared, nobody the write lock */
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_WAL + 3, 5), F_RDLCK);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_WAL + 0, 1), F_UNLCK);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_WAL_DMS, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_BUSY);
    ck_assert_int_eq(child_do(&a, "COMMIT"), SQLITE_OK);
    ck_assert_int_eq(child_do(&b, "COMMIT"), SQLITE_OK);
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_WAL, SQLITE_SHM_NLOCK), F_UNLCK);
    child_quit(&a);
    ck_assert_int_ge(file_size(zShm), 32768); /* b still has it */
    ck_assert_int_eq(holder(fd, LIVE + COW_LOCK_WAL_DMS, 1), F_RDLCK);
    ck_assert_int_eq(child_do(&b, "SELECT count(*) FROM t"), SQLITE_OK);
    child_quit(&b);
    ck_assert_int_eq(file_size(zShm), -1);
    ck_assert_int_eq(holder(fd, LIVE, COW_LOCK_DB_SPAN), F_UNLCK);
    cowvfsLockClose(fd);
    free(u);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * The WAL-index object after every process died (kill -9): it is left in
 * /dev/shm with whatever it held; the next process to open it, finding
 * nobody on the dead-man switch, truncates it (the junk written into it
 * here is gone: SQLite rebuilds the index from the WAL, the rows are
 * right), and being last at close unlinks it.  While another description
 * holds the switch write-locked (a process resetting or removing the
 * object), a reader cannot map it and its read fails (busy).
 */
START_TEST(test_shm_reset_after_kill)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *u = uri(path, "mode=ro");
    char zShm[512];
    int fd = -1;

    make_container(path, "wal", 30);
    shm_path(path, 256, zShm, sizeof zShm);
    ck_assert_int_eq(cowvfsLockOpen(path, &fd), SQLITE_OK);

    struct child a = child_start(u, SQLITE_OPEN_READONLY);
    struct child b = child_start(u, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(child_do(&a, "SELECT count(*) FROM t"), SQLITE_OK);
    ck_assert_int_eq(child_do(&b, "BEGIN; SELECT count(*) FROM t"), SQLITE_OK);
    child_kill(&a);
    child_kill(&b);
    ck_assert_int_eq(holder(fd, LIVE, COW_LOCK_DB_SPAN), F_UNLCK);
    long long n = file_size(zShm);
    ck_assert_int_ge(n, 32768);

    /* junk over the whole object, and four more regions of it */
    int sfd = open(zShm, O_RDWR);
    ck_assert_int_ge(sfd, 0);
    ck_assert_int_eq(ftruncate(sfd, 5 * 32768), 0);
    unsigned char *m = mmap(0, 5 * 32768, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    memset(m, 0xab, 5 * 32768);
    munmap(m, 5 * 32768);

    /* the switch write-locked elsewhere: the object cannot be taken */
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_WAL_DMS, 1, F_WRLCK, SQLITE_IOERR_LOCK),
                     SQLITE_OK);
    struct child c = child_start(u, SQLITE_OPEN_READONLY);
    int rc = child_do(&c, "SELECT count(*) FROM t");
    ck_assert_msg((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_PROTOCOL,
                  "read with the switch held: %d", rc);
    ck_assert_int_eq(cowvfsLockSet(fd, LIVE + COW_LOCK_WAL_DMS, 1, F_UNLCK, SQLITE_IOERR_UNLOCK),
                     SQLITE_OK);

    ck_assert_int_eq(child_do(&c, "BEGIN; SELECT count(*) FROM t"), SQLITE_OK);
    struct stat st;
    ck_assert_int_eq(fstat(sfd, &st), 0);
    ck_assert_int_lt(st.st_size, 5 * 32768); /* truncated, then grown as needed */
    m = mmap(0, (size_t)st.st_size, PROT_READ, MAP_SHARED, sfd, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    int junk = 0;
    for (long long i = 0; i < st.st_size; i++)
        junk += m[i] == 0xab;
    munmap(m, (size_t)st.st_size);
    close(sfd);
    ck_assert_int_lt(junk, 64); /* an index built afresh (a byte may be 0xab by chance) */
    ck_assert_int_eq(child_do(&c, "COMMIT"), SQLITE_OK);
    child_quit(&c);
    ck_assert_int_eq(file_size(zShm), -1);

    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 30);
    ck_assert_int_eq(query_int(db, "SELECT sum(x) FROM t"), 30 * 31 / 2);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    cowvfsLockClose(fd);
    free(u);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * A snapshot has lock bytes of its own (its subvolume id's): a reader of
 * it holds them, not the live database's.
 */
START_TEST(test_lock_snapshot_bytes)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *u = uri(path, "mode=ro&snapshot=s1");
    int fd = -1;
    uint64_t id = 0;

    make_container(path, "delete", 5);
    sqlite3 *db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    char *z = query_text(db, "PRAGMA cow_snapshot='s1'");
    free(z);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    cow_store *st = NULL;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_READONLY, &st), COW_OK);
    ck_assert_int_eq(cow_subvol_id(st, "s1", &id), COW_OK);
    ck_assert_int_ge(id, 257);
    uint64_t live = 0;
    ck_assert_int_eq(cow_subvol_id(st, "", &live), COW_OK);
    ck_assert_int_eq(live, 256);
    ck_assert_int_eq(cow_subvol_id(st, "nope", &live), COW_ENOENT);
    ck_assert_int_eq(cow_store_close(st), COW_OK);

    ck_assert_int_eq(cowvfsLockOpen(path, &fd), SQLITE_OK);
    struct child a = child_start(u, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(child_do(&a, "BEGIN; SELECT count(*) FROM t"), SQLITE_OK);
    ck_assert_int_eq(holder(fd, COW_LOCK_DB(id) + COW_LOCK_SHARED, 1), F_RDLCK);
    ck_assert_int_eq(holder(fd, LIVE, COW_LOCK_DB_SPAN), F_UNLCK);
    child_quit(&a);
    ck_assert_int_eq(holder(fd, COW_LOCK_DB(id), COW_LOCK_DB_SPAN), F_UNLCK);
    cowvfsLockClose(fd);
    free(u);
    free(path);
    tdir_remove(dir);
}
END_TEST

/*
 * Snapshots across processes: a restore is refused (SQLITE_BUSY) while a
 * connection of another process is inside a transaction on the database,
 * and done when it is idle, which then reads the restored rows; a
 * snapshot another process has open cannot be deleted until it closes it.
 */
START_TEST(test_snap_other_process)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *live = uri(path, "");
    char *snap = uri(path, "snapshot=s1");
    sqlite3 *db;

    make_container(path, "delete", 10);
    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(exec_rc(db, "PRAGMA cow_snapshot('s1')"), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    /* the children before this process has any connection (no fork of a
     * process with threads) */
    struct child a = child_start(live, SQLITE_OPEN_READWRITE);
    struct child b = child_start(snap, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(child_do(&b, "SELECT count(*) FROM t"), SQLITE_OK);
    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(exec_rc(db, "INSERT INTO t VALUES (11)"), SQLITE_OK);

    ck_assert_int_eq(child_do(&a, "BEGIN; SELECT count(*) FROM t"), SQLITE_OK);
    ck_assert_int_eq(exec_rc(db, "PRAGMA cow_restore('s1')"), SQLITE_BUSY);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 11); /* nothing changed */
    ck_assert_int_eq(child_do(&a, "COMMIT"), SQLITE_OK);
    ck_assert_int_eq(exec_rc(db, "PRAGMA cow_delete('s1')"), SQLITE_BUSY); /* b has it open */

    ck_assert_int_eq(exec_rc(db, "PRAGMA cow_restore('s1')"), SQLITE_OK);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 10);
    /* the idle connection of the other process reads the restored rows
     * (an error, integer overflow, unless it sees 10) */
    ck_assert_int_eq(child_do(&a, "SELECT CASE WHEN (SELECT count(*) FROM t) = 10 THEN 1 "
                                  "ELSE abs(-9223372036854775807 - 1) END"),
                     SQLITE_OK);
    child_quit(&b);
    ck_assert_int_eq(exec_rc(db, "PRAGMA cow_delete('s1')"), SQLITE_OK);
    child_quit(&a);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);
    free(live);
    free(snap);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Has the child of ARG commit after 300 ms (the parent's main thread is
 * then inside a snapshot that must wait for it). */
struct late_commit {
    struct child *c;
    int rc;
};

static void *late_commit_main(void *arg)
{
    struct late_commit *lc = arg;
    usleep(300 * 1000);
    lc->rc = child_do(lc->c, "COMMIT");
    return NULL;
}

/* A snapshot taken while another process holds EXCLUSIVE with no journal
 * to roll back (journal_mode MEMORY, its cache spilled into the database
 * file) waits for its commit: the snapshot holds the committed rows, never
 * the spilled half of the transaction.  The snapshot locks the SHARED byte
 * against other processes' EXCLUSIVE (vfs_snap.c cowSnapCreate); without
 * that it saw no writer (none in this process) and cloned the spilled
 * pages. */
START_TEST(test_snap_waits_for_other_writer)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char *live = uri(path, "");
    char *snap = uri(path, "snapshot=s2");
    sqlite3 *db;

    make_container(path, "delete", 10);
    struct child a = child_start(live, SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(child_do(&a, "PRAGMA journal_mode=MEMORY; PRAGMA cache_size=2; BEGIN; "
                                  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n "
                                  "WHERE i<2000) INSERT INTO t SELECT randomblob(500) FROM n"),
                     SQLITE_OK);
    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    struct late_commit lc = {&a, -1};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_commit_main, &lc), 0);
    int rc = exec_rc(db, "PRAGMA cow_snapshot('s2')");
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(rc, SQLITE_OK);
    ck_assert_int_eq(lc.rc, SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    child_quit(&a);
    db = db_open(snap, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 2010);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM pragma_integrity_check "
                                   "WHERE integrity_check <> 'ok'"),
                     0);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);
    free(live);
    free(snap);
    free(path);
    tdir_remove(dir);
}
END_TEST

Suite *vfs_lock_suite(void)
{
    Suite *s = suite_create("vfs_lock");

    vfs_tcase(s, "fork", 60, test_lock_fork_reserved_pending, test_lock_fork_wal_write,
              test_lock_snapshot_bytes, NULL);
    vfs_tcase(s, "readonly", 60, test_ro_two_rollback, test_ro_two_wal, NULL);
    vfs_tcase(s, "shm", 60, test_shm_reset_after_kill, NULL);
    vfs_tcase(s, "snap", 60, test_snap_other_process, test_snap_waits_for_other_writer, NULL);
    return s;
}
