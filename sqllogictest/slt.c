/*
 * slt.c - a sqllogictest runner for SQLite, run through any VFS.
 *
 *     build/slt [--vfs NAME] [--verbose] [--jobs N] FILE|DIR...
 *
 * build/slt_rados (these files with -DSLT_RADOS, linked with librados) also
 * has the VFS cow-rados: with --vfs cow-rados each script's database is
 * POOL/slt-XXXXXX in the pool $SLT_RADOS_POOL (default "cow") of the
 * cluster $CEPH_CONF names, and "onlyif cow" records run (make test-rados).
 *
 * Runs sqllogictest scripts (https://sqlite.org/sqllogictest/, format in
 * its about.wiki) in validation mode against SQLite, the way the reference
 * runner (sqllogictest.c + slt_sqlite.c) does, so that results generated
 * by it compare equal here.  Each script runs in a fresh database in a
 * fresh temporary directory, opened through the VFS named by --vfs (the
 * system default VFS when absent); the directory is removed afterwards.
 * Arguments run in the order given; a DIR is walked recursively for
 * *.test files, which run in strcmp order of their paths.
 *
 * Script format, as this runner reads it:
 *
 *   - A script is a sequence of lines; "\r\n" and "\n" both end a line.
 *     A line whose first character is '#' is a comment and is dropped
 *     wherever it appears (also inside SQL and results).  A line of only
 *     white space is blank.  Records are separated by blank lines.
 *   - A record may start with any number of "skipif ENGINE" and
 *     "onlyif ENGINE" lines.  Our engines are "sqlite" and the VFS the
 *     run opens databases through ("cow", "unix"; compared without case):
 *     "onlyif cow" runs a record only through cow.  A record that does
 *     not apply is skipped; if a VFS name excluded it, it is counted in
 *     "for another VFS" as well (test/slt_full.sh compares runs by it).
 *   - "statement ok" / "statement error": the remaining lines, joined
 *     with '\n', are SQL run to completion (every statement in it, like
 *     sqlite3_exec()); it must succeed or fail as stated.
 *   - "query TYPES [SORT [LABEL]]": SQL up to a "----" line, expected
 *     values after it, one per line.  TYPES has one letter per result
 *     column: 'I' renders a value as sqlite3_column_int64() in decimal,
 *     'R' as sqlite3_column_double() with "%.3f", 'T' as its text with
 *     every byte outside ' '..'~' replaced by '@'.  SQL NULL is "NULL"
 *     whatever the letter, an empty text "(empty)".  SORT is nosort
 *     (default), rowsort (rows ordered by strcmp of their values, field
 *     by field) or valuesort (all values ordered on their own).  With
 *     more values than the hash threshold, the expected result is one
 *     line "N values hashing to MD5" where MD5 is the hex MD5 of all
 *     values, each followed by "\n".  Queries with the same LABEL must
 *     produce the same MD5 (checked within a file, for skipped labelled
 *     queries against their expected values as well).
 *   - "hash-threshold N" sets the threshold (default 8; 0 never hashes).
 *   - "halt" stops the file (it is honoured only when it applies to
 *     sqlite, i.e. it can be made conditional with onlyif/skipif).
 *
 * Like the reference runner, each database runs with PRAGMA
 * synchronous=OFF, and a query's SQL is only its first statement.  It
 * differs where the reference is lax: 'I' values are 64-bit (the
 * reference truncates to int), a query whose sqlite3_step() fails is a
 * failure (the reference takes the rows so far as the result), and the
 * number of expected values must match (as in later reference versions).
 *
 * Output: one line per file with its counts and wall time, then a line
 * "F files, T s" and last "P passed, F failed, S skipped (V for another
 * VFS)" counting records (statements and queries) of all files; skipped
 * are those that skipif/onlyif exclude.  Each failure prints "file:line: reason" on
 * stderr (at most FAIL_REPORT_CAP per file unless --verbose); --verbose
 * also prints the SQL, expected and actual values of each failure on
 * stdout.  Exit status: 0 when nothing failed, 1 when a record failed, 2
 * on a usage error or an input that could not be run.
 *
 * --jobs N runs up to N files at a time, each in a child process (fork)
 * whose output is printed in file order once it is done; a child that
 * crashes counts as one more failed record of its file.  The default, 1,
 * runs everything in this process.
 *
 * The runner's parts: this file (the command line, the files to run),
 * slt_script.c (scripts, result values, MD5 and labels), slt_run.c
 * (records and files, run one after the other), slt_jobs.c (--jobs: files
 * in child processes) and slt_util.c (allocation, the clock).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cowvfs.h"
#include "slt_jobs.h"
#include "slt_run.h"
#include "slt_util.h"

/* ------------------------------------------------------------------ */
/* Command line and file collection                                    */
/* ------------------------------------------------------------------ */

struct pathlist {
    char **v;
    size_t n, cap;
};

static void pathlist_add(struct pathlist *pl, char *path)
{
    pl->v = grow(pl->v, &pl->cap, pl->n + 1, sizeof *pl->v);
    pl->v[pl->n++] = path;
}

static int cmp_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_test_suffix(const char *name)
{
    size_t n = strlen(name);

    return n > 5 && strcmp(name + n - 5, ".test") == 0;
}

/* Appends every *.test file under DIR (recursively, following symbolic
 * links, skipping names that start with '.') to PL.  Returns 0, or -1
 * after reporting an entry that cannot be read. */
static int walk_dir(const char *dir, struct pathlist *pl)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    size_t dlen = strlen(dir);
    int rc = 0;

    if (!d) {
        fprintf(stderr, "slt: cannot read directory %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        size_t n;
        char *path;

        if (de->d_name[0] == '.')
            continue;
        n = dlen + strlen(de->d_name) + 2;
        path = xmalloc(n);
        snprintf(path, n, "%.*s/%s", (int)dlen, dir, de->d_name);
        if (stat(path, &st) != 0) {
            fprintf(stderr, "slt: cannot stat %s: %s\n", path,
                    strerror(errno));
            free(path);
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            if (walk_dir(path, pl) != 0)
                rc = -1;
            free(path);
        } else if (S_ISREG(st.st_mode) && has_test_suffix(de->d_name)) {
            pathlist_add(pl, path);
        } else {
            free(path);
        }
    }
    closedir(d);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: slt [--vfs NAME] [--verbose] [--jobs N] FILE|DIR...\n"
            "  --vfs NAME   open the databases through VFS NAME "
            "(default: SQLite's default)\n"
            "  --verbose    print SQL, expected and actual values of "
            "each failure\n"
            "  --jobs N     run N files at a time in child processes "
            "(0: one per CPU; default 1)\n");
}

/* Parses the --jobs argument A into *JOBS.  Returns 0, -1 if invalid. */
static int parse_jobs(const char *a, int *jobs)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(a, &end, 10);
    if (errno || end == a || *end || v < 0 || v > 1024)
        return -1;
    if (v == 0) {
        v = sysconf(_SC_NPROCESSORS_ONLN);
        if (v < 1)
            v = 1;
    }
    *jobs = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    struct runner r;
    struct pathlist files = {0};
    struct counts total = {0};
    double t0;
    int status = EXIT_PASS, bad_input = 0, only_files = 0, jobs = 1, i, rc;
    size_t k;

    memset(&r, 0, sizeof r);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (only_files || a[0] != '-' || a[1] == 0) {
            struct stat st;

            if (stat(a, &st) != 0) {
                fprintf(stderr, "slt: %s: %s\n", a, strerror(errno));
                bad_input = 1;
            } else if (S_ISDIR(st.st_mode)) {
                size_t first = files.n;

                if (walk_dir(a, &files) != 0)
                    bad_input = 1;
                if (files.n > first)
                    qsort(files.v + first, files.n - first,
                          sizeof *files.v, cmp_paths);
            } else {
                pathlist_add(&files, xstrdup(a));
            }
        } else if (strcmp(a, "--") == 0) {
            only_files = 1;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            r.verbose = 1;
        } else if (strcmp(a, "--vfs") == 0 && i + 1 < argc) {
            r.vfs = argv[++i];
        } else if (strncmp(a, "--vfs=", 6) == 0) {
            r.vfs = a + 6;
        } else if ((strcmp(a, "--jobs") == 0 || strcmp(a, "-j") == 0) &&
                   i + 1 < argc && parse_jobs(argv[i + 1], &jobs) == 0) {
            i++;
        } else if (strncmp(a, "--jobs=", 7) == 0 &&
                   parse_jobs(a + 7, &jobs) == 0) {
            ;
        } else if (strncmp(a, "-j", 2) == 0 && a[2] &&
                   parse_jobs(a + 2, &jobs) == 0) {
            ;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            goto out;
        } else {
            fprintf(stderr, "slt: bad option %s\n", a);
            usage(stderr);
            status = EXIT_USAGE;
            goto out;
        }
    }
    if (bad_input) {
        status = EXIT_USAGE;
        goto out;
    }
    if (files.n == 0) {
        fprintf(stderr, "slt: no .test files given\n");
        usage(stderr);
        status = EXIT_USAGE;
        goto out;
    }

    rc = cowvfs_register(0);
#ifdef SLT_RADOS
    if (rc == SQLITE_OK)
        rc = cowvfs_rados_register();
#endif
    if (rc != SQLITE_OK)
        fprintf(stderr, "slt: warning: cowvfs_register: %s\n",
                sqlite3_errstr(rc));
    if (!sqlite3_vfs_find(r.vfs)) {
        fprintf(stderr, "slt: no such VFS: %s\n", r.vfs ? r.vfs : "default");
        status = EXIT_USAGE;
        goto out;
    }
    r.vfs_name = sqlite3_vfs_find(r.vfs)->zName;
    r.tmpdir = getenv("TMPDIR");
    if (!r.tmpdir || !r.tmpdir[0])
        r.tmpdir = "/tmp";
    r.labels = calloc(1, sizeof *r.labels);
    if (!r.labels)
        die_nomem();
    if (md5_init(&r.md5) != 0) {
        fprintf(stderr, "slt: OpenSSL MD5 is not available\n");
        status = EXIT_USAGE;
        goto out;
    }

    t0 = now_seconds();
    if (jobs > 1 && files.n > 1)
        rc = run_parallel(&r, files.v, files.n, jobs, &total);
    else
        rc = run_serial(&r, files.v, files.n, &total);
    printf("%zu files, %.2f s\n", files.n, now_seconds() - t0);
    printf("%ld passed, %ld failed, %ld skipped (%ld for another VFS)\n",
           total.passed, total.failed, total.skipped, total.other_vfs);
    if (rc != 0)
        status = EXIT_USAGE;
    else if (total.failed)
        status = EXIT_FAILED;
out:
    for (k = 0; k < files.n; k++)
        free(files.v[k]);
    free(files.v);
    runner_free(&r);
    return status;
}
