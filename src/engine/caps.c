/* Capabilities performed in the daemon for rule workers (see caps.h). */
#include "engine/caps.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/store.h"
#include "engine/http_record.h"
#include "engine/limits.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OFFER_MAX 128
#define HTTP_MAX_HEADERS 32
#define LOG_MAX_PAIRS 14

int caps_store_peek(const struct caps *c, const char *key, size_t klen, char **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    size_t olen = strlen(c->offer_id);
    if (olen > OFFER_MAX || klen == 0 || klen > 256)
        return SAASD_EINVAL;
    if (c->replay_reads) {
        json_t *v = json_object_getn(c->replay_reads, key, klen);
        if (!json_is_string(v))
            return SAASD_ENOTFOUND;
        *vlen = json_string_length(v);
        if (!(*val = malloc(*vlen + 1)))
            return SAASD_ENOMEM;
        memcpy(*val, json_string_value(v), *vlen + 1);
        return 0;
    }
    if (!c->store)
        return SAASD_ENOTFOUND;
    char full[OFFER_MAX + 1 + 256];
    memcpy(full, c->offer_id, olen);
    full[olen] = '\0';
    memcpy(full + olen + 1, key, klen);
    void *v = NULL;
    int rc = store_get(c->store, STORE_RULE_KV, full, olen + 1 + klen, &v, vlen);
    *val = v;
    return rc;
}

void caps_store_note(const struct caps *c, const char *key, size_t klen, const char *val, size_t vlen)
{
    if (c->reads && !json_object_getn(c->reads, key, klen))
        json_object_setn_new(c->reads, key, klen, val ? json_stringn(val, vlen) : json_null());
}

int caps_store_get(const struct caps *c, const char *key, size_t klen, char **val, size_t *vlen)
{
    int rc = caps_store_peek(c, key, klen, val, vlen);
    if (!c->replay_reads && (rc == 0 || rc == SAASD_ENOTFOUND))
        caps_store_note(c, key, klen, rc == 0 ? (*val ? *val : "") : NULL, *vlen);
    return rc;
}

/* The URL's scheme, host and port through libcurl's URL parser. NULL or an error text. */
static const char *url_target(const char *url, char **host, char **port)
{
    *host = *port = NULL;
    CURLU *u = curl_url();
    if (!u)
        return "out of memory";
    const char *err = NULL;
    char *scheme = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        err = "not a valid URL";
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0))
        err = "only http and https URLs are allowed";
    else if (curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK)
        err = "URL without a host";
    else
        curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT);
    curl_free(scheme);
    curl_url_cleanup(u);
    return err;
}

static int refuse(char *err, size_t errsz, int rc, const char *msg)
{
    snprintf(err, errsz, "%s", msg);
    return rc;
}

/* The request performed for real (allow-list, time limits, body cap). */
static int http_live(struct caps *c, const struct bind_http_req *req, struct bind_http_resp *resp, char *err,
                     size_t errsz)
{
    if (!c->http)
        return refuse(err, errsz, SAASD_EINVAL, "http disabled");
    char *host = NULL, *port = NULL;
    const char *bad = url_target(req->url, &host, &port);
    int allowed = !bad && bind_http_host_allowed(c->http_allow, host, port);
    if (!bad && !allowed)
        snprintf(err, errsz, "host not allowed: %s (add it to rules.http_allow)", host);
    curl_free(host);
    curl_free(port);
    if (bad)
        return refuse(err, errsz, SAASD_EINVAL, bad);
    if (!allowed)
        return SAASD_EINVAL;
    if (req->nheaders > HTTP_MAX_HEADERS)
        return refuse(err, errsz, SAASD_EINVAL, "more than 32 headers");

    /* wall time: the smallest of the per-request limits, the budget and the deadline */
    int64_t now = limits_now_ns();
    int64_t left = c->deadline_ns - now;
    if (c->http_left_ns < left)
        left = c->http_left_ns;
    long limit = c->http_timeout_ms;
    if (req->timeout_ms > 0 && req->timeout_ms < limit)
        limit = req->timeout_ms;
    if (left / 1000000 < limit)
        limit = (long)(left / 1000000);
    if (limit <= 0)
        return refuse(err, errsz, SAASD_ETIMEOUT, "timeout (the call's ctx.http budget is spent)");

    struct http_header h[HTTP_MAX_HEADERS];
    for (size_t i = 0; i < req->nheaders; i++) {
        h[i].name = req->headers[2 * i];
        h[i].value = req->headers[2 * i + 1];
    }
    struct http_request r = {
        .method = req->method, .url = req->url, .headers = h, .nheaders = req->nheaders,
        .body = req->body, .body_len = req->body_len, .timeout_ms = limit,
    };
    struct http_response out;
    int rc = http_client_do(c->http, &r, &out);
    c->http_left_ns -= limits_now_ns() - now;
    if (rc == 0 && out.body_len > c->max_body)
        rc = SAASD_ETOOBIG;
    if (rc < 0) {
        http_response_free(&out);
        return refuse(err, errsz, rc, rc == SAASD_ETOOBIG ? "response larger than the rule's memory cap"
                                                          : saasd_strerror(rc));
    }
    resp->status = out.status;
    resp->body = out.body;
    resp->body_len = out.body_len;
    resp->headers = out.headers;
    return 0;
}

/* A replay could not answer this call: the text goes to the replay's report. */
static void note_refused(struct caps *c, const char *text)
{
    if (!c->http_refused)
        c->http_refused = json_array();
    json_array_append_new(c->http_refused, json_string(text));
}

int caps_http(struct caps *c, const struct bind_http_req *req, struct bind_http_resp *resp, char *err,
              size_t errsz)
{
    memset(resp, 0, sizeof *resp);
    if (c->no_http) {
        char url[1024];
        redact_text(req->url, url, sizeof url);
        snprintf(err, errsz, "ctx.http is refused during a replay (%s %s; replay with http = recorded to answer it "
                 "from the record)", req->method, url);
        note_refused(c, err);
        return SAASD_EINVAL;
    }
    if (c->replay_http) {
        int rc = http_record_answer(c->replay_http, &c->replay_http_used, req, resp, err, errsz);
        if (rc == SAASD_ENOTFOUND)
            note_refused(c, err);
        return rc;
    }
    int rc = http_live(c, req, resp, err, errsz);
    if (c->http_log && http_record_add(c->http_log, req, rc, resp, err) == SAASD_ENOMEM)
        log_warn("rule", "a ctx.http call could not be recorded for replay (out of memory)", "offer", c->offer_id);
    return rc;
}

void caps_log(const struct caps *c, int level, const char *msg, const char *const *kv, size_t npairs)
{
    if (level < LOG_DEBUG || level > LOG_ERROR)
        level = LOG_INFO;
    const char *a[2 * LOG_MAX_PAIRS] = {0};
    size_t n = npairs < LOG_MAX_PAIRS ? npairs : LOG_MAX_PAIRS;
    for (size_t i = 0; i < 2 * n; i++)
        a[i] = kv[i] ? kv[i] : "";
    log_event((enum log_level)level, "rule", msg, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
              a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21],
              a[22], a[23], a[24], a[25], a[26], a[27], (char *)0);
}

/* ctx.notify's event type: 3..64 of [a-z0-9_.], at least two dot-separated words, its first word
 * not one of saasd's own (daemon/events.c), so a rule cannot pass for saasd. saas.ctx checks the
 * same; this is the check a rule cannot go around. */
static int notify_type_ok(const char *t)
{
    static const char *const reserved[] = {"subscription", "usage", "drift", "outbox", "activation"};
    size_t len = t ? strlen(t) : 0;
    if (len < 3 || len > 64 || strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789_.") != len)
        return 0;
    const char *dot = strchr(t, '.');
    if (!dot || dot == t || t[len - 1] == '.' || strstr(t, ".."))
        return 0;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if ((size_t)(dot - t) == strlen(reserved[i]) && !strncmp(t, reserved[i], (size_t)(dot - t)))
            return 0;
    return 1;
}

/* The effects a rule may ask for: their argument names and types ('s' string, 'n' number,
 * 'i' integer, 'j' JSON text or absent, 'o' JSON object text of at most 64 KiB), and a check of
 * the first argument where the kind has one. */
static const struct effect_kind {
    const char *kind;
    const char *names[3];
    const char *types;
    int (*first_ok)(const char *arg);
} effect_kinds[] = {
    {"meter", {"dimension", "quantity"}, "sn", NULL},
    {"timer", {"name", "at", "data"}, "sij", NULL},
    {"timer_cancel", {"name"}, "s", NULL},
    {"notify", {"type", "data"}, "so", notify_type_ok},
};

static json_t *effect_arg(char type, const char *a)
{
    char *end;
    if (type == 'j')
        return a ? json_loads(a, JSON_DECODE_ANY, NULL) : json_null();
    if (type == 'o') {
        json_t *o = a && strlen(a) <= 64 * 1024 ? json_loads(a, 0, NULL) : NULL;
        if (!json_is_object(o)) {
            json_decref(o);
            return NULL;
        }
        return o;
    }
    if (!a)
        return NULL;
    if (type == 's')
        return json_string(a);
    if (type == 'i') {
        long long v = strtoll(a, &end, 10);
        return *end || end == a ? NULL : json_integer(v);
    }
    double d = strtod(a, &end);
    return *end || end == a || !isfinite(d) ? NULL : json_real(d);
}

int caps_effect(struct caps *c, const char *kind, const char *const *args, size_t nargs)
{
    const struct effect_kind *k = NULL;
    for (size_t i = 0; kind && i < sizeof effect_kinds / sizeof effect_kinds[0]; i++)
        if (!strcmp(effect_kinds[i].kind, kind))
            k = &effect_kinds[i];
    if (!k || nargs > strlen(k->types) || (k->first_ok && !k->first_ok(nargs ? args[0] : NULL)))
        return SAASD_EINVAL;
    if (!c->effects && !(c->effects = json_array()))
        return SAASD_ENOMEM;
    json_t *o = json_pack("{s:s}", "kind", kind);
    int rc = o ? 0 : SAASD_ENOMEM;
    for (size_t i = 0; rc == 0 && k->types[i]; i++) {
        json_t *v = effect_arg(k->types[i], i < nargs ? args[i] : NULL);
        if (!v || json_object_set_new(o, k->names[i], v) < 0)
            rc = SAASD_EINVAL;
    }
    if (rc == 0 && json_array_append(c->effects, o) < 0)
        rc = SAASD_ENOMEM;
    json_decref(o);
    return rc;
}
