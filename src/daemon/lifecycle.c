/* The life-cycle table (see lifecycle.h). Where Microsoft's pages disagree, the newer webhook
 * page wins and the row works with either behaviour: Reinstate is run whether Microsoft sends it
 * InProgress (ACK-able, life-cycle page) or already Succeeded (webhook page), and a refusal
 * cancels the subscription instead of PATCHing Failure. */
#include "daemon/lifecycle.h"

#include <string.h>
#include <strings.h>

static const struct lifecycle_action rows[] = {
    /* action          handler            ack refusal                on_error          rerun once status_after    target */
    {"ChangePlan",     "change_plan",     1,  REFUSAL_PATCH_FAILURE, ON_ERROR_DEFAULT, 0,    0,   NULL,           "planId"},
    {"ChangeQuantity", "change_quantity", 1,  REFUSAL_PATCH_FAILURE, ON_ERROR_DEFAULT, 0,    0,   NULL,           "quantity"},
    {"Reinstate",      "reinstate",       1,  REFUSAL_CANCEL,        ON_ERROR_RETRY,   1,    0,   "Subscribed",   NULL},
    {"Subscribe",      "provision",       0,  REFUSAL_CANCEL,        ON_ERROR_RETRY,   1,    1,   "Subscribed",   NULL},
    {"Suspend",        "suspend",         0,  REFUSAL_NONE,          ON_ERROR_RETRY,   1,    0,   "Suspended",    NULL},
    {"Renew",          "renew",           0,  REFUSAL_NONE,          ON_ERROR_RETRY,   1,    0,   "Subscribed",   NULL},
    {"Unsubscribe",    "unsubscribe",     0,  REFUSAL_NONE,          ON_ERROR_RETRY,   1,    1,   "Unsubscribed", NULL},
};

const struct lifecycle_action *lifecycle_find(const char *action)
{
    for (size_t i = 0; action && i < sizeof rows / sizeof rows[0]; i++)
        if (!strcasecmp(rows[i].action, action))
            return &rows[i];
    return NULL;
}

const struct lifecycle_action *lifecycle_rows(size_t *n)
{
    *n = sizeof rows / sizeof rows[0];
    return rows;
}

const char *lifecycle_refusal_text(enum lifecycle_refusal r)
{
    switch (r) {
    case REFUSAL_PATCH_FAILURE: return "PATCH Failure";
    case REFUSAL_CANCEL: return "cancel (DELETE)";
    default: return "cannot refuse";
    }
}

const char *lifecycle_request_source(json_t *op)
{
    static const char *const names[] = {"operationRequestSource", "operationRequestedSource"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *s = json_string_value(json_object_get(op, names[i]));
        if (s && *s)
            return s;
    }
    return "";
}
