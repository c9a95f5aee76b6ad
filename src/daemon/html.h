/* The customer-facing pages of the landing flow. All text that came from a rule or from
 * Microsoft is HTML-escaped here, in one place. */
#ifndef SAASD_HTML_H
#define SAASD_HTML_H

#include <stddef.h>

/* Escape text for HTML element content and attribute values; malloc'd result. */
char *html_escape(const char *text);

/* A complete page: a title and a paragraph, both escaped; optional link (escaped, only http(s)). */
char *html_page(const char *title, const char *message, const char *link_text, const char *link_url);

#endif
