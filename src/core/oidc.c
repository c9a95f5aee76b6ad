/* OpenID Connect authorization code flow with PKCE (see oidc.h). */
#include "core/oidc.h"
#include "core/client_cert.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/jwt.h"
#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define RANDOM_LEN 44 /* base64url of 32 bytes + NUL */

struct pending {
    char state[RANDOM_LEN];
    char binding[RANDOM_LEN];
    char nonce[RANDOM_LEN];
    char verifier[RANDOM_LEN];
    char *payload; /* NULL = free slot */
    long long expires;
};

struct oidc {
    char *authority, *tenant, *client_id, *redirect_uri;
    int skew_s, pending_ttl_s;
    struct http_client *http;

    pthread_mutex_t mu; /* guards everything below */
    char *client_secret;       /* the credential: one of the two (oidc_set_credential swaps it) */
    struct client_cert *cert;  /* a reference of our own */
    char *authorize_endpoint, *token_endpoint; /* NULL until discovered */
    struct jwt_verifier *ids;
    struct pending *pending;
    size_t npending;
};

const char *oidc_error_name(int rc)
{
    switch (rc) {
    case OIDC_ESTATE:       return "bad_state";
    case OIDC_EDENIED:      return "denied";
    case OIDC_ECODE:        return "code_refused";
    case OIDC_ETOKEN:       return "bad_id_token";
    case OIDC_ENONCE:       return "wrong_nonce";
    case OIDC_EUNAVAILABLE: return "provider_unavailable";
    default:                return saasd_strerror(rc);
    }
}

static long long now_s(void)
{
    return (long long)time(NULL);
}

static int random_token(char out[RANDOM_LEN])
{
    uint8_t raw[32];
    char *t = NULL;
    if (crypto_random(raw, sizeof raw) || crypto_base64url_encode(raw, sizeof raw, &t))
        return SAASD_EINTERNAL;
    snprintf(out, RANDOM_LEN, "%s", t);
    free(t);
    return 0;
}

int oidc_new(const struct oidc_options *opt, struct oidc **out)
{
    *out = NULL;
    if (!opt->authority || !opt->tenant || !opt->client_id || !opt->redirect_uri || !opt->http ||
        (!opt->client_secret && !opt->cert))
        return SAASD_EINVAL;
    struct oidc *o = calloc(1, sizeof *o);
    if (!o)
        return SAASD_ENOMEM;
    pthread_mutex_init(&o->mu, NULL);
    o->authority = strdup(opt->authority);
    o->tenant = strdup(opt->tenant);
    o->client_id = strdup(opt->client_id);
    o->client_secret = opt->client_secret ? strdup(opt->client_secret) : NULL;
    o->redirect_uri = strdup(opt->redirect_uri);
    o->cert = client_cert_ref(opt->cert);
    o->skew_s = opt->skew_s < 0 ? 0 : opt->skew_s > 300 ? 300 : opt->skew_s;
    o->pending_ttl_s = opt->pending_ttl_s > 0 ? opt->pending_ttl_s : 600;
    o->http = opt->http;
    o->npending = opt->max_pending ? opt->max_pending : 4096;
    o->pending = calloc(o->npending, sizeof *o->pending);
    if (!o->authority || !o->tenant || !o->client_id || !o->redirect_uri || !o->pending ||
        (opt->client_secret && !o->client_secret)) {
        oidc_free(o);
        return SAASD_ENOMEM;
    }
    for (size_t n = strlen(o->authority); n && o->authority[n - 1] == '/';)
        o->authority[--n] = 0;
    *out = o;
    return 0;
}

int oidc_set_credential(struct oidc *o, const char *client_secret, struct client_cert *cert)
{
    int has_secret = client_secret && *client_secret;
    if (!o || has_secret == (cert != NULL))
        return SAASD_EINVAL; /* exactly one credential */
    char *secret = has_secret ? strdup(client_secret) : NULL;
    if (has_secret && !secret)
        return SAASD_ENOMEM;
    pthread_mutex_lock(&o->mu);
    char *old_secret = o->client_secret;
    struct client_cert *old_cert = o->cert;
    o->client_secret = secret;
    o->cert = client_cert_ref(cert);
    pthread_mutex_unlock(&o->mu);
    free(old_secret);
    client_cert_free(old_cert);
    return 0;
}

void oidc_free(struct oidc *o)
{
    if (!o)
        return;
    for (size_t i = 0; o->pending && i < o->npending; i++)
        free(o->pending[i].payload);
    free(o->pending);
    jwt_verifier_free(o->ids);
    free(o->authorize_endpoint);
    free(o->token_endpoint);
    free(o->authority);
    free(o->tenant);
    free(o->client_id);
    free(o->client_secret);
    client_cert_free(o->cert);
    free(o->redirect_uri);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* ---- metadata ---- */

static int get_json(struct oidc *o, const char *url, json_t **out)
{
    *out = NULL;
    struct http_header h[] = {{"Accept", "application/json"}};
    struct http_request req = {.method = "GET", .url = url, .headers = h, .nheaders = 1};
    struct http_response res;
    int rc = http_client_do(o->http, &req, &res);
    if (!rc && res.status != 200)
        rc = SAASD_EHTTP;
    if (!rc && !(*out = json_loads(res.body, 0, NULL)))
        rc = SAASD_EINVAL;
    http_response_free(&res);
    return rc;
}

/* Fetch the OpenID metadata once and build the ID token verifier from it. The fetch runs
 * without the lock (a slow provider must not hold up sign-ins being finished); when two
 * threads fetch at once, the first to finish installs its result. */
static int discover(struct oidc *o)
{
    pthread_mutex_lock(&o->mu);
    int have = o->token_endpoint != NULL;
    pthread_mutex_unlock(&o->mu);
    if (have)
        return 0;
    char url[1024];
    snprintf(url, sizeof url, "%s/%s/v2.0/.well-known/openid-configuration", o->authority, o->tenant);
    json_t *doc = NULL;
    struct jwt_verifier *ids = NULL;
    char *authz_copy = NULL, *token_copy = NULL;
    int rc = get_json(o, url, &doc);
    const char *authz = json_string_value(json_object_get(doc, "authorization_endpoint"));
    const char *token = json_string_value(json_object_get(doc, "token_endpoint"));
    const char *jwks = json_string_value(json_object_get(doc, "jwks_uri"));
    const char *issuer = json_string_value(json_object_get(doc, "issuer"));
    if (!rc && (!authz || !token || !jwks)) /* the issuer is optional: <authority>/<tid>/v2.0 is checked anyway */
        rc = SAASD_EINVAL;
    if (!rc) {
        struct jwt_verifier_options vo = {.id_token = 1, .audience = o->client_id, .issuer_template = issuer,
                                          .authority_url = o->authority, .jwks_url = jwks, .skew_s = o->skew_s,
                                          .cache_slots = 1, .http = o->http};
        rc = jwt_verifier_new(&vo, &ids);
    }
    if (!rc && (!(authz_copy = strdup(authz)) || !(token_copy = strdup(token))))
        rc = SAASD_ENOMEM;
    if (!rc) {
        pthread_mutex_lock(&o->mu);
        if (!o->token_endpoint) {
            o->authorize_endpoint = authz_copy;
            o->token_endpoint = token_copy;
            o->ids = ids;
            authz_copy = token_copy = NULL;
            ids = NULL;
        }
        pthread_mutex_unlock(&o->mu);
    } else {
        log_warn("oidc", "could not read the sign-in provider's metadata", "url", url, "error", saasd_strerror(rc));
    }
    free(authz_copy);
    free(token_copy);
    jwt_verifier_free(ids);
    json_decref(doc);
    return rc ? OIDC_EUNAVAILABLE : 0;
}

/* ---- begin ---- */

static int pkce_challenge(const char *verifier, char **out)
{
    uint8_t h[CRYPTO_SHA256_LEN];
    if (crypto_sha256(verifier, strlen(verifier), h))
        return SAASD_EINTERNAL;
    return crypto_base64url_encode(h, sizeof h, out);
}

/* A free or expired slot; when every slot is live, the one that expires first (its buyer
 * started longest ago and is the likeliest to have walked away). Caller holds mu. */
static struct pending *slot_for_new(struct oidc *o, long long now)
{
    struct pending *victim = &o->pending[0];
    for (size_t i = 0; i < o->npending; i++) {
        struct pending *p = &o->pending[i];
        if (!p->payload || p->expires <= now)
            return p;
        if (p->expires < victim->expires)
            victim = p;
    }
    return victim;
}

static int build_authorize_url(struct oidc *o, const struct pending *p, char **out)
{
    char *challenge = NULL, *e_client = NULL, *e_redirect = NULL;
    int rc = pkce_challenge(p->verifier, &challenge);
    if (!rc)
        rc = http_url_escape(o->client_id, &e_client);
    if (!rc)
        rc = http_url_escape(o->redirect_uri, &e_redirect);
    if (!rc) {
        size_t n = strlen(o->authorize_endpoint) + strlen(e_client) + strlen(e_redirect) + 3 * RANDOM_LEN + 256;
        if ((*out = malloc(n)) == NULL)
            rc = SAASD_ENOMEM;
        else
            snprintf(*out, n,
                     "%s%sclient_id=%s&response_type=code&redirect_uri=%s&response_mode=query"
                     "&scope=openid%%20profile%%20email&state=%s&nonce=%s&code_challenge=%s&code_challenge_method=S256",
                     o->authorize_endpoint, strchr(o->authorize_endpoint, '?') ? "&" : "?", e_client, e_redirect,
                     p->state, p->nonce, challenge);
    }
    free(challenge);
    free(e_client);
    free(e_redirect);
    return rc;
}

int oidc_begin(struct oidc *o, const char *payload, char binding[OIDC_BINDING_LEN], char **authorize_url)
{
    *authorize_url = NULL;
    struct pending p = {0};
    if (random_token(p.state) || random_token(p.binding) || random_token(p.nonce) || random_token(p.verifier))
        return SAASD_EINTERNAL;
    if (!(p.payload = strdup(payload ? payload : "")))
        return SAASD_ENOMEM;
    int rc = discover(o);
    pthread_mutex_lock(&o->mu);
    if (!rc)
        rc = build_authorize_url(o, &p, authorize_url);
    if (!rc) {
        long long now = now_s();
        p.expires = now + o->pending_ttl_s;
        struct pending *slot = slot_for_new(o, now);
        free(slot->payload);
        *slot = p;
        p.payload = NULL;
        snprintf(binding, OIDC_BINDING_LEN, "%s", slot->binding);
    }
    pthread_mutex_unlock(&o->mu);
    free(p.payload);
    return rc;
}

/* ---- finish ---- */

/* Take the pending sign-in for (state, binding) out of the table: it can be used once. */
static int take_pending(struct oidc *o, const char *state, const char *binding, struct pending *out)
{
    int rc = OIDC_ESTATE;
    long long now = now_s();
    size_t slen = state ? strlen(state) : 0;
    if (slen == 0 || slen >= RANDOM_LEN || !binding)
        return rc;
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->npending; i++) {
        struct pending *p = &o->pending[i];
        if (!p->payload || strlen(p->state) != slen || !crypto_equal(p->state, state, slen))
            continue;
        /* a state offered by another browser (no or another binding) stays unused for its owner */
        if (strlen(binding) == strlen(p->binding) && crypto_equal(p->binding, binding, strlen(binding))) {
            if (p->expires > now) {
                *out = *p;
                rc = 0;
            } else {
                free(p->payload);
            }
            memset(p, 0, sizeof *p);
        }
        break;
    }
    pthread_mutex_unlock(&o->mu);
    return rc;
}

void oidc_cancel(struct oidc *o, const char *state, const char *binding)
{
    struct pending p;
    if (take_pending(o, state, binding, &p) == 0)
        free(p.payload);
}

static int form_add(char **form, size_t *len, const char *name, const char *value)
{
    char *e = NULL;
    if (http_url_escape(value, &e))
        return SAASD_ENOMEM;
    size_t add = strlen(name) + strlen(e) + 2;
    char *f = realloc(*form, *len + add + 1);
    if (!f) {
        free(e);
        return SAASD_ENOMEM;
    }
    *len += (size_t)snprintf(f + *len, add + 1, "%s%s=%s", *len ? "&" : "", name, e);
    *form = f;
    free(e);
    return 0;
}

/* POST the code with the PKCE verifier and the client's credential; the id_token (malloc'd). */
static int redeem(struct oidc *o, const char *token_endpoint, const char *code, const char *verifier, char **id_token,
                  char *detail, size_t dsize)
{
    char *form = NULL, *assertion = NULL;
    size_t len = 0;
    pthread_mutex_lock(&o->mu); /* this request's credential, whatever oidc_set_credential does meanwhile */
    char *secret = o->client_secret ? strdup(o->client_secret) : NULL;
    int rc = o->client_secret && !secret ? SAASD_ENOMEM : 0;
    struct client_cert *cert = client_cert_ref(o->cert);
    pthread_mutex_unlock(&o->mu);
    rc = rc ? rc : form_add(&form, &len, "client_id", o->client_id);
    rc = rc ? rc : form_add(&form, &len, "grant_type", "authorization_code");
    rc = rc ? rc : form_add(&form, &len, "code", code);
    rc = rc ? rc : form_add(&form, &len, "redirect_uri", o->redirect_uri);
    rc = rc ? rc : form_add(&form, &len, "code_verifier", verifier);
    rc = rc ? rc : form_add(&form, &len, "scope", "openid profile email");
    if (!rc && secret) {
        rc = form_add(&form, &len, "client_secret", secret);
    } else if (!rc) {
        rc = client_cert_assertion(cert, o->client_id, token_endpoint, time(NULL), &assertion);
        rc = rc ? rc
                : form_add(&form, &len, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        rc = rc ? rc : form_add(&form, &len, "client_assertion", assertion);
    }
    free(assertion);
    free(secret);
    client_cert_free(cert);
    if (rc) {
        free(form);
        return rc;
    }
    struct http_header h[] = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
    struct http_request req = {.method = "POST", .url = token_endpoint, .headers = h, .nheaders = 2,
                               .body = form, .body_len = len};
    struct http_response res;
    rc = http_client_do(o->http, &req, &res);
    free(form);
    json_t *doc = rc ? NULL : json_loads(res.body, 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "id_token"));
    if (rc) {
        rc = OIDC_EUNAVAILABLE;
    } else if (res.status != 200 || !tok) {
        const char *err = json_string_value(json_object_get(doc, "error"));
        snprintf(detail, dsize, "token endpoint %ld %s", res.status, err ? err : "");
        rc = res.status >= 500 ? OIDC_EUNAVAILABLE : OIDC_ECODE;
    } else if (!(*id_token = strdup(tok))) {
        rc = SAASD_ENOMEM;
    }
    json_decref(doc);
    http_response_free(&res);
    return rc;
}

static void copy_str(json_t *j, const char *name, char *buf, size_t size)
{
    const char *v = json_string_value(json_object_get(j, name));
    snprintf(buf, size, "%s", v ? v : "");
}

static int check_id_token(struct jwt_verifier *ids, const char *id_token, const char *nonce,
                          struct oidc_identity *who, char *detail, size_t dsize)
{
    struct jwt_claims c;
    json_t *payload = NULL;
    int jrc = jwt_verify_payload(ids, id_token, strlen(id_token), &c, &payload);
    if (jrc) {
        snprintf(detail, dsize, "%s", jwt_reason_name(jrc));
        return jrc == JWT_EKEYS ? OIDC_EUNAVAILABLE : OIDC_ETOKEN;
    }
    const char *tn = json_string_value(json_object_get(payload, "nonce"));
    int rc = 0;
    if (!tn || strlen(tn) != strlen(nonce) || !crypto_equal(tn, nonce, strlen(nonce))) {
        snprintf(detail, dsize, "wrong_nonce");
        rc = OIDC_ENONCE;
    } else {
        snprintf(who->oid, sizeof who->oid, "%s", c.oid);
        snprintf(who->tid, sizeof who->tid, "%s", c.tid);
        copy_str(payload, "name", who->name, sizeof who->name);
        copy_str(payload, "email", who->email, sizeof who->email);
        if (!who->email[0])
            copy_str(payload, "preferred_username", who->email, sizeof who->email);
        if (!who->oid[0]) {
            snprintf(detail, dsize, "no_oid");
            rc = OIDC_ETOKEN;
        }
    }
    json_decref(payload);
    return rc;
}

int oidc_finish(struct oidc *o, const char *state, const char *binding, const char *code, struct oidc_identity *who,
                char **payload, char *detail, size_t detail_size)
{
    char scratch[8];
    if (!detail) {
        detail = scratch;
        detail_size = sizeof scratch;
    }
    detail[0] = 0;
    memset(who, 0, sizeof *who);
    *payload = NULL;
    struct pending p;
    int rc = take_pending(o, state, binding, &p);
    if (rc)
        return rc;
    if (!code || !*code) {
        free(p.payload);
        return OIDC_ECODE;
    }
    pthread_mutex_lock(&o->mu);
    char *token_endpoint = o->token_endpoint ? strdup(o->token_endpoint) : NULL;
    struct jwt_verifier *ids = o->ids; /* lives as long as o once discovered */
    pthread_mutex_unlock(&o->mu);
    char *id_token = NULL;
    rc = token_endpoint && ids ? redeem(o, token_endpoint, code, p.verifier, &id_token, detail, detail_size)
                               : OIDC_EUNAVAILABLE;
    if (!rc)
        rc = check_id_token(ids, id_token, p.nonce, who, detail, detail_size);
    free(token_endpoint);
    free(id_token);
    if (rc)
        free(p.payload);
    else
        *payload = p.payload;
    return rc;
}
