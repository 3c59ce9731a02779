/*
 * roots.h - the subvolume roots in memory (roots.c): the registry of
 * snapshots and branches (st->subvols, struct cow_subvol in store_int.h),
 * loaded from the root tree at open, written back at commit.
 *
 * Who may call it: the commit (commit.c: load, commit), subvolume
 * operations (subvol.c), space usage (usage.c) and the store (store.c:
 * close).  It calls only down: the btree.  The live subvolume is not here:
 * it is st->fs_tree, whose root the superblock's root tree names.
 *
 * Locking: store->lock held by every caller (asserted in debug builds).
 */
#ifndef COW_ROOTS_H
#define COW_ROOTS_H

#include "store_int.h"

/* 1 if NAME is a valid snapshot or branch name: 1..255 bytes (COW_NAME_MAX)
 * of valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF) without '/'; else 0.  NAME may be NULL (0).  No lock. */
int roots_name_valid(const char *name);

/* The snapshot or branch of subvolume id ID (dead or not), or NULL. */
struct cow_subvol *roots_by_id(cow_store *st, uint64_t id);

/* The live (not dead) snapshot or branch NAME, or NULL. */
struct cow_subvol *roots_find(cow_store *st, const char *name);

/* Reads every snapshot's and branch's ROOT_ITEM and ROOT_NAME from the root
 * tree (open, and again after a reload); those no longer there are marked
 * dead (never freed while the store is open: open files point at their
 * roots).  Errors: COW_ECORRUPT (an item of the wrong size, bad flags or
 * level, a name that is not valid), COW_ENOMEM, I/O errors. */
int roots_load(cow_store *st);

/* At commit: writes the ROOT_ITEM of every live subvolume whose root moved
 * (cow_root.dirty) into the root tree.  Errors: those of bt_put (COW_ENOSPC,
 * COW_ENOMEM, I/O errors; the caller aborts the transaction). */
int roots_commit(cow_store *st);

/* After a commit: no root is dirty. */
void roots_committed(cow_store *st);

/* Frees the registry (close). */
void roots_free_all(cow_store *st);

/* ROOT_ITEM bytes (ROOT_ITEM_SIZE) <-> a cow_root's fields (bytenr,
 * generation, level, next_ino, flags, ctime, source, last_snapshot).  No
 * checks: the item was checked when its leaf was read (validate.c). */
void roots_item_get(const uint8_t *it, struct cow_root *r);
void roots_item_put(uint8_t *it, const struct cow_root *r);

#endif
