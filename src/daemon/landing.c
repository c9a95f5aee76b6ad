/* The landing page: where Microsoft sends a buyer after a purchase ("Configure account") and
 * on every "Manage account" (contract §3.3-3.5). The buyer signs in with Entra ID, sees what
 * was bought and who they are, and only an explicit, CSRF-checked POST provisions and
 * activates. The routes, in the order a buyer meets them:
 *   GET  /landing?token=…      keep the token server side, send the browser to sign in
 *   GET  /landing/callback     verify the sign-in, resolve the token, start the session
 *   GET  /landing/status       the confirmation page, or the subscription's current state
 *   POST /landing/confirm      run provision and Activate, then back to /landing/status
 *   POST /landing/signout      forget the session in this browser */
#include "daemon/landing.h"
#include "daemon/daemon.h"

#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/session_revoke.h"
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void landing_count(const char *outcome)
{
    char labels[96];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    metrics_inc("saasd_landing_total", labels);
}

void landing_set_offer(struct landing_visit *v, const char *offer)
{
    if (!offer || !*offer || v->offer[0])
        return;
    snprintf(v->offer, sizeof v->offer, "%s", offer);
    char *json = NULL;
    if (engine_landing(v->d->engine, offer, &json) == 0 && json)
        v->landing = json_loads(json, 0, NULL);
    free(json);
}

int landing_session(struct landing_visit *v, struct session *s)
{
    char value[4200];
    memset(s, 0, sizeof *s);
    if (!session_cookie_get(v->cookie, SESSION_COOKIE, value, sizeof value))
        return SAASD_EAUTH;
    int rc = session_decode(v->d->session_key, value, (long long)time(NULL), s);
    if (rc == 0 && session_revoked(v->d->store, s) != 0)
        rc = SAASD_EAUTH; /* signed out (or the store cannot say: refuse) */
    return rc;
}

void landing_set_session(struct landing_visit *v, const struct session *s, int max_age_s)
{
    char *value = NULL, *header = NULL;
    if (max_age_s > 0 && session_encode(v->d->session_key, s, &value))
        return;
    if (!session_set_cookie(SESSION_COOKIE, value ? value : "", v->d->cfg->landing_cookie_secure, max_age_s, &header))
        httpd_add_header(v->res, "Set-Cookie", header);
    free(value);
    free(header);
}

int landing_csrf_ok(struct landing_visit *v, const struct session *s)
{
    char *csrf = NULL;
    httpd_form_value(v->req, "csrf", &csrf);
    int ok = csrf && session_token_equal(csrf, s->csrf);
    free(csrf);
    return ok;
}

void landing_see_other(struct landing_visit *v, const char *location)
{
    httpd_add_header(v->res, "Location", location);
    landing_page(v, 303, "One moment", "Taking you to the next step.", NULL, "Continue", location);
}

/* Which handler serves (method, path): one table, not a chain of comparisons. */
static const struct {
    const char *method, *path;
    void (*fn)(struct landing_visit *v);
} routes[] = {
    {"GET", "/landing", landing_start},
    {"GET", "/landing/callback", landing_callback},
    {"GET", "/landing/status", landing_status},
    {"POST", "/landing/confirm", landing_confirm},
    {"POST", "/landing/signout", landing_signout},
};

void landing_handle(struct daemon *d, const struct httpd_request *req, const char *cookie, struct httpd_response *res)
{
    struct landing_visit v = {.d = d, .req = req, .res = res, .cookie = cookie};
    crypto_uuid(v.request_id);
    const char *method = httpd_method(req), *path = httpd_path(req);
    const char *allow = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path))
            continue;
        allow = routes[i].method;
        if (!strcmp(method, routes[i].method) || (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) {
            routes[i].fn(&v);
            json_decref(v.landing);
            return;
        }
    }
    if (allow) {
        httpd_add_header(res, "Allow", allow);
        landing_page(&v, 405, "This page cannot be used this way",
                     "Please use the buttons on the page instead of typing its address.", NULL, NULL, NULL);
    } else {
        landing_page(&v, 404, "Page not found", "There is no such page.", NULL, NULL, NULL);
    }
    json_decref(v.landing);
}
