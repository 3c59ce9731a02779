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
 * The runner's parts: this file (the command line, the files to run, the
 * records), slt_script.c (scripts, result values, MD5 and labels) and
 * slt_util.c (allocation, the clock).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cowvfs.h"
#include "slt_script.h"
#include "slt_util.h"

#define DEFAULT_HASH_THRESHOLD 8
#define ENGINE_NAME            "sqlite"
#define FAIL_REPORT_CAP        10    /* stderr failure lines per file */
#define VERBOSE_VALUE_CAP      100   /* values printed per list, verbose */

/* ------------------------------------------------------------------ */
/* The runner                                                          */
/* ------------------------------------------------------------------ */

/* Record counts, per file and in total. */
struct counts {
    long passed, failed, skipped;
    long other_vfs;     /* of skipped: excluded by a VFS name */
};

/* State shared by all files of a run.  Buffers are reused from query to
 * query and from file to file. */
struct runner {
    const char *vfs;        /* VFS name, NULL for the default */
    const char *vfs_name;   /* the VFS used: vfs, or the default's name */
    int verbose;
    const char *tmpdir;     /* parent of the per-file directories */

    struct md5 md5;         /* fetched once */
    struct values res;      /* actual values of the current query */
    char *sql;              /* SQL of the current record */
    size_t cap_sql;
    const char **exp;       /* expected values of the current query */
    size_t cap_exp;
    struct labels *labels;

    /* current file */
    struct script *s;
    sqlite3 *db;
    int hash_threshold;
    int halted;             /* line where the file stopped, 0 if none */
    const char *halt_why;   /* "halt" or why it stopped */
    long nreported;         /* failure lines written to stderr */
    struct counts c;
    struct counts *live;    /* if set, c is copied here after each record
                             * (shared with the parent of a child) */
};

/* Joins lines [FROM, TO) of the current script with '\n' into r->sql. */
static const char *join_sql(struct runner *r, const struct line *from,
                            const struct line *to)
{
    size_t len = 0;
    const struct line *l;

    for (l = from; l < to; l++) {
        r->sql = grow(r->sql, &r->cap_sql, len + l->len + 2, 1);
        if (l != from)
            r->sql[len++] = '\n';
        memcpy(r->sql + len, l->z, l->len);
        len += l->len;
    }
    r->sql = grow(r->sql, &r->cap_sql, len + 1, 1);
    r->sql[len] = 0;
#ifdef SLT_RADOS
    /* the scripts name the cow VFS in URIs (ATTACH of a snapshot): on
     * cow-rados that is "vfs=cow-rados" */
    if (strcmp(r->vfs_name, COWVFS_RADOS_NAME) == 0) {
        static const char pat[] = "vfs=" COWVFS_NAME, rep[] = "vfs=" COWVFS_RADOS_NAME;
        char *at = r->sql;
        while ((at = strstr(at, pat)) != NULL) {
            char next = at[sizeof pat - 1];
            size_t off = (size_t)(at - r->sql), extra = sizeof rep - sizeof pat;
            if (next == '-' || (next >= 'a' && next <= 'z') || (next >= '0' && next <= '9')) {
                at += sizeof pat - 1; /* another name that starts so */
                continue;
            }
            r->sql = grow(r->sql, &r->cap_sql, len + extra + 1, 1);
            at = r->sql + off;
            memmove(at + sizeof rep - 1, at + sizeof pat - 1, len - off - (sizeof pat - 1) + 1);
            memcpy(at, rep, sizeof rep - 1);
            len += extra;
            at += sizeof rep - 1;
        }
    }
#endif
    return r->sql;
}

/* Prints up to VERBOSE_VALUE_CAP of the N strings at VAL, indented. */
static void print_list(const char *title, const char *const *val, size_t n)
{
    size_t i;

    printf("  %s (%zu):\n", title, n);
    for (i = 0; i < n && i < VERBOSE_VALUE_CAP; i++)
        printf("    %s\n", val[i]);
    if (n > VERBOSE_VALUE_CAP)
        printf("    ... %zu more\n", n - VERBOSE_VALUE_CAP);
}

/* Details of a failed record for --verbose; any field may be NULL. */
struct failure {
    const char *sql;
    const char *const *expected;
    size_t nexpected;
    const char *const *actual;
    size_t nactual;
    const char *actual_hash;    /* "N values hashing to ..." */
};

/* Counts one failed record at LINENO and reports it: a "file:line:
 * reason" line on stderr (capped per file unless verbose) and, with
 * --verbose, the details in F on stdout. */
static void fail(struct runner *r, int lineno, const struct failure *f,
                 const char *fmt, ...)
{
    char reason[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    r->c.failed++;
    if (r->verbose || r->nreported < FAIL_REPORT_CAP)
        fprintf(stderr, "%s:%d: %s\n", r->s->path, lineno, reason);
    else if (r->nreported == FAIL_REPORT_CAP)
        fprintf(stderr, "%s: further failures not shown (use --verbose)\n",
                r->s->path);
    r->nreported++;
    if (!r->verbose)
        return;
    printf("FAIL %s:%d: %s\n", r->s->path, lineno, reason);
    if (f && f->sql)
        printf("  sql:\n    %s\n", f->sql);
    if (f && f->expected)
        print_list("expected", f->expected, f->nexpected);
    if (f && f->actual_hash)
        printf("  actual:\n    %s\n", f->actual_hash);
    if (f && f->actual)
        print_list("actual values", f->actual, f->nactual);
}

/* Runs every statement of SQL to completion, like sqlite3_exec().
 * Returns an SQLite result code; on error the message is in
 * sqlite3_errmsg(db) (a copy is made if needed by the caller). */
static int exec_all(sqlite3 *db, const char *sql)
{
    const char *tail = sql;
    int rc = SQLITE_OK;

    while (rc == SQLITE_OK && *tail) {
        sqlite3_stmt *stmt = NULL;

        rc = sqlite3_prepare_v2(db, tail, -1, &stmt, &tail);
        if (rc != SQLITE_OK || !stmt)
            break;          /* error, or only white space / comments */
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
            ;
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
        sqlite3_finalize(stmt);     /* errmsg of the step survives */
    }
    return rc;
}

/* A "statement ok|error" record: header tokens TOK, SQL lines [L, E). */
static void run_statement(struct runner *r, char **tok, int lineno,
                          const struct line *l, const struct line *e)
{
    struct failure f = {0};
    int expect_ok, rc;

    if (strcmp(tok[1], "ok") == 0) {
        expect_ok = 1;
    } else if (strcmp(tok[1], "error") == 0) {
        expect_ok = 0;
    } else {
        fail(r, lineno, NULL,
             "statement argument should be 'ok' or 'error', not '%s'",
             tok[1]);
        return;
    }
    f.sql = join_sql(r, l, e);
    rc = exec_all(r->db, f.sql);
    if (expect_ok && rc != SQLITE_OK)
        fail(r, lineno, &f, "statement failed: %s", sqlite3_errmsg(r->db));
    else if (!expect_ok && rc == SQLITE_OK)
        fail(r, lineno, &f, "statement succeeded, error expected");
    else
        r->c.passed++;
}

/* Collects pointers to the text of lines [L, E) into r->exp, which is
 * returned (owned by R, valid until the next call). */
static const char **line_texts(struct runner *r, const struct line *l,
                               const struct line *e)
{
    size_t i;

    r->exp = grow(r->exp, &r->cap_exp, (size_t)(e - l), sizeof *r->exp);
    for (i = 0; l + i < e; i++)
        r->exp[i] = l[i].z;
    return r->exp;
}

/* A skipped labelled query (tokens TOK, body lines [L, E)): like the
 * reference runner in verify mode, record or check its label against
 * the hash of its expected values.  Returns 0 if it agrees. */
static int check_skipped_label(struct runner *r, char **tok, int lineno,
                               const struct line *l, const struct line *e)
{
    char hex[MD5_HEX_LEN + 1];
    const char **exp;
    const char *prev;

    while (l < e && strcmp(l->z, "----") != 0)
        l++;
    if (l == e || l + 1 == e)
        return 0;       /* no expected values: nothing to compare */
    l++;
    if (!parse_hash_line(l->z, hex)) {
        exp = line_texts(r, l, e);
        if (md5_of(&r->md5, exp, (size_t)(e - l), hex) != 0) {
            fail(r, lineno, NULL, "MD5 computation failed");
            return -1;
        }
    }
    if (label_check(r->labels, tok[3], hex, &prev) == 0)
        return 0;
    fail(r, lineno, NULL,
         "expected result of skipped query with label %s (%s) does not "
         "agree with previous values (%s)", tok[3], hex, prev);
    return -1;
}

/* A "query" record: header tokens TOK, body lines [L, E). */
static void run_query(struct runner *r, char **tok, int lineno,
                      const struct line *l, const struct line *e)
{
    const char *types = tok[1], *sort = tok[2], *label = tok[3];
    const struct line *sep = l, *exp_l;
    const char **expected;
    struct failure f = {0};
    struct values *v = &r->res;
    sqlite3_stmt *stmt = NULL;
    char hex[MD5_HEX_LEN + 1], want[96];
    const char *prev = NULL;
    size_t ncol = strlen(types), nexp, i;
    int rc, hashed, k, label_bad = 0;

    for (i = 0; i < ncol; i++) {
        if (types[i] != 'I' && types[i] != 'R' && types[i] != 'T') {
            fail(r, lineno, NULL, "unknown type character '%c' in '%s'",
                 types[i], types);
            goto out;
        }
    }
    if (ncol == 0) {
        fail(r, lineno, NULL, "missing type string");
        goto out;
    }
    if (sort[0] && strcmp(sort, "nosort") != 0 &&
        strcmp(sort, "rowsort") != 0 && strcmp(sort, "valuesort") != 0) {
        fail(r, lineno, NULL, "unknown sort mode '%s'", sort);
        goto out;
    }
    while (sep < e && strcmp(sep->z, "----") != 0)
        sep++;
    exp_l = sep < e ? sep + 1 : e;
    nexp = (size_t)(e - exp_l);
    expected = line_texts(r, exp_l, e);
    f.sql = join_sql(r, l, sep);
    f.expected = expected;
    f.nexpected = nexp;

    rc = sqlite3_prepare_v2(r->db, f.sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        fail(r, lineno, &f, "query failed: %s", sqlite3_errmsg(r->db));
        goto out;
    }
    k = stmt ? sqlite3_column_count(stmt) : 0;
    if ((size_t)k != ncol) {
        fail(r, lineno, &f, "wrong number of columns: expected %zu, got %d",
             ncol, k);
        goto out;
    }
    values_reset(v);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        for (k = 0; (size_t)k < ncol; k++)
            values_render(v, stmt, k, types[k]);
    }
    values_finish(v);
    f.actual = v->val;
    f.nactual = v->n;
    if (rc != SQLITE_DONE) {
        fail(r, lineno, &f, "query failed: %s", sqlite3_errmsg(r->db));
        goto out;
    }

    if (strcmp(sort, "rowsort") == 0)
        values_sort_rows(v, ncol);
    else if (strcmp(sort, "valuesort") == 0)
        values_sort(v);

    hashed = r->hash_threshold > 0 && v->n > (size_t)r->hash_threshold;
    if (hashed || label[0]) {
        if (md5_of(&r->md5, v->val, v->n, hex) != 0) {
            fail(r, lineno, &f, "MD5 computation failed");
            goto out;
        }
        snprintf(want, sizeof want, "%zu values hashing to %s", v->n, hex);
    }
    /* Like the reference runner, the label is recorded or checked
     * whether or not the values themselves match. */
    if (label[0] && label_check(r->labels, label, hex, &prev) != 0)
        label_bad = 1;
    if (hashed) {
        f.actual_hash = want;
        if (nexp != 1 || strcmp(expected[0], want) != 0) {
            fail(r, lineno, &f, "wrong result hash");
            goto out;
        }
    } else {
        for (i = 0; i < nexp && i < v->n; i++) {
            if (strcmp(expected[i], v->val[i]) != 0) {
                fail(r, lineno, &f,
                     "wrong result: value %zu is '%s', expected '%s' "
                     "(line %d)", i + 1, v->val[i], expected[i],
                     exp_l[i].lineno);
                goto out;
            }
        }
        if (nexp != v->n) {
            fail(r, lineno, &f, "wrong number of values: expected %zu, "
                 "got %zu", nexp, v->n);
            goto out;
        }
    }
    if (label_bad) {
        fail(r, lineno, &f, "result of label %s (%s) does not agree "
             "with previous values (%s)", label, hex, prev);
        goto out;
    }
    r->c.passed++;
out:
    sqlite3_finalize(stmt);
}

/* Does a "skipif"/"onlyif" line with engine NAME exclude this run?  Sets
 * *BY_VFS if it does and NAME is a VFS. */
static int condition_skips(const struct runner *r, const char *kind,
                           const char *name, int *by_vfs)
{
    int match = strcasecmp(name, ENGINE_NAME) == 0 ||
                strcasecmp(name, r->vfs_name) == 0;
#ifdef SLT_RADOS
    /* cow-rados is cow on another device: "onlyif cow" records run */
    match = match || (strcasecmp(r->vfs_name, COWVFS_RADOS_NAME) == 0 &&
                      strcasecmp(name, COWVFS_NAME) == 0);
#endif
    int skips = kind[0] == 's' ? match : !match;

    if (skips && sqlite3_vfs_find(name))
        *by_vfs = 1;
    return skips;
}

/* Runs one record: the non-blank lines [L, E). */
static void run_record(struct runner *r, struct line *l, struct line *e)
{
    char *tok[MAX_TOKENS];
    int skip = 0, by_vfs = 0;

    tokenize(l, tok);
    while (strcmp(tok[0], "skipif") == 0 || strcmp(tok[0], "onlyif") == 0) {
        if (condition_skips(r, tok[0], tok[1], &by_vfs))
            skip = 1;
        if (++l == e)
            return;     /* conditions with nothing to apply to */
        tokenize(l, tok);
    }

    if (skip) {
        if (strcmp(tok[0], "query") == 0 && tok[3][0]) {
            if (check_skipped_label(r, tok, l->lineno, l + 1, e) == 0) {
                r->c.skipped++;
                r->c.other_vfs += by_vfs;
            }
        } else if (strcmp(tok[0], "statement") == 0 ||
                   strcmp(tok[0], "query") == 0) {
            r->c.skipped++;
            r->c.other_vfs += by_vfs;
        }
        return;
    }
    if (strcmp(tok[0], "statement") == 0) {
        run_statement(r, tok, l->lineno, l + 1, e);
    } else if (strcmp(tok[0], "query") == 0) {
        run_query(r, tok, l->lineno, l + 1, e);
    } else if (strcmp(tok[0], "hash-threshold") == 0) {
        r->hash_threshold = atoi(tok[1]);
    } else if (strcmp(tok[0], "halt") == 0) {
        r->halted = l->lineno;
        r->halt_why = "halt";
    } else {
        /* The reference runner stops the file here as well. */
        fail(r, l->lineno, NULL, "unknown record type '%s'", tok[0]);
        r->halted = l->lineno;
        r->halt_why = "stopped at unknown record";
    }
}
/* ------------------------------------------------------------------ */
/* Files: a fresh database in a fresh directory                        */
/* ------------------------------------------------------------------ */

/* Creates a new empty directory under r->tmpdir; its name is written to
 * DIR (SIZE bytes).  Returns 0, or -1 after reporting the error. */
static int make_dir(const struct runner *r, char *dir, size_t size)
{
    if ((size_t)snprintf(dir, size, "%s/slt-XXXXXX", r->tmpdir) >= size) {
        fprintf(stderr, "slt: temporary directory name too long\n");
        return -1;
    }
    if (!mkdtemp(dir)) {
        fprintf(stderr, "slt: mkdtemp %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Removes directory DIR and the files in it (SQLite and the VFSes create
 * no subdirectories).  A DIR that no longer exists is not an error.
 * Returns 0, or -1 after reporting what could not be removed. */
static int remove_dir(const char *dir)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    int rc = 0;

    if (!d) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "slt: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0) {
            fprintf(stderr, "slt: cannot remove %s/%s: %s\n", dir,
                    de->d_name, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    if (rmdir(dir) != 0) {
        fprintf(stderr, "slt: cannot remove %s: %s\n", dir, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* Runs script PATH in a new database DIR/test.db (DIR must exist and is
 * left for the caller to remove), prints the file's summary line on
 * stdout and leaves its counts in r->c.  Returns 0, or -1 if the script
 * could not be read or the database could not be set up (reported on
 * stderr; the counts are then those of the records run, if any). */
static int run_file(struct runner *r, const char *path, const char *dir)
{
    struct script s;
    char dbpath[PATH_MAX + 16];
    double t0 = now_seconds();
    int rc = -1;
    size_t i;

    memset(&r->c, 0, sizeof r->c);
    r->s = &s;
    r->db = NULL;
    r->hash_threshold = DEFAULT_HASH_THRESHOLD;
    r->halted = 0;
    r->nreported = 0;

    if (script_load(&s, path) != 0) {
        fprintf(stderr, "slt: cannot read %s: %s\n", path, strerror(errno));
        goto out;
    }
    snprintf(dbpath, sizeof dbpath, "%s/test.db", dir);
#ifdef SLT_RADOS
    /* build/slt_rados --vfs cow-rados: the database is POOL/NAME in the
     * pool $SLT_RADOS_POOL, named after the file's fresh directory */
    if (strcmp(r->vfs_name, COWVFS_RADOS_NAME) == 0) {
        const char *pool = getenv("SLT_RADOS_POOL");
        const char *base = strrchr(dir, '/');
        snprintf(dbpath, sizeof dbpath, "%s/%s", pool && *pool ? pool : "cow",
                 base ? base + 1 : dir);
    }
#endif
    if (sqlite3_open_v2(dbpath, &r->db, SQLITE_OPEN_READWRITE |
                        SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                        r->vfs) != SQLITE_OK) {
        fprintf(stderr, "slt: cannot open %s (vfs %s): %s\n", dbpath,
                r->vfs ? r->vfs : "default",
                r->db ? sqlite3_errmsg(r->db) : "out of memory");
        goto out;
    }
    /* As the reference runner does. */
    if (sqlite3_exec(r->db, "PRAGMA synchronous=OFF", NULL, NULL, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "slt: %s: PRAGMA synchronous=OFF: %s\n", dbpath,
                sqlite3_errmsg(r->db));
        goto out;
    }

    for (i = 0; i < s.nlines && !r->halted;) {
        size_t start;

        if (s.lines[i].len == 0) {
            i++;
            continue;
        }
        start = i;
        while (i < s.nlines && s.lines[i].len)
            i++;
        run_record(r, &s.lines[start], &s.lines[i]);
        if (r->live)
            *r->live = r->c;
    }
    rc = 0;
out:
    if (r->db && sqlite3_close(r->db) != SQLITE_OK) {
        fprintf(stderr, "slt: %s: close: %s\n", path, sqlite3_errmsg(r->db));
        rc = -1;
    }
    r->db = NULL;
    labels_clear(r->labels);
    if (rc == 0) {
        printf("%s: %ld passed, %ld failed, %ld skipped, %.2f s", path,
               r->c.passed, r->c.failed, r->c.skipped, now_seconds() - t0);
        if (r->halted)
            printf(" (%s at line %d)", r->halt_why, r->halted);
        printf("\n");
    } else {
        printf("%s: not run or not completed (see errors)\n", path);
    }
    fflush(stdout);
    script_free(&s);
    r->s = NULL;
    return rc;
}

/* Adds the counts C to *TOTAL. */
static void add_counts(struct counts *total, const struct counts *c)
{
    total->passed += c->passed;
    total->failed += c->failed;
    total->skipped += c->skipped;
    total->other_vfs += c->other_vfs;
}

/* Runs the N files in this process, one after the other.  Adds their
 * counts to *TOTAL.  Returns 0, or -1 if any input could not be run. */
static int run_serial(struct runner *r, char **files, size_t n,
                      struct counts *total)
{
    char dir[PATH_MAX];
    int rc = 0;
    size_t k;

    for (k = 0; k < n; k++) {
        if (make_dir(r, dir, sizeof dir) != 0) {
            rc = -1;
            continue;
        }
        if (run_file(r, files[k], dir) != 0)
            rc = -1;
        if (remove_dir(dir) != 0)
            rc = -1;
        add_counts(total, &r->c);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Parallel runs: one child process per file                           */
/* ------------------------------------------------------------------ */

/* Written by a child into memory shared with the parent. */
struct file_result {
    struct counts c;
    int rc;                 /* run_file()'s result */
};

/* A file of a parallel run, as seen by the parent. */
struct job {
    pid_t pid;              /* child running it, 0 when not running */
    FILE *out, *err;        /* the child's stdout and stderr (tmpfile) */
    char dir[PATH_MAX];     /* its database directory, "" if none */
    int state;              /* JOB_* */
    int wstatus;            /* from waitpid() */
};

enum { JOB_PENDING, JOB_RUNNING, JOB_DONE, JOB_FAILED_START };

/* Most files whose output waits to be printed (two open files each). */
#define MAX_JOBS_AHEAD 128

/* Starts the child running file K of FILES.  On failure the job is left
 * in JOB_FAILED_START after reporting why. */
static void start_job(struct runner *r, char **files, size_t k,
                      struct job *j, struct file_result *res)
{
    j->state = JOB_FAILED_START;
    j->out = tmpfile();
    j->err = tmpfile();
    if (!j->out || !j->err) {
        fprintf(stderr, "slt: tmpfile: %s\n", strerror(errno));
        return;
    }
    if (make_dir(r, j->dir, sizeof j->dir) != 0) {
        j->dir[0] = 0;
        return;
    }
    fflush(stdout);
    fflush(stderr);
    j->pid = fork();
    if (j->pid < 0) {
        fprintf(stderr, "slt: fork: %s\n", strerror(errno));
        j->pid = 0;
        return;
    }
    if (j->pid == 0) {
        /* The child: output goes to the job's files, the parent replays
         * it in file order.  _exit: nothing of the parent's to clean. */
        if (dup2(fileno(j->out), STDOUT_FILENO) < 0 ||
            dup2(fileno(j->err), STDERR_FILENO) < 0)
            _exit(EXIT_USAGE);
        r->live = &res[k].c;
        res[k].rc = run_file(r, files[k], j->dir);
        res[k].c = r->c;
        fflush(stdout);
        fflush(stderr);
        _exit(EXIT_PASS);
    }
    j->state = JOB_RUNNING;
}

/* Copies the contents of F to OUT, then closes F. */
static void replay(FILE *f, FILE *out)
{
    char buf[65536];
    size_t n;

    if (!f)
        return;
    rewind(f);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, out);
    fclose(f);
}

/* Prints the output of finished job J (file PATH) and adds its counts
 * to *TOTAL.  A child that died counts as one failed record.  Returns 0,
 * or -1 if the file could not be run. */
static int finish_job(struct job *j, const char *path,
                      const struct file_result *res, struct counts *total)
{
    int rc = 0;

    fflush(stdout);
    replay(j->err, stderr);
    fflush(stderr);
    replay(j->out, stdout);
    j->out = j->err = NULL;
    if (j->state == JOB_FAILED_START) {
        rc = -1;
    } else if (!WIFEXITED(j->wstatus) || WEXITSTATUS(j->wstatus) != 0) {
        if (WIFSIGNALED(j->wstatus))
            fprintf(stderr, "slt: %s: worker killed by signal %d\n", path,
                    WTERMSIG(j->wstatus));
        else
            fprintf(stderr, "slt: %s: worker exited with status %d\n",
                    path, WEXITSTATUS(j->wstatus));
        printf("%s: crashed after %ld passed, %ld failed, %ld skipped\n",
               path, res->c.passed, res->c.failed, res->c.skipped);
        add_counts(total, &res->c);
        total->failed++;
    } else {
        add_counts(total, &res->c);
        if (res->rc != 0)
            rc = -1;
    }
    fflush(stdout);
    return rc;
}

/* Runs the N files in up to JOBS child processes at a time, printing
 * each file's output in FILES order.  Adds the counts to *TOTAL.
 * Returns 0, or -1 if any input could not be run. */
static int run_parallel(struct runner *r, char **files, size_t n, int jobs,
                        struct counts *total)
{
    struct file_result *res = MAP_FAILED;
    struct job *job = NULL;
    size_t next_start = 0, next_print = 0, k;
    int running = 0, rc = 0;

    job = calloc(n, sizeof *job);
    if (!job)
        die_nomem();
    /* Counts come back through shared memory; fresh pages are zero. */
    res = mmap(NULL, n * sizeof *res, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED) {
        fprintf(stderr, "slt: mmap: %s\n", strerror(errno));
        rc = -1;
        goto out;
    }

    while (next_print < n) {
        pid_t pid;
        int wstatus;

        while (running < jobs && next_start < n &&
               next_start < next_print + MAX_JOBS_AHEAD) {
            start_job(r, files, next_start, &job[next_start], res);
            if (job[next_start].state == JOB_RUNNING)
                running++;
            next_start++;
        }
        if (running > 0) {
            pid = waitpid(-1, &wstatus, 0);
            if (pid < 0) {
                if (errno == EINTR)
                    continue;
                fprintf(stderr, "slt: waitpid: %s\n", strerror(errno));
                rc = -1;
                goto out;
            }
            for (k = next_print; k < next_start; k++) {
                if (job[k].state == JOB_RUNNING && job[k].pid == pid) {
                    job[k].state = JOB_DONE;
                    job[k].wstatus = wstatus;
                    running--;
                    break;
                }
            }
        }
        while (next_print < next_start &&
               job[next_print].state != JOB_RUNNING) {
            struct job *j = &job[next_print];

            if (j->dir[0] && remove_dir(j->dir) != 0)
                rc = -1;
            if (finish_job(j, files[next_print], &res[next_print],
                           total) != 0)
                rc = -1;
            next_print++;
        }
    }
out:
    /* Only reached early on a waitpid failure: reap what is left. */
    for (k = next_print; k < next_start; k++) {
        if (job[k].state == JOB_RUNNING)
            waitpid(job[k].pid, NULL, 0);
        if (job[k].dir[0])
            remove_dir(job[k].dir);
        if (job[k].out)
            fclose(job[k].out);
        if (job[k].err)
            fclose(job[k].err);
    }
    if (res != MAP_FAILED)
        munmap(res, n * sizeof *res);
    free(job);
    return rc;
}

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
    values_free(&r.res);
    free(r.sql);
    free(r.exp);
    free(r.labels);
    md5_free(&r.md5);
    return status;
}
