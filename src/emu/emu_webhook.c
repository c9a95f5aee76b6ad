/* Outbound webhooks (§5.1-§5.3, §5.7): one sender thread walks the delivery queue in e->db,
 * POSTs each payload with a fresh RS256 bearer (§5.6) and reports the outcome to the state
 * machine: 2xx starts the ACK window, 4xx rejects an ACK-able operation, anything else is
 * retried with exponential backoff until webhook_max_attempts. Deliveries go out one at a time;
 * the state lock is released while a request is on the wire. */
#include "core/clock.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "emu/emu_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *emu_webhook_target(struct emu *e, const json_t *op)
{
    json_t *offer = emu_offer(e, emu_jstr(op, "offerId"));
    const char *url = emu_jstr(offer, "webhookUrl");
    if (url && *url)
        return url;
    return e->k.webhook_url && *e->k.webhook_url ? e->k.webhook_url : NULL;
}

void emu_webhook_enqueue(struct emu *e, json_t *op)
{
    char id[37], ts[40];
    int64_t now = emu_now_ms(e);
    emu_uuid(id);
    emu_iso(now, ts);
    const char *url = emu_webhook_target(e, op);
    json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[],s:I}", "id", id, "operationId", emu_jstr(op, "id"),
                          "subscriptionId", emu_jstr(op, "subscriptionId"), "action", emu_jstr(op, "action"),
                          "operationRequestSource", emu_op_source(op), "createdAt", ts, "status",
                          url ? "pending" : "skipped", "attempts", "_nextAt", (json_int_t)(now + e->k.send_delay_ms));
    if (!d)
        return;
    if (url) {
        json_object_set_new(d, "url", json_string(url));
    } else {
        /* Nobody to tell: the ACK window starts now, so the operation still auto-completes. */
        log_warn("emulator", "no webhook URL configured; delivery skipped", "operation", emu_jstr(op, "id"));
        if (json_is_true(json_object_get(op, "_ackable")) && !strcmp(emu_jstr(op, "status"), "InProgress")) {
            json_object_set_new(op, "_phase", json_string("await_ack"));
            json_object_set_new(op, "_dueAt", json_integer(now + e->k.ack_window_ms));
            emu_timer_armed(e, now + e->k.ack_window_ms);
        }
    }
    json_array_append_new(json_object_get(e->db, "deliveries"), d);
    e->dirty = 1;
    pthread_cond_broadcast(&e->wake);
}

/* §5.4: the operation's fields, the subscription as it is now, purchaseToken null. */
static json_t *payload_for(struct emu *e, const json_t *d)
{
    json_t *op = emu_op(e, emu_jstr(d, "operationId"));
    json_t *sub = emu_sub(e, emu_jstr(d, "subscriptionId"));
    if (!op)
        return NULL;
    json_t *p = emu_public(op);
    json_object_set_new(p, "subscription", sub ? emu_public(sub) : json_null());
    json_object_set_new(p, "purchaseToken", json_null());
    return p;
}

static void wait_ms(struct emu *e, long ms)
{
    struct timespec until;
    clock_after_ms(CLOCK_REALTIME, ms, &until);
    pthread_cond_timedwait(&e->wake, &e->lock, &until);
}

/* The first delivery due now. Final deliveries never become pending again, so the scan starts
 * after the leading final ones (first_pending) instead of rereading the whole log. */
static json_t *next_due(struct emu *e, long *wait)
{
    int64_t now = emu_now_ms(e);
    json_t *all = json_object_get(e->db, "deliveries"), *d;
    size_t n = json_array_size(all);
    *wait = EMU_IDLE_WAIT_MS;
    if (e->first_pending > n)
        e->first_pending = 0;
    while (e->first_pending < n && strcmp(emu_jstr(json_array_get(all, e->first_pending), "status"), "pending"))
        e->first_pending++;
    for (size_t i = e->first_pending; i < n; i++) {
        d = json_array_get(all, i);
        if (strcmp(emu_jstr(d, "status"), "pending"))
            continue;
        int64_t at = json_integer_value(json_object_get(d, "_nextAt"));
        if (at <= now)
            return d;
        if (at - now < *wait)
            *wait = (long)(at - now);
    }
    return NULL;
}

void *emu_webhook_thread(void *arg)
{
    struct emu *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        long wait;
        json_t *d = next_due(e, &wait);
        if (!d) {
            wait_ms(e, wait > 0 ? wait : 1);
            continue;
        }
        json_t *payload = payload_for(e, d);
        if (!payload) {
            json_object_set_new(d, "status", json_string("failed"));
            continue;
        }
        char *token = NULL, *body = json_dumps(payload, JSON_COMPACT);
        if (json_array_size(json_object_get(d, "attempts")) == 0)
            json_object_set(d, "payload", payload);
        json_decref(payload);
        /* §5.6: a token for the app the offer is registered with */
        const char *client = emu_offer_client(e, emu_offer(e, emu_jstr(json_object_get(d, "payload"), "offerId")));
        emu_mint_webhook_token(e, emu_app_tenant(e, client, NULL) ? emu_app_tenant(e, client, NULL) : e->tenant_id,
                               client, &token);
        const char *target = emu_jstr(d, "url");
        char *url = target ? strdup(target) : NULL;
        long timeout = e->k.webhook_timeout_ms;
        char auth[8192], rid[37];
        snprintf(auth, sizeof auth, "Bearer %s", token ? token : "");
        emu_uuid(rid);
        json_incref(d); /* a reset may drop it from the queue while we are unlocked */
        pthread_mutex_unlock(&e->lock);

        struct http_header hdrs[] = {{"Content-Type", "application/json"},
                                     {"Authorization", auth},
                                     {"x-ms-requestid", rid},
                                     {"User-Agent", "saasd-marketplace-emulator"}};
        struct http_request rq = {.method = "POST", .url = url, .headers = hdrs, .nheaders = 4, .body = body,
                                  .body_len = body ? strlen(body) : 0, .timeout_ms = timeout};
        struct http_response rs = {0};
        int64_t t0 = emu_wall_ms();
        int rc = url && body ? http_client_do(e->http, &rq, &rs) : SAASD_ENOMEM;
        long dur = (long)(emu_wall_ms() - t0);
        log_info("emulator", "webhook sent", "url", url ? url : "", "operation", emu_jstr(d, "operationId"),
                 "result", rc == 0 ? "answered" : saasd_strerror(rc));

        pthread_mutex_lock(&e->lock);
        emu_delivery_done(e, d, rc == 0 ? rs.status : 0, rc == 0 ? NULL : saasd_strerror(rc), dur);
        if (e->wake_needed) { /* an ACK window started: the timer thread sleeps until told */
            pthread_cond_broadcast(&e->wake);
            e->wake_needed = 0;
        }
        json_decref(d);
        http_response_free(&rs);
        free(url);
        free(body);
        free(token);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}
