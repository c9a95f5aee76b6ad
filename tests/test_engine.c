/* The rule engine's guarantees: sandbox, limits, schema, defaults, reload, hashes, ctx.http. */
#include "check.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/log.h"
#include "engine/engine.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *SUB =
    "{\"id\":\"5f3c1c3e-0000-4000-8000-000000000001\",\"offerId\":\"o1\",\"planId\":\"basic\","
    "\"quantity\":5,\"saasSubscriptionStatus\":\"PendingFulfillmentStart\",\"purchaseToken\":null,"
    "\"term\":{\"termUnit\":\"P1M\",\"startDate\":\"2026-11-01T00:00:00Z\"}}";
static const char *CHANGE =
    "{\"id\":\"op-1\",\"action\":\"ChangeQuantity\",\"quantity\":3,\"planId\":\"basic\"}";

static void file_sha(const char *dir, const char *name, char out[65])
{
    char path[512], buf[65536];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    crypto_sha256_hex(buf, n, out);
}

static struct engine *open_dir(const char *dir, int cpu_ms)
{
    struct engine_options opt = {.rules_dir = dir, .cpu_ms = cpu_ms, .memory = 8u << 20};
    struct engine *e = NULL;
    if (engine_open(&opt, &e) < 0)
        return NULL;
    return e;
}

static int call(struct engine *e, const char *offer, enum rule_handler h, struct rule_result *r)
{
    return engine_call(e, offer, h, SUB, h == RULE_PROVISION ? NULL : CHANGE, NULL, r);
}

static void test_decisions(void)
{
    char *dir = check_tmpdir("engine");
    check_write_file(dir, "o1.lua",
               "local r = {}\n"
               "function r.provision(sub, ctx)\n"
               "  if sub.planId == 'basic' then\n"
               "    return { action = 'pending', message = 'we call you', redirect = 'https://isv.example/wait' }\n"
               "  end\n"
               "  return { action = 'activate' }\n"
               "end\n"
               "function r.change_quantity(sub, change, ctx)\n"
               "  if change.quantity < sub.quantity then return { accept = false, reason = 'no fewer seats' } end\n"
               "  return { accept = true }\n"
               "end\n"
               "function r.suspend(sub, event, ctx) return nil, 'ISV down' end\n"
               "function r.renew(sub, event, ctx) return { weird = 1 } end\n"
               "function r.change_plan(sub, change, ctx) return { action = 'activat' } end\n"
               "return r\n");
    struct engine *e = open_dir(dir, 1000);
    CHECK(e != NULL, "a valid rules directory opens");
    if (!e)
        return;
    struct rule_result r;
    int rc = call(e, "o1", RULE_PROVISION, &r);
    CHECK(rc == 0 && r.outcome == RULE_OK && r.action == RULE_ACTION_PENDING && r.message &&
              !strcmp(r.message, "we call you") && r.redirect && !strcmp(r.redirect, "https://isv.example/wait"),
          "provision's pending decision, message and redirect reach C");
    CHECK(r.generation == 1 && r.file && strstr(r.file, "o1.lua") && !strcmp(r.rule_offer, "o1"),
          "a result names the rule file and generation that decided");
    rule_result_free(&r);

    rc = call(e, "o1", RULE_CHANGE_QUANTITY, &r);
    CHECK(rc == 0 && r.outcome == RULE_OK && r.accept == 0 && r.reason && !strcmp(r.reason, "no fewer seats"),
          "a refused change carries accept=false and the rule's reason");
    rule_result_free(&r);

    rc = call(e, "o1", RULE_SUSPEND, &r);
    CHECK(rc == SAASD_ERULE && r.outcome == RULE_ERROR && r.error && strstr(r.error, "ISV down") &&
              strstr(r.error, "try again later"),
          "a side-effect handler returning nil, err is an error the daemon retries");
    rule_result_free(&r);

    rc = call(e, "o1", RULE_RENEW, &r);
    CHECK(rc == SAASD_ERULE && r.outcome == RULE_INVALID_RESULT, "a side-effect handler returning a table is an invalid result");
    rule_result_free(&r);

    rc = call(e, "o1", RULE_CHANGE_PLAN, &r);
    CHECK(rc == SAASD_ERULE && r.outcome == RULE_INVALID_RESULT && r.error && strstr(r.error, "unknown field 'action'") &&
              r.accept == 0,
          "a result that fails the schema is refused before C acts on it");
    rule_result_free(&r);

    rc = call(e, "o1", RULE_REINSTATE, &r);
    CHECK(rc == 0 && r.outcome == RULE_DEFAULT && r.accept == 1, "a missing reinstate handler accepts by default");
    rule_result_free(&r);

    rc = call(e, "other-offer", RULE_PROVISION, &r);
    CHECK(rc == 0 && r.outcome == RULE_OK && r.action == RULE_ACTION_ACTIVATE && !strcmp(r.rule_offer, "default") &&
              !strcmp(r.file, "<built-in default>"),
          "an offer without a file is served by the built-in default, which activates");
    rule_result_free(&r);

    rc = engine_call(e, "bad/offer", RULE_PROVISION, SUB, NULL, NULL, &r);
    CHECK(rc == SAASD_EINVAL && r.outcome == RULE_BAD_INPUT, "an offer id with a slash is refused as bad input");
    rule_result_free(&r);
    rc = engine_call(e, "o1", RULE_PROVISION, "not json", NULL, NULL, &r);
    CHECK(rc == SAASD_EINVAL && r.outcome == RULE_BAD_INPUT, "a subscription that is not JSON is refused as bad input");
    rule_result_free(&r);

    char *audit = NULL;
    call(e, "o1", RULE_PROVISION, &r);
    rule_result_audit_json(&r, &audit);
    CHECK(audit && strstr(audit, r.sha256) && strstr(audit, "\"action\":\"pending\""),
          "the audit record carries the decision and the rule's hash");
    free(audit);
    rule_result_free(&r);

    char *metrics = NULL;
    size_t len = 0, cap = 0;
    engine_metrics(e, &metrics, &len, &cap);
    CHECK(metrics && strstr(metrics, "saasd_rule_calls_total{offer=\"o1\",handler=\"provision\",outcome=\"ok\"} 2") &&
              strstr(metrics, "saasd_rule_reloads_total{result=\"failed\"} 0") &&
              strstr(metrics, "saasd_rule_call_seconds_count{handler=\"provision\"}"),
          "metrics count calls by offer, handler and outcome, and reloads");
    free(metrics);
    engine_close(e);
    check_rm_rf(dir);
    free(dir);
}

static void test_sandbox(void)
{
    char *dir = check_tmpdir("sandbox");
    const char *probes[] = {"io", "os.execute", "load", "loadstring", "dofile", "require", "debug",
                            "package", "collectgarbage", "print", "rawset", "string.dump"};
    check_write_file(dir, "probe.lua",
               "local r = {}\n"
               "function r.provision(sub, ctx)\n"
               "  local name = sub.name\n"
               "  local v\n"
               "  if name:find('%%.') then\n"
               "    local lib, f = name:match('(%%w+)%%.(%%w+)')\n"
               "    v = _ENV[lib][f]\n"
               "  else\n"
               "    v = _ENV[name]\n"
               "  end\n"
               "  return { action = v == nil and 'reject' or 'activate', message = name }\n"
               "end\n"
               "function r.change_plan(sub, change, ctx) leaked = 1 return { accept = true } end\n"
               "function r.change_quantity(sub, change, ctx) string.upper = nil return { accept = true } end\n"
               "function r.reinstate(sub, event, ctx)\n"
               "  local mt = getmetatable('')\n"
               "  if mt ~= nil then return { accept = false, reason = 'string metatable reachable' } end\n"
               "  return setmetatable({}, { __gc = function() end })\n"
               "end\n"
               "function r.renew(sub, event, ctx) sub.planId = 'x' end\n"
               "return r\n");
    struct engine *e = open_dir(dir, 1000);
    CHECK(e != NULL, "the probe rule loads");
    if (!e)
        return;
    int all_blocked = 1;
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "{\"id\":\"s\",\"name\":\"%s\"}", probes[i]);
        struct rule_result r;
        int rc = engine_call(e, "probe", RULE_PROVISION, sub, NULL, NULL, &r);
        int blocked = rc == SAASD_ERULE && r.outcome == RULE_ERROR && r.error &&
                      (strstr(r.error, "undeclared global") || strstr(r.error, "attempt to index"));
        /* string.dump: the proxy has no such field, so v == nil -> reject */
        if (!blocked && rc == 0 && r.action == RULE_ACTION_REJECT)
            blocked = 1;
        if (!blocked) {
            printf("# reachable: %s (%s)\n", probes[i], r.error ? r.error : rule_action_name(r.action));
            all_blocked = 0;
        }
        rule_result_free(&r);
    }
    CHECK(all_blocked, "a rule cannot reach io, os.execute, load, require, debug, package, collectgarbage");

    struct rule_result r;
    int rc = call(e, "probe", RULE_CHANGE_PLAN, &r);
    CHECK(rc == SAASD_ERULE && r.error && strstr(r.error, "assignment to undeclared global 'leaked'"),
          "writing a global is an error");
    CHECK(r.error && strstr(r.error, "offer 'probe'") && strstr(r.error, "handler 'change_plan'") &&
              strstr(r.error, "probe.lua:13") && r.error_line == 13,
          "a rule error names the offer, handler, file and line");
    rule_result_free(&r);
    rc = call(e, "probe", RULE_CHANGE_QUANTITY, &r);
    CHECK(rc == SAASD_ERULE && r.error && strstr(r.error, "read-only"), "shared tables are read-only");
    rule_result_free(&r);
    rc = call(e, "probe", RULE_REINSTATE, &r);
    CHECK(rc == SAASD_ERULE && r.error && strstr(r.error, "__gc"),
          "the string metatable is out of reach and __gc finalizers are refused");
    rule_result_free(&r);
    rc = call(e, "probe", RULE_RENEW, &r);
    CHECK(rc == SAASD_ERULE && r.error && strstr(r.error, "read-only"), "the subscription a rule receives is read-only");
    rule_result_free(&r);
    engine_close(e);

    char *dir3 = check_tmpdir("strdump");
    check_write_file(dir3, "m.lua",
               "return { change_quantity = function(sub, change, ctx)\n"
               "  return { accept = (\"\").dump == nil and (\"x\"):upper() == \"X\" }\n"
               "end }\n");
    e = open_dir(dir3, 1000);
    rc = e ? call(e, "m", RULE_CHANGE_QUANTITY, &r) : -1;
    CHECK(rc == 0 && r.accept, "string methods work in rules but never reach string.dump");
    if (e)
        rule_result_free(&r);
    engine_close(e);
    check_rm_rf(dir3);
    free(dir3);

    char *dir2 = check_tmpdir("bytecode");
    check_write_file(dir2, "bin.lua", "\x1bLua\x54 return {}");
    e = open_dir(dir2, 1000);
    CHECK(e == NULL, "a precompiled (bytecode) rule file is refused");
    engine_close(e);
    check_rm_rf(dir);
    check_rm_rf(dir2);
    free(dir);
    free(dir2);
}

static void note_problem(void *arg, const char *p)
{
    snprintf(arg, 1024, "%s", p);
}

static void test_limits(void)
{
    char *dir = check_tmpdir("limits");
    check_write_file(dir, "loop.lua",
               "local r = {}\n"
               "function r.change_plan(sub, change, ctx)\n"
               "  while true do\n"
               "    pcall(function() while true do end end)\n"
               "  end\n"
               "end\n"
               "function r.change_quantity(sub, change, ctx)\n"
               "  local t = {}\n"
               "  while true do\n"
               "    pcall(function() t[#t + 1] = string.rep('x', 4096) .. #t end)\n"
               "  end\n"
               "end\n"
               "function r.provision(sub, ctx)\n"
               "  local co = coroutine.wrap(function() while true do end end)\n"
               "  co()\n"
               "end\n"
               "return r\n");
    struct engine *e = open_dir(dir, 300);
    CHECK(e != NULL, "the limits rule loads");
    if (!e)
        return;
    struct rule_result r;
    double t0 = check_now_ms();
    int rc = call(e, "loop", RULE_CHANGE_PLAN, &r);
    double took = check_now_ms() - t0;
    CHECK(rc == SAASD_ELIMIT && r.outcome == RULE_CPU_LIMIT, "an endless loop is stopped even inside pcall");
    CHECK(took >= 250 && took < 3000, "the loop is stopped near the configured cpu limit");
    CHECK(r.error && strstr(r.error, "offer 'loop'") && strstr(r.error, "change_plan") && strstr(r.error, "loop.lua:") &&
              strstr(r.error, "cpu limit"),
          "a cpu limit error names offer, handler, file and line");
    rule_result_free(&r);

    rc = call(e, "loop", RULE_PROVISION, &r);
    CHECK(rc == SAASD_ELIMIT && r.outcome == RULE_CPU_LIMIT, "an endless loop inside a coroutine is stopped");
    rule_result_free(&r);
    /* the limit is wall time: give the memory bomb room to reach the cap on a loaded machine */
    engine_close(e);
    e = open_dir(dir, 5000);

    rc = call(e, "loop", RULE_CHANGE_QUANTITY, &r);
    CHECK(rc == SAASD_ELIMIT && r.outcome == RULE_MEMORY_LIMIT && r.error && strstr(r.error, "memory limit"),
          "a memory bomb hits the cap, even inside pcall");
    printf("# %s\n", r.error ? r.error : "");
    CHECK(r.error && strstr(r.error, "offer 'loop' handler 'change_quantity' at ") && strstr(r.error, "loop.lua:10:"),
          "a memory limit error names offer, handler, file and line");
    rule_result_free(&r);

    rc = engine_call(e, "loop", RULE_REINSTATE, SUB, CHANGE, NULL, &r);
    CHECK(rc == 0 && r.outcome == RULE_DEFAULT, "after a memory bomb the engine keeps serving");
    rule_result_free(&r);
    engine_close(e);

    char *dir2 = check_tmpdir("toplevel");
    check_write_file(dir2, "spin.lua", "local x = 0\nwhile true do x = x + 1 end\nreturn {}\n");
    e = open_dir(dir2, 200);
    CHECK(e == NULL, "a rule file whose top level never ends is refused at load");
    char *dir3 = check_tmpdir("bomb");
    check_write_file(dir3, "bomb.lua", "local t = {}\nfor i = 1, 1e9 do t[i] = ('x'):rep(1000) .. i end\nreturn {}\n");
    struct engine_options bo = {.cpu_ms = 5000, .memory = 4u << 20};
    char text[1024] = "";
    int rc_bomb = engine_check_dir(dir3, &bo, note_problem, text);
    CHECK(rc_bomb == SAASD_ERULE && strstr(text, "bomb.lua:2: memory limit"),
          "a memory bomb at a file's top level fails the load with the file and line");
    check_rm_rf(dir);
    check_rm_rf(dir2);
    check_rm_rf(dir3);
    free(dir);
    free(dir2);
    free(dir3);
}

struct problems {
    char text[4096];
    int n;
};

static void collect(void *arg, const char *p)
{
    struct problems *ps = arg;
    ps->n++;
    strncat(ps->text, p, sizeof ps->text - strlen(ps->text) - 2);
    strcat(ps->text, "\n");
}

struct slow_call {
    struct engine *e;
    struct rule_result r;
    int rc;
};

static void *slow_main(void *arg)
{
    struct slow_call *sc = arg;
    sc->rc = call(sc->e, "slow", RULE_PROVISION, &sc->r);
    return NULL;
}

static void test_reload_and_check(void)
{
    char *dir = check_tmpdir("reload");
    check_write_file(dir, "o1.lua", "return { provision = function() return { action = 'activate', message = 'v1' } end }\n");
    /* generous: the limit is wall time and the in-flight call below spins 0.4 s of CPU */
    struct engine *e = open_dir(dir, 5000);
    CHECK(e != NULL, "generation 1 loads");
    if (!e)
        return;
    char sha1[65], sha2[65];
    file_sha(dir, "o1.lua", sha1);
    struct rule_result r;
    call(e, "o1", RULE_PROVISION, &r);
    CHECK(!strcmp(r.sha256, sha1), "the recorded rule hash matches the file that decided");
    rule_result_free(&r);

    check_write_file(dir, "o1.lua", "return { provision = function() return { action = 'activate', message = 'v2' }\n");
    int rc = engine_reload(e);
    call(e, "o1", RULE_PROVISION, &r);
    CHECK(rc == SAASD_ERULE && r.generation == 1 && r.message && !strcmp(r.message, "v1") && !strcmp(r.sha256, sha1),
          "a rule with a syntax error keeps the old rules");
    rule_result_free(&r);
    struct engine_info *info;
    engine_info(e, &info);
    CHECK(info->reloads_failed == 1 && info->generation == 1, "a failed reload is counted");
    engine_info_free(info);

    check_write_file(dir, "o1.lua", "return { provision = function() return { action = 'activate', message = 'v2' } end }\n");
    check_write_file(dir, "o2.lua", "return { provison = function() end }\n");
    rc = engine_reload(e);
    CHECK(rc == SAASD_ERULE, "one invalid file among valid ones fails the whole reload");
    char o2[512];
    snprintf(o2, sizeof o2, "%s/o2.lua", dir);
    unlink(o2);
    rc = engine_reload(e);
    file_sha(dir, "o1.lua", sha2);
    call(e, "o1", RULE_PROVISION, &r);
    CHECK(rc == 0 && r.generation == 2 && r.message && !strcmp(r.message, "v2") && !strcmp(r.sha256, sha2) &&
              strcmp(sha1, sha2) != 0,
          "a valid reload swaps in the next generation and its hashes");
    rule_result_free(&r);

    /* a call in flight keeps its generation */
    check_write_file(dir, "slow.lua",
               "return { provision = function(sub, ctx)\n"
               "  local t = os.clock() while os.clock() - t < 0.4 do end\n"
               "  return { action = 'activate', message = 'old' } end }\n");
    engine_reload(e);
    char sha_slow[65];
    file_sha(dir, "slow.lua", sha_slow);
    struct slow_call sc = {.e = e};
    pthread_t t;
    pthread_create(&t, NULL, slow_main, &sc);
    usleep(100 * 1000);
    check_write_file(dir, "slow.lua", "return { provision = function() return { action = 'activate', message = 'new' } end }\n");
    rc = engine_reload(e);
    pthread_join(t, NULL);
    if (sc.rc)
        printf("# %s\n", sc.r.error ? sc.r.error : "?");
    CHECK(rc == 0 && sc.rc == 0 && sc.r.message && !strcmp(sc.r.message, "old") && !strcmp(sc.r.sha256, sha_slow) &&
              sc.r.generation == 3,
          "a call in flight finishes on the generation it started with");
    rule_result_free(&sc.r);
    call(e, "slow", RULE_PROVISION, &r);
    CHECK(r.message && !strcmp(r.message, "new") && r.generation == 4, "the next call runs on the new generation");
    rule_result_free(&r);
    engine_close(e);

    /* saasd rules check */
    char *bad = check_tmpdir("check");
    check_write_file(bad, "good.lua", "return {}\n");
    check_write_file(bad, "broken.lua", "local r = {}\nfunction r.provision(sub, ctx)\n  return { action = 'activate' \nend\nreturn r\n");
    check_write_file(bad, "typo.lua", "local r = {}\nr.provison = function() end\nreturn r\n");
    struct problems ps = {{0}, 0};
    rc = engine_check_dir(bad, NULL, collect, &ps);
    printf("# %s", ps.text);
    CHECK(rc == SAASD_ERULE && ps.n == 2, "rules check reports every broken file");
    CHECK(strstr(ps.text, "broken.lua:4:") != NULL, "rules check reports a syntax error with its file and line");
    CHECK(strstr(ps.text, "typo.lua:2: unknown handler 'provison'") != NULL,
          "rules check reports a misspelt handler name at its line");
    struct problems ok = {{0}, 0};
    rc = engine_check_dir(dir, NULL, collect, &ok);
    CHECK(rc == 0 && ok.n == 0, "rules check accepts a valid directory");
    check_rm_rf(dir);
    check_rm_rf(bad);
    free(dir);
    free(bad);
}

/* A new install starts with an empty rules directory (regression: engine_read_dir sorted a NULL
 * name list there, undefined behaviour that `make SANITIZE=address` reports). */
static void test_empty_dir(void)
{
    char *dir = check_tmpdir("empty");
    struct engine *e = open_dir(dir, 1000);
    struct rule_result r = {0};
    int rc = e ? call(e, "any-offer", RULE_PROVISION, &r) : -1;
    CHECK(e != NULL && rc == 0 && r.generation == 1, "an empty rules directory loads with the built-in default rule");
    if (e) {
        rule_result_free(&r);
        engine_close(e);
    }
    check_rm_rf(dir);
    free(dir);
}

/* Regression: when no rule worker could be started, validation handed the pool a NULL worker
 * and the daemon died of a segfault at start (seen under valgrind). It must fail with a reason. */
static void test_worker_cannot_start(void)
{
    char *dir = check_tmpdir("noworker");
    check_write_file(dir, "o1.lua", "return {}\n");
    struct engine_options opt = {.rules_dir = dir, .cpu_ms = 1000, .memory = 8u << 20,
                                 .worker_exe = "/nonexistent/saasd-rule-worker"};
    struct engine *e = NULL;
    int rc = engine_open(&opt, &e);
    CHECK(rc < 0 && e == NULL, "rules whose worker process cannot start fail to load with an error, not a crash");
    if (e)
        engine_close(e);
    check_rm_rf(dir);
    free(dir);
}

int main(void)
{
    alarm(120); /* a limit that fails to stop a loop must fail this program, not hang it */
    log_set_level(LOG_ERROR);
    test_decisions();
    test_sandbox();
    test_limits();
    test_reload_and_check();
    test_empty_dir();
    test_worker_cannot_start();
    return CHECK_DONE();
}
