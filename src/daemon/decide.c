/* The rule engine adapter (see decide.h). */
#include "daemon/decide.h"
#include "daemon/daemon.h"
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

static int decide_call(struct daemon *d, const char *offer, const char *handler, enum rule_handler h, json_t *sub,
                       char *arg_json, struct store_batch *batch, struct decision *out);

int decide(struct daemon *d, const char *offer, const char *handler, json_t *sub, json_t *arg,
           struct store_batch *batch, struct decision *out)
{
    enum rule_handler h = rule_handler_from_name(handler);
    /* provision's argument is the buyer's confirmation, never a webhook payload */
    return decide_call(d, offer, handler, h, sub, arg && h != RULE_PROVISION ? json_dumps(arg, JSON_COMPACT) : NULL,
                       batch, out);
}

int decide_provision(struct daemon *d, const char *offer, json_t *sub, json_t *landing, struct store_batch *batch,
                     struct decision *out)
{
    return decide_call(d, offer, "provision", RULE_PROVISION, sub, landing ? json_dumps(landing, JSON_COMPACT) : NULL,
                       batch, out);
}

/* arg_json (may be NULL) is taken over and freed. */
static int decide_call(struct daemon *d, const char *offer, const char *handler, enum rule_handler h, json_t *sub,
                       char *arg_json, struct store_batch *batch, struct decision *out)
{
    memset(out, 0, sizeof *out);
    if (unknown_offer(d, offer, handler, h, out)) {
        free(arg_json);
        return 0;
    }
    char *sub_json = sub ? json_dumps(sub, JSON_COMPACT) : strdup("{}");
    struct rule_result r;
    int rc = engine_call(d->engine, offer, h, sub_json, arg_json, batch, &r);
    free(sub_json);
    free(arg_json);
    snprintf(out->rule_file, sizeof out->rule_file, "%s", r.file ? r.file : "");
    snprintf(out->rule_sha256, sizeof out->rule_sha256, "%s", r.sha256);
    out->generation = (long long)r.generation;
    if (rc != 0) {
        out->failed = 1;
        out->limit_hit = rc == SAASD_ELIMIT;
        snprintf(out->error, sizeof out->error, "%s", r.error ? r.error : saasd_strerror(rc));
        rule_metrics(offer, handler, rule_outcome_name(r.outcome));
        rule_result_free(&r);
        return rc;
    }
    if (r.notifications && batch &&
        (rc = events_add_notifications(batch, offer, json_string_value(json_object_get(sub, "id")), r.notifications))) {
        out->failed = 1; /* out of memory: reported as a failed rule call */
        snprintf(out->error, sizeof out->error, "could not add the rule's ctx.notify events: %s", saasd_strerror(rc));
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
