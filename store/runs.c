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

uint64_t runs_carve(struct byte_run **v, size_t *n, size_t *c, uint64_t b, uint64_t len)
{
    uint64_t e = b + len, got = 0;
    for (size_t k = 0; k < *n; k++) {
        struct byte_run *r = &(*v)[k];
        uint64_t rs = r->bytenr, re = r->bytenr + r->bytes;
        if (re <= b || rs >= e)
            continue;
        uint64_t os = rs > b ? rs : b, oe = re < e ? re : e;
        got += oe - os;
        if (os > rs && oe < re) { /* a hole in the middle: two runs */
            if (vec_reserve(*v, *c, *n + 1))
                return UINT64_MAX;
            r = &(*v)[k];
            (*v)[(*n)++] = (struct byte_run){oe, re - oe};
            r->bytes = os - rs;
        } else if (os > rs) {
            r->bytes = os - rs;
        } else if (oe < re) {
            r->bytenr = oe;
            r->bytes = re - oe;
        } else {
            (*v)[k--] = (*v)[--*n];
        }
    }
    return got;
}
