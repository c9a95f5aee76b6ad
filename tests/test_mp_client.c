/* Marketplace client against a fake marketplace + Entra on 127.0.0.1: every endpoint, ids on
 * every call, 401 → one refresh, 429 Retry-After, 5xx and timeouts retried, 4xx not,
 * pagination over 3 pages, Operation-Location polling, lenient JSON, unsafe PATCH handling. */
#include "check.h"
#include "cmd/cmd.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/metrics.h"
#include "core/mp_client.h"
#include "core/token_cache.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define SUB "5ee0dd57-0d6f-4a2c-8d59-0c1b7a3d9e11"
#define OP "9a1b2c3d-0000-4000-8000-00000000abcd"
#define FOREIGN "https://marketplaceapi.microsoft.com"

/* Scripted faults for the next marketplace requests: 0 normal, 429/503/500 that status,
 * -1 hang longer than the client's timeout. */
static struct {
    pthread_mutex_t mu;
    int script[16];
    int nscript;
    int tokens_issued;
    char reject_token[64];   /* answer 401 to this bearer token */
    int reject_all;          /* answer 401 to every token */
    const char *retry_after; /* Retry-After of scripted 429s */
    int mp_requests;
    int patches;
    int op_polls;            /* GET operation calls */
    int op_pending_polls;    /* answer InProgress this many times */
    int patch_mode;          /* 0 normal, 1 fail-but-apply, 2 fail-without-apply */
    int op_outstanding;      /* list operations shows our ChangePlan op */
    int sub_multiline;       /* GET subscription answers over two lines */
    char plan[32];
    char req_ids[32][40];
    char corr_ids[32][40];
    int nids;
    char last_content_type[64];
    char last_mkt_token[128];
    char last_body[512];
    char last_query[512];
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER, .plan = "silver", .retry_after = "2"};

static void script(int a, int b, int c)
{
    pthread_mutex_lock(&fk.mu);
    int v[3] = {a, b, c};
    fk.nscript = 0;
    for (int i = 0; i < 3; i++)
        if (v[i])
            fk.script[fk.nscript++] = v[i];
    pthread_mutex_unlock(&fk.mu);
}

static int next_fault(void)
{
    int f = 0;
    if (fk.nscript > 0) {
        f = fk.script[0];
        memmove(fk.script, fk.script + 1, (size_t)(--fk.nscript) * sizeof fk.script[0]);
    }
    return f;
}

static void subscription_json(char *out, size_t size)
{
    /* odd casing, padded enum, quantity as a string, unknown member: §1.4 leniency */
    snprintf(out, size, "{\"id\":\"" SUB "\",\"name\":\"Contoso\",\"offerId\":\"offer1\",\"PlanId\":\"%s\","
             "\"quantity\":\"20\",\"SaasSubscriptionStatus\":\" Subscribed \",\"term\":{\"termUnit\":\"P1M\"},"
             "\"brandNewField\":{\"x\":1}}", fk.plan);
}

static void reply(struct httpd_response *res, int status, const char *body)
{
    httpd_set_body(res, status, NULL, body);
}

static void handler(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    const char *path = httpd_path(req), *method = httpd_method(req);
    char buf[4096];
    if (strstr(path, "/oauth2/")) {
        pthread_mutex_lock(&fk.mu);
        int n = ++fk.tokens_issued;
        pthread_mutex_unlock(&fk.mu);
        snprintf(buf, sizeof buf, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"tok-%d\"}", n);
        reply(res, 200, buf);
        return;
    }
    const char *auth = httpd_header(req, "Authorization");
    const char *rid = httpd_header(req, "x-ms-requestid"), *cid = httpd_header(req, "x-ms-correlationid");
    size_t blen = 0;
    const char *body = httpd_body(req, &blen);
    pthread_mutex_lock(&fk.mu);
    fk.mp_requests++;
    if (fk.nids < 32) {
        snprintf(fk.req_ids[fk.nids], 40, "%s", rid ? rid : "");
        snprintf(fk.corr_ids[fk.nids], 40, "%s", cid ? cid : "");
        fk.nids++;
    }
    const char *ct = httpd_header(req, "Content-Type"), *mt = httpd_header(req, "x-ms-marketplace-token");
    snprintf(fk.last_content_type, sizeof fk.last_content_type, "%s", ct ? ct : "");
    snprintf(fk.last_mkt_token, sizeof fk.last_mkt_token, "%s", mt ? mt : "");
    snprintf(fk.last_body, sizeof fk.last_body, "%.*s", (int)blen, body ? body : "");
    snprintf(fk.last_query, sizeof fk.last_query, "%s", httpd_raw_query(req));
    int reject = fk.reject_all || (fk.reject_token[0] && auth && !strcmp(auth + 7, fk.reject_token));
    int fault = next_fault();
    pthread_mutex_unlock(&fk.mu);

    httpd_add_header(res, "x-ms-requestid", rid ? rid : "server-made");
    httpd_add_header(res, "x-ms-correlationid", cid ? cid : "server-made");
    if (!auth || strncmp(auth, "Bearer tok-", 11) || reject) {
        reply(res, 401, "");
        return;
    }
    if (!httpd_query(req, "api-version")) {
        reply(res, 400, "{\"Error\":{\"Code\":\"ApiVersionUnspecified\",\"Message\":\"api-version missing\"}}");
        return;
    }
    if (fault == -1) {
        usleep(700 * 1000);
    } else if (fault == 429) {
        httpd_add_header(res, "Retry-After", fk.retry_after);
        reply(res, 429, "");
        return;
    } else if (fault >= 500) {
        reply(res, fault, "{\"error\":{\"code\":\"UnexpectedError\",\"message\":\"try later\"}}");
        return;
    }

    if (!strcmp(path, "/api/usageEvents") && !strcmp(method, "GET")) {
        /* echo the decoded filters back as one row */
        json_t *row = json_pack("{s:s?, s:s?, s:s?, s:s?}", "usageDate", httpd_query(req, "usageStartDate"), "endDate",
                                httpd_query(req, "UsageEndDate"), "offerId", httpd_query(req, "offerId"), "dimension",
                                httpd_query(req, "dimension"));
        json_t *rows = json_pack("[o]", row);
        char *text = json_dumps(rows, JSON_COMPACT);
        json_decref(rows);
        reply(res, 200, text);
        free(text);
        return;
    }
    if (!strcmp(path, "/api/saas/subscriptions/resolve") && !strcmp(method, "POST")) {
        char sub[2048];
        subscription_json(sub, sizeof sub);
        snprintf(buf, sizeof buf, "{\"id\":\"" SUB "\",\"subscriptionName\":\"Contoso\",\"offerId\":\"offer1\","
                 "\"planId\":\"silver\",\"quantity\":20,\"subscription\":%s}", sub);
        reply(res, 200, buf);
    } else if (!strcmp(path, "/api/saas/subscriptions") || !strcmp(path, "/api/saas/subscriptions/")) {
        const char *ct_ = httpd_query(req, "continuationToken");
        int page = ct_ ? atoi(ct_ + 1) : 1; /* "p2", "p3" */
        snprintf(buf, sizeof buf, "{\"subscriptions\":[{\"id\":\"s%d-a\"},{\"id\":\"s%d-b\"}]%s%s%s}", page, page,
                 page < 3 ? ",\"@nextLink\":\"" FOREIGN "/api/saas/subscriptions?continuationToken=p" : "",
                 page == 1 ? "2" : page == 2 ? "3" : "", page < 3 ? "&api-version=2018-08-31\"" : "");
        reply(res, 200, buf);
    } else if (!strcmp(path, "/api/saas/subscriptions/" SUB "/activate")) {
        reply(res, strstr(fk.last_body, "\"planId\":\"silver\"") ? 200 : 400,
              strstr(fk.last_body, "\"planId\":\"silver\"") ? "" : "{\"code\":\"BadArgument\",\"message\":\"plan mismatch\"}");
    } else if (!strcmp(path, "/api/saas/subscriptions/" SUB "/listAvailablePlans")) {
        reply(res, 200, ""); /* docs: empty body */
    } else if (!strcmp(path, "/api/saas/subscriptions/" SUB "/operations")) {
        pthread_mutex_lock(&fk.mu);
        int outstanding = fk.op_outstanding;
        pthread_mutex_unlock(&fk.mu);
        reply(res, 200, outstanding ? "{\"operations\":[{\"id\":\"" OP "\",\"action\":\"ChangePlan\",\"planId\":\"gold\","
                                      "\"status\":\"InProgress\"}]}" : "");
    } else if (!strcmp(path, "/api/saas/subscriptions/" SUB "/operations/" OP)) {
        if (!strcmp(method, "PATCH")) {
            reply(res, 200, "");
            return;
        }
        pthread_mutex_lock(&fk.mu);
        int pending = fk.op_pending_polls-- > 0;
        fk.op_polls++;
        pthread_mutex_unlock(&fk.mu);
        snprintf(buf, sizeof buf, "{\"id\":\"" OP "\",\"action\":\"ChangePlan\",\"planId\":\"gold\",\"status\":\"%s\"}",
                 pending ? "InProgress" : " Succeeded ");
        reply(res, 200, buf);
    } else if (!strcmp(path, "/api/saas/subscriptions/" SUB)) {
        if (!strcmp(method, "GET")) {
            subscription_json(buf, sizeof buf);
            if (fk.sub_multiline)
                buf[strlen(buf) - 1] = '\n', strcat(buf, "}");
            reply(res, 200, buf);
            return;
        }
        pthread_mutex_lock(&fk.mu);
        fk.patches++;
        int mode = fk.patch_mode;
        fk.patch_mode = 0;
        if (mode == 1)
            fk.op_outstanding = 1;
        pthread_mutex_unlock(&fk.mu);
        if (mode) {
            reply(res, 500, "{\"error\":{\"code\":\"UnexpectedError\",\"message\":\"oops\"}}");
            return;
        }
        httpd_add_header(res, "Operation-Location", FOREIGN "/api/saas/subscriptions/" SUB "/operations/" OP "?api-version=2018-08-31");
        reply(res, 202, "");
    } else if (!strcmp(path, "/api/saas/subscriptions/00000000-0000-0000-0000-000000000000")) {
        reply(res, 404, "{\"error\":{\"code\":\"EntityNotFound\",\"message\":\"Subscription not found\"}}");
    } else if (!strcmp(path, "/api/saas/subscriptions/11111111-1111-1111-1111-111111111111")) {
        reply(res, 400, "{\"Error\":{\"Code\":\"UnsupportedApiVersion\",\"Message\":\"bad version\"}}");
    } else if (!strcmp(path, "/api/usageEvent")) {
        reply(res, 200, "{\"usageEventId\":\"e1\",\"status\":\"Accepted\",\"quantity\":5}");
    } else if (!strcmp(path, "/api/batchUsageEvent")) {
        reply(res, 200, "{\"count\":2,\"result\":[{\"status\":\"Accepted\"},{\"status\":\"Duplicate\"}]}");
    } else {
        reply(res, 404, "not found");
    }
}

static void reset_counts(void)
{
    pthread_mutex_lock(&fk.mu);
    fk.mp_requests = fk.nids = fk.patches = fk.op_polls = 0;
    pthread_mutex_unlock(&fk.mu);
}

static int guid_like(const char *s)
{
    return strlen(s) == 36 && s[8] == '-' && s[13] == '-';
}

/* Run `saasd mp ARGS` in-process with stdout captured into out; returns the exit status. */
static int run_cli(char *out, size_t size, int argc, char **argv)
{
    return check_run_captured(cmd_mp, argc, argv, out, size);
}

int main(void)
{
    struct httpd *d = NULL;
    struct httpd_options ho = {0};
    if (httpd_start(&ho, handler, NULL, &d))
        abort();
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%u", httpd_port(d));
    struct http_client *http = NULL;
    http_client_new(NULL, &http);
    struct token_cache_options to = {.authority_url = base, .tenant_id = TENANT, .client_id = "app", .client_secret = "s"};
    struct token_cache *tc = NULL;
    token_cache_new(&to, http, &tc);
    struct mp_client_options mo = {.base_url = base, .backoff_base_ms = 10, .backoff_cap_ms = 40, .timeout_ms = 300,
                                   .poll_interval_ms = 20, .poll_timeout_ms = 2000};
    struct mp_client *mp = NULL;
    CHECK(mp_client_new(&mo, http, tc, &mp) == 0, "a client is created from base url, http client and token cache");
    struct mp_result r = {0};
    int rc;

    /* resolve + ids */
    rc = mp_resolve(mp, "abc+def/ghi==", &r);
    CHECK(rc == 0 && r.status == 200 && !strcmp(fk.last_mkt_token, "abc+def/ghi=="),
          "resolve sends the landing token in x-ms-marketplace-token, unchanged");
    char sid[40];
    CHECK(rc == 0 && !jl_string(jl_get(r.body, "subscription"), "saasSubscriptionStatus", sid, sizeof sid) &&
              !strcmp(sid, "Subscribed"),
          "resolve's body is read leniently (SaasSubscriptionStatus, padded enum)");
    CHECK(guid_like(r.request_id) && guid_like(r.correlation_id) && !strcmp(fk.req_ids[0], r.request_id) &&
              !strcmp(fk.corr_ids[0], r.correlation_id) && !strcmp(r.ms_request_id, r.request_id) &&
              !strcmp(r.ms_correlation_id, r.correlation_id),
          "x-ms-requestid and x-ms-correlationid are sent as GUIDs and their echoes recorded");
    mp_result_clear(&r);

    /* get, lenient */
    rc = mp_get_subscription(mp, SUB, &r);
    long long q = 0;
    CHECK(rc == 0 && jl_int(r.body, "quantity", &q) == 0 && q == 20 && jl_string_is(r.body, "planId", "silver"),
          "get subscription: quantity as a string and PlanId in other casing are read");
    mp_result_clear(&r);
    rc = mp_get_subscription(mp, "00000000-0000-0000-0000-000000000000", &r);
    CHECK(rc == SAASD_ENOTFOUND && r.status == 404 && !strcmp(r.error_code, "EntityNotFound") &&
              !strcmp(r.message, "Subscription not found"),
          "a 404 is not-found with the error envelope's code and message");
    mp_result_clear(&r);
    CHECK(mp_get_subscription(mp, "../../etc", &r) == SAASD_EINVAL, "an id that could bend the URL path is refused");
    mp_result_clear(&r);

    /* the answer's text, for callers that pass the subscription on as Microsoft sent it */
    char sent[1024];
    subscription_json(sent, sizeof sent);
    CHECK(mp_get_subscription(mp, SUB, &r) == 0 && r.text == NULL, "an answer's text is kept only when asked for");
    mp_result_clear(&r);
    r.want_text = 1;
    CHECK(mp_get_subscription(mp, SUB, &r) == 0 && r.text && !strcmp(r.text, sent) && jl_string_is(r.body, "planId", "silver"),
          "asked for, a one-line answer's text is kept byte for byte beside its tree");
    mp_result_clear(&r);
    r.want_text = 1;
    fk.sub_multiline = 1;
    CHECK(mp_get_subscription(mp, SUB, &r) == 0 && r.text == NULL && r.body,
          "an answer over several lines is not kept as text (records are one line): the caller encodes the tree");
    fk.sub_multiline = 0;
    mp_result_clear(&r);
    r.want_text = 1;
    CHECK(mp_get_subscription(mp, "00000000-0000-0000-0000-000000000000", &r) == SAASD_ENOTFOUND && r.text == NULL,
          "an error answer's text is not kept");
    mp_result_clear(&r);

    /* activate */
    reset_counts();
    rc = mp_activate(mp, SUB, "silver", 20, &r);
    CHECK(rc == 0 && r.status == 200 && strstr(fk.last_body, "\"quantity\":20") &&
              !strcmp(fk.last_content_type, "application/json"),
          "activate posts planId and quantity as JSON and accepts the empty 200");
    mp_result_clear(&r);
    reset_counts();
    rc = mp_activate(mp, SUB, "gold", -1, &r);
    CHECK(rc == SAASD_EHTTP && r.status == 400 && fk.mp_requests == 1 && !strcmp(r.error_code, "BadArgument"),
          "a 400 is not retried and its flat error body is parsed");
    mp_result_clear(&r);

    /* list with pagination over 3 pages (links name the real host: re-rooted on ours) */
    reset_counts();
    rc = mp_list_subscriptions(mp, &r);
    json_t *subs = jl_get(r.body, "subscriptions");
    CHECK(rc == 0 && json_array_size(subs) == 6 && fk.mp_requests == 3, "list follows @nextLink over 3 pages and gathers all items");
    CHECK(!strcmp(fk.last_query, "continuationToken=p3&api-version=2018-08-31"),
          "a @nextLink is followed with its continuationToken and api-version, on the configured host");
    CHECK(!strcmp(fk.corr_ids[0], fk.corr_ids[2]) && strcmp(fk.req_ids[0], fk.req_ids[2]),
          "pages share one correlation id, each request has its own request id");
    mp_result_clear(&r);

    /* plans: empty body */
    rc = mp_list_plans(mp, SUB, "gold plan", &r);
    CHECK(rc == 0 && json_is_array(jl_get(r.body, "plans")) && !strcmp(fk.last_query, "api-version=2018-08-31&planId=gold%20plan"),
          "listAvailablePlans accepts an empty body and escapes the planId filter");
    mp_result_clear(&r);

    /* change plan → 202 → wait */
    reset_counts();
    rc = mp_change_plan(mp, SUB, "gold", &r);
    CHECK(rc == 0 && r.status == 202 && !strcmp(r.operation_id, OP) && strstr(r.operation_location, FOREIGN),
          "change plan answers 202 with the Operation-Location and its operation id");
    char loc[1024];
    snprintf(loc, sizeof loc, "%s", r.operation_location);
    mp_result_clear(&r);
    fk.op_pending_polls = 2;
    rc = mp_wait_operation(mp, loc, 0, &r);
    CHECK(rc == 0 && !strcmp(r.operation_status, "Succeeded") && fk.op_polls == 3,
          "the operation is polled (on our base URL) until it is final");
    mp_result_clear(&r);
    fk.op_pending_polls = 1000;
    long long t0 = mono_ms();
    rc = mp_wait_operation(mp, loc, 150, &r);
    CHECK(rc == SAASD_ETIMEOUT && !strcmp(r.operation_status, "InProgress") && mono_ms() - t0 < 1000,
          "polling an operation that never finishes stops at the bound");
    mp_result_clear(&r);
    fk.op_pending_polls = 0;
    reset_counts();
    rc = mp_wait_operation(mp, "/api/saas/subscriptions/" SUB "/operations/" OP "\x01x", 0, &r);
    int ctl_rc = rc, ctl_attempts = r.attempts;
    mp_result_clear(&r);
    rc = mp_wait_operation(mp, FOREIGN "/api/saas/subscriptions/" SUB "/operations/" OP "?a=b c", 0, &r);
    CHECK(ctl_rc == SAASD_EINVAL && ctl_attempts == 0 && rc == SAASD_EINVAL && r.attempts == 0 && fk.mp_requests == 0,
          "an Operation-Location holding a control character or a blank is refused before any request is tried");
    mp_result_clear(&r);

    rc = mp_change_quantity(mp, SUB, 25, &r);
    CHECK(rc == 0 && r.status == 202 && !strcmp(fk.last_body, "{\"quantity\":25}"), "change quantity PATCHes {\"quantity\":n}");
    mp_result_clear(&r);
    rc = mp_delete_subscription(mp, SUB, &r);
    CHECK(rc == 0 && r.status == 202 && r.operation_location[0], "delete answers 202 with an Operation-Location");
    mp_result_clear(&r);

    /* operations */
    fk.op_outstanding = 1;
    rc = mp_list_operations(mp, SUB, &r);
    CHECK(rc == 0 && json_array_size(jl_get(r.body, "operations")) == 1, "list outstanding operations returns the operations");
    mp_result_clear(&r);
    fk.op_outstanding = 0;
    rc = mp_list_operations(mp, SUB, &r);
    CHECK(rc == 0 && json_array_size(jl_get(r.body, "operations")) == 0, "an empty body means no outstanding operations");
    mp_result_clear(&r);
    rc = mp_get_operation(mp, SUB, OP, &r);
    CHECK(rc == 0 && !strcmp(r.operation_status, "Succeeded"), "get operation reports the trimmed status");
    mp_result_clear(&r);
    rc = mp_ack_operation(mp, SUB, OP, "Success", &r);
    CHECK(rc == 0 && !strcmp(fk.last_body, "{\"status\":\"Success\"}"), "ack PATCHes {\"status\":\"Success\"}");
    mp_result_clear(&r);
    CHECK(mp_ack_operation(mp, SUB, OP, "Succeeded", &r) == SAASD_EINVAL, "ack refuses statuses other than Success/Failure");

    /* metering */
    json_t *ev = json_pack("{s:s, s:f, s:s, s:s, s:s}", "resourceId", SUB, "quantity", 5.0, "dimension", "api",
                           "effectiveStartTime", "2026-11-24T02:00:00Z", "planId", "silver");
    rc = mp_usage_event(mp, ev, &r);
    CHECK(rc == 0 && jl_string_is(r.body, "status", "Accepted") && strstr(fk.last_body, "\"dimension\":\"api\""),
          "usageEvent posts the event and returns the result");
    mp_result_clear(&r);
    json_t *evs = json_pack("[O,O]", ev, ev);
    rc = mp_batch_usage_event(mp, evs, &r);
    CHECK(rc == 0 && json_array_size(jl_get(r.body, "result")) == 2 && strstr(fk.last_body, "{\"request\":["),
          "batchUsageEvent wraps the events in {\"request\":[...]} and returns per-item results");
    mp_result_clear(&r);
    json_decref(evs);
    json_decref(ev);

    /* 401 → one refresh */
    reset_counts();
    snprintf(fk.reject_token, sizeof fk.reject_token, "tok-%d", fk.tokens_issued);
    int tokens_before = fk.tokens_issued;
    rc = mp_get_subscription(mp, SUB, &r);
    CHECK(rc == 0 && fk.mp_requests == 2 && fk.tokens_issued == tokens_before + 1,
          "a 401 invalidates the token once, a new one is fetched and the call succeeds");
    mp_result_clear(&r);
    fk.reject_token[0] = 0;
    reset_counts();
    fk.reject_all = 1;
    rc = mp_get_subscription(mp, SUB, &r);
    CHECK(rc == SAASD_EAUTH && fk.mp_requests == 2 && r.status == 401,
          "a second 401 after the refresh is an auth error, not a loop");
    mp_result_clear(&r);
    fk.reject_all = 0;

    /* 429 with Retry-After: 2 */
    reset_counts();
    script(429, 0, 0);
    t0 = mono_ms();
    rc = mp_get_subscription(mp, SUB, &r);
    long long waited = mono_ms() - t0;
    CHECK(rc == 0 && r.attempts == 2 && waited >= 1900 && waited < 3500,
          "a 429 with Retry-After: 2 waits about 2 s, then succeeds");
    CHECK(!strcmp(fk.corr_ids[0], fk.corr_ids[1]) && strcmp(fk.req_ids[0], fk.req_ids[1]),
          "a retry keeps the correlation id and uses a new request id");
    mp_result_clear(&r);
    CHECK(metrics_value("saasd_upstream_requests_total", "endpoint=\"get\",status=\"429\"") == 1,
          "upstream calls are counted by endpoint and status");

    /* The same 429 for a caller that may wait only 1 s (a landing page): no wait, no retry. */
    reset_counts();
    script(429, 0, 0);
    r.max_wait_ms = 1000;
    t0 = mono_ms();
    rc = mp_get_subscription(mp, SUB, &r);
    waited = mono_ms() - t0;
    CHECK(rc == SAASD_ERETRY && r.status == 429 && r.attempts == 1 && waited < 1500 && strstr(r.message, "not retried"),
          "a Retry-After longer than the caller's max_wait_ms is not waited for: the call gives up with the 429");
    mp_result_clear(&r);
    reset_counts();
    script(429, 0, 0);
    r.max_wait_ms = 5000;
    rc = mp_get_subscription(mp, SUB, &r);
    CHECK(rc == 0 && r.attempts == 2, "a Retry-After within the caller's max_wait_ms is waited for and the call succeeds");
    mp_result_clear(&r);

    /* 5xx retried, fast */
    reset_counts();
    script(503, 500, 0);
    t0 = mono_ms();
    rc = mp_get_subscription(mp, SUB, &r);
    CHECK(rc == 0 && r.attempts == 3 && mono_ms() - t0 < 1000, "503 and 500 are retried with backoff, then the call succeeds");
    mp_result_clear(&r);

    /* timeout retried */
    reset_counts();
    script(-1, 0, 0);
    t0 = mono_ms();
    rc = mp_get_subscription(mp, SUB, &r);
    CHECK(rc == 0 && r.attempts == 2 && mono_ms() - t0 < 1500, "a request that times out is retried and succeeds");
    mp_result_clear(&r);

    /* retries end */
    reset_counts();
    script(503, 503, 503);
    pthread_mutex_lock(&fk.mu);
    fk.script[3] = fk.script[4] = 503;
    fk.nscript = 5;
    pthread_mutex_unlock(&fk.mu);
    rc = mp_get_subscription(mp, SUB, &r);
    CHECK(rc == SAASD_ERETRY && r.attempts == 5 && r.status == 503 && !strcmp(r.error_code, "UnexpectedError"),
          "after 5 failed attempts the call gives up with retry-later and the 500 envelope parsed");
    mp_result_clear(&r);

    /* unsafe PATCH: answer lost but applied → not re-sent */
    reset_counts();
    fk.patch_mode = 1;
    rc = mp_change_plan(mp, SUB, "gold", &r);
    CHECK(rc == 0 && fk.patches == 1 && !strcmp(r.operation_id, OP) && r.status == 202,
          "a change plan answered 500 but under way is found via outstanding operations, not re-sent");
    mp_result_clear(&r);
    fk.op_outstanding = 0;

    /* unsafe PATCH: failed and not applied → re-sent once after the state check */
    reset_counts();
    fk.patch_mode = 2;
    rc = mp_change_plan(mp, SUB, "gold", &r);
    CHECK(rc == 0 && fk.patches == 2 && r.status == 202, "a change plan that failed and is not visible is re-sent after the check");
    mp_result_clear(&r);

    /* unsafe PATCH: 429 is retried directly (not processed) */
    reset_counts();
    fk.retry_after = "0";
    script(429, 0, 0);
    rc = mp_change_quantity(mp, SUB, 30, &r);
    CHECK(rc == 0 && fk.mp_requests == 2 && fk.patches == 1 && r.attempts == 2,
          "a throttled change (not processed) is re-sent after Retry-After");
    mp_result_clear(&r);

    rc = mp_get_subscription(mp, "11111111-1111-1111-1111-111111111111", &r);
    CHECK(rc == SAASD_EHTTP && !strcmp(r.error_code, "UnsupportedApiVersion") && !strcmp(r.message, "bad version"),
          "the {\"Error\":{\"Code\",\"Message\"}} envelope is read case-insensitively");
    mp_result_clear(&r);

    /* the operator CLI: saasd mp get / list / change-plan --wait, against the same fake */
    char *dir = check_tmpdir("mpcli");
    char conf[512], secret[512], out[16384];
    snprintf(secret, sizeof secret, "%s/secret", dir);
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    FILE *f = fopen(secret, "w");
    fputs("cli-secret\n", f);
    fclose(f);
    f = fopen(conf, "w");
    fprintf(f, "entra = { authority = \"%s\", tenant_id = \"%s\", client_id = \"app\", secret_file = \"%s\" }\n"
               "marketplace = { base_url = \"%s\" }\n", base, TENANT, secret, base);
    fclose(f);
    char *get_args[] = {"--config", conf, "get", SUB};
    int st = run_cli(out, sizeof out, 4, get_args);
    json_t *printed = json_loads(out, 0, NULL);
    CHECK(st == 0 && printed && jl_string_is(printed, "id", SUB), "saasd mp get prints the subscription as JSON and exits 0");
    json_decref(printed);
    char *list_args[] = {"--config", conf, "list"};
    st = run_cli(out, sizeof out, 3, list_args);
    printed = json_loads(out, 0, NULL);
    CHECK(st == 0 && json_array_size(jl_get(printed, "subscriptions")) == 6, "saasd mp list prints every page's subscriptions");
    json_decref(printed);
    fk.op_pending_polls = 0; /* the CLI polls every 2 s by default: keep it to one poll */
    char *change_args[] = {"--config", conf, "--wait", "change-plan", SUB, "gold"};
    st = run_cli(out, sizeof out, 6, change_args);
    printed = json_loads(out, 0, NULL);
    CHECK(st == 0 && jl_string_is(printed, "status", "Succeeded"), "saasd mp change-plan --wait prints the final operation");
    json_decref(printed);
    char *missing_args[] = {"--config", conf, "get", "00000000-0000-0000-0000-000000000000"};
    st = run_cli(out, sizeof out, 4, missing_args);
    CHECK(st == 1 && strstr(out, "EntityNotFound"), "saasd mp exits 1 on a failed call and still prints the error body");
    char *usage_args[] = {"--config", conf, "usage-events", "2026-11-01", "2026-11-02", "offerId=offer 1&x", "dimension=api-calls"};
    st = run_cli(out, sizeof out, 7, usage_args);
    printed = json_loads(out, 0, NULL);
    json_t *row = json_array_get(jl_get(printed, "usage"), 0);
    CHECK(st == 0 && jl_string_is(row, "usageDate", "2026-11-01") && jl_string_is(row, "endDate", "2026-11-02") &&
              jl_string_is(row, "offerId", "offer 1&x") && jl_string_is(row, "dimension", "api-calls"),
          "saasd mp usage-events sends the dates and filters (URL-encoded) and prints Microsoft's rows");
    json_decref(printed);
    char *usage_bad[] = {"--config", conf, "usage-events", "2026-11-01", "2026-11-02", "colour=blue"};
    CHECK(run_cli(out, sizeof out, 6, usage_bad) == 2, "saasd mp usage-events exits 2 on a filter it does not know");
    char *bad_args[] = {"--config", conf, "activate", SUB};
    CHECK(run_cli(out, sizeof out, 4, bad_args) == 2, "saasd mp exits 2 on bad arguments");
    unlink(secret);
    unlink(conf);
    rmdir(dir);
    free(dir);

    mp_client_free(mp);
    token_cache_free(tc);
    http_client_free(http);
    httpd_stop(d);
    return CHECK_DONE();
}
