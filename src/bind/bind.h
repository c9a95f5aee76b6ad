/* Lua modules exposed to rules (one file per module, each with one luaopen_saas_<mod>).
 * They reach the daemon through the state's host record, never through globals:
 *
 *   lua_getextraspace(L) --> struct bind_host (one per lua_State, set once at creation)
 *                               .call --> struct bind_call (set by the engine for the length of
 *                                         one handler call; NULL otherwise)
 *
 * Coroutines copy the extra space of the main thread when created, so the host pointer (which
 * never changes) is valid in them too. A binding used outside a handler call raises an error.
 * Expected failures return nil, err; misuse (wrong argument types) raises. */
#ifndef SAASD_BIND_H
#define SAASD_BIND_H

#include <lua.h>
#include <stddef.h>

struct limits;

/* One pending ctx.store write of the current call, newest first. The engine appends them to
 * the caller's store batch, in order, when the call succeeds. */
struct bind_kv {
    struct bind_kv *next;
    char *key; /* the rule's key (without the offer prefix) */
    size_t klen;
    char *val; /* NULL when deleted */
    size_t vlen;
};

/* An outbound ctx.http request as the binding collected it (strings belong to the Lua stack). */
struct bind_http_req {
    const char *method, *url;
    const char *body; /* NULL: none */
    size_t body_len;
    long timeout_ms;  /* the rule's timeout_ms, 0 when none */
    const char *const *headers; /* name, value, name, value ... */
    size_t nheaders;  /* pairs */
};

struct bind_http_resp {
    long status;
    char *headers; /* malloc'd raw header block */
    char *body;    /* malloc'd, NUL-terminated */
    size_t body_len;
};

/* How the bindings reach the outside world. Rules run in worker processes (engine/worker.c),
 * where these are requests to the daemon, which reads the store, performs HTTP and logs. */
struct bind_ops {
    /* The committed value of the offer's key: 0 (*val malloc'd), SAASD_ENOTFOUND, or an error. */
    int (*store_get)(void *ud, const char *key, size_t klen, char **val, size_t *vlen);
    /* 0 with *resp filled, or an error code with a message in err ("timeout", "host not
     * allowed: x", "http disabled", ...). */
    int (*http)(void *ud, const struct bind_http_req *req, struct bind_http_resp *resp, char *err,
                size_t errsz);
    /* kv: name, value pairs */
    void (*log)(void *ud, int level, const char *msg, const char *const *kv, size_t npairs);
    /* ctx.meter / ctx.timer / ctx.notify: one effect (kind, args; an arg may be NULL), applied by the daemon
     * with the decision only if the call succeeds (bind/effect.c). May be NULL: dropped. */
    void (*effect)(void *ud, const char *kind, const char *const *args, size_t nargs);
};

struct bind_call {
    const char *offer_id;      /* offer id the daemon asked for (store namespace, log field) */
    const char *handler;       /* handler name, for log lines */
    struct bind_kv *writes;    /* owned by the engine; bindings prepend */
    size_t nwrites;
    size_t neffects;           /* ctx.meter/ctx.timer/ctx.notify calls so far (bounded) */
    long long now_s;           /* ctx.now() of this call (pinned so it can be recorded and replayed);
                                  0 = the real clock */
    const struct bind_kv *prefetched; /* committed values sent with the call (engine/prefetch.h),
                                  val NULL: absent; ctx.store.get reads them before asking */
    unsigned prefetch_used;    /* bit k: the k-th prefetched key was read */
    const struct bind_ops *ops;
    void *ops_ud;
};

struct bind_host {
    struct bind_call *call;
    struct limits *limits; /* pending ctx.store writes are charged to the memory cap */
};

static inline void bind_set_host(lua_State *L, struct bind_host *h)
{
    *(struct bind_host **)lua_getextraspace(L) = h;
}

static inline struct bind_host *bind_host_of(lua_State *L)
{
    return *(struct bind_host **)lua_getextraspace(L);
}

/* The current call, or raises "<what> used outside a handler call". */
struct bind_call *bind_call_of(lua_State *L, const char *what);
/* Free a list of pending writes. */
void bind_kv_free(struct bind_kv *kv);
void bind_http_resp_free(struct bind_http_resp *r);

/* 1 when host (from a URL) matches one of the patterns: "example.com" (exact, any port),
 * "*.example.com" (sub-domains), "example.com:8443" (host and port). Case-insensitive. */
int bind_http_host_allowed(char *const *allow, const char *host, const char *port);

int luaopen_saas_log(lua_State *L);    /* debug/info/warn/error(msg, fields?) */
int luaopen_saas_time(lua_State *L);   /* now() */
int luaopen_saas_store(lua_State *L);  /* get/put/delete */
int luaopen_saas_http(lua_State *L);   /* request{...} */
int luaopen_saas_crypto(lua_State *L); /* sha256, hmac, base64*, uuid */
int luaopen_saas_effect(lua_State *L); /* effect(kind, ...): ctx.meter/timer/notify */

#endif
