/* Reconciliation: list every subscription at Microsoft, compare with the local records, repair
 * local state and count each drift (a missed webhook, a rejected change applied anyway, §9.8,
 * §9.20, §9.21). Runs periodically and on demand (admin API, CLI). */
#include "daemon/daemon.h"

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

struct pass {
    struct daemon *d;
    int drift;
    int seen;
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
    log_warn("reconcile", "drift repaired from Microsoft's state", "sub_id", sub_id, "kind", kind, "local", local,
             "microsoft", ms);
}

static int on_subscription(struct pass *p, json_t *sub)
{
    struct daemon *d = p->d;
    char sub_id[128], ms_status[64] = "", ms_plan[256] = "";
    if (jl_string(sub, "id", sub_id, sizeof sub_id))
        return 0;
    p->seen++;
    jl_string(sub, "saasSubscriptionStatus", ms_status, sizeof ms_status);
    jl_string(sub, "planId", ms_plan, sizeof ms_plan);
    long long ms_qty = -1;
    jl_int(sub, "quantity", &ms_qty);

    daemon_lock_sub(d, sub_id);
    json_t *rec = NULL;
    int rc = record_get_sub(d, sub_id, &rec);
    int changed = 0;
    if (rc == SAASD_ENOTFOUND) {
        /* Never landed (pending purchase) or a webhook we never got. */
        rec = json_pack("{s:s}", "id", sub_id);
        if (strcmp(ms_status, "PendingFulfillmentStart") != 0)
            note_drift(p, sub_id, "unknown_subscription", "none", ms_status);
        changed = 1;
    } else if (rc == 0) {
        const char *st = json_string_value(json_object_get(rec, "status"));
        const char *plan = json_string_value(json_object_get(rec, "planId"));
        json_t *qj = json_object_get(rec, "quantity");
        if (st && strcmp(st, ms_status)) {
            note_drift(p, sub_id, "status", st, ms_status);
            changed = 1;
        }
        if (plan && strcmp(plan, ms_plan)) {
            note_drift(p, sub_id, "plan", plan, ms_plan);
            changed = 1;
        }
        if (json_is_integer(qj) && ms_qty >= 0 && json_integer_value(qj) != ms_qty) {
            char a[32], b[32];
            snprintf(a, sizeof a, "%lld", (long long)json_integer_value(qj));
            snprintf(b, sizeof b, "%lld", ms_qty);
            note_drift(p, sub_id, "quantity", a, b);
            changed = 1;
        }
        if (!st || !plan)
            changed = 1;
    }
    if (rec && changed) {
        char buf[256];
        if (!jl_string(sub, "offerId", buf, sizeof buf))
            json_object_set_new(rec, "offerId", json_string(buf));
        json_object_set_new(rec, "planId", json_string(ms_plan));
        if (ms_qty >= 0)
            json_object_set_new(rec, "quantity", json_integer(ms_qty));
        json_object_set_new(rec, "status", json_string(ms_status));
        json_object_set_new(rec, "ms_status", json_string(ms_status));
        json_object_set(rec, "subscription", sub);
        json_object_set_new(rec, "ms_seen_ms", json_integer(now_ms()));
        struct store_batch *b = NULL;
        if (store_batch_new(&b) == 0) {
            json_t *audit = json_pack("{s:s, s:s, s:s}", "action", "Reconcile", "decision", "repaired", "detail",
                                      "local state replaced by Microsoft's");
            if (!record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec) && !record_audit(b, sub_id, audit))
                store_commit(d->store, b);
            json_decref(audit);
        }
        store_batch_free(b);
    }
    json_decref(rec);
    daemon_unlock_sub(d, sub_id);
    return 0;
}

int reconcile_once(struct daemon *d, int *drift)
{
    struct pass p = {.d = d};
    struct mp_result mr = {0};
    int rc = mp_list_subscriptions(d->mp, &mr);
    json_t *all = take_body(&mr);
    size_t i;
    json_t *sub;
    json_array_foreach(json_object_get(all, "subscriptions"), i, sub) on_subscription(&p, sub);
    json_decref(all);
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
    return rc;
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
