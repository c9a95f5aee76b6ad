/* The marketplace client: every SaaS Fulfillment v2, Operations and Metering call of the
 * contract (§3, §4, §7) over http_client, with the publisher token from token_cache.
 *
 * Every call:
 *  - sends Authorization, x-ms-requestid (new GUID per HTTP request) and x-ms-correlationid
 *    (one per logical call, shared by its retries and pages; the caller may preset it), and
 *    logs both with the response's echoes;
 *  - on 401/403 invalidates the token once and resends; a second refusal is SAASD_EAUTH;
 *  - retries 429 (honouring Retry-After, delta-seconds or HTTP-date) and, for calls that are
 *    safe to repeat, 5xx / timeouts / connection errors, with exponential backoff and jitter
 *    (base, cap and attempts configurable); never other 4xx;
 *  - PATCH / DELETE subscription are NOT safe to repeat: after a transient failure the client
 *    first checks the subscription's state (outstanding operations, then the subscription) and
 *    resends only when the change is visibly not there;
 *  - reads JSON leniently (json_lenient.h) and parses error bodies of every §8.1 shape into
 *    error_code/message;
 *  - counts saasd_upstream_requests_total{endpoint,status} and observes
 *    saasd_upstream_request_seconds{endpoint} in the metrics registry.
 * Thread-safe: one mp_client may serve every thread. */
#ifndef SAASD_MP_CLIENT_H
#define SAASD_MP_CLIENT_H

#include <stddef.h>

#include <jansson.h>

struct http_client;
struct token_cache;
struct saasd_config;

enum mp_endpoint {
    MP_RESOLVE,
    MP_ACTIVATE,
    MP_GET,
    MP_LIST,
    MP_PLANS,
    MP_CHANGE_PLAN,
    MP_CHANGE_QUANTITY,
    MP_DELETE,
    MP_LIST_OPERATIONS,
    MP_GET_OPERATION,
    MP_ACK_OPERATION,
    MP_USAGE_EVENT,
    MP_BATCH_USAGE_EVENT,
    MP_USAGE_EVENTS,
    MP_ENDPOINT_COUNT
};

/* "resolve", "activate", "get", "list", "plans", "change_plan", ... (metrics label). */
const char *mp_endpoint_name(enum mp_endpoint ep);

struct mp_client_options {
    const char *base_url;    /* NULL = https://marketplaceapi.microsoft.com */
    const char *api_version; /* NULL = 2018-08-31 */
    int max_attempts;        /* tries per call for repeat-safe calls; 0 = 5 */
    long backoff_base_ms;    /* 0 = 1000 (1, 2, 4, 8 ... s) */
    long backoff_cap_ms;     /* 0 = 60000 */
    long retry_after_cap_ms; /* longest Retry-After honoured; 0 = 120000 */
    long timeout_ms;         /* per HTTP request; 0 = the http_client default */
    long poll_interval_ms;   /* mp_wait_operation; 0 = 2000 */
    long poll_timeout_ms;    /* mp_wait_operation bound; 0 = 600000 */
    int max_pages;           /* mp_list_subscriptions bound; 0 = 100000 */
};

/* Fill options from the daemon config (pointers borrow from cfg). */
void mp_client_options_from_config(const struct saasd_config *cfg, struct mp_client_options *out);

/* Outcome of one call. Zero it (or mp_result_clear() it) before a call; a caller may preset
 * correlation_id to tie several calls together, and max_wait_ms to bound how long the call may
 * wait between its tries (Retry-After and backoff together): a call that would have to wait
 * longer gives up with its last answer (a landing page cannot keep a browser waiting). After the call every field describes the
 * last HTTP exchange; body holds the parsed JSON of the final response (success or error),
 * NULL when it was empty or not JSON. Release with mp_result_clear(). */
struct mp_result {
    long status;                /* final HTTP status; 0 when none was received */
    int attempts;               /* HTTP requests sent for this call */
    char request_id[40];        /* x-ms-requestid we sent last */
    char correlation_id[40];    /* x-ms-correlationid used (in: optional preset) */
    char ms_request_id[80];     /* echoes of the last response */
    char ms_correlation_id[80];
    char operation_location[1024]; /* 202 answers */
    char operation_id[40];      /* last path segment of operation_location */
    char operation_status[24];  /* mp_get_operation / mp_wait_operation: NotStarted ... Conflict */
    char error_code[64];        /* parsed from an error body */
    char message[256];          /* short text for logs: error message, or what happened */
    json_t *body;
    long max_wait_ms;           /* in: total wait between tries; 0 = only the retry policy */
    int want_text;              /* in: keep the 2xx answer's text in text when it is one line */
    char *text;                 /* the text body was parsed from (NUL-terminated), or NULL */
};

void mp_result_clear(struct mp_result *r);

struct mp_client;

/* http and tokens are borrowed and must outlive the client. */
int mp_client_new(const struct mp_client_options *opt, struct http_client *http, struct token_cache *tokens,
                  struct mp_client **out);
void mp_client_free(struct mp_client *mp);

/* Return values of the calls below: 0 on the expected 2xx; SAASD_ENOTFOUND (404),
 * SAASD_ECONFLICT (409), SAASD_EAUTH (401/403 twice, or no token), SAASD_EHTTP (other 4xx),
 * SAASD_ERETRY (429/5xx still failing after the retries, or an unsafe call not re-sent),
 * SAASD_ETIMEOUT / SAASD_EIO (transport), SAASD_EINVAL (bad arguments). res is filled in
 * every case. Identifiers are checked to be URL-safe before use. */

/* POST /subscriptions/resolve with x-ms-marketplace-token (already URL-decoded once).
 * body = ResolvedSubscription. */
int mp_resolve(struct mp_client *mp, const char *marketplace_token, struct mp_result *res);
/* POST /subscriptions/{id}/activate {"planId", "quantity"?}; quantity < 0 = omitted. A retried
 * activate answered 400 is confirmed with GET (Subscribed on plan_id counts as done). */
int mp_activate(struct mp_client *mp, const char *sub_id, const char *plan_id, long long quantity,
                struct mp_result *res);
/* GET /subscriptions/{id}. body = Subscription. */
int mp_get_subscription(struct mp_client *mp, const char *sub_id, struct mp_result *res);
/* GET /subscriptions, following @nextLink to the last page (bounded by max_pages). body =
 * {"subscriptions":[every page's items]} (also for an empty body or {}). */
int mp_list_subscriptions(struct mp_client *mp, struct mp_result *res);
/* The same walk, one page at a time: fn(arg, items) gets each page's array of subscriptions
 * (borrowed, valid during the call) so a caller need not hold the whole list; a non-zero
 * return stops the walk and is returned. res->body holds the last page. */
int mp_list_subscriptions_each(struct mp_client *mp, int (*fn)(void *arg, json_t *items), void *arg,
                               struct mp_result *res);
/* GET /subscriptions/{id}/listAvailablePlans[?planId=]. plan_id may be NULL. body = {"plans":[...]}. */
int mp_list_plans(struct mp_client *mp, const char *sub_id, const char *plan_id, struct mp_result *res);
/* PATCH /subscriptions/{id} {"planId"} / {"quantity"}; DELETE /subscriptions/{id}.
 * 0 with status 202 and operation_location/operation_id set. When a transient failure hid the
 * answer and the state check shows the change already under way, 0 with that operation; when
 * it shows the change already applied, 0 with status 200 and no operation. */
int mp_change_plan(struct mp_client *mp, const char *sub_id, const char *plan_id, struct mp_result *res);
int mp_change_quantity(struct mp_client *mp, const char *sub_id, long long quantity, struct mp_result *res);
int mp_delete_subscription(struct mp_client *mp, const char *sub_id, struct mp_result *res);
/* GET /subscriptions/{id}/operations. body = {"operations":[...]} (empty body/bare array accepted). */
int mp_list_operations(struct mp_client *mp, const char *sub_id, struct mp_result *res);
/* GET /subscriptions/{id}/operations/{op}. body = Operation; operation_status set. */
int mp_get_operation(struct mp_client *mp, const char *sub_id, const char *op_id, struct mp_result *res);
/* PATCH /subscriptions/{id}/operations/{op} {"status": "Success"|"Failure"}. */
int mp_ack_operation(struct mp_client *mp, const char *sub_id, const char *op_id, const char *status,
                     struct mp_result *res);
/* Poll an Operation-Location (absolute URL; only its path and query are used, on the
 * configured base URL, so the token never leaves for another host) every poll_interval_ms
 * until the status is Succeeded, Failed or Conflict. 0 when final (check operation_status),
 * SAASD_ETIMEOUT when timeout_ms (0 = poll_timeout_ms) passed first, or a call error. */
int mp_wait_operation(struct mp_client *mp, const char *operation_location, long timeout_ms, struct mp_result *res);

/* POST /api/usageEvent with a UsageEvent object. body = UsageEventResult (or the 409 body with
 * additionalInfo.acceptedMessage). Repeat-safe by design (dedup per resource/dimension/hour). */
int mp_usage_event(struct mp_client *mp, const json_t *event, struct mp_result *res);
/* POST /api/batchUsageEvent {"request": events} with 1..25 events. body = {"count","result"}:
 * walk result, each item has its own status. */
int mp_batch_usage_event(struct mp_client *mp, const json_t *events, struct mp_result *res);

/* GET /api/usageEvents: what Microsoft recorded, per day, resource and dimension (§7.1).
 * start is required (ISO 8601 date or date-time); every other field may be NULL. */
struct mp_usage_query {
    const char *start, *end, *offer_id, *plan_id, *dimension, *azure_subscription_id, *recon_status;
};
/* body = {"usage": [rows]} (Microsoft answers a bare array). */
int mp_usage_events(struct mp_client *mp, const struct mp_usage_query *q, struct mp_result *res);

/* 1 for Succeeded, Failed and Conflict (trimmed, case-insensitive). */
int mp_operation_is_final(const char *status);

#endif
