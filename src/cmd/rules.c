/* Placeholder until the rule engine (issue 3) lands: says so plainly instead of pretending. */
#include "cmd/cmd.h"

#include <stdio.h>

int cmd_rules(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "saasd rules: not built yet (the rule engine (issue 3))\n");
    return 2;
}
