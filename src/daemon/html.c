#include "daemon/html.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char builtin_template[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{{title}}</title>\n"
    "<style>body{font-family:sans-serif;max-width:40em;margin:4em auto;}</style></head>\n"
    "<body>\n<h1>{{title}}</h1>\n<p>{{message}}</p>\n{{link}}</body></html>\n";

int html_link_ok(const char *url)
{
    return url && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7) || (url[0] == '/' && url[1] != '/'));
}

char *html_escape(const char *text)
{
    if (!text)
        text = "";
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '&' ? 5 : *p == '<' || *p == '>' ? 4 : *p == '"' || *p == '\'' ? 6 : 1;
    char *o = malloc(n + 1), *q = o;
    if (!o)
        return NULL;
    for (const char *p = text; *p; p++) {
        const char *rep = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '"' ? "&quot;" : *p == '\'' ? "&#39;" : NULL;
        if (rep) {
            memcpy(q, rep, strlen(rep));
            q += strlen(rep);
        } else {
            *q++ = *p;
        }
    }
    *q = 0;
    return o;
}

/* Length of the output when each placeholder is replaced (or, with out, write it). */
static size_t expand(const char *tpl, const char *const values[3], char *out)
{
    static const char *const names[3] = {"{{title}}", "{{message}}", "{{link}}"};
    size_t n = 0;
    for (const char *p = tpl; *p;) {
        int hit = -1;
        for (int i = 0; i < 3 && hit < 0; i++)
            if (!strncmp(p, names[i], strlen(names[i])))
                hit = i;
        const char *piece = hit >= 0 ? values[hit] : p;
        size_t len = hit >= 0 ? strlen(values[hit]) : 1;
        if (out)
            memcpy(out + n, piece, len);
        n += len;
        p += hit >= 0 ? strlen(names[hit]) : 1;
    }
    return n;
}

char *html_render(const char *template_text, const char *title, const char *message, const char *link_text,
                  const char *link_url)
{
    /* A rule must not be able to inject javascript: URLs. */
    int link_ok = html_link_ok(link_url);
    char *t = html_escape(title), *m = html_escape(message);
    char *lt = link_ok ? html_escape(link_text ? link_text : link_url) : NULL;
    char *lu = link_ok ? html_escape(link_url) : NULL;
    char *link = NULL, *page = NULL;
    if (!t || !m || (link_ok && (!lt || !lu)))
        goto done;
    size_t ln = link_ok ? strlen(lu) + strlen(lt) + 32 : 1;
    if (!(link = malloc(ln)))
        goto done;
    if (link_ok)
        snprintf(link, ln, "<p><a href=\"%s\">%s</a></p>\n", lu, lt);
    else
        link[0] = 0;
    const char *values[3] = {t, m, link};
    const char *tpl = template_text ? template_text : builtin_template;
    size_t n = expand(tpl, values, NULL);
    if ((page = malloc(n + 1)) != NULL) {
        expand(tpl, values, page);
        page[n] = 0;
    }
done:
    free(t);
    free(m);
    free(lt);
    free(lu);
    free(link);
    return page;
}
