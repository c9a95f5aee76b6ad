#include "engine/vm.h"
#include "core/err.h"
#include "engine/embedded.h"

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* lua-cjson (liblua5.4-cjson, linked by mk/lua.mk): it has no header of its own. */
int luaopen_cjson(lua_State *L);

/* Registry keys (their addresses are the keys). */
static const char REG_LOAD = 0;  /* function(source, chunkname) -> handlers | nil, problems */
static const char REG_CALL = 0;  /* saas.contract.call */
static const char REG_CTX = 0;   /* the frozen ctx table */
static const char REG_RULES = 0; /* path -> handlers table */
static const char REG_LANDING = 0; /* saas.contract.landing_json */

/* Runs once per state, after the embedded modules are preloaded. */
static const char BOOTSTRAP[] =
    "local sandbox = require('saas.sandbox')\n"
    "local contract = require('saas.contract')\n"
    "local ctx = require('saas.ctx').new({\n"
    "  log = require('saas.log'), now = require('saas.time').now,\n"
    "  store = require('saas.store'), http = require('saas.http'),\n"
    "  crypto = require('saas.crypto'), notify = require('saas.notify').notify,\n"
    "})\n"
    "local check = contract.check_handlers\n"
    "return function(source, chunkname)\n"
    "  return sandbox.load_rule(source, chunkname, check)\n"
    "end, contract.call, ctx, contract.landing_json\n";

/* Per-call notes the message handler leaves for vm_call (one call at a time per vm). */
struct call_notes {
    const char *path; /* the rule file being run */
    int line;         /* innermost line of that file when the error was raised */
};
static _Thread_local struct call_notes notes;

/* Message handler under lua_pcall (lua.c's msghandler): adds a traceback to string errors and
 * notes the innermost line of the rule file, so errors raised inside bindings still point at
 * the rule's line. Table errors (schema violations) pass through unchanged. */
static int msgh(lua_State *L)
{
    lua_Debug ar;
    notes.line = 0;
    for (int level = 1; notes.path && lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && ar.source[0] == '@' &&
            strcmp(ar.source + 1, notes.path) == 0) {
            notes.line = ar.currentline;
            break;
        }
    }
    return limits_traceback(L);
}

static int preload_lua(lua_State *L)
{
    const struct embedded_file *f = &embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "@%s", f->path);
    if (luaL_loadbufferx(L, f->data, strlen(f->data), chunkname, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

static void preload_c(lua_State *L, const char *name, lua_CFunction open)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

/* Called under lua_pcall: libraries, module search limited to preload, runtime, ctx. */
static int setup(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_LOADLIBNAME, luaopen_package},
        {LUA_COLIBNAME, luaopen_coroutine}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_OSLIBNAME, luaopen_os},
        {LUA_DBLIBNAME, luaopen_debug},  {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    /* modules come from package.preload only: no file system search */
    lua_getglobal(L, "package");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "searchers");
    lua_createtable(L, 1, 0);
    lua_rawgeti(L, -2, 1); /* the preload searcher */
    lua_rawseti(L, -2, 1);
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 2);

    /* the string metatable would hand the real string library to anyone calling
     * getmetatable(""); the sandbox's getmetatable refuses strings, this is the second lock */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    /* Method calls on strings ("x":dump()) look in the metatable's __index, not in the rule's
     * environment: give them a copy of the string library without dump. */
    lua_newtable(L);
    lua_getglobal(L, "string");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "dump") != 0) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1); /* the string library */
    lua_setfield(L, -2, "__index");
    lua_pop(L, 2);

    preload_c(L, "cjson", luaopen_cjson);
    preload_c(L, "saas.log", luaopen_saas_log);
    preload_c(L, "saas.time", luaopen_saas_time);
    preload_c(L, "saas.store", luaopen_saas_store);
    preload_c(L, "saas.http", luaopen_saas_http);
    preload_c(L, "saas.crypto", luaopen_saas_crypto);
    preload_c(L, "saas.notify", luaopen_saas_notify);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (lua_Integer i = 0; embedded_modules[i].name; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, preload_lua, 1);
        lua_setfield(L, -2, embedded_modules[i].name);
    }
    lua_pop(L, 2);

    if (luaL_loadbufferx(L, BOOTSTRAP, sizeof BOOTSTRAP - 1, "=bootstrap", "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 4);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &REG_LANDING);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &REG_CTX);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &REG_CALL);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &REG_LOAD);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &REG_RULES);
    return 0;
}

static void *plain_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

int vm_new(size_t memory, struct vm **out)
{
    *out = NULL;
    struct vm *vm = calloc(1, sizeof *vm);
    if (!vm)
        return SAASD_ENOMEM;
    limits_init(&vm->lim, plain_alloc, NULL, memory);
    vm->L = lua_newstate(limits_alloc, &vm->lim);
    if (!vm->L) {
        free(vm);
        return SAASD_ENOMEM;
    }
    vm->host.limits = &vm->lim;
    bind_set_host(vm->L, &vm->host);
    /* lua-cjson's luaopen initialises a process-wide number-conversion table: keep state
     * creation (rare: a reload or a pool growing) on one thread at a time */
    static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&setup_lock);
    lua_pushcfunction(vm->L, setup);
    int st = lua_pcall(vm->L, 0, 0, 0);
    pthread_mutex_unlock(&setup_lock);
    if (st != LUA_OK) {
        /* only a broken build or a tiny memory cap gets here */
        fprintf(stderr, "saasd: rule runtime failed to start: %s\n", lua_tostring(vm->L, -1));
        lua_close(vm->L);
        free(vm);
        return SAASD_EINTERNAL;
    }
    limits_install(&vm->lim, vm->L);
    *out = vm;
    return 0;
}

void vm_free(struct vm *vm)
{
    if (!vm)
        return;
    limits_disarm(&vm->lim);
    vm->lim.mem_hit = 0;
    vm->lim.cpu_hit = 0;
    lua_close(vm->L);
    free(vm);
}

/* The message part of a traceback'd error. */
static const char *message_of(lua_State *L, int idx, char *buf, size_t size)
{
    const char *s = lua_tostring(L, idx);
    if (!s)
        s = "(error without a message)";
    const char *tb = strstr(s, "\nstack traceback:");
    size_t n = tb ? (size_t)(tb - s) : strlen(s);
    if (n >= size)
        n = size - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

/* "path:NN: rest" -> NN and rest; 0 and msg unchanged when msg does not start with path. */
static int split_line(const char *path, const char *msg, const char **rest)
{
    size_t plen = strlen(path);
    *rest = msg;
    if (strncmp(msg, path, plen) != 0 || msg[plen] != ':')
        return 0;
    char *end;
    long line = strtol(msg + plen + 1, &end, 10);
    if (end == msg + plen + 1 || (*end != ':' && *end != '\0'))
        return 0;
    *rest = *end ? end + 1 + (end[1] == ' ') : end;
    return (int)line;
}

static void problemf(vm_problem_fn fn, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problemf(vm_problem_fn fn, void *arg, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (fn)
        fn(arg, buf);
}

static void limit_problem(struct vm *vm, const struct rule_file *f, const char *msg,
                          vm_problem_fn fn, void *arg)
{
    if (vm->lim.cpu_hit) {
        const char *rest;
        int line = split_line(f->path, msg, &rest);
        if (line)
            problemf(fn, arg, "%s:%d: %s", f->path, line, rest);
        else
            problemf(fn, arg, "%s:1: %s", f->path, msg);
    } else {
        const char *at = vm->lim.mem_where;
        const char *rest;
        int line = split_line(f->path, at, &rest);
        problemf(fn, arg, "%s:%d: memory limit: the rule used more than %zu KiB", f->path,
                 line ? line : 1, vm->lim.cap / 1024);
    }
}

int vm_load_rule(struct vm *vm, const struct rule_file *f, int cpu_ms, vm_problem_fn problem,
                 void *arg)
{
    lua_State *L = vm->L;
    int base = lua_gettop(L);
    char msg[1024];
    int rc = 0;
    lua_pushcfunction(L, msgh);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &REG_LOAD);
    lua_pushlstring(L, f->source, f->len);
    lua_pushfstring(L, "@%s", f->path);
    notes.path = f->path;
    limits_arm(&vm->lim, cpu_ms);
    int st = lua_pcall(L, 2, 2, base + 1);
    limits_disarm(&vm->lim);
    notes.path = NULL;
    if (vm->lim.cpu_hit || vm->lim.mem_hit || st == LUA_ERRMEM) {
        vm->tainted = 1;
        limit_problem(vm, f, st != LUA_OK ? message_of(L, -1, msg, sizeof msg) : "", problem, arg);
        rc = SAASD_ELIMIT;
    } else if (st != LUA_OK) {
        const char *m = message_of(L, -1, msg, sizeof msg);
        const char *rest;
        int line = split_line(f->path, m, &rest);
        problemf(problem, arg, "%s:%d: %s", f->path, line ? line : 1, line ? rest : m);
        rc = SAASD_ERULE;
    } else if (lua_isnil(L, -2)) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            problemf(problem, arg, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        rc = SAASD_ERULE;
    } else {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &REG_RULES);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, f->path);
        lua_pop(L, 1);
    }
    lua_settop(L, base);
    return rc;
}

int vm_landing_json(struct vm *vm, const struct rule_file *f, char **out)
{
    lua_State *L = vm->L;
    int base = lua_gettop(L);
    *out = NULL;
    lua_pushcfunction(L, msgh);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &REG_LANDING);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &REG_RULES);
    lua_getfield(L, -1, f->path);
    lua_remove(L, -2);
    int rc = SAASD_EINTERNAL;
    if (lua_istable(L, -1) && lua_pcall(L, 1, 1, base + 1) == LUA_OK) {
        rc = 0;
        if (lua_type(L, -1) == LUA_TSTRING && !(*out = strdup(lua_tostring(L, -1))))
            rc = SAASD_ENOMEM;
    }
    lua_settop(L, base);
    return rc;
}

static char *dup_field(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    char *copy = s ? strdup(s) : NULL;
    lua_pop(L, 1);
    return copy;
}

static enum rule_action action_of(const char *a)
{
    if (!a)
        return RULE_ACTION_NONE;
    if (!strcmp(a, "activate"))
        return RULE_ACTION_ACTIVATE;
    if (!strcmp(a, "pending"))
        return RULE_ACTION_PENDING;
    if (!strcmp(a, "reject"))
        return RULE_ACTION_REJECT;
    return RULE_ACTION_NONE;
}

static void set_error(struct rule_result *out, const struct rule_file *f, const char *handler,
                      const char *msg, int line)
{
    const char *rest = msg;
    int l = split_line(f->path, msg, &rest);
    if (l)
        line = l;
    char buf[2048];
    if (line > 0)
        snprintf(buf, sizeof buf, "offer '%s' handler '%s' at %s:%d: %s", out->offer_id, handler,
                 f->path, line, rest);
    else
        snprintf(buf, sizeof buf, "offer '%s' handler '%s' in %s: %s", out->offer_id, handler,
                 f->path, rest);
    free(out->error);
    out->error = strdup(buf);
    out->error_line = line;
}

/* What a failed call raised, as text. A rule chooses its error object: a table whose
 * __index or __tostring raises, loops or allocates must not crash or hang the caller, so it is
 * read only inside a protected call with the limits armed (rawget for the engine's markers,
 * tostring under pcall for the rest). A failure to convert becomes the message itself. */
enum error_kind { ERR_PLAIN, ERR_INVALID, ERR_BAD_INPUT };
struct error_text {
    enum error_kind kind;
    int failed;
    char msg[1024];
};

#define DESCRIBE_CPU_MS 100

static int describe_protected(lua_State *L)
{
    struct error_text *et = lua_touserdata(L, 2);
    lua_settop(L, 1);
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_pushliteral(L, "saas_invalid");
        int invalid = lua_toboolean(L, (lua_rawget(L, 1), -1));
        lua_pushliteral(L, "msg");
        lua_rawget(L, 1);
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (invalid || m) {
            et->kind = invalid ? ERR_INVALID : ERR_BAD_INPUT;
            snprintf(et->msg, sizeof et->msg, "%s", m ? m : "invalid result");
            return 0;
        }
        if (!luaL_getmetafield(L, 1, "__tostring")) {
            snprintf(et->msg, sizeof et->msg, "raised a table as error");
            return 0;
        }
        lua_pop(L, 1);
    }
    const char *s = luaL_tolstring(L, 1, NULL); /* may run the rule's __tostring */
    const char *tb = strstr(s, "\nstack traceback:");
    size_t n = tb ? (size_t)(tb - s) : strlen(s);
    snprintf(et->msg, sizeof et->msg, "%.*s", (int)(n < sizeof et->msg ? n : sizeof et->msg - 1), s);
    return 0;
}

static void describe_error(struct vm *vm, struct error_text *et)
{
    lua_State *L = vm->L;
    int cpu_hit = vm->lim.cpu_hit, mem_hit = vm->lim.mem_hit;
    lua_pushcfunction(L, describe_protected);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, et);
    limits_arm(&vm->lim, DESCRIBE_CPU_MS);
    int st = lua_pcall(L, 2, 0, 0);
    limits_disarm(&vm->lim);
    if (st != LUA_OK || vm->lim.cpu_hit || vm->lim.mem_hit) {
        et->kind = ERR_PLAIN;
        et->failed = 1;
        snprintf(et->msg, sizeof et->msg, "the rule raised an error object that cannot be turned into text (%s)",
                 vm->lim.cpu_hit ? "its __tostring ran too long"
                 : vm->lim.mem_hit || st == LUA_ERRMEM ? "its __tostring used too much memory"
                                                       : "its __tostring or __index raised");
    }
    if (st != LUA_OK)
        lua_pop(L, 1);
    vm->lim.cpu_hit = cpu_hit;
    vm->lim.mem_hit = mem_hit;
}

int vm_call(struct vm *vm, const struct rule_file *f, enum rule_handler h, const char *sub_json,
            const char *arg_json, int cpu_ms, struct bind_call *call, struct rule_result *out)
{
    lua_State *L = vm->L;
    const char *hname = rule_handler_name(h);
    int base = lua_gettop(L);
    int rc = 0;
    char msg[1024];

    lua_pushcfunction(L, msgh);                     /* base+1: msgh */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &REG_CALL);   /* contract.call */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &REG_RULES);
    lua_getfield(L, -1, f->path);                   /* msgh call rules handlers */
    lua_remove(L, -2);                              /* msgh call handlers */
    if (!lua_istable(L, -1)) {
        lua_settop(L, base);
        out->outcome = RULE_ERROR;
        set_error(out, f, hname, "rule not loaded in this state (internal error)", 0);
        vm->tainted = 1;
        return SAASD_EINTERNAL;
    }
    lua_pushstring(L, hname);
    lua_pushstring(L, sub_json);
    if (arg_json)
        lua_pushstring(L, arg_json);
    else
        lua_pushnil(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &REG_CTX);    /* msgh call handlers name sub arg ctx */

    vm->host.call = call;
    notes.path = f->path;
    notes.line = 0;
    limits_arm(&vm->lim, cpu_ms);
    int st = lua_pcall(L, 5, 1, base + 1);          /* msgh result|error */
    limits_disarm(&vm->lim);
    vm->host.call = NULL;
    notes.path = NULL;

    if (vm->lim.cpu_hit) {
        vm->tainted = 1;
        out->outcome = RULE_CPU_LIMIT;
        set_error(out, f, hname, st != LUA_OK ? message_of(L, -1, msg, sizeof msg) : "cpu limit", 0);
        rc = SAASD_ELIMIT;
    } else if (vm->lim.mem_hit || st == LUA_ERRMEM) {
        vm->tainted = 1;
        out->outcome = RULE_MEMORY_LIMIT;
        char text[256];
        snprintf(text, sizeof text, "memory limit: the rule's state passed %zu KiB", vm->lim.cap / 1024);
        int line = 0;
        const char *rest;
        if (vm->lim.mem_where[0])
            line = split_line(f->path, vm->lim.mem_where, &rest);
        set_error(out, f, hname, text, line);
        rc = SAASD_ELIMIT;
    } else if (st != LUA_OK) {
        struct error_text et = {0};
        describe_error(vm, &et);
        out->outcome = et.kind == ERR_INVALID ? RULE_INVALID_RESULT
                       : et.kind == ERR_BAD_INPUT ? RULE_BAD_INPUT : RULE_ERROR;
        set_error(out, f, hname, et.msg, et.kind == ERR_PLAIN ? notes.line : 0);
        rc = et.kind == ERR_INVALID ? SAASD_ERULE : et.kind == ERR_BAD_INPUT ? SAASD_EINVAL : SAASD_ERULE;
        if (st == LUA_ERRERR || et.failed)
            vm->tainted = 1;
    } else {
        int t = lua_gettop(L);
        char *outcome = dup_field(L, t, "outcome");
        char *action = dup_field(L, t, "action");
        lua_getfield(L, t, "accept");
        out->accept = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
        lua_pop(L, 1);
        out->action = action_of(action);
        out->message = dup_field(L, t, "message");
        out->reason = dup_field(L, t, "reason");
        out->redirect = dup_field(L, t, "redirect");
        lua_getfield(L, t, "bill");
        out->has_bill = lua_isnumber(L, -1);
        out->bill = out->has_bill ? lua_tonumber(L, -1) : 0;
        lua_pop(L, 1);
        if (outcome && !strcmp(outcome, "default")) {
            out->outcome = RULE_DEFAULT;
        } else if (outcome && !strcmp(outcome, "ok")) {
            out->outcome = RULE_OK;
        } else {
            char *err = dup_field(L, t, "error");
            out->outcome = RULE_ERROR;
            out->accept = 0;
            char text[1200];
            snprintf(text, sizeof text, "returned an error (try again later): %s", err ? err : "?");
            set_error(out, f, hname, text, 0);
            free(err);
            rc = SAASD_ERULE;
        }
        free(outcome);
        free(action);
    }
    lua_settop(L, base);
    if (rc < 0) {
        out->action = RULE_ACTION_NONE;
        out->accept = 0;
    }
    return rc;
}
