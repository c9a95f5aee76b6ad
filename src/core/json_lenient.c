#include "core/json_lenient.h"
#include "core/err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

json_t *jl_get(const json_t *obj, const char *name)
{
    if (!json_is_object(obj) || !name)
        return NULL;
    json_t *v = json_object_get(obj, name);
    if (v)
        return v;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)(uintptr_t)obj, key, val) {
        if (!strcasecmp(key, name))
            return val;
    }
    return NULL;
}

json_t *jl_path(const json_t *obj, const char *path)
{
    char step[128];
    const json_t *cur = obj;
    while (cur && path && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof step)
            return NULL;
        memcpy(step, path, n);
        step[n] = 0;
        cur = jl_get(cur, step);
        path = dot ? dot + 1 : NULL;
    }
    return (json_t *)(uintptr_t)cur;
}

/* Trimmed view of s: start pointer and length. */
static const char *trim(const char *s, size_t *len)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

int jl_is_unset(const json_t *obj, const char *name)
{
    json_t *v = jl_get(obj, name);
    if (!v || json_is_null(v))
        return 1;
    if (json_is_string(v)) {
        size_t n;
        trim(json_string_value(v), &n);
        return n == 0;
    }
    return 0;
}

int jl_string(const json_t *obj, const char *name, char *buf, size_t size)
{
    if (!size)
        return SAASD_EINVAL;
    buf[0] = 0;
    if (jl_is_unset(obj, name))
        return SAASD_ENOTFOUND;
    json_t *v = jl_get(obj, name);
    char tmp[64];
    const char *s;
    size_t n;
    if (json_is_string(v)) {
        s = trim(json_string_value(v), &n);
    } else if (json_is_integer(v)) {
        n = (size_t)snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = tmp;
    } else if (json_is_real(v)) {
        n = (size_t)snprintf(tmp, sizeof tmp, "%.17g", json_real_value(v));
        s = tmp;
    } else if (json_is_boolean(v)) {
        s = json_is_true(v) ? "true" : "false";
        n = strlen(s);
    } else {
        return SAASD_EINVAL;
    }
    int rc = 0;
    if (n >= size) {
        n = size - 1;
        rc = SAASD_ETOOBIG;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    return rc;
}

/* A string value, blanks trimmed, copied into buf for strtod/strtoll; 0 or SAASD_EINVAL when
 * it does not fit. */
static int trimmed_copy(const json_t *v, char *buf, size_t size)
{
    size_t n;
    const char *s = trim(json_string_value(v), &n);
    if (n >= size)
        return SAASD_EINVAL;
    memcpy(buf, s, n);
    buf[n] = 0;
    return 0;
}

int jl_real(const json_t *obj, const char *name, double *out)
{
    if (jl_is_unset(obj, name))
        return SAASD_ENOTFOUND;
    json_t *v = jl_get(obj, name);
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return SAASD_EINVAL;
    char buf[64];
    if (trimmed_copy(v, buf, sizeof buf))
        return SAASD_EINVAL;
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (errno || *end || !isfinite(d))
        return SAASD_EINVAL;
    *out = d;
    return 0;
}

int jl_int(const json_t *obj, const char *name, long long *out)
{
    if (jl_is_unset(obj, name))
        return SAASD_ENOTFOUND;
    json_t *v = jl_get(obj, name);
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || fabs(d) > 9.0e15)
            return SAASD_EINVAL;
        *out = (long long)d;
        return 0;
    }
    if (!json_is_string(v))
        return SAASD_EINVAL;
    char buf[32];
    if (trimmed_copy(v, buf, sizeof buf))
        return SAASD_EINVAL;
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end)
        return SAASD_EINVAL;
    *out = x;
    return 0;
}

int jl_bool(const json_t *obj, const char *name, int *out)
{
    if (jl_is_unset(obj, name))
        return SAASD_ENOTFOUND;
    json_t *v = jl_get(obj, name);
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v)) {
        size_t n;
        const char *s = trim(json_string_value(v), &n);
        if (n == 4 && !strncasecmp(s, "true", 4)) {
            *out = 1;
            return 0;
        }
        if (n == 5 && !strncasecmp(s, "false", 5)) {
            *out = 0;
            return 0;
        }
    }
    return SAASD_EINVAL;
}

int jl_string_is(const json_t *obj, const char *name, const char *want)
{
    json_t *v = jl_get(obj, name);
    if (!json_is_string(v) || !want)
        return 0;
    size_t n;
    const char *s = trim(json_string_value(v), &n);
    return n == strlen(want) && !strncasecmp(s, want, n);
}

int jl_text_one_line(const char *text, size_t len)
{
    return !memchr(text, '\n', len) && !memchr(text, '\r', len);
}
