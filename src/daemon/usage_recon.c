/* Usage reconciliation (§7.5): what saasd sent against what Microsoft's usage query recorded,
 * per UTC day, subscription and dimension. The sent hours of a day are added up locally and
 * compared with Microsoft's rows (submittedQuantity, and processedQuantity where the rows carry
 * Microsoft's processed verdict); each difference is logged and counted in
 * saasd_drift_total{kind="usage_missing|usage_mismatch|usage_unknown|usage_processed_mismatch"}.
 * Apart from the quantities, a row whose reconStatus says Microsoft does not bill it (Rejected,
 * ...) is reported with its status (kind="usage_not_accepted"). Nothing is repaired:
 * the store keeps what saasd sent, and an operator decides what a difference means.
 * Runs periodically (usage_reconcile.interval) and on demand (admin API, CLI); each run leaves
 * a record in the store (usage_recon_runs.c), and the periodic schedule resumes from the last. */
#include "daemon/daemon.h"
#include "daemon/metering.h"

#include "core/config.h"
#include "core/err.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp_client.h"
#include "core/store.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DAY_S 86400
#define TOLERANCE 1e-6

/* Both sides added up per (day, subscription, dimension) of the window. */
struct tally {
    json_t *groups;    /* "day|sub|dim" -> {subscriptionId, dimension, day, saasd, microsoft, processed,
                        * in_saasd, in_microsoft, unprocessed (a row of Microsoft's without a
                        * processed quantity), skip} */
    char from_day[16]; /* first day of the window, YYYY-MM-DD */
    int64_t from_s;
    int64_t fresh_ms; /* buckets sent after this are too recent to compare */
    struct usage_recon *out;
    int rc;
};

/* §7.5 reconStatus: whether Microsoft bills the row (or will: Submitted is not processed yet),
 * whether its processedQuantity is Microsoft's verdict (a Submitted row's is not: analytics has
 * not processed it), and what a row it does not bill tells the operator. A value not listed is
 * reported as unknown to the contract, its processedQuantity compared; a row without one is
 * not judged on its status. */
struct recon_status {
    const char *status;
    int billed;
    int processed;
    const char *meaning;
};
static const struct recon_status recon_statuses[] = {
    {"Accepted", 1, 1, "matched"},
    {"Submitted", 1, 0, "not yet processed by Partner Center analytics"},
    {"Rejected", 0, 1, "dropped in Microsoft's pipeline: open a ticket with Microsoft"},
    {"Mismatch", 0, 1, "Microsoft's processed quantity differs from the submitted one"},
    {"TestHeaders", 0, 1, "usage of a test subscription: not billed"},
    {"DryRun", 0, 1, "sent in DryRun session mode: not billed"},
};

/* The table's row of status, or NULL when the contract does not list it. */
static const struct recon_status *status_row(const char *status)
{
    for (size_t i = 0; i < sizeof recon_statuses / sizeof recon_statuses[0]; i++)
        if (!strcasecmp(recon_statuses[i].status, status)) /* read as leniently as the rest of the row */
            return &recon_statuses[i];
    return NULL;
}

/* NULL when the status (its table row r, NULL when the contract does not list it) means
 * billed, else what it means. */
static const char *not_billed(const struct recon_status *r)
{
    return !r ? "a reconStatus the contract does not list" : r->billed ? NULL : r->meaning;
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
    g = json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:b, s:b, s:b, s:b}", "subscriptionId", sub, "dimension", dim,
                  "day", day, "saasd", 0.0, "microsoft", 0.0, "processed", 0.0, "in_saasd", 0, "in_microsoft", 0,
                  "unprocessed", 0, "skip", 0);
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

/* A row's processedQuantity adds to its group when the row carries one that is Microsoft's
 * processed verdict (r: its reconStatus's table row, NULL without one or for one the contract
 * does not list); otherwise the group's processed quantity is incomplete and not judged. */
static void add_processed(json_t *g, json_t *row, const struct recon_status *r)
{
    double p = 0;
    if ((r && !r->processed) || jl_real(row, "processedQuantity", &p) != 0)
        json_object_set_new(g, "unprocessed", json_true());
    else
        json_object_set_new(g, "processed", json_real(json_number_value(json_object_get(g, "processed")) + p));
}

/* One of Microsoft's rows of the window into its group. Its reconStatus is judged on its own,
 * lag or not: it is Microsoft's verdict on what it has. */
static int add_row(struct tally *t, json_t *row)
{
    char sub[128], dim[128], date[64], status[64] = "";
    double q = 0;
    if (jl_string(row, "usageResourceId", sub, sizeof sub) || jl_string(row, "dimension", dim, sizeof dim) ||
        jl_string(row, "usageDate", date, sizeof date) || strlen(date) < 10)
        return 0;
    date[10] = 0; /* "2026-11-24T00:00:00Z" -> its day */
    if (strcmp(date, t->from_day) < 0)
        return 0;
    jl_real(row, "submittedQuantity", &q);
    json_t *g = group(t, date, sub, dim);
    if (!g)
        return SAASD_ENOMEM;
    add_to(g, "microsoft", q);
    if (jl_string(row, "reconStatus", status, sizeof status) == SAASD_ENOTFOUND)
        status[0] = 0;
    const struct recon_status *r = *status ? status_row(status) : NULL;
    add_processed(g, row, r);
    const char *meaning = *status ? not_billed(r) : NULL;
    return meaning ? note_status(t->out, row, sub, dim, date, status, meaning) : 0;
}

/* Microsoft's rows: one per day, resource and dimension (a day may come in several rows,
 * e.g. one per plan: they add up). */
static int add_rows(struct tally *t, json_t *rows)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        int rc = add_row(t, row);
        if (rc)
            return rc;
    }
    return 0;
}

/* The kinds of difference of a group: its drift kind, and the answer's list it goes to. */
enum difference { NONE = -1, MISSING, UNKNOWN, MISMATCH, PROCESSED_MISMATCH };
static const struct {
    const char *drift;
    size_t list; /* offset of the json_t * list in struct usage_recon */
} differences[] = {
    [MISSING] = {"usage_missing", offsetof(struct usage_recon, missing)},
    [UNKNOWN] = {"usage_unknown", offsetof(struct usage_recon, unknown)},
    [MISMATCH] = {"usage_mismatch", offsetof(struct usage_recon, mismatch)},
    [PROCESSED_MISMATCH] = {"usage_processed_mismatch", offsetof(struct usage_recon, processed_mismatch)},
};

static double num(json_t *g, const char *key) { return json_number_value(json_object_get(g, key)); }

static enum difference difference(json_t *g)
{
    if (!json_is_true(json_object_get(g, "in_microsoft")))
        return MISSING;
    if (!json_is_true(json_object_get(g, "in_saasd")))
        return UNKNOWN;
    return fabs(num(g, "saasd") - num(g, "microsoft")) > TOLERANCE ? MISMATCH : NONE;
}

/* What Microsoft processed differs from what saasd sent (only when both sides have the group
 * and every row of Microsoft's carries a processed quantity). */
static int processed_differs(json_t *g)
{
    return json_is_true(json_object_get(g, "in_microsoft")) && json_is_true(json_object_get(g, "in_saasd")) &&
           !json_is_true(json_object_get(g, "unprocessed")) && fabs(num(g, "saasd") - num(g, "processed")) > TOLERANCE;
}

static int note_difference(struct usage_recon *out, json_t *g, enum difference kind)
{
    const char *drift = differences[kind].drift;
    char ours[32], theirs[32], processed[32] = "";
    snprintf(ours, sizeof ours, "%g", num(g, "saasd"));
    snprintf(theirs, sizeof theirs, "%g", num(g, "microsoft"));
    if (kind == PROCESSED_MISMATCH)
        snprintf(processed, sizeof processed, "%g", num(g, "processed"));
    reconcile_count_drift(drift);
    /* Without a processed quantity the NULL field name ends the fields before it. */
    log_warn("metering", "usage differs from Microsoft's record", "kind", drift, "sub_id",
             json_string_value(json_object_get(g, "subscriptionId")), "dimension",
             json_string_value(json_object_get(g, "dimension")), "day", json_string_value(json_object_get(g, "day")),
             "saasd", ours, "microsoft", theirs, kind == PROCESSED_MISMATCH ? "processed" : NULL, processed);
    json_t *list = *(json_t **)((char *)out + differences[kind].list);
    json_t *item = json_pack("{s:O, s:O, s:O, s:O, s:O}", "subscriptionId", json_object_get(g, "subscriptionId"),
                             "dimension", json_object_get(g, "dimension"), "day", json_object_get(g, "day"), "saasd",
                             json_object_get(g, "saasd"), "microsoft", json_object_get(g, "microsoft"));
    if (item && kind == PROCESSED_MISMATCH)
        json_object_set(item, "processed", json_object_get(g, "processed"));
    return item && json_array_append_new(list, item) == 0 ? 0 : SAASD_ENOMEM;
}

/* The group's differences: at most one of the quantities (missing, unknown, mismatch), and the
 * processed quantity's where both sides have the group. */
static int compare_group(struct usage_recon *out, json_t *g)
{
    enum difference kind = difference(g);
    int rc = kind != NONE ? note_difference(out, g, kind) : 0;
    if (!rc && processed_differs(g))
        rc = note_difference(out, g, PROCESSED_MISMATCH);
    return rc;
}

void usage_recon_clear(struct usage_recon *r)
{
    json_decref(r->missing);
    json_decref(r->mismatch);
    json_decref(r->unknown);
    json_decref(r->not_accepted);
    json_decref(r->processed_mismatch);
    memset(r, 0, sizeof *r);
}

static int new_lists(struct usage_recon *out)
{
    out->missing = json_array();
    out->mismatch = json_array();
    out->unknown = json_array();
    out->not_accepted = json_array();
    out->processed_mismatch = json_array();
    return out->missing && out->mismatch && out->unknown && out->not_accepted && out->processed_mismatch
               ? 0
               : SAASD_ENOMEM;
}

static int compare_groups(struct tally *t)
{
    const char *key;
    json_t *g;
    json_object_foreach(t->groups, key, g) {
        if (json_is_true(json_object_get(g, "skip"))) {
            t->out->skipped++;
            continue;
        }
        t->out->checked++;
        int rc = compare_group(t->out, g);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every run ends here: one summary line, its result counted, when it ran (an alert can watch
 * for no successful run in a day or two), and its record stored (usage_recon_runs.c). */
static void note_run(struct daemon *d, const struct usage_recon_run *run, uint64_t *id)
{
    const struct usage_recon *out = run->out;
    const char *result = run->rc ? "result=\"failed\"" : "result=\"ok\"";
    metrics_inc("saasd_usage_reconcile_runs_total", result);
    metrics_set("saasd_usage_reconcile_last_run_timestamp_seconds", result, (double)run->ended_ms / 1000);
    /* A run cut short by the daemon stopping is no run: recorded, it would put the next one a
     * whole interval after the restart. */
    int rc = run->rc == SAASD_ECLOSED ? 0 : usage_recon_store_run(d->store, run, id);
    if (rc)
        log_warn("metering", "usage reconciliation run not recorded", "error", saasd_strerror(rc));
    if (run->rc) {
        log_warn("metering", "usage reconciliation failed", "from", run->from_day, "error", saasd_strerror(run->rc));
        return;
    }
    char checked[16], skipped[16], differ[16], processed[16], not_accepted[16];
    snprintf(checked, sizeof checked, "%d", out->checked);
    snprintf(skipped, sizeof skipped, "%d", out->skipped);
    snprintf(differ, sizeof differ, "%zu",
             json_array_size(out->missing) + json_array_size(out->mismatch) + json_array_size(out->unknown));
    snprintf(processed, sizeof processed, "%zu", json_array_size(out->processed_mismatch));
    snprintf(not_accepted, sizeof not_accepted, "%zu", json_array_size(out->not_accepted));
    log_info("metering", "usage reconciliation finished", "from", run->from_day, "checked", checked, "skipped",
             skipped, "differences", differ, "processed_mismatch", processed, "not_accepted", not_accepted);
}

int metering_reconcile(struct daemon *d, const char *trigger, int days, int lag_s, struct usage_recon *out)
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
    int rc = t.groups ? new_lists(out) : SAASD_ENOMEM;
    if (!rc && (rc = mp_usage_events(d->mp, &q, &mr)) != 0)
        log_warn("metering", "usage query failed", "error", saasd_strerror(rc), "detail", mr.message);
    if (!rc && d->stopping)
        rc = SAASD_ECLOSED; /* the query may have waited out retries: stop here, not after a store scan */
    if (!rc)
        rc = add_rows(&t, json_object_get(mr.body, "usage"));
    if (!rc)
        rc = store_scan(d->store, STORE_USAGE, NULL, 0, add_bucket, &t);
    if (!rc)
        rc = compare_groups(&t);
    struct usage_recon_run run = {.trigger = trigger, .started_ms = now, .ended_ms = now_ms(),
                                  .from_day = t.from_day, .to_day = to_day, .rc = rc, .out = out};
    note_run(d, &run, &out->run);
    json_decref(t.groups);
    mp_result_clear(&mr);
    if (rc)
        usage_recon_clear(out);
    return rc;
}

#define NEXT_RUN_GAUGE "saasd_usage_reconcile_next_run_timestamp_seconds"

static void usage_recon_job(struct daemon *d)
{
    struct usage_recon r;
    if (metering_reconcile(d, "periodic", d->cfg->usage_reconcile_days, d->cfg->usage_reconcile_lag_s, &r) == 0)
        usage_recon_clear(&r);
    /* daemon_every_after waits one interval from the end of the job */
    metrics_set(NEXT_RUN_GAUGE, NULL, (double)(now_ms() / 1000 + d->cfg->usage_reconcile_interval_s));
}

/* The first run after a start is one interval after the last stored run ended, so a restart
 * neither skips a daily run nor repeats it; but never sooner than this after the start (or one
 * interval, when shorter), so a daemon that crash-loops does not query Microsoft at each start
 * (it runs once it has lived this long, and then its record pushes the next run one interval
 * out). Without a stored run this is when the first run comes, as before runs were recorded. */
#define FIRST_RUN_MIN_S 600

static int first_run_delay(struct daemon *d, int interval)
{
    int floor_s = interval < FIRST_RUN_MIN_S ? interval : FIRST_RUN_MIN_S;
    int64_t last_end = 0, now = now_ms() / 1000;
    int rc = usage_recon_last_end(d->store, &last_end);
    if (rc && rc != SAASD_ENOTFOUND)
        log_warn("metering", "last usage reconciliation run unreadable", "error", saasd_strerror(rc));
    int64_t due = rc ? 0 : last_end + interval - now;
    if (due > interval) /* the clock went back: no longer than one interval */
        due = interval;
    return due > floor_s ? (int)due : floor_s;
}

int usage_recon_start(struct daemon *d)
{
    int interval = d->cfg->usage_reconcile_interval_s;
    if (interval <= 0)
        return 0;
    int first = first_run_delay(d, interval);
    metrics_set(NEXT_RUN_GAUGE, NULL, (double)(now_ms() / 1000 + first));
    int rc = daemon_every_after(d, first, interval, usage_recon_job, &d->usage_reconciler);
    d->usage_reconciler_started = rc == 0;
    return rc;
}
