/* saasd run: the main job on one machine, no Azure account. Starts the built-in emulator (as
 * Microsoft) and the daemon (example config and rules) on loopback, creates a purchase and
 * prints the landing URL to open. With --demo it walks the whole life cycle by itself:
 * purchase, landing, activation, plan change accepted, seat reduction refused by the rule,
 * suspend, reinstate, unsubscribe; printing each rule decision and both sides' final state. */
#include "cmd/args.h"
#include "cmd/cmd.h"

#include "core/config.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/log.h"
#include "daemon/daemon.h"
#include "emu/emu.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct runner {
    struct http_client *http;
    char emu_url[256];
    char admin_url[256];
    char public_url[256];
    const char *admin_key;
};

/* One JSON call; returns the parsed body (or NULL) and the status. */
static json_t *call(struct runner *r, const char *method, const char *url, json_t *body, int admin, long *status)
{
    char auth[512];
    struct http_header h[2] = {{"Content-Type", "application/json"}, {"Authorization", auth}};
    snprintf(auth, sizeof auth, "Bearer %s", r->admin_key ? r->admin_key : "");
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct http_request rq = {.method = method, .url = url, .headers = h, .nheaders = admin ? 2 : 1,
                              .body = text, .body_len = text ? strlen(text) : 0, .timeout_ms = 60000};
    struct http_response rs;
    int rc = http_client_do(r->http, &rq, &rs);
    free(text);
    json_decref(body);
    *status = rc ? 0 : rs.status;
    json_t *out = rc ? NULL : json_loadb(rs.body, rs.body_len, 0, NULL);
    http_response_free(&rs);
    return out;
}

static json_t *emu_call(struct runner *r, const char *method, const char *path, json_t *body, long *status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", r->emu_url, path);
    return call(r, method, url, body, 0, status);
}

static json_t *admin_call(struct runner *r, const char *method, const char *path, json_t *body, long *status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", r->admin_url, path);
    return call(r, method, url, body, 1, status);
}

static const char *str(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "-";
}

/* ---- the buyer's browser, as far as the demo needs one: two cookies, no redirects followed ---- */

#define DEMO_BUYER_OID "aaaaaaaa-0001-4000-8000-000000000001" /* the emulator's default purchaser */

struct browser {
    char signin[300], session[4300]; /* the two cookies of the landing page */
    char location[4096];
    char csrf[128];
};

/* Keep the value of cookie name when the answer sets it (an empty value deletes it). */
static void keep_cookie(const char *headers, const char *name, char *value, size_t size)
{
    char want[64];
    snprintf(want, sizeof want, "\nSet-Cookie: %s=", name);
    const char *p = headers ? strcasestr(headers, want) : NULL;
    if (p)
        snprintf(value, size, "%.*s", (int)strcspn(p + strlen(want), ";\r\n"), p + strlen(want));
}

static long browse(struct runner *r, struct browser *b, const char *method, const char *url, const char *form)
{
    char full[4200], cookies[4700];
    snprintf(full, sizeof full, "%s%s", url[0] == '/' ? r->public_url : "", url);
    snprintf(cookies, sizeof cookies, "saasd_signin=%s; saasd_session=%s", b->signin, b->session);
    struct http_header h[2] = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", cookies}};
    struct http_request rq = {.method = method, .url = full, .headers = h, .nheaders = 2,
                              .body = form, .body_len = form ? strlen(form) : 0, .timeout_ms = 60000};
    struct http_response rs;
    long st = http_client_do(r->http, &rq, &rs) ? 0 : rs.status;
    keep_cookie(rs.headers, "saasd_signin", b->signin, sizeof b->signin);
    keep_cookie(rs.headers, "saasd_session", b->session, sizeof b->session);
    const char *loc = http_response_header(&rs, "Location", b->location, sizeof b->location);
    if (!loc)
        b->location[0] = 0;
    const char *c = rs.body ? strstr(rs.body, "name=\"csrf\" value=\"") : NULL;
    if (c)
        sscanf(c + strlen("name=\"csrf\" value=\""), "%127[^\"]", b->csrf);
    http_response_free(&rs);
    return st;
}

/* What a buyer does in the browser: open the landing link, sign in at the emulator's Entra ID as
 * the purchaser, look at the confirmation page, press Confirm. Prints each step's answer. */
static void buyer_confirms(struct runner *r, const char *landing)
{
    struct browser b = {0};
    char url[4096];
    long st = browse(r, &b, "GET", landing, NULL);
    printf("    landing page: HTTP %ld, sends the buyer to sign in with Entra ID\n", st);
    snprintf(url, sizeof url, "%s", b.location);
    st = browse(r, &b, "POST", url, "user=" DEMO_BUYER_OID);
    snprintf(url, sizeof url, "%s", b.location);
    st = st == 302 ? browse(r, &b, "GET", url, NULL) : st;
    printf("    signed in as %s: HTTP %ld\n", EMU_BUYER_EMAIL, st);
    st = browse(r, &b, "GET", "/landing/status", NULL);
    printf("    confirmation page (offer, plan, seats, buyer): HTTP %ld\n", st);
    char form[256]; /* seats-pro asks for the company name; other offers ignore it */
    snprintf(form, sizeof form, "csrf=%s&company=Contoso+Customer+Ltd", b.csrf);
    st = browse(r, &b, "POST", "/landing/confirm", form);
    printf("    the buyer presses Confirm: HTTP %ld\n", st);
}

static unsigned short port_of(const char *url)
{
    const char *colon = strrchr(url, ':');
    return colon ? (unsigned short)atoi(colon + 1) : 0;
}

/* Wait until the emulator's operation is final, then until saasd has no queued work. */
static void settle(struct runner *r, const char *op_id)
{
    char path[256];
    long st;
    for (int i = 0; op_id && i < 300; i++) {
        snprintf(path, sizeof path, "/_emulator/operations/%s", op_id);
        json_t *op = emu_call(r, "GET", path, NULL, &st);
        const char *s = str(op, "status");
        int final = !strcmp(s, "Succeeded") || !strcmp(s, "Failed") || !strcmp(s, "Conflict");
        json_decref(op);
        if (final)
            break;
        usleep(100 * 1000);
    }
    for (int i = 0; i < 300; i++) { /* the webhook of a notify-only action may still be on its way */
        snprintf(path, sizeof path, "/_emulator/webhooks");
        json_t *w = emu_call(r, "GET", path, NULL, &st);
        int pending = 0;
        size_t k;
        json_t *item;
        json_array_foreach(json_object_get(w, "deliveries"), k, item) pending += !strcmp(str(item, "status"), "pending");
        json_decref(w);
        if (!pending)
            break;
        usleep(100 * 1000);
    }
    usleep(300 * 1000);
}

static void print_last_decision(struct runner *r, const char *sub_id, const char *step)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/admin/subscriptions/%s/history", sub_id);
    json_t *h = admin_call(r, "GET", path, NULL, &st);
    json_t *audit = json_object_get(h, "audit");
    json_t *last = json_array_get(audit, json_array_size(audit) - 1);
    const char *sha = str(last, "rule_sha256");
    printf("    %-18s saasd decided: %-14s %s\n", step, str(last, "decision"), str(last, "detail"));
    if (strcmp(sha, "-"))
        printf("    %-18s by %s (sha256 %.16s...)\n", "", str(last, "rule_file"), sha);
    json_decref(h);
}

static void print_states(struct runner *r, const char *sub_id)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s", sub_id);
    json_t *ms = emu_call(r, "GET", path, NULL, &st);
    snprintf(path, sizeof path, "/admin/subscriptions/%s", sub_id);
    json_t *both = admin_call(r, "GET", path, NULL, &st);
    json_t *local = json_object_get(both, "local");
    printf("    Microsoft: status=%s plan=%s quantity=%lld | saasd: status=%s plan=%s quantity=%lld\n",
           str(ms, "saasSubscriptionStatus"), str(ms, "planId"), (long long)json_integer_value(json_object_get(ms, "quantity")),
           str(local, "status"), str(local, "planId"), (long long)json_integer_value(json_object_get(local, "quantity")));
    json_decref(ms);
    json_decref(both);
}

static const char *customer_action(struct runner *r, const char *sub_id, const char *verb, json_t *body, char *op_id,
                                   size_t size)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s/%s", sub_id, verb);
    json_t *res = emu_call(r, "POST", path, body ? body : json_object(), &st);
    snprintf(op_id, size, "%s", str(res, "id"));
    if (!strcmp(op_id, "-"))
        snprintf(op_id, size, "%s", str(json_object_get(res, "operation"), "id"));
    json_decref(res);
    return st >= 200 && st < 300 ? op_id : NULL;
}

/* The example offer rules/seats-pro.lua decides for: per-seat plans team and business. */
static void create_seats_offer(struct runner *r)
{
    long st;
    json_t *offer = json_pack("{s:s, s:[{s:s, s:s, s:b, s:i, s:i}, {s:s, s:s, s:b, s:i, s:i}]}", "offerId", "seats-pro",
                              "plans", "planId", "team", "displayName", "Team", "isPricePerSeat", 1, "minQuantity", 1,
                              "maxQuantity", 50, "planId", "business", "displayName", "Business", "isPricePerSeat", 1,
                              "minQuantity", 1, "maxQuantity", 500);
    json_decref(emu_call(r, "POST", "/_emulator/offers", offer, &st));
}

/* One customer action at Microsoft, then what saasd decided and both sides' state. */
static void step(struct runner *r, const char *sub_id, const char *verb, json_t *body, const char *label)
{
    char op[128];
    if (customer_action(r, sub_id, verb, body, op, sizeof op))
        settle(r, op);
    print_last_decision(r, sub_id, label);
    print_states(r, sub_id);
}

/* Metered billing: rules/metered-api.lua bills only the API calls above the plan's allowance. */
static void demo_metering(struct runner *r)
{
    long st;
    printf("\n==> 8. Another customer buys 'metered-api' (plan 'basic': 10000 API calls a month included)\n");
    json_decref(emu_call(r, "POST", "/_emulator/offers",
                         json_pack("{s:s, s:[{s:s, s:s, s:[s]}, {s:s, s:s, s:[s]}]}", "offerId", "metered-api", "plans",
                                   "planId", "basic", "displayName", "Basic", "dimensions", "api-calls", "planId", "pro",
                                   "displayName", "Pro", "dimensions", "api-calls"),
                         &st));
    json_t *p = emu_call(r, "POST", "/_emulator/purchases", json_pack("{s:s, s:s}", "offerId", "metered-api", "planId", "basic"),
                         &st);
    char sub_id[64];
    snprintf(sub_id, sizeof sub_id, "%s", str(p, "subscriptionId"));
    buyer_confirms(r, str(p, "landingUrl"));
    json_decref(p);
    print_states(r, sub_id);

    printf("\n==> 9. The ISV's app reports 9000, then 1500 API calls made two hours ago; the offer's usage rule\n"
           "       bills only what lies above the allowance, and saasd sends the closed hour to Microsoft\n");
    json_int_t when = ((json_int_t)time(NULL) / 3600 - 2) * 3600 * 1000 + 60000;
    const double reports[] = {9000, 1500};
    for (int i = 0; i < 2; i++) {
        json_t *a = admin_call(r, "POST", "/admin/usage",
                               json_pack("{s:s, s:s, s:f, s:I}", "subscriptionId", sub_id, "dimension", "api-calls",
                                         "quantity", reports[i], "time", when),
                               &st);
        printf("    reported %6.0f calls: HTTP %ld, billed %g\n", reports[i], st,
               json_number_value(json_object_get(a, "billed")));
        json_decref(a);
    }
    json_decref(admin_call(r, "POST", "/admin/usage/flush", json_pack("{s:b}", "ignore_grace", 1), &st));
    json_t *u = emu_call(r, "GET", "/_emulator/usage", NULL, &st);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(u, "usage"), i, e) if (!strcmp(str(e, "resourceId"), sub_id))
        printf("    Microsoft recorded: %s %g at %s (usageEventId %s)\n", str(e, "dimension"),
               json_number_value(json_object_get(e, "quantity")), str(e, "effectiveStartTime"), str(e, "usageEventId"));
    json_decref(u);
}

static int demo(struct runner *r)
{
    long st;
    printf("\n==> 1. A customer buys 'seats-pro' (plan 'team', 10 seats) on the marketplace\n");
    create_seats_offer(r);
    json_t *p = emu_call(r, "POST", "/_emulator/purchases",
                         json_pack("{s:s, s:s, s:i}", "offerId", "seats-pro", "planId", "team", "quantity", 10), &st);
    if (st != 201) {
        fprintf(stderr, "demo: purchase failed (HTTP %ld)\n", st);
        json_decref(p);
        return 1;
    }
    char sub_id[64], landing[2048];
    snprintf(sub_id, sizeof sub_id, "%s", str(p, "subscriptionId"));
    snprintf(landing, sizeof landing, "%s", str(p, "landingUrl"));
    json_decref(p);
    printf("    subscription %s\n", sub_id);

    printf("\n==> 2. The customer opens the landing page, signs in and confirms\n    %s\n", landing);
    buyer_confirms(r, landing);
    print_last_decision(r, sub_id, "provision:");
    print_states(r, sub_id);

    printf("\n==> 3. The customer changes plan to 'business' (the rule accepts)\n");
    step(r, sub_id, "change-plan", json_pack("{s:s}", "planId", "business"), "change_plan:");

    printf("\n==> 4. The ISV's app records 6 seats in use; the customer asks for 3 seats (the rule refuses)\n");
    char path[256];
    snprintf(path, sizeof path, "/admin/offers/seats-pro/store/in_use:%s", sub_id);
    json_decref(admin_call(r, "PUT", path, json_pack("{s:s}", "value", "6"), &st));
    step(r, sub_id, "change-quantity", json_pack("{s:i}", "quantity", 3), "change_quantity:");

    printf("\n==> 5. Payment fails: Microsoft suspends the subscription\n");
    step(r, sub_id, "suspend", NULL, "suspend:");
    printf("\n==> 6. The customer pays: Microsoft reinstates it\n");
    step(r, sub_id, "reinstate", NULL, "reinstate:");
    printf("\n==> 7. The customer cancels\n");
    step(r, sub_id, "unsubscribe", NULL, "unsubscribe:");

    printf("\n==> Audit trail (GET /admin/subscriptions/%s/history)\n", sub_id);
    snprintf(path, sizeof path, "/admin/subscriptions/%s/history", sub_id);
    json_t *h = admin_call(r, "GET", path, NULL, &st);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(h, "audit"), i, a)
        printf("    %-15s %-14s %s\n", str(a, "action"), str(a, "decision"), str(a, "rule_sha256"));
    json_decref(h);
    demo_metering(r);
    printf("\ndemo finished\n");
    return 0;
}

static void help(FILE *f)
{
    fprintf(f, "usage: saasd run [--config FILE] [--demo]\n"
               "Starts the built-in emulator (playing Microsoft, at marketplace.base_url) and the daemon,\n"
               "creates a purchase and prints the landing URL to open in a browser. Ctrl-C stops both.\n"
               "--config FILE  the config (default " CMD_DEFAULT_CONFIG ")\n"
               "--demo         walk the whole subscription life cycle non-interactively and exit.\n");
}

/* The emulator plays Microsoft for cfg's daemon: its tenant and apps, and the daemon's public
 * URLs (webhook, landing) at r's public URL. */
static void emulator_options(const struct saasd_config *cfg, const char *webhook, const char *landing,
                             struct emu_options *eo)
{
    emu_options_defaults(eo);
    eo->port = port_of(cfg->marketplace_url);
    eo->tenant_id = cfg->tenant_id;
    eo->client_id = cfg->client_id;
    eo->client_secret = cfg->client_secret;       /* NULL with a certificate: the default one */
    eo->client_cert_file = cfg->client_cert_file; /* the emulator knows the daemon's certificate */
    eo->webhook_url = webhook;
    eo->landing_url = landing;
    /* Buyer sign-in: the emulator knows the landing app (the publisher app, or landing.client_id
     * with its own secret) and the daemon's redirect URI. */
    eo->redirect_uris = cfg->landing_redirect_uri;
    if (cfg->landing_client_id && strcmp(cfg->landing_client_id, cfg->client_id)) {
        eo->signin_client_id = cfg->landing_client_id;
        eo->signin_client_secret = cfg->landing_secret;
    }
    eo->op_delay_ms = 300;
}

/* The emulator, then the daemon (which owns cfg from then on); r's URLs and client set. On
 * failure, said on stderr and nothing left running (cfg freed). */
static int start_both(struct saasd_config *cfg, struct runner *r, struct emu **emu, struct daemon **d)
{
    snprintf(r->public_url, sizeof r->public_url, "http://%s:%d", cfg->listen_addr, cfg->listen_port);
    char webhook[300], landing[300];
    snprintf(webhook, sizeof webhook, "%s/webhook", r->public_url);
    snprintf(landing, sizeof landing, "%s/landing", r->public_url);
    struct emu_options eo;
    emulator_options(cfg, webhook, landing, &eo);
    int rc = emu_start(&eo, emu);
    if (rc) {
        fprintf(stderr, "saasd run: the emulator could not start on %s: %s\n", cfg->marketplace_url, saasd_strerror(rc));
        config_free(cfg);
        return rc;
    }
    snprintf(r->emu_url, sizeof r->emu_url, "%s", emu_base_url(*emu));
    rc = daemon_start(cfg, d); /* the daemon owns cfg from here */
    if (rc) {
        fprintf(stderr, "saasd run: the daemon could not start: %s\n", saasd_strerror(rc));
        emu_stop(*emu);
        return rc;
    }
    r->admin_key = (*d)->cfg->admin_key;
    snprintf(r->admin_url, sizeof r->admin_url, "http://127.0.0.1:%u",
             (*d)->admin_httpd ? httpd_port((*d)->admin_httpd) : 0);
    http_client_new(NULL, &r->http);
    return 0;
}

/* A purchase waiting for a buyer in a browser, the way to walk it, and serving until a signal. */
static void serve_interactive(struct runner *r, const struct daemon *d, const sigset_t *set)
{
    long st;
    create_seats_offer(r);
    json_t *p = emu_call(r, "POST", "/_emulator/purchases",
                         json_pack("{s:s, s:s, s:i}", "offerId", "seats-pro", "planId", "team", "quantity", 10), &st);
    printf("\nsaasd is serving on %s (admin API on %s), the emulator plays Microsoft on %s.\n", r->public_url,
           r->admin_url, r->emu_url);
    const char *sid = str(json_object_get(p, "subscription"), "id");
    printf("A customer just bought 'seats-pro' (plan 'team', 10 seats; rules/seats-pro.lua decides).\n"
           "Open the landing page in a browser and walk the buyer's way:\n\n    %s\n\n",
           str(p, "landingUrl"));
    printf("  1. saasd sends you to the emulator's Entra ID sign-in: pick Alex Buyer, the purchaser\n"
           "     (Robin Other is in another tenant, Pat Personal has a personal Microsoft account).\n"
           "  2. The confirmation page shows offer, plan, seats and you: press \"Confirm and activate\".\n"
           "  3. Reload: the same page, and no second Activate at Microsoft:\n"
           "       curl -s '%s/_emulator/calls?path=*/activate'\n"
           "  4. Microsoft suspends it, the customer clicks \"Manage account\": open the landingUrl of\n"
           "       curl -s -X POST %s/_emulator/subscriptions/%s/suspend\n"
           "       curl -s -X POST %s/_emulator/subscriptions/%s/landing-token\n\n",
           r->emu_url, r->emu_url, sid, r->emu_url, sid);
    printf("Then: curl -H \"Authorization: Bearer $(cat %s)\" %s/admin/subscriptions\n",
           d->cfg->admin_key_file ? d->cfg->admin_key_file : "<admin key>", r->admin_url);
    printf("Ctrl-C stops both.\n");
    fflush(stdout);
    json_decref(p);
    int sig;
    sigwait(set, &sig);
}

int cmd_run(int argc, char **argv)
{
    const char *config = NULL, *args[CMD_MAX_ARGS];
    int want_demo = 0;
    const struct cmd_opt opts[] = {{"--config", "-c", &config, NULL}, {"--demo", NULL, NULL, &want_demo}, {NULL}};
    const struct cmd_spec spec = {"saasd run [--config FILE] [--demo]", help, opts, 0, 0};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
    struct saasd_config *cfg = NULL;
    if (cmd_load_config(config, &cfg) != 0)
        return 1;
    sigset_t set;
    cmd_block_signals(&set, 0);
    struct runner r = {0};
    struct emu *emu = NULL;
    struct daemon *d = NULL;
    if (start_both(cfg, &r, &emu, &d) != 0)
        return 1;
    status = 0;
    if (want_demo)
        status = demo(&r);
    else
        serve_interactive(&r, d, &set);
    http_client_free(r.http);
    daemon_stop(d);
    emu_stop(emu);
    return status;
}
