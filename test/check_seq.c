/*
 * check_seq.c - the "seq" suite: what the cow VFS's SQLITE_IOCAP_SEQUENTIAL
 * claim promises SQLite (vfs/vfs_io.c cowSync, cowDeviceCharacteristics;
 * docs/DESIGN.md, "Device characteristics").
 *
 * With SEQUENTIAL on the database file SQLite never syncs the rollback
 * journal (pager.c syncJournal): it relies on the journal being durable no
 * later than the database pages written after it.  The rule checked here:
 * at the database's xSync, in DELETE, TRUNCATE and PERSIST mode, what
 * survives a power loss (the memdev's flushed image) holds the journal
 * exactly as SQLite last wrote it, so that a crash right after that xSync
 * leaves a hot journal that rolls the whole transaction back.  A log record
 * of the database file alone broke it (issue 12, part 1: a transaction over
 * several attached databases kept in one and rolled back in the other).
 *
 * How: the container lives on a memdev (bdev_set_test_opener, COW_DEBUG);
 * a VFS "seqspy" forwards to cow and, when the database's xSync returns
 * inside the transaction under test, keeps the memdev's crash image and
 * the journal's content as SQLite sees it then.  The image is written to
 * a file and opened through cow: its db-journal must equal that content,
 * and SQLite must roll the transaction back.
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bdev.h"
#include "cowvfs.h"
#include "store.h"
#include "testutil.h"
#include "vfsutil.h"

/* ---- the container on a memdev ---- */

static struct cow_dev *gMem;    /* the memdev of the container at gPath */
static char gPath[1024];

static int seq_opener(void *arg, const char *path, int flags, struct cow_dev **out, int *created)
{
    (void)arg;
    (void)flags;
    if (strcmp(path, gPath) != 0)
        return BDEV_TEST_DECLINE;
    *out = fwd_dev_new(gMem, NULL, NULL); /* its close leaves gMem alive */
    ck_assert_ptr_nonnull(*out);
    *created = 0;
    return COW_OK;
}

/* ---- the spy VFS ---- */

typedef struct SpyFile {
    sqlite3_file base;   /* first */
    int eType;           /* SQLITE_OPEN_MAIN_DB, ... */
    sqlite3_file *pReal; /* cow's file, right after this struct */
} SpyFile;

static sqlite3_vfs gSpyVfs;
static sqlite3_vfs *gCow;
static sqlite3_file *gJournal; /* the open rollback journal (cow's file) */
static int gWatch;             /* capture at the database's next xSync */
static int gDieOnSuperDelete;  /* SIGKILL this process at a super-journal's deletion */
static uint8_t *gImg;          /* the crash image then */
static size_t gImgLen;
static uint8_t *gJrnl;         /* the journal's content then */
static sqlite3_int64 gJrnlLen;

#define REAL(f) (((SpyFile *)(f))->pReal)

static int spyClose(sqlite3_file *f)
{
    if (REAL(f) == gJournal)
        gJournal = NULL;
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int spyRead(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int spyWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int spyTruncate(sqlite3_file *f, sqlite3_int64 s)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), s);
}
static int spyFileSize(sqlite3_file *f, sqlite3_int64 *s)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), s);
}

/* The database's xSync; then, if watched, the power-loss image and the
 * journal as SQLite sees it. */
static int spySync(sqlite3_file *f, int flags)
{
    int rc = REAL(f)->pMethods->xSync(REAL(f), flags);
    if (rc != SQLITE_OK || !gWatch || ((SpyFile *)f)->eType != SQLITE_OPEN_MAIN_DB)
        return rc;
    gWatch = 0;
    gImg = memdev_crash_image(gMem, &gImgLen);
    gJrnlLen = 0;
    if (gJournal)
        ck_assert_int_eq(gJournal->pMethods->xFileSize(gJournal, &gJrnlLen), SQLITE_OK);
    gJrnl = malloc(gJrnlLen ? (size_t)gJrnlLen : 1);
    if (gJrnlLen)
        ck_assert_int_eq(gJournal->pMethods->xRead(gJournal, gJrnl, (int)gJrnlLen, 0), SQLITE_OK);
    return rc;
}
static int spyLock(sqlite3_file *f, int e)
{
    return REAL(f)->pMethods->xLock(REAL(f), e);
}
static int spyUnlock(sqlite3_file *f, int e)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), e);
}
static int spyCheckReservedLock(sqlite3_file *f, int *r)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}
static int spyFileControl(sqlite3_file *f, int op, void *a)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int spySectorSize(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int spyDeviceCharacteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static const sqlite3_io_methods spyIo = {
    .iVersion = 1,
    .xClose = spyClose,
    .xRead = spyRead,
    .xWrite = spyWrite,
    .xTruncate = spyTruncate,
    .xSync = spySync,
    .xFileSize = spyFileSize,
    .xLock = spyLock,
    .xUnlock = spyUnlock,
    .xCheckReservedLock = spyCheckReservedLock,
    .xFileControl = spyFileControl,
    .xSectorSize = spySectorSize,
    .xDeviceCharacteristics = spyDeviceCharacteristics,
};

static int spyOpen(sqlite3_vfs *v, const char *z, sqlite3_file *f, int flags, int *out)
{
    SpyFile *p = (SpyFile *)f;
    (void)v;
    memset(p, 0, sizeof *p);
    p->pReal = (sqlite3_file *)&p[1];
    p->eType = flags & 0x0FFF00;
    int rc = gCow->xOpen(gCow, z, p->pReal, flags, out);
    if (p->pReal->pMethods)
        f->pMethods = &spyIo;
    if (rc == SQLITE_OK && p->eType == SQLITE_OPEN_MAIN_JOURNAL)
        gJournal = p->pReal;
    return rc;
}
static int spyDelete(sqlite3_vfs *v, const char *z, int d)
{
    (void)v;
    if (gDieOnSuperDelete && strstr(z, "-mj"))
        kill(getpid(), SIGKILL);
    return gCow->xDelete(gCow, z, d);
}
static int spyAccess(sqlite3_vfs *v, const char *z, int fl, int *r)
{
    (void)v;
    return gCow->xAccess(gCow, z, fl, r);
}
static int spyFullPathname(sqlite3_vfs *v, const char *z, int n, char *o)
{
    (void)v;
    return gCow->xFullPathname(gCow, z, n, o);
}

static void spy_register(void)
{
    cowvfs_register(0);
    gCow = vfs_derive(&gSpyVfs, "cow", "seqspy");
    gSpyVfs.szOsFile = (int)sizeof(SpyFile) + gCow->szOsFile;
    gSpyVfs.xOpen = spyOpen;
    gSpyVfs.xDelete = spyDelete;
    gSpyVfs.xAccess = spyAccess;
    gSpyVfs.xFullPathname = spyFullPathname;
    ck_assert_int_eq(sqlite3_vfs_register(&gSpyVfs, 0), SQLITE_OK);
}

/* ---- helpers ---- */

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
    sqlite3_free(err);
}

/* The number of rows of t that satisfy WHERE. */
static sqlite3_int64 count_rows(sqlite3 *db, const char *where)
{
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf("SELECT count(*) FROM t WHERE %s", where);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_free(sql);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    sqlite3_int64 n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Checks that table t of DB (make_db50's) kept none of the killed
 * transaction's changes and all its 50 rows, then closes DB.  The failure
 * message is "MODE: KEPT". */
static void expect_rolled_back(sqlite3 *db, const char *mode, const char *kept)
{
    ck_assert_msg(count_rows(db, "x>1000") == 0, "%s: %s", mode, kept);
    ck_assert_int_eq(count_rows(db, "x<=50"), 50);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* Reads store file NAME of the container at PATH into *BUF (malloc()ed);
 * returns its size, or -1 if it does not exist. */
static long read_store_file(const char *path, const char *name, uint8_t **buf)
{
    cow_store *st = NULL;
    cow_file *f = NULL;
    int exists = 0;
    uint64_t size = 0;
    size_t n = 0;
    *buf = NULL;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_READONLY, &st), COW_OK);
    ck_assert_int_eq(cow_exists(st, name, &exists), COW_OK);
    if (!exists) {
        cow_store_close(st);
        return -1;
    }
    ck_assert_int_eq(cow_file_open(st, name, 0, &f), COW_OK);
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    *buf = malloc(size ? size : 1);
    if (size)
        ck_assert_int_eq(cow_file_read(f, *buf, size, 0, &n), COW_OK);
    ck_assert_uint_eq(n, size);
    cow_file_close(f);
    cow_store_close(st);
    return (long)size;
}

/*
 * One journal mode JM: a database of 50 rows, then a transaction that
 * updates every row in place (the file keeps its size), with the crash
 * image taken at the database's xSync.
 * MIDCOMMIT makes the store commit inside the transaction first (a
 * snapshot or the background commit does): the journal then exists in a
 * commit, so the log could express the database's changes without it.
 */
static void check_mode(const char *jm, int midcommit)
{
    char *dir = test_base_dir();
    char *uri, *img_path;
    sqlite3 *db = NULL;

    snprintf(gPath, sizeof gPath, "%s/seq.db", dir);
    test_write_file(gPath, (const uint8_t *)"", 0); /* the VFS stat()s it */
    gMem = memdev_new(NULL);
    bdev_set_test_opener(seq_opener, NULL);
    /* the opener serves an empty memdev: the store formats it */
    uri = sqlite3_mprintf("file:%s?vfs=seqspy&commit_interval=0", gPath);
    ck_assert_int_eq(sqlite3_open_v2(uri, &db,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                                     NULL),
                     SQLITE_OK);
    char *sql = sqlite3_mprintf("PRAGMA journal_mode=%s; PRAGMA synchronous=FULL;"
                                "CREATE TABLE t(x INTEGER, pad BLOB);"
                                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c "
                                "WHERE i<50) INSERT INTO t SELECT i, randomblob(300) FROM c;"
                                "UPDATE t SET pad=randomblob(300)",
                                jm);
    exec_ok(db, sql);
    sqlite3_free(sql);
    ck_assert_int_eq(count_rows(db, "x<=50"), 50);

    exec_ok(db, "BEGIN; UPDATE t SET x=x+1000, pad=randomblob(300)");
    if (midcommit)
        exec_ok(db, "PRAGMA cow_commit");
    gWatch = 1;
    exec_ok(db, "COMMIT");
    ck_assert_msg(gImg != NULL, "%s: the database was never synced in the transaction", jm);
    ck_assert_int_eq(count_rows(db, "x>1000"), 50);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    bdev_set_test_opener(NULL, NULL);

    /* the power-loss image at the database's xSync holds the journal as
     * SQLite last wrote it */
    img_path = sqlite3_mprintf("%s/crash.db", dir);
    test_write_file(img_path, gImg, gImgLen);
    uint8_t *j = NULL;
    long jlen = read_store_file(img_path, "db-journal", &j);
    ck_assert_msg(gJrnlLen > 0, "%s: the journal was empty at the database's xSync", jm);
    ck_assert_msg(jlen == (long)gJrnlLen && memcmp(j, gJrnl, (size_t)jlen) == 0,
                  "%s%s: the image at the database's xSync holds a db-journal of %ld bytes, "
                  "%s the %lld bytes SQLite had written: the database's pages are durable "
                  "ahead of its journal",
                  jm, midcommit ? " (commit inside the transaction)" : "", jlen,
                  jlen == (long)gJrnlLen ? "different from" : "not", (long long)gJrnlLen);
    free(j);

    /* and so SQLite rolls the transaction back from it */
    sqlite3_free(uri);
    uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0", img_path);
    ck_assert_int_eq(sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(count_rows(db, "x<=50"), 50);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(img_path);

    sqlite3_free(uri);
    sqlite3_free(img_path);
    free(gImg);
    free(gJrnl);
    gImg = gJrnl = NULL;
    gMem->close(gMem);
    gMem = NULL;
    free(dir);
}

START_TEST(test_journal_durable_with_db)
{
    static const char *const modes[] = {"DELETE", "TRUNCATE", "PERSIST"};
    spy_register();
    for (int m = 0; m < 3; m++)
        for (int midcommit = 0; midcommit < 2; midcommit++)
            check_mode(modes[m], midcommit);
    ck_assert_int_eq(sqlite3_vfs_unregister(&gSpyVfs), SQLITE_OK);
}
END_TEST

/* The number of names in DIR that begin with PREFIX. */
static int count_prefix(const char *dir, const char *prefix)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    int n = 0;
    ck_assert_ptr_nonnull(dp);
    while ((de = readdir(dp)) != NULL)
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(dp);
    return n;
}

/* Makes database PATH (VFS ZVFS) with table t of 50 rows, in journal mode
 * JM. */
static void make_db50(const char *path, const char *zVfs, const char *jm)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, zVfs),
                     SQLITE_OK);
    char *sql = sqlite3_mprintf("PRAGMA journal_mode=%s; CREATE TABLE t(x INTEGER, pad BLOB);"
                                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c "
                                "WHERE i<50) INSERT INTO t SELECT i, randomblob(300) FROM c",
                                jm);
    exec_ok(db, sql);
    sqlite3_free(sql);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/*
 * Runs, in a child process, one transaction over main database MAIN
 * (opened through MAIN_VFS) and AUX (attached through AUX_VFS), both in
 * journal mode JM with synchronous=FULL: both databases are written and
 * synced, both journals hot and naming the super-journal, and the child is
 * SIGKILLed when it deletes the super-journal, its commit point ("seqspy"
 * kills it when gDieOnSuperDelete is set, "unixdie" always).  Fails the
 * test unless the child died so.
 */
static void commit_killed(const char *main, const char *main_vfs, const char *aux,
                          const char *aux_vfs, const char *jm)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sqlite3 *db = NULL;
        char *sql = sqlite3_mprintf("ATTACH 'file:%s?vfs=%s' AS aux; PRAGMA main.journal_mode=%s;"
                                    "PRAGMA aux.journal_mode=%s; PRAGMA main.synchronous=FULL;"
                                    "PRAGMA aux.synchronous=FULL",
                                    aux, aux_vfs, jm, jm);
        gDieOnSuperDelete = 1;
        if (sqlite3_open_v2(main, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, main_vfs) !=
                SQLITE_OK ||
            sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db,
                         "BEGIN; UPDATE main.t SET x=x+1000; UPDATE aux.t SET x=x+1000; COMMIT",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(4);
        _exit(5); /* committed without deleting a super-journal? */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "%s: the child was not killed at the super-journal's deletion (status %d)", jm,
                  status);
}

/*
 * A transaction over a cow main database and an attached unix database,
 * the process killed at the super-journal's deletion: both roll back,
 * whether the main database is opened again with or without its
 * attachment, and the unix one is opened on its own after it.  The unix
 * database can only see a super-journal that is a real file (vfs.c,
 * SUPER-JOURNALS): one inside the container made it keep the transaction
 * that the cow database rolled back.  (The unix database opened first:
 * test_super_journal_unix_main.)  The cow database's recovery adopts the
 * journal mirror the crash left and removes it with the journal: if it
 * did not, the unix database's recovery would see the mirror and keep the
 * super-journal for ever.
 */
START_TEST(test_super_journal_unix_child)
{
    static const char *const modes[] = {"DELETE", "TRUNCATE", "PERSIST"};
    spy_register();
    for (int m = 0; m < 3; m++) {
        for (int attach = 0; attach < 2; attach++) {
            char *dir = test_base_dir();
            char *a = sqlite3_mprintf("%s/a.db", dir), *b = sqlite3_mprintf("%s/b.db", dir);
            make_db50(a, "cow", modes[m]);
            make_db50(b, "unix", modes[m]);
            commit_killed(a, "seqspy", b, "unix", modes[m]);
            sqlite3 *db = NULL;
            ck_assert_int_eq(
                sqlite3_open_v2(a, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "cow"), SQLITE_OK);
            if (attach) {
                char *sql = sqlite3_mprintf("ATTACH 'file:%s?vfs=unix' AS aux", b);
                exec_ok(db, sql);
                sqlite3_free(sql);
                /* reading aux rolls it back too (the super-journal is
                 * still there: the cow database's recovery saw aux's
                 * journal through the default VFS) */
                ck_assert_int_eq(sqlite3_exec(db, "SELECT 1 FROM aux.t", 0, 0, 0), SQLITE_OK);
            }
            expect_rolled_back(db, modes[m],
                               "the cow database kept the transaction after a crash before "
                               "its commit point");
            ck_assert_int_eq(sqlite3_open_v2(b, &db, SQLITE_OPEN_READWRITE, "unix"), SQLITE_OK);
            expect_rolled_back(db, modes[m],
                               "the unix database kept the transaction that the cow database "
                               "rolled back");
            ck_assert_int_eq(count_prefix(dir, "a.db-mj"), 0); /* recovery deleted it */
            test_fsck_clean(a);
            sqlite3_free(a);
            sqlite3_free(b);
            free(dir);
        }
    }
    ck_assert_int_eq(sqlite3_vfs_unregister(&gSpyVfs), SQLITE_OK);
}
END_TEST

/* "unixdie": the unix VFS, except that deleting a super-journal (the
 * commit point of a multi-database transaction whose main database is
 * unix) SIGKILLs the process, as strace's inject=unlink:signal=SIGKILL
 * does in issue 12's reproducer. */
static sqlite3_vfs gDieVfs;
static sqlite3_vfs *gUnix;

static int dieDelete(sqlite3_vfs *v, const char *z, int d)
{
    (void)v;
    if (strstr(z, "-mj"))
        kill(getpid(), SIGKILL);
    return gUnix->xDelete(gUnix, z, d);
}

/*
 * Issue 12's own reproduction: a unix main database and a cow database
 * attached to it, the process killed at the super-journal's deletion (both
 * databases written and synced, both journals naming the super-journal),
 * then the UNIX database recovered first, as `sqlite3 main.db` followed by
 * an ATTACH does.  Its recovery (pager.c pager_delsuper) looks for the cow
 * database's journal through unix: without the journal mirror beside the
 * container it found nothing, deleted the super-journal, and the cow
 * database, whose journal then named a super-journal that does not exist,
 * kept the transaction the unix one rolled back.  Both must roll back, in
 * DELETE, TRUNCATE and PERSIST mode; the mirror exists at the crash (the
 * child's journal named the super-journal) and is gone after recovery
 * (the recovering process adopted it and removed it with the journal), as
 * is the super-journal.  Then a multi-database transaction that commits
 * leaves no mirror, and a single-database one makes none.
 */
START_TEST(test_super_journal_unix_main)
{
    static const char *const modes[] = {"DELETE", "TRUNCATE", "PERSIST"};
    cowvfs_register(0);
    gUnix = vfs_derive(&gDieVfs, "unix", "unixdie");
    gDieVfs.xDelete = dieDelete;
    ck_assert_int_eq(sqlite3_vfs_register(&gDieVfs, 0), SQLITE_OK);
    for (int m = 0; m < 3; m++) {
        char *dir = test_base_dir();
        char *a = sqlite3_mprintf("%s/a.db", dir), *b = sqlite3_mprintf("%s/b.db", dir);
        char *mirror = sqlite3_mprintf("%s-journal", a);
        make_db50(a, "cow", modes[m]);
        make_db50(b, "unix", modes[m]);
        /* before the crash, A's journal mirror must be beside A (vfs/vfs_mirror.c) */
        commit_killed(b, "unixdie", a, "cow", modes[m]);
        ck_assert_msg(access(mirror, F_OK) == 0,
                      "%s: no journal mirror beside the container at the crash", modes[m]);
        ck_assert_int_eq(count_prefix(dir, "b.db-mj"), 1);

        /* the unix database first: its recovery runs before the ATTACH */
        sqlite3 *db = NULL;
        ck_assert_int_eq(sqlite3_open_v2(b, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "unix"),
                         SQLITE_OK);
        ck_assert_msg(count_rows(db, "x>1000") == 0,
                      "%s: the unix database kept a transaction killed before its commit point",
                      modes[m]);
        char *sql = sqlite3_mprintf("ATTACH 'file:%s?vfs=cow' AS aux", a);
        exec_ok(db, sql);
        sqlite3_free(sql);
        sqlite3_stmt *st = NULL;
        ck_assert_int_eq(
            sqlite3_prepare_v2(db, "SELECT count(*) FROM aux.t WHERE x>1000", -1, &st, NULL),
            SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_msg(sqlite3_column_int64(st, 0) == 0,
                      "%s: the cow database kept the transaction that the unix database, "
                      "recovered first, rolled back",
                      modes[m]);
        sqlite3_finalize(st);
        ck_assert_int_eq(count_rows(db, "x<=50"), 50);
        ck_assert_int_eq(count_prefix(dir, "b.db-mj"), 0); /* recovery deleted it */
        ck_assert_msg(access(mirror, F_OK) != 0, "%s: the mirror outlived the recovery",
                      modes[m]);

        /* a multi-database commit leaves no mirror; one database makes none */
        exec_ok(db, "BEGIN; UPDATE main.t SET x=x+1; UPDATE aux.t SET x=x+1; COMMIT");
        ck_assert_int_ne(access(mirror, F_OK), 0);
        exec_ok(db, "UPDATE aux.t SET x=x+1");
        ck_assert_int_ne(access(mirror, F_OK), 0);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        ck_assert_int_eq(count_prefix(dir, "a.db"), 1);
        test_fsck_clean(a);
        sqlite3_free(mirror);
        sqlite3_free(a);
        sqlite3_free(b);
        free(dir);
    }
    ck_assert_int_eq(sqlite3_vfs_unregister(&gDieVfs), SQLITE_OK);
}
END_TEST

/* Writes NAME's super-journal record, laid out as pager.c
 * writeSuperJournal lays it out (4 KiB pages), to REC (size 20 + strlen);
 * returns its length. */
static int super_record(unsigned char *rec, const char *name)
{
    static const unsigned char magic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};
    unsigned n = (unsigned)strlen(name), ck = 0;
    for (unsigned i = 0; i < n; i++)
        ck += (unsigned)(int)name[i];
    memset(rec, 0, 4);
    rec[1] = 0x04, rec[3] = 0x01; /* PAGER_SJ_PGNO */
    memcpy(rec + 4, name, n);
    for (int i = 0; i < 4; i++) {
        rec[4 + n + i] = (unsigned char)(n >> (24 - 8 * i));
        rec[8 + n + i] = (unsigned char)(ck >> (24 - 8 * i));
    }
    memcpy(rec + 12 + n, magic, 8);
    return (int)n + 20;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

/*
 * A journal mirror left beside a container whose journal does not name
 * its super-journal (an earlier process could not remove it, or died
 * between writing it and the record reaching the container) is removed at
 * the next writable open, and so is its super-journal when no journal it
 * lists names it any more (a unix database recovered meanwhile kept it for
 * the mirror; nobody else would delete it).  A super-journal another
 * journal still names stays; a mirror of what the container's journal
 * names stays.  Read-only opens leave everything alone.
 */
START_TEST(test_mirror_stale_removed)
{
    char *dir = test_base_dir();
    char *a = sqlite3_mprintf("%s/a.db", dir);
    char *mirror = sqlite3_mprintf("%s-journal", a);
    char *super = sqlite3_mprintf("%s/b.db-mj0123456789", dir);
    char *bj = sqlite3_mprintf("%s/b.db-journal", dir);
    unsigned char rec[600];
    int nrec = super_record(rec, super);

    cowvfs_register(0);
    make_db50(a, "cow", "DELETE");
    /* the super-journal lists both journals, as vdbeaux.c writes it */
    size_t na = strlen(mirror) + 1, nb = strlen(bj) + 1;
    char *list = malloc(na + nb);
    memcpy(list, mirror, na);
    memcpy(list + na, bj, nb);
    sqlite3 *db = NULL;
    /* 0: stale, the super-journal collected; 1: stale, b's journal still
     * names the super-journal; 2: the container's journal names it */
    for (int c = 0; c < 3; c++) {
        write_file(super, list, na + nb);
        if (c == 1)
            write_file(bj, rec, (size_t)nrec);
        if (c == 2) {
            cow_store *st = NULL;
            cow_file *f = NULL;
            ck_assert_int_eq(cow_store_open(a, 0, &st), COW_OK);
            ck_assert_int_eq(cow_file_open(st, "db-journal", 1, &f), COW_OK);
            ck_assert_int_eq(cow_file_write(f, rec, (size_t)nrec, 8192), COW_OK);
            cow_file_close(f);
            ck_assert_int_eq(cow_store_close(st), COW_OK);
        }
        write_file(mirror, rec, (size_t)nrec);
        ck_assert_int_eq(sqlite3_open_v2(a, &db, SQLITE_OPEN_READONLY, "cow"), SQLITE_OK);
        ck_assert_int_eq(count_rows(db, "1"), 50);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        ck_assert_int_eq(access(mirror, F_OK), 0); /* read-only: left alone */
        ck_assert_int_eq(access(super, F_OK), 0);
        ck_assert_int_eq(sqlite3_open_v2(a, &db, SQLITE_OPEN_READWRITE, "cow"), SQLITE_OK);
        ck_assert_msg((access(mirror, F_OK) == 0) == (c == 2),
                      c == 2 ? "%d: a mirror of what the container's journal names was removed"
                             : "%d: a stale mirror was not removed at a writable open",
                      c);
        ck_assert_msg((access(super, F_OK) == 0) == (c > 0),
                      c ? "%d: a super-journal a journal names was deleted"
                        : "%d: the super-journal only a stale mirror named was kept",
                      c);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        unlink(bj);
    }
    unlink(mirror);
    unlink(super);
    free(list);
    sqlite3_free(bj);
    sqlite3_free(super);
    sqlite3_free(mirror);
    sqlite3_free(a);
    free(dir);
}
END_TEST

/*
 * A super-journal that an earlier version made inside a container (store
 * file "db-mj...") is still seen by xAccess, opened for reading by xOpen
 * (as pager_delsuper does) and removed by xDelete; a new one goes beside
 * the container.
 */
START_TEST(test_super_journal_in_container)
{
    char *dir = test_base_dir();
    char *a = sqlite3_mprintf("%s/a.db", dir);
    char *mj = sqlite3_mprintf("%s-mj01AB2C9D4", a);
    static const char names[] = "/x/b.db-journal";
    cow_store *st = NULL;
    cow_file *f = NULL;
    sqlite3_vfs *cow;
    int res = -1;

    cowvfs_register(0);
    cow = sqlite3_vfs_find("cow");
    make_db50(a, "cow", "DELETE");
    ck_assert_int_eq(cow_store_open(a, 0, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "db-mj01AB2C9D4", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, names, sizeof names, 0), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);

    /* laid out as SQLite lays out a super-journal's name (vdbeaux.c:
     * zeros before and after it, where URI parameters would be) */
    char *buf0 = calloc(1, (size_t)cow->mxPathname + 32);
    char *full = buf0 + 4;
    ck_assert_int_eq(cow->xFullPathname(cow, mj, cow->mxPathname + 1, full), SQLITE_OK);
    ck_assert_int_eq(cow->xAccess(cow, full, SQLITE_ACCESS_EXISTS, &res), SQLITE_OK);
    ck_assert_int_eq(res, 1);
    sqlite3_file *sf = calloc(1, (size_t)cow->szOsFile);
    int out = 0;
    ck_assert_int_eq(cow->xOpen(cow, full, sf, SQLITE_OPEN_READONLY | SQLITE_OPEN_SUPER_JOURNAL,
                                &out),
                     SQLITE_OK);
    char buf[sizeof names];
    sqlite3_int64 size = 0;
    ck_assert_int_eq(sf->pMethods->xFileSize(sf, &size), SQLITE_OK);
    ck_assert_int_eq(size, (sqlite3_int64)sizeof names);
    ck_assert_int_eq(sf->pMethods->xRead(sf, buf, (int)sizeof names, 0), SQLITE_OK);
    ck_assert_int_eq(memcmp(buf, names, sizeof names), 0);
    ck_assert_int_eq(sf->pMethods->xClose(sf), SQLITE_OK);
    ck_assert_int_ne(access(mj, F_OK), 0); /* not a file beside the container */
    ck_assert_int_eq(cow->xDelete(cow, full, 1), SQLITE_OK);
    ck_assert_int_eq(cow->xAccess(cow, full, SQLITE_ACCESS_EXISTS, &res), SQLITE_OK);
    ck_assert_int_eq(res, 0);
    ck_assert_int_eq(count_prefix(dir, "a.db"), 1);
    test_fsck_clean(a);

    free(sf);
    free(buf0);
    sqlite3_free(mj);
    sqlite3_free(a);
    free(dir);
}
END_TEST

Suite *seq_suite(void)
{
    Suite *s = suite_create("seq");
    TCase *tc;
    tc = test_case(s, "journal", 120, test_journal_durable_with_db, test_super_journal_unix_child,
                   test_super_journal_in_container, test_super_journal_unix_main,
                   test_mirror_stale_removed, NULL);
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    return s;
}
