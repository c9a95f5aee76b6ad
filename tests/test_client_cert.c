/* The certificate credential (core/client_cert) and the token cache signing in with it against
 * the built-in emulator: PEM loading and each refusal, the assertion's header, claims and
 * signature, a token over v1 and v2, a fresh assertion per token request, and an unregistered
 * certificate refused with a log line that says what to fix. Certificates are made in the
 * test's TMPDIR with OpenSSL's APIs (tests/cert_fixture.h). */
#include "cert_fixture.h"
#include "emu_harness.h"
#include "core/client_cert.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/token_cache.h"

#include <fcntl.h>

static char dir[256];
static struct test_cert A, B; /* A is registered with the emulator, B is not (at first) */

static json_t *segment(const char *jwt, int index)
{
    const char *start = jwt;
    for (int i = 0; i < index; i++)
        start = strchr(start, '.') + 1;
    const char *end = strchr(start, '.');
    uint8_t *raw = NULL;
    size_t n = 0;
    if (crypto_base64url_decode(start, end ? (size_t)(end - start) : strlen(start), &raw, &n) != 0)
        return NULL;
    json_t *j = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    return j;
}

static int signature_verifies(const char *jwt, X509 *cert)
{
    const char *last = strrchr(jwt, '.');
    uint8_t *sig = NULL;
    size_t n = 0;
    if (crypto_base64url_decode(last + 1, strlen(last + 1), &sig, &n) != 0)
        return 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) == 1 &&
             EVP_DigestVerify(md, sig, n, (const unsigned char *)jwt, (size_t)(last - jwt)) == 1;
    EVP_MD_CTX_free(md);
    free(sig);
    return ok;
}

/* base64url of a digest of the DER certificate, computed here independently of client_cert. */
static void thumb(X509 *x, const EVP_MD *md, char *out, size_t size)
{
    unsigned char *der = NULL, h[64];
    unsigned int hn = 0;
    int len = i2d_X509(x, &der);
    char *b = NULL;
    EVP_Digest(der, (size_t)len, h, &hn, md, NULL);
    crypto_base64url_encode(h, hn, &b);
    snprintf(out, size, "%s", b ? b : "");
    free(b);
    OPENSSL_free(der);
}

static int load_fails(const char *cert_file, const char *key_file, int want_rc, const char *want_text, char *err)
{
    struct client_cert *cc = NULL;
    int rc = client_cert_load(cert_file, key_file, &cc, err, 600);
    client_cert_free(cc);
    if (rc != want_rc || !strstr(err, want_text) || cc) {
        printf("# rc=%d err=%s (wanted %d, %s)\n", rc, err, want_rc, want_text);
        return 0;
    }
    return 1;
}

/* A self-signed certificate for key (which this takes over) in name.pem fails to load with
 * a configuration error that says want_text. */
static int key_fails(EVP_PKEY *key, const char *name, const char *want_text, char *err)
{
    char path[600];
    X509 *cert = test_cert_self_signed(key, name, 30);
    snprintf(path, sizeof path, "%s/%s.pem", dir, name);
    test_cert_write(path, cert, key, NULL);
    int ok = load_fails(path, NULL, SAASD_ECONFIG, want_text, err);
    EVP_PKEY_free(key);
    X509_free(cert);
    return ok;
}

/* Send log lines to a file in the test directory until log_capture_end, which reads them
 * back into buf (NUL-terminated) and sends logs to stderr again. */
static int log_capture_start(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    log_set_fd(fd);
    return fd;
}

static void log_capture_end(int fd, char *buf, size_t size)
{
    log_set_fd(2);
    ssize_t n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
}

static void loading(void)
{
    char err[600], path[600], x5t[64], s256[64];
    struct client_cert *cc = NULL;

    CHECK(client_cert_load(A.both, NULL, &cc, err, sizeof err) == 0 && cc,
          "a PEM holding the certificate and its key loads");
    thumb(A.cert, EVP_sha1(), x5t, sizeof x5t);
    thumb(A.cert, EVP_sha256(), s256, sizeof s256);
    CHECK(cc && !strcmp(client_cert_x5t(cc), x5t) && !strcmp(client_cert_x5t_s256(cc), s256),
          "x5t and x5t#S256 are the base64url SHA-1 and SHA-256 of the DER certificate");
    CHECK(cc && strlen(client_cert_thumbprint_hex(cc)) == 40 &&
              strspn(client_cert_thumbprint_hex(cc), "0123456789ABCDEF") == 40,
          "the thumbprint is also given as 40 upper-case hex digits, as the Entra portal lists it");
    CHECK(cc && llabs((long long)(client_cert_not_after(cc) - (time(NULL) + 365L * 86400))) < 120,
          "the certificate's end of validity is read");
    struct client_cert *other = NULL;
    CHECK(client_cert_load(A.cert_only, A.key_only, &other, err, sizeof err) == 0 && other &&
              !strcmp(client_cert_x5t(other), x5t),
          "the certificate and its key may also sit in two files");
    client_cert_free(other);

    /* the assertion */
    time_t now = time(NULL);
    char *jwt = NULL, *jwt2 = NULL;
    const char *aud = "https://login.microsoftonline.com/" TENANT "/oauth2/v2.0/token";
    CHECK(cc && client_cert_assertion(cc, CLIENT, aud, now, &jwt) == 0 && jwt, "a client assertion is signed");
    json_t *h = jwt ? segment(jwt, 0) : NULL, *c = jwt ? segment(jwt, 1) : NULL;
    CHECK(h && !strcmp(jstr(h, "alg"), "RS256") && !strcmp(jstr(h, "typ"), "JWT") && !strcmp(jstr(h, "x5t"), x5t) &&
              !strcmp(jstr(h, "x5t#S256"), s256) && json_object_size(h) == 4,
          "the assertion header is {alg RS256, typ JWT, x5t, x5t#S256}");
    CHECK(c && !strcmp(jstr(c, "aud"), aud) && !strcmp(jstr(c, "iss"), CLIENT) && !strcmp(jstr(c, "sub"), CLIENT) &&
              jstr(c, "jti") && strlen(jstr(c, "jti")) == 36,
          "the assertion claims aud = the token endpoint, iss = sub = client id, jti = a GUID");
    CHECK(c && json_integer_value(json_object_get(c, "nbf")) == now && json_integer_value(json_object_get(c, "iat")) == now &&
              json_integer_value(json_object_get(c, "exp")) == now + 600,
          "the assertion is valid from now (nbf = iat) for 10 minutes (exp)");
    CHECK(jwt && signature_verifies(jwt, A.cert), "the assertion's RS256 signature verifies with the certificate's public key");
    CHECK(cc && client_cert_assertion(cc, CLIENT, aud, now, &jwt2) == 0 && jwt2 && strcmp(jwt, jwt2),
          "two assertions signed in the same second still differ");
    json_t *c2 = jwt2 ? segment(jwt2, 1) : NULL;
    CHECK(c && c2 && strcmp(jstr(c, "jti"), jstr(c2, "jti")), "every assertion carries a new jti");
    json_decref(h);
    json_decref(c);
    json_decref(c2);
    free(jwt);
    free(jwt2);
    CHECK(cc && client_cert_assertion(cc, CLIENT, "", now, &jwt) == SAASD_EINVAL && !jwt,
          "an assertion without an audience is refused");
    CHECK(client_cert_ref(cc) == cc, "a second owner takes a reference");
    client_cert_free(cc); /* the reference */
    CHECK(cc && !strcmp(client_cert_x5t(cc), x5t), "dropping one reference leaves the credential to the other owner");
    client_cert_free(cc);

    /* refusals */
    CHECK(load_fails(B.cert_only, A.key_only, SAASD_ECONFIG, "does not match the certificate", err),
          "a key that does not match the certificate fails at load with a clear error");
    FILE *f = fopen(A.key_only, "r");
    char key_line[128] = "";
    if (f) {
        fgets(key_line, sizeof key_line, f); /* -----BEGIN PRIVATE KEY----- */
        fgets(key_line, sizeof key_line, f); /* key material */
        fclose(f);
    }
    key_line[40] = 0;
    CHECK(strlen(key_line) == 40 && !strstr(err, key_line), "the error text carries no key material");
    snprintf(path, sizeof path, "%s/absent.pem", dir);
    CHECK(load_fails(path, NULL, SAASD_ENOTFOUND, "cannot read", err) && strstr(err, path),
          "a missing certificate file is named in the error");
    CHECK(load_fails(A.cert_only, NULL, SAASD_ECONFIG, "no usable private key", err) && strstr(err, "private_key_file"),
          "a certificate without its key fails and points at entra.private_key_file");
    CHECK(load_fails(A.key_only, NULL, SAASD_ECONFIG, "no PEM certificate", err), "a file without a certificate fails");

    CHECK(key_fails(EVP_EC_gen("P-256"), "ec", "not RSA", err), "a non-RSA key fails at load (assertions are RS256)");

    snprintf(path, sizeof path, "%s/encrypted.pem", dir);
    test_cert_write(path, A.cert, A.key, "passphrase");
    CHECK(load_fails(path, NULL, SAASD_ECONFIG, "encrypted", err),
          "an encrypted key fails at load instead of prompting for a passphrase");

    CHECK(key_fails(EVP_RSA_gen(1024), "small", "at least 2048", err), "an RSA key under 2048 bits fails at load");

    /* warnings: loose key file mode, expired certificate */
    int fd = log_capture_start("load.log");
    log_set_level(LOG_INFO);
    snprintf(path, sizeof path, "%s/loose.pem", dir);
    X509 *old = test_cert_self_signed(A.key, "old", -1); /* expired yesterday */
    test_cert_write(path, old, A.key, NULL);
    chmod(path, 0644);
    cc = NULL;
    int rc = client_cert_load(path, NULL, &cc, err, sizeof err);
    log_set_level(LOG_WARN);
    char logbuf[4096];
    log_capture_end(fd, logbuf, sizeof logbuf);
    CHECK(rc == 0 && strstr(logbuf, "chmod 600") && strstr(logbuf, "has expired"),
          "an expired certificate and a key readable by others load with a warning each");
    CHECK(!strstr(logbuf, "PRIVATE KEY") && !strstr(logbuf, key_line), "the warnings carry no key material");
    client_cert_free(cc);
    X509_free(old);
}

static void with_cert_a(struct emu_options *o) { o->client_cert_file = A.both; }

static struct token_cache *cache(struct client_cert *cc, const char *secret, int version)
{
    struct token_cache_options o = {.authority_url = BASE, .tenant_id = TENANT, .client_id = CLIENT,
                                    .client_secret = secret, .client_cert = cc, .version = version,
                                    .max_attempts = 1};
    struct token_cache *tc = NULL;
    return token_cache_new(&o, H, &tc) == 0 ? tc : NULL;
}

static void against_the_emulator(void)
{
    char err[600], tok[8192], tok2[8192];
    struct client_cert *ca = NULL, *cb = NULL;
    client_cert_load(A.both, NULL, &ca, err, sizeof err);
    client_cert_load(B.cert_only, B.key_only, &cb, err, sizeof err);
    emu_up(with_cert_a);

    CHECK(cache(ca, "emulator-secret", 2) == NULL, "a token cache refuses a secret and a certificate together");
    CHECK(cache(NULL, NULL, 2) == NULL, "a token cache refuses to start without a credential");

    struct token_cache *tc = cache(ca, NULL, 2);
    CHECK(tc && token_cache_get(tc, tok, sizeof tok) == 0, "§2 a v2 token is obtained with a certificate the emulator knows");
    json_t *c = segment(tok, 1);
    CHECK(c && jstr(c, "appid") && !strcmp(jstr(c, "appid"), CLIENT) && !strcmp(jstr(c, "ver"), "1.0"),
          "the token from the v2 endpoint names the app (appid: the marketplace resource takes v1 tokens)");
    json_decref(c);
    /* every refresh signs a new assertion: the emulator refuses a jti it has seen */
    CHECK(token_cache_invalidate(tc, tok) == 1 && token_cache_get(tc, tok2, sizeof tok2) == 0 && strcmp(tok, tok2),
          "a second token request carries a fresh assertion (the emulator's replay check accepts it)");
    CHECK(token_cache_invalidate(tc, tok2) == 1 && token_cache_get(tc, tok, sizeof tok) == 0,
          "and a third one too");
    struct token_cache_stats st;
    token_cache_stats(tc, &st);
    CHECK(st.requests == 3 && st.refresh_ok == 3 && st.last_error == 0, "three refreshes, three requests, no refusal");
    token_cache_free(tc);

    tc = cache(ca, NULL, 1);
    CHECK(tc && token_cache_get(tc, tok, sizeof tok) == 0,
          "§2 a v1 token is obtained with the certificate (aud = the v1 endpoint)");
    c = segment(tok, 1);
    CHECK(c && !strcmp(jstr(c, "appid"), CLIENT) && !strcmp(jstr(c, "ver"), "1.0"), "the v1 token names the app (appid)");
    json_decref(c);
    token_cache_free(tc);

    /* an unknown certificate: refused, and the operator is told what to fix */
    int fd = log_capture_start("token.log");
    tc = cache(cb, NULL, 2);
    int rc = tc ? token_cache_get(tc, tok, sizeof tok) : -1;
    char logbuf[8192];
    log_capture_end(fd, logbuf, sizeof logbuf);
    CHECK(rc == SAASD_EAUTH, "a certificate not registered for the app is refused (an auth error, not retried)");
    if (tc)
        token_cache_stats(tc, &st);
    CHECK(tc && strstr(st.last_error_text, "certificate is not registered for the app"),
          "the stats say the certificate is not registered for the app");
    CHECK(strstr(logbuf, "AADSTS700027") && strstr(logbuf, "not registered for the app") &&
              strstr(logbuf, client_cert_thumbprint_hex(cb)),
          "the log line names AADSTS700027, the fix and the certificate's thumbprint");
    CHECK(!strstr(logbuf, "eyJ") && !strstr(logbuf, "PRIVATE KEY"), "neither the assertion nor the key is logged");
    token_cache_free(tc);

    /* registering it (as an operator uploads the .crt) makes it work */
    char *pem = test_cert_pem(B.cert);
    json_t *req = json_pack("{s:s}", "certificate", pem);
    char *body = json_dumps(req, 0);
    struct reply r = ctl("POST", "/_emulator/apps/" CLIENT "/certificates", body);
    CHECK(r.status == 201, "the emulator registers an uploaded certificate");
    reply_free(&r);
    free(body);
    json_decref(req);
    free(pem);
    tc = cache(cb, NULL, 2);
    CHECK(tc && token_cache_get(tc, tok, sizeof tok) == 0, "once registered, that certificate signs in");
    token_cache_free(tc);

    tc = cache(NULL, "emulator-secret", 2);
    CHECK(tc && token_cache_get(tc, tok, sizeof tok) == 0, "the client secret still works next to certificates");
    token_cache_free(tc);

    emu_down();
    client_cert_free(ca);
    client_cert_free(cb);
}

int main(void)
{
    char *t = check_tmpdir("client-cert");
    snprintf(dir, sizeof dir, "%s", t);
    free(t);
    log_set_level(LOG_WARN);
    test_cert_make(&A, dir, "a", "saasd test app");
    test_cert_make(&B, dir, "b", "saasd other cert");

    loading();
    against_the_emulator();

    test_cert_free(&A);
    test_cert_free(&B);
    http_client_free(H);
    check_rm_rf(dir);
    return CHECK_DONE();
}
