/* Every metric family the daemon exports, in one table: its type and HELP text, and the series
 * that must exist from the start at 0 (drift, retries, failures, refusals), so that an alert
 * like `increase(saasd_drift_total[1h]) > 0` works before the first event. The rule engine
 * renders its own families (saasd_rule_calls_total, saasd_rule_reloads_total, ...). */
#include "daemon/daemon.h"

#include "core/metrics.h"

#include <stddef.h>

static const struct {
    const char *name, *type, *help;
} families[] = {
    {"saasd_webhooks_total", "counter", "Webhook calls by action and outcome."},
    {"saasd_events_processed_total", "counter", "Inbox events processed by action and outcome."},
    {"saasd_outbox_retries_total", "counter", "Events postponed for a retry."},
    {"saasd_inbox_depth", "gauge", "Webhook events waiting in the inbox."},
    {"saasd_outbox_depth", "gauge", "Events waiting for a retry."},
    {"saasd_landing_total", "counter", "Landing page visits by outcome."},
    {"saasd_rule_decisions_total", "counter", "Rule decisions by offer, handler and outcome."},
    {"saasd_rule_unknown_offer_total", "counter",
     "Calls for an offer without its own rule file, by offer and handler (see rules.unknown_offers)."},
    {"saasd_rule_timers_fired_total", "counter", "ctx.timer timers whose timer handler ran and committed."},
    {"saasd_rule_shadow_decisions_total", "counter",
     "Decisions of the shadow rule generation (rules.shadow_dir) by offer, handler and result (same, differ)."},
    {"saasd_drift_total", "counter", "Differences found between local and Microsoft state, by kind."},
    {"saasd_reconcile_runs_total", "counter", "Reconciliation passes by result."},
    {"saasd_usage_reconcile_runs_total", "counter",
     "Usage reconciliation runs (periodic and on demand) by result."},
    {"saasd_usage_reconcile_last_run_timestamp_seconds", "gauge",
     "When the latest usage reconciliation run of each result ended (Unix time)."},
    {"saasd_usage_reconcile_next_run_timestamp_seconds", "gauge",
     "When the next periodic usage reconciliation run is due (Unix time; absent when it is off)."},
    {"saasd_usage_events_total", "counter", "Metered usage events by what became of them when sent."},
    {"saasd_busy_total", "counter", "Requests answered 503 because their pool was full, by pool."},
    {"saasd_http_request_deadline_closed_total", "counter",
     "Connections closed because their request was not in by listener.request_deadline_s."},
    {"saasd_token_refresh_total", "counter", "Entra ID token refreshes by outcome."},
    {"saasd_credential_reloads_total", "counter",
     "Entra ID credential reloads (SIGHUP) by result: ok, or failed (the current credential stays in use)."},
    {"saasd_credential_certificate_expiry_timestamp_seconds", "gauge",
     "When the Entra ID certificate in use expires (Unix time; absent with a client secret)."},
    {"saasd_jwt_verifications_total", "counter", "Webhook bearer token verifications by result."},
    {"saasd_inbox_entries_scanned_total", "counter",
     "Inbox and outbox entries the workers' scans looked at (work waiting costs this)."},
    {"saasd_inbox_passes_lost_total", "counter",
     "Inbox passes ended early, taking nothing, because a passed-over subscription could not be "
     "remembered (out of memory); the next pass starts over after a second."},
    {"saasd_webhook_verify_queue_total", "counter",
     "Fresh webhook tokens: verified once, requests that joined a verification in flight, requests "
     "refused on a full queue."},
    {"saasd_store_batches_total", "counter", "Store write batches committed."},
    {"saasd_store_transactions_total", "counter", "Store write transactions (one data fdatasync each)."},
    {"saasd_store_syncs_total", "counter",
     "Store flushes beyond the transactions' own: committed batches waiting with nothing queued."},
    {"saasd_upstream_requests_total", "counter", "Marketplace API requests by endpoint and HTTP status."},
    {"saasd_upstream_request_seconds", "histogram", "Marketplace API request time by endpoint."},
    {"saasd_sink_deliveries_total", "counter",
     "Event deliveries to each sink by outcome (delivered, failed attempts, skipped by an operator)."},
    {"saasd_sink_pending", "gauge", "Events waiting for delivery to each sink."},
};

static const struct {
    const char *name, *labels;
} zero_series[] = {
    {"saasd_drift_total", "kind=\"status\""},
    {"saasd_drift_total", "kind=\"plan\""},
    {"saasd_drift_total", "kind=\"quantity\""},
    {"saasd_drift_total", "kind=\"unknown_subscription\""},
    {"saasd_drift_total", "kind=\"after_operation\""},
    {"saasd_drift_total", "kind=\"refused_but_applied\""},
    {"saasd_drift_total", "kind=\"usage_missing\""},
    {"saasd_drift_total", "kind=\"usage_unknown\""},
    {"saasd_drift_total", "kind=\"usage_mismatch\""},
    {"saasd_drift_total", "kind=\"usage_not_accepted\""},
    {"saasd_drift_total", "kind=\"usage_processed_mismatch\""},
    {"saasd_outbox_retries_total", NULL},
    {"saasd_inbox_passes_lost_total", NULL},
    {"saasd_reconcile_runs_total", "result=\"failed\""},
    {"saasd_usage_reconcile_runs_total", "result=\"failed\""},
    {"saasd_token_refresh_total", "outcome=\"failed\""},
    {"saasd_token_refresh_total", "outcome=\"refused\""},
    {"saasd_credential_reloads_total", "result=\"ok\""},
    {"saasd_credential_reloads_total", "result=\"failed\""},
    {"saasd_webhooks_total", "action=\"-\",outcome=\"unauthorized\""},
    {"saasd_webhooks_total", "action=\"-\",outcome=\"malformed\""},
    {"saasd_landing_total", "outcome=\"error\""},
    {"saasd_landing_total", "outcome=\"resolve_error\""},
    {"saasd_landing_total", "outcome=\"invalid_token\""},
    {"saasd_landing_total", "outcome=\"rejected\""},
    {"saasd_usage_events_total", "outcome=\"open\""},
    {"saasd_usage_events_total", "outcome=\"failed\""},
    {"saasd_busy_total", "pool=\"landing\""},
    {"saasd_busy_total", "pool=\"webhook\""},
    {"saasd_busy_total", "pool=\"pages\""},
    {"saasd_http_request_deadline_closed_total", NULL},
    {"saasd_jwt_verifications_total", "result=\"refused\""},
};

void daemon_describe_metrics(void)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        metrics_describe(families[i].name, families[i].type, families[i].help);
    for (size_t i = 0; i < sizeof zero_series / sizeof zero_series[0]; i++)
        metrics_add(zero_series[i].name, zero_series[i].labels, 0);
}
