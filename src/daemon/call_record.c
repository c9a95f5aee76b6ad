/* The RuleCall audit record as text (see call_record.h). Its members, in order: action,
 * input_of, offer, handler, input {sub, arg, now_s, reads, http}, decision, rule_file,
 * rule_sha256, rule_generation, shadow, time_ms; the parts around input are small objects
 * encoded by jansson, input is joined from texts already encoded. */
#include "daemon/call_record.h"

#include "core/err.h"
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parts {
    char *head, *tail; /* jansson's text of the members before and after input */
    char now[48];
};

static int encode_parts(const struct call_record *c, const struct rule_result *r, struct parts *p)
{
    json_t *head = json_pack("{s:s, s:s, s:s, s:s}", "action", "RuleCall", "input_of", c->input_of, "offer", c->offer,
                             "handler", c->handler);
    json_t *tail = json_pack("{s:o?, s:s?, s:s, s:I}", "decision", rule_result_decision(r), "rule_file", r->file,
                             "rule_sha256", r->sha256, "rule_generation", (json_int_t)r->generation);
    int rc = head && tail ? 0 : SAASD_ENOMEM;
    if (!rc && c->shadow)
        rc = json_object_set(tail, "shadow", c->shadow) ? SAASD_ENOMEM : 0;
    if (!rc)
        rc = json_object_set_new(tail, "time_ms", json_integer(c->time_ms)) ? SAASD_ENOMEM : 0;
    p->head = rc ? NULL : json_dumps(head, JSON_COMPACT);
    p->tail = rc ? NULL : json_dumps(tail, JSON_COMPACT);
    json_decref(head);
    json_decref(tail);
    return p->head && p->tail ? 0 : SAASD_ENOMEM;
}

int call_record_text(const struct call_record *c, const struct rule_result *r, char **out, size_t *len)
{
    *out = NULL;
    if (!c->sub_json || !c->input_of || !c->offer || !c->handler)
        return SAASD_EINVAL;
    struct parts p = {0};
    int rc = encode_parts(c, r, &p);
    if (!rc) {
        snprintf(p.now, sizeof p.now, ",\"now_s\":%lld,\"reads\":", c->now_s);
        size_t hl = strlen(p.head);
        p.head[hl - 1] = '\0'; /* its closing brace: input follows */
        const char *seq[] = {p.head, ",\"input\":{\"sub\":", c->sub_json, ",\"arg\":", c->arg_json ? c->arg_json : "null", p.now, r->reads ? r->reads : "{}",
                             r->http ? ",\"http\":" : "", r->http ? r->http : "", "},", p.tail + 1};
        size_t total = 1;
        for (size_t i = 0; i < sizeof seq / sizeof *seq; i++)
            total += strlen(seq[i]);
        char *t = malloc(total);
        size_t n = 0;
        for (size_t i = 0; t && i < sizeof seq / sizeof *seq; i++) {
            size_t l = strlen(seq[i]);
            memcpy(t + n, seq[i], l);
            n += l;
        }
        if (t) {
            t[n] = '\0';
            *out = t;
            *len = n;
        }
        rc = t ? 0 : SAASD_ENOMEM;
    }
    free(p.head);
    free(p.tail);
    return rc;
}
