/* Matching request paths against the routers' patterns (route.h). */
#include "core/route.h"

#include <string.h>

/* One {part} of a pattern at s: how many characters of s it takes, or -1 when it does not fit. */
static long capture(const char *part, size_t plen, const char *s, struct route_args *a)
{
    if (plen == 4 && !memcmp(part, "tail", 4)) {
        a->tail = s;
        return *s && *s != '/' ? -1 : (long)strlen(s);
    }
    if (plen == 4 && !memcmp(part, "rest", 4)) {
        size_t n = strlen(s);
        if (!n || n >= sizeof a->rest)
            return -1;
        memcpy(a->rest, s, n + 1);
        return (long)n;
    }
    size_t n = strcspn(s, "/"); /* {id}, or {seq}: digits only */
    if (!n || n >= sizeof a->id || (plen == 3 && !memcmp(part, "seq", 3) && strspn(s, "0123456789") < n))
        return -1;
    memcpy(a->id, s, n);
    a->id[n] = 0;
    return (long)n;
}

int route_matches(const char *pattern, const char *path, struct route_args *out)
{
    memset(out, 0, sizeof *out);
    out->tail = "";
    const char *p = pattern, *s = path;
    while (*p) {
        if (*p != '{') {
            if (*p++ != *s++)
                return 0;
            continue;
        }
        const char *close = strchr(p, '}');
        if (!close)
            return 0;
        long took = capture(p + 1, (size_t)(close - p - 1), s, out);
        if (took < 0)
            return 0;
        s += took;
        p = close + 1;
    }
    return !*s;
}

int route_row_matches(const char *row_method, const char *pattern, const char *method, const char *path,
                      struct route_args *out)
{
    return (!row_method || !strcmp(row_method, method)) && route_matches(pattern, path, out);
}
