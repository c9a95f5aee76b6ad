/* The console's actions on a failing event sink (buttons on the queues page): retry now, or
 * skip the event the sink keeps failing on. Like every console action: a GET confirmation
 * page, then a POST carrying the session's CSRF token (console.c refuses a POST without it) and
 * confirm=yes. Both run admin_sink_action, the admin API's own code, so they are checked and
 * logged the same way (via=console). Routes: /console/sinks/{name}/confirm|action. */
#include "daemon/console.h"
#include "daemon/console_internal.h"
#include "daemon/sinks.h"

#include "core/httpd.h"

#include <stdlib.h>
#include <string.h>

static const struct sink_act {
    const char *name, *label, *question, *explain;
    int needs_seq, danger;
} sink_acts[] = {
    {"retry", "Retry now", "Retry this sink now?",
     "saasd tries the event this sink is failing on again now, instead of waiting for the backoff.", 0, 0},
    {"skip", "Skip event", "Skip this event for this sink?",
     "This sink gives up on the event and goes on with the next one: the event is never delivered to it (other sinks "
     "are not affected). This cannot be undone.",
     1, 1},
};

static const struct sink_act *sink_act_named(const char *name)
{
    for (size_t i = 0; name && i < sizeof sink_acts / sizeof sink_acts[0]; i++)
        if (!strcmp(sink_acts[i].name, name))
            return &sink_acts[i];
    return NULL;
}

static void sink_link(struct console *c, const char *name, const char *what)
{
    cpage_raw(c, "/console/sinks/");
    cpage_url(c, name);
    cpage_raw(c, "/%s", what);
}

void cpage_sink_buttons(struct console *c, json_t *status)
{
    const char *name = json_string_value(json_object_get(status, "name"));
    json_t *seq = json_object_get(status, "retrying_seq");
    if (!name || !json_is_integer(seq))
        return; /* healthy: nothing to act on */
    for (size_t i = 0; i < sizeof sink_acts / sizeof sink_acts[0]; i++) {
        cpage_raw(c, "<a class=\"button\" href=\"");
        sink_link(c, name, "confirm");
        cpage_raw(c, "?action=%s&amp;value=%lld\">%s", sink_acts[i].name, (long long)json_integer_value(seq),
                  sink_acts[i].label);
        if (sink_acts[i].needs_seq)
            cpage_raw(c, " #%lld", (long long)json_integer_value(seq));
        cpage_raw(c, "&hellip;</a> ");
    }
}

/* The sink's row of sinks_status (new reference), or NULL. */
static json_t *sink_status_of(struct console *c, const char *name)
{
    json_t *list = NULL, *k, *found = NULL;
    size_t i;
    if (sinks_status(c->d, &list) == 0)
        json_array_foreach(list, i, k) {
            const char *n = cj_str(k, "name", NULL);
            if (n && !strcmp(n, name))
                found = json_incref(k);
        }
    json_decref(list);
    return found;
}

static void confirm(struct console *c, const char *name)
{
    const struct sink_act *a = sink_act_named(httpd_query(c->req, "action"));
    const char *value = httpd_query(c->req, "value");
    json_t *st = a ? sink_status_of(c, name) : NULL;
    if (!a || !st || (a->needs_seq && (!value || !*value))) {
        cpage_message(c, a ? 404 : 400, "Nothing to confirm", a ? "No such sink." : "Unknown action.", "/console/queues",
                      "Queues");
        json_decref(st);
        return;
    }
    cpage_begin(c, a->question, "queues");
    cpage_raw(c, "<div class=\"card narrow\"><p>");
    cpage_text(c, a->explain);
    cpage_raw(c, "</p><table><tr><th>Sink</th>");
    cpage_td(c, name);
    cpage_raw(c, "</tr><tr><th>Kind</th>");
    cpage_td_json(c, json_object_get(st, "kind"));
    cpage_raw(c, "</tr><tr><th>Failing since</th>");
    cpage_td_json(c, json_object_get(st, "failing_since"));
    cpage_raw(c, "</tr><tr><th>Last error</th>");
    cpage_td_json(c, json_object_get(st, "last_error"));
    cpage_raw(c, "</tr><tr><th>Event</th>");
    cpage_td(c, value);
    cpage_raw(c, "</tr></table>\n<form method=\"post\" action=\"");
    sink_link(c, name, "action");
    cpage_raw(c, "\">");
    cpage_csrf(c);
    cpage_raw(c, "<input type=\"hidden\" name=\"action\" value=\"%s\"><input type=\"hidden\" name=\"value\" value=\"",
              a->name);
    cpage_text(c, value);
    cpage_raw(c, "\"><input type=\"hidden\" name=\"confirm\" value=\"yes\"><p><button type=\"submit\" id=\"confirm\"%s>"
                 "Yes, %s</button> <a class=\"button\" href=\"/console/queues\">No, go back</a></p></form></div>\n",
              a->danger ? " class=\"danger\"" : "", a->name);
    json_decref(st);
    cpage_end(c, 200);
}

static void act(struct console *c, const char *name)
{
    char *verb = NULL, *value = NULL, *confirmed = NULL;
    httpd_form_value(c->req, "action", &verb);
    httpd_form_value(c->req, "value", &value);
    httpd_form_value(c->req, "confirm", &confirmed);
    const struct sink_act *a = sink_act_named(verb);
    if (!a || (a->needs_seq && (!value || !*value)) || !confirmed || strcmp(confirmed, "yes")) {
        cpage_message(c, 400, "Not done", "An action must be confirmed on its confirmation page first.", "/console/queues",
                      "Back to the queues");
    } else {
        struct httpd_response r = {0};
        admin_sink_action(c->d, name, a->name, value ? strtoull(value, NULL, 10) : 0, "console", &r);
        json_t *answer = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
        const char *text = r.status == 200 ? cj_str(answer, "result", NULL) : cj_str(answer, "error", NULL);
        char msg[400];
        snprintf(msg, sizeof msg, "%s: %s%s%s", name, text ? text : "not done", a->needs_seq ? ", event #" : "",
                 a->needs_seq ? value : "");
        cpage_message(c, r.status ? r.status : 500, r.status == 200 ? "Done" : "Not done", msg, "/console/queues",
                      "Back to the queues");
        json_decref(answer);
        httpd_response_clear(&r);
    }
    free(verb);
    free(value);
    free(confirmed);
}

/* /console/sinks/{name}/{verb}: the verb and the method pick the page. */
static const struct cpage_verb sink_pages[] = {
    {"GET", "confirm", confirm},
    {"POST", "action", act},
};

void console_sink_page(struct console *c, const char *rest)
{
    char name[128] = "", what[16] = "";
    if (sscanf(rest, "%127[^/]/%15s", name, what) != 2) {
        cpage_message(c, 404, "Not found", "No such page.", "/console/queues", "Queues");
        return;
    }
    cpage_by_verb(c, sink_pages, sizeof sink_pages / sizeof sink_pages[0], name, what, "/console/queues", "Queues");
}
