/* Issue 14, item 3: an inbox worker keeps several events of different subscriptions in flight.
 * A subscription whose call to Microsoft is slow does not hold up other subscriptions' events,
 * and its own later event still waits for it (order per subscription). One worker configured,
 * so the old one-event-at-a-time worker fails the first check. */
#include "it_support.h"

#define OTHERS 4
#define SLOW_MS 7000 /* Microsoft's answer to the slow subscription's GET operation */

/* A subscription bought and activated through the landing page whose lock stripe differs from
 * the ones in avoid (events of subscriptions sharing a stripe do wait for each other). */
static int buy_apart(char *sub, size_t size, const unsigned *avoid, int navoid)
{
    for (int tries = 0; tries < 20; tries++) {
        if (it_buy_and_land("lanes-offer", 2, sub, size) != 200)
            return 0;
        int clash = 0;
        for (int i = 0; i < navoid; i++)
            clash |= daemon_sub_stripe(sub) == avoid[i];
        if (!clash)
            return 1;
    }
    return 0;
}

int main(void)
{
    char dir[256], rules[512];
    struct emu *emu;
    struct daemon *d = it_start_offer("lanes", "lanes-offer", "workers = 1\nmetering = { interval = 0 }\n", dir, rules, &emu);
    if (!d)
        return CHECK_DONE();
    char slow[64], others[OTHERS][64];
    unsigned stripes[OTHERS + 1];
    int bought = buy_apart(slow, sizeof slow, NULL, 0);
    stripes[0] = daemon_sub_stripe(slow);
    for (int i = 0; i < OTHERS && bought; i++) {
        bought = buy_apart(others[i], sizeof others[i], stripes, i + 1);
        stripes[i + 1] = daemon_sub_stripe(others[i]);
    }
    CHECK(bought, "five subscriptions are activated, on distinct lock stripes");
    if (!bought)
        goto done;
    CHECK(it_settle(d->store, 10000), "their events are settled");

    char glob[256];
    snprintf(glob, sizeof glob, "/api/saas/subscriptions/%s/operations/*", slow);
    long st;
    json_decref(it_emu("POST", "/_emulator/faults",
                       json_pack("{s:s,s:s,s:s,s:i,s:i}", "path", glob, "method", "GET", "kind", "latency",
                                 "latencyMs", SLOW_MS, "count", 1),
                       &st));
    CHECK(st == 201 || st == 200, "Microsoft's answer about the slow subscription's operation is delayed");
    char *suspend = it_customer(slow, "suspend", NULL);
    char *reinstate = it_customer(slow, "reinstate", NULL);
    char *ops[OTHERS];
    for (int i = 0; i < OTHERS; i++)
        ops[i] = it_customer(others[i], "suspend", NULL);

    int acted = 1;
    for (int i = 0; i < OTHERS; i++) {
        json_t *a = ops[i] ? it_wait_audit(others[i], ops[i], SLOW_MS - 2000) : NULL;
        acted &= a != NULL;
        json_decref(a);
    }
    CHECK(acted, "the other subscriptions' events are acted on while the slow one waits for Microsoft");
    CHECK(it_audit_count(slow, suspend, NULL) == 0 && it_audit_count(slow, reinstate, NULL) == 0,
          "the slow subscription's Reinstate waits behind its Suspend (order per subscription)");

    json_t *a = it_wait_audit(slow, reinstate, SLOW_MS + 15000);
    json_decref(a);
    json_t *h = it_history(slow);
    int at_suspend = -1, at_reinstate = -1;
    size_t i;
    json_t *e;
    json_array_foreach(h, i, e) {
        if (suspend && !strcmp(it_str(e, "op_id"), suspend))
            at_suspend = (int)i;
        if (reinstate && !strcmp(it_str(e, "op_id"), reinstate))
            at_reinstate = (int)i;
    }
    json_decref(h);
    CHECK(at_suspend >= 0 && at_reinstate > at_suspend, "then both are acted on, Suspend first");
    CHECK(!strcmp(it_ms_status(slow), "Subscribed"), "and Microsoft shows the subscription reinstated");
    free(suspend);
    free(reinstate);
    for (int k = 0; k < OTHERS; k++)
        free(ops[k]);
done:
    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
