/* The console's subscription list: filters, search and cursor paging.
 * A page reads the store from the cursor on (store_scan_from) and stops after CONSOLE_PAGE_ROWS
 * matches, or after CONSOLE_SCAN_CAP records when a filter matches rarely, so its cost does not
 * grow with the number of subscriptions. */
#include "daemon/console_internal.h"
#include "daemon/daemon.h"

#include "core/httpd.h"
#include "core/store.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The last audit entry of a subscription (new reference) or NULL. */
static int keep_last(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    json_t **last = arg;
    json_decref(*last);
    *last = json_loadb(val, vlen, 0, NULL);
    return 0;
}

static json_t *last_audit(struct daemon *d, const char *id)
{
    json_t *last = NULL;
    store_scan(d->store, STORE_AUDIT, id, strlen(id), keep_last, &last);
    return last;
}

struct list_scan {
    struct console *c;
    const char *q, *offer, *plan, *status;
    const struct status_filter *by_status; /* how status is matched (status_filter_of) */
    size_t examined;
    int rows, more, capped;
    char last[STORE_MAX_KEY + 1]; /* the last key examined: where the next page starts after */
};

static const char *param(struct console *c, const char *name)
{
    const char *v = httpd_query(c->req, name);
    return v && *v ? v : NULL;
}

/* A value without characters JSON would escape appears as such in the stored text: a cheap
 * test before parsing the record. */
static int may_contain(const void *val, size_t vlen, const char *needle)
{
    if (!needle)
        return 1;
    for (const char *p = needle; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return 1;
    return memmem(val, vlen, needle, strlen(needle)) != NULL;
}

static int icontains(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

static int has_status(const struct sub_view *v, const char *status)
{
    return (v->status && !strcmp(v->status, status)) || (v->ms_status && !strcmp(v->ms_status, status));
}

static int waits_for_approval(const struct sub_view *v, const char *status)
{
    return v->decision && !strcmp(v->decision, "pending");
}

static int drifted(const struct sub_view *v, const char *status)
{
    return v->drift;
}

/* The status filter's choices (value, label) and how a subscription matches each; in_text: a
 * matching record's stored text contains the value (list_row's cheap test before parsing). */
static const struct status_filter {
    const char *value, *label;
    int (*match)(const struct sub_view *v, const char *status);
    int in_text;
} statuses[] = {
    {"", "any status", NULL, 0},
    {"pending", "waiting for approval", waits_for_approval, 1},
    {"PendingFulfillmentStart", "PendingFulfillmentStart", has_status, 1},
    {"Subscribed", "Subscribed", has_status, 1},
    {"Suspended", "Suspended", has_status, 1},
    {"Unsubscribed", "Unsubscribed", has_status, 1},
    {"drift", "drift", drifted, 0},
};

/* A status typed into the address: saasd's or Microsoft's status is that value. */
static const struct status_filter any_other_status = {NULL, NULL, has_status, 1};

static const struct status_filter *status_filter_of(const char *status)
{
    for (size_t i = 1; status && i < sizeof statuses / sizeof statuses[0]; i++)
        if (!strcmp(statuses[i].value, status))
            return &statuses[i];
    return &any_other_status;
}

static int matches(const struct list_scan *ls, const struct sub_view *v)
{
    if (ls->q && !icontains(v->id, ls->q) && !icontains(v->email, ls->q))
        return 0;
    if (ls->offer && (!v->offer || strcmp(v->offer, ls->offer)))
        return 0;
    if (ls->plan && (!v->plan || strcmp(v->plan, ls->plan)))
        return 0;
    return !ls->status || ls->by_status->match(v, ls->status);
}

static void tag(struct console *c, const char *text)
{
    if (!text)
        return;
    cpage_raw(c, "<span class=\"tag ");
    cpage_text(c, text);
    cpage_raw(c, "\">");
    cpage_text(c, text);
    cpage_raw(c, "</span> ");
}

static void row(struct console *c, json_t *rec)
{
    struct sub_view v;
    char seats[32] = "", when[40];
    sub_view_of(rec, &v);
    if (v.seats >= 0)
        snprintf(seats, sizeof seats, "%lld", v.seats);
    cpage_raw(c, "<tr>");
    cpage_sub_cell(c, v.id);
    cpage_td(c, v.offer);
    cpage_td(c, v.plan);
    cpage_raw(c, "<td class=\"num\">%s</td><td>", seats);
    tag(c, v.status);
    if (v.decision && !strcmp(v.decision, "pending"))
        tag(c, "pending");
    cpage_raw(c, "</td><td>");
    tag(c, v.ms_status);
    cpage_raw(c, "</td>");
    cpage_td(c, v.email);
    json_t *last = last_audit(c->d, v.id);
    cpage_raw(c, "<td>");
    if (last) {
        cpage_text(c, cj_str(last, "action", NULL));
        cpage_raw(c, ": ");
        cpage_text(c, cj_str(last, "decision", NULL));
        cpage_raw(c, "<br><span class=\"muted\">%s</span>",
                  cpage_time(json_integer_value(json_object_get(last, "time_ms")), when, sizeof when));
    }
    json_decref(last);
    cpage_raw(c, "</td><td>%s</td></tr>\n", v.drift ? "<span class=\"tag drift\">drift</span>" : "");
}

static int list_row(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct list_scan *ls = arg;
    if (ls->examined++ >= CONSOLE_SCAN_CAP) {
        ls->capped = 1;
        return 1;
    }
    int hit = 0;
    if (may_contain(val, vlen, ls->offer) && may_contain(val, vlen, ls->plan) &&
        may_contain(val, vlen, ls->status && ls->by_status->in_text ? ls->status : NULL)) {
        json_t *rec = json_loadb(val, vlen, 0, NULL);
        struct sub_view v;
        sub_view_of(rec, &v);
        hit = rec && v.id && matches(ls, &v);
        if (hit && ls->rows == CONSOLE_PAGE_ROWS)
            ls->more = 1; /* one more exists: offer the next page, starting after the last one shown */
        else if (hit) {
            row(ls->c, rec);
            ls->rows++;
        }
        json_decref(rec);
    }
    if (ls->more)
        return 1;
    snprintf(ls->last, sizeof ls->last, "%.*s", (int)klen, (const char *)key);
    return 0;
}

static void filter_input(struct console *c, const char *label, const char *name, const char *value)
{
    cpage_raw(c, "<label>%s<br><input name=\"%s\" value=\"", label, name);
    cpage_text(c, value);
    cpage_raw(c, "\"></label>");
}

static void filters(struct console *c, const struct list_scan *ls)
{
    cpage_raw(c, "<form method=\"get\" action=\"/console/subscriptions\" class=\"filters card\">");
    filter_input(c, "Search id or e-mail", "q", ls->q);
    filter_input(c, "Offer", "offer", ls->offer);
    filter_input(c, "Plan", "plan", ls->plan);
    cpage_raw(c, "<label>Status<br><select name=\"status\">");
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        cpage_raw(c, "<option value=\"%s\"%s>%s</option>", statuses[i].value,
                  ls->status && !strcmp(ls->status, statuses[i].value) ? " selected" : "", statuses[i].label);
    cpage_raw(c, "</select></label><button type=\"submit\">Search</button> "
                 "<a class=\"button\" href=\"/console/subscriptions\">Clear</a></form>\n");
}

static void filter_args(struct console *c, const struct list_scan *ls)
{
    const char *names[] = {"q", "offer", "plan", "status"};
    const char *values[] = {ls->q, ls->offer, ls->plan, ls->status};
    for (int i = 0; i < 4; i++)
        if (values[i]) {
            cpage_raw(c, "&amp;%s=", names[i]);
            cpage_url(c, values[i]);
        }
}

void console_list(struct console *c)
{
    struct list_scan ls = {.c = c, .q = param(c, "q"), .offer = param(c, "offer"), .plan = param(c, "plan"),
                           .status = param(c, "status")};
    ls.by_status = status_filter_of(ls.status);
    const char *after = param(c, "after");
    size_t total = 0;
    store_count(c->d->store, STORE_SUBSCRIPTIONS, &total);
    cpage_begin(c, "Subscriptions", "subscriptions");
    filters(c, &ls);
    cpage_raw(c, "<p class=\"muted\">%zu %s in the store.%s</p>\n", total,
              total == 1 ? "subscription" : "subscriptions", after ? " Showing a later page." : "");
    cpage_raw(c, "<table><tr><th>Subscription</th><th>Offer</th><th>Plan</th><th class=\"num\">Seats</th>"
                 "<th>saasd</th><th>Microsoft</th><th>Purchaser</th><th>Last event</th><th>Drift</th></tr>\n");
    json_t *exact = NULL;
    if (ls.q && !after && record_get_sub(c->d, ls.q, &exact) == 0) {
        row(c, exact); /* an exact id: no scan */
        ls.rows = 1;
        json_decref(exact);
    } else {
        char start[STORE_MAX_KEY + 2];
        size_t slen = 0;
        if (after) { /* strictly after the cursor: the cursor's key followed by a NUL byte */
            slen = strlen(after) < STORE_MAX_KEY ? strlen(after) : STORE_MAX_KEY;
            memcpy(start, after, slen);
            start[slen++] = 0;
        }
        store_scan_from(c->d->store, STORE_SUBSCRIPTIONS, start, slen, list_row, &ls);
    }
    if (!ls.rows)
        cpage_raw(c, "<tr><td colspan=\"9\" class=\"muted\">No subscription matches.</td></tr>\n");
    cpage_raw(c, "</table>\n<div class=\"pager\">");
    if (after) {
        cpage_raw(c, "<a class=\"button\" href=\"/console/subscriptions?x=1");
        filter_args(c, &ls);
        cpage_raw(c, "\">First page</a> ");
    }
    if (ls.more || ls.capped) {
        cpage_raw(c, "<a class=\"button\" rel=\"next\" href=\"/console/subscriptions?after=");
        cpage_url(c, ls.last);
        filter_args(c, &ls);
        cpage_raw(c, "\">%s</a>", ls.more ? "Next page &rarr;" : "Search further &rarr;");
    }
    if (ls.capped)
        cpage_raw(c, " <span class=\"muted\">%d records examined for this page without filling it; the search "
                     "goes on from the last one.</span>", CONSOLE_SCAN_CAP);
    cpage_raw(c, "</div>\n");
    cpage_end(c, 200);
}
