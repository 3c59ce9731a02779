/*
 * vec.c - growing the store's arrays (vec.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "vec.h"

int vec_reserve_(void *arrp, size_t *cap, size_t need, size_t elsize)
{
    if (need <= *cap)
        return COW_OK;
    size_t c = *cap < 16 ? 16 : *cap;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return COW_ENOMEM;
        c *= 2;
    }
    if (c > SIZE_MAX / elsize)
        return COW_ENOMEM;
    void *old, *v;
    memcpy(&old, arrp, sizeof old);
    v = realloc(old, c * elsize);
    if (!v)
        return COW_ENOMEM;
    memcpy(arrp, &v, sizeof v);
    *cap = c;
    return COW_OK;
}
