/*
 * shared.c - the store's state shared across processes (shared.h says what
 * and why; store/lockspace.h the bytes locked and the object's name).
 *
 * The object's life, as SQLite's os_unix.c lives with a -shm file
 * (unixOpenSharedMemory, unixLockSharedMemory, unixShmPurge):
 *
 *   open:  shm_open(O_CREAT); try the dead-man switch (DMS) write-locked.
 *          Got it: nobody else maps the object, so truncate it and build a
 *          fresh state, then downgrade to a read lock.  Else wait for a read
 *          lock (an initialiser or an unlinker holds the write lock for
 *          microseconds).  Holding the DMS, check that the name still
 *          refers to the object opened (same st_dev/st_ino): a closer that
 *          was last may have unlinked it in between; then start again.
 *   close: release the DMS, then try it write-locked without waiting; got
 *          it: nobody maps the object (every user holds the DMS), so unlink
 *          the name.  Releasing before trying means two processes closing
 *          at once cannot both fail and leave the object behind.
 *
 * Since the name is unlinked only under the DMS write lock, and every user
 * checks the name under a DMS lock it keeps, no user ever runs on an
 * unlinked object.  A process whose container descriptor is read-only
 * takes read locks only (ro_init, take_slot say how it manages).
 *
 * The owner word, the publication and the want bits are lock-free (one
 * atomic operation each); the mutex serialises the slots' set-up and
 * clearing (so that a sweeper never clears a slot a newcomer just took)
 * and the pending frees, and is the caller's for its own state.
 *
 * Waiting (shared_own, shared_wait_published) sleeps on a futex word,
 * EVENT, that every disown and publication bumps, with 10 ms timeouts to
 * check the owner's slot lock.  Not a process-shared condition variable: a
 * process killed inside pthread_cond_wait leaves glibc's condition
 * variable counting a waiter that never returns (a signal may go to it);
 * a futex word keeps no waiter state to corrupt.
 */
#include "shared.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lockspace.h"
#include "store_int.h"

#define SHARED_MAGIC 0x3144524853574f43ull /* "COWSHRD1", little-endian */
#define SHARED_VERSION 6u
#define WAIT_SLICE_MS 10u /* longest futex sleep between liveness checks */
#define NWANT (COW_SHARED_SLOTS / 64)

/* The owner word: who owns, whether the last owner died owning, and an
 * epoch bumped at every change (so a compare-and-swap from "slot i, dead"
 * cannot succeed after slot i was reused and became owner again). */
#define OWNER_SLOT_MASK 0xffffull /* slot + 1 of the owner; 0: no owner */
#define OWNER_RECOVER (1ull << 16) /* no owner; the last one died owning */
#define OWNER_EPOCH(w) ((w) >> 32)
#define OWNER_NEXT(w) ((OWNER_EPOCH(w) + 1) << 32)

struct shared_free {
    uint64_t gen;   /* the generation that freed the run */
    uint64_t start; /* bytes of the container */
    uint64_t len;
    uint32_t phys;  /* 1: physical bytes (a relocated extent's new place);
                     * 0: logical addresses */
    uint32_t unused;
};

/* One entry of the allocation journal (shared_journal_*). */
struct shared_jop {
    uint64_t gen;
    uint64_t start; /* bytes */
    uint64_t len;   /* bytes */
    uint32_t op;    /* SHARED_JOP_* */
    uint32_t pad;
};

/* One process slot.  PID is written under the mutex (by the slot's process
 * at open and close, by a sweeper clearing a dead process's slot); GEN by
 * the slot's process alone while it lives (atomic), cleared under the
 * mutex by a sweeper once it died. */
struct shared_slot {
    int32_t pid; /* 0: free */
    uint32_t writing; /* atomic: writes in place without owning under way
                       * in the slot's process (shared_inplace_begin);
                       * cleared by shared_barrier_raise once it is dead */
    uint64_t gen; /* pinned generation, 0: none */
};

/*
 * The shared-memory object's layout.  Fields marked "atomic" are read and
 * written with __atomic builtins and need no lock; the others are
 * protected by MUTEX.
 */
struct shared_region {
    uint64_t magic;   /* SHARED_MAGIC, written last at initialisation */
    uint32_t version; /* SHARED_VERSION */
    uint32_t size;    /* sizeof(struct shared_region) */
    uint8_t uuid[16]; /* the container's */
    pthread_mutex_t mutex; /* robust, process-shared */
    uint64_t owner;        /* atomic: the owner word (OWNER_*) */
    uint32_t event;        /* atomic: futex word, bumped by disown/publish */
    uint32_t nprocs;       /* atomic: slots with a pid (dead ones until a
                            * sweep clears them): shared_nprocs_hint */
    uint32_t want_event;   /* atomic: futex word, bumped when a want bit is raised */
    uint32_t unpublished;  /* atomic: the owner has unpublished changes */
    uint32_t pad0;
    uint64_t seq;          /* atomic: publication sequence number */
    uint64_t generation;   /* atomic: generation last published */
    uint32_t barrier;      /* atomic: the owner's operations under way
                            * that forbid writes in place by the others
                            * (shared_barrier_raise) */
    uint32_t pad1;
    uint64_t barrier_epoch; /* atomic: bumped when one of them ends */
    uint64_t inplace_seq;  /* atomic: writes in place by non-owners */
    uint64_t durable_gen;  /* atomic: the newest generation an owner made
                            * durable (a flush it waited for) */
    uint64_t want[NWANT];  /* atomic: bit i: slot i waits to own or for a
                            * publication */
    uint64_t want_own[NWANT]; /* atomic: bit i: slot i waits to own (its
                               * WANT bit is raised too) */
    struct shared_slot slots[COW_SHARED_SLOTS];
    /* pending frees: FREES[FREES_CUR] holds FREES_COUNT[FREES_CUR] entries;
     * the other table is scratch for building a replacement */
    uint32_t frees_cur; /* atomic (release) */
    uint32_t pad;
    uint64_t frees_count[2];
    struct shared_free frees[2][SHARED_FREES_MAX];
    /* the allocation journal: entry i (jvalid <= i < jhead, at most
     * SHARED_JOURNAL_MAX back) is at journal[i % SHARED_JOURNAL_MAX] */
    uint64_t jhead;  /* atomic (release): entries ever appended */
    uint64_t jvalid; /* entries before this one say nothing (mutex) */
    struct shared_jop journal[SHARED_JOURNAL_MAX];
};

struct cow_shared {
    int fd;                  /* the container (the caller's) */
    int shm_fd;              /* the object, -1 when not open */
    unsigned slot;           /* this process's slot */
    int ro;                  /* FD is open read-only: it takes read locks only */
    struct shared_region *r; /* the mapping */
    char name[64];           /* "/cowvfs-DEV-INO" */
    const void *holder;      /* COW_DEBUG: the thread holding the mutex */
    /* the watcher thread (shared_watch): */
    pthread_t watcher;
    int watching;            /* the thread runs (joined by shared_unwatch) */
    int watch_stop;          /* atomic: the thread returns at its next wake */
    void (*watch_cb)(void *);
    void *watch_arg;
};

#ifdef COW_DEBUG
static __thread char tl_me; /* a thread's identity: its address */
#endif

#define SHARED_AGAIN 1 /* attach(): start again */

/* ---- locks on the container's bytes ---- */

/* Sets a lock of TYPE (F_RDLCK, F_WRLCK, F_UNLCK) on the byte OFF of FD's
 * open file description; WAIT blocks until granted.  0 or an errno. */
static int ofd_lock(int fd, short type, uint64_t off, int wait)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = (off_t)off, .l_len = 1};
    for (;;) {
        if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}

/* 1 if slot I's byte is write-locked by a live process (or if that cannot be
 * told: a failed F_OFD_GETLK counts as alive, the safe side), else 0.  This
 * process's own slot is alive. */
static int slot_alive(struct cow_shared *sh, unsigned i)
{
    if (i == sh->slot)
        return 1;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                       .l_start = (off_t)COW_LOCK_SLOT(i), .l_len = 1};
    if (fcntl(sh->fd, F_OFD_GETLK, &fl) != 0)
        return 1;
    return fl.l_type != F_UNLCK;
}

/* ---- waiting ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Bumps EVENT and wakes every process sleeping on it. */
static void event_wake(struct shared_region *r)
{
    __atomic_add_fetch(&r->event, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &r->event, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Sleeps until the futex word WORD differs from SEEN, a wake, or MS
 * milliseconds. */
static void futex_wait_ms(uint32_t *word, uint32_t seen, unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void event_wait(struct shared_region *r, uint32_t seen, unsigned ms)
{
    futex_wait_ms(&r->event, seen, ms);
}

/* Raises this process's want bit (and with OWN its want-to-own bit, first);
 * when it was down, wakes an owner waiting in shared_wait_wanted and the
 * owner's watcher. */
static void want_set(struct cow_shared *sh, int own)
{
    struct shared_region *r = sh->r;
    uint64_t bit = 1ull << (sh->slot % 64);
    if (own)
        __atomic_fetch_or(&r->want_own[sh->slot / 64], bit, __ATOMIC_SEQ_CST);
    if (__atomic_fetch_or(&r->want[sh->slot / 64], bit, __ATOMIC_SEQ_CST) & bit)
        return;
    __atomic_add_fetch(&r->want_event, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &r->want_event, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void want_clear(struct shared_region *r, unsigned i)
{
    __atomic_fetch_and(&r->want[i / 64], ~(1ull << (i % 64)), __ATOMIC_SEQ_CST);
    __atomic_fetch_and(&r->want_own[i / 64], ~(1ull << (i % 64)), __ATOMIC_SEQ_CST);
}

/* ---- the mutex ---- */

/* Locks the mutex; COW_OK, COW_ERECOVER (made consistent) or COW_EIO_LOCK. */
static int mutex_lock(struct cow_shared *sh)
{
    int e = pthread_mutex_lock(&sh->r->mutex);
    int rc = COW_OK;
    if (e == EOWNERDEAD) {
        pthread_mutex_consistent(&sh->r->mutex);
        rc = COW_ERECOVER;
    } else if (e != 0) {
        return cow_set_error(COW_EIO_LOCK, "locking the shared state %s: %s", sh->name,
                             strerror(e));
    }
#ifdef COW_DEBUG
    __atomic_store_n(&sh->holder, (const void *)&tl_me, __ATOMIC_RELAXED);
#endif
    return rc;
}

/* 1 if mutex_lock's RC means the mutex is held. */
static int locked(int rc)
{
    return rc == COW_OK || rc == COW_ERECOVER;
}

static void mutex_unlock(struct cow_shared *sh)
{
#ifdef COW_DEBUG
    __atomic_store_n(&sh->holder, NULL, __ATOMIC_RELAXED);
#endif
    pthread_mutex_unlock(&sh->r->mutex);
}

/* In debug builds, asserts that the calling thread holds the mutex. */
static void assert_locked(struct cow_shared *sh)
{
#ifdef COW_DEBUG
    assert(__atomic_load_n(&sh->holder, __ATOMIC_RELAXED) == (const void *)&tl_me);
#else
    (void)sh;
#endif
}

int shared_lock(struct cow_shared *sh)
{
    return mutex_lock(sh);
}

void shared_unlock(struct cow_shared *sh)
{
    mutex_unlock(sh);
}

/* ---- slots ---- */

/* Clears slot I, whose process is dead (or which this process is taking
 * over).  If its process owned, the owner word becomes "no owner, the last
 * died owning" and waiters are woken.  The mutex is held. */
static void slot_clear(struct cow_shared *sh, unsigned i)
{
    struct shared_region *r = sh->r;
    want_clear(r, i);
    __atomic_store_n(&r->slots[i].gen, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&r->slots[i].writing, 0, __ATOMIC_SEQ_CST);
    if (__atomic_exchange_n(&r->slots[i].pid, 0, __ATOMIC_SEQ_CST) != 0)
        __atomic_sub_fetch(&r->nprocs, 1, __ATOMIC_SEQ_CST);
    uint64_t w = __atomic_load_n(&r->owner, __ATOMIC_SEQ_CST);
    while ((w & OWNER_SLOT_MASK) == i + 1) {
        if (__atomic_compare_exchange_n(&r->owner, &w, OWNER_NEXT(w) | OWNER_RECOVER, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            event_wake(r);
            break;
        }
    }
}

/* Clears the slots of dead processes (LMDB's mdb_reader_check, with the
 * kernel's locks for liveness).  The mutex is held. */
static void sweep(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    uint64_t owner_slot = __atomic_load_n(&r->owner, __ATOMIC_SEQ_CST) & OWNER_SLOT_MASK;
    for (unsigned i = 0; i < COW_SHARED_SLOTS; i++) {
        if (i == sh->slot)
            continue;
        int used = r->slots[i].pid != 0 || __atomic_load_n(&r->slots[i].gen, __ATOMIC_SEQ_CST) ||
                   (__atomic_load_n(&r->want[i / 64], __ATOMIC_SEQ_CST) >> (i % 64) & 1) ||
                   owner_slot == i + 1;
        if (used && !slot_alive(sh, i))
            slot_clear(sh, i);
    }
}

/* Takes the first slot whose byte this process can lock, and makes it
 * this process's.  A read-write descriptor write-locks the byte (the first
 * that is free wins, no mutex needed).  A read-only one can only read-lock
 * it, which does not exclude another reader: it claims under the mutex a
 * byte that F_OFD_GETLK shows nobody locks (a writer's claim meanwhile
 * makes its read lock fail; other read-only claimers wait for the mutex).
 * COW_OK, COW_EBUSY (none free), COW_EIO_LOCK. */
static int take_slot(struct cow_shared *sh)
{
    unsigned i;
    int e = 0, rc;

    if (sh->ro) {
        rc = mutex_lock(sh);
        if (!locked(rc))
            return rc;
    }
    for (i = 0; i < COW_SHARED_SLOTS; i++) {
        if (sh->ro && slot_alive(sh, i))
            continue;
        e = ofd_lock(sh->fd, sh->ro ? F_RDLCK : F_WRLCK, COW_LOCK_SLOT(i), 0);
        if (e == 0)
            break;
        if (e != EAGAIN && e != EACCES) {
            rc = cow_set_error(COW_EIO_LOCK, "locking process slot %u of %s: %s", i, sh->name,
                               strerror(e));
            goto out;
        }
    }
    if (i == COW_SHARED_SLOTS) {
        rc = cow_set_error(COW_EBUSY, "%u processes have the container open (%s): no slot left",
                           COW_SHARED_SLOTS, sh->name);
        goto out;
    }
    if (!sh->ro) { /* the slot is ours: now the mutex, to set it up */
        rc = mutex_lock(sh);
        if (!locked(rc)) {
            ofd_lock(sh->fd, F_UNLCK, COW_LOCK_SLOT(i), 0);
            return rc;
        }
    }
    sh->slot = i;
    slot_clear(sh, i); /* a dead process's leftovers (its lock is gone) */
    __atomic_store_n(&sh->r->slots[i].pid, (int32_t)getpid(), __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&sh->r->nprocs, 1, __ATOMIC_SEQ_CST);
    sweep(sh);
    mutex_unlock(sh);
    return COW_OK;
out:
    if (sh->ro)
        mutex_unlock(sh);
    return rc;
}

/* ---- open and close ---- */

/* Undoes what attach() did so far: the mapping, the DMS lock, the object. */
static void detach(struct cow_shared *sh)
{
    if (sh->r) {
        munmap(sh->r, sizeof *sh->r);
        sh->r = NULL;
    }
    ofd_lock(sh->fd, F_UNLCK, COW_LOCK_STORE_DMS, 0);
    if (sh->shm_fd >= 0) {
        close(sh->shm_fd);
        sh->shm_fd = -1;
    }
}

/* Builds a fresh state in the mapped object.  The DMS is write-locked. */
static int init_region(struct cow_shared *sh, const uint8_t uuid[16])
{
    struct shared_region *r = sh->r;
    pthread_mutexattr_t ma;
    int e;

    memset(r, 0, offsetof(struct shared_region, frees)); /* the frees are zero, or unused */
    r->version = SHARED_VERSION;
    r->size = (uint32_t)sizeof *r;
    memcpy(r->uuid, uuid, 16);
    r->seq = 1;
    e = pthread_mutexattr_init(&ma);
    if (e == 0) {
        e = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
        if (e == 0)
            e = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
        if (e == 0)
            e = pthread_mutex_init(&r->mutex, &ma);
        pthread_mutexattr_destroy(&ma);
    }
    if (e != 0)
        return cow_set_error(COW_EIO_LOCK, "initialising the mutex of %s: %s", sh->name,
                             strerror(e));
    __atomic_store_n(&r->magic, SHARED_MAGIC, __ATOMIC_RELEASE);
    return COW_OK;
}

/* 1 if R holds a state of this layout (its magic written last). */
static int region_valid(const struct shared_region *r)
{
    return __atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) == SHARED_MAGIC &&
           r->version == SHARED_VERSION && r->size == sizeof *r;
}

/*
 * A process whose descriptor is read-only cannot write-lock the DMS, so it
 * never finds itself first.  When it finds no valid state of this
 * container under the name (it holds the DMS read-locked), it builds one
 * if F_OFD_GETLK shows that no other process holds the DMS (then nobody
 * uses the object: users hold the DMS), with an flock on the object to
 * keep two such processes from building it at once; the second finds it
 * built.  The object is resized only when its size is wrong: a process
 * maps it only once its size is right, then finds the magic not yet set.
 * COW_OK (mapped), SHARED_AGAIN (others hold the DMS: they may be building
 * it, or use a state this process cannot), or an error; the caller undoes.
 */
static int ro_init(struct cow_shared *sh, const uint8_t uuid[16], const char **why)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                       .l_start = (off_t)COW_LOCK_STORE_DMS, .l_len = 1};
    struct stat a;
    int rc = COW_OK;

    while (flock(sh->shm_fd, LOCK_EX) != 0)
        if (errno != EINTR)
            return cow_set_error(COW_EIO_LOCK, "flock of %s: %s", sh->name, strerror(errno));
    if (fcntl(sh->fd, F_OFD_GETLK, &fl) != 0) {
        rc = cow_set_error(COW_EIO_LOCK, "testing the dead-man switch of %s: %s", sh->name,
                           strerror(errno));
        goto out;
    }
    if (fl.l_type != F_UNLCK) {
        *why = "it belongs to another container or cowvfs version, and a live process holds it";
        rc = SHARED_AGAIN;
        goto out;
    }
    if (fstat(sh->shm_fd, &a) != 0 ||
        ((uint64_t)a.st_size != sizeof *sh->r && ftruncate(sh->shm_fd, (off_t)sizeof *sh->r) != 0)) {
        rc = cow_set_error(COW_EIO_LOCK, "sizing %s: %s", sh->name, strerror(errno));
        goto out;
    }
    sh->r = mmap(NULL, sizeof *sh->r, PROT_READ | PROT_WRITE, MAP_SHARED, sh->shm_fd, 0);
    if (sh->r == MAP_FAILED) {
        sh->r = NULL;
        rc = cow_set_error(errno == ENOMEM ? COW_ENOMEM : COW_EIO_LOCK, "mmap of %s: %s",
                           sh->name, strerror(errno));
        goto out;
    }
    if (!region_valid(sh->r) || memcmp(sh->r->uuid, uuid, 16) != 0) {
        __atomic_store_n(&sh->r->magic, 0, __ATOMIC_RELEASE);
        rc = init_region(sh, uuid);
    }
out:
    flock(sh->shm_fd, LOCK_UN);
    return rc;
}

/*
 * One attempt at mapping the object.  COW_OK (mapped, DMS read-locked),
 * SHARED_AGAIN (the name was replaced, or the object is not a valid state
 * yet: *WHY says which; everything undone), or an error (undone).
 */
static int attach(struct cow_shared *sh, mode_t mode, const uint8_t uuid[16], const char **why)
{
    struct stat a, b;
    int rc, e, first, chk, same;

    sh->shm_fd = shm_open(sh->name, O_RDWR | O_CREAT | O_CLOEXEC, mode & 0666);
    if (sh->shm_fd < 0)
        return cow_set_error(COW_EIO_LOCK, "shm_open %s: %s", sh->name, strerror(errno));
    e = ofd_lock(sh->fd, F_WRLCK, COW_LOCK_STORE_DMS, 0);
    first = e == 0;
    if (e == EBADF)
        sh->ro = 1; /* a read-only descriptor: read locks only */
    if (!first && (e == EAGAIN || e == EACCES || e == EBADF))
        e = ofd_lock(sh->fd, F_RDLCK, COW_LOCK_STORE_DMS, 1);
    if (e != 0) {
        rc = cow_set_error(COW_EIO_LOCK, "locking the dead-man switch of %s: %s", sh->name,
                           strerror(e));
        goto fail;
    }
    /* Holding the DMS: is the name still this object?  (A last closer may
     * have unlinked it, and an opener made another, since our shm_open.) */
    chk = shm_open(sh->name, O_RDWR | O_CLOEXEC, 0);
    if (chk < 0 && errno != ENOENT) {
        rc = cow_set_error(COW_EIO_LOCK, "shm_open %s: %s", sh->name, strerror(errno));
        goto fail;
    }
    same = chk >= 0 && fstat(chk, &b) == 0 && fstat(sh->shm_fd, &a) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
    if (chk >= 0)
        close(chk);
    if (!same) {
        *why = "its name kept being unlinked and made again";
        rc = SHARED_AGAIN;
        goto fail;
    }

    if (first) {
        /* Alone: whatever the object holds is stale (SQLite's
         * unixLockSharedMemory truncates the -shm file likewise). */
        if (ftruncate(sh->shm_fd, 0) != 0 || ftruncate(sh->shm_fd, (off_t)sizeof *sh->r) != 0) {
            rc = cow_set_error(COW_EIO_LOCK, "sizing %s: %s", sh->name, strerror(errno));
            goto fail;
        }
        (void)fchmod(sh->shm_fd, mode & 0666); /* as the container; the umask aside */
    } else if (fstat(sh->shm_fd, &a) != 0 || (uint64_t)a.st_size != sizeof *sh->r) {
        if (sh->ro) {
            rc = ro_init(sh, uuid, why);
            if (rc != COW_OK)
                goto fail;
            return COW_OK;
        }
        *why = "it has the size of another layout (another cowvfs version?)";
        rc = SHARED_AGAIN;
        goto fail;
    }
    sh->r = mmap(NULL, sizeof *sh->r, PROT_READ | PROT_WRITE, MAP_SHARED, sh->shm_fd, 0);
    if (sh->r == MAP_FAILED) {
        sh->r = NULL;
        rc = cow_set_error(errno == ENOMEM ? COW_ENOMEM : COW_EIO_LOCK, "mmap of %s: %s",
                           sh->name, strerror(errno));
        goto fail;
    }
    if (first) {
        rc = init_region(sh, uuid);
        if (rc != COW_OK)
            goto fail;
        e = ofd_lock(sh->fd, F_RDLCK, COW_LOCK_STORE_DMS, 0); /* downgrade, atomically */
        if (e != 0) {
            rc = cow_set_error(COW_EIO_LOCK, "read-locking the dead-man switch of %s: %s",
                               sh->name, strerror(e));
            goto fail;
        }
        return COW_OK;
    }
    if (sh->ro && (!region_valid(sh->r) || memcmp(sh->r->uuid, uuid, 16) != 0)) {
        munmap(sh->r, sizeof *sh->r);
        sh->r = NULL;
        rc = ro_init(sh, uuid, why);
        if (rc != COW_OK)
            goto fail;
        return COW_OK;
    }
    if (!region_valid(sh->r)) {
        *why = "it is not a valid state of this version (another cowvfs version?)";
        rc = SHARED_AGAIN;
        goto fail;
    }
    if (memcmp(sh->r->uuid, uuid, 16) != 0) {
        rc = cow_set_error(COW_EBUSY,
                           "the shared state %s belongs to another container (other uuid) that "
                           "processes still have open: was the container replaced while open?",
                           sh->name);
        goto fail;
    }
    return COW_OK;
fail:
    detach(sh);
    return rc;
}

int shared_open(int fd, const uint8_t uuid[16], struct cow_shared **out)
{
    struct cow_shared *sh;
    struct stat st;
    const char *why = "";
    int rc;

    *out = NULL;
    if (fstat(fd, &st) != 0)
        return cow_set_error(COW_EIO_STAT, "fstat of the container: %s", strerror(errno));
    sh = calloc(1, sizeof *sh);
    if (!sh)
        return cow_set_error(COW_ENOMEM, "out of memory");
    sh->fd = fd;
    sh->shm_fd = -1;
    sh->slot = COW_SHARED_SLOTS;
    snprintf(sh->name, sizeof sh->name, COW_SHM_PREFIX "%llx-%llx", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    /* Start again while the name is being replaced or the object being
     * made (a process that lost the race for "first" may hold a stale
     * object's DMS for an instant): up to about a second. */
    for (int attempt = 0;; attempt++) {
        rc = attach(sh, st.st_mode, uuid, &why);
        if (rc != SHARED_AGAIN)
            break;
        if (attempt == 1000) {
            rc = cow_set_error(COW_EBUSY, "cannot map the shared state %s: %s", sh->name, why);
            break;
        }
        if (attempt >= 10) /* jittered: two read-only openers must not meet each time */
            usleep(500 + ((unsigned)getpid() * 7919u + (unsigned)attempt * 104729u) % 1000);
    }
    if (rc == COW_OK) {
        rc = take_slot(sh);
        if (rc != COW_OK)
            detach(sh);
    }
    if (rc != COW_OK) {
        free(sh);
        return rc;
    }
    *out = sh;
    return COW_OK;
}

void shared_close(struct cow_shared *sh)
{
    if (!sh)
        return;
    shared_unwatch(sh);
    shared_disown(sh);
    if (locked(mutex_lock(sh))) {
        want_clear(sh->r, sh->slot);
        __atomic_store_n(&sh->r->slots[sh->slot].gen, 0, __ATOMIC_SEQ_CST);
        if (__atomic_exchange_n(&sh->r->slots[sh->slot].pid, 0, __ATOMIC_SEQ_CST) != 0)
            __atomic_sub_fetch(&sh->r->nprocs, 1, __ATOMIC_SEQ_CST);
        mutex_unlock(sh);
    } /* else the slot is cleared by the next sweep, as a dead one */
    ofd_lock(sh->fd, F_UNLCK, COW_LOCK_SLOT(sh->slot), 0);
    detach(sh); /* unmaps, releases the DMS */
    /* Last?  Only if nobody holds the DMS now.  Under its write lock no
     * process runs on the object, and an opener that opened it already
     * finds the name gone once it gets the DMS, and starts again. */
    if (ofd_lock(sh->fd, F_WRLCK, COW_LOCK_STORE_DMS, 0) == 0) {
        shm_unlink(sh->name);
        ofd_lock(sh->fd, F_UNLCK, COW_LOCK_STORE_DMS, 0);
    }
    free(sh);
}

unsigned shared_slot(struct cow_shared *sh)
{
    return sh->slot;
}

/* ---- ownership ---- */

int shared_is_owner(struct cow_shared *sh)
{
    return (__atomic_load_n(&sh->r->owner, __ATOMIC_SEQ_CST) & OWNER_SLOT_MASK) == sh->slot + 1;
}

/* One slice of a timed wait that began at START (ms): sleeps on the event
 * word (EV: its value when the waiter last looked) for at most
 * WAIT_SLICE_MS, or what is left of TIMEOUT_MS.  0 if the time is up
 * (nothing slept). */
static int wait_slice(struct shared_region *r, uint32_t ev, uint64_t start, unsigned timeout_ms)
{
    uint64_t waited = now_ms() - start;
    if (waited >= timeout_ms)
        return 0;
    uint64_t left = timeout_ms - waited;
    event_wait(r, ev, left < WAIT_SLICE_MS ? (unsigned)left : WAIT_SLICE_MS);
    return 1;
}

int shared_own(struct cow_shared *sh, unsigned timeout_ms)
{
    struct shared_region *r = sh->r;
    uint64_t start = now_ms();
    int rc = COW_EBUSY;

    if (shared_is_owner(sh))
        return COW_OK;
    for (;;) {
        want_set(sh, 1); /* again each time: a sweeper may have cleared it */
        uint32_t ev = __atomic_load_n(&r->event, __ATOMIC_SEQ_CST);
        uint64_t w = __atomic_load_n(&r->owner, __ATOMIC_SEQ_CST);
        uint64_t s = w & OWNER_SLOT_MASK;
        if (s == sh->slot + 1) {
            rc = COW_OK;
            break;
        }
        if (s == 0 || !slot_alive(sh, (unsigned)s - 1)) {
            if (!__atomic_compare_exchange_n(&r->owner, &w, OWNER_NEXT(w) | (sh->slot + 1), 0,
                                             __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                continue;
            __atomic_store_n(&r->unpublished, 0, __ATOMIC_SEQ_CST);
            rc = (s != 0 || (w & OWNER_RECOVER)) ? COW_ERECOVER : COW_OK;
            if (s != 0 && locked(mutex_lock(sh))) { /* clear the dead owner's slot */
                sweep(sh);
                mutex_unlock(sh);
            }
            break;
        }
        if (!wait_slice(r, ev, start, timeout_ms))
            break;
    }
    want_clear(r, sh->slot);
    if (rc == COW_EBUSY)
        cow_set_error(COW_EBUSY, "another process kept the container for %u ms", timeout_ms);
    return rc;
}

void shared_disown(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    uint64_t w = __atomic_load_n(&r->owner, __ATOMIC_SEQ_CST);
    if ((w & OWNER_SLOT_MASK) != sh->slot + 1)
        return;
    /* only the owner changes a live owner's word: this cannot fail */
    __atomic_store_n(&r->owner, OWNER_NEXT(w), __ATOMIC_SEQ_CST);
    event_wake(r);
}

/* 1 if a live process other than this one has its bit raised in W (want
 * or want_own); dead waiters' bits are cleared on the way. */
static int wanted_in(struct cow_shared *sh, uint64_t *w)
{
    struct shared_region *r = sh->r;
    for (unsigned k = 0; k < NWANT; k++) {
        uint64_t m = __atomic_load_n(&w[k], __ATOMIC_SEQ_CST);
        if (k == sh->slot / 64)
            m &= ~(1ull << (sh->slot % 64));
        while (m) {
            unsigned i = k * 64 + (unsigned)__builtin_ctzll(m);
            m &= m - 1;
            if (slot_alive(sh, i))
                return 1;
            /* a dead waiter: drop its bits (a live waiter raises its own
             * again at every wake, should a new tenant of slot i have
             * raised it just now) */
            want_clear(r, i);
        }
    }
    return 0;
}

int shared_owner_wanted(struct cow_shared *sh)
{
    return wanted_in(sh, sh->r->want_own);
}

int shared_wanted(struct cow_shared *sh)
{
    return wanted_in(sh, sh->r->want);
}

int shared_unpublished(struct cow_shared *sh)
{
    return __atomic_load_n(&sh->r->unpublished, __ATOMIC_SEQ_CST) != 0;
}

int shared_wait_wanted(struct cow_shared *sh, unsigned timeout_ms)
{
    struct shared_region *r = sh->r;
    uint64_t start = now_ms();
    for (;;) {
        uint32_t ev = __atomic_load_n(&r->want_event, __ATOMIC_SEQ_CST);
        if (shared_wanted(sh))
            return 1;
        uint64_t waited = now_ms() - start;
        if (waited >= timeout_ms)
            return 0;
        futex_wait_ms(&r->want_event, ev, (unsigned)(timeout_ms - waited));
    }
}

/* The watcher thread: sleeps on the want event; at each bump (a waiter
 * raised its bit) and while a live waiter waits, calls the callback, at
 * most once per bump or per WATCH_IDLE_MS. */
#define WATCH_IDLE_MS 1000u
static void *watch_main(void *arg)
{
    struct cow_shared *sh = arg;
    struct shared_region *r = sh->r;
    while (!__atomic_load_n(&sh->watch_stop, __ATOMIC_SEQ_CST)) {
        uint32_t ev = __atomic_load_n(&r->want_event, __ATOMIC_SEQ_CST);
        if (shared_is_owner(sh) && shared_wanted(sh))
            sh->watch_cb(sh->watch_arg);
        if (__atomic_load_n(&sh->watch_stop, __ATOMIC_SEQ_CST))
            break;
        futex_wait_ms(&r->want_event, ev, WATCH_IDLE_MS);
    }
    return NULL;
}

int shared_watch(struct cow_shared *sh, void (*cb)(void *arg), void *arg)
{
    if (sh->watching)
        return COW_OK;
    sh->watch_cb = cb;
    sh->watch_arg = arg;
    __atomic_store_n(&sh->watch_stop, 0, __ATOMIC_SEQ_CST);
    int e = pthread_create(&sh->watcher, NULL, watch_main, sh);
    if (e != 0)
        return cow_set_error(COW_ENOMEM, "cannot start the shared state's watcher thread: %s",
                             strerror(e));
    sh->watching = 1;
    return COW_OK;
}

void shared_unwatch(struct cow_shared *sh)
{
    if (!sh || !sh->watching)
        return;
    __atomic_store_n(&sh->watch_stop, 1, __ATOMIC_SEQ_CST);
    /* the thread sleeps on the shared word: bump it (other processes'
     * watchers wake too, find nothing new and sleep again) */
    __atomic_add_fetch(&sh->r->want_event, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &sh->r->want_event, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    pthread_join(sh->watcher, NULL);
    sh->watching = 0;
}

/* ---- publication ---- */

void shared_publish(struct cow_shared *sh, uint64_t generation)
{
    struct shared_region *r = sh->r;
    __atomic_store_n(&r->generation, generation, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&r->seq, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&r->unpublished, 0, __ATOMIC_SEQ_CST);
    event_wake(r);
}

uint64_t shared_seq(struct cow_shared *sh)
{
    return __atomic_load_n(&sh->r->seq, __ATOMIC_SEQ_CST);
}

uint64_t shared_generation(struct cow_shared *sh)
{
    return __atomic_load_n(&sh->r->generation, __ATOMIC_SEQ_CST);
}

void shared_set_unpublished(struct cow_shared *sh)
{
    __atomic_store_n(&sh->r->unpublished, 1, __ATOMIC_SEQ_CST);
}

/* ---- writes in place by processes that do not own ---- */

int shared_inplace_begin(struct cow_shared *sh, uint64_t seen_seq, uint64_t epoch_seen)
{
    struct shared_region *r = sh->r;
    struct shared_slot *me = &r->slots[sh->slot];
    /* the flag, then the barrier: an owner raises the barrier, then looks
     * at the flags (shared_barrier_raise); with both sequentially
     * consistent, one of the two sees the other (Dekker) */
    __atomic_add_fetch(&me->writing, 1, __ATOMIC_SEQ_CST);
    int ok = __atomic_load_n(&r->barrier, __ATOMIC_SEQ_CST) == 0 &&
             __atomic_load_n(&r->unpublished, __ATOMIC_SEQ_CST) == 0;
#ifndef COW_BREAK_INPLACE_STALE /* make race-proof: any view will do */
    int fresh = __atomic_load_n(&r->barrier_epoch, __ATOMIC_SEQ_CST) == epoch_seen &&
                __atomic_load_n(&r->seq, __ATOMIC_SEQ_CST) == seen_seq;
#else
    (void)epoch_seen;
    (void)seen_seq;
    int fresh = 1;
#endif
    if (ok && fresh)
        return 1;
    __atomic_sub_fetch(&me->writing, 1, __ATOMIC_SEQ_CST);
    return ok ? -1 : 0;
}

int shared_inplace_begin_owner(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    struct shared_slot *me = &r->slots[sh->slot];
    __atomic_add_fetch(&me->writing, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->barrier, __ATOMIC_SEQ_CST) == 0)
        return 1;
    __atomic_sub_fetch(&me->writing, 1, __ATOMIC_SEQ_CST);
    return 0;
}

void shared_inplace_end(struct cow_shared *sh, int wrote)
{
    struct shared_region *r = sh->r;
    if (wrote)
        __atomic_add_fetch(&r->inplace_seq, 1, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&r->slots[sh->slot].writing, 1, __ATOMIC_SEQ_CST);
}

uint64_t shared_inplace_seq(struct cow_shared *sh)
{
    return __atomic_load_n(&sh->r->inplace_seq, __ATOMIC_ACQUIRE);
}

void shared_barrier_raise(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    __atomic_add_fetch(&r->barrier, 1, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < COW_SHARED_SLOTS; i++) {
        unsigned spins = 0;
        /* this process's own too: another of its threads may write in
         * place while this one owns */
        while (__atomic_load_n(&r->slots[i].writing, __ATOMIC_SEQ_CST)) {
            /* a write of a few KiB: spin a little, then check that its
             * process lives (a dead one never clears its flag) */
            if (++spins < 64) {
                sched_yield();
                continue;
            }
            if (i != sh->slot && !slot_alive(sh, i)) {
                __atomic_store_n(&r->slots[i].writing, 0, __ATOMIC_SEQ_CST);
                break;
            }
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}

void shared_barrier_lower(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    __atomic_add_fetch(&r->barrier_epoch, 1, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&r->barrier, 1, __ATOMIC_SEQ_CST);
}

void shared_barrier_reset(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    __atomic_add_fetch(&r->barrier_epoch, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&r->barrier, 0, __ATOMIC_SEQ_CST);
}

uint64_t shared_barrier_epoch(struct cow_shared *sh)
{
    return __atomic_load_n(&sh->r->barrier_epoch, __ATOMIC_SEQ_CST);
}

void shared_set_durable(struct cow_shared *sh, uint64_t gen)
{
    uint64_t cur = __atomic_load_n(&sh->r->durable_gen, __ATOMIC_SEQ_CST);
    while (cur < gen && !__atomic_compare_exchange_n(&sh->r->durable_gen, &cur, gen, 0,
                                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
}

uint64_t shared_durable(struct cow_shared *sh)
{
    return __atomic_load_n(&sh->r->durable_gen, __ATOMIC_SEQ_CST);
}

int shared_wait_published(struct cow_shared *sh, unsigned timeout_ms)
{
    struct shared_region *r = sh->r;
    uint64_t start = now_ms();
    int rc = COW_EBUSY;

    if (!__atomic_load_n(&r->unpublished, __ATOMIC_SEQ_CST))
        return COW_OK;
    for (;;) {
        want_set(sh, 0);
        uint32_t ev = __atomic_load_n(&r->event, __ATOMIC_SEQ_CST);
        uint64_t s = __atomic_load_n(&r->owner, __ATOMIC_SEQ_CST) & OWNER_SLOT_MASK;
        if (!__atomic_load_n(&r->unpublished, __ATOMIC_SEQ_CST) || s == 0 ||
            s == sh->slot + 1 || !slot_alive(sh, (unsigned)s - 1)) {
            rc = COW_OK;
            break;
        }
        if (!wait_slice(r, ev, start, timeout_ms))
            break;
    }
    want_clear(r, sh->slot);
    if (rc == COW_EBUSY)
        cow_set_error(COW_EBUSY, "another process kept its changes unpublished for %u ms",
                      timeout_ms);
    return rc;
}

/* ---- the reader table ---- */

void shared_pin(struct cow_shared *sh, uint64_t gen)
{
    __atomic_store_n(&sh->r->slots[sh->slot].gen, gen, __ATOMIC_SEQ_CST);
}

void shared_unpin_if_pinned(struct cow_shared *sh)
{
    if (__atomic_load_n(&sh->r->slots[sh->slot].gen, __ATOMIC_RELAXED))
        shared_pin(sh, 0);
}

uint64_t shared_min_pinned(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    uint64_t min = UINT64_MAX;
    int rc = mutex_lock(sh);
    if (locked(rc))
        sweep(sh); /* else count every pin: holding back more is safe */
    for (unsigned i = 0; i < COW_SHARED_SLOTS; i++) {
        uint64_t g = __atomic_load_n(&r->slots[i].gen, __ATOMIC_SEQ_CST);
        if (g != 0 && g < min)
            min = g;
    }
    if (locked(rc))
        mutex_unlock(sh);
    return min;
}

unsigned shared_nprocs(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    unsigned n = 0;
    int rc = mutex_lock(sh);
    if (locked(rc))
        sweep(sh); /* else count stale slots too: too many is the safe side */
    for (unsigned i = 0; i < COW_SHARED_SLOTS; i++)
        n += i == sh->slot || __atomic_load_n(&r->slots[i].pid, __ATOMIC_RELAXED) != 0;
    if (locked(rc))
        mutex_unlock(sh);
    return n;
}

unsigned shared_nprocs_hint(struct cow_shared *sh)
{
    unsigned n = __atomic_load_n(&sh->r->nprocs, __ATOMIC_RELAXED);
    return n ? n : 1;
}

/* ---- pending frees ---- */

static uint64_t free_end(const struct shared_free *f)
{
    return f->start + f->len;
}

static int free_cmp(const void *a, const void *b)
{
    const struct shared_free *x = a, *y = b;
    if (x->phys != y->phys)
        return x->phys < y->phys ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* The gap between the sorted, disjoint runs A and B (A first): never
 * closed (UINT64_MAX) between a logical and a physical run, whose
 * addresses are of two spaces. */
static uint64_t free_gap(const struct shared_free *a, const struct shared_free *b)
{
    return a->phys != b->phys ? UINT64_MAX : b->start - free_end(a);
}

/* Gaps between the N sorted, disjoint runs E that are <= T (T <
 * UINT64_MAX). */
static size_t gaps_upto(const struct shared_free *e, size_t n, uint64_t t)
{
    size_t c = 0;
    for (size_t i = 1; i < n; i++)
        c += free_gap(&e[i - 1], &e[i]) <= t;
    return c;
}

/*
 * Coalesces the N runs at E (any order) into at most TARGET (>= 1) runs,
 * in place; returns their number.  Runs that overlap or touch are merged
 * first (no byte added); then the K smallest gaps are closed, K = what is
 * still over TARGET.  A merged run takes the larger generation.  Logical
 * and physical runs are never merged (TARGET >= 2 is always reached: at
 * most one gap lies between the two kinds).
 */
static size_t frees_coalesce(struct shared_free *e, size_t n, size_t target)
{
    size_t m = 0;

    qsort(e, n, sizeof *e, free_cmp);
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && e[i].phys == e[m - 1].phys && e[i].start <= free_end(&e[m - 1])) {
            struct shared_free *p = &e[m - 1];
            if (free_end(&e[i]) > free_end(p))
                p->len = free_end(&e[i]) - p->start;
            if (e[i].gen > p->gen)
                p->gen = e[i].gen;
        } else {
            e[m++] = e[i];
        }
    }
    if (m <= target)
        return m;
    /* the smallest gap size T such that closing every gap <= T is enough */
    size_t k = m - target;
    uint64_t lo = 0, hi = UINT64_MAX - 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (gaps_upto(e, m, mid) >= k)
            hi = mid;
        else
            lo = mid + 1;
    }
    size_t at_t = k - (lo ? gaps_upto(e, m, lo - 1) : 0); /* gaps == T to close */
    size_t out = 0;
    for (size_t i = 1; i < m; i++) {
        uint64_t gap = free_gap(&e[out], &e[i]);
        if (gap == UINT64_MAX) {
            e[++out] = e[i];
        } else if (gap < lo || (gap == lo && at_t > 0)) {
            if (gap == lo)
                at_t--;
            e[out].len = free_end(&e[i]) - e[out].start;
            if (e[i].gen > e[out].gen)
                e[out].gen = e[i].gen;
        } else {
            e[++out] = e[i];
        }
    }
    return out + 1;
}

void shared_frees_add(struct cow_shared *sh, uint64_t gen, uint64_t start, uint64_t len,
                      int phys)
{
    struct shared_region *r = sh->r;
    assert_locked(sh);
    if (len == 0)
        return;
    if (start + len < start)
        len = UINT64_MAX - start; /* keep ends representable */
    uint32_t cur = r->frees_cur;
    uint64_t n = r->frees_count[cur];
    if (n < SHARED_FREES_MAX) {
        /* the entry, then the count: a death between leaves the old table */
        r->frees[cur][n] = (struct shared_free){gen, start, len, phys != 0, 0};
        __atomic_store_n(&r->frees_count[cur], n + 1, __ATOMIC_RELEASE);
        return;
    }
    /* Full: build the coalesced table in the other one and switch to it
     * with one store (a death before that leaves the full table). */
    uint32_t other = cur ^ 1;
    struct shared_free *e = r->frees[other];
    memcpy(e, r->frees[cur], (size_t)n * sizeof *e);
    size_t m = frees_coalesce(e, (size_t)n, SHARED_FREES_MAX / 2 - 1);
    e[m++] = (struct shared_free){gen, start, len, phys != 0, 0};
    r->frees_count[other] = m;
    __atomic_store_n(&r->frees_cur, other, __ATOMIC_RELEASE);
}

size_t shared_frees_take(struct cow_shared *sh, uint64_t below_gen,
                         void (*cb)(void *arg, uint64_t start, uint64_t len, int phys),
                         void *arg)
{
    struct shared_region *r = sh->r;
    assert_locked(sh);
    uint32_t cur = r->frees_cur, other = cur ^ 1;
    uint64_t n = r->frees_count[cur], kept = 0;
    const struct shared_free *old = r->frees[cur];
    struct shared_free *e = r->frees[other];

    for (uint64_t i = 0; i < n; i++)
        if (old[i].gen >= below_gen)
            e[kept++] = old[i];
    if (kept == n)
        return 0;
    /* switch first: a death while reporting leaves the runs taken (the
     * next owner rebuilds its allocator from the extent tree anyway) */
    r->frees_count[other] = kept;
    __atomic_store_n(&r->frees_cur, other, __ATOMIC_RELEASE);
    for (uint64_t i = 0; i < n; i++)
        if (old[i].gen < below_gen)
            cb(arg, old[i].start, old[i].len, (int)old[i].phys);
    return (size_t)(n - kept);
}

uint64_t shared_frees_bytes(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    uint32_t cur = __atomic_load_n(&r->frees_cur, __ATOMIC_ACQUIRE);
    uint64_t n = __atomic_load_n(&r->frees_count[cur], __ATOMIC_ACQUIRE), sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += r->frees[cur][i].len;
    return sum;
}

size_t shared_frees_count(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    uint32_t cur = __atomic_load_n(&r->frees_cur, __ATOMIC_ACQUIRE);
    return (size_t)__atomic_load_n(&r->frees_count[cur], __ATOMIC_ACQUIRE);
}

void shared_frees_foreach(struct cow_shared *sh,
                          void (*cb)(void *arg, uint64_t gen, uint64_t start, uint64_t len,
                                     int phys),
                          void *arg)
{
    struct shared_region *r = sh->r;
    assert_locked(sh);
    uint32_t cur = r->frees_cur;
    uint64_t n = r->frees_count[cur];
    for (uint64_t i = 0; i < n; i++)
        cb(arg, r->frees[cur][i].gen, r->frees[cur][i].start, r->frees[cur][i].len,
           (int)r->frees[cur][i].phys);
}

/* ---- the allocation journal ---- */

void shared_journal_append(struct cow_shared *sh, uint64_t gen, unsigned op, uint64_t start,
                           uint64_t len)
{
    struct shared_region *r = sh->r;
    assert_locked(sh);
    uint64_t h = r->jhead;
    /* the entry, then the head: a death between leaves the entry unseen */
    r->journal[h % SHARED_JOURNAL_MAX] = (struct shared_jop){gen, start, len, op, 0};
    __atomic_store_n(&r->jhead, h + 1, __ATOMIC_RELEASE);
}

uint64_t shared_journal_head(struct cow_shared *sh)
{
    assert_locked(sh);
    return sh->r->jhead;
}

void shared_journal_invalidate(struct cow_shared *sh)
{
    struct shared_region *r = sh->r;
    assert_locked(sh);
    /* an index of its own, so that a reader who remembered the head
     * before (shared_journal_head) is before jvalid */
    uint64_t h = r->jhead;
    r->journal[h % SHARED_JOURNAL_MAX] = (struct shared_jop){0, 0, 0, 0, 0};
    __atomic_store_n(&r->jhead, h + 1, __ATOMIC_RELEASE);
    r->jvalid = h + 1;
}

int shared_journal_read(struct cow_shared *sh, uint64_t from,
                        int (*cb)(void *arg, uint64_t gen, unsigned op, uint64_t start,
                                  uint64_t len),
                        void *arg)
{
    struct shared_region *r = sh->r;
    assert_locked(sh);
    uint64_t h = r->jhead;
    if (from < r->jvalid || from > h || h - from > SHARED_JOURNAL_MAX)
        return 1;
    for (uint64_t i = from; i < h; i++) {
        const struct shared_jop *j = &r->journal[i % SHARED_JOURNAL_MAX];
        int rc = cb(arg, j->gen, j->op, j->start, j->len);
        if (rc)
            return rc;
    }
    return 0;
}

void shared_clear_unpublished(struct cow_shared *sh)
{
    __atomic_store_n(&sh->r->unpublished, 0, __ATOMIC_SEQ_CST);
    event_wake(sh->r);
}
