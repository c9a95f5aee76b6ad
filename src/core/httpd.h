/* Inbound HTTP server over libmicrohttpd. Handlers run synchronously on the connection's
 * thread (thread per connection), so a handler may block, e.g. waiting for a durable store
 * commit, without stalling other connections. Request bodies are collected up to max_body;
 * larger bodies are answered 413 before the handler runs. */
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
};

typedef void (*httpd_handler)(void *arg, const struct httpd_request *req, struct httpd_response *res);

struct httpd_options {
    const char *bind_addr;  /* e.g. "127.0.0.1"; NULL = 127.0.0.1 */
    unsigned short port;    /* 0 = pick a free port (see httpd_port) */
    size_t max_body;        /* 0 = 1 MiB */
    unsigned connection_timeout_s; /* idle connections are closed after this; 0 = 30 */
    unsigned max_connections;      /* 0 = 1024 */
};

int httpd_start(const struct httpd_options *opt, httpd_handler handler, void *arg, struct httpd **out);
unsigned short httpd_port(const struct httpd *d);
void httpd_stop(struct httpd *d);

/* Request accessors; strings live as long as the request. */
const char *httpd_method(const struct httpd_request *r);
const char *httpd_path(const struct httpd_request *r);        /* without the query */
const char *httpd_raw_query(const struct httpd_request *r);   /* undecoded, "" when none */
/* Query argument, percent-decoded exactly once ('+' is kept as '+', never turned into a
 * space: landing tokens are base64-like). NULL when absent. */
const char *httpd_query(const struct httpd_request *r, const char *name);
const char *httpd_header(const struct httpd_request *r, const char *name); /* case-insensitive */
const char *httpd_body(const struct httpd_request *r, size_t *len);
const char *httpd_client_ip(const struct httpd_request *r);

/* Helpers for handlers. */
int httpd_set_body(struct httpd_response *res, int status, const char *content_type, const char *body);
int httpd_add_header(struct httpd_response *res, const char *name, const char *value);

#endif
