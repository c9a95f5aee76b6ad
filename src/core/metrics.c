#include "core/metrics.h"
#include "core/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 12
static const double bucket_le[NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct series {
    char *name;
    char *labels;
    enum kind kind;
    double value;                 /* counter / gauge */
    _Atomic unsigned long long hits; /* counter increments through a handle (no lock) */
    unsigned long buckets[NBUCKETS];
    unsigned long count;
    double sum;
    struct series *next;          /* insertion order, grouped by name when rendering */
};

struct family {
    char *name, *type, *help;
    struct family *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series *all;
static struct series **tail = &all;
static struct family *families;

/* Lookup under lock; linear is fine: a few hundred series at most, and callers on hot paths
 * touch a handful of series whose nodes stay cache-hot. */
static struct series *find(const char *name, const char *labels, enum kind kind, int create)
{
    labels = labels ? labels : "";
    for (struct series *s = all; s; s = s->next)
        if (!strcmp(s->name, name) && !strcmp(s->labels, labels))
            return s;
    if (!create)
        return NULL;
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->name = strdup(name);
    s->labels = strdup(labels);
    if (!s->name || !s->labels) {
        free(s->name);
        free(s->labels);
        free(s);
        return NULL;
    }
    s->kind = kind;
    *tail = s;
    tail = &s->next;
    return s;
}

void metrics_describe(const char *name, const char *type, const char *help)
{
    pthread_mutex_lock(&lock);
    struct family *f;
    for (f = families; f; f = f->next)
        if (!strcmp(f->name, name))
            break;
    if (!f && (f = calloc(1, sizeof *f))) {
        f->name = strdup(name);
        f->type = strdup(type);
        f->help = strdup(help);
        f->next = families;
        families = f;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_add(const char *name, const char *labels, double delta)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, labels, KIND_COUNTER, 1);
    if (s)
        s->value += delta;
    pthread_mutex_unlock(&lock);
}

static void set_series(const char *name, const char *labels, enum kind kind, double value)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, labels, kind, 1);
    if (s)
        s->value = value;
    pthread_mutex_unlock(&lock);
}

void metrics_set(const char *name, const char *labels, double value)
{
    set_series(name, labels, KIND_GAUGE, value);
}

void metrics_counter_set(const char *name, const char *labels, double total)
{
    set_series(name, labels, KIND_COUNTER, total);
}

void metrics_observe(const char *name, const char *labels, double seconds)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, labels, KIND_HISTOGRAM, 1);
    if (s) {
        for (int i = 0; i < NBUCKETS; i++)
            if (seconds <= bucket_le[i])
                s->buckets[i]++;
        s->count++;
        s->sum += seconds;
    }
    pthread_mutex_unlock(&lock);
}

/* A counter's total: what metrics_add summed under the lock plus the handle's lock-free hits. */
static double value_of(const struct series *s)
{
    return s->value + (double)atomic_load_explicit(&s->hits, memory_order_relaxed);
}

struct metrics_counter *metrics_counter(const char *name, const char *labels)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, labels, KIND_COUNTER, 1);
    pthread_mutex_unlock(&lock);
    return (struct metrics_counter *)s;
}

void metrics_counter_inc(struct metrics_counter *c)
{
    if (c)
        atomic_fetch_add_explicit(&((struct series *)c)->hits, 1, memory_order_relaxed);
}

double metrics_value(const char *name, const char *labels)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, labels, KIND_COUNTER, 0);
    double v = s ? (s->kind == KIND_HISTOGRAM ? (double)s->count : value_of(s)) : 0;
    pthread_mutex_unlock(&lock);
    return v;
}

struct text {
    char *buf;
    size_t len, cap;
    int failed;
};

static void emit(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap : 4096) * 2 + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static void emit_family_header(struct text *t, const char *name, enum kind kind)
{
    for (struct family *f = families; f; f = f->next)
        if (!strcmp(f->name, name)) {
            emit(t, "# HELP %s %s\n# TYPE %s %s\n", name, f->help, name, f->type);
            return;
        }
    emit(t, "# HELP %s (undocumented)\n# TYPE %s %s\n", name, name,
         kind == KIND_COUNTER ? "counter" : kind == KIND_GAUGE ? "gauge" : "histogram");
}

int metrics_render(char **out, size_t *len)
{
    struct text t = {0};
    pthread_mutex_lock(&lock);
    /* Group series of one family together, in first-seen order of families. */
    for (struct series *s = all; s; s = s->next) {
        int seen = 0;
        for (struct series *p = all; p != s; p = p->next)
            if (!strcmp(p->name, s->name)) {
                seen = 1;
                break;
            }
        if (seen)
            continue;
        emit_family_header(&t, s->name, s->kind);
        for (struct series *m = s; m; m = m->next) {
            if (strcmp(m->name, s->name))
                continue;
            const char *sep = m->labels[0] ? "," : "";
            if (m->kind == KIND_HISTOGRAM) {
                for (int i = 0; i < NBUCKETS; i++)
                    emit(&t, "%s_bucket{%s%sle=\"%g\"} %lu\n", m->name, m->labels, sep, bucket_le[i], m->buckets[i]);
                emit(&t, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", m->name, m->labels, sep, m->count);
                const char *open = m->labels[0] ? "{" : "", *close = m->labels[0] ? "}" : "";
                emit(&t, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %lu\n", m->name, open, m->labels, close, m->sum, m->name,
                     open, m->labels, close, m->count);
            } else if (m->labels[0]) {
                emit(&t, "%s{%s} %.17g\n", m->name, m->labels, value_of(m));
            } else {
                emit(&t, "%s %.17g\n", m->name, value_of(m));
            }
        }
    }
    pthread_mutex_unlock(&lock);
    if (t.failed) {
        free(t.buf);
        return SAASD_ENOMEM;
    }
    if (!t.buf)
        t.buf = calloc(1, 1);
    *out = t.buf;
    *len = t.len;
    return t.buf ? 0 : SAASD_ENOMEM;
}
