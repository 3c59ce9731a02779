/*
 * csums.c - the checker's checksums: the csum items against the data
 * extents (pass 3), and with COW_FSCK_DATA the data blocks against their
 * checksums (pass 4) (see fsck.c).
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* pass 3: csum items                                                  */
/* ------------------------------------------------------------------ */


void fsck_check_csums(struct fsck *f)
{
    int full = f->tree_ok[T_CSUM] && f->tree_ok[T_EXTENT];
    for (size_t i = 0; i < f->ncs; i++) {
        struct csi *c = &f->cs[i];
        struct dext *d = fsck_dext_get(f, c->bytenr, 0);
        if ((!d || !d->has_item) && f->tree_ok[T_EXTENT])
            fsck_problem(f, "csum tree: item for %" PRIu64 " (%u blocks), which is not a data extent",
                    c->bytenr, c->n);
        if (!d)
            continue;
        d->has_csum = 1;
        d->csum_off = c->off;
        d->ncsum = c->n;
        uint64_t len = d->has_item ? d->item_len : d->ref_len;
        if ((uint64_t)c->n * BS != len)
            fsck_problem(f, "csum tree: item for data extent %" PRIu64 " has %u crcs, the extent has %" PRIu64 " blocks",
                    c->bytenr, c->n, len / BS);
    }
    if (!full) {
        fsck_note(f, "checksum items not fully cross-checked: the %s tree is damaged",
             f->tree_ok[T_CSUM] ? "extent" : "csum");
        return;
    }
    for (size_t i = 0; i < f->ndx; i++)
        if (f->dx[i].has_item && !f->dx[i].has_csum)
            fsck_problem(f, "data extent %" PRIu64 " (%" PRIu64 " bytes) has no EXTENT_CSUM item",
                    f->dx[i].bytenr, f->dx[i].item_len);
}

/* ------------------------------------------------------------------ */
/* pass 4: data                                                        */
/* ------------------------------------------------------------------ */


/* Pass 4 reads the runs of many extents at once, through the source's
 * readv where it has one (a RADOS container: the round trips overlap),
 * at most this many bytes, runs and pieces at a time. */
#define DATA_BATCH_BYTES (8u << 20)
#define DATA_BATCH_RUNS 1024
#define DATA_BATCH_PIECES 2048
/* (a run, one extent at most, has at most a piece per block) */
_Static_assert(COW_MAX_EXTENT_BLOCKS <= DATA_BATCH_PIECES, "a run fits in one batch");

/* One run of mapped blocks of one extent, in a batch. */
struct drun {
    size_t dx;              /* its extent (index into f->dx) */
    uint32_t b, e;          /* its blocks [b, e) of the extent */
    size_t bufoff;          /* where its bytes are in the batch's buffer */
    size_t piece0, npieces; /* its pieces (iov) */
    int dropped;            /* a piece is dropped by relocation: not read */
};

/* The extent being verified, across runs and batches. */
struct dverify {
    size_t dx;
    int open;    /* has had a run */
    int stopped; /* a read failed: its later runs are not checked */
    uint32_t checked, bad, first, first_c;
};

/* Pass 4's extents that can be checked: an item, crcs for every block, and
 * stored inside the file (one stored past its end is a problem of
 * fsck_check_remap_space). */
static int data_checkable(const struct fsck *f, const struct dext *d)
{
    return d->has_item && d->has_csum && (uint64_t)d->ncsum * BS == d->item_len &&
           fsck_phys_end(&f->xlate, d->bytenr, d->item_len) <= f->fsize;
}

/* Reports what V found of its extent (if anything was bad) and counts its
 * verified blocks. */
static void data_verified(struct fsck *f, struct dverify *v)
{
    if (!v->open)
        return;
    const struct dext *d = &f->dx[v->dx];
    const uint32_t *csum = f->pool + d->csum_off;
    f->r->data_blocks_verified += v->checked;
    v->open = 0;
    if (!v->bad)
        return;
    char of[96] = "";
    if (v->checked < d->ncsum)
        snprintf(of, sizeof(of), "; of its %u blocks, the %u that regular file extents map "
                                 "were checked", d->ncsum, v->checked);
    fsck_problem(f, "data extent %" PRIu64 ": %u of %u blocks fail their checksum, first block %" PRIu64
               " (stored 0x%08x, computed 0x%08x)%s",
            d->bytenr, v->bad, v->checked, d->bytenr + (uint64_t)v->first * BS, csum[v->first],
            v->first_c, of);
}

/* Reads the N pieces of a batch: the source's readv, or one read each.
 * Each piece's rc: 0, 1 (past the end of the file), or an errno value. */
static void data_read(struct fsck *f, struct cow_fsck_iov *iov, size_t n)
{
    const struct cow_fsck_src *src = f->src;
    int inside = 1;
    for (size_t k = 0; k < n && inside; k++)
        inside = iov[k].off < src->size && iov[k].len <= src->size - iov[k].off;
    if (src->readv && inside && src->readv(src->arg, iov, n) == 0)
        return;
    for (size_t k = 0; k < n; k++)
        iov[k].rc = fsck_read_at(src, iov[k].buf, iov[k].len, iov[k].off);
}

/* Checks run R (read into BUF) against its extent's crcs, into V. */
static void data_check_run(struct fsck *f, const struct drun *r, const uint8_t *buf,
                           const struct cow_fsck_iov *iov, struct dverify *v)
{
    const struct dext *d = &f->dx[r->dx];
    const uint32_t *csum = f->pool + d->csum_off;
    if (!v->open || v->dx != r->dx) {
        data_verified(f, v);
        memset(v, 0, sizeof *v);
        v->dx = r->dx;
        v->open = 1;
    }
    if (v->stopped)
        return;
    uint64_t at = d->bytenr + (uint64_t)r->b * BS;
    fsck_progress(f, (uint64_t)(r->e - r->b) * BS);
    int rd = r->dropped ? FSCK_READ_DROPPED : 0;
    for (size_t k = 0; k < r->npieces && !rd; k++)
        rd = iov[r->piece0 + k].rc;
    if (rd == FSCK_READ_DROPPED) {
        fsck_problem(f, "data extent %" PRIu64 ": blocks from %" PRIu64 " that a regular "
                        "file extent maps were dropped by relocation (REMAP_ITEM "
                        "physical 0)",
                     d->bytenr, at);
        v->stopped = 1;
        return;
    }
    if (rd) {
        fsck_problem(f, "data extent %" PRIu64 ": read failed at block %" PRIu64 ": %s",
                d->bytenr, at, rd == 1 ? "past end of file" : strerror(rd));
        v->stopped = 1;
        return;
    }
    for (uint32_t j = r->b; j < r->e; j++) {
        uint32_t c = crc32c(0, buf + r->bufoff + (size_t)(j - r->b) * BS, BS);
        if (c != csum[j] && v->bad++ == 0) {
            v->first = j;
            v->first_c = c;
        }
    }
    v->checked += r->e - r->b;
}

/*
 * Adds the next run of mapped blocks of the checkable extents, from extent
 * *I's block *B on, to the batch (RUNS, IOV: its pieces where the remap
 * runs say they are stored), unless it does not fit: 1 if one was added, 0
 * if the batch is full or no run is left (*I == f->ndx).
 */
static int data_plan_run(struct fsck *f, size_t *i, uint32_t *b, struct drun *runs,
                         size_t *nruns, struct cow_fsck_iov *iov, size_t *npieces,
                         uint8_t *buf, size_t *used)
{
    while (*i < f->ndx) {
        struct dext *d = &f->dx[*i];
        if (!data_checkable(f, d)) {
            (*i)++;
            *b = 0;
            continue;
        }
        while (*b < d->ncsum && !fsck_bmap_has(d->reg, *b))
            (*b)++;
        if (*b >= d->ncsum) {
            (*i)++;
            *b = 0;
            continue;
        }
        uint32_t e = *b + 1;
        while (e < d->ncsum && fsck_bmap_has(d->reg, e) &&
               *used + (size_t)(e + 1 - *b) * BS <= DATA_BATCH_BYTES)
            e++;
        if (*nruns == DATA_BATCH_RUNS || *used + (size_t)(e - *b) * BS > DATA_BATCH_BYTES)
            return 0;
        struct drun r = {*i, *b, e, *used, *npieces, 0, 0};
        uint64_t logical = d->bytenr + (uint64_t)*b * BS, len = (uint64_t)(e - *b) * BS;
        /* its pieces first counted: a run never lies in two batches' iovs */
        size_t pieces = 0;
        for (uint64_t done = 0, contig; done < len && !r.dropped; done += contig) {
            r.dropped = fsck_remap_phys(&f->xlate, logical + done, &contig) == 0;
            pieces++;
        }
        if (*nruns && *npieces + pieces > DATA_BATCH_PIECES)
            return 0;
        for (uint64_t done = 0; done < len && !r.dropped;) {
            uint64_t contig, at = fsck_remap_phys(&f->xlate, logical + done, &contig);
            uint64_t n = contig < len - done ? contig : len - done;
            iov[(*npieces)++] = (struct cow_fsck_iov){buf + *used + done, (size_t)n, at, 0};
            r.npieces++;
            done += n;
        }
        runs[(*nruns)++] = r;
        *used += (size_t)len;
        *b = e;
        return 1;
    }
    return 0;
}

/*
 * Verifies the blocks of each data extent that hold file data: those that a
 * REG EXTENT_DATA item of some subvolume maps (dext.reg, gathered in pass
 * 2).  The other blocks were preallocated and never written (only PREALLOC
 * items map them) or are mapped by nothing: their crcs are placeholders and
 * their contents whatever the space held before, so they are not read.
 * Each run of mapped blocks is read from where the remap runs say it is
 * stored, many runs at a time (data_read).
 */
void fsck_check_data(struct fsck *f)
{
    uint8_t *buf = malloc(DATA_BATCH_BYTES);
    struct drun *runs = malloc(DATA_BATCH_RUNS * sizeof *runs);
    struct cow_fsck_iov *iov = malloc(DATA_BATCH_PIECES * sizeof *iov);
    struct dverify v = {0};
    size_t i = 0;
    uint32_t b = 0;
    if (!buf || !runs || !iov) {
        fsck_set_fatal(f, -ENOMEM);
        goto out;
    }
    while (!f->fatal) {
        size_t nruns = 0, npieces = 0, used = 0;
        while (data_plan_run(f, &i, &b, runs, &nruns, iov, &npieces, buf, &used))
            ;
        if (!nruns)
            break;
        data_read(f, iov, npieces);
        for (size_t k = 0; k < nruns && !f->fatal; k++)
            data_check_run(f, &runs[k], buf, iov, &v);
    }
    data_verified(f, &v);
out:
    free(iov);
    free(runs);
    free(buf);
}
