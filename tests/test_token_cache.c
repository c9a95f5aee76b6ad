/* Entra ID token cache against a fake token endpoint on 127.0.0.1: request shape (v1/v2),
 * refresh ahead of expiry, single-flight with 50 callers, 401 invalidation, retries on 5xx,
 * AADSTS errors logged with a fix and without the secret, never an expired token. */
#include "check.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/token_cache.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT "0c1e5b7a-6d2f-4a44-9c1b-3a5c2e1f0a99"
#define SECRET "s3cr3t~Value+With/Odd=Chars"

/* Fake Entra: behaviour knobs set by the test between phases. */
static struct {
    atomic_int requests;
    atomic_int fail_next;     /* answer this many requests with 503 */
    atomic_int fail_all;      /* 503 forever */
    atomic_int delay_ms;
    atomic_int expires_in;
    atomic_int expires_as_string;
    char last_path[256];
    char last_body[1024];
    pthread_mutex_t mu;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void entra(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    size_t len = 0;
    const char *body = httpd_body(req, &len);
    int n = atomic_fetch_add(&fake.requests, 1) + 1;
    pthread_mutex_lock(&fake.mu);
    snprintf(fake.last_path, sizeof fake.last_path, "%s", httpd_path(req));
    snprintf(fake.last_body, sizeof fake.last_body, "%.*s", (int)len, body ? body : "");
    pthread_mutex_unlock(&fake.mu);
    if (atomic_load(&fake.delay_ms))
        usleep((useconds_t)atomic_load(&fake.delay_ms) * 1000);
    if (atomic_load(&fake.fail_all) || atomic_load(&fake.fail_next) > 0) {
        atomic_fetch_sub(&fake.fail_next, 1);
        httpd_set_body(res, 503, "text/plain", "busy");
        return;
    }
    if (!body || !strstr(body, "client_secret=s3cr3t~Value%2BWith%2FOdd%3DChars")) {
        httpd_set_body(res, 401, NULL,
                       "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret "
                       "provided. Ensure the secret being sent in the request is the client secret value, not the "
                       "client secret ID, for a secret added to app '" CLIENT "'. Secret sent: wrong-" SECRET
                       "\\r\\nTrace ID: 1\\r\\nCorrelation ID: 2\",\"error_codes\":[7000215],\"trace_id\":\"t-1\","
                       "\"correlation_id\":\"c-1\"}");
        return;
    }
    char out[512];
    if (atomic_load(&fake.expires_as_string))
        snprintf(out, sizeof out, "{\"token_type\":\"Bearer\",\"expires_in\":\"%d\",\"ext_expires_in\":\"%d\","
                 "\"access_token\":\"tok-%d\"}", atomic_load(&fake.expires_in), atomic_load(&fake.expires_in), n);
    else
        snprintf(out, sizeof out, "{\"token_type\":\"Bearer\",\"expires_in\":%d,\"access_token\":\"tok-%d\"}",
                 atomic_load(&fake.expires_in), n);
    httpd_set_body(res, 200, NULL, out);
}

struct caller {
    struct token_cache *tc;
    pthread_barrier_t *go;
    const char *invalidate;
    int rc;
    char token[64];
};

static void *call_get(void *p)
{
    struct caller *c = p;
    pthread_barrier_wait(c->go);
    if (c->invalidate)
        token_cache_invalidate(c->tc, c->invalidate);
    c->rc = token_cache_get(c->tc, c->token, sizeof c->token);
    return NULL;
}

/* Run 50 concurrent callers; 1 when all got the same token. */
static int fifty(struct token_cache *tc, const char *invalidate, char *token_out)
{
    enum { N = 50 };
    pthread_t th[N];
    struct caller cs[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        cs[i] = (struct caller){.tc = tc, .go = &go, .invalidate = invalidate};
        pthread_create(&th[i], NULL, call_get, &cs[i]);
    }
    int same = 1;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        same &= cs[i].rc == 0 && !strcmp(cs[i].token, cs[0].token);
    }
    pthread_barrier_destroy(&go);
    strcpy(token_out, cs[0].token);
    return same;
}

struct refresher {
    struct token_cache *tc;
    int rc;
};

static void *call_refresh(void *p)
{
    struct refresher *r = p;
    char why[160];
    r->rc = token_cache_refresh(r->tc, why, sizeof why);
    return NULL;
}

static int last_body_has(const char *what)
{
    pthread_mutex_lock(&fake.mu);
    int has = strstr(fake.last_body, what) != NULL;
    pthread_mutex_unlock(&fake.mu);
    return has;
}

/* A credential set while a token request is in flight: that request finishes with the old one,
 * the next uses the new one, and the cached token stays until then. */
static void credential_swap(struct token_cache *tc)
{
    char tok[64], tok2[64], why[160], desc[64];
    atomic_store(&fake.requests, 0);
    atomic_store(&fake.delay_ms, 300);
    struct refresher r = {.tc = tc};
    pthread_t th;
    pthread_create(&th, NULL, call_refresh, &r);
    usleep(100 * 1000); /* the request is at the fake Entra now */
    CHECK(token_cache_set_credential(tc, "rotated-secret", NULL) == 0, "a new secret is set while a request is in flight");
    pthread_join(th, NULL);
    atomic_store(&fake.delay_ms, 0);
    CHECK(r.rc == 0 && last_body_has("client_secret=s3cr3t"),
          "the token request in flight when the credential changed finishes with the one it started with");
    int rc = token_cache_get(tc, tok, sizeof tok);
    CHECK(rc == 0 && atomic_load(&fake.requests) == 1, "the cached token is kept after a credential change");
    rc = token_cache_refresh(tc, why, sizeof why);
    CHECK(rc == SAASD_EAUTH && last_body_has("client_secret=rotated-secret") && !last_body_has("s3cr3t") &&
              strstr(why, "client secret is wrong"),
          "the next token request carries the new secret (refused here: the fake knows only the old one)");
    rc = token_cache_get(tc, tok2, sizeof tok2);
    CHECK(rc == 0 && !strcmp(tok, tok2), "a refused new credential leaves the valid cached token in use");
    token_cache_describe_credential(tc, desc, sizeof desc);
    CHECK(!strcmp(desc, "client secret"), "the credential is described without its value");
    CHECK(token_cache_set_credential(tc, NULL, NULL) == SAASD_EINVAL && token_cache_set_credential(tc, "", NULL) ==
              SAASD_EINVAL, "a credential must be given");
    CHECK(token_cache_set_credential(tc, SECRET, NULL) == 0 && token_cache_refresh(tc, why, sizeof why) == 0 &&
              last_body_has("client_secret=s3cr3t"),
          "setting the old secret back makes token requests succeed again");
}

static struct token_cache *make_cache(struct http_client *http, unsigned short port, int version, const char *secret)
{
    char authority[64];
    snprintf(authority, sizeof authority, "http://127.0.0.1:%u/", port);
    struct token_cache_options o = {.authority_url = authority, .tenant_id = TENANT, .client_id = CLIENT,
                                    .client_secret = secret, .version = version, .max_attempts = 3,
                                    .backoff_base_ms = 20, .backoff_cap_ms = 50};
    struct token_cache *tc = NULL;
    if (token_cache_new(&o, http, &tc))
        abort();
    return tc;
}

int main(void)
{
    struct httpd *d = NULL;
    struct httpd_options ho = {0};
    if (httpd_start(&ho, entra, NULL, &d))
        abort();
    unsigned short port = httpd_port(d);
    struct http_client *http = NULL;
    http_client_new(NULL, &http);
    char tok[64], tok2[64];

    /* v2 request shape and caching */
    atomic_store(&fake.expires_in, 3599);
    struct token_cache *tc = make_cache(http, port, 2, SECRET);
    int rc = token_cache_get(tc, tok, sizeof tok);
    CHECK(rc == 0 && !strcmp(tok, "tok-1"), "a v2 client-credentials request yields the access token");
    CHECK(!strcmp(fake.last_path, "/" TENANT "/oauth2/v2.0/token"), "the v2 flow posts to <authority>/<tenant>/oauth2/v2.0/token");
    CHECK(strstr(fake.last_body, "grant_type=client_credentials") && strstr(fake.last_body, "client_id=" CLIENT) &&
              strstr(fake.last_body, "scope=" MARKETPLACE_RESOURCE_ID "%2F.default") && !strstr(fake.last_body, "resource="),
          "the v2 request carries grant_type, client_id and scope=<marketplace resource>/.default");
    rc = token_cache_get(tc, tok2, sizeof tok2);
    CHECK(rc == 0 && !strcmp(tok2, "tok-1") && atomic_load(&fake.requests) == 1,
          "a valid cached token is reused without another request");
    CHECK(token_cache_get(tc, tok2, 4) == SAASD_ETOOBIG, "a too small buffer is reported, not overrun");
    token_cache_free(tc);

    /* v1, expires_in as a string, refresh ahead of expiry */
    atomic_store(&fake.requests, 0);
    atomic_store(&fake.expires_in, 4); /* refreshed when < 0.8 s remain */
    atomic_store(&fake.expires_as_string, 1);
    tc = make_cache(http, port, 1, SECRET);
    long long t0 = mono_ms();
    rc = token_cache_get(tc, tok, sizeof tok);
    CHECK(rc == 0 && !strcmp(fake.last_path, "/" TENANT "/oauth2/token") &&
              strstr(fake.last_body, "resource=" MARKETPLACE_RESOURCE_ID) && !strstr(fake.last_body, "scope="),
          "the v1 flow posts resource=<marketplace resource> to <authority>/<tenant>/oauth2/token");
    usleep(2000 * 1000);
    token_cache_get(tc, tok2, sizeof tok2);
    CHECK(!strcmp(tok, tok2) && atomic_load(&fake.requests) == 1,
          "at half its lifetime (expires_in given as a string) the token is still reused");
    usleep(1400 * 1000); /* 3.4 s: inside the last 20 %, 0.6 s from either edge */
    rc = token_cache_get(tc, tok2, sizeof tok2);
    long long elapsed = mono_ms() - t0;
    CHECK(rc == 0 && strcmp(tok, tok2) && atomic_load(&fake.requests) == 2 && elapsed < 4000,
          "the token is refreshed ahead of expiry (in the last 20 % of its lifetime, before it expires)");
    token_cache_free(tc);

    /* single-flight */
    atomic_store(&fake.requests, 0);
    atomic_store(&fake.expires_in, 3599);
    atomic_store(&fake.expires_as_string, 0);
    atomic_store(&fake.delay_ms, 300);
    tc = make_cache(http, port, 2, SECRET);
    int same = fifty(tc, NULL, tok);
    CHECK(same && atomic_load(&fake.requests) == 1, "50 concurrent callers with an empty cache trigger exactly one token request");

    /* 401 from the marketplace: invalidate once */
    CHECK(token_cache_invalidate(tc, tok) == 1, "invalidating the cached token drops it");
    CHECK(token_cache_invalidate(tc, tok) == 0, "invalidating the same token again is a no-op");
    rc = token_cache_get(tc, tok2, sizeof tok2);
    CHECK(rc == 0 && strcmp(tok, tok2) && atomic_load(&fake.requests) == 2, "after an invalidation the next caller gets a new token");
    same = fifty(tc, tok2, tok);
    CHECK(same && strcmp(tok, tok2) && atomic_load(&fake.requests) == 3,
          "50 callers reporting the same refused token cause exactly one refresh");
    struct token_cache_stats st;
    token_cache_stats(tc, &st);
    CHECK(st.refresh_ok == 3 && st.invalidations == 2 && st.last_ok > 0 && st.expires_at > st.last_ok,
          "stats count refreshes, invalidations and the last success");
    token_cache_free(tc);
    atomic_store(&fake.delay_ms, 0);

    /* Entra 5xx: retried with backoff */
    atomic_store(&fake.requests, 0);
    atomic_store(&fake.fail_next, 2);
    tc = make_cache(http, port, 2, SECRET);
    rc = token_cache_get(tc, tok, sizeof tok);
    CHECK(rc == 0 && atomic_load(&fake.requests) == 3, "Entra 503 twice then 200: the third attempt yields the token");
    token_cache_free(tc);

    /* never an expired token: refresh keeps failing */
    atomic_store(&fake.requests, 0);
    atomic_store(&fake.expires_in, 2); /* refresh from 1.6 s, usable until 1.9 s */
    tc = make_cache(http, port, 2, SECRET);
    rc = token_cache_get(tc, tok, sizeof tok);
    atomic_store(&fake.fail_all, 1);
    usleep(1650 * 1000);
    rc = token_cache_get(tc, tok2, sizeof tok2);
    CHECK(rc == 0 && !strcmp(tok, tok2), "while a refresh fails, the still-valid token keeps being used");
    usleep(450 * 1000);
    rc = token_cache_get(tc, tok2, sizeof tok2);
    CHECK(rc != 0 && tok2[0] == 0, "once the token has expired and no refresh succeeds, no token is handed out");
    token_cache_stats(tc, &st);
    CHECK(st.refresh_failed >= 1 && st.last_error == SAASD_ERETRY, "stats record the failed refresh");
    token_cache_free(tc);
    atomic_store(&fake.fail_all, 0);

    /* AADSTS: clear log line with the fix, secret redacted, not retried */
    char logpath[] = "/tmp/saasd-test-token-log-XXXXXX";
    int fd = mkstemp(logpath);
    log_set_fd(fd);
    atomic_store(&fake.requests, 0);
    tc = make_cache(http, port, 2, "wrong-" SECRET);
    rc = token_cache_get(tc, tok, sizeof tok);
    log_set_fd(2);
    CHECK(rc == SAASD_EAUTH && atomic_load(&fake.requests) == 1, "a refused secret (AADSTS7000215) is an auth error and is not retried");
    rc = token_cache_get(tc, tok, sizeof tok);
    CHECK(rc == SAASD_EAUTH && atomic_load(&fake.requests) == 1, "right after a refusal, callers get the error without hammering Entra");
    token_cache_stats(tc, &st);
    CHECK(strstr(st.last_error_text, "client secret is wrong") != NULL, "stats say what to fix");
    char logbuf[8192] = "";
    ssize_t n = pread(fd, logbuf, sizeof logbuf - 1, 0);
    logbuf[n > 0 ? n : 0] = 0;
    CHECK(strstr(logbuf, "AADSTS7000215") && strstr(logbuf, "secret is wrong") && strstr(logbuf, "trace_id=t-1"),
          "the log line names the AADSTS code, the fix and Entra's trace id");
    CHECK(!strstr(logbuf, SECRET) && !strstr(logbuf, "s3cr3t"), "the secret never appears in the log");
    close(fd);
    unlink(logpath);
    token_cache_free(tc);

    tc = make_cache(http, port, 2, SECRET);
    credential_swap(tc);
    token_cache_free(tc);

    CHECK(token_cache_aadsts_hint(7000222) && strstr(token_cache_aadsts_hint(7000222), "expired") &&
              strstr(token_cache_aadsts_hint(700016), "client id") && strstr(token_cache_aadsts_hint(90002), "tenant"),
          "expired secret, unknown client and unknown tenant each have a fix text");

    http_client_free(http);
    httpd_stop(d);
    return CHECK_DONE();
}
