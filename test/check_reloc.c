/*
 * check_reloc.c - relocation (store/reloc.c, store/remap*.c): balance
 * moves live blocks down and shrinks the container, keeps every file's
 * bytes, every snapshot's and branch's content and usage, and leaves fsck
 * clean; reopening reads through the remap tree.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/format.h"
#include "../store/lockdep.h"
#include "../store/store.h"
#include "../store/reloc.h"
#include "../store/store_int.h"
#include "testutil.h"

#define BLK COW_BLOCK_SIZE
#define MIB (1u << 20)

static void write_all(cow_file *f, struct fmodel *m, uint64_t *rs, size_t off, size_t len)
{
    uint8_t *b = malloc(len);
    test_fill(rs, b, len);
    ck_assert_int_eq(cow_file_write(f, b, len, off), COW_OK);
    fm_write(m, b, len, off);
    free(b);
}

static uint64_t dev_size(struct cow_dev *dev)
{
    uint64_t n;
    ck_assert_int_eq(dev->size(dev, &n), COW_OK);
    return n;
}

static void usage_of(cow_store *st, const char *name, struct cow_subvol_usage *u)
{
    ck_assert_int_eq(cow_subvol_usage(st, name, u), COW_OK);
}

static void expect_usage(cow_store *st, const char *name, const struct cow_subvol_usage *want)
{
    struct cow_subvol_usage u;
    usage_of(st, name, &u);
    ck_assert_msg(u.exclusive_bytes == want->exclusive_bytes &&
                      u.shared_bytes == want->shared_bytes,
                  "%s: exclusive %llu shared %llu after relocation, %llu %llu before",
                  name ? name : "live", (unsigned long long)u.exclusive_bytes,
                  (unsigned long long)u.shared_bytes,
                  (unsigned long long)want->exclusive_bytes,
                  (unsigned long long)want->shared_bytes);
}

static void expect_subvol_file(cow_store *st, const char *subvol, const char *name,
                               const struct fmodel *m)
{
    cow_file *f;
    ck_assert_int_eq(cow_subvol_file_open(st, subvol, name, 0, &f), COW_OK);
    fm_compare(f, m);
    cow_file_close(f);
}

/* A store formatted on a new device of the current target (*MD) that
 * outlives it (the store gets a forwarding device), with file "db" open
 * in *F. */
static cow_store *kept_store(struct cow_dev **md, cow_file **f)
{
    cow_store *st;
    const char *name;
    *md = stt->dev_new(&name);
    ck_assert_int_eq(cow_store_open_dev(name, fwd_dev_new(*md, NULL, NULL), 0, 1, &st), COW_OK);
    cow_store_set_commit_interval(st, 0);
    ck_assert_int_eq(cow_file_open(st, "db", 1, f), COW_OK);
    return st;
}

/* kept_store() with the background relocator off: only the test's own
 * balances relocate, at the points it chooses. */
static cow_store *quiet_store(struct cow_dev **md, cow_file **f)
{
    cow_store *st = kept_store(md, f);
    struct cow_reloc_config c;
    cow_store_get_reloc(st, &c);
    c.enabled = 0;
    cow_store_set_reloc(st, &c);
    return st;
}

/* The end of a kept_store() test: F's content against M, fsck, then the
 * file, store and device closed and M's data freed. */
static void finish_kept(cow_store *st, struct cow_dev *dev, cow_file *f, struct fmodel *m)
{
    fm_compare(f, m);
    target_fsck(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    dev->close(dev);
    free(m->data);
}

/* A churned store: 8 MiB written, the first 2 MiB overwritten over and
 * over (each new copy lands higher in the file), the file cut to 2 MiB,
 * a snapshot, more overwrites (some blocks stay shared with it): lots of
 * free space low in the file, the live blocks (the file's and the
 * snapshot's) high up. */
static cow_store *churned(struct cow_dev **dev, cow_file **f, struct fmodel *m,
                          struct fmodel *snap, uint64_t *rs)
{
    /* only the tests' own balances relocate (a background run, late on a
     * busy machine, would count in the stats they check) */
    cow_store *st = quiet_store(dev, f);
    memset(m, 0, sizeof *m);
    for (size_t off = 0; off < 8 * MIB; off += 256 * 1024) {
        write_all(*f, m, rs, off, 256 * 1024);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    for (int round = 0; round < 3; round++)
        for (size_t off = 0; off < 2 * MIB; off += 256 * 1024) {
            write_all(*f, m, rs, off, 256 * 1024);
            ck_assert_int_eq(cow_store_commit(st), COW_OK);
        }
    ck_assert_int_eq(cow_file_truncate(*f, 2 * MIB), COW_OK);
    fm_truncate(m, 2 * MIB);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_subvol_create(st, "snap", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    memset(snap, 0, sizeof *snap);
    fm_copy(snap, m);
    for (size_t off = 0; off < 2 * MIB; off += 256 * 1024) {
        if (test_rand(rs) % 3 == 0)
            continue; /* these stay shared with the snapshot */
        write_all(*f, m, rs, off + (test_rand(rs) % 32) * BLK, 64 * 1024);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    return st;
}

/* Balance after churn with a snapshot: the container shrinks, the live
 * file and the snapshot read as before, their usage is exactly what it
 * was, fsck is clean, and a reopened store (reading through the remap
 * tree) sees the same. */
START_TEST(reloc_shrinks_keeps_data_and_sharing)
{
    uint64_t rs = test_seed() ^ 0x4e10c;
    struct cow_dev *dev;
    cow_file *f;
    struct fmodel m, snap;
    cow_store *st = churned(&dev, &f, &m, &snap, &rs);
    struct cow_subvol_usage live0, snap0;
    usage_of(st, NULL, &live0);
    usage_of(st, "snap", &snap0);
    ck_assert_uint_gt(snap0.shared_bytes, 0);
    struct cow_df df0, df1;
    ck_assert_int_eq(cow_store_df(st, &df0), COW_OK);
    uint64_t before = dev_size(dev);

    struct cow_balance_opts o = {100, 0, NULL, NULL};
    struct cow_balance_result r;
    ck_assert_msg(cow_store_balance(st, &o, &r) == COW_OK, "balance: %s",
                  cow_store_last_error(st));
    ck_assert_uint_gt(r.groups_done, 0);
    ck_assert_uint_gt(r.bytes_moved, 0);
    ck_assert_uint_eq(r.container_before, before);
    ck_assert_uint_eq(r.container_after, dev_size(dev));
    ck_assert_msg(r.container_after < before, "balance left %llu bytes of %llu",
                  (unsigned long long)r.container_after, (unsigned long long)before);
    ck_assert_int_eq(cow_store_df(st, &df1), COW_OK);
    ck_assert_uint_eq(df1.data_bytes, df0.data_bytes); /* metadata: plus the remap tree */
    ck_assert_uint_gt(df1.remapped_bytes, 0);
    ck_assert_uint_le(df1.physical_bytes, df1.container_bytes);
    /* what is left is at most one alignment step of slack above the
     * blocks the file holds, plus holes below them */
    ck_assert_uint_lt(df1.slack_bytes, df0.slack_bytes);

    fm_compare(f, &m);
    expect_subvol_file(st, "snap", "db", &snap);
    expect_usage(st, NULL, &live0);
    expect_usage(st, "snap", &snap0);
    struct cow_stats stats;
    cow_store_stats(st, &stats);
    ck_assert_uint_eq(stats.reloc_runs, 1);
    ck_assert_uint_gt(stats.reloc_groups, 0);
    ck_assert_uint_eq(stats.reloc_bytes, r.bytes_moved);
    target_fsck(st, dev);

    /* writes after relocation, and the remapped blocks freed by them (the
     * snapshot then shares nothing with the live file) */
    write_all(f, &m, &rs, 0, 2 * MIB);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    fm_compare(f, &m);
    target_fsck(st, dev);
    usage_of(st, "snap", &snap0);
    ck_assert_uint_eq(snap0.shared_bytes, 0);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);

    stt->fsck_dev(NULL, dev);
    ck_assert_int_eq(stt->reopen(dev, 0, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
    fm_compare(f, &m);
    cow_file_close(f);
    expect_subvol_file(st, "snap", "db", &snap);
    expect_usage(st, "snap", &snap0);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    dev->close(dev);
    free(m.data);
    free(snap.data);
}
END_TEST

/* Balances in a row, with writes, a branch, a snapshot deleted and a
 * restore between them: runs that were relocated move again (their
 * targets are relocated), runs freed later are cut from the remap tree,
 * and every step leaves fsck clean and the files as the model says. */
START_TEST(reloc_repeated_with_subvolume_changes)
{
    uint64_t rs = test_seed() ^ 0x4e10d;
    struct cow_dev *dev;
    cow_file *f;
    struct fmodel m, snap, br;
    cow_store *st = churned(&dev, &f, &m, &snap, &rs);
    struct cow_balance_opts o = {100, 0, NULL, NULL};
    for (int step = 0; step < 4; step++) {
        ck_assert_msg(cow_store_balance(st, &o, NULL) == COW_OK, "balance %d: %s", step,
                      cow_store_last_error(st));
        fm_compare(f, &m);
        expect_subvol_file(st, "snap", "db", &snap);
        target_fsck(st, dev);
        switch (step) {
        case 0:
            ck_assert_int_eq(cow_subvol_create(st, "br", COW_SUBVOL_BRANCH, NULL), COW_OK);
            memset(&br, 0, sizeof br);
            fm_copy(&br, &m);
            write_all(f, &m, &rs, 3 * MIB, MIB);
            break;
        case 1: {
            cow_file *bf;
            ck_assert_int_eq(cow_subvol_file_open(st, "br", "db", 0, &bf), COW_OK);
            write_all(bf, &br, &rs, 0, 512 * 1024);
            cow_file_close(bf);
            ck_assert_int_eq(cow_subvol_delete(st, "snap"), COW_OK);
            ck_assert_int_eq(cow_subvol_create(st, "snap", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
            fm_copy(&snap, &m);
            break;
        }
        case 2:
            cow_file_close(f);
            ck_assert_int_eq(cow_subvol_restore(st, NULL, "br"), COW_OK);
            fm_copy(&m, &br);
            ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
            write_all(f, &m, &rs, MIB, 256 * 1024);
            break;
        default:
            break;
        }
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
        fm_compare(f, &m);
    }
    expect_subvol_file(st, "br", "db", &br);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    stt->fsck_dev(NULL, dev);
    ck_assert_int_eq(stt->reopen(dev, 0, &st), COW_OK);
    expect_subvol_file(st, NULL, "db", &m);
    expect_subvol_file(st, "br", "db", &br);
    expect_subvol_file(st, "snap", "db", &snap);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    dev->close(dev);
    free(m.data);
    free(snap.data);
    free(br.data);
}
END_TEST

/* A balance of a store with nothing to give back changes nothing but
 * still answers; usage above the threshold leaves a group alone; a
 * read-only store refuses; a bad percentage is COW_EINVAL. */
START_TEST(reloc_arguments_and_no_op)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = kept_store(&dev, &f);
    file_put_str(f, "hello");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    struct cow_balance_opts bad = {101, 0, NULL, NULL};
    ck_assert_int_eq(cow_store_balance(st, &bad, NULL), COW_EINVAL);
    struct cow_balance_opts none = {0, 0, NULL, NULL};
    struct cow_balance_result r;
    ck_assert_int_eq(cow_store_balance(st, &none, &r), COW_OK);
    ck_assert_uint_eq(r.groups_total, 0);
    ck_assert_uint_eq(r.bytes_moved, 0);
    ck_assert_uint_le(r.container_after, r.container_before);
    file_expect_str(f, "hello");
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    ck_assert_int_eq(stt->reopen(dev, COW_OPEN_READONLY, &st), COW_OK);
    ck_assert_int_eq(cow_store_balance(st, NULL, NULL), COW_EROFS);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    dev->close(dev);
}
END_TEST

/* Close gives back the slack a churn left when the relocator is on (the
 * default; relocator_close_balance), and keeps it when it is off: SQLite
 * deletes its WAL at the last close, after any background step could
 * run. */
START_TEST(reloc_close_gives_back_slack)
{
    for (int enabled = 1; enabled >= 0; enabled--) {
        uint64_t rs = test_seed() ^ 0xc105e;
        struct cow_dev *dev;
        cow_file *f;
        struct fmodel m = {0};
        cow_store *st = kept_store(&dev, &f);
        struct cow_reloc_config c;
        cow_store_get_reloc(st, &c);
        c.enabled = enabled;
        cow_store_set_reloc(st, &c);
        for (size_t off = 0; off < 8 * MIB; off += 256 * 1024) {
            write_all(f, &m, &rs, off, 256 * 1024);
            ck_assert_int_eq(cow_store_commit(st), COW_OK);
        }
        /* the first blocks stay, everything after them goes */
        ck_assert_int_eq(cow_file_truncate(f, 256 * 1024), COW_OK);
        fm_truncate(&m, 256 * 1024);
        cow_file_close(f);
        ck_assert_int_eq(cow_store_close(st), COW_OK);
        uint64_t size = dev_size(dev);
        if (enabled)
            ck_assert_msg(size <= 2 * MIB, "close left %llu bytes", (unsigned long long)size);
        else
            ck_assert_msg(size >= 8 * MIB, "close without the relocator left %llu bytes",
                          (unsigned long long)size);
        stt->fsck_dev(NULL, dev);
        ck_assert_int_eq(stt->reopen(dev, 0, &st), COW_OK);
        ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
        fm_compare(f, &m);
        cow_file_close(f);
        ck_assert_int_eq(cow_store_close(st), COW_OK);
        dev->close(dev);
        free(m.data);
    }
}
END_TEST

/* A container whose file is short but whose addresses span many groups
 * (a 6 MiB file cut and balanced) stays short through small commits and a
 * balance: allocation there is first fit with small tree block chunks,
 * decided by the file's size rather than total_bytes.  Decided by
 * total_bytes, the commits' 64-block chunks went past the end and the
 * file ended at 2 MiB instead of 0.6 (as a bench txn-wal container went
 * from 1.8 MiB to 3 MiB in a balance). */
START_TEST(reloc_short_file_stays_short)
{
    uint64_t rs = test_seed() ^ 0x5407;
    struct cow_dev *dev;
    cow_file *f;
    struct fmodel m = {0};
    cow_store *st = quiet_store(&dev, &f);
    for (size_t off = 0; off < 6 * MIB; off += 64 * 1024) {
        write_all(f, &m, &rs, off, 64 * 1024);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    ck_assert_int_eq(cow_file_truncate(f, 256 * 1024), COW_OK);
    fm_truncate(&m, 256 * 1024);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    struct cow_balance_opts o = {100, 0, NULL, NULL};
    struct cow_balance_result r;
    ck_assert_int_eq(cow_store_balance(st, &o, &r), COW_OK);
    uint64_t short_size = r.container_after;
    ck_assert_uint_lt(short_size, 2 * MIB);
    /* small changes, each its own commit, then a balance */
    for (int i = 0; i < 200; i++) {
        write_all(f, &m, &rs, (test_rand(&rs) % 64) * BLK, BLK);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    ck_assert_int_eq(cow_store_balance(st, &o, &r), COW_OK);
    ck_assert_msg(r.container_after <= short_size + 256 * 1024,
                  "a short file grew from %llu to %llu bytes (%llu before the last balance)",
                  (unsigned long long)short_size, (unsigned long long)r.container_after,
                  (unsigned long long)r.container_before);
    finish_kept(st, dev, f, &m);
}
END_TEST

/* A cut never goes into the running transaction's metadata chunk: the
 * chunk's unused rest is not in use yet (alloc_device_bytes leaves it
 * out), but the chunk hands out its blocks later without growing the
 * file, so a tree block written there between a cut's decision and its
 * truncate would be cut off, and the next superblock would claim a file
 * longer than it is (invariant 12).  White-box: a chunk is made to lie
 * past every block in use and the cut's target must stay past it; the
 * same target without the chunk is lower (so the test can fail). */
START_TEST(reloc_cut_spares_metadata_chunk)
{
    char *path = stt->path("mc.db");
    cow_store *st;
    cow_file *f;
    static uint8_t buf[64 * 4096];
    memset(buf, 0x5a, sizeof buf);
    ck_assert_int_eq(stt->open(path, COW_OPEN_CREATE, &st), COW_OK);
    struct cow_reloc_config rc;
    cow_store_get_reloc(st, &rc);
    rc.enabled = 0;
    cow_store_set_reloc(st, &rc);
    ck_assert_int_eq(cow_file_open(st, "a", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, 0), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_mutex_lock(&st->lock);
    uint64_t next = st->mchunk_next, end = st->mchunk_end;
    uint64_t used = alloc_device_bytes(st);
    if (used < st->cut_floor)
        used = st->cut_floor;
    uint64_t size = used + (4u << 20); /* a file with room to cut */
    st->mchunk_next = st->mchunk_end = 0;
    uint64_t bare = reloc_test_cut_target(st, size);
    st->mchunk_next = used; /* its first block is used, 64 more to come */
    st->mchunk_end = used + 65 * COW_BLOCK_SIZE;
    uint64_t with = reloc_test_cut_target(st, size);
    uint64_t chunk_end = st->mchunk_end;
    st->mchunk_next = next;
    st->mchunk_end = end;
    cow_mutex_unlock(&st->lock);
    ck_assert_uint_gt(bare, 0);
    ck_assert_uint_lt(bare, chunk_end);
    ck_assert_msg(with >= chunk_end, "the cut goes to %llu, into the chunk ending at %llu",
                  (unsigned long long)with, (unsigned long long)chunk_end);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    stt->fsck_clean(path);
    stt->remove(path);
}
END_TEST

/* A balance never grows the file it is there to cut.  A rollback-journal
 * workload (each transaction: a journal written, synced and deleted, a
 * few pages of the database written, some appended, synced; a commit now
 * and then) leaves the metadata groups inside the file with short free
 * runs only, while groups past its end are empty.  The tree blocks of a
 * balance's own commits took a 64- or 16-block chunk past the end before
 * any shorter run inside: the file grew back by several groups (48.8 MiB
 * for unix's 20.5 after 12,000 such transactions through SQLite; a second
 * balance went from 32.0 to 34.3 MiB).  Each of three balances must leave
 * the file no longer than it found it. */
START_TEST(reloc_balance_never_grows_the_file)
{
    uint64_t rs = test_seed() ^ 0xba1a;
    struct cow_dev *dev;
    cow_file *f, *j;
    struct fmodel m = {0};
    cow_store *st = quiet_store(&dev, &f); /* only this test's balances */
    uint64_t pages = 4;
    for (int t = 0; t < 3000; t++) {
        ck_assert_int_eq(cow_file_open(st, "db-journal", 1, &j), COW_OK);
        uint8_t jb[3 * BLK];
        test_fill(&rs, jb, sizeof jb);
        size_t jn = (1 + test_rand(&rs) % 3) * BLK;
        ck_assert_int_eq(cow_file_write(j, jb, jn, 0), COW_OK);
        ck_assert_int_eq(cow_file_sync(j), COW_OK);
        int n = 1 + (int)(test_rand(&rs) % 3);
        for (int k = 0; k < n; k++)
            write_all(f, &m, &rs, (test_rand(&rs) % pages) * BLK, BLK);
        if (test_rand(&rs) % 2)
            write_all(f, &m, &rs, pages++ * BLK, BLK);
        ck_assert_int_eq(cow_file_sync(f), COW_OK);
        cow_file_close(j);
        ck_assert_int_eq(cow_unlink(st, "db-journal"), COW_OK);
        if (t % 16 == 15)
            ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    for (int pass = 0; pass < 3; pass++) {
        struct cow_balance_result r;
        ck_assert_int_eq(cow_store_balance(st, NULL, &r), COW_OK);
        ck_assert_msg(r.container_after <= r.container_before,
                      "balance %d grew the file from %llu to %llu bytes", pass,
                      (unsigned long long)r.container_before,
                      (unsigned long long)r.container_after);
        ck_assert_uint_le(dev_size(dev), r.container_before);
    }
    finish_kept(st, dev, f, &m);
}
END_TEST

/* Bookends go wherever they lie (reloc.c unmapped_runs): a file written in
 * 1 MiB extents, then every fourth block overwritten (each a new extent,
 * the old one kept whole for the other three), leaves 2 MiB that no item
 * maps in groups too full for relocation to pick.  A balance must drop
 * them all, give the space back, and keep every byte (fsck clean).
 * Dropped only in the groups relocation picked, a balance dropped none
 * of them. */
START_TEST(reloc_drops_bookends_in_place)
{
    uint64_t rs = test_seed() ^ 0xb00c;
    struct cow_dev *dev;
    cow_file *f;
    struct fmodel m = {0};
    cow_store *st = quiet_store(&dev, &f);
    for (size_t off = 0; off < 8 * MIB; off += MIB) {
        write_all(f, &m, &rs, off, MIB);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    for (size_t off = 0; off < 8 * MIB; off += 4 * BLK)
        write_all(f, &m, &rs, off, BLK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    struct cow_balance_result r;
    ck_assert_int_eq(cow_store_balance(st, NULL, &r), COW_OK);
    ck_assert_msg(r.bytes_dropped >= 2 * MIB, "a balance dropped %llu bytes of 2 MiB of bookends",
                  (unsigned long long)r.bytes_dropped);
    ck_assert_msg(r.container_after + MIB <= r.container_before,
                  "the file went from %llu to %llu bytes",
                  (unsigned long long)r.container_before, (unsigned long long)r.container_after);
    finish_kept(st, dev, f, &m);
}
END_TEST

/* Holes low in the file under full groups at its top: file "low" (8 MiB)
 * written first, then "db" (32 MiB) above it, then "low" deleted.  Every
 * group of "db" is full, and only those past what the file holds and an
 * eighth more and a group ("need" in reloc.c balance) moved, for their
 * position: the file ended past that margin (39.8 MB for 34.2 held and
 * 39.5 with the margin).  Full groups at the top must move into the holes
 * while each fits, so that the file ends at least 1 MiB under the margin
 * (37.7 MB), every byte kept (fsck clean). */
START_TEST(reloc_fills_holes_under_full_groups)
{
    uint64_t rs = test_seed() ^ 0x4013;
    struct cow_dev *dev;
    cow_file *f, *low;
    struct fmodel m = {0}, ml = {0};
    cow_store *st = quiet_store(&dev, &f);
    ck_assert_int_eq(cow_file_open(st, "low", 1, &low), COW_OK);
    for (size_t off = 0; off < 8 * MIB; off += 256 * 1024) {
        write_all(low, &ml, &rs, off, 256 * 1024);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    for (size_t off = 0; off < 32 * MIB; off += 256 * 1024) {
        write_all(f, &m, &rs, off, 256 * 1024);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    cow_file_close(low);
    free(ml.data);
    ck_assert_int_eq(cow_unlink(st, "low"), COW_OK);
    for (int i = 0; i < 2; i++) /* what "low" held: pinned, then free */
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    struct cow_balance_result r;
    ck_assert_int_eq(cow_store_balance(st, NULL, &r), COW_OK);
    for (int i = 0; i < 2; i++) /* the old places: pinned, then free */
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_mutex_lock(&st->lock);
    uint64_t phys = alloc_physical_blocks(st) * BLK;
    uint64_t margin = phys + phys / 8 + st->bg_size;
    cow_mutex_unlock(&st->lock);
    ck_assert_msg(r.container_after + MIB <= margin,
                  "the file went from %llu to %llu bytes; it holds %llu, and %llu with the "
                  "margin", (unsigned long long)r.container_before,
                  (unsigned long long)r.container_after, (unsigned long long)phys,
                  (unsigned long long)margin);
    finish_kept(st, dev, f, &m);
}
END_TEST

/* On any target (on RADOS relocation's cuts are the device's shrink, and
 * a store reopens on the device kept open): all but two.  On RADOS what
 * the last commits freed is held for readers on other clients until a
 * look at their pins ends (bdev.h readers_oldest); close waits for one
 * (relocator_close_balance), without which reloc_close_gives_back_slack
 * failed there ("close left 10747904 bytes").
 * reloc_balance_never_grows_the_file (the allocator's chunks; 6,000 syncs)
 * would take a minute there, reloc_fills_holes_under_full_groups reads the
 * groups' use. */
void reloc_any_target(TCase *tc)
{
    tcase_add_test(tc, reloc_shrinks_keeps_data_and_sharing);
    tcase_add_test(tc, reloc_repeated_with_subvolume_changes);
    tcase_add_test(tc, reloc_arguments_and_no_op);
    tcase_add_test(tc, reloc_cut_spares_metadata_chunk);
    tcase_add_test(tc, reloc_drops_bookends_in_place);
    tcase_add_test(tc, reloc_close_gives_back_slack);
    tcase_add_test(tc, reloc_short_file_stays_short);
}

Suite *reloc_suite(void)
{
    Suite *s = suite_create("reloc");
    test_case(s, "reloc", 300, reloc_shrinks_keeps_data_and_sharing,
              reloc_repeated_with_subvolume_changes, reloc_arguments_and_no_op,
              reloc_close_gives_back_slack, reloc_short_file_stays_short,
              reloc_cut_spares_metadata_chunk, NULL);
    test_case(s, "reloc_grow", 300, reloc_balance_never_grows_the_file, NULL);
    test_case(s, "reloc_bookends", 120, reloc_drops_bookends_in_place, NULL);
    test_case(s, "reloc_holes", 120, reloc_fills_holes_under_full_groups, NULL);
    return s;
}
