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

/* The member build_entry puts between the header and the payload. A header value holds no
 * unescaped quote, so these bytes first occur where the payload begins. */
static const char PAYLOAD_MEMBER[] = ",\"payload\":";

json_t *webhook_entry_load(const void *text, size_t len)
{
    return json_loadb(text, len, 0, NULL);
}

/* The header's tree when text is header + PAYLOAD_MEMBER + a payload that ends the entry. */
static json_t *header_before_payload(const char *text, size_t len, const char **payload, size_t *payload_len)
{
    const size_t mlen = sizeof PAYLOAD_MEMBER - 1;
    const char *at = len > mlen + 2 && text[len - 1] == '}' ? memmem(text, len, PAYLOAD_MEMBER, mlen) : NULL;
    if (!at)
        return NULL;
    size_t hlen = (size_t)(at - text);
    char *h = malloc(hlen + 2);
    if (!h)
        return NULL;
    memcpy(h, text, hlen);
    h[hlen] = '}';
    json_t *head = json_loadb(h, hlen + 1, 0, NULL);
    free(h);
    if (!json_is_object(head) || json_object_get(head, "payload")) {
        json_decref(head);
        return NULL;
    }
    *payload = at + mlen;
    *payload_len = len - 1 - (hlen + mlen);
    return head;
}

int webhook_entry_split(const void *text, size_t len, json_t **head, struct entry_payload *payload)
{
    memset(payload, 0, sizeof *payload);
    const char *p = NULL;
    size_t plen = 0;
    *head = header_before_payload(text, len, &p, &plen);
    const char *sub = json_string_value(json_object_get(*head, "sub_id"));
    /* The scan accepts only what jansson parses the same, as one object up to the end. */
    if (*head && sub && webhook_scan(p, plen, &payload->read) && !strcmp(payload->read.sub_id, sub)) {
        payload->text = malloc(plen + 1);
        if (!payload->text) {
            json_decref(*head);
            *head = NULL;
            return SAASD_ENOMEM;
        }
        memcpy(payload->text, p, plen);
        payload->text[plen] = 0;
        payload->len = plen;
        return 0;
    }
    json_decref(*head);
    *head = webhook_entry_load(text, len);
    return *head ? 0 : SAASD_EINVAL;
}

void entry_payload_clear(struct entry_payload *p)
{
    free(p->text);
    memset(p, 0, sizeof *p);
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

/* head (an object's text, closing brace included) with the payload spliced in as its last
 * member, verbatim: no re-serialisation of the payload. malloc'd, NULL when out of memory. */
static char *splice(const char *head, size_t head_len, const char *payload, size_t len, size_t *out_len)
{
    const size_t mlen = sizeof PAYLOAD_MEMBER - 1;
    char *entry = head_len ? malloc(head_len + mlen + len + 1) : NULL;
    if (!entry)
        return NULL;
    size_t n = head_len - 1;
    memcpy(entry, head, n);
    memcpy(entry + n, PAYLOAD_MEMBER, mlen);
    n += mlen;
    memcpy(entry + n, payload, len);
    n += len;
    entry[n++] = '}';
    *out_len = n;
    return entry;
}

static int build_entry(struct webhook_event *ev, const char *body, size_t len, const char *request_id,
                       long long received_ms)
{
    char buf[512];
    char *head_text = header_text(ev, request_id, received_ms, buf, sizeof buf);
    ev->entry = head_text ? splice(head_text, strlen(head_text), body, len, &ev->entry_len) : NULL;
    if (head_text != buf)
        free(head_text);
    return ev->entry ? 0 : SAASD_ENOMEM;
}

char *webhook_entry_join(json_t *head, const struct entry_payload *p, size_t *len)
{
    char *h = json_dumps(head, JSON_COMPACT);
    char *entry = NULL;
    if (h && (!p || !p->text)) {
        *len = strlen(h);
        return h;
    }
    if (h)
        entry = splice(h, strlen(h), p->text, p->len, len);
    free(h);
    return entry;
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
