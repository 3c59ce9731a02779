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

#include "inject.h"
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

static void fill(cow_file *f, int c, uint64_t off, size_t len)
{
    uint8_t *b = malloc(len);
    memset(b, c, len);
    ck_assert_int_eq(cow_file_write(f, b, len, off), COW_OK);
    free(b);
}

/* 1 if every byte of F in [off, off+len) is C. */
static int holds(cow_file *f, int c, uint64_t off, size_t len)
{
    uint8_t *b = malloc(len);
    size_t n;
    int ok = cow_file_read(f, b, len, off, &n) == COW_OK && n == len;
    for (size_t i = 0; ok && i < len; i++)
        ok = b[i] == c;
    free(b);
    return ok;
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
    int ok = holds(f2, c, off, len);
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

/* Reads LEN bytes at OFF of F and checks they are C (rc COW_ECSUM if not). */
static void *do_read(void *arg)
{
    struct job *j = arg;
    j->rc = holds(j->f, j->c, j->off, j->len) ? COW_OK : COW_ECSUM;
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
    fill(fa, 'A', 0, 4 * BLK);
    fill(fb, 'B', 0, 4 * BLK);
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
        fill(fv[i], 'x', 0, 2 * BLK);
    }
    fill(f0, 'x', 0, 2 * BLK);
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
    fill(fa, 'A', 0, 2 * BLK);
    fill(fb, 'B', 0, 2 * BLK);
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
    fill(f, 'A', 0, NB * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t r0 = nreads(ctl);
    ck_assert(holds(f, 'A', 0, NB * BLK));
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
    fill(f, 'C', 0, NB * BLK); /* written back in order 0..63 */
    cow_store_set_clean_cache(st, 0);
    cow_store_set_clean_cache(st, BUDGET * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    r0 = nreads(ctl);
    ck_assert(holds(f, 'C', (NB - BUDGET) * BLK, BUDGET * BLK)); /* the newest: cached */
    ck_assert_uint_eq(nreads(ctl), r0);
    ck_assert(holds(f, 'C', 0, BLK)); /* the oldest: gone, read from the device */
    ck_assert_uint_gt(nreads(ctl), r0);

    /* none kept: the behaviour before (the last block only) */
    cow_store_set_clean_cache(st, 0);
    cow_mutex_lock(&st->lock);
    ck_assert_uint_eq(st->lru.bytes, 0);
    ck_assert_uint_le(f->inode->pc.pages.count, 2);
    cow_mutex_unlock(&st->lock);
    ck_assert(holds(f, 'C', 0, NB * BLK));
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
    fill(f, 'A', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_truncate(f, BLK / 2), COW_OK);
    ck_assert_int_eq(cow_file_truncate(f, 8 * BLK), COW_OK);
    ck_assert(holds(f, 'A', 0, BLK / 2));
    ck_assert(holds(f, 0, BLK / 2, 8 * BLK - BLK / 2));
    fill(f, 'S', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_subvol_create(st, "snap", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    fill(f, 'L', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert(holds(f, 'L', 0, 8 * BLK)); /* cached */
    ck_assert_int_eq(cow_subvol_restore(st, NULL, "snap"), COW_OK);
    ck_assert(holds(f, 'S', 0, 8 * BLK));
    fill(f, 'R', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);

    cow_mutex_lock(&st->lock);
    ck_assert_uint_gt(f->inode->pc.pages.count, 0);
    pc_drop_clean(st, f->inode);
    ck_assert_uint_eq(f->inode->pc.pages.count, 0);
    ck_assert_uint_eq(st->lru.bytes, 0);
    cow_mutex_unlock(&st->lock);
    uint64_t r0 = nreads(ctl);
    ck_assert(holds(f, 'R', 0, 8 * BLK));
    ck_assert_uint_gt(nreads(ctl), r0);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

Suite *rdpath_suite(void)
{
    Suite *s = suite_create("rdpath");
    test_case(s, "rdpath_flush", 120, rdpath_flush_unlocked, rdpath_group_commit,
              rdpath_flush_failure_stops, NULL);
    test_case(s, "rdpath_lru", 120, rdpath_clean_pages_kept, rdpath_clean_pages_not_stale, NULL);
    return s;
}
