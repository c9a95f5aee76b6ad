/* Reconciliation: list every subscription at Microsoft, compare with the local records, repair
 * local state and count each drift (a missed webhook, a rejected change applied anyway, §9.8,
 * §9.20, §9.21), including subscriptions saasd has that Microsoft does not list. Then the
 * activation deadlines (deadline.c). Runs periodically and on demand (admin API, CLI). */
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/flows.h"
#include "daemon/flows_internal.h"

#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp_client.h"
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A change Microsoft accepted (operation Succeeded) may take a while to show in its subscription;
 * until then it is "not yet", not drift. */
#define PENDING_CHANGE_GRACE_MS (15 * 60 * 1000)

/* Ids Microsoft listed, kept as 16-byte digests (SHA-256, truncated) in one array sorted once
 * the listing is complete: 16 MiB for a million subscriptions, instead of a jansson set. */
#define DIGEST_LEN 16

struct pass {
    struct daemon *d;
    int drift;
    int seen;
    unsigned char *seen_ids; /* seen * DIGEST_LEN bytes */
    size_t seen_cap;
    json_t *missing;   /* local ids Microsoft does not list */
    /* Repairs of the current page: one batch, one fsync. The subscriptions' lock stripes stay
     * held until it is durable, so no landing page or event reads the record in between. */
    struct store_batch *repairs;
    uint64_t held[DAEMON_SUB_STRIPES / 64]; /* bit per stripe held */
    int failed;
    char kinds[128];   /* the drift kinds of the subscription at hand, for its drift.found event */
};

static void digest(const char *id, unsigned char out[DIGEST_LEN])
{
    unsigned char full[CRYPTO_SHA256_LEN];
    crypto_sha256(id, strlen(id), full);
    memcpy(out, full, DIGEST_LEN);
}

static int cmp_digest(const void *a, const void *b) { return memcmp(a, b, DIGEST_LEN); }

static int remember_seen(struct pass *p, const char *id)
{
    if ((size_t)p->seen >= p->seen_cap) {
        size_t cap = p->seen_cap ? p->seen_cap * 2 : 4096;
        unsigned char *n = realloc(p->seen_ids, cap * DIGEST_LEN);
        if (!n)
            return SAASD_ENOMEM;
        p->seen_ids = n;
        p->seen_cap = cap;
    }
    digest(id, p->seen_ids + (size_t)p->seen * DIGEST_LEN);
    p->seen++;
    return 0;
}

static int was_seen(const struct pass *p, const char *id)
{
    unsigned char d[DIGEST_LEN];
    digest(id, d);
    return p->seen && bsearch(d, p->seen_ids, (size_t)p->seen, DIGEST_LEN, cmp_digest) != NULL;
}

static int holds(const struct pass *p, unsigned i) { return p->held[i / 64] >> (i % 64) & 1; }

/* Lock sub_id's stripe unless this pass already holds it (two subscriptions of one page may
 * share a stripe; the mutex is not recursive). */
static void hold(struct pass *p, const char *sub_id)
{
    unsigned i = daemon_sub_stripe(sub_id);
    if (!holds(p, i)) {
        pthread_mutex_lock(&p->d->sub_locks[i]);
        p->held[i / 64] |= (uint64_t)1 << (i % 64);
    }
}

/* Commit the page's repairs (one fsync) and release every stripe held for them. */
static void flush_repairs(struct pass *p)
{
    if (p->repairs) {
        int rc = store_commit(p->d->store, p->repairs);
        if (rc)
            log_error("reconcile", "repairs could not be stored", "error", saasd_strerror(rc));
        store_batch_free(p->repairs);
        p->repairs = NULL;
    }
    for (unsigned i = 0; i < DAEMON_SUB_STRIPES; i++)
        if (holds(p, i))
            pthread_mutex_unlock(&p->d->sub_locks[i]);
    memset(p->held, 0, sizeof p->held);
}

void reconcile_count_drift(const char *kind)
{
    char labels[64];
    snprintf(labels, sizeof labels, "kind=\"%s\"", kind);
    metrics_inc("saasd_drift_total", labels);
}

static void note_drift(struct pass *p, const char *sub_id, const char *kind, const char *local, const char *ms)
{
    reconcile_count_drift(kind);
    p->drift++;
    size_t n = strlen(p->kinds);
    snprintf(p->kinds + n, sizeof p->kinds - n, "%s%s", n ? "," : "", kind);
    log_warn("reconcile", "drift repaired from Microsoft's state", "sub_id", sub_id, "kind", kind, "local", local,
             "microsoft", ms);
}

/* Whether field's difference is a change Microsoft accepted and does not show yet. An old marker
 * is dropped: the difference is then drift. */
static int change_not_shown_yet(json_t *rec, const char *field)
{
    json_t *pc = json_object_get(rec, "pending_change");
    const char *f = json_string_value(json_object_get(pc, "field"));
    if (!f || strcmp(f, field))
        return 0;
    if (now_ms() - json_integer_value(json_object_get(pc, "at_ms")) < PENDING_CHANGE_GRACE_MS)
        return 1;
    json_object_del(rec, "pending_change");
    return 0;
}

/* Compare a local record with Microsoft's subscription; 1 when the record must be rewritten. */
static int compare(struct pass *p, const char *sub_id, json_t *rec, json_t *sub)
{
    char ms_status[64] = "", ms_plan[256] = "";
    long long ms_qty = -1;
    jl_string(sub, "saasSubscriptionStatus", ms_status, sizeof ms_status);
    jl_string(sub, "planId", ms_plan, sizeof ms_plan);
    jl_int(sub, "quantity", &ms_qty);
    const char *st = json_string_value(json_object_get(rec, "status"));
    const char *plan = json_string_value(json_object_get(rec, "planId"));
    json_t *qj = json_object_get(rec, "quantity");
    int changed = !st || !plan || json_is_true(json_object_get(rec, "missing_at_microsoft"));
    if (st && strcmp(st, ms_status) && !change_not_shown_yet(rec, "status")) {
        /* An activation Microsoft confirmed after the landing page stopped waiting is no drift. */
        int confirming = !strcmp(st, "PendingFulfillmentStart") && !strcmp(ms_status, "Subscribed") &&
                         json_object_get(rec, "activation_confirmed");
        if (!confirming)
            note_drift(p, sub_id, "status", st, ms_status);
        changed = 1;
    }
    if (plan && strcmp(plan, ms_plan) && !change_not_shown_yet(rec, "planId")) {
        note_drift(p, sub_id, "plan", plan, ms_plan);
        changed = 1;
    }
    if (json_is_integer(qj) && ms_qty >= 0 && json_integer_value(qj) != ms_qty && !change_not_shown_yet(rec, "quantity")) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%lld", (long long)json_integer_value(qj));
        snprintf(b, sizeof b, "%lld", ms_qty);
        note_drift(p, sub_id, "quantity", a, b);
        changed = 1;
    }
    if (json_object_get(rec, "pending_change"))
        changed = 1; /* the refresh confirms it (Microsoft shows it) or keeps it */
    return changed;
}

/* Add a repaired record, its audit entry and (when a difference was drift) its drift.found
 * event to the page's batch (sub_id's stripe is held). */
static int put_record(struct pass *p, const char *sub_id, json_t *rec, const char *detail)
{
    int rc = p->repairs ? 0 : store_batch_new(&p->repairs);
    if (!rc)
        rc = record_put_json(p->repairs, STORE_SUBSCRIPTIONS, sub_id, rec);
    if (!rc && p->kinds[0])
        rc = events_add(p->repairs, "drift.found", json_string_value(json_object_get(rec, "offerId")), sub_id,
                        json_pack("{s:s, s:s, s:O?, s:O?, s:O?}", "kinds", p->kinds, "detail", detail, "status",
                                  json_object_get(rec, "status"), "planId", json_object_get(rec, "planId"),
                                  "quantity", json_object_get(rec, "quantity")));
    if (!rc)
        rc = flows_add_audit(p->repairs, sub_id, json_pack("{s:s, s:s, s:s}", "action", "Reconcile", "decision",
                                                           "repaired", "detail", detail));
    return rc;
}

static int on_subscription(struct pass *p, json_t *sub)
{
    struct daemon *d = p->d;
    char sub_id[128], ms_status[64] = "";
    if (jl_string(sub, "id", sub_id, sizeof sub_id))
        return 0;
    if (remember_seen(p, sub_id))
        p->failed = 1;
    jl_string(sub, "saasSubscriptionStatus", ms_status, sizeof ms_status);
    unsigned stripe = daemon_sub_stripe(sub_id);
    int held = holds(p, stripe);
    hold(p, sub_id);
    p->kinds[0] = 0;
    json_t *rec = NULL;
    int rc = record_get_sub(d, sub_id, &rec);
    int changed = 0;
    if (rc == SAASD_ENOTFOUND) {
        /* Never landed (a purchase waiting for its landing visit: its activation deadline runs)
         * or a webhook we never got. */
        rec = flows_record_new(sub_id, sub);
        if (strcmp(ms_status, "PendingFulfillmentStart") != 0)
            note_drift(p, sub_id, "unknown_subscription", "none", ms_status);
        changed = 1;
    } else if (rc == 0) {
        changed = compare(p, sub_id, rec, sub);
    }
    if (rec && changed) {
        json_object_del(rec, "missing_at_microsoft");
        flow_record_refresh(rec, sub);
        put_record(p, sub_id, rec, "local state replaced by Microsoft's");
    } else if (!held) {
        /* nothing to write: let the stripe go now */
        daemon_unlock_sub(d, sub_id);
        p->held[stripe / 64] &= ~((uint64_t)1 << (stripe % 64));
    }
    json_decref(rec);
    return 0;
}

/* One page of Microsoft's list: compare each, then store the page's repairs together. */
static int on_page(void *arg, json_t *items)
{
    struct pass *p = arg;
    size_t i;
    json_t *sub;
    json_array_foreach(items, i, sub) on_subscription(p, sub);
    flush_repairs(p);
    return 0;
}

/* Local subscriptions Microsoft does not list are found by walking the store in chunks (the
 * scan cannot commit, so it stops at each chunk, the chunk is repaired, and the walk goes on
 * after its last id). The admin answer names the first REPORT_MAX of them. */
#define CHUNK 256
#define REPORT_MAX 1000

struct unlisted {
    struct pass *p;
    json_t *chunk;
    char after[128]; /* the walk goes on after this id ("" = from the start) */
};

static int collect_unlisted(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct unlisted *u = arg;
    char id[128];
    if (klen >= sizeof id || (klen == strlen(u->after) && !memcmp(key, u->after, klen)))
        return 0;
    memcpy(id, key, klen);
    id[klen] = 0;
    snprintf(u->after, sizeof u->after, "%s", id);
    if (!was_seen(u->p, id))
        json_array_append_new(u->chunk, json_string(id));
    return json_array_size(u->chunk) >= CHUNK;
}

static void flag_missing(struct pass *p, const char *sub_id)
{
    json_t *rec = NULL;
    hold(p, sub_id);
    p->kinds[0] = 0;
    if (record_get_sub(p->d, sub_id, &rec) == 0) {
        note_drift(p, sub_id, "missing_at_microsoft", json_string_value(json_object_get(rec, "status")), "none");
        if (!json_is_true(json_object_get(rec, "missing_at_microsoft"))) {
            json_object_set_new(rec, "missing_at_microsoft", json_true());
            put_record(p, sub_id, rec, "Microsoft does not list this subscription");
        }
    }
    json_decref(rec);
    if (json_array_size(p->missing) < REPORT_MAX)
        json_array_append_new(p->missing, json_string(sub_id));
}

/* Local subscriptions Microsoft does not list (a record from another publisher app, a store
 * restored from elsewhere, a made-up webhook's subscription): counted and flagged, not deleted. */
static void mark_missing(struct pass *p)
{
    struct unlisted u = {.p = p, .chunk = json_array()};
    int more;
    do {
        json_array_clear(u.chunk);
        more = store_scan_from(p->d->store, STORE_SUBSCRIPTIONS, u.after, strlen(u.after), collect_unlisted, &u) == 1;
        size_t i;
        json_t *v;
        json_array_foreach(u.chunk, i, v) flag_missing(p, json_string_value(v));
        flush_repairs(p);
    } while (more);
    json_decref(u.chunk);
}

static int reconcile_locked(struct daemon *d, int *drift, json_t **missing)
{
    struct pass p = {.d = d, .missing = json_array()};
    struct mp_result mr = {0};
    /* Page by page: neither Microsoft's list nor the local store is held whole. */
    int rc = mp_list_subscriptions_each(d->mp, on_page, &p, &mr);
    json_decref(take_body(&mr));
    flush_repairs(&p);
    if (!rc && p.failed)
        rc = SAASD_ENOMEM;
    if (!rc) {
        qsort(p.seen_ids, (size_t)p.seen, DIGEST_LEN, cmp_digest);
        mark_missing(&p); /* only after a complete listing */
    }
    deadline_pass(d, 1, NULL);
    metrics_inc("saasd_reconcile_runs_total", rc ? "result=\"failed\"" : "result=\"ok\"");
    char seen[16], drifted[16];
    snprintf(seen, sizeof seen, "%d", p.seen);
    snprintf(drifted, sizeof drifted, "%d", p.drift);
    if (rc)
        log_warn("reconcile", "listing subscriptions failed", "error", saasd_strerror(rc), "seen", seen);
    else
        log_info("reconcile", "pass finished", "subscriptions", seen, "drift", drifted);
    if (drift)
        *drift = p.drift;
    if (missing)
        *missing = json_incref(p.missing);
    json_decref(p.missing);
    free(p.seen_ids);
    return rc;
}

/* One pass at a time (the periodic one, POST /admin/reconcile): a pass holds many stripes at
 * once, taken in page or store order, so two passes side by side could each wait for a stripe
 * the other holds, and every event of those subscriptions would wait with them. Everything else
 * holds one stripe at a time. */
static pthread_mutex_t pass_lock = PTHREAD_MUTEX_INITIALIZER;

int reconcile_run(struct daemon *d, int *drift, json_t **missing)
{
    pthread_mutex_lock(&pass_lock);
    int rc = reconcile_locked(d, drift, missing);
    pthread_mutex_unlock(&pass_lock);
    return rc;
}

int reconcile_once(struct daemon *d, int *drift)
{
    return reconcile_run(d, drift, NULL);
}

static void reconcile_job(struct daemon *d)
{
    reconcile_once(d, NULL);
}

int reconcile_start(struct daemon *d)
{
    if (d->cfg->reconcile_interval_s <= 0)
        return 0;
    int rc = daemon_every(d, d->cfg->reconcile_interval_s, reconcile_job, &d->reconciler);
    d->reconciler_started = rc == 0;
    return rc;
}
