/* Shared plumbing of the bindings: the current call and its pending writes. */
#include "bind/bind.h"

#include <lauxlib.h>
#include <stdlib.h>

struct bind_call *bind_call_of(lua_State *L, const char *what)
{
    struct bind_host *h = bind_host_of(L);
    if (!h || !h->call)
        luaL_error(L, "%s used outside a handler call", what);
    return h->call;
}

void bind_kv_free(struct bind_kv *kv)
{
    while (kv) {
        struct bind_kv *next = kv->next;
        free(kv->key);
        free(kv->val);
        free(kv);
        kv = next;
    }
}

void bind_http_resp_free(struct bind_http_resp *r)
{
    free(r->headers);
    free(r->body);
    r->headers = r->body = NULL;
}
