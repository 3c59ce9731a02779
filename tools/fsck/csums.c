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


/*
 * Verifies the blocks of each data extent that hold file data: those that a
 * REG EXTENT_DATA item of some subvolume maps (dext.reg, gathered in pass
 * 2).  The other blocks were preallocated and never written (only PREALLOC
 * items map them) or are mapped by nothing: their crcs are placeholders and
 * their contents whatever the space held before, so they are not read.
 * Each run of mapped blocks is read from where the remap runs say it is
 * stored, with one pread per piece.
 */
void fsck_check_data(struct fsck *f)
{
    uint8_t *buf = malloc(MAX_EXTENT_BYTES);
    if (!buf) {
        fsck_set_fatal(f, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < f->ndx && !f->fatal; i++) {
        struct dext *d = &f->dx[i];
        /* an extent stored past the end of the file is a problem of
         * fsck_check_remap_space */
        if (!d->has_item || !d->has_csum || (uint64_t)d->ncsum * BS != d->item_len ||
            fsck_phys_end(&f->xlate, d->bytenr, d->item_len) > f->fsize)
            continue;
        const uint32_t *csum = f->pool + d->csum_off;
        uint32_t checked = 0, bad = 0, first = 0, first_c = 0;
        uint32_t b = 0;
        while (b < d->ncsum) {
            if (!fsck_bmap_has(d->reg, b)) {
                b++;
                continue;
            }
            uint32_t e = b + 1;
            while (e < d->ncsum && fsck_bmap_has(d->reg, e))
                e++;
            uint64_t at = d->bytenr + (uint64_t)b * BS;
            int rd = fsck_read_logical(f->src, &f->xlate, buf, (size_t)(e - b) * BS, at);
            fsck_progress(f, (uint64_t)(e - b) * BS);
            if (rd == FSCK_READ_DROPPED) {
                fsck_problem(f, "data extent %" PRIu64 ": blocks from %" PRIu64 " that a regular "
                                "file extent maps were dropped by relocation (REMAP_ITEM "
                                "physical 0)",
                             d->bytenr, at);
                break;
            }
            if (rd) {
                fsck_problem(f, "data extent %" PRIu64 ": read failed at block %" PRIu64 ": %s",
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
        fsck_problem(f, "data extent %" PRIu64 ": %u of %u blocks fail their checksum, first block %" PRIu64
                   " (stored 0x%08x, computed 0x%08x)%s",
                d->bytenr, bad, checked, d->bytenr + (uint64_t)first * BS, csum[first], first_c,
                of);
    }
    free(buf);
}
