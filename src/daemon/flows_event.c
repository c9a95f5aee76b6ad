/* Webhook events (and operations saasd started itself): check the event against Microsoft's
 * operation, then do what the action's row in the life-cycle table (lifecycle.c) says: run its
 * handler on the freshest view of the subscription, ACK, cancel after a refusal, and keep
 * Microsoft's state. */
#include "daemon/daemon.h"
#include "daemon/timers.h"
#include "daemon/decide.h"
#include "daemon/flows.h"
#include "daemon/flows_internal.h"
#include "daemon/lifecycle.h"
#include "daemon/webhook_body.h"

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

/* GET operation answering 404 this many times (with the outbox's backoff between: about 3 s in
 * all) means Microsoft really does not know the operation. */
#define UNKNOWN_OPERATION_TRIES 3

struct event {
    struct daemon *d;
    struct store_batch *b;
    struct flow_outcome *out;
    const struct lifecycle_action *row;
    const char *op_id, *sub_id, *action;
    json_t *payload, *op, *rec; /* payload: NULL until read (event_payload) when kept as text */
    const struct entry_payload *kept; /* the payload as stored and what webhook_scan read of it,
                                         when the entry did not hold it as a tree */
    int payload_owned;          /* payload was parsed here from kept->text */
    json_t *fresh;       /* Microsoft's subscription as read before the handler ran, or NULL */
    char *fresh_json;    /* its text as the rule got it (encoded once: the record splices it in) */
    int told;            /* saasd sent Microsoft a change (PATCH, DELETE) since fresh was read */
    int acked;           /* ... and it was an accepted ACK Microsoft took (PATCH Success, 2xx) */
    char offer[256];
    char op_status[32];  /* Microsoft's operation status when the event was taken */
    char final[32];      /* the operation's status after saasd acted */
    char detail[1024];
    int ran;             /* the handler ran now */
    int accept;          /* the handler accepted (or did not need to decide) */
    struct decision dec;
};

static int is_final(const char *status)
{
    return status && (!strcasecmp(status, "Succeeded") || !strcasecmp(status, "Failed") || !strcasecmp(status, "Conflict"));
}

static int succeeded(const char *status) { return status && !strcasecmp(status, "Succeeded"); }

/* The operation's target for the row's field (planId or quantity), new reference or NULL. */
static json_t *op_target(const struct event *ev)
{
    if (!ev->row->target_field)
        return NULL;
    if (!strcmp(ev->row->target_field, "quantity")) {
        long long q;
        return jl_int(ev->op, "quantity", &q) ? NULL : json_integer(q);
    }
    char buf[256];
    return jl_string(ev->op, ev->row->target_field, buf, sizeof buf) ? NULL : json_string(buf);
}

/* The payload's tree, parsed from its text the first time something needs a member of it (the
 * rule gets the text itself). NULL when there is none or it does not parse. */
static json_t *event_payload(struct event *ev)
{
    if (!ev->payload && ev->kept && !ev->payload_owned) {
        ev->payload = json_loadb(ev->kept->text, ev->kept->len, 0, NULL);
        ev->payload_owned = 1;
    }
    return ev->payload;
}

/* op_target's reading applied to the payload: what webhook_scan read of it when that is surely
 * the same, else the parsed payload. */
static json_t *payload_target(struct event *ev)
{
    const struct webhook_event *r = ev->kept ? &ev->kept->read : NULL;
    if (r && !(r->targets & WS_TARGET_UNSURE) && !strcmp(ev->row->target_field, "quantity"))
        return r->targets & WS_QUANTITY ? json_integer(r->quantity) : NULL;
    if (r && !(r->targets & WS_TARGET_UNSURE) && !strcmp(ev->row->target_field, "planId"))
        return r->targets & WS_PLAN ? json_string(r->plan_id) : NULL;
    json_t *saved = ev->op;
    ev->op = event_payload(ev);
    json_t *got = op_target(ev);
    ev->op = saved;
    return got;
}

/* Whether the payload is Microsoft's operation (*actionable; otherwise the event is recorded as
 * ignored in oprec and the audit trail). Microsoft's record decides, not the payload (§5.5 step 5,
 * §9.5). 0, or the error (SAASD_ERETRY with out->message). */
static int verify_operation(struct event *ev, json_t *entry, json_t *oprec, int *actionable)
{
    *actionable = 0;
    struct mp_result mr = {0};
    int rc = mp_get_operation(ev->d->mp, ev->sub_id, ev->op_id, &mr);
    long status = mr.status;
    ev->op = take_body(&mr);
    int attempts = (int)json_integer_value(json_object_get(entry, "attempts"));
    const char *why = NULL;
    if (rc && (status == 404 || status == 400) && attempts < UNKNOWN_OPERATION_TRIES - 1) {
        /* The bearer was genuine, so give a new operation a moment to become visible. */
        snprintf(ev->out->message, sizeof ev->out->message, "operation not found at Microsoft (HTTP %ld); asking again", status);
        return SAASD_ERETRY;
    }
    if (rc && (status == 404 || status == 400)) {
        why = "operation unknown to Microsoft"; /* a stale or made-up call: record, do nothing */
        ev->out->decision = "unverified";
    } else if (rc) {
        snprintf(ev->out->message, sizeof ev->out->message, "GET operation failed: %s (HTTP %ld)", saasd_strerror(rc), status);
        return SAASD_ERETRY;
    } else {
        char op_action[64] = "", op_sub[128] = "";
        jl_string(ev->op, "action", op_action, sizeof op_action);
        jl_string(ev->op, "subscriptionId", op_sub, sizeof op_sub);
        jl_string(ev->op, "status", ev->op_status, sizeof ev->op_status);
        ev->row = lifecycle_find(ev->action);
        json_t *want = ev->row ? op_target(ev) : NULL;
        json_t *got = want ? payload_target(ev) : NULL;
        why = strcasecmp(op_action, ev->action) ? "action differs from Microsoft's operation"
            : strcasecmp(op_sub, ev->sub_id) ? "subscription differs from Microsoft's operation"
            : (want && !json_equal(want, got)) ? "target differs from Microsoft's operation"
            : !ev->row ? "no life-cycle row for this action"
            : NULL;
        json_decref(want);
        json_decref(got);
        if (why) {
            ev->out->decision = "mismatch";
            log_warn("inbox", "webhook payload does not match the operation; ignored", "op_id", ev->op_id, "sub_id",
                     ev->sub_id, "reason", why);
        }
    }
    if (!why) {
        *actionable = 1;
        return 0;
    }
    json_object_set_new(oprec, "state", json_string("ignored"));
    return flows_add_audit(ev->b, ev->sub_id, flows_audit_entry(ev->op_id, ev->action, "ignored", why, NULL));
}

/* The accept/refuse reading of a handler's verdict (provision: activate and pending accept). */
static int verdict_accepts(const char *verdict)
{
    return strcmp(verdict, "refuse") != 0 && strcmp(verdict, "reject") != 0;
}

/* Run the row's handler on the freshest view saasd can get: Microsoft's subscription as read
 * when the event was taken, else the stored one (the landing page and every flow store
 * Microsoft's object as read back), else the webhook's. */
static int run_handler(struct event *ev)
{
    json_t *view = ev->fresh ? ev->fresh : json_object_get(ev->rec, "subscription");
    if (!view)
        view = jl_get(event_payload(ev), "subscription");
    /* Microsoft's texts as they came, when on one line (records are); the trees otherwise */
    int text_ok = ev->kept && jl_text_one_line(ev->kept->text, ev->kept->len);
    struct decide_input in = {.sub = view, .sub_json = ev->fresh_json, .arg = text_ok ? NULL : event_payload(ev),
                              .arg_json = text_ok ? ev->kept->text : NULL, .input_of = ev->op_id};
    int rc = decide_with(ev->d, ev->offer, ev->row->handler, &in, ev->b, &ev->dec);
    if (rc && ev->row->on_error == ON_ERROR_RETRY) {
        /* Side effects on the ISV's systems failed: never dropped, retried (outbox). */
        snprintf(ev->out->message, sizeof ev->out->message, "%.500s", ev->dec.error);
        return SAASD_ERETRY;
    }
    if (rc) {
        ev->accept = ev->d->cfg->rule_timeout_accepts;
        snprintf(ev->detail, sizeof ev->detail, "rule failed (%.900s); default applied: %s", ev->dec.error,
                 ev->accept ? "accept" : "refuse");
    } else {
        ev->accept = verdict_accepts(ev->dec.verdict);
        snprintf(ev->detail, sizeof ev->detail, "%s", ev->dec.message);
    }
    ev->ran = 1;
    return 0;
}

/* PATCH the operation (ACK rows while Microsoft still shows it InProgress); sets ev->final. */
static int acknowledge(struct event *ev)
{
    struct mp_result mr = {0};
    int partner = !strcasecmp(lifecycle_request_source(ev->op), "Partner");
    ev->told = 1;
    int prc = mp_ack_operation(ev->d->mp, ev->sub_id, ev->op_id, ev->accept ? "Success" : "Failure", &mr);
    long patch_status = mr.status;
    mp_result_clear(&mr);
    if (prc == 0) {
        snprintf(ev->final, sizeof ev->final, "%s", ev->accept ? "Succeeded" : "Failed");
        ev->acked = ev->accept;
        return 0;
    }
    /* 409: already final; Partner operations may answer 500 (§5.1): poll instead. */
    if (mp_get_operation(ev->d->mp, ev->sub_id, ev->op_id, &mr) == 0)
        snprintf(ev->final, sizeof ev->final, "%s", mr.operation_status);
    mp_result_clear(&mr);
    if (is_final(ev->final))
        return 0;
    snprintf(ev->out->message, sizeof ev->out->message, partner && patch_status == 500 ?
             "partner operation not final yet" : "PATCH operation failed: HTTP %ld", patch_status);
    return SAASD_ERETRY;
}

/* A refusal of an action Microsoft does not take back by PATCH (Reinstate, Subscribe): cancel
 * the subscription, following Operation-Location, and queue the cancellation's own Unsubscribe
 * so the offer's unsubscribe handler runs once whether or not Microsoft's webhook follows. */
static int cancel_after_refusal(struct event *ev)
{
    struct mp_result mr = {0};
    ev->told = 1;
    int rc = mp_delete_subscription(ev->d->mp, ev->sub_id, &mr);
    if (rc) {
        snprintf(ev->out->message, sizeof ev->out->message, "refused by the rule; DELETE failed: HTTP %ld %s", mr.status, mr.message);
        mp_result_clear(&mr);
        json_t *now = flows_get_subscription(ev->d, ev->sub_id); /* cancelled before a crash, or by the customer */
        int gone = now && jl_string_is(now, "saasSubscriptionStatus", "Unsubscribed");
        json_decref(now);
        if (!gone)
            return SAASD_ERETRY;
        size_t n = strlen(ev->detail);
        snprintf(ev->detail + n, sizeof ev->detail - n, "%srefused by the rule: the subscription is already cancelled at Microsoft",
                 n ? "; " : "");
        ev->out->decision = "cancelled";
        return 0;
    }
    char location[1024];
    snprintf(location, sizeof location, "%s", mr.operation_location);
    mp_result_clear(&mr);
    json_t *op = NULL;
    if (location[0] && (rc = mp_wait_operation(ev->d->mp, location, 0, &mr)) == 0)
        op = take_body(&mr);
    mp_result_clear(&mr);
    if (rc) {
        snprintf(ev->out->message, sizeof ev->out->message, "refused by the rule; the cancellation did not finish: %s",
                 saasd_strerror(rc));
        return SAASD_ERETRY;
    }
    char status[32] = "Succeeded";
    jl_string(op, "status", status, sizeof status);
    size_t n = strlen(ev->detail);
    snprintf(ev->detail + n, sizeof ev->detail - n, "%srefused by the rule: subscription cancelled at Microsoft (DELETE, %s)",
             n ? "; " : "", status);
    rc = succeeded(status) && op ? flows_enqueue_own_operation(ev->b, ev->sub_id, ev->offer, op) : 0;
    json_decref(op);
    ev->out->decision = "cancelled";
    return rc;
}

/* Decide and act as the row says; sets ev->final, ev->accept, out->decision. */
static int act(struct event *ev)
{
    const struct lifecycle_action *row = ev->row;
    json_t *once = json_object_get(ev->rec, "once_done");
    int ms_final = is_final(ev->op_status);
    ev->accept = 1;
    snprintf(ev->final, sizeof ev->final, "%s", ev->op_status);
    if (row->once && json_object_get(once, row->action)) {
        snprintf(ev->detail, sizeof ev->detail, "%s handled before for this subscription; not run again", row->action);
        ev->out->decision = "already_done";
        return 0;
    }
    if (ms_final && (!succeeded(ev->op_status) || !row->rerun_when_final)) {
        /* Decided at Microsoft (the ACK window passed, we crashed after our PATCH, or it failed). */
        snprintf(ev->detail, sizeof ev->detail, "operation already %s at Microsoft; rule not run again", ev->op_status);
        ev->out->decision = "already_final";
        return 0;
    }
    int rc = run_handler(ev);
    if (rc)
        return rc;
    ev->out->ran_rule = 1;
    ev->out->decision = ev->accept ? (row->refusal == REFUSAL_NONE ? "done" : "accepted") : "refused";
    if (row->ack && !ms_final && (ev->accept || row->refusal == REFUSAL_PATCH_FAILURE) && (rc = acknowledge(ev)) != 0)
        return rc;
    if (!ev->accept && row->refusal == REFUSAL_CANCEL)
        rc = cancel_after_refusal(ev);
    if (!rc && row->once) {
        if (!once)
            json_object_set_new(ev->rec, "once_done", once = json_object());
        json_object_set_new(once, row->action, json_string(ev->op_id));
    }
    if (!rc && !strcmp(row->handler, "provision"))
        flows_set_provision(ev->rec, !ev->accept ? "rejected" : !strcmp(ev->dec.verdict, "pending") ? "pending" : "activated",
                            &ev->dec);
    return rc;
}

/* Local state after acting: the row's status and target on success, then Microsoft's view, with
 * a change Microsoft accepted but does not show yet kept as pending; a refused change Microsoft
 * applied anyway is drift. */
static void settle_state(struct event *ev)
{
    json_t *target = op_target(ev);
    int done = ev->accept && succeeded(ev->final);
    if (done && ev->row->status_after) {
        json_t *st = json_string(ev->row->status_after);
        flows_mark_pending_change(ev->rec, ev->op_id, "status", st);
        json_decref(st);
    }
    if (done && target)
        flows_mark_pending_change(ev->rec, ev->op_id, ev->row->target_field, target);
    /* What Microsoft shows now: the subscription as read just before the handler, unless saasd
     * has told Microsoft something since (one GET less per event that changes nothing there).
     * After an accepted ACK Microsoft took, its effect is known (the row's status and target,
     * marked pending above until Microsoft shows them), so the view read before stands too;
     * only a refusal or a cancellation is read back: that is where Microsoft may differ from
     * what saasd asked (drift), and a DELETE changes more than one field. */
    int known = !ev->told || (ev->acked && done);
    json_t *fresh = ev->fresh && known ? json_incref(ev->fresh) : flows_get_subscription(ev->d, ev->sub_id);
    if (fresh && target && !done && ev->ran && json_equal(jl_get(fresh, ev->row->target_field), target)) {
        metrics_inc("saasd_drift_total", "kind=\"refused_but_applied\"");
        log_warn("inbox", "Microsoft applied a change saasd refused; Microsoft's state kept", "op_id", ev->op_id,
                 "sub_id", ev->sub_id, "field", ev->row->target_field, "final_status", ev->final);
    }
    flow_record_refresh(ev->rec, fresh);
    json_decref(fresh);
    json_decref(target);
}

/* The decision as an event (events.c): a change counts once Microsoft shows it succeeded, and a
 * Subscribe whose provision rule answered pending waits for approval. */
static const char *event_decision(const struct event *ev)
{
    const char *d = ev->out->decision;
    if (!d || (ev->accept && !succeeded(ev->final)))
        return "none";
    if (ev->accept && ev->ran && !strcmp(ev->row->handler, "provision") && !strcmp(ev->dec.verdict, "pending"))
        return "pending";
    return d;
}

/* The local record, or a new one from Microsoft's view (the webhook's copy when the GET failed). */
static int load_record(struct event *ev)
{
    int rc = record_get_sub(ev->d, ev->sub_id, &ev->rec);
    if (rc == SAASD_ENOTFOUND) {
        json_t *snap = ev->fresh ? ev->fresh : jl_get(event_payload(ev), "subscription");
        ev->rec = flows_record_new(ev->sub_id, snap ? snap : ev->op);
        if (snap)
            flow_record_refresh(ev->rec, snap);
        rc = 0;
    }
    return rc;
}

int flow_process_event(struct daemon *d, json_t *entry, const struct entry_payload *payload, struct store_batch *b,
                       struct flow_outcome *out)
{
    memset(out, 0, sizeof *out);
    struct event ev = {.d = d, .b = b, .out = out, .kept = payload && payload->text ? payload : NULL};
    ev.op_id = json_string_value(json_object_get(entry, "op_id"));
    ev.sub_id = json_string_value(json_object_get(entry, "sub_id"));
    ev.action = json_string_value(json_object_get(entry, "action"));
    ev.payload = ev.kept ? NULL : json_object_get(entry, "payload");
    if (!ev.op_id || !ev.sub_id || !ev.action)
        return SAASD_EINVAL;
    json_t *oprec = json_pack("{s:s, s:s, s:I}", "action", ev.action, "sub_id", ev.sub_id, "done_ms", (json_int_t)now_ms());
    int actionable = 0;
    int rc = verify_operation(&ev, entry, oprec, &actionable);
    if (!rc && !actionable)
        goto finish;
    if (rc)
        goto fail;
    /* Microsoft's subscription now: the handler's view, and what the record settles to (an
     * event that runs no handler reads it all the same, in settle_state). */
    ev.fresh = flows_get_subscription_text(d, ev.sub_id, &ev.fresh_json);
    if ((rc = load_record(&ev)) != 0)
        goto fail;
    snprintf(ev.offer, sizeof ev.offer, "%s", flows_offer_of(ev.rec, json_string_value(json_object_get(entry, "offer_id"))));
    if ((rc = act(&ev)) != 0)
        goto fail;
    settle_state(&ev);
    /* an unsubscribed subscription's ctx.timer timers go with it (the firing thread also drops
     * any that a handler set in this very batch) */
    if (ev.accept && succeeded(ev.final) && ev.row->status_after && !strcmp(ev.row->status_after, "Unsubscribed") &&
        (rc = timers_batch_cancel_all(d, b, ev.sub_id)) != 0)
        goto fail;
    const char *source = lifecycle_request_source(ev.op);
    json_object_set_new(oprec, "final_status", json_string(ev.final));
    json_object_set_new(oprec, "state", json_string("done"));
    json_object_set_new(oprec, "decision", json_string(out->decision));
    if (ev.dec.rule_sha256[0])
        json_object_set_new(oprec, "rule_sha256", json_string(ev.dec.rule_sha256));
    rc = record_put_spliced(b, STORE_SUBSCRIPTIONS, ev.sub_id, ev.rec, "subscription", ev.fresh, ev.fresh_json);
    json_t *audit = flows_audit_entry(ev.op_id, ev.action, out->decision, ev.detail, ev.dec.rule_sha256[0] ? &ev.dec : NULL);
    if (audit && *source)
        json_object_set_new(audit, "source", json_string(source));
    if (!rc)
        rc = flows_add_decision(b, ev.sub_id, ev.rec, audit, event_decision(&ev));
    else
        json_decref(audit);
    log_info("inbox", "event acted on", "op_id", ev.op_id, "sub_id", ev.sub_id, "action", ev.action, "decision",
             out->decision, "final_status", ev.final, "source", source, "rule_sha256", ev.dec.rule_sha256);
finish:
    if (!rc)
        rc = record_put_json(b, STORE_OPERATIONS, ev.op_id, oprec);
fail:
    json_decref(oprec);
    json_decref(ev.op);
    json_decref(ev.rec);
    json_decref(ev.fresh);
    free(ev.fresh_json);
    if (ev.payload_owned)
        json_decref(ev.payload);
    return rc;
}
