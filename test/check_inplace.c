/*
 * check_inplace.c - writes of a nodatacow file in place by a process that
 * does not own the container (store/inplace.c; docs/DESIGN.md "Writes in
 * place without the ownership", invariant 14).  Two processes at the
 * store's level: the test's process owns, a child (test_kid_start) writes
 * a grown nodatacow file "w" as a WAL writer in another process would.
 *
 *   inplace_foreign   the child's write goes in place without taking the
 *                     ownership (the owner reloads nothing), the owner
 *                     reads it, and it survives a reopen; fsck clean;
 *   inplace_snapshot  after a snapshot the owner has not published yet,
 *                     the child's next write must not go in place (the
 *                     barrier's epoch moved): the snapshot keeps its bytes;
 *   inplace_reloc     a balance that starts while the child's write is
 *                     between its mapping and its pwrite waits for it
 *                     (the barrier): the relocated file holds the write;
 *   inplace_killed    the child killed there: the barrier goes on.
 *
 * make race-proof builds the library without a part of the protocol and
 * checks that the matching case fails: COW_BREAK_INPLACE_BARRIER (no
 * barrier: inplace_reloc's write is lost in the old place) and
 * COW_BREAK_INPLACE_STALE (any view may write in place: inplace_snapshot's
 * second write goes into the snapshot's shared extent).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../store/inject.h"
#include "../store/store.h"
#include "testutil.h"

#define BLK 4096u
#define W_BYTES (128u * 1024) /* the grown file "w" */
#define PAD_BLOCKS 512        /* 2 MiB below it, deleted: room for a balance */
#define LOW_BLOCKS 300        /* 1.2 MiB below that, in 4 KiB extents */
#define PIECE_OFF 100u        /* the child's write: unaligned, across blocks */
#define PIECE_LEN 5000u

/* Turns ST's background relocator off: the tests' layouts stay as made
 * (inplace_reloc's balance moves "w" down into the hole "pad" left). */
static void reloc_off(cow_store *st)
{
    struct cow_reloc_config rc;
    cow_store_get_reloc(st, &rc);
    rc.enabled = 0;
    cow_store_set_reloc(st, &rc);
}



/* Byte I of the file as version V has it. */
static uint8_t pat(int v, uint64_t i)
{
    return (uint8_t)(v * 61 + i * 7 + (i >> 12));
}

static void fill(uint8_t *b, int v, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        b[i] = pat(v, off + i);
}

/* 0 if file NAME (in subvolume SUBVOL, NULL: the live one) holds version
 * 0 everywhere but [PIECE_OFF, +PIECE_LEN), which holds version V (0: none
 * written). */
static int check_w(cow_store *st, const char *subvol, int v)
{
    cow_file *f;
    static uint8_t got[W_BYTES];
    size_t n;
    int rc = subvol ? cow_subvol_file_open(st, subvol, "w", 0, &f) : cow_file_open(st, "w", 0, &f);
    if (rc != COW_OK)
        return -1;
    rc = cow_file_read(f, got, W_BYTES, 0, &n);
    cow_file_close(f);
    if (rc != COW_OK || n != W_BYTES)
        return -1;
    for (uint64_t i = 0; i < W_BYTES; i++) {
        int want = v && i >= PIECE_OFF && i < PIECE_OFF + PIECE_LEN ? v : 0;
        if (got[i] != pat(want, i))
            return -1;
    }
    return 0;
}

/* The owner's container: 2 MiB of "pad", then "w", nodatacow, grown to
 * W_BYTES and written with version 0 (in place: it was grown), synced;
 * "pad" deleted and committed away.  ST stays open. */
static cow_store *setup(const char *path)
{
    cow_store *st;
    cow_file *f;
    static uint8_t b[W_BYTES];
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    reloc_off(st);
    memset(b, 0x5a, BLK);
    /* "low": a block every other block, each its own extent, filling the
     * holes of the first groups (group 0 is never relocated); then "pad",
     * contiguous, then "w" above it */
    ck_assert_int_eq(cow_file_open(st, "low", 1, &f), COW_OK);
    for (unsigned i = 0; i < LOW_BLOCKS; i++)
        ck_assert_int_eq(cow_file_write(f, b, BLK, (uint64_t)i * 2 * BLK), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "pad", 1, &f), COW_OK);
    for (unsigned i = 0; i < PAD_BLOCKS; i++)
        ck_assert_int_eq(cow_file_write(f, b, BLK, (uint64_t)i * BLK), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "w", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK);
    ck_assert_int_eq(cow_file_grow(f, W_BYTES), COW_OK);
    fill(b, 0, 0, W_BYTES);
    ck_assert_int_eq(cow_file_write(f, b, W_BYTES, 0), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_unlink(st, "pad"), COW_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    return st;
}

/* The owner takes the ownership back from the child (which became the
 * owner when it opened): a change of another file, published. */
static void take_back(cow_store *st)
{
    cow_file *f;
    uint8_t b[BLK];
    memset(b, 0x33, BLK);
    ck_assert_int_eq(cow_file_open(st, "x", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, b, BLK, 0), COW_OK);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_publish(st), COW_OK);
}

/* The end of a case: closes ST; with REOPEN, opens the container again
 * and checks that "w" holds version 1 (acknowledged, so durable across a
 * close); fsck must be clean; PATH and its directory DIR go. */
static void finish(cow_store *st, const char *path, char *dir, int reopen)
{
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    if (reopen) {
        ck_assert_int_eq(cow_store_open(path, 0, &st), COW_OK);
        ck_assert_int_eq(check_w(st, NULL, 1), 0);
        ck_assert_int_eq(cow_store_close(st), COW_OK);
    }
    test_fsck_clean(path);
    unlink(path);
    test_rmdir(dir);
}

/* A child's first step: waits for its turn, opens the container (the
 * owner from then on, until the parent takes it back), its relocator off,
 * and "w", and says so.  0, or -1. */
static int kid_open(const char *path, int in, int out, cow_store **st, cow_file **f)
{
    if (!test_await(in) || cow_store_open(path, 0, st) != COW_OK)
        return -1;
    reloc_off(*st);
    if (cow_file_open(*st, "w", 0, f) != COW_OK)
        return -1;
    test_pass(out);
    return 0;
}

/* A child's last step: waits for its turn, closes "w" and the container,
 * and says so.  0, or -1. */
static int kid_close(int in, int out, cow_store *st, cow_file *f)
{
    if (!test_await(in))
        return -1;
    cow_file_close(f);
    if (cow_store_close(st) != COW_OK)
        return -1;
    test_pass(out);
    return 0;
}

/* The child's steps, each started by the parent: 1 open; 2 write version
 * *ARG's piece (and sync), checking that it went in place without the
 * ownership (written_foreign) unless *ARG is negative (then it must not:
 * the version is -*ARG); 3 close. */
static int writer_kid(const char *path, int in, int out, const void *arg)
{
    const int *vers = arg;
    cow_store *st;
    cow_file *f;
    uint8_t b[PIECE_LEN];
    if (kid_open(path, in, out, &st, &f))
        return __LINE__;
    for (int k = 0; vers[k]; k++) {
        int v = vers[k] > 0 ? vers[k] : -vers[k];
        struct cow_stats s0, s1;
        if (!test_await(in))
            return __LINE__;
        cow_store_stats(st, &s0);
        fill(b, v, PIECE_OFF, PIECE_LEN);
        if (cow_file_write(f, b, PIECE_LEN, PIECE_OFF) != COW_OK || cow_file_sync(f) != COW_OK)
            return __LINE__;
        cow_store_stats(st, &s1);
        uint64_t foreign = s1.written_foreign - s0.written_foreign;
        if (vers[k] > 0 && foreign != PIECE_LEN)
            return __LINE__;
        if (vers[k] < 0 && foreign != 0)
            return __LINE__;
        if (cow_store_publish(st) != COW_OK)
            return __LINE__;
        test_pass(out);
    }
    return kid_close(in, out, st, f) ? __LINE__ : 0;
}

START_TEST(inplace_foreign)
{
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/if.db", dir);
    static const int vers[] = {1, 0};
    struct test_kid k;
    test_kid_start(&k, "writer", writer_kid, path, vers);
    cow_store *st = setup(path);
    ck_assert_int_eq(check_w(st, NULL, 0), 0); /* cached by this process */
    test_kid_step(&k);                              /* it opened (the owner) */
    take_back(st);
    ck_assert_int_eq(check_w(st, NULL, 0), 0);
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    test_kid_step(&k); /* its write, in place, without the ownership */
    ck_assert_int_eq(check_w(st, NULL, 1), 0);
    take_back(st); /* still the owner: nothing to reload */
    cow_store_stats(st, &s1);
    ck_assert_uint_eq(s1.reloads, s0.reloads);
    ck_assert_uint_eq(s1.reloads_skipped, s0.reloads_skipped);
    test_kid_step(&k); /* closed */
    test_kid_wait(&k);
    finish(st, path, dir, 1);
}
END_TEST

START_TEST(inplace_snapshot)
{
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/is.db", dir);
    /* version 1 in place; after the snapshot, version 2 must not be */
    static const int vers[] = {1, -2, 0};
    struct test_kid k;
    test_kid_start(&k, "writer", writer_kid, path, vers);
    cow_store *st = setup(path);
    test_kid_step(&k);
    take_back(st);
    test_kid_step(&k); /* version 1, in place */
    /* a snapshot, not published: the child's view has the old sharing */
    ck_assert_int_eq(cow_subvol_create(st, "s1", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    test_kid_step(&k); /* version 2: copied on write (it takes the ownership) */
    ck_assert_int_eq(cow_store_refresh(st), COW_OK);
    ck_assert_int_eq(check_w(st, "s1", 1), 0); /* the snapshot's bytes stay */
    ck_assert_int_eq(check_w(st, NULL, 2), 0);
    test_kid_step(&k);
    test_kid_wait(&k);
    finish(st, path, dir, 0);
}
END_TEST

/* The reloc child's callback at "inplace:mapped": tells the parent that
 * its write is mapped, then takes its time before the pwrite. */
static void mapped_cb(void *arg, const char *name)
{
    char c = 1;
    (void)name;
    if (write(*(const int *)arg, &c, 1) != 1)
        return;
    usleep(300 * 1000);
}

/* inplace_reloc's child: opens (step 1), then writes version 1 in place
 * with the injection callback telling the parent when it is mapped (the
 * parent starts a balance then), and says when the write is done. */
static int reloc_kid(const char *path, int in, int out, const void *arg)
{
    cow_store *st;
    cow_file *f;
    uint8_t b[PIECE_LEN];
    (void)arg;
    if (kid_open(path, in, out, &st, &f))
        return __LINE__;
    if (!test_await(in))
        return __LINE__;
    static int fd;
    fd = out;
    if (cow_inject_set_callback("inplace:mapped", mapped_cb, &fd, COW_INJECT_ONCE) != COW_OK)
        return __LINE__;
    struct cow_stats s0, s1;
    cow_store_stats(st, &s0);
    fill(b, 1, PIECE_OFF, PIECE_LEN);
    if (cow_file_write(f, b, PIECE_LEN, PIECE_OFF) != COW_OK || cow_file_sync(f) != COW_OK)
        return __LINE__;
    cow_store_stats(st, &s1);
    if (s1.written_foreign - s0.written_foreign != PIECE_LEN)
        return __LINE__;
    test_pass(out); /* written */
    return kid_close(in, out, st, f) ? __LINE__ : 0;
}

START_TEST(inplace_reloc)
{
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/ir.db", dir);
    struct test_kid k;
    test_kid_start(&k, "writer", reloc_kid, path, NULL);
    cow_store *st = setup(path);
    test_kid_step(&k);
    take_back(st);
    /* "pad"'s space was held while the child owned (the pending frees):
     * two flushed commits release it */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    test_pass(k.to);
    ck_assert_msg(test_await(k.from), "the child did not map its write"); /* mapped */
    struct cow_balance_opts o = {100, 0, NULL, NULL};
    struct cow_balance_result r;
    ck_assert_int_eq(cow_store_balance(st, &o, &r), COW_OK);
    ck_assert_msg(r.bytes_moved >= W_BYTES, "the balance moved %llu bytes, not the file",
                  (unsigned long long)r.bytes_moved);
    ck_assert_msg(test_await(k.from), "the child's write failed"); /* written */
    ck_assert_int_eq(cow_store_refresh(st), COW_OK);
    ck_assert_int_eq(check_w(st, NULL, 1), 0);
    test_kid_step(&k);
    test_kid_wait(&k);
    finish(st, path, dir, 1);
}
END_TEST

/* inplace_killed's child: at "inplace:mapped" (its writing count raised,
 * nothing written yet) it dies by SIGKILL. */
static void die_cb(void *arg, const char *name)
{
    (void)arg;
    (void)name;
    raise(SIGKILL);
}

static int killed_kid(const char *path, int in, int out, const void *arg)
{
    cow_store *st;
    cow_file *f;
    uint8_t b[PIECE_LEN];
    (void)arg;
    if (kid_open(path, in, out, &st, &f))
        return __LINE__;
    if (!test_await(in))
        return __LINE__;
    if (cow_inject_set_callback("inplace:mapped", die_cb, NULL, COW_INJECT_ONCE) != COW_OK)
        return __LINE__;
    fill(b, 1, PIECE_OFF, PIECE_LEN);
    (void)cow_file_write(f, b, PIECE_LEN, PIECE_OFF); /* dies inside */
    return __LINE__;
}

/*
 * kill -9 of a process in the middle of a write in place (its writing
 * count raised, its bytes not written): the owner's next snapshot and
 * balance raise the barrier, find the count of a dead process and go on
 * (shared_barrier_raise checks its slot's lock) instead of waiting
 * forever; the file holds its old bytes, fsck is clean.
 */
START_TEST(inplace_killed)
{
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/ik.db", dir);
    struct test_kid k;
    test_kid_start(&k, "writer", killed_kid, path, NULL);
    cow_store *st = setup(path);
    test_kid_step(&k); /* it opened */
    take_back(st);
    test_pass(k.to); /* it writes, and dies */
    int status;
    ck_assert_int_eq(waitpid(k.pid, &status, 0), k.pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child was not killed");
    close(k.to);
    close(k.from);
    ck_assert_int_eq(cow_subvol_create(st, "s1", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    struct cow_balance_opts o = {100, 0, NULL, NULL};
    ck_assert_int_eq(cow_store_balance(st, &o, NULL), COW_OK);
    ck_assert_int_eq(check_w(st, NULL, 0), 0);
    ck_assert_int_eq(check_w(st, "s1", 0), 0);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    test_fsck_clean(path);
    unlink(path);
    test_rmdir(dir);
}
END_TEST

Suite *inplace_suite(void)
{
    Suite *s = suite_create("inplace");
    test_case(s, "inplace_foreign", 120, inplace_foreign, NULL);
    test_case(s, "inplace_snapshot", 120, inplace_snapshot, NULL);
    test_case(s, "inplace_reloc", 120, inplace_reloc, NULL);
    test_case(s, "inplace_killed", 120, inplace_killed, NULL);
    return s;
}

