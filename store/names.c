/*
 * names.c - the namespace of a subvolume checked as a whole at open.
 *
 * A file that the container holds but that cannot be found by its name is
 * worse than an error: SQLite asks whether "db-wal" exists, is told no, and
 * runs on the database without its last committed transactions.  A damaged
 * DIR_ITEM (a name byte, its hash, its inode number) makes exactly that, so
 * open checks what fsck checks of names (tools/fsck/walk.c check_dir_entries
 * and tools/fsck/files.c), and a lookup checks the item it reads:
 *
 *   - every DIR_ITEM entry parses, its name is 1..255 bytes without '/' or
 *     NUL, crc32c(name) is the item's key offset, and it points at a file
 *     inode (>= COW_FIRST_INO), never twice in one item;
 *   - every name points at an inode that exists and has no ORPHAN_ITEM, and
 *     no inode has two names;
 *   - every inode has a name or an ORPHAN_ITEM (an unlinked file still
 *     open), and every ORPHAN_ITEM's inode exists.
 *
 * The cost is one seek per inode and one per DIR_ITEM and ORPHAN_ITEM: a
 * container holds a handful of files per subvolume.
 *
 * Locking: store->lock held by every caller.
 */
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "store_int.h"
#include "vec.h"

const char *names_item_invalid(const uint8_t *buf, size_t size, uint64_t hash)
{
    size_t p = 0;
    if (size == 0)
        return "an empty directory item";
    while (p < size) {
        if (size - p < DIR_ENTRY_NAME)
            return "a truncated directory entry";
        size_t nl = get16(buf + p + DIR_ENTRY_NAMELEN);
        const uint8_t *name = buf + p + DIR_ENTRY_NAME;
        if (nl == 0 || nl > COW_NAME_MAX || nl > size - p - DIR_ENTRY_NAME)
            return "a directory entry with a bad name length";
        if (memchr(name, '/', nl) || memchr(name, 0, nl))
            return "a name with '/' or NUL";
        if (crc32c(0, name, nl) != hash)
            return "a name that does not hash to its item's key";
        if (get64(buf + p + DIR_ENTRY_INO) < COW_FIRST_INO)
            return "a name of a non-file inode";
        for (size_t q = 0; q < p;) { /* the same name twice */
            size_t ql = get16(buf + q + DIR_ENTRY_NAMELEN);
            if (ql == nl && memcmp(buf + q + DIR_ENTRY_NAME, name, nl) == 0)
                return "the same name twice";
            q += DIR_ENTRY_NAME + ql;
        }
        p += DIR_ENTRY_NAME + nl;
    }
    return NULL;
}

struct u64v {
    uint64_t *v;
    size_t n, cap;
};

static int u64v_push(struct u64v *a, uint64_t x)
{
    if (vec_reserve(a->v, a->cap, a->n + 1))
        return cow_set_error(COW_ENOMEM, "out of memory");
    a->v[a->n++] = x;
    return COW_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int u64v_has(const struct u64v *a, uint64_t x)
{
    return a->n && bsearch(&x, a->v, a->n, sizeof *a->v, cmp_u64) != NULL;
}

/* Appends to OUT the key offsets (or, for DIR_ITEMs, the entries' inodes)
 * of every item of OBJECTID/TYPE in R. */
static int collect(cow_store *st, struct cow_root *r, uint64_t objectid, uint8_t type,
                   uint64_t id, struct u64v *out)
{
    struct cow_key k = {objectid, type, 0}, f;
    uint8_t buf[COW_MAX_ITEM_DATA];
    size_t size;
    for (;;) {
        int rc = bt_seek_ge(st, r, &k, &f, buf, sizeof buf, &size);
        if (rc == COW_ENOENT || (rc == COW_OK && (f.objectid != objectid || f.type != type)))
            return COW_OK;
        if (rc)
            return rc;
        if (type == COW_DIR_ITEM) {
            const char *why = size > sizeof buf ? "a directory item too large"
                                                : names_item_invalid(buf, size, f.offset);
            if (why)
                return COW_CORRUPT("subvolume %llu: directory item %llu: %s",
                                   (unsigned long long)id, (unsigned long long)f.offset, why);
            for (size_t p = 0; p < size; p += DIR_ENTRY_NAME + get16(buf + p + DIR_ENTRY_NAMELEN))
                if ((rc = u64v_push(out, get64(buf + p + DIR_ENTRY_INO))) != COW_OK)
                    return rc;
        } else if ((rc = u64v_push(out, f.offset)) != COW_OK) {
            return rc;
        }
        if (f.offset == UINT64_MAX)
            return COW_OK;
        k.offset = f.offset + 1;
    }
}

int names_check(cow_store *st, struct cow_root *r)
{
    lk_assert_held(&st->lock);
    struct u64v names = {0}, orphans = {0}, inodes = {0};
    uint64_t id = r->objectid;
    int rc = collect(st, r, COW_ROOT_DIR_OBJECTID, COW_DIR_ITEM, id, &names);
    if (rc == COW_OK)
        rc = collect(st, r, COW_ORPHAN_OBJECTID, COW_ORPHAN_ITEM, id, &orphans);
    /* the inodes: one seek past each file's items */
    struct cow_key k = {COW_FIRST_INO, 0, 0}, f;
    while (rc == COW_OK) {
        uint8_t buf[INODE_ITEM_SIZE];
        size_t size;
        rc = bt_seek_ge(st, r, &k, &f, buf, sizeof buf, &size);
        if (rc == COW_ENOENT) {
            rc = COW_OK;
            break;
        }
        if (rc == COW_OK && f.type == COW_EXTENT_DATA)
            rc = COW_CORRUPT("subvolume %llu: inode %llu has extents but no INODE_ITEM",
                             (unsigned long long)id, (unsigned long long)f.objectid);
        if (rc == COW_OK && f.type == COW_INODE_ITEM) /* other items are not files' */
            rc = u64v_push(&inodes, f.objectid);
        if (rc || f.objectid == UINT64_MAX)
            break;
        k.objectid = f.objectid + 1;
    }
    if (rc)
        goto out;
    if (names.n > 1)
        qsort(names.v, names.n, sizeof *names.v, cmp_u64);
    if (orphans.n > 1)
        qsort(orphans.v, orphans.n, sizeof *orphans.v, cmp_u64);
    /* inodes are in key order already */
    for (size_t i = 0; i < names.n && rc == COW_OK; i++) {
        uint64_t ino = names.v[i];
        if (i + 1 < names.n && names.v[i + 1] == ino)
            rc = COW_CORRUPT("subvolume %llu: inode %llu has two names", (unsigned long long)id,
                             (unsigned long long)ino);
        else if (!u64v_has(&inodes, ino))
            rc = COW_CORRUPT("subvolume %llu: a name points at inode %llu, which does not exist",
                             (unsigned long long)id, (unsigned long long)ino);
        else if (u64v_has(&orphans, ino))
            rc = COW_CORRUPT("subvolume %llu: inode %llu has a name and an ORPHAN_ITEM",
                             (unsigned long long)id, (unsigned long long)ino);
    }
    for (size_t i = 0; i < inodes.n && rc == COW_OK; i++)
        if (!u64v_has(&names, inodes.v[i]) && !u64v_has(&orphans, inodes.v[i]))
            rc = COW_CORRUPT("subvolume %llu: inode %llu has no name and no ORPHAN_ITEM "
                             "(a damaged directory item?)",
                             (unsigned long long)id, (unsigned long long)inodes.v[i]);
    for (size_t i = 0; i < orphans.n && rc == COW_OK; i++)
        if (!u64v_has(&inodes, orphans.v[i]))
            rc = COW_CORRUPT("subvolume %llu: ORPHAN_ITEM for inode %llu, which does not exist",
                             (unsigned long long)id, (unsigned long long)orphans.v[i]);
out:
    free(names.v);
    free(orphans.v);
    free(inodes.v);
    return rc;
}
