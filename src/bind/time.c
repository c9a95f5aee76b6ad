/* ctx.now(): wall-clock time in whole seconds since the epoch (UTC). */
#include "bind/bind.h"

#include <lauxlib.h>
#include <time.h>

static int l_time_now(lua_State *L)
{
    struct bind_host *h = bind_host_of(L);
    if (h && h->call && h->call->now_s > 0) { /* the clock the daemon recorded for this call */
        lua_pushinteger(L, (lua_Integer)h->call->now_s);
        return 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushinteger(L, (lua_Integer)ts.tv_sec);
    return 1;
}

int luaopen_saas_time(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"now", l_time_now}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
