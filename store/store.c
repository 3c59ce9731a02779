/*
 * store.c - opening, committing, closing a container; usage figures.
 *
 * Locking: the cow_store_* entry points take store->lock.
 */
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "commit.h"
#include "extent_map.h"
#include "ordered.h"
#include "relocator.h"
#include "xproc.h"
#include "replay.h"
#include "roots.h"
#include "reloc.h"
#include "remap.h"
#include "store_int.h"

static void committer_stop(cow_store *st);

static void store_free(cow_store *st)
{
    if (!st)
        return;
    relocator_free(st);
    committer_stop(st);
    xproc_detach(st);
    file_drop_inodes(st);
    roots_free_all(st);
    cache_destroy(&st->cache);
    alloc_destroy(st);
    remap_destroy(st);
    free(st->drefs);
    hm_destroy(&st->dref_map);
    txn_wlog_reset(st);
    free(st->wruns);
    free(st->wcrcs);
    if (st->dev)
        st->dev->close(st->dev);
    pthread_cond_destroy(&st->committer_cond);
    pthread_cond_destroy(&st->oe_cond);
    pthread_cond_destroy(&st->flush_cond);
    pthread_cond_destroy(&st->own_cond);
    cow_mutex_destroy(&st->balance_lock);
    cow_mutex_destroy(&st->resize_lock);
    cow_mutex_destroy(&st->lock);
    free(st->path);
    free(st);
}

/* ---- background commits ---- */

/* The committer and flusher: every commit_ms, writes back every file's
 * buffered data and commits the running transaction with a flush if
 * anything changed, which empties the log (btrfs's transaction kthread,
 * commit=N); and writes back whenever a writer finds the dirty limit
 * passed (flush_wanted).  Sleeps on committer_cond, which store->lock
 * guards. */
static void *committer_main(void *arg)
{
    cow_store *st = arg;
    cow_mutex_lock(&st->lock);
    while (!st->committer_stop) {
        uint64_t now = cow_mono_ns(), wait_ns = 3600ull * 1000000000ull;
        /* another process waits for this one to publish or let go */
        if (xproc_yield_locked(st))
            continue;
        if (!xproc_may_change(st)) {
            /* nothing of its own to write: look again soon */
            wait_ns = xproc_poll_ns(st);
            goto wait;
        }
        if (st->flush_wanted && !st->failed) {
            st->flush_wanted = 0;
            cow_mutex_unlock(&st->lock);
            file_writeback_all(st); /* errors: the pages stay dirty */
            cow_mutex_lock(&st->lock);
            continue;
        }
        if (st->commit_ms) {
            uint64_t due = st->last_commit_ns + (uint64_t)st->commit_ms * 1000000ull;
            if (now >= due && (st->txn_dirty || st->ndirty) && !st->failed && !st->readonly) {
                if (st->ndirty) {
                    cow_mutex_unlock(&st->lock);
                    file_writeback_all(st);
                    cow_mutex_lock(&st->lock);
                }
                /* A failure either leaves the transaction whole (the
                 * next interval tries again) or stops the store (txn.c):
                 * the same as for any other caller. */
                commit_transaction(st, 1);
                st->last_commit_ns = cow_mono_ns(); /* also when nothing changed */
                continue;
            }
            wait_ns = now >= due ? (uint64_t)st->commit_ms * 1000000ull : due - now;
        }
        if (st->shared && wait_ns > xproc_poll_ns(st))
            wait_ns = xproc_poll_ns(st); /* requests come by polling */
    wait:;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t t = (uint64_t)ts.tv_nsec + wait_ns;
        ts.tv_sec += (time_t)(t / 1000000000ull);
        ts.tv_nsec = (long)(t % 1000000000ull);
        cow_cond_timedwait(&st->committer_cond, &st->lock, &ts);
    }
    cow_mutex_unlock(&st->lock);
    return NULL;
}

static void committer_stop(cow_store *st)
{
    if (!st->committer_running)
        return;
    cow_mutex_lock(&st->lock);
    st->committer_stop = 1;
    pthread_cond_signal(&st->committer_cond);
    cow_mutex_unlock(&st->lock);
    pthread_join(st->committer, NULL);
    st->committer_running = 0;
}

void cow_store_set_commit_interval(cow_store *st, unsigned ms)
{
    cow_mutex_lock(&st->lock);
    st->commit_ms = ms;
    pthread_cond_signal(&st->committer_cond);
    cow_mutex_unlock(&st->lock);
}

void cow_store_set_clean_cache(cow_store *st, uint64_t bytes)
{
    cow_mutex_lock(&st->lock);
    pc_set_clean_budget(st, bytes);
    cow_mutex_unlock(&st->lock);
}

void cow_store_set_dirty_limit(cow_store *st, uint64_t bytes)
{
    cow_mutex_lock(&st->lock);
    st->dirty_limit = bytes < COW_BLOCK_SIZE ? COW_BLOCK_SIZE : bytes;
    cow_mutex_unlock(&st->lock);
}

int cow_store_writeback(cow_store *st)
{
    return file_writeback_all(st);
}

void cow_store_stats(cow_store *st, struct cow_stats *out)
{
    cow_mutex_lock(&st->lock);
    *out = st->stats;
    out->dirty_bytes = st->ndirty * COW_BLOCK_SIZE;
    out->reserved_bytes = st->reserved * COW_BLOCK_SIZE;
    out->container_bytes = st->file_bytes;
    out->held_bytes = 0;
    for (size_t k = 0; k < st->nheld; k++)
        out->held_bytes += st->held[k].bytes;
    if (!out->container_bytes)
        (void)st->dev->size(st->dev, &out->container_bytes);
    cow_mutex_unlock(&st->lock);
}

/*
 * Opens a store on DEV (taking ownership of it, even on failure).  FORMAT
 * makes a new container.  Used by cow_store_open() and by tests with a
 * simulated device.
 */
int cow_store_open_dev(const char *path, struct cow_dev *dev, int flags, int format,
                       cow_store **out)
{
    int rc;
    cow_store *st = calloc(1, sizeof *st);
    *out = NULL;
    if (!st) {
        dev->close(dev);
        return cow_set_error(COW_ENOMEM, "out of memory");
    }
    cow_mutex_init(&st->lock);
    cow_mutex_init(&st->balance_lock);
    cow_mutex_init(&st->resize_lock);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->committer_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&st->oe_cond, NULL);
    pthread_cond_init(&st->flush_cond, NULL);
    pthread_cond_init(&st->own_cond, NULL);
    st->commit_ms = COW_COMMIT_INTERVAL_MS;
    st->dirty_limit = COW_DIRTY_LIMIT;
    st->lru.budget = COW_CLEAN_CACHE;
    st->dev = dev;
    st->readonly = (flags & COW_OPEN_READONLY) != 0;
    st->path = strdup(path ? path : "(device)");
    if (!st->path) {
        rc = cow_set_error(COW_ENOMEM, "out of memory");
        goto out;
    }
    rc = relocator_init(st);
    if (rc)
        goto out;
    rc = cache_init(&st->cache);
    if (rc)
        goto out;
    /* Other processes: become the owner (a writable store) before reading
     * anything, or wait until the owner published what it has (xproc.h) */
    int alone = 1;
    int lfd = !format && dev->lock_fd ? dev->lock_fd(dev) : -1;
    if (lfd >= 0) {
        rc = xproc_attach(st, lfd, &alone);
        if (rc)
            goto out;
    }
    /* A reader on another client (RADOS): pinned before it reads
     * anything, so that no writer reuses what the commit it is about to
     * load reaches (invariant 9 across clients; bdev.h reader_pin) */
    if (!format && st->readonly && dev->reader_pin)
        rc = dev->reader_pin(dev, 0);
    if (rc)
        goto out;
    cow_mutex_lock(&st->lock);
    if (format) {
        rc = commit_format(st);
    } else {
        rc = commit_load(st);
        /* An owner that others had open before it: what earlier owners
         * freed that their readers may still read stays taken, before
         * anything here allocates (invariant 9; as a reload does) */
        if (rc == COW_OK && st->shared && !st->readonly)
            rc = alloc_hold_shared_frees(st);
        /* A writer whose readers are on other clients: it cannot know
         * what the writer before it held for them, so it holds every
         * free block until they have moved on (invariant 9 across
         * clients) */
#ifndef COW_BREAK_RADOS_TAKEOVER
        if (rc == COW_OK && !st->readonly && dev->readers_oldest)
            rc = alloc_hold_free(st, st->generation);
#endif
        /* After a crash: the syncs since the last commit, from the log.  A
         * read-only store applies them in memory only. */
        if (rc == COW_OK)
            rc = replay_log(st, &st->stats.replayed);
        /* a file the container holds is found by its name, or open fails */
        if (rc == COW_OK)
            rc = names_check(st, &st->fs_tree);
        for (struct cow_subvol *sv = st->subvols; sv && rc == COW_OK; sv = sv->next)
            if (!sv->dead)
                rc = names_check(st, &sv->root);
        /* ... and from now on, only what the commit it loaded reaches */
        if (rc == COW_OK && st->readonly && dev->reader_pin)
            rc = dev->reader_pin(dev, st->generation);
    }
    /* A crash's leftovers (files unlinked while open, an unfinished
     * branch) are cleaned up only by a process alone: another one may
     * still have the file open, or be making the branch. */
    if (rc == COW_OK && !st->readonly && alone) {
        rc = file_cleanup_orphans(st, &st->fs_tree);
        if (rc == COW_OK)
            rc = subvol_drop_incomplete(st);
        for (struct cow_subvol *sv = st->subvols; sv && rc == COW_OK; sv = sv->next)
            if (!sv->dead && sv->root.flags == COW_ROOT_F_BRANCH)
                rc = file_cleanup_orphans(st, &sv->root);
    }
    if (rc == COW_OK && !st->readonly) {
        if (rc == COW_OK && !st->log_blocks)
            rc = log_alloc_areas(st); /* a container made before the log */
        if (rc == COW_OK)
            rc = commit_transaction(st, 1);
        if (rc == COW_OK)
            rc = commit_upgrade(st); /* a version-1 container: both copies now */
    }
    /* A new container appears at its path only now, whole and flushed. */
    if (rc == COW_OK && format && dev->publish)
        rc = dev->publish(dev);
    st->last_commit_ns = cow_mono_ns();
    st->open_commits = st->ncommits;
    cow_mutex_unlock(&st->lock);
    /* a new container: others may open it from now on */
    if (rc == COW_OK && format && dev->lock_fd && dev->lock_fd(dev) >= 0)
        rc = xproc_attach(st, dev->lock_fd(dev), &alone);
    if (rc == COW_OK && st->shared) {
        cow_mutex_lock(&st->lock);
        xproc_opened(st);
        cow_mutex_unlock(&st->lock);
    }
    if (rc == COW_OK && !st->readonly) {
        if (pthread_create(&st->committer, NULL, committer_main, st) == 0)
            st->committer_running = 1;
        else
            rc = cow_set_error(COW_ENOMEM, "cannot start the committer thread");
    }
    if (rc == COW_OK && !st->readonly)
        rc = relocator_start(st);
out:
    if (rc) {
        store_free(st);
        return rc;
    }
    *out = st;
    return COW_OK;
}

int cow_store_open(const char *path, int flags, cow_store **out)
{
    struct cow_dev *dev;
    int created = 0, rc; /* a new container's temporary file goes at its close */
    int bflags = ((flags & COW_OPEN_READONLY) ? BDEV_READONLY : 0) |
                 ((flags & COW_OPEN_CREATE) ? BDEV_CREATE : 0);
    *out = NULL;
    if (!path || !*path)
        return cow_set_error(COW_EINVAL, "empty container path");
    rc = bdev_file_open(path, bflags, &dev, &created);
    if (rc)
        return rc;
    uint64_t size = 0;
    rc = dev->size(dev, &size);
    if (rc) {
        dev->close(dev);
        return rc;
    }
    int format = 0;
    if (size == 0) {
        if (!(flags & COW_OPEN_CREATE) || (flags & COW_OPEN_READONLY)) {
            dev->close(dev);
            return cow_set_error(COW_ENOTCONTAINER, "%s is empty, not a cowvfs container", path);
        }
        format = 1;
    }
    return cow_store_open_dev(path, dev, flags, format, out);
}

int cow_store_commit(cow_store *st)
{
    int rc = file_writeback_all(st);
    if (rc)
        return rc;
    cow_mutex_lock(&st->lock);
    rc = commit_transaction(st, 1);
    cow_mutex_unlock(&st->lock);
    return rc;
}

int cow_store_persist(cow_store *st)
{
    if (st->shared) {
        cow_mutex_lock(&st->lock);
        int owner = xproc_may_change(st), alone = xproc_alone(st);
        cow_mutex_unlock(&st->lock);
        if (!owner)
            return COW_OK; /* nothing of its own unwritten */
        if (!alone)
            return xproc_publish(st); /* the others read it from the trees */
    }
    int rc = file_writeback_all(st);
    if (rc)
        return rc;
    cow_mutex_lock(&st->lock);
    oe_wait_all(st); /* every range noted for the log has its items */
    rc = COW_LOG_FULL;
    if (log_usable(st)) {
        size_t n = 0;
        struct cow_inode **v = NULL;
        for (struct cow_inode *in = st->inodes; in; in = in->next)
            n += em_modified(in);
        if (n == 0) {
            rc = COW_OK;
        } else if ((v = malloc(n * sizeof *v)) != NULL) {
            n = 0;
            for (struct cow_inode *in = st->inodes; in; in = in->next)
                if (em_modified(in))
                    v[n++] = in;
            rc = log_write(st, v, n, 0);
        }
        free(v);
    }
    if (rc == COW_LOG_FULL)
        rc = commit_transaction(st, 0);
    cow_mutex_unlock(&st->lock);
    xproc_logged(st);
    return rc;
}

void cow_store_announce(cow_store *st)
{
    xproc_announce(st);
}

int cow_store_refresh(cow_store *st)
{
    return xproc_refresh(st);
}

int cow_store_publish(cow_store *st)
{
    return xproc_publish(st);
}

void cow_store_unpin(cow_store *st)
{
    xproc_unpin(st);
}

unsigned cow_store_processes(cow_store *st)
{
    return xproc_processes(st);
}

#ifdef COW_DEBUG
int cow_store_test_handoff(cow_store *st)
{
    return xproc_test_handoff(st);
}
#endif

int cow_store_close(cow_store *st)
{
    if (!st)
        return COW_OK;
    relocator_stop(st);
    committer_stop(st);
    /* another process's container: only its owner writes (a non-owner
     * has nothing of its own unwritten), and only a process alone gives
     * space back (a balance would take the ownership from the others) */
    cow_mutex_lock(&st->lock);
    int owner = xproc_may_change(st);
    int alone = owner && xproc_alone(st);
    /* a process that only read leaves the container as it found it */
    int changed = st->ncommits > st->open_commits || st->txn_dirty || st->ndirty;
    cow_mutex_unlock(&st->lock);
    int rc = st->readonly || !owner ? COW_OK : file_writeback_all(st);
    cow_mutex_lock(&st->lock);
    if (rc == COW_OK)
        rc = commit_transaction(st, 1);
    cow_mutex_unlock(&st->lock);
    if (rc == COW_OK && alone && changed)
        (void)relocator_close_balance(st); /* optional: a failure keeps the old placement */
    cow_mutex_lock(&st->lock);
    if (rc == COW_OK && !st->readonly)
        rc = commit_transaction(st, 1);
    if (rc == COW_OK)
        rc = commit_seal(st);
    if (rc == COW_OK && owner)
        (void)reloc_trim(st); /* a failed cut leaves a longer file: harmless */
    cow_mutex_unlock(&st->lock);
    store_free(st);
    return rc;
}

const char *cow_store_path(cow_store *st)
{
    return st->path;
}

uint64_t cow_store_generation(cow_store *st)
{
    cow_mutex_lock(&st->lock);
    uint64_t g = st->generation;
    cow_mutex_unlock(&st->lock);
    return g;
}

static int sum_data_cb(cow_store *st, void *arg, struct eb *e)
{
    lk_assert_held(&st->lock);
    uint64_t *data = arg;
    (void)st;
    const uint8_t *b = e->data;
    if (tb_level(b) != 0)
        return COW_OK;
    for (unsigned i = 0; i < tb_nritems(b); i++) {
        struct cow_key k;
        key_get(&k, leaf_item(b, i));
        if (k.type == COW_EXTENT_ITEM)
            *data += k.offset;
    }
    return COW_OK;
}

int cow_store_df(cow_store *st, struct cow_df *df)
{
    memset(df, 0, sizeof *df);
    int xrc = xproc_full_view(st); /* the free space map, if a view lacks it */
    if (xrc)
        return xrc;
    cow_mutex_lock(&st->lock);
    int rc = st->dev->size(st->dev, &df->container_bytes);
    if (rc == COW_OK) {
        df->total_bytes = st->total_bytes;
        for (size_t i = 0; i < st->nbgs; i++)
            df->used_bytes += st->bgs[i].used;
        /* data extents as of the last commit plus this transaction's */
        rc = bt_walk_blocks(st, &st->extent_tree, sum_data_cb, &df->data_bytes);
        for (size_t i = 0; i < st->ndrefs && rc == COW_OK; i++) {
            const struct dref *d = &st->drefs[i];
            if (d->is_data) {
                uint64_t refs;
                rc = refs_get(st, d->bytenr, 1, &refs);
                int had = (refs - (uint64_t)d->delta) > 0;
                if (rc == COW_OK && refs > 0 && !had)
                    df->data_bytes += d->len;
                else if (rc == COW_OK && refs == 0 && had)
                    df->data_bytes -= d->len;
            }
        }
        df->metadata_bytes = df->used_bytes - df->data_bytes;
        df->free_bytes = df->total_bytes - df->used_bytes;
        df->nblock_groups = st->nbgs;
        df->generation = st->generation;
        df->physical_bytes = alloc_physical_blocks(st) * COW_BLOCK_SIZE;
        df->slack_bytes = df->container_bytes > df->physical_bytes
                              ? df->container_bytes - df->physical_bytes
                              : 0;
        df->remapped_bytes = reloc_remapped_bytes(st);
    }
    cow_mutex_unlock(&st->lock);
    return rc;
}
