/* Full verification of webhook bearer tokens not yet in the verified-token cache, off the
 * public listener's event loop: a bounded queue served by a fixed set of threads, with each
 * distinct token verified once (single flight): requests carrying a token that is already
 * queued or being verified wait for that one result instead of queueing RSA work of their own.
 * A cold burst of fresh tokens is therefore queued, not refused; only a full queue answers 503.
 * The queue is its own: landing requests (another pool) cannot take its threads or its room. */
#ifndef SAASD_WEBHOOK_VERIFY_H
#define SAASD_WEBHOOK_VERIFY_H

#include <stddef.h>

struct httpd_request;
struct httpd_deferred;
struct jwt_claims;
struct jwt_verifier;
struct wv_queue;

/* Called on a queue thread once per request: rc is jwt_verify()'s result for the request's
 * token (claims valid when rc == 0). The callee answers dfr (exactly one httpd_resume). */
typedef void (*wv_done_fn)(void *arg, const struct httpd_request *req, struct httpd_deferred *dfr, int rc,
                           const struct jwt_claims *claims);

struct wv_stats {
    unsigned long long verified; /* jwt_verify calls: one per distinct token in flight */
    unsigned long long joined;   /* requests that waited for another request's verification */
    unsigned long long refused;  /* requests answered busy because the queue was full */
};

/* threads > 0; cap = most requests queued or being verified at once. */
int wv_start(struct jwt_verifier *jwt, int threads, size_t cap, wv_done_fn done, void *arg, struct wv_queue **out);
/* Queue req (whose headers the caller has read: token is copied). 0: the request is deferred
 * and done() will answer it. SAASD_EFULL: the queue is full, SAASD_ECLOSED: stopping; the
 * caller answers (the request is not deferred). */
int wv_submit(struct wv_queue *q, const struct httpd_request *req, const char *token, size_t len);
void wv_get_stats(struct wv_queue *q, struct wv_stats *out);
/* Refuse new work (wv_submit answers SAASD_ECLOSED); the threads go on answering what is
 * queued. The queue stays valid for wv_submit until wv_stop. */
void wv_close(struct wv_queue *q);
/* Close, answer everything already queued, join the threads and free the queue. */
void wv_stop(struct wv_queue *q);

#endif
