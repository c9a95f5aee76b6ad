/* ctx.store: the offer's durable key-value space (LMDB database RULE_KV, keys prefixed with
 * offer id + '\0'). Writes are not applied here: they are kept as the call's pending writes and
 * the engine appends them to the caller's batch when the call succeeds, so they commit in the
 * same transaction as the decision and its audit record. Reads see the committed store plus
 * this call's own pending writes; committed values come from the values the daemon sent with
 * the call (call->prefetched: the keys this rule read on earlier calls) or through call->ops (in
 * a rule worker: a request to the daemon, which reads LMDB). Pending writes count against the
 * memory cap.
 *   ctx.store.get(key) -> string | nil      ctx.store.put(key, string|number)
 *   ctx.store.delete(key)                   keys: 1..200 bytes; values up to 1 MiB */
#include "bind/bind.h"
#include "core/err.h"
#include "engine/limits.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define STORE_KEY_MAX 200
#define STORE_VALUE_MAX (1024 * 1024)
#define STORE_WRITES_MAX 1000

static const char *check_key(lua_State *L, size_t *len)
{
    const char *k = luaL_checklstring(L, 1, len);
    luaL_argcheck(L, *len > 0 && *len <= STORE_KEY_MAX, 1, "key must be 1..200 bytes");
    return k;
}

static struct bind_kv *find_write(struct bind_call *call, const char *key, size_t klen)
{
    for (struct bind_kv *w = call->writes; w; w = w->next)
        if (w->klen == klen && memcmp(w->key, key, klen) == 0)
            return w;
    return NULL;
}

/* A prefetched committed value: 1 (pushed, its bit set in prefetch_used) or 0 (not sent). */
static int push_prefetched(lua_State *L, struct bind_call *call, const char *key, size_t klen)
{
    unsigned k = 0;
    for (const struct bind_kv *p = call->prefetched; p; p = p->next, k++)
        if (p->klen == klen && memcmp(p->key, key, klen) == 0) {
            call->prefetch_used |= 1u << k;
            if (p->val)
                lua_pushlstring(L, p->val, p->vlen);
            else
                lua_pushnil(L);
            return 1;
        }
    return 0;
}

static int l_store_get(lua_State *L)
{
    size_t klen;
    const char *key = check_key(L, &klen);
    struct bind_call *call = bind_call_of(L, "ctx.store");
    struct bind_kv *w = find_write(call, key, klen);
    if (w) {
        if (w->val)
            lua_pushlstring(L, w->val, w->vlen);
        else
            lua_pushnil(L);
        return 1;
    }
    if (push_prefetched(L, call, key, klen))
        return 1;
    char *val = NULL;
    size_t vlen = 0;
    int rc = call->ops ? call->ops->store_get(call->ops_ud, key, klen, &val, &vlen) : SAASD_ENOTFOUND;
    if (rc == SAASD_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "store: %s", saasd_strerror(rc));
        return 2;
    }
    /* copy into Lua before freeing: the buffer is ours, the string is Lua's */
    lua_pushlstring(L, val, vlen);
    free(val);
    return 1;
}

static int record(lua_State *L, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct bind_call *call = bind_call_of(L, "ctx.store");
    if (call->nwrites >= STORE_WRITES_MAX)
        return luaL_error(L, "ctx.store: more than %d writes in one call", STORE_WRITES_MAX);
    /* pending values live outside the Lua heap until the call ends: they count against the
     * memory cap all the same (1000 puts of 1 MiB must not grow the process by 1 GiB) */
    struct bind_host *h = bind_host_of(L);
    if (h->limits && limits_charge(h->limits, klen + vlen + sizeof(struct bind_kv)) < 0)
        return luaL_error(L, "ctx.store: memory limit: pending writes pass the rule's memory cap");
    struct bind_kv *w = calloc(1, sizeof *w);
    if (!w)
        return luaL_error(L, "ctx.store: out of memory");
    w->key = malloc(klen);
    w->val = val ? malloc(vlen ? vlen : 1) : NULL;
    if (!w->key || (val && !w->val)) {
        bind_kv_free(w);
        return luaL_error(L, "ctx.store: out of memory");
    }
    memcpy(w->key, key, klen);
    w->klen = klen;
    if (val)
        memcpy(w->val, val, vlen);
    w->vlen = vlen;
    w->next = call->writes;
    call->writes = w;
    call->nwrites++;
    return 0;
}

static int l_store_put(lua_State *L)
{
    size_t klen, vlen;
    const char *key = check_key(L, &klen);
    int t = lua_type(L, 2);
    luaL_argcheck(L, t == LUA_TSTRING || t == LUA_TNUMBER, 2, "value must be a string or a number");
    const char *val = lua_tolstring(L, 2, &vlen);
    luaL_argcheck(L, vlen <= STORE_VALUE_MAX, 2, "value larger than 1 MiB");
    record(L, key, klen, val, vlen);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_store_delete(lua_State *L)
{
    size_t klen;
    const char *key = check_key(L, &klen);
    record(L, key, klen, NULL, 0);
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_saas_store(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"get", l_store_get}, {"put", l_store_put}, {"delete", l_store_delete}, {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
