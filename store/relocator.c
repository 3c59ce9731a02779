/*
 * relocator.c - the background relocator's configuration
 * (cow_store_get_reloc, cow_store_set_reloc; relocator.h).
 *
 * Locking: the fields are protected by store->lock.
 */
#include "relocator.h"

#include <stdlib.h>

struct relocator {
    /* Protected by store->lock: */
    struct cow_reloc_config cfg; /* cow_store_set_reloc()'s last values */
};

int relocator_init(cow_store *st)
{
    struct relocator *r = calloc(1, sizeof *r);

    if (!r)
        return cow_set_error(COW_ENOMEM, "out of memory");
    r->cfg.enabled = 1;
    r->cfg.slack_pct = COW_RELOC_SLACK_PCT;
    r->cfg.slack_min = COW_RELOC_SLACK_MIN;
    r->cfg.rate = COW_RELOC_RATE;
    st->relocator = r;
    return COW_OK;
}

void relocator_free(cow_store *st)
{
    free(st->relocator);
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
    cow_mutex_unlock(&st->lock);
}
