/* Certificate credentials of the publisher apps, as Entra ID keeps them (App registrations >
 * Certificates & secrets), and the checks Entra applies to a client assertion (RFC 7523
 * private_key_jwt) at the token endpoint: the assertion type, an RS256 JWT whose x5t (or
 * x5t#S256) names a certificate registered for the app and whose signature verifies with it,
 * iss = sub = client_id, aud = the token endpoint URL the request hit, exp/nbf around the
 * emulator's clock, a bounded lifetime, and a jti never seen before.
 *
 * Registered certificates live in db.certs {clientId: [record...]} (persisted with --data);
 * a record holds the certificate PEM only, never a private key, even when the uploaded file
 * carried one. Seen jtis live in memory (e->jtis) until their assertion has expired. */
#include "core/client_cert.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "emu/emu_internal.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int same(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static json_t *certs_coll(struct emu *e)
{
    json_t *c = json_object_get(e->db, "certs");
    if (!c) {
        c = json_object();
        json_object_set_new(e->db, "certs", c);
    }
    return c;
}

json_t *emu_app_certs(struct emu *e, const char *client)
{
    return client ? json_object_get(json_object_get(e->db, "certs"), client) : NULL;
}

static int64_t asn1_epoch(const ASN1_TIME *t)
{
    struct tm tm;
    return t && ASN1_TIME_to_tm(t, &tm) == 1 ? (int64_t)timegm(&tm) : 0;
}

static X509 *parse_cert(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

/* {x5t, x5tS256, thumbprint, subject, notBefore, notAfter, pem}: what is kept of an upload. */
static json_t *cert_record(X509 *x)
{
    char x5t[CLIENT_CERT_X5T_LEN], s256[CLIENT_CERT_X5T_S256_LEN], hex[CLIENT_CERT_HEX_LEN], subject[256];
    char *pem_copy = NULL, *data = NULL;
    json_t *rec = NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || client_cert_thumbprints(x, x5t, s256, hex) != 0 || !PEM_write_bio_X509(b, x))
        goto done;
    long n = BIO_get_mem_data(b, &data);
    pem_copy = strndup(data, (size_t)n);
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
    if (pem_copy)
        rec = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s}", "x5t", x5t, "x5tS256", s256, "thumbprint", hex, "subject",
                        subject, "notBefore", (json_int_t)asn1_epoch(X509_get0_notBefore(x)), "notAfter",
                        (json_int_t)asn1_epoch(X509_get0_notAfter(x)), "pem", pem_copy);
done:
    free(pem_copy);
    BIO_free(b);
    return rec;
}

json_t *emu_cert_public(const json_t *rec)
{
    char nb[40], na[40];
    emu_iso(json_integer_value(json_object_get(rec, "notBefore")) * 1000, nb);
    emu_iso(json_integer_value(json_object_get(rec, "notAfter")) * 1000, na);
    return json_pack("{s:s?,s:s?,s:s?,s:s?,s:s,s:s}", "x5t", emu_jstr(rec, "x5t"), "x5tS256", emu_jstr(rec, "x5tS256"),
                     "thumbprint", emu_jstr(rec, "thumbprint"), "subject", emu_jstr(rec, "subject"), "notBefore", nb,
                     "notAfter", na);
}

int emu_app_cert_add(struct emu *e, const char *client, const char *pem, size_t len, struct emu_error *err,
                     json_t **out)
{
    if (out)
        *out = NULL;
    if (!emu_app_tenant(e, client, NULL)) {
        emu_fail(err, 404, "EntityNotFound", "no publisher app with clientId %s", client ? client : "");
        return SAASD_ENOTFOUND;
    }
    X509 *x = pem ? parse_cert(pem, len) : NULL;
    json_t *rec = x ? cert_record(x) : NULL;
    X509_free(x);
    if (!rec) {
        emu_fail(err, 400, "BadArgument", "certificate must be a PEM certificate (-----BEGIN CERTIFICATE-----)");
        return SAASD_EINVAL;
    }
    json_t *list = json_object_get(certs_coll(e), client);
    if (!list) {
        list = json_array();
        json_object_set_new(certs_coll(e), client, list);
    }
    size_t i;
    json_t *old;
    json_array_foreach(list, i, old) {
        if (same(emu_jstr(old, "x5t"), emu_jstr(rec, "x5t"))) { /* the same upload again */
            json_array_remove(list, i);
            break;
        }
    }
    json_array_append_new(list, rec);
    e->dirty = 1;
    log_info("emulator", "certificate registered", "client_id", client, "thumbprint", emu_jstr(rec, "thumbprint"));
    if (out)
        *out = rec;
    return 0;
}

int emu_app_cert_del(struct emu *e, const char *client, const char *id)
{
    json_t *list = emu_app_certs(e, client);
    size_t i;
    json_t *rec;
    json_array_foreach(list, i, rec) {
        const char *hex = emu_jstr(rec, "thumbprint");
        if (same(emu_jstr(rec, "x5t"), id) || same(emu_jstr(rec, "x5tS256"), id) || (hex && !strcasecmp(hex, id))) {
            json_array_remove(list, i);
            e->dirty = 1;
            return 0;
        }
    }
    return SAASD_ENOTFOUND;
}

/* ---- the token endpoint's checks ---- */

static int refuse(struct emu_refusal *out, long code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct emu_refusal *out, long code, const char *fmt, ...)
{
    va_list ap;
    out->status = 401;
    out->error = "invalid_client";
    out->code = code;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof out->message, fmt, ap);
    va_end(ap);
    return SAASD_EAUTH;
}

/* The registered certificate the header names: x5t#S256 and/or x5t, all of them must agree. */
static const json_t *find_cert(struct emu *e, const char *client, const char *x5t, const char *s256)
{
    size_t i;
    json_t *rec;
    json_array_foreach(emu_app_certs(e, client), i, rec) {
        if ((!x5t || same(x5t, emu_jstr(rec, "x5t"))) && (!s256 || same(s256, emu_jstr(rec, "x5tS256"))))
            return rec;
    }
    return NULL;
}

static int signature_ok(const json_t *rec, const char *jwt, const struct emu_jws *jws)
{
    const char *pem = emu_jstr(rec, "pem");
    X509 *x = pem ? parse_cert(pem, strlen(pem)) : NULL;
    int ok = x && emu_jws_rs256_ok(jws, jwt, X509_get0_pubkey(x));
    X509_free(x);
    return ok;
}

/* The thumbprint a header names, in the upper-case hex Entra's messages and portal use. */
static void thumbprint_hex(const char *b64url, char *out, size_t size)
{
    uint8_t *raw = NULL;
    size_t n = 0;
    if (crypto_base64url_decode(b64url, strlen(b64url), &raw, &n) != 0 || 2 * n >= size) {
        snprintf(out, size, "%.*s", (int)size - 1, b64url);
    } else {
        crypto_hex(raw, n, out);
        for (char *p = out; *p; p++)
            *p = (char)toupper((unsigned char)*p);
    }
    free(raw);
}

/* aud as a string, or an array holding it. */
static int aud_matches(const json_t *aud, const char *want)
{
    size_t i;
    json_t *a;
    if (json_is_string(aud))
        return !strcmp(json_string_value(aud), want);
    json_array_foreach(aud, i, a)
        if (json_is_string(a) && !strcmp(json_string_value(a), want))
            return 1;
    return 0;
}

static void forget_expired_jtis(struct emu *e, int64_t now)
{
    const char *k;
    json_t *v, *tmp;
    json_object_foreach_safe(e->jtis, tmp, k, v)
        if (json_integer_value(v) + EMU_ASSERTION_SKEW_S < now)
            json_object_del(e->jtis, k);
}

int emu_check_client_assertion(struct emu *e, const struct httpd_request *r, const char *tenant, int version,
                               const char *client, const char *type, const char *jwt, struct emu_refusal *out)
{
    struct emu_jws jws = {0};
    int rc = SAASD_EAUTH;
    char iso_now[40], iso_t[40], key[600];
    int64_t now = emu_now_ms(e) / 1000;

    if (!type || strcmp(type, CLIENT_ASSERTION_TYPE)) {
        refuse(out, 50027, "Invalid client_assertion_type '%s': expected '%s'.", type ? type : "", CLIENT_ASSERTION_TYPE);
        goto done;
    }
    if (!jwt || emu_jws_parse(jwt, &jws) != 0) {
        refuse(out, 50027, "Invalid JWT token. The client assertion is not a compact JWS with JSON header and claims.");
        goto done;
    }
    const char *alg = emu_jstr(jws.header, "alg"), *x5t = emu_jstr(jws.header, "x5t");
    const char *s256 = emu_jstr(jws.header, "x5t#S256");
    if (!alg || strcmp(alg, "RS256")) {
        refuse(out, 50027, "Invalid JWT token. The client assertion's alg '%s' is not supported: use RS256.",
               alg ? alg : "");
        goto done;
    }
    if (!x5t && !s256) {
        refuse(out, 50027, "Invalid JWT token. The client assertion's header names no certificate (x5t or x5t#S256).");
        goto done;
    }
    const json_t *rec = find_cert(e, client, x5t, s256);
    if (!rec) {
        char hex[65];
        thumbprint_hex(x5t ? x5t : s256, hex, sizeof hex);
        refuse(out, 700027,
               "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used "
               "by client: '%s'.] The certificate is not registered for app '%s'.",
               hex, client);
        goto done;
    }
    if (now > json_integer_value(json_object_get(rec, "notAfter")) ||
        now < json_integer_value(json_object_get(rec, "notBefore"))) {
        refuse(out, 700027, "The certificate with identifier '%s' used to sign the client assertion is not valid now "
               "(expired or not yet valid) on application '%s'.", emu_jstr(rec, "thumbprint"), client);
        goto done;
    }
    if (!signature_ok(rec, jwt, &jws)) {
        refuse(out, 700027, "Client assertion failed signature validation. [Reason - The signature is invalid., "
               "Thumbprint of key used by client: '%s'.]", emu_jstr(rec, "thumbprint"));
        goto done;
    }

    const char *iss = emu_jstr(jws.claims, "iss"), *sub = emu_jstr(jws.claims, "sub"), *jti = emu_jstr(jws.claims, "jti");
    json_t *aud = json_object_get(jws.claims, "aud"), *exp = json_object_get(jws.claims, "exp"),
           *nbf = json_object_get(jws.claims, "nbf");
    if (!iss || !sub || !jti || !*jti || !aud || !json_is_integer(exp) || (nbf && !json_is_integer(nbf))) {
        refuse(out, 50027, "Invalid JWT token. The client assertion needs iss, sub, aud, jti and exp (nbf and exp as "
               "integers).");
        goto done;
    }
    if (strcmp(iss, client) || strcmp(sub, client)) {
        refuse(out, 700021, "Client assertion application identifier doesn't match 'client_id' parameter: iss '%s', "
               "sub '%s', client_id '%s'.", iss, sub, client);
        goto done;
    }
    /* the URL the request hit: the emulator's base URL, or the Host the client used */
    const char *path = version == 1 ? "/oauth2/token" : "/oauth2/v2.0/token";
    char want[512], via_host[512];
    const char *host = httpd_header(r, "Host");
    snprintf(want, sizeof want, "%s/%s%s", e->base_url, tenant, path);
    snprintf(via_host, sizeof via_host, "http://%s/%s%s", host ? host : "", tenant, path);
    if (!aud_matches(aud, want) && !(host && aud_matches(aud, via_host))) {
        refuse(out, 50012, "Client assertion audience claim does not match Realm issuer: expected '%s'.", want);
        goto done;
    }
    emu_iso(now * 1000, iso_now);
    if (json_integer_value(exp) + EMU_ASSERTION_SKEW_S <= now) {
        emu_iso(json_integer_value(exp) * 1000, iso_t);
        refuse(out, 700024, "Client assertion is not within its valid time range. Current time: %s, expiry time of "
               "assertion %s.", iso_now, iso_t);
        goto done;
    }
    if (nbf && json_integer_value(nbf) - EMU_ASSERTION_SKEW_S > now) {
        emu_iso(json_integer_value(nbf) * 1000, iso_t);
        refuse(out, 700024, "Client assertion is not within its valid time range. Current time: %s, assertion valid "
               "from %s.", iso_now, iso_t);
        goto done;
    }
    if (json_integer_value(exp) - now > EMU_ASSERTION_MAX_LIFETIME_S) {
        emu_iso(json_integer_value(exp) * 1000, iso_t);
        refuse(out, 700024, "Client assertion is not within its valid time range: its expiry %s is more than %d "
               "seconds ahead (current time %s).", iso_t, EMU_ASSERTION_MAX_LIFETIME_S, iso_now);
        goto done;
    }
    forget_expired_jtis(e, now);
    snprintf(key, sizeof key, "%s/%s", client, jti);
    if (json_object_get(e->jtis, key)) {
        refuse(out, 50013, "Assertion failed: the client assertion with jti '%s' has already been used.", jti);
        goto done;
    }
    json_object_set_new(e->jtis, key, json_integer(json_integer_value(exp)));
    rc = 0;
done:
    emu_jws_clear(&jws);
    return rc;
}
