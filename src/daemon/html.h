/* The customer-facing pages of the landing flow. Every value that came from a rule or from
 * Microsoft is HTML-escaped here, in one place. */
#ifndef SAASD_HTML_H
#define SAASD_HTML_H

#include <stddef.h>

/* 1 for the links a page may carry: http(s) URLs and absolute paths on this site ("/app"), never
 * javascript: or protocol-relative ("//host") ones. */
int html_link_ok(const char *url);

/* Escape text for HTML element content and attribute values; malloc'd result. */
char *html_escape(const char *text);

/* A page from a template: {{title}}, {{message}} and {{link}} are replaced by the escaped
 * title, the escaped message and an <a> element (empty unless html_link_ok(link_url)). A NULL
 * template means the built-in one. malloc'd result, NULL when out of memory. */
char *html_render(const char *template_text, const char *title, const char *message, const char *link_text,
                  const char *link_url);

#endif
