/*
 * check_main.c - runs every Check suite.  Each suite prints its seed so a
 * failure can be replayed (COW_TEST_SEED=n).
 */
#include <check.h>
#include <stdlib.h>

#include "testutil.h"

int main(void)
{
    SRunner *sr = srunner_create(btree_suite());
    srunner_add_suite(sr, alloc_suite());
    srunner_add_suite(sr, txn_suite());
    srunner_add_suite(sr, file_suite());
    srunner_add_suite(sr, vfs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
