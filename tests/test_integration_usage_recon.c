/* Usage reconciliation runs by itself (usage_reconcile.interval) against the emulator: each run
 * is counted by result with its time; a run that cannot reach the marketplace is counted failed
 * and the next interval runs again; Microsoft's processedQuantity (§7.5) is compared with what
 * saasd sent where a row carries one that Partner Center processed. In-process daemon and
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
    failed_run_is_retried();

    char *page = it_metrics_text(NULL);
    struct prom_state *ps = calloc(1, sizeof *ps);
    CHECK(page && ps && prom_check(page, ps) == 0 && strstr(page, "saasd_usage_reconcile_runs_total{result=\"ok\"}") &&
              strstr(page, "# TYPE saasd_usage_reconcile_last_run_timestamp_seconds gauge"),
          "/metrics with the usage reconciliation families passes the checks promtool makes");
    free(ps);
    free(page);
    long long t0 = it_now_ms();
    daemon_stop(d);
    CHECK(it_now_ms() - t0 < 5000, "the periodic usage reconciliation stops with the daemon");
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
