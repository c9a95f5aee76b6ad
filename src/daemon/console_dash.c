/* The console's dashboard: counts by status and offer, purchases and cancellations per day, webhook
 * events and rule decisions per hour, as numbers and server-rendered SVG bars. Counted over at most
 * CONSOLE_SCAN_CAP subscriptions and audit records (the page says when it stopped there). */
#include "daemon/console_internal.h"
#include "daemon/daemon.h"

#include "core/store.h"

#include <string.h>
#include <time.h>

#define DAYS 14
#define HOURS 24

struct dash {
    size_t subs, audits;
    int capped_subs, capped_audit;
    json_t *by_status, *by_offer; /* name -> count */
    int purchases[DAYS], cancels[DAYS], webhooks[HOURS], decisions[HOURS];
    int64_t now;
};

static void bump(json_t *counts, const char *key)
{
    json_t *n = json_object_get(counts, key ? key : "(none)");
    json_object_set_new(counts, key ? key : "(none)", json_integer(n ? json_integer_value(n) + 1 : 1));
}

/* Index of the bucket ms falls in, counting back from now (0 = the current one), or -1. */
static int back(int64_t now, int64_t ms, int64_t width, int n)
{
    if (ms <= 0 || ms > now)
        return -1;
    int64_t i = (now / width) - (ms / width);
    return i < n ? (int)(n - 1 - i) : -1;
}

static int dash_sub(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct dash *s = arg;
    if (s->subs++ >= CONSOLE_SCAN_CAP) {
        s->capped_subs = 1;
        return 1;
    }
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    struct sub_view v;
    sub_view_of(rec, &v);
    bump(s->by_status, v.decision && !strcmp(v.decision, "pending") ? "waiting for approval" : v.status);
    bump(s->by_offer, v.offer);
    int64_t bought = sub_activation_deadline(rec);
    int i = bought ? back(s->now, bought - 30LL * 86400000, 86400000, DAYS) : -1;
    if (i >= 0)
        s->purchases[i]++;
    if (v.status && !strcmp(v.status, "Unsubscribed") &&
        (i = back(s->now, json_integer_value(json_object_get(rec, "ms_seen_ms")), 86400000, DAYS)) >= 0)
        s->cancels[i]++;
    json_decref(rec);
    return 0;
}

/* Audit entries with an operation id came from Microsoft's webhooks; those with a rule hash are
 * rule decisions. */
static int dash_audit(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct dash *s = arg;
    if (s->audits++ >= CONSOLE_SCAN_CAP) {
        s->capped_audit = 1;
        return 1;
    }
    json_t *a = json_loadb(val, vlen, 0, NULL);
    int i = back(s->now, json_integer_value(json_object_get(a, "time_ms")), 3600000, HOURS);
    const char *op = cj_str(a, "op_id", NULL);
    if (i >= 0 && op && *op)
        s->webhooks[i]++;
    if (i >= 0 && json_object_get(a, "rule_sha256"))
        s->decisions[i]++;
    json_decref(a);
    return 0;
}

static void counts_table(struct console *c, const char *title, json_t *counts)
{
    const char *k;
    json_t *n;
    cpage_raw(c, "<div class=\"card\"><h2>%s</h2><table><tr><th>%s</th><th class=\"num\">Subscriptions</th></tr>", title,
              strstr(title, "offer") ? "Offer" : "Status");
    json_object_foreach(counts, k, n) {
        cpage_raw(c, "<tr>");
        cpage_td(c, k);
        cpage_raw(c, "<td class=\"num\">%lld</td></tr>", (long long)json_integer_value(n));
    }
    if (!json_object_size(counts))
        cpage_raw(c, "<tr><td colspan=\"2\" class=\"muted\">No subscriptions yet.</td></tr>");
    cpage_raw(c, "</table></div>\n");
}

/* A bar chart of n values; label(i) under every few bars. */
static void bars(struct console *c, const char *title, const int *v, int n, int64_t now, int64_t width)
{
    int max = 1, total = 0;
    for (int i = 0; i < n; i++) {
        max = v[i] > max ? v[i] : max;
        total += v[i];
    }
    const int W = 480, H = 120, bw = W / n;
    cpage_raw(c, "<div class=\"card\"><h2>%s <span class=\"muted\">(%d)</span></h2>"
                 "<svg class=\"bars\" role=\"img\" viewBox=\"0 0 %d %d\">",
              title, total, W, H + 30);
    for (int i = 0; i < n; i++) {
        int h = v[i] * H / max;
        cpage_raw(c, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#4ea1f3\"><title>%d</title></rect>",
                  i * bw + 2, H - h, bw - 4, h, v[i]);
        if (v[i])
            cpage_raw(c, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>", i * bw + bw / 2, H - h - 2, v[i]);
        int step = n / 6 ? n / 6 : 1; /* a label every step bars, and one under the last bar */
        if ((i % step == 0 && n - 1 - i >= step / 2 + 1) || i == n - 1) {
            char label[32];
            time_t t = (time_t)((now - (int64_t)(n - 1 - i) * width) / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            if (width >= 86400000) /* days, else hours */
                strftime(label, sizeof label, "%d %b", &tm);
            else
                strftime(label, sizeof label, "%H:00", &tm);
            cpage_raw(c, "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\">%s</text>", !i ? 0 : i == n - 1 ? W : i * bw + bw / 2,
                      H + 16, !i ? "start" : i == n - 1 ? "end" : "middle", label);
        }
    }
    cpage_raw(c, "</svg></div>\n");
}

void console_dashboard(struct console *c)
{
    struct dash s = {.by_status = json_object(), .by_offer = json_object(), .now = now_ms()};
    size_t total = 0;
    store_count(c->d->store, STORE_SUBSCRIPTIONS, &total);
    store_scan(c->d->store, STORE_SUBSCRIPTIONS, NULL, 0, dash_sub, &s);
    store_scan(c->d->store, STORE_AUDIT, NULL, 0, dash_audit, &s);
    size_t inbox = 0, outbox = 0;
    store_count(c->d->store, STORE_INBOX, &inbox);
    store_count(c->d->store, STORE_OUTBOX, &outbox);
    cpage_begin(c, "Dashboard", "dashboard");
    cpage_raw(c, "<div class=\"grid\"><div class=\"card\"><div class=\"muted\">Subscriptions</div><div class=\"stat\">%zu"
                 "</div></div><div class=\"card\"><div class=\"muted\">Webhook events not processed yet</div>"
                 "<div class=\"stat\">%zu</div></div><div class=\"card\"><div class=\"muted\">Events waiting for a retry"
                 "</div><div class=\"stat\"><a href=\"/console/queues\">%zu</a></div></div></div>\n",
              total, inbox, outbox);
    if (s.capped_subs || s.capped_audit)
        cpage_raw(c, "<p class=\"flash\">Counted over the first %d subscriptions and audit records.</p>\n",
                  CONSOLE_SCAN_CAP);
    cpage_raw(c, "<div class=\"grid\">");
    counts_table(c, "By status", s.by_status);
    counts_table(c, "By offer", s.by_offer);
    cpage_raw(c, "</div><div class=\"grid\">");
    bars(c, "Purchases per day", s.purchases, DAYS, s.now, 86400000);
    bars(c, "Cancellations per day", s.cancels, DAYS, s.now, 86400000);
    bars(c, "Webhook events per hour", s.webhooks, HOURS, s.now, 3600000);
    bars(c, "Rule decisions per hour", s.decisions, HOURS, s.now, 3600000);
    cpage_raw(c, "</div>\n");
    json_decref(s.by_status);
    json_decref(s.by_offer);
    cpage_end(c, 200);
}
