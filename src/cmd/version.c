#include "cmd/cmd.h"

#include <stdio.h>

#ifndef SAASD_VERSION
#define SAASD_VERSION "0.1.0"
#endif

int cmd_version(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        printf("usage: saasd version\nPrints the saasd version.\n");
        return 0;
    }
    printf("saasd %s\n", SAASD_VERSION);
    return 0;
}
