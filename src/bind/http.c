/* ctx.http: outbound HTTP(S) from rules to the ISV's own systems, over src/core/http_client.
 * Only http/https URLs whose host is on the config's allow-list (rules.http_allow) are
 * called. The timeout is the smaller of the request's timeout_ms and rules.http_timeout_ms.
 * While the request waits, the rule's CPU clock is stopped (see engine/limits.h).
 *   ctx.http.request{ method = "GET", url = ..., headers = { Name = "value" }, body = "...",
 *                     timeout_ms = n }
 *     -> { status = 200, body = "...", header = function(name) -> value | nil }
 *     -> nil, err   ("http disabled", "host not allowed: x", "timeout", "io_error", ...) */
#include "bind/bind.h"
#include "core/err.h"
#include "core/http_client.h"
#include "engine/limits.h"

#include <curl/curl.h>
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

/* The URL's scheme, host and port through libcurl's URL parser. 0 or an error text. */
static const char *url_target(const char *url, char **host, char **port)
{
    *host = *port = NULL;
    CURLU *u = curl_url();
    if (!u)
        return "out of memory";
    const char *err = NULL;
    char *scheme = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        err = "not a valid URL";
        goto done;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        err = "only http and https URLs are allowed";
        goto done;
    }
    if (curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK) {
        err = "URL without a host";
        goto done;
    }
    curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT);
done:
    curl_free(scheme);
    curl_url_cleanup(u);
    return err;
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
    struct http_header headers[HTTP_MAX_HEADERS];
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
            headers[nheaders].name = lua_tostring(L, -2);
            headers[nheaders].value = lua_tostring(L, -1);
            nheaders++;
            lua_pop(L, 1);
        }
    }
    struct bind_call *call = bind_call_of(L, "ctx.http");
    if (!call->http)
        return fail(L, "http disabled");

    char *host = NULL, *port = NULL;
    const char *err = url_target(url, &host, &port);
    if (!err && !bind_http_host_allowed(call->http_allow, host, port)) {
        lua_pushfstring(L, "host not allowed: %s (add it to rules.http_allow)", host);
        curl_free(host);
        curl_free(port);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    curl_free(host);
    curl_free(port);
    if (err)
        return fail(L, err);

    long limit = call->http_timeout_ms > 0 ? call->http_timeout_ms : 3000;
    if (timeout > 0 && timeout < limit)
        limit = (long)timeout;
    struct http_request req = {
        .method = method, .url = url, .headers = headers, .nheaders = nheaders,
        .body = body, .body_len = body_len, .timeout_ms = limit,
    };
    struct http_response resp;
    struct bind_host *h = bind_host_of(L);
    if (h->limits)
        limits_pause(h->limits);
    int rc = http_client_do(call->http, &req, &resp);
    if (h->limits)
        limits_resume(h->limits);
    if (rc < 0) {
        http_response_free(&resp);
        return fail(L, saasd_strerror(rc));
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
    http_response_free(&resp);
    return 1;
}

int luaopen_saas_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"request", l_http_request}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
