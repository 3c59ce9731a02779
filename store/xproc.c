/*
 * xproc.c - several processes on one container: ownership, publication
 * and refresh (xproc.h; docs/DESIGN.md, "Several processes").
 */
#include "xproc.h"

#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "format.h"
#include "inject.h"
#include "lockdep.h"
#include "remap.h"
#include "replay.h"
#include "shared.h"
#include "super.h"

#define LOCK(st) cow_mutex_lock(&(st)->lock)
#define UNLOCK(st) cow_mutex_unlock(&(st)->lock)

int xproc_may_change(cow_store *st)
{
    lk_assert_held(&st->lock);
    return !st->shared || shared_is_owner(st->shared);
}

int xproc_alone(cow_store *st)
{
    lk_assert_held(&st->lock);
    return !st->shared || shared_nprocs_hint(st->shared) <= 1;
}

unsigned xproc_processes(cow_store *st)
{
    return st->shared ? shared_nprocs_hint(st->shared) : 1;
}

uint64_t xproc_poll_ns(cow_store *st)
{
    unsigned ms =
        st->shared && shared_nprocs_hint(st->shared) > 1 ? XPROC_POLL_MS : XPROC_IDLE_POLL_MS;
    return (uint64_t)ms * 1000000ull;
}

/* ---- reload ---- */

/* The open inodes, each held (nref) and its invalidate lock taken
 * exclusively, with store->lock held on return: nothing reads or writes a
 * file while its state is replaced (restore holds a tree's files the same
 * way, subvol.c).  *V is malloc'd; *N its length.  Errors: COW_ENOMEM
 * (nothing held, lock not held). */
static int hold_inodes(cow_store *st, struct cow_inode ***vp, size_t *np)
{
    for (;;) {
        LOCK(st);
        size_t n = 0;
        for (struct cow_inode *in = st->inodes; in; in = in->next)
            n++;
        struct cow_inode **v = n ? calloc(n, sizeof *v) : NULL;
        if (n && !v) {
            UNLOCK(st);
            return cow_set_error(COW_ENOMEM, "out of memory");
        }
        n = 0;
        for (struct cow_inode *in = st->inodes; in; in = in->next) {
            in->nref++;
            v[n++] = in;
        }
        UNLOCK(st);
        for (size_t i = 0; i < n; i++)
            pc_lock_excl(v[i]);
        LOCK(st);
        /* a file opened meanwhile is not held: start again */
        size_t now = 0;
        int same = 1;
        for (struct cow_inode *in = st->inodes; in; in = in->next) {
            size_t i = 0;
            while (i < n && v[i] != in)
                i++;
            same &= i < n;
            now++;
        }
        if (same) {
            *vp = v;
            *np = n;
            return COW_OK;
        }
        for (size_t i = 0; i < n; i++)
            v[i]->nref--;
        UNLOCK(st);
        for (size_t i = 0; i < n; i++)
            pc_unlock(v[i]);
        free(v);
        (void)now;
    }
}

static void release_inodes(cow_store *st, struct cow_inode **v, size_t n)
{
    lk_assert_held(&st->lock);
    for (size_t i = 0; i < n; i++)
        v[i]->nref--;
    UNLOCK(st);
    for (size_t i = 0; i < n; i++)
        pc_unlock(v[i]);
    free(v);
}

#ifdef COW_DEBUG
static unsigned long journal_reloads; /* xproc_test_journal_reloads */
unsigned long xproc_test_journal_reloads(void)
{
    return __atomic_load_n(&journal_reloads, __ATOMIC_RELAXED);
}
#endif

/*
 * Replaces what ST has in memory by the last published commit read from
 * the container: the superblock, the roots, the remap table, and every
 * open file (rebound by name, its cached pages dropped); the tree block
 * cache stays (cache.c reads a block again whose generation is not the
 * one its pointer asks for).  OWNER: this process is the owner now; its
 * free space map is brought up to date from the shared allocation
 * journal when it owned before and the journal reaches back (RECOVER, an
 * owner that died, invalidates it), else rebuilt from the extent tree
 * with the pending frees of the shared state kept out of allocation;
 * then the log is replayed (after an owner that died, what it logged and
 * flushed; else nothing).  A view (not OWNER) keeps its map unless FULL
 * asks for one.  ST must have nothing of its own unwritten (a non-owner
 * never has; an owner published before it let go).  Called with no lock
 * held.  Errors: the load's and replay's (the store stops: st->failed).
 */
static int reload_ex(cow_store *st, int owner, int full, int recover)
{
    struct cow_inode **v = NULL;
    size_t n = 0;
    int rc = hold_inodes(st, &v, &n);
    if (rc)
        return rc;
    if (st->failed) {
        release_inodes(st, v, n);
        return cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
    }
    if (st->txn_dirty || st->ndirty || st->noes || st->cache.ndirty) {
        rc = cow_set_error(COW_EFAILED, "the store has unwritten changes but does not own the "
                                        "container (a bug)");
        __atomic_store_n(&st->failed, 1, __ATOMIC_RELEASE);
        release_inodes(st, v, n);
        return rc;
    }
    struct cow_shared *sh = st->shared; /* NULL: a test's handoff (xproc_test_handoff) */
    uint64_t seq = 0, epoch = 0;
    if (sh) {
        (void)shared_lock(sh); /* a holder that died changed nothing we read */
        /* a dead owner may have died with a barrier up (inplace.c) */
        if (recover)
            shared_barrier_reset(sh);
        seq = shared_seq(sh);
        epoch = shared_barrier_epoch(sh);
        /* pinned before anything is read: the owner keeps what this
         * generation reaches (alloc.c release_held) */
        shared_pin(sh, owner ? 0 : shared_generation(sh));
        /* a dead owner's commit may have journalled what it never
         * committed, or committed what it never journalled */
        if (recover)
            shared_journal_invalidate(sh);
    }
    /* The free space map: a process that owned before keeps its own and
     * applies what the owners since journalled (alloc_apply_journal), or
     * rebuilds it from the extent tree, as open does; a view keeps what
     * it has (it allocates nothing) */
    int incr = owner && sh && !recover && st->xbasis_gen;
    int keep = incr || (!owner && !full && st->xbasis_gen);
    if (!keep)
        alloc_destroy(st);
    remap_destroy(st);
    txn_wlog_reset(st); /* blocks written while last owner: another list */
    /* The tree block cache stays: a block at an address another process
     * freed and reused since is found by its generation and read again
     * (cache.c).  Nothing in it is dirty (checked above). */
    int ro = st->readonly;
    if (!owner)
        st->readonly = 1; /* a view: load only, never write */
    st->view_load = (!owner && !full) || incr; /* no free space map built */
    st->keep_alloc = keep;
    /* what the last owner published is whole (commit.c commit_load) */
    st->load_published = sh ? shared_generation(sh) : 0;
    if (!rc)
        rc = commit_load(st);
    if (!rc && incr) {
        int jrc = st->keep_alloc ? alloc_apply_journal(st) : 1;
        if (jrc == 1) {
            /* the journal does not reach back to this map, or does not
             * fit it: the whole map from the extent tree */
            alloc_destroy(st);
            remap_destroy(st);
            st->keep_alloc = 0;
            st->view_load = 0;
            incr = 0;
            rc = commit_load(st);
        } else {
            rc = jrc;
        }
    }
#ifdef COW_DEBUG
    if (!rc && incr)
        __atomic_add_fetch(&journal_reloads, 1, __ATOMIC_RELAXED);
#endif
    st->keep_alloc = 0;
    st->load_published = 0;
    st->view_load = 0;
    /* the journal may have taken pinned runs out of the list (reused by
     * another owner); nothing is listed as written yet */
    st->npinned_dropped = st->npinned;
    /* the superblock and trees are read: the owner's next superblock may
     * be written (commit.c takes the mutex for it) */
    if (sh) {
        COW_INJECT("xproc:reload_locked"); /* tests: a death holding the mutex */
        shared_unlock(sh);
    }
    /* what earlier owners freed that readers may still read stays taken,
     * before the replay below allocates (a map from the journal has it
     * already) */
    if (!rc && owner && !incr)
        rc = alloc_hold_shared_frees(st);
#ifndef COW_BREAK_XPROC_NO_REPLAY
    if (!rc && owner)
        rc = replay_log(st, &st->stats.replayed);
#else
    (void)replay_log; /* make race-proof: a dead owner's log is not replayed */
#endif
    if (!rc && owner && st->txn_dirty)
        rc = commit_transaction(st, 1); /* a dead owner's log, made durable and published */
    st->readonly = ro;
    if (!rc && owner && sh && st->generation != shared_generation(sh)) {
        (void)shared_lock(sh);
        shared_publish(sh, st->generation);
        shared_unlock(sh);
    }
    if (!rc && owner && sh)
        seq = shared_seq(sh);
    for (size_t i = 0; i < n && !rc; i++)
        rc = file_reload_inode(st, v[i]);
    if (rc) {
        __atomic_store_n(&st->failed, 1, __ATOMIC_RELEASE);
    } else {
        st->seen_seq = seq;
        st->inplace_epoch = epoch;
        st->published_gen = st->generation;
        st->stats.reloads++;
        st->view_partial = !owner && !full;
    }
    release_inodes(st, v, n);
    return rc;
}

static int reload(cow_store *st, int owner)
{
    return reload_ex(st, owner, 0, 0);
}

int xproc_full_view(cow_store *st)
{
    if (!st->shared)
        return COW_OK;
    LOCK(st);
    int partial = st->view_partial && !shared_is_owner(st->shared);
    UNLOCK(st);
    return partial ? reload_ex(st, 0, 1, 0) : COW_OK;
}

/* ---- ownership ---- */

/* The container's uuid, from the newest superblock copy that is whole (its
 * checksum matches: both carry the uuid, and a damaged copy must not give
 * the shared state another name), or zeros when neither is (the load says
 * why). */
static void read_uuid(cow_store *st, uint8_t uuid[16])
{
    uint8_t sb[COW_SB_COPIES][COW_BLOCK_SIZE];
    int best = -1;
    memset(uuid, 0, 16);
    for (int i = 0; i < COW_SB_COPIES; i++)
        if (st->dev->read(st->dev, sb[i], COW_BLOCK_SIZE, (uint64_t)i * COW_BLOCK_SIZE) ==
                COW_OK &&
            sb_valid(sb[i]) &&
            (best < 0 || get64(sb[i] + SB_GENERATION) > get64(sb[best] + SB_GENERATION)))
            best = i;
    if (best >= 0)
        memcpy(uuid, sb[best] + SB_UUID, 16);
}

int xproc_attach(cow_store *st, int fd, int *alone)
{
    uint8_t uuid[16];
    *alone = 1;
    read_uuid(st, uuid);
    int rc = shared_open(fd, uuid, &st->shared);
    if (rc)
        return rc;
    *alone = shared_nprocs(st->shared) <= 1;
    if (st->readonly) {
        rc = *alone ? COW_OK : shared_wait_published(st->shared, XPROC_WAIT_MS);
        (void)shared_lock(st->shared);
        shared_pin(st->shared, shared_generation(st->shared)); /* before the load reads */
        shared_unlock(st->shared);
        return rc;
    }
    rc = shared_own(st->shared, XPROC_WAIT_MS);
    if (rc == COW_ERECOVER) {
        /* the load that follows replays the log, as after a crash; what
         * the dead owner journalled may not match what it committed */
        (void)shared_lock(st->shared);
        shared_journal_invalidate(st->shared);
        shared_unlock(st->shared);
        rc = COW_OK;
    }
    return rc;
}

/* shared_watch()'s callback: another process asks this owner to let go
 * or to publish.  The watcher thread does it itself (xproc_yield_locked)
 * rather than wake the committer to do it: one thread woken instead of
 * two, which on a loaded machine is a scheduler's latency less before the
 * asker gets the ownership (a WAL growth waited 3 to 8 ms for it with
 * eight processes on two cores).  When it cannot now (a call between
 * xproc_enter and xproc_leave, which signals the committer when it
 * leaves), the committer is woken as before. */
static void wake_committer(void *arg)
{
    cow_store *st = arg;
    LOCK(st);
    if (!xproc_yield_locked(st))
        pthread_cond_signal(&st->committer_cond);
    UNLOCK(st);
}

void xproc_opened(cow_store *st)
{
    lk_assert_held(&st->lock);
    /* no watcher: the committer's look every XPROC_POLL_MS serves */
    if (!st->readonly)
        (void)shared_watch(st->shared, wake_committer, st);
    (void)shared_lock(st->shared);
    if (shared_is_owner(st->shared) && shared_generation(st->shared) != st->generation)
        shared_publish(st->shared, st->generation);
    st->seen_seq = shared_seq(st->shared);
    st->published_gen = st->generation;
    shared_pin(st->shared, shared_is_owner(st->shared) ? 0 : st->generation);
    shared_unlock(st->shared);
}

void xproc_detach(cow_store *st)
{
    if (!st->shared)
        return;
    shared_unwatch(st->shared); /* before ST goes */
    if (shared_is_owner(st->shared))
        shared_disown(st->shared);
    shared_close(st->shared);
    st->shared = NULL;
}

/*
 * 1 if ST, which has just become the owner, may go on from what it had
 * when it last let go: it was the owner then (its free space map is its
 * own of that generation, st->xbasis_gen), and no process has published
 * anything since (the publication count and generation, and the
 * allocation journal, are as it left them), so no tree, log record,
 * pending free or file changed: only nodatacow files were overwritten in
 * place, whose cached pages it dropped when it let go (invariant 13), and
 * whose data the next sync flushes (st->data_unflushed).  Its pin goes
 * (an owner has none).  Called with no lock held; a reload is needed if 0.
 */
static int same_as_left(cow_store *st)
{
    struct cow_shared *sh = st->shared;
    LOCK(st);
    (void)shared_lock(sh);
    int same = st->xbasis_gen && st->xbasis_gen == st->generation && !st->view_partial &&
               shared_seq(sh) == st->seen_seq && shared_generation(sh) == st->generation &&
               shared_journal_head(sh) == st->xbasis_idx && !st->failed;
    if (same) {
        shared_pin(sh, 0);
        st->inplace_epoch = shared_barrier_epoch(sh);
        st->data_unflushed = 1;
        st->stats.reloads_skipped++;
    }
    shared_unlock(sh);
    UNLOCK(st);
    return same;
}

/* 1 if the ownership may be used without store->lock: the caller counted
 * itself in own_users first (a yield raises disowning first, then looks
 * at the count: either it sees the caller, or the caller sees the flag;
 * docs/DESIGN.md, invariant 17). */
static int owner_settled(cow_store *st)
{
    return !__atomic_load_n(&st->disowning, __ATOMIC_SEQ_CST) &&
           !__atomic_load_n(&st->acquiring, __ATOMIC_SEQ_CST) &&
           !__atomic_load_n(&st->failed, __ATOMIC_ACQUIRE) && shared_is_owner(st->shared);
}

int xproc_enter(cow_store *st)
{
    if (!st->shared)
        return COW_OK;
    /* the owner, with no handoff under way: counted without store->lock
     * (every xWrite of a process alone comes here; threads queued on the
     * lock for it) */
    __atomic_add_fetch(&st->own_users, 1, __ATOMIC_SEQ_CST);
    if (owner_settled(st)) {
        COW_INJECT("xproc:entered"); /* tests: a call inside, without the lock */
        return COW_OK;
    }
    xproc_leave(st);
    LOCK(st);
    for (;;) {
        while (__atomic_load_n(&st->disowning, __ATOMIC_SEQ_CST) ||
               __atomic_load_n(&st->acquiring, __ATOMIC_SEQ_CST))
            cow_cond_wait(&st->own_cond, &st->lock);
        if (st->failed) {
            UNLOCK(st);
            return cow_set_error(COW_EFAILED, "an earlier commit failed; reopen the container");
        }
        if (shared_is_owner(st->shared)) {
            __atomic_add_fetch(&st->own_users, 1, __ATOMIC_SEQ_CST);
            UNLOCK(st);
            return COW_OK;
        }
        __atomic_store_n(&st->acquiring, 1, __ATOMIC_SEQ_CST);
        UNLOCK(st);
        int rc = shared_own(st->shared, XPROC_WAIT_MS);
        int recover = rc == COW_ERECOVER;
        if (recover)
            rc = COW_OK;
        /* What the last owner published (or, dead, left) replaces what
         * this process has, unless this process was that owner and
         * nothing was published since (same_as_left): with nothing
         * published since this process's last load, that load may still
         * have been a view (no flush of the other's commits, no log
         * state), and an owner builds on a load of its own, as open does.
         * (Its one-flush list may name blocks another owner's flush made
         * durable since: harmless.) */
        if (!rc && !recover && same_as_left(st))
            rc = COW_OK; /* what it left is what there is */
        else if (!rc)
            rc = reload_ex(st, 1, 0, recover);
        LOCK(st);
        __atomic_store_n(&st->acquiring, 0, __ATOMIC_SEQ_CST);
        pthread_cond_broadcast(&st->own_cond);
        if (rc) {
            if (shared_is_owner(st->shared))
                shared_disown(st->shared);
            UNLOCK(st);
            return rc;
        }
    }
}

void xproc_leave(cow_store *st)
{
    if (!st->shared)
        return;
    /* without store->lock unless another process waits: the committer,
     * which yields once the count is 0, is woken under it (it looks at
     * the count under the lock before it waits, so the signal is not
     * lost) */
    if (__atomic_sub_fetch(&st->own_users, 1, __ATOMIC_SEQ_CST) == 0 &&
        shared_wanted(st->shared)) {
        LOCK(st);
        pthread_cond_signal(&st->committer_cond);
        UNLOCK(st);
    }
}

/* Writes back and commits without flush what the owner changed; the
 * commit publishes it (commit.c sb_write_published).  store->lock held
 * (let go meanwhile); st->disowning or st->own_users keeps other changes
 * out. */
static int publish_locked(cow_store *st)
{
    lk_assert_held(&st->lock);
    int rc = COW_OK;
    if (st->ndirty) {
        UNLOCK(st);
        rc = file_writeback_all(st);
        LOCK(st);
    }
    if (!rc)
        rc = commit_transaction(st, 0);
    if (!rc && st->shared)
        shared_clear_unpublished(st->shared); /* also when nothing changed */
    return rc;
}

int xproc_yield_locked(cow_store *st)
{
    lk_assert_held(&st->lock);
    if (!st->shared || st->failed || __atomic_load_n(&st->own_users, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&st->disowning, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&st->acquiring, __ATOMIC_SEQ_CST) || !shared_is_owner(st->shared))
        return 0;
    /* a process that waits for a publication only (a reader) gets one;
     * the ownership goes only to a process that asks for it */
    if (!shared_owner_wanted(st->shared) &&
        !(shared_unpublished(st->shared) && shared_wanted(st->shared)))
        return 0;
    /* raised before the count is looked at again (xproc_enter's fast
     * path counts itself before it looks at this): a call that entered
     * since the test above keeps the ownership here */
    __atomic_store_n(&st->disowning, 1, __ATOMIC_SEQ_CST);
    int rc = publish_locked(st);
    if (!rc && shared_owner_wanted(st->shared) &&
        __atomic_load_n(&st->own_users, __ATOMIC_SEQ_CST) == 0 && !st->ndirty &&
        !st->txn_dirty) {
        /* from now on a view of what it published; pinned only if
         * something of this process reads (not after xproc_unpin: an idle
         * process's next read refreshes first) */
        int idle = __atomic_load_n(&st->unpinned, __ATOMIC_SEQ_CST) &&
                   __atomic_load_n(&st->view_users, __ATOMIC_SEQ_CST) == 0;
        shared_lock(st->shared);
        shared_pin(st->shared, idle ? 0 : st->generation);
        /* its map is of this generation, with everything journalled up to
         * here: the base of its next ownership (alloc_apply_journal).
         * Changes to the map that no commit took (none should be left:
         * everything was written back and committed) would never reach
         * the journal in order: the other processes rebuild instead. */
        if (st->nxops || st->xops_complex) {
            shared_journal_invalidate(st->shared);
            st->nxops = 0;
            st->xops_complex = 0;
        }
        st->xbasis_gen = st->generation;
        st->xbasis_idx = shared_journal_head(st->shared);
        /* its view is the owner's: fit for writes in place (inplace.c)
         * until the next publication or barrier */
        st->inplace_epoch = shared_barrier_epoch(st->shared);
        COW_INJECT("xproc:yield_locked"); /* tests: a death holding the mutex */
        shared_disown(st->shared);
        /* the next owner may overwrite nodatacow files in place, which
         * no publication tells: what this process cached of them goes */
        file_forget_nodatacow(st);
        shared_unlock(st->shared);
    }
    __atomic_store_n(&st->disowning, 0, __ATOMIC_SEQ_CST);
    pthread_cond_broadcast(&st->own_cond);
    return 1;
}

int xproc_publish(cow_store *st)
{
    /* one atomic load for a process alone (SQLite calls this at every
     * WAL-index barrier, readers' included) */
    if (!st->shared || shared_nprocs_hint(st->shared) <= 1)
        return COW_OK;
    LOCK(st);
    int rc = COW_OK;
    /* the cheap tests first: SQLite calls this at every WAL-index barrier,
     * readers' included */
    if ((st->txn_dirty || st->ndirty) && shared_is_owner(st->shared) &&
        !__atomic_load_n(&st->disowning, __ATOMIC_SEQ_CST) && shared_nprocs_hint(st->shared) > 1) {
        __atomic_add_fetch(&st->own_users, 1, __ATOMIC_SEQ_CST); /* no yield in between */
        rc = publish_locked(st);
        __atomic_sub_fetch(&st->own_users, 1, __ATOMIC_SEQ_CST);
        if (shared_wanted(st->shared))
            pthread_cond_signal(&st->committer_cond);
    }
    UNLOCK(st);
    return rc;
}

int xproc_refresh(cow_store *st)
{
    if (!st->shared)
        return COW_OK;
    if (__atomic_load_n(&st->unpinned, __ATOMIC_ACQUIRE)) {
        LOCK(st);
        /* pinned again below (a view), or not needed (the owner) */
        __atomic_store_n(&st->unpinned, 0, __ATOMIC_RELEASE);
        UNLOCK(st);
    }
    if (shared_is_owner(st->shared)) {
        /* the owner reads what it has now; what it frees waits for its
         * own flushed commits (invariant 7), not for a pin (one atomic
         * load: SQLite calls this at the start of every read) */
        shared_unpin_if_pinned(st->shared);
        return COW_OK;
    }
    int rc = shared_wait_published(st->shared, XPROC_WAIT_MS);
    if (!rc) {
        /* pinned again before the publication is compared: a commit
         * after the comparison cannot release what this view reads */
        LOCK(st);
        shared_pin(st->shared, st->generation);
        UNLOCK(st);
    }
    if (!rc && shared_seq(st->shared) != st->seen_seq)
        rc = reload(st, 0);
    if (!rc) {
        LOCK(st);
        shared_pin(st->shared, st->generation);
        UNLOCK(st);
    }
    return rc;
}

void xproc_unpin(cow_store *st)
{
    if (!st->shared)
        return;
    if (__atomic_load_n(&st->unpinned, __ATOMIC_ACQUIRE))
        return; /* already: the lock is not needed to say so again */
    LOCK(st);
    /* the next refresh compares the publication with what this process
     * loaded: a commit since (the only thing that releases space) makes
     * it reload before reading; a read in progress keeps the pin.  The
     * flag is raised before the reads are counted, and a read counts
     * itself before it looks at the flag (xproc_view_begin, without this
     * lock; both sequentially consistent): either this sees the read, or
     * the read sees the flag and refreshes (pinning again, under this
     * lock, after this unpin) */
    int was = __atomic_exchange_n(&st->unpinned, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&st->view_users, __ATOMIC_SEQ_CST) == 0) {
        /* the owner has no pin; the flag tells its yield not to take one */
        if (!shared_is_owner(st->shared))
            shared_pin(st->shared, 0);
    } else if (!was) {
        /* a read runs: still pinned (a read that saw the flag meanwhile
         * refreshes, which costs it a look at the publication only) */
        __atomic_store_n(&st->unpinned, 0, __ATOMIC_SEQ_CST);
    }
    UNLOCK(st);
}

int xproc_view_begin(cow_store *st)
{
    if (!st->shared)
        return COW_OK;
    /* against xproc_unpin, without store->lock (readers would queue on
     * it): counted first, then the flag (see xproc_unpin) */
    __atomic_add_fetch(&st->view_users, 1, __ATOMIC_SEQ_CST);
    int unpinned = __atomic_load_n(&st->unpinned, __ATOMIC_SEQ_CST);
    int rc = unpinned ? xproc_refresh(st) : COW_OK;
    if (rc)
        xproc_view_end(st);
    return rc;
}

void xproc_view_end(cow_store *st)
{
    if (st->shared)
        __atomic_sub_fetch(&st->view_users, 1, __ATOMIC_RELEASE);
}

#ifdef COW_DEBUG
int xproc_test_handoff(cow_store *st)
{
    cow_mutex_lock(&st->balance_lock); /* no balance between the two */
    LOCK(st);
    __atomic_add_fetch(&st->own_users, 1, __ATOMIC_SEQ_CST); /* no yield in between */
    int rc = publish_locked(st);
    __atomic_sub_fetch(&st->own_users, 1, __ATOMIC_SEQ_CST);
    UNLOCK(st);
    if (!rc)
        rc = reload(st, 1);
    cow_mutex_unlock(&st->balance_lock);
    return rc;
}
#endif

void xproc_announce(cow_store *st)
{
    if (!st->shared || shared_nprocs_hint(st->shared) <= 1)
        return; /* one atomic load for a process alone */
    LOCK(st);
    /* only with something to publish: SQLite calls this at every barrier,
     * readers' included.  A write in flight counts too: a nodatacow WAL's
     * frames written back in place, with nothing dirty left, are on the
     * device only once it completes (the publication's commit waits for
     * it: commit_transaction's oe_wait_all) */
    if ((st->txn_dirty || st->ndirty || st->noes) && shared_is_owner(st->shared))
        shared_set_unpublished(st->shared);
    UNLOCK(st);
}

void xproc_logged(cow_store *st)
{
    /* alone, what a transaction's end makes durable or persistent goes to
     * the log, not to a publication: a process that opens now asks for it
     * (with others open, the end of a transaction publishes).  Only with
     * something unpublished: a checkpoint begins by syncing the WAL, and
     * flagging then made every reader in another process wait for the
     * whole checkpoint (its publication), where only the database's sync
     * at its end (with the pages it copied) must hold them back until the
     * publication, before they read past the new nBackfill. */
    if (!st->shared || !shared_is_owner(st->shared))
        return;
    LOCK(st);
    int unpublished = st->txn_dirty || st->ndirty || st->noes;
    UNLOCK(st);
    if (unpublished)
        shared_set_unpublished(st->shared);
}
