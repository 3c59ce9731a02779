/*
 * check_store.c - unit tests of the store: B+tree, allocator, transactions,
 * files.  Model-based tests print their seed (COW_TEST_SEED replays).
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

#define T_OBJ 1000000ull
#define T_TYPE 250

/* Commits ST (on memory device DEV) and fscks the durable image. */
static void fsck_memdev(cow_store *st, struct cow_dev *dev)
{
    size_t ilen;
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint8_t *img = memdev_crash_image(dev, &ilen);
    test_fsck_image(img, ilen);
    free(img);
}


/* ---- B+tree against a model ---- */

struct mitem {
    struct cow_key key;
    unsigned len;
    uint8_t data[COW_MAX_ITEM_DATA];
};

struct model {
    struct mitem *v;
    size_t n;
};

static long model_find(struct model *m, const struct cow_key *k, int *exact)
{
    size_t lo = 0, hi = m->n;
    *exact = 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(&m->v[mid].key, k);
        if (c == 0) {
            *exact = 1;
            return (long)mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (long)lo;
}

static void rand_key(uint64_t *rs, struct cow_key *k)
{
    k->objectid = T_OBJ + test_rand(rs) % 1500;
    k->type = T_TYPE;
    k->offset = test_rand(rs) % 8;
}

static unsigned rand_len(uint64_t *rs)
{
    uint64_t r = test_rand(rs) % 100;
    if (r < 5)
        return (unsigned)(test_rand(rs) % (COW_MAX_ITEM_DATA + 1));
    return (unsigned)(test_rand(rs) % 200);
}

static void check_seek(cow_store *st, struct model *m, const struct cow_key *k, int ge)
{
    struct cow_key f;
    uint8_t buf[COW_MAX_ITEM_DATA];
    size_t size;
    int exact;
    long i = model_find(m, k, &exact);
    long want = ge ? i : (exact ? i : i - 1);
    int rc = ge ? bt_seek_ge(st, &st->fs_tree, k, &f, buf, sizeof buf, &size)
                : bt_seek_le(st, &st->fs_tree, k, &f, buf, sizeof buf, &size);
    /* items outside the test range (the empty tree has none) */
    if (want < 0 || want >= (long)m->n) {
        ck_assert_msg(rc == COW_ENOENT || f.type != T_TYPE, "seek found a key the model lacks");
        return;
    }
    ck_assert_int_eq(rc, COW_OK);
    ck_assert_msg(key_cmp(&f, &m->v[want].key) == 0, "seek %s found the wrong key",
                  ge ? "ge" : "le");
    ck_assert_uint_eq(size, m->v[want].len);
    ck_assert(memcmp(buf, m->v[want].data, size) == 0);
}

static void full_compare(cow_store *st, struct model *m)
{
    struct cow_key k = {T_OBJ, T_TYPE, 0}, f;
    uint8_t buf[COW_MAX_ITEM_DATA];
    size_t size, i = 0;
    for (;;) {
        int rc = bt_seek_ge(st, &st->fs_tree, &k, &f, buf, sizeof buf, &size);
        if (rc == COW_ENOENT || f.type != T_TYPE)
            break;
        ck_assert_int_eq(rc, COW_OK);
        ck_assert_msg(i < m->n, "tree has more items than the model");
        ck_assert(key_cmp(&f, &m->v[i].key) == 0);
        ck_assert_uint_eq(size, m->v[i].len);
        ck_assert(memcmp(buf, m->v[i].data, size) == 0);
        i++;
        k = f;
        k.offset++;
    }
    ck_assert_uint_eq(i, m->n);
}

START_TEST(btree_model)
{
    uint64_t rs = test_seed() ^ 0xb7ee;
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/bt.cow", dir);
    cow_store *st;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    struct model m = {calloc(4000, sizeof(struct mitem)), 0};
    ck_assert_ptr_nonnull(m.v);
    int ops = 12000;
    unsigned max_level = 0;
    for (int op = 0; op < ops; op++) {
        if (st->fs_tree.level > max_level)
            max_level = st->fs_tree.level;
        struct cow_key k;
        rand_key(&rs, &k);
        int exact;
        long i = model_find(&m, &k, &exact);
        uint64_t r = test_rand(&rs) % 100;
        cow_mutex_lock(&st->lock);
        /* grow the tree for the first half, shrink it in the second */
        int grow = op < ops / 2;
        if (r < (grow ? 45u : 20u)) {
            struct mitem it = {k, rand_len(&rs), {0}};
            test_fill(&rs, it.data, it.len);
            int rc = (r & 1) ? bt_put(st, &st->fs_tree, &k, it.data, it.len)
                             : bt_insert(st, &st->fs_tree, &k, it.data, it.len);
            if (exact && !(r & 1)) {
                ck_assert_int_eq(rc, COW_EEXIST);
            } else {
                ck_assert_int_eq(rc, COW_OK);
                if (!exact) {
                    memmove(&m.v[i + 1], &m.v[i], (m.n - (size_t)i) * sizeof m.v[0]);
                    m.n++;
                }
                m.v[i] = it;
            }
        } else if (r < 70) {
            /* delete: usually an existing key */
            if (m.n && test_rand(&rs) % 4) {
                i = (long)(test_rand(&rs) % m.n);
                k = m.v[i].key;
                exact = 1;
            }
            int rc = bt_delete(st, &st->fs_tree, &k);
            ck_assert_int_eq(rc, exact ? COW_OK : COW_ENOENT);
            if (exact) {
                memmove(&m.v[i], &m.v[i + 1], (m.n - (size_t)i - 1) * sizeof m.v[0]);
                m.n--;
            }
        } else if (r < 85) {
            uint8_t buf[COW_MAX_ITEM_DATA];
            size_t size;
            int rc = bt_lookup(st, &st->fs_tree, &k, buf, sizeof buf, &size);
            ck_assert_int_eq(rc, exact ? COW_OK : COW_ENOENT);
            if (exact) {
                ck_assert_uint_eq(size, m.v[i].len);
                ck_assert(memcmp(buf, m.v[i].data, size) == 0);
            }
        } else {
            check_seek(st, &m, &k, r & 1);
        }
        cow_mutex_unlock(&st->lock);
        if (op % 700 == 699) {
            ck_assert_int_eq(cow_store_commit(st), COW_OK);
        }
        if (op % 3000 == 2999) {
            ck_assert_int_eq(cow_store_close(st), COW_OK);
            ck_assert_int_eq(cow_store_open(path, 0, &st), COW_OK);
            cow_mutex_lock(&st->lock);
            full_compare(st, &m);
            cow_mutex_unlock(&st->lock);
        }
    }
    cow_mutex_lock(&st->lock);
    full_compare(st, &m);
    ck_assert_uint_gt(max_level, 0); /* the test really built a multi-level tree */
    /* remove the test items so fsck sees only real file-system items */
    while (m.n) {
        ck_assert_int_eq(bt_delete(st, &st->fs_tree, &m.v[m.n - 1].key), COW_OK);
        m.n--;
    }
    cow_mutex_unlock(&st->lock);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    test_fsck_clean(path);
    free(m.v);
    test_rmdir(dir);
}
END_TEST

START_TEST(btree_max_items)
{
    /* leaves full of the largest items still split and merge correctly */
    struct memdev_ctl *ctl;
    cow_store *st;
    struct cow_dev *dev = memdev_new(&ctl);
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    uint8_t big[COW_MAX_ITEM_DATA];
    memset(big, 0xab, sizeof big);
    cow_mutex_lock(&st->lock);
    for (unsigned i = 0; i < 300; i++) {
        struct cow_key k = {T_OBJ + i, T_TYPE, 0};
        ck_assert_int_eq(bt_insert(st, &st->fs_tree, &k, big, sizeof big), COW_OK);
    }
    struct cow_key k = {T_OBJ, T_TYPE, 0};
    ck_assert_int_eq(bt_insert(st, &st->fs_tree, &k, big, 1), COW_EEXIST);
    ck_assert_int_eq(bt_put(st, &st->fs_tree, &k, big, sizeof big + 1), COW_EINVAL);
    for (unsigned i = 0; i < 300; i++) {
        struct cow_key kk = {T_OBJ + i, T_TYPE, 0};
        ck_assert_int_eq(bt_delete(st, &st->fs_tree, &kk), COW_OK);
    }
    ck_assert_uint_eq(st->fs_tree.level, 0);
    cow_mutex_unlock(&st->lock);
    fsck_memdev(st, dev);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

Suite *btree_suite(void)
{
    Suite *s = suite_create("btree");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, btree_model);
    tcase_add_test(tc, btree_max_items);
    suite_add_tcase(s, tc);
    return s;
}

/* ---- allocator ---- */

static uint64_t sum_used(cow_store *st)
{
    uint64_t u = 0;
    for (size_t i = 0; i < st->nbgs; i++)
        u += st->bgs[i].used;
    return u;
}

START_TEST(alloc_pinned_not_reused)
{
    struct memdev_ctl *ctl;
    cow_store *st;
    struct cow_dev *dev = memdev_new(&ctl);
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
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
    ck_assert_int_eq(txn_commit(st, 1), COW_OK);
    /* after the commit it is free again */
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
    cow_store *st;
    struct cow_dev *dev = memdev_new(&ctl);
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
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

Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, alloc_pinned_not_reused);
    tcase_add_test(tc, alloc_grows_by_groups_and_enospc);
    suite_add_tcase(s, tc);
    return s;
}

/* ---- transactions: a crash gives exactly the last committed state ---- */

struct fmodel {
    uint8_t *data;
    size_t size;
};

static void fm_write(struct fmodel *m, const uint8_t *b, size_t len, size_t off)
{
    if (off + len > m->size) {
        m->data = realloc(m->data, off + len);
        memset(m->data + m->size, 0, off + len - m->size);
        m->size = off + len;
    }
    memcpy(m->data + off, b, len);
}

static void fm_truncate(struct fmodel *m, size_t size)
{
    if (size > m->size) {
        m->data = realloc(m->data, size);
        memset(m->data + m->size, 0, size - m->size);
    }
    m->size = size;
}

static void fm_compare(cow_file *f, const struct fmodel *m)
{
    uint64_t size;
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_uint_eq(size, m->size);
    uint8_t *buf = malloc(m->size + 4096);
    size_t n;
    ck_assert_int_eq(cow_file_read(f, buf, m->size + 4096, 0, &n), COW_OK);
    ck_assert_uint_eq(n, m->size);
    ck_assert_msg(m->size == 0 || memcmp(buf, m->data, m->size) == 0,
                  "file content differs from the model");
    for (size_t i = 0; i < 4096; i++)
        ck_assert(buf[m->size + i] == 0);
    free(buf);
}

START_TEST(txn_crash_gives_last_commit)
{
    uint64_t rs = test_seed() ^ 0x7a7a;
    struct memdev_ctl *ctl;
    struct cow_dev *dev = memdev_new(&ctl);
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    struct fmodel live = {0}, committed = {0};
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
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
        /* crash now: reopen the durable image; it must be the last commit */
        size_t ilen;
        uint8_t *img = memdev_crash_image(dev, &ilen);
        cow_store *st2;
        ck_assert_int_eq(cow_store_open_dev("crash", memdev_from_image(img, ilen, NULL), 0, 0,
                                            &st2),
                         COW_OK);
        cow_file *f2;
        ck_assert_int_eq(cow_file_open(st2, "db", 0, &f2), COW_OK);
        fm_compare(f2, &committed);
        cow_file_close(f2);
        ck_assert_int_eq(cow_store_close(st2), COW_OK);
        if (round % 10 == 0)
            test_fsck_image(img, ilen);
        free(img);
        fm_compare(f, &live);
    }
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    free(live.data);
    free(committed.data);
}
END_TEST

START_TEST(txn_torn_superblock_falls_back)
{
    struct memdev_ctl *ctl;
    struct cow_dev *dev = memdev_new(&ctl);
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "first", 5, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t g = cow_store_generation(st);
    ck_assert_int_eq(cow_file_write(f, "second", 6, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen);
    /* tear the newest superblock copy: open must use the older one */
    img[((g + 1) % 2) * COW_BLOCK_SIZE + 100] ^= 0xff;
    cow_store *st2;
    ck_assert_int_eq(cow_store_open_dev("torn", memdev_from_image(img, ilen, NULL),
                                        COW_OPEN_READONLY, 0, &st2),
                     COW_OK);
    ck_assert_uint_eq(cow_store_generation(st2), g);
    cow_file *f2;
    char buf[8] = {0};
    size_t n;
    ck_assert_int_eq(cow_file_open(st2, "db", 0, &f2), COW_OK);
    ck_assert_int_eq(cow_file_read(f2, buf, 5, 0, &n), COW_OK);
    ck_assert_str_eq(buf, "first");
    cow_file_close(f2);
    cow_store_close(st2);
    test_fsck_image(img, ilen); /* a torn newest copy is legal */
    /* both copies torn: corrupt, not "not a container" */
    img[(g % 2) * COW_BLOCK_SIZE + 100] ^= 0xff;
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
    struct cow_dev *dev = memdev_new(&ctl);
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "committed", 9, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "lost-data", 9, 0), COW_OK);
    /* a failed writeback keeps the data buffered: nothing is lost */
    ctl->fail_writes_after = 1;
    ck_assert_int_eq(cow_store_writeback(st), COW_EIO_WRITE);
    ctl->fail_writes_after = 0;
    char wb[16] = {0};
    size_t wn;
    ck_assert_int_eq(cow_file_read(f, wb, 9, 0, &wn), COW_OK);
    ck_assert_str_eq(wb, "lost-data");
    ck_assert_int_eq(cow_store_writeback(st), COW_OK);
    ctl->fail_writes_after = 1; /* the commit's tree block write fails */
    ck_assert_int_eq(cow_store_commit(st), COW_EIO_WRITE);
    ctl->fail_writes_after = 0;
    /* that commit failed alone: the write stays, and the store still works */
    char buf[16] = {0};
    size_t n;
    ck_assert_int_eq(cow_file_read(f, buf, 9, 0, &n), COW_OK);
    ck_assert_str_eq(buf, "lost-data");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "next-txn!", 9, 0), COW_OK);
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
    struct cow_dev *dev = memdev_new(&ctl);
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "old state", 9, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t g = cow_store_generation(st);
    size_t alen, blen;
    uint8_t *a = memdev_crash_image(dev, &alen);
    uint64_t flushes = ctl->nflush;
    ck_assert_int_eq(cow_file_write(f, "new state", 9, 0), COW_OK);
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
        cow_store *s2;
        ck_assert_int_eq(cow_store_open_dev("torn", memdev_from_image(t, blen, NULL),
                                            COW_OPEN_READONLY, 0, &s2),
                         COW_OK);
        ck_assert_uint_eq(cow_store_generation(s2), g);
        cow_file *f2;
        char buf[10] = {0};
        size_t n;
        ck_assert_int_eq(cow_file_open(s2, "db", 0, &f2), COW_OK);
        ck_assert_int_eq(cow_file_read(f2, buf, 9, 0, &n), COW_OK);
        ck_assert_str_eq(buf, "old state");
        cow_file_close(f2);
        cow_store_close(s2);
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
 * flush makes durable.  The store must then open at the previous commit
 * (that superblock is torn), never refuse the container as truncated; fsck
 * agrees.  Appends 64 KiB per commit until the container has grown a few
 * times (every other commit also adds a block group it does not use, so
 * that only the superblock's total_bytes shows the grow), checking the
 * state before each commit's flush completes.
 */
START_TEST(txn_lost_grow_falls_back)
{
    struct cow_dev *dev;
    cow_store *st = memdev_store(&dev, NULL);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    uint8_t *data = malloc(64 << 10);
    uint64_t rs = 7;
    int grows = 0;
    for (int i = 0; i < 200 && grows < 8; i++) {
        test_fill(&rs, data, (64 << 10));
        ck_assert_int_eq(cow_file_write(f, data, 64 << 10, (uint64_t)i << 16), COW_OK);
        uint64_t g = cow_store_generation(st);
        /* the commit, with its flush held back: the memdev keeps every
         * write since the last flush pending */
        ck_assert_int_eq(pc_writeback_all(st), COW_OK);
        cow_mutex_lock(&st->lock);
        /* every other commit also grows for headroom it does not use (as
         * alloc_reserve does): no block it lists lies in the new space */
        int crc = i % 2 ? alloc_add_group(st, COW_BG_METADATA) : COW_OK;
        if (crc == COW_OK)
            crc = txn_commit(st, 0);
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
            ck_assert_uint_le(cow_store_generation(s2), g);
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
    struct cow_dev *dev = memdev_new(&ctl);
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
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

static void fm_copy(struct fmodel *dst, const struct fmodel *src)
{
    free(dst->data);
    dst->data = malloc(src->size ? src->size : 1);
    if (src->size)
        memcpy(dst->data, src->data, src->size);
    dst->size = src->size;
}

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
    cow_store *st = memdev_store(&dev, &ctl);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    struct fmodel m = {0};
    uint8_t buf[9000];
    memset(buf, '0', sizeof buf);
    ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, 0), COW_OK); /* a data group */
    fm_write(&m, buf, sizeof buf, 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    for (int i = 0; i < 5; i++) {
        memset(buf, 'a' + i, sizeof buf);
        ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, (size_t)i * 5000), COW_OK);
        fm_write(&m, buf, sizeof buf, (size_t)i * 5000);
        ck_assert_int_eq(cow_file_sync(f), COW_OK);
    }
    struct cow_stats s;
    cow_store_stats(st, &s);
    ck_assert_uint_eq(s.log_syncs, 5);
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

Suite *txn_suite(void)
{
    Suite *s = suite_create("txn");
    TCase *tc = tcase_create("txn");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, txn_crash_gives_last_commit);
    tcase_add_test(tc, txn_torn_superblock_falls_back);
    tcase_add_test(tc, txn_failed_write_keeps_transaction);
    tcase_add_test(tc, txn_torn_one_flush_commit);
    tcase_add_test(tc, txn_persist_crashes);
    tcase_add_test(tc, txn_lost_grow_falls_back);
    tcase_add_test(tc, log_sync_is_one_flush_and_survives_power_loss);
    tcase_add_test(tc, log_abort_keeps_synced_data);
    suite_add_tcase(s, tc);
    return s;
}

/* ---- files ---- */

START_TEST(file_model)
{
    uint64_t rs = test_seed() ^ 0xf11e;
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/f.cow", dir);
    cow_store *st;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    const char *names[3] = {"db", "db-journal", "db-wal"};
    struct fmodel m[3] = {{0}};
    cow_file *f[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cow_file_open(st, names[i], 1, &f[i]), COW_OK);
    uint8_t *buf = malloc(1 << 20);
    for (int op = 0; op < 3000; op++) {
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
            ck_assert_int_eq(cow_store_open(path, 0, &st), COW_OK);
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
    test_fsck_clean(path);
    free(buf);
    test_rmdir(dir);
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
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/n.cow", dir);
    cow_store *st;
    cow_file *f, *g;
    int ex, n = 0;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
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
    test_fsck_clean(path); /* an orphan item names the open, unlinked file */
    cow_file_close(f);
    ck_assert_int_eq(cow_list(st, count_cb, &n), COW_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(cow_unlink(st, "db-old"), COW_ENOENT);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    test_fsck_clean(path);
    test_rmdir(dir);
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
    ck_assert_int_eq(truncate(path, 1 << 20), 0);
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

/* The EXTENT_DATA item of F covering file offset OFF (test access). */
static int item_at(cow_file *f, uint64_t off, uint64_t *disk, uint64_t *ext_off, int *type)
{
    cow_store *st = cow_file_store(f);
    struct cow_key k = {f->inode->ino, COW_EXTENT_DATA, off}, got;
    uint8_t d[FE_ITEM_SIZE];
    size_t size;
    cow_mutex_lock(&st->lock);
    int rc = bt_seek_le(st, &st->fs_tree, &k, &got, d, sizeof d, &size);
    cow_mutex_unlock(&st->lock);
    if (rc)
        return rc;
    if (got.objectid != k.objectid || got.type != COW_EXTENT_DATA ||
        got.offset + get64(d + FE_NUM_BYTES) <= off)
        return COW_ENOENT;
    *disk = get64(d + FE_DISK_BYTENR);
    *ext_off = get64(d + FE_EXTENT_OFFSET) + (off - got.offset);
    *type = d[FE_TYPE];
    return COW_OK;
}

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
    cow_store *st = memdev_store(&dev, &ctl);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
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
    ck_assert_int_eq(item_at(f, 40960, &pdisk, &pofs, &type), COW_OK);
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
    ck_assert_int_eq(item_at(f, 40960, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_REG);
    ck_assert_uint_eq(disk, pdisk); /* the same extent, the same block */
    ck_assert_uint_eq(ofs, pofs);
    ck_assert_int_eq(item_at(f, 36864, &disk, &ofs, &type), COW_OK);
    ck_assert_int_eq(type, COW_FE_PREALLOC);
    ck_assert_int_eq(item_at(f, 45056, &disk, &ofs, &type), COW_OK);
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
    ck_assert_int_eq(item_at(f, 40960, &disk, &ofs, &type), COW_OK);
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
    cow_store *st = memdev_store(&dev, NULL);
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
    fsck_memdev(st, dev);

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
    fsck_memdev(st, dev);

    /* all of it survives a reopen */
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t ilen;
    uint8_t *img = memdev_crash_image(dev, &ilen);
    cow_store *s2;
    ck_assert_int_eq(cow_store_open_dev("again", memdev_from_image(img, ilen, NULL), 0, 0, &s2),
                     COW_OK);
    expect_subvol_file(s2, "s1", "db", &a);
    expect_subvol_file(s2, "b1", "db", &br);
    expect_subvol_file(s2, NULL, "db", &live);
    cow_store_close(s2);
    free(img);

    /* deleting frees what only it held; the others stay whole */
    ck_assert_int_eq(cow_subvol_delete(st, "s1"), COW_OK);
    ck_assert_int_eq(cow_subvol_delete(st, "s1"), COW_ENOENT);
    fsck_memdev(st, dev);
    expect_subvol_file(st, "b1", "db", &br);
    expect_subvol_file(st, NULL, "db", &live);
    ck_assert_int_eq(cow_subvol_delete(st, "b1"), COW_OK);
    fsck_memdev(st, dev);
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
 * half-made container (test/crash.c checks the crash states; this checks
 * the files): a leftover temporary file is reused, one locked by another
 * creator is COW_EBUSY and nothing appears, an empty PATH is replaced, and
 * a read-only or non-creating open makes nothing.
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
    for (int i = 0; i < 1000; i++) { /* until the child has its lock */
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
    /* a second process gets COW_EBUSY on the published file */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        cow_store *st2;
        _exit(cow_store_open(path, COW_OPEN_CREATE, &st2) == COW_EBUSY ? 0 : 1);
    }
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
    struct memdev_ctl *ctl;
    struct cow_dev *dev = memdev_new(&ctl);
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db-wal", 1, &f), COW_OK);
    struct fmodel m = {0};
    uint8_t buf[9000];
    for (int op = 0; op < 3000; op++) {
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
    fsck_memdev(st, dev);
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
    cow_store *st = memdev_store(&dev, NULL);
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
    fsck_memdev(st, dev);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* xFetch: a pinned page stays valid through writeback, truncate and
 * rewrites (ASan sees any use after free); a write shows through it; past
 * the end nothing is fetched. */
START_TEST(fetch_pins_pages)
{
    struct cow_dev *dev = memdev_new(NULL);
    cow_store *st;
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
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
    fsck_memdev(st, dev);
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
    cow_store *st = memdev_store(&dev, NULL);
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
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
    cow_store *st = memdev_store(&dev, NULL);
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
    fsck_memdev(st, dev);
    /* new preallocation, after the branch: in place again */
    ck_assert_int_eq(cow_file_preallocate(f, 4 << 20), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_store_stats(st, &s0);
    ck_assert_int_eq(cow_file_write(f, a, sizeof a, 2 << 20), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.written_in_place - s0.written_in_place, sizeof a);
    fsck_memdev(st, dev);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

Suite *file_suite(void)
{
    Suite *s = suite_create("file");
    TCase *tc = tcase_create("file");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, file_model);
    tcase_add_test(tc, file_appends_model);
    tcase_add_test(tc, file_names);
    tcase_add_test(tc, file_checksum_mismatch_is_error);
    tcase_add_test(tc, file_bad_containers);
    tcase_add_test(tc, delalloc_full_disk_fails_the_write_not_writeback);
    tcase_add_test(tc, delalloc_full_disk_metadata);
    tcase_add_test(tc, delalloc_dirty_limit_bounds_memory);
    tcase_add_test(tc, fetch_pins_pages);
    suite_add_tcase(s, tc);
    tc = tcase_create("prealloc");
    tcase_add_test(tc, prealloc_reads_zeros_writes_in_place);
    suite_add_tcase(s, tc);
    tc = tcase_create("subvol");
    tcase_set_timeout(tc, 300); /* crash states of every operation */
    tcase_add_test(tc, subvol_snapshot_branch_delete);
    tcase_add_test(tc, subvol_restore_and_create_ex);
    tcase_add_test(tc, subvol_ops_crash_atomic);
    tcase_add_test(tc, subvol_prealloc_not_shared_in_place);
    suite_add_tcase(s, tc);
    tc = tcase_create("create");
    tcase_add_test(tc, file_create_is_atomic);
    suite_add_tcase(s, tc);
    return s;
}
