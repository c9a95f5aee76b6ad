/* saasd test [DIR] [BUSTED OPTIONS]: runs the busted specs of a rules repository (DIR, default
 * the current directory: rules/ and spec/) under Lua 5.4 with saasd's rule-testing runtime on
 * the path, through the saasd-busted wrapper that belongs to this binary. Works from an
 * installed saasd (bin/saasd-busted next to bin/saasd) and from a build tree (build/saasd,
 * build/dist/saasd-busted, the runtime in lua/ and build/lua/). Exit status: busted's (0 when
 * every spec passed), 2 when the wrapper or DIR cannot be found. */
#include "cmd/cmd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where the wrapper and the runtime are, relative to the directory of this binary. A NULL
 * lua_dir means the wrapper finds the runtime itself (an installed tree). */
struct layout {
    const char *wrapper;
    const char *lua_dir;  /* holds saas/testing.lua and the rest of the runtime */
    const char *cmod_dir; /* saas/core.so */
};

static const struct layout layouts[] = {
    {"saasd-busted", NULL, NULL},           /* installed: $(PREFIX)/bin */
    {"dist/saasd-busted", "../lua", "lua"}, /* build tree: build/ inside the source tree */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: saasd test [DIR] [BUSTED OPTIONS]\n"
               "  Runs the busted specs under DIR/spec (default: the current directory) under Lua 5.4\n"
               "  with saasd's rule-testing runtime (require \"saas.testing\"); rule files are read\n"
               "  from the paths the specs give, e.g. rules/<offerId>.lua. Options after DIR go to\n"
               "  busted (e.g. -o TAP). Exit status: 0 all specs passed, 1 failures, 2 setup problem.\n");
}

/* dir + "/" + rel into out; -1 when it does not fit. */
static int join(char *out, size_t size, const char *dir, const char *rel)
{
    int n = snprintf(out, size, "%s/%s", dir, rel);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

static int exists(const char *dir, const char *rel)
{
    char path[PATH_MAX];
    return join(path, sizeof path, dir, rel) == 0 && access(path, R_OK) == 0;
}

/* Finds the layout this binary lives in; sets SAASD_LUA_DIR/SAASD_LUA_CDIR for a build tree.
 * Writes the wrapper's path to out. */
static int find_wrapper(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = 0;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        const struct layout *l = &layouts[i];
        if (!exists(exe, l->wrapper) || (l->lua_dir && !exists(exe, "../lua/saas/testing.lua")))
            continue;
        if (l->lua_dir) {
            char lua[PATH_MAX], cmod[PATH_MAX];
            if (join(lua, sizeof lua, exe, l->lua_dir) || join(cmod, sizeof cmod, exe, l->cmod_dir))
                return -1;
            setenv("SAASD_LUA_DIR", lua, 1);
            setenv("SAASD_LUA_CDIR", cmod, 1);
        }
        return join(out, size, exe, l->wrapper);
    }
    return -1;
}

int cmd_test(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    int first = 0;
    if (argc > 0 && argv[0][0] != '-') {
        if (chdir(argv[0]) != 0) {
            fprintf(stderr, "saasd test: %s: %s\n", argv[0], strerror(errno));
            return 2;
        }
        first = 1;
    }
    char wrapper[PATH_MAX];
    if (find_wrapper(wrapper, sizeof wrapper) != 0) {
        fprintf(stderr, "saasd test: saasd-busted is not installed next to this saasd binary\n");
        return 2;
    }
    char **args = calloc((size_t)(argc - first) + 2, sizeof *args);
    if (!args)
        return 2;
    args[0] = wrapper;
    for (int i = first; i < argc; i++)
        args[i - first + 1] = argv[i];
    execv(wrapper, args);
    fprintf(stderr, "saasd test: cannot run %s: %s\n", wrapper, strerror(errno));
    free(args);
    return 2;
}
