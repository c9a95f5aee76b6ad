/* Replay speed (not a test): copies the RuleCall records of a store (e.g. the demo's, var/demo)
 * COPIES times into a fresh store, replays them against CANDIDATE_DIR with engine_replay (the
 * same path as `saasd rules replay`, two rule workers) and prints decisions/s and the CPU time per
 * decision, daemon side and rule workers together.
 * Usage: build/bench/replay_bench SRC_DATA_DIR CANDIDATE_DIR [COPIES (default 200)] */
#include "core/err.h"
#include "core/log.h"
#include "core/store.h"
#include "daemon/daemon.h"
#include "engine/engine.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int keep(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    json_t *e = json_loadb(val, vlen, 0, NULL);
    const char *a = json_string_value(json_object_get(e, "action"));
    if (a && !strcmp(a, "RuleCall"))
        json_array_append(arg, e);
    json_decref(e);
    return 0;
}

static double cpu_s(void)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids); /* rule workers, once reaped */
    return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
           (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SRC_DATA_DIR CANDIDATE_DIR [COPIES]\n", argv[0]);
        return 2;
    }
    int copies = argc > 3 ? atoi(argv[3]) : 200;
    log_set_level(LOG_ERROR);
    struct store *src = NULL, *dst = NULL;
    json_t *calls = json_array();
    char dir[] = "/tmp/saasd-replay-bench-XXXXXX";
    if (store_open(argv[1], NULL, &src) != 0 || !mkdtemp(dir)) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    store_scan(src, STORE_AUDIT, NULL, 0, keep, calls);
    store_close(src);
    struct store_options so = {.no_sync = 1};
    store_open(dir, &so, &dst);
    size_t i;
    json_t *rec;
    for (int k = 0; k < copies; k++) {
        struct store_batch *b = NULL;
        store_batch_new(&b);
        json_array_foreach(calls, i, rec) {
            json_t *copy = json_deep_copy(rec);
            record_audit(b, json_string_value(json_object_get(json_object_get(json_object_get(copy, "input"), "sub"), "id")),
                         copy);
            json_decref(copy);
        }
        store_commit(dst, b);
        store_batch_free(b);
    }
    struct replay_options ro = {argv[2], 0, NULL, 2000, 0, ENGINE_HTTP_RECORDED};
    json_t *rep = NULL;
    double c0 = cpu_s();
    int rc = engine_replay(dst, &ro, &rep); /* closes its engine: the workers are reaped */
    double cpu = cpu_s() - c0;
    if (rc == 0) {
        long long n = json_integer_value(json_object_get(rep, "calls"));
        double secs = json_number_value(json_object_get(rep, "seconds"));
        printf("replay: %lld decisions (%zu recorded x %d), %lld differ, %.2f s, %.0f decisions/s, %.0f us CPU per decision\n",
               n, json_array_size(calls), copies, (long long)json_integer_value(json_object_get(rep, "differ")), secs,
               secs > 0 ? (double)n / secs : 0.0, n ? cpu * 1e6 / (double)n : 0.0);
    } else {
        fprintf(stderr, "replay failed: %s\n", saasd_strerror(rc));
    }
    json_decref(rep);
    json_decref(calls);
    store_close(dst);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    return rc ? 1 : 0;
}
