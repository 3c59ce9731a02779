/*
 * check_abort.c - a failed operation fails itself only (issue 12, part 2).
 *
 * What other handles wrote and were told succeeded (dirty pages, ordered
 * extents completed into the running transaction, new sizes) stays when
 * another operation fails, or the whole store stops (COW_EFAILED for every
 * handle) and reopening finds everything a sync made durable.  Never is it
 * silently dropped.  The failures are injected on the in-memory device
 * (test/testutil.c: one chosen read, write or flush fails with a chosen
 * code).  Each test keeps a model of every file (bytes and size) and
 * compares the store with it: through the handles after the failure, and
 * after a reopen of the durable image (with fsck).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cowvfs.h"
#include "inject.h"
#include "commit.h"
#include "store_int.h"
#include "testutil.h"

#define BLK COW_BLOCK_SIZE

/* A file and what it must hold. */
struct mfile {
    const char *name;
    cow_file *f;
    uint8_t *data;
    size_t size;
};

static void mf_write(struct mfile *m, int byte, size_t len, size_t off)
{
    uint8_t *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    memset(buf, byte, len);
    ck_assert_int_eq(cow_file_write(m->f, buf, len, off), COW_OK);
    if (off + len > m->size) {
        m->data = realloc(m->data, off + len);
        ck_assert_ptr_nonnull(m->data);
        memset(m->data + m->size, 0, off + len - m->size);
        m->size = off + len;
    }
    memcpy(m->data + off, buf, len);
    free(buf);
}

/* The file holds exactly the model: same size, same bytes. */
static void mf_check(const struct mfile *m)
{
    uint64_t size = 0;
    ck_assert_int_eq(cow_file_size(m->f, &size), COW_OK);
    ck_assert_msg(size == m->size, "%s: size %llu, expected %zu", m->name,
                  (unsigned long long)size, m->size);
    uint8_t *buf = malloc(m->size + 1);
    size_t n = 0;
    ck_assert_int_eq(cow_file_read(m->f, buf, m->size, 0, &n), COW_OK);
    ck_assert_msg(n == m->size && memcmp(buf, m->data, m->size) == 0,
                  "%s: the bytes differ from what was written", m->name);
    free(buf);
}

/* Opens the crash image of DEV (what a power loss now leaves) as a new
 * store, checks each of the N files against its model there (reopened by
 * name), and fscks it. */
static void check_reopened(struct cow_dev *dev, struct mfile *v, size_t n)
{
    size_t len;
    uint8_t *img = memdev_crash_image(dev, &len);
    test_fsck_image(img, len);
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem2", memdev_from_image(img, len, NULL), 0, 0, &st),
                     COW_OK);
    for (size_t i = 0; i < n; i++) {
        struct mfile r = v[i];
        ck_assert_int_eq(cow_file_open(st, v[i].name, 0, &r.f), COW_OK);
        mf_check(&r);
        cow_file_close(r.f);
    }
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(img);
}

/*
 * The write-ahead log and the database of a WAL-mode database, as SQLite
 * leaves them mid-transaction: the WAL has a synced frame, a frame whose
 * ordered extent completed into the running transaction, and a dirty page;
 * the database has a completed extent and a dirty page.
 */
static void buffered_state(cow_store *st, struct mfile *wal, struct mfile *db)
{
    ck_assert_int_eq(cow_file_open(st, wal->name, 1, &wal->f), COW_OK);
    ck_assert_int_eq(cow_file_open(st, db->name, 1, &db->f), COW_OK);
    mf_write(db, 'd', 3 * BLK, 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    mf_write(wal, 'a', BLK, 0);
    ck_assert_int_eq(cow_file_sync(wal->f), COW_OK);
    mf_write(wal, 'b', BLK, BLK);
    mf_write(db, 'e', 100, 5000);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK); /* in the trees */
    mf_write(wal, 'c', BLK, 2 * BLK);                 /* dirty pages */
    mf_write(db, 'f', 10, 9000);
}

/* A store on a new memdev (*DEV, *CTL; no background commits) holding
 * buffered_state()'s two files, WAL "db-wal" and DB "db". */
static cow_store *buffered_store(struct cow_dev **dev, struct memdev_ctl **ctl,
                                 struct mfile *wal, struct mfile *db)
{
    cow_store *st = memdev_store(dev, ctl);
    *wal = (struct mfile){.name = "db-wal"};
    *db = (struct mfile){.name = "db"};
    buffered_state(st, wal, db);
    return st;
}

/* DST: a copy of the model SRC (its own data; free DST->data). */
static void mf_copy(struct mfile *dst, const struct mfile *src)
{
    *dst = *src;
    dst->data = malloc(src->size);
    memcpy(dst->data, src->data, src->size);
}

/* The end of a test on buffered_store()'s files whose store went on: the
 * crash image of DEV holds both as their models say, then the files and ST
 * close (COW_OK) and the models are freed. */
static void close_checked(cow_store *st, struct cow_dev *dev, struct mfile *wal,
                          struct mfile *db)
{
    struct mfile v[2] = {*wal, *db};
    check_reopened(dev, v, 2);
    cow_file_close(wal->f);
    cow_file_close(db->f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(wal->data);
    free(db->data);
}

/*
 * A commit whose tree block write fails (an I/O error, or a full file
 * system under a sparse container) fails alone: both files keep every
 * byte, the next commit succeeds, and the durable state has it all.
 * cow_subvol_delete commits without writing back first, so dirty pages of
 * both files are there when it fails.  Failed before the fix: the abort
 * reloaded the last commit and replayed the log, and the WAL went from
 * 12288 to 4096 bytes under its handle.
 */
static void commit_write_fails_alone(int fail_rc)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, &ctl);
    struct mfile wal = {.name = "db-wal"}, db = {.name = "db"};
    ck_assert_int_eq(cow_subvol_create(st, "s", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    buffered_state(st, &wal, &db);
    ctl->fail_rc = fail_rc;
    ctl->fail_write_at = 1; /* the commit's first tree block write */
    ck_assert_int_eq(cow_subvol_delete(st, "s"), fail_rc);
    ck_assert_int_eq(ctl->fail_write_at, 0);
    mf_check(&wal);
    mf_check(&db);
    /* the store goes on: more writes, and commits that succeed */
    mf_write(&wal, 'g', 50, 3 * BLK);
    ck_assert_int_eq(cow_subvol_delete(st, "s"), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    mf_check(&wal);
    mf_check(&db);
    close_checked(st, dev, &wal, &db);
}

START_TEST(abort_commit_eio_keeps_others)
{
    commit_write_fails_alone(COW_EIO_WRITE);
}
END_TEST

START_TEST(abort_commit_enospc_keeps_others)
{
    commit_write_fails_alone(COW_ENOSPC);
}
END_TEST

/*
 * The same with the failure on a later write of the commit's tree blocks:
 * the runs written before it must leave the one-flush commit list (the
 * retry writes them again, changed meanwhile), or the durable commit would
 * look torn at the next open and be passed over.
 */
START_TEST(abort_commit_partial_write_retried)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    struct mfile wal, db;
    cow_store *st = buffered_store(&dev, &ctl, &wal, &db);
    /* enough new tree blocks for several coalesced writes */
    size_t ndirty = 0;
    for (int i = 0; ndirty < 150; i++) {
        char name[32];
        cow_file *f;
        snprintf(name, sizeof name, "f%04d", i);
        ck_assert_int_eq(cow_file_open(st, name, 1, &f), COW_OK);
        cow_file_close(f);
        cow_mutex_lock(&st->lock);
        ndirty = st->cache.ndirty;
        cow_mutex_unlock(&st->lock);
    }
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    ctl->fail_write_at = 2; /* the first 64 blocks are written */
    ck_assert_int_eq(cow_store_commit(st), COW_EIO_WRITE);
    ck_assert_int_eq(ctl->fail_write_at, 0);
    mf_check(&wal);
    mf_check(&db);
    mf_write(&db, 'k', 3 * BLK, 0); /* the blocks written change */
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_mutex_lock(&st->lock);
    ck_assert_int_eq(st->last_one_flush, 1);
    cow_mutex_unlock(&st->lock);
    close_checked(st, dev, &wal, &db);
}
END_TEST

/*
 * A commit that cannot grow the container for its own tree updates fails
 * alone too: the metadata space is used up first (a snapshot per round
 * makes the next commit copy more paths), then the device refuses to grow.
 */
START_TEST(abort_commit_no_room_keeps_others)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    struct mfile wal, db;
    cow_store *st = buffered_store(&dev, &ctl, &wal, &db);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    /* every metadata block in use but the commit's reserve: its
     * alloc_reserve must grow, which the device refuses */
    cow_mutex_lock(&st->lock);
    uint64_t before = st->total_bytes;
    ctl->fail_grow = 1;
    int rc = COW_OK;
    size_t nhold = 0, chold = 1024;
    uint64_t *hold = malloc(chold * sizeof *hold);
    while (rc == COW_OK) {
        uint64_t at, got;
        rc = alloc_blocks(st, 1, 1, &at, &got);
        if (rc == COW_OK) {
            if (nhold == chold)
                hold = realloc(hold, (chold *= 2) * sizeof *hold);
            hold[nhold++] = at;
        }
    }
    ck_assert_int_eq(rc, COW_ENOSPC);
    rc = commit_transaction(st, 1);
    ck_assert_int_eq(rc, COW_ENOSPC);
    ck_assert_int_eq(st->failed, 0);
    for (size_t i = 0; i < nhold; i++)
        alloc_unalloc(st, hold[i], BLK);
    free(hold);
    ck_assert_uint_eq(st->total_bytes, before);
    cow_mutex_unlock(&st->lock); /* the space held back is free again */
    mf_check(&wal);
    mf_check(&db);
    ctl->fail_grow = 0;
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    close_checked(st, dev, &wal, &db);
}
END_TEST

struct blist {
    uint64_t v[64];
    size_t n;
};

static int collect_block(cow_store *st, void *arg, struct eb *e)
{
    (void)st;
    struct blist *bl = arg;
    ck_assert(!e->dirty && bl->n < 64);
    bl->v[bl->n++] = e->bytenr;
    return COW_OK;
}

/*
 * A failure in the middle of a tree update (here a read error met while an
 * ordered extent of another file completes into the csum tree) stops the
 * store: every handle gets COW_EFAILED, none reads the last commit's bytes
 * as if its writes had never happened; the reopened container holds what
 * the syncs made durable.  Failed before the fix: the abort dropped the
 * other file's dirty pages and its read returned the old bytes.
 */
START_TEST(abort_tree_update_failure_stops_store)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    struct mfile wal, db;
    cow_store *st = buffered_store(&dev, &ctl, &wal, &db);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t len;
    uint8_t *img = memdev_crash_image(dev, &len);
    cow_file_close(wal.f);
    cow_file_close(db.f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    /* reopened: the tree blocks are read as they are needed */
    dev = memdev_from_image(img, len, &ctl);
    free(img);
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 0, &st), COW_OK);
    cow_store_set_commit_interval(st, 0);
    ck_assert_int_eq(cow_file_open(st, wal.name, 0, &wal.f), COW_OK);
    ck_assert_int_eq(cow_file_open(st, db.name, 0, &db.f), COW_OK);
    struct mfile durable[2];
    mf_copy(&durable[0], &wal);
    mf_copy(&durable[1], &db);
    /* whole blocks past the ends: nothing is read for them */
    mf_write(&wal, 'h', BLK, 3 * BLK); /* buffered in the WAL */
    mf_write(&db, 'i', BLK, 4 * BLK);
    /* the writeback: the first ordered extent completes into the csum
     * tree (after a change to the extent refs), whose blocks are read
     * again from the device; that read fails */
    cow_mutex_lock(&st->lock);
    struct blist bl = {0};
    ck_assert_int_eq(bt_walk_blocks(st, &st->csum_tree, collect_block, &bl), COW_OK);
    for (size_t i = 0; i < bl.n; i++)
        cache_drop(&st->cache, bl.v[i]);
    cow_mutex_unlock(&st->lock);
    ctl->fail_read_at = 1;
    ck_assert_int_eq(cow_store_writeback(st), COW_EIO_READ);
    /* stopped, and every handle says so */
    uint8_t b[16];
    size_t n;
    ck_assert_int_eq(cow_file_read(wal.f, b, sizeof b, 3 * BLK, &n), COW_EFAILED);
    ck_assert_int_eq(cow_file_read(db.f, b, sizeof b, 0, &n), COW_EFAILED);
    ck_assert_int_eq(cow_file_write(wal.f, "x", 1, 0), COW_EFAILED);
    ck_assert_int_eq(cow_file_sync(wal.f), COW_EFAILED);
    ck_assert_int_eq(cow_store_commit(st), COW_EFAILED);
    check_reopened(dev, durable, 2);
    cow_file_close(wal.f);
    cow_file_close(db.f);
    ck_assert_int_eq(cow_store_close(st), COW_EFAILED);
    free(wal.data);
    free(db.data);
    free(durable[0].data);
    free(durable[1].data);
}
END_TEST

/*
 * A large commit (too many blocks for the superblock's list) flushes its
 * tree blocks before the superblock; when that flush fails, what reached
 * the device is unknown: the store stops, and the durable state is the
 * last commit and log.  Failed before the fix: the abort reloaded the last
 * commit and the handles read it as if their writes had never happened.
 */
START_TEST(abort_flush_failure_stops_store)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    struct mfile wal, db;
    cow_store *st = buffered_store(&dev, &ctl, &wal, &db);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    struct mfile durable[2];
    mf_copy(&durable[0], &wal);
    mf_copy(&durable[1], &db);
    /* 2,500 small files: more tree blocks than a one-flush commit lists */
    for (int i = 0; i < 2500; i++) {
        char name[32];
        cow_file *f;
        snprintf(name, sizeof name, "f%04d", i);
        ck_assert_int_eq(cow_file_open(st, name, 1, &f), COW_OK);
        ck_assert_int_eq(cow_file_write(f, name, 5, (uint64_t)i * 512), COW_OK);
        cow_file_close(f);
    }
    mf_write(&wal, 'j', BLK, BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    ctl->fail_flush_at = 1;
    int rc = cow_store_commit(st);
    ck_assert_int_eq(rc, COW_EIO_FLUSH);
    ck_assert_int_eq(ctl->fail_flush_at, 0);
    ck_assert_int_eq(st->last_one_flush, 1); /* the last commit was a small one */
    uint8_t b[16];
    size_t n;
    ck_assert_int_eq(cow_file_read(wal.f, b, sizeof b, 0, &n), COW_EFAILED);
    ck_assert_int_eq(cow_file_read(db.f, b, sizeof b, 0, &n), COW_EFAILED);
    check_reopened(dev, durable, 2);
    cow_file_close(wal.f);
    cow_file_close(db.f);
    cow_store_close(st);
    free(wal.data);
    free(db.data);
    free(durable[0].data);
    free(durable[1].data);
}
END_TEST

/* ---- truncate on a full disk ---- */

static void mf_truncate(struct mfile *m, size_t size)
{
    ck_assert_int_eq(cow_file_truncate(m->f, size), COW_OK);
    if (size > m->size) {
        m->data = realloc(m->data, size);
        memset(m->data + m->size, 0, size - m->size);
    }
    m->size = size;
}

/*
 * A shrinking truncate to a size inside a block needs no space: on a full
 * disk it succeeds.  The bytes it leaves past the new end on the device
 * read as zeros once the file grows again, by truncate or by a write past
 * the end, before and after a commit and a reopen.  Failed before the fix
 * with COW_ENOSPC (the truncate wrote zeros over the tail, a new block).
 */
START_TEST(abort_shrink_on_full_disk)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, &ctl);
    struct mfile a = {.name = "a"}, b = {.name = "b"};
    ck_assert_int_eq(cow_file_open(st, a.name, 1, &a.f), COW_OK);
    ck_assert_int_eq(cow_file_open(st, b.name, 1, &b.f), COW_OK);
    mf_write(&a, 'a', 6 * BLK + 300, 0);
    mf_write(&b, 'b', 6 * BLK + 300, 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    /* the disk is full: no group can be added, the free data space used */
    ctl->fail_grow = 1;
    cow_file *fill;
    ck_assert_int_eq(cow_file_open(st, "fill", 1, &fill), COW_OK);
    uint8_t blk[BLK];
    memset(blk, 'f', sizeof blk);
    int rc = COW_OK;
    for (uint64_t i = 0; rc == COW_OK; i++)
        rc = cow_file_write(fill, blk, sizeof blk, i * BLK);
    ck_assert_int_eq(rc, COW_ENOSPC);
    mf_truncate(&a, 2 * BLK + 10); /* the last block clean on the device */
    mf_truncate(&b, 3 * BLK + 7);
    mf_check(&a);
    mf_check(&b);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    /* room again: grow both, by truncate and by a write past the end */
    ctl->fail_grow = 0;
    mf_truncate(&a, 3 * BLK + 5);
    mf_write(&b, 'c', 10, 5 * BLK);
    mf_check(&a);
    mf_check(&b);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    struct mfile v[2] = {a, b};
    check_reopened(dev, v, 2);
    /* a shrink and grow inside the running transaction, cached pages */
    mf_truncate(&a, BLK + 1);
    mf_truncate(&a, 2 * BLK);
    mf_check(&a);
    cow_file_close(fill);
    cow_file_close(a.f);
    cow_file_close(b.f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(a.data);
    free(b.data);
}
END_TEST

/* ---- the page cache's hot paths (a measurement, printed) ---- */

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A file with many cached pages (pinned by xFetch, as SQLite's memory-map
 * mode leaves them) and a small write synced, then truncated by a block, in
 * a loop: each writeback and truncate used to visit every cached page
 * (waiting for redirtied pages, gathering the dirty ones, punching past the
 * end); now they visit the dirty pages or the indexes they drop.  Prints
 * the time per sync and per truncate; checks the contents and, in debug
 * builds, every count at each commit.
 */
START_TEST(abort_pcache_hot_paths)
{
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, NULL);
    struct mfile a = {.name = "a"};
    ck_assert_int_eq(cow_file_open(st, a.name, 1, &a.f), COW_OK);
    enum { PINNED = 10000, LOOPS = 1000 };
    mf_truncate(&a, (size_t)(PINNED + LOOPS + 1) * BLK); /* a hole */
    mf_write(&a, 'p', BLK, 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    void **pins = calloc(PINNED, sizeof *pins);
    for (int i = 0; i < PINNED; i++) {
        ck_assert_int_eq(cow_file_fetch(a.f, (uint64_t)i * BLK, 16, &pins[i]), COW_OK);
        ck_assert_ptr_nonnull(pins[i]);
    }
    double t0 = now_sec();
    for (int i = 0; i < LOOPS; i++) {
        mf_write(&a, 'a' + i % 26, 100, (size_t)(PINNED + i % 16) * BLK);
        ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    }
    double t1 = now_sec();
    for (int i = 0; i < LOOPS; i++) {
        ck_assert_int_eq(cow_file_truncate(a.f, a.size - BLK), COW_OK);
        a.size -= BLK;
    }
    double t2 = now_sec();
    fprintf(stderr, "abort_pcache_hot_paths: %d pinned pages: %.1f us a write and writeback, "
                    "%.1f us a truncate\n",
            PINNED, (t1 - t0) * 1e6 / LOOPS, (t2 - t1) * 1e6 / LOOPS);
    for (int i = 0; i < PINNED; i++)
        cow_file_unfetch(a.f, (uint64_t)i * BLK, pins[i]);
    free(pins);
    mf_check(&a);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_file_close(a.f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(a.data);
}
END_TEST

/* ---- restore against a concurrent delete of its target ---- */

struct restore_arg {
    cow_store *st;
    int rc;
};

static void *do_restore(void *p)
{
    struct restore_arg *a = p;
    a->rc = cow_subvol_restore(a->st, "br", "snap");
    return NULL;
}

/*
 * cow_subvol_restore lets store->lock go while it takes the invalidate
 * locks of the target's open files; a delete of the target then must make
 * the restore fail with COW_ENOENT, the store going on and fsck clean.
 * Failed before the fix: the restore went on with the dead target, dropped
 * its tree a second time and stopped the store with a spurious
 * COW_ECORRUPT (or, before the store stopped on such failures, left a
 * reference to the source's tree that nothing held).
 */
START_TEST(abort_restore_target_deleted_meanwhile)
{
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, NULL);
    struct mfile db = {.name = "db"};
    ck_assert_int_eq(cow_file_open(st, db.name, 1, &db.f), COW_OK);
    mf_write(&db, 'a', 2 * BLK, 0);
    ck_assert_int_eq(cow_subvol_create(st, "snap", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    mf_write(&db, 'b', BLK, 0);
    ck_assert_int_eq(cow_subvol_create(st, "br", COW_SUBVOL_BRANCH, NULL), COW_OK);
    ck_assert_int_eq(cow_inject_arm("restore:relock", COW_INJECT_NOT_ME, 0, 1), 0);
    struct restore_arg a = {st, 1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, do_restore, &a), 0);
    ck_assert_int_eq(cow_inject_wait("restore:relock", 1, 10000), 0);
    ck_assert_int_eq(cow_subvol_delete(st, "br"), COW_OK);
    cow_inject_release("restore:relock");
    pthread_join(t, NULL);
    cow_inject_reset();
    ck_assert_int_eq(a.rc, COW_ENOENT);
    mf_check(&db);
    mf_write(&db, 'c', 10, 100);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    struct mfile v[1] = {db};
    check_reopened(dev, v, 1);
    cow_file_close(db.f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(db.data);
}
END_TEST

/* ---- through SQLite: the cow VFS on an in-memory device ---- */

/* The container of the SQLite tests: a memdev that outlives each store
 * opened on it (sq_opener hands out a fwd_dev). */
static struct {
    char *dir, *path;
    struct cow_dev *mem;
    struct memdev_ctl *ctl;
} sq;

/* bdev_file_open()'s test hook: sq.path is the memdev. */
static int sq_opener(void *arg, const char *path, int flags, struct cow_dev **out, int *created)
{
    (void)arg;
    (void)flags;
    if (strcmp(path, sq.path) != 0)
        return BDEV_TEST_DECLINE;
    uint64_t size = 0;
    sq.mem->size(sq.mem, &size);
    *out = fwd_dev_new(sq.mem, NULL, NULL);
    ck_assert_ptr_nonnull(*out);
    *created = size == 0;
    return COW_OK;
}

static void sq_setup(void)
{
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
    sq.dir = test_mkdtemp();
    sq.path = sqlite3_mprintf("%s/t.db", sq.dir);
    sq.mem = memdev_new(&sq.ctl);
    /* the VFS knows a container by its file's identity (stat): a
     * placeholder; the bytes are the memdev's */
    test_write_file(sq.path, NULL, 0);
    bdev_set_test_opener(sq_opener, NULL);
}

static void sq_teardown(void)
{
    bdev_set_test_opener(NULL, NULL);
    sq.mem->close(sq.mem);
    sqlite3_free(sq.path);
    test_rmdir(sq.dir);
    memset(&sq, 0, sizeof sq);
}

static sqlite3 *sq_open(void)
{
    sqlite3 *db = NULL;
    char *uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0", sq.path);
    int rc = sqlite3_open_v2(uri, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    ck_assert_msg(rc == SQLITE_OK, "open: %s", db ? sqlite3_errmsg(db) : "?");
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static sqlite3 *sq_open_path(const char *path)
{
    sqlite3 *db = NULL;
    char *uri = sqlite3_mprintf("file:%s?vfs=cow", path);
    int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    ck_assert_msg(rc == SQLITE_OK, "open %s: %s", path, db ? sqlite3_errmsg(db) : "?");
    return db;
}

/* The first column of SQL's first row, as text (static: the next call
 * replaces it). */
static const char *sq_text(sqlite3 *db, const char *sql)
{
    static char out[256];
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

static void sq_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %d %s", sql, rc, err ? err : "");
    sqlite3_free(err);
}

static sqlite3_int64 sq_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void sq_check(sqlite3 *db, sqlite3_int64 rows, sqlite3_int64 sum)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    ck_assert_int_eq(sq_int(db, "SELECT count(*) FROM t"), rows);
    ck_assert_int_eq(sq_int(db, "SELECT sum(id) + sum(length(v)) FROM t"), sum);
}

#define SQ_SUM_ALL (400 * 401 / 2 + 50 * 300 + 300 * 500 + 50 * 700)
#define SQ_SUM_50 (50 * 51 / 2 + 50 * 300)

/* Connections A and B on a new container in JOURNAL_MODE; A committed 50
 * rows and a snapshot 's', and is inside a write transaction of 300 more
 * whose pages spilled (WAL frames, or the rollback journal and database
 * pages, buffered in the store). */
static void sq_scene(const char *journal_mode, sqlite3 **a, sqlite3 **b)
{
    sq_setup();
    *a = sq_open();
    char sql[256];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", journal_mode);
    sq_exec(*a, sql);
    sq_exec(*a, "PRAGMA cache_size=5; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<50)"
                " INSERT INTO t SELECT i, randomblob(300) FROM c;"
                "PRAGMA cow_snapshot('s')");
    *b = sq_open();
    ck_assert_int_eq(sq_int(*b, "SELECT count(*) FROM t"), 50);
    sq_exec(*a, "BEGIN;"
                "WITH RECURSIVE c(i) AS (SELECT 51 UNION ALL SELECT i+1 FROM c WHERE i<350)"
                " INSERT INTO t SELECT i, randomblob(500) FROM c");
}

/* A finishes its transaction; returns COMMIT's result (a failed one is
 * rolled back). */
static int sq_finish(sqlite3 *a)
{
    int rc = sqlite3_exec(a, "WITH RECURSIVE c(i) AS (SELECT 351 UNION ALL SELECT i+1 FROM c"
                             " WHERE i<400) INSERT INTO t SELECT i, randomblob(700) FROM c;"
                             "COMMIT",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(a))
        sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Closes A and B, fscks the durable image and checks its rows there. */
static void sq_reopen_check(sqlite3 *a, sqlite3 *b, sqlite3_int64 rows, sqlite3_int64 sum)
{
    sqlite3_close(b);
    sqlite3_close(a);
    size_t len;
    uint8_t *img = memdev_crash_image(sq.mem, &len);
    test_fsck_image(img, len);
    sq.mem->close(sq.mem);
    sq.mem = memdev_from_image(img, len, &sq.ctl);
    free(img);
    a = sq_open();
    sq_check(a, rows, sum);
    ck_assert_int_eq(sqlite3_close(a), SQLITE_OK);
    sq_teardown();
}

/*
 * sq_scene(JOURNAL_MODE) with the failure FAIL_RC armed on the last device
 * write (a tree block write) that B's statement SQL will make: the count of
 * its writes comes from a first run of the same scene without the failure.
 */
static void sq_scene_failing(const char *journal_mode, const char *sql, int fail_rc, sqlite3 **a,
                             sqlite3 **b)
{
    sq_scene(journal_mode, a, b);
    uint64_t w0 = sq.ctl->nwrite;
    sq_exec(*b, sql);
    long nwrites = (long)(sq.ctl->nwrite - w0); /* ..., tree blocks, superblock */
    ck_assert_int_ge(nwrites, 2);
    sqlite3_close(*b);
    sqlite3_close(*a);
    sq_teardown();

    sq_scene(journal_mode, a, b);
    sq.ctl->fail_rc = fail_rc;
    sq.ctl->fail_write_at = nwrites - 1;
}

/*
 * Connection A's transaction is buffered when connection B's PRAGMA
 * cow_commit fails on the device (FAIL_RC on the last tree block write of
 * the commit, found by a first run without the failure).  B gets the
 * error; A's transaction goes on and commits; every row is there,
 * integrity_check is ok, in the running store, after a reopen and in the
 * durable image (fsck clean).  Failed before the fix: the abort dropped
 * A's buffered frames or pages, and A's commit left a database missing
 * them.
 */
static void sql_commit_fails(const char *journal_mode, int fail_rc, int sqlite_rc)
{
    sqlite3 *a, *b;
    sq_scene_failing(journal_mode, "PRAGMA cow_commit", fail_rc, &a, &b);
    int rc = sqlite3_exec(b, "PRAGMA cow_commit", NULL, NULL, NULL);
    ck_assert_int_eq(sq.ctl->fail_write_at, 0); /* the injected failure happened */
    ck_assert_msg(sqlite3_extended_errcode(b) == sqlite_rc, "cow_commit: %d (%d), expected %d",
                  rc, sqlite3_extended_errcode(b), sqlite_rc);
    ck_assert_int_eq(sq_finish(a), SQLITE_OK);
    sq_check(a, 400, SQ_SUM_ALL);
    sq_check(b, 400, SQ_SUM_ALL);
    sq_exec(b, "PRAGMA cow_delete('s')"); /* the store goes on */
    sq_reopen_check(a, b, 400, SQ_SUM_ALL);
}

/* The journal modes and device failures of sql_commit_fails, and the
 * SQLite error each must give. */
static const struct {
    const char *journal_mode;
    int fail_rc, sqlite_rc;
} sql_commit_cases[] = {
    {"wal", COW_EIO_WRITE, SQLITE_IOERR_WRITE},    /* abort_sql_wal_eio */
    {"wal", COW_ENOSPC, SQLITE_FULL},              /* abort_sql_wal_enospc */
    {"delete", COW_EIO_WRITE, SQLITE_IOERR_WRITE}, /* abort_sql_delete_eio */
    {"truncate", COW_ENOSPC, SQLITE_FULL},         /* abort_sql_truncate_enospc */
};
#define NSQL_COMMIT_CASES (sizeof sql_commit_cases / sizeof sql_commit_cases[0])

START_TEST(abort_sql_commit_fails)
{
    sql_commit_fails(sql_commit_cases[_i].journal_mode, sql_commit_cases[_i].fail_rc,
                     sql_commit_cases[_i].sqlite_rc);
}
END_TEST

/*
 * B's PRAGMA cow_delete fails on the last tree block write of its second
 * commit, the one after the delete dropped the snapshot's tree, while A's
 * transaction is buffered: the delete cannot be taken back alone, so the
 * store stops.  B gets SQLITE_IOERR_WRITE, A's transaction fails with an
 * I/O error (never goes on over missing pages), every later call fails,
 * and the reopened container has the 50 rows committed before.  Failed before the fix: the abort reloaded the
 * trees under A, which committed a database missing its spilled pages.
 */
static void sql_delete_fails(const char *journal_mode)
{
    sqlite3 *a, *b;
    sq_scene_failing(journal_mode, "PRAGMA cow_delete('s')", COW_EIO_WRITE, &a, &b);
    ck_assert_int_ne(sqlite3_exec(b, "PRAGMA cow_delete('s')", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sq.ctl->fail_write_at, 0);
    ck_assert_int_eq(sqlite3_extended_errcode(b), SQLITE_IOERR_WRITE);
    int rc = sq_finish(a);
    ck_assert_msg((rc & 0xff) == SQLITE_IOERR, "A's COMMIT after the store stopped: %d", rc);
    /* (B may still read from its own page cache: the 50 rows) */
    ck_assert_int_ne(sqlite3_exec(b, "INSERT INTO t VALUES (1000, x'00')", NULL, NULL, NULL),
                     SQLITE_OK);
    sq_reopen_check(a, b, 50, SQ_SUM_50);
}

/* The journal modes of sql_delete_fails (abort_sql_delete_fails_wal, _truncate). */
static const char *const sql_delete_modes[] = {"wal", "truncate"};

START_TEST(abort_sql_delete_fails)
{
    sql_delete_fails(sql_delete_modes[_i]);
}
END_TEST

/* ---- a real full disk ---- */

#define FD_CONNS 3
#define FD_ROWS 16 /* rows a transaction */

/*
 * Several connections write (each transaction FD_ROWS rows, a
 * transaction number in each) into a container on an 8 MiB tmpfs until
 * each has failed with SQLITE_FULL; a filler file is then removed and
 * each connection commits again.  Every transaction whose COMMIT returned
 * SQLITE_OK is there whole, a failed one whole or not at all,
 * integrity_check is ok, and fsck finds the container clean; no error but
 * SQLITE_FULL is seen (a full disk never stops the store: xWrite reserves
 * the space its pages and their commit need, so the failure comes there,
 * before anything changed).  Needs root (mount); skipped with a message
 * otherwise.  This one passes on the code before the fix as well: the
 * reservations kept a real full disk away from the abort; the injected
 * failures above are the ones that reached it.
 */
static void full_disk(const char *journal_mode)
{
    if (geteuid() != 0) {
        fprintf(stderr, "abort_full_disk: skipped (mounting a tmpfs needs root)\n");
        return;
    }
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
    char *dir = test_mkdtemp();
    if (mount("tmpfs", dir, "tmpfs", 0, "size=8m") != 0) {
        fprintf(stderr, "abort_full_disk: skipped (mount -t tmpfs: %s)\n", strerror(errno));
        test_rmdir(dir);
        return;
    }
    char *path = sqlite3_mprintf("%s/t.db", dir), *filler = sqlite3_mprintf("%s/filler", dir);
    uint8_t *fill = calloc(1, 3 << 20);
    test_write_file(filler, fill, 3 << 20);
    free(fill);
    sqlite3 *c[FD_CONNS];
    char *uri = sqlite3_mprintf("file:%s?vfs=cow", path);
    for (int i = 0; i < FD_CONNS; i++) {
        ck_assert_int_eq(sqlite3_open_v2(uri, &c[i], SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                                         SQLITE_OPEN_URI, NULL),
                         SQLITE_OK);
        sqlite3_busy_timeout(c[i], 5000);
        if (i == 0) {
            char sql[128];
            snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", journal_mode);
            sq_exec(c[0], sql);
            sq_exec(c[0], "CREATE TABLE t(id INTEGER PRIMARY KEY, txn INTEGER, v BLOB)");
        }
    }
    sqlite3_free(uri);
    /* committed[k]: transaction k's COMMIT returned SQLITE_OK */
    size_t ntxn = 0, cap = 1024;
    char *committed = calloc(cap, 1);
    int fulls[FD_CONNS] = {0}, others = 0, after = 0;
    for (int round = 0; round < 100000; round++) {
        int i = round % FD_CONNS, done = 1;
        for (int k = 0; k < FD_CONNS; k++)
            done &= fulls[k] >= 2;
        if (done)
            break;
        if (ntxn == cap) {
            committed = realloc(committed, cap * 2);
            memset(committed + cap, 0, cap);
            cap *= 2;
        }
        char sql[256];
        snprintf(sql, sizeof sql,
                 "BEGIN; WITH RECURSIVE r(j) AS (SELECT 1 UNION ALL SELECT j+1 FROM r WHERE j<%d)"
                 " INSERT INTO t(txn, v) SELECT %zu, randomblob(1500) FROM r; COMMIT",
                 FD_ROWS, ntxn);
        int rc = sqlite3_exec(c[i], sql, NULL, NULL, NULL);
        committed[ntxn++] = rc == SQLITE_OK;
        if (rc != SQLITE_OK) {
            if ((sqlite3_extended_errcode(c[i]) & 0xff) == SQLITE_FULL)
                fulls[i]++;
            else
                others++;
            if (!sqlite3_get_autocommit(c[i]))
                sqlite3_exec(c[i], "ROLLBACK", NULL, NULL, NULL);
        }
    }
    /* room made: every connection commits again */
    ck_assert_int_eq(unlink(filler), 0);
    for (int i = 0; i < FD_CONNS; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "BEGIN; INSERT INTO t(txn, v) VALUES (%zu, randomblob(100)); COMMIT", ntxn);
        int rc = sqlite3_exec(c[i], sql, NULL, NULL, NULL);
        if (ntxn == cap) {
            committed = realloc(committed, cap * 2);
            cap *= 2;
        }
        committed[ntxn++] = rc == SQLITE_OK;
        after += rc == SQLITE_OK;
        if (rc != SQLITE_OK)
            fprintf(stderr, "abort_full_disk %s: connection %d after room was made: %d %s\n",
                    journal_mode, i, sqlite3_extended_errcode(c[i]), sqlite3_errmsg(c[i]));
    }
    size_t ncommitted = 0;
    for (size_t k = 0; k < ntxn; k++)
        ncommitted += committed[k];
    fprintf(stderr, "abort_full_disk %s: %zu transactions, %zu committed, SQLITE_FULL %d/%d/%d, "
                    "other errors %d, %d of %d committed after room was made\n",
            journal_mode, ntxn, ncommitted, fulls[0], fulls[1], fulls[2], others, after,
            FD_CONNS);
    ck_assert_int_eq(others, 0);
    ck_assert_int_eq(after, FD_CONNS);
    for (int i = 0; i < FD_CONNS; i++)
        ck_assert_int_eq(sqlite3_close(c[i]), SQLITE_OK);
    test_fsck_clean(path);
    /* reopened: each transaction whole if committed, whole or absent if not */
    sqlite3 *db = sq_open_path(path);
    ck_assert_str_eq(sq_text(db, "PRAGMA integrity_check"), "ok");
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT txn, count(*) FROM t GROUP BY txn", -1, &st,
                                        NULL),
                     SQLITE_OK);
    size_t seen = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t k = (size_t)sqlite3_column_int64(st, 0);
        int n = sqlite3_column_int(st, 1);
        ck_assert_uint_lt(k, ntxn);
        ck_assert_msg(n == (k + FD_CONNS >= ntxn ? 1 : FD_ROWS), "transaction %zu has %d rows",
                      k, n);
        seen += committed[k];
    }
    sqlite3_finalize(st);
    ck_assert_msg(seen == ncommitted, "%zu of %zu committed transactions are there", seen,
                  ncommitted);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    free(committed);
    sqlite3_free(path);
    sqlite3_free(filler);
    ck_assert_int_eq(umount2(dir, MNT_DETACH), 0);
    test_rmdir(dir);
}

START_TEST(abort_full_disk_wal)
{
    full_disk("wal");
}
END_TEST

START_TEST(abort_full_disk_delete)
{
    full_disk("delete");
}
END_TEST

/* ---- a foreground commit while the background committer waits ---- */

struct commit_arg {
    cow_store *st;
    int writeback; /* cow_store_writeback, else cow_store_commit */
    int rc;
};

static void *do_commit(void *p)
{
    struct commit_arg *a = p;
    a->rc = a->writeback ? cow_store_writeback(a->st) : cow_store_commit(a->st);
    return NULL;
}

static void wait_hits(const char *name, unsigned long n)
{
    for (int i = 0; i < 10000 && cow_inject_hits(name) < n; i++)
        usleep(1000);
    ck_assert_uint_ge(cow_inject_hits(name), n);
}

/*
 * The background committer waits for an ordered extent in flight with
 * store->lock released; a foreground commit (another thread) waits too;
 * the extent lands, and the first of the two commits fails writing its
 * tree blocks.  That commit fails alone, whichever thread made it: the
 * other commits, nothing is lost, the store goes on.  Before the fix the
 * committer's store-wide "in background" flag, set during its wait, made
 * the foreground commit's failure stop the store (or, the other way round,
 * the foreground's abort dropped the buffered pages).
 */
START_TEST(abort_commit_during_background_wait)
{
    struct cow_dev *dev;
    struct mfile wal, db;
    cow_store *st = buffered_store(&dev, NULL, &wal, &db);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK); /* in the running transaction */
    mf_write(&db, 'y', BLK, 0); /* the one dirty page */
    /* an ordered extent in flight: its writer stopped before the write */
    ck_assert_int_eq(cow_inject_arm("writeback:before_io", COW_INJECT_NOT_ME, 0, 1), 0);
    struct commit_arg w = {st, 1, 1}, f = {st, 0, 1};
    pthread_t tw, tf;
    ck_assert_int_eq(pthread_create(&tw, NULL, do_commit, &w), 0);
    ck_assert_int_eq(cow_inject_wait("writeback:before_io", 1, 10000), 0);
    /* the committer starts its commit and waits for that extent */
    unsigned long h = cow_inject_hits("ordered:wait");
    cow_store_set_commit_interval(st, 1);
    wait_hits("ordered:wait", h + 1);
    /* a foreground commit waits as well */
    ck_assert_int_eq(pthread_create(&tf, NULL, do_commit, &f), 0);
    wait_hits("ordered:wait", h + 2);
    /* the extent's data write is the next write; the write after it is
     * the first tree block write of whichever commit comes first */
    memdev_set_fail(dev, 0, 2, 0, COW_EIO_WRITE);
    cow_inject_release("writeback:before_io");
    pthread_join(tw, NULL);
    pthread_join(tf, NULL);
    cow_store_set_commit_interval(st, 0);
    cow_inject_reset();
    ck_assert_int_eq(w.rc, COW_OK);
    ck_assert_msg(f.rc == COW_OK || f.rc == COW_EIO_WRITE, "the foreground commit: %d", f.rc);
    ck_assert_int_eq(memdev_fail_pending(dev), 0);
    mf_check(&wal);
    mf_check(&db);
    mf_write(&db, 'z', 10, 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    close_checked(st, dev, &wal, &db);
}
END_TEST

Suite *abort_suite(void)
{
    Suite *s = suite_create("abort");
    TCase *tc;
    test_case(s, "store", 120, abort_commit_eio_keeps_others, abort_commit_enospc_keeps_others,
              abort_commit_partial_write_retried, abort_commit_no_room_keeps_others,
              abort_tree_update_failure_stops_store, abort_flush_failure_stops_store, NULL);
    tc = test_case(s, "sql", 120, NULL);
    tcase_add_loop_test(tc, abort_sql_commit_fails, 0, NSQL_COMMIT_CASES);
    tcase_add_loop_test(tc, abort_sql_delete_fails, 0,
                        sizeof sql_delete_modes / sizeof sql_delete_modes[0]);
    test_case(s, "fulldisk", 300, abort_full_disk_wal, abort_full_disk_delete, NULL);
    test_case(s, "truncate", 0, abort_shrink_on_full_disk, NULL);
    test_case(s, "pcache", 300, abort_pcache_hot_paths, NULL);
    test_case(s, "race", 60, abort_restore_target_deleted_meanwhile,
              abort_commit_during_background_wait, NULL);
    return s;
}
