/*
 * validate.c - validation of tree blocks and items as they are read (see
 * validate.h for what is checked and why here).
 *
 * The model is btrfs's tree-checker (fs/btrfs/tree-checker.c): a block is
 * checked once, when it enters the cache, so the code that walks trees
 * and parses items can rely on bounds that the format promises (an item
 * inside its block, an extent of at most 1 MiB, a name of at most 255
 * bytes) instead of re-checking them, or forgetting to, at each use.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"
#include "crc32c.h"
#include "store_int.h"

#define BLK COW_BLOCK_SIZE
#define LEAF_MAX_ITEMS (COW_LEAF_SPACE / COW_ITEM_SIZE)
#define MAX_EXTENT_BYTES ((uint64_t)COW_MAX_EXTENT_BLOCKS * BLK)
/* The largest file size the store makes (do_truncate, cow_file_preallocate). */
#define MAX_FILE_SIZE (1ull << 62)

/* Which tree an owner object id names. */
enum tree_class { T_LOG, T_ROOT, T_EXTENT, T_CSUM, T_REMAP, T_SUBVOL, T_BAD };

static enum tree_class tree_class(uint64_t owner)
{
    switch (owner) {
    case 0: return T_LOG;
    case COW_ROOT_TREE_OBJECTID: return T_ROOT;
    case COW_EXTENT_TREE_OBJECTID: return T_EXTENT;
    case COW_CSUM_TREE_OBJECTID: return T_CSUM;
    case COW_REMAP_TREE_OBJECTID: return T_REMAP;
    default: return owner >= COW_FS_TREE_OBJECTID ? T_SUBVOL : T_BAD;
    }
}

/* COW_ECORRUPT, the message prefixed with W and K: "block 8192 item 3
 * (257 108 4096): ...".  FILE and LINE are where the check is (COW_CORRUPT's). */
static int bad_at(const char *file, int line, const struct check_where *w,
                  const struct cow_key *k, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad_at(const char *file, int line, const struct check_where *w,
                  const struct cow_key *k, const char *fmt, ...)
{
    char msg[256], at[128] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w)
        snprintf(at, sizeof at, "%s %llu item %u (%llu %u %llu): ", w->kind,
                 (unsigned long long)w->id, w->slot, (unsigned long long)k->objectid, k->type,
                 (unsigned long long)k->offset);
    else
        snprintf(at, sizeof at, "item (%llu %u %llu): ", (unsigned long long)k->objectid,
                 k->type, (unsigned long long)k->offset);
    return cow_corrupt_at(file, line, "%s%s", at, msg);
}
#define BAD(w, k, ...) bad_at(__FILE__, __LINE__, w, k, __VA_ARGS__)

/* 1 if [start, +len) is a run of whole blocks past the superblocks and
 * inside the container. */
static int in_container(const cow_store *st, uint64_t start, uint64_t len)
{
    uint64_t end;
    return start >= 2 * BLK && start % BLK == 0 && len % BLK == 0 &&
           range_end(start, len, &end) == COW_OK && end <= st->total_bytes;
}

int check_file_extent(cow_store *st, const struct check_where *w, const struct cow_key *k,
                      const uint8_t *d, size_t size, struct fext *fx)
{
    lk_assert_held(&st->lock);
    uint64_t e;
    if (size != FE_ITEM_SIZE)
        return BAD(w, k, "file extent item of %zu bytes (expected %u)", size, FE_ITEM_SIZE);
    struct fext f = {
        .start = k->offset,
        .disk = get64(d + FE_DISK_BYTENR),
        .disk_len = get64(d + FE_DISK_NUM_BYTES),
        .ext_off = get64(d + FE_EXTENT_OFFSET),
        .len = get64(d + FE_NUM_BYTES),
        .type = d[FE_TYPE],
    };
    if (k->objectid < COW_FIRST_INO)
        return BAD(w, k, "file extent of object %llu (files start at %llu)",
                   (unsigned long long)k->objectid, (unsigned long long)COW_FIRST_INO);
    if (f.start % BLK)
        return BAD(w, k, "file offset not a multiple of 4096");
    if (f.disk_len == 0 || f.disk_len % BLK || f.disk_len > MAX_EXTENT_BYTES)
        return BAD(w, k, "disk_num_bytes %llu not a multiple of 4096 in 4096..%llu",
                   (unsigned long long)f.disk_len, (unsigned long long)MAX_EXTENT_BYTES);
    if (!in_container(st, f.disk, f.disk_len))
        return BAD(w, k, "data extent [%llu, +%llu) is not a block run inside the container "
                   "(%llu bytes)", (unsigned long long)f.disk, (unsigned long long)f.disk_len,
                   (unsigned long long)st->total_bytes);
    if (f.len == 0 || f.len % BLK)
        return BAD(w, k, "num_bytes %llu not a positive multiple of 4096",
                   (unsigned long long)f.len);
    if (f.ext_off % BLK)
        return BAD(w, k, "extent_offset %llu not a multiple of 4096",
                   (unsigned long long)f.ext_off);
    if (range_end(f.ext_off, f.len, &e) || e > f.disk_len)
        return BAD(w, k, "extent_offset %llu + num_bytes %llu exceeds disk_num_bytes %llu",
                   (unsigned long long)f.ext_off, (unsigned long long)f.len,
                   (unsigned long long)f.disk_len);
    if (range_end(f.start, f.len, &e) || e > MAX_FILE_SIZE)
        return BAD(w, k, "file range [%llu, +%llu) ends past %llu", (unsigned long long)f.start,
                   (unsigned long long)f.len, (unsigned long long)MAX_FILE_SIZE);
    if (f.type != COW_FE_REG && f.type != COW_FE_PREALLOC && f.type != COW_FE_NODATASUM)
        return BAD(w, k, "extent type %u (expected 0 REG, 1 PREALLOC or 2 NODATASUM)", f.type);
    *fx = f;
    return COW_OK;
}

int check_csum_item(cow_store *st, const struct check_where *w, const struct cow_key *k,
                    size_t size, uint64_t *nblocks)
{
    lk_assert_held(&st->lock);
    if (k->objectid != COW_CSUM_TREE_OBJECTID)
        return BAD(w, k, "csum items have object id %llu",
                   (unsigned long long)COW_CSUM_TREE_OBJECTID);
    if (size == 0 || size % 4 || size > COW_MAX_EXTENT_BLOCKS * 4)
        return BAD(w, k, "%zu bytes is not a list of 1..%u crc32c values", size,
                   COW_MAX_EXTENT_BLOCKS);
    if (!in_container(st, k->offset, (uint64_t)size / 4 * BLK))
        return BAD(w, k, "data extent [%llu, +%zu blocks) is not a block run inside the "
                   "container", (unsigned long long)k->offset, size / 4);
    if (nblocks)
        *nblocks = size / 4;
    return COW_OK;
}

int check_csum_matches(uint64_t disk, uint64_t disk_len, size_t size)
{
    if (disk_len > MAX_EXTENT_BYTES || size != disk_len / BLK * 4)
        return COW_CORRUPT("data extent %llu: %zu checksum bytes for %llu bytes",
                           (unsigned long long)disk, size, (unsigned long long)disk_len);
    return COW_OK;
}

static int check_inode_item(cow_store *st, const struct check_where *w,
                            const struct cow_key *k, const uint8_t *d)
{
    if (k->objectid < COW_FIRST_INO || k->offset != 0)
        return BAD(w, k, "inode items are keyed (ino >= %llu, 1, 0)",
                   (unsigned long long)COW_FIRST_INO);
    if (get64(d + INODE_SIZE) > MAX_FILE_SIZE)
        return BAD(w, k, "size %llu past %llu", (unsigned long long)get64(d + INODE_SIZE),
                   (unsigned long long)MAX_FILE_SIZE);
    if (get64(d + INODE_NBLOCKS) > MAX_FILE_SIZE / BLK)
        return BAD(w, k, "nblocks %llu", (unsigned long long)get64(d + INODE_NBLOCKS));
    if (get64(d + INODE_FLAGS) & ~COW_INODE_FLAGS_KNOWN)
        return BAD(w, k, "inode flags 0x%llx (only 0x%llx, nodatacow, is defined)",
                   (unsigned long long)get64(d + INODE_FLAGS),
                   (unsigned long long)COW_INODE_FLAGS_KNOWN);
    if (get64(d + INODE_GENERATION) > st->transid || get64(d + INODE_TRANSID) > st->transid)
        return BAD(w, k, "inode generation %llu / transid %llu newer than transaction %llu",
                   (unsigned long long)get64(d + INODE_GENERATION),
                   (unsigned long long)get64(d + INODE_TRANSID),
                   (unsigned long long)st->transid);
    return COW_OK;
}

static int check_dir_item(const struct check_where *w, const struct cow_key *k,
                          const uint8_t *d, size_t size)
{
    if (k->objectid != COW_ROOT_DIR_OBJECTID || k->offset > UINT32_MAX)
        return BAD(w, k, "DIR_ITEMs are keyed (%llu, 84, 32-bit name hash)",
                   (unsigned long long)COW_ROOT_DIR_OBJECTID);
    if (size == 0)
        return BAD(w, k, "empty DIR_ITEM");
    size_t pos = 0;
    while (pos < size) {
        if (size - pos < DIR_ENTRY_NAME)
            return BAD(w, k, "entry at byte %zu is truncated", pos);
        const uint8_t *e = d + pos;
        size_t len = get16(e + DIR_ENTRY_NAMELEN);
        if (len == 0 || len > COW_NAME_MAX || len > size - pos - DIR_ENTRY_NAME)
            return BAD(w, k, "entry at byte %zu: name_len %zu (1..%u, inside the item)", pos,
                       len, COW_NAME_MAX);
        const uint8_t *name = e + DIR_ENTRY_NAME;
        if (memchr(name, '/', len) || memchr(name, 0, len))
            return BAD(w, k, "entry at byte %zu: name contains '/' or NUL", pos);
        if (crc32c(0, name, len) != k->offset)
            return BAD(w, k, "entry at byte %zu: crc32c of the name is not the key offset", pos);
        if (get64(e + DIR_ENTRY_INO) < COW_FIRST_INO)
            return BAD(w, k, "entry at byte %zu: ino %llu (files start at %llu)", pos,
                       (unsigned long long)get64(e + DIR_ENTRY_INO),
                       (unsigned long long)COW_FIRST_INO);
        pos += DIR_ENTRY_NAME + len;
    }
    return COW_OK;
}

static int check_root_item(cow_store *st, const struct check_where *w, const struct cow_key *k,
                           const uint8_t *d)
{
    uint64_t flags = get64(d + ROOT_FLAGS), source = get64(d + ROOT_SOURCE);
    if (k->objectid < COW_FS_TREE_OBJECTID || k->offset != 0)
        return BAD(w, k, "root items are keyed (subvolume id >= %llu, 132, 0)",
                   (unsigned long long)COW_FS_TREE_OBJECTID);
    if (!in_container(st, get64(d + ROOT_BYTENR), BLK))
        return BAD(w, k, "root bytenr %llu is not a block address inside the container",
                   (unsigned long long)get64(d + ROOT_BYTENR));
    if (d[ROOT_LEVEL] >= COW_MAX_LEVEL)
        return BAD(w, k, "root level %u (maximum %u)", d[ROOT_LEVEL], COW_MAX_LEVEL - 1);
    if (get64(d + ROOT_GENERATION) == 0 || get64(d + ROOT_GENERATION) > st->transid)
        return BAD(w, k, "root generation %llu (1..%llu, the running transaction)",
                   (unsigned long long)get64(d + ROOT_GENERATION),
                   (unsigned long long)st->transid);
    /* no snapshot can come from a later transaction; fsck flags it too
     * (a disagreement found by the corruption sweep) */
    if (get64(d + ROOT_LAST_SNAPSHOT) > st->transid)
        return BAD(w, k, "last_snapshot %llu (0..%llu, the running transaction)",
                   (unsigned long long)get64(d + ROOT_LAST_SNAPSHOT),
                   (unsigned long long)st->transid);
    if (get64(d + ROOT_NEXT_INO) < COW_FIRST_INO)
        return BAD(w, k, "next_ino %llu < %llu", (unsigned long long)get64(d + ROOT_NEXT_INO),
                   (unsigned long long)COW_FIRST_INO);
    if (k->objectid == COW_FS_TREE_OBJECTID) {
        if (flags)
            return BAD(w, k, "flags 0x%llx, the live subvolume has none",
                       (unsigned long long)flags);
    } else {
        if (flags != COW_ROOT_F_SNAPSHOT && flags != COW_ROOT_F_BRANCH &&
            flags != (COW_ROOT_F_BRANCH | COW_ROOT_F_INCOMPLETE))
            return BAD(w, k, "flags 0x%llx: not a snapshot or branch", (unsigned long long)flags);
        if (source < COW_FS_TREE_OBJECTID || source == k->objectid)
            return BAD(w, k, "source subvolume %llu", (unsigned long long)source);
    }
    return COW_OK;
}

static int check_root_name(const struct check_where *w, const struct cow_key *k,
                           const uint8_t *d, size_t size)
{
    if (k->objectid <= COW_FS_TREE_OBJECTID || k->offset != 0)
        return BAD(w, k, "root names are keyed (subvolume id > %llu, 144, 0)",
                   (unsigned long long)COW_FS_TREE_OBJECTID);
    if (size == 0 || size > COW_NAME_MAX)
        return BAD(w, k, "a name of %zu bytes (1..%u)", size, COW_NAME_MAX);
    if (memchr(d, '/', size) || memchr(d, 0, size))
        return BAD(w, k, "name contains '/' or NUL");
    return COW_OK;
}

static int check_extent_item(cow_store *st, const struct check_where *w,
                             const struct cow_key *k, const uint8_t *d)
{
    uint64_t refs = get64(d + EXT_REFS), flags = get64(d + EXT_FLAGS);
    if (k->type == COW_EXTENT_ITEM) {
        if (k->offset == 0 || k->offset > MAX_EXTENT_BYTES || !in_container(st, k->objectid,
                                                                            k->offset))
            return BAD(w, k, "data extent [%llu, +%llu) is not a run of 1..%u blocks inside "
                       "the container", (unsigned long long)k->objectid,
                       (unsigned long long)k->offset, COW_MAX_EXTENT_BLOCKS);
        if (flags != COW_EXT_FLAG_DATA)
            return BAD(w, k, "flags 0x%llx (expected DATA)", (unsigned long long)flags);
    } else {
        if (!in_container(st, k->objectid, BLK) || k->offset >= COW_MAX_LEVEL)
            return BAD(w, k, "tree block %llu at level %llu is not inside the container",
                       (unsigned long long)k->objectid, (unsigned long long)k->offset);
        if (flags != COW_EXT_FLAG_TREE)
            return BAD(w, k, "flags 0x%llx (expected TREE)", (unsigned long long)flags);
    }
    if (refs == 0)
        return BAD(w, k, "reference count 0 (such items are deleted)");
    if (get64(d + EXT_GENERATION) > st->transid)
        return BAD(w, k, "generation %llu newer than transaction %llu",
                   (unsigned long long)get64(d + EXT_GENERATION),
                   (unsigned long long)st->transid);
    return COW_OK;
}

static int check_block_group_item(cow_store *st, const struct check_where *w,
                                  const struct cow_key *k, const uint8_t *d)
{
    uint64_t end, flags = get64(d + BG_FLAGS);
    if (st->bg_size == 0 || k->objectid % st->bg_size || k->offset != st->bg_size ||
        range_end(k->objectid, k->offset, &end) || end > st->total_bytes)
        return BAD(w, k, "not a block group of %llu bytes inside the container (%llu bytes)",
                   (unsigned long long)st->bg_size, (unsigned long long)st->total_bytes);
    if (get64(d + BG_USED) > k->offset)
        return BAD(w, k, "used %llu > length", (unsigned long long)get64(d + BG_USED));
    if (flags != COW_BG_DATA && flags != COW_BG_METADATA &&
        (flags != COW_BG_MIXED || k->objectid != 0))
        return BAD(w, k, "block group type 0x%llx", (unsigned long long)flags);
    return COW_OK;
}

int check_item(cow_store *st, const struct check_where *w, uint64_t owner,
               const struct cow_key *k, const uint8_t *d, size_t size)
{
    lk_assert_held(&st->lock);
    enum tree_class cls = tree_class(owner);
    size_t want = 0; /* fixed size; 0: variable */
    int allowed = 0;
    switch (k->type) {
    case COW_INODE_ITEM:
        want = INODE_ITEM_SIZE;
        allowed = cls == T_SUBVOL || cls == T_LOG;
        break;
    case COW_DIR_ITEM:
        allowed = cls == T_SUBVOL;
        break;
    case COW_ORPHAN_ITEM:
        allowed = cls == T_SUBVOL;
        break;
    case COW_EXTENT_DATA:
        want = FE_ITEM_SIZE;
        allowed = cls == T_SUBVOL || cls == T_LOG;
        break;
    case COW_EXTENT_CSUM:
        allowed = cls == T_CSUM || cls == T_LOG;
        break;
    case COW_ROOT_ITEM:
        want = ROOT_ITEM_SIZE;
        allowed = cls == T_ROOT;
        break;
    case COW_ROOT_NAME:
        allowed = cls == T_ROOT;
        break;
    case COW_EXTENT_ITEM:
    case COW_METADATA_ITEM:
        want = EXT_ITEM_SIZE;
        allowed = cls == T_EXTENT;
        break;
    case COW_BLOCK_GROUP_ITEM:
        want = BG_ITEM_SIZE;
        allowed = cls == T_EXTENT;
        break;
    case COW_REMAP_ITEM:
        want = REMAP_ITEM_SIZE;
        allowed = cls == T_REMAP;
        break;
    default:
        /* a type the format does not define: nothing reads it, so nothing
         * to check (btrfs's tree-checker skips unknown types too; fsck
         * reports it) */
        return COW_OK;
    }
    if (!allowed)
        return BAD(w, k, "item type %u does not belong in tree %llu", k->type,
                   (unsigned long long)owner);
    if ((want || k->type == COW_ORPHAN_ITEM) && size != want)
        return BAD(w, k, "%zu bytes (expected %zu)", size, want);
    struct fext fx;
    switch (k->type) {
    case COW_INODE_ITEM: return check_inode_item(st, w, k, d);
    case COW_DIR_ITEM: return check_dir_item(w, k, d, size);
    case COW_ORPHAN_ITEM:
        if (k->objectid != COW_ORPHAN_OBJECTID || k->offset < COW_FIRST_INO)
            return BAD(w, k, "orphan items are keyed (%llu, 48, ino >= %llu)",
                       (unsigned long long)COW_ORPHAN_OBJECTID,
                       (unsigned long long)COW_FIRST_INO);
        return COW_OK;
    case COW_EXTENT_DATA: return check_file_extent(st, w, k, d, size, &fx);
    case COW_EXTENT_CSUM: return check_csum_item(st, w, k, size, NULL);
    case COW_ROOT_ITEM: return check_root_item(st, w, k, d);
    case COW_ROOT_NAME: return check_root_name(w, k, d, size);
    case COW_EXTENT_ITEM:
    case COW_METADATA_ITEM: return check_extent_item(st, w, k, d);
    case COW_BLOCK_GROUP_ITEM: return check_block_group_item(st, w, k, d);
    case COW_REMAP_ITEM: {
        /* format.h, REMAP_ITEM; overlaps are remap_load's to find */
        uint64_t phys = get64(d + REMAP_PHYSICAL), le, pe;
        int stored = phys != 0; /* 0: dropped, not stored (format.h) */
        if (k->offset == 0 || k->offset % BLK || k->objectid % BLK || phys % BLK ||
            phys == k->objectid || range_end(k->objectid, k->offset, &le) ||
            range_end(phys, k->offset, &pe) || le > st->total_bytes ||
            (stored && pe > st->total_bytes) || k->objectid < 2 * BLK ||
            (stored && phys < 2 * BLK) || k->objectid / st->bg_size != (le - 1) / st->bg_size ||
            (stored && phys / st->bg_size != (pe - 1) / st->bg_size))
            return BAD(w, k, "remaps [%llu, +%llu) to %llu: not whole blocks inside one block "
                             "group each",
                       (unsigned long long)k->objectid, (unsigned long long)k->offset,
                       (unsigned long long)phys);
        return COW_OK;
    }
    }
    return COW_OK;
}

/* ---- tree blocks ---- */

struct span {
    unsigned off, end, slot;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int check_leaf(cow_store *st, uint64_t bytenr, const uint8_t *b)
{
    unsigned n = tb_nritems(b);
    if (n > LEAF_MAX_ITEMS)
        return COW_CORRUPT("block %llu: nritems %u (a leaf holds at most %u)",
                           (unsigned long long)bytenr, n, (unsigned)LEAF_MAX_ITEMS);
    uint64_t owner = get64(b + TB_OWNER);
    unsigned data_start = TB_HEADER_SIZE + n * COW_ITEM_SIZE;
    unsigned low = COW_BLOCK_SIZE; /* lowest data offset so far */
    int packed = 1;                /* each item's data below the previous item's */
    struct cow_key k, prev;
    for (unsigned i = 0; i < n; i++) {
        key_get(&k, leaf_item(b, i));
        if (i && key_cmp(&prev, &k) >= 0)
            return COW_CORRUPT("block %llu: item %u key (%llu %u %llu) not above item %u key "
                               "(%llu %u %llu)",
                               (unsigned long long)bytenr, i, (unsigned long long)k.objectid,
                               k.type, (unsigned long long)k.offset, i - 1,
                               (unsigned long long)prev.objectid, prev.type,
                               (unsigned long long)prev.offset);
        prev = k;
        unsigned off = leaf_data_off(b, i), size = leaf_data_size(b, i);
        if (off < data_start || off > COW_BLOCK_SIZE || size > COW_BLOCK_SIZE - off)
            return COW_CORRUPT("block %llu: item %u data [%u, +%u) outside the data area "
                               "[%u, 4096)",
                               (unsigned long long)bytenr, i, off, size, data_start);
        if (size > COW_MAX_ITEM_DATA)
            return COW_CORRUPT("block %llu: item %u is %u bytes (maximum %u)",
                               (unsigned long long)bytenr, i, size, COW_MAX_ITEM_DATA);
        if (off + size > low)
            packed = 0;
        else
            low = off;
    }
    if (!packed) {
        /* data not laid out in item order (legal, rare): sort the spans */
        struct span sp[LEAF_MAX_ITEMS];
        for (unsigned i = 0; i < n; i++) {
            sp[i].off = leaf_data_off(b, i);
            sp[i].end = sp[i].off + leaf_data_size(b, i);
            sp[i].slot = i;
        }
        qsort(sp, n, sizeof sp[0], span_cmp);
        for (unsigned j = 1; j < n; j++)
            if (sp[j - 1].end > sp[j].off)
                return COW_CORRUPT("block %llu: data of items %u and %u overlap",
                                   (unsigned long long)bytenr, sp[j - 1].slot, sp[j].slot);
    }
    for (unsigned i = 0; i < n; i++) {
        struct check_where w = {"block", bytenr, i};
        key_get(&k, leaf_item(b, i));
        int rc = check_item(st, &w, owner, &k, b + leaf_data_off(b, i), leaf_data_size(b, i));
        if (rc)
            return rc;
    }
    return COW_OK;
}

static int check_node(cow_store *st, uint64_t bytenr, const uint8_t *b)
{
    unsigned n = tb_nritems(b);
    uint64_t gen = get64(b + TB_GENERATION);
    if (n == 0 || n > COW_NODE_MAX_PTRS)
        return COW_CORRUPT("block %llu: node with %u key pointers (1..%u)",
                           (unsigned long long)bytenr, n, (unsigned)COW_NODE_MAX_PTRS);
    struct cow_key k, prev;
    for (unsigned i = 0; i < n; i++) {
        key_get(&k, node_ptr(b, i));
        if (i && key_cmp(&prev, &k) >= 0)
            return COW_CORRUPT("block %llu: key pointer %u (%llu %u %llu) not above pointer %u",
                               (unsigned long long)bytenr, i, (unsigned long long)k.objectid,
                               k.type, (unsigned long long)k.offset, i - 1);
        prev = k;
        uint64_t child = node_child(b, i), cgen = node_child_gen(b, i);
        if (!in_container(st, child, BLK) || child == bytenr)
            return COW_CORRUPT("block %llu: key pointer %u points at %llu, not a block "
                               "address inside the container (%llu bytes)",
                               (unsigned long long)bytenr, i, (unsigned long long)child,
                               (unsigned long long)st->total_bytes);
        if (cgen == 0 || cgen > gen)
            return COW_CORRUPT("block %llu: key pointer %u: child generation %llu, block "
                               "generation %llu",
                               (unsigned long long)bytenr, i, (unsigned long long)cgen,
                               (unsigned long long)gen);
    }
    return COW_OK;
}

int check_tree_block(cow_store *st, uint64_t bytenr, const uint8_t *b)
{
    lk_assert_held(&st->lock);
    if (get32(b + TB_MAGIC) != COW_TREE_MAGIC)
        return COW_CORRUPT("block %llu: not a tree block (magic)", (unsigned long long)bytenr);
    if (crc32c(0, b + 4, COW_BLOCK_SIZE - 4) != get32(b + TB_CSUM))
        return COW_CORRUPT("block %llu: checksum mismatch", (unsigned long long)bytenr);
    if (get64(b + TB_BYTENR) != bytenr)
        return COW_CORRUPT("block %llu: header says it lives at %llu", (unsigned long long)bytenr,
                           (unsigned long long)get64(b + TB_BYTENR));
    if (tb_level(b) >= COW_MAX_LEVEL)
        return COW_CORRUPT("block %llu: level %u (maximum %u)", (unsigned long long)bytenr,
                           tb_level(b), COW_MAX_LEVEL - 1);
    uint64_t owner = get64(b + TB_OWNER);
    if (tree_class(owner) == T_BAD || tree_class(owner) == T_LOG)
        return COW_CORRUPT("block %llu: owner %llu is no tree", (unsigned long long)bytenr,
                           (unsigned long long)owner);
    if (!bytes_zero(b + TB_LEVEL + 1, TB_HEADER_SIZE - TB_LEVEL - 1))
        return COW_CORRUPT("block %llu: header bytes %u..%u are not zero",
                           (unsigned long long)bytenr, TB_LEVEL + 1, TB_HEADER_SIZE - 1);
    uint64_t gen = get64(b + TB_GENERATION);
    if (gen == 0 || gen > st->transid)
        return COW_CORRUPT("block %llu: generation %llu (1..%llu, the running transaction)",
                           (unsigned long long)bytenr, (unsigned long long)gen,
                           (unsigned long long)st->transid);
    return tb_level(b) == 0 ? check_leaf(st, bytenr, b) : check_node(st, bytenr, b);
}
