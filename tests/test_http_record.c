/* What a decision's record keeps of its ctx.http calls, and how a replay answers from it
 * (src/engine/http_record.c): secrets left out, bodies bounded, binary bodies intact, calls
 * matched on method and URL in order, recorded failures given back as they were. */
#include "check.h"
#include "core/err.h"
#include "engine/http_record.h"

#include <jansson.h>

static int add(json_t *log, const char *method, const char *url, long status, const char *headers, const char *body,
               size_t len)
{
    struct bind_http_req req = {.method = method, .url = url};
    char h[512], *b = malloc(len + 1);
    snprintf(h, sizeof h, "%s", headers);
    memcpy(b, body, len);
    b[len] = '\0';
    struct bind_http_resp resp = {.status = status, .headers = h, .body = b, .body_len = len};
    int rc = http_record_add(log, &req, 0, &resp, NULL);
    free(b);
    return rc;
}

/* Answer method url from log; *resp filled (free with bind_http_resp_free). */
static int ask(json_t *log, uint64_t *used, const char *method, const char *url, struct bind_http_resp *resp,
               char *err, size_t errsz)
{
    struct bind_http_req req = {.method = method, .url = url};
    memset(resp, 0, sizeof *resp);
    err[0] = '\0';
    return http_record_answer(log, used, &req, resp, err, errsz);
}

#define SECRET_BODY "{\"max\": 5, \"nested\": {\"access_token\": \"resp-secret\"}}"

static void test_secrets_and_headers(void)
{
    json_t *log = json_array();
    add(log, "GET", "https://api.example/t?token=abc123secret&x=1", 200,
        "HTTP/1.1 200 OK\r\nX-Limit: 5\r\nSet-Cookie: sid=cookie-secret\r\nWWW-Authenticate: Bearer realm=x\r\n"
        "X-Api-Token: hdr-secret\r\n\r\n",
        SECRET_BODY, strlen(SECRET_BODY));
    char *text = json_dumps(log, JSON_COMPACT);
    CHECK(text && !strstr(text, "abc123secret") && !strstr(text, "cookie-secret") && !strstr(text, "hdr-secret") &&
              !strstr(text, "resp-secret") && !strstr(text, "realm=x"),
          "secret URL parameters, cookies, authenticate and secret-named headers and JSON fields are not kept");
    free(text);
    uint64_t used = 0;
    struct bind_http_resp r;
    char err[256];
    int rc = ask(log, &used, "GET", "https://api.example/t?token=abc123secret&x=1", &r, err, sizeof err);
    CHECK(rc == 0 && r.status == 200 && strstr(r.headers, "X-Limit: 5") && strstr(r.body, "\"max\":5") &&
              strstr(r.body, "[REDACTED]"),
          "the call is answered with its status, the readable headers and the body (masked field)");
    bind_http_resp_free(&r);
    json_decref(log);
}

static void test_bodies(void)
{
    json_t *log = json_array();
    const char plain[] = "{ \"a\" : 1 ,\n \"b\": [1, 2.50] }";
    const unsigned char bin[] = {0xff, 0x00, 0xfe, 'x', 0x80};
    size_t big = HTTP_RECORD_BODY_MAX + 1;
    char *large = malloc(big);
    memset(large, 'a', big);
    add(log, "GET", "http://h/plain", 200, "", plain, strlen(plain));
    add(log, "GET", "http://h/bin", 200, "", (const char *)bin, sizeof bin);
    add(log, "GET", "http://h/large", 200, "", large, big);
    uint64_t used = 0;
    struct bind_http_resp r;
    char err[256];
    int rc = ask(log, &used, "GET", "http://h/plain", &r, err, sizeof err);
    CHECK(rc == 0 && r.body_len == strlen(plain) && !memcmp(r.body, plain, r.body_len),
          "a JSON body without secrets comes back byte for byte");
    bind_http_resp_free(&r);
    rc = ask(log, &used, "GET", "http://h/bin", &r, err, sizeof err);
    CHECK(rc == 0 && r.body_len == sizeof bin && !memcmp(r.body, bin, sizeof bin), "a binary body comes back intact");
    bind_http_resp_free(&r);
    rc = ask(log, &used, "GET", "http://h/large", &r, err, sizeof err);
    CHECK(rc == SAASD_ENOTFOUND && strstr(err, "larger than"), "a body over 64 KiB is not kept; replaying it is refused");
    bind_http_resp_free(&r);
    json_decref(log);

    log = json_array();
    size_t each = 60 * 1024;
    int kept = 0;
    for (int i = 0; i < 5; i++)
        add(log, "GET", "http://h/chunk", 200, "", large, each);
    for (size_t i = 0; i < json_array_size(log); i++)
        kept += json_object_get(json_array_get(log, i), "body") != NULL;
    CHECK(kept == 4, "bodies of one rule call are kept up to 256 KiB together (4 of 5 x 60 KiB)");
    json_decref(log);
    free(large);
}

static void test_matching(void)
{
    json_t *log = json_array();
    add(log, "GET", "http://h/a", 200, "", "first", 5);
    add(log, "POST", "http://h/a", 201, "", "posted", 6);
    add(log, "GET", "http://h/a", 200, "", "second", 6);
    struct bind_http_req req = {.method = "GET", .url = "http://h/down"};
    http_record_add(log, &req, SAASD_ETIMEOUT, NULL, "timeout");
    uint64_t used = 0;
    struct bind_http_resp r;
    char err[256];
    int ok = ask(log, &used, "GET", "http://h/a", &r, err, sizeof err) == 0 && !strcmp(r.body, "first");
    bind_http_resp_free(&r);
    ok &= ask(log, &used, "GET", "http://h/a", &r, err, sizeof err) == 0 && !strcmp(r.body, "second");
    bind_http_resp_free(&r);
    CHECK(ok, "repeated calls to one URL get the recorded answers in the order they were made");
    int rc = ask(log, &used, "GET", "http://h/a", &r, err, sizeof err);
    CHECK(rc == SAASD_ENOTFOUND && strstr(err, "no recorded answer for GET http://h/a"),
          "one call more than recorded is refused, naming the call");
    rc = ask(log, &used, "post", "http://h/a", &r, err, sizeof err);
    CHECK(rc == 0 && r.status == 201, "the method is matched too (case-insensitively)");
    bind_http_resp_free(&r);
    rc = ask(log, &used, "GET", "http://h/down", &r, err, sizeof err);
    CHECK(rc < 0 && rc != SAASD_ENOTFOUND && !strcmp(err, "timeout"), "a recorded failure is given back as the same error");
    json_decref(log);

    log = json_array();
    int rc_last = 0;
    for (int i = 0; i <= HTTP_RECORD_MAX_CALLS; i++)
        rc_last = add(log, "GET", "http://h/n", 200, "", "x", 1);
    CHECK(rc_last == SAASD_ETOOBIG && json_array_size(log) == HTTP_RECORD_MAX_CALLS, "at most 64 calls are recorded");
    json_decref(log);
}

int main(void)
{
    test_secrets_and_headers();
    test_bodies();
    test_matching();
    return CHECK_DONE();
}
