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

#include <jansson.h>

struct daemon;
struct store;

/* Report quantity (> 0) of dimension for sub_id at when_ms (wall clock, within the last 24 h,
 * not in the future). The offer's usage rule decides how much of it to bill (default: all);
 * that part is added to the hour's bucket in the same commit as the rule's ctx.store writes.
 * *billed (may be NULL) gets the billed part. SAASD_EINVAL (message in err), SAASD_ENOTFOUND
 * (no local record of sub_id), SAASD_ERULE / SAASD_ELIMIT (the rule refused or failed; nothing
 * recorded), SAASD_ECONFLICT (that hour is already sent or being sent), or a store error. */
int metering_record(struct daemon *d, const char *sub_id, const char *dimension, double quantity, int64_t when_ms,
                    double *billed, char *err, size_t errsize);

/* ctx.meter: add quantity (> 0) of dimension to sub_id's bucket of the hour of when_ms, as an
 * update in batch (committed with the rule's decision, or not at all). No usage rule runs: the
 * rule that metered decided. SAASD_EINVAL for bad ids or quantity; at commit, SAASD_ECONFLICT
 * when that hour is already being sent. */
struct store_batch;
int metering_batch_add(struct store_batch *b, const char *sub_id, const char *dimension, double quantity,
                       int64_t when_ms);

struct metering_pass {
    int sent, failed, retry, folded;
};
/* One sending pass over the closed hours (ignore_grace: every hour that has ended). */
int metering_flush(struct daemon *d, int ignore_grace, struct metering_pass *out);

/* Periodic passes (metering.interval); stops with the daemon. */
int metering_start(struct daemon *d);

/* Usage reconciliation (usage_recon.c): what saasd sent against what Microsoft recorded. */
struct usage_recon {
    int checked; /* (day, subscription, dimension) groups compared */
    int skipped; /* groups left out: a bucket of theirs is being sent or was sent less than lag_s ago */
    /* Arrays of {subscriptionId, dimension, day (YYYY-MM-DD), saasd, microsoft} quantities (0 on
     * the side that has nothing). Owned by the struct; release with usage_recon_clear(). */
    json_t *missing;  /* saasd sent it, Microsoft has no row */
    json_t *mismatch; /* both have it, the quantities differ by more than 1e-6 */
    json_t *unknown;  /* Microsoft has a row saasd never sent (another system, usage from before
                       * saasd, or an hour saasd marked failed after a Duplicate answer) */
    /* Microsoft's rows whose reconStatus says it does not bill them (Rejected, Mismatch,
     * TestHeaders, DryRun, or a value the contract does not list), whatever the quantities:
     * {subscriptionId, dimension, day, planId, reconStatus, microsoft (submittedQuantity),
     * meaning}. Accepted and Submitted rows are not listed. */
    json_t *not_accepted;
    /* Groups whose processedQuantity (Microsoft's rows that carry one and are processed, i.e.
     * not Submitted) differs from what saasd sent: {subscriptionId, dimension, day, saasd,
     * microsoft (submittedQuantity), processed}. A group with a row that carries none is not
     * judged. */
    json_t *processed_mismatch;
    uint64_t run; /* the id of the run's stored record (usage_recon_runs.c); 0 when not stored */
};
/* Query Microsoft's usage (§7.5) for the last `days` UTC days (1..7: from the start of the
 * day days-1 days ago through now) and compare it per (day, subscription, dimension) with the
 * local buckets in state "sent" of those days (submittedQuantity, and processedQuantity where
 * Microsoft processed the rows, against the summed bucket quantities). Each difference is
 * logged and counted in saasd_drift_total{kind="usage_missing|usage_mismatch|usage_unknown|
 * usage_processed_mismatch"}; a row whose reconStatus is not billed is listed in not_accepted
 * and counted as kind="usage_not_accepted". Microsoft's reporting lags: a (day, subscription, dimension)
 * with a bucket sent less than lag_s seconds ago, or still being sent, is skipped on both sides. *out is filled on
 * success and empty otherwise. Every run that got past its arguments is logged and counted in
 * saasd_usage_reconcile_runs_total{result}. SAASD_EINVAL (days, lag_s), a marketplace call
 * error, SAASD_ECLOSED (the daemon is stopping), or a store error. */
int metering_reconcile(struct daemon *d, const char *trigger, int days, int lag_s, struct usage_recon *out);
void usage_recon_clear(struct usage_recon *r);
/* The periodic run (usage_reconcile.interval, .days, .lag_s); stops with the daemon. The first
 * run comes one interval after the end of the last stored run, but not sooner than 10 minutes
 * (or one interval) after the start. */
int usage_recon_start(struct daemon *d);

/* The record of each run (usage_recon_runs.c), kept in META (store.h), the last 30. */
struct usage_recon_run {
    const char *trigger;           /* "periodic" or "admin" */
    int64_t started_ms, ended_ms;  /* wall clock */
    const char *from_day, *to_day; /* the window, YYYY-MM-DD (UTC) */
    int rc;                        /* the run's result: 0 or its error */
    const struct usage_recon *out; /* its findings (empty lists or NULL members when it failed) */
};
/* Stores the run and drops the oldest beyond 30, in one commit; *id: the record's id. */
int usage_recon_store_run(struct store *s, const struct usage_recon_run *run, uint64_t *id);
/* The stored runs, newest first, at most limit, without their findings: a JSON array of
 * {id, trigger, started_at, ended_at, from, to, result, error?, counts, truncated}. */
int usage_recon_runs(struct store *s, size_t limit, json_t **out);
/* One run with its findings; SAASD_ENOTFOUND when no such run is kept. */
int usage_recon_run_get(struct store *s, uint64_t id, json_t **out);
/* When the last stored run ended (epoch s); SAASD_ENOTFOUND when none is. */
int usage_recon_last_end(struct store *s, int64_t *out);

#endif
