/* Rule worker processes (engine-internal).
 *
 * Rules run in small worker processes, never in the daemon: a worker is this same executable
 * re-executed (posix_spawn of engine_options.worker_exe, else $SAASD_RULE_WORKER, else
 * /proc/self/exe) with its socket on fd 3 and SAASD_RULE_WORKER_FD=3 in its environment; a
 * constructor in pool.c sees the variable and runs worker_main() before main(), so every
 * program linking libsaasd (the daemon, tests, benchmarks) can host workers.
 *
 * Child side (worker.c): one lua_State per offer ("slot"), each holding only its rule file,
 * the runtime and the bindings; the capabilities are requests to the daemon. RLIMIT_DATA
 * bounds everything the process allocates, C libraries included; an alarm() backstop ends a
 * worker whose daemon vanished while a rule was stuck.
 *
 * Parent side (pool.c): spawn, load, call with a wall-clock deadline, SIGKILL, reap. */
#ifndef SAASD_ENGINE_WORKER_H
#define SAASD_ENGINE_WORKER_H

#include "engine/caps.h"
#include "engine/engine.h"
#include "engine/vm.h"
#include "engine/wire.h"

#include <stddef.h>
#include <sys/types.h>

/* Child: serve requests read from in, replies written to out, until the daemon closes in.
 * Returns the exit status. */
int worker_main(int in, int out);

/* Time a worker gets past the deadline to report a limit itself (its own instruction hook
 * gives a "file:line" message) before it is killed. */
#define WORKER_GRACE_MS 100

/* A worker that started must say hello within this time (exec, dynamic linking, a loaded
 * machine); it does not count against any rule's limit. */
#define WORKER_START_MS 10000

/* States a worker may hold before it is retired (old rule texts pile up over reloads). */
#define WORKER_MAX_STATES 256

struct worker {
    pid_t pid;
    int fd;              /* replies from the worker (its fd 4) */
    int out;             /* requests to the worker (its fd 3) */
    int dead;            /* killed or broken: must not be reused */
    struct wire_rx rx;   /* what was read from fd beyond the frames taken */
    char **keys;         /* slot i holds the state keyed keys[i] ("offer sha256 path") */
    size_t nkeys, capkeys;
    struct prefetch *pf; /* slot i's ctx.store key templates (engine/prefetch.h) */
    struct worker *next; /* free list of the pool */
};

/* Start a worker and wait for its hello. exe NULL: the default (see above). */
int worker_spawn(const char *exe, struct worker **out);
/* SIGKILL (when alive), reap, close, free. */
void worker_free(struct worker *w);
/* 0 when an idle worker died while it waited in the pool (killed from outside). */
int worker_idle_ok(const struct worker *w);

/* The slot holding offer's state of exactly the text of f (same path and SHA-256), or -1. */
long worker_slot(const struct worker *w, const struct rule_file *f, const char *offer);

/* Load f into a fresh state of its own for offer in the worker, running its top level under cpu_ms (wall
 * time: SIGKILL after cpu_ms + WORKER_GRACE_MS). Problems are reported as "file:line:
 * message". 0 (*slot set), SAASD_ERULE, SAASD_ELIMIT (w->dead after a kill), or an I/O error. */
int worker_load(struct worker *w, const struct rule_file *f, const char *offer, int cpu_ms,
                size_t memory, vm_problem_fn problem, void *arg, long *slot);

/* The landing table (contract.landing_json) of the file loaded in slot i as JSON text, *json
 * malloc'd or NULL when the rule has none. Runs no rule code; bounded by cpu_ms. 0 or an I/O
 * error (w->dead then). */
int worker_landing(struct worker *w, long i, int cpu_ms, char **json);

/* Run handler h of the file loaded in slot i. out was initialised by the caller (offer_id set); *writes
 * receives the call's pending ctx.store writes (newest first) when it returns 0. caps holds
 * the deadline (set here from cpu_ms) and the capabilities. Returns like engine_call. */
int worker_call(struct worker *w, long i, const struct rule_file *f, enum rule_handler h,
                const char *sub_json, const char *arg_json, int cpu_ms, size_t memory,
                struct caps *caps, struct rule_result *out, struct bind_kv **writes);

#endif
