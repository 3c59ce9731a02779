/*
 * check_util.c - the store's small helpers on their own: the message of
 * COW_CORRUPT (where the corruption was detected).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"
#include "testutil.h"

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

Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("corrupt");
    tcase_add_test(tc, corrupt_names_file_and_line);
    tcase_add_test(tc, corrupt_from_the_store);
    suite_add_tcase(s, tc);
    return s;
}
