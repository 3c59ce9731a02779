/*
 * check_xproc.c - several processes on one container, at the store's
 * level (store/xproc.c; docs/DESIGN.md, "Several processes"): processes
 * made with fork() take turns changing one container and each reads what
 * the others wrote; an owner killed with SIGKILL is recovered from; a
 * reader keeps reading the generation it loaded while another process
 * frees and reuses that generation's space.  fsck is clean after each.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../store/inject.h"
#include "../store/shared.h"
#include "../store/store.h"
#include "../store/store_int.h"
#include "../store/xproc.h"
#include "testutil.h"

#define BLK 4096u
#define TURNS 24

/* A container's path in a new temporary directory (returned, for
 * xproc_done): PATH (4200 bytes) is DIR/NAME. */
static char *xproc_path(char path[4200], const char *name)
{
    char *dir = test_mkdtemp();
    snprintf(path, 4200, "%s/%s", dir, name);
    return dir;
}

/* The end of a test: the container at PATH is fsck clean; it and DIR go. */
static void xproc_done(char *dir, const char *path)
{
    test_fsck_clean(path);
    unlink(path);
    test_rmdir(dir);
}

/* Block I of the file as process WHO writes it at turn T. */
static void block_bytes(uint8_t *b, int who, int t, unsigned i)
{
    for (unsigned k = 0; k < BLK; k++)
        b[k] = (uint8_t)(who * 131 + t * 17 + i * 7 + k);
}

/* One side's turns: refresh, check every block the other side and this
 * one wrote so far (block i was last written at turn i by side i % 2),
 * write block T, make it visible, pass the turn.  Returns 0 or the line
 * that failed (the child exits with it). */
static int play(const char *path, int who, int in, int out)
{
    cow_store *st;
    cow_file *f;
    uint8_t want[BLK], got[BLK];
    if (cow_store_open(path, 0, &st) != COW_OK)
        return __LINE__;
    for (int t = who; t < TURNS; t += 2) {
        if (t > 0 && !test_await(in))
            return __LINE__;
        if (cow_store_refresh(st) != COW_OK) {
            return __LINE__;
        }
        if (cow_file_open(st, "db", 1, &f) != COW_OK)
            return __LINE__;
        for (int i = 0; i < t; i++) {
            size_t n;
            block_bytes(want, i % 2, i, (unsigned)i);
            int rr = cow_file_read(f, got, BLK, (uint64_t)i * BLK, &n);
            if (rr != COW_OK || n != BLK || memcmp(got, want, BLK) != 0) {
                return __LINE__;
            }
        }
        block_bytes(want, who, t, (unsigned)t);
        if (cow_file_write(f, want, BLK, (uint64_t)t * BLK) != COW_OK)
            return __LINE__;
        /* odd turns sync (a log record, then a publication), even ones
         * only publish: both must reach the other process */
        if (t % 4 == 1 && cow_file_sync(f) != COW_OK)
            return __LINE__;
        if (cow_store_publish(st) != COW_OK)
            return __LINE__;
        cow_file_close(f);
        test_pass(out);
    }
    return cow_store_close(st) == COW_OK ? 0 : __LINE__;
}

/* Two processes take turns writing one file of a container, each reading
 * everything the other wrote before its turn: the ownership moves at
 * every turn, and what the owner wrote reaches the other through the
 * trees (publication) and a reload. */
START_TEST(xproc_turns)
{
    char path[4200];
    char *dir = xproc_path(path, "t.db");
    cow_store *st;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    int p2c[2], c2p[2];
    ck_assert_int_eq(pipe(p2c), 0);
    ck_assert_int_eq(pipe(c2p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p2c[1]);
        close(c2p[0]);
        _exit(play(path, 1, p2c[0], c2p[1]));
    }
    close(p2c[0]); /* a side that dies ends the other's wait */
    close(c2p[1]);
    int line = play(path, 0, c2p[0], p2c[1]);
    close(p2c[1]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child failed at check_xproc.c:%d (signal %d)", WEXITSTATUS(status),
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ck_assert_msg(line == 0, "parent failed at check_xproc.c:%d: %s", line,
                  cow_store_last_error(NULL));
    xproc_done(dir, path);
}
END_TEST

/* One side's turns of xproc_journal: side WHO rewrites its own file
 * (JBLOCKS blocks, "a" or "b") at each of its turns, and writes and
 * truncates a scratch file, so that each turn allocates new space and
 * frees the old; before that it checks the other side's file as the other
 * last wrote it.  Each turn takes the ownership back from the other side,
 * whose allocations the map must know of.  Returns 0 or the failing
 * line. */
#define JTURNS 16
#define JBLOCKS 48
static int journal_play(const char *path, int who, int in, int out)
{
    cow_store *st;
    cow_file *f, *g;
    uint8_t want[BLK], got[BLK];
    const char *mine = who ? "b" : "a", *theirs = who ? "a" : "b";
    if (cow_store_open(path, 0, &st) != COW_OK)
        return __LINE__;
    for (int t = who; t < JTURNS; t += 2) {
        if (t > 0 && !test_await(in))
            return __LINE__;
        if (cow_store_refresh(st) != COW_OK)
            return __LINE__;
        if (t > 0) { /* the other side's file, as it wrote it at turn t - 1 */
            if (cow_file_open(st, theirs, 0, &f) != COW_OK)
                return __LINE__;
            for (unsigned i = 0; i < JBLOCKS; i++) {
                size_t n;
                block_bytes(want, 1 - who, t - 1, i);
                if (cow_file_read(f, got, BLK, (uint64_t)i * BLK, &n) != COW_OK || n != BLK ||
                    memcmp(got, want, BLK) != 0)
                    return __LINE__;
            }
            cow_file_close(f);
        }
        if (cow_file_open(st, mine, 1, &f) != COW_OK || cow_file_open(st, "s", 1, &g) != COW_OK)
            return __LINE__;
        for (unsigned i = 0; i < JBLOCKS; i++) {
            block_bytes(want, who, t, i);
            if (cow_file_write(f, want, BLK, (uint64_t)i * BLK) != COW_OK ||
                cow_file_write(g, want, BLK, (uint64_t)i * BLK) != COW_OK)
                return __LINE__;
        }
        if ((t % 4 < 2 && cow_file_sync(f) != COW_OK) || cow_file_truncate(g, BLK) != COW_OK ||
            cow_store_publish(st) != COW_OK)
            return __LINE__;
        cow_file_close(g);
        cow_file_close(f);
        test_pass(out);
    }
    /* the turns after the first took the ownership back with the journal */
    if (xproc_test_journal_reloads() == 0)
        return __LINE__;
    if (cow_store_close(st) != COW_OK)
        return __LINE__;
    return 0;
}

/* Two processes take turns rewriting files, each turn a handover: the
 * returning owner brings its own free space map up to date from the
 * shared allocation journal (store/alloc.c alloc_apply_journal) and must
 * not hand out a block the other allocated meanwhile, which would
 * overwrite the other's file (checked at each turn), nor lose one (fsck
 * at the end).  Fails with COW_BREAK_XPROC_NO_ALLOCS (the journal's
 * allocations not applied; make race-proof). */
START_TEST(xproc_journal)
{
    char path[4200];
    char *dir = xproc_path(path, "j.db");
    cow_store *st;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    int p2c[2], c2p[2];
    ck_assert_int_eq(pipe(p2c), 0);
    ck_assert_int_eq(pipe(c2p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p2c[1]);
        close(c2p[0]);
        _exit(journal_play(path, 1, p2c[0], c2p[1]));
    }
    close(p2c[0]);
    close(c2p[1]);
    int line = journal_play(path, 0, c2p[0], p2c[1]);
    close(p2c[1]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child failed at check_xproc.c:%d (signal %d)", WEXITSTATUS(status),
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ck_assert_msg(line == 0, "parent failed at check_xproc.c:%d: %s", line,
                  cow_store_last_error(NULL));
    xproc_done(dir, path);
}
END_TEST

/* The owner is killed (SIGKILL) after a sync it acknowledged, before it
 * published anything: the next process to change the container takes the
 * ownership from the dead one, recovers (the log's replay) and finds the
 * synced bytes; fsck is clean. */
START_TEST(xproc_owner_killed)
{
    char path[4200];
    char *dir = xproc_path(path, "k.db");
    cow_store *st;
    cow_file *f;
    uint8_t b[BLK], got[BLK];
    /* the child is made before this process starts any thread (a fork
     * copies no thread, and a lock another one held stays held) */
    int p2c[2], c2p[2];
    ck_assert_int_eq(pipe(p2c), 0);
    ck_assert_int_eq(pipe(c2p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        cow_store *s2;
        cow_file *f2;
        uint8_t w[BLK];
        close(p2c[1]);
        close(c2p[0]);
        block_bytes(w, 1, 1, 1);
        if (!test_await(p2c[0]))
            _exit(4);
        if (cow_store_open(path, 0, &s2) != COW_OK || cow_file_open(s2, "db", 0, &f2) != COW_OK)
            _exit(1);
        cow_store_set_commit_interval(s2, 0); /* nothing but the sync */
        if (cow_file_write(f2, w, BLK, BLK) != COW_OK || cow_file_sync(f2) != COW_OK)
            _exit(2);
        test_pass(c2p[1]); /* acknowledged */
        pause();      /* killed here, owning the container */
        _exit(3);
    }
    close(p2c[0]);
    close(c2p[1]);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    block_bytes(b, 0, 0, 0);
    ck_assert_int_eq(cow_file_write(f, b, BLK, 0), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    test_pass(p2c[1]);
    int status = 0;
    if (!test_await(c2p[0])) {
        waitpid(pid, &status, 0);
        ck_abort_msg("the child failed: %d", WEXITSTATUS(status));
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* a change: the ownership, from a dead owner, with recovery */
    block_bytes(b, 0, 2, 2);
    ck_assert_msg(cow_file_write(f, b, BLK, 2 * BLK) == COW_OK, "write: %s",
                  cow_store_last_error(st));
    size_t n;
    block_bytes(b, 1, 1, 1);
    ck_assert_int_eq(cow_file_read(f, got, BLK, BLK, &n), COW_OK);
    ck_assert_uint_eq(n, BLK);
    ck_assert_msg(memcmp(got, b, BLK) == 0, "the dead owner's synced block is lost");
    block_bytes(b, 0, 0, 0);
    ck_assert_int_eq(cow_file_read(f, got, BLK, 0, &n), COW_OK);
    ck_assert(memcmp(got, b, BLK) == 0);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    xproc_done(dir, path);
}
END_TEST

/* A reader keeps the generation it loaded: while it holds its view,
 * another process overwrites the whole file again and again (each copy
 * frees the last), and the reader still reads exactly the bytes of its
 * generation, never reused blocks (the reader table holds them back);
 * after a refresh it reads the newest. */
START_TEST(xproc_reader_keeps_its_generation)
{
    char path[4200];
    char *dir = xproc_path(path, "r.db");
    enum { NB = 64 };
    static uint8_t data[NB * BLK], got[NB * BLK];
    cow_store *st;
    cow_file *f;
    block_bytes(data, 0, 0, 0);
    for (unsigned i = 0; i < NB; i++)
        block_bytes(data + i * BLK, 0, 0, i);
    /* the child is made before this process starts any thread */
    int p2c[2];
    ck_assert_int_eq(pipe(p2c), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        cow_store *s2;
        cow_file *f2;
        static uint8_t w[NB * BLK];
        close(p2c[1]);
        if (!test_await(p2c[0]))
            _exit(4);
        if (cow_store_open(path, 0, &s2) != COW_OK || cow_file_open(s2, "db", 0, &f2) != COW_OK)
            _exit(1);
        for (int round = 1; round <= 12; round++) {
            for (unsigned i = 0; i < NB; i++)
                block_bytes(w + i * BLK, 1, round, i);
            if (cow_file_write(f2, w, sizeof w, 0) != COW_OK || cow_store_commit(s2) != COW_OK)
                _exit(2);
        }
        /* a balance while the reader holds freed space back: that space
         * is no live data to move (fsck finds a remap of it otherwise) */
        struct cow_balance_opts o = {100, 0, NULL, NULL};
        if (cow_store_balance(s2, &o, NULL) != COW_OK)
            _exit(5);
        cow_file_close(f2);
        _exit(cow_store_close(s2) == COW_OK ? 0 : 3);
    }
    close(p2c[0]);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    /* the read below must reach the device (the clean pages this process
     * wrote would answer it from memory, pins or not) */
    cow_store_set_clean_cache(st, 0);
    ck_assert_int_eq(cow_file_open(st, "db", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, data, sizeof data, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    test_pass(p2c[1]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer failed: %d",
                  WEXITSTATUS(status));
    size_t n;
    /* no refresh: the generation this process loaded, byte for byte */
    ck_assert_msg(cow_file_read(f, got, sizeof got, 0, &n) == COW_OK, "read: %s",
                  cow_store_last_error(st));
    ck_assert_uint_eq(n, sizeof got);
    ck_assert_msg(memcmp(got, data, sizeof data) == 0, "the reader's generation was reused");
    ck_assert_int_eq(cow_store_refresh(st), COW_OK);
    ck_assert_int_eq(cow_file_read(f, got, sizeof got, 0, &n), COW_OK);
    for (unsigned i = 0; i < NB; i++)
        block_bytes(data + i * BLK, 1, 12, i);
    ck_assert_msg(memcmp(got, data, sizeof data) == 0, "the refresh did not show the writes");
    /* a refreshed view has no free space map of its own: df loads it */
    struct cow_df df;
    ck_assert_int_eq(cow_store_df(st, &df), COW_OK);
    ck_assert_uint_ge(df.data_bytes, sizeof data);
    ck_assert_uint_ge(df.used_bytes, df.data_bytes);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    xproc_done(dir, path);
}
END_TEST

/* The kill loop's victim: in round R, writes block SEQ of file "v" at
 * (R * KILL_SEQS + SEQ) * BLK, syncs it and acknowledges SEQ on OUT;
 * every few blocks also a snapshot or a small balance, so that a kill
 * lands in any of them.  Killed by the parent at a random moment. */
#define KILL_SEQS 48
static void victim(const char *path, int round, int out)
{
    cow_store *st;
    cow_file *f;
    uint8_t b[BLK];
    if (cow_store_open(path, 0, &st) != COW_OK || cow_file_open(st, "v", 1, &f) != COW_OK)
        _exit(1);
    for (int seq = 0; seq < KILL_SEQS; seq++) {
        block_bytes(b, 2, round, (unsigned)seq);
        if (cow_file_write(f, b, BLK, ((uint64_t)round * KILL_SEQS + (uint64_t)seq) * BLK) !=
                COW_OK ||
            cow_file_sync(f) != COW_OK)
            _exit(2);
        int32_t v = seq;
        if (write(out, &v, sizeof v) != sizeof v)
            _exit(3);
        char name[32];
        if (seq % 8 == 3) {
            snprintf(name, sizeof name, "k%d_%d", round, seq);
            (void)cow_subvol_create(st, name, COW_SUBVOL_SNAPSHOT, NULL);
        }
        if (seq % 16 == 9) {
            struct cow_balance_opts o = {100, 1u << 20, NULL, NULL};
            (void)cow_store_balance(st, &o, NULL);
        }
    }
    pause();
    _exit(0);
}

/* The kill loop's survivor: writes, syncs and reads back its own file "s"
 * while victims come and die, until IN is closed; exits 0 if every read
 * matched. */
static void survivor(const char *path, int in)
{
    cow_store *st;
    cow_file *f;
    uint8_t b[BLK], got[BLK];
    if (cow_store_open(path, 0, &st) != COW_OK || cow_file_open(st, "s", 1, &f) != COW_OK)
        _exit(1);
    for (unsigned k = 0;; k++) {
        struct timeval tv = {0, 2000};
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(in, &fds);
        if (select(in + 1, &fds, NULL, NULL, &tv) > 0)
            break; /* closed: done */
        block_bytes(b, 3, 0, k % 32);
        if (cow_file_write(f, b, BLK, (uint64_t)(k % 32) * BLK) != COW_OK ||
            (k % 3 == 0 && cow_file_sync(f) != COW_OK))
            _exit(2);
        if (cow_store_refresh(st) != COW_OK)
            _exit(3);
        for (unsigned i = 0; i <= k && i < 32; i++) {
            size_t n;
            block_bytes(b, 3, 0, i);
            if (cow_file_read(f, got, BLK, (uint64_t)i * BLK, &n) != COW_OK || n != BLK ||
                memcmp(got, b, BLK) != 0)
                _exit(4);
        }
    }
    cow_file_close(f);
    _exit(cow_store_close(st) == COW_OK ? 0 : 5);
}

/* kill -9 of a process at random points while it writes, syncs, takes
 * snapshots, balances or takes the ownership: each acknowledged (synced)
 * block survives, another process keeps working throughout, and fsck is
 * clean at the end. */
START_TEST(xproc_kill_loop)
{
    char path[4200];
    char *dir = xproc_path(path, "kl.db");
    uint64_t rs = test_seed() ^ 0x6b11;
    cow_store *st;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    int stop[2];
    ck_assert_int_eq(pipe(stop), 0);
    pid_t spid = fork();
    ck_assert_int_ge(spid, 0);
    if (spid == 0) {
        close(stop[1]);
        survivor(path, stop[0]);
    }
    close(stop[0]);
    enum { ROUNDS = 12 };
    int acked[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        int ack[2];
        ck_assert_int_eq(pipe(ack), 0);
        pid_t v = fork();
        ck_assert_int_ge(v, 0);
        if (v == 0) {
            close(ack[0]);
            close(stop[1]);
            victim(path, r, ack[1]);
        }
        close(ack[1]);
        acked[r] = -1;
        int32_t seq;
        /* Odd rounds kill at a random moment from the fork, inside the
         * open and the taking of the ownership too; even rounds first wait
         * for the victim's first acknowledgement, so that the check below
         * has blocks to check however slow the machine (a sanitizer
         * build under load may take longer than any fixed delay to open). */
        if (r % 2 == 0 && read(ack[0], &seq, sizeof seq) == sizeof seq)
            acked[r] = seq;
        usleep((useconds_t)(1000 + test_rand(&rs) % 60000));
        kill(v, SIGKILL);
        int status;
        waitpid(v, &status, 0);
        ck_assert_msg(WIFSIGNALED(status), "victim %d ended by itself: %d", r,
                      WEXITSTATUS(status));
        while (read(ack[0], &seq, sizeof seq) == sizeof seq)
            acked[r] = seq;
        close(ack[0]);
    }
    close(stop[1]);
    int status;
    waitpid(spid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the survivor failed: %d",
                  WEXITSTATUS(status));
    /* every acknowledged block, then fsck */
    cow_file *f;
    uint8_t b[BLK], got[BLK];
    ck_assert_int_eq(cow_store_open(path, 0, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "v", 1, &f), COW_OK);
    int nacked = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int seq = 0; seq <= acked[r]; seq++) {
            size_t n;
            block_bytes(b, 2, r, (unsigned)seq);
            ck_assert_int_eq(cow_file_read(f, got, BLK,
                                           ((uint64_t)r * KILL_SEQS + (uint64_t)seq) * BLK, &n),
                             COW_OK);
            ck_assert_msg(n == BLK && memcmp(got, b, BLK) == 0,
                          "round %d: acknowledged block %d is lost", r, seq);
            nacked++;
        }
    ck_assert_int_ge(nacked, ROUNDS / 2); /* the even rounds each acknowledged one */
    fprintf(stderr, "kill loop: %d acknowledged blocks checked\n", nacked);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    xproc_done(dir, path);
}
END_TEST


/* Writes NB blocks of pattern (WHO, T) to file NAME, block i at block
 * i * STRIDE (a stride over 1: one extent per block, each fitting any
 * hole). */
static int write_blocks_at(cow_store *st, const char *name, int who, int t, unsigned nb,
                           unsigned stride)
{
    cow_file *f;
    uint8_t b[BLK];
    if (cow_file_open(st, name, 1, &f) != COW_OK)
        return -1;
    for (unsigned i = 0; i < nb; i++) {
        block_bytes(b, who, t, i);
        if (cow_file_write(f, b, BLK, (uint64_t)i * stride * BLK) != COW_OK)
            return -1;
    }
    cow_file_close(f);
    return 0;
}

static int write_blocks(cow_store *st, const char *name, int who, int t, unsigned nb)
{
    return write_blocks_at(st, name, who, t, nb, 1);
}

/* 0 if file NAME holds NB blocks of pattern (WHO, T). */
enum { HB_BLOCKS = 8 };

static int check_blocks(cow_store *st, const char *name, int who, int t, unsigned nb)
{
    cow_file *f;
    uint8_t want[BLK], got[BLK];
    if (cow_file_open(st, name, 0, &f) != COW_OK)
        return -1;
    for (unsigned i = 0; i < nb; i++) {
        size_t n;
        block_bytes(want, who, t, i);
        if (cow_file_read(f, got, BLK, (uint64_t)i * BLK, &n) != COW_OK || n != BLK ||
            memcmp(got, want, BLK) != 0) {
            cow_file_close(f);
            return -1;
        }
    }
    cow_file_close(f);
    return 0;
}

/* Three commits: what the first freed is pinned, then cooling, then held
 * for the readers of other processes (invariant 9). */
static int commit3(cow_store *st)
{
    for (int i = 0; i < 3; i++)
        if (cow_store_commit(st) != COW_OK)
            return -1;
    return 0;
}

#define PF_BLOCKS 96

/* One step of a process that becomes the owner at its open: writes NB
 * blocks of pattern (WHO, T) to file NAME, block i at block i * STRIDE,
 * makes COMMITS commits, closes. */
struct owner_step {
    const char *name;
    int who, t;
    unsigned nb, stride;
    int commits;
};

static int owner_kid(const char *path, int in, int out, const void *arg)
{
    const struct owner_step *w = arg;
    cow_store *st;
    if (!test_await(in) || cow_store_open(path, 0, &st) != COW_OK)
        return __LINE__;
    if (write_blocks_at(st, w->name, w->who, w->t, w->nb, w->stride))
        return __LINE__;
    for (int i = 0; i < w->commits; i++)
        if (cow_store_commit(st) != COW_OK)
            return __LINE__;
    if (cow_store_close(st) != COW_OK)
        return __LINE__;
    test_pass(out);
    return 0;
}

/* xproc_opener_holds_frees's reader: opens read-only (its generation
 * pinned from the start), and at its second step, without a refresh,
 * reads the file as it was when it opened. */
static int pf_reader(const char *path, int in, int out, const void *arg)
{
    (void)arg;
    cow_store *st;
    if (!test_await(in) || cow_store_open(path, COW_OPEN_READONLY, &st) != COW_OK)
        return __LINE__;
    test_pass(out);
    if (!test_await(in))
        return __LINE__;
    if (check_blocks(st, "db", 0, 0, PF_BLOCKS) != 0)
        return __LINE__;
    if (cow_store_close(st) != COW_OK)
        return __LINE__;
    test_pass(out);
    return 0;
}

/* A process that becomes the owner at its open holds back what earlier
 * owners freed while another process's reader still reads it: a reader
 * pinned at generation G; the owner rewrites the file (freeing G's blocks,
 * held for the reader, in the shared pending frees) and closes; a new
 * process opens, owns, and writes four times as much; the reader then
 * reads G's file, byte for byte.  Fails when open builds its map without
 * the pending frees (store.c cow_store_open, invariant 9). */
START_TEST(xproc_opener_holds_frees)
{
    char path[4200];
    char *dir = xproc_path(path, "of.db");
    /* four times as many blocks as the reader's file, each its own
     * extent: they land in whatever is free from the bottom up */
    static const struct owner_step opener = {"x", 2, 2, 4 * PF_BLOCKS, 2, 3};
    struct test_kid rd, op;
    test_kid_start(&rd, "reader", pf_reader, path, NULL);
    test_kid_start(&op, "opener", owner_kid, path, &opener);
    cow_store *st;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(write_blocks(st, "db", 0, 0, PF_BLOCKS), 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    test_kid_step(&rd); /* it opened: generation G pinned */
    ck_assert_int_eq(write_blocks(st, "db", 1, 1, PF_BLOCKS), 0);
    ck_assert_int_eq(commit3(st), 0);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    test_kid_step(&op);
    test_kid_step(&rd);
    test_kid_wait(&op);
    test_kid_wait(&rd);
    xproc_done(dir, path);
}
END_TEST

/* A pending free keeps its kind: relocation leaves a file's extents at
 * logical addresses past the (cut) file's end, stored low; another owner
 * frees them while this process reads; a third process opens as owner and
 * holds the pending frees back.  A logical run held in the physical map
 * would make its superblock claim a container larger than the file, and
 * every process's next load fail ("truncated").  Fails when the pending
 * frees do not say which map a run is of (store/shared.c, alloc.c
 * hold_one; invariant 12). */
START_TEST(xproc_frees_past_end)
{
    char path[4200];
    char *dir = xproc_path(path, "pe.db");
    /* the second owner takes the ownership from this process (a reader of
     * its generation from then on) and rewrites the relocated file, whose
     * old blocks have logical addresses past the file's end; the third
     * opens with a fresh map, the pending frees held, and commits once:
     * its superblock records the map's end as the container's size */
    static const struct owner_step rewriter = {"db", 1, 1, PF_BLOCKS, 1, 3};
    static const struct owner_step third = {"c", 2, 2, 1, 1, 1};
    struct test_kid rw, op;
    test_kid_start(&rw, "rewriter", owner_kid, path, &rewriter);
    test_kid_start(&op, "third owner", owner_kid, path, &third);
    cow_store *st;
    cow_file *low;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    struct cow_reloc_config rc;
    cow_store_get_reloc(st, &rc);
    rc.enabled = 0; /* the explicit balance below only */
    cow_store_set_reloc(st, &rc);
    /* "low" first, "db" above it; "low" goes, and the balance moves db's
     * groups into the hole it left, their logical addresses kept */
    ck_assert_int_eq(write_blocks(st, "low", 3, 3, 8 * PF_BLOCKS), 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(write_blocks(st, "db", 0, 0, PF_BLOCKS), 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "low", 1, &low), COW_OK);
    ck_assert_int_eq(cow_file_truncate(low, 0), COW_OK);
    cow_file_close(low);
    ck_assert_int_eq(commit3(st), 0);
    struct cow_balance_opts o = {100, 0, NULL, NULL};
    ck_assert_int_eq(cow_store_balance(st, &o, NULL), COW_OK);
    struct cow_df df;
    ck_assert_int_eq(cow_store_df(st, &df), COW_OK);
    ck_assert_uint_gt(df.remapped_bytes, 0);
    test_kid_step(&rw); /* this process is a reader of its generation now */
    test_kid_step(&op);
    ck_assert_msg(cow_store_refresh(st) == COW_OK, "refresh: %s", cow_store_last_error(st));
    ck_assert_int_eq(check_blocks(st, "db", 1, 1, PF_BLOCKS), 0);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    test_kid_wait(&rw);
    test_kid_wait(&op);
    xproc_done(dir, path);
}
END_TEST

/* xproc_handback's other owner: opens (the owner); at each step,
 * overwrites the nodatacow file "w" (pattern 1, step) and persists it (in
 * place: no publication; at step 2 without the ownership, inplace.c), or,
 * at step 3, writes file "db" (a commit: a publication). */
static int hb_kid(const char *path, int in, int out, const void *arg)
{
    (void)arg;
    cow_store *st;
    if (!test_await(in) || cow_store_open(path, 0, &st) != COW_OK)
        return __LINE__;
    test_pass(out);
    for (int step = 1; step <= 3; step++) {
        if (!test_await(in))
            return __LINE__;
        if (step < 3 ? write_blocks(st, "w", 1, step, HB_BLOCKS) : write_blocks(st, "db", 1, 0, 1))
            return __LINE__;
        if (cow_store_persist(st) != COW_OK)
            return __LINE__;
        test_pass(out);
    }
    if (!test_await(in) || cow_store_close(st) != COW_OK)
        return __LINE__;
    test_pass(out);
    return 0;
}

/*
 * The ownership handed back with nothing published meanwhile: this
 * process writes a nodatacow file and lets its blocks grow old; another
 * process, the owner since its open, overwrites them in place (no commit,
 * no publication) and this one takes the ownership back without a reload
 * (reloads_skipped), reading the other's bytes from the device; the
 * other's next overwrite takes no ownership at all (inplace.c); once the
 * other publishes a commit, taking it back reloads.  Fails if the skip is taken after a publication
 * (a stale view) or never taken (xproc.c same_as_left).
 */
START_TEST(xproc_handback)
{
    char path[4200];
    char *dir = xproc_path(path, "hb.db");
    struct test_kid k;
    test_kid_start(&k, "other owner", hb_kid, path, NULL);
    cow_store *st;
    cow_file *f;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "w", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_set_nodatacow(f), COW_OK);
    ck_assert_int_eq(write_blocks(st, "w", 0, 0, HB_BLOCKS), 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK); /* old: in place from now on */
    test_kid_step(&k); /* it opened */
    struct cow_stats s0, s1;
    for (int step = 1; step <= 3; step++) {
        test_kid_step(&k); /* it took the ownership and wrote */
        cow_store_stats(st, &s0);
        /* this process takes it back */
        ck_assert_int_eq(write_blocks(st, "x", 0, step, 1), 0);
        cow_store_stats(st, &s1);
        ck_assert_int_eq(cow_store_refresh(st), COW_OK);
        if (step == 1) {
            /* it owned since its open: handed back without a reload */
            ck_assert_uint_eq(s1.reloads_skipped, s0.reloads_skipped + 1);
            ck_assert_int_eq(check_blocks(st, "w", 1, step, HB_BLOCKS), 0);
        } else if (step == 2) {
            /* it wrote in place without the ownership (inplace.c): this
             * process kept it, nothing to reload or skip */
            ck_assert_uint_eq(s1.reloads_skipped, s0.reloads_skipped);
            ck_assert_uint_eq(s1.reloads, s0.reloads);
            ck_assert_int_eq(check_blocks(st, "w", 1, step, HB_BLOCKS), 0);
        } else {
            ck_assert_uint_eq(s1.reloads_skipped, s0.reloads_skipped);
            ck_assert_uint_gt(s1.reloads, s0.reloads);
            ck_assert_int_eq(check_blocks(st, "db", 1, 0, 1), 0);
            ck_assert_int_eq(check_blocks(st, "w", 1, 2, HB_BLOCKS), 0);
        }
        ck_assert_int_eq(cow_store_persist(st), COW_OK);
    }
    test_kid_step(&k);
    test_kid_wait(&k);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    xproc_done(dir, path);
}
END_TEST

/* The other process of xproc_enter_counted: opens; at the go, writes
 * block 0 of "db" (which waits for the ownership) and persists it. */
static int ask_kid(const char *path, int in, int out, const void *arg)
{
    (void)arg;
    cow_store *st;
    if (!test_await(in) || cow_store_open(path, 0, &st) != COW_OK)
        return __LINE__;
    test_pass(out);
    if (!test_await(in) || write_blocks(st, "db", 1, 1, 1) != 0 ||
        cow_store_persist(st) != COW_OK)
        return __LINE__;
    test_pass(out);
    if (!test_await(in) || cow_store_close(st) != COW_OK)
        return __LINE__;
    test_pass(out);
    return 0;
}

struct enter_job {
    cow_file *f;
    int rc;
};

/* Writes block 1 of F with pattern (0, 1). */
static void *enter_write(void *arg)
{
    struct enter_job *j = arg;
    uint8_t b[BLK];
    block_bytes(b, 0, 1, 1);
    j->rc = cow_file_write(j->f, b, BLK, BLK);
    return NULL;
}

/*
 * A call counted by xproc_enter's fast path (the owner, no handoff under
 * way: no store->lock) keeps the ownership: stopped after it entered, and
 * another process asking for the ownership, a yield must not let go; once
 * the call left, the other process gets it, and each sees both writes.
 * Fails if the fast path does not count the call (the yield publishes and
 * disowns under a write in progress).
 */
START_TEST(xproc_enter_counted)
{
    char path[4200];
    char *dir = xproc_path(path, "enter.db");
    struct test_kid k;
    test_kid_start(&k, "asker", ask_kid, path, NULL);
    cow_store *st;
    cow_file *f;
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &st), COW_OK);
    ck_assert_int_eq(write_blocks(st, "db", 0, 0, 2), 0);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    test_kid_step(&k); /* it opened */
    ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
    /* the owner again (the other's open may have taken it), by a write */
    ck_assert_int_eq(write_blocks(st, "db", 0, 0, 2), 0);
    ck_assert(shared_is_owner(st->shared));
    ck_assert_int_eq(cow_inject_arm("xproc:entered", 0, 0, 1), 0);
    struct enter_job j = {.f = f};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, enter_write, &j), 0);
    ck_assert_int_eq(cow_inject_wait("xproc:entered", 1, 10000), 0);
    test_pass(k.to); /* it writes: asks for the ownership */
    int asked = 0;
    for (int i = 0; i < 10000 && !asked; i++) {
        asked = shared_owner_wanted(st->shared);
        if (!asked)
            usleep(1000);
    }
    ck_assert_msg(asked, "the other process never asked for the ownership");
    cow_mutex_lock(&st->lock);
    (void)xproc_yield_locked(st);
    int owner = shared_is_owner(st->shared);
    cow_mutex_unlock(&st->lock);
    ck_assert_int_eq(cow_inject_release("xproc:entered"), 0);
    pthread_join(t, NULL);
    cow_inject_reset();
    ck_assert_msg(owner, "the ownership went while a call counted by the fast path was inside");
    ck_assert_int_eq(j.rc, COW_OK);
    if (!test_await(k.from)) /* it wrote, once the call left */
        test_kid_abort(&k, "its write");
    ck_assert_int_eq(cow_store_refresh(st), COW_OK);
    ck_assert_int_eq(check_blocks(st, "db", 1, 1, 1), 0);
    uint8_t want[BLK], got[BLK];
    size_t n;
    block_bytes(want, 0, 1, 1);
    ck_assert_int_eq(cow_file_read(f, got, BLK, BLK, &n), COW_OK);
    ck_assert(n == BLK && memcmp(got, want, BLK) == 0);
    test_kid_step(&k); /* it closed */
    test_kid_wait(&k);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    xproc_done(dir, path);
}
END_TEST

Suite *xproc_suite(void)
{
    Suite *s = suite_create("xproc");
    test_case(s, "xproc_turns", 120, xproc_turns, NULL);
    test_case(s, "xproc_journal", 120, xproc_journal, NULL);
    test_case(s, "xproc_killed", 120, xproc_owner_killed, NULL);
    test_case(s, "xproc_pin", 120, xproc_reader_keeps_its_generation, NULL);
    test_case(s, "xproc_kill", 300, xproc_kill_loop, NULL);
    test_case(s, "xproc_opener_frees", 120, xproc_opener_holds_frees, NULL);
    test_case(s, "xproc_frees_end", 120, xproc_frees_past_end, NULL);
    test_case(s, "xproc_handback", 120, xproc_handback, NULL);
    test_case(s, "xproc_enter", 120, xproc_enter_counted, NULL);
    return s;
}
