/* Process-wide Prometheus metrics: counters, gauges and histograms identified by a name and a
 * label string (already in Prometheus form, e.g. `action="ChangePlan",outcome="accepted"`).
 * Thread-safe; series are created on first use and live until exit. Names and label strings
 * are copied. Rendering produces the text exposition format for /metrics. */
#ifndef SAASD_METRICS_H
#define SAASD_METRICS_H

#include <stddef.h>

/* Declare the help text of a metric family once (shown as # HELP; every family should have one). */
void metrics_describe(const char *name, const char *type, const char *help);

void metrics_add(const char *name, const char *labels, double delta);   /* counter */
#define metrics_inc(name, labels) metrics_add((name), (labels), 1.0)
void metrics_set(const char *name, const char *labels, double value);   /* gauge */
/* A counter whose running total a component keeps itself (e.g. store batches): set to that
 * total at scrape time, still exported as a counter. */
void metrics_counter_set(const char *name, const char *labels, double total);
/* Histogram over fixed latency buckets in seconds (1 ms .. 10 s). */
void metrics_observe(const char *name, const char *labels, double seconds);

/* A counter series looked up once, for hot paths: metrics_counter_inc is then one relaxed
 * atomic add (no lock, no label formatting, no lookup). The handle lives until exit; NULL only
 * when out of memory, and metrics_counter_inc(NULL) does nothing. A series set with
 * metrics_counter_set must not also be incremented through a handle. */
struct metrics_counter;
struct metrics_counter *metrics_counter(const char *name, const char *labels);
void metrics_counter_inc(struct metrics_counter *c);

/* Current value of a counter or gauge series (0 when it does not exist). For tests and health. */
double metrics_value(const char *name, const char *labels);

/* Append the exposition text to a malloc'd buffer (*out, caller frees). */
int metrics_render(char **out, size_t *len);

#endif
