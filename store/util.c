/*
 * util.c - error messages.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* The last error message of this thread (any store). */
static __thread char tl_error[512];

int cow_set_error(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_error, sizeof tl_error, fmt, ap);
    va_end(ap);
    return rc;
}

int cow_corrupt_at(const char *file, int line, const char *fmt, ...)
{
    char msg[400];
    const char *base = strrchr(file, '/');
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(tl_error, sizeof tl_error, "corrupt container: %s (detected at store/%s:%d)", msg,
             base ? base + 1 : file, line);
    return COW_ECORRUPT;
}

const char *cow_store_last_error(cow_store *st)
{
    (void)st;
    return tl_error[0] ? tl_error : "no error";
}

const char *cow_strerror(int rc)
{
    switch (rc) {
    case COW_OK: return "ok";
    case COW_EIO_READ: return "read error";
    case COW_EIO_WRITE: return "write error";
    case COW_EIO_FLUSH: return "flush error";
    case COW_ENOSPC: return "no space left";
    case COW_ENOMEM: return "out of memory";
    case COW_ECORRUPT: return "corrupt container";
    case COW_ECSUM: return "data checksum mismatch";
    case COW_ENOTCONTAINER: return "not a cowvfs container";
    case COW_ENOENT: return "no such file";
    case COW_EEXIST: return "file exists";
    case COW_EINVAL: return "invalid argument";
    case COW_EBUSY: return "container in use by another process";
    case COW_EROFS: return "read-only store";
    case COW_EIO_TRUNCATE: return "error resizing the container";
    case COW_EIO_STAT: return "error reading the container's size";
    case COW_EFAILED: return "store failed; reopen it";
    case COW_ERECOVER: return "another process died holding the shared state: recover";
    case COW_EIO_LOCK: return "error locking the container or mapping its shared memory";
    default: return "unknown error";
    }
}
