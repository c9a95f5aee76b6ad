/* The emulator's signing keys and RS256 JWTs. Each key carries a self-signed certificate built
 * deterministically from the key (fixed serial, subject and validity), so the kid/x5t, the
 * SHA-1 thumbprint of that certificate as in Entra's JWKS, is stable across restarts. */
#include "core/crypto.h"
#include "core/jwt_sign.h"
#include "core/err.h"
#include "core/log.h"
#include "emu/emu_internal.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* OpenSSL failures all become one code here, with the reason logged. */
static int openssl_fail(const char *what)
{
    log_error("emulator", "openssl failure", "what", what, "error", crypto_openssl_error());
    return SAASD_EINTERNAL;
}

static int key_make_cert(struct emu_key *k)
{
    int rc = SAASD_EINTERNAL;
    unsigned char *der = NULL;
    X509 *x = X509_new();
    if (!x)
        return openssl_fail("X509_new");
    X509_NAME *name = X509_get_subject_name(x);
    ASN1_TIME *nb = ASN1_TIME_new(), *na = ASN1_TIME_new();
    if (!nb || !na || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"saasd marketplace emulator",
                                    -1, -1, 0) ||
        !X509_set_issuer_name(x, name) || !ASN1_TIME_set_string(nb, "20240101000000Z") ||
        !ASN1_TIME_set_string(na, "20491231235959Z") || !X509_set1_notBefore(x, nb) ||
        !X509_set1_notAfter(x, na) || !X509_set_pubkey(x, k->pkey) || !X509_sign(x, k->pkey, EVP_sha256())) {
        rc = openssl_fail("self-signed certificate");
        goto fail;
    }
    int len = i2d_X509(x, &der);
    if (len <= 0) {
        rc = openssl_fail("i2d_X509");
        goto fail;
    }
    uint8_t sha1[20];
    unsigned int n = 0;
    if (!EVP_Digest(der, (size_t)len, sha1, &n, EVP_sha1(), NULL)) {
        rc = openssl_fail("sha1");
        goto fail;
    }
    char *t = NULL;
    if ((rc = crypto_base64url_encode(sha1, sizeof sha1, &t)) != 0)
        goto fail;
    snprintf(k->kid, sizeof k->kid, "%s", t);
    free(t);
    rc = crypto_base64_encode(der, (size_t)len, &k->cert_b64);
fail:
    OPENSSL_free(der);
    ASN1_TIME_free(nb);
    ASN1_TIME_free(na);
    X509_free(x);
    return rc;
}

int emu_key_generate(struct emu_key *k)
{
    memset(k, 0, sizeof *k);
    k->pkey = EVP_RSA_gen(2048);
    if (!k->pkey)
        return openssl_fail("EVP_RSA_gen");
    int rc = key_make_cert(k);
    if (rc != 0)
        emu_key_free(k);
    return rc;
}

int emu_key_from_pem(const char *pem, size_t len, struct emu_key *k)
{
    memset(k, 0, sizeof *k);
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (!b)
        return SAASD_ENOMEM;
    k->pkey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k->pkey)
        return openssl_fail("PEM_read_bio_PrivateKey");
    int rc = key_make_cert(k);
    if (rc != 0)
        emu_key_free(k);
    return rc;
}

int emu_key_to_pem(const struct emu_key *k, char **pem)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return SAASD_ENOMEM;
    int rc = 0;
    char *data = NULL;
    if (!PEM_write_bio_PrivateKey(b, k->pkey, NULL, NULL, 0, NULL, NULL)) {
        rc = openssl_fail("PEM_write_bio_PrivateKey");
        goto fail;
    }
    long n = BIO_get_mem_data(b, &data);
    *pem = strndup(data, (size_t)n);
    if (!*pem)
        rc = SAASD_ENOMEM;
fail:
    BIO_free(b);
    return rc;
}

void emu_key_free(struct emu_key *k)
{
    EVP_PKEY_free(k->pkey);
    free(k->cert_b64);
    memset(k, 0, sizeof *k);
}

static char *bn_b64url(const EVP_PKEY *pkey, const char *param)
{
    BIGNUM *bn = NULL;
    char *out = NULL;
    if (!EVP_PKEY_get_bn_param(pkey, param, &bn))
        return NULL;
    int n = BN_num_bytes(bn);
    unsigned char *buf = malloc((size_t)n + 1);
    if (buf && BN_bn2bin(bn, buf) == n)
        crypto_base64url_encode(buf, (size_t)n, &out);
    free(buf);
    BN_free(bn);
    return out;
}

json_t *emu_key_jwk(const struct emu_key *k)
{
    char *n = bn_b64url(k->pkey, OSSL_PKEY_PARAM_RSA_N);
    char *e = bn_b64url(k->pkey, OSSL_PKEY_PARAM_RSA_E);
    json_t *j = NULL;
    if (n && e)
        j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[s]}", "kty", "RSA", "use", "sig", "alg", "RS256", "kid",
                      k->kid, "x5t", k->kid, "n", n, "e", e, "x5c", k->cert_b64);
    free(n);
    free(e);
    return j;
}

/* RS256 with the header Entra uses (kid and x5t); the signing itself is jwt_sign's. */
int emu_jwt_sign(const struct emu_key *k, const json_t *claims, char **out)
{
    char *text = json_dumps(claims, JSON_COMPACT);
    if (!text)
        return SAASD_ENOMEM;
    int rc = jwt_sign_rs256(k->pkey, k->kid, text, out);
    free(text);
    return rc;
}

static json_t *decode_object(const char *b64url, size_t len)
{
    uint8_t *raw = NULL;
    size_t n = 0;
    json_t *j = crypto_base64url_decode(b64url, len, &raw, &n) == 0 ? json_loadb((const char *)raw, n, 0, NULL) : NULL;
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

int emu_jws_parse(const char *token, struct emu_jws *out)
{
    memset(out, 0, sizeof *out);
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.'))
        return SAASD_EAUTH;
    out->header = decode_object(token, (size_t)(d1 - token));
    out->claims = decode_object(d1 + 1, (size_t)(d2 - d1 - 1));
    out->signed_len = (size_t)(d2 - token);
    if (!out->header || !out->claims || crypto_base64url_decode(d2 + 1, strlen(d2 + 1), &out->sig, &out->sig_len) != 0)
        return SAASD_EAUTH;
    return 0;
}

void emu_jws_clear(struct emu_jws *j)
{
    json_decref(j->header);
    json_decref(j->claims);
    free(j->sig);
    memset(j, 0, sizeof *j);
}

int emu_jws_rs256_ok(const struct emu_jws *j, const char *token, EVP_PKEY *pub)
{
    EVP_MD_CTX *md = pub ? EVP_MD_CTX_new() : NULL;
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(md, j->sig, j->sig_len, (const unsigned char *)token, j->signed_len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

int emu_jwt_verify(const struct emu_key *keys, size_t nkeys, const char *token, json_t **claims_out)
{
    struct emu_jws j;
    int rc = emu_jws_parse(token, &j);
    const char *alg = emu_jstr(j.header, "alg"), *kid = emu_jstr(j.header, "kid");
    const struct emu_key *k = NULL;
    for (size_t i = 0; !rc && alg && !strcmp(alg, "RS256") && kid && i < nkeys; i++)
        if (keys[i].pkey && !strcmp(keys[i].kid, kid))
            k = &keys[i];
    if (!rc && (!k || !emu_jws_rs256_ok(&j, token, k->pkey)))
        rc = SAASD_EAUTH;
    if (!rc) {
        *claims_out = j.claims;
        j.claims = NULL;
    }
    emu_jws_clear(&j);
    return rc;
}

/* ---- key files: <dir>/emu-signing-key.pem, emu-signing-key.prev1.pem, .prev2.pem ---- */

static void key_path(const char *dir, size_t i, char *out, size_t n)
{
    if (i == 0)
        snprintf(out, n, "%s/emu-signing-key.pem", dir);
    else
        snprintf(out, n, "%s/emu-signing-key.prev%zu.pem", dir, i);
}

static void key_stamp(const char *dir, char *out, size_t n);

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? SAASD_ENOTFOUND : SAASD_EIO;
    char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (!buf)
        return SAASD_ENOMEM;
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

static int write_key(const char *path, const struct emu_key *k)
{
    char *pem = NULL;
    int rc = emu_key_to_pem(k, &pem);
    if (rc != 0)
        return rc;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(pem);
        return SAASD_EIO;
    }
    chmod(tmp, 0600);
    size_t len = strlen(pem);
    int ok = fwrite(pem, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    free(pem);
    if (!ok || rename(tmp, path) != 0)
        return SAASD_EIO;
    return 0;
}

int emu_keys_load_dir(const char *dir, int rotate, struct emu_key keys[EMU_MAX_KEYS], size_t *nkeys)
{
    char path[4096];
    int rc = 0;
    *nkeys = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return SAASD_EIO;
    for (size_t i = 0; i < EMU_MAX_KEYS; i++) {
        char *pem = NULL;
        size_t len = 0;
        key_path(dir, i, path, sizeof path);
        rc = read_file(path, &pem, &len);
        if (rc == SAASD_ENOTFOUND) {
            if (i == 0)
                break; /* no current key: generate below */
            continue;
        }
        if (rc == 0)
            rc = emu_key_from_pem(pem, len, &keys[*nkeys]);
        free(pem);
        if (rc != 0)
            goto fail;
        (*nkeys)++;
    }
    if (*nkeys > 0 && !rotate)
        return 0;
    /* Rotation (or first start): shift current -> prev1 -> prev2, then a fresh current key. */
    if (*nkeys == EMU_MAX_KEYS) {
        emu_key_free(&keys[EMU_MAX_KEYS - 1]);
        (*nkeys)--;
    }
    memmove(&keys[1], &keys[0], *nkeys * sizeof keys[0]);
    if ((rc = emu_key_generate(&keys[0])) != 0) {
        memmove(&keys[0], &keys[1], *nkeys * sizeof keys[0]);
        goto fail;
    }
    (*nkeys)++;
    for (size_t i = 0; i < *nkeys; i++) {
        key_path(dir, i, path, sizeof path);
        if ((rc = write_key(path, &keys[i])) != 0)
            goto fail;
    }
    log_info("emulator", "signing key created", "kid", keys[0].kid, "dir", dir);
    return 0;
fail:
    for (size_t i = 0; i < *nkeys; i++)
        emu_key_free(&keys[i]);
    *nkeys = 0;
    return rc;
}

int emu_keys_rotate_memory(struct emu *e)
{
    if (e->data_dir) {
        struct emu_key fresh[EMU_MAX_KEYS];
        size_t n = 0;
        int rc = emu_keys_load_dir(e->data_dir, 1, fresh, &n);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < e->nkeys; i++)
            emu_key_free(&e->keys[i]);
        memcpy(e->keys, fresh, n * sizeof fresh[0]);
        e->nkeys = n;
        key_stamp(e->data_dir, e->key_stamp, sizeof e->key_stamp);
        return 0;
    }
    struct emu_key fresh;
    int rc = emu_key_generate(&fresh);
    if (rc != 0)
        return rc;
    if (e->nkeys == EMU_MAX_KEYS)
        emu_key_free(&e->keys[--e->nkeys]);
    memmove(&e->keys[1], &e->keys[0], e->nkeys * sizeof e->keys[0]);
    e->keys[0] = fresh;
    e->nkeys++;
    return 0;
}

static void key_stamp(const char *dir, char *out, size_t n)
{
    char path[4096];
    struct stat st;
    key_path(dir, 0, path, sizeof path);
    if (stat(path, &st) != 0)
        snprintf(out, n, "none");
    else
        snprintf(out, n, "%lu:%lld.%09ld", (unsigned long)st.st_ino, (long long)st.st_mtim.tv_sec,
                 st.st_mtim.tv_nsec);
}

void emu_keys_refresh(struct emu *e)
{
    char now[64];
    if (!e->data_dir)
        return;
    key_stamp(e->data_dir, now, sizeof now);
    if (!strcmp(now, e->key_stamp))
        return;
    struct emu_key fresh[EMU_MAX_KEYS];
    size_t n = 0;
    if (emu_keys_load_dir(e->data_dir, 0, fresh, &n) != 0 || n == 0) {
        log_warn("emulator", "key files changed but cannot be loaded; keeping the old keys", "dir", e->data_dir);
    } else {
        for (size_t i = 0; i < e->nkeys; i++)
            emu_key_free(&e->keys[i]);
        memcpy(e->keys, fresh, n * sizeof fresh[0]);
        e->nkeys = n;
        log_info("emulator", "signing keys reloaded", "kid", e->keys[0].kid);
    }
    key_stamp(e->data_dir, e->key_stamp, sizeof e->key_stamp);
}
