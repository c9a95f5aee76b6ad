/* saasd mp: the marketplace client for operators. Loads the config, gets a token, makes one
 * call and prints the JSON answer on stdout; status and the request/correlation ids (what
 * Microsoft support asks for) go to stderr. */
#include "cmd/args.h"
#include "cmd/cmd.h"
#include "core/config.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "core/mp_client.h"
#include "core/token_cache.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: saasd mp [--config FILE] [--wait] [--verbose] [--correlation-id ID] COMMAND ARGS\n"
            "\n"
            "commands (paths under <marketplace.base_url>/api/saas/subscriptions):\n"
            "  resolve TOKEN                 POST resolve (TOKEN = landing ?token=, URL-decoded once)\n"
            "  get SUB                       GET one subscription\n"
            "  list                          GET all subscriptions, following @nextLink to the end\n"
            "  plans SUB [PLAN]              GET listAvailablePlans\n"
            "  activate SUB PLAN [QUANTITY]  POST activate\n"
            "  change-plan SUB PLAN          PATCH planId          (202; --wait polls the operation)\n"
            "  change-quantity SUB N         PATCH quantity        (202; --wait polls the operation)\n"
            "  delete SUB                    DELETE (cancel)       (202; --wait polls the operation)\n"
            "  operations SUB                GET outstanding operations\n"
            "  operation SUB OP | URL        GET one operation (--wait: poll until final)\n"
            "  ack SUB OP Success|Failure    PATCH the operation status\n"
            "  usage JSON                    POST usageEvent with one UsageEvent object\n"
            "  batch-usage JSON              POST batchUsageEvent with an array of 1..25 events\n"
            "  usage-events START [END] [offerId=X planId=X dimension=X reconStatus=X]\n"
            "                                GET usageEvents: what Microsoft recorded per day\n"
            "\n"
            "Prints the response JSON (or {status, operationId, operationLocation} when there is\n"
            "no body). Exit status: 0 success, 1 the call failed, 2 usage or configuration error.\n");
}

static int parse_long(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !*s || *end)
        return SAASD_EINVAL;
    *out = v;
    return 0;
}

static void print_result(const struct mp_result *r)
{
    json_t *out = r->body ? json_incref(r->body) : json_object();
    if (!r->body) {
        json_object_set_new(out, "status", json_integer(r->status));
        if (r->operation_id[0])
            json_object_set_new(out, "operationId", json_string(r->operation_id));
        if (r->operation_location[0])
            json_object_set_new(out, "operationLocation", json_string(r->operation_location));
        if (r->message[0])
            json_object_set_new(out, "message", json_string(r->message));
    }
    json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    fputc('\n', stdout);
    json_decref(out);
}

static void print_ids(const char *verb, int rc, const struct mp_result *r)
{
    fprintf(stderr, "saasd mp %s: %s status=%ld attempts=%d request_id=%s correlation_id=%s", verb,
            rc ? saasd_strerror(rc) : "ok", r->status, r->attempts, r->request_id, r->correlation_id);
    if (r->ms_request_id[0] && strcmp(r->ms_request_id, r->request_id))
        fprintf(stderr, " ms_request_id=%s", r->ms_request_id);
    if (r->error_code[0])
        fprintf(stderr, " code=%s", r->error_code);
    if (r->message[0])
        fprintf(stderr, " message=\"%s\"", r->message);
    fputc('\n', stderr);
}

/* A verb's own argument error (a number that is not one, JSON that is not JSON): distinct from
 * the client's 0 / SAASD_E* answers, which are 0 or negative. */
#define BAD_ARGS 1

/* After a 202 with --wait: follow the Operation-Location to the operation's final status. */
static int follow(struct mp_client *mp, int rc, int wait, struct mp_result *r)
{
    if (rc || !wait || !r->operation_location[0])
        return rc;
    char loc[sizeof r->operation_location];
    snprintf(loc, sizeof loc, "%s", r->operation_location);
    return mp_wait_operation(mp, loc, 0, r);
}

static int verb_resolve(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    return mp_resolve(mp, a[0], r);
}

static int verb_get(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    return mp_get_subscription(mp, a[0], r);
}

static int verb_list(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    return mp_list_subscriptions(mp, r);
}

static int verb_plans(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    return mp_list_plans(mp, a[0], n == 2 ? a[1] : NULL, r);
}

static int verb_activate(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    long long quantity = -1;
    if (n == 3 && parse_long(a[2], &quantity))
        return BAD_ARGS;
    return mp_activate(mp, a[0], a[1], quantity, r);
}

static int verb_change_plan(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    return follow(mp, mp_change_plan(mp, a[0], a[1], r), wait, r);
}

static int verb_change_quantity(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    long long quantity;
    if (parse_long(a[1], &quantity))
        return BAD_ARGS;
    return follow(mp, mp_change_quantity(mp, a[0], quantity, r), wait, r);
}

static int verb_delete(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    return follow(mp, mp_delete_subscription(mp, a[0], r), wait, r);
}

static int verb_operations(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    return mp_list_operations(mp, a[0], r);
}

/* operation SUB OP, or operation URL (an Operation-Location). */
static int verb_operation(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    char sub[64], op[64];
    const char *s = n == 1 ? strstr(a[0], "/subscriptions/") : NULL;
    const char *o = n == 1 ? strstr(a[0], "/operations/") : NULL;
    if (s && o && o > s) {
        snprintf(sub, sizeof sub, "%.*s", (int)(o - s - 15), s + 15);
        snprintf(op, sizeof op, "%.*s", (int)strcspn(o + 12, "?/"), o + 12);
    } else if (n == 2) {
        snprintf(sub, sizeof sub, "%s", a[0]);
        snprintf(op, sizeof op, "%s", a[1]);
    } else {
        return BAD_ARGS;
    }
    int rc = mp_get_operation(mp, sub, op, r);
    if (rc || !wait || mp_operation_is_final(r->operation_status))
        return rc;
    char loc[1024];
    snprintf(loc, sizeof loc, "/api/saas/subscriptions/%s/operations/%s", sub, op);
    return mp_wait_operation(mp, loc, 0, r);
}

static int verb_ack(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    return mp_ack_operation(mp, a[0], a[1], a[2], r);
}

static json_t *json_arg(const char *verb, const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fprintf(stderr, "saasd mp %s: not JSON: %s\n", verb, jerr.text);
    return doc;
}

static int verb_usage(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    json_t *doc = json_arg("usage", a[0]);
    int rc = doc ? mp_usage_event(mp, doc, r) : BAD_ARGS;
    json_decref(doc);
    return rc;
}

static int verb_batch_usage(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    json_t *doc = json_arg("batch-usage", a[0]);
    int rc = doc ? mp_batch_usage_event(mp, doc, r) : BAD_ARGS;
    json_decref(doc);
    return rc;
}

/* usage-events' NAME=VALUE filters, spelled as §7.1 spells them. */
static const struct {
    const char *name;
    size_t field; /* offset of the const char * in struct mp_usage_query */
} usage_filters[] = {
    {"offerId", offsetof(struct mp_usage_query, offer_id)},
    {"planId", offsetof(struct mp_usage_query, plan_id)},
    {"dimension", offsetof(struct mp_usage_query, dimension)},
    {"azureSubscriptionId", offsetof(struct mp_usage_query, azure_subscription_id)},
    {"reconStatus", offsetof(struct mp_usage_query, recon_status)},
};

static int usage_filter(struct mp_usage_query *q, const char *arg)
{
    const char *eq = strchr(arg, '=');
    for (size_t i = 0; eq && i < sizeof usage_filters / sizeof usage_filters[0]; i++) {
        if (strlen(usage_filters[i].name) == (size_t)(eq - arg) && !strncmp(arg, usage_filters[i].name, eq - arg)) {
            *(const char **)((char *)q + usage_filters[i].field) = eq + 1;
            return 0;
        }
    }
    return BAD_ARGS;
}

static int verb_usage_events(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r)
{
    struct mp_usage_query q = {.start = a[0]};
    for (int i = 1; i < n; i++) {
        if (i == 1 && !strchr(a[i], '=')) {
            q.end = a[i];
        } else if (usage_filter(&q, a[i])) {
            fprintf(stderr, "saasd mp usage-events: unknown argument '%s'\n", a[i]);
            return BAD_ARGS;
        }
    }
    return mp_usage_events(mp, &q, r);
}

/* Every verb, with how many arguments it takes (usage() describes them). */
static const struct {
    const char *name;
    int min_args, max_args;
    int (*run)(struct mp_client *mp, int n, const char **a, int wait, struct mp_result *r);
} verbs[] = {
    {"resolve", 1, 1, verb_resolve},
    {"get", 1, 1, verb_get},
    {"list", 0, 0, verb_list},
    {"plans", 1, 2, verb_plans},
    {"activate", 2, 3, verb_activate},
    {"change-plan", 2, 2, verb_change_plan},
    {"change-quantity", 2, 2, verb_change_quantity},
    {"delete", 1, 1, verb_delete},
    {"operations", 1, 1, verb_operations},
    {"operation", 1, 2, verb_operation},
    {"ack", 3, 3, verb_ack},
    {"usage", 1, 1, verb_usage},
    {"batch-usage", 1, 1, verb_batch_usage},
    {"usage-events", 1, CMD_MAX_ARGS, verb_usage_events},
};

/* Run the verb; 0/SAASD_E* from the client, SAASD_EINVAL + *usage_error for bad arguments. */
static int run_verb(struct mp_client *mp, const char *verb, int n, const char **a, int wait, struct mp_result *r,
                    int *usage_error)
{
    *usage_error = 1;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(verbs[i].name, verb))
            continue;
        if (n < verbs[i].min_args || n > verbs[i].max_args)
            return SAASD_EINVAL;
        int rc = verbs[i].run(mp, n, a, wait, r);
        if (rc == BAD_ARGS)
            return SAASD_EINVAL;
        *usage_error = 0;
        return rc;
    }
    return SAASD_EINVAL;
}

int cmd_mp(int argc, char **argv)
{
    const char *config_path = CMD_DEFAULT_CONFIG, *correlation = NULL, *args[CMD_MAX_ARGS];
    int wait = 0, verbose = 0;
    const struct cmd_opt opts[] = {{"--config", "-c", &config_path, NULL},
                                   {"--wait", NULL, NULL, &wait},
                                   {"--verbose", "-v", NULL, &verbose},
                                   {"--correlation-id", NULL, &correlation, NULL},
                                   {NULL}};
    const struct cmd_spec spec = {"saasd mp [--config FILE] [--wait] [--verbose] [--correlation-id ID] COMMAND ARGS",
                                  usage, opts, 1, 16};
    int nrest, status;
    if (cmd_parse(&spec, argc, argv, args, &nrest, &status))
        return status;
    const char **rest = args;
    log_set_level(verbose ? LOG_DEBUG : LOG_WARN);

    struct saasd_config *cfg = NULL;
    struct http_client *http = NULL;
    struct token_cache *tc = NULL;
    struct mp_client *mp = NULL;
    struct mp_result r = {0};
    char err[1024];
    status = 2;
    if (config_load(config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto done;
    }
    struct token_cache_options to;
    struct mp_client_options mo;
    token_cache_options_from_config(cfg, &to);
    mp_client_options_from_config(cfg, &mo);
    if (http_client_new(NULL, &http) || token_cache_new(&to, http, &tc) || mp_client_new(&mo, http, tc, &mp)) {
        fprintf(stderr, "saasd mp: cannot set up the client (check entra.* and marketplace.* in %s)\n", config_path);
        goto done;
    }
    if (correlation)
        snprintf(r.correlation_id, sizeof r.correlation_id, "%s", correlation);
    int usage_error = 0;
    int rc = run_verb(mp, rest[0], nrest - 1, rest + 1, wait, &r, &usage_error);
    if (usage_error) {
        fprintf(stderr, "saasd mp: bad arguments for '%s'\n\n", rest[0]);
        usage(stderr);
        goto done;
    }
    if (rc == 0 || r.status)
        print_result(&r);
    print_ids(rest[0], rc, &r);
    status = rc ? 1 : 0;
done:
    mp_result_clear(&r);
    mp_client_free(mp);
    token_cache_free(tc);
    http_client_free(http);
    if (cfg)
        config_free(cfg);
    return status;
}
