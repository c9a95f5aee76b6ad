#include "core/httpd.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One open connection, for the request deadline. It lives from libmicrohttpd's STARTED to its
 * CLOSED notification. MHD closes the socket only after CLOSED returns (MHD_cleanup_connections
 * and the per-connection thread both notify first, then close), and CLOSED unlinks the entry
 * under track_lock; the reaper shuts sockets down only under that lock. So the reaper never
 * touches a descriptor that was closed and perhaps reused for another connection. */
struct conn_track {
    struct conn_track *prev, *next;
    int fd;
    long long since_ms;  /* connection opened, or the previous answer on it finished */
    _Atomic int handled; /* the request is in: handed to the handler or answered */
    int shut;            /* the reaper shut it down already */
};

struct httpd {
    struct MHD_Daemon *mhd;
    httpd_handler handler;
    void *arg;
    size_t max_body;
    unsigned short port;
    _Atomic int outstanding; /* deferred requests not yet answered */
    /* request deadline (request_deadline_s > 0 only) */
    long long deadline_ms;
    pthread_mutex_t track_lock;
    pthread_cond_t track_cond; /* wakes the reaper to stop */
    struct conn_track *tracked;
    pthread_t reaper;
    int reaper_started, stopping;
};

#define HTTPD_CONNECTION_MEMORY (20 * 1024)

struct query_arg {
    char *name;
    char *value;
};

struct httpd_request {
    struct httpd *d;
    struct MHD_Connection *conn;
    struct conn_track *track; /* NULL without a request deadline */
    char *uri;         /* raw request target as received */
    char *path;
    const char *raw_query;
    const char *method;
    char *body;
    size_t body_len, body_cap;
    size_t announced; /* Content-Length, when given and within max_body */
    int too_big;
    int started;
    /* Deferred answer: set by httpd_defer, answered by httpd_resume (any thread). */
    pthread_mutex_t defer_lock;
    int deferred, answered, suspended;
    struct httpd_response answer;
    struct query_arg *args;
    size_t nargs;
    int args_parsed;
    char ip[INET6_ADDRSTRLEN];
};

static struct conn_track *track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct httpd *d = cls;
    struct conn_track *t = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        t = ci ? calloc(1, sizeof *t) : NULL;
        *socket_context = t;
        if (!t)
            return; /* untracked: only the idle timeout applies to it */
        t->fd = ci->connect_fd;
        t->since_ms = mono_ms();
        pthread_mutex_lock(&d->track_lock);
        t->next = d->tracked;
        if (t->next)
            t->next->prev = t;
        d->tracked = t;
        pthread_mutex_unlock(&d->track_lock);
        return;
    }
    if (!t)
        return;
    pthread_mutex_lock(&d->track_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        d->tracked = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&d->track_lock);
    free(t);
    *socket_context = NULL;
}

/* Closes connections whose request is still not in after the deadline, however steadily they
 * trickle bytes. shutdown() (not close: the descriptor stays MHD's) makes MHD see the end of
 * the stream and close the connection itself. */
static void *reaper_main(void *arg)
{
    struct httpd *d = arg;
    pthread_mutex_lock(&d->track_lock);
    while (!d->stopping) {
        long long now = mono_ms();
        for (struct conn_track *t = d->tracked; t; t = t->next) {
            if (t->shut || t->handled || now - t->since_ms < d->deadline_ms)
                continue;
            shutdown(t->fd, SHUT_RDWR);
            t->shut = 1;
            metrics_inc("saasd_http_request_deadline_closed_total", NULL);
        }
        struct timespec until;
        clock_after_ms(CLOCK_REALTIME, 200, &until);
        pthread_cond_timedwait(&d->track_cond, &d->track_lock, &until);
    }
    pthread_mutex_unlock(&d->track_lock);
    return NULL;
}

/* The request is in full (or answered early): the deadline no longer applies to it. */
static void mark_handled(struct httpd_request *r)
{
    if (r->track)
        r->track->handled = 1;
}

/* MHD hands us the raw URI before it unescapes anything; we keep it so that query values are
 * decoded exactly once and '+' survives (MHD's own argument parser turns '+' into a space). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct httpd_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->d = cls;
    r->conn = conn;
    r->track = r->d->deadline_ms ? track_of(conn) : NULL;
    pthread_mutex_init(&r->defer_lock, NULL);
    r->uri = strdup(uri ? uri : "/");
    if (!r->uri) {
        free(r);
        return NULL;
    }
    char *q = strchr(r->uri, '?');
    r->path = strndup(r->uri, q ? (size_t)(q - r->uri) : strlen(r->uri));
    r->raw_query = q ? q + 1 : "";
    return r;
}

static void request_free(struct httpd_request *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nargs; i++) {
        free(r->args[i].name);
        free(r->args[i].value);
    }
    free(r->args);
    free(r->body);
    free(r->path);
    free(r->uri);
    pthread_mutex_destroy(&r->defer_lock);
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct httpd *d = cls;
    request_free(*con_cls);
    *con_cls = NULL;
    struct conn_track *t = d->deadline_ms ? track_of(conn) : NULL;
    if (t) {
        /* a kept-alive connection gets the full deadline again for its next request */
        pthread_mutex_lock(&d->track_lock);
        t->since_ms = mono_ms();
        t->handled = 0;
        pthread_mutex_unlock(&d->track_lock);
    }
}

struct stream_ctx {
    long (*fn)(void *arg, char *buf, size_t max);
    void (*done)(void *arg);
    void *arg;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream_ctx *s = cls;
    long n = s->fn(s->arg, buf, max);
    return n > 0 ? (ssize_t)n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_end(void *cls)
{
    struct stream_ctx *s = cls;
    if (s->done)
        s->done(s->arg);
    free(s);
}

/* Frees what res holds without sending it. */
static void discard(struct httpd_response *res)
{
    free(res->body);
    for (size_t i = 0; i < res->nheaders; i++)
        free(res->headers[i].value);
    if (res->stream && res->stream_free)
        res->stream_free(res->stream_arg);
}

static struct MHD_Response *make_response(struct httpd_response *res)
{
    if (!res->stream)
        return MHD_create_response_from_buffer(res->body_len, res->body ? res->body : (void *)"",
                                               res->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    free(res->body); /* a streamed answer has no buffered body */
    res->body = NULL;
    struct stream_ctx *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    *s = (struct stream_ctx){res->stream, res->stream_free, res->stream_arg};
    struct MHD_Response *mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_read, s, stream_end);
    if (!mr)
        free(s);
    else
        res->stream = NULL; /* MHD calls stream_end from now on */
    return mr;
}

static enum MHD_Result queue(struct MHD_Connection *conn, struct httpd_response *res)
{
    struct MHD_Response *mr = make_response(res);
    if (!mr) {
        discard(res);
        return MHD_NO;
    }
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                            res->content_type ? res->content_type : "application/json");
    for (size_t i = 0; i < res->nheaders; i++) {
        MHD_add_response_header(mr, res->headers[i].name, res->headers[i].value);
        free(res->headers[i].value);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)res->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static enum MHD_Result simple(struct MHD_Connection *conn, int status, const char *json)
{
    struct httpd_response res = {0};
    httpd_set_body(&res, status, NULL, json);
    return queue(conn, &res);
}

/* Room in r's body for need bytes. A small announced body gets its length exactly: a webhook
 * body is a few hundred bytes, and a 4 KiB buffer per request made malloc consolidate its free
 * lists. A large one still grows as it arrives (a client announcing 1 MiB and sending nothing
 * holds no more than before). */
static int grow_body(struct httpd_request *r, size_t need)
{
    size_t cap = r->body_cap                                            ? r->body_cap * 2
                 : r->announced >= need - 1 && r->announced < 64 * 1024 ? r->announced + 1
                                                                        : 4096;
    while (cap < need)
        cap *= 2;
    char *b = realloc(r->body, cap);
    if (!b)
        return SAASD_ENOMEM;
    r->body = b;
    r->body_cap = cap;
    return 0;
}

/* A chunk of the body appended, NUL-terminated; past max_body the body is dropped and the
 * request marked too big (answered 413 once the body has arrived). */
static int take_chunk(const struct httpd *d, struct httpd_request *r, const char *upload, size_t n)
{
    if (!r->too_big && r->body_len + n > d->max_body) {
        r->too_big = 1;
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
    }
    if (r->too_big)
        return 0;
    if (r->body_len + n + 1 > r->body_cap) {
        int rc = grow_body(r, r->body_len + n + 1);
        if (rc)
            return rc;
    }
    memcpy(r->body + r->body_len, upload, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
    return 0;
}

/* The Content-Length the client announced: too big, or kept to size the body's buffer. */
static void check_announced(const struct httpd *d, struct MHD_Connection *conn, struct httpd_request *r)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
    if (announced > d->max_body)
        r->too_big = 1;
    else
        r->announced = (size_t)announced;
}

static void note_client_ip(struct MHD_Connection *conn, struct httpd_request *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->ip, sizeof r->ip);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, r->ip, sizeof r->ip);
}

/* Called again after httpd_resume() resumed the connection: send the answer. */
static enum MHD_Result send_resumed(struct MHD_Connection *conn, struct httpd_request *r)
{
    pthread_mutex_lock(&r->defer_lock);
    int answered = r->answered;
    struct httpd_response res = r->answer;
    r->deferred = 0;
    pthread_mutex_unlock(&r->defer_lock);
    return answered ? queue(conn, &res) : MHD_NO;
}

/* The handler's answer sent, or, when it deferred, the connection suspended until
 * httpd_resume(). */
static enum MHD_Result run_handler(struct httpd *d, struct MHD_Connection *conn, struct httpd_request *r)
{
    struct httpd_response res = {.status = 500};
    mark_handled(r);
    d->handler(d->arg, r, &res);
    if (!r->deferred)
        return queue(conn, &res);
    discard(&res); /* whatever the handler put in res before deferring is not sent */
    /* Deferred. The answer may already be there (a fast commit): then send it now. */
    pthread_mutex_lock(&r->defer_lock);
    if (r->answered) {
        struct httpd_response ans = r->answer;
        r->deferred = 0;
        pthread_mutex_unlock(&r->defer_lock);
        return queue(conn, &ans);
    }
    r->suspended = 1;
    MHD_suspend_connection(conn);
    pthread_mutex_unlock(&r->defer_lock);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct httpd *d = cls;
    struct httpd_request *r = *con_cls;
    if (!r)
        return MHD_NO; /* on_uri could not allocate: drop the connection */
    r->method = method;
    if (*upload_size) { /* a chunk of the body */
        if (take_chunk(d, r, upload, *upload_size) != 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    /* First call: refuse an announced oversized body before reading it. */
    check_announced(d, conn, r);
    if (r->too_big) {
        mark_handled(r);
        return simple(conn, 413, "{\"error\":{\"code\":\"PayloadTooLarge\",\"message\":\"request body exceeds the limit\"}}");
    }
    if (!r->started) {
        /* First call carries only the headers; MHD calls again with the body, if any, and
         * then once more with nothing, which is when the handler runs. */
        r->started = 1;
        note_client_ip(conn, r);
        return MHD_YES;
    }
    if (r->deferred)
        return send_resumed(conn, r);
    return run_handler(d, conn, r);
}

struct httpd_deferred *httpd_defer(const struct httpd_request *cr)
{
    struct httpd_request *r = (struct httpd_request *)(uintptr_t)cr;
    r->deferred = 1;
    r->d->outstanding++;
    return (struct httpd_deferred *)r;
}

void httpd_resume(struct httpd_deferred *dfr, struct httpd_response *res)
{
    struct httpd_request *r = (struct httpd_request *)dfr;
    pthread_mutex_lock(&r->defer_lock);
    r->answer = *res;
    r->answered = 1;
    struct httpd *d = r->d;
    if (r->suspended) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->defer_lock);
    d->outstanding--; /* last touch: httpd_stop may free everything after this */
}

int httpd_addr_parse(const char *addr, unsigned *ipv4)
{
    struct in_addr in;
    if (!addr || inet_pton(AF_INET, addr, &in) != 1)
        return SAASD_EINVAL;
    *ipv4 = in.s_addr;
    return 0;
}

int httpd_addr_is_loopback(unsigned ipv4) { return (ntohl(ipv4) >> 24) == 127; }

/* Our own listening socket, so a failure says why (libmicrohttpd only says it failed) and so
 * that no SO_REUSEPORT lets a second daemon share a port: SO_REUSEADDR alone only allows a
 * restart over connections in TIME_WAIT. */
static int listen_socket(const struct sockaddr_in *addr, const char *bind_addr, int *out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        bind(fd, (const struct sockaddr *)addr, sizeof *addr) == 0 && listen(fd, 128) == 0) {
        *out = fd;
        return 0;
    }
    char port[16], why[128];
    snprintf(port, sizeof port, "%u", ntohs(addr->sin_port));
    snprintf(why, sizeof why, "%s", strerror(errno));
    if (fd >= 0)
        close(fd);
    log_error("httpd", "cannot listen", "addr", bind_addr, "port", port, "error", why,
              "hint", errno == EADDRINUSE ? "another process (another saasd?) listens on this address and port" : "-");
    return SAASD_EIO;
}

/* The listening socket on opt's address and port (127.0.0.1 and any free port by default). */
static int open_listener(const struct httpd_options *opt, const char *bind_addr, int *lfd)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(opt ? opt->port : 0)};
    unsigned ipv4;
    if (httpd_addr_parse(bind_addr, &ipv4) != 0) {
        log_error("httpd", "bind address is not an IPv4 address (a dotted quad like 127.0.0.1)", "addr", bind_addr);
        return SAASD_EINVAL;
    }
    addr.sin_addr.s_addr = ipv4;
    return listen_socket(&addr, bind_addr, lfd) != 0 ? SAASD_EIO : 0;
}

/* The options that may be off, as an MHD_OPTION_ARRAY list (an option that is off, 0, is not
 * passed at all); extra has room for 4. */
static void optional_options(struct httpd *d, unsigned per_ip, struct MHD_OptionItem *extra)
{
    size_t n = 0;
    /* libmicrohttpd zeroes a connection's memory pool after every request, so its default
     * 32 KiB cost a large memset per webhook (2 % of the event loop's CPU). 20 KiB still takes
     * 10 KiB of request headers (tests/test_http.c; a bearer token is ~1.5 KiB, bodies are
     * streamed out of the pool); larger ones are answered 431 by libmicrohttpd. */
    extra[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTPD_CONNECTION_MEMORY, NULL};
    if (per_ip)
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL};
    if (d->deadline_ms)
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, d};
    extra[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
}

/* libmicrohttpd serving on lfd: d->mhd, or NULL. */
static void start_mhd(struct httpd *d, const struct httpd_options *opt, int lfd)
{
    unsigned timeout = opt && opt->connection_timeout_s ? opt->connection_timeout_s : 30;
    unsigned limit = opt && opt->max_connections ? opt->max_connections : 1024;
    unsigned pool = opt ? opt->event_threads : 0;
    /* poll(2), not epoll: a deferred request is suspended and resumed, and with epoll that is
     * an EPOLL_CTL_DEL and an EPOLL_CTL_ADD per request plus an empty recv (the edge-triggered
     * socket is read until EAGAIN); poll needs none of them (5.5 -> 3 syscalls per webhook on
     * the event loop, a quarter less of its CPU at 64 and 256 connections). One poll() over a
     * few hundred descriptors per pass costs less than that on a VM where every syscall is dear. */
    unsigned flags = MHD_USE_ITC | (pool ? MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME
                          : MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                MHD_ALLOW_SUSPEND_RESUME);
    struct MHD_OptionItem extra[4];
    optional_options(d, opt ? opt->per_client_limit : 0, extra);
    d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d,
                              MHD_OPTION_THREAD_POOL_SIZE, pool > 1 ? pool : 0,
                              MHD_OPTION_LISTEN_SOCKET, lfd,
                              MHD_OPTION_URI_LOG_CALLBACK, on_uri, d,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, d,
                              MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                              MHD_OPTION_CONNECTION_LIMIT, limit,
                              MHD_OPTION_ARRAY, extra,
                              MHD_OPTION_END);
}

int httpd_start(const struct httpd_options *opt, httpd_handler handler, void *arg, struct httpd **out)
{
    struct httpd *d = calloc(1, sizeof *d);
    if (!d)
        return SAASD_ENOMEM;
    d->handler = handler;
    d->arg = arg;
    d->max_body = opt && opt->max_body ? opt->max_body : 1u << 20;
    const char *bind_addr = opt && opt->bind_addr ? opt->bind_addr : "127.0.0.1";
    int lfd, rc = open_listener(opt, bind_addr, &lfd);
    if (rc) {
        free(d);
        return rc;
    }
    d->deadline_ms = opt ? (long long)opt->request_deadline_s * 1000 : 0;
    pthread_mutex_init(&d->track_lock, NULL);
    pthread_cond_init(&d->track_cond, NULL);
    start_mhd(d, opt, lfd);
    if (!d->mhd) {
        log_error("httpd", "cannot start the HTTP server", "addr", bind_addr);
        close(lfd);
        pthread_mutex_destroy(&d->track_lock);
        pthread_cond_destroy(&d->track_cond);
        free(d);
        return SAASD_EIO;
    }
    if (d->deadline_ms && pthread_create(&d->reaper, NULL, reaper_main, d) == 0)
        d->reaper_started = 1;
    else if (d->deadline_ms)
        log_warn("httpd", "no reaper thread: the request deadline is not enforced", "addr", bind_addr);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    d->port = di ? di->port : (opt ? opt->port : 0);
    *out = d;
    return 0;
}

unsigned short httpd_port(const struct httpd *d) { return d->port; }

void httpd_stop(struct httpd *d)
{
    if (!d)
        return;
    /* Stop accepting, then let deferred answers arrive (they resume connections MHD owns). */
    MHD_socket ls = MHD_quiesce_daemon(d->mhd);
    if (ls != MHD_INVALID_SOCKET)
        close(ls);
    for (int i = 0; i < 3000 && d->outstanding > 0; i++)
        usleep(10 * 1000);
    MHD_stop_daemon(d->mhd); /* every CLOSED notification has run: nothing is tracked */
    if (d->reaper_started) {
        pthread_mutex_lock(&d->track_lock);
        d->stopping = 1;
        pthread_cond_signal(&d->track_cond);
        pthread_mutex_unlock(&d->track_lock);
        pthread_join(d->reaper, NULL);
    }
    pthread_mutex_destroy(&d->track_lock);
    pthread_cond_destroy(&d->track_cond);
    free(d);
}

const char *httpd_method(const struct httpd_request *r) { return r->method; }
const char *httpd_path(const struct httpd_request *r) { return r->path; }
const char *httpd_raw_query(const struct httpd_request *r) { return r->raw_query; }
const char *httpd_client_ip(const struct httpd_request *r) { return r->ip; }

const char *httpd_header(const struct httpd_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *httpd_body(const struct httpd_request *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

/* Percent-decoding only, once; '+' stays '+'. */
static char *decode_once(const char *s, size_t n)
{
    char *o = strndup(s, n);
    if (o)
        MHD_http_unescape(o);
    return o;
}

static void parse_args(struct httpd_request *r)
{
    r->args_parsed = 1;
    const char *p = r->raw_query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;
        struct query_arg *a = realloc(r->args, (r->nargs + 1) * sizeof *a);
        if (!a)
            return;
        r->args = a;
        a[r->nargs].name = decode_once(p, nlen);
        a[r->nargs].value = eq ? decode_once(eq + 1, len - nlen - 1) : strdup("");
        if (!a[r->nargs].name || !a[r->nargs].value) {
            free(a[r->nargs].name);
            free(a[r->nargs].value);
            return;
        }
        r->nargs++;
        p += len + (amp ? 1 : 0);
    }
}

int httpd_form_value(const struct httpd_request *r, const char *name, char **out)
{
    *out = NULL;
    size_t nlen = strlen(name);
    const char *p = r->body ? r->body : "", *end = p + r->body_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = amp ? (size_t)(amp - p) : (size_t)(end - p);
        if (len > nlen && p[nlen] == '=' && !memcmp(p, name, nlen)) {
            char *v = strndup(p + nlen + 1, len - nlen - 1);
            if (!v)
                return SAASD_ENOMEM;
            for (char *c = v; *c; c++)
                if (*c == '+')
                    *c = ' '; /* form encoding: '+' is a space, before percent-decoding */
            MHD_http_unescape(v);
            *out = v;
            return 0;
        }
        p += len + (amp ? 1 : 0);
    }
    return SAASD_ENOTFOUND;
}

const char *httpd_query(const struct httpd_request *cr, const char *name)
{
    /* Parsed lazily on the connection's own thread; the request is not shared. */
    struct httpd_request *r = (struct httpd_request *)(uintptr_t)cr;
    if (!r->args_parsed)
        parse_args(r);
    for (size_t i = 0; i < r->nargs; i++)
        if (!strcmp(r->args[i].name, name))
            return r->args[i].value;
    return NULL;
}

int httpd_query_long(const struct httpd_request *r, const char *name, long lo, long hi, long dflt, long *out)
{
    const char *text = httpd_query(r, name);
    char *end = NULL;
    long v = text ? strtol(text, &end, 10) : dflt;
    if (text && (!*text || *end || v < lo || v > hi))
        return SAASD_EINVAL;
    *out = v;
    return 0;
}

int httpd_set_body(struct httpd_response *res, int status, const char *content_type, const char *body)
{
    free(res->body);
    res->status = status;
    res->content_type = content_type;
    res->body = strdup(body ? body : "");
    res->body_len = res->body ? strlen(res->body) : 0;
    return res->body ? 0 : SAASD_ENOMEM;
}

void httpd_response_clear(struct httpd_response *res)
{
    discard(res);
    memset(res, 0, sizeof *res);
}

int httpd_add_header(struct httpd_response *res, const char *name, const char *value)
{
    if (res->nheaders >= sizeof res->headers / sizeof res->headers[0])
        return SAASD_ETOOBIG;
    char *v = strdup(value);
    if (!v)
        return SAASD_ENOMEM;
    res->headers[res->nheaders].name = name;
    res->headers[res->nheaders].value = v;
    res->nheaders++;
    return 0;
}
