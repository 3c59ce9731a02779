/*
 * check_model.c - the "model" suite: the model test of snapshots and
 * branches (model_run.c, whose top comment says what it does) through the
 * cow VFS, on a container file in a fresh directory, NOPS operations
 * (COW_MODEL_OPS=N: N).  check_rados.c runs the same test through
 * cow-rados.
 */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cowvfs.h"
#include "testutil.h"
#include "model.h"

static void vfs_setup(void)
{
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
}

START_TEST(test_model)
{
    char *dir = test_base_dir();
    char *path = NULL;
    struct model_target t = {.vfs = "cow", .fsck_clean = test_fsck_clean, .nops = NOPS};

    ck_assert_int_ge(asprintf(&path, "%s/model.db", dir), 0);
    t.path = path;
    model_run(&t);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}
END_TEST

Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc;
    tc = test_case(s, "model", 300, test_model, NULL);

    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, vfs_setup, NULL);
    return s;
}
