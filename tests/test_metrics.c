/* Metrics: counters, gauges and histograms render in Prometheus text format. */
#include "check.h"
#include "core/metrics.h"

#include <pthread.h>
#include <string.h>

static void *inc_many(void *c)
{
    for (int i = 0; i < 100000; i++)
        metrics_counter_inc(c);
    return NULL;
}

/* A handle counts into the same series as metrics_add, without losing increments made by
 * several threads at once. */
static void handle_counts_into_the_series(void)
{
    metrics_inc("saasd_handle_total", "k=\"v\"");
    struct metrics_counter *c = metrics_counter("saasd_handle_total", "k=\"v\"");
    CHECK(c && c == metrics_counter("saasd_handle_total", "k=\"v\""), "a handle names one series");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, inc_many, c);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    metrics_counter_inc(NULL); /* out of memory at lookup: counting is a no-op, not a crash */
    CHECK(metrics_value("saasd_handle_total", "k=\"v\"") == 400001, "handle increments from 4 threads all count");
    char *text = NULL;
    size_t len = 0;
    CHECK(metrics_render(&text, &len) == 0 && strstr(text, "saasd_handle_total{k=\"v\"} 400001\n"),
          "handle increments are rendered with the series");
    free(text);
}

int main(void)
{
    handle_counts_into_the_series();
    metrics_describe("saasd_webhooks_total", "counter", "Webhook calls by action and outcome.");
    metrics_inc("saasd_webhooks_total", "action=\"ChangePlan\",outcome=\"accepted\"");
    metrics_inc("saasd_webhooks_total", "action=\"ChangePlan\",outcome=\"accepted\"");
    metrics_inc("saasd_webhooks_total", "action=\"Suspend\",outcome=\"duplicate\"");
    metrics_set("saasd_inbox_depth", NULL, 7);
    metrics_observe("saasd_rule_seconds", "offer=\"a\"", 0.003);
    metrics_observe("saasd_rule_seconds", "offer=\"a\"", 3.0);

    char *text = NULL;
    size_t len = 0;
    CHECK(metrics_render(&text, &len) == 0 && text, "metrics render");
    CHECK(strstr(text, "# HELP saasd_webhooks_total Webhook calls by action and outcome.\n# TYPE saasd_webhooks_total counter\n"),
          "described families carry HELP and TYPE lines");
    CHECK(strstr(text, "saasd_webhooks_total{action=\"ChangePlan\",outcome=\"accepted\"} 2\n"), "a counter counts per label set");
    CHECK(strstr(text, "saasd_inbox_depth 7\n"), "a gauge without labels renders bare");
    CHECK(strstr(text, "saasd_rule_seconds_bucket{offer=\"a\",le=\"0.005\"} 1\n") &&
              strstr(text, "saasd_rule_seconds_bucket{offer=\"a\",le=\"+Inf\"} 2\n") &&
              strstr(text, "saasd_rule_seconds_count{offer=\"a\"} 2\n"),
          "a histogram has cumulative buckets, +Inf and count");
    char *a = strstr(text, "ChangePlan"), *b = strstr(text, "Suspend"), *g = strstr(text, "saasd_inbox_depth");
    CHECK(a && b && g && a < g && b < g, "series of one family are rendered together");
    CHECK(metrics_value("saasd_webhooks_total", "action=\"Suspend\",outcome=\"duplicate\"") == 1, "a series can be read back");
    free(text);
    return CHECK_DONE();
}
