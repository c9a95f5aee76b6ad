/* saasd rules check [DIR] [--config FILE]: load every rule file of DIR (default: the config's
 * rules.dir, or "rules") in the real sandbox, with the config's limits, and print
 * "file:line: message" for each problem. Exit status 0: all valid; 1: problems; 2: usage or
 * the directory cannot be read. */
#include "cmd/args.h"
#include "cmd/cmd.h"
#include "core/config.h"
#include "core/err.h"
#include "core/store.h"
#include "engine/engine.h"

#include <jansson.h>
#include <sys/stat.h>

#include <stdio.h>
#include <string.h>

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

int cmd_rules(int argc, char **argv)
{
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
