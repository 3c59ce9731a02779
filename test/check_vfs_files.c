/*
 * check_vfs_files.c - the "vfs_files" suite: files that are not
 * containers, file controls and pragmas, temporary files, ATTACH and
 * super-journals, other processes, the registry; giving space back
 * (PRAGMA cow_balance, the background relocator's knobs, relocation while
 * other threads write).
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
    char *path = cpath(dir, "hint.db");
    sqlite3 *db = db_open(path, RW_CREATE, vt->vfs);
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
    vt->fsck_clean(path);
    db = db_open(path, RW_CREATE, vt->vfs);
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

START_TEST(test_attach_super_journal)
{
    char *dir = tdir_make();
    char *a = cpath(dir, "a.db");
    char *b = cpath(dir, "b.db");
    char *fulla = full_path(a);
    char sql[1200];

    spy_vfs_register();

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

    db = db_open(b, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM u"), 2);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    sqlite3_close(db);
    db = db_open(a, SQLITE_OPEN_READWRITE, vt->vfs);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 2);
    sqlite3_close(db);
    ck_assert_dir(dir, "a.db b.db");
    ck_assert_store(a, "db");
    ck_assert_store(b, "db");
    vt->fsck_clean(a);
    vt->fsck_clean(b);
    ck_assert_int_eq(sqlite3_vfs_unregister(&spy_vfs), SQLITE_OK);

    free(fulla);
    free(a);
    free(b);
    tdir_remove(dir);
}
END_TEST

/* A container open in another process (which read it and holds its
 * connection): this process opens and reads it too (docs/DESIGN.md,
 * "Several processes"). */
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

    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(rc, SQLITE_OK);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 10);
    sqlite3_close(db);

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
 * Giving space back: PRAGMA cow_balance, the background relocator and its knobs
 */

/* Runs SQL, which must fail with RC and an error message containing WHY. */
static void expect_error(sqlite3 *db, const char *sql, int rc, const char *why)
{
    char *err = NULL;
    int got = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(got == rc, "%s: %d, not %d (%s)", sql, got, rc, err ? err : "");
    ck_assert_msg(err && strstr(err, why), "%s: \"%s\" does not say \"%s\"", sql,
                  err ? err : "", why);
    sqlite3_free(err);
}

START_TEST(test_reloc_knobs)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char uri[1200];
    sqlite3 *db = db_open(path, RW_CREATE, "cow");
    sqlite3 *db2;

    EXEC(db, "CREATE TABLE t(x)");
    /* the defaults (store.h) */
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc"), 1);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_slack"), COW_RELOC_SLACK_PCT);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_rate"), COW_RELOC_RATE >> 20);
    /* set, returned, read back, shared by another connection */
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc=off"), 0);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_slack=40"), 40);
    ck_assert_int_eq(query_int(db, "PRAGMA main.COW_RELOC_RATE=7"), 7);
    db2 = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db2, "PRAGMA cow_reloc"), 0);
    ck_assert_int_eq(query_int(db2, "PRAGMA cow_reloc_slack"), 40);
    ck_assert_int_eq(query_int(db2, "PRAGMA cow_reloc_rate"), 7);
    ck_assert_int_eq(query_int(db2, "PRAGMA cow_reloc=YES"), 1);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc"), 1);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc=0"), 0);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_rate=0"), 0); /* no limit */
    /* bad values: an error that says what the pragma takes, nothing changed */
    expect_error(db, "PRAGMA cow_reloc=maybe", SQLITE_ERROR, "not a boolean");
    expect_error(db, "PRAGMA cow_reloc_slack=101", SQLITE_ERROR, "not a percent");
    expect_error(db, "PRAGMA cow_reloc_slack=-1", SQLITE_ERROR, "not a percent");
    expect_error(db, "PRAGMA cow_reloc_slack='5%'", SQLITE_ERROR, "not a percent");
    expect_error(db, "PRAGMA cow_reloc_rate=1048577", SQLITE_ERROR, "not a rate in MiB/s");
    expect_error(db, "PRAGMA cow_reloc_rate=1.5", SQLITE_ERROR, "not a rate in MiB/s");
    expect_error(db, "PRAGMA cow_balance=101", SQLITE_ERROR, "not a percent");
    expect_error(db, "PRAGMA cow_balance='all'", SQLITE_ERROR, "not a percent");
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc"), 0);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_slack"), 40);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_rate"), 0);
    ck_assert_int_eq(sqlite3_close(db2), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

    /* URI parameters set the same knobs at open; a bad one is logged and
     * ignored */
    log_capture_begin();
    snprintf(uri, sizeof uri, "file:%s?reloc=0&reloc_slack=5&reloc_rate=abc", path);
    db = db_open(uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "cow");
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc"), 0);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_slack"), 5);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_rate"), COW_RELOC_RATE >> 20);
    pthread_mutex_lock(&log_mu);
    ck_assert_msg(strstr(log_buf, "reloc_rate=abc ignored (not a rate in MiB/s"), "log: %s",
                  log_buf);
    pthread_mutex_unlock(&log_mu);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    log_capture_end();

    /* a read-only container: the knobs read, no balance */
    snprintf(uri, sizeof uri, "file:%s?reloc_slack=9", path);
    db = db_open(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, "cow");
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_slack"), 9);
    expect_error(db, "PRAGMA cow_balance", SQLITE_READONLY, "open read-only");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Fills table t of DB with NROWS rows of 500 bytes, then deletes all but
 * one in ten and VACUUMs, in WAL mode, checkpointing the WAL away (the
 * issue's measure of a container after churn). */
static void churn(sqlite3 *db, int nrows)
{
    char sql[300];
    ck_assert_text((db, "PRAGMA journal_mode=WAL"), "wal");
    EXEC(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
             "INSERT INTO t SELECT i, randomblob(500) FROM n",
             nrows);
    EXEC(db, sql);
    EXEC(db, "DELETE FROM t WHERE id % 10 != 0");
    EXEC(db, "VACUUM");
    EXEC(db, "PRAGMA wal_checkpoint(TRUNCATE)");
}

/* The "KEY=N" value of KEY in TEXT, -1 if absent. */
static long long kv(const char *text, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "%s=", key);
    const char *p = strstr(text, k);
    return p ? atoll(p + strlen(k)) : -1;
}

START_TEST(test_balance_pragma)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char uri[1200];
    struct stat st;
    sqlite3 *db;

    snprintf(uri, sizeof uri, "file:%s?reloc=0", path); /* no background relocation */
    db = db_open(uri, RW_CREATE | SQLITE_OPEN_URI, "cow");
    churn(db, 16384);
    EXEC(db, "PRAGMA cow_commit");
    ck_assert_int_eq(stat(path, &st), 0);
    long long before = (long long)st.st_size;

    char *row = query_text(db, "PRAGMA cow_balance");
    ck_assert_ptr_nonnull(row);
    long long groups = kv(row, "groups"), moved = kv(row, "bytes_moved");
    long long cb = kv(row, "container_before"), ca = kv(row, "container_after");
    ck_assert_msg(groups >= 0 && moved >= 0 && cb > 0 && ca > 0, "row: %s", row);
    ck_assert_msg(cb == before, "container_before %lld, the file had %lld bytes", cb, before);
    ck_assert_msg(ca < cb, "a database that lost 90%% of its rows did not shrink: %s", row);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_msg((long long)st.st_size == ca, "the file has %lld bytes, container_after %lld",
                  (long long)st.st_size, ca);
    /* the counters */
    ck_assert_int_ge(cow_stat(db, "reloc_runs"), 1);
    ck_assert_int_eq(cow_stat(db, "reloc_groups"), groups);
    ck_assert_int_eq(cow_stat(db, "reloc_bytes"), moved);
    ck_assert_int_eq(cow_stat(db, "container_bytes"), ca);
    free(row);
    /* one row, one value */
    sqlite3_stmt *stmt;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA cow_balance=50", -1, &stmt, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(stmt), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_count(stmt), 1);
    ck_assert_int_ge(kv((const char *)sqlite3_column_text(stmt, 0), "container_after"), 1);
    ck_assert_int_eq(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 1638);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    db = db_open(path, SQLITE_OPEN_READWRITE, "cow");
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 1638);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    free(path);
    tdir_remove(dir); /* fsck */
}
END_TEST

/* The background relocator gives the space back with no command. */
START_TEST(test_background_reloc)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char uri[1200];
    struct stat st;
    sqlite3 *db;

    snprintf(uri, sizeof uri, "file:%s?reloc=0", path);
    db = db_open(uri, RW_CREATE | SQLITE_OPEN_URI, "cow");
    churn(db, 16384);
    EXEC(db, "PRAGMA cow_commit");
    ck_assert_int_eq(stat(path, &st), 0);
    long long before = (long long)st.st_size;
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_slack=10"), 10);
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc=1"), 1);
    long long now = before;
    for (int i = 0; i < 600 && now >= before / 2; i++) { /* 60 s at most */
        usleep(100 * 1000);
        ck_assert_int_eq(stat(path, &st), 0);
        now = (long long)st.st_size;
    }
    ck_assert_msg(now < before / 2, "the container stayed at %lld bytes (was %lld)", now, before);
    ck_assert_int_ge(cow_stat(db, "reloc_runs"), 1);
    ck_assert_int_ge(cow_stat(db, "reloc_groups"), 1);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 1638);
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* A read-only container never relocates, whatever its slack. */
START_TEST(test_reloc_readonly)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    char uri[1200];
    struct stat st;
    sqlite3 *db;

    snprintf(uri, sizeof uri, "file:%s?reloc=0", path);
    db = db_open(uri, RW_CREATE | SQLITE_OPEN_URI, "cow");
    churn(db, 16384);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    long long before = (long long)st.st_size;

    snprintf(uri, sizeof uri, "file:%s?reloc=1&reloc_slack=0", path);
    db = db_open(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, "cow");
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc"), 1);
    usleep(2500 * 1000); /* two of the relocator's periods */
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 1638);
    ck_assert_int_eq(cow_stat(db, "reloc_runs"), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((long long)st.st_size, before);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((long long)st.st_size, before);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* Writers and a reader on other connections, each on its own thread, while
 * the background relocator runs with a low threshold (make tsan runs this
 * case). */
#define RELOC_NWRITERS 2
#define RELOC_ROUNDS 40

struct reloc_shared {
    const char *path;
    int failed;              /* atomic */
    int done;                /* atomic */
    pthread_mutex_t mu;
    char why[256];           /* mu */
};

static void reloc_fail(struct reloc_shared *s, const char *what, sqlite3 *db)
{
    pthread_mutex_lock(&s->mu);
    if (!s->failed)
        snprintf(s->why, sizeof s->why, "%s: %s", what, db ? sqlite3_errmsg(db) : "");
    __atomic_store_n(&s->failed, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&s->mu);
}

struct reloc_writer_arg {
    struct reloc_shared *s;
    int id;
};

/* Writer ID: rounds of 200 rows of 4 KiB into its own table, then deletes
 * most of them, so that the container keeps growing slack. */
static void *reloc_writer(void *arg)
{
    struct reloc_writer_arg *wa = arg;
    struct reloc_shared *s = wa->s;
    sqlite3 *db = NULL;
    char sql[300];

    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK) {
        reloc_fail(s, "writer open", db);
        goto out;
    }
    sqlite3_busy_timeout(db, 30000);
    for (int r = 0; r < RELOC_ROUNDS && !__atomic_load_n(&s->failed, __ATOMIC_SEQ_CST); r++) {
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE;"
                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) "
                 "INSERT INTO w%d(r, v) SELECT %d, randomblob(4096) FROM n;"
                 "DELETE FROM w%d WHERE r = %d AND rowid %% 8 != 0;"
                 "COMMIT",
                 wa->id, r, wa->id, r);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            reloc_fail(s, "writer round", db);
            goto out;
        }
        if (r % 10 == 9 && sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
                                        NULL) != SQLITE_OK) {
            reloc_fail(s, "writer checkpoint", db);
            goto out;
        }
    }
out:
    sqlite3_close(db);
    return NULL;
}

/* Reads every table's row count and sum of lengths until done. */
static void *reloc_reader(void *arg)
{
    struct reloc_shared *s = arg;
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK) {
        reloc_fail(s, "reader open", db);
        goto out;
    }
    sqlite3_busy_timeout(db, 30000);
    while (!__atomic_load_n(&s->done, __ATOMIC_SEQ_CST) &&
           !__atomic_load_n(&s->failed, __ATOMIC_SEQ_CST)) {
        if (sqlite3_exec(db, "SELECT count(*), sum(length(v)) FROM w0;"
                             "SELECT count(*), sum(length(v)) FROM w1",
                         NULL, NULL, NULL) != SQLITE_OK) {
            reloc_fail(s, "reader", db);
            goto out;
        }
    }
out:
    sqlite3_close(db);
    return NULL;
}

START_TEST(test_reloc_threads)
{
    char *dir = tdir_make();
    char *path = tpath(dir, "app.db");
    struct reloc_shared s;
    struct reloc_writer_arg wa[RELOC_NWRITERS];
    pthread_t w[RELOC_NWRITERS], r;
    sqlite3 *db = db_open(path, RW_CREATE, "cow");

    ck_assert_text((db, "PRAGMA journal_mode=WAL"), "wal");
    EXEC(db, "CREATE TABLE w0(r INTEGER, v BLOB); CREATE TABLE w1(r INTEGER, v BLOB)");
    /* the relocator as eager as it gets: any slack past 1 MiB */
    ck_assert_int_eq(query_int(db, "PRAGMA cow_reloc_slack=0"), 0);

    memset(&s, 0, sizeof s);
    s.path = path;
    pthread_mutex_init(&s.mu, NULL);
    ck_assert_int_eq(pthread_create(&r, NULL, reloc_reader, &s), 0);
    for (int i = 0; i < RELOC_NWRITERS; i++) {
        wa[i].s = &s;
        wa[i].id = i;
        ck_assert_int_eq(pthread_create(&w[i], NULL, reloc_writer, &wa[i]), 0);
    }
    for (int i = 0; i < RELOC_NWRITERS; i++)
        pthread_join(w[i], NULL);
    __atomic_store_n(&s.done, 1, __ATOMIC_SEQ_CST);
    pthread_join(r, NULL);
    ck_assert_msg(!s.failed, "%s", s.why);

    long long runs = cow_stat(db, "reloc_runs");
    for (int i = 0; i < 100 && runs < 1; i++) { /* slack stays: it must run soon */
        usleep(100 * 1000);
        runs = cow_stat(db, "reloc_runs");
    }
    ck_assert_msg(runs >= 1, "the relocator never ran");
    for (int i = 0; i < RELOC_NWRITERS; i++) {
        char sql[100];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM w%d", i);
        ck_assert_int_eq(query_int(db, sql), RELOC_ROUNDS * 25);
    }
    ck_assert_text((db, "PRAGMA integrity_check"), "ok");
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);
    pthread_mutex_destroy(&s.mu);
    free(path);
    tdir_remove(dir);
}
END_TEST

/* On any target: preallocation by size hints (the store's, through the
 * VFS), ATTACH and a transaction over two containers with its
 * super-journal.  The others are about the local file (files that are not
 * containers, its bytes and size, damage and a full disk through the file,
 * names and links, other processes, temporary files of the default VFS)
 * or relocation's knobs, threads and file sizes. */
void vfs_files_any_target(TCase *tc)
{
    tcase_add_test(tc, test_size_hint_preallocates);
    tcase_add_test(tc, test_attach_super_journal);
}

Suite *vfs_files_suite(void)
{
    Suite *s = suite_create("vfs_files");
    TCase *tc;

    tc = vfs_tcase(s, "bad_files", 60, test_bad_data_block, test_create, test_readonly, NULL);
    tcase_add_loop_test(tc, test_bad_files, 0, BAD_N);
    tcase_add_loop_test(tc, test_disk_full, 0, 2);

    vfs_tcase(s, "fcntl", 60, test_file_controls, test_size_hint_preallocates, NULL);

    vfs_tcase(s, "files", 120, test_temp_files, test_attach_super_journal, test_other_process,
              test_registry_and_names, NULL);

    vfs_tcase(s, "reloc", 180, test_reloc_knobs, test_balance_pragma, test_background_reloc,
              test_reloc_readonly, NULL);

    vfs_tcase(s, "reloc_threads", 300, test_reloc_threads, NULL);

    return s;
}
