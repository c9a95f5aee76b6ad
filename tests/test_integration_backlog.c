/* A long backlog of one stuck subscription (more entries than one inbox scan reads) cannot keep
 * another subscription's events from being reached (issue 10, item 6). */
#include "it_support.h"

#define STUCK_EVENTS 4500 /* more than the 4096 entries one scan looks at */

int main(void)
{
    char dir[256], rules[512], conf[512];
    struct emu *emu = it_setup("backlog", dir, rules);
    if (!emu)
        return CHECK_DONE();
    char rule_path[600];
    snprintf(rule_path, sizeof rule_path, "%s/bl-offer.lua", rules); /* offers without a file are held pending */
    it_write_file(rule_path, "return {}\n");
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), "metering = { interval = 0 }\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();
    it_offer("bl-offer");
    char sub[64];
    char *landing = it_purchase("bl-offer", 2, sub, sizeof sub);
    CHECK(it_land(landing, NULL) == 200, "the purchase is activated through the landing page");
    free(landing);

    /* Subscription "stuck": an event waiting in the outbox for an hour, and a long backlog of
     * its newer events behind it in the inbox (they must wait for it). */
    const char *stuck = "5c0ffee0-0000-4000-8000-00000000dead";
    char text[512];
    snprintf(text, sizeof text,
             "{\"next_at_ms\":%lld,\"op_id\":\"stuck-0\",\"sub_id\":\"%s\",\"action\":\"Suspend\",\"offer_id\":\"bl-offer\","
             "\"attempts\":1,\"payload\":{}}",
             (long long)now_ms() + 3600 * 1000LL, stuck);
    struct store_batch *b = NULL;
    store_batch_new(&b);
    store_batch_append(b, STORE_OUTBOX, NULL, 0, text, strlen(text));
    int rc = store_commit(d->store, b);
    store_batch_free(b);
    for (int i = 0; i < STUCK_EVENTS && !rc; i += 500) {
        store_batch_new(&b);
        for (int j = i; j < i + 500; j++) {
            snprintf(text, sizeof text,
                     "{\"op_id\":\"stuck-%d\",\"sub_id\":\"%s\",\"action\":\"Renew\",\"offer_id\":\"bl-offer\","
                     "\"request_id\":\"r\",\"received_at\":0,\"attempts\":0,\"payload\":{}}",
                     j + 1, stuck);
            store_batch_append(b, STORE_INBOX, "", 0, text, strlen(text));
        }
        rc = store_commit(d->store, b);
        store_batch_free(b);
    }
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
