/* SIGKILL of saasd under a stream of webhooks, 20 times at random moments: every webhook that
 * was answered 200 is acted on exactly once after restart. The daemon runs as a child process
 * (build/saasd serve); Microsoft is the in-process emulator, which keeps re-sending what was not
 * answered. At the end the test reads the daemon's store directly. */
#include "it_support.h"

#define ROUNDS 20
#define SUBS 4

static char dir[256], conf[512], saasd_bin[256];
static unsigned short port, admin_port;

static pid_t start_daemon(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        char logpath[600];
        snprintf(logpath, sizeof logpath, "%s/daemon.log", dir);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 2);
        execl(saasd_bin, saasd_bin, "serve", "--config", conf, (char *)NULL);
        _exit(127);
    }
    /* Ready when the health endpoint answers. */
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
    for (int i = 0; i < 500; i++) {
        long st = 0;
        json_decref(it_call("GET", url, NULL, NULL, &st, NULL));
        if (st == 200 || st == 503)
            break;
        usleep(10 * 1000);
    }
    return pid;
}

struct tally {
    json_t *ops_done;  /* op id -> 1 */
    json_t *audits;    /* op id -> count */
};

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
    it_write_file(rule_path, "return {}\n");
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
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);

    /* Every delivery answered 200 at least once must be done, with exactly one audit entry. */
    char data[600];
    snprintf(data, sizeof data, "%s/data", dir);
    struct store *s = NULL;
    int rc = store_open(data, NULL, &s);
    CHECK(rc == 0, "the daemon's store opens cleanly after 20 kills");
    struct tally tl = {json_object(), json_object()};
    if (s) {
        store_scan(s, STORE_OPERATIONS, NULL, 0, on_op, &tl);
        store_scan(s, STORE_AUDIT, NULL, 0, on_audit, &tl);
        store_close(s);
    }
    long st;
    json_t *w = it_emu("GET", "/_emulator/webhooks", NULL, &st);
    int answered = 0, lost = 0, twice = 0;
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
    }
    json_decref(w);
    printf("# %d renewals triggered, %d answered 200, %d lost, %d acted on twice\n", triggered, answered, lost, twice);
    CHECK(answered > 0 && lost == 0, "every webhook answered 200 was acted on after the restarts");
    CHECK(twice == 0, "no webhook was acted on twice across the restarts");
    json_decref(tl.ops_done);
    json_decref(tl.audits);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
