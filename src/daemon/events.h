/* Events for the ISV's own systems: one catalogue of event types (events.c, mirrored by the
 * README's event table; tests/test_events.c checks that they agree), and the one way to write an
 * event: appended to the EVENTS database in the same store batch as the decision or state change
 * it reports, so an event exists exactly when its cause was committed. Delivery to the
 * configured sinks is sinks.c. */
#ifndef SAASD_EVENTS_H
#define SAASD_EVENTS_H

#include <jansson.h>
#include <stddef.h>

struct store_batch;

struct event_type {
    const char *type;    /* "subscription.activated" */
    const char *cause;   /* when saasd emits it (README) */
    const char *summary; /* one line for chat messages and e-mail subjects, with {{placeholders}} */
    const char *example; /* an example of its data object, JSON (README) */
};

/* Every event type, in the README's order. */
const struct event_type *events_catalogue(size_t *n);
/* The row of a type, NULL when it is not in the catalogue. */
const struct event_type *events_find(const char *type);

/* Append the event {id, type, time, offer, subscription, data} to b. data is consumed (NULL =
 * {}); offer and sub_id may be NULL (an event about no subscription). */
int events_add(struct store_batch *b, const char *type, const char *offer, const char *sub_id, json_t *data);

/* The event a flow decision is (action "Provision", "ChangePlan", ... and the decision written
 * in the audit trail): appended to b with data from the local record rec (plan, seats, status)
 * and the audit entry (op id, detail, rule file and SHA-256). 0 and nothing appended when the
 * decision is no event (ignored, already done, ...). */
int events_for_decision(struct store_batch *b, const char *action, const char *decision, const char *sub_id,
                        json_t *rec, json_t *audit);

/* text with every {{name}} replaced by the event's value: id, type, time, offer, subscription,
 * summary, data (as JSON) or data.<field>; html = 1 escapes the values for HTML. An unknown name
 * becomes "". No logic, no loops: plain substitution. malloc'd result. */
char *events_render(const char *text, json_t *event, int html);

#endif
