/* The daemon's side of rule workers (see worker.h): spawn, load, call under a wall-clock
 * deadline, answer capability requests, SIGKILL and reap. Called by engine.c with no lock
 * held; a worker is used by one thread at a time. */
#include "engine/worker.h"
#include "core/err.h"
#include "engine/prefetch.h"
#include "engine/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define WORKER_FD 3 /* requests in; replies go out on WORKER_FD + 1 */
#define WORKER_ENV "SAASD_RULE_WORKER_FD"

/* Any program linking libsaasd becomes a rule worker when started with WORKER_ENV set: this
 * runs before its main(). engine.c calls into this file, so the linker always keeps it. */
__attribute__((constructor)) static void rule_worker_entry(void)
{
    const char *fd = getenv(WORKER_ENV);
    if (fd && *fd)
        _exit(worker_main(atoi(fd), atoi(fd) + 1));
}

static char **worker_env(void)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], WORKER_ENV "=", sizeof WORKER_ENV) != 0)
            env[k++] = environ[i];
    env[k] = (char *)(uintptr_t)(WORKER_ENV "=3");
    return env;
}

static int await_hello(struct worker *w)
{
    struct wire_msg m;
    int rc = wire_recv(w->fd, limits_now_ns() + (int64_t)WORKER_START_MS * 1000000, 64, &w->rx, &m);
    if (rc == 0 && m.type != W_HELLO)
        rc = SAASD_EINVAL;
    wire_msg_free(&m);
    return rc;
}

int worker_spawn(const char *exe, struct worker **out)
{
    *out = NULL;
    if (!exe || !*exe)
        exe = getenv("SAASD_RULE_WORKER");
    if (!exe || !*exe)
        exe = "/proc/self/exe";
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return SAASD_ENOMEM;
    w->fd = w->out = -1;
    /* One socket pair per direction: a reader freeing what it read wakes whoever sleeps on
     * the sender's socket. With one pair for both directions that sleeper is the sender
     * itself, waiting for its answer, woken for nothing: one more wake-up per message on this
     * VM, where wake-ups are the dearest thing. */
    int req[2], resp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, req) != 0) {
        free(w);
        return SAASD_EIO;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, resp) != 0) {
        close(req[0]);
        close(req[1]);
        free(w);
        return SAASD_EIO;
    }
    char **env = worker_env();
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* dup2 onto 3 and 4 clears close-on-exec; the child's ends are first moved above 4 so that
     * neither dup2 overwrites the other's source */
    int cin = fcntl(req[1], F_DUPFD_CLOEXEC, WORKER_FD + 2), cout = fcntl(resp[1], F_DUPFD_CLOEXEC, WORKER_FD + 2);
    posix_spawn_file_actions_adddup2(&fa, cin, WORKER_FD);
    posix_spawn_file_actions_adddup2(&fa, cout, WORKER_FD + 1);
    /* the daemon's threads block SIGTERM & co. for sigwait: the worker starts clean */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)(uintptr_t)exe, (char *)(uintptr_t)"rule-worker", NULL};
    int rc = env && cin >= 0 && cout >= 0 ? posix_spawn(&w->pid, exe, &fa, &attr, argv, env) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(env);
    if (cin >= 0)
        close(cin);
    if (cout >= 0)
        close(cout);
    close(req[1]);
    close(resp[1]);
    w->fd = resp[0];
    w->out = req[0];
    if (rc != 0) {
        w->pid = 0;
        worker_free(w);
        return SAASD_EIO;
    }
    /* without its slice timeouts a read could outwait the call's deadline */
    if ((rc = wire_daemon_end(w->fd, &w->rx)) < 0 || (rc = wire_daemon_end(w->out, &w->rx)) < 0 ||
        (rc = await_hello(w)) < 0) { /* not a worker (a wrong SAASD_RULE_WORKER?) or too slow */
        worker_free(w);
        return SAASD_EIO;
    }
    *out = w;
    return 0;
}

int worker_idle_ok(const struct worker *w)
{
    /* an idle worker never speaks first: readable or hung up means it died meanwhile */
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    return !w->dead && w->rx.len == 0 && poll(&p, 1, 0) == 0;
}

static void reap(struct worker *w, int *status)
{
    *status = 0;
    if (w->pid <= 0)
        return;
    kill(w->pid, SIGKILL); /* no-op on a process that already died: its status stays */
    while (waitpid(w->pid, status, 0) < 0 && errno == EINTR)
        ;
    w->pid = 0;
    w->dead = 1;
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    int st;
    reap(w, &st);
    if (w->fd >= 0)
        close(w->fd);
    if (w->out >= 0)
        close(w->out);
    wire_rx_free(&w->rx);
    for (size_t i = 0; i < w->nkeys; i++)
        free(w->keys[i]);
    free(w->keys);
    free(w->pf);
    free(w);
}

/* How a worker that died in the middle of a request is reported: by what ended it. */
static const struct death {
    int signaled; /* 1: value is a signal; 0: an exit status */
    int value;    /* -1: any */
    enum rule_outcome outcome;
    const char *text;
} deaths[] = {
    {1, SIGABRT, RULE_MEMORY_LIMIT,
     "memory limit: the rule's worker aborted inside a C library (out of memory under its limit)"},
    {0, 255, RULE_MEMORY_LIMIT,
     "memory limit: the rule's worker exited inside a C library (out of memory under its limit)"},
    {1, SIGKILL, RULE_MEMORY_LIMIT, "the rule's worker was killed from outside (out of memory?)"},
    {1, SIGALRM, RULE_CPU_LIMIT, "cpu limit: the rule's worker stopped itself at its alarm"},
    {1, -1, RULE_ERROR, "the rule's worker crashed"},
    {0, -1, RULE_ERROR, "the rule's worker exited unexpectedly"},
};

static const struct death *death_of(int status, char *buf, size_t size)
{
    int sig = WIFSIGNALED(status), v = sig ? WTERMSIG(status) : WEXITSTATUS(status);
    const struct death *d = deaths;
    while (d->signaled != sig || (d->value != -1 && d->value != v))
        d++;
    snprintf(buf, size, "%s (%s %d); the call was stopped", d->text, sig ? "signal" : "exit status", v);
    return d;
}

/* ---- loading ---- */

/* A state per offer and exact text: offers served by the same default.lua get a state each. */
static void key_of(const struct rule_file *f, const char *offer, char *buf, size_t size)
{
    snprintf(buf, size, "%s %s %s", offer, f->sha256, f->path);
}

long worker_slot(const struct worker *w, const struct rule_file *f, const char *offer)
{
    char key[4400];
    key_of(f, offer, key, sizeof key);
    for (size_t i = 0; i < w->nkeys; i++)
        if (w->keys[i] && !strcmp(w->keys[i], key))
            return (long)i;
    return -1;
}

/* Reserve the next slot for f's key (NULL until loaded). */
static long new_slot(struct worker *w)
{
    if (w->nkeys == w->capkeys) {
        size_t cap = w->capkeys ? 2 * w->capkeys : 8;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k)
            return -1;
        w->keys = k;
        struct prefetch *pf = realloc(w->pf, cap * sizeof *pf);
        if (!pf)
            return -1;
        w->pf = pf;
        w->capkeys = cap;
    }
    w->keys[w->nkeys] = NULL;
    memset(&w->pf[w->nkeys], 0, sizeof w->pf[0]);
    return (long)w->nkeys++;
}

int worker_landing(struct worker *w, long i, int cpu_ms, char **json)
{
    *json = NULL;
    int64_t kill_at = limits_now_ns() + ((int64_t)cpu_ms + WORKER_GRACE_MS) * 1000000;
    struct wire_buf b = {0};
    wire_begin(&b, W_LANDING);
    wire_put_int(&b, (long long)i);
    int rc = wire_send(w->out, &b, kill_at);
    wire_buf_free(&b);
    struct wire_msg m = {0};
    if (rc == 0)
        rc = wire_recv(w->fd, kill_at, 1u << 20, &w->rx, &m);
    if (rc == 0 && m.type != W_LANDING_JSON)
        rc = SAASD_EINVAL;
    if (rc < 0) {
        int st;
        reap(w, &st);
        wire_msg_free(&m);
        return rc;
    }
    rc = (int)wire_int(&m, 0, SAASD_EINTERNAL);
    const char *text = wire_str(&m, 1);
    if (rc == 0 && text && !(*json = strdup(text)))
        rc = SAASD_ENOMEM;
    wire_msg_free(&m);
    return rc;
}

int worker_load(struct worker *w, const struct rule_file *f, const char *offer, int cpu_ms,
                size_t memory, vm_problem_fn problem, void *arg, long *slot)
{
    char msg[1200];
    long i = new_slot(w);
    *slot = -1;
    if (i < 0)
        return SAASD_ENOMEM;
    if (w->nkeys > WORKER_MAX_STATES)
        w->dead = 1; /* retired after this: a fresh worker starts without old texts */
    int64_t kill_at = limits_now_ns() + ((int64_t)cpu_ms + WORKER_GRACE_MS) * 1000000;
    struct wire_buf b = {0};
    wire_begin(&b, W_LOAD);
    wire_put_int(&b, (long long)i);
    wire_put_str(&b, f->path);
    wire_put(&b, f->source, f->len);
    wire_put_int(&b, cpu_ms);
    wire_put_int(&b, (long long)memory);
    int rc = wire_send(w->out, &b, kill_at);
    wire_buf_free(&b);
    struct wire_msg m = {0};
    if (rc == 0)
        rc = wire_recv(w->fd, kill_at, 1u << 20, &w->rx, &m);
    if (rc == 0 && m.type != W_LOADED)
        rc = SAASD_EINVAL;
    if (rc < 0) {
        int st;
        int was_alive = rc == SAASD_ETIMEOUT;
        reap(w, &st);
        if (was_alive)
            snprintf(msg, sizeof msg, "%s:1: cpu limit: the file's top level ran longer than %d ms of wall time "
                     "(its worker process was killed)", f->path, cpu_ms);
        else {
            char why[300];
            death_of(st, why, sizeof why);
            snprintf(msg, sizeof msg, "%s:1: %s", f->path, why);
        }
        if (problem)
            problem(arg, msg);
        wire_msg_free(&m);
        return SAASD_ELIMIT;
    }
    rc = (int)wire_int(&m, 0, SAASD_EINTERNAL);
    for (size_t k = 1; k < m.n; k++)
        if (problem && m.f[k].p)
            problem(arg, m.f[k].p);
    wire_msg_free(&m);
    char key[4400];
    key_of(f, offer, key, sizeof key);
    if (rc == 0 && !(w->keys[i] = strdup(key)))
        rc = SAASD_ENOMEM;
    if (rc == 0)
        *slot = i;
    if (rc == SAASD_ELIMIT)
        w->dead = 1; /* a worker whose rule hit a limit is replaced, not reused */
    return rc;
}

/* ---- calls ---- */

/* A ctx.store read the worker asks for (not among the values sent with the call): answered,
 * and its key learned for the next calls of this state. */
static int answer_store(struct worker *w, struct prefetch *pf, struct caps *c, const struct wire_msg *m,
                        int64_t kill_at)
{
    char *val = NULL;
    size_t vlen = 0;
    const char *key = m->n > 0 ? m->f[0].p : NULL;
    int rc = key ? caps_store_get(c, key, m->f[0].len, &val, &vlen) : SAASD_EINVAL;
    if (key) {
        c->reads_asked++;
        if (!c->replay_reads)
            prefetch_learn(pf, c->sub_id, key, m->f[0].len);
    }
    struct wire_buf b = {0};
    wire_begin(&b, W_STORE_VAL);
    wire_put_int(&b, rc);
    wire_put(&b, rc == 0 ? (val ? val : "") : NULL, vlen);
    free(val);
    rc = wire_send(w->out, &b, kill_at);
    wire_buf_free(&b);
    return rc;
}

static int answer_http(struct worker *w, struct caps *c, const struct wire_msg *m, int64_t kill_at)
{
    const char *hdr[64];
    size_t nh = m->n > 4 ? (m->n - 4) / 2 : 0;
    if (nh > 32)
        nh = 32;
    for (size_t k = 0; k < 2 * nh; k++)
        hdr[k] = wire_str(m, 4 + k) ? wire_str(m, 4 + k) : "";
    struct bind_http_req req = {
        .method = wire_str(m, 0) ? wire_str(m, 0) : "GET", .url = wire_str(m, 1) ? wire_str(m, 1) : "",
        .body = wire_str(m, 2), .body_len = m->n > 2 ? m->f[2].len : 0,
        .timeout_ms = (long)wire_int(m, 3, 0), .headers = hdr, .nheaders = nh,
    };
    struct bind_http_resp resp;
    char err[512] = "";
    int rc = caps_http(c, &req, &resp, err, sizeof err);
    struct wire_buf b = {0};
    wire_begin(&b, W_HTTP_RESP);
    wire_put_str(&b, rc < 0 ? (err[0] ? err : "io_error") : NULL);
    wire_put_int(&b, resp.status);
    wire_put_str(&b, resp.headers ? resp.headers : "");
    wire_put(&b, resp.body ? resp.body : "", resp.body ? resp.body_len : 0);
    bind_http_resp_free(&resp);
    rc = wire_send(w->out, &b, kill_at);
    wire_buf_free(&b);
    return rc;
}

static void answer_log(struct caps *c, const struct wire_msg *m)
{
    const char *kv[28];
    size_t np = m->n > 2 ? (m->n - 2) / 2 : 0;
    if (np > 14)
        np = 14;
    for (size_t k = 0; k < 2 * np; k++)
        kv[k] = wire_str(m, 2 + k) ? wire_str(m, 2 + k) : "";
    caps_log(c, (int)wire_int(m, 0, 1), wire_str(m, 1) ? wire_str(m, 1) : "", kv, np);
}

static char *dup_opt(const struct wire_msg *m, size_t i)
{
    const char *s = wire_str(m, i);
    return s ? strdup(s) : NULL;
}

/* W_EFFECT: kind, args...; kept in caps until the call's result decides its fate. */
static int answer_effect(struct caps *c, const struct wire_msg *m)
{
    const char *args[4] = {0};
    size_t n = m->n > 1 ? m->n - 1 : 0;
    if (n > 4)
        return SAASD_EINVAL;
    for (size_t i = 0; i < n; i++)
        args[i] = wire_str(m, i + 1);
    int rc = caps_effect(c, wire_str(m, 0), args, n);
    return rc == SAASD_ENOMEM ? rc : rc < 0 ? SAASD_EINVAL : 0;
}

/* W_RESULT into out, *used (which prefetched values the rule read) and *writes (see worker.c
 * for the layout). */
static int take_result(struct worker *w, const struct wire_msg *m, struct rule_result *out, unsigned *used,
                       struct bind_kv **writes)
{
    int rc = (int)wire_int(m, 0, SAASD_EINTERNAL);
    long long o = wire_int(m, 1, RULE_ERROR);
    out->outcome = o >= 0 && o < RULE_OUTCOME_COUNT ? (enum rule_outcome)o : RULE_ERROR;
    long long a = wire_int(m, 2, 0);
    out->action = a >= RULE_ACTION_NONE && a <= RULE_ACTION_REJECT ? (enum rule_action)a : RULE_ACTION_NONE;
    out->accept = (int)wire_int(m, 3, 0);
    out->message = dup_opt(m, 4);
    out->reason = dup_opt(m, 5);
    out->redirect = dup_opt(m, 6);
    out->has_bill = (int)wire_int(m, 7, 0);
    out->bill = wire_str(m, 8) ? strtod(wire_str(m, 8), NULL) : 0;
    out->error = dup_opt(m, 9);
    out->error_line = (int)wire_int(m, 10, 0);
    if (wire_int(m, 11, 1))
        w->dead = 1; /* hit a limit: replaced, not reused */
    *used = (unsigned)wire_int(m, 12, 0);
    for (size_t k = 13; rc == 0 && k + 1 < m->n; k += 2) {
        struct bind_kv *kv = calloc(1, sizeof *kv);
        if (!kv || !m->f[k].p || !(kv->key = malloc(m->f[k].len + 1))) {
            free(kv);
            return SAASD_ENOMEM;
        }
        memcpy(kv->key, m->f[k].p, m->f[k].len);
        kv->klen = m->f[k].len;
        kv->next = *writes;
        *writes = kv;
        if (m->f[k + 1].p) {
            if (!(kv->val = malloc(m->f[k + 1].len + 1)))
                return SAASD_ENOMEM;
            memcpy(kv->val, m->f[k + 1].p, m->f[k + 1].len);
            kv->vlen = m->f[k + 1].len;
        }
    }
    return rc;
}

static void fail_call(struct rule_result *out, const struct rule_file *f, enum rule_handler h,
                      enum rule_outcome o, const char *text)
{
    char buf[1600];
    snprintf(buf, sizeof buf, "offer '%s' handler '%s' in %s: %s", out->offer_id, rule_handler_name(h),
             f->path, text);
    free(out->error);
    out->error = strdup(buf);
    out->outcome = o;
    out->action = RULE_ACTION_NONE;
    out->accept = 0;
}

/* The committed values sent ahead with one call (engine/prefetch.h). */
struct ahead {
    size_t n;
    size_t tpl[PREFETCH_MAX];
    char key[PREFETCH_MAX][PREFETCH_KEY_MAX];
    size_t klen[PREFETCH_MAX];
    char *val[PREFETCH_MAX]; /* NULL: absent */
    size_t vlen[PREFETCH_MAX];
};

/* Read the values of the state's key templates for this call and append them to the W_CALL.
 * Not in replay (its reads come from the record) and only small values: a key left out is
 * simply asked for. */
static void send_ahead(const struct prefetch *pf, const struct caps *c, struct wire_buf *b, struct ahead *a)
{
    a->n = 0;
    if (!c->store || c->replay_reads)
        return;
    for (size_t t = 0; t < pf->n; t++) {
        size_t k = a->n, klen = prefetch_key(pf, t, c->sub_id, a->key[k]);
        char *val = NULL;
        size_t vlen = 0;
        int rc = klen ? caps_store_peek(c, a->key[k], klen, &val, &vlen) : SAASD_EINVAL;
        if ((rc != 0 && rc != SAASD_ENOTFOUND) || vlen > PREFETCH_VALUE_MAX) {
            free(val);
            continue;
        }
        if (rc == 0 && !val && !(val = strdup("")))
            continue;
        a->tpl[k] = t;
        a->klen[k] = klen;
        a->val[k] = rc == 0 ? val : NULL;
        a->vlen[k] = vlen;
        wire_put(b, a->key[k], klen);
        wire_put(b, a->val[k], vlen);
        a->n++;
    }
}

/* After the call's result: the values the rule read count as its reads (recorded for replay
 * as if asked for), and the templates learn which were used. */
static void settle_ahead(struct prefetch *pf, struct caps *c, struct ahead *a, unsigned used, int answered)
{
    for (size_t k = 0; answered && k < a->n; k++)
        if (used & (1u << k)) {
            caps_store_note(c, a->key[k], a->klen[k], a->val[k], a->vlen[k]);
            c->reads_prefetched++;
        }
    if (answered)
        prefetch_settle(pf, a->tpl, a->n, used);
    for (size_t k = 0; k < a->n; k++)
        free(a->val[k]);
    a->n = 0;
}

int worker_call(struct worker *w, long i, const struct rule_file *f, enum rule_handler h,
                const char *sub_json, const char *arg_json, int cpu_ms, size_t memory,
                struct caps *caps, struct rule_result *out, struct bind_kv **writes)
{
    *writes = NULL;
    int64_t t0 = limits_now_ns();
    caps->deadline_ns = t0 + (int64_t)cpu_ms * 1000000;
    int64_t kill_at = caps->deadline_ns + (int64_t)WORKER_GRACE_MS * 1000000;
    struct wire_buf b = {0};
    wire_begin(&b, W_CALL);
    wire_put_int(&b, (long long)i);
    wire_put_str(&b, out->offer_id);
    wire_put_int(&b, h);
    wire_put_str(&b, sub_json);
    wire_put_str(&b, arg_json);
    wire_put_int(&b, cpu_ms);
    wire_put_int(&b, (long long)memory);
    wire_put_int(&b, caps->now_s);
    struct ahead ahead;
    send_ahead(&w->pf[i], caps, &b, &ahead);
    int rc = wire_send(w->out, &b, kill_at);
    wire_buf_free(&b);
    /* a frame is bounded by what the worker could hold: writes are charged to the same cap */
    size_t max = memory + (1u << 20);
    while (rc == 0) {
        struct wire_msg m;
        if ((rc = wire_recv(w->fd, kill_at, max, &w->rx, &m)) < 0)
            break;
        if (m.type == W_RESULT) {
            unsigned used = 0;
            rc = take_result(w, &m, out, &used, writes);
            settle_ahead(&w->pf[i], caps, &ahead, used, 1);
            wire_msg_free(&m);
            if (rc < 0 && out->outcome <= RULE_DEFAULT) {
                fail_call(out, f, h, RULE_ERROR, "could not take the rule's result (out of memory)");
                rc = SAASD_ERULE;
            }
            if (rc < 0) {
                bind_kv_free(*writes);
                *writes = NULL;
            }
            return rc;
        }
        if (m.type == W_STORE_GET)
            rc = answer_store(w, &w->pf[i], caps, &m, kill_at);
        else if (m.type == W_HTTP)
            rc = answer_http(w, caps, &m, kill_at);
        else if (m.type == W_LOG)
            answer_log(caps, &m);
        else if (m.type == W_EFFECT)
            rc = answer_effect(caps, &m);
        else
            rc = SAASD_EINVAL;
        wire_msg_free(&m);
    }
    /* the deadline passed, the worker died, or it broke the protocol: it is killed */
    settle_ahead(&w->pf[i], caps, &ahead, 0, 0);
    int st;
    reap(w, &st);
    char text[600];
    if (rc == SAASD_ETIMEOUT) {
        snprintf(text, sizeof text, "cpu limit: the call ran longer than %d ms of wall time (time in C "
                 "functions and ctx.http counts); its worker process was killed", cpu_ms);
        fail_call(out, f, h, RULE_CPU_LIMIT, text);
        return SAASD_ELIMIT;
    }
    if (rc == SAASD_ETOOBIG) {
        snprintf(text, sizeof text, "memory limit: the rule's result passed %zu KiB", memory / 1024);
        fail_call(out, f, h, RULE_MEMORY_LIMIT, text);
        return SAASD_ELIMIT;
    }
    if (rc == SAASD_EINVAL || rc == SAASD_ENOMEM) {
        fail_call(out, f, h, RULE_ERROR, rc == SAASD_EINVAL ? "the rule's worker sent a malformed message; it was killed"
                                                            : "out of memory talking to the rule's worker");
        return SAASD_ERULE;
    }
    const struct death *d = death_of(st, text, sizeof text);
    fail_call(out, f, h, d->outcome, text);
    return d->outcome == RULE_ERROR ? SAASD_ERULE : SAASD_ELIMIT;
}
