/* The customer-facing pages of the landing flow. Every value that came from a rule, the buyer,
 * the identity provider or Microsoft is HTML-escaped here, in one place. Templates are plain
 * placeholder substitution ({{name}}), no logic: repeated or optional parts (the purchase
 * details, the form, the fields) are built in C from escaped values and passed as fragments. */
#ifndef SAASD_HTML_H
#define SAASD_HTML_H

#include <stddef.h>
#include <stdio.h>

/* 1 for the links a page may carry and the redirects a rule may give: http(s) URLs with a
 * plain host, and paths on this site starting with exactly one "/". Never javascript:,
 * protocol-relative ("//host"), backslashes ("/\host", read as "//host" by browsers), their
 * encoded forms ("/%5Chost", "/%2F/host"), blanks or control characters. */
int html_link_ok(const char *url);

/* Escape text for HTML element content and attribute values; malloc'd result. */
char *html_escape(const char *text);
/* Write text escaped to f (an open_memstream fragment). */
void html_put(FILE *f, const char *text);

/* One placeholder's value: text is escaped when filled in; html is a fragment already built
 * from escaped values and goes in as it is. Set one of the two (NULL = empty). */
struct html_value {
    const char *name; /* without braces: "title" fills {{title}} */
    const char *text;
    const char *html;
};

/* The template with each {{name}} of values replaced; unknown placeholders are left as they
 * are. A NULL template means the built-in page. malloc'd result, NULL when out of memory. */
char *html_fill(const char *template_text, const struct html_value *values, size_t n);

#endif
