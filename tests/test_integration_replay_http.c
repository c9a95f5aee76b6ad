/* Shadow replay of a rule whose decision depends on ctx.http: the calls a decision made are
 * recorded with it (without secrets) and answered from that record during a replay, so the
 * replay needs no server (it is stopped first) and sends nothing; `http = refuse` refuses them
 * and the refusals show in the differences, as does a call the record does not have.
 * In-process daemon against the in-process emulator and a loopback "limit service". */
#include "it_support.h"

#include "core/httpd.h"
#include "core/store.h"
#include "engine/engine.h"

static const char RULE[] =
    "local rule = {}\n"
    "function rule.change_quantity(sub, change, ctx)\n"
    "  local resp, err = ctx.http.request{ method = 'POST', url = 'http://127.0.0.1:%d%s?api_key=url-secret-9',\n"
    "    headers = { Authorization = 'Bearer hdr-secret-123', ['X-Api-Key'] = 'key-secret-4' },\n"
    "    body = '{\"sub\":\"' .. sub.id .. '\",\"password\":\"body-secret-2\"}' }\n"
    "  if not resp then return { accept = false, reason = 'limit service: ' .. err } end\n"
    "  local max = ctx.json.decode(resp.body).max\n"
    "  if change.quantity > max then\n"
    "    return { accept = false, reason = 'over ' .. max .. ' (' .. tostring(resp.header('x-limit-source')) .. ')' }\n"
    "  end\n"
    "  return { accept = true }\n"
    "end\n"
    "return rule\n";

static const char *const SECRETS[] = {"url-secret-9", "hdr-secret-123", "key-secret-4", "body-secret-2",
                                      "resp-secret-7", "cookie-secret-5"};

static int hits;

static void limit_service(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    (void)arg;
    (void)req;
    __atomic_add_fetch(&hits, 1, __ATOMIC_SEQ_CST);
    httpd_set_body(res, 200, "application/json", "{\"max\":5,\"access_token\":\"resp-secret-7\"}");
    httpd_add_header(res, "X-Limit-Source", "billing");
    httpd_add_header(res, "Set-Cookie", "sid=cookie-secret-5");
}

static int append_audit(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    json_t *all = arg;
    json_array_append_new(all, json_stringn(val, vlen));
    return 0;
}

/* Every audit record, as stored (text). */
static char *audit_text(struct store *s)
{
    json_t *all = json_array();
    store_scan(s, STORE_AUDIT, NULL, 0, append_audit, all);
    char *text = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    return text;
}

static void change(const char *sub, int seats)
{
    char *id = it_customer(sub, "change-quantity", json_pack("{s:i}", "quantity", seats));
    it_wait_op(id, 10000);
    free(id);
}

static json_t *replay(struct store *s, const char *dir, enum engine_http_mode mode)
{
    json_t *rep = NULL;
    struct replay_options ro = {dir, 0, NULL, 2000, 0, mode};
    if (engine_replay(s, &ro, &rep) != 0)
        return NULL;
    return rep;
}

static long long num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* 1 when every difference lists a refused ctx.http call mentioning want. */
static int each_refused(json_t *rep, const char *want)
{
    size_t i;
    json_t *d;
    int ok = json_array_size(json_object_get(rep, "differences")) > 0;
    json_array_foreach(json_object_get(rep, "differences"), i, d) {
        const char *t = json_string_value(json_array_get(json_object_get(d, "http_refused"), 0));
        ok &= t && strstr(t, want) != NULL;
    }
    return ok;
}

int main(void)
{
    char dir[256], conf[512], rules[512], path[600], cand[600], extra[800];
    struct emu *emu = it_setup("replay-http", dir, rules);
    struct httpd_options ho = {0};
    struct httpd *svc = NULL;
    CHECK(emu && httpd_start(&ho, limit_service, NULL, &svc) == 0, "the emulator and a loopback limit service start");
    if (!emu || !svc)
        return CHECK_DONE();
    char text[sizeof RULE + 64];
    snprintf(text, sizeof text, RULE, httpd_port(svc), "/limit");
    snprintf(path, sizeof path, "%s/it-rh.lua", rules);
    it_write_file(path, text);
    snprintf(cand, sizeof cand, "%s/candidate", dir);
    mkdir(cand, 0700);
    snprintf(path, sizeof path, "%s/it-rh.lua", cand);
    snprintf(text, sizeof text, RULE, httpd_port(svc), "/other-limit"); /* a call the record does not have */
    it_write_file(path, text);
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    char shadow[600];
    snprintf(shadow, sizeof shadow, "%s/shadow", dir); /* the same rule in shadow: it must agree */
    mkdir(shadow, 0700);
    snprintf(path, sizeof path, "%s/it-rh.lua", shadow);
    snprintf(text, sizeof text, RULE, httpd_port(svc), "/limit");
    it_write_file(path, text);
    snprintf(extra, sizeof extra,
             "rules = { dir = \"%s\", shadow_dir = \"%s\", cpu_ms = 1000, http_allow = { \"127.0.0.1\" } }\n",
             rules, shadow);
    it_write_config(conf, dir, 0, it_free_port(), extra);
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();
    it_offer("it-rh");
    char sub[64];
    CHECK(it_buy_and_land("it-rh", 3, sub, sizeof sub) == 200, "the subscription is activated");
    change(sub, 8); /* over the service's limit: refused */
    change(sub, 4); /* within it: accepted */
    it_settle(d->store, 10000);
    CHECK(hits == 2, "the rule asked the limit service once per seat change (the shadow sent nothing)");
    json_t *h = it_history(sub), *e;
    size_t k;
    int agreed = 0;
    json_array_foreach(h, k, e) agreed += !strcmp(it_str(e, "action"), "RuleCall") &&
                                          !strcmp(it_str(e, "handler"), "change_quantity") &&
                                          json_is_true(json_object_get(json_object_get(e, "shadow"), "same"));
    json_decref(h);
    CHECK(agreed == 2, "the shadow generation got the live calls' ctx.http answers and agreed with both decisions");
    json_t *ms = it_ms_sub(sub);
    CHECK(json_integer_value(json_object_get(ms, "quantity")) == 4, "the decisions followed the service's answer");
    json_decref(ms);

    char *audit = audit_text(d->store);
    CHECK(audit && strstr(audit, "url_sha256") && strstr(audit, "billing") && strstr(audit, "body_sha256"),
          "the ctx.http calls are recorded with the decisions (URL and body hashes, readable headers)");
    int leaked = 0;
    for (size_t i = 0; audit && i < sizeof SECRETS / sizeof SECRETS[0]; i++)
        if (strstr(audit, SECRETS[i])) {
            printf("# %s is in the audit records\n", SECRETS[i]);
            leaked = 1;
        }
    CHECK(audit && !leaked, "no Authorization or API key header, secret URL parameter, request body, secret response "
                            "field or cookie is recorded");
    free(audit);

    httpd_stop(svc); /* from here on the answers can only come from the record */
    json_t *rep = replay(d->store, rules, ENGINE_HTTP_RECORDED);
    CHECK(rep && num(rep, "calls") >= 3 && num(rep, "differ") == 0 && num(rep, "http_refused") == 0,
          "http recorded: the unchanged rule reproduces every decision with the service stopped");
    json_decref(rep);
    CHECK(hits == 2, "the replay sent no request");

    rep = replay(d->store, rules, ENGINE_HTTP_REFUSE);
    CHECK(rep && num(rep, "differ") == 2 && num(rep, "http_refused") == 2 && each_refused(rep, "refused during a replay"),
          "http refuse: both seat changes differ, each showing its refused ctx.http call");
    json_decref(rep);

    rep = replay(d->store, cand, ENGINE_HTTP_RECORDED);
    CHECK(rep && num(rep, "differ") == 2 && each_refused(rep, "no recorded answer for POST"),
          "a call to a URL the record does not have is refused, and the difference says so");
    json_decref(rep);

    long st = 0;
    json_t *api = it_admin("POST", "/admin/rules/replay", json_pack("{s:s, s:s}", "candidate", rules, "http", "refuse"), &st);
    CHECK(st == 200 && num(api, "differ") == 2 && !strcmp(it_str(api, "http"), "refuse"),
          "POST /admin/rules/replay takes \"http\": \"refuse\"");
    json_decref(api);
    api = it_admin("POST", "/admin/rules/replay", json_pack("{s:s}", "candidate", rules), &st);
    CHECK(st == 200 && num(api, "differ") == 0 && !strcmp(it_str(api, "http"), "recorded"),
          "POST /admin/rules/replay answers ctx.http from the record by default");
    json_decref(api);
    api = it_admin("POST", "/admin/rules/replay", json_pack("{s:s, s:s}", "candidate", rules, "http", "live"), &st);
    CHECK(st == 400, "POST /admin/rules/replay refuses an unknown http choice");
    json_decref(api);

    daemon_stop(d);
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "%s/saasd rules replay --config %s --candidate %s >/dev/null 2>&1", build, conf, rules);
    CHECK(WEXITSTATUS(system(cmd)) == 0, "saasd rules replay (http recorded by default) exits 0");
    snprintf(cmd, sizeof cmd, "%s/saasd rules replay --config %s --candidate %s --http refuse >%s/out 2>&1", build,
             conf, rules, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 1, "saasd rules replay --http refuse exits 1");
    snprintf(cmd, sizeof cmd, "grep -q '^  http refused: ctx.http is refused' %s/out", dir);
    CHECK(WEXITSTATUS(system(cmd)) == 0, "it prints the refused ctx.http call under the difference");
    snprintf(cmd, sizeof cmd, "%s/saasd rules replay --config %s --candidate %s --http maybe >/dev/null 2>&1", build,
             conf, rules);
    CHECK(WEXITSTATUS(system(cmd)) == 2, "--http with another value is a usage error");
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
