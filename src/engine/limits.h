/* CPU and memory limits for one lua_State (HAProxy's counting allocator, Redis's kill hook).
 *
 * Memory: limits_alloc is a lua_Alloc that counts the bytes of its state and refuses an
 * allocation that would pass the cap. A refusal is sticky for the current call: the kill hook
 * is armed too, so a rule's own pcall cannot catch "not enough memory" and carry on.
 *
 * CPU: limits_install() sets a count hook once, for the life of the state (coroutines created
 * later inherit it). It does nothing until limits_arm() sets a deadline. When the deadline
 * passes, the hook raises an error and re-arms itself to run at every instruction, so every
 * later instruction raises again: a rule's pcall cannot swallow it.
 *
 * The deadline is wall time and includes time blocked in a binding (ctx.http). In the daemon
 * this hook only gives friendly "file:line" messages: the hard stop is the parent's SIGKILL of
 * the rule's worker process (engine/pool.c), which also stops work inside C functions.
 *
 * A struct limits is owned by whoever owns the state and must outlive it. It is used by one
 * thread at a time (the thread currently calling into the state). */
#ifndef SAASD_ENGINE_LIMITS_H
#define SAASD_ENGINE_LIMITS_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* The message handler protected rule calls install (lua.c's msghandler): error tables (schema
 * and input markers) pass through unchanged; anything else becomes its message with a
 * traceback. Shared by the daemon's entry point and the busted module. */
int limits_traceback(lua_State *L);

/* How many VM instructions pass between two deadline checks. */
#define LIMITS_HOOK_PERIOD 1000

struct limits {
    /* memory */
    lua_Alloc base_alloc; /* allocator that does the work (realloc for our own states) */
    void *base_ud;
    size_t used;          /* bytes currently allocated through this allocator */
    size_t cap;           /* 0 = no cap */
    size_t peak;
    int mem_hit;          /* an allocation was refused during the current call */
    char mem_where[160];  /* "file:line" of the Lua code that asked, when known */

    /* cpu */
    lua_State *L;         /* the main thread, for arming the kill hook from the allocator */
    int64_t deadline_ns;  /* CLOCK_MONOTONIC; 0 = not armed */
    size_t extra;         /* bytes charged outside the Lua heap this call (ctx.store writes) */
    int cpu_hit;          /* the deadline passed during the current call */
    char cpu_where[160];  /* "file:line" the rule was at when the deadline passed */
    int64_t budget_ns;    /* the budget of the current call, for the error message */
};

/* Prepare l for a new state whose allocations go through base_alloc/base_ud. */
void limits_init(struct limits *l, lua_Alloc base_alloc, void *base_ud, size_t cap);
/* The lua_Alloc to pass to lua_newstate (ud = the struct limits). */
void *limits_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Install the count hook on L (the main thread) and remember L. Once per state. */
void limits_install(struct limits *l, lua_State *L);
/* Arm for one call: deadline now + cpu_ms, clear the hit flags. cpu_ms <= 0: no deadline. */
void limits_arm(struct limits *l, int cpu_ms);
/* Disarm after the call; restores the normal hook period. Hit flags stay for the caller. */
void limits_disarm(struct limits *l);
/* Charge n bytes held outside the Lua heap for the current call (pending ctx.store writes)
 * to the memory cap. 0, or -1 when it would pass the cap: then the limit is hit as if the
 * allocator had refused (sticky, kill hook armed). Charges are dropped by limits_arm. */
int limits_charge(struct limits *l, size_t n);
/* Milliseconds left before the deadline (INT32_MAX when not armed). */
long limits_remaining_ms(const struct limits *l);
/* The struct limits of a state created with limits_alloc (via lua_getallocf). */
struct limits *limits_of(lua_State *L);

int64_t limits_now_ns(void);

#endif
