/*
 * subvol.c - snapshots and branches: subvolumes that share the live one's
 * tree blocks and data extents.
 *
 * A snapshot (read-only) or branch (writable) of subvolume S is a new
 * ROOT_ITEM pointing at S's root block, whose reference count goes up by
 * one; nothing else is copied.  The first change to a shared block copies
 * it and pushes the references down one level (Rodeh, "B-trees, Shadowing,
 * and Clones", ACM TOS 2008; btree.c's bt_cow), so both trees diverge by
 * copying only the paths they change.  Deleting one drops its tree the
 * same way (bt_drop_tree): what only it held is freed.
 *
 * A snapshot is taken inside the running transaction and committed with
 * it, with one flush: the new root points at S's root as it is in memory.
 * The blocks of S the running transaction wrote would be changed in place
 * by its next change, which the snapshot must not see; they are marked
 * shared (bt_mark_shared) and copied on change until the commit, as btrfs
 * forces COW on a root it has just snapshotted.  The cost is one commit,
 * whatever S's size; the writes pending in the transaction go into it
 * (their paths are copied once either way).
 *
 * In memory each subvolume other than the live one (st->fs_tree) is a
 * struct cow_subvol in st->subvols, the registry of roots.c (loaded at
 * open, written back at commit).  They are never freed while the store is
 * open: open files point at their roots (cow_inode.root), and a deleted
 * one is only marked dead.
 *
 * Locking: the public functions take store->lock; the others need it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commit.h"
#include "inject.h"
#include "ordered.h"
#include "roots.h"
#include "store_int.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int cow_subvol_name_valid(const char *name)
{
    return roots_name_valid(name);
}

/* 1 if a file of the tree R is open. */
static int root_in_use(cow_store *st, const struct cow_root *r)
{
    for (struct cow_inode *in = st->inodes; in; in = in->next)
        if (in->root == r)
            return 1;
    return 0;
}

/*
 * The flushed commit that ends a snapshot, branch, delete or restore, after
 * its change to the trees.  If it fails, the change cannot be taken back
 * alone (the running transaction holds other handles' work as well), and
 * these calls promise that nothing changed on error: the store stops
 * (txn_abort), and the container keeps its state before the call (btrfs
 * aborts the transaction the same way when a snapshot's commit fails).
 * Lock held.
 */
static int commit_change(cow_store *st)
{
    int rc = commit_transaction(st, 1);
    if (rc && !st->failed)
        rc = txn_abort(st, rc);
    return rc;
}

int subvol_create_ex(cow_store *st, const char *name, int kind, const char *source,
                     const char *drop, int incomplete)
{
    if (!roots_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad snapshot or branch name (1 to 255 bytes of UTF-8, "
                                         "no '/')");
    if (kind != COW_SUBVOL_SNAPSHOT && kind != COW_SUBVOL_BRANCH)
        return cow_set_error(COW_EINVAL, "kind must be COW_SUBVOL_SNAPSHOT or _BRANCH");
    /* what was written before this call is in the snapshot */
    int rc = file_writeback_all(st);
    if (rc)
        return rc;
    cow_mutex_lock(&st->lock);
    rc = txn_begin_change(st);
    /* Ordered extents in flight complete into the trees first (they are
     * writes made before this call); store->lock is released while
     * waiting, so everything below is looked up after.  Held from here to
     * the commit, no new one starts. */
    if (!rc)
        oe_wait_all(st);
    /* Data overwritten in place (a nodatacow file's) has no checksum the
     * one-flush commit could check: durable before the superblock that
     * gives the clone its bytes (invariant 13) */
    if (!rc && st->data_unflushed)
        rc = txn_flush(st);
    /* Room for the commit: past this point a failure stops the store
     * (the running transaction holds other handles' writes). */
    if (!rc)
        rc = alloc_reserve(st, 0, 64 + st->ndrefs / 8);
    struct cow_root *src = &st->fs_tree;
    if (!rc && source && *source) {
        struct cow_subvol *s = roots_find(st, source);
        if (s && !(s->root.flags & COW_ROOT_F_INCOMPLETE))
            src = &s->root;
        else
            rc = cow_set_error(COW_ENOENT, "no snapshot or branch named %s", source);
    }
    if (!rc && roots_find(st, name))
        rc = cow_set_error(COW_EEXIST, "a snapshot or branch named %s exists", name);
    struct cow_subvol *sv = NULL;
    if (!rc) {
        /* past every id in use or named as a source, so that a source id
         * never comes to name a different, later subvolume */
        uint64_t id = COW_FS_TREE_OBJECTID;
        for (struct cow_subvol *s = st->subvols; s; s = s->next) {
            if (s->root.objectid > id)
                id = s->root.objectid;
            if (s->root.source > id)
                id = s->root.source;
        }
        sv = calloc(1, sizeof *sv);
        if (!sv)
            rc = cow_set_error(COW_ENOMEM, "out of memory");
        else {
            sv->root = *src;
            sv->root.objectid = id + 1;
            sv->root.refcounted = 1;
            sv->root.flags = incomplete                   ? COW_ROOT_F_BRANCH | COW_ROOT_F_INCOMPLETE
                             : kind == COW_SUBVOL_SNAPSHOT ? COW_ROOT_F_SNAPSHOT
                                                           : COW_ROOT_F_BRANCH;
            sv->root.ctime = now_ns();
            sv->root.source = src->objectid;
            sv->root.dirty = 1; /* its ROOT_ITEM goes in at commit */
            /* from now on, extents of both may be shared: none is written
             * in place (extent_map.c's nocow_writable) */
            sv->root.last_snapshot = src->last_snapshot = st->transid;
            src->dirty = 1;
            /* The clone shares the blocks the running transaction wrote
             * too: no commit first (it would copy the changed paths
             * once more); those blocks are copied on change instead, and
             * one commit writes both roots. */
            bt_mark_shared(st, src);
            st->txn_dirty = 1;
            strcpy(sv->name, name);
            sv->next = st->subvols;
            st->subvols = sv;
        }
    }
    if (!rc) {
        struct cow_key nk = {sv->root.objectid, COW_ROOT_NAME, 0};
        /* Invariant 5: the root read above gets its reference in this
         * same hold of the lock; no commit (relocation commits too) can
         * free it in between. */
#ifdef COW_BREAK_CLONE_UNLOCKED
        cow_mutex_unlock(&st->lock); /* broken on purpose (make race-proof) */
        COW_INJECT("subvol:root_read");
        cow_mutex_lock(&st->lock);
#else
        COW_INJECT("subvol:root_read");
#endif
        rc = refs_add(st, sv->root.bytenr, COW_BLOCK_SIZE, 0, sv->root.level, +1);
        if (!rc)
            rc = bt_insert(st, &st->root_tree, &nk, name, strlen(name));
        if (!rc && drop) {
            rc = file_unlink_in(st, &sv->root, drop); /* copies the path only */
            if (rc == COW_ENOENT)
                rc = COW_OK;
            else if (rc)
                goto out; /* aborted */
        }
        if (rc)
            rc = txn_abort(st, rc); /* the store stops */
        else
            rc = commit_change(st);
    }
out:
    cow_mutex_unlock(&st->lock);
    return rc;
}

int subvol_finish(cow_store *st, const char *name, int kind)
{
    if (!roots_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad snapshot or branch name");
    if (kind != COW_SUBVOL_SNAPSHOT && kind != COW_SUBVOL_BRANCH)
        return cow_set_error(COW_EINVAL, "kind must be COW_SUBVOL_SNAPSHOT or _BRANCH");
    int rc = file_writeback_all(st); /* what was written in it is in it */
    if (rc)
        return rc;
    cow_mutex_lock(&st->lock);
    rc = txn_begin_change(st);
    struct cow_subvol *sv = rc ? NULL : roots_find(st, name);
    if (!rc && (!sv || !(sv->root.flags & COW_ROOT_F_INCOMPLETE)))
        rc = cow_set_error(COW_ENOENT, "no unfinished branch named %s", name);
    if (!rc && kind == COW_SUBVOL_SNAPSHOT && root_in_use(st, &sv->root))
        rc = cow_set_error(COW_EBUSY, "%s has open files", name);
    if (!rc) {
        uint64_t flags = sv->root.flags;
        sv->root.flags = kind == COW_SUBVOL_SNAPSHOT ? COW_ROOT_F_SNAPSHOT : COW_ROOT_F_BRANCH;
        sv->root.dirty = 1;
        st->txn_dirty = 1;
        rc = commit_transaction(st, 1);
        if (rc && !st->failed)
            sv->root.flags = flags; /* unfinished still: the next commit writes it so */
    }
    cow_mutex_unlock(&st->lock);
    return rc;
}

int cow_subvol_kind(cow_store *st, const char *name, int *kind)
{
    *kind = 0;
    if (!roots_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad snapshot or branch name");
    cow_mutex_lock(&st->lock);
    struct cow_subvol *sv = roots_find(st, name);
    int rc = COW_OK;
    if (!sv)
        rc = cow_set_error(COW_ENOENT, "no snapshot or branch named %s", name);
    else
        *kind = (sv->root.flags & COW_ROOT_F_INCOMPLETE) ? COW_SUBVOL_INCOMPLETE
                : sv->root.flags == COW_ROOT_F_SNAPSHOT  ? COW_SUBVOL_SNAPSHOT
                                                         : COW_SUBVOL_BRANCH;
    cow_mutex_unlock(&st->lock);
    return rc;
}

int cow_subvol_id(cow_store *st, const char *name, uint64_t *id)
{
    *id = 0;
    if (!name || !*name) {
        *id = COW_FS_TREE_OBJECTID;
        return COW_OK;
    }
    if (!roots_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad snapshot or branch name");
    cow_mutex_lock(&st->lock);
    struct cow_subvol *sv = roots_find(st, name);
    int rc = COW_OK;
    if (!sv)
        rc = cow_set_error(COW_ENOENT, "no snapshot or branch named %s", name);
    else
        *id = sv->root.objectid;
    cow_mutex_unlock(&st->lock);
    return rc;
}

/* Drops SV's tree and its items in the running transaction; aborts it on
 * error.  Lock held. */
static int subvol_drop(cow_store *st, struct cow_subvol *sv)
{
    struct cow_key k = {sv->root.objectid, COW_ROOT_ITEM, 0};
    struct cow_key nk = {sv->root.objectid, COW_ROOT_NAME, 0};
    int rc = bt_drop_tree(st, &sv->root);
    if (!rc)
        rc = bt_delete(st, &st->root_tree, &k);
    if (!rc)
        rc = bt_delete(st, &st->root_tree, &nk);
    if (rc)
        return txn_abort(st, rc);
    sv->dead = 1;
    return COW_OK;
}

int subvol_drop_incomplete(cow_store *st)
{
    lk_assert_held(&st->lock);
    for (struct cow_subvol *sv = st->subvols; sv; sv = sv->next) {
        if (sv->dead || !(sv->root.flags & COW_ROOT_F_INCOMPLETE))
            continue;
        int rc = txn_begin_change(st);
        if (!rc)
            rc = subvol_drop(st, sv);
        if (rc)
            return rc;
    }
    return COW_OK;
}

/* The tree NAME names: the live one for NULL or "", else a snapshot or
 * branch, finished unless UNFINISHED.  COW_ENOENT.  Lock held. */
static int subvol_root(cow_store *st, const char *name, int unfinished, struct cow_root **out,
                       struct cow_subvol **svp)
{
    *out = NULL;
    if (svp)
        *svp = NULL;
    if (!name || !*name) {
        *out = &st->fs_tree;
        return COW_OK;
    }
    struct cow_subvol *sv = roots_find(st, name);
    if (!sv || (!unfinished && (sv->root.flags & COW_ROOT_F_INCOMPLETE)))
        return cow_set_error(COW_ENOENT, "no snapshot or branch named %s", name);
    *out = &sv->root;
    if (svp)
        *svp = sv;
    return COW_OK;
}

int subvol_restore(cow_store *st, const char *target, const char *source)
{
    if ((target && *target && !roots_name_valid(target)) || !roots_name_valid(source))
        return cow_set_error(COW_EINVAL, "bad snapshot or branch name");
    int rc = file_writeback_all(st);
    if (rc)
        return rc;
    /* the open inodes of TARGET, held (nref) while their invalidate locks
     * are taken outside store->lock */
    struct cow_inode **v = NULL;
    uint64_t *oldino = NULL;
    size_t n = 0;
    struct cow_root *t = NULL, *s = NULL;
    cow_mutex_lock(&st->lock);
    rc = subvol_root(st, target, 0, &t, NULL);
    if (!rc)
        rc = subvol_root(st, source, 1, &s, NULL);
    if (!rc && s == t)
        rc = cow_set_error(COW_EINVAL, "cannot restore %s from itself", source);
    if (!rc && (t->flags & COW_ROOT_F_SNAPSHOT))
        rc = cow_set_error(COW_EROFS, "%s is a snapshot (read-only): only the live files or a "
                                      "branch can be restored",
                           target);
    for (struct cow_inode *in = st->inodes; in && !rc; in = in->next)
        if (in->root == t) {
            if (in->orphan)
                rc = cow_set_error(COW_EBUSY, "%s has a file that was removed while open",
                                   target && *target ? target : "the live subvolume");
            n++;
        }
    if (!rc && n && (!(v = calloc(n, sizeof *v)) || !(oldino = calloc(n, sizeof *oldino))))
        rc = cow_set_error(COW_ENOMEM, "out of memory");
    n = 0;
    for (struct cow_inode *in = st->inodes; in && !rc; in = in->next)
        if (in->root == t) {
            in->nref++;
            v[n++] = in;
        }
    cow_mutex_unlock(&st->lock);
    for (size_t i = 0; i < n; i++)
        pc_lock_excl(v[i]);
    COW_INJECT("restore:relock");
    cow_mutex_lock(&st->lock);
    /* Again, since the lock was let go: SOURCE may have been deleted, and
     * TARGET deleted (and its name taken by a new branch), or a file of it
     * opened, meanwhile.  Going on with the old TARGET would drop a tree
     * that is gone already, or leave an open file unbound. */
    if (!rc)
        rc = subvol_root(st, source, 1, &s, NULL);
    struct cow_root *t2 = NULL;
    if (!rc && subvol_root(st, target, 0, &t2, NULL) != COW_OK)
        rc = cow_set_error(COW_ENOENT, "%s was deleted during the restore", target);
    if (!rc && t2 != t)
        rc = cow_set_error(COW_ENOENT, "%s was deleted and made again during the restore",
                           target);
    for (struct cow_inode *in = st->inodes; in && !rc; in = in->next)
        if (in->root == t) {
            size_t i = 0;
            while (i < n && v[i] != in)
                i++;
            if (i == n || in->orphan)
                rc = cow_set_error(COW_EBUSY, "a file of %s was opened or removed during the "
                                              "restore; try again",
                                   target && *target ? target : "the live subvolume");
        }
    if (!rc)
        rc = txn_begin_change(st);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = pc_writeback(st, v[i]);
        oe_wait_range(st, v[i], 0, UINT64_MAX);
    }
    if (!rc)
        rc = commit_transaction(st, 0); /* every block of both trees clean */
    if (!rc) {
        struct cow_root old = *t;
        t->bytenr = s->bytenr;
        t->generation = s->generation;
        t->level = s->level;
        if (s->next_ino > t->next_ino)
            t->next_ino = s->next_ino;
        t->last_snapshot = s->last_snapshot = st->transid; /* now shared */
        t->dirty = s->dirty = 1;
        st->txn_dirty = 1;
        st->log_blocked = 1; /* the log cannot say "this tree moved" */
        rc = refs_add(st, s->bytenr, COW_BLOCK_SIZE, 0, s->level, +1);
        if (!rc)
            rc = bt_drop_tree(st, &old);
        for (size_t i = 0; i < n && !rc; i++) {
            oldino[i] = v[i]->ino;
            rc = file_rebind(st, v[i]);
        }
        if (rc) {
            for (size_t i = 0; i < n; i++)
                if (oldino[i])
                    v[i]->ino = oldino[i];
            rc = txn_abort(st, rc); /* the store stops */
        } else {
            rc = commit_change(st);
        }
    }
    for (size_t i = 0; i < n; i++)
        v[i]->nref--;
    cow_mutex_unlock(&st->lock);
    for (size_t i = 0; i < n; i++)
        pc_unlock(v[i]);
    free(v);
    free(oldino);
    return rc;
}

int subvol_delete(cow_store *st, const char *name)
{
    if (!roots_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad snapshot or branch name");
    cow_mutex_lock(&st->lock);
    int rc = txn_begin_change(st);
    struct cow_subvol *sv = rc ? NULL : roots_find(st, name);
    if (!rc && !sv)
        rc = cow_set_error(COW_ENOENT, "no snapshot or branch named %s", name);
    if (!rc && root_in_use(st, &sv->root))
        rc = cow_set_error(COW_EBUSY, "%s has open files", name);
    if (!rc)
        rc = commit_transaction(st, 0); /* its blocks clean */
    if (!rc)
        rc = subvol_drop(st, sv);
    if (!rc)
        rc = commit_change(st);
    cow_mutex_unlock(&st->lock);
    return rc;
}

int cow_subvol_list(cow_store *st, int (*cb)(void *arg, const struct cow_subvol_info *si),
                    void *arg)
{
    size_t n = 0;
    struct cow_subvol_info *v = NULL;
    cow_mutex_lock(&st->lock);
    for (struct cow_subvol *sv = st->subvols; sv; sv = sv->next)
        n += !sv->dead && !(sv->root.flags & COW_ROOT_F_INCOMPLETE);
    int rc = COW_OK;
    if (n && !(v = calloc(n, sizeof *v)))
        rc = cow_set_error(COW_ENOMEM, "out of memory");
    size_t i = 0;
    for (struct cow_subvol *sv = st->subvols; sv && !rc; sv = sv->next) {
        if (sv->dead || (sv->root.flags & COW_ROOT_F_INCOMPLETE))
            continue;
        strcpy(v[i].name, sv->name);
        v[i].id = sv->root.objectid;
        v[i].kind = sv->root.flags == COW_ROOT_F_SNAPSHOT ? COW_SUBVOL_SNAPSHOT
                                                          : COW_SUBVOL_BRANCH;
        v[i].ctime_ns = sv->root.ctime;
        v[i].source_id = sv->root.source;
        struct cow_subvol *src = roots_by_id(st, sv->root.source);
        if (sv->root.source == COW_FS_TREE_OBJECTID)
            v[i].source[0] = 0;
        else if (src && !src->dead)
            strcpy(v[i].source, src->name);
        else
            strcpy(v[i].source, "(deleted)");
        i++;
    }
    cow_mutex_unlock(&st->lock);
    /* oldest first */
    for (size_t a = 0; a < n && !rc; a++) {
        size_t m = a;
        for (size_t b = a + 1; b < n; b++)
            if (v[b].id < v[m].id)
                m = b;
        struct cow_subvol_info t = v[a];
        v[a] = v[m];
        v[m] = t;
        rc = cb(arg, &v[a]);
    }
    free(v);
    return rc;
}

int subvol_file_open(cow_store *st, const char *subvol, const char *name, int create,
                         cow_file **out)
{
    *out = NULL;
    if (!subvol || !*subvol)
        return file_open_in(st, &st->fs_tree, name, create, out);
    cow_mutex_lock(&st->lock);
    struct cow_subvol *sv = roots_find(st, subvol);
    int ro = sv && sv->root.flags == COW_ROOT_F_SNAPSHOT;
    cow_mutex_unlock(&st->lock);
    if (!sv)
        return cow_set_error(COW_ENOENT, "no snapshot or branch named %s", subvol);
    if (ro && create) {
        /* a snapshot has what it has: only an existing file opens */
        int rc = file_open_in(st, &sv->root, name, 0, out);
        if (rc == COW_ENOENT)
            rc = cow_set_error(COW_EROFS, "%s is a snapshot (read-only)", subvol);
        return rc;
    }
    int rc = file_open_in(st, &sv->root, name, create, out);
    if (rc == COW_OK && sv->dead) { /* deleted meanwhile */
        file_close(*out);
        *out = NULL;
        rc = cow_set_error(COW_ENOENT, "no snapshot or branch named %s", subvol);
    }
    return rc;
}

int subvol_exists(cow_store *st, const char *subvol, const char *name, int *exists)
{
    *exists = 0;
    if (!subvol || !*subvol)
        return file_exists(st, name, exists);
    if (!file_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad file name");
    cow_mutex_lock(&st->lock);
    struct cow_subvol *sv = roots_find(st, subvol);
    uint64_t ino;
    int rc = sv ? file_lookup(st, &sv->root, name, &ino)
                : cow_set_error(COW_ENOENT, "no snapshot or branch named %s", subvol);
    if (sv && rc == COW_OK)
        *exists = 1;
    else if (sv && rc == COW_ENOENT)
        rc = COW_OK;
    cow_mutex_unlock(&st->lock);
    return rc;
}

int subvol_unlink(cow_store *st, const char *subvol, const char *name)
{
    if (!subvol || !*subvol)
        return file_unlink(st, name);
    if (!file_name_valid(name))
        return cow_set_error(COW_EINVAL, "bad file name");
    cow_mutex_lock(&st->lock);
    struct cow_subvol *sv = roots_find(st, subvol);
    int rc;
    if (!sv)
        rc = cow_set_error(COW_ENOENT, "no snapshot or branch named %s", subvol);
    else if (sv->root.flags & COW_ROOT_F_SNAPSHOT)
        rc = cow_set_error(COW_EROFS, "%s is a snapshot (read-only)", subvol);
    else
        rc = file_unlink_in(st, &sv->root, name);
    cow_mutex_unlock(&st->lock);
    return rc;
}
