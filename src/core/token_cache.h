/* The publisher's Entra ID access token for the marketplace API (contract §2): OAuth2 client
 * credentials against the v1 (resource=) or v2 (scope=<resource>/.default) token endpoint of a
 * configurable authority, so tests and the built-in emulator can play Entra. The app proves
 * itself with a client secret or with a certificate: then every token request (every retry
 * too) carries a freshly signed client assertion (RFC 7523, see client_cert.h) whose aud is
 * the token endpoint URL posted to.
 *
 * One token_cache holds one token for one (tenant, client id, resource); the daemon has one.
 * Expiry is local receive time + expires_in (string or number), never the server's clock.
 * The token is refreshed ahead of expiry (when less than min(5 min, 20 % of its lifetime)
 * remains); while a refresh runs, callers keep getting the still-valid old token; callers that
 * have no valid token wait for the one request in flight (single-flight). An expired token is
 * never handed out. Thread-safe. */
#ifndef SAASD_TOKEN_CACHE_H
#define SAASD_TOKEN_CACHE_H

#include <stddef.h>
#include <time.h>

struct client_cert;
struct http_client;
struct saasd_config;

struct token_cache_options {
    const char *authority_url; /* e.g. https://login.microsoftonline.com (no tenant); required */
    const char *tenant_id;     /* required */
    const char *client_id;     /* required */
    const char *client_secret; /* the secret, or NULL when client_cert is set; copied, never logged */
    struct client_cert *client_cert; /* the certificate credential, or NULL when client_secret is
                                        set (exactly one of the two); the cache takes its own
                                        reference */
    const char *resource;      /* NULL = the marketplace resource id */
    int version;               /* 1 = /oauth2/token + resource=, 2 = /oauth2/v2.0/token + scope= (default) */
    long refresh_margin_ms;    /* refresh when less than this remains (capped at 20 % of the
                                  lifetime); 0 = 300000 */
    int max_attempts;          /* per refresh, on Entra 429/5xx/timeouts; 0 = 3 */
    long backoff_base_ms;      /* first retry delay, doubled per attempt, with jitter; 0 = 500 */
    long backoff_cap_ms;       /* 0 = 8000 */
};

/* Fill options from the daemon config (pointers borrow from cfg). */
void token_cache_options_from_config(const struct saasd_config *cfg, struct token_cache_options *out);

struct token_cache_stats {
    unsigned long requests;        /* HTTP requests to the token endpoint */
    unsigned long refresh_ok;
    unsigned long refresh_failed;  /* refreshes that ended without a token */
    unsigned long invalidations;   /* tokens dropped after a marketplace 401/403 */
    time_t last_ok;                /* wall time of the last successful refresh, 0 = never */
    time_t expires_at;             /* wall time the cached token expires, 0 = none */
    int last_error;                /* SAASD_E* of the last failed refresh, 0 after a success */
    char last_error_text[160];     /* what to fix, e.g. "client secret expired ..." */
};

struct token_cache;

/* Copies every option string. http is borrowed and must outlive the cache. SAASD_EINVAL when
 * a required option is missing or both (or neither) of client_secret and client_cert are set. */
int token_cache_new(const struct token_cache_options *opt, struct http_client *http, struct token_cache **out);
void token_cache_free(struct token_cache *tc);

/* Copy a valid access token (without "Bearer ") into buf. Returns 0, SAASD_ETOOBIG when buf is
 * too small, SAASD_EAUTH when Entra refused the credentials (configuration must change; a log
 * line says what), SAASD_ERETRY / SAASD_ETIMEOUT / SAASD_EIO when Entra could not be reached. */
int token_cache_get(struct token_cache *tc, char *buf, size_t size);

/* A new credential for the app (rotation): exactly one of client_secret (copied) and
 * client_cert (the cache takes its own reference), of either kind. The next token request
 * uses it; a request in flight finishes with the one it started with; the cached token is
 * kept until it is due for a refresh (it was valid; token_cache_refresh fetches one with the
 * new credential at once). 0, SAASD_EINVAL, SAASD_ENOMEM. */
int token_cache_set_credential(struct token_cache *tc, const char *client_secret, struct client_cert *client_cert);

/* Fetch a token now with the current credential, whatever the cached one (after a refresh
 * already in flight), and cache it on success. Returns what token_cache_get would; on failure
 * why says what to fix (the log line too), the current token staying cached until it expires. */
int token_cache_refresh(struct token_cache *tc, char *why, size_t why_size);

/* "certificate <SHA-1 thumbprint>" or "client secret": what the next token request proves itself with. */
void token_cache_describe_credential(struct token_cache *tc, char *buf, size_t size);

/* The marketplace refused token (401/403): drop it if it is still the cached one, so the
 * next token_cache_get() fetches a new one. A token already replaced is ignored, so N callers
 * reporting the same token cause one refresh. Returns 1 when dropped, 0 otherwise. */
int token_cache_invalidate(struct token_cache *tc, const char *token);

void token_cache_stats(struct token_cache *tc, struct token_cache_stats *out);

/* What an AADSTS code means for the operator ("client secret is wrong ...", "certificate not
 * registered for the app ..."), or NULL. */
const char *token_cache_aadsts_hint(long code);

#endif
