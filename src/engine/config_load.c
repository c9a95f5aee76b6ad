/* Loads saasd's config file: a Lua chunk of plain assignments, evaluated in an empty sandbox
 * (no functions, no globals, an instruction cap), then checked against the key schema below.
 * Every error names the file, the line and the key. */
#include "core/client_cert.h"
#include "core/secret_file.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum key_type { KT_STRING, KT_INT, KT_BOOL, KT_STRINGS };

struct key_spec {
    const char *section; /* NULL for top-level keys */
    const char *name;
    enum key_type type;
    long min, max;       /* for KT_INT */
};

/* The whole schema. Secrets are never keys: only where to read them from (env or file). */
static const struct key_spec schema[] = {
    {NULL, "listen", KT_STRING, 0, 0},
    {NULL, "data_dir", KT_STRING, 0, 0},
    {NULL, "log_level", KT_STRING, 0, 0},
    {NULL, "workers", KT_INT, 1, 64},
    {NULL, "max_body", KT_INT, 1024, 16 << 20},
    {"listener", "max_connections", KT_INT, 16, 65536},
    {"listener", "per_client", KT_INT, 0, 65536},
    {"listener", "request_deadline_s", KT_INT, 0, 600},
    {"landing", "threads", KT_INT, 1, 1024},
    {"landing", "max_wait_ms", KT_INT, 0, 60000},
    {"admin", "listen", KT_STRING, 0, 0},
    {"admin", "enabled", KT_BOOL, 0, 0},
    {"admin", "key_env", KT_STRING, 0, 0},
    {"admin", "key_file", KT_STRING, 0, 0},
    {"entra", "authority", KT_STRING, 0, 0},
    {"entra", "tenant_id", KT_STRING, 0, 0},
    {"entra", "client_id", KT_STRING, 0, 0},
    {"entra", "secret_env", KT_STRING, 0, 0},
    {"entra", "secret_file", KT_STRING, 0, 0},
    {"entra", "certificate_file", KT_STRING, 0, 0},
    {"entra", "private_key_file", KT_STRING, 0, 0},
    {"entra", "token_version", KT_INT, 1, 2},
    {"entra", "resource", KT_STRING, 0, 0},
    {"marketplace", "base_url", KT_STRING, 0, 0},
    {"marketplace", "api_version", KT_STRING, 0, 0},
    {"marketplace", "max_attempts", KT_INT, 1, 20},
    {"marketplace", "retry_base_ms", KT_INT, 1, 60000},
    {"marketplace", "retry_cap_ms", KT_INT, 1, 600000},
    {"marketplace", "poll_interval_ms", KT_INT, 10, 60000},
    {"webhook", "audience", KT_STRING, 0, 0},
    {"webhook", "tenant_id", KT_STRING, 0, 0},
    {"webhook", "app_id", KT_STRING, 0, 0},
    {"webhook", "jwks_url", KT_STRING, 0, 0},
    {"webhook", "skew", KT_INT, 0, 300},
    {"webhook", "verify_threads", KT_INT, 1, 1024},
    {"rules", "dir", KT_STRING, 0, 0},
    {"rules", "cpu_ms", KT_INT, 10, 8000},
    {"rules", "memory_mb", KT_INT, 1, 1024},
    {"rules", "http_allow", KT_STRINGS, 0, 0},
    {"rules", "http_timeout_ms", KT_INT, 100, 8000},
    {"rules", "on_timeout", KT_STRING, 0, 0},
    {"rules", "unknown_offers", KT_STRING, 0, 0},
    {"rules", "shadow_dir", KT_STRING, 0, 0},
    {"reconcile", "interval", KT_INT, 0, 86400},
    {"usage_reconcile", "interval", KT_INT, 0, 7 * 86400},
    {"usage_reconcile", "days", KT_INT, 1, 7},
    {"usage_reconcile", "lag_s", KT_INT, 0, 7 * 86400},
    {"landing", "client_id", KT_STRING, 0, 0},
    {"landing", "secret_env", KT_STRING, 0, 0},
    {"landing", "secret_file", KT_STRING, 0, 0},
    {"landing", "authority", KT_STRING, 0, 0},
    {"landing", "tenant", KT_STRING, 0, 0},
    {"landing", "redirect_uri", KT_STRING, 0, 0},
    {"landing", "cookie_secure", KT_BOOL, 0, 0},
    {"landing", "session_ttl", KT_INT, 60, 86400},
    {"landing", "skew", KT_INT, 0, 300},
    {"metering", "interval", KT_INT, 0, 3600},
    {"metering", "grace", KT_INT, 0, 3600},
    {"events", "retry_base_ms", KT_INT, 10, 600000},
    {"events", "retry_cap_ms", KT_INT, 10, 86400000},
    {"events", "poll_ms", KT_INT, 10, 60000},
    {"events", "keep_s", KT_INT, 0, 365 * 86400},
    {"events", "prune_every_s", KT_INT, 1, 86400},
    /* sinks.<name> = { ... }: the keys of one sink (config_sinks below) */
    {"sink", "kind", KT_STRING, 0, 0},
    {"sink", "url", KT_STRING, 0, 0},
    {"sink", "url_file", KT_STRING, 0, 0},
    {"sink", "url_env", KT_STRING, 0, 0},
    {"sink", "secret_file", KT_STRING, 0, 0},
    {"sink", "secret_env", KT_STRING, 0, 0},
    {"sink", "events", KT_STRINGS, 0, 0},
    {"sink", "offers", KT_STRINGS, 0, 0},
    {"sink", "from", KT_STRING, 0, 0},
    {"sink", "to", KT_STRINGS, 0, 0},
    {"sink", "username", KT_STRING, 0, 0},
    {"sink", "password_file", KT_STRING, 0, 0},
    {"sink", "password_env", KT_STRING, 0, 0},
    {"sink", "starttls", KT_BOOL, 0, 0},
    {"sink", "ca_file", KT_STRING, 0, 0},
    {"sink", "templates", KT_STRING, 0, 0},
    {"sink", "timeout_ms", KT_INT, 100, 60000},
};
#define NSCHEMA (sizeof schema / sizeof schema[0])

static const char *const sections[] = {"listener", "landing", "admin", "entra", "marketplace", "webhook",
                                       "rules", "reconcile", "usage_reconcile", "metering", "events", NULL};

struct loader {
    const char *path;
    size_t dir_len;   /* length of path's directory part including the '/', 0 when none */
    char *source;     /* file text, for finding the line of nested keys */
    char *err;
    size_t err_size;
    int failed;
};

static void fail_at(struct loader *ld, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(struct loader *ld, int line, const char *fmt, ...)
{
    if (ld->failed)
        return; /* report the first problem: later ones are often consequences */
    ld->failed = 1;
    int n = line > 0 ? snprintf(ld->err, ld->err_size, "%s:%d: ", ld->path, line)
                     : snprintf(ld->err, ld->err_size, "%s: ", ld->path);
    if (n < 0 || (size_t)n >= ld->err_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err + n, ld->err_size - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Line of "name =" at or after line `from` (1-based) in the source; `from` when not found.
 * Lua does not keep lines of table fields, so nested keys are located in the text. */
static int line_of_key(const struct loader *ld, int from, const char *name)
{
    int line = 1;
    size_t nlen = strlen(name);
    for (const char *p = ld->source; *p; p++) {
        if (line >= from && !strncmp(p, name, nlen) && (p == ld->source || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            const char *q = p + nlen;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=' && q[1] != '=')
                return line;
        }
        if (*p == '\n')
            line++;
    }
    return from;
}

/* Lua records a table assignment at the line where its constructor ends; the section starts
 * at the first "name =" in the text, which is where nested keys are searched from. */
static int section_line(const struct loader *ld, const char *section, int assigned_at)
{
    int start = line_of_key(ld, 1, section);
    return start <= assigned_at ? start : assigned_at;
}

/* Sandbox env: assignments are recorded with their line in a side table __lines. */
static int env_newindex(lua_State *L)
{
    lua_Debug ar;
    int line = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar))
        line = ar.currentline;
    lua_getfield(L, LUA_REGISTRYINDEX, "saasd.config.lines");
    lua_pushvalue(L, 2);
    lua_pushinteger(L, line);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_rawset(L, 1);
    return 0;
}

static int env_index(lua_State *L)
{
    return luaL_error(L, "'%s' is not defined (a config file only assigns values)", lua_tostring(L, 2));
}

static void too_long(lua_State *L, lua_Debug *ar)
{
    luaL_error(L, "config takes too long to evaluate");
}

static const struct key_spec *find_spec(const char *section, const char *name)
{
    for (size_t i = 0; i < NSCHEMA; i++)
        if (((!section && !schema[i].section) || (section && schema[i].section && !strcmp(section, schema[i].section))) &&
            !strcmp(name, schema[i].name))
            return &schema[i];
    return NULL;
}

static int is_section(const char *name)
{
    for (int i = 0; sections[i]; i++)
        if (!strcmp(sections[i], name))
            return 1;
    return 0;
}

static const char *type_name(enum key_type t)
{
    return t == KT_STRING ? "a string" : t == KT_INT ? "an integer" : t == KT_BOOL ? "true or false" : "a list of strings";
}

/* Check the value at the top of the stack against spec; report with the key's full name. */
static int check_value(struct loader *ld, lua_State *L, const struct key_spec *spec, int line)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s%s", spec->section ? spec->section : "", spec->section ? "." : "", spec->name);
    int t = lua_type(L, -1);
    switch (spec->type) {
    case KT_STRING:
        if (t != LUA_TSTRING) {
            fail_at(ld, line, "%s: expected %s, got %s", full, type_name(spec->type), luaL_typename(L, -1));
            return -1;
        }
        return 0;
    case KT_BOOL:
        if (t != LUA_TBOOLEAN) {
            fail_at(ld, line, "%s: expected %s, got %s", full, type_name(spec->type), luaL_typename(L, -1));
            return -1;
        }
        return 0;
    case KT_INT:
        if (!lua_isinteger(L, -1)) {
            fail_at(ld, line, "%s: expected %s, got %s", full, type_name(spec->type), luaL_typename(L, -1));
            return -1;
        }
        if (lua_tointeger(L, -1) < spec->min || lua_tointeger(L, -1) > spec->max) {
            fail_at(ld, line, "%s: %lld is out of range [%ld, %ld]", full, (long long)lua_tointeger(L, -1), spec->min, spec->max);
            return -1;
        }
        return 0;
    case KT_STRINGS:
        if (t != LUA_TTABLE) {
            fail_at(ld, line, "%s: expected %s, got %s", full, type_name(spec->type), luaL_typename(L, -1));
            return -1;
        }
        for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
                fail_at(ld, line, "%s[%lld]: expected a string, got %s", full, (long long)i, luaL_typename(L, -1));
                lua_pop(L, 1);
                return -1;
            }
            lua_pop(L, 1);
        }
        return 0;
    }
    return -1;
}

/* sinks = { <name> = { kind = ..., ... }, ... }: the table at the top of the stack. */
static void validate_sinks(struct loader *ld, lua_State *L, int line)
{
    if (!lua_istable(L, -1)) {
        fail_at(ld, line, "sinks: expected a table of sinks by name, got %s", luaL_typename(L, -1));
        return;
    }
    int start = section_line(ld, "sinks", line);
    lua_pushnil(L);
    while (!ld->failed && lua_next(L, -2)) {
        const char *sink = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        int sline = sink ? line_of_key(ld, start, sink) : line;
        if (!sink || !*sink || strspn(sink, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(sink) || strlen(sink) > 64)
            fail_at(ld, sline, "sinks: a sink name is 1-64 of a-z 0-9 _ -, got %s", sink ? sink : luaL_typename(L, -2));
        else if (!lua_istable(L, -1))
            fail_at(ld, sline, "sinks.%s: expected a table, got %s", sink, luaL_typename(L, -1));
        lua_pushnil(L);
        while (!ld->failed && lua_next(L, -2)) {
            const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            int kline = key ? line_of_key(ld, sline, key) : sline;
            const struct key_spec *spec = key ? find_spec("sink", key) : NULL;
            struct key_spec named;
            char full[128];
            if (!spec) {
                fail_at(ld, kline, "sinks.%s.%s: unknown key", sink, key ? key : "?");
            } else {
                snprintf(full, sizeof full, "sinks.%s", sink);
                named = *spec;
                named.section = full;
                check_value(ld, L, &named, kline);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

/* Walk the evaluated globals: every key must be known and well-typed. */
static void validate(struct loader *ld, lua_State *L, int env, int lines)
{
    lua_pushnil(L);
    while (!ld->failed && lua_next(L, env)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 1);
            continue;
        }
        const char *name = lua_tostring(L, -2);
        lua_getfield(L, lines, name);
        int line = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (!strcmp(name, "sinks")) {
            validate_sinks(ld, L, line);
        } else if (is_section(name)) {
            if (!lua_istable(L, -1)) {
                fail_at(ld, line, "%s: expected a table, got %s", name, luaL_typename(L, -1));
                break;
            }
            lua_pushnil(L);
            while (!ld->failed && lua_next(L, -2)) {
                const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
                int kline = key ? line_of_key(ld, section_line(ld, name, line), key) : line;
                const struct key_spec *spec = key ? find_spec(name, key) : NULL;
                if (!spec)
                    fail_at(ld, kline, "%s.%s: unknown key", name, key ? key : "?");
                else
                    check_value(ld, L, spec, kline);
                lua_pop(L, 1);
            }
        } else {
            const struct key_spec *spec = find_spec(NULL, name);
            if (!spec)
                fail_at(ld, line, "%s: unknown key", name);
            else
                check_value(ld, L, spec, line);
        }
        lua_pop(L, 1);
    }
}

/* Value of section.key (or top-level key) as a fresh string, or a copy of def. */
static char *get_string(lua_State *L, int env, const char *section, const char *key, const char *def)
{
    const char *v = NULL;
    int pop = 0;
    if (section) {
        if (lua_getfield(L, env, section) == LUA_TTABLE) {
            lua_getfield(L, -1, key);
            pop = 2;
        } else {
            pop = 1;
            lua_pushnil(L);
            pop = 2;
        }
    } else {
        lua_getfield(L, env, key);
        pop = 1;
    }
    if (lua_type(L, -1) == LUA_TSTRING)
        v = lua_tostring(L, -1);
    char *out = v ? strdup(v) : def ? strdup(def) : NULL;
    lua_pop(L, pop);
    return out;
}

/* A file or directory key: a relative path (given or default) is taken relative to the config
 * file's directory, so a config works the same from any working directory. */
static char *get_path(struct loader *ld, lua_State *L, int env, const char *section, const char *key, const char *def)
{
    char *v = get_string(L, env, section, key, def);
    if (!v || v[0] == '/' || ld->dir_len == 0)
        return v;
    size_t n = ld->dir_len + strlen(v) + 1;
    char *abs = malloc(n);
    if (abs)
        snprintf(abs, n, "%.*s%s", (int)ld->dir_len, ld->path, v);
    free(v);
    return abs;
}

static long get_int(lua_State *L, int env, const char *section, const char *key, long def)
{
    long v = def;
    int pop = 1;
    if (section) {
        if (lua_getfield(L, env, section) != LUA_TTABLE) {
            lua_pop(L, 1);
            return def;
        }
        lua_getfield(L, -1, key);
        pop = 2;
    } else {
        lua_getfield(L, env, key);
    }
    if (lua_isinteger(L, -1))
        v = (long)lua_tointeger(L, -1);
    else if (lua_isboolean(L, -1))
        v = lua_toboolean(L, -1);
    lua_pop(L, pop);
    return v;
}

static int key_line(struct loader *ld, lua_State *L, int lines, const char *section, const char *key)
{
    lua_getfield(L, lines, section ? section : key);
    int line = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return section ? line_of_key(ld, section_line(ld, section, line), key) : line;
}

/* "addr:port" -> parts. */
static int parse_listen(const char *s, char **addr, int *port)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s)
        return SAASD_EINVAL;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return SAASD_EINVAL;
    free(*addr);
    *addr = strndup(s, (size_t)(colon - s));
    *port = (int)p;
    return *addr ? 0 : SAASD_ENOMEM;
}

static char *read_secret_file(const char *path, int *err)
{
    char *secret = NULL;
    if (secret_file_read(path, &secret) != 0)
        *err = errno;
    return secret;
}

/* A secret from section.<env_key> (environment variable) or section.<file_key> (file). */
static char *resolve_secret(struct loader *ld, lua_State *L, int env, int lines, const char *section,
                            const char *env_key, const char *file_key, int required)
{
    char *env_name = get_string(L, env, section, env_key, NULL);
    char *file = get_path(ld, L, env, section, file_key, NULL);
    char *secret = NULL;
    if (env_name) {
        const char *v = getenv(env_name);
        if (v && *v)
            secret = strdup(v);
        else if (!file && required)
            fail_at(ld, key_line(ld, L, lines, section, env_key), "%s.%s: environment variable %s is not set",
                    section, env_key, env_name);
    }
    if (!secret && file) {
        int e = 0;
        secret = read_secret_file(file, &e);
        if (!secret && required)
            fail_at(ld, key_line(ld, L, lines, section, file_key), "%s.%s: cannot read %s: %s", section, file_key,
                    file, strerror(e));
    }
    if (!env_name && !file && required)
        fail_at(ld, key_line(ld, L, lines, section, env_key), "%s: one of %s or %s is required (secrets never go in the config text)",
                section, env_key, file_key);
    free(env_name);
    free(file);
    return secret;
}

/* Exactly one credential for the publisher app: a client secret (secret_env / secret_file) or
 * a certificate (certificate_file, plus private_key_file when the key is in its own PEM). The
 * certificate is loaded and checked here, so check-config catches a key that does not match. */
static void entra_credential(struct loader *ld, lua_State *L, int env, int lines, struct saasd_config *c)
{
    char *secret_env = get_string(L, env, "entra", "secret_env", NULL);
    char *secret_file = get_string(L, env, "entra", "secret_file", NULL);
    int has_secret = secret_env || secret_file;
    free(secret_env);
    free(secret_file);
    c->client_cert_file = get_path(ld, L, env, "entra", "certificate_file", NULL);
    c->client_key_file = get_path(ld, L, env, "entra", "private_key_file", NULL);
    if (c->client_cert_file && has_secret) {
        fail_at(ld, key_line(ld, L, lines, "entra", "certificate_file"),
                "entra.certificate_file: a client secret (secret_env/secret_file) is configured too: keep exactly one "
                "credential");
    } else if (c->client_key_file && !c->client_cert_file) {
        fail_at(ld, key_line(ld, L, lines, "entra", "private_key_file"),
                "entra.private_key_file: only used with entra.certificate_file, which is missing");
    } else if (c->client_cert_file) {
        char msg[600];
        if (client_cert_load(c->client_cert_file, c->client_key_file, &c->client_cert, msg, sizeof msg) != 0) {
            /* a problem of the separate key file alone is reported at its own key */
            int key_alone = c->client_key_file && strstr(msg, c->client_key_file) && !strstr(msg, c->client_cert_file);
            const char *key = key_alone ? "private_key_file" : "certificate_file";
            fail_at(ld, key_line(ld, L, lines, "entra", key), "entra.%s: %s", key, msg);
        }
    } else if (!has_secret) {
        fail_at(ld, key_line(ld, L, lines, "entra", "secret_env"),
                "entra: one of secret_env, secret_file or certificate_file is required (secrets never go in the config "
                "text)");
    } else {
        c->client_secret = resolve_secret(ld, L, env, lines, "entra", "secret_env", "secret_file", 1);
        c->client_secret_env = get_string(L, env, "entra", "secret_env", NULL); /* for a reload */
        c->client_secret_file = get_path(ld, L, env, "entra", "secret_file", NULL);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Sinks: sinks.<name> = { kind = "webhook" | "smtp" | "slack" | "teams", ... }                  */

static const char *const sink_kind_names[SINK_KIND_COUNT] = {
    [SINK_WEBHOOK] = "webhook", [SINK_SMTP] = "smtp", [SINK_SLACK] = "slack", [SINK_TEAMS] = "teams"};

static char *field_string(lua_State *L, int t, const char *key)
{
    char *out = lua_getfield(L, t, key) == LUA_TSTRING ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return out;
}

/* A NULL-terminated copy of a list of strings (empty when absent). */
static char **field_strings(lua_State *L, int t, const char *key)
{
    size_t n = lua_getfield(L, t, key) == LUA_TTABLE ? lua_rawlen(L, -1) : 0;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        out[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return out;
}

/* A value given inline (value_key, when not NULL), or read from env_key's variable or file_key's
 * file. Missing and required: an error at the sink's line. */
static char *sink_value(struct loader *ld, lua_State *L, int t, const char *sink, int line, const char *value_key,
                        const char *env_key, const char *file_key, int required)
{
    char *v = value_key ? field_string(L, t, value_key) : NULL;
    char *env_name = field_string(L, t, env_key), *file = field_string(L, t, file_key);
    if (!v && env_name && getenv(env_name) && *getenv(env_name))
        v = strdup(getenv(env_name));
    else if (!v && env_name && !file)
        fail_at(ld, line, "sinks.%s.%s: environment variable %s is not set", sink, env_key, env_name);
    if (!v && file) {
        int e = 0;
        if (!(v = read_secret_file(file, &e)))
            fail_at(ld, line, "sinks.%s.%s: cannot read %s: %s", sink, file_key, file, strerror(e));
    }
    if (!v && !env_name && !file && required)
        fail_at(ld, line, "sinks.%s: %s%s%s or %s is required", sink, value_key ? value_key : "", value_key ? ", " : "",
                env_key, file_key);
    free(env_name);
    free(file);
    return v;
}

static void fill_sink(struct loader *ld, lua_State *L, const char *name, int line, struct sink_config *k)
{
    int t = lua_gettop(L);
    k->name = strdup(name);
    char *kind = field_string(L, t, "kind");
    int found = 0;
    for (int i = 0; kind && i < SINK_KIND_COUNT; i++)
        if (!strcmp(kind, sink_kind_names[i])) {
            k->kind = (enum sink_kind)i;
            found = 1;
        }
    if (!found)
        fail_at(ld, line, "sinks.%s.kind: expected \"webhook\", \"smtp\", \"slack\" or \"teams\", got %s", name,
                kind ? kind : "nothing");
    free(kind);
    k->url = sink_value(ld, L, t, name, line, "url", "url_env", "url_file", 1);
    if (k->url && strncmp(k->url, k->kind == SINK_SMTP ? "smtp" : "http", 4))
        fail_at(ld, line, "sinks.%s.url: expected an %s URL", name, k->kind == SINK_SMTP ? "smtp:// or smtps://" : "http(s)://");
    if (k->kind == SINK_WEBHOOK)
        k->secret = sink_value(ld, L, t, name, line, NULL, "secret_env", "secret_file", 1);
    k->events = field_strings(L, t, "events");
    k->offers = field_strings(L, t, "offers");
    k->to = field_strings(L, t, "to");
    k->from = field_string(L, t, "from");
    k->username = field_string(L, t, "username");
    k->templates = field_string(L, t, "templates");
    if (k->username)
        k->password = sink_value(ld, L, t, name, line, NULL, "password_env", "password_file", 1);
    if (k->kind == SINK_SMTP && (!k->from || !k->to || !k->to[0]))
        fail_at(ld, line, "sinks.%s: an smtp sink needs from and to", name);
    k->ca_file = field_string(L, t, "ca_file");
    if (k->ca_file && k->kind != SINK_SMTP)
        fail_at(ld, line, "sinks.%s.ca_file: only an smtp sink takes a CA file", name);
    else if (k->ca_file && access(k->ca_file, R_OK) != 0)
        fail_at(ld, line, "sinks.%s.ca_file: cannot read %s (a PEM file of CA certificates)", name, k->ca_file);
    lua_getfield(L, t, "starttls");
    k->starttls = lua_isboolean(L, -1) ? lua_toboolean(L, -1) : 1;
    lua_getfield(L, t, "timeout_ms");
    k->timeout_ms = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 10000;
    lua_pop(L, 2);
}

static void fill_sinks(struct loader *ld, lua_State *L, int env, int lines, struct saasd_config *c)
{
    c->events_retry_base_ms = (int)get_int(L, env, "events", "retry_base_ms", 1000);
    c->events_retry_cap_ms = (int)get_int(L, env, "events", "retry_cap_ms", 300000);
    c->events_poll_ms = (int)get_int(L, env, "events", "poll_ms", 500);
    c->events_keep_s = (int)get_int(L, env, "events", "keep_s", 7 * 86400);
    c->events_prune_every_s = (int)get_int(L, env, "events", "prune_every_s", 60);
    if (lua_getfield(L, env, "sinks") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    int start = key_line(ld, L, lines, NULL, "sinks");
    start = section_line(ld, "sinks", start);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        n++;
        lua_pop(L, 1);
    }
    c->sinks = calloc(n ? n : 1, sizeof *c->sinks);
    lua_pushnil(L);
    while (c->sinks && !ld->failed && lua_next(L, -2)) {
        const char *name = lua_tostring(L, -2);
        fill_sink(ld, L, name, line_of_key(ld, start, name), &c->sinks[c->nsinks++]);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* The buyer sign-in app: its own (a multitenant registration, as Microsoft recommends) or,
 * without landing.client_id, the publisher app. */
static void landing_app(struct loader *ld, lua_State *L, int env, int lines, struct saasd_config *c)
{
    c->landing_client_id = get_string(L, env, "landing", "client_id", c->client_id);
    char *own = get_string(L, env, "landing", "client_id", NULL);
    char *senv = get_string(L, env, "landing", "secret_env", NULL);
    char *sfile = get_string(L, env, "landing", "secret_file", NULL);
    if (senv || sfile)
        c->landing_secret = resolve_secret(ld, L, env, lines, "landing", "secret_env", "secret_file", 1);
    else if (own && c->client_id && strcmp(own, c->client_id))
        fail_at(ld, key_line(ld, L, lines, "landing", "client_id"),
                "landing: a separate sign-in app needs secret_env or secret_file");
    else if (c->client_secret)
        c->landing_secret = strdup(c->client_secret);
    c->landing_own_secret = senv || sfile;
    free(own);
    free(senv);
    free(sfile);
    c->landing_authority = get_string(L, env, "landing", "authority", c->authority_url);
    c->landing_tenant = get_string(L, env, "landing", "tenant", "organizations");
    c->landing_redirect_uri = get_string(L, env, "landing", "redirect_uri", NULL); /* NULL: the listener's */
    if (c->landing_redirect_uri && strncmp(c->landing_redirect_uri, "https://", 8) &&
        strncmp(c->landing_redirect_uri, "http://", 7))
        fail_at(ld, key_line(ld, L, lines, "landing", "redirect_uri"),
                "landing.redirect_uri: expected the public http(s) URL of /landing/callback, got \"%s\"",
                c->landing_redirect_uri);
    c->landing_cookie_secure = (int)get_int(L, env, "landing", "cookie_secure", 1);
    c->landing_session_ttl_s = (int)get_int(L, env, "landing", "session_ttl", 1800);
    c->landing_skew_s = (int)get_int(L, env, "landing", "skew", 300);
}

static void fill(struct loader *ld, lua_State *L, int env, int lines, struct saasd_config *c)
{
    char *s = get_string(L, env, NULL, "listen", "127.0.0.1:8080");
    unsigned ipv4;
    if (parse_listen(s, &c->listen_addr, &c->listen_port))
        fail_at(ld, key_line(ld, L, lines, NULL, "listen"), "listen: expected \"address:port\", got \"%s\"", s);
    else if (httpd_addr_parse(c->listen_addr, &ipv4) != 0)
        fail_at(ld, key_line(ld, L, lines, NULL, "listen"),
                "listen: the address must be an IPv4 address like 127.0.0.1 or 0.0.0.0, got \"%s\"", c->listen_addr);
    free(s);
    c->max_body = (size_t)get_int(L, env, NULL, "max_body", 64 * 1024);
    c->listen_max_connections = (int)get_int(L, env, "listener", "max_connections", 1024);
    c->listen_per_client = (int)get_int(L, env, "listener", "per_client", 64);
    c->listen_deadline_s = (int)get_int(L, env, "listener", "request_deadline_s", 10);
    c->landing_threads = (int)get_int(L, env, "landing", "threads", 16);
    c->landing_max_wait_ms = (int)get_int(L, env, "landing", "max_wait_ms", 3000);
    c->data_dir = get_path(ld, L, env, NULL, "data_dir", "var/saasd");
    c->workers = (int)get_int(L, env, NULL, "workers", 2);
    s = get_string(L, env, NULL, "log_level", "info");
    enum log_level lvl = LOG_INFO;
    if (log_level_parse(s, &lvl))
        fail_at(ld, key_line(ld, L, lines, NULL, "log_level"), "log_level: expected debug, info, warn or error, got \"%s\"", s);
    c->log_level = (int)lvl;
    free(s);

    /* admin */
    c->admin_enabled = (int)get_int(L, env, "admin", "enabled", 1);
    if (c->admin_enabled) {
        s = get_string(L, env, "admin", "listen", "127.0.0.1:8081");
        if (parse_listen(s, &c->admin_addr, &c->admin_port))
            fail_at(ld, key_line(ld, L, lines, "admin", "listen"), "admin.listen: expected \"address:port\", got \"%s\"", s);
        else if (httpd_addr_parse(c->admin_addr, &ipv4) != 0)
            fail_at(ld, key_line(ld, L, lines, "admin", "listen"),
                    "admin.listen: the address must be an IPv4 loopback address like 127.0.0.1, got \"%s\"",
                    c->admin_addr);
        else if (!httpd_addr_is_loopback(ipv4))
            fail_at(ld, key_line(ld, L, lines, "admin", "listen"),
                    "admin.listen: the admin API binds to loopback only, got %s", c->admin_addr);
        free(s);
        char *key_env = get_string(L, env, "admin", "key_env", NULL);
        char def_file[4096];
        snprintf(def_file, sizeof def_file, "%s/admin.key", c->data_dir);
        c->admin_key_file = get_path(ld, L, env, "admin", "key_file", def_file);
        struct stat st;
        /* A key file that does not exist yet is created by `serve` with a random key. */
        if (key_env) {
            c->admin_key = resolve_secret(ld, L, env, lines, "admin", "key_env", "key_file", 1);
        } else if (stat(c->admin_key_file, &st) == 0) {
            int e = 0;
            c->admin_key = read_secret_file(c->admin_key_file, &e);
            if (!c->admin_key || !*c->admin_key)
                fail_at(ld, key_line(ld, L, lines, "admin", "key_file"), "admin.key_file: cannot read %s: %s",
                        c->admin_key_file, e ? strerror(e) : "empty file");
        }
        free(key_env);
    }

    /* entra */
    c->authority_url = get_string(L, env, "entra", "authority", "https://login.microsoftonline.com");
    c->tenant_id = get_string(L, env, "entra", "tenant_id", NULL);
    c->client_id = get_string(L, env, "entra", "client_id", NULL);
    if (!c->tenant_id)
        fail_at(ld, key_line(ld, L, lines, "entra", "tenant_id"), "entra.tenant_id: required key is missing");
    if (!c->client_id)
        fail_at(ld, key_line(ld, L, lines, "entra", "client_id"), "entra.client_id: required key is missing");
    entra_credential(ld, L, env, lines, c);
    c->token_version = (int)get_int(L, env, "entra", "token_version", 2);
    c->resource = get_string(L, env, "entra", "resource", MARKETPLACE_RESOURCE_ID);

    c->marketplace_url = get_string(L, env, "marketplace", "base_url", "https://marketplaceapi.microsoft.com");
    c->api_version = get_string(L, env, "marketplace", "api_version", "2018-08-31");
    c->mp_max_attempts = (int)get_int(L, env, "marketplace", "max_attempts", 0);
    c->mp_retry_base_ms = (int)get_int(L, env, "marketplace", "retry_base_ms", 0);
    c->mp_retry_cap_ms = (int)get_int(L, env, "marketplace", "retry_cap_ms", 0);
    c->mp_poll_interval_ms = (int)get_int(L, env, "marketplace", "poll_interval_ms", 0);

    c->webhook_audience = get_string(L, env, "webhook", "audience", c->client_id);
    c->webhook_tenant = get_string(L, env, "webhook", "tenant_id", c->tenant_id);
    c->webhook_app_id = get_string(L, env, "webhook", "app_id", MARKETPLACE_RESOURCE_ID);
    c->jwks_url = get_string(L, env, "webhook", "jwks_url", NULL);
    if (!c->jwks_url && c->authority_url && c->webhook_tenant) {
        size_t n = strlen(c->authority_url) + strlen(c->webhook_tenant) + 32;
        c->jwks_url = malloc(n);
        if (c->jwks_url)
            snprintf(c->jwks_url, n, "%s/%s/discovery/v2.0/keys", c->authority_url, c->webhook_tenant);
    }
    c->jwt_skew_s = (int)get_int(L, env, "webhook", "skew", 300);
    c->webhook_verify_threads = (int)get_int(L, env, "webhook", "verify_threads", 32);

    c->rules_dir = get_path(ld, L, env, "rules", "dir", "rules");
    c->rules_shadow_dir = get_path(ld, L, env, "rules", "shadow_dir", NULL);
    c->rule_cpu_ms = (int)get_int(L, env, "rules", "cpu_ms", 2000);
    c->rule_memory = (size_t)get_int(L, env, "rules", "memory_mb", 32) << 20;
    c->rule_http_timeout_ms = (int)get_int(L, env, "rules", "http_timeout_ms", 3000);
    s = get_string(L, env, "rules", "on_timeout", "reject");
    if (!s) {
        fail_at(ld, 0, "out of memory");
        return;
    }
    if (strcmp(s, "reject") && strcmp(s, "accept"))
        fail_at(ld, key_line(ld, L, lines, "rules", "on_timeout"), "rules.on_timeout: expected \"accept\" or \"reject\", got \"%s\"", s);
    c->rule_timeout_accepts = !strcmp(s, "accept");
    free(s);
    s = get_string(L, env, "rules", "unknown_offers", "pending");
    if (s && strcmp(s, "pending") && strcmp(s, "default"))
        fail_at(ld, key_line(ld, L, lines, "rules", "unknown_offers"),
                "rules.unknown_offers: expected \"pending\" or \"default\", got \"%s\"", s);
    c->unknown_offers_default = s && !strcmp(s, "default");
    free(s);
    if (lua_getfield(L, env, "rules") == LUA_TTABLE && lua_getfield(L, -1, "http_allow") == LUA_TTABLE) {
        size_t n = lua_rawlen(L, -1);
        c->http_allow = calloc(n + 1, sizeof *c->http_allow);
        for (size_t i = 0; c->http_allow && i < n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            c->http_allow[i] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    } else if (lua_istable(L, -1)) {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!c->http_allow)
        c->http_allow = calloc(1, sizeof *c->http_allow);
    c->reconcile_interval_s = (int)get_int(L, env, "reconcile", "interval", 300);
    c->usage_reconcile_interval_s = (int)get_int(L, env, "usage_reconcile", "interval", 86400);
    c->usage_reconcile_days = (int)get_int(L, env, "usage_reconcile", "days", 3);
    c->usage_reconcile_lag_s = (int)get_int(L, env, "usage_reconcile", "lag_s", 21600);
    c->metering_interval_s = (int)get_int(L, env, "metering", "interval", 60);
    c->metering_grace_s = (int)get_int(L, env, "metering", "grace", 300);
    fill_sinks(ld, L, env, lines, c);
    landing_app(ld, L, env, lines, c);
}

static char *slurp(const char *path, int *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = errno;
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                *err = ENOMEM;
                return NULL;
            }
            buf = b;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    else
        buf[len] = 0;
    return buf;
}

int config_load(const char *path, struct saasd_config **out, char *err, size_t err_size)
{
    struct loader ld = {.path = path, .err = err, .err_size = err_size};
    const char *slash = strrchr(path, '/');
    ld.dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    struct saasd_config *c = calloc(1, sizeof *c);
    lua_State *L = NULL;
    int rc = SAASD_ECONFIG;
    if (err_size)
        err[0] = 0;
    if (!c) {
        fail_at(&ld, 0, "out of memory");
        return SAASD_ENOMEM;
    }
    c->path = strdup(path);
    int e = 0;
    ld.source = slurp(path, &e);
    if (!ld.source) {
        fail_at(&ld, 0, "cannot read config file: %s", strerror(e));
        goto fail;
    }
    crypto_sha256_hex(ld.source, strlen(ld.source), c->sha256);
    L = luaL_newstate();
    if (!L) {
        fail_at(&ld, 0, "out of memory");
        goto fail;
    }
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "saasd.config.lines");
    lua_newtable(L); /* env */
    int env = lua_gettop(L);
    lua_newtable(L); /* its metatable */
    lua_pushcfunction(L, env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, env_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, env);

    char chunkname[512];
    snprintf(chunkname, sizeof chunkname, "@%s", path);
    if (luaL_loadbufferx(L, ld.source, strlen(ld.source), chunkname, "t") != LUA_OK) {
        /* Lua's message already starts with "path:line:" */
        snprintf(err, err_size, "%s", lua_tostring(L, -1));
        ld.failed = 1;
        goto fail;
    }
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1); /* _ENV */
    lua_sethook(L, too_long, LUA_MASKCOUNT, 10 * 1000 * 1000);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        snprintf(err, err_size, "%s", lua_tostring(L, -1));
        ld.failed = 1;
        goto fail;
    }
    lua_sethook(L, NULL, 0, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, "saasd.config.lines");
    int lines = lua_gettop(L);
    lua_pushnil(L); /* drop the strict metatable so reading absent keys gives nil */
    lua_setmetatable(L, env);
    validate(&ld, L, env, lines);
    if (!ld.failed)
        fill(&ld, L, env, lines, c);
    if (ld.failed)
        goto fail;
    lua_close(L);
    free(ld.source);
    *out = c;
    return 0;
fail:
    if (L)
        lua_close(L);
    free(ld.source);
    config_free(c);
    return rc;
}

static void free_strings(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

static void sink_config_free(struct sink_config *k)
{
    char *strs[] = {k->name, k->url, k->secret, k->from, k->username, k->password, k->templates, k->ca_file};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(strs[i]);
    free_strings(k->events);
    free_strings(k->offers);
    free_strings(k->to);
}

void config_free(struct saasd_config *c)
{
    if (!c)
        return;
    char **strs[] = {&c->path, &c->listen_addr, &c->admin_addr, &c->admin_key, &c->admin_key_file,
                     &c->data_dir, &c->authority_url, &c->tenant_id, &c->client_id, &c->client_secret,
                     &c->client_cert_file, &c->client_key_file, &c->client_secret_env, &c->client_secret_file,
                     &c->resource, &c->marketplace_url, &c->api_version, &c->webhook_audience,
                     &c->webhook_tenant, &c->webhook_app_id, &c->jwks_url, &c->rules_dir,
                     &c->landing_client_id, &c->landing_secret, &c->landing_authority, &c->landing_tenant,
                     &c->landing_redirect_uri, &c->rules_shadow_dir};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    for (char **p = c->http_allow; p && *p; p++)
        free(*p);
    free(c->http_allow);
    client_cert_free(c->client_cert);
    for (int i = 0; i < c->nsinks; i++)
        sink_config_free(&c->sinks[i]);
    free(c->sinks);
    free(c);
}
