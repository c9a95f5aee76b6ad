/* A long backlog of one stuck subscription (more entries than one inbox scan reads) cannot keep
 * another subscription's events from being reached (issue 10, item 6). */
#include "it_support.h"

#define STUCK_EVENTS 4500 /* more than the 4096 entries one scan looks at */

int main(void)
{
    char dir[256], rules[512];
    struct emu *emu;
    struct daemon *d = it_start_offer("backlog", "bl-offer", "metering = { interval = 0 }\n", dir, rules, &emu);
    if (!d)
        return CHECK_DONE();
    char sub[64];
    CHECK(it_buy_and_land("bl-offer", 2, sub, sizeof sub) == 200, "the purchase is activated through the landing page");

    /* Subscription "stuck": an event waiting in the outbox for an hour, and a long backlog of
     * its newer events behind it in the inbox (they must wait for it). */
    const char *stuck = "5c0ffee0-0000-4000-8000-00000000dead";
    int rc = it_stuck_backlog(d->store, "bl-offer", stuck, "stuck", STUCK_EVENTS);
    CHECK(rc == 0, "a backlog of one stuck subscription is in the inbox, behind its waiting outbox entry");
    daemon_wake(d);

    char *op = it_customer(sub, "suspend", NULL);
    json_t *audit = op ? it_wait_audit(sub, op, 20000) : NULL;
    CHECK(audit != NULL, "another subscription's event behind the long backlog is acted on");
    size_t inbox = 0;
    store_count(d->store, STORE_INBOX, &inbox);
    CHECK(inbox == STUCK_EVENTS, "the stuck subscription's events still wait for its outbox entry, in order");
    json_decref(audit);
    free(op);
    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
