/*
 * check_file.c - the "file" suite: files, preallocation, snapshots and
 * branches, and creating containers.  Seeded: COW_TEST_SEED replays.
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

#include "store_int.h"
#include "testutil.h"
#include "../tools/fsck.h"

/* ---- files ---- */

START_TEST(file_model)
{
    uint64_t rs = test_seed() ^ 0xf11e;
    char *path = stt->path("f.cow");
    cow_store *st;
    ck_assert_int_eq(stt->open(path, COW_OPEN_CREATE, &st), COW_OK);
    const char *names[3] = {"db", "db-journal", "db-wal"};
    struct fmodel m[3] = {{0}};
    cow_file *f[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cow_file_open(st, names[i], 1, &f[i]), COW_OK);
    uint8_t *buf = malloc(1 << 20);
    for (int op = 0, nops = stt_scaled(3000); op < nops; op++) {
        int w = (int)(test_rand(&rs) % 3);
        uint64_t r = test_rand(&rs) % 100;
        if (r < 55) {
            /* sparse and unaligned; sometimes large */
            size_t off = test_rand(&rs) % (r < 5 ? 4000000 : 600000);
            size_t len = 1 + test_rand(&rs) % (r < 3 ? (1 << 20) : 9000);
            test_fill(&rs, buf, len);
            ck_assert_int_eq(cow_file_write(f[w], buf, len, off), COW_OK);
            fm_write(&m[w], buf, len, off);
        } else if (r < 80) {
            size_t off = test_rand(&rs) % 700000, len = 1 + test_rand(&rs) % 20000, n;
            ck_assert_int_eq(cow_file_read(f[w], buf, len, off, &n), COW_OK);
            size_t want = off >= m[w].size ? 0 : (m[w].size - off < len ? m[w].size - off : len);
            ck_assert_uint_eq(n, want);
            ck_assert(memcmp(buf, m[w].data + off, want) == 0);
            for (size_t j = want; j < len; j++)
                ck_assert(buf[j] == 0);
        } else if (r < 90) {
            size_t ns = test_rand(&rs) % 700000;
            ck_assert_int_eq(cow_file_truncate(f[w], ns), COW_OK);
            fm_truncate(&m[w], ns);
        } else if (r < 97) {
            ck_assert_int_eq(cow_file_sync(f[w]), COW_OK);
        } else {
            for (int i = 0; i < 3; i++)
                cow_file_close(f[i]);
            ck_assert_int_eq(cow_store_close(st), COW_OK);
            ck_assert_int_eq(stt->open(path, 0, &st), COW_OK);
            for (int i = 0; i < 3; i++)
                ck_assert_int_eq(cow_file_open(st, names[i], 0, &f[i]), COW_OK);
        }
        uint64_t size;
        ck_assert_int_eq(cow_file_size(f[w], &size), COW_OK);
        ck_assert_uint_eq(size, m[w].size);
    }
    for (int i = 0; i < 3; i++) {
        fm_compare(f[i], &m[i]);
        cow_file_close(f[i]);
        free(m[i].data);
    }
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    stt->fsck_clean(path);
    free(buf);
    stt->remove(path);
}
END_TEST

static int count_cb(void *arg, const struct cow_file_info *fi)
{
    (void)fi;
    (*(int *)arg)++;
    return 0;
}

START_TEST(file_names)
{
    char *path = stt->path("n.cow");
    cow_store *st;
    cow_file *f, *g;
    int ex, n = 0;
    ck_assert_int_eq(stt->open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "a/b", 1, &f), COW_EINVAL);
    ck_assert_int_eq(cow_file_open(st, "", 1, &f), COW_EINVAL);
    ck_assert_int_eq(cow_file_open(st, "missing", 0, &f), COW_ENOENT);
    ck_assert_int_eq(cow_file_open(st, "db-journal", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "journal", 7, 0), COW_OK);
    ck_assert_int_eq(cow_exists(st, "db-journal", &ex), COW_OK);
    ck_assert_int_eq(ex, 1);
    ck_assert_int_eq(cow_rename(st, "db-journal", "db-old"), COW_OK);
    ck_assert_int_eq(cow_exists(st, "db-journal", &ex), COW_OK);
    ck_assert_int_eq(ex, 0);
    ck_assert_int_eq(cow_file_open(st, "db-old", 0, &g), COW_OK);
    char buf[8] = {0};
    size_t nr;
    ck_assert_int_eq(cow_file_read(g, buf, 7, 0, &nr), COW_OK);
    ck_assert_str_eq(buf, "journal");
    cow_file_close(g);
    /* unlink while open: still readable, gone after close */
    ck_assert_int_eq(cow_unlink(st, "db-old"), COW_OK);
    ck_assert_int_eq(cow_exists(st, "db-old", &ex), COW_OK);
    ck_assert_int_eq(ex, 0);
    ck_assert_int_eq(cow_file_read(f, buf, 7, 0, &nr), COW_OK);
    ck_assert_str_eq(buf, "journal");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    stt->fsck_open(st, path); /* an orphan item names the open, unlinked file */
    cow_file_close(f);
    ck_assert_int_eq(cow_list(st, count_cb, &n), COW_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(cow_unlink(st, "db-old"), COW_ENOENT);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    stt->fsck_clean(path);
    stt->remove(path);
}
END_TEST

START_TEST(file_checksum_mismatch_is_error)
{
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/c.cow", dir);
    cow_store *st;
    cow_file *f;
    uint8_t blk[4096];
    memset(blk, 0x11, sizeof blk);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, blk, sizeof blk, 0), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    /* find the data block (the only block full of 0x11) and damage it */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    struct stat sb;
    fstat(fd, &sb);
    off_t hit = -1;
    for (off_t o = 0; o < sb.st_size; o += 4096) {
        uint8_t b[4096];
        ck_assert_int_eq(pread(fd, b, 4096, o), 4096);
        if (memcmp(b, blk, 4096) == 0)
            hit = o;
    }
    ck_assert_int_ge(hit, 0);
    ck_assert_int_eq(pwrite(fd, "X", 1, hit + 10), 1);
    close(fd);
    ck_assert_int_eq(cow_store_open(path, 0, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
    size_t n;
    ck_assert_int_eq(cow_file_read(f, blk, 100, 0, &n), COW_ECSUM);
    cow_file_close(f);
    cow_store_close(st);
    ck_assert_int_gt(cow_fsck(path, COW_FSCK_DATA, NULL, NULL), 0);
    test_rmdir(dir);
}
END_TEST

START_TEST(file_bad_containers)
{
    char *dir = test_mkdtemp();
    char path[4200];
    cow_store *st;
    snprintf(path, sizeof path, "%s/bad", dir);
    uint8_t junk[65536];
    uint64_t rs = 42;
    test_fill(&rs, junk, sizeof junk);
    /* random bytes */
    test_write_file(path, junk, sizeof junk);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_ENOTCONTAINER);
    /* too small */
    test_write_file(path, junk, 100);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_ENOTCONTAINER);
    /* missing without create */
    unlink(path);
    ck_assert_int_eq(cow_store_open(path, 0, &st), COW_ENOENT);
    ck_assert_int_eq(access(path, F_OK), -1);
    /* a truncated container */
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, junk, sizeof junk, 0), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size - 4096), 0); /* close cut it after its last block */
    ck_assert_int_eq(cow_store_open(path, 0, &st), COW_ECORRUPT);
    /* a damaged tree block: every block is checked when read */
    unlink(path);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    int fd = open(path, O_RDWR);
    uint8_t b[4096];
    int damaged = 0;
    off_t fsize = lseek(fd, 0, SEEK_END);
    for (off_t o = 8192; o < fsize; o += 4096) {
        ck_assert_int_eq(pread(fd, b, 4096, o), 4096);
        if (get32(b + TB_MAGIC) == COW_TREE_MAGIC) {
            b[200] ^= 0x40;
            ck_assert_int_eq(pwrite(fd, b, 4096, o), 4096);
            damaged++;
        }
    }
    close(fd);
    ck_assert_int_gt(damaged, 0);
    ck_assert_int_eq(cow_store_open(path, 0, &st), COW_ECORRUPT);
    ck_assert_int_gt(cow_fsck(path, COW_FSCK_DATA, NULL, NULL), 0);
    test_rmdir(dir);
}
END_TEST

/*
 * SIZE_HINT's preallocation: the size stays, the preallocated range reads
 * as zeros once the file grows over it, a write there lands in the
 * preallocated blocks themselves (the item is split around it), a
 * truncate to the current size frees what lies past it, a full disk fails
 * the preallocation and changes nothing, and fsck is clean throughout.
 */
START_TEST(prealloc_reads_zeros_writes_in_place)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, &ctl, "db", &f);
    uint8_t a[8192], b[4096], r[65536];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    ck_assert_int_eq(cow_file_write(f, a, sizeof a, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t nb0 = f->inode->nblocks;
    ck_assert_int_eq(cow_file_preallocate(f, 1 << 20), COW_OK);
    uint64_t size;
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_uint_eq(size, sizeof a); /* KEEP_SIZE */
    ck_assert_uint_eq(f->inode->nblocks, nb0 + ((1 << 20) - sizeof a) / 4096);
    uint64_t pdisk, pofs;
    int type;
    ck_assert_int_eq(test_item_at(f, 40960, &pdisk, &pofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_PREALLOC);
    /* preallocating again below what is there is a no-op */
    ck_assert_int_eq(cow_file_preallocate(f, 65536), COW_OK);
    ck_assert_uint_eq(f->inode->nblocks, nb0 + ((1 << 20) - sizeof a) / 4096);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    fsck_memdev(st, dev);

    /* the file grows over its preallocation: 16..20 KiB written, 8..16 KiB
     * a hole in the preallocated range */
    ck_assert_int_eq(cow_file_write(f, b, sizeof b, 40960), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    struct cow_stats cs;
    cow_store_stats(st, &cs);
    ck_assert_uint_eq(cs.written_in_place, 4096);
    uint64_t disk, ofs;
    ck_assert_int_eq(test_item_at(f, 40960, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_REG);
    ck_assert_uint_eq(disk, pdisk); /* the same extent, the same block */
    ck_assert_uint_eq(ofs, pofs);
    ck_assert_int_eq(test_item_at(f, 36864, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_PREALLOC);
    ck_assert_int_eq(test_item_at(f, 45056, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_PREALLOC);
    size_t n;
    ck_assert_int_eq(cow_file_read(f, r, 45056, 0, &n), COW_OK);
    ck_assert_uint_eq(n, 45056);
    ck_assert(memcmp(r, a, sizeof a) == 0);
    for (size_t i = sizeof a; i < 40960; i++)
        ck_assert_msg(r[i] == 0, "byte %zu of the preallocated hole is %d", i, r[i]);
    ck_assert(memcmp(r + 40960, b, sizeof b) == 0);
    /* what the log holds survives a power loss (replay), fsck agrees */
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen);
    cow_store *s2;
    ck_assert_int_eq(cow_store_open_dev("replay", memdev_from_image(img, ilen, NULL), 0, 0, &s2),
                     COW_OK);
    cow_file *f2;
    ck_assert_int_eq(cow_file_open(s2, "db", 0, &f2), COW_OK);
    memset(r, 1, sizeof r);
    ck_assert_int_eq(cow_file_read(f2, r, 45056, 0, &n), COW_OK);
    ck_assert_uint_eq(n, 45056);
    ck_assert(memcmp(r + 40960, b, sizeof b) == 0);
    ck_assert(r[20000] == 0);
    cow_file_close(f2);
    cow_store_close(s2);
    test_fsck_image(img, ilen);
    free(img);
    /* a second write to the same block is copy on write again */
    ck_assert_int_eq(cow_file_write(f, a, 4096, 40960), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(test_item_at(f, 40960, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_REG);
    ck_assert_uint_ne(disk + ofs, pdisk + pofs);
    cow_store_stats(st, &cs);
    ck_assert_uint_eq(cs.written_in_place, 4096);
    fsck_memdev(st, dev);

    /* truncate to the current size frees the preallocation past it */
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_int_eq(cow_file_truncate(f, size), COW_OK);
    ck_assert_uint_eq(f->inode->nblocks, size / 4096);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    fsck_memdev(st, dev);

    /* a full disk: nothing preallocated, nothing changed */
    ctl->fail_grow = 1;
    uint64_t nb1 = f->inode->nblocks;
    ck_assert_int_eq(cow_file_preallocate(f, 1ull << 32), COW_ENOSPC);
    ck_assert_uint_eq(f->inode->nblocks, nb1);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    fsck_memdev(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* ---- snapshots and branches ---- */

static int count_subvols_cb(void *arg, const struct cow_subvol_info *si)
{
    struct cow_subvol_info *v = arg;
    v[v[0].id == 0 ? 0 : 1] = *si; /* the first two */
    return 0;
}

/* Opens NAME in SUBVOL of ST and checks it holds exactly model M. */
static void expect_subvol_file(cow_store *st, const char *subvol, const char *name,
                               const struct fmodel *m)
{
    cow_file *f;
    int rc = cow_subvol_file_open(st, subvol, name, 0, &f);
    ck_assert_msg(rc == COW_OK, "open %s in %s: %s", name, subvol ? subvol : "(live)",
                  cow_store_last_error(st));
    fm_compare(f, m);
    cow_file_close(f);
}

/*
 * Snapshots and branches at the store level: a snapshot keeps the state
 * it was taken in while the live file changes, refuses writes; a branch
 * of it diverges on its own; all of it survives a reopen; bad and
 * duplicate names change nothing; deleting frees what only the deleted
 * one held (fsck's refcount and space checks, after each step).
 */
START_TEST(subvol_snapshot_branch_delete)
{
    struct cow_dev *dev;
    cow_store *st = target_store(&dev);
    uint64_t rs = test_seed() ^ 0x5a9;
    enum { SZ = 3 << 20 };
    uint8_t *blob = malloc(SZ), page[4096];
    test_fill(&rs, blob, SZ);
    struct fmodel a = {0}, live = {0}, br = {0};
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, blob, SZ, 0), COW_OK);
    fm_write(&a, blob, SZ, 0);
    fm_write(&live, blob, SZ, 0);
    /* buffered, not yet committed: the snapshot has it all the same */
    ck_assert_int_eq(cow_subvol_create(st, "s1", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);

    /* names: bad, taken, missing source; nothing changes */
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = 0;
    ck_assert_int_eq(cow_subvol_create(st, "", COW_SUBVOL_SNAPSHOT, NULL), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_create(st, "a/b", COW_SUBVOL_SNAPSHOT, NULL), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_create(st, longname, COW_SUBVOL_SNAPSHOT, NULL), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_create(st, "bad\xff", COW_SUBVOL_SNAPSHOT, NULL), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_create(st, "s1", COW_SUBVOL_BRANCH, NULL), COW_EEXIST);
    ck_assert_int_eq(cow_subvol_create(st, "x", COW_SUBVOL_BRANCH, "nope"), COW_ENOENT);
    ck_assert_int_eq(cow_subvol_create(st, "snapsh\xc3\xb8t", COW_SUBVOL_SNAPSHOT, NULL),
                     COW_OK); /* UTF-8 is fine */
    ck_assert_int_eq(cow_subvol_delete(st, "snapsh\xc3\xb8t"), COW_OK);

    /* the live file changes: random pages, a shrink, a new file */
    for (int i = 0; i < 200; i++) {
        uint64_t off = test_rand(&rs) % (SZ / 4096) * 4096;
        test_fill(&rs, page, sizeof page);
        ck_assert_int_eq(cow_file_write(f, page, sizeof page, off), COW_OK);
        fm_write(&live, page, sizeof page, off);
    }
    ck_assert_int_eq(cow_file_truncate(f, SZ - 100000), COW_OK);
    fm_truncate(&live, SZ - 100000);
    cow_file *w;
    ck_assert_int_eq(cow_file_open(st, "db-wal", 1, &w), COW_OK);
    ck_assert_int_eq(cow_file_write(w, "wal", 3, 0), COW_OK);
    cow_file_close(w);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    target_fsck(st, dev);

    /* the snapshot: as taken, read-only */
    expect_subvol_file(st, "s1", "db", &a);
    expect_subvol_file(st, NULL, "db", &live);
    cow_file *sf;
    ck_assert_int_eq(cow_subvol_file_open(st, "s1", "db", 1, &sf), COW_OK);
    ck_assert_int_eq(cow_file_write(sf, "x", 1, 0), COW_EROFS);
    ck_assert_int_eq(cow_file_truncate(sf, 0), COW_EROFS);
    ck_assert_int_eq(cow_subvol_delete(st, "s1"), COW_EBUSY); /* a file is open */
    cow_file_close(sf);
    ck_assert_int_eq(cow_subvol_file_open(st, "s1", "db-wal", 0, &sf), COW_ENOENT);
    ck_assert_int_eq(cow_subvol_file_open(st, "s1", "db-wal", 1, &sf), COW_EROFS);

    /* a branch of the snapshot diverges on its own */
    ck_assert_int_eq(cow_subvol_create(st, "b1", COW_SUBVOL_BRANCH, "s1"), COW_OK);
    fm_copy(&br, &a);
    cow_file *bf;
    ck_assert_int_eq(cow_subvol_file_open(st, "b1", "db", 0, &bf), COW_OK);
    for (int i = 0; i < 50; i++) {
        uint64_t off = test_rand(&rs) % (SZ / 4096 + 64) * 4096;
        test_fill(&rs, page, sizeof page);
        ck_assert_int_eq(cow_file_write(bf, page, sizeof page, off), COW_OK);
        fm_write(&br, page, sizeof page, off);
    }
    ck_assert_int_eq(cow_file_sync(bf), COW_OK);
    cow_file_close(bf);
    cow_file *nf;
    ck_assert_int_eq(cow_subvol_file_open(st, "b1", "new", 1, &nf), COW_OK);
    cow_file_close(nf);
    expect_subvol_file(st, "b1", "db", &br);
    expect_subvol_file(st, "s1", "db", &a);
    expect_subvol_file(st, NULL, "db", &live);
    struct cow_subvol_info info[2];
    memset(info, 0, sizeof info);
    ck_assert_int_eq(cow_subvol_list(st, count_subvols_cb, info), COW_OK);
    ck_assert_str_eq(info[0].name, "s1");
    ck_assert_int_eq(info[0].kind, COW_SUBVOL_SNAPSHOT);
    ck_assert_str_eq(info[0].source, "");
    ck_assert_str_eq(info[1].name, "b1");
    ck_assert_int_eq(info[1].kind, COW_SUBVOL_BRANCH);
    ck_assert_str_eq(info[1].source, "s1");
    target_fsck(st, dev);

    /* all of it survives a reopen */
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_store *s2;
    ck_assert_int_eq(stt->open_beside(dev, 0, &s2), COW_OK);
    expect_subvol_file(s2, "s1", "db", &a);
    expect_subvol_file(s2, "b1", "db", &br);
    expect_subvol_file(s2, NULL, "db", &live);
    cow_store_close(s2);

    /* deleting frees what only it held; the others stay whole */
    ck_assert_int_eq(cow_subvol_delete(st, "s1"), COW_OK);
    ck_assert_int_eq(cow_subvol_delete(st, "s1"), COW_ENOENT);
    target_fsck(st, dev);
    expect_subvol_file(st, "b1", "db", &br);
    expect_subvol_file(st, NULL, "db", &live);
    ck_assert_int_eq(cow_subvol_delete(st, "b1"), COW_OK);
    target_fsck(st, dev);
    expect_subvol_file(st, NULL, "db", &live);
    ck_assert_int_eq(cow_subvol_file_open(st, "b1", "db", 0, &f), COW_ENOENT);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(blob);
    free(a.data);
    free(live.data);
    free(br.data);
}
END_TEST

/* 1 if PATH exists. */
static int exists_path(const char *path)
{
    return access(path, F_OK) == 0;
}

/*
 * A new container is formatted in PATH-cownew and renamed onto PATH once
 * its first commit is flushed, so a crash while formatting leaves no
 * half-made container (test/crash/ checks the crash states; this checks
 * the files): a leftover temporary file is reused, one locked by another
 * creator is COW_EBUSY and nothing appears, the new container opens in
 * another process, an empty PATH is replaced, and a read-only or
 * non-creating open makes nothing.
 */
START_TEST(file_create_is_atomic)
{
    char *dir = test_mkdtemp();
    char path[4200], tmp[4300];
    cow_store *st;
    snprintf(path, sizeof path, "%s/new.db", dir);
    snprintf(tmp, sizeof tmp, "%s-cownew", path);
    /* a format a crash interrupted: garbage in the temporary file */
    uint8_t junk[20000];
    memset(junk, 0xa5, sizeof junk);
    test_write_file(tmp, junk, sizeof junk);
    ck_assert_int_eq(cow_store_open(path, 0, &st), COW_ENOENT);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE | COW_OPEN_READONLY, &st), COW_ENOENT);
    ck_assert(!exists_path(path));
    /* another process formatting: its lock on the temporary file */
    int lfd = open(tmp, O_RDWR);
    ck_assert_int_ge(lfd, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* the child holds an exclusive flock until killed */
        flock(lfd, LOCK_EX);
        pause();
        _exit(0);
    }
    close(lfd);
    for (int i = 0; i < 30000; i++) { /* until the child has its lock */
        int fd = open(tmp, O_RDWR);
        int busy = flock(fd, LOCK_EX | LOCK_NB) != 0;
        close(fd);
        if (busy)
            break;
        usleep(1000);
    }
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_EBUSY);
    ck_assert(!exists_path(path));
    ck_assert(exists_path(tmp)); /* someone else's: left alone */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* the second process below, made before this one starts threads (a
     * fork copies none, and a lock one held stays held in the child) */
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        cow_store *st2;
        cow_file *f2;
        char got[6] = {0};
        size_t n = 0;
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        if (cow_store_open(path, COW_OPEN_CREATE, &st2) != COW_OK ||
            cow_file_open(st2, "db", 0, &f2) != COW_OK ||
            cow_file_read(f2, got, 5, 0, &n) != COW_OK)
            _exit(1);
        cow_file_close(f2);
        _exit(n == 5 && memcmp(got, "hello", 5) == 0 && cow_store_close(st2) == COW_OK ? 0 : 2);
    }
    close(go[0]);
    /* the leftover is reused and gone once the container is in place */
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert(exists_path(path));
    ck_assert(!exists_path(tmp));
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_gt(sb.st_size, 2 * 4096);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "hello", 5, 0), COW_OK);
    cow_file_close(f);
    /* a second process opens the published file and reads what this one
     * wrote: it becomes the owner, this one publishes first (xproc.c) */
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    close(go[1]);
    pid = child;
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    ck_assert_int_eq(cow_fsck(path, COW_FSCK_DATA, NULL, NULL), 0);
    /* an empty file at PATH (made by touch, say) becomes a container */
    unlink(path);
    test_write_file(path, junk, 0);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_READONLY, &st), COW_ENOTCONTAINER);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert(!exists_path(tmp));
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_gt(sb.st_size, 2 * 4096);
    ck_assert_int_eq(cow_fsck(path, COW_FSCK_DATA, NULL, NULL), 0);
    /* and a container is opened, not formatted again */
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    int ex = 0;
    ck_assert_int_eq(cow_exists(st, "db", &ex), COW_OK);
    ck_assert_int_eq(ex, 0);
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_exists(st, "db", &ex), COW_OK);
    ck_assert_int_eq(ex, 1);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    test_rmdir(dir);
}
END_TEST

/* Appends with partial blocks (SQLite's WAL frames: a 24-byte header, then
 * a page), overwrites near the end and truncations, against a byte model:
 * the merge of an append's first block comes from the copy of the last
 * block written, which every other change must invalidate. */
START_TEST(file_appends_model)
{
    uint64_t rs = test_seed() ^ 0xa99e;
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = target_store_background(&dev, "db-wal", &f);
    struct fmodel m = {0};
    uint8_t buf[9000];
    for (int op = 0, nops = stt_scaled(3000); op < nops; op++) {
        unsigned r = (unsigned)(test_rand(&rs) % 100);
        size_t len = 1 + test_rand(&rs) % (r < 50 ? 32 : sizeof buf), off;
        test_fill(&rs, buf, len);
        if (r < 70) {
            off = m.size; /* append */
        } else if (r < 85) {
            size_t back = test_rand(&rs) % 6000;
            off = m.size > back ? m.size - back : 0; /* near the end */
        } else if (r < 93) {
            size_t d = test_rand(&rs) % 3000, size = m.size + d; /* grow, or shrink: */
            if (test_rand(&rs) % 2)
                size = m.size > d ? m.size - d : 0;
            ck_assert_int_eq(cow_file_truncate(f, size), COW_OK);
            fm_truncate(&m, size);
            continue;
        } else if (r < 97) {
            ck_assert_int_eq(cow_file_sync(f), COW_OK);
            continue;
        } else {
            off = test_rand(&rs) % (m.size + 1);
        }
        ck_assert_int_eq(cow_file_write(f, buf, len, off), COW_OK);
        fm_write(&m, buf, len, off);
        if (op % 100 == 0)
            fm_compare(f, &m);
    }
    fm_compare(f, &m);
    cow_file_close(f);
    target_fsck(st, dev);
    cow_store_close(st);
    free(m.data);
}
END_TEST

/* Delayed allocation: a full disk fails the write that reserves, never the
 * writeback; what was accepted is all written back, and nothing stays
 * reserved. */
START_TEST(delalloc_full_disk_fails_the_write_not_writeback)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, &ctl);
    cow_store_set_dirty_limit(st, 1ull << 40); /* nothing written back early */
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    enum { CH = 64 * 1024 };
    uint8_t buf[CH];
    /* some free space (groups added), then the disk is full */
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, (uint64_t)i * CH), COW_OK);
    ck_assert_int_eq(cow_file_truncate(f, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ctl->fail_grow = 1;
    uint64_t accepted = 0;
    int rc = COW_OK;
    for (int i = 0; rc == COW_OK && i < 4096; i++) {
        memset(buf, (uint8_t)(i + 1), sizeof buf);
        rc = cow_file_write(f, buf, sizeof buf, accepted);
        if (rc == COW_OK)
            accepted += CH;
    }
    ck_assert_int_eq(rc, COW_ENOSPC);
    ck_assert_uint_gt(accepted, 0);
    struct cow_stats cs;
    cow_store_stats(st, &cs);
    ck_assert_uint_eq(cs.dirty_bytes, accepted); /* buffered, all of it */
    ck_assert_uint_eq(cs.reserved_bytes, accepted);
    /* the disk is still full: writeback and commit must succeed anyway */
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_store_stats(st, &cs);
    ck_assert_uint_eq(cs.dirty_bytes, 0);
    ck_assert_uint_eq(cs.reserved_bytes, 0);
    for (uint64_t off = 0; off < accepted; off += CH) {
        size_t n;
        ck_assert_int_eq(cow_file_read(f, buf, sizeof buf, off, &n), COW_OK);
        ck_assert(buf[0] == (uint8_t)(off / CH + 1) && buf[CH - 1] == buf[0]);
    }
    ctl->fail_grow = 0;
    cow_file_close(f);
    fsck_memdev(st, dev);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/*
 * The same with writes that need much metadata: random 4 KiB overwrites
 * of a file, each of which splits an extent item and adds a csum and an
 * extent item.  Every write that returned must be written back and
 * committed on the full disk: the metadata those take was there when the
 * write was accepted (resv_meta_blocks).
 */
START_TEST(delalloc_full_disk_metadata)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, &ctl);
    cow_store_set_dirty_limit(st, 1ull << 40);
    cow_file *f, *g;
    enum { FILE_BYTES = 8 << 20, SCRATCH = 6 << 20 };
    uint8_t *blob = malloc(FILE_BYTES);
    uint64_t rs = test_seed() ^ 0x3e7a;
    test_fill(&rs, blob, FILE_BYTES);
    struct fmodel m = {0};
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, blob, FILE_BYTES, 0), COW_OK);
    fm_write(&m, blob, FILE_BYTES, 0);
    /* free data space: a scratch file written, committed and removed */
    ck_assert_int_eq(cow_file_open(st, "scratch", 1, &g), COW_OK);
    ck_assert_int_eq(cow_file_write(g, blob, SCRATCH, 0), COW_OK);
    cow_file_close(g);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_unlink(st, "scratch"), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ctl->fail_grow = 1;
    int rc = COW_OK, accepted = 0;
    uint8_t page[4096];
    while (rc == COW_OK && accepted < 20000) {
        uint64_t off = test_rand(&rs) % (FILE_BYTES / 4096) * 4096;
        test_fill(&rs, page, sizeof page);
        rc = cow_file_write(f, page, sizeof page, off);
        if (rc == COW_OK) {
            fm_write(&m, page, sizeof page, off);
            accepted++;
        }
    }
    ck_assert_int_eq(rc, COW_ENOSPC);
    ck_assert_int_gt(accepted, 100);
    /* every accepted write goes to the device and commits, disk full */
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    fm_compare(f, &m);
    ctl->fail_grow = 0;
    cow_file_close(f);
    fsck_memdev(st, dev);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(blob);
    free(m.data);
}
END_TEST

/* The dirty limit bounds buffered data: a long run of writes stays within
 * it (plus one write), and the data is right. */
START_TEST(delalloc_dirty_limit_bounds_memory)
{
    struct cow_dev *dev;
    cow_store *st = target_store(&dev);
    cow_store_set_dirty_limit(st, 256 * 1024);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    uint8_t buf[4096];
    uint64_t most = 0;
    for (int i = 0; i < 1000; i++) {
        memset(buf, (uint8_t)i, sizeof buf);
        ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, (uint64_t)i * 4096), COW_OK);
        struct cow_stats cs;
        cow_store_stats(st, &cs);
        if (cs.dirty_bytes > most)
            most = cs.dirty_bytes;
    }
    ck_assert_uint_le(most, 256 * 1024 + 4096);
    struct cow_stats cs;
    cow_store_stats(st, &cs);
    ck_assert_uint_gt(cs.ordered_extents, 0);
    for (int i = 0; i < 1000; i += 37) {
        size_t n;
        ck_assert_int_eq(cow_file_read(f, buf, sizeof buf, (uint64_t)i * 4096, &n), COW_OK);
        ck_assert(buf[0] == (uint8_t)i && buf[4095] == (uint8_t)i);
    }
    cow_file_close(f);
    target_fsck(st, dev);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* xFetch: a pinned page stays valid through writeback, truncate and
 * rewrites (ASan sees any use after free); a write shows through it; past
 * the end nothing is fetched. */
START_TEST(fetch_pins_pages)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = target_store_background(&dev, "db", &f);
    uint8_t buf[3 * 4096];
    memset(buf, 'a', sizeof buf);
    ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, 0), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    void *p0, *p1, *p2, *none;
    ck_assert_int_eq(cow_file_fetch(f, 0, 4096, &p0), COW_OK);
    ck_assert_int_eq(cow_file_fetch(f, 4096 + 1024, 1024, &p1), COW_OK);
    ck_assert_int_eq(cow_file_fetch(f, 8192, 4096, &p2), COW_OK);
    ck_assert_int_eq(cow_file_fetch(f, 4096, 8192, &none), COW_OK); /* two blocks */
    ck_assert_ptr_null(none);
    ck_assert_int_eq(cow_file_fetch(f, 3 * 4096, 4096, &none), COW_OK); /* past the end */
    ck_assert_ptr_null(none);
    ck_assert_ptr_nonnull(p0);
    ck_assert_ptr_nonnull(p1);
    ck_assert_ptr_nonnull(p2);
    ck_assert(((uint8_t *)p0)[0] == 'a' && ((uint8_t *)p1)[1023] == 'a');
    /* a write shows through the pointer, and writeback keeps it */
    ck_assert_int_eq(cow_file_write(f, "B", 1, 10), COW_OK);
    ck_assert(((uint8_t *)p0)[10] == 'B');
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    ck_assert(((uint8_t *)p0)[10] == 'B');
    /* truncate away the third block: its pinned page is detached, not freed */
    ck_assert_int_eq(cow_file_truncate(f, 4096), COW_OK);
    ck_assert(((uint8_t *)p2)[4095] == 'a');
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_file_unfetch(f, 8192, p2);
    cow_file_unfetch(f, 4096 + 1024, p1);
    cow_file_unfetch(f, 0, p0);
    /* regrown, the dropped blocks are a hole */
    ck_assert_int_eq(cow_file_truncate(f, 3 * 4096), COW_OK);
    size_t n;
    ck_assert_int_eq(cow_file_read(f, buf, sizeof buf, 0, &n), COW_OK);
    ck_assert(buf[10] == 'B' && buf[4095] == 'a' && buf[4096] == 0 && buf[3 * 4096 - 1] == 0);
    cow_file_close(f);
    target_fsck(st, dev);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/*
 * Restore: the live files (and a branch) go back to a snapshot while
 * handles stay open: each handle is rebound by name (a name the snapshot
 * lacks is created empty), reads give the snapshot's bytes, later writes
 * diverge again, and the snapshot itself never changes.  Also the VFS's
 * creation extras: a file dropped in the same commit, and an unfinished
 * branch that is not listed, is finished, or disappears at the next open.
 */
struct subvol_names {
    int n;
    char name[8][256];
};

static int collect_subvols_cb(void *arg, const struct cow_subvol_info *si)
{
    struct subvol_names *sn = arg;
    if (sn->n < 8)
        strcpy(sn->name[sn->n], si->name);
    sn->n++;
    return 0;
}

START_TEST(subvol_restore_and_create_ex)
{
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, NULL);
    uint64_t rs = test_seed() ^ 0x7e5;
    enum { SZ = 1 << 20 };
    uint8_t *blob = malloc(SZ), page[4096];
    test_fill(&rs, blob, SZ);
    struct fmodel snap = {0}, live = {0}, jr = {0};
    cow_file *f, *j;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, blob, SZ, 0), COW_OK);
    fm_write(&live, blob, SZ, 0);
    ck_assert_int_eq(cow_file_open(st, "db-journal", 1, &j), COW_OK);
    ck_assert_int_eq(cow_file_write(j, "journal", 7, 0), COW_OK);
    fm_write(&jr, (const uint8_t *)"journal", 7, 0);
    /* a snapshot without the journal; the live files keep theirs.  One
     * commit with one flush, although the writes above are not committed:
     * they go into the snapshot's commit (their blocks marked shared) */
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_subvol_create_ex(st, "s", COW_SUBVOL_SNAPSHOT, NULL, "db-journal", 0),
                     COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.commits - s0.commits, 1);
    ck_assert_uint_eq(s1.flushes - s0.flushes, 1);
    cow_file *x;
    ck_assert_int_eq(cow_subvol_file_open(st, "s", "db-journal", 0, &x), COW_ENOENT);
    expect_subvol_file(st, NULL, "db-journal", &jr);
    fm_copy(&snap, &live);
    int kind;
    ck_assert_int_eq(cow_subvol_kind(st, "s", &kind), COW_OK);
    ck_assert_int_eq(kind, COW_SUBVOL_SNAPSHOT);
    ck_assert_int_eq(cow_subvol_kind(st, "nope", &kind), COW_ENOENT);
    fsck_memdev(st, dev);

    /* the live file changes and grows; the journal goes; a WAL appears */
    for (int i = 0; i < 100; i++) {
        uint64_t off = test_rand(&rs) % (SZ / 4096 + 16) * 4096;
        test_fill(&rs, page, sizeof page);
        ck_assert_int_eq(cow_file_write(f, page, sizeof page, off), COW_OK);
        fm_write(&live, page, sizeof page, off);
    }
    cow_file_close(j);
    ck_assert_int_eq(cow_unlink(st, "db-journal"), COW_OK);
    cow_file *w;
    ck_assert_int_eq(cow_file_open(st, "db-wal", 1, &w), COW_OK);
    ck_assert_int_eq(cow_file_write(w, "wal!", 4, 0), COW_OK); /* buffered */

    /* errors change nothing */
    ck_assert_int_eq(cow_subvol_restore(st, NULL, "nope"), COW_ENOENT);
    ck_assert_int_eq(cow_subvol_restore(st, "s", "s"), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_restore(st, "bad/name", "s"), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_create(st, "b", COW_SUBVOL_BRANCH, NULL), COW_OK);
    ck_assert_int_eq(cow_subvol_restore(st, "s", "b"), COW_EROFS);
    fm_compare(f, &live);

    /* restore: the open handles now read the snapshot's files */
    ck_assert_int_eq(cow_subvol_restore(st, NULL, "s"), COW_OK);
    fm_compare(f, &snap);
    uint64_t wsize = 1;
    ck_assert_int_eq(cow_file_size(w, &wsize), COW_OK);
    ck_assert_uint_eq(wsize, 0); /* s has no WAL: made empty for the handle */
    expect_subvol_file(st, "s", "db", &snap);
    fsck_memdev(st, dev);
    /* and diverge again, without touching the snapshot */
    for (int i = 0; i < 20; i++) {
        uint64_t off = test_rand(&rs) % (SZ / 4096) * 4096;
        test_fill(&rs, page, sizeof page);
        ck_assert_int_eq(cow_file_write(f, page, sizeof page, off), COW_OK);
        fm_write(&snap, page, sizeof page, off);
    }
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    fm_compare(f, &snap);
    fm_copy(&live, &snap);
    fm_copy(&snap, &jr); /* reuse: s's db is the original blob */
    struct fmodel orig = {0};
    fm_write(&orig, blob, SZ, 0);
    expect_subvol_file(st, "s", "db", &orig);

    /* a branch restored to the snapshot */
    ck_assert_int_eq(cow_subvol_file_open(st, "b", "db", 0, &x), COW_OK);
    cow_file_close(x);
    ck_assert_int_eq(cow_subvol_restore(st, "b", "s"), COW_OK);
    expect_subvol_file(st, "b", "db", &orig);
    fsck_memdev(st, dev);

    /* an unfinished branch: not listed, usable, finished as a snapshot */
    ck_assert_int_eq(cow_subvol_create_ex(st, "u", COW_SUBVOL_SNAPSHOT, NULL, NULL, 1), COW_OK);
    ck_assert_int_eq(cow_subvol_kind(st, "u", &kind), COW_OK);
    ck_assert_int_eq(kind, COW_SUBVOL_INCOMPLETE);
    struct subvol_names sn = {0};
    ck_assert_int_eq(cow_subvol_list(st, collect_subvols_cb, &sn), COW_OK);
    ck_assert_int_eq(sn.n, 2);
    ck_assert_str_eq(sn.name[0], "s");
    ck_assert_str_eq(sn.name[1], "b");
    /* a source of restore (the VFS restores from such a copy of a branch):
     * u is a copy of the live files, so they hold what they held */
    ck_assert_int_eq(cow_subvol_restore(st, NULL, "u"), COW_OK);
    expect_subvol_file(st, NULL, "db", &live);
    ck_assert_int_eq(cow_subvol_file_open(st, "u", "db", 0, &x), COW_OK);
    ck_assert_int_eq(cow_file_write(x, "fixed", 5, 0), COW_OK);
    ck_assert_int_eq(cow_subvol_finish(st, "u", COW_SUBVOL_SNAPSHOT), COW_EBUSY);
    cow_file_close(x);
    ck_assert_int_eq(cow_subvol_finish(st, "u", COW_SUBVOL_SNAPSHOT), COW_OK);
    ck_assert_int_eq(cow_subvol_kind(st, "u", &kind), COW_OK);
    ck_assert_int_eq(kind, COW_SUBVOL_SNAPSHOT);
    ck_assert_int_eq(cow_subvol_finish(st, "u", COW_SUBVOL_SNAPSHOT), COW_ENOENT);
    fm_write(&live, (const uint8_t *)"fixed", 5, 0);
    expect_subvol_file(st, "u", "db", &live);
    fsck_memdev(st, dev);

    /* one left unfinished by a "crash" disappears at the next open */
    ck_assert_int_eq(cow_subvol_create_ex(st, "v", COW_SUBVOL_BRANCH, "s", NULL, 1), COW_OK);
    cow_file_close(w);
    cow_file_close(f);
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen);
    struct cow_dev *d2 = memdev_from_image(img, ilen, NULL);
    cow_store *s2;
    ck_assert_int_eq(cow_store_open_dev("again", d2, 0, 0, &s2), COW_OK);
    ck_assert_int_eq(cow_subvol_kind(s2, "v", &kind), COW_ENOENT);
    expect_subvol_file(s2, "u", "db", &live);
    expect_subvol_file(s2, "s", "db", &orig);
    fsck_memdev(s2, d2);
    ck_assert_int_eq(cow_store_close(s2), COW_OK);
    free(img);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(blob);
    free(live.data);
    free(snap.data);
    free(jr.data);
    free(orig.data);
}
END_TEST

/* Reads file NAME of SUBVOL in ST into a model (NULL if it does not open). */
static int subvol_matches(cow_store *st, const char *subvol, const struct fmodel *m)
{
    cow_file *f;
    if (cow_subvol_file_open(st, subvol, "db", 0, &f) != COW_OK)
        return 0;
    uint64_t size = 0;
    int ok = cow_file_size(f, &size) == COW_OK && size == m->size;
    uint8_t *buf = malloc(m->size + 1);
    size_t n = 0;
    ok = ok && cow_file_read(f, buf, m->size, 0, &n) == COW_OK && n == m->size &&
         memcmp(buf, m->data, m->size) == 0;
    free(buf);
    cow_file_close(f);
    return ok;
}

enum { SOP_SNAPSHOT, SOP_BRANCH, SOP_DELETE, SOP_RESTORE, SOP_UNFINISHED, SOP_N };

/* Runs operation OP of subvol_ops_crash_atomic on ST. */
static int subvol_op(cow_store *st, int op)
{
    switch (op) {
    case SOP_SNAPSHOT: return cow_subvol_create(st, "n", COW_SUBVOL_SNAPSHOT, NULL);
    case SOP_BRANCH: return cow_subvol_create(st, "n", COW_SUBVOL_BRANCH, "s0");
    case SOP_DELETE: return cow_subvol_delete(st, "s0");
    case SOP_RESTORE: return cow_subvol_restore(st, NULL, "s0");
    default: {
        int rc = cow_subvol_create_ex(st, "n", COW_SUBVOL_BRANCH, NULL, NULL, 1);
        if (rc == COW_OK)
            rc = cow_subvol_finish(st, "n", COW_SUBVOL_SNAPSHOT);
        return rc;
    }
    }
}

/*
 * Crashes during snapshot, branch, delete and restore (and the VFS's
 * unfinished-branch path): for every number of device writes the
 * operation gets before the device fails, the states a power loss can
 * leave (only what was flushed; every pending write; a random subset,
 * torn) open read-write, pass fsck, and show the operation either done
 * whole or not at all: a new subvolume exists with the source's exact
 * content or does not exist, a deleted one is whole or gone, the live
 * file is the old or the restored content, never a mix.
 */
START_TEST(subvol_ops_crash_atomic)
{
    uint64_t rs = test_seed() ^ 0xc4a5;
    enum { SZ = 300 << 10 };
    struct fmodel m0 = {0}, live = {0};
    uint8_t *blob = malloc(SZ);
    test_fill(&rs, blob, SZ);
    /* the base: s0 holds blob, the live file differs from it */
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    ck_assert_int_eq(cow_file_write(f, blob, SZ, 0), COW_OK);
    fm_write(&m0, blob, SZ, 0);
    ck_assert_int_eq(cow_subvol_create(st, "s0", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    fm_copy(&live, &m0);
    for (int i = 0; i < 30; i++) {
        uint8_t page[4096];
        uint64_t off = test_rand(&rs) % (SZ / 4096 + 8) * 4096;
        test_fill(&rs, page, sizeof page);
        ck_assert_int_eq(cow_file_write(f, page, sizeof page, off), COW_OK);
        fm_write(&live, page, sizeof page, off);
    }
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t blen;
    uint8_t *base = memdev_image(dev, &blen);
    ck_assert_int_eq(cow_store_close(st), COW_OK);

    long nstates = 0;
    for (int op = 0; op < SOP_N; op++) {
        int done = 0;
        for (long n = 1; !done && n < 2000; n++) {
            struct memdev_ctl *ctl;
            struct cow_dev *d = memdev_from_image(base, blen, &ctl);
            ck_assert_int_eq(cow_store_open_dev("op", d, 0, 0, &st), COW_OK);
            cow_store_set_commit_interval(st, 0);
            ctl->fail_writes_after = n;
            done = subvol_op(st, op) == COW_OK;
            size_t nunits, nsizes;
            memdev_pending(d, &nunits, &nsizes);
            uint8_t *keep = malloc(nunits + 1);
            for (int k = 0; k < 12; k++) {
                for (size_t u = 0; u < nunits; u++)
                    keep[u] = k == 0 ? 0 : k == 1 ? 0xff : (uint8_t)test_rand(&rs);
                size_t len;
                uint8_t *img = memdev_crash_state(d, keep, k == 0 ? 0 : nsizes, &len);
                test_fsck_image(img, len);
                struct cow_dev *d2 = memdev_from_image(img, len, NULL);
                cow_store *s2;
                int orc = cow_store_open_dev("after", d2, 0, 0, &s2);
                ck_assert_msg(orc == COW_OK, "op %d, %ld writes, state %d: %s", op, n, k,
                              cow_store_last_error(NULL));
                int kind = 0, have_n = cow_subvol_kind(s2, "n", &kind) == COW_OK;
                int have_s0 = cow_subvol_kind(s2, "s0", &kind) == COW_OK;
                ck_assert_msg(have_s0 || op == SOP_DELETE, "op %d: s0 lost", op);
                if (have_s0)
                    ck_assert_msg(subvol_matches(s2, "s0", &m0), "op %d: s0 changed", op);
                if (have_n) {
                    ck_assert_int_ne(kind, COW_SUBVOL_INCOMPLETE);
                    ck_assert_msg(subvol_matches(s2, "n", op == SOP_BRANCH ? &m0 : &live),
                                  "op %d, %ld writes, state %d: n is not whole", op, n, k);
                }
                ck_assert_msg(subvol_matches(s2, NULL, &live) ||
                                  (op == SOP_RESTORE && subvol_matches(s2, NULL, &m0)),
                              "op %d, %ld writes, state %d: the live file is neither", op, n,
                              k);
                ck_assert_int_eq(cow_store_commit(s2), COW_OK);
                size_t l2;
                uint8_t *after = memdev_image(d2, &l2);
                ck_assert_int_eq(cow_store_close(s2), COW_OK);
                test_fsck_image(after, l2);
                free(after);
                free(img);
                nstates++;
            }
            free(keep);
            cow_store_close(st);
        }
        ck_assert_msg(done, "op %d never completed", op);
    }
    fprintf(stderr, "subvol_ops_crash_atomic: %ld crash states\n", nstates);
    ck_assert_int_gt(nstates, 50);
    free(base);
    free(blob);
    free(m0.data);
    free(live.data);
}
END_TEST

/*
 * Preallocated extents shared with a branch are never written in place:
 * the live file and a branch made after the preallocation both write into
 * the preallocated range, and each must keep its own data (in place, both
 * would write the same blocks).  Space preallocated after the branch is
 * the live file's alone and is written in place again.
 */
START_TEST(subvol_prealloc_not_shared_in_place)
{
    struct cow_dev *dev;
    cow_store *st = target_store(&dev);
    uint8_t a[8192], b[8192], z[8192];
    memset(a, 'A', sizeof a);
    memset(b, 'B', sizeof b);
    memset(z, 0, sizeof z);
    cow_file *f, *bf;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, z, 8192, 0), COW_OK);
    ck_assert_int_eq(cow_file_preallocate(f, 1 << 20), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_subvol_create(st, "b", COW_SUBVOL_BRANCH, NULL), COW_OK);
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_write(f, a, sizeof a, 65536), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_int_eq(cow_subvol_file_open(st, "b", "db", 0, &bf), COW_OK);
    ck_assert_int_eq(cow_file_write(bf, b, sizeof b, 65536), COW_OK);
    ck_assert_int_eq(cow_file_sync(bf), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.written_in_place, s0.written_in_place); /* all copied */
    uint8_t got[8192];
    size_t n;
    ck_assert_int_eq(cow_file_read(f, got, sizeof got, 65536, &n), COW_OK);
    ck_assert_msg(memcmp(got, a, sizeof a) == 0, "the branch's write reached the live file");
    ck_assert_int_eq(cow_file_read(bf, got, sizeof got, 65536, &n), COW_OK);
    ck_assert_msg(memcmp(got, b, sizeof b) == 0, "the live write reached the branch");
    cow_file_close(bf);
    target_fsck(st, dev);
    /* new preallocation, after the branch: in place again */
    ck_assert_int_eq(cow_file_preallocate(f, 4 << 20), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_write(f, a, sizeof a, 2 << 20), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.written_in_place - s0.written_in_place, sizeof a);
    target_fsck(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* On any target: the files' model tests, names, the dirty limit and
 * xFetch.  A damaged block and bad containers are a file's; a full disk
 * (memdev_ctl fail_grow) and crash states (prealloc, create) a memdev's
 * or a file's. */
void file_any_target(TCase *tc)
{
    tcase_add_test(tc, file_model);
    tcase_add_test(tc, file_appends_model);
    tcase_add_test(tc, file_names);
    tcase_add_test(tc, delalloc_dirty_limit_bounds_memory);
    tcase_add_test(tc, fetch_pins_pages);
}

/* On any target: snapshots, branches and deletes (their reopen a reader
 * beside the writer on RADOS), and preallocation shared with a branch.
 * Restore's unfinished branch that a crash leaves, and every operation's
 * crash states, are a memdev's. */
void subvol_any_target(TCase *tc)
{
    tcase_add_test(tc, subvol_snapshot_branch_delete);
    tcase_add_test(tc, subvol_prealloc_not_shared_in_place);
}

Suite *file_suite(void)
{
    Suite *s = suite_create("file");
    test_case(s, "file", 300, file_model, file_appends_model, file_names,
              file_checksum_mismatch_is_error, file_bad_containers,
              delalloc_full_disk_fails_the_write_not_writeback, delalloc_full_disk_metadata,
              delalloc_dirty_limit_bounds_memory, fetch_pins_pages, NULL);
    test_case(s, "prealloc", 0, prealloc_reads_zeros_writes_in_place, NULL);
    /* crash states of every operation */
    test_case(s, "subvol", 300, subvol_snapshot_branch_delete, subvol_restore_and_create_ex,
              subvol_ops_crash_atomic, subvol_prealloc_not_shared_in_place, NULL);
    test_case(s, "create", 0, file_create_is_atomic, NULL);
    return s;
}
