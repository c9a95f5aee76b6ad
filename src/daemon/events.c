/* The event catalogue and the writing of events (see events.h). */
#include "daemon/events.h"
#include "daemon/html.h"

#include "core/crypto.h"
#include "core/err.h"
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The catalogue: one row per event type. The README's "Events and notifications" table is this
 * table (tests/test_events.c compares them). */
static const struct event_type catalogue[] = {
    {"subscription.activated", "a provision rule activated a purchase (landing page or `Subscribe`), or an operator activated a pending one",
     "{{offer}}: subscription {{subscription}} activated ({{data.planId}}, {{data.quantity}} seats)",
     "{\"action\":\"Provision\",\"decision\":\"activated\",\"planId\":\"team\",\"quantity\":5,\"status\":\"Subscribed\",\"detail\":\"5 seats are ready.\",\"rule_file\":\"rules/seats-pro.lua\",\"rule_sha256\":\"9f2c…\"}"},
    {"subscription.pending_approval", "a provision rule answered `pending`: an operator must approve (`POST /admin/subscriptions/{id}/activate`)",
     "{{offer}}: subscription {{subscription}} waits for approval",
     "{\"action\":\"Provision\",\"decision\":\"pending\",\"planId\":\"team\",\"quantity\":5,\"status\":\"PendingFulfillmentStart\",\"detail\":\"we will call you\"}"},
    {"subscription.rejected", "a provision rule refused a purchase (the customer sees its message; a `Subscribe` refused is cancelled)",
     "{{offer}}: purchase {{subscription}} refused: {{data.detail}}",
     "{\"action\":\"Provision\",\"decision\":\"rejected\",\"planId\":\"team\",\"quantity\":0,\"detail\":\"at least one seat\"}"},
    {"subscription.plan_changed", "a `ChangePlan` accepted by the rule and succeeded at Microsoft",
     "{{offer}}: subscription {{subscription}} changed plan to {{data.planId}}",
     "{\"action\":\"ChangePlan\",\"decision\":\"accepted\",\"op_id\":\"4d1c…\",\"planId\":\"business\",\"quantity\":5,\"status\":\"Subscribed\"}"},
    {"subscription.quantity_changed", "a `ChangeQuantity` accepted by the rule and succeeded at Microsoft",
     "{{offer}}: subscription {{subscription}} now has {{data.quantity}} seats",
     "{\"action\":\"ChangeQuantity\",\"decision\":\"accepted\",\"op_id\":\"77aa…\",\"planId\":\"team\",\"quantity\":8,\"status\":\"Subscribed\"}"},
    {"subscription.change_refused", "the rule refused a `ChangePlan` or `ChangeQuantity` (Microsoft was told Failure)",
     "{{offer}}: subscription {{subscription}}: {{data.action}} refused: {{data.detail}}",
     "{\"action\":\"ChangeQuantity\",\"decision\":\"refused\",\"op_id\":\"77ab…\",\"detail\":\"6 seats are in use\"}"},
    {"subscription.suspended", "Microsoft suspended the subscription (payment problem) and the `suspend` handler ran",
     "{{offer}}: subscription {{subscription}} suspended",
     "{\"action\":\"Suspend\",\"decision\":\"done\",\"op_id\":\"a0b1…\",\"status\":\"Suspended\"}"},
    {"subscription.reinstated", "a `Reinstate` accepted by the rule",
     "{{offer}}: subscription {{subscription}} reinstated",
     "{\"action\":\"Reinstate\",\"decision\":\"accepted\",\"op_id\":\"a0b2…\",\"status\":\"Subscribed\"}"},
    {"subscription.unsubscribed", "the subscription was cancelled (by the customer, an operator or after a refusal) and the `unsubscribe` handler ran",
     "{{offer}}: subscription {{subscription}} cancelled",
     "{\"action\":\"Unsubscribe\",\"decision\":\"done\",\"op_id\":\"a0b3…\",\"status\":\"Unsubscribed\"}"},
    {"subscription.renewed", "Microsoft renewed the term and the `renew` handler ran",
     "{{offer}}: subscription {{subscription}} renewed",
     "{\"action\":\"Renew\",\"decision\":\"done\",\"op_id\":\"a0b4…\",\"status\":\"Subscribed\"}"},
    {"usage.billed", "Microsoft accepted an hour of metered usage",
     "{{offer}}: {{data.quantity}} {{data.dimension}} billed for {{subscription}} ({{data.hour}})",
     "{\"dimension\":\"api-calls\",\"hour\":\"2026-11-30T08:00:00Z\",\"quantity\":1200,\"planId\":\"pro\",\"usageEventId\":\"0f3e…\"}"},
    {"usage.failed", "Microsoft refused an hour of usage for good (`failed`: sending again cannot help)",
     "{{offer}}: usage of {{subscription}} refused by Microsoft: {{data.error}}",
     "{\"dimension\":\"api-calls\",\"hour\":\"2026-11-30T08:00:00Z\",\"quantity\":1200,\"error\":\"InvalidDimension\"}"},
    {"drift.found", "reconciliation found saasd's record different from Microsoft's and repaired it",
     "{{offer}}: subscription {{subscription}} differed from Microsoft ({{data.kinds}}); repaired",
     "{\"kinds\":\"status\",\"status\":\"Suspended\",\"planId\":\"team\",\"quantity\":5}"},
    {"outbox.stuck", "an event for a subscription failed its fifth attempt and keeps being retried (`GET /admin/outbox`)",
     "{{offer}}: {{data.action}} for {{subscription}} is stuck: {{data.error}}",
     "{\"seq\":42,\"op_id\":\"c0de…\",\"action\":\"Unsubscribe\",\"attempts\":5,\"error\":\"rule failed: ISV API down\"}"},
    {"activation.deadline_near", "a purchase is still not activated a week, then a day, before Microsoft cancels it (30 days)",
     "{{offer}}: purchase {{subscription}} is cancelled by Microsoft in {{data.days_left}} days unless activated",
     "{\"within\":\"week\",\"days_left\":\"6.5\",\"decision\":\"pending\"}"},
};

/* Which flow decisions are events: (audit action, decision) -> type. */
static const struct {
    const char *action, *decision, *type;
} decisions[] = {
    {"Provision", "activated", "subscription.activated"},
    {"Provision", "pending", "subscription.pending_approval"},
    {"Provision", "rejected", "subscription.rejected"},
    {"Subscribe", "accepted", "subscription.activated"},
    {"Subscribe", "pending", "subscription.pending_approval"},
    {"Subscribe", "refused", "subscription.rejected"},
    {"Subscribe", "cancelled", "subscription.rejected"},
    {"ChangePlan", "accepted", "subscription.plan_changed"},
    {"ChangePlan", "refused", "subscription.change_refused"},
    {"ChangeQuantity", "accepted", "subscription.quantity_changed"},
    {"ChangeQuantity", "refused", "subscription.change_refused"},
    {"Suspend", "done", "subscription.suspended"},
    {"Reinstate", "accepted", "subscription.reinstated"},
    {"Unsubscribe", "done", "subscription.unsubscribed"},
    {"Renew", "done", "subscription.renewed"},
};

const struct event_type *events_catalogue(size_t *n)
{
    *n = sizeof catalogue / sizeof catalogue[0];
    return catalogue;
}

const struct event_type *events_find(const char *type)
{
    for (size_t i = 0; type && i < sizeof catalogue / sizeof catalogue[0]; i++)
        if (!strcmp(catalogue[i].type, type))
            return &catalogue[i];
    return NULL;
}

static void iso_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

int events_add(struct store_batch *b, const char *type, const char *offer, const char *sub_id, json_t *data)
{
    char id[CRYPTO_UUID_LEN], when[32];
    if (crypto_id(id)) { /* unique, for receivers' deduplication; nothing secret */
        json_decref(data);
        return SAASD_EINTERNAL;
    }
    iso_now(when);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o}", "id", id, "type", type, "time", when, "offer", offer,
                           "subscription", sub_id, "data", data ? data : json_object());
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!text)
        return SAASD_ENOMEM;
    int rc = store_batch_append(b, STORE_EVENTS, "", 0, text, strlen(text));
    free(text);
    return rc;
}

int events_for_decision(struct store_batch *b, const char *action, const char *decision, const char *sub_id,
                        json_t *rec, json_t *audit)
{
    const char *type = NULL;
    for (size_t i = 0; !type && action && decision && i < sizeof decisions / sizeof decisions[0]; i++)
        if (!strcmp(decisions[i].action, action) && !strcmp(decisions[i].decision, decision))
            type = decisions[i].type;
    if (!type)
        return 0;
    json_t *data = json_pack("{s:s, s:s}", "action", action, "decision", decision);
    static const char *const from_rec[] = {"planId", "quantity", "status"};
    static const char *const from_audit[] = {"op_id", "detail", "source", "rule_file", "rule_sha256"};
    for (size_t i = 0; i < sizeof from_rec / sizeof from_rec[0]; i++)
        if (json_object_get(rec, from_rec[i]))
            json_object_set(data, from_rec[i], json_object_get(rec, from_rec[i]));
    for (size_t i = 0; i < sizeof from_audit / sizeof from_audit[0]; i++) {
        const char *v = json_string_value(json_object_get(audit, from_audit[i]));
        if (v && *v)
            json_object_set_new(data, from_audit[i], json_string(v));
    }
    return events_add(b, type, json_string_value(json_object_get(rec, "offerId")), sub_id, data);
}

/* The text of one placeholder's value (malloc'd). */
static char *value_of(json_t *event, const char *name)
{
    json_t *v;
    if (!strcmp(name, "summary")) {
        const struct event_type *t = events_find(json_string_value(json_object_get(event, "type")));
        return events_render(t ? t->summary : "{{offer}}: {{type}} for subscription {{subscription}}", event, 0);
    }
    if (!strcmp(name, "data"))
        v = json_object_get(event, "data");
    else if (!strncmp(name, "data.", 5))
        v = json_object_get(json_object_get(event, "data"), name + 5);
    else
        v = json_object_get(event, name);
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (!v || json_is_null(v))
        return strdup("");
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

char *events_render(const char *text, json_t *event, int html)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    for (const char *p = text; *p;) {
        const char *open = strstr(p, "{{"), *close = open ? strstr(open + 2, "}}") : NULL;
        if (!close) {
            fputs(p, f);
            break;
        }
        if (close - open - 2 >= 64) { /* too long to be a name: kept as text */
            fwrite(p, 1, (size_t)(close + 2 - p), f);
            p = close + 2;
            continue;
        }
        fwrite(p, 1, (size_t)(open - p), f);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(close - open - 2), open + 2);
        char *val = value_of(event, name);
        if (val && html)
            html_put(f, val);
        else if (val)
            fputs(val, f);
        free(val);
        p = close + 2;
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
