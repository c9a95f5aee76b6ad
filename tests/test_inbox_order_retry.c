/* An event waits while an older event of its subscription is retried from the outbox.
 *
 * Each of a few subscriptions has its oldest event in the outbox, due at once and failing every
 * time (Microsoft does not know the operation: HTTP 404, postponed), with later events of the
 * same subscription in the inbox behind it. Thirty-two lanes (workers = 2) retry those entries
 * over and over (the test rewinds each one to "due now, first retry" as an operator's retry
 * would), while events of other subscriptions come and go; none of the waiting inbox events
 * may be acted on (no operation record, still in the inbox) while its older entry exists. One
 * subscription has a 100-character id: the ordering checks once cut ids at 63 characters and
 * then missed that id's own outbox entry. */
#include "it_support.h"

#define STUCK 4
#define BEHIND 20
#define RUN_MS 3000
#define TICK_MS 10

struct head {
    char sub[128];
    unsigned char key[8]; /* its OUTBOX key */
    int found;
    int acted_early; /* later events seen acted on while this entry still waited */
};

static void put_event(struct store_batch *b, enum store_db db, const char *sub, const char *op)
{
    char text[512];
    snprintf(text, sizeof text,
             "%s\"op_id\":\"%s\",\"sub_id\":\"%s\",\"action\":\"Renew\",\"offer_id\":\"ord-offer\","
             "\"request_id\":\"r\",\"received_at\":0,\"attempts\":0,\"payload\":{}}",
             db == STORE_OUTBOX ? "{\"next_at_ms\":0," : "{", op, sub);
    store_batch_append(b, db, db == STORE_OUTBOX ? NULL : "", 0, text, strlen(text));
}

static int find_head(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct head *h = arg;
    char tag[192];
    snprintf(tag, sizeof tag, "\"op_id\":\"%s-0\"", h->sub);
    if (klen == 8 && memmem(val, vlen, tag, strlen(tag))) {
        memcpy(h->key, key, 8);
        h->found = 1;
        return 1;
    }
    return 0;
}

/* The outbox entry as an operator's "retry now" leaves it: due at once, first retry again
 * (so Microsoft's 404 keeps it waiting instead of ending it as an unknown operation). Absent
 * stays absent. */
static int rewind_entry(void *arg, const void *old, size_t oldlen, void **new_val, size_t *new_len)
{
    (void)arg;
    json_t *e = old ? json_loadb(old, oldlen, 0, NULL) : NULL;
    if (!e)
        return 0;
    json_t *out = json_pack("{s:i}", "next_at_ms", 0);
    json_object_del(e, "next_at_ms");
    json_object_set_new(e, "attempts", json_integer(0));
    json_object_update(out, e);
    *new_val = json_dumps(out, JSON_COMPACT);
    *new_len = *new_val ? strlen(*new_val) : 0;
    json_decref(out);
    json_decref(e);
    return *new_val ? 0 : SAASD_ENOMEM;
}

/* 1 when the head entry still waits; *retried when a lane has tried it since the last rewind. */
static int head_waits(struct daemon *d, const struct head *h, int *retried)
{
    void *v = NULL;
    size_t n = 0;
    if (store_get(d->store, STORE_OUTBOX, h->key, 8, &v, &n) != 0)
        return 0;
    json_t *e = json_loadb(v, n, 0, NULL);
    *retried = json_integer_value(json_object_get(e, "attempts")) >= 1;
    json_decref(e);
    free(v);
    return 1;
}

/* How many of the events behind h have been acted on (they leave an operation record). */
static int acted_behind(struct daemon *d, const struct head *h)
{
    int acted = 0;
    for (int k = 1; k <= BEHIND; k++) {
        char op[192];
        snprintf(op, sizeof op, "%s-%d", h->sub, k);
        void *v = NULL;
        size_t n = 0;
        if (store_get(d->store, STORE_OPERATIONS, op, strlen(op), &v, &n) == 0) {
            acted++;
            free(v);
        }
    }
    return acted;
}

struct count_arg {
    const char *sub;
    int n;
};

static int count_sub(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct count_arg *c = arg;
    char tag[192];
    snprintf(tag, sizeof tag, "\"sub_id\":\"%s\"", c->sub);
    c->n += memmem(val, vlen, tag, strlen(tag)) != NULL;
    return 0;
}

int main(void)
{
    char dir[256], rules[512];
    struct emu *emu;
    struct daemon *d = it_start_offer("order", "ord-offer", "workers = 2\nmetering = { interval = 0 }\n", dir, rules, &emu);
    if (!d)
        return CHECK_DONE();

    /* Subscriptions Microsoft does not know: every GET of their operations answers 404. */
    struct head heads[STUCK];
    struct store_batch *b = NULL;
    store_batch_new(&b);
    for (int s = 0; s < STUCK; s++) {
        memset(&heads[s], 0, sizeof heads[s]);
        /* the last one with a 100-character id: the webhook takes ids up to 127 characters */
        if (s == STUCK - 1)
            snprintf(heads[s].sub, sizeof heads[s].sub, "long-%095d", s);
        else
            snprintf(heads[s].sub, sizeof heads[s].sub, "0dde0000-0000-4000-8000-%012d", s);
        char op[192];
        snprintf(op, sizeof op, "%s-0", heads[s].sub);
        put_event(b, STORE_OUTBOX, heads[s].sub, op);
        for (int k = 1; k <= BEHIND; k++) {
            snprintf(op, sizeof op, "%s-%d", heads[s].sub, k);
            put_event(b, STORE_INBOX, heads[s].sub, op);
        }
    }
    int rc = store_commit(d->store, b);
    store_batch_free(b);
    int all_found = rc == 0;
    for (int s = 0; s < STUCK; s++) {
        store_scan(d->store, STORE_OUTBOX, NULL, 0, find_head, &heads[s]);
        all_found &= heads[s].found;
    }
    CHECK(all_found, "each subscription's oldest event waits in the outbox, its later ones in the inbox");
    if (!all_found)
        goto done;
    daemon_wake(d);

    int retries = 0, filler = 0;
    long long until = it_now_ms() + RUN_MS;
    for (int tick = 0; it_now_ms() < until; tick++) {
        store_batch_new(&b);
        for (int s = 0; s < STUCK; s++) {
            int retried = 0;
            /* read the inbox side first: an event acted on while its head still waits after it */
            int acted = acted_behind(d, &heads[s]);
            if (head_waits(d, &heads[s], &retried)) {
                heads[s].acted_early = acted > heads[s].acted_early ? acted : heads[s].acted_early;
                retries += retried;
                if (tick % 2 == 0)
                    store_batch_update(b, STORE_OUTBOX, heads[s].key, 8, rewind_entry, NULL);
            }
        }
        /* another subscription's event: lanes finish and passes start over while the heads wait */
        char sub[64], op[96];
        snprintf(sub, sizeof sub, "f111e000-0000-4000-8000-%012d", filler);
        snprintf(op, sizeof op, "%s-0", sub);
        put_event(b, STORE_INBOX, sub, op);
        filler++;
        store_commit(d->store, b);
        store_batch_free(b);
        if (tick % 2 == 0)
            daemon_wake(d); /* as an operator's retry does */
        else
            daemon_wake_appended(d); /* as an accepted webhook does (the idle lanes' shortcut) */
        usleep(TICK_MS * 1000);
    }

    int waiting = 1, still = 1, violations = 0;
    for (int s = 0; s < STUCK; s++) {
        int retried = 0;
        int acted = acted_behind(d, &heads[s]);
        int head = head_waits(d, &heads[s], &retried);
        if (head && acted > heads[s].acted_early)
            heads[s].acted_early = acted;
        violations += heads[s].acted_early;
        waiting &= head;
        struct count_arg c = {heads[s].sub, 0};
        store_scan(d->store, STORE_INBOX, NULL, 0, count_sub, &c);
        still &= !head || c.n == BEHIND;
    }
    printf("# %d retries of the waiting entries seen, %d events of other subscriptions\n", retries, filler);
    CHECK(retries >= 20, "the oldest entries were retried from the outbox again and again");
    CHECK(waiting, "and still wait there (Microsoft does not know their operations)");
    CHECK(violations == 0 && still,
          "an event waits while an older event of its subscription is retried from the outbox");
    if (violations)
        printf("# %d later events acted on while their older entry waited\n", violations);
done:
    daemon_stop(d);
    emu_stop(emu);
    check_rm_rf(dir);
    http_client_free(it_http);
    return CHECK_DONE();
}
