/* Capabilities performed in the daemon for rule workers (see caps.h). */
#include "engine/caps.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "core/store.h"
#include "engine/limits.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OFFER_MAX 128
#define HTTP_MAX_HEADERS 32
#define LOG_MAX_PAIRS 14

int caps_store_get(const struct caps *c, const char *key, size_t klen, char **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    size_t olen = strlen(c->offer_id);
    if (!c->store)
        return SAASD_ENOTFOUND;
    if (olen > OFFER_MAX || klen == 0 || klen > 256)
        return SAASD_EINVAL;
    char full[OFFER_MAX + 1 + 256];
    memcpy(full, c->offer_id, olen);
    full[olen] = '\0';
    memcpy(full + olen + 1, key, klen);
    void *v = NULL;
    int rc = store_get(c->store, STORE_RULE_KV, full, olen + 1 + klen, &v, vlen);
    *val = v;
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

int caps_http(struct caps *c, const struct bind_http_req *req, struct bind_http_resp *resp, char *err,
              size_t errsz)
{
    memset(resp, 0, sizeof *resp);
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
