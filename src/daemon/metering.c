#include "daemon/metering.h"
#include "daemon/daemon.h"
#include "daemon/decide.h"
#include "daemon/events.h"

#include "core/config.h"
#include "core/err.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp_client.h"
#include "core/store.h"
#include "core/utc.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH_MAX 25                 /* §7.1: at most 25 events per batchUsageEvent */
#define MAX_ATTEMPTS 5               /* then a bucket that keeps failing as a whole is given up */
#define SENDING_STALE_MS (10 * 60000) /* a "sending" bucket this old was cut off by a crash */
#define KEY_MAX 256

static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER; /* one sending pass at a time */

static int build_key(const char *sub, const char *dim, int64_t hour_s, unsigned char key[KEY_MAX], size_t *klen)
{
    size_t sl = strlen(sub), dl = strlen(dim);
    if (sl + dl + 10 > KEY_MAX)
        return SAASD_EINVAL;
    memcpy(key, sub, sl + 1);
    memcpy(key + sl + 1, dim, dl + 1);
    for (int i = 0; i < 8; i++)
        key[sl + dl + 2 + i] = (unsigned char)((uint64_t)hour_s >> (56 - 8 * i));
    *klen = sl + dl + 10;
    return 0;
}

static int id_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (const char *p = s; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

static char *dump(json_t *j, size_t *len)
{
    char *t = json_dumps(j, JSON_COMPACT);
    *len = t ? strlen(t) : 0;
    return t;
}

/* Start of the UTC hour (epoch seconds) that contains ms: the bucket of §7.4. */
static int64_t hour_of(int64_t ms)
{
    return ms / 1000 / 3600 * 3600;
}

/* ---- recording ---------------------------------------------------------------------------- */

struct add_arg {
    const char *sub, *dim;
    int64_t hour_s;
    double quantity;               /* to bill */
    double reported;               /* as the ISV reported it, before the usage rule */
    const struct decision *rule;   /* the usage rule's decision, NULL when folding */
    int fold;                      /* the quantity is an earlier hour's, folded in (§7.4) */
};

static int add_usage(void *arg, const void *old, size_t oldlen, void **new_val, size_t *new_len)
{
    struct add_arg *a = arg;
    json_t *b = old ? json_loadb(old, oldlen, 0, NULL) : json_pack("{s:s, s:s, s:I, s:f, s:s, s:i}", "sub_id", a->sub,
                                                                    "dimension", a->dim, "hour_s", (json_int_t)a->hour_s,
                                                                    "quantity", 0.0, "state", "open", "attempts", 0);
    if (!b)
        return SAASD_ENOMEM;
    const char *state = json_string_value(json_object_get(b, "state"));
    if (!state || strcmp(state, "open")) {
        json_decref(b);
        return SAASD_ECONFLICT; /* already being sent, or sent: Microsoft takes one event per hour */
    }
    double q = json_number_value(json_object_get(b, "quantity")) + a->quantity;
    json_object_set_new(b, "quantity", json_real(q));
    if (a->fold)
        json_object_set_new(b, "folded_in", json_real(json_number_value(json_object_get(b, "folded_in")) + a->quantity));
    if (a->rule) {
        json_object_set_new(b, "reported", json_real(json_number_value(json_object_get(b, "reported")) + a->reported));
        if (a->rule->rule_sha256[0]) { /* which rule text decided the latest report */
            json_object_set_new(b, "rule_file", json_string(a->rule->rule_file));
            json_object_set_new(b, "rule_sha256", json_string(a->rule->rule_sha256));
            json_object_set_new(b, "rule_generation", json_integer(a->rule->generation));
        }
    }
    *new_val = dump(b, new_len);
    json_decref(b);
    return *new_val ? 0 : SAASD_ENOMEM;
}

/* ctx.meter's bucket update: arg is the batch's copy of {double quantity, int64 hour_s,
 * "sub\0dim\0"} (unaligned). */
struct meter_arg {
    double quantity;
    int64_t hour_s;
    char ids[2 * 65 + 2];
};

static int meter_usage(void *arg, const void *old, size_t oldlen, void **new_val, size_t *new_len)
{
    struct meter_arg m;
    memcpy(&m, arg, sizeof m);
    struct add_arg a = {m.ids, m.ids + strlen(m.ids) + 1, m.hour_s, m.quantity, m.quantity, NULL, 0};
    return add_usage(&a, old, oldlen, new_val, new_len);
}

int metering_batch_add(struct store_batch *b, const char *sub_id, const char *dimension, double quantity,
                       int64_t when_ms)
{
    if (!sub_id || !id_ok(sub_id, 64) || !dimension || !id_ok(dimension, 64) || !(quantity > 0) || !isfinite(quantity))
        return SAASD_EINVAL;
    struct meter_arg m = {.quantity = quantity, .hour_s = hour_of(when_ms)};
    size_t sl = strlen(sub_id);
    memcpy(m.ids, sub_id, sl + 1);
    memcpy(m.ids + sl + 1, dimension, strlen(dimension) + 1);
    unsigned char key[KEY_MAX];
    size_t klen;
    int rc = build_key(sub_id, dimension, m.hour_s, key, &klen);
    if (!rc)
        rc = store_batch_update_copy(b, STORE_USAGE, key, klen, meter_usage, &m, sizeof m);
    return rc;
}

/* The usage report as the usage rule sees it. */
static json_t *usage_view(const char *dimension, double quantity, int64_t when_ms)
{
    char iso[UTC_TEXT_LEN];
    utc_text(when_ms / 1000, iso, sizeof iso);
    return json_pack("{s:s, s:f, s:s}", "dimension", dimension, "quantity", quantity, "time", iso);
}

/* The engine words every `nil, err` as "returned an error (try again later)", which is right for
 * side effects; for a usage report it is a refusal, and the hint would be false. */
static const char *without_retry_hint(char *msg)
{
    static const char hint[] = " (try again later)";
    char *p = strstr(msg, hint);
    if (p)
        memmove(p, p + sizeof hint - 1, strlen(p + sizeof hint - 1) + 1);
    return msg;
}

/* A usage report's fields checked (§7.4: within the last 24 hours). */
static int check_report(const char *sub_id, const char *dimension, double quantity, int64_t when_ms, char *err,
                        size_t errsize)
{
    int64_t now = now_ms();
    if (!sub_id || !id_ok(sub_id, 64)) {
        snprintf(err, errsize, "subscriptionId must be an id of 1..64 characters");
        return SAASD_EINVAL;
    }
    if (!dimension || !id_ok(dimension, 64)) {
        snprintf(err, errsize, "dimension must be an id of 1..64 characters");
        return SAASD_EINVAL;
    }
    if (!(quantity > 0) || !isfinite(quantity)) {
        snprintf(err, errsize, "quantity must be a number greater than 0");
        return SAASD_EINVAL;
    }
    if (when_ms > now + 5 * 60000 || when_ms < now - 24 * 3600000LL) {
        snprintf(err, errsize, "usage must have happened within the last 24 hours (section 7.4)");
        return SAASD_EINVAL;
    }
    return 0;
}

/* The local record of a Subscribed subscription (the caller's to decref). */
static int subscribed_record(struct daemon *d, const char *sub_id, json_t **local, char *err, size_t errsize)
{
    if (record_get_sub(d, sub_id, local) != 0) {
        snprintf(err, errsize, "subscription %s is not known here (saasd records it when its landing page is visited)",
                 sub_id);
        return SAASD_ENOTFOUND;
    }
    const char *status = json_string_value(json_object_get(*local, "status"));
    if (!status || strcmp(status, "Subscribed") != 0) {
        /* Microsoft bills only active subscriptions: usage of a Suspended, Unsubscribed or
         * not yet activated one would be refused at sending time, after being recorded. */
        snprintf(err, errsize,
                 "subscription %s is %s, not Subscribed: usage is only recorded for a Subscribed subscription "
                 "(retrying will not help while it is %s)",
                 sub_id, status ? status : "not activated", status ? status : "not activated");
        json_decref(*local);
        *local = NULL;
        return SAASD_ECONFLICT;
    }
    return 0;
}

int metering_record(struct daemon *d, const char *sub_id, const char *dimension, double quantity, int64_t when_ms,
                    double *billed, char *err, size_t errsize)
{
    if (billed)
        *billed = 0;
    if (errsize)
        *err = 0;
    json_t *local = NULL;
    int rc = check_report(sub_id, dimension, quantity, when_ms, err, errsize);
    if (rc || (rc = subscribed_record(d, sub_id, &local, err, errsize)) != 0)
        return rc;
    const char *offer = json_string_value(json_object_get(local, "offerId"));
    struct decision dec;
    struct add_arg a = {sub_id, dimension, hour_of(when_ms), quantity, quantity, &dec, 0};
    unsigned char key[KEY_MAX];
    size_t klen;
    struct store_batch *b = NULL;
    json_t *view = usage_view(dimension, quantity, when_ms);
    /* The rule's ctx.store writes and the bucket are one commit: a report counts fully or not at all. */
    rc = view ? build_key(sub_id, dimension, a.hour_s, key, &klen) : SAASD_ENOMEM;
    if (!rc)
        rc = store_batch_new(&b);
    if (!rc && (rc = decide(d, offer && *offer ? offer : "default", "usage", json_object_get(local, "subscription"),
                            view, b, &dec)) != 0)
        snprintf(err, errsize, "%s: %s",
                 dec.limit_hit ? "the offer's usage rule hit its limit"
                               : "the offer's usage rule refused this report (sending it again gets the same answer "
                                 "unless the rule or its ctx.store facts change)",
                 without_retry_hint(dec.error));
    if (!rc) {
        a.quantity = dec.bill;
        if (a.quantity > 0)
            rc = store_batch_update(b, STORE_USAGE, key, klen, add_usage, &a);
    }
    if (!rc)
        rc = store_commit(d->store, b);
    store_batch_free(b);
    json_decref(view);
    json_decref(local);
    if (rc == SAASD_ECONFLICT)
        snprintf(err, errsize, "usage of that hour has already been sent to Microsoft (retrying will not help: "
                               "report it in a later hour)");
    else if (rc && !*err)
        snprintf(err, errsize, "%s", saasd_strerror(rc));
    if (!rc && billed)
        *billed = a.quantity;
    return rc;
}

/* ---- sending ------------------------------------------------------------------------------ */

struct bucket {
    unsigned char key[KEY_MAX];
    size_t klen;
    json_t *rec;     /* the bucket as claimed */
    double quantity; /* what is sent */
    char start[32];  /* effectiveStartTime */
};

struct pick {
    int64_t now, cutoff_s; /* hours starting before cutoff_s are closed enough */
    struct bucket *list;
    size_t n;
};

static int pick_due(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct pick *p = arg;
    if (p->n == BATCH_MAX || klen > KEY_MAX)
        return p->n == BATCH_MAX;
    json_t *b = json_loadb(val, vlen, 0, NULL);
    const char *state = json_string_value(json_object_get(b, "state"));
    int64_t hour = json_integer_value(json_object_get(b, "hour_s"));
    int stale_send = state && !strcmp(state, "sending") &&
                     json_integer_value(json_object_get(b, "sending_ms")) < p->now - SENDING_STALE_MS;
    if (state && (!strcmp(state, "open") || stale_send) && hour < p->cutoff_s) {
        struct bucket *k = &p->list[p->n++];
        memcpy(k->key, key, klen);
        k->klen = klen;
        k->rec = b;
        return 0;
    }
    json_decref(b);
    return 0;
}

/* Mark the picked buckets "sending" in one commit: from then on nobody adds to them. */
static int claim(struct daemon *d, struct bucket *list, size_t n, int64_t now)
{
    struct store_batch *b = NULL;
    int rc = store_batch_new(&b);
    for (size_t i = 0; !rc && i < n; i++) {
        json_object_set_new(list[i].rec, "state", json_string("sending"));
        json_object_set_new(list[i].rec, "sending_ms", json_integer(now));
        size_t len;
        char *t = dump(list[i].rec, &len);
        rc = t ? store_batch_put(b, STORE_USAGE, list[i].key, list[i].klen, t, len) : SAASD_ENOMEM;
        free(t);
    }
    if (!rc)
        rc = store_commit(d->store, b);
    store_batch_free(b);
    return rc;
}

static json_t *find_result(json_t *results, const char *sub, const char *dim, const char *start)
{
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r) {
        char rs[128] = "", rd[128] = "", rt[64] = "";
        jl_string(r, "resourceId", rs, sizeof rs);
        jl_string(r, "dimension", rd, sizeof rd);
        jl_string(r, "effectiveStartTime", rt, sizeof rt);
        if (!strcmp(rs, sub) && !strcmp(rd, dim) && !strncmp(rt, start, 13)) /* same hour */
            return r;
    }
    return NULL;
}

/* What became of a bucket when its batch was answered. */
enum fate { FATE_OPEN, FATE_SENT, FATE_FAILED, FATE_FOLDED };

/* Per fate: the bucket's stored state, which is also its outcome label in
 * saasd_usage_events_total; the event that tells the offer's sinks (NULL: none) and the key
 * of the event's data that carries the detail; the metering_pass counter it is counted in. */
static const struct {
    const char *state;
    const char *event, *detail_key;
    size_t counter; /* offsetof(struct metering_pass, ...) */
} fate_rows[] = {
    [FATE_OPEN] = {"open", NULL, NULL, offsetof(struct metering_pass, retry)},
    [FATE_SENT] = {"sent", "usage.billed", "result", offsetof(struct metering_pass, sent)},
    [FATE_FAILED] = {"failed", "usage.failed", "error", offsetof(struct metering_pass, failed)},
    [FATE_FOLDED] = {"folded", NULL, NULL, offsetof(struct metering_pass, folded)},
};

/* The bucket's fate from its result item (§7.3): sent, failed or (to send again) open. */
static enum fate settle_bucket(struct bucket *k, json_t *item, char *detail, size_t size)
{
    char status[64] = "";
    jl_string(item, "status", status, sizeof status);
    snprintf(detail, size, "%s", status[0] ? status : "no result for this event");
    if (!strcmp(status, "Accepted")) {
        char id[64] = "";
        jl_string(item, "usageEventId", id, sizeof id);
        json_object_set_new(k->rec, "usage_event_id", json_string(id));
        return FATE_SENT;
    }
    if (!strcmp(status, "Duplicate")) {
        /* Already recorded (a resend after a crash) if the accepted quantity is ours (§7.4). */
        double accepted = -1;
        jl_real(jl_path(item, "error.additionalInfo.acceptedMessage"), "quantity", &accepted);
        if (fabs(accepted - k->quantity) < 1e-9)
            return FATE_SENT;
        snprintf(detail, size, "Duplicate: Microsoft holds another quantity for this hour");
        return FATE_FAILED;
    }
    if (!status[0] || !strcmp(status, "Error"))
        return FATE_OPEN;
    return FATE_FAILED; /* Expired, ResourceNotActive, InvalidDimension, ...: sending again cannot help */
}

/* §7.4 practice: usage whose hour cannot be sent any more (Microsoft kept failing, or the hour
 * is past the 24-hour window) is not dropped but added to the current hour's event. The current
 * hour is never due, so its bucket is open; should the clock have gone back and it is not,
 * the usage stays with its own bucket, marked failed. */
struct fold_arg {
    const char *sub, *dim;
    int64_t hour_s;
    double quantity;
    int folded; /* set by each run of fold_usage */
};

static int fold_usage(void *arg, const void *old, size_t oldlen, void **new_val, size_t *new_len)
{
    struct fold_arg *f = arg;
    struct add_arg a = {f->sub, f->dim, f->hour_s, f->quantity, 0, NULL, 1};
    int rc = add_usage(&a, old, oldlen, new_val, new_len);
    f->folded = rc == 0;
    return rc == SAASD_ECONFLICT ? 0 : rc; /* not open: the target stays; the caller sees folded == 0 */
}

/* Whether a bucket that is given up on should move its quantity to the current hour. */
static int foldable(enum fate fate, const char *detail, int exhausted)
{
    return fate == FATE_FAILED && (exhausted || !strcmp(detail, "Expired"));
}

/* The fate counted in saasd_usage_events_total and in the pass. */
static void count_fate(enum fate fate, struct metering_pass *out)
{
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", fate_rows[fate].state);
    metrics_inc("saasd_usage_events_total", labels);
    (*(int *)((char *)out + fate_rows[fate].counter))++;
}

/* The fate's event (usage.billed / usage.failed, events.c), in the batch that settles the hour. */
static int usage_event(struct daemon *d, struct store_batch *b, const struct bucket *k, enum fate fate,
                       const char *detail)
{
    const char *sub = json_string_value(json_object_get(k->rec, "sub_id"));
    json_t *local = NULL;
    record_get_sub(d, sub, &local);
    json_t *data = json_pack("{s:O?, s:s, s:f, s:O?}", "dimension", json_object_get(k->rec, "dimension"), "hour",
                             k->start, "quantity", k->quantity, "planId", json_object_get(local, "planId"));
    json_object_set_new(data, fate_rows[fate].detail_key, json_string(detail));
    int rc = events_add(b, fate_rows[fate].event, json_string_value(json_object_get(local, "offerId")), sub, data);
    json_decref(local);
    return rc;
}

/* The batch's usage events (§7.2), each bucket's hour and quantity noted in it as sent. */
static json_t *usage_events_of(struct daemon *d, struct bucket *list, size_t n)
{
    json_t *events = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *sub = json_string_value(json_object_get(list[i].rec, "sub_id"));
        const char *dim = json_string_value(json_object_get(list[i].rec, "dimension"));
        time_t hour = (time_t)json_integer_value(json_object_get(list[i].rec, "hour_s"));
        struct tm tm;
        gmtime_r(&hour, &tm);
        strftime(list[i].start, sizeof list[i].start, "%Y-%m-%dT%H:00:00Z", &tm);
        list[i].quantity = json_number_value(json_object_get(list[i].rec, "quantity"));
        json_t *local = NULL;
        const char *plan = NULL;
        if (record_get_sub(d, sub, &local) == 0)
            plan = json_string_value(json_object_get(local, "planId"));
        json_array_append_new(events, json_pack("{s:s, s:f, s:s, s:s, s:s}", "resourceId", sub, "quantity",
                                                list[i].quantity, "dimension", dim, "effectiveStartTime",
                                                list[i].start, "planId", plan ? plan : ""));
        json_decref(local);
    }
    return events;
}

/* What Microsoft answered to a batch: the items' results, or why the whole call failed. */
struct batch_answer {
    int rc;
    json_t *results;
    char whole_error[256];
};

/* A bucket's fate from the answer (settle_bucket), with its detail and attempt count; an open
 * bucket out of attempts has failed (*exhausted). */
static enum fate bucket_fate(struct bucket *k, const struct batch_answer *ans, char *detail, size_t size,
                             int *attempts, int *exhausted)
{
    const char *sub = json_string_value(json_object_get(k->rec, "sub_id"));
    const char *dim = json_string_value(json_object_get(k->rec, "dimension"));
    enum fate fate;
    if (ans->rc == 0) {
        fate = settle_bucket(k, find_result(ans->results, sub, dim, k->start), detail, size);
    } else {
        fate = FATE_OPEN;
        snprintf(detail, size, "%s", ans->whole_error);
    }
    *attempts = (int)json_integer_value(json_object_get(k->rec, "attempts")) + 1;
    *exhausted = fate == FATE_OPEN && *attempts >= MAX_ATTEMPTS;
    return *exhausted ? FATE_FAILED : fate;
}

/* A given-up bucket of a past hour moves its usage to the current hour's (fold->hour_s) in b:
 * folded then, else its fate unchanged. */
static enum fate try_fold(struct store_batch *b, struct bucket *k, enum fate fate, const char *detail,
                          int exhausted, struct fold_arg *fold)
{
    if (!foldable(fate, detail, exhausted) || !(k->quantity > 0) ||
        json_integer_value(json_object_get(k->rec, "hour_s")) >= fold->hour_s)
        return fate;
    unsigned char key[KEY_MAX];
    size_t klen;
    if (build_key(fold->sub, fold->dim, fold->hour_s, key, &klen) != 0 ||
        store_batch_update(b, STORE_USAGE, key, klen, fold_usage, fold) != 0)
        return fate;
    json_object_set_new(k->rec, "folded_into_hour_s", json_integer(fold->hour_s));
    return FATE_FOLDED;
}

/* The bucket's record with its fate, and its usage.billed/usage.failed event, into b. */
static int store_bucket(struct daemon *d, struct store_batch *b, struct bucket *k, enum fate fate,
                        const char *detail, int attempts, int64_t now)
{
    if (fate == FATE_SENT) /* usage reconciliation leaves recently sent hours for later */
        json_object_set_new(k->rec, "sent_ms", json_integer(now));
    json_object_set_new(k->rec, "state", json_string(fate_rows[fate].state));
    json_object_set_new(k->rec, "attempts", json_integer(attempts));
    json_object_set_new(k->rec, "result", json_string(detail));
    json_object_del(k->rec, "sending_ms");
    size_t len;
    char *t = dump(k->rec, &len);
    int rc = t ? store_batch_put(b, STORE_USAGE, k->key, k->klen, t, len) : SAASD_ENOMEM;
    free(t);
    if (!rc && fate_rows[fate].event)
        rc = usage_event(d, b, k, fate, detail);
    return rc;
}

/* Every bucket's fate (fates[], folds[]) decided and committed in one batch. */
static int record_fates(struct daemon *d, struct bucket *list, size_t n, const struct batch_answer *ans,
                        struct fold_arg *folds, enum fate *fates)
{
    int64_t now = now_ms(), current_hour = hour_of(now);
    struct store_batch *b = NULL;
    int src = store_batch_new(&b);
    for (size_t i = 0; !src && i < n; i++) {
        struct bucket *k = &list[i];
        const char *sub = json_string_value(json_object_get(k->rec, "sub_id"));
        const char *dim = json_string_value(json_object_get(k->rec, "dimension"));
        char detail[256];
        int attempts, exhausted;
        enum fate fate = bucket_fate(k, ans, detail, sizeof detail, &attempts, &exhausted);
        folds[i] = (struct fold_arg){sub, dim, current_hour, k->quantity, 0};
        fates[i] = fate = try_fold(b, k, fate, detail, exhausted, &folds[i]);
        src = store_bucket(d, b, k, fate, detail, attempts, now);
        if (fate != FATE_SENT)
            log_warn("metering", "usage event not accepted", "sub_id", sub, "dimension", dim, "hour", k->start,
                     "state", fate_rows[fate].state, "detail", detail);
    }
    if (!src)
        src = store_commit(d->store, b);
    store_batch_free(b);
    return src;
}

/* The committed fates counted into the pass and the usage events metric. */
static void count_fates(const struct fold_arg *folds, enum fate *fates, size_t n, struct metering_pass *out)
{
    for (size_t i = 0; i < n; i++) {
        if (fates[i] == FATE_FOLDED && !folds[i].folded) {
            /* The current hour was not open (clock went back): the usage stays in its own
             * bucket, which says "folded" but holds the quantity; the log line is the record. */
            char q[32];
            snprintf(q, sizeof q, "%g", folds[i].quantity);
            log_error("metering", "usage could not be folded into the current hour", "sub_id", folds[i].sub,
                      "dimension", folds[i].dim, "quantity", q);
            fates[i] = FATE_FAILED;
        }
        count_fate(fates[i], out);
    }
}

static int send_batch(struct daemon *d, struct bucket *list, size_t n, struct metering_pass *out)
{
    json_t *events = usage_events_of(d, list, n);
    struct mp_result mr = {0};
    struct batch_answer ans = {.rc = mp_batch_usage_event(d->mp, events, &mr)};
    json_decref(events);
    ans.results = ans.rc == 0 ? json_object_get(mr.body, "result") : NULL;
    snprintf(ans.whole_error, sizeof ans.whole_error, "batchUsageEvent failed: %s (HTTP %ld) %.160s",
             saasd_strerror(ans.rc), mr.status, mr.message);
    struct fold_arg folds[BATCH_MAX];
    enum fate fates[BATCH_MAX];
    int src = record_fates(d, list, n, &ans, folds, fates);
    if (!src)
        count_fates(folds, fates, n, out);
    mp_result_clear(&mr);
    return src;
}

int metering_flush(struct daemon *d, int ignore_grace, struct metering_pass *out)
{
    struct metering_pass pass = {0};
    struct bucket list[BATCH_MAX];
    int rc = 0;
    pthread_mutex_lock(&flush_lock);
    for (;;) {
        int64_t now = now_ms();
        int64_t current_hour = hour_of(now);
        int64_t cutoff = ignore_grace ? current_hour : hour_of(now - (int64_t)d->cfg->metering_grace_s * 1000);
        struct pick p = {.now = now, .cutoff_s = cutoff, .list = list};
        store_scan(d->store, STORE_USAGE, NULL, 0, pick_due, &p);
        if (p.n == 0)
            break;
        rc = claim(d, list, p.n, now);
        if (!rc)
            rc = send_batch(d, list, p.n, &pass);
        for (size_t i = 0; i < p.n; i++)
            json_decref(list[i].rec);
        if (rc || pass.retry)
            break; /* Microsoft is not taking events now: the next pass tries again */
    }
    pthread_mutex_unlock(&flush_lock);
    if (out)
        *out = pass;
    return rc;
}

static void metering_job(struct daemon *d)
{
    metering_flush(d, 0, NULL);
}

int metering_start(struct daemon *d)
{
    if (d->cfg->metering_interval_s <= 0)
        return 0;
    int rc = daemon_every(d, d->cfg->metering_interval_s, metering_job, &d->meterer);
    d->meterer_started = rc == 0;
    return rc;
}
