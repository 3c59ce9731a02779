/*
 * check_race.c - deterministic tests of the store's invariants 2 to 5,
 * driven by injection points (inject.h): the races of btrfs, XFS and ext4
 * they come from are told in docs/DESIGN.md ("Invariants", "The races
 * behind invariants 2 to 5").
 *
 * Each test forces the dangerous interleaving: one thread is stopped at a
 * named point while another runs the racing operation, then both go on
 * and the result is checked.  Each is shown to fail when its invariant is
 * broken on purpose: `make race-proof` builds the store with
 * COW_BREAK_OE_ORDER, COW_BREAK_INVALIDATE, COW_BREAK_RESV_SHARED,
 * COW_BREAK_RELOC_NOCOW or COW_BREAK_CLONE_UNLOCKED and expects the
 * matching test to fail.
 *
 * A thread is never waited for without a bound: a wait that runs out fails
 * the test instead of hanging it.
 */
#include <pthread.h>
#include <stdatomic.h>
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

/* Waits until *DONE is set or point NAME has been hit; 1 if DONE. */
static int wait_done_or_hit(atomic_int *done, const char *name)
{
    for (unsigned t = 0; t < WAIT_MS; t++) {
        if (atomic_load(done))
            return 1;
        if (cow_inject_hits(name) > 0)
            return 0;
        sleep_ms(1);
    }
    ck_abort_msg("neither finished nor reached %s in %u ms", name, WAIT_MS);
    return 0;
}

struct job {
    cow_store *st;
    cow_file *f;
    uint64_t arg;
    void *ptr;
    int rc;
    atomic_int done;
};

static void *do_writeback(void *arg)
{
    struct job *j = arg;
    j->rc = cow_store_writeback(j->st);
    atomic_store(&j->done, 1);
    return NULL;
}

static void *do_sync(void *arg)
{
    struct job *j = arg;
    j->rc = cow_file_sync(j->f);
    atomic_store(&j->done, 1);
    return NULL;
}

static void *do_truncate(void *arg)
{
    struct job *j = arg;
    j->rc = cow_file_truncate(j->f, j->arg);
    atomic_store(&j->done, 1);
    return NULL;
}

static void *do_fetch(void *arg)
{
    struct job *j = arg;
    j->rc = cow_file_fetch(j->f, j->arg, BLK, &j->ptr);
    atomic_store(&j->done, 1);
    return NULL;
}

/*
 * Race 1 (invariant 2, from btrfs): the flusher has taken a file's
 * dirty pages into an ordered extent and is writing them when an fsync of
 * the file runs.  The fsync finds no dirty pages; it must find the range
 * (the extent map), wait for the ordered extent overlapping it, and log
 * the new extent.  Broken (COW_BREAK_OE_ORDER: the range is visible before
 * its ordered extent exists), the fsync logs the old mapping and returns:
 * after a power loss the data it promised is gone.
 */
START_TEST(race_fsync_waits_for_ordered_extent)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_fill(f, 'A', 0, 8 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    file_fill(f, 'B', 0, 4 * BLK);

    ck_assert_int_eq(cow_inject_arm("writeback:before_io", 0, 0, 1), 0);
    struct job w = {.st = st}, s = {.st = st, .f = f};
    pthread_t tw, ts;
    ck_assert_int_eq(pthread_create(&tw, NULL, do_writeback, &w), 0);
    ck_assert_int_eq(cow_inject_wait("writeback:before_io", 1, WAIT_MS), 0);
    /* the flusher is stopped with the lock let go; now the fsync */
    ck_assert_int_eq(pthread_create(&ts, NULL, do_sync, &s), 0);
    int returned_early = wait_done_or_hit(&s.done, "ordered:wait");
    size_t ilen;
    uint8_t *img = NULL;
    if (returned_early)
        img = memdev_crash_image(dev, &ilen); /* what its return promised */
    ck_assert_int_eq(cow_inject_release("writeback:before_io"), 0);
    pthread_join(tw, NULL);
    pthread_join(ts, NULL);
    ck_assert_int_eq(w.rc, COW_OK);
    ck_assert_int_eq(s.rc, COW_OK);
    if (!img)
        img = memdev_crash_image(dev, &ilen);
    cow_inject_reset();

    /* a power loss right after the fsync returned */
    cow_store *s2;
    ck_assert_int_eq(cow_store_open_dev("crash", memdev_from_image(img, ilen, NULL),
                                        COW_OPEN_READONLY, 0, &s2), COW_OK);
    cow_file *f2;
    ck_assert_int_eq(cow_file_open(s2, "db", 0, &f2), COW_OK);
    ck_assert_msg(file_holds(f2, 'B', 0, 4 * BLK),
                  "the fsync returned but its data is not on the device");
    ck_assert(file_holds(f2, 'A', 4 * BLK, 4 * BLK));
    cow_file_close(f2);
    cow_store_close(s2);
    test_fsck_image(img, ilen);
    free(img);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

/*
 * Race 2 (invariant 3, from XFS): a truncate drops a
 * file's cached pages and then its extents; an xFetch between the two
 * would instantiate a page from the extent about to go, and that page
 * would later show old bytes past the end, where the file has a hole.
 * The truncate holds the invalidate lock exclusively across both steps,
 * and xFetch takes it shared, so the fetch waits.  Broken
 * (COW_BREAK_INVALIDATE: two steps, the lock shared), the old bytes come
 * back.
 */
START_TEST(race_truncate_vs_fetch)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_fill(f, 'X', 0, 2 * BLK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK); /* extents, no cached pages left */

    ck_assert_int_eq(cow_inject_arm("truncate:punch_gap", 0, 0, 1), 0);
    struct job t = {.st = st, .f = f, .arg = BLK}, fe = {.st = st, .f = f, .arg = BLK};
    pthread_t tt, tf;
    ck_assert_int_eq(pthread_create(&tt, NULL, do_truncate, &t), 0);
    ck_assert_int_eq(cow_inject_wait("truncate:punch_gap", 1, WAIT_MS), 0);
    /* pages dropped, extents not yet: the fetch of the block past the new end */
    ck_assert_int_eq(pthread_create(&tf, NULL, do_fetch, &fe), 0);
    (void)wait_done_or_hit(&fe.done, "invalidate:wait");
    ck_assert_int_eq(cow_inject_release("truncate:punch_gap"), 0);
    pthread_join(tt, NULL);
    pthread_join(tf, NULL);
    cow_inject_reset();
    ck_assert_int_eq(t.rc, COW_OK);
    ck_assert_int_eq(fe.rc, COW_OK);

    /* grow the file again: block 1 is a hole now and must read as zeros */
    file_fill(f, 'Y', 3 * BLK, 1);
    ck_assert_msg(file_holds(f, 0, BLK, BLK), "old bytes past the truncated end came back");
    if (fe.ptr) {
        ck_assert_msg(((uint8_t *)fe.ptr)[0] == 0 || ((uint8_t *)fe.ptr)[0] == 'X',
                      "a fetched page changed under its holder");
        cow_file_unfetch(f, BLK, fe.ptr);
    }
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert(file_holds(f, 0, BLK, BLK));
    cow_file_close(f);
    size_t ilen;
    cow_store_close(st);
    (void)dev;
    (void)ilen;
}
END_TEST

/*
 * Race 3 (invariant 4, from ext4): two writebacks of one file
 * run at once (the flusher and a writer past the dirty limit).  Each
 * ordered extent releases its own reservation, the one it carries, at its
 * completion; nothing per-file decides how much.  Broken
 * (COW_BREAK_RESV_SHARED: the amount to release is per-file state), the
 * second completion releases the first's reservation too, and the counts
 * recomputed from the pages and ordered extents no longer match.
 */
START_TEST(race_reservation_travels_with_call)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_fill(f, 'P', 0, 2 * BLK);

    ck_assert_int_eq(cow_inject_arm("writeback:before_io", 0, 0, 1), 0);
    struct job a = {.st = st};
    pthread_t ta;
    ck_assert_int_eq(pthread_create(&ta, NULL, do_writeback, &a), 0);
    ck_assert_int_eq(cow_inject_wait("writeback:before_io", 1, WAIT_MS), 0);
    /* A's ordered extent holds 2 reserved blocks; another writer's data,
     * written back and completed meanwhile */
    file_fill(f, 'Q', 16 * BLK, 3 * BLK);
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    struct cow_stats cs;
    cow_store_stats(st, &cs);
    cow_mutex_lock(&st->lock);
    int rc = pc_check_counts(st);
    cow_mutex_unlock(&st->lock);
    ck_assert_msg(rc == COW_OK, "counts wrong while a writeback is in flight: %s",
                  cow_store_last_error(st));
    ck_assert_uint_eq(cs.reserved_bytes, 2 * BLK); /* A's, still held */
    ck_assert_int_eq(cow_inject_release("writeback:before_io"), 0);
    pthread_join(ta, NULL);
    cow_inject_reset();
    ck_assert_int_eq(a.rc, COW_OK);
    cow_store_stats(st, &cs);
    ck_assert_uint_eq(cs.reserved_bytes, 0);
    ck_assert(file_holds(f, 'P', 0, 2 * BLK));
    ck_assert(file_holds(f, 'Q', 16 * BLK, 3 * BLK));
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

/* ---- invariant 5: relocation ---- */

static void *do_balance(void *arg)
{
    struct job *j = arg;
    struct cow_balance_opts o = {100, 0, NULL, NULL};
    j->rc = cow_store_balance(j->st, &o, NULL);
    atomic_store(&j->done, 1);
    return NULL;
}

/* The disk address of the first extent of file NAME of the live tree. */
static uint64_t first_extent(cow_store *st, const char *name)
{
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, name, 0, &f), COW_OK);
    cow_mutex_lock(&st->lock);
    struct cow_key k = {f->inode->ino, COW_EXTENT_DATA, 0}, found;
    uint8_t d[FE_ITEM_SIZE];
    size_t sz;
    ck_assert_int_eq(bt_seek_ge(st, &st->fs_tree, &k, &found, d, sizeof d, &sz), COW_OK);
    cow_mutex_unlock(&st->lock);
    ck_assert_uint_eq(found.objectid, k.objectid);
    ck_assert_uint_eq(found.type, COW_EXTENT_DATA);
    cow_file_close(f);
    return get64(d + FE_DISK_BYTENR);
}

/*
 * Race 4a (invariant 5): relocation has copied a block group holding a
 * preallocated extent and is about to remap it when a write lands in that
 * extent.  Written in place, the write would go to the old copy, which
 * the remap then abandons: the file would read the stale copy (a checksum
 * error).  The write goes copy on write while the group is relocating.
 * Broken (COW_BREAK_RELOC_NOCOW: the write in place ignores relocation),
 * the data is lost.
 */
START_TEST(race_reloc_vs_write_in_place)
{
    struct cow_dev *dev;
    cow_file *f, *fill_f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    ck_assert_int_eq(cow_file_open(st, "fill", 1, &fill_f), COW_OK);
    file_fill(fill_f, 'F', 0, 1280 * BLK); /* low space, given back below; past 4 MiB, allocation is next fit */
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_preallocate(f, 64 * BLK), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_file_close(fill_f);
    ck_assert_int_eq(cow_unlink(st, "fill"), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t at = first_extent(st, "db");

    /* stop the balance after each group's copy until it is the group of
     * the preallocated extent (a re-arm comes long before the next group:
     * between them the balance flushes two commits) */
    ck_assert_int_eq(cow_inject_arm("reloc:copied", 0, 0, 1), 0);
    struct job b = {.st = st};
    pthread_t tb;
    ck_assert_int_eq(pthread_create(&tb, NULL, do_balance, &b), 0);
    int found = 0;
    for (int k = 0; k < 64 && !found; k++) {
        ck_assert_int_eq(cow_inject_wait("reloc:copied", 1, WAIT_MS), 0);
        cow_mutex_lock(&st->lock);
        found = st->bgs[at / st->bg_size].relocating;
        cow_mutex_unlock(&st->lock);
        if (!found) {
            ck_assert_int_eq(cow_inject_release("reloc:copied"), 0);
            ck_assert_int_eq(cow_inject_arm("reloc:copied", 0, 0, 1), 0);
        }
    }
    ck_assert_msg(found, "the balance never copied the preallocated extent's group");
    /* the copy is made; now the write, synced */
    file_fill(f, 'B', 0, 16 * BLK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_int_eq(cow_inject_release("reloc:copied"), 0);
    pthread_join(tb, NULL);
    cow_inject_reset();
    ck_assert_int_eq(b.rc, COW_OK);
    ck_assert_msg(file_holds(f, 'B', 0, 16 * BLK), "a write during relocation was lost");
    fsck_memdev(st, dev);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

static void *do_snapshot(void *arg)
{
    struct job *j = arg;
    j->rc = cow_subvol_create(j->st, "snap", COW_SUBVOL_SNAPSHOT, NULL);
    atomic_store(&j->done, 1);
    return NULL;
}

static void *do_write_commit_balance(void *arg)
{
    struct job *j = arg;
    file_fill(j->f, 'B', 0, 16 * BLK);
    j->rc = cow_store_commit(j->st);
    if (!j->rc) {
        struct cow_balance_opts o = {100, 0, NULL, NULL};
        j->rc = cow_store_balance(j->st, &o, NULL);
    }
    atomic_store(&j->done, 1);
    return NULL;
}

/*
 * Race 4b (invariant 5, the clone side): a snapshot has read the live
 * tree's root and is about to take its reference when a writer changes the
 * tree, commits, and a balance commits again.  Were the lock let go in
 * between, those commits would free the root the snapshot read (its only
 * reference is the live tree's), and the snapshot would keep a root that
 * is free space.  The snapshot holds the lock from reading the root to
 * taking the reference, so the writer and the balance wait.  Broken
 * (COW_BREAK_CLONE_UNLOCKED), fsck finds the snapshot's root unreferenced
 * and the new root over-counted.
 */
START_TEST(race_clone_vs_reloc)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_fill(f, 'A', 0, 16 * BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);

    ck_assert_int_eq(cow_inject_arm("subvol:root_read", 0, 0, 1), 0);
    struct job sj = {.st = st}, w = {.st = st, .f = f};
    pthread_t ts, tw;
    ck_assert_int_eq(pthread_create(&ts, NULL, do_snapshot, &sj), 0);
    ck_assert_int_eq(cow_inject_wait("subvol:root_read", 1, WAIT_MS), 0);
    ck_assert_int_eq(pthread_create(&tw, NULL, do_write_commit_balance, &w), 0);
    /* holding the lock, the snapshot makes the writer wait: give it a
     * moment to get as far as it can */
    for (int t = 0; t < 500 && !atomic_load(&w.done); t++)
        sleep_ms(1);
    ck_assert_int_eq(cow_inject_release("subvol:root_read"), 0);
    pthread_join(ts, NULL);
    pthread_join(tw, NULL);
    cow_inject_reset();
    ck_assert_int_eq(sj.rc, COW_OK);
    ck_assert_int_eq(w.rc, COW_OK);
    fsck_memdev(st, dev);
    cow_file *sf;
    ck_assert_int_eq(cow_subvol_file_open(st, "snap", "db", 0, &sf), COW_OK);
    ck_assert(file_holds(sf, 'A', 0, 16 * BLK) || file_holds(sf, 'B', 0, 16 * BLK));
    cow_file_close(sf);
    ck_assert(file_holds(f, 'B', 0, 16 * BLK));
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

Suite *race_suite(void)
{
    Suite *s = suite_create("race");
    test_case(s, "race_fsync", 120, race_fsync_waits_for_ordered_extent, NULL);
    test_case(s, "race_truncate", 120, race_truncate_vs_fetch, NULL);
    test_case(s, "race_resv", 120, race_reservation_travels_with_call, NULL);
    test_case(s, "race_reloc", 120, race_reloc_vs_write_in_place, NULL);
    test_case(s, "race_clone", 120, race_clone_vs_reloc, NULL);
    return s;
}
