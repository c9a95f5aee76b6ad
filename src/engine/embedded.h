/* Lua sources compiled into the binary (src/engine/embedded.c, .incbin of the files), so the
 * daemon runs exactly the lua/saas/ code the specs test, without a search path at run time. */
#ifndef SAASD_ENGINE_EMBEDDED_H
#define SAASD_ENGINE_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
    const char *name;   /* module name ("saas.sandbox") or path ("rules/default.lua") */
    const char *path;   /* repository path, for error messages */
    const char *data;   /* NUL-terminated text */
};

/* The runtime modules, in load order; NULL name ends the list. */
extern const struct embedded_file embedded_modules[];
/* rules/default.lua: the built-in default rule. */
const struct embedded_file *embedded_default_rule(void);

#endif
