/* Local records kept in the store: subscriptions, operations and the audit trail. */
#include "daemon/daemon.h"

#include "core/err.h"
#include "core/mp_client.h"
#include "core/store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *take_body(struct mp_result *r)
{
    json_t *b = r->body;
    r->body = NULL;
    mp_result_clear(r);
    return b;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int record_get_sub(struct daemon *d, const char *sub_id, json_t **out)
{
    void *val = NULL;
    size_t len = 0;
    int rc = store_get(d->store, STORE_SUBSCRIPTIONS, sub_id, strlen(sub_id), &val, &len);
    if (rc)
        return rc;
    json_t *j = json_loadb(val, len, 0, NULL);
    free(val);
    if (!j)
        return SAASD_EINTERNAL;
    *out = j;
    return 0;
}

int record_put_json(struct store_batch *b, int db, const char *key, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (!text)
        return SAASD_ENOMEM;
    int rc = store_batch_put(b, (enum store_db)db, key, strlen(key), text, strlen(text));
    free(text);
    return rc;
}

int record_audit_text(struct store_batch *b, const char *sub_id, const char *text, size_t len)
{
    /* Key: subscription id + sequence, so one subscription's history is one prefix scan. */
    return store_batch_append(b, STORE_AUDIT, sub_id, strlen(sub_id), text, len);
}

int record_audit(struct store_batch *b, const char *sub_id, json_t *entry)
{
    json_object_set_new(entry, "time_ms", json_integer(now_ms()));
    char *text = json_dumps(entry, JSON_COMPACT);
    if (!text)
        return SAASD_ENOMEM;
    int rc = record_audit_text(b, sub_id, text, strlen(text));
    free(text);
    return rc;
}
