/* Entra ID as the marketplace integration sees it: the client-credentials token endpoint (v1
 * and v2; a client secret or a client assertion, see emu_assertion.c), OpenID metadata and
 * JWKS for the emulator's keys, the bearer check the marketplace applies to publisher calls,
 * and the token Microsoft puts on webhooks (§2, §5.6). */
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "emu/emu_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void emu_issuer_v2(const struct emu *e, const char *tid, char *out, size_t n)
{
    snprintf(out, n, "%s/%s/v2.0", e->issuer_base, tid);
}

/* v1 tokens come from sts.windows.net on the real service; a custom issuer base replaces it. */
void emu_issuer_v1(const struct emu *e, const char *tid, char *out, size_t n)
{
    if (!strcmp(e->issuer_base, EMU_DEFAULT_ISSUER))
        snprintf(out, n, "https://sts.windows.net/%s/", tid);
    else
        snprintf(out, n, "%s/%s/", e->issuer_base, tid);
}

/* A stable GUID-shaped id derived from a string (service principal object ids). */
static void derived_guid(const char *seed, char out[37])
{
    uint8_t h[CRYPTO_SHA256_LEN];
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_sha256(seed, strlen(seed), h);
    crypto_hex(h, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 13, hex + 17, hex + 20);
}

static char *random_b64url(size_t n)
{
    uint8_t buf[32];
    char *out = NULL;
    crypto_random(buf, n);
    crypto_base64url_encode(buf, n, &out);
    return out;
}

int emu_sign_claims(struct emu *e, json_t *claims, char **out)
{
    char *aio = random_b64url(24), *uti = random_b64url(16);
    json_object_set_new(claims, "aio", json_string(aio ? aio : "x"));
    json_object_set_new(claims, "uti", json_string(uti ? uti : "x"));
    json_object_set_new(claims, "rh", json_string("0.AAAA-emulator."));
    free(aio);
    free(uti);
    int rc = claims ? emu_jwt_sign(&e->keys[0], claims, out) : SAASD_ENOMEM;
    json_decref(claims);
    return rc;
}

int emu_mint_publisher_token(struct emu *e, int version, const char *tid, const char *client, char **out)
{
    char iss[512], oid[37], seed[300];
    int64_t now = emu_now_ms(e) / 1000;
    snprintf(seed, sizeof seed, "sp:%s:%s", tid, client);
    derived_guid(seed, oid);
    json_t *c;
    /* Entra shapes an access token by its resource, not by the endpoint: the marketplace API
     * accepts v1 tokens, so the v2 endpoint issues it a v1 token too (appid, sts.windows.net
     * issuer, ver 1.0), as live tokens for 20e940b3-… show. */
    (void)version;
    {
        emu_issuer_v1(e, tid, iss, sizeof iss);
        c = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "aud", EMU_MARKETPLACE_APP, "iss", iss,
                      "idp", iss, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                      (json_int_t)(now + e->k.token_lifetime_s), "appid", client, "appidacr", "1", "oid", oid,
                      "sub", oid, "tid", tid, "ver", "1.0", "idtyp", "app");
    }
    return emu_sign_claims(e, c, out);
}

/* §5.6: Microsoft gets a token for the publisher's own app: aud = publisher client id,
 * azp = the marketplace app, v2 issuer of the publisher tenant. */
int emu_mint_webhook_token(struct emu *e, const char *tid, const char *client, char **out)
{
    char iss[512], oid[37], seed[300];
    int64_t now = emu_now_ms(e) / 1000;
    snprintf(seed, sizeof seed, "sp:%s:%s", tid, EMU_MARKETPLACE_APP);
    derived_guid(seed, oid);
    emu_issuer_v2(e, tid, iss, sizeof iss);
    json_t *c = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "aud", client, "iss", iss, "iat",
                          (json_int_t)now, "nbf", (json_int_t)now, "exp", (json_int_t)(now + e->k.token_lifetime_s),
                          "azp", EMU_MARKETPLACE_APP, "azpacr", "2", "oid", oid, "sub", oid, "tid", tid,
                          "ver", "2.0");
    return emu_sign_claims(e, c, out);
}

void emu_bearers_clear(struct emu *e)
{
    for (size_t i = 0; i < sizeof e->bearers / sizeof e->bearers[0]; i++) {
        free(e->bearers[i].token);
        json_decref(e->bearers[i].claims);
        memset(&e->bearers[i], 0, sizeof e->bearers[i]);
    }
}

static int key_published(const struct emu *e, const char *kid)
{
    for (size_t i = 0; i < e->nkeys; i++)
        if (e->keys[i].pkey && !strcmp(e->keys[i].kid, kid))
            return 1;
    return 0;
}

/* The claims of a bearer whose signature holds (new reference): remembered ones while their
 * key is still published, else verified now and remembered. The other checks are the caller's,
 * on every call (expiry, audience...). */
static int bearer_claims(struct emu *e, const char *token, json_t **claims)
{
    const size_t n = sizeof e->bearers / sizeof e->bearers[0];
    for (size_t i = 0; i < n; i++) {
        struct emu_bearer_seen *b = &e->bearers[i];
        if (b->token && !strcmp(b->token, token) && key_published(e, b->kid)) {
            *claims = json_incref(b->claims);
            return 0;
        }
    }
    int rc = emu_jwt_verify(e->keys, e->nkeys, token, claims);
    struct emu_jws j = {0};
    if (rc == 0 && emu_jws_parse(token, &j) == 0) {
        struct emu_bearer_seen *b = &e->bearers[e->bearers_next++ % n];
        free(b->token);
        json_decref(b->claims);
        b->token = strdup(token);
        snprintf(b->kid, sizeof b->kid, "%s", emu_jstr(j.header, "kid"));
        b->claims = b->token ? json_incref(*claims) : NULL;
    }
    emu_jws_clear(&j);
    return rc;
}

int emu_check_bearer(struct emu *e, const struct httpd_request *r, struct emu_error *err, char *caller)
{
    const char *auth = httpd_header(r, "Authorization");
    json_t *claims = NULL;
    char v1[512], v2[512];
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
        emu_fail(err, 403, "Forbidden", "Authorization bearer token is missing");
        return SAASD_EAUTH;
    }
    if (bearer_claims(e, auth + 7, &claims) != 0) {
        emu_fail(err, 403, "Forbidden", "The access token is invalid (signature, algorithm or unknown kid)");
        return SAASD_EAUTH;
    }
    const char *iss = emu_jstr(claims, "iss"), *aud = emu_jstr(claims, "aud"), *tid = emu_jstr(claims, "tid");
    /* Like other implementations of the marketplace: the publisher is tid + appid. */
    const char *app = emu_jstr(claims, "appid");
    const char *app_tid = app ? emu_app_tenant(e, app, NULL) : NULL;
    emu_issuer_v1(e, tid ? tid : "", v1, sizeof v1);
    emu_issuer_v2(e, tid ? tid : "", v2, sizeof v2);
    int64_t now = emu_now_ms(e) / 1000;
    json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
    json_int_t nbf = json_integer_value(json_object_get(claims, "nbf"));
    int rc = SAASD_EAUTH;
    if (!aud || strcmp(aud, EMU_MARKETPLACE_APP))
        emu_fail(err, 403, "Forbidden", "The access token audience is not the marketplace API (%s)", EMU_MARKETPLACE_APP);
    else if (!tid || !iss || (strcmp(iss, v1) && strcmp(iss, v2)))
        emu_fail(err, 403, "Forbidden", "The access token issuer is not the publisher tenant's");
    else if (exp <= now)
        emu_fail(err, 403, "Forbidden", "The access token has expired");
    else if (nbf > now + 300)
        emu_fail(err, 403, "Forbidden", "The access token is not yet valid");
    else if (!app)
        emu_fail(err, 403, "Forbidden", "The access token has no appid (the marketplace identifies the publisher by tid + appid)");
    else if (!app_tid || strcmp(tid, app_tid))
        emu_fail(err, 403, "Forbidden", "The token's tenant and app are not registered for any offer");
    else {
        snprintf(caller, 64, "%s", app);
        rc = 0;
    }
    json_decref(claims);
    return rc;
}

/* §2.3: Entra's error envelope. */
static void entra_error(struct emu *e, struct httpd_response *res, int status, const char *error, long code,
                        const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void entra_error(struct emu *e, struct httpd_response *res, int status, const char *error, long code,
                        const char *fmt, ...)
{
    char msg[512], desc[1024], ts[40], trace[37], corr[37];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emu_uuid(trace);
    emu_uuid(corr);
    emu_iso(emu_now_ms(e), ts);
    ts[19] = 'Z';
    ts[20] = 0;
    ts[10] = ' ';
    snprintf(desc, sizeof desc, "AADSTS%ld: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", code, msg,
             trace, corr, ts);
    char uri[128];
    snprintf(uri, sizeof uri, "https://login.microsoftonline.com/error?code=%ld", code);
    emu_reply_json(res, status,
                   json_pack("{s:s,s:s,s:[I],s:s,s:s,s:s,s:s}", "error", error, "error_description", desc,
                             "error_codes", (json_int_t)code, "timestamp", ts, "trace_id", trace, "correlation_id", corr,
                             "error_uri", uri));
}

/* grant_type=authorization_code, once the client is authenticated (emu_signin.c). */
static void code_grant_reply(struct emu *e, struct httpd_response *res, const char *client, const char *body, size_t n)
{
    struct emu_refusal why;
    json_t *reply = NULL;
    if (emu_code_redeem(e, client, body, n, &why, &reply) != 0)
        entra_error(e, res, why.status, why.error, why.code, "%s", why.message);
    else
        emu_reply_json(res, 200, reply);
}

/* client_secret_basic: Authorization: Basic base64(client_id:client_secret). */
static void basic_credentials(const struct httpd_request *r, char **id, char **secret)
{
    const char *auth = httpd_header(r, "Authorization");
    uint8_t *raw = NULL;
    size_t n = 0;
    if (!auth || strncasecmp(auth, "Basic ", 6) || crypto_base64_decode(auth + 6, strlen(auth + 6), &raw, &n))
        return;
    char *colon = memchr(raw, ':', n);
    if (colon) {
        *colon = 0;
        if (!*id)
            *id = strdup((char *)raw);
        if (!*secret)
            *secret = strdup(colon + 1);
    }
    free(raw);
}

static void token_endpoint(struct emu *e, const struct httpd_request *r, struct httpd_response *res,
                           const char *tenant, int version)
{
    size_t n = 0;
    const char *body = httpd_body(r, &n);
    char *grant = emu_form_value(body, n, "grant_type"), *id = emu_form_value(body, n, "client_id");
    char *secret = emu_form_value(body, n, "client_secret");
    char *assertion = emu_form_value(body, n, "client_assertion");
    char *assertion_type = emu_form_value(body, n, "client_assertion_type");
    char *target = emu_form_value(body, n, version == 1 ? "resource" : "scope");
    char want_scope[128];
    const char *app_tid = NULL, *app_secret = NULL;
    struct emu_refusal why;
    snprintf(want_scope, sizeof want_scope, "%s/.default", EMU_MARKETPLACE_APP);
    basic_credentials(r, &id, &secret);
    int code_grant = version == 2 && grant && !strcmp(grant, "authorization_code");
    if (strcmp(httpd_method(r), "POST"))
        entra_error(e, res, 405, "invalid_request", 900561, "The endpoint only accepts POST requests.");
    else if (!(code_grant ? emu_authority_known(e, tenant) : emu_tenant_known(e, tenant)))
        entra_error(e, res, 400, "invalid_request", 90002, "Tenant '%s' not found.", tenant);
    else if (!grant)
        entra_error(e, res, 400, "invalid_request", 900144,
                    "The request body must contain the following parameter: 'grant_type'.");
    else if (strcmp(grant, "client_credentials") && !code_grant)
        entra_error(e, res, 400, "unsupported_grant_type", 70003,
                    "The app requested an unsupported grant type '%s'.", grant);
    else if (!id)
        entra_error(e, res, 400, "invalid_request", 900144,
                    "The request body must contain the following parameter: 'client_id'.");
    else if (!(app_tid = emu_app_tenant(e, id, &app_secret)) || (!code_grant && strcmp(app_tid, tenant)))
        entra_error(e, res, 400, "unauthorized_client", 700016,
                    "Application with identifier '%s' was not found in the directory.", id);
    else if (assertion && secret)
        entra_error(e, res, 401, "invalid_client", 50027,
                    "Invalid request: it carries both 'client_secret' and 'client_assertion'; send one credential.");
    else if (assertion && emu_check_client_assertion(e, r, tenant, version, id, assertion_type, assertion, &why) != 0)
        entra_error(e, res, why.status, why.error, why.code, "%s", why.message);
    else if (!assertion && !secret)
        entra_error(e, res, 401, "invalid_client", 7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    else if (!assertion && (!app_secret || strlen(secret) != strlen(app_secret) ||
                            !crypto_equal(secret, app_secret, strlen(secret))))
        entra_error(e, res, 401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                    "secret value, not the client secret ID, for a secret added to app '%s'.",
                    id);
    else if (code_grant)
        code_grant_reply(e, res, id, body, n);
    else if (!target)
        entra_error(e, res, 400, "invalid_request", 900144,
                    version == 1 ? "The request body must contain the following parameter: 'resource'."
                                 : "The request body must contain the following parameter: 'scope'.");
    else if (version == 2 && (strlen(target) < 9 || strcmp(target + strlen(target) - 9, "/.default")))
        entra_error(e, res, 400, "invalid_scope", 1002012,
                    "The provided value for scope %s is not valid. Client credential flows must have a scope value "
                    "with /.default suffixed to the resource identifier (application ID URI).",
                    target);
    else if (version == 1 ? strcmp(target, EMU_MARKETPLACE_APP) : strcmp(target, want_scope))
        entra_error(e, res, 400, "invalid_resource", 500011,
                    "The resource principal named %s was not found in the tenant. (The marketplace API is "
                    "20e940b3-4c77-4b0b-9a53-9e16a1b010a7.)",
                    target);
    else {
        char *tok = NULL;
        if (emu_mint_publisher_token(e, version, tenant, id, &tok) != 0) {
            entra_error(e, res, 500, "temporarily_unavailable", 50000, "There was an error issuing a token.");
        } else {
            long life = e->k.token_lifetime_s;
            int64_t now = emu_now_ms(e) / 1000;
            if (version == 1) {
                char ein[24], eon[24], nbf[24];
                snprintf(ein, sizeof ein, "%ld", life);
                snprintf(eon, sizeof eon, "%lld", (long long)(now + life));
                snprintf(nbf, sizeof nbf, "%lld", (long long)now);
                emu_reply_json(res, 200,
                               json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "token_type", "Bearer", "expires_in", ein,
                                         "ext_expires_in", ein, "expires_on", eon, "not_before", nbf, "resource",
                                         target, "access_token", tok));
            } else {
                emu_reply_json(res, 200,
                               json_pack("{s:s,s:I,s:I,s:s}", "token_type", "Bearer", "expires_in", (json_int_t)life,
                                         "ext_expires_in", (json_int_t)life, "access_token", tok));
            }
            log_info("emulator", "token issued", "kid", e->keys[0].kid, "tid", tenant, "appid", id, "ver",
                     version == 1 ? "1.0" : "2.0", "auth", assertion ? "certificate" : "secret");
        }
        free(tok);
    }
    httpd_add_header(res, "Cache-Control", "no-store, no-cache");
    free(grant);
    free(id);
    free(secret);
    free(assertion);
    free(assertion_type);
    free(target);
}


static void openid_config(struct emu *e, struct httpd_response *res, const char *tenant, int version)
{
    char iss[512], jwks[512], tok[512], authz[512];
    const char *b = e->base_url;
    if (version == 1) {
        emu_issuer_v1(e, tenant, iss, sizeof iss);
        snprintf(jwks, sizeof jwks, "%s/%s/discovery/keys", b, tenant);
        snprintf(tok, sizeof tok, "%s/%s/oauth2/token", b, tenant);
        snprintf(authz, sizeof authz, "%s/%s/oauth2/authorize", b, tenant);
    } else {
        /* Multitenant endpoints publish the issuer as a template, as Entra does: the token's
         * own tid goes in place of {tenantid}. */
        int multi = !strcmp(tenant, "common") || !strcmp(tenant, "organizations");
        emu_issuer_v2(e, multi ? "{tenantid}" : !strcmp(tenant, "consumers") ? EMU_MSA_TENANT : tenant, iss, sizeof iss);
        snprintf(jwks, sizeof jwks, "%s/%s/discovery/v2.0/keys", b, tenant);
        snprintf(tok, sizeof tok, "%s/%s/oauth2/v2.0/token", b, tenant);
        snprintf(authz, sizeof authz, "%s/%s/oauth2/v2.0/authorize", b, tenant);
    }
    json_t *doc = json_pack("{s:s,s:s,s:s,s:s,s:[s,s,s],s:[s],s:[s],s:[s,s],s:[s,s],s:s,s:b,s:s}", "issuer", iss,
                            "jwks_uri", jwks, "token_endpoint", tok, "authorization_endpoint", authz,
                            "token_endpoint_auth_methods_supported", "client_secret_post", "private_key_jwt",
                            "client_secret_basic", "id_token_signing_alg_values_supported", "RS256",
                            "subject_types_supported", "pairwise", "response_types_supported", "code", "token",
                            "scopes_supported", "openid", "profile", "tenant_region_scope", "NA",
                            "request_uri_parameter_supported", 0, "cloud_instance_name", "microsoftonline.com");
    if (doc && version == 2) { /* what buyer sign-in (emu_signin.c) supports */
        json_array_append_new(json_object_get(doc, "scopes_supported"), json_string("email"));
        json_object_set_new(doc, "response_modes_supported", json_pack("[s,s]", "query", "form_post"));
        json_object_set_new(doc, "code_challenge_methods_supported", json_pack("[s,s]", "S256", "plain"));
        json_object_set_new(doc, "grant_types_supported", json_pack("[s,s]", "authorization_code", "client_credentials"));
        json_object_set_new(doc, "claims_supported",
                            json_pack("[s,s,s,s,s,s,s,s,s,s,s,s]", "sub", "iss", "aud", "exp", "iat", "nbf", "name",
                                      "nonce", "oid", "tid", "preferred_username", "email"));
    }
    emu_reply_json(res, 200, doc);
}

static void jwks(struct emu *e, struct httpd_response *res)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < e->nkeys; i++)
        json_array_append_new(keys, emu_key_jwk(&e->keys[i]));
    emu_reply_json(res, 200, json_pack("{s:o}", "keys", keys));
}

int emu_entra_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res)
{
    const char *path = httpd_path(r);
    if (path[0] != '/')
        return 0;
    const char *slash = strchr(path + 1, '/');
    if (!slash || slash == path + 1 || (size_t)(slash - path - 1) >= 128)
        return 0;
    char tenant[128];
    snprintf(tenant, sizeof tenant, "%.*s", (int)(slash - path - 1), path + 1);
    const char *rest = slash;
    if (emu_signin_route(e, r, res, tenant, rest)) {
        return 1;
    } else if (!strcmp(rest, "/oauth2/token")) {
        token_endpoint(e, r, res, tenant, 1);
    } else if (!strcmp(rest, "/oauth2/v2.0/token")) {
        token_endpoint(e, r, res, tenant, 2);
    } else if (!strcmp(rest, "/v2.0/.well-known/openid-configuration") ||
               !strcmp(rest, "/.well-known/openid-configuration")) {
        if (!emu_authority_known(e, tenant))
            entra_error(e, res, 400, "invalid_tenant", 90002, "Tenant '%s' not found.", tenant);
        else
            openid_config(e, res, tenant, strncmp(rest, "/v2.0/", 6) ? 1 : 2);
    } else if (!strcmp(rest, "/discovery/v2.0/keys") || !strcmp(rest, "/discovery/keys")) {
        if (!emu_authority_known(e, tenant))
            entra_error(e, res, 400, "invalid_tenant", 90002, "Tenant '%s' not found.", tenant);
        else
            jwks(e, res);
    } else {
        return 0;
    }
    return 1;
}
