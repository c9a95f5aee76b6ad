/* The life cycle of a subscription as saasd acts on it: one row per marketplace action, read by
 * the flow code (flows_event.c) and mirrored by the README's life-cycle table
 * (tests/test_lifecycle_table.c checks that they agree). When Microsoft changes how an action
 * behaves, the change is one row here and one row there. */
#ifndef SAASD_LIFECYCLE_H
#define SAASD_LIFECYCLE_H

#include <jansson.h>

/* What a refusal by the rule does. */
enum lifecycle_refusal {
    REFUSAL_NONE,          /* the handler cannot refuse (side effects only; an error is retried) */
    REFUSAL_PATCH_FAILURE, /* PATCH the operation Failure inside the ACK window */
    REFUSAL_CANCEL,        /* DELETE the subscription (following Operation-Location), audit why */
};

/* What a rule error or limit does. */
enum lifecycle_on_error {
    ON_ERROR_DEFAULT, /* apply rules.on_timeout (accept or refuse) */
    ON_ERROR_RETRY,   /* keep the event in the outbox and try again */
};

struct lifecycle_action {
    const char *action;            /* Microsoft's name in the webhook and the operation */
    const char *handler;           /* the rule handler that runs */
    int ack;                       /* PATCH the operation while Microsoft shows it InProgress */
    enum lifecycle_refusal refusal;
    enum lifecycle_on_error on_error;
    int rerun_when_final;          /* the handler runs although Microsoft already shows Succeeded */
    int once;                      /* at most once per subscription (a terminal action) */
    const char *status_after;      /* local status after success; NULL: Microsoft's view only */
    const char *target_field;      /* operation field applied locally on success (planId, quantity) */
};

/* The row for a Microsoft action name (case-insensitive), NULL for an action saasd does not act on. */
const struct lifecycle_action *lifecycle_find(const char *action);
/* Every row, for the README check. */
const struct lifecycle_action *lifecycle_rows(size_t *n);
/* Human names of the columns' values, as the README writes them. */
const char *lifecycle_refusal_text(enum lifecycle_refusal r);

/* Who started an operation ("Azure", "Partner"), under either spelling Microsoft uses
 * (operationRequestSource, operationRequestedSource); "" when absent. */
const char *lifecycle_request_source(json_t *op);

#endif
