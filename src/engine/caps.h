/* The capabilities a rule's ctx reaches, performed by the daemon on behalf of a rule worker
 * (engine-internal): the worker asks over its socket, the calling thread answers here.
 * The worker never touches LMDB, libcurl or the log file. */
#ifndef SAASD_ENGINE_CAPS_H
#define SAASD_ENGINE_CAPS_H

#include "bind/bind.h"

#include <stddef.h>
#include <stdint.h>

struct store;
struct http_client;

struct caps {
    const char *offer_id;
    const char *handler;
    const char *sub_id;       /* the call's subscription id, or NULL (ctx.store prefetching) */
    uint64_t reads_prefetched, reads_asked; /* committed ctx.store reads answered from the values
                                 sent with the call / by a round trip to the daemon */
    struct store *store;      /* NULL: every committed key reads as absent */
    struct http_client *http; /* NULL: "http disabled" */
    char *const *http_allow;
    long http_timeout_ms;     /* per request */
    int64_t http_left_ns;     /* what is left of the call's ctx.http budget */
    int64_t deadline_ns;      /* the call's deadline (CLOCK_MONOTONIC) */
    size_t max_body;          /* responses larger than this are refused (the memory cap) */
    long long now_s;          /* ctx.now() of the call; 0 = the real clock */
    struct json_t *reads;     /* when not NULL: each committed ctx.store read is recorded here
                                 (key -> value or null), for replay */
    const struct json_t *replay_reads; /* when not NULL (replay): reads are answered from this
                                 object only, never from the store; absent keys read as nil */
    int no_http;              /* replay: ctx.http answers nil, "refused during replay" */
    const struct json_t *replay_http; /* when not NULL (replay): ctx.http answered from these
                                 recorded calls only (engine/http_record.h) */
    uint64_t replay_http_used; /* which of them were given already */
    struct json_t *http_log;  /* when not NULL: each ctx.http call and its answer recorded here */
    struct json_t *http_refused; /* replay: texts of the calls refused (array, owned; NULL until the first) */
    struct json_t *effects;   /* ctx.meter/timer/notify effects of the call so far (JSON array, owned;
                                 NULL until the first); handed out only when the call succeeds */
};

/* ctx.store read of the offer's committed key: 0 (*val malloc'd), SAASD_ENOTFOUND, error. */
int caps_store_get(const struct caps *c, const char *key, size_t klen, char **val, size_t *vlen);
/* The same read, not recorded in c->reads: a value sent ahead, which the rule may not read. */
int caps_store_peek(const struct caps *c, const char *key, size_t klen, char **val, size_t *vlen);
/* Record a committed read (val NULL: absent) in c->reads, when recording, once per key. */
void caps_store_note(const struct caps *c, const char *key, size_t klen, const char *val, size_t vlen);
/* ctx.http: checks the allow-list, bounds the timeout by the per-request limit, the call's
 * ctx.http budget (charged here) and its deadline. 0, or an error with err filled. */
int caps_http(struct caps *c, const struct bind_http_req *req, struct bind_http_resp *resp, char *err,
              size_t errsz);
/* ctx.log through the daemon's (redacting) logger; kv: name, value pairs. */
void caps_log(const struct caps *c, int level, const char *msg, const char *const *kv, size_t npairs);

/* One ctx.meter / ctx.timer / ctx.notify effect: appended to c->effects as a JSON object
 * {"kind":"meter","dimension","quantity"} | {"kind":"timer","name","at","data"} |
 * {"kind":"timer_cancel","name"} | {"kind":"notify","type","data"} (type checked against
 * saasd's own prefixes, data a JSON object). SAASD_EINVAL for an unknown kind or malformed arguments
 * (the worker validated them: a malformed one means a broken worker). */
int caps_effect(struct caps *c, const char *kind, const char *const *args, size_t nargs);

#endif
