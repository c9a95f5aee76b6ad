/* Staged rollout: a shadow generation (rules.shadow_dir) decides every call beside the live one,
 * on the same inputs, without acting: its decision is recorded next to the live one and a
 * difference does not change what happens. One admin command promotes it (a reload's swap).
 * In-process daemon against the in-process emulator. */
#include "it_support.h"

static const char LIVE[] = "local rule = {}\n"
                           "function rule.change_quantity(sub, change, ctx) return { accept = true } end\n"
                           "return rule\n";
static const char SHADOW[] = "local rule = {}\n"
                             "function rule.change_quantity(sub, change, ctx)\n"
                             "  if change.quantity > 5 then return { accept = false, reason = 'at most 5 seats' } end\n"
                             "  return { accept = true }\n"
                             "end\n"
                             "return rule\n";

/* The RuleCall audit record of sub's change_quantity for op (new reference) or NULL. */
static json_t *rule_call(const char *sub, const char *op)
{
    json_t *h = it_history(sub), *e, *found = NULL;
    size_t i;
    json_array_foreach(h, i, e) if (!strcmp(it_str(e, "action"), "RuleCall") && !strcmp(it_str(e, "input_of"), op))
        found = json_incref(e);
    json_decref(h);
    return found;
}

static const char *change(const char *sub, int seats, char *op, size_t size)
{
    char *id = it_customer(sub, "change-quantity", json_pack("{s:i}", "quantity", seats));
    snprintf(op, size, "%s", id ? id : "");
    const char *st = it_wait_op(id, 10000);
    free(id);
    return st;
}

int main(void)
{
    char dir[256], conf[512], rules[512], shadow[600], path[700], extra[1400];
    struct emu *emu = it_setup("shadow", dir, rules);
    if (!emu)
        return CHECK_DONE();
    snprintf(shadow, sizeof shadow, "%s/shadow", dir);
    mkdir(shadow, 0700);
    snprintf(path, sizeof path, "%s/it-sh.lua", rules);
    it_write_file(path, LIVE);
    snprintf(path, sizeof path, "%s/it-sh.lua", shadow);
    it_write_file(path, SHADOW);
    char shadow_sha[CRYPTO_SHA256_HEX_LEN];
    it_file_sha256(path, shadow_sha);
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    snprintf(extra, sizeof extra, "rules = { dir = \"%s\", cpu_ms = 300, shadow_dir = \"%s\" }\n", rules, shadow);
    it_write_config(conf, dir, 0, it_free_port(), extra);
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();
    it_offer("it-sh");
    char sub[64], op[128];
    char *landing = it_purchase("it-sh", 3, sub, sizeof sub);
    long st = it_land(landing, NULL); /* sign in and confirm, as the buyer does */
    free(landing);
    CHECK(st == 200, "the subscription is activated");

    CHECK(!strcmp(change(sub, 8, op, sizeof op), "Succeeded"), "the live rule accepts 8 seats and Microsoft applies it");
    it_settle(d->store, 10000);
    json_t *rc = rule_call(sub, op), *sh = json_object_get(rc, "shadow");
    CHECK(sh && json_is_false(json_object_get(sh, "same")) &&
              json_is_false(json_object_get(json_object_get(sh, "decision"), "accept")) &&
              !strcmp(it_str(sh, "rule_sha256"), shadow_sha),
          "the shadow's refusal is recorded next to the live decision, with the shadow rule's hash");
    CHECK(json_is_true(json_object_get(json_object_get(rc, "decision"), "accept")),
          "the live decision is the one recorded as the decision");
    json_decref(rc);
    json_t *ms = it_ms_sub(sub);
    CHECK(json_integer_value(json_object_get(ms, "quantity")) == 8, "the shadow's decision changed nothing");
    json_decref(ms);

    CHECK(!strcmp(change(sub, 4, op, sizeof op), "Succeeded"), "a change both generations accept succeeds");
    it_settle(d->store, 10000);
    rc = rule_call(sub, op);
    CHECK(json_is_true(json_object_get(json_object_get(rc, "shadow"), "same")), "agreement is recorded as the same");
    json_decref(rc);

    json_t *r = it_admin("POST", "/admin/rules/promote", json_object(), &st);
    CHECK(st == 200 && json_integer_value(json_object_get(r, "files")) == 1, "POST /admin/rules/promote promotes the shadow");
    json_decref(r);
    char live_sha[CRYPTO_SHA256_HEX_LEN];
    snprintf(path, sizeof path, "%s/it-sh.lua", rules);
    it_file_sha256(path, live_sha);
    CHECK(!strcmp(live_sha, shadow_sha), "the live rule file is now the shadow's text");
    change(sub, 9, op, sizeof op);
    it_settle(d->store, 10000);
    rc = rule_call(sub, op);
    CHECK(rc && !strcmp(it_str(rc, "rule_sha256"), shadow_sha) &&
              json_is_false(json_object_get(json_object_get(rc, "decision"), "accept")),
          "after promotion the promoted rule decides (9 seats refused)");
    json_decref(rc);

    daemon_stop(d);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
