/*
 * relocator.h - the background relocator's state (relocator.c): for now
 * its configuration (struct cow_reloc_config), read and set through
 * cow_store_get_reloc() and cow_store_set_reloc() (store.h).
 *
 * Who may call it: store.c only (open and the store's teardown).
 * Locking: the configuration is protected by store->lock.
 */
#ifndef COW_RELOCATOR_H
#define COW_RELOCATOR_H

#include "store_int.h"

/*
 * Gives ST its relocator state with the default configuration
 * (COW_RELOC_*; store.h), so that the configuration can be read and set
 * on every store, read-only ones included.  Called once at open, before
 * anything else can reach ST.  Errors: COW_ENOMEM.
 */
int relocator_init(cow_store *st);

/* Frees ST's relocator state (the store's teardown; ST->relocator may be
 * NULL). */
void relocator_free(cow_store *st);

#endif /* COW_RELOCATOR_H */
