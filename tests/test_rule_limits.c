/* The rule sandbox's hard guarantees, probed with rules that attack them: every call ends within
 * its wall-clock limit whatever the rule does inside C functions or ctx.http, memory a rule
 * causes to be allocated is capped (C buffers too) and never lands in the daemon's process,
 * error objects cannot crash the engine, a file that hangs at load is refused, offers do not
 * share Lua state, and the engine keeps answering after every probe. */
#include "check.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "engine/engine.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#define CPU_MS 300
#define MEM_CPU_MS 4000 /* memory probes: filling 32 MiB takes a loaded machine a while */
#define MEMORY (32u << 20)
#define MARGIN_MS 1500 /* generous: the CI machine is loaded; speed belongs to make bench */

/* Under AddressSanitizer everything runs several times slower, so a memory probe may reach its
 * CPU limit before its memory limit: there either limit ends it in time (make SANITIZE=address). */
#ifdef __SANITIZE_ADDRESS__
#define SANITIZED 1
#else
#define SANITIZED 0
#endif



/* One probe: a provision handler body (ctx in scope), the outcome it must end with, and the
 * cpu_ms it runs under (it must end within cpu_ms + MARGIN_MS). */
static const struct probe {
    const char *name;
    const char *guarantee;
    const char *body;
    enum rule_outcome outcome;
    int cpu_ms;
} probes[] = {
    {"rep_empty", "string.rep of an empty string a maxinteger times is stopped at the cpu limit",
     "string.rep('', math.maxinteger)", RULE_CPU_LIMIT, CPU_MS},
    {"table_move", "table.move over 2^50 slots is stopped at the cpu limit",
     "table.move({}, 1, 1 << 50, 1, {})", RULE_CPU_LIMIT, CPU_MS},
    {"backtrack", "a backtracking pattern is stopped at the cpu limit",
     "string.find(string.rep('a', 200), string.rep('a*', 30) .. 'b')", RULE_CPU_LIMIT, CPU_MS},
    {"backtrack_gsub", "a backtracking gsub is stopped at the cpu limit",
     "string.gsub(string.rep('a', 300), string.rep('a-', 25) .. 'b', '')", RULE_CPU_LIMIT, CPU_MS},
    {"json_huge", "ctx.json.encode of an output far past the cap ends as a memory limit",
     "local s = string.rep('\\0', 4 << 20) local t = {} for i = 1, 64 do t[i] = s end ctx.json.encode(t)",
     RULE_MEMORY_LIMIT, MEM_CPU_MS},
    {"store_flood", "1000 ctx.store.put of 1 MiB end as a memory limit",
     "local v = string.rep('v', 1 << 20) for i = 1, 1000 do ctx.store.put('k' .. i, v) end", RULE_MEMORY_LIMIT, MEM_CPU_MS},
    {"concat_big", "table.concat past the cap ends as a memory limit",
     "local s = string.rep('x', 1 << 20) local t = {} for i = 1, 64 do t[i] = s end table.concat(t)",
     RULE_MEMORY_LIMIT, MEM_CPU_MS},
    {"format_big", "string.format of a huge string ends as a memory limit",
     "local s = string.rep('y', 20 << 20) string.format('%s%s', s, s)", RULE_MEMORY_LIMIT, MEM_CPU_MS},
    {"utf8_big", "utf8.char repeated past the cap ends as a memory limit",
     "local t = {} for i = 1, 1 << 24 do t[i] = utf8.char(0x10FFFF) end", RULE_MEMORY_LIMIT, MEM_CPU_MS},
    {"err_index", "an error object whose __index raises is an error, not a crash",
     "error(setmetatable({}, { __index = function() error('gotcha') end }))", RULE_ERROR, CPU_MS},
    {"err_tostring", "an error object whose __tostring raises is an error, not a crash",
     "error(setmetatable({}, { __tostring = function() error('gotcha') end }))", RULE_ERROR, CPU_MS},
    {"err_tostring_loop", "an error object whose __tostring never returns is an error, not a hang",
     "error(setmetatable({}, { __tostring = function() while true do end end }))", RULE_ERROR, CPU_MS},
    {"err_index_loop", "an error object whose __index never returns is an error, not a hang",
     "error(setmetatable({}, { __index = function() while true do end end }))", RULE_ERROR, CPU_MS},
};
#define NPROBES (sizeof probes / sizeof probes[0])

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void write_bomb(const char *dir)
{
    char *text = calloc(1, 64 * 1024);
    strcat(text, "local probes = {}\n");
    for (size_t i = 0; i < NPROBES; i++) {
        char line[1024];
        snprintf(line, sizeof line, "probes['%s'] = function(ctx) %s end\n", probes[i].name, probes[i].body);
        strcat(text, line);
    }
    strcat(text, "return { provision = function(sub, ctx)\n"
                 "  probes[sub.name](ctx)\n"
                 "  return { action = 'activate' } end }\n");
    check_write_file(dir, "bomb.lua", "%s", text);
    free(text);
}

static int call_offer(struct engine *e, const char *offer, const char *name, struct rule_result *r)
{
    char sub[256];
    snprintf(sub, sizeof sub, "{\"id\":\"s1\",\"name\":\"%s\"}", name);
    return engine_call(e, offer, RULE_PROVISION, sub, NULL, NULL, r);
}

static int good_answers(struct engine *e)
{
    struct rule_result r;
    int rc = call_offer(e, "good", "x", &r);
    int ok = rc == 0 && r.message && !strcmp(r.message, "OK");
    rule_result_free(&r);
    return ok;
}

static double worst_ms;
static const char *worst_name = "";

static void note_time(const char *name, double ms)
{
    if (ms > worst_ms) {
        worst_ms = ms;
        worst_name = name;
    }
}

static void test_probes(void)
{
    char *dir = check_tmpdir("probes");
    write_bomb(dir);
    check_write_file(dir, "good.lua", "return { provision = function(sub, ctx)\n"
                                      "  return { action = 'activate', message = string.upper('ok') } end }\n");
    struct engine *fast = NULL, *slow = NULL;
    struct engine_options opt = {.rules_dir = dir, .cpu_ms = CPU_MS, .memory = MEMORY, .states = 2};
    int ok = engine_open(&opt, &fast) == 0;
    opt.cpu_ms = MEM_CPU_MS;
    ok &= engine_open(&opt, &slow) == 0;
    CHECK(ok, "the probe rules load");
    if (!ok)
        return;
    good_answers(fast);
    good_answers(slow);
    long rss0 = rss_kib();
    int all_answer = 1;
    for (size_t i = 0; i < NPROBES; i++) {
        struct engine *e = probes[i].cpu_ms == CPU_MS ? fast : slow;
        struct rule_result r;
        double t0 = check_now_ms();
        int rc = call_offer(e, "bomb", probes[i].name, &r);
        double took = check_now_ms() - t0;
        note_time(probes[i].name, took);
        printf("# %-18s %-13s %6.0f ms  %s\n", probes[i].name, rule_outcome_name(r.outcome), took,
               r.error ? r.error : "");
        int outcome_ok = r.outcome == probes[i].outcome ||
                         (SANITIZED && probes[i].outcome == RULE_MEMORY_LIMIT && r.outcome == RULE_CPU_LIMIT);
        CHECK(rc < 0 && outcome_ok && r.error && took < probes[i].cpu_ms + MARGIN_MS, probes[i].guarantee);
        rule_result_free(&r);
        all_answer &= good_answers(e);
    }
    CHECK(all_answer, "after every probe the engine still answers other offers");
    long grown = rss_kib() - rss0;
    printf("# the test process grew by %ld KiB during the probes\n", grown);
    CHECK(rss0 > 0 && grown < 64 * 1024, "C-side memory bombs never grow the daemon's own process");
    char *metrics = NULL;
    size_t mlen = 0, mcap = 0;
    engine_metrics(fast, &metrics, &mlen, &mcap);
    const char *m = metrics ? strstr(metrics, "\nsaasd_rule_workers_replaced_total ") : NULL;
    CHECK(m && atoi(m + strlen("\nsaasd_rule_workers_replaced_total ")) >= 4,
          "every worker killed at a deadline is counted in saasd_rule_workers_replaced_total");
    free(metrics);
    engine_close(fast);
    engine_close(slow);
    check_rm_rf(dir);
    free(dir);
}

/* ---- ctx.http: wall time counts ---- */

static void slow_handler(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    (void)arg;
    (void)req;
    usleep(200 * 1000);
    httpd_set_body(res, 200, NULL, "slow");
}

static void test_http_wall_time(void)
{
    struct httpd_options ho = {0};
    struct httpd *d = NULL;
    if (httpd_start(&ho, slow_handler, NULL, &d) != 0) {
        CHECK(0, "a loopback server starts");
        return;
    }
    char *dir = check_tmpdir("http-wall");
    check_write_file(dir, "net.lua",
                     "return { provision = function(sub, ctx)\n"
                     "  local n = 0\n"
                     "  for i = 1, 12 do\n"
                     "    local r = ctx.http.get('http://127.0.0.1:%d/slow')\n"
                     "    if r then n = n + 1 end\n"
                     "  end\n"
                     "  return { action = 'activate', message = tostring(n) } end }\n",
                     httpd_port(d));
    struct http_client *hc = NULL;
    http_client_new(NULL, &hc);
    char *allow[] = {"127.0.0.1", NULL};
    struct engine_options opt = {.rules_dir = dir, .cpu_ms = CPU_MS, .http = hc, .http_allow = allow,
                                 .http_timeout_ms = 3000};
    struct engine *e = NULL;
    engine_open(&opt, &e);
    struct rule_result r = {0};
    double t0 = check_now_ms();
    int rc = e ? engine_call(e, "net", RULE_PROVISION, "{\"id\":\"s1\"}", NULL, NULL, &r) : -1;
    double took = check_now_ms() - t0;
    note_time("http_slow_calls", took);
    printf("# twelve 200 ms ctx.http calls under cpu_ms %d: %s in %.0f ms (%s answered)\n", CPU_MS,
           rule_outcome_name(r.outcome), took, r.message ? r.message : "-");
    CHECK(rc == 0 && took < CPU_MS + MARGIN_MS,
          "a handler making twelve 200 ms ctx.http calls (2.4 s) ends within cpu_ms: HTTP waits count and have a budget");
    rule_result_free(&r);
    engine_close(e);
    http_client_free(hc);
    httpd_stop(d);
    check_rm_rf(dir);
    free(dir);
}

/* ---- loading ---- */

static void test_load_hang(void)
{
    char *dir = check_tmpdir("load-hang");
    check_write_file(dir, "good.lua", "return { provision = function() return { action = 'activate', message = 'OK' } end }\n");
    struct engine_options opt = {.rules_dir = dir, .cpu_ms = CPU_MS, .memory = MEMORY};
    struct engine *e = NULL;
    CHECK(engine_open(&opt, &e) == 0, "generation 1 loads");
    if (!e)
        return;
    check_write_file(dir, "hang.lua", "string.rep('', math.maxinteger)\nreturn {}\n");
    double t0 = check_now_ms();
    int rc = engine_reload(e);
    double took = check_now_ms() - t0;
    note_time("load_hang_reload", took);
    CHECK(rc == SAASD_ERULE && took < CPU_MS + MARGIN_MS,
          "a file whose top level hangs inside a C function is refused by reload in time");
    CHECK(good_answers(e), "after the refused reload the old generation keeps serving");
    engine_close(e);

    t0 = check_now_ms();
    e = NULL;
    rc = engine_open(&opt, &e);
    took = check_now_ms() - t0;
    note_time("load_hang_open", took);
    CHECK(rc == SAASD_ERULE && e == NULL && took < CPU_MS + MARGIN_MS,
          "a rules directory with a file that hangs at load is refused at start, promptly");
    check_write_file(dir, "hang.lua", "local s = string.rep('\\0', 4 << 20) local t = {}\n"
                                      "for i = 1, 64 do t[i] = s end\n"
                                      "require('cjson').encode(t)\nreturn {}\n");
    char text[2048] = "";
    struct engine_options co = {.cpu_ms = CPU_MS, .memory = MEMORY};
    rc = engine_check_dir(dir, &co, NULL, NULL);
    CHECK(rc == SAASD_ERULE, "rules check refuses a file whose top level bombs memory in a C library");
    (void)text;
    check_rm_rf(dir);
    free(dir);
}

/* ---- isolation between offers ---- */

static void test_offer_states(void)
{
    char *dir = check_tmpdir("offers");
    /* the evil offer tries to rewrite what every rule shares: the string library, through
     * whatever hole it finds (here: pairs() on the read-only proxy, and the string metatable) */
    check_write_file(dir, "evil.lua",
                     "return { provision = function(sub, ctx)\n"
                     "  pcall(function() local _, real = pairs(string); real.upper = function() return 'pwned' end end)\n"
                     "  pcall(function() local _, real = pairs(ctx); real.now = function() return 0 end end)\n"
                     "  return { action = 'activate' } end }\n");
    check_write_file(dir, "seats-pro.lua",
                     "return { provision = function(sub, ctx)\n"
                     "  return { action = 'activate', message = string.upper('ok') .. ('ok'):upper() ..\n"
                     "           (ctx.now() > 0 and '+' or '0') } end }\n");
    struct engine_options opt = {.rules_dir = dir, .states = 1};
    struct engine *e = NULL;
    CHECK(engine_open(&opt, &e) == 0, "an evil offer and seats-pro load side by side");
    if (!e)
        return;
    struct rule_result r;
    call_offer(e, "evil", "x", &r);
    rule_result_free(&r);
    int rc = call_offer(e, "seats-pro", "x", &r);
    CHECK(rc == 0 && r.message && !strcmp(r.message, "OKOK+"),
          "one offer's rule cannot change the string library or ctx another offer sees");
    rule_result_free(&r);
    engine_close(e);

    /* two offers without a file of their own: the same default.lua, a state each */
    check_write_file(dir, "default.lua", "local seen = 0\n"
                                         "return { provision = function(sub, ctx)\n"
                                         "  seen = seen + 1\n"
                                         "  return { action = 'activate', message = tostring(seen) } end }\n");
    e = NULL;
    engine_open(&opt, &e);
    struct rule_result r2 = {0};
    call_offer(e, "offer-a", "x", &r);
    rc = call_offer(e, "offer-b", "x", &r2);
    CHECK(rc == 0 && r.message && r2.message && !strcmp(r.message, "1") && !strcmp(r2.message, "1"),
          "offers served by the same default.lua do not share its module-level variables");
    rule_result_free(&r);
    rule_result_free(&r2);
    engine_close(e);
    check_rm_rf(dir);
    free(dir);
}

/* ---- a worker killed from outside while idle ---- */

/* SIGKILL every child process of this test (the engine's idle rule workers). */
static int kill_children(void)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *rp = strrchr(buf, ')'); /* the name may hold spaces: fields follow its ')' */
        char state;
        int pid = atoi(de->d_name), ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid() && state != 'Z' &&
            kill(pid, SIGKILL) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void test_idle_worker_killed(void)
{
    char *dir = check_tmpdir("idle-kill");
    check_write_file(dir, "good.lua", "return { provision = function() return { action = 'activate', message = 'OK' } end }\n");
    struct engine_options opt = {.rules_dir = dir, .cpu_ms = CPU_MS, .states = 2};
    struct engine *e = NULL;
    engine_open(&opt, &e);
    int ok = e && good_answers(e);
    int killed = kill_children();
    usleep(100 * 1000);
    CHECK(ok && killed > 0 && good_answers(e) && good_answers(e),
          "a rule worker killed while idle (OOM killer, an operator) costs no call: a fresh one serves");
    engine_close(e);
    check_rm_rf(dir);
    free(dir);
}

/* ---- stopping ---- */

struct hung {
    struct engine *e;
    int rc;
};

static void *hung_main(void *arg)
{
    struct hung *h = arg;
    struct rule_result r;
    h->rc = call_offer(h->e, "bomb", "rep_empty", &r);
    rule_result_free(&r);
    return NULL;
}

static void test_stop(void)
{
    char *dir = check_tmpdir("stop");
    write_bomb(dir);
    struct engine_options opt = {.rules_dir = dir, .cpu_ms = CPU_MS, .memory = MEMORY};
    struct engine *e = NULL;
    engine_open(&opt, &e);
    if (!e) {
        CHECK(0, "the bomb rules load");
        return;
    }
    struct hung h = {.e = e};
    double t0 = check_now_ms();
    pthread_t t;
    pthread_create(&t, NULL, hung_main, &h);
    pthread_join(t, NULL); /* what a stopping daemon does: wait for its calls */
    engine_close(e);
    double took = check_now_ms() - t0;
    note_time("stop_with_hung_rule", took);
    CHECK(h.rc == SAASD_ELIMIT && took < CPU_MS + MARGIN_MS,
          "a rule hung inside a C function does not hold up engine_close (daemon stop)");
    check_rm_rf(dir);
    free(dir);
}

int main(void)
{
    test_probes();
    test_http_wall_time();
    test_load_hang();
    test_offer_states();
    test_idle_worker_killed();
    test_stop();
    printf("# worst wall time of any probe: %.0f ms (%s), cpu_ms %d\n", worst_ms, worst_name, CPU_MS);
    return CHECK_DONE();
}
