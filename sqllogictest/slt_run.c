/*
 * slt_run.c - the sqllogictest runner's records and files (slt_run.h).
 */
#include "slt_run.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cowvfs.h"
#include "slt_util.h"

#define DEFAULT_HASH_THRESHOLD 8
#define ENGINE_NAME            "sqlite"
#define FAIL_REPORT_CAP        10    /* stderr failure lines per file */
#define VERBOSE_VALUE_CAP      100   /* values printed per list, verbose */

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

int make_dir(const struct runner *r, char *dir, size_t size)
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

int remove_dir(const char *dir)
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

int run_file(struct runner *r, const char *path, const char *dir)
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

void add_counts(struct counts *total, const struct counts *c)
{
    total->passed += c->passed;
    total->failed += c->failed;
    total->skipped += c->skipped;
    total->other_vfs += c->other_vfs;
}

int run_serial(struct runner *r, char **files, size_t n,
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

void runner_free(struct runner *r)
{
    values_free(&r->res);
    free(r->sql);
    free(r->exp);
    if (r->labels)
        labels_clear(r->labels);
    free(r->labels);
    md5_free(&r->md5);
}
