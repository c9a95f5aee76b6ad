/* ctx.log: structured log lines from rules, tagged with the offer and handler.
 *   ctx.log.info("seat check", { seats = "3" })  -> component=rule offer=... handler=... */
#include "bind/bind.h"
#include "core/log.h"

#include <lauxlib.h>
#include <string.h>

#define LOG_MAX_FIELDS 12

static int log_at(lua_State *L, enum log_level level)
{
    const char *msg = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    struct bind_call *call = bind_call_of(L, "ctx.log");
    /* name/value pairs; the first NULL name ends the list for log_event */
    const char *kv[2 * (LOG_MAX_FIELDS + 2) + 1] = {0};
    size_t n = 0;
    kv[n++] = "offer";
    kv[n++] = call->offer_id;
    kv[n++] = "handler";
    kv[n++] = call->handler;
    if (lua_istable(L, 2)) {
        luaL_checkstack(L, 2 * LOG_MAX_FIELDS + 8, "too many log fields");
        lua_pushnil(L);
        while (lua_next(L, 2)) { /* stack: ... key value */
            if (n >= 2 * (LOG_MAX_FIELDS + 2)) {
                lua_pop(L, 2);
                break;
            }
            int key = lua_gettop(L) - 1;
            lua_pushvalue(L, key);                 /* ... key value keycopy */
            kv[n++] = luaL_tolstring(L, -1, NULL); /* ... key value keycopy ks */
            kv[n++] = luaL_tolstring(L, key + 1, NULL); /* ... key value keycopy ks vs */
            lua_rotate(L, key, 2);                 /* ... ks vs key value keycopy */
            lua_pop(L, 2);                         /* ... ks vs key */
        }
    }
    if (call->ops)
        call->ops->log(call->ops_ud, (int)level, msg, kv, n / 2);
    return 0;
}

static int l_log_debug(lua_State *L) { return log_at(L, LOG_DEBUG); }
static int l_log_info(lua_State *L) { return log_at(L, LOG_INFO); }
static int l_log_warn(lua_State *L) { return log_at(L, LOG_WARN); }
static int l_log_error(lua_State *L) { return log_at(L, LOG_ERROR); }

int luaopen_saas_log(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"debug", l_log_debug}, {"info", l_log_info}, {"warn", l_log_warn}, {"error", l_log_error},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
