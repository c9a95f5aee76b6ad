/* Metered usage that cannot be sent in its own hour is billed late, not lost (§7.4): a bucket
 * Microsoft keeps failing, and a bucket Microsoft answers Expired, move their quantity into the
 * current hour's event. What saasd sent is reconciled with Microsoft's usage query (§7.5).
 * In-process daemon against the in-process emulator; the metering pass runs only when the
 * test flushes. */
#include "it_support.h"

#include "core/crypto.h"
#include "core/metrics.h"
#include "core/mp_client.h"

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

/* Whether any bucket of sub has dimension dim. */
static int bucket_of(const char *sub, const char *dim)
{
    long st;
    json_t *list = it_admin("GET", "/admin/usage", NULL, &st), *u;
    size_t i;
    int found = 0;
    json_array_foreach(json_object_get(list, "usage"), i, u) found |=
        !strcmp(it_str(u, "sub_id"), sub) && !strcmp(it_str(u, "dimension"), dim);
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

static json_t *usage_reconcile(json_t *args, long *status)
{
    return it_admin("POST", "/admin/usage/reconcile", args, status);
}

/* The item of a reconciliation list (missing, mismatch, unknown) for dim, or NULL. Borrowed. */
static json_t *difference(json_t *recon, const char *list, const char *dim)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(recon, list), i, item) if (!strcmp(it_str(item, "dimension"), dim)) return item;
    return NULL;
}

static size_t differences(json_t *recon)
{
    return json_array_size(json_object_get(recon, "missing")) + json_array_size(json_object_get(recon, "mismatch")) +
           json_array_size(json_object_get(recon, "unknown"));
}

/* Whether item says sub's usage of the UTC day of hour_s: saasd and microsoft quantities. */
static int says(json_t *item, const char *sub, long long hour_s, double saasd, double microsoft)
{
    char day[16];
    time_t t = (time_t)hour_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    return item && !strcmp(it_str(item, "subscriptionId"), sub) && !strcmp(it_str(item, "day"), day) &&
           fabs(num(item, "saasd") - saasd) < 1e-9 && fabs(num(item, "microsoft") - microsoft) < 1e-9;
}

/* Write a bucket straight into the store as if saasd had sent it (key as metering.c builds it:
 * sub NUL dimension NUL be64 hour start). */
static int put_sent_bucket(struct daemon *d, const char *sub, const char *dim, long long hour_s, double quantity)
{
    unsigned char key[256];
    size_t sl = strlen(sub) + 1, dl = strlen(dim) + 1;
    memcpy(key, sub, sl);
    memcpy(key + sl, dim, dl);
    for (int i = 0; i < 8; i++)
        key[sl + dl + i] = (unsigned char)((unsigned long long)hour_s >> (56 - 8 * i));
    json_t *b = json_pack("{s:s, s:s, s:I, s:f, s:s, s:i, s:s, s:I}", "sub_id", sub, "dimension", dim, "hour_s",
                          (json_int_t)hour_s, "quantity", quantity, "state", "sent", "attempts", 1, "usage_event_id",
                          "00000000-0000-4000-8000-000000000000", "sent_ms", (json_int_t)now_ms());
    char *text = json_dumps(b, JSON_COMPACT);
    struct store_batch *batch = NULL;
    int rc = store_batch_new(&batch);
    if (!rc)
        rc = store_batch_put(batch, STORE_USAGE, key, sl + dl + 8, text, strlen(text));
    if (!rc)
        rc = store_commit(d->store, batch);
    store_batch_free(batch);
    free(text);
    json_decref(b);
    return rc;
}

/* Usage sent to Microsoft past saasd's buckets, as another system would. */
static int send_directly(struct daemon *d, const char *sub, const char *dim, long long hour_s, double quantity)
{
    char start[32];
    time_t t = (time_t)hour_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(start, sizeof start, "%Y-%m-%dT%H:05:00Z", &tm);
    json_t *ev = json_pack("{s:s, s:f, s:s, s:s, s:s}", "resourceId", sub, "quantity", quantity, "dimension", dim,
                           "effectiveStartTime", start, "planId", "flat");
    struct mp_result mr = {0};
    int rc = mp_usage_event(d->mp, ev, &mr);
    mp_result_clear(&mr);
    json_decref(ev);
    return rc;
}

/* Partner Center's verdict on Microsoft's row of sub's dim on the UTC day of hour_s (the
 * emulator's control API); the HTTP status. */
static long set_recon_status(const char *sub, const char *dim, long long hour_s, const char *status)
{
    char day[16];
    time_t t = (time_t)hour_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    long st = 0;
    json_decref(it_emu("POST", "/_emulator/usage/recon-status",
                       json_pack("{s:s, s:s, s:s, s:s}", "resourceId", sub, "dimension", dim, "usageDate", day,
                                 "reconStatus", status),
                       &st));
    return st;
}

/* What `saasd admin VERB_AND_ARGS` prints (malloc'd; "" when it failed). */
static char *cli_admin(const char *conf, const char *verb_and_args)
{
    char cmd[1400];
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/saasd admin --config %s %s 2>/dev/null", build, conf, verb_and_args);
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 16, len = 0, got;
    char *out = calloc(1, cap);
    while (p && out && len + 1 < cap && (got = fread(out + len, 1, cap - 1 - len, p)) > 0)
        len += got;
    if (p && pclose(p) != 0 && out)
        out[0] = 0;
    return out;
}

static double drift(const char *kind)
{
    char labels[64];
    snprintf(labels, sizeof labels, "kind=\"%s\"", kind);
    return metrics_value("saasd_drift_total", labels);
}

int main(void)
{
    char dir[256], conf[512], rules[512];
    struct emu *emu = it_setup("metering", dir, rules);
    if (!emu)
        return CHECK_DONE();
    /* The offer's usage rule: 100 emails are included; "forbidden" is refused. */
    char rule_path[600];
    snprintf(rule_path, sizeof rule_path, "%s/it-metered.lua", rules);
    it_write_file(rule_path, "local rule = {}\n"
                             "function rule.usage(sub, usage, ctx)\n"
                             "  if usage.dimension == 'forbidden' then\n"
                             "    ctx.store.put('touched:' .. sub.id, 'yes')\n"
                             "    return nil, 'forbidden is not sold'\n"
                             "  end\n"
                             "  if usage.dimension ~= 'emails' then return end\n"
                             "  local used = tonumber(ctx.store.get('emails:' .. sub.id) or '0')\n"
                             "  ctx.store.put('emails:' .. sub.id, used + usage.quantity)\n"
                             "  return { bill = math.max(0, used + usage.quantity - math.max(used, 100)) }\n"
                             "end\n"
                             "return rule\n");
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), "metering = { interval = 0 }\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();

    long st;
    json_decref(it_emu("POST", "/_emulator/offers",
                       json_pack("{s:s, s:[{s:s, s:s, s:[s, s, s]}]}", "offerId", "it-metered", "plans", "planId",
                                 "flat", "displayName", "Flat", "dimensions", "api-calls", "reports", "alerts"),
                       &st));
    char sub[64];
    json_t *buy = it_emu("POST", "/_emulator/purchases", json_pack("{s:s, s:s}", "offerId", "it-metered", "planId", "flat"),
                         &st);
    snprintf(sub, sizeof sub, "%s", it_str(buy, "subscriptionId"));
    st = it_land(it_str(buy, "landingUrl"), NULL);
    json_decref(buy);
    json_t *ms = it_ms_sub(sub);
    CHECK(!strcmp(it_str(ms, "saasSubscriptionStatus"), "Subscribed"), "the metered subscription is activated");
    json_decref(ms);

    /* ---- what saasd sent is compared with what Microsoft recorded ---- */
    /* Before the emulator's clock is advanced below. Hours are counted back from the current
     * one and away from the hours the next sections use (2 and 23 back, and the current one);
     * reconciling 2 days keeps yesterday's hours in the window past midnight. */
    long long recon_hour = (long long)time(NULL) / 3600 * 3600;
    long long reports_hour = recon_hour - 3 * 3600, exports_hour = recon_hour - 4 * 3600;
    long long alerts_hour = recon_hour - 3600;
    json_t *rr = it_admin("POST", "/admin/usage",
                          json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", sub, "dimension", "reports", "quantity",
                                    4.0, "time", (json_int_t)(reports_hour + 60) * 1000),
                          &st);
    json_decref(rr);
    rr = flush();
    CHECK(st == 200 && rr && json_integer_value(json_object_get(rr, "sent")) == 1, "a closed hour of usage is sent");
    json_decref(rr);
    rr = it_admin("GET", "/admin/events?limit=1000", NULL, &st);
    size_t ei;
    json_t *ev, *billed = NULL;
    json_array_foreach(json_object_get(rr, "events"), ei, ev) if (!strcmp(it_str(ev, "type"), "usage.billed") &&
                                                                 !strcmp(it_str(ev, "subscription"), sub)) billed = ev;
    json_t *bd = json_object_get(billed, "data");
    CHECK(billed && !strcmp(it_str(bd, "dimension"), "reports") && fabs(json_number_value(json_object_get(bd, "quantity")) - 4.0) < 1e-9 &&
              *it_str(billed, "offer"),
          "the hour Microsoft accepted is a usage.billed event with its dimension and quantity, written with the hour's state");
    json_decref(rr);
    rr = usage_reconcile(NULL, &st);
    CHECK(st == 200 && json_integer_value(json_object_get(rr, "checked")) >= 1 && differences(rr) == 0,
          "usage saasd sent and Microsoft recorded reconciles without differences");
    json_decref(rr);
    rr = usage_reconcile(json_pack("{s:i, s:i}", "days", 2, "lag_s", 3600), &st);
    CHECK(st == 200 && json_integer_value(json_object_get(rr, "checked")) == 0 &&
              json_integer_value(json_object_get(rr, "skipped")) == 1 && differences(rr) == 0,
          "usage sent less than lag_s ago is left out on both sides instead of reported");
    json_decref(rr);
    rr = usage_reconcile(json_pack("{s:i}", "days", 8), &st);
    CHECK(st == 400, "a usage reconciliation over more than 7 days is refused");
    json_decref(rr);

    /* ---- Microsoft's verdict on its rows (§7.5 reconStatus) ---- */
    double not_accepted0 = drift("usage_not_accepted");
    long vst = set_recon_status(sub, "reports", reports_hour, "Accepted");
    rr = usage_reconcile(NULL, &st);
    CHECK(vst == 200 && st == 200 && json_integer_value(json_object_get(rr, "checked")) >= 1 && differences(rr) == 0 &&
              json_is_array(json_object_get(rr, "not_accepted")) &&
              json_array_size(json_object_get(rr, "not_accepted")) == 0 && drift("usage_not_accepted") == not_accepted0,
          "a row Microsoft Accepted with the quantity saasd sent is not reported");
    json_decref(rr);
    vst = set_recon_status(sub, "reports", reports_hour, "Rejected");
    rr = usage_reconcile(NULL, &st);
    json_t *rejected = difference(rr, "not_accepted", "reports");
    CHECK(vst == 200 && st == 200 && rejected && !strcmp(it_str(rejected, "reconStatus"), "Rejected") &&
              says(rejected, sub, reports_hour, 0, 4.0) && !strcmp(it_str(rejected, "planId"), "flat") &&
              *it_str(rejected, "meaning") && differences(rr) == 0 && drift("usage_not_accepted") == not_accepted0 + 1,
          "a row Microsoft Rejected is reported with its status although the quantities match, and counted as drift");
    json_decref(rr);
    char *printed = cli_admin(conf, "usage-reconcile 2");
    json_t *cli = printed ? json_loads(printed, 0, NULL) : NULL;
    json_t *cli_rejected = difference(cli, "not_accepted", "reports");
    CHECK(cli_rejected && !strcmp(it_str(cli_rejected, "reconStatus"), "Rejected") &&
              json_is_array(json_object_get(cli, "mismatch")),
          "saasd admin usage-reconcile shows the Rejected row beside the quantity findings");
    char verb[64];
    snprintf(verb, sizeof verb, "usage-recon-run %lld", (long long)json_integer_value(json_object_get(cli, "run")));
    free(printed);
    printed = cli_admin(conf, verb);
    json_t *run = printed ? json_loads(printed, 0, NULL) : NULL;
    json_t *finding = json_array_get(json_object_get(run, "findings"), 0);
    CHECK(json_integer_value(json_object_get(cli, "run")) > 0 && !strcmp(it_str(run, "trigger"), "admin") &&
              !strcmp(it_str(finding, "kind"), "usage_not_accepted") &&
              !strcmp(it_str(finding, "reconStatus"), "Rejected"),
          "saasd admin usage-recon-run ID shows the stored run of that reconciliation with its findings");
    free(printed);
    printed = cli_admin(conf, "usage-recon-runs");
    json_t *runs = printed ? json_loads(printed, 0, NULL) : NULL;
    json_t *newest = json_array_get(json_object_get(runs, "runs"), 0);
    CHECK(json_equal(json_object_get(newest, "id"), json_object_get(cli, "run")) &&
              !json_object_get(newest, "findings"),
          "saasd admin usage-recon-runs lists the stored runs newest first, without their findings");
    json_decref(runs);
    json_decref(run);
    json_decref(cli);
    free(printed);
    set_recon_status(sub, "reports", reports_hour, "Accepted"); /* the sections below count quantities only */

    double missing0 = drift("usage_missing"), mismatch0 = drift("usage_mismatch"), unknown0 = drift("usage_unknown");
    CHECK(put_sent_bucket(d, sub, "exports", exports_hour, 2.5) == 0 &&
              put_sent_bucket(d, sub, "reports", reports_hour, 5.0) == 0 &&
              send_directly(d, sub, "alerts", alerts_hour, 7.0) == 0,
          "saasd's record and Microsoft's are made to differ");
    rr = usage_reconcile(json_pack("{s:i}", "days", 2), &st);
    CHECK(st == 200 && says(difference(rr, "missing", "exports"), sub, exports_hour, 2.5, 0) &&
              drift("usage_missing") == missing0 + 1,
          "usage saasd marked sent but Microsoft has no row of is reported missing and counted as drift");
    CHECK(st == 200 && says(difference(rr, "mismatch", "reports"), sub, reports_hour, 5.0, 4.0) &&
              drift("usage_mismatch") == mismatch0 + 1,
          "a day whose quantities differ from Microsoft's is reported as a mismatch and counted as drift");
    CHECK(st == 200 && says(difference(rr, "unknown", "alerts"), sub, alerts_hour, 0, 7.0) &&
              drift("usage_unknown") == unknown0 + 1 && differences(rr) == 3,
          "usage Microsoft recorded that saasd never sent is reported unknown and counted as drift");
    json_decref(rr);

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

    /* ---- the offer's usage rule decides what is billed ---- */
    long long hour_now = (long long)time(NULL) / 3600 * 3600;
    double billed1 = -1, billed2 = -1;
    json_t *r1 = it_admin("POST", "/admin/usage",
                          json_pack("{s:s, s:s, s:f}", "subscriptionId", sub, "dimension", "emails", "quantity", 60.0), &st);
    long st1 = st;
    json_t *r2 = it_admin("POST", "/admin/usage",
                          json_pack("{s:s, s:s, s:f}", "subscriptionId", sub, "dimension", "emails", "quantity", 60.0), &st);
    billed1 = num(r1, "billed");
    billed2 = num(r2, "billed");
    json_t *emails = NULL, *u;
    json_t *list = it_admin("GET", "/admin/usage", NULL, &st);
    size_t ui;
    json_array_foreach(json_object_get(list, "usage"), ui, u) if (!strcmp(it_str(u, "dimension"), "emails") &&
                                                                  json_integer_value(json_object_get(u, "hour_s")) >=
                                                                      hour_now) emails = u;
    CHECK(st1 == 200 && st == 200 && fabs(billed1) < 1e-9 && fabs(billed2 - 20) < 1e-9 && emails &&
              fabs(num(emails, "quantity") - 20) < 1e-9 && fabs(num(emails, "reported") - 60) < 1e-9,
          "a usage rule bills only what is above the included quantity (the first 100 emails are free)");
    char hex[CRYPTO_SHA256_HEX_LEN];
    it_file_sha256(rule_path, hex);
    CHECK(emails && !strcmp(it_str(emails, "rule_sha256"), hex),
          "the usage bucket records the SHA-256 of the rule file that decided");
    json_decref(list);
    json_decref(r1);
    json_decref(r2);
    r1 = it_admin("POST", "/admin/usage",
                  json_pack("{s:s, s:s, s:f}", "subscriptionId", sub, "dimension", "forbidden", "quantity", 1.0), &st);
    char path[256];
    snprintf(path, sizeof path, "/admin/offers/it-metered/store/touched:%s", sub);
    long kst;
    json_decref(it_admin("GET", path, NULL, &kst));
    CHECK(st == 422 && strstr(it_str(r1, "message"), "forbidden is not sold") && !bucket_of(sub, "forbidden") && kst == 404,
          "a usage report the rule refuses is answered 422 with its message and records nothing, not even its store writes");
    json_decref(r1);
    r1 = it_admin("POST", "/admin/usage",
                  json_pack("{s:s, s:s, s:f}", "subscriptionId", "0d5c0b3f-1111-4222-8333-444455556666", "dimension",
                            "emails", "quantity", 1.0),
                  &st);
    CHECK(st == 404 && strstr(it_str(r1, "message"), "not known"),
          "usage for a subscription saasd has not seen is answered 404");
    json_decref(r1);

    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
