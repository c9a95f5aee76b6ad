/* The operator console: server-rendered HTML pages on the admin listener (loopback), for the
 * ISV's sales, support and finance staff. See console.c for the routes and the sign-in. */
#ifndef SAASD_CONSOLE_H
#define SAASD_CONSOLE_H

#include <stdint.h>

struct daemon;
struct httpd_request;
struct httpd_response;

/* 1 when path belongs to the console (/console and below). */
int console_path(const char *path);
/* Answer one console request (the console checks its own session; the admin key is asked once
 * on its sign-in form). */
void console_handle(struct daemon *d, const struct httpd_request *req, struct httpd_response *res);

/* admin.c: retry ("retry") or abandon ("abandon") outbox entry seq_text, answered as JSON in res
 * (200 when done). Shared by the JSON API and the console. */
void admin_outbox_action(struct daemon *d, const char *seq_text, const char *verb, struct httpd_response *res);
/* admin.c: a failing event sink's "retry" (next attempt now) or "skip" (give up on event seq,
 * its retrying_seq), logged with `via` ("api", "console"); answered as JSON in res (200 when
 * done, 404 unknown sink, 409 not failing on seq). Shared by the JSON API and the console. */
void admin_sink_action(struct daemon *d, const char *name, const char *verb, uint64_t seq, const char *via,
                       struct httpd_response *res);

#endif
