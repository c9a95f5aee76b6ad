/* OpenID Connect sign-in of buyers on the landing page: the authorization code flow with PKCE
 * against Entra ID (v2.0 endpoints), as a confidential client.
 *
 *   oidc_begin   remembers a pending sign-in server side (state -> nonce, PKCE verifier, the
 *                caller's payload e.g. the purchase token, expiry, and a random binding value
 *                the caller puts in a cookie) and gives the authorize URL to redirect to;
 *   oidc_finish  takes the pending sign-in out (single use, and only with the same binding),
 *                redeems the code at the token endpoint with the verifier, and verifies the ID
 *                token: RS256 against the issuer's JWKS, iss = the v2 issuer of the token's own
 *                tid (multitenant), aud = client id, nonce, exp/nbf/iat with skew.
 *
 * Scopes are "openid profile email" only: nothing that needs an admin's consent.
 * The endpoints come from <authority>/<tenant>/v2.0/.well-known/openid-configuration, fetched
 * once and kept (fetched again after a failure). Thread-safe. Never logs a code, token, state,
 * nonce, verifier or payload. */
#ifndef SAASD_OIDC_H
#define SAASD_OIDC_H

#include <stddef.h>

struct http_client;
struct client_cert;

/* Why a sign-in was refused (negative, distinct from SAASD_E* and JWT_E*). */
enum oidc_error {
    OIDC_ESTATE = -201,       /* unknown, replayed or expired state, or another browser's */
    OIDC_EDENIED = -202,      /* the identity provider answered with an error (user cancelled ...) */
    OIDC_ECODE = -203,        /* the token endpoint refused the code */
    OIDC_ETOKEN = -204,       /* the ID token failed verification (see detail) */
    OIDC_ENONCE = -205,       /* the ID token's nonce is not this sign-in's */
    OIDC_EUNAVAILABLE = -206  /* metadata, keys or token endpoint unreachable */
};
const char *oidc_error_name(int rc);

#define OIDC_BINDING_LEN 44 /* base64url of 32 random bytes + NUL */

struct oidc_options {
    const char *authority;     /* e.g. https://login.microsoftonline.com (no trailing slash needed) */
    const char *tenant;        /* "organizations", "common" or a tenant id */
    const char *client_id;
    const char *client_secret; /* or NULL with cert */
    struct client_cert *cert;  /* private_key_jwt client assertion when there is no secret (the
                                  client takes its own reference) */
    const char *redirect_uri;
    int skew_s;                /* exp/nbf/iat leeway, 0..300 */
    int pending_ttl_s;         /* how long a sign-in may take; 0 = 600 */
    size_t max_pending;        /* pending sign-ins kept at once; 0 = 4096 */
    struct http_client *http;
};

struct oidc_identity {
    char oid[64];
    char tid[64];
    char name[256];
    char email[320];  /* email, else preferred_username */
};

struct oidc;

int oidc_new(const struct oidc_options *opt, struct oidc **out);
void oidc_free(struct oidc *o);
/* A new credential for the code exchange (rotation): exactly one of client_secret (copied) and
 * cert (a reference taken). Sign-ins finishing meanwhile use the one they started the exchange
 * with. 0, SAASD_EINVAL, SAASD_ENOMEM. */
int oidc_set_credential(struct oidc *o, const char *client_secret, struct client_cert *cert);

/* Start a sign-in carrying payload (copied; given back by oidc_finish only). binding receives
 * the value to set in the browser's cookie, *authorize_url the URL to redirect to (malloc'd).
 * 0, OIDC_EUNAVAILABLE (no metadata), SAASD_ENOMEM. */
int oidc_begin(struct oidc *o, const char *payload, char binding[OIDC_BINDING_LEN], char **authorize_url);

/* Finish the sign-in named by state, for the browser holding binding, with the code the
 * provider sent. On 0, *who is the verified buyer and *payload the begin's payload (malloc'd).
 * detail (may be NULL) receives a short loggable reason (e.g. the JWT refusal name). */
int oidc_finish(struct oidc *o, const char *state, const char *binding, const char *code, struct oidc_identity *who,
                char **payload, char *detail, size_t detail_size);

/* Drop the pending sign-in named by state (the provider answered with an error). */
void oidc_cancel(struct oidc *o, const char *state, const char *binding);

#endif
