/* The operator console (src/daemon/console*.c) on the admin listener, against the emulator:
 * sign-in and session cookie, CSRF, GET never changes state, escaping, cursor paging, and an
 * approval through the confirmation step. */
#include "it_support.h"

#include "core/store.h"
#include "daemon/timers.h"

static char dir[256];

static const char *pending_rule = "return { provision = function(sub, ctx)\n"
                                  "  ctx.timer.after(86400, 'trial-end', { note = '<b>hi</b>' })\n"
                                  "  return { action = 'pending', message = 'we approve every customer by hand' }\n"
                                  "end }\n";

static const char *flaky_rule = "return { suspend = function(sub, event, ctx)\n"
                                "  return nil, 'the CRM <is> down'\n"
                                "end }\n";

/* This sink's row of GET /admin/sinks (new reference) or NULL. */
static json_t *sink_state(const char *name)
{
    long st = 0;
    json_t *all = it_admin("GET", "/admin/sinks", NULL, &st), *found = NULL, *k;
    size_t i;
    json_array_foreach(json_object_get(all, "sinks"), i, k) {
        if (!strcmp(it_str(k, "name"), name))
            found = json_incref(k);
    }
    json_decref(all);
    return found;
}

/* Waits until the sink's field `key` satisfies want (up to 15 s); returns its last value. */
static json_int_t sink_wait(const char *name, const char *key, int (*want)(json_int_t v, json_int_t arg), json_int_t arg)
{
    json_int_t v = -1;
    for (long long until = it_now_ms() + 15000; it_now_ms() < until; usleep(30 * 1000)) {
        json_t *k = sink_state(name);
        json_t *f = json_object_get(k, key);
        v = json_is_integer(f) ? json_integer_value(f) : -1;
        json_decref(k);
        if (want(v, arg))
            break;
    }
    return v;
}

static int positive(json_int_t v, json_int_t arg) { return v > 0; }
static int above(json_int_t v, json_int_t arg) { return v > arg; }
static int equal(json_int_t v, json_int_t arg) { return v == arg; }

#include "console_client.h"

static void put_record(struct store *s, const char *id, const char *offer, const char *email)
{
    json_t *rec = json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:s, s:s, s:s, s:i, s:{s:s}}}", "id", id, "offerId", offer,
                            "planId", "team", "quantity", 2, "status", "Subscribed", "subscription", "id", id,
                            "offerId", offer, "saasSubscriptionStatus", "Subscribed", "quantity", 2, "purchaser",
                            "emailId", email);
    struct store_batch *b = NULL;
    store_batch_new(&b);
    record_put_json(b, STORE_SUBSCRIPTIONS, id, rec);
    store_commit(s, b);
    store_batch_free(b);
    json_decref(rec);
}

/* Walk the list from its first page following "Next page" links; counts rows of ids starting
 * with prefix, in order. Returns pages walked. */
static int walk_pages(struct op *o, const char *first, const char *prefix, int *rows, int *in_order, int *max_rows)
{
    char path[1024], last[64] = "";
    int pages = 0;
    *rows = 0;
    *in_order = 1;
    *max_rows = 0;
    snprintf(path, sizeof path, "%s", first);
    while (pages < 20 && op_call(o, "GET", path, NULL) == 200) {
        pages++;
        int here = 0;
        for (const char *p = o->body; (p = strstr(p, "class=\"mono\" href=\"/console/subscriptions/")) != NULL; p++) {
            char id[64];
            sscanf(p + strlen("class=\"mono\" href=\"/console/subscriptions/"), "%63[^\"]", id);
            if (strncmp(id, prefix, strlen(prefix)))
                continue;
            if (strcmp(id, last) <= 0)
                *in_order = 0;
            snprintf(last, sizeof last, "%s", id);
            (*rows)++;
            here++;
        }
        *max_rows = here > *max_rows ? here : *max_rows;
        const char *next = strstr(o->body, "rel=\"next\" href=\"");
        if (!next)
            break;
        char href[900];
        sscanf(next + strlen("rel=\"next\" href=\""), "%899[^\"]", href);
        /* the page escapes & as &amp; inside the attribute */
        char *w = path;
        for (const char *r = href; *r && w < path + sizeof path - 1;)
            if (!strncmp(r, "&amp;", 5))
                *w++ = '&', r += 5;
            else
                *w++ = *r++;
        *w = 0;
    }
    return pages;
}

/* A failing sink's retry and skip from the queues page: confirmation, CSRF, the same code as
 * POST /admin/sinks/{name}/retry|skip. */
static void failing_sink(struct op *op)
{
    char path[300], form[400], csrf[128];
    json_int_t seq = sink_wait("dead", "retrying_seq", positive, 0);
    json_int_t tries = sink_wait("dead", "failed_attempts", positive, 0);
    op_call(op, "GET", "/console/queues", NULL);
    snprintf(csrf, sizeof csrf, "%s", csrf_of(op));
    snprintf(path, sizeof path, "/console/sinks/dead/confirm?action=skip&amp;value=%lld", (long long)seq);
    CHECK(seq > 0 && op->status == 200 && strstr(op->body, "/console/sinks/dead/confirm?action=retry") && strstr(op->body, path),
          "the queues page offers a failing sink's retry and skip (of the event it fails on) as buttons");
    snprintf(path, sizeof path, "/console/sinks/dead/confirm?action=skip&value=%lld", (long long)seq);
    op_call(op, "GET", path, NULL);
    int confirm_ok = op->status == 200 && strstr(op->body, "name=\"confirm\" value=\"yes\"") && strstr(op->body, csrf) &&
                     strstr(op->body, "action=\"/console/sinks/dead/action\"");
    snprintf(path, sizeof path, "/console/sinks/dead/action?action=skip&value=%lld&confirm=yes&csrf=%s", (long long)seq, csrf);
    long get_action = op_call(op, "GET", path, NULL);
    json_t *k = sink_state("dead");
    CHECK(confirm_ok && get_action == 405 && json_integer_value(json_object_get(k, "retrying_seq")) == seq &&
              json_integer_value(json_object_get(k, "cursor")) < seq,
          "the sink's confirmation page carries the CSRF token and confirmation; GET changes nothing");
    json_decref(k);

    snprintf(form, sizeof form, "action=retry&value=&confirm=yes&csrf=%s", csrf);
    op_call(op, "POST", "/console/sinks/dead/action", form);
    long retry_status = op->status;
    json_int_t after = sink_wait("dead", "failed_attempts", above, tries);
    CHECK(retry_status == 200 && strstr(op->body, "retrying") && after > tries,
          "a confirmed retry makes the sink's next attempt now, not after its minute of backoff");

    snprintf(form, sizeof form, "action=skip&value=%lld&confirm=yes", (long long)seq);
    long no_csrf = op_call(op, "POST", "/console/sinks/dead/action", form);
    snprintf(form, sizeof form, "action=skip&value=%lld&confirm=yes&csrf=%s", (long long)seq + 1000, csrf);
    long wrong_seq = op_call(op, "POST", "/console/sinks/dead/action", form);
    k = sink_state("dead");
    CHECK(no_csrf == 403 && wrong_seq == 409 && json_integer_value(json_object_get(k, "cursor")) < seq,
          "a skip without the CSRF token, or of an event the sink is not failing on, is refused and skips nothing");
    json_decref(k);
    snprintf(form, sizeof form, "action=skip&value=%lld&confirm=yes&csrf=%s", (long long)seq, csrf);
    op_call(op, "POST", "/console/sinks/dead/action", form);
    long skip_status = op->status;
    CHECK(skip_status == 200 && strstr(op->body, "skipped") && sink_wait("dead", "cursor", equal, seq) == seq,
          "a confirmed skip moves the failing sink past that event");
}

int main(void)
{
    char rules[512], path[1024], form[1024];
    struct emu *emu = it_setup("console", dir, rules);
    if (!emu)
        return CHECK_DONE();
    it_write_rule(rules, "console-pending", pending_rule);
    it_write_rule(rules, "console-flaky", flaky_rule);
    /* a sink whose port has nothing listening fails on every event; a minute between attempts,
     * so only the operator's "retry now" makes another attempt during the test */
    char extra[600];
    snprintf(extra, sizeof extra,
             "metering = { interval = 0 }\n"
             "sinks = { dead = { kind = \"webhook\", url = \"http://127.0.0.1:%u/hook\", secret_env = \"SAASD_IT_SECRET\", "
             "timeout_ms = 500 } }\nevents = { retry_base_ms = 60000, retry_cap_ms = 60000, poll_ms = 50 }\n",
             it_free_port());
    struct daemon *d = it_start_in(dir, 0, extra);
    if (!d)
        return CHECK_DONE();
    it_offer("console-pending");
    it_offer("console-flaky");
    char sub[64];
    char *landing = it_purchase("console-pending", 4, sub, sizeof sub);
    struct it_browser buyer = {0};
    it_land_as(&buyer, landing, IT_BUYER_OID, NULL);
    it_browser_free(&buyer);
    free(landing);
    json_t *local = it_local(sub);
    CHECK(!strcmp(it_str(json_object_get(local, "provision"), "decision"), "pending"),
          "set-up: the purchase waits for approval");
    json_decref(local);

    /* ---- sign-in ---- */
    struct op anon = {0}, op = {0};
    snprintf(path, sizeof path, "/console/subscriptions/%s", sub);
    op_call(&anon, "GET", path, NULL);
    CHECK(anon.status == 303 && !strcmp(anon.location, "/console/login") && !strstr(anon.body, "console-pending"),
          "a console page without a session sends to the sign-in form and shows nothing");
    op_call(&anon, "GET", "/console/subscriptions", NULL);
    CHECK(anon.status == 303 && !strstr(anon.body, sub), "the subscription list needs a session too");
    op_call(&anon, "POST", "/console/login", "key=integration-admin-kex");
    CHECK(anon.status == 401 && !anon.set_cookie[0] && !anon.cookie[0], "a wrong admin key is refused, no cookie");
    op_call(&anon, "POST", "/console/login", "key=");
    CHECK(anon.status == 401 && !anon.cookie[0], "an empty admin key is refused");
    op_call(&op, "POST", "/console/login", "key=integration-admin-key");
    CHECK(op.status == 303 && op.cookie[0] && strstr(op.set_cookie, "HttpOnly") &&
              strstr(op.set_cookie, "SameSite=Strict") && strstr(op.set_cookie, "Path=/console"),
          "the admin key opens a session: HttpOnly, SameSite=Strict cookie for /console");
    struct op forged = op;
    forged.body = NULL;
    size_t n = strlen(forged.cookie);
    forged.cookie[n - 3] = forged.cookie[n - 3] == 'A' ? 'B' : 'A'; /* one character of the MAC */
    op_call(&forged, "GET", "/console/subscriptions", NULL);
    CHECK(forged.status == 303 && !strstr(forged.body, sub), "a cookie with a spoiled MAC is not a session");
    snprintf(forged.cookie, sizeof forged.cookie, "%s", buyer.session[0] ? buyer.session : "e30.e30");
    op_call(&forged, "GET", "/console/subscriptions", NULL);
    CHECK(forged.status == 303, "another cookie of saasd (the buyer's landing session) is not an operator session");
    free(forged.body);

    op_call(&op, "GET", "/console/subscriptions?status=pending", NULL);
    int in_pending = op.status == 200 && strstr(op.body, sub) != NULL;
    op_call(&op, "GET", "/console/subscriptions?status=PendingFulfillmentStart", NULL);
    int in_status = op.status == 200 && strstr(op.body, sub) != NULL;
    op_call(&op, "GET", "/console/subscriptions?status=Subscribed", NULL);
    int in_other = op.status != 200 || strstr(op.body, sub) != NULL;
    op_call(&op, "GET", "/console/subscriptions?status=drift", NULL);
    int in_drift = op.status != 200 || strstr(op.body, sub) != NULL;
    CHECK(in_pending && in_status && !in_other && !in_drift,
          "the list's status filter finds a purchase waiting for approval under 'waiting for approval' and its "
          "Microsoft status, not under another status or drift");

    op_call(&op, "GET", path, NULL);
    CHECK(op.status == 200 && strstr(op.body, sub) && strstr(op.body, "we approve every customer by hand") &&
              strstr(op.body, "Audit trail"),
          "signed in, the subscription page shows the record, the rule's message and the audit trail");
    char sha[CRYPTO_SHA256_HEX_LEN];
    snprintf(form, sizeof form, "%s/console-pending.lua", rules);
    it_file_sha256(form, sha);
    CHECK(strstr(op.body, sha) != NULL, "the audit trail on the page carries the rule file's SHA-256");
    char csrf[128];
    snprintf(csrf, sizeof csrf, "%s", csrf_of(&op));
    CHECK(strlen(csrf) > 20, "the page's forms carry a CSRF token");

    /* ---- GET never changes state ---- */
    void *before = NULL, *after = NULL;
    size_t blen = 0, alen = 0;
    store_get(d->store, STORE_SUBSCRIPTIONS, sub, strlen(sub), &before, &blen);
    const char *gets[] = {"/console", "/console/subscriptions", "/console/queues", "/console/rules",
                          "/console/subscriptions/%s/confirm?action=activate",
                          "/console/subscriptions/%s/confirm?action=cancel",
                          "/console/subscriptions/%s/action?action=activate&confirm=yes&csrf=%s",
                          "/console/logout"};
    int all_ok = 1;
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        char p2[600];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* the table above */
        snprintf(p2, sizeof p2, gets[i], sub, csrf);
#pragma GCC diagnostic pop
        long st = op_call(&op, "GET", p2, NULL);
        all_ok &= i < 6 ? st == 200 : st == 405;
    }
    store_get(d->store, STORE_SUBSCRIPTIONS, sub, strlen(sub), &after, &alen);
    CHECK(all_ok && blen == alen && !memcmp(before, after, blen) && !strcmp(it_ms_status(sub), "PendingFulfillmentStart"),
          "GET on every page, the confirmation pages and the action URL changes nothing (record and Microsoft)");
    free(before);
    free(after);

    /* ---- CSRF and confirmation ---- */
    snprintf(path, sizeof path, "/console/subscriptions/%s/action", sub);
    op_call(&op, "POST", path, "action=activate&confirm=yes");
    CHECK(op.status == 403 && !strcmp(it_ms_status(sub), "PendingFulfillmentStart"),
          "an action without the CSRF token is refused and activates nothing");
    op_call(&op, "POST", path, "action=activate&confirm=yes&csrf=forged-token-forged-token-forged-token");
    CHECK(op.status == 403 && !strcmp(it_ms_status(sub), "PendingFulfillmentStart"), "a wrong CSRF token is refused");
    snprintf(form, sizeof form, "action=activate&csrf=%s", csrf);
    op_call(&op, "POST", path, form);
    CHECK(op.status == 400 && !strcmp(it_ms_status(sub), "PendingFulfillmentStart"),
          "an action not confirmed on its confirmation page is not done");
    snprintf(path, sizeof path, "/console/subscriptions/%s/confirm?action=activate", sub);
    op_call(&op, "GET", path, NULL);
    CHECK(op.status == 200 && strstr(op.body, "name=\"confirm\" value=\"yes\"") && strstr(op.body, csrf),
          "the confirmation page's form carries the confirmation and the CSRF token");
    snprintf(path, sizeof path, "/console/subscriptions/%s/action", sub);
    snprintf(form, sizeof form, "action=activate&value=&confirm=yes&csrf=%s", csrf);
    op_call(&op, "POST", path, form);
    local = it_local(sub);
    CHECK(op.status == 200 && !strcmp(it_ms_status(sub), "Subscribed") &&
              !strcmp(it_str(json_object_get(local, "provision"), "decision"), "activated"),
          "a confirmed approval by POST activates the pending purchase at Microsoft and locally");
    json_decref(local);

    /* ---- a stuck event: shown with its error, abandoned after confirmation ---- */
    char flaky[64];
    landing = it_purchase("console-flaky", 2, flaky, sizeof flaky);
    it_land(landing, NULL);
    free(landing);
    free(it_customer(flaky, "suspend", NULL));
    size_t stuck = 0;
    for (long long until = it_now_ms() + 15000; !stuck && it_now_ms() < until; usleep(50 * 1000))
        store_count(d->store, STORE_OUTBOX, &stuck);
    snprintf(path, sizeof path, "/console/subscriptions/%s", flaky);
    op_call(&op, "GET", path, NULL);
    const char *retry = strstr(op.body, "/confirm?action=abandon&amp;value=");
    char seq[32] = "";
    if (retry)
        sscanf(retry + strlen("/confirm?action=abandon&amp;value="), "%31[0-9]", seq);
    CHECK(stuck == 1 && strstr(op.body, "the CRM &lt;is&gt; down") && seq[0],
          "the subscription page lists its stuck outbox event with the rule's error, escaped, and its actions");
    snprintf(path, sizeof path, "/console/subscriptions/%s/action", flaky);
    snprintf(form, sizeof form, "action=abandon&value=%s&confirm=yes&csrf=%s", seq, csrf);
    op_call(&op, "POST", path, form);
    store_count(d->store, STORE_OUTBOX, &stuck);
    json_t *hist = it_history(flaky);
    char *htext = json_dumps(hist, 0);
    CHECK(op.status == 200 && stuck == 0 && htext && strstr(htext, "\"abandoned\""),
          "abandoning it after confirmation removes it from the outbox and records it in the audit trail");
    free(htext);
    json_decref(hist);

    /* ---- a rule timer: listed on the page, cancelled only by a confirmed POST with the CSRF token ---- */
    snprintf(path, sizeof path, "/console/subscriptions/%s", sub);
    op_call(&op, "GET", path, NULL);
    CHECK(op.status == 200 && strstr(op.body, "<h2>Timers</h2>") && strstr(op.body, "trial-end") &&
              strstr(op.body, "&lt;b&gt;hi&lt;/b&gt;") && !strstr(op.body, "<b>hi</b>") &&
              strstr(op.body, "/confirm?action=cancel-timer&amp;value=trial-end"),
          "the subscription page lists the rule's timer with its data, escaped, and a link to cancel it");
    snprintf(path, sizeof path, "/console/subscriptions/%s/confirm?action=cancel-timer&value=trial-end", sub);
    op_call(&op, "GET", path, NULL);
    json_t *timer = NULL;
    CHECK(op.status == 200 && strstr(op.body, csrf) && strstr(op.body, "name=\"value\" value=\"trial-end\"") &&
              timers_get(d, sub, "trial-end", &timer) == 0,
          "the cancel link opens a confirmation page carrying the CSRF token, and cancels nothing yet");
    CHECK(strstr(op.body, ">Yes, cancel the timer</button>") != NULL,
          "the confirmation button says what it does in words (not the form's action name)");
    json_decref(timer);
    snprintf(path, sizeof path, "/console/subscriptions/%s/action", sub);
    long no_csrf = op_call(&op, "POST", path, "action=cancel-timer&value=trial-end&confirm=yes");
    long forged_csrf =
        op_call(&op, "POST", path, "action=cancel-timer&value=trial-end&confirm=yes&csrf=forged-token-forged-token-forged");
    CHECK(no_csrf == 403 && forged_csrf == 403 && timers_get(d, sub, "trial-end", &timer) == 0,
          "a timer cancel without the session's CSRF token is refused and the timer stays");
    json_decref(timer);
    snprintf(form, sizeof form, "action=cancel-timer&value=trial-end&confirm=yes&csrf=%s", csrf);
    op_call(&op, "POST", path, form);
    CHECK(op.status == 200 && timers_get(d, sub, "trial-end", &timer) == SAASD_ENOTFOUND,
          "a confirmed cancel with the CSRF token drops the timer");
    CHECK(op_call(&op, "POST", path, form) == 404, "cancelling the same timer again answers 404");

    /* ---- escaping ---- */
    const char *evil_offer = "<img src=x onerror=alert(1)>";
    put_record(d->store, "zz-hostile", evil_offer, "\"><script>alert('mail')</script>@evil.example");
    op_call(&op, "GET", "/console/subscriptions?q=zz-hostile", NULL);
    int list_safe = op.status == 200 && !strstr(op.body, "<script>alert") && !strstr(op.body, "<img src=x") &&
                    strstr(op.body, "&lt;script&gt;alert(&#39;mail&#39;)") && strstr(op.body, "&lt;img src=x");
    op_call(&op, "GET", "/console/subscriptions/zz-hostile", NULL);
    CHECK(list_safe && op.status == 200 && !strstr(op.body, "<script>alert") && !strstr(op.body, "<img src=x") &&
              strstr(op.body, "&quot;&gt;&lt;script&gt;"),
          "a hostile purchaser e-mail and offer name are shown escaped in the list and on the subscription page");
    op_call(&op, "GET", "/console/subscriptions?offer=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", NULL);
    CHECK(op.status == 200 && !strstr(op.body, "<img src=x") && strstr(op.body, "zz-hostile"),
          "a hostile filter value is echoed escaped and still finds its record");

    /* ---- paging with a cursor ---- */
    for (int i = 0; i < 250; i++) {
        char id[32];
        snprintf(id, sizeof id, "page-%03d", i);
        put_record(d->store, id, i % 2 ? "odd-offer" : "even-offer", "buyer@example.com");
    }
    int rows, in_order, max_rows;
    int pages = walk_pages(&op, "/console/subscriptions", "page-", &rows, &in_order, &max_rows);
    CHECK(rows == 250 && in_order && max_rows == 50 && pages >= 5,
          "250 subscriptions page by page through the cursor: each once, in order, at most 50 a page");
    if (rows != 250 || !in_order)
        printf("# rows %d, in order %d, pages %d, max %d\n", rows, in_order, pages, max_rows);
    pages = walk_pages(&op, "/console/subscriptions?offer=odd-offer", "page-", &rows, &in_order, &max_rows);
    CHECK(rows == 125 && in_order && pages == 3, "a filter by offer pages through its 125 matches (3 pages)");
    op_call(&op, "GET", "/console/subscriptions?q=PAGE-12&status=Subscribed", NULL);
    CHECK(op.status == 200 && strstr(op.body, "page-120") && strstr(op.body, "page-129") && !strstr(op.body, "page-130"),
          "the search matches ids case-insensitively");
    json_t *drifted = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "id", "zz-drifted", "offerId", "even-offer",
                                "status", "Suspended", "subscription", "id", "zz-drifted", "offerId", "even-offer",
                                "saasSubscriptionStatus", "Subscribed");
    struct store_batch *db = NULL;
    store_batch_new(&db);
    record_put_json(db, STORE_SUBSCRIPTIONS, "zz-drifted", drifted);
    store_commit(d->store, db);
    store_batch_free(db);
    json_decref(drifted);
    op_call(&op, "GET", "/console/subscriptions?status=drift", NULL);
    CHECK(op.status == 200 && strstr(op.body, "zz-drifted") && !strstr(op.body, "page-001"),
          "the status filter 'drift' lists a subscription whose status differs from Microsoft's, and not the others");

    /* ---- rules page: the last reload's result ---- */
    snprintf(path, sizeof path, "%s/console-broken.lua", rules);
    it_write_file(path, "return { provision = function(sub, ctx) return { action = '<b>' } end\n");
    long rst = 0;
    json_decref(it_admin("POST", "/admin/rules/reload", json_object(), &rst));
    op_call(&op, "GET", "/console/rules", NULL);
    CHECK(rst == 422 && op.status == 200 && strstr(op.body, "rules NOT changed") && strstr(op.body, "console-broken.lua:") &&
              strstr(op.body, "console-pending.lua") && strstr(op.body, sha),
          "the rules page shows the serving files with their hashes and the failed reload's file:line: message");

    failing_sink(&op);

    /* ---- sign-out ---- */
    op_call(&op, "GET", "/console/subscriptions", NULL);
    struct op copy = {0}; /* the same cookie in another browser */
    snprintf(copy.cookie, sizeof copy.cookie, "%s", op.cookie);
    long copy_before = op_call(&copy, "GET", "/console/queues", NULL);
    snprintf(form, sizeof form, "csrf=%s", csrf_of(&op));
    op_call(&op, "POST", "/console/logout", form);
    CHECK(op.status == 303 && strstr(op.set_cookie, "Max-Age=0"), "signing out clears the cookie");
    op_call(&copy, "GET", "/console/queues", NULL);
    CHECK(copy_before == 200 && copy.status == 303 && strstr(copy.location, "/console/login"),
          "a copy of the operator's cookie taken before the sign-out is sent to the sign-in page after it");
    free(copy.body);

    free(op.body);
    free(anon.body);
    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
