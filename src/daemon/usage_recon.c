/* Usage reconciliation (§7.5): what saasd sent against what Microsoft's usage query recorded,
 * per UTC day, subscription and dimension. The sent hours of a day are added up locally and
 * compared with Microsoft's rows (submittedQuantity); each difference is logged and counted
 * in saasd_drift_total{kind="usage_missing|usage_mismatch|usage_unknown"}. Apart from the
 * quantities, a row whose reconStatus says Microsoft does not bill it (Rejected, ...) is
 * reported with its status (kind="usage_not_accepted"). Nothing is repaired:
 * the store keeps what saasd sent, and an operator decides what a difference means.
 * Runs on demand (admin API, CLI). */
#include "daemon/daemon.h"
#include "daemon/metering.h"

#include "core/err.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/mp_client.h"
#include "core/store.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DAY_S 86400
#define TOLERANCE 1e-6

/* Both sides added up per (day, subscription, dimension) of the window. */
struct tally {
    json_t *groups;    /* "day|sub|dim" -> {subscriptionId, dimension, day, saasd, microsoft, in_saasd,
                        * in_microsoft, skip} */
    char from_day[16]; /* first day of the window, YYYY-MM-DD */
    int64_t from_s;
    int64_t fresh_ms; /* buckets sent after this are too recent to compare */
    struct usage_recon *out;
    int rc;
};

/* §7.5 reconStatus: whether Microsoft bills the row (or will: Submitted is not processed yet),
 * and what a row it does not bill tells the operator. A value not listed is reported as
 * unknown to the contract; a row without one is not judged. */
static const struct {
    const char *status;
    int billed;
    const char *meaning;
} recon_statuses[] = {
    {"Accepted", 1, "matched"},
    {"Submitted", 1, "not yet processed by Partner Center analytics"},
    {"Rejected", 0, "dropped in Microsoft's pipeline: open a ticket with Microsoft"},
    {"Mismatch", 0, "Microsoft's processed quantity differs from the submitted one"},
    {"TestHeaders", 0, "usage of a test subscription: not billed"},
    {"DryRun", 0, "sent in DryRun session mode: not billed"},
};

/* NULL when the status means billed, else what it means. */
static const char *not_billed(const char *status)
{
    for (size_t i = 0; i < sizeof recon_statuses / sizeof recon_statuses[0]; i++)
        if (!strcasecmp(recon_statuses[i].status, status)) /* read as leniently as the rest of the row */
            return recon_statuses[i].billed ? NULL : recon_statuses[i].meaning;
    return "a reconStatus the contract does not list";
}

/* A row Microsoft does not bill: logged, counted and listed in out->not_accepted. */
static int note_status(struct usage_recon *out, json_t *row, const char *sub, const char *dim, const char *day,
                       const char *status, const char *meaning)
{
    double q = 0;
    char plan[128] = "", quantity[32];
    jl_real(row, "submittedQuantity", &q);
    jl_string(row, "planId", plan, sizeof plan);
    snprintf(quantity, sizeof quantity, "%g", q);
    reconcile_count_drift("usage_not_accepted");
    log_warn("metering", "Microsoft does not bill a usage row", "kind", "usage_not_accepted", "sub_id", sub,
             "dimension", dim, "day", day, "reconStatus", status, "microsoft", quantity, "meaning", meaning);
    json_t *item = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:s}", "subscriptionId", sub, "dimension", dim, "day", day,
                             "planId", plan, "reconStatus", status, "microsoft", q, "meaning", meaning);
    return item && json_array_append_new(out->not_accepted, item) == 0 ? 0 : SAASD_ENOMEM;
}

static void day_of(int64_t epoch_s, char out[16])
{
    time_t t = (time_t)epoch_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* The group of (day, sub, dim), created empty when new; NULL when out of memory. Borrowed. */
static json_t *group(struct tally *t, const char *day, const char *sub, const char *dim)
{
    char key[512];
    snprintf(key, sizeof key, "%s|%s|%s", day, sub, dim);
    json_t *g = json_object_get(t->groups, key);
    if (g)
        return g;
    g = json_pack("{s:s, s:s, s:s, s:f, s:f, s:b, s:b, s:b}", "subscriptionId", sub, "dimension", dim, "day", day,
                  "saasd", 0.0, "microsoft", 0.0, "in_saasd", 0, "in_microsoft", 0, "skip", 0);
    if (g && json_object_set_new(t->groups, key, g) != 0)
        g = NULL;
    return g;
}

static void add_to(json_t *g, const char *side, double quantity)
{
    char present[32];
    snprintf(present, sizeof present, "in_%s", side);
    json_object_set_new(g, side, json_real(json_number_value(json_object_get(g, side)) + quantity));
    json_object_set_new(g, present, json_true());
}

/* A sent bucket of the window adds to its day; a bucket being sent, or sent less than the lag
 * ago, leaves its whole day out (Microsoft may not show it yet). */
static int add_bucket(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct tally *t = arg;
    json_t *b = json_loadb(val, vlen, 0, NULL);
    const char *state = json_string_value(json_object_get(b, "state"));
    const char *sub = json_string_value(json_object_get(b, "sub_id"));
    const char *dim = json_string_value(json_object_get(b, "dimension"));
    int64_t hour = json_integer_value(json_object_get(b, "hour_s"));
    int sent = state && !strcmp(state, "sent"), sending = state && !strcmp(state, "sending");
    if (sub && dim && (sent || sending) && hour >= t->from_s) {
        /* Buckets sent before sent_ms was recorded: the end of their hour is the earliest they went. */
        json_t *at = json_object_get(b, "sent_ms");
        int64_t sent_ms = at ? json_integer_value(at) : (hour + 3600) * 1000;
        char day[16];
        day_of(hour, day);
        json_t *g = group(t, day, sub, dim);
        if (!g)
            t->rc = SAASD_ENOMEM;
        else if (sending || sent_ms > t->fresh_ms)
            json_object_set_new(g, "skip", json_true());
        else
            add_to(g, "saasd", json_number_value(json_object_get(b, "quantity")));
    }
    json_decref(b);
    return t->rc;
}

/* Microsoft's rows: one per day, resource and dimension (a day may come in several rows,
 * e.g. one per plan: they add up). A row's reconStatus is judged on its own, lag or not: it is
 * Microsoft's verdict on what it has. */
static int add_rows(struct tally *t, json_t *rows)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        char sub[128], dim[128], date[64], status[64];
        double q = 0;
        if (jl_string(row, "usageResourceId", sub, sizeof sub) || jl_string(row, "dimension", dim, sizeof dim) ||
            jl_string(row, "usageDate", date, sizeof date) || strlen(date) < 10)
            continue;
        date[10] = 0; /* "2026-11-24T00:00:00Z" -> its day */
        if (strcmp(date, t->from_day) < 0)
            continue;
        jl_real(row, "submittedQuantity", &q);
        json_t *g = group(t, date, sub, dim);
        if (!g)
            return SAASD_ENOMEM;
        add_to(g, "microsoft", q);
        const char *meaning = jl_string(row, "reconStatus", status, sizeof status) == SAASD_ENOTFOUND
                                  ? NULL
                                  : not_billed(status);
        int rc = meaning ? note_status(t->out, row, sub, dim, date, status, meaning) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

static const char *difference(json_t *g)
{
    if (!json_is_true(json_object_get(g, "in_microsoft")))
        return "missing";
    if (!json_is_true(json_object_get(g, "in_saasd")))
        return "unknown";
    double ours = json_number_value(json_object_get(g, "saasd"));
    double theirs = json_number_value(json_object_get(g, "microsoft"));
    return fabs(ours - theirs) > TOLERANCE ? "mismatch" : NULL;
}

static int note_difference(struct usage_recon *out, json_t *g, const char *kind)
{
    char metric[32], ours[32], theirs[32];
    snprintf(metric, sizeof metric, "usage_%s", kind);
    snprintf(ours, sizeof ours, "%g", json_number_value(json_object_get(g, "saasd")));
    snprintf(theirs, sizeof theirs, "%g", json_number_value(json_object_get(g, "microsoft")));
    reconcile_count_drift(metric);
    log_warn("metering", "usage differs from Microsoft's record", "kind", metric, "sub_id",
             json_string_value(json_object_get(g, "subscriptionId")), "dimension",
             json_string_value(json_object_get(g, "dimension")), "day", json_string_value(json_object_get(g, "day")),
             "saasd", ours, "microsoft", theirs);
    json_t *list = !strcmp(kind, "missing") ? out->missing : !strcmp(kind, "unknown") ? out->unknown : out->mismatch;
    json_t *item = json_pack("{s:O, s:O, s:O, s:O, s:O}", "subscriptionId", json_object_get(g, "subscriptionId"),
                             "dimension", json_object_get(g, "dimension"), "day", json_object_get(g, "day"), "saasd",
                             json_object_get(g, "saasd"), "microsoft", json_object_get(g, "microsoft"));
    return item && json_array_append_new(list, item) == 0 ? 0 : SAASD_ENOMEM;
}

void usage_recon_clear(struct usage_recon *r)
{
    json_decref(r->missing);
    json_decref(r->mismatch);
    json_decref(r->unknown);
    json_decref(r->not_accepted);
    memset(r, 0, sizeof *r);
}

int metering_reconcile(struct daemon *d, int days, int lag_s, struct usage_recon *out)
{
    memset(out, 0, sizeof *out);
    if (days < 1 || days > 7 || lag_s < 0)
        return SAASD_EINVAL;
    int64_t now = now_ms();
    int64_t today = now / 1000 / DAY_S * DAY_S;
    struct tally t = {.groups = json_object(), .from_s = today - (int64_t)(days - 1) * DAY_S,
                      .fresh_ms = now - (int64_t)lag_s * 1000, .out = out};
    char to_day[16];
    day_of(t.from_s, t.from_day);
    day_of(today, to_day);
    struct mp_usage_query q = {.start = t.from_day, .end = to_day};
    struct mp_result mr = {0};
    out->missing = json_array();
    out->mismatch = json_array();
    out->unknown = json_array();
    out->not_accepted = json_array();
    int rc = t.groups && out->missing && out->mismatch && out->unknown && out->not_accepted ? 0 : SAASD_ENOMEM;
    if (!rc && (rc = mp_usage_events(d->mp, &q, &mr)) != 0)
        log_warn("metering", "usage query failed", "error", saasd_strerror(rc), "detail", mr.message);
    if (!rc)
        rc = add_rows(&t, json_object_get(mr.body, "usage"));
    if (!rc)
        rc = store_scan(d->store, STORE_USAGE, NULL, 0, add_bucket, &t);
    if (rc)
        goto fail;
    const char *key;
    json_t *g;
    json_object_foreach(t.groups, key, g) {
        if (json_is_true(json_object_get(g, "skip"))) {
            out->skipped++;
            continue;
        }
        out->checked++;
        const char *kind = difference(g);
        if (kind && (rc = note_difference(out, g, kind)) != 0)
            goto fail;
    }
    char checked[16], differ[16], not_accepted[16];
    snprintf(checked, sizeof checked, "%d", out->checked);
    snprintf(differ, sizeof differ, "%zu",
             json_array_size(out->missing) + json_array_size(out->mismatch) + json_array_size(out->unknown));
    snprintf(not_accepted, sizeof not_accepted, "%zu", json_array_size(out->not_accepted));
    log_info("metering", "usage reconciliation finished", "from", t.from_day, "checked", checked, "differences", differ,
             "not_accepted", not_accepted);
    json_decref(t.groups);
    mp_result_clear(&mr);
    return 0;
fail:
    json_decref(t.groups);
    mp_result_clear(&mr);
    usage_recon_clear(out);
    return rc;
}
