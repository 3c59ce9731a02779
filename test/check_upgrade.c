/*
 * check_upgrade.c - a container of format version 1 (the previous release)
 * opens, fscks clean, and is upgraded in place to version 2 by its first
 * commit, through every state a crash can leave (docs/FORMAT.md,
 * "Versions").
 *
 * The version-1 containers are made here from version-2 ones: downgrade()
 * rewrites an image to the bytes version 1 wrote (commit list at byte 168,
 * no prev_generation or prev_log_records, log record bytes 40..47 zero,
 * version 1, checksums recomputed).  Nothing else differs between the two
 * versions, so the result is what the previous release leaves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "commit.h"
#include "store_int.h"
#include "testutil.h"
#include "../tools/fsck.h"

#define BLK COW_BLOCK_SIZE
#define NFILES 2
#define MAXLEN (8 * BLK)

static const char *const names[NFILES] = {"db", "db-wal"};

/* What the files hold (every byte written and made durable). */
struct model {
    uint8_t data[NFILES][MAXLEN];
    uint64_t len[NFILES];
};

/* Writes N random bytes at OFF to file I, through F and into M. */
static void put(struct model *m, cow_file *f, int i, uint64_t off, size_t n, uint64_t *rs)
{
    ck_assert_uint_le(off + n, MAXLEN);
    test_fill(rs, m->data[i] + off, n);
    ck_assert_int_eq(cow_file_write(f, m->data[i] + off, n, off), COW_OK);
    if (off + n > m->len[i])
        m->len[i] = off + n;
}

/* Whether every file of ST holds what M says; if not, why in WHY. */
static int files_match(cow_store *st, const struct model *m, char *why, size_t whylen)
{
    static uint8_t buf[MAXLEN];
    for (int i = 0; i < NFILES; i++) {
        cow_file *f;
        uint64_t size;
        size_t n;
        if (cow_file_open(st, names[i], 0, &f) != COW_OK) {
            snprintf(why, whylen, "%s: %s", names[i], cow_store_last_error(NULL));
            return 0;
        }
        ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
        int same = size == m->len[i];
        if (same) {
            ck_assert_int_eq(cow_file_read(f, buf, (size_t)size, 0, &n), COW_OK);
            same = n == size && memcmp(buf, m->data[i], (size_t)size) == 0;
        }
        cow_file_close(f);
        if (!same) {
            snprintf(why, whylen, "%s (%llu bytes, expected %llu) differs", names[i],
                     (unsigned long long)size, (unsigned long long)m->len[i]);
            return 0;
        }
    }
    return 1;
}

/* Every file of ST holds what M says. */
static void expect_files(cow_store *st, const struct model *m, const char *when)
{
    char why[600];
    ck_assert_msg(files_match(st, m, why, sizeof why), "%s: %s", when, why);
}

/*
 * A container of the current version on a memdev: both files written over two flushed
 * commits, then two log records pending replay (two xSyncs; the second
 * says the first was flushed).  Returns its durable image (*LEN), what the
 * files hold in M.
 */
static uint8_t *make_current(size_t *len, struct model *m, uint64_t *rs)
{
    struct cow_dev *dev = memdev_new(NULL);
    cow_store *st;
    cow_file *f[NFILES];
    memset(m, 0, sizeof *m);
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_store_set_commit_interval(st, 0);
    for (int i = 0; i < NFILES; i++)
        ck_assert_int_eq(cow_file_open(st, names[i], 1, &f[i]), COW_OK);
    put(m, f[0], 0, 0, 5 * BLK, rs);
    put(m, f[1], 1, 0, 2 * BLK, rs);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    put(m, f[0], 0, 2 * BLK, BLK + 100, rs);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t g = cow_store_generation(st);
    put(m, f[1], 1, BLK, 3 * BLK, rs);
    ck_assert_int_eq(cow_file_sync(f[1]), COW_OK);
    put(m, f[0], 0, 0, 200, rs);
    put(m, f[0], 0, 6 * BLK, BLK, rs);
    ck_assert_int_eq(cow_file_sync(f[0]), COW_OK);
    ck_assert_uint_eq(cow_store_generation(st), g); /* both through the log */
    uint8_t *img = memdev_crash_image(dev, len);
    for (int i = 0; i < NFILES; i++)
        cow_file_close(f[i]);
    cow_store_close(st);
    return img;
}

static void sb_recsum(uint8_t *sb)
{
    put32(sb + SB_CSUM, crc32c(0, sb + 4, BLK - 4));
}

/*
 * Rewrites the current (version 3) image IMG, which has no remap tree and
 * a file covering every block group, as version VER (1 or 2) wrote it: in
 * each superblock copy the commit list moves from 208 back to 184 (over
 * device_bytes and the remap tree's root) or 168 (over prev_generation
 * and prev_log_records too), the version is VER and the crc is
 * recomputed; for version 1, in every whole log record of both areas
 * bytes 40..47 (durable, flags) are cleared and the record's crc
 * recomputed.  Returns how many records it found.
 */
static int downgrade_to(uint8_t *img, size_t len, uint32_t ver)
{
    size_t at = ver == 1 ? SB_COMMIT_LIST_V1 : SB_COMMIT_LIST_V2;
    for (int s = 0; s < COW_SB_COPIES; s++) {
        uint8_t *sb = img + (size_t)s * BLK;
        ck_assert_uint_eq(get32(sb + SB_VERSION), COW_FORMAT_VERSION);
        ck_assert_uint_eq(crc32c(0, sb + 4, BLK - 4), get32(sb + SB_CSUM));
        ck_assert_uint_eq(get64(sb + SB_REMAP_TREE), 0);
        ck_assert_uint_le(get64(sb + SB_TOTAL_BYTES), len);
        size_t n = get32(sb + SB_COMMIT_NRANGES) * (size_t)SB_COMMIT_ENTRY;
        memmove(sb + at, sb + SB_COMMIT_LIST, n);
        memset(sb + at + n, 0, BLK - at - n);
        put32(sb + SB_VERSION, ver);
        sb_recsum(sb);
    }
    int nrec = 0;
    uint32_t nb = get32(img + SB_LOG_BLOCKS);
    for (int k = 0; k < COW_SB_COPIES; k++) {
        uint64_t area = get64(img + (k ? SB_LOG_AREA1 : SB_LOG_AREA0));
        ck_assert_uint_le(area + (uint64_t)nb * BLK, len);
        for (uint32_t pos = 0; pos < nb;) {
            uint8_t *h = img + area + (uint64_t)pos * BLK;
            uint32_t rb = get32(h + LOG_NBLOCKS);
            if (get32(h + LOG_MAGIC) != COW_LOG_MAGIC || rb == 0 || rb > nb - pos ||
                crc32c(0, h + 4, (size_t)rb * BLK - 4) != get32(h + LOG_CSUM)) {
                pos++;
                continue;
            }
            if (ver == 1) {
                memset(h + LOG_DURABLE, 0, 8);
                put32(h + LOG_CSUM, crc32c(0, h + 4, (size_t)rb * BLK - 4));
            }
            nrec++;
            pos += rb;
        }
    }
    return nrec;
}

static void expect_fsck_clean(const uint8_t *img, size_t len, uint32_t version, const char *when)
{
    char *report;
    uint32_t v;
    uint64_t np = test_fsck_report(img, len, &report, &v);
    ck_assert_msg(np == 0, "%s: fsck:\n%s", when, report);
    if (version)
        ck_assert_msg(v == version, "%s: fsck used a copy of version %u, expected %u", when, v,
                      version);
    free(report);
}

/* A device that forwards to the memdev IN but does not close it, so the
 * test can look at the memdev (its images, its pending writes) after the
 * store that used it is gone. */
static struct cow_dev *keep_dev(struct cow_dev *in)
{
    struct cow_dev *d = fwd_dev_new(in, NULL, NULL);
    ck_assert_ptr_nonnull(d);
    return d;
}

/* Opens IMG (a copy of it) with FLAGS; fails the test with the error. */
static cow_store *open_img(const uint8_t *img, size_t len, int flags, const char *when)
{
    cow_store *st = NULL;
    int rc = cow_store_open_dev("v1", memdev_from_image(img, len, NULL), flags, 0, &st);
    ck_assert_msg(rc == COW_OK, "%s: open: %s", when, cow_store_last_error(NULL));
    cow_store_set_commit_interval(st, 0);
    return st;
}

/* A version-1 image (*LEN bytes) with two records pending, and its files. */
static uint8_t *make_v1(size_t *len, struct model *m, uint64_t *rs)
{
    uint8_t *img = make_current(len, m, rs);
    ck_assert_int_eq(downgrade_to(img, *len, 1), 2);
    return img;
}

/* cowctl dump's listing of IMG; fails the test unless it holds WANT. */
static void expect_dump(const uint8_t *img, size_t len, const char *want)
{
    char *dir = test_mkdtemp(), *text;
    char p[4200];
    snprintf(p, sizeof p, "%s/image.cow", dir);
    test_write_file(p, img, len);
    size_t tlen;
    FILE *out = open_memstream(&text, &tlen);
    int rc = cow_dump(p, 0, UINT64_MAX, out);
    fclose(out);
    test_rmdir(dir);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strstr(text, want) != NULL, "dump says:\n%s\nexpected '%s'", text, want);
    free(text);
}

/* fsck reads a version-1 container as clean and dump names its version; a
 * read-only open replays its log in memory, reads every file and changes
 * no byte of the device. */
START_TEST(upgrade_v1_read_only)
{
    uint64_t rs = test_seed() ^ 0x0b1;
    struct model m;
    size_t len;
    uint8_t *img = make_v1(&len, &m, &rs);
    expect_fsck_clean(img, len, 1, "version 1");
    expect_dump(img, len, ", format version 1\n");

    struct cow_dev *md = memdev_from_image(img, len, NULL);
    cow_store *st;
    ck_assert_msg(cow_store_open_dev("v1", keep_dev(md), COW_OPEN_READONLY, 0, &st) == COW_OK,
                  "read-only open of version 1: %s", cow_store_last_error(NULL));
    struct cow_stats stats;
    cow_store_stats(st, &stats);
    ck_assert_uint_eq(stats.replayed, 2); /* version-1 records, as they are */
    expect_files(st, &m, "read-only");
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    size_t l2, l3;
    uint8_t *vol = memdev_image(md, &l2), *dur = memdev_crash_image(md, &l3);
    ck_assert_uint_eq(l2, len);
    ck_assert_uint_eq(l3, len);
    ck_assert_msg(memcmp(vol, img, len) == 0 && memcmp(dur, img, len) == 0,
                  "a read-only open changed the container");
    free(vol);
    free(dur);
    md->close(md);
    free(img);
}
END_TEST

/* A writable open replays the version-1 log, commits version 2 and then
 * rewrites the other copy too (commit_upgrade), so that the previous release,
 * which cannot read version 2, refuses the container instead of silently
 * opening the older version-1 copy; after writes and close, fsck is clean
 * and the data is all there. */
/* Version 2 (the previous release: no device_bytes, no remap tree, the
 * commit list at 184): fsck and a read-only open read it as it is; a
 * writable open replays its log and leaves both copies version 3, the
 * files whole and fsck clean. */
START_TEST(upgrade_v2)
{
    uint64_t rs = test_seed() ^ 0x0b4;
    struct model m;
    size_t len;
    uint8_t *img = make_current(&len, &m, &rs);
    ck_assert_int_eq(downgrade_to(img, len, 2), 2);
    expect_fsck_clean(img, len, 2, "version 2");
    cow_store *st = open_img(img, len, COW_OPEN_READONLY, "read-only, version 2");
    expect_files(st, &m, "read-only, version 2");
    ck_assert_int_eq(cow_store_close(st), COW_OK);

    struct cow_dev *md = memdev_from_image(img, len, NULL);
    ck_assert_msg(cow_store_open_dev("v2", keep_dev(md), 0, 0, &st) == COW_OK,
                  "writable open of version 2: %s", cow_store_last_error(NULL));
    cow_store_set_commit_interval(st, 0);
    expect_files(st, &m, "writable, version 2");
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    size_t l;
    uint8_t *now = memdev_crash_image(md, &l);
    md->close(md);
    ck_assert_uint_eq(get32(now + SB_VERSION), COW_FORMAT_VERSION);
    ck_assert_uint_eq(get32(now + BLK + SB_VERSION), COW_FORMAT_VERSION);
    expect_fsck_clean(now, l, COW_FORMAT_VERSION, "version 2 upgraded");
    st = open_img(now, l, 0, "reopen after the upgrade");
    expect_files(st, &m, "reopened after the upgrade");
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(now);
    free(img);
}
END_TEST

START_TEST(upgrade_v1_writable)
{
    uint64_t rs = test_seed() ^ 0x0b2;
    struct model m;
    size_t len;
    uint8_t *img = make_v1(&len, &m, &rs);
    uint64_t g1 = get64(img + SB_GENERATION) > get64(img + BLK + SB_GENERATION)
                      ? get64(img + SB_GENERATION)
                      : get64(img + BLK + SB_GENERATION);

    struct cow_dev *md = memdev_from_image(img, len, NULL);
    cow_store *st;
    ck_assert_msg(cow_store_open_dev("v1", keep_dev(md), 0, 0, &st) == COW_OK,
                  "writable open of version 1: %s", cow_store_last_error(NULL));
    cow_store_set_commit_interval(st, 0);
    struct cow_stats stats;
    cow_store_stats(st, &stats);
    ck_assert_uint_eq(stats.replayed, 2);
    expect_files(st, &m, "writable, replayed");
    /* the replay's commit, then the other copy's */
    ck_assert_uint_eq(cow_store_generation(st), g1 + 2);

    /* on the device now: both copies version 2, the newest written after
     * the replay's commit, which was written after the version-1 one */
    size_t l;
    uint8_t *now = memdev_crash_image(md, &l);
    int s = get64(now + BLK + SB_GENERATION) > get64(now + SB_GENERATION);
    ck_assert_uint_eq(get64(now + (size_t)s * BLK + SB_GENERATION), g1 + 2);
    ck_assert_uint_eq(get32(now + (size_t)s * BLK + SB_VERSION), COW_FORMAT_VERSION);
    ck_assert_uint_eq(get64(now + (size_t)s * BLK + SB_PREV_GENERATION), g1 + 1);
    ck_assert_uint_eq(get64(now + (size_t)(1 - s) * BLK + SB_GENERATION), g1 + 1);
    ck_assert_uint_eq(get32(now + (size_t)(1 - s) * BLK + SB_VERSION), COW_FORMAT_VERSION);
    ck_assert_uint_eq(get64(now + (size_t)(1 - s) * BLK + SB_PREV_GENERATION), g1);
    ck_assert_uint_eq(get32(now + (size_t)(1 - s) * BLK + SB_PREV_LOG_RECORDS), 2);
    expect_fsck_clean(now, l, COW_FORMAT_VERSION, "after the upgrade commits");
    free(now);

    cow_file *f0, *f1;
    ck_assert_int_eq(cow_file_open(st, names[0], 0, &f0), COW_OK);
    ck_assert_int_eq(cow_file_open(st, names[1], 0, &f1), COW_OK);
    put(&m, f0, 0, BLK, 2 * BLK, &rs);
    ck_assert_int_eq(cow_file_sync(f0), COW_OK); /* a record on the upgrade commit */
    put(&m, f1, 1, 0, 100, &rs);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    put(&m, f1, 1, 4 * BLK, BLK, &rs);
    expect_files(st, &m, "after writes");
    cow_file_close(f0);
    cow_file_close(f1);
    ck_assert_int_eq(cow_store_close(st), COW_OK);

    uint8_t *done = memdev_crash_image(md, &l);
    md->close(md);
    ck_assert_uint_eq(get32(done + SB_VERSION), COW_FORMAT_VERSION);
    ck_assert_uint_eq(get32(done + BLK + SB_VERSION), COW_FORMAT_VERSION);
    expect_fsck_clean(done, l, COW_FORMAT_VERSION, "after close");
    st = open_img(done, l, 0, "reopen");
    expect_files(st, &m, "reopened");
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(done);
    free(img);
}
END_TEST

/*
 * Every state a crash can leave while a writable open upgrades a version-1
 * container (each of the open's flushes made to fail, the writes before it
 * then kept, dropped, torn in the memdev's crash states) opens, read-only
 * and writable, with every file as it was, and fscks clean.
 */
START_TEST(upgrade_v1_crash_states)
{
    uint64_t rs = test_seed() ^ 0x0b3;
    struct model m;
    size_t len;
    uint8_t *img = make_v1(&len, &m, &rs);
    int tried = 0, flushes = 0;
    for (long at = 1;; at++) {
        struct cow_dev *md = memdev_from_image(img, len, NULL);
        memdev_set_fail(md, 0, 0, at, 0);
        cow_store *st;
        int rc = cow_store_open_dev("v1", keep_dev(md), 0, 0, &st);
        if (memdev_fail_pending(md) > 0) { /* the open made fewer than AT flushes */
            ck_assert_msg(rc == COW_OK, "open: %s", cow_store_last_error(NULL));
            memdev_set_fail(md, 0, 0, 0, 0);
            ck_assert_int_eq(cow_store_close(st), COW_OK);
            md->close(md);
            break;
        }
        ck_assert_int_ne(rc, COW_OK); /* its flush failed: the writes are pending */
        flushes++;
        size_t nunits, nsizes;
        memdev_pending(md, &nunits, &nsizes);
        uint8_t *keep = malloc(nunits + 1);
        for (size_t round = 0; round < nunits + 2 + 20; round++) {
            memdev_keep_pattern(round, nunits, keep, &rs);
            for (size_t ns = 0; ns <= nsizes; ns += nsizes ? nsizes : 1) {
                size_t cl;
                uint8_t *c = memdev_crash_state(md, keep, ns, &cl);
                char when[96];
                snprintf(when, sizeof when, "flush %ld, crash state %zu of %zu units", at,
                         round, nunits);
                expect_fsck_clean(c, cl, 0, when);
                cow_store *ro = open_img(c, cl, COW_OPEN_READONLY, when);
                expect_files(ro, &m, when);
                ck_assert_int_eq(cow_store_close(ro), COW_OK);
                cow_store *rw = open_img(c, cl, 0, when);
                expect_files(rw, &m, when);
                ck_assert_int_eq(cow_store_close(rw), COW_OK);
                free(c);
                tried++;
            }
        }
        free(keep);
        md->close(md);
    }
    ck_assert_int_ge(flushes, 2); /* the open's first flush, and its commit's */
    ck_assert_int_gt(tried, 40);
    free(img);
}
END_TEST

/*
 * After the writable open both copies are version 2 (commit_upgrade).  A
 * record on the upgrade commits, then the next commit with its flush
 * failed: every crash state of it opens, with the files as the record left
 * them or as the commit made them.
 */
START_TEST(upgrade_v1_second_commit_crash_states)
{
    uint64_t rs = test_seed() ^ 0x0b5;
    struct model m, m2;
    size_t len;
    uint8_t *img = make_v1(&len, &m, &rs);
    struct cow_dev *md = memdev_from_image(img, len, NULL);
    cow_store *st;
    ck_assert_msg(cow_store_open_dev("v1", keep_dev(md), 0, 0, &st) == COW_OK, "open: %s",
                  cow_store_last_error(NULL));
    cow_store_set_commit_interval(st, 0);
    cow_file *f0, *f1;
    ck_assert_int_eq(cow_file_open(st, names[0], 0, &f0), COW_OK);
    ck_assert_int_eq(cow_file_open(st, names[1], 0, &f1), COW_OK);
    put(&m, f0, 0, 3 * BLK, BLK, &rs);
    ck_assert_int_eq(cow_file_sync(f0), COW_OK);
    m2 = m;
    put(&m2, f1, 1, 0, 2 * BLK, &rs);
    put(&m2, f0, 0, 7 * BLK, BLK, &rs);
    size_t l;
    uint8_t *now = memdev_crash_image(md, &l);
    int s = get64(now + BLK + SB_GENERATION) > get64(now + SB_GENERATION);
    ck_assert_uint_eq(get32(now + (size_t)s * BLK + SB_VERSION), COW_FORMAT_VERSION);
    ck_assert_uint_eq(get32(now + (size_t)(1 - s) * BLK + SB_VERSION), COW_FORMAT_VERSION);
    free(now);
    memdev_set_fail(md, 0, 0, 1, 0);
    ck_assert_int_ne(cow_store_commit(st), COW_OK); /* its flush failed */
    cow_file_close(f0);
    cow_file_close(f1);
    cow_store_close(st);

    size_t nunits, nsizes;
    memdev_pending(md, &nunits, &nsizes);
    ck_assert_uint_gt(nunits, 1);
    uint8_t *keep = malloc(nunits);
    int tried = 0, newer = 0;
    for (size_t round = 0; round < nunits + 2 + 20; round++) {
        memdev_keep_pattern(round, nunits, keep, &rs);
        size_t cl;
        uint8_t *c = memdev_crash_state(md, keep, nsizes, &cl);
        char when[96], why[600], why2[600];
        snprintf(when, sizeof when, "crash state %zu of %zu units", round, nunits);
        expect_fsck_clean(c, cl, 0, when);
        cow_store *ro = open_img(c, cl, COW_OPEN_READONLY, when);
        int old = files_match(ro, &m, why, sizeof why);
        int new = !old && files_match(ro, &m2, why2, sizeof why2);
        ck_assert_msg(old || new, "%s: neither before (%s) nor after (%s) the commit", when, why,
                      why2);
        newer += new;
        ck_assert_int_eq(cow_store_close(ro), COW_OK);
        free(c);
        tried++;
    }
    ck_assert_int_gt(newer, 0); /* the kept-all state has the commit */
    ck_assert_int_lt(newer, tried); /* the dropped-all one does not */
    free(keep);
    md->close(md);
    free(img);
}
END_TEST

/* A version-1 torn newest copy (its commit's blocks do not match) falls
 * back to the other copy, which it names nowhere: only its being older,
 * whole and intact is required. */
START_TEST(upgrade_v1_torn_newest)
{
    uint64_t rs = test_seed() ^ 0x0b4;
    struct model m;
    size_t len;
    uint8_t *img = make_v1(&len, &m, &rs);
    int s = get64(img + BLK + SB_GENERATION) > get64(img + SB_GENERATION);
    uint8_t *sb = img + (size_t)s * BLK;
    uint64_t g = get64(img + (size_t)(1 - s) * BLK + SB_GENERATION);
    ck_assert_uint_lt(g, get64(sb + SB_GENERATION));
    ck_assert(get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH);
    ck_assert_uint_gt(get32(sb + SB_COMMIT_NRANGES), 0);
    /* tear it: a block of its list (a tree block it wrote) never arrived */
    memset(img + get64(sb + SB_COMMIT_LIST_V1), 0, BLK);
    cow_store *st = open_img(img, len, COW_OPEN_READONLY, "torn version 1");
    ck_assert_uint_eq(cow_store_generation(st), g);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    expect_fsck_clean(img, len, 1, "torn version 1");
    free(img);
}
END_TEST

Suite *upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    test_case(s, "upgrade", 300, upgrade_v1_read_only, upgrade_v1_writable, upgrade_v2,
              upgrade_v1_crash_states,
              upgrade_v1_second_commit_crash_states, upgrade_v1_torn_newest, NULL);
    return s;
}
