/*
 * check_usage.c - cow_subvol_usage(): the exclusive and shared space of the
 * live files, snapshots and branches.
 *
 * Two oracles.  What deleting a subvolume frees must be exactly its
 * exclusive data (cow_store_df's data bytes before and after).  And a
 * model that finds sharing by reachability instead of reference counts:
 * every tree is walked, and a tree block or data extent reached from one
 * tree only is exclusive to it; cow_subvol_usage, which reads one tree and
 * the reference counts (Rodeh's implicit sharing), must agree with it on
 * every field.  The random test prints its seed (COW_TEST_SEED replays).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roots.h"
#include "store_int.h"
#include "testutil.h"

/* Files are written in chunks of this many bytes, each its own extents
 * (written back and committed on its own), so that overwriting a chunk
 * replaces its extents whole. */
#define CHUNK (256u * 1024)
#define MAX_TREES 16

static struct cow_subvol_usage usage_of(cow_store *st, const char *name)
{
    struct cow_subvol_usage u;
    int rc = cow_subvol_usage(st, name, &u);
    ck_assert_msg(rc == COW_OK, "cow_subvol_usage(%s): %d: %s", name ? name : "NULL", rc,
                  cow_store_last_error(st));
    ck_assert_uint_le(u.exclusive_data, u.exclusive_bytes);
    ck_assert_uint_le(u.shared_data, u.shared_bytes);
    return u;
}

static uint64_t data_bytes(cow_store *st)
{
    struct cow_df df;
    ck_assert_int_eq(cow_store_df(st, &df), COW_OK);
    return df.data_bytes;
}

/* Writes LEN pseudo-random bytes at OFF to file NAME of SUBVOL (NULL: the
 * live files) and closes it: its pages are written back into the running
 * transaction. */
static void write_file(cow_store *st, const char *subvol, const char *name, uint64_t off,
                       size_t len, uint64_t *rs)
{
    uint8_t *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)test_rand(rs);
    cow_file *f;
    ck_assert_int_eq(cow_subvol_file_open(st, subvol, name, 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, buf, len, off), COW_OK);
    cow_file_close(f);
    free(buf);
}

/* Writes N single blocks at random block offsets below 4096 to file NAME
 * of SUBVOL, one call each (mostly separate extents: trees of many
 * leaves), and closes it. */
static void write_blocks(cow_store *st, const char *subvol, const char *name, unsigned n,
                         uint64_t *rs)
{
    uint8_t page[4096];
    cow_file *f;
    ck_assert_int_eq(cow_subvol_file_open(st, subvol, name, 1, &f), COW_OK);
    for (unsigned i = 0; i < n; i++) {
        for (size_t j = 0; j < sizeof page; j++)
            page[j] = (uint8_t)test_rand(rs);
        ck_assert_int_eq(cow_file_write(f, page, sizeof page, test_rand(rs) % 4096 * 4096),
                         COW_OK);
    }
    cow_file_close(f);
}

/* Writes chunk K of NAME in SUBVOL and commits. */
static void write_chunk(cow_store *st, const char *subvol, const char *name, unsigned k,
                        uint64_t *rs)
{
    write_file(st, subvol, name, (uint64_t)k * CHUNK, CHUNK, rs);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
}

/* Deletes NAME and checks that exactly its exclusive data was freed. */
static void delete_checked(cow_store *st, const char *name)
{
    struct cow_subvol_usage u = usage_of(st, name);
    uint64_t before = data_bytes(st);
    ck_assert_int_eq(cow_subvol_delete(st, name), COW_OK);
    uint64_t after = data_bytes(st);
    ck_assert_msg(before - after == u.exclusive_data,
                  "deleting %s freed %llu data bytes, its exclusive data is %llu", name,
                  (unsigned long long)(before - after), (unsigned long long)u.exclusive_data);
    ck_assert_int_eq(cow_subvol_usage(st, name, &u), COW_ENOENT);
}

/* ---- the reachability model ---- */

/* One tree's reference to a tree block or a data extent. */
struct mref {
    uint64_t bytenr, len;
    int is_data;
    unsigned tree;
};

struct mrefs {
    struct mref *v;
    size_t n, cap;
    unsigned tree; /* the tree being walked */
};

static void mrefs_push(struct mrefs *m, uint64_t bytenr, uint64_t len, int is_data)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        ck_assert_ptr_nonnull(m->v);
    }
    m->v[m->n++] = (struct mref){bytenr, len, is_data, m->tree};
}

/* bt_walk_blocks callback: notes the block and, for a leaf, the data
 * extents its file extent items point at (read here from the format, not
 * with the store's helpers). */
static int model_block(cow_store *st, void *arg, struct eb *e)
{
    struct mrefs *m = arg;
    const uint8_t *b = e->data;
    (void)st;
    mrefs_push(m, e->bytenr, COW_BLOCK_SIZE, 0);
    if (tb_level(b) != 0)
        return COW_OK;
    for (unsigned i = 0; i < tb_nritems(b); i++) {
        struct cow_key k;
        key_get(&k, leaf_item(b, i));
        if (k.type != COW_EXTENT_DATA)
            continue;
        ck_assert_uint_eq(leaf_data_size(b, i), FE_ITEM_SIZE);
        const uint8_t *fe = b + leaf_data_off(b, i);
        ck_assert(fe[FE_TYPE] == COW_FE_REG || fe[FE_TYPE] == COW_FE_PREALLOC);
        if (get64(fe + FE_DISK_BYTENR))
            mrefs_push(m, get64(fe + FE_DISK_BYTENR), get64(fe + FE_DISK_NUM_BYTES), 1);
    }
    return COW_OK;
}

static int cmp_mref(const void *a, const void *b)
{
    const struct mref *x = a, *y = b;
    if (x->is_data != y->is_data)
        return x->is_data - y->is_data;
    if (x->bytenr != y->bytenr)
        return x->bytenr < y->bytenr ? -1 : 1;
    return (x->tree > y->tree) - (x->tree < y->tree);
}

/* The usage of each of the NT trees NAMES ("" the live files) by
 * reachability; *all_data: the data extents of all of them together. */
static void model_usage(cow_store *st, char (*names)[COW_NAME_MAX + 1], unsigned nt,
                        struct cow_subvol_usage *out, uint64_t *all_data)
{
    struct mrefs m = {0};
    memset(out, 0, nt * sizeof *out);
    *all_data = 0;
    cow_mutex_lock(&st->lock);
    for (unsigned t = 0; t < nt; t++) {
        struct cow_root *r = &st->fs_tree;
        if (names[t][0]) {
            struct cow_subvol *sv = roots_find(st, names[t]);
            ck_assert_ptr_nonnull(sv);
            r = &sv->root;
        }
        m.tree = t;
        ck_assert_int_eq(bt_walk_blocks(st, r, model_block, &m), COW_OK);
    }
    cow_mutex_unlock(&st->lock);
    qsort(m.v, m.n, sizeof *m.v, cmp_mref);
    for (size_t i = 0; i < m.n;) {
        size_t j = i, ntrees = 0;
        for (; j < m.n && m.v[j].is_data == m.v[i].is_data && m.v[j].bytenr == m.v[i].bytenr; j++)
            if (j == i || m.v[j].tree != m.v[j - 1].tree)
                ntrees++;
        if (m.v[i].is_data)
            *all_data += m.v[i].len;
        for (size_t k = i; k < j; k++) {
            if (k > i && m.v[k].tree == m.v[k - 1].tree)
                continue; /* an extent counts once per tree */
            ck_assert_uint_eq(m.v[k].len, m.v[i].len);
            struct cow_subvol_usage *u = &out[m.v[k].tree];
            if (ntrees == 1) {
                u->exclusive_bytes += m.v[k].len;
                u->exclusive_data += m.v[k].is_data ? m.v[k].len : 0;
            } else {
                u->shared_bytes += m.v[k].len;
                u->shared_data += m.v[k].is_data ? m.v[k].len : 0;
            }
        }
        i = j;
    }
    free(m.v);
}

struct tree_list {
    char names[MAX_TREES][COW_NAME_MAX + 1]; /* [0] "": the live files */
    int kind[MAX_TREES];
    unsigned n;
};

static int list_cb(void *arg, const struct cow_subvol_info *si)
{
    struct tree_list *l = arg;
    ck_assert_uint_lt(l->n, MAX_TREES);
    strcpy(l->names[l->n], si->name);
    l->kind[l->n++] = si->kind;
    return 0;
}

static void list_trees(cow_store *st, struct tree_list *l)
{
    memset(l, 0, sizeof *l);
    l->kind[0] = COW_SUBVOL_BRANCH; /* writable */
    l->n = 1;
    ck_assert_int_eq(cow_subvol_list(st, list_cb, l), COW_OK);
}

/* Checks cow_subvol_usage of every tree against the model. */
static void check_all(cow_store *st)
{
    struct tree_list l;
    struct cow_subvol_usage want[MAX_TREES];
    uint64_t all_data;
    list_trees(st, &l);
    model_usage(st, l.names, l.n, want, &all_data);
    ck_assert_uint_eq(all_data, data_bytes(st)); /* the model sees every extent */
    for (unsigned t = 0; t < l.n; t++) {
        struct cow_subvol_usage u = usage_of(st, l.names[t]);
        const char *nm = t ? l.names[t] : "(live)";
        ck_assert_msg(u.exclusive_bytes + u.shared_bytes ==
                          want[t].exclusive_bytes + want[t].shared_bytes,
                      "%s: references %llu bytes, the model %llu", nm,
                      (unsigned long long)(u.exclusive_bytes + u.shared_bytes),
                      (unsigned long long)(want[t].exclusive_bytes + want[t].shared_bytes));
        ck_assert_msg(u.exclusive_bytes == want[t].exclusive_bytes &&
                          u.shared_bytes == want[t].shared_bytes &&
                          u.exclusive_data == want[t].exclusive_data &&
                          u.shared_data == want[t].shared_data,
                      "%s: exclusive %llu (data %llu), shared %llu (data %llu); the model: "
                      "exclusive %llu (data %llu), shared %llu (data %llu)",
                      nm, (unsigned long long)u.exclusive_bytes,
                      (unsigned long long)u.exclusive_data, (unsigned long long)u.shared_bytes,
                      (unsigned long long)u.shared_data,
                      (unsigned long long)want[t].exclusive_bytes,
                      (unsigned long long)want[t].exclusive_data,
                      (unsigned long long)want[t].shared_bytes,
                      (unsigned long long)want[t].shared_data);
    }
}

static uint64_t pending_refs(cow_store *st)
{
    cow_mutex_lock(&st->lock);
    uint64_t n = st->ndrefs;
    cow_mutex_unlock(&st->lock);
    return n;
}

/* ---- tests ---- */

/*
 * A snapshot shares everything; overwriting whole chunks of the live file
 * makes the new extents the live tree's and the old ones the snapshot's;
 * deleting the snapshot frees exactly those.
 */
START_TEST(usage_snapshot_then_overwrite)
{
    struct cow_dev *dev;
    cow_store *st = target_store(&dev);
    uint64_t rs = test_seed() ^ 0x05a9e;
    for (unsigned k = 0; k < 8; k++)
        write_chunk(st, NULL, "db", k, &rs);
    ck_assert_uint_eq(data_bytes(st), 8 * CHUNK);

    /* the live files alone: everything exclusive */
    struct cow_subvol_usage live = usage_of(st, NULL);
    ck_assert_uint_eq(live.exclusive_data, 8 * CHUNK);
    ck_assert_uint_gt(live.exclusive_bytes, live.exclusive_data); /* tree blocks */
    ck_assert_uint_eq(live.shared_bytes, 0);
    struct cow_subvol_usage same = usage_of(st, "");
    ck_assert_mem_eq(&same, &live, sizeof live);

    /* a fresh snapshot: everything shared, both ways */
    ck_assert_int_eq(cow_subvol_create(st, "s1", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    struct cow_subvol_usage s = usage_of(st, "s1");
    live = usage_of(st, NULL);
    ck_assert_uint_eq(s.exclusive_bytes, 0);
    ck_assert_uint_eq(live.exclusive_bytes, 0);
    ck_assert_uint_eq(s.shared_data, 8 * CHUNK);
    ck_assert_uint_eq(live.shared_data, 8 * CHUNK);
    ck_assert_uint_eq(s.shared_bytes, live.shared_bytes);
    ck_assert_uint_gt(s.shared_bytes, s.shared_data);
    check_all(st);

    /* chunks 2 and 5 rewritten in the live file */
    write_chunk(st, NULL, "db", 2, &rs);
    write_chunk(st, NULL, "db", 5, &rs);
    ck_assert_uint_eq(data_bytes(st), 10 * CHUNK);
    s = usage_of(st, "s1");
    live = usage_of(st, NULL);
    ck_assert_uint_eq(live.exclusive_data, 2 * CHUNK);
    ck_assert_uint_eq(live.shared_data, 6 * CHUNK);
    ck_assert_uint_eq(s.exclusive_data, 2 * CHUNK);
    ck_assert_uint_eq(s.shared_data, 6 * CHUNK);
    /* each has at least its own root block now */
    ck_assert_uint_ge(live.exclusive_bytes, live.exclusive_data + COW_BLOCK_SIZE);
    ck_assert_uint_ge(s.exclusive_bytes, s.exclusive_data + COW_BLOCK_SIZE);
    check_all(st);

    /* deleting the snapshot frees exactly its exclusive data */
    delete_checked(st, "s1");
    ck_assert_uint_eq(data_bytes(st), 8 * CHUNK);
    target_fsck(st, dev);
    live = usage_of(st, NULL);
    ck_assert_uint_eq(live.exclusive_data, 8 * CHUNK);
    ck_assert_uint_eq(live.shared_bytes, 0);
    check_all(st);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* Writes N single-block extents to NAME of the live files: blocks 0, 2, 4,
 * ... each written on its own (holes between them), then commits. */
static void write_scattered(cow_store *st, const char *name, unsigned n, uint64_t *rs)
{
    uint8_t page[4096];
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, name, 1, &f), COW_OK);
    for (unsigned i = 0; i < n; i++) {
        for (size_t j = 0; j < sizeof page; j++)
            page[j] = (uint8_t)test_rand(rs);
        ck_assert_int_eq(cow_file_write(f, page, sizeof page, (uint64_t)i * 2 * 4096), COW_OK);
    }
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
}

/*
 * A tree three levels deep: right after a snapshot, the blocks under the
 * shared root have a reference count of 1 and are shared all the same
 * (implicit sharing).  Rewriting a few scattered blocks copies their paths:
 * the old paths and extents become the snapshot's own.
 */
START_TEST(usage_deep_tree)
{
    struct cow_dev *dev;
    cow_store *st = target_store(&dev);
    uint64_t rs = test_seed() ^ 0xdee9;
    enum { N = 9000, REWRITE = 5 };
    write_scattered(st, "db", N, &rs);
    ck_assert_uint_ge(st->fs_tree.level, 2);
    ck_assert_uint_eq(data_bytes(st), (uint64_t)N * 4096);
    ck_assert_int_eq(cow_subvol_create(st, "s1", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    struct cow_subvol_usage s = usage_of(st, "s1"), live = usage_of(st, NULL);
    ck_assert_uint_eq(s.exclusive_bytes, 0);
    ck_assert_uint_eq(live.exclusive_bytes, 0);
    ck_assert_uint_eq(s.shared_data, (uint64_t)N * 4096);
    ck_assert_uint_ge(s.shared_bytes, s.shared_data + 100 * COW_BLOCK_SIZE);
    check_all(st);

    uint8_t page[4096];
    cow_file *f;
    ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
    for (unsigned i = 0; i < REWRITE; i++) {
        memset(page, (int)i + 1, sizeof page);
        uint64_t blk = (uint64_t)(i * (N / REWRITE) + 17) * 2;
        ck_assert_int_eq(cow_file_write(f, page, sizeof page, blk * 4096), COW_OK);
    }
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    s = usage_of(st, "s1");
    live = usage_of(st, NULL);
    ck_assert_uint_eq(s.exclusive_data, REWRITE * 4096);
    ck_assert_uint_eq(live.exclusive_data, REWRITE * 4096);
    ck_assert_uint_eq(s.shared_data, (uint64_t)(N - REWRITE) * 4096);
    /* a root, a node and a leaf of its own at least, each */
    ck_assert_uint_ge(s.exclusive_bytes, s.exclusive_data + 3 * COW_BLOCK_SIZE);
    ck_assert_uint_ge(live.exclusive_bytes, live.exclusive_data + 3 * COW_BLOCK_SIZE);
    ck_assert_uint_ge(s.shared_bytes, s.shared_data + 100 * COW_BLOCK_SIZE);
    check_all(st);
    delete_checked(st, "s1");
    target_fsck(st, dev);
    live = usage_of(st, NULL);
    ck_assert_uint_eq(live.shared_bytes, 0);
    ck_assert_uint_eq(live.exclusive_data, (uint64_t)N * 4096);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/*
 * Changes of the running transaction count before they are committed
 * (their reference counts are still delayed refs), and the same as after.
 */
START_TEST(usage_uncommitted)
{
    struct cow_dev *dev;
    cow_store *st = target_store(&dev);
    uint64_t rs = test_seed() ^ 0x0c0117;
    for (unsigned k = 0; k < 4; k++)
        write_chunk(st, NULL, "db", k, &rs);
    ck_assert_int_eq(cow_subvol_create(st, "s1", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    ck_assert_int_eq(cow_subvol_create(st, "b1", COW_SUBVOL_BRANCH, NULL), COW_OK);

    /* the live file's chunk 1 and the branch's chunk 3 rewritten, a new
     * file in the branch: written back, not committed */
    write_file(st, NULL, "db", CHUNK, CHUNK, &rs);
    write_file(st, "b1", "db", 3 * CHUNK, CHUNK, &rs);
    write_file(st, "b1", "new", 0, 3 * 4096, &rs);
    ck_assert_uint_gt(pending_refs(st), 0);
    struct cow_subvol_usage live = usage_of(st, NULL), b = usage_of(st, "b1"),
                            s = usage_of(st, "s1");
    ck_assert_uint_eq(live.exclusive_data, CHUNK);
    ck_assert_uint_eq(b.exclusive_data, CHUNK + 3 * 4096);
    ck_assert_uint_eq(s.exclusive_data, 0); /* old chunk 1: the branch has it */
    ck_assert_uint_ge(live.exclusive_bytes, CHUNK + COW_BLOCK_SIZE); /* dirty blocks */
    check_all(st);

    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    ck_assert_uint_eq(pending_refs(st), 0);
    struct cow_subvol_usage live2 = usage_of(st, NULL), b2 = usage_of(st, "b1"),
                            s2 = usage_of(st, "s1");
    ck_assert_mem_eq(&live2, &live, sizeof live);
    ck_assert_mem_eq(&b2, &b, sizeof b);
    ck_assert_mem_eq(&s2, &s, sizeof s);
    check_all(st);

    /* the branch also rewrites chunk 1: the old one is the snapshot's alone */
    write_file(st, "b1", "db", CHUNK, CHUNK, &rs);
    s = usage_of(st, "s1");
    ck_assert_uint_eq(s.exclusive_data, CHUNK);
    check_all(st);
    delete_checked(st, "s1");
    delete_checked(st, "b1");
    target_fsck(st, dev);
    check_all(st);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/*
 * A chain: snapshot s1 of the live files, branch b1 of s1, snapshot s2 of
 * b1, branch b2 of s2.  Deleting one in the middle frees what only it
 * still held.  And the errors.
 */
START_TEST(usage_chain_and_errors)
{
    struct cow_dev *dev;
    cow_store *st = target_store(&dev);
    uint64_t rs = test_seed() ^ 0xc4a1;
    for (unsigned k = 0; k < 4; k++)
        write_chunk(st, NULL, "db", k, &rs);
    ck_assert_int_eq(cow_subvol_create(st, "s1", COW_SUBVOL_SNAPSHOT, NULL), COW_OK);
    ck_assert_int_eq(cow_subvol_create(st, "b1", COW_SUBVOL_BRANCH, "s1"), COW_OK);
    const char *all[] = {"", "s1", "b1"};
    for (size_t i = 0; i < 3; i++) {
        struct cow_subvol_usage u = usage_of(st, all[i]);
        ck_assert_uint_eq(u.exclusive_bytes, 0);
        ck_assert_uint_eq(u.shared_data, 4 * CHUNK);
    }
    check_all(st);

    /* b1: chunk 0 rewritten (B0), a new file (N); then s2 and b2 of it */
    write_chunk(st, "b1", "db", 0, &rs);
    write_chunk(st, "b1", "n", 0, &rs);
    ck_assert_uint_eq(usage_of(st, "b1").exclusive_data, 2 * CHUNK);
    ck_assert_int_eq(cow_subvol_create(st, "s2", COW_SUBVOL_SNAPSHOT, "b1"), COW_OK);
    ck_assert_int_eq(cow_subvol_create(st, "b2", COW_SUBVOL_BRANCH, "s2"), COW_OK);
    ck_assert_uint_eq(usage_of(st, "b1").exclusive_bytes, 0);
    ck_assert_uint_eq(usage_of(st, "s2").exclusive_bytes, 0);
    ck_assert_uint_eq(usage_of(st, "b2").exclusive_bytes, 0);
    check_all(st);

    /* b1 and b2 both move on from B0 and N: only s2 holds them */
    write_chunk(st, "b1", "db", 0, &rs);
    write_chunk(st, "b1", "n", 0, &rs);
    write_chunk(st, "b2", "db", 0, &rs);
    write_chunk(st, "b2", "n", 0, &rs);
    ck_assert_uint_eq(usage_of(st, "s2").exclusive_data, 2 * CHUNK);
    ck_assert_uint_eq(usage_of(st, "b1").exclusive_data, 2 * CHUNK);
    ck_assert_uint_eq(usage_of(st, "b2").exclusive_data, 2 * CHUNK);
    ck_assert_uint_eq(usage_of(st, "s1").exclusive_data, 0); /* A0: the live files have it */
    ck_assert_uint_eq(usage_of(st, NULL).exclusive_data, 0);
    check_all(st);

    delete_checked(st, "s2");
    target_fsck(st, dev);
    check_all(st);
    delete_checked(st, "s1"); /* frees no data: A0 is the live files' */
    target_fsck(st, dev);
    ck_assert_uint_eq(usage_of(st, NULL).exclusive_data, CHUNK); /* A0 now */
    check_all(st);

    /* errors: the output is zeroed */
    struct cow_subvol_usage u;
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = 0;
    memset(&u, 0xff, sizeof u);
    ck_assert_int_eq(cow_subvol_usage(st, "nope", &u), COW_ENOENT);
    ck_assert_uint_eq(u.exclusive_bytes + u.shared_bytes, 0);
    ck_assert_int_eq(cow_subvol_usage(st, "s1", &u), COW_ENOENT); /* deleted */
    ck_assert_int_eq(cow_subvol_usage(st, "s2", &u), COW_ENOENT);
    ck_assert_int_eq(cow_subvol_usage(st, "a/b", &u), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_usage(st, longname, &u), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_usage(st, "bad\xff", &u), COW_EINVAL);
    ck_assert_int_eq(cow_subvol_usage(st, "b2", &u), COW_OK);
    ck_assert_uint_eq(u.exclusive_data, 2 * CHUNK);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/*
 * Random writes, truncations, snapshots, branches and deletes, committed
 * or not; after each round every tree's usage agrees with the
 * reachability model, and each delete frees exactly the deleted tree's
 * exclusive data.
 */
START_TEST(usage_random)
{
    struct cow_dev *dev;
    cow_store *st = target_store(&dev);
    uint64_t rs = test_seed() ^ 0x3a4d0;
    const char *files[] = {"f0", "f1", "f2"};
    unsigned made = 0;
    for (int round = 0; round < 20; round++) {
        struct tree_list l;
        list_trees(st, &l);
        unsigned nw = 1 + (unsigned)(test_rand(&rs) % 3);
        for (unsigned i = 0; i < nw; i++) {
            unsigned t;
            do
                t = (unsigned)(test_rand(&rs) % l.n);
            while (l.kind[t] != COW_SUBVOL_BRANCH);
            const char *sv = t ? l.names[t] : NULL, *fn = files[test_rand(&rs) % 3];
            if (test_rand(&rs) % 3 == 0) {
                write_blocks(st, sv, fn, 1 + (unsigned)(test_rand(&rs) % 300), &rs);
            } else {
                uint64_t off = test_rand(&rs) % 4096 * 4096;
                size_t len = (size_t)(1 + test_rand(&rs) % 64) * 4096;
                write_file(st, sv, fn, off, len, &rs);
            }
        }
        unsigned op = (unsigned)(test_rand(&rs) % 10);
        if (op < 4 && l.n < MAX_TREES - 1) {
            char name[32];
            snprintf(name, sizeof name, "sv%u", made++);
            unsigned src = (unsigned)(test_rand(&rs) % l.n);
            int kind = test_rand(&rs) % 2 ? COW_SUBVOL_SNAPSHOT : COW_SUBVOL_BRANCH;
            ck_assert_int_eq(cow_subvol_create(st, name, kind, src ? l.names[src] : NULL), COW_OK);
        } else if (op < 7 && l.n > 1) {
            delete_checked(st, l.names[1 + test_rand(&rs) % (l.n - 1)]);
        } else if (op == 7) {
            cow_file *f;
            int rc = cow_file_open(st, files[test_rand(&rs) % 3], 0, &f);
            if (rc == COW_OK) {
                ck_assert_int_eq(cow_file_truncate(f, test_rand(&rs) % 4096 * 4096), COW_OK);
                cow_file_close(f);
            } else {
                ck_assert_int_eq(rc, COW_ENOENT);
            }
        }
        if (test_rand(&rs) % 2)
            ck_assert_int_eq(cow_store_commit(st), COW_OK);
        check_all(st);
    }
    target_fsck(st, dev);
    /* the rest deleted, one by one */
    for (;;) {
        struct tree_list l;
        list_trees(st, &l);
        if (l.n == 1)
            break;
        delete_checked(st, l.names[1 + test_rand(&rs) % (l.n - 1)]);
        check_all(st);
    }
    target_fsck(st, dev);
    struct cow_subvol_usage live = usage_of(st, NULL);
    ck_assert_uint_eq(live.shared_bytes, 0);
    ck_assert_uint_eq(live.exclusive_data, data_bytes(st));
    ck_assert_int_eq(cow_store_close(st), COW_OK);
}
END_TEST

/* On any target: all of them (nothing of a memdev's own). */
void usage_any_target(TCase *tc)
{
    tcase_add_test(tc, usage_snapshot_then_overwrite);
    tcase_add_test(tc, usage_deep_tree);
    tcase_add_test(tc, usage_uncommitted);
    tcase_add_test(tc, usage_chain_and_errors);
    tcase_add_test(tc, usage_random);
}

Suite *usage_suite(void)
{
    Suite *s = suite_create("usage");
    test_case(s, "usage", 300, usage_snapshot_then_overwrite, usage_deep_tree, usage_uncommitted,
              usage_chain_and_errors, usage_random, NULL);
    return s;
}
