/* 1000 reloads while handlers run: every result is self-consistent (its message, hash and
 * generation all come from one generation), and memory does not grow. mk/lua.mk also builds
 * this program with AddressSanitizer + LeakSanitizer as build/tests/test_engine_asan. */
#include "check.h"
#include "core/crypto.h"
#include "core/log.h"
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define RELOADS 1000
#define CALLERS 2

#ifdef __SANITIZE_ADDRESS__
/* Keep ASan's quarantine small so resident memory reflects what the engine holds. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "quarantine_size_mb=8:detect_leaks=1"; }
#endif

static char dir[256];
static char shas[2][65]; /* the two versions of a.lua and their hashes */
static atomic_int stop;
static atomic_long calls, inconsistent, failures;

static const char *version_text(int v)
{
    /* b.lua is rewritten together with a.lua; a half-loaded generation would pair them wrong */
    return v ? "return { provision = function() return { action = 'activate', message = 'v1' } end }\n"
             : "return { provision = function() return { action = 'reject', message = 'v0' } end }\n";
}

static void write_version(int v)
{
    char path[300], tmp[300];
    const char *names[] = {"a.lua", "b.lua"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, names[i]);
        FILE *f = fopen(tmp, "w");
        fputs(version_text(v), f);
        fclose(f);
        rename(tmp, path);
    }
}

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *caller(void *arg)
{
    struct engine *e = arg;
    const char *sub = "{\"id\":\"s1\",\"offerId\":\"a\",\"planId\":\"p\"}";
    while (!stop) {
        struct rule_result ra, rb;
        int rc1 = engine_call(e, "a", RULE_PROVISION, sub, NULL, NULL, &ra);
        int rc2 = engine_call(e, "b", RULE_PROVISION, sub, NULL, NULL, &rb);
        if (rc1 || rc2) {
            failures++;
        } else {
            int va = ra.message && ra.message[1] == '1';
            /* message, action and hash must all belong to the same version */
            if (strcmp(ra.sha256, shas[va]) != 0 || (ra.action == RULE_ACTION_ACTIVATE) != va)
                inconsistent++;
            if (ra.generation == rb.generation && strcmp(ra.sha256, rb.sha256) != 0)
                inconsistent++; /* same generation, different texts: half-loaded */
        }
        rule_result_free(&ra);
        rule_result_free(&rb);
        calls++;
    }
    return NULL;
}

int main(void)
{
    log_set_level(LOG_ERROR);
    snprintf(dir, sizeof dir, "%s/saasd-test-reload-XXXXXX", getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    for (int v = 0; v < 2; v++)
        crypto_sha256_hex(version_text(v), strlen(version_text(v)), shas[v]);
    write_version(0);
    struct engine_options opt = {.rules_dir = dir, .cpu_ms = 1000, .memory = 4u << 20, .states = 2};
    struct engine *e;
    if (engine_open(&opt, &e) < 0) {
        CHECK(0, "the reload test's rules load");
        return CHECK_DONE();
    }
    pthread_t t[CALLERS];
    for (int i = 0; i < CALLERS; i++)
        pthread_create(&t[i], NULL, caller, e);
    int reload_failures = 0;
    long rss_early = 0;
    for (int i = 1; i <= RELOADS; i++) {
        write_version(i & 1);
        if (engine_reload(e) != 0)
            reload_failures++;
        if (i == 100)
            rss_early = rss_kib();
    }
    long rss_late = rss_kib();
    stop = 1;
    for (int i = 0; i < CALLERS; i++)
        pthread_join(t[i], NULL);
    struct engine_info *info;
    engine_info(e, &info);
    printf("# %ld calls, generation %llu, rss %ld KiB after 100 reloads, %ld KiB after %d\n", (long)calls,
           (unsigned long long)info->generation, rss_early, rss_late, RELOADS);
    CHECK(reload_failures == 0 && info->generation == RELOADS + 1, "1000 reloads all swap in");
    CHECK(calls > 0 && failures == 0, "handlers keep answering during 1000 reloads");
    CHECK(inconsistent == 0, "1000 reloads while handlers run never expose a half-loaded generation");
    CHECK(info->live_generations == 1 && info->live_states <= opt.states,
          "old generations and their states are freed once their calls finish");
    CHECK(rss_late - rss_early < 16 * 1024, "1000 reloads do not grow memory");
    engine_info_free(info);
    engine_close(e);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return CHECK_DONE();
}
