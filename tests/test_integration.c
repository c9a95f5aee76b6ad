/* End-to-end fulfillment against the built-in emulator: the daemon in-process, Microsoft played
 * by the emulator, rules written by the test. Each check names the guarantee it proves. */
#include "it_support.h"

#include "core/crypto.h"
#include "core/metrics.h"
#include "core/mp_client.h"

#include <math.h>

static char dir[256];

static const char *seats_rule =
    "-- integration test offer: refuses going below the seats in use (fed by the ISV via the admin API)\n"
    "return {\n"
    "  provision = function(sub, ctx) return { action = 'activate', message = 'Welcome <b>aboard</b>' } end,\n"
    "  change_quantity = function(sub, change, ctx)\n"
    "    local in_use = tonumber(ctx.store.get('in_use:' .. sub.id) or '0')\n"
    "    if change.quantity < in_use then return { accept = false, reason = 'seats are in use' } end\n"
    "    return { accept = true }\n"
    "  end,\n"
    "}\n";

static const char *slow_rule =
    "return {\n"
    "  change_plan = function(sub, change, ctx) while true do end end,\n"
    "}\n";

static const char *flaky_rule_broken =
    "return { suspend = function(sub, event, ctx) error('ISV system down') end }\n";
static const char *flaky_rule_fixed =
    "return { suspend = function(sub, event, ctx) return true end }\n";

static const char *pending_rule =
    "return { provision = function(sub, ctx) return { action = 'pending', message = 'An engineer will call you' } end }\n";

/* Four tabs of one signed-in buyer press Confirm at the same moment. */
struct confirm_arg {
    struct it_browser *b;
    char form[256];
    long status;
};

static void *press_confirm(void *arg)
{
    struct confirm_arg *a = arg;
    struct it_browser tab = *a->b;
    tab.body = NULL;
    a->status = it_browse(&tab, "POST", "/landing/confirm", a->form);
    it_browser_free(&tab);
    return NULL;
}

int main(void)
{
    char path[512], rules[512];
    struct emu *emu = it_setup("it", dir, rules);
    if (!emu)
        return CHECK_DONE();
    snprintf(path, sizeof path, "%s/it-seats.lua", rules);
    it_write_file(path, seats_rule);
    snprintf(path, sizeof path, "%s/it-slow.lua", rules);
    it_write_file(path, slow_rule);
    snprintf(path, sizeof path, "%s/it-flaky.lua", rules);
    it_write_file(path, flaky_rule_broken);
    snprintf(path, sizeof path, "%s/it-pending.lua", rules);
    it_write_file(path, pending_rule);
    snprintf(path, sizeof path, "%s/it-redirect.lua", rules);
    it_write_file(path, "return { provision = function(sub, ctx)\n"
                        "  return { action = 'activate', redirect = 'https://app.contoso.example/welcome?a=1&b=2' }\n"
                        "end }\n");
    snprintf(path, sizeof path, "%s/it-reject.lua", rules);
    it_write_file(path, "return { provision = function(sub, ctx)\n"
                        "  return { action = 'reject', message = 'Sorry: this offer is for schools only.' }\n"
                        "end }\n");
    snprintf(path, sizeof path, "%s/it-metered.lua", rules); /* no file: its purchase would be held pending */
    it_write_file(path, "return {}\n");
    snprintf(path, sizeof path, "%s/it-pending.html", rules);
    it_write_file(path, "<html><body><div id=\"brand\">Contoso onboarding</div><h2>{{title}}</h2>"
                        "<p>{{message}}</p>{{link}}</body></html>\n");

    unsigned short admin_port = it_free_port();
    char conf[512];
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, admin_port, "metering = { interval = 0 }\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();
    it_offer("it-seats");
    it_offer("it-slow");
    it_offer("it-flaky");
    it_offer("it-pending");
    it_offer("it-redirect");
    it_offer("it-reject");

    /* ---- landing page ---- */
    char sub[64], sub2[64], url_buf[600];
    char *landing = it_purchase("it-seats", 10, sub, sizeof sub);
    long st = 0;
    char *page = NULL;
    st = it_land(landing, &page);
    json_t *ms = it_ms_sub(sub);
    CHECK(st == 200 && strstr(page, "active") && !strcmp(it_str(ms, "saasSubscriptionStatus"), "Subscribed"),
          "the landing page signs the buyer in, and their confirmation provisions and activates the purchase");
    CHECK(strstr(page, "Welcome &lt;b&gt;aboard&lt;/b&gt;") != NULL, "rule text shown on the landing page is HTML-escaped");
    json_decref(ms);
    free(page);
    st = it_land(landing, NULL);
    CHECK(st == 200 && it_audit_count(sub, NULL, "Provision") == 1,
          "coming back to the landing page does not run provision or Activate again");
    free(landing);

    landing = it_purchase("it-seats", 5, sub2, sizeof sub2);
    struct it_browser buyer = {0};
    it_sign_in(&buyer, landing, IT_BUYER_OID);
    it_browse(&buyer, "GET", "/landing/status", NULL);
    pthread_t th[4];
    struct confirm_arg ca[4];
    for (int i = 0; i < 4; i++) {
        ca[i].b = &buyer;
        snprintf(ca[i].form, sizeof ca[i].form, "csrf=%s", it_csrf(&buyer));
        pthread_create(&th[i], NULL, press_confirm, &ca[i]);
    }
    int all303 = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        all303 &= ca[i].status == 303;
    }
    CHECK(all303 && it_audit_count(sub2, NULL, "Provision") == 1,
          "four simultaneous confirmations provision the subscription once");
    it_browser_free(&buyer);
    free(landing);

    snprintf(url_buf, sizeof url_buf, "%s/landing?token=not-a-real-token", it_public_url);
    struct it_browser forger = {0};
    st = it_sign_in(&forger, url_buf, IT_BUYER_OID);
    CHECK(st == 400 && strstr(forger.body, "couldn&#39;t identify this purchase") && strstr(forger.body, "Azure portal"),
          "a forged landing token gets Microsoft's recommended page that says how to get a new link");
    it_browser_free(&forger);
    snprintf(url_buf, sizeof url_buf, "%s/landing", it_public_url);
    json_decref(it_call("GET", url_buf, NULL, NULL, &st, NULL));
    CHECK(st == 400, "a landing visit without a token is answered 400 with a page, not a crash");

    char sub3[64];
    landing = it_purchase("it-pending", 3, sub3, sizeof sub3);
    page = NULL;
    st = it_land(landing, &page);
    ms = it_ms_sub(sub3);
    CHECK(st == 200 && strstr(page, "An engineer will call you") &&
              !strcmp(it_str(ms, "saasSubscriptionStatus"), "PendingFulfillmentStart"),
          "a pending decision tells the customer and does not activate");
    CHECK(strstr(page, "<div id=\"brand\">Contoso onboarding</div><h2>Your purchase is waiting for approval</h2>") != NULL,
          "an offer's own page template beside its rule file is used for its landing page");
    json_decref(ms);
    free(page);
    snprintf(path, sizeof path, "/admin/subscriptions/%s/activate", sub3);
    json_decref(it_admin("POST", path, NULL, &st));
    ms = it_ms_sub(sub3);
    CHECK(st == 200 && !strcmp(it_str(ms, "saasSubscriptionStatus"), "Subscribed"), "an operator activates a pending subscription");
    json_decref(ms);
    page = NULL;
    st = it_land(landing, &page);
    CHECK(st == 200 && strstr(page, "<h2>Your subscription is active</h2>") && !strstr(page, "An engineer will call you"),
          "after an operator activated a pending purchase, the buyer's next visit shows it active, without the pending text");
    free(page);
    free(landing);

    char sub7[64];
    landing = it_purchase("it-reject", 1, sub7, sizeof sub7);
    page = NULL;
    st = it_land(landing, &page);
    ms = it_ms_sub(sub7);
    CHECK(st == 200 && page && strstr(page, "We could not accept this subscription") &&
              strstr(page, "Sorry: this offer is for schools only.") &&
              !strcmp(it_str(ms, "saasSubscriptionStatus"), "PendingFulfillmentStart"),
          "a rejected purchase is not activated and its page carries the rule's message");
    json_decref(ms);
    free(page);
    free(landing);

    char sub6[64];
    landing = it_purchase("it-redirect", 1, sub6, sizeof sub6);
    page = NULL;
    st = it_land(landing, &page);
    ms = it_ms_sub(sub6);
    CHECK(st == 303 && strstr(page, "href=\"https://app.contoso.example/welcome?a=1&amp;b=2\"") &&
              !strcmp(it_str(ms, "saasSubscriptionStatus"), "Subscribed"),
          "a rule's redirect sends the activated customer on to the ISV's app");
    json_decref(ms);
    free(page);
    free(landing);

    /* ---- metering ---- */
    json_decref(it_emu("POST", "/_emulator/offers",
                       json_pack("{s:s, s:[{s:s, s:s, s:[s]}]}", "offerId", "it-metered", "plans", "planId", "flat",
                                 "displayName", "Flat", "dimensions", "api-calls"),
                       &st));
    char msub[64];
    long pst;
    json_t *mp_buy = it_emu("POST", "/_emulator/purchases", json_pack("{s:s, s:s}", "offerId", "it-metered", "planId", "flat"), &pst);
    snprintf(msub, sizeof msub, "%s", it_str(mp_buy, "subscriptionId"));
    it_land(it_str(mp_buy, "landingUrl"), NULL);
    json_decref(mp_buy);
    /* A minute into the hour two hours back, so the two usages a minute apart share one hour
     * whatever the wall clock says when the test runs. */
    long long two_hours_ago = ((long long)time(NULL) / 3600 - 2) * 3600 * 1000LL + 60000;
    long s1, s2, s3;
    json_decref(it_admin("POST", "/admin/usage", json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", msub, "dimension",
                                                             "api-calls", "quantity", 5.0, "time", (json_int_t)two_hours_ago), &s1));
    json_decref(it_admin("POST", "/admin/usage", json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", msub, "dimension",
                                                             "api-calls", "quantity", 7.5, "time", (json_int_t)two_hours_ago + 60000), &s2));
    json_decref(it_admin("POST", "/admin/usage", json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", msub, "dimension",
                                                             "gpu-hours", "quantity", 1.0, "time", (json_int_t)two_hours_ago), &s3));
    json_t *flush = it_admin("POST", "/admin/usage/flush", json_pack("{s:b}", "ignore_grace", 1), &st);
    json_t *ms_usage = it_emu("GET", "/_emulator/usage", NULL, &pst);
    int found = 0;
    size_t ui;
    json_t *u;
    json_array_foreach(json_object_get(ms_usage, "usage"), ui, u) found +=
        !strcmp(it_str(u, "resourceId"), msub) && !strcmp(it_str(u, "dimension"), "api-calls") &&
        fabs(json_number_value(json_object_get(u, "quantity")) - 12.5) < 1e-9;
    CHECK(s1 == 200 && s2 == 200 && s3 == 200 && st == 200 && json_integer_value(json_object_get(flush, "sent")) == 1 &&
              found == 1,
          "usage of one hour is added up and sent once as one usage event (section 7.4)");
    CHECK(json_integer_value(json_object_get(flush, "failed")) == 1,
          "usage for a dimension the plan does not have is refused by Microsoft and not sent again");
    json_decref(flush);
    json_decref(ms_usage);
    json_decref(it_admin("POST", "/admin/usage", json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", msub, "dimension",
                                                             "api-calls", "quantity", 1.0, "time", (json_int_t)two_hours_ago), &s1));
    json_decref(it_admin("POST", "/admin/usage", json_pack("{s:s, s:s, s:f}", "subscriptionId", msub, "dimension",
                                                             "api-calls", "quantity", -3.0), &s2));
    json_decref(it_admin("POST", "/admin/usage", json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", msub, "dimension",
                                                             "api-calls", "quantity", 1.0, "time",
                                                             (json_int_t)two_hours_ago - 30 * 3600 * 1000LL), &s3));
    CHECK(s1 == 409 && s2 == 400 && s3 == 400,
          "usage for an hour already sent, a quantity under zero or usage older than 24 h is refused with a clear error");
    json_t *ulist = it_admin("GET", "/admin/usage", NULL, &st);
    int sent_seen = 0;
    json_array_foreach(json_object_get(ulist, "usage"), ui, u) sent_seen += !strcmp(it_str(u, "state"), "sent") &&
                                                                       *it_str(u, "usage_event_id");
    CHECK(sent_seen == 1, "the sent hour keeps Microsoft's usage event id");
    json_decref(ulist);
    char day[16];
    time_t day_t = (time_t)(two_hours_ago / 1000);
    struct tm day_tm;
    gmtime_r(&day_t, &day_tm);
    strftime(day, sizeof day, "%Y-%m-%d", &day_tm);
    struct mp_usage_query uq = {.start = day, .offer_id = "it-metered", .dimension = "api-calls"};
    struct mp_result ur = {0};
    int urc = mp_usage_events(d->mp, &uq, &ur);
    double recorded = 0;
    json_array_foreach(json_object_get(ur.body, "usage"), ui, u) if (!strcmp(it_str(u, "usageResourceId"), msub))
        recorded += json_number_value(json_object_get(u, "submittedQuantity"));
    CHECK(urc == 0 && ur.status == 200 && fabs(recorded - 12.5) < 1e-9,
          "the usage query shows what Microsoft recorded for the offer (section 7.1)");
    mp_result_clear(&ur);
    struct mp_usage_query odd_filter = {.start = day, .offer_id = "no such & offer=x"};
    urc = mp_usage_events(d->mp, &odd_filter, &ur);
    CHECK(urc == 0 && ur.status == 200 && json_array_size(json_object_get(ur.body, "usage")) == 0,
          "usage query values are URL-encoded, so a filter cannot add parameters");
    mp_result_clear(&ur);
    struct mp_usage_query no_start = {.offer_id = "it-metered"};
    CHECK(mp_usage_events(d->mp, &no_start, &ur) == SAASD_EINVAL && ur.attempts == 0,
          "a usage query without a start date is refused before anything is sent");
    mp_result_clear(&ur);

    /* ---- webhooks ---- */
    char *op = it_customer(sub, "change-plan", json_pack("{s:s}", "planId", "business"));
    const char *fin = it_wait_op(op, 15000);
    json_t *audit = op ? it_wait_audit(sub, op, 5000) : NULL;
    json_t *local = it_local(sub);
    ms = it_ms_sub(sub);
    CHECK(!strcmp(fin, "Succeeded") && !strcmp(it_str(local, "planId"), "business") &&
              !strcmp(it_str(ms, "planId"), "business") && !strcmp(it_str(audit, "decision"), "accepted"),
          "a plan change accepted by the rule is acknowledged and applied on both sides");
    char sha[CRYPTO_SHA256_HEX_LEN];
    snprintf(path, sizeof path, "%s/it-seats.lua", rules);
    it_file_sha256(path, sha);
    CHECK(!strcmp(it_str(audit, "rule_sha256"), sha), "the audit trail records the SHA-256 of the rule file that decided");
    json_decref(audit);
    json_decref(local);
    json_decref(ms);

    /* Replay the delivered webhook with a fresh valid token: 200, processed once. */
    snprintf(path, sizeof path, "/_emulator/webhooks?operationId=%s", op ? op : "-");
    json_t *dl = it_emu("GET", path, NULL, &st);
    json_t *payload = json_incref(json_object_get(json_array_get(json_object_get(dl, "deliveries"), 0), "payload"));
    json_decref(dl);
    json_t *tok = it_emu("POST", "/_emulator/tokens", json_pack("{s:s}", "kind", "webhook"), &st);
    char token[8192];
    snprintf(token, sizeof token, "%s", it_str(tok, "access_token"));
    json_decref(tok);
    snprintf(url_buf, sizeof url_buf, "%s/webhook", it_public_url);
    json_decref(it_call("POST", url_buf, json_incref(payload), token, &st, NULL));
    usleep(300 * 1000);
    CHECK(payload && st == 200 && it_audit_count(sub, op, NULL) == 1, "a duplicate webhook is answered 200 and processed once");
    free(op);

    /* Forged bearer: refused, nothing stored. */
    json_t *forged = json_deep_copy(payload);
    json_object_set_new(forged, "id", json_string("99999999-9999-4999-8999-999999999999"));
    json_decref(it_call("POST", url_buf, forged, "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.", &st, NULL));
    void *val = NULL;
    size_t vlen = 0;
    CHECK(st == 401 && store_get(d->store, STORE_OPERATIONS, "99999999-9999-4999-8999-999999999999", 36, &val, &vlen) == SAASD_ENOTFOUND,
          "a webhook with a forged JWT is refused with 401 and stores nothing");
    free(val);
    json_decref(it_call("POST", url_buf, json_string("not an object"), token, &st, NULL));
    CHECK(st == 400, "a webhook body that is not a JSON object is answered 400");
    json_t *noid = json_deep_copy(payload);
    json_object_del(noid, "id");
    json_decref(it_call("POST", url_buf, noid, token, &st, NULL));
    CHECK(st == 400, "a webhook without an operation id is answered 400");
    /* Signed, well-formed, but about an operation Microsoft never created. */
    json_t *made_up = json_deep_copy(payload);
    json_object_set_new(made_up, "id", json_string("77777777-7777-4777-8777-777777777777"));
    json_object_set_new(made_up, "action", json_string("Suspend"));
    json_decref(it_call("POST", url_buf, made_up, token, &st, NULL));
    json_t *ignored = st == 200 ? it_wait_audit(sub, "77777777-7777-4777-8777-777777777777", 15000) : NULL;
    local = it_local(sub);
    CHECK(ignored && !strcmp(it_str(ignored, "decision"), "ignored") && !strcmp(it_str(local, "status"), "Subscribed"),
          "a webhook about an operation Microsoft does not know is asked about again, then ignored: nothing changes");
    json_decref(ignored);
    json_decref(local);
    json_t *odd = json_deep_copy(payload);
    json_object_set_new(odd, "id", json_string("88888888-8888-4888-8888-888888888888"));
    json_object_set_new(odd, "action", json_string("Transfer"));
    json_decref(it_call("POST", url_buf, odd, token, &st, NULL));
    CHECK(st == 200 && store_get(d->store, STORE_OPERATIONS, "88888888-8888-4888-8888-888888888888", 36, &val, &vlen) == SAASD_ENOTFOUND,
          "an unknown action is acknowledged 200 and not stored");
    json_decref(payload);

    snprintf(path, sizeof path, "/admin/offers/it-seats/store/in_use:%s", sub);
    json_decref(it_admin("PUT", path, json_pack("{s:s}", "value", "6"), &st));
    json_t *kv = it_admin("GET", path, NULL, &st);
    CHECK(st == 200 && !strcmp(it_str(kv, "value"), "6"), "the ISV's systems can feed a fact to the offer's rules through the admin API");
    json_decref(kv);

    /* The admin routes (one table in admin.c): what matches, and what is answered 404. */
    snprintf(path, sizeof path, "/admin/subscriptions/%s/", sub);
    json_t *slash = it_admin("GET", path, NULL, &st);
    CHECK(st == 200 && json_object_get(slash, "local"), "an admin subscription path with a trailing slash finds the record");
    json_decref(slash);
    long st_post, st_verb, st_seq, st_unknown, st_prefix;
    json_decref(it_admin("POST", "/admin/outbox", NULL, &st_post));
    json_decref(it_admin("POST", "/admin/outbox/1/frobnicate", NULL, &st_verb));
    json_decref(it_admin("POST", "/admin/outbox/1x/retry", NULL, &st_seq));
    json_decref(it_admin("GET", "/admin/nothing-here", NULL, &st_unknown));
    json_decref(it_admin("GET", "/admin/usagex", NULL, &st_prefix));
    CHECK(st_post == 404 && st_verb == 404 && st_seq == 404 && st_unknown == 404 && st_prefix == 404,
          "an admin path with the wrong method, an unknown verb, a non-numeric sequence or no route at all is answered 404");
    long st_flush_get, st_usage_verb;
    json_decref(it_admin("GET", "/admin/usage/flush", NULL, &st_flush_get));
    json_decref(it_admin("POST", "/admin/usage/nothing", NULL, &st_usage_verb));
    CHECK(st_flush_get == 404 && st_usage_verb == 404,
          "under /admin/usage a known path with another method, or an unknown path, is answered 404");

    /* The public routes (one table in daemon.c): a near miss of a path is not routed to it. */
    const char *misses[] = {"/nothing-here", "/landingx", "/healthz/", "/webhooks", "/"};
    int missed = 0;
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        snprintf(url_buf, sizeof url_buf, "%s%s", it_public_url, misses[i]);
        json_t *nf = it_call("GET", url_buf, NULL, NULL, &st, NULL);
        missed += st == 404 && !strcmp(it_str(json_object_get(nf, "error"), "code"), "NotFound");
        json_decref(nf);
    }
    CHECK(missed == 5, "a public path that no route takes (an unknown path, a route's name with more after it) is answered 404 NotFound");
    char *landing_404 = NULL;
    snprintf(url_buf, sizeof url_buf, "%s/landing/", it_public_url);
    json_t *not_json = it_call("GET", url_buf, NULL, NULL, &st, &landing_404);
    CHECK(st == 404 && !not_json && landing_404 && strstr(landing_404, "Page not found"),
          "any path under /landing/ goes to the landing page, which answers its own 404 page");
    json_decref(not_json);
    free(landing_404);
    op = it_customer(sub, "change-quantity", json_pack("{s:i}", "quantity", 4));
    fin = it_wait_op(op, 15000);
    audit = op ? it_wait_audit(sub, op, 5000) : NULL;
    ms = it_ms_sub(sub);
    local = it_local(sub);
    CHECK(!strcmp(fin, "Failed") && json_integer_value(json_object_get(ms, "quantity")) == 10 &&
              json_integer_value(json_object_get(local, "quantity")) == 10 && !strcmp(it_str(audit, "decision"), "refused"),
          "a seat reduction refused by the rule leaves Microsoft's state unchanged");
    json_decref(ms);
    json_decref(local);
    json_decref(audit);
    free(op);

    /* Faults: GET operation fails for a while; the event is retried, not lost. */
    json_decref(it_emu("POST", "/_emulator/faults",
                       json_pack("{s:s, s:s, s:s, s:i}", "path", "/api/saas/subscriptions/*/operations/*", "method", "GET",
                                 "kind", "500", "count", 4),
                       &st));
    json_decref(it_emu("POST", "/_emulator/faults",
                       json_pack("{s:s, s:s, s:s, s:i, s:i}", "path", "/api/saas/subscriptions/*/operations/*", "method",
                                 "GET", "kind", "429", "count", 2, "retryAfterS", 1),
                       &st));
    op = it_customer(sub, "change-quantity", json_pack("{s:i}", "quantity", 12));
    audit = op ? it_wait_audit(sub, op, 20000) : NULL;
    local = it_local(sub);
    CHECK(audit && json_integer_value(json_object_get(local, "quantity")) == 12,
          "the emulator answering 500 and 429 for a while delays the event but does not lose it");
    json_decref(audit);
    json_decref(local);
    free(op);
    json_decref(it_emu("DELETE", "/_emulator/faults", NULL, &st));

    /* Rule timeout: the default (refuse) is sent well inside the ACK window. */
    char sub4[64];
    landing = it_purchase("it-slow", 2, sub4, sizeof sub4);
    it_land(landing, NULL);
    free(landing);
    op = it_customer(sub4, "change-plan", json_pack("{s:s}", "planId", "business"));
    fin = it_wait_op(op, 15000);
    audit = op ? it_wait_audit(sub4, op, 5000) : NULL;
    CHECK(!strcmp(fin, "Failed") && strstr(it_str(audit, "detail"), "default applied"),
          "a rule that runs forever is stopped and its change refused inside the 10 s window");
    json_decref(audit);
    free(op);

    /* Notify-only handler error: kept in the outbox, retried after the rule is fixed. */
    char sub5[64];
    landing = it_purchase("it-flaky", 2, sub5, sizeof sub5);
    it_land(landing, NULL);
    free(landing);
    op = it_customer(sub5, "suspend", NULL);
    json_t *ob = NULL;
    long long until = it_now_ms() + 10000;
    int parked = 0;
    char seq[32] = "";
    while (!parked && it_now_ms() < until) {
        ob = it_admin("GET", "/admin/outbox", NULL, &st);
        json_t *first = json_array_get(json_object_get(ob, "outbox"), 0);
        if (first && strstr(it_str(first, "last_error"), "ISV system down")) {
            parked = 1;
            snprintf(seq, sizeof seq, "%lld", (long long)json_integer_value(json_object_get(first, "seq")));
        }
        json_decref(ob);
        usleep(50 * 1000);
    }
    CHECK(parked, "a failing suspend handler keeps its event in the outbox with the error");
    snprintf(path, sizeof path, "/admin/subscriptions/%s/history", sub5);
    json_t *hist = it_admin("GET", path, NULL, &st);
    json_t *pend = json_array_get(json_object_get(hist, "pending"), 0);
    CHECK(pend && !strcmp(it_str(pend, "action"), "Suspend") && strstr(it_str(pend, "last_error"), "ISV system down"),
          "the subscription's history shows the event still waiting, with its error");
    json_decref(hist);
    /* The customer cancels while the suspend is stuck: the cancellation must wait its turn. */
    char *later_op = it_customer(sub5, "unsubscribe", NULL);
    usleep(1500 * 1000);
    int jumped = later_op ? it_audit_count(sub5, later_op, NULL) : 1;
    CHECK(later_op && !jumped, "a newer event of a subscription waits while an older one waits in the outbox");
    snprintf(path, sizeof path, "%s/it-flaky.lua", rules);
    it_write_file(path, flaky_rule_fixed);
    json_decref(it_admin("POST", "/admin/rules/reload", NULL, &st));
    snprintf(path, sizeof path, "/admin/outbox/%s/retry", seq);
    json_decref(it_admin("POST", path, NULL, &st));
    audit = op ? it_wait_audit(sub5, op, 10000) : NULL;
    json_t *later_audit = later_op ? it_wait_audit(sub5, later_op, 10000) : NULL;
    json_t *trail = it_history(sub5);
    long suspend_at = -1, cancel_at = -1;
    size_t ti;
    json_t *te;
    json_array_foreach(trail, ti, te) {
        if (op && !strcmp(it_str(te, "op_id"), op))
            suspend_at = (long)ti;
        if (later_op && !strcmp(it_str(te, "op_id"), later_op))
            cancel_at = (long)ti;
    }
    local = it_local(sub5);
    CHECK(audit && later_audit && suspend_at >= 0 && cancel_at > suspend_at &&
              !strcmp(it_str(local, "status"), "Unsubscribed"),
          "after the rule is fixed the retried suspend is acted on, then the cancellation that waited");
    json_decref(trail);
    json_decref(audit);
    json_decref(later_audit);
    json_decref(local);
    free(op);
    free(later_op);

    /* Suspend, reinstate, unsubscribe on the per-seat subscription. */
    const char *verbs[] = {"suspend", "reinstate", "unsubscribe"};
    const char *want[] = {"Suspended", "Subscribed", "Unsubscribed"};
    int lifecycle_ok = 1;
    for (int i = 0; i < 3; i++) {
        op = it_customer(sub, verbs[i], NULL);
        it_wait_op(op, 15000);
        audit = op ? it_wait_audit(sub, op, 10000) : NULL;
        local = it_local(sub);
        ms = it_ms_sub(sub);
        if (!audit || strcmp(it_str(local, "status"), want[i]) || strcmp(it_str(ms, "saasSubscriptionStatus"), want[i])) {
            printf("# %s: local=%s microsoft=%s audit=%s\n", verbs[i], it_str(local, "status"),
                   it_str(ms, "saasSubscriptionStatus"), audit ? "yes" : "no");
            lifecycle_ok = 0;
        }
        json_decref(audit);
        json_decref(local);
        json_decref(ms);
        free(op);
    }
    CHECK(lifecycle_ok, "suspend, reinstate and unsubscribe reach the same state on both sides");

    /* Publisher-initiated change through the admin API follows Operation-Location. */
    snprintf(path, sizeof path, "/admin/subscriptions/%s/change-quantity", sub2);
    json_t *r = it_admin("POST", path, json_pack("{s:i}", "quantity", 7), &st);
    ms = it_ms_sub(sub2);
    CHECK(st == 200 && !strcmp(it_str(r, "result"), "succeeded") && json_integer_value(json_object_get(ms, "quantity")) == 7,
          "an operator's seat change follows the operation to Succeeded");
    json_decref(r);
    json_decref(ms);

    /* A missed webhook: Microsoft suspends sub2 while saasd is unreachable. First let every
     * earlier delivery settle: processing any event of sub2 refreshes it from Microsoft. */
    it_settle(d->store, 15000);
    json_decref(it_emu("PUT", "/_emulator/config", json_pack("{s:s}", "webhookUrl", "http://127.0.0.1:1/webhook"), &st));
    op = it_customer(sub2, "suspend", NULL);
    it_wait_op(op, 5000);
    free(op);
    local = it_local(sub2);
    int stale = !strcmp(it_str(local, "status"), "Subscribed");
    json_decref(local);
    json_t *rec = it_admin("POST", "/admin/reconcile", NULL, &st);
    local = it_local(sub2);
    CHECK(stale && st == 200 && json_integer_value(json_object_get(rec, "drift")) >= 1 &&
              !strcmp(it_str(local, "status"), "Suspended"),
          "reconciliation finds a missed webhook, counts the drift and repairs the local state");
    json_decref(rec);
    json_decref(local);
    rec = it_admin("GET", "/admin/events?limit=1000", NULL, &st);
    size_t ei;
    json_t *ev, *drift = NULL;
    json_array_foreach(json_object_get(rec, "events"), ei, ev) if (!strcmp(it_str(ev, "type"), "drift.found") &&
                                                                  !strcmp(it_str(ev, "subscription"), sub2)) drift = ev;
    CHECK(drift && strstr(it_str(json_object_get(drift, "data"), "kinds"), "status") &&
              !strcmp(it_str(json_object_get(drift, "data"), "status"), "Suspended"),
          "the repair is a drift.found event naming the kind of drift and the repaired status");
    json_decref(rec);

    /* Twins in the inbox: two copies of one webhook both got past ingest (they arrived together,
     * before either was acted on). The worker acts on the first and drops the second. */
    op = it_customer(sub3, "renew", NULL); /* delivered nowhere: the URL still points at port 1 */
    snprintf(path, sizeof path, "/_emulator/operations/%s", op ? op : "-");
    json_t *renew = it_emu("GET", path, NULL, &st);
    json_t *head = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:O}", "op_id", op ? op : "", "sub_id", sub3, "action",
                             "Renew", "offer_id", "it-pending", "request_id", "twin-test", "received_at",
                             (json_int_t)now_ms(), "attempts", 0, "payload", renew);
    char *twin = json_dumps(head, JSON_COMPACT);
    double dup_before = metrics_value("saasd_events_processed_total", "action=\"Renew\",outcome=\"duplicate\"");
    struct store_batch *tb = NULL;
    store_batch_new(&tb);
    store_batch_append(tb, STORE_INBOX, NULL, 0, twin, strlen(twin));
    store_batch_append(tb, STORE_INBOX, NULL, 0, twin, strlen(twin));
    int trc = store_commit(d->store, tb);
    store_batch_free(tb);
    daemon_wake(d);
    audit = op && trc == 0 ? it_wait_audit(sub3, op, 10000) : NULL;
    for (int i = 0; i < 250 && metrics_value("saasd_events_processed_total", "action=\"Renew\",outcome=\"duplicate\"") == dup_before; i++)
        usleep(20 * 1000);
    CHECK(audit && it_audit_count(sub3, op, NULL) == 1 &&
              metrics_value("saasd_events_processed_total", "action=\"Renew\",outcome=\"duplicate\"") == dup_before + 1,
          "two copies of one webhook waiting in the inbox are acted on once");
    json_decref(audit);
    json_decref(renew);
    json_decref(head);
    free(twin);
    free(op);
    it_point_emulator(httpd_port(d->public_httpd));
    char cmd[1200], out[65536];
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/saasd admin --config %s subscriptions 2>&1", build, conf);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    int cli_rc = p ? pclose(p) : -1;
    json_t *listed = json_loads(out, 0, NULL);
    CHECK(cli_rc == 0 && json_array_size(json_object_get(listed, "subscriptions")) >= 4 && strstr(out, sub) &&
              strstr(out, "\"provision\""),
          "the admin CLI lists the subscriptions through the admin API");
    json_decref(listed);
    snprintf(cmd, sizeof cmd, "%s/saasd admin --config %s reconcile >/dev/null 2>&1", build, conf);
    CHECK(system(cmd) == 0, "the admin CLI runs a reconciliation pass");
    snprintf(cmd, sizeof cmd, "%s/saasd admin --config %s store-put it-seats cli-note 'from the CLI' >/dev/null 2>&1",
             build, conf);
    int put_rc = system(cmd);
    json_t *note = it_admin("GET", "/admin/offers/it-seats/store/cli-note", NULL, &st);
    CHECK(put_rc == 0 && st == 200 && !strcmp(it_str(note, "value"), "from the CLI"),
          "the admin CLI sends its last argument as the verb's JSON body (store-put: {\"value\": ...})");
    json_decref(note);
    long st2 = 0;
    snprintf(url_buf, sizeof url_buf, "%s/admin/subscriptions", it_admin_url);
    json_decref(it_call("GET", url_buf, NULL, "wrong-key", &st2, NULL));
    CHECK(st2 == 401, "the admin API refuses a wrong key");
    snprintf(url_buf, sizeof url_buf, "%s/healthz", it_public_url);
    json_t *h = it_call("GET", url_buf, NULL, NULL, &st, NULL);
    CHECK(st == 200 && json_is_true(json_object_get(h, "store_writable")), "/healthz reports the store writable");
    json_decref(h);
    snprintf(url_buf, sizeof url_buf, "%s/readyz", it_public_url);
    h = it_call("GET", url_buf, NULL, NULL, &st, NULL);
    CHECK(st == 200 && json_is_true(json_object_get(h, "rules_loaded")) && !strcmp(it_str(h, "token"), "ok"),
          "/readyz reports the rules loaded and the token fetched within its lifetime");
    json_decref(h);
    char *metrics = it_metrics_text(&st);
    CHECK(st == 200 && strstr(metrics, "saasd_webhooks_total{action=\"ChangePlan\",outcome=\"accepted\"}") &&
              strstr(metrics, "saasd_inbox_depth"),
          "/metrics exposes webhooks by action and outcome and the inbox depth");
    free(metrics);

    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
