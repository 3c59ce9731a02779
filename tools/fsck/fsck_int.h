/*
 * fsck_int.h - what the files of the checker (tools/fsck/) share: the
 * checker's state and the helpers each pass uses.  Private to tools/fsck/;
 * tools/fsck.h is the interface.  fsck.c's header comment describes the
 * passes and names the file of each.
 */
#ifndef COW_FSCK_INT_H
#define COW_FSCK_INT_H

#include "../fsck.h"

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
#define MAX_FILE_BYTES (1ull << 62) /* a file's extents end below it (store/validate.c) */

/* Open-addressing hash map from u64 keys to u32 values (NOIDX = empty). */
struct u64map {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap; /* power of two, or 0 */
    size_t n;
};

/* Tree classes; the first T_NSB have their roots in the superblock (the
 * remap tree's only from format version 3 on, and optional). */
enum { T_ROOT, T_EXTENT, T_CSUM, T_REMAP, T_SUBVOL, T_NCLASS };
#define T_NSB T_SUBVOL

extern const char *const class_name[T_NCLASS];
extern const uint64_t class_owner[T_NCLASS];
/* Where the superblock holds their root refs. */
extern const unsigned sb_root_off[T_NSB];

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

/*
 * A set of blocks of one data extent (at most COW_MAX_EXTENT_BLOCKS), one bit
 * a block: which blocks REG EXTENT_DATA items map, the ones that hold written
 * data and are checked.
 */
#define BMAP_WORDS (COW_MAX_EXTENT_BLOCKS / 64)

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

/*
 * A REMAP_ITEM (format.h): the blocks [logical, logical + len) are stored
 * at [physical, physical + len).  Bytes.
 */
struct remap {
    uint64_t logical, len, physical;
    uint64_t leaf; /* the remap tree leaf holding it (0: unknown), for messages */
    int usable;    /* whole blocks, in range, not overlapping: translated */
};

/* A set of remap runs; once fsck_remaps_sort() has run, sorted by logical
 * address, as fsck_remap_phys() and fsck_read_logical() need. */
struct remaps {
    struct remap *v;
    size_t n, cap;
};

struct fsck {
    const struct cow_fsck_src *src; /* what every read goes through */
    FILE *out;
    unsigned flags;
    uint64_t fsize; /* src->size */
    uint64_t lines;
    struct cow_fsck_result *r;
    int fatal; /* negative errno: stop */

    /* the superblock in use */
    uint64_t gen, bg_size, total, bytes_used;
    /* device_bytes: the file size the commit needs (version 3; total_bytes
     * for versions 1 and 2) */
    uint64_t device;
    /* root, extent, csum, remap (indexed by class); the remap tree's is
     * valid only when the superblock names one (remap_ref) */
    struct rootref rr[T_NSB];
    int remap_ref; /* the remap tree root reference is not all zero */
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

    int tree_ok[T_NCLASS]; /* root/extent/csum/remap trees read completely */
    /* every REMAP_ITEM of the remap tree, in tree order (pass 2), and the
     * usable ones sorted by logical address: what every read of a tree or
     * data block by its logical address goes through */
    struct remaps rm, xlate;
    struct remaps xphys; /* xlate sorted by physical address (pass 3) */
    int space_ok;          /* every used range is known (check_space's all_ok) */
    struct span *sp;       /* used ranges, sorted (kept by check_space) */
    size_t nsp;
    struct u64map logx;    /* logged data extent -> its blocks (pass 5) */
    /* the files of subvolume 256 (pass 4, for pass 5): inode -> index in
     * lf; each file's extents are lx[first .. first + n), in file order */
    struct u64map live_inodes;
    int have_live_inodes;
    /* cow_fsck_progress(): the caller's callback, and the bytes read */
    cow_fsck_progress_fn progress;
    void *progress_arg;
    uint64_t progress_done;
    struct lfile *lf;
    size_t nlf, caplf;
    struct fspan *lx;
    size_t nlx, caplx;
};

/* A range [start, end) of a file that an EXTENT_DATA item maps (bytes). */
struct fspan {
    uint64_t start, end;
};

/* A committed file of subvolume 256: its INODE_ITEM's nblocks and where its
 * extents are in fsck.lx. */
struct lfile {
    uint64_t nblocks;
    size_t first, n;
};

/* The blocks of one data extent that the REG items of a record map. */
struct lreg {
    uint64_t disk;
    uint64_t end; /* the highest block end of those items (fe_block_end) */
    uint64_t map[BMAP_WORDS];
};

struct logscan {
    const struct cow_fsck_src *src;
    const struct remaps *remap; /* translation of data reads, or NULL */
    uint64_t area;        /* bytenr of the area */
    uint32_t nblocks;     /* area length in blocks */
    uint64_t log_id, gen; /* of the superblock in use */
    uint32_t pos;         /* area block of the record being read */
    uint64_t seq;         /* sequence number of the last valid record */
    uint8_t *rec;         /* the record (rec_blocks blocks) */
    size_t cap;
    uint32_t rec_blocks, nitems;
    struct lreg *reg;     /* the record's REG blocks, one per extent, sorted,
                           * and its NODATASUM blocks of extents KNOWN says
                           * the commit does not hold (young, as replay
                           * checks them: store/replay.c rec_data_ok) */
    int (*known)(void *ctx, uint64_t disk); /* NULL: no NODATASUM block */
    void *known_ctx;
    size_t nreg, capreg;
    char why[160];        /* why the log ends */
    int odd;              /* it ends at something other than an empty block or
                           * a stale record: a torn or broken record */
    int ioerr;            /* ... or at a read error */
    int broken;           /* ... or at a whole record of this log that the
                           * store refuses (a problem: open fails) */
};

/* ---- remap.c: the remap tree's items, translation, physical space ---- */
int fsck_remaps_add(struct remaps *t, const struct remap *r);
void fsck_remaps_sort(struct remaps *t);
void fsck_remaps_free(struct remaps *t);
uint64_t fsck_remap_phys(const struct remaps *t, uint64_t logical, uint64_t *contig);
int fsck_read_logical(const struct cow_fsck_src *src, const struct remaps *t, void *buf,
                      size_t len, uint64_t logical);
/* fsck_read_logical()'s answer when a piece lies in a dropped run
 * (REMAP_ITEM physical 0: not stored; BUF holds zeros there). */
#define FSCK_READ_DROPPED 1000
uint64_t fsck_phys_end(const struct remaps *t, uint64_t logical, uint64_t len);
void fsck_check_remap_item(struct fsck *f, const char *where, const struct cow_key *k,
                           const uint8_t *p, uint64_t leaf);
void fsck_remap_build(struct fsck *f);
void fsck_check_remap_space(struct fsck *f);
const struct remap *fsck_remap_target_in(const struct fsck *f, uint64_t start, uint64_t len);
/* ---- util.c: containers, names, reading, messages ---- */
int fsck_vec_reserve(void **p, size_t *cap, size_t need, size_t esz);
int fsck_map_get(const struct u64map *m, uint64_t k, uint32_t *v);
int fsck_map_put(struct u64map *m, uint64_t k, uint32_t v);
void fsck_map_free(struct u64map *m);
const char *fsck_type_name(unsigned t);
const char *fsck_key_str(const struct cow_key *k, char *buf, size_t len);
uint64_t fsck_range_end(uint64_t start, uint64_t len);
const char *fsck_name_str(const uint8_t *name, unsigned len, char *buf, size_t size);
int fsck_utf8_valid(const uint8_t *p, size_t len);
int fsck_names_add(struct names *nm, uint64_t id, const uint8_t *p, unsigned len);
const uint8_t *fsck_names_bytes(const struct names *nm, size_t i);
void fsck_names_free(struct names *nm);
const char *fsck_root_kind(uint64_t flags);
uint64_t fsck_fe_block_end(uint64_t xoff, uint64_t nbytes);
void fsck_bmap_add(uint64_t *m, uint64_t xoff, uint64_t nbytes);
int fsck_bmap_has(const uint64_t *m, uint32_t b);
int fsck_all_zero(const uint8_t *p, size_t n);
int fsck_read_at(const struct cow_fsck_src *src, void *buf, size_t len, uint64_t off);
uint32_t fsck_block_csum(const uint8_t *b);
/* A container file open for checking: a source reading it with pread(2). */
struct fsck_file {
    int fd;
    int locked; /* the shared flock(2) is held */
    struct cow_fsck_src src; /* its arg is this struct: do not move it */
};
int fsck_open_container(const char *path, struct fsck_file *file, FILE *out);
void fsck_close_container(struct fsck_file *file);
int fsck_src_valid(const struct cow_fsck_src *src, FILE *out);
__attribute__((format(printf, 2, 3))) void fsck_problem(struct fsck *f, const char *fmt,
                                                   ...);
__attribute__((format(printf, 2, 3))) void fsck_note(struct fsck *f, const char *fmt, ...);
void fsck_set_fatal(struct fsck *f, int rc);
/* Counts BYTES read for the progress callback and calls it (if any). */
void fsck_progress(struct fsck *f, uint64_t bytes);
const char *fsck_blk_where(int cls, uint64_t tree_id, uint64_t bytenr, char *buf, size_t len);
/* ---- super.c: pass 1, superblocks ---- */
int fsck_check_superblocks(struct fsck *f);
const char *fsck_sb_invalid(const uint8_t *buf, int rd, char *why, size_t len);
size_t fsck_sb_commit_list(const uint8_t *sb);
uint32_t fsck_sb_commit_max(const uint8_t *sb);
uint64_t fsck_sb_device_bytes(const uint8_t *sb);
int fsck_sb_has_remap(const uint8_t *sb);
const char *fsck_sb_commit_torn(const struct cow_fsck_src *src, const uint8_t *sb, char *why,
                                size_t len);
/* ---- walk.c: pass 2, structure ---- */
struct dext *fsck_dext_get(struct fsck *f, uint64_t bytenr, int create);
void fsck_check_file_extent(struct fsck *f, const char *where, const struct cow_key *k,
                       const uint8_t *p, uint64_t leaf);
uint32_t fsck_walk_tree(struct fsck *f, int cls, uint64_t tree_id, uint64_t bytenr,
                   uint64_t gen, unsigned level, const char *from);
/* ---- subvols.c: pass 2, subvolume names ---- */
const char *fsck_sv_label(const struct fsck *f, const struct subvol *s, char *buf, size_t len);
void fsck_check_root_names(struct fsck *f);
/* ---- extents.c: pass 3, extents and refcounts ---- */
void fsck_check_extent_items(struct fsck *f, int subvols_ok);
/* ---- csums.c: pass 3, csum items; pass 4, data ---- */
void fsck_check_csums(struct fsck *f);
void fsck_check_data(struct fsck *f);
/* ---- space.c: pass 3, space and block groups ---- */
const char *fsck_span_str(const struct span *s, char *buf, size_t len);
void fsck_check_space(struct fsck *f, int all_ok);
/* ---- files.c: pass 4, files ---- */
void fsck_check_files(struct fsck *f, struct subvol *sv);
/* ---- log.c: pass 5, the log ---- */
int fsck_log_item(const uint8_t *r, size_t len, size_t *pos, struct cow_key *k,
             const uint8_t **data, unsigned *size);
/* Starts S (zeroed) on the log area at AREA (bytenr; NBLOCKS blocks) of the
 * container SRC, for the superblock's LOG_ID and GEN; the
 * caller may then set s->remap, through which data blocks the records name
 * are read (NULL: at their own address).  fsck_log_scan_free() frees what
 * reading records allocated. */
void fsck_log_scan_init(struct logscan *s, const struct cow_fsck_src *src, uint64_t area,
                        uint32_t nblocks, uint64_t log_id, uint64_t gen);
void fsck_log_scan_free(struct logscan *s);
int fsck_log_next(struct logscan *s);
void fsck_log_advance(struct logscan *s);
void fsck_check_log(struct fsck *f);

#endif /* COW_FSCK_INT_H */
