/* Placeholder until the marketplace client (issue 4) lands: says so plainly instead of pretending. */
#include "cmd/cmd.h"

#include <stdio.h>

int cmd_mp(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "saasd mp: not built yet (the marketplace client (issue 4))\n");
    return 2;
}
