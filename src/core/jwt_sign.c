/* RS256 signing with OpenSSL 3 EVP, JWK export of the public key through OSSL_PARAMs. */
#include "core/jwt_sign.h"
#include "core/crypto.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/rsa.h>

int jwt_rsa_generate(int bits, EVP_PKEY **out)
{
    *out = NULL;
    if (bits < 2048)
        return SAASD_EINVAL;
    EVP_PKEY *key = EVP_RSA_gen((unsigned)bits);
    if (!key)
        return SAASD_EINTERNAL;
    *out = key;
    return 0;
}

/* a "." b into a malloc'd string. */
static int join_dot(const char *a, const char *b, char **out)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s)
        return SAASD_ENOMEM;
    memcpy(s, a, la);
    s[la] = '.';
    memcpy(s + la + 1, b, lb + 1);
    *out = s;
    return 0;
}

/* base64url(a) "." base64url(b) into a malloc'd string. */
static int join_segments(const char *a, size_t alen, const char *b, size_t blen, char **out)
{
    char *ea = NULL, *eb = NULL;
    int rc = crypto_base64url_encode(a, alen, &ea);
    if (!rc)
        rc = crypto_base64url_encode(b, blen, &eb);
    if (!rc)
        rc = join_dot(ea, eb, out);
    free(ea);
    free(eb);
    return rc;
}

int jwt_sign_rs256_header(EVP_PKEY *key, const char *header_json, const char *claims_json, char **out)
{
    char *signing_input = NULL, *sig64 = NULL, *token = NULL;
    unsigned char *sig = NULL;
    EVP_MD_CTX *md = NULL;
    int rc;

    *out = NULL;
    if (!key || !header_json || !claims_json)
        return SAASD_EINVAL;
    rc = join_segments(header_json, strlen(header_json), claims_json, strlen(claims_json), &signing_input);
    if (rc)
        goto fail;
    rc = SAASD_EINTERNAL;
    md = EVP_MD_CTX_new();
    size_t sig_len = 0;
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1)
        goto fail;
    if (EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)signing_input, strlen(signing_input)) != 1)
        goto fail;
    sig = malloc(sig_len);
    if (!sig) {
        rc = SAASD_ENOMEM;
        goto fail;
    }
    if (EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)signing_input, strlen(signing_input)) != 1)
        goto fail;
    rc = crypto_base64url_encode(sig, sig_len, &sig64);
    if (rc)
        goto fail;
    rc = join_dot(signing_input, sig64, &token);
    if (rc)
        goto fail;
    *out = token;
fail:
    EVP_MD_CTX_free(md);
    free(signing_input);
    free(sig);
    free(sig64);
    return rc;
}

int jwt_sign_rs256(EVP_PKEY *key, const char *kid, const char *claims_json, char **out)
{
    *out = NULL;
    json_t *h = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    if (!h)
        return SAASD_ENOMEM;
    if (kid) {
        json_object_set_new(h, "kid", json_string(kid));
        json_object_set_new(h, "x5t", json_string(kid));
    }
    char *header = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!header)
        return SAASD_ENOMEM;
    int rc = jwt_sign_rs256_header(key, header, claims_json, out);
    free(header);
    return rc;
}

/* base64url of a big-endian BIGNUM parameter of key. */
static int bn_param_b64url(EVP_PKEY *key, const char *name, char **out)
{
    BIGNUM *bn = NULL;
    unsigned char *bin = NULL;
    int rc = SAASD_EINTERNAL;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
        goto fail;
    int n = BN_num_bytes(bn);
    bin = malloc(n > 0 ? (size_t)n : 1);
    if (!bin) {
        rc = SAASD_ENOMEM;
        goto fail;
    }
    BN_bn2bin(bn, bin);
    rc = crypto_base64url_encode(bin, (size_t)n, out);
fail:
    BN_free(bn);
    free(bin);
    return rc;
}

static int jwk_object(EVP_PKEY *key, const char *kid, json_t **out)
{
    char *n = NULL, *e = NULL;
    *out = NULL;
    int rc = bn_param_b64url(key, OSSL_PKEY_PARAM_RSA_N, &n);
    if (!rc)
        rc = bn_param_b64url(key, OSSL_PKEY_PARAM_RSA_E, &e);
    if (!rc) {
        *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "use", "sig", "kid", kid ? kid : "",
                         "x5t", kid ? kid : "", "n", n, "e", e);
        if (!*out)
            rc = SAASD_ENOMEM;
    }
    free(n);
    free(e);
    return rc;
}

int jwt_jwk_json(EVP_PKEY *key, const char *kid, char **out)
{
    json_t *jwk = NULL;
    *out = NULL;
    int rc = jwk_object(key, kid, &jwk);
    if (rc)
        return rc;
    *out = json_dumps(jwk, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(jwk);
    return *out ? 0 : SAASD_ENOMEM;
}

int jwt_jwks_json(EVP_PKEY *const *keys, const char *const *kids, size_t n, char **out)
{
    int rc = SAASD_ENOMEM;
    *out = NULL;
    json_t *arr = json_array();
    json_t *doc = NULL;
    if (!arr)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *jwk = NULL;
        rc = jwk_object(keys[i], kids[i], &jwk);
        if (rc)
            goto fail;
        json_array_append_new(arr, jwk);
    }
    doc = json_pack("{s:O}", "keys", arr);
    if (!doc) {
        rc = SAASD_ENOMEM;
        goto fail;
    }
    *out = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = *out ? 0 : SAASD_ENOMEM;
fail:
    json_decref(arr);
    json_decref(doc);
    return rc;
}
