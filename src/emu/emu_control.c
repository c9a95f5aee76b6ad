/* Test-only control API under /_emulator/ (never part of Microsoft's surface): publisher apps
 * and their certificates, offers, purchases, customer-side actions, inspection of
 * subscriptions/operations/webhook deliveries/usage, knobs (timing, clock offset, page size,
 * webhook target), key rotation and fault injection. Also the
 * trigger routes of Microsoft's own emulator (§5.7) under /api/webhook/subscription/. */
#include "core/err.h"
#include "core/log.h"
#include "core/crypto.h"
#include "core/route.h"
#include "emu/emu_internal.h"

#include "core/http_client.h"
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void bad(struct httpd_response *res, int status, const char *code, const char *msg)
{
    struct emu_error err;
    emu_fail(&err, status, code, "%s", msg);
    emu_reply_error(res, &err);
}

static json_t *knobs_json(struct emu *e)
{
    json_t *j = json_pack("{s:s?,s:s?,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:I}", "webhookUrl", e->k.webhook_url,
                          "landingUrl", e->k.landing_url, "pageSize", e->k.page_size, "ackWindowMs",
                          (json_int_t)e->k.ack_window_ms, "opDelayMs", (json_int_t)e->k.op_delay_ms, "sendDelayMs",
                          (json_int_t)e->k.send_delay_ms, "tokenLifetimeS", (json_int_t)e->k.token_lifetime_s,
                          "landingTokenLifetimeS", (json_int_t)e->k.landing_lifetime_s, "webhookTimeoutMs",
                          (json_int_t)e->k.webhook_timeout_ms, "webhookBackoffMs",
                          (json_int_t)e->k.webhook_backoff_ms, "webhookMaxAttempts", e->k.webhook_max_attempts,
                          "clockOffsetS", (json_int_t)e->k.clock_offset_s);
    char iss1[512], iss2[512];
    emu_issuer_v1(e, e->tenant_id, iss1, sizeof iss1);
    emu_issuer_v2(e, e->tenant_id, iss2, sizeof iss2);
    json_object_set_new(j, "idTokenFault", e->k.id_token_fault ? json_string(e->k.id_token_fault) : json_null());
    json_object_set_new(j, "subUpdateDelayMs", json_integer(e->k.sub_update_delay_ms));
    json_object_set_new(j, "reinstateAckable", json_boolean(e->k.reinstate_ackable));
    json_object_set_new(j, "partnerWebhooks", json_boolean(e->k.partner_webhooks));
    json_object_set_new(j, "omitCreated", json_boolean(e->k.omit_created));
    json_object_set_new(j, "requestSourceField",
                        json_string(e->k.requested_spelling ? "operationRequestedSource" : "operationRequestSource"));
    json_object_set_new(j, "baseUrl", json_string(e->base_url));
    json_object_set_new(j, "tenantId", json_string(e->tenant_id));
    json_object_set_new(j, "clientId", json_string(e->client_id));
    json_object_set_new(j, "publisherId", json_string(e->publisher_id));
    json_object_set_new(j, "issuerV1", json_string(iss1));
    json_object_set_new(j, "issuerV2", json_string(iss2));
    json_object_set_new(j, "kid", json_string(e->keys[0].kid));
    json_object_set_new(j, "persistent", json_boolean(e->data_dir != NULL));
    return j;
}

static int set_long(const json_t *in, const char *key, long min, long *dst)
{
    json_t *v = json_object_get(in, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return -1;
    *dst = (long)json_integer_value(v);
    return 0;
}

static int set_string(const json_t *in, const char *key, char **dst)
{
    json_t *v = json_object_get(in, key);
    if (!v)
        return 0;
    if (!json_is_string(v) && !json_is_null(v))
        return -1;
    free(*dst);
    *dst = json_is_string(v) && *json_string_value(v) ? strdup(json_string_value(v)) : NULL;
    return 0;
}

static int set_bool(const json_t *in, const char *key, int *dst)
{
    json_t *v = json_object_get(in, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return -1;
    *dst = json_is_true(v);
    return 0;
}

/* requestSourceField: which of Microsoft's two spellings operations carry. */
static int set_spelling(const json_t *in, int *dst)
{
    json_t *v = json_object_get(in, "requestSourceField");
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    if (!s || (strcmp(s, "operationRequestSource") && strcmp(s, "operationRequestedSource")))
        return -1;
    *dst = !strcmp(s, "operationRequestedSource");
    return 0;
}

static void put_config(struct emu *e, const json_t *in, struct httpd_response *res)
{
    struct emu_knobs k = e->k;
    long page = k.page_size, attempts = k.webhook_max_attempts;
    if (!json_is_object(in) || set_long(in, "pageSize", 1, &page) || set_long(in, "ackWindowMs", 0, &k.ack_window_ms) ||
        set_long(in, "opDelayMs", 0, &k.op_delay_ms) || set_long(in, "sendDelayMs", 0, &k.send_delay_ms) ||
        set_long(in, "tokenLifetimeS", 1, &k.token_lifetime_s) ||
        set_long(in, "landingTokenLifetimeS", 1, &k.landing_lifetime_s) ||
        set_long(in, "webhookTimeoutMs", 1, &k.webhook_timeout_ms) ||
        set_long(in, "webhookBackoffMs", 0, &k.webhook_backoff_ms) ||
        set_long(in, "webhookMaxAttempts", 1, &attempts) || set_long(in, "clockOffsetS", -1000000000L, &k.clock_offset_s) ||
        set_long(in, "subUpdateDelayMs", 0, &k.sub_update_delay_ms) || set_bool(in, "reinstateAckable", &k.reinstate_ackable) ||
        set_bool(in, "partnerWebhooks", &k.partner_webhooks) || set_bool(in, "omitCreated", &k.omit_created) || set_spelling(in, &k.requested_spelling)) {
        bad(res, 400, "BadArgument", "config values must be integers in range (see GET /_emulator/config)");
        return;
    }
    k.page_size = (int)page;
    k.webhook_max_attempts = (int)attempts;
    json_t *fault = json_object_get(in, "idTokenFault");
    if (fault && !json_is_null(fault) && !emu_id_token_fault_known(json_string_value(fault))) {
        bad(res, 400, "BadArgument",
            "idTokenFault: null, wrong-nonce, foreign-issuer, expired, wrong-audience, bad-signature or unknown-key");
        return;
    }
    if (set_string(in, "webhookUrl", &e->k.webhook_url) || set_string(in, "landingUrl", &e->k.landing_url) ||
        set_string(in, "idTokenFault", &e->k.id_token_fault)) {
        bad(res, 400, "BadArgument", "webhookUrl and landingUrl must be strings");
        return;
    }
    k.webhook_url = e->k.webhook_url;
    k.landing_url = e->k.landing_url;
    k.id_token_fault = e->k.id_token_fault;
    e->k = k;
    pthread_cond_broadcast(&e->wake);
    emu_reply_json(res, 200, knobs_json(e));
}

static json_t *landing_reply(struct emu *e, const json_t *sub, long lifetime)
{
    char *tok = emu_landing_token(e, emu_jstr(sub, "id"), lifetime);
    char *enc = NULL;
    if (tok)
        http_url_escape(tok, &enc);
    const char *base = e->k.landing_url ? e->k.landing_url : EMU_DEFAULT_LANDING;
    size_t n = strlen(base) + (enc ? strlen(enc) : 0) + 16;
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "%s%stoken=%s", base, strchr(base, '?') ? "&" : "?", enc ? enc : "");
    json_t *j = json_pack("{s:s,s:s?,s:s?}", "subscriptionId", emu_jstr(sub, "id"), "landingUrl", url, "token", tok);
    free(enc);
    free(url);
    free(tok);
    return j;
}

static const char *action_name(const char *slug)
{
    static const struct { const char *slug, *action; } map[] = {
        {"change-plan", "ChangePlan"}, {"change-quantity", "ChangeQuantity"}, {"suspend", "Suspend"},
        {"reinstate", "Reinstate"},    {"unsubscribe", "Unsubscribe"},        {"renew", "Renew"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(slug, map[i].slug))
            return map[i].action;
    return NULL;
}

static void customer(struct emu *e, json_t *sub, const char *action, const json_t *body, struct httpd_response *res)
{
    struct emu_error err;
    json_t *op = NULL;
    if (emu_customer_action(e, sub, action, body, &err, &op) != 0) {
        emu_reply_error(res, &err);
        return;
    }
    emu_reply_json(res, 202, emu_public(op));
    emu_operation_location(e, op, res);
}

static json_t *public_list(json_t *coll_obj, json_t *order, const char *field, const char *want)
{
    json_t *out = json_array();
    size_t i;
    json_t *id;
    json_array_foreach(order, i, id) {
        json_t *o = json_object_get(coll_obj, json_string_value(id));
        if (o && (!want || !strcmp(emu_jstr(o, field) ? emu_jstr(o, field) : "", want)))
            json_array_append_new(out, emu_public(o));
    }
    return out;
}

static void deliveries(struct emu *e, const struct httpd_request *r, struct httpd_response *res)
{
    const char *op = httpd_query(r, "operationId"), *sub = httpd_query(r, "subscriptionId");
    json_t *out = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(e->db, "deliveries"), i, d) {
        if ((op && strcmp(op, emu_jstr(d, "operationId"))) || (sub && strcmp(sub, emu_jstr(d, "subscriptionId"))))
            continue;
        json_t *p = emu_public(d);
        if (json_object_get(d, "payload"))
            json_object_set(p, "payload", json_object_get(d, "payload"));
        json_array_append_new(out, p);
    }
    emu_reply_json(res, 200, json_pack("{s:o}", "deliveries", out));
}

/* ---- faults ---- */

void emu_faults_clear(struct emu *e)
{
    for (size_t i = 0; i < e->nfaults; i++) {
        free(e->faults[i].method);
        free(e->faults[i].path);
        free(e->faults[i].kind);
    }
    free(e->faults);
    e->faults = NULL;
    e->nfaults = 0;
}

static json_t *faults_json(struct emu *e)
{
    json_t *a = json_array();
    for (size_t i = 0; i < e->nfaults; i++) {
        struct emu_fault *f = &e->faults[i];
        json_array_append_new(a, json_pack("{s:s?,s:s,s:s,s:i,s:i,s:I,s:I}", "method", f->method, "path", f->path,
                                           "kind", f->kind, "remaining", f->remaining, "hits", f->hits,
                                           "retryAfterS", (json_int_t)f->retry_after_s, "latencyMs",
                                           (json_int_t)f->latency_ms));
    }
    return a;
}

static void add_fault(struct emu *e, const json_t *in, struct httpd_response *res)
{
    const char *path = emu_jstr(in, "path"), *kind = emu_jstr(in, "kind"), *method = emu_jstr(in, "method");
    json_t *count = json_object_get(in, "count");
    static const char *kinds[] = {"429", "500", "503", "latency", "drop"};
    int known = 0;
    for (size_t i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++)
        known |= !strcmp(kind, kinds[i]);
    if (!path || !known || (count && (!json_is_integer(count) || json_integer_value(count) < 1))) {
        bad(res, 400, "BadArgument",
            "a fault needs path (glob), kind (429|500|503|latency|drop), optional method, count >= 1, retryAfterS, "
            "latencyMs");
        return;
    }
    struct emu_fault *grown = realloc(e->faults, (e->nfaults + 1) * sizeof *grown);
    if (!grown) {
        bad(res, 500, "UnexpectedError", "out of memory");
        return;
    }
    e->faults = grown;
    struct emu_fault *f = &e->faults[e->nfaults++];
    memset(f, 0, sizeof *f);
    f->method = method ? strdup(method) : NULL;
    f->path = strdup(path);
    f->kind = strdup(kind);
    f->remaining = count ? (int)json_integer_value(count) : 1;
    json_t *ra = json_object_get(in, "retryAfterS"), *lat = json_object_get(in, "latencyMs");
    f->retry_after_s = json_is_integer(ra) ? (long)json_integer_value(ra) : 1;
    f->latency_ms = json_is_integer(lat) ? (long)json_integer_value(lat) : 1000;
    emu_reply_json(res, 201, json_pack("{s:o}", "faults", faults_json(e)));
}

int emu_fault_apply(struct emu *e, const struct httpd_request *r, struct httpd_response *res, long *latency_ms)
{
    char kind[16] = "";
    long retry_after = 0, latency = 0;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->nfaults; i++) {
        struct emu_fault *f = &e->faults[i];
        if (f->remaining <= 0 || (f->method && strcasecmp(f->method, httpd_method(r))) ||
            fnmatch(f->path, httpd_path(r), 0) != 0)
            continue;
        f->remaining--;
        f->hits++;
        snprintf(kind, sizeof kind, "%s", f->kind);
        retry_after = f->retry_after_s;
        latency = f->latency_ms;
        break;
    }
    pthread_mutex_unlock(&e->lock);
    if (!*kind)
        return 0;
    log_info("emulator", "fault injected", "kind", kind, "path", httpd_path(r));
    if (!strcmp(kind, "latency")) {
        *latency_ms = latency;
        return 0;
    }
    if (!strcmp(kind, "drop")) {
        emu_reply_empty(res, 0); /* httpd refuses to queue status 0: the connection is closed unanswered */
        return 1;
    }
    if (!strcmp(kind, "429")) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", retry_after);
        emu_reply_json(res, 429, json_pack("{s:s,s:s}", "code", "TooManyRequests", "message",
                                           "Rate limit is exceeded. Try again later."));
        httpd_add_header(res, "Retry-After", ra);
        return 1;
    }
    struct emu_error err;
    emu_fail(&err, 500, "UnexpectedError", "An injected server error occurred");
    emu_reply_error(res, &err);
    res->status = atoi(kind);
    return 1;
}

/* ---- routing ---- */

static void subscriptions(struct emu *e, const struct httpd_request *r, const char *rest, const json_t *body,
                          struct httpd_response *res)
{
    const char *m = httpd_method(r);
    char sid[64] = "", verb[64] = "";
    int n = sscanf(rest, "/%63[^/]/%63[^/]", sid, verb);
    if (n < 1) {
        emu_reply_json(res, 200, json_pack("{s:o}", "subscriptions",
                                           public_list(json_object_get(e->db, "subs"),
                                                       json_object_get(e->db, "subOrder"), "offerId",
                                                       httpd_query(r, "offerId"))));
        return;
    }
    json_t *sub = emu_sub(e, sid);
    if (!sub) {
        bad(res, 404, "EntityNotFound", "no such subscription");
        return;
    }
    if (n == 1) {
        json_t *p = emu_public(sub);
        json_object_set(p, "purchasedPlanId", json_object_get(sub, "_purchasedPlan"));
        emu_reply_json(res, 200, p);
    } else if (strcmp(m, "POST")) {
        bad(res, 405, "MethodNotAllowed", "use POST");
    } else if (!strcmp(verb, "landing-token")) {
        json_t *life = json_object_get(body, "lifetimeS");
        emu_reply_json(res, 200, landing_reply(e, sub, json_is_integer(life) ? (long)json_integer_value(life)
                                                                             : e->k.landing_lifetime_s));
    } else if (action_name(verb)) {
        customer(e, sub, action_name(verb), body, res);
    } else {
        bad(res, 404, "NotFound", "unknown subscription action");
    }
}

static json_t *cert_list(struct emu *e, const char *client)
{
    json_t *out = json_array();
    size_t i;
    json_t *rec;
    json_array_foreach(emu_app_certs(e, client), i, rec)
        json_array_append_new(out, emu_cert_public(rec));
    return out;
}

static json_t *app_json(struct emu *e, const char *tid, const char *client, int configured)
{
    json_t *reg = emu_signin_reg(e, client);
    json_t *uris = reg ? json_incref(json_object_get(reg, "redirectUris")) : NULL;
    return json_pack("{s:s,s:s,s:b,s:o,s:o,s:s,s:s?}", "tenantId", tid, "clientId", client, "configured",
                     configured, "certificates", cert_list(e, client), "redirectUris", uris ? uris : json_array(),
                     "signInAudience",
                     reg ? emu_jstr(reg, "signInAudience") : "AzureADandPersonalMicrosoftAccount", "displayName",
                     reg ? emu_jstr(reg, "displayName") : NULL);
}

/* POST /_emulator/apps and PATCH /_emulator/apps/{clientId}: the sign-in half of a registration. */
static int app_signin(struct emu *e, const char *client, const json_t *body, struct emu_error *err)
{
    if (!json_object_get(body, "redirectUris") && !json_object_get(body, "signInAudience") &&
        !json_object_get(body, "displayName"))
        return 0;
    return emu_signin_reg_put(e, client, body, err);
}

/* GET /_emulator/calls[?method=&path=glob]: requests Microsoft's surfaces answered, oldest first. */
static void calls(struct emu *e, const struct httpd_request *r, struct httpd_response *res)
{
    const char *method = httpd_query(r, "method"), *glob = httpd_query(r, "path");
    json_t *out = json_array();
    for (size_t i = 0; i < e->calls_len; i++) {
        const struct emu_call *c = &e->calls[(e->calls_head + i) % EMU_CALLS_MAX];
        if ((method && strcasecmp(method, c->method)) || (glob && fnmatch(glob, c->path, 0)))
            continue;
        char at[40];
        emu_iso(c->at_ms, at);
        json_array_append_new(out, json_pack("{s:s,s:s,s:i,s:s}", "method", c->method, "path", c->path, "status",
                                             c->status, "at", at));
    }
    emu_reply_json(res, 200, json_pack("{s:o}", "calls", out));
}

static void users_route(struct emu *e, const char *m, const json_t *body, struct httpd_response *res)
{
    struct emu_error err;
    json_t *u = NULL;
    if (!strcmp(m, "GET"))
        emu_reply_json(res, 200, json_pack("{s:o}", "users", emu_users_json(e)));
    else if (strcmp(m, "POST"))
        bad(res, 405, "MethodNotAllowed", "GET, or POST {email, name?, tenantId?, tenantName?, personal?, objectId?}");
    else if (emu_user_put(e, body, &err, &u) != 0)
        emu_reply_error(res, &err);
    else
        emu_reply_json(res, 201, json_incref(u));
}

/* /_emulator/apps/{clientId}/certificates[/{x5t|x5t#S256|thumbprint}]: what Entra's
 * "Certificates & secrets" page does for an app registration. */
static void app_certificates(struct emu *e, const char *m, const char *rest, const json_t *body,
                             struct httpd_response *res)
{
    char client[128] = "", what[32] = "", id[128] = "";
    struct emu_error err;
    int n = sscanf(rest, "/%127[^/]/%31[^/]/%127[^/]", client, what, id);
    if (n < 2 || strcmp(what, "certificates")) {
        bad(res, 404, "NotFound", "use /_emulator/apps/{clientId}/certificates");
    } else if (!emu_app_tenant(e, client, NULL)) {
        bad(res, 404, "EntityNotFound", "no such app");
    } else if (n == 2 && !strcmp(m, "GET")) {
        emu_reply_json(res, 200, json_pack("{s:s,s:o}", "clientId", client, "certificates", cert_list(e, client)));
    } else if (n == 2 && !strcmp(m, "POST")) {
        const char *pem = emu_jstr(body, "certificate");
        json_t *rec = NULL;
        if (emu_app_cert_add(e, client, pem, pem ? strlen(pem) : 0, &err, &rec) != 0) {
            emu_reply_error(res, &err);
        } else {
            json_t *out = emu_cert_public(rec);
            json_object_set_new(out, "clientId", json_string(client));
            emu_reply_json(res, 201, out);
        }
    } else if (n == 3 && !strcmp(m, "DELETE")) {
        if (emu_app_cert_del(e, client, id) != 0)
            bad(res, 404, "EntityNotFound", "no such certificate for this app");
        else
            emu_reply_empty(res, 204);
    } else {
        bad(res, 405, "MethodNotAllowed", "GET or POST {certificate: PEM} .../certificates, DELETE .../certificates/{x5t}");
    }
}

/* Tests of a token's shape: re-sign tok's claims without the claims named in drop (a list). */
static int drop_claims(struct emu *e, const json_t *drop, char **tok)
{
    const char *dot1 = strchr(*tok, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    uint8_t *raw = NULL;
    size_t n = 0;
    if (!dot2 || crypto_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &raw, &n) != 0)
        return SAASD_EINVAL;
    json_t *claims = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    size_t i;
    json_t *v;
    json_array_foreach(drop, i, v) if (json_is_string(v)) json_object_del(claims, json_string_value(v));
    char *signed_tok = NULL;
    int rc = claims ? emu_jwt_sign(&e->keys[0], claims, &signed_tok) : SAASD_EINVAL;
    json_decref(claims);
    if (!rc) {
        free(*tok);
        *tok = signed_tok;
    }
    return rc;
}

static void tokens(struct emu *e, const json_t *body, struct httpd_response *res)
{
    const char *kind = emu_jstr(body, "kind"), *client = emu_jstr(body, "clientId");
    char *tok = NULL;
    int rc;
    if (!client)
        client = e->client_id;
    const char *tid = emu_app_tenant(e, client, NULL);
    if (!tid) {
        bad(res, 400, "BadArgument", "unknown clientId");
        return;
    }
    if (kind && !strcmp(kind, "webhook"))
        rc = emu_mint_webhook_token(e, tid, client, &tok);
    else
        rc = emu_mint_publisher_token(e, json_integer_value(json_object_get(body, "version")) == 1 ? 1 : 2, tid,
                                      client, &tok);
    if (rc == 0 && json_is_array(json_object_get(body, "drop")))
        rc = drop_claims(e, json_object_get(body, "drop"), &tok);
    if (rc != 0) {
        bad(res, 500, "UnexpectedError", "could not sign a token");
        return;
    }
    emu_reply_json(res, 200, json_pack("{s:s,s:s}", "access_token", tok, "kid", e->keys[0].kid));
    free(tok);
}

/* ------------------------------------------------------------------------------------------ */
/* Routing: one table of the control API's paths (saasd emulate --help and the README list them). */

typedef void control_fn(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                        struct httpd_response *res);

static int is(const struct httpd_request *r, const char *method) { return !strcmp(httpd_method(r), method); }

/* Microsoft emulator's trigger shape (§5.7): POST …/{id}/{verb}, or PATCH …/{id} for a change. */
static void on_trigger(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                       struct httpd_response *res)
{
    const char *verb = a->rest;
    json_t *sub = emu_sub(e, a->id);
    const char *action = is(r, "PATCH") && !*verb ? (json_object_get(body, "planId") ? "ChangePlan" : "ChangeQuantity")
                         : is(r, "POST")        ? action_name(verb)
                                                : NULL;
    if (!sub)
        bad(res, 404, "EntityNotFound", "no such subscription");
    else if (!action || !strncmp(verb, "change", 6))
        bad(res, 404, "NotFound", "unknown trigger");
    else
        customer(e, sub, action, body, res);
}

static void on_health(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                      struct httpd_response *res)
{
    if (is(r, "GET"))
        emu_reply_json(res, 200, knobs_json(e));
    else
        bad(res, 405, "MethodNotAllowed", "GET, or PUT/PATCH for /config");
}

static void on_config(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                      struct httpd_response *res)
{
    if (is(r, "PUT") || is(r, "PATCH"))
        put_config(e, body, res);
    else
        on_health(e, a, r, body, res);
}

static void on_clock(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                     struct httpd_response *res)
{
    json_t *s = json_object_get(body, "seconds");
    if (!json_is_integer(s)) {
        bad(res, 400, "BadArgument", "seconds (integer) is required");
        return;
    }
    e->k.clock_offset_s += (long)json_integer_value(s);
    char now[40];
    emu_iso(emu_now_ms(e), now);
    emu_reply_json(res, 200, json_pack("{s:I,s:s}", "clockOffsetS", (json_int_t)e->k.clock_offset_s, "now", now));
}

static void on_app_add(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                       struct httpd_response *res)
{
    struct emu_error err;
    if (emu_app_put(e, body, &err) != 0 || app_signin(e, emu_jstr(body, "clientId"), body, &err) != 0)
        emu_reply_error(res, &err);
    else
        emu_reply_json(res, 201, app_json(e, emu_jstr(body, "tenantId"), emu_jstr(body, "clientId"), 0));
}

static void on_apps(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                    struct httpd_response *res)
{
    json_t *list = json_array();
    json_array_append_new(list, app_json(e, e->tenant_id, e->client_id, 1));
    const char *k;
    json_t *app;
    json_object_foreach(json_object_get(e->db, "apps"), k, app)
        json_array_append_new(list, app_json(e, emu_jstr(app, "tenantId"), emu_jstr(app, "clientId"), 0));
    emu_reply_json(res, 200, json_pack("{s:o}", "apps", list));
}

static void on_app_patch(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                         struct httpd_response *res)
{
    struct emu_error err;
    const char *client = a->id, *tid = emu_app_tenant(e, client, NULL);
    if (!tid)
        bad(res, 404, "EntityNotFound", "no such app");
    else if (emu_signin_reg_put(e, client, body, &err) != 0)
        emu_reply_error(res, &err);
    else
        emu_reply_json(res, 200, app_json(e, tid, client, !strcmp(client, e->client_id)));
}

static void on_app_certificates(struct emu *e, const struct route_args *a, const struct httpd_request *r,
                                json_t *body, struct httpd_response *res)
{
    app_certificates(e, httpd_method(r), httpd_path(r) + strlen("/_emulator/apps"), body, res);
}

static void on_users(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                     struct httpd_response *res)
{
    users_route(e, httpd_method(r), body, res);
}

static void on_calls(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                     struct httpd_response *res)
{
    calls(e, r, res);
}

static void on_offers(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                      struct httpd_response *res)
{
    json_t *list = json_array();
    const char *k;
    json_t *o;
    json_object_foreach(json_object_get(e->db, "offers"), k, o)
        json_array_append(list, o);
    emu_reply_json(res, 200, json_pack("{s:o}", "offers", list));
}

static void on_offer_add(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                         struct httpd_response *res)
{
    struct emu_error err;
    json_t *offer;
    if (emu_offer_put(e, body, &err, &offer) != 0)
        emu_reply_error(res, &err);
    else
        emu_reply_json(res, 201, json_incref(offer));
}

static void on_offer(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                     struct httpd_response *res)
{
    json_t *offer = emu_offer(e, a->rest);
    if (offer)
        emu_reply_json(res, 200, json_incref(offer));
    else
        bad(res, 404, "EntityNotFound", "no such offer");
}

static void on_purchase(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                        struct httpd_response *res)
{
    struct emu_error err;
    json_t *sub;
    if (emu_purchase(e, body ? body : json_object(), &err, &sub) != 0) {
        emu_reply_error(res, &err);
        return;
    }
    json_t *out = landing_reply(e, sub, e->k.landing_lifetime_s);
    json_object_set_new(out, "subscription", emu_public(sub));
    emu_reply_json(res, 201, out);
}

static void on_subscriptions(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                             struct httpd_response *res)
{
    subscriptions(e, r, a->tail, body, res);
}

static void on_operations(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                          struct httpd_response *res)
{
    const char *sid = httpd_query(r, "subscriptionId"); /* one subscription's: from the index */
    emu_reply_json(res, 200, json_pack("{s:o}", "operations",
                                       public_list(json_object_get(e->db, "ops"),
                                                   sid ? emu_sub_ops(e, sid) : json_object_get(e->db, "opOrder"),
                                                   "subscriptionId", sid)));
}

static void on_operation(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                         struct httpd_response *res)
{
    json_t *op = emu_op(e, a->rest);
    if (op)
        emu_reply_json(res, 200, emu_public(op));
    else
        bad(res, 404, "EntityNotFound", "no such operation");
}

static void on_webhooks(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                        struct httpd_response *res)
{
    deliveries(e, r, res);
}

static void on_usage(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                     struct httpd_response *res)
{
    json_t *list = json_array();
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(e->db, "usageLog"), i, u)
        json_array_append_new(list, emu_public(u));
    emu_reply_json(res, 200, json_pack("{s:o}", "usage", list));
}

static void on_usage_recon_status(struct emu *e, const struct route_args *a, const struct httpd_request *r,
                                  json_t *body, struct httpd_response *res)
{
    struct emu_error err;
    json_t *row;
    if (emu_usage_recon_status(e, body, &err, &row) != 0)
        emu_reply_error(res, &err);
    else
        emu_reply_json(res, 200, row);
}

static void on_faults(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                      struct httpd_response *res)
{
    if (is(r, "GET")) {
        emu_reply_json(res, 200, json_pack("{s:o}", "faults", faults_json(e)));
    } else if (is(r, "POST")) {
        add_fault(e, body, res);
    } else if (is(r, "DELETE")) {
        emu_faults_clear(e);
        emu_reply_empty(res, 204);
    } else {
        bad(res, 405, "MethodNotAllowed", "GET, POST or DELETE");
    }
}

static void on_keys_rotate(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                           struct httpd_response *res)
{
    if (emu_keys_rotate_memory(e) != 0) {
        bad(res, 500, "UnexpectedError", "key rotation failed");
        return;
    }
    json_t *kids = json_array();
    for (size_t i = 0; i < e->nkeys; i++)
        json_array_append_new(kids, json_string(e->keys[i].kid));
    log_info("emulator", "signing key rotated", "kid", e->keys[0].kid);
    emu_reply_json(res, 200, json_pack("{s:s,s:o}", "kid", e->keys[0].kid, "published", kids));
}

static void on_tokens(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                      struct httpd_response *res)
{
    tokens(e, body, res);
}

static void on_reset(struct emu *e, const struct route_args *a, const struct httpd_request *r, json_t *body,
                     struct httpd_response *res)
{
    emu_state_reset(e);
    emu_faults_clear(e);
    emu_reply_empty(res, 204);
}

/* First match wins (patterns: core/route.h); method NULL = any (the handler tells the methods
 * apart). A path that matches no row, or a row only with another method, is answered 404. */
static const struct {
    const char *method;
    const char *pattern;
    control_fn *handle;
} routes[] = {
    {NULL, "/api/webhook/subscription/{id}/{rest}", on_trigger},
    {NULL, "/api/webhook/subscription/{id}", on_trigger},
    {NULL, "/_emulator/health", on_health},
    {NULL, "/_emulator/config", on_config},
    {"POST", "/_emulator/clock/advance", on_clock},
    {"POST", "/_emulator/apps", on_app_add},
    {"GET", "/_emulator/apps", on_apps},
    {"PATCH", "/_emulator/apps/{id}", on_app_patch},
    {NULL, "/_emulator/apps/{rest}", on_app_certificates},
    {NULL, "/_emulator/users", on_users},
    {"GET", "/_emulator/calls", on_calls},
    {"GET", "/_emulator/offers", on_offers},
    {"POST", "/_emulator/offers", on_offer_add},
    {"GET", "/_emulator/offers/{rest}", on_offer},
    {"POST", "/_emulator/purchases", on_purchase},
    {NULL, "/_emulator/subscriptions{tail}", on_subscriptions},
    {"GET", "/_emulator/operations", on_operations},
    {"GET", "/_emulator/operations/{rest}", on_operation},
    {"GET", "/_emulator/webhooks", on_webhooks},
    {"GET", "/_emulator/usage", on_usage},
    {"POST", "/_emulator/usage/recon-status", on_usage_recon_status},
    {NULL, "/_emulator/faults", on_faults},
    {"POST", "/_emulator/keys/rotate", on_keys_rotate},
    {"POST", "/_emulator/tokens", on_tokens},
    {"POST", "/_emulator/reset", on_reset},
};

void emu_control_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res)
{
    const char *path = httpd_path(r), *m = httpd_method(r);
    json_t *body = emu_body_json(r);
    struct route_args a;
    size_t i = 0, n = sizeof routes / sizeof routes[0];
    while (i < n && !route_row_matches(routes[i].method, routes[i].pattern, m, path, &a))
        i++;
    if (i < n)
        routes[i].handle(e, &a, r, body, res);
    else
        bad(res, 404, "NotFound", "unknown control route (see saasd emulate --help)");
    json_decref(body);
}
