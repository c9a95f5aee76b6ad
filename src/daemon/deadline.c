/* The 30-day activation deadline: Microsoft cancels a purchase that stays PendingFulfillmentStart
 * (landing never completed, a rule's pending or reject, an activation that never took) 30 days
 * after it was made. flow_record_refresh sets activation_deadline_ms on such records; this pass
 * counts them by how close the deadline is (saasd_pending_activation{deadline}), logs a warning a
 * week and a day before (once each), and lists them for the admin API. */
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/flows.h"

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/store.h"
#include "core/utc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_MS (86400LL * 1000)

struct deadline_scan {
    int64_t now;
    int counts[4];
    json_t *list;
    json_t *to_warn; /* [[id, "week"|"day"], ...] */
};

static const char *const buckets[] = {"passed", "within_day", "within_week", "later"};

static int bucket_of(int64_t left_ms)
{
    return left_ms < 0 ? 0 : left_ms < DAY_MS ? 1 : left_ms < 7 * DAY_MS ? 2 : 3;
}

static int on_record(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    static const char tag[] = "\"activation_deadline_ms\"";
    struct deadline_scan *s = arg;
    if (!memmem(val, vlen, tag, sizeof tag - 1)) /* most records: no parse */
        return 0;
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    json_t *dl = json_object_get(rec, "activation_deadline_ms");
    if (!json_is_integer(dl)) {
        json_decref(rec);
        return 0;
    }
    int64_t deadline = json_integer_value(dl), left = deadline - s->now;
    int bucket = bucket_of(left);
    s->counts[bucket]++;
    const char *warned = json_string_value(json_object_get(rec, "activation_warned"));
    const char *due = bucket <= 1 ? "day" : bucket == 2 ? "week" : NULL;
    if (due && (!warned || (strcmp(warned, due) && !strcmp(due, "day"))))
        json_array_append_new(s->to_warn, json_pack("[s#, s]", (const char *)key, (int)klen, due));
    const char *decision = json_string_value(json_object_get(json_object_get(rec, "provision"), "decision"));
    char iso[UTC_TEXT_LEN];
    utc_text(deadline / 1000, iso, sizeof iso);
    if (s->list)
        json_array_append_new(s->list, json_pack("{s:s#, s:s?, s:s?, s:s, s:s, s:I, s:f, s:s}", "subscriptionId",
                                                 (const char *)key, (int)klen, "offerId",
                                                 json_string_value(json_object_get(rec, "offerId")), "status",
                                                 json_string_value(json_object_get(rec, "status")), "decision",
                                                 decision ? decision : "no landing visit", "deadline", iso,
                                                 "deadline_ms", (json_int_t)deadline, "days_left",
                                                 (double)left / DAY_MS, "warned", warned ? warned : ""));
    json_decref(rec);
    return 0;
}

/* Log the warning and remember it in the record, so each is logged once. */
static void warn(struct daemon *d, const char *sub_id, const char *when, int64_t now)
{
    json_t *rec = NULL;
    daemon_lock_sub(d, sub_id);
    if (record_get_sub(d, sub_id, &rec) == 0) {
        char left[32];
        snprintf(left, sizeof left, "%.1f",
                 (double)(json_integer_value(json_object_get(rec, "activation_deadline_ms")) - now) / DAY_MS);
        log_warn("deadline", !strcmp(when, "day") ? "activation deadline in less than a day: Microsoft will cancel this purchase"
                                                   : "activation deadline in less than a week: Microsoft will cancel this purchase",
                 "sub_id", sub_id, "offer_id", json_string_value(json_object_get(rec, "offerId")), "days_left", left);
        json_object_set_new(rec, "activation_warned", json_string(when));
        struct store_batch *b = NULL;
        const char *decision = json_string_value(json_object_get(json_object_get(rec, "provision"), "decision"));
        if (store_batch_new(&b) == 0 && record_put_json(b, STORE_SUBSCRIPTIONS, sub_id, rec) == 0 &&
            events_add(b, "activation.deadline_near", json_string_value(json_object_get(rec, "offerId")), sub_id,
                       json_pack("{s:s, s:s, s:s}", "within", when, "days_left", left, "decision",
                                 decision ? decision : "no landing visit")) == 0)
            store_commit(d->store, b);
        store_batch_free(b);
    }
    json_decref(rec);
    daemon_unlock_sub(d, sub_id);
}

int deadline_pass(struct daemon *d, int warn_now, json_t **list_out)
{
    metrics_describe("saasd_pending_activation", "gauge",
                     "Purchases awaiting activation by how close Microsoft's 30-day cancellation is.");
    struct deadline_scan s = {.now = now_ms(), .list = list_out ? json_array() : NULL, .to_warn = json_array()};
    int rc = store_scan(d->store, STORE_SUBSCRIPTIONS, NULL, 0, on_record, &s);
    for (int i = 0; i < 4; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "deadline=\"%s\"", buckets[i]);
        metrics_set("saasd_pending_activation", labels, s.counts[i]);
    }
    size_t i;
    json_t *w;
    json_array_foreach(s.to_warn, i, w) if (warn_now) warn(d, json_string_value(json_array_get(w, 0)),
                                            json_string_value(json_array_get(w, 1)), s.now);
    json_decref(s.to_warn);
    if (list_out)
        *list_out = s.list;
    return rc;
}
