/* Metrics: counters, gauges and histograms render in Prometheus text format. */
#include "check.h"
#include "core/metrics.h"

#include <string.h>

int main(void)
{
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
