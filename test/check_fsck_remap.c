/*
 * check_fsck_remap.c - fsck and dump read format version 3: device_bytes
 * (a file shorter than total_bytes) and the remap tree (store/format.h,
 * REMAP_ITEM), with every read of a tree or data block translated through
 * the remap runs, and each rule of format.h reported when broken; and fsck
 * and dump of a container read through a source (struct cow_fsck_src).
 *
 * The images are made by hand from a store's container: its trees are
 * walked here (independently of fsck) to find the used blocks, then a
 * remap tree leaf is written into a free metadata block (accounted in its
 * block group and bytes_used), blocks are moved as relocation moves them
 * (copied to free space, the old place overwritten with garbage, so that a
 * read not translated fails), and the superblock in use points at the
 * leaf.  Each broken rule is one such image with one thing changed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"
#include "store.h"
#include "testutil.h"
#include "../tools/fsck.h"

#define BLK COW_BLOCK_SIZE
#define MAX_EXT 64
#define MAX_BG 256

/* What the image holds, found by walking its trees from the superblock. */
struct layout {
    int sb;                   /* the superblock copy in use */
    uint64_t gen, bg_size, total, len;
    uint8_t *used;            /* one byte per block of the file: 1 = used */
    uint64_t ext[MAX_EXT][2]; /* data extents: bytenr, bytes */
    int next;
    uint64_t fs_leaf;         /* the first leaf of subvolume 256 */
    struct {
        uint64_t start, len, flags;
        uint64_t leaf; /* the extent tree leaf holding the item */
        unsigned off;  /* and the item's data offset in it */
    } bg[MAX_BG];
    int nbg;
    uint64_t log[2];
    uint32_t log_blocks;
    uint64_t remap_leaf; /* where prepare() put the remap tree's leaf */
};

static void tb_recsum(uint8_t *b)
{
    put32(b + TB_CSUM, crc32c(0, b + 4, BLK - 4));
}

static void mark(struct layout *l, uint64_t at, uint64_t len)
{
    for (uint64_t b = at / BLK; b < (at + len) / BLK && b < l->len / BLK; b++)
        l->used[b] = 1;
}

/* Walks the tree block at BYTENR (subvolume tree of ID when ID >= 256). */
static void walk(const uint8_t *img, struct layout *l, uint64_t bytenr, uint64_t id)
{
    ck_assert_uint_lt(bytenr + BLK, l->len + 1);
    const uint8_t *b = img + bytenr;
    ck_assert_uint_eq(get32(b + TB_MAGIC), COW_TREE_MAGIC);
    mark(l, bytenr, BLK);
    unsigned n = tb_nritems(b);
    if (tb_level(b)) {
        for (unsigned i = 0; i < n; i++)
            walk(img, l, node_child(b, i), id);
        return;
    }
    if (id == COW_FS_TREE_OBJECTID && !l->fs_leaf)
        l->fs_leaf = bytenr;
    for (unsigned i = 0; i < n; i++) {
        struct cow_key k;
        key_get(&k, leaf_item(b, i));
        const uint8_t *p = b + leaf_data_off(b, i);
        if (k.type == COW_EXTENT_ITEM) {
            ck_assert_int_lt(l->next, MAX_EXT);
            l->ext[l->next][0] = k.objectid;
            l->ext[l->next][1] = k.offset;
            l->next++;
            mark(l, k.objectid, k.offset);
        } else if (k.type == COW_BLOCK_GROUP_ITEM) {
            ck_assert_int_lt(l->nbg, MAX_BG);
            l->bg[l->nbg].start = k.objectid;
            l->bg[l->nbg].len = k.offset;
            l->bg[l->nbg].flags = get64(p + BG_FLAGS);
            l->bg[l->nbg].leaf = bytenr;
            l->bg[l->nbg].off = leaf_data_off(b, i);
            l->nbg++;
        } else if (k.type == COW_ROOT_ITEM) {
            walk(img, l, get64(p + ROOT_BYTENR), k.objectid);
        }
    }
}

/* Fills L from IMG (LEN bytes): the copy in use, the used blocks. */
static void survey(const uint8_t *img, size_t len, struct layout *l)
{
    memset(l, 0, sizeof *l);
    l->len = len;
    l->used = calloc(len / BLK + 1, 1);
    ck_assert_ptr_nonnull(l->used);
    l->sb = get64(img + BLK + SB_GENERATION) > get64(img + SB_GENERATION);
    const uint8_t *sb = img + (size_t)l->sb * BLK;
    l->gen = get64(sb + SB_GENERATION);
    l->bg_size = get64(sb + SB_BG_SIZE);
    l->total = get64(sb + SB_TOTAL_BYTES);
    l->log[0] = get64(sb + SB_LOG_AREA0);
    l->log[1] = get64(sb + SB_LOG_AREA1);
    l->log_blocks = get32(sb + SB_LOG_BLOCKS);
    mark(l, 0, 2 * BLK);
    for (int k = 0; k < 2; k++)
        mark(l, l->log[k], (uint64_t)l->log_blocks * BLK);
    walk(img, l, get64(sb + SB_ROOT_TREE), COW_ROOT_TREE_OBJECTID);
    walk(img, l, get64(sb + SB_EXTENT_TREE), COW_EXTENT_TREE_OBJECTID);
    walk(img, l, get64(sb + SB_CSUM_TREE), COW_CSUM_TREE_OBJECTID);
    ck_assert_uint_ne(l->fs_leaf, 0);
}

/* Takes the first run of N free blocks inside one block group of type
 * FLAGS (or a mixed one) below the end of the file: marks it used in L
 * (so that the next call finds other space) and returns it; fails the test
 * if there is none. */
static uint64_t free_run(struct layout *l, uint64_t flags, uint64_t n)
{
    for (int g = 0; g < l->nbg; g++) {
        if (!(l->bg[g].flags & flags))
            continue;
        uint64_t end = l->bg[g].start + l->bg[g].len;
        if (end > l->len)
            end = l->len;
        for (uint64_t at = l->bg[g].start; at + n * BLK <= end; at += BLK) {
            int ok = 1;
            for (uint64_t b = 0; b < n && ok; b++)
                ok = !l->used[at / BLK + b];
            if (ok) {
                mark(l, at, n * BLK);
                return at;
            }
        }
    }
    ck_abort_msg("no run of %llu free blocks in a group of flags %llu", (unsigned long long)n,
                 (unsigned long long)flags);
    return 0;
}

static int group_of(const struct layout *l, uint64_t at)
{
    for (int g = 0; g < l->nbg; g++)
        if (at >= l->bg[g].start && at < l->bg[g].start + l->bg[g].len)
            return g;
    ck_abort_msg("no block group holds %llu", (unsigned long long)at);
    return -1;
}

/* A store's container: a file written over three commits (three data
 * extents of two blocks, the lowest ones), then a second file of a block
 * group and a bit, cut to nothing, so that the container has two groups at
 * least and free space high up; no log.  *LEN its length. */
static uint8_t *store_image(size_t *len)
{
    struct cow_dev *dev;
    struct cow_file *f, *big;
    struct cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    uint8_t buf[64 * 1024];
    uint64_t rs = 11;
    for (int i = 0; i < 3; i++) {
        test_fill(&rs, buf, 2 * BLK);
        ck_assert_int_eq(cow_file_write(f, buf, 2 * BLK, (uint64_t)i * 2 * BLK), COW_OK);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
    }
    ck_assert_int_eq(cow_file_open(st, "big", 1, &big), COW_OK);
    for (uint64_t off = 0; off < COW_DEFAULT_BG_SIZE + sizeof buf; off += sizeof buf) {
        test_fill(&rs, buf, sizeof buf);
        ck_assert_int_eq(cow_file_write(big, buf, sizeof buf, off), COW_OK);
    }
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_int_eq(cow_file_truncate(big, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint8_t *img = memdev_crash_image(dev, len);
    cow_file_close(big);
    cow_file_close(f);
    cow_store_close(st);
    ck_assert_uint_eq(get32(img + SB_VERSION), COW_FORMAT_VERSION);
    return img;
}

/* The superblock copy in use of IMG. */
static uint8_t *sb_of(uint8_t *img, const struct layout *l)
{
    return img + (size_t)l->sb * BLK;
}

static void sb_recsum(uint8_t *sb)
{
    put32(sb + SB_CSUM, crc32c(0, sb + 4, BLK - 4));
}

/*
 * Makes the copy in use of IMG a plain two-flush commit (no commit list, so
 * that blocks may change under it) with device_bytes the file's length.
 * L gets the layout.
 */
static void normalize(uint8_t *img, size_t len, struct layout *l)
{
    survey(img, len, l);
    uint8_t *sb = sb_of(img, l);
    put32(sb + SB_FLAGS, 0);
    memset(sb + SB_COMMIT_NRANGES, 0, 8);
    memset(sb + SB_COMMIT_LIST, 0, BLK - SB_COMMIT_LIST);
    put64(sb + SB_DEVICE_BYTES, len);
    sb_recsum(sb);
}

/* A remap tree of one empty leaf in a free metadata block of IMG (L its
 * layout), accounted in its group and in bytes_used. */
static void add_remap_tree(uint8_t *img, struct layout *l)
{
    uint8_t *sb = sb_of(img, l);
    uint64_t r = free_run(l, COW_BG_METADATA, 1);
    l->remap_leaf = r;
    int g = group_of(l, r);
    uint8_t *eb = img + l->bg[g].leaf;
    put64(eb + l->bg[g].off + BG_USED, get64(eb + l->bg[g].off + BG_USED) + BLK);
    tb_recsum(eb);
    put64(sb + SB_BYTES_USED, get64(sb + SB_BYTES_USED) + BLK);
    put64(sb + SB_REMAP_TREE + RR_BYTENR, r);
    put48(sb + SB_REMAP_TREE + RR_GENERATION, l->gen);
    sb[SB_REMAP_TREE + RR_LEVEL] = 0;
    sb_recsum(sb);
}

/* normalize() and add_remap_tree(). */
static void prepare(uint8_t *img, size_t len, struct layout *l)
{
    normalize(img, len, l);
    add_remap_tree(img, l);
}

/* One item of the remap leaf: a REMAP_ITEM unless TYPE says otherwise. */
struct item {
    uint64_t logical, len, physical;
    uint8_t type; /* 0: REMAP_ITEM */
};

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    struct cow_key kx = {x->logical, x->type ? x->type : COW_REMAP_ITEM, x->len};
    struct cow_key ky = {y->logical, y->type ? y->type : COW_REMAP_ITEM, y->len};
    return key_cmp(&kx, &ky);
}

/* Writes the remap leaf with the N (at most 8) items of IT, in key order,
 * and owner OWNER (0: the remap tree's). */
static void remap_leaf(uint8_t *img, const struct layout *l, const struct item *items,
                       unsigned n, uint64_t owner)
{
    uint8_t *b = img + l->remap_leaf;
    struct item it[8];
    ck_assert_uint_le(n, 8);
    if (n)
        memcpy(it, items, n * sizeof *it);
    qsort(it, n, sizeof *it, item_cmp);
    memset(b, 0, BLK);
    put32(b + TB_MAGIC, COW_TREE_MAGIC);
    put64(b + TB_BYTENR, l->remap_leaf);
    put64(b + TB_GENERATION, l->gen);
    put64(b + TB_OWNER, owner ? owner : COW_REMAP_TREE_OBJECTID);
    put32(b + TB_NRITEMS, n);
    b[TB_LEVEL] = 0;
    unsigned end = BLK;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *h = b + TB_HEADER_SIZE + i * COW_ITEM_SIZE;
        struct cow_key k = {it[i].logical, it[i].type ? it[i].type : COW_REMAP_ITEM, it[i].len};
        unsigned size = it[i].type == COW_EXTENT_ITEM ? EXT_ITEM_SIZE : REMAP_ITEM_SIZE;
        end -= size;
        key_put(h, &k);
        put16(h + 17, (uint16_t)end);
        put16(h + 19, (uint16_t)size);
        memset(b + end, 0, size);
        if (it[i].type == COW_EXTENT_ITEM) {
            put64(b + end + EXT_REFS, 1);
            put64(b + end + EXT_FLAGS, COW_EXT_FLAG_DATA);
        } else {
            put64(b + end + REMAP_PHYSICAL, it[i].physical);
        }
    }
    tb_recsum(b);
}

/* Moves LEN bytes from FROM to TO as relocation does: copied, and the old
 * place overwritten (its blocks are physically free now). */
static void move(uint8_t *img, uint64_t from, uint64_t to, uint64_t len)
{
    memmove(img + to, img + from, len);
    memset(img + from, 0xa5, len);
}

/*
 * The standard image: data extent 0 moved to a free data run, the first
 * leaf of subvolume 256 moved to a free metadata block.  IT gets the two
 * items (N = 2), L the layout.
 */
static uint8_t *remapped_image(size_t *len, struct layout *l, struct item it[2])
{
    uint8_t *img = store_image(len);
    prepare(img, *len, l);
    ck_assert_int_ge(l->next, 2);
    uint64_t e = l->ext[0][0], n = l->ext[0][1];
    uint64_t p = free_run(l, COW_BG_DATA, n / BLK);
    uint64_t q = free_run(l, COW_BG_METADATA, 1);
    move(img, e, p, n);
    move(img, l->fs_leaf, q, BLK);
    it[0] = (struct item){e, n, p, 0};
    it[1] = (struct item){l->fs_leaf, BLK, q, 0};
    remap_leaf(img, l, it, 2, 0);
    return img;
}

static void progress_cb(void *arg, uint64_t done, uint64_t total)
{
    (void)total;
    uint64_t *last = arg;
    ck_assert_uint_ge(done, *last);
    *last = done;
}

/* fsck (with data) of IMG: its result in *RES, its report (the caller
 * frees it), checking that the progress callback is told. */
static char *fsck_img(const uint8_t *img, size_t len, struct cow_fsck_result *res)
{
    char *dir = test_mkdtemp();
    char p[4200];
    snprintf(p, sizeof p, "%s/image.cow", dir);
    test_write_file(p, img, len);
    char *report;
    size_t rlen;
    FILE *out = open_memstream(&report, &rlen);
    ck_assert_ptr_nonnull(out);
    uint64_t done = 0;
    int rc = cow_fsck_progress(p, COW_FSCK_DATA | COW_FSCK_NOTES, out, res, progress_cb, &done);
    fclose(out);
    test_rmdir(dir);
    ck_assert_int_ge(rc, 0);
    if (res->sb_copy >= 0)
        ck_assert_uint_gt(done, 0);
    return report;
}

static void expect_clean(const uint8_t *img, size_t len, struct cow_fsck_result *res)
{
    char *report = fsck_img(img, len, res);
    ck_assert_msg(res->problems == 0, "fsck found problems:\n%s", report);
    free(report);
}

static void expect_problem(const uint8_t *img, size_t len, const char *want)
{
    struct cow_fsck_result res;
    char *report = fsck_img(img, len, &res);
    ck_assert_msg(res.problems > 0 && strstr(report, want),
                  "expected a problem naming '%s'; fsck said:\n%s", want, report);
    free(report);
}

/* cow_dump of IMG; the caller frees the listing. */
static char *dump_img(const uint8_t *img, size_t len)
{
    char *dir = test_mkdtemp();
    char p[4200];
    snprintf(p, sizeof p, "%s/image.cow", dir);
    test_write_file(p, img, len);
    char *listing;
    size_t llen;
    FILE *out = open_memstream(&listing, &llen);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(cow_dump(p, 0, UINT64_MAX, out), 0);
    fclose(out);
    test_rmdir(dir);
    return listing;
}

/* A data extent and a tree block moved: fsck reads them where the remap
 * tree says (their old places hold garbage), and finds nothing wrong. */
START_TEST(fsck_remap_valid)
{
    size_t len;
    struct layout l;
    struct item it[2];
    uint8_t *img = remapped_image(&len, &l, it);
    struct cow_fsck_result res;
    expect_clean(img, len, &res);
    ck_assert_uint_eq(res.format_version, 3);
    ck_assert_uint_eq(res.device_bytes, len);
    ck_assert_uint_eq(res.remap_items, 2);
    ck_assert_uint_eq(res.remapped_bytes, l.ext[0][1] + BLK);
    ck_assert_uint_ge(res.data_blocks_verified, 6);
    ck_assert_uint_eq(res.physical_bytes, res.bytes_used); /* each block once */
    /* the moved blocks' old places really hold garbage */
    ck_assert_uint_ne(get32(img + it[0].logical + 8), get32(img + it[0].physical + 8));
    /* the dump shows the fields, the remap tree and where blocks are */
    char *d = dump_img(img, len), want[160];
    snprintf(want, sizeof want, "device_bytes %zu", len);
    ck_assert_msg(strstr(d, want), "dump lacks '%s':\n%s", want, d);
    snprintf(want, sizeof want, "remap tree  bytenr %llu", (unsigned long long)l.remap_leaf);
    ck_assert_msg(strstr(d, want), "dump lacks '%s':\n%s", want, d);
    for (int i = 0; i < 2; i++) {
        snprintf(want, sizeof want, "logical %llu length %llu -> physical %llu",
                 (unsigned long long)it[i].logical, (unsigned long long)it[i].len,
                 (unsigned long long)it[i].physical);
        ck_assert_msg(strstr(d, want), "dump lacks '%s':\n%s", want, d);
    }
    snprintf(want, sizeof want, "leaf %llu (stored at %llu)", (unsigned long long)l.fs_leaf,
             (unsigned long long)(it[0].logical == l.fs_leaf ? it[0].physical : it[1].physical));
    ck_assert_msg(strstr(d, want), "dump lacks '%s':\n%s", want, d);
    free(d);
    free(l.used);
    free(img);
}
END_TEST

/* A target may land where a block's content was moved away from: data
 * extent 0 goes to extent 1's logical place, extent 1 to free space. */
START_TEST(fsck_remap_onto_moved_away_block)
{
    size_t len;
    struct layout l;
    uint8_t *img = store_image(&len);
    prepare(img, len, &l);
    int a = 0, b = -1;
    for (int i = 1; i < l.next && b < 0; i++)
        if (l.ext[i][1] == l.ext[a][1])
            b = i;
    ck_assert_int_ge(b, 0);
    uint64_t n = l.ext[a][1], la = l.ext[a][0], lb = l.ext[b][0];
    uint64_t p = free_run(&l, COW_BG_DATA, n / BLK);
    move(img, lb, p, n);
    move(img, la, lb, n);
    struct item it[2] = {{la, n, lb, 0}, {lb, n, p, 0}};
    remap_leaf(img, &l, it, 2, 0);
    struct cow_fsck_result res;
    expect_clean(img, len, &res);
    ck_assert_uint_eq(res.remapped_bytes, 2 * n);
    /* and one of the moves without the other: two blocks in one place */
    struct item one[1] = {{la, n, lb, 0}};
    remap_leaf(img, &l, one, 1, 0);
    expect_problem(img, len, "hold both");
    free(l.used);
    free(img);
}
END_TEST

/* Rewrites the copy in use of IMG (version 3, no commit list, no remap
 * tree) as version 2 wrote it: the bytes of device_bytes and the remap
 * tree's root are part of its (empty) commit list. */
static void to_v2(uint8_t *img, const struct layout *l)
{
    uint8_t *sb = sb_of(img, l);
    memset(sb + SB_COMMIT_LIST_V2, 0, BLK - SB_COMMIT_LIST_V2);
    put32(sb + SB_VERSION, COW_FORMAT_VERSION_2);
    sb_recsum(sb);
}

/* The end of the highest used block of L. */
static uint64_t used_end(const struct layout *l)
{
    uint64_t end = 0;
    for (uint64_t b = 0; b < l->len / BLK; b++)
        if (l->used[b])
            end = (b + 1) * BLK;
    return end;
}

/*
 * Version 3 lets the file end at device_bytes, below total_bytes (here the
 * standard image, cut after the last block anything is stored in); not
 * below device_bytes, and no used block may be stored at or past it.
 * Version 2 keeps the old rule: the file covers total_bytes.  An empty
 * remap tree is legal.
 */
START_TEST(fsck_remap_device_bytes)
{
    size_t len;
    struct layout l;
    struct item it[2];
    struct cow_fsck_result res;
    uint8_t *img = remapped_image(&len, &l, it);
    for (int i = 0; i < 2; i++) /* stored elsewhere now */
        for (uint64_t b = it[i].logical / BLK; b < (it[i].logical + it[i].len) / BLK; b++)
            l.used[b] = 0;
    uint64_t u = used_end(&l);
    ck_assert_uint_lt(u, len);
    uint8_t *sb = sb_of(img, &l);
    put64(sb + SB_DEVICE_BYTES, u);
    sb_recsum(sb);
    expect_clean(img, len, &res); /* a longer file is legal */
    expect_clean(img, u, &res);   /* the file ends at device_bytes */
    ck_assert_uint_eq(res.device_bytes, u);
    ck_assert_uint_gt(res.total_bytes, u);
    ck_assert_uint_eq(res.remap_items, 2);
    expect_problem(img, u - BLK, "container file is truncated");
    put64(sb + SB_DEVICE_BYTES, u - BLK);
    sb_recsum(sb);
    expect_problem(img, len, "beyond device_bytes");
    free(img);
    free(l.used);
    /* an empty remap tree */
    img = store_image(&len);
    prepare(img, len, &l);
    remap_leaf(img, &l, NULL, 0, 0);
    expect_clean(img, len, &res);
    ck_assert_uint_eq(res.remap_items, 0);
    free(img);
    free(l.used);
    /* version 2: the file must reach total_bytes */
    img = store_image(&len);
    normalize(img, len, &l);
    to_v2(img, &l);
    expect_clean(img, len, &res);
    ck_assert_uint_eq(res.format_version, 2);
    ck_assert_uint_eq(res.device_bytes, res.total_bytes);
    ck_assert_uint_le(res.total_bytes, len);
    expect_problem(img, res.total_bytes - BLK, "container file is truncated");
    free(img);
    free(l.used);
}
END_TEST

/* The superblock's version-3 fields out of range: the copy is refused
 * (the older one is used), and fsck says why. */
START_TEST(fsck_remap_superblock_fields)
{
    static const struct {
        unsigned off, size;
        uint64_t value; /* UINT64_MAX: total_bytes + 4096 */
        const char *want;
    } cases[] = {
        {SB_DEVICE_BYTES, 8, 4097, "device_bytes 4097 is not a multiple of 4096"},
        {SB_DEVICE_BYTES, 8, 4096, "device_bytes 4096 is not a multiple of 4096 in 8192"},
        {SB_DEVICE_BYTES, 8, UINT64_MAX, "(total_bytes)"},
        {SB_PREV_LOG_RECORDS + 4, 4, 1, "reserved or unused bytes"},
        {BLK - 4, 4, 1, "reserved or unused bytes"},
        {SB_REMAP_TREE + RR_BYTENR, 8, 4096 + 100, "remap tree root at 4196"},
        {SB_REMAP_TREE + RR_LEVEL, 1, COW_MAX_LEVEL, "remap tree root level"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        struct layout l;
        struct item it[2];
        uint8_t *img = remapped_image(&len, &l, it);
        uint8_t *sb = sb_of(img, &l);
        uint64_t v = cases[i].value == UINT64_MAX ? get64(sb + SB_TOTAL_BYTES) + BLK
                                                  : cases[i].value;
        if (cases[i].size == 8)
            put64(sb + cases[i].off, v);
        else if (cases[i].size == 4)
            put32(sb + cases[i].off, (uint32_t)v);
        else
            sb[cases[i].off] = (uint8_t)v;
        sb_recsum(sb);
        expect_problem(img, len, cases[i].want);
        free(img);
        free(l.used);
    }
}
END_TEST

/*
 * Each rule of a REMAP_ITEM (format.h) broken in the standard image (data
 * extent 0 and a leaf of subvolume 256 moved), one per loop index.
 */
START_TEST(fsck_remap_item_rules)
{
    size_t len;
    struct layout l;
    struct item it[4];
    uint8_t *img = remapped_image(&len, &l, it);
    unsigned n = 2;
    uint64_t owner = 0;
    const char *want = NULL;
    char buf[128];
    uint64_t bg = l.bg_size;
    switch (_i) {
    case 0:
        it[1].len = 0;
        want = "length 0 is not a positive multiple of 4096";
        break;
    case 1:
        it[1].len = 6000;
        want = "length 6000 is not a positive multiple of 4096";
        break;
    case 2:
        it[1].logical += 100;
        want = "is not a block address";
        break;
    case 3:
        it[0].physical += 100;
        want = "physical address";
        break;
    case 4:
        it[0].physical = it[0].logical;
        want = "is the logical one";
        break;
    case 5: /* a logical run over the end of group 0 */
        it[n++] = (struct item){bg - BLK, 2 * BLK, free_run(&l, COW_BG_DATA, 2), 0};
        want = "logical run";
        break;
    case 6: /* a physical run over the end of group 0 */
        ck_assert_uint_gt(len, bg + BLK);
        it[0].physical = bg - BLK;
        want = "crosses a block group boundary";
        break;
    case 7:
        it[0].physical = len;
        want = "ends beyond device_bytes";
        break;
    case 8:
        it[n++] = (struct item){l.total, BLK, free_run(&l, COW_BG_DATA, 1), 0};
        want = "ends beyond total_bytes";
        break;
    case 9: /* a second run over the second block of data extent 0 */
        it[n++] = (struct item){it[0].logical + BLK, BLK, free_run(&l, COW_BG_DATA, 1), 0};
        want = "overlaps the logical run";
        break;
    case 10: { /* a free block remapped */
        uint64_t f = free_run(&l, COW_BG_DATA, 1);
        it[n++] = (struct item){f, BLK, free_run(&l, COW_BG_DATA, 1), 0};
        want = "which is not used";
        break;
    }
    case 11:
        it[n++] = (struct item){0, BLK, free_run(&l, COW_BG_METADATA, 1), 0};
        want = "remaps superblock range [0, 8192), which never moves";
        break;
    case 12:
        ck_assert_uint_ne(l.log_blocks, 0);
        it[n++] = (struct item){l.log[0], BLK, free_run(&l, COW_BG_METADATA, 1), 0};
        want = "remaps log area 0";
        break;
    case 13:
        it[n++] = (struct item){l.remap_leaf, BLK, free_run(&l, COW_BG_METADATA, 1), 0};
        want = "remaps remap tree block";
        break;
    case 14: /* two runs to one place */
        ck_assert_uint_eq(l.ext[1][1], it[0].len);
        it[n++] = (struct item){l.ext[1][0], l.ext[1][1], it[0].physical, 0};
        want = "hold both";
        break;
    case 15: /* a run onto a used block that stays where it is */
        it[0].physical = l.ext[1][0];
        want = "(not remapped)";
        break;
    case 16:
        it[n++] = (struct item){it[1].logical, BLK, 0, COW_EXTENT_ITEM};
        want = "does not belong in the remap tree";
        break;
    case 17:
        owner = COW_EXTENT_TREE_OBJECTID;
        want = "owner 2, expected 9";
        break;
    case 18: /* the target does not hold the data */
        it[0].physical = free_run(&l, COW_BG_DATA, it[0].len / BLK);
        want = "fail their checksum";
        break;
    case 19: /* the target does not hold the tree block */
        it[1].physical = free_run(&l, COW_BG_METADATA, 1);
        memset(img + it[1].physical, 0x5a, BLK);
        snprintf(buf, sizeof buf, "tree block %llu (stored at %llu): bad checksum",
                 (unsigned long long)it[1].logical, (unsigned long long)it[1].physical);
        want = buf;
        break;
    case 20: /* a target on a log area */
        it[1].physical = l.log[1];
        want = "hold both";
        break;
    default:
        ck_abort_msg("no case %d", _i);
    }
    remap_leaf(img, &l, it, n, owner);
    expect_problem(img, len, want);
    free(img);
    free(l.used);
}
END_TEST

/* The address of the data extent whose EXTENT_CSUM the first record of
 * the log of IMG's copy in use carries. */
static uint64_t logged_extent(const uint8_t *img, const struct layout *l)
{
    const uint8_t *r = img + l->log[l->sb];
    ck_assert_uint_eq(get32(r + LOG_MAGIC), COW_LOG_MAGIC);
    size_t pos = LOG_HEADER_SIZE, end = (size_t)get32(r + LOG_NBLOCKS) * BLK;
    for (uint32_t i = 0; i < get32(r + LOG_NITEMS) && pos + LOG_ITEM_HEADER <= end; i++) {
        struct cow_key k;
        key_get(&k, r + pos);
        if (k.type == COW_EXTENT_CSUM)
            return k.offset;
        pos += LOG_ITEM_HEADER + get16(r + pos + COW_KEY_SIZE);
    }
    ck_abort_msg("no EXTENT_CSUM in the first log record");
    return 0;
}

/*
 * A log record pending replay: its data, read through the remap runs, is
 * legal next to a moved extent; a new extent of the log stored where a
 * remap run put committed blocks is a problem (the allocator must avoid
 * physically used space).
 */
START_TEST(fsck_remap_log)
{
    size_t len;
    struct layout l;
    struct cow_dev *dev;
    struct cow_file *f;
    struct cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    uint8_t buf[2 * BLK];
    uint64_t rs = 5;
    test_fill(&rs, buf, sizeof buf);
    ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, 0), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t g = cow_store_generation(st);
    test_fill(&rs, buf, sizeof buf);
    ck_assert_int_eq(cow_file_write(f, buf, BLK, 4 * BLK), COW_OK);
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_uint_eq(cow_store_generation(st), g); /* through the log */
    uint8_t *img = memdev_crash_image(dev, &len);
    cow_file_close(f);
    cow_store_close(st);
    normalize(img, len, &l);
    uint64_t x = logged_extent(img, &l);
    ck_assert(!l.used[x / BLK]); /* new space, not the commit's */
    l.used[x / BLK] = 1;
    add_remap_tree(img, &l);
    uint64_t e = l.ext[0][0], n = l.ext[0][1];
    uint64_t p = free_run(&l, COW_BG_DATA, n / BLK);
    move(img, e, p, n);
    struct item it[1] = {{e, n, p, 0}};
    remap_leaf(img, &l, it, 1, 0);
    struct cow_fsck_result res;
    expect_clean(img, len, &res);
    ck_assert_uint_eq(res.log_records, 1);
    /* the extent's target where the log's new extent is */
    it[0].physical = x;
    remap_leaf(img, &l, it, 1, 0);
    expect_problem(img, len, "is stored where REMAP_ITEM");
    free(img);
    free(l.used);
}
END_TEST

/*
 * Hostile REMAP_ITEMs: values at the edges (0, unaligned, near 2^64, at
 * total_bytes and device_bytes, onto used blocks), several per leaf, one
 * always out of range: fsck and dump end, without a sanitizer report, and
 * fsck reports a problem.  The seed is printed (test_seed()).
 */
START_TEST(fsck_remap_hostile_items)
{
    size_t len;
    struct layout l;
    struct item base[2];
    uint8_t *img = remapped_image(&len, &l, base);
    uint64_t rs = test_seed() ^ 0xf5c4;
    const uint64_t edge[] = {0, BLK, 100, l.fs_leaf, l.ext[0][0], l.ext[1][0], l.total - BLK,
                             l.total, len - BLK, len, l.bg_size - BLK, l.remap_leaf,
                             UINT64_MAX, UINT64_MAX - BLK + 1, 1ull << 63, 2 * BLK};
    const uint64_t bad_len[] = {0, 6000, 1ull << 63, UINT64_MAX - BLK + 1};
    size_t ne = sizeof edge / sizeof edge[0];
    for (int round = 0; round < 60; round++) {
        struct item it[6];
        unsigned n = 1 + (unsigned)(test_rand(&rs) % 6);
        for (unsigned i = 0; i < n; i++) {
            it[i].logical = edge[test_rand(&rs) % ne];
            it[i].len = test_rand(&rs) % 2 ? BLK * (1 + test_rand(&rs) % 4) : edge[test_rand(&rs) % ne];
            it[i].physical = edge[test_rand(&rs) % ne];
            it[i].type = 0;
        }
        it[0].len = bad_len[test_rand(&rs) % 4];
        for (unsigned i = 1; i < n; i++) /* keys are unique in a tree */
            if (it[i].logical == it[0].logical && it[i].len == it[0].len)
                it[i].logical ^= BLK;
        for (unsigned i = 0; i < n; i++)
            for (unsigned j = 0; j < i; j++)
                if (it[i].logical == it[j].logical && it[i].len == it[j].len)
                    it[i].len += BLK;
        remap_leaf(img, &l, it, n, 0);
        struct cow_fsck_result res;
        char *report = fsck_img(img, len, &res);
        ck_assert_msg(res.problems > 0, "round %d: no problem found:\n%s", round, report);
        free(report);
        free(dump_img(img, len));
    }
    free(img);
    free(l.used);
}
END_TEST

/* The first REMAP_ITEM of IMG's remap tree (its blocks are at their own
 * address): *LOGICAL, *PHYSICAL. */
static void first_remap(const uint8_t *img, size_t len, uint64_t *logical, uint64_t *physical)
{
    int c = get64(img + BLK + SB_GENERATION) > get64(img + SB_GENERATION);
    uint64_t at = get64(img + (size_t)c * BLK + SB_REMAP_TREE + RR_BYTENR);
    for (;;) {
        ck_assert_uint_ne(at, 0);
        ck_assert_uint_le(at + BLK, len);
        const uint8_t *b = img + at;
        ck_assert_uint_gt(tb_nritems(b), 0);
        if (tb_level(b) == 0) {
            struct cow_key k;
            key_get(&k, leaf_item(b, 0));
            ck_assert_uint_eq(k.type, COW_REMAP_ITEM);
            *logical = k.objectid;
            *physical = get64(b + leaf_data_off(b, 0) + REMAP_PHYSICAL);
            return;
        }
        at = node_child(b, 0);
    }
}

/*
 * A container the store relocated (cow_store_balance after churn): fsck
 * is clean, also with the file cut to device_bytes; dump shows its runs;
 * a byte flipped where a run's blocks now are is found (the reads really
 * go there).
 */
START_TEST(fsck_remap_store_balance)
{
    struct cow_dev *dev;
    struct cow_file *f;
    struct cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    size_t chunk = 256 * 1024;
    uint8_t *buf = malloc(chunk);
    uint64_t rs = 23;
    for (int round = 0; round < 3; round++)
        for (size_t off = 0; off < (round ? 2u : 6u) << 20; off += chunk) {
            test_fill(&rs, buf, chunk);
            ck_assert_int_eq(cow_file_write(f, buf, chunk, off), COW_OK);
            ck_assert_int_eq(cow_store_commit(st), COW_OK);
        }
    free(buf);
    ck_assert_int_eq(cow_file_truncate(f, 2u << 20), COW_OK);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    struct cow_balance_opts o = {100, 0, NULL, NULL};
    struct cow_balance_result r;
    ck_assert_msg(cow_store_balance(st, &o, &r) == COW_OK, "balance: %s",
                  cow_store_last_error(st));
    ck_assert_uint_gt(r.bytes_moved, 0);
    struct cow_df df;
    ck_assert_int_eq(cow_store_df(st, &df), COW_OK);
    size_t len;
    uint8_t *img = memdev_crash_image(dev, &len);
    cow_file_close(f);
    cow_store_close(st);

    struct cow_fsck_result res;
    expect_clean(img, len, &res);
    ck_assert_uint_gt(res.remap_items, 0);
    ck_assert_uint_gt(res.remapped_bytes, 0);
    /* the store's accounting and fsck's, computed apart, agree */
    ck_assert_uint_eq(res.remapped_bytes, df.remapped_bytes);
    ck_assert_uint_eq(res.physical_bytes, df.physical_bytes);
    ck_assert_uint_eq(res.bytes_used, df.used_bytes);
    ck_assert_uint_lt(res.device_bytes, res.total_bytes);
    ck_assert_uint_le(res.device_bytes, len);
    expect_clean(img, res.device_bytes, &res);
    char *d = dump_img(img, len);
    ck_assert_msg(strstr(d, " -> physical "), "dump shows no remap run:\n%.4000s", d);
    free(d);

    uint64_t logical, physical;
    first_remap(img, len, &logical, &physical);
    img[physical + 100] ^= 0x10;
    char *report = fsck_img(img, len, &res);
    char where[64];
    snprintf(where, sizeof where, "(stored at %llu): bad checksum", (unsigned long long)physical);
    ck_assert_msg(res.problems > 0 && (strstr(report, "fail their checksum") || strstr(report, where)),
                  "a flipped byte in the run of %llu at %llu: fsck said:\n%s",
                  (unsigned long long)logical, (unsigned long long)physical, report);
    free(report);
    free(img);
}
END_TEST

/* An image in memory as a struct cow_fsck_src: every read must lie inside
 * it; a read covering FAIL_AT (UINT64_MAX: none) fails with EIO.  With
 * READV, it has a readv too (each range read as by read, last first),
 * which notes where its first range began (READV_AT). */
struct memsrc {
    const uint8_t *img;
    size_t len;
    uint64_t fail_at;
    uint64_t reads;
    int readv;
    uint64_t readvs, readv_at;
};

static int memsrc_read(void *arg, void *buf, size_t len, uint64_t off)
{
    struct memsrc *m = arg;
    ck_assert_uint_le(off, m->len);
    ck_assert_uint_le(len, m->len - off);
    m->reads++;
    if (m->fail_at >= off && m->fail_at - off < len)
        return EIO;
    memcpy(buf, m->img + off, len);
    return 0;
}

static int memsrc_readv(void *arg, struct cow_fsck_iov *v, size_t n)
{
    struct memsrc *m = arg;
    m->readvs++;
    m->readv_at = n ? v[0].off : UINT64_MAX;
    for (size_t i = n; i-- > 0;)
        v[i].rc = memsrc_read(arg, v[i].buf, v[i].len, v[i].off);
    return 0;
}

/* fsck (with data and notes) or, with DUMP, dump of the source M (named
 * NAME); the report, which the caller frees; fsck's return in *RC. */
static char *src_report(struct memsrc *m, const char *name, int dump, struct cow_fsck_result *res,
                        int *rc)
{
    struct cow_fsck_src src = {memsrc_read, m->len, m, name, m->readv ? memsrc_readv : NULL};
    char *report;
    size_t rlen;
    FILE *out = open_memstream(&report, &rlen);
    ck_assert_ptr_nonnull(out);
    uint64_t done = 0;
    *rc = dump ? cow_dump_src(&src, 0, UINT64_MAX, out)
               : cow_fsck_src_progress(&src, COW_FSCK_DATA | COW_FSCK_NOTES, out, res,
                                       progress_cb, &done);
    fclose(out);
    return report;
}

/*
 * fsck and dump of a source (cow_fsck_src_progress, cow_dump_src) say what
 * they say of the same bytes in a file, reading only inside the source's
 * size; a source whose read fails at a tree block gives a problem there,
 * as a file's would; a source without a read function is refused.
 */
START_TEST(fsck_remap_source)
{
    size_t len;
    struct layout l;
    struct item it[2];
    uint8_t *img = remapped_image(&len, &l, it);
    char *dir = test_mkdtemp();
    char p[4200];
    snprintf(p, sizeof p, "%s/image.cow", dir);
    test_write_file(p, img, len);
    char *want, *got;
    size_t wlen;
    FILE *out = open_memstream(&want, &wlen);
    struct cow_fsck_result fres, sres;
    int frc = cow_fsck(p, COW_FSCK_DATA | COW_FSCK_NOTES, out, &fres);
    fclose(out);
    struct memsrc m = {img, len, UINT64_MAX, 0, 0, 0, UINT64_MAX};
    int rc;
    got = src_report(&m, p, 0, &sres, &rc);
    ck_assert_int_eq(rc, frc);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(memcmp(&sres, &fres, sizeof sres), 0);
    ck_assert_uint_gt(m.reads, 0);
    free(got);
    char *want_fsck = want;

    out = open_memstream(&want, &wlen);
    ck_assert_int_eq(cow_dump(p, 0, UINT64_MAX, out), 0);
    fclose(out);
    got = src_report(&m, p, 1, NULL, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(got, want);
    free(got);
    free(want);

    /* cut short: reads past its end are the checker's to report */
    m.len = len - BLK;
    got = src_report(&m, "short", 0, &sres, &rc);
    ck_assert_int_gt(rc, 0);
    ck_assert_uint_eq(sres.container_bytes, len - BLK);
    free(got);
    m.len = len;

    /* the moved leaf of subvolume 256 cannot be read */
    m.fail_at = it[1].physical + 100;
    got = src_report(&m, "failing", 0, &sres, &rc);
    ck_assert_msg(rc > 0 && strstr(got, "read failed: Input/output error"),
                  "a read failing at %llu: fsck said:\n%s", (unsigned long long)m.fail_at, got);
    free(got);

    /* with a readv, the data pass's reads go through it, and what fsck
     * says is the same, of a data block that fails its checksum too */
    m.fail_at = UINT64_MAX;
    m.readv = 1;
    got = src_report(&m, p, 0, &sres, &rc);
    ck_assert_int_eq(rc, frc);
    ck_assert_str_eq(got, want_fsck);
    ck_assert_uint_gt(m.readvs, 0);
    free(got);
    ck_assert_uint_lt(m.readv_at, len);
    img[m.readv_at + 7] ^= 0x20;
    char *with = src_report(&m, "flipped", 0, &sres, &rc);
    ck_assert_int_gt(rc, 0);
    ck_assert_msg(strstr(with, "fail their checksum"), "a flipped data block:\n%s", with);
    m.readv = 0;
    char *without = src_report(&m, "flipped", 0, &sres, &rc);
    ck_assert_str_eq(with, without);
    free(with);
    free(without);
    /* a read that fails inside the data pass: the same problem either way */
    m.fail_at = m.readv_at + 100;
    without = src_report(&m, "failing", 0, &sres, &rc);
    m.readv = 1;
    with = src_report(&m, "failing", 0, &sres, &rc);
    ck_assert_msg(strstr(with, "read failed at block"), "a data read failing:\n%s", with);
    ck_assert_str_eq(with, without);
    free(with);
    free(without);
    free(want_fsck);
    m.fail_at = UINT64_MAX;
    m.readv = 0;

    struct cow_fsck_src none = {NULL, len, &m, "none", NULL};
    out = open_memstream(&want, &wlen);
    ck_assert_int_eq(cow_fsck_src_progress(&none, 0, out, &sres, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cow_dump_src(NULL, 0, UINT64_MAX, out), -EINVAL);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(want, "without a read function"));
    free(want);
    test_rmdir(dir);
    free(l.used);
    free(img);
}
END_TEST

Suite *fsck_remap_suite(void)
{
    Suite *s = suite_create("fsck_remap");
    TCase *tc = test_case(s, "fsck_remap", 120, fsck_remap_valid,
                          fsck_remap_onto_moved_away_block, fsck_remap_device_bytes,
                          fsck_remap_superblock_fields, fsck_remap_log,
                          fsck_remap_store_balance, fsck_remap_hostile_items,
                          fsck_remap_source, NULL);
    tcase_add_loop_test(tc, fsck_remap_item_rules, 0, 21);
    return s;
}
