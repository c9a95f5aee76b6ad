/* Answers held back by a latency fault (POST /_emulator/faults kind "latency"). The emulator
 * serves every connection from one event-loop thread (emu.c), where a handler must not sleep:
 * the request is served at once, parked (httpd_defer) and answered latencyMs later by this
 * file's thread, while other requests go on being served. */
#include "core/clock.h"
#include "core/httpd.h"
#include "emu/emu_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct emu_held {
    struct httpd_deferred *dfr;
    struct httpd_response res;
    struct timespec due; /* CLOCK_MONOTONIC */
    struct emu_held *next;
};

static int before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

void emu_hold(struct emu *e, const struct httpd_request *r, struct httpd_response *res, long latency_ms)
{
    struct emu_held *h = calloc(1, sizeof *h);
    if (!h)
        return; /* answered at once: the delay is lost, not the answer */
    clock_after_ms(CLOCK_MONOTONIC, latency_ms, &h->due);
    pthread_mutex_lock(&e->hold_lock);
    if (e->hold_flush) { /* stopping: answered at once */
        pthread_mutex_unlock(&e->hold_lock);
        free(h);
        return;
    }
    h->res = *res;
    memset(res, 0, sizeof *res); /* the answer is h's now; httpd discards what res holds */
    h->dfr = httpd_defer(r);
    struct emu_held **p = &e->held; /* kept in due order */
    while (*p && !before(&h->due, &(*p)->due))
        p = &(*p)->next;
    h->next = *p;
    *p = h;
    pthread_cond_signal(&e->hold_cond);
    pthread_mutex_unlock(&e->hold_lock);
}

/* Answers held answers when due; all of them at once after emu_hold_flush (stopping). */
void *emu_hold_thread(void *arg)
{
    struct emu *e = arg;
    pthread_mutex_lock(&e->hold_lock);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct emu_held *h = e->held;
        if (h && (e->hold_flush || !before(&now, &h->due))) {
            e->held = h->next;
            pthread_mutex_unlock(&e->hold_lock);
            httpd_resume(h->dfr, &h->res);
            free(h);
            pthread_mutex_lock(&e->hold_lock);
        } else if (h) {
            pthread_cond_timedwait(&e->hold_cond, &e->hold_lock, &h->due);
        } else if (e->hold_flush) {
            break;
        } else {
            pthread_cond_wait(&e->hold_cond, &e->hold_lock);
        }
    }
    pthread_mutex_unlock(&e->hold_lock);
    return NULL;
}

/* Send every held answer now and end the thread once none is left (before httpd_stop, which
 * waits for deferred answers). */
void emu_hold_flush(struct emu *e)
{
    pthread_mutex_lock(&e->hold_lock);
    e->hold_flush = 1;
    pthread_cond_signal(&e->hold_cond);
    pthread_mutex_unlock(&e->hold_lock);
}
