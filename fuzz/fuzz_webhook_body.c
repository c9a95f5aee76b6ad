/* libFuzzer target: the webhook body path (src/daemon/webhook_body.c), the body of an
 * authenticated POST /webhook turned into the inbox entry.
 * Oracle besides the sanitizers: whatever is accepted with an entry loads back the way the
 * workers load it, with the body unchanged under "payload" and the ids it was filed under;
 * whatever is refused as too deep was a JSON object on its own; whatever the tree-free scan
 * takes, the tree path reads the same way (the change's targets included, or left unsure); a stored
 * entry splits into parts that make the entry again. */
#include "core/err.h"
#include "core/json_lenient.h"
#include "daemon/webhook_body.h"
#include "daemon/webhook_scan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entry(const struct webhook_event *ev, const json_t *body)
{
    json_t *back = webhook_entry_load(ev->entry, ev->entry_len);
    if (!back || !json_equal(json_object_get(back, "payload"), body) ||
        !json_is_string(json_object_get(back, "op_id")) ||
        strcmp(json_string_value(json_object_get(back, "op_id")), ev->op_id) ||
        strcmp(json_string_value(json_object_get(back, "sub_id")), ev->sub_id) ||
        strcmp(json_string_value(json_object_get(back, "action")), ev->action))
        abort(); /* would be acknowledged but not acted on as filed */
    json_decref(back);
}

/* The scan (webhook_scan.c) may only take a body the tree path files with the same members. */
static void check_scan(const uint8_t *data, size_t size, const json_t *body)
{
    struct webhook_event fast, tree;
    memset(&fast, 0, sizeof fast);
    memset(&tree, 0, sizeof tree);
    if (!webhook_scan((const char *)data, size, &fast))
        return;
    if (!json_is_object(body) ||
        (jl_string(body, "id", tree.op_id, sizeof tree.op_id) &&
         jl_string(body, "operationId", tree.op_id, sizeof tree.op_id)) ||
        jl_string(body, "subscriptionId", tree.sub_id, sizeof tree.sub_id) ||
        jl_string(body, "action", tree.action_text, sizeof tree.action_text))
        abort(); /* taken by the scan, refused by the tree */
    jl_string(body, "offerId", tree.offer_id, sizeof tree.offer_id);
    if (strcmp(fast.op_id, tree.op_id) || strcmp(fast.sub_id, tree.sub_id) ||
        strcmp(fast.action_text, tree.action_text) || strcmp(fast.offer_id, tree.offer_id))
        abort();
    /* the change's targets: read the same as json_lenient reads them, or left unsure */
    long long q = 0;
    char plan[256];
    int has_q = jl_int(body, "quantity", &q) == 0, has_p = jl_string(body, "planId", plan, sizeof plan) == 0;
    if (!(fast.targets & WS_TARGET_UNSURE) &&
        (has_q != !!(fast.targets & WS_QUANTITY) || (has_q && q != fast.quantity) ||
         has_p != !!(fast.targets & WS_PLAN) || (has_p && strcmp(plan, fast.plan_id))))
        abort();
}

/* A stored entry splits into a header and a payload that are the entry's own, or is parsed whole. */
static void check_split(const struct webhook_event *ev)
{
    json_t *head = NULL, *whole = webhook_entry_load(ev->entry, ev->entry_len);
    struct entry_payload p;
    if (webhook_entry_split(ev->entry, ev->entry_len, &head, &p) != 0)
        abort();
    json_t *payload = p.text ? json_loadb(p.text, p.len, 0, NULL) : json_incref(json_object_get(head, "payload"));
    if (p.text)
        json_object_set(head, "payload", payload);
    if (!json_equal(head, whole))
        abort();
    json_decref(payload);
    json_decref(head);
    json_decref(whole);
    entry_payload_clear(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct webhook_event ev;
    const char *why = NULL;
    int rc = webhook_event_from_body((const char *)data, size, "00000000-0000-4000-8000-000000000000", 1, &ev, &why);
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    check_scan(data, size, body);
    if (rc == 0 && ev.action) {
        check_entry(&ev, body);
        check_split(&ev);
    }
    else if (rc == 0 && ev.entry)
        abort(); /* an unknown action is acknowledged, never stored */
    else if (rc == SAASD_EINVAL && why && strstr(why, "deep") && !json_is_object(body))
        abort();
    else if (rc != 0 && rc != SAASD_EINVAL && rc != SAASD_ENOTFOUND && rc != SAASD_ENOMEM)
        abort();
    json_decref(body);
    webhook_event_clear(&ev);
    return 0;
}
