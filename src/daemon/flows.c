/* Fulfillment flows: the local record of a subscription, provisioning (landing page, operator
 * activation) and publisher-initiated changes. Webhook events are in flows_event.c; what each
 * marketplace action does is the table in lifecycle.c. */
#include "daemon/flows.h"
#include "daemon/daemon.h"
#include "daemon/decide.h"
#include "daemon/flows_internal.h"

#include "core/config.h"
#include "core/err.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp_client.h"
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* After Activate, how long saasd reads the subscription back waiting for Subscribed. Short: the
 * customer waits on the landing page meanwhile; later changes arrive by webhook or reconciliation. */
#define ACTIVATION_READBACK_MS 3000
#define ACTIVATION_READBACK_STEP_MS 250

json_t *flows_audit_entry(const char *op_id, const char *action, const char *decision, const char *detail,
                          const struct decision *dec)
{
    json_t *a = json_pack("{s:s, s:s, s:s, s:s}", "op_id", op_id ? op_id : "", "action", action,
                          "decision", decision, "detail", detail ? detail : "");
    if (a && dec && dec->rule_sha256[0]) {
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
    struct tm tm = {0};
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
        return 0;
    return (int64_t)timegm(&tm) * 1000;
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
    struct mp_result mr = {0};
    if (mp_get_subscription(d->mp, sub_id, &mr) != 0) {
        mp_result_clear(&mr);
        return NULL;
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

/* ------------------------------------------------------------------------------------------ */
/* Provisioning (landing page, operator)                                                        */

static int activate_at_microsoft(struct daemon *d, const char *sub_id, json_t *rec, char *err, size_t errsize)
{
    const char *plan = json_string_value(json_object_get(rec, "planId"));
    json_t *qj = json_object_get(rec, "quantity");
    long long quantity = json_is_integer(qj) ? json_integer_value(qj) : -1;
    struct mp_result mr = {0};
    /* The client confirms a retried Activate's 400 with GET (§3.5). */
    int rc = mp_activate(d->mp, sub_id, plan ? plan : "", quantity, &mr);
    if (rc)
        snprintf(err, errsize, "activate failed: %s (HTTP %ld) %s", saasd_strerror(rc), mr.status, mr.message);
    mp_result_clear(&mr);
    return rc;
}

/* A 200 from Activate means "received": read the subscription back until Microsoft shows it
 * Subscribed (bounded), and keep what Microsoft says (status, term dates) in rec. Returns 1 when
 * Microsoft shows Subscribed. */
static int read_back_activation(struct daemon *d, const char *sub_id, json_t *rec)
{
    int waited = 0, subscribed = 0;
    for (;;) {
        json_t *fresh = flows_get_subscription(d, sub_id);
        if (fresh) {
            flow_record_refresh(rec, fresh);
            subscribed = jl_string_is(fresh, "saasSubscriptionStatus", "Subscribed");
            json_decref(fresh);
        }
        if (subscribed || waited >= ACTIVATION_READBACK_MS || d->stopping)
            break;
        usleep(ACTIVATION_READBACK_STEP_MS * 1000);
        waited += ACTIVATION_READBACK_STEP_MS;
    }
    json_object_set_new(rec, "activation_confirmed", json_boolean(subscribed));
    return subscribed;
}

void flows_set_provision(json_t *rec, const char *decision, const struct decision *dec)
{
    json_t *p = json_pack("{s:s, s:I}", "decision", decision, "at_ms", (json_int_t)now_ms());
    if (dec) {
        if (dec->message[0])
            json_object_set_new(p, "message", json_string(dec->message));
        if (dec->redirect[0])
            json_object_set_new(p, "redirect", json_string(dec->redirect));
        json_object_set_new(p, "rule_sha256", json_string(dec->rule_sha256));
    }
    json_object_set_new(rec, "provision", p);
}

int flow_provision(struct daemon *d, const char *sub_id, json_t *snapshot, const char *request_id,
                   struct flow_outcome *out)
{
    memset(out, 0, sizeof *out);
    json_t *rec = NULL;
    struct store_batch *b = NULL;
    int rc = record_get_sub(d, sub_id, &rec);
    if (rc == 0 && json_object_get(rec, "provision")) {
        out->decision = "repeat"; /* decided before: never run provision or Activate twice */
        out->ms_subscribed = jl_string_is(rec, "ms_status", "Subscribed");
        json_decref(rec);
        return 0;
    }
    if (rc == SAASD_ENOTFOUND) {
        rec = flows_record_new(sub_id, snapshot);
        rc = 0;
    }
    if (rc)
        return rc;
    flow_record_refresh(rec, snapshot);
    const char *offer = flows_offer_of(rec, NULL);
    const char *status = json_string_value(json_object_get(rec, "ms_status"));
    if ((rc = store_batch_new(&b)) != 0)
        goto done;

    if (status && (!strcmp(status, "Subscribed") || !strcmp(status, "Suspended"))) {
        /* "Manage account" on a live subscription also lands here (§3.3). */
        flows_set_provision(rec, "activated", NULL);
        out->decision = "already_active";
        out->ms_subscribed = !strcmp(status, "Subscribed");
        rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
        if (!rc)
            rc = flows_add_audit(b, sub_id, flows_audit_entry(NULL, "Provision", "already_active", "landing on a live subscription", NULL));
        if (!rc)
            rc = store_commit(d->store, b);
        goto done;
    }
    if (!status || strcmp(status, "PendingFulfillmentStart") != 0) {
        snprintf(out->title, sizeof out->title, "This subscription cannot be set up");
        snprintf(out->message, sizeof out->message, "Microsoft reports this subscription as %s.", status ? status : "unknown");
        rc = SAASD_ECONFLICT;
        goto done;
    }

    struct decision dec;
    rc = decide(d, offer, "provision", json_object_get(rec, "subscription"), NULL, b, &dec);
    if (rc) {
        log_error("landing", "provision rule failed; nothing decided", "request_id", request_id, "sub_id", sub_id,
                  "offer_id", offer, "error", dec.error);
        goto done; /* a reload runs the rule again */
    }
    out->ran_rule = 1;
    char err[512] = "";
    if (!strcmp(dec.verdict, "activate")) {
        rc = activate_at_microsoft(d, sub_id, rec, err, sizeof err);
        if (rc) {
            log_error("landing", "activation failed; will be retried on reload", "request_id", request_id,
                      "sub_id", sub_id, "error", err);
            goto done;
        }
        out->ms_subscribed = read_back_activation(d, sub_id, rec);
        flows_set_provision(rec, "activated", &dec);
        out->decision = "activated";
    } else if (!strcmp(dec.verdict, "pending")) {
        flows_set_provision(rec, "pending", &dec);
        out->decision = "pending";
    } else {
        flows_set_provision(rec, "rejected", &dec);
        out->decision = "rejected";
    }
    rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
    if (!rc)
        rc = flows_add_audit(b, sub_id, flows_audit_entry(NULL, "Provision", out->decision, dec.message, &dec));
    if (!rc)
        rc = store_commit(d->store, b);
    log_info("landing", "provision decided", "request_id", request_id, "sub_id", sub_id, "offer_id", offer,
             "decision", out->decision, "rule_sha256", dec.rule_sha256, "microsoft_shows_subscribed",
             out->ms_subscribed ? "yes" : "no");
done:
    store_batch_free(b);
    json_decref(rec);
    return rc;
}

int flow_activate_pending(struct daemon *d, const char *sub_id, struct flow_outcome *out)
{
    memset(out, 0, sizeof *out);
    json_t *rec = NULL;
    struct store_batch *b = NULL;
    int rc = record_get_sub(d, sub_id, &rec);
    if (rc)
        return rc;
    const char *decision = json_string_value(json_object_get(json_object_get(rec, "provision"), "decision"));
    if (!decision || strcmp(decision, "pending") != 0) {
        snprintf(out->message, sizeof out->message, "subscription is not pending (decision: %s)", decision ? decision : "none");
        json_decref(rec);
        return SAASD_ECONFLICT;
    }
    char err[512] = "";
    rc = activate_at_microsoft(d, sub_id, rec, err, sizeof err);
    if (rc) {
        snprintf(out->message, sizeof out->message, "%s", err);
        json_decref(rec);
        return rc;
    }
    out->ms_subscribed = read_back_activation(d, sub_id, rec);
    json_object_set_new(json_object_get(rec, "provision"), "decision", json_string("activated"));
    if ((rc = store_batch_new(&b)) == 0) {
        rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
        if (!rc)
            rc = flows_add_audit(b, sub_id, flows_audit_entry(NULL, "Provision", "activated", "activated by an operator", NULL));
        if (!rc)
            rc = store_commit(d->store, b);
    }
    out->decision = "activated";
    store_batch_free(b);
    json_decref(rec);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Publisher-initiated changes (admin)                                                          */

static int start_publisher_change(struct daemon *d, const char *sub_id, const char *kind, const char *value,
                                  struct mp_result *mr)
{
    if (!strcmp(kind, "plan"))
        return mp_change_plan(d->mp, sub_id, value, mr);
    if (!strcmp(kind, "quantity"))
        return mp_change_quantity(d->mp, sub_id, strtoll(value, NULL, 10), mr);
    if (!strcmp(kind, "cancel"))
        return mp_delete_subscription(d->mp, sub_id, mr);
    return SAASD_EINVAL;
}

/* A succeeded publisher operation, applied locally at once as "accepted, not shown at Microsoft
 * yet", and queued as an event so the table's effects (the unsubscribe handler after a cancel)
 * run exactly once whether or not Microsoft sends a webhook for it. */
static int apply_publisher_change(struct daemon *d, const char *sub_id, const char *kind, json_t *op,
                                  const char *outcome)
{
    json_t *rec = NULL, *fresh = flows_get_subscription(d, sub_id);
    struct store_batch *b = NULL;
    int rc = record_get_sub(d, sub_id, &rec);
    if (rc == SAASD_ENOTFOUND && fresh) {
        rec = flows_record_new(sub_id, fresh);
        rc = 0;
    }
    if (rc)
        goto done;
    const char *op_id = json_string_value(json_object_get(op, "id"));
    if (!strcmp(outcome, "succeeded")) {
        if (!strcmp(kind, "plan") && json_is_string(json_object_get(op, "planId")))
            flows_mark_pending_change(rec, op_id, "planId", json_object_get(op, "planId"));
        else if (!strcmp(kind, "quantity") && json_is_integer(json_object_get(op, "quantity")))
            flows_mark_pending_change(rec, op_id, "quantity", json_object_get(op, "quantity"));
        else if (!strcmp(kind, "cancel")) {
            json_t *st = json_string("Unsubscribed");
            flows_mark_pending_change(rec, op_id, "status", st);
            json_decref(st);
        }
    }
    flow_record_refresh(rec, fresh);
    if ((rc = store_batch_new(&b)) != 0)
        goto done;
    rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
    if (!rc)
        rc = flows_add_audit(b, sub_id, flows_audit_entry(op_id, kind, outcome, "publisher-initiated by an operator", NULL));
    if (!rc && !strcmp(outcome, "succeeded") && op_id)
        rc = flows_enqueue_own_operation(b, sub_id, flows_offer_of(rec, NULL), op);
    if (!rc)
        rc = store_commit(d->store, b);
    if (!rc)
        daemon_wake(d);
done:
    store_batch_free(b);
    json_decref(rec);
    json_decref(fresh);
    return rc;
}

int flow_publisher_change(struct daemon *d, const char *sub_id, const char *kind, const char *value,
                          json_t **operation_out, struct flow_outcome *out)
{
    memset(out, 0, sizeof *out);
    struct mp_result mr = {0};
    int rc = start_publisher_change(d, sub_id, kind, value, &mr);
    if (rc == SAASD_EINVAL && !mr.status)
        return rc;
    if (rc) {
        snprintf(out->message, sizeof out->message, "Microsoft refused: HTTP %ld %s", mr.status, mr.message);
        mp_result_clear(&mr);
        return rc;
    }
    char location[1024];
    snprintf(location, sizeof location, "%s", mr.operation_location);
    mp_result_clear(&mr);
    json_t *op = NULL;
    if (location[0]) {
        rc = mp_wait_operation(d->mp, location, 0, &mr);
        op = take_body(&mr);
        if (rc) {
            json_decref(op);
            snprintf(out->message, sizeof out->message, "operation did not reach a final status: %s", saasd_strerror(rc));
            return rc;
        }
    }
    char status[32] = "Succeeded"; /* no operation: the change was already applied */
    if (op)
        jl_string(op, "status", status, sizeof status);
    out->decision = !strcasecmp(status, "Succeeded") ? "succeeded" : !strcasecmp(status, "Conflict") ? "conflict" : "failed";
    snprintf(out->message, sizeof out->message, "operation %s", status);

    rc = apply_publisher_change(d, sub_id, kind, op, out->decision); /* the caller holds the lock */
    if (rc)
        log_warn("admin", "publisher change not recorded locally; reconciliation will repair it", "sub_id", sub_id,
                 "error", saasd_strerror(rc));
    if (operation_out)
        *operation_out = op;
    else
        json_decref(op);
    return 0;
}
