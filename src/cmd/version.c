#include "cmd/args.h"
#include "cmd/cmd.h"

#include <stdio.h>

#ifndef SAASD_VERSION
#define SAASD_VERSION "0.1.0"
#endif

int cmd_version(int argc, char **argv)
{
    const char *args[CMD_MAX_ARGS];
    const struct cmd_spec spec = {"saasd version", NULL, NULL, 0, 0};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
    printf("saasd %s\n", SAASD_VERSION);
    return 0;
}
