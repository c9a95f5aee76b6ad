/* The publisher app's certificate credential for Entra ID: instead of a client secret, the
 * token request carries a client assertion (RFC 7523 "private_key_jwt"), a short-lived JWT
 * signed RS256 with the private key of a certificate registered on the app registration. Entra
 * finds the certificate by the x5t header (base64url SHA-1 of the DER certificate; x5t#S256 is
 * its SHA-256 sibling) and checks aud = the token endpoint URL, iss = sub = the client id,
 * nbf/exp and a jti it has not seen before.
 *
 * A client_cert is loaded once from PEM (the certificate and its RSA private key, in one file
 * or two), thumbprints computed at load; afterwards it is read-only and may sign from any
 * thread. It is reference counted so the config that loaded it and the token cache that signs
 * with it can each drop theirs. The private key is never logged nor put in an error text. */
#ifndef SAASD_CLIENT_CERT_H
#define SAASD_CLIENT_CERT_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#define CLIENT_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
/* The same, as a form field value (':' percent-encoded). */
#define CLIENT_ASSERTION_TYPE_ESCAPED "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
#define CLIENT_ASSERTION_LIFETIME_S 600 /* exp = now + 10 minutes, as MSAL does */
#define CLIENT_CERT_X5T_LEN 28          /* base64url of 20 bytes (27 chars) + NUL */
#define CLIENT_CERT_X5T_S256_LEN 44     /* base64url of 32 bytes (43 chars) + NUL */
#define CLIENT_CERT_HEX_LEN 41          /* SHA-1 in upper-case hex, as the Entra portal shows it */

struct client_cert;

/* Load the certificate from cert_file and its private key from key_file (NULL or "" = look for
 * the key in cert_file too). Returns 0 and *out (refcount 1), or
 *   SAASD_ENOTFOUND  a file does not exist
 *   SAASD_EIO        a file cannot be read (permissions ...)
 *   SAASD_ECONFIG    no PEM certificate; no private key; an encrypted key (saasd cannot prompt);
 *                    a key that is not RSA or shorter than 2048 bits; a key that does not
 *                    match the certificate
 *   SAASD_ENOMEM / SAASD_EINTERNAL
 * and, when err is not NULL, one line naming the file and what to fix. Warnings (the
 * certificate has expired or expires within 30 days, the key file is readable by others) are
 * logged and do not fail the load. */
int client_cert_load(const char *cert_file, const char *key_file, struct client_cert **out, char *err,
                     size_t err_size);

/* Another owner; each owner calls client_cert_free() once. NULL is allowed for both. */
struct client_cert *client_cert_ref(struct client_cert *cc);
void client_cert_free(struct client_cert *cc);

/* Thumbprints of the DER certificate, valid while cc is: x5t (base64url SHA-1), x5t#S256
 * (base64url SHA-256) and the SHA-1 in upper-case hex (what the portal lists). */
const char *client_cert_x5t(const struct client_cert *cc);
const char *client_cert_x5t_s256(const struct client_cert *cc);
const char *client_cert_thumbprint_hex(const struct client_cert *cc);
/* End of the certificate's validity (notAfter), seconds since the epoch. */
time_t client_cert_not_after(const struct client_cert *cc);

/* Thumbprints of any certificate (the emulator registers certificates with these). */
int client_cert_thumbprints(X509 *x, char x5t[CLIENT_CERT_X5T_LEN], char x5t_s256[CLIENT_CERT_X5T_S256_LEN],
                            char hex[CLIENT_CERT_HEX_LEN]);

/* A fresh client assertion (compact JWS, malloc'd into *out, caller frees):
 *   header  {"alg":"RS256","typ":"JWT","x5t":…,"x5t#S256":…}
 *   claims  aud = audience (the exact token endpoint URL the request is posted to),
 *           iss = sub = client_id, jti = a new random GUID, nbf = iat = now,
 *           exp = now + CLIENT_ASSERTION_LIFETIME_S
 * Call it once per token request: a jti is never reused. 0, SAASD_EINVAL, SAASD_ENOMEM or
 * SAASD_EINTERNAL. */
int client_cert_assertion(const struct client_cert *cc, const char *client_id, const char *audience, time_t now,
                          char **out);

#endif
