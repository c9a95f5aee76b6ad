/* GET /admin/subscriptions: the local records, one page at a time, so that a million
 * subscriptions are listed in bounded memory (admin.c routes here).
 *   ?limit=N    page size, 1..5000 (default 500)
 *   ?cursor=ID  start after this subscription id (the previous page's next_cursor)
 *   ?offer=X    only subscriptions of this offer; ?status=Y only with this local status
 *               (both compared case-insensitively)
 * Answer: {"subscriptions":[summaries in id order], "next_cursor": id or null}. A page is read
 * from one store snapshot, record by record, straight into the answer's text. */
#include "daemon/admin_subs.h"
#include "daemon/daemon.h"

#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAGE_DEFAULT 500
#define PAGE_MAX 5000
#define ID_MAX 160

struct page {
    const char *cursor, *offer, *status;
    long limit, items;
    char last[ID_MAX];
    int more, failed;
    char *buf;
    size_t len, cap;
};

static void put(struct page *p, const char *s, size_t n)
{
    if (p->failed)
        return;
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 65536;
        while (cap < p->len + n + 1)
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
    p->buf[p->len] = 0;
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

static int add_record(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct page *p = arg;
    if (p->cursor && klen == strlen(p->cursor) && !memcmp(key, p->cursor, klen))
        return 0; /* the cursor names the last id of the previous page */
    if (p->items == p->limit) {
        p->more = 1; /* one record beyond the page: there is a next page */
        return 1;
    }
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    if (rec && matches(p, rec)) {
        json_t *sum = summary(rec);
        char *one = json_dumps(sum, JSON_COMPACT | JSON_SORT_KEYS);
        if (one) {
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
    json_decref(rec);
    return p->failed ? 1 : 0;
}

void admin_list_subscriptions(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    struct page p = {.cursor = httpd_query(req, "cursor"), .offer = httpd_query(req, "offer"),
                     .status = httpd_query(req, "status"), .limit = PAGE_DEFAULT};
    const char *limit = httpd_query(req, "limit");
    if (limit) {
        char *end = NULL;
        p.limit = strtol(limit, &end, 10);
        if (!*limit || *end || p.limit < 1 || p.limit > PAGE_MAX) {
            httpd_set_body(res, 400, NULL, "{\"error\":{\"code\":\"BadRequest\",\"message\":\"limit must be 1..5000\"}}");
            return;
        }
    }
    if (p.cursor && (!*p.cursor || strlen(p.cursor) >= ID_MAX))
        p.cursor = NULL;
    put(&p, "{\"subscriptions\":[", 18);
    store_scan_from(d->store, STORE_SUBSCRIPTIONS, p.cursor, p.cursor ? strlen(p.cursor) : 0, add_record, &p);
    put(&p, "],\"next_cursor\":", 16);
    json_t *next = p.more && p.items ? json_string(p.last) : json_null();
    char *next_text = json_dumps(next, JSON_ENCODE_ANY);
    json_decref(next);
    put(&p, next_text ? next_text : "null", next_text ? strlen(next_text) : 4);
    free(next_text);
    put(&p, "}", 1);
    if (p.failed) {
        free(p.buf);
        httpd_set_body(res, 500, NULL, "{\"error\":{\"code\":\"Internal\",\"message\":\"out of memory\"}}");
        return;
    }
    res->status = 200;
    res->content_type = "application/json";
    res->body = p.buf;
    res->body_len = p.len;
}
