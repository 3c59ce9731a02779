/*
 * bdev_rados.c - the container striped over RADOS objects (bdev_rados.h).
 *
 * Sources of the ideas: the object layout and the lock are those of
 * libcephsqlite's SimpleRADOSStriper (src/SimpleRADOSStriper.cc: an
 * exclusive cls_lock renewed by a thread, objects named by index) and of
 * rbd (object size as a power of two); the takeover after blocklisting is
 * rbd's exclusive-lock break_lock (src/librbd/managed_lock/BreakRequest.cc:
 * blocklist the dead owner, then break its lock).
 */
#include "bdev_rados.h"

#include <errno.h>
#include <pthread.h>
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "crc32c.h"
#include "store_int.h"

#define HDR_XATTR "cowvfs.header"
#define HDR_MAGIC "COWRADOS"
#define HDR_VERSION 1u
#define HDR_BYTES 64
#define HDR_F_PUBLISHED 0x1u
#define LOCK_NAME "cowvfs.lock"
/* object 0's xattr naming the lock's last taker (its address) */
#define OWNER_XATTR "cowvfs.owner"
#define OWNER_BYTES 256
#define NAME_MAX_BYTES 200
#define OID_BYTES (NAME_MAX_BYTES + 18)
/* writes (and bytes) kept in flight before a write waits for the oldest,
 * below librados's own throttles (objecter_inflight_ops 1024,
 * objecter_inflight_op_bytes 100 MiB) */
#define MAX_INFLIGHT 256
#define MAX_INFLIGHT_BYTES (64u << 20)
/* sizes of the lockers' lists asked for (one locker: tiny) */
#define LOCKERS_BUF 512
/* The readers' pins: a shared cls_lock on object 0, one locker per
 * reading store, its cookie "GEN.INSTANCE.ADDR" (GEN in 16 hex digits:
 * the generation it reads), the same duration as the writer's lock and
 * renewed by the same thread. */
#define READERS_LOCK "cowvfs.readers"
#define READERS_TAG "cowvfs"
#define PIN_COOKIE_BYTES 64

/* ---- the process's cluster handles ---- */

struct rados_client {
    struct rados_client *next;
    char *conf, *id; /* as given (NULL: defaults) */
    rados_t cluster;
    int nref;
};

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rados_client *clients;
static unsigned lock_seconds = BDEV_RADOS_LOCK_SECONDS;

static int str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Returns the connected handle for (CONF, ID), made if need be, with one
 * more reference.  COW_EIO_READ (cannot connect), COW_ENOMEM. */
static int client_get(const char *conf, const char *id, struct rados_client **out)
{
    int rc = COW_OK, err;
    struct rados_client *c;
    pthread_mutex_lock(&clients_lock);
    for (c = clients; c; c = c->next)
        if (str_same(c->conf, conf) && str_same(c->id, id))
            break;
    if (c) {
        c->nref++;
        goto out;
    }
    c = calloc(1, sizeof *c);
    if (!c || (conf && !(c->conf = strdup(conf))) || (id && !(c->id = strdup(id)))) {
        rc = cow_set_error(COW_ENOMEM, "out of memory");
        goto fail;
    }
    err = rados_create(&c->cluster, id);
    if (err < 0) {
        rc = cow_set_error(COW_EIO_READ, "rados_create (client id %s): %s", id ? id : "admin",
                           strerror(-err));
        goto fail;
    }
    /* CONF, else $CEPH_CONF and the usual search path (NULL does both) */
    err = rados_conf_read_file(c->cluster, conf);
    if (err < 0 && conf) {
        rc = cow_set_error(COW_EIO_READ, "reading the Ceph configuration %s: %s", conf,
                           strerror(-err));
        goto shut;
    }
    (void)rados_conf_parse_env(c->cluster, NULL);
    (void)rados_conf_set(c->cluster, "client_mount_timeout", "30");
    err = rados_connect(c->cluster);
    if (err < 0) {
        rc = cow_set_error(COW_EIO_READ, "connecting to the Ceph cluster (configuration %s): %s",
                           conf ? conf : "$CEPH_CONF or the default", strerror(-err));
        goto shut;
    }
    c->nref = 1;
    c->next = clients;
    clients = c;
    goto out;
shut:
    rados_shutdown(c->cluster);
fail:
    if (c) {
        free(c->conf);
        free(c->id);
        free(c);
    }
    c = NULL;
out:
    pthread_mutex_unlock(&clients_lock);
    *out = c;
    return rc;
}

static void client_put(struct rados_client *c)
{
    pthread_mutex_lock(&clients_lock);
    if (--c->nref == 0) {
        struct rados_client **pp = &clients;
        while (*pp != c)
            pp = &(*pp)->next;
        *pp = c->next;
        rados_shutdown(c->cluster);
        free(c->conf);
        free(c->id);
        free(c);
    }
    pthread_mutex_unlock(&clients_lock);
}

int bdev_rados_set_lock_seconds(unsigned seconds)
{
    if (seconds < 3 || seconds > 3600)
        return cow_set_error(COW_EINVAL, "lock duration %u s: not 3 to 3600", seconds);
    __atomic_store_n(&lock_seconds, seconds, __ATOMIC_RELAXED);
    return COW_OK;
}

/* ---- the device ---- */

/* One write in flight. */
struct rados_aio {
    struct rados_aio *next;
    struct rados_dev *dev;
    rados_completion_t comp;
    uint64_t objno;
    uint64_t seq;  /* issue order */
    size_t len;
    int done;
};

struct rados_dev {
    struct cow_dev dev; /* first */
    struct rados_client *client;
    rados_ioctx_t io;
    char *spec; /* POOL[:NS]/NAME, for messages */
    char *name;
    uint64_t objsize, size;
    uint32_t hdr_flags; /* protected by resize_mu */
    int readonly, created;
    /* Serialises grow, shrink and publish (the header's writers).  No
     * librados call is made under mu: librados runs the completion
     * callbacks, which take mu, on a thread that its own calls may wait
     * for. */
    pthread_mutex_t resize_mu;
    /* the lock */
    int locked;
    char cookie[40];
    pthread_t renewer;
    int renewer_running, stopping;
    pthread_cond_t renew_cond;
    /* A reader's pin (READERS_LOCK): its cookie, "" when none.  pin_mu
     * serialises the calls that take, renew and drop it (reader_pin, the
     * renewer thread, close), held across them, so that a renewal never
     * takes back a pin reader_pin dropped; the cookie is written under
     * both pin_mu and mu. */
    pthread_mutex_t pin_mu;
    char pin_cookie[PIN_COOKIE_BYTES];
    /* A writer's looks at the readers' pins (rd_readers_oldest), under
     * mu: one asked for (look_want, for pins taken after generation
     * look_tag was flushed), and the last one that ended: its tag and the
     * oldest generation pinned (UINT64_MAX: none); look_valid once one
     * ended. */
    int look_want, look_valid;
    uint64_t look_tag, look_done_tag, look_min;
    /* Protected by mu: the writes in flight (oldest first), the first
     * failure (a write's, or the lock's loss: sticky). */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct rados_aio *head, **tail;
    unsigned ninflight;
    size_t inflight_bytes;
    uint64_t next_seq;
    int failed;     /* a COW_E* code once the device failed */
    char why[320];  /* what failed */
};

static void oid_of(const struct rados_dev *r, uint64_t objno, char *buf)
{
    snprintf(buf, OID_BYTES, "%s.%016llx", r->name, (unsigned long long)objno);
}

static int rc_of(int err, int io_rc)
{
    return (err == -ENOSPC || err == -EDQUOT) ? COW_ENOSPC : io_rc;
}

/* Marks the device failed (first failure wins).  Caller holds mu. */
static void fail_locked(struct rados_dev *r, int rc, const char *why)
{
    if (!r->failed) {
        r->failed = rc;
        snprintf(r->why, sizeof r->why, "%s", why);
    }
}

static int failed_error(struct rados_dev *r)
{
    return cow_set_error(r->failed, "container %s: an earlier failure: %s", r->spec, r->why);
}

/* librados's completion callback (its finisher thread): the write is done. */
static void aio_done(rados_completion_t c, void *arg)
{
    struct rados_aio *a = arg;
    struct rados_dev *r = a->dev;
    int ret = rados_aio_get_return_value(c);
    pthread_mutex_lock(&r->mu);
    a->done = 1;
    if (ret < 0) {
        char why[320];
        snprintf(why, sizeof why, "a write to object %llu: %s%s", (unsigned long long)a->objno,
                 strerror(-ret), ret == -ESHUTDOWN ? " (this client was blocklisted)" : "");
        fail_locked(r, rc_of(ret, COW_EIO_WRITE), why);
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* Releases the finished writes at the head of the list.  Caller holds mu. */
static void reap_locked(struct rados_dev *r)
{
    while (r->head && r->head->done) {
        struct rados_aio *a = r->head;
        r->head = a->next;
        if (!r->head)
            r->tail = &r->head;
        r->ninflight--;
        r->inflight_bytes -= a->len;
        rados_aio_release(a->comp);
        free(a);
    }
}

/* Waits until no write issued before sequence number BEFORE is in flight
 * to object OBJNO (UINT64_MAX: to any object), releasing finished ones.
 * Caller holds mu. */
static void wait_writes_locked(struct rados_dev *r, uint64_t objno, uint64_t before)
{
    for (;;) {
        reap_locked(r);
        int busy = 0;
        for (struct rados_aio *a = r->head; a && !busy && a->seq < before; a = a->next)
            busy = !a->done && (objno == UINT64_MAX || a->objno == objno);
        if (!busy)
            return;
        pthread_cond_wait(&r->cond, &r->mu);
    }
}

static int hdr_reread(struct rados_dev *r);

static int rd_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    struct rados_dev *r = (struct rados_dev *)d;
    char oid[OID_BYTES];
    uint8_t *p = buf;
    pthread_mutex_lock(&r->mu);
    uint64_t size = r->size;
    pthread_mutex_unlock(&r->mu);
    if ((off > size || len > size - off) && r->readonly && hdr_reread(r) == COW_OK) {
        pthread_mutex_lock(&r->mu); /* grown by a writer on another client? */
        size = r->size;
        pthread_mutex_unlock(&r->mu);
    }
    if (off > size || len > size - off)
        return cow_set_error(COW_EIO_READ,
                             "read of %zu bytes at offset %llu past the end of container %s "
                             "(%llu bytes)",
                             len, (unsigned long long)off, r->spec, (unsigned long long)size);
    while (len > 0) {
        uint64_t objno = off / r->objsize, in = off % r->objsize;
        size_t n = r->objsize - in < len ? (size_t)(r->objsize - in) : len;
        pthread_mutex_lock(&r->mu);
        wait_writes_locked(r, objno, UINT64_MAX);
        pthread_mutex_unlock(&r->mu);
        oid_of(r, objno, oid);
        int got = rados_read(r->io, oid, (char *)p, n, in);
        if (got == -ENOENT)
            got = 0; /* never written: zeros */
        if (got < 0)
            return cow_set_error(COW_EIO_READ, "read of %zu bytes of object %s (container %s): %s",
                                 n, oid, r->spec, strerror(-got));
        if ((size_t)got < n)
            memset(p + got, 0, n - (size_t)got); /* past the object's end: zeros */
        p += n;
        len -= n;
        off += n;
    }
    return COW_OK;
}

/* bdev.h readv: every object piece of every range read with
 * rados_aio_read, all issued, then all waited for.  A range past the
 * device's end goes through rd_read (which looks at the header again, and
 * says what is wrong). */
static int rd_readv(struct cow_dev *d, struct cow_iov *v, size_t n)
{
    struct rados_dev *r = (struct rados_dev *)d;
    struct piece {
        rados_completion_t c;
        size_t iov;
        uint8_t *p;
        size_t len;
        uint64_t objno;
    } *pc;
    size_t npieces = 0, k = 0;
    pthread_mutex_lock(&r->mu);
    uint64_t size = r->size;
    wait_writes_locked(r, UINT64_MAX, UINT64_MAX); /* as rd_read, once for all */
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++)
        if (v[i].off <= size && v[i].len <= size - v[i].off && v[i].len)
            npieces += (size_t)((v[i].off + v[i].len - 1) / r->objsize - v[i].off / r->objsize + 1);
    pc = calloc(npieces ? npieces : 1, sizeof *pc);
    if (!pc)
        return cow_set_error(COW_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        v[i].rc = COW_OK;
        if (v[i].off > size || v[i].len > size - v[i].off) {
            v[i].rc = rd_read(d, v[i].buf, v[i].len, v[i].off);
            continue;
        }
        uint8_t *p = v[i].buf;
        for (uint64_t off = v[i].off, left = v[i].len; left > 0 && v[i].rc == COW_OK;) {
            uint64_t objno = off / r->objsize, in = off % r->objsize;
            size_t len = r->objsize - in < left ? (size_t)(r->objsize - in) : (size_t)left;
            char oid[OID_BYTES];
            oid_of(r, objno, oid);
            int err = rados_aio_create_completion2(NULL, NULL, &pc[k].c);
            if (err == 0) {
                err = rados_aio_read(r->io, oid, pc[k].c, (char *)p, len, in);
                if (err < 0)
                    rados_aio_release(pc[k].c);
            }
            if (err < 0) {
                v[i].rc = cow_set_error(COW_EIO_READ, "read of %zu bytes of object %s "
                                        "(container %s): %s", len, oid, r->spec, strerror(-err));
                break;
            }
            pc[k].iov = i;
            pc[k].p = p;
            pc[k].len = len;
            pc[k].objno = objno;
            k++;
            p += len;
            off += len;
            left -= len;
        }
    }
    for (size_t j = 0; j < k; j++) {
        (void)rados_aio_wait_for_complete(pc[j].c);
        int got = rados_aio_get_return_value(pc[j].c);
        rados_aio_release(pc[j].c);
        if (got == -ENOENT)
            got = 0; /* never written: zeros */
        if (got < 0) {
            if (v[pc[j].iov].rc == COW_OK) {
                char oid[OID_BYTES];
                oid_of(r, pc[j].objno, oid);
                v[pc[j].iov].rc = cow_set_error(COW_EIO_READ, "read of %zu bytes of object %s "
                                                "(container %s): %s", pc[j].len, oid, r->spec,
                                                strerror(-got));
            }
        } else if ((size_t)got < pc[j].len) {
            memset(pc[j].p + got, 0, pc[j].len - (size_t)got); /* past the object's end */
        }
    }
    free(pc);
    return COW_OK;
}

static int rd_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    struct rados_dev *r = (struct rados_dev *)d;
    char oid[OID_BYTES];
    const uint8_t *p = buf;
    __atomic_fetch_add(&d->nwrite, 1, __ATOMIC_RELAXED);
    if (r->readonly)
        return cow_set_error(COW_EROFS, "container %s is open read-only", r->spec);
    while (len > 0) {
        uint64_t objno = off / r->objsize, in = off % r->objsize;
        size_t n = r->objsize - in < len ? (size_t)(r->objsize - in) : len;
        struct rados_aio *a = calloc(1, sizeof *a);
        if (!a)
            return cow_set_error(COW_ENOMEM, "out of memory");
        a->dev = r;
        a->objno = objno;
        a->len = n;
        int err = rados_aio_create_completion2(a, aio_done, &a->comp);
        if (err < 0) {
            free(a);
            return cow_set_error(COW_ENOMEM, "rados_aio_create_completion2: %s", strerror(-err));
        }
        pthread_mutex_lock(&r->mu);
        for (;;) {
            reap_locked(r);
            if (r->failed || (r->ninflight < MAX_INFLIGHT &&
                              r->inflight_bytes + n <= MAX_INFLIGHT_BYTES) || !r->head)
                break;
            pthread_cond_wait(&r->cond, &r->mu);
        }
        if (r->failed) {
            int rc = failed_error(r);
            pthread_mutex_unlock(&r->mu);
            rados_aio_release(a->comp);
            free(a);
            return rc;
        }
        a->seq = r->next_seq++;
        *r->tail = a;
        r->tail = &a->next;
        r->ninflight++;
        r->inflight_bytes += n;
        pthread_mutex_unlock(&r->mu);
        oid_of(r, objno, oid);
        /* librados copies BUF into its own buffer before returning */
        err = rados_aio_write(r->io, oid, a->comp, (const char *)p, n, in);
        if (err < 0) {
            char why[320];
            snprintf(why, sizeof why, "a write to object %s could not be issued: %s", oid,
                     strerror(-err));
            pthread_mutex_lock(&r->mu);
            a->done = 1; /* no callback will come: reaped as finished */
            fail_locked(r, rc_of(err, COW_EIO_WRITE), why);
            pthread_cond_broadcast(&r->cond);
            pthread_mutex_unlock(&r->mu);
            return cow_set_error(rc_of(err, COW_EIO_WRITE),
                                 "write of %zu bytes at offset %llu of container %s: %s", n,
                                 (unsigned long long)off, r->spec, strerror(-err));
        }
        p += n;
        len -= n;
        off += n;
    }
    return COW_OK;
}

static int rd_flush(struct cow_dev *d)
{
    struct rados_dev *r = (struct rados_dev *)d;
    int rc = COW_OK;
    __atomic_add_fetch(&d->nflush, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&r->mu);
    /* every write issued before this call; later ones are not waited for */
    wait_writes_locked(r, UINT64_MAX, r->next_seq);
    if (r->failed)
        rc = cow_set_error(r->failed == COW_ENOSPC ? COW_ENOSPC : COW_EIO_FLUSH,
                           "flush of container %s: %s", r->spec, r->why);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int rd_size(struct cow_dev *d, uint64_t *size)
{
    struct rados_dev *r = (struct rados_dev *)d;
    int rc = r->readonly ? hdr_reread(r) : COW_OK;
    if (rc)
        return rc;
    pthread_mutex_lock(&r->mu);
    *size = r->size;
    pthread_mutex_unlock(&r->mu);
    return COW_OK;
}

/* ---- the header ---- */

static void hdr_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t hdr_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Layout: magic[8], version u32 at 8, flags u32 at 12, object size u64 at
 * 16, size u64 at 24, zeros to 60, crc32c of bytes 0..59 u32 at 60. */
static void hdr_encode(uint8_t *h, uint32_t flags, uint64_t objsize, uint64_t size)
{
    memset(h, 0, HDR_BYTES);
    memcpy(h, HDR_MAGIC, 8);
    hdr_put64(h + 8, (uint64_t)HDR_VERSION | (uint64_t)flags << 32);
    hdr_put64(h + 16, objsize);
    hdr_put64(h + 24, size);
    uint32_t crc = crc32c(0, h, 60);
    for (int i = 0; i < 4; i++)
        h[60 + i] = (uint8_t)(crc >> (8 * i));
}

/* Writes the header of R with SIZE and FLAGS, synchronously. */
static int hdr_write(struct rados_dev *r, uint32_t flags, uint64_t size)
{
    uint8_t h[HDR_BYTES];
    char oid[OID_BYTES];
    hdr_encode(h, flags, r->objsize, size);
    oid_of(r, 0, oid);
    int err = rados_setxattr(r->io, oid, HDR_XATTR, (const char *)h, sizeof h);
    if (err < 0)
        return cow_set_error(rc_of(err, COW_EIO_WRITE), "writing the header of container %s: %s",
                             r->spec, strerror(-err));
    r->hdr_flags = flags;
    return COW_OK;
}

/* Reads and checks the header: *PRESENT 0 if object 0 has none (nothing
 * else set).  COW_ENOTCONTAINER, COW_ECORRUPT, COW_EIO_READ. */
static int hdr_read(struct rados_dev *r, int *present)
{
    uint8_t h[HDR_BYTES + 1];
    char oid[OID_BYTES];
    oid_of(r, 0, oid);
    *present = 0;
    int n = rados_getxattr(r->io, oid, HDR_XATTR, (char *)h, sizeof h);
    if (n == -ENODATA || n == -ENOENT)
        return COW_OK;
    if (n < 0)
        return cow_set_error(COW_EIO_READ, "reading the header of container %s: %s", r->spec,
                             strerror(-n));
    if (n < 12 || memcmp(h, HDR_MAGIC, 8) != 0)
        return cow_set_error(COW_ENOTCONTAINER,
                             "container %s: object %s has a header xattr %s without the magic "
                             "\"" HDR_MAGIC "\": not a cowvfs container",
                             r->spec, oid, HDR_XATTR);
    uint32_t version = (uint32_t)hdr_get64(h + 8);
    if (version != HDR_VERSION)
        return cow_set_error(COW_ENOTCONTAINER,
                             "container %s: header version %u, this build knows %u only", r->spec,
                             version, HDR_VERSION);
    if (n != HDR_BYTES)
        return cow_set_error(COW_ECORRUPT, "container %s: header of %d bytes, not %d", r->spec, n,
                             HDR_BYTES);
    uint32_t crc = (uint32_t)h[60] | (uint32_t)h[61] << 8 | (uint32_t)h[62] << 16 |
                   (uint32_t)h[63] << 24;
    if (crc != crc32c(0, h, 60))
        return cow_set_error(COW_ECORRUPT, "container %s: the header's checksum does not match",
                             r->spec);
    uint64_t objsize = hdr_get64(h + 16), size = hdr_get64(h + 24);
    uint32_t flags = (uint32_t)(hdr_get64(h + 8) >> 32);
    if (objsize < (64u << 10) || objsize > (64u << 20) || (objsize & (objsize - 1)))
        return cow_set_error(COW_ECORRUPT,
                             "container %s: object size %llu in the header is not a power of 2 "
                             "from 64 KiB to 64 MiB",
                             r->spec, (unsigned long long)objsize);
    if (flags & ~HDR_F_PUBLISHED)
        return cow_set_error(COW_ECORRUPT, "container %s: unknown header flags 0x%x", r->spec,
                             flags);
    if (size / objsize >= (1ull << 40))
        return cow_set_error(COW_ECORRUPT, "container %s: size %llu in the header is too large",
                             r->spec, (unsigned long long)size);
    r->objsize = objsize;
    pthread_mutex_lock(&r->mu);
    r->size = size;
    pthread_mutex_unlock(&r->mu);
    r->hdr_flags = flags;
    *present = 1;
    return COW_OK;
}

/* A read-only device's size, read again from the header: a writer on
 * another client may have grown the container since this one opened it. */
static int hdr_reread(struct rados_dev *r)
{
    int present = 0;
    pthread_mutex_lock(&r->resize_mu);
    int rc = hdr_read(r, &present);
    pthread_mutex_unlock(&r->resize_mu);
    if (rc == COW_OK && !present)
        rc = cow_set_error(COW_EIO_STAT, "container %s: its header is gone (removed meanwhile?)",
                           r->spec);
    return rc;
}

/* Removes objects FIRST.. of the container up to the one holding byte
 * END-1 (missing ones are fine).  COW_EIO_TRUNCATE. */
static int remove_objects(struct rados_dev *r, uint64_t first, uint64_t end)
{
    char oid[OID_BYTES];
    uint64_t nobj = (end + r->objsize - 1) / r->objsize;
    for (uint64_t o = nobj; o-- > first;) { /* last first: no hole below a survivor */
        oid_of(r, o, oid);
        int err = rados_remove(r->io, oid);
        if (err < 0 && err != -ENOENT)
            return cow_set_error(COW_EIO_TRUNCATE, "removing object %s of container %s: %s", oid,
                                 r->spec, strerror(-err));
    }
    return COW_OK;
}

/* The failure, if the device failed, else COW_OK. */
static int check_failed(struct rados_dev *r)
{
    int rc = COW_OK;
    pthread_mutex_lock(&r->mu);
    if (r->failed)
        rc = failed_error(r);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int rd_grow(struct cow_dev *d, uint64_t size)
{
    struct rados_dev *r = (struct rados_dev *)d;
    pthread_mutex_lock(&r->resize_mu);
    int rc = check_failed(r);
    if (rc == COW_OK && size > r->size) {
        /* objects are made by the first write into them; RADOS reserves
         * no space ahead (a full pool fails the write: COW_ENOSPC) */
        rc = hdr_write(r, r->hdr_flags, size);
        if (rc == COW_OK) {
            pthread_mutex_lock(&r->mu);
            r->size = size;
            pthread_mutex_unlock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->resize_mu);
    return rc == COW_EIO_WRITE ? COW_EIO_TRUNCATE : rc;
}

static int rd_shrink(struct cow_dev *d, uint64_t size)
{
    struct rados_dev *r = (struct rados_dev *)d;
    pthread_mutex_lock(&r->resize_mu);
    int rc = check_failed(r);
    if (rc || size >= r->size)
        goto out;
    pthread_mutex_lock(&r->mu);
    wait_writes_locked(r, UINT64_MAX, r->next_seq);
    pthread_mutex_unlock(&r->mu);
    /* whole objects past SIZE go, the one SIZE falls in is cut, then the
     * header: a crash between leaves the larger size, over zeros */
    uint64_t keep = (size + r->objsize - 1) / r->objsize;
    rc = remove_objects(r, keep, r->size);
    if (rc == COW_OK && size % r->objsize) {
        char oid[OID_BYTES];
        oid_of(r, size / r->objsize, oid);
        int err = rados_trunc(r->io, oid, size % r->objsize);
        if (err < 0 && err != -ENOENT)
            rc = cow_set_error(COW_EIO_TRUNCATE, "truncating object %s of container %s: %s", oid,
                               r->spec, strerror(-err));
    }
    if (rc == COW_OK)
        rc = hdr_write(r, r->hdr_flags, size);
    if (rc == COW_OK) {
        pthread_mutex_lock(&r->mu);
        r->size = size;
        pthread_mutex_unlock(&r->mu);
    }
out:
    pthread_mutex_unlock(&r->resize_mu);
    return rc == COW_EIO_WRITE ? COW_EIO_TRUNCATE : rc;
}

static int rd_publish(struct cow_dev *d)
{
    struct rados_dev *r = (struct rados_dev *)d;
    int rc = rd_flush(d);
    pthread_mutex_lock(&r->resize_mu);
    if (rc == COW_OK && !(r->hdr_flags & HDR_F_PUBLISHED))
        rc = hdr_write(r, r->hdr_flags | HDR_F_PUBLISHED, r->size);
    if (rc == COW_OK)
        r->created = 0;
    pthread_mutex_unlock(&r->resize_mu);
    return rc;
}

/* ---- the lock ---- */

static int lock_call(struct rados_dev *r, uint8_t flags)
{
    char oid[OID_BYTES];
    struct timeval tv = { .tv_sec = (time_t)__atomic_load_n(&lock_seconds, __ATOMIC_RELAXED) };
    oid_of(r, 0, oid);
    return rados_lock_exclusive(r->io, oid, LOCK_NAME, r->cookie, "cowvfs writer", &tv, flags);
}

/* Takes (FLAGS 0) or renews (LIBRADOS_LOCK_FLAG_MUST_RENEW) the reader's
 * pin COOKIE.  0 or a negative errno. */
static int pin_call(struct rados_dev *r, const char *cookie, uint8_t flags)
{
    char oid[OID_BYTES];
    struct timeval tv = { .tv_sec = (time_t)__atomic_load_n(&lock_seconds, __ATOMIC_RELAXED) };
    oid_of(r, 0, oid);
    return rados_lock_shared(r->io, oid, READERS_LOCK, cookie, READERS_TAG, "cowvfs reader",
                             &tv, flags);
}

/* The oldest generation the readers' pins name (UINT64_MAX: no pin), in
 * *MIN.  A cookie not of our form counts as generation 0 (everything
 * held: it expires with its holder).  0 or a negative errno. */
static int pins_oldest(struct rados_dev *r, uint64_t *min)
{
    char oid[OID_BYTES];
    size_t cap = 4096;
    oid_of(r, 0, oid);
    for (int tries = 0; tries < 8; tries++) {
        char *buf = malloc(4 * cap);
        if (!buf)
            return -ENOMEM;
        size_t tl = cap, cl = cap, kl = cap, al = cap;
        int excl = 0;
        ssize_t n = rados_list_lockers(r->io, oid, READERS_LOCK, &excl, buf, &tl, buf + cap, &cl,
                                       buf + 2 * cap, &kl, buf + 3 * cap, &al);
        if (n == -ERANGE) {
            free(buf);
            size_t need = tl > cl ? tl : cl;
            need = kl > need ? kl : need;
            need = al > need ? al : need;
            cap = need > cap ? need : 2 * cap;
            continue;
        }
        if (n < 0) {
            free(buf);
            return n == -ENOENT ? (*min = UINT64_MAX, 0) : (int)n;
        }
        uint64_t m = UINT64_MAX;
        const char *c = buf + 2 * cap, *end = c + kl;
        for (ssize_t i = 0; i < n && c < end; i++, c += strlen(c) + 1) {
            char *stop = NULL;
            unsigned long long g = strtoull(c, &stop, 16);
            if (stop != c + 16 || *stop != '.')
                g = 0;
            if (g < m)
                m = g;
        }
        free(buf);
        *min = m;
        return 0;
    }
    return -ERANGE;
}

/* The device's thread, for a writer (the lock) and a reader (its pin):
 * renews what it holds every third of the duration, and makes the looks
 * at the readers' pins a writer asks for (rd_readers_oldest).  A failed
 * renewal of the writer's lock fails the device (the lock may be someone
 * else's now); of a reader's pin, it is taken again (space reused while
 * it was gone shows as a checksum error, never as other data). */
static void *renewer_main(void *arg)
{
    struct rados_dev *r = arg;
    unsigned secs = __atomic_load_n(&lock_seconds, __ATOMIC_RELAXED);
    uint64_t period = (uint64_t)secs * 1000000000ull / 3;
    struct timespec due;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        clock_gettime(CLOCK_MONOTONIC, &due);
        due.tv_sec += (time_t)(period / 1000000000ull);
        due.tv_nsec += (long)(period % 1000000000ull);
        if (due.tv_nsec >= 1000000000L) {
            due.tv_sec++;
            due.tv_nsec -= 1000000000L;
        }
        int timedout = 0;
        while (!r->stopping && !r->failed && !timedout) {
            if (r->look_want) { /* a look at the pins: the renewal stays due when it was */
                uint64_t tag = r->look_tag, min = 0;
                pthread_mutex_unlock(&r->mu);
                int err = pins_oldest(r, &min);
                pthread_mutex_lock(&r->mu);
                r->look_want = 0;
                if (err == 0) {
                    r->look_done_tag = tag;
                    r->look_min = min;
                    r->look_valid = 1;
                }
                continue;
            }
            timedout = pthread_cond_timedwait(&r->renew_cond, &r->mu, &due) == ETIMEDOUT;
        }
        if (r->stopping || r->failed)
            break;
        int locked = r->locked;
        pthread_mutex_unlock(&r->mu);
        int err = locked ? lock_call(r, LIBRADOS_LOCK_FLAG_MUST_RENEW) : 0;
        pthread_mutex_lock(&r->pin_mu);
        if (r->pin_cookie[0] && pin_call(r, r->pin_cookie, LIBRADOS_LOCK_FLAG_MUST_RENEW) < 0)
            (void)pin_call(r, r->pin_cookie, 0);
        pthread_mutex_unlock(&r->pin_mu);
        pthread_mutex_lock(&r->mu);
        if (err < 0) {
            char why[320];
            snprintf(why, sizeof why, "renewing the writer's lock failed (%s): it may be another "
                     "client's now", strerror(-err));
            fail_locked(r, COW_EIO_WRITE, why);
            r->locked = 0;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Starts the device's thread if it is not running.  COW_ENOMEM. */
static int renewer_start(struct rados_dev *r)
{
    if (r->renewer_running)
        return COW_OK;
    if (pthread_create(&r->renewer, NULL, renewer_main, r) != 0)
        return cow_set_error(COW_ENOMEM, "cannot start the lock renewal thread");
    r->renewer_running = 1;
    return COW_OK;
}

/* bdev.h reader_pin: the new pin is taken before the old one goes, so that
 * the reader is never unpinned in between. */
static int rd_reader_pin(struct cow_dev *d, uint64_t gen)
{
    struct rados_dev *r = (struct rados_dev *)d;
    char cookie[PIN_COOKIE_BYTES], oid[OID_BYTES];
    int rc = COW_OK;
    snprintf(cookie, sizeof cookie, "%016llx.%llx.%llx", (unsigned long long)gen,
             (unsigned long long)rados_get_instance_id(r->client->cluster),
             (unsigned long long)(uintptr_t)r);
    oid_of(r, 0, oid);
    pthread_mutex_lock(&r->pin_mu);
    if (strcmp(r->pin_cookie, cookie) != 0) {
        int err = pin_call(r, cookie, 0);
        if (err < 0 && err != -EEXIST) {
            rc = cow_set_error(COW_EIO_READ, "container %s: pinning generation %llu for this "
                               "reader: %s", r->spec, (unsigned long long)gen, strerror(-err));
        } else {
            if (r->pin_cookie[0]) /* else it expires */
                (void)rados_unlock(r->io, oid, READERS_LOCK, r->pin_cookie);
            pthread_mutex_lock(&r->mu);
            memcpy(r->pin_cookie, cookie, sizeof cookie);
            pthread_mutex_unlock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->pin_mu);
    return rc == COW_OK ? renewer_start(r) : rc;
}

/* bdev.h readers_oldest. */
static uint64_t rd_readers_oldest(struct cow_dev *d, uint64_t durable)
{
    struct rados_dev *r = (struct rados_dev *)d;
    pthread_mutex_lock(&r->mu);
    if (!r->look_want && (!r->look_valid || r->look_done_tag < durable) && r->renewer_running) {
        r->look_want = 1;
        r->look_tag = durable;
        pthread_cond_broadcast(&r->renew_cond);
    }
    uint64_t v = !r->look_valid                  ? 0
                 : r->look_min < r->look_done_tag ? r->look_min
                                                  : r->look_done_tag;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* bdev.h writer_elsewhere. */
static int rd_writer_elsewhere(struct cow_dev *d)
{
    struct rados_dev *r = (struct rados_dev *)d;
    char oid[OID_BYTES], tag[LOCKERS_BUF], who[LOCKERS_BUF], cookies[LOCKERS_BUF],
        addrs[LOCKERS_BUF];
    size_t tl = sizeof tag, wl = sizeof who, kl = sizeof cookies, al = sizeof addrs;
    int excl = 0;
    oid_of(r, 0, oid);
    ssize_t n = rados_list_lockers(r->io, oid, LOCK_NAME, &excl, tag, &tl, who, &wl, cookies, &kl,
                                   addrs, &al);
    if (n == -ERANGE)
        return 1; /* lockers whose names do not fit: there is one */
    if (n < 0 && n != -ENOENT)
        return cow_set_error(COW_EIO_READ, "container %s: listing its writer's lock: %s",
                             r->spec, strerror((int)-n));
    return n > 0;
}

/*
 * Takes the writer's lock, then looks at the owner xattr of object 0 (the
 * address of the client that took the lock last, removed by a clean
 * close).  One left there by another client means that client lost the
 * lock without closing (killed, stalled, cut off: its lock expired, or we
 * could not have taken it): it is blocklisted before we return, and we
 * wait for the OSD map that says so, so it can never write again.  Then
 * our own address goes there.  (cls_lock drops an expired lock from what
 * rados_list_lockers shows, so the lock alone cannot name the dead holder.)
 * COW_EBUSY (a live holder), COW_EIO_READ, COW_EIO_WRITE.
 */
static int lock_take(struct rados_dev *r)
{
    char oid[OID_BYTES], prev[OWNER_BYTES];
    char *mine = NULL;
    oid_of(r, 0, oid);
    int err = lock_call(r, 0);
    if (err == -EBUSY || err == -EEXIST) {
        char tag[LOCKERS_BUF], who[LOCKERS_BUF], cookies[LOCKERS_BUF], addrs[LOCKERS_BUF];
        size_t tl = sizeof tag, wl = sizeof who, kl = sizeof cookies, al = sizeof addrs;
        int excl = 0;
        ssize_t n = rados_list_lockers(r->io, oid, LOCK_NAME, &excl, tag, &tl, who, &wl, cookies,
                                       &kl, addrs, &al);
        return cow_set_error(COW_EBUSY,
                             "container %s is open for writing by another client (%s, at %s), "
                             "which holds its lock",
                             r->spec, n > 0 ? who : "?", n > 0 ? addrs : "?");
    }
    if (err < 0)
        return cow_set_error(COW_EIO_WRITE, "taking the writer's lock of container %s: %s",
                             r->spec, strerror(-err));
    r->locked = 1;
    err = rados_getaddrs(r->client->cluster, &mine);
    if (err < 0 || !mine || strlen(mine) >= OWNER_BYTES) {
        free(mine);
        return cow_set_error(COW_EIO_READ, "container %s: this client's address: %s", r->spec,
                             strerror(err < 0 ? -err : EINVAL));
    }
    int n = rados_getxattr(r->io, oid, OWNER_XATTR, prev, sizeof prev - 1);
    if (n < 0 && n != -ENODATA && n != -ENOENT) {
        free(mine);
        return cow_set_error(COW_EIO_READ, "container %s: reading its last owner: %s", r->spec,
                             strerror(-n));
    }
    prev[n > 0 ? n : 0] = 0;
    if (n > 0 && strcmp(prev, mine) != 0) {
        /* the last owner never closed: make sure it never writes again */
        err = rados_blocklist_add(r->client->cluster, prev, 0);
        if (err == 0)
            err = rados_wait_for_latest_osdmap(r->client->cluster);
        if (err < 0) {
            free(mine);
            return cow_set_error(COW_EIO_WRITE,
                                 "container %s: its last writer (at %s) did not close it, and "
                                 "blocklisting that client failed: %s",
                                 r->spec, prev, strerror(-err));
        }
    }
    err = rados_setxattr(r->io, oid, OWNER_XATTR, mine, strlen(mine));
    free(mine);
    if (err < 0)
        return cow_set_error(COW_EIO_WRITE, "container %s: recording its owner: %s", r->spec,
                             strerror(-err));
    return COW_OK;
}

static void lock_drop(struct rados_dev *r)
{
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_broadcast(&r->renew_cond);
    pthread_mutex_unlock(&r->mu);
    if (r->renewer_running)
        pthread_join(r->renewer, NULL);
    r->renewer_running = 0;
    pthread_mutex_lock(&r->pin_mu);
    if (r->pin_cookie[0]) {
        char oid[OID_BYTES];
        oid_of(r, 0, oid);
        (void)rados_unlock(r->io, oid, READERS_LOCK, r->pin_cookie); /* else it expires */
        r->pin_cookie[0] = 0;
    }
    pthread_mutex_unlock(&r->pin_mu);
    if (r->locked) {
        char oid[OID_BYTES];
        oid_of(r, 0, oid);
        /* a clean close: the next writer need not blocklist us */
        (void)rados_rmxattr(r->io, oid, OWNER_XATTR);
        (void)rados_unlock(r->io, oid, LOCK_NAME, r->cookie);
        r->locked = 0;
    }
}

static void rd_free(struct rados_dev *r)
{
    if (r->io)
        rados_ioctx_destroy(r->io);
    if (r->client)
        client_put(r->client);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->resize_mu);
    pthread_mutex_destroy(&r->pin_mu);
    pthread_cond_destroy(&r->cond);
    pthread_cond_destroy(&r->renew_cond);
    free(r->spec);
    free(r->name);
    free(r);
}

static void rd_close(struct cow_dev *d)
{
    struct rados_dev *r = (struct rados_dev *)d;
    pthread_mutex_lock(&r->mu);
    wait_writes_locked(r, UINT64_MAX, UINT64_MAX);
    pthread_mutex_unlock(&r->mu);
    if (r->created && r->locked && !r->failed) /* never published: it goes */
        (void)remove_objects(r, 0, r->size > r->objsize ? r->size : r->objsize);
    lock_drop(r);
    rd_free(r);
}

/* ---- open ---- */

/* Checks one component of a spec.  COW_EINVAL naming WHAT. */
static int check_part(const char *spec, const char *p, size_t n, const char *what, int colon_ok)
{
    if (n == 0 || n > NAME_MAX_BYTES)
        return cow_set_error(COW_EINVAL, "RADOS container \"%s\": the %s must be 1 to %d bytes",
                             spec, what, NAME_MAX_BYTES);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x20 || ch == 0x7f || (ch == ':' && !colon_ok))
            return cow_set_error(COW_EINVAL,
                                 "RADOS container \"%s\": the %s has a control character%s",
                                 spec, what, colon_ok ? "" : " or ':'");
    }
    return COW_OK;
}

/* Splits SPEC into *POOL, *NS (or NULL), *NAME (malloc()ed).  COW_EINVAL,
 * COW_ENOMEM. */
static int spec_parse(const char *spec, char **pool, char **ns, char **name)
{
    *pool = *ns = *name = NULL;
    const char *slash = spec ? strchr(spec, '/') : NULL;
    if (!slash || strchr(slash + 1, '/'))
        return cow_set_error(COW_EINVAL,
                             "RADOS container \"%s\": give POOL/NAME or POOL:NAMESPACE/NAME "
                             "(one '/')",
                             spec ? spec : "(null)");
    const char *colon = memchr(spec, ':', (size_t)(slash - spec));
    size_t plen = (size_t)((colon ? colon : slash) - spec);
    int rc = check_part(spec, spec, plen, "pool", 0);
    if (rc == COW_OK && colon)
        rc = check_part(spec, colon + 1, (size_t)(slash - colon - 1), "namespace", 1);
    if (rc == COW_OK)
        rc = check_part(spec, slash + 1, strlen(slash + 1), "name", 1);
    if (rc)
        return rc;
    *pool = strndup(spec, plen);
    *ns = colon ? strndup(colon + 1, (size_t)(slash - colon - 1)) : NULL;
    *name = strdup(slash + 1);
    if (!*pool || (colon && !*ns) || !*name) {
        free(*pool);
        free(*ns);
        free(*name);
        *pool = *ns = *name = NULL;
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    return COW_OK;
}

/* Empties an unfinished container (all its objects but object 0, which
 * holds the lock; object 0's data cut to nothing) and writes a new header.
 * Caller holds the lock. */
static int make_new(struct rados_dev *r, int had_header)
{
    char oid[OID_BYTES];
    int rc = COW_OK;
    if (had_header) {
        rc = remove_objects(r, 1, r->size);
        oid_of(r, 0, oid);
        int err = rados_trunc(r->io, oid, 0);
        if (rc == COW_OK && err < 0)
            rc = cow_set_error(COW_EIO_TRUNCATE, "truncating object %s: %s", oid, strerror(-err));
    }
    r->objsize = BDEV_RADOS_OBJECT_SIZE;
    r->size = 0;
    if (rc == COW_OK)
        rc = hdr_write(r, 0, 0);
    r->created = rc == COW_OK;
    return rc;
}

int bdev_rados_remove(const char *spec, const char *conf, const char *id)
{
    struct cow_dev *d;
    int created;
    /* with BDEV_CREATE an unfinished container opens (emptied), and a
     * missing one would be made: refuse that first */
    int rc = bdev_rados_open(spec, conf, id, BDEV_READONLY, &d, &created);
    if (rc != COW_OK && rc != COW_ENOTCONTAINER)
        return rc;
    if (rc == COW_OK)
        d->close(d);
    rc = bdev_rados_open(spec, conf, id, BDEV_CREATE, &d, &created);
    if (rc)
        return rc;
    struct rados_dev *r = (struct rados_dev *)d;
    /* no renewal from here on: it could make object 0 again */
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_broadcast(&r->renew_cond);
    pthread_mutex_unlock(&r->mu);
    if (r->renewer_running)
        pthread_join(r->renewer, NULL);
    r->renewer_running = 0;
    rc = remove_objects(r, 0, r->size > r->objsize ? r->size : r->objsize);
    if (rc == COW_OK)
        r->locked = 0; /* gone with object 0 */
    lock_drop(r);
    rd_free(r);
    return rc;
}

int bdev_rados_open(const char *spec, const char *conf, const char *id, int flags,
                    struct cow_dev **out, int *created)
{
    char *pool = NULL, *ns = NULL, oid[OID_BYTES];
    int rc, present = 0, err;
    uint64_t osize = 0;
    time_t mtime;
    *out = NULL;
    if (created)
        *created = 0;
    struct rados_dev *r = calloc(1, sizeof *r);
    if (!r)
        return cow_set_error(COW_ENOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->resize_mu, NULL);
    pthread_mutex_init(&r->pin_mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->renew_cond, &ca);
    pthread_condattr_destroy(&ca);
    r->tail = &r->head;
    r->readonly = (flags & BDEV_READONLY) != 0;
    rc = spec_parse(spec, &pool, &ns, &r->name);
    if (rc == COW_OK && !(r->spec = strdup(spec)))
        rc = cow_set_error(COW_ENOMEM, "out of memory");
    if (rc == COW_OK)
        rc = client_get(conf, id, &r->client);
    if (rc)
        goto fail;
    err = rados_ioctx_create(r->client->cluster, pool, &r->io);
    if (err < 0) {
        r->io = NULL;
        rc = cow_set_error(err == -ENOENT ? COW_ENOENT : COW_EIO_READ,
                           "container %s: pool %s: %s", spec, pool,
                           err == -ENOENT ? "no such pool" : strerror(-err));
        goto fail;
    }
    if (ns)
        rados_ioctx_set_namespace(r->io, ns);
    oid_of(r, 0, oid);
    err = rados_stat(r->io, oid, &osize, &mtime);
    if (err == -ENOENT && (r->readonly || !(flags & BDEV_CREATE))) {
        rc = cow_set_error(COW_ENOENT, "no container %s (no object %s)", spec, oid);
        goto fail;
    }
    if (err < 0 && err != -ENOENT) {
        rc = cow_set_error(COW_EIO_READ, "container %s: stat of %s: %s", spec, oid,
                           strerror(-err));
        goto fail;
    }
    if (!r->readonly) {
        snprintf(r->cookie, sizeof r->cookie, "%llx.%llx",
                 (unsigned long long)rados_get_instance_id(r->client->cluster),
                 (unsigned long long)(uintptr_t)r);
        rc = lock_take(r); /* makes object 0 if it is missing */
        if (rc)
            goto fail;
    }
    rc = hdr_read(r, &present);
    if (rc)
        goto fail;
    if (!present) {
        err = rados_stat(r->io, oid, &osize, &mtime);
        if (err == 0 && osize > 0) {
            rc = cow_set_error(COW_ENOTCONTAINER,
                               "container %s: object %s holds data but no cowvfs header: not a "
                               "cowvfs container",
                               spec, oid);
            goto fail;
        }
    }
    if (!present || !(r->hdr_flags & HDR_F_PUBLISHED)) {
        if (r->readonly || !(flags & BDEV_CREATE)) {
            rc = cow_set_error(present ? COW_ENOTCONTAINER : COW_ENOENT,
                               present ? "container %s was never finished (a crash while it was "
                                         "being made?): open it with create to make it again"
                                       : "no container %s",
                               spec);
            goto fail;
        }
        rc = make_new(r, present);
        if (rc)
            goto fail;
        if (created)
            *created = 1;
    }
    if (r->locked && (rc = renewer_start(r)) != COW_OK)
        goto fail;
    r->dev.read = rd_read;
    r->dev.readv = rd_readv;
    r->dev.write = rd_write;
    r->dev.flush = rd_flush;
    r->dev.size = rd_size;
    r->dev.grow = rd_grow;
    r->dev.shrink = rd_shrink;
    r->dev.close = rd_close;
    r->dev.publish = rd_publish;
    r->dev.lock_fd = NULL; /* one process per client: RADOS's lock, not OFD locks */
    if (r->readonly) {
        r->dev.reader_pin = rd_reader_pin;
        r->dev.writer_elsewhere = rd_writer_elsewhere;
    } else {
        r->dev.readers_oldest = rd_readers_oldest;
    }
    free(pool);
    free(ns);
    *out = &r->dev;
    return COW_OK;
fail:
    if (r->created && r->locked)
        (void)remove_objects(r, 0, r->objsize);
    if (r->io)
        lock_drop(r);
    rd_free(r);
    free(pool);
    free(ns);
    return rc;
}
