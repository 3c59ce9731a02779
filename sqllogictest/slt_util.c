/*
 * slt_util.c - the sqllogictest runner's small utilities (slt_util.h).
 */
#include "slt_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void die_nomem(void)
{
    fputs("slt: out of memory\n", stderr);
    exit(EXIT_USAGE);
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        die_nomem();
    return p;
}

void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        die_nomem();
    return q;
}

char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        die_nomem();
    return d;
}

void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    size_t n = *cap ? *cap : 64;

    if (need <= *cap)
        return p;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            die_nomem();
        n *= 2;
    }
    *cap = n;
    return xrealloc(p, n * elem);
}

double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
