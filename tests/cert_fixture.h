/* Test certificates made with OpenSSL's own APIs (no openssl command): a self-signed
 * certificate and its private key, written as PEM files into a test directory the way an
 * operator would keep them: one file with both, or the certificate and the key apart.
 * Aborts on any failure (a fixture that cannot be built is not a test result). */
#ifndef SAASD_TEST_CERT_FIXTURE_H
#define SAASD_TEST_CERT_FIXTURE_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct test_cert {
    EVP_PKEY *key;
    X509 *cert;
    char both[512];      /* certificate + key */
    char cert_only[512]; /* certificate alone (what gets uploaded to Entra) */
    char key_only[512];  /* key alone */
};

static inline void test_cert_fail(const char *what)
{
    fprintf(stderr, "cert fixture: %s failed\n", what);
    abort();
}

/* A self-signed certificate for key, valid from a minute ago for `days` days. */
static inline X509 *test_cert_self_signed(EVP_PKEY *key, const char *cn, long days)
{
    X509 *x = X509_new();
    if (!x || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(rand() & 0x7fffffff)) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -60) || !X509_gmtime_adj(X509_getm_notAfter(x), days * 86400) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, X509_get_subject_name(x)) || !X509_set_pubkey(x, key) ||
        !X509_sign(x, key, EVP_sha256()))
        test_cert_fail("self-signed certificate");
    return x;
}

/* Write cert and/or key (either may be NULL) to path, mode 0600; the key encrypted when
 * passphrase is set. */
static inline void test_cert_write(const char *path, X509 *cert, EVP_PKEY *key, const char *passphrase)
{
    FILE *f = fopen(path, "w");
    if (!f)
        test_cert_fail(path);
    chmod(path, 0600);
    if (cert && !PEM_write_X509(f, cert))
        test_cert_fail("PEM_write_X509");
    if (key && !PEM_write_PrivateKey(f, key, passphrase ? EVP_aes_256_cbc() : NULL, NULL, 0, NULL,
                                     (void *)(uintptr_t)passphrase))
        test_cert_fail("PEM_write_PrivateKey");
    fclose(f);
}

/* A fresh RSA-2048 key and certificate named cn, written as <dir>/<name>.pem (both),
 * <dir>/<name>.crt and <dir>/<name>.key. */
static inline void test_cert_make(struct test_cert *t, const char *dir, const char *name, const char *cn)
{
    memset(t, 0, sizeof *t);
    t->key = EVP_RSA_gen(2048);
    if (!t->key)
        test_cert_fail("EVP_RSA_gen");
    t->cert = test_cert_self_signed(t->key, cn, 365);
    snprintf(t->both, sizeof t->both, "%s/%s.pem", dir, name);
    snprintf(t->cert_only, sizeof t->cert_only, "%s/%s.crt", dir, name);
    snprintf(t->key_only, sizeof t->key_only, "%s/%s.key", dir, name);
    test_cert_write(t->both, t->cert, t->key, NULL);
    test_cert_write(t->cert_only, t->cert, NULL, NULL);
    test_cert_write(t->key_only, NULL, t->key, NULL);
}

static inline void test_cert_free(struct test_cert *t)
{
    EVP_PKEY_free(t->key);
    X509_free(t->cert);
    memset(t, 0, sizeof *t);
}

/* The certificate as PEM text (malloc'd), e.g. for the emulator's control API. */
static inline char *test_cert_pem(X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    if (!b || !PEM_write_bio_X509(b, cert))
        test_cert_fail("PEM_write_bio_X509");
    long n = BIO_get_mem_data(b, &data);
    out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

#endif
