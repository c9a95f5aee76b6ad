/* Placeholder until the daemon (issue 6) lands: says so plainly instead of pretending. */
#include "cmd/cmd.h"

#include <stdio.h>

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "saasd serve: not built yet (the daemon (issue 6))\n");
    return 2;
}
