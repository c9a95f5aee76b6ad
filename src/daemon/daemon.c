/* Daemon assembly: builds every component from the config, routes the public listener, and
 * tears everything down in reverse order. */
#include "daemon/daemon.h"
#include "daemon/timers.h"
#include "daemon/metering.h"
#include "daemon/service.h"
#include "daemon/sinks.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/dirlock.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp_client.h"
#include "core/oidc.h"
#include "core/route.h"
#include "core/session.h"
#include "core/store.h"
#include "core/token_cache.h"
#include "daemon/webhook_verify.h"
#include "engine/engine.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

unsigned daemon_sub_stripe(const char *sub_id)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const char *p = sub_id; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % DAEMON_SUB_STRIPES;
}

void daemon_lock_sub(struct daemon *d, const char *sub_id) { pthread_mutex_lock(&d->sub_locks[daemon_sub_stripe(sub_id)]); }
void daemon_unlock_sub(struct daemon *d, const char *sub_id) { pthread_mutex_unlock(&d->sub_locks[daemon_sub_stripe(sub_id)]); }

static void metrics_page(struct daemon *d, struct httpd_response *res)
{
    size_t inbox = 0, outbox = 0;
    store_count(d->store, STORE_INBOX, &inbox);
    store_count(d->store, STORE_OUTBOX, &outbox);
    metrics_set("saasd_inbox_depth", NULL, (double)inbox);
    metrics_set("saasd_outbox_depth", NULL, (double)outbox);
    struct store_stats ss;
    store_get_stats(d->store, &ss);
    metrics_counter_set("saasd_store_batches_total", NULL, (double)ss.batches);
    metrics_counter_set("saasd_store_transactions_total", NULL, (double)ss.transactions);
    metrics_counter_set("saasd_store_syncs_total", NULL, (double)ss.syncs);
    /* token refreshes: saasd_token_refresh_total{outcome}, counted by token_cache itself */
    struct jwt_stats js;
    jwt_verifier_stats(d->jwt, &js);
    metrics_counter_set("saasd_jwt_verifications_total", "result=\"verified\"", (double)js.verified);
    metrics_counter_set("saasd_jwt_verifications_total", "result=\"cache_hit\"", (double)js.cache_hits);
    metrics_counter_set("saasd_jwt_verifications_total", "result=\"refused\"", (double)js.refused);
    metrics_counter_set("saasd_inbox_entries_scanned_total", NULL, (double)inbox_entries_scanned());
    struct wv_stats vs;
    wv_get_stats(d->verifyq, &vs);
    metrics_counter_set("saasd_webhook_verify_queue_total", "result=\"verified\"", (double)vs.verified);
    metrics_counter_set("saasd_webhook_verify_queue_total", "result=\"joined\"", (double)vs.joined);
    metrics_counter_set("saasd_webhook_verify_queue_total", "result=\"queue_full\"", (double)vs.refused);

    sinks_update_metrics(d);

    char *text = NULL;
    size_t len = 0, cap = 0;
    if (metrics_render(&text, &len) != 0) {
        httpd_set_body(res, 500, "text/plain", "metrics unavailable\n");
        return;
    }
    cap = len + 1;
    engine_metrics(d->engine, &text, &len, &cap);
    res->status = 200;
    res->content_type = "text/plain; version=0.0.4";
    res->body = text;
    res->body_len = len;
}

/* Requests with a fresh webhook token that may wait for verification at once: generous, a
 * cold burst is queued rather than refused (each waiting request is a parked connection, a
 * few hundred bytes here; listener.max_connections bounds them first). */
#define WEBHOOK_VERIFY_QUEUE 16384

/* What each pool answers when it is full, and its cap when the config says nothing. */
static const struct {
    const char *name, *content_type, *busy_body;
    int default_cap;
} pools[DAEMON_POOL_COUNT] = {
    [POOL_LANDING] = {"landing", "text/html; charset=utf-8",
                      "<!doctype html><title>Please try again</title><p>We are busy right now. Please reload this "
                      "page in a few seconds.</p>", 16},
    [POOL_WEBHOOK_VERIFY] = {"webhook", NULL,
                             "{\"error\":{\"code\":\"Busy\",\"message\":\"too many requests in progress; retry\"}}", 32},
    [POOL_PAGES] = {"pages", NULL,
                    "{\"error\":{\"code\":\"Busy\",\"message\":\"too many requests in progress; retry\"}}", 8},
};

struct off_loop {
    struct daemon *d;
    enum daemon_pool pool;
    const struct httpd_request *req;
    struct httpd_deferred *dfr;
    daemon_off_loop_fn fn;
    char *arg;
};

static void *off_loop_main(void *p)
{
    struct off_loop *o = p;
    struct httpd_response res = {.status = 500};
    o->fn(o->d, o->req, o->arg, &res);
    o->d->pool_busy[o->pool]--;
    httpd_resume(o->dfr, &res);
    free(o->arg);
    free(o);
    return NULL;
}

void daemon_off_loop(struct daemon *d, enum daemon_pool pool, const struct httpd_request *req, const char *arg,
                     daemon_off_loop_fn fn, struct httpd_response *res)
{
    int cap = d->pool_cap[pool] > 0 ? d->pool_cap[pool] : pools[pool].default_cap;
    struct off_loop *o = NULL;
    if (atomic_fetch_add(&d->pool_busy[pool], 1) < cap) {
        o = calloc(1, sizeof *o);
        if (o && arg && !(o->arg = strdup(arg))) {
            free(o);
            o = NULL;
        }
    }
    if (!o) {
        d->pool_busy[pool]--;
        char labels[64];
        snprintf(labels, sizeof labels, "pool=\"%s\"", pools[pool].name);
        metrics_inc("saasd_busy_total", labels);
        httpd_add_header(res, "Retry-After", "1");
        httpd_set_body(res, 503, pools[pool].content_type, pools[pool].busy_body);
        return;
    }
    o->d = d;
    o->pool = pool;
    o->req = req;
    o->fn = fn;
    o->dfr = httpd_defer(req);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, off_loop_main, o) != 0)
        off_loop_main(o); /* no thread: answer from here, late but correct */
    pthread_attr_destroy(&attr);
}

static void landing_page(struct daemon *d, const struct httpd_request *req, const char *arg, struct httpd_response *res)
{
    landing_handle(d, req, arg, res);
}

static void healthz_page(struct daemon *d, const struct httpd_request *req, const char *arg, struct httpd_response *res)
{
    health_live(d, res);
}

static void readyz_page(struct daemon *d, const struct httpd_request *req, const char *arg, struct httpd_response *res)
{
    health_ready(d, res);
}

static void metrics_text(struct daemon *d, const struct httpd_request *req, const char *arg, struct httpd_response *res)
{
    metrics_page(d, res);
}

/* The public listener's paths, first match wins (patterns: core/route.h). Rows name no method:
 * webhook.c and landing.c answer 405 themselves, the health and metrics pages answer any. The
 * listener runs an event loop: /webhook answers from the store's commit callback (webhook.c)
 * and so runs on the loop (on_loop); pages that call out or fsync run off the loop in their
 * pool, given the request header arg_header names (read here, on the loop) as their arg. */
static const struct {
    const char *pattern;
    void (*on_loop)(struct daemon *d, const struct httpd_request *req, struct httpd_response *res);
    enum daemon_pool pool;
    daemon_off_loop_fn page;
    const char *arg_header;
} public_routes[] = {
    {"/webhook", webhook_handle, 0, NULL, NULL},
    {"/landing{tail}", NULL, POOL_LANDING, landing_page, "Cookie"},
    {"/healthz", NULL, POOL_PAGES, healthz_page, NULL},
    {"/readyz", NULL, POOL_PAGES, readyz_page, NULL},
    {"/metrics", NULL, POOL_PAGES, metrics_text, NULL},
};

static void public_handler(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    struct daemon *d = arg;
    const char *path = httpd_path(req);
    struct route_args a;
    for (size_t i = 0; i < sizeof public_routes / sizeof public_routes[0]; i++) {
        if (!route_matches(public_routes[i].pattern, path, &a))
            continue;
        if (public_routes[i].on_loop)
            public_routes[i].on_loop(d, req, res);
        else
            daemon_off_loop(d, public_routes[i].pool, req,
                            public_routes[i].arg_header ? httpd_header(req, public_routes[i].arg_header) : NULL,
                            public_routes[i].page, res);
        return;
    }
    httpd_set_body(res, 404, NULL, "{\"error\":{\"code\":\"NotFound\",\"message\":\"no such path\"}}");
}

struct periodic {
    struct daemon *d;
    int first_s, interval_s;
    void (*job)(struct daemon *d);
};

static void *periodic_main(void *arg)
{
    struct periodic p = *(struct periodic *)arg;
    struct daemon *d = p.d;
    int wait_s = p.first_s;
    free(arg);
    pthread_mutex_lock(&d->work_lock);
    while (!d->stopping) {
        struct timespec until;
        clock_after_ms(CLOCK_REALTIME, (long long)wait_s * 1000, &until);
        wait_s = p.interval_s;
        while (!d->stopping && pthread_cond_timedwait(&d->work_cond, &d->work_lock, &until) == 0)
            ;
        if (d->stopping)
            break;
        pthread_mutex_unlock(&d->work_lock);
        p.job(d);
        pthread_mutex_lock(&d->work_lock);
    }
    pthread_mutex_unlock(&d->work_lock);
    return NULL;
}

/* Thread names ("inbox-N") let make bench split the daemon's CPU between ingest and the inbox
 * workers (/proc/PID/task/TID/comm). */
static void name_workers(struct daemon *d)
{
    for (int i = 0; i < d->nworkers; i++) {
        char name[32];
        snprintf(name, sizeof name, "inbox-%d", i % 1000); /* within the kernel's 15 characters */
        pthread_setname_np(d->workers[i], name);
    }
}

int daemon_every(struct daemon *d, int interval_s, void (*job)(struct daemon *d), pthread_t *t)
{
    return daemon_every_after(d, interval_s, interval_s, job, t);
}

int daemon_every_after(struct daemon *d, int first_s, int interval_s, void (*job)(struct daemon *d), pthread_t *t)
{
    struct periodic *p = malloc(sizeof *p);
    if (!p)
        return SAASD_ENOMEM;
    *p = (struct periodic){d, first_s, interval_s, job};
    if (pthread_create(t, NULL, periodic_main, p) != 0) {
        free(p);
        return SAASD_EINTERNAL;
    }
    return 0;
}

/* mkdir -p: the data directory and the key file's directory may be nested and new. */
static void make_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0700);
            *p = '/';
        }
    mkdir(buf, 0700);
}

/* The admin key file is created on first start with a random key, readable by the owner only. */
static int ensure_admin_key(struct saasd_config *cfg)
{
    if (!cfg->admin_enabled || cfg->admin_key || !cfg->admin_key_file)
        return 0;
    uint8_t raw[24];
    char *key = NULL;
    if (crypto_random(raw, sizeof raw) || crypto_base64url_encode(raw, sizeof raw, &key))
        return SAASD_EINTERNAL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cfg->admin_key_file);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        make_dirs(dir);
    }
    int fd = open(cfg->admin_key_file, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        free(key);
        log_error("daemon", "cannot create the admin key file", "path", cfg->admin_key_file);
        return SAASD_EIO;
    }
    ssize_t w = write(fd, key, strlen(key));
    close(fd);
    if (w != (ssize_t)strlen(key)) {
        free(key);
        return SAASD_EIO;
    }
    cfg->admin_key = key;
    log_info("daemon", "created a random admin key", "path", cfg->admin_key_file);
    return 0;
}

/* The buyer sign-in client. Made once the listener has its port: the default redirect URI
 * names it. Until then the landing page answers 503. */
static int landing_signin_start(struct daemon *d)
{
    struct saasd_config *cfg = d->cfg;
    char dflt[600];
    snprintf(dflt, sizeof dflt, "http://%s:%u/landing/callback", cfg->listen_addr, httpd_port(d->public_httpd));
    struct oidc_options oo = {.authority = cfg->landing_authority, .tenant = cfg->landing_tenant,
                              .client_id = cfg->landing_client_id, .client_secret = cfg->landing_secret,
                              .cert = cfg->client_cert,
                              .redirect_uri = cfg->landing_redirect_uri ? cfg->landing_redirect_uri : dflt,
                              .skew_s = cfg->landing_skew_s, .http = d->http};
    struct oidc *o = NULL;
    int rc = oidc_new(&oo, &o);
    if (rc)
        log_error("daemon", "the landing page's sign-in cannot be set up (landing.* / entra.*)", "error",
                  saasd_strerror(rc));
    d->oidc = o;
    return rc;
}

static struct daemon *daemon_new(struct saasd_config *cfg)
{
    struct daemon *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cfg = cfg;
    d->data_lock_fd = -1;
    d->started_at = time(NULL);
    pthread_mutex_init(&d->work_lock, NULL);
    pthread_cond_init(&d->work_cond, NULL);
    pthread_mutex_init(&d->wake_lock, NULL);
    pthread_cond_init(&d->wake_cond, NULL);
    for (int i = 0; i < DAEMON_SUB_STRIPES; i++)
        pthread_mutex_init(&d->sub_locks[i], NULL);
    return d;
}

/* The data directory, locked against a second daemon, and the store in it. */
static int open_data_dir(struct daemon *d)
{
    struct saasd_config *cfg = d->cfg;
    int rc = ensure_admin_key(cfg);
    if (rc)
        return rc;
    make_dirs(cfg->data_dir);
    char why[4600];
    if ((rc = dirlock_acquire(cfg->data_dir, &d->data_lock_fd, why, sizeof why)) != 0) {
        log_error("daemon", why);
        return rc;
    }
    if ((rc = store_open(cfg->data_dir, NULL, &d->store)) != 0)
        log_error("daemon", "cannot open the store", "dir", cfg->data_dir, "error", saasd_strerror(rc));
    return rc;
}

/* The HTTP client, the token cache and the marketplace client on them. */
static int open_marketplace(struct daemon *d)
{
    struct saasd_config *cfg = d->cfg;
    struct http_client_options ho = {0};
    int rc = http_client_new(&ho, &d->http);
    if (rc)
        return rc;
    struct token_cache_options to;
    token_cache_options_from_config(cfg, &to);
    if ((rc = token_cache_new(&to, d->http, &d->tokens)) != 0)
        return rc;
    daemon_note_certificate(cfg); /* an expiry to alert on, before Entra refuses the certificate */
    struct mp_client_options mo;
    mp_client_options_from_config(cfg, &mo);
    mo.max_attempts = cfg->mp_max_attempts;
    mo.backoff_base_ms = cfg->mp_retry_base_ms;
    mo.backoff_cap_ms = cfg->mp_retry_cap_ms;
    mo.poll_interval_ms = cfg->mp_poll_interval_ms;
    return mp_client_new(&mo, d->http, d->tokens, &d->mp);
}

/* The session key (landing page, console) and the webhook tokens' verifier. */
static int open_verifiers(struct daemon *d)
{
    int rc = session_key_load(d->cfg->data_dir, d->session_key);
    if (rc) {
        log_error("daemon", "cannot read or create the session key", "dir", d->cfg->data_dir);
        return rc;
    }
    struct jwt_verifier_options jo;
    jwt_verifier_options_from_config(d->cfg, d->http, &jo);
    return jwt_verifier_new(&jo, &d->jwt);
}

/* The live rules (required) and the shadow rules (optional), both watched for changes. */
static int open_rules(struct daemon *d)
{
    struct saasd_config *cfg = d->cfg;
    struct engine_options eo = {
        .rules_dir = cfg->rules_dir,
        .cpu_ms = cfg->rule_cpu_ms,
        .memory = cfg->rule_memory,
        .http_allow = cfg->http_allow,
        .http_timeout_ms = cfg->rule_http_timeout_ms,
        .store = d->store,
        .http = d->http,
    };
    int rc = engine_open(&eo, &d->engine);
    if (rc) {
        log_error("daemon", "rules could not be loaded", "dir", cfg->rules_dir, "error", saasd_strerror(rc));
        return rc;
    }
    engine_watch_start(d->engine);
    if (cfg->rules_shadow_dir) { /* a shadow that does not load is logged; the live rules serve on */
        struct engine_options so = {.rules_dir = cfg->rules_shadow_dir, .cpu_ms = cfg->rule_cpu_ms,
                                    .memory = cfg->rule_memory, .states = 2};
        if (engine_open(&so, &d->shadow) == 0)
            engine_watch_start(d->shadow);
        else
            log_error("daemon", "shadow rules could not be loaded: no shadow decisions", "dir", cfg->rules_shadow_dir);
    }
    return 0;
}

/* The inbox's workers and the webhook tokens' verification queue. */
static int start_intake(struct daemon *d)
{
    struct saasd_config *cfg = d->cfg;
    int rc = inbox_start(d);
    if (rc)
        return rc;
    name_workers(d);
    d->pool_cap[POOL_LANDING] = cfg->landing_threads;
    d->pool_cap[POOL_WEBHOOK_VERIFY] = cfg->webhook_verify_threads;
    int vthreads = cfg->webhook_verify_threads > 0 ? cfg->webhook_verify_threads : 32;
    return wv_start(d->jwt, vthreads, WEBHOOK_VERIFY_QUEUE, webhook_verified, d, &d->verifyq);
}

/* The public listener (webhook, landing page) with its sign-in, and the admin listener. */
static int start_listeners(struct daemon *d)
{
    struct saasd_config *cfg = d->cfg;
    struct httpd_options po = {.bind_addr = cfg->listen_addr, .port = (unsigned short)cfg->listen_port,
                               .max_body = cfg->max_body, .event_threads = 2,
                               .max_connections = (unsigned)cfg->listen_max_connections,
                               .per_client_limit = (unsigned)cfg->listen_per_client,
                               .request_deadline_s = (unsigned)cfg->listen_deadline_s};
    int rc = httpd_start(&po, public_handler, d, &d->public_httpd);
    if (rc)
        return rc;
    if ((rc = landing_signin_start(d)) != 0)
        return rc;
    if (!cfg->admin_enabled)
        return 0;
    struct httpd_options ao = {.bind_addr = cfg->admin_addr, .port = (unsigned short)cfg->admin_port, .max_body = 64 * 1024};
    return httpd_start(&ao, admin_handle, d, &d->admin_httpd);
}

static void log_serving(const struct daemon *d)
{
    char port[16], aport[16];
    snprintf(port, sizeof port, "%u", httpd_port(d->public_httpd));
    snprintf(aport, sizeof aport, "%u", d->admin_httpd ? httpd_port(d->admin_httpd) : 0);
    log_info("daemon", "serving", "listen", d->cfg->listen_addr, "port", port, "admin_port", aport, "rules",
             d->cfg->rules_dir, "marketplace", d->cfg->marketplace_url);
}

int daemon_start(struct saasd_config *cfg, struct daemon **out)
{
    struct daemon *d = daemon_new(cfg);
    if (!d)
        return SAASD_ENOMEM;
    log_set_level((enum log_level)cfg->log_level);
    daemon_describe_metrics();
    int rc;
    if ((rc = open_data_dir(d)) != 0 || (rc = open_marketplace(d)) != 0 || (rc = open_verifiers(d)) != 0 ||
        (rc = open_rules(d)) != 0 || (rc = start_intake(d)) != 0 || (rc = start_listeners(d)) != 0)
        goto fail;
    reconcile_start(d);
    usage_recon_start(d);
    metering_start(d);
    timers_start(d);
    if ((rc = sinks_start(d)) != 0 || (rc = service_watchdog_start(d, &d->watchdog)) != 0)
        goto fail;
    log_serving(d);
    *out = d;
    return 0;
fail:
    daemon_stop(d);
    return rc;
}

void daemon_stop(struct daemon *d)
{
    if (!d)
        return;
    service_watchdog_stop(d->watchdog); /* first: its checks would fail from here on */
    wv_close(d->verifyq); /* new fresh tokens get 503; what is queued is still answered */
    httpd_stop(d->public_httpd); /* no new work; waits for the deferred answers */
    wv_stop(d->verifyq);
    httpd_stop(d->admin_httpd);
    pthread_mutex_lock(&d->work_lock);
    d->stopping = 1;
    pthread_cond_broadcast(&d->work_cond);
    pthread_mutex_unlock(&d->work_lock);
    daemon_wake(d);
    if (d->reconciler_started)
        pthread_join(d->reconciler, NULL);
    if (d->usage_reconciler_started)
        pthread_join(d->usage_reconciler, NULL);
    if (d->meterer_started)
        pthread_join(d->meterer, NULL);
    if (d->timer_thread_started)
        pthread_join(d->timer_thread, NULL);
    if (d->workers)
        inbox_stop(d);
    sinks_stop(d);
    engine_close(d->engine);
    engine_close(d->shadow);
    jwt_verifier_free(d->jwt);
    oidc_free(d->oidc);
    mp_client_free(d->mp);
    token_cache_free(d->tokens);
    http_client_free(d->http);
    store_close(d->store);
    dirlock_release(d->data_lock_fd);
    config_free(d->cfg);
    free(d);
}
