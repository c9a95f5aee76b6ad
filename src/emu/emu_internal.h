/* Shared internals of the emulator (the src/emu files only). One mutex (emu.lock) guards the whole
 * state: db, knobs, keys, faults. Handlers take it for the duration of a request; the webhook
 * sender drops it while a delivery is on the wire. State lives in one jansson tree (db) so it
 * can be dumped to LMDB as is; keys starting with '_' are internal and never served. */
#ifndef SAASD_EMU_INTERNAL_H
#define SAASD_EMU_INTERNAL_H

#include "core/httpd.h"
#include "emu/emu.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define EMU_MARKETPLACE_APP "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
#define EMU_MSA_TENANT "9188040d-6c67-4c5b-b112-36a304b66dad" /* every personal Microsoft account's tid */
#define EMU_PUBLISHER_APP_NAME "Contoso SaaS (publisher app)" /* what the sign-in page calls the apps */
#define EMU_SIGNIN_APP_NAME "Contoso SaaS sign-in"
#define EMU_MAX_KEYS 3 /* the signing key plus up to two previous ones, still in the JWKS */
#define EMU_ASSERTION_SKEW_S 300          /* clock skew allowed on a client assertion's exp/nbf */
#define EMU_ASSERTION_MAX_LIFETIME_S 3600 /* a client assertion may not expire later than this from now */

struct emu_key {
    EVP_PKEY *pkey;
    char kid[64];   /* = x5t: base64url SHA-1 of the (deterministic) self-signed cert */
    char *cert_b64; /* x5c entry */
};

/* Test knobs, settable through PUT /_emulator/config. */
struct emu_knobs {
    char *webhook_url;
    char *landing_url;
    int page_size;
    long ack_window_ms, op_delay_ms, send_delay_ms;
    long token_lifetime_s, landing_lifetime_s;
    long webhook_timeout_ms, webhook_backoff_ms;
    int webhook_max_attempts;
    long clock_offset_s;
    char *id_token_fault; /* NULL, or how to spoil buyers' ID tokens (emu_signin.c's table) */
    /* Where Microsoft's pages or implementations differ, both behaviours (tests pick one): */
    int reinstate_ackable;   /* 1: Reinstate waits for an ACK (life-cycle page); 0: applied, then
                                announced Succeeded (webhook page, the default) */
    int partner_webhooks;    /* publisher PATCH/DELETE are announced by webhook (default 1) */
    int requested_spelling;  /* operations carry operationRequestedSource instead of ...RequestSource */
    long sub_update_delay_ms; /* GET/List show a subscription's previous state this long after a change */
    int omit_created;        /* subscriptions as served carry no `created` (Microsoft's do not always) */
};

/* One armed fault: the next `remaining` requests matching method + path glob get it. */
struct emu_fault {
    char *method; /* NULL = any */
    char *path;   /* fnmatch(3) pattern */
    char *kind;   /* "429", "500", "503", "latency", "drop" */
    int remaining;
    long retry_after_s, latency_ms;
    int hits;
};

struct emu_error {
    int status;
    const char *code;
    char message[256];
    const char *target;
    const char *detail_code;
};

/* Why the token endpoint refuses a request, in Entra's terms (§2.3 envelope). */
struct emu_refusal {
    int status;        /* 400 / 401 */
    const char *error; /* "invalid_client" ... */
    long code;         /* the AADSTS number */
    char message[512];
};

#define EMU_CALLS_MAX 2000

struct emu {
    struct emu_options opt; /* strings below are owned copies */
    char *bind_addr, *public_url, *data_dir, *issuer_base, *tenant_id, *client_id, *client_secret,
        *publisher_id;
    char base_url[256];
    pthread_mutex_t lock;
    pthread_cond_t wake; /* new delivery queued, or stopping */
    int stopping;
    json_t *db;
    int dirty;
    struct emu_knobs k;
    struct emu_key keys[EMU_MAX_KEYS];
    size_t nkeys;
    char key_stamp[64]; /* inode + mtime of the key file (--data), to notice `rotate-key` */
    uint8_t landing_key[32];
    json_t *jtis; /* "<client>/<jti>" -> exp of client assertions already used (memory only) */
    json_t *codes; /* authorization codes -> their request (memory only, emu_signin.c) */
    /* The latest requests to Microsoft's surfaces (memory only): a ring of plain records, so
     * that noting one costs no JSON tree and dropping the oldest no array shift; JSON is built
     * only when GET /_emulator/calls reads them. */
    struct emu_call {
        char method[32];
        char *path; /* malloc'd */
        int status;
        int64_t at_ms;
    } calls[EMU_CALLS_MAX];
    size_t calls_head, calls_len; /* oldest at calls_head */
    struct emu_fault *faults;
    size_t nfaults;
    struct httpd *httpd;
    struct http_client *http;
    void *lmdb_env;
    pthread_t ticker, sender;
    int threads_started;
    /* Answers held back by latency faults (emu_hold.c), in due order, and their thread. */
    pthread_mutex_t hold_lock;
    pthread_cond_t hold_cond; /* CLOCK_MONOTONIC */
    struct emu_held *held;
    int hold_flush;
    pthread_t holder;
    int holder_started;
    /* What the timer and sender threads need to look at, so that neither rereads every
     * operation or delivery on every request (they hold the state lock while they scan): */
    int64_t tick_at;       /* emulator time before which no operation's timer is due (0: scan) */
    size_t first_pending;  /* deliveries before this index are final: only appended, never reopened */
    int wake_needed;       /* a request armed a timer: wake the threads when it ends */
    /* Subscription id -> ids of its operations, oldest first (emu_sub_ops; NULL = not built). */
    json_t *sub_ops;
    /* The answer texts of GET subscription / operation by id (emu_texts.c; NULL = empty). */
    json_t *sub_texts, *op_texts;
    /* Bearers whose RS256 signature was checked, so a client's every call with the same token
     * does not cost an RSA verification under the state lock; an entry counts only while its
     * kid is still published (emu_entra.c). */
    struct emu_bearer_seen {
        char *token;
        char kid[64];
        json_t *claims;
    } bearers[4];
    unsigned bearers_next;
};

/* A timer (an operation's _dueAt) was set to at: the ticker looks again by then. */
void emu_timer_armed(struct emu *e, int64_t at);
/* State changed in a way no timer records (clock, reset, a loaded state): the ticker rescans. */
void emu_timers_rescan(struct emu *e);

/* ---- emu_util.c: time, JSON and replies ---- */
int64_t emu_now_ms(const struct emu *e);
int64_t emu_wall_ms(void);
/* "2024-05-02T09:15:27.1230000Z" (7 fractional digits, like the live service). */
void emu_iso(int64_t ms, char out[40]);
/* ISO-8601 date or date-time, optional fraction, optional Z or +hh:mm. 0 or SAASD_EINVAL. */
int emu_parse_time(const char *s, int64_t *ms);
/* Midnight UTC of the day containing ms, and that day plus a term unit (P1M, P1Y...) minus a day. */
int64_t emu_day_start(int64_t ms);
int emu_term_end(int64_t start_ms, const char *term_unit, int64_t *end_ms);
const char *emu_jstr(const json_t *o, const char *key);
/* Copy of an object without its internal '_' keys (recursively for "subscription"). */
json_t *emu_public(const json_t *o);
/* The same for an answer that is serialised and dropped at once: a new top-level object (and
 * "subscription" inside it) sharing the other values with the state, instead of a deep copy
 * per request. Change nothing below its top level. */
json_t *emu_public_view(const json_t *o);
/* Who started an operation ("Azure", "Partner"), under either spelling. */
const char *emu_op_source(const json_t *op);
/* The subscription as GET and List show it (the previous state while sub_update_delay_ms runs). */
json_t *emu_sub_view(struct emu *e, const json_t *sub);
/* 1 while GET shows the subscription's previous state (sub_update_delay_ms). */
int emu_sub_showing_previous(struct emu *e, const json_t *sub);
void emu_reply_json(struct httpd_response *res, int status, json_t *body); /* steals body */
void emu_reply_empty(struct httpd_response *res, int status);
/* Fulfillment-style flat error: {"code","message","target","details":[...]}. */
void emu_reply_error(struct httpd_response *res, const struct emu_error *err);
void emu_fail(struct emu_error *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Decode application/x-www-form-urlencoded field `name` from body into a malloc'd string. */
char *emu_form_value(const char *body, size_t len, const char *name);
json_t *emu_body_json(const struct httpd_request *r);
void emu_uuid(char out[37]);
/* Text for HTML element content and attribute values; malloc'd (NULL stays NULL). */
char *emu_html_escape(const char *text);

/* ---- emu_texts.c: answer texts kept until their object changes (lock held) ---- */
enum { EMU_TEXT_SUB, EMU_TEXT_OP };
/* 200 with the text of GET subscription (EMU_TEXT_SUB, as emu_sub_view shows it) or GET
 * operation (EMU_TEXT_OP, emu_public_view), made once per change of o. */
void emu_reply_text_of(struct emu *e, struct httpd_response *res, int kind, const json_t *o);
/* o changed: its text is made again when next read. */
void emu_text_forget(struct emu *e, int kind, const json_t *o);
/* Anything may have changed (control API, a loaded or reset state): forget every text. */
void emu_texts_clear(struct emu *e);

/* ---- emu_jwt.c: keys and RS256 ---- */
int emu_key_generate(struct emu_key *k);
int emu_key_from_pem(const char *pem, size_t len, struct emu_key *k);
int emu_key_to_pem(const struct emu_key *k, char **pem);
void emu_key_free(struct emu_key *k);
json_t *emu_key_jwk(const struct emu_key *k);
int emu_jwt_sign(const struct emu_key *k, const json_t *claims, char **out);
/* Verify the signature against any known key; *claims_out is the parsed payload. */
int emu_jwt_verify(const struct emu_key *keys, size_t nkeys, const char *token, json_t **claims_out);
/* A compact JWS taken apart: header and claims (JSON objects), the signature, and how many
 * leading bytes of the token it signs. emu_jws_parse: 0 or SAASD_EAUTH (not three base64url
 * segments with JSON object header and claims); release with emu_jws_clear either way. */
struct emu_jws {
    json_t *header, *claims;
    uint8_t *sig;
    size_t sig_len, signed_len;
};
int emu_jws_parse(const char *token, struct emu_jws *out);
void emu_jws_clear(struct emu_jws *j);
/* 1 when the RS256 signature of token (parsed into j) verifies with pub. */
int emu_jws_rs256_ok(const struct emu_jws *j, const char *token, EVP_PKEY *pub);
/* Load the key files in dir (or create them); rotate = move current to previous first. */
int emu_keys_load_dir(const char *dir, int rotate, struct emu_key keys[EMU_MAX_KEYS], size_t *nkeys);
int emu_keys_rotate_memory(struct emu *e);
/* --data: reload the key files when `saasd emulate rotate-key` replaced them (lock held). */
void emu_keys_refresh(struct emu *e);

/* ---- emu_entra.c ---- */
int emu_entra_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res);
/* Issue tokens (caller frees): for the publisher app `client` of tenant `tid`, and the
 * webhook bearer Microsoft sends to the app owning an offer. */
int emu_mint_publisher_token(struct emu *e, int version, const char *tid, const char *client, char **out);
int emu_mint_webhook_token(struct emu *e, const char *tid, const char *client, char **out);
/* Adds Entra's opaque claims (aio, uti, rh), signs with the current key; consumes claims. */
int emu_sign_claims(struct emu *e, json_t *claims, char **out);
/* Checks the Authorization bearer of a marketplace call; 0 and the calling app's client id in
 * caller (64 bytes), or fills err (403). */
int emu_check_bearer(struct emu *e, const struct httpd_request *r, struct emu_error *err, char *caller);
/* Drops the verified bearers (emu_stop). */
void emu_bearers_clear(struct emu *e);
void emu_issuer_v1(const struct emu *e, const char *tid, char *out, size_t n);
void emu_issuer_v2(const struct emu *e, const char *tid, char *out, size_t n);

/* ---- emu_users.c: test users who sign in as buyers (lock held) ---- */
void emu_users_seed(struct emu *e);
json_t *emu_user(struct emu *e, const char *oid);         /* borrowed, or NULL */
json_t *emu_user_by_email(struct emu *e, const char *email);
int emu_user_tenant_known(struct emu *e, const char *tid);
/* Add (or replace, same objectId) a user: {email, name?, objectId?, tenantId?, tenantName?, personal?}. */
int emu_user_put(struct emu *e, const json_t *in, struct emu_error *err, json_t **out);
/* A purchase's purchaser/beneficiary from what the purchase named, completed from (or added
 * to) the users; new reference. */
json_t *emu_buyer_identity(struct emu *e, const json_t *in, const char *default_email);
json_t *emu_users_json(struct emu *e);

/* ---- emu_signin.c: buyer sign-in, OpenID Connect code flow with PKCE (lock held) ---- */
/* Answers /{tenant}/oauth2/v2.0/authorize (rest = the path after the tenant); 0 = not ours. */
int emu_signin_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res, const char *tenant,
                     const char *rest);
/* A tenant id, common, organizations or consumers the emulator can sign users in at. */
int emu_authority_known(struct emu *e, const char *tenant);
/* grant_type=authorization_code for an authenticated client: 0 and the token reply, or why. */
int emu_code_redeem(struct emu *e, const char *client, const char *body, size_t n, struct emu_refusal *why,
                    json_t **reply);
/* 1 when name is one of the idTokenFault values (wrong-nonce, foreign-issuer, expired,
 * wrong-audience, bad-signature, unknown-key). */
int emu_id_token_fault_known(const char *name);
/* An app's sign-in registration {redirectUris, signInAudience} (borrowed), or NULL. */
json_t *emu_signin_reg(struct emu *e, const char *client);
int emu_signin_reg_put(struct emu *e, const char *client, const json_t *in, struct emu_error *err);
/* Registers a space/comma separated list of redirect URIs for client. */
int emu_signin_reg_uris(struct emu *e, const char *client, const char *list);

/* ---- emu_assertion.c: certificates of the publisher apps, client assertions (lock held) ---- */
/* Register a PEM certificate for a known app (again: replaced). *out (may be NULL) borrows the
 * stored record. 0, or fills err (404 unknown app, 400 not a certificate). */
int emu_app_cert_add(struct emu *e, const char *client, const char *pem, size_t len, struct emu_error *err,
                     json_t **out);
/* Remove the certificate whose x5t, x5t#S256 or hex thumbprint is id: 0 or SAASD_ENOTFOUND. */
int emu_app_cert_del(struct emu *e, const char *client, const char *id);
/* The app's certificate records (borrowed), or NULL; emu_cert_public renders one for replies. */
json_t *emu_app_certs(struct emu *e, const char *client);
json_t *emu_cert_public(const json_t *rec);
/* The client assertion of a token request at the v1/v2 endpoint of tenant for client: 0 (and
 * its jti is remembered), or SAASD_EAUTH with out filled. */
int emu_check_client_assertion(struct emu *e, const struct httpd_request *r, const char *tenant, int version,
                               const char *client, const char *type, const char *jwt, struct emu_refusal *out);

/* ---- emu_state.c: publisher apps, offers, subscriptions, operations, §6 state machine (lock
 * held) ---- */
/* The publisher apps: the configured one plus any added through POST /_emulator/apps. The
 * tenant of a known client id, or NULL; secret_out (may be NULL) gets its secret. */
const char *emu_app_tenant(struct emu *e, const char *client, const char **secret_out);
int emu_tenant_known(struct emu *e, const char *tid);
int emu_app_put(struct emu *e, const json_t *in, struct emu_error *err);
/* Client id of the app an offer (or a subscription's offer) is registered with. */
const char *emu_offer_client(struct emu *e, const json_t *offer);
const char *emu_sub_client(struct emu *e, const json_t *sub);
int emu_state_init(struct emu *e);
void emu_state_seed(struct emu *e);
json_t *emu_offer(struct emu *e, const char *offer_id);
json_t *emu_plan(const json_t *offer, const char *plan_id);
int emu_plan_has_dimension(const json_t *plan, const char *dim);
int emu_offer_put(struct emu *e, const json_t *in, struct emu_error *err, json_t **out);
json_t *emu_sub(struct emu *e, const char *id);
int emu_purchase(struct emu *e, const json_t *in, struct emu_error *err, json_t **sub_out);
char *emu_landing_token(struct emu *e, const char *sub_id, long lifetime_s);
int emu_landing_resolve(struct emu *e, const char *token, struct emu_error *err, json_t **sub_out);
int emu_activate(struct emu *e, json_t *sub, const json_t *body, struct emu_error *err);
json_t *emu_op(struct emu *e, const char *op_id);
/* The ids of a subscription's operations, oldest first (borrowed; NULL when it has none). */
json_t *emu_sub_ops(struct emu *e, const char *sub_id);
/* Publisher PATCH (plan or quantity) and DELETE: a Partner operation, completed after the delay. */
int emu_publisher_update(struct emu *e, json_t *sub, const json_t *body, struct emu_error *err, json_t **op_out);
int emu_publisher_delete(struct emu *e, json_t *sub, struct emu_error *err, json_t **op_out);
int emu_op_ack(struct emu *e, json_t *op, const char *status, struct emu_error *err);
/* Customer-side actions from the control API: ChangePlan, ChangeQuantity, Suspend, Reinstate,
 * Unsubscribe, Renew. */
int emu_customer_action(struct emu *e, json_t *sub, const char *action, const json_t *body,
                        struct emu_error *err, json_t **op_out);
/* Longest sleep of the timer and webhook threads: whatever gives them work sooner wakes them
 * (e->wake), so this only bounds a missed wake-up. Each wake-up of a thread under the state lock
 * costs the request being served meanwhile (about 3 % of the emulator's CPU when they polled
 * every 50 and 100 ms). */
#define EMU_IDLE_WAIT_MS 1000
/* Timers: ACK windows and delayed completions. Returns ms until the next one is due (max
 * EMU_IDLE_WAIT_MS). */
long emu_state_tick(struct emu *e);
/* Webhook delivery outcome, from emu_webhook.c: http 0 = no answer. */
void emu_delivery_done(struct emu *e, json_t *delivery, long http_status, const char *error, long duration_ms);
void emu_state_reset(struct emu *e);

/* ---- emu_webhook.c ---- */
void emu_webhook_enqueue(struct emu *e, json_t *op);
void *emu_webhook_thread(void *arg);
const char *emu_webhook_target(struct emu *e, const json_t *op);

/* ---- emu_fulfillment.c, emu_metering.c, emu_control.c ---- */
int emu_api_version_ok(const struct httpd_request *r, struct httpd_response *res);
void emu_fulfillment_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res);
void emu_metering_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res);
/* Partner Center's verdict on a usage query row (§7.5 reconStatus): in {resourceId, dimension,
 * usageDate, reconStatus}; 0 and *out, or an error in err (400, 404 when no usage of that
 * resource, dimension and day was recorded). Rows start Submitted. */
int emu_usage_recon_status(struct emu *e, const json_t *in, struct emu_error *err, json_t **out);
void emu_control_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res);
/* Fault injection: 1 when the request was answered (or must be dropped) by a fault; a latency
 * fault returns 0 and sets *latency_ms (the answer is then held back that long: emu_hold). */
int emu_fault_apply(struct emu *e, const struct httpd_request *r, struct httpd_response *res, long *latency_ms);
void emu_faults_clear(struct emu *e);
void emu_operation_location(struct emu *e, const json_t *op, struct httpd_response *res);

/* ---- emu_hold.c: answers held back by latency faults (the event loop never sleeps) ---- */
void emu_hold(struct emu *e, const struct httpd_request *r, struct httpd_response *res, long latency_ms);
void *emu_hold_thread(void *arg);
void emu_hold_flush(struct emu *e);

/* ---- emu_persist.c: LMDB snapshot of db with --data ---- */
int emu_persist_open(struct emu *e);
int emu_persist_load(struct emu *e);
void emu_persist_flush(struct emu *e); /* writes db if dirty (lock held) */
void emu_persist_close(struct emu *e);

#endif
