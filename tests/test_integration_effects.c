/* ctx.meter, ctx.timer and shadow replay end to end: usage metered by a handler that succeeds is billed (in
 * the hour's bucket, sent to Microsoft by a metering pass) and usage of a handler that fails
 * after metering is not; a timer fires once after its time through the offer's timer handler,
 * with an audit record, and is gone afterwards; the timers of an unsubscribed subscription never
 * fire. Replaying the history with the unchanged rules reproduces every decision; a changed
 * rule reports exactly the decisions it changes (engine_replay and `saasd rules replay`).
 * In-process daemon against the in-process emulator. */
#include "it_support.h"

#include "daemon/timers.h"
#include "engine/engine.h"

#include <sys/wait.h>

static const char RULE[] =
    "local rule = {}\n"
    "function rule.provision(sub, ctx)\n"
    "  ctx.meter('setup', 1)\n"
    "  ctx.timer.after(1, 'welcome', { who = sub.id })\n"
    "  ctx.timer.after(3600, 'later')\n"
    "  if sub.quantity == 7 then error('provisioning failed after metering') end\n"
    "  return { action = 'activate' }\n"
    "end\n"
    "function rule.change_quantity(sub, change, ctx)\n"
    "  ctx.meter('changes', 5)\n"
    "  ctx.timer.cancel('later')\n"
    "  if change.quantity == 9 then error('changing failed after metering') end\n"
    "  return { accept = true }\n"
    "end\n"
    "function rule.timer(sub, name, data, ctx)\n"
    "  local k = 'fired:' .. sub.id .. ':' .. name\n"
    "  ctx.store.put(k, (tonumber(ctx.store.get(k)) or 0) + 1)\n"
    "  if data and data.who then ctx.store.put('who:' .. sub.id, data.who) end\n"
    "  ctx.meter('timer-fee', 2)\n"
    "end\n"
    "return rule\n";

static struct daemon *d;

/* The rule's committed ctx.store value (static buffer; "" when absent). */
static const char *kv(const char *key)
{
    static char out[256];
    char full[300];
    int n = snprintf(full, sizeof full, "it-fx%c%s", 0, key);
    void *v = NULL;
    size_t len = 0;
    out[0] = 0;
    if (store_get(d->store, STORE_RULE_KV, full, (size_t)n, &v, &len) == 0)
        snprintf(out, sizeof out, "%.*s", (int)len, (char *)v);
    free(v);
    return out;
}

struct timer_count {
    const char *sub;
    int n;
};

static int count_timers(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    struct timer_count *c = arg;
    c->n += klen > strlen(c->sub) + 1 && !memcmp((const char *)key + 1, c->sub, strlen(c->sub) + 1);
    return 0;
}

/* Timers of sub in the store (its name index entries). */
static int timers_of(const char *sub)
{
    struct timer_count c = {sub, 0};
    store_scan(d->store, STORE_TIMERS, "n", 1, count_timers, &c);
    return c.n;
}

static int has_timer(const char *sub, const char *name)
{
    char k[200];
    int n = snprintf(k, sizeof k, "n%s%c%s", sub, 0, name);
    void *v = NULL;
    size_t len;
    int rc = store_get(d->store, STORE_TIMERS, k, (size_t)n, &v, &len);
    free(v);
    return rc == 0;
}

/* Sum of sub's bucket quantities of dimension (admin API). */
static double metered(const char *sub, const char *dim)
{
    long st;
    json_t *list = it_admin("GET", "/admin/usage", NULL, &st), *u;
    size_t i;
    double q = 0;
    json_array_foreach(json_object_get(list, "usage"), i, u) if (!strcmp(it_str(u, "sub_id"), sub) &&
                                                                 !strcmp(it_str(u, "dimension"), dim)) q +=
        json_number_value(json_object_get(u, "quantity"));
    json_decref(list);
    return q;
}

/* State of sub's bucket of dimension (static buffer; "" when none). */
static const char *bucket_state(const char *sub, const char *dim)
{
    static char out[32];
    long st;
    json_t *list = it_admin("GET", "/admin/usage", NULL, &st), *u;
    size_t i;
    out[0] = 0;
    json_array_foreach(json_object_get(list, "usage"), i, u) if (!strcmp(it_str(u, "sub_id"), sub) &&
                                                                 !strcmp(it_str(u, "dimension"), dim))
        snprintf(out, sizeof out, "%s", it_str(u, "state"));
    json_decref(list);
    return out;
}

static void buy(int seats, char *sub, size_t size)
{
    long st;
    json_t *p = it_emu("POST", "/_emulator/purchases",
                       json_pack("{s:s, s:s, s:i}", "offerId", "it-fx", "planId", "flat", "quantity", seats), &st);
    snprintf(sub, size, "%s", it_str(p, "subscriptionId"));
    it_land(it_str(p, "landingUrl"), NULL); /* sign in and confirm, as the buyer does */
    json_decref(p);
}

static int wait_kv(const char *key, const char *want, long timeout_ms)
{
    long long until = it_now_ms() + timeout_ms;
    while (strcmp(kv(key), want) && it_now_ms() < until)
        usleep(50 * 1000);
    return !strcmp(kv(key), want);
}

int main(void)
{
    char dir[256], conf[512], rules[512], path[600];
    struct emu *emu = it_setup("effects", dir, rules);
    if (!emu)
        return CHECK_DONE();
    snprintf(path, sizeof path, "%s/it-fx.lua", rules);
    it_write_file(path, RULE);
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), "metering = { interval = 0 }\n");
    if (!(d = it_start_daemon(conf)))
        return CHECK_DONE();
    long st;
    json_decref(it_emu("POST", "/_emulator/offers",
                       json_pack("{s:s, s:[{s:s, s:s, s:b, s:i, s:i, s:[s, s, s]}]}", "offerId", "it-fx", "plans",
                                 "planId", "flat", "displayName", "Flat", "isPricePerSeat", 1, "minQuantity", 1,
                                 "maxQuantity", 50, "dimensions", "setup", "changes", "timer-fee"),
                       &st));

    /* ---- ctx.meter: billed only when the handler succeeds ---- */
    char ok_sub[64], bad_sub[64];
    buy(3, ok_sub, sizeof ok_sub);
    buy(7, bad_sub, sizeof bad_sub);
    CHECK(metered(ok_sub, "setup") == 1, "usage metered by a provision that succeeds is in the hour's bucket");
    CHECK(metered(bad_sub, "setup") == 0, "usage metered by a provision that then raised is not recorded");
    CHECK(timers_of(bad_sub) == 0, "timers set by a provision that then raised are not stored");
    CHECK(timers_of(ok_sub) == 2, "the timers of a provision that succeeded are stored with its decision");

    char *op = it_customer(ok_sub, "change-quantity", json_pack("{s:i}", "quantity", 9));
    it_wait_op(op, 10000);
    it_settle(d->store, 10000);
    free(op);
    CHECK(metered(ok_sub, "changes") == 0, "usage metered by a change handler that then raised is not recorded");
    CHECK(has_timer(ok_sub, "later"), "a timer cancelled by a failing handler is kept");

    op = it_customer(ok_sub, "change-quantity", json_pack("{s:i}", "quantity", 4));
    CHECK(!strcmp(it_wait_op(op, 10000), "Succeeded"), "a seat change the rule accepts succeeds");
    it_settle(d->store, 10000);
    char *accepted_op = op;

    /* ---- ctx.timer: fires once, after its time, through the timer handler ---- */
    char key[128];
    snprintf(key, sizeof key, "fired:%s:welcome", ok_sub);
    CHECK(wait_kv(key, "1", 10000), "a one-second timer fires through the offer's timer handler");
    snprintf(key, sizeof key, "who:%s", ok_sub);
    CHECK(!strcmp(kv(key), ok_sub), "the timer handler gets the data the timer was set with");
    usleep(2500 * 1000);
    snprintf(key, sizeof key, "fired:%s:welcome", ok_sub);
    CHECK(!strcmp(kv(key), "1"), "the timer fired exactly once (still once 2.5 s later)");
    CHECK(it_audit_count(ok_sub, NULL, "Timer") == 1, "the firing has one audit record");
    json_t *hist = it_history(ok_sub), *e;
    size_t i;
    int hashed = 0;
    json_array_foreach(hist, i, e) hashed |= !strcmp(it_str(e, "action"), "Timer") && strlen(it_str(e, "rule_sha256")) == 64;
    json_decref(hist);
    CHECK(hashed, "the timer's audit record carries the rule's SHA-256");
    CHECK(metered(ok_sub, "timer-fee") == 2, "usage metered by the timer handler is billed");
    CHECK(timers_of(ok_sub) == 0, "the fired timer is gone, and the one the accepted change cancelled too");

    /* the current hour's bucket: a metering pass sends it once the hour has closed */
    CHECK(!strcmp(bucket_state(ok_sub, "setup"), "open"), "the metered setup fee waits in the open hour's bucket");

    /* ---- no timer fires after Unsubscribe ---- */
    char gone_sub[64];
    buy(2, gone_sub, sizeof gone_sub);
    CHECK(timers_of(gone_sub) == 2, "the second subscription has its two timers");
    op = it_customer(gone_sub, "unsubscribe", NULL);
    CHECK(!strcmp(it_wait_op(op, 10000), "Succeeded"), "the customer unsubscribes");
    it_settle(d->store, 10000);
    free(op);
    CHECK(timers_of(gone_sub) == 0, "unsubscribing cancels the subscription's timers");
    int fired = -1;
    timers_fire_due(d, (long long)time(NULL) + 7200, &fired);
    snprintf(key, sizeof key, "fired:%s:later", gone_sub);
    CHECK(!*kv(key), "no timer of the unsubscribed subscription fires, even two hours later");
    snprintf(key, sizeof key, "fired:%s:later", ok_sub);
    CHECK(!*kv(key), "a timer cancelled by a handler that succeeded never fires");

    /* ---- shadow replay of this history ---- */
    json_t *rep = NULL;
    struct replay_options ro = {rules, 0, NULL, 2000, 0, ENGINE_HTTP_RECORDED};
    CHECK(engine_replay(d->store, &ro, &rep) == 0, "the history replays against the unchanged rules");
    long long calls = json_integer_value(json_object_get(rep, "calls"));
    printf("# %lld decisions replayed in %.3f s\n", calls, json_number_value(json_object_get(rep, "seconds")));
    CHECK(calls >= 5, "the recorded rule calls are replayed (provisions, a change, a timer, an unsubscribe)");
    CHECK(json_integer_value(json_object_get(rep, "differ")) == 0, "the unchanged rules reproduce every stored decision");
    json_decref(rep);

    char cand[600], cand_rule[700];
    snprintf(cand, sizeof cand, "%s/candidate", dir);
    mkdir(cand, 0700);
    snprintf(cand_rule, sizeof cand_rule, "%s/it-fx.lua", cand);
    char changed[sizeof RULE + 200];
    const char *at = strstr(RULE, "  if change.quantity == 9");
    snprintf(changed, sizeof changed, "%.*s  if change.quantity == 4 then return { accept = false, reason = 'frozen' } end\n%s",
             (int)(at - RULE), RULE, at);
    it_write_file(cand_rule, changed);
    ro.candidate_dir = cand;
    rep = NULL;
    CHECK(engine_replay(d->store, &ro, &rep) == 0, "the history replays against a changed rule");
    json_t *diffs = json_object_get(rep, "differences"), *d0 = json_array_get(diffs, 0);
    CHECK(json_array_size(diffs) == 1 && !strcmp(it_str(d0, "group"), "it-fx change_quantity") &&
              !strcmp(it_str(d0, "subscription"), ok_sub) && !strcmp(it_str(d0, "event"), accepted_op) &&
              json_is_true(json_object_get(json_object_get(d0, "old"), "accept")) &&
              json_is_false(json_object_get(json_object_get(d0, "new"), "accept")) &&
              strcmp(it_str(d0, "old_sha256"), it_str(d0, "new_sha256")) != 0,
          "the changed rule differs in exactly the seat change it now refuses, with both rule hashes");
    json_t *g = json_object_get(json_object_get(rep, "groups"), "it-fx provision");
    CHECK(json_integer_value(json_object_get(g, "same")) >= 2 && json_integer_value(json_object_get(g, "differ")) == 0,
          "the provisions it did not change are counted as the same");
    json_decref(rep);
    ro.offer = "another-offer";
    rep = NULL;
    CHECK(engine_replay(d->store, &ro, &rep) == 0 && json_integer_value(json_object_get(rep, "calls")) == 0,
          "--offer limits the replay to one offer");
    json_decref(rep);
    st = 0;
    json_t *api = it_admin("POST", "/admin/rules/replay", json_pack("{s:s}", "candidate", cand), &st);
    json_t *api_diffs = json_object_get(api, "differences");
    CHECK(st == 200 && json_array_size(api_diffs) == 1 &&
              !strcmp(it_str(json_array_get(api_diffs, 0), "event"), accepted_op),
          "POST /admin/rules/replay reports the same single difference as the engine");
    json_decref(api);
    api = it_admin("POST", "/admin/rules/replay", json_pack("{s:i}", "since_ms", 0), &st);
    CHECK(st == 400 && strstr(it_str(api, "error"), "candidate"), "POST /admin/rules/replay without a candidate is a 400");
    json_decref(api);
    free(accepted_op);

    daemon_stop(d);
    /* the command line: exit 1 on a difference unless --allow-diff */
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "%s/saasd rules replay --config %s --candidate %s >/dev/null 2>&1", build, conf, rules);
    CHECK(WEXITSTATUS(system(cmd)) == 0, "saasd rules replay exits 0 when no decision differs");
    snprintf(cmd, sizeof cmd, "%s/saasd rules replay --config %s --candidate %s >%s/replay.out 2>&1", build, conf, cand, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 1, "saasd rules replay exits 1 when a decision differs");
    snprintf(cmd, sizeof cmd, "grep -q '^differs: it-fx change_quantity subscription %s' %s/replay.out", ok_sub, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 0, "it prints the difference with the subscription");
    snprintf(cmd, sizeof cmd, "%s/saasd rules replay --config %s --candidate %s --allow-diff >/dev/null 2>&1", build, conf, cand);
    CHECK(WEXITSTATUS(system(cmd)) == 0, "--allow-diff makes a difference exit 0");
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
