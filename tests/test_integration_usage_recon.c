/* Usage reconciliation runs by itself (usage_reconcile.interval) against the emulator: each run
 * is counted by result with its time; a run that cannot reach the marketplace is counted failed
 * and the next interval runs again; Microsoft's processedQuantity (§7.5) is compared with what
 * saasd sent where a row carries one that Partner Center processed; each run leaves a record
 * (the last 30 kept) that outlives a restart and schedules the next run. In-process daemon and
 * emulator; the metering pass runs only when the test flushes. */
#include "it_support.h"

#include "core/metrics.h"
#include "prom_check.h"

#include <math.h>

#define OK_RUNS "result=\"ok\""
#define FAILED_RUNS "result=\"failed\""

static double runs(const char *result) { return metrics_value("saasd_usage_reconcile_runs_total", result); }

static double drift(const char *kind)
{
    char labels[64];
    snprintf(labels, sizeof labels, "kind=\"%s\"", kind);
    return metrics_value("saasd_drift_total", labels);
}

/* Wait up to 10 s for the runs of result to reach at_least; whether they did. */
static int wait_runs(const char *result, double at_least)
{
    long long until = it_now_ms() + 10000;
    while (it_now_ms() < until && runs(result) < at_least)
        usleep(50 * 1000);
    return runs(result) >= at_least;
}

static void day_of(long long hour_s, char day[16])
{
    time_t t = (time_t)hour_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, 16, "%Y-%m-%d", &tm);
}

/* Partner Center's verdict on the row of sub's dim on the day of hour_s: its reconStatus and
 * processedQuantity (processed: a JSON number, or json_null() for a row without one; stolen). */
static long set_row(const char *sub, const char *dim, long long hour_s, const char *status, json_t *processed)
{
    char day[16];
    long st = 0;
    day_of(hour_s, day);
    json_decref(it_emu("POST", "/_emulator/usage/recon-status",
                       json_pack("{s:s, s:s, s:s, s:s, s:o}", "resourceId", sub, "dimension", dim, "usageDate", day,
                                 "reconStatus", status, "processedQuantity", processed),
                       &st));
    return st;
}

static long record(const char *sub, const char *dim, double quantity, long long when_s)
{
    long st;
    json_decref(it_admin("POST", "/admin/usage",
                         json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", sub, "dimension", dim, "quantity",
                                   quantity, "time", (json_int_t)when_s * 1000),
                         &st));
    return st;
}

/* The item of dim in the answer's list, or NULL. Borrowed. */
static json_t *item_of(json_t *answer, const char *list, const char *dim)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(answer, list), i, item) if (!strcmp(it_str(item, "dimension"), dim)) return item;
    return NULL;
}

static double num(json_t *j, const char *key) { return json_number_value(json_object_get(j, key)); }

/* A purchase of it-urecon (plan flat: dimensions reports, exports) activated through the landing page. */
static void buy(char *sub, size_t size)
{
    long st;
    json_decref(it_emu("POST", "/_emulator/offers",
                       json_pack("{s:s, s:[{s:s, s:s, s:[s, s]}]}", "offerId", "it-urecon", "plans", "planId", "flat",
                                 "displayName", "Flat", "dimensions", "reports", "exports"),
                       &st));
    json_t *p = it_emu("POST", "/_emulator/purchases", json_pack("{s:s, s:s}", "offerId", "it-urecon", "planId", "flat"),
                       &st);
    snprintf(sub, size, "%s", it_str(p, "subscriptionId"));
    it_land(it_str(p, "landingUrl"), NULL);
    json_decref(p);
}

static void periodic_runs_and_processed_quantity(const char *sub, long long hour)
{
    CHECK(wait_runs(OK_RUNS, 1), "usage reconciliation runs by itself on usage_reconcile.interval");
    double last = metrics_value("saasd_usage_reconcile_last_run_timestamp_seconds", OK_RUNS);
    CHECK(fabs(last - (double)time(NULL)) < 30, "the time of the latest successful run is exported");
    CHECK(drift("usage_processed_mismatch") == 0 && drift("usage_mismatch") == 0,
          "usage Microsoft processed as sent is no drift");

    /* Partner Center processed 3 of the 4 reports saasd sent. */
    CHECK(set_row(sub, "reports", hour, "Mismatch", json_real(3.0)) == 200, "Microsoft's row is made to differ");
    long long until = it_now_ms() + 10000;
    while (it_now_ms() < until && drift("usage_processed_mismatch") < 1)
        usleep(50 * 1000);
    CHECK(drift("usage_processed_mismatch") >= 1,
          "the periodic run counts a processed quantity that differs from what saasd sent as usage_processed_mismatch");

    /* exports: a row without a processed quantity, then one not processed yet, are not judged on it. */
    long st1 = set_row(sub, "exports", hour, "Accepted", json_null());
    long st;
    json_t *a = it_admin("POST", "/admin/usage/reconcile", json_pack("{s:i}", "days", 2), &st);
    json_t *item = item_of(a, "processed_mismatch", "reports");
    CHECK(st == 200 && item && !strcmp(it_str(item, "subscriptionId"), sub) && fabs(num(item, "saasd") - 4) < 1e-9 &&
              fabs(num(item, "microsoft") - 4) < 1e-9 && fabs(num(item, "processed") - 3) < 1e-9 &&
              json_array_size(json_object_get(a, "mismatch")) == 0,
          "the answer lists the day whose processed quantity differs, with both quantities, beside matching submitted ones");
    CHECK(st1 == 200 && st == 200 && json_array_size(json_object_get(a, "processed_mismatch")) == 1,
          "a row without processedQuantity is not judged on it");
    json_decref(a);
    long st2 = set_row(sub, "exports", hour, "Submitted", json_real(1.0));
    a = it_admin("POST", "/admin/usage/reconcile", NULL, &st);
    CHECK(st2 == 200 && st == 200 && !item_of(a, "processed_mismatch", "exports") &&
              item_of(a, "processed_mismatch", "reports"),
          "a row Partner Center has not processed yet (Submitted) is not judged on its processedQuantity");
    json_decref(a);
}

static void failed_run_is_retried(void)
{
    long st;
    double failed0 = runs(FAILED_RUNS);
    json_decref(it_emu("POST", "/_emulator/faults",
                       json_pack("{s:s, s:s, s:s, s:i}", "path", "/api/usageEvents", "method", "GET", "kind", "500",
                                 "count", 1000),
                       &st));
    CHECK(wait_runs(FAILED_RUNS, failed0 + 1), "a run that cannot query Microsoft's usage is counted as failed");
    long hst;
    json_decref(it_admin("GET", "/admin/usage", NULL, &hst));
    CHECK(hst == 200, "the admin API serves while the runs fail");
    json_decref(it_emu("DELETE", "/_emulator/faults", NULL, &st));
    double ok0 = runs(OK_RUNS);
    CHECK(wait_runs(OK_RUNS, ok0 + 1), "after a failed run the next interval runs again and succeeds");
}

/* The stored runs, newest first (GET /admin/usage/reconcile/runs); NULL unless 200. */
static json_t *stored_runs(void)
{
    long st;
    json_t *a = it_admin("GET", "/admin/usage/reconcile/runs?limit=1000", NULL, &st);
    json_t *runs = st == 200 ? json_incref(json_object_get(a, "runs")) : NULL;
    json_decref(a);
    return runs;
}

/* The newest stored run of trigger and result, or NULL. Borrowed from runs. */
static json_t *newest_run(json_t *runs, const char *trigger, const char *result)
{
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run) if (!strcmp(it_str(run, "trigger"), trigger) &&
                                         !strcmp(it_str(run, "result"), result)) return run;
    return NULL;
}

static json_int_t count_of(json_t *run, const char *kind)
{
    return json_integer_value(json_object_get(json_object_get(run, "counts"), kind));
}

/* The stored run id (GET /admin/usage/reconcile/runs/{id}); *status gets the HTTP status. */
static json_t *stored_run(json_int_t id, long *status)
{
    char path[128];
    snprintf(path, sizeof path, "/admin/usage/reconcile/runs/%lld", (long long)id);
    return it_admin("GET", path, NULL, status);
}

static void an_on_demand_run_is_stored_with_its_counts_and_findings(const char *sub)
{
    long st, st2;
    json_t *a = it_admin("POST", "/admin/usage/reconcile", json_pack("{s:i}", "days", 2), &st);
    json_int_t id = json_integer_value(json_object_get(a, "run"));
    json_decref(a);
    CHECK(st == 200 && id > 0, "an on-demand run answers with the id of its stored record");
    json_t *run = stored_run(id, &st2);
    json_t *f = NULL, *one;
    size_t i;
    json_array_foreach(json_object_get(run, "findings"), i, one) if (!strcmp(it_str(one, "kind"),
                                                                        "usage_processed_mismatch")) f = one;
    char today[16];
    day_of(time(NULL), today);
    CHECK(st2 == 200 && json_integer_value(json_object_get(run, "id")) == id &&
              !strcmp(it_str(run, "trigger"), "admin") && !strcmp(it_str(run, "result"), "ok") &&
              !strcmp(it_str(run, "to"), today) && strlen(it_str(run, "started_at")) == 20 &&
              strlen(it_str(run, "ended_at")) == 20 && count_of(run, "checked") == 2 &&
              count_of(run, "usage_processed_mismatch") == 1 && count_of(run, "usage_mismatch") == 0,
          "the stored run has its trigger, window, times, result and counts by kind");
    CHECK(json_array_size(json_object_get(run, "findings")) == 2 && count_of(run, "usage_not_accepted") == 1 && f &&
              !strcmp(it_str(f, "subscriptionId"), sub) &&
              !strcmp(it_str(f, "dimension"), "reports") && fabs(num(f, "processed") - 3) < 1e-9 &&
              json_integer_value(json_object_get(run, "truncated")) == 0,
          "the stored run lists its findings with their kind");
    json_decref(run);
    json_t *runs = stored_runs();
    json_t *periodic = newest_run(runs, "periodic", "ok");
    CHECK(runs && json_array_size(runs) >= 2 && periodic && count_of(periodic, "usage_processed_mismatch") == 1 &&
              !json_object_get(periodic, "findings"),
          "a periodic run is stored too, and the list gives the summaries without the findings");
    json_decref(runs);
}

static void a_failed_run_is_stored_with_its_error(void)
{
    json_t *runs = stored_runs();
    json_t *failed = newest_run(runs, "periodic", "failed");
    CHECK(failed && *it_str(failed, "error"), "a failed run is stored with its error");
    json_decref(runs);
}

static void only_the_last_30_runs_are_kept(void)
{
    long st;
    json_int_t first = 0;
    int ok = 1;
    for (int i = 0; i < 31; i++) {
        json_t *a = it_admin("POST", "/admin/usage/reconcile", json_pack("{s:i}", "days", 1), &st);
        ok = ok && st == 200;
        if (i == 0)
            first = json_integer_value(json_object_get(a, "run"));
        json_decref(a);
    }
    json_t *runs = stored_runs();
    json_int_t newest = json_integer_value(json_object_get(json_array_get(runs, 0), "id"));
    json_int_t oldest = json_integer_value(json_object_get(json_array_get(runs, json_array_size(runs) - 1), "id"));
    CHECK(ok && runs && json_array_size(runs) == 30 && newest > oldest && oldest > first,
          "after 31 more runs only the last 30 are kept, newest first");
    json_decref(runs);
    json_decref(stored_run(first, &st));
    CHECK(st == 404, "a run pruned from the ring (or never stored) is 404");
    json_t *a = it_admin("GET", "/admin/usage/reconcile/runs?limit=2", NULL, &st);
    CHECK(st == 200 && json_array_size(json_object_get(a, "runs")) == 2, "limit caps the list");
    json_decref(a);
    json_decref(it_admin("GET", "/admin/usage/reconcile/runs?limit=0", NULL, &st));
    CHECK(st == 400, "a limit out of 1..1000 is refused");
    char url[256];
    snprintf(url, sizeof url, "%s/admin/usage/reconcile/runs", it_admin_url);
    json_decref(it_call("GET", url, NULL, NULL, &st, NULL));
    long st2;
    snprintf(url, sizeof url, "%s/admin/usage/reconcile/runs/%lld", it_admin_url, (long long)oldest);
    json_decref(it_call("GET", url, NULL, "wrong-key", &st2, NULL));
    CHECK(st == 401 && st2 == 401, "the stored runs need the admin key");
}

/* A restart keeps the runs, and the next periodic run is one interval after the last one ended
 * (before: the runs listed by the stopped daemon). */
static struct daemon *runs_survive_a_restart_and_schedule_the_next(const char *dir, json_t *before)
{
    struct daemon *d = it_start_in(dir, 0, "metering = { interval = 0 }\nusage_reconcile = { interval = 3600, days = 2, lag_s = 0 }\n");
    json_t *after = d ? stored_runs() : NULL;
    /* a periodic run may have ended between the listing and the stop */
    json_t *last_before = json_array_get(before, 0), *run;
    size_t i;
    int kept = 0;
    json_array_foreach(after, i, run) kept |= json_equal(run, last_before);
    CHECK(last_before && kept && json_array_size(after) == 30, "the stored runs survive a restart");
    struct tm tm = {0};
    const char *ended = after ? it_str(json_array_get(after, 0), "ended_at") : "";
    double last_end = strptime(ended, "%Y-%m-%dT%H:%M:%SZ", &tm) ? (double)timegm(&tm) : 0;
    double next = metrics_value("saasd_usage_reconcile_next_run_timestamp_seconds", NULL);
    CHECK(last_end > 0 && fabs(next - (last_end + 3600)) <= 1,
          "after a restart the next periodic run is one interval after the last stored run ended");
    json_decref(before);
    json_decref(after);
    return d;
}

int main(void)
{
    char dir[256], conf[512], rules[512];
    struct emu *emu = it_setup("usagerecon", dir, rules);
    if (!emu)
        return CHECK_DONE();
    it_write_rule(rules, "it-urecon", "return {}\n");
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(),
                    "metering = { interval = 0 }\nusage_reconcile = { interval = 1, days = 2, lag_s = 0 }\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();
    char sub[64];
    buy(sub, sizeof sub);
    long long hour = (long long)time(NULL) / 3600 * 3600 - 2 * 3600;
    long st;
    CHECK(record(sub, "reports", 4, hour + 60) == 200 && record(sub, "exports", 2, hour + 120) == 200,
          "usage of two dimensions two hours ago is recorded");
    json_t *f = it_admin("POST", "/admin/usage/flush", json_pack("{s:b}", "ignore_grace", 1), &st);
    CHECK(st == 200 && json_integer_value(json_object_get(f, "sent")) == 2, "both hours are sent");
    json_decref(f);

    periodic_runs_and_processed_quantity(sub, hour);
    an_on_demand_run_is_stored_with_its_counts_and_findings(sub);
    failed_run_is_retried();
    a_failed_run_is_stored_with_its_error();
    only_the_last_30_runs_are_kept();

    char *page = it_metrics_text(NULL);
    struct prom_state *ps = calloc(1, sizeof *ps);
    CHECK(page && ps && prom_check(page, ps) == 0 && strstr(page, "saasd_usage_reconcile_runs_total{result=\"ok\"}") &&
              strstr(page, "# TYPE saasd_usage_reconcile_last_run_timestamp_seconds gauge") &&
              strstr(page, "# TYPE saasd_usage_reconcile_next_run_timestamp_seconds gauge"),
          "/metrics with the usage reconciliation families passes the checks promtool makes");
    free(ps);
    free(page);
    json_t *before = stored_runs();
    long long t0 = it_now_ms();
    daemon_stop(d);
    CHECK(it_now_ms() - t0 < 5000, "the periodic usage reconciliation stops with the daemon");
    d = runs_survive_a_restart_and_schedule_the_next(dir, before);
    if (d)
        daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
