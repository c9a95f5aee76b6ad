/* Reconciliation: list every subscription at Microsoft, compare with the local records, repair
 * local state and count each drift (a missed webhook, a rejected change applied anyway, §9.8,
 * §9.20, §9.21), including subscriptions saasd has that Microsoft does not list. Then the
 * activation deadlines (deadline.c). Runs periodically and on demand (admin API, CLI). */
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/flows.h"
#include "daemon/flows_internal.h"

#include "core/config.h"
#include "core/err.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp_client.h"
#include "core/store.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* A change Microsoft accepted (operation Succeeded) may take a while to show in its subscription;
 * until then it is "not yet", not drift. */
#define PENDING_CHANGE_GRACE_MS (15 * 60 * 1000)

struct pass {
    struct daemon *d;
    int drift;
    int seen;
    json_t *seen_ids;  /* set of ids Microsoft listed */
    json_t *missing;   /* local ids Microsoft does not list */
    char kinds[128];   /* the drift kinds of the subscription at hand, for its drift.found event */
};

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

/* The repaired record, its audit entry and (when a difference was drift) its drift.found event. */
static int put_record(struct daemon *d, const char *sub_id, json_t *rec, const char *detail, const char *kinds)
{
    struct store_batch *b = NULL;
    int rc = store_batch_new(&b);
    if (!rc)
        rc = record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec);
    if (!rc && *kinds)
        rc = events_add(b, "drift.found", json_string_value(json_object_get(rec, "offerId")), sub_id,
                        json_pack("{s:s, s:s, s:O?, s:O?, s:O?}", "kinds", kinds, "detail", detail, "status",
                                  json_object_get(rec, "status"), "planId", json_object_get(rec, "planId"),
                                  "quantity", json_object_get(rec, "quantity")));
    if (!rc)
        rc = flows_add_audit(b, sub_id, json_pack("{s:s, s:s, s:s}", "action", "Reconcile", "decision", "repaired",
                                                  "detail", detail));
    if (!rc)
        rc = store_commit(d->store, b);
    store_batch_free(b);
    return rc;
}

static int on_subscription(struct pass *p, json_t *sub)
{
    struct daemon *d = p->d;
    char sub_id[128], ms_status[64] = "";
    if (jl_string(sub, "id", sub_id, sizeof sub_id))
        return 0;
    p->seen++;
    json_object_set_new(p->seen_ids, sub_id, json_true());
    jl_string(sub, "saasSubscriptionStatus", ms_status, sizeof ms_status);
    daemon_lock_sub(d, sub_id);
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
        put_record(d, sub_id, rec, "local state replaced by Microsoft's", p->kinds);
    }
    json_decref(rec);
    daemon_unlock_sub(d, sub_id);
    return 0;
}

static int collect_unlisted(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct pass *p = arg;
    char id[128];
    if (klen >= sizeof id)
        return 0;
    memcpy(id, key, klen);
    id[klen] = 0;
    if (!json_object_get(p->seen_ids, id))
        json_array_append_new(p->missing, json_string(id));
    return 0;
}

/* Local subscriptions Microsoft does not list (a record from another publisher app, a store
 * restored from elsewhere, a made-up webhook's subscription): counted and flagged, not deleted. */
static void mark_missing(struct pass *p)
{
    store_scan(p->d->store, STORE_SUBSCRIPTIONS, NULL, 0, collect_unlisted, p);
    size_t i;
    json_t *v;
    json_array_foreach(p->missing, i, v) {
        const char *sub_id = json_string_value(v);
        json_t *rec = NULL;
        daemon_lock_sub(p->d, sub_id);
        p->kinds[0] = 0;
        if (record_get_sub(p->d, sub_id, &rec) == 0) {
            note_drift(p, sub_id, "missing_at_microsoft", json_string_value(json_object_get(rec, "status")), "none");
            if (!json_is_true(json_object_get(rec, "missing_at_microsoft"))) {
                json_object_set_new(rec, "missing_at_microsoft", json_true());
                put_record(p->d, sub_id, rec, "Microsoft does not list this subscription", p->kinds);
            }
        }
        json_decref(rec);
        daemon_unlock_sub(p->d, sub_id);
    }
}

int reconcile_run(struct daemon *d, int *drift, json_t **missing)
{
    struct pass p = {.d = d, .seen_ids = json_object(), .missing = json_array()};
    struct mp_result mr = {0};
    int rc = mp_list_subscriptions(d->mp, &mr);
    json_t *all = take_body(&mr);
    size_t i;
    json_t *sub;
    json_array_foreach(json_object_get(all, "subscriptions"), i, sub) on_subscription(&p, sub);
    json_decref(all);
    if (!rc)
        mark_missing(&p); /* only after a complete listing */
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
    json_decref(p.seen_ids);
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
