/* Webhook body → inbox entry, checked to load the way the workers load it. */
#include "daemon/webhook_body.h"

#include "core/err.h"
#include "core/json_lenient.h"
#include "daemon/webhook_scan.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const known_actions[] = {"ChangePlan", "ChangeQuantity", "Reinstate", "Renew",
                                            "Suspend", "Unsubscribe", "Subscribe", NULL};

int webhook_action_index(const char *action)
{
    for (int i = 0; known_actions[i]; i++)
        if (action == known_actions[i])
            return i;
    return -1;
}

static const char *canonical_action(const char *a)
{
    for (int i = 0; known_actions[i]; i++)
        if (!strcasecmp(a, known_actions[i]))
            return known_actions[i];
    return NULL;
}

json_t *webhook_entry_load(const void *text, size_t len)
{
    return json_loadb(text, len, 0, NULL);
}

void webhook_event_clear(struct webhook_event *ev)
{
    free(ev->entry);
    memset(ev, 0, sizeof *ev);
}

/* A value that can sit between JSON quotes as it is: printable ASCII without quote or
 * backslash. (Not any UTF-8: a member cut to fit its buffer may end mid-character, which only
 * jansson's encoder would catch.) */
static int plain(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
            return 0;
    return 1;
}

/* The entry header, without its closing brace. The usual ids are plain and are written by one
 * snprintf (no tree, no re-serialisation) into buf when it is large enough (no allocation);
 * anything else goes through jansson's encoder. The result is buf or malloc'd. */
static char *header_text(const struct webhook_event *ev, const char *request_id, long long received_ms,
                         char *buf, size_t buf_len)
{
    if (plain(ev->op_id) && plain(ev->sub_id) && plain(ev->offer_id) && plain(request_id)) {
        size_t cap = strlen(ev->op_id) + strlen(ev->sub_id) + strlen(ev->offer_id) + strlen(request_id) + 160;
        char *t = cap <= buf_len ? buf : malloc(cap);
        if (t)
            snprintf(t, cap,
                     "{\"op_id\":\"%s\",\"sub_id\":\"%s\",\"action\":\"%s\",\"offer_id\":\"%s\","
                     "\"request_id\":\"%s\",\"received_at\":%lld,\"attempts\":0}",
                     ev->op_id, ev->sub_id, ev->action, ev->offer_id, request_id, received_ms);
        return t;
    }
    json_t *head = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i}", "op_id", ev->op_id, "sub_id", ev->sub_id,
                             "action", ev->action, "offer_id", ev->offer_id, "request_id", request_id,
                             "received_at", (json_int_t)received_ms, "attempts", 0);
    char *t = head ? json_dumps(head, JSON_COMPACT) : NULL;
    json_decref(head);
    return t;
}

/* The header (without its closing brace), ,"payload":, the body verbatim, }: no
 * re-serialisation of the payload on the hot path. */
static int build_entry(struct webhook_event *ev, const char *body, size_t len, const char *request_id,
                       long long received_ms)
{
    char buf[512];
    char *head_text = header_text(ev, request_id, received_ms, buf, sizeof buf);
    size_t head_len = head_text ? strlen(head_text) : 0;
    char *entry = head_len ? malloc(head_len + len + 16) : NULL;
    if (!entry) {
        if (head_text != buf)
            free(head_text);
        return SAASD_ENOMEM;
    }
    size_t n = head_len - 1;
    memcpy(entry, head_text, n);
    memcpy(entry + n, ",\"payload\":", 11);
    n += 11;
    memcpy(entry + n, body, len);
    n += len;
    entry[n++] = '}';
    if (head_text != buf)
        free(head_text);
    ev->entry = entry;
    ev->entry_len = n;
    return 0;
}

static int depth_of(json_t *v, int limit);

/* Fold one child's depth into *deepest; 1 once the limit is reached (no need to look further). */
static int deeper_child(json_t *x, int limit, int *deepest)
{
    int d = depth_of(x, limit - 1);
    *deepest = d > *deepest ? d : *deepest;
    return *deepest >= limit;
}

/* Container nesting of a parsed value, counted the way jansson's parser counts it (objects and
 * arrays, one level each), stopping once `limit` is passed. */
static int depth_of(json_t *v, int limit)
{
    if (!json_is_object(v) && !json_is_array(v))
        return 0;
    int deepest = 0;
    if (limit <= 0)
        return 1;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (deeper_child(x, limit, &deepest))
                break;
        }
    } else {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (deeper_child(x, limit, &deepest))
                break;
        }
    }
    return deepest + 1;
}

int webhook_event_from_body(const char *body, size_t len, const char *request_id, long long received_ms,
                            struct webhook_event *out, const char **why)
{
    memset(out, 0, sizeof *out);
    *why = NULL;
    if (webhook_scan(body, len, out)) { /* the usual plain body: no tree (webhook_scan.h) */
        out->action = canonical_action(out->action_text);
        return out->action ? build_entry(out, body, len, request_id, received_ms) : 0;
    }
    memset(out, 0, sizeof *out);
    json_t *payload = json_loadb(body, len, 0, NULL);
    if (!json_is_object(payload)) {
        json_decref(payload);
        *why = "body is not a JSON object";
        return SAASD_EINVAL;
    }
    /* Pre-2020 payloads called the operation id operationId (§5.4). */
    int missing = (jl_string(payload, "id", out->op_id, sizeof out->op_id) &&
                   jl_string(payload, "operationId", out->op_id, sizeof out->op_id)) ||
                  jl_string(payload, "subscriptionId", out->sub_id, sizeof out->sub_id) ||
                  jl_string(payload, "action", out->action_text, sizeof out->action_text);
    jl_string(payload, "offerId", out->offer_id, sizeof out->offer_id);
    /* The entry nests the body one level deeper than the body itself: a body at the parser's
     * depth limit parses alone but not as an entry, and would be acknowledged yet never acted
     * on. The header is plain JSON and the body just parsed, so the entry loads exactly when
     * the body's depth leaves room for one more level: checked on the tree already built
     * instead of parsing the entry a second time. */
    int too_deep = depth_of(payload, JSON_PARSER_MAX_DEPTH) + 1 > JSON_PARSER_MAX_DEPTH;
    json_decref(payload);
    if (missing) {
        *why = "id, subscriptionId and action are required";
        return SAASD_ENOTFOUND;
    }
    out->action = canonical_action(out->action_text);
    if (!out->action)
        return 0;
    if (too_deep) {
        *why = "body nests too deeply to be stored";
        return SAASD_EINVAL;
    }
    return build_entry(out, body, len, request_id, received_ms);
}
