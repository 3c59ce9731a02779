/*
 * entry.c - the store's entry points that change the container, each
 * between xproc_enter() and xproc_leave(): this process becomes the
 * container's owner first (docs/DESIGN.md, "Several processes"); and those
 * that read it without a lock of SQLite's (a file's bytes and size, a
 * name's lookup), each between xproc_view_begin() and xproc_view_end():
 * after an unpin, the view is refreshed first.  The bodies are the files'
 * (file.c) and the subvolumes' (subvol.c); this layer sits above them and
 * above xproc.c, so that no module calls one above it.  Opens try without
 * the ownership first: an existing file opens in any process.
 */
#include "store_int.h"
#include "inplace.h"
#include "xproc.h"

#define ENTERED(st, call)                                                                      \
    do {                                                                                       \
        int rc_ = xproc_enter(st);                                                             \
        if (rc_)                                                                               \
            return rc_;                                                                        \
        rc_ = (call);                                                                          \
        xproc_leave(st);                                                                       \
        return rc_;                                                                            \
    } while (0)

/* ENTERED, with the barrier against writes in place by other processes
 * up around CALL (inplace.h): CALL may share, move or replace a nodatacow
 * file's extents. */
#define ENTERED_BARRED(st, call)                                                               \
    do {                                                                                       \
        int rc_ = xproc_enter(st);                                                             \
        if (rc_)                                                                               \
            return rc_;                                                                        \
        inplace_barrier_raise(st);                                                             \
        rc_ = (call);                                                                          \
        inplace_barrier_lower(st);                                                             \
        xproc_leave(st);                                                                       \
        return rc_;                                                                            \
    } while (0)

/* A read, between xproc_view_begin() and xproc_view_end(): after an
 * unpin, the view is refreshed (and pinned) first. */
#define VIEWED(st, call)                                                                       \
    do {                                                                                       \
        int rc_ = xproc_view_begin(st);                                                        \
        if (rc_)                                                                               \
            return rc_;                                                                        \
        rc_ = (call);                                                                          \
        xproc_view_end(st);                                                                    \
        return rc_;                                                                            \
    } while (0)

static int open_existing(cow_store *st, const char *subvol, const char *name, cow_file **out)
{
    VIEWED(st, subvol ? subvol_file_open(st, subvol, name, 0, out)
                      : file_open_in(st, &st->fs_tree, name, 0, out));
}

int cow_file_open(cow_store *st, const char *name, int create, cow_file **out)
{
    int rc = open_existing(st, NULL, name, out);
    if (rc != COW_ENOENT || !create)
        return rc;
    ENTERED(st, file_open_in(st, &st->fs_tree, name, 1, out));
}

int cow_subvol_file_open(cow_store *st, const char *subvol, const char *name, int create,
                         cow_file **out)
{
    int rc = open_existing(st, subvol, name, out);
    if (rc != COW_ENOENT || !create)
        return rc;
    ENTERED(st, subvol_file_open(st, subvol, name, 1, out));
}

int cow_file_read(cow_file *f, void *buf, size_t len, uint64_t off, size_t *nread)
{
    *nread = 0;
    VIEWED(f->st, file_read(f, buf, len, off, nread));
}

int cow_file_size(cow_file *f, uint64_t *size)
{
    VIEWED(f->st, file_size(f, size));
}

int cow_file_fetch(cow_file *f, uint64_t off, size_t len, void **pp)
{
    VIEWED(f->st, file_fetch(f, off, len, pp));
}

int cow_exists(cow_store *st, const char *name, int *exists)
{
    *exists = 0;
    VIEWED(st, file_exists(st, name, exists));
}

int cow_subvol_exists(cow_store *st, const char *subvol, const char *name, int *exists)
{
    *exists = 0;
    VIEWED(st, subvol_exists(st, subvol, name, exists));
}

void cow_file_close(cow_file *f)
{
    if (!f)
        return;
    cow_store *st = f->st;
    /* the last close of a file unlinked while open frees it: a change */
    cow_mutex_lock(&st->lock);
    int change = f->inode->nopen == 1 && f->inode->orphan > 0 && !st->readonly && !st->failed;
    cow_mutex_unlock(&st->lock);
    int entered = change && xproc_enter(st) == COW_OK;
    file_close(f);
    if (entered)
        xproc_leave(st);
}

int cow_file_write(cow_file *f, const void *buf, size_t len, uint64_t off)
{
    if (inplace_possible(f->st)) {
        /* a nodatacow file's bytes, written in place while another
         * process has the container open (inplace.c); else the ownership
         * first */
        int done = 0;
        int rc = xproc_view_begin(f->st);
        if (rc)
            return rc;
        rc = inplace_write(f, buf, len, off, &done);
        if (!rc && done < 0) {
            /* another process published since this one loaded: the new
             * view may say the same bytes are still written in place (in
             * WAL mode a refresh is safe at any time: vfs_shm.c) */
            rc = xproc_refresh(f->st);
            if (!rc)
                rc = inplace_write(f, buf, len, off, &done);
        }
        xproc_view_end(f->st);
        if (rc || done > 0)
            return rc;
    }
    ENTERED(f->st, file_write(f, buf, len, off));
}

int cow_file_truncate(cow_file *f, uint64_t size)
{
    ENTERED(f->st, file_truncate(f, size));
}

int cow_file_preallocate(cow_file *f, uint64_t end)
{
    ENTERED(f->st, file_preallocate(f, end));
}

int cow_file_set_nodatacow(cow_file *f)
{
    ENTERED(f->st, file_set_nodatacow(f));
}

int cow_file_grow(cow_file *f, uint64_t end)
{
    ENTERED(f->st, file_grow(f, end));
}

int cow_file_nodatacow(cow_file *f, int *yes)
{
    VIEWED(f->st, file_nodatacow(f, yes));
}

int cow_file_sync(cow_file *f)
{
    cow_store *st = f->st;
    if (st->shared) {
        cow_mutex_lock(&st->lock);
        int owner = xproc_may_change(st), rc = COW_OK;
        if (!owner && !st->readonly)
            rc = store_flush(st); /* what this process wrote was published
                                   * without flush when it let go */
        cow_mutex_unlock(&st->lock);
        if (!owner)
            return rc;
    }
    int rc = xproc_enter(st);
    if (rc)
        return rc;
    rc = file_sync(f);
    xproc_logged(st);
    xproc_leave(st);
    return rc;
}

int cow_unlink(cow_store *st, const char *name)
{
    ENTERED(st, file_unlink(st, name));
}

int cow_rename(cow_store *st, const char *from, const char *to)
{
    ENTERED(st, file_rename(st, from, to));
}

int cow_subvol_create(cow_store *st, const char *name, int kind, const char *source)
{
    ENTERED_BARRED(st, subvol_create_ex(st, name, kind, source, NULL, 0));
}

int cow_subvol_create_ex(cow_store *st, const char *name, int kind, const char *source,
                         const char *drop, int incomplete)
{
    ENTERED_BARRED(st, subvol_create_ex(st, name, kind, source, drop, incomplete));
}

int cow_subvol_finish(cow_store *st, const char *name, int kind)
{
    ENTERED(st, subvol_finish(st, name, kind));
}

int cow_subvol_restore(cow_store *st, const char *target, const char *source)
{
    ENTERED_BARRED(st, subvol_restore(st, target, source));
}

int cow_subvol_delete(cow_store *st, const char *name)
{
    ENTERED(st, subvol_delete(st, name));
}

int cow_subvol_unlink(cow_store *st, const char *subvol, const char *name)
{
    ENTERED(st, subvol_unlink(st, subvol, name));
}
