/*
 * log.c - pass 5 of the checker: the log, read as replay reads it,
 * and the proofs of lost commits and records (see fsck.c).
 */
#include "fsck_int.h"

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


/* Reads item I's header at *POS of record R (LEN bytes); 0 if it does not fit. */
int fsck_log_item(const uint8_t *r, size_t len, size_t *pos, struct cow_key *k,
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
    if (fsck_phys_end(s->remap, bytenr, (uint64_t)n * BS) > s->src->size)
        return log_end(s, "data of extent %" PRIu64 " lies past the end of the file", bytenr);
    for (unsigned i = 0; reg && i < n; i++) {
        if (!fsck_bmap_has(reg, i))
            continue;
        int rd = fsck_read_logical(s->src, s->remap, b, BS, bytenr + (uint64_t)i * BS);
        if (rd) {
            s->ioerr = rd > 1 && rd != FSCK_READ_DROPPED;
            return log_end(s, "cannot read data of extent %" PRIu64 ": %s", bytenr,
                           rd == 1                   ? "past end of file"
                           : rd == FSCK_READ_DROPPED ? "relocation dropped it"
                                                     : strerror(rd));
        }
        if (crc32c(0, b, BS) != get32(p + 4 * i))
            return log_end(s, "data of extent %" PRIu64 " does not match (block %u of %u)",
                           bytenr, i, n);
    }
    return 1;
}

/* Why the fields of the EXTENT_DATA item at P (key K) are out of range, or
 * NULL: the item-local rules of store/validate.c check_file_extent (fsck's
 * own copy; check_log_record reports the same rules as problems). */
static const char *log_extent_invalid(const struct cow_key *k, const uint8_t *p)
{
    uint64_t disk = get64(p + FE_DISK_BYTENR), dlen = get64(p + FE_DISK_NUM_BYTES);
    uint64_t xoff = get64(p + FE_EXTENT_OFFSET), nbytes = get64(p + FE_NUM_BYTES);
    if (k->offset % BS)
        return "file offset not a multiple of 4096";
    if (disk == 0 || disk % BS)
        return "disk_bytenr not a block address";
    if (dlen == 0 || dlen % BS || dlen > MAX_EXTENT_BYTES)
        return "disk_num_bytes not a multiple of 4096 up to the extent limit";
    if (nbytes == 0 || nbytes % BS)
        return "num_bytes not a positive multiple of 4096";
    if (xoff % BS)
        return "extent_offset not a multiple of 4096";
    if (fsck_range_end(xoff, nbytes) > dlen)
        return "extent_offset + num_bytes exceeds disk_num_bytes";
    if (p[FE_TYPE] != COW_FE_REG && p[FE_TYPE] != COW_FE_PREALLOC &&
        p[FE_TYPE] != COW_FE_NODATASUM)
        return "extent type neither REG, PREALLOC nor NODATASUM";
    if (fsck_range_end(k->offset, nbytes) > MAX_FILE_BYTES)
        return "file range ends past 2^62";
    return NULL;
}

static int lreg_cmp(const void *a, const void *b)
{
    const struct lreg *x = a, *y = b;
    return x->disk < y->disk ? -1 : x->disk > y->disk;
}

/*
 * Gathers in s->reg the blocks that the REG EXTENT_DATA items (and the
 * NODATASUM ones of young extents, s->known) of the record
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
        if (!fsck_log_item(s->rec, len, &pos, &k, &p, &size))
            break; /* cannot happen: the caller checked that they fit */
        if (k.type != COW_EXTENT_DATA || size != FE_ITEM_SIZE)
            continue;
        if (p[FE_TYPE] != COW_FE_REG &&
            !(p[FE_TYPE] == COW_FE_NODATASUM && s->known &&
              !s->known(s->known_ctx, get64(p + FE_DISK_BYTENR))))
            continue;
        if (fsck_vec_reserve((void **)&s->reg, &s->capreg, s->nreg + 1, sizeof(*s->reg)))
            return -ENOMEM;
        struct lreg *g = &s->reg[s->nreg++];
        memset(g, 0, sizeof(*g));
        g->disk = get64(p + FE_DISK_BYTENR);
        g->end = fsck_fe_block_end(get64(p + FE_EXTENT_OFFSET), get64(p + FE_NUM_BYTES));
        fsck_bmap_add(g->map, get64(p + FE_EXTENT_OFFSET), get64(p + FE_NUM_BYTES));
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
int fsck_log_next(struct logscan *s)
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
    int rd = fsck_read_at(s->src, s->rec, BS, at);
    if (rd) {
        s->odd = s->ioerr = rd > 1;
        return log_end(s, "cannot read: %s", rd == 1 ? "past end of file" : strerror(rd));
    }
    const uint8_t *r = s->rec;
    if (get32(r + LOG_MAGIC) != COW_LOG_MAGIC)
        return log_end(s, fsck_all_zero(r, BS) ? "empty (zero block)" : "bad magic");
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
    if (nb > 1 && (rd = fsck_read_at(s->src, s->rec + BS, len - BS, at + BS)) != 0) {
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
        if (!fsck_log_item(r, len, &pos, &k, &p, &size))
            return log_end(s, "item %u of %u runs past the end of the record", i, ni);
    pos = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < ni; i++) {
        fsck_log_item(r, len, &pos, &k, &p, &size);
        if (k.type == COW_EXTENT_CSUM && (size == 0 || size % 4 ||
                                          size > COW_MAX_EXTENT_BLOCKS * 4))
            return log_end(s, "item %u: EXTENT_CSUM of %u bytes, not 1..%u crcs", i, size,
                           COW_MAX_EXTENT_BLOCKS);
    }
    /* as replay's parse (store/validate.c check_file_extent), before the
     * data: an extent item whose fields are out of range is damage, even
     * if it would also fail the data check below (found by the sweep) */
    pos = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < ni; i++) {
        fsck_log_item(r, len, &pos, &k, &p, &size);
        if (k.type != COW_EXTENT_DATA || size != FE_ITEM_SIZE)
            continue;
        const char *why = log_extent_invalid(&k, p);
        if (why)
            return log_end(s, "item %u: EXTENT_DATA at %" PRIu64 ": %s", i, k.offset, why);
    }
    s->broken = 0; /* from here as replay: the data not matching ends the log */
    if (log_gather_reg(s, len, ni))
        return -ENOMEM;
    pos = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < ni; i++) {
        fsck_log_item(r, len, &pos, &k, &p, &size);
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

/* 1 if the commit holds data extent DISK (its EXTENT_ITEM): logscan.known
 * for the checker's own scan. */
static int extent_known(void *ctx, uint64_t disk)
{
    struct dext *d = fsck_dext_get(ctx, disk, 0);
    return d && d->has_item;
}

void fsck_log_scan_init(struct logscan *s, const struct cow_fsck_src *src, uint64_t area,
                        uint32_t nblocks, uint64_t log_id, uint64_t gen)
{
    memset(s, 0, sizeof(*s));
    s->src = src;
    s->area = area;
    s->nblocks = nblocks;
    s->log_id = log_id;
    s->gen = gen;
}

void fsck_log_scan_free(struct logscan *s)
{
    free(s->rec);
    free(s->reg);
}

/* Moves past the valid record just read. */
void fsck_log_advance(struct logscan *s)
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
    if (lo == 0 || fsck_range_end(f->bg[lo - 1].start, f->bg[lo - 1].len) <= addr)
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
    uint64_t len = (uint64_t)blocks * BS, end = fsck_range_end(bytenr, len);
    struct dext *d = fsck_dext_get(f, bytenr, 0);
    if (d && d->has_item && d->item_len == len) {
        uint32_t bad = 0, first = 0;
        for (uint32_t b = 0; d->has_csum && d->ncsum == blocks && b < blocks; b++)
            if (fsck_bmap_has(d->reg, b) && get32(crcs + 4 * b) != f->pool[d->csum_off + b] &&
                bad++ == 0)
                first = b;
        if (bad)
            fsck_problem(f, "%s: EXTENT_CSUM of committed data extent %" PRIu64 " changes the crcs of %u "
                       "block%s that regular file extents of the commit map, first block %" PRIu64
                       " (0x%08x, the csum tree has 0x%08x)",
                    where, bytenr, bad, bad == 1 ? "" : "s", bytenr + (uint64_t)first * BS,
                    get32(crcs + 4 * first), f->pool[d->csum_off + first]);
        return; /* committed */
    }
    if (fsck_map_put(&f->logx, bytenr, blocks)) {
        fsck_set_fatal(f, -ENOMEM);
        return;
    }
    if (!f->space_ok)
        return;
    if (end > f->total) {
        fsck_problem(f, "%s: logged data extent %" PRIu64 " (%u block%s) ends beyond total_bytes %" PRIu64,
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
    if (lo && fsck_range_end(f->sp[lo - 1].start, f->sp[lo - 1].len) > bytenr)
        fsck_problem(f, "%s: logged data extent %" PRIu64 " (%u block%s) overlaps %s, which the commit uses",
                where, bytenr, blocks, blocks == 1 ? "" : "s",
                fsck_span_str(&f->sp[lo - 1], a, sizeof(a)));
    /* new blocks are stored at their own address: never where a remap
     * run of the commit put blocks */
    const struct remap *t = fsck_remap_target_in(f, bytenr, len);
    if (t)
        fsck_problem(f, "%s: logged data extent %" PRIu64 " (%u block%s) is stored where "
                        "REMAP_ITEM (%" PRIu64 " REMAP_ITEM %" PRIu64 ") put blocks of the commit "
                        "([%" PRIu64 ", %" PRIu64 "))",
                     where, bytenr, blocks, blocks == 1 ? "" : "s", t->logical, t->len,
                     t->physical, fsck_range_end(t->physical, t->len));
    for (ptrdiff_t g = bg_find(f, bytenr); g >= 0 && (size_t)g < f->nbg && f->bg[g].start < end;
         g++) {
        /* an empty group may have been retyped at run time (the store's
         * retype_empty) without a commit: replay makes it a data group */
        if (!(f->bg[g].flags & COW_BG_DATA) && f->bg[g].used != 0) {
            fsck_problem(f, "%s: logged data extent %" PRIu64 " (%u block%s) lies in METADATA block group %" PRIu64,
                    where, bytenr, blocks, blocks == 1 ? "" : "s", f->bg[g].start);
            break;
        }
    }
}

/*
 * The files the log changes, changed as replay changes them (store/replay.c
 * rec_apply: a LOG_RANGE drops the mapping of its range, extent_map.c
 * em_drop_range, an EXTENT_DATA item adds its extent, em_insert),
 * from the committed state of subvolume 256 (pass 4), record after record:
 * so that the block count replay reaches can be compared with the one each
 * logged INODE_ITEM carries, as replay compares them.
 */
struct rfile {
    uint64_t nblocks;
    struct fspan *x; /* in file order */
    size_t n, cap;
    int reported; /* a count differed: replay stops there, so do we */
};

struct rsim {
    struct u64map map; /* inode -> index in v */
    struct rfile *v;
    size_t n, cap;
};

/* File INO of the simulation, made from its committed state the first time;
 * NULL if the live subvolume was not read or has no such inode, or on
 * ENOMEM (f->fatal). */
static struct rfile *rsim_get(struct fsck *f, struct rsim *rs, uint64_t ino)
{
    uint32_t i, j;
    if (!f->have_live_inodes || !fsck_map_get(&f->live_inodes, ino, &i) || i >= f->nlf)
        return NULL;
    if (fsck_map_get(&rs->map, ino, &j))
        return &rs->v[j];
    if (rs->n >= NOIDX - 1 || fsck_vec_reserve((void **)&rs->v, &rs->cap, rs->n + 1, sizeof(*rs->v)))
        goto nomem;
    const struct lfile *lf = &f->lf[i];
    struct rfile *r = &rs->v[rs->n];
    memset(r, 0, sizeof(*r));
    r->nblocks = lf->nblocks;
    if (lf->n) {
        if (fsck_vec_reserve((void **)&r->x, &r->cap, lf->n, sizeof(*r->x)))
            goto nomem;
        memcpy(r->x, f->lx + lf->first, lf->n * sizeof(*r->x));
        r->n = lf->n;
    }
    if (fsck_map_put(&rs->map, ino, (uint32_t)rs->n)) {
        free(r->x);
        goto nomem;
    }
    rs->n++;
    return r;
nomem:
    fsck_set_fatal(f, -ENOMEM);
    return NULL;
}

/* Drops [START, END) from R's mapping: spans inside go, spans crossing an
 * edge are cut, the blocks dropped leave the count. */
static void rsim_drop(struct fsck *f, struct rfile *r, uint64_t start, uint64_t end)
{
    /* a span over the whole range splits in two: one more at most */
    if (fsck_vec_reserve((void **)&r->x, &r->cap, r->n + 1, sizeof(*r->x))) {
        fsck_set_fatal(f, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct fspan x = r->x[i];
        if (x.end <= start || x.start >= end)
            continue;
        uint64_t c0 = x.start > start ? x.start : start, c1 = x.end < end ? x.end : end;
        r->nblocks -= (c1 - c0) / BS;
        if (x.start < start && x.end > end) {
            memmove(r->x + i + 2, r->x + i + 1, (r->n - i - 1) * sizeof(*r->x));
            r->x[i].end = start;
            r->x[i + 1] = (struct fspan){end, x.end};
            r->n++;
            return;
        }
        if (x.start < start) {
            r->x[i].end = start;
        } else if (x.end > end) {
            r->x[i].start = end;
        } else {
            memmove(r->x + i, r->x + i + 1, (r->n - i - 1) * sizeof(*r->x));
            r->n--;
            i--;
        }
    }
}

/* Adds the extent [START, START + NBYTES) to R's mapping. */
static void rsim_add(struct fsck *f, struct rfile *r, uint64_t start, uint64_t nbytes)
{
    if (fsck_vec_reserve((void **)&r->x, &r->cap, r->n + 1, sizeof(*r->x))) {
        fsck_set_fatal(f, -ENOMEM);
        return;
    }
    size_t i = r->n;
    while (i > 0 && r->x[i - 1].start > start)
        i--;
    memmove(r->x + i + 1, r->x + i, (r->n - i) * sizeof(*r->x));
    r->x[i] = (struct fspan){start, fsck_range_end(start, nbytes)};
    r->n++;
    r->nblocks += nbytes / BS;
}

static void rsim_free(struct rsim *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->v[i].x);
    free(rs->v);
    fsck_map_free(&rs->map);
}

/* A LOG_RANGE of a record, until its inode's INODE_ITEM. */
struct lrange {
    uint64_t ino, start, end;
    int open;
};

/* Checks the items of the valid record just read (format, and against the
 * committed state when that is known). */
static void check_log_record(struct fsck *f, const struct logscan *s, struct rsim *rs)
{
    const uint8_t *r = s->rec;
    size_t len = (size_t)s->rec_blocks * BS, pos = LOG_HEADER_SIZE;
    char where[80], ks[80];
    snprintf(where, sizeof(where), "log record %" PRIu64 " (area block %u)", s->seq + 1, s->pos);
    struct lrange *rg = NULL;
    size_t nrg = 0, caprg = 0;
    uint64_t next_off = 0; /* where the next extent of the last LOG_RANGE may start */
    uint64_t missing = 0; /* the last inode reported missing */
    struct cow_key k;
    const uint8_t *p;
    unsigned size;
    for (uint32_t i = 0; i < s->nitems && !f->fatal; i++) {
        fsck_log_item(r, len, &pos, &k, &p, &size);
        fsck_key_str(&k, ks, sizeof(ks));
        unsigned want = k.type == COW_LOG_RANGE     ? 8
                        : k.type == COW_EXTENT_DATA ? FE_ITEM_SIZE
                        : k.type == COW_INODE_ITEM  ? INODE_ITEM_SIZE
                                                    : 0;
        if (k.type == COW_EXTENT_CSUM) {
            if (k.objectid != COW_CSUM_TREE_OBJECTID)
                fsck_problem(f, "%s: %s: csum items have object id %llu", where, ks,
                        (unsigned long long)COW_CSUM_TREE_OBJECTID);
            log_extent(f, where, k.offset, size / 4, p);
            continue;
        }
        if (!want) {
            fsck_problem(f, "%s: %s: not an item of a log record", where, ks);
            continue;
        }
        if (size != want) {
            fsck_problem(f, "%s: %s: %u bytes, expected %u", where, ks, size, want);
            continue;
        }
        if (k.objectid < COW_FIRST_INO) {
            fsck_problem(f, "%s: %s: not a file (inode numbers start at %llu)", where, ks,
                    (unsigned long long)COW_FIRST_INO);
            continue;
        }
        uint32_t one;
        if (f->have_live_inodes && !fsck_map_get(&f->live_inodes, k.objectid, &one) &&
            k.objectid != missing) {
            /* as replay: the log changes files the commit has, never makes one */
            missing = k.objectid;
            fsck_problem(f, "%s: %s: inode %" PRIu64 " does not exist in the live subvolume; the "
                       "store refuses to open",
                    where, ks, k.objectid);
        }
        if (k.type == COW_LOG_RANGE) {
            uint64_t end = get64(p);
            if (k.offset % BS || (end != UINT64_MAX && end % BS) || end <= k.offset)
                fsck_problem(f, "%s: %s: range [%" PRIu64 ", %" PRIu64
                           ") is not a block aligned, non-empty range",
                        where, ks, k.offset, end);
            if (fsck_vec_reserve((void **)&rg, &caprg, nrg + 1, sizeof(*rg))) {
                fsck_set_fatal(f, -ENOMEM);
                break;
            }
            rg[nrg++] = (struct lrange){k.objectid, k.offset, end, 1};
            next_off = k.offset;
            struct rfile *rf = end > k.offset ? rsim_get(f, rs, k.objectid) : NULL;
            if (rf)
                rsim_drop(f, rf, k.offset, end);
        } else if (k.type == COW_INODE_ITEM) {
            if (k.offset != 0)
                fsck_problem(f, "%s: %s: INODE_ITEM key offset must be 0", where, ks);
            if (get64(p + INODE_FLAGS) & ~COW_INODE_FLAGS_KNOWN)
                fsck_problem(f, "%s: %s: inode flags 0x%" PRIx64 " (only 0x1, nodatacow, is "
                                "defined)",
                             where, ks, get64(p + INODE_FLAGS));
            /* as the store's replay (validate.c check_inode_item): a
             * record is written in the transaction after the commit */
            uint64_t g = get64(p + INODE_GENERATION), t = get64(p + INODE_TRANSID);
            if (g > f->gen + 1 || t > f->gen + 1)
                fsck_problem(f, "%s: %s: inode generation %" PRIu64 " / transid %" PRIu64
                           " newer than transaction %" PRIu64,
                        where, ks, g, t, f->gen + 1);
            for (size_t j = 0; j < nrg; j++)
                if (rg[j].ino == k.objectid)
                    rg[j].open = 0;
            /* as replay: the count its items reach is the one logged */
            struct rfile *rf = rsim_get(f, rs, k.objectid);
            if (rf && !rf->reported && rf->nblocks != get64(p + INODE_NBLOCKS)) {
                fsck_problem(f, "%s: %s: nblocks %" PRIu64 ", but the file has %" PRIu64
                           " blocks after replay of the log's items; the store refuses to open",
                        where, ks, get64(p + INODE_NBLOCKS), rf->nblocks);
                rf->reported = 1;
            }
        } else {
            fsck_check_file_extent(f, where, &k, p, 0);
            uint64_t fend = fsck_range_end(k.offset, get64(p + FE_NUM_BYTES));
            int covered = 0;
            for (size_t j = 0; j < nrg && !covered; j++)
                covered = rg[j].open && rg[j].ino == k.objectid && rg[j].start <= k.offset &&
                          fend <= rg[j].end;
            if (!covered)
                fsck_problem(f, "%s: %s: not inside a LOG_RANGE of inode %" PRIu64 " before it",
                        where, ks, k.objectid);
            /* as the store (log.c rec_ranges_ok): a range's extents follow
             * it in file order, none overlapping */
            if (k.offset < next_off)
                fsck_problem(f, "%s: %s: starts before the end (%" PRIu64 ") of the extent "
                           "item before it",
                        where, ks, next_off);
            next_off = fend;
            struct rfile *rf = rsim_get(f, rs, k.objectid);
            if (rf)
                rsim_add(f, rf, k.offset, get64(p + FE_NUM_BYTES));
            uint64_t db = get64(p + FE_DISK_BYTENR), dl = get64(p + FE_DISK_NUM_BYTES);
            if (!f->space_ok || db == 0 || db % BS)
                continue;
            struct dext *d = fsck_dext_get(f, db, 0);
            uint32_t nb;
            if (d && d->has_item) {
                if (d->item_len != dl)
                    fsck_problem(f, "%s: %s: disk_num_bytes %" PRIu64 ", committed data extent %" PRIu64
                               " is %" PRIu64 " bytes",
                            where, ks, dl, db, d->item_len);
            } else if (fsck_map_get(&f->logx, db, &nb)) {
                if ((uint64_t)nb * BS != dl)
                    fsck_problem(f, "%s: %s: disk_num_bytes %" PRIu64 ", the log's EXTENT_CSUM for %" PRIu64
                               " has %u blocks",
                            where, ks, dl, db, nb);
            } else {
                fsck_problem(f, "%s: %s: data extent %" PRIu64 " is neither committed nor checksummed"
                           " by an EXTENT_CSUM item of the log before it",
                        where, ks, db);
            }
        }
    }
    if (pos < len && !fsck_all_zero(r + pos, len - pos))
        fsck_problem(f, "%s: bytes %zu..%zu after the items are not zero", where, pos, len - 1);
    for (size_t j = 0; j < nrg; j++)
        if (rg[j].open) {
            fsck_problem(f, "%s: inode %" PRIu64 ": LOG_RANGE [%" PRIu64 ", %" PRIu64
                       ") is not followed by the inode's INODE_ITEM",
                    where, rg[j].ino, rg[j].start, rg[j].end);
            break;
        }
    free(rg);
}

/*
 * Looks in log area K, from block FROM, for a whole record (magic, length,
 * crc) that proves a flushed commit or record the container no longer has,
 * as the store's replay (replay.c check_lost) does: one saying the commit it builds on
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
    if (fsck_range_end(area, (uint64_t)f->log_blocks * BS) > f->fsize)
        return;
    for (uint32_t pos = from; pos < f->log_blocks && !f->fatal; pos++) {
        uint8_t h[BS];
        if (fsck_read_at(f->src, h, BS, area + (uint64_t)pos * BS))
            return;
        uint32_t nb = get32(h + LOG_NBLOCKS);
        if (get32(h + LOG_MAGIC) != COW_LOG_MAGIC || nb == 0 || nb > f->log_blocks - pos)
            continue;
        if (fsck_vec_reserve((void **)&r, &cap, (size_t)nb * BS, 1)) {
            fsck_set_fatal(f, -ENOMEM);
            break;
        }
        if (fsck_read_at(f->src, r, (size_t)nb * BS, area + (uint64_t)pos * BS) ||
            crc32c(0, r + 4, (size_t)nb * BS - 4) != get32(r + LOG_CSUM))
            continue;
        uint64_t gen = get64(r + LOG_GENERATION), id = get64(r + LOG_ID);
        uint64_t seq = get64(r + LOG_SEQ);
        uint32_t durable = get32(r + LOG_DURABLE);
        int base = (get32(r + LOG_FLAGS) & COW_LOG_BASE_DURABLE) || durable > 0;
        if (id == f->log_id && gen != f->gen) {
            /* as the store (log.c lost_cb): a log_id belongs to one
             * superblock write, so its records have its generation */
            if (!*record_seen)
                fsck_problem(f, "log record %" PRIu64 " (log area %d, block %u) has the log_id "
                           "of commit generation %" PRIu64 " but generation %" PRIu64 ": the "
                           "record or the superblock is damaged; the store refuses to open",
                        seq, k, pos, f->gen, gen);
            *record_seen = 1;
        } else if (base && (gen > f->gen || (gen == f->gen && id != f->log_id)) &&
                   !*commit_seen) {
            *commit_seen = 1;
            fsck_problem(f, "commit generation %" PRIu64 " was flushed (log record %" PRIu64
                       " in log area %d, block %u, says so) but the newest valid commit is "
                       "generation %" PRIu64 "%s%s: acknowledged commits are lost, the store "
                       "refuses to open",
                    gen, seq, k, pos, f->gen, f->sb_rejected[0] ? "; " : "", f->sb_rejected);
        } else if (k == f->r->sb_copy && id == f->log_id && gen == f->gen && seq > applied &&
                   durable > applied && !*record_seen) {
            *record_seen = 1;
            fsck_problem(f, "log record %" PRIu64 " of generation %" PRIu64 " is damaged: record %"
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
void fsck_check_log(struct fsck *f)
{
    if (!f->have_log)
        return;
    int c = f->r->sb_copy;
    uint64_t area = f->log_area[c], len = (uint64_t)f->log_blocks * BS;
    if (fsck_range_end(area, len) > f->fsize || fsck_range_end(area, len) > f->total) {
        fsck_note(f, "log: not read, log area %d is not inside the container", c);
        return;
    }
    struct logscan s;
    fsck_log_scan_init(&s, f->src, area, f->log_blocks, f->log_id, f->gen);
    s.remap = &f->xlate;
    s.known = extent_known;
    s.known_ctx = f;
    uint64_t blocks = 0;
    int rc;
    struct rsim rs;
    memset(&rs, 0, sizeof(rs));
    while ((rc = fsck_log_next(&s)) == 1 && !f->fatal) {
        f->r->log_records++;
        blocks += s.rec_blocks;
        check_log_record(f, &s, &rs);
        fsck_log_advance(&s);
    }
    rsim_free(&rs);
    fsck_log_scan_free(&s);
    if (rc < 0)
        fsck_set_fatal(f, rc);
    if (f->fatal)
        return;
    f->r->log_blocks = blocks;
    uint64_t applied = f->r->log_records;
    if (s.broken)
        fsck_problem(f, "log record %" PRIu64 " of generation %" PRIu64 " (area %d block %u) is "
                   "whole but broken: %s; the store refuses to open",
                applied + 1, f->gen, c, s.pos, s.why);
    else if (applied < f->replay_min)
        fsck_problem(f, "log record %" PRIu64 " of generation %" PRIu64 " is damaged or missing "
                   "(area %d block %u: %s): superblock generation %" PRIu64 " (torn) was "
                   "written after %u records of that log were flushed",
                applied + 1, f->gen, c, s.pos, s.why, f->replay_min_gen, f->replay_min);
    int commit_seen = 0, record_seen = 0;
    log_find_lost(f, c, s.pos, applied, &commit_seen, &record_seen);
    if (fsck_range_end(f->log_area[1 - c], len) <= f->total)
        log_find_lost(f, 1 - c, 0, applied, &commit_seen, &record_seen);
    if (s.ioerr)
        fsck_problem(f, "log area %d block %u (%" PRIu64 "): %s", c, s.pos,
                area + (uint64_t)s.pos * BS, s.why);
    uint64_t n = f->r->log_records;
    if (n)
        fsck_note(f, "log: %" PRIu64 " record%s (%" PRIu64 " block%s) pending replay; the log ends at area block %u: %s",
             n, n == 1 ? "" : "s", blocks, blocks == 1 ? "" : "s", s.pos, s.why);
    else if (s.odd && !s.ioerr && !s.broken)
        fsck_note(f, "log: no record pending replay; area block %u: %s", s.pos, s.why);
}
