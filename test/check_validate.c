/*
 * check_validate.c - every on-disk field is checked before it is used
 * (store/validate.c, replay.c rec_parse; issue 12 part 3).
 *
 * Each test makes a small container through the store on a memory device,
 * patches one structure in its image (a field of a tree block, an item
 * rebuilt inside its leaf, or a log record), recomputes the block's or
 * record's crc32c so that only the new checks can catch it, and expects
 * COW_ECORRUPT, with a message naming the block (or record) and the
 * field, from the open or from the first operation that uses it; never a
 * sanitizer report, never wrong data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include "cowvfs.h"
#include "crc32c.h"
#include "extent_map.h"
#include "commit.h"
#include "store_int.h"
#include "testutil.h"

#define BLK COW_BLOCK_SIZE
#define MIB (1024u * 1024u)

/* ---- tree blocks in an image ---- */

struct titem {
    struct cow_key k;
    unsigned size;
    uint8_t d[COW_BLOCK_SIZE];
};

static void block_crc(uint8_t *b)
{
    put32(b + TB_CSUM, crc32c(0, b + 4, BLK - 4));
}

static unsigned leaf_decode(const uint8_t *b, struct titem *v)
{
    unsigned n = tb_nritems(b);
    for (unsigned i = 0; i < n; i++) {
        key_get(&v[i].k, leaf_item(b, i));
        v[i].size = leaf_data_size(b, i);
        memcpy(v[i].d, b + leaf_data_off(b, i), v[i].size);
    }
    return n;
}

/* Lays out V[0..N) as the leaf's items (data packed from the end, in item
 * order, as the store writes them) and recomputes the block's crc. */
static void leaf_encode(uint8_t *b, const struct titem *v, unsigned n)
{
    unsigned end = BLK, used = 0;
    for (unsigned i = 0; i < n; i++)
        used += COW_ITEM_SIZE + v[i].size;
    ck_assert_uint_le(used, COW_LEAF_SPACE);
    memset(b + TB_HEADER_SIZE, 0, COW_LEAF_SPACE);
    put32(b + TB_NRITEMS, n);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *h = b + TB_HEADER_SIZE + (size_t)i * COW_ITEM_SIZE;
        end -= v[i].size;
        memcpy(b + end, v[i].d, v[i].size);
        key_put(h, &v[i].k);
        put16(h + 17, (uint16_t)end);
        put16(h + 19, (uint16_t)v[i].size);
    }
    block_crc(b);
}

/* The first leaf item of tree R with type TYPE (and OBJECTID / OFFSET
 * unless ANY): its block address and slot. */
#define ANY UINT64_MAX
#define INO 1 /* an objectid in find requests: the inode of "f" */
struct find {
    uint8_t type;
    uint64_t objectid, offset;
    uint64_t bytenr;
    unsigned slot;
    int have;
};

static int find_cb(cow_store *st, void *arg, struct eb *e)
{
    struct find *f = arg;
    (void)st;
    if (tb_level(e->data) != 0 || f->have)
        return COW_OK;
    for (unsigned i = 0; i < tb_nritems(e->data); i++) {
        struct cow_key k;
        key_get(&k, leaf_item(e->data, i));
        if (k.type == f->type && (f->objectid == ANY || k.objectid == f->objectid) &&
            (f->offset == ANY || k.offset == f->offset)) {
            f->bytenr = e->bytenr;
            f->slot = i;
            f->have = 1;
            return COW_OK;
        }
    }
    return COW_OK;
}

static struct find find_item(cow_store *st, struct cow_root *r, uint8_t type, uint64_t objectid,
                             uint64_t offset)
{
    struct find f = {type, objectid, offset, 0, 0, 0};
    cow_mutex_lock(&st->lock);
    ck_assert_int_eq(bt_walk_blocks(st, r, find_cb, &f), COW_OK);
    cow_mutex_unlock(&st->lock);
    ck_assert_msg(f.have, "no item of type %u", type);
    return f;
}

/* ---- containers ---- */

/* A container being made: the store and its memory device. */
struct box {
    struct cow_dev *dev;
    cow_store *st;
    cow_file *f;
};

static void box_open(struct box *b)
{
    b->dev = memdev_new(NULL);
    ck_assert_int_eq(cow_store_open_dev("mem", b->dev, 0, 1, &b->st), COW_OK);
    cow_store_set_commit_interval(b->st, 0);
    ck_assert_int_eq(cow_file_open(b->st, "f", 1, &b->f), COW_OK);
}

static void write_pattern(cow_file *f, uint64_t off, size_t len, uint8_t seed)
{
    uint8_t *buf = malloc(len);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7 + (i >> 12));
    ck_assert_int_eq(cow_file_write(f, buf, len, off), COW_OK);
    free(buf);
}

/* Commits, and rewrites the superblock without a commit list (commit_seal),
 * so that a patched block is read as it is, not taken for a torn commit. */
static void box_commit(struct box *b)
{
    ck_assert_int_eq(cow_store_commit(b->st), COW_OK);
    cow_mutex_lock(&b->st->lock);
    ck_assert_int_eq(commit_seal(b->st), COW_OK);
    cow_mutex_unlock(&b->st->lock);
}

/* The image as the device holds it now; the store is closed. */
static uint8_t *box_image(struct box *b, size_t *len)
{
    uint8_t *img = memdev_image(b->dev, len);
    cow_file_close(b->f);
    cow_store_close(b->st);
    return img;
}

/* A container with file "f" of 2 MiB: two REG extents of 1 MiB. */
static struct box make_reg(void)
{
    struct box b;
    box_open(&b);
    write_pattern(b.f, 0, 2 * MIB, 1);
    box_commit(&b);
    return b;
}

/* A container with file "f" preallocated to 1 MiB (one PREALLOC extent)
 * and file "g" of 1 MiB written after it. */
static struct box make_prealloc(void)
{
    struct box b;
    cow_file *g;
    box_open(&b);
    ck_assert_int_eq(cow_file_preallocate(b.f, MIB), COW_OK);
    ck_assert_int_eq(cow_file_open(b.st, "g", 1, &g), COW_OK);
    write_pattern(g, 0, MIB, 2);
    cow_file_close(g);
    box_commit(&b);
    return b;
}

/* ---- what is done with a patched image ---- */

enum action {
    READ_ALL,      /* read every byte of "f" */
    WRITE_SYNC,    /* write block 0 of "f" and sync it */
    LOG_ALL,       /* write a log record of all of "f"'s mapping */
};

static char last_msg[512];

/* Opens IMG and does ACTION; returns the first error (COW_OK if none), its
 * message in last_msg. */
static int try_image(const uint8_t *img, size_t len, enum action action)
{
    cow_store *st;
    cow_file *f = NULL;
    last_msg[0] = 0;
    int rc = cow_store_open_dev("patched", memdev_from_image(img, len, NULL), 0, 0, &st);
    if (rc) {
        snprintf(last_msg, sizeof last_msg, "%s", cow_store_last_error(NULL));
        return rc;
    }
    cow_store_set_commit_interval(st, 0);
    rc = cow_file_open(st, "f", 0, &f);
    if (!rc && action == READ_ALL) {
        uint64_t size;
        ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
        if (size > 4 * MIB) /* a patched size: read what the test wrote */
            size = 4 * MIB;
        uint8_t *buf = malloc(size ? size : 1);
        size_t n;
        rc = cow_file_read(f, buf, size, 0, &n);
        free(buf);
    } else if (!rc && action == WRITE_SYNC) {
        uint8_t blk[BLK];
        memset(blk, 0x5a, sizeof blk);
        rc = cow_file_write(f, blk, sizeof blk, 0);
        if (!rc)
            rc = cow_file_sync(f);
    } else if (!rc && action == LOG_ALL) {
        /* a record over every extent of the file, as a sync after
         * changes to all of it would write */
        cow_mutex_lock(&st->lock);
        struct cow_inode *in = f->inode;
        em_mark_modified(in, 0, UINT64_MAX);
        rc = log_write(st, &in, 1, 0);
        cow_mutex_unlock(&st->lock);
    }
    if (rc)
        snprintf(last_msg, sizeof last_msg, "%s", cow_store_last_error(NULL));
    if (f)
        cow_file_close(f);
    cow_store_close(st);
    return rc;
}

/* Expects ACTION on IMG to fail with COW_ECORRUPT and a message holding
 * each of the strings WANT (NULL-terminated). */
static void expect_corrupt(const uint8_t *img, size_t len, enum action action, ...)
{
    int rc = try_image(img, len, action);
    ck_assert_msg(rc == COW_ECORRUPT, "got %d (%s), expected COW_ECORRUPT", rc, last_msg);
    va_list ap;
    va_start(ap, action);
    for (const char *w; (w = va_arg(ap, const char *));)
        ck_assert_msg(strstr(last_msg, w), "message \"%s\" does not name \"%s\"", last_msg, w);
    va_end(ap);
}

static char *fmt_u64(char *buf, uint64_t v)
{
    sprintf(buf, "%llu", (unsigned long long)v);
    return buf;
}

/* A closed container's image and the tree block a test patches in it. */
struct patched {
    uint8_t *img;   /* the image (the test frees it) */
    size_t len;     /* its length in bytes */
    struct find at; /* the item found (reg_patched), or zeros */
    uint8_t *block; /* the block to patch: img + its bytenr */
    char addr[32];  /* that bytenr as text: what a message about it names */
};

/* The trees by the numbers reg_patched() and field_case.tree take. */
enum { FS_TREE, ROOT_TREE, EXTENT_TREE, CSUM_TREE };

/* A make_reg() container, closed, with the leaf holding its item (TYPE,
 * OBJECTID, OFFSET: a value or ANY; OBJECTID INO: the inode of "f") in
 * tree TREE (FS_TREE...). */
static struct patched reg_patched(int tree, uint8_t type, uint64_t objectid, uint64_t offset)
{
    struct patched p;
    struct box b = make_reg();
    struct cow_root *trees[] = {&b.st->fs_tree, &b.st->root_tree, &b.st->extent_tree,
                                &b.st->csum_tree};
    p.at = find_item(b.st, trees[tree], type, objectid == INO ? b.f->inode->ino : objectid,
                     offset);
    fmt_u64(p.addr, p.at.bytenr);
    p.img = box_image(&b, &p.len);
    p.block = p.img + p.at.bytenr;
    return p;
}

/* Recomputes the checksum of P's patched block, expects reading "f" in the
 * image to fail with COW_ECORRUPT and a message naming the block and WANT,
 * and frees the image. */
static void expect_block_corrupt(struct patched *p, const char *want)
{
    block_crc(p->block);
    expect_corrupt(p->img, p->len, READ_ALL, p->addr, want, NULL);
    free(p->img);
}

/* reg_patched() at "f"'s first EXTENT_DATA item (file offset 0). */
static struct patched reg_patched_extent(void)
{
    return reg_patched(FS_TREE, COW_EXTENT_DATA, INO, 0);
}

/* ---- the three 1 KiB stack buffers (issue 12 part 3) ---- */

/*
 * Makes the extent of "f" at file offset 0 claim 300 blocks (disk_num_bytes
 * 1200 KiB, past the 1 MiB limit), with extent_offset 44 blocks, and its
 * csum item 300 crc32c values (1200 bytes, which a leaf can hold), so that
 * the item and its csum agree and only the 1 MiB bound can stop them.
 * Without it, read_extent_blocks and em_complete_prealloc (extent_map.c)
 * and add_csum (log.c) copy 1200 bytes into or out of 1024-byte stack
 * buffers.
 */
static uint8_t *patch_oversized_extent(struct box *b, size_t *len, char *fe_block)
{
    cow_store *st = b->st;
    uint64_t ino = b->f->inode->ino;
    struct find fe = find_item(st, &st->fs_tree, COW_EXTENT_DATA, ino, 0);
    struct find cs = find_item(st, &st->csum_tree, COW_EXTENT_CSUM, ANY, ANY);
    fmt_u64(fe_block, fe.bytenr);
    uint8_t *img = box_image(b, len);
    static struct titem v[COW_LEAF_SPACE / COW_ITEM_SIZE];

    uint8_t *leaf = img + fe.bytenr;
    const uint8_t *d = leaf + leaf_data_off(leaf, fe.slot);
    uint64_t disk = get64(d + FE_DISK_BYTENR);
    ck_assert_uint_eq(get64(d + FE_DISK_NUM_BYTES), MIB);
    unsigned n = leaf_decode(leaf, v);
    put64(v[fe.slot].d + FE_DISK_NUM_BYTES, 300ull * BLK);
    put64(v[fe.slot].d + FE_EXTENT_OFFSET, 44ull * BLK);
    leaf_encode(leaf, v, n);

    leaf = img + cs.bytenr;
    n = leaf_decode(leaf, v);
    unsigned i = 0;
    while (i < n && v[i].k.offset != disk)
        i++;
    ck_assert_uint_lt(i, n);
    ck_assert_uint_eq(v[i].size, COW_MAX_EXTENT_BLOCKS * 4);
    for (unsigned blk = COW_MAX_EXTENT_BLOCKS; blk < 300; blk++)
        put32(v[i].d + blk * 4, crc32c(0, img + disk + (uint64_t)blk * BLK, BLK));
    v[i].size = 300 * 4;
    leaf_encode(leaf, v, n);
    return img;
}

/* Each stack buffer's path: reading a REG extent, writing into a
 * PREALLOC one, logging a REG one. */
static const struct {
    struct box (*make)(void);
    enum action action;
} oversized_cases[] = {
    {make_reg, READ_ALL},       /* oversized_extent_read */
    {make_prealloc, WRITE_SYNC}, /* oversized_extent_prealloc_write */
    {make_reg, LOG_ALL},        /* oversized_extent_log_record */
};
#define NOVERSIZED_CASES (sizeof oversized_cases / sizeof oversized_cases[0])

START_TEST(oversized_extent)
{
    struct box b = oversized_cases[_i].make();
    size_t len;
    char blk[32];
    uint8_t *img = patch_oversized_extent(&b, &len, blk);
    expect_corrupt(img, len, oversized_cases[_i].action, "block ", NULL);
    free(img);
}
END_TEST

/* disk_num_bytes alone set past 1 MiB: named as such (the csum item then
 * disagrees too, but the item is bad first). */
START_TEST(extent_disk_num_bytes_bounded)
{
    struct patched p = reg_patched_extent();
    put64(p.block + leaf_data_off(p.block, p.at.slot) + FE_DISK_NUM_BYTES, 2ull * MIB);
    expect_block_corrupt(&p, "disk_num_bytes");
}
END_TEST

/* ---- leaf structure: key order, overlap ---- */

/* The two EXTENT_DATA items of "f" with their keys' offsets exchanged:
 * keys out of order (data and crcs all valid). */
START_TEST(leaf_key_order)
{
    struct patched p = reg_patched_extent();
    uint8_t *leaf = p.block;
    struct cow_key k0, k1;
    key_get(&k0, leaf_item(leaf, p.at.slot));
    key_get(&k1, leaf_item(leaf, p.at.slot + 1));
    ck_assert_uint_eq(k1.type, COW_EXTENT_DATA);
    uint64_t t = k0.offset;
    k0.offset = k1.offset;
    k1.offset = t;
    key_put((uint8_t *)leaf_item(leaf, p.at.slot), &k0);
    key_put((uint8_t *)leaf_item(leaf, p.at.slot + 1), &k1);
    expect_block_corrupt(&p, "not above");
}
END_TEST

/* The second EXTENT_DATA item's data offset set to the first's: both
 * items read the same 40 bytes, so without the check the file's second
 * MiB reads as its first, with valid checksums. */
START_TEST(leaf_item_overlap)
{
    struct patched p = reg_patched_extent();
    uint8_t *leaf = p.block;
    put16((uint8_t *)leaf_item(leaf, p.at.slot + 1) + 17,
          (uint16_t)leaf_data_off(leaf, p.at.slot));
    expect_block_corrupt(&p, "overlap");
}
END_TEST

/* ---- nodes ---- */

/* A container whose subvolume tree has a root node (300 files besides
 * "f"), closed, with that node the block to patch. */
static struct patched node_patched(void)
{
    struct patched p;
    struct box b;
    box_open(&b);
    for (unsigned i = 0; i < 300; i++) {
        char name[32];
        cow_file *g;
        snprintf(name, sizeof name, "file-%u", i);
        ck_assert_int_eq(cow_file_open(b.st, name, 1, &g), COW_OK);
        cow_file_close(g);
    }
    write_pattern(b.f, 0, 64 * 1024, 4);
    box_commit(&b);
    ck_assert_uint_ge(b.st->fs_tree.level, 1);
    uint64_t node = b.st->fs_tree.bytenr;
    memset(&p.at, 0, sizeof p.at);
    fmt_u64(p.addr, node);
    p.img = box_image(&b, &p.len);
    p.block = p.img + node;
    ck_assert_uint_ge(tb_nritems(p.block), 2);
    return p;
}

START_TEST(node_key_order)
{
    struct patched p = node_patched();
    uint8_t *b = p.block;
    uint8_t k0[COW_KEY_SIZE];
    memcpy(k0, node_ptr(b, 0), COW_KEY_SIZE);
    memcpy((uint8_t *)node_ptr(b, 0), node_ptr(b, 1), COW_KEY_SIZE);
    memcpy((uint8_t *)node_ptr(b, 1), k0, COW_KEY_SIZE);
    block_crc(b);
    expect_corrupt(p.img, p.len, READ_ALL, p.addr, "key pointer 1", "not above", NULL);
    free(p.img);
}
END_TEST

START_TEST(node_child_in_container)
{
    struct patched p = node_patched();
    unsigned last = tb_nritems(p.block) - 1;
    /* the block past the end */
    put64((uint8_t *)node_ptr(p.block, last) + 17, (uint64_t)p.len);
    expect_block_corrupt(&p, "points at");
}
END_TEST

START_TEST(node_child_generation)
{
    struct patched p = node_patched();
    put64((uint8_t *)node_ptr(p.block, 0) + 25, get64(p.block + TB_GENERATION) + 1);
    expect_block_corrupt(&p, "child generation");
}
END_TEST

/* A leaf whose header generation is newer than any commit (a block from
 * a later, lost, transaction; the parent's pointer disagrees too, but the
 * block is bad first). */
START_TEST(block_generation_bounded)
{
    struct patched p = reg_patched_extent();
    put64(p.block + TB_GENERATION, 1000);
    expect_block_corrupt(&p, "generation 1000 (1..");
}
END_TEST

/* ---- addresses: bytenr + 4096 must not wrap ---- */

START_TEST(block_address_wrap)
{
    struct box b;
    box_open(&b);
    struct eb *e;
    cow_mutex_lock(&b.st->lock);
    /* the last block address below 2^64: + 4096 wraps to 0 */
    int rc = cache_read(b.st, UINT64_MAX - (BLK - 1), 0, -1, &e);
    cow_mutex_unlock(&b.st->lock);
    ck_assert_int_eq(rc, COW_ECORRUPT);
    cow_file_close(b.f);
    cow_store_close(b.st);
}
END_TEST

/* The live subvolume's ROOT_ITEM pointing at that address. */
START_TEST(root_item_address_wrap)
{
    struct patched p = reg_patched(ROOT_TREE, COW_ROOT_ITEM, COW_FS_TREE_OBJECTID, 0);
    put64(p.block + leaf_data_off(p.block, p.at.slot) + ROOT_BYTENR, UINT64_MAX - (BLK - 1));
    expect_block_corrupt(&p, "root bytenr");
}
END_TEST

/* ---- log records ---- */

/* A container whose last sync wrote a log record (replayed at open); the
 * record's address in *REC. */
static uint8_t *make_logged(size_t *len, uint64_t *rec)
{
    struct box b;
    box_open(&b);
    write_pattern(b.f, 0, 64 * 1024, 1);
    box_commit(&b);
    /* in the data group the commit has: the log cannot add groups */
    write_pattern(b.f, 64 * 1024, 64 * 1024, 3);
    ck_assert_int_eq(cow_file_sync(b.f), COW_OK);
    ck_assert_uint_eq(b.st->log_next, 1);
    *rec = b.st->log_area[b.st->last_slot];
    uint8_t *img = memdev_crash_image(b.dev, len);
    cow_file_close(b.f);
    cow_store_close(b.st);
    ck_assert_uint_eq(get32(img + *rec + LOG_MAGIC), COW_LOG_MAGIC);
    return img;
}

static void log_crc(uint8_t *r)
{
    put32(r + LOG_CSUM, crc32c(0, r + 4, (size_t)get32(r + LOG_NBLOCKS) * BLK - 4));
}

/* The unpatched record is replayed: the synced bytes are there. */
START_TEST(log_record_baseline)
{
    size_t len;
    uint64_t rec;
    uint8_t *img = make_logged(&len, &rec);
    cow_store *st;
    cow_file *f;
    ck_assert_int_eq(cow_store_open_dev("p", memdev_from_image(img, len, NULL), 0, 0, &st),
                     COW_OK);
    ck_assert_int_eq(cow_file_open(st, "f", 0, &f), COW_OK);
    uint64_t size;
    ck_assert_int_eq(cow_file_size(f, &size), COW_OK);
    ck_assert_uint_eq(size, 128 * 1024);
    cow_file_close(f);
    cow_store_close(st);
    free(img);
}
END_TEST

/* An item count no record could hold sizes no allocation. */
START_TEST(log_record_nitems)
{
    size_t len;
    uint64_t rec;
    uint8_t *img = make_logged(&len, &rec);
    put32(img + rec + LOG_NITEMS, 0xfffffff0u);
    log_crc(img + rec);
    expect_corrupt(img, len, READ_ALL, "log record 1", "nitems", NULL);
    free(img);
}
END_TEST

/* A logged EXTENT_DATA item of a preallocated range (which replay does
 * not check against data) claiming a 2 MiB extent. */
START_TEST(log_record_extent_bounded)
{
    size_t len;
    uint64_t rec;
    uint8_t *img = make_logged(&len, &rec);
    uint8_t *r = img + rec;
    size_t p = LOG_HEADER_SIZE, end = (size_t)get32(r + LOG_NBLOCKS) * BLK;
    int done = 0;
    for (uint32_t i = 0; i < get32(r + LOG_NITEMS) && !done; i++) {
        ck_assert_uint_le(p + LOG_ITEM_HEADER, end);
        struct cow_key k;
        key_get(&k, r + p);
        size_t size = get16(r + p + COW_KEY_SIZE);
        if (k.type == COW_EXTENT_DATA) {
            put64(r + p + LOG_ITEM_HEADER + FE_DISK_NUM_BYTES, 2ull * MIB);
            r[p + LOG_ITEM_HEADER + FE_TYPE] = COW_FE_PREALLOC;
            done = 1;
        }
        p += LOG_ITEM_HEADER + size;
    }
    ck_assert(done);
    log_crc(r);
    expect_corrupt(img, len, READ_ALL, "log record 1", "disk_num_bytes", NULL);
    free(img);
}
END_TEST

/*
 * The csum items of a log record are de-duplicated in linear time: N
 * extents of 3 blocks, the middle block of each then rewritten (so 3N
 * EXTENT_DATA items point at 2N extents, each split one twice), logged
 * in one record: 2N EXTENT_CSUM items, and a bounded number of probes per
 * extent (the linear scan it replaces made N^2 comparisons).
 */
START_TEST(log_csum_dedup_linear)
{
    enum { N = 600 };
    struct box b;
    box_open(&b);
    for (unsigned i = 0; i < N; i++)
        write_pattern(b.f, (uint64_t)i * 4 * BLK, 3 * BLK, (uint8_t)i);
    box_commit(&b);
    for (unsigned i = 0; i < N; i++)
        write_pattern(b.f, ((uint64_t)i * 4 + 1) * BLK, BLK, (uint8_t)(i + 1));
    cow_store *st = b.st;
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    cow_mutex_lock(&st->lock);
    struct cow_inode *in = b.f->inode;
    em_mark_modified(in, 0, UINT64_MAX);
    uint64_t at = st->log_area[st->last_slot] + (uint64_t)st->log_next * BLK;
    uint64_t p0 = st->log_csum_probes;
    ck_assert_int_eq(log_write(st, &in, 1, 0), COW_OK);
    uint64_t probes = st->log_csum_probes - p0;
    uint32_t nb;
    uint8_t h[BLK];
    ck_assert_int_eq(st->dev->read(st->dev, h, BLK, at), COW_OK);
    nb = get32(h + LOG_NBLOCKS);
    uint8_t *r = malloc((size_t)nb * BLK);
    ck_assert_int_eq(st->dev->read(st->dev, r, (size_t)nb * BLK, at), COW_OK);
    cow_mutex_unlock(&st->lock);
    unsigned ncsum = 0, nfe = 0;
    size_t p = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < get32(r + LOG_NITEMS); i++) {
        struct cow_key k;
        key_get(&k, r + p);
        ncsum += k.type == COW_EXTENT_CSUM;
        nfe += k.type == COW_EXTENT_DATA;
        p += LOG_ITEM_HEADER + get16(r + p + COW_KEY_SIZE);
    }
    free(r);
    ck_assert_uint_eq(nfe, 3 * N);
    ck_assert_uint_eq(ncsum, 2 * N);
    ck_assert_msg(probes <= 8 * 3 * N, "%llu probes for %u extent items",
                  (unsigned long long)probes, 3 * N);
    cow_file_close(b.f);
    cow_store_close(st);
}
END_TEST

/* ---- one field of each item type ---- */

struct field_case {
    const char *name;
    int tree;       /* FS_TREE, ROOT_TREE, EXTENT_TREE, CSUM_TREE */
    uint8_t type;
    uint64_t objectid; /* or ANY; INO: the file's inode */
    unsigned off;   /* byte in the item's data */
    int width;      /* 1, 2, 4, 8 */
    uint64_t value;
    const char *want;
};

static const struct field_case field_cases[] = {
    {"inode flags", 0, COW_INODE_ITEM, INO, INODE_FLAGS, 8, 2, "inode flags"},
    {"inode size", 0, COW_INODE_ITEM, INO, INODE_SIZE, 8, UINT64_MAX, "size"},
    {"dir name_len", 0, COW_DIR_ITEM, ANY, DIR_ENTRY_NAMELEN, 2, 300, "name_len"},
    {"dir name hash", 0, COW_DIR_ITEM, ANY, DIR_ENTRY_NAME, 1, 'x', "crc32c of the name"},
    {"dir ino", 0, COW_DIR_ITEM, ANY, DIR_ENTRY_INO, 8, 3, "ino"},
    {"extent type", 0, COW_EXTENT_DATA, INO, FE_TYPE, 1, 7, "extent type"},
    {"extent disk_bytenr", 0, COW_EXTENT_DATA, INO, FE_DISK_BYTENR, 8, 12345, "data extent"},
    {"extent num_bytes", 0, COW_EXTENT_DATA, INO, FE_NUM_BYTES, 8, 100, "num_bytes"},
    {"root level", 1, COW_ROOT_ITEM, COW_FS_TREE_OBJECTID, ROOT_LEVEL, 1, 9, "root level"},
    {"root next_ino", 1, COW_ROOT_ITEM, COW_FS_TREE_OBJECTID, ROOT_NEXT_INO, 8, 3, "next_ino"},
    {"root flags", 1, COW_ROOT_ITEM, COW_FS_TREE_OBJECTID, ROOT_FLAGS, 8, 4, "flags"},
    {"extent item refs", 2, COW_EXTENT_ITEM, ANY, EXT_REFS, 8, 0, "reference count 0"},
    {"extent item flags", 2, COW_EXTENT_ITEM, ANY, EXT_FLAGS, 8, 2, "flags"},
    {"metadata item flags", 2, COW_METADATA_ITEM, ANY, EXT_FLAGS, 8, 1, "flags"},
    {"block group used", 2, COW_BLOCK_GROUP_ITEM, ANY, BG_USED, 8, 1ull << 40, "used"},
    {"inode transid", 0, COW_INODE_ITEM, INO, INODE_TRANSID, 8, 1000, "transid 1000 newer"},
    {"root generation", 1, COW_ROOT_ITEM, COW_FS_TREE_OBJECTID, ROOT_GENERATION, 8, 1000,
     "root generation 1000"},
    {"extent item generation", 2, COW_EXTENT_ITEM, ANY, EXT_GENERATION, 8, 1000,
     "generation 1000 newer"},
    /* fsck flagged it, the store took it (found by the corruption sweep) */
    {"root last_snapshot", 1, COW_ROOT_ITEM, COW_FS_TREE_OBJECTID, ROOT_LAST_SNAPSHOT, 8, 1000,
     "last_snapshot 1000"},
};
#define NFIELD_CASES (sizeof field_cases / sizeof field_cases[0])

START_TEST(item_field_checked)
{
    const struct field_case *c = &field_cases[_i];
    struct patched p = reg_patched(c->tree, c->type, c->objectid, ANY);
    uint8_t *d = p.block + leaf_data_off(p.block, p.at.slot) + c->off;
    switch (c->width) {
    case 1: *d = (uint8_t)c->value; break;
    case 2: put16(d, (uint16_t)c->value); break;
    case 4: put32(d, (uint32_t)c->value); break;
    default: put64(d, c->value); break;
    }
    block_crc(p.block);
    int rc = try_image(p.img, p.len, READ_ALL);
    ck_assert_msg(rc == COW_ECORRUPT && strstr(last_msg, p.addr) && strstr(last_msg, c->want),
                  "%s: got %d (%s), expected COW_ECORRUPT naming block %s and \"%s\"", c->name,
                  rc, last_msg, p.addr, c->want);
    free(p.img);
}
END_TEST

/* A csum item whose size is not a list of crc32c values. */
START_TEST(csum_item_size)
{
    struct patched p = reg_patched(CSUM_TREE, COW_EXTENT_CSUM, ANY, ANY);
    static struct titem v[COW_LEAF_SPACE / COW_ITEM_SIZE];
    unsigned n = leaf_decode(p.block, v);
    v[p.at.slot].size -= 2;
    leaf_encode(p.block, v, n);
    expect_corrupt(p.img, p.len, READ_ALL, p.addr, "crc32c values", NULL);
    free(p.img);
}
END_TEST

/* ---- through SQLite ---- */

static char sql_log[4096];

static void sql_log_cb(void *arg, int code, const char *msg)
{
    (void)arg;
    size_t n = strlen(sql_log);
    snprintf(sql_log + n, sizeof sql_log - n, "[%d] %s\n", code, msg);
}

/*
 * A database in a container whose table data lies in an extent that
 * claims 2 MiB: SQLite gets SQLITE_CORRUPT (at open) or
 * SQLITE_IOERR_CORRUPTFS (at a read), and sqlite3_log names the block and
 * the field.
 */
START_TEST(sqlite_sees_corruptfs)
{
    char *dir = test_base_dir();
    char path[1024];
    snprintf(path, sizeof path, "%s/app.db", dir);
    sqlite3_shutdown();
    ck_assert_int_eq(sqlite3_config(SQLITE_CONFIG_LOG, sql_log_cb, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_initialize(), SQLITE_OK);
    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     "cow"),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "CREATE TABLE t(x); WITH RECURSIVE c(i) AS (SELECT 1 UNION "
                                  "ALL SELECT i + 1 FROM c WHERE i < 2000) INSERT INTO t "
                                  "SELECT randomblob(200) FROM c;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

    /* the first EXTENT_DATA item of "db" */
    cow_store *st;
    cow_file *f;
    ck_assert_int_eq(cow_store_open(path, 0, &st), COW_OK);
    ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
    struct find fe = find_item(st, &st->fs_tree, COW_EXTENT_DATA, f->inode->ino, ANY);
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    uint8_t leaf[BLK];
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, leaf, BLK, (off_t)fe.bytenr), BLK);
    put64(leaf + leaf_data_off(leaf, fe.slot) + FE_DISK_NUM_BYTES, 2ull * MIB);
    block_crc(leaf);
    ck_assert_int_eq(pwrite(fd, leaf, BLK, (off_t)fe.bytenr), BLK);
    close(fd);

    sql_log[0] = 0;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow");
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(db, 1);
        rc = sqlite3_exec(db, "SELECT sum(length(x)) FROM t", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    ck_assert_msg(rc == SQLITE_CORRUPT || rc == SQLITE_IOERR_CORRUPTFS, "rc %d, log: %s", rc,
                  sql_log);
    char blk[32];
    fmt_u64(blk, fe.bytenr);
    ck_assert_msg(strstr(sql_log, "disk_num_bytes") && strstr(sql_log, blk),
                  "the log does not name block %s and disk_num_bytes: %s", blk, sql_log);
    sqlite3_shutdown();
    sqlite3_config(SQLITE_CONFIG_LOG, NULL, NULL);
    free(dir);
}
END_TEST

/* ---- bytes the format leaves zero; fsck and open agree (issue 12 part 5,
 * found by the corruption sweep: fsck reported each, the store opened) ---- */

/* The superblock copy with the higher valid generation in IMG. */
static uint8_t *newest_sb(uint8_t *img)
{
    return get64(img + SB_GENERATION) > get64(img + BLK + SB_GENERATION) ? img : img + BLK;
}

static void sb_crc(uint8_t *sb)
{
    put32(sb + SB_CSUM, crc32c(0, sb + 4, BLK - 4));
}

/* Each case patches one byte the format leaves zero, or the other
 * superblock copy's uuid, with the checksum recomputed. */
START_TEST(zero_bytes_checked)
{
    size_t len;
    uint64_t rec;
    uint8_t *img;
    char blk[32];
    if (_i == 3) { /* a log record's bytes after its items */
        img = make_logged(&len, &rec);
        uint8_t *r = img + rec;
        r[(size_t)get32(r + LOG_NBLOCKS) * BLK - 1] = 1;
        log_crc(r);
        expect_corrupt(img, len, READ_ALL, "log record 1", "after the items are not zero",
                       NULL);
        free(img);
        return;
    }
    struct box b = make_reg();
    struct find fe = find_item(b.st, &b.st->fs_tree, COW_EXTENT_DATA, b.f->inode->ino, 0);
    fmt_u64(blk, fe.bytenr);
    img = box_image(&b, &len);
    uint8_t *sb = newest_sb(img), *other = sb == img ? img + BLK : img;
    switch (_i) {
    case 0: /* the superblock in use, past its (empty) commit list */
        sb[BLK - 1] = 1;
        sb_crc(sb);
        expect_corrupt(img, len, READ_ALL, "superblock copy", "reserved or unused bytes",
                       NULL);
        break;
    case 1: /* a tree block header's reserved bytes 37..47 */
        img[fe.bytenr + 40] = 1;
        block_crc(img + fe.bytenr);
        expect_corrupt(img, len, READ_ALL, blk, "header bytes 37..47", NULL);
        break;
    case 2: /* the other copy, whole, of another container */
        ck_assert_int_eq(get64(other + SB_MAGIC), COW_SB_MAGIC);
        other[SB_UUID] ^= 1;
        sb_crc(other);
        expect_corrupt(img, len, READ_ALL, "different container uuids", NULL);
        break;
    }
    free(img);
}
END_TEST

/* A container cut short whose superblocks are both one-flush commits is
 * reported as truncated, not as two commits whose blocks do not match
 * (which sent the user looking for damage). */
START_TEST(truncated_one_flush)
{
    struct box b;
    box_open(&b);
    write_pattern(b.f, 0, 64 * 1024, 1);
    ck_assert_int_eq(cow_store_commit(b.st), COW_OK);
    write_pattern(b.f, 64 * 1024, 64 * 1024, 2);
    ck_assert_int_eq(cow_store_commit(b.st), COW_OK);
    size_t len; /* as a crash now leaves it: both copies one-flush commits */
    uint8_t *img = memdev_crash_image(b.dev, &len);
    cow_file_close(b.f);
    cow_store_close(b.st);
    ck_assert(get32(img + SB_FLAGS) & COW_SB_ONE_FLUSH);
    ck_assert(get32(img + BLK + SB_FLAGS) & COW_SB_ONE_FLUSH);
    expect_corrupt(img, 3 * BLK, READ_ALL, "is truncated", NULL);
    free(img);
}
END_TEST

Suite *validate_suite(void)
{
    Suite *s = suite_create("validate");
    TCase *tc;
    tc = test_case(s, "validate", 120, extent_disk_num_bytes_bounded, leaf_key_order,
                   leaf_item_overlap, node_key_order, node_child_in_container,
                   node_child_generation, block_generation_bounded, block_address_wrap,
                   root_item_address_wrap, log_record_baseline, log_record_nitems,
                   log_record_extent_bounded, log_csum_dedup_linear, csum_item_size,
                   sqlite_sees_corruptfs, truncated_one_flush, NULL);
    tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
    tcase_add_loop_test(tc, oversized_extent, 0, NOVERSIZED_CASES);
    tcase_add_loop_test(tc, item_field_checked, 0, (int)NFIELD_CASES);
    tcase_add_loop_test(tc, zero_bytes_checked, 0, 4);
    return s;
}
