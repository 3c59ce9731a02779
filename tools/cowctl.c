/*
 * cowctl.c - look into, check and convert cowvfs containers; make, restore
 * and delete their snapshots and branches.
 *
 *   cowctl fsck [--no-data] [-v] [-q] PATH   check everything (exit 0 clean, 1 not)
 *   cowctl ls PATH                           the files in the container
 *   cowctl df PATH                           space: data, metadata, free, slack;
 *                                            and per database, exclusive and shared
 *   cowctl balance [--usage PCT] PATH        relocate block groups, shrink the file
 *   cowctl dump [--block N] [--hex] PATH     every tree and item, decoded
 *   cowctl import PLAIN.db APP.db            ordinary database (or container) -> container
 *   cowctl export [--container] APP.db PLAIN.db  container -> ordinary database (or container)
 *   cowctl snapshot PATH NAME [--from SRC]   read-only copy of the database (or SRC)
 *   cowctl branch PATH NAME [--from SRC]     writable copy of the database (or SRC)
 *   cowctl restore PATH NAME [--into BR]     reset the database (or branch BR) to NAME
 *   cowctl delete PATH NAME                  delete snapshot or branch NAME
 *   cowctl list PATH                         the snapshots and branches
 *   cowctl --rados POOL/NAME COMMAND ARGS    any of them on a container in RADOS
 *                                            (POOL/NAME is PATH, or APP.db)
 *
 * fsck and dump read the container file directly (tools/fsck/); ls and df
 * open it with the store (read-only), balance read-write; import and
 * export copy a database with SQLite's online backup API between the
 * default "unix" VFS and "cow".
 * snapshot, branch, restore, delete and list go through the VFS's container
 * API (cowvfs_container_*, include/cowvfs.h), which makes each snapshot at a
 * transaction boundary (a hot journal left by a crash is rolled back in the
 * copy, never in the source).
 *
 * Every command works offline: a container open in another process is
 * refused ("in use by another process"), never waited for.
 *
 * With --rados (built when librados is there: COWCTL_RADOS, tools/ctl_rados.c)
 * PATH, or import's and export's APP.db, is the container POOL/NAME (or
 * POOL:NAMESPACE/NAME) of the cluster $CEPH_CONF names; fsck and dump read
 * it where it lies, through the RADOS device (no local copy); every command
 * takes its writer's lock, so a container a writer has open elsewhere is
 * refused in the same way.
 *
 * Exit status: 0 success (fsck: clean), 1 failure (fsck: problems found),
 * 2 bad usage.  Errors are one line on stderr: "cowctl: CMD: PATH: why".
 *
 * This file holds main and the commands that look into a container (fsck,
 * ls, df, balance, dump); import and export are in tools/ctl_copy.c,
 * snapshot, branch, restore, delete and list in tools/ctl_snap.c; what
 * every command shares of the command line (messages, options and
 * operands, the container operand) is in tools/ctl_cli.c.
 */
#include "cowvfs.h"
#include "ctl_cli.h"
#include "ctl_copy.h"
#include "ctl_snap.h"
#ifdef COWCTL_RADOS
#include "ctl_rados.h"
#endif
#include "fsck.h"
#include "lockspace.h"
#include "progress.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "4.0 MiB" */
static const char *human(uint64_t n, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 " B", n);
    else
        snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}

/* Opens the container with the store, with cow_store_open()'s FLAGS;
 * prints why on failure. */
static cow_store *open_store_flags(const char *path, int flags)
{
    cow_store *st = NULL;
    if (cli_check_readable(path))
        return NULL;
    int rc;
#ifdef COWCTL_RADOS
    if (cli_is_rados(path))
        rc = ctl_rados_open_store(path, flags, &st);
    else
#endif
        rc = cow_store_open(path, flags, &st);
    if (rc == COW_EBUSY && cli_is_rados(path)) {
        cli_err("%s: %s", path, cow_store_last_error(NULL));
        return NULL;
    }
    if (rc != COW_OK && cli_is_rados(path)) {
        cli_err("%s: %s (%s)", path, cow_strerror(rc), cow_store_last_error(NULL));
        return NULL;
    }
    if (rc != COW_OK) {
        if (rc == COW_EBUSY)
            cli_err("%s: the container is in use by another process", path);
        else
            cli_err("%s: %s", path, cow_strerror(rc));
        return NULL;
    }
    return st;
}

/* Opens the container read-only with the store; prints why on failure. */
static cow_store *open_store(const char *path)
{
    return open_store_flags(path, COW_OPEN_READONLY);
}

/* Closes ST (opened by open_store on PATH); a failure to close is reported
 * and makes the exit status 1 unless RET (the command's status so far)
 * already is.  Returns the command's exit status. */
static int close_store(cow_store *st, const char *path, int ret)
{
    int rc = cow_store_close(st);
    if (rc != COW_OK && !ret) {
        cli_err("%s: closing: %s", path, cow_strerror(rc));
        ret = 1;
    }
    return ret;
}


#ifndef COWCTL_RADOS
struct ctl_rados_src {
    struct cow_fsck_src src;
};
#endif

/* The --rados container SPEC opened into RS for fsck and dump, which read
 * it where it lies, under its writer's lock.  0, or 1 after printing why. */
static int rados_src_open(const char *spec, struct ctl_rados_src *rs)
{
    memset(rs, 0, sizeof(*rs));
#ifdef COWCTL_RADOS
    int rc = ctl_rados_src_open(spec, rs);
    if (rc == COW_OK)
        return 0;
    if (rc == COW_EBUSY)
        cli_err("%s: %s", spec, cow_store_last_error(NULL));
    else
        cli_err("%s: %s (%s)", spec, cow_strerror(rc), cow_store_last_error(NULL));
#else
    (void)spec;
#endif
    return 1;
}

/* Closes RS (rados_src_open()'s), saying why its reads failed if any did. */
static void rados_src_close(struct ctl_rados_src *rs)
{
#ifdef COWCTL_RADOS
    if (rs->nfailed)
        cli_err("%s: %" PRIu64 " read%s failed; the first: %s", rs->src.name, rs->nfailed,
            rs->nfailed == 1 ? "" : "s", rs->first_error);
    ctl_rados_src_close(rs);
#else
    (void)rs;
#endif
}

/* ------------------------------------------------------------------ */
/* fsck                                                                */
/* ------------------------------------------------------------------ */

/* cow_fsck_progress()'s callback: the progress line (on a terminal). */
static void fsck_progress_cb(void *arg, uint64_t done, uint64_t total)
{
    progress_update(arg, done, total, done);
}

/* 1 if another process has PATH open as a container: it holds the
 * shared state's dead-man switch (store/lockspace.h) read-locked. */
static int open_elsewhere(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                       .l_start = (off_t)COW_LOCK_STORE_DMS, .l_len = 1};
    int live = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    close(fd);
    return live;
}

static int cmd_fsck(int argc, char **argv)
{
    static const char *const opts[] = {"--data", "--no-data", "--verbose", "-v", "--quiet", "-q",
                                       NULL};
    const char *vals[7] = {0};
    const char *path;
    int n, rc = cli_parse_args(argc, argv, opts, vals, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    unsigned flags = vals[1] ? 0 : COW_FSCK_DATA;
    int verbose = vals[2] || vals[3], quiet = vals[4] || vals[5];
    if (verbose)
        flags |= COW_FSCK_NOTES;
    if (cli_check_readable(path))
        return 1;
    /* fsck reads the last commit block by block with plain reads: a
     * process changing the container meanwhile would free and reuse what
     * it reads, and fsck would report damage that is not there (in
     * RADOS, the writer's lock keeps writers away) */
    struct ctl_rados_src rs;
    if (cli_is_rados(path) && rados_src_open(path, &rs))
        return 1;
    if (!cli_is_rados(path) && open_elsewhere(path)) {
        cli_err("%s: the container is open in another process; fsck checks a closed container "
            "(close it, or check a copy: cowctl export, or cp while it is closed)",
            path);
        return 1;
    }
    struct cow_fsck_result r;
    struct progress pr;
    progress_begin(&pr, "fsck");
    if (cli_is_rados(path))
        rc = cow_fsck_src_progress(&rs.src, flags, stdout, &r, fsck_progress_cb, &pr);
    else
        rc = cow_fsck_progress(path, flags, stdout, &r, fsck_progress_cb, &pr);
    if (rc >= 0)
        progress_update(&pr, pr.total, pr.total, pr.total); /* the whole check done */
    progress_end(&pr);
    if (cli_is_rados(path))
        rados_src_close(&rs);
    if (rc < 0) {
        cli_err("%s: cannot check: %s", path, strerror(-rc));
        return 1;
    }
    char h1[32];
    if (rc == 0) {
        if (!quiet)
            printf("%s: clean: generation %" PRIu64 ", %" PRIu64 " tree blocks (%" PRIu64
                   " shared), %" PRIu64 " data extents (%s), %" PRIu64 " files in %" PRIu64
                   " subvolumes, %" PRIu64 " bytes used, %" PRIu64 " physical, %" PRIu64
                   " remapped%s%s\n",
                   path, r.generation, r.tree_blocks, r.shared_blocks, r.data_extents,
                   human(r.data_bytes, h1, sizeof(h1)), r.files, r.subvolumes, r.bytes_used,
                   r.physical_bytes, r.remapped_bytes,
                   (flags & COW_FSCK_DATA) ? "" : "; data not read",
                   r.notes && !verbose ? " (notes: -v shows them)" : "");
        return 0;
    }
    if (!quiet)
        fprintf(stderr, "cowctl: fsck: %s: %" PRIu64 " problem%s\n", path, r.problems,
                r.problems == 1 ? "" : "s");
    return 1;
}

static const char help_fsck[] =
    "Checks the container at PATH without the store code: both superblocks,\n"
    "every block of every tree (checksum, header, key order), reference counts of\n"
    "tree blocks and data extents, checksum items, block group accounting,\n"
    "overlapping space, the files of every subvolume, and every data block\n"
    "against its checksum.\n"
    "\n"
    "Prints one line per problem on stdout and exits 1, or prints a summary and\n"
    "exits 0 when the container is clean; the summary counts the bytes used,\n"
    "physical and remapped as `cowctl df` does, recomputed from the trees.  When\n"
    "stderr is a terminal, a progress\n"
    "line shows the bytes read of those the superblock counts as used.\n"
    "\n"
    "  --data        read and verify every data block (the default)\n"
    "  --no-data     skip reading data blocks\n"
    "  -v, --verbose also print notes (legal oddities, e.g. a torn older superblock)\n"
    "  -q, --quiet   print nothing but problems\n";

/* ------------------------------------------------------------------ */
/* ls                                                                  */
/* ------------------------------------------------------------------ */

struct lsent {
    char *name;
    uint64_t ino, size, nblocks;
};

struct lslist {
    struct lsent *v;
    size_t n, cap;
    int nomem;
};

static int ls_cb(void *arg, const struct cow_file_info *fi)
{
    struct lslist *l = arg;
    struct lsent *nv = cli_room_for_one(l->v, l->n, &l->cap, sizeof(*nv), &l->nomem);
    if (!nv)
        return 1;
    l->v = nv;
    struct lsent *e = &l->v[l->n];
    e->name = strdup(fi->name);
    if (!e->name) {
        l->nomem = 1;
        return 1;
    }
    e->ino = fi->ino;
    e->size = fi->size;
    e->nblocks = fi->nblocks;
    l->n++;
    return 0;
}

static int lsent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct lsent *)a)->name, ((const struct lsent *)b)->name);
}

static int cmd_ls(int argc, char **argv)
{
    const char *path;
    int n, rc = cli_parse_args(argc, argv, NULL, NULL, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    cow_store *st = open_store(path);
    if (!st)
        return 1;
    struct lslist l = {0};
    rc = cow_list(st, ls_cb, &l);
    int ret = 0;
    if (rc != COW_OK) {
        cli_err("%s: %s", path, cow_store_last_error(st));
        ret = 1;
    } else if (l.nomem) {
        cli_err("%s: out of memory", path);
        ret = 1;
    } else {
        if (l.n > 1)
            qsort(l.v, l.n, sizeof(*l.v), lsent_cmp);
        uint64_t tsize = 0, tblocks = 0;
        printf("%14s %10s  %s\n", "SIZE", "BLOCKS", "NAME");
        for (size_t i = 0; i < l.n; i++) {
            printf("%14" PRIu64 " %10" PRIu64 "  %s\n", l.v[i].size, l.v[i].nblocks,
                   l.v[i].name);
            tsize += l.v[i].size;
            tblocks += l.v[i].nblocks;
        }
        printf("%zu file%s, %" PRIu64 " bytes, %" PRIu64 " blocks of 4096\n", l.n,
               l.n == 1 ? "" : "s", tsize, tblocks);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i].name);
    free(l.v);
    return close_store(st, path, ret);
}

static const char help_ls[] =
    "Lists the files in the container at PATH (the database \"db\" and its\n"
    "\"db-journal\" or \"db-wal\"), sorted by name: size in bytes, 4 KiB blocks\n"
    "referenced, name.  Opens the container read-only; it must not be open in\n"
    "another process.\n";

/* ------------------------------------------------------------------ */
/* df                                                                  */
/* ------------------------------------------------------------------ */

static void df_line(const char *label, uint64_t v)
{
    char h[32];
    printf("%-14s %16" PRIu64 "  %10s\n", label, v, human(v, h, sizeof(h)));
}

/* A df_line() with a note in parentheses after it. */
static void df_line_note(const char *label, uint64_t v, const char *note)
{
    char h[32];
    printf("%-14s %16" PRIu64 "  %10s  (%s)\n", label, v, human(v, h, sizeof(h)), note);
}

/* The snapshots and branches of a store, copied out of cow_subvol_list()
 * first: store.h does not promise that its callback may call back into the
 * store (cow_subvol_usage() takes store->lock). */
struct subvols {
    struct cow_subvol_info *v;
    size_t n, cap;
    int nomem;
};

static int subvols_cb(void *arg, const struct cow_subvol_info *si)
{
    struct subvols *l = arg;
    struct cow_subvol_info *nv = cli_room_for_one(l->v, l->n, &l->cap, sizeof(*nv), &l->nomem);
    if (!nv)
        return 1;
    l->v = nv;
    l->v[l->n++] = *si;
    return 0;
}

/* One row of df's second table. */
static void df_usage_line(const char *kind, const struct cow_subvol_usage *u, const char *name)
{
    char h1[32], h2[32], q[CLI_PRINTABLE_MAX];
    printf("%-14s %16" PRIu64 "  %10s %16" PRIu64 "  %10s  %s\n", kind, u->exclusive_bytes,
           human(u->exclusive_bytes, h1, sizeof(h1)), u->shared_bytes,
           human(u->shared_bytes, h2, sizeof(h2)), cli_printable(name, q, sizeof(q)));
}

/*
 * df's second table: for the live database, then each snapshot and branch
 * (oldest first), the bytes only it references (what deleting it would
 * free) and the bytes it shares with others.  Returns 0, or 1 after
 * printing why.
 */
static int df_usage(cow_store *st, const char *path)
{
    struct subvols l = {0};
    struct cow_subvol_usage u;
    int ret = 1;
    int rc = cow_subvol_list(st, subvols_cb, &l);
    if (l.nomem) {
        cli_err("%s: out of memory", path);
        goto out;
    }
    if (rc != COW_OK) {
        cli_err("%s: listing snapshots and branches: %s", path, cow_store_last_error(st));
        goto out;
    }
    rc = cow_subvol_usage(st, NULL, &u);
    if (rc != COW_OK) {
        cli_err("%s: space of the live database: %s", path, cow_store_last_error(st));
        goto out;
    }
    printf("\n%-14s %16s  %10s %16s  %10s  %s\n", "KIND", "EXCLUSIVE", "", "SHARED", "", "NAME");
    df_usage_line("live", &u, "-");
    for (size_t i = 0; i < l.n; i++) {
        rc = cow_subvol_usage(st, l.v[i].name, &u);
        if (rc != COW_OK) {
            char q[CLI_PRINTABLE_MAX];
            cli_err("%s: space of %s: %s", path, cli_printable(l.v[i].name, q, sizeof(q)),
                cow_store_last_error(st));
            goto out;
        }
        df_usage_line(l.v[i].kind == COW_SUBVOL_SNAPSHOT ? "snapshot" : "branch", &u,
                      l.v[i].name);
    }
    ret = 0;
out:
    free(l.v);
    return ret;
}

static int cmd_df(int argc, char **argv)
{
    const char *path;
    int n, rc = cli_parse_args(argc, argv, NULL, NULL, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    cow_store *st = open_store(path);
    if (!st)
        return 1;
    struct cow_df df;
    rc = cow_store_df(st, &df);
    int ret = 0;
    if (rc != COW_OK) {
        cli_err("%s: %s", path, cow_store_last_error(st));
        ret = 1;
    } else {
        printf("%-14s %16s  %10s\n", "", "BYTES", "");
        df_line("container", df.container_bytes);
        df_line("total", df.total_bytes);
        df_line("used", df.used_bytes);
        df_line("  data", df.data_bytes);
        df_line("  metadata", df.metadata_bytes);
        df_line("free", df.free_bytes);
        df_line("physical", df.physical_bytes);
        df_line("remapped", df.remapped_bytes);
        df_line_note("slack", df.slack_bytes, "relocation could give back");
        printf("%-14s %16" PRIu64 "\n", "block groups", df.nblock_groups);
        printf("%-14s %16" PRIu64 "\n", "generation", df.generation);
        ret = df_usage(st, path);
    }
    return close_store(st, path, ret);
}

static const char help_df[] =
    "Shows the space of the container at PATH, in exact bytes and human units:\n"
    "the container file's size, the bytes covered by block groups (total), the\n"
    "allocated bytes (used = data extents + metadata: tree blocks and the two\n"
    "superblocks), free = total - used; physical, the bytes of the file that hold\n"
    "something (every used block once, wherever relocation put it), remapped,\n"
    "the used bytes relocation moved (read through the remap tree), and slack =\n"
    "container - physical, what relocation (cowctl balance, or the background\n"
    "relocator of a program that has the container open) could give back at\n"
    "most; then the number of block groups and the generation of the last\n"
    "commit.\n"
    "\n"
    "Then a table of the databases in the container: the live database (kind\n"
    "\"live\", name \"-\") and each snapshot and branch, oldest first, with\n"
    "  EXCLUSIVE  the bytes (tree blocks and data extents, whole) that only it\n"
    "             references: what deleting it would free\n"
    "  SHARED     the bytes it shares with the others (copy on write)\n"
    "\n"
    "Opens the container read-only; it must not be open in another process.\n";

/* ------------------------------------------------------------------ */
/* balance                                                             */
/* ------------------------------------------------------------------ */

/* What balance's progress callback keeps. */
struct balance_progress {
    struct progress pr; /* the progress line, on a terminal */
    uint64_t shown;     /* groups already reported by a plain line */
};

/* cow_store_balance()'s progress callback, after each block group: on a
 * terminal the progress line (percent of the groups, bytes moved, rate);
 * otherwise one plain line on stdout per group relocated.  Never stops the
 * balance. */
static int balance_progress_cb(void *arg, const struct cow_balance_result *so_far)
{
    struct balance_progress *b = arg;
    char h[32];
    if (b->pr.on) {
        progress_update(&b->pr, so_far->groups_done, so_far->groups_total, so_far->bytes_moved);
        return 0;
    }
    if (so_far->groups_done > b->shown) {
        b->shown = so_far->groups_done;
        printf("balance: group %" PRIu64 " of %" PRIu64 " relocated, %s moved\n",
               so_far->groups_done, so_far->groups_total,
               human(so_far->bytes_moved, h, sizeof(h)));
        fflush(stdout);
    }
    return 0;
}

static int cmd_balance(int argc, char **argv)
{
    static const char *const opts[] = {"--usage=", NULL};
    const char *vals[1] = {0};
    const char *path;
    int n, rc = cli_parse_args(argc, argv, opts, vals, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    unsigned usage = COW_BALANCE_DEFAULT_USAGE;
    if (vals[0]) {
        const char *v = vals[0];
        size_t len = strspn(v, "0123456789");
        if (len == 0 || len > 3 || v[len] || atoi(v) > 100)
            return cli_bad_usage("--usage needs a percent, 0 to 100: '%s'", v);
        usage = (unsigned)atoi(v);
    }
    cow_store *st = open_store_flags(path, 0);
    if (!st)
        return 1;
    /* This command balances; the store's own relocator stays out of it. */
    struct cow_reloc_config cfg;
    cow_store_get_reloc(st, &cfg);
    cfg.enabled = 0;
    cow_store_set_reloc(st, &cfg);

    struct balance_progress b = {0};
    struct cow_balance_opts o = {0};
    struct cow_balance_result r = {0};
    progress_begin(&b.pr, "balance");
    o.usage_pct = usage;
    o.progress = balance_progress_cb;
    o.arg = &b;
    rc = cow_store_balance(st, &o, &r);
    if (rc == COW_OK)
        progress_update(&b.pr, r.groups_done, r.groups_total, r.bytes_moved);
    progress_end(&b.pr);
    int ret = 0;
    if (rc != COW_OK) {
        cli_err("%s: %s", path, cow_store_last_error(st));
        ret = 1;
    } else {
        char h1[32], h2[32], h3[32];
        printf("%s: %" PRIu64 " of %" PRIu64 " block groups relocated, %" PRIu64
               " bytes moved (%s); container %" PRIu64 " -> %" PRIu64 " bytes (%s -> %s)\n",
               path, r.groups_relocated, r.groups_total, r.bytes_moved,
               human(r.bytes_moved, h1, sizeof(h1)), r.container_before, r.container_after,
               human(r.container_before, h2, sizeof(h2)), human(r.container_after, h3, sizeof(h3)));
    }
    return close_store(st, path, ret);
}

static const char help_balance[] =
    "Relocates block groups of the container at PATH (btrfs's balance): the live\n"
    "blocks of each group at most PERCENT full are copied into other space, and\n"
    "the file's unused tail is given back to the file system, so that ls -l and\n"
    "du both go down.  Every snapshot and branch keeps its sharing: no block is\n"
    "duplicated.  A crash leaves each group where it was or where it went.\n"
    "\n"
    "  --usage PERCENT  relocate groups at most this full (0..100, default 90);\n"
    "                   groups past the end the container needs are relocated\n"
    "                   whatever their usage, so that the file can shrink\n"
    "\n"
    "On a terminal, a progress line on stderr (percent of the groups, bytes moved,\n"
    "rate); otherwise one line per group relocated on stdout.  Then a summary: the\n"
    "groups relocated, the bytes moved, the container's size before -> after.\n"
    "'cowctl df' shows the slack a balance could give back.  Programs that keep\n"
    "the container open need no balance: their store relocates in the background\n"
    "(PRAGMA cow_reloc).  Opens the container read-write; it must not be open in\n"
    "another process.\n";

/* ------------------------------------------------------------------ */
/* dump                                                                */
/* ------------------------------------------------------------------ */

static int cmd_dump(int argc, char **argv)
{
    static const char *const opts[] = {"--block=", "--hex", NULL};
    const char *vals[2] = {0};
    const char *path;
    int n, rc = cli_parse_args(argc, argv, opts, vals, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    uint64_t bytenr = UINT64_MAX;
    if (vals[0]) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(vals[0], &end, 0);
        if (errno || end == vals[0] || *end || vals[0][0] == '-' || v % 4096 ||
            v == UINT64_MAX)
            return cli_bad_usage("--block needs a byte address, a multiple of 4096: '%s'", vals[0]);
        bytenr = v;
    }
    if (cli_check_readable(path))
        return 1;
    unsigned dflags = vals[1] ? COW_DUMP_HEX : 0;
    struct ctl_rados_src rs;
    if (cli_is_rados(path)) {
        if (rados_src_open(path, &rs))
            return 1;
        rc = cow_dump_src(&rs.src, dflags, bytenr, stdout);
        rados_src_close(&rs);
    } else {
        rc = cow_dump(path, dflags, bytenr, stdout);
    }
    if (fflush(stdout) != 0) {
        cli_err("writing the dump: %s", strerror(errno));
        return 1;
    }
    if (rc < 0) {
        cli_err("%s: %s", path, strerror(-rc));
        return 1;
    }
    return 0;
}

static const char help_dump[] =
    "Decodes the container at PATH from the raw file: both superblocks, then\n"
    "every block of the root, extent and csum trees and of every subvolume\n"
    "tree, each block once (a block shared by snapshots is shown the first time),\n"
    "with every item decoded.  Damaged blocks are shown with what is wrong.\n"
    "\n"
    "  --block N   decode only the block at byte address N (a superblock, a tree\n"
    "              block, or a hex dump of anything else)\n"
    "  --hex       hex-dump the data of items of unknown types\n";

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const struct cli_command commands[] = {
    {"fsck", cmd_fsck, "[--no-data] [-v] [-q] PATH", help_fsck},
    {"ls", cmd_ls, "PATH", help_ls},
    {"df", cmd_df, "PATH", help_df},
    {"balance", cmd_balance, "[--usage PERCENT] PATH", help_balance},
    {"dump", cmd_dump, "[--block BYTENR] [--hex] PATH", help_dump},
    {"import", ctl_copy_import, "PLAIN.db APP.db", ctl_copy_import_help},
    {"export", ctl_copy_export, "[--container] APP.db PLAIN.db", ctl_copy_export_help},
    {"snapshot", ctl_snap_snapshot, "PATH NAME [--from SOURCE]", ctl_snap_snapshot_help},
    {"branch", ctl_snap_branch, "PATH NAME [--from SOURCE]", ctl_snap_branch_help},
    {"restore", ctl_snap_restore, "PATH NAME [--into BRANCH]", ctl_snap_restore_help},
    {"delete", ctl_snap_delete, "PATH NAME", ctl_snap_delete_help},
    {"list", ctl_snap_list, "PATH", ctl_snap_list_help},
};

static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void main_help(FILE *out)
{
    fprintf(out, "usage: cowctl COMMAND [OPTIONS] ARGS\n\n"
                 "Looks into, checks, compacts and converts cowvfs containers, and makes,\n"
                 "restores and deletes their snapshots and branches (cowvfs " COWVFS_VERSION
                 ").\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  cowctl %-8s %s\n", commands[i].name, commands[i].synopsis);
#ifdef COWCTL_RADOS
    fprintf(out, "  cowctl --rados POOL/NAME COMMAND ARGS   on a container in Ceph RADOS\n"
                 "         (POOL/NAME stands for PATH, or for import's and export's APP.db)\n");
#endif
    fprintf(out, "\nA container open in another process is refused, never waited for.\n"
                 "'cowctl COMMAND --help' tells more.  Exit status: 0 success (fsck: clean),\n"
                 "1 failure (fsck: problems found), 2 bad usage.\n");
}

/*
 * cowctl --rados SPEC COMMAND ARGS: becomes COMMAND with SPEC as its
 * container operand (the first operand; import's second), in a new
 * argument vector in *PARGV (ARGV[0] kept).  0, or 2 after a usage error.
 */
static int rados_args(int argc, char **argv, int *pargc, char ***pargv)
{
#ifdef COWCTL_RADOS
    if (argc < 4)
        return cli_bad_usage("--rados needs POOL/NAME and a command");
    if (argv[2][0] == '-')
        return cli_bad_usage("--rados needs POOL/NAME, not '%s'", argv[2]);
    char **v = calloc((size_t)argc, sizeof *v);
    if (!v) {
        cli_err("out of memory");
        return 1;
    }
    int n = 0, import = strcmp(argv[3], "import") == 0;
    v[n++] = argv[0];
    v[n++] = argv[3];
    if (!import)
        v[n++] = argv[2];
    for (int i = 4; i < argc; i++)
        v[n++] = argv[i];
    if (import)
        v[n++] = argv[2];
    cli_set_rados(argv[2]);
    *pargc = n;
    *pargv = v;
    return 0;
#else
    (void)argc, (void)argv, (void)pargc, (void)pargv;
    fprintf(stderr, "cowctl: this cowctl was built without librados: no --rados (make "
                    "deps-rados, then make)\n");
    return 1;
#endif
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--rados")) {
        int rc = rados_args(argc, argv, &argc, &argv);
        if (rc)
            return rc;
    }
    if (argc < 2) {
        main_help(stderr);
        return 2;
    }
    if (cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        main_help(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("cowctl %s (SQLite %s)\n", COWVFS_VERSION, sqlite3_libversion());
        return 0;
    }
    const struct cli_command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "cowctl: unknown command '%s'\n", argv[1]);
        fprintf(stderr, "usage: cowctl COMMAND ARGS (cowctl --help lists the commands)\n");
        return 2;
    }
    cli_set_command(c);
    int rc = cowvfs_register(0);
#ifdef COWCTL_RADOS
    if (rc == SQLITE_OK && cli_rados())
        rc = cowvfs_rados_register();
#endif
    if (rc != SQLITE_OK) {
        cli_err("cannot register the cow VFS: %s", sqlite3_errstr(rc));
        return 1;
    }
    return c->run(argc - 2, argv + 2);
}
