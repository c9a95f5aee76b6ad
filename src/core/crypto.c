#include "core/crypto.h"
#include "core/err.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const char *crypto_openssl_error(void)
{
    static _Thread_local char buf[256];
    unsigned long e = ERR_get_error();
    if (!e)
        return "no openssl error";
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the implementation up in its
 * provider store on every call, which showed in the webhook profile (one hash per request for
 * the token cache). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

int crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    unsigned int n = 0;
    pthread_once(&sha256_once, sha256_fetch);
    if (!EVP_Digest(data, len, out, &n, sha256_md ? (const EVP_MD *)sha256_md : EVP_sha256(), NULL) ||
        n != CRYPTO_SHA256_LEN)
        return SAASD_EINTERNAL;
    return 0;
}

void crypto_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

int crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX_LEN])
{
    uint8_t md[CRYPTO_SHA256_LEN];
    int rc = crypto_sha256(data, len, md);
    if (rc == 0)
        crypto_hex(md, sizeof md, out);
    return rc;
}

int crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                       uint8_t out[CRYPTO_SHA256_LEN])
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) || n != CRYPTO_SHA256_LEN)
        return SAASD_EINTERNAL;
    return 0;
}

/* Both alphabets go through OpenSSL's EVP block coder; base64url differs only in two
 * characters and in dropping the padding, which is translated around the call. */
static int b64_encode(int url, const void *in, size_t len, char **out)
{
    char *o = malloc(4 * ((len + 2) / 3) + 1);
    if (!o)
        return SAASD_ENOMEM;
    int n = EVP_EncodeBlock((unsigned char *)o, in, (int)len);
    if (url) {
        while (n > 0 && o[n - 1] == '=')
            n--;
        for (int i = 0; i < n; i++)
            o[i] = o[i] == '+' ? '-' : o[i] == '/' ? '_' : o[i];
    }
    o[n] = 0;
    *out = o;
    return 0;
}

static int b64_decode(int url, const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1 || len > (1u << 30))
        return SAASD_EINVAL;
    size_t padded = (len + 3) / 4 * 4;
    char *tmp = malloc(padded + 1);
    uint8_t *o = malloc(padded / 4 * 3 + 1);
    int rc = SAASD_ENOMEM;
    if (!tmp || !o)
        goto fail;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '+' || c == '/' ? url : (c == '-' || c == '_') ? !url : 0) {
            rc = SAASD_EINVAL; /* character of the other alphabet */
            goto fail;
        }
        tmp[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    memset(tmp + len, '=', padded - len);
    tmp[padded] = 0;
    int n = padded ? EVP_DecodeBlock(o, (unsigned char *)tmp, (int)padded) : 0;
    if (n < 0 || memchr(tmp, ' ', len) || memchr(tmp, '\n', len)) {
        rc = SAASD_EINVAL;
        goto fail;
    }
    n -= (int)(padded - len); /* EVP_DecodeBlock counts padding as zero bytes */
    free(tmp);
    o[n] = 0;
    *out = o;
    *out_len = (size_t)n;
    return 0;
fail:
    free(tmp);
    free(o);
    return rc;
}

int crypto_base64_encode(const void *in, size_t len, char **out) { return b64_encode(0, in, len, out); }
int crypto_base64url_encode(const void *in, size_t len, char **out) { return b64_encode(1, in, len, out); }
int crypto_base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len) { return b64_decode(0, in, len, out, out_len); }
int crypto_base64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len) { return b64_decode(1, in, len, out, out_len); }

int crypto_random(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? 0 : SAASD_EINTERNAL;
}

/* 16 bytes as a version 4 UUID (the version and variant bits are set here). */
static void uuid_format(uint8_t b[16], char out[CRYPTO_UUID_LEN])
{
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char hex[33];
    crypto_hex(b, 16, hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = 0;
}

int crypto_uuid(char out[CRYPTO_UUID_LEN])
{
    uint8_t b[16];
    int rc = crypto_random(b, sizeof b);
    if (rc)
        return rc;
    uuid_format(b, out);
    return 0;
}

int crypto_id(char out[CRYPTO_UUID_LEN])
{
    static _Thread_local uint8_t prefix[8];
    static _Thread_local uint64_t n;
    if (n == 0 && crypto_random(prefix, sizeof prefix) != 0)
        return SAASD_EINTERNAL;
    n++;
    uint8_t b[16];
    memcpy(b, prefix, 8);
    for (int i = 0; i < 8; i++) /* the variant bits take the counter's top 2: 2^62 ids per thread */
        b[15 - i] = (uint8_t)(n >> (8 * i));
    uuid_format(b, out);
    return 0;
}

int crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
