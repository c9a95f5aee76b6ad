/* The console's page of one subscription (both sides' views, audit trail, pending events,
 * rule timers, usage) and its actions: a GET confirmation page, then a POST that acts. */
#include "daemon/admin_timers.h"
#include "daemon/console.h"
#include "daemon/console_internal.h"
#include "daemon/daemon.h"
#include "daemon/flows.h"

#include "core/err.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/store.h"

#include <stdlib.h>
#include <string.h>

/* ---- what an operator can do: one row per action ---- */

enum act_kind { ACT_ACTIVATE, ACT_CHANGE, ACT_OUTBOX, ACT_TIMER };

static const struct action {
    const char *name;     /* form value */
    const char *question; /* confirmation page title */
    const char *explain;
    const char *change;   /* flow_publisher_change kind, or the outbox verb */
    enum act_kind kind;
    const char *value_label; /* what the value is, on the confirmation page */
    int needs_value, danger;
    const char *yes;         /* the confirmation button: "Yes, <yes>" */
} actions[] = {
    {"activate", "Activate this pending purchase?",
     "saasd activates the subscription at Microsoft (billing starts) and records the approval.", NULL, ACT_ACTIVATE,
     NULL, 0, 0, "activate it"},
    {"plan", "Change the plan?", "saasd asks Microsoft to move the subscription to the plan below and waits for the "
                                 "operation to finish.", "plan", ACT_CHANGE, "New value", 1, 0,
     "change the plan"},
    {"quantity", "Change the number of seats?", "saasd asks Microsoft to change the seat count and waits for the "
                                                "operation to finish.", "quantity", ACT_CHANGE, "New value", 1, 0,
     "change the seats"},
    {"cancel", "Cancel this subscription?", "saasd asks Microsoft to unsubscribe. The customer loses access and "
                                            "billing stops; this cannot be undone.", "cancel", ACT_CHANGE, NULL, 0, 1,
     "cancel the subscription"},
    {"retry", "Retry this event now?", "The event is tried again at once instead of at its next retry time.", "retry",
     ACT_OUTBOX, "Event", 1, 0, "retry it now"},
    {"abandon", "Abandon this event?", "saasd stops retrying the event and records in the audit trail that an operator "
                                       "gave up on it.", "abandon", ACT_OUTBOX, "Event", 1, 1,
     "abandon it"},
    {"cancel-timer", "Cancel this timer?", "The rule's timer is dropped: its timer handler never runs for it. The audit "
                                           "trail records that an operator cancelled it; this cannot be undone.",
     NULL, ACT_TIMER, "Timer", 1, 1, "cancel the timer"},
};

static const struct action *action_named(const char *name)
{
    for (size_t i = 0; name && i < sizeof actions / sizeof actions[0]; i++)
        if (!strcmp(actions[i].name, name))
            return &actions[i];
    return NULL;
}

static void sub_link(struct console *c, const char *id)
{
    cpage_raw(c, "/console/subscriptions/");
    cpage_url(c, id);
}

/* ---- the subscription page ---- */

static void side_row(struct console *c, const char *label, const char *ours, const char *theirs)
{
    int differ = ours && theirs && strcmp(ours, theirs);
    if ((!ours || !*ours) && (!theirs || !*theirs))
        return; /* neither side has it */
    cpage_raw(c, "<tr%s><th>%s</th>", differ ? " class=\"differ\"" : "", label);
    cpage_td(c, ours);
    cpage_td(c, theirs);
    cpage_raw(c, "<td>%s</td></tr>\n", differ ? "<span class=\"tag drift\">differs</span>" : "");
}

static void both_views(struct console *c, json_t *rec)
{
    struct sub_view v;
    char seats[32] = "", ms_seats[32] = "", seen[40], decided[40];
    json_t *ms = json_object_get(rec, "subscription");
    sub_view_of(rec, &v);
    if (v.seats >= 0)
        snprintf(seats, sizeof seats, "%lld", v.seats);
    if (v.ms_seats >= 0)
        snprintf(ms_seats, sizeof ms_seats, "%lld", v.ms_seats);
    cpage_raw(c, "<h2>saasd and Microsoft</h2>\n<table><tr><th></th><th>saasd</th><th>Microsoft (last known, seen %s)</th>"
                 "<th></th></tr>\n",
              cpage_time(json_integer_value(json_object_get(rec, "ms_seen_ms")), seen, sizeof seen));
    side_row(c, "Status", v.status, v.ms_status);
    side_row(c, "Offer", v.offer, cj_str(ms, "offerId", NULL));
    side_row(c, "Plan", v.plan, v.ms_plan);
    side_row(c, "Seats", seats, ms_seats);
    side_row(c, "Name", NULL, cj_str(ms, "name", NULL));
    side_row(c, "Purchaser", NULL, cj_str(ms, "purchaser", "emailId", NULL));
    side_row(c, "Beneficiary", NULL, cj_str(ms, "beneficiary", "emailId", NULL));
    side_row(c, "Term", NULL, cj_str(ms, "term", "startDate", NULL));
    side_row(c, "Term ends", NULL, cj_str(ms, "term", "endDate", NULL));
    side_row(c, "Created", NULL, cj_str(ms, "created", NULL));
    json_t *prov = json_object_get(rec, "provision");
    side_row(c, "Provisioning decision", cj_str(prov, "decision", NULL), NULL);
    side_row(c, "Decided", cpage_time(json_integer_value(json_object_get(prov, "at_ms")), decided, sizeof decided), NULL);
    side_row(c, "Message to the customer", cj_str(prov, "message", NULL), NULL);
    side_row(c, "Rule SHA-256", cj_str(prov, "rule_sha256", NULL), NULL);
    cpage_raw(c, "</table>\n");
}

static int audit_row(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct console *c = arg;
    json_t *a = json_loadb(val, vlen, 0, NULL);
    char when[40];
    if (!a)
        return 0;
    cpage_raw(c, "<tr><td class=\"t\">%s</td>", cpage_time(json_integer_value(json_object_get(a, "time_ms")), when, sizeof when));
    cpage_td(c, cj_str(a, "action", NULL));
    cpage_td(c, cj_str(a, "decision", NULL));
    cpage_td(c, cj_str(a, "detail", NULL));
    cpage_td(c, cj_str(a, "rule_file", NULL));
    cpage_raw(c, "<td class=\"mono\">");
    cpage_text(c, cj_str(a, "rule_sha256", NULL));
    cpage_raw(c, "</td>");
    cpage_td_json(c, json_object_get(a, "rule_generation"));
    cpage_raw(c, "<td class=\"mono\">");
    cpage_text(c, cj_str(a, "op_id", NULL));
    cpage_raw(c, "</td></tr>\n");
    json_decref(a);
    return 0;
}

struct pending_scan {
    struct console *c;
    const char *id;
    const char *source; /* "inbox" / "outbox" */
    int rows;
};

static int pending_row(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct pending_scan *p = arg;
    struct console *c = p->c;
    if (!memmem(val, vlen, p->id, strlen(p->id)))
        return 0; /* the common case: another subscription's event */
    json_t *e = json_loadb(val, vlen, 0, NULL);
    const char *sub = cj_str(e, "sub_id", NULL);
    if (sub && !strcmp(sub, p->id)) {
        uint64_t seq = cpage_key_seq(key, klen);
        p->rows++;
        cpage_raw(c, "<tr><td>%s #%llu</td>", p->source, (unsigned long long)seq);
        cpage_td(c, cj_str(e, "action", NULL));
        cpage_td_time(c, json_integer_value(json_object_get(e, "received_at")));
        cpage_td_json(c, json_object_get(e, "attempts"));
        cpage_td(c, cj_str(e, "last_error", NULL));
        cpage_td_time(c, json_integer_value(json_object_get(e, "next_at_ms")));
        cpage_raw(c, "<td>");
        if (!strcmp(p->source, "outbox")) {
            cpage_outbox_button(c, p->id, "retry", "Retry now", seq);
            cpage_outbox_button(c, p->id, "abandon", "Abandon", seq);
        }
        cpage_raw(c, "</td></tr>\n");
    }
    json_decref(e);
    return 0;
}

static int usage_row(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct cpage_scan *us = arg;
    struct console *c = us->c;
    json_t *u = json_loadb(val, vlen, 0, NULL);
    if (!u)
        return 0;
    cpage_raw(c, "<tr>");
    cpage_td(c, cj_str(u, "dimension", NULL));
    cpage_td_time(c, json_integer_value(json_object_get(u, "hour_s")) * 1000);
    cpage_td_json(c, json_object_get(u, "reported"));
    cpage_td_json(c, json_object_get(u, "quantity"));
    cpage_td(c, cj_str(u, "state", NULL));
    cpage_td_json(c, json_object_get(u, "attempts"));
    cpage_td(c, cj_str(u, "result", NULL));
    cpage_raw(c, "</tr>\n");
    json_decref(u);
    us->rows++;
    return 0;
}

/* The rule's timers (ctx.timer): when each fires and with what, and a way to cancel one. */
static void timers_table(struct console *c, const char *id)
{
    json_t *timers = admin_timers_of_sub(c->d, id), *t;
    size_t i;
    cpage_raw(c, "<h2>Timers</h2>\n<table id=\"timers\"><tr><th>Name</th><th>Due</th><th class=\"num\">Attempts</th>"
                 "<th>Data</th><th></th></tr>\n");
    json_array_foreach(timers, i, t) {
        char *data = json_dumps(json_object_get(t, "data"), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (data && strlen(data) > 120)
            strcpy(data + 117, "..."); /* a summary: the whole value is in GET /admin/timers */
        cpage_raw(c, "<tr>");
        cpage_td(c, cj_str(t, "name", NULL));
        cpage_td_time(c, json_integer_value(json_object_get(t, "due_s")) * 1000);
        cpage_td_json(c, json_object_get(t, "attempts"));
        cpage_raw(c, "<td class=\"mono\">");
        cpage_text(c, data);
        cpage_raw(c, "</td><td><a class=\"button\" href=\"");
        sub_link(c, id);
        cpage_raw(c, "/confirm?action=cancel-timer&amp;value=");
        cpage_url(c, cj_str(t, "name", NULL));
        cpage_raw(c, "\">Cancel&hellip;</a></td></tr>\n");
        free(data);
    }
    if (!json_array_size(timers))
        cpage_raw(c, "<tr><td colspan=\"5\" class=\"muted\">None: no rule timer is set for this subscription.</td></tr>\n");
    cpage_raw(c, "</table>\n");
    json_decref(timers);
}

static void action_forms(struct console *c, const char *id, json_t *rec)
{
    struct sub_view v;
    sub_view_of(rec, &v);
    cpage_raw(c, "<h2>Actions</h2>\n<div class=\"card\">");
    if (v.status && !strcmp(v.status, "Unsubscribed")) {
        cpage_raw(c, "<span class=\"muted\">None: the subscription is cancelled.</span></div>\n");
        return;
    }
    if (v.decision && !strcmp(v.decision, "pending")) {
        cpage_raw(c, "<a class=\"button primary\" href=\"");
        sub_link(c, id);
        cpage_raw(c, "/confirm?action=activate\">Activate (approve the purchase)&hellip;</a> ");
    }
    const char *fields[][3] = {{"plan", "New plan", "text"}, {"quantity", "Seats", "number"}};
    for (int i = 0; i < 2; i++) {
        cpage_raw(c, "<form method=\"get\" class=\"inline\" action=\"");
        sub_link(c, id);
        cpage_raw(c, "/confirm\"><input type=\"hidden\" name=\"action\" value=\"%s\"> <input name=\"value\" "
                     "type=\"%s\" placeholder=\"%s\" required%s> <button type=\"submit\">%s&hellip;</button></form> ",
                  fields[i][0], fields[i][2], fields[i][1], i ? " min=\"1\"" : "", i ? "Change seats" : "Change plan");
    }
    cpage_raw(c, "<a class=\"button\" href=\"");
    sub_link(c, id);
    cpage_raw(c, "/confirm?action=cancel\">Cancel subscription&hellip;</a></div>\n");
}

void console_subscription(struct console *c, const char *id)
{
    json_t *rec = NULL;
    if (record_get_sub(c->d, id, &rec) != 0) {
        cpage_message(c, 404, "Unknown subscription", "saasd has no record of this subscription.", "/console/subscriptions",
                      "Subscriptions");
        return;
    }
    cpage_begin(c, "Subscription", "subscriptions");
    cpage_raw(c, "<p class=\"mono\">");
    cpage_text(c, id);
    cpage_raw(c, "</p>\n");
    both_views(c, rec);
    action_forms(c, id, rec);

    cpage_raw(c, "<h2>Audit trail</h2>\n<table><tr><th>Time</th><th>Action</th><th>Decision</th><th>Detail</th>"
                 "<th>Rule file</th><th>Rule SHA-256</th><th>Gen.</th><th>Operation</th></tr>\n");
    store_scan(c->d->store, STORE_AUDIT, id, strlen(id), audit_row, c);
    cpage_raw(c, "</table>\n");

    struct pending_scan p = {.c = c, .id = id, .source = "inbox"};
    cpage_raw(c, "<h2>Events not finished</h2>\n<table><tr><th>Queue</th><th>Action</th><th>Received</th>"
                 "<th class=\"num\">Attempts</th><th>Last error</th><th>Next try</th><th></th></tr>\n");
    store_scan(c->d->store, STORE_INBOX, NULL, 0, pending_row, &p);
    p.source = "outbox";
    store_scan(c->d->store, STORE_OUTBOX, NULL, 0, pending_row, &p);
    if (!p.rows)
        cpage_raw(c, "<tr><td colspan=\"7\" class=\"muted\">None: every event of this subscription is done.</td></tr>\n");
    cpage_raw(c, "</table>\n");

    timers_table(c, id);

    cpage_raw(c, "<h2>Metered usage</h2>\n<table><tr><th>Dimension</th><th>Hour</th><th>Reported</th><th>Billable</th>"
                 "<th>State</th><th>Attempts</th><th>Result</th></tr>\n");
    char prefix[200];
    size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%s", id) + 1; /* id and its NUL */
    struct cpage_scan us = {.c = c};
    if (plen < sizeof prefix)
        store_scan(c->d->store, STORE_USAGE, prefix, plen, usage_row, &us);
    if (!us.rows)
        cpage_raw(c, "<tr><td colspan=\"7\" class=\"muted\">None: no usage reported for this subscription "
                     "(POST /admin/usage).</td></tr>\n");
    cpage_raw(c, "</table>\n");
    json_decref(rec);
    cpage_end(c, 200);
}

/* ---- confirmation and action ---- */

void console_confirm(struct console *c, const char *id)
{
    const struct action *a = action_named(httpd_query(c->req, "action"));
    const char *value = httpd_query(c->req, "value");
    json_t *rec = NULL;
    if (!a || (a->needs_value && (!value || !*value))) {
        cpage_message(c, 400, "Nothing to confirm", "Unknown action, or it needs a value.", "/console/subscriptions",
                      "Subscriptions");
        return;
    }
    if (record_get_sub(c->d, id, &rec) != 0) {
        cpage_message(c, 404, "Unknown subscription", "saasd has no record of this subscription.", "/console/subscriptions",
                      "Subscriptions");
        return;
    }
    struct sub_view v;
    sub_view_of(rec, &v);
    cpage_begin(c, a->question, "subscriptions");
    cpage_raw(c, "<div class=\"card narrow\"><p>");
    cpage_text(c, a->explain);
    cpage_raw(c, "</p><table><tr><th>Subscription</th><td class=\"mono\">");
    cpage_text(c, id);
    cpage_raw(c, "</td></tr><tr><th>Offer / plan</th>");
    cpage_raw(c, "<td>");
    cpage_pair(c, v.offer, v.plan);
    cpage_raw(c, "</td></tr><tr><th>Purchaser</th>");
    cpage_td(c, v.email);
    cpage_raw(c, "</tr>");
    if (a->needs_value) {
        cpage_raw(c, "<tr><th>%s</th>", a->value_label);
        cpage_td(c, value);
        cpage_raw(c, "</tr>");
    }
    cpage_raw(c, "</table>\n<form method=\"post\" action=\"");
    sub_link(c, id);
    cpage_raw(c, "/action\">");
    cpage_csrf(c);
    cpage_raw(c, "<input type=\"hidden\" name=\"action\" value=\"%s\"><input type=\"hidden\" name=\"value\" value=\"",
              a->name);
    cpage_text(c, value);
    cpage_raw(c, "\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">"
                 "<p><button type=\"submit\" id=\"confirm\"%s>Yes, %s</button> <a class=\"button\" href=\"",
              a->danger ? " class=\"danger\"" : "", a->yes);
    sub_link(c, id);
    cpage_raw(c, "\">No, go back</a></p></form></div>\n");
    json_decref(rec);
    cpage_end(c, 200);
}

static int run_action(struct console *c, const char *id, const struct action *a, const char *value,
                      struct flow_outcome *out)
{
    json_t *op = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    if (a->kind == ACT_TIMER) { /* takes the subscription's lock itself */
        rc = admin_timer_cancel(c->d, id, value, "console", NULL);
        out->decision = rc ? NULL : "cancelled";
        snprintf(out->message, sizeof out->message, "%s", rc == SAASD_ENOTFOUND ? "no such timer (fired or cancelled "
                                                                                   "already?)" : "");
        return rc;
    }
    if (a->kind == ACT_OUTBOX) {
        struct httpd_response r = {0};
        admin_outbox_action(c->d, value, a->change, &r);
        rc = r.status == 200 ? 0 : r.status == 404 ? SAASD_ENOTFOUND : SAASD_EINTERNAL;
        out->decision = rc ? NULL : a->change;
        snprintf(out->message, sizeof out->message, "%s", rc ? "the outbox entry could not be changed" : "");
        httpd_response_clear(&r);
        return rc;
    }
    daemon_lock_sub(c->d, id);
    if (a->kind == ACT_ACTIVATE)
        rc = flow_activate_pending(c->d, id, out);
    else
        rc = flow_publisher_change(c->d, id, a->change, value ? value : "", &op, out);
    daemon_unlock_sub(c->d, id);
    json_decref(op);
    return rc;
}

void console_action(struct console *c, const char *id)
{
    char *name = NULL, *value = NULL, *confirm = NULL, back[400];
    httpd_form_value(c->req, "action", &name);
    httpd_form_value(c->req, "value", &value);
    httpd_form_value(c->req, "confirm", &confirm);
    const struct action *a = action_named(name);
    snprintf(back, sizeof back, "/console/subscriptions/%s", id);
    if (!a || (a->needs_value && (!value || !*value)) || !confirm || strcmp(confirm, "yes")) {
        cpage_message(c, 400, "Not done", "An action must be confirmed on its confirmation page first.", back,
                      "Back to the subscription");
    } else {
        struct flow_outcome out;
        int rc = run_action(c, id, a, value, &out);
        log_info("console", "operator action", "sub_id", id, "action", a->name, "result",
                 rc ? saasd_strerror(rc) : out.decision ? out.decision : "done");
        char msg[800];
        snprintf(msg, sizeof msg, "%s%s%s", rc ? saasd_strerror(rc) : out.decision ? out.decision : "done",
                 out.message[0] ? ": " : "", out.message);
        cpage_message(c, rc ? (rc == SAASD_ENOTFOUND ? 404 : rc == SAASD_ECONFLICT ? 409 : 502) : 200,
                      rc ? "Not done" : "Done", msg, back, "Back to the subscription");
    }
    free(name);
    free(value);
    free(confirm);
}
