/* Metering API (§7): usageEvent, batchUsageEvent, usageEvents, with the rules of §7.4 — 24-hour
 * window, one accepted event per (resource, dimension, UTC hour), only Subscribed subscriptions
 * (or usage from before a cancellation), current plan, known dimension, batches of 1..25. */
#include "core/err.h"
#include "emu/emu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEVER "0001-01-01T00:00:00"
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

struct verdict {
    const char *status;  /* Accepted, Expired, Duplicate, ... */
    const char *target;  /* field at fault */
    char message[200];
    json_t *earlier;     /* Duplicate: the accepted result (borrowed) */
};

static void set_verdict(struct verdict *v, const char *status, const char *target, const char *msg)
{
    v->status = status;
    v->target = target;
    snprintf(v->message, sizeof v->message, "%s", msg);
}

/* Judges one event and, when it is accepted, records it. Returns the UsageEventResult. */
static json_t *judge(struct emu *e, const json_t *ev, const char *caller, struct verdict *v)
{
    int64_t now = emu_now_ms(e), when = 0;
    const char *rid = emu_jstr(ev, "resourceId"), *ruri = emu_jstr(ev, "resourceUri");
    const char *dim = emu_jstr(ev, "dimension"), *plan = emu_jstr(ev, "planId");
    const char *start = emu_jstr(ev, "effectiveStartTime");
    json_t *qv = json_object_get(ev, "quantity");
    json_t *sub = NULL;
    memset(v, 0, sizeof *v);
    if (!json_is_object(ev))
        set_verdict(v, "BadArgument", "usageEventRequest", "The usage event must be a JSON object");
    else if ((!rid || !*rid) && (!ruri || !*ruri))
        set_verdict(v, "BadArgument", "ResourceId", "resourceId (or resourceUri) is required");
    else if (rid && *rid && ruri && *ruri)
        set_verdict(v, "BadArgument", "ResourceId", "resourceId and resourceUri cannot both be given");
    else if (!json_is_number(qv))
        set_verdict(v, "BadArgument", "Quantity", "quantity must be a number");
    else if (json_number_value(qv) <= 0)
        set_verdict(v, "InvalidQuantity", "Quantity", "quantity must be greater than 0");
    else if (!dim || !*dim)
        set_verdict(v, "BadArgument", "Dimension", "dimension is required");
    else if (!plan || !*plan)
        set_verdict(v, "BadArgument", "PlanId", "planId is required");
    else if (emu_parse_time(start, &when) != 0)
        set_verdict(v, "BadArgument", "EffectiveStartTime", "effectiveStartTime is not an ISO-8601 UTC time");
    else if (when < now - DAY_MS)
        set_verdict(v, "Expired", "EffectiveStartTime", "The usage event is older than 24 hours");
    else if (when > now + 60000)
        set_verdict(v, "BadArgument", "EffectiveStartTime", "effectiveStartTime is in the future");
    else if (!(sub = emu_sub(e, rid)))
        set_verdict(v, "ResourceNotFound", "ResourceId", "The resource was not found");
    else {
        const char *st = emu_jstr(sub, "saasSubscriptionStatus");
        json_t *gone = json_object_get(sub, "_unsubscribedAt");
        int before_cancel = !strcmp(st, "Unsubscribed") && gone && when < json_integer_value(gone);
        json_t *p = emu_plan(emu_offer(e, emu_jstr(sub, "offerId")), emu_jstr(sub, "planId"));
        char key[256];
        snprintf(key, sizeof key, "%s|%s|%lld", rid, dim, (long long)(when / HOUR_MS));
        json_t *seen = json_object_get(json_object_get(e->db, "usage"), key);
        if (strcmp(emu_sub_client(e, sub), caller))
            set_verdict(v, "ResourceNotAuthorized", "ResourceId", "Client is not authorized for this usage resource.");
        else if (strcmp(st, "Subscribed") && !before_cancel)
            set_verdict(v, "ResourceNotActive", "ResourceId", "The subscription is not Subscribed");
        else if (strcmp(plan, emu_jstr(sub, "planId")))
            set_verdict(v, "BadArgument", "PlanId", "planId is not the subscription's current plan");
        else if (!emu_plan_has_dimension(p, dim))
            set_verdict(v, "InvalidDimension", "Dimension", "The dimension is not defined for this plan");
        else if (seen) {
            set_verdict(v, "Duplicate", "usageEventRequest", "This usage event already exist.");
            v->earlier = seen;
        } else {
            set_verdict(v, "Accepted", NULL, "");
            char id[37], ts[40];
            emu_uuid(id);
            emu_iso(now, ts);
            json_t *res = json_pack("{s:s,s:s,s:s,s:s,s:O,s:s,s:s,s:s,s:s,s:I}", "usageEventId", id, "status",
                                    "Accepted", "messageTime", ts, "resourceId", rid, "quantity", qv, "dimension", dim,
                                    "effectiveStartTime", start, "planId", plan, "_offerId",
                                    emu_jstr(sub, "offerId"), "_when", (json_int_t)when);
            json_object_set_new(json_object_get(e->db, "usage"), key, res);
            json_array_append(json_object_get(e->db, "usageLog"), res);
            e->dirty = 1;
            return emu_public(res);
        }
    }
    if (v->earlier) {
        json_t *dup = emu_public(v->earlier);
        json_object_set_new(dup, "status", json_string("Duplicate"));
        return dup;
    }
    json_t *out = json_pack("{s:s,s:s}", "status", v->status, "messageTime", NEVER);
    const char *fields[] = {"resourceId", "resourceUri", "quantity", "dimension", "effectiveStartTime", "planId"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (json_object_get(ev, fields[i]))
            json_object_set(out, fields[i], json_object_get(ev, fields[i]));
    return out;
}

static json_t *conflict_body(json_t *dup_result)
{
    return json_pack("{s:s,s:s,s:{s:o}}", "code", "Conflict", "message", "This usage event already exist.",
                     "additionalInfo", "acceptedMessage", dup_result);
}

static json_t *bad_argument(const struct verdict *v)
{
    return json_pack("{s:s,s:s,s:s,s:[{s:s,s:s,s:s}]}", "code", "BadArgument", "message", v->message, "target",
                     "usageEventRequest", "details", "code", v->status, "message", v->message, "target",
                     v->target ? v->target : "usageEventRequest");
}

static void single(struct emu *e, const struct httpd_request *r, struct httpd_response *res, const char *caller)
{
    json_t *ev = emu_body_json(r);
    struct verdict v;
    json_t *result = judge(e, ev, caller, &v);
    json_decref(ev);
    if (!strcmp(v.status, "Accepted")) {
        emu_reply_json(res, 200, result);
    } else if (!strcmp(v.status, "Duplicate")) {
        emu_reply_json(res, 409, conflict_body(result));
    } else if (!strcmp(v.status, "ResourceNotAuthorized")) { /* §7.3: the live 403 body */
        json_decref(result);
        emu_reply_json(res, 403, json_pack("{s:s,s:s}", "code", "Forbidden", "message",
                                           "Client is not authorized for this usage resource."));
    } else {
        json_decref(result);
        emu_reply_json(res, 400, bad_argument(&v));
    }
}

static void batch(struct emu *e, const struct httpd_request *r, struct httpd_response *res, const char *caller)
{
    json_t *body = emu_body_json(r);
    json_t *items = json_object_get(body, "request");
    if (!json_is_array(items) || json_array_size(items) == 0 || json_array_size(items) > 25) {
        struct verdict v = {.status = "BadArgument", .target = "request"};
        snprintf(v.message, sizeof v.message, "%s",
                 json_is_array(items) ? "A batch holds 1 to 25 usage events"
                                      : "The body must be {\"request\":[usage events]}");
        emu_reply_json(res, 400, bad_argument(&v));
        json_decref(body);
        return;
    }
    json_t *results = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(items, i, ev) {
        struct verdict v;
        json_t *one = judge(e, ev, caller, &v);
        if (!strcmp(v.status, "Duplicate"))
            json_object_set_new(one, "error", conflict_body(json_deep_copy(one)));
        else if (strcmp(v.status, "Accepted"))
            json_object_set_new(one, "error",
                                json_pack("{s:s,s:s,s:s}", "code", v.status, "message", v.message, "target",
                                          v.target ? v.target : "usageEventRequest"));
        json_array_append_new(results, one);
    }
    emu_reply_json(res, 200, json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(results), "result", results));
    json_decref(body);
}

/* The §7.5 reconStatus values a row can carry (Partner Center analytics' verdict). Rows start
 * Submitted; POST /_emulator/usage/recon-status sets another. */
static const char *const recon_statuses[] = {"Submitted", "Accepted", "Rejected", "Mismatch", "TestHeaders", "DryRun"};

/* The query row's key: its day, resource and dimension. */
static void row_key(int64_t when, const char *resource, const char *dim, char out[300])
{
    char day[40];
    emu_iso(emu_day_start(when), day);
    snprintf(out, 300, "%s|%s|%s", day, resource, dim);
}

static const char *row_status(struct emu *e, const char *key)
{
    const char *st = json_string_value(json_object_get(json_object_get(e->db, "reconStatus"), key));
    return st ? st : "Submitted";
}

/* Set db[coll][key] = value (stolen), creating the collection on first use. */
static void set_row_fact(struct emu *e, const char *coll, const char *key, json_t *value)
{
    if (!json_object_get(e->db, coll))
        json_object_set_new(e->db, coll, json_object());
    json_object_set_new(json_object_get(e->db, coll), key, value);
}

/* A row's processedQuantity is what its submitted events add up to, unless the control API set
 * another (Partner Center processed a different quantity) or null (the row carries none). */
static void apply_processed(struct emu *e, const char *key, json_t *row)
{
    json_t *set = json_object_get(json_object_get(e->db, "processedQuantity"), key);
    if (json_is_null(set))
        json_object_del(row, "processedQuantity");
    else if (set)
        json_object_set(row, "processedQuantity", set);
}

int emu_usage_recon_status(struct emu *e, const json_t *in, struct emu_error *err, json_t **out)
{
    const char *rid = emu_jstr(in, "resourceId"), *dim = emu_jstr(in, "dimension"), *date = emu_jstr(in, "usageDate");
    const char *status = emu_jstr(in, "reconStatus");
    json_t *processed = json_object_get(in, "processedQuantity");
    int64_t when;
    size_t known = 0;
    while (known < sizeof recon_statuses / sizeof *recon_statuses && strcmp(recon_statuses[known], status))
        known++;
    if (!*rid || !*dim || emu_parse_time(date, &when) != 0 || known == sizeof recon_statuses / sizeof *recon_statuses ||
        (processed && !json_is_null(processed) && !(json_is_number(processed) && json_number_value(processed) >= 0))) {
        emu_fail(err, 400, "BadArgument", "resourceId, dimension, usageDate (ISO-8601) and reconStatus (Submitted, "
                                          "Accepted, Rejected, Mismatch, TestHeaders, DryRun) are required; "
                                          "processedQuantity is a number >= 0 or null");
        return SAASD_EINVAL;
    }
    char key[300], wanted[300];
    row_key(when, rid, dim, wanted);
    size_t i;
    json_t *u;
    int found = 0;
    json_array_foreach(json_object_get(e->db, "usageLog"), i, u) {
        row_key(json_integer_value(json_object_get(u, "_when")), emu_jstr(u, "resourceId"), emu_jstr(u, "dimension"), key);
        found |= !strcmp(key, wanted);
    }
    if (!found) {
        emu_fail(err, 404, "EntityNotFound", "no usage recorded for that resource, dimension and day");
        return SAASD_ENOTFOUND;
    }
    set_row_fact(e, "reconStatus", wanted, json_string(status));
    if (processed)
        set_row_fact(e, "processedQuantity", wanted, json_incref(processed));
    e->dirty = 1;
    char day[40];
    emu_iso(emu_day_start(when), day);
    *out = json_pack("{s:s,s:s,s:s,s:s}", "usageDate", day, "resourceId", rid, "dimension", dim, "reconStatus", status);
    if (processed)
        json_object_set(*out, "processedQuantity", processed);
    return 0;
}

static void query(struct emu *e, const struct httpd_request *r, struct httpd_response *res, const char *caller)
{
    const char *from = httpd_query(r, "usageStartDate");
    const char *to = httpd_query(r, "UsageEndDate") ? httpd_query(r, "UsageEndDate") : httpd_query(r, "usageEndDate");
    const char *f_offer = httpd_query(r, "offerId"), *f_plan = httpd_query(r, "planId");
    const char *f_dim = httpd_query(r, "dimension"), *f_recon = httpd_query(r, "reconStatus");
    int64_t start, end;
    if (!from || emu_parse_time(from, &start) != 0 || (to && emu_parse_time(to, &end) != 0)) {
        struct verdict v = {.status = "BadArgument", .target = "usageStartDate"};
        snprintf(v.message, sizeof v.message, "usageStartDate (and UsageEndDate) must be ISO-8601 dates");
        emu_reply_json(res, 400, bad_argument(&v));
        return;
    }
    if (!to)
        end = emu_now_ms(e);
    start = emu_day_start(start);
    end = emu_day_start(end) + DAY_MS - 1;
    json_t *rows = json_object(); /* day|resource|dimension -> row */
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(e->db, "usageLog"), i, u) {
        int64_t when = json_integer_value(json_object_get(u, "_when"));
        const char *offer = emu_jstr(u, "_offerId"), *plan = emu_jstr(u, "planId"), *dim = emu_jstr(u, "dimension");
        if (when < start || when > end || (f_offer && strcmp(f_offer, offer)) || (f_plan && strcmp(f_plan, plan)) ||
            (f_dim && strcmp(f_dim, dim)) || strcmp(emu_offer_client(e, emu_offer(e, offer)), caller))
            continue;
        char day[40], key[300];
        emu_iso(emu_day_start(when), day);
        row_key(when, emu_jstr(u, "resourceId"), dim, key);
        if (f_recon && strcmp(f_recon, row_status(e, key)))
            continue;
        json_t *row = json_object_get(rows, key);
        double q = json_number_value(json_object_get(u, "quantity"));
        if (!row) {
            json_t *offer_obj = emu_offer(e, offer);
            json_t *plan_obj = emu_plan(offer_obj, plan);
            row = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:f,s:f,s:i}", "usageDate", day,
                            "usageResourceId", emu_jstr(u, "resourceId"), "dimension", dim, "planId", plan,
                            "planName", plan_obj ? emu_jstr(plan_obj, "displayName") : plan, "offerId", offer,
                            "offerName", offer, "offerType", "SaaS", "azureSubscriptionId", "", "reconStatus",
                            row_status(e, key), "submittedQuantity", 0.0, "processedQuantity", 0.0, "submittedCount", 0);
            json_object_set_new(rows, key, row);
        }
        json_object_set_new(row, "submittedQuantity",
                            json_real(json_number_value(json_object_get(row, "submittedQuantity")) + q));
        json_object_set_new(row, "processedQuantity",
                            json_real(json_number_value(json_object_get(row, "processedQuantity")) + q));
        json_object_set_new(row, "submittedCount",
                            json_integer(json_integer_value(json_object_get(row, "submittedCount")) + 1));
    }
    json_t *out = json_array();
    const char *k;
    json_t *row;
    json_object_foreach(rows, k, row) {
        apply_processed(e, k, row);
        json_array_append(out, row);
    }
    json_decref(rows);
    emu_reply_json(res, 200, out);
}

void emu_metering_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res)
{
    const char *path = httpd_path(r), *m = httpd_method(r);
    struct emu_error err;
    if (!emu_api_version_ok(r, res))
        return;
    char caller[64];
    if (emu_check_bearer(e, r, &err, caller) != 0) {
        emu_reply_json(res, 403, json_pack("{s:s,s:s}", "code", "Forbidden", "message",
                                           "Client is not authorized for this usage resource."));
        return;
    }
    int is_single = !strcmp(path, "/api/usageEvent"), is_batch = !strcmp(path, "/api/batchUsageEvent");
    if ((is_single || is_batch) && strcmp(m, "POST")) {
        emu_fail(&err, 405, "MethodNotAllowed", "use POST");
        emu_reply_error(res, &err);
    } else if (is_single) {
        single(e, r, res, caller);
    } else if (is_batch) {
        batch(e, r, res, caller);
    } else if (strcmp(m, "GET")) {
        emu_fail(&err, 405, "MethodNotAllowed", "use GET");
        emu_reply_error(res, &err);
    } else {
        query(e, r, res, caller);
    }
}
