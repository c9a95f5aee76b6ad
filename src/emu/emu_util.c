/* Emulator helpers: the emulated clock, ISO-8601 times, JSON replies and error envelopes. */
#include "core/crypto.h"
#include "core/err.h"
#include "emu/emu_internal.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t emu_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Tests move the emulator's clock through the control API; everything time-based (token
 * expiry, landing tokens, the metering window, ACK windows) reads this one clock. */
int64_t emu_now_ms(const struct emu *e)
{
    return emu_wall_ms() + (int64_t)e->k.clock_offset_s * 1000;
}

void emu_iso(int64_t ms, char out[40])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    int frac = (int)(((ms % 1000) + 1000) % 1000);
    snprintf(out + n, 40 - n, ".%03d0000Z", frac);
}

int emu_parse_time(const char *s, int64_t *ms)
{
    if (!s)
        return SAASD_EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return SAASD_EINVAL;
    const char *p = s + n;
    int64_t frac_ms = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        int m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &m) != 2)
            return SAASD_EINVAL;
        p += 1 + m;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &m) != 1)
                return SAASD_EINVAL;
            p += 1 + m;
        }
        if (*p == '.') {
            int64_t scale = 100;
            for (p++; isdigit((unsigned char)*p); p++) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
            }
        }
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1)
            return SAASD_EINVAL;
        offset_s = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += strlen(p);
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return SAASD_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ms = ((int64_t)timegm(&tm) - offset_s) * 1000 + frac_ms;
    return 0;
}

int64_t emu_day_start(int64_t ms)
{
    return ms - ((ms % 86400000) + 86400000) % 86400000;
}

int emu_term_end(int64_t start_ms, const char *term_unit, int64_t *end_ms)
{
    int months = 0;
    if (!term_unit || !strcmp(term_unit, "P1M"))
        months = 1;
    else if (strlen(term_unit) == 3 && term_unit[0] == 'P' && term_unit[2] == 'Y' &&
             term_unit[1] >= '1' && term_unit[1] <= '5')
        months = 12 * (term_unit[1] - '0');
    else
        return SAASD_EINVAL;
    time_t s = (time_t)(start_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    tm.tm_mon += months;
    tm.tm_mday -= 1;
    *end_ms = (int64_t)timegm(&tm) * 1000;
    return 0;
}

const char *emu_jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

json_t *emu_public_view(const json_t *o)
{
    if (!json_is_object(o))
        return json_deep_copy(o);
    json_t *c = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)(uintptr_t)o, key, v) {
        if (key[0] == '_')
            continue;
        json_object_set_new(c, key, json_is_object(v) && !strcmp(key, "subscription") ? emu_public_view(v)
                                                                                       : json_incref(v));
    }
    return c;
}

json_t *emu_public(const json_t *o)
{
    json_t *view = emu_public_view(o);
    json_t *c = json_deep_copy(view); /* the view shares values with the state: copy them */
    json_decref(view);
    return c;
}

const char *emu_op_source(const json_t *op)
{
    const char *s = emu_jstr(op, "operationRequestSource");
    return s ? s : emu_jstr(op, "operationRequestedSource") ? emu_jstr(op, "operationRequestedSource") : "";
}

void emu_reply_json(struct httpd_response *res, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    free(res->body);
    res->status = status;
    res->content_type = "application/json; charset=utf-8";
    res->body = s;
    res->body_len = s ? strlen(s) : 0;
}

void emu_reply_empty(struct httpd_response *res, int status)
{
    free(res->body);
    res->status = status;
    res->content_type = "application/json; charset=utf-8";
    res->body = NULL;
    res->body_len = 0;
}

void emu_fail(struct emu_error *err, int status, const char *code, const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    err->target = NULL;
    err->detail_code = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void emu_reply_error(struct httpd_response *res, const struct emu_error *err)
{
    if (err->status == 500) { /* spec/docs shape of a fulfillment 500 */
        emu_reply_json(res, 500, json_pack("{s:{s:s,s:s}}", "error", "code", err->code ? err->code : "UnexpectedError",
                                           "message", err->message));
        return;
    }
    const char *target = err->target ? err->target : "";
    json_t *detail = json_pack("{s:s,s:s,s:s}", "code", err->detail_code ? err->detail_code : err->code,
                               "message", err->message, "target", target);
    emu_reply_json(res, err->status, json_pack("{s:s,s:s,s:s,s:[o]}", "code", err->code, "message", err->message,
                                               "target", target, "details", detail));
}

char *emu_form_value(const char *body, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t flen = amp ? (size_t)(amp - p) : (size_t)(end - p);
        if (flen > nlen && p[nlen] == '=' && !memcmp(p, name, nlen)) {
            char *v = strndup(p + nlen + 1, flen - nlen - 1);
            if (!v)
                return NULL;
            for (char *q = v; *q; q++) /* form encoding: '+' is a space here, unlike query tokens */
                if (*q == '+')
                    *q = ' ';
            MHD_http_unescape(v);
            return v;
        }
        p += flen + 1;
    }
    return NULL;
}

json_t *emu_body_json(const struct httpd_request *r)
{
    size_t n = 0;
    const char *b = httpd_body(r, &n);
    if (!n)
        return NULL;
    return json_loadb(b, n, 0, NULL);
}

void emu_uuid(char out[37])
{
    if (crypto_uuid(out) != 0)
        snprintf(out, 37, "00000000-0000-4000-8000-000000000000");
}

char *emu_html_escape(const char *text)
{
    static const struct { char c; const char *entity; } table[] = {
        {'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}, {'"', "&quot;"}, {'\'', "&#39;"}};
    if (!text)
        return NULL;
    size_t len = 0;
    for (const char *p = text; *p; p++)
        len += 6;
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = text; *p; p++) {
        size_t i = 0;
        while (i < sizeof table / sizeof table[0] && table[i].c != *p)
            i++;
        if (i < sizeof table / sizeof table[0])
            o = stpcpy(o, table[i].entity);
        else
            *o++ = *p;
    }
    *o = 0;
    return out;
}
