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
    int ms_subscribed;     /* after Activate: Microsoft's subscription reads back Subscribed. A 200 from
                              Activate only means "received"; 0 means Microsoft has not shown it yet
                              ("we are finishing your activation") and may still fail it (Unsubscribe) */
};

/* Days Microsoft leaves a purchase in PendingFulfillmentStart before cancelling it. */
#define FLOW_ACTIVATION_DAYS 30

/* Bring a local record up to Microsoft's subscription object: Microsoft's view is kept as is
 * (status, plan, seats; a field Microsoft dropped is dropped), except a change Microsoft accepted
 * and does not show yet (pending_change). Tracks the 30-day activation deadline while the
 * subscription is PendingFulfillmentStart. */
void flow_record_refresh(json_t *rec, json_t *snapshot);

/* Landing page: decide once for sub_id (snapshot = Microsoft's subscription object; landing =
 * the signed-in buyer's confirmation {buyer, fields}, handed to the provision rule, may be NULL). */
int flow_provision(struct daemon *d, const char *sub_id, json_t *snapshot, const char *request_id, json_t *landing,
                   struct flow_outcome *out);
/* Admin: activate a subscription whose provision rule answered "pending". */
int flow_activate_pending(struct daemon *d, const char *sub_id, struct flow_outcome *out);

/* Inbox: act on one stored webhook event: entry is its header, with the payload as a member or,
 * when payload->text is set, as that text (webhook_entry_split: parsed only where a tree is
 * needed; the rule gets the text as it is). Returns 0 when the event is finished (acted on, or
 * recognised as not actionable and recorded), SAASD_ERETRY when it must be tried again later
 * (error text in out->message), another code on a local failure (also retried). */
struct entry_payload;
int flow_process_event(struct daemon *d, json_t *entry, const struct entry_payload *payload,
                       struct store_batch *done_batch, struct flow_outcome *out);

/* Admin: publisher-initiated change. kind is "plan", "quantity" or "cancel"; value the new plan
 * id or seat count. Follows Operation-Location to a final status, then refreshes local state. */
int flow_publisher_change(struct daemon *d, const char *sub_id, const char *kind, const char *value,
                          json_t **operation_out, struct flow_outcome *out);

/* Reconciliation (reconcile.c): one pass. Fills *drift, and *missing with the local subscription
 * ids Microsoft does not list (new reference), when not NULL. */
int reconcile_run(struct daemon *d, int *drift, json_t **missing);

/* Activation deadlines (deadline.c): count pending purchases by how close Microsoft's 30-day
 * cancellation is (gauge saasd_pending_activation{deadline="passed|within_day|within_week|later"}),
 * with warn_now log a warning a week and a day before (once each, remembered in the record), and
 * list them in *list (new reference) when not NULL:
 * [{subscriptionId, offerId, status, decision, deadline, deadline_ms, days_left, warned}]. */
int deadline_pass(struct daemon *d, int warn_now, json_t **list);

#endif
