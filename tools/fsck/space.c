/*
 * space.c - pass 3 of the checker, space: every used range of the
 * container (superblocks, tree blocks, data extents, log areas) against
 * the others, the container's bounds and the block groups' accounting
 * (see fsck.c).
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* pass 3: space                                                       */
/* ------------------------------------------------------------------ */


static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->kind < y->kind ? -1 : x->kind > y->kind;
}

const char *fsck_span_str(const struct span *s, char *buf, size_t len)
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
 * Space, by logical address: every used range (superblocks, log areas, tree
 * blocks, data extents) inside the block groups and apart from the others,
 * in a block group of its type, and the used bytes of each group and of the
 * superblock.  The sorted ranges are kept in f->sp for the remap and log
 * checks.
 */
void fsck_check_space(struct fsck *f, int all_ok)
{
    size_t n = 1 + COW_SB_COPIES + f->nblk + f->ndx;
    struct span *sp = malloc(n * sizeof(*sp));
    if (!sp) {
        fsck_set_fatal(f, -ENOMEM);
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
        uint64_t end = fsck_range_end(sp[i].start, sp[i].len);
        /* where it is stored (below device_bytes, inside the file) is
         * checked with the remap runs: fsck_check_remap_space */
        if (end > f->total)
            fsck_problem(f, "%s ends at %" PRIu64 ", beyond total_bytes %" PRIu64,
                    fsck_span_str(&sp[i], a, sizeof(a)), end, f->total);
        if (i && fsck_range_end(sp[last].start, sp[last].len) > sp[i].start)
            fsck_problem(f, "%s overlaps %s", fsck_span_str(&sp[i], a, sizeof(a)),
                    fsck_span_str(&sp[last], b, sizeof(b)));
        if (i == 0 || end > fsck_range_end(sp[last].start, sp[last].len))
            last = i;
    }

    /* block groups */
    f->r->block_groups = f->nbg;
    if (!f->tree_ok[T_EXTENT]) {
        fsck_note(f, "block groups not checked: the extent tree is damaged");
        return;
    }
    if (f->nbg > 1)
        qsort(f->bg, f->nbg, sizeof(*f->bg), bg_cmp);
    uint64_t expect = 0;
    for (size_t i = 0; i < f->nbg; i++) {
        struct bgi *g = &f->bg[i];
        if (g->start > expect)
            fsck_problem(f, "block groups: no BLOCK_GROUP_ITEM covers [%" PRIu64 ", %" PRIu64 ")",
                    expect, g->start);
        else if (g->start < expect)
            fsck_problem(f, "block group %" PRIu64 " overlaps the previous one (ending at %" PRIu64 ")",
                    g->start, expect);
        if (f->bg_size && g->len != f->bg_size)
            fsck_problem(f, "block group %" PRIu64 ": length %" PRIu64 ", block group size is %" PRIu64,
                    g->start, g->len, f->bg_size);
        if (g->flags != COW_BG_DATA && g->flags != COW_BG_METADATA &&
            (g->flags != COW_BG_MIXED || g->start != 0))
            fsck_problem(f, "block group %" PRIu64 ": flags 0x%" PRIx64 ", not DATA (0x%llx) or METADATA (0x%llx)%s",
                    g->start, g->flags, COW_BG_DATA, COW_BG_METADATA,
                    g->flags == COW_BG_MIXED ? " (only group 0 may be both)" : "");
        else if (g->start == 0 && !(g->flags & COW_BG_METADATA))
            fsck_problem(f, "block group 0 (the superblocks' group) is not a METADATA group");
        if (g->used > g->len)
            fsck_problem(f, "block group %" PRIu64 ": used %" PRIu64 " > length %" PRIu64, g->start,
                    g->used, g->len);
        uint64_t e = fsck_range_end(g->start, g->len);
        if (e > expect)
            expect = e;
    }
    if (expect < f->total)
        fsck_problem(f, "block groups: no BLOCK_GROUP_ITEM covers [%" PRIu64 ", %" PRIu64 ")", expect,
                f->total);
    else if (expect > f->total)
        fsck_problem(f, "block groups reach %" PRIu64 ", beyond total_bytes %" PRIu64, expect, f->total);

    if (!all_ok || f->log_bad) {
        fsck_note(f, "used bytes not checked: %s",
             all_ok ? "the superblock's log areas are invalid" : "some trees are damaged");
        return;
    }
    f->space_ok = 1;
    /* used bytes per group: sum of the overlap of every span with it */
    size_t j = 0;
    for (size_t i = 0; i < f->nbg; i++) {
        struct bgi *g = &f->bg[i];
        uint64_t ge = fsck_range_end(g->start, g->len);
        while (j < k && fsck_range_end(sp[j].start, sp[j].len) <= g->start)
            j++;
        for (size_t m = j; m < k && sp[m].start < ge; m++) {
            uint64_t s = sp[m].start > g->start ? sp[m].start : g->start;
            uint64_t e = fsck_range_end(sp[m].start, sp[m].len);
            if (e > ge)
                e = ge;
            if (e > s)
                g->calc += e - s;
            /* data only in DATA groups, tree blocks, superblocks and log
             * areas only in METADATA groups (group 0 may be both) */
            int is_data = sp[m].kind == SP_DATA;
            if (e > s && (g->flags == COW_BG_DATA || g->flags == COW_BG_METADATA) &&
                is_data != (g->flags == COW_BG_DATA))
                fsck_problem(f, "%s lies in %s block group %" PRIu64,
                        fsck_span_str(&sp[m], a, sizeof(a)), g->flags == COW_BG_DATA ? "DATA" : "METADATA",
                        g->start);
        }
        if (g->calc != g->used)
            fsck_problem(f, "block group %" PRIu64 ": used %" PRIu64 ", recomputed %" PRIu64,
                    g->start, g->used, g->calc);
    }
    if (f->bytes_used != meta + data)
        fsck_problem(f, "superblock: bytes_used %" PRIu64 ", recomputed %" PRIu64
                   " (%" PRIu64 " metadata + %" PRIu64 " data)",
                f->bytes_used, meta + data, meta, data);
}
