#include "daemon/html.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

char *html_page(const char *title, const char *message, const char *link_text, const char *link_url)
{
    char *t = html_escape(title), *m = html_escape(message);
    char *lt = link_text ? html_escape(link_text) : NULL;
    /* Only http(s) links: a rule must not be able to inject javascript: URLs. */
    int link_ok = link_url && (!strncmp(link_url, "https://", 8) || !strncmp(link_url, "http://", 7));
    char *lu = link_ok ? html_escape(link_url) : NULL;
    char *page = NULL;
    if (t && m && (!link_text || lt) && (!link_ok || lu)) {
        char link[4096] = "";
        if (link_ok)
            snprintf(link, sizeof link, "<p><a href=\"%s\">%s</a></p>\n", lu, lt ? lt : lu);
#define PAGE_FORMAT                                                                                \
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"                              \
    "<title>%s</title>\n<style>body{font-family:sans-serif;max-width:40em;margin:4em auto;}</style>" \
    "</head>\n<body>\n<h1>%s</h1>\n<p>%s</p>\n%s</body></html>\n"
        size_t n = strlen(PAGE_FORMAT) + 2 * strlen(t) + strlen(m) + strlen(link) + 1;
        page = malloc(n);
        if (page)
            snprintf(page, n, PAGE_FORMAT, t, t, m, link);
    }
    free(t);
    free(m);
    free(lt);
    free(lu);
    return page;
}
