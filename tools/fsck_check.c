/*
 * fsck_check.c - passes 3 and 4 of the checker: reference counts, checksum
 * items, space and block groups; then the files of each subvolume and
 * their data (see fsck.c).
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* pass 3: cross-checks                                                */
/* ------------------------------------------------------------------ */

void fsck_check_extent_items(struct fsck *f, int subvols_ok)
{
    int ext_ok = f->tree_ok[T_EXTENT];
    int full = ext_ok && subvols_ok;
    char ks[80];
    if (!full)
        fsck_note(f, "reference counts not fully cross-checked: the %s",
             !ext_ok ? "extent tree is damaged" : "subvolume trees are damaged");
    for (size_t i = 0; i < f->nxi && !f->fatal; i++) {
        struct xitem *x = &f->xi[i];
        fsck_key_str(&x->key, ks, sizeof(ks));
        uint64_t bytenr = x->key.objectid;
        if (bytenr == 0 || bytenr % BS) {
            fsck_problem(f, "extent tree: %s: address is not a block address", ks);
            continue;
        }
        if (x->gen > f->gen)
            fsck_problem(f, "extent tree: %s: generation %" PRIu64 " > superblock generation %" PRIu64,
                    ks, x->gen, f->gen);
        if (x->refs == 0)
            fsck_problem(f, "extent tree: %s: refs 0 (a free extent has no item)", ks);
        if (x->key.type == COW_METADATA_ITEM) {
            if (x->flags != COW_EXT_FLAG_TREE)
                fsck_problem(f, "extent tree: %s: flags 0x%" PRIx64 ", expected 0x%x (TREE)", ks,
                        x->flags, COW_EXT_FLAG_TREE);
            uint32_t bi;
            if (!fsck_map_get(&f->blkmap, bytenr, &bi)) {
                if (full)
                    fsck_problem(f, "extent tree: %s: no subvolume tree references block %" PRIu64
                               " (leaked, refs %" PRIu64 ")",
                            ks, bytenr, x->refs);
                continue;
            }
            struct blk *b = &f->blk[bi];
            if (b->cls != T_SUBVOL) {
                fsck_problem(f, "extent tree: %s: block %" PRIu64 " belongs to the %s, whose blocks have no METADATA_ITEM",
                        ks, bytenr, class_name[b->cls]);
                continue;
            }
            if (b->has_meta) {
                fsck_problem(f, "extent tree: %s: a second METADATA_ITEM for block %" PRIu64, ks,
                        bytenr);
                continue;
            }
            b->has_meta = 1;
            if (x->key.offset != b->level)
                fsck_problem(f, "extent tree: %s: block %" PRIu64 " is at level %u", ks, bytenr,
                        b->level);
            if (subvols_ok && x->refs != b->refs)
                fsck_problem(f, "extent tree: %s: refs %" PRIu64 ", but %u parent blocks/ROOT_ITEMs point at block %" PRIu64,
                        ks, x->refs, b->refs, bytenr);
        } else {
            uint64_t len = x->key.offset;
            if (x->flags != COW_EXT_FLAG_DATA)
                fsck_problem(f, "extent tree: %s: flags 0x%" PRIx64 ", expected 0x%x (DATA)", ks,
                        x->flags, COW_EXT_FLAG_DATA);
            if (len == 0 || len % BS || len > MAX_EXTENT_BYTES) {
                fsck_problem(f, "extent tree: %s: length %" PRIu64 " is not a multiple of 4096 in 4096..%" PRIu64,
                        ks, len, MAX_EXTENT_BYTES);
                continue;
            }
            struct dext *d = fsck_dext_get(f, bytenr, 1);
            if (!d)
                return;
            if (d->has_item) {
                fsck_problem(f, "extent tree: %s: a second EXTENT_ITEM for data extent %" PRIu64, ks,
                        bytenr);
                continue;
            }
            d->has_item = 1;
            d->item_len = len;
            d->item_refs = x->refs;
            if (d->refs && d->ref_len != len)
                fsck_problem(f, "extent tree: %s: EXTENT_DATA items (leaf %" PRIu64 ") say the extent is %" PRIu64 " bytes",
                        ks, d->first_leaf, d->ref_len);
            if (subvols_ok && d->refs != x->refs) {
                if (d->refs == 0)
                    fsck_problem(f, "extent tree: %s: refs %" PRIu64 ", but no EXTENT_DATA item points at it (leaked)",
                            ks, x->refs);
                else
                    fsck_problem(f, "extent tree: %s: refs %" PRIu64 ", but %" PRIu64 " EXTENT_DATA items point at it",
                            ks, x->refs, d->refs);
            }
        }
    }
    if (!full)
        return;
    for (size_t i = 0; i < f->nblk; i++) {
        struct blk *b = &f->blk[i];
        if (b->cls == T_SUBVOL && !b->has_meta)
            fsck_problem(f, "subvolume %" PRIu64 " tree block %" PRIu64 " (level %u) has no METADATA_ITEM",
                    b->tree_id, b->bytenr, b->level);
    }
    for (size_t i = 0; i < f->ndx; i++) {
        struct dext *d = &f->dx[i];
        if (!d->has_item)
            fsck_problem(f, "data extent %" PRIu64 " (%" PRIu64 " bytes, %" PRIu64
                       " EXTENT_DATA refs, e.g. leaf %" PRIu64 ") has no EXTENT_ITEM",
                    d->bytenr, d->ref_len, d->refs, d->first_leaf);
    }
}

void fsck_check_csums(struct fsck *f)
{
    int full = f->tree_ok[T_CSUM] && f->tree_ok[T_EXTENT];
    for (size_t i = 0; i < f->ncs; i++) {
        struct csi *c = &f->cs[i];
        struct dext *d = fsck_dext_get(f, c->bytenr, 0);
        if ((!d || !d->has_item) && f->tree_ok[T_EXTENT])
            fsck_problem(f, "csum tree: item for %" PRIu64 " (%u blocks), which is not a data extent",
                    c->bytenr, c->n);
        if (!d)
            continue;
        d->has_csum = 1;
        d->csum_off = c->off;
        d->ncsum = c->n;
        uint64_t len = d->has_item ? d->item_len : d->ref_len;
        if ((uint64_t)c->n * BS != len)
            fsck_problem(f, "csum tree: item for data extent %" PRIu64 " has %u crcs, the extent has %" PRIu64 " blocks",
                    c->bytenr, c->n, len / BS);
    }
    if (!full) {
        fsck_note(f, "checksum items not fully cross-checked: the %s tree is damaged",
             f->tree_ok[T_CSUM] ? "extent" : "csum");
        return;
    }
    for (size_t i = 0; i < f->ndx; i++)
        if (f->dx[i].has_item && !f->dx[i].has_csum)
            fsck_problem(f, "data extent %" PRIu64 " (%" PRIu64 " bytes) has no EXTENT_CSUM item",
                    f->dx[i].bytenr, f->dx[i].item_len);
}

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->kind < y->kind ? -1 : x->kind > y->kind;
}

const char *fsck_span_str(const struct span *s, char *buf, size_t len)
{
    if (s->kind == SP_SB)
        snprintf(buf, len, "superblock range [0, 8192)");
    else if (s->kind == SP_TREE)
        snprintf(buf, len, "%s block %" PRIu64, class_name[s->sub], s->id);
    else if (s->kind == SP_LOG)
        snprintf(buf, len, "log area %u [%" PRIu64 ", %" PRIu64 " blocks)", s->sub, s->id,
                 s->len / BS);
    else
        snprintf(buf, len, "data extent %" PRIu64 " (%" PRIu64 " bytes)", s->id, s->len);
    return buf;
}

static int bg_cmp(const void *a, const void *b)
{
    const struct bgi *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Space: every used range (superblocks, log areas, tree blocks, data
 * extents) inside the container and apart from the others, in a block group
 * of its type, and the used bytes of each group and of the superblock.  The
 * sorted ranges are kept in f->sp for the log check.
 */
void fsck_check_space(struct fsck *f, int all_ok)
{
    size_t n = 1 + COW_SB_COPIES + f->nblk + f->ndx;
    struct span *sp = malloc(n * sizeof(*sp));
    if (!sp) {
        fsck_set_fatal(f, -ENOMEM);
        return;
    }
    f->sp = sp;
    size_t k = 0;
    sp[k++] = (struct span){0, 2 * BS, 0, SP_SB, 0};
    uint64_t meta = 2 * BS, data = 0;
    /* the log areas belong to the superblock, like its two blocks */
    for (int c = 0; f->have_log && c < COW_SB_COPIES; c++) {
        uint64_t len = (uint64_t)f->log_blocks * BS;
        sp[k++] = (struct span){f->log_area[c], len, f->log_area[c], SP_LOG, (uint8_t)c};
        meta += len;
    }
    for (size_t i = 0; i < f->nblk; i++) {
        sp[k++] = (struct span){f->blk[i].bytenr, BS, f->blk[i].bytenr, SP_TREE, f->blk[i].cls};
        meta += BS;
    }
    for (size_t i = 0; i < f->ndx; i++) {
        struct dext *d = &f->dx[i];
        uint64_t len = d->has_item ? d->item_len : d->ref_len;
        if (d->bytenr % BS || len == 0 || len % BS)
            continue;
        sp[k++] = (struct span){d->bytenr, len, d->bytenr, SP_DATA, 0};
        data += len;
    }
    f->nsp = k;
    f->r->tree_blocks = f->nblk;
    f->r->data_extents = f->ndx;
    f->r->metadata_bytes = meta;
    f->r->data_bytes = data;
    f->r->bytes_used = meta + data;
    qsort(sp, k, sizeof(*sp), span_cmp);

    char a[96], b[96];
    size_t last = 0; /* span reaching furthest so far */
    for (size_t i = 0; i < k; i++) {
        uint64_t end = fsck_range_end(sp[i].start, sp[i].len);
        if (end > f->total)
            fsck_problem(f, "%s ends at %" PRIu64 ", beyond total_bytes %" PRIu64,
                    fsck_span_str(&sp[i], a, sizeof(a)), end, f->total);
        else if (end > f->fsize)
            fsck_problem(f, "%s ends at %" PRIu64 ", beyond the end of the file (%" PRIu64 " bytes)",
                    fsck_span_str(&sp[i], a, sizeof(a)), end, f->fsize);
        if (i && fsck_range_end(sp[last].start, sp[last].len) > sp[i].start)
            fsck_problem(f, "%s overlaps %s", fsck_span_str(&sp[i], a, sizeof(a)),
                    fsck_span_str(&sp[last], b, sizeof(b)));
        if (i == 0 || end > fsck_range_end(sp[last].start, sp[last].len))
            last = i;
    }

    /* block groups */
    f->r->block_groups = f->nbg;
    if (!f->tree_ok[T_EXTENT]) {
        fsck_note(f, "block groups not checked: the extent tree is damaged");
        return;
    }
    if (f->nbg > 1)
        qsort(f->bg, f->nbg, sizeof(*f->bg), bg_cmp);
    uint64_t expect = 0;
    for (size_t i = 0; i < f->nbg; i++) {
        struct bgi *g = &f->bg[i];
        if (g->start > expect)
            fsck_problem(f, "block groups: no BLOCK_GROUP_ITEM covers [%" PRIu64 ", %" PRIu64 ")",
                    expect, g->start);
        else if (g->start < expect)
            fsck_problem(f, "block group %" PRIu64 " overlaps the previous one (ending at %" PRIu64 ")",
                    g->start, expect);
        if (f->bg_size && g->len != f->bg_size)
            fsck_problem(f, "block group %" PRIu64 ": length %" PRIu64 ", block group size is %" PRIu64,
                    g->start, g->len, f->bg_size);
        if (g->flags != COW_BG_DATA && g->flags != COW_BG_METADATA)
            fsck_problem(f, "block group %" PRIu64 ": flags 0x%" PRIx64 ", not DATA (0x%llx) or METADATA (0x%llx)",
                    g->start, g->flags, COW_BG_DATA, COW_BG_METADATA);
        else if (g->start == 0 && g->flags != COW_BG_METADATA)
            fsck_problem(f, "block group 0 (the superblocks' group) is not a METADATA group");
        if (g->used > g->len)
            fsck_problem(f, "block group %" PRIu64 ": used %" PRIu64 " > length %" PRIu64, g->start,
                    g->used, g->len);
        uint64_t e = fsck_range_end(g->start, g->len);
        if (e > expect)
            expect = e;
    }
    if (expect < f->total)
        fsck_problem(f, "block groups: no BLOCK_GROUP_ITEM covers [%" PRIu64 ", %" PRIu64 ")", expect,
                f->total);
    else if (expect > f->total)
        fsck_problem(f, "block groups reach %" PRIu64 ", beyond total_bytes %" PRIu64, expect, f->total);

    if (!all_ok || f->log_bad) {
        fsck_note(f, "used bytes not checked: %s",
             all_ok ? "the superblock's log areas are invalid" : "some trees are damaged");
        return;
    }
    f->space_ok = 1;
    /* used bytes per group: sum of the overlap of every span with it */
    size_t j = 0;
    for (size_t i = 0; i < f->nbg; i++) {
        struct bgi *g = &f->bg[i];
        uint64_t ge = fsck_range_end(g->start, g->len);
        while (j < k && fsck_range_end(sp[j].start, sp[j].len) <= g->start)
            j++;
        for (size_t m = j; m < k && sp[m].start < ge; m++) {
            uint64_t s = sp[m].start > g->start ? sp[m].start : g->start;
            uint64_t e = fsck_range_end(sp[m].start, sp[m].len);
            if (e > ge)
                e = ge;
            if (e > s)
                g->calc += e - s;
            /* data only in DATA groups, tree blocks, superblocks and log
             * areas only in METADATA groups */
            int is_data = sp[m].kind == SP_DATA;
            if (e > s && (g->flags == COW_BG_DATA || g->flags == COW_BG_METADATA) &&
                is_data != (g->flags == COW_BG_DATA))
                fsck_problem(f, "%s lies in %s block group %" PRIu64,
                        fsck_span_str(&sp[m], a, sizeof(a)), g->flags == COW_BG_DATA ? "DATA" : "METADATA",
                        g->start);
        }
        if (g->calc != g->used)
            fsck_problem(f, "block group %" PRIu64 ": used %" PRIu64 ", recomputed %" PRIu64,
                    g->start, g->used, g->calc);
    }
    if (f->bytes_used != meta + data)
        fsck_problem(f, "superblock: bytes_used %" PRIu64 ", recomputed %" PRIu64
                   " (%" PRIu64 " metadata + %" PRIu64 " data)",
                f->bytes_used, meta + data, meta, data);
}

/* ------------------------------------------------------------------ */
/* pass 4: files and data                                              */
/* ------------------------------------------------------------------ */

struct fstate {
    struct subvol *sv;
    struct u64map names;  /* ino -> number of entries naming it */
    struct u64map inodes; /* ino -> 1 */
    struct u64map orphans; /* ino -> 1: ORPHAN_ITEMs (unlinked, still open) */
    struct u64map seen;   /* blocks read in this walk */
    uint64_t cur;         /* inode whose items are being read, 0 = none */
    int have_inode, warned;
    int live;             /* keep the files in f->lf and f->lx (subvolume 256) */
    uint64_t size, nblocks, sum, next_off;
};

static void file_finish(struct fsck *f, struct fstate *s)
{
    if (!s->cur || !s->have_inode)
        return;
    if (s->sum != s->nblocks)
        fsck_problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": nblocks %" PRIu64
                   ", its EXTENT_DATA items cover %" PRIu64 " blocks",
                s->sv->id, s->cur, s->nblocks, s->sum);
}

static void file_item(struct fsck *f, struct fstate *s, const struct cow_key *k, const uint8_t *p,
                      unsigned size)
{
    uint64_t sid = s->sv->id;
    if (k->objectid == COW_ROOT_DIR_OBJECTID) {
        if (k->type == COW_DIR_ITEM) {
            unsigned pos = 0;
            while (pos + DIR_ENTRY_NAME <= size) {
                unsigned len = get16(p + pos + DIR_ENTRY_NAMELEN);
                if (len == 0 || len > size - pos - DIR_ENTRY_NAME)
                    break;
                uint64_t ino = get64(p + pos + DIR_ENTRY_INO);
                uint32_t cnt = 0;
                fsck_map_get(&s->names, ino, &cnt);
                if (cnt < NOIDX - 1 && fsck_map_put(&s->names, ino, cnt + 1)) {
                    fsck_set_fatal(f, -ENOMEM);
                    return;
                }
                pos += DIR_ENTRY_NAME + len;
            }
        } else if (k->type == COW_EXTENT_DATA) {
            fsck_problem(f, "subvolume %" PRIu64 ": the root directory (256) has file extents", sid);
        }
        return;
    }
    if (k->objectid != s->cur) {
        file_finish(f, s);
        s->cur = k->objectid;
        s->have_inode = 0;
        s->warned = 0;
        s->sum = 0;
        s->next_off = 0;
    }
    if (k->type == COW_INODE_ITEM && size == INODE_ITEM_SIZE) {
        s->have_inode = 1;
        s->size = get64(p + INODE_SIZE);
        s->nblocks = get64(p + INODE_NBLOCKS);
        f->r->files++;
        if (k->objectid >= s->sv->next_ino)
            fsck_problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": not below the ROOT_ITEM's next_ino %" PRIu64,
                    sid, k->objectid, s->sv->next_ino);
        uint32_t idx = 1;
        if (s->live) {
            /* what replay starts from (pass 5): its block count, extents */
            if (f->nlf >= NOIDX - 1 ||
                fsck_vec_reserve((void **)&f->lf, &f->caplf, f->nlf + 1, sizeof(*f->lf))) {
                fsck_set_fatal(f, -ENOMEM);
                return;
            }
            idx = (uint32_t)f->nlf;
            f->lf[f->nlf++] = (struct lfile){s->nblocks, f->nlx, 0};
        }
        if (fsck_map_put(&s->inodes, k->objectid, idx))
            fsck_set_fatal(f, -ENOMEM);
    } else if (k->type == COW_EXTENT_DATA && size == FE_ITEM_SIZE) {
        if (!s->have_inode) {
            if (!s->warned)
                fsck_problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": EXTENT_DATA items without an INODE_ITEM",
                        sid, k->objectid);
            s->warned = 1;
            return;
        }
        uint64_t nb = get64(p + FE_NUM_BYTES);
        uint64_t end = fsck_range_end(k->offset, nb);
        uint64_t lim = fsck_range_end(s->size, BS - 1) / BS * BS;
        if (k->offset < s->next_off)
            fsck_problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": extent at %" PRIu64
                       " overlaps the previous one (ending at %" PRIu64 ")",
                    sid, k->objectid, k->offset, s->next_off);
        /* a preallocated extent may reach past the size (fallocate with
         * KEEP_SIZE); it counts in nblocks like a regular one */
        if (end > lim && p[FE_TYPE] != COW_FE_PREALLOC)
            fsck_problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": extent [%" PRIu64 ", %" PRIu64
                       ") beyond the file size %" PRIu64,
                    sid, k->objectid, k->offset, end, s->size);
        if (end > s->next_off)
            s->next_off = end;
        s->sum += nb / BS;
        if (s->live) {
            if (fsck_vec_reserve((void **)&f->lx, &f->caplx, f->nlx + 1, sizeof(*f->lx))) {
                fsck_set_fatal(f, -ENOMEM);
                return;
            }
            f->lx[f->nlx++] = (struct fspan){k->offset, end};
            f->lf[f->nlf - 1].n++;
        }
    } else if (k->type == COW_DIR_ITEM) {
        /* reported in pass 2 (DIR_ITEMs belong to directory 256) */
    }
}

/*
 * Reads the subvolume tree under BYTENR again, in key order, every block of
 * it, those it shares with other subvolumes included.  A block is read once
 * per walk: in a tree whose keys increase strictly no block can be reached
 * twice, and a tree that breaks that (a problem of pass 2) could otherwise
 * make the walk take time exponential in its height.
 */
static void files_walk(struct fsck *f, struct fstate *s, uint64_t bytenr, unsigned level)
{
    uint32_t bi, one;
    if (f->fatal || !fsck_map_get(&f->blkmap, bytenr, &bi) || f->blk[bi].state != B_OK ||
        f->blk[bi].level != level || fsck_map_get(&s->seen, bytenr, &one))
        return;
    if (fsck_map_put(&s->seen, bytenr, 1)) {
        fsck_set_fatal(f, -ENOMEM);
        return;
    }
    uint8_t b[BS];
    if (fsck_read_at(f->fd, b, BS, bytenr) || get32(b + TB_CSUM) != fsck_block_csum(b) ||
        tb_level(b) != level) {
        fsck_problem(f, "block %" PRIu64 " changed while being checked", bytenr);
        return;
    }
    unsigned n = tb_nritems(b);
    if (level == 0) {
        if (n > LEAF_MAX_ITEMS)
            return;
        unsigned data_start = TB_HEADER_SIZE + n * COW_ITEM_SIZE;
        for (unsigned i = 0; i < n && !f->fatal; i++) {
            struct cow_key k;
            unsigned off = leaf_data_off(b, i), size = leaf_data_size(b, i);
            if (off < data_start || off > BS || size > BS - off)
                continue;
            key_get(&k, leaf_item(b, i));
            if (k.objectid == COW_ORPHAN_OBJECTID && k.type == COW_ORPHAN_ITEM) {
                if (fsck_map_put(&s->orphans, k.offset, 1))
                    fsck_set_fatal(f, -ENOMEM);
                continue;
            }
            if (k.objectid < COW_ROOT_DIR_OBJECTID) {
                char ks[80];
                fsck_problem(f, "subvolume %" PRIu64 " leaf %" PRIu64 ": item %s: object id below 256",
                        s->sv->id, bytenr, fsck_key_str(&k, ks, sizeof(ks)));
                continue;
            }
            file_item(f, s, &k, b + off, size);
        }
        return;
    }
    if (n > COW_NODE_MAX_PTRS)
        return;
    for (unsigned i = 0; i < n && !f->fatal; i++)
        files_walk(f, s, node_child(b, i), level - 1);
}

void fsck_check_files(struct fsck *f, struct subvol *sv)
{
    struct fstate s;
    memset(&s, 0, sizeof(s));
    s.sv = sv;
    s.live = sv->id == COW_FS_TREE_OBJECTID && !f->have_live_inodes;
    files_walk(f, &s, sv->bytenr, sv->level);
    file_finish(f, &s);
    for (size_t i = 0; i < s.names.cap && !f->fatal; i++) {
        if (s.names.vals[i] == NOIDX)
            continue;
        uint64_t ino = s.names.keys[i];
        uint32_t one;
        if (fsck_map_get(&s.orphans, ino, &one))
            fsck_problem(f, "subvolume %" PRIu64 ": inode %" PRIu64 " has an ORPHAN_ITEM but still has %u name%s",
                    sv->id, ino, s.names.vals[i], s.names.vals[i] == 1 ? "" : "s");
        else if (!fsck_map_get(&s.inodes, ino, &one))
            fsck_problem(f, "subvolume %" PRIu64 ": a name points at inode %" PRIu64 ", which does not exist",
                    sv->id, ino);
        else if (s.names.vals[i] != 1)
            fsck_problem(f, "subvolume %" PRIu64 ": inode %" PRIu64 " has %u names", sv->id, ino,
                    s.names.vals[i]);
    }
    for (size_t i = 0; i < s.inodes.cap && !f->fatal; i++) {
        uint32_t cnt;
        if (s.inodes.vals[i] != NOIDX && !fsck_map_get(&s.names, s.inodes.keys[i], &cnt) &&
            !fsck_map_get(&s.orphans, s.inodes.keys[i], &cnt))
            fsck_problem(f, "subvolume %" PRIu64 ": inode %" PRIu64 " has no name (and no ORPHAN_ITEM)",
                    sv->id, s.inodes.keys[i]);
    }
    for (size_t i = 0; i < s.orphans.cap && !f->fatal; i++) {
        uint32_t one;
        if (s.orphans.vals[i] != NOIDX && !fsck_map_get(&s.inodes, s.orphans.keys[i], &one))
            fsck_problem(f, "subvolume %" PRIu64 ": ORPHAN_ITEM for inode %" PRIu64 ", which does not exist",
                    sv->id, s.orphans.keys[i]);
    }
    fsck_map_free(&s.orphans);
    fsck_map_free(&s.names);
    if (s.live) {
        f->live_inodes = s.inodes; /* the log's files must be among them */
        f->have_live_inodes = 1;
    } else {
        fsck_map_free(&s.inodes);
    }
    fsck_map_free(&s.seen);
}

/*
 * Verifies the blocks of each data extent that hold file data: those that a
 * REG EXTENT_DATA item of some subvolume maps (dext.reg, gathered in pass
 * 2).  The other blocks were preallocated and never written (only PREALLOC
 * items map them) or are mapped by nothing: their crcs are placeholders and
 * their contents whatever the space held before, so they are not read.
 * Each run of mapped blocks is read with one pread.
 */
void fsck_check_data(struct fsck *f)
{
    uint8_t *buf = malloc(MAX_EXTENT_BYTES);
    if (!buf) {
        fsck_set_fatal(f, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < f->ndx && !f->fatal; i++) {
        struct dext *d = &f->dx[i];
        if (!d->has_item || !d->has_csum || (uint64_t)d->ncsum * BS != d->item_len ||
            fsck_range_end(d->bytenr, d->item_len) > f->fsize)
            continue;
        const uint32_t *csum = f->pool + d->csum_off;
        uint32_t checked = 0, bad = 0, first = 0, first_c = 0;
        uint32_t b = 0;
        while (b < d->ncsum) {
            if (!fsck_bmap_has(d->reg, b)) {
                b++;
                continue;
            }
            uint32_t e = b + 1;
            while (e < d->ncsum && fsck_bmap_has(d->reg, e))
                e++;
            uint64_t at = d->bytenr + (uint64_t)b * BS;
            int rd = fsck_read_at(f->fd, buf, (size_t)(e - b) * BS, at);
            if (rd) {
                fsck_problem(f, "data extent %" PRIu64 ": read failed at block %" PRIu64 ": %s",
                        d->bytenr, at, rd == 1 ? "past end of file" : strerror(rd));
                break;
            }
            for (uint32_t j = b; j < e; j++) {
                uint32_t c = crc32c(0, buf + (size_t)(j - b) * BS, BS);
                if (c != csum[j] && bad++ == 0) {
                    first = j;
                    first_c = c;
                }
            }
            checked += e - b;
            b = e;
        }
        f->r->data_blocks_verified += checked;
        if (!bad)
            continue;
        char of[96] = "";
        if (checked < d->ncsum)
            snprintf(of, sizeof(of), "; of its %u blocks, the %u that regular file extents map "
                                     "were checked", d->ncsum, checked);
        fsck_problem(f, "data extent %" PRIu64 ": %u of %u blocks fail their checksum, first block %" PRIu64
                   " (stored 0x%08x, computed 0x%08x)%s",
                d->bytenr, bad, checked, d->bytenr + (uint64_t)first * BS, csum[first], first_c,
                of);
    }
    free(buf);
}
