/* Config loading: the example is valid; every mistake is refused with its file, line and key. */
#include "cert_fixture.h"
#include "check.h"
#include "core/client_cert.h"
#include "core/config.h"
#include "core/err.h"
#include "core/httpd.h"

#include <string.h>

static char dir[256];

static int load_text(const char *text, char *err, size_t size, struct saasd_config **out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/saasd.conf", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    struct saasd_config *c = NULL;
    int rc = config_load(path, &c, err, size);
    if (out)
        *out = c;
    else
        config_free(c);
    return rc;
}

static int refused_with(const char *text, const char *expect)
{
    char err[1024];
    int rc = load_text(text, err, sizeof err, NULL);
    if (rc == 0 || !strstr(err, expect)) {
        printf("# got rc=%d err=%s (wanted %s)\n", rc, err, expect);
        return 0;
    }
    return 1;
}

#define ENTRA "entra = { tenant_id = \"t\", client_id = \"c\", secret_env = \"SAASD_TEST_SECRET\" }\n"

static void noop_handler(void *arg, const struct httpd_request *req, struct httpd_response *res) {}

/* check-config accepts an admin address exactly when serve can bind it. */
static void admin_addresses_match_serve(void)
{
    static const char *const addrs[] = {"127.0.0.1", "127.0.0.2", "localhost", "127.1", "::1", "0x7f000001", "127.0.0.1 "};
    char text[512], err[1024], name[256];
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        snprintf(text, sizeof text, ENTRA "admin = { listen = \"%s:0\", key_env = \"SAASD_TEST_ADMIN\" }\n", addrs[i]);
        int config_ok = load_text(text, err, sizeof err, NULL) == 0;
        struct httpd_options o = {.bind_addr = addrs[i], .port = 0};
        struct httpd *h = NULL;
        int serve_ok = httpd_start(&o, noop_handler, NULL, &h) == 0;
        httpd_stop(h);
        snprintf(name, sizeof name, "admin.listen \"%s:0\": check-config %s it and serve %s bind it", addrs[i],
                 config_ok ? "accepts" : "refuses", serve_ok ? "can" : "cannot");
        CHECK(config_ok == serve_ok, name);
    }
    CHECK(refused_with(ENTRA "admin = { listen = \"localhost:8081\", key_env = \"SAASD_TEST_ADMIN\" }\n",
                       "admin.listen: the address must be an IPv4 loopback address like 127.0.0.1, got \"localhost\""),
          "admin.listen localhost is refused with what to write instead");
    CHECK(refused_with(ENTRA "listen = \"localhost:8080\"\n", ":2: listen: the address must be an IPv4 address"),
          "listen localhost is refused at its line");
}

/* Relative paths in the config are relative to the config file's directory. */
static void relative_paths(void)
{
    char text[512], err[1024], want[600];
    struct saasd_config *c = NULL;
    check_write_file(dir, "client-secret", "from-next-to-the-config\n");
    snprintf(text, sizeof text,
             "data_dir = \"data\"\nentra = { tenant_id = \"t\", client_id = \"c\", secret_file = \"client-secret\" }\n"
             "rules = { dir = \"../r\" }\nadmin = { key_env = \"SAASD_TEST_ADMIN\" }\n");
    int rc = load_text(text, err, sizeof err, &c);
    CHECK(rc == 0 && c->client_secret && !strcmp(c->client_secret, "from-next-to-the-config"),
          "a relative secret_file is read next to the config file, not in the working directory");
    snprintf(want, sizeof want, "%s/data", dir);
    CHECK(rc == 0 && !strcmp(c->data_dir, want), "a relative data_dir is taken relative to the config file");
    snprintf(want, sizeof want, "%s/../r", dir);
    CHECK(rc == 0 && !strcmp(c->rules_dir, want), "a relative rules.dir is taken relative to the config file");
    if (rc)
        printf("# %s\n", err);
    config_free(c);
}

/* entra.certificate_file / private_key_file: exactly one credential, checked at load. */
static void certificates(void)
{
    struct test_cert a, b;
    char text[2048], err[1024];
    struct saasd_config *c = NULL;
    test_cert_make(&a, dir, "app", "saasd config test");
    test_cert_make(&b, dir, "other", "another certificate");

    snprintf(text, sizeof text, "entra = { tenant_id = \"t\", client_id = \"c\", certificate_file = \"%s\" }\n", a.both);
    CHECK(load_text(text, err, sizeof err, &c) == 0 && c && c->client_cert && !c->client_secret &&
              !strcmp(c->client_cert_file, a.both) && !c->client_key_file,
          "entra.certificate_file alone (certificate and key in one PEM) is a credential, loaded at config time");
    config_free(c);
    c = NULL;
    snprintf(text, sizeof text,
             "entra = { tenant_id = \"t\", client_id = \"c\", certificate_file = \"%s\", private_key_file = \"%s\" }\n",
             a.cert_only, a.key_only);
    CHECK(load_text(text, err, sizeof err, &c) == 0 && c && c->client_cert && !strcmp(c->client_key_file, a.key_only),
          "entra.private_key_file names the key when it sits in its own PEM");
    config_free(c);

    snprintf(text, sizeof text,
             "entra = {\n  tenant_id = \"t\",\n  client_id = \"c\",\n  secret_env = \"SAASD_TEST_SECRET\",\n"
             "  certificate_file = \"%s\",\n}\n",
             a.both);
    CHECK(refused_with(text, ":5: entra.certificate_file: a client secret (secret_env/secret_file) is configured too"),
          "a certificate and a secret together are refused, naming the key and its line");
    snprintf(text, sizeof text,
             "entra = {\n  tenant_id = \"t\",\n  client_id = \"c\",\n  secret_file = \"/nonexistent\",\n"
             "  certificate_file = \"%s\",\n}\n",
             a.both);
    CHECK(refused_with(text, ":5: entra.certificate_file: a client secret"), "secret_file and a certificate are refused too");
    snprintf(text, sizeof text,
             "entra = {\n  tenant_id = \"t\",\n  client_id = \"c\",\n  private_key_file = \"%s\",\n}\n", a.key_only);
    CHECK(refused_with(text, ":4: entra.private_key_file: only used with entra.certificate_file"),
          "a private key without its certificate is refused");
    snprintf(text, sizeof text,
             "entra = {\n  tenant_id = \"t\",\n  client_id = \"c\",\n  certificate_file = \"%s\",\n"
             "  private_key_file = \"%s\",\n}\n",
             a.cert_only, b.key_only);
    CHECK(refused_with(text, ":4: entra.certificate_file: the private key in") && refused_with(text, "does not match the certificate"),
          "a key that does not match the certificate stops start-up at entra.certificate_file's line");
    snprintf(text, sizeof text,
             "entra = {\n  tenant_id = \"t\",\n  client_id = \"c\",\n  certificate_file = \"%s\",\n"
             "  private_key_file = \"%s/missing.key\",\n}\n",
             a.cert_only, dir);
    CHECK(refused_with(text, ":5: entra.private_key_file: cannot read"), "an unreadable key file is refused at its own key");
    snprintf(text, sizeof text, "entra = { tenant_id = \"t\", client_id = \"c\", certificate_file = \"%s\" }\n", a.cert_only);
    CHECK(refused_with(text, "entra.certificate_file: no usable private key"), "a certificate file without its key is refused");
    test_cert_free(&a);
    test_cert_free(&b);
}

/* landing.*: one app (the publisher's) or a separate multitenant sign-in app. */
static void landing_block(void)
{
    char err[1024];
    struct saasd_config *c = NULL;
    CHECK(load_text(ENTRA, err, sizeof err, &c) == 0 && c && !strcmp(c->landing_client_id, "c") &&
              !strcmp(c->landing_secret, "s3cret") && !strcmp(c->landing_tenant, "organizations") &&
              !strcmp(c->landing_authority, "https://login.microsoftonline.com") && c->landing_cookie_secure == 1 &&
              c->landing_session_ttl_s == 1800 && !c->landing_redirect_uri,
          "without a landing block buyers sign in with the publisher app at organizations, Secure cookies, 30 min");
    config_free(c);
    c = NULL;
    setenv("SAASD_TEST_SIGNIN", "signin-s3cret", 1);
    CHECK(load_text(ENTRA "landing = { client_id = \"l\", secret_env = \"SAASD_TEST_SIGNIN\", tenant = \"common\",\n"
                          "  redirect_uri = \"https://isv.example/landing/callback\", cookie_secure = false, session_ttl = 600 }\n",
                    err, sizeof err, &c) == 0 && c && !strcmp(c->landing_client_id, "l") &&
              !strcmp(c->landing_secret, "signin-s3cret") && !strcmp(c->landing_tenant, "common") &&
              !strcmp(c->landing_redirect_uri, "https://isv.example/landing/callback") && !c->landing_cookie_secure &&
              c->landing_session_ttl_s == 600,
          "a separate sign-in app has its own client id, secret, tenant segment, redirect URI and cookie settings");
    config_free(c);
    CHECK(refused_with(ENTRA "landing = {\n  client_id = \"l\",\n}\n", ":3: landing: a separate sign-in app needs secret_env"),
          "a separate sign-in app without a secret is refused");
    CHECK(refused_with(ENTRA "landing = {\n  redirect_uri = \"/landing/callback\",\n}\n",
                       ":3: landing.redirect_uri: expected the public http(s) URL"),
          "a redirect URI that is not an absolute http(s) URL is refused");
    CHECK(refused_with(ENTRA "landing = { session_ttl = 5 }\n", "landing.session_ttl: 5 is out of range"),
          "a session lifetime under a minute is refused");
}

/* usage_reconcile = { interval, days, lag_s }: on by default, once a day; mistakes refused at their line. */
static void usage_reconcile_block(void)
{
    char err[1024];
    struct saasd_config *c = NULL;
    CHECK(load_text(ENTRA, err, sizeof err, &c) == 0 && c && c->usage_reconcile_interval_s == 86400 &&
              c->usage_reconcile_days == 3 && c->usage_reconcile_lag_s == 21600,
          "without a usage_reconcile block usage is reconciled once a day over 3 days, leaving out the last 6 hours");
    config_free(c);
    c = NULL;
    CHECK(load_text(ENTRA "usage_reconcile = { interval = 0, days = 7, lag_s = 0 }\n", err, sizeof err, &c) == 0 && c &&
              c->usage_reconcile_interval_s == 0 && c->usage_reconcile_days == 7 && c->usage_reconcile_lag_s == 0,
          "usage_reconcile.interval = 0 turns the periodic run off; days and lag_s are taken as given");
    config_free(c);
    CHECK(refused_with(ENTRA "usage_reconcile = {\n  interval = 3600,\n  every = 60,\n}\n",
                       ":4: usage_reconcile.every: unknown key"),
          "an unknown usage_reconcile key is refused with its line");
    CHECK(refused_with(ENTRA "usage_reconcile = { days = 8 }\n", "usage_reconcile.days: 8 is out of range [1, 7]"),
          "usage_reconcile.days over the query's 7 days is refused");
    CHECK(refused_with(ENTRA "usage_reconcile = { days = 0 }\n", "usage_reconcile.days: 0 is out of range [1, 7]"),
          "usage_reconcile.days of 0 is refused");
    CHECK(refused_with(ENTRA "usage_reconcile = { interval = -1 }\n", "usage_reconcile.interval: -1 is out of range"),
          "a negative usage_reconcile.interval is refused");
    CHECK(refused_with(ENTRA "usage_reconcile = { lag_s = \"6h\" }\n", "usage_reconcile.lag_s: expected an integer, got string"),
          "a usage_reconcile.lag_s that is not a number of seconds is refused");
    CHECK(refused_with(ENTRA "usage_reconcile = 86400\n", "usage_reconcile: expected a table, got number"),
          "usage_reconcile given as a bare number is refused");
}

int main(void)
{
    char *t = check_tmpdir("config");
    snprintf(dir, sizeof dir, "%s", t);
    free(t);
    setenv("SAASD_TEST_SECRET", "s3cret", 1);
    setenv("SAASD_TEST_ADMIN", "adm1n", 1);
    landing_block();
    usage_reconcile_block();

    struct saasd_config *c = NULL;
    char err[1024];
    CHECK(config_load("examples/saasd.conf", &c, err, sizeof err) == 0, "the shipped example config is valid");
    if (c) {
        CHECK(c->listen_port == 8080 && !strcmp(c->listen_addr, "127.0.0.1"), "listen is split into address and port");
        CHECK(c->client_secret && !strcmp(c->client_secret, "emulator-secret"), "the client secret is read from secret_file");
        CHECK(c->jwks_url && strstr(c->jwks_url, "/11111111-1111-4111-8111-111111111111/discovery/v2.0/keys"),
              "the JWKS URL defaults to the tenant's discovery keys under the authority");
        CHECK(!strcmp(c->webhook_audience, c->client_id), "the webhook audience defaults to the client id");
        config_free(c);
    }

    struct saasd_config *demo = NULL;
    CHECK(config_load("examples/demo.conf", &demo, err, sizeof err) == 0, "the shipped demo config is valid");
    c = NULL; /* freed above */
    config_load("examples/saasd.conf", &c, err, sizeof err);
    if (c && demo) {
        CHECK(demo->listen_port != c->listen_port && demo->admin_port != c->admin_port &&
                  strcmp(demo->marketplace_url, c->marketplace_url) != 0 && strcmp(demo->data_dir, c->data_dir) != 0,
              "make demo and make run use different ports, emulators and data directories");
    }
    config_free(demo);
    config_free(c);
    c = NULL;

    CHECK(load_text(ENTRA "admin = { key_env = \"SAASD_TEST_ADMIN\" }\n", err, sizeof err, &c) == 0 && c &&
              !strcmp(c->client_secret, "s3cret") && !strcmp(c->admin_key, "adm1n") && c->rule_cpu_ms == 2000 &&
              c->token_version == 2 && !strcmp(c->api_version, "2018-08-31"),
          "secrets come from the environment and omitted keys take documented defaults");
    config_free(c);

    CHECK(load_text(ENTRA, err, sizeof err, &c) == 0 && c && c->listen_max_connections == 1024 &&
              c->listen_per_client == 64 && c->listen_deadline_s == 10 && c->landing_threads == 16 &&
              c->landing_max_wait_ms == 3000 && c->webhook_verify_threads == 32,
          "the listener limits and pool sizes take their documented defaults");
    config_free(c);
    CHECK(load_text(ENTRA "listener = { per_client = 0, request_deadline_s = 0 }\nlanding = { threads = 4 }\n", err,
                    sizeof err, &c) == 0 && c && c->listen_per_client == 0 && c->listen_deadline_s == 0 &&
              c->landing_threads == 4,
          "listener.per_client and request_deadline_s can be switched off (0), landing.threads set");
    config_free(c);
    CHECK(refused_with(ENTRA "landing = { threads = 0 }\n", "landing.threads"), "a landing pool of no threads is refused");
    CHECK(refused_with(ENTRA "listn = \"127.0.0.1:1\"\n", ":2: listn: unknown key"), "an unknown top-level key is refused with its line");
    CHECK(refused_with(ENTRA "rules = {\n  dir = \"r\",\n  cpu_msec = 5,\n}\n", ":4: rules.cpu_msec: unknown key"),
          "an unknown nested key is refused with its own line");
    CHECK(refused_with("entra = {\n tenant_id = \"t\",\n client_id = 42,\n secret_env = \"SAASD_TEST_SECRET\" }\n",
                       ":3: entra.client_id: expected a string, got number"),
          "a wrong type is refused naming the key and line");
    CHECK(refused_with("entra = { client_id = \"c\", secret_env = \"SAASD_TEST_SECRET\" }\n", "entra.tenant_id: required key is missing"),
          "a missing required key is refused by name");
    CHECK(refused_with("entra = { tenant_id = \"t\", client_id = \"c\", secret_env = \"SAASD_NOT_SET_ANYWHERE\" }\n",
                       "environment variable SAASD_NOT_SET_ANYWHERE is not set"),
          "a secret whose environment variable is unset is refused");
    CHECK(refused_with("entra = { tenant_id = \"t\", client_id = \"c\" }\n",
                       "entra: one of secret_env, secret_file or certificate_file is required"),
          "the credential cannot be missing: neither a secret nor a certificate is refused");
    CHECK(refused_with("entra = { tenant_id = \"t\", client_id = \"c\", client_secret = \"inline\" }\n",
                       "entra.client_secret: unknown key"),
          "an inline secret is not a key the config accepts");
    CHECK(refused_with(ENTRA "rules = { cpu_ms = 60000 }\n", "rules.cpu_ms: 60000 is out of range"),
          "a rule CPU limit beyond the marketplace's window is refused");
    CHECK(refused_with(ENTRA "admin = { listen = \"0.0.0.0:8081\", key_env = \"SAASD_TEST_ADMIN\" }\n",
                       "admin.listen: the admin API binds to loopback only"),
          "the admin API cannot bind beyond loopback");
    CHECK(refused_with(ENTRA "x = = 1\n", ":2:"), "a syntax error is reported with its line");
    CHECK(refused_with(ENTRA "data_dir = os.getenv('HOME')\n", "'os' is not defined"), "the config sandbox has no os library");
    CHECK(refused_with(ENTRA "while true do end\n", "too long"), "an endless config is stopped");
    CHECK(refused_with(ENTRA "log_level = \"loud\"\n", "log_level: expected debug, info, warn or error"), "a bad log level is refused");
    certificates();
    admin_addresses_match_serve();
    relative_paths();

    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.conf", dir);
    CHECK(config_load(missing, &c, err, sizeof err) == SAASD_ECONFIG && strstr(err, "cannot read config file"),
          "a missing config file is reported");
    return CHECK_DONE();
}
