/* Operator guard rails on a running daemon (in-process, against the in-process emulator):
 * an offer without its own rule file is not decided by the accept-all default; one daemon per
 * data directory and per port, with errors that name the pid, address, port and reason;
 * /readyz never says the token is ok before one was fetched; usage of a subscription that is
 * not Subscribed is refused 409 with why; admin key refusals say which mistake; `admin rules`
 * and `rules check` show the offer -> file table, the last reload error and drift on disk. */
#include "it_support.h"
#include "prom_check.h"

#include <sys/wait.h>

/* Run "$BUILD/saasd ARGS" with stderr and stdout into out; returns the exit status. */
static int run_saasd(const char *args, char *out, size_t size)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "timeout 60 %s/saasd %s 2>&1", build, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = 0;
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *public_get(const char *path, long *st)
{
    char url[600];
    snprintf(url, sizeof url, "%s%s", it_public_url, path);
    return it_call("GET", url, NULL, NULL, st, NULL);
}

static const char *accept_all_but_big =
    "local rule = {}\n"
    "function rule.provision(sub, ctx)\n"
    "  if (sub.quantity or 0) > 100 then return { action = 'reject', message = 'too many seats' } end\n"
    "  return { action = 'activate' }\n"
    "end\n"
    "return rule\n";

static void second_daemon_refused(const char *dir, unsigned short public_port, unsigned short admin_port)
{
    char conf[600], other[600], out[8192], args[800], want[128];
    /* the same data directory, other ports */
    snprintf(conf, sizeof conf, "%s/same-data.conf", dir);
    it_write_config(conf, dir, it_free_port(), it_free_port(), "");
    snprintf(args, sizeof args, "serve --config %s", conf);
    int st = run_saasd(args, out, sizeof out);
    snprintf(want, sizeof want, "pid %ld", (long)getpid());
    CHECK(st == 1 && strstr(out, "is in use by another saasd") && strstr(out, want) && strstr(out, dir),
          "a second daemon on the same data directory is refused, naming the directory and the other pid");
    if (st != 1 || !strstr(out, want))
        printf("# status %d: %.800s\n", st, out);

    /* another data directory, the first daemon's public port */
    snprintf(other, sizeof other, "%s/other", dir);
    mkdir(other, 0700);
    snprintf(conf, sizeof conf, "%s/same-port.conf", other);
    it_write_config(conf, other, public_port, it_free_port(), "");
    char rules[700];
    snprintf(rules, sizeof rules, "%s/rules", other);
    mkdir(rules, 0700);
    snprintf(args, sizeof args, "serve --config %s", conf);
    st = run_saasd(args, out, sizeof out);
    snprintf(want, sizeof want, "port=%u", public_port);
    CHECK(st == 1 && strstr(out, "cannot listen") && strstr(out, "addr=127.0.0.1") && strstr(out, want) &&
              strstr(out, "Address already in use"),
          "a daemon on a port another daemon listens on fails, naming address, port and the system's reason");
    if (st != 1 || !strstr(out, want))
        printf("# status %d: %.800s\n", st, out);
    (void)admin_port;
}

static void unknown_offer_pending(void)
{
    /* the ISV saved its rule as acme_analytics.lua: the offer acme-analytics has no file */
    char sub[64];
    it_offer("acme-analytics");
    char *landing = it_purchase("acme-analytics", 50, sub, sizeof sub);
    long st;
    st = it_land(landing, NULL); /* sign in, confirm */
    free(landing);
    json_t *ms = it_ms_sub(sub), *local = it_local(sub);
    CHECK(strcmp(it_str(ms, "saasSubscriptionStatus"), "Subscribed") != 0 &&
              strcmp(it_str(local, "status"), "Subscribed") != 0,
          "a purchase of an offer without its own rule file is not activated by the accept-all default");
    json_t *hist = it_history(sub), *last = json_array_get(hist, json_array_size(hist) - 1);
    CHECK(!strcmp(it_str(last, "decision"), "pending") && strstr(it_str(last, "rule_file"), "no rule file for offer"),
          "its provision is held pending and the audit says there is no rule file for the offer");
    if (!strstr(it_str(last, "rule_file"), "no rule file for offer"))
        printf("# history: %s\n", json_dumps(hist, JSON_COMPACT));
    json_decref(hist);
    json_decref(ms);
    json_decref(local);
    char *metrics = it_metrics_text(NULL);
    CHECK(metrics && strstr(metrics, "saasd_rule_unknown_offer_total{offer=\"acme-analytics\",handler=\"provision\"} 1"),
          "the unknown offer is counted in saasd_rule_unknown_offer_total");
    free(metrics);
    char path[256];
    snprintf(path, sizeof path, "/admin/subscriptions/%s/activate", sub);
    json_decref(it_admin("POST", path, NULL, &st));
    ms = it_ms_sub(sub);
    CHECK(st == 200 && !strcmp(it_str(ms, "saasSubscriptionStatus"), "Subscribed"),
          "an operator activates the held purchase with admin activate");
    json_decref(ms);
}

static void usage_of_suspended(struct daemon *d, const char *sub)
{
    char *op = it_customer(sub, "suspend", NULL);
    it_wait_op(op, 20000);
    free(op);
    it_settle(d->store, 20000);
    long st;
    json_t *r = it_admin("POST", "/admin/usage",
                         json_pack("{s:s, s:s, s:i}", "subscriptionId", sub, "dimension", "api", "quantity", 5), &st);
    CHECK(st == 409 && strstr(it_str(r, "message"), "Suspended") && strstr(it_str(r, "message"), "not Subscribed") &&
              json_is_false(json_object_get(r, "retryable")),
          "usage of a Suspended subscription is refused 409, says why and that retrying will not help");
    if (st != 409)
        printf("# HTTP %ld %s\n", st, r ? it_str(r, "message") : "");
    json_decref(r);
}

static void admin_key_messages(void)
{
    char url[600];
    long st;
    char *raw = NULL;
    snprintf(url, sizeof url, "%s/admin/subscriptions", it_admin_url);
    json_decref(it_call("GET", url, NULL, NULL, &st, &raw));
    CHECK(st == 401 && strstr(raw, "no admin key"), "a request without a key is told there is no admin key");
    free(raw);
    json_decref(it_call("GET", url, NULL, "not-the-key", &st, &raw));
    CHECK(st == 401 && strstr(raw, "wrong admin key"), "a request with another key is told the admin key is wrong");
    free(raw);
}

static void admin_rules_report(const char *rules, const char *conf)
{
    char path[700], out[16384], args[800];
    snprintf(path, sizeof path, "%s/broken.lua", rules);
    it_write_file(path, "local rule = {}\nfunction rule.provision(sub, ctx)\n  return { action = 'activate' }\nend\n"
                        "return rule +\n");
    long st;
    json_decref(it_admin("POST", "/admin/rules/reload", NULL, &st));
    json_t *r = it_admin("GET", "/admin/rules", NULL, &st);
    json_t *lr = json_object_get(r, "last_reload");
    const char *problem = json_string_value(json_array_get(json_object_get(lr, "problems"), 0));
    CHECK(st == 200 && strncmp(it_str(lr, "result"), "failed", 6) == 0 && problem && strstr(problem, "broken.lua:6:"),
          "admin rules shows the failed reload with file:line: message");
    CHECK(json_is_true(json_object_get(r, "files_on_disk_differ")),
          "admin rules says the files on disk differ from the generation serving");
    int table = 0, warned = 0;
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(r, "offers"), i, row) table += !strcmp(it_str(row, "offer"), "guard-seats");
    json_array_foreach(json_object_get(r, "warnings"), i, row) warned +=
        strstr(json_string_value(row), "acme_analytics.lua") && strstr(json_string_value(row), "acme-analytics.lua");
    CHECK(table == 1 && warned == 1, "admin rules shows the offer -> file table and the misnamed file");
    if (!problem || !strstr(problem, "broken.lua:6:"))
        printf("# admin rules: %s\n", json_dumps(r, JSON_COMPACT));
    json_decref(r);
    unlink(path);

    snprintf(args, sizeof args, "rules check --config %s", conf);
    int rc = run_saasd(args, out, sizeof out);
    CHECK(strstr(out, "guard-seats") && strstr(out, "offer -> rule file") &&
              strstr(out, "rename it to acme-analytics.lua"),
          "rules check prints the offer -> file table and suggests acme-analytics.lua for acme_analytics.lua");
    CHECK(strstr(out, "offer 'acme-analytics' has subscriptions in the store but no rule file"),
          "rules check warns about an offer in the store without a rule file");
    CHECK(rc == 1 && strstr(out, "acme_analytics.lua:3: undeclared global") && strstr(out, "'print'"),
          "rules check reports a rule reading the undeclared global print with file:line");
    if (rc != 1 || !strstr(out, "undeclared"))
        printf("# rules check (%d): %.2000s\n", rc, out);
}

/* Before any event: the series alerts are written on exist at 0. */
static void zero_series_from_start(void)
{
    char *m = it_metrics_text(NULL);
    static const char *const zero[] = {"saasd_drift_total{kind=\"status\"} 0\n",
                                       "saasd_drift_total{kind=\"usage_mismatch\"} 0\n",
                                       "saasd_outbox_retries_total 0\n",
                                       "saasd_token_refresh_total{outcome=\"failed\"} 0\n",
                                       "saasd_webhooks_total{action=\"-\",outcome=\"unauthorized\"} 0\n",
                                       "saasd_usage_events_total{outcome=\"failed\"} 0\n",
                                       "saasd_rule_reloads_total{result=\"failed\"} 0\n"};
    int missing = 0;
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
        if (!m || !strstr(m, zero[i])) {
            printf("# missing at start: %s", zero[i]);
            missing++;
        }
    CHECK(missing == 0, "drift, retry, failure and refusal series are exported at 0 before any event");
    free(m);
}

/* The rest of a subscription's life, so /metrics has every family with data. */
static void more_flows(struct daemon *d, const char *sub)
{
    static const char *const verbs[] = {"reinstate", "change-plan", "change-quantity", "unsubscribe"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        json_t *body = i == 1 ? json_pack("{s:s}", "planId", "business") : i == 2 ? json_pack("{s:i}", "quantity", 3) : NULL;
        char *op = it_customer(sub, verbs[i], body);
        it_wait_op(op, 20000);
        free(op);
        it_settle(d->store, 20000);
        if (i == 2) {
            long st;
            json_decref(it_admin("POST", "/admin/reconcile", NULL, &st));
            json_decref(it_admin("POST", "/admin/usage/flush", json_pack("{s:b}", "ignore_grace", 1), &st));
        }
    }
    char url[600];
    long st;
    snprintf(url, sizeof url, "%s/webhook", it_public_url);
    json_decref(it_call("POST", url, json_pack("{s:s}", "action", "Suspend"), NULL, &st, NULL));
}

static void metrics_pass_promtool_rules(void)
{
    char *m = it_metrics_text(NULL);
    struct prom_state *ps = calloc(1, sizeof *ps);
    /* what /metrics used to serve: the checker must refuse each of these */
    static const char *const bad[] = {
        "# TYPE saasd_store_batches_total gauge\nsaasd_store_batches_total 3\n",
        "# TYPE saasd_busy_total counter\nsaasd_busy_total 0\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1\n# HELP b b\n# TYPE b gauge\nb 1\na_total{x=\"1\"} 2\n",
        "# HELP h_seconds x\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"1\"} 1\nh_seconds_sum{} x\n",
    };
    int caught = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        caught += prom_check(bad[i], ps) > 0;
    CHECK(caught == 4, "the exposition checker refuses gauge-typed totals, missing HELP, split families, bad values");
    int problems = m ? prom_check(m, ps) : -1;
    CHECK(problems == 0, "/metrics after every flow passes the exposition-format checks promtool makes");
    CHECK(m && !strstr(m, "(undocumented)"), "every metric family has a HELP text of its own");
    CHECK(m && !strstr(m, "saasd_token_refreshes_total") && strstr(m, "saasd_token_refresh_total{outcome=\"ok\"}"),
          "token refreshes are one family, saasd_token_refresh_total{outcome}");
    CHECK(m && strstr(m, "# TYPE saasd_jwt_verifications_total counter") &&
              strstr(m, "# TYPE saasd_store_batches_total counter"),
          "totals a component keeps itself are typed counter");
    free(ps);
    free(m);
}

int main(void)
{
    char dir[256], rules[512], path[700], conf[600];
    struct emu *emu = it_setup("guards", dir, rules);
    if (!emu)
        return CHECK_DONE();
    snprintf(path, sizeof path, "%s/guard-seats.lua", rules);
    it_write_file(path, accept_all_but_big);
    snprintf(path, sizeof path, "%s/acme_analytics.lua", rules);
    it_write_file(path, "local rule = {}\nfunction rule.provision(sub, ctx)\n  print(sub.id)\n"
                        "  return { action = 'reject', message = 'no' }\nend\nreturn rule\n");
    unsigned short public_port = it_free_port(), admin_port = it_free_port();
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, public_port, admin_port, "metering = { interval = 0 }\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();

    long st;
    json_t *r = public_get("/readyz", &st);
    CHECK(st == 200 && !strcmp(it_str(r, "token"), "unknown") && json_is_true(json_object_get(r, "rules_loaded")),
          "/readyz before any token fetch reports the token unknown, never ok");
    json_decref(r);
    r = public_get("/healthz", &st);
    CHECK(st == 200 && json_is_true(json_object_get(r, "store_writable")), "/healthz reports a writable store");
    json_decref(r);

    zero_series_from_start();
    second_daemon_refused(dir, public_port, admin_port);
    unknown_offer_pending();

    char sub[64];
    it_offer("guard-seats");
    char *landing = it_purchase("guard-seats", 5, sub, sizeof sub);
    st = it_land(landing, NULL); /* sign in, confirm */
    free(landing);
    json_t *local = it_local(sub);
    CHECK(!strcmp(it_str(local, "status"), "Subscribed"), "an offer with its own rule file is decided by it");
    json_decref(local);
    r = public_get("/readyz", &st);
    CHECK(st == 200 && !strcmp(it_str(r, "token"), "ok"), "/readyz reports the token ok once one was fetched");
    json_decref(r);

    usage_of_suspended(d, sub);
    admin_key_messages();
    admin_rules_report(rules, conf);
    more_flows(d, sub);
    metrics_pass_promtool_rules();

    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    check_rm_rf(dir);
    return CHECK_DONE();
}
