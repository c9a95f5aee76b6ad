/* The fast path of webhook_body.c: the members a webhook is filed under, read with yajl's
 * event parser, without building a tree. Used only where it provably agrees with the tree path
 * (jansson + json_lenient), and otherwise declines, so the caller parses the body as before:
 *   - the body is printable ASCII (plus tab, CR, LF) without a backslash: no escapes, so no
 *     \u0000 or lone surrogates (which jansson refuses and yajl does not) and no invalid UTF-8;
 *     yajl then accepts only what jansson accepts (same grammar; integer and real overflow are
 *     checked by both; yajl refuses LLONG_MIN, which only sends that body down the tree path);
 *   - a JSON object nesting at most WS_MAX_DEPTH levels (far below jansson's 2048);
 *   - id, subscriptionId and action present once each at the top level as non-blank strings
 *     that fit their buffers, offerId absent or such a string, and no other top-level key equal
 *     to one of them but for case (json_lenient's case-insensitive fallback).
 * Every decline is the tree path's business, including bodies that are not JSON at all. */
#ifndef SAASD_WEBHOOK_SCAN_H
#define SAASD_WEBHOOK_SCAN_H

#include <stddef.h>

#define WS_MAX_DEPTH 64

struct webhook_event;

/* 1 when op_id, sub_id, action_text and offer_id of out were filled (trimmed of blanks as
 * jl_string does), 0 when declined (out's id fields are then unspecified). */
int webhook_scan(const char *body, size_t len, struct webhook_event *out);

#endif
