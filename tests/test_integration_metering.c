/* Metered usage that cannot be sent in its own hour is billed late, not lost (§7.4): a bucket
 * Microsoft keeps failing, and a bucket Microsoft answers Expired, move their quantity into the
 * current hour's event. In-process daemon against the in-process emulator; the metering pass
 * runs only when the test flushes. */
#include "it_support.h"

#include <math.h>

static json_t *flush(void)
{
    long st;
    json_t *r = it_admin("POST", "/admin/usage/flush", json_pack("{s:b}", "ignore_grace", 1), &st);
    return st == 200 ? r : (json_decref(r), NULL);
}

static long usage(const char *sub, double quantity, long long when_ms)
{
    long st;
    json_t *r = it_admin("POST", "/admin/usage",
                         json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", sub, "dimension", "api-calls", "quantity",
                                   quantity, "time", (json_int_t)when_ms),
                         &st);
    if (st != 200)
        printf("# usage: HTTP %ld %s\n", st, r ? it_str(r, "message") : "");
    json_decref(r);
    return st;
}

/* The subscription's bucket for the hour starting at hour_s, or NULL (a new reference). */
static json_t *bucket(const char *sub, long long hour_s)
{
    long st;
    json_t *list = it_admin("GET", "/admin/usage", NULL, &st), *found = NULL, *u;
    size_t i;
    json_array_foreach(json_object_get(list, "usage"), i, u) if (!strcmp(it_str(u, "sub_id"), sub) &&
                                                                 json_integer_value(json_object_get(u, "hour_s")) ==
                                                                     hour_s) found = json_incref(u);
    json_decref(list);
    return found;
}

static double num(json_t *j, const char *key)
{
    return json_number_value(json_object_get(j, key));
}

static const char *state_of(json_t *b)
{
    return b ? it_str(b, "state") : "(none)";
}

int main(void)
{
    char *t = check_tmpdir("metering");
    char dir[256], conf[512], rules[512];
    snprintf(dir, sizeof dir, "%s", t);
    free(t);
    http_client_new(NULL, &it_http);
    struct emu *emu = it_start_emu();
    CHECK(emu != NULL, "the emulator starts in-process");
    if (!emu)
        return CHECK_DONE();
    snprintf(rules, sizeof rules, "%s/rules", dir);
    mkdir(rules, 0700);
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), "metering = { interval = 0 }\n");
    struct saasd_config *cfg = NULL;
    char err[1024];
    CHECK(config_load(conf, &cfg, err, sizeof err) == 0, "the config loads");
    struct daemon *d = NULL;
    CHECK(cfg && daemon_start(cfg, &d) == 0, "the daemon starts");
    if (!d)
        return CHECK_DONE();
    it_point_emulator(httpd_port(d->public_httpd));
    snprintf(it_admin_url, sizeof it_admin_url, "http://127.0.0.1:%u", httpd_port(d->admin_httpd));

    long st;
    json_decref(it_emu("POST", "/_emulator/offers",
                       json_pack("{s:s, s:[{s:s, s:s, s:[s]}]}", "offerId", "it-metered", "plans", "planId", "flat",
                                 "displayName", "Flat", "dimensions", "api-calls"),
                       &st));
    char sub[64];
    json_t *buy = it_emu("POST", "/_emulator/purchases", json_pack("{s:s, s:s}", "offerId", "it-metered", "planId", "flat"),
                         &st);
    snprintf(sub, sizeof sub, "%s", it_str(buy, "subscriptionId"));
    json_decref(it_call("GET", it_str(buy, "landingUrl"), NULL, NULL, &st, NULL));
    json_decref(buy);
    json_t *ms = it_ms_sub(sub);
    CHECK(!strcmp(it_str(ms, "saasSubscriptionStatus"), "Subscribed"), "the metered subscription is activated");
    json_decref(ms);

    /* ---- Microsoft keeps failing: after 5 passes the hour is folded into the current one ---- */
    /* The checks name the current hour: keep the test clear of an hour boundary. */
    long long now_s = (long long)time(NULL);
    if (now_s % 3600 > 3600 - 90) {
        sleep((unsigned)(3600 - now_s % 3600 + 1));
        now_s = (long long)time(NULL);
    }
    long long current_hour = now_s / 3600 * 3600;
    long long old_hour = current_hour - 2 * 3600;
    CHECK(usage(sub, 4.0, (old_hour + 60) * 1000) == 200, "usage two hours ago is recorded");
    json_decref(it_emu("POST", "/_emulator/faults",
                       json_pack("{s:s, s:s, s:s, s:i}", "path", "/api/batchUsageEvent", "method", "POST", "kind", "500",
                                 "count", 1000),
                       &st));
    int retried = 0, folded = 0;
    for (int pass = 0; pass < 5; pass++) {
        json_t *r = flush();
        retried += (int)json_integer_value(json_object_get(r, "retry"));
        folded += (int)json_integer_value(json_object_get(r, "folded"));
        json_decref(r);
    }
    json_decref(it_emu("DELETE", "/_emulator/faults", NULL, &st));
    json_t *old = bucket(sub, old_hour), *cur = bucket(sub, current_hour);
    CHECK(retried == 4 && folded == 1 && !strcmp(state_of(old), "folded") &&
              json_integer_value(json_object_get(old, "folded_into_hour_s")) == current_hour,
          "an hour Microsoft keeps failing is retried 4 times, then folded into the current hour");
    CHECK(cur && !strcmp(state_of(cur), "open") && fabs(num(cur, "quantity") - 4.0) < 1e-9 &&
              fabs(num(cur, "folded_in") - 4.0) < 1e-9,
          "the folded quantity waits in the current hour's bucket, which is not sent before it closes");
    json_decref(old);
    json_decref(cur);
    CHECK(usage(sub, 1.5, (long long)time(NULL) * 1000) == 200, "usage of the current hour is still recorded after a fold");
    cur = bucket(sub, current_hour);
    CHECK(cur && fabs(num(cur, "quantity") - 5.5) < 1e-9, "new usage adds up with the folded quantity");
    json_decref(cur);
    json_t *r = flush();
    CHECK(r && json_integer_value(json_object_get(r, "sent")) == 0 && json_integer_value(json_object_get(r, "folded")) == 0,
          "a folded hour is not sent again on the next pass");
    json_decref(r);

    /* ---- Microsoft says Expired: the usage moves to the current hour too ---- */
    long long late_hour = current_hour - 23 * 3600;
    CHECK(usage(sub, 2.0, (late_hour + 60) * 1000) == 200, "usage from 23 hours ago is recorded");
    json_decref(it_emu("POST", "/_emulator/clock/advance", json_pack("{s:i}", "seconds", 2 * 3600), &st));
    r = flush();
    json_t *late = bucket(sub, late_hour);
    cur = bucket(sub, current_hour);
    CHECK(r && json_integer_value(json_object_get(r, "folded")) == 1 && !strcmp(state_of(late), "folded") &&
              !strcmp(it_str(late, "result"), "Expired") && cur && fabs(num(cur, "quantity") - 7.5) < 1e-9,
          "an hour Microsoft answers Expired is folded into the current hour instead of being lost");
    json_decref(r);
    json_decref(late);
    json_decref(cur);

    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
