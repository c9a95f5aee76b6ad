/* Emulator: what it keeps between requests to answer faster (GET subscription / GET operation
 * texts, the call log ring, the index of each subscription's operations) never shows a stale
 * state, whichever path changed it: a PATCH of the operation, the timer completing a publisher
 * change, Activate, DELETE, the control API and its knobs, a reset, a restart on saved state.
 * Driven over HTTP like a client would. */
#include "emu_harness.h"

#include <stdlib.h>

static char *body_of(const char *method, const char *path)
{
    struct reply r = mp(method, path, NULL);
    char *b = r.status == 200 && r.body ? strdup(r.body) : strdup("");
    reply_free(&r);
    return b;
}

static void same_text_twice(void)
{
    char sid[64], path[256];
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", sid);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    char *a = body_of("GET", path), *b = body_of("GET", path);
    json_t *j = json_loads(a, 0, NULL);
    CHECK(*a && !strcmp(a, b) && json_object_get(j, "id") && !json_object_get(j, "_seq"),
          "a subscription read twice without a change is the same text, without internal fields");
    json_decref(j);
    free(a);
    free(b);
}

static void operation_patch_shows_at_once(void)
{
    struct reply c = ctl("PUT", "/_emulator/config", "{\"ackWindowMs\":60000,\"webhookUrl\":null}");
    reply_free(&c);
    char sid[64], op[64];
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", sid);
    CHECK(customer(sid, "change-quantity", "{\"quantity\":6}", op) == 202, "a customer quantity change is accepted");
    CHECK(sub_quantity(sid) == 2 && !strcmp(wait_op(sid, op, 0), "InProgress"),
          "before the ACK: the subscription has 2 seats, the operation is InProgress (both read, so kept)");
    char opp[300];
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sid, op);
    struct reply r = mp("PATCH", opp, "{\"status\":\"Success\"}");
    CHECK(r.status == 200, "PATCH Success of the operation answers 200");
    reply_free(&r);
    CHECK(sub_quantity(sid) == 6, "the subscription read right after the PATCH Success shows 6 seats");
    CHECK(!strcmp(wait_op(sid, op, 0), "Succeeded"), "the operation read right after its PATCH is Succeeded");
}

static void timer_completion_shows(void)
{
    char sid[64], path[256], op[64];
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", sid);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    CHECK(sub_quantity(sid) == 2, "a subscription with 2 seats is read");
    struct reply r = mp("PATCH", path, "{\"quantity\":3}");
    const char *loc = reply_header(&r, "Operation-Location"), *p = loc ? strstr(loc, "/operations/") : NULL;
    snprintf(op, sizeof op, "%.36s", p ? p + 12 : "none");
    CHECK(r.status == 202, "a publisher quantity change is accepted (202)");
    reply_free(&r);
    CHECK(!strcmp(wait_op(sid, op, 0), "InProgress"), "the publisher's operation is read while InProgress");
    CHECK(!strcmp(wait_op(sid, op, 3000), "Succeeded"),
          "the operation polled while the timer completes it turns Succeeded");
    CHECK(sub_quantity(sid) == 3, "the subscription then shows the 3 seats the timer applied");

    CHECK(!strcmp(sub_status(sid), "Subscribed"), "the subscription is read as Subscribed");
    r = mp("DELETE", path, NULL);
    p = reply_header(&r, "Operation-Location") ? strstr(reply_header(&r, "Operation-Location"), "/operations/") : NULL;
    snprintf(op, sizeof op, "%.36s", p ? p + 12 : "none");
    reply_free(&r);
    CHECK(!strcmp(wait_op(sid, op, 3000), "Succeeded") && !strcmp(sub_status(sid), "Unsubscribed"),
          "after a DELETE completes, the subscription read again is Unsubscribed");
}

static void activate_shows(void)
{
    char sid[64];
    snprintf(sid, sizeof sid, "%s", buy("{\"planId\":\"basic\"}", NULL, 0));
    CHECK(!strcmp(sub_status(sid), "PendingFulfillmentStart"), "a bought subscription is read as PendingFulfillmentStart");
    CHECK(activate(sid, "{\"planId\":\"basic\"}") == 200, "Activate answers 200");
    json_t *s = get_sub(sid);
    CHECK(!strcmp(jstr(s, "saasSubscriptionStatus"), "Subscribed") && strcmp(jstr(s, "lastModified"), "0001-01-01T00:00:00"),
          "the subscription read right after Activate is Subscribed, with its new lastModified");
    json_decref(s);
}

static void control_changes_show(void)
{
    char sid[64];
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", sid);
    json_t *s = get_sub(sid);
    CHECK(json_object_get(s, "created") != NULL, "a subscription is read with its created time");
    json_decref(s);
    struct reply c = ctl("PUT", "/_emulator/config", "{\"omitCreated\":true}");
    reply_free(&c);
    s = get_sub(sid);
    CHECK(s && !json_object_get(s, "created"), "after the omitCreated knob is set, the same subscription is read without it");
    json_decref(s);
    c = ctl("PUT", "/_emulator/config", "{\"omitCreated\":false}");
    reply_free(&c);

    CHECK(customer(sid, "suspend", NULL, NULL) == 202 && !strcmp(sub_status(sid), "Suspended"),
          "after a Suspend through the control API, the subscription read again is Suspended");
    c = ctl("POST", "/_emulator/reset", "{}");
    reply_free(&c);
    char path[256];
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    struct reply r = mp("GET", path, NULL);
    CHECK(r.status == 404, "after a reset, a subscription read before is 404");
    reply_free(&r);
}

static void previous_view_shows(void)
{
    struct reply c = ctl("PUT", "/_emulator/config", "{\"ackWindowMs\":60000,\"subUpdateDelayMs\":300}");
    reply_free(&c);
    char sid[64], op[64], opp[300];
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", sid);
    customer(sid, "change-quantity", "{\"quantity\":4}", op);
    CHECK(sub_quantity(sid) == 2, "with subUpdateDelayMs, a subscription is read with 2 seats");
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sid, op);
    struct reply r = mp("PATCH", opp, "{\"status\":\"Success\"}");
    reply_free(&r);
    CHECK(sub_quantity(sid) == 2, "right after the change it still shows the previous 2 seats (the delay)");
    usleep(400000);
    CHECK(sub_quantity(sid) == 4, "once the delay is over it shows the 4 seats");
    c = ctl("PUT", "/_emulator/config", "{\"subUpdateDelayMs\":0}");
    reply_free(&c);
}

/* The call log holds the latest 2 000 calls to Microsoft's surfaces, oldest first. */
static void call_log_keeps_latest(void)
{
    enum { N = 2005 };
    char path[128];
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "/api/saas/subscriptions/calls-%d", i);
        struct reply r = mp("GET", path, NULL);
        reply_free(&r);
    }
    struct reply r = ctl("GET", "/_emulator/calls", NULL);
    json_t *calls = json_object_get(r.json, "calls");
    int in_order = json_array_size(calls) == 2000;
    for (size_t i = 0; in_order && i < 2000; i++) {
        json_t *c = json_array_get(calls, i);
        snprintf(path, sizeof path, "/api/saas/subscriptions/calls-%zu", i + (N - 2000));
        in_order = !strcmp(jstr(c, "path") ? jstr(c, "path") : "", path) && !strcmp(jstr(c, "method"), "GET") &&
                   json_integer_value(json_object_get(c, "status")) == 404 && jstr(c, "at") && strlen(jstr(c, "at")) == 28;
    }
    CHECK(in_order, "after 2005 calls the call log holds the latest 2000, oldest first, with method, path, status, at");
    reply_free(&r);
    r = ctl("GET", "/_emulator/calls?method=get&path=*/calls-2004", NULL);
    CHECK(json_array_size(json_object_get(r.json, "calls")) == 1, "the call log filters by method and path glob");
    reply_free(&r);
}

static char DATA[64];
static void with_data(struct emu_options *o)
{
    o->data_dir = DATA;
    o->ack_window_ms = 3600000;
}

static size_t outstanding_count(const char *sid)
{
    char path[256];
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/operations", sid);
    struct reply r = mp("GET", path, NULL);
    size_t n = json_array_size(json_object_get(r.json, "operations"));
    reply_free(&r);
    return n;
}

/* The operations of one subscription: its own, oldest first, also after a reset and a restart. */
static void operations_by_subscription(void)
{
    char a[64], b[64], op1[64], op2[64], path[256];
    snprintf(a, sizeof a, "%s", buy("{\"planId\":\"seats\",\"quantity\":2,\"autoActivate\":true}", NULL, 0));
    snprintf(b, sizeof b, "%s", buy("{\"planId\":\"seats\",\"quantity\":2,\"autoActivate\":true}", NULL, 0));
    customer(a, "change-quantity", "{\"quantity\":3}", op1);
    customer(b, "change-quantity", "{\"quantity\":4}", op2);
    snprintf(path, sizeof path, "/_emulator/operations?subscriptionId=%s", a);
    struct reply r = ctl("GET", path, NULL);
    json_t *list = json_object_get(r.json, "operations");
    size_t n = json_array_size(list);
    CHECK(n == 2 && !strcmp(jps(r.json, "operations.0.action"), "Subscribe") &&
              !strcmp(jps(r.json, "operations.1.id"), op1),
          "the control API lists a subscription's own operations, oldest first");
    reply_free(&r);
    CHECK(outstanding_count(a) == 1 && outstanding_count(b) == 1, "List outstanding shows each subscription's own operation");
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", b);
    r = mp("PATCH", path, "{\"quantity\":5}");
    CHECK(r.status == 400 && jstatus_is(r.json, "Failed"), "a subscription with an InProgress operation is locked (400)");
    reply_free(&r);

    struct reply c = ctl("POST", "/_emulator/reset", "{}");
    reply_free(&c);
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", a);
    CHECK(outstanding_count(a) == 0 && customer(a, "change-quantity", "{\"quantity\":3}", op1) == 202 &&
              outstanding_count(a) == 1,
          "after a reset a new subscription starts with no operations, then lists its own");

    emu_down();
    snprintf(DATA, sizeof DATA, "/tmp/saasd-emu-texts-XXXXXX");
    if (!mkdtemp(DATA)) {
        printf("not ok - a temporary directory\n");
        return;
    }
    emu_up(with_data);
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", a);
    customer(a, "change-quantity", "{\"quantity\":3}", op1);
    emu_down();
    emu_up(with_data);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", a);
    r = mp("PATCH", path, "{\"quantity\":5}");
    CHECK(r.status == 400 && jstatus_is(r.json, "Failed") && outstanding_count(a) == 1,
          "after a restart on saved state, the operation still awaiting its ACK locks its subscription and is listed");
    reply_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", DATA);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", DATA);
}

int main(void)
{
    emu_up(NULL);
    same_text_twice();
    operation_patch_shows_at_once();
    timer_completion_shows();
    activate_shows();
    control_changes_show();
    previous_view_shows();
    call_log_keeps_latest();
    operations_by_subscription();
    emu_down();
    http_client_free(H);
    return CHECK_DONE();
}
