/* saasd: command-line entry point. Dispatches to the sub-commands in src/cmd/. */
#include "cmd/cmd.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"serve", cmd_serve, "run the daemon: landing page, webhook, workers, admin API"},
    {"run", cmd_run, "start the built-in emulator and the daemon together, create a purchase"},
    {"check-config", cmd_check_config, "load and validate a config file"},
    {"admin", cmd_admin, "operator commands over the daemon's admin API (subscriptions, outbox, reconcile...)"},
    {"rules", cmd_rules, "rules check [DIR]: load every rule file in the real sandbox"},
    {"test", cmd_test, "test [DIR]: run a rules repository's busted specs under Lua 5.4"},
    {"mp", cmd_mp, "call the marketplace API (resolve, get, list, plans, ...)"},
    {"emulate", cmd_emulate, "serve the built-in marketplace + Entra ID emulator"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: saasd <command> [--config FILE] [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'saasd <command> --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a peer that hangs up must not kill the daemon */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "saasd: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
