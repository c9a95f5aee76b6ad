/* /healthz and /readyz on the public listener.
 *  - /healthz (liveness): the process serves and the store takes a durable write. 200 or 503.
 *    A failing liveness check means "restart me".
 *  - /readyz (readiness): rules are loaded and the marketplace token is not failing. The token
 *    is "ok" only while a token fetched from Entra ID is within its lifetime; before the first
 *    fetch it is "unknown" (never "ok"), after its lifetime "expired" (fetched again on the
 *    next call), after a failed fetch "failed" with what to fix, which makes /readyz 503. */
#include "daemon/daemon.h"

#include "core/err.h"
#include "core/httpd.h"
#include "core/store.h"
#include "core/token_cache.h"
#include "engine/engine.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void reply(struct httpd_response *res, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    res->status = text ? status : 500;
    res->content_type = "application/json";
    res->body = text;
    res->body_len = text ? strlen(text) : 0;
}

static int store_writable(struct daemon *d)
{
    struct store_batch *b = NULL;
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    int ok = store_batch_new(&b) == 0 && store_batch_put(b, STORE_META, "healthz", 7, now, strlen(now)) == 0 &&
             store_commit(d->store, b) == 0;
    store_batch_free(b);
    return ok;
}

void health_live(struct daemon *d, struct httpd_response *res)
{
    int store_ok = store_writable(d);
    reply(res, store_ok ? 200 : 503,
          json_pack("{s:s, s:b, s:I}", "status", store_ok ? "ok" : "failing", "store_writable", store_ok, "uptime_s",
                    (json_int_t)(time(NULL) - d->started_at)));
}

/* The token's state, as above. */
static const char *token_state(const struct token_cache_stats *ts, time_t now)
{
    if (ts->last_error)
        return "failed";
    if (ts->last_ok == 0)
        return "unknown";
    return ts->expires_at > now ? "ok" : "expired";
}

void health_ready(struct daemon *d, struct httpd_response *res)
{
    struct engine_info *info = NULL;
    int rules_ok = engine_info(d->engine, &info) == 0 && info->generation > 0;
    json_int_t generation = info ? (json_int_t)info->generation : 0;
    engine_info_free(info);
    struct token_cache_stats ts;
    token_cache_stats(d->tokens, &ts);
    const char *token = token_state(&ts, time(NULL));
    int ready = rules_ok && strcmp(token, "failed") != 0;
    json_t *body = json_pack("{s:s, s:b, s:I, s:s}", "status", ready ? "ready" : "not ready", "rules_loaded", rules_ok,
                             "rules_generation", generation, "token", token);
    if (ts.last_ok)
        json_object_set_new(body, "token_fetched_s_ago", json_integer((json_int_t)(time(NULL) - ts.last_ok)));
    if (ts.last_error)
        json_object_set_new(body, "token_error", json_string(ts.last_error_text[0] ? ts.last_error_text
                                                                                    : saasd_strerror(ts.last_error)));
    reply(res, ready ? 200 : 503, body);
}
