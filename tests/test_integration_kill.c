/* SIGKILL of saasd under a stream of webhooks, 20 times at random moments: every webhook that
 * was answered 200 is acted on exactly once after restart. The daemon runs as a child process
 * (build/saasd serve); Microsoft is the in-process emulator, which keeps re-sending what was not
 * answered. At the end the test reads the daemon's store directly. */
#include "it_support.h"

#define ROUNDS 20
#define SUBS 4

static char dir[256], conf[512], saasd_bin[256];
static unsigned short port, admin_port;

static pid_t start_daemon(void) { return it_serve_child(saasd_bin, dir, conf, port); }

struct tally {
    json_t *ops_done;  /* op id -> 1 */
    json_t *audits;    /* op id -> count */
    json_t *timers;    /* timer name -> firings (audit records of action Timer) */
    int timers_left;   /* timers still stored */
};

static int on_timer_key(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    ((struct tally *)arg)->timers_left++;
    return 0;
}

static int on_op(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct tally *t = arg;
    json_t *j = json_loadb(val, vlen, 0, NULL);
    char id[128];
    snprintf(id, sizeof id, "%.*s", (int)klen, (const char *)key);
    if (!strcmp(it_str(j, "state"), "done"))
        json_object_set_new(t->ops_done, id, json_true());
    json_decref(j);
    return 0;
}

static int on_audit(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct tally *t = arg;
    json_t *j = json_loadb(val, vlen, 0, NULL);
    const char *op = it_str(j, "op_id");
    if (!strcmp(it_str(j, "action"), "Timer")) {
        const char *name = it_str(j, "detail");
        json_object_set_new(t->timers, name, json_integer(json_integer_value(json_object_get(t->timers, name)) + 1));
    }
    if (*op)
        json_object_set_new(t->audits, op, json_integer(json_integer_value(json_object_get(t->audits, op)) + 1));
    json_decref(j);
    return 0;
}

int main(void)
{
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    char *t = check_tmpdir("kill");
    snprintf(dir, sizeof dir, "%s", t);
    free(t);
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(saasd_bin, sizeof saasd_bin, "%s/saasd", build);
    http_client_new(NULL, &it_http);
    struct emu *emu = it_start_emu();
    CHECK(emu != NULL, "the emulator starts in-process");
    if (!emu)
        return CHECK_DONE();
    char rules[512];
    snprintf(rules, sizeof rules, "%s/rules", dir);
    mkdir(rules, 0700);
    char rule_path[600];
    snprintf(rule_path, sizeof rule_path, "%s/it-kill.lua", rules); /* offers without a file are held pending */
    /* each renewal sets a timer due at once: timers fire while the daemon is being killed */
    it_write_file(rule_path, "local r = {}\n"
                             "function r.renew(sub, event, ctx) ctx.timer.after(0, 'renew-' .. event.id) end\n"
                             "function r.timer(sub, name, data, ctx) end\n"
                             "return r\n");
    port = it_free_port();
    admin_port = it_free_port();
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, port, admin_port, NULL);
    snprintf(it_admin_url, sizeof it_admin_url, "http://127.0.0.1:%u", admin_port);
    it_point_emulator(port);
    it_offer("it-kill");

    pid_t pid = start_daemon();
    char subs[SUBS][64];
    int landed = 1;
    for (int i = 0; i < SUBS; i++) {
        char *landing = it_purchase("it-kill", 3, subs[i], sizeof subs[i]);
        long st;
        st = it_land(landing, NULL);
        landed &= st == 200;
        free(landing);
    }
    CHECK(landed, "the subscriptions are activated through the child daemon");

    int restarted = 0, triggered = 0;
    for (int round = 0; round < ROUNDS; round++) {
        /* A burst of renewals: each is an operation whose webhook the emulator delivers. */
        for (int k = 0; k < 3; k++) {
            char *op = it_customer(subs[rand() % SUBS], "renew", NULL);
            triggered += op != NULL;
            free(op);
        }
        usleep((useconds_t)(5 + rand() % 75) * 1000);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        restarted += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        pid = start_daemon();
    }
    CHECK(restarted == ROUNDS, "the daemon was killed with SIGKILL 20 times at random moments and restarted");

    /* Let the emulator finish delivering and the daemon finish acting. */
    long long until = it_now_ms() + 60000;
    int pending = 1;
    while (pending && it_now_ms() < until) {
        long st;
        json_t *w = it_emu("GET", "/_emulator/webhooks", NULL, &st);
        pending = 0;
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(w, "deliveries"), i, d) pending += !strcmp(it_str(d, "status"), "pending");
        json_decref(w);
        char url[256];
        snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics", port);
        char *m = NULL;
        json_decref(it_call("GET", url, NULL, NULL, &st, &m));
        if (m && (!strstr(m, "saasd_inbox_depth 0\n") || !strstr(m, "saasd_outbox_depth 0\n")))
            pending++;
        free(m);
        if (pending)
            usleep(100 * 1000);
    }
    CHECK(!pending, "after the kills every delivery settles and the inbox drains");
    usleep(3000 * 1000); /* the timer thread runs every second: let it fire what is due */
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);

    /* Every delivery answered 200 at least once must be done, with exactly one audit entry. */
    char data[600];
    snprintf(data, sizeof data, "%s/data", dir);
    struct store *s = NULL;
    int rc = store_open(data, NULL, &s);
    CHECK(rc == 0, "the daemon's store opens cleanly after 20 kills");
    struct tally tl = {json_object(), json_object(), json_object(), 0};
    if (s) {
        store_scan(s, STORE_TIMERS, "d", 1, on_timer_key, &tl);
        store_scan(s, STORE_OPERATIONS, NULL, 0, on_op, &tl);
        store_scan(s, STORE_AUDIT, NULL, 0, on_audit, &tl);
        store_close(s);
    }
    long st;
    json_t *w = it_emu("GET", "/_emulator/webhooks", NULL, &st);
    int answered = 0, lost = 0, twice = 0, timer_lost = 0, timer_twice = 0;
    size_t i, j;
    json_t *d, *a;
    json_array_foreach(json_object_get(w, "deliveries"), i, d) {
        int ok200 = 0;
        json_array_foreach(json_object_get(d, "attempts"), j, a) ok200 |= json_integer_value(json_object_get(a, "httpStatus")) == 200;
        if (!ok200 || strcmp(it_str(d, "action"), "Renew"))
            continue;
        answered++;
        const char *op = it_str(d, "operationId");
        long long n = json_integer_value(json_object_get(tl.audits, op));
        if (!json_object_get(tl.ops_done, op) || n == 0) {
            lost++;
            printf("# lost: operation %s was answered 200 but not acted on\n", op);
        } else if (n > 1) {
            twice++;
            printf("# twice: operation %s acted on %lld times\n", op, n);
        }
        char name[160];
        snprintf(name, sizeof name, "renew-%s", op);
        long long fired = json_integer_value(json_object_get(tl.timers, name));
        timer_lost += n > 0 && fired == 0;
        timer_twice += fired > 1;
    }
    json_decref(w);
    printf("# %d renewals triggered, %d answered 200, %d lost, %d acted on twice\n", triggered, answered, lost, twice);
    CHECK(answered > 0 && lost == 0, "every webhook answered 200 was acted on after the restarts");
    CHECK(twice == 0, "no webhook was acted on twice across the restarts");
    printf("# %zu renewal timers fired, %d never fired, %d fired twice, %d still stored\n",
           json_object_size(tl.timers), timer_lost, timer_twice, tl.timers_left);
    CHECK(json_object_size(tl.timers) > 0 && timer_lost == 0 && tl.timers_left == 0,
          "every timer a renewal set fired across the kills (late, never lost)");
    CHECK(timer_twice == 0, "no timer fired twice across 20 SIGKILLs and restarts");
    json_decref(tl.timers);
    json_decref(tl.ops_done);
    json_decref(tl.audits);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
