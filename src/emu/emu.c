/* The emulator process: options, start/stop, the one request router for all of Microsoft's
 * surfaces and the control API, request-id echoes, and the timer thread for ACK windows and
 * delayed completions. */
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "emu/emu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void emu_options_defaults(struct emu_options *o)
{
    memset(o, 0, sizeof *o);
    o->bind_addr = "127.0.0.1";
    o->issuer_base = EMU_DEFAULT_ISSUER;
    o->tenant_id = EMU_DEFAULT_TENANT;
    o->client_id = EMU_DEFAULT_CLIENT;
    o->publisher_id = EMU_DEFAULT_PUBLISHER;
    o->landing_url = EMU_DEFAULT_LANDING;
    o->page_size = 100;
    o->ack_window_ms = 10000;
    o->op_delay_ms = 2000;
    o->token_lifetime_s = 3599;
    o->landing_lifetime_s = 86400;
    o->webhook_timeout_ms = 10000;
    o->webhook_backoff_ms = 1000;
    o->webhook_max_attempts = 10;
    o->seed = 1;
}

unsigned short emu_port(const struct emu *e) { return httpd_port(e->httpd); }
const char *emu_base_url(const struct emu *e) { return e->base_url; }

static int starts(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

/* The call log: what Microsoft's surfaces were asked, for tests ("no second Activate"). When
 * full, the oldest record is overwritten. */
static void record_call(struct emu *e, const struct httpd_request *r, int status)
{
    char *path = strdup(httpd_path(r));
    if (!path)
        return;
    struct emu_call *c = &e->calls[(e->calls_head + e->calls_len) % EMU_CALLS_MAX];
    if (e->calls_len == EMU_CALLS_MAX) {
        free(c->path);
        e->calls_head = (e->calls_head + 1) % EMU_CALLS_MAX;
    } else {
        e->calls_len++;
    }
    snprintf(c->method, sizeof c->method, "%s", httpd_method(r));
    c->path = path;
    c->status = status;
    c->at_ms = emu_now_ms(e);
}

static void handle(void *arg, const struct httpd_request *r, struct httpd_response *res)
{
    struct emu *e = arg;
    const char *path = httpd_path(r);
    int control = !strcmp(path, "/_emulator") || starts(path, "/_emulator/") || starts(path, "/api/webhook/");
    long latency_ms = 0;
    if (control || !emu_fault_apply(e, r, res, &latency_ms)) {
        pthread_mutex_lock(&e->lock);
        emu_keys_refresh(e);
        if (control)
            emu_control_route(e, r, res);
        else if (starts(path, "/api/saas/subscriptions") &&
                 (path[23] == 0 || path[23] == '/'))
            emu_fulfillment_route(e, r, res);
        else if (!strcmp(path, "/api/usageEvent") || !strcmp(path, "/api/batchUsageEvent") ||
                 !strcmp(path, "/api/usageEvents"))
            emu_metering_route(e, r, res);
        else if (!emu_entra_route(e, r, res))
            httpd_set_body(res, 404, NULL, "{\"code\":\"NotFound\",\"message\":\"no such route\"}");
        if (!control)
            record_call(e, r, res->status);
        else { /* the clock, the knobs or the whole state may have changed */
            emu_timers_rescan(e);
            emu_texts_clear(e);
        }
        emu_persist_flush(e);
        /* Only when the threads have something new to look at: each wake-up of the ticker or
         * the sender costs a pass under this lock. */
        if (e->wake_needed)
            pthread_cond_broadcast(&e->wake);
        e->wake_needed = 0;
        pthread_mutex_unlock(&e->lock);
    }
    if (res->status == 0)
        return; /* a "drop" fault: no answer at all */
    /* §1.3: echo the caller's ids, or make them up. */
    char rid[37], cid[37];
    const char *in_rid = httpd_header(r, "x-ms-requestid"), *in_cid = httpd_header(r, "x-ms-correlationid");
    if (!in_rid || !*in_rid) {
        emu_uuid(rid);
        in_rid = rid;
    }
    if (!in_cid || !*in_cid) {
        emu_uuid(cid);
        in_cid = cid;
    }
    httpd_add_header(res, "x-ms-requestid", in_rid);
    httpd_add_header(res, "x-ms-correlationid", in_cid);
    if (latency_ms > 0)
        emu_hold(e, r, res, latency_ms);
}

static void *ticker(void *arg)
{
    struct emu *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        long wait = emu_state_tick(e);
        emu_persist_flush(e);
        if (wait > EMU_IDLE_WAIT_MS)
            wait = EMU_IDLE_WAIT_MS;
        if (wait < 1)
            wait = 1;
        struct timespec until;
        clock_after_ms(CLOCK_REALTIME, wait, &until);
        pthread_cond_timedwait(&e->wake, &e->lock, &until);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static char *dup_or(const char *s, const char *dflt) { return strdup(s && *s ? s : dflt); }

/* --client-cert: the configured app's certificate, from a PEM file (a key in it is ignored). */
static int register_cert_file(struct emu *e, const char *path)
{
    char buf[65536];
    FILE *f = fopen(path, "r");
    if (!f) {
        log_error("emulator", "cannot read the client certificate file", "file", path);
        return SAASD_ENOTFOUND;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    struct emu_error err;
    int rc = emu_app_cert_add(e, e->client_id, buf, n, &err, NULL);
    explicit_bzero(buf, sizeof buf); /* the file may hold the private key too */
    if (rc != 0)
        log_error("emulator", "cannot register the client certificate", "file", path, "error", err.message);
    return rc == 0 ? 0 : SAASD_EINVAL;
}

/* Buyer sign-in: the redirect URIs of the publisher app and, when configured, a separate
 * sign-in app in the publisher tenant (one app or two, as the daemon's landing block says). */
static int signin_setup(struct emu *e, const struct emu_options *opt)
{
    char dflt[1100];
    const char *q = strchr(e->k.landing_url, '?');
    snprintf(dflt, sizeof dflt, "%.*s/callback", (int)(q ? (size_t)(q - e->k.landing_url) : strlen(e->k.landing_url)),
             e->k.landing_url);
    const char *uris = opt->redirect_uris && *opt->redirect_uris ? opt->redirect_uris : dflt;
    int rc = emu_signin_reg_uris(e, e->client_id, uris);
    if (rc == 0 && !emu_jstr(emu_signin_reg(e, e->client_id), "displayName"))
        json_object_set_new(emu_signin_reg(e, e->client_id), "displayName", json_string(EMU_PUBLISHER_APP_NAME));
    const char *sc = opt->signin_client_id;
    if (rc == 0 && sc && *sc && strcmp(sc, e->client_id)) {
        const char *secret = opt->signin_client_secret && *opt->signin_client_secret ? opt->signin_client_secret
                                                                                     : EMU_DEFAULT_SIGNIN_SECRET;
        json_t *app = json_pack("{s:s,s:s,s:s}", "tenantId", e->tenant_id, "clientId", sc, "clientSecret", secret);
        struct emu_error err;
        rc = app ? emu_app_put(e, app, &err) : SAASD_ENOMEM;
        json_decref(app);
        if (rc == 0)
            rc = emu_signin_reg_uris(e, sc, uris);
        if (rc == 0 && !emu_jstr(emu_signin_reg(e, sc), "displayName"))
            json_object_set_new(emu_signin_reg(e, sc), "displayName", json_string(EMU_SIGNIN_APP_NAME));
    }
    if (rc != 0)
        log_error("emulator", "cannot register the buyer sign-in app", "redirect_uris", uris);
    return rc;
}

static struct emu *emu_new(const struct emu_options *opt)
{
    struct emu *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_mutex_init(&e->hold_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->hold_cond, &ca);
    pthread_condattr_destroy(&ca);
    e->opt = *opt;
    return e;
}

/* Who the emulator is (tenant, publisher app, issuer ...) and its knobs, from opt or defaults. */
static int set_identity(struct emu *e, const struct emu_options *opt)
{
    const char *env_secret = getenv("EMU_CLIENT_SECRET");
    e->bind_addr = dup_or(opt->bind_addr, "127.0.0.1");
    e->public_url = opt->public_url && *opt->public_url ? strdup(opt->public_url) : NULL;
    e->data_dir = opt->data_dir && *opt->data_dir ? strdup(opt->data_dir) : NULL;
    e->issuer_base = dup_or(opt->issuer_base, EMU_DEFAULT_ISSUER);
    e->tenant_id = dup_or(opt->tenant_id, EMU_DEFAULT_TENANT);
    e->client_id = dup_or(opt->client_id, EMU_DEFAULT_CLIENT);
    e->client_secret = dup_or(opt->client_secret, env_secret && *env_secret ? env_secret : EMU_DEFAULT_SECRET);
    e->publisher_id = dup_or(opt->publisher_id, EMU_DEFAULT_PUBLISHER);
    e->k.landing_url = dup_or(opt->landing_url, EMU_DEFAULT_LANDING);
    e->k.webhook_url = opt->webhook_url && *opt->webhook_url ? strdup(opt->webhook_url) : NULL;
    e->k.page_size = opt->page_size > 0 ? opt->page_size : 100;
    e->k.ack_window_ms = opt->ack_window_ms >= 0 ? opt->ack_window_ms : 10000;
    e->k.op_delay_ms = opt->op_delay_ms >= 0 ? opt->op_delay_ms : 2000;
    e->k.token_lifetime_s = opt->token_lifetime_s > 0 ? opt->token_lifetime_s : 3599;
    e->k.landing_lifetime_s = opt->landing_lifetime_s > 0 ? opt->landing_lifetime_s : 86400;
    e->k.webhook_timeout_ms = opt->webhook_timeout_ms > 0 ? opt->webhook_timeout_ms : 10000;
    e->k.webhook_backoff_ms = opt->webhook_backoff_ms >= 0 ? opt->webhook_backoff_ms : 1000;
    e->k.webhook_max_attempts = opt->webhook_max_attempts > 0 ? opt->webhook_max_attempts : 10;
    e->k.partner_webhooks = 1;
    if (!e->bind_addr || !e->issuer_base || !e->tenant_id || !e->client_id || !e->client_secret ||
        !e->publisher_id || !e->k.landing_url)
        return SAASD_ENOMEM;
    size_t ib = strlen(e->issuer_base);
    while (ib > 0 && e->issuer_base[ib - 1] == '/')
        e->issuer_base[--ib] = 0;
    return 0;
}

/* The state and signing keys: loaded from the data directory, or new in memory. */
static int open_state(struct emu *e)
{
    int rc = emu_state_init(e);
    if (rc)
        return rc;
    if (e->data_dir) {
        if ((rc = emu_keys_load_dir(e->data_dir, 0, e->keys, &e->nkeys)) != 0 || (rc = emu_persist_open(e)) != 0 ||
            (rc = emu_persist_load(e)) != 0)
            return rc;
        emu_keys_refresh(e); /* records the key files' stamp */
        return 0;
    }
    if ((rc = emu_key_generate(&e->keys[0])) != 0)
        return rc;
    e->nkeys = 1;
    crypto_random(e->landing_key, sizeof e->landing_key);
    return 0;
}

/* Seeded offers and users, the sign-in apps, the client certificate and the outgoing client. */
static int prepare_parties(struct emu *e, const struct emu_options *opt)
{
    if (opt->seed)
        emu_state_seed(e);
    emu_users_seed(e);
    int rc = signin_setup(e, opt);
    if (rc)
        return rc;
    if (!(e->jtis = json_object()) || !(e->codes = json_object()))
        return SAASD_ENOMEM;
    if (opt->client_cert_file && *opt->client_cert_file && (rc = register_cert_file(e, opt->client_cert_file)) != 0)
        return rc;
    return http_client_new(&(struct http_client_options){.connect_timeout_ms = 2000}, &e->http);
}

static void set_base_url(struct emu *e)
{
    if (e->public_url) {
        snprintf(e->base_url, sizeof e->base_url, "%s", e->public_url);
        size_t n = strlen(e->base_url);
        while (n > 0 && e->base_url[n - 1] == '/')
            e->base_url[--n] = 0;
    } else {
        snprintf(e->base_url, sizeof e->base_url, "http://%s:%u",
                 strcmp(e->bind_addr, "0.0.0.0") ? e->bind_addr : "127.0.0.1", httpd_port(e->httpd));
    }
}

static int start_server(struct emu *e, const struct emu_options *opt)
{
    pthread_mutex_lock(&e->lock); /* requests wait until base_url is known */
    /* One event-loop thread serves every connection: the handlers all run under e->lock anyway,
     * and a thread per connection cost a wake-up (and lock contention) per request, a quarter of
     * the emulator's CPU when saasd's workers drain events against it. Handlers never sleep: a
     * latency fault holds the answer back instead (emu_hold.c). */
    struct httpd_options ho = {.bind_addr = e->bind_addr, .port = opt->port, .max_body = 1u << 20, .event_threads = 1};
    int rc = httpd_start(&ho, handle, e, &e->httpd);
    if (rc == 0)
        set_base_url(e);
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* The ticker (due operations) and the webhook sender, both or neither. */
static int start_threads(struct emu *e)
{
    if (pthread_create(&e->ticker, NULL, ticker, e) != 0)
        return SAASD_EINTERNAL;
    if (pthread_create(&e->sender, NULL, emu_webhook_thread, e) != 0) {
        pthread_mutex_lock(&e->lock);
        e->stopping = 1;
        pthread_cond_broadcast(&e->wake);
        pthread_mutex_unlock(&e->lock);
        pthread_join(e->ticker, NULL);
        return SAASD_EINTERNAL;
    }
    e->threads_started = 1;
    return 0;
}

int emu_start(const struct emu_options *opt, struct emu **out)
{
    struct emu_options d;
    emu_options_defaults(&d);
    if (!opt)
        opt = &d;
    struct emu *e = emu_new(opt);
    if (!e)
        return SAASD_ENOMEM;
    int rc;
    if ((rc = set_identity(e, opt)) != 0 || (rc = open_state(e)) != 0 || (rc = prepare_parties(e, opt)) != 0)
        goto fail;
    if (pthread_create(&e->holder, NULL, emu_hold_thread, e) != 0) {
        rc = SAASD_EINTERNAL;
        goto fail;
    }
    e->holder_started = 1;
    if ((rc = start_server(e, opt)) != 0 || (rc = start_threads(e)) != 0)
        goto fail;
    log_info("emulator", "serving", "url", e->base_url, "kid", e->keys[0].kid, "tid", e->tenant_id, "state",
             e->data_dir ? e->data_dir : "memory");
    *out = e;
    return 0;
fail:
    e->threads_started = 0;
    emu_stop(e);
    return rc;
}

void emu_stop(struct emu *e)
{
    if (!e)
        return;
    if (e->holder_started)
        emu_hold_flush(e); /* httpd_stop waits for the answers held back */
    if (e->httpd)
        httpd_stop(e->httpd);
    if (e->holder_started)
        pthread_join(e->holder, NULL);
    if (e->threads_started) {
        pthread_mutex_lock(&e->lock);
        e->stopping = 1;
        pthread_cond_broadcast(&e->wake);
        pthread_mutex_unlock(&e->lock);
        pthread_join(e->ticker, NULL);
        pthread_join(e->sender, NULL);
    }
    if (e->lmdb_env) {
        emu_persist_flush(e);
        emu_persist_close(e);
    }
    http_client_free(e->http);
    emu_bearers_clear(e);
    for (size_t i = 0; i < e->nkeys; i++)
        emu_key_free(&e->keys[i]);
    emu_faults_clear(e);
    json_decref(e->db);
    json_decref(e->jtis);
    json_decref(e->codes);
    emu_texts_clear(e);
    json_decref(e->sub_ops);
    for (size_t i = 0; i < e->calls_len; i++)
        free(e->calls[(e->calls_head + i) % EMU_CALLS_MAX].path);
    free(e->bind_addr);
    free(e->public_url);
    free(e->data_dir);
    free(e->issuer_base);
    free(e->tenant_id);
    free(e->client_id);
    free(e->client_secret);
    free(e->publisher_id);
    free(e->k.landing_url);
    free(e->k.webhook_url);
    free(e->k.id_token_fault);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->hold_cond);
    pthread_mutex_destroy(&e->hold_lock);
    free(e);
}

int emu_rotate_key_dir(const char *data_dir, char *kid_out, unsigned long kid_size)
{
    struct emu_key keys[EMU_MAX_KEYS];
    size_t n = 0;
    int rc = emu_keys_load_dir(data_dir, 0, keys, &n);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            emu_key_free(&keys[i]);
        rc = emu_keys_load_dir(data_dir, 1, keys, &n);
    }
    if (rc != 0)
        return rc;
    snprintf(kid_out, kid_size, "%s", keys[0].kid);
    for (size_t i = 0; i < n; i++)
        emu_key_free(&keys[i]);
    return 0;
}
