/* Durable rule timers (see timers.h). */
#include "daemon/timers.h"
#include "daemon/daemon.h"
#include "daemon/decide.h"
#include "daemon/flows_internal.h"

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMER_KEY_MAX 160
#define FIRE_MAX 256
#define RETRY_MAX_S 3600

static size_t name_key(unsigned char *k, const char *sub, const char *name)
{
    size_t sl = strlen(sub), nl = strlen(name);
    if (sl > 64 || nl > 64)
        return 0;
    k[0] = 'n';
    memcpy(k + 1, sub, sl + 1);
    memcpy(k + 2 + sl, name, nl);
    return 2 + sl + nl;
}

static size_t due_key(unsigned char *k, int64_t at, const char *sub, const char *name)
{
    unsigned char n[TIMER_KEY_MAX];
    size_t nl = name_key(n, sub, name);
    if (!nl)
        return 0;
    k[0] = 'd';
    store_be64_put(k + 1, (uint64_t)at);
    memcpy(k + 9, n + 1, nl - 1);
    return 8 + nl;
}

/* The due key of sub's timer name as committed: 0 (*klen set) or SAASD_ENOTFOUND. */
static int current_due(struct daemon *d, const char *sub, const char *name, unsigned char *dk, size_t *klen)
{
    unsigned char nk[TIMER_KEY_MAX];
    size_t nl = name_key(nk, sub, name);
    void *v = NULL;
    size_t vl = 0;
    int rc = nl ? store_get(d->store, STORE_TIMERS, nk, nl, &v, &vl) : SAASD_EINVAL;
    if (rc == 0 && vl != 8)
        rc = SAASD_EINTERNAL;
    if (rc == 0)
        *klen = due_key(dk, (int64_t)store_be64_get(v), sub, name);
    free(v);
    return rc;
}

int timers_batch_cancel(struct daemon *d, struct store_batch *b, const char *sub_id, const char *name)
{
    unsigned char dk[TIMER_KEY_MAX], nk[TIMER_KEY_MAX];
    size_t dl, nl = name_key(nk, sub_id, name);
    if (!nl)
        return SAASD_EINVAL;
    int rc = current_due(d, sub_id, name, dk, &dl);
    if (rc == SAASD_ENOTFOUND)
        return 0;
    if (!rc)
        rc = store_batch_del(b, STORE_TIMERS, dk, dl);
    if (!rc)
        rc = store_batch_del(b, STORE_TIMERS, nk, nl);
    return rc;
}

int timers_batch_set(struct daemon *d, struct store_batch *b, const char *sub_id, const char *offer,
                     const char *name, int64_t at_s, json_t *data)
{
    unsigned char dk[TIMER_KEY_MAX], nk[TIMER_KEY_MAX], be[8];
    size_t nl = name_key(nk, sub_id, name), dl = due_key(dk, at_s, sub_id, name);
    if (!nl || !dl || at_s < 0)
        return SAASD_EINVAL;
    int rc = timers_batch_cancel(d, b, sub_id, name); /* setting a name again replaces it */
    json_t *t = json_pack("{s:s, s:s, s:s, s:I, s:O?}", "sub_id", sub_id, "offer", offer, "name", name, "at",
                          (json_int_t)at_s, "data", data);
    char *text = t ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(t);
    if (!rc && !text)
        rc = SAASD_ENOMEM;
    if (!rc)
        rc = store_batch_put(b, STORE_TIMERS, dk, dl, text, strlen(text));
    store_be64_put(be, (uint64_t)at_s);
    if (!rc)
        rc = store_batch_put(b, STORE_TIMERS, nk, nl, be, 8);
    free(text);
    return rc;
}

static int collect_names(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    const char *k = key;
    const char *sub = k + 1;
    size_t sl = strlen(sub);
    json_array_append_new(arg, json_stringn(k + 2 + sl, klen - 2 - sl));
    return 0;
}

int timers_batch_cancel_all(struct daemon *d, struct store_batch *b, const char *sub_id)
{
    unsigned char prefix[TIMER_KEY_MAX];
    size_t pl = strlen(sub_id) + 2;
    if (pl > 66)
        return SAASD_EINVAL;
    prefix[0] = 'n';
    memcpy(prefix + 1, sub_id, pl - 1);
    json_t *names = json_array();
    int rc = names ? store_scan(d->store, STORE_TIMERS, prefix, pl, collect_names, names) : SAASD_ENOMEM;
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) if (!rc) rc = timers_batch_cancel(d, b, sub_id, json_string_value(n));
    json_decref(names);
    return rc;
}

int timers_get(struct daemon *d, const char *sub_id, const char *name, json_t **out)
{
    unsigned char dk[TIMER_KEY_MAX];
    size_t dl = 0;
    void *v = NULL;
    size_t vl = 0;
    int rc = current_due(d, sub_id, name, dk, &dl);
    if (!rc)
        rc = store_get(d->store, STORE_TIMERS, dk, dl, &v, &vl);
    json_t *t = rc ? NULL : json_loadb(v, vl, 0, NULL);
    free(v);
    if (!rc && !t)
        rc = SAASD_EINTERNAL;
    *out = t;
    return rc;
}

int timers_of_sub(struct daemon *d, const char *sub_id, json_t **out)
{
    unsigned char prefix[TIMER_KEY_MAX];
    size_t pl = strlen(sub_id) + 2;
    json_t *names = json_array(), *list = json_array(), *n, *t;
    size_t i;
    int rc = names && list ? 0 : SAASD_ENOMEM;
    if (!rc && pl > 66)
        rc = SAASD_EINVAL;
    if (!rc) {
        prefix[0] = 'n';
        memcpy(prefix + 1, sub_id, pl - 1);
        rc = store_scan(d->store, STORE_TIMERS, prefix, pl, collect_names, names);
    }
    /* a timer fired or cancelled between the scan and its read is simply not listed */
    json_array_foreach(names, i, n) if (!rc && timers_get(d, sub_id, json_string_value(n), &t) == 0)
        json_array_append_new(list, t);
    json_decref(names);
    if (rc) {
        json_decref(list);
        list = NULL;
    }
    *out = list;
    return rc;
}

/* ---- firing ----------------------------------------------------------------------------- */

struct due_scan {
    int64_t now;
    json_t *list; /* the due timers' records */
};

static int pick_due(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct due_scan *s = arg;
    if (klen < 9 || ((const unsigned char *)key)[0] != 'd')
        return 1; /* past the due keys */
    if ((int64_t)store_be64_get((const unsigned char *)key + 1) > s->now || json_array_size(s->list) >= FIRE_MAX)
        return 1; /* in key order: everything after is later */
    json_t *t = json_loadb(val, vlen, 0, NULL);
    if (t)
        json_array_append_new(s->list, t);
    return 0;
}

/* After a failure: the same timer, later (attempts counted in the record). */
static void retry_later(struct daemon *d, json_t *t, const char *sub, const char *name, int64_t now)
{
    json_int_t attempts = json_integer_value(json_object_get(t, "attempts")) + 1;
    int64_t wait = attempts >= 12 ? RETRY_MAX_S : (int64_t)1 << attempts;
    if (wait > RETRY_MAX_S)
        wait = RETRY_MAX_S;
    json_t *data = json_object_get(t, "data");
    struct store_batch *b = NULL;
    int rc = store_batch_new(&b);
    if (!rc)
        rc = timers_batch_set(d, b, sub, json_string_value(json_object_get(t, "offer")), name, now + wait, data);
    /* the attempt count rides in the new record: rewrite it */
    unsigned char dk[TIMER_KEY_MAX];
    size_t dl = due_key(dk, now + wait, sub, name);
    json_object_set_new(t, "attempts", json_integer(attempts));
    json_object_set_new(t, "at", json_integer(now + wait));
    char *text = json_dumps(t, JSON_COMPACT);
    if (!rc && text)
        rc = store_batch_put(b, STORE_TIMERS, dk, dl, text, strlen(text));
    if (!rc)
        rc = store_commit(d->store, b);
    free(text);
    store_batch_free(b);
    if (rc)
        log_warn("timers", "could not reschedule a failed timer", "sub_id", sub, "name", name, "error",
                 saasd_strerror(rc));
}

/* Fire one due timer under the subscription's lock. 1 when its handler succeeded. */
static int fire_one(struct daemon *d, json_t *t, int64_t now)
{
    const char *sub = json_string_value(json_object_get(t, "sub_id"));
    const char *name = json_string_value(json_object_get(t, "name"));
    int64_t at = (int64_t)json_integer_value(json_object_get(t, "at"));
    if (!sub || !name)
        return 0;
    unsigned char dk[TIMER_KEY_MAX];
    size_t cur = 0, dl = due_key(dk, at, sub, name);
    daemon_lock_sub(d, sub);
    unsigned char ck[TIMER_KEY_MAX];
    json_t *rec = NULL;
    struct store_batch *b = NULL;
    int ok = 0, rc = current_due(d, sub, name, ck, &cur);
    if (rc || cur != dl || memcmp(ck, dk, dl)) { /* cancelled or replaced since the scan */
        daemon_unlock_sub(d, sub);
        return 0;
    }
    rc = store_batch_new(&b);
    if (!rc)
        rc = timers_batch_cancel(d, b, sub, name); /* firing deletes it, in the decision's batch */
    int gone = record_get_sub(d, sub, &rec) != 0;
    const char *status = gone ? NULL : json_string_value(json_object_get(rec, "status"));
    if (!rc && (gone || (status && !strcmp(status, "Unsubscribed")))) {
        log_info("timers", "timer of an unsubscribed subscription dropped", "sub_id", sub, "name", name);
        rc = store_commit(d->store, b);
    } else if (!rc) {
        const char *offer = json_string_value(json_object_get(rec, "offerId"));
        json_t *arg = json_pack("{s:s, s:O}", "name", name, "data", json_object_get(t, "data") ? json_object_get(t, "data") : json_null());
        struct decision dec;
        rc = decide(d, offer && *offer ? offer : "default", "timer", json_object_get(rec, "subscription"), arg, b, &dec);
        json_decref(arg);
        if (rc) {
            log_warn("timers", "timer handler failed: retried later", "sub_id", sub, "name", name, "error", dec.error);
            retry_later(d, t, sub, name, now);
        } else {
            rc = flows_add_audit(b, sub, flows_audit_entry(NULL, "Timer", dec.verdict, name, &dec));
            if (!rc)
                rc = store_commit(d->store, b);
            ok = rc == 0;
            metrics_inc("saasd_rule_timers_fired_total", NULL);
        }
    }
    store_batch_free(b);
    json_decref(rec);
    daemon_unlock_sub(d, sub);
    return ok;
}

int timers_fire_due(struct daemon *d, int64_t now_s, int *fired)
{
    struct due_scan s = {.now = now_s, .list = json_array()};
    if (!s.list)
        return SAASD_ENOMEM;
    int rc = store_scan(d->store, STORE_TIMERS, "d", 1, pick_due, &s);
    if (rc == 1)
        rc = 0;
    int n = 0;
    size_t i;
    json_t *t;
    json_array_foreach(s.list, i, t) n += fire_one(d, t, now_s);
    json_decref(s.list);
    if (fired)
        *fired = n;
    return rc;
}

static void timers_job(struct daemon *d)
{
    timers_fire_due(d, now_ms() / 1000, NULL);
}

int timers_start(struct daemon *d)
{
    int rc = daemon_every(d, 1, timers_job, &d->timer_thread);
    d->timer_thread_started = rc == 0;
    return rc;
}
