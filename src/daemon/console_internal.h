/* Shared by the console's files: one request being answered, and the page helpers. Every value
 * written into a page goes through html_put (html.c) or cpage_url (percent-encoding). */
#ifndef SAASD_CONSOLE_INTERNAL_H
#define SAASD_CONSOLE_INTERNAL_H

#include "core/session.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

struct daemon;
struct httpd_request;
struct httpd_response;

/* Most records one page examines: a filtered list over a million subscriptions stops here and
 * offers to continue from where it stopped, so no page ever reads the whole store. */
#define CONSOLE_SCAN_CAP 50000
#define CONSOLE_PAGE_ROWS 50

struct console {
    struct daemon *d;
    const struct httpd_request *req;
    struct httpd_response *res;
    struct session s;  /* the operator's session (valid once signed in) */
    FILE *f;           /* the page being written (open_memstream) */
    char *buf;
    size_t len;
};

/* Page frame: doctype, style, navigation (nav = the active item), a sign-out form. */
void cpage_begin(struct console *c, const char *title, const char *nav);
/* Close the frame and answer with status. */
void cpage_end(struct console *c, int status);
/* A page with one message (errors, results), with a link back. */
void cpage_message(struct console *c, int status, const char *title, const char *message, const char *back_url,
                   const char *back_text);
/* 303 to location (a console path). */
void cpage_see_other(struct console *c, const char *location);
/* A page of a named thing (/console/subscriptions/{id}/{verb}, /console/sinks/{name}/{verb}):
 * the row whose verb and method match shows it; none: 405, with a link back. */
struct cpage_verb {
    const char *method, *verb;
    void (*show)(struct console *c, const char *name);
};
void cpage_by_verb(struct console *c, const struct cpage_verb *rows, size_t n, const char *name, const char *verb,
                   const char *back_url, const char *back_text);

/* Writers: escaped text, a URL component percent-encoded, a printf of trusted text only. */
void cpage_text(struct console *c, const char *text);
void cpage_url(struct console *c, const char *component);
void cpage_raw(struct console *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A table cell with the escaped text ("" for NULL), and one with a JSON value's text. */
void cpage_td(struct console *c, const char *text);
void cpage_td_json(struct console *c, json_t *v);
/* epoch milliseconds as "2026-11-30 09:12 UTC" into buf ("" for 0). */
const char *cpage_time(int64_t ms, char *buf, size_t size);
/* The state of a store scan writing one table row per record. */
struct cpage_scan {
    struct console *c;
    int rows;
};

/* A table cell with that time. */
void cpage_td_time(struct console *c, int64_t ms);
/* A table cell linking to the subscription's page. */
void cpage_sub_cell(struct console *c, const char *id);
/* "a / b", both escaped (ours beside Microsoft's, offer beside plan). */
void cpage_pair(struct console *c, const char *a, const char *b);
/* Close a table, with a "None." row spanning cols columns when it had no rows. */
void cpage_table_end(struct console *c, int rows, int cols);
/* A button to the confirmation page of an outbox action (retry, abandon) on entry seq. */
void cpage_outbox_button(struct console *c, const char *id, const char *verb, const char *label, uint64_t seq);
/* The sequence number of an outbox or inbox entry: its big-endian 8-byte key. */
uint64_t cpage_key_seq(const void *key, size_t klen);
/* Buttons to the confirmation pages of a failing sink's actions (console_sinks.c), given its
 * sinks_status row; nothing for a healthy sink. */
void cpage_sink_buttons(struct console *c, json_t *status);
/* The hidden CSRF field of the operator's session. */
void cpage_csrf(struct console *c);

/* Small JSON helpers: a string at a path of object keys (NULL-terminated list), or NULL. */
const char *cj_str(json_t *j, ...);

/* Facts about one local record shared by the list, the queues and the dashboard. */
struct sub_view {
    const char *id, *offer, *plan, *status, *ms_status, *email, *decision;
    long long seats, ms_seats;
    const char *ms_plan;
    int drift; /* saasd's view differs from Microsoft's last known one, or Microsoft lost it */
};
void sub_view_of(json_t *rec, struct sub_view *v);
/* Epoch ms when the 30-day activation window of a pending purchase ends (0 when unknown). */
int64_t sub_activation_deadline(json_t *rec);

/* Pages. */
void console_dashboard(struct console *c);
void console_list(struct console *c);
void console_subscription(struct console *c, const char *id);
void console_confirm(struct console *c, const char *id);
void console_action(struct console *c, const char *id);
void console_queues(struct console *c);
void console_rules(struct console *c);
void console_sink_page(struct console *c, const char *rest); /* /console/sinks/{name}/confirm|action */
void console_replay(struct console *c, const char *rest); /* GET: the form; POST: run it (console_replay.c) */

#endif
