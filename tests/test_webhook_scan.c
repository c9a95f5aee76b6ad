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
    return CHECK_DONE();
}
