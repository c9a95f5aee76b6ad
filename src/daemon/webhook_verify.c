/* The webhook token verification queue (see webhook_verify.h). One lock guards the FIFO of
 * pending tokens and the map from token hash to its group of waiting requests; RSA work runs
 * outside it. */
#include "daemon/webhook_verify.h"

#include "core/crypto.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/jwt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WV_BUCKETS 4096

struct wv_req {
    struct wv_req *next;
    const struct httpd_request *req;
    struct httpd_deferred *dfr;
};

/* Every request for one token: queued (in the FIFO) or being verified (taken by a thread). */
struct wv_group {
    struct wv_group *next_fifo, *next_bucket;
    uint8_t hash[CRYPTO_SHA256_LEN];
    char *token;
    size_t len;
    struct wv_req *reqs;
};

struct wv_queue {
    struct jwt_verifier *jwt;
    wv_done_fn done;
    void *arg;
    size_t cap, queued; /* requests queued or being verified */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct wv_group *head, *tail;
    struct wv_group *buckets[WV_BUCKETS];
    struct wv_stats stats;
    int stopping;
    pthread_t *threads;
    int nthreads;
};

static struct wv_group **bucket_of(struct wv_queue *q, const uint8_t *hash)
{
    return &q->buckets[(hash[0] | (unsigned)hash[1] << 8) % WV_BUCKETS];
}

static struct wv_group *find_group(struct wv_queue *q, const uint8_t *hash)
{
    for (struct wv_group *g = *bucket_of(q, hash); g; g = g->next_bucket)
        if (!memcmp(g->hash, hash, sizeof g->hash))
            return g;
    return NULL;
}

static void unlink_group(struct wv_queue *q, struct wv_group *g)
{
    for (struct wv_group **p = bucket_of(q, g->hash); *p; p = &(*p)->next_bucket)
        if (*p == g) {
            *p = g->next_bucket;
            return;
        }
}

/* Verify one group's token, then answer every request that joined it meanwhile: the group
 * leaves the map under the same lock that hands its requests over, so a request arriving
 * later finds the result in the verified-token cache instead. */
static void serve_group(struct wv_queue *q, struct wv_group *g)
{
    struct jwt_claims claims;
    memset(&claims, 0, sizeof claims);
    int rc = jwt_verify(q->jwt, g->token, g->len, &claims);
    pthread_mutex_lock(&q->lock);
    unlink_group(q, g);
    struct wv_req *reqs = g->reqs;
    pthread_mutex_unlock(&q->lock);
    size_t n = 0;
    while (reqs) {
        struct wv_req *r = reqs;
        reqs = r->next;
        q->done(q->arg, r->req, r->dfr, rc, &claims);
        free(r);
        n++;
    }
    pthread_mutex_lock(&q->lock);
    q->queued -= n;
    pthread_mutex_unlock(&q->lock);
    free(g->token);
    free(g);
}

static void *wv_main(void *arg)
{
    struct wv_queue *q = arg;
    pthread_setname_np(pthread_self(), "verify"); /* per-thread CPU in make bench */
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cond, &q->lock);
        struct wv_group *g = q->head;
        if (!g)
            break; /* stopping and drained */
        q->head = g->next_fifo;
        if (!q->head)
            q->tail = NULL;
        q->stats.verified++;
        pthread_mutex_unlock(&q->lock);
        serve_group(q, g);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* Join the group verifying this token, or queue a new one. Called with the lock held. */
static int enqueue(struct wv_queue *q, const uint8_t *hash, const char *token, size_t len, struct wv_req *r)
{
    struct wv_group *g = find_group(q, hash);
    if (g) {
        r->next = g->reqs;
        g->reqs = r;
        q->stats.joined++;
        return 0;
    }
    g = calloc(1, sizeof *g);
    if (!g || !(g->token = malloc(len + 1))) {
        free(g);
        return SAASD_ENOMEM;
    }
    memcpy(g->token, token, len);
    g->token[len] = 0;
    g->len = len;
    memcpy(g->hash, hash, sizeof g->hash);
    g->reqs = r;
    struct wv_group **b = bucket_of(q, hash);
    g->next_bucket = *b;
    *b = g;
    if (q->tail)
        q->tail->next_fifo = g;
    else
        q->head = g;
    q->tail = g;
    pthread_cond_signal(&q->cond);
    return 0;
}

int wv_submit(struct wv_queue *q, const struct httpd_request *req, const char *token, size_t len)
{
    uint8_t hash[CRYPTO_SHA256_LEN];
    int rc = crypto_sha256(token, len, hash);
    struct wv_req *r = rc ? NULL : calloc(1, sizeof *r);
    if (!r)
        return rc ? rc : SAASD_ENOMEM;
    r->req = req;
    pthread_mutex_lock(&q->lock);
    if (q->stopping)
        rc = SAASD_ECLOSED;
    else if (q->queued >= q->cap)
        rc = SAASD_EFULL;
    if (!rc) {
        /* Deferred under the lock: a thread may answer it as soon as the lock is released. */
        r->dfr = httpd_defer(req);
        rc = enqueue(q, hash, token, len, r);
        if (rc) {
            struct httpd_response res = {0};
            httpd_set_body(&res, 503, NULL, "{\"error\":{\"code\":\"Busy\",\"message\":\"retry\"}}");
            httpd_resume(r->dfr, &res);
            free(r);
            rc = 0; /* answered */
        } else {
            q->queued++;
        }
    } else {
        q->stats.refused += rc == SAASD_EFULL;
        free(r);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void wv_get_stats(struct wv_queue *q, struct wv_stats *out)
{
    pthread_mutex_lock(&q->lock);
    *out = q->stats;
    pthread_mutex_unlock(&q->lock);
}

int wv_start(struct jwt_verifier *jwt, int threads, size_t cap, wv_done_fn done, void *arg, struct wv_queue **out)
{
    struct wv_queue *q = calloc(1, sizeof *q);
    if (!q || !(q->threads = calloc((size_t)threads, sizeof *q->threads))) {
        free(q);
        return SAASD_ENOMEM;
    }
    q->jwt = jwt;
    q->done = done;
    q->arg = arg;
    q->cap = cap;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    for (; q->nthreads < threads; q->nthreads++)
        if (pthread_create(&q->threads[q->nthreads], NULL, wv_main, q) != 0)
            break;
    if (!q->nthreads) {
        wv_stop(q);
        return SAASD_EINTERNAL;
    }
    *out = q;
    return 0;
}

void wv_close(struct wv_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void wv_stop(struct wv_queue *q)
{
    if (!q)
        return;
    wv_close(q);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q->threads);
    free(q);
}
