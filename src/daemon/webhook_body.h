/* The body of a webhook call turned into the inbox entry the workers will act on (webhook.c
 * stores it, inbox.c reads it back). Pure: no store, no daemon, no clock; fuzzed by
 * fuzz/fuzz_webhook_body.c. */
#ifndef SAASD_WEBHOOK_BODY_H
#define SAASD_WEBHOOK_BODY_H

#include <stddef.h>

#include <jansson.h>

/* What webhook_scan reads of a change's target (lifecycle.c: target_field) besides the ids. */
enum {
    WS_QUANTITY = 1,       /* quantity: an integer at the top level */
    WS_PLAN = 2,           /* plan_id: planId, a non-blank string at the top level */
    WS_TARGET_UNSURE = 4,  /* a target member the tree path could read otherwise (another type or
                              case, a repeat, a blank or long text): parse to know */
};

struct webhook_event {
    char op_id[128], sub_id[128], action_text[64], offer_id[128];
    long long quantity;
    char plan_id[128];
    unsigned targets;   /* WS_* above: which were read */
    const char *action; /* canonical name (static), NULL for an action saasd does not know */
    char *entry;        /* malloc'd inbox entry text; NULL when action is NULL */
    size_t entry_len;
};

/* Parse body[0..len), require id (or operationId), subscriptionId and action, and build the
 * inbox entry: a small header plus the body verbatim under "payload". The entry must load with
 * webhook_entry_load(), exactly as the inbox worker will load it; the body is parsed once and
 * its nesting checked against the parser's depth limit (the entry adds one level), so an event
 * that could never be
 * acted on is refused here instead of acknowledged. Returns 0 (event filled; entry set for a
 * known action), SAASD_EINVAL (not a JSON object, or the entry would not load: *why says
 * which), SAASD_ENOTFOUND (a required member is missing) or SAASD_ENOMEM. Release with
 * webhook_event_clear(). */
int webhook_event_from_body(const char *body, size_t len, const char *request_id, long long received_ms,
                            struct webhook_event *out, const char **why);
void webhook_event_clear(struct webhook_event *ev);

/* How many actions saasd knows, and the index (0..WEBHOOK_ACTIONS-1) of a canonical action
 * name as webhook_event_from_body sets it (the same pointer), -1 for anything else. */
#define WEBHOOK_ACTIONS 7
int webhook_action_index(const char *action);

/* An inbox entry as the workers read it (NULL when it does not parse). One function for both
 * sides, so "storable" and "loadable" cannot drift apart. */
json_t *webhook_entry_load(const void *text, size_t len);

/* An entry as a worker acts on it, without parsing the payload it will mostly pass on as text:
 * when the entry is laid out as webhook_event_from_body writes it (header, then the payload
 * last) and the payload is a plain object webhook_scan() reads for the header's subscription,
 * *head is the header's tree and payload holds the payload's text with what the scan read of
 * it. Otherwise (an entry written in another order, a payload the scan declines) *head is the
 * whole entry as webhook_entry_load() gives it and payload->text is NULL. 0, SAASD_EINVAL (the
 * entry does not load) or SAASD_ENOMEM. */
struct entry_payload {
    char *text;                /* malloc'd, NUL-terminated; NULL when head holds the payload */
    size_t len;
    struct webhook_event read; /* what webhook_scan read of text (ids, targets) */
};
int webhook_entry_split(const void *text, size_t len, json_t **head, struct entry_payload *payload);
void entry_payload_clear(struct entry_payload *p);
/* The entry's text again from those parts (head alone when p is NULL or holds no text), laid out
 * as webhook_event_from_body writes it. malloc'd, with *len; NULL when out of memory. */
char *webhook_entry_join(json_t *head, const struct entry_payload *p, size_t *len);

#endif
