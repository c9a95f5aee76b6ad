/* Inbound HTTP server over libmicrohttpd, in one of two modes:
 *  - thread per connection (event_threads = 0): a handler may block, e.g. on an outbound call,
 *    without stalling other connections;
 *  - event loop (event_threads = N): N threads serve every connection with poll(2); handlers
 *    must answer quickly or defer: httpd_defer() parks the connection, and any thread later
 *    answers it with httpd_resume(). Fewer threads and context switches under load.
 * Request bodies are collected up to max_body; larger bodies are answered 413 before the
 * handler runs.
 * Slow clients: libmicrohttpd's own timeout is an idle timeout (every byte resets it), so a
 * client trickling a header byte every few seconds would hold a connection for ever. With
 * request_deadline_s a reaper thread closes (shutdown(2)) every connection whose request is
 * not complete that long after it began; per_client_limit caps the connections of one address,
 * max_connections all of them. */
#ifndef SAASD_HTTPD_H
#define SAASD_HTTPD_H

#include <stddef.h>

struct httpd;
struct httpd_request;

struct httpd_response {
    int status;
    const char *content_type;  /* NULL = application/json */
    char *body;                /* malloc'd by the handler; httpd frees it. May be NULL */
    size_t body_len;
    struct { const char *name; char *value; } headers[8]; /* values malloc'd; httpd frees */
    size_t nheaders;
    /* A streamed body instead of body (length unknown: chunked in HTTP/1.1). httpd calls
     * stream(stream_arg, buf, max) whenever the socket takes more: it returns the bytes it wrote
     * (1..max), 0 at the end, or a negative value on an error, which closes the connection without
     * the final chunk, so the client sees a truncated answer rather than a complete one. Then,
     * and also when the client goes away first, stream_free(stream_arg) once. */
    long (*stream)(void *stream_arg, char *buf, size_t max);
    void (*stream_free)(void *stream_arg);
    void *stream_arg;
};

typedef void (*httpd_handler)(void *arg, const struct httpd_request *req, struct httpd_response *res);

struct httpd_options {
    const char *bind_addr;  /* e.g. "127.0.0.1"; NULL = 127.0.0.1 */
    unsigned short port;    /* 0 = pick a free port (see httpd_port) */
    size_t max_body;        /* 0 = 1 MiB */
    unsigned connection_timeout_s; /* idle connections are closed after this; 0 = 30 */
    unsigned max_connections;      /* 0 = 1024 */
    unsigned per_client_limit;     /* connections open at once from one IP address; 0 = no cap */
    unsigned request_deadline_s;   /* a request must be in full (headers and body) within this
                                      many seconds of its connection opening, or of the previous
                                      answer on a kept-alive connection, else the connection is
                                      closed: trickling bytes does not extend it. 0 = none */
    unsigned event_threads;        /* 0 = thread per connection; N = event loop on N threads */
};

/* Fails with SAASD_EINVAL when bind_addr is not one httpd_addr_parse accepts, SAASD_EIO when
 * the address cannot be bound (logged with address, port and the system's reason; a port
 * another process listens on is never shared: SO_REUSEADDR only, no SO_REUSEPORT). */
int httpd_start(const struct httpd_options *opt, httpd_handler handler, void *arg, struct httpd **out);
/* The one check of a listen address, used by httpd_start and by the config loader so that
 * check-config refuses exactly what serve cannot bind: a dotted-quad IPv4 literal
 * ("127.0.0.1"; not "localhost", not "127.1"). 0 and *ipv4 (network order), or SAASD_EINVAL. */
int httpd_addr_parse(const char *addr, unsigned *ipv4);
/* 1 when ipv4 (network order) is in 127.0.0.0/8. */
int httpd_addr_is_loopback(unsigned ipv4);
unsigned short httpd_port(const struct httpd *d);
void httpd_stop(struct httpd *d);

/* Request accessors; strings live as long as the request. */
const char *httpd_method(const struct httpd_request *r);
const char *httpd_path(const struct httpd_request *r);        /* without the query */
const char *httpd_raw_query(const struct httpd_request *r);   /* undecoded, "" when none */
/* Query argument, percent-decoded exactly once ('+' is kept as '+', never turned into a
 * space: landing tokens are base64-like). NULL when absent. */
const char *httpd_query(const struct httpd_request *r, const char *name);
/* Integer query argument in lo..hi: 0 and *out (dflt when absent), or SAASD_EINVAL when it is
 * present but empty, not a whole number, or out of range. */
int httpd_query_long(const struct httpd_request *r, const char *name, long lo, long hi, long dflt, long *out);
const char *httpd_header(const struct httpd_request *r, const char *name); /* case-insensitive */
/* Field of an application/x-www-form-urlencoded body ('+' is a space, then percent-decoding),
 * malloc'd into *out. 0, SAASD_ENOTFOUND, SAASD_ENOMEM. */
int httpd_form_value(const struct httpd_request *r, const char *name, char **out);
const char *httpd_body(const struct httpd_request *r, size_t *len);
const char *httpd_client_ip(const struct httpd_request *r);

/* Deferred answers (event-loop mode; also valid in thread-per-connection mode). The handler
 * calls httpd_defer() and returns leaving res untouched; later, from any thread, exactly one
 * httpd_resume() answers the request. Until then the request stays valid and its path, query,
 * body, method and client ip may be read from that thread; read headers before deferring
 * (they live in libmicrohttpd's connection). httpd_resume takes ownership of res's body and
 * header values; the request must not be touched after it. */
struct httpd_deferred;
struct httpd_deferred *httpd_defer(const struct httpd_request *r);
void httpd_resume(struct httpd_deferred *dfr, struct httpd_response *res);

/* Helpers for handlers. */
int httpd_set_body(struct httpd_response *res, int status, const char *content_type, const char *body);
int httpd_add_header(struct httpd_response *res, const char *name, const char *value);
/* Free what res holds and empty it (to build a different answer). */
void httpd_response_clear(struct httpd_response *res);

#endif
