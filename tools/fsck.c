/*
 * fsck.c - an independent checker and dumper for cowvfs containers.
 *
 * Reads the container with pread(2) and knows only store/format.h and
 * crc32c: nothing here calls the store, so the checker and the store are two
 * readings of one format that must agree.
 *
 * The check runs in five passes:
 *
 *   1. superblocks: both copies; the newest valid one is used (a torn
 *      newest one only if the other holds the commit it names).  Its log
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
 *      against the committed state.  Then both areas are searched for a
 *      whole record that proves a flushed commit or record lost (a
 *      problem: see docs/DESIGN.md, "Damage a crash cannot cause").
 *
 * All input is untrusted: every count is bounded by the block size, every
 * offset is checked before use, and arithmetic on disk values is done so
 * that it cannot overflow.  Memory grows with the number of distinct blocks
 * and extents referenced, which is bounded by the file size.
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* small containers                                                    */
/* ------------------------------------------------------------------ */

/* Grows *P (of *CAP elements of ESZ bytes) to hold at least NEED. */
int fsck_vec_reserve(void **p, size_t *cap, size_t need, size_t esz)
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


static size_t map_slot(const struct u64map *m, uint64_t k)
{
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17) & (m->cap - 1);
}

/* Sets *v and returns 1 if K is present, else returns 0. */
int fsck_map_get(const struct u64map *m, uint64_t k, uint32_t *v)
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
            fsck_map_put(&nm, m->keys[i], m->vals[i]); /* cannot fail: room */
    free(m->keys);
    free(m->vals);
    *m = nm;
    return 0;
}

/* Inserts or replaces K -> V.  Returns 0 or -ENOMEM. */
int fsck_map_put(struct u64map *m, uint64_t k, uint32_t v)
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

void fsck_map_free(struct u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* names                                                               */
/* ------------------------------------------------------------------ */

const char *const class_name[T_NCLASS] = {"root tree", "extent tree", "csum tree",
                                                 "subvolume tree"};
const uint64_t class_owner[T_NCLASS] = {COW_ROOT_TREE_OBJECTID,
                                               COW_EXTENT_TREE_OBJECTID,
                                               COW_CSUM_TREE_OBJECTID, COW_FS_TREE_OBJECTID};
/* Where the superblock holds their root refs. */
const unsigned sb_root_off[T_NSB] = {SB_ROOT_TREE, SB_EXTENT_TREE, SB_CSUM_TREE};


const char *fsck_type_name(unsigned t)
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
const char *fsck_key_str(const struct cow_key *k, char *buf, size_t len)
{
    const char *tn = fsck_type_name(k->type);
    if (tn)
        snprintf(buf, len, "(%" PRIu64 " %s %" PRIu64 ")", k->objectid, tn, k->offset);
    else
        snprintf(buf, len, "(%" PRIu64 " type%u %" PRIu64 ")", k->objectid, k->type,
                 k->offset);
    return buf;
}

/* a + b, saturating at UINT64_MAX (so that "end > limit" stays true). */
uint64_t fsck_range_end(uint64_t start, uint64_t len)
{
    return len > UINT64_MAX - start ? UINT64_MAX : start + len;
}

/* NAME (LEN bytes) for a message, non-printable bytes as \xNN; BUF >= 1024. */
const char *fsck_name_str(const uint8_t *name, unsigned len, char *buf, size_t size)
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
int fsck_utf8_valid(const uint8_t *p, size_t len)
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


/* Adds the name P (LEN bytes, 1..COW_NAME_MAX) of subvolume ID.  Returns 0
 * or -ENOMEM. */
int fsck_names_add(struct names *nm, uint64_t id, const uint8_t *p, unsigned len)
{
    if (nm->n >= NOIDX - 1 || fsck_vec_reserve((void **)&nm->v, &nm->cap, nm->n + 1, sizeof(*nm->v)) ||
        fsck_vec_reserve((void **)&nm->pool, &nm->cappool, nm->npool + len, 1))
        return -ENOMEM;
    nm->v[nm->n++] = (struct rname){id, nm->npool, len};
    memcpy(nm->pool + nm->npool, p, len);
    nm->npool += len;
    return 0;
}

const uint8_t *fsck_names_bytes(const struct names *nm, size_t i)
{
    return nm->pool + nm->v[i].off;
}

void fsck_names_free(struct names *nm)
{
    free(nm->v);
    free(nm->pool);
    memset(nm, 0, sizeof(*nm));
}

/* "snapshot", "branch", or NULL for other ROOT_ITEM flags. */
const char *fsck_root_kind(uint64_t flags)
{
    return flags == COW_ROOT_F_SNAPSHOT                            ? "snapshot"
           : flags == COW_ROOT_F_BRANCH                            ? "branch"
           : flags == (COW_ROOT_F_BRANCH | COW_ROOT_F_INCOMPLETE) ? "unfinished branch"
                                                                    : NULL;
}


/* The end (exclusive) of the blocks that an EXTENT_DATA item with XOFF and
 * NBYTES maps in its extent, as replay computes it; UINT64_MAX if that
 * overflows. */
uint64_t fsck_fe_block_end(uint64_t xoff, uint64_t nbytes)
{
    return fsck_range_end(xoff / BS, nbytes / BS);
}

/* Adds the blocks that an EXTENT_DATA item with XOFF and NBYTES maps to M;
 * blocks past the largest extent are left out (check_file_extent reports
 * such items). */
void fsck_bmap_add(uint64_t *m, uint64_t xoff, uint64_t nbytes)
{
    uint64_t e = fsck_fe_block_end(xoff, nbytes);
    if (e > COW_MAX_EXTENT_BLOCKS)
        e = COW_MAX_EXTENT_BLOCKS;
    for (uint64_t b = xoff / BS; b < e; b++)
        m[b / 64] |= 1ull << (b % 64);
}

int fsck_bmap_has(const uint64_t *m, uint32_t b)
{
    return b < COW_MAX_EXTENT_BLOCKS && (m[b / 64] >> (b % 64) & 1);
}

int fsck_all_zero(const uint8_t *p, size_t n)
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
int fsck_read_at(int fd, void *buf, size_t len, uint64_t off)
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

uint32_t fsck_block_csum(const uint8_t *b)
{
    return crc32c(0, b + 4, BS - 4);
}

/* Opens PATH read-only for checking; *fsize gets its size. Returns fd or -errno. */
int fsck_open_container(const char *path, uint64_t *fsize, int *locked, FILE *out)
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

__attribute__((format(printf, 2, 3))) void fsck_problem(struct fsck *f, const char *fmt,
                                                   ...)
{
    va_list ap;
    f->r->problems++;
    va_start(ap, fmt);
    vmsg(f, 0, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) void fsck_note(struct fsck *f, const char *fmt, ...)
{
    va_list ap;
    f->r->notes++;
    if (!(f->flags & COW_FSCK_NOTES))
        return;
    va_start(ap, fmt);
    vmsg(f, 1, fmt, ap);
    va_end(ap);
}

void fsck_set_fatal(struct fsck *f, int rc)
{
    if (!f->fatal)
        f->fatal = rc;
}

/* "extent tree block 123" / "subvolume 256 tree block 123" */
const char *fsck_blk_where(int cls, uint64_t tree_id, uint64_t bytenr, char *buf, size_t len)
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

/* Where copy SB's commit list starts: version 1 (format.h) had no
 * prev_generation or prev_log_records and listed from byte 168. */
size_t fsck_sb_commit_list(const uint8_t *sb)
{
    return get32(sb + SB_VERSION) == COW_FORMAT_VERSION_1 ? SB_COMMIT_LIST_V1 : SB_COMMIT_LIST;
}

/* How many entries copy SB's commit list can hold (its version's). */
uint32_t fsck_sb_commit_max(const uint8_t *sb)
{
    return get32(sb + SB_VERSION) == COW_FORMAT_VERSION_1 ? SB_COMMIT_MAX_V1 : SB_COMMIT_MAX;
}

/* Why copy BUF is not a usable superblock, or NULL if it is.  Format
 * versions 1 and 2 are read (a version-1 copy has no prev_generation). */
const char *fsck_sb_invalid(const uint8_t *buf, int rd, char *why, size_t len)
{
    if (rd == 1)
        return "past the end of the file";
    if (rd > 1) {
        snprintf(why, len, "read error: %s", strerror(rd));
        return why;
    }
    if (get64(buf + SB_MAGIC) != COW_SB_MAGIC)
        return fsck_all_zero(buf, BS) ? "all zero" : "bad magic";
    uint32_t c = fsck_block_csum(buf), s = get32(buf + SB_CSUM);
    if (c != s) {
        snprintf(why, len, "bad checksum (stored 0x%08x, computed 0x%08x)", s, c);
        return why;
    }
    uint32_t ver = get32(buf + SB_VERSION);
    if (ver != COW_FORMAT_VERSION && ver != COW_FORMAT_VERSION_1) {
        snprintf(why, len, "format version %u, expected %u or %u", ver, COW_FORMAT_VERSION_1,
                 COW_FORMAT_VERSION);
        return why;
    }
    if (get32(buf + SB_BLOCK_SIZE) != BS) {
        snprintf(why, len, "block size %u, expected %u", get32(buf + SB_BLOCK_SIZE), BS);
        return why;
    }
    /* as the store: a generation of 2^48 or more would make the next
     * commit's 48-bit root references wrong */
    uint64_t gen = get64(buf + SB_GENERATION);
    uint64_t prev = ver == COW_FORMAT_VERSION_1 ? 0 : get64(buf + SB_PREV_GENERATION);
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
    if (get32(buf + SB_COMMIT_NRANGES) > fsck_sb_commit_max(buf)) {
        snprintf(why, len, "commit list of %u entries (maximum %u)",
                 get32(buf + SB_COMMIT_NRANGES), fsck_sb_commit_max(buf));
        return why;
    }
    uint64_t bg = get64(buf + SB_BG_SIZE), total = get64(buf + SB_TOTAL_BYTES);
    if (bg < 64 * BS || bg % BS || bg > (1ull << 34) || total == 0 || total % bg) {
        snprintf(why, len, "block group size %" PRIu64 " or total_bytes %" PRIu64
                           " out of range", bg, total);
        return why;
    }
    /* as the store (sb_invalid): bytes the format leaves zero, in either
     * copy, so that a whole copy with one set is reported as the store
     * refuses it (a copy not in use was not checked before) */
    size_t end = fsck_sb_commit_list(buf); /* by version */
    if (get32(buf + SB_FLAGS) & COW_SB_ONE_FLUSH)
        end += (size_t)get32(buf + SB_COMMIT_NRANGES) * SB_COMMIT_ENTRY;
    else if (!fsck_all_zero(buf + SB_COMMIT_NRANGES, SB_LOG_ID - SB_COMMIT_NRANGES))
        return "a commit list without the one-flush flag";
    if (!fsck_all_zero(buf + SB_LOG_BLOCKS + 4, 4) ||
        (get32(buf + SB_VERSION) != COW_FORMAT_VERSION_1 &&
         !fsck_all_zero(buf + SB_PREV_LOG_RECORDS + 4, 4)) ||
        !fsck_all_zero(buf + end, BS - end))
        return "reserved or unused bytes (124..127, 180..183 or past the commit list) are "
               "not zero";
    return NULL;
}

/*
 * A one-flush superblock (COW_SB_ONE_FLUSH) is only valid if every block of
 * its commit list is on disk: recompute the crc32c of each listed block and
 * the crc over those.  Returns NULL if intact (or not a one-flush commit),
 * else why not.
 */
const char *fsck_sb_commit_torn(int fd, uint64_t fsize, const uint8_t *sb, char *why,
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
    if (n > fsck_sb_commit_max(sb)) {
        snprintf(why, len, "commit list of %u entries (maximum %u)", n, fsck_sb_commit_max(sb));
        return why;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = sb + fsck_sb_commit_list(sb) + (size_t)i * SB_COMMIT_ENTRY;
        uint64_t at = get64(e), nb = get32(e + 8);
        total += nb;
        if (at % BS || nb == 0 || total > COW_ONE_FLUSH_MAX_BLOCKS || at > fsize ||
            nb * BS > fsize - at) {
            snprintf(why, len, "commit list entry %u [%" PRIu64 ", %" PRIu64 " blocks) is invalid",
                     i, at, nb);
            return why;
        }
        for (uint64_t b = 0; b < nb; b++) {
            if (fsck_read_at(fd, blk, BS, at + b * BS) != 0) {
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
        fsck_problem(f, "superblock: %s root at %" PRIu64 ", not a block address", class_name[cls],
                rr->bytenr);
        ok = 0;
    }
    if (rr->level >= COW_MAX_LEVEL) {
        fsck_problem(f, "superblock: %s root level %u (maximum %u)", class_name[cls], rr->level,
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
        fsck_problem(f, "superblock: bytes 124..127 (after the log area length) are not zero");
    if (other && memcmp(other + SB_LOG_AREA0, sb + SB_LOG_AREA0, SB_UUID - SB_LOG_AREA0))
        fsck_note(f, "superblock copy %d has other log areas (%" PRIu64 ", %" PRIu64 ", %u blocks)",
             o, get64(other + SB_LOG_AREA0), get64(other + SB_LOG_AREA1),
             get32(other + SB_LOG_BLOCKS));
    uint64_t a0 = f->log_area[0], a1 = f->log_area[1];
    uint32_t nb = f->log_blocks;
    if (!a0 && !a1 && !nb) {
        fsck_note(f, "superblock: the container has no log areas");
        return;
    }
    if (!a0 || !a1 || !nb) {
        fsck_problem(f, "superblock: log areas at %" PRIu64 " and %" PRIu64 " of %u blocks: "
                   "either all three are 0 (no log areas) or none is",
                a0, a1, nb);
        f->log_bad = 1;
        return;
    }
    int ok = 1;
    if (f->bg_size && nb > f->bg_size / BS) {
        fsck_problem(f, "superblock: log areas of %u blocks, longer than a block group (%" PRIu64
                   " blocks)",
                nb, f->bg_size / BS);
        ok = 0;
    }
    for (int k = 0; k < COW_SB_COPIES; k++)
        if (f->log_area[k] % BS) {
            fsck_problem(f, "superblock: log area %d at %" PRIu64 ", not a block address", k,
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
        int rd = fsck_read_at(f->fd, buf[i], BS, (uint64_t)i * BS);
        why[i] = fsck_sb_invalid(buf[i], rd, whybuf[i], sizeof(whybuf[i]));
        valid[i] = why[i] == NULL;
        /* as the store: a whole copy (crc matches) with a field out of
         * range is damage, and the store refuses to open */
        if (!valid[i] && !rd && get64(buf[i] + SB_MAGIC) == COW_SB_MAGIC &&
            fsck_block_csum(buf[i]) == get32(buf[i] + SB_CSUM))
            fsck_problem(f, "superblock copy %d is whole (its checksum matches) but invalid: %s; "
                       "the store refuses to open",
                    i, why[i]);
    }
    /* The newest copy may be a torn one-flush commit: then it does not
     * count, and the previous commit (the other copy) is the container. */
    int newest = valid[0] && valid[1]
                     ? (get64(buf[1] + SB_GENERATION) > get64(buf[0] + SB_GENERATION) ? 1 : 0)
                     : (valid[0] ? 0 : 1);
    if (valid[newest]) {
        const char *torn = fsck_sb_commit_torn(f->fd, f->fsize, buf[newest], whybuf[newest],
                                          sizeof(whybuf[newest]));
        if (torn) {
            /* as the store: the other copy must hold the commit the torn
             * one was written after, whole, with at least as many log
             * records as the torn one says were flushed (check_log); a
             * version-1 torn copy names no commit: the other must only be
             * older */
            valid[newest] = 0;
            why[newest] = torn;
            int o2 = 1 - newest;
            int v1 = get32(buf[newest] + SB_VERSION) == COW_FORMAT_VERSION_1;
            uint64_t tgen = get64(buf[newest] + SB_GENERATION);
            uint64_t want = v1 ? 0 : get64(buf[newest] + SB_PREV_GENERATION);
            uint64_t ogen = get64(buf[o2] + SB_GENERATION);
            snprintf(f->sb_rejected, sizeof(f->sb_rejected),
                     "superblock copy %d (generation %" PRIu64 "): %s", newest, tgen, torn);
            if (valid[o2] && !v1 && ogen != want) {
                fsck_problem(f, "superblock copy %d (generation %" PRIu64 ") is torn, and copy %d "
                           "holds generation %" PRIu64 ", not generation %" PRIu64
                           " it was written after",
                        newest, tgen, o2, ogen, want);
                valid[o2] = 0;
                why[o2] = "not the commit the torn copy was written after";
            } else if (valid[o2] && ogen >= tgen) {
                fsck_problem(f, "superblock copy %d (generation %" PRIu64 ") is torn, and copy %d "
                           "holds generation %" PRIu64 ", not an older one",
                        newest, tgen, o2, ogen);
                valid[o2] = 0;
                why[o2] = "not older than the torn copy";
            } else if (valid[o2]) {
                const char *t2 = fsck_sb_commit_torn(f->fd, f->fsize, buf[o2], whybuf[o2],
                                                sizeof(whybuf[o2]));
                if (t2) {
                    fsck_problem(f, "superblock copy %d: %s, and copy %d: %s; generation %" PRIu64
                               " was flushed, so that is damage",
                            newest, torn, o2, t2, ogen);
                    valid[o2] = 0;
                    why[o2] = t2;
                }
            } else if (want) {
                fsck_problem(f, "superblock copy %d (generation %" PRIu64 ") is torn, and copy %d, "
                           "which must hold generation %" PRIu64 ", is damaged (%s)",
                        newest, tgen, o2, want, why[o2]);
            }
            f->replay_min = v1 ? 0 : get32(buf[newest] + SB_PREV_LOG_RECORDS);
            f->replay_min_gen = tgen;
        } else if (!valid[1 - newest] && get64(buf[1 - newest] + SB_MAGIC) == COW_SB_MAGIC) {
            snprintf(f->sb_rejected, sizeof(f->sb_rejected), "superblock copy %d: %s",
                     1 - newest, why[1 - newest]);
        }
    }
    if (!valid[0] && !valid[1]) {
        if (f->fsize == 0)
            fsck_problem(f, "no valid superblock: the file is empty");
        else
            fsck_problem(f, "no valid superblock (copy 0: %s; copy 1: %s): not a cowvfs container",
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
        fsck_note(f, "superblock copy %d is not valid (%s); copy %d (generation %" PRIu64
                ") is used; legal after a crash while writing a superblock",
             o, why[o], c, f->gen);
    } else {
        uint64_t og = get64(buf[o] + SB_GENERATION);
        if (og == f->gen)
            fsck_problem(f, "both superblock copies have generation %" PRIu64, og);
        else if (get32(sb + SB_VERSION) != COW_FORMAT_VERSION_1 && /* v1 names none */
                 og != get64(sb + SB_PREV_GENERATION)) /* as the store (txn_load) */
            fsck_problem(f, "superblock copy %d (generation %" PRIu64 ") was written after "
                       "generation %" PRIu64 ", but copy %d holds generation %" PRIu64
                       ": one of them is damaged; the store refuses to open",
                    c, f->gen, get64(sb + SB_PREV_GENERATION), o, og);
        else if (f->gen - og != 1)
            fsck_note(f, "superblock copy %d has generation %" PRIu64 ", copy %d has %" PRIu64, o, og,
                 c, f->gen);
        if (memcmp(buf[o] + SB_UUID, sb + SB_UUID, 16) != 0)
            fsck_problem(f, "superblock copies have different container uuids");
    }

    uint32_t flags = get32(sb + SB_FLAGS);
    if (flags & ~COW_SB_ONE_FLUSH)
        fsck_problem(f, "superblock: flags 0x%x, only 0x%x (one flush) is defined", flags,
                COW_SB_ONE_FLUSH);
    int v1 = get32(sb + SB_VERSION) == COW_FORMAT_VERSION_1;
    f->r->format_version = get32(sb + SB_VERSION);
    if (v1)
        fsck_note(f, "superblock copy %d is format version 1 (a writable open upgrades it)",
                  c);
    if (valid[o] && get32(buf[o] + SB_VERSION) != get32(sb + SB_VERSION))
        fsck_note(f, "superblock copy %d is format version %u, copy %d version %u", o,
                  get32(buf[o] + SB_VERSION), c, get32(sb + SB_VERSION));
    size_t sb_end = fsck_sb_commit_list(sb);
    if (flags & COW_SB_ONE_FLUSH)
        sb_end += (size_t)get32(sb + SB_COMMIT_NRANGES) * SB_COMMIT_ENTRY;
    else if (!fsck_all_zero(sb + SB_COMMIT_NRANGES, SB_LOG_ID - SB_COMMIT_NRANGES))
        fsck_problem(f, "superblock: a commit list without the one-flush flag");
    f->bg_size = get64(sb + SB_BG_SIZE);
    f->total = get64(sb + SB_TOTAL_BYTES);
    f->bytes_used = get64(sb + SB_BYTES_USED);
    f->r->total_bytes = f->total;
    if (f->bg_size == 0 || f->bg_size % BS || f->bg_size < 2 * BS) {
        fsck_problem(f, "superblock: block group size %" PRIu64 " is not a multiple of 4096 of at least 8192",
                f->bg_size);
        f->bg_size = 0; /* no block group checks */
    }
    if (f->total == 0 || (f->bg_size && f->total % f->bg_size))
        fsck_problem(f, "superblock: total_bytes %" PRIu64 " is not a positive multiple of the block group size %" PRIu64,
                f->total, f->bg_size);
    if (f->bytes_used > f->total)
        fsck_problem(f, "superblock: bytes_used %" PRIu64 " > total_bytes %" PRIu64, f->bytes_used,
                f->total);
    if (f->total > f->fsize)
        fsck_problem(f, "container file is truncated: %" PRIu64 " bytes, total_bytes is %" PRIu64,
                f->fsize, f->total);
    else if (f->total != f->fsize)
        fsck_note(f, "container file is %" PRIu64 " bytes, total_bytes is %" PRIu64, f->fsize,
             f->total);
    if (!v1 && get32(sb + SB_PREV_LOG_RECORDS + 4))
        fsck_problem(f, "superblock: bytes 180..183 (after prev_log_records) are not zero");
    if (sb_end < BS && !fsck_all_zero(sb + sb_end, BS - sb_end))
        fsck_problem(f, "superblock: bytes %zu..4095 are not zero", sb_end);
    for (int t = 0; t < T_NSB; t++) {
        rootref_get(f, sb, t, sb_root_off[t]);
        if (f->rr[t].valid && f->rr[t].gen > f->gen)
            fsck_problem(f, "superblock: %s root generation %" PRIu64 " > superblock generation %" PRIu64,
                    class_name[t], f->rr[t].gen, f->gen);
    }
    check_log_areas(f, sb, valid[o] ? buf[o] : NULL, o);
    return 0;
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
        uint32_t r = fsck_walk_tree(f, t, class_owner[t], rr->bytenr, rr->gen, rr->level, from);
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
    f.fd = fsck_open_container(path, &f.fsize, &locked, out);
    if (f.fd < 0)
        return f.fd;
    res->container_bytes = f.fsize;
    if (!locked)
        fsck_note(&f, "%s is open in a process (locked); what it is writing may look inconsistent",
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
    fsck_names_free(&f.names);
    fsck_map_free(&f.svmap);
    fsck_map_free(&f.blkmap);
    fsck_map_free(&f.dxmap);
    fsck_map_free(&f.logx);
    fsck_map_free(&f.live_inodes);
    free(f.lf);
    free(f.lx);
    close(f.fd); /* drops the flock */
    return rc;
}
