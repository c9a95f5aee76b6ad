/* What SIGHUP does (daemon_reload): the rules, and the publisher app's Entra ID credential
 * read again from the files the config names, so that a certificate or secret can be rotated
 * without a restart and without dropping a webhook. The config file itself is not read again:
 * which files (and which kind of credential) stay as at start.
 *
 * A new credential is checked in full before anything changes (the certificate and its key
 * load and match and the certificate has not expired; a secret file is readable and not
 * empty); a broken one leaves the current one in use, logs one line naming the file and the
 * fix, and counts saasd_credential_reloads_total{result="failed"}. A good one goes to the token
 * cache (the next token request uses it; the cached token is kept until it is due) and, when
 * the landing page signs buyers in with the publisher app, to the sign-in client. */
#include "daemon/daemon.h"

#include "core/client_cert.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/oidc.h"
#include "core/secret_file.h"
#include "core/token_cache.h"
#include "engine/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One reload at a time (SIGHUP, tests): each swaps cfg's credential fields. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

/* A credential read again: exactly one of secret and cert. */
struct fresh_credential {
    char *secret;
    struct client_cert *cert;
};

static void fresh_free(struct fresh_credential *c)
{
    if (c->secret) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    client_cert_free(c->cert);
}

static int env_secret_set(const struct saasd_config *cfg)
{
    const char *v = cfg->client_secret_env ? getenv(cfg->client_secret_env) : NULL;
    return v && *v;
}

static int certificate_configured(const struct saasd_config *cfg) { return cfg->client_cert_file != NULL; }
static int secret_file_configured(const struct saasd_config *cfg)
{
    return cfg->client_secret_file && !env_secret_set(cfg);
}

/* entra.certificate_file (+ private_key_file): loads, matches, and has not expired. */
static int load_certificate(const struct saasd_config *cfg, struct fresh_credential *out, char *err, size_t size)
{
    int rc = client_cert_load(cfg->client_cert_file, cfg->client_key_file, &out->cert, err, size);
    if (rc == 0 && client_cert_not_after(out->cert) <= time(NULL)) {
        snprintf(err, size, "the certificate in %s has expired: Entra refuses it (AADSTS700027); put a current "
                 "certificate and its key there",
                 cfg->client_cert_file);
        rc = SAASD_ECONFIG;
    }
    return rc;
}

/* entra.secret_file: readable and not empty. */
static int load_secret_file(const struct saasd_config *cfg, struct fresh_credential *out, char *err, size_t size)
{
    int rc = secret_file_read(cfg->client_secret_file, &out->secret);
    if (rc)
        snprintf(err, size, "cannot read %s (%s): put the new secret's Value there, readable by the daemon",
                 cfg->client_secret_file, rc == SAASD_ENOMEM ? "out of memory" : strerror(errno));
    else if (!*out->secret) {
        snprintf(err, size, "%s is empty: put the new secret's Value there (not its ID)", cfg->client_secret_file);
        rc = SAASD_ECONFIG;
    }
    return rc;
}

/* Where the credential comes from, first match wins (the order config_load reads them in):
 * the config key, and how a reload reads it again (NULL: it cannot be). */
static const struct {
    const char *key;
    int (*configured)(const struct saasd_config *cfg);
    int (*load)(const struct saasd_config *cfg, struct fresh_credential *out, char *err, size_t size);
} sources[] = {
    {"entra.certificate_file", certificate_configured, load_certificate},
    {"entra.secret_env", env_secret_set, NULL}, /* a running process's environment does not change */
    {"entra.secret_file", secret_file_configured, load_secret_file},
};

/* Hand the new credential to the token cache and, when it shares it, the landing's sign-in;
 * keep cfg's fields current (they hold the credential in force). */
static int install(struct daemon *d, struct fresh_credential *c)
{
    struct saasd_config *cfg = d->cfg;
    int rc = token_cache_set_credential(d->tokens, c->secret, c->cert);
    struct oidc *o = d->oidc;
    if (rc == 0 && o && !cfg->landing_own_secret)
        rc = oidc_set_credential(o, c->secret, c->cert);
    if (rc)
        return rc;
    struct fresh_credential old = {cfg->client_secret, cfg->client_cert};
    cfg->client_secret = c->secret;
    cfg->client_cert = c->cert;
    if (c->secret && !cfg->landing_own_secret) {
        free(cfg->landing_secret);
        cfg->landing_secret = strdup(c->secret);
    }
    *c = old; /* the caller frees what was replaced */
    return 0;
}

static int same_credential(const struct saasd_config *cfg, const struct fresh_credential *c)
{
    if (c->cert)
        return cfg->client_cert && !strcmp(client_cert_x5t(cfg->client_cert), client_cert_x5t(c->cert));
    return cfg->client_secret && !strcmp(cfg->client_secret, c->secret);
}

/* The credential now in force (cfg's), after a reload (reload_lock held). */
static void log_reloaded(const struct saasd_config *cfg, const char *key, int same)
{
    const char *what = same ? "the Entra ID credential was read again and is unchanged"
                            : "the Entra ID credential was reloaded: the next token request uses it";
    if (cfg->client_cert)
        log_info("daemon", what, "source", key, "file", cfg->client_cert_file, "thumbprint",
                 client_cert_thumbprint_hex(cfg->client_cert), "check",
                 "POST /admin/credential/check fetches a token with it now");
    else
        log_info("daemon", what, "source", key, "file", cfg->client_secret_file, "check",
                 "POST /admin/credential/check fetches a token with it now");
}

/* The config file is not read again: say so when it changed since the start, so that an edit
 * (another credential file, a secret instead of a certificate, any other key) is not taken
 * for applied. */
static void warn_if_config_changed(const struct saasd_config *cfg)
{
    FILE *f = fopen(cfg->path, "r");
    char *text = NULL, hex[CRYPTO_SHA256_HEX_LEN];
    size_t cap = 0;
    ssize_t n = f ? getdelim(&text, &cap, 0, f) : -1; /* a config holds no NUL: the whole file */
    if (f)
        fclose(f);
    if (n >= 0 && crypto_sha256_hex(text, (size_t)n, hex) == 0 && strcmp(hex, cfg->sha256))
        log_warn("daemon", "the config file changed since saasd started, and a reload reads only the credential's "
                 "files again: restart saasd to apply the other changes (another file, a secret instead of a "
                 "certificate or the other way round, any other key)",
                 "config", cfg->path);
    free(text);
}

void daemon_note_certificate(const struct saasd_config *cfg)
{
    if (cfg->client_cert)
        metrics_set("saasd_credential_certificate_expiry_timestamp_seconds", NULL,
                    (double)client_cert_not_after(cfg->client_cert));
}

int daemon_reload_credential(struct daemon *d)
{
    struct saasd_config *cfg = d->cfg;
    warn_if_config_changed(cfg);
    size_t i = 0, n = sizeof sources / sizeof sources[0];
    while (i < n && !sources[i].configured(cfg))
        i++;
    if (i == n)
        return SAASD_EINTERNAL; /* config_load requires one */
    if (!sources[i].load) {
        log_warn("daemon", "the client secret comes from the environment, which does not change in a running "
                 "process: restart saasd to use a new one (or name it in entra.secret_file)",
                 "source", sources[i].key, "variable", cfg->client_secret_env);
        return 0;
    }
    char err[700] = "";
    struct fresh_credential c = {0};
    pthread_mutex_lock(&reload_lock);
    int rc = sources[i].load(cfg, &c, err, sizeof err);
    int same = rc == 0 && same_credential(cfg, &c);
    if (rc == 0 && (rc = install(d, &c)) != 0)
        snprintf(err, sizeof err, "could not install it: %s", saasd_strerror(rc));
    if (rc) {
        log_error("daemon", "the Entra ID credential was NOT reloaded: the current one stays in use", "source",
                  sources[i].key, "error", err);
        metrics_inc("saasd_credential_reloads_total", "result=\"failed\"");
    } else {
        log_reloaded(cfg, sources[i].key, same);
        metrics_inc("saasd_credential_reloads_total", "result=\"ok\"");
        daemon_note_certificate(cfg);
    }
    pthread_mutex_unlock(&reload_lock);
    fresh_free(&c); /* the broken new one, or the replaced old one */
    return rc;
}

int daemon_reload(struct daemon *d)
{
    int rc = engine_reload(d->engine); /* a broken rule file keeps the old rules; the log says why */
    int crc = daemon_reload_credential(d);
    return rc ? rc : crc;
}
