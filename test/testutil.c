/*
 * testutil.c - shared test helpers (see testutil.h).
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tools/fsck.h"
#include "bdev.h"
#include "store.h"
#include "store_int.h" /* cow_store_open_dev */

uint64_t test_seed(void)
{
    static uint64_t seed;
    if (!seed) {
        const char *s = getenv("COW_TEST_SEED");
        seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
        if (!seed)
            seed = 1;
        fprintf(stderr, "test seed: COW_TEST_SEED=%llu\n", (unsigned long long)seed);
    }
    return seed;
}

uint64_t test_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

void test_fill(uint64_t *s, void *buf, size_t n)
{
    uint8_t *b = buf;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)test_rand(s);
}

char *test_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *d = malloc(4096);
    ck_assert_ptr_nonnull(d);
    snprintf(d, 4096, "%s/cowtest.XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

/* The test case's base directory (test_base_setup), or "" if none. */
static char g_base[64];

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(path); /* best effort: keep walking */
    return 0;
}

void test_base_setup(void)
{
    snprintf(g_base, sizeof g_base, "/tmp/cowvfs-test-XXXXXX");
    if (mkdtemp(g_base) == NULL)
        g_base[0] = 0;
}

void test_base_teardown(void)
{
    if (g_base[0])
        nftw(g_base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_base[0] = 0;
}

char *test_base_dir(void)
{
    char *d = NULL;
    ck_assert_int_ge(asprintf(&d, "%s/t-XXXXXX", g_base[0] ? g_base : "/tmp"), 0);
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

void test_rmdir(char *dir)
{
    DIR *dh = opendir(dir);
    if (dh) {
        struct dirent *de;
        while ((de = readdir(dh))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(dh);
    }
    rmdir(dir);
    free(dir);
}

/* ---- in-memory device ---- */

/* The memdev is also used outside Check (test/crash/), where ck_assert
 * cannot report: running out of memory there just stops the program. */
static void *md_alloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "memdev: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

/* One entry of the pending list: a write (DATA != NULL) or a change of the
 * device size (a grow, or a write that extended the device). */
struct md_pending {
    uint64_t off;  /* write: offset */
    size_t len;    /* write: length */
    uint8_t *data; /* write: a copy of the bytes; NULL for a size change */
    uint64_t size; /* size change: the new size */
};

struct memdev {
    struct cow_dev dev;
    struct memdev_ctl ctl;
    uint8_t *vol, *dur;
    size_t len, cap; /* vol and dur have the same capacity; len is vol's length */
    size_t dur_len;  /* the size at the last flush */
    struct md_pending *pend; /* since the last flush, in order */
    size_t npend, cappend;
    size_t nunits, nsizes; /* pending 4 KiB units of writes, pending size changes */
    /* Ordered extents write with the store's lock released, so the
     * device's methods run concurrently: each takes this mutex. */
    pthread_mutex_t mu;
};

static int md_reserve(struct memdev *m, size_t len)
{
    if (len <= m->cap)
        return 0;
    size_t c = m->cap ? m->cap : 1 << 20;
    while (c < len)
        c *= 2;
    uint8_t *v = realloc(m->vol, c), *d = v ? realloc(m->dur, c) : NULL;
    if (!v || !d) {
        if (v)
            m->vol = v;
        return -1;
    }
    m->vol = v;
    m->dur = d;
    memset(m->vol + m->cap, 0, c - m->cap);
    memset(m->dur + m->cap, 0, c - m->cap);
    m->cap = c;
    return 0;
}

/* The number of 4 KiB blocks [OFF, OFF+LEN) touches (LEN > 0). */
static size_t md_units_of(uint64_t off, size_t len)
{
    return (size_t)((off + len - 1) / MEMDEV_BLOCK - off / MEMDEV_BLOCK + 1);
}

static int md_pend_add(struct memdev *m, struct md_pending *e)
{
    if (m->npend == m->cappend) {
        size_t c = m->cappend ? 2 * m->cappend : 64;
        struct md_pending *p = realloc(m->pend, c * sizeof *p);
        if (!p)
            return -1;
        m->pend = p;
        m->cappend = c;
    }
    m->pend[m->npend++] = *e;
    if (e->data)
        m->nunits += md_units_of(e->off, e->len);
    else
        m->nsizes++;
    return 0;
}

static void md_pend_clear(struct memdev *m)
{
    for (size_t i = 0; i < m->npend; i++)
        free(m->pend[i].data);
    m->npend = m->nunits = m->nsizes = 0;
}

static int md_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    struct memdev *m = (struct memdev *)d;
    m->ctl.nread++;
    if (m->ctl.fail_read_at > 0 && --m->ctl.fail_read_at == 0)
        return m->ctl.fail_rc ? m->ctl.fail_rc : COW_EIO_READ;
    if (off > m->len || len > m->len - off)
        return COW_EIO_READ;
    memcpy(buf, m->vol + off, len);
    return COW_OK;
}

static int md_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    struct memdev *m = (struct memdev *)d;
    if (m->ctl.fail_writes_after > 0 && --m->ctl.fail_writes_after == 0) {
        m->ctl.fail_writes_after = 1; /* keep failing */
        return COW_EIO_WRITE;
    }
    m->ctl.nwrite++;
    if (m->ctl.fail_write_at > 0 && --m->ctl.fail_write_at == 0)
        return m->ctl.fail_rc ? m->ctl.fail_rc : COW_EIO_WRITE;
    if (len == 0)
        return COW_OK;
    if (off + len > m->len) {
        if (md_reserve(m, off + len))
            return COW_ENOMEM;
        struct md_pending e = {.size = off + len};
        if (md_pend_add(m, &e))
            return COW_ENOMEM;
        m->len = off + len;
    }
    struct md_pending e = {.off = off, .len = len, .data = malloc(len)};
    if (!e.data)
        return COW_ENOMEM;
    memcpy(e.data, buf, len);
    if (md_pend_add(m, &e)) {
        free(e.data);
        return COW_ENOMEM;
    }
    memcpy(m->vol + off, buf, len);
    d->nwrite++;
    return COW_OK;
}

static int md_flush(struct cow_dev *d)
{
    struct memdev *m = (struct memdev *)d;
    if (m->ctl.fail_flush_at > 0 && --m->ctl.fail_flush_at == 0)
        return m->ctl.fail_rc ? m->ctl.fail_rc : COW_EIO_FLUSH;
    for (size_t i = 0; i < m->npend; i++)
        if (m->pend[i].data)
            memcpy(m->dur + m->pend[i].off, m->pend[i].data, m->pend[i].len);
    md_pend_clear(m);
    if (m->len < m->dur_len)
        memset(m->dur + m->len, 0, m->dur_len - m->len);
    m->dur_len = m->len;
    __atomic_add_fetch(&m->ctl.nflush, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&d->nflush, 1, __ATOMIC_RELAXED);
    return COW_OK;
}

static int md_size(struct cow_dev *d, uint64_t *size)
{
    *size = ((struct memdev *)d)->len;
    return COW_OK;
}

static int md_grow(struct cow_dev *d, uint64_t size)
{
    struct memdev *m = (struct memdev *)d;
    if (m->ctl.fail_grow)
        return COW_ENOSPC;
    if (size > m->len) {
        if (md_reserve(m, size))
            return COW_ENOMEM;
        struct md_pending e = {.size = size};
        if (md_pend_add(m, &e))
            return COW_ENOMEM;
        m->len = size;
    }
    return COW_OK;
}

/* A shrink is a size change like a grow: durable at the next flush. */
static int md_shrink(struct cow_dev *d, uint64_t size)
{
    struct memdev *m = (struct memdev *)d;
    if (size < m->len) {
        struct md_pending e = {.size = size};
        if (md_pend_add(m, &e))
            return COW_ENOMEM;
        memset(m->vol + size, 0, m->cap - size); /* a later grow reads zeros */
        m->len = size;
    }
    return COW_OK;
}

/* The device methods as the store sees them: each under m->mu. */
static int mdl_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    int rc = md_read(d, buf, len, off);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mdl_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    int rc = md_write(d, buf, len, off);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mdl_flush(struct cow_dev *d)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    int rc = md_flush(d);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mdl_size(struct cow_dev *d, uint64_t *size)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    int rc = md_size(d, size);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mdl_shrink(struct cow_dev *d, uint64_t size)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    int rc = md_shrink(d, size);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mdl_grow(struct cow_dev *d, uint64_t size)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    int rc = md_grow(d, size);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void memdev_set_fail(struct cow_dev *d, long read_at, long write_at, long flush_at, int rc)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    m->ctl.fail_read_at = read_at;
    m->ctl.fail_write_at = write_at;
    m->ctl.fail_flush_at = flush_at;
    m->ctl.fail_rc = rc;
    pthread_mutex_unlock(&m->mu);
}

long memdev_fail_pending(struct cow_dev *d)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    long n = m->ctl.fail_read_at + m->ctl.fail_write_at + m->ctl.fail_flush_at;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static void md_close(struct cow_dev *d)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_destroy(&m->mu);
    md_pend_clear(m);
    free(m->pend);
    free(m->vol);
    free(m->dur);
    free(m);
}

/* A store formatted on DEV (NAME in messages) without background commits
 * or background relocation (memdev_store, target_store). */
static cow_store *quiet_store_on(struct cow_dev *dev, const char *name)
{
    cow_store *st;
    int orc = cow_store_open_dev(name, dev, 0, 1, &st);
    ck_assert_msg(orc == COW_OK, "format %s: %s", name, cow_store_last_error(NULL));
    cow_store_set_commit_interval(st, 0);
    /* nor background relocation (its first look is a second away) */
    struct cow_reloc_config rc;
    cow_store_get_reloc(st, &rc);
    rc.enabled = 0;
    cow_store_set_reloc(st, &rc);
    return st;
}

struct cow_store *memdev_store(struct cow_dev **dev, struct memdev_ctl **ctl)
{
    *dev = memdev_new(ctl);
    return quiet_store_on(*dev, "mem");
}

struct cow_store *memdev_store_file(struct cow_dev **dev, struct memdev_ctl **ctl,
                                    const char *name, struct cow_file **f)
{
    cow_store *st = memdev_store(dev, ctl);
    ck_assert_int_eq(cow_file_open(st, name, 1, f), COW_OK);
    return st;
}

struct cow_store *memdev_store_background(struct cow_dev **dev, struct memdev_ctl **ctl,
                                          const char *name, struct cow_file **f)
{
    cow_store *st;
    *dev = memdev_new(ctl);
    ck_assert_int_eq(cow_store_open_dev("mem", *dev, 0, 1, &st), COW_OK);
    if (name)
        ck_assert_int_eq(cow_file_open(st, name, 1, f), COW_OK);
    return st;
}

/* ---- the store tests' target (struct store_target) ---- */

static struct cow_dev *mt_dev_new(const char **name)
{
    *name = "mem";
    return memdev_new(NULL);
}

static void mt_fsck_dev(cow_store *st, struct cow_dev *dev)
{
    size_t len;
    (void)st;
    uint8_t *img = memdev_crash_image(dev, &len);
    test_fsck_image(img, len);
    free(img);
}

/* A store opened with FLAGS on a copy of DEV's crash image. */
static int mt_open_copy(struct cow_dev *dev, int flags, cow_store **out)
{
    size_t len;
    uint8_t *img = memdev_crash_image(dev, &len);
    int rc = cow_store_open_dev("copy", memdev_from_image(img, len, NULL), flags, 0, out);
    free(img);
    return rc;
}

/* "DIR/NAME" in a fresh directory DIR. */
static char *mt_path(const char *name)
{
    char *dir = test_mkdtemp(), *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    free(dir);
    return p;
}

static void mt_fsck_open(cow_store *st, const char *path)
{
    (void)st;
    test_fsck_clean(path); /* a container file open in this process: read all the same */
}

/* Removes PATH's directory (mt_path's) and what is in it. */
static void mt_remove(char *path)
{
    *strrchr(path, '/') = 0;
    test_rmdir(path);
}

const struct store_target memdev_target = {
    .name = "memdev",
    .dev_new = mt_dev_new,
    .fsck_dev = mt_fsck_dev,
    .open_beside = mt_open_copy,
    .reopen = mt_open_copy,
    .path = mt_path,
    .open = cow_store_open,
    .fsck_clean = test_fsck_clean,
    .fsck_open = mt_fsck_open,
    .remove = mt_remove,
    .scale = 100,
};

const struct store_target *stt = &memdev_target;

int stt_scaled(int n)
{
    int m = (int)((long long)n * stt->scale / 100);
    return m > 0 ? m : 1;
}

struct cow_store *target_store(struct cow_dev **dev)
{
    const char *name;
    *dev = stt->dev_new(&name);
    return quiet_store_on(*dev, name);
}

struct cow_store *target_store_file(struct cow_dev **dev, const char *name, struct cow_file **f)
{
    cow_store *st = target_store(dev);
    ck_assert_int_eq(cow_file_open(st, name, 1, f), COW_OK);
    return st;
}

struct cow_store *target_store_background(struct cow_dev **dev, const char *name,
                                          struct cow_file **f)
{
    cow_store *st;
    const char *dname;
    *dev = stt->dev_new(&dname);
    int rc = cow_store_open_dev(dname, *dev, 0, 1, &st);
    ck_assert_msg(rc == COW_OK, "format %s: %s", dname, cow_store_last_error(NULL));
    if (name)
        ck_assert_int_eq(cow_file_open(st, name, 1, f), COW_OK);
    return st;
}

void target_fsck(cow_store *st, struct cow_dev *dev)
{
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    stt->fsck_dev(st, dev);
}

/* ---- fwd_dev: a device forwarding to another it does not own ---- */

struct fwd_dev {
    struct cow_dev dev;
    struct cow_dev *under;
    void (*on_close)(void *arg);
    void *arg;
};

static struct cow_dev *fwd_under(struct cow_dev *d)
{
    return ((struct fwd_dev *)d)->under;
}
static int fwd_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    return fwd_under(d)->read(fwd_under(d), buf, len, off);
}
static int fwd_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    return fwd_under(d)->write(fwd_under(d), buf, len, off);
}
static int fwd_flush(struct cow_dev *d)
{
    __atomic_add_fetch(&d->nflush, 1, __ATOMIC_RELAXED); /* relocation flushes unlocked */
    return fwd_under(d)->flush(fwd_under(d));
}
static int fwd_size(struct cow_dev *d, uint64_t *size)
{
    return fwd_under(d)->size(fwd_under(d), size);
}
static int fwd_grow(struct cow_dev *d, uint64_t size)
{
    return fwd_under(d)->grow(fwd_under(d), size);
}
static int fwd_shrink(struct cow_dev *d, uint64_t size)
{
    return fwd_under(d)->shrink ? fwd_under(d)->shrink(fwd_under(d), size) : COW_OK;
}
static int fwd_publish(struct cow_dev *d)
{
    return fwd_under(d)->publish(fwd_under(d));
}
static int fwd_readv(struct cow_dev *d, struct cow_iov *v, size_t n)
{
    return fwd_under(d)->readv(fwd_under(d), v, n);
}
static uint64_t fwd_readers_oldest(struct cow_dev *d, uint64_t durable)
{
    return fwd_under(d)->readers_oldest(fwd_under(d), durable);
}
static void fwd_writeback(struct cow_dev *d, uint64_t off, uint64_t len, int wait)
{
    fwd_under(d)->writeback(fwd_under(d), off, len, wait);
}
static void fwd_close(struct cow_dev *d)
{
    struct fwd_dev *f = (struct fwd_dev *)d;
    void (*on_close)(void *) = f->on_close;
    void *arg = f->arg;
    free(f); /* UNDER stays */
    if (on_close)
        on_close(arg);
}

struct cow_dev *fwd_dev_new(struct cow_dev *under, void (*on_close)(void *arg), void *arg)
{
    struct fwd_dev *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->dev = (struct cow_dev){.read = fwd_read, .write = fwd_write, .flush = fwd_flush,
                              .size = fwd_size, .grow = fwd_grow, .shrink = fwd_shrink,
                              .close = fwd_close};
    /* the optional methods a writer uses, where UNDER has them (a RADOS
     * device: a new container published, readers' pins, reads in flight) */
    f->dev.publish = under->publish ? fwd_publish : NULL;
    f->dev.readv = under->readv ? fwd_readv : NULL;
    f->dev.readers_oldest = under->readers_oldest ? fwd_readers_oldest : NULL;
    f->dev.writeback = under->writeback ? fwd_writeback : NULL;
    f->under = under;
    f->on_close = on_close;
    f->arg = arg;
    return &f->dev;
}

struct cow_dev *memdev_from_image(const uint8_t *img, size_t len, struct memdev_ctl **ctl)
{
    struct memdev *m = md_alloc(NULL, sizeof *m);
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->dev = (struct cow_dev){.read = mdl_read, .write = mdl_write, .flush = mdl_flush,
                              .size = mdl_size, .grow = mdl_grow, .shrink = mdl_shrink,
                              .close = md_close};
    if (md_reserve(m, len ? len : 1)) {
        fprintf(stderr, "memdev: out of memory (%zu bytes)\n", len);
        abort();
    }
    if (len) {
        memcpy(m->vol, img, len);
        memcpy(m->dur, img, len);
    }
    m->len = m->dur_len = len;
    if (ctl)
        *ctl = &m->ctl;
    return &m->dev;
}

struct cow_dev *memdev_new(struct memdev_ctl **ctl)
{
    return memdev_from_image(NULL, 0, ctl);
}

uint8_t *memdev_crash_image(struct cow_dev *d, size_t *len)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    uint8_t *c = md_alloc(NULL, m->len);
    size_t keep = m->dur_len < m->len ? m->dur_len : m->len; /* a shrink kept too */
    memcpy(c, m->dur, keep);
    memset(c + keep, 0, m->len - keep);
    *len = m->len;
    pthread_mutex_unlock(&m->mu);
    return c;
}

uint8_t *memdev_image(struct cow_dev *d, size_t *len)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    uint8_t *c = md_alloc(NULL, m->len);
    memcpy(c, m->vol, m->len);
    *len = m->len;
    pthread_mutex_unlock(&m->mu);
    return c;
}

void memdev_pending(struct cow_dev *d, size_t *nunits, size_t *nsizes)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    *nunits = m->nunits;
    *nsizes = m->nsizes;
    pthread_mutex_unlock(&m->mu);
}

int memdev_unit(struct cow_dev *d, size_t u, uint64_t *off, size_t *len)
{
    struct memdev *m = (struct memdev *)d;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->npend; i++) {
        const struct md_pending *e = &m->pend[i];
        if (!e->data)
            continue;
        size_t n = md_units_of(e->off, e->len);
        if (u >= n) {
            u -= n;
            continue;
        }
        uint64_t b = e->off / MEMDEV_BLOCK + u;
        uint64_t s = b * MEMDEV_BLOCK > e->off ? b * MEMDEV_BLOCK : e->off;
        uint64_t t = (b + 1) * MEMDEV_BLOCK < e->off + e->len ? (b + 1) * MEMDEV_BLOCK
                                                               : e->off + e->len;
        *off = s;
        *len = (size_t)(t - s);
        rc = (int)i;
        break;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static size_t md_crash_size(struct memdev *m, size_t nsizes)
{
    size_t size = m->dur_len, ns = 0;
    for (size_t i = 0; i < m->npend && ns < nsizes; i++)
        if (!m->pend[i].data) {
            size = m->pend[i].size;
            ns++;
        }
    return size;
}

static void md_crash_fill(struct memdev *m, const uint8_t *keep, size_t nsizes, uint8_t *out)
{
    size_t size = md_crash_size(m, nsizes), u = 0;

    memcpy(out, m->dur, size < m->dur_len ? size : m->dur_len);
    if (size > m->dur_len)
        memset(out + m->dur_len, 0, size - m->dur_len);
    for (size_t i = 0; i < m->npend; i++) {
        const struct md_pending *e = &m->pend[i];
        if (!e->data)
            continue;
        for (uint64_t b = e->off / MEMDEV_BLOCK; b * MEMDEV_BLOCK < e->off + e->len; b++, u++) {
            for (unsigned sec = 0; sec < MEMDEV_BLOCK / MEMDEV_SECTOR; sec++) {
                if (!(keep[u] & (1u << sec)))
                    continue;
                uint64_t s = b * MEMDEV_BLOCK + sec * MEMDEV_SECTOR;
                uint64_t t = s + MEMDEV_SECTOR;
                if (s < e->off)
                    s = e->off;
                if (t > e->off + e->len)
                    t = e->off + e->len;
                if (t > size)
                    t = size; /* past the size that survived: lost */
                if (s < t)
                    memcpy(out + s, e->data + (s - e->off), (size_t)(t - s));
            }
        }
    }
}

size_t memdev_crash_size(struct cow_dev *d, size_t nsizes)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    size_t size = md_crash_size(m, nsizes);
    pthread_mutex_unlock(&m->mu);
    return size;
}

void memdev_crash_fill(struct cow_dev *d, const uint8_t *keep, size_t nsizes, uint8_t *out)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    md_crash_fill(m, keep, nsizes, out);
    pthread_mutex_unlock(&m->mu);
}

void memdev_keep_pattern(size_t round, size_t nunits, uint8_t *keep, uint64_t *rs)
{
    for (size_t u = 0; u < nunits; u++) {
        if (round == 0)
            keep[u] = 0xff;
        else if (round == 1)
            keep[u] = 0;
        else if (round < nunits + 2)
            keep[u] = u == round - 2 ? 0 : 0xff;
        else {
            uint64_t r = test_rand(rs) % 4;
            keep[u] = r == 0 ? 0 : r == 1 ? (uint8_t)test_rand(rs) : 0xff;
        }
    }
}

uint8_t *memdev_crash_state(struct cow_dev *d, const uint8_t *keep, size_t nsizes, size_t *len)
{
    struct memdev *m = (struct memdev *)d;
    pthread_mutex_lock(&m->mu);
    *len = md_crash_size(m, nsizes);
    uint8_t *c = md_alloc(NULL, *len);
    md_crash_fill(m, keep, nsizes, c);
    pthread_mutex_unlock(&m->mu);
    return c;
}

void test_write_file(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((long)write(fd, data, len), (long)len);
    close(fd);
}

/* Checks the container at PATH, or else the one SRC reads, with data;
 * fails the test with the report (on stderr whole) unless clean. */
static void fsck_clean(const char *path, const struct cow_fsck_src *src)
{
    char *report = NULL;
    size_t rlen = 0;
    FILE *out = open_memstream(&report, &rlen);
    struct cow_fsck_result res;
    const char *name = path ? path : src->name;
    ck_assert_ptr_nonnull(out);
    int n = path ? cow_fsck(path, COW_FSCK_DATA, out, &res)
                 : cow_fsck_src_progress(src, COW_FSCK_DATA, out, &res, NULL, NULL);
    fclose(out);
    if (n != 0)
        fprintf(stderr, "fsck %s:\n%s\n", name, report);
    ck_assert_msg(n == 0, "fsck found %d problems in %s: %.500s", n, name, report);
    free(report);
}

void test_fsck_clean(const char *path)
{
    fsck_clean(path, NULL);
}

void test_fsck_src_clean(const struct cow_fsck_src *src)
{
    fsck_clean(NULL, src);
}

void test_fsck_image(const uint8_t *img, size_t len)
{
    char *dir = test_mkdtemp();
    char p[4200];
    snprintf(p, sizeof p, "%s/image.cow", dir);
    test_write_file(p, img, len);
    test_fsck_clean(p);
    test_rmdir(dir);
}

uint64_t test_fsck_report(const uint8_t *img, size_t len, char **report, uint32_t *version)
{
    char *dir = test_mkdtemp();
    char p[4200];
    snprintf(p, sizeof p, "%s/image.cow", dir);
    test_write_file(p, img, len);
    size_t rlen;
    FILE *out = open_memstream(report, &rlen);
    ck_assert_ptr_nonnull(out);
    struct cow_fsck_result res;
    int rc = cow_fsck(p, COW_FSCK_DATA, out, &res);
    fclose(out);
    test_rmdir(dir);
    ck_assert_int_ge(rc, 0);
    if (version)
        *version = res.format_version;
    return res.problems;
}

/* ---- a file's model, and fsck of a memdev's store ---- */

void file_put_str(struct cow_file *f, const char *s)
{
    ck_assert_int_eq(cow_file_write(f, s, strlen(s), 0), COW_OK);
}

void file_fill(struct cow_file *f, int c, uint64_t off, size_t len)
{
    uint8_t *b = malloc(len);
    ck_assert_ptr_nonnull(b);
    memset(b, c, len);
    ck_assert_int_eq(cow_file_write(f, b, len, off), COW_OK);
    free(b);
}

int file_holds(struct cow_file *f, int c, uint64_t off, size_t len)
{
    uint8_t *b = malloc(len);
    size_t n;
    int ok = b && cow_file_read(f, b, len, off, &n) == COW_OK && n == len;
    for (size_t i = 0; ok && i < len; i++)
        ok = b[i] == c;
    free(b);
    return ok;
}

void file_expect_str(struct cow_file *f, const char *want)
{
    char buf[64] = {0};
    size_t n, len = strlen(want);
    ck_assert_uint_lt(len, sizeof buf);
    ck_assert_int_eq(cow_file_read(f, buf, len, 0, &n), COW_OK);
    ck_assert_str_eq(buf, want);
}

void fm_write(struct fmodel *m, const uint8_t *b, size_t len, size_t off)
{
    if (off + len > m->size) {
        m->data = realloc(m->data, off + len);
        memset(m->data + m->size, 0, off + len - m->size);
        m->size = off + len;
    }
    memcpy(m->data + off, b, len);
}

void fm_truncate(struct fmodel *m, size_t size)
{
    if (size > m->size) {
        m->data = realloc(m->data, size);
        memset(m->data + m->size, 0, size - m->size);
    }
    m->size = size;
}

void fm_compare(cow_file *f, const struct fmodel *m)
{
    uint64_t size;
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_uint_eq(size, m->size);
    uint8_t *buf = malloc(m->size + 4096);
    size_t n;
    ck_assert_int_eq(cow_file_read(f, buf, m->size + 4096, 0, &n), COW_OK);
    ck_assert_uint_eq(n, m->size);
    ck_assert_msg(m->size == 0 || memcmp(buf, m->data, m->size) == 0,
                  "file content differs from the model");
    for (size_t i = 0; i < 4096; i++)
        ck_assert(buf[m->size + i] == 0);
    free(buf);
}


void fm_copy(struct fmodel *dst, const struct fmodel *src)
{
    free(dst->data);
    dst->data = malloc(src->size ? src->size : 1);
    if (src->size)
        memcpy(dst->data, src->data, src->size);
    dst->size = src->size;
}

void fsck_memdev(cow_store *st, struct cow_dev *dev)
{
    size_t ilen;
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint8_t *img = memdev_crash_image(dev, &ilen);
    test_fsck_image(img, ilen);
    free(img);
}

/* ---- registering tests ---- */

void test_case_addv(TCase *tc, va_list ap)
{
    const TTest *t;
    while ((t = va_arg(ap, const TTest *)) != NULL)
        tcase_add_test(tc, t);
}

TCase *test_case(Suite *s, const char *name, double seconds, ...)
{
    TCase *tc = tcase_create(name);
    if (seconds > 0)
        tcase_set_timeout(tc, seconds);
    va_list ap;
    va_start(ap, seconds);
    test_case_addv(tc, ap);
    va_end(ap);
    suite_add_tcase(s, tc);
    return tc;
}

/* ---- child processes (test_kid_*) ---- */

void test_kid_start(struct test_kid *k, const char *name,
                    int (*fn)(const char *path, int in, int out, const void *arg),
                    const char *path, const void *arg)
{
    int p2c[2], c2p[2];
    ck_assert_int_eq(pipe(p2c), 0);
    ck_assert_int_eq(pipe(c2p), 0);
    k->pid = fork();
    ck_assert_int_ge(k->pid, 0);
    if (k->pid == 0) {
        close(p2c[1]);
        close(c2p[0]);
        int line = fn(path, p2c[0], c2p[1], arg);
        if (line)
            fprintf(stderr, "%s: failed at line %d: %s\n", name, line,
                    cow_store_last_error(NULL));
        _exit(line ? 1 : 0);
    }
    close(p2c[0]);
    close(c2p[1]);
    k->to = p2c[1];
    k->from = c2p[0];
}

void test_kid_wait(struct test_kid *k)
{
    int status;
    close(k->to);
    close(k->from);
    ck_assert_int_eq(waitpid(k->pid, &status, 0), k->pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "a child failed (its line above; signal %d)",
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void test_kid_abort(struct test_kid *k, const char *what)
{
    int status;
    waitpid(k->pid, &status, 0);
    ck_abort_msg("a child ended %s (its line above; signal %d)", what,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int test_item_at(struct cow_file *f, uint64_t off, uint64_t *disk, uint64_t *ext_off, int *type)
{
    cow_store *st = cow_file_store(f);
    struct cow_key k = {f->inode->ino, COW_EXTENT_DATA, off}, got;
    uint8_t d[FE_ITEM_SIZE];
    size_t size;
    cow_mutex_lock(&st->lock);
    int rc = bt_seek_le(st, &st->fs_tree, &k, &got, d, sizeof d, &size);
    cow_mutex_unlock(&st->lock);
    if (rc)
        return rc;
    if (got.objectid != k.objectid || got.type != COW_EXTENT_DATA ||
        got.offset + get64(d + FE_NUM_BYTES) <= off)
        return COW_ENOENT;
    *disk = get64(d + FE_DISK_BYTENR);
    *ext_off = get64(d + FE_EXTENT_OFFSET) + (off - got.offset);
    *type = d[FE_TYPE];
    return COW_OK;
}

void test_pass(int fd)
{
    char c = 1;
    ck_assert_int_eq(write(fd, &c, 1), 1);
}

int test_await(int fd)
{
    char c;
    return read(fd, &c, 1) == 1;
}

void test_kid_step(struct test_kid *k)
{
    test_pass(k->to);
    if (!test_await(k->from))
        test_kid_abort(k, "before its step was done");
}
