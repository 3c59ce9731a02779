/*
 * inplace.c - writes of a nodatacow file's bytes in place by a process that
 * does not own the container; see inplace.h for why they are safe, and
 * docs/DESIGN.md "Writes in place without the ownership" (invariant 14).
 *
 * Calls down only: the extent map (em_inplace_target), the remap table,
 * the page cache (pc_drop_clean), the shared state and the device.
 */
#include "inplace.h"

#include "extent_map.h"
#include "inject.h"
#include "lockdep.h"
#include "remap.h"
#include "shared.h"

#define LOCK(st) cow_mutex_lock(&(st)->lock)
#define UNLOCK(st) cow_mutex_unlock(&(st)->lock)

#define INPLACE_RUNS 16 /* physical runs one write may cover */

struct inplace_run {
    uint64_t phys; /* container byte */
    uint64_t len;  /* bytes */
};

/* Maps [OFF, OFF + LEN) of IN to physical runs V (at most INPLACE_RUNS),
 * each in an extent IN may overwrite in place (in a commit no newer than
 * DURABLE) and inside the file.  *N is the count, 0 if some byte may not
 * be written in place.  Lock held. */
static int map_runs(cow_store *st, struct cow_inode *in, uint64_t off, uint64_t len,
                    uint64_t durable, struct inplace_run *v, size_t *n)
{
    size_t k = 0;
    *n = 0;
    for (uint64_t at = off; at < off + len;) {
        uint64_t disk, run;
        int rc = em_inplace_target(st, in, at, off + len - at, durable, &disk, &run);
        if (rc)
            return rc;
        if (run == 0)
            return COW_OK;
        while (run) {
            uint64_t phys, prun;
            remap_translate(st, disk, run, &phys, &prun);
            if (phys == 0 || k == INPLACE_RUNS || phys + prun > st->file_bytes)
                return COW_OK;
            if (k && v[k - 1].phys + v[k - 1].len == phys) {
                v[k - 1].len += prun;
            } else {
                v[k].phys = phys;
                v[k].len = prun;
                k++;
            }
            disk += prun;
            run -= prun;
            at += prun;
        }
    }
    *n = k;
    return COW_OK;
}

int inplace_possible(cow_store *st)
{
    return st->shared && shared_nprocs_hint(st->shared) > 1;
}

int inplace_write(cow_file *f, const void *buf, size_t len, uint64_t off, int *done)
{
    cow_store *st = f->st;
    struct cow_inode *in = f->inode;
    struct inplace_run v[INPLACE_RUNS];
    size_t n = 0;
    int rc = COW_OK;
    *done = 0;
    if (!st->shared || len == 0)
        return COW_OK;
    /* the invalidate lock, as any write of the file's bytes takes it: a
     * truncate or a reload in another thread waits for this one */
    pc_lock_shared(in);
    LOCK(st);
    /* cheap tests first: a read-only or failed store, a file that is not
     * nodatacow or that this write would grow */
    if (st->readonly || st->failed || !(in->flags & COW_INODE_NODATACOW) ||
        (in->root->flags & COW_ROOT_F_SNAPSHOT) || in->orphan || off > in->size ||
        len > in->size - off || in->disk_size < in->size)
        goto out;
    /* The owner too, while others have the container open: written
     * through its page cache, the bytes would reach the device only at
     * the publication, and the others' reads would wait for it (the
     * announcement at xShmBarrier).  Not over its own pages still to be
     * written (dirty, or in flight), which would land after these. */
    int owner = shared_is_owner(st->shared);
    if (owner && (shared_nprocs_hint(st->shared) <= 1 || in->pc.ndirty || in->oes))
        goto out;
    int begun = owner ? shared_inplace_begin_owner(st->shared)
                      : shared_inplace_begin(st->shared, st->seen_seq, st->inplace_epoch);
    if (begun <= 0) {
        *done = begun; /* -1: a reload first (cow_file_write) */
        goto out;
    }
    /* from here until shared_inplace_end, no barrier can be raised past
     * this write: the extents read below stay where they are */
    rc = map_runs(st, in, off, len, owner ? st->durable_gen : shared_durable(st->shared), v, &n);
    if (rc || n == 0) {
        shared_inplace_end(st->shared, 0);
        *done = rc != COW_OK;
        goto out;
    }
    if (owner && in->pc.pages.count)
        pc_drop_clean(st, in); /* its cached copies of these bytes go */
    UNLOCK(st);
    COW_INJECT("inplace:mapped"); /* tests: a barrier raised meanwhile waits */
    const uint8_t *p = buf;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = st->dev->write(st->dev, p, (size_t)v[i].len, v[i].phys);
        p += v[i].len;
    }
    shared_inplace_end(st->shared, 1);
    LOCK(st);
    if (rc == COW_OK) {
        if (owner)
            st->stats.written_in_place += len;
        else
            st->stats.written_foreign += len;
        st->data_unflushed = 1; /* this process's next sync flushes */
        st->inplace_writes++;   /* and a flush in flight does not cover it */
    }
    *done = 1;
out:
    UNLOCK(st);
    pc_unlock(in);
    return rc;
}

void inplace_forget_stale(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (!st->shared)
        return;
    uint64_t seq = shared_inplace_seq(st->shared);
    if (seq == __atomic_load_n(&st->inplace_seen, __ATOMIC_RELAXED))
        return;
    /* after the pages are dropped: a read without store->lock that sees
     * the new value finds none of them (inplace_fresh) */
    for (struct cow_inode *in = st->inodes; in; in = in->next)
        if ((in->flags & COW_INODE_NODATACOW) && in->pc.pages.count)
            pc_drop_clean(st, in);
    __atomic_store_n(&st->inplace_seen, seq, __ATOMIC_RELEASE);
}

int inplace_fresh(cow_store *st)
{
    return !st->shared ||
           shared_inplace_seq(st->shared) == __atomic_load_n(&st->inplace_seen, __ATOMIC_ACQUIRE);
}

void inplace_barrier_raise(cow_store *st)
{
#ifndef COW_BREAK_INPLACE_BARRIER /* make race-proof: no barrier */
    if (st->shared)
        shared_barrier_raise(st->shared);
#else
    (void)st;
#endif
}

void inplace_barrier_lower(cow_store *st)
{
#ifndef COW_BREAK_INPLACE_BARRIER
    if (st->shared)
        shared_barrier_lower(st->shared);
#else
    (void)st;
#endif
}
