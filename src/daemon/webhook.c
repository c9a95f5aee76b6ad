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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void count(const char *action, const char *outcome)
{
    char labels[128];
    snprintf(labels, sizeof labels, "action=\"%s\",outcome=\"%s\"", action, outcome);
    metrics_inc("saasd_webhooks_total", labels);
}

static void answer(struct httpd_response *res, int status, const char *code, const char *message)
{
    char body[512];
    if (code)
        snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    else
        body[0] = 0;
    httpd_set_body(res, status, NULL, body);
}

/* What the commit callback needs to answer and log: copies, the request may be gone. */
struct stored {
    struct daemon *d;
    struct httpd_deferred *dfr;
    const char *action; /* static string */
    char request_id[CRYPTO_UUID_LEN], op_id[128], sub_id[128], offer_id[128], kid[96];
};

/* The answer once the store has spoken: durable, a duplicate, or failed. */
static void answer_stored(const struct stored *st, int rc, struct httpd_response *res_out)
{
    struct httpd_response res = {0};
    if (rc == 0) {
        log_info("webhook", "accepted", "request_id", st->request_id, "op_id", st->op_id, "sub_id", st->sub_id,
                 "action", st->action, "offer_id", st->offer_id, "kid", st->kid);
        count(st->action, "accepted");
        daemon_wake(st->d);
        answer(&res, 200, NULL, NULL);
    } else if (rc == SAASD_EEXIST) {
        log_info("webhook", "duplicate acknowledged, not processed again", "request_id", st->request_id, "op_id",
                 st->op_id, "sub_id", st->sub_id, "action", st->action);
        count(st->action, "duplicate");
        answer(&res, 200, NULL, NULL);
    } else {
        /* Not durable: Microsoft must retry (§5.2). */
        log_error("webhook", "could not store event", "request_id", st->request_id, "op_id", st->op_id, "error",
                  saasd_strerror(rc));
        count(st->action, "store_error");
        answer(&res, 503, "Unavailable", "event could not be stored; retry");
    }
    httpd_add_header(&res, "x-request-id", st->request_id);
    *res_out = res;
}

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
    count("-", "unauthorized");
    answer(res, 401, NULL, NULL);
}

static void accept_event(struct daemon *d, const struct httpd_request *req, struct httpd_response *res,
                         const char *request_id, const struct jwt_claims *claims, int on_loop);

/* Off the event loop: a token seen for the first time is verified in full (RSA, maybe a key
 * fetch), and the event is committed synchronously. */
static void webhook_verify_off_loop(struct daemon *d, const struct httpd_request *req, const char *token,
                                    struct httpd_response *res)
{
    char request_id[CRYPTO_UUID_LEN];
    crypto_uuid(request_id);
    struct jwt_claims claims;
    int rc = jwt_verify(d->jwt, token, strlen(token), &claims);
    if (rc != 0) {
        refuse_token(res, request_id, rc, httpd_client_ip(req));
        httpd_add_header(res, "x-request-id", request_id);
        return;
    }
    accept_event(d, req, res, request_id, &claims, 0);
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
        crypto_uuid(request_id);
        log_warn("webhook", "refused: no bearer token", "request_id", request_id, "reason", "missing_token",
                 "client_ip", httpd_client_ip(req));
        count("-", "unauthorized");
        answer(res, 401, NULL, NULL);
        return;
    }
    const char *token = auth + 7;
    struct jwt_claims claims;
    int rc = jwt_verify_cached(d->jwt, token, strlen(token), &claims);
    if (rc == JWT_ENOTCACHED) {
        daemon_off_loop(d, POOL_WEBHOOK_VERIFY, req, token, webhook_verify_off_loop, res);
        return;
    }
    crypto_uuid(request_id);
    accept_event(d, req, res, request_id, &claims, 1);
}

/* Parse, check, deduplicate and store one authenticated event. On the event loop the answer
 * comes from the store's commit callback; off the loop the commit is waited for here. */
static void accept_event(struct daemon *d, const struct httpd_request *req, struct httpd_response *res,
                         const char *request_id, const struct jwt_claims *claims, int on_loop)
{
    int rc;
    httpd_add_header(res, "x-request-id", request_id);
    size_t len = 0;
    const char *body = httpd_body(req, &len);
    struct webhook_event ev;
    const char *why = NULL;
    rc = webhook_event_from_body(body, len, request_id, now_ms(), &ev, &why);
    if (rc == SAASD_EINVAL || rc == SAASD_ENOTFOUND) {
        log_warn("webhook", "refused: body not acceptable", "request_id", request_id, "error", why);
        count("-", "malformed");
        answer(res, 400, "BadRequest", why);
        return;
    }
    const char *action = ev.action;
    char *op_id = ev.op_id, *sub_id = ev.sub_id, *offer_id = ev.offer_id;
    if (rc == 0 && !action) {
        /* A 4xx could be read as a rejection (§5.3): acknowledge and log. */
        log_warn("webhook", "unknown action acknowledged and ignored", "request_id", request_id, "op_id", op_id,
                 "sub_id", sub_id, "action", ev.action_text);
        count("unknown", "ignored");
        webhook_event_clear(&ev);
        answer(res, 200, NULL, NULL);
        return;
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
    }
    free(ev.entry); /* the batch holds its own copy; the ids in ev are still used below */
    ev.entry = NULL;
    if (rc == 0) {
        /* Answer when the batch is durable, from the store's callback; the connection waits
         * without holding a thread. */
        st->d = d;
        snprintf(st->request_id, sizeof st->request_id, "%s", request_id);
        snprintf(st->op_id, sizeof st->op_id, "%s", op_id);
        snprintf(st->sub_id, sizeof st->sub_id, "%s", sub_id);
        snprintf(st->offer_id, sizeof st->offer_id, "%s", offer_id);
        snprintf(st->kid, sizeof st->kid, "%s", claims->kid);
        st->action = action;
        if (!on_loop) {
            rc = store_commit(d->store, b); /* returns once durable */
            store_batch_free(b);
            httpd_response_clear(res);
            answer_stored(st, rc, res);
            free(st);
            return;
        }
        st->dfr = httpd_defer(req);
        rc = store_commit_async(d->store, b, on_stored, st);
        if (rc == 0)
            return; /* the store owns b and st now */
        struct httpd_response later = {0};
        answer(&later, 503, "Unavailable", "event could not be stored; retry");
        httpd_resume(st->dfr, &later);
        log_error("webhook", "could not queue event", "request_id", request_id, "op_id", op_id, "error", saasd_strerror(rc));
        store_batch_free(b);
        free(st);
        return;
    }
    store_batch_free(b);
    free(st);
    log_error("webhook", "could not build the inbox batch", "request_id", request_id, "error", saasd_strerror(rc));
    count(action ? action : "-", "store_error");
    answer(res, 503, "Unavailable", "event could not be stored; retry");
}
