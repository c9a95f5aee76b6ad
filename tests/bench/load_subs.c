/* Fills a daemon's store with N subscription records (not a test; used by make bench to
 * measure the daemon's memory with a realistic number of subscriptions). */
#include "core/err.h"
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: load_subs DATA_DIR COUNT\n");
        return 2;
    }
    long count = atol(argv[2]);
    struct store *s = NULL;
    if (store_open(argv[1], NULL, &s) != 0) {
        fprintf(stderr, "load_subs: cannot open %s\n", argv[1]);
        return 1;
    }
    struct store_batch *b = NULL;
    for (long i = 0; i < count; i++) {
        if (!b)
            store_batch_new(&b);
        char id[64], rec[1024];
        snprintf(id, sizeof id, "%08lx-0000-4000-8000-%012lx", i, i);
        snprintf(rec, sizeof rec,
                 "{\"id\":\"%s\",\"offerId\":\"seats-pro\",\"planId\":\"team\",\"quantity\":%ld,\"status\":\"Subscribed\","
                 "\"ms_status\":\"Subscribed\",\"provision\":{\"decision\":\"activated\",\"at_ms\":1764000000000},"
                 "\"subscription\":{\"id\":\"%s\",\"name\":\"Contoso seat %ld\",\"publisherId\":\"contoso\","
                 "\"offerId\":\"seats-pro\",\"planId\":\"team\",\"quantity\":%ld,\"saasSubscriptionStatus\":\"Subscribed\","
                 "\"term\":{\"termUnit\":\"P1M\",\"startDate\":\"2026-11-01T00:00:00Z\",\"endDate\":\"2026-11-30T00:00:00Z\"}}}",
                 id, 1 + i % 50, id, i, 1 + i % 50);
        store_batch_put(b, STORE_SUBSCRIPTIONS, id, strlen(id), rec, strlen(rec));
        if ((i + 1) % 1000 == 0 || i + 1 == count) {
            int rc = store_commit(s, b);
            store_batch_free(b);
            b = NULL;
            if (rc) {
                fprintf(stderr, "load_subs: commit failed: %s\n", saasd_strerror(rc));
                store_close(s);
                return 1;
            }
        }
    }
    store_close(s);
    printf("loaded %ld subscriptions into %s\n", count, argv[1]);
    return 0;
}
