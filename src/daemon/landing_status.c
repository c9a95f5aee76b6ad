/* GET /landing/status: what the signed-in buyer should see about their subscription now, read
 * from Microsoft (the stored record when Microsoft cannot be reached). Reads only. */
#include "daemon/daemon.h"
#include "daemon/html.h"
#include "daemon/landing.h"

#include "core/config.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/mp_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define START_AGAIN                                                                                               \
    "Please open this SaaS subscription in the Azure portal or in the Microsoft 365 admin center and select "    \
    "\"Configure Account\" or \"Manage Account\" to sign in again."

void landing_refuse_session(struct landing_visit *v, int rc)
{
    landing_count(rc == SAASD_ETIMEOUT ? "session_expired" : "bad_session");
    if (rc == SAASD_ETIMEOUT)
        landing_page(v, 403, "Your session has ended", "For your security a sign-in lasts a short while. " START_AGAIN,
                     NULL, NULL, NULL);
    else
        landing_page(v, 403, "Please sign in first",
                     "We could not find a valid sign-in for this page. Nothing was changed. " START_AGAIN, NULL, NULL,
                     NULL);
}

void landing_status(struct landing_visit *v)
{
    struct session s;
    int rc = landing_session(v, &s);
    if (rc) {
        landing_refuse_session(v, rc);
        return;
    }
    v->signout_csrf = s.csrf;
    struct mp_result mr = {.max_wait_ms = v->d->cfg->landing_max_wait_ms}; /* a browser is waiting */
    json_t *ms = mp_get_subscription(v->d->mp, s.sub_id, &mr) == 0 ? take_body(&mr) : NULL;
    if (!ms)
        log_warn("landing", "cannot read the subscription from Microsoft; showing the stored state", "request_id",
                 v->request_id, "sub_id", s.sub_id, "ms_request_id", mr.request_id, "detail", mr.message);
    mp_result_clear(&mr);
    json_t *local = NULL;
    record_get_sub(v->d, s.sub_id, &local);
    landing_show_state(v, &s, ms, local);
    json_decref(ms);
    json_decref(local);
}

/* The page for one state; the decision only matters while Microsoft still says
 * PendingFulfillmentStart. */
static void show_active(struct landing_visit *v, const struct session *s, json_t *sub, json_t *prov,
                        const char *details)
{
    /* a "pending" message ("we will set up your account") is stale once an operator activated */
    int activated = jl_string_is(prov, "decision", "activated");
    const char *message = activated ? json_string_value(json_object_get(prov, "message")) : NULL;
    const char *redirect = json_string_value(json_object_get(prov, "redirect"));
    landing_count("active");
    if (html_link_ok(redirect)) {
        httpd_add_header(v->res, "Location", redirect);
        landing_page(v, 303, "Your subscription is active", message ? message : "Your subscription is active.",
                     details, "Continue to the application", redirect);
    } else {
        landing_page(v, 200, "Your subscription is active",
                     message ? message : "Your subscription is active. You can close this page.", details, NULL, NULL);
    }
}

/* While Microsoft still says PendingFulfillmentStart, the page for the provision decision; the
 * last row (decision NULL) is for "rejected" and anything else. The rule's message replaces
 * the text where rule_message says so; an activation under way reloads itself every 5 s
 * (Activate was accepted, Microsoft does not show Subscribed yet: look again shortly). */
static const struct decision_page {
    const char *decision, *outcome, *title, *text;
    int rule_message, reloads;
} decision_pages[] = {
    {"activated", "activation_in_progress", "We are finishing your activation",
     "Microsoft is completing your subscription. This page refreshes by itself; it usually takes less than a minute.",
     0, 1},
    {"pending", "pending", "Your purchase is waiting for approval",
     "We will set up your account and let you know. You do not need to do anything now.", 1, 0},
    {NULL, "rejected", "We could not accept this subscription",
     "This purchase cannot be fulfilled. Please contact the vendor.", 1, 0},
};

static void show_pending_start(struct landing_visit *v, const struct session *s, json_t *sub, json_t *prov,
                               const char *details)
{
    const char *decision = json_string_value(json_object_get(prov, "decision"));
    const char *message = json_string_value(json_object_get(prov, "message"));
    if (!decision) { /* not decided yet: the buyer confirms first */
        landing_count("confirmation");
        landing_confirmation_page(v, 200, s, sub, NULL, NULL);
        return;
    }
    const struct decision_page *p = decision_pages;
    while (p->decision && strcmp(p->decision, decision))
        p++;
    landing_count(p->outcome);
    if (p->reloads)
        v->head_html = "<meta http-equiv=\"refresh\" content=\"5\">\n";
    landing_page(v, 200, p->title, p->rule_message && message ? message : p->text, NULL,
                 p->reloads ? "Refresh now" : NULL, p->reloads ? "/landing/status" : NULL);
}

/* What the buyer sees for each of Microsoft's statuses: one table. A row either has its own
 * page function (show: the provision decision matters there) or a fixed page; details (what was
 * bought) go on the pages of settled states. */
static const struct {
    const char *status;
    int details;
    void (*show)(struct landing_visit *v, const struct session *s, json_t *sub, json_t *prov, const char *details);
    const char *outcome, *title, *text;
} state_pages[] = {
    {"Subscribed", 1, show_active, NULL, NULL, NULL},
    {"PendingFulfillmentStart", 0, show_pending_start, NULL, NULL, NULL},
    {"Suspended", 1, NULL, "suspended", "Your subscription is suspended",
     "Microsoft has suspended this subscription, usually because a payment is outstanding. Check the billing of this "
     "subscription in the Azure portal or the Microsoft 365 admin center; your service resumes when Microsoft "
     "reinstates the subscription."},
    {"Unsubscribed", 1, NULL, "cancelled", "This subscription has been cancelled",
     "This subscription has ended and can no longer be used. To use the service again, buy a new subscription in the "
     "Azure portal or the Microsoft 365 admin center."},
};

void landing_show_state(struct landing_visit *v, const struct session *s, json_t *ms, json_t *local)
{
    json_t *sub = ms ? ms : json_object_get(local, "subscription");
    const char *status = ms ? json_string_value(json_object_get(ms, "saasSubscriptionStatus"))
                            : json_string_value(json_object_get(local, "status"));
    const char *offer = json_string_value(json_object_get(sub, "offerId"));
    landing_set_offer(v, offer ? offer : json_string_value(json_object_get(local, "offerId")));
    if (!status) {
        landing_count("unavailable");
        landing_page(v, 503, "Please try again in a minute",
                     "We could not read your subscription from Microsoft. Reload this page in a minute.", NULL, NULL,
                     NULL);
        return;
    }
    size_t i = 0, n = sizeof state_pages / sizeof state_pages[0];
    while (i < n && strcmp(state_pages[i].status, status))
        i++;
    if (i == n) {
        landing_count("other_state");
        char msg[256];
        snprintf(msg, sizeof msg, "Microsoft reports this subscription as %.64s.", status);
        landing_page(v, 200, "This subscription cannot be set up", msg, NULL, NULL, NULL);
        return;
    }
    /* what was bought, as Microsoft says now (plan changes included), on every settled state */
    char *details = state_pages[i].details ? landing_details_html(v, sub) : NULL;
    if (state_pages[i].show) {
        state_pages[i].show(v, s, sub, json_object_get(local, "provision"), details);
    } else {
        landing_count(state_pages[i].outcome);
        landing_page(v, 200, state_pages[i].title, state_pages[i].text, details, NULL, NULL);
    }
    free(details);
}
