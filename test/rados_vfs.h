/*
 * rados_vfs.h - what test/check_rados_vfs.c and test/check_rados_store.c
 * give build/check_rados's runner (test/check_rados.c): the VFS suites'
 * and the store suites' tests on the RADOS target, and fsck of a
 * container where it lies.
 */
#ifndef COW_RADOS_VFS_H
#define COW_RADOS_VFS_H

#include <check.h>

/* Adds to S the test cases vfs_io, vfs_journal, vfs_snap and vfs_files:
 * the tests of check_vfs_io.c, check_vfs_journal.c, check_vfs_snap.c and
 * check_vfs_files.c that hold on any device (their *_any_target()),
 * through cow-rados on containers of pool $COW_RADOS_POOL. */
void rados_vfs_cases(Suite *s);

/* Adds to S the test cases store_btree, store_alloc, store_txn,
 * store_file, store_usage, store_nocow and store_reloc: the tests of the
 * store suites that hold on any device (their *_any_target(), testutil.h)
 * on RADOS devices in pool $COW_RADOS_POOL (check_rados_store.c). */
void rados_store_cases(Suite *s);

/* Fails the test (Check) unless container SPEC (POOL/NAME), which no
 * connection has open, is clean: SPEC read where it lies, through the
 * RADOS device under the writer's lock, as cowctl --rados fsck reads it
 * (tools/ctl_rados.h), fsck with data checksums. */
void rados_fsck_clean(const char *spec);

#endif
