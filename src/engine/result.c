/* struct rule_result: names of the enums, release, and the audit record. */
#include "core/err.h"
#include "engine/engine.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const handler_names[RULE_HANDLER_COUNT] = {
    "provision", "change_plan", "change_quantity", "suspend", "reinstate", "unsubscribe", "renew", "usage",
    "timer",
};

static const char *const outcome_names[RULE_OUTCOME_COUNT] = {
    "ok", "default", "error", "cpu_limit", "memory_limit", "invalid_result", "bad_input",
};

const char *rule_handler_name(enum rule_handler h)
{
    return (unsigned)h < RULE_HANDLER_COUNT ? handler_names[h] : "unknown";
}

const char *rule_outcome_name(enum rule_outcome o)
{
    return (unsigned)o < RULE_OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

const char *rule_action_name(enum rule_action a)
{
    switch (a) {
    case RULE_ACTION_ACTIVATE: return "activate";
    case RULE_ACTION_PENDING:  return "pending";
    case RULE_ACTION_REJECT:   return "reject";
    default:                   return "none";
    }
}

enum rule_handler rule_handler_from_name(const char *name)
{
    for (int i = 0; name && i < RULE_HANDLER_COUNT; i++)
        if (!strcmp(name, handler_names[i]))
            return (enum rule_handler)i;
    return RULE_HANDLER_COUNT;
}

void rule_result_free(struct rule_result *r)
{
    if (!r)
        return;
    free(r->message);
    free(r->reason);
    free(r->redirect);
    free(r->offer_id);
    free(r->rule_offer);
    free(r->file);
    free(r->error);
    free(r->effects);
    free(r->reads);
    free(r->http);
    free(r->http_refused);
    memset(r, 0, sizeof *r);
}

static int set_str(json_t *o, const char *key, const char *v)
{
    return json_object_set_new(o, key, v ? json_string(v) : json_null());
}

int rule_result_audit_json(const struct rule_result *r, char **out)
{
    *out = NULL;
    json_t *o = json_object();
    if (!o)
        return SAASD_ENOMEM;
    int bad = 0;
    bad |= set_str(o, "offer", r->offer_id);
    bad |= set_str(o, "rule_offer", r->rule_offer);
    bad |= set_str(o, "handler", rule_handler_name(r->handler));
    bad |= set_str(o, "outcome", rule_outcome_name(r->outcome));
    bad |= set_str(o, "file", r->file);
    bad |= set_str(o, "sha256", r->sha256[0] ? r->sha256 : NULL);
    bad |= json_object_set_new(o, "generation", json_integer((json_int_t)r->generation));
    bad |= set_str(o, "action", r->action ? rule_action_name(r->action) : NULL);
    bad |= json_object_set_new(o, "accept", json_boolean(r->accept));
    bad |= set_str(o, "message", r->message);
    bad |= set_str(o, "reason", r->reason);
    bad |= set_str(o, "redirect", r->redirect);
    if (r->has_bill)
        bad |= json_object_set_new(o, "bill", json_real(r->bill));
    bad |= set_str(o, "error", r->error);
    if (r->effects)
        bad |= json_object_set_new(o, "effects", json_loads(r->effects, 0, NULL));
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!s)
        return SAASD_ENOMEM;
    *out = s;
    return 0;
}

json_t *rule_result_decision(const struct rule_result *r)
{
    int failed = r->outcome != RULE_OK && r->outcome != RULE_DEFAULT;
    json_t *o = json_pack("{s:b}", "failed", failed);
    if (!o || failed)
        return o;
    if (r->handler == RULE_PROVISION)
        json_object_set_new(o, "action", json_string(rule_action_name(r->action)));
    else
        json_object_set_new(o, "accept", json_boolean(r->accept));
    if (r->message)
        json_object_set_new(o, "message", json_string(r->message));
    if (r->reason)
        json_object_set_new(o, "reason", json_string(r->reason));
    if (r->redirect)
        json_object_set_new(o, "redirect", json_string(r->redirect));
    if (r->has_bill)
        json_object_set_new(o, "bill", json_real(r->bill));
    json_t *fx = r->effects ? json_loads(r->effects, 0, NULL) : NULL;
    json_object_set_new(o, "effects", fx ? fx : json_array());
    return o;
}
