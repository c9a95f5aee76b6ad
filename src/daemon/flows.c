/* Fulfillment flows: provisioning (landing page, operator activation) and publisher-initiated
 * changes. Webhook events are in flows_event.c, the local record in flows_record.c; what each
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

/* ------------------------------------------------------------------------------------------ */
/* Provisioning (landing page, operator)                                                        */

/* max_wait_ms: how long the call may wait between tries (0 = the retry policy alone); the
 * landing page passes landing.max_wait_ms, a browser is waiting. */
static int activate_at_microsoft(struct daemon *d, const char *sub_id, json_t *rec, long max_wait_ms, char *err,
                                 size_t errsize)
{
    const char *plan = json_string_value(json_object_get(rec, "planId"));
    json_t *qj = json_object_get(rec, "quantity");
    long long quantity = json_is_integer(qj) ? json_integer_value(qj) : -1;
    struct mp_result mr = {.max_wait_ms = max_wait_ms};
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

/* Who pressed Confirm on the landing page (their Entra ids and e-mail), kept in the Provision
 * audit entry so "who bought and activated this" has an answer in saasd's own records. The
 * buyer's answers to the offer's fields are the rule's to keep (ctx.store). */
static json_t *confirmed_by(json_t *entry, json_t *landing)
{
    json_t *buyer = json_object_get(landing, "buyer");
    if (entry && buyer)
        json_object_set_new(entry, "confirmed_by",
                            json_pack("{s:O?,s:O?,s:O?}", "oid", json_object_get(buyer, "oid"), "tid",
                                      json_object_get(buyer, "tid"), "email", json_object_get(buyer, "email")));
    return entry;
}

/* The provision rule's verdicts (lua/saas/contract.lua): the decision each one records, and
 * whether it activates at Microsoft first. The last row is also any other verdict's. */
static const struct provision_verdict {
    const char *verdict, *decision;
    int activates;
} provision_verdicts[] = {
    {"activate", "activated", 1},
    {"pending", "pending", 0},
    {"reject", "rejected", 0},
};

static const struct provision_verdict *provision_verdict_of(const char *verdict)
{
    size_t i = 0, n = sizeof provision_verdicts / sizeof provision_verdicts[0];
    while (i < n - 1 && strcmp(provision_verdicts[i].verdict, verdict))
        i++;
    return &provision_verdicts[i];
}

int flow_provision(struct daemon *d, const char *sub_id, json_t *snapshot, const char *request_id, json_t *landing,
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
    /* A copy: read_back_activation refreshes rec, which frees the string offerId was in. */
    char offer[128];
    snprintf(offer, sizeof offer, "%s", flows_offer_of(rec, NULL));
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
    rc = decide_provision(d, offer, json_object_get(rec, "subscription"), landing, b, &dec);
    if (rc) {
        log_error("landing", "provision rule failed; nothing decided", "request_id", request_id, "sub_id", sub_id,
                  "offer_id", offer, "error", dec.error);
        goto done; /* a reload runs the rule again */
    }
    out->ran_rule = 1;
    char err[512] = "";
    const struct provision_verdict *pv = provision_verdict_of(dec.verdict);
    if (pv->activates) {
        rc = activate_at_microsoft(d, sub_id, rec, d->cfg->landing_max_wait_ms, err, sizeof err);
        if (rc) {
            log_error("landing", "activation failed; will be retried on reload", "request_id", request_id,
                      "sub_id", sub_id, "error", err);
            goto done;
        }
        out->ms_subscribed = read_back_activation(d, sub_id, rec);
    }
    flows_set_provision(rec, pv->decision, &dec);
    out->decision = pv->decision;
    rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
    if (!rc)
        rc = flows_add_decision(b, sub_id, rec, confirmed_by(flows_audit_entry(NULL, "Provision", out->decision, dec.message, &dec), landing), NULL);
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
    rc = activate_at_microsoft(d, sub_id, rec, 0, err, sizeof err);
    if (rc) {
        snprintf(out->message, sizeof out->message, "%s", err);
        json_decref(rec);
        return rc;
    }
    out->ms_subscribed = read_back_activation(d, sub_id, rec);
    json_object_set_new(json_object_get(rec, "provision"), "decision", json_string("activated"));
    json_object_del(json_object_get(rec, "provision"), "message"); /* the pending text is obsolete now */
    if ((rc = store_batch_new(&b)) == 0) {
        rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
        if (!rc)
            rc = flows_add_decision(b, sub_id, rec, flows_audit_entry(NULL, "Provision", "activated", "activated by an operator", NULL), NULL);
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

static int start_plan(struct daemon *d, const char *sub_id, const char *value, struct mp_result *mr)
{
    return mp_change_plan(d->mp, sub_id, value, mr);
}

static int start_quantity(struct daemon *d, const char *sub_id, const char *value, struct mp_result *mr)
{
    return mp_change_quantity(d->mp, sub_id, strtoll(value, NULL, 10), mr);
}

static int start_cancel(struct daemon *d, const char *sub_id, const char *value, struct mp_result *mr)
{
    return mp_delete_subscription(d->mp, sub_id, mr);
}

/* Each kind of publisher change: the call that starts it at Microsoft, and the record field it
 * sets once Microsoft's operation succeeded, to the operation's field of the same name when
 * that has op_type, or to the fixed value. */
static const struct publisher_change {
    const char *kind;
    int (*start)(struct daemon *d, const char *sub_id, const char *value, struct mp_result *mr);
    const char *field;
    json_type op_type;
    const char *fixed;
} publisher_changes[] = {
    {"plan", start_plan, "planId", JSON_STRING, NULL},
    {"quantity", start_quantity, "quantity", JSON_INTEGER, NULL},
    {"cancel", start_cancel, "status", JSON_NULL, "Unsubscribed"},
};

static const struct publisher_change *publisher_change_of(const char *kind)
{
    for (size_t i = 0; i < sizeof publisher_changes / sizeof publisher_changes[0]; i++)
        if (!strcmp(publisher_changes[i].kind, kind))
            return &publisher_changes[i];
    return NULL;
}

/* The change's new value, as a pending change on rec (not shown at Microsoft yet). */
static void mark_publisher_change(json_t *rec, const struct publisher_change *c, const char *op_id, json_t *op)
{
    json_t *target = c->fixed ? json_string(c->fixed) : json_incref(json_object_get(op, c->field));
    if (target && (c->fixed || json_typeof(target) == c->op_type))
        flows_mark_pending_change(rec, op_id, c->field, target);
    json_decref(target);
}

/* A succeeded publisher operation, applied locally at once as "accepted, not shown at Microsoft
 * yet", and queued as an event so the table's effects (the unsubscribe handler after a cancel)
 * run exactly once whether or not Microsoft sends a webhook for it. */
static int apply_publisher_change(struct daemon *d, const char *sub_id, const struct publisher_change *c,
                                  json_t *op, const char *outcome)
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
    if (!strcmp(outcome, "succeeded"))
        mark_publisher_change(rec, c, op_id, op);
    flow_record_refresh(rec, fresh);
    if ((rc = store_batch_new(&b)) != 0)
        goto done;
    rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
    if (!rc)
        rc = flows_add_audit(b, sub_id, flows_audit_entry(op_id, c->kind, outcome, "publisher-initiated by an operator", NULL));
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
    const struct publisher_change *c = publisher_change_of(kind);
    if (!c)
        return SAASD_EINVAL;
    struct mp_result mr = {0};
    int rc = c->start(d, sub_id, value, &mr);
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

    rc = apply_publisher_change(d, sub_id, c, op, out->decision); /* the caller holds the lock */
    if (rc)
        log_warn("admin", "publisher change not recorded locally; reconciliation will repair it", "sub_id", sub_id,
                 "error", saasd_strerror(rc));
    if (operation_out)
        *operation_out = op;
    else
        json_decref(op);
    return 0;
}
