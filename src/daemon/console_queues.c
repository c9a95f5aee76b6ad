/* The console's work queues (purchases waiting for approval with their activation deadline,
 * events stuck in the outbox, drift, usage not sent or refused) and the rules page. Each list
 * reads at most CONSOLE_SCAN_CAP records and says so when it stopped there. */
#include "daemon/console_internal.h"
#include "daemon/daemon.h"
#include "daemon/sinks.h"

#include "core/store.h"
#include "engine/engine.h"

#include <string.h>

#define QUEUE_ROWS 200

struct queue_scan {
    struct console *c;
    size_t examined;
    int capped;
    json_t *pending, *drift; /* records, at most QUEUE_ROWS each */
};

static int queue_sub(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct queue_scan *q = arg;
    if (q->examined++ >= CONSOLE_SCAN_CAP) {
        q->capped = 1;
        return 1;
    }
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    struct sub_view v;
    sub_view_of(rec, &v);
    if (v.decision && !strcmp(v.decision, "pending") && json_array_size(q->pending) < QUEUE_ROWS)
        json_array_append(q->pending, rec);
    if (v.drift && json_array_size(q->drift) < QUEUE_ROWS)
        json_array_append(q->drift, rec);
    json_decref(rec);
    return 0;
}

static void pending_table(struct console *c, json_t *list)
{
    size_t i;
    json_t *rec;
    char when[40], left[64];
    int64_t now = now_ms();
    cpage_raw(c, "<h2>Purchases waiting for approval</h2>\n<table><tr><th>Subscription</th><th>Offer</th><th>Plan</th>"
                 "<th>Purchaser</th><th>Activate by</th><th>Time left</th></tr>\n");
    json_array_foreach(list, i, rec) {
        struct sub_view v;
        sub_view_of(rec, &v);
        int64_t deadline = sub_activation_deadline(rec);
        long long hours = deadline ? (deadline - now) / 3600000 : 0;
        if (!deadline)
            snprintf(left, sizeof left, "unknown");
        else if (hours < 0)
            snprintf(left, sizeof left, "<span class=\"tag drift\">passed</span>");
        else
            snprintf(left, sizeof left, "%s%lld days %lld h%s", hours < 5 * 24 ? "<span class=\"tag drift\">" : "",
                     hours / 24, hours % 24, hours < 5 * 24 ? "</span>" : "");
        cpage_raw(c, "<tr>");
        cpage_sub_cell(c, v.id);
        cpage_td(c, v.offer);
        cpage_td(c, v.plan);
        cpage_td(c, v.email);
        cpage_raw(c, "<td>%s</td><td>%s</td></tr>\n", cpage_time(deadline, when, sizeof when), left);
    }
    cpage_table_end(c, json_array_size(list) > 0, 6);
}

static void drift_table(struct console *c, json_t *list)
{
    size_t i;
    json_t *rec;
    cpage_raw(c, "<h2>Drift</h2>\n<p class=\"muted\">saasd's state differs from Microsoft's last known view, or "
                 "reconciliation found the subscription missing at Microsoft. Each repair a reconciliation pass made is "
                 "in the subscription's audit trail (action Reconcile).</p>\n<table><tr><th>Subscription</th>"
                 "<th>saasd</th><th>Microsoft</th><th>Plan (saasd / Microsoft)</th><th>Seats (saasd / Microsoft)</th></tr>\n");
    json_array_foreach(list, i, rec) {
        struct sub_view v;
        sub_view_of(rec, &v);
        cpage_raw(c, "<tr>");
        cpage_sub_cell(c, v.id);
        cpage_td(c, v.status);
        cpage_td(c, json_is_true(json_object_get(rec, "missing_at_microsoft")) ? "(missing)" : v.ms_status);
        cpage_raw(c, "<td>");
        cpage_pair(c, v.plan, v.ms_plan);
        cpage_raw(c, "</td><td>%lld / %lld</td></tr>\n", v.seats, v.ms_seats);
    }
    cpage_table_end(c, json_array_size(list) > 0, 5);
}

static int outbox_row(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct cpage_scan *s = arg;
    struct console *c = s->c;
    unsigned long long seq = cpage_key_seq(key, klen);
    json_t *e = json_loadb(val, vlen, 0, NULL);
    const char *sub = cj_str(e, "sub_id", NULL);
    if (e && sub) {
        cpage_raw(c, "<tr><td>#%llu</td>", seq);
        cpage_sub_cell(c, sub);
        cpage_td(c, cj_str(e, "action", NULL));
        cpage_td_json(c, json_object_get(e, "attempts"));
        cpage_td(c, cj_str(e, "last_error", NULL));
        cpage_td_time(c, json_integer_value(json_object_get(e, "next_at_ms")));
        cpage_raw(c, "<td>");
        cpage_outbox_button(c, sub, "retry", "Retry now", seq);
        cpage_outbox_button(c, sub, "abandon", "Abandon", seq);
        cpage_raw(c, "</td></tr>\n");
    }
    json_decref(e);
    return ++s->rows >= QUEUE_ROWS;
}

static int usage_row(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct cpage_scan *s = arg;
    struct console *c = s->c;
    if (memmem(val, vlen, "\"state\":\"sent\"", 14) || memmem(val, vlen, "\"state\":\"folded\"", 16))
        return 0;
    json_t *u = json_loadb(val, vlen, 0, NULL);
    if (!u)
        return 0;
    cpage_raw(c, "<tr>");
    cpage_sub_cell(c, cj_str(u, "sub_id", NULL));
    cpage_td(c, cj_str(u, "dimension", NULL));
    cpage_td_time(c, json_integer_value(json_object_get(u, "hour_s")) * 1000);
    cpage_td_json(c, json_object_get(u, "quantity"));
    cpage_td(c, cj_str(u, "state", NULL));
    cpage_td_json(c, json_object_get(u, "attempts"));
    cpage_td(c, cj_str(u, "result", NULL));
    cpage_raw(c, "</tr>\n");
    json_decref(u);
    return ++s->rows >= QUEUE_ROWS;
}

/* Delivery state of the event sinks (sinks_status): one row a sink, with a failing sink's
 * actions (retry now, skip the event it keeps failing on: console_sinks.c). */
static void sinks_table(struct console *c)
{
    json_t *list = NULL;
    size_t i;
    json_t *k;
    cpage_raw(c, "<h2>Event sinks</h2>\n<table><tr><th>Sink</th><th>Kind</th><th class=\"num\">Delivered</th>"
                 "<th class=\"num\">Pending</th><th>Failing since</th><th>Last error</th><th></th></tr>\n");
    int rows = 0;
    if (sinks_status(c->d, &list) == 0)
        json_array_foreach(list, i, k) {
            cpage_raw(c, "<tr>");
            cpage_td_json(c, json_object_get(k, "name"));
            cpage_td_json(c, json_object_get(k, "kind"));
            cpage_raw(c, "<td class=\"num\">%lld</td><td class=\"num\">%lld</td>",
                      (long long)json_integer_value(json_object_get(k, "delivered")),
                      (long long)json_integer_value(json_object_get(k, "pending")));
            cpage_td_json(c, json_object_get(k, "failing_since"));
            cpage_td_json(c, json_object_get(k, "last_error"));
            cpage_raw(c, "<td>");
            cpage_sink_buttons(c, k);
            cpage_raw(c, "</td></tr>\n");
            rows++;
        }
    json_decref(list);
    cpage_table_end(c, rows, 7);
}

void console_queues(struct console *c)
{
    struct queue_scan q = {.c = c, .pending = json_array(), .drift = json_array()};
    store_scan(c->d->store, STORE_SUBSCRIPTIONS, NULL, 0, queue_sub, &q);
    cpage_begin(c, "Queues", "queues");
    if (q.capped)
        cpage_raw(c, "<p class=\"flash\">The first %d subscriptions were examined for these lists; the "
                     "<a href=\"/console/subscriptions?status=pending\">subscription list</a> pages through all of them.</p>\n",
                  CONSOLE_SCAN_CAP);
    pending_table(c, q.pending);

    struct cpage_scan s = {.c = c};
    cpage_raw(c, "<h2>Events waiting for a retry (outbox)</h2>\n<table><tr><th>Entry</th><th>Subscription</th>"
                 "<th>Action</th><th class=\"num\">Attempts</th><th>Last error</th><th>Next try</th><th></th></tr>\n");
    store_scan(c->d->store, STORE_OUTBOX, NULL, 0, outbox_row, &s);
    cpage_table_end(c, s.rows, 7);

    drift_table(c, q.drift);

    s.rows = 0;
    cpage_raw(c, "<h2>Usage not sent yet, or refused</h2>\n<table><tr><th>Subscription</th><th>Dimension</th>"
                 "<th>Hour</th><th>Quantity</th><th>State</th><th>Attempts</th><th>Result</th></tr>\n");
    store_scan(c->d->store, STORE_USAGE, NULL, 0, usage_row, &s);
    cpage_table_end(c, s.rows, 7);
    sinks_table(c);
    json_decref(q.pending);
    json_decref(q.drift);
    cpage_end(c, 200);
}

void console_rules(struct console *c)
{
    struct engine_info *info = NULL;
    if (engine_info(c->d->engine, &info) != 0) {
        cpage_message(c, 500, "Rules", "The rule engine did not answer.", "/console", "Dashboard");
        return;
    }
    cpage_begin(c, "Rules", "rules");
    cpage_raw(c, "<div class=\"grid\"><div class=\"card\"><div class=\"muted\">Serving generation</div><div class=\"stat\">"
                 "%llu</div></div><div class=\"card\"><div class=\"muted\">Reloads</div><div class=\"stat\">%llu ok, "
                 "%llu failed</div></div><div class=\"card\"><div class=\"muted\">Generations alive / rule workers</div>"
                 "<div class=\"stat\">%ld / %ld</div></div></div>\n",
              (unsigned long long)info->generation, (unsigned long long)info->reloads_ok,
              (unsigned long long)info->reloads_failed, info->live_generations, info->live_states);
    char when[40];
    cpage_raw(c, "<h2>Last load or reload</h2>\n<p class=\"flash%s\">%s (%s)</p>\n", info->last_load_rc ? " bad" : " good",
              info->last_load_rc ? "Failed: rules NOT changed, the generation above keeps serving." : "Loaded.",
              cpage_time(info->last_load_at * 1000, when, sizeof when));
    if (info->last_load_problems) {
        cpage_raw(c, "<pre class=\"card mono\">");
        cpage_text(c, info->last_load_problems); /* file:line: message, one a line */
        cpage_raw(c, "</pre>\n");
    }
    cpage_raw(c, "<h2>Serving rule files</h2>\n");
    cpage_raw(c, "<table><tr><th>Offer</th><th>File</th><th>SHA-256</th></tr>\n");
    for (size_t i = 0; i < info->nrules; i++) {
        cpage_raw(c, "<tr>");
        cpage_td(c, info->rules[i].offer_id);
        cpage_td(c, info->rules[i].file);
        cpage_raw(c, "<td class=\"mono\">");
        cpage_text(c, info->rules[i].sha256);
        cpage_raw(c, "</td></tr>\n");
    }
    cpage_raw(c, "</table>\n");
    engine_info_free(info);
    cpage_end(c, 200);
}
