/* Placeholder until make run (issue 6) lands: says so plainly instead of pretending. */
#include "cmd/cmd.h"

#include <stdio.h>

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "saasd run: not built yet (make run (issue 6))\n");
    return 2;
}
