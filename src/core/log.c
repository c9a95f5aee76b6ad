#include "core/log.h"
#include "core/err.h"
#include "core/redact.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192

static _Atomic int current_level = LOG_INFO;
static _Atomic int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return (enum log_level)current_level; }
void log_set_fd(int fd) { log_fd = fd; }

int log_level_parse(const char *name, enum log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (name && strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return SAASD_EINVAL;
}

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

static void put_raw(struct line *l, const char *s, size_t n)
{
    if (l->len + n >= sizeof l->buf - 2) /* keep room for the newline */
        n = sizeof l->buf - 2 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static int needs_quotes(const char *v)
{
    if (!*v)
        return 1;
    for (const char *p = v; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p >= 0x7f)
            return 1;
    return 0;
}

static void put_value(struct line *l, const char *v)
{
    if (!needs_quotes(v)) {
        put_raw(l, v, strlen(v));
        return;
    }
    put_raw(l, "\"", 1);
    for (const char *p = v; *p; p++) {
        char esc[8];
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put_raw(l, esc, 2);
        } else if (c == '\n') {
            put_raw(l, "\\n", 2);
        } else if (c < ' ') {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            put_raw(l, esc, 4);
        } else {
            put_raw(l, (const char *)p, 1);
        }
    }
    put_raw(l, "\"", 1);
}

static void put_field(struct line *l, const char *name, const char *value)
{
    char safe[2048];
    put_raw(l, " ", 1);
    put_raw(l, name, strlen(name));
    put_raw(l, "=", 1);
    if (redact_is_secret_name(name) && value && *value) {
        put_raw(l, REDACT_MASK, strlen(REDACT_MASK));
        return;
    }
    redact_text(value ? value : "", safe, sizeof safe);
    put_value(l, safe);
}

void log_event(enum log_level level, const char *component, const char *msg, ...)
{
    if ((int)level < current_level)
        return;
    static _Thread_local struct line l;
    l.len = 0;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char head[64];
    int n = snprintf(head, sizeof head, "time=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level & 3]);
    put_raw(&l, head, (size_t)n);
    put_field(&l, "component", component ? component : "-");
    put_field(&l, "msg", msg ? msg : "");

    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (!name)
            break;
        const char *value = va_arg(ap, const char *);
        if (value)
            put_field(&l, name, value);
    }
    va_end(ap);
    l.buf[l.len++] = '\n';
    ssize_t w = write(log_fd, l.buf, l.len);
    (void)w; /* nowhere to report a failed log write */
}
