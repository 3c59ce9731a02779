/*
 * check_nocow.c - the "nocow" suite: nodatacow files (cow_file_set_nodatacow,
 * docs/DESIGN.md "Nodatacow WAL" and invariant 13), at the store level and
 * through the VFS's WAL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store_int.h"
#include "testutil.h"
#include "cowvfs.h"

#define KIB 1024

/* Fails unless F reads as LEN bytes of C from OFF. */
static void expect_fill(cow_file *f, uint64_t off, size_t len, int c)
{
    ck_assert_msg(file_holds(f, c, off, len), "bytes %llu..+%zu are not all 0x%02x",
                  (unsigned long long)off, len, c);
}

/* Makes every extent ST has now old (invariant 13): a flushed commit. */
static void age_extents(cow_store *st)
{
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
}

/* A power loss now: the store and its file "wal" as they come back from
 * DEV's crash image (crash_open), then closed, the image checked by fsck
 * and freed (crash_close). */
struct crash {
    uint8_t *img;
    size_t len;
    cow_store *st;
    cow_file *f;
};

static cow_file *crash_open(struct cow_dev *dev, struct crash *c)
{
    c->img = memdev_crash_image(dev, &c->len);
    ck_assert_int_eq(cow_store_open_dev("crash", memdev_from_image(c->img, c->len, NULL), 0, 0,
                                        &c->st),
                     COW_OK);
    ck_assert_int_eq(cow_file_open(c->st, "wal", 0, &c->f), COW_OK);
    return c->f;
}

static void crash_close(struct crash *c)
{
    cow_file_close(c->f);
    ck_assert_int_eq(cow_store_close(c->st), COW_OK);
    test_fsck_image(c->img, c->len);
    free(c->img);
}

/*
 * A nodatacow file's new extent is NODATASUM and young: overwritten copy
 * on write (the log record and commit that name it with crcs stay true).
 * Once a later commit is flushed, an overwrite lands where the blocks are:
 * the same extent, no log record, no commit, and the sync that follows
 * flushes it (after a power loss right after that sync, the new bytes are
 * there: a sync that found nothing to log and did not flush would lose
 * them).  The flag survives the crash; fsck is clean.
 */
START_TEST(nocow_overwrites_in_place)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, &ctl, "wal", &f);
    int yes = -1;
    ck_assert_int_eq(cow_file_nodatacow(f, &yes), COW_OK);
    ck_assert_int_eq(yes, 0);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK); /* again: a no-op */
    ck_assert_int_eq(cow_file_nodatacow(f, &yes), COW_OK);
    ck_assert_int_eq(yes, 1);
    uint8_t a[64 * KIB], b[64 * KIB];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    ck_assert_int_eq(cow_store_commit(st), COW_OK); /* the file and its flag */
    /* the first write: new space, logged */
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_write(f, a, sizeof a, 0), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.commits, s0.commits); /* a log record: young */
    uint64_t disk0, ofs0, disk, ofs;
    int type;
    ck_assert_int_eq(test_item_at(f, 8 * KIB, &disk0, &ofs0, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_NODATASUM);
    /* young: copy on write */
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_write(f, a, sizeof a, 0), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.written_in_place, s0.written_in_place);
    ck_assert_int_eq(test_item_at(f, 8 * KIB, &disk, &ofs, &type), COW_OK);
    ck_assert_uint_ne(disk + ofs, disk0 + ofs0);
    ck_assert_int_eq(type, COW_FE_NODATASUM);
    disk0 = disk;
    ofs0 = ofs;
    /* old: overwrites in place, one not block aligned (4,120-byte WAL
     * frames) */
    age_extents(st);
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_write(f, b, sizeof b, 0), COW_OK);
    ck_assert_int_eq(cow_file_write(f, a, 4120, 4096 + 24), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.written_in_place - s0.written_in_place, sizeof b);
    ck_assert_uint_eq(s1.log_records, s0.log_records); /* nothing to log */
    ck_assert_uint_eq(s1.commits, s0.commits);
    ck_assert_uint_gt(s1.flushes, s0.flushes); /* but flushed */
    ck_assert_int_eq(test_item_at(f, 8 * KIB, &disk, &ofs, &type), COW_OK);
    ck_assert_uint_eq(disk + ofs, disk0 + ofs0); /* where it was */
    ck_assert_int_eq(type, COW_FE_NODATASUM);
    expect_fill(f, 0, 4096 + 24, 'b');
    expect_fill(f, 4096 + 24, 4120, 'a');
    expect_fill(f, 4096 + 24 + 4120, sizeof b - (4096 + 24 + 4120), 'b');

    /* a power loss now: the synced overwrite is there */
    struct crash c;
    cow_file *f2 = crash_open(dev, &c);
    ck_assert_int_eq(cow_file_nodatacow(f2, &yes), COW_OK);
    ck_assert_int_eq(yes, 1);
    expect_fill(f2, 0, 4096 + 24, 'b');
    expect_fill(f2, 4096 + 24, 4120, 'a');
    expect_fill(f2, 4096 + 24 + 4120, sizeof b - (4096 + 24 + 4120), 'b');
    crash_close(&c);

    /* growing past the end: new space for the new blocks, logged; the
     * size change of a write in place inside the last block is logged */
    ck_assert_int_eq(cow_file_write(f, a, 100, sizeof b), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, b, 200, sizeof b + 100), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    f2 = crash_open(dev, &c);
    uint64_t size;
    ck_assert_int_eq(cow_file_size(f2, &size), COW_OK);
    ck_assert_uint_eq(size, sizeof b + 300);
    expect_fill(f2, sizeof b, 100, 'a');
    expect_fill(f2, sizeof b + 100, 200, 'b');
    crash_close(&c);
    fsck_memdev(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* The flag is taken only by an empty file (as chattr +C), and a file
 * emptied by a truncate takes it again. */
START_TEST(nocow_only_when_empty)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    ck_assert_int_eq(cow_file_write(f, "x", 1, 0), COW_OK);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_EINVAL); /* buffered */
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_EINVAL); /* written */
    int yes = -1;
    ck_assert_int_eq(cow_file_nodatacow(f, &yes), COW_OK);
    ck_assert_int_eq(yes, 0);
    uint64_t disk, ofs;
    int type;
    ck_assert_int_eq(test_item_at(f, 0, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_REG);
    ck_assert_int_eq(cow_file_truncate(f, 0), COW_OK);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "y", 1, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(test_item_at(f, 0, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_NODATASUM);
    fsck_memdev(st, dev);
    /* a reopen reads the flag from the inode item */
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen); /* the commit above, flushed */
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    ck_assert_int_eq(cow_store_open_dev("again", memdev_from_image(img, ilen, NULL), 0, 0, &st),
                     COW_OK);
    free(img);
    ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
    ck_assert_int_eq(cow_file_nodatacow(f, &yes), COW_OK);
    ck_assert_int_eq(yes, 1);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/*
 * A snapshot shares a nodatacow file's extents: the next overwrite of the
 * live file is copy on write (the snapshot keeps its bytes), and, once
 * that copy is old, an overwrite of it (only the live file reaches it) is
 * in place again.  Invariant 13 (docs/DESIGN.md).
 */
START_TEST(nocow_snapshot_keeps_its_bytes)
{
    struct cow_dev *dev;
    cow_file *f, *sf;
    cow_store *st = target_store_file(&dev, "wal", &f);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK);
    uint8_t a[16 * KIB], b[16 * KIB], c[16 * KIB];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    memset(c, 'c', sizeof c);
    ck_assert_int_eq(cow_file_write(f, a, sizeof a, 0), COW_OK);
    age_extents(st);
    ck_assert_int_eq(cow_subvol_create(st, "s", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_write(f, b, sizeof b, 0), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.written_in_place, s0.written_in_place); /* copied */
    ck_assert_int_eq(cow_subvol_file_open(st, "s", "wal", 0, &sf), COW_OK);
    int yes = 0;
    ck_assert_int_eq(cow_file_nodatacow(sf, &yes), COW_OK);
    ck_assert_int_eq(yes, 1); /* the clone keeps the flag */
    expect_fill(sf, 0, sizeof a, 'a');
    expect_fill(f, 0, sizeof b, 'b');
    age_extents(st); /* the copy grows old */
    ck_assert_int_eq(cow_file_write(f, c, sizeof c, 0), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_store_stats(st, &s0);
    ck_assert_uint_eq(s0.written_in_place - s1.written_in_place, sizeof c); /* in place */
    expect_fill(sf, 0, sizeof a, 'a');
    expect_fill(f, 0, sizeof c, 'c');
    cow_file_close(sf);
    target_fsck(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* Writes 4,120-byte frames of byte C (WAL frames: not block aligned) to F
 * from byte FROM up to END, each followed by a sync, as SQLite's WAL
 * commits at synchronous=FULL. */
static void write_frames(cow_file *f, uint64_t from, uint64_t end, int c)
{
    uint8_t frame[4120];
    memset(frame, c, sizeof frame);
    for (uint64_t at = from; at < end; at += sizeof frame) {
        size_t n = end - at < sizeof frame ? (size_t)(end - at) : sizeof frame;
        ck_assert_int_eq(cow_file_write(f, frame, n, at), COW_OK);
        ck_assert_int_eq(cow_file_sync(f), COW_OK);
    }
}

/*
 * cow_file_grow, the chunks a nodatacow WAL grows by (docs/DESIGN.md,
 * "Nodatacow WAL"): the size jumps to the chunk's end, the bytes past
 * what was written read as zeros, and the growth is one flushed commit,
 * after which the frames written inside the chunk land in place: no log
 * record, no commit (the second chunk's frames too).  A power loss after
 * their sync keeps them; a snapshot taken after a growth keeps its bytes
 * (the next write is copy on write); a file without the flag cannot grow
 * this way.  fsck is clean throughout.
 */
START_TEST(nocow_grows_in_chunks)
{
    struct cow_dev *dev;
    cow_file *f, *db;
    cow_store *st = memdev_store_file(&dev, NULL, "wal", &f);
    ck_assert_int_eq(cow_file_open(st, "db", 1, &db), COW_OK);
    ck_assert_int_eq(cow_file_grow(db, 64 * KIB), COW_EINVAL); /* not nodatacow */
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);

    /* the first chunk: one flushed commit */
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_write(f, "header", 6, 0), COW_OK); /* buffered, then grown over */
    ck_assert_int_eq(cow_file_grow(f, 64 * KIB), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.commits - s0.commits, 1);
    ck_assert_uint_eq(s1.commits_flushed - s0.commits_flushed, 1);
    ck_assert_uint_eq(s1.grown - s0.grown, 64 * KIB - 6);
    uint64_t size;
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_uint_eq(size, 64 * KIB);
    ck_assert(file_holds(f, 'h', 0, 1));
    expect_fill(f, 6, 64 * KIB - 6, 0);
    ck_assert_int_eq(cow_file_grow(f, 32 * KIB), COW_OK); /* not past the size: nothing */
    ck_assert_int_eq(cow_file_grow(f, 64 * KIB), COW_OK);
    cow_store_stats(st, &s0);
    ck_assert_uint_eq(s0.commits, s1.commits);
    uint64_t disk0, ofs0, disk, ofs;
    int type;
    ck_assert_int_eq(test_item_at(f, 40 * KIB, &disk0, &ofs0, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_NODATASUM);

    /* frames inside the chunk: in place, nothing logged or committed */
    write_frames(f, 32, 60 * KIB, 'a');
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.commits, s0.commits);
    ck_assert_uint_eq(s1.log_records, s0.log_records);
    ck_assert_uint_ge(s1.written_in_place - s0.written_in_place, 60 * KIB);
    ck_assert_int_eq(test_item_at(f, 40 * KIB, &disk, &ofs, &type), COW_OK);
    ck_assert_uint_eq(disk + ofs, disk0 + ofs0);
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_uint_eq(size, 64 * KIB); /* the size stays the chunk's end */
    expect_fill(f, 32, 60 * KIB - 32, 'a');
    expect_fill(f, 60 * KIB, 4 * KIB, 0);

    /* the second chunk: one commit for its growth, none for its frames */
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_grow(f, 192 * KIB), COW_OK);
    write_frames(f, 60 * KIB, 180 * KIB, 'b');
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.commits - s0.commits, 1);
    ck_assert_uint_eq(s1.log_records, s0.log_records);
    ck_assert_uint_ge(s1.written_in_place - s0.written_in_place, 120 * KIB);
    expect_fill(f, 60 * KIB, 120 * KIB, 'b');
    expect_fill(f, 180 * KIB, 12 * KIB, 0);

    /* a power loss after the last sync: every frame is there */
    struct crash c;
    cow_file *f2 = crash_open(dev, &c);
    ck_assert_int_eq(cow_file_size(f2, &size), COW_OK);
    ck_assert_uint_eq(size, 192 * KIB);
    expect_fill(f2, 32, 60 * KIB - 32, 'a');
    expect_fill(f2, 60 * KIB, 120 * KIB, 'b');
    expect_fill(f2, 180 * KIB, 12 * KIB, 0);
    crash_close(&c);

    /* a snapshot after a growth shares the chunk: copy on write once */
    ck_assert_int_eq(cow_file_grow(f, 320 * KIB), COW_OK);
    ck_assert_int_eq(cow_subvol_create(st, "s", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    ck_assert_int_eq(test_item_at(f, 200 * KIB, &disk0, &ofs0, &type), COW_OK);
    cow_store_stats(st, &s0);
    write_frames(f, 180 * KIB, 180 * KIB + 4120, 'c'); /* the first frame: copied */
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.written_in_place, s0.written_in_place);
    /* (later frames may land in place over what the first ones copied,
     * once a commit, when the log is full, has made the copies the live
     * file's own) */
    write_frames(f, 180 * KIB + 4120, 220 * KIB, 'c');
    ck_assert_int_eq(test_item_at(f, 200 * KIB, &disk, &ofs, &type), COW_OK);
    ck_assert_uint_ne(disk + ofs, disk0 + ofs0);
    cow_file *sf;
    ck_assert_int_eq(cow_subvol_file_open(st, "s", "wal", 0, &sf), COW_OK);
    expect_fill(sf, 180 * KIB, 140 * KIB, 0);
    expect_fill(f, 180 * KIB, 40 * KIB, 'c');
    cow_file_close(sf);
    fsck_memdev(st, dev);
    cow_file_close(db);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : sqlite3_errmsg(db));
}

/* The first column of SQL's first row, as text (a new string). */
static char *query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    const char *t = (const char *)sqlite3_column_text(st, 0);
    char *z = strdup(t ? t : "");
    sqlite3_finalize(st);
    ck_assert_ptr_nonnull(z);
    return z;
}

/* The number in "written_in_place=N" of PRAGMA cow_stats. */
static unsigned long long in_place_bytes(sqlite3 *db)
{
    char *z = query_text(db, "PRAGMA cow_stats");
    const char *p = strstr(z, "written_in_place=");
    ck_assert_ptr_nonnull(p);
    unsigned long long v = strtoull(p + strlen("written_in_place="), NULL, 10);
    free(z);
    return v;
}

/* Commits N single-row transactions on DB in WAL mode, checkpointing
 * every 32 WAL pages (so that the WAL is rewritten from its start), with
 * a flushed commit of the store every 8 (extents grow old within a WAL
 * cycle: invariant 13). */
static void wal_work(sqlite3 *db, int n)
{
    exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                "PRAGMA wal_autocheckpoint=32;"
                "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT)");
    for (int i = 0; i < n; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO t VALUES(%d, hex(randomblob(40)))",
                 i % 50);
        exec_ok(db, sql);
        if (i % 8 == 7)
            free(query_text(db, "PRAGMA cow_commit"));
    }
}

/*
 * A growth of 1 MiB or more (file.c grow_extents; beside other processes
 * a WAL grows by up to 4 MiB): its whole blocks are extents the device
 * zeroes (a memdev writes them), made as a writeback makes them, with the
 * partial block at the old end through the page cache.  One flushed
 * commit; the bytes read as zeros; the frames written there then land in
 * place; a power loss after their sync keeps them; fsck is clean.  (The
 * blocks here are new space, zeros already: reused blocks are
 * nocow_grow_zeroes_reused's.)
 */
START_TEST(nocow_grows_by_extents)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "wal", &f);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK);
    write_frames(f, 0, 5000, 'x'); /* an unaligned end: a partial block */
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_grow(f, 2 * 1024 * KIB), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.commits_flushed - s0.commits_flushed, 1);
    uint64_t size;
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_uint_eq(size, 2 * 1024 * KIB);
    ck_assert_uint_eq(s1.grown - s0.grown, 2 * 1024 * KIB - 5000);
    expect_fill(f, 0, 5000, 'x');
    expect_fill(f, 5000, 2 * 1024 * KIB - 5000, 0);
    uint64_t disk, ofs;
    int type;
    ck_assert_int_eq(test_item_at(f, 1024 * KIB, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_NODATASUM);
    /* frames there: in place, nothing committed */
    cow_store_stats(st, &s0);
    write_frames(f, 512 * KIB, 1536 * KIB, 'y');
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.commits, s0.commits);
    ck_assert_uint_ge(s1.written_in_place - s0.written_in_place, 1024 * KIB);
    struct crash c;
    cow_file *f2 = crash_open(dev, &c);
    expect_fill(f2, 0, 5000, 'x');
    expect_fill(f2, 512 * KIB, 1024 * KIB, 'y');
    expect_fill(f2, 1536 * KIB, 512 * KIB, 0);
    crash_close(&c);
    fsck_memdev(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/*
 * A growth by extents over reused blocks reads as zeros: grow_extents
 * zeroes the blocks that lay inside the device when it began, and leaves
 * those past its end (a grow made them zeros) alone.  3 MiB of another
 * file are written and freed, three flushed commits let go of them, and
 * the allocator's next-fit cursor is set back to the bottom (white-box):
 * the 2 MiB growth then takes freed blocks below the device's old end
 * (checked), which held other bytes; with the zeroing skipped there, the
 * WAL read them.
 */
START_TEST(nocow_grow_zeroes_reused)
{
    struct cow_dev *dev;
    cow_file *f, *old;
    cow_store *st = target_store_file(&dev, "wal", &f);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "old", 1, &old), COW_OK);
    file_fill(old, 'o', 0, 3 * 1024 * KIB); /* in extents of 1 MiB */
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_file_close(old);
    ck_assert_int_eq(cow_unlink(st, "old"), COW_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t end0;
    ck_assert_int_eq(dev->size(dev, &end0), COW_OK);
    cow_mutex_lock(&st->lock);
    st->data_cursor = 0; /* next fit from the bottom: over the freed blocks */
    cow_mutex_unlock(&st->lock);
    ck_assert_int_eq(cow_file_grow(f, 2 * 1024 * KIB), COW_OK);
    uint64_t disk, ofs;
    int type;
    ck_assert_int_eq(test_item_at(f, 0, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_NODATASUM);
    ck_assert_msg(disk < end0, "the growth took new space (%llu, the device ended at %llu): "
                  "nothing reused to check", (unsigned long long)disk,
                  (unsigned long long)end0);
    expect_fill(f, 0, 2 * 1024 * KIB, 0);
    target_fsck(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/*
 * Through the VFS: a new WAL is nodatacow, and once SQLite rewrites it
 * from its start after a checkpoint its frames land in place; with
 * wal_nodatacow=0 nothing is written in place.  The database reads back
 * after a reopen either way, and the container is clean.
 */
START_TEST(nocow_vfs_wal_in_place)
{
    char *dir = test_mkdtemp(), uri[512];
    unsigned long long inplace[2];
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
    for (int on = 1; on >= 0; on--) {
        snprintf(uri, sizeof uri, "file:%s/w%d.db?vfs=cow&wal_nodatacow=%d", dir, on, on);
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open_v2(uri, &db,
                                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                             SQLITE_OPEN_URI,
                                         NULL),
                         SQLITE_OK);
        wal_work(db, 300);
        /* preallocated space (the checkpoint's SIZE_HINT) is written in
         * place either way */
        inplace[on] = in_place_bytes(db);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL),
                         SQLITE_OK);
        char *n = query_text(db, "SELECT count(*) FROM t");
        ck_assert_str_eq(n, "50");
        free(n);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        char path[512];
        snprintf(path, sizeof path, "%s/w%d.db", dir, on);
        test_fsck_clean(path);
    }
    /* 300 transactions of a page or two: hundreds of KiB of frames */
    ck_assert_msg(inplace[1] >= inplace[0] + 256 * KIB,
                  "written in place: %llu bytes with wal_nodatacow=1, %llu with 0", inplace[1],
                  inplace[0]);
    test_rmdir(dir);
}
END_TEST

/* On any target: a snapshot keeps its bytes, and a growth over reused
 * blocks reads as zeros.  The others look at a memdev's crash image (a
 * power loss after a sync) or its flush count, or go through the cow VFS
 * on a file. */
void nocow_any_target(TCase *tc)
{
    tcase_add_test(tc, nocow_snapshot_keeps_its_bytes);
    tcase_add_test(tc, nocow_grow_zeroes_reused);
}

Suite *nocow_suite(void)
{
    Suite *s = suite_create("nocow");
    test_case(s, "nocow", 120, nocow_overwrites_in_place, nocow_only_when_empty, nocow_grows_by_extents,
              nocow_grow_zeroes_reused,
              nocow_snapshot_keeps_its_bytes, nocow_grows_in_chunks, nocow_vfs_wal_in_place,
              NULL);
    return s;
}
