/* Admin API on the loopback listener; every request needs "Authorization: Bearer <admin key>".
 * Routed by one table (routes[], at the end of this file):
 *   GET  /admin/subscriptions                        local records, paged (admin_subs.c)
 *   GET  /admin/subscriptions/{id}                   local record + Microsoft's current view + its timers
 *   GET  /admin/subscriptions/{id}/history           audit trail (with rule hashes) and the
 *                                                    events not acted on yet
 *   POST /admin/subscriptions/{id}/activate          activate a "pending" subscription
 *   POST /admin/subscriptions/{id}/change-plan       {"planId": "..."}
 *   POST /admin/subscriptions/{id}/change-quantity   {"quantity": n}
 *   POST /admin/subscriptions/{id}/cancel
 *   GET  /admin/timers[?sub=&offer=&due_before=&limit=&cursor=]  rule timers in due order, paged
 *   POST /admin/timers/{sub}/{name}/cancel           drop a rule timer, audited (admin_timers.c)
 *   GET  /admin/outbox                               events waiting for a retry
 *   POST /admin/outbox/{seq}/retry | /abandon
 *   GET  /admin/rules                                active generation and file hashes
 *   POST /admin/rules/reload
 *   POST /admin/rules/replay {"candidate": DIR, "offer"?, "since_ms"?, "http"?}  shadow replay, no side effects
 *   POST /admin/rules/promote                        rules.shadow_dir becomes the live rules
 *   POST /admin/reconcile
 *   POST /admin/credential/check                     fetch an Entra ID token now with the
 *                                                    credential in force (after a reload: the new one)
 *   POST /admin/usage                                {"subscriptionId","dimension","quantity","time"?}
 *   GET  /admin/usage[?subscriptionId=]              metered usage per hour and its state
 *   POST /admin/usage/flush                          send closed hours now ({"ignore_grace": true})
 *   POST /admin/usage/reconcile                      compare sent usage with Microsoft's record
 *                                                    ({"days": 1..7 (2), "lag_s": seconds (0)})
 *   GET  /admin/usage/reconcile/runs[?limit=n]       the stored runs, newest first (no findings)
 *   GET  /admin/usage/reconcile/runs/{id}            one stored run with its findings
 *   GET  /admin/sinks                                event delivery per sink (sinks.c)
 *   POST /admin/sinks/{name}/retry | /skip {"seq"}   next attempt now | give up on the failing event
 *   GET  /admin/events[?after=seq&limit=n]           stored events, oldest first
 *   GET|PUT|DELETE /admin/offers/{offer}/store/{key}  the offer's rule key-value space (ctx.store),
 *                                                  so the ISV's systems can feed facts to rules
 *                                                  (PUT body: {"value": "text"}) */
#include "daemon/admin_subs.h"
#include "daemon/admin_timers.h"
#include "daemon/console.h"
#include "daemon/daemon.h"
#include "daemon/flows.h"
#include "daemon/metering.h"
#include "daemon/sinks.h"

#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/route.h"
#include "core/mp_client.h"
#include "core/store.h"
#include "core/token_cache.h"
#include "core/utc.h"
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void reply_json(struct httpd_response *res, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    res->status = status;
    res->content_type = "application/json";
    res->body = text ? text : strdup("{}");
    res->body_len = res->body ? strlen(res->body) : 0;
    json_decref(body);
}

static void reply_error(struct httpd_response *res, int status, const char *message)
{
    reply_json(res, status, json_pack("{s:s}", "error", message));
}

/* The request body as JSON ({} when empty); NULL (and a 400 in res) when it is not JSON. */
static json_t *body_json(const struct httpd_request *req, struct httpd_response *res)
{
    size_t len = 0;
    const char *body = httpd_body(req, &len);
    json_t *args = len ? json_loadb(body, len, 0, NULL) : json_object();
    if (!args)
        reply_error(res, 400, "body is not JSON");
    return args;
}

/* POST /admin/rules/replay {"candidate": DIR, "offer"?: ID, "since_ms"?: N, "http"?: "recorded"|"refuse"}:
 * the same shadow replay as `saasd rules replay` against this daemon's store (no side effects),
 * its report as the answer. The caller decides what a difference means; nothing is changed
 * either way. */
static void rules_replay(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    json_t *args = body_json(req, res);
    if (!args)
        return;
    const char *candidate = json_string_value(json_object_get(args, "candidate"));
    json_t *since = json_object_get(args, "since_ms"), *http = json_object_get(args, "http");
    enum engine_http_mode mode = ENGINE_HTTP_RECORDED;
    if (!candidate || (since && !json_is_integer(since)) ||
        (http && engine_http_mode_from_name(json_string_value(http), &mode) != 0)) {
        reply_error(res, 400, "body must be {\"candidate\": \"DIR\", \"offer\"?: \"ID\", \"since_ms\"?: N, "
                              "\"http\"?: \"recorded\"|\"refuse\"}");
        json_decref(args);
        return;
    }
    struct replay_options ro = {candidate, since ? (long long)json_integer_value(since) : 0,
                                json_string_value(json_object_get(args, "offer")), d->cfg->rule_cpu_ms,
                                d->cfg->rule_memory, mode};
    json_t *report = NULL;
    int rc = engine_replay(d->store, &ro, &report);
    if (rc)
        reply_error(res, rc == SAASD_EIO || rc == SAASD_ERULE ? 422 : 500, saasd_strerror(rc));
    else
        reply_json(res, 200, report);
    json_decref(args);
}

/* NULL when the request carries the admin key; otherwise why not, worded for the caller. */
static const char *refusal(struct daemon *d, const struct httpd_request *req)
{
    const char *auth = httpd_header(req, "Authorization");
    const char *key = d->cfg->admin_key;
    if (!key)
        return "the daemon has no admin key configured";
    if (!auth || !*auth)
        return "no admin key: send Authorization: Bearer <key> (the key is in admin.key_file or admin.key_env)";
    if (strncasecmp(auth, "Bearer ", 7) != 0)
        return "the Authorization header is not 'Bearer <admin key>'";
    const char *given = auth + 7;
    if (strlen(given) == strlen(key) && crypto_equal(given, key, strlen(key)))
        return NULL;
    return "wrong admin key";
}

static int collect_json(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    json_t *j = json_loadb(val, vlen, 0, NULL);
    if (j)
        json_array_append_new(arg, j);
    return 0;
}

struct outbox_item {
    uint64_t seq;
    json_t *list;
};

static uint64_t seq_of(const void *key, size_t klen)
{
    uint64_t v = 0;
    const unsigned char *k = key;
    for (size_t i = 0; i < klen && i < 8; i++)
        v = v << 8 | k[i];
    return v;
}

static int collect_outbox(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    json_t *j = json_loadb(val, vlen, 0, NULL);
    if (j) {
        json_object_set_new(j, "seq", json_integer((json_int_t)seq_of(key, klen)));
        json_object_del(j, "payload");
        json_array_append_new(arg, j);
    }
    return 0;
}

void admin_outbox_action(struct daemon *d, const char *seq_text, const char *verb, struct httpd_response *res)
{
    uint64_t seq = strtoull(seq_text, NULL, 10);
    unsigned char key[8];
    for (int i = 7; i >= 0; i--) {
        key[i] = (unsigned char)(seq & 0xff);
        seq >>= 8;
    }
    void *val = NULL;
    size_t vlen = 0;
    if (store_get(d->store, STORE_OUTBOX, key, sizeof key, &val, &vlen) != 0) {
        reply_error(res, 404, "no such outbox entry");
        return;
    }
    json_t *e = json_loadb(val, vlen, 0, NULL);
    free(val);
    const char *sub = json_string_value(json_object_get(e, "sub_id"));
    const char *op = json_string_value(json_object_get(e, "op_id"));
    struct store_batch *b = NULL;
    int rc = e && sub ? store_batch_new(&b) : SAASD_EINVAL;
    if (!rc && !strcmp(verb, "retry")) {
        json_object_set_new(e, "next_at_ms", json_integer(0));
        char *text = json_dumps(e, JSON_COMPACT);
        rc = text ? store_batch_put(b, STORE_OUTBOX, key, sizeof key, text, strlen(text)) : SAASD_ENOMEM;
        free(text);
    } else if (!rc) {
        rc = store_batch_del(b, STORE_OUTBOX, key, sizeof key);
        json_t *audit = json_pack("{s:s, s:s, s:s, s:s}", "op_id", op ? op : "", "action",
                                  json_string_value(json_object_get(e, "action")), "decision", "abandoned", "detail",
                                  "an operator gave up on this event");
        if (!rc)
            rc = record_audit(b, sub, audit);
        json_t *oprec = json_pack("{s:s, s:s}", "state", "abandoned", "sub_id", sub);
        if (!rc && op)
            rc = record_put_json(b, STORE_OPERATIONS, op, oprec);
        json_decref(audit);
        json_decref(oprec);
    }
    if (!rc)
        rc = store_commit(d->store, b);
    store_batch_free(b);
    json_decref(e);
    if (rc) {
        reply_error(res, 500, saasd_strerror(rc));
        return;
    }
    log_info("admin", !strcmp(verb, "retry") ? "outbox entry retried now" : "outbox entry abandoned", "sub_id", sub,
             "op_id", op);
    daemon_wake(d);
    reply_json(res, 200, json_pack("{s:s}", "result", verb));
}

/* 1 when the rule files on disk are not the ones serving (a file added, removed or changed
 * since the generation was loaded, e.g. a reload that failed). */
static int disk_differs(const struct engine_info *info, json_t *disk)
{
    json_t *offers = json_object_get(disk, "offers");
    if (json_array_size(offers) != info->nrules)
        return 1;
    for (size_t i = 0; i < info->nrules; i++) {
        json_t *row = json_array_get(offers, i);
        const char *sha = json_string_value(json_object_get(row, "sha256"));
        if (!sha || strcmp(sha, info->rules[i].sha256) != 0)
            return 1;
    }
    return 0;
}

static json_t *last_reload(const struct engine_info *info)
{
    json_t *problems = json_array();
    char *text = info->last_load_problems ? strdup(info->last_load_problems) : NULL, *save = NULL;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
        json_array_append_new(problems, json_string(line));
    free(text);
    return json_pack("{s:s, s:I, s:o}", "result",
                     info->last_load_rc ? "failed: rules NOT changed, the generation above keeps serving" : "ok", "at",
                     (json_int_t)info->last_load_at, "problems", problems);
}

static void rules_info(struct daemon *d, struct httpd_response *res)
{
    struct engine_info *info = NULL;
    if (engine_info(d->engine, &info) != 0) {
        reply_error(res, 500, "engine unavailable");
        return;
    }
    json_t *files = json_array();
    for (size_t i = 0; i < info->nrules; i++)
        json_array_append_new(files, json_pack("{s:s, s:s, s:s}", "offer", info->rules[i].offer_id, "file",
                                               info->rules[i].file, "sha256", info->rules[i].sha256));
    char **seen = NULL;
    engine_offers_in_store(d->store, &seen);
    json_t *disk = NULL;
    engine_resolution(d->cfg->rules_dir, (const char *const *)seen, d->cfg->unknown_offers_default, &disk);
    engine_offers_free(seen);
    json_t *body = json_pack("{s:I, s:I, s:I, s:o, s:o}", "generation", (json_int_t)info->generation, "reloads_ok",
                             (json_int_t)info->reloads_ok, "reloads_failed", (json_int_t)info->reloads_failed, "rules",
                             files, "last_reload", last_reload(info));
    json_object_set_new(body, "files_on_disk_differ", disk ? json_boolean(disk_differs(info, disk)) : json_null());
    if (disk) {
        json_object_set(body, "offers", json_object_get(disk, "offers"));
        json_object_set(body, "warnings", json_object_get(disk, "warnings"));
    }
    json_decref(disk);
    reply_json(res, 200, body);
    engine_info_free(info);
}

/* Events of one subscription received but not acted on yet (inbox) or waiting for a retry
 * (outbox), without their payloads. */
struct pending_scan {
    const char *sub_id;
    json_t *list;
};

static int collect_pending(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct pending_scan *p = arg;
    json_t *e = json_loadb(val, vlen, 0, NULL);
    const char *sub = json_string_value(json_object_get(e, "sub_id"));
    if (sub && !strcmp(sub, p->sub_id)) {
        json_object_del(e, "payload");
        json_array_append(p->list, e);
    }
    json_decref(e);
    return 0;
}

/* POST /admin/subscriptions/{id}/{verb}: what each verb does (the README's Admin API table). */
static const struct {
    const char *verb;
    const char *change; /* flow_publisher_change kind; NULL: activate a pending purchase */
    const char *arg;    /* the body field holding the new value; NULL: none */
} sub_actions[] = {
    {"activate", NULL, NULL},
    {"change-plan", "plan", "planId"},
    {"change-quantity", "quantity", "quantity"},
    {"cancel", "cancel", NULL},
};

/* One operator action on sub_id (the caller holds its lock); SAASD_EINVAL with out->message for
 * an unknown verb or a missing argument. */
static int run_sub_action(struct daemon *d, const char *sub_id, const char *verb, json_t *args, json_t **op,
                          struct flow_outcome *out)
{
    char value[256] = "";
    for (size_t i = 0; i < sizeof sub_actions / sizeof sub_actions[0]; i++) {
        const char *arg = sub_actions[i].arg;
        if (strcmp(sub_actions[i].verb, verb) || (arg && jl_string(args, arg, value, sizeof value)))
            continue;
        if (!sub_actions[i].change)
            return flow_activate_pending(d, sub_id, out);
        return flow_publisher_change(d, sub_id, sub_actions[i].change, value, op, out);
    }
    snprintf(out->message, sizeof out->message, "unknown action or missing argument (planId / quantity)");
    return SAASD_EINVAL;
}

static void subscription_action(struct daemon *d, const char *sub_id, const char *verb, const struct httpd_request *req,
                                struct httpd_response *res)
{
    const char *method = httpd_method(req);
    if (!strcmp(method, "GET") && !*verb) {
        json_t *rec = NULL, *ms = NULL;
        struct mp_result mr = {0};
        if (record_get_sub(d, sub_id, &rec) != 0)
            rec = json_null();
        if (mp_get_subscription(d->mp, sub_id, &mr) == 0) {
            ms = take_body(&mr);
        } else {
            ms = json_pack("{s:s, s:I}", "error", mr.message, "http_status", (json_int_t)mr.status);
            mp_result_clear(&mr);
        }
        reply_json(res, json_is_null(rec) && json_object_get(ms, "error") ? 404 : 200,
                   json_pack("{s:o, s:o, s:o}", "local", rec, "microsoft", ms, "timers", admin_timers_of_sub(d, sub_id)));
        return;
    }
    if (!strcmp(method, "GET") && !strcmp(verb, "history")) {
        json_t *audit = json_array();
        store_scan(d->store, STORE_AUDIT, sub_id, strlen(sub_id), collect_json, audit);
        struct pending_scan p = {.sub_id = sub_id, .list = json_array()};
        store_scan(d->store, STORE_INBOX, NULL, 0, collect_pending, &p);
        store_scan(d->store, STORE_OUTBOX, NULL, 0, collect_pending, &p);
        reply_json(res, 200, json_pack("{s:s, s:o, s:o}", "subscription", sub_id, "audit", audit, "pending", p.list));
        return;
    }
    if (strcmp(method, "POST") != 0) {
        reply_error(res, 405, "use POST");
        return;
    }
    json_t *args = body_json(req, res);
    if (!args)
        return;
    struct flow_outcome out;
    json_t *op = NULL;
    daemon_lock_sub(d, sub_id);
    int rc = run_sub_action(d, sub_id, verb, args, &op, &out);
    daemon_unlock_sub(d, sub_id);
    json_decref(args);
    log_info("admin", "subscription action", "sub_id", sub_id, "action", verb, "result",
             rc ? saasd_strerror(rc) : out.decision);
    if (rc) {
        json_decref(op);
        reply_json(res, rc == SAASD_EINVAL ? 400 : rc == SAASD_ENOTFOUND ? 404 : rc == SAASD_ECONFLICT ? 409 : 502,
                   json_pack("{s:s, s:s}", "error", saasd_strerror(rc), "message", out.message));
        return;
    }
    reply_json(res, 200, json_pack("{s:s, s:s, s:o}", "result", out.decision ? out.decision : "done", "message",
                                   out.message, "operation", op ? op : json_null()));
}

/* RULE_KV keys are offer id + '\0' + the rule's key (see src/bind/store.c). */
static void offer_store(struct daemon *d, const char *offer, const char *key, const struct httpd_request *req,
                        struct httpd_response *res)
{
    char full[512];
    size_t olen = strlen(offer), klen = strlen(key);
    if (olen + 1 + klen > sizeof full || !klen || klen > 200) {
        reply_error(res, 400, "key must be 1..200 bytes");
        return;
    }
    memcpy(full, offer, olen);
    full[olen] = 0;
    memcpy(full + olen + 1, key, klen);
    size_t flen = olen + 1 + klen;
    const char *method = httpd_method(req);
    if (!strcmp(method, "GET")) {
        void *val = NULL;
        size_t vlen = 0;
        if (store_get(d->store, STORE_RULE_KV, full, flen, &val, &vlen) != 0) {
            reply_error(res, 404, "no such key");
            return;
        }
        reply_json(res, 200, json_pack("{s:s, s:s, s:s%}", "offer", offer, "key", key, "value", (char *)val, vlen));
        free(val);
        return;
    }
    struct store_batch *b = NULL;
    int rc = store_batch_new(&b);
    if (!rc && !strcmp(method, "PUT")) {
        size_t len = 0;
        const char *body = httpd_body(req, &len);
        json_t *j = json_loadb(body, len, 0, NULL);
        const char *v = json_string_value(json_object_get(j, "value"));
        rc = v ? store_batch_put(b, STORE_RULE_KV, full, flen, v, strlen(v)) : SAASD_EINVAL;
        json_decref(j);
    } else if (!rc && !strcmp(method, "DELETE")) {
        rc = store_batch_del(b, STORE_RULE_KV, full, flen);
    } else if (!rc) {
        rc = SAASD_EINVAL;
    }
    if (!rc)
        rc = store_commit(d->store, b);
    store_batch_free(b);
    if (rc) {
        reply_error(res, rc == SAASD_EINVAL ? 400 : 500, rc == SAASD_EINVAL ? "PUT {\"value\": \"text\"} or DELETE" : saasd_strerror(rc));
        return;
    }
    log_info("admin", "offer store written", "offer", offer, "key", key, "method", method);
    reply_json(res, 200, json_pack("{s:s}", "result", "ok"));
}

/* "2026-11-24T10:15:00Z" (UTC) or epoch milliseconds; now when absent. */
static int usage_time(json_t *args, int64_t *out)
{
    json_t *t = json_object_get(args, "time");
    if (!t || json_is_null(t)) {
        *out = now_ms();
        return 0;
    }
    if (json_is_integer(t)) {
        *out = json_integer_value(t);
        return 0;
    }
    int64_t secs = 0;
    if (!utc_parse(json_string_value(t), &secs))
        return SAASD_EINVAL;
    *out = secs * 1000;
    return 0;
}

static void usage_reconcile(struct daemon *d, json_t *args, const struct route_args *a, const struct httpd_request *req,
                            struct httpd_response *res)
{
    long long days = 2, lag_s = 0;
    int bad = jl_int(args, "days", &days) == SAASD_EINVAL || jl_int(args, "lag_s", &lag_s) == SAASD_EINVAL;
    if (bad || days < 1 || days > 7 || lag_s < 0 || lag_s > 7 * 86400) {
        reply_error(res, 400, "days must be 1..7 and lag_s 0..604800 seconds");
        return;
    }
    struct usage_recon r;
    int rc = metering_reconcile(d, "admin", (int)days, (int)lag_s, &r);
    if (rc) {
        reply_json(res, 502, json_pack("{s:s, s:s}", "error", saasd_strerror(rc), "message",
                                       "usage reconciliation failed (the log says why)"));
        return;
    }
    reply_json(res, 200, json_pack("{s:i, s:i, s:O, s:O, s:O, s:O, s:O, s:I}", "checked", r.checked, "skipped",
                                   r.skipped, "missing", r.missing, "mismatch", r.mismatch, "unknown", r.unknown,
                                   "not_accepted", r.not_accepted, "processed_mismatch", r.processed_mismatch,
                                   "run", (json_int_t)r.run));
    usage_recon_clear(&r);
}

#define RUNS_LIMIT_MAX 1000

static void usage_reconcile_runs(struct daemon *d, json_t *args, const struct route_args *a,
                                 const struct httpd_request *req,
                                 struct httpd_response *res)
{
    long limit;
    if (httpd_query_long(req, "limit", 1, RUNS_LIMIT_MAX, RUNS_LIMIT_MAX, &limit)) {
        reply_error(res, 400, "limit must be 1..1000");
        return;
    }
    json_t *runs = NULL;
    int rc = usage_recon_runs(d->store, (size_t)limit, &runs);
    if (rc)
        reply_error(res, 500, saasd_strerror(rc));
    else
        reply_json(res, 200, json_pack("{s:o}", "runs", runs));
}

static void usage_reconcile_run(struct daemon *d, json_t *args, const struct route_args *a,
                                const struct httpd_request *req,
                                struct httpd_response *res)
{
    json_t *run = NULL;
    int rc = usage_recon_run_get(d->store, strtoull(a->id, NULL, 10), &run);
    if (rc == SAASD_ENOTFOUND)
        reply_error(res, 404, "no such usage reconciliation run (the last 30 are kept)");
    else if (rc)
        reply_error(res, 500, saasd_strerror(rc));
    else
        reply_json(res, 200, run);
}

/* How a usage report refusal is answered, and whether sending the same report again can help. */
struct usage_refusal {
    int rc;
    int status;
    int retryable;
};

static const struct usage_refusal usage_refusals[] = {
    {SAASD_EINVAL, 400, 0},    /* malformed report */
    {SAASD_ENOTFOUND, 404, 1}, /* the subscription's landing page was not visited yet */
    {SAASD_ECONFLICT, 409, 0}, /* not Subscribed, or the hour was already sent */
    {SAASD_ERULE, 422, 0},     /* the usage rule refused it */
    {SAASD_ELIMIT, 422, 1},    /* the usage rule hit a limit: may pass on a quieter state */
    {0, 500, 1},               /* anything else: store or internal trouble */
};

static const struct usage_refusal *usage_refusal_of(int rc)
{
    const struct usage_refusal *u = usage_refusals;
    while (u->rc && u->rc != rc)
        u++;
    return u;
}

static void usage_report(struct daemon *d, json_t *args, const struct route_args *a, const struct httpd_request *req,
                         struct httpd_response *res)
{
    char err[1280] = "";
    int64_t when = 0;
    double q = -1, billed = 0;
    jl_real(args, "quantity", &q);
    int rc = usage_time(args, &when);
    if (rc)
        snprintf(err, sizeof err, "time must be ISO-8601 UTC (2026-11-24T10:15:00Z) or epoch milliseconds");
    else
        rc = metering_record(d, json_string_value(json_object_get(args, "subscriptionId")),
                             json_string_value(json_object_get(args, "dimension")), q, when, &billed, err, sizeof err);
    const struct usage_refusal *u = usage_refusal_of(rc);
    if (rc)
        reply_json(res, u->status, json_pack("{s:s, s:s, s:b}", "error", saasd_strerror(rc), "message", err,
                                             "retryable", u->retryable));
    else
        reply_json(res, 200, json_pack("{s:s, s:f}", "result", "recorded", "billed", billed));
}

static void usage_list(struct daemon *d, json_t *args, const struct route_args *a, const struct httpd_request *req,
                       struct httpd_response *res)
{
    const char *sub = httpd_query(req, "subscriptionId");
    json_t *list = json_array();
    /* keys start with the subscription id and a NUL */
    store_scan(d->store, STORE_USAGE, sub, sub ? strlen(sub) + 1 : 0, collect_json, list);
    reply_json(res, 200, json_pack("{s:o}", "usage", list));
}

static void usage_flush(struct daemon *d, json_t *args, const struct route_args *a, const struct httpd_request *req,
                        struct httpd_response *res)
{
    struct metering_pass pass;
    int rc = metering_flush(d, json_is_true(json_object_get(args, "ignore_grace")), &pass);
    reply_json(res, rc ? 500 : 200, json_pack("{s:s, s:i, s:i, s:i, s:i}", "result", rc ? saasd_strerror(rc) : "ok",
                                            "sent", pass.sent, "failed", pass.failed, "retry", pass.retry,
                                            "folded", pass.folded));
}

/* /admin/usage{rest}: the rest of the path and the method pick the handler (route.h patterns);
 * each gets the request's JSON body (an empty body is {}) and the pattern's parts. */
static const struct {
    const char *method, *rest;
    void (*handle)(struct daemon *d, json_t *args, const struct route_args *a, const struct httpd_request *req,
                   struct httpd_response *res);
} usage_routes[] = {
    {"POST", "", usage_report},
    {"GET", "", usage_list},
    {"POST", "/flush", usage_flush},
    {"POST", "/reconcile", usage_reconcile},
    {"GET", "/reconcile/runs", usage_reconcile_runs},
    {"GET", "/reconcile/runs/{seq}", usage_reconcile_run},
};

static void usage_api(struct daemon *d, const char *rest, const struct httpd_request *req, struct httpd_response *res)
{
    json_t *args = body_json(req, res);
    if (!args)
        return;
    struct route_args a;
    size_t i = 0, n = sizeof usage_routes / sizeof usage_routes[0];
    while (i < n && !route_row_matches(usage_routes[i].method, usage_routes[i].rest, httpd_method(req), rest, &a))
        i++;
    if (i < n)
        usage_routes[i].handle(d, args, &a, req, res);
    else
        reply_error(res, 404, "no such usage path");
    json_decref(args);
}

void admin_sink_action(struct daemon *d, const char *name, const char *verb, uint64_t seq, const char *via,
                       struct httpd_response *res)
{
    int rc = sinks_operate(d, name, verb, seq);
    char seq_text[32];
    snprintf(seq_text, sizeof seq_text, "%llu", (unsigned long long)seq);
    log_info("admin", "sink action", "sink", name, "action", verb, "seq", seq_text, "via", via, "result",
             rc ? saasd_strerror(rc) : "ok");
    if (rc == SAASD_ENOTFOUND)
        reply_error(res, 404, "no such sink");
    else if (rc == SAASD_EINVAL)
        reply_error(res, 404, "no such sink action (retry, skip)");
    else if (rc == SAASD_ECONFLICT)
        reply_error(res, 409, "the sink is not failing on that event (see retrying_seq in GET /admin/sinks)");
    else
        reply_json(res, 200, json_pack("{s:s}", "result", !strcmp(verb, "skip") ? "skipped" : "retrying"));
}

static void sink_action(struct daemon *d, const char *name, const char *verb, const struct httpd_request *req,
                        struct httpd_response *res)
{
    size_t len = 0;
    const char *body = httpd_body(req, &len);
    json_t *args = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_int_t seq = json_integer_value(json_object_get(args, "seq"));
    json_decref(args);
    admin_sink_action(d, name, verb, (uint64_t)seq, "api", res);
}

struct event_page {
    json_t *list;
    size_t limit;
};

static int collect_event(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct event_page *p = arg;
    json_t *ev = klen == 8 ? json_loadb(val, vlen, 0, NULL) : NULL;
    if (!ev)
        return 0;
    json_object_set_new(ev, "seq", json_integer((json_int_t)store_be64_get(key)));
    json_array_append_new(p->list, ev);
    return json_array_size(p->list) >= p->limit;
}

/* Stored events after sequence number `after` (default 0), at most `limit` (default 100, 1000). */
static void list_events(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    const char *a = httpd_query(req, "after"), *l = httpd_query(req, "limit");
    unsigned long long after = a ? strtoull(a, NULL, 10) + 1 : 0;
    long limit = l ? strtol(l, NULL, 10) : 100;
    struct event_page p = {json_array(), (size_t)(limit < 1 ? 1 : limit > 1000 ? 1000 : limit)};
    unsigned char from[8];
    for (int i = 7; i >= 0; i--, after >>= 8)
        from[i] = (unsigned char)(after & 0xff);
    store_scan_from(d->store, STORE_EVENTS, from, 8, collect_event, &p);
    reply_json(res, 200, json_pack("{s:o}", "events", p.list));
}

/* ------------------------------------------------------------------------------------------ */
/* Routing: one table of every admin path (the README's "Admin API" table lists the same).      */

typedef void route_fn(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                      struct httpd_response *res);

static void on_subscriptions(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                             struct httpd_response *res)
{
    admin_list_subscriptions(d, req, res); /* paged: admin_subs.c */
}

static void on_subscription(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                            struct httpd_response *res)
{
    subscription_action(d, a->id, a->rest, req, res);
}

static void on_offer_store(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                           struct httpd_response *res)
{
    offer_store(d, a->id, a->rest, req, res);
}

static void on_usage(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                     struct httpd_response *res)
{
    usage_api(d, a->tail, req, res);
}

static void on_timers(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                      struct httpd_response *res)
{
    admin_list_timers(d, req, res); /* paged: admin_timers.c */
}

static void on_timer_action(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                            struct httpd_response *res)
{
    admin_timer_action(d, a->id, a->rest, req, res);
}

static void on_outbox(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                      struct httpd_response *res)
{
    json_t *items = json_array();
    store_scan(d->store, STORE_OUTBOX, NULL, 0, collect_outbox, items);
    reply_json(res, 200, json_pack("{s:o}", "outbox", items));
}

static void on_outbox_action(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                             struct httpd_response *res)
{
    if (strcmp(a->rest, "retry") && strcmp(a->rest, "abandon"))
        reply_error(res, 404, "no such admin path");
    else
        admin_outbox_action(d, a->id, a->rest, res);
}

static void on_rules(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                     struct httpd_response *res)
{
    rules_info(d, res);
}

static void on_rules_reload(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                            struct httpd_response *res)
{
    int rc = engine_reload(d->engine);
    reply_json(res, rc ? 422 : 200, json_pack("{s:s}", "result", rc ? "rules NOT changed (see log)" : "reloaded"));
}

static void on_rules_replay(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                            struct httpd_response *res)
{
    rules_replay(d, req, res);
}

static void on_rules_promote(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                             struct httpd_response *res)
{
    int copied = 0, rc = rules_promote(d, &copied);
    reply_json(res, rc == SAASD_ENOTFOUND ? 404 : rc ? 422 : 200,
               json_pack("{s:s, s:i}", "result", rc == SAASD_ENOTFOUND ? "no rules.shadow_dir configured"
                                                 : rc ? "shadow rules NOT promoted (see log)" : "promoted",
                         "files", copied));
}

static void on_reconcile(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                         struct httpd_response *res)
{
    int drift = 0;
    json_t *missing = NULL;
    int rc = reconcile_run(d, &drift, &missing);
    reply_json(res, rc ? 502 : 200, json_pack("{s:s, s:i, s:o}", "result", rc ? saasd_strerror(rc) : "ok", "drift",
                                              drift, "missing_at_microsoft", missing ? missing : json_array()));
}

/* A token from Entra ID now, with the credential in force: after a rotation, whether Entra
 * takes the new one, without waiting for the cached token to come due. A POST: the fetched
 * token replaces the cached one. */
static void on_credential_check(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                                struct httpd_response *res)
{
    char credential[80], why[160] = "";
    token_cache_describe_credential(d->tokens, credential, sizeof credential);
    int rc = token_cache_refresh(d->tokens, why, sizeof why);
    struct token_cache_stats ts;
    token_cache_stats(d->tokens, &ts);
    const char *result = rc == 0 ? "ok" : rc == SAASD_EAUTH ? "refused" : "failed";
    log_info("admin", "credential check", "kind", credential, "result", result, "reason", why);
    reply_json(res, rc ? 502 : 200,
               json_pack("{s:s, s:s, s:s, s:I}", "result", result, "credential", credential, "error", why,
                         "expires_at", (json_int_t)(rc ? 0 : ts.expires_at)));
}

static void on_sinks(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                     struct httpd_response *res)
{
    json_t *list = NULL;
    sinks_status(d, &list);
    reply_json(res, 200, json_pack("{s:o}", "sinks", list));
}

static void on_sink_action(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                           struct httpd_response *res)
{
    sink_action(d, a->id, a->rest, req, res);
}

static void on_events(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                      struct httpd_response *res)
{
    list_events(d, req, res);
}

static void on_deadlines(struct daemon *d, const struct route_args *a, const struct httpd_request *req,
                         struct httpd_response *res)
{
    json_t *list = NULL;
    int rc = deadline_pass(d, 0, &list); /* a GET: lists, changes nothing */
    reply_json(res, rc ? 500 : 200, json_pack("{s:o}", "pending_activation", list ? list : json_array()));
}

/* First match wins (patterns: core/route.h); method NULL = any (the handler tells the methods
 * apart). A path that matches no row, or a row only with another method, is answered 404. */
static const struct {
    const char *method;
    const char *pattern;
    route_fn *handle;
} routes[] = {
    {"GET", "/admin/subscriptions", on_subscriptions},
    {NULL, "/admin/subscriptions/{id}/{rest}", on_subscription},
    {NULL, "/admin/subscriptions/{id}", on_subscription},
    {NULL, "/admin/subscriptions/{id}/", on_subscription},
    {NULL, "/admin/offers/{id}/store/{rest}", on_offer_store},
    {NULL, "/admin/usage{tail}", on_usage},
    {"GET", "/admin/timers", on_timers},
    {NULL, "/admin/timers/{id}/{rest}", on_timer_action},
    {"GET", "/admin/outbox", on_outbox},
    {"POST", "/admin/outbox/{seq}/{rest}", on_outbox_action},
    {"GET", "/admin/rules", on_rules},
    {"POST", "/admin/rules/reload", on_rules_reload},
    {"POST", "/admin/rules/replay", on_rules_replay},
    {"POST", "/admin/rules/promote", on_rules_promote},
    {"POST", "/admin/reconcile", on_reconcile},
    {"POST", "/admin/credential/check", on_credential_check},
    {"GET", "/admin/sinks", on_sinks},
    {"POST", "/admin/sinks/{id}/{rest}", on_sink_action},
    {"GET", "/admin/events", on_events},
    {"GET", "/admin/activation-deadlines", on_deadlines},
};

void admin_handle(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    struct daemon *d = arg;
    if (console_path(httpd_path(req))) { /* the console has its own sign-in (console.c) */
        console_handle(d, req, res);
        return;
    }
    const char *why = refusal(d, req);
    if (why) {
        log_warn("admin", "request refused", "reason", why, "client_ip", httpd_client_ip(req));
        reply_error(res, 401, why);
        return;
    }
    const char *path = httpd_path(req), *method = httpd_method(req);
    struct route_args a;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (route_row_matches(routes[i].method, routes[i].pattern, method, path, &a)) {
            routes[i].handle(d, &a, req, res);
            return;
        }
    }
    reply_error(res, 404, "no such admin path");
}
