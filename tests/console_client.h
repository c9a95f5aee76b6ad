/* The operator's browser for console tests (include after it_support.h): one cookie, no
 * redirects followed, the last answer's status, body, Location and Set-Cookie kept. */
#ifndef SAASD_TEST_CONSOLE_CLIENT_H
#define SAASD_TEST_CONSOLE_CLIENT_H

/* The operator's browser: one cookie, no redirects followed. */
struct op {
    char cookie[4300];
    char set_cookie[4400]; /* the last Set-Cookie header, as sent */
    char location[1024];
    long status;
    char *body;
};

static long op_call(struct op *o, const char *method, const char *path, const char *form)
{
    char url[2048], cookie[4400];
    snprintf(url, sizeof url, "%s%s", it_admin_url, path);
    snprintf(cookie, sizeof cookie, "saasd_console=%s", o->cookie);
    struct http_header h[2] = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", cookie}};
    struct http_request rq = {.method = method, .url = url, .headers = h, .nheaders = o->cookie[0] ? 2 : 1,
                              .body = form, .body_len = form ? strlen(form) : 0, .timeout_ms = 60000};
    struct http_response r = {0};
    int rc = http_client_do(it_http, &rq, &r);
    o->set_cookie[0] = 0;
    if (!rc && http_response_header(&r, "Set-Cookie", o->set_cookie, sizeof o->set_cookie) &&
        !strncmp(o->set_cookie, "saasd_console=", 14))
        sscanf(o->set_cookie + 14, "%4299[^;]", o->cookie);
    const char *l = rc ? NULL : http_response_header(&r, "Location", o->location, sizeof o->location);
    if (!l)
        o->location[0] = 0;
    free(o->body);
    o->body = rc ? strdup("") : r.body;
    r.body = NULL;
    o->status = rc ? 0 : r.status;
    http_response_free(&r);
    return o->status;
}

/* The CSRF token in the last page's forms. */
static const char *csrf_of(const struct op *o)
{
    static char csrf[128];
    csrf[0] = 0;
    const char *p = o->body ? strstr(o->body, "name=\"csrf\" value=\"") : NULL;
    if (p)
        sscanf(p + 19, "%127[^\"]", csrf);
    return csrf;
}

#endif
