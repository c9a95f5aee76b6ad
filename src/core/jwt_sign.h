/* RS256 JWT signing and JWK publication, for the built-in emulator and the tests: whoever
 * plays Entra ID needs to mint tokens and publish the matching public key. The daemon signs
 * only its client assertions (client_cert.h) and otherwise verifies (see jwt.h). Keys are
 * plain OpenSSL EVP_PKEYs owned by the caller. */
#ifndef SAASD_JWT_SIGN_H
#define SAASD_JWT_SIGN_H

#include <stddef.h>

#include <openssl/evp.h>

/* Generate a fresh RSA key pair (bits >= 2048). Release with EVP_PKEY_free(). */
int jwt_rsa_generate(int bits, EVP_PKEY **out);

/* Sign claims_json (a JSON object text, used verbatim as the payload) with RS256.
 * The header is {"alg":"RS256","typ":"JWT","kid":kid,"x5t":kid}. *out is a malloc'd compact
 * JWS (caller frees). kid may be NULL (no kid/x5t in the header). */
int jwt_sign_rs256(EVP_PKEY *key, const char *kid, const char *claims_json, char **out);

/* Same, but with a caller-written header JSON text (tests forge odd headers with it). The
 * signature is always RS256 over base64url(header) "." base64url(claims). */
int jwt_sign_rs256_header(EVP_PKEY *key, const char *header_json, const char *claims_json, char **out);

/* The public half of key as one JWK object text:
 * {"kty":"RSA","use":"sig","kid":kid,"x5t":kid,"n":...,"e":...}. *out malloc'd. */
int jwt_jwk_json(EVP_PKEY *key, const char *kid, char **out);

/* A JWKS document {"keys":[jwk, ...]} for n keys with their kids. *out malloc'd. */
int jwt_jwks_json(EVP_PKEY *const *keys, const char *const *kids, size_t n, char **out);

#endif
