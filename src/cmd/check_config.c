/* Placeholder until the config loader lands. */
#include "cmd/cmd.h"

#include <stdio.h>

int cmd_check_config(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "saasd check-config: not built yet\n");
    return 2;
}
