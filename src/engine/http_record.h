/* ctx.http calls kept in a decision's replay record, and answered from it during a replay
 * (engine-internal; see http_record.c for what is kept and what never is). */
#ifndef SAASD_ENGINE_HTTP_RECORD_H
#define SAASD_ENGINE_HTTP_RECORD_H

#include "bind/bind.h"

#include <stdint.h>

struct json_t;

#define HTTP_RECORD_BODY_MAX (64 * 1024) /* a longer response body is marked, not kept */
#define HTTP_RECORD_TOTAL_MAX (256 * 1024) /* bodies kept per rule call, all its calls together */
#define HTTP_RECORD_MAX_CALLS 64         /* calls recorded per rule call */

/* Append one ctx.http call and its outcome (rc < 0: err) to log (a JSON array; NULL: nothing).
 * 0, SAASD_ETOOBIG past HTTP_RECORD_MAX_CALLS, SAASD_ENOMEM. */
int http_record_add(struct json_t *log, const struct bind_http_req *req, int rc, const struct bind_http_resp *resp,
                    const char *err);

/* Answer req from recorded (an array written by http_record_add): the first entry not used yet
 * (bits of *used) with the same method and URL. 0 with resp filled; a recorded failure (the same
 * err the rule got then); SAASD_ENOTFOUND with err filled when the record cannot answer it. */
int http_record_answer(const struct json_t *recorded, uint64_t *used, const struct bind_http_req *req,
                       struct bind_http_resp *resp, char *err, size_t errsz);

#endif
