/* saasd rules replay --candidate DIR ...: see replay_help and engine_replay.
 * saasd rules check [DIR] [--config FILE]: load every rule file of DIR (default: the config's
 * rules.dir, or "rules") in the real sandbox, with the config's limits, and print
 * "file:line: message" for each problem. Exit status 0: all valid; 1: problems; 2: usage or
 * the directory cannot be read. */
#include "cmd/args.h"
#include "cmd/cmd.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/store.h"
#include "engine/engine.h"

#include <jansson.h>
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void print_problem(void *arg, const char *problem)
{
    if (arg)
        ++*(int *)arg;
    printf("%s\n", problem);
}

static void check_globals(const char *dir, int *problems)
{
    int n = 0;
    if (engine_check_globals(dir, print_problem, NULL, &n) == SAASD_ENOTFOUND)
        fprintf(stderr, "saasd rules check: luacheck is not installed (Debian package lua-check): undeclared "
                        "globals were not checked\n");
    *problems += n;
}

/* Offers with subscriptions in the config's store, when there is one (NULL otherwise). */
static char **offers_seen(const struct saasd_config *cfg)
{
    char path[4200];
    struct stat st;
    struct store *s = NULL;
    char **seen = NULL;
    if (!cfg)
        return NULL;
    snprintf(path, sizeof path, "%s/data.mdb", cfg->data_dir);
    if (stat(path, &st) != 0 || store_open(cfg->data_dir, NULL, &s) != 0)
        return NULL;
    engine_offers_in_store(s, &seen);
    store_close(s);
    return seen;
}

/* Which file decides which offer, and what looks like a mistake. */
static int print_resolution(const char *dir, const struct saasd_config *cfg)
{
    int warnings = 0;
    char **seen = offers_seen(cfg);
    json_t *r = NULL;
    if (engine_resolution(dir, (const char *const *)seen, cfg && cfg->unknown_offers_default, &r) == 0) {
        size_t i;
        json_t *row;
        printf("offer -> rule file%s:\n", seen ? "" : " (offers in the store not checked: no --config or no store)");
        json_array_foreach(json_object_get(r, "offers"), i, row) {
            const char *decides = json_string_value(json_object_get(row, "decides"));
            printf("  %-24s %s%s%s\n", json_string_value(json_object_get(row, "offer")),
                   json_string_value(json_object_get(row, "file")), decides ? "  -- " : "", decides ? decides : "");
        }
        json_array_foreach(json_object_get(r, "warnings"), i, row) {
            printf("warning: %s\n", json_string_value(row));
            warnings++;
        }
    }
    json_decref(r);
    engine_offers_free(seen);
    return warnings;
}

static void help(FILE *f)
{
    fprintf(f, "usage: saasd rules check [DIR] [--config FILE]\n"
               "  Loads every DIR/*.lua in the rule sandbox and prints file:line: message for each\n"
               "  problem, reads and writes of globals the sandbox does not give (luacheck), the\n"
               "  offer -> rule file table, and warnings (misnamed files; with --config, offers in the\n"
               "  store without a rule file). DIR defaults to the config's rules.dir (with --config),\n"
               "  else 'rules'. Warnings do not change the exit status.\n"
               "  Exit status: 0 all valid, 1 problems found, 2 usage or unreadable DIR.\n");
}

static void replay_help(FILE *f)
{
    fprintf(f, "usage: saasd rules replay --candidate DIR [--config FILE] [--since DATE] [--offer ID]\n"
               "                          [--http recorded|refuse] [--allow-diff]\n"
               "  Runs the rule files of DIR against the inputs recorded with every past rule decision in\n"
               "  the store of the config's data_dir (subscription view, change/event, clock, ctx.store\n"
               "  reads, ctx.http answers), in the same sandbox and limits, without side effects: ctx.store\n"
               "  reads are answered from the record, writes are discarded. ctx.http: --http recorded (the\n"
               "  default) answers each call from the calls the recorded decision made (same method and\n"
               "  URL, in order; any other call is refused), --http refuse refuses every call. Nothing is\n"
               "  sent. Prints per offer and handler how many decisions are the same and how many differ,\n"
               "  and each difference with the ctx.http calls refused.\n"
               "  DATE: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC).\n"
               "  Exit status: 0 no difference (or --allow-diff), 1 a decision differs, 2 usage or error.\n");
}

static long long parse_since(const char *s)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end && s) {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%Y-%m-%d", &tm);
    }
    if (!end || (*end && strcmp(end, "Z")))
        return -1;
    return (long long)timegm(&tm) * 1000;
}

static void print_replay(json_t *r)
{
    const char *group;
    json_t *g, *d, *t;
    size_t i, j;
    json_object_foreach(json_object_get(r, "groups"), group, g)
        printf("%-40s %lld same, %lld differ\n", group, (long long)json_integer_value(json_object_get(g, "same")),
               (long long)json_integer_value(json_object_get(g, "differ")));
    json_array_foreach(json_object_get(r, "differences"), i, d) {
        char *old = json_dumps(json_object_get(d, "old"), JSON_COMPACT | JSON_SORT_KEYS);
        char *now = json_dumps(json_object_get(d, "new"), JSON_COMPACT | JSON_SORT_KEYS);
        const char *ev = json_string_value(json_object_get(d, "event"));
        printf("differs: %s subscription %s event %s\n  old %s (rule %.12s)\n  new %s (rule %.12s)\n",
               json_string_value(json_object_get(d, "group")), json_string_value(json_object_get(d, "subscription")),
               ev && *ev ? ev : "-", old ? old : "?", json_string_value(json_object_get(d, "old_sha256")),
               now ? now : "?", json_string_value(json_object_get(d, "new_sha256")));
        json_array_foreach(json_object_get(d, "http_refused"), j, t)
            printf("  http refused: %s\n", json_string_value(t));
        free(old);
        free(now);
    }
    double secs = json_number_value(json_object_get(r, "seconds"));
    long long n = json_integer_value(json_object_get(r, "calls"));
    printf("%lld decisions replayed, %lld differ, %lld ctx.http calls refused (http %s), in %.3f s (%.0f decisions/s)\n",
           n, (long long)json_integer_value(json_object_get(r, "differ")),
           (long long)json_integer_value(json_object_get(r, "http_refused")),
           json_string_value(json_object_get(r, "http")), secs, secs > 0 ? (double)n / secs : 0.0);
}

static int cmd_rules_replay(int argc, char **argv)
{
    const char *config_path = NULL, *candidate = NULL, *since = NULL, *offer = NULL, *http = NULL,
               *args[CMD_MAX_ARGS];
    int allow_diff = 0;
    const struct cmd_opt opts[] = {{"--config", "-c", &config_path, NULL}, {"--candidate", NULL, &candidate, NULL},
                                   {"--since", NULL, &since, NULL},        {"--offer", NULL, &offer, NULL},
                                   {"--http", NULL, &http, NULL},          {"--allow-diff", NULL, NULL, &allow_diff},
                                   {NULL}};
    const struct cmd_spec spec = {"saasd rules replay --candidate DIR [--config FILE] [--since DATE] [--offer ID] "
                                  "[--http recorded|refuse] [--allow-diff]", replay_help, opts, 1, 1};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
    if (!candidate)
        return cmd_usage_error(&spec, "--candidate DIR is required");
    long long since_ms = since ? parse_since(since) : 0;
    if (since_ms < 0)
        return cmd_usage_error(&spec, "--since wants YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, not '%s'", since);
    enum engine_http_mode mode = ENGINE_HTTP_RECORDED;
    if (http && engine_http_mode_from_name(http, &mode) != 0)
        return cmd_usage_error(&spec, "--http wants recorded or refuse, not '%s'", http);
    struct saasd_config *cfg = NULL;
    char err[512];
    if (config_load(config_path ? config_path : "/etc/saasd/saasd.conf", &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "saasd rules replay: %s\n", err);
        return 2;
    }
    struct store *s = NULL;
    log_set_level(LOG_WARN); /* the candidate's ctx.log lines are not news during a replay */
    int rc = store_open(cfg->data_dir, NULL, &s);
    json_t *report = NULL;
    struct replay_options ro = {candidate, since_ms, offer, cfg->rule_cpu_ms, cfg->rule_memory, mode};
    if (!rc)
        rc = engine_replay(s, &ro, &report);
    if (rc)
        fprintf(stderr, "saasd rules replay: %s\n", saasd_strerror(rc));
    else
        print_replay(report);
    long long differ = json_integer_value(json_object_get(report, "differ"));
    json_decref(report);
    store_close(s);
    config_free(cfg);
    return rc ? 2 : differ && !allow_diff ? 1 : 0;
}

int cmd_rules(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "replay")) /* its own options: parsed by its own table */
            return cmd_rules_replay(argc, argv);
    const char *config_path = NULL, *args[CMD_MAX_ARGS];
    const struct cmd_opt opts[] = {{"--config", "-c", &config_path, NULL}, {NULL}};
    const struct cmd_spec spec = {"saasd rules check [DIR] [--config FILE]", help, opts, 1, 2};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
    if (strcmp(args[0], "check") != 0)
        return cmd_usage_error(&spec, "unknown rules command '%s'", args[0]);
    const char *dir = nargs > 1 ? args[1] : NULL;
    struct engine_options opt = {0};
    struct saasd_config *cfg = NULL;
    if (config_path) {
        char err[512];
        if (config_load(config_path, &cfg, err, sizeof err) < 0) {
            fprintf(stderr, "saasd rules check: %s\n", err);
            return 2;
        }
        opt.cpu_ms = cfg->rule_cpu_ms;
        opt.memory = cfg->rule_memory;
        if (!dir)
            dir = cfg->rules_dir;
    }
    if (!dir)
        dir = "rules";
    int problems = 0, warnings = 0;
    int rc = engine_check_dir(dir, &opt, print_problem, &problems);
    if (rc != SAASD_EIO)
        check_globals(dir, &problems);
    if (rc != SAASD_EIO)
        warnings = print_resolution(dir, cfg);
    if (rc == 0 && problems == 0 && warnings == 0)
        fprintf(stderr, "%s: all rule files are valid\n", dir);
    else if (rc == 0 && problems == 0)
        fprintf(stderr, "%s: all rule files load, but read the %d warning%s above\n", dir, warnings,
                warnings == 1 ? "" : "s");
    config_free(cfg);
    return rc == SAASD_EIO ? 2 : rc == 0 && problems == 0 ? 0 : rc == 0 || rc == SAASD_ERULE ? 1 : 2;
}
