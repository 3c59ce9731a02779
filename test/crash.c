/*
 * crash.c - the crash simulator (make crash): SQLite workloads through the
 * real "cow" VFS on a simulated device, crashed at every flush and at
 * random writes, and every crash state checked.
 *
 * HOW.  bdev_set_test_opener() (a COW_DEBUG hook in store/bdev.c) hands
 * every cow_store_open() of the harness's container path a device that the
 * harness controls; the container file itself is an empty placeholder.  A
 * workload run has two phases:
 *
 *   1. Record.  The workload runs once, deterministically from its seed,
 *      through a shim VFS ("crashshim", the default VFS, so that SQLite's
 *      randomness is seeded too) that forwards to "cow".  The device logs
 *      every write, grow and flush in order: the op log.  The shim keeps a
 *      shadow of each file SQLite writes (db, journal, WAL) and the history
 *      of each 512-byte sector and of each file's size: what it held from
 *      which instant on.  The harness keeps a model of the database after
 *      each transaction, and the op counts at which each transaction began
 *      and its COMMIT returned.  The workloads snap-delete and snap-wal also
 *      make snapshots and branches (pragmas between transactions and inside
 *      them, also after SQLite spilled; the C API for branches of snapshots
 *      and snapshots of branches) and delete them; for each the harness
 *      keeps the model state it was made of and the op counts of its making
 *      and deletion.
 *
 *   2. Crash.  The op log is replayed into a memdev (test/testutil.c), which
 *      keeps the writes since the last flush pending.  The crash points are
 *      every flush (the state just before it completes) and random writes
 *      between flushes.  Each point yields several crash states: every
 *      pending write kept (an application crash), random subsets of whole
 *      4 KiB blocks and of blocks torn at 512-byte sectors, prefixes, and
 *      states where the device did not keep its last size changes.  States
 *      that are the same within a flush interval are checked once.
 *
 * CHECKS, for every crash state, in this order:
 *
 *   - fsck: cow_fsck() of the raw image finds no problem (notes are fine);
 *   - data: the store opens the image read-only (replaying its log in
 *     memory), and db, db-journal and db-wal are read.  Every 512-byte
 *     sector holds zeros or something SQLite once wrote at that offset (no
 *     garbage), and each file as a whole equals SQLite's view of it at one
 *     instant before the crash (no stale or mixed content).  This runs
 *     before SQLite opens the database, since its recovery rewrites files;
 *   - SQLite: the database opens through "cow" (recovery runs), PRAGMA
 *     integrity_check says ok, and the content equals the model after some
 *     transaction k, which lies between the last transaction whose COMMIT
 *     returned durably (as the journal mode and synchronous promise; with
 *     every write kept, every COMMIT that returned) and the last one that
 *     had begun.  Each transaction writes rows tagged with its number and a
 *     checksum and one row into table tx, so a transaction half there is a
 *     content that matches no k;
 *   - snapshots, with the live database still open: the container's
 *     listing (cowvfs_container_list) holds every snapshot and branch whose
 *     making had returned (they are durable when they return) and whose
 *     deletion had not begun, none whose making had not begun or whose
 *     deletion had returned, and no name the workload never made; one
 *     whose making or deletion was in flight at the crash may be there or
 *     not, but nothing in between: each listed one has the kind and source
 *     it was made with, was there before recovery too, opens through
 *     SQLite (snapshot=NAME read-only, branch=NAME read-write), passes
 *     integrity_check, and holds exactly the model state it was made of (a
 *     snapshot is one committed state, not some k; taken inside a
 *     transaction, the one before it).  An unfinished branch (how the VFS
 *     makes a snapshot of a transaction that spilled) may be in the image
 *     only while its making was in flight, and recovery must delete it.
 *     And since making one commits everything with a flush, the live
 *     database holds at least the transaction committed when it was made;
 *   - fsck again once SQLite has closed the database and the snapshots
 *     (recovery's writes, and SQLite's own in a branch).  One state in four
 *     also lets SQLite checkpoint at those closes.
 *
 * Everything is derived from the seed; a failure prints the command that
 * replays exactly that state:  build/crash --workload NAME --seed N --state K
 * The store's own randomness (log ids, timestamps) is not seeded, so a
 * replay repeats the same device operations (--trace checks that) but not
 * every byte of metadata.  Runs are spread over worker processes (--jobs);
 * which (round, workload) items run does not depend on how many.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tools/fsck.h"
#include "bdev.h"
#include "cowvfs.h"
#include "store.h"
#include "testutil.h"

#define SECTOR 512

/* ---------------------------------------------------------------------------
 * Hashing and the PRNG
 */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    uint64_t w;
    h = mix64(h ^ n);
    while (n >= 8) {
        memcpy(&w, b, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ull;
        b += 8;
        n -= 8;
    }
    if (n) {
        w = 0;
        memcpy(&w, b, n);
        h = mix64(h ^ w ^ 0xff);
    }
    return h;
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s)
{
    return mix64(*s += 0x9e3779b97f4a7c15ull);
}

/* A number in [0, n). */
static uint64_t rnd_below(uint64_t *s, uint64_t n)
{
    return n ? rnd(s) % n : 0;
}

/* An index in [0, n), each with probability WEIGHT[i] over their sum
 * (which must be positive). */
static int pick_weighted(uint64_t *s, const int *weight, int n)
{
    int sum = 0, i = 0;
    for (int k = 0; k < n; k++)
        sum += weight[k];
    int x = (int)rnd_below(s, (uint64_t)sum);
    while (x >= weight[i])
        x -= weight[i++];
    return i;
}

/* A set of 64-bit keys (0 is never stored: keys are made nonzero). */
struct hset {
    uint64_t *slot;
    size_t cap, n;
};

static void hset_clear(struct hset *h)
{
    if (h->slot)
        memset(h->slot, 0, h->cap * sizeof *h->slot);
    h->n = 0;
}

static void hset_free(struct hset *h)
{
    free(h->slot);
    memset(h, 0, sizeof *h);
}

/* Adds K; returns 1 if it was new. */
static int hset_add(struct hset *h, uint64_t k)
{
    k |= 1;
    if (2 * (h->n + 1) > h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 1024;
        uint64_t *s = calloc(cap, sizeof *s);
        if (!s) {
            fprintf(stderr, "crash: out of memory\n");
            exit(2);
        }
        for (size_t i = 0; i < h->cap; i++) {
            if (!h->slot[i])
                continue;
            size_t j = (size_t)mix64(h->slot[i]) & (cap - 1);
            while (s[j])
                j = (j + 1) & (cap - 1);
            s[j] = h->slot[i];
        }
        free(h->slot);
        h->slot = s;
        h->cap = cap;
    }
    for (size_t i = (size_t)mix64(k) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (h->slot[i] == k)
            return 0;
        if (h->slot[i] == 0) {
            h->slot[i] = k;
            h->n++;
            return 1;
        }
    }
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "crash: out of memory\n");
        exit(2);
    }
    return p;
}

/* A growing string for failure reports. */
struct msg {
    char *s;
    size_t n, cap;
};

static void msg_add(struct msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(struct msg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if (m->n + (size_t)k + 1 > m->cap) {
        m->cap = 2 * (m->n + (size_t)k + 1);
        m->s = xrealloc(m->s, m->cap);
    }
    va_start(ap, fmt);
    vsnprintf(m->s + m->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    m->n += (size_t)k;
}

/* ---------------------------------------------------------------------------
 * Harness state
 */

/* The files SQLite writes, by role. */
enum { ROLE_DB, ROLE_JOURNAL, ROLE_WAL, NROLES, ROLE_OTHER = NROLES };
static const char *const role_store_name[NROLES] = {"db", "db-journal", "db-wal"};

/* One version of a sector or of a file's size: the sector's content hash
 * (or the size) from time T on, until the next version's T.  Times count
 * the shadow's changes (g.vclock). */
struct ver {
    uint64_t h;
    uint64_t t;
};

/* A sector's or a size's versions, oldest first; an empty list means its
 * first value (zeros, size 0) since time 0. */
struct verlist {
    struct ver *v;
    size_t n, cap;
};

/* A file's content as SQLite wrote it (zeros past SIZE), and its history. */
struct shadow {
    uint8_t *buf;
    size_t size, cap;
    struct verlist *sec; /* per sector */
    size_t nsec;
    struct verlist sizes;
    uint64_t maxsize;    /* the largest size it ever had */
};

/* One device operation of the record phase. */
/* OP_PUBLISH: a new container renamed onto its path (bdev's publish). */
enum { OP_WRITE, OP_FLUSH, OP_GROW, OP_PUBLISH };
struct op {
    int type;
    uint64_t off;  /* OP_WRITE: offset; OP_GROW: the new size */
    size_t len;    /* OP_WRITE */
    uint8_t *data; /* OP_WRITE: a copy */
};

static struct {
    char *dir;               /* temporary directory of the placeholder */
    char path[PATH_MAX];     /* the container path the opener serves */
    struct cow_dev *cur;     /* the device it serves */
    int nopen;               /* stores open on CUR (at most one) */
    int recording;           /* record phase: log ops and file writes */
    struct op *ops;          /* the op log */
    size_t nops, capops;
    uint64_t trace;          /* hash of every op's type, offset and length */
    struct shadow shadow[NROLES];
    uint64_t vclock;         /* changes of the shadows so far */
    uint64_t nwrites[NROLES]; /* SQLite's writes to each file so far (record phase) */
    size_t *mut_op;          /* mut_op[t]: ops logged when change t began */
    size_t capmut;
    uint64_t zero_hash;      /* hash of a sector of zeros */
    sqlite3_vfs *cow;        /* the VFS the shim forwards to */
    uint64_t vfs_rng;        /* the shim's xRandomness */
    char lastlog[1024];      /* the last sqlite3_log message */
    int verbose;
    int memfd;               /* the file g.img maps (fsck reads it) */
    char memfd_path[64];
    uint8_t *img;            /* the crash state being checked (ramdev) */
    size_t img_len;
    double secs[5];          /* CPU time spent: T_* */
    long snapchecks;         /* snapshots and branches opened and read */
    long either[2];          /* ones that may or may not exist: [0] absent, [1] there */
    const char *argv0;       /* for the replay line */
} g;

enum { T_RECORD, T_FSCK, T_DATA, T_SQLITE, T_GEN };

/* CPU time of the process (the machine may be busy with other work). */
static double now_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_cb(void *arg, int code, const char *msg)
{
    (void)arg;
    snprintf(g.lastlog, sizeof g.lastlog, "(%d) %s", code, msg);
    if (g.verbose > 1)
        fprintf(stderr, "sqlite3_log: %s\n", g.lastlog);
}

/* ---------------------------------------------------------------------------
 * The device: a proxy on g.cur, handed out by the bdev opener hook.  Its
 * close leaves the device alive (the harness owns it).
 */

struct proxy {
    struct cow_dev dev; /* first */
    struct cow_dev *under;
    int readonly;
};

static void oplog_add(int type, uint64_t off, size_t len, const void *data)
{
    if (g.nops == g.capops) {
        g.capops = g.capops ? 2 * g.capops : 4096;
        g.ops = xrealloc(g.ops, g.capops * sizeof *g.ops);
    }
    struct op *o = &g.ops[g.nops++];
    o->type = type;
    o->off = off;
    o->len = len;
    o->data = NULL;
    if (data) {
        o->data = xrealloc(NULL, len);
        memcpy(o->data, data, len);
    }
    g.trace = mix64(g.trace ^ mix64(((uint64_t)type << 56) ^ off) ^ len);
}

static int px_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    struct proxy *p = (struct proxy *)d;
    return p->under->read(p->under, buf, len, off);
}

/* The store may write from several threads (writeback): the op log's
 * order is the order in which writes reach the device, under oplock. */
static pthread_mutex_t oplock = PTHREAD_MUTEX_INITIALIZER;

static int px_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    struct proxy *p = (struct proxy *)d;
    if (p->readonly) {
        fprintf(stderr, "crash: a read-only store wrote to its device\n");
        abort();
    }
    pthread_mutex_lock(&oplock);
    d->nwrite++;
    int rc = p->under->write(p->under, buf, len, off);
    if (rc == COW_OK && g.recording)
        oplog_add(OP_WRITE, off, len, buf);
    pthread_mutex_unlock(&oplock);
    return rc;
}

static int px_flush(struct cow_dev *d)
{
    struct proxy *p = (struct proxy *)d;
    pthread_mutex_lock(&oplock);
    d->nflush++;
    int rc = p->under->flush(p->under);
    if (rc == COW_OK && g.recording)
        oplog_add(OP_FLUSH, 0, 0, NULL);
    pthread_mutex_unlock(&oplock);
    return rc;
}

static int px_size(struct cow_dev *d, uint64_t *size)
{
    struct proxy *p = (struct proxy *)d;
    return p->under->size(p->under, size);
}

static int px_grow(struct cow_dev *d, uint64_t size)
{
    struct proxy *p = (struct proxy *)d;
    uint64_t before = 0;
    pthread_mutex_lock(&oplock);
    p->under->size(p->under, &before);
    int rc = p->under->grow(p->under, size);
    if (rc == COW_OK && g.recording && size > before)
        oplog_add(OP_GROW, size, 0, NULL);
    pthread_mutex_unlock(&oplock);
    return rc;
}

/* The format of a new container ends with its rename into place: before
 * it, a crash leaves no container (the crash phase shows an empty image). */
static int px_publish(struct cow_dev *d)
{
    struct proxy *p = (struct proxy *)d;
    if (p->readonly) {
        fprintf(stderr, "crash: a read-only store published its device\n");
        abort();
    }
    pthread_mutex_lock(&oplock);
    if (g.recording)
        oplog_add(OP_PUBLISH, 0, 0, NULL);
    pthread_mutex_unlock(&oplock);
    return COW_OK;
}

static void px_close(struct cow_dev *d)
{
    g.nopen--;
    free(d);
}

static struct cow_dev *proxy_new(struct cow_dev *under, int readonly)
{
    struct proxy *p = xrealloc(NULL, sizeof *p);
    memset(p, 0, sizeof *p);
    p->dev.read = px_read;
    p->dev.write = px_write;
    p->dev.flush = px_flush;
    p->dev.size = px_size;
    p->dev.grow = px_grow;
    p->dev.close = px_close;
    p->dev.publish = px_publish;
    p->under = under;
    p->readonly = readonly;
    g.nopen++;
    return &p->dev;
}

/*
 * The device of a crash state: the image g.img itself, so that checking a
 * state copies nothing.  g.img is a shared mapping of the memfd g.memfd,
 * whose size is always g.img_len, so fsck reads the very same bytes through
 * g.memfd_path.  Writes (SQLite's recovery) change it in place; growing
 * extends the memfd.
 */
#define IMG_RESERVE ((size_t)1 << 32) /* address space reserved for g.img */

static int rd_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    (void)d;
    if (off > g.img_len || len > g.img_len - off)
        return COW_EIO_READ;
    memcpy(buf, g.img + off, len);
    return COW_OK;
}

/* Sets the image's size to SIZE (new bytes are zero). */
static int img_resize(uint64_t size)
{
    if (size > IMG_RESERVE) {
        fprintf(stderr, "crash: the container grew past %zu bytes\n", IMG_RESERVE);
        exit(2);
    }
    if (size != g.img_len && ftruncate(g.memfd, (off_t)size) != 0) {
        perror("crash: ftruncate of the image");
        exit(2);
    }
    g.img_len = size;
    return COW_OK;
}

static int rd_reserve(uint64_t size)
{
    return size > g.img_len ? img_resize(size) : COW_OK;
}

static int rd_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    (void)d;
    rd_reserve(off + len);
    memcpy(g.img + off, buf, len);
    return COW_OK;
}

static int rd_flush(struct cow_dev *d)
{
    (void)d;
    return COW_OK;
}

static int rd_size(struct cow_dev *d, uint64_t *size)
{
    (void)d;
    *size = g.img_len;
    return COW_OK;
}

static int rd_grow(struct cow_dev *d, uint64_t size)
{
    (void)d;
    return rd_reserve(size);
}

static void rd_close(struct cow_dev *d)
{
    (void)d;
}

static struct cow_dev ramdev = {.read = rd_read,
                                .write = rd_write,
                                .flush = rd_flush,
                                .size = rd_size,
                                .grow = rd_grow,
                                .close = rd_close};

/* The bdev_file_open() hook: the harness's container is g.cur. */
static int crash_opener(void *arg, const char *path, int flags, struct cow_dev **out,
                        int *created)
{
    (void)arg;
    if (strcmp(path, g.path) != 0)
        return BDEV_TEST_DECLINE;
    if (!g.cur)
        return COW_ENOENT;
    if (g.nopen > 0) /* what flock would say */
        return COW_EBUSY;
    *created = 0;
    *out = proxy_new(g.cur, (flags & BDEV_READONLY) != 0);
    return COW_OK;
}

/* ---------------------------------------------------------------------------
 * Shadows and sector versions (record phase)
 */

static uint64_t sector_hash(const uint8_t *sec)
{
    return hash_bytes(sec, SECTOR, 0);
}

/* The value of L before its first version. */
static uint64_t ver_initial(const struct verlist *l, int is_size)
{
    (void)l;
    return is_size ? 0 : g.zero_hash;
}

/* Appends version H at time T to L, unless H is its current value. */
static void ver_push(struct verlist *l, uint64_t h, uint64_t t, int is_size)
{
    uint64_t cur = l->n ? l->v[l->n - 1].h : ver_initial(l, is_size);
    if (cur == h)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].h = h;
    l->v[l->n].t = t;
    l->n++;
}

/* Starts change number ++g.vclock, which began when START ops were logged. */
static uint64_t shadow_change(size_t start)
{
    uint64_t t = ++g.vclock;
    if (t >= g.capmut) {
        g.capmut = g.capmut ? 2 * g.capmut : 4096;
        g.mut_op = xrealloc(g.mut_op, g.capmut * sizeof *g.mut_op);
    }
    g.mut_op[t] = start;
    return t;
}

/* Records the content of sectors [s0, s1] of ROLE as of time T. */
static void shadow_note(int role, uint64_t s0, uint64_t s1, uint64_t t)
{
    struct shadow *sh = &g.shadow[role];
    if (s1 >= sh->nsec) {
        size_t n = sh->nsec ? sh->nsec : 64;
        while (n <= s1)
            n *= 2;
        sh->sec = xrealloc(sh->sec, n * sizeof *sh->sec);
        memset(sh->sec + sh->nsec, 0, (n - sh->nsec) * sizeof *sh->sec);
        sh->nsec = n;
    }
    for (uint64_t i = s0; i <= s1; i++) {
        uint8_t sec[SECTOR];
        memset(sec, 0, sizeof sec);
        if (i * SECTOR < sh->size) {
            size_t n = sh->size - i * SECTOR < SECTOR ? sh->size - i * SECTOR : SECTOR;
            memcpy(sec, sh->buf + i * SECTOR, n);
        }
        ver_push(&sh->sec[i], sector_hash(sec), t, 0);
    }
}

static void shadow_reserve(struct shadow *sh, size_t n)
{
    if (n <= sh->cap)
        return;
    size_t c = sh->cap ? sh->cap : 65536;
    while (c < n)
        c *= 2;
    sh->buf = xrealloc(sh->buf, c);
    memset(sh->buf + sh->cap, 0, c - sh->cap);
    sh->cap = c;
}

static void shadow_setsize(struct shadow *sh, size_t size, uint64_t t)
{
    sh->size = size;
    if (size > sh->maxsize)
        sh->maxsize = size;
    ver_push(&sh->sizes, size, t, 1);
}

/* SQLite wrote N bytes of BUF at OFF to ROLE (a write that began when START
 * ops were logged). */
static void shadow_write(int role, const void *buf, size_t n, uint64_t off, size_t start)
{
    struct shadow *sh = &g.shadow[role];
    if (n == 0)
        return;
    uint64_t t = shadow_change(start);
    shadow_reserve(sh, off + n);
    memcpy(sh->buf + off, buf, n);
    if (off + n > sh->size)
        shadow_setsize(sh, off + n, t);
    shadow_note(role, off / SECTOR, (off + n - 1) / SECTOR, t);
}

/* ROLE was truncated to SIZE (0 also when it is deleted). */
static void shadow_truncate(int role, uint64_t size, size_t start)
{
    struct shadow *sh = &g.shadow[role];
    uint64_t t = shadow_change(start);
    if (size < sh->size) {
        size_t old = sh->size;
        memset(sh->buf + size, 0, sh->size - size);
        shadow_setsize(sh, size, t);
        shadow_note(role, size / SECTOR, (old - 1) / SECTOR, t);
    } else if (size > sh->size) {
        shadow_reserve(sh, size);
        shadow_setsize(sh, size, t);
    }
}

static void shadow_free(struct shadow *sh)
{
    for (size_t i = 0; i < sh->nsec; i++)
        free(sh->sec[i].v);
    free(sh->sec);
    free(sh->sizes.v);
    free(sh->buf);
    memset(sh, 0, sizeof *sh);
}

/* A set of times: sorted, disjoint intervals [a, b). */
struct tset {
    struct ver *iv; /* h = a, t = b */
    size_t n, cap;
};

static void tset_add(struct tset *s, uint64_t a, uint64_t b)
{
    if (a >= b)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->iv = xrealloc(s->iv, s->cap * sizeof *s->iv);
    }
    s->iv[s->n].h = a;
    s->iv[s->n].t = b;
    s->n++;
}

/* OUT = IN ∩ {times at which L's value was H}.  Returns 1 if L ever had
 * the value H (at any time). */
static int tset_match(const struct tset *in, const struct verlist *l, uint64_t h, int is_size,
                      struct tset *out)
{
    int ever = 0;
    size_t j = 0;
    out->n = 0;
    for (size_t i = 0; i <= l->n; i++) {
        uint64_t val = i == 0 ? ver_initial(l, is_size) : l->v[i - 1].h;
        uint64_t a = i == 0 ? 0 : l->v[i - 1].t;
        uint64_t b = i < l->n ? l->v[i].t : UINT64_MAX;
        if (val != h)
            continue;
        ever = 1;
        while (j < in->n && in->iv[j].t <= a)
            j++;
        for (size_t k = j; k < in->n && in->iv[k].h < b; k++)
            tset_add(out, in->iv[k].h > a ? in->iv[k].h : a, in->iv[k].t < b ? in->iv[k].t : b);
    }
    return ever;
}

/* ---------------------------------------------------------------------------
 * The shim VFS: forwards everything to "cow", records the writes of the
 * record phase, and gives SQLite deterministic randomness.
 */

typedef struct ShimFile {
    sqlite3_file base;   /* first */
    int role;            /* ROLE_* */
    sqlite3_file *pReal; /* cow's file, right after this struct */
} ShimFile;

#define REAL(f) (((ShimFile *)(f))->pReal)

static int shimClose(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods->xClose(REAL(f));
    f->pMethods = 0;
    return rc;
}

static int shimRead(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int shimWrite(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    ShimFile *p = (ShimFile *)f;
    size_t start = g.nops;
    int rc = p->pReal->pMethods->xWrite(p->pReal, buf, n, off);
    if (rc == SQLITE_OK && g.recording && p->role < NROLES) {
        shadow_write(p->role, buf, (size_t)n, (uint64_t)off, start);
        g.nwrites[p->role]++;
    }
    return rc;
}

static int shimTruncate(sqlite3_file *f, sqlite3_int64 size)
{
    ShimFile *p = (ShimFile *)f;
    size_t start = g.nops;
    int rc = p->pReal->pMethods->xTruncate(p->pReal, size);
    if (rc == SQLITE_OK && g.recording && p->role < NROLES)
        shadow_truncate(p->role, (uint64_t)size, start);
    return rc;
}

static int shimSync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int shimFileSize(sqlite3_file *f, sqlite3_int64 *pSize)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), pSize);
}

static int shimLock(sqlite3_file *f, int e)
{
    return REAL(f)->pMethods->xLock(REAL(f), e);
}

static int shimUnlock(sqlite3_file *f, int e)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), e);
}

static int shimCheckReservedLock(sqlite3_file *f, int *pRes)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), pRes);
}

static int shimFileControl(sqlite3_file *f, int op, void *pArg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, pArg);
}

static int shimSectorSize(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int shimDeviceCharacteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int shimShmMap(sqlite3_file *f, int iPg, int pgsz, int bExtend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), iPg, pgsz, bExtend, pp);
}

static int shimShmLock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void shimShmBarrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int shimShmUnmap(sqlite3_file *f, int deleteFlag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), deleteFlag);
}

static int shimFetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int shimUnfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shimIoMethods = {
    3,                         /* iVersion */
    shimClose,                 /* xClose */
    shimRead,                  /* xRead */
    shimWrite,                 /* xWrite */
    shimTruncate,              /* xTruncate */
    shimSync,                  /* xSync */
    shimFileSize,              /* xFileSize */
    shimLock,                  /* xLock */
    shimUnlock,                /* xUnlock */
    shimCheckReservedLock,     /* xCheckReservedLock */
    shimFileControl,           /* xFileControl */
    shimSectorSize,            /* xSectorSize */
    shimDeviceCharacteristics, /* xDeviceCharacteristics */
    shimShmMap,                /* xShmMap */
    shimShmLock,               /* xShmLock */
    shimShmBarrier,            /* xShmBarrier */
    shimShmUnmap,              /* xShmUnmap */
    shimFetch,                 /* xFetch */
    shimUnfetch,               /* xUnfetch */
};

/* The role of a name SQLite gives xDelete: the container path plus a suffix. */
static int role_of_name(const char *zName)
{
    size_t n = strlen(g.path);
    if (!zName || strncmp(zName, g.path, n) != 0)
        return ROLE_OTHER;
    if (strcmp(zName + n, "") == 0)
        return ROLE_DB;
    if (strcmp(zName + n, "-journal") == 0)
        return ROLE_JOURNAL;
    if (strcmp(zName + n, "-wal") == 0)
        return ROLE_WAL;
    return ROLE_OTHER;
}

static int shimOpen(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *f, int flags,
                    int *pOutFlags)
{
    ShimFile *p = (ShimFile *)f;
    (void)pVfs;
    memset(p, 0, sizeof *p);
    p->pReal = (sqlite3_file *)&p[1];
    switch (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL)) {
    case SQLITE_OPEN_MAIN_DB:
        p->role = ROLE_DB;
        break;
    case SQLITE_OPEN_MAIN_JOURNAL:
        p->role = ROLE_JOURNAL;
        break;
    case SQLITE_OPEN_WAL:
        p->role = ROLE_WAL;
        break;
    default:
        p->role = ROLE_OTHER;
    }
    if (p->role != ROLE_OTHER && role_of_name(zName) != p->role)
        p->role = ROLE_OTHER; /* not the harness's container */
    int rc = g.cow->xOpen(g.cow, zName, p->pReal, flags, pOutFlags);
    if (p->pReal->pMethods)
        f->pMethods = &shimIoMethods;
    return rc;
}

static int shimDelete(sqlite3_vfs *pVfs, const char *zName, int syncDir)
{
    (void)pVfs;
    size_t start = g.nops;
    int rc = g.cow->xDelete(g.cow, zName, syncDir);
    int role = role_of_name(zName);
    if (rc == SQLITE_OK && g.recording && role < NROLES)
        shadow_truncate(role, 0, start);
    return rc;
}

static int shimAccess(sqlite3_vfs *pVfs, const char *zName, int flags, int *pRes)
{
    (void)pVfs;
    return g.cow->xAccess(g.cow, zName, flags, pRes);
}

static int shimFullPathname(sqlite3_vfs *pVfs, const char *zName, int nOut, char *zOut)
{
    (void)pVfs;
    return g.cow->xFullPathname(g.cow, zName, nOut, zOut);
}

static void *shimDlOpen(sqlite3_vfs *pVfs, const char *zPath)
{
    (void)pVfs;
    return g.cow->xDlOpen(g.cow, zPath);
}

static void shimDlError(sqlite3_vfs *pVfs, int nByte, char *zErrMsg)
{
    (void)pVfs;
    g.cow->xDlError(g.cow, nByte, zErrMsg);
}

static void (*shimDlSym(sqlite3_vfs *pVfs, void *p, const char *zSym))(void)
{
    (void)pVfs;
    return g.cow->xDlSym(g.cow, p, zSym);
}

static void shimDlClose(sqlite3_vfs *pVfs, void *p)
{
    (void)pVfs;
    g.cow->xDlClose(g.cow, p);
}

/* Deterministic: SQLite seeds its PRNG from the default VFS (this one). */
static int shimRandomness(sqlite3_vfs *pVfs, int nByte, char *zOut)
{
    (void)pVfs;
    for (int i = 0; i < nByte; i++)
        zOut[i] = (char)rnd(&g.vfs_rng);
    return nByte;
}

static int shimSleep(sqlite3_vfs *pVfs, int us)
{
    (void)pVfs;
    return g.cow->xSleep(g.cow, us);
}

static int shimCurrentTime(sqlite3_vfs *pVfs, double *pT)
{
    (void)pVfs;
    return g.cow->xCurrentTime(g.cow, pT);
}

static int shimGetLastError(sqlite3_vfs *pVfs, int n, char *z)
{
    (void)pVfs;
    return g.cow->xGetLastError(g.cow, n, z);
}

static int shimCurrentTimeInt64(sqlite3_vfs *pVfs, sqlite3_int64 *pT)
{
    (void)pVfs;
    return g.cow->xCurrentTimeInt64(g.cow, pT);
}

static sqlite3_vfs shimVfs = {
    2,                    /* iVersion */
    0,                    /* szOsFile (set in shim_register) */
    0,                    /* mxPathname (set in shim_register) */
    0,                    /* pNext */
    "crashshim",          /* zName */
    0,                    /* pAppData */
    shimOpen,             /* xOpen */
    shimDelete,           /* xDelete */
    shimAccess,           /* xAccess */
    shimFullPathname,     /* xFullPathname */
    shimDlOpen,           /* xDlOpen */
    shimDlError,          /* xDlError */
    shimDlSym,            /* xDlSym */
    shimDlClose,          /* xDlClose */
    shimRandomness,       /* xRandomness */
    shimSleep,            /* xSleep */
    shimCurrentTime,      /* xCurrentTime */
    shimGetLastError,     /* xGetLastError */
    shimCurrentTimeInt64, /* xCurrentTimeInt64 */
    0,                    /* xSetSystemCall */
    0,                    /* xGetSystemCall */
    0,                    /* xNextSystemCall */
};

static void shim_register(void)
{
    cowvfs_register(0); /* cow's default VFS: unix, for temporary files */
    g.cow = sqlite3_vfs_find("cow");
    if (!g.cow) {
        fprintf(stderr, "crash: the cow VFS is not registered\n");
        exit(2);
    }
    shimVfs.szOsFile = (int)sizeof(ShimFile) + g.cow->szOsFile;
    shimVfs.mxPathname = g.cow->mxPathname;
    sqlite3_vfs_register(&shimVfs, 1);
}

/* ---------------------------------------------------------------------------
 * Workloads and the model of the database
 */

enum { JM_DELETE, JM_TRUNCATE, JM_PERSIST, JM_WAL };
static const char *const jm_name[] = {"DELETE", "TRUNCATE", "PERSIST", "WAL"};
enum { SY_NORMAL = 1, SY_FULL = 2, SY_EXTRA = 3 };
static const char *const sy_name[] = {"OFF", "NORMAL", "FULL", "EXTRA"};

struct workload {
    const char *name;
    int journal;         /* JM_* at the start */
    int sync;            /* SY_* at the start */
    int page_size;
    const char *vacuum;  /* auto_vacuum */
    int cache_size;      /* pages: a small cache makes SQLite spill mid-transaction */
    int mixed;           /* switches journal mode and synchronous as it goes */
    int big;             /* rows 6 times as large: the container grows and shrinks */
    int chunk;           /* SQLITE_FCNTL_CHUNK_SIZE in bytes (0: none): SIZE_HINT
                          * preallocates in these units, written in place */
    int snaps;           /* percent of steps that make or delete a snapshot or
                          * branch (0: none; see wl_snap) */
};

static const struct workload workloads[] = {
    {"delete-extra", JM_DELETE, SY_EXTRA, 4096, "NONE", 2000, 0, 0, 0, 0},
    {"delete-full", JM_DELETE, SY_FULL, 4096, "FULL", 16, 0, 0, 0, 0},
    {"snap-delete", JM_DELETE, SY_FULL, 2048, "INCREMENTAL", 12, 0, 0, 65536, 12},
    {"truncate-full", JM_TRUNCATE, SY_FULL, 1024, "INCREMENTAL", 40, 0, 0, 0, 0},
    {"persist-normal", JM_PERSIST, SY_NORMAL, 2048, "NONE", 2000, 0, 0, 0, 0},
    {"wal-full", JM_WAL, SY_FULL, 4096, "NONE", 2000, 0, 0, 0, 0},
    {"wal-normal", JM_WAL, SY_NORMAL, 1024, "FULL", 24, 0, 0, 0, 0},
    {"snap-wal", JM_WAL, SY_NORMAL, 4096, "FULL", 20, 0, 0, 131072, 12},
    {"mixed", JM_WAL, SY_FULL, 4096, "INCREMENTAL", 64, 1, 0, 0, 0},
    {"wal-big", JM_WAL, SY_FULL, 4096, "FULL", 200, 0, 1, 0, 0},
    {"chunk-extra", JM_DELETE, SY_EXTRA, 4096, "FULL", 16, 0, 0, 65536, 0},
    {"wal-chunk", JM_WAL, SY_FULL, 2048, "INCREMENTAL", 200, 0, 0, 262144, 0},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/*
 * Whether SQLite promises that a COMMIT that returned survives a power
 * loss: with synchronous=EXTRA always; with FULL except in DELETE mode
 * (the journal's unlink is not synced: a power loss can bring the journal
 * back, which then rolls the transaction back; SQLite documents EXTRA for
 * that); with NORMAL only in PERSIST mode (the zeroed journal header is
 * synced; TRUNCATE's truncation and the WAL are not).
 */
static int durable(int jm, int sy)
{
    if (sy >= SY_EXTRA)
        return 1;
    if (sy == SY_FULL)
        return jm != JM_DELETE;
    return jm == JM_PERSIST;
}

#define NT 6 /* tables t0..t5 */

struct mrow {
    int64_t id;
    uint64_t h; /* row hash (row_hash) */
};

struct mtable {
    int exists;
    unsigned idx; /* bit 0: index i<t>a exists, bit 1: i<t>b */
    int64_t next_id;
    struct mrow *rows; /* sorted by id */
    size_t n, cap;
    uint64_t sum; /* sum of the row hashes */
};

/* The database after one transaction, as the checks compare it. */
struct snap {
    uint8_t exists[NT], idx[NT];
    uint64_t count[NT], sum[NT];
};

enum { STEP_TXN, STEP_OTHER };
struct step {
    int kind;
    char what[96];  /* what it did */
    size_t start;   /* ops logged when it began */
    size_t ret;     /* ops logged when it returned */
    int txn;        /* STEP_TXN: its number (row n of tx) */
    int durable;    /* STEP_TXN: its COMMIT returned durably */
};

/* The device ops of one snapshot operation: ops [start, ret) are its own,
 * and op durable - 1 is its last flush (SIZE_MAX: none).  start ==
 * SIZE_MAX: it never ran. */
struct opspan {
    size_t start, ret, durable;
};

/*
 * One snapshot or branch the workload made, maybe deleted later.  It holds
 * one fixed committed state, the database after transaction K, whatever
 * happened to the live database afterwards, so a crash state that has it
 * must hold exactly WANT in it.
 */
struct snaprec {
    char name[16];       /* "s<i>" or "b<i>", i its index in run.recs */
    char source[16];     /* what it was made of: "" for the live database */
    int kind;            /* COWVFS_SNAPSHOT or COWVFS_BRANCH */
    int k;               /* it holds the database after transaction k */
    int live_k;          /* the live database's last committed transaction then */
    int in_txn;          /* 0; 1 made inside a write transaction; 2 one that had
                          * written the db file (rollback) or WAL frames */
    struct snap want;    /* the model after transaction k */
    struct opspan made;  /* the operation that made it */
    struct opspan gone;  /* the one that deleted it */
};

/* One run of one workload with one seed. */
struct run {
    const struct workload *w;
    uint64_t seed;
    uint64_t rng;
    sqlite3 *db;
    int jm, sy;
    struct mtable t[NT];
    int ntxn;             /* transactions committed */
    struct snap *snaps;   /* snaps[k + 1]: after transaction k; snaps[0]: empty */
    struct step *steps;
    size_t nsteps, capsteps;
    struct snaprec *recs; /* every snapshot and branch made, in order */
    size_t nrecs, caprecs;
    int nlive;            /* recs not deleted */
    int ndeletes, nintxn, nspilled; /* counts for the run's summary */
    int failed;           /* the record phase failed */
    char errbuf[512];
};

/* The checksum a row carries (ck), from its other fields. */
static int64_t row_ck(int t, int64_t id, int64_t txn, int64_t k, const void *pad, size_t n)
{
    uint64_t h = hash_bytes(pad, n, 0x5eed);
    h = mix64(h ^ mix64((uint64_t)t ^ ((uint64_t)id << 8)) ^ mix64((uint64_t)txn) ^
              mix64((uint64_t)k + 7));
    return (int64_t)(h & (uint64_t)INT64_MAX);
}

/* The hash of a whole row, as the digest sums it. */
static uint64_t row_hash(int t, int64_t id, int64_t txn, int64_t k, const void *pad, size_t n,
                         int64_t ck)
{
    return mix64(hash_bytes(pad, n, (uint64_t)ck) ^ mix64((uint64_t)id * 31 + (uint64_t)t) ^
                 mix64((uint64_t)txn ^ ((uint64_t)k << 1)));
}

/* The tag of row n of table tx. */
static int64_t tx_tag(int64_t n)
{
    return (int64_t)(mix64((uint64_t)n ^ 0x7478) & (uint64_t)INT64_MAX);
}

static void snap_take(const struct run *r, struct snap *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < NT; i++) {
        s->exists[i] = (uint8_t)r->t[i].exists;
        s->idx[i] = (uint8_t)r->t[i].idx;
        s->count[i] = r->t[i].n;
        s->sum[i] = r->t[i].sum;
    }
}

static int run_fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_fail(struct run *r, const char *fmt, ...)
{
    va_list ap;
    if (r->failed)
        return 1;
    va_start(ap, fmt);
    vsnprintf(r->errbuf, sizeof r->errbuf, fmt, ap);
    va_end(ap);
    r->failed = 1;
    return 1;
}

static int exec(struct run *r, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(r->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        run_fail(r, "%s: %s (last log: %s)", sql, err ? err : "?", g.lastlog);
        sqlite3_free(err);
        return 1;
    }
    return 0;
}

static int execf(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int execf(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    int rc = exec(r, sql);
    sqlite3_free(sql);
    return rc;
}

static struct step *step_begin(struct run *r, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct step *step_begin(struct run *r, int kind, const char *fmt, ...)
{
    va_list ap;
    if (r->nsteps == r->capsteps) {
        r->capsteps = r->capsteps ? 2 * r->capsteps : 256;
        r->steps = xrealloc(r->steps, r->capsteps * sizeof *r->steps);
    }
    struct step *s = &r->steps[r->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->txn = -1;
    va_start(ap, fmt);
    vsnprintf(s->what, sizeof s->what, fmt, ap);
    va_end(ap);
    s->start = g.nops;
    return s;
}

static void step_end(struct step *s)
{
    s->ret = g.nops;
}

/* Opens the workload's connection and applies its settings. */
static int wl_open(struct run *r)
{
    char *uri = sqlite3_mprintf("file:%s?vfs=crashshim&commit_interval=0", g.path);
    int rc = sqlite3_open_v2(uri, &r->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    if (rc != SQLITE_OK)
        return run_fail(r, "open: %s (last log: %s)", sqlite3_errmsg(r->db), g.lastlog);
    int chunk = r->w->chunk;
    if (chunk && sqlite3_file_control(r->db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk) != SQLITE_OK)
        return run_fail(r, "SQLITE_FCNTL_CHUNK_SIZE: %s", sqlite3_errmsg(r->db));
    return execf(r,
                 "PRAGMA page_size=%d; PRAGMA auto_vacuum=%s; PRAGMA journal_mode=%s;"
                 "PRAGMA synchronous=%s; PRAGMA cache_size=%d; PRAGMA temp_store=MEMORY;"
                 "PRAGMA wal_autocheckpoint=200; PRAGMA journal_size_limit=%d",
                 r->w->page_size, r->w->vacuum, jm_name[r->jm], sy_name[r->sy],
                 r->w->cache_size, r->jm == JM_PERSIST ? 65536 : -1);
}

static int wl_close(struct run *r)
{
    int rc = sqlite3_close(r->db);
    r->db = NULL;
    if (rc != SQLITE_OK)
        return run_fail(r, "close: %d (last log: %s)", rc, g.lastlog);
    return 0;
}

/* A pad: mostly short, sometimes spilling to overflow pages. */
static size_t pad_len(struct run *r)
{
    uint64_t x = rnd_below(&r->rng, 100);
    size_t n;
    if (x < 8)
        n = 1500 + rnd_below(&r->rng, 5000);
    else if (x < 10)
        n = 0;
    else
        n = 8 + rnd_below(&r->rng, 400);
    return r->w->big ? 6 * n : n;
}

/* Index of the row with ID in T, or the insertion point with *found = 0. */
static size_t row_find(const struct mtable *t, int64_t id, int *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->rows[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < t->n && t->rows[lo].id == id;
    return lo;
}

/* Writes row ID of table TI (insert or replace its fields) in SQL and in
 * the model. */
static int row_put(struct run *r, int ti, int64_t id, int update)
{
    struct mtable *t = &r->t[ti];
    size_t n = pad_len(r);
    uint8_t *pad = xrealloc(NULL, n);
    for (size_t i = 0; i < n; i++)
        pad[i] = (uint8_t)rnd(&r->rng);
    int64_t k = (int64_t)(rnd(&r->rng) >> 1);
    int64_t txn = r->ntxn;
    int64_t ck = row_ck(ti, id, txn, k, pad, n);
    char sql[128];
    if (update)
        snprintf(sql, sizeof sql, "UPDATE t%d SET txn=?2, k=?3, pad=?4, ck=?5 WHERE id=?1", ti);
    else
        snprintf(sql, sizeof sql, "INSERT INTO t%d(id, txn, k, pad, ck) VALUES(?1,?2,?3,?4,?5)",
                 ti);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, txn);
        sqlite3_bind_int64(st, 3, k);
        sqlite3_bind_blob(st, 4, pad, (int)n, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, ck);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            rc = sqlite3_changes(r->db) == 1 ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    uint64_t h = row_hash(ti, id, txn, k, pad, n, ck);
    free(pad);
    if (rc != SQLITE_OK)
        return run_fail(r, "%s (id %" PRId64 "): %s (last log: %s)", sql, id,
                        sqlite3_errmsg(r->db), g.lastlog);
    int found;
    size_t at = row_find(t, id, &found);
    if (found != update)
        return run_fail(r, "model: row %" PRId64 " of t%d %s", id, ti,
                        found ? "exists" : "is missing");
    if (found) {
        t->sum -= t->rows[at].h;
    } else {
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 64;
            t->rows = xrealloc(t->rows, t->cap * sizeof *t->rows);
        }
        memmove(&t->rows[at + 1], &t->rows[at], (t->n - at) * sizeof *t->rows);
        t->n++;
        t->rows[at].id = id;
    }
    t->rows[at].h = h;
    t->sum += h;
    return 0;
}

/* Deletes rows of table TI with ids in [lo, hi]. */
static int rows_delete(struct run *r, int ti, int64_t lo, int64_t hi)
{
    struct mtable *t = &r->t[ti];
    if (execf(r, "DELETE FROM t%d WHERE id BETWEEN %" PRId64 " AND %" PRId64, ti, lo, hi))
        return 1;
    int found;
    size_t a = row_find(t, lo, &found), b = a;
    while (b < t->n && t->rows[b].id <= hi)
        t->sum -= t->rows[b++].h;
    if ((int64_t)(b - a) != sqlite3_changes64(r->db))
        return run_fail(r, "DELETE FROM t%d: %lld rows deleted, the model has %zu", ti,
                        (long long)sqlite3_changes64(r->db), b - a);
    memmove(&t->rows[a], &t->rows[b], (t->n - b) * sizeof *t->rows);
    t->n -= b - a;
    return 0;
}

static int table_create(struct run *r, int ti)
{
    if (execf(r, "CREATE TABLE t%d(id INTEGER PRIMARY KEY, txn INTEGER, k INTEGER, pad BLOB,"
                 " ck INTEGER)",
              ti))
        return 1;
    r->t[ti].exists = 1;
    return 0;
}

static int table_drop(struct run *r, int ti)
{
    if (execf(r, "DROP TABLE t%d", ti))
        return 1;
    struct mtable *t = &r->t[ti];
    t->exists = 0;
    t->idx = 0;
    t->n = 0;
    t->sum = 0;
    return 0;
}

/* A table that exists, at random (t0 always does after setup). */
static int pick_table(struct run *r)
{
    int c[NT], n = 0;
    for (int i = 0; i < NT; i++)
        if (r->t[i].exists)
            c[n++] = i;
    return n ? c[rnd_below(&r->rng, (uint64_t)n)] : 0;
}

static int op_insert(struct run *r, int ti, int nrows)
{
    for (int i = 0; i < nrows && !r->failed; i++) {
        struct mtable *t = &r->t[ti];
        t->next_id += 1 + (rnd_below(&r->rng, 8) == 0 ? (int64_t)rnd_below(&r->rng, 50) : 0);
        row_put(r, ti, t->next_id, 0);
    }
    return r->failed;
}

static int op_update(struct run *r, int ti, int nrows)
{
    for (int i = 0; i < nrows && r->t[ti].n && !r->failed; i++)
        row_put(r, ti, r->t[ti].rows[rnd_below(&r->rng, r->t[ti].n)].id, 1);
    return r->failed;
}

static int op_delete(struct run *r, int ti, int nrows)
{
    for (int i = 0; i < nrows && r->t[ti].n && !r->failed; i++) {
        int64_t id = r->t[ti].rows[rnd_below(&r->rng, r->t[ti].n)].id;
        rows_delete(r, ti, id, id);
    }
    return r->failed;
}

/* Deletes a run of about FRAC percent of the rows of TI. */
static int op_delete_range(struct run *r, int ti, int frac)
{
    struct mtable *t = &r->t[ti];
    if (!t->n)
        return 0;
    size_t len = t->n * (size_t)frac / 100 + 1;
    size_t a = (size_t)rnd_below(&r->rng, t->n);
    size_t b = a + len - 1 < t->n ? a + len - 1 : t->n - 1;
    return rows_delete(r, ti, t->rows[a].id, t->rows[b].id);
}

/* ---------------------------------------------------------------------------
 * Snapshots and branches (workloads with snaps)
 *
 * Between transactions a step makes a snapshot or branch of the live
 * database (PRAGMA cow_snapshot / cow_branch), deletes one (cow_delete),
 * or makes a branch of a snapshot or a snapshot of a branch through the C
 * API (cowvfs_container_branch / _snapshot); some transactions take a
 * snapshot before their COMMIT, some of them after SQLite spilled pages to
 * the database file or WAL.  Each one made is recorded with the model
 * state it must hold and the ops of its making and deletion; nothing
 * writes to the branches, so a branch too holds exactly that state.
 */

/* At most this many exist at once: every crash state opens and reads each
 * one, so they cost check time. */
#define SNAP_MAXLIVE 3

/* Sets O to the ops from START up to now; it is durable once its last
 * flush completed (without one, never). */
static void span_set(struct opspan *o, size_t start)
{
    o->start = start;
    o->ret = g.nops;
    o->durable = SIZE_MAX;
    for (size_t i = g.nops; i > start; i--)
        if (g.ops[i - 1].type == OP_FLUSH) {
            o->durable = i;
            break;
        }
}

/* The name the next snapshot or branch (KIND) gets. */
static void rec_name(const struct run *r, int kind, char *name, size_t n)
{
    snprintf(name, n, "%c%zu", kind == COWVFS_SNAPSHOT ? 's' : 'b', r->nrecs);
}

/* Records snapshot or branch NAME (KIND) of SOURCE ("": the live
 * database), made by the ops since START, which holds the database after
 * transaction K (model WANT). */
static struct snaprec *rec_add(struct run *r, const char *name, int kind, const char *source,
                               int k, const struct snap *want, size_t start)
{
    if (r->nrecs == r->caprecs) {
        r->caprecs = r->caprecs ? 2 * r->caprecs : 16;
        r->recs = xrealloc(r->recs, r->caprecs * sizeof *r->recs);
    }
    struct snaprec *rec = &r->recs[r->nrecs++];
    memset(rec, 0, sizeof *rec);
    snprintf(rec->name, sizeof rec->name, "%s", name);
    snprintf(rec->source, sizeof rec->source, "%s", source);
    rec->kind = kind;
    rec->k = k;
    rec->live_k = r->ntxn - 1;
    rec->want = *want;
    span_set(&rec->made, start);
    rec->gone.start = rec->gone.ret = rec->gone.durable = SIZE_MAX;
    r->nlive++;
    return rec;
}

/* The record named NAME, or NULL. */
static const struct snaprec *rec_find(const struct run *r, const char *name)
{
    char c, extra;
    size_t i;
    if (sscanf(name, "%c%zu%c", &c, &i, &extra) != 2 || i >= r->nrecs ||
        strcmp(r->recs[i].name, name) != 0)
        return NULL;
    return &r->recs[i];
}

/* A snapshot or branch (KIND) of the live database by its pragma: the
 * last committed state, also inside a write transaction (IN_TXN). */
static int snap_make(struct run *r, int kind, int in_txn)
{
    char name[16];
    size_t start = g.nops;
    rec_name(r, kind, name, sizeof name);
    if (execf(r, "PRAGMA cow_%s('%s')", kind == COWVFS_SNAPSHOT ? "snapshot" : "branch", name))
        return 1;
    rec_add(r, name, kind, "", r->ntxn - 1, &r->snaps[r->ntxn], start)->in_txn = in_txn;
    return 0;
}

/* One step between transactions that makes or deletes a snapshot or
 * branch.  Only the C API reaches a source other than the live database
 * (the workload's connection is the live database's). */
static int wl_snap(struct run *r)
{
    enum { SNAP, BRANCH, DELETE, API, NKINDS };
    int weight[NKINDS] = {35, 25, 25, 15};
    if (r->nlive == 0)
        weight[DELETE] = weight[API] = 0;
    if (r->nlive >= SNAP_MAXLIVE)
        weight[SNAP] = weight[BRANCH] = weight[API] = 0;
    int kind = pick_weighted(&r->rng, weight, NKINDS);

    struct step *s;
    char name[16];
    if (kind == SNAP || kind == BRANCH) {
        int sk = kind == SNAP ? COWVFS_SNAPSHOT : COWVFS_BRANCH;
        rec_name(r, sk, name, sizeof name);
        s = step_begin(r, STEP_OTHER, "cow_%s('%s') of txn %d",
                       sk == COWVFS_SNAPSHOT ? "snapshot" : "branch", name, r->ntxn - 1);
        snap_make(r, sk, 0);
        step_end(s);
        return r->failed;
    }
    /* a random one of those that exist */
    size_t pick = (size_t)rnd_below(&r->rng, (uint64_t)r->nlive), i;
    for (i = 0; i < r->nrecs; i++)
        if (r->recs[i].gone.start == SIZE_MAX && pick-- == 0)
            break;
    if (kind == DELETE) {
        s = step_begin(r, STEP_OTHER, "cow_delete('%s')", r->recs[i].name);
        if (!execf(r, "PRAGMA cow_delete('%s')", r->recs[i].name)) {
            span_set(&r->recs[i].gone, s->start);
            r->nlive--;
            r->ndeletes++;
        }
    } else {
        const struct snaprec src = r->recs[i]; /* rec_add may move it */
        int sk = src.kind == COWVFS_SNAPSHOT ? COWVFS_BRANCH : COWVFS_SNAPSHOT;
        char *err = NULL;
        rec_name(r, sk, name, sizeof name);
        s = step_begin(r, STEP_OTHER, "cowvfs_container_%s('%s') of %s (txn %d)",
                       sk == COWVFS_SNAPSHOT ? "snapshot" : "branch", name, src.name, src.k);
        int rc = sk == COWVFS_SNAPSHOT ? cowvfs_container_snapshot(g.path, src.name, name, &err)
                                       : cowvfs_container_branch(g.path, src.name, name, &err);
        if (rc != SQLITE_OK)
            run_fail(r, "%s: %d: %s (last log: %s)", s->what, rc, err ? err : "?", g.lastlog);
        else
            rec_add(r, name, sk, src.name, src.k, &src.want, s->start);
        sqlite3_free(err);
    }
    step_end(s);
    return r->failed;
}

/* One write transaction of a few random operations, then its row in tx. */
static int wl_txn(struct run *r, int bulk)
{
    int k = r->ntxn;
    char what[80] = "";
    size_t wl = 0;
    struct step *s = step_begin(r, STEP_TXN, "txn %d", k);
#define WHAT(...) (wl += (size_t)snprintf(what + wl, wl < sizeof what ? sizeof what - wl : 0, \
                                          __VA_ARGS__),                                      \
                   wl = wl < sizeof what ? wl : sizeof what)
    if (exec(r, "BEGIN"))
        return 1;
    /* what SQLite wrote before this transaction: more means it spilled */
    uint64_t spill0 = g.nwrites[ROLE_DB] + g.nwrites[ROLE_WAL];
    if (k == 0) {
        /* setup: tx and t0 */
        if (exec(r, "CREATE TABLE tx(n INTEGER PRIMARY KEY, tag INTEGER)") || table_create(r, 0))
            return 1;
        op_insert(r, 0, 20);
        WHAT(" setup");
    } else if (bulk) {
        int ti = pick_table(r);
        op_insert(r, ti, 60 + (int)rnd_below(&r->rng, 120));
        WHAT(" bulk t%d", ti);
    } else {
        int nop = 1 + (int)rnd_below(&r->rng, 3);
        for (int i = 0; i < nop && !r->failed; i++) {
            int ti = pick_table(r);
            uint64_t x = rnd_below(&r->rng, 100);
            if (x < 35) {
                op_insert(r, ti, 1 + (int)rnd_below(&r->rng, 8));
                WHAT(" ins t%d", ti);
            } else if (x < 55) {
                op_update(r, ti, 1 + (int)rnd_below(&r->rng, 6));
                WHAT(" upd t%d", ti);
            } else if (x < 70) {
                op_delete(r, ti, 1 + (int)rnd_below(&r->rng, 6));
                WHAT(" del t%d", ti);
            } else if (x < 76) {
                op_delete_range(r, ti, 20 + (int)rnd_below(&r->rng, 60));
                WHAT(" delrange t%d", ti);
            } else if (x < 84) {
                int tj = 1 + (int)rnd_below(&r->rng, NT - 1);
                if (!r->t[tj].exists) {
                    table_create(r, tj);
                    op_insert(r, tj, (int)rnd_below(&r->rng, 30));
                    WHAT(" create t%d", tj);
                } else {
                    table_drop(r, tj);
                    WHAT(" drop t%d", tj);
                }
            } else if (x < 92) {
                unsigned b = 1u << rnd_below(&r->rng, 2);
                if (r->t[ti].idx & b) {
                    execf(r, "DROP INDEX i%d%c", ti, b == 1 ? 'a' : 'b');
                    WHAT(" dropidx i%d%c", ti, b == 1 ? 'a' : 'b');
                } else {
                    execf(r,
                          b == 1 ? "CREATE INDEX i%da ON t%d(k)"
                                 : "CREATE INDEX i%db ON t%d(txn, id)",
                          ti, ti);
                    WHAT(" idx i%d%c", ti, b == 1 ? 'a' : 'b');
                }
                r->t[ti].idx ^= b;
            } else {
                op_update(r, ti, 10 + (int)rnd_below(&r->rng, 30));
                WHAT(" updmany t%d", ti);
            }
        }
    }
    /* A snapshot inside this transaction holds the one before it: bulk
     * transactions have usually spilled (written the database file in
     * rollback mode, uncommitted frames in WAL mode) by now. */
    if (r->w->snaps && k > 0 && !r->failed && r->nlive < SNAP_MAXLIVE &&
        rnd_below(&r->rng, 100) < (bulk ? 50u : (unsigned)r->w->snaps / 2)) {
        int spilled = g.nwrites[ROLE_DB] + g.nwrites[ROLE_WAL] != spill0;
        int sk = rnd_below(&r->rng, 3) ? COWVFS_SNAPSHOT : COWVFS_BRANCH;
        char name[16];
        rec_name(r, sk, name, sizeof name);
        if (snap_make(r, sk, 1 + spilled))
            return 1;
        WHAT(" +%s%s", name, spilled ? " (spilled)" : "");
        r->nintxn++;
        r->nspilled += spilled;
    }
#undef WHAT
    if (r->failed)
        return 1;
    if (execf(r, "INSERT INTO tx(n, tag) VALUES(%d, %lld)", k, (long long)tx_tag(k)) ||
        exec(r, "COMMIT"))
        return 1;
    step_end(s);
    s->txn = k;
    s->durable = durable(r->jm, r->sy);
    snprintf(s->what, sizeof s->what, "txn %d (%s %s):%s", k, jm_name[r->jm], sy_name[r->sy],
             what);
    r->ntxn++;
    snap_take(r, &r->snaps[r->ntxn]);
    return 0;
}

/* A step that changes no content: checkpoint, VACUUM, reopen, ... */
static int wl_other(struct run *r)
{
    enum { CKPT, VACUUM, INCR, REOPEN, JMODE, SYNC, NKINDS };
    int weight[NKINDS] = {0};
    weight[CKPT] = r->jm == JM_WAL ? 30 : 0;
    weight[VACUUM] = 15;
    weight[INCR] = strcmp(r->w->vacuum, "INCREMENTAL") == 0 ? 15 : 0;
    weight[REOPEN] = 15;
    weight[JMODE] = r->w->mixed ? 15 : 0;
    weight[SYNC] = r->w->mixed ? 10 : 0;
    int kind = pick_weighted(&r->rng, weight, NKINDS);

    struct step *s;
    if (kind == CKPT) {
        static const char *const mode[] = {"PASSIVE", "FULL", "RESTART", "TRUNCATE"};
        const char *m = mode[rnd_below(&r->rng, 4)];
        s = step_begin(r, STEP_OTHER, "wal_checkpoint(%s)", m);
        execf(r, "PRAGMA wal_checkpoint(%s)", m);
    } else if (kind == VACUUM) {
        s = step_begin(r, STEP_OTHER, "VACUUM");
        exec(r, "VACUUM");
    } else if (kind == INCR) {
        s = step_begin(r, STEP_OTHER, "incremental_vacuum");
        exec(r, "PRAGMA incremental_vacuum");
    } else if (kind == REOPEN) {
        s = step_begin(r, STEP_OTHER, "close and reopen");
        if (!wl_close(r))
            wl_open(r);
    } else if (kind == JMODE) {
        int jm = (int)rnd_below(&r->rng, 4);
        s = step_begin(r, STEP_OTHER, "journal_mode=%s", jm_name[jm]);
        if (!execf(r, "PRAGMA journal_mode=%s", jm_name[jm]))
            r->jm = jm;
    } else {
        int sy = 1 + (int)rnd_below(&r->rng, 3);
        s = step_begin(r, STEP_OTHER, "synchronous=%s", sy_name[sy]);
        if (!execf(r, "PRAGMA synchronous=%s", sy_name[sy]))
            r->sy = sy;
    }
    step_end(s);
    return r->failed;
}

static void run_free(struct run *r)
{
    if (r->db)
        sqlite3_close(r->db);
    for (int i = 0; i < NT; i++)
        free(r->t[i].rows);
    free(r->snaps);
    free(r->steps);
    free(r->recs);
    memset(r, 0, sizeof *r);
}

static void record_reset(void)
{
    for (size_t i = 0; i < g.nops; i++)
        free(g.ops[i].data);
    g.nops = 0;
    g.trace = 0;
    for (int i = 0; i < NROLES; i++)
        shadow_free(&g.shadow[i]);
    g.vclock = 0;
    memset(g.nwrites, 0, sizeof g.nwrites);
}

/*
 * The record phase: runs workload W with SEED for NTXN transactions on a
 * fresh device, logging ops, versions and steps into R.  Returns 0, or 1
 * with R->errbuf set.
 */
static int record(struct run *r, const struct workload *w, uint64_t seed, int ntxn)
{
    memset(r, 0, sizeof *r);
    r->w = w;
    r->seed = seed;
    r->rng = mix64(seed ^ hash_bytes(w->name, strlen(w->name), 0));
    r->jm = w->journal;
    r->sy = w->sync;
    r->snaps = xrealloc(NULL, (size_t)(ntxn + 2) * sizeof *r->snaps);
    snap_take(r, &r->snaps[0]);
    record_reset();
    g.vfs_rng = mix64(r->rng ^ 0x7261);
    sqlite3_randomness(0, NULL); /* SQLite reseeds from shimRandomness */

    struct cow_dev *dev = memdev_new(NULL);
    g.cur = dev;
    g.recording = 1;
    if (wl_open(r) == 0) {
        while (r->ntxn < ntxn && !r->failed) {
            if (w->snaps && r->ntxn > 0 && rnd_below(&r->rng, 100) < (uint64_t)w->snaps) {
                wl_snap(r);
                continue;
            }
            uint64_t x = rnd_below(&r->rng, 100);
            if (r->ntxn > 0 && x < 14)
                wl_other(r);
            else
                wl_txn(r, r->ntxn > 0 && x < 18);
        }
    }
    if (r->db && !r->failed) {
        struct step *s = step_begin(r, STEP_OTHER, "close");
        wl_close(r);
        step_end(s);
    }
    g.recording = 0;
    if (r->db) {
        sqlite3_close(r->db);
        r->db = NULL;
    }
    g.cur = NULL;
    if (g.nopen) {
        run_fail(r, "the store is still open after the last connection closed");
        g.nopen = 0;
    }
    dev->close(dev);
    return r->failed;
}

/* ---------------------------------------------------------------------------
 * Checking one crash state
 */

struct state {
    long number;           /* K of --state K */
    size_t point;          /* ops [0, point) happened */
    const char *kind;      /* how the pending writes were chosen */
    size_t nunits, kept, torn, nsizes, kept_sizes;
    int app_crash;         /* every pending write kept (an application crash) */
    int unpublished;       /* a new container not yet at its path: no container */
};

/* The bounds on the transaction a crash state may hold. */
struct bounds {
    int kmax;        /* last transaction begun */
    int kmin;        /* last whose COMMIT returned durably (or at all, app crash),
                      * or committed before a snapshot whose making returned */
    int kmin_step;   /* its step, or -1 if a snapshot's making raised kmin */
    int kmin_rec;    /* that snapshot (index in run.recs), or -1 */
    int inflight;    /* the step in flight at the crash point, or -1 */
};

/* 1 if what the ops O did must survive crash state S: the operation had
 * returned (snapshots, branches and deletions are durable when they
 * return: include/store.h), or its last flush had completed. */
static int span_done(const struct opspan *o, const struct state *s)
{
    return o->start != SIZE_MAX && (s->point >= o->ret || s->point >= o->durable);
}

/* What crash state S must hold of snapshot or branch REC: it exists once
 * its making survives and until its deletion begins, it is gone before
 * its making began and once its deletion survives, and in between (a
 * crash inside either operation) it may be there or not. */
enum { REC_ABSENT, REC_EITHER, REC_PRESENT };
static int rec_expect(const struct snaprec *rec, const struct state *s)
{
    if (s->point <= rec->made.start || span_done(&rec->gone, s))
        return REC_ABSENT;
    if (span_done(&rec->made, s) && s->point <= rec->gone.start)
        return REC_PRESENT;
    return REC_EITHER;
}

static void bounds_at(const struct run *r, const struct state *s, struct bounds *b)
{
    b->kmax = -1;
    b->kmin = -1;
    b->kmin_step = -1;
    b->kmin_rec = -1;
    b->inflight = -1;
    for (size_t i = 0; i < r->nsteps; i++) {
        const struct step *st = &r->steps[i];
        if (st->start < s->point && st->ret >= s->point && b->inflight < 0)
            b->inflight = (int)i;
        if (st->kind != STEP_TXN)
            continue;
        if (st->start < s->point)
            b->kmax = st->txn;
        if (st->ret <= s->point && (st->durable || s->app_crash)) {
            b->kmin = st->txn;
            b->kmin_step = (int)i;
        }
    }
    /* Making a snapshot writes back and commits everything before it with
     * a flush (store/subvol.c), so the live database keeps at least the
     * transaction that was committed then, whatever synchronous says. */
    for (size_t i = 0; i < r->nrecs; i++) {
        if (span_done(&r->recs[i].made, s) && r->recs[i].live_k > b->kmin) {
            b->kmin = r->recs[i].live_k;
            b->kmin_step = -1;
            b->kmin_rec = (int)i;
        }
    }
}

/* fscks the image (the memfd under g.img); 0 if clean. */
static int check_fsck(const char *when, struct msg *m)
{
    char *rep = NULL;
    size_t rlen = 0;
    FILE *out = open_memstream(&rep, &rlen);
    struct cow_fsck_result res;
    int n = cow_fsck(g.memfd_path, COW_FSCK_DATA | (g.verbose ? COW_FSCK_NOTES : 0), out, &res);
    fclose(out);
    if (n != 0)
        msg_add(m, "fsck %s: %d problems:\n%.2000s", when, n, rep);
    else if (g.verbose)
        printf("fsck %s: clean (generation %" PRIu64 ", %" PRIu64 " log records, %" PRIu64
               " notes)\n%s",
               when, res.generation, res.log_records, res.notes, rep);
    free(rep);
    return n != 0;
}

/*
 * Checks file ROLE of a crash state, SIZE bytes in BUF (zero-padded to a
 * whole sector): every sector must hold zeros or something SQLite once
 * wrote there (else garbage), and the whole file must equal SQLite's view
 * of it at one instant no later than TMAX (else a mix of old and new
 * content, or stale data).
 */
static int check_file(int role, const uint8_t *buf, uint64_t size, uint64_t tmax, struct msg *m)
{
    const struct shadow *sh = &g.shadow[role];
    const char *name = role_store_name[role];
    static const struct verlist none;
    struct tset a = {0}, b = {0};
    int nbad = 0, mixed = 0, bad = 0;
    uint64_t mixed_at = 0;

    tset_add(&a, 0, tmax + 1);
    if (size > sh->maxsize) {
        msg_add(m, "data: %s is %" PRIu64 " bytes, more than SQLite ever wrote (%" PRIu64 ")\n",
                name, size, sh->maxsize);
        bad = 1;
    }
    tset_match(&a, &sh->sizes, size, 1, &b);
    if (b.n == 0 && !bad) {
        msg_add(m, "data: %s is %" PRIu64 " bytes, a size it never had up to the crash\n", name,
                size);
        bad = 1;
    }
    struct tset t = a;
    a = b;
    b = t;
    for (uint64_t i = 0; i * SECTOR < size; i++) {
        const uint8_t *sec = buf + i * SECTOR;
        uint64_t h = sector_hash(sec);
        int ever = tset_match(&a, i < sh->nsec ? &sh->sec[i] : &none, h, 0, &b);
        if (!ever && h != g.zero_hash) {
            if (nbad++ < 4) {
                msg_add(m, "data: %s bytes %" PRIu64 "..%" PRIu64
                           " hold what SQLite never wrote there:",
                        name, i * SECTOR, i * SECTOR + SECTOR - 1);
                for (int k = 0; k < 16; k++)
                    msg_add(m, " %02x", sec[k]);
                msg_add(m, " ...\n");
            }
            bad = 1;
        } else if (b.n == 0 && a.n != 0 && !mixed) {
            mixed = 1;
            mixed_at = i;
        }
        t = a;
        a = b;
        b = t;
    }
    if (nbad > 4)
        msg_add(m, "data: %s: %d such sectors in all\n", name, nbad);
    if (mixed && !nbad) {
        msg_add(m, "data: %s (%" PRIu64 " bytes) is no state SQLite ever saw: bytes %" PRIu64
                   "..%" PRIu64 " do not belong with the bytes before them (stale or mixed "
                   "content)\n",
                name, size, mixed_at * SECTOR, mixed_at * SECTOR + SECTOR - 1);
        bad = 1;
    }
    if (g.verbose)
        printf("data: %s: %" PRIu64 " bytes, %d sectors of garbage, %s\n", name, size, nbad,
               mixed ? "no single instant" : "as SQLite saw it at some instant");
    free(a.iv);
    free(b.iv);
    return bad;
}

/* The last shadow change that may be durable at a crash before op POINT:
 * every change that began before POINT. */
static uint64_t tmax_at(size_t point)
{
    uint64_t lo = 0, hi = g.vclock;
    while (lo < hi) {
        uint64_t mid = (lo + hi + 1) / 2;
        if (g.mut_op[mid] < point)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Opens the image read-only with the store (its log replayed in memory)
 * and checks db, db-journal and db-wal with check_file().  Sets PRE[i] to
 * what the image holds of R's snapshot or branch i before recovery: 0
 * (nothing), its kind, or COW_SUBVOL_INCOMPLETE (an unfinished branch,
 * which only the next writable open deletes). */
static int check_data(const struct run *r, size_t point, int *pre, struct msg *m)
{
    cow_store *st = NULL;
    int bad = 0;
    uint64_t tmax = tmax_at(point);
    g.cur = &ramdev;
    int rc = cow_store_open(g.path, COW_OPEN_READONLY, &st);
    if (rc != COW_OK) {
        msg_add(m, "data: the store does not open the crash image read-only: %s: %s\n",
                cow_strerror(rc), cow_store_last_error(NULL));
        bad = 1;
        goto out;
    }
    for (int role = 0; role < NROLES; role++) {
        cow_file *f = NULL;
        uint64_t size = 0;
        int exists = 0;
        uint8_t *buf = NULL;
        rc = cow_exists(st, role_store_name[role], &exists);
        if (rc == COW_OK && exists)
            rc = cow_file_open(st, role_store_name[role], 0, &f);
        if (rc == COW_OK && exists)
            rc = cow_file_size(f, &size);
        size_t n = (size_t)((size + SECTOR - 1) / SECTOR * SECTOR), nread = 0;
        if (rc == COW_OK) {
            buf = xrealloc(NULL, n);
            if (n)
                rc = cow_file_read(f, buf, n, 0, &nread);
        }
        if (rc != COW_OK) {
            msg_add(m, "data: %s: %s: %s\n", role_store_name[role], cow_strerror(rc),
                    cow_store_last_error(st));
            bad = 1;
        } else {
            bad |= check_file(role, buf, size, tmax, m); /* a missing file is empty */
        }
        free(buf);
        if (f)
            cow_file_close(f);
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        rc = cow_subvol_kind(st, r->recs[i].name, &pre[i]);
        if (rc == COW_ENOENT) {
            pre[i] = 0;
        } else if (rc != COW_OK) {
            msg_add(m, "data: snapshot or branch %s: %s: %s\n", r->recs[i].name,
                    cow_strerror(rc), cow_store_last_error(st));
            pre[i] = -1;
            bad = 1;
        }
    }
out:
    if (st)
        cow_store_close(st);
    g.cur = NULL;
    return bad;
}

/* sqlite3_step() for loops: SQLITE_OK for a row, SQLITE_DONE at the end,
 * else the error. */
static int step_row(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/*
 * Reads database DB through SQLite into *GOT: PRAGMA integrity_check, the
 * schema, table tx and every row, each of which must carry its checksum
 * and a transaction no later than KMAX (KMAX_IS says which that is).  *PK
 * is the last transaction tx holds (-1 without tx).  WHO names the
 * database in messages.  Returns 0,
 * 1 if the content is wrong, -1 if it could not be read.
 */
static int read_db(sqlite3 *db, const char *who, int kmax, const char *kmax_is, struct snap *got,
                   int *pk, struct msg *m)
{
    sqlite3_stmt *st = NULL;
    int bad = 0, has_tx = 0, k = -1;
    memset(got, 0, sizeof *got);
    *pk = -1;
    /* integrity_check */
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    int nrow = 0, ok = 0;
    while (rc == SQLITE_OK && (rc = step_row(st)) == SQLITE_OK) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (nrow++ == 0 && t && strcmp(t, "ok") == 0)
            ok = 1;
        else if (nrow < 6)
            msg_add(m, "%s: integrity_check: %s\n", who, t ? t : "(null)");
    }
    if (rc != SQLITE_DONE) {
        msg_add(m, "%s: integrity_check: %s (last log: %s)\n", who, sqlite3_errmsg(db),
                g.lastlog);
        goto fatal;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!ok || nrow != 1)
        goto fatal;
    /* the schema */
    rc = sqlite3_prepare_v2(db, "SELECT type, name FROM sqlite_schema", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = step_row(st)) == SQLITE_OK) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        int ti;
        char c, extra;
        if (!type || !name) {
            rc = SQLITE_CORRUPT;
            break;
        }
        if (strcmp(type, "table") == 0 && strcmp(name, "tx") == 0)
            has_tx = 1;
        else if (strcmp(type, "table") == 0 && sscanf(name, "t%d%c", &ti, &extra) == 1 &&
                 ti >= 0 && ti < NT)
            got->exists[ti] = 1;
        else if (strcmp(type, "index") == 0 && sscanf(name, "i%d%c%c", &ti, &c, &extra) == 2 &&
                 ti >= 0 && ti < NT && (c == 'a' || c == 'b'))
            got->idx[ti] |= (uint8_t)(c == 'a' ? 1 : 2);
        else {
            msg_add(m, "%s: unexpected %s %s in the schema\n", who, type, name);
            bad = 1;
        }
    }
    if (rc != SQLITE_DONE) {
        msg_add(m, "%s: reading the schema: %s\n", who, sqlite3_errmsg(db));
        goto fatal;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* tx: rows 0..k, each with its tag */
    if (has_tx) {
        int64_t expect = 0;
        rc = sqlite3_prepare_v2(db, "SELECT n, tag FROM tx ORDER BY n", -1, &st, NULL);
        while (rc == SQLITE_OK && (rc = step_row(st)) == SQLITE_OK) {
            int64_t n = sqlite3_column_int64(st, 0);
            if (n != expect || sqlite3_column_int64(st, 1) != tx_tag(n)) {
                msg_add(m, "%s: tx holds row %" PRId64 " (tag %s) where row %" PRId64
                           " belongs\n",
                        who, n, sqlite3_column_int64(st, 1) == tx_tag(n) ? "right" : "wrong",
                        expect);
                bad = 1;
                break;
            }
            expect++;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_OK) {
            msg_add(m, "%s: reading tx: %s\n", who, sqlite3_errmsg(db));
            goto fatal;
        }
        sqlite3_finalize(st);
        st = NULL;
        k = (int)expect - 1;
        if (k < 0) {
            msg_add(m, "%s: tx exists but is empty\n", who);
            bad = 1;
        }
    }
    /* the rows of every table */
    for (int ti = 0; ti < NT; ti++) {
        if (!got->exists[ti])
            continue;
        char sql[64];
        int nck = 0;
        snprintf(sql, sizeof sql, "SELECT id, txn, k, pad, ck FROM t%d", ti);
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        while (rc == SQLITE_OK && (rc = step_row(st)) == SQLITE_OK) {
            int64_t id = sqlite3_column_int64(st, 0), txn = sqlite3_column_int64(st, 1);
            int64_t kk = sqlite3_column_int64(st, 2), ck = sqlite3_column_int64(st, 4);
            const void *pad = sqlite3_column_blob(st, 3);
            size_t n = (size_t)sqlite3_column_bytes(st, 3);
            if (!pad)
                pad = "";
            if (row_ck(ti, id, txn, kk, pad, n) != ck && nck++ < 3) {
                msg_add(m, "%s: t%d row %" PRId64 " (txn %" PRId64
                           ") fails its checksum: garbage in a row\n",
                        who, ti, id, txn);
                bad = 1;
            }
            if (txn > kmax) {
                msg_add(m, "%s: t%d row %" PRId64 " was written by txn %" PRId64
                           ", later than txn %d, %s\n",
                        who, ti, id, txn, kmax, kmax_is);
                bad = 1;
            }
            got->count[ti]++;
            got->sum[ti] += row_hash(ti, id, txn, kk, pad, n, ck);
        }
        if (rc != SQLITE_DONE) {
            msg_add(m, "%s: reading t%d: %s (last log: %s)\n", who, ti, sqlite3_errmsg(db),
                    g.lastlog);
            goto fatal;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    *pk = k;
    return bad;
fatal:
    sqlite3_finalize(st);
    return -1;
}

/* Compares GOT, which holds transaction K by its table tx, with WANT, the
 * model after that transaction; WHY says what a difference means. */
static int snap_compare(const char *who, int k, const struct snap *got, const struct snap *want,
                        const char *why, struct msg *m)
{
    int bad = 0;
    for (int ti = 0; ti < NT; ti++) {
        if (got->exists[ti] != want->exists[ti] || got->idx[ti] != want->idx[ti] ||
            got->count[ti] != want->count[ti] || got->sum[ti] != want->sum[ti]) {
            msg_add(m, "%s: tx says txn %d, but t%d differs from the model after it: "
                       "%s, indexes %d, %" PRIu64 " rows (model: %s, indexes %d, %" PRIu64
                       " rows%s): %s\n",
                    who, k, ti, got->exists[ti] ? "exists" : "missing", got->idx[ti],
                    got->count[ti], want->exists[ti] ? "exists" : "missing", want->idx[ti],
                    want->count[ti],
                    got->count[ti] == want->count[ti] && got->sum[ti] != want->sum[ti]
                        ? ", same count, different rows"
                        : "",
                    why);
            bad = 1;
        }
    }
    return bad;
}

/* The store's kinds and the VFS's are compared as they are. */
_Static_assert(COW_SUBVOL_SNAPSHOT == COWVFS_SNAPSHOT && COW_SUBVOL_BRANCH == COWVFS_BRANCH,
               "snapshot kinds differ between store.h and cowvfs.h");

/* The listing of a container after recovery (cowvfs_container_list), per
 * record of the run: its kind, or 0 if it is not listed. */
struct listing {
    const struct run *r;
    int *kind;
    int *src_deleted;    /* listed with source "(deleted)" */
    struct msg *m;
    int bad;
};

/* cowvfs_container_list()'s callback: fills L->kind. */
static int listing_cb(void *arg, const cowvfs_subvol_info *si)
{
    struct listing *l = arg;
    const struct snaprec *rec = rec_find(l->r, si->zName);
    if (!rec) {
        msg_add(l->m, "snapshots: %s %s is listed, but the workload never made it\n",
                si->eKind == COWVFS_SNAPSHOT ? "snapshot" : "branch", si->zName);
        l->bad = 1;
        return 0;
    }
    size_t i = (size_t)(rec - l->r->recs);
    l->kind[i] = si->eKind;
    l->src_deleted[i] = si->zSource && strcmp(si->zSource, "(deleted)") == 0;
    if (si->eKind != rec->kind || (si->zSource == NULL) != (rec->source[0] == 0) ||
        (si->zSource && !l->src_deleted[i] && strcmp(si->zSource, rec->source) != 0)) {
        msg_add(l->m, "snapshots: %s is listed as a %s of %s, but it is a %s of %s\n",
                si->zName, si->eKind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                si->zSource ? si->zSource : "the live database",
                rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                rec->source[0] ? rec->source : "the live database");
        l->bad = 1;
    }
    return 0;
}

/* Adds WHAT and the ops of O to M. */
static void span_describe(struct msg *m, const char *what, const struct opspan *o)
{
    msg_add(m, "%s at ops %zu..%zu", what, o->start, o->ret);
    if (o->durable != SIZE_MAX)
        msg_add(m, ", its last flush op %zu", o->durable - 1);
}

/*
 * Checks the snapshots and branches of crash state S after recovery, the
 * live database open (so the container stays open): the listing holds
 * exactly those that must or may exist (rec_expect), each of the kind and
 * source made, and the same as before recovery (PRE, from check_data: an
 * unfinished branch only while its making was in flight); each one opens
 * through SQLite, passes integrity_check, and holds exactly the state it
 * was made of.  Branches open read-write, so SQLite may write them (the
 * fsck after recovery runs later).  *UNFINISHED is set if PRE had an
 * unfinished branch, which the live database's open must have deleted.
 */
static int check_snaps(const struct run *r, const struct state *s, const int *pre,
                       int checkpoint, int *unfinished, struct msg *m)
{
    struct listing l = {r, NULL, NULL, m, 0};
    char *err = NULL;
    l.kind = xrealloc(NULL, r->nrecs * sizeof *l.kind);
    l.src_deleted = xrealloc(NULL, r->nrecs * sizeof *l.src_deleted);
    memset(l.kind, 0, r->nrecs * sizeof *l.kind);
    memset(l.src_deleted, 0, r->nrecs * sizeof *l.src_deleted);
    int rc = cowvfs_container_list(g.path, listing_cb, &l, &err);
    if (rc != SQLITE_OK) {
        msg_add(m, "snapshots: cowvfs_container_list: %d: %s (last log: %s)\n", rc,
                err ? err : "?", g.lastlog);
        l.bad = 1;
        goto out;
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct snaprec *rec = &r->recs[i];
        int e = rec_expect(rec, s), has = l.kind[i] != 0;
        if (e == REC_EITHER)
            g.either[has]++;
        if (pre[i] == COW_SUBVOL_INCOMPLETE) {
            *unfinished = 1;
            if (s->point <= rec->made.start || span_done(&rec->made, s)) {
                msg_add(m, "snapshots: %s was an unfinished branch before recovery, but its "
                           "making was not in flight (",
                        rec->name);
                span_describe(m, "made", &rec->made);
                msg_add(m, ")\n");
                l.bad = 1;
            }
        } else if (pre[i] >= 0 && pre[i] != l.kind[i]) {
            msg_add(m, "snapshots: %s was %s before recovery and %s after it\n", rec->name,
                    pre[i] ? "there" : "not there", has ? "listed" : "not listed");
            l.bad = 1;
        }
        if ((e == REC_PRESENT && !has) || (e == REC_ABSENT && has)) {
            msg_add(m, "snapshots: %s %s %s, but ",
                    rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch", rec->name,
                    has ? "exists" : "is missing");
            if (e == REC_PRESENT)
                span_describe(m, "its making had survived the crash: made", &rec->made);
            else if (s->point <= rec->made.start)
                span_describe(m, "its making had not begun: made", &rec->made);
            else
                span_describe(m, "its deletion had survived the crash: deleted", &rec->gone);
            msg_add(m, "\n");
            l.bad = 1;
        }
        /* its source is named while the source is listed */
        if (has && rec->source[0]) {
            const struct snaprec *src = rec_find(r, rec->source);
            int src_has = src && l.kind[src - r->recs] != 0;
            if (src_has == l.src_deleted[i]) {
                msg_add(m, "snapshots: %s's source %s is %s, but the listing says %s\n",
                        rec->name, rec->source, src_has ? "there" : "deleted",
                        l.src_deleted[i] ? "(deleted)" : rec->source);
                l.bad = 1;
            }
        }
    }
    /* each one that exists holds exactly the state it was made of */
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct snaprec *rec = &r->recs[i];
        if (!l.kind[i])
            continue;
        char who[64];
        sqlite3 *db = NULL;
        struct snap got;
        int k;
        snprintf(who, sizeof who, "%s %s", rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                 rec->name);
        g.lastlog[0] = 0;
        char *uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0&%s=%s", g.path,
                                    rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                                    rec->name);
        rc = sqlite3_open_v2(uri, &db,
                             SQLITE_OPEN_URI | (rec->kind == COWVFS_SNAPSHOT
                                                    ? SQLITE_OPEN_READONLY
                                                    : SQLITE_OPEN_READWRITE),
                             NULL);
        sqlite3_free(uri);
        g.snapchecks++;
        if (rc != SQLITE_OK) {
            msg_add(m, "%s: open: %s (last log: %s)\n", who, sqlite3_errmsg(db), g.lastlog);
            l.bad = 1;
        } else {
            if (!checkpoint)
                sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
            int got_bad = read_db(db, who, rec->k, "the one it was made of", &got, &k, m);
            if (got_bad == 0 && k != rec->k) {
                msg_add(m, "%s: holds txn %d, but it was made of txn %d (%s)\n", who, k, rec->k,
                        rec->in_txn ? "inside the transaction after it" : "between transactions");
                got_bad = 1;
            } else if (got_bad == 0) {
                got_bad = snap_compare(who, k, &got, &rec->want,
                                       "not the committed state it was made of", m);
            }
            if (got_bad)
                l.bad = 1;
            else if (g.verbose)
                printf("%s: integrity ok, holds txn %d as made\n", who, k);
        }
        if (db && sqlite3_close(db) != SQLITE_OK) {
            msg_add(m, "%s: close: %s (last log: %s)\n", who, sqlite3_errmsg(db), g.lastlog);
            l.bad = 1;
        }
    }
    if (g.verbose) {
        int n = 0;
        for (size_t i = 0; i < r->nrecs; i++)
            n += l.kind[i] != 0;
        printf("snapshots: %d listed%s\n", n, l.bad ? "" : ", each where and as expected");
    }
out:
    sqlite3_free(err);
    free(l.kind);
    free(l.src_deleted);
    return l.bad;
}

/* After recovery, PRE's unfinished branches must be gone: the store's
 * first writable open deletes them (store.c), or they would hold their
 * space forever.  Opens the image read-only with the store. */
static int check_unfinished_gone(const struct run *r, const int *pre, struct msg *m)
{
    cow_store *st = NULL;
    int bad = 0;
    g.cur = &ramdev;
    int rc = cow_store_open(g.path, COW_OPEN_READONLY, &st);
    if (rc != COW_OK) {
        msg_add(m, "snapshots: the store does not open the image after recovery: %s: %s\n",
                cow_strerror(rc), cow_store_last_error(NULL));
        bad = 1;
        goto out;
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        int kind = 0;
        if (pre[i] != COW_SUBVOL_INCOMPLETE)
            continue;
        rc = cow_subvol_kind(st, r->recs[i].name, &kind);
        if (rc != COW_ENOENT) {
            msg_add(m, "snapshots: the unfinished branch %s is still there after recovery "
                       "(kind %d, %s)\n",
                    r->recs[i].name, kind, cow_strerror(rc));
            bad = 1;
        }
    }
out:
    if (st)
        cow_store_close(st);
    g.cur = NULL;
    if (g.nopen) {
        msg_add(m, "snapshots: the store is still open after close\n");
        bad = 1;
        g.nopen = 0;
    }
    return bad;
}

/* Reads the database through SQLite and compares it with the model; then
 * the snapshots and branches (check_snaps, with PRE from check_data). */
static int check_sqlite(const struct run *r, const struct state *s, const struct bounds *b,
                        const int *pre, int checkpoint, struct msg *m)
{
    sqlite3 *db = NULL;
    int bad = 0, k = -1, unfinished = 0;
    struct snap got;
    g.cur = &ramdev;
    g.lastlog[0] = 0;
    char *uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0", g.path);
    int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                             NULL);
    sqlite3_free(uri);
    if (rc != SQLITE_OK) {
        msg_add(m, "sqlite: open: %s (last log: %s)\n", sqlite3_errmsg(db), g.lastlog);
        bad = 1;
        goto out;
    }
    /* SQLite's checkpoint at close is ordinary work after recovery, and a
     * third of the time of a state: only some states do it. */
    if (!checkpoint)
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    int got_bad = read_db(db, "sqlite", b->kmax, "the last one begun", &got, &k, m);
    if (got_bad < 0) {
        bad = 1;
        goto snaps;
    }
    bad |= got_bad;
    /* which transaction this is */
    if (k > r->ntxn - 1 || k > b->kmax) {
        msg_add(m, "sqlite: the database holds txn %d, which had not begun (last begun: %d)\n",
                k, b->kmax);
        bad = 1;
        goto snaps;
    }
    bad |= snap_compare("sqlite", k, &got, &r->snaps[k + 1], "a transaction half there", m);
    if (k < b->kmin && b->kmin_step >= 0) {
        msg_add(m, "sqlite: the database holds txn %d, but the COMMIT of txn %d had returned "
                   "(%s)%s\n",
                k, b->kmin, r->steps[b->kmin_step].what,
                r->steps[b->kmin_step].durable ? ""
                                               : " and every write was kept (application crash)");
        bad = 1;
    } else if (k < b->kmin) {
        msg_add(m, "sqlite: the database holds txn %d, but %s %s had been made after txn %d "
                   "committed (",
                k, r->recs[b->kmin_rec].kind == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                r->recs[b->kmin_rec].name, b->kmin);
        span_describe(m, "made", &r->recs[b->kmin_rec].made);
        msg_add(m, "), which commits everything before it\n");
        bad = 1;
    }
    if (g.verbose)
        printf("sqlite: integrity ok, holds txn %d (allowed %d..%d)\n", k, b->kmin, b->kmax);
snaps:
    if (r->nrecs)
        bad |= check_snaps(r, s, pre, checkpoint, &unfinished, m);
out:
    if (db && sqlite3_close(db) != SQLITE_OK) {
        msg_add(m, "sqlite: close: %s (last log: %s)\n", sqlite3_errmsg(db), g.lastlog);
        bad = 1;
    }
    g.cur = NULL;
    if (g.nopen) {
        msg_add(m, "sqlite: the store is still open after close\n");
        bad = 1;
        g.nopen = 0;
    }
    if (unfinished)
        bad |= check_unfinished_gone(r, pre, m);
    return bad;
}

/* All the checks of one crash state, the image in g.img; 0 if it passes,
 * else 1 with M set.  SQLite's recovery changes g.img. */
static int check_state(const struct run *r, const struct state *s, struct msg *m)
{
    struct bounds b;
    int bad = 0;
    double t0 = now_secs(), t1;
    int *pre = xrealloc(NULL, r->nrecs * sizeof *pre);
    for (size_t i = 0; i < r->nrecs; i++)
        pre[i] = -1;
    bounds_at(r, s, &b);
    if (g.img_len > 0) {
        bad |= check_fsck("of the crash image", m);
        g.secs[T_FSCK] += (t1 = now_secs()) - t0;
        bad |= check_data(r, s->point, pre, m);
        g.secs[T_DATA] += (t0 = now_secs()) - t1;
    }
    if (check_sqlite(r, s, &b, pre, s->number % 4 == 3, m)) {
        bad = 1;
        g.secs[T_SQLITE] += now_secs() - t0;
    } else {
        g.secs[T_SQLITE] += (t1 = now_secs()) - t0;
        bad |= check_fsck("after recovery", m);
        g.secs[T_FSCK] += now_secs() - t1;
    }
    free(pre);
    return bad;
}

/* ---------------------------------------------------------------------------
 * Crash points and states
 */

struct opts {
    uint64_t seed;
    long min_states;      /* run rounds until this many states were checked */
    int ntxn;             /* transactions per workload */
    int per_point;        /* random states per crash point */
    int random_points;    /* random crash points per flush interval */
    int jobs;             /* worker processes */
    const char *only;     /* one workload */
    long state;           /* replay this state (-1: all) */
    uint64_t expect_trace;
    const char *save;     /* replay: write the crash image here */
    int max_report;       /* failures reported in full per workload run */
    char shape[96];       /* the options above that number the states, for replays */
};

struct totals {
    long runs, points, states, failures, dups;
    long durable;         /* states where a returned COMMIT had to be there */
    long appcrash;        /* states with every write kept */
    long sizelost;        /* states that lost size changes (grows) */
    long insnap;          /* states inside the making or deletion of a snapshot */
    long snapchecks;      /* snapshots and branches opened and read */
    long either[2];       /* ... that may exist or not: [0] absent, [1] there */
    double secs[5];       /* T_* */
};

/* Shared by the worker processes (a MAP_SHARED mapping), or private. */
static struct shared {
    pthread_mutex_t mutex; /* process-shared, robust: output and the fields below */
    long next_item;        /* the next (round, workload) to run */
    struct totals t;
} *sh;

/* Locks sh->mutex, also when a worker died holding it (a robust mutex). */
static void sh_lock(void)
{
    if (pthread_mutex_lock(&sh->mutex) == EOWNERDEAD)
        pthread_mutex_consistent(&sh->mutex);
}

/* Writes S to stdout in one piece (workers share it). */
static void emit(const char *s)
{
    sh_lock();
    fputs(s, stdout);
    fflush(stdout);
    pthread_mutex_unlock(&sh->mutex);
}

static void describe_point(const struct run *r, const struct state *s, struct msg *m)
{
    struct bounds b;
    bounds_at(r, s, &b);
    const struct op *o = s->point < g.nops ? &g.ops[s->point] : NULL;
    msg_add(m, "  crash point: op %zu of %zu (%s), %zu pending units, %zu pending size changes\n",
            s->point, g.nops,
            !o                       ? "after the last op"
            : o->type == OP_FLUSH    ? "a flush, before it completes"
            : o->type == OP_PUBLISH  ? "a new container's rename into place, before it completes"
                                     : "a write, before it",
            s->nunits, s->nsizes);
    msg_add(m, "  state: %s: kept %zu units whole, tore %zu, kept %zu of %zu size changes\n",
            s->kind, s->kept, s->torn, s->kept_sizes, s->nsizes);
    if (b.inflight >= 0)
        msg_add(m, "  in flight: step %d: %s\n", b.inflight, r->steps[b.inflight].what);
    msg_add(m, "  allowed: txn %d..%d\n", b.kmin, b.kmax);
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct snaprec *rec = &r->recs[i];
        int e = rec_expect(rec, s);
        if (s->point <= rec->made.start)
            continue;
        msg_add(m, "  %s %s of %s, txn %d%s: %s (",
                rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch", rec->name,
                rec->source[0] ? rec->source : "the live database", rec->k,
                rec->in_txn == 2   ? ", made in a transaction that had spilled"
                : rec->in_txn == 1 ? ", made in a transaction"
                                   : "",
                e == REC_PRESENT ? "must exist" : e == REC_ABSENT ? "must not exist" : "may exist");
        span_describe(m, "made", &rec->made);
        if (rec->gone.start != SIZE_MAX) {
            msg_add(m, "; ");
            span_describe(m, "deleted", &rec->gone);
        }
        msg_add(m, ")\n");
    }
}

/* 1 if crash point S lies inside the making or deletion of a snapshot or
 * branch (before its last flush completed). */
static int in_snap_op(const struct run *r, const struct state *s)
{
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct snaprec *rec = &r->recs[i];
        if ((s->point > rec->made.start && !span_done(&rec->made, s)) ||
            (rec->gone.start != SIZE_MAX && s->point > rec->gone.start &&
             !span_done(&rec->gone, s)))
            return 1;
    }
    return 0;
}

/*
 * Fills KEEP (one byte per pending unit of DEV) for state number J of a
 * crash point and returns its kind; *nsizes is how many pending size
 * changes survive.
 */
static const char *choose(uint64_t *rng, int j, int first_interval, uint8_t *keep, size_t nunits,
                          size_t nsizes, size_t *keep_sizes)
{
    const char *kind;
    *keep_sizes = nsizes;
    if (j == 0) {
        memset(keep, 0xff, nunits);
        return "all pending writes kept (application crash)";
    }
    if (j == 1 && first_interval) {
        memset(keep, 0, nunits);
        return "no pending write kept";
    }
    if (j == 1 && nsizes) {
        memset(keep, 0xff, nunits);
        *keep_sizes = rnd_below(rng, nsizes);
        return "every write kept, the last size changes lost";
    }
    uint64_t x = rnd_below(rng, 100);
    if (x < 20) {
        /* the device wrote in order and stopped, maybe mid-block */
        size_t upto = (size_t)rnd_below(rng, nunits + 1);
        for (size_t u = 0; u < nunits; u++)
            keep[u] = u < upto ? 0xff : 0;
        if (upto < nunits && rnd_below(rng, 2))
            keep[upto] = (uint8_t)((1u << (1 + rnd_below(rng, 7))) - 1);
        kind = "a prefix of the pending writes";
    } else {
        /* any subset: each unit whole, torn or lost */
        uint64_t q = 10 + rnd_below(rng, 81), torn = rnd_below(rng, 3) ? 10 : 40;
        for (size_t u = 0; u < nunits; u++) {
            uint64_t y = rnd_below(rng, 100);
            keep[u] = y < q ? 0xff : y < q + torn ? (uint8_t)(1 + rnd_below(rng, 254)) : 0;
        }
        kind = "a random subset of the pending writes, some torn";
    }
    if (nsizes && rnd_below(rng, 5) == 0)
        *keep_sizes = rnd_below(rng, nsizes + 1);
    return kind;
}

/* Lists the pending units and what the state keeps of each (-v -v). */
static void describe_units(struct cow_dev *dev, const uint8_t *keep, size_t nunits)
{
    for (size_t u = 0; u < nunits; u++) {
        uint64_t off;
        size_t len;
        int w = memdev_unit(dev, u, &off, &len);
        printf("  unit %zu: write %d, bytes %" PRIu64 "..%" PRIu64 " (block %" PRIu64 "): %s",
               u, w, off, off + len - 1, off / MEMDEV_BLOCK,
               keep[u] == 0xff ? "kept" : keep[u] ? "torn, sectors kept:" : "lost");
        for (int sec = 0; keep[u] != 0xff && sec < 8; sec++)
            if (keep[u] & (1u << sec))
                printf(" %d", sec);
        printf("\n");
    }
}

/*
 * The crash phase of one run: replays the op log into a memdev, and checks
 * states at every crash point (or only state O->state).  Adds to T.
 * Returns the number of failures.
 */
static long crash_phase(const struct run *r, const struct opts *o, struct totals *t)
{
    long failures = 0, nstate = 0;
    uint64_t rng = mix64(r->seed ^ 0xc7a54);
    struct cow_dev *dev = memdev_new(NULL);
    struct hset seen;
    memset(&seen, 0, sizeof seen);
    size_t capkeep = 64;
    uint8_t *keep = xrealloc(NULL, capkeep); /* never NULL: memset(keep, x, 0) */
    size_t interval = 0; /* flushes so far */
    size_t last_flush = 0;
    int published = 0;   /* the container is at its path (OP_PUBLISH replayed) */

    /* random crash points: in each flush interval, after random writes */
    uint8_t *is_point = xrealloc(NULL, g.nops + 1);
    memset(is_point, 0, g.nops + 1);
    for (size_t i = 0; i <= g.nops; i++) {
        if (i == g.nops || g.ops[i].type == OP_FLUSH || g.ops[i].type == OP_PUBLISH) {
            if (i < g.nops)
                is_point[i] = 1;
            size_t nw = i - last_flush;
            for (int k = 0; k < o->random_points && nw > 0; k++)
                is_point[last_flush + 1 + rnd_below(&rng, nw)] = 1;
            last_flush = i + 1;
        }
    }
    for (size_t p = 0; p <= g.nops; p++) {
        if (is_point[p]) {
            struct state s;
            memset(&s, 0, sizeof s);
            s.point = p;
            memdev_pending(dev, &s.nunits, &s.nsizes);
            if (s.nunits > capkeep) {
                capkeep = s.nunits * 2;
                keep = xrealloc(keep, capkeep);
            }
            t->points++;
            for (int j = 0; j < 2 + o->per_point; j++) {
                uint64_t srng = mix64(rng ^ mix64(p) ^ (uint64_t)j);
                s.kind = choose(&srng, j, interval == 0, keep, s.nunits, s.nsizes, &s.kept_sizes);
                s.app_crash = j == 0;
                s.kept = s.torn = 0;
                /* Before the rename of a new container is durable, the
                 * path holds no container, whatever the device kept; at
                 * the rename itself (which ends with a directory fsync)
                 * either outcome is possible. */
                s.unpublished = !published && (p == g.nops || g.ops[p].type != OP_PUBLISH ||
                                               s.app_crash || (j & 1));
                uint64_t sig = mix64(s.kept_sizes + 1);
                for (size_t u = 0; u < s.nunits && !s.unpublished; u++) {
                    s.kept += keep[u] == 0xff;
                    s.torn += keep[u] && keep[u] != 0xff;
                    if (keep[u])
                        sig = mix64(sig ^ mix64(u) ^ keep[u]);
                }
                if (s.unpublished) {
                    s.kind = "no container yet (its format was not renamed into place)";
                    sig = 0x7e3b;
                }
                if (s.app_crash)
                    sig ^= 0xa11; /* checked with stricter bounds: never a duplicate */
                if (!hset_add(&seen, sig)) {
                    t->dups++;
                    continue;
                }
                long k = s.number = nstate++;
                if (o->state >= 0 && k != o->state)
                    continue;
                size_t len = s.unpublished ? 0 : memdev_crash_size(dev, s.kept_sizes);
                img_resize(len);
                if (!s.unpublished)
                    memdev_crash_fill(dev, keep, s.kept_sizes, g.img);
                struct msg m = {0};
                if (o->state >= 0) {
                    g.verbose = g.verbose ? g.verbose : 1;
                    describe_point(r, &s, &m);
                    printf("replaying %s seed %" PRIu64 " state %ld:\n%s", r->w->name, r->seed,
                           k, m.s);
                    m.n = 0;
                    if (g.verbose > 1)
                        describe_units(dev, keep, s.nunits);
                    fflush(stdout);
                    if (o->save) {
                        FILE *f = fopen(o->save, "wb");
                        if (!f || fwrite(g.img, 1, len, f) != len)
                            fprintf(stderr, "crash: cannot write %s\n", o->save);
                        if (f)
                            fclose(f);
                        printf("crash image (%zu bytes) written to %s\n", len, o->save);
                    }
                }
                t->states++;
                struct bounds b;
                bounds_at(r, &s, &b);
                t->durable += b.kmin >= 0;
                t->appcrash += s.app_crash;
                t->sizelost += s.kept_sizes < s.nsizes;
                t->insnap += in_snap_op(r, &s);
                g.snapchecks = g.either[0] = g.either[1] = 0;
                int failed = check_state(r, &s, &m);
                t->snapchecks += g.snapchecks;
                t->either[0] += g.either[0];
                t->either[1] += g.either[1];
                if (failed) {
                    failures++;
                    t->failures++;
                    if (failures <= o->max_report || o->state >= 0) {
                        struct msg d = {0};
                        msg_add(&d, "FAIL %s seed %" PRIu64 " state %ld\n", r->w->name, r->seed,
                                k);
                        describe_point(r, &s, &d);
                        msg_add(&d, "%s  replay: %s --workload %s --seed %" PRIu64
                                    " --state %ld%s --trace %016" PRIx64 "\n",
                                m.s, g.argv0, r->w->name, r->seed, k, o->shape, g.trace);
                        emit(d.s);
                        free(d.s);
                    }
                } else if (o->state >= 0) {
                    printf("state %ld passes every check\n", k);
                }
                free(m.s);
                fflush(stdout);
            }
        }
        if (p == g.nops || (o->state >= 0 && nstate > o->state))
            break;
        const struct op *op = &g.ops[p];
        if (op->type == OP_PUBLISH) {
            published = 1;
            continue;
        }
        int rc = op->type == OP_WRITE  ? dev->write(dev, op->data, op->len, op->off)
                 : op->type == OP_GROW ? dev->grow(dev, op->off)
                                       : dev->flush(dev);
        if (rc != COW_OK) {
            fprintf(stderr, "crash: replaying op %zu: %s\n", p, cow_strerror(rc));
            exit(2);
        }
        if (op->type == OP_FLUSH) {
            interval++;
            hset_clear(&seen);
        }
    }
    if (o->state >= 0 && nstate <= o->state)
        printf("%s seed %" PRIu64 " has only %ld states\n", r->w->name, r->seed, nstate);
    if (failures > o->max_report && o->state < 0) {
        struct msg d = {0};
        msg_add(&d, "FAIL %s seed %" PRIu64 ": %ld failures in all (the first %d shown)\n",
                r->w->name, r->seed, failures, o->max_report);
        emit(d.s);
        free(d.s);
    }
    free(is_point);
    free(keep);
    hset_free(&seen);
    dev->close(dev);
    return failures;
}

/* ---------------------------------------------------------------------------
 * main
 */

static void usage(void)
{
    fprintf(stderr,
            "usage: crash [--seed N] [--min-states N] [--jobs N] [--txns N] [--per-point N]\n"
            "             [--random-points N] [--workload NAME] [--max-report N] [-v]\n"
            "       crash --workload NAME --seed N --state K [--trace HEX] [--save FILE] [-v]\n"
            "workloads:");
    for (size_t i = 0; i < NWORKLOADS; i++)
        fprintf(stderr, " %s", workloads[i].name);
    fprintf(stderr, "\n");
    exit(2);
}

/* Interrupted (^C, a closed pipe): remove the placeholder and its directory. */
static void on_signal(int sig)
{
    if (g.dir) {
        unlink(g.path);
        rmdir(g.dir);
    }
    _exit(128 + sig);
}

static void setup_container(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/cowcrash.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("crash: mkdtemp");
        exit(2);
    }
    char real[PATH_MAX];
    if (!realpath(tmpl, real)) {
        perror("crash: realpath");
        exit(2);
    }
    g.dir = strdup(real);
    if (snprintf(g.path, sizeof g.path, "%s/crash.db", real) >= (int)sizeof g.path) {
        fprintf(stderr, "crash: %s: path too long\n", real);
        exit(2);
    }
    /* The VFS stat()s the container: an empty placeholder.  Its bytes are
     * never used; the opener hook serves g.cur instead. */
    int fd = open(g.path, O_CREAT | O_WRONLY, 0644);
    if (fd < 0) {
        perror("crash: placeholder");
        exit(2);
    }
    close(fd);
    g.memfd = memfd_create("cowcrash-image", MFD_CLOEXEC);
    if (g.memfd < 0) {
        perror("crash: memfd_create");
        exit(2);
    }
    snprintf(g.memfd_path, sizeof g.memfd_path, "/proc/self/fd/%d", g.memfd);
    g.img = mmap(NULL, IMG_RESERVE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, g.memfd,
                 0);
    if (g.img == MAP_FAILED) {
        perror("crash: mmap");
        exit(2);
    }
    g.img_len = 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, on_signal);
    bdev_set_test_opener(crash_opener, NULL);
}

static void teardown_container(void)
{
    bdev_set_test_opener(NULL, NULL);
    unlink(g.path);
    rmdir(g.dir);
    free(g.dir);
    record_reset();
    free(g.ops);
    free(g.mut_op);
    munmap(g.img, IMG_RESERVE);
    close(g.memfd);
}

static void totals_add(struct totals *a, const struct totals *b)
{
    a->runs += b->runs;
    a->points += b->points;
    a->states += b->states;
    a->failures += b->failures;
    a->dups += b->dups;
    a->durable += b->durable;
    a->appcrash += b->appcrash;
    a->sizelost += b->sizelost;
    a->insnap += b->insnap;
    a->snapchecks += b->snapchecks;
    a->either[0] += b->either[0];
    a->either[1] += b->either[1];
    for (int i = 0; i < 5; i++)
        a->secs[i] += b->secs[i];
}

/*
 * One worker: takes (round, workload) items from SH until SH->t holds
 * O->min_states states (after at least one item), runs and checks each,
 * and adds to SH->t.  The item number alone decides what runs, so the
 * result of an item does not depend on the number of workers.
 */
static void worker(const struct opts *o)
{
    size_t nw = o->only ? 1 : NWORKLOADS;
    uint8_t zero[SECTOR] = {0};
    g.zero_hash = sector_hash(zero);
    sqlite3_config(SQLITE_CONFIG_LOG, log_cb, NULL);
    sqlite3_initialize();
    shim_register();
    setup_container();
    for (;;) {
        sh_lock();
        long item = -1;
        if (sh->t.states < o->min_states || sh->next_item == 0)
            item = sh->next_item++;
        pthread_mutex_unlock(&sh->mutex);
        if (item < 0)
            break;
        const struct workload *w = &workloads[item % (long)nw];
        if (o->only)
            for (w = workloads; strcmp(w->name, o->only) != 0; w++)
                ;
        uint64_t seed = o->seed + (uint64_t)(item / (long)nw);
        struct totals t;
        struct run r;
        memset(&t, 0, sizeof t);
        memset(g.secs, 0, sizeof g.secs);
        t.runs = 1;
        double t0 = now_secs();
        int rfail = record(&r, w, seed, o->ntxn);
        g.secs[T_RECORD] += now_secs() - t0;
        if (rfail) {
            struct msg d = {0};
            msg_add(&d, "FAIL %s seed %" PRIu64 ": the workload itself failed: %s\n", w->name,
                    seed, r.errbuf);
            emit(d.s);
            free(d.s);
            t.failures++;
        } else {
            if (o->state >= 0 && o->expect_trace && g.trace != o->expect_trace)
                printf("warning: this run's device operations differ from the failing run's "
                       "(trace %016" PRIx64 ", expected %016" PRIx64 "): the replay may not "
                       "reproduce it\n",
                       g.trace, o->expect_trace);
            if (g.verbose && o->state < 0) {
                printf("%s seed %" PRIu64 ": trace %016" PRIx64 "\n", w->name, seed, g.trace);
                for (size_t i = 0; i < r.nsteps; i++)
                    printf("  step %zu: ops %zu..%zu: %s\n", i, r.steps[i].start, r.steps[i].ret,
                           r.steps[i].what);
            }
            t0 = now_secs();
            crash_phase(&r, o, &t);
            g.secs[T_GEN] += now_secs() - t0 - g.secs[T_FSCK] - g.secs[T_DATA] - g.secs[T_SQLITE];
        }
        memcpy(t.secs, g.secs, sizeof t.secs);
        if (o->state < 0) {
            struct msg d = {0};
            msg_add(&d, "%-15s seed %" PRIu64 ": %d txns, %zu steps, %zu device ops, %ld crash "
                        "points, %ld states, %ld failures\n",
                    w->name, seed, r.ntxn, r.nsteps, g.nops, t.points, t.states, t.failures);
            if (r.nrecs)
                msg_add(&d, "%-15s   %zu snapshots and branches made (%d inside transactions, "
                            "%d of them spilled), %d deleted; %ld states inside those "
                            "operations, %ld snapshots and branches checked\n",
                        "", r.nrecs, r.nintxn, r.nspilled, r.ndeletes, t.insnap,
                        t.snapchecks);
            emit(d.s);
            free(d.s);
        }
        run_free(&r);
        sh_lock();
        totals_add(&sh->t, &t);
        pthread_mutex_unlock(&sh->mutex);
        if (o->state >= 0)
            break;
    }
    teardown_container();
    sqlite3_vfs_unregister(&shimVfs);
}

int main(int argc, char **argv)
{
    struct opts o = {.min_states = 20000, .ntxn = 100, .per_point = 3, .random_points = 1,
                     .state = -1, .max_report = 3};
    const char *env = getenv("COW_TEST_SEED");
    int have_seed = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o.jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    g.argv0 = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-v") == 0) {
            g.verbose++;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--seed") == 0) {
            o.seed = strtoull(v, NULL, 0);
            have_seed = 1;
        } else if (strcmp(a, "--min-states") == 0) {
            o.min_states = strtol(v, NULL, 0);
        } else if (strcmp(a, "--jobs") == 0) {
            o.jobs = atoi(v);
        } else if (strcmp(a, "--txns") == 0) {
            o.ntxn = atoi(v);
        } else if (strcmp(a, "--per-point") == 0) {
            o.per_point = atoi(v);
        } else if (strcmp(a, "--random-points") == 0) {
            o.random_points = atoi(v);
        } else if (strcmp(a, "--workload") == 0) {
            o.only = v;
        } else if (strcmp(a, "--state") == 0) {
            o.state = strtol(v, NULL, 0);
        } else if (strcmp(a, "--trace") == 0) {
            o.expect_trace = strtoull(v, NULL, 16);
        } else if (strcmp(a, "--save") == 0) {
            o.save = v;
        } else if (strcmp(a, "--max-report") == 0) {
            o.max_report = atoi(v);
        } else {
            usage();
        }
    }
    if (o.ntxn < 1 || o.per_point < 0 || o.random_points < 0 || o.jobs < 1)
        usage();
    if (o.only) {
        size_t i;
        for (i = 0; i < NWORKLOADS && strcmp(workloads[i].name, o.only) != 0; i++)
            ;
        if (i == NWORKLOADS)
            usage();
    }
    if (o.state >= 0 && (!o.only || !have_seed))
        usage();
    if (o.state >= 0)
        o.jobs = 1;
    o.shape[0] = 0;
    if (o.ntxn != 100 || o.per_point != 3 || o.random_points != 1)
        snprintf(o.shape, sizeof o.shape, " --txns %d --per-point %d --random-points %d", o.ntxn,
                 o.per_point, o.random_points);
    if (!have_seed)
        o.seed = env ? strtoull(env, NULL, 0)
                     : ((uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid()) % 1000000000;

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("crash: mmap");
        return 2;
    }
    memset(sh, 0, sizeof *sh);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->mutex, &ma);
    pthread_mutexattr_destroy(&ma);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (o.state < 0)
        printf("crash: seed %" PRIu64 ", %d transactions a workload run, at least %ld states, "
               "%d jobs\n",
               o.seed, o.ntxn, o.min_states, o.jobs);
    fflush(stdout);
    int died = 0;
    if (o.jobs == 1) {
        worker(&o);
    } else {
        for (int j = 0; j < o.jobs; j++) {
            pid_t pid = fork();
            if (pid < 0) {
                perror("crash: fork");
                died++;
                break;
            }
            if (pid == 0) {
                worker(&o);
                exit(0); /* through exit: LeakSanitizer checks the worker */
            }
        }
        int status;
        while (wait(&status) > 0)
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                printf("FAIL a worker process ended with status %d\n", status);
                died++;
            }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    const struct totals *t = &sh->t;
    if (o.state < 0) {
        printf("crash: %ld workload runs, %ld crash points, %ld crash states checked "
               "(%ld with a returned COMMIT that must be there, %ld application crashes, "
               "%ld with lost grows; %ld duplicates skipped), %ld failures, %.1f s\n",
               t->runs, t->points, t->states, t->durable, t->appcrash, t->sizelost, t->dups,
               t->failures + died, secs);
        if (t->snapchecks)
            printf("crash: %ld states inside the making or deletion of a snapshot or branch "
                   "(it existed in %ld, not in %ld), %ld snapshots and branches opened and "
                   "checked\n",
                   t->insnap, t->either[1], t->either[0], t->snapchecks);
        printf("crash: cpu: record %.1f s, fsck %.1f s, data %.1f s, sqlite %.1f s, "
               "crash states %.1f s\n",
               t->secs[T_RECORD], t->secs[T_FSCK], t->secs[T_DATA], t->secs[T_SQLITE],
               t->secs[T_GEN]);
        if (t->failures + died)
            printf("crash: FAILED; each FAIL above gives the command that replays it\n");
    }
    return t->failures + died ? 1 : 0;
}
