/* The console's replay page (src/daemon/console_replay.c): GET shows the form and runs nothing,
 * the form's POST needs the session's CSRF token, checks the candidate directory, the date, the
 * offer and the ctx.http choice, and shows per offer and handler the same/differ counts and each
 * difference (subscription, event, old -> new decision, both rule hashes), escaped.
 * In-process daemon against the emulator. */
#include "it_support.h"

static const char LIVE[] = "return { change_quantity = function(sub, change, ctx) return { accept = true } end }\n";
static const char CANDIDATE[] = "return { change_quantity = function(sub, change, ctx)\n"
                                "  if change.quantity > 5 then return { accept = false, reason = 'at most 5 seats' } end\n"
                                "  return { accept = true }\n"
                                "end }\n";

#include "console_client.h"

/* POST the replay form; candidate is percent-encoded by the caller where needed. */
static long post(struct op *o, const char *csrf, const char *candidate, const char *extra)
{
    char form[2048];
    snprintf(form, sizeof form, "csrf=%s&candidate=%s%s", csrf, candidate, extra ? extra : "");
    return op_call(o, "POST", "/console/replay", form);
}

int main(void)
{
    char dir[256], rules[512], cand[600], broken[600], odd[600], path[700], op_id[128], sub[64];
    struct emu *emu = it_setup("console-replay", dir, rules);
    if (!emu)
        return CHECK_DONE();
    it_write_rule(rules, "it-cr", LIVE);
    snprintf(cand, sizeof cand, "%s/cand", dir);
    snprintf(broken, sizeof broken, "%s/broken", dir);
    snprintf(odd, sizeof odd, "%s/c<b>", dir);
    mkdir(cand, 0700);
    mkdir(broken, 0700);
    mkdir(odd, 0700);
    snprintf(path, sizeof path, "%s/it-cr.lua", cand);
    it_write_file(path, CANDIDATE);
    snprintf(path, sizeof path, "%s/it-cr.lua", broken);
    it_write_file(path, "return { change_quantity = function( end }\n");
    snprintf(path, sizeof path, "%s/it-cr.lua", odd);
    it_write_file(path, LIVE);
    struct daemon *d = it_start_in(dir, 0, NULL);
    if (!d)
        return CHECK_DONE();
    it_offer("it-cr");
    CHECK(it_buy_and_land("it-cr", 3, sub, sizeof sub) == 200, "set-up: a subscription is activated");
    char *id = it_customer(sub, "change-quantity", json_pack("{s:i}", "quantity", 8));
    snprintf(op_id, sizeof op_id, "%s", id ? id : "");
    it_wait_op(id, 10000);
    free(id);
    it_settle(d->store, 10000);

    struct op anon = {0}, op = {0};
    op_call(&anon, "GET", "/console/replay", NULL);
    CHECK(anon.status == 303, "the replay page needs a signed-in operator");
    op_call(&op, "POST", "/console/login", "key=integration-admin-key");
    op_call(&op, "GET", "/console/replay", NULL);
    char csrf[128];
    snprintf(csrf, sizeof csrf, "%s", csrf_of(&op));
    CHECK(op.status == 200 && strstr(op.body, "<form method=\"post\" action=\"/console/replay\"") && strlen(csrf) > 20 &&
              strstr(op.body, "<a href=\"/console/replay\" class=\"on\">Replay</a>"),
          "GET /console/replay shows the form (with the session's CSRF token), in the navigation");
    char get[900];
    snprintf(get, sizeof get, "/console/replay?candidate=%s&csrf=%s", cand, csrf);
    op_call(&op, "GET", get, NULL);
    CHECK(op.status == 200 && !strstr(op.body, "decisions replayed"), "GET never runs a replay, whatever its query");

    post(&op, "wrong-token", cand, NULL);
    CHECK(op.status == 403 && !strstr(op.body, "decisions replayed"), "a POST without the session's CSRF token is refused");
    post(&op, csrf, "relative/dir", NULL);
    CHECK(op.status == 400 && strstr(op.body, "absolute path") && !strstr(op.body, "decisions replayed"),
          "a relative candidate path is refused");
    snprintf(path, sizeof path, "%s/nowhere", dir);
    post(&op, csrf, path, NULL);
    CHECK(op.status == 400 && strstr(op.body, "not a directory"), "a candidate that is not a directory is refused");
    post(&op, csrf, cand, "&since=yesterday");
    CHECK(op.status == 400 && strstr(op.body, "YYYY-MM-DD"), "a since that is not a date is refused");
    post(&op, csrf, cand, "&offer=a%20b");
    CHECK(op.status == 400 && strstr(op.body, "not an offer id"), "an offer that is not an offer id is refused");
    post(&op, csrf, cand, "&http=live");
    CHECK(op.status == 400 && strstr(op.body, "from the record or refused"), "an http choice other than the two is refused");
    post(&op, csrf, broken, NULL);
    CHECK(op.status == 400 && strstr(op.body, "do not load") && strstr(op.body, "it-cr.lua:1:"),
          "a candidate that does not load is refused with its file:line problems");

    char sha_live[CRYPTO_SHA256_HEX_LEN], sha_cand[CRYPTO_SHA256_HEX_LEN];
    snprintf(path, sizeof path, "%s/it-cr.lua", rules);
    it_file_sha256(path, sha_live);
    snprintf(path, sizeof path, "%s/it-cr.lua", cand);
    it_file_sha256(path, sha_cand);
    char short_live[13], short_cand[13];
    snprintf(short_live, sizeof short_live, "%s", sha_live);
    snprintf(short_cand, sizeof short_cand, "%s", sha_cand);
    post(&op, csrf, cand, "&since=2020-01-01&offer=it-cr&http=refuse");
    CHECK(op.status == 200 && strstr(op.body, "decisions replayed, 1 differ") &&
              strstr(op.body, "<td>it-cr change_quantity</td><td class=\"num\">0</td>"),
          "the replay runs on POST and shows the per offer and handler counts");
    CHECK(strstr(op.body, sub) && strstr(op.body, op_id) && strstr(op.body, "&quot;accept&quot;:true") &&
              strstr(op.body, "&quot;reason&quot;:&quot;at most 5 seats&quot;") && strstr(op.body, short_live) &&
              strstr(op.body, short_cand),
          "the difference shows subscription, event, old and new decision and both rule hashes");
    CHECK(strstr(op.body, "<option value=\"refuse\" selected>") && strstr(op.body, "value=\"2020-01-01\""),
          "the form keeps the operator's choices for the next run");
    post(&op, csrf, cand, "&since=2999-01-01");
    CHECK(op.status == 200 && strstr(op.body, "0 decisions replayed"), "since leaves out decisions before the date");
    post(&op, csrf, rules, NULL);
    CHECK(op.status == 200 && strstr(op.body, "decisions replayed, 0 differ") && strstr(op.body, "flash good"),
          "the unchanged rules replay with no difference");
    char enc[700];
    snprintf(enc, sizeof enc, "%s/c%%3Cb%%3E", dir);
    post(&op, csrf, enc, NULL);
    CHECK(op.status == 200 && !strstr(op.body, "c<b>") && strstr(op.body, "c&lt;b&gt;"),
          "the candidate path is escaped when the page shows it");

    free(op.body);
    free(anon.body);
    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
