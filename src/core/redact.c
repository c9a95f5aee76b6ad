#include "core/redact.h"
#include "core/err.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *const secret_words[] = {
    "secret", "token", "password", "passwd", "authorization", "assertion",
    "api_key", "apikey", "admin_key", "private", "credential", "cookie", NULL
};

int redact_is_secret_name(const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; secret_words[i]; i++)
        if (strcasestr(name, secret_words[i]))
            return 1;
    return 0;
}

static int is_b64url(int c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '=';
}

/* Length of a JWT-shaped run at p ("eyJ" + base64url with two dots), or 0. */
static size_t jwt_run(const char *p)
{
    if (strncmp(p, "eyJ", 3) != 0)
        return 0;
    size_t n = 0;
    int dots = 0;
    while (p[n] && (is_b64url((unsigned char)p[n]) || p[n] == '.')) {
        if (p[n] == '.')
            dots++;
        n++;
    }
    return dots >= 1 ? n : 0;
}

/* If p starts a "name=" or "name:" or "\"name\":" whose name is secret, return the offset of
 * the value start, else 0. */
static size_t secret_pair_value(const char *text, const char *p)
{
    if (p != text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
        return 0; /* only at a word start */
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '-')
        n++;
    if (n == 0 || n > 64)
        return 0;
    char name[65];
    memcpy(name, p, n);
    name[n] = 0;
    if (!redact_is_secret_name(name))
        return 0;
    size_t v = n;
    if (p[v] == '"')
        v++;
    while (p[v] == ' ')
        v++;
    if (p[v] != '=' && p[v] != ':')
        return 0;
    v++;
    while (p[v] == ' ' || p[v] == '"')
        v++;
    /* "Bearer xyz" keeps the scheme word visible, masks the credential. */
    if (strncasecmp(p + v, "bearer ", 7) == 0)
        v += 7;
    return v;
}

int redact_text(const char *text, char *out, size_t size)
{
    if (!out || size == 0)
        return SAASD_EINVAL;
    size_t o = 0;
    int rc = 0;
    const char *p = text ? text : "";
    while (*p) {
        size_t skip = 0, keep = 0;
        size_t j = jwt_run(p);
        if (j) {
            skip = j;
        } else if (strncasecmp(p, "bearer ", 7) == 0 && (p == text || !isalnum((unsigned char)p[-1]))) {
            keep = 7;
            skip = 7;
            while (p[skip] && !isspace((unsigned char)p[skip]) && p[skip] != '"' && p[skip] != ',')
                skip++;
        } else if ((keep = secret_pair_value(text, p)) != 0) {
            skip = keep;
            while (p[skip] && !isspace((unsigned char)p[skip]) && p[skip] != '"' && p[skip] != '&' &&
                   p[skip] != ',' && p[skip] != '}')
                skip++;
        }
        if (skip) {
            const char *mask = REDACT_MASK;
            size_t need = keep + strlen(mask);
            if (o + need >= size) {
                rc = SAASD_ETOOBIG;
                break;
            }
            memcpy(out + o, p, keep);
            memcpy(out + o + keep, mask, strlen(mask));
            o += need;
            p += skip;
            continue;
        }
        if (o + 1 >= size) {
            rc = SAASD_ETOOBIG;
            break;
        }
        out[o++] = *p++;
    }
    out[o] = 0;
    return rc;
}
