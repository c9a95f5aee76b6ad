/* The operator's view of rule timers (ctx.timer, daemon/timers.c) on the admin API:
 *   GET  /admin/timers                        every timer, in due order (the TIMERS due index), paged
 *     ?limit=N        page size, 1..1000 (default 100)
 *     ?cursor=C       start after this position (the previous page's next_cursor, opaque)
 *     ?sub=ID         only this subscription's timers; ?offer=X only this offer's (case-insensitive)
 *     ?due_before=T   only timers due strictly before T: RFC 3339 UTC ("2026-12-01T10:00:00Z") or
 *                     epoch milliseconds, as POST /admin/usage takes its time
 *     Answer: {"timers":[{subscription, offer, name, due (RFC 3339 UTC), due_s, attempts, data}],
 *              "next_cursor": C or null}
 *   POST /admin/timers/{sub}/{name}/cancel    drop the timer (404 when there is none), audited
 *
 * A page holds at most `limit` timers and examines at most SCAN_CAP index entries in one read
 * snapshot: with a filter that matches rarely, a page may come back short (even empty) with a
 * next_cursor, and the caller goes on from there. Memory stays bounded by the page, never by
 * the number of timers stored. */
#include "daemon/admin_timers.h"
#include "daemon/daemon.h"
#include "daemon/flows_internal.h"
#include "daemon/timers.h"

#include "core/err.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/store.h"
#include "core/utc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000
#define SCAN_CAP 20000 /* index entries one page examines at most */
#define KEY_MAX 160    /* longest TIMERS key (timers.c: 1 + 8 + 64 + 1 + 64) */
#define STOP 1         /* scan callback: the page is done */

const char *admin_timer_due_text(int64_t at_s, char *buf, size_t size)
{
    if (utc_text(at_s, buf, size))
        snprintf(buf, size, "%lld", (long long)at_s);
    return buf;
}

json_t *admin_timer_view(json_t *rec)
{
    char due[40];
    json_int_t at = json_integer_value(json_object_get(rec, "at"));
    json_t *data = json_object_get(rec, "data");
    return json_pack("{s:s?, s:s?, s:s?, s:s, s:I, s:I, s:O}", "subscription",
                     json_string_value(json_object_get(rec, "sub_id")), "offer",
                     json_string_value(json_object_get(rec, "offer")), "name",
                     json_string_value(json_object_get(rec, "name")), "due",
                     admin_timer_due_text((int64_t)at, due, sizeof due), "due_s", at, "attempts",
                     json_integer_value(json_object_get(rec, "attempts")), "data", data ? data : json_null());
}

json_t *admin_timers_of_sub(struct daemon *d, const char *sub_id)
{
    json_t *recs = NULL, *views = json_array(), *r;
    size_t i;
    timers_of_sub(d, sub_id, &recs);
    json_array_foreach(recs, i, r) json_array_append_new(views, admin_timer_view(r));
    json_decref(recs);
    return views;
}

/* ---- the paged list ---------------------------------------------------------------------- */

struct tpage {
    const char *sub, *offer;
    int64_t before_ms; /* < 0: no bound */
    size_t limit;
    json_t *list;
    unsigned char after[KEY_MAX]; /* the cursor: listed already */
    size_t after_len;
    unsigned char last[KEY_MAX]; /* last index entry examined: the next cursor */
    size_t last_len;
    long scanned;
    int more;
};

static int add_timer(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct tpage *p = arg;
    const unsigned char *k = key;
    if (!klen || k[0] != 'd')
        return STOP; /* past the due index */
    if (klen < 11 || klen > KEY_MAX)
        return 0; /* not a key timers.c writes: skipped */
    if (klen == p->after_len && !memcmp(k, p->after, klen))
        return 0;
    int64_t at = (int64_t)store_be64_get(k + 1);
    if (p->before_ms >= 0 && at * 1000 >= p->before_ms)
        return STOP; /* due order: everything after is later still */
    if (json_array_size(p->list) == p->limit || p->scanned >= SCAN_CAP) {
        p->more = 1;
        return STOP;
    }
    p->scanned++;
    memcpy(p->last, k, klen);
    p->last_len = klen;
    const char *sub = (const char *)k + 9; /* sub id + NUL + name */
    if (p->sub && (strnlen(sub, klen - 9) != strlen(p->sub) || strcmp(sub, p->sub)))
        return 0;
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    if (rec && (!p->offer || jl_string_is(rec, "offer", p->offer)))
        json_array_append_new(p->list, admin_timer_view(rec));
    json_decref(rec);
    return 0;
}

/* "2026-12-01T10:00:00Z" or epoch milliseconds into *ms; SAASD_EINVAL otherwise. */
static int parse_time_ms(const char *s, int64_t *ms)
{
    char *end = NULL;
    long long n = strtoll(s, &end, 10);
    if (*s >= '0' && *s <= '9' && !*end) {
        *ms = n;
        return 0;
    }
    int64_t secs = 0;
    const char *rest = utc_parse(s, &secs);
    if (!rest || (*rest && strcmp(rest, "Z")))
        return SAASD_EINVAL;
    *ms = secs * 1000;
    return 0;
}

static int parse_cursor(const char *hex, struct tpage *p)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > KEY_MAX)
        return SAASD_EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return SAASD_EINVAL;
        p->after[i] = (unsigned char)v;
    }
    p->after_len = n / 2;
    return 0;
}

static void bad_request(struct httpd_response *res, const char *message)
{
    json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code", "BadRequest", "message", message);
    char *text = json_dumps(e, JSON_COMPACT);
    httpd_set_body(res, 400, "application/json", text ? text : "{}");
    free(text);
    json_decref(e);
}

/* The query into p: NULL, or what is wrong with it. */
static const char *page_query(const struct httpd_request *req, struct tpage *p)
{
    const char *cur = httpd_query(req, "cursor"), *before = httpd_query(req, "due_before");
    long limit;
    if (httpd_query_long(req, "limit", 1, PAGE_MAX, PAGE_DEFAULT, &limit))
        return "limit must be 1..1000";
    p->limit = (size_t)limit;
    if (cur && *cur && parse_cursor(cur, p))
        return "cursor is not one this endpoint gave out (next_cursor)";
    p->before_ms = -1;
    if (before && parse_time_ms(before, &p->before_ms))
        return "due_before must be RFC 3339 UTC (2026-12-01T10:00:00Z) or epoch milliseconds";
    p->sub = httpd_query(req, "sub");
    p->offer = httpd_query(req, "offer");
    return NULL;
}

void admin_list_timers(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    struct tpage p = {0};
    const char *why = page_query(req, &p);
    if (why) {
        bad_request(res, why);
        return;
    }
    p.list = json_array();
    const void *from = p.after_len ? (const void *)p.after : "d";
    int rc = store_scan_from(d->store, STORE_TIMERS, from, p.after_len ? p.after_len : 1, add_timer, &p);
    char next[2 * KEY_MAX + 1] = "";
    for (size_t i = 0; p.more && i < p.last_len; i++)
        snprintf(next + 2 * i, 3, "%02x", p.last[i]);
    json_t *body = rc < 0 ? NULL : json_pack("{s:o, s:o}", "timers", p.list, "next_cursor",
                                             p.more ? json_string(next) : json_null());
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!body)
        json_decref(p.list);
    json_decref(body);
    if (!text)
        log_warn("admin", "listing timers failed", "error", saasd_strerror(rc < 0 ? rc : SAASD_ENOMEM));
    httpd_set_body(res, text ? 200 : 500, "application/json",
                   text ? text : "{\"error\":{\"code\":\"Internal\",\"message\":\"the timers could not be read\"}}");
    free(text);
}

/* ---- cancel ------------------------------------------------------------------------------ */

int admin_timer_cancel(struct daemon *d, const char *sub_id, const char *name, const char *via, json_t **cancelled)
{
    json_t *t = NULL;
    struct store_batch *b = NULL;
    char detail[400], due[40];
    daemon_lock_sub(d, sub_id); /* the firing thread fires under the same lock: fired or cancelled, not both */
    int rc = timers_get(d, sub_id, name, &t);
    if (!rc)
        rc = store_batch_new(&b);
    if (!rc)
        rc = timers_batch_cancel(d, b, sub_id, name); /* the same batch step as ctx.timer.cancel */
    if (!rc) {
        snprintf(detail, sizeof detail, "%s: cancelled by an operator (%s), was due %s", name, via,
                 admin_timer_due_text((int64_t)json_integer_value(json_object_get(t, "at")), due, sizeof due));
        rc = flows_add_audit(b, sub_id, flows_audit_entry(NULL, "Timer", "cancelled", detail, NULL));
    }
    if (!rc)
        rc = store_commit(d->store, b);
    daemon_unlock_sub(d, sub_id);
    store_batch_free(b);
    log_info("admin", "timer cancel", "sub_id", sub_id, "name", name, "via", via, "result",
             rc ? saasd_strerror(rc) : "cancelled");
    if (cancelled && !rc)
        *cancelled = admin_timer_view(t);
    json_decref(t);
    return rc;
}

void admin_timer_action(struct daemon *d, const char *sub_id, const char *rest, const struct httpd_request *req,
                        struct httpd_response *res)
{
    static const char verb[] = "/cancel";
    size_t n = strlen(rest), vl = sizeof verb - 1;
    char name[200];
    json_t *body = NULL, *gone = NULL;
    int status;
    if (n <= vl || strcmp(rest + n - vl, verb) || n - vl >= sizeof name) {
        status = 404;
        body = json_pack("{s:s}", "error", "no such admin path (POST /admin/timers/{sub}/{name}/cancel)");
    } else if (strcmp(httpd_method(req), "POST")) {
        status = 405; /* a GET never cancels */
        body = json_pack("{s:s}", "error", "use POST");
    } else {
        snprintf(name, sizeof name, "%.*s", (int)(n - vl), rest);
        int rc = admin_timer_cancel(d, sub_id, name, "admin API", &gone);
        status = rc == SAASD_ENOTFOUND ? 404 : rc == SAASD_EINVAL ? 400 : rc ? 500 : 200;
        body = rc == SAASD_ENOTFOUND ? json_pack("{s:s}", "error", "no such timer")
               : rc                  ? json_pack("{s:s}", "error", saasd_strerror(rc))
                                     : json_pack("{s:s, s:o}", "result", "cancelled", "timer", gone);
    }
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    httpd_set_body(res, status, "application/json", text ? text : "{}");
    free(text);
    json_decref(body);
}
