#include "cmd/cmd.h"
#include "core/config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

int cmd_load_config(int argc, char **argv, struct saasd_config **out)
{
    char err[1024];
    int rc = config_load(cmd_config_path(argc, argv), out, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    return rc;
}

const char *cmd_config_path(int argc, char **argv)
{
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c"))
            return argv[i + 1];
    return "examples/saasd.conf";
}

void cmd_block_signals(sigset_t *set, int with_hup)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    if (with_hup)
        sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int cmd_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}
