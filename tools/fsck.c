/*
 * fsck.c - an independent checker and dumper for cowvfs containers.
 *
 * Reads the container with pread(2) and knows only store/format.h and
 * crc32c: nothing here calls the store, so the checker and the store are two
 * readings of one format that must agree.
 *
 * The check runs in five passes:
 *
 *   1. superblocks: both copies; the newest valid one is used.  Its log
 *      areas are owned by the superblock (used space without extent items).
 *   2. structure: every tree is walked from its root (superblock root refs,
 *      then the ROOT_ITEMs of the root tree), each distinct block once.  A
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
 *      log areas included), each only when the trees it depends on were
 *      read completely, so that one damaged block gives one problem rather
 *      than a thousand consequential ones.
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
 *      against the committed state.
 *
 * All input is untrusted: every count is bounded by the block size, every
 * offset is checked before use, and arithmetic on disk values is done so
 * that it cannot overflow.  Memory grows with the number of distinct blocks
 * and extents referenced, which is bounded by the file size.
 */
#include "fsck.h"

#include "crc32c.h"
#include "format.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS COW_BLOCK_SIZE
#define NOIDX UINT32_MAX
#define MAX_LINES 10000u
#define LEAF_MAX_ITEMS (COW_LEAF_SPACE / COW_ITEM_SIZE) /* 192 */
#define MAX_EXTENT_BYTES ((uint64_t)COW_MAX_EXTENT_BLOCKS * BS)

/* ------------------------------------------------------------------ */
/* small containers                                                    */
/* ------------------------------------------------------------------ */

/* Grows *P (of *CAP elements of ESZ bytes) to hold at least NEED. */
static int vec_reserve(void **p, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -ENOMEM;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / esz)
        return -ENOMEM;
    void *np = realloc(*p, ncap * esz);
    if (!np)
        return -ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

/* Open-addressing hash map from u64 keys to u32 values (NOIDX = empty). */
struct u64map {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap; /* power of two, or 0 */
    size_t n;
};

static size_t map_slot(const struct u64map *m, uint64_t k)
{
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17) & (m->cap - 1);
}

/* Sets *v and returns 1 if K is present, else returns 0. */
static int map_get(const struct u64map *m, uint64_t k, uint32_t *v)
{
    if (!m->cap)
        return 0;
    for (size_t i = map_slot(m, k);; i = (i + 1) & (m->cap - 1)) {
        if (m->vals[i] == NOIDX)
            return 0;
        if (m->keys[i] == k) {
            *v = m->vals[i];
            return 1;
        }
    }
}

static int map_put(struct u64map *m, uint64_t k, uint32_t v);

static int map_grow(struct u64map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    if (ncap > SIZE_MAX / sizeof(uint64_t))
        return -ENOMEM;
    struct u64map nm = {malloc(ncap * sizeof(uint64_t)), malloc(ncap * sizeof(uint32_t)),
                        ncap, 0};
    if (!nm.keys || !nm.vals) {
        free(nm.keys);
        free(nm.vals);
        return -ENOMEM;
    }
    memset(nm.vals, 0xff, ncap * sizeof(uint32_t));
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i] != NOIDX)
            map_put(&nm, m->keys[i], m->vals[i]); /* cannot fail: room */
    free(m->keys);
    free(m->vals);
    *m = nm;
    return 0;
}

/* Inserts or replaces K -> V.  Returns 0 or -ENOMEM. */
static int map_put(struct u64map *m, uint64_t k, uint32_t v)
{
    if ((m->n + 1) * 2 > m->cap) {
        int rc = map_grow(m);
        if (rc)
            return rc;
    }
    size_t i = map_slot(m, k);
    while (m->vals[i] != NOIDX && m->keys[i] != k)
        i = (i + 1) & (m->cap - 1);
    if (m->vals[i] == NOIDX)
        m->n++;
    m->keys[i] = k;
    m->vals[i] = v;
    return 0;
}

static void map_free(struct u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* names                                                               */
/* ------------------------------------------------------------------ */

/* Tree classes; the first T_NSB have their roots in the superblock. */
enum { T_ROOT, T_EXTENT, T_CSUM, T_SUBVOL, T_NCLASS };
#define T_NSB T_SUBVOL

static const char *const class_name[T_NCLASS] = {"root tree", "extent tree", "csum tree",
                                                 "subvolume tree"};
static const uint64_t class_owner[T_NCLASS] = {COW_ROOT_TREE_OBJECTID,
                                               COW_EXTENT_TREE_OBJECTID,
                                               COW_CSUM_TREE_OBJECTID, COW_FS_TREE_OBJECTID};
/* Where the superblock holds their root refs. */
static const unsigned sb_root_off[T_NSB] = {SB_ROOT_TREE, SB_EXTENT_TREE, SB_CSUM_TREE};

static const char *type_name(unsigned t)
{
    switch (t) {
    case COW_INODE_ITEM: return "INODE_ITEM";
    case COW_DIR_ITEM: return "DIR_ITEM";
    case COW_EXTENT_DATA: return "EXTENT_DATA";
    case COW_EXTENT_CSUM: return "EXTENT_CSUM";
    case COW_ROOT_ITEM: return "ROOT_ITEM";
    case COW_ROOT_NAME: return "ROOT_NAME";
    case COW_EXTENT_ITEM: return "EXTENT_ITEM";
    case COW_METADATA_ITEM: return "METADATA_ITEM";
    case COW_BLOCK_GROUP_ITEM: return "BLOCK_GROUP_ITEM";
    case COW_ORPHAN_ITEM: return "ORPHAN_ITEM";
    case COW_LOG_RANGE: return "LOG_RANGE";
    default: return NULL;
    }
}

/* Formats key K as "(objectid TYPE offset)" into BUF (at least 64 bytes). */
static const char *key_str(const struct cow_key *k, char *buf, size_t len)
{
    const char *tn = type_name(k->type);
    if (tn)
        snprintf(buf, len, "(%" PRIu64 " %s %" PRIu64 ")", k->objectid, tn, k->offset);
    else
        snprintf(buf, len, "(%" PRIu64 " type%u %" PRIu64 ")", k->objectid, k->type,
                 k->offset);
    return buf;
}

/* a + b, saturating at UINT64_MAX (so that "end > limit" stays true). */
static uint64_t range_end(uint64_t start, uint64_t len)
{
    return len > UINT64_MAX - start ? UINT64_MAX : start + len;
}

/* NAME (LEN bytes) for a message, non-printable bytes as \xNN; BUF >= 1024. */
static const char *name_str(const uint8_t *name, unsigned len, char *buf, size_t size)
{
    size_t o = 0;
    for (unsigned i = 0; i < len && o + 5 < size; i++) {
        if (name[i] >= 0x20 && name[i] < 0x7f && name[i] != '\\')
            buf[o++] = (char)name[i];
        else
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", name[i]);
    }
    buf[o] = 0;
    return buf;
}

/* 1 if P (LEN bytes) is valid UTF-8 (RFC 3629: shortest forms only, no
 * surrogates, nothing above U+10FFFF). */
static int utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i++];
        if (c < 0x80)
            continue;
        /* continuation bytes, 0xc0/0xc1 (always overlong) and 0xf5.. never
         * start a character */
        if (c < 0xc2 || c > 0xf4)
            return 0;
        size_t more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
        uint32_t cp = c & (0x3fu >> more);
        uint32_t min = more == 3 ? 0x10000 : more == 2 ? 0x800 : 0x80;
        if (len - i < more)
            return 0;
        for (size_t j = 0; j < more; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + j] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += more;
    }
    return 1;
}

/*
 * The ROOT_NAMEs of a root tree (subvolume names), their bytes in one pool
 * so that memory stays in proportion to what the tree holds.
 */
struct rname {
    uint64_t id;  /* the key's objectid */
    size_t off;   /* into pool */
    unsigned len; /* 1..COW_NAME_MAX */
};

struct names {
    struct rname *v;
    size_t n, cap;
    uint8_t *pool;
    size_t npool, cappool;
};

/* Adds the name P (LEN bytes, 1..COW_NAME_MAX) of subvolume ID.  Returns 0
 * or -ENOMEM. */
static int names_add(struct names *nm, uint64_t id, const uint8_t *p, unsigned len)
{
    if (nm->n >= NOIDX - 1 || vec_reserve((void **)&nm->v, &nm->cap, nm->n + 1, sizeof(*nm->v)) ||
        vec_reserve((void **)&nm->pool, &nm->cappool, nm->npool + len, 1))
        return -ENOMEM;
    nm->v[nm->n++] = (struct rname){id, nm->npool, len};
    memcpy(nm->pool + nm->npool, p, len);
    nm->npool += len;
    return 0;
}

static const uint8_t *names_bytes(const struct names *nm, size_t i)
{
    return nm->pool + nm->v[i].off;
}

static void names_free(struct names *nm)
{
    free(nm->v);
    free(nm->pool);
    memset(nm, 0, sizeof(*nm));
}

/* "snapshot", "branch", or NULL for other ROOT_ITEM flags. */
static const char *root_kind(uint64_t flags)
{
    return flags == COW_ROOT_F_SNAPSHOT                            ? "snapshot"
           : flags == COW_ROOT_F_BRANCH                            ? "branch"
           : flags == (COW_ROOT_F_BRANCH | COW_ROOT_F_INCOMPLETE) ? "unfinished branch"
                                                                    : NULL;
}

/*
 * A set of blocks of one data extent (at most COW_MAX_EXTENT_BLOCKS), one bit
 * a block: which blocks REG EXTENT_DATA items map, the ones that hold written
 * data and are checked.
 */
#define BMAP_WORDS (COW_MAX_EXTENT_BLOCKS / 64)

/* The end (exclusive) of the blocks that an EXTENT_DATA item with XOFF and
 * NBYTES maps in its extent, as replay computes it; UINT64_MAX if that
 * overflows. */
static uint64_t fe_block_end(uint64_t xoff, uint64_t nbytes)
{
    return range_end(xoff / BS, nbytes / BS);
}

/* Adds the blocks that an EXTENT_DATA item with XOFF and NBYTES maps to M;
 * blocks past the largest extent are left out (check_file_extent reports
 * such items). */
static void bmap_add(uint64_t *m, uint64_t xoff, uint64_t nbytes)
{
    uint64_t e = fe_block_end(xoff, nbytes);
    if (e > COW_MAX_EXTENT_BLOCKS)
        e = COW_MAX_EXTENT_BLOCKS;
    for (uint64_t b = xoff / BS; b < e; b++)
        m[b / 64] |= 1ull << (b % 64);
}

static int bmap_has(const uint64_t *m, uint32_t b)
{
    return b < COW_MAX_EXTENT_BLOCKS && (m[b / 64] >> (b % 64) & 1);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* reading                                                             */
/* ------------------------------------------------------------------ */

/*
 * Reads LEN bytes at OFF.  Returns 0, 1 for a short read (past the end of
 * the file; the rest of BUF is zeroed), or a positive errno for a failed
 * read.  Retries EINTR and partial reads.
 */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    size_t done = 0;
    if (off > (uint64_t)INT64_MAX - len) {
        memset(buf, 0, len);
        return 1;
    }
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (n == 0) {
            memset(p + done, 0, len - done);
            return 1;
        }
        done += (size_t)n;
    }
    return 0;
}

static uint32_t block_csum(const uint8_t *b)
{
    return crc32c(0, b + 4, BS - 4);
}

/* Opens PATH read-only for checking; *fsize gets its size. Returns fd or -errno. */
static int open_container(const char *path, uint64_t *fsize, int *locked, FILE *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (out)
            fprintf(out, "%s: cannot open: %s\n", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        if (out)
            fprintf(out, "%s: cannot stat: %s\n", path, strerror(e));
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        if (out)
            fprintf(out, "%s: not a regular file\n", path);
        close(fd);
        return -EISDIR;
    }
    *fsize = (uint64_t)st.st_size;
    *locked = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0)
        *locked = 1;
    return fd;
}

/* ------------------------------------------------------------------ */
/* checker state                                                       */
/* ------------------------------------------------------------------ */

enum { B_VISITING, B_OK, B_BAD };

/* A distinct tree block. */
struct blk {
    uint64_t bytenr;
    uint64_t gen;     /* header generation (valid when state == B_OK) */
    uint64_t tree_id; /* first tree that reached it (subvol id or owner) */
    struct cow_key min, max; /* key range of its subtree (if has_keys) */
    uint32_t refs;    /* distinct parents + ROOT_ITEMs (subvolume blocks) */
    uint8_t cls;
    uint8_t level;
    uint8_t state;
    uint8_t has_keys;
    uint8_t sub_bad;  /* this block or one below could not be read fully */
    uint8_t has_meta; /* a METADATA_ITEM was seen for it */
};

/* A data extent: referenced by EXTENT_DATA items and/or an EXTENT_ITEM. */
struct dext {
    uint64_t bytenr;
    uint64_t ref_len;  /* disk_num_bytes from the first EXTENT_DATA */
    uint64_t item_len; /* EXTENT_ITEM key offset (if has_item) */
    uint64_t refs;     /* counted EXTENT_DATA items, per distinct leaf */
    uint64_t item_refs;
    uint64_t first_leaf; /* a leaf referencing it, for messages */
    size_t csum_off;   /* into pool, if has_csum */
    uint32_t ncsum;
    uint8_t has_item;
    uint8_t has_csum;
    uint64_t reg[BMAP_WORDS]; /* blocks REG EXTENT_DATA items map, any subvolume */
};

/* EXTENT_ITEM or METADATA_ITEM, as found in the extent tree. */
struct xitem {
    struct cow_key key;
    uint64_t refs, gen, flags;
};

struct bgi {
    uint64_t start, len, used, flags;
    uint64_t calc; /* recomputed used bytes */
};

struct csi {
    uint64_t bytenr;
    size_t off; /* into pool */
    uint32_t n;
};

struct subvol {
    uint64_t id, bytenr, gen, next_ino;
    uint64_t flags, source; /* ROOT_ITEM flags and source subvolume id */
    unsigned level;
    uint32_t root; /* blk index or NOIDX */
    uint32_t name; /* index of its ROOT_NAME in the names, or NOIDX */
};
/* svmap value of a ROOT_ITEM that failed its checks (not in f->sv) */
#define SV_BAD (NOIDX - 1)

/* A used range of the container, for the space checks. */
struct span {
    uint64_t start, len;
    uint64_t id;  /* block or extent address */
    uint8_t kind; /* SP_* */
    uint8_t sub;  /* SP_TREE: class; SP_LOG: superblock copy */
};
enum { SP_SB, SP_TREE, SP_DATA, SP_LOG };

struct rootref {
    uint64_t bytenr, gen;
    unsigned level;
    int valid;
};

struct fsck {
    int fd;
    FILE *out;
    unsigned flags;
    uint64_t fsize;
    uint64_t lines;
    struct cow_fsck_result *r;
    int fatal; /* negative errno: stop */

    /* the superblock in use */
    uint64_t gen, bg_size, total, bytes_used;
    struct rootref rr[T_NSB]; /* root, extent, csum (indexed by class) */
    uint64_t log_area[COW_SB_COPIES], log_id;
    uint32_t log_blocks;
    int have_log; /* both log areas present and block aligned */
    /* a torn newer copy (generation replay_min_gen) says replay_min records
     * of the log were flushed; 0 = no such copy */
    uint32_t replay_min;
    uint64_t replay_min_gen;
    char sb_rejected[200]; /* why the newest copy is not used, or "" */
    int log_bad;  /* the log area fields are invalid: used bytes unknown */

    /* the walk in progress */
    int cls;
    uint64_t tree_id;

    struct blk *blk;
    size_t nblk, capblk;
    struct u64map blkmap;

    struct dext *dx;
    size_t ndx, capdx;
    struct u64map dxmap;

    struct xitem *xi;
    size_t nxi, capxi;
    struct bgi *bg;
    size_t nbg, capbg;
    struct csi *cs;
    size_t ncs, capcs;
    uint32_t *pool;
    size_t npool, cappool;
    struct subvol *sv;
    size_t nsv, capsv;
    struct u64map svmap;  /* ROOT_ITEM id -> index in sv (the first), or SV_BAD */
    struct names names;   /* ROOT_NAMEs of subvolumes > 256 */

    int tree_ok[T_NCLASS]; /* root/extent/csum trees read completely */
    int space_ok;          /* every used range is known (check_space's all_ok) */
    struct span *sp;       /* used ranges, sorted (kept by check_space) */
    size_t nsp;
    struct u64map logx;    /* logged data extent -> its blocks (pass 5) */
};

static void vmsg(struct fsck *f, int is_note, const char *fmt, va_list ap)
{
    if (!f->out)
        return;
    if (f->lines == MAX_LINES) {
        fprintf(f->out, "(further problems only counted)\n");
        f->lines++;
    }
    if (f->lines > MAX_LINES)
        return;
    f->lines++;
    if (is_note)
        fputs("note: ", f->out);
    vfprintf(f->out, fmt, ap);
    fputc('\n', f->out);
}

__attribute__((format(printf, 2, 3))) static void problem(struct fsck *f, const char *fmt,
                                                          ...)
{
    va_list ap;
    f->r->problems++;
    va_start(ap, fmt);
    vmsg(f, 0, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void note(struct fsck *f, const char *fmt, ...)
{
    va_list ap;
    f->r->notes++;
    if (!(f->flags & COW_FSCK_NOTES))
        return;
    va_start(ap, fmt);
    vmsg(f, 1, fmt, ap);
    va_end(ap);
}

static void set_fatal(struct fsck *f, int rc)
{
    if (!f->fatal)
        f->fatal = rc;
}

/* "extent tree block 123" / "subvolume 256 tree block 123" */
static const char *blk_where(int cls, uint64_t tree_id, uint64_t bytenr, char *buf, size_t len)
{
    if (cls == T_SUBVOL)
        snprintf(buf, len, "subvolume %" PRIu64 " tree block %" PRIu64, tree_id, bytenr);
    else
        snprintf(buf, len, "%s block %" PRIu64, class_name[cls], bytenr);
    return buf;
}

/* ------------------------------------------------------------------ */
/* pass 1: superblocks                                                 */
/* ------------------------------------------------------------------ */

/* Why copy BUF is not a usable superblock, or NULL if it is. */
static const char *sb_invalid(const uint8_t *buf, int rd, char *why, size_t len)
{
    if (rd == 1)
        return "past the end of the file";
    if (rd > 1) {
        snprintf(why, len, "read error: %s", strerror(rd));
        return why;
    }
    if (get64(buf + SB_MAGIC) != COW_SB_MAGIC)
        return all_zero(buf, BS) ? "all zero" : "bad magic";
    uint32_t c = block_csum(buf), s = get32(buf + SB_CSUM);
    if (c != s) {
        snprintf(why, len, "bad checksum (stored 0x%08x, computed 0x%08x)", s, c);
        return why;
    }
    if (get32(buf + SB_VERSION) != COW_FORMAT_VERSION) {
        snprintf(why, len, "format version %u, expected %u", get32(buf + SB_VERSION),
                 COW_FORMAT_VERSION);
        return why;
    }
    if (get32(buf + SB_BLOCK_SIZE) != BS) {
        snprintf(why, len, "block size %u, expected %u", get32(buf + SB_BLOCK_SIZE), BS);
        return why;
    }
    /* as the store: a generation of 2^48 or more would make the next
     * commit's 48-bit root references wrong */
    uint64_t gen = get64(buf + SB_GENERATION), prev = get64(buf + SB_PREV_GENERATION);
    if (gen == 0 || gen > COW_MAX_GENERATION || prev >= gen) {
        snprintf(why, len, "generation %" PRIu64 " (previous %" PRIu64 ") out of range 1..%llu",
                 gen, prev, (unsigned long long)COW_MAX_GENERATION);
        return why;
    }
    for (int t = 0; t < 3; t++) {
        static const unsigned off[3] = {SB_ROOT_TREE, SB_EXTENT_TREE, SB_CSUM_TREE};
        if (get48(buf + off[t] + RR_GENERATION) > gen) {
            snprintf(why, len, "root reference %d has generation %" PRIu64 ", past %" PRIu64, t,
                     get48(buf + off[t] + RR_GENERATION), gen);
            return why;
        }
    }
    if (get32(buf + SB_FLAGS) & ~COW_SB_ONE_FLUSH) {
        snprintf(why, len, "flags 0x%x, only 0x%x (one flush) is defined",
                 get32(buf + SB_FLAGS), COW_SB_ONE_FLUSH);
        return why;
    }
    if (get32(buf + SB_COMMIT_NRANGES) > SB_COMMIT_MAX) {
        snprintf(why, len, "commit list of %u entries (maximum %u)",
                 get32(buf + SB_COMMIT_NRANGES), SB_COMMIT_MAX);
        return why;
    }
    uint64_t bg = get64(buf + SB_BG_SIZE), total = get64(buf + SB_TOTAL_BYTES);
    if (bg < 64 * BS || bg % BS || bg > (1ull << 34) || total == 0 || total % bg) {
        snprintf(why, len, "block group size %" PRIu64 " or total_bytes %" PRIu64
                           " out of range", bg, total);
        return why;
    }
    return NULL;
}

/*
 * A one-flush superblock (COW_SB_ONE_FLUSH) is only valid if every block of
 * its commit list is on disk: recompute the crc32c of each listed block and
 * the crc over those.  Returns NULL if intact (or not a one-flush commit),
 * else why not.
 */
static const char *sb_commit_torn(int fd, uint64_t fsize, const uint8_t *sb, char *why,
                                  size_t len)
{
    if (!(get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH))
        return NULL;
    if (get64(sb + SB_TOTAL_BYTES) > fsize) {
        /* the container grew in this commit, whose flush did not complete */
        snprintf(why, len, "torn one-flush commit (total_bytes %" PRIu64
                           " is past the end of the file, a grow was lost)",
                 get64(sb + SB_TOTAL_BYTES));
        return why;
    }
    uint32_t n = get32(sb + SB_COMMIT_NRANGES), acc = 0;
    uint64_t total = 0;
    uint8_t blk[BS];
    if (n > SB_COMMIT_MAX) {
        snprintf(why, len, "commit list of %u entries (maximum %u)", n, SB_COMMIT_MAX);
        return why;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = sb + SB_COMMIT_LIST + (size_t)i * SB_COMMIT_ENTRY;
        uint64_t at = get64(e), nb = get32(e + 8);
        total += nb;
        if (at % BS || nb == 0 || total > COW_ONE_FLUSH_MAX_BLOCKS || at > fsize ||
            nb * BS > fsize - at) {
            snprintf(why, len, "commit list entry %u [%" PRIu64 ", %" PRIu64 " blocks) is invalid",
                     i, at, nb);
            return why;
        }
        for (uint64_t b = 0; b < nb; b++) {
            if (read_at(fd, blk, BS, at + b * BS) != 0) {
                snprintf(why, len, "cannot read listed block %" PRIu64, at + b * BS);
                return why;
            }
            uint8_t le[4];
            put32(le, crc32c(0, blk, BS));
            acc = crc32c(acc, le, 4);
        }
    }
    if (acc != get32(sb + SB_COMMIT_CRC)) {
        snprintf(why, len, "torn one-flush commit (listed blocks do not match)");
        return why;
    }
    return NULL;
}

static void rootref_get(struct fsck *f, const uint8_t *sb, int cls, unsigned off)
{
    const uint8_t *p = sb + off;
    struct rootref *rr = &f->rr[cls];
    rr->bytenr = get64(p + RR_BYTENR);
    rr->gen = get48(p + RR_GENERATION);
    rr->level = p[RR_LEVEL];
    rr->valid = 0;
    int ok = 1;
    if (rr->bytenr == 0 || rr->bytenr % BS) {
        problem(f, "superblock: %s root at %" PRIu64 ", not a block address", class_name[cls],
                rr->bytenr);
        ok = 0;
    }
    if (rr->level >= COW_MAX_LEVEL) {
        problem(f, "superblock: %s root level %u (maximum %u)", class_name[cls], rr->level,
                COW_MAX_LEVEL - 1);
        ok = 0;
    }
    rr->valid = ok;
}

/*
 * Reads and checks the log area fields of superblock SB (the copy in use);
 * OTHER is the other copy (number O) if it is valid, else NULL.  Sets
 * f->have_log when both areas can be accounted and scanned; where they lie
 * (bounds, overlaps, block group type) is checked with the other used space.
 */
static void check_log_areas(struct fsck *f, const uint8_t *sb, const uint8_t *other, int o)
{
    f->log_area[0] = get64(sb + SB_LOG_AREA0);
    f->log_area[1] = get64(sb + SB_LOG_AREA1);
    f->log_blocks = get32(sb + SB_LOG_BLOCKS);
    f->log_id = get64(sb + SB_LOG_ID);
    f->have_log = 0;
    if (get32(sb + SB_LOG_BLOCKS + 4))
        problem(f, "superblock: bytes 124..127 (after the log area length) are not zero");
    if (other && memcmp(other + SB_LOG_AREA0, sb + SB_LOG_AREA0, SB_UUID - SB_LOG_AREA0))
        note(f, "superblock copy %d has other log areas (%" PRIu64 ", %" PRIu64 ", %u blocks)",
             o, get64(other + SB_LOG_AREA0), get64(other + SB_LOG_AREA1),
             get32(other + SB_LOG_BLOCKS));
    uint64_t a0 = f->log_area[0], a1 = f->log_area[1];
    uint32_t nb = f->log_blocks;
    if (!a0 && !a1 && !nb) {
        note(f, "superblock: the container has no log areas");
        return;
    }
    if (!a0 || !a1 || !nb) {
        problem(f, "superblock: log areas at %" PRIu64 " and %" PRIu64 " of %u blocks: "
                   "either all three are 0 (no log areas) or none is",
                a0, a1, nb);
        f->log_bad = 1;
        return;
    }
    int ok = 1;
    if (f->bg_size && nb > f->bg_size / BS) {
        problem(f, "superblock: log areas of %u blocks, longer than a block group (%" PRIu64
                   " blocks)",
                nb, f->bg_size / BS);
        ok = 0;
    }
    for (int k = 0; k < COW_SB_COPIES; k++)
        if (f->log_area[k] % BS) {
            problem(f, "superblock: log area %d at %" PRIu64 ", not a block address", k,
                    f->log_area[k]);
            ok = 0;
        }
    f->have_log = ok;
    f->log_bad = !ok;
}

/* Returns 0 if a superblock was found, 1 if not (a problem was reported). */
static int check_superblocks(struct fsck *f)
{
    uint8_t buf[2][BS];
    const char *why[2];
    char whybuf[2][128];
    int valid[2];
    for (int i = 0; i < 2; i++) {
        int rd = read_at(f->fd, buf[i], BS, (uint64_t)i * BS);
        why[i] = sb_invalid(buf[i], rd, whybuf[i], sizeof(whybuf[i]));
        valid[i] = why[i] == NULL;
        /* as the store: a whole copy (crc matches) with a field out of
         * range is damage, and the store refuses to open */
        if (!valid[i] && !rd && get64(buf[i] + SB_MAGIC) == COW_SB_MAGIC &&
            block_csum(buf[i]) == get32(buf[i] + SB_CSUM))
            problem(f, "superblock copy %d is whole (its checksum matches) but invalid: %s; "
                       "the store refuses to open",
                    i, why[i]);
    }
    /* The newest copy may be a torn one-flush commit: then it does not
     * count, and the previous commit (the other copy) is the container. */
    int newest = valid[0] && valid[1]
                     ? (get64(buf[1] + SB_GENERATION) > get64(buf[0] + SB_GENERATION) ? 1 : 0)
                     : (valid[0] ? 0 : 1);
    if (valid[newest]) {
        const char *torn = sb_commit_torn(f->fd, f->fsize, buf[newest], whybuf[newest],
                                          sizeof(whybuf[newest]));
        if (torn) {
            /* as the store: the other copy must hold the commit the torn
             * one was written after, whole, with at least as many log
             * records as the torn one says were flushed (check_log) */
            valid[newest] = 0;
            why[newest] = torn;
            int o2 = 1 - newest;
            uint64_t tgen = get64(buf[newest] + SB_GENERATION);
            uint64_t want = get64(buf[newest] + SB_PREV_GENERATION);
            snprintf(f->sb_rejected, sizeof(f->sb_rejected),
                     "superblock copy %d (generation %" PRIu64 "): %s", newest, tgen, torn);
            if (valid[o2] && get64(buf[o2] + SB_GENERATION) != want) {
                problem(f, "superblock copy %d (generation %" PRIu64 ") is torn, and copy %d "
                           "holds generation %" PRIu64 ", not generation %" PRIu64
                           " it was written after",
                        newest, tgen, o2, get64(buf[o2] + SB_GENERATION), want);
                valid[o2] = 0;
                why[o2] = "not the commit the torn copy was written after";
            } else if (valid[o2]) {
                const char *t2 = sb_commit_torn(f->fd, f->fsize, buf[o2], whybuf[o2],
                                                sizeof(whybuf[o2]));
                if (t2) {
                    problem(f, "superblock copy %d: %s, and copy %d: %s; generation %" PRIu64
                               " was flushed, so that is damage",
                            newest, torn, o2, t2, want);
                    valid[o2] = 0;
                    why[o2] = t2;
                }
            } else if (want) {
                problem(f, "superblock copy %d (generation %" PRIu64 ") is torn, and copy %d, "
                           "which must hold generation %" PRIu64 ", is damaged (%s)",
                        newest, tgen, o2, want, why[o2]);
            }
            f->replay_min = get32(buf[newest] + SB_PREV_LOG_RECORDS);
            f->replay_min_gen = tgen;
        } else if (!valid[1 - newest] && get64(buf[1 - newest] + SB_MAGIC) == COW_SB_MAGIC) {
            snprintf(f->sb_rejected, sizeof(f->sb_rejected), "superblock copy %d: %s",
                     1 - newest, why[1 - newest]);
        }
    }
    if (!valid[0] && !valid[1]) {
        if (f->fsize == 0)
            problem(f, "no valid superblock: the file is empty");
        else
            problem(f, "no valid superblock (copy 0: %s; copy 1: %s): not a cowvfs container",
                    why[0], why[1]);
        return 1;
    }
    int c;
    if (valid[0] && valid[1])
        c = get64(buf[1] + SB_GENERATION) > get64(buf[0] + SB_GENERATION) ? 1 : 0;
    else
        c = valid[0] ? 0 : 1;
    const uint8_t *sb = buf[c];
    int o = 1 - c;
    f->gen = get64(sb + SB_GENERATION);
    f->r->sb_copy = c;
    f->r->generation = f->gen;

    if (!valid[o]) {
        note(f, "superblock copy %d is not valid (%s); copy %d (generation %" PRIu64
                ") is used; legal after a crash while writing a superblock",
             o, why[o], c, f->gen);
    } else {
        uint64_t og = get64(buf[o] + SB_GENERATION);
        if (og == f->gen)
            problem(f, "both superblock copies have generation %" PRIu64, og);
        else if (f->gen - og != 1)
            note(f, "superblock copy %d has generation %" PRIu64 ", copy %d has %" PRIu64, o, og,
                 c, f->gen);
        if (memcmp(buf[o] + SB_UUID, sb + SB_UUID, 16) != 0)
            problem(f, "superblock copies have different container uuids");
    }

    uint32_t flags = get32(sb + SB_FLAGS);
    if (flags & ~COW_SB_ONE_FLUSH)
        problem(f, "superblock: flags 0x%x, only 0x%x (one flush) is defined", flags,
                COW_SB_ONE_FLUSH);
    size_t sb_end = SB_COMMIT_LIST;
    if (flags & COW_SB_ONE_FLUSH)
        sb_end += (size_t)get32(sb + SB_COMMIT_NRANGES) * SB_COMMIT_ENTRY;
    else if (!all_zero(sb + SB_COMMIT_NRANGES, SB_LOG_ID - SB_COMMIT_NRANGES))
        problem(f, "superblock: a commit list without the one-flush flag");
    f->bg_size = get64(sb + SB_BG_SIZE);
    f->total = get64(sb + SB_TOTAL_BYTES);
    f->bytes_used = get64(sb + SB_BYTES_USED);
    f->r->total_bytes = f->total;
    if (f->bg_size == 0 || f->bg_size % BS || f->bg_size < 2 * BS) {
        problem(f, "superblock: block group size %" PRIu64 " is not a multiple of 4096 of at least 8192",
                f->bg_size);
        f->bg_size = 0; /* no block group checks */
    }
    if (f->total == 0 || (f->bg_size && f->total % f->bg_size))
        problem(f, "superblock: total_bytes %" PRIu64 " is not a positive multiple of the block group size %" PRIu64,
                f->total, f->bg_size);
    if (f->bytes_used > f->total)
        problem(f, "superblock: bytes_used %" PRIu64 " > total_bytes %" PRIu64, f->bytes_used,
                f->total);
    if (f->total > f->fsize)
        problem(f, "container file is truncated: %" PRIu64 " bytes, total_bytes is %" PRIu64,
                f->fsize, f->total);
    else if (f->total != f->fsize)
        note(f, "container file is %" PRIu64 " bytes, total_bytes is %" PRIu64, f->fsize,
             f->total);
    if (get32(sb + SB_PREV_LOG_RECORDS + 4))
        problem(f, "superblock: bytes 180..183 (after prev_log_records) are not zero");
    if (sb_end < BS && !all_zero(sb + sb_end, BS - sb_end))
        problem(f, "superblock: bytes %zu..4095 are not zero", sb_end);
    for (int t = 0; t < T_NSB; t++) {
        rootref_get(f, sb, t, sb_root_off[t]);
        if (f->rr[t].valid && f->rr[t].gen > f->gen)
            problem(f, "superblock: %s root generation %" PRIu64 " > superblock generation %" PRIu64,
                    class_name[t], f->rr[t].gen, f->gen);
    }
    check_log_areas(f, sb, valid[o] ? buf[o] : NULL, o);
    return 0;
}

/* ------------------------------------------------------------------ */
/* pass 2: structure                                                   */
/* ------------------------------------------------------------------ */

static struct dext *dext_get(struct fsck *f, uint64_t bytenr, int create)
{
    uint32_t i;
    if (map_get(&f->dxmap, bytenr, &i))
        return &f->dx[i];
    if (!create)
        return NULL;
    if (f->ndx >= NOIDX - 1 ||
        vec_reserve((void **)&f->dx, &f->capdx, f->ndx + 1, sizeof(*f->dx)) ||
        map_put(&f->dxmap, bytenr, (uint32_t)f->ndx)) {
        set_fatal(f, -ENOMEM);
        return NULL;
    }
    struct dext *d = &f->dx[f->ndx++];
    memset(d, 0, sizeof(*d));
    d->bytenr = bytenr;
    return d;
}

/*
 * Checks one EXTENT_DATA item (data P, 40 bytes) of leaf LEAF and counts its
 * ref; or, with LEAF == 0, one of a log record (generation not checked: the
 * record belongs to the transaction after the superblock's; no ref).
 */
static void check_file_extent(struct fsck *f, const char *where, const struct cow_key *k,
                              const uint8_t *p, uint64_t leaf)
{
    char ks[80];
    key_str(k, ks, sizeof(ks));
    uint64_t dbytenr = get64(p + FE_DISK_BYTENR), dlen = get64(p + FE_DISK_NUM_BYTES);
    uint64_t xoff = get64(p + FE_EXTENT_OFFSET), nbytes = get64(p + FE_NUM_BYTES);
    uint32_t gen = get32(p + FE_GENERATION);
    unsigned type = p[FE_TYPE];
    int ok = 1;
    if (k->offset % BS)
        problem(f, "%s: %s: file offset not a multiple of 4096", where, ks);
    if (dbytenr == 0) {
        problem(f, "%s: %s: disk_bytenr 0 (holes are never stored)", where, ks);
        ok = 0;
    } else if (dbytenr % BS) {
        problem(f, "%s: %s: disk_bytenr %" PRIu64 " not a multiple of 4096", where, ks, dbytenr);
        ok = 0;
    }
    if (dlen == 0 || dlen % BS || dlen > MAX_EXTENT_BYTES) {
        problem(f, "%s: %s: disk_num_bytes %" PRIu64 " not a multiple of 4096 in 4096..%" PRIu64,
                where, ks, dlen, MAX_EXTENT_BYTES);
        ok = 0;
    }
    if (nbytes == 0 || nbytes % BS)
        problem(f, "%s: %s: num_bytes %" PRIu64 " not a positive multiple of 4096", where, ks,
                nbytes);
    if (xoff % BS)
        problem(f, "%s: %s: extent_offset %" PRIu64 " not a multiple of 4096", where, ks, xoff);
    if (range_end(xoff, nbytes) > dlen)
        problem(f, "%s: %s: extent_offset %" PRIu64 " + num_bytes %" PRIu64
                   " exceeds disk_num_bytes %" PRIu64,
                where, ks, xoff, nbytes, dlen);
    if (type != COW_FE_REG && type != COW_FE_PREALLOC)
        problem(f, "%s: %s: extent type %u (expected 0 REG or 1 PREALLOC)", where, ks, type);
    if (leaf && f->gen <= UINT32_MAX && gen > f->gen)
        problem(f, "%s: %s: generation %u > superblock generation %" PRIu64, where, ks, gen,
                f->gen);
    if (!ok || !leaf)
        return;
    struct dext *d = dext_get(f, dbytenr, 1);
    if (!d)
        return;
    if (d->refs == 0) {
        d->ref_len = dlen;
        d->first_leaf = leaf;
    } else if (d->ref_len != dlen) {
        problem(f, "%s: %s: data extent %" PRIu64 " has disk_num_bytes %" PRIu64
                   " here but %" PRIu64 " in leaf %" PRIu64,
                where, ks, dbytenr, dlen, d->ref_len, d->first_leaf);
    }
    d->refs++;
    if (type == COW_FE_REG)
        bmap_add(d->reg, xoff, nbytes);
}

static void check_dir_entries(struct fsck *f, const char *where, const struct cow_key *k,
                              const uint8_t *p, unsigned size);

/* Checks item I (key K, data P of SIZE bytes) of leaf IDX on its first visit. */
static void check_item(struct fsck *f, uint32_t idx, const char *where, const struct cow_key *k,
                       const uint8_t *p, unsigned size)
{
    char ks[80];
    key_str(k, ks, sizeof(ks));
    int cls = f->cls;
    unsigned want = 0; /* fixed size, 0 = variable */
    int allowed = 0;
    switch (k->type) {
    case COW_INODE_ITEM:
        want = INODE_ITEM_SIZE;
        allowed = cls == T_SUBVOL;
        break;
    case COW_DIR_ITEM:
        allowed = cls == T_SUBVOL;
        break;
    case COW_EXTENT_DATA:
        want = FE_ITEM_SIZE;
        allowed = cls == T_SUBVOL;
        break;
    case COW_EXTENT_CSUM:
        allowed = cls == T_CSUM;
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
    case COW_ORPHAN_ITEM:
        allowed = cls == T_SUBVOL;
        break;
    default:
        break;
    }
    if (!allowed) {
        problem(f, "%s: item %s does not belong in the %s", where, ks, class_name[cls]);
        return;
    }
    if ((want || k->type == COW_ORPHAN_ITEM) && size != want) {
        problem(f, "%s: item %s is %u bytes, expected %u", where, ks, size, want);
        return;
    }

    switch (k->type) {
    case COW_INODE_ITEM: {
        uint64_t g = get64(p + INODE_GENERATION), t = get64(p + INODE_TRANSID);
        if (k->offset != 0)
            problem(f, "%s: %s: INODE_ITEM key offset must be 0", where, ks);
        if (get64(p + INODE_FLAGS))
            problem(f, "%s: %s: inode flags 0x%" PRIx64 ", none are defined", where, ks,
                    get64(p + INODE_FLAGS));
        if (g > f->gen || t > f->gen)
            problem(f, "%s: %s: inode generation %" PRIu64 " / transid %" PRIu64
                       " > superblock generation %" PRIu64,
                    where, ks, g, t, f->gen);
        break;
    }
    case COW_DIR_ITEM:
        check_dir_entries(f, where, k, p, size);
        break;
    case COW_ORPHAN_ITEM:
        if (k->objectid != COW_ORPHAN_OBJECTID || k->offset < COW_FIRST_INO)
            problem(f, "%s: %s: orphan items are keyed (%llu ORPHAN_ITEM ino >= %llu)", where, ks,
                    (unsigned long long)COW_ORPHAN_OBJECTID, (unsigned long long)COW_FIRST_INO);
        break;
    case COW_EXTENT_DATA:
        check_file_extent(f, where, k, p, f->blk[idx].bytenr);
        break;
    case COW_EXTENT_CSUM:
        if (k->objectid != COW_CSUM_TREE_OBJECTID)
            problem(f, "%s: %s: csum items have object id %llu", where, ks,
                    (unsigned long long)COW_CSUM_TREE_OBJECTID);
        if (size == 0 || size % 4 || size > COW_MAX_EXTENT_BLOCKS * 4) {
            problem(f, "%s: %s: %u bytes is not a list of 1..%u crc32c values", where, ks, size,
                    COW_MAX_EXTENT_BLOCKS);
            break;
        }
        if (vec_reserve((void **)&f->cs, &f->capcs, f->ncs + 1, sizeof(*f->cs)) ||
            vec_reserve((void **)&f->pool, &f->cappool, f->npool + size / 4, sizeof(uint32_t))) {
            set_fatal(f, -ENOMEM);
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
            problem(f, "%s: %s: subvolume ids start at 256", where, ks);
            ok = 0;
        }
        if (k->offset != 0)
            problem(f, "%s: %s: ROOT_ITEM key offset must be 0", where, ks);
        if (bytenr == 0 || bytenr % BS) {
            problem(f, "%s: %s: root bytenr %" PRIu64 " is not a block address", where, ks,
                    bytenr);
            ok = 0;
        }
        if (level >= COW_MAX_LEVEL) {
            problem(f, "%s: %s: root level %u (maximum %u)", where, ks, level,
                    COW_MAX_LEVEL - 1);
            ok = 0;
        }
        if (gen > f->gen)
            problem(f, "%s: %s: root generation %" PRIu64 " > superblock generation %" PRIu64,
                    where, ks, gen, f->gen);
        if (get64(p + ROOT_LAST_SNAPSHOT) > f->gen)
            problem(f, "%s: %s: last_snapshot %" PRIu64 " > superblock generation %" PRIu64,
                    where, ks, get64(p + ROOT_LAST_SNAPSHOT), f->gen);
        if (get64(p + ROOT_NEXT_INO) < COW_FIRST_INO)
            problem(f, "%s: %s: next_ino %" PRIu64 " < %llu", where, ks,
                    get64(p + ROOT_NEXT_INO), (unsigned long long)COW_FIRST_INO);
        /* the live subvolume has no flags; a snapshot or branch is made
         * from an existing subvolume, which may be deleted since */
        uint64_t flags = get64(p + ROOT_FLAGS), source = get64(p + ROOT_SOURCE);
        if (k->objectid == COW_FS_TREE_OBJECTID && flags)
            problem(f, "%s: %s: flags 0x%" PRIx64 ", the live subvolume has none", where, ks,
                    flags);
        if (k->objectid > COW_FS_TREE_OBJECTID && !root_kind(flags))
            problem(f, "%s: %s: flags 0x%" PRIx64 ", expected exactly one of 0x%llx (snapshot) "
                       "and 0x%llx (branch), the latter possibly with 0x%llx (unfinished)",
                    where, ks, flags, COW_ROOT_F_SNAPSHOT, COW_ROOT_F_BRANCH,
                    COW_ROOT_F_INCOMPLETE);
        if (k->objectid > COW_FS_TREE_OBJECTID &&
            (source < COW_FS_TREE_OBJECTID || source == k->objectid))
            problem(f, "%s: %s: source subvolume %" PRIu64 " (expected the id, 256 or more, of "
                       "another subvolume)",
                    where, ks, source);
        /* svmap: the first ROOT_ITEM of each id (a second one breaks key
         * order, reported by check_leaf) */
        uint32_t first;
        int known = k->objectid < COW_FS_TREE_OBJECTID || map_get(&f->svmap, k->objectid, &first);
        if (!ok) {
            if (!known && map_put(&f->svmap, k->objectid, SV_BAD))
                set_fatal(f, -ENOMEM);
            break;
        }
        if (f->nsv >= SV_BAD ||
            vec_reserve((void **)&f->sv, &f->capsv, f->nsv + 1, sizeof(*f->sv)) ||
            (!known && map_put(&f->svmap, k->objectid, (uint32_t)f->nsv))) {
            set_fatal(f, -ENOMEM);
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
            problem(f, "%s: %s: ROOT_NAMEs name subvolumes %llu and up (the live subvolume has "
                       "none)",
                    where, ks, (unsigned long long)COW_FS_TREE_OBJECTID + 1);
        if (k->offset != 0)
            problem(f, "%s: %s: ROOT_NAME key offset must be 0", where, ks);
        if (size == 0 || size > COW_NAME_MAX) {
            problem(f, "%s: %s: a name of %u bytes (1..%u)", where, ks, size, COW_NAME_MAX);
            break;
        }
        name_str(p, size, nb, sizeof(nb));
        if (memchr(p, '/', size) || memchr(p, 0, size))
            problem(f, "%s: %s: name '%s' contains '/' or NUL", where, ks, nb);
        if (!utf8_valid(p, size))
            problem(f, "%s: %s: name '%s' is not valid UTF-8", where, ks, nb);
        if (k->objectid > COW_FS_TREE_OBJECTID && names_add(&f->names, k->objectid, p, size))
            set_fatal(f, -ENOMEM);
        break;
    }
    case COW_EXTENT_ITEM:
    case COW_METADATA_ITEM:
        if (vec_reserve((void **)&f->xi, &f->capxi, f->nxi + 1, sizeof(*f->xi))) {
            set_fatal(f, -ENOMEM);
            break;
        }
        f->xi[f->nxi].key = *k;
        f->xi[f->nxi].refs = get64(p + EXT_REFS);
        f->xi[f->nxi].gen = get64(p + EXT_GENERATION);
        f->xi[f->nxi].flags = get64(p + EXT_FLAGS);
        f->nxi++;
        break;
    case COW_BLOCK_GROUP_ITEM:
        if (vec_reserve((void **)&f->bg, &f->capbg, f->nbg + 1, sizeof(*f->bg))) {
            set_fatal(f, -ENOMEM);
            break;
        }
        f->bg[f->nbg].start = k->objectid;
        f->bg[f->nbg].len = k->offset;
        f->bg[f->nbg].used = get64(p + BG_USED);
        f->bg[f->nbg].flags = get64(p + BG_FLAGS);
        f->bg[f->nbg].calc = 0;
        f->nbg++;
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
    key_str(k, ks, sizeof(ks));
    if (k->objectid != COW_ROOT_DIR_OBJECTID) {
        problem(f, "%s: %s: DIR_ITEMs belong to directory %llu", where, ks,
                (unsigned long long)COW_ROOT_DIR_OBJECTID);
        return;
    }
    if (k->offset > UINT32_MAX)
        problem(f, "%s: %s: name hash does not fit in 32 bits", where, ks);
    unsigned pos = 0, n = 0;
    unsigned starts[COW_MAX_ITEM_DATA / (DIR_ENTRY_NAME + 1) + 2];
    if (size == 0)
        problem(f, "%s: %s: empty DIR_ITEM", where, ks);
    while (pos < size) {
        if (size - pos < DIR_ENTRY_NAME) {
            problem(f, "%s: %s: entry at byte %u is truncated", where, ks, pos);
            return;
        }
        const uint8_t *e = p + pos;
        unsigned len = get16(e + DIR_ENTRY_NAMELEN);
        if (len == 0 || len > COW_NAME_MAX || len > size - pos - DIR_ENTRY_NAME) {
            problem(f, "%s: %s: entry at byte %u has name length %u (1..255, inside the item)",
                    where, ks, pos, len);
            return;
        }
        const uint8_t *name = e + DIR_ENTRY_NAME;
        if (memchr(name, '/', len) || memchr(name, 0, len))
            problem(f, "%s: %s: entry %u: name contains '/' or NUL", where, ks, n);
        uint32_t h = crc32c(0, name, len);
        if (h != k->offset) {
            char nb[1024];
            name_str(name, len, nb, sizeof(nb));
            if (crc32c(~0u, name, len) == k->offset)
                problem(f, "%s: %s: entry %u ('%s'): name hash 0x%08x uses seed ~0, "
                           "expected crc32c(0, name) = 0x%08x",
                        where, ks, n, nb, (unsigned)k->offset, h);
            else
                problem(f, "%s: %s: entry %u ('%s'): crc32c(0, name) = 0x%08x, not the key offset",
                        where, ks, n, nb, h);
        }
        uint64_t ino = get64(e + DIR_ENTRY_INO);
        if (ino < COW_FIRST_INO)
            problem(f, "%s: %s: entry %u points at inode %" PRIu64 " (files start at %llu)",
                    where, ks, n, ino, (unsigned long long)COW_FIRST_INO);
        for (unsigned j = 0; j < n; j++) {
            const uint8_t *o = p + starts[j];
            if (get16(o + DIR_ENTRY_NAMELEN) == len && !memcmp(o + DIR_ENTRY_NAME, name, len))
                problem(f, "%s: %s: entries %u and %u have the same name", where, ks, j, n);
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
        problem(f, "%s: empty leaf (only a root may be empty)", where);
    unsigned data_start = TB_HEADER_SIZE + n * COW_ITEM_SIZE;
    struct ispan sp[LEAF_MAX_ITEMS];
    unsigned char good[LEAF_MAX_ITEMS];
    unsigned ns = 0;
    struct cow_key k, prev;
    char ks[80], ps[80];
    for (unsigned i = 0; i < n; i++) {
        key_get(&k, leaf_item(b, i));
        if (i && key_cmp(&prev, &k) >= 0)
            problem(f, "%s: item %u key %s not above item %u key %s", where, i,
                    key_str(&k, ks, sizeof(ks)), i - 1, key_str(&prev, ps, sizeof(ps)));
        prev = k;
        unsigned off = leaf_data_off(b, i), size = leaf_data_size(b, i);
        good[i] = 0;
        if (off < data_start || off > BS || size > BS - off) {
            problem(f, "%s: item %u data [%u, +%u) outside the data area [%u, 4096)", where, i,
                    off, size, data_start);
            continue;
        }
        if (size > COW_MAX_ITEM_DATA)
            problem(f, "%s: item %u is %u bytes (maximum %u)", where, i, size, COW_MAX_ITEM_DATA);
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
                problem(f, "%s: data of items %u and %u overlap", where, sp[j - 1].i, sp[j].i);
                overlap = 1;
            }
        }
        if (!overlap && ns == n)
            note(f, "%s: item data not packed from the block end in item order", where);
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
        problem(f, "%s: node with no key pointers", where);
        f->blk[idx].sub_bad = 1;
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        key_get(&k, node_ptr(b, i));
        if (i && key_cmp(&prev, &k) >= 0)
            problem(f, "%s: key pointer %u %s not above pointer %u %s", where, i,
                    key_str(&k, ks, sizeof(ks)), i - 1, key_str(&prev, ps, sizeof(ps)));
        prev = k;
    }
    int sub_bad = 0;
    for (unsigned i = 0; i < n && !f->fatal; i++) {
        uint64_t child = node_child(b, i);
        int dup = 0;
        for (unsigned j = 0; j < i && !dup; j++)
            if (node_child(b, j) == child) {
                problem(f, "%s: key pointers %u and %u both point at block %" PRIu64, where, j, i,
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
            problem(f, "%s: child %" PRIu64 " (pointer %u) holds key %s below its pointer key %s",
                    where, child, i, key_str(&cb->min, ks, sizeof(ks)), key_str(&k, ps, sizeof(ps)));
        if (i + 1 < n) {
            key_get(&k, node_ptr(b, i + 1));
            if (key_cmp(&cb->max, &k) >= 0)
                problem(f, "%s: child %" PRIu64 " (pointer %u) holds key %s, not below the next pointer key %s",
                        where, child, i, key_str(&cb->max, ks, sizeof(ks)),
                        key_str(&k, ps, sizeof(ps)));
        }
    }
    struct blk *me = &f->blk[idx];
    if (sub_bad)
        me->sub_bad = 1;
    uint32_t c0, cn;
    key_get(&me->min, node_ptr(b, 0));
    key_get(&me->max, node_ptr(b, n - 1));
    if (map_get(&f->blkmap, node_child(b, 0), &c0) && f->blk[c0].state == B_OK &&
        f->blk[c0].has_keys && key_cmp(&f->blk[c0].min, &me->min) < 0)
        me->min = f->blk[c0].min;
    if (map_get(&f->blkmap, node_child(b, n - 1), &cn) && f->blk[cn].state == B_OK &&
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
    blk_where(f->cls, f->tree_id, bytenr, where, sizeof(where));
    if (bytenr == 0 || bytenr % BS) {
        problem(f, "%s: points at %" PRIu64 ", not a block address", from, bytenr);
        return NOIDX;
    }
    if (bytenr >= f->total || range_end(bytenr, BS) > f->fsize) {
        problem(f, "%s: points at block %" PRIu64 ", beyond %s (%" PRIu64 " bytes)", from, bytenr,
                bytenr >= f->total ? "total_bytes" : "the end of the file",
                bytenr >= f->total ? f->total : f->fsize);
        return NOIDX;
    }
    uint32_t idx;
    if (map_get(&f->blkmap, bytenr, &idx)) {
        struct blk *b = &f->blk[idx];
        if (b->cls != f->cls) {
            char other[96];
            problem(f, "%s: points at block %" PRIu64 ", which is also %s",
                    from, bytenr, blk_where(b->cls, b->tree_id, bytenr, other, sizeof(other)));
            return NOIDX;
        }
        if (b->cls != T_SUBVOL) {
            problem(f, "%s: block %" PRIu64 " is referenced twice; %s blocks are never shared",
                    from, bytenr, class_name[b->cls]);
            return NOIDX;
        }
        if (b->state == B_VISITING) {
            problem(f, "%s: points at block %" PRIu64 ", an ancestor (cycle)", from, bytenr);
            return NOIDX;
        }
        if (b->level != exp_level) {
            problem(f, "%s: expects level %u at block %" PRIu64 ", which is at level %u", from,
                    exp_level, bytenr, b->level);
            return NOIDX;
        }
        if (b->state == B_OK && b->gen != exp_gen)
            problem(f, "%s: pointer to block %" PRIu64 " has generation %" PRIu64
                       ", the block has %" PRIu64,
                    from, bytenr, exp_gen, b->gen);
        /* first checked as some subvolume's root, where it may be empty */
        if (!is_root && b->state == B_OK && b->level == 0 && !b->has_keys)
            problem(f, "%s: points at block %" PRIu64 ", an empty leaf (only a root may be empty)",
                    from, bytenr);
        return idx;
    }
    if (f->nblk >= NOIDX - 1 ||
        vec_reserve((void **)&f->blk, &f->capblk, f->nblk + 1, sizeof(*f->blk)) ||
        map_put(&f->blkmap, bytenr, (uint32_t)f->nblk)) {
        set_fatal(f, -ENOMEM);
        return NOIDX;
    }
    idx = (uint32_t)f->nblk++;
    struct blk *me = &f->blk[idx];
    memset(me, 0, sizeof(*me));
    me->bytenr = bytenr;
    me->cls = (uint8_t)f->cls;
    me->level = (uint8_t)exp_level;
    me->tree_id = f->tree_id;
    me->state = B_VISITING;

    uint8_t b[BS];
    int rd = read_at(f->fd, b, BS, bytenr);
    const char *bad = NULL;
    char why[128];
    if (rd) {
        snprintf(why, sizeof(why), "read failed: %s", rd == 1 ? "past end of file" : strerror(rd));
        bad = why;
    } else if (get32(b + TB_CSUM) != block_csum(b)) {
        snprintf(why, sizeof(why), "bad checksum (stored 0x%08x, computed 0x%08x)",
                 get32(b + TB_CSUM), block_csum(b));
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
        problem(f, "%s: %s", where, bad);
        me->state = B_BAD;
        me->sub_bad = 1;
        return idx;
    }
    me->gen = get64(b + TB_GENERATION);
    if (me->gen != exp_gen)
        problem(f, "%s: generation %" PRIu64 ", but %s expects %" PRIu64, where, me->gen, from,
                exp_gen);
    if (me->gen > f->gen)
        problem(f, "%s: generation %" PRIu64 " > superblock generation %" PRIu64, where, me->gen,
                f->gen);
    uint64_t owner = get64(b + TB_OWNER);
    if (f->cls == T_SUBVOL ? owner < COW_FS_TREE_OBJECTID : owner != class_owner[f->cls])
        problem(f, "%s: owner %" PRIu64 ", expected %s%" PRIu64, where, owner,
                f->cls == T_SUBVOL ? "a subvolume id >= " : "", class_owner[f->cls]);
    if (!all_zero(b + TB_LEVEL + 1, TB_HEADER_SIZE - TB_LEVEL - 1))
        problem(f, "%s: header bytes 37..47 are not zero", where);

    if (exp_level == 0)
        check_leaf(f, idx, b, where, is_root);
    else
        check_node(f, idx, b, where);
    f->blk[idx].state = B_OK;
    return idx;
}

/* Walks one whole tree; returns the root's index or NOIDX. */
static uint32_t walk_tree(struct fsck *f, int cls, uint64_t tree_id, uint64_t bytenr,
                          uint64_t gen, unsigned level, const char *from)
{
    f->cls = cls;
    f->tree_id = tree_id;
    return walk(f, bytenr, gen, level, 1, from);
}

/* "subvolume 257 (snapshot 'nightly')"; "subvolume 256" for the live one.
 * BUF holds at least 1100 bytes. */
static const char *sv_label(const struct fsck *f, const struct subvol *s, char *buf, size_t len)
{
    const char *kind = root_kind(s->flags);
    char nb[1024];
    if (s->name == NOIDX) {
        if (kind)
            snprintf(buf, len, "subvolume %" PRIu64 " (%s)", s->id, kind);
        else
            snprintf(buf, len, "subvolume %" PRIu64, s->id);
        return buf;
    }
    name_str(names_bytes(&f->names, s->name), f->names.v[s->name].len, nb, sizeof(nb));
    snprintf(buf, len, "subvolume %" PRIu64 " (%s%s'%s')", s->id, kind ? kind : "",
             kind ? " " : "", nb);
    return buf;
}

/* A subvolume name, for finding equal ones. */
struct nref {
    const uint8_t *p;
    unsigned len;
    uint64_t id;
};

static int nref_cmp(const void *a, const void *b)
{
    const struct nref *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Subvolume names, once the root tree has been walked: each ROOT_NAME
 * belongs to a subvolume (a ROOT_ITEM), every subvolume but 256 has
 * exactly one, and no two are equal.  A snapshot or branch may have been
 * made from a subvolume that was deleted since (a note).  What needs the
 * whole root tree is checked only if it was read completely.  Sets each
 * subvolume's name for the messages that follow.
 */
static void check_root_names(struct fsck *f)
{
    int full = f->tree_ok[T_ROOT];
    const struct names *nm = &f->names;
    char nb[1024], nb2[1024], lb[1100];
    for (size_t i = 0; i < nm->n; i++) {
        const struct rname *r = &nm->v[i];
        uint32_t si;
        if (!map_get(&f->svmap, r->id, &si)) {
            if (full)
                problem(f, "root tree: ROOT_NAME '%s' names subvolume %" PRIu64
                           ", which has no ROOT_ITEM",
                        name_str(names_bytes(nm, i), r->len, nb, sizeof(nb)), r->id);
            continue;
        }
        if (si == SV_BAD)
            continue;
        struct subvol *s = &f->sv[si];
        if (s->name == NOIDX) {
            s->name = (uint32_t)i;
            continue;
        }
        problem(f, "root tree: subvolume %" PRIu64 " has more than one ROOT_NAME ('%s', '%s')",
                r->id,
                name_str(names_bytes(nm, s->name), nm->v[s->name].len, nb, sizeof(nb)),
                name_str(names_bytes(nm, i), r->len, nb2, sizeof(nb2)));
    }
    for (size_t i = 0; i < f->nsv && full; i++) {
        struct subvol *s = &f->sv[i];
        uint32_t si, one;
        if (s->id == COW_FS_TREE_OBJECTID || !map_get(&f->svmap, s->id, &si) || si != i)
            continue; /* 256, or a second ROOT_ITEM of one id */
        if (s->name == NOIDX)
            problem(f, "root tree: %s has no ROOT_NAME", sv_label(f, s, lb, sizeof(lb)));
        if (s->source >= COW_FS_TREE_OBJECTID && s->source != s->id &&
            !map_get(&f->svmap, s->source, &one))
            note(f, "%s was made from subvolume %" PRIu64 ", which no longer exists",
                 sv_label(f, s, lb, sizeof(lb)), s->source);
    }
    if (nm->n < 2)
        return;
    struct nref *v = malloc(nm->n * sizeof(*v));
    if (!v) {
        set_fatal(f, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < nm->n; i++)
        v[i] = (struct nref){names_bytes(nm, i), nm->v[i].len, nm->v[i].id};
    qsort(v, nm->n, sizeof(*v), nref_cmp);
    for (size_t i = 1; i < nm->n; i++)
        if (v[i].len == v[i - 1].len && !memcmp(v[i].p, v[i - 1].p, v[i].len))
            problem(f, "root tree: subvolumes %" PRIu64 " and %" PRIu64 " are both named '%s'",
                    v[i - 1].id, v[i].id, name_str(v[i].p, v[i].len, nb, sizeof(nb)));
    free(v);
}

/* ------------------------------------------------------------------ */
/* pass 3: cross-checks                                                */
/* ------------------------------------------------------------------ */

static void check_extent_items(struct fsck *f, int subvols_ok)
{
    int ext_ok = f->tree_ok[T_EXTENT];
    int full = ext_ok && subvols_ok;
    char ks[80];
    if (!full)
        note(f, "reference counts not fully cross-checked: the %s",
             !ext_ok ? "extent tree is damaged" : "subvolume trees are damaged");
    for (size_t i = 0; i < f->nxi && !f->fatal; i++) {
        struct xitem *x = &f->xi[i];
        key_str(&x->key, ks, sizeof(ks));
        uint64_t bytenr = x->key.objectid;
        if (bytenr == 0 || bytenr % BS) {
            problem(f, "extent tree: %s: address is not a block address", ks);
            continue;
        }
        if (x->gen > f->gen)
            problem(f, "extent tree: %s: generation %" PRIu64 " > superblock generation %" PRIu64,
                    ks, x->gen, f->gen);
        if (x->refs == 0)
            problem(f, "extent tree: %s: refs 0 (a free extent has no item)", ks);
        if (x->key.type == COW_METADATA_ITEM) {
            if (x->flags != COW_EXT_FLAG_TREE)
                problem(f, "extent tree: %s: flags 0x%" PRIx64 ", expected 0x%x (TREE)", ks,
                        x->flags, COW_EXT_FLAG_TREE);
            uint32_t bi;
            if (!map_get(&f->blkmap, bytenr, &bi)) {
                if (full)
                    problem(f, "extent tree: %s: no subvolume tree references block %" PRIu64
                               " (leaked, refs %" PRIu64 ")",
                            ks, bytenr, x->refs);
                continue;
            }
            struct blk *b = &f->blk[bi];
            if (b->cls != T_SUBVOL) {
                problem(f, "extent tree: %s: block %" PRIu64 " belongs to the %s, whose blocks have no METADATA_ITEM",
                        ks, bytenr, class_name[b->cls]);
                continue;
            }
            if (b->has_meta) {
                problem(f, "extent tree: %s: a second METADATA_ITEM for block %" PRIu64, ks,
                        bytenr);
                continue;
            }
            b->has_meta = 1;
            if (x->key.offset != b->level)
                problem(f, "extent tree: %s: block %" PRIu64 " is at level %u", ks, bytenr,
                        b->level);
            if (subvols_ok && x->refs != b->refs)
                problem(f, "extent tree: %s: refs %" PRIu64 ", but %u parent blocks/ROOT_ITEMs point at block %" PRIu64,
                        ks, x->refs, b->refs, bytenr);
        } else {
            uint64_t len = x->key.offset;
            if (x->flags != COW_EXT_FLAG_DATA)
                problem(f, "extent tree: %s: flags 0x%" PRIx64 ", expected 0x%x (DATA)", ks,
                        x->flags, COW_EXT_FLAG_DATA);
            if (len == 0 || len % BS || len > MAX_EXTENT_BYTES) {
                problem(f, "extent tree: %s: length %" PRIu64 " is not a multiple of 4096 in 4096..%" PRIu64,
                        ks, len, MAX_EXTENT_BYTES);
                continue;
            }
            struct dext *d = dext_get(f, bytenr, 1);
            if (!d)
                return;
            if (d->has_item) {
                problem(f, "extent tree: %s: a second EXTENT_ITEM for data extent %" PRIu64, ks,
                        bytenr);
                continue;
            }
            d->has_item = 1;
            d->item_len = len;
            d->item_refs = x->refs;
            if (d->refs && d->ref_len != len)
                problem(f, "extent tree: %s: EXTENT_DATA items (leaf %" PRIu64 ") say the extent is %" PRIu64 " bytes",
                        ks, d->first_leaf, d->ref_len);
            if (subvols_ok && d->refs != x->refs) {
                if (d->refs == 0)
                    problem(f, "extent tree: %s: refs %" PRIu64 ", but no EXTENT_DATA item points at it (leaked)",
                            ks, x->refs);
                else
                    problem(f, "extent tree: %s: refs %" PRIu64 ", but %" PRIu64 " EXTENT_DATA items point at it",
                            ks, x->refs, d->refs);
            }
        }
    }
    if (!full)
        return;
    for (size_t i = 0; i < f->nblk; i++) {
        struct blk *b = &f->blk[i];
        if (b->cls == T_SUBVOL && !b->has_meta)
            problem(f, "subvolume %" PRIu64 " tree block %" PRIu64 " (level %u) has no METADATA_ITEM",
                    b->tree_id, b->bytenr, b->level);
    }
    for (size_t i = 0; i < f->ndx; i++) {
        struct dext *d = &f->dx[i];
        if (!d->has_item)
            problem(f, "data extent %" PRIu64 " (%" PRIu64 " bytes, %" PRIu64
                       " EXTENT_DATA refs, e.g. leaf %" PRIu64 ") has no EXTENT_ITEM",
                    d->bytenr, d->ref_len, d->refs, d->first_leaf);
    }
}

static void check_csums(struct fsck *f)
{
    int full = f->tree_ok[T_CSUM] && f->tree_ok[T_EXTENT];
    for (size_t i = 0; i < f->ncs; i++) {
        struct csi *c = &f->cs[i];
        struct dext *d = dext_get(f, c->bytenr, 0);
        if ((!d || !d->has_item) && f->tree_ok[T_EXTENT])
            problem(f, "csum tree: item for %" PRIu64 " (%u blocks), which is not a data extent",
                    c->bytenr, c->n);
        if (!d)
            continue;
        d->has_csum = 1;
        d->csum_off = c->off;
        d->ncsum = c->n;
        uint64_t len = d->has_item ? d->item_len : d->ref_len;
        if ((uint64_t)c->n * BS != len)
            problem(f, "csum tree: item for data extent %" PRIu64 " has %u crcs, the extent has %" PRIu64 " blocks",
                    c->bytenr, c->n, len / BS);
    }
    if (!full) {
        note(f, "checksum items not fully cross-checked: the %s tree is damaged",
             f->tree_ok[T_CSUM] ? "extent" : "csum");
        return;
    }
    for (size_t i = 0; i < f->ndx; i++)
        if (f->dx[i].has_item && !f->dx[i].has_csum)
            problem(f, "data extent %" PRIu64 " (%" PRIu64 " bytes) has no EXTENT_CSUM item",
                    f->dx[i].bytenr, f->dx[i].item_len);
}

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->kind < y->kind ? -1 : x->kind > y->kind;
}

static const char *span_str(const struct span *s, char *buf, size_t len)
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
static void check_space(struct fsck *f, int all_ok)
{
    size_t n = 1 + COW_SB_COPIES + f->nblk + f->ndx;
    struct span *sp = malloc(n * sizeof(*sp));
    if (!sp) {
        set_fatal(f, -ENOMEM);
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
        uint64_t end = range_end(sp[i].start, sp[i].len);
        if (end > f->total)
            problem(f, "%s ends at %" PRIu64 ", beyond total_bytes %" PRIu64,
                    span_str(&sp[i], a, sizeof(a)), end, f->total);
        else if (end > f->fsize)
            problem(f, "%s ends at %" PRIu64 ", beyond the end of the file (%" PRIu64 " bytes)",
                    span_str(&sp[i], a, sizeof(a)), end, f->fsize);
        if (i && range_end(sp[last].start, sp[last].len) > sp[i].start)
            problem(f, "%s overlaps %s", span_str(&sp[i], a, sizeof(a)),
                    span_str(&sp[last], b, sizeof(b)));
        if (i == 0 || end > range_end(sp[last].start, sp[last].len))
            last = i;
    }

    /* block groups */
    f->r->block_groups = f->nbg;
    if (!f->tree_ok[T_EXTENT]) {
        note(f, "block groups not checked: the extent tree is damaged");
        return;
    }
    if (f->nbg > 1)
        qsort(f->bg, f->nbg, sizeof(*f->bg), bg_cmp);
    uint64_t expect = 0;
    for (size_t i = 0; i < f->nbg; i++) {
        struct bgi *g = &f->bg[i];
        if (g->start > expect)
            problem(f, "block groups: no BLOCK_GROUP_ITEM covers [%" PRIu64 ", %" PRIu64 ")",
                    expect, g->start);
        else if (g->start < expect)
            problem(f, "block group %" PRIu64 " overlaps the previous one (ending at %" PRIu64 ")",
                    g->start, expect);
        if (f->bg_size && g->len != f->bg_size)
            problem(f, "block group %" PRIu64 ": length %" PRIu64 ", block group size is %" PRIu64,
                    g->start, g->len, f->bg_size);
        if (g->flags != COW_BG_DATA && g->flags != COW_BG_METADATA)
            problem(f, "block group %" PRIu64 ": flags 0x%" PRIx64 ", not DATA (0x%llx) or METADATA (0x%llx)",
                    g->start, g->flags, COW_BG_DATA, COW_BG_METADATA);
        else if (g->start == 0 && g->flags != COW_BG_METADATA)
            problem(f, "block group 0 (the superblocks' group) is not a METADATA group");
        if (g->used > g->len)
            problem(f, "block group %" PRIu64 ": used %" PRIu64 " > length %" PRIu64, g->start,
                    g->used, g->len);
        uint64_t e = range_end(g->start, g->len);
        if (e > expect)
            expect = e;
    }
    if (expect < f->total)
        problem(f, "block groups: no BLOCK_GROUP_ITEM covers [%" PRIu64 ", %" PRIu64 ")", expect,
                f->total);
    else if (expect > f->total)
        problem(f, "block groups reach %" PRIu64 ", beyond total_bytes %" PRIu64, expect, f->total);

    if (!all_ok || f->log_bad) {
        note(f, "used bytes not checked: %s",
             all_ok ? "the superblock's log areas are invalid" : "some trees are damaged");
        return;
    }
    f->space_ok = 1;
    /* used bytes per group: sum of the overlap of every span with it */
    size_t j = 0;
    for (size_t i = 0; i < f->nbg; i++) {
        struct bgi *g = &f->bg[i];
        uint64_t ge = range_end(g->start, g->len);
        while (j < k && range_end(sp[j].start, sp[j].len) <= g->start)
            j++;
        for (size_t m = j; m < k && sp[m].start < ge; m++) {
            uint64_t s = sp[m].start > g->start ? sp[m].start : g->start;
            uint64_t e = range_end(sp[m].start, sp[m].len);
            if (e > ge)
                e = ge;
            if (e > s)
                g->calc += e - s;
            /* data only in DATA groups, tree blocks, superblocks and log
             * areas only in METADATA groups */
            int is_data = sp[m].kind == SP_DATA;
            if (e > s && (g->flags == COW_BG_DATA || g->flags == COW_BG_METADATA) &&
                is_data != (g->flags == COW_BG_DATA))
                problem(f, "%s lies in %s block group %" PRIu64,
                        span_str(&sp[m], a, sizeof(a)), g->flags == COW_BG_DATA ? "DATA" : "METADATA",
                        g->start);
        }
        if (g->calc != g->used)
            problem(f, "block group %" PRIu64 ": used %" PRIu64 ", recomputed %" PRIu64,
                    g->start, g->used, g->calc);
    }
    if (f->bytes_used != meta + data)
        problem(f, "superblock: bytes_used %" PRIu64 ", recomputed %" PRIu64
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
    uint64_t size, nblocks, sum, next_off;
};

static void file_finish(struct fsck *f, struct fstate *s)
{
    if (!s->cur || !s->have_inode)
        return;
    if (s->sum != s->nblocks)
        problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": nblocks %" PRIu64
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
                map_get(&s->names, ino, &cnt);
                if (cnt < NOIDX - 1 && map_put(&s->names, ino, cnt + 1)) {
                    set_fatal(f, -ENOMEM);
                    return;
                }
                pos += DIR_ENTRY_NAME + len;
            }
        } else if (k->type == COW_EXTENT_DATA) {
            problem(f, "subvolume %" PRIu64 ": the root directory (256) has file extents", sid);
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
            problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": not below the ROOT_ITEM's next_ino %" PRIu64,
                    sid, k->objectid, s->sv->next_ino);
        if (map_put(&s->inodes, k->objectid, 1))
            set_fatal(f, -ENOMEM);
    } else if (k->type == COW_EXTENT_DATA && size == FE_ITEM_SIZE) {
        if (!s->have_inode) {
            if (!s->warned)
                problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": EXTENT_DATA items without an INODE_ITEM",
                        sid, k->objectid);
            s->warned = 1;
            return;
        }
        uint64_t nb = get64(p + FE_NUM_BYTES);
        uint64_t end = range_end(k->offset, nb);
        uint64_t lim = range_end(s->size, BS - 1) / BS * BS;
        if (k->offset < s->next_off)
            problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": extent at %" PRIu64
                       " overlaps the previous one (ending at %" PRIu64 ")",
                    sid, k->objectid, k->offset, s->next_off);
        /* a preallocated extent may reach past the size (fallocate with
         * KEEP_SIZE); it counts in nblocks like a regular one */
        if (end > lim && p[FE_TYPE] != COW_FE_PREALLOC)
            problem(f, "subvolume %" PRIu64 " inode %" PRIu64 ": extent [%" PRIu64 ", %" PRIu64
                       ") beyond the file size %" PRIu64,
                    sid, k->objectid, k->offset, end, s->size);
        if (end > s->next_off)
            s->next_off = end;
        s->sum += nb / BS;
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
    if (f->fatal || !map_get(&f->blkmap, bytenr, &bi) || f->blk[bi].state != B_OK ||
        f->blk[bi].level != level || map_get(&s->seen, bytenr, &one))
        return;
    if (map_put(&s->seen, bytenr, 1)) {
        set_fatal(f, -ENOMEM);
        return;
    }
    uint8_t b[BS];
    if (read_at(f->fd, b, BS, bytenr) || get32(b + TB_CSUM) != block_csum(b) ||
        tb_level(b) != level) {
        problem(f, "block %" PRIu64 " changed while being checked", bytenr);
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
                if (map_put(&s->orphans, k.offset, 1))
                    set_fatal(f, -ENOMEM);
                continue;
            }
            if (k.objectid < COW_ROOT_DIR_OBJECTID) {
                char ks[80];
                problem(f, "subvolume %" PRIu64 " leaf %" PRIu64 ": item %s: object id below 256",
                        s->sv->id, bytenr, key_str(&k, ks, sizeof(ks)));
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

static void check_files(struct fsck *f, struct subvol *sv)
{
    struct fstate s;
    memset(&s, 0, sizeof(s));
    s.sv = sv;
    files_walk(f, &s, sv->bytenr, sv->level);
    file_finish(f, &s);
    for (size_t i = 0; i < s.names.cap && !f->fatal; i++) {
        if (s.names.vals[i] == NOIDX)
            continue;
        uint64_t ino = s.names.keys[i];
        uint32_t one;
        if (map_get(&s.orphans, ino, &one))
            problem(f, "subvolume %" PRIu64 ": inode %" PRIu64 " has an ORPHAN_ITEM but still has %u name%s",
                    sv->id, ino, s.names.vals[i], s.names.vals[i] == 1 ? "" : "s");
        else if (!map_get(&s.inodes, ino, &one))
            problem(f, "subvolume %" PRIu64 ": a name points at inode %" PRIu64 ", which does not exist",
                    sv->id, ino);
        else if (s.names.vals[i] != 1)
            problem(f, "subvolume %" PRIu64 ": inode %" PRIu64 " has %u names", sv->id, ino,
                    s.names.vals[i]);
    }
    for (size_t i = 0; i < s.inodes.cap && !f->fatal; i++) {
        uint32_t cnt;
        if (s.inodes.vals[i] != NOIDX && !map_get(&s.names, s.inodes.keys[i], &cnt) &&
            !map_get(&s.orphans, s.inodes.keys[i], &cnt))
            problem(f, "subvolume %" PRIu64 ": inode %" PRIu64 " has no name (and no ORPHAN_ITEM)",
                    sv->id, s.inodes.keys[i]);
    }
    for (size_t i = 0; i < s.orphans.cap && !f->fatal; i++) {
        uint32_t one;
        if (s.orphans.vals[i] != NOIDX && !map_get(&s.inodes, s.orphans.keys[i], &one))
            problem(f, "subvolume %" PRIu64 ": ORPHAN_ITEM for inode %" PRIu64 ", which does not exist",
                    sv->id, s.orphans.keys[i]);
    }
    map_free(&s.orphans);
    map_free(&s.names);
    map_free(&s.inodes);
    map_free(&s.seen);
}

/*
 * Verifies the blocks of each data extent that hold file data: those that a
 * REG EXTENT_DATA item of some subvolume maps (dext.reg, gathered in pass
 * 2).  The other blocks were preallocated and never written (only PREALLOC
 * items map them) or are mapped by nothing: their crcs are placeholders and
 * their contents whatever the space held before, so they are not read.
 * Each run of mapped blocks is read with one pread.
 */
static void check_data(struct fsck *f)
{
    uint8_t *buf = malloc(MAX_EXTENT_BYTES);
    if (!buf) {
        set_fatal(f, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < f->ndx && !f->fatal; i++) {
        struct dext *d = &f->dx[i];
        if (!d->has_item || !d->has_csum || (uint64_t)d->ncsum * BS != d->item_len ||
            range_end(d->bytenr, d->item_len) > f->fsize)
            continue;
        const uint32_t *csum = f->pool + d->csum_off;
        uint32_t checked = 0, bad = 0, first = 0, first_c = 0;
        uint32_t b = 0;
        while (b < d->ncsum) {
            if (!bmap_has(d->reg, b)) {
                b++;
                continue;
            }
            uint32_t e = b + 1;
            while (e < d->ncsum && bmap_has(d->reg, e))
                e++;
            uint64_t at = d->bytenr + (uint64_t)b * BS;
            int rd = read_at(f->fd, buf, (size_t)(e - b) * BS, at);
            if (rd) {
                problem(f, "data extent %" PRIu64 ": read failed at block %" PRIu64 ": %s",
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
        problem(f, "data extent %" PRIu64 ": %u of %u blocks fail their checksum, first block %" PRIu64
                   " (stored 0x%08x, computed 0x%08x)%s",
                d->bytenr, bad, checked, d->bytenr + (uint64_t)first * BS, csum[first], first_c,
                of);
    }
    free(buf);
}

/* ------------------------------------------------------------------ */
/* pass 5: the log (also used by the dump)                             */
/* ------------------------------------------------------------------ */

/*
 * The log area of the superblock copy in use, read record by record the way
 * replay reads it: a record counts if it is whole (crc), names the
 * superblock (log_id, generation), has the next sequence number, its items
 * parse, and every EXTENT_CSUM item matches the data at its address in the
 * blocks that the record's own REG EXTENT_DATA items map in that extent.
 * The first record that does not ends the log.
 *
 * Blocks that only PREALLOC items of the record map, or none, are not read:
 * an EXTENT_CSUM item carries the crcs of the whole extent, and those of
 * preallocated blocks not yet written are placeholders.
 */

/* The blocks of one data extent that the REG items of a record map. */
struct lreg {
    uint64_t disk;
    uint64_t end; /* the highest block end of those items (fe_block_end) */
    uint64_t map[BMAP_WORDS];
};

struct logscan {
    int fd;
    uint64_t fsize;
    uint64_t area;        /* bytenr of the area */
    uint32_t nblocks;     /* area length in blocks */
    uint64_t log_id, gen; /* of the superblock in use */
    uint32_t pos;         /* area block of the record being read */
    uint64_t seq;         /* sequence number of the last valid record */
    uint8_t *rec;         /* the record (rec_blocks blocks) */
    size_t cap;
    uint32_t rec_blocks, nitems;
    struct lreg *reg;     /* the record's REG blocks, one per extent, sorted */
    size_t nreg, capreg;
    char why[160];        /* why the log ends */
    int odd;              /* it ends at something other than an empty block or
                           * a stale record: a torn or broken record */
    int ioerr;            /* ... or at a read error */
    int broken;           /* ... or at a whole record of this log that the
                           * store refuses (a problem: open fails) */
};

/* Reads item I's header at *POS of record R (LEN bytes); 0 if it does not fit. */
static int log_item(const uint8_t *r, size_t len, size_t *pos, struct cow_key *k,
                    const uint8_t **data, unsigned *size)
{
    if (*pos > len || len - *pos < LOG_ITEM_HEADER)
        return 0;
    key_get(k, r + *pos);
    *size = get16(r + *pos + COW_KEY_SIZE);
    if (len - *pos - LOG_ITEM_HEADER < *size)
        return 0;
    *data = r + *pos + LOG_ITEM_HEADER;
    *pos += LOG_ITEM_HEADER + *size;
    return 1;
}

__attribute__((format(printf, 2, 3))) static int log_end(struct logscan *s, const char *fmt,
                                                         ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    return 0;
}

/*
 * Does the data of the extent at BYTENR (N blocks, crcs at P) match its
 * crcs in the blocks of REG (NULL: none)?  1 yes, else 0 with s->why set.
 * The extent must lie inside the file whatever REG holds.
 */
static int log_data_ok(struct logscan *s, uint64_t bytenr, const uint8_t *p, unsigned n,
                       const uint64_t *reg)
{
    uint8_t b[BS];
    if (bytenr == 0 || bytenr % BS)
        return log_end(s, "EXTENT_CSUM for %" PRIu64 ", not a block address", bytenr);
    if (range_end(bytenr, (uint64_t)n * BS) > s->fsize)
        return log_end(s, "data of extent %" PRIu64 " lies past the end of the file", bytenr);
    for (unsigned i = 0; reg && i < n; i++) {
        if (!bmap_has(reg, i))
            continue;
        int rd = read_at(s->fd, b, BS, bytenr + (uint64_t)i * BS);
        if (rd) {
            s->ioerr = rd > 1;
            return log_end(s, "cannot read data of extent %" PRIu64 ": %s", bytenr,
                           rd == 1 ? "past end of file" : strerror(rd));
        }
        if (crc32c(0, b, BS) != get32(p + 4 * i))
            return log_end(s, "data of extent %" PRIu64 " does not match (block %u of %u)",
                           bytenr, i, n);
    }
    return 1;
}

static int lreg_cmp(const void *a, const void *b)
{
    const struct lreg *x = a, *y = b;
    return x->disk < y->disk ? -1 : x->disk > y->disk;
}

/*
 * Gathers in s->reg the blocks that the REG EXTENT_DATA items of the record
 * (LEN bytes, items known to fit) map, one entry per extent, sorted by
 * address: sorting keeps the work n log n in the items whatever the record
 * holds.  Items of the wrong size are left to check_log_record.  Returns 0
 * or -ENOMEM.
 */
static int log_gather_reg(struct logscan *s, size_t len, uint32_t ni)
{
    size_t pos = LOG_HEADER_SIZE;
    struct cow_key k;
    const uint8_t *p;
    unsigned size;
    s->nreg = 0;
    for (uint32_t i = 0; i < ni; i++) {
        if (!log_item(s->rec, len, &pos, &k, &p, &size))
            break; /* cannot happen: the caller checked that they fit */
        if (k.type != COW_EXTENT_DATA || size != FE_ITEM_SIZE || p[FE_TYPE] != COW_FE_REG)
            continue;
        if (vec_reserve((void **)&s->reg, &s->capreg, s->nreg + 1, sizeof(*s->reg)))
            return -ENOMEM;
        struct lreg *g = &s->reg[s->nreg++];
        memset(g, 0, sizeof(*g));
        g->disk = get64(p + FE_DISK_BYTENR);
        g->end = fe_block_end(get64(p + FE_EXTENT_OFFSET), get64(p + FE_NUM_BYTES));
        bmap_add(g->map, get64(p + FE_EXTENT_OFFSET), get64(p + FE_NUM_BYTES));
    }
    if (s->nreg > 1)
        qsort(s->reg, s->nreg, sizeof(*s->reg), lreg_cmp);
    size_t n = 0; /* merge the entries of one extent */
    for (size_t i = 0; i < s->nreg; i++) {
        if (n && s->reg[n - 1].disk == s->reg[i].disk) {
            for (unsigned w = 0; w < BMAP_WORDS; w++)
                s->reg[n - 1].map[w] |= s->reg[i].map[w];
            if (s->reg[i].end > s->reg[n - 1].end)
                s->reg[n - 1].end = s->reg[i].end;
        } else {
            s->reg[n++] = s->reg[i];
        }
    }
    s->nreg = n;
    return 0;
}

/* The blocks the record's REG items map in the extent at DISK, or NULL. */
static const struct lreg *log_find_reg(const struct logscan *s, uint64_t disk)
{
    size_t lo = 0, hi = s->nreg;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->reg[mid].disk < disk)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nreg && s->reg[lo].disk == disk ? &s->reg[lo] : NULL;
}

/*
 * Reads the record at s->pos after the last valid one.  Returns 1 if it is
 * valid (s->rec, s->rec_blocks, s->nitems; s->pos still at it), 0 if the log
 * ends there (s->why), or -ENOMEM.
 */
static int log_next(struct logscan *s)
{
    s->odd = 0;
    s->broken = 0;
    if (s->pos >= s->nblocks)
        return log_end(s, "the area is full");
    if (s->cap < BS) {
        uint8_t *n = realloc(s->rec, BS);
        if (!n)
            return -ENOMEM;
        s->rec = n;
        s->cap = BS;
    }
    uint64_t at = s->area + (uint64_t)s->pos * BS;
    int rd = read_at(s->fd, s->rec, BS, at);
    if (rd) {
        s->odd = s->ioerr = rd > 1;
        return log_end(s, "cannot read: %s", rd == 1 ? "past end of file" : strerror(rd));
    }
    const uint8_t *r = s->rec;
    if (get32(r + LOG_MAGIC) != COW_LOG_MAGIC)
        return log_end(s, all_zero(r, BS) ? "empty (zero block)" : "bad magic");
    s->odd = 1;
    uint32_t nb = get32(r + LOG_NBLOCKS);
    if (nb == 0 || nb > s->nblocks - s->pos)
        return log_end(s, "nblocks %u does not fit in the area (%u blocks left)", nb,
                       s->nblocks - s->pos);
    size_t len = (size_t)nb * BS;
    if (s->cap < len) {
        uint8_t *n = realloc(s->rec, len);
        if (!n)
            return -ENOMEM;
        s->rec = n;
        s->cap = len;
    }
    r = s->rec;
    if (nb > 1 && (rd = read_at(s->fd, s->rec + BS, len - BS, at + BS)) != 0) {
        s->ioerr = rd > 1;
        return log_end(s, "cannot read: %s", rd == 1 ? "past end of file" : strerror(rd));
    }
    uint32_t c = crc32c(0, r + 4, len - 4);
    if (c != get32(r + LOG_CSUM))
        return log_end(s, "crc mismatch (stored 0x%08x, computed 0x%08x)", get32(r + LOG_CSUM), c);
    if (get64(r + LOG_ID) != s->log_id || get64(r + LOG_GENERATION) != s->gen) {
        s->odd = 0;
        if (get64(r + LOG_ID) != s->log_id)
            return log_end(s, "other log_id (stale record)");
        return log_end(s, "generation %" PRIu64 ", the superblock's is %" PRIu64 " (stale record)",
                       get64(r + LOG_GENERATION), s->gen);
    }
    if (get64(r + LOG_SEQ) != s->seq + 1)
        return log_end(s, "sequence number %" PRIu64 ", expected %" PRIu64, get64(r + LOG_SEQ),
                       s->seq + 1);
    /* From here the record is whole and of this log: what a crash cannot
     * leave, and the store refuses to open (s->broken), not a log end. */
    s->broken = 1;
    if (get32(r + LOG_DURABLE) > s->seq || (get32(r + LOG_FLAGS) & ~COW_LOG_BASE_DURABLE))
        return log_end(s, "says %u records were flushed before it (flags 0x%x)",
                       get32(r + LOG_DURABLE), get32(r + LOG_FLAGS));
    uint32_t ni = get32(r + LOG_NITEMS);
    size_t pos = LOG_HEADER_SIZE;
    struct cow_key k;
    const uint8_t *p;
    unsigned size;
    for (uint32_t i = 0; i < ni; i++)
        if (!log_item(r, len, &pos, &k, &p, &size))
            return log_end(s, "item %u of %u runs past the end of the record", i, ni);
    pos = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < ni; i++) {
        log_item(r, len, &pos, &k, &p, &size);
        if (k.type == COW_EXTENT_CSUM && (size == 0 || size % 4 ||
                                          size > COW_MAX_EXTENT_BLOCKS * 4))
            return log_end(s, "item %u: EXTENT_CSUM of %u bytes, not 1..%u crcs", i, size,
                           COW_MAX_EXTENT_BLOCKS);
    }
    s->broken = 0; /* from here as replay: the data not matching ends the log */
    if (log_gather_reg(s, len, ni))
        return -ENOMEM;
    pos = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < ni; i++) {
        log_item(r, len, &pos, &k, &p, &size);
        if (k.type != COW_EXTENT_CSUM)
            continue;
        /* as replay: a REG item mapping blocks past the crcs ends the log */
        const struct lreg *g = log_find_reg(s, k.offset);
        if (g && g->end > size / 4)
            return log_end(s, "item %u: a regular file extent maps blocks of extent %" PRIu64
                              " past its %u crcs", i, k.offset, size / 4);
        if (!log_data_ok(s, k.offset, p, size / 4, g ? g->map : NULL))
            return 0;
    }
    s->rec_blocks = nb;
    s->nitems = ni;
    return 1;
}

/* Moves past the valid record just read. */
static void log_advance(struct logscan *s)
{
    s->seq++;
    s->pos += s->rec_blocks;
}

/* Index of the block group holding ADDR (f->bg sorted), or -1. */
static ptrdiff_t bg_find(const struct fsck *f, uint64_t addr)
{
    size_t lo = 0, hi = f->nbg;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->bg[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || range_end(f->bg[lo - 1].start, f->bg[lo - 1].len) <= addr)
        return -1;
    return (ptrdiff_t)(lo - 1);
}

/*
 * A data extent of BLOCKS blocks at BYTENR that an EXTENT_CSUM item of the
 * log (crcs at CRCS) describes.  Unless it is a committed extent, it is new
 * data: it must lie in space that is free in the committed state, in DATA
 * block groups.
 *
 * Replay puts the item in place of a committed extent's csum item: its crcs
 * are newer in blocks written in place into preallocated space since the
 * commit.  A block that a REG item of the commit maps holds committed data,
 * which is never overwritten, so its crc must be the committed one.
 */
static void log_extent(struct fsck *f, const char *where, uint64_t bytenr, uint32_t blocks,
                       const uint8_t *crcs)
{
    uint64_t len = (uint64_t)blocks * BS, end = range_end(bytenr, len);
    struct dext *d = dext_get(f, bytenr, 0);
    if (d && d->has_item && d->item_len == len) {
        uint32_t bad = 0, first = 0;
        for (uint32_t b = 0; d->has_csum && d->ncsum == blocks && b < blocks; b++)
            if (bmap_has(d->reg, b) && get32(crcs + 4 * b) != f->pool[d->csum_off + b] &&
                bad++ == 0)
                first = b;
        if (bad)
            problem(f, "%s: EXTENT_CSUM of committed data extent %" PRIu64 " changes the crcs of %u "
                       "block%s that regular file extents of the commit map, first block %" PRIu64
                       " (0x%08x, the csum tree has 0x%08x)",
                    where, bytenr, bad, bad == 1 ? "" : "s", bytenr + (uint64_t)first * BS,
                    get32(crcs + 4 * first), f->pool[d->csum_off + first]);
        return; /* committed */
    }
    if (map_put(&f->logx, bytenr, blocks)) {
        set_fatal(f, -ENOMEM);
        return;
    }
    if (!f->space_ok)
        return;
    if (end > f->total) {
        problem(f, "%s: logged data extent %" PRIu64 " (%u block%s) ends beyond total_bytes %" PRIu64,
                where, bytenr, blocks, blocks == 1 ? "" : "s", f->total);
        return;
    }
    /* the last used range starting before END */
    size_t lo = 0, hi = f->nsp;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->sp[mid].start < end)
            lo = mid + 1;
        else
            hi = mid;
    }
    char a[96];
    if (lo && range_end(f->sp[lo - 1].start, f->sp[lo - 1].len) > bytenr)
        problem(f, "%s: logged data extent %" PRIu64 " (%u block%s) overlaps %s, which the commit uses",
                where, bytenr, blocks, blocks == 1 ? "" : "s",
                span_str(&f->sp[lo - 1], a, sizeof(a)));
    for (ptrdiff_t g = bg_find(f, bytenr); g >= 0 && (size_t)g < f->nbg && f->bg[g].start < end;
         g++) {
        if (f->bg[g].flags != COW_BG_DATA) {
            problem(f, "%s: logged data extent %" PRIu64 " (%u block%s) lies in METADATA block group %" PRIu64,
                    where, bytenr, blocks, blocks == 1 ? "" : "s", f->bg[g].start);
            break;
        }
    }
}

/* A LOG_RANGE of a record, until its inode's INODE_ITEM. */
struct lrange {
    uint64_t ino, start, end;
    int open;
};

/* Checks the items of the valid record just read (format, and against the
 * committed state when that is known). */
static void check_log_record(struct fsck *f, const struct logscan *s)
{
    const uint8_t *r = s->rec;
    size_t len = (size_t)s->rec_blocks * BS, pos = LOG_HEADER_SIZE;
    char where[80], ks[80];
    snprintf(where, sizeof(where), "log record %" PRIu64 " (area block %u)", s->seq + 1, s->pos);
    struct lrange *rg = NULL;
    size_t nrg = 0, caprg = 0;
    struct cow_key k;
    const uint8_t *p;
    unsigned size;
    for (uint32_t i = 0; i < s->nitems && !f->fatal; i++) {
        log_item(r, len, &pos, &k, &p, &size);
        key_str(&k, ks, sizeof(ks));
        unsigned want = k.type == COW_LOG_RANGE     ? 8
                        : k.type == COW_EXTENT_DATA ? FE_ITEM_SIZE
                        : k.type == COW_INODE_ITEM  ? INODE_ITEM_SIZE
                                                    : 0;
        if (k.type == COW_EXTENT_CSUM) {
            if (k.objectid != COW_CSUM_TREE_OBJECTID)
                problem(f, "%s: %s: csum items have object id %llu", where, ks,
                        (unsigned long long)COW_CSUM_TREE_OBJECTID);
            log_extent(f, where, k.offset, size / 4, p);
            continue;
        }
        if (!want) {
            problem(f, "%s: %s: not an item of a log record", where, ks);
            continue;
        }
        if (size != want) {
            problem(f, "%s: %s: %u bytes, expected %u", where, ks, size, want);
            continue;
        }
        if (k.objectid < COW_FIRST_INO) {
            problem(f, "%s: %s: not a file (inode numbers start at %llu)", where, ks,
                    (unsigned long long)COW_FIRST_INO);
            continue;
        }
        if (k.type == COW_LOG_RANGE) {
            uint64_t end = get64(p);
            if (k.offset % BS || (end != UINT64_MAX && end % BS) || end <= k.offset)
                problem(f, "%s: %s: range [%" PRIu64 ", %" PRIu64
                           ") is not a block aligned, non-empty range",
                        where, ks, k.offset, end);
            if (vec_reserve((void **)&rg, &caprg, nrg + 1, sizeof(*rg))) {
                set_fatal(f, -ENOMEM);
                break;
            }
            rg[nrg++] = (struct lrange){k.objectid, k.offset, end, 1};
        } else if (k.type == COW_INODE_ITEM) {
            if (k.offset != 0)
                problem(f, "%s: %s: INODE_ITEM key offset must be 0", where, ks);
            if (get64(p + INODE_FLAGS))
                problem(f, "%s: %s: inode flags 0x%" PRIx64 ", none are defined", where, ks,
                        get64(p + INODE_FLAGS));
            for (size_t j = 0; j < nrg; j++)
                if (rg[j].ino == k.objectid)
                    rg[j].open = 0;
        } else {
            check_file_extent(f, where, &k, p, 0);
            uint64_t fend = range_end(k.offset, get64(p + FE_NUM_BYTES));
            int covered = 0;
            for (size_t j = 0; j < nrg && !covered; j++)
                covered = rg[j].open && rg[j].ino == k.objectid && rg[j].start <= k.offset &&
                          fend <= rg[j].end;
            if (!covered)
                problem(f, "%s: %s: not inside a LOG_RANGE of inode %" PRIu64 " before it",
                        where, ks, k.objectid);
            uint64_t db = get64(p + FE_DISK_BYTENR), dl = get64(p + FE_DISK_NUM_BYTES);
            if (!f->space_ok || db == 0 || db % BS)
                continue;
            struct dext *d = dext_get(f, db, 0);
            uint32_t nb;
            if (d && d->has_item) {
                if (d->item_len != dl)
                    problem(f, "%s: %s: disk_num_bytes %" PRIu64 ", committed data extent %" PRIu64
                               " is %" PRIu64 " bytes",
                            where, ks, dl, db, d->item_len);
            } else if (map_get(&f->logx, db, &nb)) {
                if ((uint64_t)nb * BS != dl)
                    problem(f, "%s: %s: disk_num_bytes %" PRIu64 ", the log's EXTENT_CSUM for %" PRIu64
                               " has %u blocks",
                            where, ks, dl, db, nb);
            } else {
                problem(f, "%s: %s: data extent %" PRIu64 " is neither committed nor checksummed"
                           " by an EXTENT_CSUM item of the log before it",
                        where, ks, db);
            }
        }
    }
    if (pos < len && !all_zero(r + pos, len - pos))
        problem(f, "%s: bytes %zu..%zu after the items are not zero", where, pos, len - 1);
    for (size_t j = 0; j < nrg; j++)
        if (rg[j].open) {
            problem(f, "%s: inode %" PRIu64 ": LOG_RANGE [%" PRIu64 ", %" PRIu64
                       ") is not followed by the inode's INODE_ITEM",
                    where, rg[j].ino, rg[j].start, rg[j].end);
            break;
        }
    free(rg);
}

/*
 * Looks in log area K, from block FROM, for a whole record (magic, length,
 * crc) that proves a flushed commit or record the container no longer has,
 * as the store's log_check_lost does: one saying the commit it builds on
 * was flushed, of a newer commit than the one in use (or of its generation
 * with another log_id); or, in the area in use, one of this log after the
 * APPLIED valid records saying record APPLIED + 1 was flushed.  Reports the
 * first of each as a problem (open fails on them).
 */
static void log_find_lost(struct fsck *f, int k, uint32_t from, uint64_t applied, int *commit_seen,
                          int *record_seen)
{
    uint64_t area = f->log_area[k];
    uint8_t *r = NULL;
    size_t cap = 0;
    if (range_end(area, (uint64_t)f->log_blocks * BS) > f->fsize)
        return;
    for (uint32_t pos = from; pos < f->log_blocks && !f->fatal; pos++) {
        uint8_t h[BS];
        if (read_at(f->fd, h, BS, area + (uint64_t)pos * BS))
            return;
        uint32_t nb = get32(h + LOG_NBLOCKS);
        if (get32(h + LOG_MAGIC) != COW_LOG_MAGIC || nb == 0 || nb > f->log_blocks - pos)
            continue;
        if (vec_reserve((void **)&r, &cap, (size_t)nb * BS, 1)) {
            set_fatal(f, -ENOMEM);
            break;
        }
        if (read_at(f->fd, r, (size_t)nb * BS, area + (uint64_t)pos * BS) ||
            crc32c(0, r + 4, (size_t)nb * BS - 4) != get32(r + LOG_CSUM))
            continue;
        uint64_t gen = get64(r + LOG_GENERATION), id = get64(r + LOG_ID);
        uint64_t seq = get64(r + LOG_SEQ);
        uint32_t durable = get32(r + LOG_DURABLE);
        int base = (get32(r + LOG_FLAGS) & COW_LOG_BASE_DURABLE) || durable > 0;
        if (base && (gen > f->gen || (gen == f->gen && id != f->log_id)) && !*commit_seen) {
            *commit_seen = 1;
            problem(f, "commit generation %" PRIu64 " was flushed (log record %" PRIu64
                       " in log area %d, block %u, says so) but the newest valid commit is "
                       "generation %" PRIu64 "%s%s: acknowledged commits are lost, the store "
                       "refuses to open",
                    gen, seq, k, pos, f->gen, f->sb_rejected[0] ? "; " : "", f->sb_rejected);
        } else if (k == f->r->sb_copy && id == f->log_id && gen == f->gen && seq > applied &&
                   durable > applied && !*record_seen) {
            *record_seen = 1;
            problem(f, "log record %" PRIu64 " of generation %" PRIu64 " is damaged: record %"
                       PRIu64 " (log area %d, block %u), written after it was flushed, is "
                       "intact; the store refuses to open",
                    applied + 1, f->gen, seq, k, pos);
        }
        pos += nb - 1;
    }
    free(r);
}

/* Scans the log area of the superblock copy in use: pending records are
 * legal (open replays them) and only noted; their contents are checked. */
static void check_log(struct fsck *f)
{
    if (!f->have_log)
        return;
    int c = f->r->sb_copy;
    uint64_t area = f->log_area[c], len = (uint64_t)f->log_blocks * BS;
    if (range_end(area, len) > f->fsize || range_end(area, len) > f->total) {
        note(f, "log: not read, log area %d is not inside the container", c);
        return;
    }
    struct logscan s;
    memset(&s, 0, sizeof(s));
    s.fd = f->fd;
    s.fsize = f->fsize;
    s.area = area;
    s.nblocks = f->log_blocks;
    s.log_id = f->log_id;
    s.gen = f->gen;
    uint64_t blocks = 0;
    int rc;
    while ((rc = log_next(&s)) == 1 && !f->fatal) {
        f->r->log_records++;
        blocks += s.rec_blocks;
        check_log_record(f, &s);
        log_advance(&s);
    }
    free(s.rec);
    free(s.reg);
    if (rc < 0)
        set_fatal(f, rc);
    if (f->fatal)
        return;
    f->r->log_blocks = blocks;
    uint64_t applied = f->r->log_records;
    if (s.broken)
        problem(f, "log record %" PRIu64 " of generation %" PRIu64 " (area %d block %u) is "
                   "whole but broken: %s; the store refuses to open",
                applied + 1, f->gen, c, s.pos, s.why);
    else if (applied < f->replay_min)
        problem(f, "log record %" PRIu64 " of generation %" PRIu64 " is damaged or missing "
                   "(area %d block %u: %s): superblock generation %" PRIu64 " (torn) was "
                   "written after %u records of that log were flushed",
                applied + 1, f->gen, c, s.pos, s.why, f->replay_min_gen, f->replay_min);
    int commit_seen = 0, record_seen = 0;
    log_find_lost(f, c, s.pos, applied, &commit_seen, &record_seen);
    if (range_end(f->log_area[1 - c], len) <= f->total)
        log_find_lost(f, 1 - c, 0, applied, &commit_seen, &record_seen);
    if (s.ioerr)
        problem(f, "log area %d block %u (%" PRIu64 "): %s", c, s.pos,
                area + (uint64_t)s.pos * BS, s.why);
    uint64_t n = f->r->log_records;
    if (n)
        note(f, "log: %" PRIu64 " record%s (%" PRIu64 " block%s) pending replay; the log ends at area block %u: %s",
             n, n == 1 ? "" : "s", blocks, blocks == 1 ? "" : "s", s.pos, s.why);
    else if (s.odd && !s.ioerr && !s.broken)
        note(f, "log: no record pending replay; area block %u: %s", s.pos, s.why);
}

/* ------------------------------------------------------------------ */
/* entry point                                                         */
/* ------------------------------------------------------------------ */

static void fsck_run(struct fsck *f)
{
    char from[64];
    if (check_superblocks(f))
        return;
    /* the superblock's trees */
    for (int t = 0; t < T_NSB; t++) {
        struct rootref *rr = &f->rr[t];
        f->tree_ok[t] = 0;
        if (!rr->valid)
            continue;
        snprintf(from, sizeof(from), "superblock %s root", class_name[t]);
        uint32_t r = walk_tree(f, t, class_owner[t], rr->bytenr, rr->gen, rr->level, from);
        if (f->fatal)
            return;
        f->tree_ok[t] = r != NOIDX && !f->blk[r].sub_bad;
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
        s->root = walk_tree(f, T_SUBVOL, s->id, s->bytenr, s->gen, s->level, from);
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
        problem(f, "root tree: no ROOT_ITEM for the live subvolume %llu",
                (unsigned long long)COW_FS_TREE_OBJECTID);
    check_root_names(f);
    if (f->fatal)
        return;
    /* cross-checks */
    check_extent_items(f, subvols_ok);
    if (f->fatal)
        return;
    check_csums(f);
    int all_ok = subvols_ok;
    for (int t = 0; t < T_NSB; t++)
        all_ok = all_ok && f->tree_ok[t];
    check_space(f, all_ok);
    if (f->fatal)
        return;
    /* files: every subvolume over its whole tree, shared blocks and all
     * (a snapshot has the files it has, whoever else shares them) */
    for (size_t i = 0; i < f->nsv && !f->fatal; i++) {
        struct subvol *s = &f->sv[i];
        if (s->root == NOIDX || f->blk[s->root].sub_bad) {
            char lb[1100];
            note(f, "%s: files not checked, its tree is damaged", sv_label(f, s, lb, sizeof(lb)));
            continue;
        }
        check_files(f, s);
    }
    if (!f->fatal && (f->flags & COW_FSCK_DATA))
        check_data(f);
    if (!f->fatal)
        check_log(f);
}

int cow_fsck(const char *path, unsigned flags, FILE *out, struct cow_fsck_result *res)
{
    struct cow_fsck_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof(*res));
    res->sb_copy = -1;

    struct fsck f;
    memset(&f, 0, sizeof(f));
    f.out = out;
    f.flags = flags;
    f.r = res;
    int locked;
    f.fd = open_container(path, &f.fsize, &locked, out);
    if (f.fd < 0)
        return f.fd;
    res->container_bytes = f.fsize;
    if (!locked)
        note(&f, "%s is open in a process (locked); what it is writing may look inconsistent",
             path);

    fsck_run(&f);

    int rc;
    if (f.fatal) {
        if (out)
            fprintf(out, "%s: check stopped: %s\n", path, strerror(-f.fatal));
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
    names_free(&f.names);
    map_free(&f.svmap);
    map_free(&f.blkmap);
    map_free(&f.dxmap);
    map_free(&f.logx);
    close(f.fd); /* drops the flock */
    return rc;
}

/* ------------------------------------------------------------------ */
/* dump                                                                */
/* ------------------------------------------------------------------ */

struct dumper {
    int fd;
    FILE *out;
    unsigned flags;
    uint64_t fsize;
    struct u64map seen; /* blocks shown */
    struct subvol *sv;  /* ROOT_ITEMs found while showing the root tree */
    size_t nsv, capsv;
    struct names names; /* ROOT_NAMEs found there */
    struct u64map namemap; /* subvolume id -> index of its (first) name */
    int fatal;
};

static void hexdump(FILE *out, const uint8_t *p, size_t len, uint64_t base, const char *ind)
{
    int skipping = 0;
    for (size_t i = 0; i < len; i += 16) {
        size_t n = len - i < 16 ? len - i : 16;
        if (i && i + 16 <= len && !memcmp(p + i, p + i - 16, 16)) {
            if (!skipping)
                fprintf(out, "%s*\n", ind);
            skipping = 1;
            continue;
        }
        skipping = 0;
        fprintf(out, "%s%08" PRIx64 " ", ind, base + i);
        for (size_t j = 0; j < 16; j++) {
            if (j < n)
                fprintf(out, " %02x", p[i + j]);
            else
                fputs("   ", out);
        }
        fputs("  |", out);
        for (size_t j = 0; j < n; j++)
            fputc(isprint(p[i + j]) ? p[i + j] : '.', out);
        fputs("|\n", out);
    }
}

/*
 * Prints NAME (LEN bytes) in double quotes with non-printable bytes as \xNN.
 * With UTF8 (NAME is valid UTF-8) characters beyond ASCII are printed as
 * they are, but for the C1 controls (U+0080..U+009F).
 */
static void put_name(FILE *out, const uint8_t *name, unsigned len, int utf8)
{
    fputc('"', out);
    for (unsigned i = 0; i < len; i++) {
        if (name[i] >= 0x20 && name[i] < 0x7f && name[i] != '"' && name[i] != '\\') {
            fputc(name[i], out);
        } else if (utf8 && name[i] >= 0xc2 && !(name[i] == 0xc2 && name[i + 1] < 0xa0)) {
            unsigned n = name[i] >= 0xf0 ? 4 : name[i] >= 0xe0 ? 3 : 2;
            fwrite(name + i, 1, n, out);
            i += n - 1;
        } else {
            fprintf(out, "\\x%02x", name[i]);
        }
    }
    fputc('"', out);
}

static void dump_ns(FILE *out, const char *label, uint64_t ns)
{
    fprintf(out, "%s %" PRIu64 ".%09" PRIu64, label, ns / 1000000000u, ns % 1000000000u);
}

static void dump_item(struct dumper *d, const struct cow_key *k, const uint8_t *p,
                      unsigned size, const char *ind)
{
    FILE *out = d->out;
    switch (k->type) {
    case COW_INODE_ITEM:
        if (size != INODE_ITEM_SIZE)
            break;
        fprintf(out, "%ssize %" PRIu64 " nblocks %" PRIu64 " generation %" PRIu64
                     " transid %" PRIu64 " ",
                ind, get64(p + INODE_SIZE), get64(p + INODE_NBLOCKS),
                get64(p + INODE_GENERATION), get64(p + INODE_TRANSID));
        dump_ns(out, "mtime", get64(p + INODE_MTIME));
        fprintf(out, " flags 0x%" PRIx64 "\n", get64(p + INODE_FLAGS));
        return;
    case COW_DIR_ITEM: {
        unsigned pos = 0;
        while (pos + DIR_ENTRY_NAME <= size) {
            unsigned len = get16(p + pos + DIR_ENTRY_NAMELEN);
            if (len > size - pos - DIR_ENTRY_NAME) {
                fprintf(out, "%sentry at byte %u: name length %u runs past the item\n", ind,
                        pos, len);
                return;
            }
            fprintf(out, "%sino %" PRIu64 " name ", ind, get64(p + pos + DIR_ENTRY_INO));
            put_name(out, p + pos + DIR_ENTRY_NAME, len, 0);
            uint32_t h = crc32c(0, p + pos + DIR_ENTRY_NAME, len);
            fprintf(out, " (hash 0x%08x%s)\n", h, h == k->offset ? "" : ", not the key offset");
            pos += DIR_ENTRY_NAME + len;
        }
        if (pos != size)
            fprintf(out, "%s%u trailing bytes\n", ind, size - pos);
        return;
    }
    case COW_EXTENT_DATA:
        if (size != FE_ITEM_SIZE)
            break;
        fprintf(out, "%sdisk_bytenr %" PRIu64 " disk_num_bytes %" PRIu64 " extent_offset %" PRIu64
                     " num_bytes %" PRIu64 " generation %u type %s\n",
                ind, get64(p + FE_DISK_BYTENR), get64(p + FE_DISK_NUM_BYTES),
                get64(p + FE_EXTENT_OFFSET), get64(p + FE_NUM_BYTES), get32(p + FE_GENERATION),
                p[FE_TYPE] == COW_FE_REG       ? "reg"
                : p[FE_TYPE] == COW_FE_PREALLOC ? "prealloc"
                                                : "UNKNOWN");
        return;
    case COW_EXTENT_CSUM:
        if (size % 4)
            break;
        for (unsigned i = 0; i < size / 4; i++)
            fprintf(out, "%s0x%08x%s", i % 8 ? " " : ind, get32(p + 4 * i),
                    i % 8 == 7 || i + 1 == size / 4 ? "\n" : "");
        return;
    case COW_ROOT_ITEM: {
        if (size != ROOT_ITEM_SIZE)
            break;
        uint64_t flags = get64(p + ROOT_FLAGS);
        const char *kind = root_kind(flags);
        fprintf(out, "%sbytenr %" PRIu64 " generation %" PRIu64 " level %u next_ino %" PRIu64
                     " flags 0x%" PRIx64 "%s%s%s ",
                ind, get64(p + ROOT_BYTENR), get64(p + ROOT_GENERATION), p[ROOT_LEVEL],
                get64(p + ROOT_NEXT_INO), flags, kind ? " (" : flags ? " (UNKNOWN)" : "",
                kind ? kind : "", kind ? ")" : "");
        dump_ns(out, "ctime", get64(p + ROOT_CTIME));
        fprintf(out, " source %" PRIu64 "\n", get64(p + ROOT_SOURCE));
        return;
    }
    case COW_ROOT_NAME: {
        int utf8 = utf8_valid(p, size);
        fprintf(out, "%sname ", ind);
        put_name(out, p, size, utf8);
        if (size == 0 || size > COW_NAME_MAX)
            fprintf(out, " (%u bytes, expected 1..%u)", size, COW_NAME_MAX);
        if (!utf8)
            fputs(" (not valid UTF-8)", out);
        if (memchr(p, '/', size) || memchr(p, 0, size))
            fputs(" (contains '/' or NUL)", out);
        fputc('\n', out);
        return;
    }
    case COW_EXTENT_ITEM:
    case COW_METADATA_ITEM:
        if (size != EXT_ITEM_SIZE)
            break;
        fprintf(out, "%srefs %" PRIu64 " generation %" PRIu64 " flags 0x%" PRIx64 "%s\n", ind,
                get64(p + EXT_REFS), get64(p + EXT_GENERATION), get64(p + EXT_FLAGS),
                get64(p + EXT_FLAGS) == COW_EXT_FLAG_DATA   ? " (DATA)"
                : get64(p + EXT_FLAGS) == COW_EXT_FLAG_TREE ? " (TREE)"
                                                            : "");
        return;
    case COW_ORPHAN_ITEM:
        if (size != 0)
            break;
        fprintf(out, "%sinode %" PRIu64 " unlinked while open\n", ind, k->offset);
        return;
    case COW_BLOCK_GROUP_ITEM:
        if (size != BG_ITEM_SIZE)
            break;
        fprintf(out, "%sused %" PRIu64 " flags 0x%" PRIx64 "\n", ind, get64(p + BG_USED),
                get64(p + BG_FLAGS));
        return;
    default:
        if (d->flags & COW_DUMP_HEX)
            hexdump(out, p, size, 0, ind);
        else
            fprintf(out, "%s(unknown item type; --hex shows its bytes)\n", ind);
        return;
    }
    fprintf(out, "%sunexpected size %u for %s:\n", ind, size, type_name(k->type));
    hexdump(out, p, size, 0, ind);
}

static void dump_superblock(struct dumper *d, int copy, const uint8_t *sb, int rd)
{
    FILE *out = d->out;
    char why[96];
    const char *bad = sb_invalid(sb, rd, why, sizeof(why));
    fprintf(out, "superblock copy %d (block %d): %s%s\n", copy, copy, bad ? "INVALID: " : "valid",
            bad ? bad : "");
    if (rd || get64(sb + SB_MAGIC) != COW_SB_MAGIC)
        return;
    fprintf(out, "  csum 0x%08x (computed 0x%08x) version %u block_size %u flags 0x%x\n",
            get32(sb + SB_CSUM), block_csum(sb), get32(sb + SB_VERSION),
            get32(sb + SB_BLOCK_SIZE), get32(sb + SB_FLAGS));
    fprintf(out, "  generation %" PRIu64 " bg_size %" PRIu64 " total_bytes %" PRIu64
                 " bytes_used %" PRIu64 "\n",
            get64(sb + SB_GENERATION), get64(sb + SB_BG_SIZE), get64(sb + SB_TOTAL_BYTES),
            get64(sb + SB_BYTES_USED));
    for (int t = 0; t < T_NSB; t++) {
        const uint8_t *p = sb + sb_root_off[t];
        fprintf(out, "  %-11s bytenr %" PRIu64 " generation %" PRIu64 " level %u\n",
                class_name[t], get64(p + RR_BYTENR), get48(p + RR_GENERATION), p[RR_LEVEL]);
    }
    fprintf(out, "  log areas %" PRIu64 " and %" PRIu64 ", log_blocks %u, log_id 0x%016" PRIx64 "%s\n",
            get64(sb + SB_LOG_AREA0), get64(sb + SB_LOG_AREA1), get32(sb + SB_LOG_BLOCKS),
            get64(sb + SB_LOG_ID), get32(sb + SB_LOG_BLOCKS + 4) ? " (bytes 124..127 not zero)" : "");
    fputs("  uuid ", out);
    for (int i = 0; i < 16; i++)
        fprintf(out, "%02x%s", sb[SB_UUID + i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
    dump_ns(out, " ctime", get64(sb + SB_CTIME));
    fputc('\n', out);
    fprintf(out, "  written after generation %" PRIu64 " (the other copy) and %u of its log "
                 "records were flushed%s\n",
            get64(sb + SB_PREV_GENERATION), get32(sb + SB_PREV_LOG_RECORDS),
            get32(sb + SB_PREV_LOG_RECORDS + 4) ? " (bytes 180..183 not zero)" : "");
    if (get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH) {
        uint32_t n = get32(sb + SB_COMMIT_NRANGES);
        fprintf(out, "  one-flush commit: %u runs, crc 0x%08x\n", n, get32(sb + SB_COMMIT_CRC));
        for (uint32_t i = 0; i < n && i < SB_COMMIT_MAX; i++) {
            const uint8_t *e = sb + SB_COMMIT_LIST + (size_t)i * SB_COMMIT_ENTRY;
            fprintf(out, "    [%" PRIu64 ", %u blocks)\n", get64(e), get32(e + 8));
        }
    } else if (!all_zero(sb + SB_COMMIT_NRANGES, SB_LOG_ID - SB_COMMIT_NRANGES) ||
               !all_zero(sb + SB_COMMIT_LIST, BS - SB_COMMIT_LIST)) {
        fprintf(out, "  bytes 152..159 or 184..4095 are not zero (no one-flush commit)\n");
    }
}

/*
 * Shows the block at BYTENR, expected at EXP_LEVEL (-1: unknown) and, with
 * RECURSE, its children (each block once; children only while levels go
 * down by one).  COLLECT_ROOTS records ROOT_ITEMs for the subvolume trees.
 */
static void dump_tree_block(struct dumper *d, uint64_t bytenr, int exp_level, unsigned depth,
                            int recurse, int collect_roots)
{
    FILE *out = d->out;
    char ind[2 * (COW_MAX_LEVEL + 2) + 8];
    unsigned w = 2 + 2 * (depth < COW_MAX_LEVEL ? depth : COW_MAX_LEVEL);
    memset(ind, ' ', w);
    ind[w] = 0;
    uint32_t dummy;
    if (recurse) {
        if (map_get(&d->seen, bytenr, &dummy)) {
            fprintf(out, "%sblock %" PRIu64 ": shown above (shared)\n", ind, bytenr);
            return;
        }
        if (map_put(&d->seen, bytenr, 1)) {
            d->fatal = -ENOMEM;
            return;
        }
    }
    if (bytenr % BS) {
        fprintf(out, "%sblock %" PRIu64 ": not a block address\n", ind, bytenr);
        return;
    }
    uint8_t b[BS];
    int rd = read_at(d->fd, b, BS, bytenr);
    if (rd) {
        fprintf(out, "%sblock %" PRIu64 ": cannot read: %s\n", ind, bytenr,
                rd == 1 ? "past end of file" : strerror(rd));
        return;
    }
    uint32_t c = block_csum(b), s = get32(b + TB_CSUM);
    unsigned level = tb_level(b), n = tb_nritems(b);
    if (get32(b + LOG_MAGIC) == COW_LOG_MAGIC && !recurse) {
        fprintf(out, "%sblock %" PRIu64 ": log record header: log_id 0x%016" PRIx64
                     " generation %" PRIu64 " seq %" PRIu64 " nblocks %u nitems %u\n",
                ind, bytenr, get64(b + LOG_ID), get64(b + LOG_GENERATION), get64(b + LOG_SEQ),
                get32(b + LOG_NBLOCKS), get32(b + LOG_NITEMS));
        hexdump(out, b, BS, bytenr, ind);
        return;
    }
    if (get32(b + TB_MAGIC) != COW_TREE_MAGIC) {
        fprintf(out, "%sblock %" PRIu64 ": not a tree block (bad magic), csum %s\n", ind,
                bytenr, c == s ? "ok" : "bad");
        if (!recurse)
            hexdump(out, b, BS, bytenr, ind);
        return;
    }
    fprintf(out, "%s%s %" PRIu64 " level %u items %u generation %" PRIu64 " owner %" PRIu64, ind,
            level ? "node" : "leaf", bytenr, level, n, get64(b + TB_GENERATION),
            get64(b + TB_OWNER));
    if (c == s)
        fprintf(out, " csum ok");
    else
        fprintf(out, " csum BAD (stored 0x%08x, computed 0x%08x)", s, c);
    if (get64(b + TB_BYTENR) != bytenr)
        fprintf(out, " header bytenr %" PRIu64 " MISMATCH", get64(b + TB_BYTENR));
    if (exp_level >= 0 && (int)level != exp_level)
        fprintf(out, " (expected level %d)", exp_level);
    fputc('\n', out);
    unsigned max = level ? COW_NODE_MAX_PTRS : LEAF_MAX_ITEMS;
    if (n > max) {
        fprintf(out, "%s  nritems %u > %u: items not shown\n", ind, n, max);
        return;
    }
    char ks[80], ind2[sizeof(ind) + 8];
    snprintf(ind2, sizeof(ind2), "%s      ", ind);
    struct cow_key k;
    if (level == 0) {
        unsigned data_start = TB_HEADER_SIZE + n * COW_ITEM_SIZE;
        for (unsigned i = 0; i < n; i++) {
            key_get(&k, leaf_item(b, i));
            unsigned off = leaf_data_off(b, i), size = leaf_data_size(b, i);
            fprintf(out, "%s  item %u key %s data %u+%u\n", ind, i, key_str(&k, ks, sizeof(ks)),
                    off, size);
            if (off < data_start || off > BS || size > BS - off) {
                fprintf(out, "%sdata outside the block's data area\n", ind2);
                continue;
            }
            dump_item(d, &k, b + off, size, ind2);
            if (collect_roots && k.type == COW_ROOT_ITEM && size == ROOT_ITEM_SIZE &&
                d->nsv < 100000) {
                if (vec_reserve((void **)&d->sv, &d->capsv, d->nsv + 1, sizeof(*d->sv))) {
                    d->fatal = -ENOMEM;
                    return;
                }
                struct subvol *sv = &d->sv[d->nsv++];
                sv->id = k.objectid;
                sv->bytenr = get64(b + off + ROOT_BYTENR);
                sv->gen = get64(b + off + ROOT_GENERATION);
                sv->level = b[off + ROOT_LEVEL];
                sv->flags = get64(b + off + ROOT_FLAGS);
                sv->source = get64(b + off + ROOT_SOURCE);
            }
            uint32_t first;
            if (collect_roots && k.type == COW_ROOT_NAME && size >= 1 && size <= COW_NAME_MAX &&
                d->names.n < 100000 && !map_get(&d->namemap, k.objectid, &first)) {
                if (map_put(&d->namemap, k.objectid, (uint32_t)d->names.n) ||
                    names_add(&d->names, k.objectid, b + off, size)) {
                    d->fatal = -ENOMEM;
                    return;
                }
            }
        }
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        key_get(&k, node_ptr(b, i));
        fprintf(out, "%s  ptr %u key %s -> block %" PRIu64 " generation %" PRIu64 "\n", ind, i,
                key_str(&k, ks, sizeof(ks)), node_child(b, i), node_child_gen(b, i));
    }
    if (!recurse)
        return;
    if (level >= COW_MAX_LEVEL || (exp_level >= 0 && (int)level != exp_level)) {
        fprintf(out, "%s  (children not shown: level %u is not the expected one)\n", ind, level);
        return;
    }
    for (unsigned i = 0; i < n && !d->fatal; i++)
        dump_tree_block(d, node_child(b, i), (int)level - 1, depth + 1, 1, collect_roots);
}

/* One line per item of a log record: its key and what it says. */
static void dump_log_item(struct dumper *d, unsigned i, const struct cow_key *k,
                          const uint8_t *p, unsigned size)
{
    FILE *out = d->out;
    char ks[80];
    fprintf(out, "    item %u key %s: ", i, key_str(k, ks, sizeof(ks)));
    switch (k->type) {
    case COW_LOG_RANGE:
        if (size != 8)
            break;
        if (get64(p) == UINT64_MAX)
            fprintf(out, "range %" PRIu64 "..max\n", k->offset);
        else
            fprintf(out, "range %" PRIu64 "..%" PRIu64 "\n", k->offset, get64(p));
        return;
    case COW_EXTENT_DATA:
        if (size != FE_ITEM_SIZE)
            break;
        fprintf(out, "disk %" PRIu64 " len %" PRIu64 " (extent_offset %" PRIu64 ", num_bytes %" PRIu64
                     ")",
                get64(p + FE_DISK_BYTENR), get64(p + FE_DISK_NUM_BYTES),
                get64(p + FE_EXTENT_OFFSET), get64(p + FE_NUM_BYTES));
        if (p[FE_TYPE] == COW_FE_PREALLOC)
            fputs(" prealloc", out);
        else if (p[FE_TYPE] != COW_FE_REG)
            fprintf(out, " type %u (UNKNOWN)", p[FE_TYPE]);
        fputc('\n', out);
        return;
    case COW_INODE_ITEM:
        if (size != INODE_ITEM_SIZE)
            break;
        fprintf(out, "size %" PRIu64 " nblocks %" PRIu64 "\n", get64(p + INODE_SIZE),
                get64(p + INODE_NBLOCKS));
        return;
    case COW_EXTENT_CSUM:
        if (size % 4)
            break;
        fprintf(out, "disk %" PRIu64 ", %u block%s\n", k->offset, size / 4,
                size == 4 ? "" : "s");
        return;
    default:
        fprintf(out, "%u bytes, not a log item type\n", size);
        if (d->flags & COW_DUMP_HEX)
            hexdump(out, p, size, 0, "      ");
        return;
    }
    fprintf(out, "unexpected size %u\n", size);
    hexdump(out, p, size, 0, "      ");
}

/* The "log" section: every valid record in the log area of superblock copy
 * C, then why the log ends. */
static void dump_log(struct dumper *d, const uint8_t *sb, int c)
{
    FILE *out = d->out;
    uint64_t area = get64(sb + (c ? SB_LOG_AREA1 : SB_LOG_AREA0));
    uint32_t nb = get32(sb + SB_LOG_BLOCKS);
    if (!area || !nb) {
        fprintf(out, "\nlog: none (no log area)\n");
        return;
    }
    fprintf(out, "\nlog (area %d at %" PRIu64 ", %u blocks; log_id 0x%016" PRIx64
                 ", generation %" PRIu64 "):\n",
            c, area, nb, get64(sb + SB_LOG_ID), get64(sb + SB_GENERATION));
    if (area % BS || range_end(area, (uint64_t)nb * BS) > d->fsize) {
        fprintf(out, "  the area is not inside the file: not shown\n");
        return;
    }
    struct logscan s;
    memset(&s, 0, sizeof(s));
    s.fd = d->fd;
    s.fsize = d->fsize;
    s.area = area;
    s.nblocks = nb;
    s.log_id = get64(sb + SB_LOG_ID);
    s.gen = get64(sb + SB_GENERATION);
    uint64_t n = 0, blocks = 0;
    int rc;
    while ((rc = log_next(&s)) == 1) {
        fprintf(out, "  record seq %" PRIu64 " at block %u (%" PRIu64 "): %u block%s, %u item%s\n",
                s.seq + 1, s.pos, area + (uint64_t)s.pos * BS, s.rec_blocks,
                s.rec_blocks == 1 ? "" : "s", s.nitems, s.nitems == 1 ? "" : "s");
        size_t len = (size_t)s.rec_blocks * BS, pos = LOG_HEADER_SIZE;
        struct cow_key k;
        const uint8_t *p;
        unsigned size;
        for (uint32_t i = 0; i < s.nitems; i++) {
            log_item(s.rec, len, &pos, &k, &p, &size);
            dump_log_item(d, i, &k, p, size);
        }
        fprintf(out, "    %u earlier record%s known flushed; the commit %s known flushed\n",
                get32(s.rec + LOG_DURABLE), get32(s.rec + LOG_DURABLE) == 1 ? "" : "s",
                get32(s.rec + LOG_FLAGS) & COW_LOG_BASE_DURABLE ? "was" : "was not");
        if (pos < len && !all_zero(s.rec + pos, len - pos))
            fprintf(out, "    (bytes after the items are not zero)\n");
        n++;
        blocks += s.rec_blocks;
        log_advance(&s);
    }
    free(s.rec);
    free(s.reg);
    if (rc < 0) {
        d->fatal = rc;
        return;
    }
    if (s.pos >= nb)
        fprintf(out, "  end: %s\n", s.why);
    else
        fprintf(out, "  end: block %u (%" PRIu64 "): %s\n", s.pos, area + (uint64_t)s.pos * BS,
                s.why);
    fprintf(out, "  %" PRIu64 " record%s (%" PRIu64 " block%s) pending replay\n", n,
            n == 1 ? "" : "s", blocks, blocks == 1 ? "" : "s");
}

int cow_dump(const char *path, unsigned flags, uint64_t bytenr, FILE *out)
{
    struct dumper d;
    memset(&d, 0, sizeof(d));
    d.out = out;
    d.flags = flags;
    int locked;
    d.fd = open_container(path, &d.fsize, &locked, out);
    if (d.fd < 0)
        return d.fd;
    fprintf(out, "container %s: %" PRIu64 " bytes%s\n", path, d.fsize,
            locked ? "" : " (open in a process: may be changing)");
    uint8_t sb[2][BS];
    int rd[2], good[2];
    char why[128];
    for (int i = 0; i < 2; i++) {
        rd[i] = read_at(d.fd, sb[i], BS, (uint64_t)i * BS);
        good[i] = !sb_invalid(sb[i], rd[i], why, sizeof(why));
    }
    if (bytenr != UINT64_MAX) {
        if (bytenr < 2 * BS && bytenr % BS == 0)
            dump_superblock(&d, (int)(bytenr / BS), sb[bytenr / BS], rd[bytenr / BS]);
        else
            dump_tree_block(&d, bytenr, -1, 0, 0, 0);
        goto out;
    }
    for (int i = 0; i < 2; i++)
        dump_superblock(&d, i, sb[i], rd[i]);
    int c = -1;
    if (good[0] && good[1])
        c = get64(sb[1] + SB_GENERATION) > get64(sb[0] + SB_GENERATION);
    else if (good[0] || good[1])
        c = good[0] ? 0 : 1;
    if (c < 0) {
        fprintf(out, "no valid superblock: trees not shown\n");
        goto out;
    }
    /* as open: a torn one-flush commit does not count */
    const char *torn = sb_commit_torn(d.fd, d.fsize, sb[c], why, sizeof(why));
    if (torn) {
        fprintf(out, "superblock copy %d: %s\n", c, torn);
        if (!good[1 - c]) {
            fprintf(out, "no valid superblock: trees not shown\n");
            goto out;
        }
        c = 1 - c;
    }
    fprintf(out, "using superblock copy %d, generation %" PRIu64 "\n", c,
            get64(sb[c] + SB_GENERATION));
    for (int t = 0; t < T_NSB && !d.fatal; t++) {
        const uint8_t *p = sb[c] + sb_root_off[t];
        uint64_t r = get64(p + RR_BYTENR);
        fprintf(out, "\n%s (root %" PRIu64 ", generation %" PRIu64 ", level %u):\n",
                class_name[t], r, get48(p + RR_GENERATION), p[RR_LEVEL]);
        dump_tree_block(&d, r, p[RR_LEVEL] < COW_MAX_LEVEL ? p[RR_LEVEL] : COW_MAX_LEVEL - 1, 0,
                        1, t == T_ROOT);
    }
    for (size_t i = 0; i < d.nsv && !d.fatal; i++) {
        struct subvol *s = &d.sv[i];
        const char *kind = root_kind(s->flags);
        uint32_t ni;
        int named = map_get(&d.namemap, s->id, &ni);
        fprintf(out, "\nsubvolume %" PRIu64 " tree (", s->id);
        /* 'snapshot "nightly" of 256; ', nothing for the live subvolume */
        if (kind || named || s->flags || s->id != COW_FS_TREE_OBJECTID) {
            if (kind)
                fputs(kind, out);
            else
                fprintf(out, "flags 0x%" PRIx64, s->flags);
            if (named) {
                fputc(' ', out);
                put_name(out, names_bytes(&d.names, ni), d.names.v[ni].len,
                         utf8_valid(names_bytes(&d.names, ni), d.names.v[ni].len));
            } else {
                fputs(" (no name)", out);
            }
            fprintf(out, " of %" PRIu64 "; ", s->source);
        }
        fprintf(out, "root %" PRIu64 ", generation %" PRIu64 ", level %u):\n", s->bytenr, s->gen,
                s->level);
        dump_tree_block(&d, s->bytenr, s->level < COW_MAX_LEVEL ? (int)s->level : COW_MAX_LEVEL - 1,
                        0, 1, 0);
    }
    if (!d.fatal)
        dump_log(&d, sb[c], c);
out:;
    int rc = d.fatal;
    if (rc)
        fprintf(out, "%s: dump stopped: %s\n", path, strerror(-rc));
    free(d.sv);
    names_free(&d.names);
    map_free(&d.namemap);
    map_free(&d.seen);
    close(d.fd);
    return rc;
}
