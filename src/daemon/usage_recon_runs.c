/* The record of each usage reconciliation run (usage_recon.c): one JSON document per run in
 * META under "usage_recon:" + be64 sequence number (store.h), the last RUNS_KEPT of them, so an
 * operator can ask what last night's run found and the periodic schedule survives a restart.
 * A record: {trigger, started_at, ended_at, from, to, result, error?, counts, findings,
 * truncated}; the findings are capped at FINDINGS_KEPT so a record stays small whatever the
 * window holds (the counts are complete). */
#include "daemon/daemon.h"
#include "daemon/metering.h"

#include "core/err.h"
#include "core/store.h"
#include "core/utc.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUN_PREFIX "usage_recon:"
#define RUN_PREFIX_LEN (sizeof RUN_PREFIX - 1)
#define RUN_KEY_LEN (RUN_PREFIX_LEN + 8)
#define RUNS_KEPT 30
#define FINDINGS_KEPT 100

/* Each list of a run's answer, under its drift kind (the record's counts and findings' "kind"). */
static const struct {
    const char *kind;
    size_t list; /* offset of the json_t * list in struct usage_recon */
} finding_lists[] = {
    {"usage_missing", offsetof(struct usage_recon, missing)},
    {"usage_mismatch", offsetof(struct usage_recon, mismatch)},
    {"usage_unknown", offsetof(struct usage_recon, unknown)},
    {"usage_processed_mismatch", offsetof(struct usage_recon, processed_mismatch)},
    {"usage_not_accepted", offsetof(struct usage_recon, not_accepted)},
};

/* Adding a run and pruning the oldest read the ring then commit: two runs at once (periodic and
 * on demand) would both see room for one more. */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;

/* Counts by kind and the first FINDINGS_KEPT findings (each with its kind) into rec. */
static int add_findings(json_t *rec, const struct usage_recon *out)
{
    json_t *counts = json_pack("{s:i, s:i}", "checked", out->checked, "skipped", out->skipped);
    json_t *findings = json_array();
    size_t truncated = 0;
    for (size_t k = 0; counts && findings && k < sizeof finding_lists / sizeof finding_lists[0]; k++) {
        json_t *list = *(json_t *const *)((const char *)out + finding_lists[k].list);
        size_t i;
        json_t *item;
        json_object_set_new(counts, finding_lists[k].kind, json_integer((json_int_t)json_array_size(list)));
        json_array_foreach(list, i, item) {
            json_t *f = json_array_size(findings) < FINDINGS_KEPT ? json_deep_copy(item) : NULL;
            if (f) {
                json_object_set_new(f, "kind", json_string(finding_lists[k].kind));
                json_array_append_new(findings, f);
            } else {
                truncated++;
            }
        }
    }
    int rc = counts && findings ? 0 : SAASD_ENOMEM;
    json_object_set_new(rec, "counts", counts ? counts : json_object());
    json_object_set_new(rec, "findings", findings ? findings : json_array());
    json_object_set_new(rec, "truncated", json_integer((json_int_t)truncated));
    return rc;
}

static json_t *run_json(const struct usage_recon_run *run)
{
    char started[UTC_TEXT_LEN], ended[UTC_TEXT_LEN];
    utc_text(run->started_ms / 1000, started, sizeof started);
    utc_text(run->ended_ms / 1000, ended, sizeof ended);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "trigger", run->trigger, "started_at", started,
                            "ended_at", ended, "from", run->from_day, "to", run->to_day, "result",
                            run->rc ? "failed" : "ok");
    if (rec && run->rc)
        json_object_set_new(rec, "error", json_string(saasd_strerror(run->rc)));
    if (rec && add_findings(rec, run->out) != 0) {
        json_decref(rec);
        rec = NULL;
    }
    return rec;
}

/* The keys of the oldest stored runs, oldest first (room beyond RUNS_KEPT so that a ring left
 * over from a larger RUNS_KEPT shrinks by up to 64 runs per run). */
struct ring {
    unsigned char keys[RUNS_KEPT + 64][RUN_KEY_LEN];
    size_t n;
};

static int collect_key(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct ring *r = arg;
    if (klen == RUN_KEY_LEN && r->n < sizeof r->keys / sizeof r->keys[0])
        memcpy(r->keys[r->n++], key, RUN_KEY_LEN);
    return 0;
}

/* Deletes of the oldest runs so that the one being added leaves RUNS_KEPT. */
static int prune(struct store *s, struct store_batch *b)
{
    struct ring *r = calloc(1, sizeof *r);
    int rc = r ? store_scan(s, STORE_META, RUN_PREFIX, RUN_PREFIX_LEN, collect_key, r) : SAASD_ENOMEM;
    for (size_t i = 0; !rc && r->n + 1 > RUNS_KEPT + i; i++)
        rc = store_batch_del(b, STORE_META, r->keys[i], RUN_KEY_LEN);
    free(r);
    return rc;
}

int usage_recon_store_run(struct store *s, const struct usage_recon_run *run, uint64_t *id)
{
    json_t *rec = run_json(run);
    char *text = rec ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    struct store_batch *b = NULL;
    int rc = text ? store_batch_new(&b) : SAASD_ENOMEM;
    pthread_mutex_lock(&ring_lock);
    if (!rc)
        rc = prune(s, b);
    if (!rc)
        rc = store_batch_append(b, STORE_META, RUN_PREFIX, RUN_PREFIX_LEN, text, strlen(text));
    if (!rc)
        rc = store_commit(s, b);
    pthread_mutex_unlock(&ring_lock);
    if (!rc)
        rc = store_batch_seq(b, id);
    store_batch_free(b);
    free(text);
    json_decref(rec);
    return rc;
}

/* The record under key with its id (the key's sequence number) added; NULL if unreadable. */
static json_t *record_of(const void *key, const void *val, size_t vlen)
{
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    if (rec)
        json_object_set_new(rec, "id",
                            json_integer((json_int_t)store_be64_get((const unsigned char *)key + RUN_PREFIX_LEN)));
    return rec;
}

static int collect_summary(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    json_t *rec = klen == RUN_KEY_LEN ? record_of(key, val, vlen) : NULL;
    if (rec) {
        json_object_del(rec, "findings");
        json_array_insert_new(arg, 0, rec); /* newest first */
    }
    return 0;
}

int usage_recon_runs(struct store *s, size_t limit, json_t **out)
{
    json_t *all = json_array();
    int rc = all ? store_scan(s, STORE_META, RUN_PREFIX, RUN_PREFIX_LEN, collect_summary, all) : SAASD_ENOMEM;
    while (!rc && json_array_size(all) > limit)
        json_array_remove(all, json_array_size(all) - 1);
    if (rc) {
        json_decref(all);
        all = NULL;
    }
    *out = all;
    return rc;
}

int usage_recon_run_get(struct store *s, uint64_t id, json_t **out)
{
    unsigned char key[RUN_KEY_LEN];
    memcpy(key, RUN_PREFIX, RUN_PREFIX_LEN);
    store_be64_put(key + RUN_PREFIX_LEN, id);
    void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(s, STORE_META, key, sizeof key, &val, &vlen);
    *out = rc ? NULL : record_of(key, val, vlen);
    free(val);
    return rc ? rc : *out ? 0 : SAASD_EINTERNAL;
}

static int keep_last(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    json_t **last = arg;
    json_t *rec = klen == RUN_KEY_LEN ? json_loadb(val, vlen, 0, NULL) : NULL;
    if (rec) {
        json_decref(*last);
        *last = rec;
    }
    return 0;
}

int usage_recon_last_end(struct store *s, int64_t *out)
{
    json_t *last = NULL;
    int rc = store_scan(s, STORE_META, RUN_PREFIX, RUN_PREFIX_LEN, keep_last, &last);
    const char *ended = json_string_value(json_object_get(last, "ended_at"));
    int64_t secs = 0;
    const char *rest = utc_parse(ended, &secs);
    if (!rc)
        rc = !last ? SAASD_ENOTFOUND : rest && *rest == 'Z' ? 0 : SAASD_EINTERNAL;
    if (!rc)
        *out = secs;
    json_decref(last);
    return rc;
}
