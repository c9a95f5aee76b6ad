/* Outbound HTTP(S) over libcurl: thread-safe, connection reuse through a curl share (DNS, TLS
 * sessions, connections), connect and total timeouts. No retry policy here: callers decide
 * (see mp_client for the marketplace's rules). */
#ifndef SAASD_HTTP_CLIENT_H
#define SAASD_HTTP_CLIENT_H

#include <stddef.h>

struct http_client_options {
    long connect_timeout_ms; /* 0 = 3000 */
    long timeout_ms;         /* whole request; 0 = 10000 */
    size_t max_response;     /* bytes; larger bodies fail with SAASD_ETOOBIG; 0 = 8 MiB */
};

struct http_header {
    const char *name;
    const char *value;
};

struct http_request {
    const char *method; /* "GET", "POST", "PATCH", "DELETE" ... */
    const char *url;
    const struct http_header *headers;
    size_t nheaders;
    const void *body; /* may be NULL */
    size_t body_len;
    long timeout_ms; /* 0 = client default */
};

struct http_response {
    long status;
    char *body;      /* malloc'd, NUL-terminated, may be empty */
    size_t body_len;
    char *headers;   /* raw response header block of the final response, malloc'd */
};

struct http_client;

int http_client_new(const struct http_client_options *opt, struct http_client **out);
void http_client_free(struct http_client *c);

/* Perform one request. 0 whenever an HTTP status was received (any status); SAASD_ETIMEOUT,
 * SAASD_EIO (connection refused/reset/DNS), SAASD_ETOOBIG otherwise. *out is always
 * initialised; release it with http_response_free(). */
int http_client_do(struct http_client *c, const struct http_request *req, struct http_response *out);

/* Percent-encode s for a URL query value or a form field (libcurl's escaping). *out is
 * malloc'd (caller frees). 0 or SAASD_ENOMEM. */
int http_url_escape(const char *s, char **out);
/* Value of a response header (case-insensitive name), copied into buf; NULL when absent. */
const char *http_response_header(const struct http_response *r, const char *name, char *buf, size_t size);
void http_response_free(struct http_response *r);

#endif
