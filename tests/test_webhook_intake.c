/* Webhook intake: whatever is answered 200 is something the inbox workers can act on. A body
 * whose inbox entry would not load (the entry wraps the body one level deeper than the body
 * itself, so a body at the JSON parser's depth limit parses alone but not as an entry) is
 * refused with 400 and nothing is stored; a body one level shallower is acknowledged and acted
 * on. First webhook_event_from_body() alone, then the same bodies through the running daemon. */
#include "it_support.h"

#include "daemon/webhook_body.h"

/* {"id":op,"subscriptionId":sub,"action":"Suspend","x":[[...]]} with `arrays` nested arrays:
 * the body nests arrays + 1 levels. */
static char *nested_event(const char *op, const char *sub, int arrays)
{
    size_t n = (size_t)arrays * 2 + 512;
    char *s = malloc(n);
    int k = snprintf(s, n, "{\"id\":\"%s\",\"subscriptionId\":\"%s\",\"action\":\"Suspend\",\"x\":", op, sub);
    memset(s + k, '[', (size_t)arrays);
    memset(s + k + arrays, ']', (size_t)arrays);
    snprintf(s + k + 2 * arrays, n - (size_t)k - 2 * (size_t)arrays, "}");
    return s;
}

static void unit_checks(void)
{
    int limit = JSON_PARSER_MAX_DEPTH; /* jansson's: a body of depth `limit` parses, limit + 1 not */
    struct webhook_event ev;
    const char *why = NULL;
    char *deep = nested_event("op-deep", "sub-1", limit - 1);
    json_t *alone = json_loads(deep, 0, NULL);
    int rc = webhook_event_from_body(deep, strlen(deep), "req-1", 1, &ev, &why);
    CHECK(alone && rc == SAASD_EINVAL && !ev.entry && why && strstr(why, "deep"),
          "a body at the parser's depth limit (2047 nested arrays) parses alone but is refused: its entry would not load");
    json_decref(alone);
    webhook_event_clear(&ev);
    free(deep);

    char *ok = nested_event("op-ok", "sub-1", limit - 2);
    rc = webhook_event_from_body(ok, strlen(ok), "req-2", 1, &ev, &why);
    json_t *back = rc == 0 && ev.entry ? webhook_entry_load(ev.entry, ev.entry_len) : NULL;
    json_t *body = json_loads(ok, 0, NULL);
    CHECK(back && json_equal(json_object_get(back, "payload"), body) &&
              !strcmp(json_string_value(json_object_get(back, "op_id")), "op-ok") && !strcmp(ev.action, "Suspend"),
          "a body one level shallower is accepted and its entry loads with the payload intact");
    json_decref(back);
    json_decref(body);
    webhook_event_clear(&ev);
    free(ok);

    const struct {
        const char *body;
        int want;
        const char *name;
    } rows[] = {
        {"[1,2]", SAASD_EINVAL, "a body that is an array is refused as not an object"},
        {"{\"id\":\"a\",\"subscriptionId\":\"b\",\"action\":\"Suspend\"} x", SAASD_EINVAL,
         "a body with trailing garbage is refused as not an object"},
        {"{\"subscriptionId\":\"b\",\"action\":\"Suspend\"}", SAASD_ENOTFOUND, "a body without an id is refused"},
        {"{\"operationId\":\"a\",\"subscriptionId\":\"b\",\"action\":\"suspend\"}", 0,
         "a pre-2020 body (operationId, lower-case action) is accepted"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        rc = webhook_event_from_body(rows[i].body, strlen(rows[i].body), "req", 1, &ev, &why);
        json_t *loaded = rc == 0 && ev.entry ? webhook_entry_load(ev.entry, ev.entry_len) : NULL;
        CHECK(rc == rows[i].want && (rc != 0 || loaded), rows[i].name);
        json_decref(loaded);
        webhook_event_clear(&ev);
    }
    /* The header is written without jansson for plain ids; ids that need escaping (or are not
     * ASCII) take the encoder, and both must come back from the stored entry unchanged. */
    const char *ids[][2] = {{"0a1b2c3d-0000-4000-8000-00000000abcd", "plain ids"},
                            {"q\\\"uote\\\\back\\tslash", "ids with quotes, backslashes and tabs"},
                            {"caf\u00e9-\u65e5\u672c", "non-ASCII ids"}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char text[512], name[160];
        snprintf(text, sizeof text, "{\"id\":\"%s\",\"subscriptionId\":\"%s\",\"offerId\":\"%s\",\"action\":\"Renew\"}",
                 ids[i][0], ids[i][0], ids[i][0]);
        json_t *want = json_loads(text, 0, NULL);
        rc = webhook_event_from_body(text, strlen(text), "req-\"x", 42, &ev, &why);
        json_t *got = rc == 0 && ev.entry ? webhook_entry_load(ev.entry, ev.entry_len) : NULL;
        const char *id = json_string_value(json_object_get(want, "id"));
        snprintf(name, sizeof name, "the stored entry carries %s, the request id and the time unchanged", ids[i][1]);
        CHECK(got && id && !strcmp(json_string_value(json_object_get(got, "op_id")), id) &&
                  !strcmp(json_string_value(json_object_get(got, "sub_id")), id) &&
                  !strcmp(json_string_value(json_object_get(got, "offer_id")), id) &&
                  !strcmp(json_string_value(json_object_get(got, "action")), "Renew") &&
                  !strcmp(json_string_value(json_object_get(got, "request_id")), "req-\"x") &&
                  json_integer_value(json_object_get(got, "received_at")) == 42 &&
                  json_integer_value(json_object_get(got, "attempts")) == 0 &&
                  json_equal(json_object_get(got, "payload"), want),
              name);
        json_decref(got);
        json_decref(want);
        webhook_event_clear(&ev);
    }
    const char *odd = "{\"id\":\"a\",\"subscriptionId\":\"b\",\"action\":\"Transfer\"}";
    rc = webhook_event_from_body(odd, strlen(odd), "req", 1, &ev, &why);
    CHECK(rc == 0 && !ev.action && !ev.entry && !strcmp(ev.action_text, "Transfer"),
          "an unknown action is recognised as such and builds no inbox entry");
    webhook_event_clear(&ev);
}

/* How many x-request-id headers an answer carries. */
static int request_id_headers(const char *headers)
{
    int n = 0;
    for (const char *p = headers; p && (p = strcasestr(p, "\nx-request-id:")) != NULL; p++)
        n++;
    return n;
}

static long post_raw_ids(const char *url, const char *token, const char *body, int *ids)
{
    char auth[8300];
    snprintf(auth, sizeof auth, "Bearer %s", token);
    struct http_header h[2] = {{"Content-Type", "application/json"}, {"Authorization", auth}};
    struct http_request rq = {.method = "POST", .url = url, .headers = h, .nheaders = 2, .body = body,
                              .body_len = strlen(body), .timeout_ms = 30000};
    struct http_response rs;
    if (http_client_do(it_http, &rq, &rs))
        return 0;
    long st = rs.status;
    if (ids)
        *ids = request_id_headers(rs.headers);
    http_response_free(&rs);
    return st;
}

static long post_raw(const char *url, const char *token, const char *body)
{
    return post_raw_ids(url, token, body, NULL);
}

int main(void)
{
    unit_checks();

    char dir[256], rules[512], path[1024], sub[128], url[256];
    struct emu *emu = it_setup("intake", dir, rules);
    if (!emu)
        return CHECK_DONE();
    char rule_file[1024];
    snprintf(rule_file, sizeof rule_file, "%s/intake-offer.lua", rules); /* offers without a file are held pending */
    it_write_file(rule_file, "return {}\n");
    snprintf(path, sizeof path, "%s/saasd.conf", dir);
    it_write_config(path, dir, it_free_port(), it_free_port(), NULL);
    struct daemon *d = it_start_daemon(path);
    if (!d) {
        emu_stop(emu);
        return CHECK_DONE();
    }
    it_offer("intake-offer");
    char *landing = it_purchase("intake-offer", 3, sub, sizeof sub);
    long st = 0;
    it_land(landing, NULL); /* sign in and confirm, as the buyer does */
    free(landing);
    json_t *tok = it_emu("POST", "/_emulator/tokens", json_pack("{s:s}", "kind", "webhook"), &st);
    char token[8192];
    snprintf(token, sizeof token, "%s", it_str(tok, "access_token"));
    json_decref(tok);
    snprintf(url, sizeof url, "%s/webhook", it_public_url);

    /* Operations Microsoft never created: once acted on, each is asked about and ignored. */
    const char *deep_op = "d0000000-0000-4000-8000-000000002047";
    const char *ok_op = "d0000000-0000-4000-8000-000000002046";
    char *deep = nested_event(deep_op, sub, JSON_PARSER_MAX_DEPTH - 1);
    char *ok = nested_event(ok_op, sub, JSON_PARSER_MAX_DEPTH - 2);
    long deep_status = post_raw(url, token, deep);
    long ok_status = post_raw(url, token, ok);
    json_t *acted = ok_status == 200 ? it_wait_audit(sub, ok_op, 15000) : NULL;
    it_settle(d->store, 5000);
    size_t inbox = 1;
    store_count(d->store, STORE_INBOX, &inbox);
    void *val = NULL;
    size_t vlen = 0;
    CHECK(deep_status == 400 && it_audit_count(sub, deep_op, NULL) == 0 && inbox == 0 &&
              store_get(d->store, STORE_OPERATIONS, deep_op, strlen(deep_op), &val, &vlen) == SAASD_ENOTFOUND,
          "a signed webhook nesting 2047 arrays is answered 400 and nothing is stored or acknowledged");
    free(val);
    CHECK(ok_status == 200 && acted && !strcmp(it_str(acted, "decision"), "ignored"),
          "a signed webhook nesting 2046 arrays is answered 200 and acted on by a worker");
    json_decref(acted);
    free(deep);
    free(ok);

    /* Every answer carries its correlation id once, whether given at once or after the commit. */
    char body[512];
    int ids[4] = {0};
    long sts[4];
    snprintf(body, sizeof body, "{\"id\":\"d0000000-0000-4000-8000-000000003001\",\"subscriptionId\":\"%s\",\"action\":\"Renew\"}", sub);
    sts[0] = post_raw_ids(url, token, body, &ids[0]); /* stored: answered by the commit callback */
    sts[1] = post_raw_ids(url, token, body, &ids[1]); /* a duplicate, or its twin still waiting */
    snprintf(body, sizeof body, "{\"id\":\"d0000000-0000-4000-8000-000000003002\",\"subscriptionId\":\"%s\",\"action\":\"Transfer\"}", sub);
    sts[2] = post_raw_ids(url, token, body, &ids[2]); /* unknown action: answered at once */
    sts[3] = post_raw_ids(url, token, "{\"subscriptionId\":\"x\"}", &ids[3]); /* 400 */
    CHECK(sts[0] == 200 && sts[1] == 200 && sts[2] == 200 && sts[3] == 400 && ids[0] == 1 && ids[1] == 1 &&
              ids[2] == 1 && ids[3] == 1,
          "stored, duplicate, ignored and refused webhooks each carry exactly one x-request-id header");

    daemon_stop(d);
    emu_stop(emu);
    check_rm_rf(dir);
    return CHECK_DONE();
}
