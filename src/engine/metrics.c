/* Prometheus metrics of the engine: reloads, rule workers, calls by offer/handler/outcome, latency. The
 * offer label is the rule file's offer id ("default" for everything the default serves), so
 * its cardinality is bounded by the files in the rules directory. */
#include "core/err.h"
#include "engine/engine_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bucket_le[METRIC_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,   0.25,   0.5,   1,    2.5,   5};

void engine_metrics_record(struct engine *e, const char *rule_offer, enum rule_handler h,
                           enum rule_outcome o, double elapsed_ms)
{
    pthread_mutex_lock(&e->metrics_mu);
    struct metric_calls *m = NULL;
    for (size_t i = 0; i < e->ncalls; i++)
        if (e->calls[i].handler == h && e->calls[i].outcome == o && !strcmp(e->calls[i].offer, rule_offer)) {
            m = &e->calls[i];
            break;
        }
    if (!m) {
        if (e->ncalls == e->calls_cap) {
            size_t cap = e->calls_cap ? e->calls_cap * 2 : 32;
            struct metric_calls *nc = realloc(e->calls, cap * sizeof *nc);
            if (!nc)
                goto latency;
            e->calls = nc;
            e->calls_cap = cap;
        }
        m = &e->calls[e->ncalls++];
        snprintf(m->offer, sizeof m->offer, "%s", rule_offer);
        m->handler = h;
        m->outcome = o;
        m->count = 0;
    }
    m->count++;
latency:
    if ((unsigned)h < RULE_HANDLER_COUNT) {
        double s = elapsed_ms / 1000.0;
        for (int b = 0; b < METRIC_BUCKETS; b++)
            if (s <= bucket_le[b])
                e->latency_bucket[h][b]++;
        e->latency_count[h]++;
        e->latency_sum[h] += s;
    }
    pthread_mutex_unlock(&e->metrics_mu);
}

void engine_metrics_free(struct engine *e)
{
    free(e->calls);
    e->calls = NULL;
    e->ncalls = e->calls_cap = 0;
}

static int appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        size_t room = *cap - *len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return SAASD_EINVAL;
        if (*buf && (size_t)n < room) {
            *len += (size_t)n;
            return 0;
        }
        size_t ncap = (*cap ? *cap : 4096);
        while (ncap - *len <= (size_t)n)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return SAASD_ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
}

int engine_metrics(struct engine *e, char **buf, size_t *len, size_t *cap)
{
    int rc = 0;
    struct engine_info *info;
    if ((rc = engine_info(e, &info)) < 0)
        return rc;
    rc |= appendf(buf, len, cap,
                  "# HELP saasd_rule_generation Generation number of the rules in service.\n"
                  "# TYPE saasd_rule_generation gauge\nsaasd_rule_generation %llu\n"
                  "# HELP saasd_rule_reloads_total Rule reloads; failed ones kept the old rules.\n"
                  "# TYPE saasd_rule_reloads_total counter\n"
                  "saasd_rule_reloads_total{result=\"ok\"} %llu\n"
                  "saasd_rule_reloads_total{result=\"failed\"} %llu\n",
                  (unsigned long long)info->generation, (unsigned long long)info->reloads_ok,
                  (unsigned long long)info->reloads_failed);
    engine_info_free(info);
    pthread_mutex_lock(&e->pool_mu);
    int workers = e->nworkers;
    uint64_t replaced = e->workers_replaced;
    pthread_mutex_unlock(&e->pool_mu);
    rc |= appendf(buf, len, cap,
                  "# HELP saasd_rule_workers Rule worker processes alive.\n"
                  "# TYPE saasd_rule_workers gauge\nsaasd_rule_workers %d\n"
                  "# HELP saasd_rule_workers_replaced_total Rule workers killed at a deadline, crashed or "
                  "retired after a limit.\n"
                  "# TYPE saasd_rule_workers_replaced_total counter\nsaasd_rule_workers_replaced_total %llu\n",
                  workers, (unsigned long long)replaced);
    rc |= appendf(buf, len, cap,
                  "# HELP saasd_rule_store_reads_total Committed ctx.store reads of rules, by how they were "
                  "answered: from the values sent with the call (prefetched) or by a round trip (asked).\n"
                  "# TYPE saasd_rule_store_reads_total counter\n"
                  "saasd_rule_store_reads_total{source=\"prefetched\"} %llu\n"
                  "saasd_rule_store_reads_total{source=\"asked\"} %llu\n",
                  (unsigned long long)e->store_reads_prefetched, (unsigned long long)e->store_reads_asked);
    pthread_mutex_lock(&e->metrics_mu);
    rc |= appendf(buf, len, cap,
                  "# HELP saasd_rule_calls_total Rule handler calls by rule file, handler and outcome.\n"
                  "# TYPE saasd_rule_calls_total counter\n");
    for (size_t i = 0; rc == 0 && i < e->ncalls; i++)
        rc |= appendf(buf, len, cap, "saasd_rule_calls_total{offer=\"%s\",handler=\"%s\",outcome=\"%s\"} %llu\n",
                      e->calls[i].offer, rule_handler_name(e->calls[i].handler),
                      rule_outcome_name(e->calls[i].outcome), (unsigned long long)e->calls[i].count);
    rc |= appendf(buf, len, cap,
                  "# HELP saasd_rule_call_seconds Time of one rule handler call.\n"
                  "# TYPE saasd_rule_call_seconds histogram\n");
    for (int h = 0; rc == 0 && h < RULE_HANDLER_COUNT; h++) {
        if (!e->latency_count[h])
            continue;
        for (int b = 0; b < METRIC_BUCKETS; b++)
            rc |= appendf(buf, len, cap, "saasd_rule_call_seconds_bucket{handler=\"%s\",le=\"%g\"} %llu\n",
                          rule_handler_name((enum rule_handler)h), bucket_le[b],
                          (unsigned long long)e->latency_bucket[h][b]);
        rc |= appendf(buf, len, cap,
                      "saasd_rule_call_seconds_bucket{handler=\"%s\",le=\"+Inf\"} %llu\n"
                      "saasd_rule_call_seconds_sum{handler=\"%s\"} %.6f\n"
                      "saasd_rule_call_seconds_count{handler=\"%s\"} %llu\n",
                      rule_handler_name((enum rule_handler)h), (unsigned long long)e->latency_count[h],
                      rule_handler_name((enum rule_handler)h), e->latency_sum[h],
                      rule_handler_name((enum rule_handler)h), (unsigned long long)e->latency_count[h]);
    }
    pthread_mutex_unlock(&e->metrics_mu);
    return rc ? SAASD_ENOMEM : 0;
}
