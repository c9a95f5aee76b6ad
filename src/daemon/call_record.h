/* The RuleCall audit record of one rule call (decide.c), as text: `saasd rules replay` runs a
 * candidate rule on exactly these inputs. The subscription and argument are spliced in as the
 * JSON texts the rule was given (already encoded once for it), and the call's ctx.store reads and
 * ctx.http log as the engine encoded them (jansson's text, which encodes again to itself), instead of being parsed back and encoded again: the
 * text is the one jansson writes for the whole record (tests/test_call_record.c). */
#ifndef SAASD_DAEMON_CALL_RECORD_H
#define SAASD_DAEMON_CALL_RECORD_H

#include <jansson.h>
#include <stdint.h>

struct rule_result;

struct call_record {
    const char *offer, *handler;
    const char *input_of;   /* the argument's "id", "" when it has none */
    const char *sub_json;   /* the subscription as the rule got it (required) */
    const char *arg_json;   /* the argument as the rule got it, NULL for none (recorded as null) */
    long long now_s;        /* the rule's clock */
    json_t *shadow;         /* the shadow rules' decision (borrowed), or NULL */
    int64_t time_ms;        /* when it is recorded */
};

/* 0 and *out (malloc'd, '\0'-terminated, *len bytes), or SAASD_ENOMEM / SAASD_EINVAL. */
int call_record_text(const struct call_record *c, const struct rule_result *r, char **out, size_t *len);

#endif
