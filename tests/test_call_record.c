/* The RuleCall audit record (src/daemon/call_record.c) and the subscription record
 * (record_text_spliced, records.c) are joined from the texts the rule was given; each must be
 * the very text jansson writes for the whole record built as a tree (what was written before),
 * so replay and every reader of the store see the same records. */
#include "check.h"
#include "core/err.h"
#include "daemon/call_record.h"
#include "engine/engine.h"
#include "daemon/daemon.h"

/* The record as a tree, encoded whole: the reference. */
static char *reference(const struct call_record *c, json_t *sub, json_t *arg, const struct rule_result *r)
{
    json_t *reads = r->reads ? json_loads(r->reads, 0, NULL) : NULL;
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:{s:O, s:O?, s:I, s:o?}, s:o?, s:s?, s:s, s:I}", "action", "RuleCall",
                          "input_of", c->input_of, "offer", c->offer, "handler", c->handler, "input", "sub", sub, "arg",
                          arg, "now_s", (json_int_t)c->now_s, "reads", reads ? reads : json_object(), "decision",
                          rule_result_decision(r), "rule_file", r->file, "rule_sha256", r->sha256, "rule_generation",
                          (json_int_t)r->generation);
    if (c->shadow)
        json_object_set(e, "shadow", c->shadow);
    json_t *http = r->http ? json_loads(r->http, 0, NULL) : NULL;
    if (http)
        json_object_set_new(json_object_get(e, "input"), "http", http);
    json_object_set_new(e, "time_ms", json_integer(c->time_ms));
    char *t = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    return t;
}

static int same_as_reference(json_t *sub, json_t *arg, struct call_record *c, const struct rule_result *r)
{
    char *sub_json = json_dumps(sub, JSON_COMPACT), *arg_json = arg ? json_dumps(arg, JSON_COMPACT) : NULL;
    c->sub_json = sub_json;
    c->arg_json = arg_json;
    char *text = NULL, *want = reference(c, sub, arg, r);
    size_t len = 0;
    int ok = call_record_text(c, r, &text, &len) == 0 && want && !strcmp(text, want) && len == strlen(want);
    if (!ok)
        printf("# got  %s\n# want %s\n", text ? text : "(null)", want ? want : "(null)");
    free(text);
    free(want);
    free(sub_json);
    free(arg_json);
    return ok;
}

int main(void)
{
    json_t *sub = json_pack("{s:s, s:s, s:i, s:{s:s, s:[i, f, b, n]}, s:s}", "id", "sub-1", "name", "Ünïcode \"quoted\" \\ tab\t",
                            "quantity", 7, "beneficiary", "emailId", "a@b.c", "list", 1, 2.5, 1, "planId", "team");
    json_t *arg = json_pack("{s:s, s:s, s:i, s:O}", "id", "op-1", "action", "ChangeQuantity", "quantity", 9,
                            "subscription", sub);
    json_t *shadow = json_pack("{s:{s:b}, s:s, s:b}", "decision", "accept", 1, "rule_sha256", "ab", "same", 1);
    /* the engine's texts of the reads and the ctx.http log are jansson's (engine.c) */
    json_t *reads = json_pack("{s:s, s:n, s:f}", "seats", "12", "gone", "n", 1.5e300);
    json_t *http = json_pack("[{s:s, s:i}]", "url", "https://x.example/\u00e9", "status", 200);
    char *reads_text = json_dumps(reads, JSON_COMPACT), *http_text = json_dumps(http, JSON_COMPACT);
    struct rule_result r = {.outcome = RULE_OK, .handler = RULE_CHANGE_QUANTITY, .accept = 1, .message = "fine",
                            .file = "/rules/seats-pro.lua", .sha256 = "0123abcd", .generation = 4,
                            .reads = reads_text, .http = http_text,
                            .effects = "[{\"kind\":\"meter\",\"dimension\":\"d\",\"quantity\":2.25}]"};
    struct call_record c = {.offer = "seats-pro", .handler = "change_quantity", .input_of = "op-1", .now_s = 1796000000,
                            .shadow = shadow, .time_ms = 1796000000123};
    CHECK(same_as_reference(sub, arg, &c, &r),
          "a change's record (argument, reads, ctx.http log, effects, shadow) is the text of the whole record encoded as a tree");

    struct rule_result failed = {.outcome = RULE_ERROR, .handler = RULE_PROVISION, .file = NULL, .sha256 = "",
                                 .generation = 0};
    struct call_record p = {.offer = "default", .handler = "provision", .input_of = "", .now_s = 0, .time_ms = 1};
    CHECK(same_as_reference(sub, NULL, &p, &failed),
          "a failed provision's record (no argument, reads, log, file or shadow) is the text of the tree encoded whole");

    struct rule_result empty_reads = r;
    empty_reads.reads = "{}";
    empty_reads.http = NULL;
    c.shadow = NULL;
    CHECK(same_as_reference(sub, arg, &c, &empty_reads), "a call without ctx.http calls and with no reads is recorded the same");

    c.sub_json = NULL;
    char *text = NULL;
    size_t len = 0;
    CHECK(call_record_text(&c, &r, &text, &len) == SAASD_EINVAL && !text, "a record without the subscription is refused");
    /* the subscription record: Microsoft's subscription spliced in as the rule got it */
    json_t *rec = json_pack("{s:s, s:s, s:i, s:O, s:s, s:{s:s, s:i}}", "id", "sub-1", "offerId", "seats-pro",
                            "quantity", 7, "subscription", sub, "status", "Subscribed", "pending_change", "field",
                            "quantity", "value", 9);
    char *sub_text = json_dumps(sub, JSON_COMPACT), *whole = json_dumps(rec, JSON_COMPACT), *spliced = NULL;
    int same = record_text_spliced(rec, "subscription", sub, sub_text, &spliced) == 0 && !strcmp(spliced, whole);
    free(spliced);
    spliced = NULL;
    char *again = json_dumps(rec, JSON_COMPACT);
    CHECK(same && !strcmp(again, whole) && json_object_get(rec, "subscription") == sub,
          "a record with the subscription spliced in is the text of the record encoded whole, and the record is left as it was");
    free(again);
    json_t *other = json_deep_copy(sub);
    same = record_text_spliced(rec, "subscription", other, "{\"not\":\"it\"}", &spliced) == 0 && !strcmp(spliced, whole);
    free(spliced);
    spliced = NULL;
    CHECK(same, "a text that is not the record's member is not spliced in");
    json_object_set_new(rec, "offerId", json_string("\001saasd-spliced\001")); /* before the member */
    free(whole);
    whole = json_dumps(rec, JSON_COMPACT);
    same = record_text_spliced(rec, "subscription", sub, "{\"forged\":1}", &spliced) == 0 && !strcmp(spliced, whole);
    free(spliced);
    CHECK(same, "a record with the splice mark's text in another value is encoded whole, nothing spliced");
    json_decref(other);
    json_decref(rec);
    free(sub_text);
    free(whole);
    json_decref(sub);
    json_decref(arg);
    json_decref(shadow);
    json_decref(reads);
    json_decref(http);
    free(reads_text);
    free(http_text);
    return CHECK_DONE();
}
