/* Parks WAITING events in a stopped daemon's outbox for the "acting on events" benchmark (not a
 * test; make bench, issue 14 item 4): each for a subscription of its own that nothing else
 * touches, retried only in two hours, as postpone() in daemon/inbox.c stores a failed event
 * (next_at_ms first). The store keeps the outbox's indexes by retry time and by subscription
 * for every write, so the drain that follows shows whether the workers' CPU per event depends
 * on how many entries wait there (it should not: they read only the due ones). */
#include "core/err.h"
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PER_COMMIT 5000
#define PARKED_FOR_MS (2LL * 3600 * 1000)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Entry i: a Renew that failed three times, for subscription parked-<i>. */
static int park_one(struct store_batch *b, long i, long long next_at_ms)
{
    char text[512];
    int n = snprintf(text, sizeof text,
                     "{\"next_at_ms\":%lld,\"op_id\":\"parked-op-%ld\",\"sub_id\":\"parked-%ld\","
                     "\"action\":\"Renew\",\"offer_id\":\"seats-pro\",\"request_id\":\"outbox-bench\","
                     "\"received_at\":0,\"attempts\":3,\"last_error\":\"parked by the benchmark\",\"payload\":{}}",
                     next_at_ms, i, i);
    return store_batch_append(b, STORE_OUTBOX, NULL, 0, text, (size_t)n);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: outbox_park DATA_DIR WAITING\n");
        return 2;
    }
    long waiting = atol(argv[2]);
    long long next_at_ms = now_ms() + PARKED_FOR_MS;
    struct store *s = NULL;
    int rc = store_open(argv[1], NULL, &s);
    struct store_batch *b = NULL;
    for (long i = 0; i < waiting && !rc; i++) {
        if (!b && (rc = store_batch_new(&b)) != 0)
            break;
        rc = park_one(b, i, next_at_ms);
        if (!rc && ((i + 1) % PER_COMMIT == 0 || i + 1 == waiting)) {
            rc = store_commit(s, b);
            store_batch_free(b);
            b = NULL;
        }
    }
    store_batch_free(b);
    store_close(s);
    if (rc) {
        fprintf(stderr, "outbox_park: %s\n", saasd_strerror(rc));
        return 1;
    }
    return 0;
}
