/*
 * relocator.c - the background relocator (relocator.h): one thread per
 * writable store that runs limited balances while the container's slack
 * is above its threshold, and the relocator's configuration
 * (cow_store_get_reloc, cow_store_set_reloc).
 *
 * The thread is built like the committer (store.c): it sleeps on a
 * condition variable that store->lock guards, wakes every
 * RELOCATOR_PERIOD_MS or when the configuration changes, and stops when
 * close asks.  It measures the slack, and when the slack is over both
 * thresholds it runs cow_store_balance() with max_bytes = rate (bytes per
 * second) times one second, then again one second after the start of the
 * last step, for as long as the slack stays over.  Balances that give
 * nothing back (no group relocated, or the slack not going down for
 * RELOCATOR_STALL_STEPS steps in a row, or an error) make it wait twice as
 * long each time, up to RELOCATOR_BACKOFF_MAX_MS, so that a container that
 * cannot shrink costs nothing.
 *
 * Locking (docs/DESIGN.md, "Threads and locks"): the relocator's fields
 * are protected by store->lock, except `halt`, which the balance's
 * progress callback reads without it (atomically).  The thread takes
 * store->lock only to wait, to read its configuration and to measure the
 * slack (reloc_slack_bytes: a sum over the block groups), and holds no
 * lock while it balances.
 */
#include "relocator.h"
#include "reloc.h"
#include "commit.h"
#include "xproc.h"

#include <stdlib.h>
#include <time.h>

/* Steps in a row that relocate groups without the slack going down before
 * the relocator counts them as giving nothing back. */
#define RELOCATOR_STALL_STEPS 8

struct relocator {
    /* Protected by store->lock: */
    struct cow_reloc_config cfg; /* cow_store_set_reloc()'s last values */
    int stop;                    /* close asked the thread to end */
    int woken;                   /* the configuration changed: look now */
    pthread_cond_t cond;         /* CLOCK_MONOTONIC; waits on store->lock */
    /* Written under store->lock with atomic stores, read by the progress
     * callback without it (atomic loads): stop, or the relocator turned
     * off; a balance in progress ends after its current group. */
    int halt;
    /* Owned by the thread that opens and closes the store: */
    pthread_t thread;
    int running;                 /* the thread was started, not yet joined */
};

/* Sets R->halt from R->stop and R->cfg.enabled.  store->lock held. */
static void relocator_set_halt(cow_store *st, struct relocator *r)
{
    lk_assert_held(&st->lock);
    (void)st;
    __atomic_store_n(&r->halt, r->stop || !r->cfg.enabled, __ATOMIC_RELEASE);
}

int relocator_init(cow_store *st)
{
    struct relocator *r = calloc(1, sizeof *r);
    pthread_condattr_t ca;

    if (!r)
        return cow_set_error(COW_ENOMEM, "out of memory");
    r->cfg.enabled = 1;
    r->cfg.slack_pct = COW_RELOC_SLACK_PCT;
    r->cfg.slack_min = COW_RELOC_SLACK_MIN;
    r->cfg.rate = COW_RELOC_RATE;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    st->relocator = r;
    return COW_OK;
}

/* Waits on R->cond for MS milliseconds at most (CLOCK_MONOTONIC), or until
 * signalled.  store->lock held (released meanwhile). */
static void relocator_wait(cow_store *st, struct relocator *r, unsigned ms)
{
    struct timespec ts;
    uint64_t t;

    lk_assert_held(&st->lock);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t = (uint64_t)ts.tv_nsec + (uint64_t)ms * 1000000ull;
    ts.tv_sec += (time_t)(t / 1000000000ull);
    ts.tv_nsec = (long)(t % 1000000000ull);
    cow_cond_timedwait(&r->cond, &st->lock, &ts);
}

/* The balance's progress callback: stop after this group when close asks,
 * or when the relocator was turned off.  Called without store->lock. */
static int relocator_progress(void *arg, const struct cow_balance_result *so_far)
{
    struct relocator *r = arg;

    (void)so_far;
    return __atomic_load_n(&r->halt, __ATOMIC_ACQUIRE);
}

/* *SLACK = the container's slack in bytes (what relocation could give
 * back: reloc_slack_bytes, cow_df.slack_bytes) and *CONTAINER its size.
 * Cheap: a sum over the block groups, no I/O.  Takes store->lock.
 * Errors: COW_EIO_STAT (the size could not be read). */
static int relocator_measure(cow_store *st, uint64_t *slack, uint64_t *container)
{
    int rc = COW_OK;

    cow_mutex_lock(&st->lock);
    *container = st->file_bytes;
    if (!*container)
        rc = st->dev->size(st->dev, container);
    *slack = reloc_slack_bytes(st);
    cow_mutex_unlock(&st->lock);
    return rc;
}

/* 1 if SLACK bytes of a CONTAINER-byte container pass both thresholds of
 * CFG. */
static int relocator_over(const struct cow_reloc_config *cfg, uint64_t slack, uint64_t container)
{
    return slack > cfg->slack_min && slack > container / 100 * cfg->slack_pct;
}

/*
 * One look at the slack and, if it is over the thresholds of CFG, one
 * balance step of at most CFG->rate bytes.  Returns 1 if the step gave
 * something back (relocated groups) and the slack is still over (the
 * caller goes on after the rest of the second), 0 if the slack is under
 * the thresholds, -1 if the step gave nothing back (an error, or no group
 * relocated; the caller backs off).  *STALL counts the steps in a row that
 * relocated without the slack going down; from RELOCATOR_STALL_STEPS on
 * they count as giving nothing back (until the slack goes down or falls
 * under the thresholds).  Called without store->lock.
 */
static int relocator_step(cow_store *st, struct relocator *r, const struct cow_reloc_config *cfg,
                          unsigned *stall)
{
    struct cow_balance_opts o = {0};
    struct cow_balance_result res = {0};
    uint64_t slack, container, slack_after;

    if (relocator_measure(st, &slack, &container) != COW_OK)
        return -1;
    if (!relocator_over(cfg, slack, container)) {
        *stall = 0;
        return 0;
    }
    o.usage_pct = COW_BALANCE_DEFAULT_USAGE;
    o.max_bytes = cfg->rate; /* one second's worth; 0: no limit */
    o.progress = relocator_progress;
    o.arg = r;
    if (cow_store_balance(st, &o, &res) != COW_OK || res.groups_relocated == 0)
        return -1;
    if (relocator_measure(st, &slack_after, &container) != COW_OK)
        return -1;
    *stall = slack_after < slack ? 0 : *stall + 1;
    if (*stall >= RELOCATOR_STALL_STEPS)
        return -1; /* and every step after it, until the slack goes down */
    return relocator_over(cfg, slack_after, container) ? 1 : 0;
}

/* The relocator thread (see the top of the file). */
static void *relocator_main(void *arg)
{
    cow_store *st = arg;
    struct relocator *r = st->relocator;
    unsigned wait_ms = RELOCATOR_PERIOD_MS, backoff_ms = 0, stall = 0;

    cow_mutex_lock(&st->lock);
    while (!r->stop) {
        if (!r->woken)
            relocator_wait(st, r, wait_ms);
        if (r->woken) {
            r->woken = 0;
            wait_ms = RELOCATOR_PERIOD_MS; /* new settings: no back-off */
            backoff_ms = 0;
            stall = 0;
        }
        if (r->stop)
            break;
        /* another process owns the container: its relocator does the work */
        if (!r->cfg.enabled || st->readonly || st->failed || !xproc_may_change(st)) {
            wait_ms = RELOCATOR_PERIOD_MS;
            continue;
        }
        struct cow_reloc_config cfg = r->cfg;
        cow_mutex_unlock(&st->lock);
        uint64_t t0 = cow_mono_ns();
        int step = relocator_step(st, r, &cfg, &stall);
        uint64_t spent_ms = (cow_mono_ns() - t0) / 1000000ull;
        cow_mutex_lock(&st->lock);
        if (step >= 0)
            backoff_ms = 0;
        else if (backoff_ms < RELOCATOR_BACKOFF_MAX_MS)
            backoff_ms = backoff_ms ? backoff_ms * 2 : 2 * RELOCATOR_PERIOD_MS;
        if (backoff_ms > RELOCATOR_BACKOFF_MAX_MS)
            backoff_ms = RELOCATOR_BACKOFF_MAX_MS;
        if (step > 0) /* the rest of this second, then the next step */
            wait_ms = spent_ms >= 1000 ? 0 : (unsigned)(1000 - spent_ms);
        else if (step == 0)
            wait_ms = RELOCATOR_PERIOD_MS;
        else
            wait_ms = backoff_ms;
    }
    cow_mutex_unlock(&st->lock);
    return NULL;
}

int relocator_start(cow_store *st)
{
    struct relocator *r = st->relocator;

    if (pthread_create(&r->thread, NULL, relocator_main, st) != 0)
        return cow_set_error(COW_ENOMEM, "cannot start the relocator thread");
    r->running = 1;
    return COW_OK;
}

void relocator_stop(cow_store *st)
{
    struct relocator *r = st->relocator;

    if (!r || !r->running)
        return;
    cow_mutex_lock(&st->lock);
    r->stop = 1;
    relocator_set_halt(st, r);
    pthread_cond_signal(&r->cond);
    cow_mutex_unlock(&st->lock);
    pthread_join(r->thread, NULL);
    r->running = 0;
}

void relocator_free(cow_store *st)
{
    struct relocator *r = st->relocator;

    if (!r)
        return;
    relocator_stop(st);
    pthread_cond_destroy(&r->cond);
    free(r);
    st->relocator = NULL;
}

void cow_store_get_reloc(cow_store *st, struct cow_reloc_config *c)
{
    cow_mutex_lock(&st->lock);
    *c = st->relocator->cfg;
    cow_mutex_unlock(&st->lock);
}

void cow_store_set_reloc(cow_store *st, const struct cow_reloc_config *c)
{
    struct relocator *r = st->relocator;

    cow_mutex_lock(&st->lock);
    r->cfg = *c;
    r->cfg.enabled = c->enabled != 0;
    if (r->cfg.slack_pct > 100)
        r->cfg.slack_pct = 100;
    relocator_set_halt(st, r);
    r->woken = 1;
    pthread_cond_signal(&r->cond);
    cow_mutex_unlock(&st->lock);
}

int relocator_close_balance(cow_store *st)
{
    struct relocator *r = st->relocator;
    struct cow_balance_opts o = {0};
    uint64_t slack, container;
    int rc = COW_OK;

    cow_mutex_lock(&st->lock);
    struct cow_reloc_config cfg = r->cfg;
    int skip = st->readonly || st->failed || !cfg.enabled;
    /* what the last commit freed cools until the next flushed one: count
     * it as slack by letting it go first */
    if (!skip && (st->ncooling || st->npcooling)) {
        st->txn_dirty = 1;
        rc = commit_transaction(st, 1);
    }
    /* what other clients' readers held (RADOS), given back as on a file */
    if (!skip && rc == COW_OK)
        rc = reloc_let_go_held(st, RELOC_CLOSE_LOOK_MS);
    cow_mutex_unlock(&st->lock);
    if (skip || rc != COW_OK)
        return rc;
    /* A pass may only make the next one possible (data moved down first,
     * then the tree blocks at the tail have room below: bench updates
     * --quick, 7.0 -> 5.0 -> 3.3 MiB), so a few passes while each gives
     * something back, within the one budget of bytes. */
    uint64_t budget = cfg.rate ? cfg.rate : COW_RELOC_RATE;
    for (int pass = 0; pass < RELOCATOR_CLOSE_PASSES && budget; pass++) {
        struct cow_balance_result res = {0};
        rc = relocator_measure(st, &slack, &container);
        if (rc == COW_OK && pass == 0 && !relocator_over(&cfg, slack, container)) {
            /* bookends are slack too, which a balance drops where they
             * lie: counted here only (a walk of the trees), not by the
             * background relocator's looks */
            uint64_t unmapped = 0;
            cow_mutex_lock(&st->lock);
            if (reloc_unmapped_bytes(st, &unmapped) == COW_OK)
                slack += unmapped;
            cow_mutex_unlock(&st->lock);
        }
        if (rc != COW_OK || !relocator_over(&cfg, slack, container))
            return rc;
        o.usage_pct = COW_BALANCE_DEFAULT_USAGE;
        o.max_bytes = budget;
        rc = cow_store_balance(st, &o, &res);
        if (rc != COW_OK || res.container_after >= res.container_before)
            return rc;
        budget = res.bytes_moved < budget ? budget - res.bytes_moved : 0;
    }
    return rc;
}
