#include "engine/limits.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Extra room granted once the cap is hit, so the error path (message, traceback, unwinding)
 * can still allocate what it needs while every new Lua instruction is refused. */
#define LIMITS_MEM_SLACK (256 * 1024)

int64_t limits_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void limits_init(struct limits *l, lua_Alloc base_alloc, void *base_ud, size_t cap)
{
    memset(l, 0, sizeof *l);
    l->base_alloc = base_alloc;
    l->base_ud = base_ud;
    l->cap = cap;
}

static void hook(lua_State *L, lua_Debug *ar);

/* Where the running Lua code is, as "file:line", for limit messages. Reads debug info only:
 * no allocation, so it is safe inside the allocator. */
static void where(lua_State *L, char *buf, size_t size)
{
    lua_Debug ar;
    buf[0] = '\0';
    for (int level = 0; level < 8 && lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar))
            break;
        if (ar.currentline > 0) {
            const char *src = ar.source[0] == '@' ? ar.source + 1 : ar.short_src;
            snprintf(buf, size, "%s:%d", src, ar.currentline);
            return;
        }
    }
}

static void kill_mode(struct limits *l, lua_State *L)
{
    /* From now on the hook runs before every instruction of this thread (and of the main
     * thread), so the error is raised again wherever the rule tries to continue. */
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    if (l->L && l->L != L)
        lua_sethook(l->L, hook, LUA_MASKCOUNT, 1);
}

static void mem_refused(struct limits *l)
{
    if (!l->mem_hit && l->L) {
        l->mem_hit = 1;
        where(l->L, l->mem_where, sizeof l->mem_where);
        kill_mode(l, l->L);
    }
    l->mem_hit = 1;
}

int limits_charge(struct limits *l, size_t n)
{
    if (l->cap && (l->mem_hit || l->used + l->extra + n > l->cap)) {
        mem_refused(l);
        return -1;
    }
    l->extra += n;
    return 0;
}

void *limits_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct limits *l = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        l->base_alloc(l->base_ud, ptr, osize, 0);
        l->used = l->used > old ? l->used - old : 0;
        return NULL;
    }
    if (l->cap && nsize > old) {
        size_t limit = l->cap + (l->mem_hit ? LIMITS_MEM_SLACK : 0);
        if ((l->used > old ? l->used - old : 0) + l->extra + nsize > limit) {
            mem_refused(l);
            return NULL;
        }
    }
    void *p = l->base_alloc(l->base_ud, ptr, osize, nsize);
    if (p) {
        l->used = (l->used > old ? l->used - old : 0) + nsize;
        if (l->used > l->peak)
            l->peak = l->used;
    }
    return p;
}

struct limits *limits_of(lua_State *L)
{
    void *ud = NULL;
    lua_Alloc f = lua_getallocf(L, &ud);
    return f == limits_alloc ? ud : NULL;
}

static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct limits *l = limits_of(L);
    if (!l)
        return;
    if (l->mem_hit) {
        kill_mode(l, L);
        /* where the first refusal happened, not where the rule's pcall landed afterwards */
        const char *at = l->mem_where;
        lua_pushfstring(L, "%s%smemory limit: the rule used more than %d KiB",
                        at, at[0] ? ": " : "", (int)(l->cap / 1024));
        lua_error(L);
    }
    if (!l->deadline_ns)
        return;
    if (!l->cpu_hit && limits_now_ns() < l->deadline_ns)
        return;
    if (!l->cpu_hit) /* remember where the rule was, not where its pcall landed later */
        where(L, l->cpu_where, sizeof l->cpu_where);
    l->cpu_hit = 1;
    kill_mode(l, L);
    const char *at = l->cpu_where;
    lua_pushfstring(L, "%s%scpu limit: the rule ran longer than %d ms", at, at[0] ? ": " : "",
                    (int)(l->budget_ns / 1000000));
    lua_error(L);
}

void limits_install(struct limits *l, lua_State *L)
{
    l->L = L;
    lua_sethook(L, hook, LUA_MASKCOUNT, LIMITS_HOOK_PERIOD);
}

void limits_arm(struct limits *l, int cpu_ms)
{
    l->cpu_hit = 0;
    l->mem_hit = 0;
    l->mem_where[0] = '\0';
    l->cpu_where[0] = '\0';
    l->extra = 0;
    l->budget_ns = cpu_ms > 0 ? (int64_t)cpu_ms * 1000000 : 0;
    l->deadline_ns = cpu_ms > 0 ? limits_now_ns() + l->budget_ns : 0;
    if (l->L)
        lua_sethook(l->L, hook, LUA_MASKCOUNT, LIMITS_HOOK_PERIOD);
}

void limits_disarm(struct limits *l)
{
    l->deadline_ns = 0;
    if (l->L)
        lua_sethook(l->L, hook, LUA_MASKCOUNT, LIMITS_HOOK_PERIOD);
}

long limits_remaining_ms(const struct limits *l)
{
    if (!l->deadline_ns)
        return INT32_MAX;
    int64_t left = l->deadline_ns - limits_now_ns();
    return left > 0 ? (long)(left / 1000000) : 0;
}

int limits_traceback(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE)
        return 1;
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}
