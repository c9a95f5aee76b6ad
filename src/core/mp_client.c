/* Marketplace client: one request engine (mp_call) with the retry and auth policy, and one
 * small function per endpoint on top of it. */
#include "core/mp_client.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/retry.h"
#include "core/token_cache.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>


#define URL_MAX 4096
#define TOKEN_BUF 16384

struct mp_client {
    char *base;        /* no trailing slash */
    char *api_version;
    struct retry_policy retry;
    long timeout_ms, poll_interval_ms, poll_timeout_ms;
    int max_pages;
    struct http_client *http;
    struct token_cache *tokens;
};

/* How one logical call is made. */
struct call {
    enum mp_endpoint ep;
    const char *method;
    const char *url;
    const json_t *body;            /* request JSON, NULL = none */
    const char *marketplace_token; /* Resolve only */
    int repeat_safe;               /* may be re-sent after 5xx / timeout / connection error */
};

static const char *const endpoint_names[MP_ENDPOINT_COUNT] = {
    "resolve", "activate", "get", "list", "plans", "change_plan", "change_quantity", "delete",
    "list_operations", "get_operation", "ack_operation", "usage_event", "batch_usage_event",
    "usage_events",
};

const char *mp_endpoint_name(enum mp_endpoint ep)
{
    return ep < MP_ENDPOINT_COUNT ? endpoint_names[ep] : "unknown";
}

void mp_client_options_from_config(const struct saasd_config *cfg, struct mp_client_options *out)
{
    memset(out, 0, sizeof *out);
    out->base_url = cfg->marketplace_url;
    out->api_version = cfg->api_version;
}

void mp_result_clear(struct mp_result *r)
{
    if (!r)
        return;
    json_decref(r->body);
    free(r->text);
    memset(r, 0, sizeof *r);
}

int mp_operation_is_final(const char *status)
{
    if (!status)
        return 0;
    while (isspace((unsigned char)*status))
        status++;
    size_t n = strlen(status);
    while (n && isspace((unsigned char)status[n - 1]))
        n--;
    return (n == 9 && !strncasecmp(status, "Succeeded", 9)) || (n == 6 && !strncasecmp(status, "Failed", 6)) ||
           (n == 8 && !strncasecmp(status, "Conflict", 8));
}

int mp_client_new(const struct mp_client_options *opt, struct http_client *http, struct token_cache *tokens,
                  struct mp_client **out)
{
    *out = NULL;
    if (!http || !tokens)
        return SAASD_EINVAL;
    struct mp_client_options none = {0};
    if (!opt)
        opt = &none;
    struct mp_client *mp = calloc(1, sizeof *mp);
    if (!mp)
        return SAASD_ENOMEM;
    mp->base = strdup(opt->base_url && *opt->base_url ? opt->base_url : "https://marketplaceapi.microsoft.com");
    mp->api_version = strdup(opt->api_version && *opt->api_version ? opt->api_version : "2018-08-31");
    if (!mp->base || !mp->api_version) {
        mp_client_free(mp);
        return SAASD_ENOMEM;
    }
    size_t n = strlen(mp->base);
    while (n && mp->base[n - 1] == '/')
        mp->base[--n] = 0;
    mp->retry.max_attempts = opt->max_attempts > 0 ? opt->max_attempts : 5;
    mp->retry.base_ms = opt->backoff_base_ms > 0 ? opt->backoff_base_ms : 1000;
    mp->retry.cap_ms = opt->backoff_cap_ms > 0 ? opt->backoff_cap_ms : 60000;
    mp->retry.retry_after_cap_ms = opt->retry_after_cap_ms > 0 ? opt->retry_after_cap_ms : 120000;
    mp->timeout_ms = opt->timeout_ms;
    mp->poll_interval_ms = opt->poll_interval_ms > 0 ? opt->poll_interval_ms : 2000;
    mp->poll_timeout_ms = opt->poll_timeout_ms > 0 ? opt->poll_timeout_ms : 600000;
    mp->max_pages = opt->max_pages > 0 ? opt->max_pages : 100000; /* 1M subscriptions at 10 a page */
    mp->http = http;
    mp->tokens = tokens;
    metrics_describe("saasd_upstream_requests_total", "counter", "Marketplace API requests by endpoint and status");
    metrics_describe("saasd_upstream_request_seconds", "histogram", "Marketplace API request latency");
    *out = mp;
    return 0;
}

void mp_client_free(struct mp_client *mp)
{
    if (!mp)
        return;
    free(mp->base);
    free(mp->api_version);
    free(mp);
}

/* ---- helpers ---- */

/* Subscription, operation ids: GUIDs in practice; refuse anything that could bend the path. */
static int id_ok(const char *id)
{
    if (!id || !*id || strlen(id) > 128)
        return 0;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return 0;
    return strcmp(id, ".") && strcmp(id, "..");
}

/* base + "/api/" + path + "?api-version=" (+ "&" extra). */
static int build_url(const struct mp_client *mp, char *out, const char *path, const char *extra_query)
{
    int n = snprintf(out, URL_MAX, "%s/api/%s?api-version=%s%s%s", mp->base, path, mp->api_version,
                     extra_query ? "&" : "", extra_query ? extra_query : "");
    return n > 0 && n < URL_MAX ? 0 : SAASD_ETOOBIG;
}

/* A URL the marketplace gave us (@nextLink, Operation-Location), re-rooted on our base URL:
 * the bearer token must never travel to a host we were not configured for. */
static int url_on_base(const struct mp_client *mp, const char *given, char *out)
{
    const char *p = given;
    size_t blen = strlen(mp->base);
    /* A URL holds no blanks, controls or raw non-ASCII: refused now rather than sent to curl,
     * which rejects it on every retry (found by fuzz/fuzz_mp_response.c). */
    for (const char *c = given; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return SAASD_EINVAL;
    if (!strncmp(given, mp->base, blen) && (given[blen] == '/' || given[blen] == '?')) {
        p = given + blen;
    } else {
        const char *scheme = strstr(given, "://");
        if (scheme) {
            p = strchr(scheme + 3, '/');
            if (!p)
                return SAASD_EINVAL;
        }
        if (*p != '/')
            return SAASD_EINVAL;
    }
    int has_version = strstr(p, "api-version=") != NULL;
    int n = snprintf(out, URL_MAX, "%s%s%s%s%s", mp->base, p, has_version ? "" : strchr(p, '?') ? "&" : "?",
                     has_version ? "" : "api-version=", has_version ? "" : mp->api_version);
    return n > 0 && n < URL_MAX ? 0 : SAASD_ETOOBIG;
}

/* Short message from an error body of any §8.1 shape, or its text. */
static void parse_error(struct mp_result *res, const char *raw)
{
    const json_t *e = res->body;
    res->error_code[0] = res->message[0] = 0;
    if (e) {
        json_t *inner = jl_get(e, "error");
        if (json_is_object(inner))
            e = inner;
        jl_string(e, "code", res->error_code, sizeof res->error_code);
        jl_string(e, "message", res->message, sizeof res->message);
        if (!res->message[0]) {
            json_t *d = jl_get(e, "details");
            if (json_is_array(d))
                d = json_array_get(d, 0);
            if (json_is_object(d))
                jl_string(d, "message", res->message, sizeof res->message);
        }
    }
    if (!res->message[0] && raw && *raw) {
        size_t i = 0;
        for (; raw[i] && i < sizeof res->message - 1; i++)
            res->message[i] = isprint((unsigned char)raw[i]) ? raw[i] : ' ';
        res->message[i] = 0;
    }
}

static int status_to_err(long status)
{
    if (status >= 200 && status < 300)
        return 0;
    switch (status) {
    case 401:
    case 403: return SAASD_EAUTH;
    case 404: return SAASD_ENOTFOUND;
    case 409: return SAASD_ECONFLICT;
    case 429: return SAASD_ERETRY;
    default:  return status >= 500 ? SAASD_ERETRY : SAASD_EHTTP;
    }
}

static void count(enum mp_endpoint ep, int transport_rc, long status, double seconds)
{
    char labels[96];
    if (transport_rc)
        snprintf(labels, sizeof labels, "endpoint=\"%s\",status=\"%s\"", mp_endpoint_name(ep),
                 transport_rc == SAASD_ETIMEOUT ? "timeout" : "error");
    else
        snprintf(labels, sizeof labels, "endpoint=\"%s\",status=\"%ld\"", mp_endpoint_name(ep), status);
    metrics_inc("saasd_upstream_requests_total", labels);
    snprintf(labels, sizeof labels, "endpoint=\"%s\"", mp_endpoint_name(ep));
    metrics_observe("saasd_upstream_request_seconds", labels, seconds);
}

/* The answer's text beside its tree, for a caller that passes it on as it came (one encoding
 * less per event): only a parsed 2xx object on one line (records are one line each). */
static void keep_text(struct mp_result *res, struct http_response *hr)
{
    free(res->text);
    res->text = NULL;
    if (!res->want_text || hr->status < 200 || hr->status >= 300 || !json_is_object(res->body) ||
        !jl_text_one_line(hr->body, hr->body_len))
        return;
    res->text = hr->body; /* NUL-terminated by http_client_do */
    hr->body = NULL;
}

/* Clears res for a new call, keeping what the caller set: its correlation id (a new one when
 * it set none), its wait budget and whether it wants the answer's text. */
static int result_reset(struct mp_result *res)
{
    char saved_corr[sizeof res->correlation_id];
    snprintf(saved_corr, sizeof saved_corr, "%s", res->correlation_id);
    long max_wait_ms = res->max_wait_ms;
    int want_text = res->want_text;
    mp_result_clear(res);
    res->max_wait_ms = max_wait_ms;
    res->want_text = want_text;
    if (saved_corr[0])
        snprintf(res->correlation_id, sizeof res->correlation_id, "%s", saved_corr);
    else if (crypto_id(res->correlation_id))
        return SAASD_EINTERNAL;
    return 0;
}

/* One request on the wire under a new request id; the transport's code (0: an answer is in
 * *hr), and how long it took. */
static int send_once(struct mp_client *mp, const struct call *c, const char *auth, const char *body_text,
                     struct mp_result *res, struct http_response *hr, double *secs)
{
    crypto_id(res->request_id);
    struct http_header h[6];
    size_t nh = 0;
    h[nh++] = (struct http_header){"Authorization", auth};
    h[nh++] = (struct http_header){"Accept", "application/json"};
    h[nh++] = (struct http_header){"x-ms-requestid", res->request_id};
    h[nh++] = (struct http_header){"x-ms-correlationid", res->correlation_id};
    if (body_text)
        h[nh++] = (struct http_header){"Content-Type", "application/json"};
    if (c->marketplace_token)
        h[nh++] = (struct http_header){"x-ms-marketplace-token", c->marketplace_token};
    struct http_request req = {.method = c->method, .url = c->url, .headers = h, .nheaders = nh,
                               .body = body_text, .body_len = body_text ? strlen(body_text) : 0,
                               .timeout_ms = mp->timeout_ms};
    long long t0 = mono_ms();
    int trc = http_client_do(mp->http, &req, hr);
    *secs = (double)(mono_ms() - t0) / 1000.0;
    return trc;
}

/* Microsoft's ids, the Operation-Location and the parsed body of an answer into res. */
static void read_answer(struct mp_result *res, int trc, struct http_response *hr)
{
    char hv[1024];
    res->ms_request_id[0] = res->ms_correlation_id[0] = 0;
    if (trc)
        return;
    if (http_response_header(hr, "x-ms-requestid", hv, sizeof hv))
        snprintf(res->ms_request_id, sizeof res->ms_request_id, "%.79s", hv);
    if (http_response_header(hr, "x-ms-correlationid", hv, sizeof hv))
        snprintf(res->ms_correlation_id, sizeof res->ms_correlation_id, "%.79s", hv);
    if (http_response_header(hr, "Operation-Location", hv, sizeof hv)) {
        snprintf(res->operation_location, sizeof res->operation_location, "%s", hv);
        char *q = strchr(hv, '?');
        if (q)
            *q = 0;
        char *last = strrchr(hv, '/');
        snprintf(res->operation_id, sizeof res->operation_id, "%.39s", last ? last + 1 : hv);
    }
    json_decref(res->body);
    res->body = hr->body_len ? json_loadb(hr->body, hr->body_len, JSON_DECODE_ANY, NULL) : NULL;
    keep_text(res, hr);
}

/* A 401/403 to the cached token: the token is dropped so that the next attempt gets a new one. */
static void drop_refused_token(struct mp_client *mp, const struct call *c, struct mp_result *res,
                               struct http_response *hr, const char *token)
{
    char status_text[16];
    snprintf(status_text, sizeof status_text, "%ld", res->status);
    parse_error(res, hr->body);
    token_cache_invalidate(mp->tokens, token);
    log_warn("mp", "token refused, retrying once with a new token", "endpoint", mp_endpoint_name(c->ep), "status",
             status_text, "request_id", res->request_id, "correlation_id", res->correlation_id);
}

/* What an attempt's outcome means: its code as the return value; whether to try again, and
 * after the wait the marketplace asked for (-1: none asked). */
static int judge(const struct mp_client *mp, const struct call *c, struct mp_result *res, int trc,
                 const struct http_response *hr, int *again, long *wait_ms)
{
    char hv[1024];
    *again = 0;
    *wait_ms = -1;
    if (trc) {
        snprintf(res->message, sizeof res->message, "request failed: %s", saasd_strerror(trc));
        *again = c->repeat_safe;
        return trc;
    }
    if (hr->status >= 200 && hr->status < 300)
        return 0;
    parse_error(res, hr->body);
    if (hr->status == 429) {
        *again = 1; /* throttled requests were not processed: safe for every call */
        *wait_ms = retry_after_ms(http_response_header(hr, "Retry-After", hv, sizeof hv),
                                  mp->retry.retry_after_cap_ms);
    } else if (hr->status >= 500) {
        *again = c->repeat_safe;
    }
    return status_to_err(hr->status);
}

/* note after res's message, "; "-separated. */
static void append_note(struct mp_result *res, const char *note)
{
    size_t n = strlen(res->message);
    snprintf(res->message + n, sizeof res->message - n, "%s%s", n ? "; " : "", note);
}

/* The caller's wait budget: better a quick "try again" than a wait nobody sees end. 1 when
 * waiting wait_ms more would pass it (said in the message of a failed call). */
static int over_wait_budget(struct mp_result *res, int rc, long waited_ms, long wait_ms)
{
    if (res->max_wait_ms <= 0 || waited_ms + wait_ms <= res->max_wait_ms)
        return 0;
    if (rc != 0) {
        char note[160];
        snprintf(note, sizeof note, "not retried: %ld ms more would pass the %ld ms this call may wait", wait_ms,
                 res->max_wait_ms);
        append_note(res, note);
    }
    return 1;
}

static void log_attempt(const struct call *c, const struct mp_result *res, int rc, int trc, int last, double secs)
{
    char status_text[16], attempt_text[16], ms_text[24];
    snprintf(status_text, sizeof status_text, "%ld", res->status);
    snprintf(attempt_text, sizeof attempt_text, "%d", res->attempts);
    snprintf(ms_text, sizeof ms_text, "%.0f", secs * 1000);
    const char *outcome = trc ? saasd_strerror(trc) : status_text;
    if (rc == 0)
        log_info("mp", "call", "endpoint", mp_endpoint_name(c->ep), "method", c->method, "status", outcome, "attempt",
                 attempt_text, "ms", ms_text, "request_id", res->request_id, "correlation_id", res->correlation_id,
                 "ms_request_id", res->ms_request_id, "ms_correlation_id", res->ms_correlation_id);
    else
        log_event(last ? LOG_ERROR : LOG_WARN, "mp", last ? "call failed" : "call failed, retrying", "endpoint",
                  mp_endpoint_name(c->ep), "method", c->method, "status", outcome, "attempt", attempt_text, "ms",
                  ms_text, "code", res->error_code, "error", res->message, "request_id", res->request_id,
                  "correlation_id", res->correlation_id, "ms_request_id", res->ms_request_id, "ms_correlation_id",
                  res->ms_correlation_id, (char *)0);
}

/* The request engine: auth, ids, retries, parsing. */
static int mp_call(struct mp_client *mp, const struct call *c, struct mp_result *res)
{
    /* "Bearer " + the token, read straight into the header line: no heap copy of the token per
     * call, and only the bytes used are wiped at the end. */
    char auth[TOKEN_BUF + 16]; /* not initialised: that would zero all of it every call */
    memcpy(auth, "Bearer ", 7);
    char *const token = auth + 7;
    token[0] = 0;
    char *body_text = NULL;
    int rc = result_reset(res), auth_retried = 0;
    long waited_ms = 0;
    if (rc)
        return rc;
    if (c->body && !(body_text = json_dumps(c->body, JSON_COMPACT))) {
        rc = SAASD_ENOMEM;
        goto fail;
    }
    for (int tries = 0;;) {
        rc = token_cache_get(mp->tokens, token, TOKEN_BUF);
        if (rc) {
            snprintf(res->message, sizeof res->message, "no access token: %s", saasd_strerror(rc));
            goto fail;
        }
        struct http_response hr;
        double secs;
        int trc = send_once(mp, c, auth, body_text, res, &hr, &secs), again;
        res->attempts = ++tries;
        res->status = trc ? 0 : hr.status;
        count(c->ep, trc, res->status, secs);
        read_answer(res, trc, &hr);
        if (!trc && (hr.status == 401 || hr.status == 403) && !auth_retried) {
            drop_refused_token(mp, c, res, &hr, token);
            http_response_free(&hr);
            auth_retried = 1;
            rc = SAASD_EAUTH;
            continue; /* the one auth retry does not count against the attempts */
        }
        long wait_ms;
        rc = judge(mp, c, res, trc, &hr, &again, &wait_ms);
        http_response_free(&hr);
        if (again && wait_ms < 0)
            wait_ms = retry_backoff_ms(&mp->retry, tries);
        int over_budget = again && over_wait_budget(res, rc, waited_ms, wait_ms);
        int last = !again || tries >= mp->retry.max_attempts || over_budget;
        log_attempt(c, res, rc, trc, last, secs);
        if (rc == 0 || last)
            break;
        retry_sleep_ms(wait_ms);
        waited_ms += wait_ms;
    }
    if (rc == SAASD_ERETRY && !c->repeat_safe && res->status >= 500)
        append_note(res, "not re-sent: the call is not safe to repeat");
fail:
    explicit_bzero(auth, 7 + strnlen(token, TOKEN_BUF));
    free(body_text);
    return rc;
}

/* ---- endpoints ---- */

/* URL of saas/subscriptions/{sub_id}{suffix}[?...&query]; SAASD_EINVAL for an id that is not
 * URL-safe, SAASD_ETOOBIG when it does not fit. */
static int sub_url(const struct mp_client *mp, const char *sub_id, const char *suffix, const char *query,
                   char url[URL_MAX])
{
    char path[512];
    if (!id_ok(sub_id))
        return SAASD_EINVAL;
    int n = snprintf(path, sizeof path, "saas/subscriptions/%s%s", sub_id, suffix ? suffix : "");
    if (n <= 0 || (size_t)n >= sizeof path)
        return SAASD_ETOOBIG;
    return build_url(mp, url, path, query);
}

int mp_resolve(struct mp_client *mp, const char *marketplace_token, struct mp_result *res)
{
    char url[URL_MAX];
    if (!marketplace_token || !*marketplace_token || strlen(marketplace_token) > 8192 ||
        strpbrk(marketplace_token, "\r\n"))
        return SAASD_EINVAL;
    int rc = build_url(mp, url, "saas/subscriptions/resolve", NULL);
    if (rc)
        return rc;
    struct call c = {.ep = MP_RESOLVE, .method = "POST", .url = url, .marketplace_token = marketplace_token,
                     .repeat_safe = 1};
    return mp_call(mp, &c, res);
}

int mp_get_subscription(struct mp_client *mp, const char *sub_id, struct mp_result *res)
{
    char url[URL_MAX];
    int rc = sub_url(mp, sub_id, NULL, NULL, url);
    if (rc)
        return rc;
    struct call c = {.ep = MP_GET, .method = "GET", .url = url, .repeat_safe = 1};
    return mp_call(mp, &c, res);
}

int mp_activate(struct mp_client *mp, const char *sub_id, const char *plan_id, long long quantity,
                struct mp_result *res)
{
    char url[URL_MAX];
    if (!plan_id || !*plan_id)
        return SAASD_EINVAL;
    int rc = sub_url(mp, sub_id, "/activate", NULL, url);
    if (rc)
        return rc;
    json_t *body = quantity >= 0 ? json_pack("{s:s, s:I}", "planId", plan_id, "quantity", (json_int_t)quantity)
                                 : json_pack("{s:s}", "planId", plan_id);
    if (!body)
        return SAASD_ENOMEM;
    struct call c = {.ep = MP_ACTIVATE, .method = "POST", .url = url, .body = body, .repeat_safe = 1};
    rc = mp_call(mp, &c, res);
    json_decref(body);
    if (rc == SAASD_EHTTP && res->status == 400 && res->attempts > 1) {
        /* a retried activate may have landed the first time: confirm with GET (§3.5) */
        struct mp_result check = {0};
        snprintf(check.correlation_id, sizeof check.correlation_id, "%s", res->correlation_id);
        if (mp_get_subscription(mp, sub_id, &check) == 0 &&
            jl_string_is(check.body, "saasSubscriptionStatus", "Subscribed") &&
            jl_string_is(check.body, "planId", plan_id)) {
            log_info("mp", "activate answered 400 on a retry, but the subscription is Subscribed on the plan",
                     "subscription_id", sub_id, "correlation_id", res->correlation_id);
            res->status = 200;
            snprintf(res->message, sizeof res->message, "already activated (confirmed by GET)");
            rc = 0;
        }
        mp_result_clear(&check);
    }
    return rc;
}

/* Append the items of page[key] (or of a bare array page) to all. */
static void append_items(json_t *all, const json_t *page, const char *key)
{
    const json_t *items = json_is_array(page) ? page : jl_get(page, key);
    size_t i;
    json_t *it;
    if (json_is_array(items))
        json_array_foreach(items, i, it) json_array_append(all, it);
}

/* Every page of GET /subscriptions in turn; fn sees each page's items (borrowed) and may stop
 * the walk with a non-zero return, which is returned. */
int mp_list_subscriptions_each(struct mp_client *mp, int (*fn)(void *arg, json_t *items), void *arg,
                               struct mp_result *res)
{
    char url[URL_MAX], next[URL_MAX];
    int rc = build_url(mp, url, "saas/subscriptions", NULL);
    if (rc)
        return rc;
    int pages = 0, total_attempts = 0;
    for (;;) {
        struct call c = {.ep = MP_LIST, .method = "GET", .url = url, .repeat_safe = 1};
        rc = mp_call(mp, &c, res); /* keeps res->correlation_id across pages */
        total_attempts += res->attempts;
        if (rc)
            break;
        json_t *items = json_is_array(res->body) ? res->body : jl_get(res->body, "subscriptions");
        json_t *empty = json_is_array(items) ? NULL : json_array();
        rc = fn(arg, empty ? empty : items);
        json_decref(empty);
        if (rc)
            break;
        pages++;
        char link[URL_MAX];
        if (jl_string(res->body, "@nextLink", link, sizeof link) != 0)
            break; /* missing, null or empty: last page */
        if (pages >= mp->max_pages) {
            log_error("mp", "list stopped at the page limit", "pages", "max_pages");
            rc = SAASD_ETOOBIG;
            break;
        }
        rc = url_on_base(mp, link, next);
        if (rc)
            break;
        if (!strcmp(next, url)) {
            rc = SAASD_EHTTP; /* a link to itself would loop forever */
            snprintf(res->message, sizeof res->message, "@nextLink points to the same page");
            break;
        }
        memcpy(url, next, sizeof url);
    }
    res->attempts = total_attempts;
    if (rc == 0) {
        char pages_text[16];
        snprintf(pages_text, sizeof pages_text, "%d", pages);
        log_info("mp", "listed subscriptions", "pages", pages_text, "correlation_id", res->correlation_id);
    }
    return rc;
}

static int gather(void *arg, json_t *items)
{
    append_items(arg, items, "subscriptions");
    return 0;
}

int mp_list_subscriptions(struct mp_client *mp, struct mp_result *res)
{
    json_t *all = json_array();
    if (!all)
        return SAASD_ENOMEM;
    int rc = mp_list_subscriptions_each(mp, gather, all, res);
    if (rc) {
        json_decref(all);
        return rc;
    }
    json_decref(res->body);
    res->body = json_pack("{s:o}", "subscriptions", all);
    return res->body ? 0 : SAASD_ENOMEM;
}

int mp_list_plans(struct mp_client *mp, const char *sub_id, const char *plan_id, struct mp_result *res)
{
    char url[URL_MAX], query[512] = "";
    if (plan_id && *plan_id) {
        char *e = NULL;
        if (http_url_escape(plan_id, &e))
            return SAASD_ENOMEM;
        snprintf(query, sizeof query, "planId=%s", e);
        free(e);
    }
    int rc = sub_url(mp, sub_id, "/listAvailablePlans", query[0] ? query : NULL, url);
    if (rc)
        return rc;
    struct call c = {.ep = MP_PLANS, .method = "GET", .url = url, .repeat_safe = 1};
    rc = mp_call(mp, &c, res);
    if (rc == 0 && !json_is_object(res->body)) { /* empty body (docs) or a bare array (emulator) */
        json_t *plans = json_array();
        append_items(plans, res->body, "plans");
        json_decref(res->body);
        res->body = json_pack("{s:o}", "plans", plans);
    }
    return rc;
}

int mp_list_operations(struct mp_client *mp, const char *sub_id, struct mp_result *res)
{
    char url[URL_MAX];
    int rc = sub_url(mp, sub_id, "/operations", NULL, url);
    if (rc)
        return rc;
    struct call c = {.ep = MP_LIST_OPERATIONS, .method = "GET", .url = url, .repeat_safe = 1};
    rc = mp_call(mp, &c, res);
    if (rc == 0 && !json_is_array(jl_get(res->body, "operations"))) {
        json_t *ops = json_array();
        append_items(ops, res->body, "operations");
        json_decref(res->body);
        res->body = json_pack("{s:o}", "operations", ops);
    }
    return rc;
}

static void note_operation_status(struct mp_result *res)
{
    res->operation_status[0] = 0;
    jl_string(res->body, "status", res->operation_status, sizeof res->operation_status);
}

/* URL of /subscriptions/{sub}/operations/{op}; SAASD_EINVAL for ids that are not URL-safe or
 * too long. */
static int operation_url(struct mp_client *mp, const char *sub_id, const char *op_id, char url[URL_MAX])
{
    char suffix[200];
    if (!id_ok(op_id) || (size_t)snprintf(suffix, sizeof suffix, "/operations/%s", op_id) >= sizeof suffix)
        return SAASD_EINVAL;
    int rc = sub_url(mp, sub_id, suffix, NULL, url);
    return rc == SAASD_ETOOBIG ? SAASD_EINVAL : rc;
}

int mp_get_operation(struct mp_client *mp, const char *sub_id, const char *op_id, struct mp_result *res)
{
    char url[URL_MAX];
    int rc = operation_url(mp, sub_id, op_id, url);
    if (rc)
        return rc;
    struct call c = {.ep = MP_GET_OPERATION, .method = "GET", .url = url, .repeat_safe = 1};
    rc = mp_call(mp, &c, res);
    if (rc == 0)
        note_operation_status(res);
    return rc;
}

int mp_ack_operation(struct mp_client *mp, const char *sub_id, const char *op_id, const char *status,
                     struct mp_result *res)
{
    char url[URL_MAX];
    if (!status || (strcmp(status, "Success") && strcmp(status, "Failure")))
        return SAASD_EINVAL;
    int rc = operation_url(mp, sub_id, op_id, url);
    if (rc)
        return rc;
    json_t *body = json_pack("{s:s}", "status", status);
    if (!body)
        return SAASD_ENOMEM;
    struct call c = {.ep = MP_ACK_OPERATION, .method = "PATCH", .url = url, .body = body, .repeat_safe = 1};
    rc = mp_call(mp, &c, res);
    json_decref(body);
    return rc;
}

int mp_wait_operation(struct mp_client *mp, const char *operation_location, long timeout_ms, struct mp_result *res)
{
    char url[URL_MAX];
    if (!operation_location || !*operation_location)
        return SAASD_EINVAL;
    int rc = url_on_base(mp, operation_location, url);
    if (rc)
        return rc;
    long long deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : mp->poll_timeout_ms);
    for (int polls = 1;; polls++) {
        struct call c = {.ep = MP_GET_OPERATION, .method = "GET", .url = url, .repeat_safe = 1};
        rc = mp_call(mp, &c, res);
        if (rc)
            return rc;
        note_operation_status(res);
        if (mp_operation_is_final(res->operation_status)) {
            char polls_text[16];
            snprintf(polls_text, sizeof polls_text, "%d", polls);
            log_info("mp", "operation finished", "status", res->operation_status, "polls", polls_text,
                     "correlation_id", res->correlation_id);
            return 0;
        }
        long long left = deadline - mono_ms();
        if (left <= 0) {
            snprintf(res->message, sizeof res->message, "operation still %s when the poll bound passed",
                     res->operation_status[0] ? res->operation_status : "pending");
            return SAASD_ETIMEOUT;
        }
        retry_sleep_ms(left < mp->poll_interval_ms ? (long)left : mp->poll_interval_ms);
    }
}

/* After a transient failure of an unsafe PATCH/DELETE: is the change already under way or
 * done? 1 = yes (res describes it), 0 = no (safe to resend), <0 = could not tell. */
static int change_visible(struct mp_client *mp, const char *sub_id, const char *action, const char *plan_id,
                          long long quantity, struct mp_result *res)
{
    struct mp_result check = {0};
    snprintf(check.correlation_id, sizeof check.correlation_id, "%s", res->correlation_id);
    int rc = mp_list_operations(mp, sub_id, &check);
    if (rc) {
        mp_result_clear(&check);
        return rc;
    }
    json_t *ops = jl_get(check.body, "operations");
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        long long q;
        if (!jl_string_is(op, "action", action))
            continue;
        if (plan_id && !jl_string_is(op, "planId", plan_id))
            continue;
        if (quantity >= 0 && (jl_int(op, "quantity", &q) || q != quantity))
            continue;
        char id[40];
        if (jl_string(op, "id", id, sizeof id) || !id_ok(id))
            continue;
        snprintf(res->operation_id, sizeof res->operation_id, "%s", id);
        snprintf(res->operation_location, sizeof res->operation_location,
                 "%s/api/saas/subscriptions/%s/operations/%s?api-version=%s", mp->base, sub_id, id, mp->api_version);
        res->status = 202;
        snprintf(res->message, sizeof res->message, "found the operation already under way; not re-sent");
        mp_result_clear(&check);
        return 1;
    }
    mp_result_clear(&check);
    snprintf(check.correlation_id, sizeof check.correlation_id, "%s", res->correlation_id);
    rc = mp_get_subscription(mp, sub_id, &check);
    int done = 0;
    if (rc == 0) {
        long long q;
        if (!strcmp(action, "Unsubscribe"))
            done = jl_string_is(check.body, "saasSubscriptionStatus", "Unsubscribed");
        else if (plan_id)
            done = jl_string_is(check.body, "planId", plan_id);
        else
            done = jl_int(check.body, "quantity", &q) == 0 && q == quantity;
    } else if (rc == SAASD_ENOTFOUND && !strcmp(action, "Unsubscribe")) {
        done = 0;
    }
    mp_result_clear(&check);
    if (rc && rc != SAASD_ENOTFOUND)
        return rc;
    if (done) {
        res->status = 200;
        res->operation_location[0] = res->operation_id[0] = 0;
        snprintf(res->message, sizeof res->message, "the change is already applied; not re-sent");
    }
    return done;
}

/* PATCH/DELETE subscription: 429 is retried inside mp_call; other transient failures are
 * re-sent only after change_visible() says the change is not there. */
static int unsafe_change(struct mp_client *mp, enum mp_endpoint ep, const char *method, const char *sub_id,
                         const json_t *body, const char *action, const char *plan_id, long long quantity,
                         struct mp_result *res)
{
    char url[URL_MAX];
    int rc = sub_url(mp, sub_id, NULL, NULL, url);
    if (rc)
        return rc;
    int sends = 0;
    for (;;) {
        struct call c = {.ep = ep, .method = method, .url = url, .body = body, .repeat_safe = 0};
        rc = mp_call(mp, &c, res);
        sends += res->attempts;
        int transient = rc == SAASD_ETIMEOUT || rc == SAASD_EIO || (rc == SAASD_ERETRY && res->status >= 500);
        if (!transient || sends >= mp->retry.max_attempts)
            break;
        retry_sleep_ms(retry_backoff_ms(&mp->retry, sends));
        int seen = change_visible(mp, sub_id, action, plan_id, quantity, res);
        if (seen == 1) {
            log_info("mp", "change already under way or applied after a failed answer; not re-sent", "endpoint",
                     mp_endpoint_name(ep), "subscription_id", sub_id, "operation_id", res->operation_id,
                     "correlation_id", res->correlation_id);
            rc = 0;
            break;
        }
        if (seen < 0)
            break; /* cannot tell: surface the original failure rather than risk a double change */
        log_warn("mp", "change not visible after a failed answer; re-sending", "endpoint", mp_endpoint_name(ep),
                 "subscription_id", sub_id, "correlation_id", res->correlation_id);
    }
    res->attempts = sends;
    return rc;
}

int mp_change_plan(struct mp_client *mp, const char *sub_id, const char *plan_id, struct mp_result *res)
{
    if (!plan_id || !*plan_id)
        return SAASD_EINVAL;
    json_t *body = json_pack("{s:s}", "planId", plan_id);
    if (!body)
        return SAASD_ENOMEM;
    int rc = unsafe_change(mp, MP_CHANGE_PLAN, "PATCH", sub_id, body, "ChangePlan", plan_id, -1, res);
    json_decref(body);
    return rc;
}

int mp_change_quantity(struct mp_client *mp, const char *sub_id, long long quantity, struct mp_result *res)
{
    if (quantity <= 0)
        return SAASD_EINVAL;
    json_t *body = json_pack("{s:I}", "quantity", (json_int_t)quantity);
    if (!body)
        return SAASD_ENOMEM;
    int rc = unsafe_change(mp, MP_CHANGE_QUANTITY, "PATCH", sub_id, body, "ChangeQuantity", NULL, quantity, res);
    json_decref(body);
    return rc;
}

int mp_delete_subscription(struct mp_client *mp, const char *sub_id, struct mp_result *res)
{
    return unsafe_change(mp, MP_DELETE, "DELETE", sub_id, NULL, "Unsubscribe", NULL, -1, res);
}

int mp_usage_event(struct mp_client *mp, const json_t *event, struct mp_result *res)
{
    char url[URL_MAX];
    if (!json_is_object(event))
        return SAASD_EINVAL;
    int rc = build_url(mp, url, "usageEvent", NULL);
    if (rc)
        return rc;
    struct call c = {.ep = MP_USAGE_EVENT, .method = "POST", .url = url, .body = event, .repeat_safe = 1};
    return mp_call(mp, &c, res);
}

int mp_usage_events(struct mp_client *mp, const struct mp_usage_query *q, struct mp_result *res)
{
    if (!q || !q->start || !*q->start)
        return SAASD_EINVAL;
    const char *names[] = {"usageStartDate", "UsageEndDate", "offerId", "planId", "dimension",
                           "azureSubscriptionId", "reconStatus"}; /* spelled as §7.1 spells them */
    const char *values[] = {q->start, q->end, q->offer_id, q->plan_id, q->dimension, q->azure_subscription_id,
                            q->recon_status};
    char query[1024] = "", url[URL_MAX];
    size_t used = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char *value = NULL;
        if (!values[i])
            continue;
        if (http_url_escape(values[i], &value))
            return SAASD_ENOMEM;
        int n = snprintf(query + used, sizeof query - used, "%s%s=%s", used ? "&" : "", names[i], value);
        free(value);
        if (n < 0 || (size_t)n >= sizeof query - used)
            return SAASD_EINVAL;
        used += (size_t)n;
    }
    int rc = build_url(mp, url, "usageEvents", query);
    if (rc)
        return rc;
    struct call c = {.ep = MP_USAGE_EVENTS, .method = "GET", .url = url, .repeat_safe = 1};
    rc = mp_call(mp, &c, res);
    if (rc == 0) {
        json_t *rows = json_array();
        append_items(rows, res->body, "usage");
        json_decref(res->body);
        res->body = json_pack("{s:o}", "usage", rows);
    }
    return rc;
}

int mp_batch_usage_event(struct mp_client *mp, const json_t *events, struct mp_result *res)
{
    char url[URL_MAX];
    if (!json_is_array(events) || json_array_size(events) == 0 || json_array_size(events) > 25)
        return SAASD_EINVAL;
    int rc = build_url(mp, url, "batchUsageEvent", NULL);
    if (rc)
        return rc;
    json_t *body = json_pack("{s:O}", "request", (json_t *)(uintptr_t)events);
    if (!body)
        return SAASD_ENOMEM;
    struct call c = {.ep = MP_BATCH_USAGE_EVENT, .method = "POST", .url = url, .body = body, .repeat_safe = 1};
    rc = mp_call(mp, &c, res);
    json_decref(body);
    return rc;
}
