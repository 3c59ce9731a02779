/*
 * check_rados.c - the RADOS device (store/bdev_rados.c) and the cow-rados
 * VFS (vfs/vfs_rados.c) against a live cluster: its own runner
 * (build/check_rados), started by make test-rados (test/rados/run.sh),
 * which starts tools/ceph-local.sh's cluster and sets CEPH_CONF and
 * COW_RADOS_POOL.  Without them it says so and exits with status 2.
 *
 * The cluster is on bluestore (run.sh sets CEPH_LOCAL_STORE), so that
 * osd_restart_under_load can restart the OSD (tools/ceph-local.sh
 * restart-osd) without losing the objects.
 *
 * Each case forks from Check's own per-case process before opening
 * anything (the cluster handle is per process: a second client is a second
 * process).  CK_RUN_CASE=name runs one case.
 *
 * The case model runs the model test of snapshots and branches
 * (test/model_run.c, the model suite's body) through cow-rados, with
 * RADOS_MODEL_OPS operations (COW_MODEL_OPS=N: N) and fsck of the
 * container where it lies whenever every connection is closed (its fsck:
 * rados_vfs.h rados_fsck_clean).
 *
 * The cases vfs_io, vfs_journal, vfs_snap and vfs_files run the tests of
 * the VFS suites that hold on any device through cow-rados
 * (check_rados_vfs.c); store_btree, store_alloc, store_txn, store_file,
 * store_usage, store_nocow and store_reloc those of the store suites, on
 * RADOS devices (check_rados_store.c).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <rados/librados.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../tools/ctl_rados.h"
#include "bdev_rados.h"
#include "cowvfs.h"
#include "model.h"
#include "rados_vfs.h"
#include "store.h"
#include "testutil.h"

/* The model case's operations: about 70 s on the one-OSD test cluster
 * of test/rados/run.sh (3,000, the model suite's NOPS, about 140 s). */
#define RADOS_MODEL_OPS 1500

static const char *pool;

/* POOL/NAME-PID in BUF. */
static const char *spec_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s-%d", pool, name, (int)getpid());
    return buf;
}

/* A librados handle and I/O context of our own, to look behind the device. */
static rados_ioctx_t inspect_io(rados_t *cl)
{
    rados_ioctx_t io;
    ck_assert_int_eq(rados_create(cl, NULL), 0);
    ck_assert_int_eq(rados_conf_read_file(*cl, NULL), 0);
    ck_assert_int_eq(rados_connect(*cl), 0);
    ck_assert_int_eq(rados_ioctx_create(*cl, pool, &io), 0);
    return io;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static int is_fill(const uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(seed * 131 + i * 7 + (i >> 9)))
            return 0;
    return 1;
}

static int is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* ---- the device ---- */

START_TEST(dev_roundtrip)
{
    char spec[300];
    struct cow_dev *d;
    int created = -1;
    const uint64_t os = BDEV_RADOS_OBJECT_SIZE;
    size_t big = (size_t)os + 300; /* spans objects 1, 2 (and into 3) */
    uint8_t *w = malloc(big), *r = malloc(big);
    spec_of(spec, sizeof spec, "dev");
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, 0, &d, &created), COW_ENOENT);
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created), COW_OK);
    ck_assert_int_eq(created, 1);
    uint64_t size = 1;
    ck_assert_int_eq(d->size(d, &size), COW_OK);
    ck_assert_uint_eq(size, 0);
    ck_assert_int_eq(d->grow(d, 3 * os + 12345), COW_OK);
    fill(w, 300, 1);
    ck_assert_int_eq(d->write(d, w, 300, os - 100), COW_OK); /* objects 0 and 1 */
    fill(w, big, 2);
    ck_assert_int_eq(d->write(d, w, big, 2 * os - 150), COW_OK);
    ck_assert_int_eq(d->flush(d), COW_OK);
    ck_assert_int_eq(d->publish(d), COW_OK);
    ck_assert_int_eq(d->read(d, r, 300, os - 100), COW_OK);
    ck_assert(is_fill(r, 300, 1));
    ck_assert_int_eq(d->read(d, r, big, 2 * os - 150), COW_OK);
    ck_assert(is_fill(r, big, 2));
    /* never written, inside the size: zeros (a missing object too) */
    ck_assert_int_eq(d->read(d, r, 4096, 5000), COW_OK);
    ck_assert(is_zero(r, 4096));
    ck_assert_int_eq(d->read(d, r, 100, 3 * os + 12345 - 100), COW_OK);
    ck_assert(is_zero(r, 100));
    /* past the size */
    ck_assert_int_eq(d->read(d, r, 101, 3 * os + 12345 - 100), COW_EIO_READ);
    d->close(d);

    /* reopened: size and data kept */
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, 0, &d, &created), COW_OK);
    ck_assert_int_eq(created, 0);
    ck_assert_int_eq(d->size(d, &size), COW_OK);
    ck_assert_uint_eq(size, 3 * os + 12345);
    ck_assert_int_eq(d->read(d, r, big, 2 * os - 150), COW_OK);
    ck_assert(is_fill(r, big, 2));
    /* shrink into object 1: objects 2 and 3 go, object 1 is cut */
    ck_assert_int_eq(d->shrink(d, os + 50), COW_OK);
    ck_assert_int_eq(d->read(d, r, 51, os), COW_EIO_READ);
    ck_assert_int_eq(d->read(d, r, 150, os - 100), COW_OK);
    ck_assert(is_fill(r, 150, 1));
    rados_t cl;
    rados_ioctx_t io = inspect_io(&cl);
    char oid[400];
    uint64_t osize;
    time_t mt;
    snprintf(oid, sizeof oid, "%s.%016x", strchr(spec, '/') + 1, 2);
    ck_assert_int_eq(rados_stat(io, oid, &osize, &mt), -ENOENT);
    snprintf(oid, sizeof oid, "%s.%016x", strchr(spec, '/') + 1, 1);
    ck_assert_int_eq(rados_stat(io, oid, &osize, &mt), 0);
    ck_assert_uint_eq(osize, 50);
    /* grown again: what was cut reads as zeros */
    ck_assert_int_eq(d->grow(d, 2 * os), COW_OK);
    ck_assert_int_eq(d->read(d, r, 1000, os + 50), COW_OK);
    ck_assert(is_zero(r, 1000));
    d->close(d);

    /* a new container never published is removed at close */
    char spec2[300];
    spec_of(spec2, sizeof spec2, "unpublished");
    ck_assert_int_eq(bdev_rados_open(spec2, NULL, NULL, BDEV_CREATE, &d, &created), COW_OK);
    ck_assert_int_eq(d->grow(d, 8192), COW_OK);
    ck_assert_int_eq(d->write(d, w, 8192, 0), COW_OK);
    d->close(d);
    ck_assert_int_eq(bdev_rados_open(spec2, NULL, NULL, 0, &d, &created), COW_ENOENT);
    rados_ioctx_destroy(io);
    rados_shutdown(cl);
    free(w);
    free(r);
}
END_TEST

START_TEST(dev_bad_names_and_header)
{
    struct cow_dev *d;
    int created;
    static const char *bad[] = {"nopool", "a/b/c", "/name", "pool/", "pool:/x", "po:ol:x/y/z",
                                "pool/na\nme"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(bdev_rados_open(bad[i], NULL, NULL, BDEV_CREATE, &d, &created),
                         COW_EINVAL);
        ck_assert_ptr_nonnull(strstr(cow_store_last_error(NULL), "RADOS container"));
    }
    char spec[300];
    spec_of(spec, sizeof spec, "hdr");
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created), COW_OK);
    ck_assert_int_eq(d->grow(d, 65536), COW_OK);
    ck_assert_int_eq(d->publish(d), COW_OK);
    d->close(d);
    rados_t cl;
    rados_ioctx_t io = inspect_io(&cl);
    char oid[400], h[64];
    snprintf(oid, sizeof oid, "%s.%016x", strchr(spec, '/') + 1, 0);
    ck_assert_int_eq(rados_getxattr(io, oid, "cowvfs.header", h, sizeof h), 64);
    /* the object size changed (the CRC no longer matches) */
    h[18] ^= 1;
    ck_assert_int_eq(rados_setxattr(io, oid, "cowvfs.header", h, sizeof h), 0);
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, 0, &d, &created), COW_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(cow_store_last_error(NULL), "checksum"));
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_READONLY, &d, &created),
                     COW_ECORRUPT);
    /* another magic: not a container, and never written (even with create) */
    h[18] ^= 1;
    memcpy(h, "SOMEELSE", 8);
    ck_assert_int_eq(rados_setxattr(io, oid, "cowvfs.header", h, sizeof h), 0);
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created),
                     COW_ENOTCONTAINER);
    char h2[64];
    ck_assert_int_eq(rados_getxattr(io, oid, "cowvfs.header", h2, sizeof h2), 64);
    ck_assert_int_eq(memcmp(h, h2, 64), 0);
    /* an object 0 with data and no header is someone else's */
    char spec3[300];
    spec_of(spec3, sizeof spec3, "foreign");
    snprintf(oid, sizeof oid, "%s.%016x", strchr(spec3, '/') + 1, 0);
    ck_assert_int_eq(rados_write_full(io, oid, "data", 4), 0);
    ck_assert_int_eq(bdev_rados_open(spec3, NULL, NULL, BDEV_CREATE, &d, &created),
                     COW_ENOTCONTAINER);
    /* no such pool */
    ck_assert_int_eq(bdev_rados_open("no-such-pool/x", NULL, NULL, 0, &d, &created), COW_ENOENT);
    rados_ioctx_destroy(io);
    rados_shutdown(cl);
}
END_TEST

/* ---- the store ---- */

START_TEST(store_reopen)
{
    char spec[300];
    struct cow_dev *d;
    cow_store *st;
    cow_file *f;
    int created;
    size_t n = 3u << 20, got;
    uint8_t *w = malloc(n), *r = malloc(n);
    spec_of(spec, sizeof spec, "store");
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created), COW_OK);
    ck_assert_int_eq(cow_store_open_dev(spec, d, 0, created, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "f", 1, &f), COW_OK);
    for (unsigned i = 0; i < 4; i++) { /* 12 MiB: crosses objects */
        fill(w, n, 10 + i);
        ck_assert_int_eq(cow_file_write(f, w, n, (uint64_t)i * n), COW_OK);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);

    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_READONLY, &d, &created), COW_OK);
    ck_assert_int_eq(cow_store_open_dev(spec, d, COW_OPEN_READONLY, 0, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "f", 0, &f), COW_OK);
    for (unsigned i = 0; i < 4; i++) {
        ck_assert_int_eq(cow_file_read(f, r, n, (uint64_t)i * n, &got), COW_OK);
        ck_assert_uint_eq(got, n);
        ck_assert(is_fill(r, n, 10 + i));
    }
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(w);
    free(r);
}
END_TEST

/* A reader on another client pins the generation it read (bdev.h
 * reader_pin, invariant 9): the writer rewrites everything that reader's
 * commit reaches, eight times over, and the reader still reads what it
 * opened, tree blocks and data, because the writer held that space instead
 * of reusing it.  Once the reader closes, its pin goes and the writer's
 * looks at the pins let the space go. */
START_TEST(reader_pin_holds_space)
{
    char spec[300];
    struct cow_dev *d;
    cow_store *w, *r;
    cow_file *fw, *fg, *fr;
    int created;
    size_t n = 2u << 20, got;
    uint8_t *buf = malloc(n);
    struct cow_stats cs;
    spec_of(spec, sizeof spec, "pin");
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created), COW_OK);
    ck_assert_int_eq(cow_store_open_dev(spec, d, 0, created, &w), COW_OK);
    cow_store_set_commit_interval(w, 0);
    ck_assert_int_eq(cow_file_open(w, "f", 1, &fw), COW_OK);
    ck_assert_int_eq(cow_file_open(w, "g", 1, &fg), COW_OK);
    fill(buf, n, 1);
    ck_assert_int_eq(cow_file_write(fw, buf, n, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(w), COW_OK);
    ck_assert_int_eq(cow_store_commit(w), COW_OK);

    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_READONLY, &d, &created), COW_OK);
    ck_assert_int_eq(cow_store_open_dev(spec, d, COW_OPEN_READONLY, 0, &r), COW_OK);
    for (unsigned i = 0; i < 8; i++) { /* first fit would reuse the old blocks at once */
        fill(buf, n, 2 + i);
        ck_assert_int_eq(cow_file_write(fw, buf, n, 0), COW_OK);
        ck_assert_int_eq(cow_store_commit(w), COW_OK);
        usleep(20000); /* let the looks at the pins run */
    }
    cow_store_stats(w, &cs);
    ck_assert_uint_ge(cs.held_bytes, 7 * (uint64_t)n);
    ck_assert_int_eq(cow_file_open(r, "f", 0, &fr), COW_OK);
    memset(buf, 0, n);
    ck_assert_int_eq(cow_file_read(fr, buf, n, 0, &got), COW_OK);
    ck_assert_uint_eq(got, n);
    ck_assert_msg(is_fill(buf, n, 1), "the reader read reused blocks");
    cow_file_close(fr);
    ck_assert_int_eq(cow_store_close(r), COW_OK);

    /* no pin left: each commit frees one block of g, and what was held goes */
    int i;
    for (i = 0; i < 200; i++) {
        fill(buf, 4096, 100 + (unsigned)i);
        ck_assert_int_eq(cow_file_write(fg, buf, 4096, 0), COW_OK);
        ck_assert_int_eq(cow_store_commit(w), COW_OK);
        cow_store_stats(w, &cs);
        if (cs.held_bytes < n)
            break;
        usleep(20000);
    }
    ck_assert_msg(cs.held_bytes < n, "still held after the reader closed: %llu bytes",
                  (unsigned long long)cs.held_bytes);
    cow_file_close(fw);
    cow_file_close(fg);
    ck_assert_int_eq(cow_store_close(w), COW_OK);
    free(buf);
}
END_TEST

/* A writer that takes over holds what the writer before it held for a
 * reader on another client (store.c open, alloc_hold_free): writer A
 * writes f, a reader opens (pinned at that commit), A rewrites f (holding
 * the old blocks for the reader) and closes; writer B opens and writes
 * four times as much; the reader still reads its f.  Without the hold,
 * B's map has f's old blocks free, B reuses them, and the reader's read
 * fails its checksums (built with -DCOW_BREAK_RADOS_TAKEOVER). */
START_TEST(takeover_holds_for_readers)
{
    char spec[300];
    struct cow_dev *d;
    cow_store *w, *r;
    cow_file *f, *fr;
    int created;
    size_t n = 2u << 20, got;
    uint8_t *buf = malloc(n);
    spec_of(spec, sizeof spec, "takeover");
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created), COW_OK);
    ck_assert_int_eq(cow_store_open_dev(spec, d, 0, created, &w), COW_OK);
    cow_store_set_commit_interval(w, 0);
    ck_assert_int_eq(cow_file_open(w, "f", 1, &f), COW_OK);
    fill(buf, n, 1);
    ck_assert_int_eq(cow_file_write(f, buf, n, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(w), COW_OK);
    ck_assert_int_eq(cow_store_commit(w), COW_OK);

    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_READONLY, &d, &created), COW_OK);
    ck_assert_int_eq(cow_store_open_dev(spec, d, COW_OPEN_READONLY, 0, &r), COW_OK);
    fill(buf, n, 2);
    ck_assert_int_eq(cow_file_write(f, buf, n, 0), COW_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cow_store_commit(w), COW_OK);
        usleep(20000);
    }
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(w), COW_OK);

    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, 0, &d, &created), COW_OK);
    ck_assert_int_eq(cow_store_open_dev(spec, d, 0, 0, &w), COW_OK);
    cow_store_set_commit_interval(w, 0);
    ck_assert_int_eq(cow_file_open(w, "g", 1, &f), COW_OK);
    for (unsigned i = 0; i < 4; i++) {
        fill(buf, n, 10 + i);
        ck_assert_int_eq(cow_file_write(f, buf, n, (uint64_t)i * n), COW_OK);
        ck_assert_int_eq(cow_store_commit(w), COW_OK);
        usleep(20000);
    }
    ck_assert_int_eq(cow_file_open(r, "f", 0, &fr), COW_OK);
    memset(buf, 0, n);
    int rc = cow_file_read(fr, buf, n, 0, &got);
    ck_assert_msg(rc == COW_OK, "the reader's read failed (%d): %s", rc, cow_store_last_error(r));
    ck_assert_uint_eq(got, n);
    ck_assert_msg(is_fill(buf, n, 1), "the reader read reused blocks");
    cow_file_close(fr);
    ck_assert_int_eq(cow_store_close(r), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(w), COW_OK);
    free(buf);
}
END_TEST

/* A reader killed with its pin taken: nobody unpins it, and the writer
 * holds what that reader could read until the pin's lease runs out (the
 * pin is a cls_lock with a duration, renewed by the reader's thread,
 * which died with it), then lets it go. */
START_TEST(dead_reader_pin_expires)
{
    char spec[300];
    int go[2], ready[2], status;
    char c;
    spec_of(spec, sizeof spec, "deadpin");
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(bdev_rados_set_lock_seconds(3), COW_OK);
    pid_t pid = fork(); /* before this process opens anything */
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        struct cow_dev *d;
        cow_store *r;
        int created;
        if (read(go[0], &c, 1) != 1 ||
            bdev_rados_open(spec, NULL, NULL, BDEV_READONLY, &d, &created) != COW_OK ||
            cow_store_open_dev(spec, d, COW_OPEN_READONLY, 0, &r) != COW_OK ||
            write(ready[1], "r", 1) != 1)
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    struct cow_dev *d;
    cow_store *w;
    cow_file *f;
    int created;
    size_t n = 1u << 20;
    uint8_t *buf = malloc(n);
    struct cow_stats cs;
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created), COW_OK);
    ck_assert_int_eq(cow_store_open_dev(spec, d, 0, created, &w), COW_OK);
    cow_store_set_commit_interval(w, 0);
    ck_assert_int_eq(cow_file_open(w, "f", 1, &f), COW_OK);
    fill(buf, n, 1);
    ck_assert_int_eq(cow_file_write(f, buf, n, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(w), COW_OK);
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status), "the reader did not open: %d", status);
    uint64_t most = 0;
    int i;
    for (i = 0; i < 400; i++) { /* up to about 20 s; the lease is 3 s */
        fill(buf, n, 2 + (unsigned)i);
        ck_assert_int_eq(cow_file_write(f, buf, n, 0), COW_OK);
        ck_assert_int_eq(cow_store_commit(w), COW_OK);
        cow_store_stats(w, &cs);
        most = cs.held_bytes > most ? cs.held_bytes : most;
        if (most >= 3 * (uint64_t)n && cs.held_bytes < n)
            break;
        usleep(50000);
    }
    ck_assert_msg(most >= 3 * (uint64_t)n, "the dead reader's pin held nothing (%llu bytes)",
                  (unsigned long long)most);
    ck_assert_msg(cs.held_bytes < n, "still held %llu bytes after the lease ran out",
                  (unsigned long long)cs.held_bytes);
    fprintf(stderr, "dead_reader_pin_expires: %llu bytes held at most, let go after %d commits\n",
            (unsigned long long)most, i + 1);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(w), COW_OK);
    free(buf);
}
END_TEST

/* ---- SQL through cow-rados ---- */

static sqlite3 *db_open(const char *spec, const char *params, int flags)
{
    char uri[600];
    sqlite3 *db = NULL;
    snprintf(uri, sizeof uri, "file:%s?vfs=cow-rados%s%s", spec, *params ? "&" : "", params);
    int rc = sqlite3_open_v2(uri, &db, flags | SQLITE_OPEN_URI, NULL);
    ck_assert_msg(rc == SQLITE_OK, "open %s: %s", uri, db ? sqlite3_errmsg(db) : "?");
    return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : sqlite3_errstr(rc));
}

static long long one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    long long v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

START_TEST(sql_modes_snapshot_branch)
{
    char spec[300];
    ck_assert_int_eq(cowvfs_rados_register(), SQLITE_OK);
    spec_of(spec, sizeof spec, "sql");
    sqlite3 *db = db_open(spec, "", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    exec_ok(db, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;"
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    for (int i = 0; i < 50; i++)
        exec_ok(db, "INSERT INTO t(v) VALUES (randomblob(300))");
    exec_ok(db, "PRAGMA cow_snapshot('s1')");
    exec_ok(db, "PRAGMA journal_mode=WAL");
    for (int i = 0; i < 50; i++)
        exec_ok(db, "INSERT INTO t(v) VALUES (randomblob(300))");
    exec_ok(db, "PRAGMA cow_branch('b1')");
    exec_ok(db, "BEGIN; INSERT INTO t(v) SELECT v FROM t; COMMIT");
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t"), 200);
    sqlite3_close(db);

    db = db_open(spec, "", SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t"), 200);
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM cow_snapshots"), 2);
    sqlite3_close(db);
    db = db_open(spec, "snapshot=s1", SQLITE_OPEN_READONLY);
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t"), 50);
    sqlite3_close(db);
    db = db_open(spec, "branch=b1", SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t"), 100);
    exec_ok(db, "INSERT INTO t(v) VALUES ('branch only')");
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t"), 101);
    sqlite3_close(db);
    /* libcephsqlite's spelling, file:///POOL/NAME, and an explicit conf */
    char params[400];
    snprintf(params, sizeof params, "ceph_conf=%s", getenv("CEPH_CONF"));
    char spec3[320];
    snprintf(spec3, sizeof spec3, "///%s", spec);
    db = db_open(spec3, params, SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t"), 200);
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
}
END_TEST

/* ---- several clients ---- */

/* A child (a second client) that opens SPEC for writing, writes one byte to
 * READY_FD, and closes it when a byte arrives on GO_FD. */
static void holder_child(const char *spec, int ready_fd, int go_fd)
{
    struct cow_dev *d;
    cow_store *st;
    int created;
    char c = 'x';
    if (bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created) != COW_OK ||
        cow_store_open_dev(spec, d, 0, created, &st) != COW_OK)
        _exit(3);
    if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1)
        _exit(4);
    _exit(cow_store_close(st) == COW_OK ? 0 : 5);
}

START_TEST(second_writer_refused)
{
    char spec[300];
    int ready[2], go[2], status;
    char c;
    spec_of(spec, sizeof spec, "busy");
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork(); /* before this process opens anything */
    ck_assert_int_ne(pid, -1);
    if (pid == 0)
        holder_child(spec, ready[1], go[0]);
    ck_assert_int_eq(read(ready[0], &c, 1), 1);

    struct cow_dev *d;
    int created;
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, 0, &d, &created), COW_EBUSY);
    ck_assert_ptr_nonnull(strstr(cow_store_last_error(NULL), "another client"));
    ck_assert_int_eq(cowvfs_rados_register(), SQLITE_OK);
    char uri[400];
    sqlite3 *db = NULL;
    snprintf(uri, sizeof uri, "file:%s?vfs=cow-rados", spec);
    int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
    ck_assert_int_eq(rc, SQLITE_BUSY);
    sqlite3_close(db);
    /* a reader takes no lock */
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_READONLY, &d, &created), COW_OK);
    d->close(d);

    ck_assert_int_eq(write(go[1], "g", 1), 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* released cleanly: taken at once, nobody blocklisted */
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, 0, &d, &created), COW_OK);
    d->close(d);
}
END_TEST

/* The lock broken behind the device's back (as by an operator): the
 * renewal fails and the device fails every later write and flush. */
START_TEST(lost_lock_fails_writes)
{
    char spec[300];
    struct cow_dev *d;
    int created;
    uint8_t buf[4096] = {1};
    spec_of(spec, sizeof spec, "lost");
    ck_assert_int_eq(bdev_rados_set_lock_seconds(3), COW_OK);
    ck_assert_int_eq(bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created), COW_OK);
    ck_assert_int_eq(d->grow(d, 8192), COW_OK);
    ck_assert_int_eq(d->write(d, buf, sizeof buf, 0), COW_OK);
    ck_assert_int_eq(d->flush(d), COW_OK);
    rados_t cl;
    rados_ioctx_t io = inspect_io(&cl);
    char oid[400], tag[256], clients[256], cookies[256], addrs[256];
    size_t tl = sizeof tag, cl_len = sizeof clients, kl = sizeof cookies, al = sizeof addrs;
    int excl;
    snprintf(oid, sizeof oid, "%s.%016x", strchr(spec, '/') + 1, 0);
    ck_assert_int_eq(rados_list_lockers(io, oid, "cowvfs.lock", &excl, tag, &tl, clients, &cl_len,
                                        cookies, &kl, addrs, &al),
                     1);
    ck_assert_int_eq(rados_break_lock(io, oid, "cowvfs.lock", clients, cookies), 0);
    /* the next renewal (after 1 s) finds the lock gone */
    int rc = COW_OK;
    for (int i = 0; i < 40 && rc == COW_OK; i++) {
        usleep(100000);
        rc = d->write(d, buf, sizeof buf, 4096);
        if (rc == COW_OK)
            rc = d->flush(d);
    }
    ck_assert(rc == COW_EIO_WRITE || rc == COW_EIO_FLUSH);
    ck_assert_ptr_nonnull(strstr(cow_store_last_error(NULL), "lock"));
    ck_assert_int_eq(d->flush(d), COW_EIO_FLUSH);
    d->close(d);
    rados_ioctx_destroy(io);
    rados_shutdown(cl);
}
END_TEST

/* The writer killed (kill -9) while committing: the next writer is refused
 * while the dead one's lock lasts, then blocklists it and takes over;
 * every acknowledged row is there. */
START_TEST(killed_writer_taken_over)
{
    char spec[300];
    int acks[2];
    spec_of(spec, sizeof spec, "killed");
    ck_assert_int_eq(pipe(acks), 0);
    pid_t pid = fork(); /* before this process opens anything */
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        if (bdev_rados_set_lock_seconds(4) != COW_OK || cowvfs_rados_register() != SQLITE_OK)
            _exit(3);
        sqlite3 *db;
        char uri[400];
        snprintf(uri, sizeof uri, "file:%s?vfs=cow-rados", spec);
        if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                            NULL) != SQLITE_OK ||
            sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                             "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(4);
        for (int i = 1;; i++) {
            char sql[128];
            snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d, randomblob(2000))", i);
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
                _exit(5);
            if (write(acks[1], &i, sizeof i) != sizeof i) /* acknowledged */
                _exit(6);
        }
    }
    close(acks[1]);
    int last = 0, v;
    while (last < 40 && read(acks[0], &v, sizeof v) == sizeof v)
        last = v;
    ck_assert_int_eq(last, 40);
    /* the holder's address, to find it blocklisted later */
    rados_t cl;
    rados_ioctx_t io = inspect_io(&cl);
    char oid[400], tag[256], clients[256], cookies[256], addrs[256];
    size_t tl = sizeof tag, cl_len = sizeof clients, kl = sizeof cookies, al = sizeof addrs;
    int excl;
    snprintf(oid, sizeof oid, "%s.%016x", strchr(spec, '/') + 1, 0);
    ck_assert_int_eq(rados_list_lockers(io, oid, "cowvfs.lock", &excl, tag, &tl, clients, &cl_len,
                                        cookies, &kl, addrs, &al),
                     1);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    while (read(acks[0], &v, sizeof v) == sizeof v) /* acknowledged before it died */
        last = v;

    ck_assert_int_eq(cowvfs_rados_register(), SQLITE_OK);
    char uri[400];
    snprintf(uri, sizeof uri, "file:%s?vfs=cow-rados", spec);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
    ck_assert_int_eq(rc, SQLITE_BUSY); /* its lock still lasts (4 s) */
    sqlite3_close(db);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100 && rc == SQLITE_BUSY; i++) {
        usleep(200000);
        db = NULL;
        rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
        if (rc != SQLITE_OK)
            sqlite3_close(db);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_eq(rc, SQLITE_OK);
    fprintf(stderr, "killed_writer_taken_over: %d rows acknowledged, taken over after %.1f s\n",
            last, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    /* every acknowledged row, in order */
    ck_assert_int_ge(one_int(db, "SELECT count(*) FROM t"), last);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE id <= %d", last);
    ck_assert_int_eq(one_int(db, sql), last);
    exec_ok(db, "INSERT INTO t VALUES (1000000, 'new writer')");
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
    /* the dead holder is on the blocklist */
    const char *cmd[] = {"{\"prefix\": \"osd blocklist ls\", \"format\": \"json\"}"};
    char *outbuf = NULL, *outs = NULL;
    size_t outlen = 0, outslen = 0;
    ck_assert_int_eq(rados_mon_command(cl, cmd, 1, "", 0, &outbuf, &outlen, &outs, &outslen), 0);
    char *list = strndup(outbuf ? outbuf : "", outlen);
    const char *bare = strncmp(addrs, "v1:", 3) == 0 || strncmp(addrs, "v2:", 3) == 0 ? addrs + 3
                                                                                     : addrs;
    ck_assert_msg(strstr(list, bare) != NULL, "%s not in the blocklist: %s", bare, list);
    free(list);
    rados_buffer_free(outbuf);
    rados_buffer_free(outs);
    rados_ioctx_destroy(io);
    rados_shutdown(cl);
}
END_TEST

/* Another client reads a snapshot, without the lock, while the writer
 * goes on changing the live database (and so freeing and reusing what the
 * live database held): the snapshot reads the same, query after query. */
START_TEST(snapshot_reader_beside_writer)
{
    char spec[300];
    int ready[2], stop[2], status;
    char c;
    spec_of(spec, sizeof spec, "snapread");
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(stop), 0);
    pid_t pid = fork(); /* before this process opens anything */
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        sqlite3 *db;
        char uri[400];
        struct pollfd pf = {.fd = stop[0], .events = POLLIN};
        snprintf(uri, sizeof uri, "file:%s?vfs=cow-rados", spec);
        if (cowvfs_rados_register() != SQLITE_OK ||
            sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                            NULL) != SQLITE_OK ||
            sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                             "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
                             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n "
                             "WHERE i<2000) INSERT INTO t(v) SELECT randomblob(500) FROM n;"
                             "PRAGMA cow_snapshot('s')",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(3);
        if (write(ready[1], "r", 1) != 1)
            _exit(4);
        while (poll(&pf, 1, 0) == 0)
            if (sqlite3_exec(db, "UPDATE t SET v=randomblob(500) WHERE id % 7 = abs(random()) % 7;"
                                 "PRAGMA wal_checkpoint(TRUNCATE)",
                             NULL, NULL, NULL) != SQLITE_OK)
                _exit(5);
        _exit(sqlite3_close(db) == SQLITE_OK ? 0 : 6);
    }
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    ck_assert_int_eq(cowvfs_rados_register(), SQLITE_OK);
    long long sum0 = -1;
    /* one connection open throughout (reading through a tiny page cache),
     * and a new one each time */
    sqlite3 *lasting = db_open(spec, "snapshot=s", SQLITE_OPEN_READONLY);
    exec_ok(lasting, "PRAGMA cache_size=2");
    for (int i = 0; i < 10; i++) {
        sqlite3 *db = db_open(spec, "snapshot=s", SQLITE_OPEN_READONLY);
        const char *q = "SELECT sum(length(v) + id + unicode(v)) FROM t";
        long long sum = one_int(db, q);
        if (sum0 < 0)
            sum0 = sum;
        ck_assert_int_eq(sum, sum0);
        ck_assert_int_eq(one_int(lasting, q), sum0);
        ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t"), 2000);
        sqlite3_close(db);
        usleep(300000);
    }
    sqlite3_close(lasting);
    ck_assert_int_eq(write(stop[1], "s", 1), 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the writer failed: %d", status);
}
END_TEST

/* An OSD killed (kill -9) and restarted while a client commits: its
 * writes wait and go on, nothing acknowledged is lost.  Needs the cluster
 * of test/rados/run.sh (bluestore: memstore loses everything at a
 * restart), found by CEPH_LOCAL_DIR; run from the repository root. */
START_TEST(osd_restart_under_load)
{
    char spec[300], cmd[600];
    int acks[2], stop[2], v, last = 0, status;
    const char *dir = getenv("CEPH_LOCAL_DIR");
    ck_assert_msg(dir != NULL, "CEPH_LOCAL_DIR unset: run through make test-rados");
    snprintf(cmd, sizeof cmd, "grep -q 'objectstore = bluestore' '%s/ceph.conf'", dir);
    ck_assert_msg(system(cmd) == 0, "the test cluster is not on bluestore");
    spec_of(spec, sizeof spec, "osdrestart");
    ck_assert_int_eq(pipe(acks), 0);
    ck_assert_int_eq(pipe(stop), 0);
    pid_t pid = fork(); /* before this process opens anything */
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        sqlite3 *db;
        char uri[400];
        struct pollfd pf = {.fd = stop[0], .events = POLLIN};
        snprintf(uri, sizeof uri, "file:%s?vfs=cow-rados", spec);
        if (cowvfs_rados_register() != SQLITE_OK ||
            sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                            NULL) != SQLITE_OK ||
            sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                             "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(3);
        for (int i = 1; poll(&pf, 1, 0) == 0; i++) {
            char sql[128];
            snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d, randomblob(3000))", i);
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
                _exit(4);
            if (write(acks[1], &i, sizeof i) != sizeof i)
                _exit(5);
        }
        _exit(sqlite3_close(db) == SQLITE_OK ? 0 : 6);
    }
    close(acks[1]);
    while (last < 20 && read(acks[0], &v, sizeof v) == sizeof v)
        last = v;
    ck_assert_int_eq(last, 20);
    snprintf(cmd, sizeof cmd, "tools/ceph-local.sh restart-osd '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    int at_restart = last;
    while (last < at_restart + 20 && read(acks[0], &v, sizeof v) == sizeof v)
        last = v;
    ck_assert_int_eq(last, at_restart + 20); /* it went on after the restart */
    ck_assert_int_eq(write(stop[1], "s", 1), 1);
    while (read(acks[0], &v, sizeof v) == sizeof v)
        last = v;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the writer failed: %d", status);
    ck_assert_int_eq(cowvfs_rados_register(), SQLITE_OK);
    sqlite3 *db = db_open(spec, "", SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t"), last);
    ck_assert_int_eq(one_int(db, "SELECT max(id) FROM t"), last);
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
    fprintf(stderr, "osd_restart_under_load: %d rows, %d before the restart\n", last,
            at_restart);
}
END_TEST

/* ---- the model test ---- */

/* The model test (model_run.c) through cow-rados: snapshots, branches,
 * restores and deletes by pragma, C API and container "path" (POOL/NAME),
 * ATTACH, several connections, balance and handoff, against the model. */
START_TEST(model)
{
    char spec[300];
    struct model_target t = {
        .vfs = COWVFS_RADOS_NAME, .fsck_clean = rados_fsck_clean, .nops = RADOS_MODEL_OPS};
    ck_assert_int_eq(cowvfs_rados_register(), SQLITE_OK);
    t.path = spec_of(spec, sizeof spec, "model");
    model_run(&t);
    ck_assert_int_eq(bdev_rados_remove(spec, NULL, NULL), COW_OK);
}
END_TEST

/* SQLite's error log on stderr for damage and I/O errors (the store's
 * messages behind the code), so that a failure says more than
 * "malformed"; the busy and cannot-open errors the cases provoke are left
 * out. */
static void log_cb(void *arg, int code, const char *msg)
{
    (void)arg;
    int c = code & 0xff;
    if (c == SQLITE_CORRUPT || c == SQLITE_IOERR || c == SQLITE_NOTADB)
        fprintf(stderr, "sqlite log %d: %s\n", code, msg);
}

int main(void)
{
    sqlite3_config(SQLITE_CONFIG_LOG, log_cb, NULL);
    pool = getenv("COW_RADOS_POOL");
    if (!pool || !getenv("CEPH_CONF")) {
        fprintf(stderr, "check_rados: no cluster (CEPH_CONF and COW_RADOS_POOL unset): run "
                        "make test-rados, which starts one (tools/ceph-local.sh)\n");
        return 2;
    }
    Suite *s = suite_create("rados");
    struct {
        const char *name;
        const TTest *t;
        int timeout; /* seconds */
    } cases[] = {
        {"dev_roundtrip", dev_roundtrip, 120},
        {"dev_bad_names_and_header", dev_bad_names_and_header, 120},
        {"store_reopen", store_reopen, 120},
        {"reader_pin_holds_space", reader_pin_holds_space, 120},
        {"dead_reader_pin_expires", dead_reader_pin_expires, 120},
        {"takeover_holds_for_readers", takeover_holds_for_readers, 120},
        {"sql_modes_snapshot_branch", sql_modes_snapshot_branch, 120},
        {"second_writer_refused", second_writer_refused, 120},
        {"lost_lock_fails_writes", lost_lock_fails_writes, 120},
        {"killed_writer_taken_over", killed_writer_taken_over, 120},
        {"snapshot_reader_beside_writer", snapshot_reader_beside_writer, 120},
        {"osd_restart_under_load", osd_restart_under_load, 120},
        {"model", model, 600},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, cases[i].timeout);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    rados_vfs_cases(s);
    rados_store_cases(s);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nfailed = srunner_ntests_failed(sr);
    int nrun = srunner_ntests_run(sr);
    srunner_free(sr);
    if (nrun == 0) {
        fprintf(stderr, "check_rados: no test ran (CK_RUN_CASE names no case?)\n");
        return 2;
    }
    return nfailed ? 1 : 0;
}
