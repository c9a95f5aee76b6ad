/* The operator sees and cancels rule timers (ctx.timer) through the admin API and the CLI:
 * GET /admin/timers lists every timer in due order with its data, pages with a cursor without
 * repeats, filters by subscription, offer and due time; GET /admin/subscriptions/{id} carries the
 * subscription's timers; POST /admin/timers/{sub}/{name}/cancel drops one (it never fires, the
 * audit trail says an operator did it), 404 for an unknown timer, a GET cancels nothing, and
 * nothing answers without the admin key. In-process daemon against the in-process emulator. */
#include "it_support.h"

#include "daemon/timers.h"

#include <sys/wait.h>

/* Two timers per subscription, due after 1000 s per seat (+500 s for the second). */
static const char RULE[] = "local rule = {}\n"
                           "function rule.provision(sub, ctx)\n"
                           "  ctx.timer.after(sub.quantity * 1000, 'trial-end', { seats = sub.quantity })\n"
                           "  ctx.timer.after(sub.quantity * 1000 + 500, 'nudge')\n"
                           "  return { action = 'activate' }\n"
                           "end\n"
                           "function rule.timer(sub, name, data, ctx)\n"
                           "  ctx.store.put('fired:' .. sub.id .. ':' .. name, '1')\n"
                           "end\n"
                           "return rule\n";

static struct daemon *d;

static json_t *timers_page(const char *query, long *st)
{
    char path[1200];
    snprintf(path, sizeof path, "/admin/timers%s", query);
    return it_admin("GET", path, NULL, st);
}

/* "sub/name" of each timer of a page, concatenated with ';' into out. */
static void names_of(json_t *page, char *out, size_t size)
{
    size_t i, o = 0;
    json_t *t;
    out[0] = 0;
    json_array_foreach(json_object_get(page, "timers"), i, t) {
        o += (size_t)snprintf(out + o, size - o, "%s/%s;", it_str(t, "subscription"), it_str(t, "name"));
        o = o < size ? o : size - 1;
    }
}

static int fired(const char *offer, const char *sub, const char *name)
{
    char path[400];
    long st = 0;
    snprintf(path, sizeof path, "/admin/offers/%s/store/fired:%s:%s", offer, sub, name);
    json_decref(it_admin("GET", path, NULL, &st));
    return st == 200;
}

static int due_in(json_t *t, long long lo, long long hi)
{
    long long at = json_integer_value(json_object_get(t, "due_s"));
    char want[40];
    time_t tt = (time_t)at;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return at >= lo && at <= hi && !strcmp(it_str(t, "due"), want);
}

/* Walk every page of limit=1: the "sub/name;" list in order, and whether a cursor came back twice. */
static int walk(char *seen, size_t size, int *pages)
{
    char cursor[400] = "", query[600], one[200];
    int repeat = 0;
    seen[0] = 0;
    for (*pages = 0; *pages < 10; (*pages)++) {
        long st = 0;
        snprintf(query, sizeof query, "?limit=1%s%s", cursor[0] ? "&cursor=" : "", cursor);
        json_t *p = timers_page(query, &st);
        names_of(p, one, sizeof one);
        if (*one && strstr(seen, one))
            repeat = 1;
        strncat(seen, one, size - strlen(seen) - 1);
        const char *next = json_string_value(json_object_get(p, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(p);
        if (st != 200 || !next)
            break;
    }
    (*pages)++;
    return !repeat;
}

static void list_and_filter(const char *a, const char *b, long long t0, long long t1)
{
    long st = 0;
    char seen[1200], want[1200];
    json_t *all = timers_page("", &st), *ts = json_object_get(all, "timers");
    json_t *t0j = json_array_get(ts, 0), *data = json_object_get(t0j, "data");
    snprintf(want, sizeof want, "%s/trial-end;%s/nudge;%s/trial-end;%s/nudge;", a, a, b, b);
    names_of(all, seen, sizeof seen);
    CHECK(st == 200 && !strcmp(seen, want) && json_is_null(json_object_get(all, "next_cursor")),
          "GET /admin/timers lists the four timers of the two subscriptions in due order, on one page");
    CHECK(due_in(t0j, t0 + 2000, t1 + 2000) && due_in(json_array_get(ts, 3), t0 + 3500, t1 + 3500) &&
              json_integer_value(json_object_get(data, "seats")) == 2 && !strcmp(it_str(t0j, "offer"), "it-tm-a") &&
              json_is_null(json_object_get(json_array_get(ts, 1), "data")) &&
              json_integer_value(json_object_get(t0j, "attempts")) == 0,
          "each timer shows its offer, its due time (RFC 3339 UTC and epoch s) and the data the rule gave");
    json_decref(all);

    int pages = 0, fresh = walk(seen, sizeof seen, &pages);
    CHECK(fresh && pages == 4 && !strcmp(seen, want), "limit=1 walks the four timers page by page, none twice");

    char q[300];
    snprintf(q, sizeof q, "?sub=%s", a);
    json_t *p = timers_page(q, &st);
    names_of(p, seen, sizeof seen);
    snprintf(want, sizeof want, "%s/trial-end;%s/nudge;", a, a);
    json_decref(p);
    p = timers_page("?offer=IT-TM-B", &st);
    char by_offer[600];
    names_of(p, by_offer, sizeof by_offer);
    json_decref(p);
    CHECK(!strcmp(seen, want) && by_offer[0] && strstr(by_offer, b) && !strstr(by_offer, a),
          "sub= lists only that subscription's timers, offer= only that offer's (case-insensitive)");

    snprintf(q, sizeof q, "?due_before=%lld", (t1 + 2200) * 1000);
    p = timers_page(q, &st);
    size_t n_ms = json_array_size(json_object_get(p, "timers"));
    json_decref(p);
    char iso[40];
    time_t cut = (time_t)(t1 + 2600);
    struct tm tm;
    gmtime_r(&cut, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(q, sizeof q, "?due_before=%s", iso);
    p = timers_page(q, &st);
    CHECK(n_ms == 1 && json_array_size(json_object_get(p, "timers")) == 2,
          "due_before (epoch ms or RFC 3339) lists only the timers due before it");
    json_decref(p);

    long bad_limit = 0, bad_cursor = 0, bad_time = 0;
    json_decref(timers_page("?limit=0", &bad_limit));
    json_decref(timers_page("?cursor=zz", &bad_cursor));
    json_decref(timers_page("?due_before=tomorrow", &bad_time));
    CHECK(bad_limit == 400 && bad_cursor == 400 && bad_time == 400,
          "a bad limit, cursor or due_before is a 400 that says so");
}

static void cancel(const char *a, const char *b)
{
    char path[400], url[600];
    long st = 0, get_st = 0, nokey_list = 0, nokey_cancel = 0;
    snprintf(path, sizeof path, "/admin/subscriptions/%s", a);
    json_t *show = it_admin("GET", path, NULL, &st);
    CHECK(st == 200 && json_array_size(json_object_get(show, "timers")) == 2 && json_object_get(show, "local"),
          "GET /admin/subscriptions/{id} carries the subscription's timers beside its record");
    json_decref(show);

    snprintf(path, sizeof path, "/admin/timers/%s/trial-end/cancel", a);
    json_decref(it_admin("GET", path, NULL, &get_st));
    snprintf(url, sizeof url, "%s%s", it_admin_url, path);
    json_decref(it_call("POST", url, NULL, NULL, &nokey_cancel, NULL));
    snprintf(url, sizeof url, "%s/admin/timers", it_admin_url);
    json_decref(it_call("GET", url, NULL, NULL, &nokey_list, NULL));
    json_t *still = NULL;
    CHECK(get_st == 405 && timers_get(d, a, "trial-end", &still) == 0, "a GET on the cancel path cancels nothing (405)");
    json_decref(still);
    CHECK(nokey_cancel == 401 && nokey_list == 401 && timers_get(d, a, "trial-end", &still) == 0,
          "without the admin key the list and the cancel answer 401 and the timer stays");
    json_decref(still);

    json_t *r = it_admin("POST", path, NULL, &st);
    CHECK(st == 200 && !strcmp(it_str(r, "result"), "cancelled") &&
              !strcmp(it_str(json_object_get(r, "timer"), "name"), "trial-end") &&
              timers_get(d, a, "trial-end", &still) == SAASD_ENOTFOUND,
          "POST /admin/timers/{sub}/{name}/cancel drops the timer");
    json_decref(r);
    json_t *hist = it_history(a), *e;
    size_t i;
    int audited = 0;
    json_array_foreach(hist, i, e) audited |= !strcmp(it_str(e, "action"), "Timer") &&
                                              !strcmp(it_str(e, "decision"), "cancelled") &&
                                              strstr(it_str(e, "detail"), "trial-end") &&
                                              strstr(it_str(e, "detail"), "operator");
    json_decref(hist);
    CHECK(audited, "the audit trail records that an operator cancelled the timer");

    json_decref(it_admin("POST", path, NULL, &st));
    long unknown = 0;
    snprintf(path, sizeof path, "/admin/timers/%s/no-such-timer/cancel", b);
    json_decref(it_admin("POST", path, NULL, &unknown));
    CHECK(st == 404 && unknown == 404, "cancelling a timer that is not there (any more) is a 404");
}

static int run_cli(const char *conf, const char *args)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "%s/saasd admin --config %s %s", build, conf, args);
    return WEXITSTATUS(system(cmd));
}

static void cli(const char *conf, const char *dir, const char *b)
{
    char args[800];
    snprintf(args, sizeof args, "timers --offer it-tm-b --limit 1 >%s/cli.out 2>&1", dir);
    int listed = run_cli(conf, args) == 0;
    snprintf(args, sizeof args, "grep -q '\"next_cursor\": \"' %s/cli.out && grep -q '%s' %s/cli.out", dir, b, dir);
    CHECK(listed && WEXITSTATUS(system(args)) == 0, "saasd admin timers --offer --limit prints one page with its cursor");
    snprintf(args, sizeof args, "timer-cancel %s nudge >/dev/null 2>&1", b);
    int cancelled = run_cli(conf, args) == 0;
    json_t *t = NULL;
    CHECK(cancelled && timers_get(d, b, "nudge", &t) == SAASD_ENOTFOUND, "saasd admin timer-cancel SUB NAME cancels it");
    json_decref(t);
    snprintf(args, sizeof args, "timer-cancel %s nudge >/dev/null 2>&1", b);
    CHECK(run_cli(conf, args) == 1, "saasd admin timer-cancel of a timer that is not there exits 1");
    CHECK(run_cli(conf, "rules --sub x >/dev/null 2>&1") == 2, "the timers options are refused on other verbs");
}

int main(void)
{
    char dir[256], rules[512], conf[600];
    struct emu *emu = it_setup("timers-admin", dir, rules);
    if (!emu)
        return CHECK_DONE();
    it_write_rule(rules, "it-tm-a", RULE);
    it_write_rule(rules, "it-tm-b", RULE);
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, it_free_port(), it_free_port(), NULL);
    if (!(d = it_start_daemon(conf)))
        return CHECK_DONE();
    it_offer("it-tm-a");
    it_offer("it-tm-b");
    char a[64], b[64];
    long long t0 = (long long)time(NULL);
    it_buy_and_land("it-tm-a", 2, a, sizeof a);
    it_buy_and_land("it-tm-b", 3, b, sizeof b);
    long long t1 = (long long)time(NULL);

    list_and_filter(a, b, t0, t1);
    cancel(a, b);

    int n = 0;
    timers_fire_due(d, t1 + 100000, &n);
    CHECK(n == 3 && !fired("it-tm-a", a, "trial-end") && fired("it-tm-a", a, "nudge") && fired("it-tm-b", b, "trial-end"),
          "the cancelled timer never fires, the others do (fired all at once, long after their time)");

    it_buy_and_land("it-tm-b", 4, b, sizeof b);
    cli(conf, dir, b);

    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
