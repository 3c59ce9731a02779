/*
 * extents.c - pass 3 of the checker, extents and refcounts: the extent
 * tree's items against the tree blocks and data extents that pass 2 found
 * referenced (see fsck.c).
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* pass 3: extents and refcounts                                       */
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
