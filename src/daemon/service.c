/* The daemon as a systemd service (see service.h): the status line and the watchdog thread. */
#include "daemon/service.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/service_notify.h"
#include "daemon/daemon.h"
#include "engine/engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void service_status_text(struct daemon *d, char *buf, size_t size)
{
    char admin[64] = "no admin listener";
    if (d->admin_httpd)
        snprintf(admin, sizeof admin, "admin %s:%u", d->cfg->admin_addr, httpd_port(d->admin_httpd));
    struct engine_info *info = NULL;
    size_t offers = 0;
    if (engine_info(d->engine, &info) == 0)
        for (size_t i = 0; i < info->nrules; i++)
            offers += strcmp(info->rules[i].offer_id, "default") != 0; /* default.lua serves no offer of its own */
    snprintf(buf, size, "serving %s:%u (%s); rules generation %llu, %zu offer%s", d->cfg->listen_addr,
             httpd_port(d->public_httpd), admin, info ? (unsigned long long)info->generation : 0ULL, offers,
             offers == 1 ? "" : "s");
    engine_info_free(info);
}

struct service_watchdog {
    struct daemon *d;
    long long period_ms;   /* half of WATCHDOG_USEC: from one ping to the next check */
    long long retry_ms;    /* after a failed check: soon again, so one busy moment costs no restart */
    long long timeout_ms;  /* of the check: with period_ms, a ping is due at most 3/4 of the interval late */
    char url[128];         /* the public listener's /healthz */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;   /* on CLOCK_MONOTONIC: a clock step neither fires nor holds back a ping */
    int stop;
};

/* 1 when the daemon answered its own /healthz with 200 within the check's timeout. */
static int healthz_answers(struct service_watchdog *w, long *status)
{
    struct http_request rq = {.method = "GET", .url = w->url, .timeout_ms = w->timeout_ms};
    struct http_response rs;
    int rc = http_client_do(w->d->http, &rq, &rs);
    *status = rc ? 0 : rs.status;
    http_response_free(&rs);
    return *status == 200;
}

/* Sleep ms or until stopped (lock held). 1 when stopped. */
static int sleep_or_stop(struct service_watchdog *w, long long ms)
{
    struct timespec until;
    clock_after_ms(CLOCK_MONOTONIC, ms, &until);
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0)
        ;
    return w->stop;
}

/* Ping after each answered check, with the status line (offers change with reloads); log a
 * failing streak once when it starts and once when it ends. */
static void *watchdog_main(void *arg)
{
    struct service_watchdog *w = arg;
    int failing = 0;
    long long wait_ms = w->period_ms;
    pthread_mutex_lock(&w->lock);
    while (!sleep_or_stop(w, wait_ms)) {
        pthread_mutex_unlock(&w->lock);
        long status = 0;
        int alive = healthz_answers(w, &status);
        char text[512], code[16];
        snprintf(code, sizeof code, "%ld", status);
        if (alive) {
            service_status_text(w->d, text, sizeof text);
            service_notify(SERVICE_WATCHDOG, text);
            if (failing)
                log_info("daemon", "watchdog: /healthz answers again, pinging systemd");
        } else if (!failing) {
            log_warn("daemon", "watchdog: /healthz did not answer 200 in time, not pinging systemd", "status", code);
        }
        failing = !alive;
        wait_ms = alive ? w->period_ms : w->retry_ms;
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static struct service_watchdog *watchdog_new(struct daemon *d, unsigned long long usec)
{
    struct service_watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->d = d;
    w->period_ms = (long long)(usec / 2000);
    w->retry_ms = w->period_ms / 8 > 10 ? w->period_ms / 8 : 10;
    w->timeout_ms = w->period_ms / 2 > 50 ? w->period_ms / 2 : 50;
    /* a listener on every address (0.0.0.0) answers on loopback too */
    const char *addr = strcmp(d->cfg->listen_addr, "0.0.0.0") ? d->cfg->listen_addr : "127.0.0.1";
    snprintf(w->url, sizeof w->url, "http://%s:%u/healthz", addr, httpd_port(d->public_httpd));
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    return w;
}

static void watchdog_free(struct service_watchdog *w)
{
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int service_watchdog_start(struct daemon *d, struct service_watchdog **out)
{
    *out = NULL;
    uint64_t usec = service_watchdog_usec();
    if (usec == 0)
        return 0;
    struct service_watchdog *w = watchdog_new(d, usec);
    if (!w)
        return SAASD_ENOMEM;
    if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0) {
        watchdog_free(w);
        return SAASD_EINTERNAL;
    }
    pthread_setname_np(w->thread, "watchdog");
    char interval[32];
    snprintf(interval, sizeof interval, "%llu", (unsigned long long)(usec / 1000));
    log_info("daemon", "watchdog: pinging systemd while /healthz answers", "interval_ms", interval, "url", w->url);
    *out = w;
    return 0;
}

void service_watchdog_stop(struct service_watchdog *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    watchdog_free(w);
}
