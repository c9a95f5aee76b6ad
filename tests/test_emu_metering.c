/* Emulator, Metering API (§7): single and batch usage events under the §7.4 rules, and the
 * usage query, over HTTP. */
#include "emu_harness.h"

static void hour_iso(long offset_s, char out[40])
{
    time_t t = time(NULL);
    t = t - t % 3600 + offset_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static struct reply usage(const char *sid, const char *dim, double q, const char *when, const char *plan)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"resourceId\":\"%s\",\"quantity\":%g,\"dimension\":\"%s\",\"effectiveStartTime\":\"%s\",\"planId\":\"%s\"}",
             sid, q, dim, when, plan);
    return mp("POST", "/api/usageEvent", body);
}

static long usage_status(const char *sid, const char *dim, double q, const char *when, const char *plan,
                         const char *detail)
{
    struct reply r = usage(sid, dim, q, when, plan);
    long s = r.status;
    if (detail && (!jps(r.json, "details.0.code") || strcmp(jps(r.json, "details.0.code"), detail)))
        s = -s;
    reply_free(&r);
    return s;
}

static void single(void)
{
    char sid[64], h0[40], h1[40], old[40], future[40];
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    hour_iso(0, h0);
    hour_iso(-3600, h1);
    hour_iso(-3600 * 26, old);
    hour_iso(3600 * 3, future);

    struct reply r = usage(sid, "api-calls", 12.5, h0, "basic");
    CHECK(r.status == 200 && !strcmp(jstr(r.json, "status"), "Accepted") && jstr(r.json, "usageEventId") &&
              jstr(r.json, "messageTime") && json_real_value(json_object_get(r.json, "quantity")) == 12.5 &&
              !strcmp(jstr(r.json, "effectiveStartTime"), h0),
          "§7.3 an accepted event answers 200 with usageEventId, status Accepted, messageTime and the echoed fields");
    char first_id[64];
    snprintf(first_id, sizeof first_id, "%s", jstr(r.json, "usageEventId") ? jstr(r.json, "usageEventId") : "");
    reply_free(&r);
    r = usage(sid, "api-calls", 99, h0, "basic");
    CHECK(r.status == 409 && jstatus_is(r.json, "Conflict") &&
              !strcmp(jps(r.json, "additionalInfo.acceptedMessage.status"), "Duplicate") &&
              !strcmp(jps(r.json, "additionalInfo.acceptedMessage.usageEventId"), first_id) &&
              json_number_value(jpath(r.json, "additionalInfo.acceptedMessage.quantity")) == 12.5,
          "§7.4 a second event in the same hour is 409 Duplicate carrying the earlier accepted message");
    reply_free(&r);
    CHECK(usage_status(sid, "storage-gb", 3, h0, "basic", NULL) == 200,
          "§7.4 another dimension in the same hour is accepted (one per resource and dimension)");
    CHECK(usage_status(sid, "api-calls", 3, h1, "basic", NULL) == 200, "§7.4 the previous hour is its own bucket");
    CHECK(usage_status(sid, "api-calls", 3, old, "basic", "Expired") == 400, "§7.4 an event older than 24 h is 400 Expired");
    CHECK(usage_status(sid, "api-calls", 3, future, "basic", "BadArgument") == 400, "§7.4 a future event is 400 BadArgument");
    CHECK(usage_status(sid, "api-calls", 0, h1, "basic", "InvalidQuantity") == 400, "§7.3 quantity 0 is 400 InvalidQuantity");
    CHECK(usage_status(sid, "cpu-hours", 1, h1, "basic", "InvalidDimension") == 400,
          "§7.4 a dimension not defined on the plan is 400 InvalidDimension");
    CHECK(usage_status(sid, "api-calls", 1, h1, "gold", "BadArgument") == 400,
          "§7.4 a planId other than the current plan is 400");
    CHECK(usage_status("00000000-0000-4000-8000-000000000000", "api-calls", 1, h1, "basic", "ResourceNotFound") == 400,
          "§7.3 an unknown resource is 400 ResourceNotFound");
    r = mp("POST", "/api/usageEvent", "{\"quantity\":1,\"dimension\":\"api-calls\",\"planId\":\"basic\"}");
    CHECK(r.status == 400 && jstatus_is(r.json, "BadArgument") && !strcmp(jps(r.json, "details.0.target"), "ResourceId"),
          "§7.3 a missing resourceId is 400 BadArgument with target ResourceId");
    reply_free(&r);

    char pending[64];
    snprintf(pending, sizeof pending, "%s", buy("{\"planId\":\"basic\"}", NULL, 0));
    CHECK(usage_status(pending, "api-calls", 1, h0, "basic", "ResourceNotActive") == 400,
          "§7.4 usage of a never-activated subscription is 400 ResourceNotActive");
    char susp[64];
    subscribed("{\"planId\":\"basic\"}", "basic", susp);
    char path[256];
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s/suspend", susp);
    struct reply c = ctl("POST", path, NULL);
    reply_free(&c);
    CHECK(usage_status(susp, "api-calls", 1, h0, "basic", "ResourceNotActive") == 400,
          "§7.4 usage of a Suspended subscription is 400 ResourceNotActive");

    char gone[64];
    subscribed("{\"planId\":\"basic\"}", "basic", gone);
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s/unsubscribe", gone);
    usleep(20000);
    c = ctl("POST", path, NULL);
    reply_free(&c);
    CHECK(usage_status(gone, "api-calls", 1, h0, "basic", NULL) == 200,
          "§7.4 usage from before a cancellation is still accepted afterwards");
    char after[40];
    time_t t = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(after, sizeof after, "%Y-%m-%dT%H:%M:%SZ", &tm);
    CHECK(usage_status(gone, "storage-gb", 1, after, "basic", "ResourceNotActive") == 400,
          "§7.4 usage from after the cancellation is refused");

    char auth_less[512];
    snprintf(auth_less, sizeof auth_less, "%s/api/usageEvent?api-version=2018-08-31", BASE);
    r = call("POST", auth_less, "{}", "Content-Type", "application/json", NULL);
    CHECK(r.status == 403 && jstatus_is(r.json, "Forbidden") && strstr(jstr(r.json, "message"), "not authorized"),
          "§7.3 metering without a valid bearer is 403 'Client is not authorized for this usage resource.'");
    reply_free(&r);
    snprintf(auth_less, sizeof auth_less, "%s/api/usageEvent", BASE);
    r = call("POST", auth_less, "{}", NULL);
    CHECK(r.status == 400, "§1.1 metering without api-version is 400");
    reply_free(&r);
}

static void batch_and_query(void)
{
    char sid[64], h2[40], h3[40], old[40], body[4096];
    subscribed("{\"planId\":\"gold\"}", "gold", sid);
    hour_iso(-7200, h2);
    hour_iso(-10800, h3);
    hour_iso(-3600 * 30, old);
    snprintf(body, sizeof body,
             "{\"request\":["
             "{\"resourceId\":\"%s\",\"quantity\":5,\"dimension\":\"api-calls\",\"effectiveStartTime\":\"%s\",\"planId\":\"gold\"},"
             "{\"resourceId\":\"%s\",\"quantity\":6,\"dimension\":\"api-calls\",\"effectiveStartTime\":\"%s\",\"planId\":\"gold\"},"
             "{\"resourceId\":\"%s\",\"quantity\":7,\"dimension\":\"api-calls\",\"effectiveStartTime\":\"%s\",\"planId\":\"gold\"},"
             "{\"resourceId\":\"%s\",\"quantity\":1,\"dimension\":\"nope\",\"effectiveStartTime\":\"%s\",\"planId\":\"gold\"},"
             "{\"resourceId\":\"00000000-0000-4000-8000-000000000000\",\"quantity\":1,\"dimension\":\"api-calls\",\"effectiveStartTime\":\"%s\",\"planId\":\"gold\"},"
             "{\"resourceId\":\"%s\",\"quantity\":2,\"dimension\":\"storage-gb\",\"effectiveStartTime\":\"%s\",\"planId\":\"gold\"}]}",
             sid, h2, sid, h2, sid, old, sid, h2, h2, sid, h3);
    struct reply r = mp("POST", "/api/batchUsageEvent", body);
    const char *want[] = {"Accepted", "Duplicate", "Expired", "InvalidDimension", "ResourceNotFound", "Accepted"};
    int all = r.status == 200 && json_integer_value(json_object_get(r.json, "count")) == 6;
    for (int i = 0; all && i < 6; i++) {
        char p[32];
        snprintf(p, sizeof p, "result.%d.status", i);
        all = jps(r.json, p) && !strcmp(jps(r.json, p), want[i]);
    }
    CHECK(all, "§7.4 a batch answers 200 and judges each item on its own (Accepted, Duplicate, Expired, InvalidDimension, ResourceNotFound)");
    CHECK(!strcmp(jps(r.json, "result.2.messageTime"), "0001-01-01T00:00:00") && json_is_object(jpath(r.json, "result.2.error")) &&
              strcmp(jps(r.json, "result.0.messageTime"), "0001-01-01T00:00:00"),
          "§7.3 non-accepted items carry messageTime 0001-01-01T00:00:00 and an error");
    CHECK(jps(r.json, "result.1.usageEventId") && !strcmp(jps(r.json, "result.1.usageEventId"), jps(r.json, "result.0.usageEventId")) &&
              json_is_object(jpath(r.json, "result.1.error.additionalInfo.acceptedMessage")),
          "§7.3 a Duplicate item inside the batch points at the accepted event");
    reply_free(&r);

    char big[16384];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"request\":[");
    for (int i = 0; i < 26; i++)
        n += (size_t)snprintf(big + n, sizeof big - n,
                              "%s{\"resourceId\":\"%s\",\"quantity\":1,\"dimension\":\"api-calls\",\"effectiveStartTime\":\"%s\",\"planId\":\"gold\"}",
                              i ? "," : "", sid, h3);
    snprintf(big + n, sizeof big - n, "]}");
    r = mp("POST", "/api/batchUsageEvent", big);
    CHECK(r.status == 400 && jstatus_is(r.json, "BadArgument"), "§7.1 a batch of 26 events is 400");
    reply_free(&r);
    r = mp("POST", "/api/batchUsageEvent", "{\"request\":[]}");
    CHECK(r.status == 400, "§7.1 an empty batch is 400");
    reply_free(&r);
    r = mp("POST", "/api/batchUsageEvent", "not json");
    CHECK(r.status == 400, "§7.1 a malformed batch is 400");
    reply_free(&r);

    r = mp("GET", "/api/usageEvents", NULL);
    CHECK(r.status == 400, "§7.5 usageEvents without usageStartDate is 400");
    reply_free(&r);
    char day[16], q[512];
    snprintf(day, sizeof day, "%.10s", h3);
    snprintf(q, sizeof q, "/api/usageEvents?usageStartDate=%s&dimension=api-calls&offerId=emulator-offer", day);
    r = mp("GET", q, NULL);
    double total = 0;
    int mine = 0;
    size_t i;
    json_t *row;
    json_array_foreach(r.json, i, row) {
        if (!strcmp(jstr(row, "usageResourceId"), sid)) {
            mine++;
            total += json_number_value(json_object_get(row, "submittedQuantity"));
        }
        if (strcmp(jstr(row, "dimension"), "api-calls"))
            mine = -100;
    }
    CHECK(r.status == 200 && json_is_array(r.json) && mine >= 1 && total == 5,
          "§7.5 usageEvents reports accepted quantities per day, resource and dimension, filtered by dimension");
    CHECK(jps(r.json, "0.offerType") && !strcmp(jps(r.json, "0.offerType"), "SaaS") && jps(r.json, "0.reconStatus"),
          "§7.5 rows carry offerType and reconStatus");
    reply_free(&r);
    r = ctl("GET", "/_emulator/usage", NULL);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "usage")) >= 6,
          "control API lists every accepted usage event");
    reply_free(&r);
}

/* The reconStatus of sid's api-calls row of day in the query, filtered by reconStatus when
 * filter is given; "" when no such row is listed. */
static void row_status(const char *sid, const char *day, const char *filter, char out[32])
{
    char q[512];
    snprintf(q, sizeof q, "/api/usageEvents?usageStartDate=%s&dimension=api-calls%s%s", day,
             filter ? "&reconStatus=" : "", filter ? filter : "");
    struct reply r = mp("GET", q, NULL);
    size_t i;
    json_t *row;
    out[0] = 0;
    json_array_foreach(r.json, i, row) if (!strcmp(jstr(row, "usageResourceId"), sid))
        snprintf(out, 32, "%s", jstr(row, "reconStatus") ? jstr(row, "reconStatus") : "(none)");
    reply_free(&r);
}

/* sid's api-calls row of day in the query: its processedQuantity member (a new reference, NULL
 * when the row carries none or is not listed). */
static json_t *row_processed(const char *sid, const char *day)
{
    char q[512];
    snprintf(q, sizeof q, "/api/usageEvents?usageStartDate=%s&dimension=api-calls", day);
    struct reply r = mp("GET", q, NULL);
    size_t i;
    json_t *row, *found = NULL;
    json_array_foreach(r.json, i, row) if (!strcmp(jstr(row, "usageResourceId"), sid)) found =
        json_incref(json_object_get(row, "processedQuantity"));
    reply_free(&r);
    return found;
}

static long set_processed(const char *sid, const char *day, const char *processed)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"resourceId\":\"%s\",\"dimension\":\"api-calls\",\"usageDate\":\"%s\",\"reconStatus\":\"Mismatch\","
             "\"processedQuantity\":%s}",
             sid, day, processed);
    struct reply r = ctl("POST", "/_emulator/usage/recon-status", body);
    long st = r.status;
    reply_free(&r);
    return st;
}

/* §7.5 processedQuantity: the submitted sum unless the control API says Partner Center
 * processed another quantity, or that the row carries none. */
static void processed_quantity(const char *sid, const char *day)
{
    json_t *p = row_processed(sid, day);
    CHECK(json_is_number(p) && json_number_value(p) == 2, "§7.5 a row's processedQuantity is its submitted quantity");
    json_decref(p);
    long st = set_processed(sid, day, "1.5");
    p = row_processed(sid, day);
    CHECK(st == 200 && json_is_number(p) && json_number_value(p) == 1.5,
          "control API sets the quantity Partner Center processed for a row");
    json_decref(p);
    st = set_processed(sid, day, "null");
    p = row_processed(sid, day);
    CHECK(st == 200 && !p, "control API with processedQuantity null leaves the field out of the row");
    json_decref(p);
    CHECK(set_processed(sid, day, "-1") == 400 && set_processed(sid, day, "\"3\"") == 400,
          "control API refuses a processedQuantity that is not a number >= 0 or null");
}

/* The control API sets Partner Center's verdict on a row (reconStatus), e.g. Rejected, so a
 * client's usage reconciliation can be tested against it. */
static void recon_status(void)
{
    char sid[64], h1[40], day[16], st[32], body[512];
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    hour_iso(-3600, h1);
    snprintf(day, sizeof day, "%.10s", h1);
    CHECK(usage_status(sid, "api-calls", 2, h1, "basic", NULL) == 200, "usage of the last hour is accepted");
    row_status(sid, day, NULL, st);
    CHECK(!strcmp(st, "Submitted"), "§7.5 a row starts Submitted (not yet processed by Partner Center analytics)");
    snprintf(body, sizeof body,
             "{\"resourceId\":\"%s\",\"dimension\":\"api-calls\",\"usageDate\":\"%s\",\"reconStatus\":\"Rejected\"}",
             sid, day);
    struct reply r = ctl("POST", "/_emulator/usage/recon-status", body);
    CHECK(r.status == 200 && jstr(r.json, "reconStatus") && !strcmp(jstr(r.json, "reconStatus"), "Rejected"),
          "control API sets a row's reconStatus");
    reply_free(&r);
    row_status(sid, day, NULL, st);
    CHECK(!strcmp(st, "Rejected"), "§7.5 the row then carries reconStatus Rejected");
    row_status(sid, day, "Rejected", st);
    char st2[32];
    row_status(sid, day, "Submitted", st2);
    CHECK(!strcmp(st, "Rejected") && !st2[0], "§7.5 the reconStatus filter lists the row under its status only");
    snprintf(body, sizeof body,
             "{\"resourceId\":\"%s\",\"dimension\":\"api-calls\",\"usageDate\":\"%s\",\"reconStatus\":\"Lost\"}",
             sid, day);
    r = ctl("POST", "/_emulator/usage/recon-status", body);
    long bad_status = r.status;
    reply_free(&r);
    snprintf(body, sizeof body,
             "{\"resourceId\":\"%s\",\"dimension\":\"storage-gb\",\"usageDate\":\"%s\",\"reconStatus\":\"Rejected\"}",
             sid, day);
    r = ctl("POST", "/_emulator/usage/recon-status", body);
    CHECK(bad_status == 400 && r.status == 404,
          "control API refuses a reconStatus the contract does not list (400) and a row with no usage (404)");
    reply_free(&r);
    processed_quantity(sid, day);
}

int main(void)
{
    emu_up(NULL);
    single();
    batch_and_query();
    recon_status();
    emu_down();
    http_client_free(H);
    return CHECK_DONE();
}
