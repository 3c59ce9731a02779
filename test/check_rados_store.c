/*
 * check_rados_store.c - the store suites' tests that hold on any device
 * (testutil.h struct store_target) on the RADOS device (store/bdev_rados.c)
 * of build/check_rados's test cluster: the RADOS target, and its test
 * cases store_btree, store_alloc, store_txn, store_file, store_usage,
 * store_nocow and store_reloc, the same test bodies as build/check_all's
 * (check_btree.c, check_alloc.c, check_txn.c, check_file.c, check_usage.c,
 * check_nocow.c, check_reloc.c, each's *_any_target(), which says which
 * and why).  About 40 s on the one-OSD cluster of test/rados/run.sh:
 * store_usage 13 (usage_deep_tree 8), store_file 9, store_reloc 8, the
 * others 1 or 2 each.  Linked into build/check_rados only.
 *
 * A test's devices are POOL/store-PID-N ($COW_RADOS_POOL; the test's
 * process id, as Check runs each test in a process of its own; N counts
 * the test's devices), removed at the test's end (a checked teardown);
 * its containers by name are POOL/store-PID-NAME, which the test removes.
 * fsck reads a device where it lies (as cowctl --rados fsck does,
 * tools/ctl_rados.h), through the device the store writes through, under
 * the store's lock, so that nothing commits meanwhile.  A crash image's
 * place (open_beside) is a read-only open of the same container: a reader
 * on another client, which sees the last commit.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tools/ctl_rados.h"
#include "bdev_rados.h"
#include "rados_vfs.h"
#include "store.h"
#include "store_int.h"
#include "testutil.h"

/* Percent of memdev's iteration counts (stt_scaled: the model tests of
 * the btree and of files, whose time goes mostly to the store's own work
 * under ASan, and on RADOS to each reopen and sync). */
#define RADOS_STORE_SCALE 25

/* The devices dev_new made in this test (newest last) and their names. */
#define MAX_DEVS 64
static struct {
    struct cow_dev *dev;
    char *spec;
} devs[MAX_DEVS];
static int ndevs;

static const char *pool(void)
{
    const char *p = getenv("COW_RADOS_POOL");
    ck_assert_ptr_nonnull(p);
    return p;
}

static struct cow_dev *rt_dev_new(const char **name)
{
    struct cow_dev *d;
    int created = 0;
    char *spec = NULL;
    ck_assert_int_lt(ndevs, MAX_DEVS);
    ck_assert_int_ge(asprintf(&spec, "%s/store-%d-%d", pool(), (int)getpid(), ndevs), 0);
    int rc = bdev_rados_open(spec, NULL, NULL, BDEV_CREATE, &d, &created);
    ck_assert_msg(rc == COW_OK, "make %s: %s (%s)", spec, cow_strerror(rc),
                  cow_store_last_error(NULL));
    ck_assert_int_eq(created, 1);
    devs[ndevs].dev = d;
    devs[ndevs].spec = spec;
    ndevs++;
    *name = spec;
    return d;
}

/* The name of DEV, a device of rt_dev_new (the newest with that address:
 * a closed one's may be reused). */
static const char *spec_of(struct cow_dev *dev)
{
    for (int i = ndevs - 1; i >= 0; i--)
        if (devs[i].dev == dev)
            return devs[i].spec;
    ck_abort_msg("not a device of this test's target");
    return NULL;
}

/* fsck of container SPEC through DEV, its open device, under ST's lock
 * (ST NULL: no store has it open). */
static void fsck_through(cow_store *st, struct cow_dev *dev, const char *spec)
{
    struct ctl_rados_src rs;
    if (st)
        cow_mutex_lock(&st->lock);
    int rc = ctl_rados_src_on(dev, spec, &rs);
    ck_assert_msg(rc == COW_OK, "fsck of %s: %s", spec, cow_strerror(rc));
    test_fsck_src_clean(&rs.src);
    ck_assert_msg(rs.nfailed == 0, "fsck of %s: %llu reads failed: %s", spec,
                  (unsigned long long)rs.nfailed, rs.first_error);
    if (st)
        cow_mutex_unlock(&st->lock);
}

static void rt_fsck_dev(cow_store *st, struct cow_dev *dev)
{
    fsck_through(st, dev, spec_of(dev));
}

static int rt_open_beside(struct cow_dev *dev, int flags, cow_store **out)
{
    const char *spec = spec_of(dev);
    struct cow_dev *d;
    int created;
    int rc = bdev_rados_open(spec, NULL, NULL, BDEV_READONLY, &d, &created);
    if (rc)
        return rc;
    return cow_store_open_dev(spec, d, flags | COW_OPEN_READONLY, 0, out);
}

static int rt_reopen(struct cow_dev *dev, int flags, cow_store **out)
{
    struct cow_dev *d = fwd_dev_new(dev, NULL, NULL);
    ck_assert_ptr_nonnull(d);
    return cow_store_open_dev(spec_of(dev), d, flags, 0, out);
}

static char *rt_path(const char *name)
{
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/store-%d-%s", pool(), (int)getpid(), name), 0);
    return p;
}

static int rt_open(const char *path, int flags, cow_store **out)
{
    struct cow_dev *d;
    int created = 0;
    int bflags = (flags & COW_OPEN_CREATE ? BDEV_CREATE : 0) |
                 (flags & COW_OPEN_READONLY ? BDEV_READONLY : 0);
    *out = NULL;
    int rc = bdev_rados_open(path, NULL, NULL, bflags, &d, &created);
    if (rc)
        return rc;
    return cow_store_open_dev(path, d, flags & ~COW_OPEN_CREATE, created, out);
}

static void rt_fsck_open(cow_store *st, const char *path)
{
    fsck_through(st, st->dev, path);
}

static void rt_remove(char *path)
{
    int rc = bdev_rados_remove(path, NULL, NULL);
    ck_assert_msg(rc == COW_OK, "remove %s: %s (%s)", path, cow_strerror(rc),
                  cow_store_last_error(NULL));
    free(path);
}

static const struct store_target rados_target = {
    .name = "rados",
    .dev_new = rt_dev_new,
    .fsck_dev = rt_fsck_dev,
    .open_beside = rt_open_beside,
    .reopen = rt_reopen,
    .path = rt_path,
    .open = rt_open,
    .fsck_clean = rados_fsck_clean,
    .fsck_open = rt_fsck_open,
    .remove = rt_remove,
    .scale = RADOS_STORE_SCALE,
};

/* Checked fixture: the RADOS target current. */
static void rados_store_setup(void)
{
    stt = &rados_target;
}

/* Checked teardown: the test's devices removed (each closed by then). */
static void rados_store_teardown(void)
{
    for (int i = 0; i < ndevs; i++) {
        int rc = bdev_rados_remove(devs[i].spec, NULL, NULL);
        ck_assert_msg(rc == COW_OK, "remove %s: %s (%s)", devs[i].spec, cow_strerror(rc),
                      cow_store_last_error(NULL));
        free(devs[i].spec);
    }
    ndevs = 0;
}

static TCase *rados_store_tcase(Suite *s, const char *name, int timeout)
{
    TCase *tc = test_case(s, name, timeout, NULL);
    tcase_add_checked_fixture(tc, rados_store_setup, rados_store_teardown);
    return tc;
}

void rados_store_cases(Suite *s)
{
    btree_any_target(rados_store_tcase(s, "store_btree", 120));
    alloc_any_target(rados_store_tcase(s, "store_alloc", 120));
    txn_any_target(rados_store_tcase(s, "store_txn", 120));
    TCase *tc = rados_store_tcase(s, "store_file", 120);
    file_any_target(tc);
    subvol_any_target(tc);
    usage_any_target(rados_store_tcase(s, "store_usage", 120));
    nocow_any_target(rados_store_tcase(s, "store_nocow", 120));
    reloc_any_target(rados_store_tcase(s, "store_reloc", 120));
}
