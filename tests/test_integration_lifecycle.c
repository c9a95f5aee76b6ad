/* Life-cycle semantics against the emulator (issue 11): what a rule sees, Reinstate, Subscribe,
 * publisher-initiated changes, Microsoft's view after Unsubscribe, local-only subscriptions,
 * the 30-day activation deadline, both spellings of the request source, and Activate read back.
 * Each check names the guarantee it proves. */
#include "it_support.h"

#include "core/metrics.h"

static char dir[256];

/* Refuses every plan change during the first 30 days of a term, judged on term.startDate only
 * (what Microsoft sends once the subscription is activated). */
static const char *term_rule =
    "return {\n"
    "  change_plan = function(sub, change, ctx)\n"
    "    local start = sub.term and sub.term.startDate\n"
    "    if not start then return { accept = true } end\n"
    "    if ctx.days_between(ctx.parse_time(start), ctx.now()) < 30 then\n"
    "      return { accept = false, reason = 'no plan change in the first 30 days of a term' }\n"
    "    end\n"
    "    return { accept = true }\n"
    "  end,\n"
    "}\n";

/* Counts its reinstate and unsubscribe calls per subscription; refuses a Reinstate when the
 * ISV's side said so (key "refuse"). Provision refuses more than 40 seats. */
static const char *counting_rule =
    "local function bump(ctx, k) ctx.store.put(k, (tonumber(ctx.store.get(k) or '0') or 0) + 1) end\n"
    "return {\n"
    "  provision = function(sub, ctx)\n"
    "    bump(ctx, 'provisioned:' .. sub.id)\n"
    "    if (sub.quantity or 0) > 40 then return { action = 'reject', message = 'too many seats' } end\n"
    "    return { action = 'activate' }\n"
    "  end,\n"
    "  reinstate = function(sub, event, ctx)\n"
    "    bump(ctx, 'reinstated:' .. sub.id)\n"
    "    if ctx.store.get('refuse') then return { accept = false, reason = 'account closed on our side' } end\n"
    "    return true\n"
    "  end,\n"
    "  unsubscribe = function(sub, event, ctx) bump(ctx, 'unsubscribed:' .. sub.id) end,\n"
    "}\n";

static const char *pending_rule =
    "return { provision = function(sub, ctx) return { action = 'pending', message = 'we will call you' } end }\n";

static void knobs(json_t *k)
{
    long st;
    json_decref(it_emu("PUT", "/_emulator/config", k, &st));
}

static int land(const char *offer, int seats, char *sub, size_t size)
{
    char *url = it_purchase(offer, seats, sub, size);
    long st = it_land(url, NULL); /* sign in, confirm */
    free(url);
    return st == 200;
}

/* The offer's ctx.store value of key as a number (0 when absent). */
static long store_num(const char *offer, const char *key)
{
    char path[512];
    long st;
    snprintf(path, sizeof path, "/admin/offers/%s/store/%s", offer, key);
    json_t *r = it_admin("GET", path, NULL, &st);
    long n = st == 200 ? strtol(it_str(r, "value"), NULL, 10) : 0;
    json_decref(r);
    return n;
}

static long counted(const char *offer, const char *what, const char *sub)
{
    char key[256];
    snprintf(key, sizeof key, "%s:%s", what, sub);
    return store_num(offer, key);
}

/* Wait until f(offer, what, sub) reaches want or the time is up; returns the last value. */
static long wait_count(const char *offer, const char *what, const char *sub, long want, long timeout_ms)
{
    long long until = it_now_ms() + timeout_ms;
    long n = counted(offer, what, sub);
    while (n < want && it_now_ms() < until) {
        usleep(50 * 1000);
        n = counted(offer, what, sub);
    }
    return n;
}

static int wait_ms_status(const char *sub, const char *want, long timeout_ms)
{
    long long until = it_now_ms() + timeout_ms;
    while (strcmp(it_ms_status(sub), want) && it_now_ms() < until)
        usleep(50 * 1000);
    return !strcmp(it_ms_status(sub), want);
}

/* Customer action, then wait for saasd's audit entry of it. */
static json_t *customer_and_wait(const char *sub, const char *verb, json_t *body, char *op_out, size_t size)
{
    char *op = it_customer(sub, verb, body);
    it_wait_op(op, 15000);
    json_t *a = op ? it_wait_audit(sub, op, 10000) : NULL;
    if (op_out)
        snprintf(op_out, size, "%s", op ? op : "");
    free(op);
    return a;
}

static void fresh_view_for_rules(void)
{
    char sub[64];
    CHECK(land("lc-term", 3, sub, sizeof sub), "a purchase of the term offer lands");
    json_t *local = it_local(sub);
    CHECK(*it_str(json_object_get(json_object_get(local, "subscription"), "term"), "startDate") &&
              !strcmp(it_str(local, "status"), "Subscribed"),
          "after Activate the stored subscription is Microsoft's as read back (Subscribed, with term.startDate)");
    json_decref(local);
    json_t *a = customer_and_wait(sub, "change-plan", json_pack("{s:s}", "planId", "business"), NULL, 0);
    json_t *ms = it_ms_sub(sub);
    CHECK(a && !strcmp(it_str(a, "decision"), "refused") && !strcmp(it_str(ms, "planId"), "team"),
          "a rule judging the term sees the activated term: a change in the first 30 days is refused");
    json_decref(a);
    json_decref(ms);
}

/* The shipped tiered-suite rule (no downgrade in the first 30 days of a term), on subscriptions
 * served without `created` as Microsoft's sometimes are. */
static void shipped_tiered_rule(void)
{
    long st;
    knobs(json_pack("{s:b}", "omitCreated", 1));
    json_decref(it_emu("POST", "/_emulator/offers",
                       json_pack("{s:s, s:[{s:s}, {s:s}, {s:s}]}", "offerId", "tiered-suite", "plans", "planId", "basic",
                                 "planId", "standard", "planId", "premium"),
                       &st));
    json_t *p = it_emu("POST", "/_emulator/purchases", json_pack("{s:s, s:s}", "offerId", "tiered-suite", "planId", "premium"), &st);
    char sub[64];
    snprintf(sub, sizeof sub, "%s", it_str(p, "subscriptionId"));
    it_land(it_str(p, "landingUrl"), NULL);
    json_decref(p);
    json_t *a = customer_and_wait(sub, "change-plan", json_pack("{s:s}", "planId", "basic"), NULL, 0);
    json_t *ms = it_ms_sub(sub);
    CHECK(a && !strcmp(it_str(a, "decision"), "refused") && strstr(it_str(a, "detail"), "downgrades are possible from day 30") &&
              !strcmp(it_str(ms, "planId"), "premium"),
          "the shipped tiered-suite rule refuses a downgrade on day 0 of the term Microsoft set at activation");
    json_decref(a);
    json_decref(ms);
    knobs(json_pack("{s:b}", "omitCreated", 0));
}

static void activate_read_back(void)
{
    char sub[64];
    knobs(json_pack("{s:i}", "subUpdateDelayMs", 1000));
    CHECK(land("lc-term", 2, sub, sizeof sub), "a purchase lands while Microsoft shows changes late");
    json_t *local = it_local(sub);
    CHECK(!strcmp(it_str(local, "status"), "Subscribed") && json_is_true(json_object_get(local, "activation_confirmed")),
          "after Activate saasd reads the subscription back until Microsoft shows it Subscribed");
    json_decref(local);
    knobs(json_pack("{s:i}", "subUpdateDelayMs", 8000));
    CHECK(land("lc-term", 2, sub, sizeof sub), "a purchase lands while Microsoft shows the activation only much later");
    local = it_local(sub);
    CHECK(!strcmp(it_str(local, "status"), "PendingFulfillmentStart") &&
              json_is_false(json_object_get(local, "activation_confirmed")) &&
              !strcmp(it_str(json_object_get(local, "provision"), "decision"), "activated"),
          "when Microsoft does not show Subscribed within the read-back, saasd records what Microsoft says, not what it hoped");
    json_decref(local);
    knobs(json_pack("{s:i}", "subUpdateDelayMs", 0));
}

static void reinstate(void)
{
    char sub[64], op[64];
    land("lc-count", 3, sub, sizeof sub);
    json_decref(customer_and_wait(sub, "suspend", NULL, NULL, 0));
    json_t *a = customer_and_wait(sub, "reinstate", NULL, op, sizeof op);
    json_t *local = it_local(sub);
    CHECK(a && counted("lc-count", "reinstated", sub) == 1 && !strcmp(it_str(local, "status"), "Subscribed"),
          "a Reinstate Microsoft sends already Succeeded (webhook page) runs the offer's reinstate handler");
    json_decref(a);
    json_decref(local);

    long st;
    json_decref(it_admin("PUT", "/admin/offers/lc-count/store/refuse", json_pack("{s:s}", "value", "1"), &st));
    land("lc-count", 3, sub, sizeof sub);
    json_decref(customer_and_wait(sub, "suspend", NULL, NULL, 0));
    a = customer_and_wait(sub, "reinstate", NULL, op, sizeof op);
    CHECK(a && !strcmp(it_str(a, "decision"), "cancelled") && strstr(it_str(a, "detail"), "account closed on our side") &&
              wait_ms_status(sub, "Unsubscribed", 10000),
          "a Reinstate the rule refuses cancels the subscription at Microsoft and the audit says why");
    CHECK(wait_count("lc-count", "unsubscribed", sub, 1, 10000) == 1, "the cancelled subscription's unsubscribe handler runs");
    json_decref(a);
    json_decref(it_admin("DELETE", "/admin/offers/lc-count/store/refuse", NULL, &st));

    knobs(json_pack("{s:b}", "reinstateAckable", 1));
    land("lc-count", 3, sub, sizeof sub);
    json_decref(customer_and_wait(sub, "suspend", NULL, NULL, 0));
    char *rop = it_customer(sub, "reinstate", NULL);
    long long t0 = it_now_ms();
    const char *fin = it_wait_op(rop, 15000);
    CHECK(!strcmp(fin, "Succeeded") && it_now_ms() - t0 < 8000 && wait_count("lc-count", "reinstated", sub, 1, 5000) == 1,
          "an ACK-able Reinstate (life-cycle page) runs the handler and is acknowledged with PATCH Success");
    free(rop);
    knobs(json_pack("{s:b}", "reinstateAckable", 0));
}

static double activations(void)
{
    return metrics_value("saasd_upstream_requests_total", "endpoint=\"activate\",status=\"200\"") +
           metrics_value("saasd_upstream_requests_total", "endpoint=\"activate\",status=\"400\"");
}

static json_t *auto_purchase(int seats, char *sub, size_t size)
{
    long st;
    json_t *p = it_emu("POST", "/_emulator/purchases",
                       json_pack("{s:s, s:s, s:i, s:b}", "offerId", "lc-count", "planId", "team", "quantity", seats,
                                 "autoActivate", 1),
                       &st);
    snprintf(sub, size, "%s", it_str(p, "subscriptionId"));
    return p;
}

static void subscribe(void)
{
    char sub[64];
    double before = activations();
    json_decref(auto_purchase(4, sub, sizeof sub));
    long n = wait_count("lc-count", "provisioned", sub, 1, 10000);
    json_t *local = NULL;
    long long until = it_now_ms() + 5000;
    do {
        json_decref(local);
        local = it_local(sub);
        usleep(50 * 1000);
    } while (strcmp(it_str(json_object_get(local, "provision"), "decision"), "activated") && it_now_ms() < until);
    CHECK(n == 1 && !strcmp(it_str(local, "status"), "Subscribed") &&
              !strcmp(it_str(json_object_get(local, "provision"), "decision"), "activated") &&
              *it_str(json_object_get(json_object_get(local, "subscription"), "term"), "startDate") &&
              activations() == before,
          "Subscribe (auto-activated purchase): provision runs, no Activate is sent, the record is Subscribed with Microsoft's term");
    json_decref(local);
    json_decref(auto_purchase(45, sub, sizeof sub));
    CHECK(wait_ms_status(sub, "Unsubscribed", 10000), "a Subscribe the provision rule rejects cancels the subscription at Microsoft");
    until = it_now_ms() + 5000;
    local = NULL;
    do {
        json_decref(local);
        local = it_local(sub);
        usleep(50 * 1000);
    } while (strcmp(it_str(json_object_get(local, "provision"), "decision"), "rejected") && it_now_ms() < until);
    CHECK(!strcmp(it_str(json_object_get(local, "provision"), "decision"), "rejected"),
          "the rejected Subscribe is recorded as the provision decision");
    json_decref(local);
}

/* GET subscription calls saasd made (answered 200). */
static double get_subscription_calls(void)
{
    return metrics_value("saasd_upstream_requests_total", "endpoint=\"get\",status=\"200\"");
}

/* A customer's change the rule accepts: saasd reads the subscription once (the rule's view) and,
 * once Microsoft took its PATCH Success, keeps the change as accepted instead of reading the
 * subscription again; a change the rule refuses is still read back, where Microsoft may have
 * applied it anyway (drift). */
static void change_read_back(void)
{
    char sub[64];
    CHECK(land("lc-count", 4, sub, sizeof sub), "a purchase of the counting offer lands");
    double before = get_subscription_calls();
    json_t *a = customer_and_wait(sub, "change-quantity", json_pack("{s:i}", "quantity", 9), NULL, 0);
    double gets = get_subscription_calls() - before;
    json_t *local = it_local(sub);
    CHECK(a && !strcmp(it_str(a, "decision"), "accepted") && json_integer_value(json_object_get(local, "quantity")) == 9 &&
              !strcmp(it_str(local, "status"), "Subscribed"),
          "an accepted seat change is the local state at once");
    CHECK(gets == 1, "an accepted change Microsoft took costs one GET subscription (the rule's view), not a second one after the ACK");
    printf("# GET subscription calls for the accepted change: %.0f\n", gets);
    json_decref(a);
    json_decref(local);
    long st;
    json_decref(it_admin("POST", "/admin/reconcile", NULL, &st));
    local = it_local(sub);
    CHECK(st == 200 && json_integer_value(json_object_get(local, "quantity")) == 9 && !json_object_get(local, "pending_change") &&
              json_integer_value(json_object_get(json_object_get(local, "subscription"), "quantity")) == 9,
          "the next read of Microsoft's subscription confirms the accepted change");
    json_decref(local);

    CHECK(land("lc-term", 3, sub, sizeof sub), "a purchase of the term offer lands");
    before = get_subscription_calls();
    a = customer_and_wait(sub, "change-plan", json_pack("{s:s}", "planId", "business"), NULL, 0);
    gets = get_subscription_calls() - before;
    CHECK(a && !strcmp(it_str(a, "decision"), "refused") && gets == 2,
          "a refused change is read back from Microsoft after the PATCH Failure (drift check)");
    json_decref(a);
}

static json_t *admin_sub(const char *sub, const char *verb, json_t *body, long *st)
{
    char path[256];
    snprintf(path, sizeof path, "/admin/subscriptions/%s/%s", sub, verb);
    return it_admin("POST", path, body ? body : json_object(), st);
}

static void publisher_changes(struct daemon *d)
{
    char sub[64];
    long st;
    land("lc-count", 5, sub, sizeof sub);
    it_settle(d->store, 10000);
    knobs(json_pack("{s:i, s:b}", "subUpdateDelayMs", 4000, "partnerWebhooks", 0));
    json_t *r = admin_sub(sub, "change-quantity", json_pack("{s:i}", "quantity", 7), &st);
    json_t *local = it_local(sub);
    CHECK(st == 200 && !strcmp(it_str(r, "result"), "succeeded") &&
              json_integer_value(json_object_get(local, "quantity")) == 7,
          "an operator's seat change that succeeded is applied locally although Microsoft does not show it yet");
    json_decref(r);
    json_decref(local);
    double drift_before = metrics_value("saasd_drift_total", "kind=\"quantity\"");
    json_decref(it_admin("POST", "/admin/reconcile", NULL, &st));
    local = it_local(sub);
    CHECK(json_integer_value(json_object_get(local, "quantity")) == 7 &&
              metrics_value("saasd_drift_total", "kind=\"quantity\"") == drift_before,
          "reconciliation treats an accepted change Microsoft does not show yet as not yet, not as drift");
    json_decref(local);
    usleep(4200 * 1000);
    json_decref(it_admin("POST", "/admin/reconcile", NULL, &st));
    local = it_local(sub);
    CHECK(json_integer_value(json_object_get(local, "quantity")) == 7 && !json_object_get(local, "pending_change"),
          "once Microsoft shows the change it is confirmed");
    json_decref(local);

    r = admin_sub(sub, "cancel", NULL, &st);
    long n = wait_count("lc-count", "unsubscribed", sub, 1, 10000);
    usleep(500 * 1000);
    local = it_local(sub);
    CHECK(st == 200 && !strcmp(it_str(r, "result"), "succeeded") && n == 1 &&
              counted("lc-count", "unsubscribed", sub) == 1 && !strcmp(it_str(local, "status"), "Unsubscribed"),
          "after an operator's cancel with no webhook following, the record is Unsubscribed and unsubscribe runs once");
    json_decref(r);
    json_decref(local);

    knobs(json_pack("{s:i, s:b}", "subUpdateDelayMs", 0, "partnerWebhooks", 1));
    land("lc-count", 5, sub, sizeof sub);
    r = admin_sub(sub, "cancel", NULL, &st);
    it_settle(d->store, 10000);
    usleep(300 * 1000);
    it_settle(d->store, 10000);
    CHECK(st == 200 && counted("lc-count", "unsubscribed", sub) == 1,
          "after an operator's cancel the webhook that follows does not run unsubscribe a second time");
    json_decref(r);
    local = it_local(sub);
    CHECK(!strcmp(it_str(local, "status"), "Unsubscribed") && !json_object_get(local, "quantity"),
          "after Unsubscribe the local record keeps Microsoft's view: no seats");
    json_decref(local);
}

static void request_source_spellings(struct daemon *d)
{
    const char *spelling[] = {"operationRequestSource", "operationRequestedSource"};
    for (int i = 0; i < 2; i++) {
        char sub[64];
        long st;
        knobs(json_pack("{s:s}", "requestSourceField", spelling[i]));
        land("lc-count", 2, sub, sizeof sub);
        json_t *r = admin_sub(sub, "change-quantity", json_pack("{s:i}", "quantity", 3), &st);
        const char *op = it_str(json_object_get(r, "operation"), "id");
        int n = 0;
        long long until = it_now_ms() + 10000;
        json_t *trail = NULL;
        while (*op && !n && it_now_ms() < until) {
            json_decref(trail);
            trail = it_history(sub);
            size_t k;
            json_t *e;
            json_array_foreach(trail, k, e) n += !strcmp(it_str(e, "op_id"), op) && !strcmp(it_str(e, "source"), "Partner");
            if (!n)
                usleep(50 * 1000);
        }
        char name[160];
        snprintf(name, sizeof name, "the request source is read under the spelling %s (audit says Partner)", spelling[i]);
        CHECK(n >= 1, name);
        if (!n) {
            char *t = json_dumps(trail, JSON_COMPACT);
            printf("# op %s status %ld trail %s\n", op, st, t);
            free(t);
        }
        json_decref(trail);
        json_decref(r);
    }
    knobs(json_pack("{s:s}", "requestSourceField", "operationRequestSource"));
    it_settle(d->store, 10000);
}

static void local_only(struct daemon *d)
{
    const char *ghost = "0badc0de-0000-4000-8000-000000000001";
    const char *rec = "{\"id\":\"0badc0de-0000-4000-8000-000000000001\",\"offerId\":\"lc-count\",\"status\":\"Subscribed\","
                      "\"planId\":\"team\",\"quantity\":3}";
    struct store_batch *b = NULL;
    store_batch_new(&b);
    store_batch_put(b, STORE_SUBSCRIPTIONS, ghost, strlen(ghost), rec, strlen(rec));
    store_commit(d->store, b);
    store_batch_free(b);
    double before = metrics_value("saasd_drift_total", "kind=\"missing_at_microsoft\"");
    long st;
    json_t *r = it_admin("POST", "/admin/reconcile", NULL, &st);
    int listed = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "missing_at_microsoft"), i, v) listed += !strcmp(json_string_value(v), ghost);
    json_t *local = it_local(ghost);
    CHECK(st == 200 && listed == 1 && metrics_value("saasd_drift_total", "kind=\"missing_at_microsoft\"") == before + 1 &&
              json_is_true(json_object_get(local, "missing_at_microsoft")),
          "a local subscription Microsoft does not list is counted as drift (missing_at_microsoft) and shown in the admin API");
    json_decref(local);
    json_decref(r);
}

static json_t *deadline_of(json_t *list, const char *sub)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) if (!strcmp(it_str(e, "subscriptionId"), sub)) return e;
    return NULL;
}

static void activation_deadline(void)
{
    char never[64], late[64], pend[64];
    long st;
    size_t i;
    json_t *e;
    knobs(json_pack("{s:I}", "clockOffsetS", (json_int_t)-26 * 86400));
    free(it_purchase("lc-count", 2, never, sizeof never));
    knobs(json_pack("{s:I}", "clockOffsetS", (json_int_t)(-29 * 86400 - 43200)));
    free(it_purchase("lc-count", 2, late, sizeof late));
    knobs(json_pack("{s:I}", "clockOffsetS", (json_int_t)0));
    land("lc-pending", 2, pend, sizeof pend);
    json_decref(it_admin("POST", "/admin/reconcile", NULL, &st));
    json_t *r = it_admin("GET", "/admin/activation-deadlines", NULL, &st);
    json_t *list = json_object_get(r, "pending_activation");
    json_t *a = deadline_of(list, never), *b = deadline_of(list, late), *c = deadline_of(list, pend);
    double da = json_number_value(json_object_get(a, "days_left"));
    double db = json_number_value(json_object_get(b, "days_left"));
    double dc = json_number_value(json_object_get(c, "days_left"));
    CHECK(st == 200 && a && da > 3.9 && da < 4.1 && !strcmp(it_str(a, "decision"), "no landing visit") &&
              !strcmp(it_str(a, "warned"), "week"),
          "a purchase never landed (seen by reconciliation) has its 30-day deadline tracked and warned a week before");
    CHECK(b && db > 0.4 && db < 0.6 && !strcmp(it_str(b, "warned"), "day"), "a deadline less than a day away is warned a day before");
    CHECK(c && dc > 29.9 && dc <= 30.0 && !strcmp(it_str(c, "decision"), "pending"),
          "a purchase a rule left pending has its activation deadline in the admin API");
    json_t *local = it_local(never);
    CHECK(!strcmp(it_str(local, "activation_warned"), "week"), "the week warning is remembered, so it is logged once");
    json_decref(local);
    CHECK(metrics_value("saasd_pending_activation", "deadline=\"within_week\"") >= 1 &&
              metrics_value("saasd_pending_activation", "deadline=\"within_day\"") >= 1 &&
              metrics_value("saasd_pending_activation", "deadline=\"later\"") >= 1,
          "/metrics counts pending activations by how close their deadline is");
    json_decref(r);
    json_decref(it_admin("POST", "/admin/reconcile", NULL, &st)); /* a second pass warns nobody again */
    r = it_admin("GET", "/admin/events?limit=1000", NULL, &st);
    int week = 0, day = 0, other = 0;
    json_array_foreach(json_object_get(r, "events"), i, e) {
        if (strcmp(it_str(e, "type"), "activation.deadline_near"))
            continue;
        const char *within = it_str(json_object_get(e, "data"), "within");
        week += !strcmp(it_str(e, "subscription"), never) && !strcmp(within, "week");
        day += !strcmp(it_str(e, "subscription"), late) && !strcmp(within, "day");
        other += !strcmp(it_str(e, "subscription"), pend) || strcmp(it_str(e, "offer"), "lc-count");
    }
    CHECK(week == 1 && day == 1 && other == 0,
          "each deadline warning is one activation.deadline_near event (week, day), not repeated by the next pass");
    json_decref(r);
}

int main(void)
{
    char path[512], rules[512];
    struct emu *emu = it_setup("lifecycle", dir, rules);
    if (!emu)
        return CHECK_DONE();
    it_write_rule(rules, "lc-term", term_rule);
    it_write_rule(rules, "lc-count", counting_rule);
    it_write_rule(rules, "lc-pending", pending_rule);
    snprintf(path, sizeof path, "%s/tiered-suite.lua", rules);
    FILE *shipped = fopen("rules/tiered-suite.lua", "r");
    char text[8192];
    size_t tn = shipped ? fread(text, 1, sizeof text - 1, shipped) : 0;
    text[tn] = 0;
    if (shipped)
        fclose(shipped);
    CHECK(tn > 0, "the shipped rules/tiered-suite.lua is read");
    it_write_file(path, text);
    struct daemon *d = it_start_in(dir, 0, "metering = { interval = 0 }\n");
    if (!d)
        return CHECK_DONE();
    it_offer("lc-term");
    it_offer("lc-count");
    it_offer("lc-pending");

    fresh_view_for_rules();
    shipped_tiered_rule();
    activate_read_back();
    reinstate();
    subscribe();
    change_read_back();
    publisher_changes(d);
    request_source_spellings(d);
    local_only(d);
    activation_deadline();

    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
