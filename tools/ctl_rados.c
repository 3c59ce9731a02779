/*
 * ctl_rados.c - cowctl on a container in RADOS (ctl_rados.h).
 */
#include "ctl_rados.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A failed read of RS (code RC, COW_E*): the first one's reason kept,
 * each counted.  Returns EIO, what the checker gets. */
static int src_failed(struct ctl_rados_src *rs, int rc)
{
    if (rs->nfailed++ == 0)
        snprintf(rs->first_error, sizeof(rs->first_error), "%s (%s)", cow_strerror(rc),
                 cow_store_last_error(NULL));
    return EIO;
}

/* struct ctl_rados_src's source: the device's read.  COW_E* codes are
 * EIO to the checker; the first failure's reason is kept. */
static int src_read(void *arg, void *buf, size_t len, uint64_t off)
{
    struct ctl_rados_src *rs = arg;
    int rc = rs->dev->read(rs->dev, buf, len, off);
    return rc == COW_OK ? 0 : src_failed(rs, rc);
}

/* The source's readv: the device's (every range in flight at once), each
 * range's failure as src_read's.  ENOMEM if it could not run. */
static int src_readv(void *arg, struct cow_fsck_iov *v, size_t n)
{
    struct ctl_rados_src *rs = arg;
    struct cow_iov *dv = malloc((n ? n : 1) * sizeof *dv);
    if (!dv)
        return ENOMEM;
    for (size_t i = 0; i < n; i++)
        dv[i] = (struct cow_iov){v[i].buf, v[i].len, v[i].off, COW_OK};
    int rc = rs->dev->readv(rs->dev, dv, n);
    for (size_t i = 0; i < n && rc == COW_OK; i++)
        v[i].rc = dv[i].rc == COW_OK ? 0 : src_failed(rs, dv[i].rc);
    free(dv);
    return rc == COW_OK ? 0 : ENOMEM;
}

int ctl_rados_src_on(struct cow_dev *dev, const char *spec, struct ctl_rados_src *rs)
{
    uint64_t size = 0;
    memset(rs, 0, sizeof(*rs));
    int rc = dev->size(dev, &size);
    if (rc)
        return rc;
    rs->dev = dev;
    rs->src.read = src_read;
    rs->src.readv = dev->readv ? src_readv : NULL;
    rs->src.size = size;
    rs->src.arg = rs;
    rs->src.name = spec;
    return 0;
}

int ctl_rados_src_open(const char *spec, struct ctl_rados_src *rs)
{
    struct cow_dev *dev;
    int created = 0;
    memset(rs, 0, sizeof(*rs));
    int rc = bdev_rados_open(spec, NULL, client_id(), 0, &dev, &created);
    if (rc)
        return rc;
    rc = ctl_rados_src_on(dev, spec, rs);
    if (rc)
        dev->close(dev);
    return rc;
}

void ctl_rados_src_close(struct ctl_rados_src *rs)
{
    if (rs->dev)
        rs->dev->close(rs->dev);
    rs->dev = NULL;
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
