/*
 * runs.c - lists of byte runs (runs.h).
 */
#include "runs.h"

#include <string.h>

#include "vec.h"

int runs_append(struct byte_run **to, size_t *nto, size_t *cto, const struct byte_run *from,
                size_t n)
{
    if (n == 0)
        return 0;
    if (vec_reserve(*to, *cto, *nto + n))
        return -1;
    memcpy(*to + *nto, from, n * sizeof *from);
    *nto += n;
    return 0;
}

uint64_t runs_cut(uint64_t *start, uint64_t *bytes, uint64_t b, uint64_t len,
                  uint64_t *tail_start, uint64_t *tail_bytes)
{
    uint64_t rs = *start, re = *start + *bytes, e = b + len;
    *tail_bytes = 0;
    if (re <= b || rs >= e)
        return 0;
    uint64_t os = rs > b ? rs : b, oe = re < e ? re : e;
    if (oe < re) { /* a tail stays: kept here, or apart if a head stays too */
        if (os > rs) {
            *tail_start = oe;
            *tail_bytes = re - oe;
        } else {
            *start = oe;
        }
    }
    *bytes = os > rs ? os - rs : oe < re ? re - oe : 0;
    return oe - os;
}

uint64_t runs_carve(struct byte_run **v, size_t *n, size_t *c, uint64_t b, uint64_t len)
{
    uint64_t got = 0;
    for (size_t k = 0; k < *n; k++) {
        /* room for a tail first, if the cut falls inside this run */
        if ((*v)[k].bytenr < b && b + len < (*v)[k].bytenr + (*v)[k].bytes &&
            vec_reserve(*v, *c, *n + 1))
            return UINT64_MAX;
        struct byte_run *r = &(*v)[k];
        uint64_t ts, tb;
        got += runs_cut(&r->bytenr, &r->bytes, b, len, &ts, &tb);
        if (tb)
            (*v)[(*n)++] = (struct byte_run){ts, tb};
        else if (r->bytes == 0)
            (*v)[k--] = (*v)[--*n];
    }
    return got;
}
