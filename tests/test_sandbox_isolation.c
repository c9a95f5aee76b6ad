/* Offers cannot reach each other: a malicious rule file (tests/sandbox/evil.lua) next to the
 * shipped seats-pro rule tries every known route from its read-only tables to the writable
 * ones behind them, at load time and in its handlers. The engine runs with one lua_State so
 * that every offer shares it (the strictest case for the Lua sandbox): seats-pro's decisions
 * and what a third offer sees of the shared libraries and ctx must stay the same. */
#include "check.h"
#include "core/log.h"
#include "engine/engine.h"

static const char *SUB =
    "{\"id\":\"5f3c1c3e-0000-4000-8000-000000000001\",\"offerId\":\"seats-pro\",\"planId\":\"pro\","
    "\"quantity\":5,\"saasSubscriptionStatus\":\"PendingFulfillmentStart\"}";
static const char *FEWER =
    "{\"id\":\"op-1\",\"action\":\"ChangeQuantity\",\"quantity\":3,\"planId\":\"pro\"}";

/* What the probe offer reports of the shared libraries and ctx. */
static const char PROBE[] =
    "local r = {}\n"
    "function r.provision(sub, ctx)\n"
    "  return { action = 'activate', message = table.concat({ string.upper('abc'), ('abc'):upper(),\n"
    "    string.format('%%d seats', 7), tostring(math.floor(2.5)), table.concat({ 'a', 'b' }, ','),\n"
    "    tostring(ctx.json.encode({ 1 })), math.type(ctx.now()), tostring(ctx.store.get('k')) }, '|') }\n"
    "end\n"
    "return r\n";
static const char PROBE_EXPECTED[] = "ABC|ABC|7 seats|2|a,b|[1]|integer|nil";

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The decisions that must not change, whatever evil did before. */
static void check_others(struct engine *e, const char *when)
{
    char name[256];
    struct rule_result r;
    int rc = engine_call(e, "seats-pro", RULE_PROVISION, SUB, NULL, NULL, &r);
    snprintf(name, sizeof name, "%s: seats-pro still activates with its own message", when);
    CHECK(rc == 0 && r.action == RULE_ACTION_ACTIVATE && r.message &&
              !strcmp(r.message, "5 seats are ready."), name);
    rule_result_free(&r);

    rc = engine_call(e, "seats-pro", RULE_CHANGE_QUANTITY, SUB, FEWER, NULL, &r);
    snprintf(name, sizeof name, "%s: seats-pro still reads its own store (no seats in use: 3 accepted)", when);
    CHECK(rc == 0 && r.outcome == RULE_OK && r.accept == 1, name);
    if (r.reason)
        printf("# seats-pro said: %s\n", r.reason);
    rule_result_free(&r);

    rc = engine_call(e, "probe", RULE_PROVISION, SUB, NULL, NULL, &r);
    snprintf(name, sizeof name, "%s: string, table, math and ctx behave as shipped for another offer", when);
    CHECK(rc == 0 && r.message && !strcmp(r.message, PROBE_EXPECTED), name);
    if (r.message && strcmp(r.message, PROBE_EXPECTED))
        printf("# probe saw: %s\n", r.message);
    rule_result_free(&r);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    char *dir = check_tmpdir("isolation");
    const char *seats = slurp("rules/seats-pro.lua");
    CHECK(seats != NULL, "the shipped seats-pro rule is readable");
    if (!seats)
        return CHECK_DONE();
    check_write_file(dir, "seats-pro.lua", "%s", seats);
    const char *evil = slurp("tests/sandbox/evil.lua");
    CHECK(evil != NULL, "the malicious rule file is readable");
    if (!evil)
        return CHECK_DONE();
    check_write_file(dir, "evil.lua", "%s", evil);
    check_write_file(dir, "probe.lua", PROBE);

    struct engine_options opt = {.rules_dir = dir, .cpu_ms = 2000, .memory = 32u << 20, .states = 1};
    struct engine *e = NULL;
    CHECK(engine_open(&opt, &e) == 0, "a rules directory with a malicious offer still loads");
    if (!e)
        return CHECK_DONE();
    check_others(e, "after evil.lua's top level ran");

    struct rule_result r;
    for (int i = 0; i < 3; i++) {
        int rc = engine_call(e, "evil", RULE_PROVISION, SUB, NULL, NULL, &r);
        if (i == 0)
            CHECK(rc == 0 && r.action == RULE_ACTION_ACTIVATE,
                  "the malicious offer's handler runs to the end (its attempts are refused, not fatal)");
        rule_result_free(&r);
    }
    check_others(e, "after evil's provision attacked ctx and the libraries");

    int rc = engine_call(e, "evil", RULE_CHANGE_PLAN, SUB, FEWER, NULL, &r);
    CHECK(rc == 0 && r.outcome == RULE_OK && r.accept == 1,
          "nothing writable is reachable from a rule's ctx, arguments or libraries");
    if (r.reason)
        printf("# %s\n", r.reason);
    rule_result_free(&r);

    CHECK(engine_reload(e) == 0, "a reload with the malicious offer succeeds");
    check_others(e, "after a reload re-ran evil.lua's top level");

    engine_close(e);
    check_rm_rf(dir);
    free(dir);
    return CHECK_DONE();
}
