/* ctx.http calls recorded with a decision, and answered from that record during a replay
 * (see http_record.h). What is kept is what the rule could read, minus secrets: request
 * headers are never kept (Authorization & co. live there), the request body and the URL only
 * as SHA-256 (the URL also as redacted text, for people), response headers whose names are
 * secret are dropped, values of secret-named fields of a JSON response body are masked, and a
 * body is kept up to HTTP_RECORD_BODY_MAX bytes, HTTP_RECORD_TOTAL_MAX for all the calls of one
 * rule call (a body past either is marked, not kept). */
#include "engine/http_record.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/redact.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int secret_header(const char *name, size_t len)
{
    char n[128];
    snprintf(n, sizeof n, "%.*s", (int)(len < sizeof n ? len : sizeof n - 1), name);
    return redact_is_secret_name(n) || strcasestr(n, "authenticate") != NULL;
}

/* The response header block without the lines of secret headers (malloc'd). */
static char *kept_headers(const char *block)
{
    size_t n = block ? strlen(block) : 0;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = block; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (!colon || !secret_header(p, (size_t)(colon - p))) {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    *o = '\0';
    return out;
}

/* Mask the values of secret-named fields anywhere in a JSON value; how many were masked. */
static int mask_secrets(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;
    int n = 0;
    if (json_is_object(j)) {
        json_object_foreach(j, k, v) {
            if (redact_is_secret_name(k) && !json_is_object(v) && !json_is_array(v)) {
                json_object_set_new(j, k, json_string(REDACT_MASK));
                n++;
            } else {
                n += mask_secrets(v);
            }
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) n += mask_secrets(v);
    }
    return n;
}

static json_t *sha_hex(const void *data, size_t len)
{
    char hex[CRYPTO_SHA256_HEX_LEN];
    return crypto_sha256_hex(data ? data : "", len, hex) == 0 ? json_string(hex) : NULL;
}

/* Bytes of bodies the log keeps already. */
static size_t kept_bytes(const json_t *log)
{
    size_t i, n = 0;
    json_t *rec;
    json_array_foreach(log, i, rec) n += json_string_length(json_object_get(rec, "body")) +
                                         json_string_length(json_object_get(rec, "body_b64"));
    return n;
}

/* The response body as the record keeps it: JSON with secrets masked, text, or base64; marked,
 * not kept, past room. */
static int set_body(json_t *rec, const char *body, size_t len, size_t room)
{
    if (len > HTTP_RECORD_BODY_MAX || len > room)
        return json_object_set_new(rec, "body_truncated", json_true());
    json_t *parsed = json_loadb(body ? body : "", len, JSON_DECODE_ANY, NULL);
    if (parsed && mask_secrets(parsed) > 0) { /* else the text is kept byte for byte */
        char *text = json_dumps(parsed, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(parsed);
        int rc = text ? json_object_set_new(rec, "body", json_string(text)) : -1;
        free(text);
        return rc;
    }
    json_decref(parsed);
    json_t *s = json_stringn(body ? body : "", len); /* NULL when not UTF-8 */
    if (s)
        return json_object_set_new(rec, "body", s);
    char *b64 = NULL;
    if (crypto_base64_encode(body, len, &b64) != 0)
        return -1;
    int rc = json_object_set_new(rec, "body_b64", json_string(b64));
    free(b64);
    return rc;
}

int http_record_add(json_t *log, const struct bind_http_req *req, int rc, const struct bind_http_resp *resp,
                    const char *err)
{
    if (!log)
        return 0;
    if (json_array_size(log) >= HTTP_RECORD_MAX_CALLS)
        return SAASD_ETOOBIG;
    char url[2048];
    redact_text(req->url, url, sizeof url);
    json_t *rec = json_pack("{s:s, s:s, s:o, s:o*}", "method", req->method, "url", url, "url_sha256",
                            sha_hex(req->url, strlen(req->url)), "body_sha256",
                            req->body ? sha_hex(req->body, req->body_len) : NULL);
    if (!rec)
        return SAASD_ENOMEM;
    int bad = 0;
    if (rc < 0) {
        bad = json_object_set_new(rec, "error", json_string(err && *err ? err : "io_error"));
    } else {
        char *h = kept_headers(resp->headers);
        size_t kept = kept_bytes(log); /* base64 can take a little more than the raw bytes it counted */
        size_t room = kept < HTTP_RECORD_TOTAL_MAX ? HTTP_RECORD_TOTAL_MAX - kept : 0;
        bad = !h || json_object_set_new(rec, "status", json_integer(resp->status)) ||
              json_object_set_new(rec, "headers", json_string(h)) || set_body(rec, resp->body, resp->body_len, room);
        free(h);
    }
    if (!bad)
        bad = json_array_append(log, rec);
    json_decref(rec);
    return bad ? SAASD_ENOMEM : 0;
}

static int same_call(json_t *rec, const struct bind_http_req *req, const char *url_sha)
{
    const char *m = json_string_value(json_object_get(rec, "method"));
    const char *u = json_string_value(json_object_get(rec, "url_sha256"));
    return m && u && !strcasecmp(m, req->method) && !strcmp(u, url_sha);
}

static int answer(json_t *rec, struct bind_http_resp *resp, char *err, size_t errsz)
{
    const char *e = json_string_value(json_object_get(rec, "error"));
    if (e) {
        snprintf(err, errsz, "%s", e); /* the same nil, err the rule got then */
        return SAASD_EIO;
    }
    if (json_is_true(json_object_get(rec, "body_truncated"))) {
        snprintf(err, errsz, "ctx.http: the recorded response was larger than %d bytes and was not kept",
                 HTTP_RECORD_BODY_MAX);
        return SAASD_ENOTFOUND;
    }
    json_t *b = json_object_get(rec, "body"), *b64 = json_object_get(rec, "body_b64");
    resp->status = (long)json_integer_value(json_object_get(rec, "status"));
    const char *h = json_string_value(json_object_get(rec, "headers"));
    resp->headers = strdup(h ? h : "");
    if (b64) {
        uint8_t *raw = NULL;
        size_t n = 0;
        const char *t = json_string_value(b64);
        if (crypto_base64_decode(t ? t : "", t ? strlen(t) : 0, &raw, &n) == 0 && (resp->body = malloc(n + 1))) {
            memcpy(resp->body, raw, n);
            resp->body[n] = '\0';
            resp->body_len = n;
        }
        free(raw);
    } else {
        resp->body_len = json_string_length(b);
        if ((resp->body = malloc(resp->body_len + 1)))
            memcpy(resp->body, b ? json_string_value(b) : "", resp->body_len + 1);
    }
    if (!resp->headers || !resp->body) {
        snprintf(err, errsz, "out of memory");
        return SAASD_ENOMEM;
    }
    return 0;
}

int http_record_answer(const json_t *recorded, uint64_t *used, const struct bind_http_req *req,
                       struct bind_http_resp *resp, char *err, size_t errsz)
{
    char url_sha[CRYPTO_SHA256_HEX_LEN];
    crypto_sha256_hex(req->url, strlen(req->url), url_sha);
    size_t i;
    json_t *rec;
    json_array_foreach(recorded, i, rec) {
        if (i >= HTTP_RECORD_MAX_CALLS)
            break;
        if (!(*used & (UINT64_C(1) << i)) && same_call(rec, req, url_sha)) {
            *used |= UINT64_C(1) << i;
            return answer(rec, resp, err, errsz);
        }
    }
    char url[1024];
    redact_text(req->url, url, sizeof url);
    snprintf(err, errsz, "ctx.http: no recorded answer for %s %s (replay answers only calls the recorded decision made)",
             req->method, url);
    return SAASD_ENOTFOUND;
}
