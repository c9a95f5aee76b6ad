/* The built-in marketplace emulator: Microsoft's side of the SaaS integration (Entra ID token
 * endpoint + OpenID/JWKS, Fulfillment v2 + Operations, Metering, outbound webhooks) served on
 * one loopback port, plus a test-only control API under /_emulator/. See README "The built-in
 * emulator" and `saasd emulate --help`.
 *
 * Use from C (the daemon's integration tests do):
 *     struct emu_options o;
 *     emu_options_defaults(&o);
 *     o.port = 0;                      // any free port
 *     struct emu *e;
 *     if (emu_start(&o, &e) == 0) { ... emu_base_url(e) ... emu_stop(e); }
 * Strings in emu_options are copied by emu_start; the caller keeps ownership of its own. */
#ifndef SAASD_EMU_H
#define SAASD_EMU_H

#define EMU_DEFAULT_TENANT    "11111111-1111-4111-8111-111111111111"
#define EMU_DEFAULT_CLIENT    "22222222-2222-4222-8222-222222222222"
#define EMU_DEFAULT_SECRET    "emulator-secret"
#define EMU_DEFAULT_ISSUER    "https://login.microsoftonline.com"
#define EMU_DEFAULT_PUBLISHER "contoso"
#define EMU_DEFAULT_LANDING   "http://127.0.0.1:8080/landing"
#define EMU_API_VERSION       "2018-08-31"
/* Buyers (emu_users.c): the default purchaser, signed in as a test user of this tenant. */
#define EMU_BUYER_TENANT      "44444444-4444-4444-8444-444444444444"
#define EMU_BUYER_EMAIL       "customer@contoso-customer.example"
#define EMU_OTHER_TENANT      "55555555-5555-4555-8555-555555555555"
#define EMU_DEFAULT_SIGNIN_SECRET "emulator-signin-secret"

struct emu_options {
    const char *bind_addr;     /* default 127.0.0.1 */
    unsigned short port;       /* 0 = a free port (emu_port tells which) */
    const char *public_url;    /* base of absolute URLs it hands out; NULL = http://<bind>:<port> */
    const char *data_dir;      /* NULL = state in memory only; else LMDB + key files there */
    const char *issuer_base;   /* iss of v2 tokens = <issuer_base>/<tid>/v2.0; default EMU_DEFAULT_ISSUER */
    const char *tenant_id;     /* the one publisher app it knows */
    const char *client_id;
    const char *client_secret; /* default: env EMU_CLIENT_SECRET, else EMU_DEFAULT_SECRET */
    const char *client_cert_file; /* PEM whose certificate is registered for that app, so it can
                                     sign in with client assertions; NULL = none. A private key
                                     in the file is ignored, never stored. */
    const char *publisher_id;  /* publisherId on offers/subscriptions; default "contoso" */
    const char *landing_url;   /* landing page base for purchases; default EMU_DEFAULT_LANDING */
    const char *webhook_url;   /* global webhook target; NULL = none (offers may set their own) */
    int page_size;             /* subscriptions per List page; default 100 */
    long ack_window_ms;        /* ChangePlan/ChangeQuantity/Reinstate auto-accept; default 10000 */
    long op_delay_ms;          /* publisher PATCH/DELETE completion delay; default 2000 */
    long token_lifetime_s;     /* access tokens; default 3599 */
    long landing_lifetime_s;   /* landing tokens; default 86400 */
    long webhook_timeout_ms;   /* per delivery attempt; default 10000 */
    long webhook_backoff_ms;   /* first retry delay, doubled per attempt, capped at 60 s; default 1000 */
    int webhook_max_attempts;  /* then the delivery (and an ACK-able operation) fails; default 10 */
    int seed;                  /* 1 = create the demo offer on an empty state; default 1 */
    /* Buyer sign-in (OpenID Connect code flow): the redirect URIs registered for the publisher
     * app, space- or comma-separated; NULL = <landing_url>/callback. A separate multitenant
     * sign-in app (the landing app Microsoft recommends) when signin_client_id is set: it is
     * registered in the publisher tenant with signin_client_secret (default
     * EMU_DEFAULT_SIGNIN_SECRET) and the same redirect URIs. */
    const char *redirect_uris;
    const char *signin_client_id;
    const char *signin_client_secret;
};

struct emu;

void emu_options_defaults(struct emu_options *o);
/* Loads or creates the signing key and the state, starts serving. 0 or SAASD_E*. */
int emu_start(const struct emu_options *opt, struct emu **out);
unsigned short emu_port(const struct emu *e);
/* "http://127.0.0.1:<port>" (or public_url); valid until emu_stop. */
const char *emu_base_url(const struct emu *e);
/* Stops serving and the background threads, flushes state, frees everything. */
void emu_stop(struct emu *e);

/* Offline key rotation for `saasd emulate rotate-key --data DIR`: the current key becomes the
 * previous one (still published in the JWKS), a new key signs from now on. The new kid is
 * copied into kid_out (at least 64 bytes). */
int emu_rotate_key_dir(const char *data_dir, char *kid_out, unsigned long kid_size);

#endif
