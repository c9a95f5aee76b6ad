/* When a scan cannot remember a subscription it passed over (the set of passed-over
 * subscriptions had to grow and could not: out of memory), a later event of that subscription
 * still waits for the earlier one.
 *
 * Subscription A has an older entry waiting in the outbox (not due for an hour) and two events
 * behind it in the inbox. A scan passes over the first event (A has an outbox entry) and tries
 * to remember A: this program fails that sub_set_add (the link wraps it: -Wl,--wrap, see the
 * Makefile) and, at that moment, has an operator abandon A's outbox entry, as could happen
 * between two scans of one pass. Nothing then holds A's second event back but the set: on the
 * old code the same scan took it, before the first. Microsoft does not know A's operations
 * (404), so each event taken is postponed and leaves an operation record "retrying": the order
 * of the records is the order the events were taken. */
#include "it_support.h"

#include "core/metrics.h"
#include "daemon/sub_set.h"

#include <stdatomic.h>

#define SUB_A "0dde1000-0000-4000-8000-0000000a11ce"

static atomic_int armed, fired;
static unsigned long long head_seq;
static long abandon_status;

int __real_sub_set_add(struct sub_set *s, const char *id);
int __wrap_sub_set_add(struct sub_set *s, const char *id);

/* The fault: the first time A is to be remembered, the operator abandons A's outbox entry, and
 * the set cannot grow. Every other add is the real one. */
int __wrap_sub_set_add(struct sub_set *s, const char *id)
{
    if (strcmp(id, SUB_A) || !atomic_exchange(&armed, 0))
        return __real_sub_set_add(s, id);
    char path[96];
    snprintf(path, sizeof path, "/admin/outbox/%llu/abandon", head_seq);
    json_decref(it_admin("POST", path, NULL, &abandon_status));
    atomic_store(&fired, 1);
    return SAASD_ENOMEM;
}

static void put_event(struct store_batch *b, enum store_db db, const char *action, const char *op)
{
    char text[512];
    snprintf(text, sizeof text,
             "{%s\"op_id\":\"%s\",\"sub_id\":\"" SUB_A "\",\"action\":\"%s\",\"offer_id\":\"lost-offer\","
             "\"request_id\":\"r\",\"received_at\":0,\"attempts\":%d,\"payload\":{}}",
             db == STORE_OUTBOX ? "\"next_at_ms\":32503680000000," : "", op, action, db == STORE_OUTBOX);
    store_batch_append(b, db, db == STORE_OUTBOX ? NULL : "", 0, text, strlen(text));
}

static int find_head(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    static const char tag[] = "\"op_id\":\"lost-0\"";
    if (klen != 8 || !memmem(val, vlen, tag, sizeof tag - 1))
        return 0;
    *(unsigned long long *)arg = (unsigned long long)store_be64_get(key);
    return 1;
}

static int has_record(struct daemon *d, const char *op)
{
    void *v = NULL;
    size_t n = 0;
    int found = store_get(d->store, STORE_OPERATIONS, op, strlen(op), &v, &n) == 0;
    free(v);
    return found;
}

int main(void)
{
    char dir[256], rules[512];
    struct emu *emu;
    struct daemon *d = it_start_offer("lost", "lost-offer", "metering = { interval = 0 }\n", dir, rules, &emu);
    if (!d)
        return CHECK_DONE();

    struct store_batch *b = NULL;
    store_batch_new(&b);
    put_event(b, STORE_OUTBOX, "Suspend", "lost-0");
    put_event(b, STORE_INBOX, "Suspend", "lost-1");
    put_event(b, STORE_INBOX, "Reinstate", "lost-2");
    atomic_store(&armed, 1); /* before the commit: the first scan to pass over lost-1 meets the fault */
    int rc = store_commit(d->store, b);
    store_batch_free(b);
    if (!rc)
        rc = store_scan(d->store, STORE_OUTBOX, NULL, 0, find_head, &head_seq) == 1 ? 0 : SAASD_ENOTFOUND;
    daemon_wake(d);

    /* Read the later event first: a record of it beside none of the earlier is out of order. */
    int out_of_order = 0, first_taken = 0;
    long long until = it_now_ms() + 10000;
    while (!rc && it_now_ms() < until && !first_taken) {
        int second = has_record(d, "lost-2");
        first_taken = has_record(d, "lost-1");
        out_of_order |= second && !first_taken;
        usleep(10 * 1000);
    }
    CHECK(rc == 0 && fired && abandon_status == 200,
          "a scan passed over the first event and could not remember its subscription, while an operator "
          "abandoned the entry it waited for");
    CHECK(first_taken && !out_of_order,
          "when the scan cannot remember a passed-over subscription, its later event still waits");
    CHECK(metrics_value("saasd_inbox_passes_lost_total", NULL) >= 1, "the pass that stopped is counted");

    daemon_stop(d);
    emu_stop(emu);
    check_rm_rf(dir);
    http_client_free(it_http);
    return CHECK_DONE();
}
