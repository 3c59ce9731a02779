/*
 * roots.c - the subvolume roots in memory: every snapshot's and branch's
 * ROOT_ITEM and ROOT_NAME, read from the root tree at open and written
 * back at commit when a root moved (see roots.h).
 *
 * btrfs keeps the same registry (fs_info's fs_roots radix tree; the
 * commit's commit_fs_roots in fs/btrfs/transaction.c writes the root item
 * of every root whose node changed).  It sits below the transaction that
 * commits them and the subvolume operations (subvol.c) that make, restore
 * and delete them.
 *
 * Locking: store->lock held by every caller (asserted where a store is
 * passed).
 */
#include <stdlib.h>
#include <string.h>

#include "lockdep.h"
#include "roots.h"
#include "store_int.h"

/* 1 if NAME is 1..255 bytes of valid UTF-8 without '/' (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF). */
int roots_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > COW_NAME_MAX || strchr(name, '/'))
        return 0;
    const unsigned char *p = (const unsigned char *)name, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80)
            continue;
        int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : -1;
        if (more < 0 || c > 0xf4 || end - p < more)
            return 0;
        unsigned cp = c & (0x3f >> more);
        for (int i = 0; i < more; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        p += more;
    }
    return 1;
}

struct cow_subvol *roots_by_id(cow_store *st, uint64_t id)
{
    lk_assert_held(&st->lock);
    for (struct cow_subvol *sv = st->subvols; sv; sv = sv->next)
        if (sv->root.objectid == id)
            return sv;
    return NULL;
}

struct cow_subvol *roots_find(cow_store *st, const char *name)
{
    lk_assert_held(&st->lock);
    for (struct cow_subvol *sv = st->subvols; sv; sv = sv->next)
        if (!sv->dead && strcmp(sv->name, name) == 0)
            return sv;
    return NULL;
}

int roots_load(cow_store *st)
{
    lk_assert_held(&st->lock);
    for (struct cow_subvol *sv = st->subvols; sv; sv = sv->next)
        sv->dead = 1;
    struct cow_key k = {COW_FS_TREE_OBJECTID + 1, 0, 0}, f;
    uint8_t buf[COW_MAX_ITEM_DATA];
    size_t size;
    for (;;) {
        int rc = bt_seek_ge(st, &st->root_tree, &k, &f, buf, sizeof buf, &size);
        if (rc == COW_ENOENT)
            break;
        if (rc)
            return rc;
        k = f;
        if (++k.offset == 0 && ++k.type == 0)
            k.objectid++;
        if (f.type != COW_ROOT_ITEM && f.type != COW_ROOT_NAME)
            continue;
        if (f.objectid <= COW_FS_TREE_OBJECTID || f.offset != 0)
            return COW_CORRUPT("root tree item (%llu, %u, %llu) names no subvolume",
                               (unsigned long long)f.objectid, f.type,
                               (unsigned long long)f.offset);
        struct cow_subvol *sv = roots_by_id(st, f.objectid);
        if (!sv) {
            sv = calloc(1, sizeof *sv);
            if (!sv)
                return cow_set_error(COW_ENOMEM, "out of memory");
            sv->root.objectid = f.objectid;
            sv->next = st->subvols;
            st->subvols = sv;
        }
        if (f.type == COW_ROOT_ITEM) {
            if (size != ROOT_ITEM_SIZE)
                return COW_CORRUPT("root item of subvolume %llu has %zu bytes",
                                   (unsigned long long)f.objectid, size);
            roots_item_get(buf, &sv->root);
            sv->root.refcounted = 1;
            sv->root.dirty = 0;
            if (sv->root.level >= COW_MAX_LEVEL ||
                (sv->root.flags != COW_ROOT_F_SNAPSHOT && sv->root.flags != COW_ROOT_F_BRANCH &&
                 sv->root.flags != (COW_ROOT_F_BRANCH | COW_ROOT_F_INCOMPLETE)))
                return COW_CORRUPT("root item of subvolume %llu is bad",
                                   (unsigned long long)f.objectid);
            sv->dead = 0;
        } else {
            if (size < 1 || size > COW_NAME_MAX || memchr(buf, 0, size))
                return COW_CORRUPT("name of subvolume %llu has %zu bytes",
                                   (unsigned long long)f.objectid, size);
            memcpy(sv->name, buf, size);
            sv->name[size] = 0;
        }
    }
    for (struct cow_subvol *sv = st->subvols; sv; sv = sv->next)
        if (!sv->dead && !roots_name_valid(sv->name))
            return COW_CORRUPT("subvolume %llu has no valid name",
                               (unsigned long long)sv->root.objectid);
    return COW_OK;
}

int roots_commit(cow_store *st)
{
    lk_assert_held(&st->lock);
    for (struct cow_subvol *sv = st->subvols; sv; sv = sv->next) {
        if (sv->dead || !sv->root.dirty)
            continue;
        uint8_t ri[ROOT_ITEM_SIZE];
        struct cow_key k = {sv->root.objectid, COW_ROOT_ITEM, 0};
        roots_item_put(ri, &sv->root);
        int rc = bt_put(st, &st->root_tree, &k, ri, sizeof ri);
        if (rc)
            return rc;
    }
    return COW_OK;
}

void roots_committed(cow_store *st)
{
    lk_assert_held(&st->lock);
    for (struct cow_subvol *sv = st->subvols; sv; sv = sv->next)
        sv->root.dirty = 0;
}

void roots_free_all(cow_store *st)
{
    while (st->subvols) {
        struct cow_subvol *n = st->subvols->next;
        free(st->subvols);
        st->subvols = n;
    }
}

/* ---- ROOT_ITEM bytes ---- */

void roots_item_get(const uint8_t *it, struct cow_root *r)
{
    r->bytenr = get64(it + ROOT_BYTENR);
    r->generation = get64(it + ROOT_GENERATION);
    r->level = it[ROOT_LEVEL];
    r->next_ino = get64(it + ROOT_NEXT_INO);
    r->flags = get64(it + ROOT_FLAGS);
    r->ctime = get64(it + ROOT_CTIME);
    r->source = get64(it + ROOT_SOURCE);
    r->last_snapshot = get64(it + ROOT_LAST_SNAPSHOT);
}

void roots_item_put(uint8_t *it, const struct cow_root *r)
{
    memset(it, 0, ROOT_ITEM_SIZE);
    put64(it + ROOT_BYTENR, r->bytenr);
    put64(it + ROOT_GENERATION, r->generation);
    it[ROOT_LEVEL] = (uint8_t)r->level;
    put64(it + ROOT_NEXT_INO, r->next_ino);
    put64(it + ROOT_FLAGS, r->flags);
    put64(it + ROOT_CTIME, r->ctime);
    put64(it + ROOT_SOURCE, r->source);
    put64(it + ROOT_LAST_SNAPSHOT, r->last_snapshot);
}
