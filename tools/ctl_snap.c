/*
 * ctl_snap.c - cowctl's snapshot, branch, restore, delete and list
 * (ctl_snap.h).
 */
#include "ctl_snap.h"

#include "cowvfs.h"
#include "ctl_cli.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Columns S takes on a terminal: its UTF-8 characters (wide ones count as
 * one; names are rarely made of them). */
static int columns(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Prints S left-aligned in a column WIDTH wide (see columns()). */
static void print_left(const char *s, int width)
{
    fputs(s, stdout);
    for (int n = columns(s); n < width; n++)
        fputc(' ', stdout);
}

/*
 * Reports the failure RC of a cowvfs_container_* call on PATH with the
 * message MSG it returned (or SQLite's name for RC).  cowctl holds no
 * connection of its own, so SQLITE_BUSY means that another process has the
 * container open, and the message says so first.
 */
static void api_error(const char *path, int rc, const char *msg)
{
    const char *why = msg ? msg : sqlite3_errstr(rc);
    if (rc == SQLITE_BUSY)
        cli_err("%s: the container is in use by another process (%s)", path, why);
    else
        cli_err("%s: %s", path, why);
}

/* The end of a command that made one cowvfs_container_* call on PATH: reports
 * its failure RC (api_error), frees its message MSG, and returns the exit
 * status (0 if RC is SQLITE_OK, else 1). */
static int api_done(const char *path, int rc, char *msg)
{
    if (rc != SQLITE_OK)
        api_error(path, rc, msg);
    sqlite3_free(msg);
    return rc != SQLITE_OK;
}

/* snapshot and branch: KIND is COWVFS_SNAPSHOT or COWVFS_BRANCH. */
static int make_copy(int argc, char **argv, int kind)
{
    static const char *const opts[] = {"--from=", NULL};
    const char *vals[1] = {0};
    const char *ops[2];
    int n, rc = cli_parse_args(argc, argv, opts, vals, ops, 2, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *path = ops[0], *name = ops[1], *source = vals[0];
    if (source && !source[0])
        return cli_bad_usage("--from needs the name of a snapshot or branch");
    if (cli_check_readable(path))
        return 1;
    char *msg = NULL;
    if (kind == COWVFS_SNAPSHOT)
        rc = cowvfs_container_snapshot(path, source, name, &msg);
    else
        rc = cowvfs_container_branch(path, source, name, &msg);
    return api_done(path, rc, msg);
}

int ctl_snap_snapshot(int argc, char **argv)
{
    return make_copy(argc, argv, COWVFS_SNAPSHOT);
}

int ctl_snap_branch(int argc, char **argv)
{
    return make_copy(argc, argv, COWVFS_BRANCH);
}

const char ctl_snap_snapshot_help[] =
    "Makes snapshot NAME, a read-only copy of the database in the container at\n"
    "PATH, or of snapshot or branch SOURCE.  It shares every block with its\n"
    "source, so it takes constant time and almost no space until one of them\n"
    "changes.  It holds the last committed transaction: a hot journal left by\n"
    "a crash is rolled back in the snapshot (the source is not touched).  Read\n"
    "it with the URI file:PATH?vfs=cow&snapshot=NAME (or ATTACH it).\n"
    "\n"
    "NAME: 1 to 255 bytes of UTF-8, no '/', unique among the container's\n"
    "snapshots and branches (put -- before a NAME that starts with '-').\n"
    "The container must not be open in another process.\n"
    "\n"
    "  --from SOURCE  copy snapshot or branch SOURCE instead of the database\n";

const char ctl_snap_branch_help[] =
    "Makes branch NAME, a writable copy of the database in the container at\n"
    "PATH, or of snapshot or branch SOURCE, sharing every block with it until\n"
    "either side changes (constant time, as a snapshot).  Open it with the\n"
    "URI file:PATH?vfs=cow&branch=NAME; its changes do not reach its source.\n"
    "\n"
    "NAME: as for cowctl snapshot.  The container must not be open in another\n"
    "process.\n"
    "\n"
    "  --from SOURCE  copy snapshot or branch SOURCE instead of the database\n";

int ctl_snap_restore(int argc, char **argv)
{
    static const char *const opts[] = {"--into=", NULL};
    const char *vals[1] = {0};
    const char *ops[2];
    int n, rc = cli_parse_args(argc, argv, opts, vals, ops, 2, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *path = ops[0], *name = ops[1], *target = vals[0];
    if (target && !target[0])
        return cli_bad_usage("--into needs the name of a branch");
    if (cli_check_readable(path))
        return 1;
    char *msg = NULL;
    rc = cowvfs_container_restore(path, target, name, &msg);
    return api_done(path, rc, msg);
}

const char ctl_snap_restore_help[] =
    "Resets the database in the container at PATH, or branch BRANCH, to\n"
    "snapshot or branch NAME, in constant time: its content becomes NAME's,\n"
    "and its current content is dropped (take a snapshot first to keep it).\n"
    "NAME itself stays as it is.  The container must not be open in another\n"
    "process.\n"
    "\n"
    "  --into BRANCH  reset branch BRANCH instead of the database (a snapshot\n"
    "                 cannot be reset)\n";

int ctl_snap_delete(int argc, char **argv)
{
    const char *ops[2];
    int n, rc = cli_parse_args(argc, argv, NULL, NULL, ops, 2, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *path = ops[0], *name = ops[1];
    if (cli_check_readable(path))
        return 1;
    char *msg = NULL;
    rc = cowvfs_container_delete(path, name, &msg);
    return api_done(path, rc, msg);
}

const char ctl_snap_delete_help[] =
    "Deletes snapshot or branch NAME of the container at PATH, freeing exactly\n"
    "the space only it held (its EXCLUSIVE bytes in cowctl list and df).\n"
    "Snapshots and branches made from it stay (their source then lists as\n"
    "\"(deleted)\").  The container must not be open in another process.\n";

/* One snapshot or branch as cowvfs_container_list() gave it, copied. */
struct listent {
    char *name;
    char *source; /* NULL: the live database */
    int snapshot; /* 1 snapshot, 0 branch */
    long long created_ms, exclusive, shared;
};

struct listing {
    struct listent *v;
    size_t n, cap;
    int nomem;
};

static int list_cb(void *arg, const cowvfs_subvol_info *si)
{
    struct listing *l = arg;
    struct listent *nv = cli_room_for_one(l->v, l->n, &l->cap, sizeof(*nv), &l->nomem);
    if (!nv)
        return 1;
    l->v = nv;
    struct listent *e = &l->v[l->n];
    e->name = strdup(si->zName);
    e->source = si->zSource ? strdup(si->zSource) : NULL;
    if (!e->name || (si->zSource && !e->source)) {
        free(e->name);
        free(e->source);
        l->nomem = 1;
        return 1;
    }
    e->snapshot = si->eKind == COWVFS_SNAPSHOT;
    e->created_ms = si->iCreatedMs;
    e->exclusive = si->nExclusive;
    e->shared = si->nShared;
    l->n++;
    return 0;
}

/* "2024-05-31T12:00:00Z": MS (since 1970) in UTC, to the second. */
static const char *utc_time(long long ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "?");
    return buf;
}

int ctl_snap_list(int argc, char **argv)
{
    const char *path;
    int n, rc = cli_parse_args(argc, argv, NULL, NULL, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (cli_check_readable(path))
        return 1;
    struct listing l = {0};
    char *msg = NULL;
    int ret = 1;
    rc = cowvfs_container_list(path, list_cb, &l, &msg);
    if (l.nomem) {
        cli_err("%s: out of memory", path);
        goto out;
    }
    if (rc != SQLITE_OK) {
        api_error(path, rc, msg);
        goto out;
    }
    char q[CLI_PRINTABLE_MAX], t[32];
    int wname = columns("NAME"), wsource = columns("SOURCE");
    for (size_t i = 0; i < l.n; i++) {
        int w = columns(cli_printable(l.v[i].name, q, sizeof(q)));
        if (w > wname)
            wname = w;
        w = l.v[i].source ? columns(cli_printable(l.v[i].source, q, sizeof(q))) : 1;
        if (w > wsource)
            wsource = w;
    }
    print_left("NAME", wname);
    printf("  %-8s  %-20s  ", "KIND", "CREATED");
    print_left("SOURCE", wsource);
    printf("  %14s  %14s\n", "EXCLUSIVE", "SHARED");
    for (size_t i = 0; i < l.n; i++) {
        const struct listent *e = &l.v[i];
        print_left(cli_printable(e->name, q, sizeof(q)), wname);
        printf("  %-8s  %-20s  ", e->snapshot ? "snapshot" : "branch",
               utc_time(e->created_ms, t, sizeof(t)));
        print_left(e->source ? cli_printable(e->source, q, sizeof(q)) : "-", wsource);
        printf("  %14lld  %14lld\n", e->exclusive, e->shared);
    }
    ret = 0;
out:
    sqlite3_free(msg);
    for (size_t i = 0; i < l.n; i++) {
        free(l.v[i].name);
        free(l.v[i].source);
    }
    free(l.v);
    return ret;
}

const char ctl_snap_list_help[] =
    "Lists the snapshots and branches of the container at PATH, oldest first,\n"
    "one a line under a header line:\n"
    "  NAME       its name (control characters and backslashes escaped)\n"
    "  KIND       snapshot (read-only) or branch (writable)\n"
    "  CREATED    when it was made, UTC\n"
    "  SOURCE     what it was made from: \"-\" for the live database, else a\n"
    "             snapshot or branch (\"(deleted)\" if that is gone)\n"
    "  EXCLUSIVE  bytes only it references: what deleting it would free\n"
    "  SHARED     bytes it shares with the others\n"
    "Opens the container read-only; it must not be open in another process.\n";
