/*
 * ctl_copy.c - cowctl import and export (ctl_copy.h).
 */
#include "ctl_copy.h"

#include "cowvfs.h"
#include "ctl_cli.h"
#ifdef COWCTL_RADOS
#include "ctl_rados.h"
#endif
#include "progress.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The VFS of container PATH: cow, or cow-rados for the --rados one. */
static const char *container_vfs(const char *path)
{
#ifdef COWCTL_RADOS
    if (cli_is_rados(path))
        return CTL_RADOS_VFS;
#else
    (void)path;
#endif
    return COWVFS_NAME;
}

/* For import: refuses a --rados container that exists.  0, or 1 after
 * printing why. */
static int rados_create_new(const char *spec)
{
#ifdef COWCTL_RADOS
    int ex = ctl_rados_exists(spec);
    if (ex == 0)
        return 0;
    if (ex == 1)
        cli_err("%s exists; refusing to overwrite it", spec);
    else
        cli_err("%s: %s (%s)", spec, cow_strerror(ex), cow_store_last_error(NULL));
#else
    (void)spec;
#endif
    return 1;
}

/* Removes the --rados container SPEC (a failed import's), saying so on
 * failure. */
static void rados_remove(const char *spec)
{
#ifdef COWCTL_RADOS
    int rc = ctl_rados_remove(spec);
    if (rc != COW_OK)
        cli_err("%s: removing the failed copy: %s (%s)", spec, cow_strerror(rc),
            cow_store_last_error(NULL));
#else
    (void)spec;
#endif
}

/* Creates PATH exclusively (empty).  0, or 1 after printing why. */
static int create_new(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST)
            cli_err("%s exists; refusing to overwrite it", path);
        else
            cli_err("%s: %s", path, strerror(errno));
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
 * 1 after printing why.  On a terminal, stderr shows WHAT's progress
 * (progress.h): pages copied, bytes, rate.
 */
static int copy_db(const char *what, const char *src_path, const char *src_vfs,
                   const char *dst_path, const char *dst_vfs)
{
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *bk = NULL;
    int ret = 1, rc;

    rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, src_vfs);
    if (rc != SQLITE_OK) {
        cli_err("%s: %s", src_path, src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        goto out;
    }
    /* Never write the source, not even a checkpoint when it closes. */
    sqlite3_db_config(src, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    rc = sqlite3_exec(src, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        cli_err("%s: %s", src_path, sqlite3_errmsg(src));
        goto out;
    }
    rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, dst_vfs);
    if (rc != SQLITE_OK) {
        cli_err("%s: %s", dst_path, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto out;
    }
    bk = sqlite3_backup_init(dst, "main", src, "main");
    if (!bk) {
        cli_err("%s: %s", dst_path, sqlite3_errmsg(dst));
        goto out;
    }
    int page = 0;
    sqlite3_stmt *ps = NULL;
    if (sqlite3_prepare_v2(src, "PRAGMA page_size", -1, &ps, NULL) == SQLITE_OK &&
        sqlite3_step(ps) == SQLITE_ROW)
        page = sqlite3_column_int(ps, 0);
    sqlite3_finalize(ps);
    struct progress pr;
    progress_begin(&pr, what);
    do {
        rc = sqlite3_backup_step(bk, 1024);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(10);
        int total = sqlite3_backup_pagecount(bk), left = sqlite3_backup_remaining(bk);
        if (total >= left && left >= 0)
            progress_update(&pr, (uint64_t)(total - left), (uint64_t)total,
                            (uint64_t)(total - left) * (uint64_t)(page > 0 ? page : 0));
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    progress_end(&pr);
    int frc = sqlite3_backup_finish(bk);
    bk = NULL;
    if (rc != SQLITE_DONE || frc != SQLITE_OK) {
        int e = rc != SQLITE_DONE ? rc : frc;
        cli_err("copying %s to %s: %s (%s)", src_path, dst_path, sqlite3_errstr(e),
            sqlite3_errmsg(dst));
        goto out;
    }
    sqlite3_stmt *q = NULL;
    rc = sqlite3_prepare_v2(dst, "PRAGMA quick_check", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(q, 0);
        if (!t || strcmp((const char *)t, "ok") != 0) {
            cli_err("%s: the copy fails PRAGMA quick_check: %s", dst_path,
                    t ? (const char *)t : "?");
            sqlite3_finalize(q);
            goto out;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_OK) {
        cli_err("%s: PRAGMA quick_check: %s", dst_path, sqlite3_errmsg(dst));
        goto out;
    }
    ret = 0;
out:
    if (bk)
        sqlite3_backup_finish(bk);
    if (dst && sqlite3_close(dst) != SQLITE_OK && ret == 0) {
        cli_err("%s: closing: %s", dst_path, sqlite3_errmsg(dst));
        ret = 1;
    }
    if (src)
        sqlite3_close(src);
    return ret;
}

/* The VFS to read the local database PATH with: the default VFS for an
 * ordinary SQLite database (its header, "SQLite format 3", or an empty
 * file), else "cow" (a container; the cow VFS refuses anything else).
 * NULL after printing why PATH cannot be read. */
static const char *source_vfs(const char *path)
{
    static const char hdr[16] = "SQLite format 3";
    char b[16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cli_err("%s: %s", path, strerror(errno));
        return NULL;
    }
    ssize_t got = read(fd, b, sizeof b);
    close(fd);
    if (got < 0) {
        cli_err("%s: %s", path, strerror(errno));
        return NULL;
    }
    return got == 0 || (got == (ssize_t)sizeof b && !memcmp(b, hdr, sizeof b)) ? "unix"
                                                                          : COWVFS_NAME;
}

int ctl_copy_import(int argc, char **argv)
{
    const char *ops[2];
    int n, rc = cli_parse_args(argc, argv, NULL, NULL, ops, 2, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *plain = ops[0], *app = ops[1];
    if (cli_check_readable(plain))
        return 1;
    const char *src_vfs = source_vfs(plain);
    if (!src_vfs)
        return 1;
    if (cli_is_rados(app) ? rados_create_new(app) : create_new(app))
        return 1;
    if (copy_db("import", plain, src_vfs, app, container_vfs(app))) {
        if (cli_is_rados(app))
            rados_remove(app);
        else
            unlink(app);
        return 1;
    }
    return 0;
}

const char ctl_copy_import_help[] =
    "Makes a new container APP.db from the ordinary SQLite database PLAIN.db,\n"
    "including the content of its WAL (PLAIN.db-wal) if it has one.  PLAIN.db is\n"
    "opened read-only with the default VFS and is never written (no checkpoint);\n"
    "PLAIN.db may also be a local container (its live database is copied, not\n"
    "its snapshots or branches: with --rados, a local container to RADOS);\n"
    "the copy is made with the online backup API into APP.db through the \"cow\"\n"
    "VFS, then checked with PRAGMA quick_check.  Refuses if APP.db exists; on\n"
    "failure APP.db is removed.  When stderr is a terminal, a progress line\n"
    "shows the pages copied, the bytes and the rate.\n";

int ctl_copy_export(int argc, char **argv)
{
    const char *ops[2];
    static const char *const opts[] = {"--container", NULL};
    const char *vals[1] = {NULL};
    int n, rc = cli_parse_args(argc, argv, opts, vals, ops, 2, &n);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *app = ops[0], *plain = ops[1];
    const char *dst_vfs = vals[0] ? COWVFS_NAME : "unix";
    if (cli_check_readable(app))
        return 1;
    /* A stale journal or WAL beside PLAIN.db would be applied to the copy. */
    static const char *const sfx[] = {"-wal", "-journal", "-shm"};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        char *p = sqlite3_mprintf("%s%s", plain, sfx[i]);
        if (!p) {
            cli_err("out of memory");
            return 1;
        }
        int ex = exists(p);
        if (ex)
            cli_err("%s exists; refusing to create %s beside it", p, plain);
        sqlite3_free(p);
        if (ex)
            return 1;
    }
    if (create_new(plain))
        return 1;
    if (copy_db("export", app, container_vfs(app), plain, dst_vfs)) {
        unlink(plain);
        char *j = sqlite3_mprintf("%s-journal", plain);
        if (j)
            unlink(j);
        sqlite3_free(j);
        return 1;
    }
    return 0;
}

const char ctl_copy_export_help[] =
    "Writes the database in the container APP.db to a new ordinary SQLite\n"
    "database PLAIN.db (default \"unix\" VFS), or with --container to a new\n"
    "local container PLAIN.db (the live database, not the snapshots: with\n"
    "--rados, RADOS to a local container), with the online backup API, then\n"
    "checks the copy with PRAGMA quick_check.  APP.db is opened read-only.\n"
    "Refuses if PLAIN.db (or a -wal, -journal or -shm file beside it) exists;\n"
    "on failure PLAIN.db is removed.  When stderr is a terminal, a progress\n"
    "line shows the pages copied, the bytes and the rate.\n";
