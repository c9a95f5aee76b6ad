/* Durable rule timers (ctx.timer): per subscription and name, stored in the TIMERS database
 * (key layouts in core/store.h), set and cancelled in the same batch as the decision that asked
 * for them (so only if that call succeeded), and fired at most once after their time by a
 * daemon thread: the firing batch deletes the timer together with the timer handler's decision
 * and audit record, so a timer is never fired twice, and one that fell due while the daemon
 * was down fires late, never not at all. A handler that fails (nil, err, raises, a limit) is
 * retried with backoff. Timers of an unsubscribed subscription are dropped, not fired. */
#ifndef SAASD_TIMERS_H
#define SAASD_TIMERS_H

#include <jansson.h>
#include <stdint.h>

struct daemon;
struct store_batch;

/* Add to batch: set (replace) sub_id's timer name to fire at at_s (epoch s) with data (may be
 * NULL), for offer. */
int timers_batch_set(struct daemon *d, struct store_batch *b, const char *sub_id, const char *offer,
                     const char *name, int64_t at_s, json_t *data);
/* Add to batch: drop sub_id's timer name (nothing when there is none). */
int timers_batch_cancel(struct daemon *d, struct store_batch *b, const char *sub_id, const char *name);
/* Add to batch: drop every timer of sub_id. */
int timers_batch_cancel_all(struct daemon *d, struct store_batch *b, const char *sub_id);

/* sub_id's timer name as stored ({sub_id, offer, name, at, data?, attempts?}; the caller
 * decrefs): 0 or SAASD_ENOTFOUND. */
int timers_get(struct daemon *d, const char *sub_id, const char *name, json_t **out);
/* Every timer of sub_id (a subscription has few), in name order: a new array of the records
 * timers_get answers. */
int timers_of_sub(struct daemon *d, const char *sub_id, json_t **out);

/* One pass: fire every timer due at now_s (at most 256). *fired (may be NULL) counts the handler
 * calls that succeeded. */
int timers_fire_due(struct daemon *d, int64_t now_s, int *fired);
/* The firing thread (every timers.interval, default 1 s). */
int timers_start(struct daemon *d);

#endif
