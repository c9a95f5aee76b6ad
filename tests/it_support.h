/* Support for the integration tests: the built-in emulator in-process, the daemon either
 * in-process or as a child process (for SIGKILL), and small HTTP/JSON helpers.
 * Included by tests/test_integration*.c (not a test program itself). */
#ifndef SAASD_IT_SUPPORT_H
#define SAASD_IT_SUPPORT_H

/* Test-only helpers: not every program uses every helper, and paths are bounded by mkdtemp. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "check.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/store.h"
#include "daemon/daemon.h"
#include "daemon/metering.h"
#include "emu/emu.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct http_client *it_http;
static char it_emu_url[128];
static char it_admin_url[128];
static char it_public_url[128];
static const char *it_admin_key = "integration-admin-key";

static long long it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock ms, the daemon's clock for stored times (next_at_ms): it_now_ms() is for timeouts. */
static long long it_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One HTTP call with an optional JSON body; returns the parsed body (or NULL). */
static json_t *it_call(const char *method, const char *url, json_t *body, const char *bearer, long *status, char **raw)
{
    char auth[8300];
    struct http_header h[2] = {{"Content-Type", "application/json"}, {"Authorization", auth}};
    if (bearer)
        snprintf(auth, sizeof auth, "Bearer %s", bearer);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct http_request rq = {.method = method, .url = url, .headers = h, .nheaders = bearer ? 2 : 1, .body = text,
                              .body_len = text ? strlen(text) : 0, .timeout_ms = 30000};
    struct http_response rs;
    int rc = http_client_do(it_http, &rq, &rs);
    free(text);
    json_decref(body);
    if (status)
        *status = rc ? 0 : rs.status;
    json_t *out = rc ? NULL : json_loadb(rs.body, rs.body_len, 0, NULL);
    if (raw)
        *raw = rc ? strdup("") : strdup(rs.body);
    http_response_free(&rs);
    return out;
}

static json_t *it_emu(const char *method, const char *path, json_t *body, long *status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", it_emu_url, path);
    return it_call(method, url, body, NULL, status, NULL);
}

static json_t *it_admin(const char *method, const char *path, json_t *body, long *status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", it_admin_url, path);
    return it_call(method, url, body, it_admin_key, status, NULL);
}

/* The public listener's /metrics text (free it; NULL when it could not be read); *status, when
 * not NULL, receives the HTTP status. */
static char *it_metrics_text(long *status)
{
    char url[600], *text = NULL;
    long st;
    snprintf(url, sizeof url, "%s/metrics", it_public_url);
    json_decref(it_call("GET", url, NULL, NULL, &st, &text));
    if (status)
        *status = st;
    return text;
}

/* The stored events (GET /admin/events), oldest first: a new reference, never NULL. */
static json_t *it_stored_events(void)
{
    long st;
    json_t *r = it_admin("GET", "/admin/events?limit=1000", NULL, &st);
    json_t *e = json_incref(json_object_get(r, "events"));
    json_decref(r);
    return e ? e : json_array();
}

static const char *it_str(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

static unsigned short it_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void it_write_file(const char *path, const char *text)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    fputs(text, f);
    fclose(f);
    rename(tmp, path); /* atomic: the rule watcher never sees half a file */
}

/* Write a daemon config for the emulator at it_emu_url. */
static void it_write_config(const char *path, const char *dir, unsigned short port, unsigned short admin_port,
                            const char *extra)
{
    char text[4096];
    snprintf(text, sizeof text,
             "listen = \"127.0.0.1:%u\"\n"
             "data_dir = \"%s/data\"\n"
             "log_level = \"warn\"\n"
             "workers = 2\n"
             "admin = { listen = \"127.0.0.1:%u\", key_env = \"SAASD_IT_ADMIN_KEY\" }\n"
             "entra = { authority = \"%s\", tenant_id = \"%s\", client_id = \"%s\", secret_env = \"SAASD_IT_SECRET\" }\n"
             "marketplace = { base_url = \"%s\", retry_base_ms = 20, retry_cap_ms = 200, max_attempts = 3, poll_interval_ms = 50 }\n"
             "rules = { dir = \"%s/rules\", cpu_ms = 300 }\n"
             "reconcile = { interval = 0 }\n%s",
             port, dir, admin_port, it_emu_url, EMU_DEFAULT_TENANT, EMU_DEFAULT_CLIENT, it_emu_url, dir,
             extra ? extra : "");
    it_write_file(path, text);
}

/* Start the emulator in-process with fast knobs. */
static struct emu *it_start_emu(void)
{
    struct emu_options o;
    emu_options_defaults(&o);
    o.port = 0;
    o.client_secret = "it-secret";
    o.op_delay_ms = 50;
    o.ack_window_ms = 10000;
    o.webhook_backoff_ms = 50;
    o.webhook_max_attempts = 200;
    o.webhook_timeout_ms = 5000;
    o.seed = 0;
    struct emu *e = NULL;
    if (emu_start(&o, &e) != 0)
        return NULL;
    snprintf(it_emu_url, sizeof it_emu_url, "%s", emu_base_url(e));
    setenv("SAASD_IT_SECRET", "it-secret", 1);
    setenv("SAASD_IT_ADMIN_KEY", it_admin_key, 1);
    return e;
}

/* A fresh test directory (dir, 256 bytes) with an empty rules directory (rules, 512 bytes),
 * the shared HTTP client and the emulator; checks that the emulator started. */
static struct emu *it_setup(const char *name, char *dir, char *rules)
{
    char *t = check_tmpdir(name);
    snprintf(dir, 256, "%s", t);
    free(t);
    snprintf(rules, 512, "%s/rules", dir);
    mkdir(rules, 0700);
    http_client_new(NULL, &it_http);
    struct emu *emu = it_start_emu();
    CHECK(emu != NULL, "the emulator starts in-process");
    return emu;
}

static void it_point_emulator(unsigned short port);

/* Load conf and start the daemon in-process, pointing the emulator and it_admin_url at it.
 * Checks both steps; NULL when either failed. */
static struct daemon *it_start_daemon(const char *conf)
{
    struct saasd_config *cfg = NULL;
    char err[1024];
    int rc = config_load(conf, &cfg, err, sizeof err);
    CHECK(rc == 0, "the config loads");
    if (rc) {
        printf("# %s\n", err);
        return NULL;
    }
    struct daemon *d = NULL;
    CHECK(daemon_start(cfg, &d) == 0, "the daemon starts against the emulator");
    if (!d)
        return NULL;
    it_point_emulator(httpd_port(d->public_httpd));
    if (d->admin_httpd)
        snprintf(it_admin_url, sizeof it_admin_url, "http://127.0.0.1:%u", httpd_port(d->admin_httpd));
    return d;
}

/* Write <dir>/saasd.conf (public listener on port, 0 for none; admin listener on a free port;
 * extra appended, may be NULL) and start the daemon on it. */
static struct daemon *it_start_in(const char *dir, unsigned short port, const char *extra)
{
    char conf[512];
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, port, it_free_port(), extra);
    return it_start_daemon(conf);
}

/* it_setup, then the daemon with the default config on free public and admin ports. NULL, with
 * the emulator stopped, when either failed (both are checked); *emu_out is the emulator. */
static struct daemon *it_setup_and_start(const char *name, char *dir, char *rules, struct emu **emu_out)
{
    struct emu *emu = it_setup(name, dir, rules);
    struct daemon *d = emu ? it_start_in(dir, it_free_port(), NULL) : NULL;
    if (!d && emu) {
        emu_stop(emu);
        emu = NULL;
    }
    *emu_out = emu;
    return d;
}

/* The offer's rule file <rules>/<offer_id>.lua with text (offers without one are held pending). */
static void it_write_rule(const char *rules, const char *offer_id, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.lua", rules, offer_id);
    it_write_file(path, text);
}

/* Subscription stuck (never bought): its event <prefix>-0 waits in the outbox for an hour, and
 * n newer events <prefix>-1..n behind it in the inbox must wait for it. 0 or the store's error. */
static int it_stuck_backlog(struct store *s, const char *offer_id, const char *stuck, const char *prefix, int n)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"next_at_ms\":%lld,\"op_id\":\"%s-0\",\"sub_id\":\"%s\",\"action\":\"Suspend\",\"offer_id\":\"%s\","
             "\"attempts\":1,\"payload\":{}}",
             it_wall_ms() + 3600 * 1000LL, prefix, stuck, offer_id);
    struct store_batch *b = NULL;
    store_batch_new(&b);
    store_batch_append(b, STORE_OUTBOX, NULL, 0, text, strlen(text));
    int rc = store_commit(s, b);
    store_batch_free(b);
    for (int i = 1; i <= n && !rc; i += 500) {
        store_batch_new(&b);
        for (int j = i; j < i + 500 && j <= n; j++) {
            snprintf(text, sizeof text,
                     "{\"op_id\":\"%s-%d\",\"sub_id\":\"%s\",\"action\":\"Renew\",\"offer_id\":\"%s\","
                     "\"request_id\":\"r\",\"received_at\":0,\"attempts\":0,\"payload\":{}}",
                     prefix, j, stuck, offer_id);
            store_batch_append(b, STORE_INBOX, "", 0, text, strlen(text));
        }
        rc = store_commit(s, b);
        store_batch_free(b);
    }
    return rc;
}

/* Hex SHA-256 of a file's text (a rule file, to compare with the audit trail). */
static void it_file_sha256(const char *path, char out[CRYPTO_SHA256_HEX_LEN])
{
    FILE *f = fopen(path, "r");
    char buf[65536];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    crypto_sha256_hex(buf, n, out);
}

/* Point the emulator's webhook and landing URLs at the daemon on port. */
static void it_point_emulator(unsigned short port)
{
    snprintf(it_public_url, sizeof it_public_url, "http://127.0.0.1:%u", port);
    char hook[256], landing[256];
    snprintf(hook, sizeof hook, "%s/webhook", it_public_url);
    snprintf(landing, sizeof landing, "%s/landing", it_public_url);
    long st;
    json_decref(it_emu("PUT", "/_emulator/config", json_pack("{s:s, s:s}", "webhookUrl", hook, "landingUrl", landing), &st));
    /* the app registration's redirect URI for the buyer sign-in */
    char cb[300], app[128];
    snprintf(cb, sizeof cb, "%s/landing/callback", it_public_url);
    snprintf(app, sizeof app, "/_emulator/apps/%s", EMU_DEFAULT_CLIENT);
    json_decref(it_emu("PATCH", app, json_pack("{s:[s]}", "redirectUris", cb), &st));
}

/* ---- a browser, as far as the landing page needs one: cookies by name, no redirects followed ---- */

#define IT_BUYER_OID "aaaaaaaa-0001-4000-8000-000000000001" /* the emulator's default purchaser */
#define IT_OTHER_OID "aaaaaaaa-0003-4000-8000-000000000003" /* a user of another tenant */

struct it_browser {
    char signin[256];  /* saasd_signin cookie */
    char session[4200];/* saasd_session cookie */
    char location[4096];
    long status;
    char *body;        /* last answer's body (malloc'd) */
};

static void it_browser_free(struct it_browser *b)
{
    free(b->body);
    b->body = NULL;
}

/* Remember each Set-Cookie of the answer (an empty value deletes). */
static void it_take_cookies(struct it_browser *b, const char *headers)
{
    for (const char *p = headers; p && (p = strcasestr(p, "\nset-cookie:")) != NULL;) {
        p += 12;
        while (*p == ' ')
            p++;
        const char *eq = strchr(p, '='), *end = strpbrk(p, ";\r\n");
        if (!eq || !end || eq > end)
            continue;
        char *dst = !strncmp(p, "saasd_signin=", 13) ? b->signin : !strncmp(p, "saasd_session=", 14) ? b->session : NULL;
        size_t cap = dst == b->signin ? sizeof b->signin : sizeof b->session;
        if (dst)
            snprintf(dst, cap, "%.*s", (int)(end - eq - 1), eq + 1);
    }
}

/* One request as the browser; body_form != NULL makes it a form POST. */
static long it_browse(struct it_browser *b, const char *method, const char *url, const char *body_form)
{
    char cookie[4600] = "", full[4200];
    if (url[0] == '/')
        snprintf(full, sizeof full, "%s%s", it_public_url, url);
    else
        snprintf(full, sizeof full, "%s", url);
    if (b->signin[0])
        snprintf(cookie, sizeof cookie, "saasd_signin=%s", b->signin);
    if (b->session[0])
        snprintf(cookie + strlen(cookie), sizeof cookie - strlen(cookie), "%ssaasd_session=%s", cookie[0] ? "; " : "",
                 b->session);
    struct http_header h[2] = {{"Cookie", cookie}, {"Content-Type", "application/x-www-form-urlencoded"}};
    struct http_request rq = {.method = method, .url = full, .headers = h, .nheaders = body_form ? 2 : 1,
                              .body = body_form, .body_len = body_form ? strlen(body_form) : 0, .timeout_ms = 20000};
    if (!cookie[0]) {
        rq.headers = h + 1;
        rq.nheaders = body_form ? 1 : 0;
    }
    struct http_response r;
    http_client_do(it_http, &rq, &r);
    it_take_cookies(b, r.headers);
    char loc[4096];
    const char *l = http_response_header(&r, "Location", loc, sizeof loc);
    snprintf(b->location, sizeof b->location, "%s", l ? l : "");
    free(b->body);
    b->body = r.body;
    r.body = NULL;
    b->status = r.status;
    http_response_free(&r);
    return b->status;
}

/* GET the landing URL and sign in at the emulator as user (an oid): stops at the callback's
 * answer (normally 303 to /landing/status, with the session cookie). Returns its status. */
static long it_sign_in(struct it_browser *b, const char *landing_url, const char *user)
{
    if (it_browse(b, "GET", landing_url, NULL) != 302)
        return b->status;
    char authorize[4096], form[128];
    snprintf(authorize, sizeof authorize, "%s", b->location);
    snprintf(form, sizeof form, "user=%s", user);
    if (it_browse(b, "POST", authorize, form) != 302) /* the emulator's sign-in page: choose the user */
        return b->status;
    char callback[4096];
    snprintf(callback, sizeof callback, "%s", b->location);
    return it_browse(b, "GET", callback, NULL);
}

/* The CSRF token in the last page's confirmation form ("" when none). */
static const char *it_csrf(const struct it_browser *b)
{
    static char csrf[128];
    csrf[0] = 0;
    const char *p = b->body ? strstr(b->body, "name=\"csrf\" value=\"") : NULL;
    if (p)
        sscanf(p + strlen("name=\"csrf\" value=\""), "%127[^\"]", csrf);
    return csrf;
}

/* The whole buyer journey: sign in as the purchaser, see the confirmation page, confirm (with
 * extra form fields, may be NULL), follow to the status page. Returns the final status; the
 * page is in b->body. */
static long it_land_as(struct it_browser *b, const char *landing_url, const char *user, const char *fields)
{
    if (it_sign_in(b, landing_url, user) != 303 || it_browse(b, "GET", "/landing/status", NULL) != 200 ||
        !it_csrf(b)[0])
        return b->status;
    char form[2048];
    snprintf(form, sizeof form, "csrf=%s%s%s", it_csrf(b), fields ? "&" : "", fields ? fields : "");
    if (it_browse(b, "POST", "/landing/confirm", form) != 303)
        return b->status;
    return it_browse(b, "GET", "/landing/status", NULL);
}

/* it_land_as for the purchaser, the page malloc'd into *page (may be NULL). */
static long it_land(const char *landing_url, char **page)
{
    struct it_browser b = {0};
    long st = it_land_as(&b, landing_url, IT_BUYER_OID, NULL);
    if (page) {
        *page = b.body;
        b.body = NULL;
    }
    it_browser_free(&b);
    return st;
}

/* Create an offer with per-seat plans team (1..50) and business (1..500). */
static void it_offer(const char *offer_id)
{
    long st;
    json_decref(it_emu("POST", "/_emulator/offers",
                       json_pack("{s:s, s:[{s:s, s:s, s:b, s:i, s:i}, {s:s, s:s, s:b, s:i, s:i}]}", "offerId", offer_id,
                                 "plans", "planId", "team", "displayName", "Team", "isPricePerSeat", 1, "minQuantity", 1,
                                 "maxQuantity", 50, "planId", "business", "displayName", "Business", "isPricePerSeat", 1,
                                 "minQuantity", 1, "maxQuantity", 500),
                       &st));
}

/* The usual start of an inbox test: emulator and daemon (it_setup, it_start_in with conf), and
 * offer_id with a rule that accepts everything, known at the emulator (it_offer). The daemon,
 * or NULL (then *emu_out may still need emu_stop when not NULL). */
static struct daemon *it_start_offer(const char *name, const char *offer_id, const char *conf, char *dir, char *rules,
                                     struct emu **emu_out)
{
    *emu_out = it_setup(name, dir, rules);
    if (!*emu_out)
        return NULL;
    it_write_rule(rules, offer_id, "return {}\n");
    struct daemon *d = it_start_in(dir, 0, conf);
    if (d)
        it_offer(offer_id);
    return d;
}

/* Buy offer/team with seats; returns the landing URL (malloc'd) and the subscription id. */
static char *it_purchase(const char *offer_id, int seats, char *sub_id, size_t size)
{
    long st;
    json_t *p = it_emu("POST", "/_emulator/purchases",
                       json_pack("{s:s, s:s, s:i}", "offerId", offer_id, "planId", "team", "quantity", seats), &st);
    snprintf(sub_id, size, "%s", it_str(p, "subscriptionId"));
    char *url = strdup(it_str(p, "landingUrl"));
    json_decref(p);
    return url;
}

static json_t *it_ms_sub(const char *sub_id)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s", sub_id);
    return it_emu("GET", path, NULL, &st);
}

/* Microsoft's saasSubscriptionStatus of the subscription (a static buffer). */
static const char *it_ms_status(const char *sub_id)
{
    static char s[64];
    json_t *ms = it_ms_sub(sub_id);
    snprintf(s, sizeof s, "%s", it_str(ms, "saasSubscriptionStatus"));
    json_decref(ms);
    return s;
}

/* it_purchase, then the purchaser confirms it through the landing page; the landing status. */
static long it_buy_and_land(const char *offer_id, int seats, char *sub_id, size_t size)
{
    char *landing = it_purchase(offer_id, seats, sub_id, size);
    long st = it_land(landing, NULL);
    free(landing);
    return st;
}

/* Customer action through the emulator; returns the operation id (malloc'd) or NULL. */
static char *it_customer(const char *sub_id, const char *verb, json_t *body)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s/%s", sub_id, verb);
    json_t *r = it_emu("POST", path, body ? body : json_object(), &st);
    const char *id = it_str(r, "id");
    if (!*id)
        id = it_str(json_object_get(r, "operation"), "id");
    char *out = st >= 200 && st < 300 && *id ? strdup(id) : NULL;
    if (!out)
        printf("# customer action %s on %s: HTTP %ld\n", verb, sub_id, st);
    json_decref(r);
    return out;
}

static json_t *it_ms_op(const char *op_id)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/_emulator/operations/%s", op_id);
    return it_emu("GET", path, NULL, &st);
}

/* Wait until the emulator's operation is final; returns its status (static buffer). */
static const char *it_wait_op(const char *op_id, long timeout_ms)
{
    static char status[32];
    long long until = it_now_ms() + timeout_ms;
    status[0] = 0;
    while (op_id && it_now_ms() < until) {
        json_t *op = it_ms_op(op_id);
        snprintf(status, sizeof status, "%s", it_str(op, "status"));
        json_decref(op);
        if (!strcmp(status, "Succeeded") || !strcmp(status, "Failed") || !strcmp(status, "Conflict"))
            break;
        usleep(20 * 1000);
    }
    return status;
}

/* The audit entries of a subscription (admin API). */
static json_t *it_history(const char *sub_id)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/admin/subscriptions/%s/history", sub_id);
    json_t *h = it_admin("GET", path, NULL, &st);
    json_t *a = json_incref(json_object_get(h, "audit"));
    json_decref(h);
    return a ? a : json_array();
}

/* Audit entries of sub_id for op_id (or with action when op_id is NULL). */
static int it_audit_count(const char *sub_id, const char *op_id, const char *action)
{
    json_t *a = it_history(sub_id);
    size_t i;
    json_t *e;
    int n = 0;
    json_array_foreach(a, i, e) {
        if (op_id && !strcmp(it_str(e, "op_id"), op_id))
            n++;
        else if (!op_id && action && !strcmp(it_str(e, "action"), action))
            n++;
    }
    json_decref(a);
    return n;
}

/* Wait until saasd has an audit entry for op_id; returns it (new reference) or NULL. */
static json_t *it_wait_audit(const char *sub_id, const char *op_id, long timeout_ms)
{
    long long until = it_now_ms() + timeout_ms;
    while (it_now_ms() < until) {
        json_t *a = it_history(sub_id);
        size_t i;
        json_t *e;
        json_array_foreach(a, i, e) if (!strcmp(it_str(e, "op_id"), op_id)) {
            json_incref(e);
            json_decref(a);
            return e;
        }
        json_decref(a);
        usleep(20 * 1000);
    }
    return NULL;
}

/* Wait until the emulator has no delivery pending and the daemon's inbox and outbox are empty. */
static int it_settle(struct store *s, long timeout_ms)
{
    long long until = it_now_ms() + timeout_ms;
    while (it_now_ms() < until) {
        long st;
        json_t *w = it_emu("GET", "/_emulator/webhooks", NULL, &st);
        int pending = 0;
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(w, "deliveries"), i, d) pending += !strcmp(it_str(d, "status"), "pending");
        json_decref(w);
        size_t inbox = 0, outbox = 0;
        store_count(s, STORE_INBOX, &inbox);
        store_count(s, STORE_OUTBOX, &outbox);
        pending += (int)(inbox + outbox);
        if (!pending)
            return 1;
        usleep(20 * 1000);
    }
    return 0;
}

static json_t *it_local(const char *sub_id)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/admin/subscriptions/%s", sub_id);
    json_t *both = it_admin("GET", path, NULL, &st);
    json_t *l = json_incref(json_object_get(both, "local"));
    json_decref(both);
    return l;
}

/* `bin serve --config conf` as a child process, its stderr appended to dir/daemon.log; returns
 * its pid once its /healthz on port answers (200, or 503 while not ready), or after 5 s. */
static pid_t it_serve_child(const char *bin, const char *dir, const char *conf, unsigned short port)
{
    pid_t pid = fork();
    if (pid == 0) {
        char logpath[600];
        snprintf(logpath, sizeof logpath, "%s/daemon.log", dir);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 2);
        execl(bin, bin, "serve", "--config", conf, (char *)NULL);
        _exit(127);
    }
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
    for (int i = 0; i < 500; i++) {
        long st = 0;
        json_decref(it_call("GET", url, NULL, NULL, &st, NULL));
        if (st == 200 || st == 503)
            break;
        usleep(10 * 1000);
    }
    return pid;
}

#endif
