/*
 * check_txn.c - the "txn" suite: transactions (a crash gives exactly the
 * last committed state) and the log (fast fsync, replay, and every crash
 * between two syncs).  Seeded: COW_TEST_SEED replays.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commit.h"
#include "store_int.h"
#include "testutil.h"
#include "../tools/fsck.h"

/* ---- transactions: a crash gives exactly the last committed state ---- */

START_TEST(txn_crash_gives_last_commit)
{
    uint64_t rs = test_seed() ^ 0x7a7a;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = target_store_background(&dev, "db", &f);
    /* the committer thread runs (its flusher), but commits only when
     * this test does: a background commit or balance of a slow run (the
     * interval is 5 s) made the image newer than the model's commit */
    cow_store_set_commit_interval(st, 0);
    struct cow_reloc_config rc;
    cow_store_get_reloc(st, &rc);
    rc.enabled = 0;
    cow_store_set_reloc(st, &rc);
    struct fmodel live = {0}, committed = {0};
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint8_t buf[70000];
    for (int round = 0; round < 40; round++) {
        int nops = 1 + (int)(test_rand(&rs) % 30);
        for (int i = 0; i < nops; i++) {
            size_t off = test_rand(&rs) % 300000, len = 1 + test_rand(&rs) % sizeof buf;
            if (test_rand(&rs) % 8 == 0) {
                size_t ns = test_rand(&rs) % 300000;
                ck_assert_int_eq(cow_file_truncate(f, ns), COW_OK);
                fm_truncate(&live, ns);
                continue;
            }
            test_fill(&rs, buf, len);
            ck_assert_int_eq(cow_file_write(f, buf, len, off), COW_OK);
            fm_write(&live, buf, len, off);
        }
        if (test_rand(&rs) % 2) {
            ck_assert_int_eq(cow_store_commit(st), COW_OK);
            committed.data = realloc(committed.data, live.size + 1);
            if (live.size)
                memcpy(committed.data, live.data, live.size);
            committed.size = live.size;
        }
        /* crash now: reopen the durable image; it must be the last commit
         * (on RADOS: a reader on another client opens the last commit,
         * whatever was written since) */
        cow_store *st2;
        ck_assert_int_eq(stt->open_beside(dev, 0, &st2), COW_OK);
        cow_file *f2;
        ck_assert_int_eq(cow_file_open(st2, "db", 0, &f2), COW_OK);
        fm_compare(f2, &committed);
        cow_file_close(f2);
        ck_assert_int_eq(cow_store_close(st2), COW_OK);
        if (round % 10 == 0)
            stt->fsck_dev(st, dev);
        fm_compare(f, &live);
    }
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(live.data);
    free(committed.data);
}
END_TEST

/* Opens a copy of the torn image IMG (LEN bytes) read-only: it must open at
 * generation GEN, with its file "db" starting with the string WANT. */
static void expect_torn_opens_at(const uint8_t *img, size_t len, uint64_t gen, const char *want)
{
    cow_store *s2;
    ck_assert_int_eq(cow_store_open_dev("torn", memdev_from_image(img, len, NULL),
                                        COW_OPEN_READONLY, 0, &s2),
                     COW_OK);
    ck_assert_uint_eq(cow_store_generation(s2), gen);
    cow_file *f2;
    ck_assert_int_eq(cow_file_open(s2, "db", 0, &f2), COW_OK);
    file_expect_str(f2, want);
    cow_file_close(f2);
    cow_store_close(s2);
}

START_TEST(txn_torn_superblock_falls_back)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_background(&dev, NULL, "db", &f);
    file_put_str(f, "first");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t g = cow_store_generation(st);
    file_put_str(f, "second");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen);
    /* tear the newest superblock copy: open must use the older one */
    img[((g + 1) % 2) * COW_BLOCK_SIZE + 100] ^= 0xff;
    expect_torn_opens_at(img, ilen, g, "first");
    test_fsck_image(img, ilen); /* a torn newest copy is legal */
    /* both copies torn: corrupt, not "not a container" */
    img[(g % 2) * COW_BLOCK_SIZE + 100] ^= 0xff;
    cow_store *st2;
    ck_assert_int_eq(cow_store_open_dev("torn2", memdev_from_image(img, ilen, NULL),
                                        COW_OPEN_READONLY, 0, &st2),
                     COW_ECORRUPT);
    free(img);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

START_TEST(txn_failed_write_keeps_transaction)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_background(&dev, &ctl, "db", &f);
    file_put_str(f, "committed");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    file_put_str(f, "lost-data");
    /* a failed writeback keeps the data buffered: nothing is lost */
    ctl->fail_writes_after = 1;
    ck_assert_int_eq(cow_store_writeback(st), COW_EIO_WRITE);
    ctl->fail_writes_after = 0;
    file_expect_str(f, "lost-data");
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    ctl->fail_writes_after = 1; /* the commit's tree block write fails */
    ck_assert_int_eq(cow_store_commit(st), COW_EIO_WRITE);
    ctl->fail_writes_after = 0;
    /* that commit failed alone: the write stays, and the store still works */
    file_expect_str(f, "lost-data");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    file_put_str(f, "next-txn!");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen);
    test_fsck_image(img, ilen);
    free(img);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

START_TEST(txn_torn_one_flush_commit)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_background(&dev, &ctl, "db", &f);
    file_put_str(f, "old state");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t g = cow_store_generation(st);
    size_t alen, blen;
    uint8_t *a = memdev_crash_image(dev, &alen);
    uint64_t flushes = ctl->nflush;
    file_put_str(f, "new state");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_uint_eq(ctl->nflush - flushes, 1); /* a small commit flushes once */
    uint8_t *b = memdev_crash_image(dev, &blen);
    ck_assert_uint_ge(blen, alen);
    size_t slot = (size_t)((g + 1) % 2) * COW_BLOCK_SIZE;
    ck_assert(get32(b + slot + SB_FLAGS) & COW_SB_ONE_FLUSH);
    uint32_t nr = get32(b + slot + SB_COMMIT_NRANGES);
    ck_assert_uint_gt(nr, 0);

    /* each listed run missing in turn: the torn commit is not used */
    for (uint32_t r = 0; r < nr; r++) {
        uint8_t *t = malloc(blen);
        memcpy(t, b, blen);
        const uint8_t *e = b + slot + SB_COMMIT_LIST + (size_t)r * SB_COMMIT_ENTRY;
        uint64_t at = get64(e), len = (uint64_t)get32(e + 8) * COW_BLOCK_SIZE;
        if (at + len <= alen)
            memcpy(t + at, a + at, len); /* the old bytes are still there */
        else
            memset(t + at, 0, len);
        expect_torn_opens_at(t, blen, g, "old state");
        test_fsck_image(t, blen);
        free(t);
    }
    /* all of it there: the new commit */
    cow_store *s3;
    ck_assert_int_eq(cow_store_open_dev("whole", memdev_from_image(b, blen, NULL),
                                        COW_OPEN_READONLY, 0, &s3),
                     COW_OK);
    ck_assert_uint_eq(cow_store_generation(s3), g + 1);
    cow_store_close(s3);
    test_fsck_image(b, blen);
    free(a);
    free(b);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

/*
 * A commit that grows the container and flushes once: a power loss can keep
 * every write (the superblock included) and lose the grow, which only the
 * flush makes durable.  The store must then open, never refuse the
 * container as truncated: at the previous commit when the new one needs
 * blocks past the file's end (its superblock's device_bytes says so: it is
 * torn), or at the new one when it needs none (every other commit adds a
 * block group it does not use: with format 3 the file may end before
 * total_bytes); fsck agrees.  Appends 64 KiB per commit until the
 * container has grown a few times, checking the state before each
 * commit's flush completes.
 */
START_TEST(txn_lost_grow_falls_back)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    uint8_t *data = malloc(64 << 10);
    uint64_t rs = 7;
    int grows = 0;
    for (int i = 0; i < 200 && grows < 8; i++) {
        test_fill(&rs, data, (64 << 10));
        ck_assert_int_eq(cow_file_write(f, data, 64 << 10, (uint64_t)i << 16), COW_OK);
        uint64_t g = cow_store_generation(st);
        /* the commit, with its flush held back: the memdev keeps every
         * write since the last flush pending */
        ck_assert_int_eq(file_writeback_all(st), COW_OK);
        cow_mutex_lock(&st->lock);
        /* every other commit also grows for headroom it does not use (as
         * alloc_reserve does): no block it lists lies in the new space */
        int crc = i % 2 ? alloc_add_group(st, COW_BG_METADATA) : COW_OK;
        if (crc == COW_OK)
            crc = commit_transaction(st, 0);
        cow_mutex_unlock(&st->lock);
        ck_assert_int_eq(crc, COW_OK);
        size_t nunits, nsizes;
        memdev_pending(dev, &nunits, &nsizes);
        if (nsizes > 0 && cow_store_generation(st) > g) {
            grows++;
            uint8_t *keep = malloc(nunits + 1);
            memset(keep, 0xff, nunits + 1);
            size_t len;
            uint8_t *img = memdev_crash_state(dev, keep, 0, &len); /* sizes lost */
            cow_store *s2;
            int orc = cow_store_open_dev("lost-grow", memdev_from_image(img, len, NULL),
                                         COW_OPEN_READONLY, 0, &s2);
            ck_assert_msg(orc == COW_OK, "commit %d with its grow lost: %s", i,
                          cow_store_last_error(NULL));
            /* the new commit only if the file holds all it needs */
            if (cow_store_generation(s2) > g) {
                ck_assert_uint_eq(cow_store_generation(s2), g + 1);
                for (int c = 0; c < 2; c++)
                    if (get64(img + c * COW_BLOCK_SIZE + SB_GENERATION) == g + 1)
                        ck_assert_uint_le(get64(img + c * COW_BLOCK_SIZE + SB_DEVICE_BYTES), len);
            }
            cow_store_close(s2);
            test_fsck_image(img, len);
            free(img);
            free(keep);
        }
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    ck_assert_int_ge(grows, 1);
    free(data);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* Opens IMG read-only and checks file "db" holds exactly WANT (LEN bytes). */
static void expect_image(const uint8_t *img, size_t ilen, const uint8_t *want, size_t len)
{
    cow_store *s2;
    cow_file *f2;
    int orc = cow_store_open_dev("img", memdev_from_image(img, ilen, NULL), COW_OPEN_READONLY, 0,
                                 &s2);
    ck_assert_msg(orc == COW_OK, "open: %s", cow_store_last_error(NULL));
    ck_assert_int_eq(cow_file_open(s2, "db", 0, &f2), COW_OK);
    struct fmodel m = {(uint8_t *)want, len};
    fm_compare(f2, &m);
    cow_file_close(f2);
    cow_store_close(s2);
    test_fsck_image(img, ilen);
}

START_TEST(txn_persist_crashes)
{
    uint64_t rs = test_seed() ^ 0x5c5c;
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_background(&dev, &ctl, "db", &f);
    /* no flush but the test's own (a background relocation, which a busy
     * machine may make late, flushes) */
    struct cow_reloc_config rc;
    cow_store_get_reloc(st, &rc);
    rc.enabled = 0;
    cow_store_set_reloc(st, &rc);
    enum { SZ = 200000 };
    uint8_t *flushed = calloc(SZ, 1), *live = calloc(SZ, 1);
    for (int round = 0; round < 12; round++) {
        /* a flushed commit: state A */
        for (int i = 0; i < 20; i++) {
            size_t off = test_rand(&rs) % (SZ - 9000), len = 1 + test_rand(&rs) % 9000;
            test_fill(&rs, live + off, len);
            ck_assert_int_eq(cow_file_write(f, live + off, len, off), COW_OK);
        }
        ck_assert_int_eq(cow_file_truncate(f, SZ), COW_OK);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
        memcpy(flushed, live, SZ);
        uint64_t flushes = ctl->nflush, gen0 = cow_store_generation(st);
        /* changes made to survive an application crash, overwriting (and
         * so freeing) A's blocks: log records, or commits, without flush */
        int n = 1 + (int)(test_rand(&rs) % 4);
        for (int k = 0; k < n; k++) {
            for (int i = 0; i < 10; i++) {
                size_t off = test_rand(&rs) % (SZ - 9000), len = 1 + test_rand(&rs) % 9000;
                test_fill(&rs, live + off, len);
                ck_assert_int_eq(cow_file_write(f, live + off, len, off), COW_OK);
            }
            ck_assert_int_eq(cow_store_persist(st), COW_OK);
        }
        ck_assert_uint_eq(ctl->nflush, flushes); /* no flush at all */
        size_t dlen, vlen;
        uint8_t *dur = memdev_crash_image(dev, &dlen);
        uint8_t *vol = memdev_image(dev, &vlen);
        ck_assert_uint_ge(vlen, dlen);
        /* power loss with nothing written back: the flushed commit */
        expect_image(dur, dlen, flushed, SZ);
        /* an application crash: the kernel has everything, the last commit */
        expect_image(vol, vlen, live, SZ);
        /* power loss after the kernel wrote back every block but the
         * superblocks: the flushed commit, intact (nothing it uses was
         * overwritten, though the later changes freed much of it), with
         * the log records written without flush replayed onto it */
        uint8_t *mix = malloc(vlen);
        memcpy(mix, vol, vlen);
        memcpy(mix, dur, 2 * COW_BLOCK_SIZE);
        if (cow_store_generation(st) == gen0) /* all of it in the log */
            expect_image(mix, vlen, live, SZ);
        /* ... and after it wrote back only the newest superblock: torn, so
         * again the flushed commit */
        memcpy(mix, dur, dlen);
        memset(mix + dlen, 0, vlen - dlen);
        memcpy(mix, vol, 2 * COW_BLOCK_SIZE);
        expect_image(mix, vlen, flushed, SZ);
        free(mix);
        free(dur);
        free(vol);
    }
    /* a flushed commit after commits without flush makes them durable */
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t dlen;
    uint8_t *dur = memdev_crash_image(dev, &dlen);
    expect_image(dur, dlen, live, SZ);
    free(dur);
    free(flushed);
    free(live);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

/* ---- the log: fast fsync, replay, and every crash between two syncs ---- */

/* 1 if file NAME of store ST holds exactly M. */
static int fm_equal(cow_store *st, const char *name, const struct fmodel *m)
{
    cow_file *f;
    uint64_t size;
    size_t n;
    int eq = 0;
    ck_assert_int_eq(cow_file_open(st, name, 0, &f), COW_OK);
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    if (size == m->size) {
        uint8_t *buf = malloc(m->size + 1);
        ck_assert_int_eq(cow_file_read(f, buf, m->size, 0, &n), COW_OK);
        eq = m->size == 0 || memcmp(buf, m->data, m->size) == 0;
        free(buf);
    }
    cow_file_close(f);
    return eq;
}

enum { LOG_NFILES = 2 };
static const char *log_names[LOG_NFILES] = {"db", "db-wal"};

/* 0 if IMG opens (read-only: replay in memory) to exactly state A, 1 if to
 * state B, 2 if A and B are the same; fails the test otherwise. */
static int which_state(const uint8_t *img, size_t len, const struct fmodel *a,
                       const struct fmodel *b)
{
    cow_store *s2;
    int orc = cow_store_open_dev("img", memdev_from_image(img, len, NULL), COW_OPEN_READONLY, 0,
                                 &s2);
    ck_assert_msg(orc == COW_OK, "open: %s", cow_store_last_error(NULL));
    int isa = 1, isb = 1;
    for (int i = 0; i < LOG_NFILES; i++) {
        int ea = fm_equal(s2, log_names[i], &a[i]), eb = fm_equal(s2, log_names[i], &b[i]);
        if (!ea && !eb) {
            cow_file *f;
            uint64_t size;
            ck_assert_int_eq(cow_file_open(s2, log_names[i], 0, &f), COW_OK);
            cow_file_size(f, &size);
            fprintf(stderr, "%s: size %llu, before %zu, after %zu\n", log_names[i],
                    (unsigned long long)size, a[i].size, b[i].size);
            cow_file_close(f);
        }
        isa &= ea;
        isb &= eb;
    }
    cow_store_close(s2);
    if (!isa && !isb)
        test_write_file("/tmp/cow-log-fail.img", img, len);
    ck_assert_msg(isa || isb, "a crash gave neither the state before nor after the sync "
                              "(image in /tmp/cow-log-fail.img)");
    return isa && isb ? 2 : isa ? 0 : 1;
}

START_TEST(log_sync_is_one_flush_and_survives_power_loss)
{
    uint64_t rs = test_seed() ^ 0x106;
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, &ctl);
    cow_file *f[LOG_NFILES];
    struct fmodel live[LOG_NFILES] = {{0}}, dur[LOG_NFILES] = {{0}}, prev[LOG_NFILES] = {{0}};
    for (int i = 0; i < LOG_NFILES; i++)
        ck_assert_int_eq(cow_file_open(st, log_names[i], 1, &f[i]), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t plen;
    uint8_t *pimg = memdev_crash_image(dev, &plen);
    uint64_t logged = 0, states = 0, saw_before = 0, saw_after = 0;
    uint8_t buf[20000];
    for (int step = 0; step < 150; step++) {
        int fi = (int)(test_rand(&rs) % LOG_NFILES);
        /* changes to both files; only file FI is synced */
        for (int k = 0; k < 1 + (int)(test_rand(&rs) % 4); k++) {
            int w = (int)(test_rand(&rs) % LOG_NFILES);
            if (test_rand(&rs) % 8 == 0) {
                size_t size = test_rand(&rs) % 120000;
                ck_assert_int_eq(cow_file_truncate(f[w], size), COW_OK);
                fm_truncate(&live[w], size);
            } else if (test_rand(&rs) % 6 == 0) {
                /* preallocation (SIZE_HINT): invisible to the model, and
                 * later writes there go in place */
                size_t end = live[w].size + test_rand(&rs) % 200000;
                ck_assert_int_eq(cow_file_preallocate(f[w], end), COW_OK);
            } else {
                size_t off = test_rand(&rs) % 100000, len = 1 + test_rand(&rs) % sizeof buf;
                if (w == 1) /* the WAL appends */
                    off = live[w].size;
                test_fill(&rs, buf, len);
                ck_assert_int_eq(cow_file_write(f[w], buf, len, off), COW_OK);
                fm_write(&live[w], buf, len, off);
            }
        }
        for (int i = 0; i < LOG_NFILES; i++)
            fm_copy(&prev[i], &dur[i]);
        uint64_t gen = cow_store_generation(st), fl = ctl->nflush;
        struct cow_stats s0, s1;
        cow_store_stats(st, &s0);
        ck_assert_int_eq(cow_file_sync(f[fi]), COW_OK);
        cow_store_stats(st, &s1);
        if (s1.log_syncs > s0.log_syncs) {
            /* the fast path: one flush, no commit */
            ck_assert_uint_le(ctl->nflush - fl, 1); /* none if nothing changed */
            ck_assert_uint_eq(cow_store_generation(st), gen);
            logged++;
        } else {
            /* a full commit: every file is durable */
            for (int i = 0; i < LOG_NFILES; i++)
                fm_copy(&dur[i], &live[i]);
        }
        fm_copy(&dur[fi], &live[fi]);
        /* a power loss at any instant of that sync: any subset of the
         * blocks it wrote, some torn at 512-byte sectors, on top of the
         * image before it; the result is the state before or after */
        size_t clen;
        uint8_t *cimg = memdev_crash_image(dev, &clen);
        size_t nb = clen / COW_BLOCK_SIZE;
        uint64_t *diff = malloc(nb * sizeof *diff);
        size_t nd = 0;
        for (size_t b = 0; b < nb; b++)
            if (b * COW_BLOCK_SIZE >= plen ||
                memcmp(cimg + b * COW_BLOCK_SIZE, pimg + b * COW_BLOCK_SIZE, COW_BLOCK_SIZE))
                diff[nd++] = b;
        uint8_t *img = malloc(clen);
        for (int trial = 0; trial < 12; trial++) {
            memset(img, 0, clen);
            memcpy(img, pimg, plen < clen ? plen : clen);
            int all = trial == 0;
            for (size_t d = 0; d < nd; d++) {
                size_t at = diff[d] * COW_BLOCK_SIZE;
                if (all || test_rand(&rs) % 2) {
                    memcpy(img + at, cimg + at, COW_BLOCK_SIZE);
                } else if (test_rand(&rs) % 2) {
                    for (int sec = 0; sec < 8; sec++) /* torn */
                        if (test_rand(&rs) % 2)
                            memcpy(img + at + sec * 512, cimg + at + sec * 512, 512);
                }
            }
            int r = which_state(img, clen, prev, dur);
            if (all)
                ck_assert_msg(r != 0, "the whole sync on disk did not give its state");
            saw_before += r == 0;
            saw_after += r == 1;
            states++;
        }
        /* read-write open of the whole image: replayed, committed, clean */
        if (step % 10 == 0) {
            cow_store *s2;
            struct cow_dev *d2 = memdev_from_image(cimg, clen, NULL);
            ck_assert_int_eq(cow_store_open_dev("rw", d2, 0, 0, &s2), COW_OK);
            for (int i = 0; i < LOG_NFILES; i++)
                ck_assert(fm_equal(s2, log_names[i], &dur[i]));
            fsck_memdev(s2, d2);
            cow_store_close(s2);
        }
        free(img);
        free(diff);
        free(pimg);
        pimg = cimg;
        plen = clen;
    }
    ck_assert_uint_gt(logged, 100); /* most syncs took the fast path */
    ck_assert_uint_gt(saw_before, 0);
    struct cow_stats cs;
    cow_store_stats(st, &cs);
    ck_assert_uint_gt(cs.written_in_place, 0); /* writes into preallocated extents */
    printf("log: %llu of 150 syncs through the log; %llu crash states (%llu before, %llu after)\n",
           (unsigned long long)logged, (unsigned long long)states,
           (unsigned long long)saw_before, (unsigned long long)saw_after);
    free(pimg);
    for (int i = 0; i < LOG_NFILES; i++) {
        cow_file_close(f[i]);
        free(live[i].data);
        free(dur[i].data);
        free(prev[i].data);
    }
    cow_store_close(st);
}
END_TEST

/* A commit whose tree block write fails after syncs went through the log
 * fails alone: what the syncs logged and the unsynced write stay. */
START_TEST(log_abort_keeps_synced_data)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, &ctl, "db", &f);
    struct fmodel m = {0};
    uint8_t buf[9000];
    memset(buf, '0', sizeof buf);
    ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, 0), COW_OK); /* a data group */
    fm_write(&m, buf, sizeof buf, 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    for (int i = 0; i < 4; i++) { /* as many as a new container's log holds */
        memset(buf, 'a' + i, sizeof buf);
        ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, (size_t)i * 5000), COW_OK);
        fm_write(&m, buf, sizeof buf, (size_t)i * 5000);
        ck_assert_int_eq(cow_file_sync(f), COW_OK);
    }
    struct cow_stats s;
    cow_store_stats(st, &s);
    ck_assert_uint_eq(s.log_syncs, 4);
    /* an unsynced write, then a commit that fails: it loses neither the
     * write nor what the syncs logged */
    memset(buf, 'z', sizeof buf);
    ck_assert_int_eq(cow_file_write(f, buf, 100, 0), COW_OK);
    fm_write(&m, buf, 100, 0);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK); /* the data is in the trees */
    ctl->fail_writes_after = 1;
    ck_assert_int_ne(cow_store_commit(st), COW_OK);
    ctl->fail_writes_after = 0;
    fm_compare(f, &m);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    fm_compare(f, &m);
    cow_file_close(f);
    cow_store_close(st);
    free(m.data);
}
END_TEST

/* On any target: txn_crash_gives_last_commit (a crash there is a reader
 * beside the writer: what the last flush left).  The others need a
 * memdev's crash states, torn images, failures or flush counts. */
void txn_any_target(TCase *tc)
{
    tcase_add_test(tc, txn_crash_gives_last_commit);
}

/* The log areas follow what the container holds (format.h, log.c
 * log_area_blocks): 4 blocks each in a new container, whose syncs are
 * still logged; 16 once it holds 512 KiB, 64 once it reaches 4 MiB; and a
 * balance after most of it is deleted takes them back to 4.  fsck clean
 * at each step.  A new container had 16-block areas (232 KiB for one row
 * where 136 KiB now do). */
static uint32_t log_blocks_of(cow_store *st)
{
    cow_mutex_lock(&st->lock);
    uint32_t n = st->log_blocks;
    cow_mutex_unlock(&st->lock);
    return n;
}

/* Writes random bytes to F over [FROM, TO), commits twice (what the
 * writes freed is then free), and expects log areas of WANT blocks and a
 * clean fsck. */
static void grow_then_expect(cow_store *st, struct cow_dev *dev, cow_file *f, uint64_t *rs,
                             uint64_t from, uint64_t to, uint32_t want)
{
    uint8_t buf[4096];
    for (uint64_t off = from; off < to; off += sizeof buf) {
        test_fill(rs, buf, sizeof buf);
        ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, off), COW_OK);
    }
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_uint_eq(log_blocks_of(st), want);
    fsck_memdev(st, dev);
}

START_TEST(log_areas_follow_the_size)
{
    uint64_t rs = test_seed() ^ 0x10a5;
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, NULL);
    cow_file *f, *big;
    uint8_t buf[4096];
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_uint_eq(log_blocks_of(st), COW_LOG_AREA_BLOCKS_TINY);
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    for (int i = 0; i < 8; i++) {
        test_fill(&rs, buf, sizeof buf);
        ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, (uint64_t)i * sizeof buf), COW_OK);
        ck_assert_int_eq(cow_file_sync(f), COW_OK);
    }
    cow_store_stats(st, &s1);
    ck_assert_msg(s1.log_syncs - s0.log_syncs >= 4, "%llu of 8 syncs logged in 4-block areas",
                  (unsigned long long)(s1.log_syncs - s0.log_syncs));
    fsck_memdev(st, dev);
    /* 512 KiB held: 16 blocks */
    ck_assert_int_eq(cow_file_open(st, "big", 1, &big), COW_OK);
    grow_then_expect(st, dev, big, &rs, 0, 640 * 1024, COW_LOG_AREA_BLOCKS_SMALL);
    /* 4 MiB: 64 blocks */
    grow_then_expect(st, dev, big, &rs, 640 * 1024, 5 * 1024 * 1024, COW_LOG_AREA_BLOCKS);
    /* most of it gone: a balance takes them back down to 4 */
    cow_file_close(big);
    ck_assert_int_eq(cow_unlink(st, "big"), COW_OK);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_store_balance(st, NULL, NULL), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_uint_eq(log_blocks_of(st), COW_LOG_AREA_BLOCKS_TINY);
    test_fill(&rs, buf, sizeof buf);
    ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, 0), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    fsck_memdev(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK); /* and its memdev */
}
END_TEST

Suite *txn_suite(void)
{
    Suite *s = suite_create("txn");
    test_case(s, "txn", 300, txn_crash_gives_last_commit, txn_torn_superblock_falls_back,
              txn_failed_write_keeps_transaction, txn_torn_one_flush_commit, txn_persist_crashes,
              txn_lost_grow_falls_back, log_sync_is_one_flush_and_survives_power_loss,
              log_abort_keeps_synced_data, log_areas_follow_the_size, NULL);
    return s;
}
