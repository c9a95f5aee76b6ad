/* Rule call latency (not a test): every rule file of a directory, every decision handler,
 * called N times through engine_call with its limits armed; prints p50 and p99. */
#include "core/err.h"
#include "core/log.h"
#include "engine/engine.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "rules";
    int n = argc > 2 ? atoi(argv[2]) : 2000;
    log_set_level(LOG_ERROR);
    struct engine_options o = {.rules_dir = dir};
    struct engine *e = NULL;
    if (engine_open(&o, &e) != 0) {
        fprintf(stderr, "rule_bench: cannot load %s\n", dir);
        return 1;
    }
    const char *sub = "{\"id\":\"5f0a2c1e-1111-4111-8111-111111111111\",\"offerId\":\"x\",\"planId\":\"basic\","
                      "\"quantity\":10,\"saasSubscriptionStatus\":\"Subscribed\",\"term\":{\"termUnit\":\"P1M\","
                      "\"startDate\":\"2026-01-01T00:00:00Z\",\"endDate\":\"2026-01-31T00:00:00Z\"}}";
    const char *change = "{\"id\":\"op-1\",\"action\":\"ChangeQuantity\",\"planId\":\"standard\",\"quantity\":12,"
                         "\"status\":\"InProgress\",\"operationRequestSource\":\"Azure\"}";
    const char *usage = "{\"dimension\":\"api-calls\",\"quantity\":25,\"time\":\"2026-01-10T09:15:00Z\"}";
    const enum rule_handler handlers[] = {RULE_PROVISION, RULE_CHANGE_PLAN, RULE_CHANGE_QUANTITY, RULE_USAGE};
    double *samples = malloc(sizeof(double) * (size_t)n);
    DIR *dd = opendir(dir);
    struct dirent *de;
    printf("  %-22s %-16s %10s %10s\n", "offer", "handler", "p50 us", "p99 us");
    while (dd && (de = readdir(dd))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".lua"))
            continue;
        char offer[256];
        snprintf(offer, sizeof offer, "%.*s", (int)(len - 4), de->d_name);
        for (size_t h = 0; h < sizeof handlers / sizeof handlers[0]; h++) {
            for (int i = 0; i < n; i++) {
                struct rule_result r;
                double t0 = now_us();
                const char *arg = handlers[h] == RULE_PROVISION ? NULL : handlers[h] == RULE_USAGE ? usage : change;
                engine_call(e, offer, handlers[h], sub, arg, NULL, &r);
                samples[i] = now_us() - t0;
                rule_result_free(&r);
            }
            qsort(samples, (size_t)n, sizeof *samples, cmp_double);
            printf("  %-22s %-16s %10.1f %10.1f\n", offer, rule_handler_name(handlers[h]), samples[n / 2],
                   samples[n * 99 / 100]);
        }
    }
    if (dd)
        closedir(dd);
    free(samples);
    engine_close(e);
    return 0;
}
