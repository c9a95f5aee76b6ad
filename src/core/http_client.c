#include "core/http_client.h"
#include "core/clock.h"
#include "core/err.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOL_MAX 128 /* inbox lanes (inbox.c) each hold a handle while an event is in flight */

/* An easy handle and the multi handle that drives it. The multi keeps the live connections (as
 * curl_easy_perform's hidden one would) and is driven through its socket interface: libcurl
 * says which sockets and timeout it waits for, one poll() here waits for them, and
 * curl_multi_socket_action is told what poll() saw. Driven with curl_multi_perform instead,
 * libcurl polls the connection itself (timeout 0) on every call before it reads, which was two
 * poll() per request for nothing on top of the wait. Heap-allocated: libcurl keeps its
 * address for the callbacks. */
#define CONN_SOCKS 4 /* a request's sockets at once (happy eyeballs: two; the resolver's pipe) */

struct watched {
    curl_socket_t fd;
    int what; /* CURL_POLL_IN, _OUT, _INOUT */
};

struct conn {
    CURL *easy;
    CURLM *multi;
    struct watched socks[CONN_SOCKS];
    int nsocks;
    long long deadline_ms; /* libcurl's timer (monotonic ms), -1 = none */
};

struct http_client {
    struct http_client_options opt;
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    pthread_mutex_t pool_lock;
    struct conn *pool[POOL_MAX]; /* idle handles: each keeps its own live connections */
    int npool;
};

static void conn_free(struct conn *k);
static size_t on_body(char *p, size_t size, size_t n, void *arg);
static size_t on_header(char *p, size_t size, size_t n, void *arg);

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* The one translator from libcurl's codes to ours. */
static int curl_error(CURLcode c)
{
    switch (c) {
    case CURLE_OK: return 0;
    case CURLE_OPERATION_TIMEDOUT: return SAASD_ETIMEOUT;
    case CURLE_OUT_OF_MEMORY: return SAASD_ENOMEM;
    case CURLE_WRITE_ERROR: return SAASD_ETOOBIG; /* only our write callback refuses data */
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return SAASD_EINVAL;
    default: return SAASD_EIO; /* refused, reset, DNS, TLS, empty reply */
    }
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
    struct http_client *c = arg;
    pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
    struct http_client *c = arg;
    pthread_mutex_unlock(&c->share_locks[data]);
}

int http_client_new(const struct http_client_options *opt, struct http_client **out)
{
    pthread_once(&global_once, global_init);
    struct http_client *c = calloc(1, sizeof *c);
    if (!c)
        return SAASD_ENOMEM;
    if (opt)
        c->opt = *opt;
    if (!c->opt.connect_timeout_ms)
        c->opt.connect_timeout_ms = 3000;
    if (!c->opt.timeout_ms)
        c->opt.timeout_ms = 10000;
    if (!c->opt.max_response)
        c->opt.max_response = 8u << 20;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    pthread_mutex_init(&c->pool_lock, NULL);
    c->share = curl_share_init();
    if (!c->share) {
        http_client_free(c);
        return SAASD_ENOMEM;
    }
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    *out = c;
    return 0;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->npool; i++)
        conn_free(c->pool[i]);
    if (c->share)
        curl_share_cleanup(c->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    pthread_mutex_destroy(&c->pool_lock);
    free(c);
}

static void conn_free(struct conn *k)
{
    if (!k)
        return;
    if (k->multi)
        curl_multi_cleanup(k->multi);
    if (k->easy)
        curl_easy_cleanup(k->easy);
    free(k);
}

/* libcurl: wait for what on s (or stop watching it). */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct conn *k = userp;
    int i = 0;
    while (i < k->nsocks && k->socks[i].fd != s)
        i++;
    if (what == CURL_POLL_REMOVE) {
        if (i < k->nsocks)
            k->socks[i] = k->socks[--k->nsocks];
        return 0;
    }
    if (i == k->nsocks) {
        if (k->nsocks == CONN_SOCKS)
            return -1; /* more sockets than one request ever uses: libcurl fails the transfer */
        k->nsocks++;
    }
    k->socks[i] = (struct watched){s, what};
    return 0;
}

/* libcurl: call back with CURL_SOCKET_TIMEOUT in timeout_ms (-1: no timer). */
static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct conn *k = userp;
    k->deadline_ms = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    return 0;
}

static struct conn *conn_new(void)
{
    struct conn *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->deadline_ms = -1;
    k->easy = curl_easy_init();
    k->multi = curl_multi_init();
    if (!k->easy || !k->multi) {
        conn_free(k);
        return NULL;
    }
    curl_multi_setopt(k->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(k->multi, CURLMOPT_SOCKETDATA, k);
    curl_multi_setopt(k->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(k->multi, CURLMOPT_TIMERDATA, k);
    return k;
}

/* The options every request of this client has, set once per handle: a handle is not reset
 * between requests (curl_easy_reset and setting them all again cost more than the request's
 * own work in libcurl); http_client_do sets every option that varies, each time. */
static void conn_setup(const struct http_client *c, CURL *h)
{
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opt.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
}

static int handle_take(struct http_client *c, struct conn **out)
{
    *out = NULL;
    pthread_mutex_lock(&c->pool_lock);
    if (c->npool > 0)
        *out = c->pool[--c->npool];
    pthread_mutex_unlock(&c->pool_lock);
    if (*out)
        return 0; /* the connections stay in the multi handle */
    *out = conn_new();
    if (*out)
        conn_setup(c, (*out)->easy);
    return *out ? 0 : SAASD_ENOMEM;
}

static void handle_give_back(struct http_client *c, struct conn *k)
{
    int kept = 0;
    pthread_mutex_lock(&c->pool_lock);
    if (c->npool < POOL_MAX) {
        c->pool[c->npool++] = k;
        kept = 1;
    }
    pthread_mutex_unlock(&c->pool_lock);
    if (!kept)
        conn_free(k);
}

/* One wait for what libcurl waits for, then what it saw: the sockets poll() found ready, or
 * the timer when none was (capped at a second; the transfer's own timeouts end it). */
static CURLMcode step(struct conn *k, int *running)
{
    long long wait = k->deadline_ms < 0 ? 1000 : k->deadline_ms - mono_ms();
    if (wait <= 0)
        return curl_multi_socket_action(k->multi, CURL_SOCKET_TIMEOUT, 0, running);
    struct pollfd pfd[CONN_SOCKS];
    int n = k->nsocks;
    for (int i = 0; i < n; i++)
        pfd[i] = (struct pollfd){.fd = k->socks[i].fd,
                                 .events = (short)((k->socks[i].what & CURL_POLL_IN ? POLLIN : 0) |
                                                   (k->socks[i].what & CURL_POLL_OUT ? POLLOUT : 0))};
    int ready = poll(pfd, (nfds_t)n, (int)(wait > 1000 ? 1000 : wait));
    if (ready < 0)
        return errno == EINTR ? CURLM_OK : CURLM_INTERNAL_ERROR;
    if (ready == 0)
        return curl_multi_socket_action(k->multi, CURL_SOCKET_TIMEOUT, 0, running);
    CURLMcode mc = CURLM_OK;
    for (int i = 0; i < n && mc == CURLM_OK; i++) {
        int bits = (pfd[i].revents & (POLLIN | POLLHUP) ? CURL_CSELECT_IN : 0) |
                   (pfd[i].revents & POLLOUT ? CURL_CSELECT_OUT : 0) |
                   (pfd[i].revents & (POLLERR | POLLNVAL) ? CURL_CSELECT_ERR : 0);
        if (bits)
            mc = curl_multi_socket_action(k->multi, pfd[i].fd, bits, running);
    }
    return mc;
}

/* curl_easy_perform's loop over the socket interface, acting first: adding the transfer sets
 * libcurl's timer to now, so the request is sent (on a kept connection) before any wait. */
static CURLcode perform(struct conn *k)
{
    CURLMcode mc = curl_multi_add_handle(k->multi, k->easy);
    if (mc != CURLM_OK)
        return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    int running = 1;
    mc = curl_multi_socket_action(k->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    while (mc == CURLM_OK && running)
        mc = step(k, &running);
    CURLcode res = mc == CURLM_OK ? CURLE_OK : mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_RECV_ERROR;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(k->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == k->easy)
            res = msg->data.result;
    curl_multi_remove_handle(k->multi, k->easy);
    return res;
}

struct sink {
    char *data;
    size_t len, cap, max;
};

static int sink_add(struct sink *s, const char *p, size_t n)
{
    if (s->len + n > s->max)
        return -1;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *d = realloc(s->data, cap);
        if (!d)
            return -1;
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
    s->data[s->len] = 0;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return sink_add(arg, p, size * n) ? 0 : size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    if (size * n >= 5 && !strncmp(p, "HTTP/", 5))
        s->len = 0; /* a new response (after 100-continue): keep only the final headers */
    return sink_add(s, p, size * n) ? 0 : size * n;
}

int http_client_do(struct http_client *c, const struct http_request *req, struct http_response *out)
{
    memset(out, 0, sizeof *out);
    struct sink body = {.max = c->opt.max_response};
    struct sink head = {.max = 64 * 1024};
    struct curl_slist *hdrs = NULL;
    struct conn *k;
    int rc = handle_take(c, &k);
    if (rc)
        return rc;
    CURL *h = k->easy;

    for (size_t i = 0; i < req->nheaders; i++) {
        char line[8192];
        snprintf(line, sizeof line, "%s: %s", req->headers[i].name, req->headers[i].value);
        struct curl_slist *n = curl_slist_append(hdrs, line);
        if (!n) {
            rc = SAASD_ENOMEM;
            goto fail;
        }
        hdrs = n;
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */

    /* every option a request may change (conn_setup: the handle is not reset in between) */
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : c->opt.timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &head);
    const char *method = req->method ? req->method : "GET";
    if (req->body || strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L); /* a previous request's body and method are gone */
    }
    int custom = strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0;
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, custom ? method : NULL);

    rc = curl_error(perform(k));
    if (rc == 0)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
fail:
    curl_slist_free_all(hdrs);
    handle_give_back(c, k);
    out->body = body.data ? body.data : calloc(1, 1);
    out->body_len = body.len;
    out->headers = head.data ? head.data : calloc(1, 1);
    if (rc != 0)
        out->status = 0;
    return rc;
}

const char *http_response_header(const struct http_response *r, const char *name, char *buf, size_t size)
{
    const char *found = NULL;
    size_t nlen = strlen(name), flen = 0;
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            found = p + nlen + 1;
            flen = len - nlen - 1;
        }
        p += len + (eol ? 1 : 0);
    }
    if (!found || size == 0)
        return NULL;
    while (flen && (*found == ' ' || *found == '\t')) {
        found++;
        flen--;
    }
    while (flen && (found[flen - 1] == '\r' || found[flen - 1] == ' '))
        flen--;
    if (flen >= size)
        flen = size - 1;
    memcpy(buf, found, flen);
    buf[flen] = 0;
    return buf;
}

void http_response_free(struct http_response *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

int http_url_escape(const char *s, char **out)
{
    char *enc = curl_easy_escape(NULL, s, 0);
    *out = enc ? strdup(enc) : NULL;
    curl_free(enc);
    return *out ? 0 : SAASD_ENOMEM;
}
