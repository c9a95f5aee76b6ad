/* The tree-free scan of webhook bodies (src/daemon/webhook_scan.c) agrees with the tree path
 * (jansson + json_lenient) on every body it takes, declines every body where they could differ,
 * and takes the usual plain Microsoft body. */
#include "check.h"

#include "core/err.h"
#include "core/json_lenient.h"
#include "daemon/webhook_body.h"
#include "daemon/webhook_scan.h"

#include <jansson.h>

/* What the tree path reads from body: 1 and the four members when it would file the event. */
static int tree_read(const char *body, struct webhook_event *ev)
{
    memset(ev, 0, sizeof *ev);
    json_t *p = json_loadb(body, strlen(body), 0, NULL);
    int ok = json_is_object(p) &&
             !(jl_string(p, "id", ev->op_id, sizeof ev->op_id) &&
               jl_string(p, "operationId", ev->op_id, sizeof ev->op_id)) &&
             !jl_string(p, "subscriptionId", ev->sub_id, sizeof ev->sub_id) &&
             !jl_string(p, "action", ev->action_text, sizeof ev->action_text);
    jl_string(p, "offerId", ev->offer_id, sizeof ev->offer_id);
    json_decref(p);
    return ok;
}

static int same_members(const struct webhook_event *a, const struct webhook_event *b)
{
    return !strcmp(a->op_id, b->op_id) && !strcmp(a->sub_id, b->sub_id) && !strcmp(a->action_text, b->action_text) &&
           !strcmp(a->offer_id, b->offer_id);
}

#define MS_BODY                                                                                              \
    "{\"id\":\"74e0f2c5-0000-4000-8000-000000000001\",\"activityId\":\"a1\",\"subscriptionId\":"             \
    "\"37f9dea2-0000-4000-8000-000000000002\",\"publisherId\":\"contoso\",\"offerId\":\"offer-1\",\"planId\":" \
    "\"gold\",\"quantity\":5,\"timeStamp\":\"2026-11-24T00:00:00Z\",\"action\":\"Renew\",\"status\":"          \
    "\"Succeeded\",\"operationRequestSource\":\"Azure\",\"subscription\":{\"id\":\"nested\",\"a\":[1,2.5,true,null]},"  \
    "\"purchaseToken\":null}"

/* Whether what the scan read of the targets is what json_lenient reads from the tree (as
 * flows_event.c's op_target does): the same presence and value, unless it said unsure. */
static int targets_agree(const char *body, const struct webhook_event *ev)
{
    if (ev->targets & WS_TARGET_UNSURE)
        return 1;
    json_t *t = json_loads(body, 0, NULL);
    long long q = 0;
    char plan[256];
    int has_q = jl_int(t, "quantity", &q) == 0, has_p = jl_string(t, "planId", plan, sizeof plan) == 0;
    json_decref(t);
    return has_q == !!(ev->targets & WS_QUANTITY) && (!has_q || q == ev->quantity) &&
           has_p == !!(ev->targets & WS_PLAN) && (!has_p || !strcmp(plan, ev->plan_id));
}

#define IDS "\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"ChangeQuantity\""

/* A change's target is read by the scan only where the tree path reads the same; everywhere
 * else the scan says unsure (and the worker parses), never a different value. */
static void target_checks(void)
{
    static const struct {
        const char *body;
        unsigned targets; /* what the scan must say */
        const char *name;
    } rows[] = {
        {"{" IDS ",\"quantity\":12,\"planId\":\" gold \"}", WS_QUANTITY | WS_PLAN,
         "an integer quantity and a planId (blanks trimmed) are read as the tree path reads them"},
        {"{" IDS ",\"subscription\":{\"quantity\":3,\"planId\":\"x\"}}", 0,
         "targets nested in the subscription are not the change's: none read"},
        {"{" IDS ",\"quantity\":\"12\"}", WS_TARGET_UNSURE, "a quantity in a string is left to the tree path"},
        {"{" IDS ",\"quantity\":12.0}", WS_TARGET_UNSURE, "a real quantity is left to the tree path"},
        {"{" IDS ",\"quantity\":null}", WS_TARGET_UNSURE, "a null quantity is left to the tree path"},
        {"{" IDS ",\"Quantity\":12}", WS_TARGET_UNSURE, "a quantity in another case is left to the tree path"},
        {"{" IDS ",\"quantity\":1,\"quantity\":2}", WS_QUANTITY | WS_TARGET_UNSURE,
         "a repeated quantity (the tree keeps the last) is left to the tree path"},
        {"{" IDS ",\"planId\":\"  \"}", WS_TARGET_UNSURE, "a blank planId is left to the tree path"},
        {"{" IDS ",\"planId\":7}", WS_TARGET_UNSURE, "a numeric planId is left to the tree path"},
        {"{" IDS ",\"planId\":{\"a\":1}}", WS_TARGET_UNSURE, "an object for planId is left to the tree path"},
        {"{" IDS ",\"PLANID\":\"gold\"}", WS_TARGET_UNSURE, "a planId in another case is left to the tree path"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct webhook_event ev;
        memset(&ev, 0, sizeof ev);
        int taken = webhook_scan(rows[i].body, strlen(rows[i].body), &ev);
        CHECK(taken && ev.targets == rows[i].targets && targets_agree(rows[i].body, &ev), rows[i].name);
    }
}

/* Split text: the tree of what webhook_entry_split gives as the head (NULL when refused). */
static json_t *split(const char *text, struct entry_payload *p)
{
    json_t *head = NULL;
    return webhook_entry_split(text, strlen(text), &head, p) == 0 ? head : NULL;
}

/* A worker reads an entry's header without parsing the payload only where that is exactly what
 * parsing the whole entry gives; anywhere else it parses the whole entry as before. */
static void split_checks(void)
{
    struct webhook_event ev;
    const char *why = NULL;
    struct entry_payload p;
    webhook_event_from_body(MS_BODY, strlen(MS_BODY), "req-1", 7, &ev, &why);
    json_t *whole = webhook_entry_load(ev.entry, ev.entry_len);
    json_t *head = split(ev.entry, &p);
    json_t *header = json_deep_copy(whole);
    json_object_del(header, "payload");
    CHECK(head && p.text && p.len == strlen(MS_BODY) && !strcmp(p.text, MS_BODY) && json_equal(head, header),
          "a stored webhook splits into its header's tree and the body's text as Microsoft sent it");
    CHECK(p.read.targets == (WS_QUANTITY | WS_PLAN) && p.read.quantity == 5 && !strcmp(p.read.plan_id, "gold") &&
              !strcmp(p.read.sub_id, "37f9dea2-0000-4000-8000-000000000002"),
          "the split payload comes with its ids and its targets (quantity, planId) read by the scan");
    size_t jlen = 0;
    char *joined = head ? webhook_entry_join(head, &p, &jlen) : NULL;
    CHECK(joined && jlen == ev.entry_len && !memcmp(joined, ev.entry, jlen),
          "header and payload join back into the very entry webhook.c stored");
    free(joined);
    json_decref(head);
    json_decref(header);
    entry_payload_clear(&p);

    /* an older outbox entry: a member after the payload */
    char *late = json_dumps(whole, JSON_COMPACT);
    late[strlen(late) - 1] = 0;
    char older[8192];
    snprintf(older, sizeof older, "%s,\"last_error\":\"HTTP 503\"}", late);
    head = split(older, &p);
    CHECK(head && !p.text && json_equal(json_object_get(head, "payload"), json_object_get(whole, "payload")) &&
              json_string_value(json_object_get(head, "last_error")),
          "an entry with a member after the payload is parsed whole (no payload text cut short)");
    json_decref(head);
    free(late);

    /* the payload first */
    json_t *first = json_pack("{s:O}", "payload", json_object_get(whole, "payload"));
    json_object_update_missing(first, whole);
    char *ftext = json_dumps(first, JSON_COMPACT);
    head = split(ftext, &p);
    CHECK(head && !p.text && json_equal(head, whole), "an entry with the payload first is parsed whole");
    json_decref(head);
    free(ftext);
    json_decref(first);
    webhook_event_clear(&ev);

    /* a payload the scan declines (non-ASCII text) */
    const char *accent = "{\"id\":\"o\",\"subscriptionId\":\"s\",\"action\":\"Renew\",\"name\":\"caf\xc3\xa9\"}";
    webhook_event_from_body(accent, strlen(accent), "r", 1, &ev, &why);
    head = ev.entry ? split(ev.entry, &p) : NULL;
    CHECK(head && !p.text && json_is_object(json_object_get(head, "payload")),
          "a payload the scan declines is parsed with the entry, as before");
    json_decref(head);
    webhook_event_clear(&ev);
    json_decref(whole);

    CHECK(split("{\"op_id\":\"o\",\"payload\":{\"id\":", &p) == NULL && !p.text,
          "an entry that does not parse is refused");
}

int main(void)
{
    static const struct {
        const char *body;
        int taken; /* 1: the scan must take it, 0: must decline */
        const char *name;
    } rows[] = {
        {MS_BODY, 1, "a Microsoft webhook body is read without a tree, nested ids ignored"},
        {"{ \"id\" : \"  op-1 \", \"subscriptionId\":\"s\", \"action\":\"suspend\" }\n", 1,
         "blanks around members and values are trimmed as json_lenient does; no offerId reads as empty"},
        {"{\"id\":\"op\",\"ID\":\"other\",\"subscriptionId\":\"s\",\"action\":\"Renew\"}", 0,
         "a key equal to a member but for case is left to the tree path"},
        {"{\"Id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\"}", 0, "a member only in another case is declined"},
        {"{\"id\":\"a\",\"id\":\"b\",\"subscriptionId\":\"s\",\"action\":\"Renew\"}", 0, "a repeated member is declined"},
        {"{\"id\":5,\"subscriptionId\":\"s\",\"action\":\"Renew\"}", 0, "a member that is not a string is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":{\"x\":1},\"action\":\"Renew\"}", 0, "a member that is an object is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":null}", 0, "a null member is declined"},
        {"{\"id\":\" \",\"operationId\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\"}", 0,
         "a blank id (operationId then counts) is declined"},
        {"{\"operationId\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\"}", 0, "a pre-2020 body is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\",\"n\":-9223372036854775808}", 0,
         "LLONG_MIN (which yajl refuses and jansson takes) is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\",\"n\":9223372036854775808}", 0,
         "an integer overflow is declined (jansson refuses it too)"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\",\"n\":1e400}", 0, "a real overflow is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\",\"x\":\"\\ud800\"}", 0,
         "an escape (a lone surrogate jansson refuses) is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\",\"x\":\"caf\xc3\xa9\"}", 0, "non-ASCII text is declined"},
        {"[{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\"}]", 0, "a top-level array is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\"} x", 0, "trailing garbage is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\"}\":", 0,
         "the start of an unterminated string after the object is declined (yajl waits for its end)"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\"} \r\n", 1, "blanks after the object are taken"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\"", 0, "a truncated body is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\",\"offerId\":7}", 0, "a numeric offerId is declined"},
        {"{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"" "ThisActionNameIsFarTooLongToFitTheBufferOfSixtyFourCharactersXXXXX\"}",
         0, "a member too long for its buffer is declined"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct webhook_event fast, tree;
        memset(&fast, 0, sizeof fast);
        int taken = webhook_scan(rows[i].body, strlen(rows[i].body), &fast);
        int filed = tree_read(rows[i].body, &tree);
        CHECK(taken == rows[i].taken && (!taken || (filed && same_members(&fast, &tree))), rows[i].name);
    }

    /* Nesting: the scan declines past WS_MAX_DEPTH levels and the tree path decides. */
    char deep[4096];
    size_t n = (size_t)snprintf(deep, sizeof deep, "{\"id\":\"op\",\"subscriptionId\":\"s\",\"action\":\"Renew\",\"x\":");
    for (int d = 0; d < WS_MAX_DEPTH; d++)
        deep[n++] = '[';
    for (int d = 0; d < WS_MAX_DEPTH; d++)
        deep[n++] = ']';
    memcpy(deep + n, "}", 2);
    struct webhook_event ev;
    CHECK(!webhook_scan(deep, strlen(deep), &ev), "a body nesting deeper than WS_MAX_DEPTH is declined");

    /* Through webhook_event_from_body: the fast path's entry loads back with the body intact. */
    const char *why = NULL;
    int rc = webhook_event_from_body(MS_BODY, strlen(MS_BODY), "req-1", 7, &ev, &why);
    json_t *back = rc == 0 && ev.entry ? webhook_entry_load(ev.entry, ev.entry_len) : NULL;
    json_t *body = json_loads(MS_BODY, 0, NULL);
    CHECK(back && json_equal(json_object_get(back, "payload"), body) &&
              !strcmp(json_string_value(json_object_get(back, "op_id")), "74e0f2c5-0000-4000-8000-000000000001") &&
              !strcmp(json_string_value(json_object_get(back, "offer_id")), "offer-1") && !strcmp(ev.action, "Renew"),
          "a body read by the scan is stored as an entry that loads with the payload and ids intact");
    json_decref(back);
    json_decref(body);
    webhook_event_clear(&ev);
    const char *unknown = "{\"id\":\"o\",\"subscriptionId\":\"s\",\"action\":\"Explode\"}";
    rc = webhook_event_from_body(unknown, strlen(unknown), "r", 1, &ev, &why);
    CHECK(rc == 0 && !ev.action && !ev.entry && !strcmp(ev.action_text, "Explode"),
          "an unknown action read by the scan is acknowledged, not stored");
    webhook_event_clear(&ev);
    target_checks();
    split_checks();
    return CHECK_DONE();
}
