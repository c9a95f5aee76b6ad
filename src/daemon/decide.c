/* The rule engine adapter (see decide.h). */
#include "daemon/decide.h"
#include "daemon/call_record.h"
#include "daemon/daemon.h"
#include "daemon/metering.h"
#include "daemon/timers.h"
#include "daemon/events.h"

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void rule_metrics(const char *offer, const char *handler, const char *outcome)
{
    char labels[256];
    snprintf(labels, sizeof labels, "offer=\"%s\",handler=\"%s\",outcome=\"%s\"", offer, handler, outcome);
    metrics_inc("saasd_rule_decisions_total", labels);
}

/* An offer without its own rule file is never decided silently: every such call is logged and
 * counted, and unless rules.unknown_offers = "default" opts in, its provision is held pending
 * (an operator activates it) instead of being accepted by the default rule. Returns 1 when
 * out holds that decision. */
static int unknown_offer(struct daemon *d, const char *offer, const char *handler, enum rule_handler h,
                         struct decision *out)
{
    if (!strcmp(offer, "default") || engine_offer_has_rule(d->engine, offer))
        return 0;
    int hold = h == RULE_PROVISION && !d->cfg->unknown_offers_default;
    char labels[256];
    snprintf(labels, sizeof labels, "offer=\"%s\",handler=\"%s\"", offer, handler);
    metrics_inc("saasd_rule_unknown_offer_total", labels);
    log_warn("decide", hold ? "no rule file for this offer: provision held pending until an operator activates it"
                            : "no rule file for this offer: the default rule decides",
             "offer", offer, "handler", handler, "expected_file", offer, "fix",
             "add rules/<offer>.lua (saasd rules check lists which file serves which offer)");
    if (!hold)
        return 0;
    snprintf(out->verdict, sizeof out->verdict, "pending");
    snprintf(out->message, sizeof out->message,
             "Your purchase is recorded. The publisher will activate your subscription shortly.");
    snprintf(out->rule_file, sizeof out->rule_file, "(none: no rule file for offer %.400s, rules.unknown_offers = "
             "pending)", offer);
    rule_metrics(offer, handler, "pending");
    return 1;
}

static int decide_call(struct daemon *d, const char *offer, const char *handler, enum rule_handler h,
                       const struct decide_input *in, struct store_batch *batch, struct decision *out);

/* Where one call's effects go: the subscription's, in the decision's own batch. */
struct effect_target {
    struct daemon *d;
    struct store_batch *batch;
    const char *offer, *sub_id;
    int64_t now;
};

static int add_meter(const struct effect_target *t, json_t *e)
{
    return metering_batch_add(t->batch, t->sub_id, json_string_value(json_object_get(e, "dimension")),
                              json_number_value(json_object_get(e, "quantity")), t->now);
}

static int add_notify(const struct effect_target *t, json_t *e) /* type and data checked by engine/caps.c */
{
    return events_add(t->batch, json_string_value(json_object_get(e, "type")), t->offer, t->sub_id,
                      json_incref(json_object_get(e, "data")));
}

static int set_timer(const struct effect_target *t, const char *name, json_t *e)
{
    return timers_batch_set(t->d, t->batch, t->sub_id, t->offer, name, json_integer_value(json_object_get(e, "at")),
                            json_object_get(e, "data"));
}

static int cancel_timer(const struct effect_target *t, const char *name, json_t *e)
{
    return timers_batch_cancel(t->d, t->batch, t->sub_id, name);
}

/* Each effect kind (engine/caps.c's effect_kinds) is applied in the rule's order (in_order), or
 * is a timer effect (per_name): only the last ask for a name counts, applied after the others. */
static const struct {
    const char *kind;
    int (*in_order)(const struct effect_target *t, json_t *e);
    int (*per_name)(const struct effect_target *t, const char *name, json_t *e);
} effect_kinds[] = {
    {"meter", add_meter, NULL},
    {"notify", add_notify, NULL},
    {"timer", NULL, set_timer},
    {"timer_cancel", NULL, cancel_timer}, /* last: also what an unknown kind does */
};

/* The kind's row; an unknown kind (caps.c lets none through) counts as a timer cancel, as before. */
static size_t effect_kind_of(const char *kind)
{
    size_t i = 0, n = sizeof effect_kinds / sizeof effect_kinds[0];
    while (i < n && strcmp(effect_kinds[i].kind, kind))
        i++;
    return i < n ? i : n - 1;
}

/* The call's ctx.meter / ctx.timer / ctx.notify effects into batch (the decision's own). Timers are applied
 * once per name, the last ask winning, as the rule saw them in order. */
static int apply_effects(struct daemon *d, const char *offer, json_t *sub, const char *effects,
                         struct store_batch *batch)
{
    struct effect_target t = {d, batch, offer, json_string_value(json_object_get(sub, "id")), now_ms()};
    json_t *list = json_loads(effects, 0, NULL), *timers = json_object();
    int rc = list && timers ? 0 : SAASD_ENOMEM;
    if (!rc && !t.sub_id)
        rc = SAASD_EINVAL;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *kind = json_string_value(json_object_get(e, "kind"));
        if (rc || !kind)
            continue;
        size_t k = effect_kind_of(kind);
        if (effect_kinds[k].in_order)
            rc = effect_kinds[k].in_order(&t, e);
        else
            json_object_set(timers, json_string_value(json_object_get(e, "name")), e);
    }
    const char *name;
    json_object_foreach(timers, name, e) {
        if (rc)
            break;
        rc = effect_kinds[effect_kind_of(json_string_value(json_object_get(e, "kind")))].per_name(&t, name, e);
    }
    json_decref(list);
    json_decref(timers);
    return rc;
}

/* The inputs the rule saw and what it decided, as an audit record in the decision's batch, so
 * `saasd rules replay` can run a candidate rule on exactly the same call. */
/* Staged rollout: the shadow generation (rules.shadow_dir) decides the same call as the live one
 * saw it (its clock, ctx.store reads and ctx.http answers; writes discarded, a ctx.http call the live
 * one did not make refused). Its decision is
 * recorded with the live one and counted, never acted on. NULL when there is no shadow. */
static json_t *shadow_call(struct daemon *d, const char *offer, enum rule_handler h, const char *sub_json,
                           const char *arg_json, long long now_s, const struct rule_result *live)
{
    if (!d->shadow || !live->sha256[0])
        return NULL;
    json_t *reads = live->reads ? json_loads(live->reads, 0, NULL) : json_object();
    json_t *http = live->http ? json_loads(live->http, 0, NULL) : NULL;
    struct engine_call_opts o = {.now_s = now_s, .reads = reads, .http_mode = ENGINE_HTTP_RECORDED, .http = http};
    struct rule_result r;
    engine_call_ex(d->shadow, offer, h, sub_json, arg_json, NULL, &o, &r);
    json_t *now = rule_result_decision(&r), *was = rule_result_decision(live);
    int same = now && was && json_equal(now, was);
    json_t *out = json_pack("{s:o?, s:s, s:b}", "decision", now, "rule_sha256", r.sha256, "same", same);
    char labels[256];
    snprintf(labels, sizeof labels, "offer=\"%s\",handler=\"%s\",result=\"%s\"", offer, rule_handler_name(h),
             same ? "same" : "differ");
    metrics_inc("saasd_rule_shadow_decisions_total", labels);
    if (!same)
        log_info("decide", "the shadow rules decided differently", "offer", offer, "handler", rule_handler_name(h),
                 "live_sha256", live->sha256, "shadow_sha256", r.sha256);
    json_decref(was);
    json_decref(reads);
    json_decref(http);
    rule_result_free(&r);
    return out;
}

static int record_call(struct store_batch *batch, const char *offer, const char *handler, const struct decide_input *in,
                       const char *sub_json, const char *arg_json, long long now_s, const struct rule_result *r,
                       json_t *shadow)
{
    const char *sub_id = json_string_value(json_object_get(in->sub, "id"));
    if (!batch || !sub_id)
        return 0;
    const char *of = in->input_of ? in->input_of : json_string_value(json_object_get(in->arg, "id"));
    struct call_record c = {.offer = offer, .handler = handler, .input_of = of ? of : "", .sub_json = sub_json,
                            .arg_json = arg_json, .now_s = now_s, .shadow = shadow, .time_ms = now_ms()};
    char *text = NULL;
    size_t len = 0;
    int rc = call_record_text(&c, r, &text, &len);
    if (!rc)
        rc = record_audit_text(batch, sub_id, text, len);
    free(text);
    return rc;
}

int decide(struct daemon *d, const char *offer, const char *handler, json_t *sub, json_t *arg,
           struct store_batch *batch, struct decision *out)
{
    struct decide_input in = {.sub = sub, .arg = arg};
    return decide_with(d, offer, handler, &in, batch, out);
}

int decide_with(struct daemon *d, const char *offer, const char *handler, const struct decide_input *in,
                struct store_batch *batch, struct decision *out)
{
    enum rule_handler h = rule_handler_from_name(handler);
    struct decide_input given = *in;
    if (h == RULE_PROVISION) /* provision's argument is the buyer's confirmation, never a webhook payload */
        given.arg = NULL, given.arg_json = NULL, given.input_of = NULL;
    return decide_call(d, offer, handler, h, &given, batch, out);
}

int decide_provision(struct daemon *d, const char *offer, json_t *sub, json_t *landing, struct store_batch *batch,
                     struct decision *out)
{
    struct decide_input in = {.sub = sub, .arg = landing};
    return decide_call(d, offer, "provision", RULE_PROVISION, &in, batch, out);
}

/* The texts of sub and arg go to the rule, and the same texts into the call's audit record
 * (call_record.c): each is encoded at most once, and not at all when the caller has it. */
static int decide_call(struct daemon *d, const char *offer, const char *handler, enum rule_handler h,
                       const struct decide_input *in, struct store_batch *batch, struct decision *out)
{
    memset(out, 0, sizeof *out);
    if (unknown_offer(d, offer, handler, h, out))
        return 0;
    json_t *sub = in->sub;
    char *own_arg = in->arg_json || !in->arg ? NULL : json_dumps(in->arg, JSON_COMPACT);
    const char *arg_json = in->arg_json ? in->arg_json : own_arg;
    char *own_sub = in->sub_json ? NULL : sub ? json_dumps(sub, JSON_COMPACT) : strdup("{}");
    const char *sub_json = in->sub_json ? in->sub_json : own_sub;
    struct rule_result r;
    struct engine_call_opts opts = {.now_s = now_ms() / 1000, .record = 1,
                                    .sub_id = json_string_value(json_object_get(sub, "id"))};
    int rc = engine_call_ex(d->engine, offer, h, sub_json, arg_json, batch, &opts, &r);
    json_t *shadow = shadow_call(d, offer, h, sub_json, arg_json, opts.now_s, &r);
    snprintf(out->rule_file, sizeof out->rule_file, "%s", r.file ? r.file : "");
    snprintf(out->rule_sha256, sizeof out->rule_sha256, "%s", r.sha256);
    out->generation = (long long)r.generation;
    if (rc == 0 && r.effects && batch && (rc = apply_effects(d, offer, sub, r.effects, batch)) != 0) {
        free(r.error);
        r.error = strdup("the rule's ctx.meter/ctx.timer/ctx.notify effects could not be recorded");
        r.outcome = RULE_ERROR;
    }
    if (record_call(batch, offer, handler, in, sub_json, arg_json, opts.now_s, &r, shadow) != 0)
        log_warn("decide", "could not record the rule call's inputs for replay", "offer", offer, "handler", handler);
    free(own_sub);
    free(own_arg);
    json_decref(shadow);
    if (rc != 0) {
        out->failed = 1;
        out->limit_hit = rc == SAASD_ELIMIT;
        snprintf(out->error, sizeof out->error, "%s", r.error ? r.error : saasd_strerror(rc));
        rule_metrics(offer, handler, rule_outcome_name(r.outcome));
        rule_result_free(&r);
        return rc;
    }
    if (h == RULE_PROVISION)
        snprintf(out->verdict, sizeof out->verdict, "%s", rule_action_name(r.action));
    else if (h == RULE_CHANGE_PLAN || h == RULE_CHANGE_QUANTITY || h == RULE_REINSTATE)
        snprintf(out->verdict, sizeof out->verdict, "%s", r.accept ? "accept" : "refuse");
    else if (h == RULE_USAGE)
        snprintf(out->verdict, sizeof out->verdict, "bill");
    else
        snprintf(out->verdict, sizeof out->verdict, "done");
    snprintf(out->message, sizeof out->message, "%s", r.message ? r.message : r.reason ? r.reason : "");
    snprintf(out->redirect, sizeof out->redirect, "%s", r.redirect ? r.redirect : "");
    out->bill = r.has_bill ? r.bill : 0;
    rule_metrics(offer, handler, out->verdict);
    rule_result_free(&r);
    return 0;
}
