/*
 * sweep.c - the corruption sweep (make sweep in make test; make sweep-full
 * runs every mutation): single-byte damage to small valid containers, each
 * damaged copy checked through the store, through SQLite and by fsck.
 *
 * CONTAINERS: the fuzzers' bases (test/fuzz/fuzzlib.h: clean, snapshots and
 * branches, WAL with preallocated extents and pending log records, a
 * persistent journal with pending log records), made in this process.  For
 * each, the reference is what the undamaged container gives: the store's
 * generation, every file of every subvolume (live files, snapshots,
 * branches) read through the store, and what SQLite reads (integrity_check,
 * then every row) from the live database and each snapshot and branch.
 *
 * TARGETS: every byte of both superblocks, of every tree block (live or
 * stale), of the log records pending replay and the block after them in
 * both log areas, and of every live data block, each classified by what
 * uses it (see region_name).  Each byte is damaged four ways: one bit
 * flipped, zeroed, set to 0xff (a change that leaves it as it was is
 * skipped), and for metadata (superblocks, tree blocks, log records) one
 * bit flipped with the checksums recomputed afterwards (fz_fix_checksums),
 * which is what reaches the parsers behind the checksums.  make sweep
 * draws a fixed-seed sample (sizes printed); --full takes every target.
 *
 * CHECKS of each damaged copy, each from the same damaged bytes:
 *   fsck     cow_fsck() with data: problems found or not;
 *   store    opened read-only (replaying the log in memory); an error at
 *            open or at a read is "detected"; otherwise the generation and
 *            everything read must equal the reference;
 *   SQLite   opened through "cow" read-write (replay, recovery), integrity
 *            check and every row, of the live database and of each
 *            snapshot and branch of the reference: an error is
 *            "detected"; otherwise the rows must equal the reference.
 * Outcomes: silently wrong (the store or SQLite returned data or a
 * generation other than the reference without an error: also a container
 * that opens at an older commit, unless one of the two legal cases
 * below), detected by open (the store or SQLite failed), detected by fsck
 * only, harmless (everything as the reference and fsck clean), crash (the
 * checking process died: a signal, a sanitizer report or a hang of more
 * than 60 s on one copy).  The two legal cases, each compared exactly
 * against a second reference computed per base (see struct last_write):
 * "the other superblock copy holds the same state" (the newest copy
 * damaged, the older one read, with the reference's data: a clean close's
 * seal) and "indistinguishable from a torn last write" (the damaged byte
 * lies in the last write and everything read equals the container with
 * that write torn; docs/DESIGN.md, "Damage a crash cannot cause", says why
 * no format can tell them apart).  The sweep prints each mutation that
 * fsck and open judge differently (open refuses and fsck is clean, or fsck
 * reports a problem while everything reads as the reference).  Mutations
 * run in child processes (--jobs of them at a time, a batch each), so a
 * crash is counted and the sweep goes on after it.
 *
 * FILES: truncated containers, a zero-length file, random bytes and a
 * plain SQLite database, as files: cow_store_open() (read-write and
 * read-only), SQLite through "cow" (read-write, no create) and fsck must
 * each fail with a clear error, and the file's bytes must be unchanged.
 *
 * Exit status 1 if anything was silently wrong, crashed, was refused by
 * open while fsck called it clean, or a file case failed; 0 otherwise.
 * (fsck finding a problem that open does not meet is allowed: fsck reads
 * every block and every field, open only what it uses.)  Any failure
 * prints the command that redoes it:
 *   build/sweep --only BASE:OFFSET:KIND   (one mutation, in this process;
 *                                          --save PATH keeps the copy)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../tools/fsck.h"
#include "../fuzz/fuzzlib.h"
#include "cowvfs.h"
#include "crc32c.h"
#include "format.h"
#include "store.h"
#include "store_int.h"

/* ---------------------------------------------------------------------------
 * Regions: what uses each byte of a base
 */

enum region {
    R_SB_LIVE,     /* the superblock copy in use, its used bytes */
    R_SB_TAIL,     /* ... past its commit list (zeros, covered by its crc) */
    R_SB_OLD,      /* the other copy (the previous commit) */
    R_TREE_HDR,    /* a live tree block: header */
    R_TREE_ITEMS,  /* ... item headers or key pointers, and item data */
    R_TREE_SLACK,  /* ... free space between item headers and data */
    R_TREE_STALE,  /* a tree block no tree reaches (freed by CoW) */
    R_LOG_LIVE,    /* a log record pending replay */
    R_LOG_NEXT,    /* the block after the last record, in either area */
    R_DATA_LIVE,   /* a data block an extent item maps */
    R_DATA_PREALLOC, /* a preallocated block (never written) */
    R_NREGIONS
};

static const char *const region_name[R_NREGIONS] = {
    "superblock in use", "superblock unused", "superblock other copy", "tree block header",
    "tree block items",  "tree block slack", "stale tree block",     "log record pending",
    "log block after",   "data block",       "preallocated block",
};

enum kind { K_FLIP, K_ZERO, K_FF, K_FLIPFIX, K_NKINDS };
static const char *const kind_name[K_NKINDS] = {"flip", "zero", "ff", "flipfix"};

/*
 * O_SAME: the newest superblock copy damaged, open used the other one, and
 * what it reads is the reference (a clean close seals the last commit with
 * a superblock of the same trees, so the other copy holds the same state).
 * O_TORN: the damage lies in the last write (see struct last_write) and
 * everything read equals the legal crash state in which that write was
 * torn: undetectable by design (docs/DESIGN.md, "Damage a crash cannot
 * cause").  O_VALID: a flipfix whose checksums, recomputed, make another
 * valid container of the same commit: fsck finds it clean, the store and
 * SQLite read it without an error at the reference's generation, but other
 * contents (a logged file size with a bit flipped, say: any size is legal),
 * or the same contents at a higher generation (the generation of a sealed
 * superblock raised: a counter jumped, nothing is lost or reused).
 * No checksum can tell a field written wrong and checksummed from a field
 * written right (DESIGN, "Damage a crash cannot cause").  Anything else that
 * reads differently is O_WRONG: an older generation, or what fsck calls
 * damaged read without an error.
 */
enum outcome {
    O_NONE, O_STARTED, O_HARMLESS, O_SAME, O_TORN, O_VALID, O_FSCK, O_OPEN, O_WRONG, O_CRASH,
    O_NOUTCOMES
};
static const char *const outcome_name[O_NOUTCOMES] = {
    "", "", "harmless",
    "harmless (the other superblock copy holds the same state)",
    "indistinguishable from a torn last write (undetectable by design, see DESIGN)",
    "another valid container (flipfix: checksums recomputed; fsck clean, no error)",
    "detected by fsck only", "detected by open", "SILENTLY WRONG", "CRASH"};

/* A mutation, and what came of it (in memory shared with the children). */
struct mut {
    uint32_t off;   /* byte offset in the base */
    uint8_t base;
    uint8_t kind;
    uint8_t bit;    /* for flips */
    uint8_t region;
    volatile uint8_t outcome;
    volatile uint8_t fsck_clean; /* fsck found nothing */
};

/* What the store and SQLite read from a container. */
struct view {
    uint64_t gen;
    uint64_t store_hash;
    uint64_t sql_hash[17]; /* [0] live, [1+i] subvolume i of the reference */
};

struct ref {
    struct view v;
    int nsub;
    char sub[16][256];
    int subkind[16];
};

/*
 * The last write of a base: the write a crash could have torn with nothing
 * written after it that proves it was flushed.  With log records pending,
 * the last record (its blocks) and the data blocks its extent items point
 * at; with none, the newest superblock copy and the runs its commit list
 * covers.  TORN is what the base reads when that write is torn (the
 * record's first block or the superblock copy zeroed), OLDER what it reads
 * with the newest superblock copy zeroed (the other copy's state).
 */
enum { LW_MAXRANGES = 400 };
struct last_write {
    int nranges;
    uint64_t at[LW_MAXRANGES], len[LW_MAXRANGES]; /* byte ranges */
    uint64_t tear;     /* the block zeroed for TORN */
    uint64_t sb_at;    /* the newest superblock copy's offset */
    int have_torn, have_older;
    struct view torn, older;
};

static struct fz_base *bases;
static size_t nbases;
static struct ref refs[16];
static struct last_write lastw[16];
static uint8_t *regions[16]; /* per base: a region per byte, 0xff = none */

static uint8_t *work;  /* the damaged copy being checked */
static size_t work_len, work_cap;
static int memfd = -1;
static char memfd_path[64];
static int verbose;

static void die(const char *what)
{
    fprintf(stderr, "sweep: %s: %s\n", what, strerror(errno));
    exit(2);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- the region map of a base ---- */

static void mark(uint8_t *map, size_t len, uint64_t off, uint64_t n, enum region r)
{
    for (uint64_t i = 0; i < n && off + i < len; i++)
        map[off + i] = (uint8_t)r;
}

static void walk_tree(const struct fz_base *b, uint8_t *map, uint64_t bytenr, int depth);

/* Marks the blocks the extent item FE maps (written or preallocated). */
static void mark_extent(const struct fz_base *b, uint8_t *map, const uint8_t *fe)
{
    uint64_t disk = get64(fe + FE_DISK_BYTENR), off = get64(fe + FE_EXTENT_OFFSET);
    uint64_t nb = get64(fe + FE_NUM_BYTES);
    if (disk == 0 || nb > (1u << 20) || off > (1u << 20) || disk > b->len)
        return;
    for (uint64_t o = 0; o < nb; o += COW_BLOCK_SIZE) {
        uint64_t at = disk + off + o;
        if (at + COW_BLOCK_SIZE > b->len || map[at] == R_DATA_LIVE)
            continue;
        mark(map, b->len, at, COW_BLOCK_SIZE,
             fe[FE_TYPE] == COW_FE_PREALLOC ? R_DATA_PREALLOC : R_DATA_LIVE);
    }
}

static void walk_tree(const struct fz_base *b, uint8_t *map, uint64_t bytenr, int depth)
{
    if (depth > COW_MAX_LEVEL + 1 || bytenr % COW_BLOCK_SIZE || bytenr + COW_BLOCK_SIZE > b->len)
        return;
    const uint8_t *blk = b->img + bytenr;
    if (map[bytenr] == R_TREE_HDR || get32(blk + TB_MAGIC) != COW_TREE_MAGIC)
        return;
    uint32_t n = tb_nritems(blk);
    unsigned level = tb_level(blk);
    mark(map, b->len, bytenr, COW_BLOCK_SIZE, R_TREE_SLACK);
    mark(map, b->len, bytenr, TB_HEADER_SIZE, R_TREE_HDR);
    if (level > 0) {
        if (n > COW_NODE_MAX_PTRS)
            return;
        mark(map, b->len, bytenr + TB_HEADER_SIZE, (uint64_t)n * COW_KP_SIZE, R_TREE_ITEMS);
        for (uint32_t i = 0; i < n; i++)
            walk_tree(b, map, node_child(blk, i), depth + 1);
        return;
    }
    if ((uint64_t)n * COW_ITEM_SIZE > COW_LEAF_SPACE)
        return;
    mark(map, b->len, bytenr + TB_HEADER_SIZE, (uint64_t)n * COW_ITEM_SIZE, R_TREE_ITEMS);
    for (uint32_t i = 0; i < n; i++) {
        unsigned off = leaf_data_off(blk, i), size = leaf_data_size(blk, i);
        if (off + size > COW_BLOCK_SIZE)
            continue;
        mark(map, b->len, bytenr + off, size, R_TREE_ITEMS);
        struct cow_key k;
        key_get(&k, leaf_item(blk, i));
        if (k.type == COW_ROOT_ITEM && size >= ROOT_ITEM_SIZE)
            walk_tree(b, map, get64(blk + off + ROOT_BYTENR), 0);
        else if (k.type == COW_EXTENT_DATA && size >= FE_ITEM_SIZE)
            mark_extent(b, map, blk + off);
    }
}

/* The superblock copy in use: the valid one with the highest generation. */
static int sb_in_use(const uint8_t *img, size_t len)
{
    int best = -1;
    uint64_t bg = 0;
    for (int k = 0; k < COW_SB_COPIES && (size_t)(k + 1) * COW_BLOCK_SIZE <= len; k++) {
        const uint8_t *sb = img + (size_t)k * COW_BLOCK_SIZE;
        if (get64(sb + SB_MAGIC) != COW_SB_MAGIC ||
            get32(sb + SB_CSUM) != crc32c(0, sb + 4, COW_BLOCK_SIZE - 4))
            continue;
        if (best < 0 || get64(sb + SB_GENERATION) > bg) {
            best = k;
            bg = get64(sb + SB_GENERATION);
        }
    }
    return best;
}

/* Marks the valid records of log area K (those replay applies) and the
 * block after them; their extent items' data is live. */
static void lw_add(struct last_write *lw, uint64_t at, uint64_t len)
{
    if (lw && lw->nranges < LW_MAXRANGES) {
        lw->at[lw->nranges] = at;
        lw->len[lw->nranges++] = len;
    }
}

/* Whether byte OFF lies in the last write LW. */
static int in_last_write(const struct last_write *lw, uint64_t off)
{
    for (int i = 0; i < lw->nranges; i++)
        if (off >= lw->at[i] && off - lw->at[i] < lw->len[i])
            return 1;
    return 0;
}

static void walk_log(const struct fz_base *b, uint8_t *map, const uint8_t *sb, int k, int live,
                     struct last_write *lw)
{
    uint64_t area = get64(sb + (k ? SB_LOG_AREA1 : SB_LOG_AREA0));
    uint32_t lb = get32(sb + SB_LOG_BLOCKS);
    if (!area || area % COW_BLOCK_SIZE || area + (uint64_t)lb * COW_BLOCK_SIZE > b->len)
        return;
    uint64_t at = area, end = area + (uint64_t)lb * COW_BLOCK_SIZE, seq = 1;
    while (live && at < end) {
        const uint8_t *r = b->img + at;
        uint32_t nb = get32(r + LOG_NBLOCKS), ni = get32(r + LOG_NITEMS);
        if (get32(r + LOG_MAGIC) != COW_LOG_MAGIC || nb == 0 ||
            nb > (end - at) / COW_BLOCK_SIZE || get64(r + LOG_ID) != get64(sb + SB_LOG_ID) ||
            get64(r + LOG_GENERATION) != get64(sb + SB_GENERATION) || get64(r + LOG_SEQ) != seq ||
            get32(r + LOG_CSUM) != crc32c(0, r + 4, (size_t)nb * COW_BLOCK_SIZE - 4))
            break;
        mark(map, b->len, at, (uint64_t)nb * COW_BLOCK_SIZE, R_LOG_LIVE);
        if (lw) { /* this record is the last write until a next one is found */
            lw->nranges = 0;
            lw->tear = at;
            lw_add(lw, at, (uint64_t)nb * COW_BLOCK_SIZE);
        }
        size_t p = LOG_HEADER_SIZE, lim = (size_t)nb * COW_BLOCK_SIZE;
        for (uint32_t i = 0; i < ni && p + LOG_ITEM_HEADER <= lim; i++) {
            struct cow_key key;
            key_get(&key, r + p);
            size_t sz = get16(r + p + COW_KEY_SIZE);
            if (p + LOG_ITEM_HEADER + sz > lim)
                break;
            if (key.type == COW_EXTENT_DATA && sz >= FE_ITEM_SIZE) {
                const uint8_t *fe = r + p + LOG_ITEM_HEADER;
                mark_extent(b, map, fe);
                if (get64(fe + FE_DISK_BYTENR))
                    lw_add(lw, get64(fe + FE_DISK_BYTENR) + get64(fe + FE_EXTENT_OFFSET),
                           get64(fe + FE_NUM_BYTES));
            }
            p += LOG_ITEM_HEADER + sz;
        }
        at += (uint64_t)nb * COW_BLOCK_SIZE;
        seq++;
    }
    if (at < end)
        mark(map, b->len, at, COW_BLOCK_SIZE, R_LOG_NEXT);
}

static uint8_t *region_map(const struct fz_base *b)
{
    uint8_t *map = malloc(b->len);
    if (!map)
        die("malloc");
    memset(map, 0xff, b->len);
    int cur = sb_in_use(b->img, b->len);
    if (cur < 0) {
        fprintf(stderr, "sweep: base %s has no valid superblock\n", b->name);
        exit(2);
    }
    const uint8_t *sb = b->img + (size_t)cur * COW_BLOCK_SIZE;
    mark(map, b->len, (uint64_t)(1 - cur) * COW_BLOCK_SIZE, COW_BLOCK_SIZE, R_SB_OLD);
    mark(map, b->len, (uint64_t)cur * COW_BLOCK_SIZE, COW_BLOCK_SIZE, R_SB_TAIL);
    uint32_t nr = get32(sb + SB_COMMIT_NRANGES);
    mark(map, b->len, (uint64_t)cur * COW_BLOCK_SIZE,
         SB_COMMIT_LIST + (uint64_t)(nr <= SB_COMMIT_MAX ? nr : 0) * SB_COMMIT_ENTRY, R_SB_LIVE);
    static const int roots[] = {SB_ROOT_TREE, SB_EXTENT_TREE, SB_CSUM_TREE};
    for (int i = 0; i < 3; i++)
        walk_tree(b, map, get64(sb + roots[i] + RR_BYTENR), 0);
    struct last_write *lw = &lastw[b - bases];
    memset(lw, 0, sizeof *lw);
    lw->sb_at = (uint64_t)cur * COW_BLOCK_SIZE;
    walk_log(b, map, sb, cur, 1, lw);
    walk_log(b, map, sb, 1 - cur, 0, NULL);
    if (lw->nranges == 0) { /* no record: the newest superblock and its commit list */
        lw->tear = lw->sb_at;
        lw_add(lw, lw->sb_at, COW_BLOCK_SIZE);
        for (uint32_t i = 0; (get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH) && i < nr &&
                             i < SB_COMMIT_MAX; i++) {
            const uint8_t *e = sb + SB_COMMIT_LIST + (size_t)i * SB_COMMIT_ENTRY;
            lw_add(lw, get64(e), (uint64_t)get32(e + 8) * COW_BLOCK_SIZE);
        }
    }
    /* Tree blocks no tree reaches: stale copies (CoW never overwrites). */
    for (size_t i = COW_SB_COPIES; i < b->len / COW_BLOCK_SIZE; i++) {
        const uint8_t *blk = b->img + i * COW_BLOCK_SIZE;
        if (map[i * COW_BLOCK_SIZE] == 0xff && get32(blk + TB_MAGIC) == COW_TREE_MAGIC)
            mark(map, b->len, i * COW_BLOCK_SIZE, COW_BLOCK_SIZE, R_TREE_STALE);
    }
    return map;
}

/* ---------------------------------------------------------------------------
 * Views: what the store and SQLite read from the container in `work`
 */

struct names {
    char v[64][256];
    int kind[64];
    int n;
};

static int list_cb(void *arg, const struct cow_file_info *fi)
{
    struct names *nm = arg;
    if (nm->n < 64)
        snprintf(nm->v[nm->n++], 256, "%s", fi->name);
    return 0;
}

static int subvol_cb(void *arg, const struct cow_subvol_info *si)
{
    struct names *nm = arg;
    if (nm->n < 64) {
        nm->kind[nm->n] = si->kind;
        snprintf(nm->v[nm->n++], 256, "%s", si->name);
    }
    return 0;
}

/* Hashes file NAME of SUBVOL into *H; COW_OK or the error met. */
static int hash_file(cow_store *st, const char *subvol, const char *name, uint64_t *h)
{
    static uint8_t buf[65536];
    cow_file *f;
    int exists = 0, rc = cow_subvol_exists(st, subvol, name, &exists);
    if (rc || !exists) {
        *h = fnv(*h, "-", 1);
        return rc;
    }
    rc = cow_subvol_file_open(st, subvol, name, 0, &f);
    if (rc)
        return rc;
    uint64_t size = 0;
    rc = cow_file_size(f, &size);
    *h = fnv(fnv(*h, name, strlen(name) + 1), &size, sizeof size);
    for (uint64_t off = 0; rc == COW_OK && off < size; off += sizeof buf) {
        size_t got;
        rc = cow_file_read(f, buf, sizeof buf, off, &got);
        if (rc == COW_OK)
            *h = fnv(*h, buf, got);
    }
    cow_file_close(f);
    return rc;
}

/*
 * Opens `work` read-only through the store and reads every file of every
 * subvolume.  Returns COW_OK with *GEN and *HASH set, or the error met (its
 * message in WHY), and fills SUBS with the subvolumes if not NULL.
 */
static int store_view(uint64_t *gen, uint64_t *hash, struct names *subs, char *why, size_t wl)
{
    static const char *const sqlnames[] = {"db", "db-journal", "db-wal"};
    static struct names files, sv;
    cow_store *st;
    uint64_t h = 0xcbf29ce484222325ull;
    files.n = sv.n = 0;
    int rc = cow_store_open_dev("sweep", fz_buf_dev(&work, &work_len, &work_cap),
                                COW_OPEN_READONLY, 0, &st);
    if (rc) {
        snprintf(why, wl, "open: %s", cow_store_last_error(NULL));
        return rc;
    }
    *gen = cow_store_generation(st);
    rc = cow_list(st, list_cb, &files);
    for (int i = 0; rc == COW_OK && i < files.n; i++)
        rc = hash_file(st, NULL, files.v[i], &h);
    if (rc == COW_OK)
        rc = cow_subvol_list(st, subvol_cb, &sv);
    for (int i = 0; rc == COW_OK && i < sv.n; i++) {
        h = fnv(fnv(h, sv.v[i], strlen(sv.v[i]) + 1), &sv.kind[i], sizeof sv.kind[i]);
        for (int k = 0; rc == COW_OK && k < 3; k++)
            rc = hash_file(st, sv.v[i], sqlnames[k], &h);
    }
    if (rc)
        snprintf(why, wl, "read: %s", cow_store_last_error(st));
    cow_store_close(st);
    *hash = h;
    if (subs)
        *subs = sv;
    return rc;
}

/* SQLite's reading of the live database and each subvolume of R, from
 * `work` (which recovery may change).  Returns SQLITE_OK with HASHES set,
 * or the first error (its message in WHY). */
static int sql_view(const struct ref *r, uint64_t *hashes, char *why, size_t wl)
{
    fz_vfs_serve_buf(&work, &work_len, &work_cap);
    int rc = fz_sql_check("", SQLITE_OPEN_READWRITE, &hashes[0]);
    if (rc)
        snprintf(why, wl, "live database: %s", sqlite3_errstr(rc));
    for (int i = 0; rc == SQLITE_OK && i < r->nsub; i++) {
        char suffix[300];
        snprintf(suffix, sizeof suffix, "&%s=%s",
                 r->subkind[i] == COW_SUBVOL_SNAPSHOT ? "snapshot" : "branch", r->sub[i]);
        rc = fz_sql_check(suffix, SQLITE_OPEN_READWRITE, &hashes[1 + i]);
        if (rc)
            snprintf(why, wl, "%s: %s", r->sub[i], sqlite3_errstr(rc));
    }
    fz_vfs_serve(NULL, 0);
    return rc;
}

static void load_work(const struct fz_base *b)
{
    if (work_cap < b->len) {
        work = realloc(work, b->len);
        if (!work)
            die("realloc");
        work_cap = b->len;
    }
    memcpy(work, b->img, b->len);
    work_len = b->len;
}

/* What base BI reads with block AT zeroed, into *V; 0 if that fails. */
static int alt_view(size_t bi, uint64_t at, struct view *v)
{
    char why[512];
    load_work(&bases[bi]);
    memset(work + at, 0, COW_BLOCK_SIZE);
    if (store_view(&v->gen, &v->store_hash, NULL, why, sizeof why) != COW_OK)
        return 0;
    load_work(&bases[bi]);
    memset(work + at, 0, COW_BLOCK_SIZE);
    return sql_view(&refs[bi], v->sql_hash, why, sizeof why) == SQLITE_OK;
}

static void make_ref(size_t bi)
{
    struct ref *r = &refs[bi];
    struct names subs;
    char why[512];
    load_work(&bases[bi]);
    if (store_view(&r->v.gen, &r->v.store_hash, &subs, why, sizeof why) != COW_OK) {
        fprintf(stderr, "sweep: base %s: %s\n", bases[bi].name, why);
        exit(2);
    }
    r->nsub = subs.n < 16 ? subs.n : 16;
    for (int i = 0; i < r->nsub; i++) {
        snprintf(r->sub[i], sizeof r->sub[i], "%s", subs.v[i]);
        r->subkind[i] = subs.kind[i];
    }
    if (sql_view(r, r->v.sql_hash, why, sizeof why) != SQLITE_OK) {
        fprintf(stderr, "sweep: base %s through SQLite: %s\n", bases[bi].name, why);
        exit(2);
    }
    struct last_write *lw = &lastw[bi];
    lw->have_torn = alt_view(bi, lw->tear, &lw->torn);
    lw->have_older = alt_view(bi, lw->sb_at, &lw->older);
}

/* ---------------------------------------------------------------------------
 * One mutation
 */

static void fsck_work(int *clean, FILE *out)
{
    /* Overwritten in place (truncating first would free and refault its
     * pages at every mutation). */
    if (ftruncate(memfd, (off_t)work_len) != 0 ||
        pwrite(memfd, work, work_len, 0) != (ssize_t)work_len)
        die("memfd write");
    struct cow_fsck_result res;
    int n = cow_fsck(memfd_path, COW_FSCK_DATA | (out ? COW_FSCK_NOTES : 0), out, &res);
    *clean = n == 0;
}

static void apply(const struct mut *m)
{
    const struct fz_base *b = &bases[m->base];
    load_work(b);
    uint8_t *p = work + m->off;
    switch (m->kind) {
    case K_FLIP:
    case K_FLIPFIX:
        *p ^= (uint8_t)(1u << m->bit);
        break;
    case K_ZERO:
        *p = 0;
        break;
    default:
        *p = 0xff;
        break;
    }
    if (m->kind == K_FLIPFIX) {
        uint64_t la[2];
        uint32_t lb;
        fz_log_areas(b->img, b->len, la, &lb);
        fz_fix_checksums(work, work_len, m->off / COW_BLOCK_SIZE, la, lb);
    }
}

/* Whether what was read (the store's part if STORE_OK, SQLite's if
 * SQL_OK) is what view X reads. */
static int reads_as(const struct ref *r, const struct view *got, int store_ok, int sql_ok,
                    const struct view *x)
{
    if (store_ok && (got->gen != x->gen || got->store_hash != x->store_hash))
        return 0;
    for (int i = 0; sql_ok && i <= r->nsub; i++)
        if (got->sql_hash[i] != x->sql_hash[i])
            return 0;
    return 1;
}

static void check(struct mut *m)
{
    const struct ref *r = &refs[m->base];
    const struct last_write *lw = &lastw[m->base];
    char why[512] = "", swhy[512] = "";
    int clean;
    struct view got = {0};
    apply(m);
    fsck_work(&clean, verbose ? stdout : NULL);
    m->fsck_clean = (uint8_t)clean;
    int store_ok = store_view(&got.gen, &got.store_hash, NULL, why, sizeof why) == COW_OK;
    if (store_ok && (got.gen != r->v.gen || got.store_hash != r->v.store_hash))
        snprintf(why, sizeof why, "store read generation %llu (reference %llu), %s",
                 (unsigned long long)got.gen, (unsigned long long)r->v.gen,
                 got.store_hash == r->v.store_hash ? "the same files" : "different files");
    if (verbose)
        printf("store: %s\n", why[0] ? why : "as the reference");
    apply(m);
    int sql_ok = sql_view(r, got.sql_hash, swhy, sizeof swhy) == SQLITE_OK;
    for (int i = 0; sql_ok && i <= r->nsub; i++)
        if (got.sql_hash[i] != r->v.sql_hash[i]) {
            snprintf(swhy, sizeof swhy, "SQLite read other rows from %s",
                     i ? r->sub[i - 1] : "the live database");
            break;
        }
    if (verbose)
        printf("SQLite: %s\n", swhy[0] ? swhy : "as the reference");
    int detected = !store_ok || !sql_ok;
    /* the other copy's state is harmless only if it is the reference's data */
    int older_same = lw->have_older && lw->older.store_hash == r->v.store_hash &&
                     reads_as(r, &lw->older, 0, 1, &r->v);
    if (reads_as(r, &got, store_ok, sql_ok, &r->v))
        m->outcome = detected ? O_OPEN : !clean ? O_FSCK : O_HARMLESS;
    else if (older_same && m->off / COW_BLOCK_SIZE == lw->sb_at / COW_BLOCK_SIZE &&
             reads_as(r, &got, store_ok, sql_ok, &lw->older))
        m->outcome = detected ? O_OPEN : O_SAME;
    else if (lw->have_torn && in_last_write(lw, m->off) &&
             reads_as(r, &got, store_ok, sql_ok, &lw->torn))
        m->outcome = detected ? O_OPEN : O_TORN;
    else if (m->kind == K_FLIPFIX && clean && !detected &&
             (got.gen == r->v.gen ||
              (got.gen > r->v.gen && got.store_hash == r->v.store_hash &&
               reads_as(r, &got, 0, sql_ok, &r->v))))
        m->outcome = O_VALID;
    else
        m->outcome = O_WRONG;
}

/* ---------------------------------------------------------------------------
 * The mutation list
 */

static struct mut *muts; /* shared with the children */
static size_t nmuts, capmuts;

/* Region classes and how many bytes of each a base gives the sample. */
enum cls { C_SB, C_TREE, C_LOG, C_DATA, C_NCLASSES };
static unsigned sample[C_NCLASSES] = {90, 180, 90, 24};
static const unsigned data_blocks_full = 8; /* data blocks per base in --full */

static enum cls cls_of(int r)
{
    return r <= R_SB_OLD ? C_SB : r <= R_TREE_STALE ? C_TREE : r <= R_LOG_NEXT ? C_LOG : C_DATA;
}

static void add_byte(size_t bi, uint32_t off, uint64_t *seed)
{
    uint8_t v = bases[bi].img[off], r = regions[bi][off];
    for (int k = 0; k < K_NKINDS; k++) {
        if ((k == K_ZERO && v == 0) || (k == K_FF && v == 0xff) ||
            (k == K_FLIPFIX && cls_of(r) == C_DATA))
            continue;
        if (nmuts == capmuts) {
            size_t ncap = capmuts ? 2 * capmuts : 65536;
            struct mut *n = mmap(NULL, ncap * sizeof *n, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (n == MAP_FAILED)
                die("mmap");
            if (muts) {
                memcpy(n, muts, nmuts * sizeof *n);
                munmap(muts, capmuts * sizeof *n);
            }
            muts = n;
            capmuts = ncap;
        }
        struct mut *m = &muts[nmuts++];
        memset(m, 0, sizeof *m);
        m->off = off;
        m->base = (uint8_t)bi;
        m->kind = (uint8_t)k;
        m->bit = (uint8_t)(rnd(seed) % 8);
        m->region = r;
    }
}

/* Every target byte of base BI (full) or a sample of each class. */
static void add_targets(size_t bi, int full, uint64_t *seed, size_t counts[C_NCLASSES])
{
    const struct fz_base *b = &bases[bi];
    uint32_t *cand[C_NCLASSES];
    size_t ncand[C_NCLASSES] = {0};
    for (int c = 0; c < C_NCLASSES; c++) {
        cand[c] = malloc(b->len * sizeof(uint32_t));
        if (!cand[c])
            die("malloc");
    }
    /* data: the bytes of data_blocks_full data blocks spread over the
     * container, and of its first preallocated block */
    uint32_t *dblk = malloc((b->len / COW_BLOCK_SIZE + 1) * sizeof *dblk);
    size_t ndblk = 0, prealloc = SIZE_MAX;
    if (!dblk)
        die("malloc");
    for (size_t off = 0; off < b->len; off += COW_BLOCK_SIZE) {
        uint8_t r = regions[bi][off];
        if (r == R_DATA_LIVE)
            dblk[ndblk++] = (uint32_t)off;
        else if (r == R_DATA_PREALLOC && prealloc == SIZE_MAX)
            prealloc = off;
    }
    for (size_t off = 0; off < b->len; off++) {
        uint8_t r = regions[bi][off];
        if (r != 0xff && cls_of(r) != C_DATA)
            cand[cls_of(r)][ncand[cls_of(r)]++] = (uint32_t)off;
    }
    for (size_t i = 0; i <= data_blocks_full; i++) {
        size_t at = i < data_blocks_full ? (ndblk ? dblk[i * ndblk / data_blocks_full] : SIZE_MAX)
                                         : prealloc;
        if (at == SIZE_MAX || (i > 0 && i < data_blocks_full && ndblk &&
                               dblk[i * ndblk / data_blocks_full] ==
                                   dblk[(i - 1) * ndblk / data_blocks_full]))
            continue;
        for (size_t o = 0; o < COW_BLOCK_SIZE; o++)
            cand[C_DATA][ncand[C_DATA]++] = (uint32_t)(at + o);
    }
    free(dblk);
    for (int c = 0; c < C_NCLASSES; c++) {
        size_t take = full || ncand[c] < sample[c] ? ncand[c] : sample[c];
        for (size_t i = 0; i < take; i++) {
            /* a partial Fisher-Yates draw: distinct bytes */
            size_t j = full ? i : i + rnd(seed) % (ncand[c] - i);
            uint32_t t = cand[c][i];
            cand[c][i] = cand[c][j];
            cand[c][j] = t;
            add_byte(bi, cand[c][i], seed);
        }
        counts[c] = take;
        free(cand[c]);
    }
}

/* ---------------------------------------------------------------------------
 * Children
 */

static void open_memfd(void)
{
    if (memfd >= 0)
        close(memfd);
    memfd = memfd_create("cowsweep", MFD_CLOEXEC);
    if (memfd < 0)
        die("memfd_create");
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
}

static void run_range(size_t a, size_t b)
{
    open_memfd(); /* its own: the children run side by side */
    for (size_t i = a; i < b; i++) {
        muts[i].outcome = O_STARTED;
        alarm(60);
        check(&muts[i]);
    }
    alarm(0);
}

struct range {
    size_t a, b;
    pid_t pid;
};

static void repro(const struct mut *m, const char *what)
{
    printf("sweep: %s: base %s, byte %u (%s), %s%s: redo with build/sweep --only %s:%u:%s%s\n",
           what, bases[m->base].name, m->off, region_name[m->region], kind_name[m->kind],
           m->kind == K_FLIP || m->kind == K_FLIPFIX ? (const char *[]){
               " bit 0", " bit 1", " bit 2", " bit 3", " bit 4", " bit 5", " bit 6",
               " bit 7"}[m->bit] : "",
           bases[m->base].name, m->off, kind_name[m->kind],
           m->kind == K_FLIP || m->kind == K_FLIPFIX ? (const char *[]){
               ":0", ":1", ":2", ":3", ":4", ":5", ":6", ":7"}[m->bit] : "");
}

static void run_all(int jobs)
{
    enum { BATCH = 40 };
    struct range pend[4096], run[64];
    size_t npend = 0, next = 0;
    int nrun = 0;
    fflush(stdout);
    while (next < nmuts || npend > 0 || nrun > 0) {
        while (nrun < jobs && (npend > 0 || next < nmuts)) {
            struct range r;
            if (npend > 0) {
                r = pend[--npend];
            } else {
                r.a = next;
                r.b = next + BATCH < nmuts ? next + BATCH : nmuts;
                next = r.b;
            }
            r.pid = fork();
            if (r.pid < 0)
                die("fork");
            if (r.pid == 0) {
                fz_vfs_own_path(); /* not the other jobs' container file */
                run_range(r.a, r.b);
                fz_vfs_drop_path();
                fflush(stdout);
                _exit(0);
            }
            run[nrun++] = r;
        }
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            die("wait");
        int k = 0;
        while (k < nrun && run[k].pid != pid)
            k++;
        if (k == nrun)
            continue;
        struct range r = run[k];
        run[k] = run[--nrun];
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            continue;
        /* The child died: the mutation it had started crashed it. */
        size_t i = r.a;
        while (i < r.b && muts[i].outcome != O_STARTED)
            i++;
        if (i == r.b) {
            fprintf(stderr, "sweep: a child died (status %d) outside a mutation\n", status);
            exit(2);
        }
        muts[i].outcome = O_CRASH;
        repro(&muts[i], WIFSIGNALED(status) ? "crash (signal)" : "crash (sanitizer report)");
        if (i + 1 < r.b && npend < sizeof pend / sizeof *pend)
            pend[npend++] = (struct range){i + 1, r.b, 0};
    }
}

/* ---------------------------------------------------------------------------
 * Files that are not containers
 */

static uint8_t *read_path(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        die(p);
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n == cap && !(buf = realloc(buf, cap = cap ? 2 * cap : 65536)))
            die("realloc");
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

/* One file case: every way of opening PATH fails, and PATH is unchanged.
 * Returns 1 if it failed. */
static int file_case(const char *path, const char *what)
{
    size_t l0, l1;
    uint8_t *before = read_path(path, &l0);
    cow_store *st;
    int bad = 0;
    char line[1024];
    int rw = cow_store_open(path, 0, &st);
    if (rw == COW_OK)
        cow_store_close(st);
    snprintf(line, sizeof line, "store: %s", rw ? cow_store_last_error(NULL) : "OPENED");
    int ro = cow_store_open(path, COW_OPEN_READONLY, &st);
    if (ro == COW_OK)
        cow_store_close(st);
    sqlite3 *db = NULL;
    char *uri = sqlite3_mprintf("file:%s?vfs=cow", path);
    int src = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    if (src == SQLITE_OK)
        src = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    char sqlmsg[256];
    snprintf(sqlmsg, sizeof sqlmsg, "%s", src ? sqlite3_errmsg(db) : "OPENED");
    sqlite3_close_v2(db);
    struct cow_fsck_result res;
    int fk = cow_fsck(path, 0, NULL, &res);
    uint8_t *after = read_path(path, &l1);
    int same = l0 == l1 && memcmp(before, after, l0) == 0;
    bad = rw == COW_OK || ro == COW_OK || src == SQLITE_OK || fk == 0 || !same;
    printf("sweep: %-34s %s; sqlite: %s (%d); fsck: %d; %s%s\n", what, line, sqlmsg, src, fk,
           same ? "unchanged" : "CHANGED", bad ? "  FAILED" : "");
    free(before);
    free(after);
    return bad;
}

static void write_path(const char *p, const uint8_t *d, size_t n)
{
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f) != 0)
        die(p);
}

static int file_cases(void)
{
    char p[600], what[128];
    const char *tmp = getenv("TMPDIR");
    char tdir[512];
    snprintf(tdir, sizeof tdir, "%s/cowsweep-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tdir))
        die("mkdtemp");
    int bad = 0;
    snprintf(p, sizeof p, "%s/c.db", tdir);
    for (size_t bi = 0; bi < nbases; bi++) {
        const struct fz_base *b = &bases[bi];
        /* a container may be longer than it needs (format 3: the file is
         * cut after its last block only at close or after a balance); a
         * cut below what both superblock copies need is a truncation */
        size_t need = b->len;
        for (int c = 0; c < COW_SB_COPIES; c++) {
            size_t d = (size_t)get64(b->img + (size_t)c * COW_BLOCK_SIZE + SB_DEVICE_BYTES);
            if (d && d < need)
                need = d;
        }
        size_t cuts[] = {0, 4096, 5000, 8192, 12288, need / 2, need - 4096, need - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
            if (c == 0 && bi > 0)
                continue;
            write_path(p, b->img, cuts[c]);
            if (c == 0)
                snprintf(what, sizeof what, "zero-length file:");
            else
                snprintf(what, sizeof what, "%s cut to %zu bytes:", b->name, cuts[c]);
            bad += file_case(p, what);
        }
    }
    uint8_t *rb = malloc(1 << 20);
    uint64_t s = 0x5eed;
    for (size_t i = 0; i < (1 << 20); i++)
        rb[i] = (uint8_t)rnd(&s);
    write_path(p, rb, 1 << 20);
    bad += file_case(p, "1 MiB of random bytes:");
    memcpy(rb, bases[0].img, COW_BLOCK_SIZE); /* a superblock, then garbage */
    write_path(p, rb, 1 << 20);
    bad += file_case(p, "a superblock and random bytes:");
    free(rb);
    unlink(p);
    sqlite3 *db;
    if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix") ||
        sqlite3_exec(db,
                     "CREATE TABLE t(a, b); WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL "
                     "SELECT x+1 FROM n WHERE x<500) INSERT INTO t SELECT x, hex(x) FROM n;",
                     NULL, NULL, NULL)) {
        fprintf(stderr, "sweep: a plain SQLite database: %s\n", sqlite3_errmsg(db));
        exit(2);
    }
    sqlite3_close(db);
    bad += file_case(p, "a plain SQLite database:");
    unlink(p);
    rmdir(tdir);
    return bad;
}

/* ---------------------------------------------------------------------------
 * main
 */

static const char *save_path; /* --save: where only() writes the damaged copy */

static int only(const char *spec)
{
    char bname[64], kname[16];
    unsigned off, bit = 0;
    if (sscanf(spec, "%63[^:]:%u:%15[^:]:%u", bname, &off, kname, &bit) < 3) {
        fprintf(stderr, "sweep: --only BASE:OFFSET:KIND[:BIT]\n");
        return 2;
    }
    struct mut m = {.off = off, .bit = (uint8_t)(bit % 8)};
    size_t bi = 0;
    while (bi < nbases && strcmp(bases[bi].name, bname) != 0)
        bi++;
    int k = 0;
    while (k < K_NKINDS && strcmp(kind_name[k], kname) != 0)
        k++;
    if (bi == nbases || k == K_NKINDS || off >= bases[bi].len) {
        fprintf(stderr, "sweep: no such base, kind or offset: %s\n", spec);
        return 2;
    }
    m.base = (uint8_t)bi;
    m.kind = (uint8_t)k;
    m.region = regions[bi][off];
    verbose = 1;
    make_ref(bi);
    printf("base %s byte %u (%s): %s\n", bname, off,
           m.region < R_NREGIONS ? region_name[m.region] : "unused", kind_name[k]);
    check(&m);
    printf("outcome: %s\n", outcome_name[m.outcome]);
    if (save_path) {
        apply(&m);
        FILE *o = fopen(save_path, "wb");
        if (!o || fwrite(work, 1, work_len, o) != work_len || fclose(o) != 0)
            die(save_path);
        printf("the damaged copy is in %s\n", save_path);
    }
    return m.outcome == O_WRONG;
}

int main(int argc, char **argv)
{
    int full = 0, jobs = 2;
    const char *one = NULL;
    uint64_t seed = 12;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--full") == 0)
            full = 1;
        else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            double f = atof(argv[++i]);
            for (int c = 0; c < C_NCLASSES; c++)
                sample[c] = (unsigned)(sample[c] * f);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            one = argv[++i];
        else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc)
            save_path = argv[++i];
        else {
            fprintf(stderr, "usage: sweep [--full] [--jobs N] [--seed N] [--scale F] "
                            "[--only BASE:OFFSET:KIND[:BIT] [--save PATH]]\n");
            return 2;
        }
    }
    if (jobs < 1 || jobs > 64)
        jobs = 2;
    if (seed == 0)
        seed = 12;
    const uint64_t seed0 = seed;
    time_t t0 = time(NULL);
    setvbuf(stdout, NULL, _IOLBF, 0); /* nothing buffered is copied by fork */
    open_memfd();
    fz_make_bases(&bases, &nbases);
    for (size_t bi = 0; bi < nbases; bi++)
        regions[bi] = region_map(&bases[bi]);
    if (one)
        return only(one);

    for (size_t bi = 0; bi < nbases; bi++) {
        size_t counts[C_NCLASSES];
        make_ref(bi);
        size_t first = nmuts;
        add_targets(bi, full, &seed, counts);
        printf("sweep: base %-8s %zu bytes, %d subvolumes: %s bytes: superblock %zu, tree "
               "block %zu, log %zu, data %zu -> %zu mutations\n",
               bases[bi].name, bases[bi].len, refs[bi].nsub + 1, full ? "every" : "sampled",
               counts[C_SB], counts[C_TREE], counts[C_LOG], counts[C_DATA], nmuts - first);
    }
    printf("sweep: %zu mutations (flip a bit, zero, 0xff, flip a bit and fix the checksums), "
           "%s, seed %llu, %d jobs\n",
           nmuts, full ? "every target byte" : "a sample", (unsigned long long)seed0, jobs);
    run_all(jobs);

    /* Counts: per outcome, and per region for each outcome. */
    size_t tot[O_NOUTCOMES] = {0}, byreg[O_NOUTCOMES][R_NREGIONS];
    size_t fsck_missed = 0;
    memset(byreg, 0, sizeof byreg);
    for (size_t i = 0; i < nmuts; i++) {
        const struct mut *m = &muts[i];
        tot[m->outcome]++;
        if (m->region < R_NREGIONS)
            byreg[m->outcome][m->region]++;
        if (m->outcome == O_OPEN && m->fsck_clean) {
            fsck_missed++;
            repro(m, "the store or SQLite refused it, fsck found nothing");
        }
        if (m->outcome == O_FSCK)
            repro(m, "fsck found a problem, the store and SQLite read the reference");
        if (m->outcome == O_VALID)
            repro(m, "another valid container (checksums recomputed)");
        if (m->outcome == O_WRONG)
            repro(m, m->fsck_clean ? "silently wrong (fsck clean too)"
                                   : "silently wrong (fsck saw a problem)");
    }
    printf("\nsweep: region                  harmless same-state torn-last valid fsck-only"
           "    open  WRONG  CRASH\n");
    for (int r = 0; r < R_NREGIONS; r++)
        printf("sweep: %-22s %9zu %10zu %9zu %5zu %9zu %7zu %6zu %6zu\n", region_name[r],
               byreg[O_HARMLESS][r], byreg[O_SAME][r], byreg[O_TORN][r], byreg[O_VALID][r],
               byreg[O_FSCK][r], byreg[O_OPEN][r], byreg[O_WRONG][r], byreg[O_CRASH][r]);
    printf("sweep: %zu mutations:\n", nmuts);
    for (int o = O_HARMLESS; o < O_NOUTCOMES; o++)
        printf("sweep: %7zu %s%s\n", tot[o], outcome_name[o],
               o == O_OPEN ? (fsck_missed ? " (FSCK CLEAN ON SOME: see above)" : "") : "");
    printf("sweep: fsck clean on %zu detected by open; fsck found a problem on %zu that open "
           "and SQLite read as the reference\n",
           fsck_missed, tot[O_FSCK]);
    int fbad = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fflush(stdout);
        _exit(file_cases() ? 1 : 0);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        die("fork");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fbad = 1;
        printf("sweep: the files that are not containers: FAILED (status %d)\n", status);
    }
    printf("sweep: %ld s\n", (long)(time(NULL) - t0));
    /* open refusing what fsck calls clean is a disagreement (issue 12): a
     * user told "clean" by fsck cannot open the database */
    int bad = tot[O_WRONG] > 0 || tot[O_CRASH] > 0 || fsck_missed > 0 || fbad;
    printf("sweep: %s\n", bad ? "FAILED (silently wrong data, a crash, open refusing what fsck "
                                 "calls clean, or a file case)"
                               : "ok");
    return bad;
}
