/*
 * check_shared.c - the store's shared state across processes
 * (store/shared.c): forked processes, each with its own descriptor of one
 * temporary container file, synchronised by pipes.  A child reports a
 * failed check by its exit status (a Check assertion in a forked child
 * would not reach the runner), which the parent asserts.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lockspace.h"
#include "shared.h"
#include "store.h"
#include "testutil.h"

static const uint8_t uuid_a[16] = {0xa1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t uuid_b[16] = {0xb2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* A container file (any bytes will do for this module) in a fresh
 * directory, and the name of its shared-memory object. */
struct box {
    char *dir;
    char path[512];
    char shm[64];
};

static void box_make(struct box *b)
{
    struct stat st;
    uint8_t data[4096];
    memset(data, 0x5c, sizeof data);
    b->dir = test_mkdtemp();
    snprintf(b->path, sizeof b->path, "%s/c.db", b->dir);
    test_write_file(b->path, data, sizeof data);
    ck_assert_int_eq(stat(b->path, &st), 0);
    snprintf(b->shm, sizeof b->shm, COW_SHM_PREFIX "%llx-%llx", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
}

static void box_free(struct box *b)
{
    shm_unlink(b->shm); /* whatever a failed test left */
    test_rmdir(b->dir);
}

/* 1 if the shared-memory object named NAME exists. */
static int shm_exists(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

/* Opens the container and its shared state; in a child, exits with CODE on
 * failure.  *FD is the descriptor to close after shared_close. */
static struct cow_shared *child_open(const struct box *b, const uint8_t *uuid, int *fd, int code)
{
    struct cow_shared *sh;
    *fd = open(b->path, O_RDWR | O_CLOEXEC);
    if (*fd < 0 || shared_open(*fd, uuid, &sh) != COW_OK)
        _exit(code);
    return sh;
}

static struct cow_shared *parent_open(const struct box *b, const uint8_t *uuid, int *fd)
{
    struct cow_shared *sh = NULL;
    *fd = open(b->path, O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(*fd, 0);
    int rc = shared_open(*fd, uuid, &sh);
    ck_assert_msg(rc == COW_OK, "shared_open: %s (%s)", cow_strerror(rc),
                  cow_store_last_error(NULL));
    return sh;
}

/* One byte through a pipe. */
static void put(int fd, char c)
{
    ck_assert_int_eq(write(fd, &c, 1), 1);
}

static void cput(int fd, char c)
{
    if (write(fd, &c, 1) != 1)
        _exit(90);
}

/* Reads one byte; -1 at the end (the writer is gone). */
static int get(int fd)
{
    char c;
    ssize_t n;
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    return n == 1 ? (unsigned char)c : -1;
}

/* A child with a pipe each way: TO (parent writes), FROM (parent reads). */
struct kid {
    pid_t pid;
    int to, from;
};

/* Forks; in the child returns 1 with K's ends set for the child (K->to is
 * what it reads, K->from what it writes), in the parent 0. */
static int kid_fork(struct kid *k)
{
    int a[2], b[2];
    ck_assert_int_eq(pipe(a), 0);
    ck_assert_int_eq(pipe(b), 0);
    k->pid = fork();
    ck_assert_int_ge(k->pid, 0);
    if (k->pid == 0) {
        close(a[1]);
        close(b[0]);
        k->to = a[0];
        k->from = b[1];
        return 1;
    }
    close(a[0]);
    close(b[1]);
    k->to = a[1];
    k->from = b[0];
    return 0;
}

/* Waits for K and fails unless it exited with 0. */
static void kid_wait(struct kid *k)
{
    int status;
    ck_assert_int_eq(waitpid(k->pid, &status, 0), k->pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: status %d (%s)",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                  WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited");
    close(k->to);
    close(k->from);
}

static void kid_kill(struct kid *k)
{
    kill(k->pid, SIGKILL);
    ck_assert_int_eq(waitpid(k->pid, NULL, 0), k->pid);
    close(k->to);
    close(k->from);
}

/*
 * Two processes map one state: what one publishes the other sees, both are
 * counted, the first close leaves the object and the last unlinks it.
 * Fails if a close unlinks while another process has the state open, if
 * the last close leaves the object behind, or if the two processes map
 * different objects.
 */
START_TEST(two_processes_share)
{
    struct box b;
    struct kid k;
    int fd;
    box_make(&b);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    ck_assert(shm_exists(b.shm));
    ck_assert_uint_eq(shared_nprocs(sh), 1);
    ck_assert_uint_eq(shared_seq(sh), 1);
    if (kid_fork(&k)) {
        int cfd;
        struct cow_shared *c = child_open(&b, uuid_a, &cfd, 10);
        if (shared_nprocs(c) != 2 || shared_slot(c) == 0)
            _exit(11);
        shared_publish(c, 42);
        cput(k.from, 'p');
        if (get(k.to) != 'c')
            _exit(12);
        shared_close(c);
        close(cfd);
        cput(k.from, 'x');
        _exit(0);
    }
    ck_assert_int_eq(get(k.from), 'p');
    ck_assert_uint_eq(shared_generation(sh), 42);
    ck_assert_uint_eq(shared_seq(sh), 2);
    ck_assert_uint_eq(shared_nprocs(sh), 2);
    put(k.to, 'c');
    ck_assert_int_eq(get(k.from), 'x');
    kid_wait(&k);
    ck_assert(shm_exists(b.shm)); /* the child was not last */
    ck_assert_uint_eq(shared_nprocs(sh), 1);
    ck_assert_uint_eq(shared_generation(sh), 42);
    shared_close(sh);
    close(fd);
    ck_assert(!shm_exists(b.shm)); /* the parent was */
    char dev_shm[128];
    snprintf(dev_shm, sizeof dev_shm, "/dev/shm%s", b.shm);
    ck_assert_int_ne(access(dev_shm, F_OK), 0);
    box_free(&b);
}
END_TEST

/*
 * A process killed (SIGKILL) while it holds the mutex: the next locker gets
 * COW_ERECOVER and holds the mutex, which then works as before.  Fails if
 * the mutex is not robust (the parent would block until the timeout), if
 * the death is not reported, or if the mutex is left unrecoverable
 * (pthread_mutex_consistent not called: the second lock fails).
 */
START_TEST(mutex_holder_killed)
{
    struct box b;
    struct kid k;
    int fd;
    box_make(&b);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    if (kid_fork(&k)) {
        int cfd;
        struct cow_shared *c = child_open(&b, uuid_a, &cfd, 10);
        if (shared_lock(c) != COW_OK)
            _exit(11);
        shared_frees_add(c, 5, 4096, 8192, 0);
        cput(k.from, 'l');
        pause();
        _exit(0);
    }
    ck_assert_int_eq(get(k.from), 'l');
    kid_kill(&k);
    ck_assert_int_eq(shared_lock(sh), COW_ERECOVER);
    ck_assert_uint_eq(shared_frees_count(sh), 1); /* what the dead one did is there */
    shared_frees_add(sh, 6, 65536, 4096, 0);
    ck_assert_uint_eq(shared_frees_bytes(sh), 8192 + 4096);
    shared_unlock(sh);
    ck_assert_int_eq(shared_lock(sh), COW_OK);
    ck_assert_uint_eq(shared_frees_count(sh), 2);
    shared_unlock(sh);
    ck_assert_uint_eq(shared_nprocs(sh), 1); /* the dead one's slot is cleared */
    shared_close(sh);
    close(fd);
    box_free(&b);
}
END_TEST

/*
 * Ownership handed over on request: a child owns; the parent's short
 * shared_own times out (COW_EBUSY); then the parent asks, the child sees
 * shared_owner_wanted, publishes and lets go, and the parent owns with the
 * child's publication visible.  The child sleeps in shared_wait_wanted,
 * which times out while nobody asks and returns when the parent does.
 * Fails if shared_own does not wait for a live owner, if the want is not
 * seen (the child exits 13) or seen when nobody asks (16) or seen only at
 * the timeout, the waiter's raise waking nobody (17), if a waiter is
 * not woken or does not take over, or if want stays raised after the
 * parent owns.
 */
START_TEST(ownership_handover)
{
    struct box b;
    struct kid k;
    int fd;
    box_make(&b);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    if (kid_fork(&k)) {
        int cfd;
        struct cow_shared *c = child_open(&b, uuid_a, &cfd, 10);
        if (shared_own(c, 1000) != COW_OK || !shared_is_owner(c))
            _exit(11);
        if (shared_owner_wanted(c)) /* nobody asked yet */
            _exit(12);
        cput(k.from, 'o');
        if (get(k.to) != 'g')
            _exit(14);
        if (shared_wait_wanted(c, 50) != 0) /* nobody asks: it times out */
            _exit(16);
        cput(k.from, 't');
        time_t t0 = time(NULL);
        if (shared_wait_wanted(c, 20000) != 1 || !shared_owner_wanted(c))
            _exit(13);
        if (time(NULL) - t0 > 5) /* slept to the timeout: the waiter's raise woke nobody */
            _exit(17);
        shared_set_unpublished(c);
        shared_publish(c, 7);
        shared_disown(c);
        cput(k.from, 'd');
        if (get(k.to) != 'x')
            _exit(15);
        shared_close(c);
        close(cfd);
        _exit(0);
    }
    ck_assert_int_eq(get(k.from), 'o');
    ck_assert(!shared_is_owner(sh));
    ck_assert_int_eq(shared_own(sh, 100), COW_EBUSY);
    ck_assert(!shared_is_owner(sh));
    put(k.to, 'g');
    ck_assert_int_eq(get(k.from), 't');
    ck_assert_int_eq(shared_own(sh, 20000), COW_OK);
    ck_assert(shared_is_owner(sh));
    ck_assert_uint_eq(shared_generation(sh), 7);
    ck_assert_int_eq(shared_own(sh, 0), COW_OK); /* already owner: at once */
    ck_assert_int_eq(get(k.from), 'd');
    ck_assert(!shared_owner_wanted(sh)); /* the parent's own want is down */
    put(k.to, 'x');
    kid_wait(&k);
    shared_disown(sh);
    ck_assert(!shared_is_owner(sh));
    shared_close(sh);
    close(fd);
    box_free(&b);
}
END_TEST

/* Forks a child that opens the state, owns it, marks changes unpublished,
 * reports its slot through the pipe and waits to be killed. */
static void owning_child(struct box *b, struct kid *k)
{
    if (kid_fork(k)) {
        int cfd;
        struct cow_shared *c = child_open(b, uuid_a, &cfd, 10);
        if (shared_own(c, 5000) != COW_OK)
            _exit(11);
        shared_set_unpublished(c);
        cput(k->from, (char)('0' + shared_slot(c)));
        pause();
        _exit(0);
    }
}

/*
 * An owner killed: a reader waiting for its publication is let go, and the
 * next shared_own returns COW_ERECOVER (once: the recovery is this
 * process's to do).  Then an owner killed whose slot a new process takes
 * before anyone noticed: the next shared_own still returns COW_ERECOVER.
 * Fails if the owner's liveness is not checked (the waits time out), if a
 * takeover from a dead owner returns COW_OK, or if reusing the dead
 * owner's slot hands the ownership to the new tenant or forgets the death.
 */
START_TEST(owner_killed)
{
    struct box b;
    struct kid k, t;
    int fd;
    box_make(&b);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    owning_child(&b, &k);
    int slot = get(k.from);
    ck_assert_int_eq(slot, '1');
    ck_assert_int_eq(shared_own(sh, 50), COW_EBUSY);
    ck_assert_int_eq(shared_wait_published(sh, 50), COW_EBUSY);
    kid_kill(&k);
    ck_assert_int_eq(shared_wait_published(sh, 10000), COW_OK);
    ck_assert_int_eq(shared_own(sh, 10000), COW_ERECOVER);
    ck_assert(shared_is_owner(sh));
    shared_disown(sh);
    ck_assert_int_eq(shared_own(sh, 1000), COW_OK);
    shared_disown(sh);

    /* again, and a newcomer takes the dead owner's slot first */
    owning_child(&b, &k);
    ck_assert_int_eq(get(k.from), slot);
    kid_kill(&k);
    if (kid_fork(&t)) {
        int cfd;
        struct cow_shared *c = child_open(&b, uuid_a, &cfd, 10);
        cput(t.from, (char)('0' + shared_slot(c)));
        if (shared_is_owner(c))
            _exit(11);
        if (get(t.to) != 'x')
            _exit(12);
        shared_close(c);
        close(cfd);
        _exit(0);
    }
    ck_assert_int_eq(get(t.from), slot); /* the dead owner's slot, reused */
    ck_assert_int_eq(shared_wait_published(sh, 10000), COW_OK);
    ck_assert_int_eq(shared_own(sh, 10000), COW_ERECOVER);
    put(t.to, 'x');
    kid_wait(&t);
    shared_close(sh);
    close(fd);
    box_free(&b);
}
END_TEST

/* Forks a child that opens the state, pins GEN and waits to be killed. */
static void pinning_child(struct box *b, struct kid *k, uint64_t gen)
{
    if (kid_fork(k)) {
        int cfd;
        struct cow_shared *c = child_open(b, uuid_a, &cfd, 10);
        shared_pin(c, gen);
        cput(k->from, 'p');
        pause();
        _exit(0);
    }
    ck_assert_int_eq(get(k->from), 'p');
}

/*
 * The reader table: the lowest generation pinned by a live process; a
 * killed process's pin stops counting and its slot is freed (nprocs drops,
 * a newcomer reuses it without inheriting the pin).  Fails if dead slots
 * count (the minimum stays 5) or if a reused slot keeps the dead pin.
 */
START_TEST(reader_table)
{
    struct box b;
    struct kid a, c, d;
    int fd;
    box_make(&b);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    ck_assert_uint_eq(shared_min_pinned(sh), UINT64_MAX);
    pinning_child(&b, &a, 10);
    pinning_child(&b, &c, 5);
    ck_assert_uint_eq(shared_min_pinned(sh), 5);
    shared_pin(sh, 20);
    ck_assert_uint_eq(shared_min_pinned(sh), 5);
    ck_assert_uint_eq(shared_nprocs(sh), 3);
    kid_kill(&c);
    ck_assert_uint_eq(shared_min_pinned(sh), 10);
    ck_assert_uint_eq(shared_nprocs(sh), 2);
    /* a newcomer in the dead one's slot (before anyone sweeps again) */
    pinning_child(&b, &d, 0);
    ck_assert_uint_eq(shared_min_pinned(sh), 10);
    ck_assert_uint_eq(shared_nprocs(sh), 3);
    kid_kill(&a);
    ck_assert_uint_eq(shared_min_pinned(sh), 20);
    shared_pin(sh, 0);
    ck_assert_uint_eq(shared_min_pinned(sh), UINT64_MAX);
    kid_kill(&d);
    ck_assert_uint_eq(shared_nprocs(sh), 1);
    shared_close(sh);
    close(fd);
    ck_assert(!shm_exists(b.shm));
    box_free(&b);
}
END_TEST

/*
 * Stale objects: one left by a killed process of another container (other
 * uuid) and one of garbage are reinitialised by the next opener, who is
 * alone; an object of another container that a live process holds is
 * COW_EBUSY.  Fails if an opener trusts what it finds while alone (the
 * sequence number and generation would be the dead one's; a 100-byte
 * object would be mapped and fault) or accepts another container's live
 * state.
 */
START_TEST(stale_region)
{
    struct box b;
    struct kid k;
    int fd;
    box_make(&b);
    if (kid_fork(&k)) {
        int cfd;
        struct cow_shared *c = child_open(&b, uuid_b, &cfd, 10);
        shared_publish(c, 99);
        if (shared_own(c, 1000) != COW_OK)
            _exit(11);
        cput(k.from, 'p');
        pause();
        _exit(0);
    }
    ck_assert_int_eq(get(k.from), 'p');
    /* held by a live process of the other container */
    int fd2 = open(b.path, O_RDWR | O_CLOEXEC);
    struct cow_shared *sh = NULL;
    ck_assert_int_eq(shared_open(fd2, uuid_a, &sh), COW_EBUSY);
    ck_assert_ptr_null(sh);
    ck_assert_ptr_nonnull(strstr(cow_store_last_error(NULL), "another container"));
    close(fd2);
    kid_kill(&k);
    ck_assert(shm_exists(b.shm)); /* nobody unlinked it */
    sh = parent_open(&b, uuid_a, &fd);
    ck_assert_uint_eq(shared_seq(sh), 1);
    ck_assert_uint_eq(shared_generation(sh), 0);
    ck_assert_int_eq(shared_own(sh, 0), COW_OK); /* not the dead one's, no recovery */
    shared_close(sh);
    close(fd);

    /* garbage of the wrong size under the name */
    int s = shm_open(b.shm, O_RDWR | O_CREAT, 0600);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(write(s, "not a cowvfs shared state....", 29), 29);
    close(s);
    sh = parent_open(&b, uuid_a, &fd);
    ck_assert_uint_eq(shared_seq(sh), 1);
    shared_close(sh);
    close(fd);
    ck_assert(!shm_exists(b.shm));
    box_free(&b);
}
END_TEST

/* A child that opens the container read-only, its state, pins GEN, reports
 * its slot and waits for the end of its pipe (then closes). */
static void ro_child(struct box *b, struct kid *k, uint64_t gen, const int *go)
{
    if (kid_fork(k)) {
        struct cow_shared *c;
        if (go) {
            close(go[1]);
            if (get(go[0]) != -1) /* released all at once: EOF */
                _exit(9);
        }
        int cfd = open(b->path, O_RDONLY | O_CLOEXEC);
        int rc = cfd < 0 ? COW_EIO_STAT : shared_open(cfd, uuid_a, &c);
        if (rc != COW_OK) {
            fprintf(stderr, "read-only shared_open: %s\n", cow_store_last_error(NULL));
            _exit(10);
        }
        shared_pin(c, gen);
        cput(k->from, (char)('0' + shared_slot(c)));
        if (get(k->to) != -1)
            _exit(11);
        shared_close(c);
        close(cfd);
        _exit(0);
    }
}

/*
 * Processes with a read-only descriptor: one alone builds the state (it
 * can never be "first"), a read-write process and a second read-only one
 * join it, each in its own slot, their pins counted; a read-only last
 * closer leaves the object, which the next read-write opener
 * reinitialises.  Fails if a read-only process cannot open at all (write
 * locks need a writable descriptor), if two read-only processes share a
 * slot (read locks do not exclude each other: the claim must be made
 * under the mutex), or if a state with live users is built again (drop
 * both ro_init()'s F_OFD_GETLK test and its second look under the flock:
 * the four processes opening at once then count fewer than four).
 */
START_TEST(read_only_processes)
{
    struct box b;
    struct kid r1, r2;
    int fd;
    box_make(&b);
    ro_child(&b, &r1, 3, NULL);
    ck_assert_int_eq(get(r1.from), '0');
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    ck_assert_uint_eq(shared_slot(sh), 1);
    ck_assert_uint_eq(shared_nprocs(sh), 2);
    ck_assert_uint_eq(shared_min_pinned(sh), 3);
    ro_child(&b, &r2, 0, NULL);
    ck_assert_int_eq(get(r2.from), '2');
    ck_assert_uint_eq(shared_nprocs(sh), 3);
    kid_kill(&r1);
    ck_assert_uint_eq(shared_min_pinned(sh), UINT64_MAX);
    ck_assert_uint_eq(shared_nprocs(sh), 2);
    shared_publish(sh, 55);
    shared_close(sh);
    close(fd);
    ck_assert(shm_exists(b.shm));
    close(r2.to); /* the read-only child closes last */
    r2.to = open("/dev/null", O_RDONLY);
    kid_wait(&r2);
    ck_assert(shm_exists(b.shm)); /* it cannot unlink */
    sh = parent_open(&b, uuid_a, &fd);
    ck_assert_uint_eq(shared_generation(sh), 0); /* built anew */
    ck_assert_uint_eq(shared_nprocs(sh), 1);
    shared_close(sh);
    close(fd);
    ck_assert(!shm_exists(b.shm));

    /* four read-only processes open at once with no state there: one
     * builds it, the others join it (none builds it again under them) */
    for (int round = 0; round < 20; round++) {
        enum { NR = 4 };
        struct kid k[NR];
        int go[2];
        ck_assert_int_eq(pipe(go), 0);
        for (int i = 0; i < NR; i++)
            ro_child(&b, &k[i], 10 + (uint64_t)i, go);
        close(go[0]);
        close(go[1]);
        int seen = 0;
        for (int i = 0; i < NR; i++) {
            int slot = get(k[i].from);
            ck_assert_int_ge(slot, '0');
            ck_assert_int_lt(slot, '0' + NR);
            ck_assert_msg(!(seen & (1 << (slot - '0'))), "slot %c taken twice", slot);
            seen |= 1 << (slot - '0');
        }
        sh = parent_open(&b, uuid_a, &fd);
        ck_assert_uint_eq(shared_nprocs(sh), NR + 1);
        ck_assert_uint_eq(shared_min_pinned(sh), 10);
        for (int i = 0; i < NR; i++) { /* (later children hold earlier ones' pipes) */
            close(k[i].to);
            k[i].to = open("/dev/null", O_RDONLY);
        }
        for (int i = 0; i < NR; i++)
            kid_wait(&k[i]);
        shared_close(sh);
        close(fd);
        ck_assert(!shm_exists(b.shm));
    }
    box_free(&b);
}
END_TEST

/* ---- pending frees ---- */

struct run {
    uint64_t gen, start, len;
    int phys;
};

struct taken {
    uint64_t n, bytes;
};

static void take_cb(void *arg, uint64_t start, uint64_t len, int phys)
{
    struct taken *t = arg;
    (void)start;
    (void)phys;
    t->n++;
    t->bytes += len;
}

static void collect_cb(void *arg, uint64_t start, uint64_t len, int phys)
{
    struct run **p = arg;
    **p = (struct run){0, start, len, phys};
    (*p)++;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Index of the last boundary <= P in the sorted B[N], or -1. */
static long bound_at(const uint64_t *bd, size_t n, uint64_t p)
{
    long lo = -1, hi = (long)n - 1;
    while (lo < hi) {
        long mid = lo + (hi - lo + 1) / 2;
        if (bd[mid] <= p)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/*
 * Fails unless each of the runs R[0..N) with gen >= MIN_GEN is covered,
 * every byte, by entries of E[0..M) of a generation >= its own: the
 * entries' boundaries cut the address space into pieces, each piece gets
 * the largest generation of the entries covering it (0: uncovered).
 */
static void check_cover(const struct run *r, size_t n, const struct run *e, size_t m,
                        uint64_t min_gen)
{
    uint64_t *bd = malloc(2 * m * sizeof *bd + 1);
    uint64_t *gen;
    size_t nb = 0;
    ck_assert_ptr_nonnull(bd);
    for (size_t i = 0; i < m; i++) {
        bd[nb++] = e[i].start;
        bd[nb++] = e[i].start + e[i].len;
    }
    qsort(bd, nb, sizeof *bd, u64_cmp);
    size_t u = 0;
    for (size_t i = 0; i < nb; i++)
        if (u == 0 || bd[i] != bd[u - 1])
            bd[u++] = bd[i];
    gen = calloc(u + 1, sizeof *gen);
    ck_assert_ptr_nonnull(gen);
    for (size_t i = 0; i < m; i++) /* piece k is [bd[k], bd[k+1]) */
        for (long k = bound_at(bd, u, e[i].start); k >= 0 && (size_t)k + 1 < u &&
                                                   bd[k] < e[i].start + e[i].len; k++)
            if (e[i].gen > gen[k])
                gen[k] = e[i].gen;
    for (size_t i = 0; i < n; i++) {
        if (r[i].gen < min_gen)
            continue;
        long k = bound_at(bd, u, r[i].start);
        ck_assert_msg(k >= 0, "run %zu at %llu uncovered", i, (unsigned long long)r[i].start);
        for (; (size_t)k < u && bd[k] < r[i].start + r[i].len; k++)
            ck_assert_msg((size_t)k + 1 < u && gen[k] >= r[i].gen,
                          "run %zu [%llu, +%llu) gen %llu: piece at %llu has gen %llu", i,
                          (unsigned long long)r[i].start, (unsigned long long)r[i].len,
                          (unsigned long long)r[i].gen, (unsigned long long)bd[k],
                          (unsigned long long)gen[k]);
    }
    free(gen);
    free(bd);
}

/* check_cover for each kind apart: a logical run is covered by logical
 * entries only, a physical one by physical entries (a run coalesced
 * across the two would cover addresses of another space). */
static void check_cover_kinds(const struct run *r, size_t n, const struct run *e, size_t m,
                              uint64_t min_gen)
{
    struct run *rk = malloc(n * sizeof *rk + 1), *ek = malloc(m * sizeof *ek + 1);
    ck_assert_ptr_nonnull(rk);
    ck_assert_ptr_nonnull(ek);
    for (int kind = 0; kind < 2; kind++) {
        size_t nk = 0, mk = 0;
        for (size_t i = 0; i < n; i++)
            if (r[i].phys == kind)
                rk[nk++] = r[i];
        for (size_t i = 0; i < m; i++)
            if (e[i].phys == kind)
                ek[mk++] = e[i];
        check_cover(rk, nk, ek, mk, min_gen);
    }
    free(ek);
    free(rk);
}

/* Reads the table's entries, generations 1 .. MAX_GEN, into OUT and puts
 * them back (in another order): take(g + 1) after take(g) reports the
 * entries of generation g.  The mutex is held. */
static size_t read_table(struct cow_shared *sh, struct run *out, uint64_t max_gen)
{
    /* Take generation by generation (take reports gens < below): an entry
     * reported by take(g + 1) after take(g) has generation g. */
    size_t n = 0;
    for (uint64_t g = 1; g <= max_gen; g++) {
        struct run *p = out + n, *q = p;
        shared_frees_take(sh, g + 1, collect_cb, &q);
        for (; p < q; p++)
            p->gen = g;
        n = (size_t)(q - out);
    }
    for (size_t i = 0; i < n; i++) /* put back */
        shared_frees_add(sh, out[i].gen, out[i].start, out[i].len, out[i].phys);
    return n;
}

/*
 * The pending frees under overflow: 40,000 disjoint runs of random
 * generations and kinds (logical or physical), added in random order, go
 * through a table of 16,384 entries; the table never exceeds it, and
 * every byte added stays covered by an entry of its kind and of a
 * generation >= the run's.  take(below) removes exactly
 * the entries below (a run of a generation >= below stays covered; the
 * bytes reported and the bytes left add up; nothing below is left).
 * Fails if coalescing drops or shrinks a run, merges two kinds or to the
 * smaller generation, lets the table grow past its size, or if take removes an
 * entry at or above below_gen or leaves one below.
 */
START_TEST(frees_overflow)
{
    enum { N = 40000, MAXGEN = 200 };
    struct box b;
    int fd;
    uint64_t rs = test_seed();
    box_make(&b);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    struct run *r = malloc(N * sizeof *r), *e = malloc(SHARED_FREES_MAX * sizeof *e);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(e);
    for (size_t i = 0; i < N; i++)
        r[i] = (struct run){1 + test_rand(&rs) % MAXGEN, i * 10000 + test_rand(&rs) % 1000,
                            1 + test_rand(&rs) % 8000, (int)(test_rand(&rs) % 2)};
    for (size_t i = N - 1; i > 0; i--) { /* shuffle */
        size_t j = test_rand(&rs) % (i + 1);
        struct run t = r[i];
        r[i] = r[j];
        r[j] = t;
    }
    ck_assert_int_eq(shared_lock(sh), COW_OK);
    uint64_t added = 0;
    for (size_t i = 0; i < N; i++) {
        shared_frees_add(sh, r[i].gen, r[i].start, r[i].len, r[i].phys);
        added += r[i].len;
        ck_assert_uint_le(shared_frees_count(sh), SHARED_FREES_MAX);
    }
    ck_assert_uint_lt(shared_frees_count(sh), N); /* it coalesced */
    ck_assert_uint_ge(shared_frees_bytes(sh), added);
    size_t m = read_table(sh, e, MAXGEN);
    ck_assert_uint_eq(m, shared_frees_count(sh));
    check_cover_kinds(r, N, e, m, 0);

    /* take below generation 100 */
    uint64_t before = shared_frees_bytes(sh);
    struct taken t = {0, 0};
    size_t n = shared_frees_take(sh, 100, take_cb, &t);
    ck_assert_uint_eq(n, t.n);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(t.bytes + shared_frees_bytes(sh), before);
    ck_assert_uint_eq(shared_frees_take(sh, 100, take_cb, &t), 0); /* none below left */
    m = read_table(sh, e, MAXGEN);
    for (size_t i = 0; i < m; i++)
        ck_assert_uint_ge(e[i].gen, 100);
    check_cover_kinds(r, N, e, m, 100);
    t = (struct taken){0, 0};
    ck_assert_uint_eq(shared_frees_take(sh, UINT64_MAX, take_cb, &t), m);
    ck_assert_uint_eq(shared_frees_count(sh), 0);
    ck_assert_uint_eq(shared_frees_bytes(sh), 0);
    shared_unlock(sh);
    free(e);
    free(r);
    shared_close(sh);
    close(fd);
    box_free(&b);
}
END_TEST

/*
 * take on a table that never overflowed reports exactly the entries below
 * the generation given, untouched.  Fails if it reports one at or above,
 * misses one below, or changes a run.
 */
START_TEST(frees_take_exact)
{
    struct box b;
    int fd;
    box_make(&b);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    struct run out[8], *p = out;
    ck_assert_int_eq(shared_lock(sh), COW_OK);
    shared_frees_add(sh, 3, 0, 10, 0);
    shared_frees_add(sh, 5, 100, 10, 0);
    shared_frees_add(sh, 4, 200, 30, 1);
    shared_frees_add(sh, 9, 300, 0, 0); /* nothing */
    ck_assert_uint_eq(shared_frees_count(sh), 3);
    ck_assert_uint_eq(shared_frees_bytes(sh), 50);
    ck_assert_uint_eq(shared_frees_take(sh, 5, collect_cb, &p), 2);
    ck_assert_int_eq(p - out, 2);
    ck_assert_uint_eq(out[0].start, 0);
    ck_assert_uint_eq(out[0].len, 10);
    ck_assert_uint_eq(out[1].start, 200);
    ck_assert_uint_eq(out[1].len, 30);
    ck_assert_int_eq(out[0].phys, 0); /* each with its kind */
    ck_assert_int_eq(out[1].phys, 1);
    ck_assert_uint_eq(shared_frees_count(sh), 1);
    ck_assert_uint_eq(shared_frees_bytes(sh), 10);
    shared_unlock(sh);
    shared_close(sh);
    close(fd);
    box_free(&b);
}
END_TEST

/* The allocation journal (shared_journal_*): entries come back in order
 * from a remembered head; after the ring wrapped over it, or after an
 * invalidation (even with nothing appended since the head was taken),
 * the head no longer reads. */
struct jcount {
    uint64_t n, last_start;
    int in_order;
};

static int journal_cb(void *arg, uint64_t gen, unsigned op, uint64_t start, uint64_t len)
{
    struct jcount *c = arg;
    c->in_order &= c->n == 0 || start == c->last_start + 1;
    c->in_order &= gen == start / 10 && op == SHARED_JOP_ALLOC && len == 4096;
    c->last_start = start;
    c->n++;
    return 0;
}

START_TEST(journal_reads_back)
{
    struct box b;
    int fd;
    box_make(&b);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    ck_assert_int_eq(shared_lock(sh), COW_OK);
    uint64_t h0 = shared_journal_head(sh);
    for (uint64_t i = 0; i < 100; i++)
        shared_journal_append(sh, i / 10, SHARED_JOP_ALLOC, i, 4096);
    struct jcount c = {0, 0, 1};
    ck_assert_int_eq(shared_journal_read(sh, h0, journal_cb, &c), 0);
    ck_assert_uint_eq(c.n, 100);
    ck_assert(c.in_order);
    /* an invalidation with nothing appended since a head was taken */
    uint64_t h1 = shared_journal_head(sh);
    shared_journal_invalidate(sh);
    c = (struct jcount){0, 0, 1};
    ck_assert_int_eq(shared_journal_read(sh, h1, journal_cb, &c), 1);
    ck_assert_int_eq(shared_journal_read(sh, h0, journal_cb, &c), 1);
    ck_assert_uint_eq(c.n, 0);
    uint64_t h2 = shared_journal_head(sh);
    ck_assert_int_eq(shared_journal_read(sh, h2, journal_cb, &c), 0);
    /* the ring wraps over a head: it no longer reads */
    for (uint64_t i = 0; i < SHARED_JOURNAL_MAX; i++)
        shared_journal_append(sh, i / 10, SHARED_JOP_ALLOC, i, 4096);
    ck_assert_int_eq(shared_journal_read(sh, h2, journal_cb, &c), 0); /* just fits */
    shared_journal_append(sh, 0, SHARED_JOP_ALLOC, 0, 4096);
    c = (struct jcount){0, 0, 1};
    ck_assert_int_eq(shared_journal_read(sh, h2, journal_cb, &c), 1);
    ck_assert_uint_eq(c.n, 0);
    shared_unlock(sh);
    shared_close(sh);
    close(fd);
    box_free(&b);
}
END_TEST

/* ---- the open/close race ---- */

/* Shared by the race's workers (an anonymous shared mapping). */
struct race_truth {
    pthread_mutex_t mu; /* process-shared */
    int inside;         /* workers between shared_open and shared_close */
    uint64_t id;        /* the generation the workers inside published */
    uint64_t next_id;
    int bad;            /* a worker mapped another object than those inside */
    int unlinked;       /* a worker, inside, mapped an object whose name was
                         * unlinked (atomic) */
    uint64_t opens;
};

/* 1 if this process maps the object named NAME ("/cowvfs-...") after its
 * name was unlinked: /proc/self/maps marks such a mapping "(deleted)". */
static int maps_deleted(const char *name)
{
    char line[1024];
    int found = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, name) && strstr(line, "(deleted)"))
            found = 1;
    fclose(f);
    return found;
}

static int race_worker(struct box *b, struct race_truth *tr, unsigned seed, double seconds, int ro)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t rs = seed * 0x9e3779b97f4a7c15ull + 1;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
            return 0;
        int fd = open(b->path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        struct cow_shared *sh;
        if (fd < 0)
            return 20;
        int rc = shared_open(fd, uuid_a, &sh);
        if (rc != COW_OK) {
            fprintf(stderr, "race: shared_open: %s\n", cow_store_last_error(NULL));
            return 21;
        }
        /* the first inside names the object with a fresh generation; every
         * later one must find that name in the object it mapped */
        pthread_mutex_lock(&tr->mu);
        if (tr->inside == 0) {
            tr->id = ++tr->next_id;
            shared_publish(sh, tr->id);
        } else if (shared_generation(sh) != tr->id) {
            tr->bad++;
        }
        tr->inside++;
        tr->opens++;
        pthread_mutex_unlock(&tr->mu);
        if (maps_deleted(b->shm))
            __atomic_add_fetch(&tr->unlinked, 1, __ATOMIC_SEQ_CST);
        for (unsigned i = test_rand(&rs) % 4; i > 0; i--) {
            rc = shared_lock(sh);
            if (rc != COW_OK)
                return 22;
            shared_frees_add(sh, 1, test_rand(&rs) % (1 << 20), 4096, 0);
            shared_unlock(sh);
        }
        if (maps_deleted(b->shm))
            __atomic_add_fetch(&tr->unlinked, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&tr->mu);
        if (shared_generation(sh) != tr->id)
            tr->bad++;
        tr->inside--;
        pthread_mutex_unlock(&tr->mu);
        shared_close(sh);
        close(fd);
        /* out a while, so that all are out often: each close may be last */
        usleep((unsigned)(test_rand(&rs) % 400));
    }
}

/* Runs NW workers, the first NRO of them with read-only descriptors, for
 * SECONDS, and fails on what they saw. */
static void run_race(struct box *b, int nw, int nro, double seconds)
{
    pid_t pid[16];
    struct race_truth *tr = mmap(NULL, sizeof *tr, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(tr, MAP_FAILED);
    memset(tr, 0, sizeof *tr);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&tr->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    unsigned seed = (unsigned)test_seed();
    for (int i = 0; i < nw; i++) {
        pid[i] = fork();
        ck_assert_int_ge(pid[i], 0);
        if (pid[i] == 0)
            _exit(race_worker(b, tr, seed + (unsigned)i, seconds, i < nro));
    }
    for (int i = 0; i < nw; i++) {
        int status;
        ck_assert_int_eq(waitpid(pid[i], &status, 0), pid[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d: status %d", i,
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    ck_assert_msg(tr->unlinked == 0, "%d times a process ran on an unlinked object (%llu opens)",
                  tr->unlinked, (unsigned long long)tr->opens);
    ck_assert_msg(tr->bad == 0, "%d times a process ran on another object (%llu opens)", tr->bad,
                  (unsigned long long)tr->opens);
    ck_assert_uint_gt(tr->next_id, 10); /* the workers were all out many times */
    munmap(tr, sizeof *tr);
}

/*
 * Eight processes open and close the state in loops (and lock, add frees,
 * unlock while they have it open), so that closers find themselves last and
 * unlink while others open.  No process may ever run on an object whose
 * name was unlinked, or on another object than the processes it overlaps
 * with: each checks, after open and before close, that its mapping is not
 * "(deleted)" in /proc/self/maps and that the object holds the generation
 * that the first process inside published.  At the end the object is
 * gone.  Fails if an opener can keep an object that a last closer unlinked
 * (make attach()'s name check always pass and it does, within seconds),
 * or if two closing together leave the object behind.
 */
START_TEST(open_close_race)
{
    struct box b;
    box_make(&b);
    run_race(&b, 8, 0, 4.0);
    ck_assert(!shm_exists(b.shm));
    box_free(&b);
}
END_TEST

/*
 * The same with three of the eight read-only: they build the state when
 * they find none (ro_init) and never unlink, so at the end the object may
 * be left; a read-write process alone then reinitialises and unlinks it.
 * Fails if a read-only process builds a state under processes using it or
 * joins another object than theirs.
 */
START_TEST(open_close_race_read_only)
{
    struct box b;
    int fd;
    box_make(&b);
    run_race(&b, 8, 3, 3.0);
    struct cow_shared *sh = parent_open(&b, uuid_a, &fd);
    ck_assert_uint_eq(shared_nprocs(sh), 1);
    shared_close(sh);
    close(fd);
    ck_assert(!shm_exists(b.shm));
    box_free(&b);
}
END_TEST

Suite *shared_suite(void)
{
    Suite *s = suite_create("shared");
    test_case(s, "processes", 60, two_processes_share, mutex_holder_killed, ownership_handover,
              owner_killed, reader_table, stale_region, read_only_processes, NULL);
    test_case(s, "frees", 120, frees_overflow, frees_take_exact, journal_reads_back, NULL);
    test_case(s, "race", 120, open_close_race, open_close_race_read_only, NULL);
    return s;
}
