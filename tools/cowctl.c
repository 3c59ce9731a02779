/*
 * cowctl.c - look into, check and convert cowvfs containers.
 *
 *   cowctl fsck [--no-data] [-v] [-q] PATH   check everything (exit 0 clean, 1 not)
 *   cowctl ls PATH                           the files in the container
 *   cowctl df PATH                           space: data, metadata, free
 *   cowctl dump [--block N] [--hex] PATH     every tree and item, decoded
 *   cowctl import PLAIN.db APP.db            ordinary database -> container
 *   cowctl export APP.db PLAIN.db            container -> ordinary database
 *
 * fsck and dump read the container file directly (tools/fsck.c); ls and df
 * open it with the store (read-only); import and export copy a database with
 * SQLite's online backup API between the default "unix" VFS and "cow".
 *
 * Exit status: 0 success (fsck: clean), 1 failure (fsck: problems found),
 * 2 bad usage.  Errors are one line on stderr: "cowctl: CMD: PATH: why".
 */
#include "cowvfs.h"
#include "fsck.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *cmd = NULL; /* the subcommand, for messages */

__attribute__((format(printf, 1, 2))) static void err(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cowctl: ");
    if (cmd)
        fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------ */
/* usage                                                               */
/* ------------------------------------------------------------------ */

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis;
    const char *help;
};

static const struct command *find_command(const char *name);

static void usage_line(FILE *out, const struct command *c)
{
    fprintf(out, "usage: cowctl %s %s\n", c->name, c->synopsis);
}

/* Bad arguments: a usage line on stderr, exit status 2. */
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cowctl: %s%s", cmd ? cmd : "", cmd ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd)
        usage_line(stderr, find_command(cmd));
    else
        fprintf(stderr, "usage: cowctl COMMAND ARGS (cowctl --help lists the commands)\n");
    return 2;
}

static int is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

static void show_help(const struct command *c)
{
    usage_line(stdout, c);
    fputc('\n', stdout);
    fputs(c->help, stdout);
}

/*
 * Splits ARGV (after the command name) into options and operands.  Each
 * option in OPTS ("--name" or "-x"; "=" suffix: takes a value) sets its
 * slot in VALS ("1" for flags, the value otherwise).  Operands go to OPS
 * (at most NOPS; *NOPS_OUT gets the count).  Returns 0, 1 if --help was
 * given (help shown), or 2 after a usage error.
 */
static int parse_args(int argc, char **argv, const char *const *opts, const char **vals,
                      const char **ops, int nops, int *nops_out)
{
    int n = 0, only_ops = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_ops && !strcmp(a, "--")) {
            only_ops = 1;
            continue;
        }
        if (!only_ops && a[0] == '-' && a[1]) {
            if (is_help(a)) {
                show_help(find_command(cmd));
                return 1;
            }
            int found = 0;
            for (int o = 0; opts && opts[o]; o++) {
                size_t len = strlen(opts[o]);
                int takes = len && opts[o][len - 1] == '=';
                size_t nlen = takes ? len - 1 : len;
                if (strncmp(a, opts[o], nlen) != 0)
                    continue;
                if (a[nlen] == 0 && !takes) {
                    vals[o] = "1";
                } else if (a[nlen] == 0 && takes) {
                    if (i + 1 >= argc)
                        return bad_usage("option %s needs a value", a);
                    vals[o] = argv[++i];
                } else if (a[nlen] == '=' && takes) {
                    vals[o] = a + nlen + 1;
                } else {
                    continue;
                }
                found = 1;
                break;
            }
            if (!found)
                return bad_usage("unknown option %s", a);
            continue;
        }
        if (n >= nops)
            return bad_usage("unexpected argument '%s'", a);
        ops[n++] = a;
    }
    if (n < nops)
        return bad_usage("missing argument");
    *nops_out = n;
    return 0;
}

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

/* 0 if PATH is a regular file we can read; else prints why and returns 1. */
static int check_readable(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        err("%s: %s", path, strerror(errno));
        return 1;
    }
    if (!S_ISREG(st.st_mode)) {
        err("%s: not a regular file", path);
        return 1;
    }
    if (access(path, R_OK) != 0) {
        err("%s: %s", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* Opens the container read-only with the store; prints why on failure. */
static cow_store *open_store(const char *path)
{
    cow_store *st = NULL;
    if (check_readable(path))
        return NULL;
    int rc = cow_store_open(path, COW_OPEN_READONLY, &st);
    if (rc != COW_OK) {
        if (rc == COW_EBUSY)
            err("%s: the container is in use by another process", path);
        else
            err("%s: %s", path, cow_strerror(rc));
        return NULL;
    }
    return st;
}

/* ------------------------------------------------------------------ */
/* fsck                                                                */
/* ------------------------------------------------------------------ */

static int cmd_fsck(int argc, char **argv)
{
    static const char *const opts[] = {"--data", "--no-data", "--verbose", "-v", "--quiet", "-q",
                                       NULL};
    const char *vals[7] = {0};
    const char *path;
    int n, rc = parse_args(argc, argv, opts, vals, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    unsigned flags = vals[1] ? 0 : COW_FSCK_DATA;
    int verbose = vals[2] || vals[3], quiet = vals[4] || vals[5];
    if (verbose)
        flags |= COW_FSCK_NOTES;
    if (check_readable(path))
        return 1;
    struct cow_fsck_result r;
    rc = cow_fsck(path, flags, stdout, &r);
    if (rc < 0) {
        err("%s: cannot check: %s", path, strerror(-rc));
        return 1;
    }
    char h1[32];
    if (rc == 0) {
        if (!quiet)
            printf("%s: clean: generation %" PRIu64 ", %" PRIu64 " tree blocks (%" PRIu64
                   " shared), %" PRIu64 " data extents (%s), %" PRIu64 " files in %" PRIu64
                   " subvolumes, %" PRIu64 " bytes used%s%s\n",
                   path, r.generation, r.tree_blocks, r.shared_blocks, r.data_extents,
                   human(r.data_bytes, h1, sizeof(h1)), r.files, r.subvolumes, r.bytes_used,
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
    "exits 0 when the container is clean.\n"
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
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        struct lsent *nv = realloc(l->v, ncap * sizeof(*nv));
        if (!nv) {
            l->nomem = 1;
            return 1;
        }
        l->v = nv;
        l->cap = ncap;
    }
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
    int n, rc = parse_args(argc, argv, NULL, NULL, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    cow_store *st = open_store(path);
    if (!st)
        return 1;
    struct lslist l = {0};
    rc = cow_list(st, ls_cb, &l);
    int ret = 0;
    if (rc != COW_OK) {
        err("%s: %s", path, cow_store_last_error(st));
        ret = 1;
    } else if (l.nomem) {
        err("%s: out of memory", path);
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
    rc = cow_store_close(st);
    if (rc != COW_OK && !ret) {
        err("%s: closing: %s", path, cow_strerror(rc));
        ret = 1;
    }
    return ret;
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

static int cmd_df(int argc, char **argv)
{
    const char *path;
    int n, rc = parse_args(argc, argv, NULL, NULL, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    cow_store *st = open_store(path);
    if (!st)
        return 1;
    struct cow_df df;
    rc = cow_store_df(st, &df);
    int ret = 0;
    if (rc != COW_OK) {
        err("%s: %s", path, cow_store_last_error(st));
        ret = 1;
    } else {
        printf("%-14s %16s  %10s\n", "", "BYTES", "");
        df_line("container", df.container_bytes);
        df_line("total", df.total_bytes);
        df_line("used", df.used_bytes);
        df_line("  data", df.data_bytes);
        df_line("  metadata", df.metadata_bytes);
        df_line("free", df.free_bytes);
        printf("%-14s %16" PRIu64 "\n", "block groups", df.nblock_groups);
        printf("%-14s %16" PRIu64 "\n", "generation", df.generation);
    }
    rc = cow_store_close(st);
    if (rc != COW_OK && !ret) {
        err("%s: closing: %s", path, cow_strerror(rc));
        ret = 1;
    }
    return ret;
}

static const char help_df[] =
    "Shows the space of the container at PATH, in exact bytes and human units:\n"
    "the container file's size, the bytes covered by block groups (total), the\n"
    "allocated bytes (used = data extents + metadata: tree blocks and the two\n"
    "superblocks), free = total - used, the number of block groups and the\n"
    "generation of the last commit.  Opens the container read-only.\n";

/* ------------------------------------------------------------------ */
/* dump                                                                */
/* ------------------------------------------------------------------ */

static int cmd_dump(int argc, char **argv)
{
    static const char *const opts[] = {"--block=", "--hex", NULL};
    const char *vals[2] = {0};
    const char *path;
    int n, rc = parse_args(argc, argv, opts, vals, &path, 1, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    uint64_t bytenr = UINT64_MAX;
    if (vals[0]) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(vals[0], &end, 0);
        if (errno || end == vals[0] || *end || vals[0][0] == '-' || v % 4096 ||
            v == UINT64_MAX)
            return bad_usage("--block needs a byte address, a multiple of 4096: '%s'", vals[0]);
        bytenr = v;
    }
    if (check_readable(path))
        return 1;
    rc = cow_dump(path, vals[1] ? COW_DUMP_HEX : 0, bytenr, stdout);
    if (fflush(stdout) != 0) {
        err("writing the dump: %s", strerror(errno));
        return 1;
    }
    if (rc < 0) {
        err("%s: %s", path, strerror(-rc));
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
/* import / export                                                     */
/* ------------------------------------------------------------------ */

/* Creates PATH exclusively (empty).  0, or 1 after printing why. */
static int create_new(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST)
            err("%s exists; refusing to overwrite it", path);
        else
            err("%s: %s", path, strerror(errno));
        return 1;
    }
    close(fd);
    return 0;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/*
 * Copies database SRC_PATH (opened read-only with SRC_VFS) into DST_PATH
 * (opened read-write with DST_VFS), which the caller created empty, with the
 * online backup API, then runs PRAGMA quick_check on the copy.  Returns 0 or
 * 1 after printing why.
 */
static int copy_db(const char *src_path, const char *src_vfs, const char *dst_path,
                   const char *dst_vfs)
{
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *bk = NULL;
    int ret = 1, rc;

    rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, src_vfs);
    if (rc != SQLITE_OK) {
        err("%s: %s", src_path, src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        goto out;
    }
    /* Never write the source, not even a checkpoint when it closes. */
    sqlite3_db_config(src, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    rc = sqlite3_exec(src, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err("%s: %s", src_path, sqlite3_errmsg(src));
        goto out;
    }
    rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, dst_vfs);
    if (rc != SQLITE_OK) {
        err("%s: %s", dst_path, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto out;
    }
    bk = sqlite3_backup_init(dst, "main", src, "main");
    if (!bk) {
        err("%s: %s", dst_path, sqlite3_errmsg(dst));
        goto out;
    }
    do {
        rc = sqlite3_backup_step(bk, 1024);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(10);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    int frc = sqlite3_backup_finish(bk);
    bk = NULL;
    if (rc != SQLITE_DONE || frc != SQLITE_OK) {
        int e = rc != SQLITE_DONE ? rc : frc;
        err("copying %s to %s: %s (%s)", src_path, dst_path, sqlite3_errstr(e),
            sqlite3_errmsg(dst));
        goto out;
    }
    sqlite3_stmt *q = NULL;
    rc = sqlite3_prepare_v2(dst, "PRAGMA quick_check", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(q, 0);
        if (!t || strcmp((const char *)t, "ok") != 0) {
            err("%s: the copy fails PRAGMA quick_check: %s", dst_path, t ? (const char *)t : "?");
            sqlite3_finalize(q);
            goto out;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_OK) {
        err("%s: PRAGMA quick_check: %s", dst_path, sqlite3_errmsg(dst));
        goto out;
    }
    ret = 0;
out:
    if (bk)
        sqlite3_backup_finish(bk);
    if (dst && sqlite3_close(dst) != SQLITE_OK && ret == 0) {
        err("%s: closing: %s", dst_path, sqlite3_errmsg(dst));
        ret = 1;
    }
    if (src)
        sqlite3_close(src);
    return ret;
}

static int cmd_import(int argc, char **argv)
{
    const char *ops[2];
    int n, rc = parse_args(argc, argv, NULL, NULL, ops, 2, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *plain = ops[0], *app = ops[1];
    if (check_readable(plain))
        return 1;
    if (create_new(app))
        return 1;
    if (copy_db(plain, NULL, app, COWVFS_NAME)) {
        unlink(app);
        return 1;
    }
    return 0;
}

static const char help_import[] =
    "Makes a new container APP.db from the ordinary SQLite database PLAIN.db,\n"
    "including the content of its WAL (PLAIN.db-wal) if it has one.  PLAIN.db is\n"
    "opened read-only with the default VFS and is never written (no checkpoint);\n"
    "the copy is made with the online backup API into APP.db through the \"cow\"\n"
    "VFS, then checked with PRAGMA quick_check.  Refuses if APP.db exists; on\n"
    "failure APP.db is removed.\n";

static int cmd_export(int argc, char **argv)
{
    const char *ops[2];
    int n, rc = parse_args(argc, argv, NULL, NULL, ops, 2, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *app = ops[0], *plain = ops[1];
    if (check_readable(app))
        return 1;
    /* A stale journal or WAL beside PLAIN.db would be applied to the copy. */
    static const char *const sfx[] = {"-wal", "-journal", "-shm"};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        char *p = sqlite3_mprintf("%s%s", plain, sfx[i]);
        if (!p) {
            err("out of memory");
            return 1;
        }
        int ex = exists(p);
        if (ex)
            err("%s exists; refusing to create %s beside it", p, plain);
        sqlite3_free(p);
        if (ex)
            return 1;
    }
    if (create_new(plain))
        return 1;
    if (copy_db(app, COWVFS_NAME, plain, "unix")) {
        unlink(plain);
        char *j = sqlite3_mprintf("%s-journal", plain);
        if (j)
            unlink(j);
        sqlite3_free(j);
        return 1;
    }
    return 0;
}

static const char help_export[] =
    "Writes the database in the container APP.db to a new ordinary SQLite\n"
    "database PLAIN.db (default \"unix\" VFS), with the online backup API, then\n"
    "checks the copy with PRAGMA quick_check.  APP.db is opened read-only.\n"
    "Refuses if PLAIN.db (or a -wal, -journal or -shm file beside it) exists;\n"
    "on failure PLAIN.db is removed.\n";

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const struct command commands[] = {
    {"fsck", cmd_fsck, "[--no-data] [-v] [-q] PATH", help_fsck},
    {"ls", cmd_ls, "PATH", help_ls},
    {"df", cmd_df, "PATH", help_df},
    {"dump", cmd_dump, "[--block BYTENR] [--hex] PATH", help_dump},
    {"import", cmd_import, "PLAIN.db APP.db", help_import},
    {"export", cmd_export, "APP.db PLAIN.db", help_export},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void main_help(FILE *out)
{
    fprintf(out, "usage: cowctl COMMAND [OPTIONS] ARGS\n\n"
                 "Looks into, checks and converts cowvfs containers (cowvfs " COWVFS_VERSION
                 ").\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  cowctl %-7s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(out, "\n'cowctl COMMAND --help' tells more.  Exit status: 0 success (fsck: clean),\n"
                 "1 failure (fsck: problems found), 2 bad usage.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_help(stderr);
        return 2;
    }
    if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
        main_help(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("cowctl %s (SQLite %s)\n", COWVFS_VERSION, sqlite3_libversion());
        return 0;
    }
    const struct command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "cowctl: unknown command '%s'\n", argv[1]);
        fprintf(stderr, "usage: cowctl COMMAND ARGS (cowctl --help lists the commands)\n");
        return 2;
    }
    cmd = c->name;
    int rc = cowvfs_register(0);
    if (rc != SQLITE_OK) {
        err("cannot register the cow VFS: %s", sqlite3_errstr(rc));
        return 1;
    }
    return c->run(argc - 2, argv + 2);
}
