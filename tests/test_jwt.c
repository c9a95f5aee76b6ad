/* Webhook JWT verification: a table of forged tokens, each refused with its reason; valid v1
 * and v2 tokens accepted; the verified-token cache; key rotation and the refetch rate limit. */
#include "check.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/jwt.h"
#include "core/jwt_sign.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define APP "0c1e5b7a-6d2f-4a44-9c1b-3a5c2e1f0a99"

static EVP_PKEY *key1, *key2, *rogue;

/* A fake JWKS endpoint: serves whatever document is current, counts calls. */
struct fake_keys {
    pthread_mutex_t mu;
    char *doc;      /* JWKS text served at the JWKS URL */
    char *metadata; /* OpenID metadata served at a URL ending in openid-configuration */
    int calls;
    int fail;
};

static int fake_fetch(void *arg, const char *url, char **out)
{
    struct fake_keys *f = arg;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    int fail = f->fail;
    const char *text = strstr(url, "openid-configuration") ? f->metadata : f->doc;
    *out = fail || !text ? NULL : strdup(text);
    pthread_mutex_unlock(&f->mu);
    return fail || !text ? -5 : 0;
}

static void fake_serve(struct fake_keys *f, EVP_PKEY *a, const char *kida, EVP_PKEY *b, const char *kidb)
{
    EVP_PKEY *keys[2] = {a, b};
    const char *kids[2] = {kida, kidb};
    char *doc = NULL;
    if (jwt_jwks_json(keys, kids, b ? 2 : 1, &doc))
        abort();
    pthread_mutex_lock(&f->mu);
    free(f->doc);
    f->doc = doc;
    pthread_mutex_unlock(&f->mu);
}

/* Claims of a valid v2 webhook token, to be altered per case. */
static json_t *v2_claims(void)
{
    long long now = (long long)time(NULL);
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "aud", APP, "iss",
                     "https://login.microsoftonline.com/" TENANT "/v2.0", "iat", now - 60, "nbf", now - 60, "exp",
                     now + 3600, "azp", MARKETPLACE_RESOURCE_ID, "azpacr", "2", "oid",
                     "3b7e8f1a-0000-4000-8000-000000000001", "sub", "3b7e8f1a-0000-4000-8000-000000000001", "tid",
                     TENANT, "ver", "2.0");
}

static json_t *v1_claims(void)
{
    json_t *c = v2_claims();
    json_object_del(c, "azp");
    json_object_del(c, "azpacr");
    json_object_set_new(c, "appid", json_string(MARKETPLACE_RESOURCE_ID));
    json_object_set_new(c, "iss", json_string("https://sts.windows.net/" TENANT "/"));
    json_object_set_new(c, "ver", json_string("1.0"));
    return c;
}

static char *sign_claims(EVP_PKEY *key, const char *kid, json_t *claims)
{
    char *text = json_dumps(claims, JSON_COMPACT);
    char *tok = NULL;
    if (!text || jwt_sign_rs256(key, kid, text, &tok))
        abort();
    free(text);
    json_decref(claims);
    return tok;
}

static char *sign_header(EVP_PKEY *key, const char *header, json_t *claims)
{
    char *text = json_dumps(claims, JSON_COMPACT);
    char *tok = NULL;
    if (!text || jwt_sign_rs256_header(key, header, text, &tok))
        abort();
    free(text);
    json_decref(claims);
    return tok;
}

static char *b64url(const char *s, size_t n)
{
    char *o = NULL;
    if (crypto_base64url_encode(s, n, &o))
        abort();
    return o;
}

/* Unsigned token: header.claims. (alg none), or HS256 keyed with the public key PEM. */
static char *forge(const char *header, json_t *claims, const void *hmac_key, size_t hmac_key_len)
{
    char *ctext = json_dumps(claims, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(claims);
    char *h = b64url(header, strlen(header)), *c = b64url(ctext, strlen(ctext));
    size_t n = strlen(h) + strlen(c) + 200;
    char *tok = malloc(n);
    snprintf(tok, n, "%s.%s.", h, c);
    if (hmac_key) {
        uint8_t mac[CRYPTO_SHA256_LEN];
        crypto_hmac_sha256(hmac_key, hmac_key_len, tok, strlen(tok) - 1, mac);
        char *m = b64url((const char *)mac, sizeof mac);
        strcat(tok, m);
        free(m);
    }
    free(ctext);
    free(h);
    free(c);
    return tok;
}

static char *public_pem(EVP_PKEY *key, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, key);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *copy = malloc((size_t)n + 1);
    memcpy(copy, data, (size_t)n);
    copy[n] = 0;
    BIO_free(b);
    *len = (size_t)n;
    return copy;
}

static json_t *with(json_t *c, const char *name, json_t *value)
{
    if (value)
        json_object_set_new(c, name, value);
    else
        json_object_del(c, name);
    return c;
}

/* A valid v2 token whose claim `name` is the JSON text raw, verbatim (values jansson itself
 * would not write, such as 1e999). */
static char *sign_raw_claim(EVP_PKEY *key, const char *name, const char *raw)
{
    json_t *c = with(v2_claims(), name, NULL);
    char *text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    size_t n = strlen(text) + strlen(name) + strlen(raw) + 8;
    char *full = malloc(n);
    text[strlen(text) - 1] = 0; /* drop the closing brace */
    snprintf(full, n, "%s,\"%s\":%s}", text, name, raw);
    char *tok = NULL;
    if (jwt_sign_rs256(key, "kid-1", full, &tok))
        abort();
    free(text);
    free(full);
    return tok;
}

static int verify(struct jwt_verifier *v, const char *tok, struct jwt_claims *c)
{
    return jwt_verify(v, tok, strlen(tok), c);
}

/* verify() for a token made inline: frees it. */
static int verify_once(struct jwt_verifier *v, char *tok, struct jwt_claims *c)
{
    int rc = verify(v, tok, c);
    free(tok);
    return rc;
}

struct case_row {
    const char *name;
    char *token;
    int want;
};

struct hammer_arg {
    struct jwt_verifier *v;
    char **tokens;
    int ok;
};

static void *hammer(void *p)
{
    struct hammer_arg *a = p;
    for (int i = 0; i < 2000; i++)
        if (verify(a->v, a->tokens[i % 3], NULL) == 0)
            a->ok++;
    return NULL;
}

/* Multitenant ID tokens (the landing page's buyer sign-in): the issuer follows the token's tid. */
#define BUYER_TID "44444444-4444-4444-8444-444444444444"

static json_t *id_claims(void)
{
    long long now = (long long)time(NULL);
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "aud", APP, "iss",
                     "https://login.microsoftonline.com/" BUYER_TID "/v2.0", "iat", now, "nbf", now, "exp", now + 3600,
                     "tid", BUYER_TID, "oid", "aaaaaaaa-0001-4000-8000-000000000001", "nonce", "n-1", "name", "Alex",
                     "ver", "2.0");
}

static int verify_id(struct jwt_verifier *v, char *tok, json_t **payload)
{
    json_t *p = NULL;
    int rc = jwt_verify_payload(v, tok, strlen(tok), NULL, &p);
    free(tok);
    if (payload)
        *payload = p;
    else
        json_decref(p);
    return rc;
}

static void id_tokens(void)
{
    struct fake_keys keys = {.mu = PTHREAD_MUTEX_INITIALIZER}, *fk = &keys;
    fake_serve(fk, key1, "kid-1", NULL, NULL);
    struct jwt_verifier_options opt = {
        .id_token = 1, .audience = APP, .issuer_template = "https://login.microsoftonline.com/{tenantid}/v2.0",
        .authority_url = "http://127.0.0.1:7070/", .jwks_url = "http://127.0.0.1:1/common/discovery/v2.0/keys",
        .skew_s = 300, .fetch = fake_fetch, .fetch_arg = fk,
    };
    struct jwt_verifier *v = NULL;
    CHECK(jwt_verifier_new(&opt, &v) == 0, "an ID token verifier needs no tenant: it serves buyers of every tenant");
    json_t *p = NULL;
    CHECK(verify_id(v, sign_claims(key1, "kid-1", id_claims()), &p) == 0 &&
              !strcmp(json_string_value(json_object_get(p, "nonce")), "n-1"),
          "a buyer's ID token from any tenant verifies, and its payload (nonce, name) is handed back");
    json_decref(p);
    CHECK(verify_id(v, sign_claims(key1, "kid-1", with(id_claims(), "iss",
                                                      json_string("http://127.0.0.1:7070/" BUYER_TID "/v2.0"))), NULL) == 0,
          "the issuer <authority>/<tid>/v2.0 is accepted too");
    static const struct {
        const char *name, *claim, *value;
        int want;
    } bad[] = {
        {"an ID token whose issuer names another tenant than its tid is refused: wrong_issuer", "iss",
         "https://login.microsoftonline.com/55555555-5555-4555-8555-555555555555/v2.0", JWT_EISSUER},
        {"an ID token from a foreign issuer host is refused: wrong_issuer", "iss",
         "https://evil.example/" BUYER_TID "/v2.0", JWT_EISSUER},
        {"an ID token with the issuer template left unfilled is refused", "iss",
         "https://login.microsoftonline.com/{tenantid}/v2.0", JWT_EISSUER},
        {"an ID token whose tid is not a tenant id is refused: wrong_tenant", "tid", "../evil", JWT_ETENANT},
        {"an ID token for another app is refused: wrong_audience", "aud", "api://" APP, JWT_EAUDIENCE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(verify_id(v, sign_claims(key1, "kid-1", with(id_claims(), bad[i].claim, json_string(bad[i].value))), NULL) ==
                  bad[i].want,
              bad[i].name);
    long long now = (long long)time(NULL);
    CHECK(verify_id(v, sign_claims(key1, "kid-1", with(id_claims(), "exp", json_integer(now - 301))), NULL) == JWT_EEXPIRED,
          "an expired ID token is refused beyond the skew");
    CHECK(verify_id(v, sign_claims(key1, "kid-1", with(id_claims(), "iat", json_integer(now + 900))), NULL) == JWT_ENOTYET &&
              verify_id(v, sign_claims(key1, "kid-1", with(id_claims(), "iat", NULL)), NULL) == JWT_ENOTYET,
          "an ID token issued in the future, or without iat, is refused");
    CHECK(verify_id(v, sign_claims(rogue, "kid-1", id_claims()), NULL) == JWT_ESIGNATURE,
          "an ID token signed by another key is refused: bad_signature");
    char *tok = sign_claims(key1, "kid-1", id_claims());
    CHECK(jwt_verify_payload(v, tok, strlen(tok), NULL, &p) == 0 && (json_decref(p), 1) &&
              jwt_verify_cached(v, tok, strlen(tok), NULL) == JWT_ENOTCACHED,
          "ID tokens are never kept in the verified-token cache (each is used once)");
    free(tok);
    jwt_verifier_free(v);
    free(keys.doc);
}

int main(void)
{
    if (jwt_rsa_generate(2048, &key1) || jwt_rsa_generate(2048, &key2) || jwt_rsa_generate(2048, &rogue))
        abort();
    id_tokens();
    struct fake_keys fk = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fake_serve(&fk, key1, "kid-1", NULL, NULL);

    struct jwt_verifier_options opt = {
        .tenant_id = TENANT, .audience = APP, .jwks_url = "http://127.0.0.1:1/" TENANT "/discovery/v2.0/keys",
        .skew_s = 300, .refetch_interval_ms = 60000, .fetch = fake_fetch, .fetch_arg = &fk,
    };
    struct jwt_verifier *v = NULL;
    CHECK(jwt_verifier_new(&opt, &v) == 0, "a verifier is created from tenant, audience and a JWKS url");

    struct jwt_claims c;
    char *good_v2 = sign_claims(key1, "kid-1", v2_claims());
    int rc = verify(v, good_v2, &c);
    CHECK(rc == 0, "a valid v2 webhook token (azp, login.microsoftonline.com issuer) is accepted");
    CHECK(rc == 0 && !strcmp(c.tid, TENANT) && !strcmp(c.caller, MARKETPLACE_RESOURCE_ID) && !strcmp(c.kid, "kid-1") &&
              !strcmp(c.ver, "2.0") && c.exp > 0 && !c.from_cache,
          "the accepted token's tid, azp, kid, ver and exp are reported");
    CHECK(fk.calls == 1, "the key set is fetched lazily, once, on first use");

    char *good_v1 = sign_claims(key1, "kid-1", v1_claims());
    rc = verify(v, good_v1, &c);
    CHECK(rc == 0 && !strcmp(c.caller, MARKETPLACE_RESOURCE_ID) && !strcmp(c.ver, "1.0"),
          "a valid v1 webhook token (appid, sts.windows.net issuer) is accepted");
    CHECK(verify_once(v, sign_claims(key1, "kid-1", with(v2_claims(), "aud", json_string("api://" APP))), NULL) == 0,
          "an audience of api://<app id> is accepted");
    CHECK(verify_once(v, sign_claims(key1, "kid-1", with(v2_claims(), "aud", json_pack("[s,s]", "other", APP))), NULL) == 0,
          "an audience array containing our app id is accepted");
    CHECK(verify_once(v, sign_claims(key1, "kid-1", with(v2_claims(), "exp", json_integer(time(NULL) - 60))), NULL) == 0,
          "a token expired 60 s ago is still inside the 300 s skew");

    /* ---- the forgery table ---- */
    long long now = (long long)time(NULL);
    size_t pem_len;
    char *pem = public_pem(key1, &pem_len);
    char *jwk = NULL;
    jwt_jwk_json(key1, "kid-1", &jwk);

    char *truncated = strdup(good_v2);
    truncated[strrchr(truncated, '.') - truncated] = 0; /* header.claims only */
    char *cut_sig = strdup(good_v2);
    cut_sig[strlen(cut_sig) - 40] = 0;
    char *bad_b64 = strdup(good_v2);
    bad_b64[5] = '*';
    char *std_b64 = strdup(good_v2);
    std_b64[strchr(std_b64, '.') - std_b64 + 3] = '+';
    char *flipped = strdup(good_v2);
    char *sig = strrchr(flipped, '.') + 10;
    *sig = *sig == 'A' ? 'B' : 'A';
    char *oversized = malloc(9000);
    memset(oversized, 'A', 8999);
    oversized[8999] = 0;
    oversized[100] = '.';
    oversized[4000] = '.';
    char big_header[1400];
    snprintf(big_header, sizeof big_header, "{\"alg\":\"RS256\",\"kid\":\"kid-1\",\"pad\":\"%01100d\"}", 0);
    char *four = malloc(strlen(good_v2) + 8);
    sprintf(four, "%s.AAAA", good_v2);
    char *not_json = forge("{\"alg\":\"RS256\",\"kid\":\"kid-1\"}", json_string("x"), NULL, 0);

    struct case_row rows[] = {
        {"a token signed by another key under our kid is refused: bad_signature",
         sign_claims(rogue, "kid-1", v2_claims()), JWT_ESIGNATURE},
        {"a token whose signature was altered is refused: bad_signature", flipped, JWT_ESIGNATURE},
        {"alg:none is refused: bad_alg", forge("{\"alg\":\"none\",\"kid\":\"kid-1\"}", v2_claims(), NULL, 0), JWT_EALG},
        {"HS256 keyed with the public key PEM is refused: bad_alg",
         forge("{\"alg\":\"HS256\",\"kid\":\"kid-1\"}", v2_claims(), pem, pem_len), JWT_EALG},
        {"HS256 keyed with the public JWK is refused: bad_alg",
         forge("{\"alg\":\"HS256\",\"kid\":\"kid-1\"}", v2_claims(), jwk, strlen(jwk)), JWT_EALG},
        {"alg RS512 is refused: bad_alg",
         sign_header(key1, "{\"alg\":\"RS512\",\"kid\":\"kid-1\"}", v2_claims()), JWT_EALG},
        {"a missing alg is refused: bad_alg", sign_header(key1, "{\"kid\":\"kid-1\"}", v2_claims()), JWT_EALG},
        {"a token without kid is refused: missing_kid", sign_claims(key1, NULL, v2_claims()), JWT_ENOKID},
        {"a wrong aud is refused: wrong_audience",
         sign_claims(key1, "kid-1", with(v2_claims(), "aud", json_string(MARKETPLACE_RESOURCE_ID))), JWT_EAUDIENCE},
        {"a missing aud is refused: wrong_audience", sign_claims(key1, "kid-1", with(v2_claims(), "aud", NULL)),
         JWT_EAUDIENCE},
        {"a wrong tid is refused: wrong_tenant",
         sign_claims(key1, "kid-1", with(v2_claims(), "tid", json_string("11111111-2222-3333-4444-555555555555"))),
         JWT_ETENANT},
        {"a wrong iss is refused: wrong_issuer",
         sign_claims(key1, "kid-1",
                     with(v2_claims(), "iss",
                          json_string("https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"))),
         JWT_EISSUER},
        {"an iss of another authority is refused: wrong_issuer",
         sign_claims(key1, "kid-1", with(v2_claims(), "iss", json_string("https://evil.example/" TENANT "/v2.0"))),
         JWT_EISSUER},
        {"a wrong azp is refused: wrong_caller_app",
         sign_claims(key1, "kid-1", with(v2_claims(), "azp", json_string(APP))), JWT_ECALLER},
        {"a wrong v1 appid is refused: wrong_caller_app",
         sign_claims(key1, "kid-1", with(v1_claims(), "appid", json_string(APP))), JWT_ECALLER},
        {"a token with neither azp nor appid is refused: wrong_caller_app",
         sign_claims(key1, "kid-1", with(v2_claims(), "azp", NULL)), JWT_ECALLER},
        {"a token expired beyond the skew is refused: expired",
         sign_claims(key1, "kid-1", with(v2_claims(), "exp", json_integer(now - 301))), JWT_EEXPIRED},
        {"a token without exp is refused: expired", sign_claims(key1, "kid-1", with(v2_claims(), "exp", NULL)),
         JWT_EEXPIRED},
        {"a token valid only in the future (nbf beyond skew) is refused: not_yet_valid",
         sign_claims(key1, "kid-1", with(v2_claims(), "nbf", json_integer(now + 900))), JWT_ENOTYET},
        {"a token naming an unknown kid is refused: unknown_kid", sign_claims(key1, "kid-nobody", v2_claims()),
         JWT_EUNKNOWNKID},
        {"a segment with a character outside base64url is refused: malformed", bad_b64, JWT_EMALFORMED},
        {"a segment in standard base64 (+) is refused: malformed", std_b64, JWT_EMALFORMED},
        {"a token truncated to two segments is refused: malformed", truncated, JWT_EMALFORMED},
        {"a token whose signature was cut short is refused: bad_signature", cut_sig, JWT_ESIGNATURE},
        {"a four-segment token is refused: malformed", four, JWT_EMALFORMED},
        {"a payload that is not a JSON object is refused: malformed", not_json, JWT_EMALFORMED},
        {"a token above 8 KiB is refused: too_big", oversized, JWT_ETOOBIG},
        {"a header segment above 1 KiB is refused: too_big", sign_header(key1, big_header, v2_claims()), JWT_ETOOBIG},
        {"an empty token is refused: malformed", strdup(""), JWT_EMALFORMED},
        /* time claims outside what a long long holds, or not numbers at all: correctly signed */
        {"a signed token with nbf 1e300 is refused: bad_time_claim",
         sign_claims(key1, "kid-1", with(v2_claims(), "nbf", json_real(1e300))), JWT_ETIMECLAIM},
        {"a signed token with exp -1e300 is refused: bad_time_claim",
         sign_claims(key1, "kid-1", with(v2_claims(), "exp", json_real(-1e300))), JWT_ETIMECLAIM},
        {"a signed token with exp \"NaN\" is refused: bad_time_claim",
         sign_claims(key1, "kid-1", with(v2_claims(), "exp", json_string("NaN"))), JWT_ETIMECLAIM},
        {"a signed token with exp 1e999 (overflows a double) is refused: malformed",
         sign_raw_claim(key1, "exp", "1e999"), JWT_EMALFORMED},
        {"a signed token with exp as a string holding a valid time is refused: bad_time_claim",
         sign_claims(key1, "kid-1", with(v2_claims(), "exp", json_sprintf("%lld", now + 3600))), JWT_ETIMECLAIM},
        {"a signed token with iat 1e300 is refused: bad_time_claim",
         sign_claims(key1, "kid-1", with(v2_claims(), "iat", json_real(1e300))), JWT_ETIMECLAIM},
        {"a signed token with exp 9223372036854775807 (exp + skew would overflow) is refused: bad_time_claim",
         sign_raw_claim(key1, "exp", "9223372036854775807"), JWT_ETIMECLAIM},
        {"a signed token with a negative exp is refused: bad_time_claim",
         sign_claims(key1, "kid-1", with(v2_claims(), "exp", json_integer(-5))), JWT_ETIMECLAIM},
        {"a signed token with nbf true is refused: bad_time_claim",
         sign_claims(key1, "kid-1", with(v2_claims(), "nbf", json_true())), JWT_ETIMECLAIM},
    };
    size_t nrows = sizeof rows / sizeof rows[0];
    for (size_t i = 0; i < nrows; i++) {
        rc = verify(v, rows[i].token, NULL);
        if (rc != rows[i].want)
            printf("# %s: got %s, want %s\n", rows[i].name, jwt_reason_name(rc), jwt_reason_name(rows[i].want));
        CHECK(rc == rows[i].want, rows[i].name);
    }
    CHECK(verify_once(v, sign_claims(key1, "kid-1", with(v2_claims(), "exp", json_real((double)now + 3600.5))), &c) == 0 &&
              c.exp == now + 3600,
          "a fractional exp inside the range is a valid NumericDate, truncated to whole seconds");
    CHECK(!strcmp(jwt_reason_name(JWT_ETIMECLAIM), "bad_time_claim"), "an out-of-range time claim is named bad_time_claim in the log");
    CHECK(!strcmp(jwt_reason_name(JWT_ESIGNATURE), "bad_signature") && !strcmp(jwt_reason_name(JWT_EALG), "bad_alg"),
          "each refusal has a stable reason name for the log");

    /* ---- verified-token cache ---- */
    struct jwt_stats st0, st1;
    jwt_verifier_stats(v, &st0);
    rc = verify(v, good_v2, &c);
    jwt_verifier_stats(v, &st1);
    CHECK(rc == 0 && c.from_cache && st1.cache_hits == st0.cache_hits + 1 && st1.verified == st0.verified,
          "a token seen before is accepted from the verified cache without re-verification");
    CHECK(verify(v, flipped, NULL) == JWT_ESIGNATURE, "a forged token is never served from the cache");

    /* Speed is for make bench; here: repeated tokens never reach the signature check again. */
    jwt_verifier_stats(v, &st0);
    for (int i = 0; i < 2000; i++)
        verify(v, good_v2, NULL);
    jwt_verifier_stats(v, &st1);
    CHECK(st1.verified == st0.verified && st1.cache_hits == st0.cache_hits + 2000,
          "a repeated token costs a hash and a lookup: 2000 repeats, no new verification");
    CHECK(jwt_verify_cached(v, good_v2, strlen(good_v2), &c) == 0 && c.from_cache,
          "the cache-only check accepts a verified token");
    jwt_verifier_stats(v, &st0);
    CHECK(jwt_verify_cached(v, flipped, strlen(flipped), NULL) == JWT_ENOTCACHED,
          "the cache-only check sends an unseen token to full verification");
    jwt_verifier_stats(v, &st1);
    CHECK(st1.refused == st0.refused && st1.key_fetches == st0.key_fetches,
          "the cache-only check never fetches keys nor counts a refusal");

    /* a token that expires while cached is refused afterwards */
    opt.skew_s = 0;
    struct jwt_verifier *strict = NULL;
    jwt_verifier_new(&opt, &strict);
    jwt_verifier_set_jwks(strict, fk.doc);
    char *short_lived = sign_claims(key1, "kid-1", with(v2_claims(), "exp", json_integer(time(NULL) + 2)));
    CHECK(verify(strict, short_lived, NULL) == 0, "a token seconds from expiry is accepted with zero skew");
    sleep(3);
    CHECK(verify(strict, short_lived, NULL) == JWT_EEXPIRED, "a cached token is refused once its exp has passed");
    jwt_verifier_free(strict);

    /* ---- unknown kid: rate-limited refetch, then rotation ---- */
    int calls_before = fk.calls;
    for (int i = 0; i < 200; i++) {
        char kid[32];
        snprintf(kid, sizeof kid, "flood-%d", i);
        char *t = sign_claims(rogue, kid, v2_claims());
        verify(v, t, NULL);
        free(t);
    }
    CHECK(fk.calls - calls_before <= 1, "a flood of 200 unknown kids causes at most one key fetch per interval");

    fake_serve(&fk, key1, "kid-1", key2, "kid-2");
    char *rotated = sign_claims(key2, "kid-2", v2_claims());
    CHECK(verify(v, rotated, NULL) == JWT_EUNKNOWNKID, "inside the rate-limit window a new kid is not fetched yet");
    jwt_verifier_set_refetch_interval(v, 50);
    usleep(80 * 1000);
    calls_before = fk.calls;
    rc = verify(v, rotated, &c);
    CHECK(rc == 0 && fk.calls == calls_before + 1 && !strcmp(c.kid, "kid-2"),
          "after the interval a token signed by a rotated-in key triggers one refetch and is accepted");
    CHECK(verify(v, good_v1, NULL) == 0, "the old key keeps working while it is still published");

    /* ---- concurrency ---- */
    char *toks[3] = {good_v2, good_v1, rotated};
    jwt_verifier_flush_cache(v);
    pthread_t th[4];
    struct hammer_arg ha[4];
    for (int i = 0; i < 4; i++) {
        ha[i] = (struct hammer_arg){.v = v, .tokens = toks};
        pthread_create(&th[i], NULL, hammer, &ha[i]);
    }
    int all_ok = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        all_ok &= ha[i].ok == 2000;
    }
    CHECK(all_ok, "four threads verifying the same tokens concurrently all succeed");
    jwt_verifier_free(v);

    /* ---- OpenID metadata and fetch failures ---- */
    struct fake_keys meta = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fake_serve(&meta, key1, "kid-1", NULL, NULL);
    meta.metadata = strdup("{\"issuer\":\"x\",\"jwks_uri\":\"http://127.0.0.1:1/keys\"}");
    opt.skew_s = 300;
    opt.jwks_url = "http://127.0.0.1:1/" TENANT "/v2.0/.well-known/openid-configuration";
    opt.fetch_arg = &meta;
    jwt_verifier_new(&opt, &v);
    CHECK(verify(v, good_v2, NULL) == 0 && meta.calls == 2,
          "an OpenID metadata url is followed to its jwks_uri for the keys");
    jwt_verifier_free(v);

    meta.fail = 1;
    meta.calls = 0;
    jwt_verifier_new(&opt, &v);
    CHECK(verify(v, good_v2, NULL) == JWT_EKEYS, "when no key set can be fetched the refusal says keys_unavailable");
    CHECK(verify(v, good_v2, NULL) == JWT_EKEYS && meta.calls == 1,
          "a failing key endpoint is not retried inside the rate-limit window");
    jwt_verifier_free(v);

    /* authority override for the emulator */
    opt.authority_url = "http://127.0.0.1:9999/";
    opt.fetch_arg = &fk;
    opt.jwks_url = "http://127.0.0.1:9999/keys";
    jwt_verifier_new(&opt, &v);
    CHECK(verify_once(v, sign_claims(key1, "kid-1", with(v2_claims(), "iss", json_string("http://127.0.0.1:9999/" TENANT "/v2.0"))),
                 NULL) == 0,
          "with a configured authority (the emulator) its v2 issuer is accepted");
    jwt_verifier_free(v);

    for (size_t i = 0; i < nrows; i++)
        free(rows[i].token);
    free(good_v1);
    free(good_v2);
    free(rotated);
    free(short_lived);
    free(pem);
    free(jwk);
    free(fk.doc);
    free(meta.doc);
    free(meta.metadata);
    EVP_PKEY_free(key1);
    EVP_PKEY_free(key2);
    EVP_PKEY_free(rogue);
    return CHECK_DONE();
}
