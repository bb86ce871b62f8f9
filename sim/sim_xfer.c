/* sim_xfer.c: the bounded body buffer of sim_xfer.h. Grows by doubling from
 * 1 KiB up to the cap: configs are a few hundred bytes, so most fetches make
 * one allocation. */
#include "sim_xfer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sim_buf_append(struct sim_buf *b, const void *p, size_t n)
{
    if (n > b->cap || b->len > b->cap - n)
        return -EFBIG;
    size_t want = b->len + n + 1;
    if (want > b->alloc) {
        size_t sz = b->alloc ? b->alloc : 1024;
        while (sz < want)
            sz *= 2;
        char *q = realloc(b->p, sz);
        if (q == NULL)
            return -ENOMEM;
        b->p = q;
        b->alloc = sz;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void sim_buf_reset(struct sim_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->alloc = 0;
}
