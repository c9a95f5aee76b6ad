/* Shadow replay (see engine.h, engine_replay): candidate rule files against the recorded
 * inputs of past decisions, in the same sandbox and limits, without side effects. */
#include "core/err.h"
#include "core/store.h"
#include "engine/engine.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The operator's choices for ctx.http during a replay. */
static const struct {
    const char *name;
    enum engine_http_mode mode;
} http_modes[] = {
    {"recorded", ENGINE_HTTP_RECORDED},
    {"refuse", ENGINE_HTTP_REFUSE},
};

int engine_http_mode_from_name(const char *name, enum engine_http_mode *out)
{
    for (size_t i = 0; name && i < sizeof http_modes / sizeof http_modes[0]; i++)
        if (!strcmp(http_modes[i].name, name)) {
            *out = http_modes[i].mode;
            return 0;
        }
    return SAASD_EINVAL;
}

const char *engine_http_mode_name(enum engine_http_mode m)
{
    for (size_t i = 0; i < sizeof http_modes / sizeof http_modes[0]; i++)
        if (http_modes[i].mode == m)
            return http_modes[i].name;
    return "live";
}

struct collect {
    const struct replay_options *o;
    json_t *calls;
};

static int collect_call(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    struct collect *c = arg;
    json_t *e = json_loadb(val, vlen, 0, NULL);
    const char *action = json_string_value(json_object_get(e, "action"));
    const char *offer = json_string_value(json_object_get(e, "offer"));
    int want = action && !strcmp(action, "RuleCall") && offer &&
               json_integer_value(json_object_get(e, "time_ms")) >= c->o->since_ms &&
               (!c->o->offer || !strcmp(c->o->offer, offer));
    if (want)
        json_array_append(c->calls, e);
    json_decref(e);
    return 0;
}

static char *dump_opt(json_t *j)
{
    return j && !json_is_null(j) ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* Run one recorded call against the candidate; *now gets its decision (new reference), *refused
 * the ctx.http calls it was refused (new reference or NULL). */
static int replay_one(struct engine *e, enum engine_http_mode mode, json_t *rec, json_t **now, json_t **refused,
                      char sha[65])
{
    json_t *in = json_object_get(rec, "input");
    const char *offer = json_string_value(json_object_get(rec, "offer"));
    enum rule_handler h = rule_handler_from_name(json_string_value(json_object_get(rec, "handler")));
    char *sub = dump_opt(json_object_get(in, "sub")), *arg = dump_opt(json_object_get(in, "arg"));
    json_t *reads = json_object_get(in, "reads");
    struct engine_call_opts opts = {.now_s = json_integer_value(json_object_get(in, "now_s")),
                                    .reads = reads ? reads : json_object(), .http_mode = mode,
                                    .http = json_object_get(in, "http")};
    struct rule_result r;
    engine_call_ex(e, offer, h, sub ? sub : "{}", arg, NULL, &opts, &r); /* batch NULL: writes discarded */
    if (!reads)
        json_decref((json_t *)(uintptr_t)opts.reads);
    *now = rule_result_decision(&r);
    *refused = r.http_refused ? json_loads(r.http_refused, 0, NULL) : NULL;
    snprintf(sha, 65, "%s", r.sha256);
    rule_result_free(&r);
    free(sub);
    free(arg);
    return *now ? 0 : SAASD_ENOMEM;
}

static void count(json_t *groups, const char *group, const char *field)
{
    json_t *g = json_object_get(groups, group);
    if (!g) {
        g = json_pack("{s:i, s:i}", "same", 0, "differ", 0);
        json_object_set_new(groups, group, g);
    }
    json_object_set_new(g, field, json_integer(json_integer_value(json_object_get(g, field)) + 1));
}

static void add_difference(json_t *report, json_t *rec, const char *group, json_t *now, json_t *refused,
                           const char *sha)
{
    json_t *in = json_object_get(rec, "input");
    json_t *d = json_pack("{s:s, s:s?, s:s?, s:O?, s:O, s:s?, s:s, s:O?}", "group", group, "subscription",
                          json_string_value(json_object_get(json_object_get(in, "sub"), "id")), "event",
                          json_string_value(json_object_get(rec, "input_of")), "old", json_object_get(rec, "decision"),
                          "new", now, "old_sha256", json_string_value(json_object_get(rec, "rule_sha256")),
                          "new_sha256", sha, "http_refused", refused);
    json_array_append_new(json_object_get(report, "differences"), d);
    json_object_set_new(report, "differ", json_integer(json_integer_value(json_object_get(report, "differ")) + 1));
}

int engine_replay(struct store *s, const struct replay_options *o, json_t **out)
{
    *out = NULL;
    struct collect c = {o, json_array()};
    struct engine *e = NULL;
    struct engine_options eo = {.rules_dir = o->candidate_dir, .cpu_ms = o->cpu_ms, .memory = o->memory, .states = 2};
    int rc = c.calls ? store_scan(s, STORE_AUDIT, NULL, 0, collect_call, &c) : SAASD_ENOMEM;
    if (!rc)
        rc = engine_open(&eo, &e);
    enum engine_http_mode mode = o->http_mode == ENGINE_HTTP_LIVE ? ENGINE_HTTP_RECORDED : o->http_mode;
    json_t *report = json_pack("{s:{}, s:[], s:i, s:i, s:i, s:s}", "groups", "differences", "calls", 0, "differ", 0,
                               "http_refused", 0, "http", engine_http_mode_name(mode));
    if (!rc && !report)
        rc = SAASD_ENOMEM;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t i;
    json_t *rec;
    json_array_foreach(c.calls, i, rec) {
        if (rc)
            break;
        json_t *now = NULL, *refused = NULL;
        char sha[65];
        if ((rc = replay_one(e, mode, rec, &now, &refused, sha)) != 0)
            break;
        json_t *old = json_object_get(rec, "decision");
        char group[300];
        snprintf(group, sizeof group, "%s %s", json_string_value(json_object_get(rec, "offer")),
                 json_string_value(json_object_get(rec, "handler")));
        int same = old && json_equal(old, now);
        count(json_object_get(report, "groups"), group, same ? "same" : "differ");
        if (!same)
            add_difference(report, rec, group, now, refused, sha);
        json_object_set_new(report, "http_refused", json_integer(json_integer_value(json_object_get(report, "http_refused")) +
                                                                 (json_int_t)json_array_size(refused)));
        json_decref(refused);
        json_decref(now);
        json_object_set_new(report, "calls", json_integer((json_int_t)i + 1));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (report)
        json_object_set_new(report, "seconds",
                            json_real((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9));
    engine_close(e);
    json_decref(c.calls);
    if (rc)
        json_decref(report);
    else
        *out = report;
    return rc;
}
