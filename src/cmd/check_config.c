#include "cmd/cmd.h"
#include "core/config.h"

#include <stdio.h>

int cmd_check_config(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        printf("usage: saasd check-config [--config FILE | FILE]\n"
               "Loads the config file, checks every key, its type and the secrets it points to.\n"
               "Prints 'FILE: ok' or 'FILE:LINE: key: what is wrong'; exit status 0 when valid.\n");
        return 0;
    }
    const char *path = argc == 1 && argv[0][0] != '-' ? argv[0] : cmd_config_path(argc, argv);
    struct saasd_config *cfg = NULL;
    char err[1024];
    if (config_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: ok (listen %s:%d, rules %s, marketplace %s)\n", path, cfg->listen_addr, cfg->listen_port,
           cfg->rules_dir, cfg->marketplace_url);
    config_free(cfg);
    return 0;
}
