/* Helpers shared by the flow files (flows.c, flows_event.c); not for other code. */
#ifndef SAASD_FLOWS_INTERNAL_H
#define SAASD_FLOWS_INTERNAL_H

#include <jansson.h>

struct daemon;
struct decision;
struct store_batch;

/* An audit entry {op_id, action, decision, detail} with the rule file and hash of dec when given. */
json_t *flows_audit_entry(const char *op_id, const char *action, const char *decision, const char *detail,
                          const struct decision *dec);
/* Append entry (consumed) to b as sub_id's audit record. */
int flows_add_audit(struct store_batch *b, const char *sub_id, json_t *entry);
/* The same, for a decision: also appends, in b, the event the decision is (events.c's table; as
 * event_decision when not NULL, else the entry's decision), with data from rec. */
int flows_add_decision(struct store_batch *b, const char *sub_id, json_t *rec, json_t *entry, const char *event_decision);
/* A fresh local record for sub_id from Microsoft's subscription object. */
json_t *flows_record_new(const char *sub_id, json_t *snapshot);
/* The offer of a record (fallback, then "default", when it has none). */
const char *flows_offer_of(json_t *rec, const char *fallback);
/* Record a provision decision in rec. */
void flows_set_provision(json_t *rec, const char *decision, const struct decision *dec);
/* Append to b an inbox event for an operation saasd started itself (a publisher change, a cancel
 * after a refusal), so its effects (the unsubscribe handler, the local state) follow the same
 * table as a webhook, exactly once: the webhook Microsoft may send for it has the same id and is
 * dropped as a duplicate. */
int flows_enqueue_own_operation(struct store_batch *b, const char *sub_id, const char *offer, json_t *op);
/* GET the subscription; NULL when Microsoft cannot be asked now. */
json_t *flows_get_subscription(struct daemon *d, const char *sub_id);
/* The same, and into *text (malloc'd; NULL when none) the subscription's JSON text: Microsoft's
 * answer as it came when it is one line, else the tree encoded. */
json_t *flows_get_subscription_text(struct daemon *d, const char *sub_id, char **text);
/* Keep a change Microsoft accepted but does not show yet ("accepted, not shown at Microsoft
 * yet"): rec's field becomes target with a pending_change marker, confirmed (marker removed) once
 * Microsoft shows it. */
void flows_mark_pending_change(json_t *rec, const char *op_id, const char *field, json_t *target);

#endif
