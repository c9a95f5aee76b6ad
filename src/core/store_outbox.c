/* The outbox's two indexes, kept by the store's writer for every OUTBOX write (store.h):
 *   OUTBOX_DUE   be64 next_at_ms + be64 seq -> subscription id: the inbox workers read only
 *                the entries due by now, in due order, not every waiting entry;
 *   OUTBOX_SUBS  sub id + '\0' + be64 seq   -> be64 next_at_ms: whether a subscription has an
 *                entry waiting, and which is its oldest (events of one subscription in order).
 * An entry whose value carries no sub_id or next_at_ms (not written by the inbox) is indexed
 * under "" / 0 so that it is still found. */
#include "core/err.h"
#include "core/store_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB_MAX 256

/* sub_id and next_at_ms of an outbox value: from its header without parsing when it starts
 * {"next_at_ms":N and names "sub_id" early (as inbox.c writes it), else with jansson. */
static void outbox_fields(const char *val, size_t vlen, char sub[SUB_MAX], uint64_t *next_at)
{
    static const char head[] = "{\"next_at_ms\":", tag[] = "\"sub_id\":\"";
    sub[0] = 0;
    *next_at = 0;
    const char *p = memmem(val, vlen < 1024 ? vlen : 1024, tag, sizeof tag - 1);
    if (vlen > sizeof head && !memcmp(val, head, sizeof head - 1) && p) {
        const char *q = val + sizeof head - 1;
        while (q < val + vlen && *q >= '0' && *q <= '9')
            *next_at = *next_at * 10 + (uint64_t)(*q++ - '0');
        p += sizeof tag - 1;
        size_t n = 0;
        while (p + n < val + vlen && p[n] != '"' && p[n] != '\\' && n < SUB_MAX - 1)
            n++;
        if (p + n < val + vlen && p[n] == '"') {
            memcpy(sub, p, n);
            sub[n] = 0;
            return;
        }
    }
    json_t *e = json_loadb(val, vlen, 0, NULL);
    const char *sv = json_string_value(json_object_get(e, "sub_id"));
    json_int_t at = json_integer_value(json_object_get(e, "next_at_ms"));
    snprintf(sub, SUB_MAX, "%s", sv ? sv : "");
    *next_at = at > 0 ? (uint64_t)at : 0;
    json_decref(e);
}

/* The two index keys of one outbox entry. */
static int index_keys(const void *key, size_t klen, const MDB_val *val, unsigned char due[24], size_t *due_len,
                      unsigned char by_sub[SUB_MAX + 24], size_t *sub_len, uint64_t *next_at, char sub[SUB_MAX])
{
    if (klen > 16)
        return SAASD_EINVAL; /* outbox keys are be64 sequence numbers */
    outbox_fields(val->mv_data, val->mv_size, sub, next_at);
    store_be64_put(due, *next_at);
    memcpy(due + 8, key, klen);
    *due_len = 8 + klen;
    size_t n = strlen(sub);
    memcpy(by_sub, sub, n + 1);
    memcpy(by_sub + n + 1, key, klen);
    *sub_len = n + 1 + klen;
    return 0;
}

static int change_index(struct store *s, MDB_txn *txn, const void *key, size_t klen, int add)
{
    MDB_val k = {klen, (void *)(uintptr_t)key}, v;
    int rc = mdb_get(txn, s->dbi[STORE_OUTBOX], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return store_mdb_err(rc);
    unsigned char due[24], by_sub[SUB_MAX + 24], at_be[8];
    size_t due_len, sub_len;
    uint64_t next_at;
    char sub[SUB_MAX];
    if ((rc = index_keys(key, klen, &v, due, &due_len, by_sub, &sub_len, &next_at, sub)) != 0)
        return rc;
    MDB_val dk = {due_len, due}, sk = {sub_len, by_sub};
    if (!add) {
        rc = mdb_del(txn, s->dbi[STORE_OUTBOX_DUE], &dk, NULL);
        if (!rc || rc == MDB_NOTFOUND)
            rc = mdb_del(txn, s->dbi[STORE_OUTBOX_SUBS], &sk, NULL);
        return rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
    }
    store_be64_put(at_be, next_at);
    MDB_val dv = {strlen(sub), sub}, sv = {8, at_be};
    rc = mdb_put(txn, s->dbi[STORE_OUTBOX_DUE], &dk, &dv, 0);
    if (!rc)
        rc = mdb_put(txn, s->dbi[STORE_OUTBOX_SUBS], &sk, &sv, 0);
    return store_mdb_err(rc);
}

int store_outbox_unindex(struct store *s, MDB_txn *txn, const void *key, size_t klen)
{
    return change_index(s, txn, key, klen, 0);
}

int store_outbox_index(struct store *s, MDB_txn *txn, const void *key, size_t klen)
{
    return change_index(s, txn, key, klen, 1);
}
