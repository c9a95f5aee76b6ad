/* ctx.http: outbound HTTP(S) from rules to the ISV's own systems. The binding only collects
 * the request: the daemon performs it (engine/caps.c, over src/core/http_client), after
 * checking the URL against the config's allow-list (rules.http_allow). The timeout is the
 * smallest of the request's timeout_ms, rules.http_timeout_ms, what is left of the call's
 * ctx.http budget and what is left of the call's deadline: time waiting for HTTP counts
 * against the call like any other (see engine/limits.h).
 *   ctx.http.request{ method = "GET", url = ..., headers = { Name = "value" }, body = "...",
 *                     timeout_ms = n }
 *     -> { status = 200, body = "...", header = function(name) -> value | nil }
 *     -> nil, err   ("http disabled", "host not allowed: x", "timeout", "io_error", ...) */
#include "bind/bind.h"
#include "core/err.h"
#include "core/http_client.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_MAX_HEADERS 32

int bind_http_host_allowed(char *const *allow, const char *host, const char *port)
{
    if (!allow || !host)
        return 0;
    size_t hlen = strlen(host);
    for (char *const *p = allow; *p; p++) {
        const char *pat = *p;
        const char *colon = strrchr(pat, ':');
        size_t plen = colon ? (size_t)(colon - pat) : strlen(pat);
        if (colon && (!port || strcmp(colon + 1, port) != 0))
            continue;
        if (plen > 2 && pat[0] == '*' && pat[1] == '.') {
            size_t slen = plen - 1; /* ".example.com" */
            if (hlen > slen && strncasecmp(host + hlen - slen, pat + 1, slen) == 0)
                return 1;
        } else if (plen == hlen && strncasecmp(host, pat, plen) == 0) {
            return 1;
        }
    }
    return 0;
}

static int fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* resp.header(name): upvalue 1 = the raw header block of the response */
static int l_http_header(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    struct http_response r = {0};
    /* http_response_header only reads the block; the union drops const without a cast */
    union { const char *ro; char *rw; } block = {.ro = lua_tostring(L, lua_upvalueindex(1))};
    r.headers = block.rw;
    char buf[1024];
    const char *v = http_response_header(&r, name, buf, sizeof buf);
    if (v)
        lua_pushstring(L, v);
    else
        lua_pushnil(L);
    return 1;
}

static int l_http_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "url");
    const char *url = luaL_optstring(L, -1, NULL);
    luaL_argcheck(L, url != NULL, 1, "request needs a url");
    lua_getfield(L, 1, "method");
    const char *method = luaL_optstring(L, -1, "GET");
    lua_getfield(L, 1, "body");
    size_t body_len = 0;
    const char *body = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &body_len);
    lua_getfield(L, 1, "timeout_ms");
    lua_Integer timeout = luaL_optinteger(L, -1, 0);
    lua_getfield(L, 1, "headers");
    int hidx = lua_gettop(L);
    const char *headers[2 * HTTP_MAX_HEADERS];
    size_t nheaders = 0;
    if (!lua_isnil(L, hidx)) {
        luaL_checktype(L, hidx, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, hidx)) {
            if (nheaders == HTTP_MAX_HEADERS)
                return luaL_error(L, "ctx.http: more than %d headers", HTTP_MAX_HEADERS);
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "ctx.http: headers must map strings to strings");
            /* the strings stay referenced by the headers table, which stays on the stack */
            headers[2 * nheaders] = lua_tostring(L, -2);
            headers[2 * nheaders + 1] = lua_tostring(L, -1);
            nheaders++;
            lua_pop(L, 1);
        }
    }
    struct bind_call *call = bind_call_of(L, "ctx.http");
    if (!call->ops)
        return fail(L, "http disabled");
    struct bind_http_req req = {
        .method = method, .url = url, .body = body, .body_len = body_len,
        .timeout_ms = timeout > 0 && timeout < 86400000 ? (long)timeout : 0,
        .headers = headers, .nheaders = nheaders,
    };
    struct bind_http_resp resp = {0};
    char err[512] = "";
    if (call->ops->http(call->ops_ud, &req, &resp, err, sizeof err) < 0) {
        bind_http_resp_free(&resp);
        return fail(L, err[0] ? err : "io_error");
    }
    /* copy everything into Lua before releasing the response */
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, resp.status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, resp.body ? resp.body : "", resp.body ? resp.body_len : 0);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, resp.headers ? resp.headers : "");
    lua_pushcclosure(L, l_http_header, 1);
    lua_setfield(L, -2, "header");
    bind_http_resp_free(&resp);
    return 1;
}

int luaopen_saas_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"request", l_http_request}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
