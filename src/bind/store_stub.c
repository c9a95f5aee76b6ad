/* TEMPORARY: stands in for src/core/store.c until it lands on main (then delete this file).
 * Only what the ctx.store binding links against; every read finds nothing, writes fail. */
#include "core/err.h"
#include "core/store.h"

int store_get(struct store *s, enum store_db db, const void *key, size_t klen, void **val, size_t *vlen)
{
    (void)s, (void)db, (void)key, (void)klen;
    *val = NULL;
    *vlen = 0;
    return SAASD_ENOTFOUND;
}

int store_batch_put(struct store_batch *b, enum store_db db, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    (void)b, (void)db, (void)key, (void)klen, (void)val, (void)vlen;
    return SAASD_EINTERNAL;
}

int store_batch_del(struct store_batch *b, enum store_db db, const void *key, size_t klen)
{
    (void)b, (void)db, (void)key, (void)klen;
    return SAASD_EINTERNAL;
}
