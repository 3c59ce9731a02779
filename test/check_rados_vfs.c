/*
 * check_rados_vfs.c - the VFS suites' tests that hold on any device
 * (vfsutil.h struct vfs_target) run through cow-rados on the test cluster
 * of build/check_rados: the RADOS target, and its test cases vfs_io,
 * vfs_journal, vfs_snap and vfs_files, the same test bodies as
 * build/check_all's (check_vfs_io.c, check_vfs_journal.c, check_vfs_snap.c,
 * check_vfs_files.c, each's *_any_target(), which says which and why).
 * About 70 s on the one-OSD cluster of test/rados/run.sh: vfs_journal
 * about 48 (eleven crashes, each waiting about 3 s for the dead writer's
 * lock), vfs_snap 20, vfs_io 4, vfs_files 1.  Linked into build/check_rados
 * only.
 *
 * A test's containers are POOL/vfs-PID-NAME ($COW_RADOS_POOL; the test's
 * process id, as Check runs each test in a process of its own), checked by
 * fsck where they lie (as cowctl --rados fsck reads them) and removed at
 * the test's end (tdir_remove).  The writer's lock lasts 3 s here
 * (bdev_rados_set_lock_seconds), so that after a child holding a
 * container is killed (the crash tests of check_vfs_journal.c) the test
 * waits about that long for the lock to expire, then takes it over
 * (blocklisting the dead client) before it opens the container again.
 * The long tests run RADOS_VFS_SCALE percent of their iterations.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../tools/ctl_rados.h"
#include "bdev_rados.h"
#include "cowvfs.h"
#include "rados_vfs.h"
#include "store.h"
#include "testutil.h"
#include "vfsutil.h"

/* Percent of the cow iteration counts (test_wal_threads' writes). */
#define RADOS_VFS_SCALE 25
/* The writer's lock, in seconds (the least bdev_rados accepts). */
#define RADOS_VFS_LOCK_SECONDS 3
/* The longest after_kill waits for a dead writer's lock, in seconds. */
#define RADOS_VFS_TAKEOVER_MAX 60

void rados_fsck_clean(const char *spec)
{
    struct ctl_rados_src rs;
    int rc = ctl_rados_src_open(spec, &rs);
    ck_assert_msg(rc == COW_OK, "fsck of %s: %s (%s)", spec, cow_strerror(rc),
                  cow_store_last_error(NULL));
    test_fsck_src_clean(&rs.src);
    ctl_rados_src_close(&rs);
}

/* POOL/vfs-PID-NAME, malloc()ed; DIR (the test's local directory) is not
 * part of it. */
static char *rados_path(const char *dir, const char *name)
{
    const char *pool = getenv("COW_RADOS_POOL");
    char *p = NULL;
    (void)dir;
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_ge(asprintf(&p, "%s/vfs-%d-%s", pool, (int)getpid(), name), 0);
    return p;
}

static int rados_exists(const char *spec)
{
    int rc = ctl_rados_exists(spec);
    ck_assert_msg(rc >= 0, "does %s exist: %s (%s)", spec, cow_strerror(rc),
                  cow_store_last_error(NULL));
    return rc;
}

static void rados_remove(const char *spec)
{
    int rc = ctl_rados_remove(spec);
    ck_assert_msg(rc == COW_OK, "remove %s: %s (%s)", spec, cow_strerror(rc),
                  cow_store_last_error(NULL));
}

/* Waits for the killed writer's lock to expire: a writable open of the
 * device is COW_EBUSY until then, and then takes it over (blocklisting the
 * dead client, bdev_rados.h THE LOCK); closing it releases it cleanly. */
static void rados_after_kill(const char *spec)
{
    struct cow_dev *d = NULL;
    int created, rc, tries = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while ((rc = bdev_rados_open(spec, NULL, NULL, 0, &d, &created)) == COW_EBUSY &&
           tries++ < RADOS_VFS_TAKEOVER_MAX * 10)
        usleep(100000);
    ck_assert_msg(rc == COW_OK, "taking %s over: %s (%s)", spec, cow_strerror(rc),
                  cow_store_last_error(NULL));
    d->close(d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "%s: taken over after %.1f s\n", spec,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

static const struct vfs_target rados_target = {
    .vfs = COWVFS_RADOS_NAME,
    .local = 0,
    .path = rados_path,
    .store_open = ctl_rados_open_store,
    .fsck_clean = rados_fsck_clean,
    .exists = rados_exists,
    .remove = rados_remove,
    .after_kill = rados_after_kill,
    .scale = RADOS_VFS_SCALE,
};

/* Checked fixture: the cow VFS (the suites' own fixture) and cow-rados
 * registered, the RADOS target current, the writer's lock short. */
static void rados_vfs_setup(void)
{
    vfs_setup();
    ck_assert_int_eq(cowvfs_rados_register(), SQLITE_OK);
    ck_assert_int_eq(bdev_rados_set_lock_seconds(RADOS_VFS_LOCK_SECONDS), COW_OK);
    vt = &rados_target;
}

static TCase *rados_vfs_tcase(Suite *s, const char *name, int timeout)
{
    TCase *tc = test_case(s, name, timeout, NULL);
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_checked_fixture(tc, rados_vfs_setup, NULL);
    return tc;
}

void rados_vfs_cases(Suite *s)
{
    vfs_io_any_target(rados_vfs_tcase(s, "vfs_io", 120));
    vfs_journal_any_target(rados_vfs_tcase(s, "vfs_journal", 120));
    vfs_snap_any_target(rados_vfs_tcase(s, "vfs_snap", 120));
    vfs_files_any_target(rados_vfs_tcase(s, "vfs_files", 120));
}
