/*
 * ctl_rados.c - cowctl on a container in RADOS (ctl_rados.h).
 */
#include "ctl_rados.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bdev_rados.h"

/* The client id: librados's default ("admin"), as the VFS's without
 * ceph_id=. */
static const char *client_id(void)
{
    return NULL;
}

int ctl_rados_open_store(const char *spec, int flags, cow_store **out)
{
    struct cow_dev *dev;
    int created = 0;
    *out = NULL;
    int rc = bdev_rados_open(spec, NULL, client_id(), 0, &dev, &created);
    if (rc)
        return rc;
    return cow_store_open_dev(spec, dev, flags, 0, out);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int ctl_rados_image(const char *spec, char *path, size_t n)
{
    struct cow_dev *dev;
    int created = 0, fd = -1, rc;
    uint64_t size = 0;
    const size_t chunk = 1u << 20;
    uint8_t *buf = malloc(chunk);
    const char *tmp = getenv("TMPDIR");
    if (!buf)
        return COW_ENOMEM;
    rc = bdev_rados_open(spec, NULL, client_id(), 0, &dev, &created);
    if (rc) {
        free(buf);
        return rc;
    }
    rc = dev->size(dev, &size);
    if (rc == COW_OK) {
        snprintf(path, n, "%s/cowctl-rados.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        fd = mkstemp(path);
        if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
            rc = COW_EIO_WRITE;
    }
    for (uint64_t off = 0; rc == COW_OK && off < size; off += chunk) {
        size_t len = size - off < chunk ? (size_t)(size - off) : chunk;
        rc = dev->read(dev, buf, len, off);
        /* 64 KiB pieces that are all zeros stay holes */
        for (size_t at = 0; rc == COW_OK && at < len; at += 65536) {
            size_t m = len - at < 65536 ? len - at : 65536;
            if (!all_zero(buf + at, m) &&
                pwrite(fd, buf + at, m, (off_t)(off + at)) != (ssize_t)m)
                rc = COW_EIO_WRITE;
        }
    }
    if (rc == COW_EIO_WRITE)
        fprintf(stderr, "cowctl: the image of %s in %s: %s\n", spec, path, strerror(errno));
    if (fd >= 0) {
        close(fd);
        if (rc)
            unlink(path);
    }
    dev->close(dev);
    free(buf);
    return rc;
}

int ctl_rados_exists(const char *spec)
{
    struct cow_dev *dev;
    int created;
    int rc = bdev_rados_open(spec, NULL, client_id(), BDEV_READONLY, &dev, &created);
    if (rc == COW_OK)
        dev->close(dev);
    if (rc == COW_ENOENT)
        return 0;
    return rc == COW_OK || rc == COW_ENOTCONTAINER || rc == COW_ECORRUPT ? 1 : rc;
}

int ctl_rados_remove(const char *spec)
{
    return bdev_rados_remove(spec, NULL, client_id());
}
