/*
 * subvols.c - the end of pass 2 of the checker: the subvolumes' names
 * (ROOT_NAMEs) against each other and the ROOT_ITEMs (see fsck.c).
 */
#include "fsck_int.h"

/* "subvolume 257 (snapshot 'nightly')"; "subvolume 256" for the live one.
 * BUF holds at least 1100 bytes. */
const char *fsck_sv_label(const struct fsck *f, const struct subvol *s, char *buf, size_t len)
{
    const char *kind = fsck_root_kind(s->flags);
    char nb[1024];
    if (s->name == NOIDX) {
        if (kind)
            snprintf(buf, len, "subvolume %" PRIu64 " (%s)", s->id, kind);
        else
            snprintf(buf, len, "subvolume %" PRIu64, s->id);
        return buf;
    }
    fsck_name_str(fsck_names_bytes(&f->names, s->name), f->names.v[s->name].len, nb, sizeof(nb));
    snprintf(buf, len, "subvolume %" PRIu64 " (%s%s'%s')", s->id, kind ? kind : "",
             kind ? " " : "", nb);
    return buf;
}

/* A subvolume name, for finding equal ones. */
struct nref {
    const uint8_t *p;
    unsigned len;
    uint64_t id;
};

static int nref_cmp(const void *a, const void *b)
{
    const struct nref *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Subvolume names, once the root tree has been walked: each ROOT_NAME
 * belongs to a subvolume (a ROOT_ITEM), every subvolume but 256 has
 * exactly one, and no two are equal.  A snapshot or branch may have been
 * made from a subvolume that was deleted since (a note).  What needs the
 * whole root tree is checked only if it was read completely.  Sets each
 * subvolume's name for the messages that follow.
 */
void fsck_check_root_names(struct fsck *f)
{
    int full = f->tree_ok[T_ROOT];
    const struct names *nm = &f->names;
    char nb[1024], nb2[1024], lb[1100];
    for (size_t i = 0; i < nm->n; i++) {
        const struct rname *r = &nm->v[i];
        uint32_t si;
        if (!fsck_map_get(&f->svmap, r->id, &si)) {
            if (full)
                fsck_problem(f, "root tree: ROOT_NAME '%s' names subvolume %" PRIu64
                           ", which has no ROOT_ITEM",
                        fsck_name_str(fsck_names_bytes(nm, i), r->len, nb, sizeof(nb)), r->id);
            continue;
        }
        if (si == SV_BAD)
            continue;
        struct subvol *s = &f->sv[si];
        if (s->name == NOIDX) {
            s->name = (uint32_t)i;
            continue;
        }
        fsck_problem(f, "root tree: subvolume %" PRIu64 " has more than one ROOT_NAME ('%s', '%s')",
                r->id,
                fsck_name_str(fsck_names_bytes(nm, s->name), nm->v[s->name].len, nb, sizeof(nb)),
                fsck_name_str(fsck_names_bytes(nm, i), r->len, nb2, sizeof(nb2)));
    }
    for (size_t i = 0; i < f->nsv && full; i++) {
        struct subvol *s = &f->sv[i];
        uint32_t si, one;
        if (s->id == COW_FS_TREE_OBJECTID || !fsck_map_get(&f->svmap, s->id, &si) || si != i)
            continue; /* 256, or a second ROOT_ITEM of one id */
        if (s->name == NOIDX)
            fsck_problem(f, "root tree: %s has no ROOT_NAME", fsck_sv_label(f, s, lb, sizeof(lb)));
        if (s->source >= COW_FS_TREE_OBJECTID && s->source != s->id &&
            !fsck_map_get(&f->svmap, s->source, &one))
            fsck_note(f, "%s was made from subvolume %" PRIu64 ", which no longer exists",
                 fsck_sv_label(f, s, lb, sizeof(lb)), s->source);
    }
    if (nm->n < 2)
        return;
    struct nref *v = malloc(nm->n * sizeof(*v));
    if (!v) {
        fsck_set_fatal(f, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < nm->n; i++)
        v[i] = (struct nref){fsck_names_bytes(nm, i), nm->v[i].len, nm->v[i].id};
    qsort(v, nm->n, sizeof(*v), nref_cmp);
    for (size_t i = 1; i < nm->n; i++)
        if (v[i].len == v[i - 1].len && !memcmp(v[i].p, v[i - 1].p, v[i].len))
            fsck_problem(f, "root tree: subvolumes %" PRIu64 " and %" PRIu64 " are both named '%s'",
                    v[i - 1].id, v[i].id, fsck_name_str(v[i].p, v[i].len, nb, sizeof(nb)));
    free(v);
}
