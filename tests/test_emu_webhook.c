/* Emulator, outbound webhooks (§5): payloads, the RS256 bearer checked against the served JWKS,
 * the ACK window, 4xx rejection, 5xx/no-answer retries, publisher-initiated notifications. A
 * small httpd receiver on 127.0.0.1 plays the publisher. */
#include "emu_harness.h"
#include "core/crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

static void use_receiver(struct emu_options *o)
{
    o->webhook_url = RX.url;
    o->webhook_max_attempts = 3;
}

static json_t *b64json(const char *s, size_t n)
{
    uint8_t *raw = NULL;
    size_t len = 0;
    if (crypto_base64url_decode(s, n, &raw, &len) != 0)
        return NULL;
    json_t *j = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    return j;
}

static BIGNUM *b64bn(const char *s)
{
    uint8_t *raw = NULL;
    size_t len = 0;
    if (!s || crypto_base64url_decode(s, strlen(s), &raw, &len) != 0)
        return NULL;
    BIGNUM *bn = BN_bin2bn(raw, (int)len, NULL);
    free(raw);
    return bn;
}

/* Verifies an RS256 JWT with the JWK (n, e) the way an independent validator would. */
static int verify_with_jwk(const char *jwt, const json_t *jwk)
{
    BIGNUM *n = b64bn(jstr(jwk, "n")), *e = b64bn(jstr(jwk, "e"));
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *sig = NULL;
    size_t siglen = 0;
    int ok = 0;
    const char *last = strrchr(jwt, '.');
    if (n && e && bld && pctx && md && last && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) && (params = OSSL_PARAM_BLD_to_param(bld)) &&
        EVP_PKEY_fromdata_init(pctx) == 1 && EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1 &&
        crypto_base64url_decode(last + 1, strlen(last + 1), &sig, &siglen) == 0 &&
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
        EVP_DigestVerify(md, sig, siglen, (const unsigned char *)jwt, (size_t)(last - jwt)) == 1)
        ok = 1;
    free(sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return ok;
}

static json_t *jwks_key(const char *kid)
{
    char path[256];
    snprintf(path, sizeof path, "/%s/discovery/v2.0/keys", TENANT);
    struct reply r = call("GET", url_of(path), NULL, NULL);
    json_t *found = NULL;
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(r.json, "keys"), i, k)
        if (kid && jstr(k, "kid") && !strcmp(jstr(k, "kid"), kid))
            found = json_incref(k);
    reply_free(&r);
    return found;
}

static json_t *delivery_of(const char *op)
{
    char path[256];
    snprintf(path, sizeof path, "/_emulator/webhooks?operationId=%s", op);
    struct reply r = ctl("GET", path, NULL);
    json_t *d = json_incref(json_array_get(json_object_get(r.json, "deliveries"), 0));
    reply_free(&r);
    return d;
}

static void bearer_and_payload(void)
{
    char sid[64], op[64];
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    rx_reset(200);
    CHECK(customer(sid, "suspend", NULL, op) == 202, "§5.7 suspend of a Subscribed subscription is accepted");
    CHECK(rx_wait(1, 3000) == 1, "§5.1 the Suspend webhook reaches the configured URL");
    struct hook *h = &RX.got[0];
    CHECK(h->json && !strcmp(h->path, "/webhook"), "§5.1 the webhook is a POST of a JSON body to the configured path");

    const char *jwt = !strncmp(h->auth, "Bearer ", 7) ? h->auth + 7 : "";
    const char *dot = strchr(jwt, '.');
    json_t *hdr = dot ? b64json(jwt, (size_t)(dot - jwt)) : NULL;
    const char *dot2 = dot ? strchr(dot + 1, '.') : NULL;
    json_t *claims = dot2 ? b64json(dot + 1, (size_t)(dot2 - dot - 1)) : NULL;
    CHECK(hdr && !strcmp(jstr(hdr, "alg"), "RS256") && jstr(hdr, "kid") && jstr(hdr, "x5t"),
          "§5.6 the webhook bearer is a JWS with alg RS256, kid and x5t");
    json_t *jwk = jwks_key(jstr(hdr, "kid"));
    CHECK(jwk != NULL, "§5.6 the bearer's kid is in the tenant JWKS");
    CHECK(jwk && verify_with_jwk(jwt, jwk), "§5.6 the bearer's signature verifies with the JWKS key (n, e)");
    CHECK(jwk && json_is_array(json_object_get(jwk, "x5c")) && !strcmp(jstr(jwk, "kty"), "RSA"),
          "§5.6 the JWK is RSA and carries an x5c certificate");
    json_decref(jwk);
    char iss[256];
    snprintf(iss, sizeof iss, "https://login.microsoftonline.com/%s/v2.0", TENANT);
    time_t now = time(NULL);
    CHECK(claims && !strcmp(jstr(claims, "aud"), CLIENT) && !strcmp(jstr(claims, "tid"), TENANT) &&
              !strcmp(jstr(claims, "azp"), MP_APP) && !strcmp(jstr(claims, "iss"), iss) &&
              !strcmp(jstr(claims, "ver"), "2.0"),
          "§5.6 claims: aud = publisher app, tid, azp = marketplace app, v2 issuer");
    CHECK(claims && json_integer_value(json_object_get(claims, "exp")) > now &&
              json_integer_value(json_object_get(claims, "nbf")) <= now + 1 && jstr(claims, "oid") && jstr(claims, "sub"),
          "§5.6 claims: exp in the future, nbf not after now, oid/sub present");
    json_decref(hdr);
    json_decref(claims);

    char path[256];
    snprintf(path, sizeof path, "/%s/v2.0/.well-known/openid-configuration", TENANT);
    struct reply r = call("GET", url_of(path), NULL, NULL);
    CHECK(r.status == 200 && !strcmp(jstr(r.json, "issuer"), iss) && jstr(r.json, "jwks_uri") &&
              !strncmp(jstr(r.json, "jwks_uri"), BASE, strlen(BASE)) && strstr(jstr(r.json, "jwks_uri"), "/discovery/v2.0/keys"),
          "§5.6 OpenID metadata names the same issuer and the emulator's jwks_uri");
    reply_free(&r);

    json_t *p = h->json;
    CHECK(!strcmp(jstr(p, "id"), op) && !strcmp(jstr(p, "action"), "Suspend") && !strcmp(jstr(p, "status"), "Succeeded") &&
              !strcmp(jstr(p, "operationRequestSource"), "Azure") && !strcmp(jstr(p, "subscriptionId"), sid) &&
              jstr(p, "publisherId") && jstr(p, "offerId") && jstr(p, "planId") && jstr(p, "timeStamp") &&
              jstr(p, "activityId"),
          "§5.4 the payload carries id, activityId, subscriptionId, publisherId, offerId, planId, timeStamp, action, status, source");
    CHECK(json_is_null(json_object_get(p, "purchaseToken")) &&
              !strcmp(jps(p, "subscription.saasSubscriptionStatus"), "Suspended"),
          "§5.7 notify-only: the state is applied first (subscription snapshot Suspended), purchaseToken null");
    json_t *d = delivery_of(op);
    CHECK(d && !strcmp(jstr(d, "status"), "delivered") && jpath(d, "attempts.0.httpStatus") &&
              json_integer_value(jpath(d, "attempts.0.httpStatus")) == 200 && json_is_object(json_object_get(d, "payload")),
          "control API lists the delivery with its HTTP result and payload");
    json_decref(d);

    rx_reset(200);
    struct reply k = ctl("PUT", "/_emulator/config", "{\"reinstateAckable\":true}");
    reply_free(&k);
    CHECK(customer(sid, "reinstate", NULL, op) == 202 && rx_wait(1, 3000) == 1, "§5.3 Reinstate is announced");
    CHECK(!strcmp(jstr(RX.got[0].json, "status"), "InProgress") && !strcmp(jps(RX.got[0].json, "subscription.saasSubscriptionStatus"), "Suspended"),
          "§5.3 Reinstate is ACK-able: InProgress while still Suspended");
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/operations/%s", sid, op);
    r = mp("PATCH", path, "{\"status\":\"Failure\"}");
    reply_free(&r);
    CHECK(!strcmp(sub_status(sid), "Suspended") && !strcmp(wait_op(sid, op, 0), "Failed"),
          "§6 a rejected Reinstate leaves the subscription Suspended");
    k = ctl("PUT", "/_emulator/config", "{\"reinstateAckable\":false}");
    reply_free(&k);
    rx_reset(200);
    CHECK(customer(sid, "reinstate", NULL, op) == 202 && rx_wait(1, 3000) == 1 &&
              !strcmp(jstr(RX.got[0].json, "status"), "Succeeded") &&
              !strcmp(jps(RX.got[0].json, "subscription.saasSubscriptionStatus"), "Subscribed"),
          "§5.3 by default (webhook page) Reinstate is applied first and announced Succeeded");
    customer(sid, "suspend", NULL, op);
    rx_wait(2, 3000);

    rx_reset(200);
    customer(sid, "unsubscribe", NULL, op);
    CHECK(rx_wait(1, 3000) == 1 && !strcmp(jstr(RX.got[0].json, "action"), "Unsubscribe") &&
              !strcmp(jps(RX.got[0].json, "subscription.saasSubscriptionStatus"), "Unsubscribed"),
          "§5.3 Unsubscribe (from Suspended) is announced after the subscription is Unsubscribed");
    CHECK(customer(sid, "suspend", NULL, NULL) == 400 && customer(sid, "reinstate", NULL, NULL) == 400 &&
              customer(sid, "renew", NULL, NULL) == 400,
          "§6 Suspend/Reinstate/Renew of an Unsubscribed subscription are refused");
}

static void ack_window(void)
{
    char sid[64], op[64], path[256];
    struct reply c = ctl("PUT", "/_emulator/config", "{\"ackWindowMs\":400}");
    reply_free(&c);
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    rx_reset(200);
    customer(sid, "change-plan", "{\"planId\":\"gold\"}", op);
    CHECK(rx_wait(1, 3000) == 1, "§5.3 a customer ChangePlan is announced");
    double delivered = RX.got[0].at;
    json_t *p = RX.got[0].json;
    CHECK(!strcmp(jstr(p, "action"), "ChangePlan") && !strcmp(jstr(p, "status"), "InProgress") &&
              !strcmp(jstr(p, "planId"), "gold") && !strcmp(jps(p, "subscription.planId"), "basic"),
          "§5.4 ChangePlan payload: InProgress, target planId, subscription still on the old plan");
    const char *st = wait_op(sid, op, 3000);
    double took = now_s() - delivered;
    json_t *s = get_sub(sid);
    CHECK(!strcmp(st, "Succeeded") && !strcmp(jstr(s, "planId"), "gold") && took >= 0.35,
          "§5.3 with no PATCH the change is accepted once the ACK window after delivery is over");
    json_decref(s);

    rx_reset(200);
    customer(sid, "change-plan", "{\"planId\":\"basic\"}", op);
    rx_wait(1, 3000);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/operations/%s", sid, op);
    struct reply r = mp("PATCH", path, "{\"status\":\"Failure\"}");
    CHECK(r.status == 200, "§5.3 PATCH Failure within the window answers 200");
    reply_free(&r);
    usleep(600000);
    s = get_sub(sid);
    CHECK(!strcmp(wait_op(sid, op, 0), "Failed") && !strcmp(jstr(s, "planId"), "gold"),
          "§5.3 a PATCH Failure within the window rejects the change for good");
    json_decref(s);

    rx_reset(400);
    customer(sid, "change-plan", "{\"planId\":\"annual\"}", op);
    rx_wait(1, 3000);
    st = wait_op(sid, op, 2000);
    json_t *o = get_op(sid, op);
    s = get_sub(sid);
    CHECK(!strcmp(st, "Failed") && !strcmp(jstr(s, "planId"), "gold") && !strcmp(jstr(o, "errorStatusCode"), "400"),
          "§5.3 a 4xx answer to the webhook rejects the change (operation Failed, errorStatusCode 400)");
    json_decref(o);
    json_decref(s);
    json_t *d = delivery_of(op);
    CHECK(d && !strcmp(jstr(d, "status"), "rejected") && json_array_size(json_object_get(d, "attempts")) == 1,
          "§5.2 a 4xx is a rejection, not retried");
    json_decref(d);
}

static void retries(void)
{
    char sid[64], op[64];
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", sid);
    struct reply k = ctl("PUT", "/_emulator/config", "{\"webhookBackoffMs\":150}");
    reply_free(&k);
    rx_reset(200);
    RX.script[0] = 500;
    RX.script[1] = 503;
    RX.nscript = 2;
    customer(sid, "change-quantity", "{\"quantity\":4}", op);
    CHECK(rx_wait(3, 5000) == 3, "§5.2 a 5xx answer is retried until a 2xx");
    CHECK(!strcmp(jstr(RX.got[0].json, "id"), op) && !strcmp(jstr(RX.got[2].json, "id"), op),
          "§5.2 retries repeat the same operation id (dedupe on id)");
    double gap1 = RX.got[1].at - RX.got[0].at, gap2 = RX.got[2].at - RX.got[1].at;
    printf("# retry gaps %.3f s, %.3f s\n", gap1, gap2);
    CHECK(gap1 >= 0.14 && gap2 >= 0.29, "§5.2 retries back off exponentially (150 ms, then 300 ms)");
    k = ctl("PUT", "/_emulator/config", "{\"webhookBackoffMs\":50}");
    reply_free(&k);
    CHECK(!strcmp(wait_op(sid, op, 3000), "Succeeded") && sub_quantity(sid) == 4,
          "§5.3 after the late 2xx the ACK window runs and the quantity change is applied");
    json_t *d = delivery_of(op);
    CHECK(d && json_array_size(json_object_get(d, "attempts")) == 3 &&
              json_integer_value(jpath(d, "attempts.0.httpStatus")) == 500 &&
              json_integer_value(jpath(d, "attempts.2.httpStatus")) == 200,
          "control API records every attempt with its HTTP status");
    json_decref(d);

    rx_reset(200);
    rx_set_delay(800); /* longer than the 500 ms webhook timeout: no answer at all */
    customer(sid, "change-quantity", "{\"quantity\":5}", op);
    const char *st = wait_op(sid, op, 6000);
    rx_set_delay(0);
    d = delivery_of(op);
    CHECK(!strcmp(st, "Failed") && sub_quantity(sid) == 4,
          "§5.2 an ACK-able webhook that is never answered fails the operation after the last attempt");
    CHECK(d && !strcmp(jstr(d, "status"), "failed") && json_array_size(json_object_get(d, "attempts")) == 3 &&
              json_integer_value(jpath(d, "attempts.0.httpStatus")) == 0,
          "§5.2 unanswered attempts (timeouts) are retried up to the configured count");
    json_decref(d);
}

static void publisher_side(void)
{
    char sid[64], op[64], path[256];
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    rx_reset(200);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    struct reply r = mp("PATCH", path, "{\"planId\":\"gold\"}");
    const char *loc = reply_header(&r, "Operation-Location");
    snprintf(op, sizeof op, "%.36s", loc && strstr(loc, "/operations/") ? strstr(loc, "/operations/") + 12 : "none");
    reply_free(&r);
    CHECK(rx_wait(1, 3000) == 1 && !strcmp(jstr(RX.got[0].json, "id"), op) &&
              !strcmp(jstr(RX.got[0].json, "operationRequestSource"), "Partner") &&
              !strcmp(jstr(RX.got[0].json, "action"), "ChangePlan"),
          "§5.1 a publisher PATCH is announced too, with source Partner and the Operation-Location id");
    rx_reset(200);
    r = mp("DELETE", path, NULL);
    reply_free(&r);
    CHECK(rx_wait(1, 3000) == 1 && !strcmp(jstr(RX.got[0].json, "action"), "Unsubscribe") &&
              !strcmp(jstr(RX.got[0].json, "operationRequestSource"), "Partner"),
          "§5.1 a publisher DELETE is followed by an Unsubscribe webhook (source Partner)");

    char pending[64];
    snprintf(pending, sizeof pending, "%s", buy("{\"planId\":\"basic\"}", NULL, 0));
    rx_reset(200);
    customer(pending, "unsubscribe", NULL, NULL);
    usleep(300000);
    for (int i = 0; i < rx_count(); i++)
        printf("# unexpected webhook %s for %s (pending %s)\n", jstr(RX.got[i].json, "action"), jstr(RX.got[i].json, "subscriptionId"), pending);
    CHECK(rx_count() == 0 && !strcmp(sub_status(pending), "Unsubscribed"),
          "§5.1 no webhook is sent while PendingFulfillmentStart (cancel before activation)");
    CHECK(customer(pending, "change-plan", "{\"planId\":\"gold\"}", NULL) == 400,
          "§6 a customer change of an Unsubscribed subscription is refused");

    char renew[64];
    subscribed("{\"planId\":\"basic\"}", "basic", renew);
    json_t *before = get_sub(renew);
    rx_reset(200);
    customer(renew, "renew", NULL, op);
    json_t *after = get_sub(renew);
    CHECK(rx_wait(1, 3000) == 1 && !strcmp(jstr(RX.got[0].json, "action"), "Renew") &&
              !strcmp(jstr(RX.got[0].json, "status"), "Succeeded") &&
              strcmp(jps(before, "term.startDate"), jps(after, "term.startDate")) &&
              !strcmp(jps(after, "saasSubscriptionStatus"), "Subscribed"),
          "§5.3 Renew moves the term dates and is announced as Succeeded");
    json_decref(before);
    json_decref(after);

    char noauto[64];
    subscribed("{\"planId\":\"basic\",\"autoRenew\":false}", "basic", noauto);
    rx_reset(200);
    customer(noauto, "renew", NULL, NULL);
    CHECK(rx_wait(1, 3000) == 1 && !strcmp(jstr(RX.got[0].json, "action"), "Unsubscribe") &&
              !strcmp(sub_status(noauto), "Unsubscribed"),
          "§6 at term end with autoRenew off the subscription is Unsubscribed (Unsubscribe webhook)");

    rx_reset(200);
    struct reply p = ctl("POST", "/_emulator/purchases", "{\"planId\":\"basic\",\"autoActivate\":true}");
    char auto_sid[64];
    snprintf(auto_sid, sizeof auto_sid, "%s", jstr(p.json, "subscriptionId") ? jstr(p.json, "subscriptionId") : "");
    reply_free(&p);
    CHECK(rx_wait(1, 3000) == 1 && !strcmp(jstr(RX.got[0].json, "action"), "Subscribe") &&
              !strcmp(sub_status(auto_sid), "Subscribed"),
          "§6 an auto-activation purchase is Subscribed at once and announced with Subscribe");

    /* §5.7 trigger routes in Microsoft's emulator shape, and a per-offer webhook URL. */
    char offer[512];
    snprintf(offer, sizeof offer,
             "{\"offerId\":\"hooked\",\"webhookUrl\":\"%.*s/offer-hook\",\"plans\":[{\"planId\":\"a\"},{\"planId\":\"b\"}]}",
             (int)(strlen(RX.url) - strlen("/webhook")), RX.url);
    struct reply o = ctl("POST", "/_emulator/offers", offer);
    CHECK(o.status == 201, "control API creates an offer with its own webhook URL");
    reply_free(&o);
    char hs[64];
    subscribed("{\"offerId\":\"hooked\",\"planId\":\"a\"}", "a", hs);
    rx_reset(200);
    snprintf(path, sizeof path, "/api/webhook/subscription/%s", hs);
    r = ctl("PATCH", path, "{\"planId\":\"b\"}");
    CHECK(r.status == 202 && reply_header(&r, "Operation-Location"),
          "§5.7 PATCH /api/webhook/subscription/{id} triggers a ChangePlan (202 + Operation-Location)");
    reply_free(&r);
    CHECK(rx_wait(1, 3000) == 1 && !strcmp(RX.got[0].path, "/offer-hook"),
          "a per-offer webhook URL overrides the global one");
    rx_reset(200);
    snprintf(path, sizeof path, "/api/webhook/subscription/%s/suspend", hs);
    r = ctl("POST", path, NULL);
    CHECK(r.status == 202 && rx_wait(1, 3000) == 1 && !strcmp(jstr(RX.got[0].json, "action"), "Suspend"),
          "§5.7 POST /api/webhook/subscription/{id}/suspend triggers a Suspend webhook");
    reply_free(&r);
}

static void key_rotation(void)
{
    char old_token[8192];
    snprintf(old_token, sizeof old_token, "%s", TOKEN);
    struct reply h = ctl("GET", "/_emulator/health", NULL);
    char old_kid[64];
    snprintf(old_kid, sizeof old_kid, "%s", jstr(h.json, "kid") ? jstr(h.json, "kid") : "");
    reply_free(&h);
    struct reply r = ctl("POST", "/_emulator/keys/rotate", NULL);
    char new_kid[64];
    snprintf(new_kid, sizeof new_kid, "%s", jstr(r.json, "kid") ? jstr(r.json, "kid") : "");
    reply_free(&r);
    json_t *a = jwks_key(old_kid), *b = jwks_key(new_kid);
    CHECK(*new_kid && strcmp(old_kid, new_kid) && a && b, "key rotation: a new kid, and the JWKS publishes old and new keys");
    json_decref(a);
    json_decref(b);
    char sid[64];
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    CHECK(!strcmp(sub_status(sid), "Subscribed"), "key rotation: tokens signed with the previous key stay valid");
    rx_reset(200);
    customer(sid, "suspend", NULL, NULL);
    rx_wait(1, 3000);
    const char *jwt = RX.n ? RX.got[0].auth + 7 : "";
    json_t *hdr = strchr(jwt, '.') ? b64json(jwt, (size_t)(strchr(jwt, '.') - jwt)) : NULL;
    CHECK(hdr && !strcmp(jstr(hdr, "kid"), new_kid), "key rotation: webhooks are signed with the new key");
    json_decref(hdr);
    CHECK(fetch_token(2, TOKEN, sizeof TOKEN) == 0, "key rotation: new tokens are issued");
    (void)old_token;
}

/* §5.6: the bearer is for the app the offer is registered with (its aud, tid and issuer). */
static void other_app_bearer(void)
{
    const char *t2 = "66666666-6666-4666-8666-666666666666", *c2 = "77777777-7777-4777-8777-777777777777";
    char body[512];
    snprintf(body, sizeof body, "{\"tenantId\":\"%s\",\"clientId\":\"%s\",\"clientSecret\":\"s2\"}", t2, c2);
    struct reply r = ctl("POST", "/_emulator/apps", body);
    reply_free(&r);
    snprintf(body, sizeof body, "{\"offerId\":\"o2\",\"clientId\":\"%s\",\"plans\":[{\"planId\":\"p\"}]}", c2);
    r = ctl("POST", "/_emulator/offers", body);
    reply_free(&r);
    char main_token[8192], sid[64];
    snprintf(main_token, sizeof main_token, "%s", TOKEN);
    fetch_app_token(t2, c2, "s2", TOKEN, sizeof TOKEN);
    subscribed("{\"offerId\":\"o2\",\"planId\":\"p\"}", "p", sid);
    rx_reset(200);
    customer(sid, "suspend", NULL, NULL);
    rx_wait(1, 3000);
    const char *jwt = RX.n ? RX.got[0].auth + 7 : "";
    const char *a = strchr(jwt, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    json_t *claims = b ? b64json(a + 1, (size_t)(b - a - 1)) : NULL;
    char iss[256];
    snprintf(iss, sizeof iss, "https://login.microsoftonline.com/%s/v2.0", t2);
    CHECK(claims && !strcmp(jstr(claims, "aud"), c2) && !strcmp(jstr(claims, "tid"), t2) && !strcmp(jstr(claims, "iss"), iss),
          "§5.6 the webhook bearer is issued for the app the offer is registered with (aud, tid, iss)");
    json_decref(claims);
    snprintf(TOKEN, sizeof TOKEN, "%s", main_token);
}

int main(void)
{
    rx_start();
    emu_up(use_receiver);
    bearer_and_payload();
    ack_window();
    retries();
    publisher_side();
    key_rotation();
    other_app_bearer();
    emu_down();
    rx_reset(200);
    httpd_stop(RX.d);
    http_client_free(H);
    return CHECK_DONE();
}
