/* Verification of the Entra ID bearer tokens Microsoft sends with every webhook call
 * (contract §5.6). RS256 only; keys come from the publisher tenant's JWKS (or its OpenID
 * metadata, whose jwks_uri is followed), are cached, and are refetched when a token names an
 * unknown kid, at most once per refetch interval, so key rotation works and a flood of forged
 * kids cannot hammer Entra. Tokens that passed every check are remembered (by SHA-256 of the
 * token text, until their exp) so a redelivered token costs a hash and a lookup.
 *
 * A verifier is thread-safe: any number of threads may call jwt_verify() at once. */
#ifndef SAASD_JWT_H
#define SAASD_JWT_H

#include <stddef.h>
#include <time.h>

struct http_client;

/* Why a token was refused. Negative, distinct from the SAASD_E* codes; name with
 * jwt_reason_name(). Only JWT_EKEYS and JWT_EINTERNAL are our side's fault. */
enum jwt_reason {
    JWT_OK = 0,
    JWT_ETOOBIG = -101,     /* token or header segment above the size limits */
    JWT_EMALFORMED = -102,  /* not a compact JWS: segment count, base64url, JSON, crit header */
    JWT_EALG = -103,        /* alg other than RS256 (none, HS*, ES*, PS*, missing ...) */
    JWT_ENOKID = -104,      /* header has no kid */
    JWT_EUNKNOWNKID = -105, /* no key with that kid, even after a (rate-limited) refetch */
    JWT_ESIGNATURE = -106,  /* signature does not verify */
    JWT_EISSUER = -107,     /* iss is neither the v1 nor the v2 issuer of the tenant */
    JWT_EAUDIENCE = -108,   /* aud is not our app id (nor api://<app id>) */
    JWT_ETENANT = -109,     /* tid is not the configured tenant */
    JWT_ECALLER = -110,     /* azp / appid is not the marketplace's app id */
    JWT_EEXPIRED = -111,    /* exp (plus skew) has passed, or exp missing */
    JWT_ENOTYET = -112,     /* nbf lies beyond now + skew */
    JWT_EKEYS = -113,       /* no key set could be obtained (JWKS fetch failed) */
    JWT_EINTERNAL = -114,   /* allocation or OpenSSL failure */
    JWT_ENOTCACHED = -115,  /* jwt_verify_cached only: not among the verified tokens */
    JWT_ETIMECLAIM = -116   /* exp, nbf or iat not a NumericDate in 0 .. year 9999 (string,
                               negative, 1e300 ...) */
};

/* Stable snake_case name of a reason ("bad_signature", "wrong_audience" ...). Never NULL;
 * also names 0 ("ok") and SAASD_E* codes (via saasd_strerror). */
const char *jwt_reason_name(int reason);

/* What the daemon may log or use from a verified token. Plain copies (no ownership).
 * Values longer than a field are truncated (they were compared in full before). */
struct jwt_claims {
    char kid[96];
    char iss[160];
    char aud[160];    /* the aud value that matched */
    char tid[48];
    char caller[48];  /* azp, or appid for v1 tokens */
    char oid[48];
    char sub[96];
    char ver[8];      /* "1.0" / "2.0" or "" */
    long long iat, nbf, exp; /* 0 when absent (exp is never absent in a verified token) */
    int from_cache;   /* 1 when served from the verified-token cache */
};

/* Fetch a document (JWKS or OpenID metadata) at url into a malloc'd NUL-terminated string.
 * Returns 0 or SAASD_E*. Used instead of HTTP when set (tests, in-process emulator). */
typedef int (*jwt_fetch_fn)(void *arg, const char *url, char **out);

struct jwt_verifier_options {
    const char *tenant_id;      /* required (except with id_token): expected tid; also names
                                   the issuers */
    int id_token;               /* OpenID Connect ID tokens of a multitenant sign-in (the
                                   landing page): any tid, but iss must be the v2 issuer of the
                                   token's own tid (issuer_template with {tenantid} replaced,
                                   <authority_url>/<tid>/v2.0 or Microsoft's); aud must be
                                   audience exactly; no azp/appid check; iat not in the future */
    const char *issuer_template; /* id_token: the OpenID metadata's issuer, e.g.
                                   "https://login.microsoftonline.com/{tenantid}/v2.0"; may be NULL */
    const char *audience;       /* required: our app (client) id; api://<id> also accepted */
    const char *app_id;         /* expected azp/appid; NULL = the marketplace resource id */
    const char *authority_url;  /* extra v2 issuer base ("<authority>/<tid>/v2.0"), for the
                                   emulator; NULL = only the real Entra issuers */
    const char *jwks_url;       /* JWKS, or OpenID metadata (its jwks_uri is followed); NULL =
                                   keys only via jwt_verifier_set_jwks() */
    int skew_s;                 /* allowed clock skew for exp/nbf, clamped to 0..300 */
    long refetch_interval_ms;   /* minimum gap between key fetches caused by unknown kids;
                                   0 = 60000. Tests set it low. */
    long keys_max_age_s;        /* refetch a key set older than this on the next verify
                                   (rate limit applies); 0 = 86400 */
    size_t max_token_len;       /* 0 = 8192 bytes */
    size_t max_header_len;      /* encoded header segment; 0 = 1024 bytes */
    size_t cache_slots;         /* verified-token cache; 0 = 4096 */
    struct http_client *http;   /* for the default fetcher; may be NULL when fetch is set */
    jwt_fetch_fn fetch;         /* optional override of the HTTP fetch */
    void *fetch_arg;
};

struct jwt_stats {
    unsigned long verified;        /* accepted after full verification */
    unsigned long cache_hits;      /* accepted from the verified-token cache */
    unsigned long refused;         /* every refusal */
    unsigned long key_fetches;     /* JWKS fetch attempts */
    unsigned long key_fetch_failures;
    unsigned long key_fetches_limited; /* unknown kids that found the refetch rate limit closed */
    time_t keys_last_ok;           /* wall time of the last successful fetch, 0 = never */
    size_t keys_loaded;
};

struct jwt_verifier;
struct saasd_config;

/* Fill options from the daemon config (webhook.audience/tenant_id/app_id/jwks_url/skew, the
 * Entra authority as an extra v2 issuer base); pointers borrow from cfg. */
void jwt_verifier_options_from_config(const struct saasd_config *cfg, struct http_client *http,
                                      struct jwt_verifier_options *out);

/* Copies every string of opt. Does not fetch keys yet (the first verify does). */
int jwt_verifier_new(const struct jwt_verifier_options *opt, struct jwt_verifier **out);
void jwt_verifier_free(struct jwt_verifier *v);

/* Verify token[0..len) (no "Bearer " prefix). Returns 0 and fills *out (may be NULL), or a
 * negative enum jwt_reason. Never logs the token. */
int jwt_verify(struct jwt_verifier *v, const char *token, size_t len, struct jwt_claims *out);

/* jwt_verify without the verified-token cache (an ID token is used once), also handing back
 * the verified payload (new reference, caller json_decref()s) for the claims jwt_claims does not
 * carry (nonce, name, email ...). *payload is NULL on failure. */
typedef struct json_t json_t;
int jwt_verify_payload(struct jwt_verifier *v, const char *token, size_t len, struct jwt_claims *out,
                       json_t **payload);

/* The cheap half of jwt_verify: 0 (and *out) when token is in the verified-token cache and not
 * expired, JWT_ENOTCACHED otherwise (nothing is counted as refused). Never fetches keys or
 * verifies a signature, so it may run where blocking is not allowed. */
int jwt_verify_cached(struct jwt_verifier *v, const char *token, size_t len, struct jwt_claims *out);

/* Replace the key set with a JWKS document's RSA signing keys. 0, SAASD_EINVAL (not a
 * JWKS / no usable key) or SAASD_ENOMEM. Resets the refetch rate limit clock. */
int jwt_verifier_set_jwks(struct jwt_verifier *v, const char *jwks_json);
/* Change the refetch interval (tests). */
void jwt_verifier_set_refetch_interval(struct jwt_verifier *v, long ms);
/* Forget every verified token (tests, or after a configuration change). */
void jwt_verifier_flush_cache(struct jwt_verifier *v);
void jwt_verifier_stats(struct jwt_verifier *v, struct jwt_stats *out);

#endif
