#include "cmd/args.h"

#include <stdarg.h>
#include <string.h>

int cmd_usage_error(const struct cmd_spec *spec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("saasd: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\n(--help for details)\n", spec->usage);
    return 2;
}

static const struct cmd_opt *find_opt(const struct cmd_spec *spec, const char *arg, size_t len)
{
    for (const struct cmd_opt *o = spec->opts; o && o->name; o++)
        if ((strlen(o->name) == len && !strncmp(o->name, arg, len)) ||
            (o->alias && strlen(o->alias) == len && !strncmp(o->alias, arg, len)))
            return o;
    return NULL;
}

int cmd_parse(const struct cmd_spec *spec, int argc, char **argv, const char **args, int *nargs, int *status)
{
    *nargs = 0;
    int only_args = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_args || a[0] != '-' || a[1] == '\0') {
            if (*nargs == CMD_MAX_ARGS) {
                *status = cmd_usage_error(spec, "too many arguments");
                return 1;
            }
            args[(*nargs)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_args = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (spec->help)
                spec->help(stdout);
            else
                printf("usage: %s\n", spec->usage);
            *status = 0;
            return 1;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
        const struct cmd_opt *o = find_opt(spec, a, len);
        if (!o) {
            *status = cmd_usage_error(spec, "unknown option '%.*s'", (int)len, a);
            return 1;
        }
        if (!o->value) {
            if (len != strlen(a)) {
                *status = cmd_usage_error(spec, "option '%s' takes no value", o->name);
                return 1;
            }
            *o->flag = 1;
        } else if (len != strlen(a)) {
            *o->value = a + len + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            *status = cmd_usage_error(spec, "option '%s' needs a value", o->name);
            return 1;
        }
    }
    if (*nargs < spec->min_args) {
        *status = cmd_usage_error(spec, "missing argument");
        return 1;
    }
    if (spec->max_args >= 0 && *nargs > spec->max_args) {
        *status = cmd_usage_error(spec, "unexpected argument '%s'", args[spec->max_args]);
        return 1;
    }
    return 0;
}
