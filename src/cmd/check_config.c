#include "cmd/args.h"
#include "cmd/cmd.h"
#include "core/client_cert.h"
#include "core/config.h"

#include <stdio.h>
#include <time.h>

static void help(FILE *f)
{
    fprintf(f, "usage: saasd check-config [--config FILE]\n"
               "Loads the config file (default " CMD_DEFAULT_CONFIG "), checks every key, its type, the\n"
               "secrets it points to and that the listen addresses are ones serve can bind.\n"
               "Prints 'FILE: ok' or 'FILE:LINE: key: what is wrong'; exit status 0 when valid.\n");
}

int cmd_check_config(int argc, char **argv)
{
    const char *path = CMD_DEFAULT_CONFIG, *args[CMD_MAX_ARGS];
    const struct cmd_opt opts[] = {{"--config", "-c", &path, NULL}, {NULL}};
    const struct cmd_spec spec = {"saasd check-config [--config FILE]", help, opts, 0, 0};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
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
