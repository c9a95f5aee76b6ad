/* Queues EVENTS webhook events for the "acting on events" benchmark (not a test; make bench):
 * creates EVENTS/2 per-seat purchases at the emulator, each activated at once (a Subscribe
 * operation) and then changed by the customer (a ChangeQuantity waiting for saasd's ACK), and
 * appends both events of every subscription to the daemon's inbox in that order, as the webhook
 * handler stores them (webhook_event_from_body). The daemon must not be running: it is started
 * afterwards and drains the inbox, so the figure is the workers' alone, not ingest's. */
#include "core/err.h"
#include "core/http_client.h"
#include "core/store.h"
#include "daemon/webhook_body.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct http_client *http;
static const char *emu;

/* One control-API call; the parsed answer, or NULL (and a message). */
static json_t *call(const char *method, const char *path, json_t *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", emu, path);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct http_header h[] = {{"Content-Type", "application/json"}};
    struct http_request rq = {.method = method, .url = url, .headers = h, .nheaders = 1, .body = text,
                              .body_len = text ? strlen(text) : 0, .timeout_ms = 120000};
    struct http_response rs = {0};
    int rc = http_client_do(http, &rq, &rs);
    json_t *out = rc == 0 && rs.status < 300 ? json_loadb(rs.body, rs.body_len, 0, NULL) : NULL;
    if (!out)
        fprintf(stderr, "drain_load: %s %s: %s (HTTP %ld) %.200s\n", method, path, saasd_strerror(rc), rs.status,
                rs.body ? rs.body : "");
    http_response_free(&rs);
    free(text);
    return out;
}

/* The webhook Microsoft would send for op: its fields, the subscription, no purchase token. */
static int queue_event(struct store_batch *b, json_t *op, json_t *sub)
{
    json_t *payload = json_deep_copy(op);
    json_object_set(payload, "subscription", sub);
    json_object_set_new(payload, "purchaseToken", json_null());
    char *body = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    struct webhook_event ev;
    const char *why = NULL;
    int rc = body ? webhook_event_from_body(body, strlen(body), "drain-bench", 0, &ev, &why) : SAASD_ENOMEM;
    free(body);
    if (rc)
        return rc;
    rc = ev.entry ? store_batch_append(b, STORE_INBOX, "", 0, ev.entry, ev.entry_len) : SAASD_EINVAL;
    webhook_event_clear(&ev);
    return rc;
}

static int setup_emulator(void)
{
    json_t *r = call("PATCH", "/_emulator/config", json_pack("{s:I}", "ackWindowMs", (json_int_t)3600000));
    json_decref(r);
    r = call("POST", "/_emulator/offers",
             json_pack("{s:s,s:[{s:s,s:b,s:i,s:i}]}", "offerId", "seats-pro", "plans", "planId", "team",
                       "isPricePerSeat", 1, "minQuantity", 1, "maxQuantity", 1000));
    int ok = r != NULL;
    json_decref(r);
    return ok ? 0 : SAASD_EIO;
}

/* One subscription: its Subscribe and ChangeQuantity events into b. */
static int one_subscription(struct store_batch *b, long i)
{
    json_t *p = call("POST", "/_emulator/purchases",
                     json_pack("{s:s,s:s,s:i,s:b}", "offerId", "seats-pro", "planId", "team", "quantity", 5,
                               "autoActivate", 1));
    const char *sub_id = json_string_value(json_object_get(p, "subscriptionId"));
    char path[256];
    snprintf(path, sizeof path, "/_emulator/operations?subscriptionId=%s", sub_id ? sub_id : "");
    json_t *ops = sub_id ? call("GET", path, NULL) : NULL;
    json_t *subscribe = json_array_get(json_object_get(ops, "operations"), 0);
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s/change-quantity", sub_id ? sub_id : "");
    json_t *change = subscribe ? call("POST", path, json_pack("{s:i}", "quantity", 6 + (int)(i % 50))) : NULL;
    json_t *sub = json_object_get(p, "subscription");
    int rc = change ? queue_event(b, subscribe, sub) : SAASD_EIO;
    if (!rc)
        rc = queue_event(b, change, sub);
    json_decref(p);
    json_decref(ops);
    json_decref(change);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: drain_load EMULATOR_URL DATA_DIR EVENTS\n");
        return 2;
    }
    emu = argv[1];
    long subs = atol(argv[3]) / 2;
    struct store *s = NULL;
    int rc = http_client_new(&(struct http_client_options){.max_response = 64u << 20}, &http);
    if (!rc)
        rc = store_open(argv[2], NULL, &s);
    if (!rc)
        rc = setup_emulator();
    struct store_batch *b = NULL;
    for (long i = 0; i < subs && !rc; i++) {
        if (!b && (rc = store_batch_new(&b)) != 0)
            break;
        rc = one_subscription(b, i);
        if (!rc && ((i + 1) % 500 == 0 || i + 1 == subs)) {
            rc = store_commit(s, b);
            store_batch_free(b);
            b = NULL;
        }
    }
    store_batch_free(b);
    store_close(s);
    http_client_free(http);
    if (rc) {
        fprintf(stderr, "drain_load: %s\n", saasd_strerror(rc));
        return 1;
    }
    return 0;
}
