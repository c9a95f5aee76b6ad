/* The console's page frame and writers. Values are escaped by html_put (html.c) on the way in;
 * cpage_raw is for the page's own markup only. */
#include "daemon/console_internal.h"
#include "daemon/html.h"

#include "core/httpd.h"
#include "core/utc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char style[] =
    "*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "color:#1f2933;background:#f4f6f8}"
    "header{background:#17324d;color:#fff;padding:0 24px;display:flex;align-items:center;gap:24px;height:52px}"
    "header .brand{font-weight:600;font-size:16px;margin-right:12px}"
    "header nav a{color:#c9d6e3;text-decoration:none;padding:16px 4px;margin-right:14px;display:inline-block}"
    "header nav a.on,header nav a:hover{color:#fff;border-bottom:3px solid #4ea1f3}"
    "header form{margin-left:auto}header button{background:transparent;color:#c9d6e3;border:1px solid #5b7894}"
    "main{padding:20px 24px;max-width:1400px}h1{font-size:22px;margin:4px 0 16px}h2{font-size:16px;margin:24px 0 8px}"
    "table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d9e0e7;margin-bottom:8px}"
    "th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e6ebf0;vertical-align:top}"
    "th{background:#eef2f6;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#52606d}"
    "tr:nth-child(even) td{background:#fafbfc}td.t{white-space:nowrap}td.num,th.num{text-align:right}"
    "code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}"
    "a{color:#0b5cad}.muted{color:#7b8794}.card{background:#fff;border:1px solid #d9e0e7;padding:16px;margin-bottom:16px}"
    ".narrow{max-width:420px}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}"
    ".tag{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#e4e7eb}"
    ".tag.Subscribed{background:#d5f0dd;color:#125e2a}.tag.Suspended{background:#fde8c8;color:#8a4b00}"
    ".tag.Unsubscribed{background:#f3d4d4;color:#8a1c1c}.tag.PendingFulfillmentStart,.tag.pending{background:#dde8fb;color:#174ea6}"
    ".tag.drift{background:#8a1c1c;color:#fff}.flash{padding:10px 14px;border-left:4px solid #4ea1f3;background:#fff}"
    ".flash.bad{border-color:#c53030}.flash.good{border-color:#2f855a}"
    "form.inline{display:inline}input,select{font:inherit;padding:5px 8px;border:1px solid #bcc7d3;border-radius:3px}"
    "label{display:block;margin:6px 0}"
    "button{font:inherit;padding:5px 14px;border-radius:3px;border:1px solid #0b5cad;background:#0b5cad;color:#fff;cursor:pointer}"
    "button.danger{background:#c53030;border-color:#c53030}a.button{display:inline-block;padding:5px 14px;"
    "border:1px solid #bcc7d3;border-radius:3px;text-decoration:none;color:#1f2933;background:#fff}"
    "a.button.primary{background:#2f855a;border-color:#2f855a;color:#fff}"
    ".filters{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:12px}.filters label{margin:0}"
    ".card h2{margin-top:0}svg.bars{width:100%;height:auto;display:block}"
    ".stat{font-size:26px;font-weight:600}.pager{margin:10px 0}svg text{font-size:10px;fill:#52606d}";

static const struct {
    const char *key, *href, *label;
} nav_items[] = {
    {"dashboard", "/console", "Dashboard"},
    {"subscriptions", "/console/subscriptions", "Subscriptions"},
    {"queues", "/console/queues", "Queues"},
    {"rules", "/console/rules", "Rules"},
    {"replay", "/console/replay", "Replay"},
};

void cpage_raw(struct console *c, const char *fmt, ...)
{
    if (!c->f)
        return; /* open_memstream failed: cpage_end answers 500 */
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->f, fmt, ap);
    va_end(ap);
}

void cpage_text(struct console *c, const char *text)
{
    if (c->f)
        html_put(c->f, text ? text : "");
}

/* RFC 3986 unreserved characters pass; everything else is %XX, so the result is also safe in an
 * HTML attribute. */
void cpage_url(struct console *c, const char *component)
{
    if (!c->f)
        return;
    for (const unsigned char *p = (const unsigned char *)(component ? component : ""); *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p))
            fputc(*p, c->f);
        else
            fprintf(c->f, "%%%02X", *p);
    }
}

void cpage_td(struct console *c, const char *text)
{
    cpage_raw(c, "<td>");
    cpage_text(c, text);
    cpage_raw(c, "</td>");
}

void cpage_td_json(struct console *c, json_t *v)
{
    char buf[64];
    if (json_is_string(v)) {
        cpage_td(c, json_string_value(v));
        return;
    }
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, sizeof buf, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "yes" : "no");
    else
        buf[0] = 0;
    cpage_td(c, buf);
}

const char *cpage_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm))
        buf[0] = 0;
    else
        strftime(buf, size, "%Y-%m-%d %H:%M UTC", &tm);
    return buf;
}

void cpage_td_time(struct console *c, int64_t ms)
{
    char when[40];
    cpage_raw(c, "<td>%s</td>", cpage_time(ms, when, sizeof when));
}

void cpage_sub_cell(struct console *c, const char *id)
{
    cpage_raw(c, "<td><a class=\"mono\" href=\"/console/subscriptions/");
    cpage_url(c, id);
    cpage_raw(c, "\">");
    cpage_text(c, id);
    cpage_raw(c, "</a></td>");
}

void cpage_pair(struct console *c, const char *a, const char *b)
{
    cpage_text(c, a);
    cpage_raw(c, " / ");
    cpage_text(c, b);
}

void cpage_table_end(struct console *c, int rows, int cols)
{
    if (!rows)
        cpage_raw(c, "<tr><td colspan=\"%d\" class=\"muted\">None.</td></tr>\n", cols);
    cpage_raw(c, "</table>\n");
}

void cpage_outbox_button(struct console *c, const char *id, const char *verb, const char *label, uint64_t seq)
{
    cpage_raw(c, "<a class=\"button\" href=\"/console/subscriptions/");
    cpage_url(c, id);
    cpage_raw(c, "/confirm?action=%s&amp;value=%llu\">%s</a> ", verb, (unsigned long long)seq, label);
}

uint64_t cpage_key_seq(const void *key, size_t klen)
{
    uint64_t v = 0;
    for (size_t i = 0; i < klen && i < 8; i++)
        v = v << 8 | ((const unsigned char *)key)[i];
    return v;
}

void cpage_csrf(struct console *c)
{
    cpage_raw(c, "<input type=\"hidden\" name=\"csrf\" value=\"");
    cpage_text(c, c->s.csrf);
    cpage_raw(c, "\">");
}

void cpage_begin(struct console *c, const char *title, const char *nav)
{
    c->f = open_memstream(&c->buf, &c->len);
    if (!c->f)
        return;
    cpage_raw(c, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
    cpage_text(c, title);
    cpage_raw(c, " - saasd console</title>\n<style>%s</style></head>\n<body>\n<header><span class=\"brand\">saasd console</span>",
              style);
    if (nav) {
        cpage_raw(c, "<nav>");
        for (size_t i = 0; i < sizeof nav_items / sizeof nav_items[0]; i++)
            cpage_raw(c, "<a href=\"%s\"%s>%s</a>", nav_items[i].href, strcmp(nav, nav_items[i].key) ? "" : " class=\"on\"",
                      nav_items[i].label);
        cpage_raw(c, "</nav><form method=\"post\" action=\"/console/logout\">");
        cpage_csrf(c);
        cpage_raw(c, "<button type=\"submit\">Sign out</button></form>");
    }
    cpage_raw(c, "</header>\n<main>\n<h1>");
    cpage_text(c, title);
    cpage_raw(c, "</h1>\n");
}

void cpage_end(struct console *c, int status)
{
    if (!c->f) {
        httpd_set_body(c->res, 500, "text/plain", "out of memory\n");
        return;
    }
    cpage_raw(c, "</main>\n</body></html>\n");
    fclose(c->f);
    c->f = NULL;
    c->res->status = status;
    c->res->content_type = "text/html; charset=utf-8";
    c->res->body = c->buf;
    c->res->body_len = c->len;
    c->buf = NULL;
    /* pages show subscription data: keep them out of caches and frames */
    httpd_add_header(c->res, "Cache-Control", "no-store");
    httpd_add_header(c->res, "X-Frame-Options", "DENY");
    httpd_add_header(c->res, "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                                                        "form-action 'self'; frame-ancestors 'none'");
}

void cpage_by_verb(struct console *c, const struct cpage_verb *rows, size_t n, const char *name, const char *verb,
                   const char *back_url, const char *back_text)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(rows[i].verb, verb) && !strcmp(rows[i].method, httpd_method(c->req))) {
            rows[i].show(c, name);
            return;
        }
    }
    cpage_message(c, 405, "Not allowed", "That method is not allowed here.", back_url, back_text);
}

void cpage_message(struct console *c, int status, const char *title, const char *message, const char *back_url,
                   const char *back_text)
{
    cpage_begin(c, title, c->s.csrf[0] ? "" : NULL);
    cpage_raw(c, "<p class=\"flash%s\">", status >= 400 ? " bad" : " good");
    cpage_text(c, message);
    cpage_raw(c, "</p>\n");
    if (back_url) {
        cpage_raw(c, "<p><a class=\"button\" href=\"");
        cpage_text(c, back_url);
        cpage_raw(c, "\">");
        cpage_text(c, back_text ? back_text : "Back");
        cpage_raw(c, "</a></p>\n");
    }
    cpage_end(c, status);
}

void cpage_see_other(struct console *c, const char *location)
{
    httpd_add_header(c->res, "Location", location);
    cpage_message(c, 303, "One moment", "Taking you to the next page.", location, "Continue");
}

const char *cj_str(json_t *j, ...)
{
    va_list ap;
    va_start(ap, j);
    for (const char *k; j && (k = va_arg(ap, const char *)) != NULL;)
        j = json_object_get(j, k);
    va_end(ap);
    return json_string_value(j);
}

static long long int_or(json_t *v, long long fallback)
{
    return json_is_integer(v) ? (long long)json_integer_value(v) : fallback;
}

static int differ(const char *a, const char *b)
{
    return a && b && strcmp(a, b) != 0;
}

void sub_view_of(json_t *rec, struct sub_view *v)
{
    json_t *ms = json_object_get(rec, "subscription");
    memset(v, 0, sizeof *v);
    v->id = cj_str(rec, "id", NULL);
    v->offer = cj_str(rec, "offerId", NULL);
    v->plan = cj_str(rec, "planId", NULL);
    v->status = cj_str(rec, "status", NULL);
    v->decision = cj_str(rec, "provision", "decision", NULL);
    v->seats = int_or(json_object_get(rec, "quantity"), -1);
    v->ms_status = cj_str(ms, "saasSubscriptionStatus", NULL);
    if (!v->ms_status)
        v->ms_status = cj_str(rec, "ms_status", NULL);
    v->ms_plan = cj_str(ms, "planId", NULL);
    v->ms_seats = int_or(json_object_get(ms, "quantity"), -1);
    v->email = cj_str(ms, "purchaser", "emailId", NULL);
    if (!v->email)
        v->email = cj_str(ms, "beneficiary", "emailId", NULL);
    v->drift = differ(v->status, v->ms_status) || differ(v->plan, v->ms_plan) ||
               (v->seats >= 0 && v->ms_seats >= 0 && v->seats != v->ms_seats) ||
               json_is_true(json_object_get(rec, "missing_at_microsoft"));
}

/* Microsoft expects activation within 30 days of the purchase; the purchase time is the
 * subscription's "created" when Microsoft gave it, else when saasd first decided. */
int64_t sub_activation_deadline(json_t *rec)
{
    const char *created = cj_str(rec, "subscription", "created", NULL);
    int64_t base = 0, secs = 0;
    if (utc_parse(created, &secs))
        base = secs * 1000;
    json_t *at = json_object_get(json_object_get(rec, "provision"), "at_ms");
    if (!base && json_is_integer(at))
        base = json_integer_value(at);
    return base ? base + 30LL * 86400 * 1000 : 0;
}
