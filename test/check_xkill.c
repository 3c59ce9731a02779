/*
 * check_xkill.c - a process killed (SIGKILL) while it holds the shared
 * state's mutex in the middle of a real store operation (issue 15; docs/
 * DESIGN.md, invariant 10): between a superblock write and its
 * publication, halfway through recording its frees or its allocation
 * journal, while letting go of held space, while holding back the
 * pending frees at open, while reloading the trees (as a new owner, or
 * as a view refreshing), and while letting go of the ownership.
 *
 * Each case names one injection point (store/inject.h) where the victim,
 * a child process, kills itself: it sets a callback on the point that
 * raises SIGKILL, so it dies exactly there, the mutex held (the next
 * locker gets EOWNERDEAD: shared.c mutex_lock).  Three processes, the
 * two children made with fork() before the parent opens any store:
 *
 *   parent P  makes the container (file "db", pattern 0) and lives on;
 *   victim V  rewrites "db" (pattern 1) and commits: acknowledged; then
 *             rewrites it again (pattern 2) and commits, and dies at the
 *             point on the way (or, as the case says, at its reopen, at
 *             the reload that makes it the owner again after P owned, at
 *             the reload of a refresh after P owned, or letting go of the
 *             ownership when P asks for it);
 *   reader R  opens read-only after V's acknowledged commit: it reads
 *             pattern 1, and keeps reading that generation.
 *
 * After the death P must go on: refresh, read "db" whole (pattern 1, or
 * pattern 2 whole: the commit V died in may have reached the disk), take
 * the ownership from the dead (recovering), write four times as many
 * blocks as "db" has, each its own extent (they land in any free space),
 * and commit.  R, without a refresh, must still read pattern 1 byte for
 * byte (what V freed in the commit it died in stays held for R), and
 * after a refresh what P reads.  fsck is clean at the end.  The cases
 * xkill_sb_written and xkill_record_frees failed while a commit recorded
 * its frees after its superblock (commit.c): R read reused blocks.
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
#define NB 64u /* blocks of "db" */

/* What the victim does before its second rewrite (the one it dies in). */
enum xk_how {
    XK_COMMIT, /* nothing: it dies in that commit */
    XK_REOPEN, /* closes its store after the first rewrite and opens it again
                * with the point set: it dies in the open */
    XK_REOWN,  /* P takes the ownership in between: the victim dies taking it
                * back (the reload) */
    XK_YIELD,  /* the victim rewrites nothing more: it dies letting go of the
                * ownership when P asks for it */
    XK_VIEW,   /* P takes the ownership in between: the victim, a view now,
                * dies refreshing (the reload of what P published) */
};

struct xk_case {
    const char *name;  /* the test case's (CK_RUN_CASE) */
    const char *point; /* store/inject.h name; a literal */
    enum xk_how how;
};

static const struct xk_case xk_cases[] = {
    {"xkill_sb_written", "commit:sb_written", XK_COMMIT},
    {"xkill_record_ops", "alloc:record_ops", XK_COMMIT},
    {"xkill_record_frees", "alloc:record_frees", XK_COMMIT},
    {"xkill_release_held", "alloc:release_held", XK_COMMIT},
    {"xkill_hold_frees", "alloc:hold_shared_frees", XK_REOPEN},
    {"xkill_reload", "xproc:reload_locked", XK_REOWN},
    {"xkill_yield", "xproc:yield_locked", XK_YIELD},
    {"xkill_view_reload", "xproc:reload_locked", XK_VIEW},
};

/* Block I of pattern T. */
static void xk_block(uint8_t *b, unsigned t, unsigned i)
{
    for (unsigned k = 0; k < BLK; k++)
        b[k] = (uint8_t)(t * 97 + i * 13 + k * 5 + 1);
}

/* Writes NB blocks of pattern T over "db" (one write: one extent). */
static int xk_rewrite(cow_store *st, unsigned t)
{
    static uint8_t buf[NB * BLK];
    cow_file *f;
    for (unsigned i = 0; i < NB; i++)
        xk_block(buf + (size_t)i * BLK, t, i);
    if (cow_file_open(st, "db", 1, &f) != COW_OK)
        return -1;
    int rc = cow_file_write(f, buf, sizeof buf, 0);
    cow_file_close(f);
    return rc == COW_OK ? 0 : -1;
}

/* The pattern "db" holds whole (0, 1, 2, ...), or -1: another size, an
 * error, or blocks of different patterns (a partial state). */
static int xk_pattern(cow_store *st)
{
    static uint8_t got[NB * BLK + 1];
    uint8_t want[BLK];
    cow_file *f;
    size_t n;
    if (cow_file_open(st, "db", 0, &f) != COW_OK)
        return -1;
    int rc = cow_file_read(f, got, sizeof got, 0, &n);
    cow_file_close(f);
    if (rc != COW_OK || n != NB * BLK)
        return -1;
    for (int t = 0; t < 3; t++) {
        unsigned i = 0;
        for (; i < NB; i++) {
            xk_block(want, (unsigned)t, i);
            if (memcmp(got + (size_t)i * BLK, want, BLK) != 0)
                break;
        }
        if (i == NB)
            return t;
    }
    return -1;
}

/* ---- the processes ---- */

/* One byte on a pipe: a step's go-ahead, or its answer (a value < 256). */
static void xk_send(int fd, int v)
{
    unsigned char c = (unsigned char)v;
    ck_assert_int_eq(write(fd, &c, 1), 1);
}

/* The byte read, or -1 at the end of the pipe (the writer died or is
 * done). */
static int xk_recv(int fd)
{
    unsigned char c;
    return read(fd, &c, 1) == 1 ? c : -1;
}

static void xk_die(void *arg, const char *name)
{
    (void)arg;
    (void)name;
    raise(SIGKILL); /* here, with whatever the thread holds */
}

/* The victim of case C.  Step 1: opens, rewrites "db" with pattern 1, commits
 * (acknowledged by answering 1).  Step 2: sets the point, answers 2
 * ("armed"), and rewrites "db" with pattern 2 and commits (XK_REOPEN:
 * closes and opens again first); it must die on the way.  Returns 0 or
 * the line that failed (any line: it lived through the point).  XK_YIELD:
 * after "armed" it only waits, to die when P asks for the ownership;
 * XK_VIEW: it only refreshes. */
static int xk_victim(const char *path, const struct xk_case *c, int in, int out)
{
    cow_store *st;
    if (xk_recv(in) != 1)
        return __LINE__;
    if (cow_store_open(path, 0, &st) != COW_OK)
        return __LINE__;
    cow_store_set_commit_interval(st, 0); /* commits are this test's */
    if (xk_rewrite(st, 1) || cow_store_commit(st) != COW_OK)
        return __LINE__;
    if (c->how == XK_REOPEN && cow_store_close(st) != COW_OK)
        return __LINE__;
    xk_send(out, 1);
    if (xk_recv(in) != 2)
        return __LINE__;
    if (cow_inject_set_callback(c->point, xk_die, NULL, 0) != 0)
        return __LINE__;
    xk_send(out, 2);
    if (c->how == XK_YIELD) {
        xk_recv(in); /* P asks for the ownership meanwhile */
        return __LINE__;
    }
    if (c->how == XK_VIEW) {
        cow_store_refresh(st);
        return __LINE__;
    }
    if (c->how == XK_REOPEN && cow_store_open(path, 0, &st) != COW_OK)
        return __LINE__;
    if (xk_rewrite(st, 2) || cow_store_commit(st) != COW_OK)
        return __LINE__;
    return __LINE__; /* the point was never reached */
}

/* The reader.  Step 1: opens read-only (pinned from then on) and answers
 * the pattern it reads.  Step 2 (the go-ahead carries the pattern P
 * reads): answers the pattern it reads without a refresh, then the one
 * after a refresh, and closes. */
static int xk_reader(const char *path, int in, int out)
{
    cow_store *st;
    if (xk_recv(in) != 1 || cow_store_open(path, COW_OPEN_READONLY, &st) != COW_OK)
        return __LINE__;
    xk_send(out, xk_pattern(st) + 1);
    if (xk_recv(in) < 0)
        return __LINE__;
    xk_send(out, xk_pattern(st) + 1);
    if (cow_store_refresh(st) != COW_OK)
        return __LINE__;
    xk_send(out, xk_pattern(st) + 1);
    if (cow_store_close(st) != COW_OK)
        return __LINE__;
    return 0;
}

/* test_kid_start's bodies: the victim of case ARG, and the reader. */
static int xk_victim_kid(const char *path, int in, int out, const void *arg)
{
    return xk_victim(path, arg, in, out);
}

static int xk_reader_kid(const char *path, int in, int out, const void *arg)
{
    (void)arg;
    return xk_reader(path, in, out);
}

/* Sends V to its step and returns its answer; a child that ended instead
 * fails the test. */
static int xk_step(struct test_kid *k, int v)
{
    xk_send(k->to, v);
    int a = xk_recv(k->from);
    if (a < 0)
        test_kid_abort(k, "at its step");
    return a;
}

/* Writes 4 * NB blocks to file "x", each its own extent (every other
 * block), and commits: the freed space of every generation nobody reads
 * is reused. */
static void xk_fill(cow_store *st)
{
    uint8_t b[BLK];
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "x", 1, &f), COW_OK);
    for (unsigned i = 0; i < 4 * NB; i++) {
        xk_block(b, 7, i);
        ck_assert_msg(cow_file_write(f, b, BLK, (uint64_t)i * 2 * BLK) == COW_OK, "write: %s",
                      cow_store_last_error(st));
    }
    cow_file_close(f);
    ck_assert_msg(cow_store_commit(st) == COW_OK, "commit: %s", cow_store_last_error(st));
}

/* P takes the ownership (from V, which lets go: or dies doing it),
 * changing something else than "db", and commits. */
static void xk_own(cow_store *st)
{
    uint8_t b[BLK];
    cow_file *f;
    xk_block(b, 5, 0);
    ck_assert_int_eq(cow_file_open(st, "p", 1, &f), COW_OK);
    ck_assert_msg(cow_file_write(f, b, BLK, 0) == COW_OK, "write: %s", cow_store_last_error(st));
    cow_file_close(f);
    ck_assert_msg(cow_store_commit(st) == COW_OK, "commit: %s", cow_store_last_error(st));
    ck_assert_int_eq(xk_pattern(st), 1);
}

static void xk_run(const struct xk_case *c)
{
    char *dir = test_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/xk.db", dir);
    struct test_kid v, r;
    /* both children before this process opens a store (a fork copies no
     * thread) */
    test_kid_start(&v, "victim", xk_victim_kid, path, c);
    test_kid_start(&r, "reader", xk_reader_kid, path, NULL);

    cow_store *st;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    cow_store_set_commit_interval(st, 0);
    ck_assert_int_eq(xk_rewrite(st, 0), 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);

    ck_assert_int_eq(xk_step(&v, 1), 1); /* pattern 1 committed: acknowledged */
    ck_assert_int_eq(xk_step(&r, 1), 1 + 1); /* R reads (and pins) pattern 1 */
    if (c->how == XK_REOWN || c->how == XK_VIEW)
        xk_own(st);
    ck_assert_int_eq(xk_step(&v, 2), 2); /* armed; it goes on to the point */
    if (c->how == XK_YIELD)
        xk_own(st); /* V dies letting go */
    close(v.to); /* a victim that lived through its point ends */
    int status;
    ck_assert_int_eq(waitpid(v.pid, &status, 0), v.pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "the victim did not die at %s (exit %d)", c->point,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    close(v.from);

    /* P goes on: what V acknowledged, whole; then P changes the container
     * (the ownership from the dead, recovering) and reuses free space */
    ck_assert_msg(cow_store_refresh(st) == COW_OK, "refresh: %s", cow_store_last_error(st));
    int seen = xk_pattern(st);
    ck_assert_msg(seen == 1 || seen == 2, "after the death at %s \"db\" reads as pattern %d",
                  c->point, seen);
    xk_fill(st);
    int now = xk_pattern(st);
    ck_assert_msg(now == 1 || now == 2, "after recovery from %s \"db\" reads as pattern %d",
                  c->point, now);
    ck_assert_msg(now >= seen, "the recovery went back from pattern %d to %d", seen, now);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);

    /* R: its generation, untouched by P's reuse; then P's */
    int old = xk_step(&r, now) - 1;
    ck_assert_msg(old == 1, "the reader's generation (pattern 1) reads as %d after the death at "
                            "%s and the reuse: space it reads was given out",
                  old, c->point);
    int fresh = xk_recv(r.from) - 1;
    ck_assert_msg(fresh == now, "the reader refreshed to pattern %d, the owner reads %d", fresh,
                  now);
    test_kid_wait(&r);

    ck_assert_int_eq(cow_store_close(st), COW_OK);
    test_fsck_clean(path);
    unlink(path);
    test_rmdir(dir);
}

START_TEST(xkill_points)
{
    xk_run(&xk_cases[_i]);
}
END_TEST

Suite *xkill_suite(void)
{
    Suite *s = suite_create("xkill");
    for (size_t i = 0; i < sizeof xk_cases / sizeof xk_cases[0]; i++) {
        /* one test case per point */
        TCase *tc = test_case(s, xk_cases[i].name, 120, NULL);
        tcase_add_loop_test(tc, xkill_points, (int)i, (int)i + 1);
    }
    return s;
}
