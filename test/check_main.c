/*
 * check_main.c - runs the Check suites.  Each suite prints its seed so a
 * failure can be replayed (COW_TEST_SEED=n).
 *
 * Selecting what runs (Check's own environment variables):
 *   CK_RUN_SUITE=NAME[,NAME...]  only these suites (one name or a list,
 *                                separated by commas or spaces)
 *   CK_RUN_CASE=NAME             only the test case (tcase) NAME of the
 *                                selected suites (Check takes one name;
 *                                empty means every case)
 * An unknown suite name, or a selection that runs no test at all, is an
 * error (exit status 2), so that a typo cannot pass as an empty success.
 *
 * Suites in optin[] run only when named (not by make unit); none today.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "vfsutil.h"

static const struct {
    const char *name; /* as given to suite_create() */
    Suite *(*make)(void);
} suites[] = {
    {"btree", btree_suite}, {"alloc", alloc_suite}, {"txn", txn_suite},
    {"file", file_suite}, {"nocow", nocow_suite},
    {"vfs_io", vfs_io_suite}, {"vfs_journal", vfs_journal_suite},
    {"vfs_files", vfs_files_suite}, {"vfs_snap", vfs_snap_suite},
    {"conc", conc_suite},
    {"race", race_suite},   {"rdpath", rdpath_suite},   {"usage", usage_suite}, {"model", model_suite},
    {"model_found", model_found_suite},
    {"validate", validate_suite},
    {"damage", damage_suite},
    {"abort", abort_suite},
    {"seq", seq_suite},
    {"upgrade", upgrade_suite},
    {"util", util_suite},
    {"lockdep", lockdep_suite},
    {"reloc", reloc_suite},
    {"fsck_remap", fsck_remap_suite},
    {"shared", shared_suite},
    {"xproc", xproc_suite},
    {"inplace", inplace_suite},
    {"xkill", xkill_suite},
    {"vfs_lock", vfs_lock_suite},
    {"mproc", mproc_suite},
};
#define NSUITES (sizeof suites / sizeof suites[0])

/* Suites left out unless CK_RUN_SUITE names them. */
static const char *const optin[] = {NULL};

/* 1 if suite NAME runs only when named. */
static int is_optin(const char *name)
{
    for (size_t i = 0; i < sizeof optin / sizeof optin[0]; i++)
        if (optin[i] && strcmp(name, optin[i]) == 0)
            return 1;
    return 0;
}

static void list_suites(void)
{
    fprintf(stderr, "suites:");
    for (size_t i = 0; i < NSUITES; i++)
        fprintf(stderr, " %s", suites[i].name);
    fprintf(stderr, "\n");
}

/* Marks in WANT the suites named in LIST; 0, or -1 on an unknown name. */
static int parse_suites(const char *list, int *want)
{
    const char *sep = ", \t";
    size_t i;

    for (const char *p = list; *p;) {
        size_t n = strcspn(p, sep);
        if (n) {
            for (i = 0; i < NSUITES; i++)
                if (strlen(suites[i].name) == n && strncmp(p, suites[i].name, n) == 0)
                    break;
            if (i == NSUITES) {
                fprintf(stderr, "CK_RUN_SUITE: no suite named '%.*s'\n", (int)n, p);
                list_suites();
                return -1;
            }
            want[i] = 1;
        }
        p += n;
        p += strspn(p, sep);
    }
    return 0;
}

int main(void)
{
    int want[NSUITES];
    const char *sel = getenv("CK_RUN_SUITE");
    SRunner *sr = NULL;

    /* Check would read an empty CK_RUN_CASE as a case named "" */
    if (getenv("CK_RUN_CASE") && !*getenv("CK_RUN_CASE"))
        unsetenv("CK_RUN_CASE");
    for (size_t i = 0; i < NSUITES; i++)
        want[i] = (sel == NULL || *sel == 0) && !is_optin(suites[i].name);
    if (sel && *sel) {
        if (parse_suites(sel, want) != 0)
            return 2;
        /* Only the chosen suites are in the runner, so Check must not
         * filter again (it compares CK_RUN_SUITE with one name). */
        unsetenv("CK_RUN_SUITE");
    }
    for (size_t i = 0; i < NSUITES; i++) {
        if (!want[i])
            continue;
        if (!sr)
            sr = srunner_create(suites[i].make());
        else
            srunner_add_suite(sr, suites[i].make());
    }
    if (!sr) {
        fprintf(stderr, "CK_RUN_SUITE: no suite selected\n");
        list_suites();
        return 2;
    }
    srunner_run_all(sr, CK_NORMAL);
    int ran = srunner_ntests_run(sr);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (ran == 0) {
        fprintf(stderr, "no test ran (CK_RUN_CASE=%s?)\n",
                getenv("CK_RUN_CASE") ? getenv("CK_RUN_CASE") : "");
        return 2;
    }
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
