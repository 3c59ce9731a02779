/*
 * check_rdpath.c - the threads of one process (issue 15): a sync's flush
 * made with store->lock released and shared by concurrent syncs (group
 * commit, txn.c txn_flush_wait), clean pages kept after writeback in a
 * per-store LRU (pcache.c), and reads that resolve under the lock and read
 * with it released, the space they read kept from reuse until they end
 * (alloc.c's reader list).
 *
 * As in check_race.c, each test forces its interleaving with injection
 * points (inject.h): one thread is stopped at a named point while others
 * run, and no wait is without a bound.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extent_map.h"
#include "inject.h"
#include "remap.h"
#include "store_int.h"
#include "testutil.h"

#define BLK COW_BLOCK_SIZE
#define WAIT_MS 20000

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (bounded) until *DONE is set; 1 if it was. */
static int wait_done(atomic_int *done, unsigned ms)
{
    for (unsigned t = 0; t < ms; t++) {
        if (atomic_load(done))
            return 1;
        sleep_ms(1);
    }
    return atomic_load(done);
}

/* Waits (bounded) until point NAME has been hit N times; 1 if it was. */
static int wait_hits(const char *name, unsigned long n)
{
    for (unsigned t = 0; t < WAIT_MS; t++) {
        if (cow_inject_hits(name) >= n)
            return 1;
        sleep_ms(1);
    }
    return 0;
}

/* 1 if file NAME of the container image IMG holds C in [off, off+len). */
static int image_holds(const uint8_t *img, size_t ilen, const char *name, int c, uint64_t off,
                       size_t len)
{
    cow_store *s2;
    cow_file *f2;
    ck_assert_int_eq(cow_store_open_dev("crash", memdev_from_image(img, ilen, NULL),
                                        COW_OPEN_READONLY, 0, &s2), COW_OK);
    ck_assert_int_eq(cow_file_open(s2, name, 0, &f2), COW_OK);
    int ok = file_holds(f2, c, off, len);
    cow_file_close(f2);
    cow_store_close(s2);
    return ok;
}

struct job {
    cow_store *st;
    cow_file *f;
    int c;          /* the byte written */
    uint64_t off;
    size_t len;
    int rc;
    char msg[256];  /* do_read: the error's message */
    atomic_int done;
};

/* Writes LEN bytes C at OFF of F and syncs. */
static void *do_write_sync(void *arg)
{
    struct job *j = arg;
    uint8_t *b = malloc(j->len);
    memset(b, j->c, j->len);
    j->rc = cow_file_write(j->f, b, j->len, j->off);
    free(b);
    if (j->rc == COW_OK)
        j->rc = cow_file_sync(j->f);
    atomic_store(&j->done, 1);
    return NULL;
}

/* Reads LEN bytes at OFF of F and checks they are C (rc the read's error,
 * or COW_ECSUM if the bytes differ; its message in J->msg). */
static void *do_read(void *arg)
{
    struct job *j = arg;
    uint8_t *b = malloc(j->len);
    size_t n;
    j->rc = cow_file_read(j->f, b, j->len, j->off, &n);
    if (j->rc)
        snprintf(j->msg, sizeof j->msg, "%s", cow_store_last_error(j->st));
    for (size_t i = 0; j->rc == COW_OK && i < j->len; i++)
        if (b[i] != j->c)
            j->rc = COW_ECSUM;
    free(b);
    atomic_store(&j->done, 1);
    return NULL;
}

static uint64_t flushes(cow_store *st)
{
    struct cow_stats s;
    cow_store_stats(st, &s);
    return s.flushes;
}

/*
 * A sync's flush runs with store->lock released: while it is stopped in
 * flight, another thread reads a file, and a second sync writes its
 * record; that sync must not return on the flush in flight (it started
 * before the record), but on the next one, and what it wrote must then
 * survive a power loss.  Before (the flush under store->lock), the read
 * waited for the flush.
 */
START_TEST(rdpath_flush_unlocked)
{
    struct cow_dev *dev;
    cow_file *fa, *fb;
    cow_store *st = memdev_store_file(&dev, NULL, "a", &fa);
    ck_assert_int_eq(cow_file_open(st, "b", 1, &fb), COW_OK);
    file_fill(fa, 'A', 0, 4 * BLK);
    file_fill(fb, 'B', 0, 4 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);

    ck_assert_int_eq(cow_inject_arm("txn:flush_unlocked", 0, 0, 1), 0);
    struct job a = {.st = st, .f = fa, .c = 'a', .off = 0, .len = 2 * BLK};
    pthread_t ta, tr, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, do_write_sync, &a), 0);
    ck_assert_int_eq(cow_inject_wait("txn:flush_unlocked", 1, WAIT_MS), 0);
    uint64_t f0 = flushes(st);

    /* a read while the flush is in flight */
    struct job r = {.st = st, .f = fb, .c = 'B', .off = 0, .len = 4 * BLK};
    ck_assert_int_eq(pthread_create(&tr, NULL, do_read, &r), 0);
    int read_done = wait_done(&r.done, WAIT_MS);

    /* a second sync, whose record comes after the flush began */
    struct job b = {.st = st, .f = fb, .c = 'b', .off = BLK, .len = BLK};
    ck_assert_int_eq(pthread_create(&tb, NULL, do_write_sync, &b), 0);
    ck_assert(wait_hits("txn:flush_wait", 1));
    sleep_ms(20);
    int b_early = atomic_load(&b.done);
    ck_assert_int_eq(cow_inject_release("txn:flush_unlocked"), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tr, NULL);
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen); /* what the returns promised */
    cow_inject_reset();
    ck_assert_msg(read_done, "a read waited for a sync's flush");
    ck_assert_int_eq(r.rc, COW_OK);
    ck_assert_msg(!b_early, "a sync returned on a flush that began before its record");
    ck_assert_int_eq(a.rc, COW_OK);
    ck_assert_int_eq(b.rc, COW_OK);
    ck_assert_uint_eq(flushes(st), f0 + 1); /* b's own */
    ck_assert(image_holds(img, ilen, "a", 'a', 0, 2 * BLK));
    ck_assert(image_holds(img, ilen, "b", 'b', BLK, BLK));
    ck_assert(image_holds(img, ilen, "b", 'B', 2 * BLK, 2 * BLK));
    test_fsck_image(img, ilen);
    free(img);
    cow_file_close(fa);
    cow_file_close(fb);
    cow_store_close(st);
}
END_TEST

/*
 * Group commit: three syncs whose records are written while a fourth
 * sync's flush is in flight share one flush after it (two flushes for
 * four syncs), and each returns only once its record is durable.
 */
START_TEST(rdpath_group_commit)
{
    enum { N = 3 };
    struct cow_dev *dev;
    cow_file *f0, *fv[N];
    cow_store *st = memdev_store_file(&dev, NULL, "f0", &f0);
    char name[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "f%d", i + 1);
        ck_assert_int_eq(cow_file_open(st, name, 1, &fv[i]), COW_OK);
        file_fill(fv[i], 'x', 0, 2 * BLK);
    }
    file_fill(f0, 'x', 0, 2 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);

    ck_assert_int_eq(cow_inject_arm("txn:flush_unlocked", 0, 0, 1), 0);
    struct job first = {.st = st, .f = f0, .c = '0', .off = 0, .len = BLK};
    pthread_t t0, tv[N];
    ck_assert_int_eq(pthread_create(&t0, NULL, do_write_sync, &first), 0);
    ck_assert_int_eq(cow_inject_wait("txn:flush_unlocked", 1, WAIT_MS), 0);
    uint64_t fl0 = flushes(st);
    struct job jv[N];
    for (int i = 0; i < N; i++) {
        jv[i] = (struct job){.st = st, .f = fv[i], .c = '1' + i, .off = BLK, .len = BLK};
        ck_assert_int_eq(pthread_create(&tv[i], NULL, do_write_sync, &jv[i]), 0);
    }
    /* each of them waits for the flush in flight */
    ck_assert(wait_hits("txn:flush_wait", N));
    for (int i = 0; i < N; i++)
        ck_assert_msg(!atomic_load(&jv[i].done), "sync %d returned before any flush after "
                                                 "its record", i);
    ck_assert_int_eq(cow_inject_release("txn:flush_unlocked"), 0);
    pthread_join(t0, NULL);
    for (int i = 0; i < N; i++)
        pthread_join(tv[i], NULL);
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen);
    cow_inject_reset();
    ck_assert_int_eq(first.rc, COW_OK);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(jv[i].rc, COW_OK);
    ck_assert_msg(flushes(st) == fl0 + 1, "%llu flushes for %d syncs after the first",
                  (unsigned long long)(flushes(st) - fl0), N);
    ck_assert(image_holds(img, ilen, "f0", '0', 0, BLK));
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "f%d", i + 1);
        ck_assert(image_holds(img, ilen, name, '1' + i, BLK, BLK));
    }
    test_fsck_image(img, ilen);
    free(img);
    cow_file_close(f0);
    for (int i = 0; i < N; i++)
        cow_file_close(fv[i]);
    cow_store_close(st);
}
END_TEST

/*
 * A flush that fails (fsyncgate) fails the sync that ran it and the one
 * waiting for it, and stops the store: a write after it is refused.
 */
START_TEST(rdpath_flush_failure_stops)
{
    struct cow_dev *dev;
    cow_file *fa, *fb;
    cow_store *st = memdev_store_file(&dev, NULL, "a", &fa);
    ck_assert_int_eq(cow_file_open(st, "b", 1, &fb), COW_OK);
    file_fill(fa, 'A', 0, 2 * BLK);
    file_fill(fb, 'B', 0, 2 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    memdev_set_fail(dev, 0, 0, 1, 0); /* the next flush fails */
    ck_assert_int_eq(cow_inject_arm("txn:flush_unlocked", 0, 0, 1), 0);
    struct job a = {.st = st, .f = fa, .c = 'a', .off = 0, .len = BLK};
    struct job b = {.st = st, .f = fb, .c = 'b', .off = 0, .len = BLK};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, do_write_sync, &a), 0);
    ck_assert_int_eq(cow_inject_wait("txn:flush_unlocked", 1, WAIT_MS), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, do_write_sync, &b), 0);
    ck_assert(wait_hits("txn:flush_wait", 1));
    ck_assert_int_eq(cow_inject_release("txn:flush_unlocked"), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cow_inject_reset();
    ck_assert_int_eq(a.rc, COW_EIO_FLUSH);
    ck_assert_int_eq(b.rc, COW_EIO_FLUSH);
    uint8_t x = 'z';
    ck_assert_int_eq(cow_file_write(fa, &x, 1, 0), COW_EFAILED);
    cow_file_close(fa);
    cow_file_close(fb);
    cow_store_close(st);
}
END_TEST

/* Device reads so far (the memdev's count, under its mutex's ordering:
 * no other store thread runs in these tests). */
static uint64_t nreads(const struct memdev_ctl *ctl)
{
    return __atomic_load_n(&ctl->nread, __ATOMIC_RELAXED);
}

/*
 * Clean pages stay cached after writeback, up to the LRU's budget: reads
 * of them and partial writes over them (a WAL frame's last block) read
 * nothing from the device; past the budget the least recently used go.
 * Before, every block but the last was dropped once written back.
 */
START_TEST(rdpath_clean_pages_kept)
{
    struct cow_dev *dev;
    struct memdev_ctl *ctl;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, &ctl, "wal", &f);
    enum { NB = 64, BUDGET = 16 };
    file_fill(f, 'A', 0, NB * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t r0 = nreads(ctl);
    ck_assert(file_holds(f, 'A', 0, NB * BLK));
    ck_assert_uint_eq(nreads(ctl), r0); /* all cached */
    /* frames of 4,120 bytes over the old ones: no block read back */
    uint8_t frame[4120];
    memset(frame, 'W', sizeof frame);
    for (uint64_t off = 0; off + sizeof frame <= 32 * BLK; off += sizeof frame)
        ck_assert_int_eq(cow_file_write(f, frame, sizeof frame, off), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_uint_eq(nreads(ctl), r0);

    /* a smaller budget: the least recently used go first */
    cow_store_set_clean_cache(st, BUDGET * BLK);
    cow_mutex_lock(&st->lock);
    ck_assert_uint_le(st->lru.bytes, BUDGET * BLK);
    cow_mutex_unlock(&st->lock);
    cow_store_set_clean_cache(st, 8ull << 20);
    file_fill(f, 'C', 0, NB * BLK); /* written back in order 0..63 */
    cow_store_set_clean_cache(st, 0);
    cow_store_set_clean_cache(st, BUDGET * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    r0 = nreads(ctl);
    ck_assert(file_holds(f, 'C', (NB - BUDGET) * BLK, BUDGET * BLK)); /* the newest: cached */
    ck_assert_uint_eq(nreads(ctl), r0);
    ck_assert(file_holds(f, 'C', 0, BLK)); /* the oldest: gone, read from the device */
    ck_assert_uint_gt(nreads(ctl), r0);

    /* none kept: the behaviour before (the last block only) */
    cow_store_set_clean_cache(st, 0);
    cow_mutex_lock(&st->lock);
    ck_assert_uint_eq(st->lru.bytes, 0);
    ck_assert_uint_le(f->inode->pc.pages.count, 2);
    cow_mutex_unlock(&st->lock);
    ck_assert(file_holds(f, 'C', 0, NB * BLK));
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

/*
 * A kept clean page is never served stale: after a truncate and a grow
 * the old bytes are zeros, after a restore of a snapshot the file has the
 * snapshot's bytes, and pc_drop_clean drops every clean page (the next
 * read goes to the device).
 */
START_TEST(rdpath_clean_pages_not_stale)
{
    struct cow_dev *dev;
    struct memdev_ctl *ctl;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, &ctl, "db", &f);
    file_fill(f, 'A', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_truncate(f, BLK / 2), COW_OK);
    ck_assert_int_eq(cow_file_truncate(f, 8 * BLK), COW_OK);
    ck_assert(file_holds(f, 'A', 0, BLK / 2));
    ck_assert(file_holds(f, 0, BLK / 2, 8 * BLK - BLK / 2));
    file_fill(f, 'S', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_subvol_create(st, "snap", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    file_fill(f, 'L', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert(file_holds(f, 'L', 0, 8 * BLK)); /* cached */
    ck_assert_int_eq(cow_subvol_restore(st, NULL, "snap"), COW_OK);
    ck_assert(file_holds(f, 'S', 0, 8 * BLK));
    file_fill(f, 'R', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);

    cow_mutex_lock(&st->lock);
    ck_assert_uint_gt(f->inode->pc.pages.count, 0);
    pc_drop_clean(st, f->inode);
    ck_assert_uint_eq(f->inode->pc.pages.count, 0);
    ck_assert_uint_eq(st->lru.bytes, 0);
    cow_mutex_unlock(&st->lock);
    uint64_t r0 = nreads(ctl);
    ck_assert(file_holds(f, 'R', 0, 8 * BLK));
    ck_assert_uint_gt(nreads(ctl), r0);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

/* The disk address of the data extent under byte OFF of F.  Lock taken. */
static int first_extent_cb(void *arg, uint64_t off, const uint8_t *fe)
{
    (void)off;
    *(uint64_t *)arg = get64(fe + FE_DISK_BYTENR) + get64(fe + FE_EXTENT_OFFSET);
    return 1;
}

static uint64_t extent_at(cow_store *st, cow_file *f, uint64_t off)
{
    uint64_t disk = 0;
    cow_mutex_lock(&st->lock);
    (void)em_for_extents(st, f->inode, off, off + BLK, first_extent_cb, &disk);
    cow_mutex_unlock(&st->lock);
    ck_assert_uint_ne(disk, 0);
    return disk;
}

static int space_free(cow_store *st, uint64_t at, uint64_t len)
{
    cow_mutex_lock(&st->lock);
    int yes = alloc_is_free(st, at, len);
    cow_mutex_unlock(&st->lock);
    return yes;
}

/*
 * A read resolves its blocks under store->lock and reads them with it
 * released.  Stopped in between, the file is rewritten and two flushed
 * commits pass, after which the old blocks would be free (invariant 7:
 * freed, then cooled): they must stay out of allocation until the read
 * ends, which must then return the bytes it resolved, and be free after.
 * Broken (COW_BREAK_READ_UNPINNED: no reader list), the blocks are free
 * while the read runs, and writes of another file reuse them: the read
 * then fails its checksum check.
 */
/*
 * A read of cached pages copies them without store->lock
 * (pc_read_cached), but never a page made and not yet filled: a
 * whole-block write of an uncached block is stopped after its page is
 * made (zeros), and a read of that block meanwhile must return the
 * block's bytes (here the write's, once the write lets go of the lock),
 * never the zeros.  Broken (the page's uptodate flag not looked at), the
 * read returns zeros.
 */
START_TEST(rdpath_cached_read_skips_unfilled_page)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "a", &f);
    file_fill(f, 'A', 0, 2 * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    cow_mutex_lock(&st->lock);
    pc_drop_clean(st, f->inode); /* block 0 is read from the device now */
    cow_mutex_unlock(&st->lock);

    ck_assert_int_eq(cow_inject_arm("pc:page_made", 0, 0, 1), 0);
    struct job w = {.st = st, .f = f, .c = 'B', .off = 0, .len = BLK};
    struct job r = {.st = st, .f = f, .c = 'B', .off = 0, .len = BLK};
    pthread_t tw, tr;
    ck_assert_int_eq(pthread_create(&tw, NULL, do_write_sync, &w), 0);
    ck_assert_int_eq(cow_inject_wait("pc:page_made", 1, WAIT_MS), 0);
    ck_assert_int_eq(pthread_create(&tr, NULL, do_read, &r), 0);
    /* the read, if it does not wait for the write, is done by then */
    (void)wait_done(&r.done, 200);
    ck_assert_int_eq(cow_inject_release("pc:page_made"), 0);
    ck_assert(wait_done(&w.done, WAIT_MS));
    ck_assert(wait_done(&r.done, WAIT_MS));
    pthread_join(tw, NULL);
    pthread_join(tr, NULL);
    cow_inject_reset();
    ck_assert_int_eq(w.rc, COW_OK);
    ck_assert_msg(r.rc == COW_OK, "a read of a block whose page was made and not yet filled "
                                  "did not return the block's bytes (%d %s)", r.rc, r.msg);
    ck_assert(file_holds(f, 'B', 0, BLK));
    ck_assert(file_holds(f, 'A', BLK, BLK));
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

START_TEST(rdpath_read_keeps_its_blocks)
{
    struct cow_dev *dev;
    cow_file *fa, *fa2, *fb;
    cow_store *st = memdev_store_file(&dev, NULL, "a", &fa);
    cow_store_set_clean_cache(st, 0); /* the reads go to the device */
    ck_assert_int_eq(cow_file_open(st, "a", 0, &fa2), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "b", 1, &fb), COW_OK);
    file_fill(fa, 'A', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t disk = extent_at(st, fa, 0);

    ck_assert_int_eq(cow_inject_arm("read:resolved", 0, 0, 1), 0);
    struct job r = {.st = st, .f = fa, .c = 'A', .off = 0, .len = 4 * BLK};
    pthread_t tr;
    ck_assert_int_eq(pthread_create(&tr, NULL, do_read, &r), 0);
    ck_assert_int_eq(cow_inject_wait("read:resolved", 1, WAIT_MS), 0);
    /* the blocks it resolved are freed, cooled and would be free now */
    file_fill(fa2, 'B', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    file_fill(fb, 'x', 0, BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    file_fill(fb, 'y', 0, BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    int freed = space_free(st, disk, 4 * BLK);
    /* writes that take free space (first fit in a small container), data
     * or tree blocks, until they took those blocks (only when they are
     * free: once otherwise) */
    for (int i = 0; i < 512 && space_free(st, disk, BLK); i++) {
        file_fill(fb, 'R', (uint64_t)(i + 1) * BLK, BLK);
        ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    }
    ck_assert_int_eq(cow_store_commit(st), COW_OK); /* tree blocks written too */
    ck_assert_int_eq(cow_inject_release("read:resolved"), 0);
    ck_assert(wait_done(&r.done, WAIT_MS));
    pthread_join(tr, NULL);
    cow_inject_reset();
    ck_assert_msg(!freed, "the blocks a read in flight reads were free to allocate (the "
                          "read returned %d: %s)", r.rc, r.msg);
    ck_assert_msg(r.rc == COW_OK, "the read in flight did not return the bytes it resolved "
                                  "(%d: %s)", r.rc, r.msg);
    /* the read ended: what it kept is free now */
    ck_assert(space_free(st, disk, 8 * BLK));
    ck_assert(file_holds(fa, 'B', 0, 8 * BLK));
    cow_file_close(fa);
    cow_file_close(fa2);
    cow_file_close(fb);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t ilen;
    uint8_t *img = memdev_image(dev, &ilen);
    cow_store_close(st);
    test_fsck_image(img, ilen);
    free(img);
}
END_TEST

/* 1 if block BYTENR is set in the physical map (stored, pinned or held). */
static int phys_set(cow_store *st, uint64_t bytenr)
{
    cow_mutex_lock(&st->lock);
    const struct bgroup *g = &st->bgs[bytenr / st->bg_size];
    uint64_t i = (bytenr - g->start) / BLK;
    int set = (g->pbitmap[i >> 3] >> (i & 7)) & 1;
    cow_mutex_unlock(&st->lock);
    return set;
}

/*
 * The same with relocation: a read resolved a file's blocks (at their own
 * address) and is stopped; a balance moves them elsewhere and commits,
 * which lets go of their old place (invariant 7's cooling).  The old
 * place must stay set in the physical map until the read ends, and the
 * read must return what it resolved; after it, the place is free.
 * Broken (COW_BREAK_READ_UNPINNED), the old place is free while it runs.
 */
START_TEST(rdpath_read_keeps_relocated_place)
{
    struct cow_dev *dev;
    cow_file *f, *fill_f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    cow_store_set_clean_cache(st, 0);
    ck_assert_int_eq(cow_file_open(st, "fill", 1, &fill_f), COW_OK);
    file_fill(fill_f, 'F', 0, 1280 * BLK); /* low space, given back below */
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    file_fill(f, 'A', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_file_close(fill_f);
    ck_assert_int_eq(cow_unlink(st, "fill"), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    for (int i = 0; i < 2; i++) { /* the fill's space: cooled, then free */
        ck_assert_int_eq(cow_file_open(st, "fill", 1, &fill_f), COW_OK);
        cow_file_close(fill_f);
        ck_assert_int_eq(cow_unlink(st, "fill"), COW_OK);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    uint64_t at = extent_at(st, f, 0);

    ck_assert_int_eq(cow_inject_arm("read:resolved", 0, 0, 1), 0);
    struct job r = {.st = st, .f = f, .c = 'A', .off = 0, .len = 4 * BLK};
    pthread_t tr;
    ck_assert_int_eq(pthread_create(&tr, NULL, do_read, &r), 0);
    ck_assert_int_eq(cow_inject_wait("read:resolved", 1, WAIT_MS), 0);
    struct cow_balance_opts o = {100, 0, NULL, NULL};
    ck_assert_int_eq(cow_store_balance(st, &o, NULL), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_mutex_lock(&st->lock);
    uint64_t phys, run;
    remap_translate(st, at, BLK, &phys, &run);
    cow_mutex_unlock(&st->lock);
    int moved = phys != at;
    int held = phys_set(st, at);
    ck_assert_int_eq(cow_inject_release("read:resolved"), 0);
    ck_assert(wait_done(&r.done, WAIT_MS));
    pthread_join(tr, NULL);
    cow_inject_reset();
    ck_assert_msg(moved, "the balance did not move the file's blocks");
    ck_assert_msg(held, "the old place of blocks a read in flight reads was free");
    ck_assert_msg(r.rc == COW_OK, "%d: %s", r.rc, r.msg);
    ck_assert_msg(!phys_set(st, at), "the old place stayed held after the read");
    ck_assert(file_holds(f, 'A', 0, 8 * BLK));
    fsck_memdev(st, dev);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

Suite *rdpath_suite(void)
{
    Suite *s = suite_create("rdpath");
    test_case(s, "rdpath_flush", 120, rdpath_flush_unlocked, rdpath_group_commit,
              rdpath_flush_failure_stops, NULL);
    test_case(s, "rdpath_lru", 120, rdpath_clean_pages_kept, rdpath_clean_pages_not_stale,
              rdpath_cached_read_skips_unfilled_page, NULL);
    test_case(s, "rdpath_read", 120, rdpath_read_keeps_its_blocks,
              rdpath_read_keeps_relocated_place, NULL);
    return s;
}
