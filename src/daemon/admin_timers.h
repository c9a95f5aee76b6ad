/* Rule timers on the admin API and the console: GET /admin/timers (paged), the timers of one
 * subscription, and an operator's cancel (admin_timers.c). */
#ifndef SAASD_ADMIN_TIMERS_H
#define SAASD_ADMIN_TIMERS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct httpd_request;
struct httpd_response;

/* GET /admin/timers (?limit, cursor, sub, offer, due_before). */
void admin_list_timers(struct daemon *d, const struct httpd_request *req, struct httpd_response *res);
/* /admin/timers/{sub}/{rest}: rest "NAME/cancel", POST only. */
void admin_timer_action(struct daemon *d, const char *sub_id, const char *rest, const struct httpd_request *req,
                        struct httpd_response *res);

/* Drop sub_id's timer name as an operator (via: "console", "admin API"), with an audit record,
 * in one batch: 0, SAASD_ENOTFOUND (no such timer) or another error. *cancelled (may be NULL):
 * the timer's view as it was. */
int admin_timer_cancel(struct daemon *d, const char *sub_id, const char *name, const char *via, json_t **cancelled);

/* A stored timer record as the API shows it: {subscription, offer, name, due, due_s, attempts, data}. */
json_t *admin_timer_view(json_t *rec);
/* The views of sub_id's timers (a new array, empty when none). */
json_t *admin_timers_of_sub(struct daemon *d, const char *sub_id);
/* epoch seconds as RFC 3339 UTC into buf. */
const char *admin_timer_due_text(int64_t at_s, char *buf, size_t size);

#endif
