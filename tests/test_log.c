/* Logging: one parseable line per event, and secrets never reach the log. */
#include "check.h"
#include "core/log.h"
#include "core/redact.h"

#include <string.h>
#include <unistd.h>

static char *capture(void (*emit)(void))
{
    int fds[2];
    if (pipe(fds))
        abort();
    log_set_fd(fds[1]);
    emit();
    log_set_fd(2);
    close(fds[1]);
    static char buf[16384];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

static void emit_secret_fields(void)
{
    log_info("entra", "token acquired", "client_secret", "s3cr3t-value", "access_token",
             "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "tid", "tenant-1");
}

static void emit_secret_in_text(void)
{
    log_warn("entra", "token request failed",
             "body", "grant_type=client_credentials&client_secret=hunter2&client_id=abc",
             "auth", "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ.sig");
}

static void emit_ids(void)
{
    log_info("webhook", "accepted \"quoted\"", "request_id", "r-1", "op_id", "op 2", "sub_id", NULL);
}

static void emit_debug(void)
{
    log_debug("x", "hidden");
}

int main(void)
{
    char *out = capture(emit_secret_fields);
    CHECK(strstr(out, "s3cr3t-value") == NULL, "a field named client_secret is never written to the log");
    CHECK(strstr(out, "c2lnbmF0dXJl") == NULL, "an access token field is never written to the log");
    CHECK(strstr(out, "tid=tenant-1") != NULL, "non-secret fields are kept");

    out = capture(emit_secret_in_text);
    CHECK(strstr(out, "hunter2") == NULL, "a client_secret inside free text is masked");
    CHECK(strstr(out, "client_id=abc") != NULL, "the rest of a form body stays readable");
    CHECK(strstr(out, "eyJ4IjoxfQ") == NULL, "a bearer JWT inside free text is masked");

    out = capture(emit_ids);
    CHECK(strncmp(out, "time=", 5) == 0 && strstr(out, " level=info ") && strstr(out, " component=webhook "),
          "every line starts with time, level and component");
    CHECK(strstr(out, "msg=\"accepted \\\"quoted\\\"\"") != NULL, "values with spaces and quotes are quoted and escaped");
    CHECK(strstr(out, "op_id=\"op 2\"") != NULL && strstr(out, "request_id=r-1") != NULL,
          "request and operation ids appear as fields");
    CHECK(strchr(out, '\n') == out + strlen(out) - 1, "one event is exactly one line");

    out = capture(emit_debug);
    CHECK(out[0] == 0, "events below the level are dropped");

    char red[64];
    CHECK(redact_text("token=abcdefghijklmnopqrstuvwxyz0123456789abcdefghijkl", red, 12) != 0 &&
              strstr(red, "abcdef") == NULL,
          "a truncated redaction still hides the secret");
    return CHECK_DONE();
}
