/* Shared fixture of the emulator tests: one in-process emulator on a free loopback port, plain
 * HTTP calls to it through the project's libcurl client, and a tiny webhook receiver on httpd.
 * Everything goes over real sockets; nothing calls emulator internals. */
#ifndef SAASD_TEST_EMU_HARNESS_H
#define SAASD_TEST_EMU_HARNESS_H

#include "check.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/log.h"
#include "emu/emu.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#define TENANT EMU_DEFAULT_TENANT
#define CLIENT EMU_DEFAULT_CLIENT
#define MP_APP "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"

static struct emu *E;
static struct http_client *H;
static char BASE[128];
static char TOKEN[8192];

struct reply {
    long status;
    char *body;
    json_t *json;
    struct http_response raw;
};

static inline void reply_free(struct reply *r)
{
    json_decref(r->json);
    http_response_free(&r->raw);
    memset(r, 0, sizeof *r);
}

static inline const char *reply_header(const struct reply *r, const char *name)
{
    static _Thread_local char buf[2048];
    return http_response_header(&r->raw, name, buf, sizeof buf);
}

/* One request; extra headers as NULL-terminated (name, value) pairs. */
static inline struct reply call(const char *method, const char *url, const char *body, ...)
{
    struct http_header hdrs[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, body);
    for (const char *name; n < 8 && (name = va_arg(ap, const char *));) {
        hdrs[n].name = name;
        hdrs[n].value = va_arg(ap, const char *);
        n++;
    }
    va_end(ap);
    struct http_request rq = {.method = method, .url = url, .headers = hdrs, .nheaders = n, .body = body,
                              .body_len = body ? strlen(body) : 0, .timeout_ms = 5000};
    struct reply r = {0};
    http_client_do(H, &rq, &r.raw);
    r.status = r.raw.status;
    r.body = r.raw.body;
    r.json = r.body && *r.body ? json_loads(r.body, JSON_DECODE_ANY, NULL) : NULL;
    return r;
}

static inline char *url_of(const char *path)
{
    static _Thread_local char u[4][2048];
    static _Thread_local int i;
    i = (i + 1) % 4;
    snprintf(u[i], sizeof u[i], "%s%s", BASE, path);
    return u[i];
}

/* Marketplace call with the bearer and api-version added. */
static inline struct reply mp(const char *method, const char *path, const char *body)
{
    char url[2048], auth[8300];
    snprintf(url, sizeof url, "%s%s%sapi-version=2018-08-31", BASE, path, strchr(path, '?') ? "&" : "?");
    snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
    return call(method, url, body, "Authorization", auth, "Content-Type", "application/json", NULL);
}

static inline struct reply ctl(const char *method, const char *path, const char *body)
{
    return call(method, url_of(path), body, "Content-Type", "application/json", NULL);
}

static inline const char *jstr(const json_t *j, const char *key) { return json_string_value(json_object_get(j, key)); }

/* a.b.c lookup */
static inline json_t *jpath(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, (size_t)atoi(k)) : json_object_get(j, k);
    return j;
}
static inline const char *jps(json_t *j, const char *path) { return json_string_value(jpath(j, path)); }
static inline int jstatus_is(json_t *j, const char *code) { return jps(j, "code") && !strcmp(jps(j, "code"), code); }

/* A v2 token for any registered app. */
static inline int fetch_app_token(const char *tenant, const char *client, const char *secret, char *out, size_t size)
{
    char body[512], path[256];
    snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s%%2F.default",
             client, secret, MP_APP);
    snprintf(path, sizeof path, "/%s/oauth2/v2.0/token", tenant);
    struct reply r = call("POST", url_of(path), body, "Content-Type", "application/x-www-form-urlencoded", NULL);
    int ok = r.status == 200 && jstr(r.json, "access_token");
    long status = r.status;
    if (ok)
        snprintf(out, size, "%s", jstr(r.json, "access_token"));
    reply_free(&r);
    return ok ? 0 : (int)-status;
}

static inline int fetch_token(int version, char *out, size_t size)
{
    char body[512], path[256];
    if (version == 1) {
        snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s&client_secret=emulator-secret&resource=%s",
                 CLIENT, MP_APP);
        snprintf(path, sizeof path, "/%s/oauth2/token", TENANT);
    } else {
        snprintf(body, sizeof body,
                 "grant_type=client_credentials&client_id=%s&client_secret=emulator-secret&scope=%s%%2F.default",
                 CLIENT, MP_APP);
        snprintf(path, sizeof path, "/%s/oauth2/v2.0/token", TENANT);
    }
    struct reply r = call("POST", url_of(path), body, "Content-Type", "application/x-www-form-urlencoded", NULL);
    int ok = r.status == 200 && jstr(r.json, "access_token");
    if (ok)
        snprintf(out, size, "%s", jstr(r.json, "access_token"));
    reply_free(&r);
    return ok ? 0 : -1;
}

/* Starts the emulator with fast knobs; tweak options through `adjust` (may be NULL). */
static inline void emu_up(void (*adjust)(struct emu_options *))
{
    log_set_level(LOG_WARN);
    if (!H)
        http_client_new(&(struct http_client_options){.timeout_ms = 5000}, &H);
    struct emu_options o;
    emu_options_defaults(&o);
    o.port = 0;
    o.ack_window_ms = 400;
    o.op_delay_ms = 50;
    o.webhook_backoff_ms = 50;
    o.webhook_timeout_ms = 500;
    if (adjust)
        adjust(&o);
    if (emu_start(&o, &E) != 0) {
        printf("not ok - the emulator starts\n");
        exit(1);
    }
    snprintf(BASE, sizeof BASE, "%s", emu_base_url(E));
    if (fetch_token(2, TOKEN, sizeof TOKEN) != 0) {
        printf("not ok - the emulator issues a token\n");
        exit(1);
    }
}

static inline void emu_down(void)
{
    emu_stop(E);
    E = NULL;
}

/* Buys a plan; returns the subscription id (static buffer) and, if wanted, the landing token. */
static inline const char *buy(const char *body, char *token_out, size_t token_size)
{
    static _Thread_local char sid[64];
    struct reply r = ctl("POST", "/_emulator/purchases", body);
    snprintf(sid, sizeof sid, "%s", jstr(r.json, "subscriptionId") ? jstr(r.json, "subscriptionId") : "none");
    if (token_out)
        snprintf(token_out, token_size, "%s", jstr(r.json, "token") ? jstr(r.json, "token") : "");
    reply_free(&r);
    return sid;
}

/* A customer-side action through the control API; the new operation's id goes to op_out. */
static inline long customer(const char *sid, const char *verb, const char *body, char op_out[64])
{
    char path[256];
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s/%s", sid, verb);
    struct reply r = ctl("POST", path, body ? body : "{}");
    long s = r.status;
    if (op_out)
        snprintf(op_out, 64, "%s", jstr(r.json, "id") ? jstr(r.json, "id") : "none");
    reply_free(&r);
    return s;
}

static inline long activate(const char *sid, const char *body)
{
    char path[256];
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/activate", sid);
    struct reply r = mp("POST", path, body);
    long s = r.status;
    reply_free(&r);
    return s;
}

/* Buys and activates; returns the subscription id in out. */
static inline void subscribed(const char *plan_body, const char *plan, char out[64])
{
    snprintf(out, 64, "%s", buy(plan_body, NULL, 0));
    char b[128];
    snprintf(b, sizeof b, "{\"planId\":\"%s\"}", plan);
    activate(out, b);
}

static inline json_t *get_sub(const char *sid)
{
    char path[256];
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    struct reply r = mp("GET", path, NULL);
    json_t *j = json_incref(r.json);
    reply_free(&r);
    return j;
}

static inline long long sub_quantity(const char *sid)
{
    json_t *j = get_sub(sid);
    long long q = json_integer_value(json_object_get(j, "quantity"));
    json_decref(j);
    return q;
}

static inline const char *sub_status(const char *sid)
{
    static _Thread_local char st[64];
    json_t *j = get_sub(sid);
    snprintf(st, sizeof st, "%s", jstr(j, "saasSubscriptionStatus") ? jstr(j, "saasSubscriptionStatus") : "?");
    json_decref(j);
    return st;
}

static inline json_t *get_op(const char *sid, const char *op)
{
    char path[256];
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/operations/%s", sid, op);
    struct reply r = mp("GET", path, NULL);
    json_t *j = json_incref(r.json);
    reply_free(&r);
    return j;
}

/* Polls the operation until it leaves InProgress or ms pass; returns its final status. */
static inline const char *wait_op(const char *sid, const char *op, int ms)
{
    static _Thread_local char st[32];
    for (int waited = 0;; waited += 20) {
        json_t *j = get_op(sid, op);
        snprintf(st, sizeof st, "%s", jstr(j, "status") ? jstr(j, "status") : "?");
        json_decref(j);
        if (strcmp(st, "InProgress") || waited >= ms)
            return st;
        usleep(20000);
    }
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- webhook receiver ---- */

struct hook {
    char *path;
    char *body;
    char *auth;
    double at;
    json_t *json;
};

static struct {
    pthread_mutex_t lock;
    struct httpd *d;
    struct hook got[64];
    int n;
    int script[16]; /* status per successive call; 0 = use dflt */
    int nscript;
    int dflt;
    int delay_ms;
    char url[128];
} RX = {.lock = PTHREAD_MUTEX_INITIALIZER, .dflt = 200};

static inline void rx_handler(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    (void)arg;
    pthread_mutex_lock(&RX.lock);
    int idx = RX.n;
    if (RX.n < 64) {
        size_t len;
        const char *b = httpd_body(req, &len);
        const char *a = httpd_header(req, "Authorization");
        RX.got[RX.n].path = strdup(httpd_path(req));
        RX.got[RX.n].body = strdup(b);
        RX.got[RX.n].auth = strdup(a ? a : "");
        RX.got[RX.n].at = now_s();
        RX.got[RX.n].json = json_loads(b, 0, NULL);
        RX.n++;
    }
    int status = idx < RX.nscript && RX.script[idx] ? RX.script[idx] : RX.dflt;
    int delay = RX.delay_ms;
    pthread_mutex_unlock(&RX.lock);
    if (delay)
        usleep((useconds_t)delay * 1000);
    httpd_set_body(res, status, NULL, "{}");
}

static inline void rx_start(void)
{
    struct httpd_options o = {.port = 0};
    httpd_start(&o, rx_handler, NULL, &RX.d);
    snprintf(RX.url, sizeof RX.url, "http://127.0.0.1:%u/webhook", httpd_port(RX.d));
}

/* The receiver's answer delay, under RX.lock: its connection threads read it (TSan). */
static inline void rx_set_delay(int ms)
{
    pthread_mutex_lock(&RX.lock);
    RX.delay_ms = ms;
    pthread_mutex_unlock(&RX.lock);
}

static inline void rx_reset(int dflt)
{
    pthread_mutex_lock(&RX.lock);
    for (int i = 0; i < RX.n; i++) {
        free(RX.got[i].path);
        free(RX.got[i].body);
        free(RX.got[i].auth);
        json_decref(RX.got[i].json);
    }
    RX.n = 0;
    RX.nscript = 0;
    RX.dflt = dflt;
    RX.delay_ms = 0;
    pthread_mutex_unlock(&RX.lock);
}

static inline int rx_count(void)
{
    pthread_mutex_lock(&RX.lock);
    int n = RX.n;
    pthread_mutex_unlock(&RX.lock);
    return n;
}

/* Waits until at least n webhooks arrived (or ms pass); returns the count. */
static inline int rx_wait(int n, int ms)
{
    for (int waited = 0; rx_count() < n && waited < ms; waited += 10)
        usleep(10000);
    return rx_count();
}

#endif
