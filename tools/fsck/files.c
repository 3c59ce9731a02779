/*
 * files.c - pass 4 of the checker: each subvolume tree read again in key
 * order to check its inodes, names and file extents (see fsck.c).
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* pass 4: files                                                       */
/* ------------------------------------------------------------------ */

struct fstate {
    struct subvol *sv;
    struct u64map names;  /* ino -> number of entries naming it */
    struct u64map inodes; /* ino -> 1 */
    struct u64map orphans; /* ino -> 1: ORPHAN_ITEMs (unlinked, still open) */
    struct u64map seen;   /* blocks read in this walk */
    uint64_t cur;         /* inode whose items are being read, 0 = none */
    int have_inode, warned;
    int nodatacow; /* the inode's COW_INODE_NODATACOW */
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
        s->nodatacow = (get64(p + INODE_FLAGS) & COW_INODE_NODATACOW) != 0;
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
        /* unchecked data (format.h) only where the file says so: a type
         * changed to NODATASUM would hide damage from the checksums */
        if (p[FE_TYPE] == COW_FE_NODATASUM && !s->nodatacow)
            fsck_problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": NODATASUM extent at %" PRIu64
                            " in a file without the nodatacow flag",
                         sid, k->objectid, k->offset);
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
    if (fsck_read_logical(f->src, &f->xlate, b, BS, bytenr) ||
        get32(b + TB_CSUM) != fsck_block_csum(b) ||
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
