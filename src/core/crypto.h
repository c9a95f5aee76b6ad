/* Small crypto helpers over OpenSSL: hashes, HMAC, base64/base64url, random ids.
 * Output buffers are caller-owned; sizes are stated per function. */
#ifndef SAASD_CRYPTO_H
#define SAASD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */
#define CRYPTO_UUID_LEN 37       /* 36 chars + NUL */

int crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);
/* Lower-case hex of SHA-256(data). */
int crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX_LEN]);
int crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                       uint8_t out[CRYPTO_SHA256_LEN]);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void crypto_hex(const uint8_t *in, size_t n, char *out);

/* Encoders return a malloc'd NUL-terminated string in *out (caller frees). */
int crypto_base64_encode(const void *in, size_t len, char **out);
int crypto_base64url_encode(const void *in, size_t len, char **out); /* no padding */
/* Decoders accept input with or without padding; return a malloc'd buffer (NUL-terminated for
 * convenience) and its length. SAASD_EINVAL on a character outside the alphabet. */
int crypto_base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);
int crypto_base64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

/* Cryptographically random bytes, and a random (v4) lower-case hyphenated GUID. */
int crypto_random(void *out, size_t n);
int crypto_uuid(char out[CRYPTO_UUID_LEN]);
/* A correlation id in UUID v4 form, unique within the process and across restarts but not
 * unpredictable (a random 64-bit prefix drawn once per thread, then a counter): for request
 * ids sent with every call, where crypto_uuid's RAND_bytes (and its getpid) per call showed in
 * profiles. Never for anything secret. 0 or SAASD_EINTERNAL. */
int crypto_id(char out[CRYPTO_UUID_LEN]);

/* Constant-time comparison of two equal-length buffers: 1 when equal. */
int crypto_equal(const void *a, const void *b, size_t n);

/* The last OpenSSL error as text (thread-local buffer), for logs. */
const char *crypto_openssl_error(void);

#endif
