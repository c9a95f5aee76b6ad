/* Fulfillment flows: provisioning, webhook events, publisher-initiated changes.
 * The adapter at the top is the only code here that knows the marketplace client's calling
 * conventions (decide.c is the rule engine's). */
#include "daemon/flows.h"
#include "daemon/daemon.h"
#include "daemon/decide.h"

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

static const char *handler_of(const char *action)
{
    if (!strcmp(action, "ChangePlan")) return "change_plan";
    if (!strcmp(action, "ChangeQuantity")) return "change_quantity";
    if (!strcmp(action, "Reinstate")) return "reinstate";
    if (!strcmp(action, "Suspend")) return "suspend";
    if (!strcmp(action, "Unsubscribe")) return "unsubscribe";
    if (!strcmp(action, "Renew")) return "renew";
    return "provision"; /* Subscribe: an auto-activated purchase is provisioned like a landing */
}

static json_t *audit_entry(const char *op_id, const char *action, const char *decision, const char *detail,
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

static int add_audit(struct store_batch *b, const char *sub_id, json_t *entry)
{
    if (!entry)
        return SAASD_ENOMEM;
    int rc = record_audit(b, sub_id, entry);
    json_decref(entry);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Local subscription records                                                                  */

/* A fresh local record from Microsoft's subscription object. */
static json_t *record_from_snapshot(const char *sub_id, json_t *snapshot)
{
    char buf[256];
    json_t *rec = json_object();
    json_object_set_new(rec, "id", json_string(sub_id));
    if (!jl_string(snapshot, "offerId", buf, sizeof buf))
        json_object_set_new(rec, "offerId", json_string(buf));
    return rec;
}

/* Copy plan, quantity and status from Microsoft's view into the local record. */
static void record_refresh(json_t *rec, json_t *snapshot)
{
    char buf[256];
    long long q;
    if (!snapshot)
        return;
    if (!jl_string(snapshot, "offerId", buf, sizeof buf))
        json_object_set_new(rec, "offerId", json_string(buf));
    if (!jl_string(snapshot, "planId", buf, sizeof buf))
        json_object_set_new(rec, "planId", json_string(buf));
    if (!jl_int(snapshot, "quantity", &q))
        json_object_set_new(rec, "quantity", json_integer(q));
    if (!jl_string(snapshot, "saasSubscriptionStatus", buf, sizeof buf)) {
        json_object_set_new(rec, "ms_status", json_string(buf));
        json_object_set_new(rec, "status", json_string(buf));
    }
    json_object_set(rec, "subscription", snapshot);
    json_object_set_new(rec, "ms_seen_ms", json_integer(now_ms()));
}

static const char *offer_of(json_t *rec, const char *fallback)
{
    const char *o = json_string_value(json_object_get(rec, "offerId"));
    return o && *o ? o : fallback && *fallback ? fallback : "default";
}

/* ------------------------------------------------------------------------------------------ */
/* Provisioning (landing page)                                                                  */

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

static void set_provision(json_t *rec, const char *decision, const struct decision *dec)
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

int flow_provision(struct daemon *d, const char *sub_id, json_t *snapshot, const char *request_id, json_t *landing,
                   struct flow_outcome *out)
{
    memset(out, 0, sizeof *out);
    json_t *rec = NULL;
    struct store_batch *b = NULL;
    int rc = record_get_sub(d, sub_id, &rec);
    if (rc == 0 && json_object_get(rec, "provision")) {
        out->decision = "repeat"; /* decided before: never run provision or Activate twice */
        json_decref(rec);
        return 0;
    }
    if (rc == SAASD_ENOTFOUND) {
        rec = record_from_snapshot(sub_id, snapshot);
        rc = 0;
    }
    if (rc)
        return rc;
    record_refresh(rec, snapshot);
    const char *offer = offer_of(rec, NULL);
    const char *status = json_string_value(json_object_get(rec, "ms_status"));
    if ((rc = store_batch_new(&b)) != 0)
        goto done;

    if (status && (!strcmp(status, "Subscribed") || !strcmp(status, "Suspended"))) {
        /* "Manage account" on a live subscription also lands here (§3.3). */
        set_provision(rec, "activated", NULL);
        out->decision = "already_active";
        rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
        if (!rc)
            rc = add_audit(b, sub_id, audit_entry(NULL, "Provision", "already_active", "landing on a live subscription", NULL));
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
    if (!strcmp(dec.verdict, "activate")) {
        rc = activate_at_microsoft(d, sub_id, rec, d->cfg->landing_max_wait_ms, err, sizeof err);
        if (rc) {
            log_error("landing", "activation failed; will be retried on reload", "request_id", request_id,
                      "sub_id", sub_id, "error", err);
            goto done;
        }
        json_object_set_new(rec, "status", json_string("Subscribed"));
        json_object_set_new(rec, "ms_status", json_string("Subscribed"));
        set_provision(rec, "activated", &dec);
        out->decision = "activated";
    } else if (!strcmp(dec.verdict, "pending")) {
        set_provision(rec, "pending", &dec);
        out->decision = "pending";
    } else {
        set_provision(rec, "rejected", &dec);
        out->decision = "rejected";
    }
    rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
    if (!rc)
        rc = add_audit(b, sub_id, audit_entry(NULL, "Provision", out->decision, dec.message, &dec));
    if (!rc)
        rc = store_commit(d->store, b);
    log_info("landing", "provision decided", "request_id", request_id, "sub_id", sub_id, "offer_id", offer,
             "decision", out->decision, "rule_sha256", dec.rule_sha256);
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
    json_object_set_new(rec, "status", json_string("Subscribed"));
    json_object_set_new(rec, "ms_status", json_string("Subscribed"));
    json_object_set_new(json_object_get(rec, "provision"), "decision", json_string("activated"));
    json_object_del(json_object_get(rec, "provision"), "message"); /* the pending text is obsolete now */
    if ((rc = store_batch_new(&b)) == 0) {
        rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
        if (!rc)
            rc = add_audit(b, sub_id, audit_entry(NULL, "Provision", "activated", "activated by an operator", NULL));
        if (!rc)
            rc = store_commit(d->store, b);
    }
    out->decision = "activated";
    store_batch_free(b);
    json_decref(rec);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Webhook events (inbox)                                                                       */

/* GET operation answering 404 this many times (with the outbox's backoff between: about 3 s in
 * all) means Microsoft really does not know the operation. */
#define UNKNOWN_OPERATION_TRIES 3

static int is_ackable(const char *action)
{
    return !strcmp(action, "ChangePlan") || !strcmp(action, "ChangeQuantity") || !strcmp(action, "Reinstate");
}

static int is_final(const char *status)
{
    return status && (!strcasecmp(status, "Succeeded") || !strcasecmp(status, "Failed") || !strcasecmp(status, "Conflict"));
}

/* The operation's status after our PATCH: what Microsoft says, polling briefly. */
static void final_status_of(struct daemon *d, const char *sub_id, const char *op_id, char *status, size_t size)
{
    struct mp_result mr = {0};
    if (mp_get_operation(d->mp, sub_id, op_id, &mr) == 0)
        snprintf(status, size, "%s", mr.operation_status);
    mp_result_clear(&mr);
}

int flow_process_event(struct daemon *d, json_t *entry, struct store_batch *b, struct flow_outcome *out)
{
    memset(out, 0, sizeof *out);
    const char *op_id = json_string_value(json_object_get(entry, "op_id"));
    const char *sub_id = json_string_value(json_object_get(entry, "sub_id"));
    const char *action = json_string_value(json_object_get(entry, "action"));
    json_t *payload = json_object_get(entry, "payload");
    if (!op_id || !sub_id || !action)
        return SAASD_EINVAL;

    json_t *rec = NULL, *fresh = NULL;
    struct mp_result mr = {0};
    int rc = mp_get_operation(d->mp, sub_id, op_id, &mr);
    long get_status = mr.status;
    json_t *op = take_body(&mr);
    json_t *oprec = json_pack("{s:s, s:s, s:I}", "action", action, "sub_id", sub_id, "done_ms", (json_int_t)now_ms());

    int attempts = (int)json_integer_value(json_object_get(entry, "attempts"));
    if (rc && (get_status == 404 || get_status == 400) && attempts < UNKNOWN_OPERATION_TRIES - 1) {
        /* The bearer was genuine, so give a new operation a moment to become visible. */
        snprintf(out->message, sizeof out->message, "operation not found at Microsoft (HTTP %ld); asking again",
                 get_status);
        rc = SAASD_ERETRY;
        goto fail;
    }
    if (rc && (get_status == 404 || get_status == 400)) {
        /* Microsoft does not know this operation: a stale or made-up call. Record, do nothing. */
        out->decision = "unverified";
        json_object_set_new(oprec, "state", json_string("ignored"));
        rc = add_audit(b, sub_id, audit_entry(op_id, action, "ignored", "operation unknown to Microsoft", NULL));
        goto finish;
    }
    if (rc) {
        snprintf(out->message, sizeof out->message, "GET operation failed: %s (HTTP %ld)", saasd_strerror(rc), get_status);
        rc = SAASD_ERETRY;
        goto fail;
    }
    /* Microsoft's record decides, not the payload (§5.5 step 5, §9.5). */
    char op_action[64] = "", op_sub[128] = "", op_status[32] = "", op_plan[256] = "", pay_plan[256] = "";
    long long op_qty = -1, pay_qty = -1;
    jl_string(op, "action", op_action, sizeof op_action);
    jl_string(op, "subscriptionId", op_sub, sizeof op_sub);
    jl_string(op, "status", op_status, sizeof op_status);
    jl_string(op, "planId", op_plan, sizeof op_plan);
    jl_string(payload, "planId", pay_plan, sizeof pay_plan);
    jl_int(op, "quantity", &op_qty);
    jl_int(payload, "quantity", &pay_qty);
    const char *mismatch = strcasecmp(op_action, action) ? "action differs from Microsoft's operation"
                         : strcasecmp(op_sub, sub_id) ? "subscription differs from Microsoft's operation"
                         : (!strcmp(action, "ChangePlan") && strcmp(op_plan, pay_plan)) ? "plan differs from Microsoft's operation"
                         : (!strcmp(action, "ChangeQuantity") && op_qty != pay_qty) ? "quantity differs from Microsoft's operation"
                         : NULL;
    if (mismatch) {
        out->decision = "mismatch";
        json_object_set_new(oprec, "state", json_string("ignored"));
        rc = add_audit(b, sub_id, audit_entry(op_id, action, "ignored", mismatch, NULL));
        log_warn("inbox", "webhook payload does not match the operation; ignored", "op_id", op_id, "sub_id", sub_id,
                 "reason", mismatch);
        goto finish;
    }

    rc = record_get_sub(d, sub_id, &rec);
    if (rc == SAASD_ENOTFOUND) {
        json_t *snap = jl_get(payload, "subscription");
        rec = record_from_snapshot(sub_id, snap ? snap : op);
        if (snap)
            record_refresh(rec, snap);
        rc = 0;
    }
    if (rc)
        goto fail;
    const char *offer = offer_of(rec, json_string_value(json_object_get(entry, "offer_id")));
    char offer_buf[256];
    snprintf(offer_buf, sizeof offer_buf, "%s", offer);
    json_t *sub_view = json_object_get(rec, "subscription");
    const char *handler = handler_of(action);
    struct decision dec = {0};
    char detail[1024] = "";
    char final[32] = "";

    if (is_ackable(action)) {
        if (is_final(op_status)) {
            /* Already decided (the ACK window passed, or we crashed after our PATCH). */
            snprintf(final, sizeof final, "%s", op_status);
            snprintf(detail, sizeof detail, "operation already %s at Microsoft; rule not run again", op_status);
            out->decision = "already_final";
        } else {
            rc = decide(d, offer_buf, handler, sub_view, payload, b, &dec);
            int accept;
            if (rc && !strcmp(action, "Reinstate")) {
                snprintf(out->message, sizeof out->message, "%.500s", dec.error);
                rc = SAASD_ERETRY;
                goto fail;
            } else if (rc) {
                accept = d->cfg->rule_timeout_accepts;
                snprintf(detail, sizeof detail, "rule failed (%.900s); default applied: %s", dec.error, accept ? "accept" : "refuse");
            } else {
                accept = !strcmp(dec.verdict, "accept");
                snprintf(detail, sizeof detail, "%s", dec.message);
            }
            rc = 0;
            int partner = jl_string_is(op, "operationRequestSource", "Partner");
            int prc = mp_ack_operation(d->mp, sub_id, op_id, accept ? "Success" : "Failure", &mr);
            long patch_status = mr.status;
            mp_result_clear(&mr);
            if (prc == 0) {
                snprintf(final, sizeof final, "%s", accept ? "Succeeded" : "Failed");
            } else {
                /* 409: already final; Partner operations may answer 500 (§5.1): poll instead. */
                final_status_of(d, sub_id, op_id, final, sizeof final);
                if (!is_final(final) && !(partner && patch_status == 500)) {
                    snprintf(out->message, sizeof out->message, "PATCH operation failed: HTTP %ld", patch_status);
                    rc = SAASD_ERETRY;
                    goto fail;
                }
                if (!is_final(final)) {
                    snprintf(out->message, sizeof out->message, "partner operation not final yet");
                    rc = SAASD_ERETRY;
                    goto fail;
                }
            }
            out->ran_rule = 1;
            out->decision = accept ? "accepted" : "refused";
        }
        if (!strcasecmp(final, "Succeeded")) {
            if (!strcmp(action, "ChangePlan") && op_plan[0])
                json_object_set_new(rec, "planId", json_string(op_plan));
            else if (!strcmp(action, "ChangeQuantity") && op_qty >= 0)
                json_object_set_new(rec, "quantity", json_integer(op_qty));
            else if (!strcmp(action, "Reinstate"))
                json_object_set_new(rec, "status", json_string("Subscribed"));
        }
        json_object_set_new(oprec, "final_status", json_string(final));
    } else {
        rc = decide(d, offer_buf, handler, sub_view, payload, b, &dec);
        if (rc) {
            /* Side effects on the ISV's systems failed: never dropped, retried (outbox). */
            snprintf(out->message, sizeof out->message, "%.500s", dec.error);
            rc = SAASD_ERETRY;
            goto fail;
        }
        out->ran_rule = 1;
        out->decision = "done";
        snprintf(detail, sizeof detail, "%s", dec.message);
        if (!strcmp(action, "Suspend"))
            json_object_set_new(rec, "status", json_string("Suspended"));
        else if (!strcmp(action, "Unsubscribe"))
            json_object_set_new(rec, "status", json_string("Unsubscribed"));
        else if (!strcmp(action, "Subscribe"))
            json_object_set_new(rec, "status", json_string("Subscribed"));
    }

    /* Microsoft's subscription is the truth for status and term (§9.8), with one exception: a
     * change we just accepted may not be applied there yet, so an old plan or seat count is
     * "not yet", not drift. A change we refused that shows up anyway is drift. */
    if (mp_get_subscription(d->mp, sub_id, &mr) == 0 && (fresh = take_body(&mr)) != NULL) {
        json_t *expected_plan = json_incref(json_object_get(rec, "planId"));
        json_t *expected_qty = json_incref(json_object_get(rec, "quantity"));
        record_refresh(rec, fresh);
        int is_plan = !strcmp(action, "ChangePlan"), is_qty = !strcmp(action, "ChangeQuantity");
        if (is_plan || is_qty) {
            const char *field = is_plan ? "planId" : "quantity";
            json_t *expected = is_plan ? expected_plan : expected_qty;
            json_t *ms = json_object_get(rec, field);
            int succeeded = !strcasecmp(final, "Succeeded");
            int ms_has_target = is_plan ? json_is_string(ms) && !strcmp(json_string_value(ms), op_plan)
                                        : json_is_integer(ms) && json_integer_value(ms) == op_qty;
            if (expected && !json_equal(ms, expected)) {
                if (succeeded && !ms_has_target) {
                    json_object_set(rec, field, expected); /* accepted, not applied there yet */
                } else {
                    metrics_inc("saasd_drift_total", succeeded ? "kind=\"after_operation\"" : "kind=\"refused_but_applied\"");
                    log_warn("inbox", "Microsoft's state differs from the decision; Microsoft's state kept", "op_id",
                             op_id, "sub_id", sub_id, "field", field, "final_status", final);
                }
            }
        }
        json_decref(expected_plan);
        json_decref(expected_qty);
    }
    json_object_set_new(oprec, "state", json_string("done"));
    json_object_set_new(oprec, "decision", json_string(out->decision));
    if (dec.rule_sha256[0])
        json_object_set_new(oprec, "rule_sha256", json_string(dec.rule_sha256));
    rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
    if (!rc)
        rc = add_audit(b, sub_id, audit_entry(op_id, action, out->decision, detail, dec.rule_sha256[0] ? &dec : NULL));
    log_info("inbox", "event acted on", "op_id", op_id, "sub_id", sub_id, "action", action, "decision", out->decision,
             "final_status", final, "rule_sha256", dec.rule_sha256);
finish:
    if (!rc)
        rc = record_put_json(b, STORE_OPERATIONS, op_id, oprec);
fail:
    json_decref(oprec);
    json_decref(op);
    json_decref(rec);
    json_decref(fresh);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Publisher-initiated changes (admin)                                                          */

int flow_publisher_change(struct daemon *d, const char *sub_id, const char *kind, const char *value,
                          json_t **operation_out, struct flow_outcome *out)
{
    memset(out, 0, sizeof *out);
    struct mp_result mr = {0};
    int rc;
    if (!strcmp(kind, "plan"))
        rc = mp_change_plan(d->mp, sub_id, value, &mr);
    else if (!strcmp(kind, "quantity"))
        rc = mp_change_quantity(d->mp, sub_id, strtoll(value, NULL, 10), &mr);
    else if (!strcmp(kind, "cancel"))
        rc = mp_delete_subscription(d->mp, sub_id, &mr);
    else
        return SAASD_EINVAL;
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

    /* Refresh the local record from Microsoft; the webhook that follows is then a no-op. */
    json_t *fresh = NULL, *rec = NULL;
    struct store_batch *b = NULL;
    if (mp_get_subscription(d->mp, sub_id, &mr) == 0 && (fresh = take_body(&mr)) != NULL && store_batch_new(&b) == 0) {
        if (record_get_sub(d, sub_id, &rec) != 0)
            rec = record_from_snapshot(sub_id, fresh);
        record_refresh(rec, fresh);
        char op_id[128] = "";
        jl_string(op, "id", op_id, sizeof op_id);
        if (!record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec) &&
            !add_audit(b, sub_id, audit_entry(op_id, kind, out->decision, "publisher-initiated by an operator", NULL)))
            store_commit(d->store, b);
    }
    store_batch_free(b);
    json_decref(rec);
    json_decref(fresh);
    if (operation_out)
        *operation_out = op;
    else
        json_decref(op);
    return 0;
}
