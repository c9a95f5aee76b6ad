/* One sandboxed lua_State holding one rule file (engine-internal; used inside rule worker
 * processes, see worker.h).
 *
 * A vm is used by one thread at a time. vm_call is the one C entry point through which every
 * handler runs: it arms the limits, installs a traceback handler, maps the outcome to
 * enum rule_outcome, and leaves the Lua stack as it found it. */
#ifndef SAASD_ENGINE_VM_H
#define SAASD_ENGINE_VM_H

#include "bind/bind.h"
#include "engine/engine.h"
#include "engine/limits.h"

#include <lua.h>

/* A rule file of a generation: its text is kept, so what runs is what was hashed. */
struct rule_file {
    char *offer_id; /* "default" for default.lua and the built-in */
    char *path;
    char *source;
    size_t len;
    char sha256[65];
};

struct vm {
    lua_State *L;
    struct limits lim;
    struct bind_host host;
    int tainted; /* hit a limit or failed oddly: do not reuse */
    struct vm *next; /* free list of the generation's pool */
};

typedef void (*vm_problem_fn)(void *arg, const char *problem);

/* A state with the runtime modules, bindings and ctx, and no rules yet. */
int vm_new(size_t memory, struct vm **out);
void vm_free(struct vm *vm);

/* Load one rule file (runs its top level under cpu_ms). 0, or SAASD_ERULE / SAASD_ELIMIT after
 * reporting each problem as "file:line: message". */
int vm_load_rule(struct vm *vm, const struct rule_file *f, int cpu_ms, vm_problem_fn problem,
                 void *arg);

/* The landing table of the loaded rule f as JSON text (malloc'd), *out NULL when it has none.
 * Data only: runs no rule code. 0, SAASD_EINTERNAL, SAASD_ENOMEM. */
int vm_landing_json(struct vm *vm, const struct rule_file *f, char **out);

/* Run handler h of the loaded rule f. The result's strings are copied into out (which the
 * caller initialised); call is the capability context for this call. Returns like
 * engine_call. Sets vm->tainted after a limit. */
int vm_call(struct vm *vm, const struct rule_file *f, enum rule_handler h, const char *sub_json,
            const char *arg_json, int cpu_ms, struct bind_call *call, struct rule_result *out);

#endif
