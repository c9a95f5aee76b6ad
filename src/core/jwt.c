/* Webhook JWT verification: OpenSSL 3 EVP for RS256, jansson for the JSON segments. */
#include "core/jwt.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/json_lenient.h"
#include "core/log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#define JWT_MAX_KEYS 64
#define CACHE_PROBE 8

struct jwk_entry {
    char kid[128];
    EVP_PKEY *key;
};

struct vcache_slot {
    uint8_t hash[CRYPTO_SHA256_LEN];
    long long exp; /* 0 = empty */
    struct jwt_claims claims;
};

struct jwt_verifier {
    char *tenant_id, *audience, *api_audience, *app_id, *jwks_url;
    char *iss_v1, *iss_v2, *iss_authority_v2, *iss_authority_v1;
    int id_token;
    char *issuer_template, *authority_base; /* id_token mode */
    int skew_s;
    long refetch_interval_ms, keys_max_age_s;
    size_t max_token_len, max_header_len;
    struct http_client *http;
    jwt_fetch_fn fetch;
    void *fetch_arg;

    pthread_rwlock_t keys_lock; /* guards keys, nkeys, keys_loaded_mono */
    struct jwk_entry keys[JWT_MAX_KEYS];
    size_t nkeys;
    long long keys_loaded_mono; /* ms; 0 = never loaded */

    pthread_mutex_t fetch_lock; /* one fetch at a time; guards last_fetch_mono */
    long long last_fetch_mono;  /* ms; 0 = never */

    pthread_rwlock_t cache_lock;
    struct vcache_slot *cache;
    size_t cache_mask;

    pthread_mutex_t stats_lock;
    struct jwt_stats stats;
};

const char *jwt_reason_name(int reason)
{
    switch (reason) {
    case JWT_OK:          return "ok";
    case JWT_ETOOBIG:     return "too_big";
    case JWT_EMALFORMED:  return "malformed";
    case JWT_EALG:        return "bad_alg";
    case JWT_ENOKID:      return "missing_kid";
    case JWT_EUNKNOWNKID: return "unknown_kid";
    case JWT_ESIGNATURE:  return "bad_signature";
    case JWT_EISSUER:     return "wrong_issuer";
    case JWT_EAUDIENCE:   return "wrong_audience";
    case JWT_ETENANT:     return "wrong_tenant";
    case JWT_ECALLER:     return "wrong_caller_app";
    case JWT_EEXPIRED:    return "expired";
    case JWT_ENOTYET:     return "not_yet_valid";
    case JWT_EKEYS:       return "keys_unavailable";
    case JWT_EINTERNAL:   return "internal_error";
    case JWT_ENOTCACHED:  return "not_cached";
    case JWT_ETIMECLAIM:  return "bad_time_claim";
    default:              return saasd_strerror(reason);
    }
}

static void stat_add(struct jwt_verifier *v, unsigned long *field)
{
    pthread_mutex_lock(&v->stats_lock);
    (*field)++;
    pthread_mutex_unlock(&v->stats_lock);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *format_alloc(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

void jwt_verifier_options_from_config(const struct saasd_config *cfg, struct http_client *http,
                                      struct jwt_verifier_options *out)
{
    memset(out, 0, sizeof *out);
    out->tenant_id = cfg->webhook_tenant ? cfg->webhook_tenant : cfg->tenant_id;
    out->audience = cfg->webhook_audience ? cfg->webhook_audience : cfg->client_id;
    out->app_id = cfg->webhook_app_id;
    out->authority_url = cfg->authority_url;
    out->jwks_url = cfg->jwks_url;
    out->skew_s = cfg->jwt_skew_s;
    out->http = http;
}

static int finish_new(const struct jwt_verifier_options *opt, struct jwt_verifier *v, struct jwt_verifier **out);

/* A zeroed verifier with its locks ready. */
static struct jwt_verifier *verifier_alloc(void)
{
    struct jwt_verifier *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    pthread_rwlock_init(&v->keys_lock, NULL);
    pthread_rwlock_init(&v->cache_lock, NULL);
    pthread_mutex_init(&v->fetch_lock, NULL);
    pthread_mutex_init(&v->stats_lock, NULL);
    return v;
}

/* ID token mode: the issuers depend on each token's tid, so only their bases are kept. */
static int id_verifier_new(const struct jwt_verifier_options *opt, struct jwt_verifier **out)
{
    struct jwt_verifier *v = verifier_alloc();
    if (!v)
        return SAASD_ENOMEM;
    v->id_token = 1;
    v->audience = strdup(opt->audience);
    v->api_audience = strdup(opt->audience);
    v->issuer_template = dup_or_null(opt->issuer_template);
    v->authority_base = dup_or_null(opt->authority_url);
    v->jwks_url = dup_or_null(opt->jwks_url);
    if (!v->audience || !v->api_audience || (opt->issuer_template && !v->issuer_template) ||
        (opt->authority_url && !v->authority_base) || (opt->jwks_url && !v->jwks_url)) {
        jwt_verifier_free(v);
        return SAASD_ENOMEM;
    }
    for (size_t n = v->authority_base ? strlen(v->authority_base) : 0; n && v->authority_base[n - 1] == '/';)
        v->authority_base[--n] = 0;
    return finish_new(opt, v, out);
}

int jwt_verifier_new(const struct jwt_verifier_options *opt, struct jwt_verifier **out)
{
    *out = NULL;
    if (!opt || !opt->audience || !*opt->audience)
        return SAASD_EINVAL;
    if (opt->id_token)
        return id_verifier_new(opt, out);
    if (!opt->tenant_id || !*opt->tenant_id)
        return SAASD_EINVAL;
    struct jwt_verifier *v = verifier_alloc();
    if (!v)
        return SAASD_ENOMEM;

    v->tenant_id = strdup(opt->tenant_id);
    v->audience = strdup(opt->audience);
    v->api_audience = format_alloc("api://", opt->audience, "");
    v->app_id = strdup(opt->app_id ? opt->app_id : MARKETPLACE_RESOURCE_ID);
    v->jwks_url = dup_or_null(opt->jwks_url);
    v->iss_v1 = format_alloc("https://sts.windows.net/", opt->tenant_id, "/");
    v->iss_v2 = format_alloc("https://login.microsoftonline.com/", opt->tenant_id, "/v2.0");
    if (opt->authority_url && *opt->authority_url) {
        char *base = strdup(opt->authority_url);
        if (base) {
            size_t n = strlen(base);
            while (n && base[n - 1] == '/')
                base[--n] = 0;
            v->iss_authority_v2 = format_alloc(base, "/", opt->tenant_id);
            v->iss_authority_v1 = v->iss_authority_v2 ? format_alloc(v->iss_authority_v2, "/", "") : NULL;
            if (v->iss_authority_v2) {
                char *t = format_alloc(v->iss_authority_v2, "/v2.0", "");
                free(v->iss_authority_v2);
                v->iss_authority_v2 = t;
            }
            free(base);
        }
        if (!v->iss_authority_v2 || !v->iss_authority_v1)
            goto nomem;
    }
    if (!v->tenant_id || !v->audience || !v->api_audience || !v->app_id || !v->iss_v1 || !v->iss_v2 ||
        (opt->jwks_url && !v->jwks_url))
        goto nomem;
    return finish_new(opt, v, out);
nomem:
    jwt_verifier_free(v);
    return SAASD_ENOMEM;
}

static int finish_new(const struct jwt_verifier_options *opt, struct jwt_verifier *v, struct jwt_verifier **out)
{
    v->skew_s = opt->skew_s < 0 ? 0 : opt->skew_s > 300 ? 300 : opt->skew_s;
    v->refetch_interval_ms = opt->refetch_interval_ms > 0 ? opt->refetch_interval_ms : 60000;
    v->keys_max_age_s = opt->keys_max_age_s > 0 ? opt->keys_max_age_s : 86400;
    v->max_token_len = opt->max_token_len ? opt->max_token_len : 8192;
    v->max_header_len = opt->max_header_len ? opt->max_header_len : 1024;
    v->http = opt->http;
    v->fetch = opt->fetch;
    v->fetch_arg = opt->fetch_arg;

    size_t slots = 1;
    while (slots < (opt->cache_slots ? opt->cache_slots : 4096))
        slots <<= 1;
    v->cache = calloc(slots, sizeof *v->cache);
    if (!v->cache)
        goto nomem;
    v->cache_mask = slots - 1;
    *out = v;
    return 0;
nomem:
    jwt_verifier_free(v);
    return SAASD_ENOMEM;
}

static void keys_clear(struct jwk_entry *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        EVP_PKEY_free(keys[i].key);
}

void jwt_verifier_free(struct jwt_verifier *v)
{
    if (!v)
        return;
    keys_clear(v->keys, v->nkeys);
    free(v->cache);
    free(v->tenant_id);
    free(v->audience);
    free(v->api_audience);
    free(v->app_id);
    free(v->jwks_url);
    free(v->iss_v1);
    free(v->iss_v2);
    free(v->iss_authority_v1);
    free(v->iss_authority_v2);
    free(v->issuer_template);
    free(v->authority_base);
    pthread_rwlock_destroy(&v->keys_lock);
    pthread_rwlock_destroy(&v->cache_lock);
    pthread_mutex_destroy(&v->fetch_lock);
    pthread_mutex_destroy(&v->stats_lock);
    free(v);
}

/* ---- keys ---- */

static int b64url_bn(const char *s, BIGNUM **out)
{
    uint8_t *bin = NULL;
    size_t len = 0;
    *out = NULL;
    if (!s || crypto_base64url_decode(s, strlen(s), &bin, &len) || len == 0) {
        free(bin);
        return SAASD_EINVAL;
    }
    *out = BN_bin2bn(bin, (int)len, NULL);
    free(bin);
    return *out ? 0 : SAASD_ENOMEM;
}

/* Public RSA key from JWK n/e (base64url big-endian). */
static int rsa_from_jwk(const char *n64, const char *e64, EVP_PKEY **out)
{
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int rc = b64url_bn(n64, &n);
    if (!rc)
        rc = b64url_bn(e64, &e);
    if (rc)
        goto fail;
    rc = SAASD_EINVAL;
    if (BN_num_bits(n) < 2048 || BN_num_bits(n) > 8192)
        goto fail; /* too weak to trust, or absurd */
    rc = SAASD_EINTERNAL;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto fail;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto fail;
    rc = 0;
fail:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return rc;
}

/* Parse a JWKS document into keys[]; returns the count (0 = nothing usable). */
static size_t parse_jwks(const json_t *doc, struct jwk_entry *keys)
{
    size_t n = 0;
    json_t *arr = jl_get(doc, "keys");
    size_t i;
    json_t *k;
    if (!json_is_array(arr))
        return 0;
    json_array_foreach(arr, i, k) {
        if (n == JWT_MAX_KEYS)
            break;
        char kid[128], kty[16], use[16], alg[16];
        if (jl_string(k, "kid", kid, sizeof kid) || jl_string(k, "kty", kty, sizeof kty) || strcmp(kty, "RSA"))
            continue;
        if (!jl_string(k, "use", use, sizeof use) && strcmp(use, "sig"))
            continue;
        if (!jl_string(k, "alg", alg, sizeof alg) && strcmp(alg, "RS256"))
            continue;
        json_t *jn = jl_get(k, "n"), *je = jl_get(k, "e");
        EVP_PKEY *key = NULL;
        if (!json_is_string(jn) || !json_is_string(je) ||
            rsa_from_jwk(json_string_value(jn), json_string_value(je), &key))
            continue;
        snprintf(keys[n].kid, sizeof keys[n].kid, "%s", kid);
        keys[n].key = key;
        n++;
    }
    return n;
}

static int install_jwks(struct jwt_verifier *v, const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    if (!doc)
        return SAASD_EINVAL;
    struct jwk_entry fresh[JWT_MAX_KEYS];
    size_t n = parse_jwks(doc, fresh);
    json_decref(doc);
    if (n == 0)
        return SAASD_EINVAL;
    struct jwk_entry old[JWT_MAX_KEYS];
    pthread_rwlock_wrlock(&v->keys_lock);
    size_t nold = v->nkeys;
    memcpy(old, v->keys, nold * sizeof old[0]);
    memcpy(v->keys, fresh, n * sizeof fresh[0]);
    v->nkeys = n;
    v->keys_loaded_mono = mono_ms();
    pthread_rwlock_unlock(&v->keys_lock);
    keys_clear(old, nold); /* verifiers still using one hold their own reference */
    pthread_mutex_lock(&v->stats_lock);
    v->stats.keys_last_ok = time(NULL);
    v->stats.keys_loaded = n;
    pthread_mutex_unlock(&v->stats_lock);
    return 0;
}

int jwt_verifier_set_jwks(struct jwt_verifier *v, const char *jwks_json)
{
    if (!v || !jwks_json)
        return SAASD_EINVAL;
    int rc = install_jwks(v, jwks_json);
    if (!rc) {
        pthread_mutex_lock(&v->fetch_lock);
        v->last_fetch_mono = mono_ms();
        pthread_mutex_unlock(&v->fetch_lock);
    }
    return rc;
}

void jwt_verifier_set_refetch_interval(struct jwt_verifier *v, long ms)
{
    pthread_mutex_lock(&v->fetch_lock);
    v->refetch_interval_ms = ms > 0 ? ms : 1;
    pthread_mutex_unlock(&v->fetch_lock);
}

/* A referenced key for kid (caller EVP_PKEY_free()s), or NULL. *stale set when the set is old. */
static EVP_PKEY *key_lookup(struct jwt_verifier *v, const char *kid, int *stale)
{
    EVP_PKEY *found = NULL;
    pthread_rwlock_rdlock(&v->keys_lock);
    for (size_t i = 0; i < v->nkeys; i++) {
        if (!strcmp(v->keys[i].kid, kid)) {
            if (EVP_PKEY_up_ref(v->keys[i].key) == 1)
                found = v->keys[i].key;
            break;
        }
    }
    if (stale)
        *stale = v->keys_loaded_mono == 0 || mono_ms() - v->keys_loaded_mono > v->keys_max_age_s * 1000;
    pthread_rwlock_unlock(&v->keys_lock);
    return found;
}

static int http_fetch(struct jwt_verifier *v, const char *url, char **out)
{
    *out = NULL;
    if (v->fetch)
        return v->fetch(v->fetch_arg, url, out);
    if (!v->http)
        return SAASD_EINVAL;
    struct http_header h[] = {{"Accept", "application/json"}};
    struct http_request req = {.method = "GET", .url = url, .headers = h, .nheaders = 1};
    struct http_response res;
    int rc = http_client_do(v->http, &req, &res);
    if (!rc && res.status != 200)
        rc = SAASD_EHTTP;
    if (!rc) {
        *out = res.body;
        res.body = NULL;
    }
    http_response_free(&res);
    return rc;
}

/* Fetch the key set (following OpenID metadata's jwks_uri once). Caller holds fetch_lock. */
static int fetch_keys(struct jwt_verifier *v)
{
    char *text = NULL;
    int rc;
    if (!v->jwks_url)
        return SAASD_ENOTFOUND;
    stat_add(v, &v->stats.key_fetches);
    rc = http_fetch(v, v->jwks_url, &text);
    if (!rc) {
        json_t *doc = json_loads(text, 0, NULL);
        char uri[1024];
        if (doc && !jl_get(doc, "keys") && !jl_string(doc, "jwks_uri", uri, sizeof uri)) {
            free(text);
            text = NULL;
            rc = http_fetch(v, uri, &text);
        }
        json_decref(doc);
    }
    if (!rc)
        rc = install_jwks(v, text);
    free(text);
    if (rc) {
        stat_add(v, &v->stats.key_fetch_failures);
        log_warn("jwt", "could not load the webhook signing keys", "url", v->jwks_url, "error", saasd_strerror(rc));
    } else {
        log_info("jwt", "webhook signing keys loaded", "url", v->jwks_url);
    }
    return rc;
}

/* The key for kid, fetching the key set when it is unknown or stale and the rate limit allows.
 * Returns 0 with a referenced *out, or JWT_EUNKNOWNKID / JWT_EKEYS. */
static int key_for(struct jwt_verifier *v, const char *kid, EVP_PKEY **out)
{
    int stale = 0;
    *out = key_lookup(v, kid, &stale);
    if (*out && !stale)
        return 0;
    pthread_mutex_lock(&v->fetch_lock);
    EVP_PKEY *again = key_lookup(v, kid, &stale); /* another thread may have fetched meanwhile */
    if (again && !stale) {
        EVP_PKEY_free(*out);
        *out = again;
        pthread_mutex_unlock(&v->fetch_lock);
        return 0;
    }
    EVP_PKEY_free(again);
    long long now = mono_ms();
    int fetch_rc = SAASD_ERETRY;
    if (v->last_fetch_mono == 0 || now - v->last_fetch_mono >= v->refetch_interval_ms) {
        v->last_fetch_mono = now;
        fetch_rc = fetch_keys(v);
    } else if (!*out) {
        stat_add(v, &v->stats.key_fetches_limited);
    }
    pthread_mutex_unlock(&v->fetch_lock);
    if (fetch_rc == 0) {
        EVP_PKEY_free(*out);
        *out = key_lookup(v, kid, NULL);
    }
    if (*out)
        return 0; /* a stale set that still has the kid keeps working when a refresh fails */
    pthread_rwlock_rdlock(&v->keys_lock);
    size_t nkeys = v->nkeys;
    pthread_rwlock_unlock(&v->keys_lock);
    return nkeys == 0 && fetch_rc != 0 ? JWT_EKEYS : JWT_EUNKNOWNKID;
}

/* ---- verified-token cache ---- */

static size_t slot_index(const struct jwt_verifier *v, const uint8_t *hash, size_t probe)
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return (size_t)(h + probe) & v->cache_mask;
}

static int cache_lookup(struct jwt_verifier *v, const uint8_t *hash, long long now, struct jwt_claims *out)
{
    int hit = 0;
    pthread_rwlock_rdlock(&v->cache_lock);
    for (size_t p = 0; p < CACHE_PROBE; p++) {
        const struct vcache_slot *s = &v->cache[slot_index(v, hash, p)];
        if (s->exp && !memcmp(s->hash, hash, CRYPTO_SHA256_LEN)) {
            if (now < s->exp + v->skew_s) {
                if (out)
                    *out = s->claims;
                hit = 1;
            }
            break;
        }
    }
    pthread_rwlock_unlock(&v->cache_lock);
    return hit;
}

static void cache_store(struct jwt_verifier *v, const uint8_t *hash, long long now, const struct jwt_claims *c)
{
    pthread_rwlock_wrlock(&v->cache_lock);
    struct vcache_slot *victim = NULL;
    for (size_t p = 0; p < CACHE_PROBE; p++) {
        struct vcache_slot *s = &v->cache[slot_index(v, hash, p)];
        if (!s->exp || now >= s->exp + v->skew_s || !memcmp(s->hash, hash, CRYPTO_SHA256_LEN)) {
            victim = s;
            break;
        }
        if (!victim || s->exp < victim->exp)
            victim = s; /* full: evict the one that expires first */
    }
    memcpy(victim->hash, hash, CRYPTO_SHA256_LEN);
    victim->exp = c->exp;
    victim->claims = *c;
    pthread_rwlock_unlock(&v->cache_lock);
}

void jwt_verifier_flush_cache(struct jwt_verifier *v)
{
    pthread_rwlock_wrlock(&v->cache_lock);
    memset(v->cache, 0, (v->cache_mask + 1) * sizeof *v->cache);
    pthread_rwlock_unlock(&v->cache_lock);
}

void jwt_verifier_stats(struct jwt_verifier *v, struct jwt_stats *out)
{
    pthread_mutex_lock(&v->stats_lock);
    *out = v->stats;
    pthread_mutex_unlock(&v->stats_lock);
}

/* ---- verification ---- */

static int is_b64url_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static json_t *decode_json_segment(const char *seg, size_t len)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (crypto_base64url_decode(seg, len, &raw, &raw_len))
        return NULL;
    json_t *j = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static void copy_claim(const json_t *claims, const char *name, char *buf, size_t size)
{
    json_t *c = json_object_get(claims, name);
    snprintf(buf, size, "%s", json_is_string(c) ? json_string_value(c) : "");
}

/* Latest NumericDate taken seriously: 9999-12-31T23:59:59Z. Microsoft's tokens live an hour;
 * anything outside 0..this is forged or broken. The bound keeps the double to long long
 * conversion defined (1e300 or NaN would be undefined behaviour) and exp + skew far from
 * overflow, here and in the verified-token cache. */
#define NUMERIC_DATE_MAX 253402300799LL

/* Numeric claim (NumericDate, fractional seconds truncated); 0 and *present=0 when absent.
 * SAASD_EINVAL when not a number, negative, or beyond NUMERIC_DATE_MAX. */
static int numeric_claim(const json_t *claims, const char *name, long long *out, int *present)
{
    json_t *c = json_object_get(claims, name);
    *out = 0;
    *present = c != NULL;
    if (!c)
        return 0;
    if (json_is_integer(c)) {
        json_int_t x = json_integer_value(c);
        if (x < 0 || x > NUMERIC_DATE_MAX)
            return SAASD_EINVAL;
        *out = x;
        return 0;
    }
    double d = json_is_real(c) ? json_real_value(c) : -1.0;
    if (!(d >= 0.0 && d <= (double)NUMERIC_DATE_MAX)) /* also false for NaN */
        return SAASD_EINVAL;
    *out = (long long)d;
    return 0;
}

/* Every time claim is read and range-checked before any is compared with the clock. */
static int time_claims(const json_t *claims, struct jwt_claims *c, int *has_exp, int *has_nbf,
                       int *has_iat)
{
    const struct {
        const char *name;
        long long *out;
        int *present;
    } table[] = {{"exp", &c->exp, has_exp}, {"nbf", &c->nbf, has_nbf}, {"iat", &c->iat, has_iat}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (numeric_claim(claims, table[i].name, table[i].out, table[i].present))
            return JWT_ETIMECLAIM;
    return 0;
}

static int string_claim_is(const json_t *claims, const char *name, const char *want)
{
    json_t *c = json_object_get(claims, name);
    return json_is_string(c) && !strcasecmp(json_string_value(c), want);
}

static int check_signature(EVP_PKEY *key, const char *signed_part, size_t signed_len, const char *sig64,
                           size_t sig64_len)
{
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if (crypto_base64url_decode(sig64, sig64_len, &sig, &sig_len))
        return JWT_EMALFORMED;
    int rc = JWT_EINTERNAL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1) {
        int ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)signed_part, signed_len);
        rc = ok == 1 ? 0 : JWT_ESIGNATURE;
    }
    EVP_MD_CTX_free(md);
    free(sig);
    return rc;
}

/* exp (required), nbf and iat against now with the verifier's skew. */
static int check_times(struct jwt_verifier *v, const json_t *claims, long long now, struct jwt_claims *c)
{
    int has_exp, has_nbf, has_iat;
    int rc = time_claims(claims, c, &has_exp, &has_nbf, &has_iat);
    if (rc)
        return rc;
    if (!has_exp || now >= c->exp + v->skew_s)
        return JWT_EEXPIRED;
    if (has_nbf && c->nbf > now + v->skew_s)
        return JWT_ENOTYET;
    if (v->id_token && (!has_iat || c->iat > now + v->skew_s))
        return JWT_ENOTYET;
    return 0;
}

/* A tenant id fit to be put into an issuer URL: hex digits and dashes only. */
static int tid_ok(const char *tid)
{
    size_t n = strlen(tid);
    if (n < 8 || n > 40)
        return 0;
    for (const char *p = tid; *p; p++)
        if (!(isxdigit((unsigned char)*p) || *p == '-'))
            return 0;
    return 1;
}

/* Multitenant ID token: iss must be the v2 issuer of the token's own tid, in one of the forms
 * the authority may use; the tid then says which organisation the buyer signed in with. */
static int id_issuer_ok(const struct jwt_verifier *v, const char *iss, const char *tid)
{
    char want[512];
    const char *tpl = v->issuer_template;
    const char *hole = tpl ? strstr(tpl, "{tenantid}") : NULL;
    if (hole) {
        snprintf(want, sizeof want, "%.*s%s%s", (int)(hole - tpl), tpl, tid, hole + strlen("{tenantid}"));
        if (!strcmp(iss, want))
            return 1;
    } else if (tpl && !strcmp(iss, tpl)) {
        return 1; /* tenant-specific metadata: one issuer */
    }
    if (v->authority_base) {
        snprintf(want, sizeof want, "%s/%s/v2.0", v->authority_base, tid);
        if (!strcmp(iss, want))
            return 1;
    }
    snprintf(want, sizeof want, "https://login.microsoftonline.com/%s/v2.0", tid);
    return !strcmp(iss, want);
}

static int check_id_claims(struct jwt_verifier *v, const json_t *claims, long long now, struct jwt_claims *c)
{
    json_t *jtid = json_object_get(claims, "tid"), *jiss = json_object_get(claims, "iss");
    if (!json_is_string(jtid) || !tid_ok(json_string_value(jtid)))
        return JWT_ETENANT;
    if (!json_is_string(jiss) || !id_issuer_ok(v, json_string_value(jiss), json_string_value(jtid)))
        return JWT_EISSUER;
    json_t *aud = json_object_get(claims, "aud");
    int aud_ok = json_is_string(aud) && !strcmp(json_string_value(aud), v->audience);
    size_t i;
    json_t *a;
    if (json_is_array(aud))
        json_array_foreach(aud, i, a) aud_ok |= json_is_string(a) && !strcmp(json_string_value(a), v->audience);
    if (!aud_ok)
        return JWT_EAUDIENCE;
    int rc = check_times(v, claims, now, c);
    if (rc)
        return rc;
    snprintf(c->iss, sizeof c->iss, "%s", json_string_value(jiss));
    snprintf(c->aud, sizeof c->aud, "%s", v->audience);
    copy_claim(claims, "tid", c->tid, sizeof c->tid);
    copy_claim(claims, "oid", c->oid, sizeof c->oid);
    copy_claim(claims, "sub", c->sub, sizeof c->sub);
    copy_claim(claims, "ver", c->ver, sizeof c->ver);
    return 0;
}

static int check_claims(struct jwt_verifier *v, const json_t *claims, long long now, struct jwt_claims *c)
{
    if (v->id_token)
        return check_id_claims(v, claims, now, c);
    if (!v->tenant_id)
        return JWT_ETENANT;
    /* issuer: v1 or v2 form for the configured tenant */
    json_t *iss = json_object_get(claims, "iss");
    const char *is = json_is_string(iss) ? json_string_value(iss) : "";
    if (strcasecmp(is, v->iss_v1) && strcasecmp(is, v->iss_v2) &&
        !(v->iss_authority_v2 && (!strcasecmp(is, v->iss_authority_v2) || !strcasecmp(is, v->iss_authority_v1))))
        return JWT_EISSUER;

    /* audience: a string or an array; our app id or api://<app id> */
    json_t *aud = json_object_get(claims, "aud");
    const char *matched = NULL;
    if (json_is_string(aud)) {
        const char *a = json_string_value(aud);
        if (!strcasecmp(a, v->audience) || !strcasecmp(a, v->api_audience))
            matched = a;
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *a;
        json_array_foreach(aud, i, a) {
            if (json_is_string(a) && (!strcasecmp(json_string_value(a), v->audience) ||
                                      !strcasecmp(json_string_value(a), v->api_audience))) {
                matched = json_string_value(a);
                break;
            }
        }
    }
    if (!matched)
        return JWT_EAUDIENCE;

    if (!string_claim_is(claims, "tid", v->tenant_id))
        return JWT_ETENANT;

    /* calling app: azp (v2) or appid (v1); every one present must match, at least one must be */
    json_t *azp = json_object_get(claims, "azp"), *appid = json_object_get(claims, "appid");
    if ((!azp && !appid) || (azp && !string_claim_is(claims, "azp", v->app_id)) ||
        (appid && !string_claim_is(claims, "appid", v->app_id)))
        return JWT_ECALLER;

    int rc = check_times(v, claims, now, c);
    if (rc)
        return rc;

    snprintf(c->iss, sizeof c->iss, "%s", is);
    snprintf(c->aud, sizeof c->aud, "%s", matched);
    copy_claim(claims, "tid", c->tid, sizeof c->tid);
    copy_claim(claims, azp ? "azp" : "appid", c->caller, sizeof c->caller);
    copy_claim(claims, "oid", c->oid, sizeof c->oid);
    copy_claim(claims, "sub", c->sub, sizeof c->sub);
    copy_claim(claims, "ver", c->ver, sizeof c->ver);
    return 0;
}

static int refuse(struct jwt_verifier *v, int reason)
{
    stat_add(v, &v->stats.refused);
    return reason;
}

int jwt_verify_cached(struct jwt_verifier *v, const char *token, size_t len, struct jwt_claims *out)
{
    uint8_t hash[CRYPTO_SHA256_LEN];
    if (!v || !token || len > v->max_token_len || crypto_sha256(token, len, hash))
        return JWT_ENOTCACHED;
    if (!cache_lookup(v, hash, (long long)time(NULL), out))
        return JWT_ENOTCACHED;
    if (out)
        out->from_cache = 1;
    stat_add(v, &v->stats.cache_hits);
    return 0;
}

/* Full verification (no cache). *payload_out, when not NULL, receives the claims object. */
static int verify_full(struct jwt_verifier *v, const char *token, size_t len, long long now, struct jwt_claims *out,
                       json_t **payload_out)
{
    struct jwt_claims c;
    json_t *header = NULL, *claims = NULL;
    EVP_PKEY *key = NULL;
    int rc;

    memset(&c, 0, sizeof c);
    /* shape: three base64url segments, nothing else (no padding, no blanks) */
    const char *dot1 = NULL, *dot2 = NULL;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (!dot1)
                dot1 = token + i;
            else if (!dot2)
                dot2 = token + i;
            else
                return refuse(v, JWT_EMALFORMED);
        } else if (!is_b64url_char((unsigned char)token[i])) {
            return refuse(v, JWT_EMALFORMED);
        }
    }
    /* an empty signature is let through here so alg:none is named bad_alg below */
    if (!dot1 || !dot2 || dot1 == token || dot2 == dot1 + 1)
        return refuse(v, JWT_EMALFORMED);
    size_t header_len = (size_t)(dot1 - token);
    if (header_len > v->max_header_len)
        return refuse(v, JWT_ETOOBIG);

    header = decode_json_segment(token, header_len);
    if (!header) {
        rc = JWT_EMALFORMED;
        goto fail;
    }
    json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "RS256")) {
        rc = JWT_EALG;
        goto fail;
    }
    if (json_object_get(header, "crit")) {
        rc = JWT_EMALFORMED; /* no extension is understood here, so none may be critical */
        goto fail;
    }
    json_t *kid = json_object_get(header, "kid");
    if (!json_is_string(kid) || !*json_string_value(kid) || strlen(json_string_value(kid)) >= sizeof c.kid) {
        rc = JWT_ENOKID;
        goto fail;
    }
    snprintf(c.kid, sizeof c.kid, "%s", json_string_value(kid));
    claims = decode_json_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!claims) {
        rc = JWT_EMALFORMED;
        goto fail;
    }
    rc = key_for(v, c.kid, &key);
    if (rc)
        goto fail;
    rc = check_signature(key, token, (size_t)(dot2 - token), dot2 + 1, (size_t)(token + len - dot2 - 1));
    if (rc)
        goto fail;
    rc = check_claims(v, claims, now, &c);
    if (rc)
        goto fail;
    stat_add(v, &v->stats.verified);
    if (out)
        *out = c;
    if (payload_out) {
        *payload_out = claims;
        claims = NULL;
    }
fail:
    EVP_PKEY_free(key);
    json_decref(header);
    json_decref(claims);
    if (rc)
        refuse(v, rc);
    return rc;
}

int jwt_verify(struct jwt_verifier *v, const char *token, size_t len, struct jwt_claims *out)
{
    uint8_t hash[CRYPTO_SHA256_LEN];
    if (!v || !token)
        return JWT_EMALFORMED;
    if (len > v->max_token_len)
        return refuse(v, JWT_ETOOBIG);
    long long now = (long long)time(NULL);
    if (crypto_sha256(token, len, hash))
        return refuse(v, JWT_EINTERNAL);
    if (cache_lookup(v, hash, now, out)) {
        if (out)
            out->from_cache = 1;
        stat_add(v, &v->stats.cache_hits);
        return 0;
    }
    struct jwt_claims c;
    int rc = verify_full(v, token, len, now, &c, NULL);
    if (rc)
        return rc;
    cache_store(v, hash, now, &c);
    if (out)
        *out = c;
    return 0;
}

int jwt_verify_payload(struct jwt_verifier *v, const char *token, size_t len, struct jwt_claims *out,
                       json_t **payload)
{
    *payload = NULL;
    if (!v || !token)
        return JWT_EMALFORMED;
    if (len > v->max_token_len)
        return refuse(v, JWT_ETOOBIG);
    return verify_full(v, token, len, (long long)time(NULL), out, payload);
}
