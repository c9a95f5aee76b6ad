/* Promotion of the shadow rules is one atomic swap, on disk and in the engine: calls made while
 * a promotion runs (beside reloads hammering the directory, as SIGHUP and the watcher do) see,
 * per generation, every old rule file or every new one, never a mix across offers; a broken
 * candidate is refused with the old rules serving and on disk; a crash between the steps leaves
 * a complete directory (old or new) for the restart; the watcher follows the new directory. */
#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "daemon/promote.h"
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFFERS 6
#define MAX_SEEN 20000

#define RULE "return { provision = function(sub, ctx) return { action = 'activate', message = '%s' } end }\n"

static void write_rules(const char *dir, const char *word)
{
    char text[256], name[32];
    snprintf(text, sizeof text, RULE, word);
    for (int i = 0; i < OFFERS; i++) {
        snprintf(name, sizeof name, "o%d.lua", i);
        check_write_file(dir, name, "%s", text);
    }
}

/* The message of offer's provision on e ("" on failure; static buffer). */
static const char *call(struct engine *e, const char *offer, uint64_t *gen)
{
    static __thread char out[64];
    struct rule_result r;
    out[0] = '\0';
    if (engine_call(e, offer, RULE_PROVISION, "{\"id\":\"s\"}", NULL, NULL, &r) == 0 && r.message)
        snprintf(out, sizeof out, "%s", r.message);
    if (gen)
        *gen = r.generation;
    rule_result_free(&r);
    return out;
}

/* The file text of dir/name ("" when absent; static buffer). */
static const char *text_of(const char *dir, const char *name)
{
    static char buf[512];
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

/* 1 when every oN.lua of dir says word. */
static int all_say(const char *dir, const char *word)
{
    char name[32], want[256];
    snprintf(want, sizeof want, RULE, word);
    for (int i = 0; i < OFFERS; i++) {
        snprintf(name, sizeof name, "o%d.lua", i);
        if (strcmp(text_of(dir, name), want) != 0)
            return 0;
    }
    return 1;
}

static struct {
    struct engine *e;
    atomic_int stop; /* volatile is no synchronisation: TSan reported the race */
    pthread_mutex_t mu;
    size_t n;
    uint64_t gen[MAX_SEEN];
    char word[MAX_SEEN]; /* 'o' old, 'n' new, '?' other */
    int reloads, mixed_info;
} run = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *caller(void *arg)
{
    int k = (int)(intptr_t)arg;
    char offer[16];
    while (!run.stop) {
        snprintf(offer, sizeof offer, "o%d", k++ % OFFERS);
        uint64_t g = 0;
        const char *m = call(run.e, offer, &g);
        pthread_mutex_lock(&run.mu);
        if (run.n < MAX_SEEN) {
            run.gen[run.n] = g;
            run.word[run.n++] = !strcmp(m, "old") ? 'o' : !strcmp(m, "new") ? 'n' : '?';
        }
        pthread_mutex_unlock(&run.mu);
    }
    return NULL;
}

/* Reloads as fast as it can (SIGHUP, the watcher); after each, the serving generation's files
 * must all be old or all new. */
static void *reloader(void *arg)
{
    (void)arg;
    while (!run.stop) {
        if (engine_reload(run.e) == 0)
            run.reloads++;
        struct engine_info *info = NULL;
        if (engine_info(run.e, &info) == 0) {
            int distinct = 0;
            const char *first = NULL;
            for (size_t i = 0; i < info->nrules; i++)
                if (strcmp(info->rules[i].offer_id, "default") != 0) {
                    distinct += first && strcmp(first, info->rules[i].sha256) != 0;
                    first = first ? first : info->rules[i].sha256;
                }
            run.mixed_info += distinct > 0;
            engine_info_free(info);
        }
    }
    return NULL;
}

/* 1 when no generation served both old and new texts; *words: 1 when both were seen at all. */
static int no_mix(int *both)
{
    int mixed = 0, old = 0, new = 0;
    for (size_t i = 0; i < run.n; i++) {
        old |= run.word[i] == 'o';
        new |= run.word[i] == 'n';
        for (size_t j = i + 1; j < run.n; j++)
            if (run.gen[j] == run.gen[i] && run.word[j] != run.word[i])
                mixed = 1;
    }
    *both = old && new;
    return !mixed;
}

static void test_promotion_during_traffic(void)
{
    char *live = check_tmpdir("promote-live"), *shadow = check_tmpdir("promote-shadow");
    write_rules(live, "old");
    write_rules(shadow, "new");
    check_write_file(live, "o1.html", "<p>landing page</p>\n");
    struct engine_options o = {.rules_dir = live, .states = 3};
    CHECK(engine_open(&o, &run.e) == 0 && engine_watch_start(run.e) == 0, "the live rules load and are watched");
    if (!run.e)
        return;
    pthread_t t[3];
    pthread_create(&t[0], NULL, caller, (void *)0);
    pthread_create(&t[1], NULL, caller, (void *)3);
    pthread_create(&t[2], NULL, reloader, NULL);
    usleep(300 * 1000);
    int copied = 0;
    int rc = rules_promote_dirs(run.e, shadow, live, &copied);
    usleep(300 * 1000);
    run.stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK(rc == 0 && copied == OFFERS, "the shadow's rule files are promoted");
    int both = 0;
    printf("# %zu calls, %d reloads during the promotion\n", run.n, run.reloads);
    CHECK(no_mix(&both) && both, "calls during the promotion saw all old or all new rules per generation, never a mix");
    CHECK(run.mixed_info == 0 && run.reloads > 0, "no reload beside the promotion loaded a mix of old and new files");
    CHECK(all_say(live, "new") && !strcmp(call(run.e, "o4", NULL), "new"), "after it, the new rules serve and are on disk");
    char prev[600];
    snprintf(prev, sizeof prev, "%s.previous", live);
    CHECK(!strcmp(text_of(live, "o1.html"), "<p>landing page</p>\n") && all_say(prev, "old"),
          "the live directory's landing page is carried over; the old rules are kept in <dir>.previous");

    /* the watcher now watches the new directory, not the one swapped out */
    char text[256];
    snprintf(text, sizeof text, RULE, "edited");
    check_write_file(live, "o2.lua", "%s", text);
    double until = check_now_ms() + 10000;
    while (strcmp(call(run.e, "o2", NULL), "edited") != 0 && check_now_ms() < until)
        usleep(100 * 1000);
    CHECK(!strcmp(call(run.e, "o2", NULL), "edited"), "an edit after the promotion is seen by the watcher and reloaded");

    /* a broken candidate: refused, the rules serving and on disk unchanged */
    check_write_file(shadow, "o3.lua", "return { provision = function( end }\n");
    char before[512];
    snprintf(before, sizeof before, "%s", text_of(live, "o3.lua"));
    rc = rules_promote_dirs(run.e, shadow, live, &copied);
    char staging[600];
    snprintf(staging, sizeof staging, "%s.promote-new", live);
    struct stat st;
    CHECK(rc == SAASD_ERULE && !strcmp(text_of(live, "o3.lua"), before) && !strcmp(call(run.e, "o3", NULL), "new") &&
              stat(staging, &st) != 0,
          "a candidate that does not load is refused: old rules serving and on disk, nothing left behind");
    engine_close(run.e);
    check_rm_rf(prev);
    check_rm_rf(live);
    check_rm_rf(shadow);
    free(live);
    free(shadow);
}

/* A crash is a stop between the steps; the restart loads whatever rules.dir names. */
static void test_crash_between_steps(void)
{
    char *live = check_tmpdir("crash-live"), *shadow = check_tmpdir("crash-shadow");
    write_rules(live, "old");
    write_rules(shadow, "new");
    struct promote_paths p;
    int copied = 0;
    CHECK(promote_paths(live, &p) == 0, "the promotion's paths fit");
    mkdir(p.staging, 0755); /* an earlier crash's half-built staging directory */
    check_write_file(p.staging, "o0.lua", "half a fi");
    CHECK(promote_stage(shadow, &p, &copied) == 0 && all_say(p.staging, "new") &&
              text_of(p.staging, "o0.lua")[0] == 'r',
          "staging replaces a crashed promotion's leftover with a complete copy");
    CHECK(all_say(live, "old"), "a crash after staging: the restart loads all the old rules");
    CHECK(promote_exchange(&p) == 0, "the swap is one renameat2(RENAME_EXCHANGE)");
    CHECK(all_say(live, "new") && all_say(p.staging, "old"),
          "a crash right after the swap: the restart loads all the new rules (the old ones are whole beside them)");
    struct engine_options o = {.rules_dir = live, .states = 1};
    struct engine *e = NULL;
    CHECK(engine_open(&o, &e) == 0 && !strcmp(call(e, "o5", NULL), "new"), "the restarted engine serves the new rules");
    engine_close(e);

    mkdir(p.staging, 0755);
    check_write_file(live, "README", "notes\n");
    char sub[700];
    snprintf(sub, sizeof sub, "%s/specs", live);
    mkdir(sub, 0755);
    o.rules_dir = live;
    CHECK(engine_open(&o, &e) == 0, "the engine opens on a directory with a sub-directory");
    int rc = rules_promote_dirs(e, shadow, live, &copied);
    CHECK(rc == SAASD_EINVAL && all_say(live, "new"), "a live directory with a sub-directory is not promoted over");
    engine_close(e);
    check_rm_rf(p.staging);
    check_rm_rf(live);
    check_rm_rf(shadow);
    free(live);
    free(shadow);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    test_promotion_during_traffic();
    test_crash_between_steps();
    return CHECK_DONE();
}
