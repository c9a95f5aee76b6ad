/* Store benchmark: N threads each commit small batches durably (fsync on) for a few seconds;
 * prints puts/s and how many batches shared each transaction (group commit).
 *   store_bench [threads=64] [seconds=3] [puts_per_batch=1] [append|spread]
 * append: 64-byte values appended to INBOX (sequential keys, like inbox/outbox/audit);
 * spread: 64-byte values under per-thread keys in RULE_KV (each batch dirties its own page). */
#include "core/err.h"
#include "core/log.h"
#include "core/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct bench {
    struct store *s;
    int puts_per_batch;
    int append;
    atomic_int stop;
    atomic_long puts, errors;
};

struct worker {
    struct bench *b;
    int id;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct store_batch *batch;
    char key[32], val[64];
    memset(val, 'v', sizeof val);
    if (store_batch_new(&batch))
        return NULL;
    for (unsigned long i = 0; !w->b->stop; i++) {
        store_batch_clear(batch);
        for (int j = 0; j < w->b->puts_per_batch; j++) {
            if (w->b->append) {
                store_batch_append(batch, STORE_INBOX, NULL, 0, val, sizeof val);
                continue;
            }
            int n = snprintf(key, sizeof key, "w%03d-%09lu-%02d", w->id, i, j);
            store_batch_put(batch, STORE_RULE_KV, key, (size_t)n, val, sizeof val);
        }
        if (store_commit(w->b->s, batch) == 0)
            w->b->puts += w->b->puts_per_batch;
        else
            w->b->errors++;
    }
    store_batch_free(batch);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 64;
    double seconds = argc > 2 ? atof(argv[2]) : 3;
    int per_batch = argc > 3 ? atoi(argv[3]) : 1;
    const char *mode = argc > 4 ? argv[4] : "append";
    if (threads < 1 || threads > 4096 || seconds <= 0 || per_batch < 1 ||
        (strcmp(mode, "append") && strcmp(mode, "spread"))) {
        fprintf(stderr, "usage: store_bench [threads] [seconds] [puts_per_batch] [append|spread]\n");
        return 2;
    }
    char dir[] = "/tmp/saasd-store-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    log_set_level(LOG_WARN);
    struct bench b = {.puts_per_batch = per_batch, .append = !strcmp(mode, "append")};
    int rc = store_open(dir, NULL, &b.s);
    if (rc) {
        fprintf(stderr, "store_open: %s\n", saasd_strerror(rc));
        return 1;
    }
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    struct worker *w = calloc((size_t)threads, sizeof *w);
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){&b, i};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    usleep((useconds_t)(seconds * 1e6));
    b.stop = 1;
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    struct store_stats st;
    store_get_stats(b.s, &st);
    printf("mode=%s threads=%d puts_per_batch=%d seconds=%.2f puts=%ld errors=%ld\n", mode,
           threads, per_batch, dt, (long)b.puts, (long)b.errors);
    printf("puts/s=%.0f batches=%llu transactions=%llu batches/txn=%.1f (durable, fsync on)\n",
           (double)b.puts / dt, (unsigned long long)st.batches, (unsigned long long)st.transactions,
           (double)st.batches / (double)(st.transactions ? st.transactions : 1));
    store_close(b.s);
    char p[128];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
    free(t);
    free(w);
    return 0;
}
