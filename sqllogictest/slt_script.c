/*
 * slt_script.c - scripts, result values, MD5 and labels of the
 * sqllogictest runner (slt_script.h).
 */
#include "slt_script.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slt_util.h"

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

/* ------------------------------------------------------------------ */
/* Scripts: lines and records                                          */
/* ------------------------------------------------------------------ */

int script_load(struct script *s, const char *path)
{
    struct stat st;
    size_t off = 0;
    int fd = -1, rc = -1, lineno = 0;
    char *p, *end;

    memset(s, 0, sizeof *s);
    s->path = path;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) != 0)
        goto out;
    if (!S_ISREG(st.st_mode)) {
        errno = EISDIR;
        goto out;
    }
    s->text = xmalloc((size_t)st.st_size + 1);
    while (off < (size_t)st.st_size) {
        ssize_t got = read(fd, s->text + off, (size_t)st.st_size - off);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        if (got == 0)
            break;          /* file shrank; use what is there */
        off += (size_t)got;
    }
    s->size = off;
    s->text[off] = 0;

    p = s->text;
    end = s->text + s->size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        size_t len = (size_t)(eol - p), i;

        lineno++;
        *eol = 0;
        if (len > 0 && p[len - 1] == '\r')
            p[--len] = 0;
        for (i = 0; i < len && is_space((unsigned char)p[i]); i++)
            ;
        if (i == len)
            len = 0;
        if (len == 0 || p[0] != '#') {
            s->lines = grow(s->lines, &s->cap_lines, s->nlines + 1,
                            sizeof *s->lines);
            s->lines[s->nlines].z = p;
            s->lines[s->nlines].len = len;
            s->lines[s->nlines].lineno = lineno;
            s->nlines++;
        }
        p = eol + 1;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

void script_free(struct script *s)
{
    free(s->text);
    free(s->lines);
    memset(s, 0, sizeof *s);
}

void tokenize(struct line *l, char *tok[MAX_TOKENS])
{
    char *p = l->z;
    int i;

    for (i = 0; i < MAX_TOKENS; i++) {
        while (*p && is_space((unsigned char)*p))
            p++;
        if (!*p) {
            tok[i] = "";
            continue;
        }
        tok[i] = p;
        while (*p && !is_space((unsigned char)*p))
            p++;
        if (*p)
            *p++ = 0;
    }
}

/* ------------------------------------------------------------------ */
/* Result values                                                       */
/* ------------------------------------------------------------------ */

void values_reset(struct values *v)
{
    v->len = 0;
    v->n = 0;
}

char *values_add(struct values *v, const char *z, size_t len)
{
    char *dst;

    v->buf = grow(v->buf, &v->cap, v->len + len + 1, 1);
    v->off = grow(v->off, &v->cap_off, v->n + 1, sizeof *v->off);
    dst = v->buf + v->len;
    memcpy(dst, z, len);
    dst[len] = 0;
    v->off[v->n++] = v->len;
    v->len += len + 1;
    return dst;
}

void values_finish(struct values *v)
{
    size_t i;

    v->val = grow(v->val, &v->cap_val, v->n, sizeof *v->val);
    for (i = 0; i < v->n; i++)
        v->val[i] = v->buf + v->off[i];
}

void values_free(struct values *v)
{
    free(v->buf);
    free(v->off);
    free(v->val);
    memset(v, 0, sizeof *v);
}

/* qsort_r comparators: rows of *(size_t *)arg values, or single values. */
static int cmp_rows(const void *a, const void *b, void *arg)
{
    const char *const *ra = a, *const *rb = b;
    size_t ncol = *(const size_t *)arg, i;
    int c = 0;

    for (i = 0; i < ncol && c == 0; i++)
        c = strcmp(ra[i], rb[i]);
    return c;
}

static int cmp_values(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void values_sort_rows(struct values *v, size_t ncol)
{
    if (v->n > ncol)
        qsort_r(v->val, v->n / ncol, ncol * sizeof *v->val, cmp_rows, &ncol);
}

void values_sort(struct values *v)
{
    if (v->n > 1)
        qsort(v->val, v->n, sizeof *v->val, cmp_values);
}

/* Writes V in decimal to OUT (at least 21 bytes), NUL-terminated.
 * Returns the number of characters written, without the NUL. */
static size_t format_i64(char *out, sqlite3_int64 v)
{
    char tmp[24];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    out[len] = 0;
    return len;
}

void values_render(struct values *v, sqlite3_stmt *stmt, int i, char type)
{
    char buf[64];
    size_t n;

    if (sqlite3_column_type(stmt, i) == SQLITE_NULL) {
        values_add(v, "NULL", 4);
        return;
    }
    switch (type) {
    case 'I':
        n = format_i64(buf, sqlite3_column_int64(stmt, i));
        values_add(v, buf, n);
        break;
    case 'R':
        sqlite3_snprintf((int)sizeof buf, buf, "%.3f",
                         sqlite3_column_double(stmt, i));
        values_add(v, buf, strlen(buf));
        break;
    default: {  /* 'T' */
        const unsigned char *t = sqlite3_column_text(stmt, i);
        unsigned char *d;

        if (!t || !t[0]) {
            values_add(v, "(empty)", 7);
            break;
        }
        n = strlen((const char *)t);
        d = (unsigned char *)values_add(v, (const char *)t, n);
        for (; *d; d++)
            if (*d < ' ' || *d > '~')
                *d = '@';
        break;
    }
    }
}

/* ------------------------------------------------------------------ */
/* MD5 of values                                                       */
/* ------------------------------------------------------------------ */

int md5_init(struct md5 *m)
{
    m->md = EVP_MD_fetch(NULL, "MD5", NULL);
    m->ctx = EVP_MD_CTX_new();
    return m->md && m->ctx ? 0 : -1;
}

int md5_of(struct md5 *m, const char *const *val, size_t n,
           char hex[MD5_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0, i;
    size_t k, len = 0;

    /* One contiguous buffer: much cheaper than two updates per value. */
    for (k = 0; k < n; k++) {
        size_t vlen = strlen(val[k]);

        m->buf = grow(m->buf, &m->cap, len + vlen + 1, 1);
        memcpy(m->buf + len, val[k], vlen);
        m->buf[len + vlen] = '\n';
        len += vlen + 1;
    }
    if (!EVP_DigestInit_ex(m->ctx, m->md, NULL) ||
        !EVP_DigestUpdate(m->ctx, m->buf, len) ||
        !EVP_DigestFinal_ex(m->ctx, d, &dlen) || dlen * 2 != MD5_HEX_LEN)
        return -1;
    for (i = 0; i < dlen; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[MD5_HEX_LEN] = 0;
    return 0;
}

void md5_free(struct md5 *m)
{
    free(m->buf);
    EVP_MD_CTX_free(m->ctx);
    EVP_MD_free(m->md);
    memset(m, 0, sizeof *m);
}

int parse_hash_line(const char *z, char hex[MD5_HEX_LEN + 1])
{
    static const char mid[] = " values hashing to ";
    size_t i;

    if (*z < '0' || *z > '9')
        return 0;
    while (*z >= '0' && *z <= '9')
        z++;
    if (strncmp(z, mid, sizeof mid - 1) != 0)
        return 0;
    z += sizeof mid - 1;
    for (i = 0; i < MD5_HEX_LEN; i++) {
        if (!z[i])
            return 0;
        hex[i] = z[i];
    }
    hex[MD5_HEX_LEN] = 0;
    return z[MD5_HEX_LEN] == 0;
}

/* ------------------------------------------------------------------ */
/* Labels: label name -> MD5 of the first result seen with it           */
/* ------------------------------------------------------------------ */

struct label {
    struct label *next;
    char md5[MD5_HEX_LEN + 1];
    char name[];
};

static unsigned label_hash(const char *s)
{
    unsigned h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h & (LABEL_BUCKETS - 1);
}

int label_check(struct labels *t, const char *name, const char *md5,
                const char **prev)
{
    unsigned h = label_hash(name);
    struct label *l;
    size_t n;

    for (l = t->bucket[h]; l; l = l->next) {
        if (strcmp(l->name, name) == 0) {
            *prev = l->md5;
            return strcmp(l->md5, md5) != 0;
        }
    }
    n = strlen(name);
    l = xmalloc(sizeof *l + n + 1);
    memcpy(l->name, name, n + 1);
    memcpy(l->md5, md5, MD5_HEX_LEN);
    l->md5[MD5_HEX_LEN] = 0;
    l->next = t->bucket[h];
    t->bucket[h] = l;
    *prev = l->md5;
    return 0;
}

void labels_clear(struct labels *t)
{
    size_t i;

    for (i = 0; i < LABEL_BUCKETS; i++) {
        while (t->bucket[i]) {
            struct label *l = t->bucket[i];
            t->bucket[i] = l->next;
            free(l);
        }
    }
}
