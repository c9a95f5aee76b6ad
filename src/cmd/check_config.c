#include "cmd/cmd.h"
#include "core/client_cert.h"
#include "core/config.h"

#include <stdio.h>
#include <time.h>

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
    if (cfg->client_cert) {
        char until[32];
        time_t na = client_cert_not_after(cfg->client_cert);
        struct tm tm;
        gmtime_r(&na, &tm);
        strftime(until, sizeof until, "%Y-%m-%d", &tm);
        printf("entra: certificate %s (thumbprint as the portal lists it), valid until %s\n",
               client_cert_thumbprint_hex(cfg->client_cert), until);
    } else {
        printf("entra: client secret\n");
    }
    config_free(cfg);
    return 0;
}
