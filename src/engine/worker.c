/* The rule worker process: the child side of engine/worker.h. Single-threaded; everything it
 * does is bounded by the daemon (deadline, SIGKILL) and by RLIMIT_DATA (memory). */
#include "engine/worker.h"
#include "core/err.h"
#include "engine/limits.h"
#include "engine/prefetch.h"
#include "engine/wire.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#define WORKER_MAX_SLOTS 65536
#define WORKER_MAX_FRAME (64u << 20)  /* a request: at most a 16 MiB rule file and JSON */
#define WORKER_MEM_MARGIN (8u << 20)  /* room for the runtime's own buffers past the cap */
#define WORKER_ALARM_S 30             /* backstop when the daemon cannot kill us any more */
#define WORKER_KEEP_BUF (64u << 10) /* a reply buffer up to this size is reused */
#define WORKER_TICK_S 1               /* how often the backstop looks at the clock */

struct slot {
    struct vm *vm;
    struct rule_file file; /* path only (source is not kept) */
};

static struct slot *slots;
static size_t nslots;
static int rfd = -1, wfd = -1; /* requests in, replies out */
static struct wire_rx wrx; /* what was read from rfd beyond the frames taken */

/* The backstop for a request stuck in C after the daemon vanished (nobody left to SIGKILL us):
 * an interval timer armed once at start ticks every WORKER_TICK_S; a request only stores its
 * end (a vDSO clock read, no system call: alarm() twice per call cost two) and the tick ends
 * the worker by SIGALRM once that end has passed. 0: no request running. */
static _Atomic int64_t backstop_ns;
static int64_t backstop_s = WORKER_ALARM_S; /* SAASD_RULE_WORKER_BACKSTOP_S may lower it (tests) */

static void backstop_tick(int sig)
{
    int64_t end = atomic_load_explicit(&backstop_ns, memory_order_relaxed);
    if (end && limits_now_ns() >= end) {
        signal(sig, SIG_DFL);
        raise(sig); /* delivered, and fatal, when this handler returns */
    }
}

static void backstop_start(void)
{
    struct sigaction sa = {.sa_handler = backstop_tick, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    const char *env = getenv("SAASD_RULE_WORKER_BACKSTOP_S");
    if (env && atoi(env) > 0 && atoi(env) < WORKER_ALARM_S)
        backstop_s = atoi(env);
    struct itimerval tick = {{WORKER_TICK_S, 0}, {WORKER_TICK_S, 0}};
    if (sigaction(SIGALRM, &sa, NULL) != 0 || setitimer(ITIMER_REAL, &tick, NULL) != 0)
        _exit(3); /* a worker without its backstop must not serve */
}

/* A request that may run rule code starts (cpu_ms its limit) or ends (-1). */
static void backstop(int cpu_ms)
{
    int64_t end = cpu_ms < 0 ? 0 : limits_now_ns() + (backstop_s + (int64_t)cpu_ms / 1000) * 1000000000;
    atomic_store_explicit(&backstop_ns, end, memory_order_relaxed);
}

static void die_io(void)
{
    _exit(3); /* the daemon went away or spoke nonsense: nothing to save */
}

static void send_or_die(struct wire_buf *b)
{
    if (wire_send(wfd, b, 0) < 0)
        die_io();
}

static void recv_or_die(int type, struct wire_msg *m)
{
    if (wire_recv(rfd, 0, WORKER_MAX_FRAME, &wrx, m) < 0 || m->type != type)
        die_io();
}

#if !defined(__SANITIZE_ADDRESS__)
/* Data segment + private mappings in bytes (statm field 6), what RLIMIT_DATA counts. */
static size_t data_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long v[6] = {0};
    if (f) {
        if (fscanf(f, "%lu %lu %lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
            v[5] = 0;
        fclose(f);
    }
    return (size_t)v[5] * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t lua_heaps(void)
{
    size_t n = 0;
    for (size_t i = 0; i < nslots; i++)
        if (slots[i].vm)
            n += slots[i].vm->lim.used;
    return n;
}
#endif

/* Bound everything this process may allocate from now on: what it holds (the runtime and
 * the states of other offers) + the rule's cap + a margin. C libraries (cjson, string.rep,
 * table.move) then fail their malloc instead of growing without bound.
 * What it holds = what is not Lua heap (measured from /proc at each load: the runtime, the
 * libraries) + the Lua heaps (known exactly, no system call), so a call costs no /proc read
 * and a setrlimit only when the figure moved by more than a MiB. */
static void bound_memory(size_t memory, int remeasure)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)memory; /* AddressSanitizer's shadow maps count as data: in-process caps only */
    (void)remeasure;
#else
    static size_t other = 0;
    static rlim_t set = 0;
    size_t heaps = lua_heaps();
    if (remeasure || !other) {
        size_t data = data_bytes();
        other = data > heaps ? data - heaps : data;
    }
    rlim_t want = (rlim_t)(other + heaps + memory + WORKER_MEM_MARGIN);
    if (set && want <= set + (1u << 20) && want + (1u << 20) >= set)
        return;
    struct rlimit r;
    if (getrlimit(RLIMIT_DATA, &r) != 0)
        return;
    /* only the soft limit moves: the next call may need it higher again */
    r.rlim_cur = r.rlim_max == RLIM_INFINITY || want < r.rlim_max ? want : r.rlim_max;
    if (setrlimit(RLIMIT_DATA, &r) == 0)
        set = r.rlim_cur;
#endif
}

/* ---- capabilities: requests to the daemon ---- */

static int w_store_get(void *ud, const char *key, size_t klen, char **val, size_t *vlen)
{
    (void)ud;
    struct wire_buf b = {0};
    wire_begin(&b, W_STORE_GET);
    wire_put(&b, key, klen);
    send_or_die(&b);
    wire_buf_free(&b);
    struct wire_msg m;
    recv_or_die(W_STORE_VAL, &m);
    int rc = (int)wire_int(&m, 0, SAASD_EIO);
    *val = NULL;
    *vlen = 0;
    if (rc == 0 && m.n > 1 && m.f[1].p) {
        if (!(*val = malloc(m.f[1].len + 1)))
            rc = SAASD_ENOMEM;
        else {
            memcpy(*val, m.f[1].p, m.f[1].len);
            *vlen = m.f[1].len;
        }
    }
    wire_msg_free(&m);
    return rc;
}

static char *dup_field(const struct wire_msg *m, size_t i, size_t *len)
{
    if (i >= m->n || !m->f[i].p)
        return NULL;
    char *s = malloc(m->f[i].len + 1);
    if (s) {
        memcpy(s, m->f[i].p, m->f[i].len + 1);
        if (len)
            *len = m->f[i].len;
    }
    return s;
}

static int w_http(void *ud, const struct bind_http_req *req, struct bind_http_resp *resp, char *err,
                  size_t errsz)
{
    (void)ud;
    struct wire_buf b = {0};
    wire_begin(&b, W_HTTP);
    wire_put_str(&b, req->method);
    wire_put_str(&b, req->url);
    wire_put(&b, req->body, req->body_len);
    wire_put_int(&b, req->timeout_ms);
    for (size_t i = 0; i < 2 * req->nheaders; i++)
        wire_put_str(&b, req->headers[i]);
    send_or_die(&b);
    wire_buf_free(&b);
    struct wire_msg m;
    recv_or_die(W_HTTP_RESP, &m);
    int rc = 0;
    if (wire_str(&m, 0)) {
        snprintf(err, errsz, "%s", wire_str(&m, 0));
        rc = SAASD_EIO;
    } else {
        resp->status = (long)wire_int(&m, 1, 0);
        resp->headers = dup_field(&m, 2, NULL);
        resp->body = dup_field(&m, 3, &resp->body_len);
        if (!resp->headers || !resp->body) {
            snprintf(err, errsz, "out of memory");
            rc = SAASD_ENOMEM;
        }
    }
    wire_msg_free(&m);
    return rc;
}

static void w_log(void *ud, int level, const char *msg, const char *const *kv, size_t npairs)
{
    (void)ud;
    struct wire_buf b = {0};
    wire_begin(&b, W_LOG);
    wire_put_int(&b, level);
    wire_put_str(&b, msg);
    for (size_t i = 0; i < 2 * npairs; i++)
        wire_put_str(&b, kv[i]);
    send_or_die(&b);
    wire_buf_free(&b);
}

static void w_effect(void *ud, const char *kind, const char *const *args, size_t nargs)
{
    (void)ud;
    struct wire_buf b = {0};
    wire_begin(&b, W_EFFECT);
    wire_put_str(&b, kind);
    for (size_t i = 0; i < nargs; i++)
        wire_put_str(&b, args[i]);
    send_or_die(&b);
    wire_buf_free(&b);
}

static const struct bind_ops worker_ops = {w_store_get, w_http, w_log, w_effect};

/* ---- requests ---- */

/* Problems of a load, kept until the reply is built. */
struct problems {
    char *text[16];
    size_t n;
};

static void add_problem(void *arg, const char *p)
{
    struct problems *pr = arg;
    if (pr->n < sizeof pr->text / sizeof pr->text[0])
        pr->text[pr->n++] = strdup(p);
}

static struct slot *slot_at(long long i)
{
    if (i < 0 || i >= WORKER_MAX_SLOTS)
        return NULL;
    if ((size_t)i >= nslots) {
        size_t n = (size_t)i + 16;
        struct slot *s = realloc(slots, n * sizeof *s);
        if (!s)
            return NULL;
        memset(s + nslots, 0, (n - nslots) * sizeof *s);
        slots = s;
        nslots = n;
    }
    return &slots[i];
}

static void slot_clear(struct slot *s)
{
    vm_free(s->vm);
    free(s->file.path);
    memset(s, 0, sizeof *s);
}

/* W_LOAD: slot, path, source, cpu_ms, memory -> W_LOADED rc, tainted, problems... */
static void do_load(const struct wire_msg *m)
{
    struct slot *s = slot_at(wire_int(m, 0, -1));
    const char *path = wire_str(m, 1), *src = wire_str(m, 2);
    int cpu_ms = (int)wire_int(m, 3, 0);
    size_t memory = (size_t)wire_int(m, 4, 0);
    int rc = s && path && src ? 0 : SAASD_EINVAL;
    struct problems pr = {0};
    if (s)
        slot_clear(s);
    if (rc == 0 && !(s->file.path = strdup(path)))
        rc = SAASD_ENOMEM;
    if (rc == 0) {
        bound_memory(memory, 1);
        rc = vm_new(memory, &s->vm);
    }
    if (rc == 0) {
        struct rule_file f = {.path = s->file.path, .source = (char *)(uintptr_t)src, .len = m->f[2].len};
        backstop(cpu_ms);
        rc = vm_load_rule(s->vm, &f, cpu_ms, add_problem, &pr);
        backstop(-1);
    }
    if (rc < 0 && s)
        slot_clear(s);
    struct wire_buf b = {0};
    wire_begin(&b, W_LOADED);
    wire_put_int(&b, rc);
    for (size_t i = 0; i < pr.n; i++) {
        wire_put_str(&b, pr.text[i] ? pr.text[i] : "(problem text lost: out of memory)");
        free(pr.text[i]);
    }
    send_or_die(&b);
    wire_buf_free(&b);
}

static void put_writes(struct wire_buf *b, const struct bind_kv *w)
{
    if (!w)
        return;
    put_writes(b, w->next); /* oldest first */
    wire_put(b, w->key, w->klen);
    wire_put(b, w->val, w->vlen);
}

/* The prefetched key, value|NULL pairs of a W_CALL (from field 8), as a list in their order;
 * they point into the message. */
static const struct bind_kv *take_prefetched(const struct wire_msg *m, struct bind_kv *kv)
{
    size_t n = 0;
    for (size_t i = 8; i + 1 < m->n && n < PREFETCH_MAX; i += 2) {
        if (!m->f[i].p)
            continue;
        kv[n] = (struct bind_kv){.key = (char *)(uintptr_t)m->f[i].p, .klen = m->f[i].len,
                                 .val = (char *)(uintptr_t)m->f[i + 1].p, .vlen = m->f[i + 1].len};
        if (n)
            kv[n - 1].next = &kv[n];
        n++;
    }
    return n ? kv : NULL;
}

/* W_CALL: slot, offer, handler, sub, arg|NULL, cpu_ms, memory, now_s (0: the real clock),
 *         then key, value|NULL pairs (prefetched committed values, engine/prefetch.h)
 *   -> W_RESULT rc, outcome, action, accept, message, reason, redirect, has_bill, bill, error,
 *      error_line, tainted, prefetched-used mask, then key, value|NULL pairs (the pending
 *      writes, oldest first) */
static void do_call(const struct wire_msg *m)
{
    struct slot *s = slot_at(wire_int(m, 0, -1));
    const char *offer = wire_str(m, 1), *sub = wire_str(m, 3), *arg = wire_str(m, 4);
    long long h = wire_int(m, 2, -1);
    int cpu_ms = (int)wire_int(m, 5, 0);
    size_t memory = (size_t)wire_int(m, 6, 0);
    struct rule_result out = {0};
    struct bind_kv prefetched[PREFETCH_MAX];
    struct bind_call call = {.offer_id = offer, .ops = &worker_ops, .now_s = wire_int(m, 7, 0),
                             .prefetched = take_prefetched(m, prefetched)};
    int rc = SAASD_EINVAL;
    int tainted = 1;
    if (s && s->vm && offer && sub && h >= 0 && h < RULE_HANDLER_COUNT) {
        out.offer_id = strdup(offer);
        call.handler = rule_handler_name((enum rule_handler)h);
        bound_memory(memory, 0);
        backstop(cpu_ms);
        rc = vm_call(s->vm, &s->file, (enum rule_handler)h, sub, arg, cpu_ms, &call, &out);
        backstop(-1);
        tainted = s->vm->tainted;
    } else {
        out.outcome = RULE_ERROR;
        out.error = strdup("rule worker: call for a file it has not loaded (internal error)");
    }
    static struct wire_buf b; /* kept from call to call: no allocation per result */
    wire_begin(&b, W_RESULT);
    wire_put_int(&b, rc);
    wire_put_int(&b, out.outcome);
    wire_put_int(&b, out.action);
    wire_put_int(&b, out.accept);
    wire_put_str(&b, out.message);
    wire_put_str(&b, out.reason);
    wire_put_str(&b, out.redirect);
    wire_put_int(&b, out.has_bill);
    char bill[64] = "0";
    if (out.has_bill)
        snprintf(bill, sizeof bill, "%.17g", out.bill);
    wire_put_str(&b, bill);
    wire_put_str(&b, out.error);
    wire_put_int(&b, out.error_line);
    wire_put_int(&b, tainted);
    wire_put_int(&b, call.prefetch_used);
    if (rc == 0)
        put_writes(&b, call.writes);
    bind_kv_free(call.writes);
    rule_result_free(&out);
    if (b.failed) { /* the writes did not fit: report that instead of dying */
        wire_begin(&b, W_RESULT);
        wire_put_int(&b, SAASD_ELIMIT);
        wire_put_int(&b, RULE_MEMORY_LIMIT);
        wire_put_int(&b, 0); /* action */
        wire_put_int(&b, 0); /* accept */
        for (int i = 0; i < 3; i++)
            wire_put(&b, NULL, 0);
        wire_put_int(&b, 0);
        wire_put_str(&b, "0");
        wire_put_str(&b, "memory limit: the call's result and ctx.store writes do not fit in memory");
        wire_put_int(&b, 0);
        wire_put_int(&b, 1);
        wire_put_int(&b, 0); /* no reads to record: the call failed */
    }
    send_or_die(&b);
    if (b.cap > WORKER_KEEP_BUF) /* a result with large writes: its room is not kept */
        wire_buf_free(&b);
    if (tainted && s)
        slot_clear(s);
}

/* W_LANDING: slot -> W_LANDING_JSON rc, json|NULL. Data only: no rule code runs. */
static void do_landing(const struct wire_msg *m)
{
    struct slot *s = slot_at(wire_int(m, 0, -1));
    char *json = NULL;
    int rc = s && s->vm ? vm_landing_json(s->vm, &s->file, &json) : SAASD_EINVAL;
    struct wire_buf b = {0};
    wire_begin(&b, W_LANDING_JSON);
    wire_put_int(&b, rc);
    wire_put_str(&b, json);
    send_or_die(&b);
    wire_buf_free(&b);
    free(json);
}

int worker_main(int in, int out)
{
    rfd = in;
    wfd = out;
    /* whatever the daemon had open without close-on-exec (store files, sockets) is not ours */
    closefrom((in > out ? in : out) + 1);
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core); /* a crashing rule leaves no core file with customer data */
    signal(SIGPIPE, SIG_IGN);
    backstop_start();
    struct wire_buf hello = {0};
    wire_begin(&hello, W_HELLO);
    send_or_die(&hello);
    wire_buf_free(&hello);
    for (;;) {
        struct wire_msg m;
        int rc = wire_recv(rfd, 0, WORKER_MAX_FRAME, &wrx, &m);
        if (rc == SAASD_EIO)
            return 0; /* the daemon closed our socket: we are done */
        if (rc < 0)
            return 3;
        if (m.type == W_LOAD)
            do_load(&m);
        else if (m.type == W_CALL)
            do_call(&m);
        else if (m.type == W_LANDING)
            do_landing(&m);
        else
            return 3;
        wire_msg_free(&m);
    }
}
