/* Event delivery: one thread and one durable cursor per sink (see sinks.h). How each kind formats
 * and sends is sink_kinds.c. */
#include "daemon/sinks.h"
#include "daemon/daemon.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/store.h"
#include "core/utc.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Most events counted as pending per sink (the count is a scan). */
#define PENDING_SCAN_MAX 100000
/* Events deleted per pruning batch. */
#define PRUNE_BATCH 1000

struct sink {
    struct daemon *d;
    const struct sink_config *cfg;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;      /* guards what follows (read by sinks_status) */
    uint64_t cursor;           /* last sequence number passed (delivered or filtered out) */
    uint64_t saved;            /* the cursor as last committed */
    uint64_t delivered, failed_attempts;
    int attempts;              /* failures in a row of the event at the head */
    int64_t failing_since_ms, next_try_ms, last_delivered_ms;
    char last_error[256];
    uint64_t head_seq;         /* the event being retried (0: none) */
    uint64_t skip_seq;         /* an operator asked to skip this event */
    int wake;                  /* an operator asked for the next attempt now */
};

struct sinks {
    struct sink *v;
    int n;
    pthread_mutex_t lock;      /* sleeping sinks wait on cond; stop broadcasts */
    pthread_cond_t cond;
    pthread_t pruner;
    int pruner_started;
};

int sink_wants(const struct sink_config *cfg, json_t *event)
{
    const char *type = json_string_value(json_object_get(event, "type"));
    const char *offer = json_string_value(json_object_get(event, "offer"));
    int type_ok = !cfg->events || !cfg->events[0], offer_ok = !cfg->offers || !cfg->offers[0];
    for (char **g = cfg->events; !type_ok && g && *g; g++)
        type_ok = type && fnmatch(*g, type, 0) == 0;
    for (char **o = cfg->offers; !offer_ok && o && *o; o++)
        offer_ok = offer && fnmatch(*o, offer, 0) == 0;
    return type_ok && offer_ok;
}

static void cursor_key(const struct sink *k, char *out, size_t size) { snprintf(out, size, "sink:%s", k->cfg->name); }

static int save_cursor(struct sink *k, uint64_t seq)
{
    char key[128];
    unsigned char be[8];
    cursor_key(k, key, sizeof key);
    store_be64_put(be, seq);
    struct store_batch *b = NULL;
    int rc = store_batch_new(&b);
    if (!rc)
        rc = store_batch_put(b, STORE_META, key, strlen(key), be, 8);
    if (!rc)
        rc = store_commit(k->d->store, b);
    store_batch_free(b);
    pthread_mutex_lock(&k->lock); /* the pruner reads saved */
    if (!rc)
        k->saved = seq;
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static int last_key(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (klen == 8)
        *(uint64_t *)arg = store_be64_get(key);
    return 0;
}

/* The stored cursor; a new sink starts after the last event present now. */
static int load_cursor(struct sink *k)
{
    char key[128];
    void *val = NULL;
    size_t len = 0;
    cursor_key(k, key, sizeof key);
    int rc = store_get(k->d->store, STORE_META, key, strlen(key), &val, &len);
    if (rc == 0 && len == 8) {
        k->cursor = k->saved = store_be64_get(val);
        free(val);
        return 0;
    }
    free(val);
    if (rc != SAASD_ENOTFOUND)
        return rc ? rc : SAASD_EINTERNAL;
    uint64_t last = 0;
    if ((rc = store_scan(k->d->store, STORE_EVENTS, NULL, 0, last_key, &last)) != 0)
        return rc;
    k->cursor = last;
    return save_cursor(k, last);
}

struct next_event {
    uint64_t seq;
    json_t *event;
    char *text;
};

static int take_first(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct next_event *n = arg;
    if (klen != 8)
        return 0;
    n->seq = store_be64_get(key);
    n->text = strndup(val, vlen);
    n->event = json_loadb(val, vlen, 0, NULL);
    return 1;
}

/* The first event after the cursor: 1 found, 0 none, < 0 error. */
static int next_event(struct sink *k, struct next_event *n)
{
    unsigned char from[8];
    store_be64_put(from, k->cursor + 1);
    memset(n, 0, sizeof n[0]);
    int rc = store_scan_from(k->d->store, STORE_EVENTS, from, 8, take_first, n);
    return rc == 1 ? (n->text ? 1 : SAASD_ENOMEM) : rc;
}

static int64_t backoff_ms(const struct saasd_config *cfg, int attempts)
{
    int64_t ms = cfg->events_retry_base_ms;
    for (int i = 1; i < attempts && ms < cfg->events_retry_cap_ms; i++)
        ms *= 2;
    ms = ms > cfg->events_retry_cap_ms ? cfg->events_retry_cap_ms : ms;
    return ms + rand() % (ms / 4 + 1);
}

/* Sleep up to ms, or until the daemon stops. */
static void nap(struct sink *k, int64_t ms)
{
    struct sinks *all = k->d->sinks;
    struct timespec until;
    clock_after_ms(CLOCK_REALTIME, ms, &until);
    pthread_mutex_lock(&all->lock);
    while (!k->d->stopping && !k->wake && pthread_cond_timedwait(&all->cond, &all->lock, &until) == 0)
        ;
    k->wake = 0;
    pthread_mutex_unlock(&all->lock);
}

static void count(const struct sink *k, const char *outcome)
{
    char labels[160];
    snprintf(labels, sizeof labels, "sink=\"%s\",outcome=\"%s\"", k->cfg->name, outcome);
    metrics_inc("saasd_sink_deliveries_total", labels);
}

/* The head event is done with (delivered, or skipped by an operator): move the cursor past it. */
static void pass_head(struct sink *k, uint64_t seq, const char *outcome)
{
    pthread_mutex_lock(&k->lock);
    if (!strcmp(outcome, "delivered")) {
        k->delivered++;
        k->last_delivered_ms = now_ms();
    }
    k->attempts = 0;
    k->failing_since_ms = 0;
    k->last_error[0] = 0;
    k->head_seq = 0;
    k->skip_seq = 0;
    k->cursor = seq;
    pthread_mutex_unlock(&k->lock);
    count(k, outcome);
    if (save_cursor(k, seq)) /* delivered again after a restart: at least once */
        log_warn("sinks", "cursor not saved", "sink", k->cfg->name);
}

/* Note a failed attempt; returns how long to wait before the next one. */
static int64_t note_failure(struct sink *k, json_t *event, const char *err)
{
    pthread_mutex_lock(&k->lock);
    k->failed_attempts++;
    int attempts = ++k->attempts;
    if (!k->failing_since_ms)
        k->failing_since_ms = now_ms();
    snprintf(k->last_error, sizeof k->last_error, "%s", err);
    int64_t wait = backoff_ms(k->d->cfg, attempts);
    k->next_try_ms = now_ms() + wait;
    pthread_mutex_unlock(&k->lock);
    count(k, "failed");
    if (!(attempts & (attempts - 1))) { /* attempts 1, 2, 4, 8, ...: a dead sink does not flood the log */
        char a[16];
        snprintf(a, sizeof a, "%d", attempts);
        log_warn("sinks", "event not delivered; will retry", "sink", k->cfg->name, "event_id",
                 json_string_value(json_object_get(event, "id")), "type",
                 json_string_value(json_object_get(event, "type")), "attempts", a, "error", err);
    }
    return wait;
}

/* Deliver the event at the head until it goes, an operator skips it, or the daemon stops. */
static void deliver(struct sink *k, struct next_event *n)
{
    pthread_mutex_lock(&k->lock);
    k->head_seq = n->seq;
    pthread_mutex_unlock(&k->lock);
    while (!k->d->stopping) {
        char err[256] = "";
        if (sink_kind_deliver(k->cfg, n->event, n->text, err, sizeof err) == 0) {
            pass_head(k, n->seq, "delivered");
            return;
        }
        int64_t wait = note_failure(k, n->event, err);
        if (k->cursor != k->saved) /* events filtered out before this one: saved now, so the pruner can take them */
            save_cursor(k, k->cursor);
        nap(k, wait);
        pthread_mutex_lock(&k->lock);
        int skip = k->skip_seq == n->seq;
        pthread_mutex_unlock(&k->lock);
        if (skip) {
            log_warn("sinks", "event skipped by an operator: not delivered to this sink", "sink", k->cfg->name,
                     "event_id", json_string_value(json_object_get(n->event, "id")));
            pass_head(k, n->seq, "skipped");
            return;
        }
    }
}

static void *sink_main(void *arg)
{
    struct sink *k = arg;
    while (!k->d->stopping) {
        struct next_event n;
        int rc = next_event(k, &n);
        if (rc == 1 && n.event && !sink_wants(k->cfg, n.event)) {
            pthread_mutex_lock(&k->lock);
            k->cursor = n.seq; /* not for this sink: passed, saved with the next delivery or when idle */
            pthread_mutex_unlock(&k->lock);
        } else if (rc == 1 && n.event) {
            deliver(k, &n);
        } else if (rc == 1) {
            log_error("sinks", "an event is not JSON; skipped", "sink", k->cfg->name);
            k->cursor = n.seq;
        } else {
            if (k->cursor != k->saved)
                save_cursor(k, k->cursor);
            nap(k, k->d->cfg->events_poll_ms);
        }
        json_decref(n.event);
        free(n.text);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Pruning (every events.prune_every_s): events every sink has passed, older than events.keep_s   */

struct prune {
    uint64_t upto;       /* the lowest cursor every sink has saved: nothing after it goes */
    int64_t older_than;  /* Unix ms: an event written before this is old */
    json_t *keys;        /* seq numbers picked, in order */
    size_t proven;       /* how many of keys are proven old (the rest wait for a later old event) */
};

/* The event's "time" (events_add writes "YYYY-MM-DDTHH:MM:SS.mmmZ", UTC) as Unix ms: 0, or
 * SAASD_EINVAL when it is missing or not that form (nothing is guessed). */
static int event_time_ms(json_t *ev, int64_t *out)
{
    int64_t secs = 0;
    const char *rest = utc_parse(json_string_value(json_object_get(ev, "time")), &secs);
    if (!rest)
        return SAASD_EINVAL;
    int64_t ms = 0, scale = 100;
    if (*rest == '.')
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
            ms += scale * (*rest - '0');
    if (strcmp(rest, "Z"))
        return SAASD_EINVAL;
    *out = secs * 1000 + ms;
    return 0;
}

/* Picks the oldest events, in sequence (= commit) order, up to the first that is new or not yet
 * passed by every sink: events are committed in time order, so the rest are newer. An event
 * whose time cannot be read neither stops the pass nor goes on its own: it goes with the first
 * later event that is old (it was committed before that one), and stays otherwise. */
static int pick_old(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct prune *p = arg;
    if (klen != 8)
        return 0;
    uint64_t seq = store_be64_get(key);
    if (seq > p->upto || json_array_size(p->keys) >= PRUNE_BATCH)
        return 1;
    json_t *ev = json_loadb(val, vlen, 0, NULL);
    int64_t ms = 0;
    int readable = event_time_ms(ev, &ms) == 0;
    json_decref(ev);
    if (readable && ms >= p->older_than)
        return 1;
    json_array_append_new(p->keys, json_integer((json_int_t)seq));
    if (readable)
        p->proven = json_array_size(p->keys);
    return 0;
}

/* Deletes the first p->proven picked events in one commit: 0 or the store's error. */
static int delete_picked(struct daemon *d, const struct prune *p)
{
    struct store_batch *b = NULL;
    int rc = store_batch_new(&b);
    for (size_t i = 0; !rc && i < p->proven; i++) {
        unsigned char key[8];
        store_be64_put(key, (uint64_t)json_integer_value(json_array_get(p->keys, i)));
        rc = store_batch_del(b, STORE_EVENTS, key, 8);
    }
    if (!rc)
        rc = store_commit(d->store, b);
    store_batch_free(b);
    return rc;
}

/* One pass: batches of PRUNE_BATCH until no full batch is left, the store fails (tried again
 * next pass) or the daemon stops. */
static void prune_job(struct daemon *d)
{
    struct prune p = {.upto = UINT64_MAX, .older_than = now_ms() - (int64_t)d->cfg->events_keep_s * 1000};
    for (int i = 0; i < d->sinks->n; i++) {
        struct sink *k = &d->sinks->v[i];
        pthread_mutex_lock(&k->lock);
        if (k->saved < p.upto)
            p.upto = k->saved;
        pthread_mutex_unlock(&k->lock);
    }
    size_t deleted = 0;
    int rc = 0, full;
    do {
        p.keys = json_array();
        p.proven = 0;
        rc = p.keys ? store_scan(d->store, STORE_EVENTS, NULL, 0, pick_old, &p) : SAASD_ENOMEM;
        rc = rc < 0 ? rc : p.proven ? delete_picked(d, &p) : 0;
        full = !rc && p.proven == PRUNE_BATCH;
        deleted += rc ? 0 : p.proven;
        json_decref(p.keys);
    } while (full && !d->stopping);
    char n[24];
    snprintf(n, sizeof n, "%zu", deleted);
    if (rc)
        log_warn("sinks", "old events not pruned; tried again next pass", "deleted", n, "error", saasd_strerror(rc));
    else if (deleted)
        log_debug("sinks", "old events pruned", "deleted", n);
}

/* ------------------------------------------------------------------------------------------ */

int sinks_start(struct daemon *d)
{
    const struct saasd_config *cfg = d->cfg;
    struct sinks *all = calloc(1, sizeof *all);
    if (!all || !(all->v = calloc((size_t)cfg->nsinks + 1, sizeof *all->v))) {
        free(all);
        return SAASD_ENOMEM;
    }
    pthread_mutex_init(&all->lock, NULL);
    pthread_cond_init(&all->cond, NULL);
    d->sinks = all;
    /* families described in metric_families.c; each sink's series start at 0 here */
    int rc = 0;
    for (int i = 0; !rc && i < cfg->nsinks; i++) {
        struct sink *k = &all->v[i];
        k->d = d;
        k->cfg = &cfg->sinks[i];
        pthread_mutex_init(&k->lock, NULL);
        all->n++;
        char labels[160];
        snprintf(labels, sizeof labels, "sink=\"%s\",outcome=\"delivered\"", k->cfg->name);
        metrics_add("saasd_sink_deliveries_total", labels, 0);
        snprintf(labels, sizeof labels, "sink=\"%s\",outcome=\"failed\"", k->cfg->name);
        metrics_add("saasd_sink_deliveries_total", labels, 0);
        snprintf(labels, sizeof labels, "sink=\"%s\",outcome=\"skipped\"", k->cfg->name);
        metrics_add("saasd_sink_deliveries_total", labels, 0);
        snprintf(labels, sizeof labels, "sink=\"%s\"", k->cfg->name);
        metrics_set("saasd_sink_pending", labels, 0);
        if ((rc = load_cursor(k)) != 0)
            log_error("sinks", "cannot read the sink's cursor", "sink", k->cfg->name, "error", saasd_strerror(rc));
        else if (pthread_create(&k->thread, NULL, sink_main, k) != 0)
            rc = SAASD_EINTERNAL;
        else
            k->started = 1;
    }
    if (!rc && cfg->events_keep_s > 0)
        all->pruner_started = (rc = daemon_every(d, cfg->events_prune_every_s, prune_job, &all->pruner)) == 0;
    return rc;
}

void sinks_stop(struct daemon *d)
{
    struct sinks *all = d->sinks;
    if (!all)
        return;
    pthread_mutex_lock(&all->lock);
    pthread_cond_broadcast(&all->cond); /* d->stopping is set by the caller */
    pthread_mutex_unlock(&all->lock);
    for (int i = 0; i < all->n; i++) {
        if (all->v[i].started)
            pthread_join(all->v[i].thread, NULL);
        pthread_mutex_destroy(&all->v[i].lock);
    }
    if (all->pruner_started)
        pthread_join(all->pruner, NULL);
    pthread_mutex_destroy(&all->lock);
    pthread_cond_destroy(&all->cond);
    free(all->v);
    free(all);
    d->sinks = NULL;
}

struct pending_count {
    const struct sink_config *cfg;
    size_t n;
};

static int count_wanted(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct pending_count *c = arg;
    json_t *ev = json_loadb(val, vlen, 0, NULL);
    c->n += ev && sink_wants(c->cfg, ev);
    json_decref(ev);
    return c->n >= PENDING_SCAN_MAX;
}

static size_t pending_of(struct sink *k, uint64_t cursor)
{
    unsigned char from[8];
    store_be64_put(from, cursor + 1);
    struct pending_count c = {.cfg = k->cfg};
    store_scan_from(k->d->store, STORE_EVENTS, from, 8, count_wanted, &c);
    return c.n;
}

static json_t *iso_or_null(int64_t ms)
{
    if (!ms)
        return json_null();
    char buf[UTC_TEXT_LEN];
    utc_text(ms / 1000, buf, sizeof buf);
    return json_string(buf);
}

int sinks_status(struct daemon *d, json_t **out)
{
    json_t *list = json_array();
    for (int i = 0; d->sinks && i < d->sinks->n; i++) {
        struct sink *k = &d->sinks->v[i];
        pthread_mutex_lock(&k->lock);
        uint64_t cursor = k->cursor;
        int64_t wait = k->attempts ? k->next_try_ms - now_ms() : 0;
        json_t *s = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:i, s:I, s:o, s:o}", "name", k->cfg->name, "kind",
                              sink_kind_name(k->cfg->kind), "delivered", (json_int_t)k->delivered, "failed_attempts",
                              (json_int_t)k->failed_attempts, "cursor", (json_int_t)cursor, "failing_since",
                              iso_or_null(k->failing_since_ms), "attempts", k->attempts, "next_try_in_ms",
                              (json_int_t)(wait > 0 ? wait : 0), "last_error",
                              k->last_error[0] ? json_string(k->last_error) : json_null(), "last_delivered",
                              iso_or_null(k->last_delivered_ms));
        pthread_mutex_unlock(&k->lock);
        json_object_set_new(s, "pending", json_integer((json_int_t)pending_of(k, cursor)));
        pthread_mutex_lock(&k->lock);
        json_object_set_new(s, "retrying_seq", k->head_seq && k->attempts ? json_integer((json_int_t)k->head_seq) : json_null());
        pthread_mutex_unlock(&k->lock);
        json_array_append_new(list, s);
    }
    *out = list;
    return 0;
}

static struct sink *find_sink(struct daemon *d, const char *name)
{
    for (int i = 0; d->sinks && i < d->sinks->n; i++)
        if (!strcmp(d->sinks->v[i].cfg->name, name))
            return &d->sinks->v[i];
    return NULL;
}

int sinks_operate(struct daemon *d, const char *name, const char *verb, uint64_t seq)
{
    struct sink *k = find_sink(d, name);
    if (!k)
        return SAASD_ENOTFOUND;
    int skip = !strcmp(verb, "skip");
    if (!skip && strcmp(verb, "retry"))
        return SAASD_EINVAL;
    pthread_mutex_lock(&k->lock);
    int rc = !k->attempts || (skip && k->head_seq != seq) ? SAASD_ECONFLICT : 0;
    if (!rc && skip)
        k->skip_seq = seq;
    pthread_mutex_unlock(&k->lock);
    if (rc)
        return rc;
    pthread_mutex_lock(&d->sinks->lock);
    k->wake = 1;
    pthread_cond_broadcast(&d->sinks->cond);
    pthread_mutex_unlock(&d->sinks->lock);
    return 0;
}

void sinks_update_metrics(struct daemon *d)
{
    for (int i = 0; d->sinks && i < d->sinks->n; i++) {
        struct sink *k = &d->sinks->v[i];
        pthread_mutex_lock(&k->lock);
        uint64_t cursor = k->cursor;
        pthread_mutex_unlock(&k->lock);
        char labels[160];
        snprintf(labels, sizeof labels, "sink=\"%s\"", k->cfg->name);
        metrics_set("saasd_sink_pending", labels, (double)pending_of(k, cursor));
    }
}
