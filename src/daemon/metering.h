/* Metered billing (contract §7): the ISV reports usage per subscription and dimension as it
 * happens; saasd adds it up per UTC hour in the store and sends each hour once, after it has
 * closed (plus a grace period), in batches of up to 25 usage events. One event per
 * (subscription, dimension, hour) is what Microsoft accepts (§7.4), so nothing is ever sent
 * twice: a bucket goes open -> sending -> sent | failed | folded, and usage for an hour that
 * is already being sent is refused. A bucket Microsoft kept failing (5 whole-call failures) or
 * answered Expired is folded: its quantity moves to the current hour's bucket, in the same
 * commit, so usage is billed late rather than lost (§7.4). */
#ifndef SAASD_METERING_H
#define SAASD_METERING_H

#include <stddef.h>
#include <stdint.h>

struct daemon;

/* Report quantity (> 0) of dimension for sub_id at when_ms (wall clock, within the last 24 h,
 * not in the future). The offer's usage rule decides how much of it to bill (default: all);
 * that part is added to the hour's bucket in the same commit as the rule's ctx.store writes.
 * *billed (may be NULL) gets the billed part. SAASD_EINVAL (message in err), SAASD_ENOTFOUND
 * (no local record of sub_id), SAASD_ERULE / SAASD_ELIMIT (the rule refused or failed; nothing
 * recorded), SAASD_ECONFLICT (that hour is already sent or being sent), or a store error. */
int metering_record(struct daemon *d, const char *sub_id, const char *dimension, double quantity, int64_t when_ms,
                    double *billed, char *err, size_t errsize);

struct metering_pass {
    int sent, failed, retry, folded;
};
/* One sending pass over the closed hours (ignore_grace: every hour that has ended). */
int metering_flush(struct daemon *d, int ignore_grace, struct metering_pass *out);

/* Periodic passes (metering.interval); stops with the daemon. */
int metering_start(struct daemon *d);

#endif
