/* Delivery of events (events.h) to the ISV's sinks: signed webhooks, e-mail over SMTP, Microsoft
 * Teams and Slack incoming webhooks. Each configured sink has its own thread and its own cursor
 * (META "sink:<name>": the last event sequence number it has passed), so a sink that keeps
 * failing holds up neither the other sinks nor the fulfillment flows, which only append events.
 * A sink takes the events in sequence order, one at a time, and retries a failed delivery with
 * exponential backoff until it succeeds: delivery is at least once, and in order for each sink
 * (hence in order per subscription). */
#ifndef SAASD_SINKS_H
#define SAASD_SINKS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct sink;
struct sink_config;

/* Start one delivery thread per configured sink (and the pruning of delivered events). A sink
 * configured for the first time starts after the last event already stored. */
int sinks_start(struct daemon *d);
/* Stop the threads (a delivery in progress finishes or times out first). */
void sinks_stop(struct daemon *d);

/* Delivery state of every sink, for the admin API, the console and /metrics:
 * [{name, kind, delivered, failed_attempts, pending, cursor, failing_since, attempts,
 *   next_try_in_ms, last_error, last_delivered, retrying_seq}] (times ISO 8601; failing_since and last_error
 * null while the sink is healthy). New reference in *out. */
int sinks_status(struct daemon *d, json_t **out);
/* Operator actions on a failing sink: "retry" makes the next attempt now; "skip" gives up on the
 * event seq this sink keeps failing on (its `retrying_seq`): the sink moves past it, counted as
 * outcome "skipped" (other sinks are not affected). SAASD_ENOTFOUND for an unknown sink,
 * SAASD_ECONFLICT when the sink is not failing (or not on seq), SAASD_EINVAL for another verb. */
int sinks_operate(struct daemon *d, const char *name, const char *verb, uint64_t seq);
/* Refresh the saasd_sink_pending{sink} gauges (called when /metrics is rendered). */
void sinks_update_metrics(struct daemon *d);

/* Kinds (sink_kinds.c): one row per kind, how an event becomes a message and how it is sent.
 * Returns 0, or an error with a short reason in err (never a secret). */
int sink_kind_deliver(const struct sink_config *cfg, json_t *event, const char *event_text, char *err, size_t err_size);
/* "webhook", "smtp", "slack", "teams". */
const char *sink_kind_name(int kind);

/* The signature a webhook sink sends: lower-case hex HMAC-SHA256(secret, "<timestamp>.<body>"),
 * in out (65 bytes). */
int sink_signature(const char *secret, const char *timestamp, const char *body, size_t body_len, char out[65]);

/* 1 when the sink's filters (event type globs, offers) let the event through. */
int sink_wants(const struct sink_config *cfg, json_t *event);

#endif
