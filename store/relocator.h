/*
 * relocator.h - the background relocator (relocator.c): a thread per
 * writable store that gives the container's slack back to the host file
 * system while SQLite works, by running limited balances
 * (cow_store_balance, store/reloc.c) whenever the slack passes a
 * threshold.  Its configuration (struct cow_reloc_config) is read and set
 * through cow_store_get_reloc() and cow_store_set_reloc() (store.h).
 *
 * The idea is btrfs's automatic reclaim of block groups
 * (fs/btrfs/block-group.c, btrfs_reclaim_bgs_work and the bg_reclaim_threshold
 * knob): a worker relocates groups that became mostly free, instead of
 * waiting for someone to run balance.
 *
 * Who may call it: store.c only (open, close and the store's teardown).
 * Locking: the thread sleeps on its condition variable with store->lock;
 * it holds no lock while a balance runs (the balance takes store->lock
 * itself, never across its copies).  relocator_stop() takes store->lock;
 * none of these is called with it held.
 */
#ifndef COW_RELOCATOR_H
#define COW_RELOCATOR_H

#include "store_int.h"

/* How often the thread looks at the slack when nothing wakes it, ms. */
#define RELOCATOR_PERIOD_MS 1000u
/* The longest it waits after balances that gave nothing back (the wait
 * doubles from RELOCATOR_PERIOD_MS up to this), ms. */
#define RELOCATOR_BACKOFF_MAX_MS 60000u

/*
 * Gives ST its relocator state with the default configuration
 * (COW_RELOC_*; store.h), without a thread, so that the configuration can
 * be read and set on every store, read-only ones included.  Called once
 * at open, before anything else can reach ST.  Errors: COW_ENOMEM.
 */
int relocator_init(cow_store *st);

/*
 * Starts the relocator thread of ST (a writable store, open and
 * committed).  It wakes every RELOCATOR_PERIOD_MS (or when the
 * configuration changes) and, while the configuration is enabled and the
 * store neither read-only nor failed, runs a balance of at most `rate`
 * bytes per second whenever slack_bytes passes both slack_pct percent of
 * the container and slack_min bytes.  Errors: COW_ENOMEM (the thread
 * could not be created; nothing started).
 */
int relocator_start(cow_store *st);

/*
 * Stops ST's relocator thread and waits for it: a balance in progress
 * stops after the block group it is moving (its progress callback asks it
 * to; what was relocated stays relocated).  A no-op when no thread runs.
 * Called by close before its last commit.
 */
void relocator_stop(cow_store *st);

/* relocator_stop(), then frees ST's relocator state (the store's teardown;
 * ST->relocator may be NULL). */
void relocator_free(cow_store *st);

/*
 * Close's last step before its final commit: when ST is writable, its
 * relocator enabled and the slack over the configured thresholds,
 * balances (up to RELOCATOR_CLOSE_PASSES, while each gives something back
 * and the slack stays over) of at most the configured rate's bytes in all
 * (one second's worth; COW_RELOC_RATE when the rate is unlimited), so
 * that a database closed
 * right after its churn (SQLite's WAL deleted at the last close, a run
 * shorter than the relocator's period) does not leave its high-water mark
 * on disk.  On a device whose readers are on other clients (RADOS) it
 * first waits, at most a second, for a look at their pins, so that what
 * the last commits freed is not held past close.  Call after
 * relocator_stop(), without store->lock.  Errors:
 * cow_store_balance()'s; close ignores COW_ENOSPC-like failures of this
 * optional step, which change nothing acknowledged.
 */
int relocator_close_balance(cow_store *st);
#define RELOCATOR_CLOSE_PASSES 3

#endif /* COW_RELOCATOR_H */
