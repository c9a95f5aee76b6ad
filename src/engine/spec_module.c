/* saas.core: the C half of saas.testing, built as build/lua/saas/core.so for busted.
 * It gives specs the daemon's in-process limits (limits.c: instruction hook, counting
 * allocator) and crypto binding (bind/crypto.c). Rules run in the spec's own process: there is
 * no worker process, no SIGKILL deadline and no RLIMIT_DATA here (see engine/worker.h), so
 * work inside C functions is not stopped; fine for testing rules, not for hostile code.
 *
 *   core.run({ cpu_ms = n, memory = bytes }, fn, ...)
 *       runs fn(...) in the calling coroutine under the same instruction hook and counting
 *       allocator the daemon uses (memory = bytes on top of what the state already uses).
 *       -> true, results...  |  false, kind, message
 *          kind: "cpu_limit", "memory_limit" or "error" (message with traceback; an error
 *          object that is a table is returned as is)
 *   core.crypto                 the table rules get as ctx.crypto in the daemon */
#include "bind/bind.h"
#include "engine/limits.h"

#include <lauxlib.h>
#include <string.h>

int luaopen_saas_core(lua_State *L);

static int l_core_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_getfield(L, 1, "cpu_ms");
    int cpu_ms = (int)luaL_optinteger(L, -1, 2000);
    lua_getfield(L, 1, "memory");
    lua_Integer memory = luaL_optinteger(L, -1, 32 << 20);
    lua_pop(L, 2);
    int nargs = lua_gettop(L) - 2;

    lua_pushcfunction(L, limits_traceback);
    lua_insert(L, 2); /* opts msgh fn args... */

    struct limits lim;
    void *ud;
    lua_Alloc base = lua_getallocf(L, &ud);
    size_t used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    limits_init(&lim, base, ud, used + (size_t)memory);
    lim.used = used;
    lua_setallocf(L, limits_alloc, &lim);
    limits_install(&lim, L);
    limits_arm(&lim, cpu_ms);
    int st = lua_pcall(L, nargs, LUA_MULTRET, 2);
    limits_disarm(&lim);
    lua_sethook(L, NULL, 0, 0);
    lua_setallocf(L, base, ud);

    if (lim.cpu_hit || lim.mem_hit || st == LUA_ERRMEM) {
        const char *kind = lim.cpu_hit ? "cpu_limit" : "memory_limit";
        const char *msg = st != LUA_OK ? lua_tostring(L, -1) : NULL; /* stays on the stack */
        lua_pushboolean(L, 0);
        lua_pushstring(L, kind);
        if (!lim.cpu_hit && lim.mem_where[0])
            lua_pushfstring(L, "%s: memory limit: used more than %d KiB", lim.mem_where,
                            (int)(memory / 1024));
        else
            lua_pushstring(L, msg ? msg : kind);
        return 3;
    }
    if (st != LUA_OK) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "error");
        lua_pushvalue(L, -3);
        return 3;
    }
    int nres = lua_gettop(L) - 2;
    lua_pushboolean(L, 1);
    lua_insert(L, 3);
    return nres + 1;
}

int luaopen_saas_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"run", l_core_run}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    luaopen_saas_crypto(L);
    lua_setfield(L, -2, "crypto");
    return 1;
}
