/* Staged rollout, last step: the shadow generation (rules.shadow_dir) becomes the live one in
 * one step, on disk and in the engine.
 *   1. stage: a complete new rules directory is built beside the live one (<dir>.promote-new):
 *      the live directory's other files (landing pages) and the shadow's *.lua, each fsync'd;
 *      then it is loaded in the real sandbox (the exact text that will go live).
 *   2. swap: under the engine's reload lock, renameat2(RENAME_EXCHANGE) swaps the two
 *      directories in one rename and the engine reloads from the new one: a generation holds
 *      either every old file or every new one. A reload that fails swaps them back.
 *   3. the old directory is kept as <dir>.previous (an earlier one is removed).
 * A crash at any point leaves rules.dir naming a complete directory, old or new; a leftover
 * <dir>.promote-new is removed by the next promotion. */
#include "daemon/daemon.h"
#include "daemon/promote.h"

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/engine.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_rule(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && name[0] != '.' && !strcmp(name + n - 4, ".lua");
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : SAASD_EIO;
    if (fd >= 0)
        close(fd);
    return rc;
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wbx") : NULL;
    char buf[65536];
    size_t n;
    int rc = in && out ? 0 : SAASD_EIO;
    while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = SAASD_EIO;
    if (in && ferror(in))
        rc = SAASD_EIO;
    if (in)
        fclose(in);
    if (out && (fflush(out) != 0 || fsync(fileno(out)) != 0))
        rc = SAASD_EIO;
    if (out && fclose(out) != 0)
        rc = SAASD_EIO;
    return rc;
}

/* Copy into to the regular files of from that are rule files (rules = 1: the shadow's) or that
 * are not (rules = 0: the live directory's landing pages and the like). The shadow's
 * sub-directories are not rules and are left; one in the live directory is refused, as it could
 * not be carried over in the same step. */
static int copy_files(const char *from, const char *to, int rules, int *copied)
{
    DIR *dir = opendir(from);
    if (!dir)
        return SAASD_EIO;
    int rc = 0;
    struct dirent *e;
    char a[4200], b[4200];
    struct stat st;
    while (!rc && (e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        int regular = stat(a, &st) == 0 && S_ISREG(st.st_mode);
        if (!regular && !rules) {
            log_error("rules", "not promoted: the live rules directory has a sub-directory", "path", a);
            rc = SAASD_EINVAL;
        }
        if (!regular || is_rule(e->d_name) != rules)
            continue;
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        rc = copy_file(a, b);
        *copied += rc == 0 && rules;
    }
    closedir(dir);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : SAASD_EIO;
}

int promote_paths(const char *rules_dir, struct promote_paths *p)
{
    size_t n = strlen(rules_dir);
    while (n > 1 && rules_dir[n - 1] == '/')
        n--;
    int a = snprintf(p->live, sizeof p->live, "%.*s", (int)n, rules_dir);
    int b = snprintf(p->staging, sizeof p->staging, "%s.promote-new", p->live);
    int c = snprintf(p->previous, sizeof p->previous, "%s.previous", p->live);
    const char *slash = strrchr(p->live, '/');
    if (!slash)
        snprintf(p->parent, sizeof p->parent, ".");
    else
        snprintf(p->parent, sizeof p->parent, "%.*s", slash == p->live ? 1 : (int)(slash - p->live), p->live);
    return a < (int)sizeof p->live && b < (int)sizeof p->staging && c < (int)sizeof p->previous ? 0 : SAASD_EINVAL;
}

int promote_stage(const char *shadow_dir, const struct promote_paths *p, int *copied)
{
    *copied = 0;
    int rc = rm_tree(p->staging); /* a crashed promotion's leftover */
    if (!rc && mkdir(p->staging, 0755) != 0)
        rc = SAASD_EIO;
    if (!rc)
        rc = copy_files(p->live, p->staging, 0, copied);
    if (!rc)
        rc = copy_files(shadow_dir, p->staging, 1, copied);
    if (!rc)
        rc = fsync_path(p->staging);
    if (!rc)
        rc = engine_check_dir(p->staging, NULL, NULL, NULL);
    if (rc)
        rm_tree(p->staging);
    return rc;
}

int promote_exchange(void *arg)
{
    const struct promote_paths *p = arg;
    if (renameat2(AT_FDCWD, p->staging, AT_FDCWD, p->live, RENAME_EXCHANGE) != 0)
        return SAASD_EIO;
    return fsync_path(p->parent); /* the swap itself survives a power cut */
}

int rules_promote(struct daemon *d, int *copied)
{
    *copied = 0;
    if (!d->cfg->rules_shadow_dir)
        return SAASD_ENOTFOUND;
    return rules_promote_dirs(d->engine, d->cfg->rules_shadow_dir, d->cfg->rules_dir, copied);
}

int rules_promote_dirs(struct engine *e, const char *shadow_dir, const char *rules_dir, int *copied)
{
    struct promote_paths p;
    /* refuse before touching anything when the shadow does not load now */
    int rc = promote_paths(rules_dir, &p);
    if (!rc)
        rc = engine_check_dir(shadow_dir, NULL, NULL, NULL);
    if (!rc)
        rc = promote_stage(shadow_dir, &p, copied);
    if (!rc && (rc = engine_replace_dir(e, promote_exchange, &p)) != 0)
        rm_tree(p.staging); /* swapped back: the staging directory holds the refused rules */
    if (!rc && (rm_tree(p.previous) != 0 || rename(p.staging, p.previous) != 0))
        log_warn("rules", "the previous rules directory could not be kept", "path", p.previous);
    log_info("rules", rc ? "shadow rules NOT promoted" : "shadow rules promoted", "shadow_dir", shadow_dir,
             "rules_dir", rules_dir, "result", rc ? saasd_strerror(rc) : "ok");
    return rc;
}
