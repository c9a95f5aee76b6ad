/* Emulator: client assertions at the Entra token endpoint (§2 with a certificate instead of a
 * secret, RFC 7523 private_key_jwt). Assertions are crafted here, good and bad, and posted
 * straight to the v1/v2 endpoints; certificates are registered with --client-cert (the emu
 * option) and through /_emulator/apps/{clientId}/certificates. */
#include "cert_fixture.h"
#include "emu_harness.h"
#include "core/client_cert.h"
#include "core/crypto.h"
#include "core/jwt_sign.h"

#include <curl/curl.h>

static char dir[256];
static struct test_cert A, B; /* A registered for CLIENT at start, B not */

struct claims {
    const char *aud, *iss, *sub, *jti, *alg;
    long long nbf, exp; /* 0 = absent */
    int no_x5t;
};

static void endpoint(int version, const char *tenant, char *out, size_t size)
{
    snprintf(out, size, "%s/%s%s", BASE, tenant, version == 1 ? "/oauth2/token" : "/oauth2/v2.0/token");
}

/* A fresh jti, unless the caller fixed one. */
static char *craft(EVP_PKEY *key, X509 *named, const struct claims *in)
{
    char x5t[CLIENT_CERT_X5T_LEN], s256[CLIENT_CERT_X5T_S256_LEN], hex[CLIENT_CERT_HEX_LEN], jti[CRYPTO_UUID_LEN];
    client_cert_thumbprints(named, x5t, s256, hex);
    crypto_uuid(jti);
    json_t *h = json_pack("{s:s,s:s}", "alg", in->alg ? in->alg : "RS256", "typ", "JWT");
    if (!in->no_x5t)
        json_object_set_new(h, "x5t", json_string(x5t));
    json_t *c = json_pack("{s:s,s:s,s:s,s:s}", "aud", in->aud, "iss", in->iss ? in->iss : CLIENT, "sub",
                          in->sub ? in->sub : CLIENT, "jti", in->jti ? in->jti : jti);
    if (in->nbf)
        json_object_set_new(c, "nbf", json_integer(in->nbf));
    if (in->exp)
        json_object_set_new(c, "exp", json_integer(in->exp));
    char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT), *jwt = NULL;
    jwt_sign_rs256_header(key, hs, cs, &jwt);
    free(hs);
    free(cs);
    json_decref(h);
    json_decref(c);
    return jwt;
}

static struct reply post(int version, const char *tenant, const char *client, const char *type, const char *jwt,
                         const char *extra)
{
    char path[256], *body = malloc(16384), *etype = curl_easy_escape(NULL, type, 0);
    snprintf(path, sizeof path, "/%s/%s", tenant, version == 1 ? "oauth2/token" : "oauth2/v2.0/token");
    snprintf(body, 16384, "grant_type=client_credentials&client_id=%s&client_assertion_type=%s&client_assertion=%s&%s%s",
             client, etype, jwt, version == 1 ? "resource=" MP_APP : "scope=" MP_APP "%2F.default", extra ? extra : "");
    struct reply r = call("POST", url_of(path), body, "Content-Type", "application/x-www-form-urlencoded", NULL);
    curl_free(etype);
    free(body);
    return r;
}

/* Refused with Entra's envelope, invalid_client and this AADSTS code (text in the description). */
static int refused(const struct reply *r, long code, const char *text)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "AADSTS%ld:", code);
    const char *desc = jstr(r->json, "error_description");
    int ok = r->status == 401 && jstr(r->json, "error") && !strcmp(jstr(r->json, "error"), "invalid_client") && desc &&
             !strncmp(desc, prefix, strlen(prefix)) && json_integer_value(jpath(r->json, "error_codes.0")) == code &&
             jstr(r->json, "trace_id") && (!text || strstr(desc, text));
    if (!ok)
        printf("# status %ld body %s\n", r->status, r->body ? r->body : "");
    return ok;
}

static int got_token(const struct reply *r)
{
    int ok = r->status == 200 && jstr(r->json, "access_token");
    if (!ok)
        printf("# status %ld body %s\n", r->status, r->body ? r->body : "");
    return ok;
}

/* One crafted assertion at the v2 endpoint of the configured tenant; 1 when refused as wanted. */
static int v2_refuses(EVP_PKEY *key, X509 *named, const struct claims *c, long code, const char *text)
{
    char *jwt = craft(key, named, c);
    struct reply r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    int ok = refused(&r, code, text);
    reply_free(&r);
    free(jwt);
    return ok;
}

static int v2_accepts(EVP_PKEY *key, X509 *named, const struct claims *c)
{
    char *jwt = craft(key, named, c);
    struct reply r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    int ok = got_token(&r);
    reply_free(&r);
    free(jwt);
    return ok;
}

static void with_cert_a(struct emu_options *o) { o->client_cert_file = A.both; }

static void assertions(void)
{
    char v1[512], v2[512];
    long long now = time(NULL);
    endpoint(1, TENANT, v1, sizeof v1);
    endpoint(2, TENANT, v2, sizeof v2);
    struct claims good = {.aud = v2, .nbf = now, .exp = now + 600};

    char *jwt = craft(A.key, A.cert, &good);
    struct reply r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    CHECK(got_token(&r), "§2 a client assertion signed with the certificate registered by --client-cert gets a v2 token");
    reply_free(&r);
    r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    CHECK(refused(&r, 50013, "already been used"), "the same assertion (same jti) sent twice is refused as a replay");
    reply_free(&r);
    free(jwt);

    struct claims c1 = {.aud = v1, .nbf = now, .exp = now + 600};
    jwt = craft(A.key, A.cert, &c1);
    r = post(1, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    CHECK(got_token(&r) && json_is_string(json_object_get(r.json, "expires_in")),
          "§2 at the v1 endpoint an assertion whose aud is the v1 endpoint gets a v1 token");
    reply_free(&r);
    free(jwt);
    c1.nbf = 0;
    jwt = craft(A.key, A.cert, &c1);
    r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    CHECK(refused(&r, 50012, "audience"), "aud = the v1 endpoint is refused at the v2 endpoint (the URL the request hit)");
    reply_free(&r);
    free(jwt);

    struct claims c = good;
    c.aud = "https://login.microsoftonline.com/" TENANT "/oauth2/v2.0/token";
    CHECK(v2_refuses(A.key, A.cert, &c, 50012, NULL), "aud = Microsoft's real endpoint is refused by the emulator's endpoint");
    c = good;
    c.exp = now - 3600;
    c.nbf = now - 4200;
    CHECK(v2_refuses(A.key, A.cert, &c, 700024, "valid time range"), "an expired assertion is refused (AADSTS700024)");
    c = good;
    c.nbf = now + 3600;
    c.exp = now + 4000;
    CHECK(v2_refuses(A.key, A.cert, &c, 700024, "valid from"), "an assertion valid only from an hour ahead is refused");
    c = good;
    c.exp = now + 2 * 86400;
    CHECK(v2_refuses(A.key, A.cert, &c, 700024, "more than"), "an assertion with a lifetime of days is refused");
    c = good;
    c.exp = now - 120;
    jwt = craft(A.key, A.cert, &c);
    r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    CHECK(got_token(&r), "two minutes of clock skew on exp are tolerated");
    reply_free(&r);
    free(jwt);

    CHECK(v2_refuses(B.key, A.cert, &good, 700027, "signature is invalid"),
          "an assertion naming the registered certificate but signed by another key is refused (bad signature)");
    jwt = craft(A.key, A.cert, &good);
    char *alter = jwt + strlen(jwt) - 5; /* another base64url character in the signature */
    *alter = *alter == 'A' ? 'B' : 'A';
    r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    CHECK(refused(&r, 700027, NULL), "an assertion whose signature was altered is refused");
    reply_free(&r);
    free(jwt);
    char hex[CLIENT_CERT_HEX_LEN], x5t[CLIENT_CERT_X5T_LEN], s256[CLIENT_CERT_X5T_S256_LEN];
    client_cert_thumbprints(B.cert, x5t, s256, hex);
    CHECK(v2_refuses(B.key, B.cert, &good, 700027, "not registered") && v2_refuses(B.key, B.cert, &good, 700027, hex),
          "an unknown certificate is refused (AADSTS700027) naming its thumbprint");

    c = good;
    c.iss = c.sub = "33333333-3333-4333-8333-333333333333";
    CHECK(v2_refuses(A.key, A.cert, &c, 700021, NULL), "iss/sub other than the client id are refused (AADSTS700021)");
    c = good;
    c.sub = "someone";
    CHECK(v2_refuses(A.key, A.cert, &c, 700021, NULL), "sub must equal iss and the client id");
    c = good;
    c.alg = "HS256";
    CHECK(v2_refuses(A.key, A.cert, &c, 50027, "RS256"), "an alg other than RS256 is refused as malformed");
    c = good;
    c.no_x5t = 1;
    CHECK(v2_refuses(A.key, A.cert, &c, 50027, "x5t"), "a header without x5t is refused as malformed");
    c = good;
    c.exp = 0;
    CHECK(v2_refuses(A.key, A.cert, &c, 50027, NULL), "an assertion without exp is refused as malformed");

    jwt = craft(A.key, A.cert, &good);
    r = post(2, TENANT, CLIENT, "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", jwt, NULL);
    CHECK(refused(&r, 50027, "client_assertion_type"), "a client_assertion_type other than jwt-bearer is refused");
    reply_free(&r);
    r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, "&client_secret=emulator-secret");
    CHECK(refused(&r, 50027, "both"), "a secret and an assertion in one request are refused");
    reply_free(&r);
    r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, "not.a-jwt", NULL);
    CHECK(refused(&r, 50027, NULL), "an assertion that is not a JWT is refused as malformed");
    reply_free(&r);
    r = post(2, TENANT, CLIENT, CLIENT_ASSERTION_TYPE, jwt, NULL);
    CHECK(got_token(&r), "a request refused for its other faults does not use up the assertion's jti");
    reply_free(&r);
    free(jwt);
}

static void control_api(void)
{
    char x5t[CLIENT_CERT_X5T_LEN], s256[CLIENT_CERT_X5T_S256_LEN], hex[CLIENT_CERT_HEX_LEN], v2[512], path[512];
    long long now = time(NULL);
    endpoint(2, TENANT, v2, sizeof v2);
    struct claims good = {.aud = v2, .nbf = now, .exp = now + 600};
    client_cert_thumbprints(B.cert, x5t, s256, hex);

    char *pem = test_cert_pem(B.cert);
    json_t *req = json_pack("{s:s}", "certificate", pem);
    char *body = json_dumps(req, 0);
    struct reply r = ctl("POST", "/_emulator/apps/" CLIENT "/certificates", body);
    CHECK(r.status == 201 && jstr(r.json, "x5t") && !strcmp(jstr(r.json, "x5t"), x5t) &&
              !strcmp(jstr(r.json, "x5tS256"), s256) && !strcmp(jstr(r.json, "thumbprint"), hex) && jstr(r.json, "notAfter"),
          "POST /_emulator/apps/{clientId}/certificates registers a PEM and answers its thumbprints");
    reply_free(&r);
    r = ctl("GET", "/_emulator/apps/" CLIENT "/certificates", NULL);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "certificates")) == 2,
          "GET …/certificates lists the app's certificates (the --client-cert one and the upload)");
    reply_free(&r);
    CHECK(v2_accepts(B.key, B.cert, &good), "a certificate registered through the control API signs in");
    snprintf(path, sizeof path, "/_emulator/apps/%s/certificates/%s", CLIENT, x5t);
    r = ctl("DELETE", path, NULL);
    CHECK(r.status == 204, "DELETE …/certificates/{x5t} removes it");
    reply_free(&r);
    CHECK(v2_refuses(B.key, B.cert, &good, 700027, "not registered"), "a removed certificate no longer signs in");
    r = ctl("DELETE", path, NULL);
    CHECK(r.status == 404, "removing it twice is 404");
    reply_free(&r);
    r = ctl("POST", "/_emulator/apps/" CLIENT "/certificates", "{\"certificate\":\"-----BEGIN CERTIFICATE-----\\nAAAA\"}");
    CHECK(r.status == 400, "a certificate that is not PEM is refused");
    reply_free(&r);
    r = ctl("POST", "/_emulator/apps/44444444-4444-4444-8444-444444444444/certificates", body);
    CHECK(r.status == 404, "certificates of an unknown app are 404");
    reply_free(&r);

    /* an app that has only a certificate */
    const char *tenant2 = "55555555-5555-4555-8555-555555555555", *client2 = "66666666-6666-4666-8666-666666666666";
    json_t *app = json_pack("{s:s,s:s,s:s}", "tenantId", tenant2, "clientId", client2, "certificate", pem);
    char *app_body = json_dumps(app, 0);
    r = ctl("POST", "/_emulator/apps", app_body);
    CHECK(r.status == 201 && json_array_size(json_object_get(r.json, "certificates")) == 1,
          "POST /_emulator/apps takes a certificate instead of a secret");
    reply_free(&r);
    char v2b[512];
    endpoint(2, tenant2, v2b, sizeof v2b);
    struct claims c2 = {.aud = v2b, .iss = client2, .sub = client2, .nbf = now, .exp = now + 600};
    char *jwt = craft(B.key, B.cert, &c2);
    r = post(2, tenant2, client2, CLIENT_ASSERTION_TYPE, jwt, NULL);
    CHECK(got_token(&r), "that app signs in with its certificate at its own tenant's endpoint");
    reply_free(&r);
    free(jwt);
    char form[512];
    snprintf(form, sizeof form, "grant_type=client_credentials&client_id=%s&client_secret=guess&scope=%s%%2F.default",
             client2, MP_APP);
    snprintf(path, sizeof path, "/%s/oauth2/v2.0/token", tenant2);
    r = call("POST", url_of(path), form, "Content-Type", "application/x-www-form-urlencoded", NULL);
    CHECK(refused(&r, 7000215, NULL), "an app without a secret refuses any secret");
    reply_free(&r);
    r = ctl("POST", "/_emulator/apps", "{\"tenantId\":\"t\",\"clientId\":\"c\"}");
    CHECK(r.status == 400, "an app needs a secret or a certificate");
    reply_free(&r);
    r = ctl("GET", "/_emulator/apps", NULL);
    CHECK(json_array_size(jpath(r.json, "apps.0.certificates")) == 1, "GET /_emulator/apps lists each app's certificates");
    reply_free(&r);
    json_decref(app);
    free(app_body);
    json_decref(req);
    free(body);
    free(pem);
}

static const char *data_dir;
static void with_data(struct emu_options *o) { o->data_dir = data_dir; }
static void with_data_and_cert(struct emu_options *o)
{
    o->data_dir = data_dir;
    o->client_cert_file = A.both;
}

static void persistence(void)
{
    char path[512], v2[512];
    snprintf(path, sizeof path, "%s/emu-data", dir);
    data_dir = path;
    emu_up(with_data_and_cert);
    emu_down();
    emu_up(with_data);
    long long now = time(NULL);
    endpoint(2, TENANT, v2, sizeof v2);
    struct claims good = {.aud = v2, .nbf = now, .exp = now + 600};
    CHECK(v2_accepts(A.key, A.cert, &good), "--data: registered certificates survive a restart");
    emu_down();
    char mdb[600];
    snprintf(mdb, sizeof mdb, "%s/data.mdb", path);
    FILE *f = fopen(mdb, "rb");
    int key_found = 0, cert_found = 0;
    if (f) { /* the whole file: the LMDB map is sparse, its data a few pages */
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        char *buf = size > 0 ? malloc((size_t)size) : NULL;
        if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size) {
            key_found = memmem(buf, (size_t)size, "PRIVATE KEY", 11) != NULL;
            cert_found = memmem(buf, (size_t)size, "BEGIN CERTIFICATE", 17) != NULL;
        }
        free(buf);
        fclose(f);
    }
    CHECK(f && cert_found && !key_found, "--data: the stored state holds the certificate, never the private key");
}

int main(void)
{
    char *t = check_tmpdir("emu-assertion");
    snprintf(dir, sizeof dir, "%s", t);
    free(t);
    test_cert_make(&A, dir, "a", "saasd test app");
    test_cert_make(&B, dir, "b", "another cert");

    emu_up(with_cert_a);
    assertions();
    control_api();
    emu_down();
    persistence();

    test_cert_free(&A);
    test_cert_free(&B);
    http_client_free(H);
    check_rm_rf(dir);
    return CHECK_DONE();
}
