/*
 * reloc.c - relocation (balance): live blocks move out of block groups,
 * and the container file gives its unused tail back.
 *
 * The mechanism is btrfs's remap tree (the 2025 series "btrfs: remap
 * tree"; docs/DESIGN.md, "Relocation"), not classic relocation
 * (fs/btrfs/relocation.c, which rewrites every pointer to a moved block
 * and needs back references we do not keep): a block keeps its logical
 * address, which every tree, file extent item and checksum still uses,
 * and a remap item says where it is stored now.  Sharing between
 * snapshots, refcounts and every subvolume's usage are unchanged by
 * construction.
 *
 * One group at a time (relocate_group), with store->lock held only to
 * decide and to commit:
 *   1. mark the group relocating (nothing is allocated in it, and no
 *      write in place lands in it: extent_map.c's nocow_writable),
 *      then commit with a flush: what was in flight there is written and
 *      the last commit names everything live in it;
 *   2. copy the remap tree's own blocks there on write (never remapped);
 *   3. choose the live runs: blocks used and stored at their own address,
 *      and remap targets stored in the group; reserve targets for them
 *      lower in the file (alloc_phys_target);
 *   4. release the lock; copy the bytes; retake it and flush the copies;
 *   5. blocks freed meanwhile (pinned, or unpinned by a commit since) are
 *      not remapped and their targets released; the rest get remap items
 *      (remaptree_add/move), their old places pinned;
 *   6. commit with a flush, which frees the group's old places.
 * A crash before 6's flush leaves the old places (the copies are in free
 * space nothing names); after it, the new ones.  (Commits 1 and 6 without
 * a flush, measured: the pinned runs then pile up past
 * COW_MAX_PINNED_RUNS within a few groups, and the commits that flush
 * them, the writers' too, hold the lock longer: a writer's p99 commit
 * during the first balance went from 1.8x to 13-28x with NORMAL.)  No block is reachable
 * from two places with different contents: a block is immutable once
 * written, except in place into a preallocated extent, which 1 forbids
 * while the group is copied (invariant 5).
 *
 * After the groups, a commit records the smaller device_bytes and the
 * file is truncated to it, SHRINK_STEP bytes at a time.
 *
 * Locking: cow_store_balance takes st->balance_lock (one balance at a
 * time), then store->lock, released while copying and while calling the
 * progress callback, and between two steps that each hold it for a
 * flushed commit (yield_lock): after 1, after the copies' flush, between
 * the balance's first commits; after a group (6) and after each cut of
 * the file (a truncate made without the lock) it pauses as long as the
 * whole group or cut took, device time included.  Each pause lasts
 * PACE_FACTOR times that (pace, YIELD_US to YIELD_MAX_US), so relocation
 * holds the lock and loads the device about a fifth of the time, unless
 * the lock was found free the last QUIET_TAKES times it was taken: then
 * nobody is waiting, and it stays released YIELD_US.  A writer on
 * another connection thus waits for one step, not for several, and
 * commits between two (bench/reloclat.c measures it: a
 * cut of a 500 MiB tail in one hold kept it waiting 230 ms; the groups
 * back to back, each a few flushed commits, made its p99 commit 14 times
 * that without relocation).  What a step decided under the lock the next
 * one finds again, so the lock may go between any two.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commit.h"
#include "inject.h"
#include "inplace.h"
#include "lockdep.h"
#include "xproc.h"
#include "reloc.h"
#include "remap.h"
#include "remaptree.h"
#include "store.h"
#include "store_int.h"
#include "vec.h"

#define BLK COW_BLOCK_SIZE
#define LOCK(st) reloc_lock(st)
#define UNLOCK(st) cow_mutex_unlock(&(st)->lock)
#define COPY_CHUNK (256u << 10)
/* Tree blocks counted for copying a group's remap tree blocks out of it
 * (remaptree_cow_in), besides its commits' (blocks). */
#define RELOC_REMAP_BLOCKS 16u
/* The file is cut right after the last block it holds (bytes). */
#define SHRINK_ALIGN 4096u
/* At most this much of the file is cut per hold of store->lock (bytes):
 * ftruncate frees the file system's extents as it goes, about 0.4 ms a
 * MiB on the benchmark machine (ext4), and a cut of a 500 MiB tail in one
 * hold kept a writer on another connection waiting 230 ms. */
#define SHRINK_STEP (16u << 20)
/* How long relocation lets go of store->lock between two of its steps
 * (microseconds): long enough for a thread waiting on the lock to be
 * woken and take it (a mutex is not fair: unlocking and locking again at
 * once would usually take it straight back). */
#define YIELD_US 200
/* ... and at most this long (microseconds) at a time. */
#define YIELD_MAX_US 20000
/* While others wait for store->lock, relocation lets go of it this many
 * times as long as it held it (so it holds it a fifth of the time): a
 * writer committing back to back then waits for one of relocation's holds
 * (a flushed commit, a few ms) on fewer than 1% of its commits, which
 * keeps its p99 within 2x of its time without relocation (measured: with
 * a factor of 1, the first balance of a churned container made a
 * writer's p99 commit 8x to 15x). */
#define PACE_FACTOR 4u
/* Taking the lock took longer than this (nanoseconds): another thread held
 * it, so others are working on the store. */
#define CONTENDED_NS 20000u
/* After this many takes in a row that found the lock free, nobody else is
 * working on the store (a balance at close, cowctl balance): relocation
 * lets go of the lock for YIELD_US only until a take finds it held. */
#define QUIET_TAKES 16u

/* When this thread last took store->lock in this file (cow_mono_ns), and
 * how many takes in a row found it free. */
static __thread uint64_t locked_at;
static __thread unsigned quiet_takes;

/* Takes store->lock and notes when (locked_at) and whether it had to wait
 * (quiet_takes), for pace(). */
static void reloc_lock(cow_store *st)
{
    uint64_t t0 = cow_mono_ns();
    cow_mutex_lock(&st->lock);
    locked_at = cow_mono_ns();
    if (locked_at - t0 > CONTENDED_NS)
        quiet_takes = 0;
    else if (quiet_takes < QUIET_TAKES)
        quiet_takes++;
}

/* A run to move: [logical, +len) stored at [from, +len) now, to go to
 * [to, +len).  logical == from for a block stored at its own address. */
struct move {
    uint64_t logical, from, to, len;
    int is_target; /* already a remap target: moved, not added */
    int drop;      /* data no file extent item maps: dropped, not copied */
};

struct moves {
    struct move *v;
    size_t n, cap;
};

static int moves_push(struct moves *m, uint64_t logical, uint64_t from, uint64_t len,
                      int is_target, int drop)
{
    if (vec_reserve(m->v, m->cap, m->n + 1))
        return cow_set_error(COW_ENOMEM, "out of memory");
    m->v[m->n++] = (struct move){logical, from, 0, len, is_target, drop};
    return COW_OK;
}

/* ---- which data blocks some file maps ---- */

/* For group G, one bit per block: DATA, the block lies in a data extent;
 * REF, some EXTENT_DATA item of some tree maps it.  A data block no item
 * maps (the "bookend" of an extent partly overwritten) is never read
 * again: nothing can come to map it (items are only copied, never made to
 * point into an extent anew), so relocation drops it instead of copying
 * it. */
struct refmap {
    uint64_t start, len; /* the range it covers (bytes) */
    uint8_t *data, *ref;
};

static void set_bits(const struct refmap *rm, uint8_t *bm, uint64_t start, uint64_t len)
{
    uint64_t a = start < rm->start ? rm->start : start, e = start + len;
    if (e > rm->start + rm->len)
        e = rm->start + rm->len;
    for (uint64_t b = a; b < e; b += BLK) {
        uint64_t i = (b - rm->start) / BLK;
        bm[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
}

static int data_cb(cow_store *st, void *arg, struct eb *e)
{
    (void)st;
    struct refmap *rm = arg;
    const uint8_t *b = e->data;
    if (tb_level(b) != 0)
        return COW_OK;
    for (unsigned i = 0; i < tb_nritems(b); i++) {
        struct cow_key k;
        key_get(&k, leaf_item(b, i));
        if (k.type == COW_EXTENT_ITEM && k.objectid < rm->start + rm->len &&
            k.objectid + k.offset > rm->start)
            set_bits(rm, rm->data, k.objectid, k.offset);
    }
    return COW_OK;
}

static int ref_cb(cow_store *st, void *arg, struct eb *e)
{
    (void)st;
    struct refmap *rm = arg;
    const uint8_t *b = e->data;
    if (tb_level(b) != 0)
        return COW_OK;
    for (unsigned i = 0; i < tb_nritems(b); i++) {
        struct cow_key k;
        key_get(&k, leaf_item(b, i));
        if (k.type != COW_EXTENT_DATA || leaf_data_size(b, i) != FE_ITEM_SIZE)
            continue;
        const uint8_t *d = b + leaf_data_off(b, i);
        uint64_t disk = get64(d + FE_DISK_BYTENR);
        if (disk == 0 || disk >= rm->start + rm->len ||
            disk + get64(d + FE_DISK_NUM_BYTES) <= rm->start)
            continue;
        set_bits(rm, rm->ref, disk + get64(d + FE_EXTENT_OFFSET), get64(d + FE_NUM_BYTES));
    }
    return COW_OK;
}

/* Fills RM for [START, +LEN) (bytes) from the extent tree and every
 * subvolume tree (the running transaction's state, dirty blocks
 * included).  Lock held. */
static int refmap_build(cow_store *st, uint64_t start, uint64_t len, struct refmap *rm)
{
    size_t n = (size_t)(len / BLK + 7) / 8;
    rm->start = start;
    rm->len = len;
    rm->data = calloc(n, 1);
    rm->ref = calloc(n, 1);
    if (!rm->data || !rm->ref)
        return cow_set_error(COW_ENOMEM, "out of memory");
    int rc = bt_walk_blocks(st, &st->extent_tree, data_cb, rm);
    if (!rc && st->fs_tree.bytenr)
        rc = bt_walk_blocks(st, &st->fs_tree, ref_cb, rm);
    for (struct cow_subvol *sv = st->subvols; sv && !rc; sv = sv->next)
        if (sv->root.bytenr)
            rc = bt_walk_blocks(st, &sv->root, ref_cb, rm);
    return rc;
}

static int droppable(const struct refmap *rm, uint64_t i)
{
    return ((rm->data[i >> 3] >> (i & 7)) & 1) && !((rm->ref[i >> 3] >> (i & 7)) & 1);
}

uint64_t reloc_remapped_bytes(cow_store *st)
{
    lk_assert_held(&st->lock);
    uint64_t n = 0;
    for (size_t i = 0; i < st->nremap; i++)
        n += st->remap[i].len;
    return n;
}

uint64_t reloc_slack_bytes(cow_store *st)
{
    lk_assert_held(&st->lock);
    uint64_t size = st->file_bytes;
    if (!size && st->dev->size(st->dev, &size))
        return 0;
    uint64_t phys = alloc_physical_blocks(st) * BLK;
    return size > phys ? size - phys : 0;
}

static int group_has_log_area(cow_store *st, const struct bgroup *g)
{
    for (int a = 0; a < COW_SB_COPIES && st->log_blocks; a++) {
        uint64_t s0 = st->log_area[a], s1 = s0 + (uint64_t)st->log_blocks * BLK;
        if (s0 < g->start + g->len && s1 > g->start)
            return 1;
    }
    return 0;
}

/* Marks in BM (one bit per block of G) the blocks of G that were freed
 * and are not allocatable yet (pinned by the running transaction, or
 * cooling after the last flushed commit). */
static void mark_runs(const struct bgroup *g, uint8_t *bm, const struct byte_run *v, size_t n);
static void pinned_in(cow_store *st, const struct bgroup *g, uint8_t *bm)
{
    memset(bm, 0, (size_t)(g->len / BLK + 7) / 8);
    mark_runs(g, bm, st->pinned, st->npinned);
    mark_runs(g, bm, st->cooling, st->ncooling);
    /* held for other processes' readers (alloc.c): freed, set in the map
     * but used by nothing */
    for (size_t k = 0; k < st->nheld; k++)
        if (!st->held[k].phys) {
            struct byte_run r = {st->held[k].bytenr, st->held[k].bytes};
            mark_runs(g, bm, &r, 1);
        }
    /* and, the same, for this process's reads in flight (alloc.c
     * alloc_reader_begin) */
    for (size_t k = 0; k < st->nrdheld; k++)
        if (!st->rdheld[k].phys) {
            struct byte_run r = {st->rdheld[k].bytenr, st->rdheld[k].bytes};
            mark_runs(g, bm, &r, 1);
        }
}

static void mark_runs(const struct bgroup *g, uint8_t *bm, const struct byte_run *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint64_t a = v[k].bytenr, e = a + v[k].bytes;
        if (e <= g->start || a >= g->start + g->len)
            continue;
        if (a < g->start)
            a = g->start;
        if (e > g->start + g->len)
            e = g->start + g->len;
        for (uint64_t b = a; b < e; b += BLK) {
            uint64_t i = (b - g->start) / BLK;
            bm[i >> 3] |= (uint8_t)(1u << (i & 7));
        }
    }
}

/* Sleeps as long as store->lock was held since it was last taken here
 * (YIELD_US to YIELD_MAX_US), or YIELD_US when the last QUIET_TAKES takes
 * found it free.  Lock not held. */
static void pace(uint64_t held_ns)
{
    uint64_t us = quiet_takes >= QUIET_TAKES ? 0 : held_ns / 1000 * PACE_FACTOR;
    if (us < YIELD_US)
        us = YIELD_US;
    if (us > YIELD_MAX_US)
        us = YIELD_MAX_US;
    struct timespec ts = {0, (long)us * 1000L};
    nanosleep(&ts, NULL);
}

/* Lets go of store->lock between two steps of a balance, for as long as
 * it was held (pace), so that a writer waiting for it commits between
 * them rather than after both, and commits as often as relocation does
 * at least.  Everything a step decided under the lock is found again by
 * the next one (the callers say how).  Lock held; held again on return. */
static void yield_lock(cow_store *st)
{
    uint64_t held = cow_mono_ns() - locked_at;
    UNLOCK(st);
    pace(held);
    LOCK(st);
}

static int bm_get(const uint8_t *bm, uint64_t i)
{
    return (bm[i >> 3] >> (i & 7)) & 1;
}

/*
 * Bookends dropped where they lie (docs/DESIGN.md, "Relocation"): every
 * block that a data extent holds but no file extent item of any tree maps
 * (a page overwritten since, its extent kept whole for the rest), stored
 * at its own address, gets a remap item "not stored" and its place pinned
 * (free after the next flushed commits), without a copy or a relocating
 * group: nothing reads such a block or can come to map it again (items
 * are only copied), and no write lands there in place (that needs a
 * mapping).  Relocation drops them only in the groups it relocates, and
 * it picks groups by physical use, which bookends count in: a table's
 * pages updated after a bulk load kept 45 MiB of them (bench updates,
 * 131 MiB for unix's 82).  Without DROP, only counts them.  *DROPPED:
 * bytes.  Lock held, as the owner to drop.  Errors: COW_ENOMEM, the tree
 * walks', txn_begin_change's, remaptree_add's.
 */
static int unmapped_runs(cow_store *st, int drop, uint64_t *dropped)
{
    *dropped = 0;
    uint64_t end = (uint64_t)st->nbgs * st->bg_size;
    struct refmap rm = {0, 0, NULL, NULL};
    uint8_t *pin = malloc((size_t)(st->bg_size / BLK + 7) / 8);
    int rc = !pin ? cow_set_error(COW_ENOMEM, "out of memory") : drop ? txn_begin_change(st) : 0;
    if (!rc)
        rc = refmap_build(st, 0, end, &rm);
    /* (remaptree_add may add a group: st->bgs moves, and past END there
     * is nothing to drop) */
    for (size_t gi = 0; gi < st->nbgs && !rc && st->bgs[gi].start < end; gi++) {
        struct bgroup g = st->bgs[gi];
        if (g.relocating)
            continue;
        pinned_in(st, &g, pin);
        uint64_t nb = g.len / BLK;
        for (uint64_t i = 0; i < nb && !rc;) {
            uint64_t n = 0;
            while (i + n < nb) {
                uint64_t b = g.start + (i + n) * BLK, phys, run;
                if (!droppable(&rm, b / BLK) || !alloc_is_used(st, b, BLK) || bm_get(pin, i + n))
                    break;
                remap_translate(st, b, BLK, &phys, &run);
                if (phys != b)
                    break;
                n++;
            }
            if (!n) {
                i++;
                continue;
            }
            rc = drop ? remaptree_add(st, g.start + i * BLK, n * BLK, 0) : COW_OK;
            if (!rc)
                *dropped += n * BLK;
            i += n;
        }
    }
    if (rc && drop && *dropped)
        rc = txn_abort(st, rc);
    free(pin);
    free(rm.data);
    free(rm.ref);
    return rc;
}

int reloc_unmapped_bytes(cow_store *st, uint64_t *bytes)
{
    lk_assert_held(&st->lock);
    return unmapped_runs(st, 0, bytes);
}

/* Step 3: the live runs of G and their targets, which leave KEEP_META
 * blocks a tree block could take (alloc_phys_target).  Lock held. */
static int choose(cow_store *st, struct bgroup *g, uint64_t keep_meta, struct moves *m)
{
    uint64_t nb = g->len / BLK;
    uint8_t *pin = malloc((size_t)(nb + 7) / 8);
    struct refmap rm = {0, 0, NULL, NULL};
    if (!pin)
        return cow_set_error(COW_ENOMEM, "out of memory");
    pinned_in(st, g, pin);
    int rc = refmap_build(st, g->start, g->len, &rm);
    /* blocks used here and stored here: copied, or dropped when they are
     * data no file maps */
    for (uint64_t i = 0; i < nb && !rc;) {
        uint64_t b = g->start + i * BLK, phys, run;
        if (!alloc_is_used(st, b, BLK) || bm_get(pin, i)) {
            i++;
            continue;
        }
        remap_translate(st, b, BLK, &phys, &run);
        if (phys != b) {
            i++;
            continue;
        }
        int drop = droppable(&rm, i);
        uint64_t n = 1;
        while (i + n < nb && alloc_is_used(st, b + n * BLK, BLK) && !bm_get(pin, i + n) &&
               droppable(&rm, i + n) == drop) {
            remap_translate(st, b + n * BLK, BLK, &phys, &run);
            if (phys != b + n * BLK)
                break;
            n++;
        }
        rc = moves_push(m, b, b, n * BLK, 0, drop);
        i += n;
    }
    free(pin);
    free(rm.data);
    free(rm.ref);
    /* remap targets stored here */
    for (size_t k = 0; k < st->nremap && !rc; k++) {
        const struct remap_run *r = &st->remap[k];
        if (r->phys >= g->start && r->phys < g->start + g->len)
            rc = moves_push(m, r->logical, r->phys, r->len, 1, 0);
    }
    /* targets, lowest free blocks below the group, split as found */
    for (size_t k = 0; k < m->n && !rc; k++) {
        uint64_t at, got;
        if (m->v[k].drop)
            continue;
        rc = alloc_phys_target(st, m->v[k].len / BLK, g->start, keep_meta, &at, &got);
        if (rc)
            break;
        if (got * BLK < m->v[k].len) {
            struct move rest = m->v[k];
            rest.logical += got * BLK;
            rest.from += got * BLK;
            rest.len -= got * BLK;
            m->v[k].len = got * BLK;
            if (vec_reserve(m->v, m->cap, m->n + 1)) {
                alloc_phys_clear(st, at, got * BLK);
                rc = cow_set_error(COW_ENOMEM, "out of memory");
                break;
            }
            memmove(&m->v[k + 2], &m->v[k + 1], (m->n - k - 1) * sizeof *m->v);
            m->v[k + 1] = rest;
            m->n++;
        }
        m->v[k].to = at;
    }
    return rc;
}

/* Releases the targets chosen so far (nothing names them). */
static void release_targets(cow_store *st, struct moves *m)
{
    for (size_t k = 0; k < m->n; k++)
        if (m->v[k].to)
            alloc_phys_clear(st, m->v[k].to, m->v[k].len);
}

/* Step 4: copies every run, lock released, COPY_CHUNK bytes at a time.
 * Each chunk is sent to the medium as soon as it is written, and the one
 * before it waited for (dev->writeback), so that at most two chunks of
 * copies are dirty or in flight at once: a writer's flush meanwhile (an
 * fdatasync writes and waits for the whole file's dirty pages) finds
 * little of relocation's to wait for.  Errors: the device's. */
static int copy(cow_store *st, const struct moves *m, uint8_t *buf)
{
    uint64_t prev_off = 0, prev_len = 0;
    for (size_t k = 0; k < m->n; k++) {
        if (m->v[k].drop)
            continue;
        for (uint64_t off = 0; off < m->v[k].len; off += COPY_CHUNK) {
            size_t n = m->v[k].len - off < COPY_CHUNK ? (size_t)(m->v[k].len - off) : COPY_CHUNK;
            uint64_t to = m->v[k].to + off;
            int rc = st->dev->read(st->dev, buf, n, m->v[k].from + off);
            if (!rc)
                rc = st->dev->write(st->dev, buf, n, to);
            if (rc)
                return rc;
            if (st->dev->writeback) {
                st->dev->writeback(st->dev, to, n, 0);
                if (prev_len)
                    st->dev->writeback(st->dev, prev_off, prev_len, 1);
                prev_off = to;
                prev_len = n;
            }
        }
    }
    return COW_OK;
}

/* Whether block B of a run still holds what was copied: used, not freed
 * since (pinned, or unpinned by a commit), and stored at FROM. */
static int still_there(cow_store *st, const uint8_t *pin, const struct bgroup *g, uint64_t b,
                       uint64_t from)
{
    uint64_t phys, run;
    if (!alloc_is_used(st, b, BLK))
        return 0;
    if (b >= g->start && b < g->start + g->len && bm_get(pin, (b - g->start) / BLK))
        return 0;
    remap_translate(st, b, BLK, &phys, &run);
    return phys == from;
}

/* Step 5: remap items for what is still live; targets of the rest freed.
 * Lock held.  Returns the bytes remapped in *moved, dropped in *dropped. */
static int install(cow_store *st, const struct bgroup *gp, struct moves *m, uint64_t *moved,
                   uint64_t *dropped)
{
    /* its bounds only: adding remap items may add a group (st->bgs moves) */
    const struct bgroup gcopy = {.start = gp->start, .len = gp->len};
    const struct bgroup *g = &gcopy;
    uint64_t nb = g->len / BLK;
    uint8_t *pin = malloc((size_t)(nb + 7) / 8);
    if (!pin)
        return cow_set_error(COW_ENOMEM, "out of memory");
    pinned_in(st, g, pin);
    int rc = COW_OK;
    for (size_t k = 0; k < m->n && !rc; k++) {
        struct move *v = &m->v[k];
        for (uint64_t off = 0; off < v->len && !rc;) {
            int live = still_there(st, pin, g, v->logical + off, v->from + off);
            uint64_t n = BLK;
            while (off + n < v->len &&
                   still_there(st, pin, g, v->logical + off + n, v->from + off + n) == live)
                n += BLK;
            if (!live) {
                if (!v->drop)
                    alloc_phys_clear(st, v->to + off, n);
            } else if (v->drop) {
                rc = remaptree_add(st, v->logical + off, n, 0); /* nothing maps it */
                if (rc == COW_OK)
                    *dropped += n;
            } else {
                rc = v->is_target ? remaptree_move(st, v->logical + off, n, v->to + off)
                                  : remaptree_add(st, v->logical + off, n, v->to + off);
                if (rc == COW_OK)
                    *moved += n;
            }
            off += n;
        }
    }
    free(pin);
    return rc;
}

/* Relocates group GI.  *moved: bytes copied and remapped; *dropped_out:
 * bytes dropped (data no file maps).  COW_ENOSPC when the group's blocks
 * do not fit below it (nothing changed). */
static int relocate_group_barred(cow_store *st, size_t gi, uint8_t *buf, uint64_t *moved,
                                 uint64_t *dropped_out)
{
    struct moves m = {NULL, 0, 0};
    uint64_t dropped = 0;
    *dropped_out = 0;
    int rc;
    uint64_t t0 = cow_mono_ns();
    LOCK(st);
    struct bgroup *g = &st->bgs[gi];
    if (st->failed) {
        UNLOCK(st);
        return cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
    }
    if (g->pused == 0) {
        UNLOCK(st);
        return COW_OK;
    }
    /* Its two commits and the remap tree's copies need tree blocks: when
     * the file has no room for them, they would grow it (to the lowest
     * group past its end with room, maybe several groups away), which a
     * balance is there to undo; the group stays. */
    uint64_t meta_want = 2 * (64 + st->ndrefs / 8) + 2 * RELOC_REMAP_BLOCKS;
    if (alloc_meta_room_inside(st, meta_want, gi) < meta_want &&
        (st->npinned || st->ncooling || st->npcooling)) {
        /* what was freed since the last flushed commits may be the room:
         * two flushed commits free it, pinned then cooling */
        for (int i = 0; i < 2 && !st->failed; i++) {
            st->txn_dirty = 1;
            if (commit_transaction(st, 1))
                break;
        }
    }
    if (alloc_meta_room_inside(st, meta_want, gi) < meta_want) {
        UNLOCK(st);
        return cow_set_error(COW_ENOSPC, "no room inside the file for relocating block group "
                                         "%zu's tree blocks", gi);
    }
    if (group_has_log_area(st, g)) {
        /* the log areas move first, by a commit that names new ones */
        rc = log_move_areas(st, g->start);
        if (!rc && !group_has_log_area(st, g)) {
            rc = commit_transaction(st, 1);
            g = &st->bgs[gi]; /* the commit may let go of the lock: groups may have grown */
        }
        if (rc || group_has_log_area(st, g)) {
            UNLOCK(st);
            return rc ? rc : cow_set_error(COW_ENOSPC, "no room below group %zu for the log", gi);
        }
    }
    g->relocating = 1;
    st->meta_cursor = 0; /* tree blocks the commits copy go low */
    rc = commit_transaction(st, 1); /* 1: in flight here is written and named */
    g = &st->bgs[gi];
    if (!rc && (g->pused == 0 || alloc_phys_free_below(st, g->start) < g->pused)) {
        rc = g->pused ? cow_set_error(COW_ENOSPC, "block group %zu does not fit below it", gi)
                      : COW_OK;
        g->relocating = 0;
        UNLOCK(st);
        return rc;
    }
    /* Between 1 and 2 the lock may go: nothing is allocated in the group
     * any more, and 3 finds what was freed meanwhile (pinned_in, or no
     * longer used).  A lack of room below shows in 3 as COW_ENOSPC. */
    if (!rc) {
        yield_lock(st);
        if (st->failed)
            rc = cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
    }
    g = &st->bgs[gi];
    if (!rc)
        rc = remaptree_cow_in(st, g->start, g->len); /* 2 */
    g = &st->bgs[gi]; /* copying the remap tree may add a group */
    if (!rc)
        rc = choose(st, g, meta_want, &m); /* 3 */
    if (rc) {
        release_targets(st, &m);
        g->relocating = 0;
        UNLOCK(st);
        free(m.v);
        return rc;
    }
    UNLOCK(st);
    rc = copy(st, &m, buf); /* 4 */
    COW_INJECT("reloc:copied");
    /* the copies made durable without the lock: a writer's commit does
     * not wait for this flush */
    if (!rc)
        rc = st->dev->flush(st->dev);
    LOCK(st);
    g = &st->bgs[gi];
    if (!rc)
        st->stats.flushes++;
    /* The copies are on the device: the lock may go before 5, which looks
     * again at every block (still_there). */
    if (!rc) {
        yield_lock(st);
        g = &st->bgs[gi];
        if (st->failed)
            rc = cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
    }
    if (!rc)
        rc = install(st, g, &m, moved, &dropped); /* 5 */
    else
        release_targets(st, &m);
    if (!rc)
        rc = commit_transaction(st, 1); /* 6 */
    g = &st->bgs[gi];
    g->relocating = 0;
    if (!rc && (*moved || dropped)) {
        st->stats.reloc_groups++;
        st->stats.reloc_bytes += *moved;
        st->stats.reloc_dropped += dropped;
    }
    *dropped_out = dropped;
    UNLOCK(st);
    free(m.v);
    /* before the next group: as long as this one took (PACE_FACTOR times,
     * with others waiting), its copies and their flush included, which
     * load the device a writer's flush waits on */
    pace(cow_mono_ns() - t0);
    return rc;
}

/* relocate_group_barred(), with the barrier against writes in place by
 * other processes up (inplace.h): the copy (4) must not miss a write that
 * lands in the old place after it read it, as invariant 5 keeps this
 * process's own writes in place out of a relocating group.  The commit
 * that installs the new places (6) is published before it is lowered. */
static int relocate_group(cow_store *st, size_t gi, uint8_t *buf, uint64_t *moved,
                          uint64_t *dropped_out)
{
    inplace_barrier_raise(st);
    int rc = relocate_group_barred(st, gi, buf, moved, dropped_out);
    inplace_barrier_lower(st);
    return rc;
}

/* How far the file may be cut now: what a crash may come back to (the
 * device_bytes of the last flushed commit and of every commit since:
 * cut_floor) and the highest block in use now (written since, pinned or
 * cooling: alloc_device_bytes; so no block of the running transaction, of
 * a log record, or of a commit a crash may go back to lies past it),
 * rounded up to SHRINK_ALIGN, and at most MAX_CUT bytes below SIZE; *MORE
 * = 1 if the file stays longer than that needs.  0: nothing to cut (or
 * no commit loaded or written yet).  The running transaction need not be
 * committed: what it allocates later past the end grows the file again
 * (alloc_back).  Lock held. */
static uint64_t cut_target(cow_store *st, uint64_t size, uint64_t max_cut, int *more)
{
    lk_assert_held(&st->lock);
    *more = 0;
    /* only the owner's state says what the file holds: a process that
     * lost the ownership (at close, say) knows nothing of what the new
     * owner wrote since */
    if (!st->dev->shrink || st->readonly || st->failed || !st->cut_floor ||
        !xproc_may_change(st))
        return 0;
    uint64_t used = alloc_device_bytes(st);
    if (used < st->cut_floor)
        used = st->cut_floor;
    /* the running transaction's metadata chunk hands out blocks later
     * without growing the file (alloc_device_bytes leaves its unused rest
     * out, as a commit's device_bytes may): never cut into it */
    if (st->mchunk_next < st->mchunk_end && used < st->mchunk_end)
        used = st->mchunk_end;
    uint64_t need = (used + SHRINK_ALIGN - 1) / SHRINK_ALIGN * SHRINK_ALIGN;
    if (need >= size)
        return 0;
    if (size - need > max_cut) {
        need = size - max_cut;
        *more = 1;
    }
    return need;
}

#ifdef COW_DEBUG
uint64_t reloc_test_cut_target(cow_store *st, uint64_t size)
{
    int more;
    return cut_target(st, size, UINT64_MAX, &more);
}
#endif

/* The file's size in bytes (st->file_bytes, or the device's).  Lock
 * held.  Errors: the device's (size). */
static int container_size(cow_store *st, uint64_t *size)
{
    if (!st->file_bytes) {
        int rc = st->dev->size(st->dev, &st->file_bytes);
        if (rc)
            return rc;
    }
    *size = st->file_bytes;
    return COW_OK;
}

/* Cuts the file to cut_target (at most MAX_CUT bytes), with store->lock
 * held throughout.  Lock held.  Errors: the device's (size, shrink). */
static int trim(cow_store *st, uint64_t max_cut, int *more)
{
    lk_assert_held(&st->lock);
    uint64_t size;
    int rc = container_size(st, &size);
    uint64_t need = rc ? 0 : cut_target(st, size, max_cut, more);
    if (!need)
        return rc;
    rc = st->dev->shrink(st->dev, need);
    if (!rc)
        st->file_bytes = need;
    return rc;
}

int reloc_trim(cow_store *st)
{
    int more;
    return trim(st, UINT64_MAX, &more);
}

/* As trim, but the cut itself (a truncate of up to MAX_CUT bytes, a few ms
 * on ext4) runs without store->lock, so a writer waits for none of it:
 * st->file_bytes says the new size before the lock goes, and resize_lock,
 * taken first, makes a grow meanwhile (alloc.c) wait for the cut.  Lock
 * held; let go of and held again on return.  Errors: the device's (size,
 * shrink; after a failed cut the size is asked again). */
static int cut_unlocked(cow_store *st, uint64_t max_cut, int *more)
{
    uint64_t size;
    int rc = container_size(st, &size);
    uint64_t need = rc ? 0 : cut_target(st, size, max_cut, more);
    if (!need)
        return rc;
    st->file_bytes = need;
    cow_mutex_lock(&st->resize_lock);
    UNLOCK(st);
    rc = st->dev->shrink(st->dev, need);
    cow_mutex_unlock(&st->resize_lock);
    LOCK(st);
    if (rc) {
        st->file_bytes = 0; /* unknown: asked again below */
        (void)container_size(st, &size);
        *more = 0;
    }
    return rc;
}

/* Commits that record the smaller device_bytes (the last one's copy was
 * written while the old places were still pinned), then the file cut to
 * it.  Lock held. */
static int shrink(cow_store *st)
{
    if (!st->dev->shrink || st->readonly)
        return COW_OK;
    uint64_t need = alloc_device_bytes(st);
    if (need + SHRINK_ALIGN > st->file_bytes && need >= st->sb_device_bytes)
        return COW_OK; /* nothing to give back */
    /* up to three flushed commits: the first makes the groups' last
     * commits durable and their old places cool (alloc_unpin_all), the
     * second frees them, the third records the smaller device_bytes;
     * fewer when nothing is pinned or cooling and the last commit already
     * records what the file needs */
    int rc = COW_OK, more = 1;
    for (int i = 0; i < 3 && !rc; i++) {
        if (i) {
            if (!st->npinned && !st->ncooling && !st->npcooling &&
                st->sb_device_bytes <= alloc_device_bytes(st))
                break;
            yield_lock(st);
        }
        st->txn_dirty = 1;
        rc = commit_transaction(st, 1);
    }
    /* then the cut, SHRINK_STEP at a time, each without the lock
     * (cut_unlocked) and decided anew after a pause: what other threads
     * wrote or committed meanwhile, flushed or not, bounds it (cut_target),
     * so nothing needs committing between two */
    uint64_t cut_ns = 0;
    for (int i = 0; !rc && more; i++) {
        if (i) {
            /* as long as the last cut took, its truncate included: a
             * writer's flush meanwhile waits for the file system's
             * journal commit that carries it */
            UNLOCK(st);
            pace(cut_ns);
            LOCK(st);
            if (st->failed || st->readonly)
                break;
        }
        uint64_t t0 = cow_mono_ns();
        rc = cut_unlocked(st, SHRINK_STEP, &more);
        cut_ns = cow_mono_ns() - t0;
    }
    return rc;
}

static int balance(cow_store *st, const struct cow_balance_opts *o,
                   struct cow_balance_result *r)
{
    struct cow_balance_opts def = {COW_BALANCE_DEFAULT_USAGE, 0, NULL, NULL};
    struct cow_balance_result res;
    if (!o)
        o = &def;
    if (!r)
        r = &res;
    memset(r, 0, sizeof *r);
    if (o->usage_pct > 100)
        return cow_set_error(COW_EINVAL, "balance usage %u%%: must be 0 to 100", o->usage_pct);
    uint8_t *buf = malloc(COPY_CHUNK);
    size_t *groups = NULL, ngroups = 0, cgroups = 0;
    if (!buf)
        return cow_set_error(COW_ENOMEM, "out of memory");
    cow_mutex_lock(&st->balance_lock);
    LOCK(st);
    int rc = COW_OK;
    if (st->readonly)
        rc = cow_set_error(COW_EROFS, "the container is open read-only");
    else if (st->failed)
        rc = cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
    else if (!st->file_bytes)
        rc = st->dev->size(st->dev, &st->file_bytes);
    r->container_before = st->file_bytes;
    st->stats.reloc_runs += rc == COW_OK;
    /* bookends dropped where they lie (unmapped_runs), then two flushed
     * commits: what was freed so far (pinned, then cooling) is free, and
     * counts as free below the groups that move */
    uint64_t bookends = 0;
    if (rc == COW_OK)
        rc = unmapped_runs(st, 1, &bookends);
    r->bytes_dropped += bookends;
    for (int i = 0; i < 2 && rc == COW_OK; i++) {
        if (i)
            yield_lock(st);
        st->txn_dirty = 1;
        rc = commit_transaction(st, 1);
    }
    /* and what other clients' readers held (RADOS): a balance asked for
     * may wait longer than a close for the look (a busy cluster took over
     * 1 s: reloc_short_file_stays_short on RADOS under load) */
    if (rc == COW_OK)
        rc = reloc_let_go_held(st, RELOC_BALANCE_LOOK_MS);
    /* From the top of the file down: what moves lower lets the file
     * shrink.  Groups past what the file needs (its blocks, an eighth more
     * and some room) move whatever their usage, into the holes below. */
    uint64_t phys = alloc_physical_blocks(st) * BLK;
    uint64_t need = phys + phys / 8 + (phys < 8 * st->bg_size ? st->bg_size / 8 : st->bg_size);
    /* (the room: a group, or an eighth of one for a container of under
     * eight groups' worth) */
    /* And a group fuller than that, while every group above it with
     * anything in it moves too, when the holes below it can take it and
     * what moves before it (an eighth of a group spare, for the tree
     * blocks the moves write): holes low in the file under full groups
     * at its top are given back only by moving those groups, which their
     * usage alone never picks (speedtest1 in WAL mode left 3 MiB so).
     * FREE_BELOW: physically free blocks in the data groups below GI (a
     * pure metadata group's free blocks are remap targets last, keep_meta). */
    uint64_t free_below = 0, taken = 0;
    int top = 1;
    for (size_t gi = 0; gi < st->nbgs; gi++)
        if (st->bgs[gi].start < st->file_bytes && (st->bgs[gi].flags & COW_BG_DATA))
            free_below += st->bgs[gi].len / BLK - st->bgs[gi].pused;
    for (size_t gi = st->nbgs; gi-- > 1 && rc == COW_OK;) {
        struct bgroup *g = &st->bgs[gi];
        uint64_t blocks = g->len / BLK;
        if (g->start < st->file_bytes && (g->flags & COW_BG_DATA))
            free_below -= blocks - g->pused;
        if (g->pused == 0)
            continue;
        if (group_has_log_area(st, g) && g->start < need) {
            top = 0;
            continue;
        }
        if (g->start < need && g->pused * 100 > o->usage_pct * blocks &&
            !(top && free_below >= taken + g->pused + blocks / 8)) {
            top = 0;
            continue;
        }
        taken += g->pused;
        if (vec_reserve(groups, cgroups, ngroups + 1))
            rc = cow_set_error(COW_ENOMEM, "out of memory");
        else
            groups[ngroups++] = gi;
    }
    r->groups_total = ngroups;
    /* the log areas go low (and small again when the container holds
     * little), by a commit that names the new ones */
    if (rc == COW_OK && st->log_blocks &&
        (st->log_area[0] >= need ||
         st->log_blocks > log_area_blocks(st, 1))) {
        uint64_t old = st->log_area[0];
        rc = log_move_areas(st, old);
        if (rc == COW_OK && st->log_area[0] != old)
            rc = commit_transaction(st, 1);
    }
    /* next fit starts again from the bottom, and prefers what the file
     * will keep: what the balance's own commits allocate goes low, not
     * where the file is being cut */
    st->data_cursor = st->meta_cursor = 0;
    st->alloc_soft_end = need;
    UNLOCK(st);
    for (size_t k = 0; k < ngroups && rc == COW_OK; k++) {
        uint64_t moved = 0, dropped = 0;
        rc = relocate_group(st, groups[k], buf, &moved, &dropped);
        if (rc == COW_ENOSPC)
            rc = COW_OK; /* it stays where it is; lower groups may still fit */
        r->groups_done++;
        r->groups_relocated += moved > 0 || dropped > 0;
        r->bytes_moved += moved;
        r->bytes_dropped += dropped;
        if (rc == COW_OK && o->progress && o->progress(o->arg, r))
            break;
        if (o->max_bytes && r->bytes_moved >= o->max_bytes)
            break;
    }
    LOCK(st);
    if (rc == COW_OK)
        rc = shrink(st);
    st->alloc_soft_end = 0;
    r->container_after = st->file_bytes;
    UNLOCK(st);
    cow_mutex_unlock(&st->balance_lock);
    free(groups);
    free(buf);
    return rc;
}

/* reloc_let_go_held's polls for a look at other clients' pins: 2 ms
 * apart (a look is one round trip). */
#define RELOC_LOOK_POLL_MS 2
#define RELOC_LOOK_POLL_NS (RELOC_LOOK_POLL_MS * 1000000L)

int reloc_let_go_held(cow_store *st, unsigned max_ms)
{
    lk_assert_held(&st->lock);
    if (!st->dev->readers_oldest || !st->nheld)
        return COW_OK;
    uint64_t want = st->durable_gen;
    for (unsigned i = 0;
         i < max_ms / RELOC_LOOK_POLL_MS && st->dev->readers_oldest(st->dev, want) < want; i++) {
        UNLOCK(st);
        struct timespec ts = {0, RELOC_LOOK_POLL_NS};
        nanosleep(&ts, NULL);
        LOCK(st);
    }
    st->txn_dirty = 1;
    return commit_transaction(st, 1);
}

int cow_store_balance(cow_store *st, const struct cow_balance_opts *o,
                      struct cow_balance_result *r)
{
    /* moving blocks changes the container: this process owns it first */
    int rc = xproc_enter(st);
    if (rc)
        return rc;
    rc = balance(st, o, r);
    xproc_leave(st);
    return rc;
}
