/* Inbox workers: take stored webhook events in arrival order and act on them (flows.c).
 * An event that cannot be finished now moves to the outbox with a retry time (exponential
 * backoff, capped); workers pick outbox entries up when they are due, across restarts, until
 * they succeed or an operator abandons them. Events of one subscription are handled in order
 * and never concurrently. Removing an event and applying its effects is one store batch.
 *
 * Each configured worker is LANES threads: one event is mostly waiting (Microsoft's answers, the
 * rule's process, the fsync of its result), so one thread per event in flight keeps up to LANES
 * events of different subscriptions moving per worker, and their results, committed at about
 * the same time, share the store writer's fsync (group commit: store_writer.c). */
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/flows.h"
#include "daemon/sub_set.h"
#include "daemon/webhook_body.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_BASE_MS 1000
#define RETRY_CAP_MS (5 * 60 * 1000)
#define MAX_SCAN 4096 /* entries looked at per scan and database: a backlog of one subscription
                         must not make every scan read the whole inbox */
#define SUB_ID_MAX 128 /* webhook_body.h keeps ids up to 127 characters; the ordering checks must see them whole */
#define KEY_MAX 64
#define LANES 16 /* events in flight per configured worker (config `workers`) */
#define LOST_RETRY_MS 1000 /* a pass that could not remember a passed-over subscription: next try */

struct work {
    enum store_db db;
    unsigned char key[KEY_MAX];
    size_t klen;
    json_t *entry;                /* the entry's header, or all of it when payload.text is NULL */
    struct entry_payload payload; /* webhook_entry_split */
};

/* One pass over the outbox, then the inbox, may take several scans of at most MAX_SCAN entries
 * each: a scan that stops at the bound leaves where it stopped (resume_*), and the next scan goes
 * on from there, so a backlog of one stuck subscription longer than the bound cannot hide the
 * events behind it. The subscriptions passed over since the pass began (so their later events
 * wait: order per subscription) are kept for the whole pass. One per daemon, under work_lock. */
struct passed_subs {
    struct sub_set *subs;  /* subscription ids (sub_set.h: looked up for every entry passed over) */
    int resuming;          /* a pass is under way */
    enum store_db resume_db;
    unsigned char resume_key[KEY_MAX];
    size_t resume_klen;
    int64_t next_due;      /* over the pass so far */
    int blocked;
    /* A pass that found nothing: where the inbox ended, and the generations it began with. While
     * no worker has finished, no other wake-up came and no retry is due, only events appended
     * since can be new work, and the next pass reads just those (keeping the subscriptions
     * passed over): a backlog of one subscription waiting for its retry is not re-read for
     * every webhook that arrives. */
    int idle;
    unsigned char end_key[KEY_MAX];
    size_t end_klen;
    uint64_t start_done, start_reset, idle_done, idle_reset;
    /* Lanes whose due work waits for a busy subscription sleep here (under wake_lock), apart
     * from the idle ones on wake_cond: a finished event wakes only them, and a new event wakes
     * one idle lane, which wakes the next when it found work. With 16 lanes per worker,
     * waking all of them for every event would cost more than the event. */
    pthread_cond_t done_cond;
    int blocked_sleepers;
    /* Lanes acting on an event, per subscription lock stripe (daemon_lock_sub). A lane holds
     * its subscription's stripe for the whole event, so an event on a busy stripe is passed
     * over like one of a busy subscription (which it includes) instead of taken by a lane that
     * would only wait for the stripe: the lanes go to subscriptions that can proceed. */
    int stripe_lanes[DAEMON_SUB_STRIPES];
};

/* Entries the scans have looked at since start (saasd_inbox_entries_scanned_total): what the
 * workers' CPU goes into when work waits. */
static _Atomic uint64_t scanned_total;

uint64_t inbox_entries_scanned(void) { return scanned_total; }

static void passed_clear(struct passed_subs *ps) { sub_set_clear(ps->subs); }
static int passed_has(struct passed_subs *ps, const char *sub) { return sub_set_has(ps->subs, sub); }

struct scan_state {
    struct daemon *d;
    struct work *w;
    int64_t now;
    int64_t next_due;  /* earliest retry time seen, for the sleep */
    int scanned;
    int blocked;       /* an entry was due but a worker holds its subscription */
    int found;
    int stopped;       /* the scan stopped at MAX_SCAN; resume_key is where to go on */
    int lost;          /* a passed-over subscription could not be remembered: the pass ends */
    char lost_sub[SUB_ID_MAX];
    unsigned char last_key[KEY_MAX]; /* last inbox key looked at */
    size_t last_klen;
};

/* Stored events start with a header ({"op_id":"…","sub_id":"…",… as webhook.c writes it;
 * outbox entries put {"next_at_ms":N, first), so a scan reads them without parsing JSON.
 * Copies the first "sub_id" into out; 0 when absent. */
static int header_sub_id(const char *val, size_t vlen, char out[SUB_ID_MAX])
{
    static const char tag[] = "\"sub_id\":\"";
    const char *p = memmem(val, vlen < 512 ? vlen : 512, tag, sizeof tag - 1);
    if (!p)
        return 0;
    p += sizeof tag - 1;
    size_t n = 0;
    while (p + n < val + vlen && p[n] != '"' && p[n] != '\\' && n < SUB_ID_MAX - 1)
        n++;
    if (p + n >= val + vlen || p[n] != '"')
        return 0;
    memcpy(out, p, n);
    out[n] = 0;
    return 1;
}

/* An outbox entry's retry time from its leading {"next_at_ms":N; 0 when it does not start so. */
static int header_next_at(const char *val, size_t vlen, int64_t *out)
{
    static const char tag[] = "{\"next_at_ms\":";
    char digits[24];
    size_t n = 0;
    if (vlen <= sizeof tag - 1 || memcmp(val, tag, sizeof tag - 1))
        return 0;
    for (const char *p = val + sizeof tag - 1; p < val + vlen && *p >= '0' && *p <= '9' && n < sizeof digits - 1; p++)
        digits[n++] = *p;
    digits[n] = 0;
    if (!n)
        return 0;
    *out = strtoll(digits, NULL, 10);
    return 1;
}

/* The subscription, or another on its lock stripe, is being acted on (under work_lock). */
static int sub_in_flight(struct scan_state *s, const char *sub)
{
    return s->d->passed_subs->stripe_lanes[daemon_sub_stripe(sub)] > 0;
}

/* Whether sub has an entry waiting in the outbox (one read of the by-subscription index). When
 * oldest is given, also whether that entry is the subscription's oldest one. */
static int first_outbox_key(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    unsigned char *out = arg;
    size_t n = klen >= 8 ? 8 : 0;
    memcpy(out, (const unsigned char *)key + klen - n, n);
    return 1;
}

static int sub_has_outbox(struct daemon *d, const char *sub, const unsigned char *oldest)
{
    unsigned char prefix[SUB_ID_MAX + 1], first[8] = {0};
    size_t n = strlen(sub) + 1; /* the id and its '\0' */
    memcpy(prefix, sub, n);
    int found = store_scan(d->store, STORE_OUTBOX_SUBS, prefix, n, first_outbox_key, first) == 1;
    if (!found || !oldest)
        return found;
    return memcmp(first, oldest, 8) != 0; /* an older entry of the same subscription waits */
}

/* Remember sub as passed over, so its later events in this pass wait for the one passed over.
 * Returns 1 (stop the scan) when the set could not grow: a later event of sub would then be
 * taken before this one (a Reinstate before its Suspend), so the pass must take nothing more. */
static int pass_over(struct scan_state *s, const char *sub)
{
    if (sub_set_add(s->d->passed_subs->subs, sub) == 0)
        return 0;
    s->lost = 1;
    snprintf(s->lost_sub, sizeof s->lost_sub, "%s", sub);
    return 1;
}

/* Keep the pass's place: the next scan goes on from this key. */
static int stop_at(struct scan_state *s, const void *key, size_t klen)
{
    struct passed_subs *ps = s->d->passed_subs;
    memcpy(ps->resume_key, key, klen);
    ps->resume_klen = klen;
    s->stopped = 1;
    return 1;
}

static int consider(void *arg, const void *key, size_t klen, const void *val, size_t vlen, enum store_db db)
{
    struct scan_state *s = arg;
    if (klen > KEY_MAX)
        return 0;
    if (++s->scanned > MAX_SCAN)
        return stop_at(s, key, klen);
    scanned_total++;
    memcpy(s->last_key, key, klen);
    s->last_klen = klen;
    char sub[SUB_ID_MAX];
    json_t *e = NULL;
    int64_t due = 0;
    int cheap = header_sub_id(val, vlen, sub) && (db == STORE_INBOX || header_next_at(val, vlen, &due));
    if (!cheap) { /* entries written before the header order was fixed */
        e = webhook_entry_load(val, vlen);
        const char *sv = json_string_value(json_object_get(e, "sub_id"));
        if (!sv) {
            json_decref(e);
            return 0;
        }
        snprintf(sub, sizeof sub, "%s", sv);
        due = json_integer_value(json_object_get(e, "next_at_ms"));
    }
    int in_flight = sub_in_flight(s, sub);
    if (in_flight || passed_has(s->d->passed_subs, sub) || due > s->now ||
        (db == STORE_INBOX && sub_has_outbox(s->d, sub, NULL))) {
        /* Only a worker finishing frees it now; one passed over for an outbox entry that is
         * not due yet waits for that entry's time (next_due), and new events still wake us. */
        s->blocked |= in_flight && due <= s->now;
        if (due > s->now && (!s->next_due || due < s->next_due))
            s->next_due = due;
        json_decref(e);
        return pass_over(s, sub); /* its later events, in the outbox or the inbox, wait for this one */
    }
    /* an entry of the older header order was parsed whole above: its payload stays a member */
    if (!e && webhook_entry_split(val, vlen, &e, &s->w->payload)) /* as webhook.c checked before answering 200 */
        return 0;
    memcpy(s->w->key, key, klen);
    s->w->klen = klen;
    s->w->entry = e;
    s->found = 1;
    return 1;
}

/* One entry of the outbox's due index (be64 next_at_ms + outbox key -> sub id): entries come
 * in due order, so the first one not due yet ends the outbox's part of the pass. */
static int consider_due(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct scan_state *s = arg;
    if (klen != 16)
        return 0;
    vlen = vlen < SUB_ID_MAX ? vlen : SUB_ID_MAX - 1; /* no stored id is longer (webhook_body.h) */
    int64_t due = (int64_t)store_be64_get(key);
    if (due > s->now) {
        if (!s->next_due || due < s->next_due)
            s->next_due = due;
        return 1; /* nothing further is due */
    }
    if (++s->scanned > MAX_SCAN)
        return stop_at(s, key, klen);
    scanned_total++;
    const unsigned char *okey = (const unsigned char *)key + 8;
    char sub[SUB_ID_MAX];
    memcpy(sub, val, vlen);
    sub[vlen] = 0;
    int in_flight = sub_in_flight(s, sub);
    if (in_flight || passed_has(s->d->passed_subs, sub) || sub_has_outbox(s->d, sub, okey)) {
        /* Its subscription is busy, or an older entry of it waits: this one and the
         * subscription's later events wait too. */
        s->blocked |= in_flight;
        return pass_over(s, sub);
    }
    void *text = NULL;
    size_t tlen = 0;
    json_t *e = NULL;
    if (store_get(s->d->store, STORE_OUTBOX, okey, 8, &text, &tlen) == 0)
        webhook_entry_split(text, tlen, &e, &s->w->payload);
    free(text);
    if (!e)
        return 0; /* taken and finished by another worker since this snapshot */
    memcpy(s->w->key, okey, 8);
    s->w->klen = 8;
    s->w->entry = e;
    s->found = 1;
    return 1;
}

static int consider_inbox(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    return consider(arg, key, klen, val, vlen, STORE_INBOX);
}

/* Scan db from the pass's resume point: 1 found work, 0 reached the end (or lost), -1 stopped at
 * the bound. */
static int scan_db(struct scan_state *s, enum store_db db)
{
    struct passed_subs *ps = s->d->passed_subs;
    s->scanned = 0;
    s->stopped = 0;
    s->found = 0;
    s->w->db = db == STORE_OUTBOX_DUE ? STORE_OUTBOX : db;
    unsigned char start[KEY_MAX];
    size_t slen = ps->resume_db == db ? ps->resume_klen : 0;
    memcpy(start, ps->resume_key, slen);
    ps->resume_db = db;
    ps->resume_klen = 0;
    store_scan_from(s->d->store, db, start, slen, db == STORE_OUTBOX_DUE ? consider_due : consider_inbox, s);
    return s->found ? 1 : s->stopped ? -1 : 0;
}

/* The pass could not remember a subscription it passed over (sub_set_add: out of memory) and
 * ended without taking anything. Its set is incomplete, so neither a resume nor the appended-only
 * shortcut may build on it: the next pass starts over, after a short wait (not at once: the
 * allocation that just failed would likely fail again). */
static int pass_lost(struct passed_subs *ps, const struct scan_state *s, int64_t *next_due, int *blocked, int *more)
{
    ps->resuming = 0;
    ps->idle = 0;
    int64_t retry = s->now + LOST_RETRY_MS;
    *next_due = ps->next_due && ps->next_due < retry ? ps->next_due : retry;
    *blocked = 0;
    *more = 0;
    metrics_inc("saasd_inbox_passes_lost_total", NULL);
    char ms[16];
    snprintf(ms, sizeof ms, "%d", LOST_RETRY_MS);
    log_warn("inbox", "out of memory remembering a passed-over subscription; the pass stops and starts over",
             "sub_id", s->lost_sub, "retry_ms", ms);
    return 0;
}

/* Called with work_lock held. *blocked tells that due work waits for another worker; *more that
 * the pass is not finished (call again at once). The outbox is read through its due index
 * (store.h: OUTBOX_DUE), so a pass costs the entries due now, not every waiting one; an inbox
 * event whose subscription has any entry waiting there is passed over (OUTBOX_SUBS). The
 * outbox goes first: its entries are older
 * than any inbox event of the same subscription (an event moves there only when taken in order),
 * and a subscription with an entry waiting there must not have its newer events acted on first
 * (a Reinstate before the Suspend it follows would leave the ISV's side suspended). */
static int find_work(struct daemon *d, struct work *w, int64_t *next_due, int *blocked, int *more)
{
    struct passed_subs *ps = d->passed_subs;
    struct scan_state s = {.d = d, .w = w, .now = now_ms()};
    int appended_only = ps->idle && d->done_generation == ps->idle_done && d->reset_generation == ps->idle_reset &&
                        (!ps->next_due || s.now < ps->next_due);
    if (!ps->resuming && appended_only) {
        /* go on after the last event passed over, with the same passed-over subscriptions */
        ps->resume_db = STORE_INBOX;
        memcpy(ps->resume_key, ps->end_key, ps->end_klen);
        ps->resume_klen = ps->end_klen;
    } else if (!ps->resuming) {
        passed_clear(ps);
        ps->resume_db = STORE_OUTBOX_DUE;
        ps->resume_klen = 0;
        ps->next_due = 0;
        ps->blocked = 0;
        ps->end_klen = 0;
        ps->start_done = d->done_generation;
        ps->start_reset = d->reset_generation;
    }
    ps->idle = 0;
    int r = ps->resume_db == STORE_OUTBOX_DUE ? scan_db(&s, STORE_OUTBOX_DUE) : 0;
    if (r == 0 && !s.lost)
        r = scan_db(&s, STORE_INBOX);
    if (s.lost)
        return pass_lost(ps, &s, next_due, blocked, more);
    if (s.last_klen) {
        memcpy(ps->end_key, s.last_key, s.last_klen);
        ps->end_klen = s.last_klen;
    }
    if (s.next_due && (!ps->next_due || s.next_due < ps->next_due))
        ps->next_due = s.next_due;
    ps->blocked |= s.blocked;
    ps->resuming = r < 0;
    if (r == 0) { /* the pass found nothing */
        ps->idle = 1;
        ps->idle_done = ps->start_done;
        ps->idle_reset = ps->start_reset;
    }
    *more = r < 0;
    *next_due = ps->next_due;
    *blocked = ps->blocked;
    return r > 0;
}

/* An event failing this many times in a row is reported as outbox.stuck (events.c). */
#define STUCK_ATTEMPTS 5

static int64_t backoff_ms(int attempts)
{
    int64_t ms = RETRY_BASE_MS;
    for (int i = 1; i < attempts && ms < RETRY_CAP_MS; i++)
        ms *= 2;
    ms = ms > RETRY_CAP_MS ? RETRY_CAP_MS : ms;
    return ms + rand() % (ms / 4 + 1); /* jitter: retries of many events spread out */
}

/* The event could not be finished: keep it, durably, in the outbox with its next retry time. */
static int postpone(struct daemon *d, struct work *w, const char *why)
{
    json_t *e = w->entry;
    int attempts = (int)json_integer_value(json_object_get(e, "attempts")) + 1;
    /* next_at_ms first, so scans read it without parsing (header_next_at); jansson keeps
     * insertion order, and the update leaves an existing key where it is. */
    json_t *stored = json_pack("{s:I}", "next_at_ms", (json_int_t)(now_ms() + backoff_ms(attempts)));
    json_object_del(e, "next_at_ms");
    json_object_set_new(e, "attempts", json_integer(attempts));
    json_object_set_new(e, "last_error", json_string(why));
    if (stored)
        json_object_update(stored, e);
    json_t *inline_payload = w->payload.text ? NULL : json_incref(json_object_get(stored, "payload"));
    if (inline_payload) { /* an entry of an older layout: its payload moves last, as webhook.c writes it */
        json_object_del(stored, "payload");
        json_object_set_new(stored, "payload", inline_payload);
    }
    const char *op_id = json_string_value(json_object_get(e, "op_id"));
    size_t tlen = 0; /* the payload stays last, as stored: the next take reads it without parsing */
    char *text = stored ? webhook_entry_join(stored, &w->payload, &tlen) : NULL;
    json_decref(stored);
    json_t *oprec = json_pack("{s:s, s:s, s:s, s:i, s:s}", "state", "retrying", "action",
                              json_string_value(json_object_get(e, "action")), "sub_id",
                              json_string_value(json_object_get(e, "sub_id")), "attempts", attempts, "last_error", why);
    struct store_batch *b = NULL;
    int rc = text && oprec ? store_batch_new(&b) : SAASD_ENOMEM;
    if (!rc) {
        if (w->db == STORE_OUTBOX) {
            rc = store_batch_put(b, STORE_OUTBOX, w->key, w->klen, text, tlen);
        } else {
            rc = store_batch_del(b, STORE_INBOX, w->key, w->klen);
            if (!rc)
                rc = store_batch_append(b, STORE_OUTBOX, NULL, 0, text, tlen);
        }
        if (!rc && op_id)
            rc = record_put_json(b, STORE_OPERATIONS, op_id, oprec);
        if (!rc && attempts == STUCK_ATTEMPTS) /* once, when it turns from a hiccup into a problem */
            rc = events_add(b, "outbox.stuck", json_string_value(json_object_get(e, "offer_id")),
                            json_string_value(json_object_get(e, "sub_id")),
                            json_pack("{s:s?, s:s?, s:i, s:s}", "op_id", op_id, "action",
                                      json_string_value(json_object_get(e, "action")), "attempts", attempts, "error", why));
        if (!rc)
            rc = store_commit(d->store, b);
    }
    store_batch_free(b);
    free(text);
    json_decref(oprec);
    metrics_inc("saasd_outbox_retries_total", NULL);
    char attempts_text[16];
    snprintf(attempts_text, sizeof attempts_text, "%d", attempts);
    log_warn("inbox", "event postponed; will retry", "op_id", op_id, "attempts", attempts_text, "error", why);
    return rc;
}

static void handle(struct daemon *d, struct work *w)
{
    const char *sub = json_string_value(json_object_get(w->entry, "sub_id"));
    const char *action = json_string_value(json_object_get(w->entry, "action"));
    struct store_batch *b = NULL;
    struct flow_outcome out;
    daemon_lock_sub(d, sub);
    int rc = store_batch_new(&b);
    if (!rc)
        rc = store_batch_del(b, w->db, w->key, w->klen);
    /* Ingest refuses operations already recorded; a copy that arrived while its twin was still
     * waiting in the inbox is caught here: the twin has left its record by now. */
    const char *op_id = json_string_value(json_object_get(w->entry, "op_id"));
    void *seen = NULL;
    size_t seen_len = 0;
    if (!rc && w->db == STORE_INBOX && op_id &&
        store_get(d->store, STORE_OPERATIONS, op_id, strlen(op_id), &seen, &seen_len) == 0) {
        memset(&out, 0, sizeof out);
        out.decision = "duplicate";
        free(seen);
    } else if (!rc) {
        rc = flow_process_event(d, w->entry, &w->payload, b, &out);
    }
    if (!rc)
        rc = store_commit(d->store, b);
    store_batch_free(b);
    char labels[128];
    snprintf(labels, sizeof labels, "action=\"%s\",outcome=\"%s\"", action ? action : "-",
             rc ? "retry" : out.decision ? out.decision : "done");
    metrics_inc("saasd_events_processed_total", labels);
    if (rc)
        postpone(d, w, rc == SAASD_ERETRY && out.message[0] ? out.message : saasd_strerror(rc));
    daemon_unlock_sub(d, sub);
}

static void *worker_main(void *arg)
{
    struct daemon *d = arg;
    while (!d->stopping) {
        struct work w = {0};
        int64_t next_due = 0;
        /* Read before the scan, so no wake-up is lost. */
        uint64_t gen = d->work_generation, done = d->done_generation;
        int blocked = 0, more = 0;
        pthread_mutex_lock(&d->work_lock);
        int found = find_work(d, &w, &next_due, &blocked, &more);
        unsigned stripe = 0;
        if (found) { /* the stripe handle() locks for the event (daemon_lock_sub) */
            stripe = daemon_sub_stripe(json_string_value(json_object_get(w.entry, "sub_id")));
            d->passed_subs->stripe_lanes[stripe]++;
        }
        pthread_mutex_unlock(&d->work_lock);
        if (!found && more)
            continue; /* the pass goes on from where this scan stopped */
        if (!found) {
            /* Sleep until woken by a new event, or until the earliest retry is due. */
            int64_t wait_ms = next_due ? next_due - now_ms() : 1000;
            wait_ms = wait_ms < 10 ? 10 : wait_ms > 1000 ? 1000 : wait_ms;
            struct timespec until;
            clock_after_ms(CLOCK_REALTIME, wait_ms, &until);
            struct passed_subs *ps = d->passed_subs;
            pthread_mutex_lock(&d->wake_lock);
            /* Work that waits for a busy subscription becomes available when a worker
             * finishes, not when more events arrive: rescanning on every webhook would
             * re-read the same blocked entries. */
            if (blocked) {
                ps->blocked_sleepers++;
                while (!d->stopping && done == d->done_generation)
                    if (pthread_cond_timedwait(&ps->done_cond, &d->wake_lock, &until) == ETIMEDOUT)
                        break;
                ps->blocked_sleepers--;
            } else {
                d->sleepers++;
                while (!d->stopping && gen == d->work_generation)
                    if (pthread_cond_timedwait(&d->wake_cond, &d->wake_lock, &until) == ETIMEDOUT)
                        break;
                d->sleepers--;
            }
            pthread_mutex_unlock(&d->wake_lock);
            continue;
        }
        if (d->sleepers > 0) /* there may be more: the next idle lane looks */
            pthread_cond_signal(&d->wake_cond);
        handle(d, &w);
        json_decref(w.entry);
        entry_payload_clear(&w.payload);
        pthread_mutex_lock(&d->work_lock);
        d->passed_subs->stripe_lanes[stripe]--;
        pthread_mutex_unlock(&d->work_lock);
        /* One finished event frees one subscription: one waiting lane looks (waking them all
         * costs a scan each under work_lock; the others wake on the next finish, or their
         * timeout, and this lane itself scans again at once). */
        pthread_mutex_lock(&d->wake_lock);
        d->done_generation++;
        int waiting = d->passed_subs->blocked_sleepers > 0;
        pthread_mutex_unlock(&d->wake_lock);
        /* Signalled after the unlock: a lane woken while wake_lock is held only runs into it and
         * sleeps again (a futex wait and a context switch more per event). It cannot miss the
         * signal: it compares done_generation under the lock before it waits. */
        if (waiting)
            pthread_cond_signal(&d->passed_subs->done_cond);
    }
    return NULL;
}

int inbox_start(struct daemon *d)
{
    d->nworkers = (d->cfg->workers > 0 ? d->cfg->workers : 1) * LANES;
    if (d->nworkers > DAEMON_SUB_STRIPES) /* no more events can be in flight (sub_in_flight) */
        d->nworkers = DAEMON_SUB_STRIPES;
    d->workers = calloc((size_t)d->nworkers, sizeof *d->workers);
    d->passed_subs = calloc(1, sizeof *d->passed_subs);
    if (d->passed_subs) {
        sub_set_new(&d->passed_subs->subs); /* leaves it NULL when it fails */
        pthread_cond_init(&d->passed_subs->done_cond, NULL);
    }
    if (!d->workers || !d->passed_subs || !d->passed_subs->subs)
        return SAASD_ENOMEM;
    for (int i = 0; i < d->nworkers; i++) {
        if (pthread_create(&d->workers[i], NULL, worker_main, d) != 0) {
            d->nworkers = i;
            return SAASD_EINTERNAL;
        }
    }
    return 0;
}

void inbox_stop(struct daemon *d)
{
    d->stopping = 1;
    daemon_wake(d);
    for (int i = 0; i < d->nworkers; i++)
        pthread_join(d->workers[i], NULL);
    free(d->workers);
    if (d->passed_subs) {
        sub_set_free(d->passed_subs->subs);
        pthread_cond_destroy(&d->passed_subs->done_cond);
    }
    free(d->passed_subs);
    d->passed_subs = NULL;
    d->workers = NULL;
    d->nworkers = 0;
}

/* Anything may have changed: every idle lane looks. Lanes waiting for a busy subscription are
 * woken too, to notice a stop; they go on waiting for a worker to finish otherwise. */
void daemon_wake(struct daemon *d)
{
    d->reset_generation++;
    d->work_generation++;
    pthread_mutex_lock(&d->wake_lock);
    pthread_cond_broadcast(&d->wake_cond);
    if (d->passed_subs)
        pthread_cond_broadcast(&d->passed_subs->done_cond);
    pthread_mutex_unlock(&d->wake_lock);
}

/* New events: one idle lane looks, and wakes the next if it found work (worker_main). */
void daemon_wake_appended(struct daemon *d)
{
    d->work_generation++;
    if (d->sleepers > 0) {
        pthread_mutex_lock(&d->wake_lock);
        pthread_cond_signal(&d->wake_cond);
        pthread_mutex_unlock(&d->wake_lock);
    }
}
