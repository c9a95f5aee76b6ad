/* Cold bursts of webhooks with bearer tokens the daemon has never seen: every request is
 * queued for verification and answered 200, none refused for lack of a verification thread,
 * even with a single one (webhook.verify_threads = 1); and each distinct token is verified
 * exactly once however many requests carry it at the same time (single flight). */
#include "it_support.h"

#include "core/jwt.h"

#include <pthread.h>

#define DISTINCT 48 /* requests with a token of their own */
#define SHARED 24   /* requests carrying one more token, all at once */

struct shot {
    const char *url, *token, *sub;
    int n;
    long status; /* 0: no answer */
};

static void *fire(void *arg)
{
    struct shot *s = arg;
    char auth[8300], body[512];
    snprintf(auth, sizeof auth, "Bearer %s", s->token);
    snprintf(body, sizeof body,
             "{\"id\":\"b0000000-0000-4000-8000-%012d\",\"subscriptionId\":\"%s\",\"action\":\"Renew\","
             "\"offerId\":\"burst-offer\",\"status\":\"Succeeded\"}",
             s->n, s->sub);
    struct http_header h[2] = {{"Content-Type", "application/json"}, {"Authorization", auth}};
    struct http_request rq = {.method = "POST", .url = s->url, .headers = h, .nheaders = 2, .body = body,
                              .body_len = strlen(body), .timeout_ms = 60000};
    struct http_client *c = NULL;
    struct http_response rs;
    if (http_client_new(NULL, &c) == 0 && http_client_do(c, &rq, &rs) == 0) {
        s->status = rs.status;
        http_response_free(&rs);
    }
    http_client_free(c);
    return NULL;
}

static char *mint(void)
{
    long st = 0;
    json_t *tok = it_emu("POST", "/_emulator/tokens", json_pack("{s:s}", "kind", "webhook"), &st);
    char *t = strdup(it_str(tok, "access_token"));
    json_decref(tok);
    return t;
}

int main(void)
{
    char dir[256], rules[512], path[1024], url[256];
    struct emu *emu = it_setup("burst", dir, rules);
    if (!emu)
        return CHECK_DONE();
    snprintf(path, sizeof path, "%s/saasd.conf", dir);
    /* 72 connections from one address: more than listener.per_client allows by default */
    it_write_config(path, dir, it_free_port(), it_free_port(),
                    "webhook = { verify_threads = 1 }\nlistener = { per_client = 0 }\n");
    struct daemon *d = it_start_daemon(path);
    if (!d) {
        emu_stop(emu);
        return CHECK_DONE();
    }
    snprintf(url, sizeof url, "%s/webhook", it_public_url);
    const char *sub = "b1111111-0000-4000-8000-000000000001";
    char *tokens[DISTINCT + 1];
    for (int i = 0; i <= DISTINCT; i++)
        tokens[i] = mint();
    struct jwt_stats before;
    jwt_verifier_stats(d->jwt, &before);

    static struct shot shots[DISTINCT + SHARED];
    pthread_t t[DISTINCT + SHARED];
    for (int i = 0; i < DISTINCT + SHARED; i++) {
        shots[i] = (struct shot){.url = url, .token = tokens[i < DISTINCT ? i : DISTINCT], .sub = sub, .n = i};
        pthread_create(&t[i], NULL, fire, &shots[i]);
    }
    int ok = 0;
    for (int i = 0; i < DISTINCT + SHARED; i++) {
        pthread_join(t[i], NULL);
        ok += shots[i].status == 200;
        if (shots[i].status != 200)
            printf("# request %d answered %ld\n", i, shots[i].status);
    }
    struct jwt_stats after;
    jwt_verifier_stats(d->jwt, &after);
    printf("# %d of %d answered 200; %lu full verifications, %lu cache hits\n", ok, DISTINCT + SHARED,
           (unsigned long)(after.verified - before.verified), (unsigned long)(after.cache_hits - before.cache_hits));
    CHECK(ok == DISTINCT + SHARED,
          "a burst of 72 webhooks with 49 never-seen tokens and one verification thread is answered 200 throughout");
    CHECK(after.verified - before.verified == DISTINCT + 1,
          "each distinct fresh token is verified exactly once, also when 24 requests carry it at once");
    it_settle(d->store, 10000);

    for (int i = 0; i <= DISTINCT; i++)
        free(tokens[i]);
    daemon_stop(d);
    emu_stop(emu);
    check_rm_rf(dir);
    return CHECK_DONE();
}
