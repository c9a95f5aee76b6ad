/* One strict command-line parser for every sub-command: the options a command takes are a
 * table; anything else (an unknown flag, a flag without its value, too many or too few
 * arguments) prints the command's usage line on stderr and makes the command exit 2.
 * --help / -h prints the full help on stdout (exit 0). "--opt=value" equals "--opt value";
 * "--" ends the options. */
#ifndef SAASD_CMD_ARGS_H
#define SAASD_CMD_ARGS_H

#include <stdio.h>

struct cmd_opt {
    const char *name;   /* "--config" */
    const char *alias;  /* "-c" or NULL */
    const char **value; /* option takes a value: where it goes (NULL for a flag) */
    int *flag;          /* flag: set to 1 when present */
};

struct cmd_spec {
    const char *usage;          /* one line: "saasd serve [--config FILE]" */
    void (*help)(FILE *f);      /* full help; NULL: the usage line */
    const struct cmd_opt *opts; /* terminated by {NULL} */
    int min_args, max_args;     /* positional arguments; max_args < 0: no limit */
};

#define CMD_MAX_ARGS 32 /* positional arguments a command can take */

/* Parse argv against spec. 0: go on, positionals in args[0..*nargs) (args has room for
 * CMD_MAX_ARGS entries). Otherwise the command must return *status at once (0 after --help, 2 after a
 * usage error, already reported). */
int cmd_parse(const struct cmd_spec *spec, int argc, char **argv, const char **args, int *nargs, int *status);

/* Print "saasd: MESSAGE\nusage: ..." on stderr; returns 2 (the exit status of a usage error). */
int cmd_usage_error(const struct cmd_spec *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
