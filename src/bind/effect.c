/* ctx.meter, ctx.timer and ctx.notify's way out: effect(kind, arg...) records one effect of the
 * current call (kind and arguments are strings; saas.ctx validates and builds them). Effects are not
 * applied here: the daemon collects them during the call and applies them to the decision's
 * store batch only when the call succeeds, like ctx.store writes.
 *   kinds: "meter" dimension quantity | "timer" name fire_epoch_s data_json|nil
 *          | "timer_cancel" name | "notify" event_type data_json (checked again by engine/caps.c) */
#include "bind/bind.h"

#include <lauxlib.h>

#define EFFECTS_MAX 100
#define EFFECT_ARGS_MAX 4

static int l_effect(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_argcheck(L, n >= 1 && n <= EFFECT_ARGS_MAX + 1, 1, "effect(kind, up to 4 arguments)");
    const char *kind = luaL_checkstring(L, 1);
    const char *args[EFFECT_ARGS_MAX] = {0};
    for (int i = 2; i <= n; i++)
        args[i - 2] = lua_isnil(L, i) ? NULL : luaL_checkstring(L, i);
    struct bind_call *call = bind_call_of(L, "ctx.meter/ctx.timer/ctx.notify");
    if (call->neffects >= EFFECTS_MAX)
        return luaL_error(L, "more than %d ctx.meter/ctx.timer/ctx.notify calls in one call", EFFECTS_MAX);
    call->neffects++;
    if (call->ops && call->ops->effect)
        call->ops->effect(call->ops_ud, kind, args, (size_t)(n - 1));
    return 0;
}

int luaopen_saas_effect(lua_State *L)
{
    lua_pushcfunction(L, l_effect);
    return 1;
}
