/* Webhook body → inbox entry, checked to load the way the workers load it. */
#include "daemon/webhook_body.h"

#include "core/err.h"
#include "core/json_lenient.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const known_actions[] = {"ChangePlan", "ChangeQuantity", "Reinstate", "Renew",
                                            "Suspend", "Unsubscribe", "Subscribe", NULL};

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

/* The header (without its closing brace), ,"payload":, the body verbatim, }: no
 * re-serialisation of the payload on the hot path. */
static int build_entry(struct webhook_event *ev, const char *body, size_t len, const char *request_id,
                       long long received_ms)
{
    json_t *head = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i}", "op_id", ev->op_id, "sub_id", ev->sub_id,
                             "action", ev->action, "offer_id", ev->offer_id, "request_id", request_id,
                             "received_at", (json_int_t)received_ms, "attempts", 0);
    char *head_text = head ? json_dumps(head, JSON_COMPACT) : NULL;
    json_decref(head);
    size_t head_len = head_text ? strlen(head_text) : 0;
    char *entry = head_len ? malloc(head_len + len + 16) : NULL;
    if (!entry) {
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
    free(head_text);
    ev->entry = entry;
    ev->entry_len = n;
    return 0;
}

int webhook_event_from_body(const char *body, size_t len, const char *request_id, long long received_ms,
                            struct webhook_event *out, const char **why)
{
    memset(out, 0, sizeof *out);
    *why = NULL;
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
    json_decref(payload);
    if (missing) {
        *why = "id, subscriptionId and action are required";
        return SAASD_ENOTFOUND;
    }
    out->action = canonical_action(out->action_text);
    if (!out->action)
        return 0;
    int rc = build_entry(out, body, len, request_id, received_ms);
    if (rc)
        return rc;
    /* The entry nests the body one level deeper: a body at the parser's depth limit parses
     * alone but not as an entry, and would be acknowledged yet never acted on. */
    json_t *back = webhook_entry_load(out->entry, out->entry_len);
    if (!back) {
        webhook_event_clear(out);
        *why = "body nests too deeply to be stored";
        return SAASD_EINVAL;
    }
    json_decref(back);
    return 0;
}
