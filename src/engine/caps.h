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
    struct store *store;      /* NULL: every committed key reads as absent */
    struct http_client *http; /* NULL: "http disabled" */
    char *const *http_allow;
    long http_timeout_ms;     /* per request */
    int64_t http_left_ns;     /* what is left of the call's ctx.http budget */
    int64_t deadline_ns;      /* the call's deadline (CLOCK_MONOTONIC) */
    size_t max_body;          /* responses larger than this are refused (the memory cap) */
};

/* ctx.store read of the offer's committed key: 0 (*val malloc'd), SAASD_ENOTFOUND, error. */
int caps_store_get(const struct caps *c, const char *key, size_t klen, char **val, size_t *vlen);
/* ctx.http: checks the allow-list, bounds the timeout by the per-request limit, the call's
 * ctx.http budget (charged here) and its deadline. 0, or an error with err filled. */
int caps_http(struct caps *c, const struct bind_http_req *req, struct bind_http_resp *resp, char *err,
              size_t errsz);
/* ctx.log through the daemon's (redacting) logger; kv: name, value pairs. */
void caps_log(const struct caps *c, int level, const char *msg, const char *const *kv, size_t npairs);

#endif
