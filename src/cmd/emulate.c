/* Placeholder until the emulator (issue 5) lands: says so plainly instead of pretending. */
#include "cmd/cmd.h"

#include <stdio.h>

int cmd_emulate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "saasd emulate: not built yet (the emulator (issue 5))\n");
    return 2;
}
