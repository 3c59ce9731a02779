/*
 * check_util.c - the store's small helpers on their own: the message of
 * COW_CORRUPT (where the corruption was detected), the hash table (hmap.h),
 * the growing of arrays (vec.h) and CRC-32C's fast path (crc32c.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "store_int.h"
#include "testutil.h"
#include "vec.h"

/* COW_CORRUPT's message names the source file under store/ and the line,
 * whatever directory the compiler was given the file from. */
START_TEST(corrupt_names_file_and_line)
{
    ck_assert_int_eq(cow_corrupt_at("store/log.c", 633, "bad %s", "record"), COW_ECORRUPT);
    ck_assert_str_eq(cow_store_last_error(NULL),
                     "corrupt container: bad record (detected at store/log.c:633)");
    ck_assert_int_eq(cow_corrupt_at("/src/cowvfs/store/cache.c", 7, "x"), COW_ECORRUPT);
    ck_assert_str_eq(cow_store_last_error(NULL),
                     "corrupt container: x (detected at store/cache.c:7)");
    ck_assert_int_eq(cow_corrupt_at("txn.c", 1, "y"), COW_ECORRUPT);
    ck_assert_str_eq(cow_store_last_error(NULL), "corrupt container: y (detected at store/txn.c:1)");
}
END_TEST

/* A real one: a tree block address out of range, reported by cache.c. */
START_TEST(corrupt_from_the_store)
{
    cow_store *st;
    struct cow_dev *dev = memdev_new(NULL);
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_mutex_lock(&st->lock);
    struct eb *e;
    ck_assert_int_eq(cache_read(st, 1, 0, -1, &e), COW_ECORRUPT);
    cow_mutex_unlock(&st->lock);
    const char *msg = cow_store_last_error(NULL);
    ck_assert_msg(strstr(msg, "tree block address 1 out of range (detected at store/cache.c:") &&
                      msg[strlen(msg) - 1] == ')',
                  "message: %s", msg);
    cow_store_close(st);
}
END_TEST

struct item {
    uint64_t v;
    struct hm_node node;
};

/* Inserts, finds, removes and walks N entries against an array of what
 * should be there, with keys that collide in the low bits (multiples of
 * the block size, as the cache's are) and in the high bits. */
START_TEST(hmap_against_array)
{
    enum { N = 5000 };
    struct hmap h;
    ck_assert_int_eq(hm_init(&h, 0), COW_OK);
    ck_assert_ptr_null(hm_find(&h, 0));
    ck_assert_ptr_null(hm_first(&h));
    struct item *it = calloc(N, sizeof *it);
    uint64_t seed = test_seed(), r = seed;
    for (size_t i = 0; i < N; i++) {
        uint64_t k = i % 3 == 0 ? i * COW_BLOCK_SIZE : i % 3 == 1 ? i << 40 : test_rand(&r);
        if (hm_find(&h, k)) /* a random key met twice */
            k = i * COW_BLOCK_SIZE + 1;
        it[i].v = i;
        ck_assert_int_eq(hm_insert(&h, &it[i].node, k), COW_OK);
        ck_assert_uint_eq(it[i].node.key, k);
    }
    ck_assert_uint_eq(h.count, N);
    ck_assert_uint_ge(h.nbuckets, N);
    /* remove every third while walking */
    struct hm_node *n, *next;
    size_t seen = 0;
    hm_for_each_safe(&h, n, next) {
        struct item *x = hm_entry(n, struct item, node);
        seen++;
        if (x->v % 3 == 2) {
            hm_remove(&h, n);
            x->v = UINT64_MAX;
        }
    }
    ck_assert_uint_eq(seen, N);
    for (size_t i = 0; i < N; i++) {
        struct hm_node *f = hm_find(&h, it[i].node.key);
        if (it[i].v == UINT64_MAX)
            ck_assert_ptr_null(f);
        else
            ck_assert_ptr_eq(f, &it[i].node);
    }
    seen = 0;
    hm_for_each(&h, n) {
        ck_assert_uint_ne(hm_entry(n, struct item, node)->v, UINT64_MAX);
        seen++;
    }
    ck_assert_uint_eq(seen, h.count);
    ck_assert_uint_eq(seen, N - N / 3);
    hm_destroy(&h);
    ck_assert_uint_eq(h.count, 0);
    ck_assert_ptr_null(hm_find(&h, 0));
    free(it);
}
END_TEST

/* A zeroed table works as an empty one; hm_clear empties a table. */
START_TEST(hmap_zeroed)
{
    struct hmap h;
    memset(&h, 0, sizeof h);
    struct hm_node a;
    ck_assert_ptr_null(hm_find(&h, 7));
    ck_assert_int_eq(hm_insert(&h, &a, 7), COW_OK);
    ck_assert_ptr_eq(hm_find(&h, 7), &a);
    ck_assert_ptr_eq(hm_first(&h), &a);
    ck_assert_ptr_null(hm_next(&h, &a));
    hm_remove(&h, &a);
    ck_assert_ptr_null(hm_first(&h));
    struct hm_node b;
    ck_assert_int_eq(hm_insert(&h, &b, 9), COW_OK);
    size_t nb = h.nbuckets;
    hm_clear(&h); /* empty, buckets kept */
    ck_assert_uint_eq(h.count, 0);
    ck_assert_uint_eq(h.nbuckets, nb);
    ck_assert_ptr_null(hm_find(&h, 9));
    ck_assert_ptr_null(hm_first(&h));
    hm_destroy(&h);
}
END_TEST

/* vec_reserve keeps the elements, only grows, and fails without change
 * when the size cannot be represented. */
START_TEST(vec_grows_and_keeps)
{
    uint32_t *v = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t i = 0; i < 10000; i++) {
        ck_assert_int_eq(vec_reserve(v, cap, n + 1), COW_OK);
        ck_assert_uint_ge(cap, n + 1);
        v[n++] = i * 7;
    }
    size_t c0 = cap;
    ck_assert_int_eq(vec_reserve(v, cap, 5), COW_OK);
    ck_assert_uint_eq(cap, c0);
    for (uint32_t i = 0; i < 10000; i++)
        ck_assert_uint_eq(v[i], i * 7);
    uint32_t *keep = v;
    ck_assert_int_eq(vec_reserve(v, cap, SIZE_MAX / 2), COW_ENOMEM);
    ck_assert_ptr_eq(v, keep);
    ck_assert_uint_eq(cap, c0);
    free(v);
}
END_TEST

/* crc32c (the crc32 instruction where the CPU has it, three streams side
 * by side on long buffers) gives the table's result on random data of
 * every short length, the lengths around where the streams change, and
 * random ones; from random starting CRCs and unaligned starts; whole and
 * in two pieces. */
START_TEST(crc32c_matches_table)
{
    uint64_t rs = test_seed() ^ 0xc32c;
    ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(crc32c_table(0, "123456789", 9), 0xe3069283u);
    enum { CAP = 3 * 3 * 1360 + 3 * 256 + 64 };
    uint8_t *buf = malloc(CAP + 16);
    ck_assert_ptr_nonnull(buf);
    test_fill(&rs, buf, CAP + 16);
    static const size_t edge[] = {3 * 256,  3 * 1360, 2 * 3 * 1360, 3 * 1360 + 3 * 256,
                                  4096,     8192,     3 * 3 * 1360, CAP};
    for (int i = 0; i < 3000; i++) {
        size_t len;
        if (i < 200)
            len = (size_t)i;
        else if (i < 200 + 8 * 17)
            len = edge[(i - 200) / 17] + (size_t)((i - 200) % 17) - 8;
        else
            len = (size_t)(test_rand(&rs) % (CAP + 1));
        if (len > CAP)
            len = CAP;
        const uint8_t *p = buf + test_rand(&rs) % 16;
        uint32_t init = i % 3 ? (uint32_t)test_rand(&rs) : 0;
        uint32_t want = crc32c_table(init, p, len);
        ck_assert_msg(crc32c(init, p, len) == want, "length %zu at offset %d", len,
                      (int)(p - buf));
        size_t cut = len ? (size_t)(test_rand(&rs) % len) : 0;
        ck_assert_msg(crc32c(crc32c(init, p, cut), p + cut, len - cut) == want,
                      "length %zu cut at %zu", len, cut);
    }
    free(buf);
}
END_TEST

Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    test_case(s, "corrupt", 0, corrupt_names_file_and_line, corrupt_from_the_store, NULL);
    test_case(s, "hmap", 0, hmap_against_array, hmap_zeroed, NULL);
    test_case(s, "vec", 0, vec_grows_and_keeps, NULL);
    test_case(s, "crc32c", 0, crc32c_matches_table, NULL);
    return s;
}
