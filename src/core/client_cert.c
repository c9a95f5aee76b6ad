/* Certificate credential for Entra ID: PEM loading with OpenSSL (certificate, private key,
 * their match), thumbprints, and RS256 client assertions signed through jwt_sign. */
#include "core/client_cert.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/jwt_sign.h"
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define EXPIRY_WARNING_S (30L * 86400)

struct client_cert {
    atomic_int refs;
    X509 *cert;
    EVP_PKEY *key;
    time_t not_after;
    char x5t[CLIENT_CERT_X5T_LEN];
    char x5t_s256[CLIENT_CERT_X5T_S256_LEN];
    char hex[CLIENT_CERT_HEX_LEN];
};

static int fail_with(int rc, char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_with(int rc, char *err, size_t err_size, const char *fmt, ...)
{
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error(); /* OpenSSL's queue says nothing the message does not */
    return rc;
}

/* Open a PEM file as a BIO; on failure rc and a message naming the file. */
static int open_pem(const char *path, BIO **out, char *err, size_t err_size)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return fail_with(errno == ENOENT ? SAASD_ENOTFOUND : SAASD_EIO, err, err_size, "cannot read %s: %s", path,
                         strerror(errno));
    *out = BIO_new_fp(f, BIO_CLOSE);
    if (!*out) {
        fclose(f);
        return fail_with(SAASD_ENOMEM, err, err_size, "out of memory reading %s", path);
    }
    return 0;
}

/* OpenSSL asks for a passphrase only for an encrypted key; the daemon has nobody to ask. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    *(int *)arg = 1;
    return -1;
}

static int asn1_to_time(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return SAASD_EINTERNAL;
    *out = timegm(&tm);
    return 0;
}

int client_cert_thumbprints(X509 *x, char x5t[CLIENT_CERT_X5T_LEN], char x5t_s256[CLIENT_CERT_X5T_S256_LEN],
                            char hex[CLIENT_CERT_HEX_LEN])
{
    unsigned char sha1[20], sha256[32];
    unsigned int n1 = 0, n256 = 0;
    char *b1 = NULL, *b256 = NULL;
    int rc = SAASD_EINTERNAL;
    if (!x || X509_digest(x, EVP_sha1(), sha1, &n1) != 1 || n1 != sizeof sha1 ||
        X509_digest(x, EVP_sha256(), sha256, &n256) != 1 || n256 != sizeof sha256)
        goto fail;
    if ((rc = crypto_base64url_encode(sha1, sizeof sha1, &b1)) != 0 ||
        (rc = crypto_base64url_encode(sha256, sizeof sha256, &b256)) != 0)
        goto fail;
    snprintf(x5t, CLIENT_CERT_X5T_LEN, "%s", b1);
    snprintf(x5t_s256, CLIENT_CERT_X5T_S256_LEN, "%s", b256);
    if (hex) {
        static const char digits[] = "0123456789ABCDEF";
        for (size_t i = 0; i < sizeof sha1; i++) {
            hex[2 * i] = digits[sha1[i] >> 4];
            hex[2 * i + 1] = digits[sha1[i] & 15];
        }
        hex[2 * sizeof sha1] = 0;
    }
    rc = 0;
fail:
    free(b1);
    free(b256);
    return rc;
}

static void warn_if_expiring(const struct client_cert *cc, const char *cert_file)
{
    time_t now = time(NULL);
    char when[32];
    struct tm tm;
    gmtime_r(&cc->not_after, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (cc->not_after <= now)
        log_warn("entra", "the client certificate has expired: Entra refuses assertions signed with it (AADSTS700027); "
                 "create a new certificate and upload it to the app registration",
                 "certificate", cert_file, "thumbprint", cc->hex, "not_after", when);
    else if (cc->not_after - now < EXPIRY_WARNING_S)
        log_warn("entra", "the client certificate expires within 30 days: upload its successor to the app registration",
                 "certificate", cert_file, "thumbprint", cc->hex, "not_after", when);
}

int client_cert_load(const char *cert_file, const char *key_file, struct client_cert **out, char *err,
                     size_t err_size)
{
    struct client_cert *cc = NULL;
    BIO *bio = NULL;
    int rc, encrypted = 0;

    *out = NULL;
    if (err && err_size)
        err[0] = 0;
    if (!cert_file || !*cert_file)
        return fail_with(SAASD_EINVAL, err, err_size, "no certificate file given");
    if (!key_file || !*key_file)
        key_file = cert_file;
    cc = calloc(1, sizeof *cc);
    if (!cc)
        return fail_with(SAASD_ENOMEM, err, err_size, "out of memory");
    atomic_init(&cc->refs, 1);

    if ((rc = open_pem(cert_file, &bio, err, err_size)) != 0)
        goto fail;
    cc->cert = PEM_read_bio_X509(bio, NULL, no_passphrase, &encrypted);
    BIO_free(bio);
    bio = NULL;
    if (!cc->cert) {
        rc = fail_with(SAASD_ECONFIG, err, err_size, "no PEM certificate (-----BEGIN CERTIFICATE-----) in %s", cert_file);
        goto fail;
    }

    if ((rc = open_pem(key_file, &bio, err, err_size)) != 0)
        goto fail;
    cc->key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted);
    BIO_free(bio);
    bio = NULL;
    if (!cc->key && encrypted) {
        rc = fail_with(SAASD_ECONFIG, err, err_size,
                       "the private key in %s is encrypted and saasd cannot ask for a passphrase: store it "
                       "unencrypted (openssl pkey -in <key> -out <new key>) readable only by the daemon (mode 0600)",
                       key_file);
        goto fail;
    }
    if (!cc->key) {
        rc = fail_with(SAASD_ECONFIG, err, err_size,
                       "no usable private key (-----BEGIN PRIVATE KEY-----) in %s: put the certificate's RSA key in "
                       "the same PEM file or name its file in entra.private_key_file",
                       key_file);
        goto fail;
    }
    if (EVP_PKEY_get_base_id(cc->key) != EVP_PKEY_RSA) {
        const char *type = EVP_PKEY_get0_type_name(cc->key);
        rc = fail_with(SAASD_ECONFIG, err, err_size,
                       "the private key in %s is %s, not RSA: client assertions are signed RS256, so create an RSA "
                       "certificate (openssl req -x509 -newkey rsa:2048 ...)",
                       key_file, type ? type : "of another type");
        goto fail;
    }
    if (EVP_PKEY_get_bits(cc->key) < 2048) {
        rc = fail_with(SAASD_ECONFIG, err, err_size, "the RSA key in %s has %d bits: Entra wants at least 2048",
                       key_file, EVP_PKEY_get_bits(cc->key));
        goto fail;
    }
    if (X509_check_private_key(cc->cert, cc->key) != 1) {
        rc = fail_with(SAASD_ECONFIG, err, err_size,
                       "the private key in %s does not match the certificate in %s: use the key the certificate "
                       "was created with",
                       key_file, cert_file);
        goto fail;
    }
    if ((rc = client_cert_thumbprints(cc->cert, cc->x5t, cc->x5t_s256, cc->hex)) != 0 ||
        (rc = asn1_to_time(X509_get0_notAfter(cc->cert), &cc->not_after)) != 0) {
        rc = fail_with(rc, err, err_size, "cannot read the certificate in %s: %s", cert_file, crypto_openssl_error());
        goto fail;
    }

    struct stat st;
    if (stat(key_file, &st) == 0 && (st.st_mode & 077))
        log_warn("entra", "the private key file is readable by other users: chmod 600 it", "file", key_file);
    warn_if_expiring(cc, cert_file);
    *out = cc;
    return 0;
fail:
    BIO_free(bio);
    client_cert_free(cc);
    return rc;
}

struct client_cert *client_cert_ref(struct client_cert *cc)
{
    if (cc)
        atomic_fetch_add(&cc->refs, 1);
    return cc;
}

void client_cert_free(struct client_cert *cc)
{
    if (!cc || atomic_fetch_sub(&cc->refs, 1) > 1)
        return;
    X509_free(cc->cert);
    EVP_PKEY_free(cc->key); /* OpenSSL clears the private parts */
    free(cc);
}

const char *client_cert_x5t(const struct client_cert *cc) { return cc->x5t; }
const char *client_cert_x5t_s256(const struct client_cert *cc) { return cc->x5t_s256; }
const char *client_cert_thumbprint_hex(const struct client_cert *cc) { return cc->hex; }
time_t client_cert_not_after(const struct client_cert *cc) { return cc->not_after; }

int client_cert_assertion(const struct client_cert *cc, const char *client_id, const char *audience, time_t now,
                          char **out)
{
    char jti[CRYPTO_UUID_LEN];
    char *header = NULL, *claims = NULL;
    json_t *h = NULL, *c = NULL;
    int rc = SAASD_EINVAL;

    *out = NULL;
    if (!cc || !client_id || !*client_id || !audience || !*audience)
        goto fail;
    rc = SAASD_EINTERNAL;
    if (crypto_uuid(jti) != 0)
        goto fail;
    rc = SAASD_ENOMEM;
    h = json_pack("{s:s, s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "x5t", cc->x5t, "x5t#S256", cc->x5t_s256);
    c = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "aud", audience, "iss", client_id, "sub", client_id, "jti",
                  jti, "nbf", (json_int_t)now, "iat", (json_int_t)now, "exp",
                  (json_int_t)(now + CLIENT_ASSERTION_LIFETIME_S));
    if (!h || !c)
        goto fail;
    header = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    claims = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!header || !claims)
        goto fail;
    rc = jwt_sign_rs256_header(cc->key, header, claims, out);
fail:
    json_decref(h);
    json_decref(c);
    free(header);
    free(claims);
    return rc;
}
