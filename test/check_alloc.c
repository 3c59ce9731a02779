/*
 * check_alloc.c - the "alloc" suite: the extent allocator and its block
 * group accounting.
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

/* ---- allocator ---- */

static uint64_t sum_used(cow_store *st)
{
    uint64_t u = 0;
    for (size_t i = 0; i < st->nbgs; i++)
        u += st->bgs[i].used;
    return u;
}

/* 1 if ST holds (for readers elsewhere) a run overlapping [AT, +LEN). */
static int held_overlaps(cow_store *st, uint64_t at, uint64_t len)
{
    for (size_t k = 0; k < st->nheld; k++)
        if (st->held[k].bytenr < at + len && at < st->held[k].bytenr + st->held[k].bytes)
            return 1;
    return 0;
}

START_TEST(alloc_pinned_not_reused)
{
    struct cow_dev *dev;
    cow_store *st = target_store_background(&dev, NULL, NULL);
    cow_mutex_lock(&st->lock);
    uint64_t a, got, b;
    uint64_t used0 = sum_used(st);
    ck_assert_int_eq(alloc_blocks(st, 8, 0, &a, &got), COW_OK);
    ck_assert_uint_eq(got, 8);
    ck_assert_uint_eq(sum_used(st), used0 + 8 * COW_BLOCK_SIZE);
    ck_assert_int_eq(alloc_free(st, a, 8 * COW_BLOCK_SIZE), COW_OK);
    ck_assert_uint_eq(sum_used(st), used0);
    /* invariant 7: freed space is not handed out before the commit */
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(alloc_blocks(st, 1, i & 1, &b, &got), COW_OK);
        ck_assert_msg(b < a || b >= a + 8 * COW_BLOCK_SIZE, "pinned block %llu reused",
                      (unsigned long long)b);
        ck_assert_int_eq(alloc_free(st, b, COW_BLOCK_SIZE), COW_OK);
    }
    st->txn_dirty = 1;
    ck_assert_int_eq(commit_transaction(st, 1), COW_OK);
    /* after that commit it cools: the commit before the newest stays
     * whole (alloc_unpin_all) */
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(alloc_blocks(st, 1, i & 1, &b, &got), COW_OK);
        ck_assert_msg(b < a || b >= a + 8 * COW_BLOCK_SIZE, "cooling block %llu reused",
                      (unsigned long long)b);
        ck_assert_int_eq(alloc_free(st, b, COW_BLOCK_SIZE), COW_OK);
    }
    st->txn_dirty = 1;
    ck_assert_int_eq(commit_transaction(st, 1), COW_OK);
    /* on RADOS it is held instead, until a look at other clients' pins
     * (bdev.h readers_oldest) that began after that commit ends, on the
     * device's thread: commits until then (never on a memdev) */
    for (int i = 0; held_overlaps(st, a, 8 * COW_BLOCK_SIZE); i++) {
        ck_assert_msg(i < 1000, "freed space still held after %d commits", i);
        cow_mutex_unlock(&st->lock);
        usleep(10000);
        cow_mutex_lock(&st->lock);
        st->txn_dirty = 1;
        ck_assert_int_eq(commit_transaction(st, 1), COW_OK);
    }
    /* after the next flushed commit it is free again */
    st->data_cursor = 0;
    int seen = 0;
    for (int i = 0; i < 2000 && !seen; i++) {
        ck_assert_int_eq(alloc_blocks(st, 1, 0, &b, &got), COW_OK);
        seen = (b >= a && b < a + 8 * COW_BLOCK_SIZE);
    }
    ck_assert_msg(seen, "space freed before a commit was never reused after it");
    cow_mutex_unlock(&st->lock);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    (void)dev; /* raw allocations without trees: nothing for fsck to see */
}
END_TEST

START_TEST(alloc_grows_by_groups_and_enospc)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_background(&dev, &ctl, "db", &f);
    size_t len = 3 * (size_t)COW_DEFAULT_BG_SIZE;
    uint8_t *buf = malloc(len);
    memset(buf, 0x5a, len);
    ck_assert_int_eq(cow_file_write(f, buf, len, 0), COW_OK);
    ck_assert_uint_ge(st->total_bytes, len);
    ck_assert_uint_eq(st->total_bytes % st->bg_size, 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t gen = cow_store_generation(st);
    /* a full disk: a clean COW_ENOSPC, nothing changed */
    ctl->fail_grow = 1;
    int rc = COW_OK;
    uint64_t size = 0, before = 0;
    for (int i = 0; i < 20 && rc == COW_OK; i++) {
        ck_assert_int_eq(cow_file_size(f, &before), COW_OK);
        rc = cow_file_write(f, buf, len, (uint64_t)(i + 3) * len);
    }
    ck_assert_int_eq(rc, COW_ENOSPC);
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_uint_eq(size, before); /* the failed write changed nothing */
    ck_assert_uint_ge(size, len);
    size_t n;
    uint8_t chk[4096];
    ck_assert_int_eq(cow_file_read(f, chk, sizeof chk, 4096, &n), COW_OK);
    ck_assert(chk[0] == 0x5a && chk[4095] == 0x5a);
    ctl->fail_grow = 0;
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_uint_ge(cow_store_generation(st), gen);
    cow_file_close(f);
    fsck_memdev(st, dev);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(buf);
}
END_TEST

/* On any target: alloc_pinned_not_reused.  A full disk is a memdev's
 * (memdev_ctl fail_grow). */
void alloc_any_target(TCase *tc)
{
    tcase_add_test(tc, alloc_pinned_not_reused);
}

Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    test_case(s, "alloc", 120, alloc_pinned_not_reused, alloc_grows_by_groups_and_enospc, NULL);
    return s;
}
