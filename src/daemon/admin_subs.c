/* GET /admin/subscriptions: the local records, one page at a time, so that a million
 * subscriptions are listed in bounded memory (admin.c routes here).
 *   ?limit=N    page size, 1..5000 (default 500)
 *   ?cursor=ID  start after this subscription id (the previous page's next_cursor)
 *   ?offer=X    only subscriptions of this offer; ?status=Y only with this local status
 *               (both compared case-insensitively)
 * Answer: {"subscriptions":[summaries in id order], "next_cursor": id or null}.
 *
 * The page is streamed (httpd's stream callback, chunked): it is never built whole in memory.
 * Each refill of the small text buffer is one short LMDB read transaction that resumes strictly
 * after the last key it read, rather than one snapshot held for the whole page: a slow or
 * stalled client then pins no snapshot (a long-lived reader keeps LMDB from reusing pages, and
 * the file grows under writes), and the admin listener's event threads may take turns on one
 * answer (an LMDB read transaction belongs to the thread that opened it). Resuming by key is
 * what cursor paging across pages does anyway: a record inserted meanwhile behind the position
 * is not listed, one inserted ahead is, and none is listed twice.
 * An error midway (the store failing, out of memory) ends the answer without its final chunk
 * and without the closing of the document: the client sees a truncated body, never a 200 with
 * a complete-looking page. */
#include "daemon/admin_subs.h"
#include "daemon/daemon.h"

#include "core/err.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 500
#define PAGE_MAX 5000
#define ID_MAX 160
#define REFILL_BYTES (32 * 1024) /* text produced per read transaction ... */
#define REFILL_SCAN 2000         /* ... or records examined, when a filter matches rarely */
#define STOP_REFILL 1            /* scan callback: this refill is full */

enum phase { HEAD, RECORDS, TAIL, DONE };

struct page {
    struct daemon *d;
    char *offer, *status;  /* filters (copies: the stream outlives the request handler) */
    long limit, items;
    enum phase phase;
    int more;              /* a record exists beyond the page */
    char last[ID_MAX];     /* last id listed: the next cursor */
    char resume[STORE_MAX_KEY + 1]; /* last key read: the next refill starts after it */
    size_t resume_len;
    int scanned;           /* records examined in this refill */
    char *buf;             /* text not yet handed to the socket */
    size_t len, off, cap;
    int failed;
};

static void put(struct page *p, const char *s, size_t n)
{
    if (p->failed)
        return;
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : REFILL_BYTES * 2;
        while (cap < p->len + n)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b) {
            p->failed = 1;
            return;
        }
        p->buf = b;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
}

static json_t *summary(json_t *rec)
{
    json_t *s = json_object();
    const char *keys[] = {"id", "offerId", "planId", "quantity", "status", "ms_status", NULL};
    for (int i = 0; keys[i]; i++)
        if (json_object_get(rec, keys[i]))
            json_object_set(s, keys[i], json_object_get(rec, keys[i]));
    json_t *prov = json_object_get(json_object_get(rec, "provision"), "decision");
    if (prov)
        json_object_set(s, "provision", prov);
    return s;
}

static int matches(const struct page *p, json_t *rec)
{
    return (!p->offer || jl_string_is(rec, "offerId", p->offer)) && (!p->status || jl_string_is(rec, "status", p->status));
}

static void add_summary(struct page *p, json_t *rec, const void *key, size_t klen)
{
    json_t *sum = summary(rec);
    char *one = json_dumps(sum, JSON_COMPACT | JSON_SORT_KEYS);
    if (!one) {
        p->failed = 1;
    } else {
        if (p->items++)
            put(p, ",", 1);
        put(p, one, strlen(one));
        size_t n = klen < ID_MAX - 1 ? klen : ID_MAX - 1;
        memcpy(p->last, key, n);
        p->last[n] = 0;
    }
    free(one);
    json_decref(sum);
}

static int add_record(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct page *p = arg;
    if (klen == p->resume_len && !memcmp(key, p->resume, klen))
        return 0; /* the cursor (or the previous refill's last key) was listed already */
    if (p->items == p->limit) {
        p->more = 1; /* one record beyond the page: there is a next page */
        return STOP_REFILL;
    }
    if (p->len >= REFILL_BYTES || p->scanned >= REFILL_SCAN)
        return STOP_REFILL; /* this one is read again by the next refill */
    p->scanned++;
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    if (rec && matches(p, rec)) /* a damaged record is skipped, as before */
        add_summary(p, rec, key, klen);
    json_decref(rec);
    memcpy(p->resume, key, klen); /* klen <= STORE_MAX_KEY: LMDB refuses longer keys */
    p->resume_len = klen;
    return p->failed ? SAASD_ENOMEM : 0;
}

/* One short read transaction's worth of records, or the end of the document. */
static int refill(struct page *p)
{
    p->len = p->off = 0;
    if (p->phase == HEAD) {
        put(p, "{\"subscriptions\":[", 18);
        p->phase = RECORDS;
        return p->failed ? SAASD_ENOMEM : 0;
    }
    if (p->phase == RECORDS) {
        p->scanned = 0;
        int rc = store_scan_from(p->d->store, STORE_SUBSCRIPTIONS, p->resume, p->resume_len, add_record, p);
        if (rc < 0)
            return rc;
        if (rc == 0 || p->more)
            p->phase = TAIL; /* the end of the store, or of the page */
        return 0;
    }
    if (p->phase == TAIL) {
        json_t *next = p->more && p->items ? json_string(p->last) : json_null();
        char *text = json_dumps(next, JSON_ENCODE_ANY);
        json_decref(next);
        put(p, "],\"next_cursor\":", 16);
        put(p, text ? text : "", text ? strlen(text) : 0);
        put(p, "}", 1);
        free(text);
        p->phase = DONE;
        return p->failed || !text ? SAASD_ENOMEM : 0;
    }
    return 0;
}

static long page_read(void *arg, char *out, size_t max)
{
    struct page *p = arg;
    while (p->off == p->len && p->phase != DONE) {
        int rc = refill(p);
        if (rc) {
            char n[32];
            snprintf(n, sizeof n, "%ld", p->items);
            log_warn("admin", "listing subscriptions failed; the answer is cut short", "listed", n, "error",
                     saasd_strerror(rc));
            return -1;
        }
    }
    size_t n = p->len - p->off < max ? p->len - p->off : max;
    memcpy(out, p->buf + p->off, n);
    p->off += n;
    return (long)n; /* 0 once DONE and everything is sent */
}

static void page_free(void *arg)
{
    struct page *p = arg;
    free(p->offer);
    free(p->status);
    free(p->buf);
    free(p);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

void admin_list_subscriptions(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    long limit;
    const char *cursor = httpd_query(req, "cursor");
    if (httpd_query_long(req, "limit", 1, PAGE_MAX, PAGE_DEFAULT, &limit)) {
        httpd_set_body(res, 400, NULL, "{\"error\":{\"code\":\"BadRequest\",\"message\":\"limit must be 1..5000\"}}");
        return;
    }
    struct page *p = calloc(1, sizeof *p);
    if (p) {
        *p = (struct page){.d = d, .limit = limit, .phase = HEAD, .offer = dup_or_null(httpd_query(req, "offer")),
                           .status = dup_or_null(httpd_query(req, "status"))};
        if (cursor && *cursor && strlen(cursor) < ID_MAX) {
            p->resume_len = strlen(cursor);
            memcpy(p->resume, cursor, p->resume_len);
        }
    }
    if (!p || (httpd_query(req, "offer") && !p->offer) || (httpd_query(req, "status") && !p->status)) {
        if (p)
            page_free(p);
        httpd_set_body(res, 500, NULL, "{\"error\":{\"code\":\"Internal\",\"message\":\"out of memory\"}}");
        return;
    }
    res->status = 200;
    res->content_type = "application/json";
    res->stream = page_read;
    res->stream_free = page_free;
    res->stream_arg = p;
}
