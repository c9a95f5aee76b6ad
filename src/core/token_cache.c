/* Entra ID client-credentials token cache: one mutex + condition variable give single-flight
 * refreshes; the HTTP request runs outside the mutex, with a reference to the credential it
 * started with, so the credential can be swapped (token_cache_set_credential) meanwhile. */
#include "core/token_cache.h"
#include "core/clock.h"
#include "core/client_cert.h"
#include "core/config.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/retry.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define TOKEN_MAX 16384

/* What the app proves itself with, and the request body that carries it. Reference counted:
 * a token request in flight keeps the credential it started with when a new one is set. */
struct credential {
    atomic_int refs;
    char *form;      /* urlencoded request body (holds the secret); with a certificate, the
                        body up to its client assertion, which is signed per request */
    size_t form_len;
    char *secret;    /* to scrub it out of Entra's error text; NULL with a certificate */
    struct client_cert *cert; /* NULL with a secret */
};

struct token_cache {
    char *url;       /* full token endpoint */
    char *e_client, *e_target; /* client id and scope/resource, URL-escaped for the form */
    char *tenant_id, *client_id, *resource;
    int version;
    long margin_ms;
    struct retry_policy retry;
    struct http_client *http;

    pthread_mutex_t mu;
    pthread_cond_t done;
    struct credential *cred;   /* the one the next token request uses */
    int refreshing;
    unsigned long generation;  /* bumped after every refresh attempt */
    char *token;               /* NULL = none */
    long long refresh_at;      /* monotonic ms: start refreshing from here */
    long long usable_until;    /* monotonic ms: never hand out the token after this */
    long long hold_until;      /* monotonic ms: no new refresh before this after a failure */
    struct token_cache_stats stats;
};

void token_cache_options_from_config(const struct saasd_config *cfg, struct token_cache_options *out)
{
    memset(out, 0, sizeof *out);
    out->authority_url = cfg->authority_url;
    out->tenant_id = cfg->tenant_id;
    out->client_id = cfg->client_id;
    out->client_secret = cfg->client_secret;
    out->client_cert = cfg->client_cert;
    out->resource = cfg->resource;
    out->version = cfg->token_version;
}

const char *token_cache_aadsts_hint(long code)
{
    switch (code) {
    case 7000215: return "the client secret is wrong: use the secret's Value (not its ID) from the app registration";
    case 7000222: return "the client secret has expired: create a new secret in the app registration and update the secret file/env";
    case 700016:  return "the client id is not known in this tenant: check entra.client_id and entra.tenant_id (single-tenant app registered elsewhere?)";
    case 90002:   return "the tenant does not exist: check entra.tenant_id (a GUID or verified domain)";
    case 900023:  return "the tenant id is malformed: check entra.tenant_id";
    case 700027:  return "the certificate is not registered for the app, has expired, or its key does not match: upload the .crt "
                         "under App registrations > Certificates & secrets (compare the thumbprint) and check entra.certificate_file";
    case 700024:  return "the client assertion is outside its valid time range: check this machine's clock (NTP)";
    case 700021:  return "the client assertion's iss/sub is not the client id: check entra.client_id";
    case 50012:   return "authentication failed; with a certificate, the assertion's aud must be the exact token endpoint: "
                         "check entra.authority, entra.tenant_id and entra.token_version";
    case 50013:   return "the client assertion was refused as already used or invalid: saasd signs a fresh one per request, "
                         "so look for a proxy that re-sends token requests";
    case 50027:   return "the client assertion is malformed (or the request carried more than one credential): "
                         "check what sits between saasd and Entra";
    case 7000216:
    case 7000218: return "no client secret or assertion was sent: set entra.secret_env, entra.secret_file or entra.certificate_file";
    case 500011:  return "the resource principal was not found in the tenant: check entra.resource (" MARKETPLACE_RESOURCE_ID ")";
    case 70011:   return "the scope is invalid: check entra.resource and entra.token_version";
    case 50126:   return "invalid credentials: check the client secret";
    case 7000112: return "the application is disabled in the tenant";
    case 90014:   return "a required field is missing from the token request";
    default:      return NULL;
    }
}

static char *escape(const char *s)
{
    char *e = NULL;
    http_url_escape(s, &e);
    return e;
}

static void wipe_free(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = 0;
        free(s);
    }
}

static struct credential *cred_ref(struct credential *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

static void cred_unref(struct credential *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) > 1)
        return;
    wipe_free(c->form);
    wipe_free(c->secret);
    client_cert_free(c->cert);
    free(c);
}

/* Exactly one of secret and cert, and the request body for it. */
static int cred_new(const struct token_cache *tc, const char *secret, struct client_cert *cert, struct credential **out)
{
    int has_secret = secret && *secret;
    *out = NULL;
    if (has_secret == (cert != NULL))
        return SAASD_EINVAL; /* exactly one credential */
    struct credential *c = calloc(1, sizeof *c);
    char *e_secret = has_secret ? escape(secret) : NULL;
    if (!c || (has_secret && !e_secret)) {
        free(c);
        free(e_secret);
        return SAASD_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    c->secret = has_secret ? strdup(secret) : NULL;
    c->cert = client_cert_ref(cert);
    size_t flen = strlen(tc->e_client) + (e_secret ? strlen(e_secret) : 0) + strlen(tc->e_target) +
                  sizeof CLIENT_ASSERTION_TYPE_ESCAPED + 96;
    c->form = malloc(flen);
    const char *field = tc->version == 1 ? "resource" : "scope";
    if (c->form && has_secret)
        c->form_len = (size_t)snprintf(c->form, flen,
                                       "grant_type=client_credentials&client_id=%s&client_secret=%s&%s=%s",
                                       tc->e_client, e_secret, field, tc->e_target);
    else if (c->form) /* the assertion type is fixed; only the assertion is signed per request */
        c->form_len = (size_t)snprintf(c->form, flen,
                                       "grant_type=client_credentials&client_id=%s&%s=%s&client_assertion_type=%s",
                                       tc->e_client, field, tc->e_target, CLIENT_ASSERTION_TYPE_ESCAPED);
    wipe_free(e_secret);
    if (!c->form || (has_secret && !c->secret)) {
        cred_unref(c);
        return SAASD_ENOMEM;
    }
    *out = c;
    return 0;
}

/* The token endpoint's URL, and the client id and scope/resource escaped for the form. */
static int endpoint_new(struct token_cache *tc, const char *authority_url)
{
    size_t alen = strlen(authority_url);
    while (alen && authority_url[alen - 1] == '/')
        alen--;
    size_t ulen = alen + strlen(tc->tenant_id) + 32;
    if (!(tc->url = malloc(ulen)))
        return SAASD_ENOMEM;
    snprintf(tc->url, ulen, "%.*s/%s%s", (int)alen, authority_url, tc->tenant_id,
             tc->version == 1 ? "/oauth2/token" : "/oauth2/v2.0/token");
    size_t tlen = strlen(tc->resource) + 16;
    char *raw = malloc(tlen);
    if (raw) {
        snprintf(raw, tlen, "%s%s", tc->resource, tc->version == 1 ? "" : "/.default");
        tc->e_target = escape(raw);
        free(raw);
    }
    tc->e_client = escape(tc->client_id);
    return tc->e_target && tc->e_client ? 0 : SAASD_ENOMEM;
}

static void log_credential(const struct token_cache *tc, const struct credential *c, const char *msg)
{
    if (c->cert)
        log_info("token", msg, "client_id", tc->client_id, "kind", "certificate", "thumbprint",
                 client_cert_thumbprint_hex(c->cert), "x5t", client_cert_x5t(c->cert));
    else
        log_info("token", msg, "client_id", tc->client_id, "kind", "client secret");
}

int token_cache_new(const struct token_cache_options *opt, struct http_client *http, struct token_cache **out)
{
    *out = NULL;
    if (!opt || !http || !opt->authority_url || !*opt->authority_url || !opt->tenant_id || !*opt->tenant_id ||
        !opt->client_id || !*opt->client_id)
        return SAASD_EINVAL;
    int has_secret = opt->client_secret && *opt->client_secret;
    if (has_secret == (opt->client_cert != NULL))
        return SAASD_EINVAL; /* exactly one credential */
    struct token_cache *tc = calloc(1, sizeof *tc);
    if (!tc)
        return SAASD_ENOMEM;
    pthread_mutex_init(&tc->mu, NULL);
    pthread_cond_init(&tc->done, NULL);
    tc->http = http;
    tc->version = opt->version == 1 ? 1 : 2;
    tc->margin_ms = opt->refresh_margin_ms > 0 ? opt->refresh_margin_ms : 300000;
    tc->retry.max_attempts = opt->max_attempts > 0 ? opt->max_attempts : 3;
    tc->retry.base_ms = opt->backoff_base_ms > 0 ? opt->backoff_base_ms : 500;
    tc->retry.cap_ms = opt->backoff_cap_ms > 0 ? opt->backoff_cap_ms : 8000;
    tc->retry.retry_after_cap_ms = 30000;
    tc->tenant_id = strdup(opt->tenant_id);
    tc->client_id = strdup(opt->client_id);
    tc->resource = strdup(opt->resource && *opt->resource ? opt->resource : MARKETPLACE_RESOURCE_ID);
    int rc = !tc->tenant_id || !tc->client_id || !tc->resource ? SAASD_ENOMEM : endpoint_new(tc, opt->authority_url);
    if (rc == 0)
        rc = cred_new(tc, opt->client_secret, opt->client_cert, &tc->cred);
    if (rc) {
        token_cache_free(tc);
        return rc;
    }
    metrics_describe("saasd_token_refresh_total", "counter", "Entra ID token refreshes by outcome");
    if (tc->cred->cert)
        log_credential(tc, tc->cred,
                       "the publisher app signs in with a certificate (a client assertion per token request)");
    *out = tc;
    return 0;
}

int token_cache_set_credential(struct token_cache *tc, const char *client_secret, struct client_cert *client_cert)
{
    struct credential *fresh = NULL, *old;
    int rc = tc ? cred_new(tc, client_secret, client_cert, &fresh) : SAASD_EINVAL;
    if (rc)
        return rc;
    pthread_mutex_lock(&tc->mu);
    old = tc->cred;
    tc->cred = fresh;
    pthread_mutex_unlock(&tc->mu);
    cred_unref(old); /* a request in flight still holds it */
    log_credential(tc, fresh,
                   "the credential was replaced; the next token request uses it, the current token is kept until due");
    return 0;
}

void token_cache_describe_credential(struct token_cache *tc, char *buf, size_t size)
{
    pthread_mutex_lock(&tc->mu);
    if (tc->cred->cert)
        snprintf(buf, size, "certificate %s", client_cert_thumbprint_hex(tc->cred->cert));
    else
        snprintf(buf, size, "client secret");
    pthread_mutex_unlock(&tc->mu);
}

void token_cache_free(struct token_cache *tc)
{
    if (!tc)
        return;
    wipe_free(tc->token);
    cred_unref(tc->cred);
    free(tc->url);
    free(tc->e_client);
    free(tc->e_target);
    free(tc->tenant_id);
    free(tc->client_id);
    free(tc->resource);
    pthread_mutex_destroy(&tc->mu);
    pthread_cond_destroy(&tc->done);
    free(tc);
}

/* Replace every occurrence of the secret in text by the mask (in place; the mask is not longer
 * than a real secret, and shorter secrets are simply overwritten with '*'). */
static void scrub_secret(const struct credential *c, char *text)
{
    if (!c->secret)
        return;
    size_t n = strlen(c->secret);
    if (n < 4)
        return;
    for (char *p = strstr(text, c->secret); p; p = strstr(p + n, c->secret))
        memset(p, '*', n);
}

/* One clear line about an Entra refusal: what Entra said, what to fix. */
static void log_entra_error(const struct token_cache *tc, const struct credential *cred, long status, const char *body,
                            char *hint_out, size_t hint_size)
{
    json_t *doc = json_loads(body ? body : "", 0, NULL);
    char error[64] = "", desc[512] = "", trace[64] = "", corr[64] = "", code_text[24] = "";
    long code = 0;
    if (doc) {
        jl_string(doc, "error", error, sizeof error);
        jl_string(doc, "error_description", desc, sizeof desc);
        jl_string(doc, "trace_id", trace, sizeof trace);
        jl_string(doc, "correlation_id", corr, sizeof corr);
        json_t *codes = jl_get(doc, "error_codes");
        if (json_is_array(codes) && json_array_size(codes) > 0 && json_is_integer(json_array_get(codes, 0)))
            code = (long)json_integer_value(json_array_get(codes, 0));
        json_decref(doc);
    }
    const char *a = strstr(desc, "AADSTS");
    if (!code && a)
        code = strtol(a + 6, NULL, 10);
    char *eol = strpbrk(desc, "\r\n");
    if (eol)
        *eol = 0; /* Entra appends trace/correlation/timestamp lines */
    scrub_secret(cred, desc);
    if (code)
        snprintf(code_text, sizeof code_text, "AADSTS%ld", code);
    const char *hint = token_cache_aadsts_hint(code);
    char status_text[24];
    snprintf(status_text, sizeof status_text, "%ld", status);
    if (!hint && (status == 401 || !strcmp(error, "invalid_client")))
        hint = cred->cert ? "the client assertion was refused: check entra.client_id and that this certificate "
                            "(thumbprint) is registered for the app"
                          : "the client credentials were refused: check entra.client_id and the client secret";
    if (!hint)
        hint = "check entra.tenant_id, entra.client_id, entra.resource and entra.token_version";
    snprintf(hint_out, hint_size, "%s", hint);
    log_error("token", "Entra ID refused the token request", "status", status_text, "aadsts", code_text, "error",
              error, "fix", hint, "description", desc, "tenant", tc->tenant_id, "client_id", tc->client_id, "thumbprint",
              cred->cert ? client_cert_thumbprint_hex(cred->cert) : "", "trace_id", trace, "correlation_id", corr);
}

/* The request body with a fresh client assertion (certificate credential): a new jti, aud =
 * the endpoint posted to, signed now. *out malloc'd. */
static int assertion_body(const struct token_cache *tc, const struct credential *cred, char **out, size_t *len)
{
    char *jwt = NULL;
    int rc = client_cert_assertion(cred->cert, tc->client_id, tc->url, time(NULL), &jwt);
    *out = NULL;
    if (rc == 0) {
        /* a compact JWS is base64url and dots: nothing to escape */
        size_t n = cred->form_len + strlen(jwt) + 32;
        *out = malloc(n);
        if (*out)
            *len = (size_t)snprintf(*out, n, "%s&client_assertion=%s", cred->form, jwt);
        else
            rc = SAASD_ENOMEM;
    }
    free(jwt);
    return rc;
}

/* One refresh with cred, with retries on 429/5xx/timeouts. On success *token is malloc'd and
 * *lifetime_ms and *received set. */
static int fetch_token(struct token_cache *tc, const struct credential *cred, char **token, long long *lifetime_ms,
                       long long *received, char *why, size_t why_size)
{
    struct http_header h[] = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
    struct http_request req = {.method = "POST", .url = tc->url, .headers = h, .nheaders = 2, .body = cred->form,
                               .body_len = cred->form_len};
    int rc = SAASD_ERETRY;
    *token = NULL;
    why[0] = 0;
    for (int attempt = 1; attempt <= tc->retry.max_attempts; attempt++) {
        struct http_response res;
        long wait_ms = -1;
        char *signed_body = NULL;
        if (cred->cert && (rc = assertion_body(tc, cred, &signed_body, &req.body_len)) != 0) {
            snprintf(why, why_size, "could not sign the client assertion (%s)", saasd_strerror(rc));
            log_error("token", "could not sign the client assertion", "error", saasd_strerror(rc));
            return rc;
        }
        if (signed_body)
            req.body = signed_body;
        pthread_mutex_lock(&tc->mu);
        tc->stats.requests++;
        pthread_mutex_unlock(&tc->mu);
        rc = http_client_do(tc->http, &req, &res);
        wipe_free(signed_body); /* each attempt signs its own: a jti is never sent twice */
        long long now = mono_ms();
        if (rc == 0 && res.status == 200) {
            json_t *doc = json_loads(res.body, 0, NULL);
            long long expires_in = 0;
            json_t *at = jl_get(doc, "access_token");
            if (json_is_string(at) && *json_string_value(at) && strlen(json_string_value(at)) < TOKEN_MAX &&
                jl_int(doc, "expires_in", &expires_in) == 0 && expires_in > 0) {
                *token = strdup(json_string_value(at));
                *lifetime_ms = expires_in * 1000;
                *received = now;
                rc = *token ? 0 : SAASD_ENOMEM;
            } else {
                snprintf(why, why_size, "the token endpoint answered 200 without access_token/expires_in");
                log_error("token", "malformed token response", "url", tc->url);
                rc = SAASD_EHTTP;
            }
            json_decref(doc);
            http_response_free(&res);
            return rc;
        }
        if (rc == 0 && (res.status == 429 || res.status >= 500)) {
            char ra[64];
            wait_ms = retry_after_ms(http_response_header(&res, "Retry-After", ra, sizeof ra), tc->retry.retry_after_cap_ms);
            snprintf(why, why_size, "the token endpoint answered %ld", res.status);
            rc = SAASD_ERETRY;
        } else if (rc == 0) {
            log_entra_error(tc, cred, res.status, res.body, why, why_size);
            http_response_free(&res);
            return SAASD_EAUTH; /* 400/401/403: only a configuration change helps */
        } else {
            snprintf(why, why_size, "the token endpoint could not be reached (%s)", saasd_strerror(rc));
        }
        http_response_free(&res);
        if (attempt < tc->retry.max_attempts) {
            if (wait_ms < 0)
                wait_ms = retry_backoff_ms(&tc->retry, attempt);
            log_warn("token", "token request failed, retrying", "url", tc->url, "reason", why);
            retry_sleep_ms(wait_ms);
        }
    }
    log_error("token", "could not obtain a token", "url", tc->url, "reason", why);
    return rc;
}

static int copy_token(const struct token_cache *tc, char *buf, size_t size)
{
    size_t n = strlen(tc->token);
    if (n >= size)
        return SAASD_ETOOBIG;
    memcpy(buf, tc->token, n + 1);
    return 0;
}

/* Record a refresh's outcome (mu held). */
static void refresh_done(struct token_cache *tc, int rc, char *fresh, long long lifetime, long long received,
                         const char *why)
{
    tc->refreshing = 0;
    tc->generation++;
    if (rc == 0) {
        wipe_free(tc->token);
        tc->token = fresh;
        long long margin = tc->margin_ms < lifetime / 5 ? tc->margin_ms : lifetime / 5;
        long long guard = lifetime / 20 < 30000 ? lifetime / 20 : 30000; /* request in flight */
        tc->refresh_at = received + lifetime - margin;
        tc->usable_until = received + lifetime - guard;
        tc->hold_until = 0;
        tc->stats.refresh_ok++;
        tc->stats.last_ok = time(NULL);
        tc->stats.expires_at = tc->stats.last_ok + (time_t)(lifetime / 1000);
        tc->stats.last_error = 0;
        tc->stats.last_error_text[0] = 0;
        metrics_inc("saasd_token_refresh_total", "outcome=\"ok\"");
        char exp_text[24];
        snprintf(exp_text, sizeof exp_text, "%lld", lifetime / 1000);
        log_info("token", "access token refreshed", "tenant", tc->tenant_id, "client_id", tc->client_id,
                 "expires_in_s", exp_text);
    } else {
        tc->stats.refresh_failed++;
        tc->stats.last_error = rc;
        snprintf(tc->stats.last_error_text, sizeof tc->stats.last_error_text, "%s", why);
        tc->hold_until = mono_ms() + (rc == SAASD_EAUTH ? 10000 : 1000);
        metrics_inc("saasd_token_refresh_total", rc == SAASD_EAUTH ? "outcome=\"refused\"" : "outcome=\"failed\"");
    }
    pthread_cond_broadcast(&tc->done);
}

/* One refresh by this caller (mu held on entry and on return, released during the request),
 * with the credential current when it starts. */
static int refresh_locked(struct token_cache *tc, char *why, size_t why_size)
{
    struct credential *cred = cred_ref(tc->cred);
    tc->refreshing = 1;
    pthread_mutex_unlock(&tc->mu);
    char *fresh = NULL;
    long long lifetime = 0, received = 0;
    int rc = fetch_token(tc, cred, &fresh, &lifetime, &received, why, why_size);
    cred_unref(cred);
    pthread_mutex_lock(&tc->mu);
    refresh_done(tc, rc, fresh, lifetime, received, why);
    return rc;
}

int token_cache_get(struct token_cache *tc, char *buf, size_t size)
{
    if (!tc || !buf || !size)
        return SAASD_EINVAL;
    buf[0] = 0;
    pthread_mutex_lock(&tc->mu);
    for (;;) {
        long long now = mono_ms();
        int usable = tc->token && now < tc->usable_until;
        if (usable && now < tc->refresh_at) {
            int rc = copy_token(tc, buf, size);
            pthread_mutex_unlock(&tc->mu);
            return rc;
        }
        if (tc->refreshing || (now < tc->hold_until && !usable)) {
            if (usable) { /* someone is refreshing; the old token is still good */
                int rc = copy_token(tc, buf, size);
                pthread_mutex_unlock(&tc->mu);
                return rc;
            }
            if (!tc->refreshing) { /* a refresh just failed: do not hammer Entra */
                int rc = tc->stats.last_error ? tc->stats.last_error : SAASD_ERETRY;
                pthread_mutex_unlock(&tc->mu);
                return rc;
            }
            unsigned long gen = tc->generation;
            while (tc->refreshing && tc->generation == gen)
                pthread_cond_wait(&tc->done, &tc->mu);
            if (!tc->token || mono_ms() >= tc->usable_until) {
                int rc = tc->stats.last_error ? tc->stats.last_error : SAASD_ERETRY;
                pthread_mutex_unlock(&tc->mu);
                return rc;
            }
            continue;
        }
        if (usable && now < tc->hold_until) { /* refresh failed recently; keep using the old one */
            int rc = copy_token(tc, buf, size);
            pthread_mutex_unlock(&tc->mu);
            return rc;
        }

        /* this caller refreshes; everyone else waits or uses the old token */
        char why[160];
        int rc = refresh_locked(tc, why, sizeof why);
        if (rc != 0 && !(tc->token && mono_ms() < tc->usable_until)) {
            pthread_mutex_unlock(&tc->mu);
            return rc;
        }
        if (rc != 0)
            log_warn("token", "refresh failed; using the current token until it expires", "reason", why);
        rc = copy_token(tc, buf, size);
        pthread_mutex_unlock(&tc->mu);
        return rc;
    }
}

int token_cache_refresh(struct token_cache *tc, char *why, size_t why_size)
{
    if (!tc || !why || !why_size)
        return SAASD_EINVAL;
    pthread_mutex_lock(&tc->mu);
    while (tc->refreshing) /* it may have started with the previous credential */
        pthread_cond_wait(&tc->done, &tc->mu);
    int rc = refresh_locked(tc, why, why_size);
    pthread_mutex_unlock(&tc->mu);
    if (rc == 0)
        why[0] = 0;
    return rc;
}

int token_cache_invalidate(struct token_cache *tc, const char *token)
{
    int dropped = 0;
    if (!tc || !token)
        return 0;
    pthread_mutex_lock(&tc->mu);
    if (tc->token && !strcmp(tc->token, token)) {
        wipe_free(tc->token);
        tc->token = NULL;
        tc->refresh_at = tc->usable_until = 0;
        tc->hold_until = 0;
        tc->stats.invalidations++;
        tc->stats.expires_at = 0;
        dropped = 1;
    }
    pthread_mutex_unlock(&tc->mu);
    if (dropped)
        log_warn("token", "the marketplace refused the access token; fetching a new one", "tenant", tc->tenant_id,
                 "client_id", tc->client_id);
    return dropped;
}

void token_cache_stats(struct token_cache *tc, struct token_cache_stats *out)
{
    pthread_mutex_lock(&tc->mu);
    *out = tc->stats;
    pthread_mutex_unlock(&tc->mu);
}
