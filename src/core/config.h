/* saasd's configuration, as plain C data. The file itself is Lua (see examples/saasd.conf),
 * evaluated in a sandbox by src/engine/config_load.c; core modules only see this struct. */
#ifndef SAASD_CONFIG_H
#define SAASD_CONFIG_H

#include <stddef.h>

#define MARKETPLACE_RESOURCE_ID "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"

struct client_cert;

/* Where events go (daemon/sinks.c has one row per kind: how it formats and delivers). */
enum sink_kind { SINK_WEBHOOK, SINK_SMTP, SINK_SLACK, SINK_TEAMS, SINK_KIND_COUNT };

/* One configured sink: sinks.<name> = { kind = ..., ... } in the config file. */
struct sink_config {
    char *name;
    enum sink_kind kind;
    char *url;                /* url, or read from url_file/url_env (chat webhook URLs carry a token) */
    char *secret;             /* webhook: HMAC key from secret_file/secret_env */
    char **events;            /* event type globs ("subscription.*"); NULL-terminated; empty = all */
    char **offers;            /* offer ids; NULL-terminated; empty = all */
    char *from;               /* smtp: envelope and From: address */
    char **to;                /* smtp: recipients, NULL-terminated */
    char *username;           /* smtp: AUTH user (password from password_file/password_env) */
    char *password;
    int starttls;             /* smtp: 1 = require STARTTLS on smtp:// (default), 0 = plain */
    char *ca_file;            /* smtp: PEM bundle of the CAs that may sign the server's certificate
                                 (instead of the system's); NULL = the system's */
    char *templates;          /* smtp: directory of <type>.subject/.txt/.html templates */
    int timeout_ms;           /* per delivery, default 10000 */
};

struct saasd_config {
    char *path;               /* the file it came from */
    char sha256[65];          /* hex SHA-256 of its text as loaded: a reload says when it changed since */

    /* public listener: /landing, /webhook, /healthz, /metrics */
    char *listen_addr;        /* default 127.0.0.1 */
    int listen_port;          /* default 8080 */
    size_t max_body;          /* webhook body cap, default 64 KiB */
    int listen_max_connections; /* listener.max_connections, default 1024 */
    int listen_per_client;    /* listener.per_client: connections per IP address, default 64; 0 = no cap */
    int listen_deadline_s;    /* listener.request_deadline_s: whole request within, default 10; 0 = none */

    /* Work off the public listener's event loop: separate bounded pools, so one kind of
     * request cannot take the threads of another */
    int landing_threads;      /* landing.threads: landing pages in progress, default 16 */
    int landing_max_wait_ms;  /* landing.max_wait_ms: Retry-After waits per marketplace call of a
                                 landing page, default 3000; then the page says "try again" */
    int webhook_verify_threads; /* webhook.verify_threads: first-seen tokens being verified, default 32 */

    /* admin listener: loopback only, needs the key */
    char *admin_addr;         /* default 127.0.0.1; refused unless loopback */
    int admin_enabled;        /* admin.enabled, default true */
    int admin_port;           /* default 8081; 0 = any free port */
    char *admin_key;          /* from admin.key_env or admin.key_file; required when enabled */
    char *admin_key_file;     /* when set and missing, `serve` creates it with a random key */

    char *data_dir;           /* LMDB directory, default "var/saasd" */
    int log_level;            /* enum log_level */

    /* Entra ID (publisher token) */
    char *authority_url;      /* default https://login.microsoftonline.com */
    char *tenant_id;
    char *client_id;
    char *client_secret;      /* from entra.secret_env or entra.secret_file, never inline;
                                 NULL when the app signs in with a certificate */
    char *client_cert_file;   /* entra.certificate_file: PEM with the certificate (and its key) */
    char *client_key_file;    /* entra.private_key_file: the key's PEM when separate, else NULL */
    char *client_secret_env;  /* entra.secret_env: the variable's name, else NULL */
    char *client_secret_file; /* entra.secret_file, else NULL: a reload reads it again */
    struct client_cert *client_cert; /* loaded and checked from those files by config_load;
                                 NULL with a secret (exactly one of the two is set) */
    int token_version;        /* 1 (resource=) or 2 (scope=.../.default); default 2 */
    char *resource;           /* default MARKETPLACE_RESOURCE_ID */

    /* Marketplace API */
    char *marketplace_url;    /* default https://marketplaceapi.microsoft.com */
    char *api_version;        /* default 2018-08-31 */
    int mp_max_attempts;      /* tries per repeat-safe call; 0 = client default (5) */
    int mp_retry_base_ms;     /* first backoff; 0 = client default (1000) */
    int mp_retry_cap_ms;      /* backoff cap; 0 = client default (60000) */
    int mp_poll_interval_ms;  /* Operation-Location polling; 0 = client default (2000) */

    /* Webhook JWT validation */
    char *webhook_audience;   /* the publisher's app id (aud); default client_id */
    char *webhook_tenant;     /* tid; default tenant_id */
    char *webhook_app_id;     /* azp/appid of the caller; default MARKETPLACE_RESOURCE_ID */
    char *jwks_url;           /* default <authority>/<tenant>/discovery/v2.0/keys */
    int jwt_skew_s;           /* default 300 */

    /* Rules */
    char *rules_dir;          /* default "rules" */
    char *rules_shadow_dir;   /* rules.shadow_dir: a candidate generation run in shadow; NULL = none */
    int rule_cpu_ms;          /* per handler call, default 2000 */
    size_t rule_memory;       /* bytes per Lua state, default 32 MiB */
    char **http_allow;        /* hosts rules may call through ctx.http; NULL-terminated */
    int rule_http_timeout_ms; /* default 3000 */
    int unknown_offers_default; /* rules.unknown_offers = "default": default.lua decides offers without a
                                 * file of their own; "pending" (0, the default): provision goes pending */
    int rule_timeout_accepts; /* on a rule timeout in a ChangePlan/Quantity: 1 accept, 0 reject (default) */

    /* Workers and reconciliation */
    int workers;              /* inbox workers, default 2 */
    int reconcile_interval_s; /* default 300; 0 = off */
    /* Periodic usage reconciliation (usage_recon.c): once a day by default, over the last 3
     * UTC days, leaving out what was sent less than 6 hours ago (Microsoft's report lags), so
     * that every complete day is checked at least once whatever the time of day of the run. */
    int usage_reconcile_interval_s; /* default 86400; 0 = off */
    int usage_reconcile_days;       /* default 3 (1..7) */
    int usage_reconcile_lag_s;      /* default 21600 */

    /* Buyer sign-in on the landing page (OpenID Connect against Entra ID). Without a landing
     * block the publisher app (entra.*) signs buyers in too: one app or two. */
    char *landing_client_id;     /* landing.client_id; default client_id */
    char *landing_secret;        /* landing.secret_env/secret_file; default client_secret; NULL
                                    = sign the code exchange with client_cert */
    int landing_own_secret;      /* 1 = landing.secret_env/secret_file; 0 = the publisher app's
                                    credential (a credential reload gives the landing the new one) */
    char *landing_authority;     /* landing.authority; default authority_url */
    char *landing_tenant;        /* landing.tenant: "organizations" (default), "common" or a tenant id */
    char *landing_redirect_uri;  /* landing.redirect_uri: public URL of /landing/callback;
                                    NULL = http://<listen address>:<port>/landing/callback (the
                                    port the listener got, for listen ports of 0) */
    int landing_cookie_secure;   /* landing.cookie_secure, default 1 */
    int landing_session_ttl_s;   /* landing.session_ttl, default 1800 */
    int landing_skew_s;          /* landing.skew: ID token exp/nbf/iat leeway, default 300 */

    /* Metering (usage events) */
    int metering_interval_s;  /* seconds between sending passes, default 60; 0 = off */
    int metering_grace_s;     /* an hour is sent this long after it closes, default 300 */

    /* Events and their sinks */
    struct sink_config *sinks;
    int nsinks;
    int events_retry_base_ms; /* first backoff after a failed delivery, default 1000 */
    int events_retry_cap_ms;  /* backoff cap, default 300000 */
    int events_poll_ms;       /* how often an idle sink looks for new events, default 500 */
    int events_keep_s;        /* delivered events are kept this long, default 7 days */
    int events_prune_every_s; /* seconds between pruning passes, default 60 */
};

/* Load and validate a config file. On failure, returns SAASD_ECONFIG and writes a message
 * naming the file, line and key into err. */
int config_load(const char *path, struct saasd_config **out, char *err, size_t err_size);
void config_free(struct saasd_config *c);

#endif
