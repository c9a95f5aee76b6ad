/* `rules check`: reads and writes of globals the sandbox does not give, found statically with
 * luacheck (Debian's lua-check, in make deps) and the sandbox's own list of globals
 * (saas.sandbox GLOBALS), so a rule that calls `print` is caught before it runs. */
#include "engine/engine_internal.h"

#include "core/err.h"
#include "engine/embedded.h"

#include <dirent.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GLOBALS 64
#define MAX_FILES 1024
#define LUACHECK "/usr/bin/luacheck"

/* The names saas.sandbox gives a rule, read from the embedded module itself. */
static int sandbox_globals(char names[MAX_GLOBALS][32], int *n)
{
    *n = 0;
    const struct embedded_file *m = embedded_modules;
    while (m->name && strcmp(m->name, "saas.sandbox") != 0)
        m++;
    lua_State *L = m->name ? luaL_newstate() : NULL;
    if (!L)
        return SAASD_EINTERNAL;
    luaL_openlibs(L);
    int rc = SAASD_EINTERNAL;
    if (luaL_loadbufferx(L, m->data, strlen(m->data), m->path, "t") == LUA_OK && lua_pcall(L, 0, 1, 0) == LUA_OK &&
        lua_getfield(L, -1, "GLOBALS") == LUA_TTABLE) {
        for (lua_Integer i = 1; *n < MAX_GLOBALS && lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
            snprintf(names[(*n)++], 32, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        rc = *n ? 0 : SAASD_EINTERNAL;
    }
    lua_close(L);
    return rc;
}

static int lua_file_names(const char *dir, char *paths[MAX_FILES], int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return SAASD_EIO;
    struct dirent *de;
    while ((de = readdir(d)) && *n < MAX_FILES) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0)
            continue;
        size_t sz = strlen(dir) + len + 2;
        if (!(paths[*n] = malloc(sz)))
            break;
        snprintf(paths[(*n)++], sz, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    return 0;
}

/* "file:line:col: (W113) accessing undefined variable 'print'" -> "file:line: ..." */
static void report_line(char *line, engine_problem_fn problem, void *arg, int *count)
{
    line[strcspn(line, "\n")] = 0;
    char *code = strstr(line, ": (W");
    char *col = code ? code : NULL;
    while (col && col > line && col[-1] != ':')
        col--;
    if (!code || !col || col == line)
        return;
    col[-1] = 0; /* cut ":col" */
    char msg[4200];
    snprintf(msg, sizeof msg, "%s: undeclared global (the sandbox refuses it at run time): %s", line, code + 2);
    problem(arg, msg);
    (*count)++;
}

int engine_check_globals(const char *dir, engine_problem_fn problem, void *arg, int *count)
{
    *count = 0;
    if (access(LUACHECK, X_OK) != 0)
        return SAASD_ENOTFOUND;
    char names[MAX_GLOBALS][32], *paths[MAX_FILES];
    int ng, nf;
    int rc = sandbox_globals(names, &ng);
    if (rc == 0)
        rc = lua_file_names(dir, paths, &nf);
    if (rc)
        return rc;
    const char *argv[16 + MAX_GLOBALS + MAX_FILES];
    int a = 0;
    const char *fixed[] = {LUACHECK, "--no-config", "--std", "none", "--formatter", "plain", "--codes",
                           "--only", "111", "112", "113", "121", "122", "--read-globals"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[a++] = fixed[i];
    for (int i = 0; i < ng; i++)
        argv[a++] = names[i];
    argv[a++] = "--";
    for (int i = 0; i < nf; i++)
        argv[a++] = paths[i];
    argv[a] = NULL;
    int fds[2];
    pid_t pid = nf && pipe(fds) == 0 ? fork() : -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        union {
            const char **c;
            char *const *v;
        } args = {argv}; /* execv's prototype predates const */
        execv(LUACHECK, args.v);
        _exit(127);
    }
    if (pid > 0) {
        close(fds[1]);
        FILE *f = fdopen(fds[0], "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f))
            report_line(line, problem, arg, count);
        if (f)
            fclose(f);
        waitpid(pid, NULL, 0);
    }
    for (int i = 0; i < nf; i++)
        free(paths[i]);
    return 0;
}
