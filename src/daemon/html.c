#include "daemon/html.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Accessible and responsive without JavaScript: one column, system fonts, visible focus,
 * labels on every input, colours from the offer's brand. */
static const char builtin_template[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n{{head}}"
    "<title>{{title}} - {{product}}</title>\n"
    "<style>\n"
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;line-height:1.5;margin:0;color:#1b1b1b;background:#f6f7f9}\n"
    "header{background:{{color}};color:#fff;padding:.8em 1.2em;display:flex;align-items:center;gap:.8em}\n"
    "header img{max-height:2.2em}\nheader span{font-weight:600;font-size:1.1em}\n"
    "main{max-width:40em;margin:1.5em auto;padding:1.5em;background:#fff;border-radius:6px}\n"
    "h1{font-size:1.5em;margin-top:0}\ndl{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1em}\n"
    "dt{font-weight:600}\ndd{margin:0;overflow-wrap:anywhere}\n"
    "label{display:block;font-weight:600;margin-top:1em}\n"
    "input{font:inherit;width:100%;box-sizing:border-box;padding:.5em;border:1px solid #767676;border-radius:4px}\n"
    "button,.button{font:inherit;margin-top:1.2em;padding:.6em 1.4em;border:0;border-radius:4px;"
    "background:{{accent}};color:#fff;cursor:pointer;text-decoration:none;display:inline-block}\n"
    ":focus{outline:3px solid #ffbf47;outline-offset:2px}\n"
    ".signout{margin-top:1.5em;padding-top:.2em;border-top:1px solid #ddd}\n"
    ".signout button{background:#fff;color:{{accent}};border:1px solid {{accent}};padding:.4em 1em}\n"
    ".note{border-left:4px solid #b35c00;background:#fff4e5;padding:.6em 1em}\n"
    ".error{color:#b00020;font-weight:600}\nfooter{text-align:center;color:#555;font-size:.9em;margin:1em}\n"
    "@media (max-width:30em){dl{grid-template-columns:1fr}main{margin:0;border-radius:0}}\n"
    "</style></head>\n<body>\n<header>{{logo}}<span>{{product}}</span></header>\n"
    "<main>\n<h1>{{title}}</h1>\n<p>{{message}}</p>\n{{body}}{{link}}</main>\n"
    "<footer>{{support}}</footer>\n</body></html>\n";

int html_link_ok(const char *url)
{
    if (!url || !*url || strlen(url) > 2048 || strchr(url, '\\') || strcasestr(url, "%5c"))
        return 0;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return 0;
    const char *host = !strncmp(url, "https://", 8) ? url + 8 : !strncmp(url, "http://", 7) ? url + 7 : NULL;
    if (host) {
        size_t n = strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
        return n > 0 && (host[n] == 0 || host[n] == '/' || host[n] == ':');
    }
    return url[0] == '/' && url[1] != '/' && strncasecmp(url, "/%2f", 4) != 0;
}

char *html_escape(const char *text)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    html_put(f, text);
    fclose(f);
    return out;
}

void html_put(FILE *f, const char *text)
{
    for (const char *p = text ? text : ""; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*p, f);
        }
    }
}

char *html_fill(const char *template_text, const struct html_value *values, size_t n)
{
    const char *tpl = template_text ? template_text : builtin_template;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    for (const char *p = tpl; *p;) {
        const struct html_value *hit = NULL;
        size_t nlen = 0;
        if (p[0] == '{' && p[1] == '{') {
            for (size_t i = 0; i < n && !hit; i++) {
                nlen = strlen(values[i].name);
                if (!strncmp(p + 2, values[i].name, nlen) && !strncmp(p + 2 + nlen, "}}", 2))
                    hit = &values[i];
            }
        }
        if (!hit) {
            fputc(*p++, f);
            continue;
        }
        if (hit->html)
            fputs(hit->html, f);
        else
            html_put(f, hit->text);
        p += nlen + 4;
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
