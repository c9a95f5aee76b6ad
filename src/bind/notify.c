/* ctx.notify: an ISV-defined event from a rule, added to the same stream as saasd's own events
 * (daemon/events.c) and delivered to the same sinks. Like ctx.store writes, a notification is
 * kept as a pending entry of the call (a bind_kv without a key, its value {"type","data"}) and
 * the daemon appends it to the decision's store batch only when the call succeeds: a handler that
 * raises or returns nil, err notifies nothing. Pending notifications count against the memory cap.
 *   notify(event_type, fields_json)   (ctx.notify in lua/saas/ctx.lua encodes the fields table)
 * event_type: 3..64 of [a-z0-9_.], at least two dot-separated words, its first word not one of
 * saasd's own (subscription, usage, drift, outbox, activation): "crm.seats_requested". */
#include "bind/bind.h"
#include "engine/limits.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define NOTIFY_TYPE_MAX 64
#define NOTIFY_FIELDS_MAX (64 * 1024)
#define NOTIFY_MAX 100

/* The first words of saasd's own event types: a rule cannot pass for saasd. */
static const char *const reserved[] = {"subscription", "usage", "drift", "outbox", "activation"};

static int type_ok(const char *t, size_t len)
{
    if (len < 3 || len > NOTIFY_TYPE_MAX || strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789_.") != len)
        return 0;
    const char *dot = strchr(t, '.');
    if (!dot || dot == t || t[len - 1] == '.' || strstr(t, ".."))
        return 0;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if ((size_t)(dot - t) == strlen(reserved[i]) && !strncmp(t, reserved[i], (size_t)(dot - t)))
            return 0;
    return 1;
}

static int l_notify(lua_State *L)
{
    size_t tlen, flen;
    const char *type = luaL_checklstring(L, 1, &tlen);
    const char *fields = luaL_checklstring(L, 2, &flen);
    luaL_argcheck(L, type_ok(type, tlen), 1,
                  "event type must be like \"crm.seats_requested\" ([a-z0-9_.], not saasd's own subscription.*, usage.*, ...)");
    luaL_argcheck(L, flen <= NOTIFY_FIELDS_MAX && flen && fields[0] == '{', 2, "fields must be a JSON object of at most 64 KiB");
    struct bind_call *call = bind_call_of(L, "ctx.notify");
    if (call->nnotify >= NOTIFY_MAX)
        return luaL_error(L, "ctx.notify: more than %d notifications in one call", NOTIFY_MAX);
    size_t vlen = tlen + flen + sizeof "{\"type\":\"\",\"data\":}" - 1;
    struct bind_host *h = bind_host_of(L);
    if (h->limits && limits_charge(h->limits, vlen + sizeof(struct bind_kv)) < 0)
        return luaL_error(L, "ctx.notify: memory limit: pending notifications pass the rule's memory cap");
    struct bind_kv *w = calloc(1, sizeof *w);
    char *val = malloc(vlen + 1);
    if (!w || !val) {
        free(w);
        free(val);
        return luaL_error(L, "ctx.notify: out of memory");
    }
    /* the type needs no escaping: its characters were checked above */
    memcpy(val, "{\"type\":\"", 9);
    memcpy(val + 9, type, tlen);
    memcpy(val + 9 + tlen, "\",\"data\":", 9);
    memcpy(val + 18 + tlen, fields, flen);
    val[vlen - 1] = '}';
    val[vlen] = 0;
    w->val = val;
    w->vlen = vlen;
    w->next = call->writes;
    call->writes = w;
    call->nnotify++;
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_saas_notify(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"notify", l_notify}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
