/* The rule engine adapter: one call of an offer's handler, turned into a decision the flows and
 * metering act on. The only daemon code that knows the engine's calling convention. */
#ifndef SAASD_DECIDE_H
#define SAASD_DECIDE_H

#include <jansson.h>

struct daemon;
struct store_batch;

struct decision {
    int failed;           /* the rule raised, returned garbage or hit a limit */
    int limit_hit;        /* CPU or memory limit */
    char verdict[16];     /* provision: activate|pending|reject; changes: accept|refuse; notify: done;
                             usage: bill */
    char message[512];
    char redirect[1024];
    double bill;          /* usage: the part of the reported quantity to send to Microsoft */
    char rule_file[512];
    char rule_sha256[72];
    long long generation;
    char error[1024];
};

/* Run handler (a rule handler name) of the rule serving offer with sub and arg (not passed to
 * provision: see decide_provision); the rule's ctx.store writes go to batch when it succeeds. Counts the decision in
 * saasd_rule_decisions_total. Returns 0, or the engine's error with out->failed and out->error. */
int decide(struct daemon *d, const char *offer, const char *handler, json_t *sub, json_t *arg,
           struct store_batch *batch, struct decision *out);

/* One call's inputs as the caller already holds them: trees, and texts already encoded
 * (borrowed). A text given is what the rule gets and what the audit record keeps, so a caller
 * that has Microsoft's text (flows_event.c) passes it on instead of having it encoded again. */
struct decide_input {
    json_t *sub;          /* the subscription view; its "id" names the audit record */
    const char *sub_json; /* sub's JSON text, or NULL: sub is encoded */
    json_t *arg;          /* the argument, or NULL */
    const char *arg_json; /* the argument's JSON text (one line), or NULL: arg is encoded */
    const char *input_of; /* the argument's id in the audit record, or NULL: arg's "id" */
};

/* decide() with the inputs above (the argument is not passed to provision). */
int decide_with(struct daemon *d, const char *offer, const char *handler, const struct decide_input *in,
                struct store_batch *batch, struct decision *out);

/* provision(sub, ctx, landing): landing = the buyer's confirmation {buyer, fields} (may be NULL). */
int decide_provision(struct daemon *d, const char *offer, json_t *sub, json_t *landing, struct store_batch *batch,
                     struct decision *out);

#endif
