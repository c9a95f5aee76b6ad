/* POST /webhook: Microsoft's notifications (contract §5). The request is answered 200 only
 * after the event is durably in the inbox; the work happens later in the inbox workers.
 *   1. bearer JWT verified (401, no detail, otherwise)
 *   2. body parsed leniently; id, subscriptionId, action required, and the inbox entry built
 *      from it must load the way the workers load it (400 otherwise; webhook_body.c)
 *   3. stored in the inbox by a group-committed batch guarded on the operation id: an
 *      operation already recorded is a duplicate (answered 200, not stored again); a copy that
 *      arrives while its twin still waits in the inbox is dropped by the worker (inbox.c)
 *   4. 200 once the batch is durable. */
#include "daemon/daemon.h"

#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/store.h"
#include "daemon/webhook_body.h"
#include "daemon/webhook_verify.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* saasd_webhooks_total by action and outcome: every series a webhook can touch, looked up once
 * and then counted with one atomic add (this runs for every webhook, on the event loop and in
 * the store's notifier). Row WEBHOOK_ACTIONS is "-" (no action read), the next "unknown". */
enum outcome { ACCEPTED, DUPLICATE, STORE_ERROR, IGNORED, UNAUTHORIZED, MALFORMED, N_OUTCOMES };
static const char *const outcome_names[N_OUTCOMES] = {"accepted", "duplicate", "store_error",
                                                      "ignored", "unauthorized", "malformed"};
static _Atomic(struct metrics_counter *) counters[WEBHOOK_ACTIONS + 2][N_OUTCOMES];

static void count(const char *action, enum outcome o)
{
    int a = webhook_action_index(action);
    if (a < 0)
        a = strcmp(action, "-") ? WEBHOOK_ACTIONS + 1 : WEBHOOK_ACTIONS;
    struct metrics_counter *c = atomic_load_explicit(&counters[a][o], memory_order_acquire);
    if (!c) { /* first use; a race only looks the same series up twice */
        char labels[128];
        snprintf(labels, sizeof labels, "action=\"%s\",outcome=\"%s\"",
                 a < WEBHOOK_ACTIONS ? action : a == WEBHOOK_ACTIONS ? "-" : "unknown", outcome_names[o]);
        c = metrics_counter("saasd_webhooks_total", labels);
        atomic_store_explicit(&counters[a][o], c, memory_order_release);
    }
    metrics_counter_inc(c);
}

/* A request id (crypto_id: a per-thread random prefix and a counter): only a correlation id for
 * logs, the x-request-id header and the inbox entry, so it need not be unpredictable, and a
 * RAND_bytes call per webhook is saved. "unavailable" only if the random source failed at its first use. */
static void request_id_next(char out[CRYPTO_UUID_LEN])
{
    if (crypto_id(out) != 0)
        snprintf(out, CRYPTO_UUID_LEN, "unavailable");
}

static void answer(struct httpd_response *res, int status, const char *code, const char *message)
{
    if (!code) { /* the usual 200: no body to format or copy (httpd sends "" for NULL) */
        free(res->body);
        res->body = NULL;
        res->body_len = 0;
        res->status = status;
        return;
    }
    char body[512];
    snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    httpd_set_body(res, status, NULL, body);
}

/* What the commit callback needs to answer and log: copies, the request may be gone. */
struct stored {
    struct daemon *d;
    struct httpd_deferred *dfr;
    const char *action; /* static string */
    char request_id[CRYPTO_UUID_LEN], op_id[128], sub_id[128], offer_id[128], kid[96];
};

/* snprintf(dst, cap, "%s", src) without the format machinery (five copies per webhook). */
static void copy_id(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* The answer once the store has spoken: durable, a duplicate, or failed. */
static void answer_stored(const struct stored *st, int rc, struct httpd_response *res_out)
{
    struct httpd_response res = {0};
    if (rc == 0) {
        /* Debug, not info: at thousands of webhooks a second the line cost more than the rest
         * of the request; saasd_webhooks_total{outcome="accepted"} counts them instead. */
        log_debug("webhook", "accepted", "request_id", st->request_id, "op_id", st->op_id, "sub_id", st->sub_id,
                 "action", st->action, "offer_id", st->offer_id, "kid", st->kid);
        count(st->action, ACCEPTED); /* the inbox is woken once per group: wake_inbox */
        answer(&res, 200, NULL, NULL);
    } else if (rc == SAASD_EEXIST) {
        log_info("webhook", "duplicate acknowledged, not processed again", "request_id", st->request_id, "op_id",
                 st->op_id, "sub_id", st->sub_id, "action", st->action);
        count(st->action, DUPLICATE);
        answer(&res, 200, NULL, NULL);
    } else {
        /* Not durable: Microsoft must retry (§5.2). */
        log_error("webhook", "could not store event", "request_id", st->request_id, "op_id", st->op_id, "error",
                  saasd_strerror(rc));
        count(st->action, STORE_ERROR);
        answer(&res, 503, "Unavailable", "event could not be stored; retry");
    }
    httpd_add_header(&res, "x-request-id", st->request_id);
    *res_out = res;
}

/* After a group commit holding new inbox entries (notifier thread, before the group's requests
 * are answered, so that daemon_stop, which waits for those answers, never races it): one
 * wake-up of the inbox workers per group instead of one per event, each of which cost the
 * notifier a futex call and a worker a scheduling round. */
static void wake_inbox(void *arg) { daemon_wake_appended(arg); }

/* Store callback (notifier thread), on the event-loop path. */
static void on_stored(void *arg, int rc)
{
    struct stored *st = arg;
    struct httpd_response res;
    answer_stored(st, rc, &res);
    httpd_resume(st->dfr, &res);
    free(st);
}

static void refuse_token(struct httpd_response *res, const char *request_id, int reason, const char *ip)
{
    log_warn("webhook", "refused: bearer token not valid", "request_id", request_id, "reason", jwt_reason_name(reason),
             "client_ip", ip);
    count("-", UNAUTHORIZED);
    answer(res, 401, NULL, NULL);
}

static int accept_event(struct daemon *d, const struct httpd_request *req, struct httpd_response *res,
                        const char *request_id, const struct jwt_claims *claims, struct httpd_deferred *dfr);

/* A token seen for the first time, verified in full on a verification thread
 * (webhook_verify.c): answer the request that was waiting for it. */
void webhook_verified(void *arg, const struct httpd_request *req, struct httpd_deferred *dfr, int rc,
                      const struct jwt_claims *claims)
{
    struct daemon *d = arg;
    char request_id[CRYPTO_UUID_LEN];
    request_id_next(request_id);
    struct httpd_response res = {0};
    if (rc != 0) {
        refuse_token(&res, request_id, rc, httpd_client_ip(req));
        httpd_add_header(&res, "x-request-id", request_id);
        httpd_resume(dfr, &res);
        return;
    }
    if (!accept_event(d, req, &res, request_id, claims, dfr)) {
        httpd_add_header(&res, "x-request-id", request_id);
        httpd_resume(dfr, &res);
    } else
        httpd_response_clear(&res); /* answered through dfr */
}

void webhook_handle(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    char request_id[CRYPTO_UUID_LEN];
    if (strcmp(httpd_method(req), "POST") != 0) {
        answer(res, 405, "MethodNotAllowed", "use POST");
        return;
    }
    const char *auth = httpd_header(req, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        request_id_next(request_id);
        log_warn("webhook", "refused: no bearer token", "request_id", request_id, "reason", "missing_token",
                 "client_ip", httpd_client_ip(req));
        count("-", UNAUTHORIZED);
        answer(res, 401, NULL, NULL);
        return;
    }
    const char *token = auth + 7;
    struct jwt_claims claims;
    int rc = jwt_verify_cached(d->jwt, token, strlen(token), &claims);
    if (rc == JWT_ENOTCACHED) {
        /* Queued, not refused: only a full queue (or a stopping daemon) answers 503. */
        if (wv_submit(d->verifyq, req, token, strlen(token)) == 0)
            return;
        metrics_inc("saasd_busy_total", "pool=\"webhook\"");
        httpd_add_header(res, "Retry-After", "1");
        answer(res, 503, "Busy", "too many requests in progress; retry");
        return;
    }
    request_id_next(request_id);
    /* x-request-id only on an answer given now: a deferred one gets it from answer_stored */
    if (!accept_event(d, req, res, request_id, &claims, NULL))
        httpd_add_header(res, "x-request-id", request_id);
}

/* Parse, check, deduplicate and store one authenticated event. Returns 0 when res holds the
 * answer (the caller adds x-request-id), 1 when the answer goes (or went) through the
 * deferred request: dfr when the request is already deferred (a verification thread), else
 * deferred here (on the event loop). The store's commit callback answers once the batch is
 * durable; no thread waits for the fsync. */
static int accept_event(struct daemon *d, const struct httpd_request *req, struct httpd_response *res,
                        const char *request_id, const struct jwt_claims *claims, struct httpd_deferred *dfr)
{
    int rc;
    size_t len = 0;
    const char *body = httpd_body(req, &len);
    struct webhook_event ev;
    const char *why = NULL;
    rc = webhook_event_from_body(body, len, request_id, now_ms(), &ev, &why);
    if (rc == SAASD_EINVAL || rc == SAASD_ENOTFOUND) {
        log_warn("webhook", "refused: body not acceptable", "request_id", request_id, "error", why);
        count("-", MALFORMED);
        answer(res, 400, "BadRequest", why);
        return 0;
    }
    const char *action = ev.action;
    char *op_id = ev.op_id, *sub_id = ev.sub_id, *offer_id = ev.offer_id;
    if (rc == 0 && !action) {
        /* A 4xx could be read as a rejection (§5.3): acknowledge and log. */
        log_warn("webhook", "unknown action acknowledged and ignored", "request_id", request_id, "op_id", op_id,
                 "sub_id", sub_id, "action", ev.action_text);
        count("unknown", IGNORED);
        webhook_event_clear(&ev);
        answer(res, 200, NULL, NULL);
        return 0;
    }
    struct stored *st = malloc(sizeof *st);
    struct store_batch *b = NULL;
    if (!rc)
        rc = st ? store_batch_new(&b) : SAASD_ENOMEM;
    if (!rc) {
        /* Only the guard and the inbox entry: the operation's record is written when the event
         * is acted on (one random-page write less per webhook on the durable path). */
        rc = store_batch_require_absent(b, STORE_OPERATIONS, op_id, strlen(op_id));
        if (!rc)
            rc = store_batch_append(b, STORE_INBOX, "", 0, ev.entry, ev.entry_len);
        if (!rc)
            store_batch_after_group(b, wake_inbox, d);
    }
    free(ev.entry); /* the batch holds its own copy; the ids in ev are still used below */
    ev.entry = NULL;
    if (rc == 0) {
        /* Answer when the batch is durable, from the store's callback; the connection waits
         * without holding a thread. */
        st->d = d;
        copy_id(st->request_id, sizeof st->request_id, request_id);
        copy_id(st->op_id, sizeof st->op_id, op_id);
        copy_id(st->sub_id, sizeof st->sub_id, sub_id);
        copy_id(st->offer_id, sizeof st->offer_id, offer_id);
        copy_id(st->kid, sizeof st->kid, claims->kid);
        st->action = action;
        st->dfr = dfr ? dfr : httpd_defer(req);
        rc = store_commit_async(d->store, b, on_stored, st);
        if (rc == 0)
            return 1; /* the store owns b and st now */
        struct httpd_response later = {0};
        answer(&later, 503, "Unavailable", "event could not be stored; retry");
        httpd_add_header(&later, "x-request-id", request_id);
        httpd_resume(st->dfr, &later);
        log_error("webhook", "could not queue event", "request_id", request_id, "op_id", op_id, "error", saasd_strerror(rc));
        store_batch_free(b);
        free(st);
        return 1;
    }
    store_batch_free(b);
    free(st);
    log_error("webhook", "could not build the inbox batch", "request_id", request_id, "error", saasd_strerror(rc));
    count(action ? action : "-", STORE_ERROR);
    answer(res, 503, "Unavailable", "event could not be stored; retry");
    return 0;
}
