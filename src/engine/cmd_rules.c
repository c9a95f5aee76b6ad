/* saasd rules check [DIR] [--config FILE]: load every rule file of DIR (default: the config's
 * rules.dir, or "rules") in the real sandbox, with the config's limits, and print
 * "file:line: message" for each problem. Exit status 0: all valid; 1: problems; 2: usage or
 * the directory cannot be read. */
#include "cmd/args.h"
#include "cmd/cmd.h"
#include "core/config.h"
#include "core/err.h"
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>

static void print_problem(void *arg, const char *problem)
{
    (void)arg;
    printf("%s\n", problem);
}

static void help(FILE *f)
{
    fprintf(f, "usage: saasd rules check [DIR] [--config FILE]\n"
               "  Loads every DIR/*.lua in the rule sandbox and prints file:line: message for each\n"
               "  problem. DIR defaults to the config's rules.dir (with --config), else 'rules'.\n"
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
    int rc = engine_check_dir(dir, &opt, print_problem, NULL);
    if (rc == 0)
        fprintf(stderr, "%s: all rule files are valid\n", dir);
    config_free(cfg);
    return rc == 0 ? 0 : rc == SAASD_ERULE ? 1 : 2;
}
