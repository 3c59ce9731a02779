/*
 * alloc.c - block groups and free space.
 *
 * The container is cut into block groups of st->bg_size bytes.  Each group
 * has an in-memory bitmap (one bit per 4 KiB block: allocated or pinned),
 * rebuilt at open from the trees, and a used-bytes counter that is written
 * to its BLOCK_GROUP_ITEM at commit.  Space freed by the running
 * transaction is pinned: it leaves `used` at once (the new state does not
 * use it) but stays set in the bitmap until the transaction has committed,
 * so nothing the last committed superblock reaches is ever overwritten
 * (invariants 1 and 7).  Allocation is next-fit from separate data and
 * metadata cursors, preferring runs as long as asked for.
 *
 * Relocation (reloc.c, remap.c) separates where a block is named from
 * where it is stored: each group has a second, physical bitmap (a block of
 * the file holds something: a used block stored at its own address, or a
 * remap target).  New blocks are always stored at their own address, so
 * they need both bits clear; remap targets need only the physical one.
 * To keep the file short, allocation prefers space below the file's end
 * and remap targets take the lowest free blocks.
 *
 * Reads of this process resolve blocks under store->lock and read them
 * with it released (file.c file_read): space that becomes free while
 * such a read runs stays set in the maps (st->rdheld) until every read
 * that began before has ended (alloc_reader_begin, alloc_reader_end), as
 * space other processes' readers may read is held (invariant 9;
 * alloc_hold.c).
 *
 * Locking: store->lock held by every caller.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"
#include "bgsum.h"
#include "inject.h"
#include "runs.h"
#include "store_int.h"
#include "shared.h"
#include "vec.h"

/* Notes a change of the running transaction to the free space map for
 * the shared allocation journal (alloc_record_ops); with no shared state,
 * nothing.  Touching runs of one kind merge.  No memory: the journal
 * cannot say this transaction, so it is invalidated at commit. */
static void xop_add(cow_store *st, unsigned op, uint64_t bytenr, uint64_t bytes)
{
    if (!st->shared || st->xops_complex)
        return;
    if (st->nxops) {
        struct alloc_op *l = &st->xops[st->nxops - 1];
        if (l->op == op && op != SHARED_JOP_GROUP && op != SHARED_JOP_TYPE &&
            l->bytenr + l->bytes == bytenr) {
            l->bytes += bytes;
            return;
        }
    }
    if (vec_reserve(st->xops, st->cxops, st->nxops + 1)) {
        st->xops_complex = 1;
        return;
    }
    st->xops[st->nxops++] = (struct alloc_op){bytenr, bytes, op};
}

/* The transaction did what the journal cannot say (above). */
static void xop_complex(cow_store *st)
{
    st->xops_complex = 1;
}

/* Adds in-memory groups up to NEW_TOTAL bytes (no device change). */
static int add_groups_mem(cow_store *st, uint64_t new_total)
{
    size_t n = (size_t)(new_total / st->bg_size);
    if (n <= st->nbgs)
        return COW_OK;
    if (vec_reserve(st->bgs, st->cbgs, n))
        return cow_set_error(COW_ENOMEM, "out of memory");
    struct bgroup *b = st->bgs;
    uint64_t blocks = st->bg_size / COW_BLOCK_SIZE;
    for (size_t i = st->nbgs; i < n; i++) {
        struct bgroup *g = &b[i];
        memset(g, 0, sizeof *g);
        g->start = (uint64_t)i * st->bg_size;
        g->len = st->bg_size;
        g->nfree = blocks;
        g->maxrun = blocks;
        g->bitmap = calloc((size_t)(blocks + 7) / 8, 1);
        g->pbitmap = calloc((size_t)(blocks + 7) / 8, 1);
        if (!g->bitmap || !g->pbitmap) {
            free(g->bitmap);
            free(g->pbitmap);
            st->nbgs = i;
            return cow_set_error(COW_ENOMEM, "out of memory");
        }
        st->nbgs = i + 1;
    }
    st->total_bytes = (uint64_t)st->nbgs * st->bg_size;
    bgsum_stale(st);
    return COW_OK;
}

int alloc_add_group(cow_store *st, uint64_t flags)
{
    lk_assert_held(&st->lock);
    int rc;
    size_t old = st->nbgs;
    uint64_t new_total = st->total_bytes + st->bg_size;
    /* A read-only store grows only in memory: replaying the log there needs
     * addresses for tree blocks that are never written. */
    if (st->dev->grow && !st->readonly) {
        cow_mutex_lock(&st->resize_lock); /* after a cut in progress (reloc.c) */
        rc = st->dev->grow(st->dev, new_total);
        cow_mutex_unlock(&st->resize_lock);
        if (rc)
            return rc;
        if (new_total > st->file_bytes)
            st->file_bytes = new_total;
        bgsum_stale(st);
    }
    rc = add_groups_mem(st, new_total);
    if (rc)
        return rc;
    for (size_t i = old; i < st->nbgs; i++) {
        st->bgs[i].flags = flags;
        st->bgs[i].dirty = 1; /* a new BLOCK_GROUP_ITEM at commit */
        bgsum_stale(st);
        xop_add(st, SHARED_JOP_GROUP, st->bgs[i].start, flags);
    }
    st->txn_dirty = 1;
    st->log_blocked = 1; /* the log cannot add block groups */
    return COW_OK;
}


/* Free blocks in groups of type FLAGS that the file covers. */
static uint64_t free_of(cow_store *st, uint64_t flags)
{
    uint64_t n = 0;
    for (size_t i = 0; i < st->nbgs; i++)
        if ((st->bgs[i].flags & flags) && bgsum_backed(st, &st->bgs[i]))
            n += st->bgs[i].nfree;
    return n;
}

static int retype_empty(cow_store *st, uint64_t flags, int preferred_only);

/* Blocks free to take now (neither used nor pinned, cooling or stored: no
 * bit in either bitmap) in metadata and mixed groups the file covers,
 * group EXCEPT not counted; counting stops at WANT (a scan of every
 * group's bitmap would hold the lock for long in a large container). */
static uint64_t meta_takeable_inside(cow_store *st, size_t except, uint64_t want)
{
    uint64_t n = (st->mchunk_end - st->mchunk_next) / COW_BLOCK_SIZE;
    for (size_t gi = 0; gi < st->nbgs && n < want; gi++) {
        const struct bgroup *g = &st->bgs[gi];
        if (gi == except || !(g->flags & COW_BG_METADATA) || !bgsum_backed(st, g) || g->relocating ||
            !g->nfree)
            continue;
        for (uint64_t i = 0, nb = g->len / COW_BLOCK_SIZE; i < nb && n < want; i++)
            n += !busy(g, i);
    }
    return n;
}

static void set_type(cow_store *st, struct bgroup *g, uint64_t flags);

/* No block of data group G is used, pinned or cooling (its logical
 * bitmap is clear) and none is a remap source, though it may store
 * blocks remapped from other groups (physical use): its type, which says
 * what its own addresses are allocated to, can change, since allocation
 * there takes only blocks with both bits clear.  Not group 0, nor one
 * being relocated. */
static int data_group_logically_empty(const cow_store *st, const struct bgroup *g)
{
    if (g == &st->bgs[0] || g->flags != COW_BG_DATA || g->relocating || g->nremap || g->used)
        return 0;
    for (uint64_t i = 0, n = (g->len / COW_BLOCK_SIZE + 7) / 8; i < n; i++)
        if (g->bitmap[i])
            return 0;
    return 1;
}

uint64_t alloc_meta_room_inside(cow_store *st, uint64_t want, size_t except)
{
    lk_assert_held(&st->lock);
    uint64_t n = meta_takeable_inside(st, except, want);
    if (n < want && retype_empty(st, COW_BG_METADATA, 1))
        n = meta_takeable_inside(st, except, want);
    /* After relocation, a data group below the one being relocated may
     * hold only other groups' remapped blocks, and the tree blocks of the
     * group being relocated have nowhere else to go: its free blocks serve
     * them (the
     * container's tail stayed one group of tree blocks long otherwise:
     * bench updates --quick, 5.0 MiB for a 1.7 MiB database) */
    for (size_t gi = 1; gi < st->nbgs && n < want; gi++) {
        struct bgroup *g = &st->bgs[gi];
        if (gi >= except || !bgsum_backed(st, g) || !data_group_logically_empty(st, g))
            continue;
        set_type(st, g, COW_BG_METADATA);
        n = meta_takeable_inside(st, except, want);
    }
    return n;
}

/* G holds nothing: no block of it is used, pinned, reserved, stored or a
 * remap source, and it is neither group 0 nor being relocated. */
static int group_empty(const cow_store *st, const struct bgroup *g)
{
    return g != &st->bgs[0] && !g->relocating && !g->nremap && !g->pused &&
           g->nfree == g->len / COW_BLOCK_SIZE;
}

/* Gives group G type FLAGS (its BLOCK_GROUP_ITEM says so at commit).  The
 * log needs no commit for it: replay retypes an empty group that a logged
 * extent lies in (alloc_claim_data). */
static void set_type(cow_store *st, struct bgroup *g, uint64_t flags)
{
    xop_add(st, SHARED_JOP_TYPE, g->start, flags);
    g->flags = flags;
    bgsum_stale(st);
    g->dirty = 1;
    g->maxrun = g->len / COW_BLOCK_SIZE;
    st->txn_dirty = 1;
}

/* Grows the file over the lowest group past its end (after relocation or
 * close cut it), giving it type WANT first if it is empty (0: keep its
 * type): 1 if it did, 0 if every group is covered, or an error. */
static int back_next_group(cow_store *st, uint64_t want)
{
    for (size_t i = 0; i < st->nbgs; i++) {
        struct bgroup *g = &st->bgs[i];
        if (bgsum_backed(st, g))
            continue;
        if (want && g->flags != want && group_empty(st, g))
            set_type(st, g, want); /* empty: it serves what is short */
        int rc = alloc_back(st, g->start + g->len);
        return rc ? rc : 1;
    }
    return 0;
}

uint64_t alloc_meta_used_blocks(cow_store *st)
{
    lk_assert_held(&st->lock);
    return bgsum_meta_used(st) / COW_BLOCK_SIZE;
}

int alloc_init_groups(cow_store *st, uint64_t total)
{
    lk_assert_held(&st->lock);
    return add_groups_mem(st, total);
}

void alloc_destroy(cow_store *st)
{
    for (size_t i = 0; i < st->nbgs; i++) {
        free(st->bgs[i].bitmap);
        free(st->bgs[i].pbitmap);
    }
    free(st->bgs);
    st->bgs = NULL;
    st->nbgs = st->cbgs = 0;
    st->mchunk_next = st->mchunk_end = 0;
    free(st->pinned);
    st->pinned = NULL;
    st->npinned = st->cpinned = 0;
    st->pinned_bytes = 0;
    st->npinned_recorded = st->nppinned_recorded = 0;
    free(st->ppinned);
    st->ppinned = NULL;
    st->nppinned = st->cppinned = st->npinned_remapped = 0;
    free(st->cooling);
    free(st->pcooling);
    st->cooling = st->pcooling = NULL;
    st->ncooling = st->ccooling = st->npcooling = st->cpcooling = 0;
    free(st->held);
    st->held = NULL;
    st->nheld = st->cheld = 0;
    /* (no read runs with the lock released while the map is rebuilt: the
     * reloads hold every file's invalidate lock, and a read holds one) */
    free(st->rdheld);
    st->rdheld = NULL;
    st->nrdheld = st->crdheld = 0;
    free(st->xops);
    st->xops = NULL;
    st->nxops = st->cxops = 0;
    st->xops_complex = 0;
    st->xbasis_gen = st->xbasis_idx = 0; /* the map is gone */
    bgsum_stale(st);
}

int alloc_mark_used(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    uint64_t end;
    if (range_end(bytenr, len, &end) || bytenr % COW_BLOCK_SIZE || len % COW_BLOCK_SIZE ||
        len == 0)
        return COW_CORRUPT("extent [%llu, +%llu) misaligned", (unsigned long long)bytenr,
                           (unsigned long long)len);
    for (uint64_t b = bytenr; b < end; b += COW_BLOCK_SIZE) {
        struct bgroup *g = bg_of(st, b);
        if (!g)
            return COW_CORRUPT("block %llu beyond the container's %llu bytes",
                               (unsigned long long)b, (unsigned long long)st->total_bytes);
        uint64_t i = (b - g->start) / COW_BLOCK_SIZE;
        if (bit_get(g->bitmap, i))
            return COW_CORRUPT("block %llu used twice", (unsigned long long)b);
        bit_set(g->bitmap, i);
        bit_set(g->pbitmap, i); /* at its own address until remap_load says otherwise */
        g->pused++;
        bgsum_nfree_add(st, g, -1);
        bgsum_used_add(st, g, (int64_t)(COW_BLOCK_SIZE));
    }
    return COW_OK;
}

/* Longest free run starting at block I of G, at most WANT blocks. */
static uint64_t run_at(const struct bgroup *g, uint64_t i, uint64_t want)
{
    uint64_t blocks = g->len / COW_BLOCK_SIZE, n = 0;
    while (i + n < blocks && n < want && !busy(g, i + n))
        n++;
    return n;
}

/* Finds a free run of at least MINRUN blocks (up to WANT) from CURSOR. */
/* Allocation prefers groups wholly below the file's end, and, while a
 * balance runs, below what the file will need (st->alloc_soft_end). */
static int preferred(const cow_store *st, const struct bgroup *g)
{
    uint64_t end = st->file_bytes;
    if (st->alloc_soft_end && (end == 0 || st->alloc_soft_end < end))
        end = st->alloc_soft_end;
    return end == 0 || g->start + g->len <= end;
}

/* Gives an empty preferred group (or, with none and not PREFERRED_ONLY,
 * any empty group) type FLAGS: after churn and relocation, empty groups of one type
 * serve the other rather than the file growing.  A group is empty when
 * nothing uses, pins or stores any block of it.  1 if one was retyped. */
static int retype_empty_from(cow_store *st, uint64_t flags, int preferred_only, uint64_t from)
{
    for (int pass = 0; pass < 2 - preferred_only; pass++)
        for (size_t i = 1; i < st->nbgs; i++) {
            struct bgroup *g = &st->bgs[i];
            if (g->flags == flags || (from && g->flags != from) || !group_empty(st, g) ||
                preferred(st, g) != (pass == 0))
                continue;
            set_type(st, g, flags);
            return 1;
        }
    return 0;
}

static int retype_empty(cow_store *st, uint64_t flags, int preferred_only)
{
    return retype_empty_from(st, flags, preferred_only, 0);
}

/* Where find_run_in looks: every group, preferred groups only, or every
 * group the file covers (preferred first). */
#define RUN_ANYWHERE 0
#define RUN_PREFERRED 1
#define RUN_INSIDE 2

/* Groups wholly below the file's end come first (in next-fit order from
 * the cursor), then the rest: space the file already has is used before
 * the file grows back over what relocation gave back.  WHERE: RUN_*. */
static int find_run_in(cow_store *st, uint64_t flags, uint64_t cursor, uint64_t want,
                       uint64_t minrun, int where, uint64_t *bytenr, uint64_t *got)
{
    size_t ng = st->nbgs;
    size_t g0 = (size_t)(cursor / st->bg_size);
    if (g0 >= ng)
        g0 = 0;
    for (size_t k = 0; k <= 2 * ng; k++) {
        /* the second pass goes up from the bottom: the file grows as
         * little as it can */
        size_t gi = k <= ng ? (g0 + k) % ng : k - ng - 1;
        struct bgroup *g = &st->bgs[gi];
        /* between the passes: an empty group where allocation prefers to
         * be serves before any group past it */
        if (k == ng + 1 && retype_empty(st, flags, 1))
            return find_run_in(st, flags, cursor, want, minrun, where, bytenr, got);
        if (k > ng && where == RUN_PREFERRED)
            break;
        if (preferred(st, g) != (k <= ng))
            continue;
        if (k > ng && where == RUN_INSIDE && st->file_bytes && g->start + g->len > st->file_bytes)
            continue;
        if (!(g->flags & flags) && k > ng && group_empty(st, g))
            set_type(st, g, flags); /* the lowest empty group past the end serves */
        if (!(g->flags & flags) || g->nfree < minrun || g->maxrun < minrun || g->relocating)
            continue;
        uint64_t blocks = g->len / COW_BLOCK_SIZE;
        uint64_t i = 0, longest = 0;
        if (k == 0 && cursor >= g->start)
            i = (cursor - g->start) / COW_BLOCK_SIZE;
        int whole = (i == 0);
        while (i < blocks) {
            /* skip full bytes quickly */
            if ((i & 7) == 0 && i + 8 <= blocks &&
                (g->bitmap[i >> 3] | g->pbitmap[i >> 3]) == 0xff) {
                i += 8;
                continue;
            }
            if (busy(g, i)) {
                i++;
                continue;
            }
            uint64_t n = run_at(g, i, want);
            if (n >= minrun) {
                *bytenr = g->start + i * COW_BLOCK_SIZE;
                *got = n;
                return 1;
            }
            if (n > longest)
                longest = n;
            i += n;
        }
        if (whole)
            g->maxrun = longest; /* no run of MINRUN here until space is freed */
    }
    return 0;
}

static int find_run(cow_store *st, uint64_t flags, uint64_t cursor, uint64_t want,
                    uint64_t minrun, uint64_t *bytenr, uint64_t *got)
{
    return find_run_in(st, flags, cursor, want, minrun, RUN_ANYWHERE, bytenr, got);
}

static int alloc_blocks_any(cow_store *st, uint64_t flags, uint64_t want, uint64_t *cursor,
                            uint64_t *bytenr, uint64_t *got);

/* Below this, allocation is first fit and tree block chunks are small:
 * a small database keeps its blocks at the start of the file, which
 * close cuts after its last block (docs/DESIGN.md, "Small databases").
 * The file's size decides when it is known, not total_bytes: after a
 * balance a short file may span many remapped groups' addresses. */
#define SMALL_CONTAINER (4ull << 20)
static int small_container(const cow_store *st)
{
    return (st->file_bytes ? st->file_bytes : st->total_bytes) <= SMALL_CONTAINER;
}

/* More than a quarter of the groups of type FLAGS is free.  When it is not
 * and no long free run is left, the container grows rather than scattering
 * writes into single-block holes (relocation compacts it later). */
static int roomy(cow_store *st, uint64_t flags)
{
    uint64_t total = 0;
    for (size_t i = 0; i < st->nbgs; i++)
        if ((st->bgs[i].flags & flags) && bgsum_backed(st, &st->bgs[i]))
            total += st->bgs[i].len / COW_BLOCK_SIZE;
    return free_of(st, flags) * 4 > total;
}

static void take(cow_store *st, uint64_t bytenr, uint64_t n)
{
    struct bgroup *g = bg_of(st, bytenr);
    uint64_t i0 = (bytenr - g->start) / COW_BLOCK_SIZE;
    for (uint64_t i = 0; i < n; i++) {
        bit_set(g->bitmap, i0 + i);
        bit_set(g->pbitmap, i0 + i);
    }
    bgsum_nfree_add(st, g, -(int64_t)(n));
    g->pused += n;
    bgsum_used_add(st, g, (int64_t)(n * COW_BLOCK_SIZE));
    g->dirty = 1;
    xop_add(st, SHARED_JOP_ALLOC, bytenr, n * COW_BLOCK_SIZE);
}

/*
 * Tree blocks come from a chunk of contiguous free blocks reserved for the
 * running transaction and handed out in order, so that a commit writes its
 * tree blocks in one or two runs: on the benchmark disk ten scattered 4 KiB
 * writes make the commit's flush about twice as slow as one contiguous
 * write of the same blocks.  The unused rest is released after the commit.
 */
static int alloc_meta_block(cow_store *st, uint64_t *bytenr, uint64_t *got)
{
    static const uint64_t sizes[] = {64, 16}, small_sizes[] = {4, 1};
    int small = small_container(st);
    const uint64_t *sz = small ? small_sizes : sizes;
    if (small)
        st->meta_cursor = 0; /* first fit: the file stays short */
    if (st->mchunk_next >= st->mchunk_end) {
        const uint64_t M = COW_BG_METADATA;
        if (!roomy(st, M) && !find_run(st, M, st->meta_cursor, sz[1], sz[1], bytenr, got) &&
            !st->alloc_soft_end && !retype_empty(st, M, 0)) {
            /* no room to keep tree blocks together: grow first (not while
             * a balance runs, which is there to shrink the file: shorter
             * runs, or single blocks, below) */
            int rc = alloc_add_group(st, M);
            if (rc && rc != COW_ENOSPC)
                return rc;
        }
        /* every size where allocation prefers to be first, then past it;
         * while a balance runs, any run inside the file (single blocks)
         * comes before a group past its end: the room relocate_group
         * counted is single blocks inside the file, and a chunk past its
         * end grew the file it was there to cut (close gave back nothing
         * after 12,000 small transactions: 48.8 MiB for unix's 20.5) */
        for (size_t i = 0; i < 4; i++) {
            uint64_t at, n;
            int balancing = i == 2 && st->alloc_soft_end;
            int where = i < 2 ? RUN_PREFERRED : balancing ? RUN_INSIDE : RUN_ANYWHERE;
            if (find_run_in(st, M, st->meta_cursor, sz[i % 2], balancing ? 1 : sz[i % 2], where,
                            &at, &n)) {
                int rc = alloc_back(st, at + n * COW_BLOCK_SIZE);
                if (rc)
                    return rc;
                struct bgroup *g = bg_of(st, at);
                uint64_t i0 = (at - g->start) / COW_BLOCK_SIZE;
                for (uint64_t k = 0; k < n; k++) {
                    bit_set(g->bitmap, i0 + k);
                    bit_set(g->pbitmap, i0 + k);
                }
                bgsum_nfree_add(st, g, -(int64_t)(n));
                g->pused += n;
                st->mchunk_next = at;
                st->mchunk_end = at + n * COW_BLOCK_SIZE;
                st->meta_cursor = st->mchunk_end;
                break;
            }
        }
    }
    if (st->mchunk_next < st->mchunk_end) {
        struct bgroup *g = bg_of(st, st->mchunk_next);
        *bytenr = st->mchunk_next;
        *got = 1;
        st->mchunk_next += COW_BLOCK_SIZE;
        bgsum_used_add(st, g, (int64_t)(COW_BLOCK_SIZE));
        g->dirty = 1;
        xop_add(st, SHARED_JOP_ALLOC, *bytenr, COW_BLOCK_SIZE);
        return COW_OK;
    }
    return alloc_blocks_any(st, COW_BG_METADATA, 1, &st->meta_cursor, bytenr, got);
}

int alloc_contig_meta_below(cow_store *st, uint64_t n, uint64_t below, uint64_t *bytenr)
{
    lk_assert_held(&st->lock);
    uint64_t got, end = below;
    if (st->file_bytes && st->file_bytes < end)
        end = st->file_bytes; /* never grows the file */
    if (!find_run(st, COW_BG_METADATA, 0, n, n, bytenr, &got) || got < n ||
        *bytenr + n * COW_BLOCK_SIZE > end)
        return cow_set_error(COW_ENOSPC, "no run of %llu free metadata blocks below %llu",
                             (unsigned long long)n, (unsigned long long)end);
    take(st, *bytenr, n);
    return COW_OK;
}

int alloc_contig_meta(cow_store *st, uint64_t n, uint64_t *bytenr)
{
    lk_assert_held(&st->lock);
    uint64_t got;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (find_run(st, COW_BG_METADATA, 0, n, n, bytenr, &got)) {
            int rc = alloc_back(st, *bytenr + n * COW_BLOCK_SIZE);
            if (rc)
                return rc;
            take(st, *bytenr, n);
            return COW_OK;
        }
        if (retype_empty(st, COW_BG_METADATA, 0))
            continue;
        int rc = alloc_add_group(st, COW_BG_METADATA);
        if (rc)
            return rc;
    }
    return cow_set_error(COW_ENOSPC, "no run of %llu free metadata blocks",
                         (unsigned long long)n);
}

void alloc_retype_for_data(cow_store *st, uint64_t bytenr)
{
    lk_assert_held(&st->lock);
    struct bgroup *g = bg_of(st, bytenr);
    /* an empty group of another type was retyped at run time (retype_empty)
     * without a commit: it serves data again here */
    if (g && !(g->flags & COW_BG_DATA) && g->start != 0 && !g->nremap && g->used == 0)
        set_type(st, g, COW_BG_DATA);
}

int alloc_claim_data(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    struct bgroup *g = bg_of(st, bytenr);
    uint64_t end;
    alloc_retype_for_data(st, bytenr);
    if (!g || bytenr % COW_BLOCK_SIZE || len % COW_BLOCK_SIZE || len == 0 ||
        range_end(bytenr, len, &end) || end > g->start + g->len || !(g->flags & COW_BG_DATA))
        return COW_CORRUPT("log record points at [%llu, +%llu), not inside one data block group",
                           (unsigned long long)bytenr, (unsigned long long)len);
    uint64_t i0 = (bytenr - g->start) / COW_BLOCK_SIZE;
    int rc = st->nheld ? alloc_held_claim(st, bytenr, len) : COW_OK;
    if (rc)
        return rc;
    for (uint64_t i = 0; i < len / COW_BLOCK_SIZE; i++)
        if (busy(g, i0 + i))
            return COW_CORRUPT("log record points at block %llu, which is in use",
                               (unsigned long long)(bytenr + i * COW_BLOCK_SIZE));
    take(st, bytenr, len / COW_BLOCK_SIZE);
    return COW_OK;
}

int alloc_is_used(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    struct bgroup *g = bg_of(st, bytenr);
    uint64_t end;
    if (!g || range_end(bytenr, len, &end) || end > g->start + g->len)
        return 0;
    uint64_t i0 = (bytenr - g->start) / COW_BLOCK_SIZE;
    for (uint64_t i = 0; i < len / COW_BLOCK_SIZE; i++)
        if (!bit_get(g->bitmap, i0 + i))
            return 0;
    return 1;
}

int alloc_is_free(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    struct bgroup *g = bg_of(st, bytenr);
    uint64_t end;
    if (!g || range_end(bytenr, len, &end) || end > g->start + g->len)
        return 0;
    uint64_t i0 = (bytenr - g->start) / COW_BLOCK_SIZE;
    for (uint64_t i = 0; i < len / COW_BLOCK_SIZE; i++)
        if (busy(g, i0 + i))
            return 0;
    return 1;
}

void alloc_release_chunk(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (st->mchunk_next < st->mchunk_end) {
        struct bgroup *g = bg_of(st, st->mchunk_next);
        uint64_t i0 = (st->mchunk_next - g->start) / COW_BLOCK_SIZE;
        uint64_t n = (st->mchunk_end - st->mchunk_next) / COW_BLOCK_SIZE;
        for (uint64_t k = 0; k < n; k++) {
            bit_clear(g->bitmap, i0 + k);
            bit_clear(g->pbitmap, i0 + k);
        }
        bgsum_nfree_add(st, g, (int64_t)(n));
        g->pused -= n;
        g->maxrun = g->len / COW_BLOCK_SIZE;
    }
    if (st->mchunk_end)
        st->meta_cursor = st->mchunk_next; /* the next chunk follows the used part */
    st->mchunk_next = st->mchunk_end = 0;
}

int alloc_blocks(cow_store *st, uint64_t want, int meta, uint64_t *bytenr, uint64_t *got)
{
    lk_assert_held(&st->lock);
    if (small_container(st))
        st->data_cursor = 0; /* first fit: the file stays short */
    if (meta)
        return alloc_meta_block(st, bytenr, got);
    return alloc_blocks_any(st, COW_BG_DATA, want, &st->data_cursor, bytenr, got);
}

static int alloc_blocks_any(cow_store *st, uint64_t flags, uint64_t want, uint64_t *cursor,
                            uint64_t *bytenr, uint64_t *got)
{
    uint64_t blocks = st->bg_size / COW_BLOCK_SIZE;
    if (want == 0)
        want = 1;
    if (want > blocks)
        want = blocks;
    uint64_t minrun = want < 32 ? want : 32;
    /* first fit (a small container) looks for the whole run first: a
     * large write is not cut at the first short hole */
    if (small_container(st) && want > minrun)
        minrun = want;
    for (int attempt = 0; attempt < 3; attempt++) {
        int ok = find_run(st, flags, *cursor, want, minrun, bytenr, got);
        if (!ok && attempt == 0 && !roomy(st, flags) &&
            (retype_empty(st, flags, 0) || alloc_add_group(st, flags) == COW_OK))
            continue;
        if (ok || find_run(st, flags, 0, want, 1, bytenr, got)) {
            int rc = alloc_back(st, *bytenr + *got * COW_BLOCK_SIZE);
            if (rc)
                return rc;
            take(st, *bytenr, *got);
            *cursor = *bytenr + *got * COW_BLOCK_SIZE;
            return COW_OK;
        }
        int rc = alloc_add_group(st, flags);
        if (rc)
            return rc;
    }
    return cow_set_error(COW_ENOSPC, "no free space after growing the container");
}

/* Free blocks of backed groups whose type is exactly FLAGS. */
static uint64_t free_exact(cow_store *st, uint64_t flags)
{
    return bgsum_free(st, flags);
}

int alloc_reserve(cow_store *st, uint64_t data, uint64_t meta)
{
    lk_assert_held(&st->lock);
    /* Space is reserved when the file covers it: groups past the file's
     * end (relocation and close cut it) are covered again first.  A mixed
     * group's free blocks serve data or metadata, not both: each side
     * takes what its own groups lack from it.  The metadata chunk's
     * unused rest counts as free metadata. */
    for (;;) {
        uint64_t d = free_exact(st, COW_BG_DATA), m = free_exact(st, COW_BG_METADATA);
        uint64_t x = free_exact(st, COW_BG_MIXED);
        m += (st->mchunk_end - st->mchunk_next) / COW_BLOCK_SIZE;
        uint64_t dshort = data > d ? data - d : 0, mshort = meta > m ? meta - m : 0;
        if (dshort + mshort <= x)
            return COW_OK;
        uint64_t want = dshort > x ? COW_BG_DATA
                        : mshort > x ? COW_BG_METADATA
                        : dshort >= mshort ? COW_BG_DATA : COW_BG_METADATA;
        /* an empty group of the other type, if that type has a group to
         * spare (never back and forth) */
        uint64_t gb = st->bg_size / COW_BLOCK_SIZE;
        int rc = want == COW_BG_DATA ? (m >= meta + gb &&
                                        retype_empty_from(st, want, 1, COW_BG_METADATA))
                                     : (d >= data + gb &&
                                        retype_empty_from(st, want, 1, COW_BG_DATA));
        if (rc == 0)
            rc = back_next_group(st, want);
        if (rc == 0)
            rc = alloc_add_group(st, want);
        if (rc < 0)
            return rc;
    }
}

int alloc_space_pressure(cow_store *st)
{
    lk_assert_held(&st->lock);
    /* pinned, and about to be: the running transaction's references
     * dropped (refs.c applies them at its commit) */
    uint64_t freed = st->pinned_bytes;
    for (size_t i = 0; i < st->ndrefs; i++)
        if (st->drefs[i].delta < 0)
            freed += st->drefs[i].len;
    return freed >= COW_PRESSURE_MIN_BYTES && freed >= st->total_bytes / 8;
}

int alloc_free(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    struct bgroup *g = bg_of(st, bytenr);
    uint64_t end;
    if (!g || range_end(bytenr, len, &end) || end > g->start + g->len || len > g->used)
        return COW_CORRUPT("freeing [%llu, +%llu) outside its block group",
                           (unsigned long long)bytenr, (unsigned long long)len);
    if (vec_reserve(st->pinned, st->cpinned, st->npinned + 1))
        return cow_set_error(COW_ENOMEM, "out of memory");
    st->pinned[st->npinned].bytenr = bytenr;
    st->pinned[st->npinned].bytes = len;
    st->npinned++;
    st->pinned_bytes += len;
    bgsum_used_add(st, g, -(int64_t)(len));
    g->dirty = 1;
    xop_add(st, SHARED_JOP_FREE, bytenr, len);
    return COW_OK;
}

void alloc_unalloc(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    struct bgroup *g = bg_of(st, bytenr);
    uint64_t i0 = (bytenr - g->start) / COW_BLOCK_SIZE;
    for (uint64_t i = 0; i < len / COW_BLOCK_SIZE; i++) {
        bit_clear(g->bitmap, i0 + i);
        bit_clear(g->pbitmap, i0 + i);
    }
    bgsum_nfree_add(st, g, (int64_t)(len / COW_BLOCK_SIZE));
    g->pused -= len / COW_BLOCK_SIZE;
    g->maxrun = g->len / COW_BLOCK_SIZE;
    bgsum_used_add(st, g, -(int64_t)(len));
    g->dirty = 1;
    xop_add(st, SHARED_JOP_UNALLOC, bytenr, len);
}

static void phys_clear(cow_store *st, uint64_t bytenr, uint64_t len);

/* Makes the logical runs V[0..N) free (cleared in the logical bitmap,
 * dropped from the block cache). */
static void release_logical(cow_store *st, const struct byte_run *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct bgroup *g = bg_of(st, v[k].bytenr);
        uint64_t i0 = (v[k].bytenr - g->start) / COW_BLOCK_SIZE;
        uint64_t nb = v[k].bytes / COW_BLOCK_SIZE;
        for (uint64_t i = 0; i < nb; i++) {
            bit_clear(g->bitmap, i0 + i);
            if (!bit_get(g->pbitmap, i0 + i))
                bgsum_nfree_add(st, g, 1);
            cache_drop(&st->cache, v[k].bytenr + i * COW_BLOCK_SIZE);
        }
        g->maxrun = g->len / COW_BLOCK_SIZE;
    }
}

/* ---- space this process's reads in flight may still read ---- */

/* Makes [bytenr, +bytes) free (in the physical map if PHYS, else the
 * logical one), or, while reads of this process run with store->lock
 * released (alloc_reader_begin), keeps it set until they have ended: a
 * read resolved its blocks before this run became free and may read
 * them yet.  With no memory to keep it, it is freed at once (such a
 * read then fails its checksum check rather than return reused bytes). */
void alloc_release_run(cow_store *st, uint64_t bytenr, uint64_t bytes, int phys)
{
#ifndef COW_BREAK_READ_UNPINNED
    if (st->readers &&
        vec_reserve(st->rdheld, st->crdheld, st->nrdheld + 1) == 0) {
        st->rdheld[st->nrdheld++] = (struct held_run){bytenr, bytes, st->rd_next, phys};
        return;
    }
#else
    /* BROKEN ON PURPOSE (make race-proof): space becomes free while a read
     * that resolved it runs with store->lock released */
#endif
    if (phys) {
        phys_clear(st, bytenr, bytes);
    } else {
        struct byte_run r = {bytenr, bytes};
        release_logical(st, &r, 1);
    }
}

void alloc_reader_begin(cow_store *st, struct cow_reader *rd)
{
    lk_assert_held(&st->lock);
    rd->ticket = st->rd_next++;
    rd->next = NULL;
    rd->prev = st->readers_last;
    if (rd->prev)
        rd->prev->next = rd;
    else
        st->readers = rd;
    st->readers_last = rd;
}

void alloc_reader_end(cow_store *st, struct cow_reader *rd)
{
    lk_assert_held(&st->lock);
    if (rd->prev)
        rd->prev->next = rd->next;
    else
        st->readers = rd->next;
    if (rd->next)
        rd->next->prev = rd->prev;
    else
        st->readers_last = rd->prev;
    rd->prev = rd->next = NULL;
    /* what no reader left can read: kept by readers older than its
     * ticket only (the list is in ticket order) */
    uint64_t oldest = st->readers ? st->readers->ticket : UINT64_MAX;
    size_t k = 0;
    for (; k < st->nrdheld && st->rdheld[k].gen <= oldest; k++) {
        const struct held_run *h = &st->rdheld[k];
        if (h->phys) {
            phys_clear(st, h->bytenr, h->bytes);
        } else {
            struct byte_run r = {h->bytenr, h->bytes};
            release_logical(st, &r, 1);
        }
    }
    if (k) {
        memmove(st->rdheld, st->rdheld + k, (st->nrdheld - k) * sizeof *st->rdheld);
        st->nrdheld -= k;
    }
}

void alloc_record_ops(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (!st->shared)
        return;
    (void)shared_lock(st->shared); /* a dead holder changed nothing here */
    if (st->xops_complex) {
        shared_journal_invalidate(st->shared);
    } else {
        for (size_t k = 0; k < st->nxops; k++) {
            shared_journal_append(st->shared, st->transid, st->xops[k].op, st->xops[k].bytenr,
                                  st->xops[k].bytes);
            COW_INJECT("alloc:record_ops"); /* tests: a death halfway */
        }
    }
    shared_unlock(st->shared);
    st->nxops = 0;
    st->xops_complex = 0;
}

/* runs_carve() for the held runs of kind PHYS. */
static uint64_t carve_held(cow_store *st, int phys, uint64_t b, uint64_t len)
{
    uint64_t got = 0;
    for (size_t k = 0; k < st->nheld; k++) {
        if (st->held[k].phys != phys)
            continue;
        /* room for a tail first, if the cut falls inside this run */
        if (st->held[k].bytenr < b && b + len < st->held[k].bytenr + st->held[k].bytes &&
            vec_reserve(st->held, st->cheld, st->nheld + 1))
            return UINT64_MAX;
        struct held_run *r = &st->held[k];
        uint64_t ts, tb;
        got += runs_cut(&r->bytenr, &r->bytes, b, len, &ts, &tb);
        if (tb)
            st->held[st->nheld++] = (struct held_run){ts, tb, r->gen, r->phys};
        else if (r->bytes == 0)
            st->held[k--] = st->held[--st->nheld];
    }
    return got;
}

/* [B, +LEN), which this process's map (logical with PHYS 0, physical
 * with 1) has taken, was freed by it (its pinned, cooling or held runs of
 * that kind) and allocated since by another owner: it leaves those runs,
 * so that nothing releases it later.  COW_OK; 1 if some of it is in none
 * of them (the map does not fit the journal); COW_ENOMEM. */
static int reused_by_other(cow_store *st, int phys, uint64_t b, uint64_t len)
{
    uint64_t got = 0, r;
    if ((r = phys ? runs_carve(&st->ppinned, &st->nppinned, &st->cppinned, b, len)
                  : runs_carve(&st->pinned, &st->npinned, &st->cpinned, b, len)) == UINT64_MAX)
        goto nomem;
    got += r;
    if ((r = phys ? runs_carve(&st->pcooling, &st->npcooling, &st->cpcooling, b, len)
                  : runs_carve(&st->cooling, &st->ncooling, &st->ccooling, b, len)) ==
        UINT64_MAX)
        goto nomem;
    got += r;
    if ((r = carve_held(st, phys, b, len)) == UINT64_MAX)
        goto nomem;
    got += r;
    return got >= len ? COW_OK : 1;
nomem:
    return cow_set_error(COW_ENOMEM, "out of memory");
}

/* shared_journal_read()'s callback: one entry applied (alloc_apply_journal). */
static int apply_jop(void *arg, uint64_t gen, unsigned op, uint64_t start, uint64_t len)
{
    cow_store *st = arg;
    if (op == SHARED_JOP_GROUP) { /* the next group, of type LEN */
        size_t n = st->nbgs;
        if (start != (uint64_t)n * st->bg_size ||
            (len != COW_BG_DATA && len != COW_BG_METADATA))
            return 1;
        int rc = add_groups_mem(st, start + st->bg_size);
        if (rc)
            return rc;
        st->bgs[n].flags = len;
        bgsum_stale(st);
        return COW_OK;
    }
    struct bgroup *g = bg_of(st, start);
    if (op == SHARED_JOP_TYPE) {
        if (!g || g->start != start ||
            (len != COW_BG_DATA && len != COW_BG_METADATA && len != COW_BG_MIXED))
            return 1;
        g->flags = len;
        bgsum_stale(st);
        g->maxrun = g->len / COW_BLOCK_SIZE;
        return COW_OK;
    }
    uint64_t end;
    if (!g || len == 0 || start % COW_BLOCK_SIZE || len % COW_BLOCK_SIZE ||
        range_end(start, len, &end) || end > g->start + g->len)
        return 1; /* not of this map's groups */
    uint64_t i0 = (start - g->start) / COW_BLOCK_SIZE, nb = len / COW_BLOCK_SIZE;
    g->maxrun = g->len / COW_BLOCK_SIZE;
    switch (op) {
    case SHARED_JOP_ALLOC:
        bgsum_used_add(st, g, (int64_t)(len));
#ifdef COW_BREAK_XPROC_NO_ALLOCS
        return COW_OK; /* make race-proof: the other owner's allocations not applied */
#endif
        for (uint64_t i = 0; i < nb; i++) {
            uint64_t b = start + i * COW_BLOCK_SIZE;
            int lg = bit_get(g->bitmap, i0 + i), ph = bit_get(g->pbitmap, i0 + i);
            /* taken in this map already: one of its own frees (of that
             * map), which another owner reused */
            int rc = lg ? reused_by_other(st, 0, b, COW_BLOCK_SIZE) : COW_OK;
            if (!rc && ph)
                rc = reused_by_other(st, 1, b, COW_BLOCK_SIZE);
            if (rc)
                return rc;
            if (!lg && !ph)
                bgsum_nfree_add(st, g, -1);
            if (!ph)
                g->pused++;
            bit_set(g->bitmap, i0 + i);
            bit_set(g->pbitmap, i0 + i);
        }
        return COW_OK;
    case SHARED_JOP_UNALLOC:
        if (g->used < len)
            return 1;
        bgsum_used_add(st, g, -(int64_t)(len));
        for (uint64_t i = 0; i < nb; i++) {
            if (!bit_get(g->bitmap, i0 + i) || !bit_get(g->pbitmap, i0 + i))
                return 1;
            bit_clear(g->bitmap, i0 + i);
            bit_clear(g->pbitmap, i0 + i);
            g->pused--;
            bgsum_nfree_add(st, g, 1);
        }
        return COW_OK;
    case SHARED_JOP_FREE:
    case SHARED_JOP_PFREE: {
        int phys = op == SHARED_JOP_PFREE;
        if (!phys) {
            if (g->used < len)
                return 1;
            bgsum_used_add(st, g, -(int64_t)(len));
        }
        for (uint64_t i = 0; i < nb; i++)
            if (!bit_get(phys ? g->pbitmap : g->bitmap, i0 + i))
                return 1;
        /* the blocks stay taken until every reader moved past GEN (the
         * owner's pinned and ppinned runs, as alloc_hold_shared_frees
         * holds them) */
        if (alloc_held_add(st, start, len, gen, phys))
            return cow_set_error(COW_ENOMEM, "out of memory");
        return COW_OK;
    }
    default:
        return 1;
    }
}

/* What this process's pinned, cooling and held runs have at or past
 * END (the file's end), which another owner cut off the file after
 * releasing it, is released: nothing can read it, and the map must not
 * reach past the file (a superblock's device_bytes comes from it). */
static int drop_past(cow_store *st, uint64_t end)
{
    struct {
        struct byte_run **v;
        size_t *n, *c;
        int phys;
    } lists[] = {
        {&st->pinned, &st->npinned, &st->cpinned, 0},
        {&st->cooling, &st->ncooling, &st->ccooling, 0},
        {&st->ppinned, &st->nppinned, &st->cppinned, 1},
        {&st->pcooling, &st->npcooling, &st->cpcooling, 1},
    };
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
        for (size_t k = 0; k < *lists[l].n; k++) {
            struct byte_run r = (*lists[l].v)[k];
            if (r.bytenr + r.bytes <= end)
                continue;
            if (r.bytenr < end) {
                r.bytes -= end - r.bytenr;
                r.bytenr = end;
            }
            if (lists[l].phys)
                phys_clear(st, r.bytenr, r.bytes);
            else
                release_logical(st, &r, 1);
            if (runs_carve(lists[l].v, lists[l].n, lists[l].c, r.bytenr, r.bytes) == UINT64_MAX)
                return cow_set_error(COW_ENOMEM, "out of memory");
            k = (size_t)-1; /* the list changed: look again */
        }
    for (size_t k = 0; k < st->nheld; k++) {
        struct held_run h = st->held[k];
        if (h.bytenr + h.bytes <= end)
            continue;
        struct byte_run r = {h.bytenr < end ? end : h.bytenr,
                             h.bytenr < end ? h.bytes - (end - h.bytenr) : h.bytes};
        if (h.phys)
            phys_clear(st, r.bytenr, r.bytes);
        else
            release_logical(st, &r, 1);
        if (carve_held(st, h.phys, r.bytenr, r.bytes) == UINT64_MAX)
            return cow_set_error(COW_ENOMEM, "out of memory");
        k = (size_t)-1;
    }
    return COW_OK;
}

int alloc_apply_journal(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (!st->shared || !st->xbasis_gen || st->mchunk_end)
        return 1;
    int rc = shared_journal_read(st->shared, st->xbasis_idx, apply_jop, st);
    if (rc)
        return rc;
    /* the groups added since are all there */
    if ((uint64_t)st->nbgs * st->bg_size != st->loaded_total_bytes)
        return 1;
    /* the journal's record of what the owners since used adds up */
    uint64_t used = 0;
    for (size_t i = 0; i < st->nbgs; i++)
        used += st->bgs[i].used;
    if (used != st->loaded_bytes_used)
        return 1;
    if (st->file_bytes && (rc = drop_past(st, st->file_bytes)) != COW_OK)
        return rc;
    if (st->file_bytes && alloc_device_bytes(st) > st->file_bytes)
        return 1; /* something else of the map is past the file */
    st->npinned_remapped = st->npinned_recorded = st->npinned;
    st->nppinned_recorded = st->nppinned;
    st->nxops = 0;
    st->xops_complex = 0;
    return COW_OK;
}

void alloc_unpin_all(cow_store *st)
{
    lk_assert_held(&st->lock);
    /* Every pinned run went through remaptree_commit_frees (commit.c),
     * which said where it is stored (ppinned); a run it did not see (none
     * should exist) is stored at its own address. */
    for (size_t k = st->npinned_remapped; k < st->npinned; k++)
        alloc_phys_pin(st, st->pinned[k].bytenr, st->pinned[k].bytes);
    /* What the commit before this one freed is free now; what this one
     * freed cools until the next flushed commit: the commit before the
     * newest stays whole on the device (first-fit allocation would
     * otherwise reuse its blocks at once). */
    if (st->shared || st->dev->readers_oldest) {
        /* readers in other processes or on other clients may still read
         * what cooled: held until they all read this generation or a
         * later one */
        alloc_hold_cooled(st);
    } else {
        for (size_t k = 0; k < st->ncooling; k++)
            alloc_release_run(st, st->cooling[k].bytenr, st->cooling[k].bytes, 0);
        for (size_t k = 0; k < st->npcooling; k++)
            alloc_release_run(st, st->pcooling[k].bytenr, st->pcooling[k].bytes, 1);
    }
    st->ncooling = st->npcooling = 0;
    if (runs_append(&st->cooling, &st->ncooling, &st->ccooling, st->pinned, st->npinned) ||
        runs_append(&st->pcooling, &st->npcooling, &st->cpcooling, st->ppinned, st->nppinned)) {
        /* no memory to keep them cooling: free them now (still safe:
         * this commit is flushed) */
        for (size_t k = 0; k < st->npinned; k++)
            alloc_release_run(st, st->pinned[k].bytenr, st->pinned[k].bytes, 0);
        for (size_t k = 0; k < st->nppinned; k++)
            alloc_release_run(st, st->ppinned[k].bytenr, st->ppinned[k].bytes, 1);
        st->ncooling = st->npcooling = 0;
    }
    st->npinned = 0;
    st->pinned_bytes = 0;
    st->npinned_remapped = 0;
    st->nppinned = 0;
    st->npinned_recorded = st->nppinned_recorded = 0;
}

/* ---- physical space (relocation) ---- */

int alloc_phys_set(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    xop_complex(st); /* a remap target (relocation, or the load) */
    struct bgroup *g = bg_of(st, bytenr);
    uint64_t end;
    if (!g || bytenr % COW_BLOCK_SIZE || len % COW_BLOCK_SIZE || len == 0 ||
        range_end(bytenr, len, &end) || end > g->start + g->len)
        return COW_CORRUPT("remap target [%llu, +%llu) not inside one block group",
                           (unsigned long long)bytenr, (unsigned long long)len);
    uint64_t i0 = (bytenr - g->start) / COW_BLOCK_SIZE;
    for (uint64_t i = 0; i < len / COW_BLOCK_SIZE; i++)
        if (bit_get(g->pbitmap, i0 + i))
            return COW_CORRUPT("remap target block %llu is stored twice",
                               (unsigned long long)(bytenr + i * COW_BLOCK_SIZE));
    for (uint64_t i = 0; i < len / COW_BLOCK_SIZE; i++) {
        if (!bit_get(g->bitmap, i0 + i))
            bgsum_nfree_add(st, g, -1);
        bit_set(g->pbitmap, i0 + i);
    }
    g->pused += len / COW_BLOCK_SIZE;
    return COW_OK;
}

/* Clears the physical bits of [BYTENR, +LEN) (what is set of it). */
static void phys_clear(cow_store *st, uint64_t bytenr, uint64_t len)
{
    struct bgroup *g = bg_of(st, bytenr);
    if (!g)
        return;
    uint64_t i0 = (bytenr - g->start) / COW_BLOCK_SIZE;
    for (uint64_t i = 0; i < len / COW_BLOCK_SIZE && i0 + i < g->len / COW_BLOCK_SIZE; i++) {
        if (!bit_get(g->pbitmap, i0 + i))
            continue;
        bit_clear(g->pbitmap, i0 + i);
        g->pused--;
        if (!bit_get(g->bitmap, i0 + i))
            bgsum_nfree_add(st, g, 1);
    }
    g->maxrun = g->len / COW_BLOCK_SIZE;
}

void alloc_phys_clear(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    xop_complex(st); /* relocation's own use */
    phys_clear(st, bytenr, len);
}

int alloc_phys_pin(cow_store *st, uint64_t bytenr, uint64_t len)
{
    lk_assert_held(&st->lock);
    if (vec_reserve(st->ppinned, st->cppinned, st->nppinned + 1))
        return cow_set_error(COW_ENOMEM, "out of memory");
    st->ppinned[st->nppinned].bytenr = bytenr;
    st->ppinned[st->nppinned].bytes = len;
    st->nppinned++;
    xop_add(st, SHARED_JOP_PFREE, bytenr, len);
    return COW_OK;
}

int alloc_phys_target(cow_store *st, uint64_t want, uint64_t limit, uint64_t keep_meta,
                      uint64_t *bytenr, uint64_t *got)
{
    lk_assert_held(&st->lock);
    /* Pass 0 leaves alone every block a tree block could take (free in
     * both bitmaps of a metadata group); pass 1 takes those too, while
     * more than KEEP_META blocks tree blocks can take stay.  Lowest
     * first in each.  The relocation's commits need the room its check
     * counted (relocate_group): targets that took it made them add a
     * group to the file. */
    for (int pass = 0; pass < 2; pass++) {
        uint64_t spare = 0;
        if (pass == 1) {
            uint64_t room = meta_takeable_inside(st, SIZE_MAX, keep_meta + want);
            if (room <= keep_meta)
                break;
            spare = room - keep_meta;
        }
        for (size_t gi = 0; gi < st->nbgs; gi++) {
            struct bgroup *g = &st->bgs[gi];
            if (g->relocating || g->start >= limit || g->pused * COW_BLOCK_SIZE >= g->len)
                continue;
            /* (a mixed group's free blocks serve data as much: group 0
             * of a small container, which relocation fills first) */
            int meta = g->flags == COW_BG_METADATA;
            uint64_t blocks = g->len / COW_BLOCK_SIZE;
            if (g->start + g->len > limit)
                blocks = (limit - g->start) / COW_BLOCK_SIZE;
            for (uint64_t i = 0; i < blocks;) {
                if ((i & 7) == 0 && i + 8 <= blocks && g->pbitmap[i >> 3] == 0xff) {
                    i += 8;
                    continue;
                }
                if (bit_get(g->pbitmap, i) || (pass == 0 && meta && !busy(g, i))) {
                    i++;
                    continue;
                }
                uint64_t n = 0, room_taken = 0;
                while (i + n < blocks && n < want && !bit_get(g->pbitmap, i + n)) {
                    int room = meta && !busy(g, i + n);
                    if (room && (pass == 0 || room_taken == spare))
                        break;
                    room_taken += room;
                    n++;
                }
                *bytenr = g->start + i * COW_BLOCK_SIZE;
                *got = n;
                return alloc_phys_set(st, *bytenr, n * COW_BLOCK_SIZE);
            }
        }
    }
    return cow_set_error(COW_ENOSPC, "no free space below %llu bytes to relocate into",
                         (unsigned long long)limit);
}

uint64_t alloc_phys_free_below(cow_store *st, uint64_t limit)
{
    lk_assert_held(&st->lock);
    uint64_t n = 0;
    for (size_t gi = 0; gi < st->nbgs; gi++) {
        struct bgroup *g = &st->bgs[gi];
        if (g->relocating || g->start >= limit)
            continue;
        if (g->start + g->len <= limit) {
            n += g->len / COW_BLOCK_SIZE - g->pused;
            continue;
        }
        for (uint64_t i = 0; i < (limit - g->start) / COW_BLOCK_SIZE; i++)
            n += !bit_get(g->pbitmap, i);
    }
    return n;
}

uint64_t alloc_physical_blocks(cow_store *st)
{
    lk_assert_held(&st->lock);
    uint64_t n = 0;
    for (size_t gi = 0; gi < st->nbgs; gi++)
        n += st->bgs[gi].pused;
    return n;
}

uint64_t alloc_device_bytes(cow_store *st)
{
    lk_assert_held(&st->lock);
    /* the metadata chunk's unused rest holds nothing the commit names */
    for (size_t gi = st->nbgs; gi-- > 0;) {
        struct bgroup *g = &st->bgs[gi];
        if (!g->pused)
            continue;
        for (uint64_t i = g->len / COW_BLOCK_SIZE; i-- > 0;) {
            uint64_t b = g->start + i * COW_BLOCK_SIZE;
            if (bit_get(g->pbitmap, i) && (b < st->mchunk_next || b >= st->mchunk_end))
                return b + COW_BLOCK_SIZE;
        }
    }
    return 2 * COW_BLOCK_SIZE;
}

int alloc_back(cow_store *st, uint64_t end)
{
    lk_assert_held(&st->lock);
    if (st->file_bytes == 0 || end <= st->file_bytes || st->readonly || !st->dev->grow)
        return COW_OK;
    struct bgroup *g = bg_of(st, end - 1);
    uint64_t to = g ? g->start + g->len : end;
    cow_mutex_lock(&st->resize_lock); /* after a cut in progress (reloc.c) */
    int rc = st->dev->grow(st->dev, to);
    cow_mutex_unlock(&st->resize_lock);
    if (rc)
        return rc;
    st->file_bytes = to;
    bgsum_stale(st);
    return COW_OK;
}
