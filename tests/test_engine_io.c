/* The engine's capabilities against real components: ctx.store over the LMDB store and the
 * caller's batch, ctx.http over the HTTP client against a loopback server, and the inotify
 * watcher. */
#include "check.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/store.h"
#include "engine/caps.h"
#include "engine/engine.h"
#include <jansson.h>

#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static const char *SUB = "{\"id\":\"s1\",\"offerId\":\"o1\",\"planId\":\"basic\",\"quantity\":10}";


static int kv_get(struct store *s, const char *offer, const char *key, char *out, size_t size)
{
    char full[256];
    size_t ol = strlen(offer), kl = strlen(key);
    memcpy(full, offer, ol);
    full[ol] = '\0';
    memcpy(full + ol + 1, key, kl);
    void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(s, STORE_RULE_KV, full, ol + 1 + kl, &val, &vlen);
    if (rc == 0) {
        snprintf(out, size, "%.*s", (int)vlen, (const char *)val);
        free(val);
    }
    return rc;
}

/* A rules directory holding one file, a store, and an engine over both. */
struct fixture {
    char *rules, *data;
    struct store *s;
    struct engine *e;
};

static int fixture_open(struct fixture *f, const char *name, const char *file, const char *text, int states)
{
    char dir[64];
    snprintf(dir, sizeof dir, "rules-%s", name);
    *f = (struct fixture){.rules = check_tmpdir(dir), .data = check_tmpdir(name)};
    check_write_file(f->rules, file, "%s", text);
    struct store_options so = {.no_sync = 1};
    CHECK(store_open(f->data, &so, &f->s) == 0, "the store opens");
    struct engine_options opt = {.rules_dir = f->rules, .store = f->s, .states = states};
    CHECK(f->s && engine_open(&opt, &f->e) == 0, "the engine opens with a store");
    return f->e ? 0 : -1;
}

static void fixture_close(struct fixture *f)
{
    engine_close(f->e);
    store_close(f->s);
    check_rm_rf(f->rules);
    check_rm_rf(f->data);
    free(f->rules);
    free(f->data);
}

/* Commit offer's ctx.store key = val. */
static int seed(struct store *s, const char *offer, const char *key, const char *val)
{
    struct store_batch *b;
    char full[128];
    size_t ol = strlen(offer) + 1, kl = strlen(key);
    memcpy(full, offer, ol);
    memcpy(full + ol, key, kl);
    int rc = store_batch_new(&b);
    if (!rc)
        rc = store_batch_put(b, STORE_RULE_KV, full, ol + kl, val, strlen(val));
    if (!rc)
        rc = store_commit(s, b);
    store_batch_free(b);
    return rc;
}

static void test_store(void)
{
    struct fixture f;
    if (fixture_open(&f, "store", "o1.lua",
               "local r = {}\n"
               "function r.change_quantity(sub, change, ctx)\n"
               "  local in_use = tonumber(ctx.store.get('in_use:' .. sub.id) or '0')\n"
               "  ctx.store.put('seats:' .. sub.id, change.quantity)\n"
               "  local echo = ctx.store.get('seats:' .. sub.id)\n"
               "  ctx.store.delete('old:' .. sub.id)\n"
               "  if change.quantity < in_use then\n"
               "    return { accept = false, reason = 'in use ' .. in_use .. ' echo ' .. echo }\n"
               "  end\n"
               "  return { accept = true, reason = 'echo ' .. tostring(ctx.store.get('old:' .. sub.id)) }\n"
               "end\n"
               "function r.change_plan(sub, change, ctx)\n"
               "  ctx.store.put('half', 'written')\n"
               "  error('after the write')\n"
               "end\n"
               "return r\n",
                     0) < 0)
        return;
    struct engine *e = f.e;
    struct store *s = f.s;
    CHECK(seed(s, "o1", "in_use:s1", "7") == 0 && seed(s, "o1", "old:s1", "x") == 0, "seed values commit");
    struct store_batch *b;
    store_batch_new(&b);
    struct rule_result r;
    int rc = engine_call(e, "o1", RULE_CHANGE_QUANTITY, SUB, "{\"quantity\":5}", b, &r);
    CHECK(rc == 0 && r.accept == 0 && r.reason && !strcmp(r.reason, "in use 7 echo 5"),
          "ctx.store reads see the committed store plus the call's own writes");
    rule_result_free(&r);
    char val[64] = "";
    CHECK(kv_get(s, "o1", "seats:s1", val, sizeof val) == SAASD_ENOTFOUND,
          "ctx.store writes are not applied before the daemon commits its batch");
    CHECK(store_commit(s, b) == 0, "the daemon's batch commits");
    store_batch_free(b);
    CHECK(kv_get(s, "o1", "seats:s1", val, sizeof val) == 0 && !strcmp(val, "5"),
          "ctx.store writes commit with the daemon's batch");
    CHECK(kv_get(s, "o1", "old:s1", val, sizeof val) == SAASD_ENOTFOUND, "ctx.store.delete commits with the batch");

    store_batch_new(&b);
    rc = engine_call(e, "o1", RULE_CHANGE_QUANTITY, SUB, "{\"quantity\":9}", b, &r);
    CHECK(rc == 0 && r.accept == 1 && r.reason && !strcmp(r.reason, "echo nil"), "a deleted key reads as nil");
    rule_result_free(&r);
    store_batch_free(b);

    store_batch_new(&b);
    rc = engine_call(e, "o1", RULE_CHANGE_PLAN, SUB, "{\"planId\":\"x\"}", b, &r);
    rule_result_free(&r);
    store_commit(s, b);
    store_batch_free(b);
    CHECK(rc == SAASD_ERULE && kv_get(s, "o1", "half", val, sizeof val) == SAASD_ENOTFOUND,
          "a failed call's ctx.store writes are dropped");

    store_batch_new(&b);
    rc = engine_call(e, "o2", RULE_CHANGE_QUANTITY, "{\"id\":\"s1\"}", "{\"quantity\":1}", b, &r);
    rule_result_free(&r);
    store_batch_free(b);
    check_write_file(f.rules, "o2.lua",
               "return { change_quantity = function(sub, change, ctx)\n"
               "  return { accept = ctx.store.get('in_use:s1') == nil } end }\n");
    engine_reload(e);
    rc = engine_call(e, "o2", RULE_CHANGE_QUANTITY, "{\"id\":\"s1\"}", "{\"quantity\":1}", NULL, &r);
    CHECK(rc == 0 && r.accept == 1, "an offer cannot read another offer's ctx.store keys");
    rule_result_free(&r);
    fixture_close(&f);
}

/* saasd_rule_store_reads_total{source="<source>"} from the engine's metrics. */
static long store_reads(struct engine *e, const char *source)
{
    char *buf = NULL, want[96];
    size_t len = 0, cap = 0;
    long n = -1;
    snprintf(want, sizeof want, "saasd_rule_store_reads_total{source=\"%s\"} ", source);
    if (engine_metrics(e, &buf, &len, &cap) == 0 && buf && strstr(buf, want))
        n = atol(strstr(buf, want) + strlen(want));
    free(buf);
    return n;
}

static int call_for(struct engine *e, const char *sub_id, enum rule_handler h, struct store_batch *b,
                    struct rule_result *r)
{
    char sub[128];
    snprintf(sub, sizeof sub, "{\"id\":\"%s\",\"offerId\":\"o3\",\"planId\":\"basic\",\"quantity\":1}", sub_id);
    struct engine_call_opts o = {.sub_id = sub_id, .record = 1};
    return engine_call_ex(e, "o3", h, sub, "{\"quantity\":2}", b, &o, r);
}

static void test_prefetch(void)
{
    struct fixture f;
    if (fixture_open(&f, "prefetch", "o3.lua",
               "local r = {}\n"
               "function r.change_quantity(sub, change, ctx)\n"
               "  return { accept = true, reason = tostring(ctx.store.get('seats:' .. sub.id)) .. '/' ..\n"
               "           tostring(ctx.store.get('global')) }\n"
               "end\n"
               "function r.change_plan(sub, change, ctx)\n"
               "  ctx.store.put('seats:' .. sub.id, 'mine')\n"
               "  return { accept = true, reason = ctx.store.get('seats:' .. sub.id) }\n"
               "end\n"
               "return r\n",
                     1) < 0) /* one worker: what it learned is used by the next call */
        return;
    struct engine *e = f.e;
    struct store *s = f.s;
    seed(s, "o3", "seats:sA", "3");
    seed(s, "o3", "global", "g1");
    struct rule_result r;
    int rc = call_for(e, "sA", RULE_CHANGE_QUANTITY, NULL, &r);
    CHECK(rc == 0 && r.reason && !strcmp(r.reason, "3/g1") && store_reads(e, "asked") == 2 &&
              store_reads(e, "prefetched") == 0,
          "a rule's first ctx.store reads are round trips to the daemon");
    rule_result_free(&r);

    seed(s, "o3", "seats:sB", "4");
    seed(s, "o3", "global", "g2");
    rc = call_for(e, "sB", RULE_CHANGE_QUANTITY, NULL, &r);
    CHECK(rc == 0 && r.reason && !strcmp(r.reason, "4/g2") && store_reads(e, "asked") == 2 &&
              store_reads(e, "prefetched") == 2,
          "the next call gets the same keys of its own subscription sent ahead, as committed since, "
          "without a round trip");
    json_t *reads = r.reads ? json_loads(r.reads, 0, NULL) : NULL;
    CHECK(json_object_size(reads) == 2 &&
              !strcmp(json_string_value(json_object_get(reads, "seats:sB")) ?: "", "4") &&
              !strcmp(json_string_value(json_object_get(reads, "global")) ?: "", "g2"),
          "values sent ahead and read are recorded for replay like asked ones");
    json_decref(reads);
    rule_result_free(&r);

    rc = call_for(e, "sC", RULE_CHANGE_QUANTITY, NULL, &r);
    reads = r.reads ? json_loads(r.reads, 0, NULL) : NULL;
    CHECK(rc == 0 && r.reason && !strcmp(r.reason, "nil/g2") && store_reads(e, "asked") == 2 &&
              json_is_null(json_object_get(reads, "seats:sC")),
          "a key absent from the store is sent ahead as absent: nil, recorded as null");
    json_decref(reads);
    rule_result_free(&r);

    rc = call_for(e, "sA", RULE_CHANGE_PLAN, NULL, &r);
    reads = r.reads ? json_loads(r.reads, 0, NULL) : NULL;
    CHECK(rc == 0 && r.reason && !strcmp(r.reason, "mine") && json_object_size(reads) == 0,
          "the call's own write beats the value sent ahead, and an unread value is not recorded");
    json_decref(reads);
    rule_result_free(&r);

    rc = engine_call(e, "o3", RULE_CHANGE_QUANTITY, "{\"id\":\"sB\"}", "{\"quantity\":2}", NULL, &r);
    CHECK(rc == 0 && r.reason && !strcmp(r.reason, "4/g2") && store_reads(e, "asked") == 3,
          "a call without its subscription id asks for the keys made of it");
    rule_result_free(&r);
    fixture_close(&f);
}

static void http_handler(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    (void)arg;
    if (!strcmp(httpd_path(req), "/slow"))
        usleep(600 * 1000);
    httpd_set_body(res, 200, NULL, "{\"ok\":true}");
    httpd_add_header(res, "X-Test", "yes");
}

struct bg_call {
    struct engine *e;
    struct rule_result r;
    int rc;
};

static void *bg_main(void *arg)
{
    struct bg_call *c = arg;
    c->rc = engine_call(c->e, "net", RULE_PROVISION, "{\"id\":\"s1\",\"name\":\"/slow\"}", NULL, NULL, &c->r);
    return NULL;
}

static void test_http(void)
{
    struct httpd_options ho = {0};
    struct httpd *d = NULL;
    CHECK(httpd_start(&ho, http_handler, NULL, &d) == 0, "a loopback server starts");
    if (!d)
        return;
    int port = httpd_port(d);
    char *rules = check_tmpdir("rules-http");
    check_write_file(rules, "net.lua",
               "local r = {}\n"
               "function r.provision(sub, ctx)\n"
               "  local host = sub.planId or '127.0.0.1'\n"
               "  local resp, err = ctx.http.get('http://' .. host .. ':%d' .. sub.name)\n"
               "  if not resp then return { action = 'pending', message = err } end\n"
               "  local body = ctx.json.decode(resp.body)\n"
               "  return { action = body.ok and 'activate' or 'reject', message = resp.header('x-test') }\n"
               "end\n"
               "function r.change_plan(sub, change, ctx) return { accept = true } end\n"
               "return r\n",
               port);
    struct http_client *hc = NULL;
    http_client_new(NULL, &hc);
    char *allow[] = {"127.0.0.1", NULL};
    struct engine_options opt = {.rules_dir = rules, .http = hc, .http_allow = allow, .cpu_ms = 300,
                                 .http_timeout_ms = 2000, .states = 4};
    struct engine *e = NULL;
    CHECK(engine_open(&opt, &e) == 0, "the engine opens with an HTTP client");
    if (!e)
        return;
    struct rule_result r;
    int rc = engine_call(e, "net", RULE_PROVISION, "{\"id\":\"s1\",\"name\":\"/fast\"}", NULL, NULL, &r);
    CHECK(rc == 0 && r.action == RULE_ACTION_ACTIVATE && r.message && !strcmp(r.message, "yes"),
          "ctx.http reaches an allowed host and returns status, body and headers");
    rule_result_free(&r);

    rc = engine_call(e, "net", RULE_PROVISION, "{\"id\":\"s1\",\"name\":\"/fast\",\"planId\":\"localhost\"}", NULL,
                     NULL, &r);
    CHECK(rc == 0 && r.action == RULE_ACTION_PENDING && r.message && strstr(r.message, "host not allowed: localhost"),
          "ctx.http refuses a host outside the allow-list");
    rule_result_free(&r);

    struct bg_call bg = {.e = e};
    pthread_t t;
    pthread_create(&t, NULL, bg_main, &bg);
    usleep(100 * 1000);
    double t0 = check_now_ms();
    rc = engine_call(e, "net", RULE_CHANGE_PLAN, SUB, "{}", NULL, &r);
    double fast = check_now_ms() - t0;
    rule_result_free(&r);
    pthread_join(t, NULL);
    CHECK(rc == 0 && fast < 300, "a rule waiting in ctx.http does not block other calls");
    CHECK(bg.rc == 0 && bg.r.action == RULE_ACTION_PENDING && bg.r.message && strstr(bg.r.message, "timeout") &&
              bg.r.elapsed_ms < 300 + 1500,
          "time waiting in ctx.http counts against the call: a reply slower than the budget is a timeout");
    rule_result_free(&bg.r);
    engine_close(e);

    opt.http_timeout_ms = 150;
    CHECK(engine_open(&opt, &e) == 0, "the engine opens with a short HTTP timeout");
    rc = engine_call(e, "net", RULE_PROVISION, "{\"id\":\"s1\",\"name\":\"/slow\"}", NULL, NULL, &r);
    CHECK(rc == 0 && r.action == RULE_ACTION_PENDING && r.message && strstr(r.message, "timeout"),
          "ctx.http gives up after rules.http_timeout_ms and answers nil, err");
    rule_result_free(&r);
    engine_close(e);

    opt.http = NULL;
    CHECK(engine_open(&opt, &e) == 0, "the engine opens without an HTTP client");
    rc = engine_call(e, "net", RULE_PROVISION, "{\"id\":\"s1\",\"name\":\"/fast\"}", NULL, NULL, &r);
    CHECK(rc == 0 && r.message && !strcmp(r.message, "http disabled"), "without a client ctx.http answers nil, \"http disabled\"");
    rule_result_free(&r);
    engine_close(e);
    http_client_free(hc);
    httpd_stop(d);
    check_rm_rf(rules);
    free(rules);
}

static uint64_t generation(struct engine *e)
{
    struct engine_info *info;
    engine_info(e, &info);
    uint64_t g = info->generation;
    engine_info_free(info);
    return g;
}

static void test_watch(void)
{
    char *rules = check_tmpdir("rules-watch");
    check_write_file(rules, "w.lua", "return {}\n");
    struct engine_options opt = {.rules_dir = rules, .watch_debounce_ms = 150};
    struct engine *e = NULL;
    engine_open(&opt, &e);
    CHECK(e && engine_watch_start(e) == 0, "the watcher starts");
    if (!e)
        return;
    for (int i = 0; i < 5; i++)
        check_write_file(rules, "w.lua", "return { provision = function() return { action = 'pending' } end }\n");
    double t0 = check_now_ms();
    while (generation(e) < 2 && check_now_ms() - t0 < 3000)
        usleep(20 * 1000);
    usleep(500 * 1000);
    CHECK(generation(e) == 2, "a burst of edits in the rules directory causes one reload");
    struct rule_result r;
    engine_call(e, "w", RULE_PROVISION, SUB, NULL, NULL, &r);
    CHECK(r.action == RULE_ACTION_PENDING, "the watcher's reload serves the edited rule");
    rule_result_free(&r);
    check_write_file(rules, "w.lua", "return { provision = function( }\n");
    usleep(800 * 1000);
    engine_call(e, "w", RULE_PROVISION, SUB, NULL, NULL, &r);
    CHECK(generation(e) == 2 && r.action == RULE_ACTION_PENDING, "a broken edit seen by the watcher keeps the old rules");
    rule_result_free(&r);
    engine_close(e);
    check_rm_rf(rules);
    free(rules);
}

/* A worker's ctx.notify effect is checked again in the daemon: a broken or hostile worker cannot
 * pass for saasd's own events nor send data that is not a JSON object. */
static void test_notify_effect(void)
{
    struct caps c = {0};
    const char *own[] = {"subscription.activated", "{}"}, *bare[] = {"crm", "{}"}, *list[] = {"crm.x", "[1]"};
    const char *ok[] = {"crm.seats_requested", "{\"quantity\":5}"};
    CHECK(caps_effect(&c, "notify", own, 2) == SAASD_EINVAL && caps_effect(&c, "notify", bare, 2) == SAASD_EINVAL,
          "a notify effect with saasd's own or a one-word event type is refused by the daemon");
    CHECK(caps_effect(&c, "notify", list, 2) == SAASD_EINVAL, "a notify effect whose data is not a JSON object is refused");
    CHECK(caps_effect(&c, "notify", ok, 2) == 0 && json_array_size(c.effects) == 1 &&
              json_integer_value(json_object_get(json_object_get(json_array_get(c.effects, 0), "data"), "quantity")) == 5,
          "a well-formed notify effect is kept with its type and data object");
    json_decref(c.effects);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    log_set_fd(open("/dev/null", O_WRONLY));
    test_store();
    test_prefetch();
    test_http();
    test_watch();
    test_notify_effect();
    return CHECK_DONE();
}
