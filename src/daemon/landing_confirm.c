/* POST /landing/confirm: the buyer pressed Confirm. The only request of the landing page that
 * provisions and activates: it needs a valid session and that session's CSRF token, checks the
 * offer's extra fields, runs provision with the buyer and the answers, and sends the browser
 * on to /landing/status (so a reload never posts twice; a second POST finds the stored
 * decision and runs nothing again). */
#include "daemon/daemon.h"
#include "daemon/flows.h"
#include "daemon/landing.h"

#include "core/config.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/mp_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {buyer = {oid, tid, name, email, tenant_matches}, fields = {...}} for the provision rule. */
static json_t *landing_input(const struct session *s, json_t *sub, json_t *answers)
{
    return json_pack("{s:{s:s,s:s,s:s,s:s,s:b},s:O}", "buyer", "oid", s->oid, "tid", s->tid, "name", s->name, "email",
                     s->email, "tenant_matches", landing_tenant_matches(s, sub), "fields", answers);
}

/* Nothing was activated: count why and say so, with the way back to the purchase page. */
static void not_activated(struct landing_visit *v, int status, const char *counter, const char *title,
                          const char *message)
{
    landing_count(counter);
    landing_page(v, status, title, message, NULL, "Back to your purchase", "/landing/status");
}

static void provision(struct landing_visit *v, const struct session *s, json_t *sub, json_t *answers)
{
    json_t *input = landing_input(s, sub, answers);
    struct flow_outcome out;
    daemon_lock_sub(v->d, s->sub_id);
    int rc = input ? flow_provision(v->d, s->sub_id, sub, v->request_id, input, &out) : SAASD_ENOMEM;
    daemon_unlock_sub(v->d, s->sub_id);
    json_decref(input);
    if (rc == 0 || rc == SAASD_ECONFLICT) {
        /* decided now, decided before, or not in a state to decide: the status page says which */
        landing_count(rc ? "not_pending" : out.ran_rule ? out.decision : "repeat");
        landing_see_other(v, "/landing/status");
    } else {
        not_activated(v, 503, "error", "We could not finish setting up your account",
                      "Something went wrong on our side and nothing was activated. Please press Confirm again in a "
                      "minute.");
    }
}

void landing_confirm(struct landing_visit *v)
{
    struct session s;
    int rc = landing_session(v, &s);
    if (rc) {
        landing_refuse_session(v, rc);
        return;
    }
    v->signout_csrf = s.csrf;
    if (!landing_csrf_ok(v, &s)) {
        log_warn("landing", "confirmation refused: CSRF token missing or wrong", "request_id", v->request_id,
                 "sub_id", s.sub_id);
        not_activated(v, 403, "bad_csrf", "Please confirm from the purchase page",
                      "This confirmation did not come from your purchase page, so nothing was activated. Open your "
                      "purchase again and press Confirm there.");
        return;
    }
    json_t *local = NULL;
    int decided = record_get_sub(v->d, s.sub_id, &local) == 0 && json_object_get(local, "provision");
    json_decref(local);
    if (decided) { /* a second tab or a re-sent form: nothing to do again, show where it stands */
        landing_count("repeat");
        landing_see_other(v, "/landing/status");
        return;
    }
    struct mp_result mr = {.max_wait_ms = v->d->cfg->landing_max_wait_ms}; /* a browser is waiting */
    json_t *sub = mp_get_subscription(v->d->mp, s.sub_id, &mr) == 0 ? take_body(&mr) : NULL;
    mp_result_clear(&mr);
    if (!sub) {
        not_activated(v, 503, "resolve_error", "Please try again in a minute",
                      "We could not read your subscription from Microsoft, so nothing was activated yet. Press Confirm "
                      "again in a minute.");
        return;
    }
    landing_set_offer(v, json_string_value(json_object_get(sub, "offerId")));
    json_t *answers = NULL, *errors = NULL;
    landing_fields_read(v->req, v->landing, &answers, &errors);
    if (json_object_size(errors)) {
        landing_count("fields_refused");
        landing_confirmation_page(v, 422, &s, sub, answers, errors);
    } else {
        provision(v, &s, sub, answers);
    }
    json_decref(answers);
    json_decref(errors);
    json_decref(sub);
}
