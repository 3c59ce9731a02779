/*
 * slt_script.h - what the sqllogictest runner (sqllogictest/slt.c) reads
 * and compares: a script file split into lines and tokens (script_,
 * tokenize), the rendered values of a query result (values_), the MD5 of
 * a list of values and the "N values hashing to MD5" line (md5_,
 * parse_hash_line), and the labels of a file (label_check, labels_clear).
 * slt.c's file comment gives the script format these follow.
 *
 * Allocation never fails here (slt_util.h: running out of memory ends the
 * program), so only reading a file and OpenSSL can report errors.
 */
#ifndef SLT_SCRIPT_H
#define SLT_SCRIPT_H

#include <stddef.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#define LABEL_BUCKETS          4096  /* power of two */
#define MD5_HEX_LEN            32

/* ------------------------------------------------------------------ */
/* Scripts: lines and records                                          */
/* ------------------------------------------------------------------ */

/* One non-comment line of a script, NUL-terminated in place, without its
 * line terminator.  A blank line has len 0. */
struct line {
    char *z;        /* points into script.text */
    size_t len;     /* bytes, 0 for a blank line */
    int lineno;     /* 1-based line number in the file */
};

/* A script file loaded in memory.  Owns text and lines. */
struct script {
    const char *path;   /* as given or as found by the walk; not owned */
    char *text;         /* the whole file, NUL-terminated */
    size_t size;        /* bytes in text, without the NUL */
    struct line *lines; /* non-comment lines, in order */
    size_t nlines;
    size_t cap_lines;
};

/* Reads PATH into S and splits it into lines (see struct line); PATH is
 * kept, not copied, and must outlive S.  Returns 0, or -1 with errno set
 * if the file cannot be read; S owns its memory either way and must be
 * released with script_free(). */
int script_load(struct script *s, const char *path);

/* Frees what script_load() allocated in S and zeroes S. */
void script_free(struct script *s);

#define MAX_TOKENS 4

/* Splits line L in place into up to MAX_TOKENS white-space separated
 * tokens (NUL-terminating them inside the line).  Missing tokens are
 * set to "".  The line text is altered; the tokens point into it. */
void tokenize(struct line *l, char *tok[MAX_TOKENS]);

/* ------------------------------------------------------------------ */
/* Result values                                                       */
/* ------------------------------------------------------------------ */

/* The rendered values of one query result, in row-major order.  Values
 * are stored NUL-terminated back to back in buf; off[i] is the offset
 * of value i and, once values_finish() ran, val[i] points at it.  A
 * zeroed struct is empty; values_free() releases it. */
struct values {
    char *buf;
    size_t len, cap;
    size_t *off;
    size_t n, cap_off;
    const char **val;
    size_t cap_val;
};

/* Empties V, keeping its buffers for the next result. */
void values_reset(struct values *v);

/* Appends the LEN bytes at Z as a new value; returns a pointer to the
 * copy (owned by V), valid until the next append. */
char *values_add(struct values *v, const char *z, size_t len);

/* Renders column I of the current row of STMT per type letter TYPE ('I',
 * 'R' or 'T'; see slt.c's file comment for the rules) and appends it to V. */
void values_render(struct values *v, sqlite3_stmt *stmt, int i, char type);

/* Fills v->val from v->off, after the last append. */
void values_finish(struct values *v);

/* Sorts v->val (after values_finish()) as rows of NCOL values, by strcmp
 * of their values field by field ("rowsort"), or each value on its own
 * ("valuesort"). */
void values_sort_rows(struct values *v, size_t ncol);
void values_sort(struct values *v);

/* Frees V's buffers and zeroes it. */
void values_free(struct values *v);

/* ------------------------------------------------------------------ */
/* MD5 of values                                                       */
/* ------------------------------------------------------------------ */

/* An MD5 context, fetched once and reused, and the buffer values are
 * joined in.  A zeroed struct may be given to md5_free(). */
struct md5 {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
    char *buf;          /* values joined for hashing */
    size_t cap;
};

/* Fetches OpenSSL's MD5 into M (zeroed before).  Returns 0, or -1 if
 * OpenSSL has no MD5; md5_free() releases M either way. */
int md5_init(struct md5 *m);

/* Computes the lowercase hex MD5 of the N strings at VAL, each followed
 * by "\n", into HEX (MD5_HEX_LEN + 1 bytes).  Returns 0, -1 on an
 * OpenSSL failure. */
int md5_of(struct md5 *m, const char *const *val, size_t n,
           char hex[MD5_HEX_LEN + 1]);

/* Releases what md5_init() and md5_of() hold in M. */
void md5_free(struct md5 *m);

/* Returns 1 if Z is "<digits> values hashing to <32 hex>", storing the
 * hash in HEX; else 0. */
int parse_hash_line(const char *z, char hex[MD5_HEX_LEN + 1]);

/* ------------------------------------------------------------------ */
/* Labels: label name -> MD5 of the first result seen with it           */
/* ------------------------------------------------------------------ */

struct label;

/* The labels of a file.  A zeroed struct is empty; labels_clear()
 * empties it. */
struct labels {
    struct label *bucket[LABEL_BUCKETS];
};

/* Records MD5 (hex) for label NAME, or checks it against the one already
 * recorded.  Returns 0 when it agrees (or is new), 1 when it differs;
 * *prev is set to the recorded hash (owned by T, valid until
 * labels_clear()). */
int label_check(struct labels *t, const char *name, const char *md5,
                const char **prev);

/* Forgets every label of T. */
void labels_clear(struct labels *t);

#endif
