/* HTTP server and client wrappers, against each other on 127.0.0.1. */
#include "check.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_inside;

/* /stream?n=N[&fail=1]: N blocks of 1000 bytes written by the stream callback, then the end
 * (or an error). */
struct blocks {
    int left, fail;
    size_t off;
};
static _Atomic int streams_freed;

static long blocks_read(void *arg, char *buf, size_t max)
{
    struct blocks *b = arg;
    if (!b->left)
        return b->fail ? -1 : 0;
    size_t n = 1000 - b->off < max ? 1000 - b->off : max;
    memset(buf, 'y', n);
    b->off += n;
    if (b->off == 1000) {
        b->off = 0;
        b->left--;
    }
    return (long)n;
}

static void blocks_free(void *arg)
{
    free(arg);
    streams_freed++;
}

static void handler(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    const char *path = httpd_path(req);
    if (!strcmp(path, "/echo")) {
        size_t n;
        const char *body = httpd_body(req, &n);
        char out[4096];
        const char *tok = httpd_query(req, "token");
        const char *hdr = httpd_header(req, "x-ms-requestid");
        snprintf(out, sizeof out, "%s|%s|%s|%zu|%s", httpd_method(req), tok ? tok : "-", hdr ? hdr : "-", n, body);
        httpd_set_body(res, 200, "text/plain", out);
        httpd_add_header(res, "x-ms-requestid", hdr ? hdr : "none");
    } else if (!strcmp(path, "/together")) {
        /* Answers 200 only once 8 requests are inside handlers at the same time. */
        pthread_mutex_lock(&gate_lock);
        gate_inside++;
        pthread_cond_broadcast(&gate_cond);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        while (gate_inside < 8 && pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == 0)
            ;
        int all_in = gate_inside >= 8;
        pthread_mutex_unlock(&gate_lock);
        httpd_set_body(res, all_in ? 200 : 504, NULL, "{}");
    } else if (!strcmp(path, "/stream")) {
        struct blocks *b = calloc(1, sizeof *b);
        b->left = atoi(httpd_query(req, "n") ? httpd_query(req, "n") : "0");
        b->fail = httpd_query(req, "fail") != NULL;
        res->status = 200;
        res->stream = blocks_read;
        res->stream_free = blocks_free;
        res->stream_arg = b;
    } else if (!strcmp(path, "/slow")) {
        usleep(300 * 1000);
        httpd_set_body(res, 200, NULL, "{}");
    } else {
        httpd_set_body(res, 404, NULL, "{\"code\":\"NotFound\"}");
    }
}

struct par {
    struct http_client *c;
    char url[128];
    int ok;
};

static void *parallel_get(void *arg)
{
    struct par *p = arg;
    struct http_request rq = {.method = "GET", .url = p->url};
    struct http_response rs;
    p->ok = http_client_do(p->c, &rq, &rs) == 0 && rs.status == 200;
    http_response_free(&rs);
    return NULL;
}

/* Client sockets (any state, TIME_WAIT included) whose remote port is port: connections made. */
static int connections_to(unsigned port)
{
    FILE *f = fopen("/proc/self/net/tcp", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned rport;
        if (sscanf(line, " %*d: %*x:%*x %*x:%x", &rport) == 1 && rport == port)
            n++;
    }
    if (f)
        fclose(f);
    return n;
}

int main(void)
{
    struct httpd *d = NULL;
    struct httpd_options o = {.bind_addr = "127.0.0.1", .port = 0, .max_body = 1024};
    CHECK(httpd_start(&o, handler, NULL, &d) == 0 && httpd_port(d) > 0, "the server binds a free loopback port");
    struct http_client *c = NULL;
    struct http_client_options co = {.timeout_ms = 2000};
    CHECK(http_client_new(&co, &c) == 0, "the client starts");

    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo?token=a%%2Bb+c%%253D&x=1", httpd_port(d));
    struct http_header h[] = {{"x-ms-requestid", "req-42"}, {"Content-Type", "application/json"}};
    struct http_request rq = {.method = "POST", .url = url, .headers = h, .nheaders = 2, .body = "{\"a\":1}", .body_len = 7};
    struct http_response rs;
    int rc = http_client_do(c, &rq, &rs);
    CHECK(rc == 0 && rs.status == 200, "a POST round-trips");
    CHECK(strstr(rs.body, "|a+b+c%3D|") != NULL, "query values are percent-decoded exactly once and '+' is kept");
    CHECK(strstr(rs.body, "|req-42|7|{\"a\":1}") != NULL, "request headers and body reach the handler");
    char buf[64];
    CHECK(http_response_header(&rs, "X-MS-RequestId", buf, sizeof buf) && !strcmp(buf, "req-42"),
          "response headers are found case-insensitively");
    http_response_free(&rs);

    /* Connection memory is 20 KiB (httpd.c): headers of 10 KiB (big cookies) still fit. */
    static char cookie[10 * 1024];
    memset(cookie, 'a', sizeof cookie - 1);
    struct http_header hb[] = {{"x-ms-requestid", "req-43"}, {"Cookie", cookie}};
    struct http_request rb = {.method = "POST", .url = url, .headers = hb, .nheaders = 2, .body = "{}", .body_len = 2};
    CHECK(http_client_do(c, &rb, &rs) == 0 && rs.status == 200 && strstr(rs.body, "|req-43|2|{}"),
          "a request with 10 KiB of headers is served");
    http_response_free(&rs);

    rq.method = "PATCH";
    CHECK(http_client_do(c, &rq, &rs) == 0 && !strncmp(rs.body, "PATCH|", 6), "custom methods are sent as such");
    http_response_free(&rs);

    /* A pooled handle is not reset between requests (http_client.c, conn_setup): what one
     * request set (a body, a custom method, a header) must not leak into the next. */
    struct http_request get = {.method = "GET", .url = url}, del = {.method = "DELETE", .url = url};
    int got = http_client_do(c, &get, &rs) == 0 && !strcmp(rs.body, "GET|a+b+c%3D|-|0|");
    if (!got)
        printf("# GET after PATCH: %s\n", rs.body ? rs.body : "(none)");
    http_response_free(&rs);
    CHECK(got, "a GET after a PATCH with a body on the same handle is a GET with no body and none of its headers");
    got = http_client_do(c, &del, &rs) == 0 && !strcmp(rs.body, "DELETE|a+b+c%3D|-|0|");
    http_response_free(&rs);
    CHECK(got, "a DELETE without a body after it is a DELETE with no body");
    got = http_client_do(c, &rb, &rs) == 0 && strstr(rs.body, "POST|") == rs.body && strstr(rs.body, "|req-43|2|{}");
    http_response_free(&rs);
    got = got && http_client_do(c, &get, &rs) == 0 && !strcmp(rs.body, "GET|a+b+c%3D|-|0|");
    http_response_free(&rs);
    CHECK(got, "a POST after a DELETE is a POST with its body, and the GET after it has none");

    /* One request at a time, twenty times: each finds the connection the last one left. */
    struct http_client *seq = NULL;
    int before = connections_to(httpd_port(d));
    int ok = http_client_new(&co, &seq) == 0;
    for (int i = 0; ok && i < 20; i++) {
        ok = http_client_do(seq, &rq, &rs) == 0 && rs.status == 200;
        http_response_free(&rs);
    }
    int made = connections_to(httpd_port(d)) - before;
    if (made != 1)
        printf("# %d connections for 20 sequential requests\n", made);
    CHECK(ok && made == 1, "sequential requests reuse one kept-alive connection instead of opening one each");
    http_client_free(seq);

    char big[4096];
    memset(big, 'x', sizeof big);
    rq.body = big;
    rq.body_len = sizeof big;
    CHECK(http_client_do(c, &rq, &rs) == 0 && rs.status == 413, "an oversized body is answered 413 without reaching the handler");
    http_response_free(&rs);

    snprintf(url, sizeof url, "http://127.0.0.1:%u/slow", httpd_port(d));
    struct http_request slow = {.method = "GET", .url = url, .timeout_ms = 100};
    CHECK(http_client_do(c, &slow, &rs) == SAASD_ETIMEOUT && rs.status == 0, "a request past its timeout fails with SAASD_ETIMEOUT");
    http_response_free(&rs);

    snprintf(url, sizeof url, "http://127.0.0.1:%u/stream?n=300", httpd_port(d));
    struct http_request st = {.method = "GET", .url = url};
    rc = http_client_do(c, &st, &rs);
    int whole = rc == 0 && rs.status == 200 && rs.body_len == 300000 && strspn(rs.body, "y") == 300000;
    http_response_free(&rs);
    for (int i = 0; i < 100 && streams_freed < 1; i++)
        usleep(10 * 1000);
    CHECK(whole && streams_freed == 1, "a streamed answer (300 KB from a callback) arrives whole and its state is freed");
    snprintf(url, sizeof url, "http://127.0.0.1:%u/stream?n=300&fail=1", httpd_port(d));
    rc = http_client_do(c, &st, &rs);
    http_response_free(&rs);
    for (int i = 0; i < 100 && streams_freed < 2; i++)
        usleep(10 * 1000);
    CHECK(rc != 0 && streams_freed == 2,
          "a stream that fails midway is a transfer error for the client, not a complete answer, and is freed");

    struct par ps[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        ps[i].c = c;
        snprintf(ps[i].url, sizeof ps[i].url, "http://127.0.0.1:%u/together", httpd_port(d));
        pthread_create(&th[i], NULL, parallel_get, &ps[i]);
    }
    int all = 1;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        all &= ps[i].ok;
    }
    CHECK(all, "a slow handler does not block other connections (thread per connection)");

    unsigned short port = httpd_port(d);
    httpd_stop(d);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo", port);
    struct http_request gone = {.method = "GET", .url = url};
    CHECK(http_client_do(c, &gone, &rs) == SAASD_EIO, "a refused connection fails with SAASD_EIO");
    http_response_free(&rs);
    http_client_free(c);
    return CHECK_DONE();
}
