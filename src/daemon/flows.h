/* The fulfillment flows shared by the landing page, the inbox workers and the admin API.
 * Each runs under the subscription's lock (daemon_lock_sub) held by the caller, and writes its
 * decision, the new local state, the audit record (with the rule file's SHA-256) and the rule's
 * ctx.store writes in one store batch. */
#ifndef SAASD_FLOWS_H
#define SAASD_FLOWS_H

#include <jansson.h>

struct daemon;
struct store_batch;

struct flow_outcome {
    int ran_rule;          /* 1 when a rule decided now; 0 when a stored decision was reused */
    const char *decision;  /* "activated", "pending", "rejected", "accepted", "refused", "done", ... */
    char title[128];       /* for the customer page when the flow refuses to run */
    char message[512];
};

/* Landing page: decide once for sub_id (snapshot = Microsoft's subscription object; landing =
 * the signed-in buyer's confirmation {buyer, fields}, handed to the provision rule, may be NULL). */
int flow_provision(struct daemon *d, const char *sub_id, json_t *snapshot, const char *request_id, json_t *landing,
                   struct flow_outcome *out);
/* Admin: activate a subscription whose provision rule answered "pending". */
int flow_activate_pending(struct daemon *d, const char *sub_id, struct flow_outcome *out);

/* Inbox: act on one stored webhook event. Returns 0 when the event is finished (acted on, or
 * recognised as not actionable and recorded), SAASD_ERETRY when it must be tried again later
 * (error text in out->message), another code on a local failure (also retried). */
int flow_process_event(struct daemon *d, json_t *entry, struct store_batch *done_batch, struct flow_outcome *out);

/* Admin: publisher-initiated change. kind is "plan", "quantity" or "cancel"; value the new plan
 * id or seat count. Follows Operation-Location to a final status, then refreshes local state. */
int flow_publisher_change(struct daemon *d, const char *sub_id, const char *kind, const char *value,
                          json_t **operation_out, struct flow_outcome *out);

#endif
