/*
 * walk.c - pass 2 of the checker: every tree walked from its root, each
 * distinct block checked once, its items one by one (see fsck.c).
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* pass 2: structure                                                   */
/* ------------------------------------------------------------------ */

/* Appends a zeroed element of ESZ bytes to the array *ARR (*N in use, *CAP
 * allocated) and maps BYTENR to its index in MAP.  Returns the element, or
 * NULL after fsck_set_fatal(-ENOMEM) when memory or indexes (NOIDX) run
 * out. */
static void *append_indexed(struct fsck *f, void **arr, size_t *n, size_t *cap, size_t esz,
                            struct u64map *map, uint64_t bytenr)
{
    if (*n >= NOIDX - 1 || fsck_vec_reserve(arr, cap, *n + 1, esz) ||
        fsck_map_put(map, bytenr, (uint32_t)*n)) {
        fsck_set_fatal(f, -ENOMEM);
        return NULL;
    }
    void *e = (char *)*arr + (*n)++ * esz;
    memset(e, 0, esz);
    return e;
}

struct dext *fsck_dext_get(struct fsck *f, uint64_t bytenr, int create)
{
    uint32_t i;
    if (fsck_map_get(&f->dxmap, bytenr, &i))
        return &f->dx[i];
    if (!create)
        return NULL;
    struct dext *d = append_indexed(f, (void **)&f->dx, &f->ndx, &f->capdx, sizeof(*f->dx),
                                    &f->dxmap, bytenr);
    if (d)
        d->bytenr = bytenr;
    return d;
}

/*
 * Checks one EXTENT_DATA item (data P, 40 bytes) of leaf LEAF and counts its
 * ref; or, with LEAF == 0, one of a log record (generation not checked: the
 * record belongs to the transaction after the superblock's; no ref).
 */
void fsck_check_file_extent(struct fsck *f, const char *where, const struct cow_key *k,
                       const uint8_t *p, uint64_t leaf)
{
    char ks[80];
    fsck_key_str(k, ks, sizeof(ks));
    uint64_t dbytenr = get64(p + FE_DISK_BYTENR), dlen = get64(p + FE_DISK_NUM_BYTES);
    uint64_t xoff = get64(p + FE_EXTENT_OFFSET), nbytes = get64(p + FE_NUM_BYTES);
    uint32_t gen = get32(p + FE_GENERATION);
    unsigned type = p[FE_TYPE];
    int ok = 1;
    if (k->offset % BS)
        fsck_problem(f, "%s: %s: file offset not a multiple of 4096", where, ks);
    if (dbytenr == 0) {
        fsck_problem(f, "%s: %s: disk_bytenr 0 (holes are never stored)", where, ks);
        ok = 0;
    } else if (dbytenr % BS) {
        fsck_problem(f, "%s: %s: disk_bytenr %" PRIu64 " not a multiple of 4096", where, ks, dbytenr);
        ok = 0;
    }
    if (dlen == 0 || dlen % BS || dlen > MAX_EXTENT_BYTES) {
        fsck_problem(f, "%s: %s: disk_num_bytes %" PRIu64 " not a multiple of 4096 in 4096..%" PRIu64,
                where, ks, dlen, MAX_EXTENT_BYTES);
        ok = 0;
    }
    if (nbytes == 0 || nbytes % BS)
        fsck_problem(f, "%s: %s: num_bytes %" PRIu64 " not a positive multiple of 4096", where, ks,
                nbytes);
    if (xoff % BS)
        fsck_problem(f, "%s: %s: extent_offset %" PRIu64 " not a multiple of 4096", where, ks, xoff);
    if (fsck_range_end(xoff, nbytes) > dlen)
        fsck_problem(f, "%s: %s: extent_offset %" PRIu64 " + num_bytes %" PRIu64
                   " exceeds disk_num_bytes %" PRIu64,
                where, ks, xoff, nbytes, dlen);
    if (type != COW_FE_REG && type != COW_FE_PREALLOC && type != COW_FE_NODATASUM)
        fsck_problem(f, "%s: %s: extent type %u (expected 0 REG, 1 PREALLOC or 2 NODATASUM)",
                     where, ks, type);
    if (fsck_range_end(k->offset, nbytes) > MAX_FILE_BYTES)
        fsck_problem(f, "%s: %s: file range [%" PRIu64 ", +%" PRIu64 ") ends past 2^62", where,
                ks, k->offset, nbytes);
    if (leaf && f->gen <= UINT32_MAX && gen > f->gen)
        fsck_problem(f, "%s: %s: generation %u > superblock generation %" PRIu64, where, ks, gen,
                f->gen);
    if (!ok || !leaf)
        return;
    struct dext *d = fsck_dext_get(f, dbytenr, 1);
    if (!d)
        return;
    if (d->refs == 0) {
        d->ref_len = dlen;
        d->first_leaf = leaf;
    } else if (d->ref_len != dlen) {
        fsck_problem(f, "%s: %s: data extent %" PRIu64 " has disk_num_bytes %" PRIu64
                   " here but %" PRIu64 " in leaf %" PRIu64,
                where, ks, dbytenr, dlen, d->ref_len, d->first_leaf);
    }
    d->refs++;
    if (type == COW_FE_REG)
        fsck_bmap_add(d->reg, xoff, nbytes);
}

static void check_dir_entries(struct fsck *f, const char *where, const struct cow_key *k,
                              const uint8_t *p, unsigned size);

/* The tree each item type belongs in, and its fixed size in bytes (0:
 * variable; an ORPHAN_ITEM has no data). */
static const struct {
    uint8_t type;
    unsigned size;
    int cls; /* T_SUBVOL, T_CSUM, T_ROOT, T_EXTENT, T_REMAP */
} item_rules[] = {
    {COW_INODE_ITEM, INODE_ITEM_SIZE, T_SUBVOL},
    {COW_DIR_ITEM, 0, T_SUBVOL},
    {COW_EXTENT_DATA, FE_ITEM_SIZE, T_SUBVOL},
    {COW_ORPHAN_ITEM, 0, T_SUBVOL},
    {COW_EXTENT_CSUM, 0, T_CSUM},
    {COW_ROOT_ITEM, ROOT_ITEM_SIZE, T_ROOT},
    {COW_ROOT_NAME, 0, T_ROOT},
    {COW_EXTENT_ITEM, EXT_ITEM_SIZE, T_EXTENT},
    {COW_METADATA_ITEM, EXT_ITEM_SIZE, T_EXTENT},
    {COW_BLOCK_GROUP_ITEM, BG_ITEM_SIZE, T_EXTENT},
    {COW_REMAP_ITEM, REMAP_ITEM_SIZE, T_REMAP},
};

/* Checks item I (key K, data P of SIZE bytes) of leaf IDX on its first visit. */
static void check_item(struct fsck *f, uint32_t idx, const char *where, const struct cow_key *k,
                       const uint8_t *p, unsigned size)
{
    char ks[80];
    fsck_key_str(k, ks, sizeof(ks));
    int cls = f->cls;
    unsigned want = 0; /* fixed size, 0 = variable */
    int allowed = 0;   /* an unknown type belongs nowhere */
    for (size_t i = 0; i < sizeof item_rules / sizeof item_rules[0]; i++) {
        if (item_rules[i].type == k->type) {
            want = item_rules[i].size;
            allowed = cls == item_rules[i].cls;
        }
    }
    if (!allowed) {
        fsck_problem(f, "%s: item %s does not belong in the %s", where, ks, class_name[cls]);
        return;
    }
    if ((want || k->type == COW_ORPHAN_ITEM) && size != want) {
        fsck_problem(f, "%s: item %s is %u bytes, expected %u", where, ks, size, want);
        return;
    }

    switch (k->type) {
    case COW_INODE_ITEM: {
        uint64_t g = get64(p + INODE_GENERATION), t = get64(p + INODE_TRANSID);
        if (k->offset != 0)
            fsck_problem(f, "%s: %s: INODE_ITEM key offset must be 0", where, ks);
        if (get64(p + INODE_FLAGS) & ~COW_INODE_FLAGS_KNOWN)
            fsck_problem(f, "%s: %s: inode flags 0x%" PRIx64 " (only 0x1, nodatacow, is defined)",
                         where, ks, get64(p + INODE_FLAGS));
        if (g > f->gen || t > f->gen)
            fsck_problem(f, "%s: %s: inode generation %" PRIu64 " / transid %" PRIu64
                       " > superblock generation %" PRIu64,
                    where, ks, g, t, f->gen);
        break;
    }
    case COW_DIR_ITEM:
        check_dir_entries(f, where, k, p, size);
        break;
    case COW_ORPHAN_ITEM:
        if (k->objectid != COW_ORPHAN_OBJECTID || k->offset < COW_FIRST_INO)
            fsck_problem(f, "%s: %s: orphan items are keyed (%llu ORPHAN_ITEM ino >= %llu)", where, ks,
                    (unsigned long long)COW_ORPHAN_OBJECTID, (unsigned long long)COW_FIRST_INO);
        break;
    case COW_EXTENT_DATA:
        fsck_check_file_extent(f, where, k, p, f->blk[idx].bytenr);
        break;
    case COW_EXTENT_CSUM:
        if (k->objectid != COW_CSUM_TREE_OBJECTID)
            fsck_problem(f, "%s: %s: csum items have object id %llu", where, ks,
                    (unsigned long long)COW_CSUM_TREE_OBJECTID);
        if (size == 0 || size % 4 || size > COW_MAX_EXTENT_BLOCKS * 4) {
            fsck_problem(f, "%s: %s: %u bytes is not a list of 1..%u crc32c values", where, ks, size,
                    COW_MAX_EXTENT_BLOCKS);
            break;
        }
        if (fsck_vec_reserve((void **)&f->cs, &f->capcs, f->ncs + 1, sizeof(*f->cs)) ||
            fsck_vec_reserve((void **)&f->pool, &f->cappool, f->npool + size / 4, sizeof(uint32_t))) {
            fsck_set_fatal(f, -ENOMEM);
            break;
        }
        f->cs[f->ncs].bytenr = k->offset;
        f->cs[f->ncs].off = f->npool;
        f->cs[f->ncs].n = size / 4;
        f->ncs++;
        for (unsigned i = 0; i < size / 4; i++)
            f->pool[f->npool++] = get32(p + 4 * i);
        break;
    case COW_ROOT_ITEM: {
        uint64_t bytenr = get64(p + ROOT_BYTENR), gen = get64(p + ROOT_GENERATION);
        unsigned level = p[ROOT_LEVEL];
        int ok = 1;
        if (k->objectid < COW_FS_TREE_OBJECTID) {
            fsck_problem(f, "%s: %s: subvolume ids start at 256", where, ks);
            ok = 0;
        }
        if (k->offset != 0)
            fsck_problem(f, "%s: %s: ROOT_ITEM key offset must be 0", where, ks);
        if (bytenr == 0 || bytenr % BS) {
            fsck_problem(f, "%s: %s: root bytenr %" PRIu64 " is not a block address", where, ks,
                    bytenr);
            ok = 0;
        }
        if (level >= COW_MAX_LEVEL) {
            fsck_problem(f, "%s: %s: root level %u (maximum %u)", where, ks, level,
                    COW_MAX_LEVEL - 1);
            ok = 0;
        }
        if (gen > f->gen)
            fsck_problem(f, "%s: %s: root generation %" PRIu64 " > superblock generation %" PRIu64,
                    where, ks, gen, f->gen);
        if (get64(p + ROOT_LAST_SNAPSHOT) > f->gen)
            fsck_problem(f, "%s: %s: last_snapshot %" PRIu64 " > superblock generation %" PRIu64,
                    where, ks, get64(p + ROOT_LAST_SNAPSHOT), f->gen);
        if (get64(p + ROOT_NEXT_INO) < COW_FIRST_INO)
            fsck_problem(f, "%s: %s: next_ino %" PRIu64 " < %llu", where, ks,
                    get64(p + ROOT_NEXT_INO), (unsigned long long)COW_FIRST_INO);
        /* the live subvolume has no flags; a snapshot or branch is made
         * from an existing subvolume, which may be deleted since */
        uint64_t flags = get64(p + ROOT_FLAGS), source = get64(p + ROOT_SOURCE);
        if (k->objectid == COW_FS_TREE_OBJECTID && flags)
            fsck_problem(f, "%s: %s: flags 0x%" PRIx64 ", the live subvolume has none", where, ks,
                    flags);
        if (k->objectid > COW_FS_TREE_OBJECTID && !fsck_root_kind(flags))
            fsck_problem(f, "%s: %s: flags 0x%" PRIx64 ", expected exactly one of 0x%llx (snapshot) "
                       "and 0x%llx (branch), the latter possibly with 0x%llx (unfinished)",
                    where, ks, flags, COW_ROOT_F_SNAPSHOT, COW_ROOT_F_BRANCH,
                    COW_ROOT_F_INCOMPLETE);
        if (k->objectid > COW_FS_TREE_OBJECTID &&
            (source < COW_FS_TREE_OBJECTID || source == k->objectid))
            fsck_problem(f, "%s: %s: source subvolume %" PRIu64 " (expected the id, 256 or more, of "
                       "another subvolume)",
                    where, ks, source);
        /* svmap: the first ROOT_ITEM of each id (a second one breaks key
         * order, reported by check_leaf) */
        uint32_t first;
        int known = k->objectid < COW_FS_TREE_OBJECTID || fsck_map_get(&f->svmap, k->objectid, &first);
        if (!ok) {
            if (!known && fsck_map_put(&f->svmap, k->objectid, SV_BAD))
                fsck_set_fatal(f, -ENOMEM);
            break;
        }
        if (f->nsv >= SV_BAD ||
            fsck_vec_reserve((void **)&f->sv, &f->capsv, f->nsv + 1, sizeof(*f->sv)) ||
            (!known && fsck_map_put(&f->svmap, k->objectid, (uint32_t)f->nsv))) {
            fsck_set_fatal(f, -ENOMEM);
            break;
        }
        struct subvol *s = &f->sv[f->nsv++];
        s->id = k->objectid;
        s->bytenr = bytenr;
        s->gen = gen;
        s->level = level;
        s->next_ino = get64(p + ROOT_NEXT_INO);
        s->flags = flags;
        s->source = source;
        s->root = NOIDX;
        s->name = NOIDX;
        break;
    }
    case COW_ROOT_NAME: {
        /* names are checked against each other and the ROOT_ITEMs in
         * check_root_names, once the whole root tree has been read */
        char nb[1024];
        if (k->objectid <= COW_FS_TREE_OBJECTID)
            fsck_problem(f, "%s: %s: ROOT_NAMEs name subvolumes %llu and up (the live subvolume has "
                       "none)",
                    where, ks, (unsigned long long)COW_FS_TREE_OBJECTID + 1);
        if (k->offset != 0)
            fsck_problem(f, "%s: %s: ROOT_NAME key offset must be 0", where, ks);
        if (size == 0 || size > COW_NAME_MAX) {
            fsck_problem(f, "%s: %s: a name of %u bytes (1..%u)", where, ks, size, COW_NAME_MAX);
            break;
        }
        fsck_name_str(p, size, nb, sizeof(nb));
        if (memchr(p, '/', size) || memchr(p, 0, size))
            fsck_problem(f, "%s: %s: name '%s' contains '/' or NUL", where, ks, nb);
        if (!fsck_utf8_valid(p, size))
            fsck_problem(f, "%s: %s: name '%s' is not valid UTF-8", where, ks, nb);
        if (k->objectid > COW_FS_TREE_OBJECTID && fsck_names_add(&f->names, k->objectid, p, size))
            fsck_set_fatal(f, -ENOMEM);
        break;
    }
    case COW_EXTENT_ITEM:
    case COW_METADATA_ITEM:
        if (fsck_vec_reserve((void **)&f->xi, &f->capxi, f->nxi + 1, sizeof(*f->xi))) {
            fsck_set_fatal(f, -ENOMEM);
            break;
        }
        f->xi[f->nxi].key = *k;
        f->xi[f->nxi].refs = get64(p + EXT_REFS);
        f->xi[f->nxi].gen = get64(p + EXT_GENERATION);
        f->xi[f->nxi].flags = get64(p + EXT_FLAGS);
        f->nxi++;
        break;
    case COW_BLOCK_GROUP_ITEM:
        if (fsck_vec_reserve((void **)&f->bg, &f->capbg, f->nbg + 1, sizeof(*f->bg))) {
            fsck_set_fatal(f, -ENOMEM);
            break;
        }
        f->bg[f->nbg].start = k->objectid;
        f->bg[f->nbg].len = k->offset;
        f->bg[f->nbg].used = get64(p + BG_USED);
        f->bg[f->nbg].flags = get64(p + BG_FLAGS);
        f->bg[f->nbg].calc = 0;
        f->nbg++;
        break;
    case COW_REMAP_ITEM:
        fsck_check_remap_item(f, where, k, p, f->blk[idx].bytenr);
        break;
    default:
        break;
    }
}

/* Validates the entries of a DIR_ITEM (structure and name hashes). */
static void check_dir_entries(struct fsck *f, const char *where, const struct cow_key *k,
                              const uint8_t *p, unsigned size)
{
    char ks[80];
    fsck_key_str(k, ks, sizeof(ks));
    if (k->objectid != COW_ROOT_DIR_OBJECTID) {
        fsck_problem(f, "%s: %s: DIR_ITEMs belong to directory %llu", where, ks,
                (unsigned long long)COW_ROOT_DIR_OBJECTID);
        return;
    }
    if (k->offset > UINT32_MAX)
        fsck_problem(f, "%s: %s: name hash does not fit in 32 bits", where, ks);
    unsigned pos = 0, n = 0;
    unsigned starts[COW_MAX_ITEM_DATA / (DIR_ENTRY_NAME + 1) + 2];
    if (size == 0)
        fsck_problem(f, "%s: %s: empty DIR_ITEM", where, ks);
    while (pos < size) {
        if (size - pos < DIR_ENTRY_NAME) {
            fsck_problem(f, "%s: %s: entry at byte %u is truncated", where, ks, pos);
            return;
        }
        const uint8_t *e = p + pos;
        unsigned len = get16(e + DIR_ENTRY_NAMELEN);
        if (len == 0 || len > COW_NAME_MAX || len > size - pos - DIR_ENTRY_NAME) {
            fsck_problem(f, "%s: %s: entry at byte %u has name length %u (1..255, inside the item)",
                    where, ks, pos, len);
            return;
        }
        const uint8_t *name = e + DIR_ENTRY_NAME;
        if (memchr(name, '/', len) || memchr(name, 0, len))
            fsck_problem(f, "%s: %s: entry %u: name contains '/' or NUL", where, ks, n);
        uint32_t h = crc32c(0, name, len);
        if (h != k->offset) {
            char nb[1024];
            fsck_name_str(name, len, nb, sizeof(nb));
            if (crc32c(~0u, name, len) == k->offset)
                fsck_problem(f, "%s: %s: entry %u ('%s'): name hash 0x%08x uses seed ~0, "
                           "expected crc32c(0, name) = 0x%08x",
                        where, ks, n, nb, (unsigned)k->offset, h);
            else
                fsck_problem(f, "%s: %s: entry %u ('%s'): crc32c(0, name) = 0x%08x, not the key offset",
                        where, ks, n, nb, h);
        }
        uint64_t ino = get64(e + DIR_ENTRY_INO);
        if (ino < COW_FIRST_INO)
            fsck_problem(f, "%s: %s: entry %u points at inode %" PRIu64 " (files start at %llu)",
                    where, ks, n, ino, (unsigned long long)COW_FIRST_INO);
        for (unsigned j = 0; j < n; j++) {
            const uint8_t *o = p + starts[j];
            if (get16(o + DIR_ENTRY_NAMELEN) == len && !memcmp(o + DIR_ENTRY_NAME, name, len))
                fsck_problem(f, "%s: %s: entries %u and %u have the same name", where, ks, j, n);
        }
        if (n < sizeof(starts) / sizeof(starts[0]))
            starts[n++] = pos;
        pos += DIR_ENTRY_NAME + len;
    }
}

struct ispan {
    unsigned off, size, i;
};

static int ispan_cmp(const void *a, const void *b)
{
    const struct ispan *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static void check_leaf(struct fsck *f, uint32_t idx, const uint8_t *b, const char *where,
                       int is_root)
{
    unsigned n = tb_nritems(b);
    if (n == 0 && !is_root)
        fsck_problem(f, "%s: empty leaf (only a root may be empty)", where);
    unsigned data_start = TB_HEADER_SIZE + n * COW_ITEM_SIZE;
    struct ispan sp[LEAF_MAX_ITEMS];
    unsigned char good[LEAF_MAX_ITEMS];
    unsigned ns = 0;
    struct cow_key k, prev;
    char ks[80], ps[80];
    for (unsigned i = 0; i < n; i++) {
        key_get(&k, leaf_item(b, i));
        if (i && key_cmp(&prev, &k) >= 0)
            fsck_problem(f, "%s: item %u key %s not above item %u key %s", where, i,
                    fsck_key_str(&k, ks, sizeof(ks)), i - 1, fsck_key_str(&prev, ps, sizeof(ps)));
        prev = k;
        unsigned off = leaf_data_off(b, i), size = leaf_data_size(b, i);
        good[i] = 0;
        if (off < data_start || off > BS || size > BS - off) {
            fsck_problem(f, "%s: item %u data [%u, +%u) outside the data area [%u, 4096)", where, i,
                    off, size, data_start);
            continue;
        }
        if (size > COW_MAX_ITEM_DATA)
            fsck_problem(f, "%s: item %u is %u bytes (maximum %u)", where, i, size, COW_MAX_ITEM_DATA);
        good[i] = 1;
        sp[ns].off = off;
        sp[ns].size = size;
        sp[ns].i = i;
        ns++;
    }
    /* Item data is packed from the end downwards in item order. */
    int packed = 1;
    unsigned end = BS;
    for (unsigned i = 0; i < n; i++) {
        unsigned off = leaf_data_off(b, i), size = leaf_data_size(b, i);
        if (!good[i] || off + size != end) {
            packed = 0;
            break;
        }
        end = off;
    }
    if (!packed) {
        qsort(sp, ns, sizeof(sp[0]), ispan_cmp);
        int overlap = 0;
        for (unsigned j = 1; j < ns; j++) {
            if (sp[j - 1].off + sp[j - 1].size > sp[j].off) {
                fsck_problem(f, "%s: data of items %u and %u overlap", where, sp[j - 1].i, sp[j].i);
                overlap = 1;
            }
        }
        if (!overlap && ns == n)
            fsck_note(f, "%s: item data not packed from the block end in item order", where);
    }
    for (unsigned i = 0; i < n && !f->fatal; i++) {
        if (!good[i])
            continue;
        key_get(&k, leaf_item(b, i));
        check_item(f, idx, where, &k, b + leaf_data_off(b, i), leaf_data_size(b, i));
    }
    if (n) {
        key_get(&f->blk[idx].min, leaf_item(b, 0));
        key_get(&f->blk[idx].max, leaf_item(b, n - 1));
        f->blk[idx].has_keys = 1;
    }
}

static uint32_t walk(struct fsck *f, uint64_t bytenr, uint64_t exp_gen, unsigned exp_level,
                     int is_root, const char *from);

static void check_node(struct fsck *f, uint32_t idx, const uint8_t *b, const char *where)
{
    unsigned n = tb_nritems(b), level = tb_level(b);
    struct cow_key k, prev;
    char ks[80], ps[80];
    if (n == 0) {
        fsck_problem(f, "%s: node with no key pointers", where);
        f->blk[idx].sub_bad = 1;
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        key_get(&k, node_ptr(b, i));
        if (i && key_cmp(&prev, &k) >= 0)
            fsck_problem(f, "%s: key pointer %u %s not above pointer %u %s", where, i,
                    fsck_key_str(&k, ks, sizeof(ks)), i - 1, fsck_key_str(&prev, ps, sizeof(ps)));
        prev = k;
    }
    int sub_bad = 0;
    for (unsigned i = 0; i < n && !f->fatal; i++) {
        uint64_t child = node_child(b, i);
        int dup = 0;
        for (unsigned j = 0; j < i && !dup; j++)
            if (node_child(b, j) == child) {
                fsck_problem(f, "%s: key pointers %u and %u both point at block %" PRIu64, where, j, i,
                        child);
                dup = 1;
            }
        if (dup) {
            sub_bad = 1;
            continue;
        }
        uint32_t c = walk(f, child, node_child_gen(b, i), level - 1, 0, where);
        if (c == NOIDX) {
            sub_bad = 1;
            continue;
        }
        struct blk *cb = &f->blk[c];
        if (cb->sub_bad)
            sub_bad = 1;
        if (f->cls == T_SUBVOL && cb->refs < UINT32_MAX)
            cb->refs++;
        if (cb->state != B_OK || !cb->has_keys)
            continue;
        key_get(&k, node_ptr(b, i));
        if (key_cmp(&cb->min, &k) < 0)
            fsck_problem(f, "%s: child %" PRIu64 " (pointer %u) holds key %s below its pointer key %s",
                    where, child, i, fsck_key_str(&cb->min, ks, sizeof(ks)), fsck_key_str(&k, ps, sizeof(ps)));
        if (i + 1 < n) {
            key_get(&k, node_ptr(b, i + 1));
            if (key_cmp(&cb->max, &k) >= 0)
                fsck_problem(f, "%s: child %" PRIu64 " (pointer %u) holds key %s, not below the next pointer key %s",
                        where, child, i, fsck_key_str(&cb->max, ks, sizeof(ks)),
                        fsck_key_str(&k, ps, sizeof(ps)));
        }
    }
    struct blk *me = &f->blk[idx];
    if (sub_bad)
        me->sub_bad = 1;
    uint32_t c0, cn;
    key_get(&me->min, node_ptr(b, 0));
    key_get(&me->max, node_ptr(b, n - 1));
    if (fsck_map_get(&f->blkmap, node_child(b, 0), &c0) && f->blk[c0].state == B_OK &&
        f->blk[c0].has_keys && key_cmp(&f->blk[c0].min, &me->min) < 0)
        me->min = f->blk[c0].min;
    if (fsck_map_get(&f->blkmap, node_child(b, n - 1), &cn) && f->blk[cn].state == B_OK &&
        f->blk[cn].has_keys && key_cmp(&f->blk[cn].max, &me->max) > 0)
        me->max = f->blk[cn].max;
    me->has_keys = 1;
}

/*
 * Visits the block at BYTENR, expected at EXP_LEVEL with generation EXP_GEN
 * (from the parent pointer or root ref), as part of the walk of f->cls /
 * f->tree_id.  FROM names the referrer, for messages.  Returns the block's
 * index, or NOIDX if the pointer itself is unusable (then the caller's
 * subtree is incomplete).
 */
static uint32_t walk(struct fsck *f, uint64_t bytenr, uint64_t exp_gen, unsigned exp_level,
                     int is_root, const char *from)
{
    char where[96];
    fsck_blk_where(f->cls, f->tree_id, bytenr, where, sizeof(where));
    if (bytenr == 0 || bytenr % BS) {
        fsck_problem(f, "%s: points at %" PRIu64 ", not a block address", from, bytenr);
        return NOIDX;
    }
    /* where the block is stored: the remap tree's own blocks never move,
     * every other block is found through the remap runs */
    uint64_t contig;
    uint64_t phys = f->cls == T_REMAP ? bytenr : fsck_remap_phys(&f->xlate, bytenr, &contig);
    if (phys == 0) {
        fsck_problem(f, "%s: points at block %" PRIu64 ", which a remap item drops (only data "
                        "no file maps may be dropped)",
                     from, bytenr);
        return NOIDX;
    }
    char stored[48] = "";
    if (phys != bytenr)
        snprintf(stored, sizeof(stored), " (stored at %" PRIu64 ")", phys);
    if (bytenr >= f->total) {
        fsck_problem(f, "%s: points at block %" PRIu64 ", beyond total_bytes (%" PRIu64 " bytes)",
                     from, bytenr, f->total);
        return NOIDX;
    }
    if (fsck_range_end(phys, BS) > f->fsize) {
        fsck_problem(f, "%s: points at block %" PRIu64 "%s, beyond the end of the file (%" PRIu64
                        " bytes)",
                     from, bytenr, stored, f->fsize);
        return NOIDX;
    }
    uint32_t idx;
    if (fsck_map_get(&f->blkmap, bytenr, &idx)) {
        struct blk *b = &f->blk[idx];
        if (b->cls != f->cls) {
            char other[96];
            fsck_problem(f, "%s: points at block %" PRIu64 ", which is also %s",
                    from, bytenr, fsck_blk_where(b->cls, b->tree_id, bytenr, other, sizeof(other)));
            return NOIDX;
        }
        if (b->cls != T_SUBVOL) {
            fsck_problem(f, "%s: block %" PRIu64 " is referenced twice; %s blocks are never shared",
                    from, bytenr, class_name[b->cls]);
            return NOIDX;
        }
        if (b->state == B_VISITING) {
            fsck_problem(f, "%s: points at block %" PRIu64 ", an ancestor (cycle)", from, bytenr);
            return NOIDX;
        }
        if (b->level != exp_level) {
            fsck_problem(f, "%s: expects level %u at block %" PRIu64 ", which is at level %u", from,
                    exp_level, bytenr, b->level);
            return NOIDX;
        }
        if (b->state == B_OK && b->gen != exp_gen)
            fsck_problem(f, "%s: pointer to block %" PRIu64 " has generation %" PRIu64
                       ", the block has %" PRIu64,
                    from, bytenr, exp_gen, b->gen);
        /* first checked as some subvolume's root, where it may be empty */
        if (!is_root && b->state == B_OK && b->level == 0 && !b->has_keys)
            fsck_problem(f, "%s: points at block %" PRIu64 ", an empty leaf (only a root may be empty)",
                    from, bytenr);
        return idx;
    }
    struct blk *me = append_indexed(f, (void **)&f->blk, &f->nblk, &f->capblk, sizeof(*f->blk),
                                    &f->blkmap, bytenr);
    if (!me)
        return NOIDX;
    idx = (uint32_t)(f->nblk - 1);
    me->bytenr = bytenr;
    me->cls = (uint8_t)f->cls;
    me->level = (uint8_t)exp_level;
    me->tree_id = f->tree_id;
    me->state = B_VISITING;

    uint8_t b[BS];
    int rd = fsck_read_at(f->src, b, BS, phys);
    fsck_progress(f, BS);
    const char *bad = NULL;
    char why[128];
    if (rd) {
        snprintf(why, sizeof(why), "read failed: %s", rd == 1 ? "past end of file" : strerror(rd));
        bad = why;
    } else if (get32(b + TB_CSUM) != fsck_block_csum(b)) {
        snprintf(why, sizeof(why), "bad checksum (stored 0x%08x, computed 0x%08x)",
                 get32(b + TB_CSUM), fsck_block_csum(b));
        bad = why;
    } else if (get32(b + TB_MAGIC) != COW_TREE_MAGIC) {
        bad = "bad magic (not a tree block)";
    } else if (get64(b + TB_BYTENR) != bytenr) {
        snprintf(why, sizeof(why), "header says it is block %" PRIu64 " (misplaced write)",
                 get64(b + TB_BYTENR));
        bad = why;
    } else if (tb_level(b) != exp_level) {
        snprintf(why, sizeof(why), "level %u, expected %u", tb_level(b), exp_level);
        bad = why;
    } else if (tb_nritems(b) > (exp_level ? COW_NODE_MAX_PTRS : LEAF_MAX_ITEMS)) {
        snprintf(why, sizeof(why), "nritems %u (maximum %u)", tb_nritems(b),
                 exp_level ? COW_NODE_MAX_PTRS : (unsigned)LEAF_MAX_ITEMS);
        bad = why;
    }
    if (bad) {
        fsck_problem(f, "%s%s: %s", where, stored, bad);
        me->state = B_BAD;
        me->sub_bad = 1;
        return idx;
    }
    me->gen = get64(b + TB_GENERATION);
    if (me->gen != exp_gen)
        fsck_problem(f, "%s: generation %" PRIu64 ", but %s expects %" PRIu64, where, me->gen, from,
                exp_gen);
    if (me->gen > f->gen)
        fsck_problem(f, "%s: generation %" PRIu64 " > superblock generation %" PRIu64, where, me->gen,
                f->gen);
    uint64_t owner = get64(b + TB_OWNER);
    if (f->cls == T_SUBVOL ? owner < COW_FS_TREE_OBJECTID : owner != class_owner[f->cls])
        fsck_problem(f, "%s: owner %" PRIu64 ", expected %s%" PRIu64, where, owner,
                f->cls == T_SUBVOL ? "a subvolume id >= " : "", class_owner[f->cls]);
    if (!fsck_all_zero(b + TB_LEVEL + 1, TB_HEADER_SIZE - TB_LEVEL - 1))
        fsck_problem(f, "%s: header bytes 37..47 are not zero", where);

    if (exp_level == 0)
        check_leaf(f, idx, b, where, is_root);
    else
        check_node(f, idx, b, where);
    f->blk[idx].state = B_OK;
    return idx;
}

/* Walks one whole tree; returns the root's index or NOIDX. */
uint32_t fsck_walk_tree(struct fsck *f, int cls, uint64_t tree_id, uint64_t bytenr,
                   uint64_t gen, unsigned level, const char *from)
{
    f->cls = cls;
    f->tree_id = tree_id;
    return walk(f, bytenr, gen, level, 1, from);
}
