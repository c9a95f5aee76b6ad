/* The running daemon: every long-lived component and the threads that drive them.
 * One instance per process; its HTTP handlers, inbox workers and the reconciler receive it. */
#ifndef SAASD_DAEMON_H
#define SAASD_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

struct saasd_config;
struct store;
struct store_batch;
struct http_client;
struct token_cache;
struct mp_client;
struct jwt_verifier;
struct engine;
struct httpd;
struct httpd_request;
struct httpd_response;
struct oidc;
struct wv_queue;
struct service_watchdog;

/* Lock stripes of subscriptions (daemon_lock_sub). Many more than the inbox's lanes (16 per
 * worker), so that two events in flight rarely share one: an event whose stripe is busy waits
 * like one of a busy subscription (inbox.c). A multiple of 64 (reconcile.c's bit set). */
#define DAEMON_SUB_STRIPES 1024

/* Bounded pools for work off the public listener's event loop (daemon_off_loop). Each kind of
 * request has its own cap, so unauthenticated landing requests stuck behind Microsoft's
 * Retry-After cannot take the threads that verify webhooks, nor the other way round. */
enum daemon_pool {
    POOL_LANDING,        /* GET /landing: resolve, provision, activate (landing.threads) */
    POOL_WEBHOOK_VERIFY, /* unused by daemon_off_loop: fresh webhook tokens go to their own
                            bounded queue (webhook_verify.c, webhook.verify_threads threads) */
    POOL_PAGES,          /* /healthz and /metrics */
    DAEMON_POOL_COUNT
};

struct daemon {
    struct saasd_config *cfg;
    struct store *store;
    struct http_client *http;
    struct token_cache *tokens;
    struct mp_client *mp;
    struct jwt_verifier *jwt;
    struct engine *engine;
    struct oidc *_Atomic oidc;     /* buyer sign-in; set once the listener has its port */
    uint8_t session_key[32];       /* HMAC key of the landing session cookie (data_dir/session.key) */
    struct engine *shadow;         /* rules.shadow_dir's generation: decides beside the live one, acts on nothing */
    struct httpd *public_httpd;
    struct httpd *admin_httpd;
    int data_lock_fd;              /* flock on <data_dir>/saasd.lock: one daemon per data directory */

    /* work_lock guards claiming work (inbox.c's lanes per stripe) and the reconciler's sleep; work_cond
     * wakes the reconciler on stop. Idle workers sleep on wake_cond; a webhook only bumps
     * work_generation and takes wake_lock when a worker is actually asleep, so the ingest path
     * never waits behind a worker's inbox scan. */
    pthread_mutex_t work_lock;
    pthread_cond_t work_cond;
    pthread_mutex_t wake_lock;
    pthread_cond_t wake_cond;
    _Atomic int sleepers;
    _Atomic int stopping;
    _Atomic uint64_t work_generation;  /* bumped by new events and operator retries */
    _Atomic uint64_t done_generation;  /* bumped when a worker finishes an event */
    _Atomic uint64_t reset_generation; /* bumped by every wake-up except "events appended" */
    pthread_t *workers;
    int nworkers;
    struct passed_subs *passed_subs; /* inbox.c: subscriptions a scan passed over */
    pthread_t reconciler;
    int reconciler_started;
    pthread_t usage_reconciler;    /* usage_recon.c: usage_reconcile.interval */
    int usage_reconciler_started;
    pthread_t meterer;
    int meterer_started;
    pthread_t timer_thread;        /* timers.c: fires due ctx.timer timers */
    int timer_thread_started;
    struct sinks *sinks;           /* sinks.c: event delivery, one thread per sink */

    /* Landing page, admin actions and inbox events of one subscription never interleave. */
    pthread_mutex_t sub_locks[DAEMON_SUB_STRIPES];

    time_t started_at;
    _Atomic int pool_busy[DAEMON_POOL_COUNT]; /* requests being served off the loop, per pool */
    int pool_cap[DAEMON_POOL_COUNT];
    struct wv_queue *verifyq; /* webhook tokens not yet verified (webhook_verify.c) */
    struct service_watchdog *watchdog; /* service.c: pings systemd while /healthz answers; NULL without one */
};

/* Build every component from cfg (which the daemon then owns) and start listeners and threads. */
int daemon_start(struct saasd_config *cfg, struct daemon **out);
/* Stop listeners, finish in-flight work, close the store. */
void daemon_stop(struct daemon *d);

/* What SIGHUP does (reload.c): reload the rules (engine_reload) and read the publisher app's
 * Entra ID credential again from its files. A broken rule file or credential keeps the old
 * one in use (logged, counted). 0, or the first error. */
int daemon_reload(struct daemon *d);
/* The credential part alone: 0 (also when it comes from an environment variable, which cannot
 * change: a warning says so), or the error of a new credential that was refused. */
int daemon_reload_credential(struct daemon *d);
/* saasd_credential_certificate_expiry_timestamp_seconds from the certificate in use (none with
 * a secret): set at start and by every reload that installs a certificate. */
void daemon_note_certificate(const struct saasd_config *cfg);

/* Wake the inbox workers (an operator asked for a retry, anything changed): their next scan
 * starts over. */
void daemon_wake(struct daemon *d);
/* Wake them for events appended to the inbox and nothing else: a worker whose last scan found
 * nothing to do reads only the entries after the ones it passed over (inbox.c). */
void daemon_wake_appended(struct daemon *d);

/* Run job(d) every interval_s seconds on a thread of its own until the daemon stops (the
 * first run after one interval). *t receives the thread to join. 0 or SAASD_EINTERNAL. */
int daemon_every(struct daemon *d, int interval_s, void (*job)(struct daemon *d), pthread_t *t);
/* The same with the first run first_s seconds after the start. */
int daemon_every_after(struct daemon *d, int first_s, int interval_s, void (*job)(struct daemon *d), pthread_t *t);

/* Per-subscription critical section. */
void daemon_lock_sub(struct daemon *d, const char *sub_id);
void daemon_unlock_sub(struct daemon *d, const char *sub_id);
/* The lock stripe (index into sub_locks) of sub_id: for holding several subscriptions at once
 * without locking one stripe twice (reconcile.c). */
unsigned daemon_sub_stripe(const char *sub_id);

/* Run fn on a thread of its own, off the public listener's event loop, counted against pool,
 * and answer the request with what it writes into its response. arg (may be NULL) is copied:
 * read request headers before, since they may not be read once the request is deferred. When
 * the pool is full, res is filled with a 503 (Retry-After: 1) instead. */
typedef void (*daemon_off_loop_fn)(struct daemon *d, const struct httpd_request *req, const char *arg,
                                   struct httpd_response *res);
void daemon_off_loop(struct daemon *d, enum daemon_pool pool, const struct httpd_request *req, const char *arg,
                     daemon_off_loop_fn fn, struct httpd_response *res);

/* HTTP entry points (public listener and admin listener). */
void webhook_handle(struct daemon *d, const struct httpd_request *req, struct httpd_response *res);
/* /landing, /landing/callback, /landing/confirm, /landing/status; cookie = the request's
 * Cookie header (read before the request left the event loop), may be NULL. */
void landing_handle(struct daemon *d, const struct httpd_request *req, const char *cookie, struct httpd_response *res);
/* The verification queue's callback (wv_done_fn, arg = the daemon). */
struct httpd_deferred;
struct jwt_claims;
void webhook_verified(void *arg, const struct httpd_request *req, struct httpd_deferred *dfr, int rc,
                      const struct jwt_claims *claims);
void admin_handle(void *arg, const struct httpd_request *req, struct httpd_response *res);
/* metric_families.c: HELP/TYPE of every family, and the series that start at 0. */
void daemon_describe_metrics(void);
/* health.c: /healthz (liveness) and /readyz (readiness). */
void health_live(struct daemon *d, struct httpd_response *res);
void health_ready(struct daemon *d, struct httpd_response *res);

/* Inbox workers (inbox.c). */
int inbox_start(struct daemon *d);
/* Inbox and outbox entries looked at by the workers' scans since the process started. */
uint64_t inbox_entries_scanned(void);
void inbox_stop(struct daemon *d);

/* Reconciliation (reconcile.c): one pass; counts drift. Fills *drift when not NULL. */
int reconcile_once(struct daemon *d, int *drift);
int reconcile_start(struct daemon *d);
/* Count one difference from Microsoft in saasd_drift_total{kind} (kind: "status", "plan",
 * "usage_missing", ...). */
void reconcile_count_drift(const char *kind);

/* promote.c: make rules.shadow_dir's files the live rules: a complete new rules directory is
 * swapped in with one rename and the engine reloads from it under the same lock (one generation
 * swap; see promote.h). *copied: rule files promoted. SAASD_ENOTFOUND without a shadow,
 * SAASD_ERULE when the shadow does not load (nothing changed), SAASD_EINVAL, SAASD_EIO. */
int rules_promote(struct daemon *d, int *copied);

/* Records (records.c): local subscription records, operation records and the audit trail. */
/* The local record of a subscription (a JSON object, new reference) or SAASD_ENOTFOUND. */
int record_get_sub(struct daemon *d, const char *sub_id, json_t **out);
/* Append an audit entry for sub_id to batch: {time, op_id, action, decision, detail, rule file + sha256}. */
int record_audit(struct store_batch *b, const char *sub_id, json_t *entry);
/* The same for an entry already encoded (a JSON object ending with its "time_ms"). */
int record_audit_text(struct store_batch *b, const char *sub_id, const char *text, size_t len);
/* Serialize obj into batch under (db, key). */
int record_put_json(struct store_batch *b, int db, const char *key, json_t *obj);
/* The same when obj's member is value and value_json is value's compact text, already encoded
 * (the subscription view the rule was given): it is spliced in, not encoded again. The text is
 * json_dumps(obj, JSON_COMPACT) exactly (tests/test_call_record.c); when member is not value, or
 * value_json is NULL, obj is simply encoded. */
int record_put_spliced(struct store_batch *b, int db, const char *key, json_t *obj, const char *member, json_t *value,
                       const char *value_json);
int record_text_spliced(json_t *obj, const char *member, json_t *value, const char *value_json, char **out);
/* Take the parsed body out of a marketplace result (new reference owned by the caller). */
struct mp_result;
json_t *take_body(struct mp_result *r);
/* Wall clock in milliseconds. */
int64_t now_ms(void);

#endif
