/*
 * file.c - files inside a container: the cow_file_* API, names and inodes.
 *
 * A file is an INODE_ITEM (size, block count) plus EXTENT_DATA items
 * mapping block-aligned file ranges to ranges of data extents (the extent
 * map, extent_map.c).  Names live in DIR_ITEMs of the one directory
 * (objectid 256).  An open file has one in-memory inode (struct cow_inode)
 * shared by its handles, with its page cache (pcache.c) and its ordered
 * extents (ordered.c).
 *
 * Writes are copy on write: xWrite fills the page cache, writeback writes
 * the blocks whole to newly allocated space, and only then does the
 * mapping for that range change (extent_map.c).  The data is on the device
 * before any tree points at it, and nothing the last commit reaches is
 * overwritten.  Bytes past the end of file inside the last block are kept
 * zero (truncate zeroes them), so growing a file never exposes old bytes.
 *
 * Locking: the cow_* entry points take the inode's invalidate lock where
 * they touch its pages, then store->lock, for the whole call (the order of
 * docs/DESIGN.md, "Threads and locks"), except that a read lets go of
 * store->lock while it reads the device (file_read) and a sync while the
 * device flushes (txn_flush_wait), and writeback while it writes; static
 * helpers require store->lock held.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commit.h"
#include "crc32c.h"
#include "extent_map.h"
#include "inject.h"
#include "inplace.h"
#include "lockdep.h"
#include "ordered.h"
#include "shared.h"
#include "space.h"
#include "store_int.h"
#include "vec.h"

#define BLK COW_BLOCK_SIZE
#define LOCK(st) cow_mutex_lock(&(st)->lock)
#define UNLOCK(st) cow_mutex_unlock(&(st)->lock)
#define ROUND_UP(x) (((x) + BLK - 1) & ~(uint64_t)(BLK - 1))
#define ROUND_DOWN(x) ((x) & ~(uint64_t)(BLK - 1))

/* ---- names ---- */

int file_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= COW_NAME_MAX && !strchr(name, '/');
}

static uint64_t name_hash(const char *name)
{
    return crc32c(0, name, strlen(name));
}

/* Reads the DIR_ITEM for NAME's hash into BUF (up to COW_MAX_ITEM_DATA). */
static int dir_read(cow_store *st, struct cow_root *r, const char *name, uint8_t *buf,
                    size_t *size)
{
    struct cow_key k = {COW_ROOT_DIR_OBJECTID, COW_DIR_ITEM, name_hash(name)};
    int rc = bt_lookup(st, r, &k, buf, COW_MAX_ITEM_DATA, size);
    if (rc == COW_OK && *size > COW_MAX_ITEM_DATA)
        return COW_CORRUPT("directory item of %zu bytes", *size);
    return rc;
}

/* Finds NAME in a DIR_ITEM: offset of its entry, or -1. */
static long dir_find(const uint8_t *buf, size_t size, const char *name, uint64_t *ino)
{
    size_t len = strlen(name), p = 0;
    while (p + DIR_ENTRY_NAME <= size) {
        size_t nl = get16(buf + p + DIR_ENTRY_NAMELEN);
        if (p + DIR_ENTRY_NAME + nl > size)
            break;
        if (nl == len && memcmp(buf + p + DIR_ENTRY_NAME, name, len) == 0) {
            if (ino)
                *ino = get64(buf + p + DIR_ENTRY_INO);
            return (long)p;
        }
        p += DIR_ENTRY_NAME + nl;
    }
    return -1;
}

int file_lookup(cow_store *st, struct cow_root *r, const char *name, uint64_t *ino)
{
    lk_assert_held(&st->lock);
    uint8_t buf[COW_MAX_ITEM_DATA];
    size_t size;
    int rc = dir_read(st, r, name, buf, &size);
    if (rc)
        return rc;
    if (dir_find(buf, size, name, ino) >= 0)
        return COW_OK;
    /* the item of NAME's hash without NAME: not found, unless damaged */
    const char *why = names_item_invalid(buf, size, name_hash(name));
    if (why)
        return COW_CORRUPT("looking up %s: directory item %llu holds %s", name,
                           (unsigned long long)name_hash(name), why);
    return COW_ENOENT;
}

static int dir_add(cow_store *st, struct cow_root *r, const char *name, uint64_t ino)
{
    uint8_t buf[COW_MAX_ITEM_DATA];
    size_t size = 0, len = strlen(name);
    int rc = dir_read(st, r, name, buf, &size);
    if (rc == COW_ENOENT)
        size = 0;
    else if (rc)
        return rc;
    if (size + DIR_ENTRY_NAME + len > COW_MAX_ITEM_DATA)
        return cow_set_error(COW_EINVAL, "too many names share one hash");
    put64(buf + size + DIR_ENTRY_INO, ino);
    put16(buf + size + DIR_ENTRY_NAMELEN, (uint16_t)len);
    memcpy(buf + size + DIR_ENTRY_NAME, name, len);
    struct cow_key k = {COW_ROOT_DIR_OBJECTID, COW_DIR_ITEM, name_hash(name)};
    return bt_put(st, r, &k, buf, size + DIR_ENTRY_NAME + len);
}

static int dir_remove(cow_store *st, struct cow_root *r, const char *name)
{
    uint8_t buf[COW_MAX_ITEM_DATA];
    size_t size;
    int rc = dir_read(st, r, name, buf, &size);
    if (rc)
        return rc;
    long p = dir_find(buf, size, name, NULL);
    if (p < 0)
        return COW_ENOENT;
    size_t elen = DIR_ENTRY_NAME + strlen(name);
    memmove(buf + p, buf + p + elen, size - (size_t)p - elen);
    size -= elen;
    struct cow_key k = {COW_ROOT_DIR_OBJECTID, COW_DIR_ITEM, name_hash(name)};
    if (size == 0)
        return bt_delete(st, r, &k);
    return bt_put(st, r, &k, buf, size);
}

/* ---- inodes ---- */

/* The open inode INO of the subvolume tree R, read in if needed; NAME is
 * the name it is opened by (NULL: none). */
static int inode_get(cow_store *st, struct cow_root *r, uint64_t ino, const char *name,
                     struct cow_inode **out)
{
    lk_assert_held(&st->lock);
    for (struct cow_inode *in = st->inodes; in; in = in->next)
        if (in->ino == ino && in->root == r) {
            *out = in;
            return COW_OK;
        }
    struct cow_inode *in = calloc(1, sizeof *in);
    if (!in || (name && !(in->name = strdup(name)))) {
        free(in);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    in->ino = ino;
    in->root = r;
    int rc = pc_init(st, in);
    if (rc) {
        free(in->name);
        free(in);
        return rc;
    }
    rc = em_inode_read(st, in);
    if (rc) {
        pc_destroy(in);
        free(in->name);
        free(in);
        return rc == COW_ENOENT ? COW_CORRUPT("name points at missing inode %llu",
                                              (unsigned long long)ino)
                                : rc;
    }
    in->next = st->inodes;
    st->inodes = in;
    *out = in;
    return COW_OK;
}

static void inode_free(struct cow_inode *in)
{
    pc_destroy(in);
    free(in->lr);
    free(in->name);
    free(in);
}

/* Removes IN from the open inodes (no handle left).  Freed now, or by the
 * flusher when it lets go (nref). */
static void inode_forget(cow_store *st, struct cow_inode *in)
{
    lk_assert_held(&st->lock);
    struct cow_inode **pp = &st->inodes;
    while (*pp && *pp != in)
        pp = &(*pp)->next;
    if (*pp)
        *pp = in->next;
    if (em_modified(in) || in->pc.ndirty)
        st->log_blocked = 1; /* its unlogged changes need a commit now */
    pc_punch(st, in, 0); /* dirty pages left only by a failed writeback */
    if (in->nref > 0)
        in->forgotten = 1;
    else
        inode_free(in);
}

int file_inode_get(cow_store *st, uint64_t ino, struct cow_inode **out)
{
    lk_assert_held(&st->lock);
    return inode_get(st, &st->fs_tree, ino, NULL, out);
}

void file_inode_forget_unused(cow_store *st)
{
    lk_assert_held(&st->lock);
    struct cow_inode **pp = &st->inodes;
    while (*pp) {
        struct cow_inode *in = *pp;
        if (in->nopen == 0) {
            *pp = in->next;
            pc_punch(st, in, 0);
            if (in->nref > 0)
                in->forgotten = 1;
            else
                inode_free(in);
        } else {
            pp = &in->next;
        }
    }
}

void file_drop_inodes(cow_store *st)
{
    while (st->inodes) {
        struct cow_inode *n = st->inodes->next;
        inode_free(st->inodes);
        st->inodes = n;
    }
}

/* ---- writeback of every open file ---- */

int file_writeback_all(cow_store *st)
{
    /* called without store->lock: it takes it after each invalidate lock
     * (not asserted: whether another thread holds it is a racy read) */
    LOCK(st);
    size_t n = 0;
    for (struct cow_inode *in = st->inodes; in; in = in->next)
        n += in->pc.ndirty > 0;
    struct cow_inode **v = n ? malloc(n * sizeof *v) : NULL;
    if (n && !v) {
        UNLOCK(st);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    n = 0;
    for (struct cow_inode *in = st->inodes; in; in = in->next)
        if (in->pc.ndirty > 0) {
            in->nref++;
            v[n++] = in;
        }
    UNLOCK(st);
    int rc = COW_OK;
    for (size_t i = 0; i < n; i++) {
        cow_rwlock_rdlock(&v[i]->invalidate);
        LOCK(st);
        int rc2 = st->failed ? COW_OK : pc_writeback(st, v[i]);
        UNLOCK(st);
        cow_rwlock_unlock(&v[i]->invalidate);
        if (rc == COW_OK)
            rc = rc2;
    }
    LOCK(st);
    for (size_t i = 0; i < n; i++)
        if (--v[i]->nref == 0 && v[i]->forgotten)
            inode_free(v[i]);
    UNLOCK(st);
    free(v);
    return rc;
}

/* ---- preallocation and truncation ---- */

/* The end (bytes) of everything IN holds: its size, extent items, cached
 * pages and ordered extents. */
static int data_end(cow_store *st, struct cow_inode *in, uint64_t *end)
{
    lk_assert_held(&st->lock);
    *end = ROUND_UP(in->size);
    uint64_t pend = pc_end(in);
    if (pend > *end)
        *end = pend;
    uint64_t eend;
    int rc = em_end(st, in, &eend);
    if (rc == COW_OK && eend > *end)
        *end = eend;
    return rc;
}

/* Preallocates [start, end) of IN (block aligned, past everything it
 * holds); see cow_file_preallocate(). */
static int do_preallocate(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end)
{
    lk_assert_held(&st->lock);
    uint64_t nblocks = (end - start) / BLK;
    /* all of it or nothing: free space beyond what reservations hold,
     * and room for the items */
    int rc = resv_room(st, nblocks, nblocks / COW_MAX_EXTENT_BLOCKS + 1);
    if (rc)
        return rc;
    uint64_t at;
    rc = em_preallocate(st, in, start, end, &at);
    if (at > start)
        em_mark_modified(in, start, at);
    if (!rc)
        rc = em_inode_save(st, in);
    if (rc)
        return txn_abort(st, rc);
    st->stats.preallocated += at - start;
    return COW_OK;
}

/* Shrinks or grows IN to SIZE bytes.  A shrink drops the cached pages and
 * the extents past the end as one step (invariant 3): the caller holds the
 * invalidate lock exclusively and waited for the ordered extents there. */
static int do_truncate(cow_store *st, struct cow_inode *in, uint64_t size)
{
    lk_assert_rw_excl(&in->invalidate);
    lk_assert_held(&st->lock);
    int rc;
    if (size > (1ull << 62))
        return cow_set_error(COW_EINVAL, "size %llu too large", (unsigned long long)size);
    if (size > in->size) {
        /* the old last block's bytes past the old end become part of the
         * file: zeros (pc_zero_tail) */
        rc = pc_zero_tail(st, in);
        if (rc)
            return rc;
    }
    if (size < in->size) {
        /* The bytes past the new end in its last block stay on the device
         * as they are (a shrink needs no space: no new block for them);
         * the cached page, if any, has them zeroed, and a later grow
         * zeroes them before they are part of the file again. */
        pc_punch(st, in, ROUND_UP(size) / BLK);
        pc_clear_past(in, size);
#ifdef COW_BREAK_INVALIDATE
        /* BROKEN ON PURPOSE (make race-proof): pages and extents dropped
         * in two steps, with the locks let go in between */
        cow_mutex_unlock(&st->lock);
        COW_INJECT("truncate:punch_gap");
        cow_mutex_lock(&st->lock);
#else
        COW_INJECT("truncate:punch_gap");
#endif
        rc = em_drop_range(st, in, ROUND_UP(size), UINT64_MAX);
        if (rc)
            return txn_abort(st, rc);
        em_mark_modified(in, ROUND_UP(size), UINT64_MAX);
    }
    in->size = in->disk_size = size;
    rc = em_inode_save(st, in);
    if (rc)
        return txn_abort(st, rc);
    return COW_OK;
}

/* Removes an inode and all its data (its name is already gone). */
static int inode_destroy(cow_store *st, struct cow_inode *in)
{
    lk_assert_held(&st->lock);
    st->log_blocked = 1;
    pc_punch(st, in, 0);
    int rc = em_drop_range(st, in, 0, UINT64_MAX);
    struct cow_key k = {in->ino, COW_INODE_ITEM, 0};
    if (!rc)
        rc = bt_delete(st, in->root, &k);
    if (!rc && in->orphan > 0) {
        struct cow_key ok = {COW_ORPHAN_OBJECTID, COW_ORPHAN_ITEM, in->ino};
        rc = bt_delete(st, in->root, &ok);
    }
    return rc;
}

int file_cleanup_orphans(cow_store *st, struct cow_root *r)
{
    lk_assert_held(&st->lock);
    for (;;) {
        struct cow_key k = {COW_ORPHAN_OBJECTID, COW_ORPHAN_ITEM, 0}, f;
        int rc = bt_seek_ge(st, r, &k, &f, NULL, 0, NULL);
        if (rc == COW_ENOENT || (rc == COW_OK && (f.objectid != COW_ORPHAN_OBJECTID ||
                                                  f.type != COW_ORPHAN_ITEM)))
            return COW_OK;
        if (rc)
            return rc;
        struct cow_inode in = {.ino = f.offset, .orphan = 1, .root = r};
        rc = em_inode_read(st, &in);
        if (rc == COW_OK)
            rc = inode_destroy(st, &in);
        else if (rc == COW_ENOENT)
            rc = bt_delete(st, r, &f);
        if (rc)
            return rc;
    }
}

/* ---- public entry points ---- */


static int check_handle(struct cow_file *f)
{
    if (__atomic_load_n(&f->st->failed, __ATOMIC_ACQUIRE))
        return cow_set_error(COW_EFAILED, "%s: the store stopped after an earlier failure "
                                          "(its message said why); reopen the container",
                             f->name);
    return COW_OK;
}

/* check_handle(), and the file is not in a snapshot (read-only). */
static int check_writable(struct cow_file *f)
{
    if (f->inode->root->flags & COW_ROOT_F_SNAPSHOT)
        return cow_set_error(COW_EROFS, "%s is in a snapshot (read-only)", f->name);
    return check_handle(f);
}


int file_open_in(cow_store *st, struct cow_root *r, const char *name, int create,
                 cow_file **out)
{
    int rc;
    uint64_t ino;
    struct cow_inode *in = NULL;
    struct cow_file *f = NULL;
    *out = NULL;
    if (!file_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad file name");
    LOCK(st);
    rc = file_lookup(st, r, name, &ino);
    if (rc == COW_ENOENT && create) {
        rc = txn_begin_change(st);
        if (rc)
            goto out;
        struct cow_inode tmp = {.root = r};
        st->log_blocked = 1; /* the log holds no names */
        tmp.ino = r->next_ino++;
        tmp.generation = st->transid;
        r->dirty = 1;
        rc = em_inode_save(st, &tmp);
        if (!rc)
            rc = dir_add(st, r, name, tmp.ino);
        if (rc) {
            rc = txn_abort(st, rc);
            goto out;
        }
        ino = tmp.ino;
    }
    if (rc)
        goto out;
    rc = inode_get(st, r, ino, name, &in);
    if (rc)
        goto out;
    if (!in->name && !(in->name = strdup(name))) { /* read in by log replay */
        rc = cow_set_error(COW_ENOMEM, "out of memory");
        goto out;
    }
    f = calloc(1, sizeof *f);
    if (!f || !(f->name = strdup(name))) {
        free(f);
        f = NULL;
        rc = cow_set_error(COW_ENOMEM, "out of memory");
        goto out;
    }
    f->st = st;
    f->inode = in;
    in->nopen++;
    *out = f;
out:
    if (rc && in && in->nopen == 0)
        inode_forget(st, in);
    UNLOCK(st);
    return rc;
}

void file_close(cow_file *f)
{
    if (!f)
        return;
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    pc_lock_shared(in);
    LOCK(st);
    if (in->nopen == 1 && in->orphan == 0 && !st->readonly && !st->failed) {
        /* The last handle: its buffered writes go into the running
         * transaction now.  A device error loses them (xClose cannot
         * report it; it is in cow_store_last_error()). */
        (void)pc_writeback(st, in);
    }
    oe_wait_range(st, in, 0, UINT64_MAX);
    UNLOCK(st);
    pc_unlock(in);
    LOCK(st);
    if (--in->nopen == 0) {
        if (in->orphan > 0 && !st->readonly && !st->failed &&
            (!st->shared || shared_is_owner(st->shared))) {
            int rc = inode_destroy(st, in);
            if (rc)
                txn_abort(st, rc);
        }
        inode_forget(st, in);
    }
    UNLOCK(st);
    free(f->name);
    free(f);
}

/*
 * A read of cached blocks only is a copy under the file's page lock
 * (pc_read_cached, invariant 16).  Any other read resolves under
 * store->lock (cached pages copied, extents and checksums looked up:
 * pc_read) and reads the device and checks the checksums with it
 * released (em_read_plan), so that readers do not wait
 * for each other or for a writer's tree updates.  What keeps it right:
 * the invalidate lock, held shared throughout, keeps out truncate, a
 * failed write's cleanup, restore and another process's reload (they
 * take it exclusively); a write meanwhile changes pages and new extents,
 * never the blocks resolved (copy on write; invariant 1), so the read
 * returns the file as it was when resolved; and the blocks resolved are
 * not handed out again until the read ends (alloc_reader_begin: space
 * freed meanwhile waits for it, as other processes' readers are waited
 * for, invariant 9).
 */
int file_read(cow_file *f, void *buf, size_t len, uint64_t off, size_t *nread)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    int rc;
    struct em_plan plan;
    *nread = 0;
    em_plan_init(&plan);
    pc_lock_shared(in);
    /* every block cached: copied without store->lock, which writers hold
     * for their writeback and log records (a nodatacow file's pages only
     * while no other process wrote it in place since this one looked) */
    if (!__atomic_load_n(&st->failed, __ATOMIC_ACQUIRE) &&
        (!(in->flags & COW_INODE_NODATACOW) || inplace_fresh(st)) &&
        pc_read_cached(in, buf, len, off, nread)) {
        pc_unlock(in);
        return COW_OK;
    }
    LOCK(st);
    rc = check_handle(f);
    if (rc)
        goto out;
    if (in->flags & COW_INODE_NODATACOW)
        inplace_forget_stale(st); /* another process wrote in place */
    uint64_t size = in->size, avail = 0;
    if (off < size)
        avail = size - off < len ? size - off : len;
    if (avail)
        rc = pc_read(st, in, buf, avail, off, &plan);
    if (rc == COW_OK && plan.nruns) {
        struct cow_reader rd;
        alloc_reader_begin(st, &rd);
        UNLOCK(st);
        COW_INJECT("read:resolved"); /* tests: a read between its two steps */
        rc = em_read_plan(st->dev, &plan);
        LOCK(st);
        alloc_reader_end(st, &rd);
    }
    if (rc == COW_OK) {
        memset((uint8_t *)buf + avail, 0, len - (size_t)avail);
        *nread = (size_t)avail;
    }
out:
    UNLOCK(st);
    pc_unlock(in);
    em_plan_free(&plan);
    return rc;
}

int file_write(cow_file *f, const void *buf, size_t len, uint64_t off)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    pc_lock_shared(in);
    LOCK(st);
    int rc = check_writable(f);
    if (!rc && (in->flags & COW_INODE_NODATACOW))
        inplace_forget_stale(st); /* a partial block is read from the cache */
    if (!rc)
        rc = txn_begin_change(st);
    int wrote = 0;
    if (!rc) {
        rc = pc_write(st, in, buf, len, off, 0);
        wrote = 1;
    }
    UNLOCK(st);
    pc_unlock(in);
    if (rc && wrote) {
        /* A failed write cleans up through truncate's path: the pages it
         * left past the end of file go, with their reservations, as one
         * step under the invalidate lock held exclusively, so that no
         * reader can cache a page of that range meanwhile and see stale
         * data once the range is written again (docs/DESIGN.md,
         * invariant 3). */
        pc_lock_excl(in);
        LOCK(st);
        uint64_t eof = ROUND_UP(in->size);
        oe_wait_range(st, in, eof, UINT64_MAX);
        pc_punch(st, in, eof / BLK);
        UNLOCK(st);
        pc_unlock(in);
    }
    return rc;
}

int file_truncate(cow_file *f, uint64_t size)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    pc_lock_excl(in);
    LOCK(st);
    int rc = check_writable(f);
    if (!rc)
        rc = txn_begin_change(st);
    if (!rc && size < in->size)
        oe_wait_range(st, in, ROUND_DOWN(size), UINT64_MAX);
    if (!rc && size != in->size)
        rc = do_truncate(st, in, size);
    uint64_t end = 0;
    if (!rc && size == in->size)
        rc = data_end(st, in, &end);
    if (!rc && end > ROUND_UP(size)) {
        /* a truncate to the current size still drops what was
         * preallocated past it (as ftruncate does) */
        oe_wait_range(st, in, ROUND_UP(size), UINT64_MAX);
        rc = em_drop_range(st, in, ROUND_UP(size), UINT64_MAX);
        if (!rc) {
            em_mark_modified(in, ROUND_UP(size), UINT64_MAX);
            rc = em_inode_save(st, in);
        }
        if (rc)
            rc = txn_abort(st, rc);
    }
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

int file_preallocate(cow_file *f, uint64_t end)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    if (end > (1ull << 62))
        return cow_set_error(COW_EINVAL, "preallocation to %llu bytes: too large",
                             (unsigned long long)end);
    pc_lock_excl(in);
    LOCK(st);
    int rc = check_writable(f);
    uint64_t start = 0;
    if (!rc)
        rc = data_end(st, in, &start);
    if (!rc && ROUND_UP(end) > start) {
        rc = txn_begin_change(st);
        if (!rc)
            rc = do_preallocate(st, in, start, ROUND_UP(end));
    }
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

/* Growths of at least this many whole blocks' bytes are made as zeroed
 * extents (grow_extents), smaller ones through the page cache. */
#define GROW_EXTENTS_MIN (1024 * 1024)

/* Zeros for file_grow's writes, and a zero block's crc for each block of
 * an extent (grow_extents). */
static const uint8_t grow_zeros[64 * 1024];
static uint32_t grow_zcrcs[COW_MAX_EXTENT_BLOCKS];

static void zcrcs_init(void)
{
    uint32_t c = crc32c(0, grow_zeros, BLK);
    for (unsigned i = 0; i < COW_MAX_EXTENT_BLOCKS; i++)
        grow_zcrcs[i] = c;
}

/* Writes zeros over [FROM, END) of IN as buffered writes; see file_grow. */
static int write_zeros(cow_store *st, struct cow_inode *in, uint64_t from, uint64_t end)
{
    for (uint64_t at = from; at < end;) {
        uint64_t n = end - at < sizeof grow_zeros ? end - at : sizeof grow_zeros;
        int rc = pc_write(st, in, grow_zeros, (size_t)n, at, 0);
        if (rc)
            return rc;
        at += n;
    }
    return COW_OK;
}

/* Zeros [OFF, +LEN) of the device: its own way (dev->zero: the file
 * device's fallocate for a long range), or written. */
static int zero_device(cow_store *st, uint64_t off, uint64_t len)
{
    if (st->dev->zero)
        return st->dev->zero(st->dev, off, len);
    for (uint64_t at = off; at < off + len;) {
        size_t n = off + len - at < sizeof grow_zeros ? (size_t)(off + len - at) : sizeof grow_zeros;
        int rc = st->dev->write(st->dev, grow_zeros, n, at);
        if (rc)
            return rc;
        at += n;
    }
    return COW_OK;
}

/*
 * The block-aligned part [A, B) of a growth of IN past its end: new
 * NODATASUM extents whose blocks the device zeroes first, then made as a
 * writeback makes them (em_complete; invariant 2: the trees point at the
 * blocks once they hold the zeros).  Nothing goes through the page cache,
 * nothing is checksummed: the crcs are a zero block's.  The store lock is
 * held throughout, so nothing (a relocation choosing its blocks) sees the
 * blocks between their allocation and their extent.  On an error IN ends
 * at the last whole extent made.  Errors: COW_ENOSPC (resv_room,
 * alloc_blocks, the device), COW_EIO_WRITE, em_complete's.
 */
static int grow_extents(cow_store *st, struct cow_inode *in, uint64_t a, uint64_t b)
{
    lk_assert_held(&st->lock);
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, zcrcs_init);
    uint64_t nblocks = (b - a) / BLK;
    int rc = resv_room(st, nblocks, nblocks / COW_MAX_EXTENT_BLOCKS + 1);
    /* Blocks from FRESH on lay past the device's end when the growth
     * began, and a grow makes new bytes read as zeros (bdev.h): they are
     * not zeroed again (the owner, under the lock, is the only one that
     * writes there meanwhile).  A WAL growing beside other processes
     * mostly extends the file, where zeroing 4 MiB took 1 to 12 ms with
     * SQLite's write lock held. */
    uint64_t fresh = UINT64_MAX;
    if (!rc && st->dev->size(st->dev, &fresh))
        fresh = UINT64_MAX; /* not known: everything zeroed */
    for (uint64_t at = a; at < b && !rc;) {
        uint64_t want = (b - at) / BLK, bytenr, got;
        if (want > COW_MAX_EXTENT_BLOCKS)
            want = COW_MAX_EXTENT_BLOCKS;
        rc = alloc_blocks(st, want, 0, &bytenr, &got);
        if (rc)
            break;
        uint64_t zend = bytenr + got * BLK < fresh ? bytenr + got * BLK : fresh;
        rc = zend > bytenr ? zero_device(st, bytenr, zend - bytenr) : COW_OK;
        if (rc) {
            alloc_unalloc(st, bytenr, got * BLK);
            break;
        }
        if (in->size < at + got * BLK)
            pc_set_size(in, at + got * BLK); /* em_complete's disk_size goes as far */
        em_mark_modified(in, at, at + got * BLK);
        rc = em_complete(st, in, at, bytenr, got, grow_zcrcs);
        at += got * BLK;
    }
    return rc;
}

int file_grow(cow_file *f, uint64_t end)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    if (end > (1ull << 62))
        return cow_set_error(COW_EINVAL, "growth to %llu bytes: too large",
                             (unsigned long long)end);
    pc_lock_shared(in);
    LOCK(st);
    int rc = check_writable(f);
    if (!rc && !(in->flags & COW_INODE_NODATACOW))
        rc = cow_set_error(COW_EINVAL, "grow: %s is not nodatacow", f->name ? f->name : "the file");
    int wrote = 0;
    uint64_t from = in->size;
    if (!rc && end > from) {
        rc = txn_begin_change(st);
        if (!rc) {
            /* zeros written (not preallocated: writing into a PREALLOC
             * extent converts it, a metadata change) to new space as
             * NODATASUM extents, which the flushed commit makes old
             * (invariant 13): later writes there land in place.  The
             * partial blocks at the ends through the page cache, the
             * whole blocks between as extents the device zeroes
             * (grow_extents: 4 MiB written and flushed held SQLite's
             * write lock for 15 ms) */
            wrote = 1;
            uint64_t a = ROUND_UP(from), b = ROUND_DOWN(end);
            /* only the large steps taken beside other processes: alone,
             * a WAL grown by extents this way left 0.7 to 3.7 MiB of
             * slack that the balance at close did not give back (test
             * "close: a WAL's churn", tools.sh), through the page cache
             * 20 KiB; why is not known yet */
            if (a >= b || b - a < GROW_EXTENTS_MIN) {
                rc = write_zeros(st, in, from, end);
            } else {
                rc = write_zeros(st, in, from, a);
                if (!rc)
                    rc = grow_extents(st, in, a, b);
                if (!rc)
                    rc = write_zeros(st, in, b, end);
            }
        }
    }
    UNLOCK(st);
    pc_unlock(in);
    if (!rc && wrote) {
        /* a flushed commit of everything written so far, as
         * cow_store_commit (each file's invalidate lock in turn, so this
         * one's is let go first) */
        rc = file_writeback_all(st);
        LOCK(st);
        if (!rc)
            rc = commit_transaction(st, 1);
        if (!rc)
            st->stats.grown += end - from;
        UNLOCK(st);
    }
    if (rc && wrote) {
        /* as a failed write (file_write): what lies past the end goes */
        pc_lock_excl(in);
        LOCK(st);
        uint64_t eof = ROUND_UP(in->size);
        oe_wait_range(st, in, eof, UINT64_MAX);
        pc_punch(st, in, eof / BLK);
        UNLOCK(st);
        pc_unlock(in);
    }
    return rc;
}

int file_set_nodatacow(cow_file *f)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    pc_lock_excl(in);
    LOCK(st);
    int rc = check_writable(f);
    uint64_t end = 0;
    if (!rc && !(in->flags & COW_INODE_NODATACOW))
        rc = data_end(st, in, &end);
    if (!rc && !(in->flags & COW_INODE_NODATACOW)) {
        /* as btrfs's chattr +C: extents written with checksums would be
         * read without (or overwritten under) them */
        if (end || in->nblocks || in->oes)
            rc = cow_set_error(COW_EINVAL, "nodatacow: %s is not empty (%llu bytes)",
                               f->name ? f->name : "the file", (unsigned long long)end);
        if (!rc)
            rc = txn_begin_change(st);
        if (!rc) {
            in->flags |= COW_INODE_NODATACOW;
            rc = em_inode_save(st, in); /* the next record or commit holds it */
            if (rc)
                rc = txn_abort(st, rc);
        }
    }
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

int file_nodatacow(cow_file *f, int *yes)
{
    cow_store *st = f->st;
    LOCK(st);
    int rc = check_handle(f);
    *yes = !rc && (f->inode->flags & COW_INODE_NODATACOW) != 0;
    UNLOCK(st);
    return rc;
}

int file_size(cow_file *f, uint64_t *size)
{
    struct cow_inode *in = f->inode;
    /* without store->lock (SQLite asks at every read transaction): under
     * the invalidate lock held shared the size changes only under the
     * page lock (invariant 16) */
    pc_lock_shared(in);
    int rc = check_handle(f);
    *size = rc ? 0 : pc_size(in);
    pc_unlock(in);
    return rc;
}

int file_sync(cow_file *f)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    pc_lock_shared(in);
    LOCK(st);
    st->stats.syncs++;
    int rc = check_handle(f);
    if (rc == COW_OK)
        rc = pc_writeback(st, in); /* this file's delalloc, as ordered extents */
    if (rc == COW_OK && log_usable(st) && !in->log_overflow && !alloc_space_pressure(st)) {
        /* the fast fsync: the ranges to log, then every ordered extent
         * overlapping them (ours and the flusher's), then one record (a
         * full commit instead when enough freed space waits for one) */
        oe_wait_logged(st, in);
        /* overwrites in place (nodatacow) log nothing: the flusher's
         * still in flight are waited for here, and the flush below makes
         * them durable */
        if (in->flags & COW_INODE_NODATACOW)
            oe_wait_range(st, in, 0, UINT64_MAX);
        if (em_modified(in)) {
            /* the record, then a flush that starts after it, made or
             * shared with store->lock released (txn_flush_wait) */
            rc = log_write(st, &in, 1, 0);
            if (rc == COW_OK)
                rc = txn_flush_wait(st, st->log_flush_need);
        } else if (st->unflushed || st->data_unflushed) {
            /* committed or overwritten in place without a flush
             * already: a flush that starts now */
            rc = txn_flush_wait(st, txn_flush_need(st));
        } else if (st->log_unflushed) {
            /* logged by another sync, not yet flushed: the flush its
             * record needs */
            rc = txn_flush_wait(st, st->log_flush_need);
        }
        if (rc == COW_OK)
            st->stats.log_syncs++;
    } else if (rc == COW_OK) {
        rc = COW_LOG_FULL;
    }
    if (rc == COW_LOG_FULL) {
        /* A full commit holds every file as written so far: the others'
         * buffered data goes in too.  file_writeback_all takes each file's
         * invalidate lock in turn, so this one's is let go first (a thread
         * holds one at a time: no lock-order cycle between files). */
        UNLOCK(st);
        pc_unlock(in);
        rc = file_writeback_all(st);
        pc_lock_shared(in);
        LOCK(st);
        if (rc == COW_OK)
            rc = commit_transaction(st, 1);
    }
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

int file_fetch(cow_file *f, uint64_t off, size_t len, void **pp)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    *pp = NULL;
    pc_lock_shared(in);
    LOCK(st);
    int rc = check_handle(f);
    if (!rc && (in->flags & COW_INODE_NODATACOW))
        inplace_forget_stale(st);
    if (!rc)
        rc = pc_fetch(st, in, off, len, pp);
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

void cow_file_unfetch(cow_file *f, uint64_t off, void *p)
{
    if (!p)
        return;
    LOCK(f->st);
    pc_unfetch(f->inode, off, p);
    UNLOCK(f->st);
}

cow_store *cow_file_store(cow_file *f)
{
    return f->st;
}

const char *cow_file_name(cow_file *f)
{
    return f->name;
}

/* Removes NAME's entry from the subvolume tree R and (unless open) its
 * inode.  Lock held. */
static int unlink_locked(cow_store *st, struct cow_root *r, const char *name)
{
    lk_assert_held(&st->lock);
    uint64_t ino;
    int rc = file_lookup(st, r, name, &ino);
    if (rc)
        return rc;
    rc = txn_begin_change(st);
    if (rc)
        return rc;
    st->log_blocked = 1;
    rc = dir_remove(st, r, name);
    if (rc)
        return txn_abort(st, rc);
    struct cow_inode *open_in = NULL;
    for (struct cow_inode *in = st->inodes; in; in = in->next)
        if (in->ino == ino && in->root == r)
            open_in = in;
    if (open_in) {
        struct cow_key k = {COW_ORPHAN_OBJECTID, COW_ORPHAN_ITEM, ino};
        rc = bt_put(st, r, &k, NULL, 0);
        if (rc)
            return txn_abort(st, rc);
        open_in->orphan = 1;
        return COW_OK;
    }
    struct cow_inode in = {.ino = ino, .root = r};
    rc = em_inode_read(st, &in);
    if (!rc)
        rc = inode_destroy(st, &in);
    if (rc)
        return txn_abort(st, rc);
    return COW_OK;
}

int file_unlink_in(cow_store *st, struct cow_root *r, const char *name)
{
    lk_assert_held(&st->lock);
    return unlink_locked(st, r, name);
}

int file_rebind(cow_store *st, struct cow_inode *in)
{
    lk_assert_rw_excl(&in->invalidate);
    lk_assert_held(&st->lock);
    struct cow_root *r = in->root;
    uint64_t ino;
    if (!in->name)
        return cow_set_error(COW_EINVAL, "open inode %llu has no name",
                             (unsigned long long)in->ino);
    int rc = file_lookup(st, r, in->name, &ino);
    if (rc == COW_ENOENT) {
        struct cow_inode tmp = {.root = r};
        tmp.ino = r->next_ino++;
        tmp.generation = st->transid;
        r->dirty = 1;
        rc = em_inode_save(st, &tmp);
        if (!rc)
            rc = dir_add(st, r, in->name, tmp.ino);
        ino = tmp.ino;
    }
    if (rc)
        return rc;
    oe_wait_range(st, in, 0, UINT64_MAX);
    pc_punch(st, in, 0);
    in->ino = ino;
    em_clear_modified(in);
    in->orphan = 0;
    return em_inode_read(st, in);
}

int file_reload_inode(cow_store *st, struct cow_inode *in)
{
    lk_assert_rw_excl(&in->invalidate);
    lk_assert_held(&st->lock);
    uint64_t ino = 0;
    int rc = in->name ? file_lookup(st, in->root, in->name, &ino) : COW_ENOENT;
    if (rc == COW_OK && ino == in->ino && in->item_transid) {
        /* The same file: unchanged since its state was read or saved if
         * its item's transid is the same (every change of its bytes,
         * size or extents saves the item, em_inode_save), and then its
         * cached pages are still its bytes (a relocation moves the
         * extents, not the bytes).  Readers of a WAL database keep the
         * database's pages across the refreshes the WAL's commits cause
         * (issue 15: refresh what changed, not what did not). */
        uint64_t had = in->item_transid;
        in->orphan = 0;
        rc = em_inode_read(st, in);
        /* a nodatacow file's bytes change in place without its item:
         * its pages are never kept (file_forget_nodatacow) */
        if (rc || (in->item_transid == had && !(in->flags & COW_INODE_NODATACOW)))
            return rc;
        pc_punch(st, in, 0);
        em_clear_modified(in);
        in->orphan = 0;
        return COW_OK;
    }
    pc_punch(st, in, 0);
    em_clear_modified(in);
    if (rc == COW_ENOENT) {
        /* removed by another process: nothing to read, nothing to free */
        in->size = in->disk_size = in->nblocks = 0;
        in->orphan = 0;
        in->ino = 0;
        return COW_OK;
    }
    if (rc)
        return rc;
    in->ino = ino;
    in->orphan = 0;
    return em_inode_read(st, in);
}

void file_forget_nodatacow(cow_store *st)
{
    lk_assert_held(&st->lock);
    for (struct cow_inode *in = st->inodes; in; in = in->next)
        if (in->flags & COW_INODE_NODATACOW)
            pc_forget_range(in, 0, UINT64_MAX);
}

int file_unlink(cow_store *st, const char *name)
{
    if (!file_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad file name");
    LOCK(st);
    int rc = unlink_locked(st, &st->fs_tree, name);
    UNLOCK(st);
    return rc;
}

int file_exists(cow_store *st, const char *name, int *exists)
{
    uint64_t ino;
    *exists = 0;
    if (!file_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad file name");
    LOCK(st);
    int rc = file_lookup(st, &st->fs_tree, name, &ino);
    if (rc == COW_OK)
        *exists = 1;
    else if (rc == COW_ENOENT)
        rc = COW_OK;
    UNLOCK(st);
    return rc;
}

int file_rename(cow_store *st, const char *from, const char *to)
{
    uint64_t ino, ino2;
    if (!file_name_valid(from) || !file_name_valid(to))
        return cow_set_error(COW_EINVAL, "bad file name");
    struct cow_root *r = &st->fs_tree;
    LOCK(st);
    int rc = file_lookup(st, r, from, &ino);
    if (rc || strcmp(from, to) == 0)
        goto out;
    rc = file_lookup(st, r, to, &ino2);
    if (rc == COW_OK)
        rc = unlink_locked(st, r, to);
    else if (rc == COW_ENOENT)
        rc = txn_begin_change(st);
    if (rc)
        goto out;
    st->log_blocked = 1;
    rc = dir_remove(st, r, from);
    if (!rc)
        rc = dir_add(st, r, to, ino);
    if (rc) {
        rc = txn_abort(st, rc);
        goto out;
    }
    for (struct cow_inode *in = st->inodes; in; in = in->next) {
        char *nm;
        if (in->root == r && in->ino == ino && (nm = strdup(to))) {
            free(in->name);
            in->name = nm;
        }
    }
out:
    UNLOCK(st);
    return rc;
}

struct list_ent {
    char name[COW_NAME_MAX + 1];
    uint64_t ino;
};

int cow_list(cow_store *st, int (*cb)(void *arg, const struct cow_file_info *fi), void *arg)
{
    struct list_ent *v = NULL;
    struct cow_file_info *info = NULL;
    size_t n = 0, cap = 0;
    int rc;
    LOCK(st);
    struct cow_key k = {COW_ROOT_DIR_OBJECTID, COW_DIR_ITEM, 0}, f;
    uint8_t buf[COW_MAX_ITEM_DATA];
    size_t size;
    for (;;) {
        rc = bt_seek_ge(st, &st->fs_tree, &k, &f, buf, sizeof buf, &size);
        if (rc == COW_ENOENT || (rc == COW_OK && (f.objectid != COW_ROOT_DIR_OBJECTID ||
                                                  f.type != COW_DIR_ITEM))) {
            rc = COW_OK;
            break;
        }
        if (rc)
            break;
        if (size > sizeof buf) {
            rc = COW_CORRUPT("directory item of %zu bytes", size);
            break;
        }
        size_t p = 0;
        while (p + DIR_ENTRY_NAME <= size) {
            size_t nl = get16(buf + p + DIR_ENTRY_NAMELEN);
            if (nl == 0 || nl > COW_NAME_MAX || p + DIR_ENTRY_NAME + nl > size) {
                rc = COW_CORRUPT("bad directory entry");
                break;
            }
            if (vec_reserve(v, cap, n + 1)) {
                rc = cow_set_error(COW_ENOMEM, "out of memory");
                break;
            }
            memcpy(v[n].name, buf + p + DIR_ENTRY_NAME, nl);
            v[n].name[nl] = 0;
            v[n].ino = get64(buf + p + DIR_ENTRY_INO);
            n++;
            p += DIR_ENTRY_NAME + nl;
        }
        if (rc || f.offset == UINT64_MAX)
            break;
        k.offset = f.offset + 1;
    }
    if (!rc && n) {
        info = calloc(n, sizeof *info);
        if (!info)
            rc = cow_set_error(COW_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n && !rc; i++) {
        struct cow_inode in = {.ino = v[i].ino, .root = &st->fs_tree};
        rc = em_inode_read(st, &in);
        if (rc == COW_ENOENT)
            rc = COW_CORRUPT("name %s points at missing inode", v[i].name);
        info[i].name = v[i].name;
        info[i].ino = in.ino;
        info[i].size = in.size;
        info[i].nblocks = in.nblocks;
    }
    UNLOCK(st);
    for (size_t i = 0; i < n && !rc; i++)
        if (cb(arg, &info[i]))
            break;
    free(info);
    free(v);
    return rc;
}

