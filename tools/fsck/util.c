/*
 * util.c - what every pass of the checker uses (see fsck.c): small
 * containers (a growable array, a u64 hash map), names of types, keys and
 * subvolumes, reading the container, and the problem and note messages.
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
                                          "remap tree", "subvolume tree"};
const uint64_t class_owner[T_NCLASS] = {COW_ROOT_TREE_OBJECTID, COW_EXTENT_TREE_OBJECTID,
                                        COW_CSUM_TREE_OBJECTID, COW_REMAP_TREE_OBJECTID,
                                        COW_FS_TREE_OBJECTID};
/* Where the superblock holds their root refs (the remap tree's: version 3). */
const unsigned sb_root_off[T_NSB] = {SB_ROOT_TREE, SB_EXTENT_TREE, SB_CSUM_TREE,
                                     SB_REMAP_TREE};


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
    case COW_REMAP_ITEM: return "REMAP_ITEM";
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
 * Reads LEN bytes at OFF of SRC.  Returns 0, 1 for a short read (past the
 * end of the container, SRC->size; the rest of BUF is zeroed), or a
 * positive errno for a failed read (SRC->read's).  SRC->read sees only the
 * part inside the container.
 */
int fsck_read_at(const struct cow_fsck_src *src, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    size_t in = 0; /* bytes of [OFF, OFF + LEN) before the end */
    if (off < src->size)
        in = src->size - off < len ? (size_t)(src->size - off) : len;
    if (in) {
        int rd = src->read(src->arg, p, in, off);
        if (rd)
            return rd > 0 ? rd : EIO;
    }
    if (in == len)
        return 0;
    memset(p + in, 0, len - in);
    return 1;
}

/* struct fsck_file's source: pread(2) of its descriptor.  Retries EINTR
 * and partial reads; a file that ends early (it shrank since it was
 * opened) is EIO. */
static int file_read(void *arg, void *buf, size_t len, uint64_t off)
{
    const struct fsck_file *file = arg;
    uint8_t *p = buf;
    size_t done = 0;
    if (off > (uint64_t)INT64_MAX - len)
        return EINVAL;
    while (done < len) {
        ssize_t n = pread(file->fd, p + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (n == 0)
            return EIO;
        done += (size_t)n;
    }
    return 0;
}

uint32_t fsck_block_csum(const uint8_t *b)
{
    return crc32c(0, b + 4, BS - 4);
}

/*
 * Opens the container file PATH read-only for checking into FILE: its
 * descriptor, a shared flock(2) on it if no one holds an exclusive one
 * (FILE->locked), and FILE->src reading it (size: the file's, at open;
 * name: PATH, which must outlive FILE).  Returns 0, or a negative errno
 * (open(2)'s, fstat(2)'s, -EISDIR: not a regular file) after writing one
 * line saying why to OUT (if not NULL).  fsck_close_container() closes it.
 */
int fsck_open_container(const char *path, struct fsck_file *file, FILE *out)
{
    memset(file, 0, sizeof(*file));
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
    file->fd = fd;
    file->locked = flock(fd, LOCK_SH | LOCK_NB) == 0;
    file->src.read = file_read;
    file->src.readv = NULL; /* pread after pread: the page cache reads ahead */
    file->src.size = (uint64_t)st.st_size;
    file->src.arg = file;
    file->src.name = path;
    return 0;
}

/* Closes FILE (fsck_open_container()'s), which drops its flock. */
void fsck_close_container(struct fsck_file *file)
{
    close(file->fd);
    file->fd = -1;
}

/* 0 if SRC can be read (not NULL, with a read function and a name), else
 * -EINVAL after writing one line saying why to OUT (if not NULL). */
int fsck_src_valid(const struct cow_fsck_src *src, FILE *out)
{
    if (src && src->read && src->name)
        return 0;
    if (out)
        fprintf(out, "fsck: a container source without %s\n",
                !src ? "anything" : !src->read ? "a read function" : "a name");
    return -EINVAL;
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
