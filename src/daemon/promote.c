/* Staged rollout, last step: the shadow generation (rules.shadow_dir) becomes the live one. The
 * live rules directory is made equal to the shadow's *.lua files (each written to a temporary
 * name and renamed: a file is never seen half-written; live files the shadow lacks are
 * removed), then the live engine reloads: the same all-or-nothing swap of a generation as any
 * reload, so a shadow that does not load leaves the old generation serving. */
#include "daemon/daemon.h"

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/engine.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int is_rule(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && name[0] != '.' && !strcmp(name + n - 4, ".lua");
}

static int copy_file(const char *from, const char *to)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.promote-tmp", to);
    FILE *in = fopen(from, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
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
    if (!rc && rename(tmp, to) != 0)
        rc = SAASD_EIO;
    if (rc)
        unlink(tmp);
    return rc;
}

/* Copy every rule file of from into to; with prune, remove files of to that from lacks. */
static int sync_dir(const char *from, const char *to, int *copied)
{
    DIR *dir = opendir(from);
    if (!dir)
        return SAASD_EIO;
    int rc = 0;
    struct dirent *e;
    char a[4200], b[4200];
    while (!rc && (e = readdir(dir)))
        if (is_rule(e->d_name)) {
            snprintf(a, sizeof a, "%s/%s", from, e->d_name);
            snprintf(b, sizeof b, "%s/%s", to, e->d_name);
            rc = copy_file(a, b);
            *copied += rc == 0;
        }
    closedir(dir);
    if (rc || !(dir = opendir(to)))
        return rc ? rc : SAASD_EIO;
    while ((e = readdir(dir)))
        if (is_rule(e->d_name)) {
            snprintf(a, sizeof a, "%s/%s", from, e->d_name);
            snprintf(b, sizeof b, "%s/%s", to, e->d_name);
            if (access(a, F_OK) != 0)
                unlink(b);
        }
    closedir(dir);
    return 0;
}

int rules_promote(struct daemon *d, int *copied)
{
    *copied = 0;
    if (!d->cfg->rules_shadow_dir)
        return SAASD_ENOTFOUND;
    /* refuse before touching the live directory when the shadow does not load now */
    int rc = engine_check_dir(d->cfg->rules_shadow_dir, NULL, NULL, NULL);
    if (!rc)
        rc = sync_dir(d->cfg->rules_shadow_dir, d->cfg->rules_dir, copied);
    if (!rc)
        rc = engine_reload(d->engine);
    log_info("rules", rc ? "shadow rules NOT promoted" : "shadow rules promoted", "shadow_dir",
             d->cfg->rules_shadow_dir, "rules_dir", d->cfg->rules_dir, "result", rc ? saasd_strerror(rc) : "ok");
    return rc;
}
