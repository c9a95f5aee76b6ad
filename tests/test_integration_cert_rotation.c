/* Rotating the publisher app's Entra ID credential without a restart (daemon_reload, what
 * SIGHUP does): the files named by entra.certificate_file / entra.secret_file are read again,
 * the next token request carries the new credential (the emulator, like Entra, accepts only
 * the certificates registered for the app, so what it accepts shows what was sent), webhooks
 * keep being answered meanwhile, the buyer sign-in signs with the new certificate too, and a
 * broken replacement keeps the current credential with one log line naming the file and a
 * failure counted. In-process daemon against the in-process emulator. */
#include "cert_fixture.h"
#include "it_support.h"

#include "core/client_cert.h"
#include "core/metrics.h"

#include <pthread.h>
#include <stdatomic.h>

#define OK_SERIES "result=\"ok\""
#define FAILED_SERIES "result=\"failed\""

/* The emulator and the HTTP client of one scenario (it_setup makes a new client each time). */
static void teardown(struct emu *emu)
{
    emu_stop(emu);
    http_client_free(it_http);
    it_http = NULL;
}

static double reloads(const char *series) { return metrics_value("saasd_credential_reloads_total", series); }

static double expiry_gauge(void)
{
    return metrics_value("saasd_credential_certificate_expiry_timestamp_seconds", NULL);
}

/* The certificate's notAfter as Unix time. */
static double not_after(X509 *x)
{
    struct tm tm;
    return ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1 ? (double)timegm(&tm) : -1;
}

static void put_file(const char *from, const char *to)
{
    char buf[16384];
    FILE *f = fopen(from, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    it_write_file(to, buf); /* rename: the daemon never reads half a file */
    chmod(to, 0600);
}

/* POST /admin/credential/check: the HTTP status; the credential it names into cred. */
static long credential_check(char *cred, size_t size)
{
    long st = 0;
    json_t *r = it_admin("POST", "/admin/credential/check", NULL, &st);
    snprintf(cred, size, "%s", it_str(r, "credential"));
    if (st != 200)
        printf("# credential check: %ld %s %s\n", st, it_str(r, "result"), it_str(r, "error"));
    json_decref(r);
    return st;
}

/* HTTP status of the emulator's latest token request (client credentials or code grant). */
static long last_token_status(void)
{
    long st, last = 0;
    json_t *r = it_emu("GET", "/_emulator/calls?path=*/oauth2/v2.0/token", NULL, &st);
    json_t *calls = json_object_get(r, "calls");
    if (json_array_size(calls))
        last = (long)json_integer_value(json_object_get(json_array_get(calls, json_array_size(calls) - 1), "status"));
    json_decref(r);
    return last;
}

static void register_cert(X509 *cert)
{
    char path[256], *pem = test_cert_pem(cert);
    long st;
    snprintf(path, sizeof path, "/_emulator/apps/%s/certificates", EMU_DEFAULT_CLIENT);
    json_decref(it_emu("POST", path, json_pack("{s:s}", "certificate", pem), &st));
    free(pem);
}

static void unregister_cert(const char *thumbprint)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/_emulator/apps/%s/certificates/%s", EMU_DEFAULT_CLIENT, thumbprint);
    json_decref(it_emu("DELETE", path, NULL, &st));
}

static void hex_thumbprint(X509 *x, char hex[CLIENT_CERT_HEX_LEN])
{
    char x5t[CLIENT_CERT_X5T_LEN], s256[CLIENT_CERT_X5T_S256_LEN];
    client_cert_thumbprints(x, x5t, s256, hex);
}

/* ---- webhooks posted while the credential is reloaded ---- */

struct hooks {
    atomic_int stop;
    int sent, answered_200;
    char token[8192], sub[64];
};

static void *post_hooks(void *arg)
{
    struct hooks *h = arg;
    char url[256];
    snprintf(url, sizeof url, "%s/webhook", it_public_url);
    while (!atomic_load(&h->stop) || h->sent < 5) {
        char op[CRYPTO_UUID_LEN];
        long st = 0;
        crypto_uuid(op);
        json_decref(it_call("POST", url,
                            json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", op, "activityId", op, "subscriptionId",
                                      h->sub, "action", "Renew", "status", "Succeeded"),
                            h->token, &st, NULL));
        h->sent++;
        h->answered_200 += st == 200;
        usleep(5000);
    }
    return NULL;
}

static void start_hooks(struct hooks *h, const char *sub, pthread_t *t)
{
    long st;
    json_t *tok = it_emu("POST", "/_emulator/tokens", json_pack("{s:s}", "kind", "webhook"), &st);
    snprintf(h->token, sizeof h->token, "%s", it_str(tok, "access_token"));
    json_decref(tok);
    snprintf(h->sub, sizeof h->sub, "%s", sub);
    pthread_create(t, NULL, post_hooks, h);
    usleep(50 * 1000); /* some are in flight when the reload comes */
}

/* A piece of the key's PEM body (its second line), to look for in logs. */
static void pem_key_line(EVP_PKEY *key, char *out, size_t size)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    long n = BIO_get_mem_data(b, &data);
    const char *nl = data ? memchr(data, '\n', (size_t)n) : NULL;
    snprintf(out, size, "%.40s", nl ? nl + 1 : "unreadable key");
    BIO_free(b);
}

/* ---- log capture ---- */

static int capture_start(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    log_set_fd(fd);
    return fd;
}

static void capture_end(int fd, char *buf, size_t size)
{
    log_set_fd(2);
    ssize_t n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
}

/* ---- certificate ---- */

/* A, then B replacing it: B is what the emulator sees next; webhooks are answered throughout;
 * the buyer sign-in uses B too. */
static void certificate_rotates(struct daemon *d, const char *dir, const char *pem, struct test_cert *a,
                                struct test_cert *b)
{
    char cred[128], hex_a[CLIENT_CERT_HEX_LEN], hex_b[CLIENT_CERT_HEX_LEN], want[160], sub[64];
    hex_thumbprint(a->cert, hex_a);
    hex_thumbprint(b->cert, hex_b);
    snprintf(want, sizeof want, "certificate %s", hex_a);
    CHECK(credential_check(cred, sizeof cred) == 200 && !strcmp(cred, want),
          "before the rotation, a token is fetched with certificate A");
    it_offer("rot-offer");
    CHECK(it_buy_and_land("rot-offer", 2, sub, sizeof sub) == 200,
          "before the rotation, a buyer signs in (the code exchange signed with A) and confirms");

    /* the operator registers B with the app and removes A: A no longer gets a token */
    register_cert(b->cert);
    unregister_cert(hex_a);
    CHECK(credential_check(cred, sizeof cred) == 502 && last_token_status() == 401,
          "once A is removed from the app registration, the emulator refuses a token request signed with A");

    CHECK(expiry_gauge() == not_after(a->cert),
          "at start saasd_credential_certificate_expiry_timestamp_seconds is A's notAfter");
    double ok0 = reloads(OK_SERIES), failed0 = reloads(FAILED_SERIES);
    struct hooks h = {0};
    pthread_t t;
    start_hooks(&h, sub, &t);
    put_file(b->both, pem);
    int rc = daemon_reload(d);
    usleep(100 * 1000);
    atomic_store(&h.stop, 1);
    pthread_join(t, NULL);
    CHECK(rc == 0 && reloads(OK_SERIES) == ok0 + 1 && reloads(FAILED_SERIES) == failed0,
          "a reload after the file was replaced with B succeeds and is counted in "
          "saasd_credential_reloads_total{result=\"ok\"}");
    CHECK(expiry_gauge() == not_after(b->cert) && not_after(b->cert) != not_after(a->cert),
          "after the reload the expiry gauge is B's notAfter (B outlives A by 35 days)");
    printf("# %d webhooks posted around the reload, %d answered 200\n", h.sent, h.answered_200);
    CHECK(h.sent >= 5 && h.answered_200 == h.sent, "every webhook posted during the reload is answered 200");

    snprintf(want, sizeof want, "certificate %s", hex_b);
    CHECK(credential_check(cred, sizeof cred) == 200 && !strcmp(cred, want) && last_token_status() == 200,
          "after the reload the next token request carries B: the emulator, which knows only B now, issues a token");
    CHECK(it_buy_and_land("rot-offer", 3, sub, sizeof sub) == 200 && last_token_status() == 200,
          "after the reload the buyer sign-in signs its code exchange with B (A is no longer registered)");
}

/* Each broken replacement keeps the current certificate (cur): the reload fails and says so
 * with the file's name, the failure is counted, and a token is still obtained with cur. */
static void broken_certificate_keeps_current(struct daemon *d, const char *dir, const char *pem,
                                             struct test_cert *cur, struct test_cert *other)
{
    char path[600], cred[128], hex[CLIENT_CERT_HEX_LEN], want[160], log[16384];
    hex_thumbprint(cur->cert, hex);
    snprintf(want, sizeof want, "certificate %s", hex);
    EVP_PKEY *key = cur->key;
    char key_line[48], other_line[48];
    pem_key_line(cur->key, key_line, sizeof key_line);
    pem_key_line(other->key, other_line, sizeof other_line);
    X509 *expired = test_cert_self_signed(key, "expired", -1);
    const struct {
        const char *what;
        X509 *cert;
        EVP_PKEY *key;
        const char *pass, *text;
    } broken[] = {
        {"a file that is not PEM", NULL, NULL, NULL, "not a certificate\n"},
        {"a key that does not match the certificate", cur->cert, other->key, NULL, NULL},
        {"an encrypted key", cur->cert, key, "passphrase", NULL},
        {"an expired certificate", expired, key, NULL, NULL},
        {"a missing file", NULL, NULL, NULL, NULL},
    };
    snprintf(path, sizeof path, "%s/broken.pem", dir);
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        if (broken[i].cert)
            test_cert_write(path, broken[i].cert, broken[i].key, broken[i].pass);
        else if (broken[i].text)
            check_write_file(dir, "broken.pem", "%s", broken[i].text);
        if (broken[i].cert || broken[i].text)
            rename(path, pem);
        else
            unlink(pem);
        double failed0 = reloads(FAILED_SERIES);
        int fd = capture_start(dir, "reload.log");
        int rc = daemon_reload_credential(d);
        capture_end(fd, log, sizeof log);
        char name[200];
        snprintf(name, sizeof name, "%s: the reload fails, the log line names %s, and the failure is counted",
                 broken[i].what, pem);
        CHECK(rc != 0 && strstr(log, "NOT reloaded") && strstr(log, pem) && reloads(FAILED_SERIES) == failed0 + 1,
              name);
        const char *line = strstr(log, "NOT reloaded");
        line = line ? line : log;
        printf("# %s: %.*s\n", broken[i].what, (int)strcspn(line, "\n"), line);
        snprintf(name, sizeof name, "%s: a token is still obtained with the current certificate", broken[i].what);
        CHECK(credential_check(cred, sizeof cred) == 200 && !strcmp(cred, want) && last_token_status() == 200, name);
        CHECK(!strstr(log, key_line) && !strstr(log, other_line), "the log carries no key material");
    }
    X509_free(expired);
    put_file(cur->both, pem); /* whole again */
}

static void certificate_rotation(void)
{
    char dir[256], rules[512], pem[600], extra[1200];
    struct emu *emu = it_setup("cert-rotation", dir, rules);
    if (!emu)
        return;
    struct test_cert a, b;
    test_cert_make(&a, dir, "a", "saasd rotation A");
    test_cert_make(&b, dir, "b", "saasd rotation B");
    X509_free(b.cert); /* B valid for longer than A, so the expiry gauge tells them apart */
    b.cert = test_cert_self_signed(b.key, "saasd rotation B", 400);
    test_cert_write(b.both, b.cert, b.key, NULL);
    test_cert_write(b.cert_only, b.cert, NULL, NULL);
    register_cert(a.cert);
    snprintf(pem, sizeof pem, "%s/entra-app.pem", dir);
    put_file(a.both, pem);
    snprintf(extra, sizeof extra,
             "entra = { authority = \"%s\", tenant_id = \"%s\", client_id = \"%s\", certificate_file = \"%s\" }\n",
             it_emu_url, EMU_DEFAULT_TENANT, EMU_DEFAULT_CLIENT, pem);
    it_write_rule(rules, "rot-offer", "return {}\n");
    struct daemon *d = it_start_in(dir, 0, extra);
    if (d) {
        certificate_rotates(d, dir, pem, &a, &b);
        broken_certificate_keeps_current(d, dir, pem, &b, &a);
        daemon_stop(d);
    }
    teardown(emu);
    test_cert_free(&a);
    test_cert_free(&b);
    check_rm_rf(dir);
}

/* ---- client secret ---- */

#define SECRET_APP "33333333-3333-4333-8333-333333333333"

static void app_secret(const char *secret)
{
    long st;
    json_decref(it_emu("POST", "/_emulator/apps",
                       json_pack("{s:s, s:s, s:s}", "tenantId", EMU_DEFAULT_TENANT, "clientId", SECRET_APP,
                                 "clientSecret", secret),
                       &st));
}

/* entra.secret_file is read again on reload; an empty or missing file keeps the current one. */
static void secret_rotation(void)
{
    char dir[256], rules[512], file[600], extra[1200], cred[128], log[16384];
    struct emu *emu = it_setup("secret-rotation", dir, rules);
    if (!emu)
        return;
    app_secret("first-secret-value");
    snprintf(file, sizeof file, "%s/client-secret", dir);
    check_write_file(dir, "client-secret", "first-secret-value\n");
    snprintf(extra, sizeof extra,
             "entra = { authority = \"%s\", tenant_id = \"%s\", client_id = \"%s\", secret_file = \"%s\" }\n",
             it_emu_url, EMU_DEFAULT_TENANT, SECRET_APP, file);
    struct daemon *d = it_start_in(dir, 0, extra);
    if (!d) {
        teardown(emu);
        return;
    }
    CHECK(credential_check(cred, sizeof cred) == 200 && !strcmp(cred, "client secret"),
          "a token is fetched with the secret from entra.secret_file");
    app_secret("second-secret-value"); /* the operator makes a new secret and deletes the old one */
    CHECK(credential_check(cred, sizeof cred) == 502 && last_token_status() == 401,
          "once the app's secret changed, the emulator refuses the old one");
    double ok0 = reloads(OK_SERIES);
    it_write_file(file, "second-secret-value\n");
    CHECK(daemon_reload(d) == 0 && reloads(OK_SERIES) == ok0 + 1,
          "a reload after the secret file was rewritten succeeds and is counted ok");
    CHECK(credential_check(cred, sizeof cred) == 200 && last_token_status() == 200,
          "after the reload the next token request carries the new secret: the emulator issues a token");

    const char *broken[] = {"", NULL}; /* an empty file, then no file */
    for (size_t i = 0; i < 2; i++) {
        if (broken[i])
            it_write_file(file, broken[i]);
        else
            unlink(file);
        double failed0 = reloads(FAILED_SERIES);
        int fd = capture_start(dir, "reload.log");
        int rc = daemon_reload_credential(d);
        capture_end(fd, log, sizeof log);
        CHECK(rc != 0 && strstr(log, "NOT reloaded") && strstr(log, file) && reloads(FAILED_SERIES) == failed0 + 1,
              broken[i] ? "an empty secret file is refused on reload, naming the file, and counted failed"
                        : "a missing secret file is refused on reload, naming the file, and counted failed");
        CHECK(credential_check(cred, sizeof cred) == 200 && last_token_status() == 200 &&
                  !strstr(log, "second-secret-value"),
              broken[i] ? "after the empty file, a token is still obtained with the current secret (never logged)"
                        : "after the missing file, a token is still obtained with the current secret (never logged)");
    }
    daemon_stop(d);
    teardown(emu);
    check_rm_rf(dir);
}

/* entra.secret_env: the environment of a running process does not change; a reload says so. */
static void env_secret_needs_restart(void)
{
    char dir[256], rules[512], log[16384];
    struct emu *emu = it_setup("env-secret", dir, rules);
    if (!emu)
        return;
    struct daemon *d = it_start_in(dir, 0, NULL); /* secret_env = "SAASD_IT_SECRET" */
    if (d) {
        double ok0 = reloads(OK_SERIES), failed0 = reloads(FAILED_SERIES);
        int fd = capture_start(dir, "reload.log");
        int rc = daemon_reload(d);
        capture_end(fd, log, sizeof log);
        CHECK(rc == 0 && strstr(log, "restart saasd") && strstr(log, "SAASD_IT_SECRET") &&
                  reloads(OK_SERIES) == ok0 && reloads(FAILED_SERIES) == failed0 && !strstr(log, "it-secret"),
              "with entra.secret_env a reload keeps the secret and warns that a new one needs a restart");
        CHECK(!strstr(log, "config file changed"), "an unchanged config file is not reported as changed");
        char conf[600];
        snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
        FILE *f = fopen(conf, "a");
        fputs("-- entra.secret_file = \"/etc/saasd/client-secret\"\n", f);
        fclose(f);
        fd = capture_start(dir, "reload2.log");
        daemon_reload(d);
        capture_end(fd, log, sizeof log);
        CHECK(strstr(log, "config file changed since saasd started") && strstr(log, conf),
              "a reload after the config file was edited warns that only the credential's files were read again");
        daemon_stop(d);
    }
    teardown(emu);
    check_rm_rf(dir);
}

/* ---- SIGHUP to `saasd serve` ---- */

static pid_t serve(const char *dir, const char *conf, unsigned short port)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char bin[300];
    snprintf(bin, sizeof bin, "%s/saasd", build);
    return it_serve_child(bin, dir, conf, port);
}

/* `systemctl reload` is SIGHUP to `saasd serve`: the same rotation through the real signal. */
static void sighup_rotates_certificate(void)
{
    char dir[256], rules[512], pem[600], conf[600], extra[1200], cred[128], want[160], hex_b[CLIENT_CERT_HEX_LEN];
    struct emu *emu = it_setup("cert-sighup", dir, rules);
    if (!emu)
        return;
    struct test_cert a, b;
    test_cert_make(&a, dir, "a", "saasd sighup A");
    test_cert_make(&b, dir, "b", "saasd sighup B");
    register_cert(a.cert);
    snprintf(pem, sizeof pem, "%s/entra-app.pem", dir);
    put_file(a.both, pem);
    snprintf(extra, sizeof extra,
             "entra = { authority = \"%s\", tenant_id = \"%s\", client_id = \"%s\", certificate_file = \"%s\" }\n"
             "log_level = \"info\"\n",
             it_emu_url, EMU_DEFAULT_TENANT, EMU_DEFAULT_CLIENT, pem);
    unsigned short port = it_free_port(), admin_port = it_free_port();
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, port, admin_port, extra);
    snprintf(it_admin_url, sizeof it_admin_url, "http://127.0.0.1:%u", admin_port);
    it_point_emulator(port);
    pid_t pid = serve(dir, conf, port);
    CHECK(credential_check(cred, sizeof cred) == 200, "saasd serve fetches a token with certificate A");

    register_cert(b.cert);
    char hex_a[CLIENT_CERT_HEX_LEN];
    hex_thumbprint(a.cert, hex_a);
    unregister_cert(hex_a);
    put_file(b.both, pem);
    kill(pid, SIGHUP);
    hex_thumbprint(b.cert, hex_b);
    snprintf(want, sizeof want, "certificate %s", hex_b);
    long st = 0;
    for (int i = 0; i < 100 && (st != 200 || strcmp(cred, want)); i++) {
        usleep(50 * 1000);
        st = credential_check(cred, sizeof cred);
    }
    CHECK(st == 200 && !strcmp(cred, want) && last_token_status() == 200,
          "after SIGHUP, saasd serve's next token request carries B (the emulator knows only B)");
    char *metrics = it_metrics_text(NULL);
    CHECK(metrics && strstr(metrics, "saasd_credential_reloads_total{result=\"ok\"} 1"),
          "saasd serve's /metrics counts the reload in saasd_credential_reloads_total{result=\"ok\"}");
    free(metrics);
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    char logpath[700], log[65536];
    snprintf(logpath, sizeof logpath, "%s/daemon.log", dir);
    FILE *f = fopen(logpath, "r");
    size_t n = f ? fread(log, 1, sizeof log - 1, f) : 0;
    if (f)
        fclose(f);
    log[n] = 0;
    CHECK(strstr(log, "SIGHUP: reloading rules and the Entra ID credential") &&
              strstr(log, "the Entra ID credential was reloaded") && strstr(log, hex_b) && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "the SIGHUP and the new certificate's thumbprint are logged; the daemon serves on until SIGTERM");
    teardown(emu);
    test_cert_free(&a);
    test_cert_free(&b);
    check_rm_rf(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    certificate_rotation();
    secret_rotation();
    env_secret_needs_restart();
    sighup_rotates_certificate();
    return CHECK_DONE();
}
