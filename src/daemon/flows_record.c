/* The local record of a subscription, as the flows keep it: Microsoft's subscription object as
 * read back, a change Microsoft accepted but does not show yet, the activation deadline; and
 * the audit entries and own-operation events the flows write with it. */
#include "daemon/daemon.h"
#include "daemon/decide.h"
#include "daemon/events.h"
#include "daemon/flows.h"
#include "daemon/flows_internal.h"

#include "core/err.h"
#include "core/json_lenient.h"
#include "core/mp_client.h"
#include "core/store.h"
#include "core/utc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *flows_audit_entry(const char *op_id, const char *action, const char *decision, const char *detail,
                          const struct decision *dec)
{
    json_t *a = json_pack("{s:s, s:s, s:s, s:s}", "op_id", op_id ? op_id : "", "action", action,
                          "decision", decision, "detail", detail ? detail : "");
    if (a && dec && (dec->rule_sha256[0] || dec->rule_file[0])) { /* rule_file alone: no rule ran */
        json_object_set_new(a, "rule_file", json_string(dec->rule_file));
        json_object_set_new(a, "rule_sha256", json_string(dec->rule_sha256));
        json_object_set_new(a, "rule_generation", json_integer(dec->generation));
    }
    return a;
}

int flows_add_audit(struct store_batch *b, const char *sub_id, json_t *entry)
{
    if (!entry)
        return SAASD_ENOMEM;
    int rc = record_audit(b, sub_id, entry);
    json_decref(entry);
    return rc;
}

int flows_add_decision(struct store_batch *b, const char *sub_id, json_t *rec, json_t *entry, const char *event_decision)
{
    if (!entry)
        return SAASD_ENOMEM;
    const char *action = json_string_value(json_object_get(entry, "action"));
    const char *decision = event_decision ? event_decision : json_string_value(json_object_get(entry, "decision"));
    int rc = events_for_decision(b, action, decision, sub_id, rec, entry);
    if (rc) {
        json_decref(entry);
        return rc;
    }
    return flows_add_audit(b, sub_id, entry);
}

/* ------------------------------------------------------------------------------------------ */
/* Local subscription records                                                                  */

json_t *flows_record_new(const char *sub_id, json_t *snapshot)
{
    char buf[256];
    json_t *rec = json_object();
    json_object_set_new(rec, "id", json_string(sub_id));
    if (!jl_string(snapshot, "offerId", buf, sizeof buf))
        json_object_set_new(rec, "offerId", json_string(buf));
    return rec;
}

static int64_t iso_ms(const char *s)
{
    int64_t secs = 0;
    return utc_parse(s, &secs) ? secs * 1000 : 0;
}

/* Microsoft cancels a purchase left in PendingFulfillmentStart after 30 days (from its creation,
 * or from when saasd first saw it when Microsoft does not say). */
static void track_deadline(json_t *rec, json_t *snapshot, const char *status)
{
    if (!status || strcmp(status, "PendingFulfillmentStart") != 0) {
        json_object_del(rec, "activation_deadline_ms");
        json_object_del(rec, "activation_warned");
        return;
    }
    if (json_object_get(rec, "activation_deadline_ms"))
        return;
    int64_t from = iso_ms(json_string_value(json_object_get(snapshot, "created")));
    if (!from)
        from = now_ms();
    json_object_set_new(rec, "activation_deadline_ms",
                        json_integer(from + (int64_t)FLOW_ACTIVATION_DAYS * 86400 * 1000));
}

void flows_mark_pending_change(json_t *rec, const char *op_id, const char *field, json_t *target)
{
    json_object_set(rec, field, target);
    json_object_set_new(rec, "pending_change", json_pack("{s:s, s:s, s:O, s:I}", "op_id", op_id ? op_id : "",
                                                         "field", field, "value", target, "at_ms",
                                                         (json_int_t)now_ms()));
}

void flow_record_refresh(json_t *rec, json_t *snapshot)
{
    char buf[256];
    long long q;
    if (!snapshot)
        return;
    if (!jl_string(snapshot, "offerId", buf, sizeof buf))
        json_object_set_new(rec, "offerId", json_string(buf));
    /* Microsoft's view as is: a field Microsoft dropped (seats after Unsubscribe or on a flat
     * plan) is dropped here too. */
    if (!jl_string(snapshot, "planId", buf, sizeof buf))
        json_object_set_new(rec, "planId", json_string(buf));
    else
        json_object_del(rec, "planId");
    if (!jl_int(snapshot, "quantity", &q))
        json_object_set_new(rec, "quantity", json_integer(q));
    else
        json_object_del(rec, "quantity");
    const char *status = NULL;
    if (!jl_string(snapshot, "saasSubscriptionStatus", buf, sizeof buf)) {
        json_object_set_new(rec, "ms_status", json_string(buf));
        json_object_set_new(rec, "status", json_string(buf));
        status = json_string_value(json_object_get(rec, "status"));
    }
    track_deadline(rec, snapshot, status);
    /* A change accepted at Microsoft but not shown there yet stays until Microsoft shows it. */
    json_t *pc = json_object_get(rec, "pending_change");
    if (pc) {
        const char *field = json_string_value(json_object_get(pc, "field"));
        json_t *want = json_object_get(pc, "value");
        json_t *ms = field ? json_object_get(rec, field) : NULL;
        int overtaken = field && strcmp(field, "status") && status && strcmp(status, "Subscribed");
        if (!field || (ms && json_equal(ms, want)) || overtaken)
            json_object_del(rec, "pending_change"); /* confirmed, or overtaken by a status change */
        else
            json_object_set(rec, field, want);
    }
    json_object_set(rec, "subscription", snapshot);
    json_object_set_new(rec, "ms_seen_ms", json_integer(now_ms()));
}

const char *flows_offer_of(json_t *rec, const char *fallback)
{
    const char *o = json_string_value(json_object_get(rec, "offerId"));
    return o && *o ? o : fallback && *fallback ? fallback : "default";
}

json_t *flows_get_subscription(struct daemon *d, const char *sub_id)
{
    return flows_get_subscription_text(d, sub_id, NULL);
}

json_t *flows_get_subscription_text(struct daemon *d, const char *sub_id, char **text)
{
    struct mp_result mr = {.want_text = text != NULL};
    if (mp_get_subscription(d->mp, sub_id, &mr) != 0) {
        mp_result_clear(&mr);
        return NULL;
    }
    if (text) {
        *text = mr.text ? mr.text : json_dumps(mr.body, JSON_COMPACT);
        mr.text = NULL;
    }
    return take_body(&mr);
}

int flows_enqueue_own_operation(struct store_batch *b, const char *sub_id, const char *offer, json_t *op)
{
    const char *op_id = json_string_value(json_object_get(op, "id"));
    const char *action = json_string_value(json_object_get(op, "action"));
    if (!op_id || !action)
        return SAASD_EINVAL;
    /* The header order is the one webhook.c writes: inbox scans read it without parsing. */
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:O}", "op_id", op_id, "sub_id", sub_id, "action",
                          action, "offer_id", offer ? offer : "", "request_id", "publisher", "received_at",
                          (json_int_t)now_ms(), "attempts", 0, "payload", op);
    char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
    int rc = text ? store_batch_append(b, STORE_INBOX, "", 0, text, strlen(text)) : SAASD_ENOMEM;
    free(text);
    json_decref(e);
    return rc;
}
