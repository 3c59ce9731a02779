/*
 * check_lockdep.c - lk_assert_held() and the invalidate lock's
 * lk_assert_rw_held()/lk_assert_rw_excl() (store/lockdep.h) fail when they
 * should: a store function that needs store->lock or a file's invalidate
 * lock, called without it, aborts in a debug build (the tests are built
 * with COW_DEBUG), and one called with it runs.
 *
 * The failing cases are death tests: Check runs each test in a child
 * process (its default fork mode) and expects SIGABRT from it.
 */
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "extent_map.h"
#include "store_int.h"
#include "testutil.h"

#ifndef COW_DEBUG
#error "check_lockdep.c needs COW_DEBUG (lk_assert_held is empty without it)"
#endif

static cow_store *open_mem(void)
{
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem", memdev_new(NULL), 0, 1, &st), COW_OK);
    return st;
}

/* Held by the caller: the asserts pass, also after a wait on a condition
 * (which releases and retakes the mutex). */
START_TEST(held_passes)
{
    cow_store *st = open_mem();
    cow_mutex_lock(&st->lock);
    ck_assert(lk_held(&st->lock));
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    cow_cond_timedwait(&st->oe_cond, &st->lock, &ts);
    ck_assert(lk_held(&st->lock));
    struct cow_key k = {COW_FS_TREE_OBJECTID, 1, 0};
    size_t size;
    uint8_t buf[16];
    int rc = bt_lookup(st, &st->fs_tree, &k, buf, sizeof buf, &size);
    ck_assert(rc == COW_OK || rc == COW_ENOENT);
    ck_assert_int_eq(alloc_is_free(st, 2 * COW_BLOCK_SIZE, COW_BLOCK_SIZE), 0);
    cow_mutex_unlock(&st->lock);
    ck_assert(!lk_held(&st->lock));
    cow_store_close(st);
}
END_TEST

/* Not held by anybody: the assert itself aborts. */
START_TEST(unheld_mutex_aborts)
{
    struct cow_mutex mu;
    cow_mutex_init(&mu);
    lk_assert_held(&mu);
}
END_TEST

/* A tree lookup without store->lock aborts at the callee. */
START_TEST(bt_lookup_unlocked_aborts)
{
    cow_store *st = open_mem();
    struct cow_key k = {COW_FS_TREE_OBJECTID, 1, 0};
    size_t size;
    uint8_t buf[16];
    bt_lookup(st, &st->fs_tree, &k, buf, sizeof buf, &size);
}
END_TEST

/* So does the allocator, the refcounts and a commit. */
START_TEST(alloc_unlocked_aborts)
{
    cow_store *st = open_mem();
    uint64_t bytenr, got;
    alloc_blocks(st, 1, 0, &bytenr, &got);
}
END_TEST

START_TEST(refs_unlocked_aborts)
{
    cow_store *st = open_mem();
    uint64_t refs;
    refs_get(st, 2 * COW_BLOCK_SIZE, 0, &refs);
}
END_TEST

START_TEST(commit_unlocked_aborts)
{
    cow_store *st = open_mem();
    commit_transaction(st, 0);
}
END_TEST

static void *hold_lock(void *arg)
{
    cow_store *st = arg;
    cow_mutex_lock(&st->lock);
    for (;;)
        pause(); /* holds it until the test's process ends */
    return NULL;
}

/* Held by another thread is not held by the caller: aborts too. */
START_TEST(held_by_other_thread_aborts)
{
    cow_store *st = open_mem();
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, hold_lock, st), 0);
    while (!__atomic_load_n(&st->lock.owner, __ATOMIC_RELAXED))
        sched_yield();
    lk_assert_held(&st->lock);
}
END_TEST

/* ---- the invalidate lock (struct cow_rwlock) ---- */

/* Shared or exclusive as needed: the rwlock asserts pass; after the
 * unlock nobody holds it. */
START_TEST(rw_held_passes)
{
    struct cow_rwlock rw;
    ck_assert_int_eq(cow_rwlock_init(&rw), 0);
    ck_assert(!lk_rw_held(&rw, 1));
    cow_rwlock_rdlock(&rw);
    lk_assert_rw_held(&rw);
    ck_assert(!lk_rw_held(&rw, 0)); /* shared is not exclusive */
    cow_rwlock_unlock(&rw);
    ck_assert(!lk_rw_held(&rw, 1));
    cow_rwlock_wrlock(&rw);
    lk_assert_rw_held(&rw);
    lk_assert_rw_excl(&rw);
    cow_rwlock_unlock(&rw);
    ck_assert(!lk_rw_held(&rw, 1));
    cow_rwlock_destroy(&rw);
}
END_TEST

/* Not held at all: the shared assert aborts. */
START_TEST(rw_unheld_aborts)
{
    struct cow_rwlock rw;
    ck_assert_int_eq(cow_rwlock_init(&rw), 0);
    lk_assert_rw_held(&rw);
}
END_TEST

/* Held shared where exclusive is needed: the exclusive assert aborts. */
START_TEST(rw_shared_not_excl_aborts)
{
    struct cow_rwlock rw;
    ck_assert_int_eq(cow_rwlock_init(&rw), 0);
    cow_rwlock_rdlock(&rw);
    lk_assert_rw_excl(&rw);
}
END_TEST

/* A page cache read of a file whose invalidate lock nobody holds (store
 * lock held): pc_read's assert aborts. */
START_TEST(pc_read_without_invalidate_aborts)
{
    cow_store *st = open_mem();
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "x", 1, 0), COW_OK);
    uint8_t b;
    struct em_plan plan;
    em_plan_init(&plan);
    cow_mutex_lock(&st->lock);
    pc_read(st, f->inode, &b, 1, 0, &plan);
}
END_TEST

Suite *lockdep_suite(void)
{
    Suite *s = suite_create("lockdep");
    TCase *tc;
    test_case(s, "held", 0, held_passes, rw_held_passes, NULL);
    tc = test_case(s, "not_held", 0, NULL);
    tcase_add_test_raise_signal(tc, unheld_mutex_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, bt_lookup_unlocked_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, alloc_unlocked_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, refs_unlocked_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, commit_unlocked_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, held_by_other_thread_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, rw_unheld_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, rw_shared_not_excl_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, pc_read_without_invalidate_aborts, SIGABRT);
    return s;
}
