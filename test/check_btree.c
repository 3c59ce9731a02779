/*
 * check_btree.c - the "btree" suite: the store's B+tree against a model,
 * its leaves checked for the packed layout (seeded: COW_TEST_SEED replays).
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

/* Every leaf under the block at BYTENR (generation GEN, LEVEL) has its
 * item data packed from the block's end in item order and its free space
 * zeroed, as btree.c's in-place changes and its rebuilds both leave it. */
static void check_packed(cow_store *st, uint64_t bytenr, uint64_t gen, int level)
{
    struct eb *e;
    uint8_t b[COW_BLOCK_SIZE]; /* a copy: the recursion reads more blocks */
    ck_assert_int_eq(cache_read(st, bytenr, gen, level, &e), COW_OK);
    memcpy(b, e->data, sizeof b);
    unsigned n = tb_nritems(b);
    if (level > 0) {
        for (unsigned i = 0; i < n; i++)
            check_packed(st, node_child(b, i), node_child_gen(b, i), level - 1);
        return;
    }
    unsigned expect = COW_BLOCK_SIZE;
    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_le(leaf_data_size(b, i), expect);
        expect -= leaf_data_size(b, i);
        ck_assert_msg(leaf_data_off(b, i) == expect, "leaf %llu item %u: data at %u, not %u",
                      (unsigned long long)bytenr, i, leaf_data_off(b, i), expect);
    }
    for (unsigned at = TB_HEADER_SIZE + n * COW_ITEM_SIZE; at < expect; at++)
        ck_assert_msg(b[at] == 0, "leaf %llu: free byte %u is not zero",
                      (unsigned long long)bytenr, at);
}

START_TEST(btree_model)
{
    uint64_t rs = test_seed() ^ 0xb7ee;
    char *path = stt->path("bt.cow");
    cow_store *st;
    ck_assert_int_eq(stt->open(path, COW_OPEN_CREATE, &st), COW_OK);
    struct model m = {calloc(4000, sizeof(struct mitem)), 0};
    ck_assert_ptr_nonnull(m.v);
    int ops = stt_scaled(12000); /* reopened after each quarter */
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
        if (op % 250 == 249)
            check_packed(st, st->fs_tree.bytenr, st->fs_tree.generation, (int)st->fs_tree.level);
        cow_mutex_unlock(&st->lock);
        if (op % 700 == 699) {
            ck_assert_int_eq(cow_store_commit(st), COW_OK);
        }
        if (op % (ops / 4) == ops / 4 - 1) {
            ck_assert_int_eq(cow_store_close(st), COW_OK);
            ck_assert_int_eq(stt->open(path, 0, &st), COW_OK);
            cow_mutex_lock(&st->lock);
            full_compare(st, &m);
            cow_mutex_unlock(&st->lock);
        }
    }
    cow_mutex_lock(&st->lock);
    full_compare(st, &m);
    check_packed(st, st->fs_tree.bytenr, st->fs_tree.generation, (int)st->fs_tree.level);
    ck_assert_uint_gt(max_level, 0); /* the test really built a multi-level tree */
    /* remove the test items so fsck sees only real file-system items */
    while (m.n) {
        ck_assert_int_eq(bt_delete(st, &st->fs_tree, &m.v[m.n - 1].key), COW_OK);
        m.n--;
    }
    cow_mutex_unlock(&st->lock);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    stt->fsck_clean(path);
    free(m.v);
    stt->remove(path);
}
END_TEST

START_TEST(btree_max_items)
{
    /* leaves full of the largest items still split and merge correctly */
    struct cow_dev *dev;
    cow_store *st = target_store_background(&dev, NULL, NULL);
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
    target_fsck(st, dev);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* On any target: both (nothing of a memdev's own). */
void btree_any_target(TCase *tc)
{
    tcase_add_test(tc, btree_model);
    tcase_add_test(tc, btree_max_items);
}

Suite *btree_suite(void)
{
    Suite *s = suite_create("btree");
    test_case(s, "model", 300, btree_model, btree_max_items, NULL);
    return s;
}
