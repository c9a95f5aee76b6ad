#include "cmd/cmd.h"
#include "core/config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

int cmd_load_config(const char *path, struct saasd_config **out)
{
    char err[1024];
    int rc = config_load(path ? path : CMD_DEFAULT_CONFIG, out, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    return rc;
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
