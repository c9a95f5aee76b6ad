/* Emulator: Entra token endpoint errors (§2), fault injection, --data persistence, key rotation
 * from the command line, and `saasd emulate --port P` start-up time. */
#include "emu_harness.h"
#include "core/crypto.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

static struct reply token_call(const char *version_path, const char *body)
{
    char path[256];
    snprintf(path, sizeof path, "/%s/%s", TENANT, version_path);
    return call("POST", url_of(path), body, "Content-Type", "application/x-www-form-urlencoded", NULL);
}

static int entra_envelope(const struct reply *r, const char *error, long code)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "AADSTS%ld:", code);
    return jstr(r->json, "error") && !strcmp(jstr(r->json, "error"), error) && jstr(r->json, "error_description") &&
           !strncmp(jstr(r->json, "error_description"), prefix, strlen(prefix)) &&
           json_integer_value(jpath(r->json, "error_codes.0")) == code && jstr(r->json, "trace_id") &&
           jstr(r->json, "correlation_id") && jstr(r->json, "timestamp");
}

static json_t *claims_of(const char *jwt)
{
    const char *a = strchr(jwt, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    uint8_t *raw = NULL;
    size_t n = 0;
    if (!b || crypto_base64url_decode(a + 1, (size_t)(b - a - 1), &raw, &n) != 0)
        return NULL;
    json_t *j = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    return j;
}

static void entra(void)
{
    char body[512];
    snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s&client_secret=wrong&scope=%s/.default", CLIENT, MP_APP);
    struct reply r = token_call("oauth2/v2.0/token", body);
    CHECK(r.status == 401 && entra_envelope(&r, "invalid_client", 7000215),
          "§2.3 a wrong secret is 401 invalid_client AADSTS7000215 in Entra's envelope");
    reply_free(&r);
    snprintf(body, sizeof body, "grant_type=client_credentials&client_id=33333333-3333-4333-8333-333333333333&client_secret=x&scope=%s/.default", MP_APP);
    r = token_call("oauth2/v2.0/token", body);
    CHECK(r.status == 400 && entra_envelope(&r, "unauthorized_client", 700016), "§2.3 an unknown client id is 400 AADSTS700016");
    reply_free(&r);
    snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s&client_secret=emulator-secret&scope=%s/.default", CLIENT, MP_APP);
    r = call("POST", url_of("/99999999-9999-4999-8999-999999999999/oauth2/v2.0/token"), body, NULL);
    CHECK(r.status == 400 && entra_envelope(&r, "invalid_request", 90002), "§2.3 an unknown tenant is 400 AADSTS90002");
    reply_free(&r);
    snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s&client_secret=emulator-secret&scope=%s", CLIENT, MP_APP);
    r = token_call("oauth2/v2.0/token", body);
    CHECK(r.status == 400 && entra_envelope(&r, "invalid_scope", 1002012), "§2.1 a v2 scope without /.default is 400 invalid_scope");
    reply_free(&r);
    snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s&client_secret=emulator-secret&resource=62d94f6c-d599-489b-a797-3e10e42fbe22", CLIENT);
    r = token_call("oauth2/token", body);
    CHECK(r.status == 400 && entra_envelope(&r, "invalid_resource", 500011), "§9.1 the pre-2020 resource GUID is refused");
    reply_free(&r);
    snprintf(body, sizeof body, "grant_type=password&client_id=%s&client_secret=emulator-secret&resource=%s", CLIENT, MP_APP);
    r = token_call("oauth2/token", body);
    CHECK(r.status == 400 && entra_envelope(&r, "unsupported_grant_type", 70003), "§2.3 another grant type is 400 unsupported_grant_type");
    reply_free(&r);

    snprintf(body, sizeof body, "grant_type=client_credentials&client_id=%s&client_secret=emulator-secret&resource=%s", CLIENT, MP_APP);
    r = token_call("oauth2/token", body);
    CHECK(r.status == 200 && json_is_string(json_object_get(r.json, "expires_in")) &&
              json_is_string(json_object_get(r.json, "expires_on")) && json_is_string(json_object_get(r.json, "not_before")) &&
              !strcmp(jstr(r.json, "resource"), MP_APP) && !strcmp(jstr(r.json, "token_type"), "Bearer"),
          "§2.2 v1 answer: expires_in/expires_on/not_before as strings, resource echoed");
    json_t *c = claims_of(jstr(r.json, "access_token") ? jstr(r.json, "access_token") : "");
    char v1iss[128];
    snprintf(v1iss, sizeof v1iss, "https://sts.windows.net/%s/", TENANT);
    CHECK(c && !strcmp(jstr(c, "aud"), MP_APP) && !strcmp(jstr(c, "appid"), CLIENT) && !strcmp(jstr(c, "iss"), v1iss) &&
              !strcmp(jstr(c, "ver"), "1.0") && !strcmp(jstr(c, "tid"), TENANT) &&
              json_integer_value(json_object_get(c, "exp")) == atoll(jstr(r.json, "expires_on")),
          "§2.2 v1 token: aud marketplace, appid, iss sts.windows.net, ver 1.0, exp = expires_on");
    json_decref(c);
    reply_free(&r);

    snprintf(body, sizeof body, "grant_type=client_credentials&scope=%s%%2F.default", MP_APP);
    char basic_raw[256], *basic = NULL, auth[400];
    snprintf(basic_raw, sizeof basic_raw, "%s:emulator-secret", CLIENT);
    crypto_base64_encode(basic_raw, strlen(basic_raw), &basic);
    snprintf(auth, sizeof auth, "Basic %s", basic);
    free(basic);
    char path[256];
    snprintf(path, sizeof path, "/%s/oauth2/v2.0/token", TENANT);
    r = call("POST", url_of(path), body, "Authorization", auth, NULL);
    CHECK(r.status == 200 && json_is_integer(json_object_get(r.json, "expires_in")) && !json_object_get(r.json, "expires_on"),
          "§2.2 v2 answer: expires_in is a number, no expires_on (client_secret_basic accepted)");
    c = claims_of(jstr(r.json, "access_token") ? jstr(r.json, "access_token") : "");
    CHECK(c && !strcmp(jstr(c, "appid"), CLIENT) && !json_object_get(c, "azp") && !strcmp(jstr(c, "ver"), "1.0") &&
              !strcmp(jstr(c, "iss"), v1iss) && !strcmp(jstr(c, "aud"), MP_APP),
          "§2.2 the marketplace resource's token from the v2 endpoint is shaped by the resource: appid, v1 issuer, ver 1.0");
    json_decref(c);
    reply_free(&r);

    struct reply t = ctl("POST", "/_emulator/tokens", "{\"kind\":\"publisher\",\"drop\":[\"appid\"]}");
    char no_appid[8300], url[512];
    snprintf(no_appid, sizeof no_appid, "Bearer %s", jstr(t.json, "access_token") ? jstr(t.json, "access_token") : "");
    reply_free(&t);
    snprintf(url, sizeof url, "%s/api/saas/subscriptions?api-version=2018-08-31", BASE);
    r = call("GET", url, NULL, "Authorization", no_appid, NULL);
    long refused = r.status;
    reply_free(&r);
    r = mp("GET", "/api/saas/subscriptions", NULL);
    CHECK(refused == 403 && r.status == 200,
          "§10 the marketplace identifies the publisher by tid + appid: a token without appid is refused (403)");
    reply_free(&r);

    snprintf(path, sizeof path, "/%s/.well-known/openid-configuration", TENANT);
    r = call("GET", url_of(path), NULL, NULL);
    CHECK(r.status == 200 && !strcmp(jstr(r.json, "issuer"), v1iss) && strstr(jstr(r.json, "jwks_uri"), "/discovery/keys"),
          "§5.6 v1 OpenID metadata names the sts.windows.net issuer and a JWKS");
    reply_free(&r);
    r = call("GET", url_of("/common/discovery/keys"), NULL, NULL);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "keys")) >= 1, "/common/discovery/keys serves the JWKS");
    reply_free(&r);
}

/* A request whose answer a latency fault holds back, made from another thread. */
struct held_call {
    pthread_t t;
    struct reply r;
    double took;
};

static void *held_call_main(void *arg)
{
    struct held_call *c = arg;
    double t0 = now_s();
    c->r = mp("GET", "/api/saas/subscriptions/00000000-0000-4000-8000-000000000001", NULL);
    c->took = now_s() - t0;
    return NULL;
}

/* The emulator serves every connection from one event-loop thread: a held answer must not stop
 * it from serving the others meanwhile. */
static void latency_holds_one_answer(void)
{
    struct reply r = ctl("POST", "/_emulator/faults",
                         "{\"path\":\"/api/saas/subscriptions/*0001\",\"kind\":\"latency\",\"latencyMs\":1500}");
    reply_free(&r);
    struct held_call c = {0};
    pthread_create(&c.t, NULL, held_call_main, &c);
    usleep(200 * 1000); /* the held request is in */
    double t0 = now_s();
    r = mp("GET", "/api/saas/subscriptions/00000000-0000-4000-8000-000000000002", NULL);
    double other = now_s() - t0;
    pthread_join(c.t, NULL);
    CHECK(r.status == 404 && other < 1.0 && c.took > other,
          "fault injection: another request is served while a latency fault holds an answer back");
    CHECK(c.r.status == 404 && c.took >= 1.4, "fault injection: the held answer comes after its latency");
    reply_free(&r);
    reply_free(&c.r);
}

static void faults(void)
{
    struct reply r = ctl("POST", "/_emulator/faults",
                         "{\"path\":\"/api/saas/subscriptions\",\"method\":\"GET\",\"kind\":\"429\",\"count\":2,\"retryAfterS\":3}");
    CHECK(r.status == 201, "fault injection: a 429 fault is armed");
    reply_free(&r);
    r = mp("POST", "/api/saas/subscriptions/resolve", NULL);
    CHECK(r.status == 400, "fault injection: a fault for GET does not hit POST");
    reply_free(&r);
    struct reply a = mp("GET", "/api/saas/subscriptions", NULL), b = mp("GET", "/api/saas/subscriptions", NULL),
                 d = mp("GET", "/api/saas/subscriptions", NULL);
    CHECK(a.status == 429 && b.status == 429 && reply_header(&a, "Retry-After") && !strcmp(reply_header(&a, "Retry-After"), "3"),
          "§8.3 fault injection: the next 2 calls get 429 with Retry-After: 3");
    CHECK(d.status == 200, "fault injection: the call after the armed count is served normally");
    reply_free(&a);
    reply_free(&b);
    reply_free(&d);

    r = ctl("POST", "/_emulator/faults", "{\"path\":\"/api/usageEvent\",\"kind\":\"500\"}");
    reply_free(&r);
    r = mp("POST", "/api/usageEvent", "{}");
    CHECK(r.status == 500 && jps(r.json, "error.code"), "§8.1 fault injection: a 500 carries {\"error\":{code,message}}");
    reply_free(&r);
    r = mp("POST", "/api/usageEvent", "{}");
    CHECK(r.status == 400, "fault injection: the glob matches /api/usageEvent exactly, once");
    reply_free(&r);

    r = ctl("POST", "/_emulator/faults", "{\"path\":\"/*/oauth2/v2.0/token\",\"kind\":\"503\"}");
    reply_free(&r);
    char tok[8192];
    CHECK(fetch_token(2, tok, sizeof tok) != 0 && fetch_token(2, tok, sizeof tok) == 0,
          "fault injection: the token endpoint can fail once (503) and then recover");

    r = ctl("POST", "/_emulator/faults", "{\"path\":\"/api/saas/subscriptions/*\",\"kind\":\"latency\",\"latencyMs\":300}");
    reply_free(&r);
    double t0 = now_s();
    r = mp("GET", "/api/saas/subscriptions/00000000-0000-4000-8000-000000000000", NULL);
    double took = now_s() - t0;
    CHECK(r.status == 404 && took >= 0.28, "fault injection: latency delays the answer (~300 ms) and then serves it");
    reply_free(&r);

    r = ctl("POST", "/_emulator/faults", "{\"path\":\"/api/saas/subscriptions\",\"kind\":\"drop\"}");
    reply_free(&r);
    /* A fresh client: libcurl transparently re-sends a request once when a *reused* connection
     * closes unanswered, which would hide the drop. */
    struct http_client *shared = H;
    http_client_new(&(struct http_client_options){.timeout_ms = 5000}, &H);
    r = mp("GET", "/api/saas/subscriptions", NULL);
    CHECK(r.status == 0, "fault injection: drop closes the connection without any answer");
    reply_free(&r);
    http_client_free(H);
    H = shared;
    r = mp("GET", "/api/saas/subscriptions", NULL);
    CHECK(r.status == 200, "fault injection: the next call after a drop is served");
    reply_free(&r);

    r = ctl("GET", "/_emulator/faults", NULL);
    CHECK(json_array_size(json_object_get(r.json, "faults")) == 5 && json_integer_value(jpath(r.json, "faults.0.hits")) == 2,
          "fault injection: armed faults are listed with their hit counts");
    reply_free(&r);
    r = ctl("DELETE", "/_emulator/faults", NULL);
    reply_free(&r);
    r = ctl("GET", "/_emulator/faults", NULL);
    CHECK(json_array_size(json_object_get(r.json, "faults")) == 0, "fault injection: DELETE disarms everything");
    reply_free(&r);
    r = ctl("POST", "/_emulator/faults", "{\"path\":\"/x\",\"kind\":\"teapot\"}");
    CHECK(r.status == 400, "fault injection: an unknown kind is refused");
    reply_free(&r);
}

static void control_misc(void)
{
    struct reply r = ctl("PUT", "/_emulator/config", "{\"ackWindowMs\":\"soon\"}");
    CHECK(r.status == 400, "control config refuses non-integer knobs");
    reply_free(&r);
    r = ctl("PATCH", "/_emulator/config", "{\"clockOffsetS\":120,\"pageSize\":7}");
    CHECK(r.status == 200 && json_integer_value(json_object_get(r.json, "clockOffsetS")) == 120 &&
              json_integer_value(json_object_get(r.json, "pageSize")) == 7,
          "control config sets the clock offset and page size");
    reply_free(&r);
    r = ctl("PATCH", "/_emulator/config", "{\"clockOffsetS\":0,\"pageSize\":100}");
    reply_free(&r);
    r = ctl("POST", "/_emulator/offers", "{\"offerId\":\"x\"}");
    CHECK(r.status == 400, "control offers refuse an offer without plans");
    reply_free(&r);
    r = ctl("POST", "/_emulator/purchases", "{\"planId\":\"seats\",\"quantity\":1000}");
    CHECK(r.status == 400, "control purchases refuse seats outside the plan limits");
    reply_free(&r);
    buy("{\"planId\":\"basic\"}", NULL, 0);
    r = ctl("POST", "/_emulator/reset", NULL);
    reply_free(&r);
    r = ctl("GET", "/_emulator/subscriptions", NULL);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "subscriptions")) == 0,
          "control reset drops every subscription");
    reply_free(&r);
    r = ctl("GET", "/_emulator/offers", NULL);
    CHECK(json_array_size(json_object_get(r.json, "offers")) >= 1, "control reset keeps the offers");
    reply_free(&r);
    r = ctl("GET", "/_emulator/nope", NULL);
    CHECK(r.status == 404, "an unknown control route is 404");
    reply_free(&r);
}

static const char *data_dir;
static void with_data(struct emu_options *o) { o->data_dir = data_dir; }

static void persistence(void)
{
    char *dir = check_tmpdir("emu");
    data_dir = dir;
    emu_up(with_data);
    char sid[64], tok[1024], kid[64];
    snprintf(sid, sizeof sid, "%s", buy("{\"planId\":\"seats\",\"quantity\":4}", tok, sizeof tok));
    activate(sid, "{\"planId\":\"seats\",\"quantity\":4}");
    struct reply r = ctl("GET", "/_emulator/health", NULL);
    snprintf(kid, sizeof kid, "%s", jstr(r.json, "kid") ? jstr(r.json, "kid") : "");
    CHECK(json_is_true(json_object_get(r.json, "persistent")), "--data: the emulator reports persistent state");
    reply_free(&r);
    emu_down();

    emu_up(with_data);
    CHECK(!strcmp(sub_status(sid), "Subscribed"), "--data: a restarted emulator still knows the subscription and its status");
    r = ctl("GET", "/_emulator/health", NULL);
    CHECK(jstr(r.json, "kid") && !strcmp(jstr(r.json, "kid"), kid), "--data: the signing key (kid) survives a restart");
    reply_free(&r);
    char auth[8300];
    snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
    r = call("POST", url_of("/api/saas/subscriptions/resolve?api-version=2018-08-31"), NULL, "Authorization", auth,
             "x-ms-marketplace-token", tok, NULL);
    CHECK(r.status == 200, "--data: landing tokens minted before the restart still resolve");
    reply_free(&r);

    char cmd[512];
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/saasd emulate rotate-key --data %s >/dev/null 2>&1", build, dir);
    CHECK(system(cmd) == 0, "saasd emulate rotate-key --data DIR succeeds");
    r = ctl("GET", "/_emulator/health", NULL);
    char new_kid[64];
    snprintf(new_kid, sizeof new_kid, "%s", jstr(r.json, "kid") ? jstr(r.json, "kid") : "");
    reply_free(&r);
    CHECK(*new_kid && strcmp(new_kid, kid), "rotate-key: the running emulator switches to the new key at once");
    CHECK(!strcmp(sub_status(sid), "Subscribed"), "rotate-key: tokens signed before the rotation stay valid");
    emu_down();
    emu_up(with_data);
    r = ctl("GET", "/_emulator/health", NULL);
    int rotated = jstr(r.json, "kid") && !strcmp(jstr(r.json, "kid"), new_kid);
    reply_free(&r);
    snprintf(cmd, sizeof cmd, "/%s/discovery/v2.0/keys", TENANT);
    r = call("GET", url_of(cmd), NULL, NULL);
    int old_published = r.body && strstr(r.body, kid) != NULL;
    reply_free(&r);
    CHECK(rotated && old_published, "rotate-key: after a restart the new kid signs and the previous key stays in the JWKS");
    emu_down();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
    free(dir);
}

/* The emulator remembers bearers it verified (one RSA check per token, not per call); a token
 * whose signing key is no longer published must still be refused. */
static void bearer_after_key_retired(void)
{
    emu_up(NULL);
    struct reply r = mp("GET", "/api/saas/subscriptions?api-version=2018-08-31", NULL);
    CHECK(r.status == 200, "bearer: a publisher token is accepted (and remembered)");
    reply_free(&r);
    r = mp("GET", "/api/saas/subscriptions?api-version=2018-08-31", NULL);
    CHECK(r.status == 200, "bearer: the same token again is accepted");
    reply_free(&r);
    for (int i = 0; i < 3; i++) { /* the JWKS keeps the signing key and two previous ones */
        r = ctl("POST", "/_emulator/keys/rotate", NULL);
        reply_free(&r);
    }
    r = mp("GET", "/api/saas/subscriptions?api-version=2018-08-31", NULL);
    CHECK(r.status == 403, "bearer: once its key left the JWKS, the remembered token is refused");
    reply_free(&r);
    emu_down();
}

static unsigned short free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

static void startup(void)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char bin[256], port[16];
    snprintf(bin, sizeof bin, "%s/saasd", build);
    unsigned short p = free_port();
    snprintf(port, sizeof port, "%u", p);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(bin, bin, "emulate", "--port", port, (char *)NULL);
        _exit(127);
    }
    snprintf(BASE, sizeof BASE, "http://127.0.0.1:%u", p);
    long status = 0;
    while (now_s() - t0 < 10.0) {
        struct reply r = ctl("GET", "/_emulator/health", NULL);
        status = r.status;
        reply_free(&r);
        if (status == 200)
            break;
        usleep(10000);
    }
    double took = now_s() - t0;
    printf("# saasd emulate answered after %.3f s\n", took);
    CHECK(status == 200, "saasd emulate --port P starts serving on that port");
    char tok[8192];
    CHECK(fetch_token(2, tok, sizeof tok) == 0, "the started emulator issues tokens on that port");
    kill(pid, SIGTERM);
    int ws = 0;
    waitpid(pid, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "saasd emulate stops cleanly on SIGTERM");

    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s emulate --help | grep -q /_emulator/faults", bin);
    CHECK(system(cmd) == 0, "saasd emulate --help documents the control API");
}

int main(void)
{
    emu_up(NULL);
    entra();
    faults();
    latency_holds_one_answer();
    control_misc();
    emu_down();
    persistence();
    bearer_after_key_retired();
    startup();
    http_client_free(H);
    return CHECK_DONE();
}
