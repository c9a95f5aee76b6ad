/* The landing page against the emulator playing Entra ID for buyers and the marketplace: no
 * GET activates anything; only a signed-in, CSRF-checked POST runs provision and Activate; every
 * forged or spoiled step is refused with a page that says what to do, and leaves the
 * subscription PendingFulfillmentStart at Microsoft with no decision stored. */
#include "it_support.h"

static char dir[256];

static const char *land_rule =
    "return {\n"
    "  landing = {\n"
    "    fields = {\n"
    "      { name = 'company', label = 'Company name', required = true, max = 80 },\n"
    "      { name = 'region', label = 'Data region', pattern = '(eu|us)-[a-z]+', help = 'eu-west or us-east' },\n"
    "      { name = 'contact', label = 'Billing e-mail', type = 'email' },\n"
    "      { name = 'size', label = 'Expected users', type = 'number' },\n"
    "      { name = 'site', label = 'Company site', type = 'url' },\n"
    "    },\n"
    "    brand = { product = 'Contoso <Cloud>', color = '#123456', support = 'help@contoso.example',\n"
    "              logo_url = 'https://contoso.example/logo.png' },\n"
    "  },\n"
    "  provision = function(sub, ctx, landing)\n"
    "    ctx.store.put('buyer:' .. sub.id, landing.buyer.email .. '|' .. landing.buyer.tid .. '|' ..\n"
    "      tostring(landing.buyer.tenant_matches) .. '|' .. landing.fields.company .. '|' .. (landing.fields.region or ''))\n"
    "    return { action = 'activate', message = 'Welcome, ' .. landing.fields.company }\n"
    "  end,\n"
    "}\n";

/* Nothing was decided or activated for sub: Microsoft still waits, no Provision audit entry. */
static int untouched(const char *sub)
{
    json_t *ms = it_ms_sub(sub);
    int ok = ms && !strcmp(it_str(ms, "saasSubscriptionStatus"), "PendingFulfillmentStart") &&
             it_audit_count(sub, NULL, "Provision") == 0;
    json_decref(ms);
    return ok;
}

static int has(const struct it_browser *b, const char *text)
{
    return b->body && strstr(b->body, text) != NULL;
}

static void fault(const char *kind)
{
    long st;
    json_decref(it_emu("PUT", "/_emulator/config",
                       kind ? json_pack("{s:s}", "idTokenFault", kind) : json_pack("{s:n}", "idTokenFault"), &st));
}

/* A fresh landing link (a "Manage account" visit) for sub. */
static char *fresh_link(const char *sub)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/_emulator/subscriptions/%s/landing-token", sub);
    json_t *t = it_emu("POST", path, json_object(), &st);
    char *url = strdup(it_str(t, "landingUrl"));
    json_decref(t);
    return url;
}

static void refusals_of_spoiled_sign_ins(void)
{
    /* the identity provider's answer is spoiled in each way a forged or stale ID token can be */
    static const struct {
        const char *fault, *guarantee;
    } spoiled[] = {
        {"wrong-nonce", "an ID token with another sign-in's nonce is refused, nothing activated"},
        {"foreign-issuer", "an ID token from a foreign issuer is refused, nothing activated"},
        {"expired", "an expired ID token is refused, nothing activated"},
        {"wrong-audience", "an ID token for another app is refused, nothing activated"},
        {"bad-signature", "an ID token whose signature does not verify is refused, nothing activated"},
        {"unknown-key", "an ID token signed with a key the issuer does not publish is refused, nothing activated"},
    };
    for (size_t i = 0; i < sizeof spoiled / sizeof spoiled[0]; i++) {
        char sub[64];
        char *link = it_purchase("it-land", 2, sub, sizeof sub);
        struct it_browser b = {0};
        fault(spoiled[i].fault);
        long st = it_sign_in(&b, link, IT_BUYER_OID);
        fault(NULL);
        int refused = st == 400 && has(&b, "We could not verify your sign-in") && has(&b, "Configure Account") &&
                      !b.session[0];
        it_browse(&b, "GET", "/landing/status", NULL);
        CHECK(refused && b.status == 403 && untouched(sub), spoiled[i].guarantee);
        it_browser_free(&b);
        free(link);
    }
}

static void refusals_of_forged_state(void)
{
    char sub[64], url[1024];
    char *link = it_purchase("it-land", 2, sub, sizeof sub);
    struct it_browser b = {0};
    it_browse(&b, "GET", link, NULL);
    snprintf(url, sizeof url, "/landing/callback?code=made-up&state=made-up-state");
    long st = it_browse(&b, "GET", url, NULL);
    CHECK(st == 400 && has(&b, "expired or was already used") && has(&b, "Configure Account") && untouched(sub),
          "a forged state is refused with a page that says how to start again; nothing activated");
    it_browser_free(&b);

    /* a real callback, used twice */
    struct it_browser c = {0};
    it_browse(&c, "GET", link, NULL);
    char authorize[4096], callback[4096];
    snprintf(authorize, sizeof authorize, "%s", c.location);
    it_browse(&c, "POST", authorize, "user=" IT_BUYER_OID);
    snprintf(callback, sizeof callback, "%s", c.location);
    struct it_browser thief = {0};
    st = it_browse(&thief, "GET", callback, NULL); /* another browser (no sign-in cookie) */
    CHECK(st == 400 && !thief.session[0] && untouched(sub),
          "a callback opened in another browser than the one that started the sign-in is refused");
    st = it_browse(&c, "GET", callback, NULL);
    CHECK(st == 303 && c.session[0], "the browser that started the sign-in completes it");
    it_browse(&c, "GET", callback, NULL);
    CHECK(c.status == 400 && has(&c, "already used") && untouched(sub), "a replayed state is refused; nothing activated");
    it_browser_free(&c);
    it_browser_free(&thief);
    free(link);
}

static void confirmation_and_csrf(void)
{
    char sub[64];
    char *link = it_purchase("it-land", 7, sub, sizeof sub);
    struct it_browser b = {0};
    long st = it_browse(&b, "GET", link, NULL);
    CHECK(st == 302 && strstr(b.location, "/oauth2/v2.0/authorize?") && strstr(b.location, "code_challenge_method=S256") &&
              strstr(b.location, "scope=openid%20profile%20email&") && !strstr(b.location, "token=") &&
              b.signin[0] && untouched(sub),
          "GET /landing with a valid token activates nothing: it sends the buyer to sign in (PKCE, openid profile "
          "email), and the purchase token stays on the server");
    it_browser_free(&b);
    memset(&b, 0, sizeof b);
    st = it_sign_in(&b, link, IT_BUYER_OID);
    CHECK(st == 303 && !strcmp(b.location, "/landing/status") && b.session[0] && untouched(sub),
          "a verified sign-in starts a session and still activates nothing");
    st = it_browse(&b, "GET", "/landing/status", NULL);
    CHECK(st == 200 && has(&b, "Confirm your purchase") && has(&b, "Contoso &lt;Cloud&gt;") && has(&b, "<dd>Team (team)</dd>") &&
              has(&b, "<dd>7</dd>") && has(&b, "Monthly") && has(&b, "Alex Buyer") &&
              has(&b, "customer@contoso-customer.example") && has(&b, EMU_BUYER_TENANT) && has(&b, "Company name (required)") &&
              has(&b, "method=\"post\" action=\"/landing/confirm\"") && it_csrf(&b)[0] && untouched(sub),
          "the confirmation page shows the offer, the plan's display name, seats, term, the purchaser and the "
          "signed-in buyer, and the offer's fields, without activating");
    CHECK(has(&b, "background:#123456") && has(&b, "mailto:help@contoso.example") &&
              has(&b, "<img src=\"https://contoso.example/logo.png\" alt=\"Contoso &lt;Cloud&gt; logo\">") &&
              !has(&b, "<script"),
          "the page carries the offer's brand (colour, logo, support contact), escaped, without JavaScript");
    char csrf[128], form[512];
    snprintf(csrf, sizeof csrf, "%s", it_csrf(&b));

    st = it_browse(&b, "POST", "/landing/confirm", "company=Fabrikam");
    CHECK(st == 403 && has(&b, "nothing was activated") && untouched(sub), "a confirmation without the CSRF token is refused");
    st = it_browse(&b, "POST", "/landing/confirm", "csrf=AAAAbadAAAAbadAAAAbadAAAAbadAAAAbadAAAAbad&company=Fabrikam");
    CHECK(st == 403 && untouched(sub), "a confirmation with a wrong CSRF token is refused");

    struct it_browser forged = b;
    forged.body = NULL;
    size_t n = strlen(forged.session);
    forged.session[n - 2] = forged.session[n - 2] == 'A' ? 'B' : 'A';
    snprintf(form, sizeof form, "csrf=%s&company=Fabrikam", csrf);
    st = it_browse(&forged, "POST", "/landing/confirm", form);
    CHECK(st == 403 && strstr(forged.body, "Please sign in first") && untouched(sub),
          "a session cookie with a bad MAC is refused with a page that says how to sign in again");
    it_browser_free(&forged);
    st = it_browse(&b, "GET", "/landing/confirm", NULL);
    CHECK(st == 405 && untouched(sub), "GET /landing/confirm is refused (405); only a POST confirms");

    snprintf(form, sizeof form, "csrf=%s&company=++&region=eu-west", csrf);
    st = it_browse(&b, "POST", "/landing/confirm", form);
    CHECK(st == 422 && has(&b, "Please fill in this field.") && has(&b, "aria-invalid=\"true\"") && untouched(sub),
          "a required field left empty is refused with a message beside it; nothing activated");
    snprintf(form, sizeof form, "csrf=%s&company=Fabrikam&region=mars", csrf);
    st = it_browse(&b, "POST", "/landing/confirm", form);
    CHECK(st == 422 && has(&b, "expected format") && has(&b, "value=\"Fabrikam\"") && untouched(sub),
          "an answer that does not match the field's pattern is refused and the other answers are kept");
    snprintf(form, sizeof form, "csrf=%s&company=Fabrikam&contact=ops+at+fabrikam&size=ten&site=%%2Fstatus", csrf);
    st = it_browse(&b, "POST", "/landing/confirm", form);
    CHECK(st == 422 && has(&b, "an e-mail address like name@example.com") && has(&b, "Please enter a number.") &&
              has(&b, "a web address starting with https://") && untouched(sub),
          "an answer not in the format of its field's type (email, number, url) is refused with that type's message");

    snprintf(form, sizeof form,
             "csrf=%s&company=Fabrikam+%%3CLtd%%3E&region=eu-west&contact=ops%%40fabrikam.example&size=12.5"
             "&site=https%%3A%%2F%%2Ffabrikam.example%%2F",
             csrf);
    char logpath[512], logged[8192] = "";
    snprintf(logpath, sizeof logpath, "%s/landing-info.log", dir);
    int logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    log_set_fd(logfd);
    log_set_level(LOG_INFO);
    st = it_browse(&b, "POST", "/landing/confirm", form);
    log_set_level(LOG_WARN);
    log_set_fd(2);
    ssize_t nlog = pread(logfd, logged, sizeof logged - 1, 0);
    logged[nlog > 0 ? nlog : 0] = 0;
    close(logfd);
    CHECK(st == 303 && !strcmp(b.location, "/landing/status"), "a signed-in confirmation with the CSRF token is accepted");
    /* regression: the offer id was read from the record after Activate's read-back had freed it */
    const char *decided = strstr(logged, "msg=\"provision decided\"");
    const char *eol = decided ? strchr(decided, '\n') : NULL;
    const char *named = decided ? strstr(decided, " offer_id=it-land ") : NULL;
    CHECK(named && (!eol || named < eol), "the info line of the decision names the offer it was decided for");
    st = it_browse(&b, "GET", "/landing/status", NULL);
    json_t *ms = it_ms_sub(sub);
    CHECK(st == 200 && has(&b, "Your subscription is active") && has(&b, "Welcome, Fabrikam &lt;Ltd&gt;") &&
              !strcmp(it_str(ms, "saasSubscriptionStatus"), "Subscribed"),
          "only the confirmation POST runs provision and Activate; the page then shows the subscription active");
    json_decref(ms);
    char path[256];
    snprintf(path, sizeof path, "/admin/offers/it-land/store/buyer:%s", sub);
    json_t *kv = it_admin("GET", path, NULL, &st);
    char want[256];
    snprintf(want, sizeof want, "customer@contoso-customer.example|%s|true|Fabrikam <Ltd>|eu-west", EMU_BUYER_TENANT);
    CHECK(st == 200 && !strcmp(it_str(kv, "value"), want),
          "provision receives the signed-in buyer (e-mail, tenant, tenant match) and the answered fields");
    json_decref(kv);
    it_browse(&b, "GET", "/landing/status", NULL);
    st = it_browse(&b, "POST", "/landing/confirm", form);
    CHECK(b.status == 303 && it_audit_count(sub, NULL, "Provision") == 1,
          "reloading the page or confirming again runs neither provision nor Activate a second time");

    char fpath[256];
    long fst;
    snprintf(fpath, sizeof fpath, "/api/saas/subscriptions/%s", sub);
    json_decref(it_emu("POST", "/_emulator/faults",
                       json_pack("{s:s, s:s, s:s, s:i}", "path", fpath, "method", "GET", "kind", "500", "count", 100), &fst));
    st = it_browse(&b, "GET", "/landing/status", NULL);
    json_decref(it_emu("DELETE", "/_emulator/faults", NULL, &fst));
    CHECK(st == 200 && has(&b, "Your subscription is active"),
          "when Microsoft cannot be read, the page falls back to the stored state");

    /* the buyer changes plan in the portal: the next visit names the new plan, read from Microsoft */
    char *op = it_customer(sub, "change-plan", json_pack("{s:s}", "planId", "business"));
    const char *final = op ? it_wait_op(op, 15000) : "";
    st = it_browse(&b, "GET", "/landing/status", NULL);
    CHECK(!strcmp(final, "Succeeded") && st == 200 && has(&b, "<dd>Business (business)</dd>") && !has(&b, "<dd>Team"),
          "after a plan change the page names the plan Microsoft now has, not the one bought");
    free(op);

    /* "Manage account" after Microsoft suspended the subscription */
    free(it_customer(sub, "suspend", NULL));
    char *manage = fresh_link(sub);
    struct it_browser again = {0};
    st = it_sign_in(&again, manage, IT_BUYER_OID);
    st = it_browse(&again, "GET", "/landing/status", NULL);
    CHECK(st == 200 && strstr(again.body, "Your subscription is suspended") && !strstr(again.body, "is active"),
          "a Manage account visit after a suspension signs in and shows the subscription suspended");
    free(it_customer(sub, "unsubscribe", NULL));
    st = it_browse(&again, "GET", "/landing/status", NULL);
    CHECK(st == 200 && strstr(again.body, "has been cancelled"), "after a cancellation the page says it was cancelled");
    it_browser_free(&again);
    free(manage);
    it_browser_free(&b);
    free(link);
}

static void other_tenant_and_bad_links(void)
{
    char sub[64];
    char *link = it_purchase("it-land", 1, sub, sizeof sub);
    struct it_browser b = {0};
    it_sign_in(&b, link, IT_OTHER_OID);
    long st = it_browse(&b, "GET", "/landing/status", NULL);
    CHECK(st == 200 && has(&b, "another organisation") && has(&b, "Robin Other") && untouched(sub),
          "a buyer signed in with another tenant than the purchaser's sees a note on the confirmation page");
    char form[256];
    snprintf(form, sizeof form, "csrf=%s&company=Other", it_csrf(&b));
    it_browse(&b, "POST", "/landing/confirm", form);
    char path[256];
    snprintf(path, sizeof path, "/admin/offers/it-land/store/buyer:%s", sub);
    json_t *kv = it_admin("GET", path, NULL, &st);
    CHECK(st == 200 && strstr(it_str(kv, "value"), "|false|Other|"),
          "the provision rule is told the buyer's tenant does not match, and decides (here: allows)");
    json_decref(kv);
    json_t *hist = it_history(sub), *entry, *by = NULL;
    size_t i;
    json_array_foreach(hist, i, entry) if (!strcmp(it_str(entry, "action"), "Provision")) by = json_object_get(entry, "confirmed_by");
    CHECK(by && !strcmp(it_str(by, "oid"), IT_OTHER_OID) && it_str(by, "tid")[0] && strchr(it_str(by, "email"), '@'),
          "the Provision audit entry records who confirmed on the landing page (oid, tenant, e-mail)");
    json_decref(hist);
    it_browser_free(&b);
    free(link);

    char url[600];
    snprintf(url, sizeof url, "%s/landing?token=%%3Cscript%%3E", it_public_url);
    struct it_browser m = {0};
    st = it_browse(&m, "GET", url, NULL);
    CHECK(st == 400 && strstr(m.body, "couldn&#39;t identify this purchase") && !m.signin[0],
          "a malformed token is answered 400 with Microsoft's wording, without a sign-in");
    it_browser_free(&m);

    char sub2[64], tpath[256];
    free(it_purchase("it-land", 1, sub2, sizeof sub2));
    snprintf(tpath, sizeof tpath, "/_emulator/subscriptions/%s/landing-token", sub2);
    json_t *t = it_emu("POST", tpath, json_pack("{s:i}", "lifetimeS", 1), &st);
    char *link2 = strdup(it_str(t, "landingUrl"));
    json_decref(t);
    sleep(2); /* the purchase token's one second is over */
    struct it_browser e = {0};
    st = it_sign_in(&e, link2, IT_BUYER_OID);
    CHECK(st == 400 && strstr(e.body, "couldn&#39;t identify this purchase") && strstr(e.body, "Manage Account") &&
              !e.session[0] && untouched(sub2),
          "an expired purchase token gets Microsoft's recommended wording after sign-in; nothing activated");
    it_browser_free(&e);
    free(link2);
}

static void sign_out(void)
{
    char sub[64], form[256];
    char *link = it_purchase("it-land", 1, sub, sizeof sub);
    struct it_browser b = {0};
    it_sign_in(&b, link, IT_BUYER_OID);
    long st = it_browse(&b, "GET", "/landing/status", NULL);
    CHECK(st == 200 && has(&b, "action=\"/landing/signout\"") && has(&b, ">Sign out</button>"),
          "a signed-in buyer's page offers a sign-out form");
    char csrf[128];
    snprintf(csrf, sizeof csrf, "%s", it_csrf(&b));
    st = it_browse(&b, "GET", "/landing/signout", NULL);
    CHECK(st == 405 && b.session[0], "GET /landing/signout is refused (405) and signs nobody out");
    st = it_browse(&b, "POST", "/landing/signout", "csrf=AAAAbadAAAAbadAAAAbadAAAAbadAAAAbadAAAAbad");
    int refused = st == 403 && b.session[0];
    st = it_browse(&b, "GET", "/landing/status", NULL);
    CHECK(refused && st == 200, "a sign-out without the session's CSRF token is refused; the buyer stays signed in");
    struct it_browser copy = {0}; /* the same cookie, taken to another machine */
    snprintf(copy.session, sizeof copy.session, "%s", b.session);
    long copy_before = it_browse(&copy, "GET", "/landing/status", NULL);
    snprintf(form, sizeof form, "csrf=%s", csrf);
    st = it_browse(&b, "POST", "/landing/signout", form);
    CHECK(st == 200 && !b.session[0] && has(&b, "You are signed out") && !has(&b, "/landing/signout"),
          "a sign-out with the CSRF token deletes the session cookie and says so");
    st = it_browse(&b, "GET", "/landing/status", NULL);
    CHECK(st == 403 && has(&b, "Please sign in first") && untouched(sub),
          "after signing out the purchase page asks to sign in again; nothing was activated");
    st = it_browse(&copy, "GET", "/landing/status", NULL);
    CHECK(copy_before == 200 && st == 403 && has(&copy, "Please sign in first"),
          "a copy of the session cookie taken before the sign-out is refused after it");
    it_browser_free(&copy);
    it_browser_free(&b);
    free(link);
}

int main(void)
{
    char path[512], rules[512];
    struct emu *emu = it_setup("landing", dir, rules);
    if (!emu)
        return CHECK_DONE();
    snprintf(path, sizeof path, "%s/it-land.lua", rules);
    it_write_file(path, land_rule);
    char conf[512];
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), "metering = { interval = 0 }\nlanding = { cookie_secure = false }\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();
    it_offer("it-land");

    confirmation_and_csrf();
    refusals_of_forged_state();
    refusals_of_spoiled_sign_ins();
    other_tenant_and_bad_links();
    sign_out();

    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
