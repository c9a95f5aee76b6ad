/* Events out (issue 15): every decision becomes an event in the same commit, delivered at least
 * once and in order to each sink on its own: signed webhooks (signature checked here with
 * OpenSSL), e-mail through a small SMTP server written below, Slack and Teams incoming webhooks.
 * Real flows against the emulator drive it. Each check names the guarantee it proves. */
#include "it_support.h"
#include "mail_words.h"

#include "core/metrics.h"
#include "daemon/events.h"
#include "daemon/sinks.h"

#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

static char dir[256];
static const char *crm_secret = "crm-signing-secret-0123456789";
static const char *flaky_secret = "flaky-signing-secret";

/* ------------------------------------------------------------------------------------------ */
/* An HTTP sink: records what it accepted (answering `status`) and counts what it refused.      */

struct http_sink {
    struct httpd *h;
    unsigned short port;
    pthread_mutex_t lock;
    json_t *got;              /* [{path, id, type, timestamp, signature, body}] answered 2xx */
    _Atomic int status;
    _Atomic int refused;
};

static void sink_handler(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    struct http_sink *s = arg;
    size_t len = 0;
    const char *body = httpd_body(req, &len);
    int status = s->status;
    if (status >= 200 && status < 300) {
        const char *h[] = {"X-Saasd-Event-Id", "X-Saasd-Event-Type", "X-Saasd-Timestamp", "X-Saasd-Signature"};
        json_t *r = json_pack("{s:s, s:s#}", "path", httpd_path(req), "body", body ? body : "", (int)len);
        const char *keys[] = {"id", "type", "timestamp", "signature"};
        for (int i = 0; i < 4; i++)
            if (httpd_header(req, h[i]))
                json_object_set_new(r, keys[i], json_string(httpd_header(req, h[i])));
        pthread_mutex_lock(&s->lock);
        json_array_append_new(s->got, r);
        pthread_mutex_unlock(&s->lock);
    } else {
        s->refused++;
    }
    httpd_set_body(res, status, "text/plain", "ok\n");
}

static int http_sink_start(struct http_sink *s, int status)
{
    pthread_mutex_init(&s->lock, NULL);
    s->got = json_array();
    s->status = status;
    struct httpd_options o = {.port = 0, .max_body = 1 << 20};
    if (httpd_start(&o, sink_handler, s, &s->h))
        return -1;
    s->port = httpd_port(s->h);
    return 0;
}

static json_t *http_sink_got(struct http_sink *s)
{
    pthread_mutex_lock(&s->lock);
    json_t *copy = json_deep_copy(s->got);
    pthread_mutex_unlock(&s->lock);
    return copy;
}

/* ------------------------------------------------------------------------------------------ */
/* A small SMTP server: EHLO (advertising AUTH PLAIN), AUTH, MAIL, RCPT, DATA, QUIT.            */

struct smtp_sink {
    int fd;
    unsigned short port;
    pthread_t thread;
    pthread_mutex_t lock;
    json_t *mails; /* [{auth, from, rcpt: [..], data}] accepted */
    _Atomic int refuse; /* answer 451 to this many messages first */
    _Atomic int refused;
    _Atomic int auths;    /* AUTH commands seen */
    _Atomic int starttls; /* STARTTLS commands seen */
    int offer_starttls;   /* advertise STARTTLS in the EHLO answer: refused without tls, else upgraded */
    SSL_CTX *tls;         /* without offer_starttls: smtps, every connection starts with a TLS
                             handshake; with it: STARTTLS upgrades the session (tls_session below) */
    _Atomic int handshakes; /* TLS handshakes completed */
    _Atomic int auths_in_tls; /* AUTH commands seen inside TLS */
    _Atomic int stop;
};

/* How a session starts: its 220 greeting (not after STARTTLS), and whether it runs inside TLS. */
enum session_start { PLAIN, TLS_FIRST, AFTER_STARTTLS };

static int smtp_session(struct smtp_sink *s, int fd, enum session_start how);
static void tls_session(struct smtp_sink *s, int fd, enum session_start how);

/* 1 when the client started TLS (STARTTLS on a server with tls): fd is left open for the
 * handshake; otherwise the session ends and fd is closed. */
static int smtp_session(struct smtp_sink *s, int fd, enum session_start how)
{
    FILE *in = fdopen(dup(fd), "r"), *out = fdopen(dup(fd), "w");
    char line[4096];
    int upgrade = 0;
    json_t *mail = json_pack("{s:s, s:s, s:[]}", "auth", "", "from", "", "rcpt");
    if (how != AFTER_STARTTLS)
        fputs("220 test-smtp ready\r\n", out);
    fflush(out);
    while (fgets(line, sizeof line, in)) {
        if (!strncasecmp(line, "EHLO", 4))
            fprintf(out, "250-test-smtp\r\n%s250-AUTH PLAIN\r\n250 8BITMIME\r\n", s->offer_starttls ? "250-STARTTLS\r\n" : "");
        else if (!strncasecmp(line, "AUTH PLAIN", 10)) {
            line[strcspn(line, "\r\n")] = 0;
            if (!line[10]) { /* no initial response: ask for it (RFC 4954) */
                fputs("334 \r\n", out);
                fflush(out);
                if (!fgets(line + 11, (int)sizeof line - 11, in))
                    break;
                line[11 + strcspn(line + 11, "\r\n")] = 0;
            }
            s->auths++;
            if (how != PLAIN)
                s->auths_in_tls++;
            json_object_set_new(mail, "auth", json_string(line + 11));
            fputs("235 2.7.0 accepted\r\n", out);
        } else if (!strncasecmp(line, "STARTTLS", 8)) {
            s->starttls++;
            if (s->tls && how == PLAIN) {
                fputs("220 2.0.0 ready to start TLS\r\n", out);
                upgrade = 1;
                break;
            }
            fputs("454 4.7.0 TLS not available\r\n", out);
        } else if (!strncasecmp(line, "MAIL FROM:", 10)) {
            line[strcspn(line, "\r\n")] = 0;
            json_object_set_new(mail, "from", json_string(line + 10));
            fputs("250 ok\r\n", out);
        } else if (!strncasecmp(line, "RCPT TO:", 8)) {
            line[strcspn(line, "\r\n")] = 0;
            json_array_append_new(json_object_get(mail, "rcpt"), json_string(line + 8));
            fputs("250 ok\r\n", out);
        } else if (!strncasecmp(line, "DATA", 4)) {
            fputs("354 go ahead\r\n", out);
            fflush(out);
            size_t cap = 1 << 16, len = 0;
            char *data = calloc(1, cap);
            while (fgets(line, sizeof line, in) && strcmp(line, ".\r\n")) {
                size_t n = strlen(line);
                if (len + n + 1 > cap)
                    data = realloc(data, cap *= 2);
                memcpy(data + len, line, n + 1);
                len += n;
            }
            json_object_set_new(mail, "data", json_string(data));
            free(data);
            if (s->refuse > 0) {
                s->refuse--;
                s->refused++;
                fputs("451 4.3.0 try again later\r\n", out);
            } else {
                pthread_mutex_lock(&s->lock);
                json_array_append(s->mails, mail);
                pthread_mutex_unlock(&s->lock);
                fputs("250 queued\r\n", out);
            }
        } else if (!strncasecmp(line, "QUIT", 4)) {
            fputs("221 bye\r\n", out);
            fflush(out);
            break;
        } else {
            fputs("250 ok\r\n", out);
        }
        fflush(out);
    }
    json_decref(mail);
    fclose(in);
    fclose(out);
    if (!upgrade)
        close(fd);
    return upgrade;
}

/* smtps for the sink's TLS checks: a self-signed certificate for 127.0.0.1 (made here, written
 * to ca_path for the sink's ca_file), and a session that completes the TLS handshake and relays
 * the decrypted bytes to smtp_session over a socketpair. */
static SSL_CTX *smtp_tls_ctx(const char *ca_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    SSL_CTX *ctx = NULL;
    if (key && x) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME *n = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"test-smtp", -1, -1, 0);
        X509_set_issuer_name(x, n);
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        const char *exts[][2] = {{"subjectAltName", "IP:127.0.0.1"}, {"basicConstraints", "critical,CA:TRUE"}};
        for (size_t i = 0; i < 2; i++) {
            X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
            X509_add_ext(x, e, -1);
            X509_EXTENSION_free(e);
        }
        X509_sign(x, key, EVP_sha256());
        FILE *f = fopen(ca_path, "w");
        if (f) {
            PEM_write_X509(f, x);
            fclose(f);
        }
        ctx = SSL_CTX_new(TLS_server_method());
        if (ctx && (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)) {
            SSL_CTX_free(ctx);
            ctx = NULL;
        }
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

struct plain_end {
    struct smtp_sink *s;
    int fd;
    enum session_start how;
};

static void *plain_main(void *arg)
{
    struct plain_end *p = arg;
    smtp_session(p->s, p->fd, p->how);
    return NULL;
}

static void tls_session(struct smtp_sink *s, int fd, enum session_start how)
{
    SSL *ssl = SSL_new(s->tls);
    int sp[2];
    pthread_t t;
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1 && socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0) {
        s->handshakes++;
        struct plain_end p = {s, sp[0], how};
        pthread_create(&t, NULL, plain_main, &p);
        char buf[4096];
        for (;;) {
            struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = sp[1], .events = POLLIN}};
            if (!SSL_pending(ssl) && poll(pf, 2, 5000) <= 0)
                break;
            int n;
            if (SSL_pending(ssl) || pf[0].revents) {
                if ((n = SSL_read(ssl, buf, sizeof buf)) <= 0 || write(sp[1], buf, (size_t)n) != n)
                    break;
            } else if (pf[1].revents) {
                if ((n = (int)read(sp[1], buf, sizeof buf)) <= 0 || SSL_write(ssl, buf, n) != n)
                    break;
            }
        }
        shutdown(sp[1], SHUT_RDWR);
        pthread_join(t, NULL);
        close(sp[1]);
    }
    SSL_free(ssl);
    close(fd);
}

static void *smtp_main(void *arg)
{
    struct smtp_sink *s = arg;
    while (!s->stop) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            break;
        if (s->tls && !s->offer_starttls)
            tls_session(s, c, TLS_FIRST);
        else if (smtp_session(s, c, PLAIN))
            tls_session(s, c, AFTER_STARTTLS);
    }
    return NULL;
}

static int smtp_sink_start(struct smtp_sink *s)
{
    pthread_mutex_init(&s->lock, NULL);
    s->mails = json_array();
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 8) ||
        getsockname(s->fd, (struct sockaddr *)&a, &len))
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->thread, NULL, smtp_main, s);
}

static void smtp_sink_stop(struct smtp_sink *s)
{
    s->stop = 1;
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Flows                                                                                        */

static const char *seats_rule =
    "return {\n"
    "  provision = function(sub, ctx) return { action = 'activate', message = 'ready' } end,\n"
    "  change_quantity = function(sub, change, ctx)\n"
    "    ctx.notify('crm.seats_requested', { quantity = change.quantity, name = '<Contoso & Co>' })\n"
    "    if change.quantity > 40 then return { accept = false, reason = 'at most 40 seats' } end\n"
    "    return { accept = true }\n"
    "  end,\n"
    "  suspend = function(sub, event, ctx)\n"
    "    ctx.notify('crm.suspend_seen', { by = 'rule' })\n"
    "    if ctx.store.get('fail') then return nil, 'the ISV API is down' end\n"
    "  end,\n"
    "}\n";

static const char *pending_rule =
    "return { provision = function(sub, ctx) return { action = 'pending', message = 'we will <b>call</b> you' } end }\n";

static int land(const char *offer, int seats, char *sub, size_t size)
{
    char *url = it_purchase(offer, seats, sub, size);
    long st = it_land(url, NULL); /* sign in, confirm */
    free(url);
    return st == 200;
}

static json_t *customer_and_wait(const char *sub, const char *verb, json_t *body)
{
    char *op = it_customer(sub, verb, body);
    it_wait_op(op, 15000);
    json_t *a = op ? it_wait_audit(sub, op, 15000) : NULL;
    free(op);
    return a;
}

/* The subscription.* types of the events about sub in list (of events, or of deliveries whose body is one). */
static void types_of(json_t *list, const char *sub, char *out, size_t size)
{
    size_t i, n = 0;
    json_t *e;
    out[0] = 0;
    json_array_foreach(list, i, e) {
        json_t *ev = json_object_get(e, "body") ? json_loads(it_str(e, "body"), 0, NULL) : json_incref(e);
        if (!strcmp(it_str(ev, "subscription"), sub) && !strncmp(it_str(ev, "type"), "subscription.", 13))
            n += (size_t)snprintf(out + n, size - n, "%s%s", n ? " " : "", it_str(ev, "type"));
        json_decref(ev);
        if (n >= size)
            break;
    }
}

static size_t count_type(json_t *events, const char *sub, const char *type)
{
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(events, i, e) n += !strcmp(it_str(e, "subscription"), sub) && !strcmp(it_str(e, "type"), type);
    return n;
}

static int outbox_attempts(void)
{
    long st;
    json_t *ob = it_admin("GET", "/admin/outbox", NULL, &st);
    int n = (int)json_integer_value(json_object_get(json_array_get(json_object_get(ob, "outbox"), 0), "attempts"));
    json_decref(ob);
    return n;
}

static json_t *sink_state(const char *name)
{
    long st;
    json_t *r = it_admin("GET", "/admin/sinks", NULL, &st);
    size_t i;
    json_t *s, *found = NULL;
    json_array_foreach(json_object_get(r, "sinks"), i, s) if (!strcmp(it_str(s, "name"), name)) found = json_incref(s);
    json_decref(r);
    return found ? found : json_object();
}

static int wait_deliveries(struct http_sink *s, size_t n, long timeout_ms)
{
    long long until = it_now_ms() + timeout_ms;
    for (;;) {
        json_t *g = http_sink_got(s);
        size_t have = json_array_size(g);
        json_decref(g);
        if (have >= n || it_now_ms() > until)
            return have >= n;
        usleep(30 * 1000);
    }
}

static char sub_a[128], sub_b[128];
static const char *expect_a = "subscription.activated subscription.quantity_changed subscription.change_refused "
                              "subscription.plan_changed subscription.suspended subscription.reinstated "
                              "subscription.renewed subscription.unsubscribed";
static const char *expect_b = "subscription.pending_approval subscription.activated";

static void drive_flows(void)
{
    long st;
    CHECK(land("ev-seats", 5, sub_a, sizeof sub_a), "a purchase lands and is activated while the sinks are failing");
    json_decref(customer_and_wait(sub_a, "change-quantity", json_pack("{s:i}", "quantity", 8)));
    json_decref(customer_and_wait(sub_a, "change-quantity", json_pack("{s:i}", "quantity", 45)));
    json_decref(customer_and_wait(sub_a, "change-plan", json_pack("{s:s}", "planId", "business")));

    /* A handler that fails is retried from the outbox: its event exists only once it succeeded. */
    json_decref(it_admin("PUT", "/admin/offers/ev-seats/store/fail", json_pack("{s:s}", "value", "1"), &st));
    char *op = it_customer(sub_a, "suspend", NULL);
    long long until = it_now_ms() + 15000;
    json_t *ob = NULL;
    while (it_now_ms() < until) {
        json_decref(ob);
        ob = it_admin("GET", "/admin/outbox", NULL, &st);
        if (json_array_size(json_object_get(ob, "outbox")))
            break;
        usleep(30 * 1000);
    }
    char types[2048];
    json_t *evs = it_stored_events();
    types_of(evs, sub_a, types, sizeof types);
    json_decref(evs);
    CHECK(json_array_size(json_object_get(ob, "outbox")) == 1 && !strstr(types, "suspended"),
          "a suspend whose handler failed (kept in the outbox) has written no subscription.suspended event");
    char path[128];
    snprintf(path, sizeof path, "/admin/outbox/%lld/retry",
             (long long)json_integer_value(json_object_get(json_array_get(json_object_get(ob, "outbox"), 0), "seq")));
    json_decref(ob);
    int stuck_early = 0;
    for (int attempts = 1; attempts < 5; attempts++) { /* four more failures, hurried by the operator */
        evs = it_stored_events();
        stuck_early |= count_type(evs, sub_a, "outbox.stuck") != 0;
        json_decref(evs);
        json_decref(it_admin("POST", path, NULL, &st));
        until = it_now_ms() + 10000;
        while (outbox_attempts() <= attempts && it_now_ms() < until)
            usleep(30 * 1000);
    }
    evs = it_stored_events();
    CHECK(!stuck_early && count_type(evs, sub_a, "outbox.stuck") == 1,
          "an event failing its fifth attempt in a row gives one outbox.stuck event, not before");
    json_decref(evs);
    json_decref(it_admin("DELETE", "/admin/offers/ev-seats/store/fail", NULL, &st));
    json_decref(it_admin("POST", path, NULL, &st));
    json_decref(it_wait_audit(sub_a, op ? op : "", 15000));
    free(op);
    json_decref(customer_and_wait(sub_a, "reinstate", NULL));
    json_decref(customer_and_wait(sub_a, "renew", NULL));
    json_decref(customer_and_wait(sub_a, "unsubscribe", NULL));

    CHECK(land("ev-pending", 3, sub_b, sizeof sub_b), "a purchase the rule keeps pending lands");
    snprintf(path, sizeof path, "/admin/subscriptions/%s/activate", sub_b);
    json_decref(it_admin("POST", path, NULL, &st));
    CHECK(st == 200, "an operator activates the pending purchase");

    evs = it_stored_events();
    types_of(evs, sub_a, types, sizeof types);
    CHECK(!strcmp(types, expect_a),
          "the purchase, seat change, refused seat change, plan change, suspend, reinstate, renewal and cancel are one "
          "event each, in order");
    if (strcmp(types, expect_a))
        printf("# events of A: %s\n", types);
    types_of(evs, sub_b, types, sizeof types);
    CHECK(!strcmp(types, expect_b), "a pending purchase gives pending_approval, then activated when approved");
    size_t i, wanted = 0;
    json_t *e;
    json_array_foreach(evs, i, e) if (!strcmp(it_str(e, "type"), "crm.seats_requested") && !strcmp(it_str(e, "subscription"), sub_a) &&
                                      !strcmp(it_str(e, "offer"), "ev-seats")) {
        json_int_t q = json_integer_value(json_object_get(json_object_get(e, "data"), "quantity"));
        wanted += (wanted == 0 && q == 8) || (wanted == 1 && q == 45);
    }
    CHECK(wanted == 2 && count_type(evs, sub_a, "crm.seats_requested") == 2,
          "ctx.notify adds the rule's own event to the stream, with its fields as data, for accepted and refused changes");
    CHECK(count_type(evs, sub_a, "crm.suspend_seen") == 1,
          "ctx.notify of a call that failed (five times, retried from the outbox) is not committed; the successful call's is, once");
    json_decref(evs);
}

/* HMAC-SHA256(secret, "<timestamp>.<body>") computed here with OpenSSL, not with saasd's code. */
static int signature_ok(json_t *d, const char *secret)
{
    const char *body = it_str(d, "body"), *ts = it_str(d, "timestamp"), *sig = it_str(d, "signature");
    size_t tlen = strlen(ts) + strlen(body) + 2;
    char *text = malloc(tlen);
    if (!text)
        return 0;
    snprintf(text, tlen, "%s.%s", ts, body);
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)text, strlen(text), mac, &len);
    free(text);
    char want[80] = "v1=";
    for (unsigned i = 0; i < len; i++)
        sprintf(want + 3 + 2 * i, "%02x", mac[i]);
    long long age = (long long)time(NULL) - strtoll(ts, NULL, 10);
    return !strcmp(want, sig) && age >= 0 && age < 300;
}

static void signed_webhooks(struct http_sink *crm)
{
    json_t *all = it_stored_events();
    size_t stored = json_array_size(all);
    json_decref(all);
    CHECK(wait_deliveries(crm, stored, 15000), "the unfiltered webhook sink receives every stored event");
    json_t *got = http_sink_got(crm);
    char types[2048];
    types_of(got, sub_a, types, sizeof types);
    CHECK(!strcmp(types, expect_a), "the signed webhook sink receives subscription A's events once each, in order");
    types_of(got, sub_b, types, sizeof types);
    CHECK(!strcmp(types, expect_b), "the signed webhook sink receives subscription B's events in order");
    size_t i;
    json_t *d;
    int all_signed = json_array_size(got) >= 9, headers_match = all_signed, forged_fails = 0;
    json_array_foreach(got, i, d) {
        all_signed &= signature_ok(d, crm_secret);
        forged_fails += !signature_ok(d, "another-secret");
        json_t *ev = json_loads(it_str(d, "body"), 0, NULL);
        headers_match &= !strcmp(it_str(ev, "id"), it_str(d, "id")) && !strcmp(it_str(ev, "type"), it_str(d, "type")) &&
                         json_is_object(json_object_get(ev, "data")) && *it_str(ev, "time") && *it_str(ev, "offer");
        json_decref(ev);
    }
    CHECK(all_signed, "every webhook delivery carries a valid HMAC-SHA256 over timestamp.body (verified with OpenSSL)");
    CHECK(forged_fails == (int)json_array_size(got), "the signature does not verify with another secret");
    CHECK(headers_match, "the id and type headers match the event {id, type, time, offer, subscription, data} in the body");
    json_decref(got);
}

/* The operator console's queues page shows each sink's delivery state (here: "dead" failing). */
static void console_shows_sinks(void)
{
    char url[300], cookie[600] = "", buf[512];
    snprintf(url, sizeof url, "%s/console/login", it_admin_url);
    struct http_header form[] = {{"Content-Type", "application/x-www-form-urlencoded"}};
    char body[128];
    snprintf(body, sizeof body, "key=%s", it_admin_key);
    struct http_request rq = {.method = "POST", .url = url, .headers = form, .nheaders = 1, .body = body,
                              .body_len = strlen(body), .timeout_ms = 20000};
    struct http_response r = {0};
    http_client_do(it_http, &rq, &r);
    const char *set = http_response_header(&r, "Set-Cookie", buf, sizeof buf);
    if (set)
        snprintf(cookie, sizeof cookie, "%.*s", (int)strcspn(set, ";"), set);
    http_response_free(&r);
    snprintf(url, sizeof url, "%s/console/queues", it_admin_url);
    struct http_header h[] = {{"Cookie", cookie}};
    struct http_request q = {.method = "GET", .url = url, .headers = h, .nheaders = 1, .timeout_ms = 20000};
    struct http_response page = {0};
    http_client_do(it_http, &q, &page);
    const char *html = page.body ? page.body : "";
    const char *table = strstr(html, "<h2>Event sinks</h2>");
    CHECK(cookie[0] && page.status == 200 && table && strstr(table, "<td>dead</td>") && strstr(table, "<td>webhook</td>"),
          "the console's queues page lists each event sink with its kind and delivery state");
    http_response_free(&page);
}

/* An operator gives up on the event a sink keeps failing on; only that sink moves past it. */
static void operator_skip(void)
{
    long st, st_wrong, st_healthy;
    console_shows_sinks();
    json_t *dead = sink_state("dead");
    json_int_t seq = json_integer_value(json_object_get(dead, "retrying_seq"));
    json_int_t pending = json_integer_value(json_object_get(dead, "pending"));
    json_decref(dead);
    json_decref(it_admin("POST", "/admin/sinks/dead/skip", json_pack("{s:I}", "seq", seq + 1000), &st_wrong));
    json_decref(it_admin("POST", "/admin/sinks/crm/retry", NULL, &st_healthy));
    json_decref(it_admin("POST", "/admin/sinks/dead/skip", json_pack("{s:I}", "seq", seq), &st));
    long long until = it_now_ms() + 10000;
    json_int_t cursor = 0, now_pending = 0;
    while (it_now_ms() < until) {
        dead = sink_state("dead");
        cursor = json_integer_value(json_object_get(dead, "cursor"));
        now_pending = json_integer_value(json_object_get(dead, "pending"));
        json_decref(dead);
        if (cursor == seq)
            break;
        usleep(30 * 1000);
    }
    CHECK(seq > 0 && st_wrong == 409 && st_healthy == 409, "skip names the event the sink is failing on; a healthy sink has nothing to retry");
    CHECK(st == 200 && cursor == seq && now_pending == pending - 1 &&
              metrics_value("saasd_sink_deliveries_total", "sink=\"dead\",outcome=\"skipped\"") == 1,
          "an operator's skip moves a failing sink past that one event, counted as skipped");
}

static void failing_sinks(struct http_sink *crm, struct http_sink *flaky)
{
    json_t *dead = sink_state("dead"), *c = sink_state("crm");
    CHECK(json_integer_value(json_object_get(dead, "delivered")) == 0 &&
              json_is_string(json_object_get(dead, "failing_since")) && *it_str(dead, "last_error") &&
              json_integer_value(json_object_get(dead, "pending")) >= 9,
          "GET /admin/sinks shows the dead sink failing since a time, its last error and its pending events");
    CHECK(json_integer_value(json_object_get(c, "delivered")) >= 9 && json_is_null(json_object_get(c, "failing_since")) &&
              json_integer_value(json_object_get(c, "pending")) == 0,
          "a sink that keeps failing does not hold up another sink: crm has delivered everything");
    json_decref(dead);
    json_decref(c);

    operator_skip();

    json_t *fl = http_sink_got(flaky);
    CHECK(json_array_size(fl) == 0 && flaky->refused > 0, "the flaky sink was down: nothing accepted, retries refused");
    json_decref(fl);
    flaky->status = 200; /* back up */
    wait_deliveries(flaky, 8, 20000);
    usleep(300 * 1000); /* give a duplicate the chance to show */
    fl = http_sink_got(flaky);
    char types[2048];
    types_of(fl, sub_a, types, sizeof types);
    CHECK(!strcmp(types, expect_a), "a sink down for a while then back gets every event once, in order per subscription");
    size_t i, others = 0;
    json_t *d;
    int signed_ok = 1;
    json_array_foreach(fl, i, d) {
        json_t *ev = json_loads(it_str(d, "body"), 0, NULL);
        others += strcmp(it_str(ev, "offer"), "ev-seats") != 0 || strncmp(it_str(ev, "type"), "subscription.", 13) != 0;
        signed_ok &= signature_ok(d, flaky_secret);
        json_decref(ev);
    }
    CHECK(others == 0 && json_array_size(fl) == 8, "the sink's filters (type glob subscription.*, offer ev-seats) let only those through");
    CHECK(signed_ok, "each sink signs with its own secret");
    json_decref(fl);
}

/* The quoted-printable-free part of a mail holding needle (data is raw MIME). */
static int mail_has(json_t *m, const char *needle) { return strstr(it_str(m, "data"), needle) != NULL; }

static void email(struct smtp_sink *smtp)
{
    long long until = it_now_ms() + 15000;
    size_t n = 0;
    while (it_now_ms() < until) {
        pthread_mutex_lock(&smtp->lock);
        n = json_array_size(smtp->mails);
        pthread_mutex_unlock(&smtp->lock);
        if (n >= 3)
            break;
        usleep(30 * 1000);
    }
    pthread_mutex_lock(&smtp->lock);
    json_t *mails = json_deep_copy(smtp->mails);
    pthread_mutex_unlock(&smtp->lock);
    CHECK(json_array_size(mails) == 3 && smtp->refused == 2,
          "the e-mail sink gets one mail per filtered event (two activations, one pending), a mail the server "
          "refused (451) sent again until accepted, once");
    json_t *first = json_array_get(mails, 0), *pending = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(mails, i, m) if (mail_has(m, "Plain: ")) pending = m;
    uint8_t *auth = NULL;
    size_t alen = 0;
    crypto_base64_decode(it_str(first, "auth"), strlen(it_str(first, "auth")), &auth, &alen);
    CHECK(auth && alen == 19 && !memcmp(auth, "\0saasd\0smtp-pass-42", alen),
          "SMTP AUTH PLAIN carries the user and the password read from password_file");
    free(auth);
    json_t *rcpt = json_object_get(first, "rcpt");
    CHECK(!strcmp(it_str(first, "from"), "<saasd@example.com>") && json_array_size(rcpt) == 2 &&
              !strcmp(json_string_value(json_array_get(rcpt, 1)), "<ops@example.com>"),
          "the envelope has the configured sender and every recipient");
    CHECK(mail_has(first, "multipart/alternative") && mail_has(first, "text/plain") && mail_has(first, "text/html") &&
              mail_has(first, "Subject: =?UTF-8?B?") && mail_has(first, "<table>"),
          "a mail has plain-text and HTML alternatives and an encoded subject (built-in templates)");
    CHECK(pending && mail_has(pending, "<p>we will &lt;b&gt;call&lt;/b&gt; you</p>") &&
              mail_has(pending, "Plain: we will <b>call</b> you"),
          "per-event templates fill placeholders, HTML-escaped in the HTML part only");
    char subject[256];
    snprintf(subject, sizeof subject, "Approve %s now", sub_b);
    struct mail_words w;
    CHECK(pending && mail_words_read(it_str(pending, "data"), &w) == 0 && !strcmp(w.text, subject),
          "the subject template is used, with the subscription filled in");
    json_decref(mails);
}

/* starttls = true (the default) on smtp:// never falls back to plain text: against a server
 * that cannot start TLS the delivery fails before AUTH, so the password never crosses in clear. */
static void starttls_required(void)
{
    for (int offer = 0; offer <= 1; offer++) {
        struct smtp_sink plain = {.offer_starttls = offer};
        if (smtp_sink_start(&plain) != 0) {
            CHECK(0, "a plain SMTP server for the STARTTLS check listens");
            return;
        }
        char url[64], err[512] = "";
        snprintf(url, sizeof url, "smtp://127.0.0.1:%u", plain.port);
        char *to[] = {"ops@example.com", NULL};
        struct sink_config cfg = {.name = "mail", .kind = SINK_SMTP, .url = url, .from = "saasd@example.com",
                                  .to = to, .username = "saasd", .password = "smtp-pass-42", .starttls = 1,
                                  .timeout_ms = 5000};
        json_t *ev = json_pack("{s:I, s:s, s:s, s:s, s:s, s:{}}", "seq", (json_int_t)1, "type",
                               "subscription.activated", "subscription", "sub-tls", "offer", "ev-seats", "time",
                               "2026-11-30T00:00:00Z", "data");
        char *text = json_dumps(ev, JSON_COMPACT);
        int rc = sink_kind_deliver(&cfg, ev, text, err, sizeof err);
        printf("# server %s STARTTLS: %s\n", offer ? "offers, then refuses," : "does not offer", err);
        CHECK(rc < 0 && plain.starttls == offer && plain.auths == 0 && json_array_size(plain.mails) == 0 && err[0] &&
                  !strstr(err, "smtp-pass-42"),
              offer ? "an smtp:// sink with STARTTLS required stops, before AUTH, when the server refuses STARTTLS"
                    : "an smtp:// sink with STARTTLS required sends nothing, not even AUTH, to a server without STARTTLS");
        free(text);
        json_decref(ev);
        smtp_sink_stop(&plain);
        json_decref(plain.mails);
    }
}

/* An smtps:// sink completes a verified TLS handshake with a relay whose certificate its
 * ca_file vouches for, and sends the mail (AUTH included) only inside it; without ca_file the
 * same self-signed relay is refused before anything is sent. */
static void smtps_verified(void)
{
    char ca[512];
    snprintf(ca, sizeof ca, "%s/relay-ca.pem", dir);
    struct smtp_sink relay = {.tls = smtp_tls_ctx(ca)};
    if (!relay.tls || smtp_sink_start(&relay) != 0) {
        CHECK(0, "a TLS SMTP relay with a certificate made for the test listens");
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "smtps://127.0.0.1:%u", relay.port);
    char *to[] = {"ops@example.com", NULL};
    json_t *ev = json_pack("{s:I, s:s, s:s, s:s, s:s, s:{}}", "seq", (json_int_t)1, "type", "subscription.activated",
                           "subscription", "sub-smtps", "offer", "ev-seats", "time", "2026-11-30T00:00:00Z", "data");
    char *text = json_dumps(ev, JSON_COMPACT);
    for (int trusted = 0; trusted <= 1; trusted++) {
        struct sink_config cfg = {.name = "mail", .kind = SINK_SMTP, .url = url, .from = "saasd@example.com",
                                  .to = to, .username = "saasd", .password = "smtp-pass-42", .starttls = 1,
                                  .ca_file = trusted ? ca : NULL, .timeout_ms = 5000};
        char err[512] = "";
        int rc = sink_kind_deliver(&cfg, ev, text, err, sizeof err);
        if (!trusted) {
            printf("# smtps relay not vouched for: %s\n", err);
            CHECK(rc < 0 && relay.handshakes == 0 && relay.auths == 0 && json_array_size(relay.mails) == 0 &&
                      strstr(err, "certificate"),
                  "an smtps:// sink refuses a relay whose certificate no trusted CA signed, before sending anything");
        } else {
            CHECK(rc == 0 && relay.handshakes == 1 && relay.auths == 1 && json_array_size(relay.mails) == 1,
                  "with ca_file naming the relay's CA, an smtps:// sink completes the TLS handshake and delivers "
                  "the mail inside it");
        }
    }
    struct smtp_sink upgrade = {.tls = relay.tls, .offer_starttls = 1};
    if (smtp_sink_start(&upgrade) == 0) {
        snprintf(url, sizeof url, "smtp://127.0.0.1:%u", upgrade.port);
        struct sink_config cfg = {.name = "mail", .kind = SINK_SMTP, .url = url, .from = "saasd@example.com",
                                  .to = to, .username = "saasd", .password = "smtp-pass-42", .starttls = 1,
                                  .ca_file = ca, .timeout_ms = 5000};
        char err[512] = "";
        int rc = sink_kind_deliver(&cfg, ev, text, err, sizeof err);
        CHECK(rc == 0 && upgrade.starttls == 1 && upgrade.handshakes == 1 && upgrade.auths == 1 &&
                  upgrade.auths_in_tls == 1 && json_array_size(upgrade.mails) == 1,
              "an smtp:// sink upgrades with STARTTLS, verifies the relay by ca_file, and authenticates and "
              "delivers only inside TLS");
        smtp_sink_stop(&upgrade);
        json_decref(upgrade.mails);
    } else {
        CHECK(0, "a STARTTLS SMTP relay listens");
    }
    free(text);
    json_decref(ev);
    smtp_sink_stop(&relay);
    SSL_CTX_free(relay.tls);
    json_decref(relay.mails);
}

/* A subject longer than one encoded word (RFC 2047 section 2: at most 75 characters) arrives
 * at the SMTP server as several words on folded lines, each whole UTF-8 on its own (section 5). */
static void long_subject(void)
{
    struct smtp_sink server = {0};
    if (smtp_sink_start(&server) != 0) {
        CHECK(0, "an SMTP server for the long subject listens");
        return;
    }
    char templates[512], path[600], subject[512] = "", url[64];
    snprintf(templates, sizeof templates, "%s/long-subject", dir);
    mkdir(templates, 0700);
    const char *parts[] = {"Nouvel abonnement {{subscription}} : ", "café crème à 12 € ", "日本の顧客 ", "naïve-pro "};
    for (int i = 0; strlen(subject) < 190; i++)
        strcat(subject, parts[i == 0 ? 0 : 1 + (i - 1) % 3]);
    snprintf(path, sizeof path, "%s/subscription.activated.subject", templates);
    it_write_file(path, subject);
    snprintf(url, sizeof url, "smtp://127.0.0.1:%u", server.port);
    char *to[] = {"ops@example.com", NULL};
    struct sink_config cfg = {.name = "mail", .kind = SINK_SMTP, .url = url, .from = "saasd@example.com", .to = to,
                              .starttls = 0, .templates = templates, .timeout_ms = 5000};
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{}}", "id", "ev-long", "type", "subscription.activated",
                           "subscription", "sub-long", "offer", "ev-seats", "time", "2026-11-30T00:00:00.000Z", "data");
    char *text = json_dumps(ev, JSON_COMPACT), err[512] = "";
    int rc = sink_kind_deliver(&cfg, ev, text, err, sizeof err);
    char *want = events_render(subject, ev, 0);
    pthread_mutex_lock(&server.lock);
    json_t *mail = json_incref(json_array_get(server.mails, 0));
    pthread_mutex_unlock(&server.lock);
    struct mail_words w;
    int read = mail ? mail_words_read(it_str(mail, "data"), &w) : -1;
    printf("# a %zu-byte subject: %d words on %d lines, longest word %zu, longest line %zu%s%s\n", strlen(want),
           w.words, w.lines, w.longest_word, w.longest_line, read ? "; " : "", read ? w.why : "");
    CHECK(rc == 0 && read == 0 && w.words >= 4 && w.lines == w.words,
          "a ~200-byte subject reaches the SMTP server as several encoded words on folded lines");
    CHECK(read == 0 && w.longest_word <= 75 && w.longest_line <= 76,
          "each encoded word of the mail's subject is at most 75 characters, each line at most 76");
    CHECK(read == 0 && w.all_utf8, "each encoded word of the mail's subject decodes to whole UTF-8 characters on its own");
    CHECK(read == 0 && want && !strcmp(w.text, want), "the mail's decoded subject words, concatenated, are the subject");
    free(want);
    free(text);
    json_decref(ev);
    json_decref(mail);
    smtp_sink_stop(&server);
    json_decref(server.mails);
}

static void chat(struct http_sink *chatsink)
{
    wait_deliveries(chatsink, 2, 15000);
    json_t *got = http_sink_got(chatsink);
    json_t *slack = NULL, *teams = NULL;
    size_t i;
    json_t *d;
    json_array_foreach(got, i, d) {
        json_t *body = json_loads(it_str(d, "body"), 0, NULL);
        if (!strcmp(it_str(d, "path"), "/slack"))
            slack = body;
        else if (!strcmp(it_str(d, "path"), "/teams"))
            teams = body;
        else
            json_decref(body);
    }
    CHECK(json_array_size(got) == 2, "Slack and Teams each get the one event their filter names");
    CHECK(slack && strstr(it_str(slack, "text"), sub_b) && strstr(it_str(slack, "text"), "waits for approval") &&
              json_is_array(json_object_get(slack, "blocks")),
          "the Slack sink posts Slack's incoming-webhook JSON (text + blocks) with the summary");
    json_t *att = json_array_get(json_object_get(teams, "attachments"), 0);
    json_t *card = json_object_get(att, "content");
    CHECK(teams && !strcmp(it_str(teams, "type"), "message") &&
              !strcmp(it_str(att, "contentType"), "application/vnd.microsoft.card.adaptive") &&
              !strcmp(it_str(card, "type"), "AdaptiveCard") &&
              strstr(it_str(json_array_get(json_object_get(card, "body"), 0), "text"), sub_b),
          "the Teams sink posts a message with an Adaptive Card carrying the summary (URL read from url_file)");
    json_decref(slack);
    json_decref(teams);
    json_decref(got);
}

static void metrics(void)
{
    char *raw = it_metrics_text(NULL);
    CHECK(raw && strstr(raw, "# TYPE saasd_sink_deliveries_total counter") && strstr(raw, "# HELP saasd_sink_pending") &&
              strstr(raw, "saasd_sink_deliveries_total{sink=\"dead\",outcome=\"delivered\"} 0"),
          "/metrics has saasd_sink_deliveries_total and saasd_sink_pending with HELP/TYPE, a sink's counters from 0");
    free(raw);
    CHECK(metrics_value("saasd_sink_deliveries_total", "sink=\"crm\",outcome=\"delivered\"") >= 9 &&
              metrics_value("saasd_sink_deliveries_total", "sink=\"dead\",outcome=\"failed\"") > 0 &&
              metrics_value("saasd_sink_pending", "sink=\"dead\"") >= 9,
          "the counters and the pending gauge follow the deliveries");
}

/* Restart the daemon on the same store; one more purchase. */
static struct daemon *restart(struct daemon *d, const char *conf, struct http_sink *crm)
{
    json_t *got = http_sink_got(crm);
    size_t before = json_array_size(got);
    json_decref(got);
    json_t *dead = sink_state("dead");
    json_int_t dead_pending = json_integer_value(json_object_get(dead, "pending"));
    json_decref(dead);
    daemon_stop(d);
    d = it_start_daemon(conf);
    if (!d)
        return NULL;
    char sub_c[128];
    CHECK(land("ev-seats", 2, sub_c, sizeof sub_c), "after a restart a purchase lands");
    wait_deliveries(crm, before + 1, 15000);
    usleep(300 * 1000);
    got = http_sink_got(crm);
    json_t *last = json_loads(it_str(json_array_get(got, json_array_size(got) - 1), "body"), 0, NULL);
    CHECK(json_array_size(got) == before + 1 && !strcmp(it_str(last, "subscription"), sub_c) &&
              !strcmp(it_str(last, "type"), "subscription.activated"),
          "a restart resumes a sink at its stored cursor: nothing delivered again, the new event delivered");
    json_decref(last);
    json_decref(got);
    dead = sink_state("dead");
    CHECK(json_integer_value(json_object_get(dead, "pending")) == dead_pending + 1 &&
              json_integer_value(json_object_get(dead, "delivered")) == 0,
          "a restart keeps a failing sink's undelivered events: none is skipped");
    json_decref(dead);
    return d;
}

/* ------------------------------------------------------------------------------------------ */

static void same_commit(void)
{
    char *t = check_tmpdir("events-store");
    struct store *s = NULL;
    struct store_batch *b = NULL;
    size_t n = 99;
    store_open(t, &(struct store_options){.no_sync = 1}, &s);
    store_batch_new(&b);
    store_batch_put(b, STORE_SUBSCRIPTIONS, "sub-1", 5, "{}", 2);
    store_commit(s, b);
    store_batch_clear(b);
    store_batch_require_absent(b, STORE_SUBSCRIPTIONS, "sub-1", 5); /* the decision's guard fails */
    store_batch_put(b, STORE_SUBSCRIPTIONS, "sub-2", 5, "{}", 2);
    events_add(b, "subscription.activated", "o", "sub-2", NULL);
    int rc = store_commit(s, b);
    store_count(s, STORE_EVENTS, &n);
    CHECK(rc == SAASD_EEXIST && n == 0, "a decision that fails to commit leaves no event");
    store_batch_clear(b);
    store_batch_put(b, STORE_SUBSCRIPTIONS, "sub-2", 5, "{}", 2);
    events_add(b, "subscription.activated", "o", "sub-2", json_pack("{s:i}", "quantity", 3));
    rc = store_commit(s, b);
    store_count(s, STORE_EVENTS, &n);
    CHECK(rc == 0 && n == 1, "the decision's commit carries its event");
    store_batch_free(b);
    unsigned ver = 0;
    store_schema_version(s, &ver);
    CHECK(ver == 5, "the store's schema is version 5 (the events database, after the outbox index and the timers)");
    store_close(s);
    check_rm_rf(t);
    free(t);
}

static void catalogue_in_readme(void)
{
    FILE *f = fopen("README.md", "r");
    char line[2048];
    int in = 0, rows = 0, matched = 0;
    size_t n;
    const struct event_type *cat = events_catalogue(&n);
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## Events and notifications", 27))
            in = 1;
        else if (in && !strncmp(line, "## ", 3))
            break;
        char type[128];
        if (in && sscanf(line, "| `%127[a-z._]` |", type) == 1 && strchr(type, '.')) {
            rows++;
            matched += (size_t)rows <= n && !strcmp(cat[rows - 1].type, type);
        }
    }
    if (f)
        fclose(f);
    CHECK(rows == (int)n && matched == rows, "the README's event table lists the catalogue's types, in its order");
    int examples_ok = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(cat[i].example, 0, NULL);
        examples_ok &= json_is_object(j);
        json_decref(j);
    }
    CHECK(examples_ok, "every catalogue example is a JSON object");
}

static int config_error(const char *text, const char *want)
{
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/bad.conf", dir);
    char full[4096];
    snprintf(full, sizeof full,
             "entra = { tenant_id = \"t\", client_id = \"c\", secret_env = \"SAASD_IT_SECRET\" }\n"
             "admin = { enabled = false }\n%s", text);
    it_write_file(path, full);
    struct saasd_config *c = NULL;
    int rc = config_load(path, &c, err, sizeof err);
    config_free(c);
    if (!strstr(err, want))
        printf("# got: %s\n", err);
    return rc != 0 && strstr(err, want) != NULL;
}

static void config_checks(void)
{
    CHECK(config_error("sinks = {\n  crm = { kind = \"webhook\", url = \"http://x\", secret_env = \"SAASD_IT_SECRET\",\n"
                       "    colour = \"red\" },\n}\n", ":5: sinks.crm.colour: unknown key"),
          "an unknown sink key is refused with file:line");
    CHECK(config_error("sinks = { crm = { kind = \"webhook\", url = \"http://x\" } }\n", "sinks.crm: secret_env or secret_file is required"),
          "a webhook sink without a signing secret is refused");
    CHECK(config_error("sinks = { crm = { kind = \"pager\", url = \"http://x\" } }\n", "sinks.crm.kind: expected"),
          "an unknown sink kind is refused");
    CHECK(config_error("sinks = { m = { kind = \"smtp\", url = \"smtp://h\", from = \"a@b\" } }\n", "sinks.m: an smtp sink needs from and to"),
          "an smtp sink without recipients is refused");
    CHECK(config_error("sinks = { m = { kind = \"slack\", url = \"http://x\", events = \"subscription.*\" } }\n",
                       "sinks.m.events: expected a list of strings"),
          "sink filters are lists of strings");
    CHECK(config_error("sinks = { m = { kind = \"smtp\", url = \"smtps://h\", from = \"a@b\", to = { \"c@d\" },\n"
                       "  ca_file = \"/nonexistent/relay-ca.pem\" } }\n",
                       "sinks.m.ca_file: cannot read /nonexistent/relay-ca.pem"),
          "an smtp sink's ca_file that cannot be read is refused at load, not at the first mail");
    CHECK(config_error("sinks = { m = { kind = \"slack\", url = \"https://x\", ca_file = \"/etc/hosts\" } }\n",
                       "sinks.m.ca_file: only an smtp sink takes a CA file"),
          "a ca_file on a sink that is not smtp is refused");
}

int main(void)
{
    char rules[512], path[512], conf[512], extra[4096];
    struct emu *emu = it_setup("events", dir, rules);
    if (!emu)
        return CHECK_DONE();
    same_commit();
    catalogue_in_readme();
    config_checks();
    starttls_required();
    smtps_verified();
    long_subject();

    snprintf(path, sizeof path, "%s/ev-seats.lua", rules);
    it_write_file(path, seats_rule);
    snprintf(path, sizeof path, "%s/ev-pending.lua", rules);
    it_write_file(path, pending_rule);
    snprintf(path, sizeof path, "%s/crm.secret", dir);
    it_write_file(path, crm_secret);
    snprintf(path, sizeof path, "%s/smtp.pass", dir);
    it_write_file(path, "smtp-pass-42\n");
    snprintf(path, sizeof path, "%s/templates", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/templates/subscription.pending_approval.subject", dir);
    it_write_file(path, "Approve {{subscription}} now");
    snprintf(path, sizeof path, "%s/templates/subscription.pending_approval.txt", dir);
    it_write_file(path, "Plain: {{data.detail}}\n");
    snprintf(path, sizeof path, "%s/templates/subscription.pending_approval.html", dir);
    it_write_file(path, "<p>{{data.detail}}</p>\n");
    setenv("EV_FLAKY_SECRET", flaky_secret, 1);

    struct http_sink crm = {0}, flaky = {0}, chatsink = {0};
    struct smtp_sink smtp = {.refuse = 2};
    CHECK(http_sink_start(&crm, 200) == 0 && http_sink_start(&flaky, 503) == 0 && http_sink_start(&chatsink, 200) == 0 &&
              smtp_sink_start(&smtp) == 0,
          "the HTTP and SMTP test sinks listen on 127.0.0.1");
    snprintf(path, sizeof path, "%s/teams.url", dir);
    char teams_url[128];
    snprintf(teams_url, sizeof teams_url, "http://127.0.0.1:%u/teams\n", chatsink.port);
    it_write_file(path, teams_url);
    snprintf(extra, sizeof extra,
             "metering = { interval = 0 }\n"
             "events = { retry_base_ms = 50, retry_cap_ms = 300, poll_ms = 20 }\n"
             "sinks = {\n"
             "  crm = { kind = \"webhook\", url = \"http://127.0.0.1:%u/hook\", secret_file = \"%s/crm.secret\" },\n"
             "  flaky = { kind = \"webhook\", url = \"http://127.0.0.1:%u/hook\", secret_env = \"EV_FLAKY_SECRET\",\n"
             "            events = { \"subscription.*\" }, offers = { \"ev-seats\" } },\n"
             "  dead = { kind = \"webhook\", url = \"http://127.0.0.1:%u/hook\", secret_env = \"EV_FLAKY_SECRET\", timeout_ms = 500 },\n"
             "  mail = { kind = \"smtp\", url = \"smtp://127.0.0.1:%u\", from = \"saasd@example.com\",\n"
             "           to = { \"sales@example.com\", \"ops@example.com\" }, username = \"saasd\",\n"
             "           password_file = \"%s/smtp.pass\", starttls = false, templates = \"%s/templates\",\n"
             "           events = { \"subscription.activated\", \"subscription.pending_approval\" } },\n"
             "  slack = { kind = \"slack\", url = \"http://127.0.0.1:%u/slack\", events = { \"*.pending_approval\" } },\n"
             "  teams = { kind = \"teams\", url_file = \"%s/teams.url\", events = { \"subscription.pending_*\" } },\n"
             "}\n",
             crm.port, dir, flaky.port, it_free_port(), smtp.port, dir, dir, chatsink.port, dir);
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), extra);
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();
    it_offer("ev-seats");
    it_offer("ev-pending");

    drive_flows();
    signed_webhooks(&crm);
    failing_sinks(&crm, &flaky);
    email(&smtp);
    chat(&chatsink);
    metrics();

    d = restart(d, conf, &crm);

    daemon_stop(d);
    httpd_stop(crm.h);
    httpd_stop(flaky.h);
    httpd_stop(chatsink.h);
    smtp_sink_stop(&smtp);
    json_decref(crm.got);
    json_decref(flaky.got);
    json_decref(chatsink.got);
    json_decref(smtp.mails);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
