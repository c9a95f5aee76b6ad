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

/* Stands in for the member while obj is encoded: a control character keeps it from matching
 * anything jansson writes for a real value (it is written escaped, as \u0001). */
#define SPLICE_MARK "\001saasd-spliced\001"
#define SPLICE_MARK_TEXT "\"\\u0001saasd-spliced\\u0001\""

static int encode_whole(json_t *obj, char **out)
{
    *out = json_dumps(obj, JSON_COMPACT);
    return *out ? 0 : SAASD_ENOMEM;
}

int record_text_spliced(json_t *obj, const char *member, json_t *value, const char *value_json, char **out)
{
    *out = NULL;
    if (!value_json || !value || json_object_get(obj, member) != value)
        return encode_whole(obj, out);
    json_incref(value);
    int rc = json_object_set_new(obj, member, json_string(SPLICE_MARK)) ? SAASD_ENOMEM : 0;
    char *text = rc ? NULL : json_dumps(obj, JSON_COMPACT);
    json_object_set_new(obj, member, value); /* back in its place (an existing key keeps its position) */
    size_t mark = sizeof SPLICE_MARK_TEXT - 1, vlen = strlen(value_json);
    const char *at = text ? strstr(text, SPLICE_MARK_TEXT) : NULL;
    if (!at || strstr(at + mark, SPLICE_MARK_TEXT)) { /* not encoded, or another value holds the mark's text */
        free(text);
        return encode_whole(obj, out);
    }
    char *t = malloc(strlen(text) - mark + vlen + 1);
    if (t) {
        size_t head = (size_t)(at - text);
        memcpy(t, text, head);
        memcpy(t + head, value_json, vlen);
        strcpy(t + head + vlen, at + mark);
    }
    free(text);
    *out = t;
    return t ? 0 : SAASD_ENOMEM;
}

int record_put_spliced(struct store_batch *b, int db, const char *key, json_t *obj, const char *member, json_t *value,
                       const char *value_json)
{
    char *text = NULL;
    int rc = record_text_spliced(obj, member, value, value_json, &text);
    if (!rc)
        rc = store_batch_put(b, (enum store_db)db, key, strlen(key), text, strlen(text));
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
