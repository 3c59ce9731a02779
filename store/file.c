/*
 * file.c - files inside a container: names, inodes, extents, checksums.
 *
 * A file is an INODE_ITEM (size, block count) plus EXTENT_DATA items
 * mapping block-aligned file ranges to ranges of data extents; every data
 * extent has one EXTENT_CSUM item (a crc32c per block) in the csum tree and
 * one EXTENT_ITEM (its refcount) in the extent tree.  Names live in
 * DIR_ITEMs of the one directory (objectid 256).
 *
 * Writes are copy on write: the blocks a write touches are written whole to
 * newly allocated space (a partial block is read first and merged), then
 * the old mapping for that range is dropped and the new one inserted.  The
 * data is on the device before any tree points at it, and nothing the last
 * commit reaches is overwritten.  Bytes past the end of file inside the
 * last block are kept zero (truncate zeroes them), so growing a file never
 * exposes old bytes.
 *
 * Locking: the cow_* entry points take store->lock for the whole call;
 * static helpers require it held.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "validate.h"
#include "crc32c.h"
#include "inject.h"
#include "store_int.h"

#define BLK COW_BLOCK_SIZE
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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int inode_read(cow_store *st, struct cow_inode *in)
{
    uint8_t it[INODE_ITEM_SIZE];
    size_t size;
    struct cow_key k = {in->ino, COW_INODE_ITEM, 0};
    int rc = bt_lookup(st, in->root, &k, it, sizeof it, &size);
    if (rc)
        return rc;
    if (size != INODE_ITEM_SIZE)
        return COW_CORRUPT("inode %llu item has %zu bytes", (unsigned long long)in->ino, size);
    in->size = in->disk_size = get64(it + INODE_SIZE);
    in->nblocks = get64(it + INODE_NBLOCKS);
    in->generation = get64(it + INODE_GENERATION);
    return COW_OK;
}

static int inode_save(cow_store *st, struct cow_inode *in)
{
    uint8_t it[INODE_ITEM_SIZE];
    memset(it, 0, sizeof it);
    put64(it + INODE_SIZE, in->disk_size);
    put64(it + INODE_NBLOCKS, in->nblocks);
    put64(it + INODE_GENERATION, in->generation);
    put64(it + INODE_TRANSID, st->transid);
    put64(it + INODE_MTIME, now_ns());
    struct cow_key k = {in->ino, COW_INODE_ITEM, 0};
    in->log_size = 1;
    return bt_put(st, in->root, &k, it, sizeof it);
}

/* The open inode INO of the subvolume tree R, read in if needed; NAME is
 * the name it is opened by (NULL: none). */
static int inode_get(cow_store *st, struct cow_root *r, uint64_t ino, const char *name,
                     struct cow_inode **out)
{
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
    int rc = pc_init(in);
    if (rc) {
        free(in->name);
        free(in);
        return rc;
    }
    rc = inode_read(st, in);
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

void file_inode_free(struct cow_inode *in)
{
    inode_free(in);
}

/* Removes IN from the open inodes (no handle left).  Freed now, or by the
 * flusher when it lets go (nref). */
static void inode_forget(cow_store *st, struct cow_inode *in)
{
    struct cow_inode **pp = &st->inodes;
    while (*pp && *pp != in)
        pp = &(*pp)->next;
    if (*pp)
        *pp = in->next;
    if (log_inode_dirty(in) || in->pc.ndirty)
        st->log_blocked = 1; /* its unlogged changes need a commit now */
    pc_punch(st, in, 0); /* dirty pages left only by a failed writeback */
    if (in->nref > 0)
        in->forgotten = 1;
    else
        inode_free(in);
}

int file_inode_get(cow_store *st, uint64_t ino, struct cow_inode **out)
{
    return inode_get(st, &st->fs_tree, ino, NULL, out);
}

int file_inode_save(cow_store *st, struct cow_inode *in)
{
    return inode_save(st, in);
}

void file_inode_forget_unused(cow_store *st)
{
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

/* ---- extent mapping ---- */

/* The file extent items of a file are parsed by check_file_extent()
 * (validate.c), which bounds every field; struct fext is in validate.h. */
static int fext_parse(cow_store *st, const struct cow_key *k, const uint8_t *d, size_t size,
                      struct fext *fx)
{
    return check_file_extent(st, NULL, k, d, size, fx);
}

static void fext_put(uint8_t *d, const struct fext *fx, uint64_t transid)
{
    memset(d, 0, FE_ITEM_SIZE);
    put64(d + FE_DISK_BYTENR, fx->disk);
    put64(d + FE_DISK_NUM_BYTES, fx->disk_len);
    put64(d + FE_EXTENT_OFFSET, fx->ext_off);
    put64(d + FE_NUM_BYTES, fx->len);
    put32(d + FE_GENERATION, (uint32_t)transid);
    d[FE_TYPE] = fx->type;
}

/* The first extent of INO ending after POS (starting at or before POS, or
 * the next one).  COW_ENOENT if none. */
static int fext_first(cow_store *st, const struct cow_inode *in, uint64_t pos, struct fext *fx)
{
    uint64_t ino = in->ino;
    struct cow_key k = {ino, COW_EXTENT_DATA, pos}, f;
    uint8_t d[FE_ITEM_SIZE];
    size_t size;
    int rc = bt_seek_le(st, in->root, &k, &f, d, sizeof d, &size);
    if (rc == COW_OK && f.objectid == ino && f.type == COW_EXTENT_DATA) {
        rc = fext_parse(st, &f, d, size, fx);
        if (rc)
            return rc;
        if (fx->start + fx->len > pos)
            return COW_OK;
    } else if (rc && rc != COW_ENOENT) {
        return rc;
    }
    rc = bt_seek_ge(st, in->root, &k, &f, d, sizeof d, &size);
    if (rc)
        return rc;
    if (f.objectid != ino || f.type != COW_EXTENT_DATA)
        return COW_ENOENT;
    return fext_parse(st, &f, d, size, fx);
}

/* The extent after the one starting at START. */
static int fext_next(cow_store *st, const struct cow_inode *in, uint64_t start, struct fext *fx)
{
    uint64_t ino = in->ino;
    struct cow_key k = {ino, COW_EXTENT_DATA, start + 1}, f;
    uint8_t d[FE_ITEM_SIZE];
    size_t size;
    int rc = bt_seek_ge(st, in->root, &k, &f, d, sizeof d, &size);
    if (rc)
        return rc;
    if (f.objectid != ino || f.type != COW_EXTENT_DATA)
        return COW_ENOENT;
    return fext_parse(st, &f, d, size, fx);
}

static int fext_insert(cow_store *st, const struct cow_inode *in, const struct fext *fx)
{
    uint8_t d[FE_ITEM_SIZE];
    struct cow_key k = {in->ino, COW_EXTENT_DATA, fx->start};
    fext_put(d, fx, st->transid);
    return bt_insert(st, in->root, &k, d, sizeof d);
}

static int fext_delete(cow_store *st, const struct cow_inode *in, uint64_t start)
{
    struct cow_key k = {in->ino, COW_EXTENT_DATA, start};
    return bt_delete(st, in->root, &k);
}

/*
 * Drops the mapping of [start, end) (block aligned; END may be UINT64_MAX)
 * from inode IN: items inside go, items crossing an edge are trimmed (an
 * item spanning the whole range is split in two, adding a reference to its
 * extent).  Updates in->nblocks; the caller saves the inode.
 */
static int drop_range(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end)
{
    struct fext fx;
    int rc = fext_first(st, in, start, &fx);
    while (rc == COW_OK && fx.start < end) {
        uint64_t s = fx.start, e = fx.start + fx.len;
        uint64_t cut0 = s > start ? s : start, cut1 = e < end ? e : end;
        in->nblocks -= (cut1 - cut0) / BLK;
        if (s >= start && e <= end) {
            rc = fext_delete(st, in, s);
            if (!rc)
                rc = refs_add(st, fx.disk, fx.disk_len, 1, 0, -1);
        } else if (s < start && e > end) {
            struct fext right = fx;
            right.start = end;
            right.ext_off = fx.ext_off + (end - s);
            right.len = e - end;
            fx.len = start - s;
            rc = fext_delete(st, in, s);
            if (!rc)
                rc = fext_insert(st, in, &fx);
            if (!rc)
                rc = fext_insert(st, in, &right);
            if (!rc)
                rc = refs_add(st, fx.disk, fx.disk_len, 1, 0, +1);
            return rc;
        } else if (s < start) {
            fx.len = start - s;
            rc = fext_delete(st, in, s);
            if (!rc)
                rc = fext_insert(st, in, &fx);
        } else {
            /* s >= start, e > end: keep the tail */
            struct fext tail = fx;
            tail.start = end;
            tail.ext_off = fx.ext_off + (end - s);
            tail.len = e - end;
            rc = fext_delete(st, in, s);
            if (!rc)
                rc = fext_insert(st, in, &tail);
            return rc;
        }
        if (rc)
            return rc;
        rc = fext_next(st, in, s, &fx);
    }
    return rc == COW_ENOENT ? COW_OK : rc;
}

int file_drop_range(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end)
{
    pc_forget_range(in, start, end);
    return drop_range(st, in, start, end);
}

int file_insert_extent(cow_store *st, struct cow_inode *in, uint64_t off, const uint8_t *fe)
{
    struct fext fx;
    struct cow_key k = {in->ino, COW_EXTENT_DATA, off};
    int rc = fext_parse(st, &k, fe, FE_ITEM_SIZE, &fx);
    if (rc)
        return rc;
    pc_forget_range(in, fx.start, fx.start + fx.len);
    if (rc)
        return rc;
    rc = fext_insert(st, in, &fx);
    if (!rc)
        rc = refs_add(st, fx.disk, fx.disk_len, 1, 0, +1);
    if (!rc)
        in->nblocks += fx.len / BLK;
    return rc;
}

int file_for_extents(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end,
                     int (*cb)(void *arg, uint64_t off, const uint8_t *fe), void *arg)
{
    struct fext fx;
    int rc = fext_first(st, in, start, &fx);
    while (rc == COW_OK && fx.start < end) {
        struct fext c = fx;
        if (c.start < start) {
            c.ext_off += start - c.start;
            c.len -= start - c.start;
            c.start = start;
        }
        if (c.start + c.len > end)
            c.len = end - c.start;
        uint8_t d[FE_ITEM_SIZE];
        fext_put(d, &c, st->transid);
        rc = cb(arg, c.start, d);
        if (rc)
            return rc;
        rc = fext_next(st, in, fx.start, &fx);
    }
    return rc == COW_ENOENT ? COW_OK : rc;
}

/* ---- reading ---- */

/* Reads and verifies [disk, disk+len) of the data extent FX into OUT. */
static int read_extent_blocks(cow_store *st, const struct fext *fx, uint64_t disk, uint64_t len,
                              uint8_t *out)
{
    uint8_t csums[COW_MAX_EXTENT_BLOCKS * 4];
    size_t size;
    struct cow_key k = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, fx->disk};
    int rc = bt_lookup(st, &st->csum_tree, &k, csums, sizeof csums, &size);
    if (rc == COW_ENOENT)
        return COW_CORRUPT("data extent %llu has no checksums", (unsigned long long)fx->disk);
    if (!rc)
        rc = check_csum_matches(fx->disk, fx->disk_len, size);
    if (rc)
        return rc;
    rc = st->dev->read(st->dev, out, (size_t)len, disk);
    if (rc)
        return rc;
    for (uint64_t b = 0; b < len / BLK; b++) {
        uint64_t idx = (disk - fx->disk) / BLK + b;
        uint32_t want = get32(csums + idx * 4);
        if (crc32c(0, out + b * BLK, BLK) != want)
            return cow_set_error(COW_ECSUM,
                                 "data block %llu does not match its checksum",
                                 (unsigned long long)(disk + b * BLK));
    }
    return COW_OK;
}

/* Reads [off, off+len) of IN's extents into BUF; the range must lie within
 * the file's blocks; holes read as zeros. */
int file_read_extents(cow_store *st, struct cow_inode *in, uint8_t *buf, uint64_t len,
                      uint64_t off)
{
    enum { CHUNK = 64 * 1024, SMALL = 2 * BLK };
    uint8_t small[SMALL]; /* page-sized reads need no heap buffer */
    uint8_t *tmp = NULL, *heap = NULL;
    uint64_t end = off + len;
    if (ROUND_UP(end) - ROUND_DOWN(off) <= SMALL)
        tmp = small;
    struct fext fx;
    memset(buf, 0, (size_t)len);
    int rc = fext_first(st, in, off, &fx);
    while (rc == COW_OK && fx.start < end) {
        uint64_t s = fx.start > off ? fx.start : off;
        uint64_t e = fx.start + fx.len < end ? fx.start + fx.len : end;
        if (fx.type == COW_FE_PREALLOC)
            s = e; /* preallocated, never written: zeros (BUF is zeroed) */
        while (s < e) {
            uint64_t bs = ROUND_DOWN(s);
            uint64_t be = ROUND_UP(e);
            if (be - bs > CHUNK)
                be = bs + CHUNK;
            if (!tmp && !(tmp = heap = malloc(CHUNK))) {
                rc = cow_set_error(COW_ENOMEM, "out of memory");
                goto out;
            }
            uint64_t disk = fx.disk + fx.ext_off + (bs - fx.start);
            rc = read_extent_blocks(st, &fx, disk, be - bs, tmp);
            if (rc)
                goto out;
            uint64_t ce = be < e ? be : e;
            memcpy(buf + (s - off), tmp + (s - bs), (size_t)(ce - s));
            s = ce;
        }
        rc = fext_next(st, in, fx.start, &fx);
    }
    if (rc == COW_ENOENT)
        rc = COW_OK;
out:
    free(heap);
    return rc;
}

/* ---- writing (the trees' side; the page cache is pcache.c) ---- */

int file_complete_extent(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t disk,
                         uint64_t nblocks, const uint32_t *crcs)
{
    uint8_t csum_item[COW_MAX_EXTENT_BLOCKS * 4];
    for (uint64_t b = 0; b < nblocks; b++)
        put32(csum_item + b * 4, crcs[b]);
    txn_note_written(st, disk, nblocks, crcs);
    /* the data is written: now the trees may point at it */
    struct fext fx = {off, disk, nblocks * BLK, 0, nblocks * BLK, COW_FE_REG};
    struct cow_key ck = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, disk};
    int rc = refs_add(st, disk, nblocks * BLK, 1, 0, +1);
    if (!rc)
        rc = bt_insert(st, &st->csum_tree, &ck, csum_item, (size_t)(nblocks * 4));
    if (!rc)
        rc = drop_range(st, in, off, off + nblocks * BLK);
    if (!rc)
        rc = fext_insert(st, in, &fx);
    if (!rc) {
        in->nblocks += nblocks;
        uint64_t end = off + nblocks * BLK < in->size ? off + nblocks * BLK : in->size;
        if (end > in->disk_size)
            in->disk_size = end;
        rc = inode_save(st, in);
    }
    if (rc)
        return txn_abort(st, rc);
    return COW_OK;
}

/*
 * Whether the extent of item FX of file IN may be written in place: a
 * preallocated extent allocated after the last snapshot or branch that
 * involved IN's tree (cow_root.last_snapshot), so that no other tree can
 * point at it (btrfs's can_nocow_file_extent).  An older one may be shared
 * with a branch, which would write the same blocks, so it is written copy
 * on write.  Sets *YES.  Lock held.
 */
static int prealloc_writable(cow_store *st, const struct cow_inode *in, const struct fext *fx,
                             int *yes)
{
    uint64_t gen;
    *yes = 0;
    if (fx->type != COW_FE_PREALLOC)
        return COW_OK;
    if (in->root->last_snapshot == 0) {
        *yes = 1;
        return COW_OK;
    }
    int rc = refs_generation(st, fx->disk, &gen);
    if (rc == COW_OK)
        *yes = gen > in->root->last_snapshot;
    return rc;
}

int file_prealloc_target(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t len,
                         int *nocow, uint64_t *disk, uint64_t *runlen)
{
    struct fext fx;
    *nocow = 0;
    *disk = 0;
    *runlen = len;
    int rc = fext_first(st, in, off, &fx);
    if (rc == COW_ENOENT)
        return COW_OK;
    if (rc)
        return rc;
    int yes;
    rc = prealloc_writable(st, in, &fx, &yes);
    if (rc)
        return rc;
    if (fx.start <= off && yes) {
        uint64_t in_item = fx.start + fx.len - off;
        *nocow = 1;
        *disk = fx.disk + fx.ext_off + (off - fx.start);
        *runlen = len < in_item ? len : in_item;
        return COW_OK;
    }
    /* new space up to the next preallocated range */
    while (fx.start < off + len) {
        if (fx.start > off) {
            rc = prealloc_writable(st, in, &fx, &yes);
            if (rc)
                return rc;
            if (yes) {
                *runlen = fx.start - off;
                return COW_OK;
            }
        }
        rc = fext_next(st, in, fx.start, &fx);
        if (rc == COW_ENOENT)
            return COW_OK;
        if (rc)
            return rc;
    }
    return COW_OK;
}

int file_prealloc_at(cow_store *st, struct cow_inode *in, uint64_t idx, int *yes)
{
    struct fext fx;
    *yes = 0;
    int rc = fext_first(st, in, idx * BLK, &fx);
    if (rc == COW_ENOENT)
        return COW_OK;
    if (rc == COW_OK && fx.start <= idx * BLK)
        rc = prealloc_writable(st, in, &fx, yes);
    return rc;
}

int file_complete_prealloc(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t disk,
                           uint64_t nblocks, const uint32_t *crcs)
{
    struct fext fx;
    uint8_t csum_item[COW_MAX_EXTENT_BLOCKS * 4];
    size_t size;
    uint64_t len = nblocks * BLK;
    int rc = fext_first(st, in, off, &fx);
    if (rc == COW_OK &&
        (fx.start > off || fx.start + fx.len < off + len || fx.type != COW_FE_PREALLOC ||
         fx.disk + fx.ext_off + (off - fx.start) != disk))
        rc = COW_CORRUPT("inode %llu: the preallocated range at %llu changed under its "
                         "ordered extent",
                         (unsigned long long)in->ino, (unsigned long long)off);
    struct cow_key ck = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, fx.disk};
    if (!rc)
        rc = bt_lookup(st, &st->csum_tree, &ck, csum_item, sizeof csum_item, &size);
    if (!rc)
        rc = check_csum_matches(fx.disk, fx.disk_len, size);
    if (!rc) {
        /* the written blocks' checksums, then the mapping: head and tail
         * stay preallocated, the middle becomes a REG item of the same
         * extent (one more reference) */
        uint64_t first = (disk - fx.disk) / BLK;
        for (uint64_t b = 0; b < nblocks; b++)
            put32(csum_item + (first + b) * 4, crcs[b]);
        txn_note_written(st, disk, nblocks, crcs);
        rc = bt_put(st, &st->csum_tree, &ck, csum_item, size);
    }
    if (!rc)
        rc = drop_range(st, in, off, off + len);
    if (!rc) {
        struct fext reg = {off, fx.disk, fx.disk_len, disk - fx.disk, len, COW_FE_REG};
        rc = fext_insert(st, in, &reg);
        if (!rc)
            rc = refs_add(st, fx.disk, fx.disk_len, 1, 0, +1);
    }
    if (!rc) {
        in->nblocks += nblocks;
        uint64_t end = off + len < in->size ? off + len : in->size;
        if (end > in->disk_size)
            in->disk_size = end;
        rc = inode_save(st, in);
    }
    if (rc)
        return txn_abort(st, rc);
    st->stats.written_in_place += len;
    return COW_OK;
}

/* The end (bytes) of everything IN holds: its size, extent items, cached
 * pages and ordered extents. */
static int data_end(cow_store *st, struct cow_inode *in, uint64_t *end)
{
    *end = ROUND_UP(in->size);
    uint64_t pend = pc_end(in);
    if (pend > *end)
        *end = pend;
    struct cow_key k = {in->ino, COW_EXTENT_DATA, UINT64_MAX}, f;
    uint8_t d[FE_ITEM_SIZE];
    size_t size;
    int rc = bt_seek_le(st, in->root, &k, &f, d, sizeof d, &size);
    if (rc == COW_ENOENT)
        return COW_OK;
    if (rc)
        return rc;
    if (f.objectid != in->ino || f.type != COW_EXTENT_DATA)
        return COW_OK;
    struct fext fx;
    rc = fext_parse(st, &f, d, size, &fx);
    if (rc == COW_OK && fx.start + fx.len > *end)
        *end = fx.start + fx.len;
    return rc;
}

/* Preallocates [start, end) of IN (block aligned, past everything it
 * holds); see cow_file_preallocate(). */
static int do_preallocate(cow_store *st, struct cow_inode *in, uint64_t start, uint64_t end)
{
    uint64_t nblocks = (end - start) / BLK;
    /* all of it or nothing: free space beyond what reservations hold,
     * and room for the items */
    int rc = alloc_reserve(st, st->reserved - st->oe_alloc + nblocks,
                           resv_meta_blocks(st, nblocks / COW_MAX_EXTENT_BLOCKS + 1));
    if (rc)
        return rc;
    uint8_t zero[BLK];
    memset(zero, 0, sizeof zero);
    uint32_t zcrc = crc32c(0, zero, BLK);
    uint8_t csum_item[COW_MAX_EXTENT_BLOCKS * 4];
    for (uint64_t b = 0; b < COW_MAX_EXTENT_BLOCKS; b++)
        put32(csum_item + b * 4, zcrc); /* placeholders: no REG item covers them */
    uint64_t at = start;
    while (at < end && rc == COW_OK) {
        uint64_t want = (end - at) / BLK, bytenr, got;
        if (want > COW_MAX_EXTENT_BLOCKS)
            want = COW_MAX_EXTENT_BLOCKS;
        rc = alloc_blocks(st, want, 0, &bytenr, &got);
        if (rc)
            break;
        struct fext fx = {at, bytenr, got * BLK, 0, got * BLK, COW_FE_PREALLOC};
        struct cow_key ck = {COW_CSUM_TREE_OBJECTID, COW_EXTENT_CSUM, bytenr};
        rc = refs_add(st, bytenr, got * BLK, 1, 0, +1);
        if (!rc)
            rc = bt_insert(st, &st->csum_tree, &ck, csum_item, (size_t)(got * 4));
        if (!rc)
            rc = fext_insert(st, in, &fx);
        if (rc) {
            alloc_unalloc(st, bytenr, got * BLK);
            break;
        }
        in->nblocks += got;
        at += got * BLK;
    }
    if (at > start)
        log_note_range(in, start, at);
    if (!rc)
        rc = inode_save(st, in);
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
        rc = drop_range(st, in, ROUND_UP(size), UINT64_MAX);
        if (rc)
            return txn_abort(st, rc);
        log_note_range(in, ROUND_UP(size), UINT64_MAX);
    }
    in->size = in->disk_size = size;
    rc = inode_save(st, in);
    if (rc)
        return txn_abort(st, rc);
    return COW_OK;
}

/* Removes an inode and all its data (its name is already gone). */
static int inode_destroy(cow_store *st, struct cow_inode *in)
{
    st->log_blocked = 1;
    pc_punch(st, in, 0);
    int rc = drop_range(st, in, 0, UINT64_MAX);
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
    for (;;) {
        struct cow_key k = {COW_ORPHAN_OBJECTID, COW_ORPHAN_ITEM, 0}, f;
        int rc = bt_seek_ge(st, r, &k, &f, NULL, 0, NULL);
        if (rc == COW_ENOENT || (rc == COW_OK && (f.objectid != COW_ORPHAN_OBJECTID ||
                                                  f.type != COW_ORPHAN_ITEM)))
            return COW_OK;
        if (rc)
            return rc;
        struct cow_inode in = {.ino = f.offset, .orphan = 1, .root = r};
        rc = inode_read(st, &in);
        if (rc == COW_OK)
            rc = inode_destroy(st, &in);
        else if (rc == COW_ENOENT)
            rc = bt_delete(st, r, &f);
        if (rc)
            return rc;
    }
}

/* ---- public entry points ---- */

#define LOCK(st) cow_mutex_lock(&(st)->lock)
#define UNLOCK(st) cow_mutex_unlock(&(st)->lock)

static int check_handle(struct cow_file *f)
{
    if (f->st->failed)
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

int cow_file_open(cow_store *st, const char *name, int create, cow_file **out)
{
    return file_open_in(st, &st->fs_tree, name, create, out);
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
        rc = inode_save(st, &tmp);
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

void cow_file_close(cow_file *f)
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
        if (in->orphan > 0 && !st->readonly && !st->failed) {
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

int cow_file_read(cow_file *f, void *buf, size_t len, uint64_t off, size_t *nread)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    int rc;
    *nread = 0;
    pc_lock_shared(in);
    LOCK(st);
    rc = check_handle(f);
    if (rc)
        goto out;
    uint64_t size = in->size, avail = 0;
    if (off < size)
        avail = size - off < len ? size - off : len;
    if (avail)
        rc = pc_read(st, in, buf, avail, off);
    if (rc == COW_OK) {
        memset((uint8_t *)buf + avail, 0, len - (size_t)avail);
        *nread = (size_t)avail;
    }
out:
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

int cow_file_write(cow_file *f, const void *buf, size_t len, uint64_t off)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    pc_lock_shared(in);
    LOCK(st);
    int rc = check_writable(f);
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
         * step under the invalidate lock held exclusively (invariant 3;
         * ../shared/reference/xfs-punch-delalloc-on-write-failure.txt). */
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

int cow_file_truncate(cow_file *f, uint64_t size)
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
        rc = drop_range(st, in, ROUND_UP(size), UINT64_MAX);
        if (!rc) {
            log_note_range(in, ROUND_UP(size), UINT64_MAX);
            rc = inode_save(st, in);
        }
        if (rc)
            rc = txn_abort(st, rc);
    }
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

int cow_file_preallocate(cow_file *f, uint64_t end)
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

int cow_file_size(cow_file *f, uint64_t *size)
{
    cow_store *st = f->st;
    LOCK(st);
    int rc = check_handle(f);
    *size = rc ? 0 : f->inode->size;
    UNLOCK(st);
    return rc;
}

int cow_file_sync(cow_file *f)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    pc_lock_shared(in);
    LOCK(st);
    st->stats.syncs++;
    int rc = check_handle(f);
    if (rc == COW_OK)
        rc = pc_writeback(st, in); /* this file's delalloc, as ordered extents */
    if (rc == COW_OK && log_usable(st) && !in->log_overflow) {
        /* the fast fsync: the ranges to log, then every ordered extent
         * overlapping them (ours and the flusher's), then one record */
        oe_wait_logged(st, in);
        if (log_inode_dirty(in)) {
            rc = log_write(st, &in, 1, 1);
        } else if (st->log_unflushed || st->unflushed) {
            /* logged or committed without a flush already: flush now */
            rc = txn_flush(st);
        }
        if (rc == COW_OK)
            st->stats.log_syncs++;
    } else if (rc == COW_OK) {
        rc = COW_LOG_FULL;
    }
    if (rc == COW_LOG_FULL) {
        /* A full commit holds every file as written so far: the others'
         * buffered data goes in too.  pc_writeback_all takes each file's
         * invalidate lock in turn, so this one's is let go first (a thread
         * holds one at a time: no lock-order cycle between files). */
        UNLOCK(st);
        pc_unlock(in);
        rc = pc_writeback_all(st);
        pc_lock_shared(in);
        LOCK(st);
        if (rc == COW_OK)
            rc = txn_commit(st, 1);
    }
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

int cow_file_fetch(cow_file *f, uint64_t off, size_t len, void **pp)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    *pp = NULL;
    pc_lock_shared(in);
    LOCK(st);
    int rc = check_handle(f);
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
    rc = inode_read(st, &in);
    if (!rc)
        rc = inode_destroy(st, &in);
    if (rc)
        return txn_abort(st, rc);
    return COW_OK;
}

int file_unlink_in(cow_store *st, struct cow_root *r, const char *name)
{
    return unlink_locked(st, r, name);
}

int file_rebind(cow_store *st, struct cow_inode *in)
{
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
        rc = inode_save(st, &tmp);
        if (!rc)
            rc = dir_add(st, r, in->name, tmp.ino);
        ino = tmp.ino;
    }
    if (rc)
        return rc;
    oe_wait_range(st, in, 0, UINT64_MAX);
    pc_punch(st, in, 0);
    in->ino = ino;
    in->nlr = 0;
    in->log_size = in->log_overflow = 0;
    in->orphan = 0;
    return inode_read(st, in);
}

int cow_unlink(cow_store *st, const char *name)
{
    if (!file_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad file name");
    LOCK(st);
    int rc = unlink_locked(st, &st->fs_tree, name);
    UNLOCK(st);
    return rc;
}

int cow_exists(cow_store *st, const char *name, int *exists)
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

int cow_rename(cow_store *st, const char *from, const char *to)
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
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                struct list_ent *nv = realloc(v, cap * sizeof *nv);
                if (!nv) {
                    rc = cow_set_error(COW_ENOMEM, "out of memory");
                    break;
                }
                v = nv;
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
        rc = inode_read(st, &in);
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
