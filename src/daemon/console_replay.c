/* The console's replay page: the operator names a candidate rules directory on the daemon's
 * machine (and optionally a start date, an offer and what ctx.http gets), the daemon replays the
 * recorded rule calls against it (engine_replay: no side effects) and shows per offer and handler
 * how many decisions are the same and how many differ, then each difference. GET only shows
 * the form; the replay runs on the form's POST (CSRF-checked by console.c like every form). */
#include "daemon/console_internal.h"
#include "daemon/daemon.h"

#include "core/config.h"
#include "core/err.h"
#include "core/httpd.h"
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CANDIDATE_MAX 1024
#define PROBLEMS_MAX 4096

struct replay_form {
    char *candidate, *since, *offer, *http; /* as typed (malloc'd or NULL) */
    struct replay_options ro;
    char error[512];
};

static void form_free(struct replay_form *f)
{
    free(f->candidate);
    free(f->since);
    free(f->offer);
    free(f->http);
}

static void field(struct console *c, const char *label, const char *name, const char *type, const char *value,
                  const char *hint)
{
    cpage_raw(c, "<label>%s <input type=\"%s\" name=\"%s\" value=\"", label, type, name);
    cpage_text(c, value ? value : "");
    cpage_raw(c, "\"%s></label>", !strcmp(name, "candidate") ? " size=\"60\" required" : "");
    if (hint)
        cpage_raw(c, "<span class=\"muted\">%s</span>", hint);
}

static void show_form(struct console *c, const struct replay_form *f)
{
    int refuse = f->http && !strcmp(f->http, "refuse");
    cpage_raw(c, "<form method=\"post\" action=\"/console/replay\" class=\"card\">\n");
    cpage_csrf(c);
    field(c, "Candidate rules directory", "candidate", "text", f->candidate,
          "A directory on the daemon's machine, e.g. /etc/saasd/rules-next.");
    cpage_raw(c, "<div class=\"filters\">");
    field(c, "Since", "since", "date", f->since, NULL);
    field(c, "Offer", "offer", "text", f->offer, NULL);
    cpage_raw(c, "<label>ctx.http <select name=\"http\"><option value=\"recorded\"%s>answered from the record</option>"
                 "<option value=\"refuse\"%s>refused</option></select></label></div>\n",
              refuse ? "" : " selected", refuse ? " selected" : "");
    cpage_raw(c, "<button type=\"submit\">Replay</button> <span class=\"muted\">Runs the candidate against the recorded "
                 "inputs of past decisions. Nothing is changed, nothing is sent.</span></form>\n");
}

/* 1 when id can be an offer id (1..128 of [A-Za-z0-9._-]). */
static int offer_ok(const char *id)
{
    size_t n = strlen(id);
    return n >= 1 && n <= 128 &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Read and check the POSTed form into f; 0, or SAASD_EINVAL with f->error set. */
static int read_form(struct console *c, struct replay_form *f)
{
    httpd_form_value(c->req, "candidate", &f->candidate);
    httpd_form_value(c->req, "since", &f->since);
    httpd_form_value(c->req, "offer", &f->offer);
    httpd_form_value(c->req, "http", &f->http);
    struct stat st;
    struct tm tm = {0};
    const char *end = f->since && *f->since ? strptime(f->since, "%Y-%m-%d", &tm) : NULL;
    f->ro = (struct replay_options){f->candidate, 0, f->offer && *f->offer ? f->offer : NULL, c->d->cfg->rule_cpu_ms,
                                    c->d->cfg->rule_memory, ENGINE_HTTP_RECORDED};
    if (!f->candidate || f->candidate[0] != '/' || strlen(f->candidate) > CANDIDATE_MAX)
        snprintf(f->error, sizeof f->error, "The candidate must be an absolute path on the daemon's machine.");
    else if (stat(f->candidate, &st) != 0 || !S_ISDIR(st.st_mode))
        snprintf(f->error, sizeof f->error, "The candidate is not a directory the daemon can read.");
    else if (f->since && *f->since && (!end || *end))
        snprintf(f->error, sizeof f->error, "Since must be a date (YYYY-MM-DD).");
    else if (f->ro.offer && !offer_ok(f->ro.offer))
        snprintf(f->error, sizeof f->error, "That is not an offer id (letters, digits, '.', '_', '-').");
    else if (engine_http_mode_from_name(f->http ? f->http : "recorded", &f->ro.http_mode) != 0)
        snprintf(f->error, sizeof f->error, "ctx.http must be answered from the record or refused.");
    else
        f->ro.since_ms = f->since && *f->since ? (long long)timegm(&tm) * 1000 : 0;
    return f->error[0] ? SAASD_EINVAL : 0;
}

static void keep_problem(void *arg, const char *p)
{
    char *buf = arg;
    size_t n = strlen(buf);
    snprintf(buf + n, PROBLEMS_MAX - n, "%s\n", p);
}

static void groups_table(struct console *c, json_t *rep)
{
    const char *group;
    json_t *g;
    int rows = 0;
    cpage_raw(c, "<h2>Per offer and handler</h2>\n<table><tr><th>Offer and handler</th><th class=\"num\">Same</th>"
                 "<th class=\"num\">Differ</th></tr>\n");
    json_object_foreach(json_object_get(rep, "groups"), group, g) {
        long long differ = json_integer_value(json_object_get(g, "differ"));
        cpage_raw(c, "<tr>");
        cpage_td(c, group);
        cpage_raw(c, "<td class=\"num\">%lld</td><td class=\"num\">%s%lld%s</td></tr>\n",
                  (long long)json_integer_value(json_object_get(g, "same")), differ ? "<span class=\"tag drift\">" : "",
                  differ, differ ? "</span>" : "");
        rows++;
    }
    cpage_table_end(c, rows, 3);
}

static void sha_cell(struct console *c, const char *sha)
{
    char short_sha[13];
    snprintf(short_sha, sizeof short_sha, "%s", sha ? sha : "");
    cpage_raw(c, "<td class=\"mono\" title=\"");
    cpage_text(c, sha);
    cpage_raw(c, "\">");
    cpage_text(c, short_sha);
    cpage_raw(c, "</td>");
}

/* A decision as compact JSON, keys sorted, so old and new read side by side. */
static void decision_cell(struct console *c, json_t *decision)
{
    char *text = decision ? json_dumps(decision, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    cpage_raw(c, "<td class=\"mono\">");
    cpage_text(c, text ? text : "(none)");
    cpage_raw(c, "</td>");
    free(text);
}

static void differences_table(struct console *c, json_t *rep)
{
    size_t i, j;
    json_t *d, *t;
    cpage_raw(c, "<h2>Differences</h2>\n<table><tr><th>Subscription</th><th>Event</th><th>Offer and handler</th>"
                 "<th>Old decision</th><th>New decision</th><th>Old rule</th><th>New rule</th></tr>\n");
    json_array_foreach(json_object_get(rep, "differences"), i, d) {
        cpage_raw(c, "<tr>");
        cpage_sub_cell(c, cj_str(d, "subscription", NULL));
        const char *ev = cj_str(d, "event", NULL);
        cpage_td(c, ev && *ev ? ev : "-"); /* provisions have no operation: the landing page's confirmation */
        cpage_td(c, cj_str(d, "group", NULL));
        decision_cell(c, json_object_get(d, "old"));
        decision_cell(c, json_object_get(d, "new"));
        sha_cell(c, cj_str(d, "old_sha256", NULL));
        sha_cell(c, cj_str(d, "new_sha256", NULL));
        cpage_raw(c, "</tr>\n");
        json_array_foreach(json_object_get(d, "http_refused"), j, t) {
            cpage_raw(c, "<tr><td></td><td colspan=\"6\" class=\"muted\">ctx.http refused: ");
            cpage_text(c, json_string_value(t));
            cpage_raw(c, "</td></tr>\n");
        }
    }
    cpage_table_end(c, json_array_size(json_object_get(rep, "differences")) > 0, 7);
}

static void show_report(struct console *c, json_t *rep)
{
    double secs = json_number_value(json_object_get(rep, "seconds"));
    long long n = json_integer_value(json_object_get(rep, "calls")), differ = json_integer_value(json_object_get(rep, "differ"));
    cpage_raw(c, "<p class=\"flash %s\">%lld decisions replayed, %lld differ.</p>\n", differ ? "bad" : "good", n, differ);
    cpage_raw(c, "<div class=\"grid\"><div class=\"card\"><div class=\"muted\">Decisions replayed</div><div class=\"stat\">"
                 "%lld</div></div><div class=\"card\"><div class=\"muted\">Differ</div><div class=\"stat\">%lld</div></div>"
                 "<div class=\"card\"><div class=\"muted\">ctx.http calls refused (http: %s)</div><div class=\"stat\">%lld"
                 "</div></div><div class=\"card\"><div class=\"muted\">Time</div><div class=\"stat\">%.2f s, %.0f/s</div>"
                 "</div></div>\n",
              n, differ, json_string_value(json_object_get(rep, "http")),
              (long long)json_integer_value(json_object_get(rep, "http_refused")), secs, secs > 0 ? (double)n / secs : 0.0);
    groups_table(c, rep);
    differences_table(c, rep);
}

static void run(struct console *c)
{
    struct replay_form f = {0};
    char problems[PROBLEMS_MAX] = "";
    json_t *rep = NULL;
    int rc = read_form(c, &f);
    if (!rc && (rc = engine_check_dir(f.candidate, NULL, keep_problem, problems)) != 0)
        snprintf(f.error, sizeof f.error, "The candidate's rule files do not load; nothing was replayed.");
    if (!rc && (rc = engine_replay(c->d->store, &f.ro, &rep)) != 0)
        snprintf(f.error, sizeof f.error, "The replay failed: %s.", saasd_strerror(rc));
    cpage_begin(c, "Replay", "replay");
    if (rc) {
        cpage_raw(c, "<p class=\"flash bad\">");
        cpage_text(c, f.error);
        cpage_raw(c, "</p>\n");
    }
    if (problems[0]) {
        cpage_raw(c, "<pre class=\"card mono\">");
        cpage_text(c, problems);
        cpage_raw(c, "</pre>\n");
    }
    show_form(c, &f);
    if (rep)
        show_report(c, rep);
    json_decref(rep);
    form_free(&f);
    cpage_end(c, rc == SAASD_EINVAL || rc == SAASD_ERULE || rc == SAASD_EIO ? 400 : rc ? 500 : 200);
}

void console_replay(struct console *c, const char *rest)
{
    (void)rest;
    const char *method = httpd_method(c->req);
    if (!strcmp(method, "POST")) {
        run(c);
        return;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        cpage_message(c, 405, "Not allowed", "That method is not allowed here.", "/console/replay", "Replay");
        return;
    }
    struct replay_form f = {0};
    cpage_begin(c, "Replay", "replay");
    cpage_raw(c, "<p class=\"muted\">Shadow replay: what would candidate rule files have decided for the calls recorded "
                 "with past decisions (subscription, event, clock, ctx.store reads and ctx.http answers as the rule saw "
                 "them)? The same as <code>saasd rules replay</code>.</p>\n");
    show_form(c, &f);
    cpage_end(c, 200);
}
