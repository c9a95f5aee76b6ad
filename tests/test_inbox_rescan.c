/* Events appended behind a backlog that waits for its retry are read once, not the whole
 * backlog again for every webhook that wakes the workers; and an event of another subscription
 * appended the same way is still acted on. */
#include "it_support.h"

#define BACKLOG 2000
#define WAKES 100

static int append(struct daemon *d, const char *sub, int n)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"op_id\":\"rescan-%d\",\"sub_id\":\"%s\",\"action\":\"Renew\",\"offer_id\":\"rs-offer\","
             "\"request_id\":\"r\",\"received_at\":0,\"attempts\":0,\"payload\":{}}",
             n, sub);
    struct store_batch *b = NULL;
    store_batch_new(&b);
    store_batch_append(b, STORE_INBOX, "", 0, text, strlen(text));
    int rc = store_commit(d->store, b);
    store_batch_free(b);
    return rc;
}

int main(void)
{
    char dir[256], rules[512];
    struct emu *emu;
    struct daemon *d = it_start_offer("rescan", "rs-offer", "metering = { interval = 0 }\n", dir, rules, &emu);
    if (!d)
        return CHECK_DONE();
    char sub[64];
    CHECK(it_buy_and_land("rs-offer", 2, sub, sizeof sub) == 200, "the purchase is activated through the landing page");

    const char *stuck = "5c0ffee0-0000-4000-8000-00000000beef";
    int rc = it_stuck_backlog(d->store, "rs-offer", stuck, "rescan", BACKLOG);
    daemon_wake(d);
    usleep(500 * 1000); /* the workers read the backlog once and find nothing to do */
    uint64_t before = inbox_entries_scanned();
    for (int i = 0; i < WAKES && !rc; i++) {
        rc = append(d, stuck, BACKLOG + 1 + i);
        daemon_wake_appended(d); /* as an accepted webhook does */
        usleep(5 * 1000);
    }
    usleep(300 * 1000);
    uint64_t read = inbox_entries_scanned() - before;
    printf("# %d wake-ups behind a backlog of %d: %llu entries read\n", WAKES, BACKLOG, (unsigned long long)read);
    CHECK(rc == 0 && read < 3 * BACKLOG,
          "100 events appended one by one behind a waiting backlog of 2000 are read without re-reading the backlog each time");

    /* Another subscription's event, appended and announced the same way, is acted on. */
    char *op = it_customer(sub, "suspend", NULL);
    json_t *audit = op ? it_wait_audit(sub, op, 20000) : NULL;
    CHECK(audit != NULL, "another subscription's event appended after them is still acted on");
    size_t inbox = 0;
    store_count(d->store, STORE_INBOX, &inbox);
    CHECK(inbox == BACKLOG + WAKES, "the waiting subscription's events all still wait for its retry");
    json_decref(audit);
    free(op);
    daemon_stop(d);
    emu_stop(emu);
    check_rm_rf(dir);
    http_client_free(it_http);
    return CHECK_DONE();
}
