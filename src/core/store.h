/* LMDB persistence. One module owns the environment and its named databases.
 *
 * Reads use their own read-only snapshot per call. Writes are collected in batches; a batch is
 * applied atomically (all its operations or none) and many batches share one fsync'd write
 * transaction (group commit) run by a single writer thread. A caller learns that its batch is
 * durable from store_commit() returning 0, or from the store_commit_async() callback.
 *
 * Key layouts used by saasd (documented here so every module agrees):
 *   SUBSCRIPTIONS  subscription id              -> JSON (local record, see flows)
 *   OPERATIONS     operation id                 -> JSON (dedupe + processing state)
 *   INBOX          be64 seq                     -> JSON webhook event awaiting processing
 *   OUTBOX         be64 seq                     -> JSON side effect awaiting retry; starts with
 *                  {"next_at_ms":N and carries "sub_id" (inbox.c writes it so)
 *   OUTBOX_DUE     be64 next_at_ms + be64 seq   -> subscription id   } kept by the store itself
 *   OUTBOX_SUBS    sub id + '\0' + be64 seq     -> be64 next_at_ms   } for every OUTBOX write
 *   AUDIT          subscription id + be64 seq   -> JSON decision record (with rule hash)
 *   RULE_KV        offer id + '\0' + user key   -> bytes written by rules through ctx.store
 *   USAGE          sub id + '\0' + dimension + '\0' + be64 hour start (epoch s) -> JSON meter bucket
 *   TIMERS         'd' + be64 fire time (epoch s) + sub id + '\0' + name -> JSON timer (due order)
 *                  'n' + sub id + '\0' + name -> be64 fire time (find a timer by name)
 *   EVENTS         be64 seq                     -> JSON event {id, type, time, offer, subscription, data}
 *                  (daemon/events.c), appended in the batch of the change it reports
 *   META           "schema_version" (decimal ASCII), "append_seq" (be64: next sequence number)
 *                  "usage_recon:" + be64 seq -> JSON record of a usage reconciliation run, the
 *                  last 30 (daemon/usage_recon_runs.c: appended, and the oldest pruned, in one batch)
 *
 * Threads: every function may be called from any thread. Reads never wait for the writer,
 * except for the short moment the writer grows the map. Two things would deadlock and are
 * refused with SAASD_EINVAL instead: store_commit() from inside a store_scan() callback of the
 * same store, and store_commit() from a store_commit_async() done callback.
 *
 * Schema: META holds the schema version. store_open() runs the migration steps from the
 * version on disk up to STORE_SCHEMA_VERSION in the same transaction that records the new
 * version (a crash mid-migration leaves the old version), and refuses a newer version.
 *   v0  META has no "schema_version" and no "append_seq" (appends were numbered from the
 *       largest key found in INBOX/OUTBOX/AUDIT).
 *   v1  META "append_seq" holds the next append sequence number.
 *   v2  the USAGE database (metered usage per subscription, dimension and hour).
 *   v3  OUTBOX_DUE and OUTBOX_SUBS: the outbox indexed by retry time and by subscription, so
 *       workers read only the entries that are due (built from OUTBOX by the migration).
 *   v4  the TIMERS database (durable rule timers, see daemon/timers.h).
 *   v5  the EVENTS database (events for the ISV's sinks); META "sink:<name>" holds each sink's
 *       cursor (be64: the last event sequence number it has passed).
 */
#ifndef SAASD_STORE_H
#define SAASD_STORE_H

#include <stddef.h>
#include <stdint.h>

enum store_db {
    STORE_SUBSCRIPTIONS = 0,
    STORE_OPERATIONS,
    STORE_INBOX,
    STORE_OUTBOX,
    STORE_AUDIT,
    STORE_RULE_KV,
    STORE_USAGE,
    STORE_OUTBOX_DUE,
    STORE_OUTBOX_SUBS,
    STORE_TIMERS,
    STORE_EVENTS,
    STORE_META,
    STORE_DB_COUNT
};

/* The one translator from LMDB (and errno) codes to SAASD_E*, also for the emulator's own
 * LMDB file. Logs nothing. */
int store_mdb_err(int rc);

/* Current on-disk schema version written to META. */
#define STORE_SCHEMA_VERSION 5

/* Longest key LMDB accepts (its default build); longer keys are refused with SAASD_ETOOBIG. */
#define STORE_MAX_KEY 511

struct store_options {
    size_t map_size;      /* initial map size in bytes; 0 = 64 MiB */
    size_t map_size_max;  /* the map grows up to this; 0 = 16 GiB */
    unsigned max_group;   /* most batches in one transaction; 0 = 4096 */
    int no_sync;          /* tests and benchmarks of CPU cost only: skip fsync (NOT durable) */
};

struct store;
struct store_batch;

/* The keys' big-endian 64-bit numbers (sequence numbers, times): they sort as numbers. */
void store_be64_put(unsigned char out[8], uint64_t v);
uint64_t store_be64_get(const unsigned char in[8]);

/* Open (creating if needed) the environment in directory dir. Migrates an older schema;
 * refuses a newer one with SAASD_ESCHEMA. opt may be NULL for defaults. */
int store_open(const char *dir, const struct store_options *opt, struct store **out);
/* Waits for queued batches to be committed, stops the writer, closes the environment. */
void store_close(struct store *s);

/* Copy of the value under key into a malloc'd buffer (NUL-terminated for convenience; the
 * caller frees). SAASD_ENOTFOUND when absent. */
int store_get(struct store *s, enum store_db db, const void *key, size_t klen,
              void **val, size_t *vlen);

/* Calls fn for every key starting with prefix (plen may be 0), in key order, all from one
 * consistent snapshot. Pointers are valid only during the callback. fn returns 0 to go on,
 * anything else stops the scan and is returned. */
typedef int (*store_scan_fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);
int store_scan(struct store *s, enum store_db db, const void *prefix, size_t plen,
               store_scan_fn fn, void *arg);
/* Same, for every key from start (inclusive, slen may be 0 for the first key) to the end. */
int store_scan_from(struct store *s, enum store_db db, const void *start, size_t slen,
                    store_scan_fn fn, void *arg);

/* Number of keys in db, from LMDB's own count (no scan). */
int store_count(struct store *s, enum store_db db, size_t *out);

/* Batches: an ordered list of writes, applied atomically. Keys and values are copied. */
int store_batch_new(struct store_batch **out);
void store_batch_free(struct store_batch *b);
int store_batch_put(struct store_batch *b, enum store_db db, const void *key, size_t klen,
                    const void *val, size_t vlen);
int store_batch_del(struct store_batch *b, enum store_db db, const void *key, size_t klen);
/* The batch applies only if key is absent from db at commit time; otherwise nothing of the
 * batch is written and the commit reports SAASD_EEXIST. Deduplication uses this. */
int store_batch_require_absent(struct store_batch *b, enum store_db db, const void *key, size_t klen);
/* Put under key = prefix + 8-byte big-endian sequence number that the store assigns
 * (monotonic per store, never reused). */
int store_batch_append(struct store_batch *b, enum store_db db, const void *prefix, size_t plen,
                       const void *val, size_t vlen);
/* Read-modify-write of one key, atomic with the rest of the batch. fn runs on the writer
 * thread inside the batch's transaction and sees the value as left by earlier operations
 * (old is NULL when absent; it points into the map and is valid only during the call). It
 * returns 0 and sets *new_val to a malloc'd value the store writes and frees, or leaves
 * *new_val NULL to keep the key unchanged; a negative code fails the whole batch (nothing
 * written, the commit reports that code). fn may run more than once for one commit (the group
 * is retried after the map grows): it must depend only on its inputs, be quick, and not call
 * the store. arg must stay valid until the commit has returned or called back. */
typedef int (*store_update_fn)(void *arg, const void *old, size_t oldlen,
                               void **new_val, size_t *new_len);
int store_batch_update(struct store_batch *b, enum store_db db, const void *key, size_t klen,
                       store_update_fn fn, void *arg);
/* Same, but the batch keeps its own copy of arglen bytes at arg (unaligned: copy fields out)
 * and passes that to fn: for callers that hand the batch on before it is committed. */
int store_batch_update_copy(struct store_batch *b, enum store_db db, const void *key, size_t klen,
                            store_update_fn fn, const void *arg, size_t arglen);
/* Drop every operation so the batch can be filled again. */
void store_batch_clear(struct store_batch *b);
/* After a successful commit: the sequence number given to the batch's first append (later
 * appends of the batch got first + 1, first + 2, ... in order). SAASD_ENOTFOUND when the
 * batch had no append or did not commit. */
int store_batch_seq(const struct store_batch *b, uint64_t *first);

/* Commit and wait until durable: 0, SAASD_EEXIST (guard key present, nothing written),
 * SAASD_EFULL (map could not grow), or another error. The caller still owns b. */
int store_commit(struct store *s, struct store_batch *b);
/* Same, without waiting: the store owns b and calls done(arg, rc) from its notifier thread once
 * the batch is durable or failed. done must be quick and must not commit itself. When this
 * returns non-zero (SAASD_ECLOSED after store_close began) done is never called and the
 * caller still owns b. */
typedef void (*store_done_fn)(void *arg, int rc);
int store_commit_async(struct store *s, struct store_batch *b, store_done_fn done, void *arg);
/* Asks the notifier to call after(arg) once per reported group of commits that holds at least
 * one batch carrying this (after, arg) pair and committed, however many such batches it held
 * (the webhook handler wakes the inbox workers once per group commit instead of once per
 * event). It runs once the group is durable and before any of the group's batches is reported
 * (done callback or store_commit returning), so a committer that saw its batch reported knows
 * the hook has run and may free what it uses. Called on the notifier thread, with the same
 * limits as a done callback. Set before commit. */
typedef void (*store_after_fn)(void *arg);
void store_batch_after_group(struct store_batch *b, store_after_fn after, void *arg);

struct store_stats {
    uint64_t batches;        /* batches committed */
    uint64_t batches_failed; /* batches refused (guard key present, map full, ...) */
    uint64_t transactions;   /* write transactions committed (one data fdatasync each) */
    uint64_t syncs;          /* extra flushes: committed batches waiting with nothing queued */
    uint64_t map_grows;
    uint64_t map_size;
};
void store_get_stats(struct store *s, struct store_stats *out);
/* The schema version on disk after open (always STORE_SCHEMA_VERSION once open succeeded). */
int store_schema_version(struct store *s, unsigned *out);

#endif
