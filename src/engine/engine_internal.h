/* Engine internals shared by engine.c, metrics.c and watch.c. Not for the daemon. */
#ifndef SAASD_ENGINE_INTERNAL_H
#define SAASD_ENGINE_INTERNAL_H

#include "engine/engine.h"
#include "engine/vm.h"
#include "engine/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* A generation: the rule texts read at one reload and the pool of states running them.
 * Freed when the engine has moved on and the last call on it returned (refs == 0). */
struct generation {
    uint64_t number;
    int refs;                   /* engine.mu */
    struct rule_file *files;    /* offer files sorted by name, then the default (last) */
    size_t nfiles;
    const struct rule_file *dflt;
    struct engine *e;
};

struct metric_calls {
    char offer[129];
    enum rule_handler handler;
    enum rule_outcome outcome;
    uint64_t count;
};

#define METRIC_BUCKETS 12

struct engine {
    struct engine_options opt;  /* strings point at the copies below */
    char *rules_dir;
    char **http_allow;
    char *worker_exe;

    pthread_mutex_t mu;
    struct generation *current;

    /* Rule workers, shared by all generations: a worker keeps one state per rule text it has
     * loaded (keyed by path and SHA-256), so a reload that changes one file reloads only it. */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct worker *free_workers;
    int nworkers;               /* alive: free + in use */
    uint64_t workers_replaced;  /* killed at a deadline, crashed, or retired after a limit */
    uint64_t generations;       /* numbers handed out */

    pthread_mutex_t reload_mu;
    /* written under reload_mu; atomic because engine_info (metrics, admin) reads them without it */
    _Atomic uint64_t reloads_ok, reloads_failed;

    _Atomic uint64_t store_reads_prefetched, store_reads_asked; /* ctx.store reads, by how answered */
    pthread_mutex_t metrics_mu;
    struct metric_calls *calls;
    size_t ncalls, calls_cap;
    uint64_t latency_bucket[RULE_HANDLER_COUNT][METRIC_BUCKETS];
    uint64_t latency_count[RULE_HANDLER_COUNT];
    double latency_sum[RULE_HANDLER_COUNT];

    /* reload_status.c: the last load's result, for engine_info (guarded by metrics_mu) */
    int last_load_rc;
    long long last_load_at;     /* epoch seconds */
    char *last_load_problems;   /* "file:line: message" lines of the last failed load, or NULL */
    char *building_problems;    /* collected while a generation is built (under reload_mu) */

    pthread_t watcher;
    int watching;
    int watch_stop[2];
    int watch_fd;
    int watch_wd;               /* the rules directory's watch on watch_fd */
};

void engine_options_defaults(struct engine_options *o);
int engine_offer_id_valid(const char *id, size_t len);
int engine_read_dir(const char *dir, struct rule_file **out, size_t *nout, engine_problem_fn problem,
                    void *arg);

void engine_metrics_record(struct engine *e, const char *rule_offer, enum rule_handler h,
                           enum rule_outcome o, double elapsed_ms);
void engine_metrics_free(struct engine *e);
void engine_note_problem(struct engine *e, const char *problem);
void engine_note_load(struct engine *e, int rc);
void engine_load_status_fill(struct engine *e, struct engine_info *info);
void engine_load_status_free(struct engine *e);
void engine_watch_stop(struct engine *e);
/* Watch whatever directory rules_dir names now (after a swap of the directory); no-op when not
 * watching. */
void engine_watch_rearm(struct engine *e);

#endif
