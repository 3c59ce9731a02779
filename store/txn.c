/*
 * txn.c - the running transaction: what every layer marks on it, and the
 * flushes that make it and the log durable.
 *
 * The transaction is the set of changes since the last commit: tree
 * blocks copied and changed in memory (btree.c), data written to new
 * extents (ordered.c, extent_map.c), files created and removed (file.c).
 * Whatever changes it calls down here: txn_begin_change before a change (a
 * read-only or stopped store refuses it), txn_note_written for every block
 * written to the device (the list a one-flush commit carries, see
 * super.c), txn_abort when a change to the trees fails halfway (the store
 * stops, as btrfs's btrfs_abort_transaction turns the file system
 * read-only), txn_flush for a flush outside a commit (the log's).  The
 * commit that writes the transaction out is commit.c; it sits above every
 * module that changes the transaction and calls down into each.
 *
 * Failures.  The running transaction holds what every connection wrote and
 * was told succeeded (buffered pages, completed ordered extents, new and
 * truncated files), so a failure never throws it away: a failure in the
 * middle of a tree update, a failed flush, or one while writing the
 * superblock stops the store (COW_EFAILED for every later call): the trees
 * in memory may be half changed and nothing of them is written again.  The
 * container keeps its last commit and log, which hold everything a sync
 * made durable; reopening recovers them.
 *
 * Flushes are numbered as they start (flush_started); flush N makes
 * durable what was written before it started.  txn_flush_wait runs the
 * device flush with store->lock released, so that readers and writers go
 * on during a sync's flush (~150 us with fdatasync), and syncs share
 * flushes (group commit); the durable point (what a later record or
 * superblock may claim, invariant 8) is taken when the flush starts and
 * applied when it completes, unless a newer one was.  Commits wait for a
 * flush in flight before they choose their superblock copy
 * (txn_flush_quiesce).
 *
 * Locking: store->lock held by every caller (asserted); txn_flush_wait
 * and txn_flush_quiesce release it while they wait.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inject.h"
#include "lockdep.h"
#include "shared.h"
#include "store_int.h"
#include "vec.h"

int store_flush(cow_store *st)
{
    lk_assert_held(&st->lock);
    st->stats.flushes++;
    uint64_t n = ++st->flush_started; /* starts after everything written so far */
    int rc = st->dev->flush(st->dev);
    if (rc == COW_OK && n > st->flush_done)
        st->flush_done = n;
    pthread_cond_broadcast(&st->flush_cond);
    return rc;
}

/* What a flush that starts now makes durable (txn_now_durable's values),
 * taken under the lock when it starts; applied when it completes if
 * nothing newer was applied meanwhile (durable_apply). */
struct durable_point {
    int slot;                 /* last_slot */
    uint64_t generation;      /* the last commit */
    uint64_t log_id;          /* ... and its log */
    uint64_t sb_device_bytes;
    uint64_t log_seq;         /* records written */
    uint64_t wlog_notes;      /* blocks noted for the commit list */
    uint64_t inplace_writes;  /* overwrites in place completed */
    uint64_t nodatasum_writes; /* NODATASUM extents written to new space */
    uint64_t n;               /* the flush's number */
};

static void durable_take(cow_store *st, struct durable_point *d)
{
    d->slot = st->last_slot;
    d->generation = st->generation;
    d->log_id = st->log_id;
    d->sb_device_bytes = st->sb_device_bytes;
    d->log_seq = st->log_seq;
    d->wlog_notes = st->wlog_notes;
    d->inplace_writes = st->inplace_writes;
    d->nodatasum_writes = st->nodatasum_writes;
    d->n = st->flush_started;
}

/* Flush D->n completed: what it covered is durable.  Only if no later
 * flush said more already (flush_applied), and only what is still the
 * same: a commit meanwhile (none runs while a flush is in flight,
 * txn_flush_quiesce; checked all the same) leaves everything as it is;
 * a record written meanwhile keeps log_unflushed; a block noted meanwhile
 * keeps the written-block list (listing blocks already durable is
 * harmless, dropping one that is not would make a one-flush commit claim
 * it). */
static void durable_apply(cow_store *st, const struct durable_point *d)
{
    if (d->n < st->flush_applied || d->generation != st->generation || d->log_id != st->log_id ||
        d->slot != st->last_slot)
        return;
    st->flush_applied = d->n;
    st->durable_slot = d->slot;
    st->durable_gen = d->generation;
    if (st->shared && shared_is_owner(st->shared))
        shared_set_durable(st->shared, d->generation); /* inplace.c */
    st->cut_floor = d->sb_device_bytes; /* no crash goes back past it now */
    st->durable_log = st->log_durable = (uint32_t)d->log_seq;
    st->unflushed = 0;
    if (st->log_seq == d->log_seq)
        st->log_unflushed = 0;
    if (st->wlog_notes == d->wlog_notes)
        txn_wlog_reset(st);
    /* data written in place or to a NODATASUM extent meanwhile is not
     * covered (invariant 13) */
    if (st->inplace_writes == d->inplace_writes)
        st->data_unflushed = 0;
    if (st->nodatasum_writes == d->nodatasum_writes)
        st->nodatasum_unflushed = 0;
}

/* After a flush: the last commit and every block written so far are
 * durable. */
void txn_now_durable(cow_store *st)
{
    struct durable_point d;
    durable_take(st, &d); /* numbered as the last flush started: the newest */
    durable_apply(st, &d);
}

int txn_flush(cow_store *st)
{
    lk_assert_held(&st->lock);
    int rc = store_flush(st);
    if (rc) {
        __atomic_store_n(&st->failed, 1, __ATOMIC_RELEASE); /* what reached the device is unknown */
        return rc;
    }
    txn_now_durable(st);
    return COW_OK;
}

uint64_t txn_flush_need(cow_store *st)
{
    lk_assert_held(&st->lock);
    return st->flush_started + 1;
}

int txn_flush_wait(cow_store *st, uint64_t need)
{
    lk_assert_held(&st->lock);
    while (st->flush_done < need) {
        if (st->failed)
            return cow_set_error(COW_EIO_FLUSH, "a flush of the device failed (the store "
                                                "stopped: reopen the container)");
        if (st->flush_running) {
            /* a flush in flight: it covers NEED if it started after the
             * write (its number is at least NEED), else the next one does */
            COW_INJECT("txn:flush_wait"); /* tests: counts the waits */
            cow_cond_wait(&st->flush_cond, &st->lock);
            continue;
        }
        struct durable_point d;
        st->flush_started++;
        durable_take(st, &d);
        st->flush_running = 1;
        st->stats.flushes++;
        cow_mutex_unlock(&st->lock);
        COW_INJECT("txn:flush_unlocked"); /* tests: a flush in flight */
        int rc = st->dev->flush(st->dev);
        cow_mutex_lock(&st->lock);
        st->flush_running = 0;
        pthread_cond_broadcast(&st->flush_cond);
        if (rc) {
            /* fsyncgate: what reached the device is unknown */
            __atomic_store_n(&st->failed, 1, __ATOMIC_RELEASE);
            pthread_cond_broadcast(&st->oe_cond);
            return rc;
        }
        if (d.n > st->flush_done)
            st->flush_done = d.n;
        durable_apply(st, &d);
    }
    return COW_OK;
}

void txn_flush_quiesce(cow_store *st)
{
    lk_assert_held(&st->lock);
    while (st->flush_running)
        cow_cond_wait(&st->flush_cond, &st->lock);
}

uint64_t cow_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int txn_begin_change(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (st->readonly && !st->replaying)
        return cow_set_error(COW_EROFS, "the store is open read-only");
    if (st->failed)
        return cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
    if (st->transid > COW_MAX_GENERATION)
        return cow_set_error(COW_ENOSPC, "generation %llu: the container has made its last "
                                        "commit (generations are 48 bits)",
                             (unsigned long long)st->transid);
    return COW_OK;
}

void txn_wlog_reset(cow_store *st)
{
    st->nwruns = 0;
    st->nwcrcs = 0;
    st->wlog_overflow = 0;
    st->npinned_dropped = st->npinned; /* nothing listed to drop them from */
}

void txn_note_written(cow_store *st, uint64_t bytenr, uint64_t n, const uint32_t *crcs)
{
    lk_assert_held(&st->lock);
    st->wlog_notes++;
    if (st->wlog_overflow)
        return;
    if (st->nwcrcs + n > COW_ONE_FLUSH_MAX_BLOCKS) {
        st->wlog_overflow = 1;
        return;
    }
    struct block_run *last = st->nwruns ? &st->wruns[st->nwruns - 1] : NULL;
    if (last && last->bytenr + last->nblocks * COW_BLOCK_SIZE == bytenr) {
        last->nblocks += n;
    } else {
        if (vec_reserve(st->wruns, st->cwruns, st->nwruns + 1)) {
            st->wlog_overflow = 1;
            return;
        }
        st->wruns[st->nwruns].bytenr = bytenr;
        st->wruns[st->nwruns].nblocks = n;
        st->nwruns++;
    }
    if (vec_reserve(st->wcrcs, st->cwcrcs, st->nwcrcs + n)) {
        st->wlog_overflow = 1;
        return;
    }
    memcpy(st->wcrcs + st->nwcrcs, crcs, n * sizeof *crcs);
    st->nwcrcs += n;
}

static int cmp_byte_run(const void *a, const void *b)
{
    const struct byte_run *x = a, *y = b;
    return x->bytenr < y->bytenr ? -1 : x->bytenr > y->bytenr;
}

/*
 * Drops from the commit list every block this transaction also freed (it is
 * pinned now and free after the commit, so a later transaction may
 * overwrite it; listing it would make this durable commit look torn).  The
 * list then holds only blocks the new state references, which stay intact
 * until a newer commit is durable.  Only the runs pinned since the last
 * call are looked at: the list held none of the earlier ones after that
 * call, and a pinned block is not handed out again before a flush
 * (invariant 7), which empties the list, so none came into it since.
 * (Commits without flush, one per transaction while other processes read,
 * pile up to COW_MAX_PINNED_RUNS pinned runs; sorting them all at each
 * commit cost a writer a tenth of its time.)
 */
void txn_wlog_drop_freed(cow_store *st)
{
    if (st->npinned_dropped > st->npinned)
        st->npinned_dropped = 0; /* the pinned runs were let go of */
    size_t first = st->npinned_dropped, npin = st->npinned - first;
    if (st->wlog_overflow || !npin || !st->nwruns) {
        st->npinned_dropped = st->npinned;
        return;
    }
    struct byte_run *pin = malloc(npin * sizeof *pin);
    struct block_run *runs = malloc(st->nwruns * sizeof *runs);
    uint32_t *crcs = malloc(st->nwcrcs * sizeof *crcs);
    if (!pin || !runs || !crcs) {
        st->wlog_overflow = 1; /* fall back to two flushes */
        goto out;
    }
    memcpy(pin, st->pinned + first, npin * sizeof *pin);
    qsort(pin, npin, sizeof *pin, cmp_byte_run);
    memcpy(runs, st->wruns, st->nwruns * sizeof *runs);
    memcpy(crcs, st->wcrcs, st->nwcrcs * sizeof *crcs);
    size_t nruns = st->nwruns, k = 0;
    st->nwruns = st->nwcrcs = 0;
    for (size_t r = 0; r < nruns; r++) {
        for (uint64_t b = 0; b < runs[r].nblocks; b++, k++) {
            uint64_t at = runs[r].bytenr + b * COW_BLOCK_SIZE;
            size_t lo = 0, hi = npin;
            while (lo < hi) { /* last pinned run starting at or before AT */
                size_t mid = (lo + hi) / 2;
                if (pin[mid].bytenr <= at)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo && at < pin[lo - 1].bytenr + pin[lo - 1].bytes)
                continue; /* freed by this transaction */
            txn_note_written(st, at, 1, &crcs[k]);
        }
    }
    st->npinned_dropped = st->npinned;
out:
    free(pin);
    free(runs);
    free(crcs);
}

int txn_abort(cow_store *st, int why)
{
    lk_assert_held(&st->lock);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", cow_store_last_error(st));
    /* No undo: the running transaction holds buffered writes, completed
     * ordered extents and file changes that other handles were told
     * succeeded, and its trees may be half changed.  Reloading the last
     * commit would silently drop all of those; stopping loses nothing the
     * device holds (the last commit and the log), and every handle learns
     * of it. */
    __atomic_store_n(&st->failed, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&st->oe_cond); /* waiters see the stop */
    return cow_set_error(why, "%s (the store stopped: every later change fails; reopen the "
                              "container to recover its last commit and log)", msg);
}

