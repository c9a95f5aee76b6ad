/* The emulator's state and the subscription life cycle of §6: offers and plans, purchases,
 * landing tokens, Activate, publisher PATCH/DELETE, customer-side actions, operations with
 * their ACK windows. Every function here runs with emu.lock held and records changes in
 * e->db (marking it dirty for the LMDB snapshot). HTTP rendering lives in the route files. */
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "emu/emu_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEVER "0001-01-01T00:00:00"

static json_t *coll(struct emu *e, const char *name) { return json_object_get(e->db, name); }

int emu_state_init(struct emu *e)
{
    e->db = json_pack("{s:{},s:{},s:{},s:{},s:[],s:{},s:[],s:{},s:[],s:[]}", "apps", "certs", "offers", "subs",
                      "subOrder", "ops", "opOrder", "usage", "usageLog", "deliveries");
    return e->db ? 0 : SAASD_ENOMEM;
}

void emu_state_reset(struct emu *e)
{
    json_t *offers = json_incref(coll(e, "offers")), *apps = json_incref(coll(e, "apps"));
    json_t *certs = json_incref(coll(e, "certs"));
    json_t *users = json_incref(coll(e, "users")), *signin = json_incref(coll(e, "signin"));
    json_decref(e->db);
    emu_state_init(e);
    e->first_pending = 0; /* a new, empty delivery log */
    emu_timers_rescan(e);
    emu_texts_clear(e);
    json_decref(e->sub_ops);
    e->sub_ops = NULL;
    json_object_set_new(e->db, "offers", offers);
    if (apps)
        json_object_set_new(e->db, "apps", apps);
    if (certs)
        json_object_set_new(e->db, "certs", certs);
    if (users) /* who can sign in, and the apps' sign-in settings, are directory state like apps */
        json_object_set_new(e->db, "users", users);
    if (signin)
        json_object_set_new(e->db, "signin", signin);
    e->dirty = 1;
}

/* ---- publisher apps ---- */

const char *emu_app_tenant(struct emu *e, const char *client, const char **secret_out)
{
    if (!client)
        return NULL;
    if (!strcmp(client, e->client_id)) {
        if (secret_out)
            *secret_out = e->client_secret;
        return e->tenant_id;
    }
    json_t *app = json_object_get(coll(e, "apps"), client);
    if (!app)
        return NULL;
    if (secret_out)
        *secret_out = emu_jstr(app, "clientSecret");
    return emu_jstr(app, "tenantId");
}

int emu_tenant_known(struct emu *e, const char *tid)
{
    const char *key;
    json_t *app;
    if (!strcmp(tid, e->tenant_id))
        return 1;
    json_object_foreach(coll(e, "apps"), key, app)
        if (!strcmp(emu_jstr(app, "tenantId"), tid))
            return 1;
    return 0;
}

int emu_app_put(struct emu *e, const json_t *in, struct emu_error *err)
{
    const char *tid = emu_jstr(in, "tenantId"), *client = emu_jstr(in, "clientId");
    const char *secret = emu_jstr(in, "clientSecret"), *cert = emu_jstr(in, "certificate");
    if (!tid || !*tid || !client || !*client || !strcmp(client, e->client_id) || (!(secret && *secret) && !cert)) {
        emu_fail(err, 400, "BadArgument",
                 "an app needs tenantId, clientId (not the configured one) and clientSecret and/or certificate (PEM)");
        return SAASD_EINVAL;
    }
    if (!coll(e, "apps"))
        json_object_set_new(e->db, "apps", json_object());
    json_t *old = json_incref(json_object_get(coll(e, "apps"), client));
    json_object_set_new(coll(e, "apps"), client,
                        json_pack("{s:s,s:s,s:s?}", "tenantId", tid, "clientId", client, "clientSecret",
                                  secret && *secret ? secret : NULL));
    e->dirty = 1;
    if (cert && emu_app_cert_add(e, client, cert, strlen(cert), err, NULL) != 0) {
        if (old) /* refused as a whole: the app stays what it was */
            json_object_set(coll(e, "apps"), client, old);
        else
            json_object_del(coll(e, "apps"), client);
        json_decref(old);
        return SAASD_EINVAL;
    }
    json_decref(old);
    return 0;
}

const char *emu_offer_client(struct emu *e, const json_t *offer)
{
    const char *c = emu_jstr(offer, "clientId");
    return c ? c : e->client_id;
}

const char *emu_sub_client(struct emu *e, const json_t *sub)
{
    return emu_offer_client(e, emu_offer(e, emu_jstr(sub, "offerId")));
}

/* ---- offers and plans ---- */

json_t *emu_offer(struct emu *e, const char *offer_id)
{
    return offer_id ? json_object_get(coll(e, "offers"), offer_id) : NULL;
}

json_t *emu_plan(const json_t *offer, const char *plan_id)
{
    size_t i;
    json_t *p;
    if (!plan_id)
        return NULL;
    json_array_foreach(json_object_get(offer, "plans"), i, p)
        if (!strcmp(emu_jstr(p, "planId") ? emu_jstr(p, "planId") : "", plan_id))
            return p;
    return NULL;
}

static const char *plan_term(const json_t *plan)
{
    json_t *terms = json_object_get(json_object_get(plan, "planComponents"), "recurrentBillingTerms");
    const char *t = emu_jstr(json_array_get(terms, 0), "termUnit");
    return t ? t : "P1M";
}

static int plan_per_seat(const json_t *plan) { return json_is_true(json_object_get(plan, "isPricePerSeat")); }

int emu_plan_has_dimension(const json_t *plan, const char *dim)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(json_object_get(plan, "planComponents"), "meteringDimensions"), i, d)
        if (dim && emu_jstr(d, "id") && !strcmp(emu_jstr(d, "id"), dim))
            return 1;
    return 0;
}

static json_t *bool_or(const json_t *in, const char *key, int dflt)
{
    json_t *v = json_object_get(in, key);
    return json_boolean(json_is_boolean(v) ? json_is_true(v) : dflt);
}

/* Accepts the full §3.7 plan shape or a shorthand: termUnit, price, dimensions: ["id", ...]. */
static json_t *plan_normalize(const json_t *in, struct emu_error *err)
{
    const char *id = emu_jstr(in, "planId");
    if (!id || !*id) {
        emu_fail(err, 400, "BadArgument", "every plan needs a planId");
        return NULL;
    }
    int seats = json_is_true(json_object_get(in, "isPricePerSeat"));
    json_t *p = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:b,s:o,s:s}", "planId", id, "displayName",
                          emu_jstr(in, "displayName") ? emu_jstr(in, "displayName") : id, "description",
                          emu_jstr(in, "description") ? emu_jstr(in, "description") : "", "isPrivate",
                          bool_or(in, "isPrivate", 0), "hasFreeTrials", bool_or(in, "hasFreeTrials", 0), "isStopSell",
                          bool_or(in, "isStopSell", 0), "isPricePerSeat", seats, "sourceOffers", json_array(), "market",
                          emu_jstr(in, "market") ? emu_jstr(in, "market") : "US");
    if (seats) {
        json_t *mn = json_object_get(in, "minQuantity"), *mx = json_object_get(in, "maxQuantity");
        json_object_set_new(p, "minQuantity", json_integer(json_is_integer(mn) ? json_integer_value(mn) : 1));
        json_object_set_new(p, "maxQuantity", json_integer(json_is_integer(mx) ? json_integer_value(mx) : 10000));
    }
    json_t *pc = json_object_get(in, "planComponents");
    if (json_is_object(pc)) {
        json_object_set(p, "planComponents", pc);
    } else {
        const char *term = emu_jstr(in, "termUnit") ? emu_jstr(in, "termUnit") : "P1M";
        int64_t probe;
        if (emu_term_end(0, term, &probe) != 0) {
            emu_fail(err, 400, "BadArgument", "termUnit '%s' is not one of P1M, P1Y..P5Y", term);
            json_decref(p);
            return NULL;
        }
        json_t *price = json_object_get(in, "price");
        json_t *dims = json_array();
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(in, "dimensions"), i, d) {
            if (json_is_string(d))
                json_array_append_new(dims, json_pack("{s:s,s:s,s:f,s:s,s:s}", "id", json_string_value(d), "currency",
                                                      "USD", "pricePerUnit", 0.01, "unitOfMeasure", "unit",
                                                      "displayName", json_string_value(d)));
            else if (json_is_object(d) && emu_jstr(d, "id"))
                json_array_append(dims, d);
        }
        json_object_set_new(
            p, "planComponents",
            json_pack("{s:[{s:s,s:f,s:s,s:s,s:[]}],s:o}", "recurrentBillingTerms", "currency", "USD", "price",
                      json_is_number(price) ? json_number_value(price) : 10.0, "termUnit", term, "termDescription",
                      term[1] == '1' && term[2] == 'M' ? "1 month" : "year term", "meteredQuantityIncluded",
                      "meteringDimensions", dims));
    }
    return p;
}

int emu_offer_put(struct emu *e, const json_t *in, struct emu_error *err, json_t **out)
{
    const char *id = emu_jstr(in, "offerId");
    json_t *plans_in = json_object_get(in, "plans");
    if (!id || !*id || !json_is_array(plans_in) || json_array_size(plans_in) == 0) {
        emu_fail(err, 400, "BadArgument", "an offer needs offerId and a non-empty plans array");
        return SAASD_EINVAL;
    }
    json_t *plans = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(plans_in, i, p) {
        json_t *np = plan_normalize(p, err);
        if (!np) {
            json_decref(plans);
            return SAASD_EINVAL;
        }
        json_array_append_new(plans, np);
    }
    json_t *offer = json_pack("{s:s,s:s,s:o}", "offerId", id, "publisherId",
                              emu_jstr(in, "publisherId") ? emu_jstr(in, "publisherId") : e->publisher_id, "plans",
                              plans);
    const char *hook = emu_jstr(in, "webhookUrl"), *client = emu_jstr(in, "clientId");
    if (hook && *hook)
        json_object_set_new(offer, "webhookUrl", json_string(hook));
    if (client && strcmp(client, e->client_id)) {
        if (!emu_app_tenant(e, client, NULL)) {
            emu_fail(err, 400, "BadArgument", "clientId '%s' is not a known app (POST /_emulator/apps first)", client);
            json_decref(offer);
            return SAASD_EINVAL;
        }
        json_object_set_new(offer, "clientId", json_string(client));
    }
    json_object_set_new(coll(e, "offers"), id, offer);
    e->dirty = 1;
    *out = offer;
    return 0;
}

void emu_state_seed(struct emu *e)
{
    if (json_object_size(coll(e, "offers")) > 0)
        return;
    json_t *in = json_pack(
        "{s:s,s:[{s:s,s:s,s:f,s:[s,s]},{s:s,s:s,s:f,s:[s,s]},{s:s,s:s,s:b,s:i,s:i,s:f},{s:s,s:s,s:s,s:f}]}", "offerId",
        "emulator-offer", "plans", "planId", "basic", "displayName", "Basic", "price", 10.0, "dimensions", "api-calls",
        "storage-gb", "planId", "gold", "displayName", "Gold", "price", 50.0, "dimensions", "api-calls", "storage-gb",
        "planId", "seats", "displayName", "Per seat", "isPricePerSeat", 1, "minQuantity", 1, "maxQuantity", 100,
        "price", 5.0, "planId", "annual", "displayName", "Annual", "termUnit", "P1Y", "price", 100.0);
    struct emu_error err;
    json_t *offer;
    emu_offer_put(e, in, &err, &offer);
    json_decref(in);
}

/* ---- subscriptions ---- */

json_t *emu_sub(struct emu *e, const char *id) { return id ? json_object_get(coll(e, "subs"), id) : NULL; }

/* Microsoft may show a change later than it reports the operation done: with sub_update_delay_ms,
 * GET and List keep showing the state before the change for that long. */
static void keep_previous_view(struct emu *e, json_t *sub)
{
    if (e->k.sub_update_delay_ms <= 0)
        return;
    json_t *until = json_object_get(sub, "_previousUntil");
    if (until && json_integer_value(until) > emu_now_ms(e))
        return; /* the older view is still the one shown */
    json_object_set_new(sub, "_previous", emu_public(sub));
    json_object_set_new(sub, "_previousUntil", json_integer(emu_now_ms(e) + e->k.sub_update_delay_ms));
}

int emu_sub_showing_previous(struct emu *e, const json_t *sub)
{
    return json_object_get(sub, "_previous") &&
           json_integer_value(json_object_get(sub, "_previousUntil")) > emu_now_ms(e);
}

json_t *emu_sub_view(struct emu *e, const json_t *sub)
{
    json_t *view = emu_sub_showing_previous(e, sub) ? json_copy(json_object_get(sub, "_previous"))
                                                    : emu_public_view(sub);
    if (e->k.omit_created)
        json_object_del(view, "created");
    return view;
}

static void touch(struct emu *e, json_t *sub)
{
    char ts[40];
    emu_iso(emu_now_ms(e), ts);
    json_object_set_new(sub, "lastModified", json_string(ts));
    e->dirty = 1;
    emu_text_forget(e, EMU_TEXT_SUB, sub);
}

/* Quantity as clients send it: number, numeric string, "" / null / absent (= none). 1 when a
 * value is present, 0 when absent, -1 when malformed. */
static int read_quantity(const json_t *v, json_int_t *out)
{
    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
        *out = (json_int_t)json_real_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        char *end;
        long long q = strtoll(json_string_value(v), &end, 10);
        if (*end == 0) {
            *out = q;
            return 1;
        }
    }
    return -1;
}

static int set_term_from(struct emu *e, json_t *sub, int64_t start_ms)
{
    json_t *term = json_object_get(sub, "term");
    int64_t end;
    char s[40], t[40];
    if (emu_term_end(start_ms, emu_jstr(term, "termUnit"), &end) != 0)
        return SAASD_EINVAL;
    emu_iso(start_ms, s);
    emu_iso(end, t);
    json_object_set_new(term, "startDate", json_string(s));
    json_object_set_new(term, "endDate", json_string(t));
    (void)e;
    return 0;
}

static json_t *new_op(struct emu *e, json_t *sub, const char *action, const char *source, const char *plan_id,
                      json_t *quantity);
static void op_finish(struct emu *e, json_t *op, const char *status, const char *err_code, const char *err_msg);

int emu_purchase(struct emu *e, const json_t *in, struct emu_error *err, json_t **sub_out)
{
    const char *offer_id = emu_jstr(in, "offerId"), *key;
    json_t *offer = emu_offer(e, offer_id), *o;
    if (!offer_id) { /* no offer named: the first one that has the plan (or the first one) */
        json_object_foreach(coll(e, "offers"), key, o) {
            if (!emu_jstr(in, "planId") || emu_plan(o, emu_jstr(in, "planId"))) {
                offer = o;
                break;
            }
        }
    }
    if (!offer) {
        emu_fail(err, 404, "EntityNotFound", "offer '%s' does not exist", offer_id ? offer_id : "(none given)");
        return SAASD_ENOTFOUND;
    }
    const char *plan_id = emu_jstr(in, "planId");
    json_t *plan = plan_id ? emu_plan(offer, plan_id) : json_array_get(json_object_get(offer, "plans"), 0);
    if (!plan) {
        emu_fail(err, 400, "BadArgument", "plan '%s' is not in offer '%s'", plan_id, emu_jstr(offer, "offerId"));
        return SAASD_EINVAL;
    }
    if (json_is_true(json_object_get(plan, "isStopSell"))) {
        emu_fail(err, 400, "BadArgument", "plan '%s' is stop-sell", emu_jstr(plan, "planId"));
        return SAASD_EINVAL;
    }
    json_int_t qty = 0;
    int has_qty = read_quantity(json_object_get(in, "quantity"), &qty);
    if (plan_per_seat(plan)) {
        json_int_t mn = json_integer_value(json_object_get(plan, "minQuantity"));
        json_int_t mx = json_integer_value(json_object_get(plan, "maxQuantity"));
        if (has_qty == 0)
            qty = mn > 0 ? mn : 1;
        if (has_qty < 0 || qty < mn || qty > mx) {
            emu_fail(err, 400, "BadArgument", "quantity must be within %lld..%lld", (long long)mn, (long long)mx);
            return SAASD_EINVAL;
        }
    } else if (has_qty > 0) {
        emu_fail(err, 400, "BadArgument", "plan '%s' is not priced per seat: no quantity", emu_jstr(plan, "planId"));
        return SAASD_EINVAL;
    }
    const char *term_unit = emu_jstr(in, "termUnit") ? emu_jstr(in, "termUnit") : plan_term(plan);
    int64_t probe;
    if (emu_term_end(0, term_unit, &probe) != 0) {
        emu_fail(err, 400, "BadArgument", "termUnit '%s' is not one of P1M, P1Y..P5Y", term_unit);
        return SAASD_EINVAL;
    }
    char id[37], now[40];
    emu_uuid(id);
    emu_iso(emu_now_ms(e), now);
    int csp = json_is_true(json_object_get(in, "csp"));
    json_t *ben = emu_buyer_identity(e, json_object_get(in, "beneficiary"), EMU_BUYER_EMAIL);
    json_t *pur = json_object_get(in, "purchaser") ? emu_buyer_identity(e, json_object_get(in, "purchaser"), EMU_BUYER_EMAIL)
                                                  : json_deep_copy(ben);
    json_t *ops = csp ? json_pack("[s]", "Read") : json_pack("[s,s,s]", "Read", "Update", "Delete");
    const char *name = emu_jstr(in, "name");
    json_t *sub = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:s,s:{s:s,s:n},s:o,s:o,s:o,s:o,s:s,s:s,s:s,s:s,s:s,s:I}", "id", id, "name",
        name ? name : "emulated subscription", "publisherId", emu_jstr(offer, "publisherId"), "offerId",
        emu_jstr(offer, "offerId"), "planId", emu_jstr(plan, "planId"), "beneficiary", ben, "purchaser", pur,
        "saasSubscriptionStatus", "PendingFulfillmentStart", "term", "termUnit", term_unit, "chargeDuration",
        "autoRenew", bool_or(in, "autoRenew", 1), "isTest", bool_or(in, "isTest", 0), "isFreeTrial",
        bool_or(in, "isFreeTrial", 0), "allowedCustomerOperations", ops, "sandboxType", csp ? "Csp" : "None",
        "sessionMode", emu_jstr(in, "sessionMode") ? emu_jstr(in, "sessionMode") : "None", "created", now,
        "lastModified", NEVER, "_purchasedPlan", emu_jstr(plan, "planId"), "_seq",
        (json_int_t)json_array_size(coll(e, "subOrder")));
    if (!sub)
        return SAASD_ENOMEM;
    if (plan_per_seat(plan)) {
        json_object_set_new(sub, "quantity", json_integer(qty));
        json_object_set_new(sub, "_purchasedQuantity", json_integer(qty));
    }
    json_object_set_new(coll(e, "subs"), id, sub);
    json_array_append_new(coll(e, "subOrder"), json_string(id));
    e->dirty = 1;
    /* Plans with automatic activation skip the landing page: Subscribed + a Subscribe webhook. */
    if (json_is_true(json_object_get(in, "autoActivate"))) {
        json_object_set_new(sub, "saasSubscriptionStatus", json_string("Subscribed"));
        set_term_from(e, sub, emu_day_start(emu_now_ms(e)));
        touch(e, sub);
        json_t *op = new_op(e, sub, "Subscribe", "Azure", NULL, NULL);
        op_finish(e, op, "Succeeded", NULL, NULL);
        emu_webhook_enqueue(e, op);
    }
    *sub_out = sub;
    return 0;
}

/* ---- landing tokens: base64(JSON {s, e, n} || HMAC-SHA256). Standard base64 on purpose: like
 * the real blob it contains '+', '/' and '=', so clients that decode twice or turn '+' into a
 * space get the documented 400 "failed to decrypt token". ---- */

char *emu_landing_token(struct emu *e, const char *sub_id, long lifetime_s)
{
    char *out = NULL;
    for (int attempt = 0; attempt < 64; attempt++) {
        uint8_t nonce[6];
        char *n64 = NULL;
        crypto_random(nonce, sizeof nonce);
        crypto_base64url_encode(nonce, sizeof nonce, &n64);
        json_t *j = json_pack("{s:s,s:I,s:s}", "s", sub_id, "e", (json_int_t)(emu_now_ms(e) / 1000 + lifetime_s), "n",
                              n64 ? n64 : "");
        free(n64);
        char *payload = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!payload)
            return NULL;
        size_t plen = strlen(payload);
        uint8_t *blob = malloc(plen + CRYPTO_SHA256_LEN);
        if (!blob) {
            free(payload);
            return NULL;
        }
        memcpy(blob, payload, plen);
        crypto_hmac_sha256(e->landing_key, sizeof e->landing_key, payload, plen, blob + plen);
        free(out);
        out = NULL;
        crypto_base64_encode(blob, plen + CRYPTO_SHA256_LEN, &out);
        free(blob);
        free(payload);
        if (out && strchr(out, '+'))
            break;
    }
    return out;
}

int emu_landing_resolve(struct emu *e, const char *token, struct emu_error *err, json_t **sub_out)
{
    uint8_t *blob = NULL, mac[CRYPTO_SHA256_LEN];
    size_t n = 0;
    json_t *j = NULL;
    int rc = SAASD_EINVAL;
    if (crypto_base64_decode(token, strlen(token), &blob, &n) != 0 || n <= CRYPTO_SHA256_LEN)
        goto bad;
    crypto_hmac_sha256(e->landing_key, sizeof e->landing_key, blob, n - CRYPTO_SHA256_LEN, mac);
    if (!crypto_equal(mac, blob + n - CRYPTO_SHA256_LEN, CRYPTO_SHA256_LEN))
        goto bad;
    j = json_loadb((const char *)blob, n - CRYPTO_SHA256_LEN, 0, NULL);
    if (!j || !emu_jstr(j, "s"))
        goto bad;
    if (json_integer_value(json_object_get(j, "e")) <= emu_now_ms(e) / 1000) {
        emu_fail(err, 400, "InvalidValue", "The marketplace token has expired; reopen the subscription from the portal");
        rc = SAASD_ETIMEOUT;
        goto done;
    }
    *sub_out = emu_sub(e, emu_jstr(j, "s"));
    if (!*sub_out) {
        emu_fail(err, 404, "EntityNotFound", "The subscription of this token does not exist");
        rc = SAASD_ENOTFOUND;
        goto done;
    }
    rc = 0;
    goto done;
bad:
    emu_fail(err, 400, "InvalidValue", "failed to decrypt token");
    err->target = "x-ms-marketplace-token";
done:
    json_decref(j);
    free(blob);
    return rc;
}

/* ---- §3.5 Activate ---- */

int emu_activate(struct emu *e, json_t *sub, const json_t *body, struct emu_error *err)
{
    const char *status = emu_jstr(sub, "saasSubscriptionStatus");
    if (!strcmp(status, "Unsubscribed")) {
        emu_fail(err, 404, "EntityNotFound", "The subscription is Unsubscribed and cannot be activated");
        return SAASD_ENOTFOUND;
    }
    if (strcmp(status, "PendingFulfillmentStart")) {
        emu_fail(err, 400, "BadRequest", "The subscription is already activated (status %s)", status);
        return SAASD_ECONFLICT;
    }
    const char *plan = emu_jstr(body, "planId");
    if (!plan || !*plan) {
        emu_fail(err, 400, "BadArgument", "The planId field is required");
        err->detail_code = "RequiredField";
        err->target = "planId";
        return SAASD_EINVAL;
    }
    if (strcmp(plan, emu_jstr(sub, "_purchasedPlan"))) {
        emu_fail(err, 400, "BadRequest", "planId '%s' is not the purchased plan", plan);
        err->target = "planId";
        return SAASD_EINVAL;
    }
    json_int_t q = 0;
    int has = read_quantity(json_object_get(body, "quantity"), &q);
    json_t *purchased = json_object_get(sub, "_purchasedQuantity");
    if (has < 0 || (has > 0 && (!purchased || q != json_integer_value(purchased)))) {
        emu_fail(err, 400, "BadRequest", "quantity is not the purchased quantity");
        err->target = "quantity";
        return SAASD_EINVAL;
    }
    keep_previous_view(e, sub);
    json_object_set_new(sub, "saasSubscriptionStatus", json_string("Subscribed"));
    set_term_from(e, sub, emu_day_start(emu_now_ms(e)));
    touch(e, sub);
    log_info("emulator", "subscription activated", "subscription", emu_jstr(sub, "id"));
    return 0;
}

/* ---- operations ---- */

json_t *emu_op(struct emu *e, const char *op_id) { return op_id ? json_object_get(coll(e, "ops"), op_id) : NULL; }

/* Notes an operation under its subscription in the index (when the index is built). */
static void sub_ops_add(struct emu *e, const json_t *op)
{
    const char *sid = emu_jstr(op, "subscriptionId");
    if (!e->sub_ops || !sid)
        return;
    json_t *list = json_object_get(e->sub_ops, sid);
    if (!list && json_object_set_new(e->sub_ops, sid, list = json_array()) != 0)
        list = NULL;
    if (!list || json_array_append_new(list, json_string(emu_jstr(op, "id"))) != 0) {
        json_decref(e->sub_ops); /* incomplete: built again on next use */
        e->sub_ops = NULL;
    }
}

/* An index instead of a scan of every operation: checking whether a subscription is locked, or
 * listing its operations, read all of them, so each change of n subscriptions cost O(n). Built
 * from opOrder when first needed (a loaded or reset state has none), then kept by new_op;
 * operations are never removed but with the whole state. */
json_t *emu_sub_ops(struct emu *e, const char *sub_id)
{
    if (!e->sub_ops) {
        if (!(e->sub_ops = json_object()))
            return NULL;
        size_t i;
        json_t *id;
        json_array_foreach(coll(e, "opOrder"), i, id) {
            json_t *op = emu_op(e, json_string_value(id));
            if (op)
                sub_ops_add(e, op);
        }
    }
    return sub_id && e->sub_ops ? json_object_get(e->sub_ops, sub_id) : NULL;
}

static int ackable(struct emu *e, const char *action)
{
    return !strcmp(action, "ChangePlan") || !strcmp(action, "ChangeQuantity") ||
           (!strcmp(action, "Reinstate") && e->k.reinstate_ackable);
}

static json_t *new_op(struct emu *e, json_t *sub, const char *action, const char *source, const char *plan_id,
                      json_t *quantity)
{
    char id[37], act[37], ts[40];
    emu_uuid(id);
    emu_uuid(act);
    emu_iso(emu_now_ms(e), ts);
    json_t *op = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "id", id, "activityId", act,
                           "subscriptionId", emu_jstr(sub, "id"), "offerId", emu_jstr(sub, "offerId"), "publisherId",
                           emu_jstr(sub, "publisherId"), "planId", plan_id ? plan_id : emu_jstr(sub, "planId"),
                           "action", action, "timeStamp", ts, "status", "InProgress", "errorStatusCode", "",
                           "errorMessage", "", e->k.requested_spelling ? "operationRequestedSource" : "operationRequestSource",
                           source, "_ackable", ackable(e, action));
    if (quantity)
        json_object_set(op, "quantity", quantity);
    else if (json_object_get(sub, "quantity"))
        json_object_set(op, "quantity", json_object_get(sub, "quantity"));
    json_object_set_new(coll(e, "ops"), id, op);
    json_array_append_new(coll(e, "opOrder"), json_string(id));
    sub_ops_add(e, op);
    e->dirty = 1;
    return op;
}

static void op_finish(struct emu *e, json_t *op, const char *status, const char *err_code, const char *err_msg)
{
    json_object_set_new(op, "status", json_string(status));
    json_object_set_new(op, "_phase", json_string("done"));
    if (err_code)
        json_object_set_new(op, "errorStatusCode", json_string(err_code));
    if (err_msg)
        json_object_set_new(op, "errorMessage", json_string(err_msg));
    e->dirty = 1;
    emu_text_forget(e, EMU_TEXT_OP, op);
    /* Debug, not info: a line per operation was a write(2) and about 5 % of the emulator's CPU while a
     * daemon drains its queue (one per acknowledged event) (GET /_emulator/operations shows them). */
    log_debug("emulator", "operation final", "operation", emu_jstr(op, "id"), "action", emu_jstr(op, "action"),
              "status", status);
}

static int sub_locked(struct emu *e, const json_t *sub)
{
    size_t i;
    json_t *id;
    json_array_foreach(emu_sub_ops(e, emu_jstr(sub, "id")), i, id)
        if (!strcmp(emu_jstr(emu_op(e, json_string_value(id)), "status"), "InProgress"))
            return 1;
    return 0;
}

static int has_allowed(const json_t *sub, const char *what)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(sub, "allowedCustomerOperations"), i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), what))
            return 1;
    return 0;
}

/* §3.8 validation shared by publisher PATCH and customer-side changes. *action_out is
 * ChangePlan or ChangeQuantity; *plan_out / *qty_out the targets. */
static int validate_change(struct emu *e, json_t *sub, const json_t *body, struct emu_error *err,
                           const char **action_out, const char **plan_out, json_int_t *qty_out)
{
    json_t *pv = json_object_get(body, "planId"), *qv = json_object_get(body, "quantity");
    const char *plan_id = json_string_value(pv);
    json_int_t q = 0;
    int has_plan = plan_id && *plan_id, has_q = read_quantity(qv, &q);
    if (!json_is_object(body)) {
        emu_fail(err, 400, "BadArgument", "The body must be a JSON object with planId or quantity");
        return SAASD_EINVAL;
    }
    if (has_plan && has_q) {
        emu_fail(err, 400, "BadRequest", "planId and quantity cannot be changed in the same request");
        return SAASD_EINVAL;
    }
    if (!has_plan && has_q == 0) {
        emu_fail(err, 400, "BadArgument", "Either planId or quantity is required");
        err->detail_code = "RequiredField";
        return SAASD_EINVAL;
    }
    if (has_q < 0) {
        emu_fail(err, 400, "BadArgument", "quantity must be an integer");
        err->target = "quantity";
        return SAASD_EINVAL;
    }
    const char *status = emu_jstr(sub, "saasSubscriptionStatus");
    if (strcmp(status, "Subscribed")) {
        emu_fail(err, 400, "BadRequest", "The subscription must be Subscribed to change it (it is %s)", status);
        return SAASD_ECONFLICT;
    }
    if (!has_allowed(sub, "Update")) {
        emu_fail(err, 400, "BadRequest", "Update is not in allowedCustomerOperations of this subscription");
        return SAASD_ECONFLICT;
    }
    if (sub_locked(e, sub)) {
        emu_fail(err, 400, "Failed", "The subscription is locked by pending operations");
        return SAASD_ECONFLICT;
    }
    json_t *offer = emu_offer(e, emu_jstr(sub, "offerId"));
    if (has_plan) {
        json_t *plan = emu_plan(offer, plan_id);
        if (!plan || json_is_true(json_object_get(plan, "isStopSell"))) {
            emu_fail(err, 400, "BadRequest", "Plan '%s' is not available for this subscription", plan_id);
            err->target = "planId";
            return SAASD_EINVAL;
        }
        if (!strcmp(plan_id, emu_jstr(sub, "planId"))) {
            emu_fail(err, 400, "BadRequest", "The subscription already has plan '%s'", plan_id);
            err->target = "planId";
            return SAASD_EINVAL;
        }
        *action_out = "ChangePlan";
        *plan_out = plan_id;
        return 0;
    }
    json_t *plan = emu_plan(offer, emu_jstr(sub, "planId"));
    if (!plan_per_seat(plan)) {
        emu_fail(err, 400, "BadRequest", "The plan is not priced per seat; quantity cannot change");
        err->target = "quantity";
        return SAASD_EINVAL;
    }
    json_int_t mn = json_integer_value(json_object_get(plan, "minQuantity"));
    json_int_t mx = json_integer_value(json_object_get(plan, "maxQuantity"));
    if (q == json_integer_value(json_object_get(sub, "quantity"))) {
        emu_fail(err, 400, "BadRequest", "The subscription already has quantity %lld", (long long)q);
        err->target = "quantity";
        return SAASD_EINVAL;
    }
    if (q < mn || q > mx) {
        emu_fail(err, 400, "BadRequest", "quantity %lld is outside the plan's limits %lld..%lld", (long long)q,
                 (long long)mn, (long long)mx);
        err->target = "quantity";
        return SAASD_EINVAL;
    }
    *action_out = "ChangeQuantity";
    *plan_out = NULL;
    *qty_out = q;
    return 0;
}

int emu_publisher_update(struct emu *e, json_t *sub, const json_t *body, struct emu_error *err, json_t **op_out)
{
    const char *action = NULL, *plan = NULL;
    json_int_t q = 0;
    int rc = validate_change(e, sub, body, err, &action, &plan, &q);
    if (rc != 0)
        return rc;
    json_t *qj = !strcmp(action, "ChangeQuantity") ? json_integer(q) : NULL;
    json_t *op = new_op(e, sub, action, "Partner", plan, qj);
    json_decref(qj);
    json_object_set_new(op, "_phase", json_string("completing"));
    json_object_set_new(op, "_dueAt", json_integer(emu_now_ms(e) + e->k.op_delay_ms));
    emu_timer_armed(e, emu_now_ms(e) + e->k.op_delay_ms);
    *op_out = op;
    return 0;
}

int emu_publisher_delete(struct emu *e, json_t *sub, struct emu_error *err, json_t **op_out)
{
    const char *status = emu_jstr(sub, "saasSubscriptionStatus");
    if (!strcmp(status, "Unsubscribed")) {
        emu_fail(err, 400, "BadRequest", "The subscription is already Unsubscribed");
        return SAASD_ECONFLICT;
    }
    if (!has_allowed(sub, "Delete")) {
        emu_fail(err, 400, "BadRequest", "Delete is not in allowedCustomerOperations of this subscription");
        return SAASD_ECONFLICT;
    }
    if (sub_locked(e, sub)) {
        emu_fail(err, 400, "Failed", "The subscription is locked by pending operations");
        return SAASD_ECONFLICT;
    }
    json_t *op = new_op(e, sub, "Unsubscribe", "Partner", NULL, NULL);
    json_object_set_new(op, "_phase", json_string("completing"));
    json_object_set_new(op, "_dueAt", json_integer(emu_now_ms(e) + e->k.op_delay_ms));
    emu_timer_armed(e, emu_now_ms(e) + e->k.op_delay_ms);
    json_object_set_new(op, "_fromStatus", json_string(status));
    *op_out = op;
    return 0;
}

static void unsubscribe_now(struct emu *e, json_t *sub)
{
    keep_previous_view(e, sub);
    json_object_set_new(sub, "saasSubscriptionStatus", json_string("Unsubscribed"));
    json_object_del(sub, "quantity"); /* as Microsoft shows cancelled subscriptions: no seats */
    json_object_set_new(sub, "_unsubscribedAt", json_integer(emu_now_ms(e)));
    touch(e, sub);
}

/* Applies an accepted operation to its subscription and makes it final: Succeeded, or
 * Conflict when the target already is the current value, or Failed when the subscription
 * left the state the change needs. */
static void op_apply(struct emu *e, json_t *op)
{
    json_t *sub = emu_sub(e, emu_jstr(op, "subscriptionId"));
    const char *action = emu_jstr(op, "action"), *status = sub ? emu_jstr(sub, "saasSubscriptionStatus") : "";
    if (!sub) {
        op_finish(e, op, "Failed", "404", "subscription vanished");
        return;
    }
    keep_previous_view(e, sub);
    if (!strcmp(action, "ChangePlan")) {
        const char *target = emu_jstr(op, "planId");
        if (strcmp(status, "Subscribed")) {
            op_finish(e, op, "Failed", "400", "subscription is no longer Subscribed");
        } else if (!strcmp(target, emu_jstr(sub, "planId"))) {
            op_finish(e, op, "Conflict", NULL, "the plan already is the requested one");
        } else {
            json_t *plan = emu_plan(emu_offer(e, emu_jstr(sub, "offerId")), target);
            json_object_set_new(sub, "planId", json_string(target));
            if (!plan_per_seat(plan)) {
                json_object_del(sub, "quantity");
            } else if (!json_object_get(sub, "quantity")) {
                json_int_t mn = json_integer_value(json_object_get(plan, "minQuantity"));
                json_object_set_new(sub, "quantity", json_integer(mn > 0 ? mn : 1));
            }
            touch(e, sub);
            op_finish(e, op, "Succeeded", NULL, NULL);
        }
    } else if (!strcmp(action, "ChangeQuantity")) {
        json_t *q = json_object_get(op, "quantity");
        if (strcmp(status, "Subscribed")) {
            op_finish(e, op, "Failed", "400", "subscription is no longer Subscribed");
        } else if (json_equal(q, json_object_get(sub, "quantity"))) {
            op_finish(e, op, "Conflict", NULL, "the quantity already is the requested one");
        } else {
            json_object_set(sub, "quantity", q);
            touch(e, sub);
            op_finish(e, op, "Succeeded", NULL, NULL);
        }
    } else if (!strcmp(action, "Reinstate")) {
        if (strcmp(status, "Suspended")) {
            op_finish(e, op, "Failed", "400", "subscription is no longer Suspended");
        } else {
            json_object_set_new(sub, "saasSubscriptionStatus", json_string("Subscribed"));
            touch(e, sub);
            op_finish(e, op, "Succeeded", NULL, NULL);
        }
    } else if (!strcmp(action, "Unsubscribe")) {
        if (!strcmp(status, "Unsubscribed")) {
            op_finish(e, op, "Conflict", NULL, "the subscription already is Unsubscribed");
        } else {
            unsubscribe_now(e, sub);
            op_finish(e, op, "Succeeded", NULL, NULL);
        }
    } else {
        op_finish(e, op, "Succeeded", NULL, NULL);
    }
}

int emu_op_ack(struct emu *e, json_t *op, const char *status, struct emu_error *err)
{
    if (!status || (strcmp(status, "Success") && strcmp(status, "Failure"))) {
        emu_fail(err, 400, "InvalidValue", "status must be Success or Failure");
        err->target = "status";
        return SAASD_EINVAL;
    }
    if (!strcmp(emu_op_source(op), "Partner")) {
        /* What the emulator authors saw live for PATCHes of publisher-initiated operations (§4). */
        emu_fail(err, 500, "UnexpectedError", "An unexpected error occurred while updating the operation");
        return SAASD_EINTERNAL;
    }
    if (!json_is_true(json_object_get(op, "_ackable"))) {
        emu_fail(err, 400, "BadRequest", "%s operations are notifications only and cannot be patched",
                 emu_jstr(op, "action"));
        return SAASD_EINVAL;
    }
    if (strcmp(emu_jstr(op, "status"), "InProgress")) {
        emu_fail(err, 409, "Conflict", "The operation is already %s", emu_jstr(op, "status"));
        return SAASD_ECONFLICT;
    }
    if (!strcmp(status, "Success"))
        op_apply(e, op);
    else
        op_finish(e, op, "Failed", "", "rejected by the publisher (PATCH Failure)");
    return 0;
}

/* ---- customer-side actions (control API, §5.7) ---- */

int emu_customer_action(struct emu *e, json_t *sub, const char *action, const json_t *body, struct emu_error *err,
                        json_t **op_out)
{
    char status[32]; /* a copy: the subscription's own string is replaced below */
    snprintf(status, sizeof status, "%s", emu_jstr(sub, "saasSubscriptionStatus"));
    json_t *op = NULL;
    if (!strcmp(action, "ChangePlan") || !strcmp(action, "ChangeQuantity")) {
        const char *act = NULL, *plan = NULL;
        json_int_t q = 0;
        json_t *only = json_object();
        if (!strcmp(action, "ChangePlan"))
            json_object_set(only, "planId", json_object_get(body, "planId"));
        else
            json_object_set(only, "quantity", json_object_get(body, "quantity"));
        int rc = validate_change(e, sub, only, err, &act, &plan, &q);
        json_decref(only);
        if (rc != 0)
            return rc;
        json_t *qj = !strcmp(act, "ChangeQuantity") ? json_integer(q) : NULL;
        op = new_op(e, sub, act, "Azure", plan, qj);
        json_decref(qj);
        json_object_set_new(op, "_phase", json_string("await_delivery"));
    } else if (!strcmp(action, "Reinstate")) {
        if (strcmp(status, "Suspended")) {
            emu_fail(err, 400, "BadRequest", "Reinstate needs a Suspended subscription (it is %s)", status);
            return SAASD_ECONFLICT;
        }
        op = new_op(e, sub, "Reinstate", "Azure", NULL, NULL);
        if (e->k.reinstate_ackable) {
            json_object_set_new(op, "_phase", json_string("await_delivery"));
        } else { /* the webhook page: applied first, announced Succeeded, not ACK-able */
            keep_previous_view(e, sub);
            json_object_set_new(sub, "saasSubscriptionStatus", json_string("Subscribed"));
            touch(e, sub);
            op_finish(e, op, "Succeeded", NULL, NULL);
        }
    } else if (!strcmp(action, "Suspend")) {
        if (strcmp(status, "Subscribed")) {
            emu_fail(err, 400, "BadRequest", "Suspend needs a Subscribed subscription (it is %s)", status);
            return SAASD_ECONFLICT;
        }
        keep_previous_view(e, sub);
        json_object_set_new(sub, "saasSubscriptionStatus", json_string("Suspended"));
        touch(e, sub);
        op = new_op(e, sub, "Suspend", "Azure", NULL, NULL);
        op_finish(e, op, "Succeeded", NULL, NULL);
    } else if (!strcmp(action, "Renew")) {
        if (strcmp(status, "Subscribed")) {
            emu_fail(err, 400, "BadRequest", "Renew needs a Subscribed subscription (it is %s)", status);
            return SAASD_ECONFLICT;
        }
        if (!json_is_true(json_object_get(sub, "autoRenew"))) {
            /* §6: the term ends with autoRenew off: Unsubscribed, Unsubscribe webhook. */
            return emu_customer_action(e, sub, "Unsubscribe", body, err, op_out);
        }
        int64_t end;
        if (emu_parse_time(emu_jstr(json_object_get(sub, "term"), "endDate"), &end) != 0)
            end = emu_day_start(emu_now_ms(e)) - 86400000;
        keep_previous_view(e, sub);
        set_term_from(e, sub, end + 86400000);
        touch(e, sub);
        op = new_op(e, sub, "Renew", "Azure", NULL, NULL);
        op_finish(e, op, "Succeeded", NULL, NULL);
    } else if (!strcmp(action, "Unsubscribe")) {
        if (!strcmp(status, "Unsubscribed")) {
            emu_fail(err, 400, "BadRequest", "The subscription is already Unsubscribed");
            return SAASD_ECONFLICT;
        }
        unsubscribe_now(e, sub);
        op = new_op(e, sub, "Unsubscribe", "Azure", NULL, NULL);
        op_finish(e, op, "Succeeded", NULL, NULL);
        if (!strcmp(status, "PendingFulfillmentStart")) { /* §5.1: no webhooks before activation */
            *op_out = op;
            return 0;
        }
    } else {
        emu_fail(err, 400, "BadArgument", "unknown customer action '%s'", action);
        return SAASD_EINVAL;
    }
    emu_webhook_enqueue(e, op);
    *op_out = op;
    return 0;
}

/* ---- timers ---- */

void emu_timer_armed(struct emu *e, int64_t at)
{
    if (at < e->tick_at)
        e->tick_at = at;
    e->wake_needed = 1;
}

void emu_timers_rescan(struct emu *e)
{
    e->tick_at = 0;
    e->wake_needed = 1;
}

/* Runs the operations' timers that are due. Only when one may be (tick_at): a scan reads every
 * operation, and the ticker holds the state lock meanwhile. */
long emu_state_tick(struct emu *e)
{
    int64_t now = emu_now_ms(e), next = now + EMU_IDLE_WAIT_MS, earliest = INT64_MAX;
    const char *key;
    json_t *op;
    if (now < e->tick_at)
        return (long)(e->tick_at - now < EMU_IDLE_WAIT_MS ? e->tick_at - now : EMU_IDLE_WAIT_MS);
    e->tick_at = INT64_MAX; /* timers armed during the scan (an ACK window it starts) lower it */
    json_object_foreach(coll(e, "ops"), key, op) {
        if (strcmp(emu_jstr(op, "status"), "InProgress"))
            continue;
        const char *phase = emu_jstr(op, "_phase");
        json_t *due = json_object_get(op, "_dueAt");
        if (!phase || !due)
            continue;
        int64_t at = json_integer_value(due);
        if (at > now) {
            if (at < next)
                next = at;
            if (at < earliest)
                earliest = at;
            continue;
        }
        if (!strcmp(phase, "await_ack")) {
            log_info("emulator", "ACK window over: auto-accepting", "operation", emu_jstr(op, "id"));
            op_apply(e, op);
        } else if (!strcmp(phase, "completing")) {
            op_apply(e, op);
            /* §5.1: publisher changes are announced too (source Partner), except before activation. */
            const char *from = emu_jstr(op, "_fromStatus");
            if ((!from || strcmp(from, "PendingFulfillmentStart")) && e->k.partner_webhooks)
                emu_webhook_enqueue(e, op);
        }
    }
    if (earliest < e->tick_at)
        e->tick_at = earliest; /* timers armed from here on lower it (emu_timer_armed) */
    if (e->tick_at < next) /* the thread sleeps this long: no one else wakes it for its own timers */
        next = e->tick_at > now ? e->tick_at : now + 1;
    return (long)(next - now);
}

/* ---- webhook outcomes ---- */

void emu_delivery_done(struct emu *e, json_t *d, long http, const char *error, long duration_ms)
{
    char ts[40];
    int64_t now = emu_now_ms(e);
    emu_iso(now, ts);
    json_t *attempt = json_pack("{s:s,s:i,s:I}", "at", ts, "httpStatus", (int)http, "durationMs",
                                (json_int_t)duration_ms);
    if (error)
        json_object_set_new(attempt, "error", json_string(error));
    json_t *attempts = json_object_get(d, "attempts");
    json_array_append_new(attempts, attempt);
    json_t *op = emu_op(e, emu_jstr(d, "operationId"));
    int waiting = op && json_is_true(json_object_get(op, "_ackable")) &&
                  !strcmp(emu_jstr(op, "status"), "InProgress");
    e->dirty = 1;
    if (http >= 200 && http < 300) {
        json_object_set_new(d, "status", json_string("delivered"));
        if (waiting && !strcmp(emu_jstr(op, "_phase"), "await_delivery")) {
            json_object_set_new(op, "_phase", json_string("await_ack"));
            json_object_set_new(op, "_dueAt", json_integer(now + e->k.ack_window_ms));
            emu_timer_armed(e, now + e->k.ack_window_ms);
        }
    } else if (http >= 400 && http < 500) {
        json_object_set_new(d, "status", json_string("rejected"));
        if (waiting) {
            char code[8];
            snprintf(code, sizeof code, "%ld", http);
            op_finish(e, op, "Failed", code, "rejected by the publisher's webhook");
        }
    } else if ((int)json_array_size(attempts) < e->k.webhook_max_attempts) {
        long delay = e->k.webhook_backoff_ms;
        for (size_t i = 1; i < json_array_size(attempts) && delay < 60000; i++)
            delay *= 2;
        if (delay > 60000)
            delay = 60000;
        json_object_set_new(d, "_nextAt", json_integer(now + delay));
    } else {
        json_object_set_new(d, "status", json_string("failed"));
        if (waiting)
            op_finish(e, op, "Failed", "", "the webhook was never accepted");
    }
}
