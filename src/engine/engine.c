/* The engine: generations of rule files, their pools of rule workers, calls and reloads.
 * Locking: engine.mu guards `current` and every generation's refs; generation.mu guards its
 * pool; reload_mu serialises reloads. No lock is held while Lua runs. */
#include "engine/engine_internal.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/store.h"
#include "engine/embedded.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_CPU_MS 2000
#define DEFAULT_MEMORY (32u << 20)
#define DEFAULT_STATES 8
#define DEFAULT_HTTP_TIMEOUT_MS 3000
#define OFFER_ID_MAX 128

/* Process-wide, for engine_info: proves old generations are released. */
static _Atomic long live_generations, live_states;

int engine_offer_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > OFFER_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void rule_files_free(struct rule_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i].offer_id);
        free(files[i].path);
        free(files[i].source);
    }
    free(files);
}

static int read_file(const char *path, char **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return SAASD_EIO;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                rc = SAASD_ETOOBIG;
                goto fail;
            }
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                rc = SAASD_ENOMEM;
                goto fail;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                rc = SAASD_EIO;
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
fail:
    fclose(f);
    free(buf);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int set_file(struct rule_file *f, const char *offer, const char *path, char *source, size_t len)
{
    f->offer_id = strdup(offer);
    f->path = strdup(path);
    f->source = source;
    f->len = len;
    if (!f->offer_id || !f->path)
        return SAASD_ENOMEM;
    return crypto_sha256_hex(source, len, f->sha256);
}

/* A rules directory being read: where problems go, and the names of its rule files. */
struct dir_scan {
    const char *dir;
    engine_problem_fn problem;
    void *arg;
    char **names; /* the <offer>.lua file names (each cut to its offer id once read) */
    size_t n, cap;
};

static int push_name(struct dir_scan *sc, const char *name)
{
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        char **nn = realloc(sc->names, cap * sizeof *sc->names);
        if (!nn)
            return SAASD_ENOMEM;
        sc->names = nn;
        sc->cap = cap;
    }
    if (!(sc->names[sc->n] = strdup(name)))
        return SAASD_ENOMEM;
    sc->n++;
    return 0;
}

/* The <offer>.lua names of the directory into sc, in directory order; a file named after no
 * valid offer id is reported and left out. */
static int list_rule_names(struct dir_scan *sc, DIR *d)
{
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0)
            continue;
        if (!engine_offer_id_valid(de->d_name, len - 4)) {
            if (sc->problem) {
                char msg[1200];
                snprintf(msg, sizeof msg, "%s/%s:0: file name is not a valid offer id ([A-Za-z0-9._-], 1..128)",
                         sc->dir, de->d_name);
                sc->problem(sc->arg, msg);
            }
            continue;
        }
        int rc = push_name(sc, de->d_name);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every listed regular file read into files: the offers' from files[0] on (*nf of them), the
 * default's into files[sc->n] (*have_default). */
static int load_rule_files(struct dir_scan *sc, struct rule_file *files, size_t *nf, int *have_default)
{
    for (size_t i = 0; i < sc->n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", sc->dir, sc->names[i]);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        char *src;
        size_t len;
        int rc = read_file(path, &src, &len);
        if (rc < 0) {
            if (sc->problem) {
                char msg[4200];
                snprintf(msg, sizeof msg, "%s:0: cannot read: %s", path, saasd_strerror(rc));
                sc->problem(sc->arg, msg);
            }
            return rc;
        }
        sc->names[i][strlen(sc->names[i]) - 4] = '\0';
        int is_default = !strcmp(sc->names[i], "default");
        struct rule_file *f = is_default ? &files[sc->n] : &files[(*nf)++];
        *have_default |= is_default;
        if ((rc = set_file(f, sc->names[i], path, src, len)) < 0)
            return rc;
    }
    return 0;
}

static int set_builtin_default(struct rule_file *f)
{
    const struct embedded_file *ef = embedded_default_rule();
    char *src = strdup(ef->data);
    if (!src)
        return SAASD_ENOMEM;
    return set_file(f, "default", ef->path, src, strlen(src));
}

/* Every rules/<offer>.lua of dir, sorted, plus the default (default.lua or the built-in one,
 * always last). Files whose name is not a valid offer id are reported as problems. */
int engine_read_dir(const char *dir, struct rule_file **out, size_t *nout, engine_problem_fn problem,
                    void *arg)
{
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (problem) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s:0: cannot read the rules directory: %s", dir, strerror(errno));
            problem(arg, msg);
        }
        return SAASD_EIO;
    }
    struct dir_scan sc = {.dir = dir, .problem = problem, .arg = arg};
    struct rule_file *files = NULL;
    size_t nf = 0;
    int have_default = 0, rc = list_rule_names(&sc, d);
    if (rc)
        goto done;
    if (sc.n > 1) /* qsort(NULL, 0) is undefined: an empty rules directory leaves names NULL */
        qsort(sc.names, sc.n, sizeof *sc.names, cmp_str);
    files = calloc(sc.n + 1, sizeof *files);
    if (!files) {
        rc = SAASD_ENOMEM;
        goto done;
    }
    if ((rc = load_rule_files(&sc, files, &nf, &have_default)) < 0 ||
        (!have_default && (rc = set_builtin_default(&files[sc.n])) < 0)) {
        rule_files_free(files, sc.n + 1);
        goto done;
    }
    if (nf != sc.n) { /* move the default right after the offer files */
        files[nf] = files[sc.n];
        memset(&files[sc.n], 0, sizeof files[sc.n]);
    }
    *out = files;
    *nout = nf + 1;
    rc = 0;
done:
    for (size_t i = 0; i < sc.n; i++)
        free(sc.names[i]);
    free(sc.names);
    closedir(d);
    return rc;
}

struct problem_count {
    engine_problem_fn fn;
    void *arg;
    int count;
};

static void count_problem(void *arg, const char *p)
{
    struct problem_count *pc = arg;
    pc->count++;
    if (pc->fn)
        pc->fn(pc->arg, p);
}

/* ---- the pool of rule workers (engine-wide; engine.pool_mu) ---- */

static int pool_take(struct engine *e, struct worker **out)
{
    *out = NULL;
    pthread_mutex_lock(&e->pool_mu);
    for (;;) {
        while (!e->free_workers && e->nworkers >= e->opt.states)
            pthread_cond_wait(&e->pool_cv, &e->pool_mu);
        struct worker *w = e->free_workers;
        if (!w)
            break;
        e->free_workers = w->next;
        /* the check is a system call: made outside the lock, which every rule call takes */
        pthread_mutex_unlock(&e->pool_mu);
        if (worker_idle_ok(w)) {
            *out = w;
            return 0;
        }
        worker_free(w); /* died while idle (OOM killer, an operator): not this call's fault */
        live_states--;
        pthread_mutex_lock(&e->pool_mu);
        e->nworkers--;
        e->workers_replaced++;
    }
    e->nworkers++;
    pthread_mutex_unlock(&e->pool_mu);
    int rc = worker_spawn(e->opt.worker_exe, out);
    if (rc == 0) {
        live_states++;
    } else {
        pthread_mutex_lock(&e->pool_mu);
        e->nworkers--;
        pthread_cond_signal(&e->pool_cv);
        pthread_mutex_unlock(&e->pool_mu);
    }
    return rc;
}

static void pool_give(struct engine *e, struct worker *w)
{
    pthread_mutex_lock(&e->pool_mu);
    if (w->dead) {
        e->nworkers--;
        e->workers_replaced++;
    } else {
        w->next = e->free_workers;
        e->free_workers = w;
        w = NULL;
    }
    pthread_mutex_unlock(&e->pool_mu);
    /* after the unlock: a lane woken inside it ran straight into the held lock and slept again
     * (a futex wait and a context switch more per rule call with more lanes than workers) */
    pthread_cond_signal(&e->pool_cv);
    if (w) {
        worker_free(w); /* killed, crashed or hit a limit: replaced by a fresh one on demand */
        live_states--;
    }
}

static void pool_free(struct engine *e)
{
    while (e->free_workers) {
        struct worker *w = e->free_workers;
        e->free_workers = w->next;
        worker_free(w);
        live_states--;
    }
}

/* A worker for validation: from the engine's pool, or a private one (engine_check_dir). */
static int take_for(struct engine *e, const struct engine_options *o, struct worker **w)
{
    if (e)
        return pool_take(e, w);
    int rc = worker_spawn(o->worker_exe, w);
    if (rc == 0)
        live_states++;
    return rc;
}

static void give_for(struct engine *e, struct worker *w)
{
    if (!w)
        return; /* none was started (spawn failed), or the last file's worker died */
    if (e) {
        pool_give(e, w);
    } else {
        worker_free(w);
        live_states--;
    }
}

/* Load every file in a rule worker, each in its own state, under the same wall-clock deadline
 * as a call: a file whose top level hangs, even inside a C function, is killed and reported,
 * and the next file goes to a fresh worker. A text the worker already holds (same path and
 * SHA-256: it passed this very check before) is not run again. */
static int validate(struct engine *e, const struct rule_file *files, size_t n,
                    const struct engine_options *o, engine_problem_fn problem, void *arg)
{
    struct problem_count pc = {problem, arg, 0};
    struct worker *w = NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!w && (rc = take_for(e, o, &w)) < 0)
            break;
        long slot = worker_slot(w, &files[i], files[i].offer_id);
        if (slot < 0)
            worker_load(w, &files[i], files[i].offer_id, o->cpu_ms, o->memory, count_problem, &pc, &slot);
        if (w->dead) {
            give_for(e, w);
            w = NULL;
        }
    }
    give_for(e, w);
    if (rc < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s:0: cannot start a rule worker process: %s",
                 n ? files[0].path : "rules", saasd_strerror(rc));
        count_problem(&pc, msg);
    }
    return pc.count ? SAASD_ERULE : 0;
}

static void gen_free(struct generation *g)
{
    if (g->number)
        live_generations--;
    rule_files_free(g->files, g->nfiles);
    free(g);
}

static void log_problem(void *arg, const char *p)
{
    if (arg)
        engine_note_problem(arg, p);
    log_error("engine", "rule problem", "problem", p);
}

/* Read and validate the directory into a new generation (not yet visible). */
static int gen_build(struct engine *e, struct generation **out)
{
    *out = NULL;
    struct generation *g = calloc(1, sizeof *g);
    if (!g)
        return SAASD_ENOMEM;
    g->e = e;
    struct problem_count pc = {log_problem, e, 0};
    int rc = engine_read_dir(e->rules_dir, &g->files, &g->nfiles, count_problem, &pc);
    if (rc == 0)
        rc = validate(e, g->files, g->nfiles, &e->opt, count_problem, &pc);
    if (rc == 0 && pc.count)
        rc = SAASD_ERULE;
    if (rc < 0) {
        gen_free(g);
        return rc;
    }
    g->dflt = &g->files[g->nfiles - 1];
    *out = g;
    return 0;
}

static struct generation *gen_acquire(struct engine *e)
{
    pthread_mutex_lock(&e->mu);
    struct generation *g = e->current;
    if (g)
        g->refs++;
    pthread_mutex_unlock(&e->mu);
    return g;
}

static void gen_release(struct engine *e, struct generation *g)
{
    pthread_mutex_lock(&e->mu);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&e->mu);
    if (last)
        gen_free(g);
}

static char **copy_strv(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **c = calloc(n + 1, sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!(c[i] = strdup(v[i]))) {
            for (size_t j = 0; j < i; j++)
                free(c[j]);
            free(c);
            return NULL;
        }
    return c;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void engine_options_defaults(struct engine_options *o)
{
    if (o->cpu_ms <= 0)
        o->cpu_ms = DEFAULT_CPU_MS;
    if (o->memory == 0)
        o->memory = DEFAULT_MEMORY;
    if (o->http_timeout_ms <= 0)
        o->http_timeout_ms = DEFAULT_HTTP_TIMEOUT_MS;
    if (o->states <= 0)
        o->states = DEFAULT_STATES;
    if (o->watch_debounce_ms <= 0)
        o->watch_debounce_ms = 200;
    if (o->http_budget_ms <= 0 || o->http_budget_ms > o->cpu_ms)
        o->http_budget_ms = o->cpu_ms * 3 / 4;
}

int engine_open(const struct engine_options *opt, struct engine **out)
{
    *out = NULL;
    if (!opt || !opt->rules_dir)
        return SAASD_EINVAL;
    struct engine *e = calloc(1, sizeof *e);
    if (!e)
        return SAASD_ENOMEM;
    e->opt = *opt;
    engine_options_defaults(&e->opt);
    e->rules_dir = strdup(opt->rules_dir);
    e->http_allow = copy_strv(opt->http_allow);
    e->worker_exe = opt->worker_exe ? strdup(opt->worker_exe) : NULL;
    e->opt.rules_dir = e->rules_dir;
    e->opt.http_allow = e->http_allow;
    e->opt.worker_exe = e->worker_exe;
    e->watch_stop[0] = e->watch_stop[1] = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->reload_mu, NULL);
    pthread_mutex_init(&e->metrics_mu, NULL);
    pthread_mutex_init(&e->pool_mu, NULL);
    pthread_cond_init(&e->pool_cv, NULL);
    int rc = SAASD_ENOMEM;
    if (!e->rules_dir || !e->http_allow || (opt->worker_exe && !e->worker_exe))
        goto fail;
    struct generation *g;
    rc = gen_build(e, &g);
    engine_note_load(e, rc);
    if (rc < 0) {
        log_error("engine", "rules failed to load", "dir", e->rules_dir, "error", saasd_strerror(rc));
        goto fail;
    }
    g->number = ++e->generations;
    live_generations++;
    g->refs = 1; /* the engine's own reference */
    e->current = g;
    char num[32], nfiles[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)g->number);
    snprintf(nfiles, sizeof nfiles, "%zu", g->nfiles);
    log_info("engine", "rules loaded", "dir", e->rules_dir, "generation", num, "files", nfiles);
    *out = e;
    return 0;
fail:
    engine_close(e);
    return rc;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    engine_watch_stop(e);
    if (e->current)
        gen_release(e, e->current);
    pool_free(e);
    engine_metrics_free(e);
    pthread_mutex_destroy(&e->pool_mu);
    pthread_cond_destroy(&e->pool_cv);
    engine_load_status_free(e);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->reload_mu);
    pthread_mutex_destroy(&e->metrics_mu);
    free(e->rules_dir);
    free_strv(e->http_allow);
    free(e->worker_exe);
    free(e);
}

/* The body of a reload; the caller holds reload_mu. */
static int reload_locked(struct engine *e)
{
    struct generation *g;
    int rc = gen_build(e, &g);
    engine_note_load(e, rc);
    if (rc < 0) {
        e->reloads_failed++;
        char num[32];
        snprintf(num, sizeof num, "%llu", (unsigned long long)e->current->number);
        log_error("engine", "rules NOT changed: the new rules failed to load, the old ones keep serving",
                  "dir", e->rules_dir, "generation", num, "error", saasd_strerror(rc));
        return rc == SAASD_EIO ? SAASD_EIO : SAASD_ERULE;
    }
    g->refs = 1;
    pthread_mutex_lock(&e->mu);
    g->number = ++e->generations;
    live_generations++;
    struct generation *old = e->current;
    e->current = g;
    pthread_mutex_unlock(&e->mu);
    e->reloads_ok++;
    gen_release(e, old); /* freed now, or by the last call still running on it */
    char num[32], nfiles[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)g->number);
    snprintf(nfiles, sizeof nfiles, "%zu", g->nfiles);
    log_info("engine", "rules reloaded", "dir", e->rules_dir, "generation", num, "files", nfiles);
    return 0;
}

int engine_reload(struct engine *e)
{
    pthread_mutex_lock(&e->reload_mu);
    int rc = reload_locked(e);
    if (rc == 0)
        engine_watch_rearm(e); /* the directory may be another one by now (a deploy's swap) */
    pthread_mutex_unlock(&e->reload_mu);
    return rc;
}

int engine_replace_dir(struct engine *e, int (*swap)(void *arg), void *arg)
{
    pthread_mutex_lock(&e->reload_mu); /* no reload reads the directory while it is being swapped */
    int rc = swap(arg);
    if (rc == 0 && (rc = reload_locked(e)) != 0 && swap(arg) != 0)
        log_error("engine", "the rules directory could not be swapped back after a failed load: the files on disk "
                  "are not the rules serving", "dir", e->rules_dir);
    if (rc == 0)
        engine_watch_rearm(e);
    pthread_mutex_unlock(&e->reload_mu);
    return rc;
}

static int append_writes(struct store_batch *batch, const char *offer, struct bind_kv *w)
{
    if (!w)
        return 0;
    int rc = append_writes(batch, offer, w->next); /* oldest first */
    if (rc < 0)
        return rc;
    size_t olen = strlen(offer);
    char key[OFFER_ID_MAX + 1 + 256];
    memcpy(key, offer, olen);
    key[olen] = '\0';
    memcpy(key + olen + 1, w->key, w->klen);
    if (w->val)
        return store_batch_put(batch, STORE_RULE_KV, key, olen + 1 + w->klen, w->val, w->vlen);
    return store_batch_del(batch, STORE_RULE_KV, key, olen + 1 + w->klen);
}

static size_t find_rule(const struct generation *g, const char *offer)
{
    for (size_t i = 0; i + 1 < g->nfiles; i++)
        if (!strcmp(g->files[i].offer_id, offer))
            return i;
    return g->nfiles - 1; /* the default */
}

int engine_call(struct engine *e, const char *offer_id, enum rule_handler h, const char *sub_json,
                const char *arg_json, struct store_batch *batch, struct rule_result *out)
{
    return engine_call_ex(e, offer_id, h, sub_json, arg_json, batch, NULL, out);
}

/* One rule call's inputs, as engine_call_ex was given them. */
struct call_in {
    const char *offer_id;
    enum rule_handler h;
    const char *sub_json, *arg_json;
    struct store_batch *batch;
    const struct engine_call_opts *o;
};

/* out started (its offer id copied, even for a refused call) and the inputs checked. */
static int start_call(const struct engine *e, const struct call_in *in, struct rule_result *out)
{
    memset(out, 0, sizeof *out);
    out->handler = in->h;
    out->offer_id = strdup(in->offer_id ? in->offer_id : "");
    if (!out->offer_id)
        return SAASD_ENOMEM;
    if (!e || !in->offer_id || !engine_offer_id_valid(in->offer_id, strlen(in->offer_id)) ||
        (unsigned)in->h >= RULE_HANDLER_COUNT || !in->sub_json || (in->h != RULE_PROVISION && !in->arg_json)) {
        out->outcome = RULE_BAD_INPUT;
        out->error = strdup("engine_call: invalid offer id, handler or missing JSON");
        return SAASD_EINVAL;
    }
    return 0;
}

/* Which rule decides: its generation, offer, file and hash into out. */
static void name_rule(const struct generation *g, const struct rule_file *f, struct rule_result *out)
{
    out->generation = g->number;
    out->rule_offer = strdup(f->offer_id);
    out->file = strdup(f->path);
    memcpy(out->sha256, f->sha256, sizeof out->sha256);
}

/* No worker, or the rule did not load in the one taken: the outcome and its message. */
static int no_worker(const struct call_in *in, const struct rule_file *f, int rc, struct rule_result *out)
{
    out->outcome = rc == SAASD_ELIMIT ? RULE_CPU_LIMIT : RULE_ERROR;
    char msg[512];
    snprintf(msg, sizeof msg, "offer '%s' handler '%s' in %s: no rule worker available: %s", in->offer_id,
             rule_handler_name(in->h), f->path, saasd_strerror(rc));
    out->error = strdup(msg);
    return rc == SAASD_ELIMIT ? rc : SAASD_ERULE;
}

/* The capabilities the rule's ctx gets for this call (bind/caps.h). */
static void init_caps(const struct engine *e, const struct call_in *in, struct caps *caps)
{
    const struct engine_call_opts *o = in->o;
    *caps = (struct caps){
        .offer_id = in->offer_id,
        .handler = rule_handler_name(in->h),
        .sub_id = o->sub_id,
        .store = e->opt.store,
        .http = e->opt.http,
        .http_allow = e->http_allow,
        .http_timeout_ms = e->opt.http_timeout_ms,
        .http_left_ns = (int64_t)e->opt.http_budget_ms * 1000000,
        .max_body = e->opt.memory,
        .now_s = o->now_s,
        .reads = o->record ? json_object() : NULL,
        .replay_reads = o->reads,
        .no_http = o->http_mode == ENGINE_HTTP_REFUSE,
        .http_log = o->record ? json_array() : NULL,
    };
}

/* What the rule left in caps (effects, store reads, HTTP log and refusals) kept in out as
 * JSON text, and caps' trees freed; rc, or the failure to keep the effects. */
static int keep_caps(struct engine *e, struct caps *caps, int rc, struct rule_result *out)
{
    e->store_reads_prefetched += caps->reads_prefetched;
    e->store_reads_asked += caps->reads_asked;
    if (rc == 0 && caps->effects && !(out->effects = json_dumps(caps->effects, JSON_COMPACT))) {
        out->outcome = RULE_ERROR;
        out->error = strdup("could not keep the rule's ctx.meter/ctx.timer/ctx.notify effects (out of memory)");
        rc = SAASD_ENOMEM;
    }
    json_decref(caps->effects);
    if (caps->reads)
        out->reads = json_dumps(caps->reads, JSON_COMPACT);
    json_decref(caps->reads);
    if (json_array_size(caps->http_log))
        out->http = json_dumps(caps->http_log, JSON_COMPACT);
    if (caps->http_refused)
        out->http_refused = json_dumps(caps->http_refused, JSON_COMPACT);
    json_decref(caps->http_log);
    json_decref(caps->http_refused);
    return rc;
}

/* The rule run on worker w (its state at slot); its ctx.store writes appended to the batch. */
static int run_rule(struct engine *e, const struct call_in *in, struct worker *w, long slot,
                    const struct rule_file *f, struct rule_result *out)
{
    struct caps caps;
    init_caps(e, in, &caps);
    json_t *no_record = NULL; /* RECORDED without a record: every call is refused */
    if (in->o->http_mode == ENGINE_HTTP_RECORDED)
        caps.replay_http = in->o->http ? in->o->http : (no_record = json_array());
    struct bind_kv *writes = NULL;
    int rc = worker_call(w, slot, f, in->h, in->sub_json, in->arg_json, e->opt.cpu_ms, e->opt.memory, &caps, out,
                         &writes);
    if (rc == 0 && in->batch && (rc = append_writes(in->batch, in->offer_id, writes)) < 0) {
        out->outcome = RULE_ERROR;
        out->error = strdup("could not append the rule's ctx.store writes to the batch");
    }
    bind_kv_free(writes);
    rc = keep_caps(e, &caps, rc, out);
    json_decref(no_record);
    return rc;
}

int engine_call_ex(struct engine *e, const char *offer_id, enum rule_handler h, const char *sub_json,
                   const char *arg_json, struct store_batch *batch, const struct engine_call_opts *o,
                   struct rule_result *out)
{
    static const struct engine_call_opts none = {0};
    const struct call_in in = {offer_id, h, sub_json, arg_json, batch, o ? o : &none};
    int64_t t0 = limits_now_ns();
    int rc = start_call(e, &in, out);
    if (rc)
        return rc;
    struct generation *g = gen_acquire(e);
    const struct rule_file *f = &g->files[find_rule(g, offer_id)];
    name_rule(g, f, out);

    struct worker *w;
    rc = pool_take(e, &w);
    long slot = rc == 0 ? worker_slot(w, f, offer_id) : -1;
    if (rc == 0 && slot < 0) /* this worker's first call of this offer and text: a state of its own */
        rc = worker_load(w, f, offer_id, e->opt.cpu_ms, e->opt.memory, log_problem, NULL, &slot);
    rc = rc < 0 ? no_worker(&in, f, rc, out) : run_rule(e, &in, w, slot, f, out);
    if (w)
        pool_give(e, w);
    out->elapsed_ms = (double)(limits_now_ns() - t0) / 1e6;
    engine_metrics_record(e, f->offer_id, h, out->outcome, out->elapsed_ms);
    if (rc < 0)
        log_warn("engine", "rule call failed", "offer", offer_id, "handler", rule_handler_name(h),
                 "outcome", rule_outcome_name(out->outcome), "file", f->path, "sha256", out->sha256,
                 "error", out->error ? out->error : saasd_strerror(rc));
    gen_release(e, g); /* last: f points into the generation */
    return rc;
}

int engine_landing(struct engine *e, const char *offer_id, char **json)
{
    *json = NULL;
    if (!e || !offer_id || !engine_offer_id_valid(offer_id, strlen(offer_id)))
        return SAASD_EINVAL;
    struct generation *g = gen_acquire(e);
    if (!g)
        return SAASD_ENOTFOUND;
    const struct rule_file *f = &g->files[find_rule(g, offer_id)];
    /* the table lives in the rule's state, which lives in a worker: asked like a handler call */
    struct worker *w;
    int rc = pool_take(e, &w);
    long slot = rc == 0 ? worker_slot(w, f, offer_id) : -1;
    if (rc == 0 && slot < 0)
        rc = worker_load(w, f, offer_id, e->opt.cpu_ms, e->opt.memory, log_problem, NULL, &slot);
    if (rc == 0)
        rc = worker_landing(w, slot, e->opt.cpu_ms, json);
    if (w)
        pool_give(e, w);
    gen_release(e, g);
    return rc;
}

int engine_info(struct engine *e, struct engine_info **out)
{
    *out = NULL;
    struct engine_info *info = calloc(1, sizeof *info);
    if (!info)
        return SAASD_ENOMEM;
    struct generation *g = gen_acquire(e);
    info->generation = g->number;
    info->reloads_ok = e->reloads_ok;
    info->reloads_failed = e->reloads_failed;
    info->live_generations = live_generations;
    info->live_states = live_states;
    info->rules = calloc(g->nfiles, sizeof *info->rules);
    int rc = info->rules ? 0 : SAASD_ENOMEM;
    for (size_t i = 0; rc == 0 && i < g->nfiles; i++) {
        struct engine_rule_info *r = &info->rules[i];
        r->offer_id = strdup(g->files[i].offer_id);
        r->file = strdup(g->files[i].path);
        memcpy(r->sha256, g->files[i].sha256, sizeof r->sha256);
        info->nrules++;
        if (!r->offer_id || !r->file)
            rc = SAASD_ENOMEM;
    }
    gen_release(e, g);
    engine_load_status_fill(e, info);
    if (rc < 0) {
        engine_info_free(info);
        return rc;
    }
    *out = info;
    return 0;
}

void engine_info_free(struct engine_info *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->nrules; i++) {
        free(info->rules[i].offer_id);
        free(info->rules[i].file);
    }
    free(info->rules);
    free(info->last_load_problems);
    free(info);
}

int engine_check_dir(const char *dir, const struct engine_options *opt, engine_problem_fn problem,
                     void *arg)
{
    struct engine_options o = {0};
    if (opt)
        o = *opt;
    engine_options_defaults(&o);
    struct problem_count pc = {problem, arg, 0};
    struct rule_file *files;
    size_t n;
    int rc = engine_read_dir(dir, &files, &n, count_problem, &pc);
    if (rc < 0)
        return rc;
    rc = validate(NULL, files, n, &o, count_problem, &pc);
    rule_files_free(files, n);
    return pc.count ? SAASD_ERULE : rc;
}
