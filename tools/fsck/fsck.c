/*
 * fsck.c - an independent checker and dumper for cowvfs containers.
 *
 * Reads the container through a source (tools/fsck.h: struct
 * cow_fsck_src; pread(2) for a file) and knows only store/format.h and
 * crc32c: nothing here calls the store, so the checker and the store are two
 * readings of one format that must agree.
 *
 * The check runs in five passes:
 *
 *   1. superblocks: both copies; the newest valid one is used (a torn
 *      newest one only if the other holds the commit it names).  Its log
 *      areas are owned by the superblock (used space without extent items).
 *      Format versions 1, 2 and 3 are read; version 3 adds device_bytes
 *      (the file may be shorter than total_bytes, not than device_bytes)
 *      and the remap tree.
 *   2. structure: every tree is walked from its root (superblock root refs,
 *      then the ROOT_ITEMs of the root tree), each distinct block once.
 *      The remap tree goes first, its blocks read at their own address:
 *      its REMAP_ITEMs (checked one by one) become the translation that
 *      every later read of a tree or data block by its logical address
 *      goes through (remap.c).  A
 *      block is checked on its first visit (checksum, header, item layout,
 *      key order, items one by one); every later visit through another
 *      parent only counts a reference and checks the pointer (generation,
 *      level, key bounds against the cached subtree key range).  Levels
 *      must decrease by one per step, so no walk can loop, and the recursion
 *      is at most COW_MAX_LEVEL deep.  Items are collected on the way:
 *      extent-tree items, csum items, ROOT_ITEMs and ROOT_NAMEs, and the
 *      data references of EXTENT_DATA items (counted once per distinct
 *      leaf), with the blocks of each data extent that REG items map.
 *      Subvolumes that share blocks (snapshots and branches) are walked one
 *      after another: a shared block is checked, and its children counted,
 *      on its first visit only, so a block's refs are the distinct parent
 *      blocks and ROOT_ITEMs pointing at it (Rodeh's scheme, as the extent
 *      tree counts them).  Then the subvolume names are checked against
 *      each other and the ROOT_ITEMs.
 *   3. cross-checks: tree block and data extent refcounts, csum items,
 *      space (overlaps, bounds, block group accounting, the superblocks and
 *      log areas included; logical, as the trees name blocks), then the
 *      remap runs against the used space and the physical space (every
 *      used block stored once, below device_bytes), each only when the
 *      trees it depends on were read completely, so that one damaged block
 *      gives one problem rather than a thousand consequential ones.
 *   4. files: each subvolume tree is read again in key order to check its
 *      inodes, names and file extents, the whole tree of every subvolume,
 *      shared blocks included; then, with COW_FSCK_DATA, every data
 *      block that a REG EXTENT_DATA item (of any subvolume) maps is verified
 *      against its checksum.  The other blocks of an extent hold no written
 *      data: PREALLOC items (which read as zeros) or nothing map them, and
 *      their crcs are placeholders, so they are not read.
 *   5. log: the records in the log area of the superblock copy in use are
 *      read as replay reads them (a record's EXTENT_CSUM items are checked
 *      against the data only in the blocks its own REG items map); valid
 *      ones are pending replay (legal, a note) and their items are checked
 *      against the committed state.  Then both areas are searched for a
 *      whole record that proves a flushed commit or record lost (a
 *      problem: see docs/DESIGN.md, "Damage a crash cannot cause").
 *
 * The passes' files (tools/fsck/): super.c (1); walk.c, remap.c and
 * subvols.c (2); extents.c, csums.c, space.c and remap.c (3); files.c and
 * csums.c (4); log.c (5).
 * util.c holds what they share (containers, names, reading, messages),
 * fsck_int.h their state; dump.c is cowctl dump.
 *
 * All input is untrusted: every count is bounded by the block size, every
 * offset is checked before use, and arithmetic on disk values is done so
 * that it cannot overflow.  Memory grows with the number of distinct blocks
 * and extents referenced, which is bounded by the file size.
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* entry point                                                         */
/* ------------------------------------------------------------------ */

static void fsck_run(struct fsck *f)
{
    char from[64];
    if (fsck_check_superblocks(f))
        return;
    /* the superblock's trees: the remap tree first (at its own address),
     * since every other block is read through its runs */
    static const int order[T_NSB] = {T_REMAP, T_ROOT, T_EXTENT, T_CSUM};
    for (int i = 0; i < T_NSB; i++) {
        int t = order[i];
        struct rootref *rr = &f->rr[t];
        f->tree_ok[t] = t == T_REMAP && !f->remap_ref; /* none: complete */
        if (rr->valid) {
            snprintf(from, sizeof(from), "superblock %s root", class_name[t]);
            uint32_t r = fsck_walk_tree(f, t, class_owner[t], rr->bytenr, rr->gen, rr->level,
                                        from);
            if (f->fatal)
                return;
            f->tree_ok[t] = r != NOIDX && !f->blk[r].sub_bad;
        }
        if (t == T_REMAP)
            fsck_remap_build(f);
        if (f->fatal)
            return;
    }
    /* the subvolumes */
    f->r->subvolumes = f->nsv;
    int subvols_ok = f->tree_ok[T_ROOT];
    int have_fs = 0;
    for (size_t i = 0; i < f->nsv && !f->fatal; i++) {
        struct subvol *s = &f->sv[i];
        if (s->id == COW_FS_TREE_OBJECTID)
            have_fs = 1;
        snprintf(from, sizeof(from), "ROOT_ITEM of subvolume %" PRIu64, s->id);
        s->root = fsck_walk_tree(f, T_SUBVOL, s->id, s->bytenr, s->gen, s->level, from);
        if (s->root == NOIDX) {
            subvols_ok = 0;
            continue;
        }
        if (f->blk[s->root].refs < UINT32_MAX)
            f->blk[s->root].refs++;
        if (f->blk[s->root].sub_bad)
            subvols_ok = 0;
    }
    if (f->fatal)
        return;
    if (f->tree_ok[T_ROOT] && !have_fs)
        fsck_problem(f, "root tree: no ROOT_ITEM for the live subvolume %llu",
                (unsigned long long)COW_FS_TREE_OBJECTID);
    fsck_check_root_names(f);
    if (f->fatal)
        return;
    /* cross-checks */
    fsck_check_extent_items(f, subvols_ok);
    if (f->fatal)
        return;
    fsck_check_csums(f);
    int all_ok = subvols_ok;
    for (int t = 0; t < T_NSB; t++)
        all_ok = all_ok && f->tree_ok[t];
    fsck_check_space(f, all_ok);
    if (f->fatal)
        return;
    fsck_check_remap_space(f);
    if (f->fatal)
        return;
    /* files: every subvolume over its whole tree, shared blocks and all
     * (a snapshot has the files it has, whoever else shares them) */
    for (size_t i = 0; i < f->nsv && !f->fatal; i++) {
        struct subvol *s = &f->sv[i];
        if (s->root == NOIDX || f->blk[s->root].sub_bad) {
            char lb[1100];
            fsck_note(f, "%s: files not checked, its tree is damaged", fsck_sv_label(f, s, lb, sizeof(lb)));
            continue;
        }
        fsck_check_files(f, s);
    }
    if (!f->fatal && (f->flags & COW_FSCK_DATA))
        fsck_check_data(f);
    if (!f->fatal)
        fsck_check_log(f);
}

int cow_fsck(const char *path, unsigned flags, FILE *out, struct cow_fsck_result *res)
{
    return cow_fsck_progress(path, flags, out, res, NULL, NULL);
}

void fsck_progress(struct fsck *f, uint64_t bytes)
{
    f->progress_done += bytes;
    if (f->progress)
        f->progress(f->progress_arg, f->progress_done, f->bytes_used);
}

/* Checks SRC (fsck_src_valid()) for cow_fsck_src_progress() and
 * cow_fsck_progress(), which names in UNLOCKED a file it could not lock
 * (NULL: none), for a note. */
static int fsck_src(const struct cow_fsck_src *src, const char *unlocked, unsigned flags,
                    FILE *out, struct cow_fsck_result *res, cow_fsck_progress_fn cb, void *arg)
{
    struct fsck f;
    memset(&f, 0, sizeof(f));
    f.src = src;
    f.out = out;
    f.flags = flags;
    f.r = res;
    f.progress = cb;
    f.progress_arg = arg;
    f.fsize = src->size;
    res->container_bytes = f.fsize;
    if (unlocked)
        fsck_note(&f, "%s is open in a process (locked); what it is writing may look inconsistent",
                  unlocked);

    fsck_run(&f);

    int rc;
    if (f.fatal) {
        if (out)
            fprintf(out, "%s: check stopped: %s\n", src->name, strerror(-f.fatal));
        rc = f.fatal;
    } else {
        rc = res->problems > INT_MAX ? INT_MAX : (int)res->problems;
    }
    for (size_t i = 0; i < f.nblk; i++)
        if (f.blk[i].cls == T_SUBVOL && f.blk[i].refs > 1)
            res->shared_blocks++;
    free(f.blk);
    free(f.dx);
    free(f.xi);
    free(f.bg);
    free(f.cs);
    free(f.pool);
    free(f.sv);
    free(f.sp);
    fsck_remaps_free(&f.rm);
    fsck_remaps_free(&f.xlate);
    fsck_remaps_free(&f.xphys);
    fsck_names_free(&f.names);
    fsck_map_free(&f.svmap);
    fsck_map_free(&f.blkmap);
    fsck_map_free(&f.dxmap);
    fsck_map_free(&f.logx);
    fsck_map_free(&f.live_inodes);
    free(f.lf);
    free(f.lx);
    return rc;
}

/* RES (or a local one if NULL) zeroed, as the entry points promise. */
static struct cow_fsck_result *result_init(struct cow_fsck_result *res,
                                           struct cow_fsck_result *dummy)
{
    if (!res)
        res = dummy;
    memset(res, 0, sizeof(*res));
    res->sb_copy = -1;
    return res;
}

int cow_fsck_src_progress(const struct cow_fsck_src *src, unsigned flags, FILE *out,
                          struct cow_fsck_result *res, cow_fsck_progress_fn cb, void *arg)
{
    struct cow_fsck_result dummy;
    res = result_init(res, &dummy);
    int rc = fsck_src_valid(src, out);
    return rc ? rc : fsck_src(src, NULL, flags, out, res, cb, arg);
}

int cow_fsck_progress(const char *path, unsigned flags, FILE *out, struct cow_fsck_result *res,
                      cow_fsck_progress_fn cb, void *arg)
{
    struct cow_fsck_result dummy;
    res = result_init(res, &dummy);
    struct fsck_file file;
    int rc = fsck_open_container(path, &file, out);
    if (rc)
        return rc;
    rc = fsck_src(&file.src, file.locked ? NULL : path, flags, out, res, cb, arg);
    fsck_close_container(&file); /* drops the flock */
    return rc;
}
