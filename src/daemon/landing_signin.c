/* Sign-in on the landing page: GET /landing?token=… keeps the purchase token server side (in
 * the pending sign-in, never in a cookie or a log) and sends the browser to Entra ID;
 * GET /landing/callback verifies the sign-in, resolves the token and starts the session;
 * POST /landing/signout ends it in this browser. */
#include "daemon/daemon.h"
#include "daemon/landing.h"
#include "daemon/landing_token.h"

#include "core/config.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/mp_client.h"
#include "core/oidc.h"
#include "core/session_revoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* Microsoft's recommended text for a token it cannot resolve (expired after 24 h, or not one). */
#define UNKNOWN_PURCHASE_TITLE "We couldn't identify this purchase"
#define UNKNOWN_PURCHASE_TEXT                                                                                      \
    "Please reopen this SaaS subscription in the Azure portal or in the Microsoft 365 admin center and select "  \
    "\"Configure Account\" or \"Manage Account\" again."

void landing_start(struct landing_visit *v)
{
    const char *token = httpd_query(v->req, "token"); /* decoded exactly once, '+' kept */
    int shape = landing_token_check(token);
    if (shape == SAASD_ENOTFOUND) {
        landing_count("missing_token");
        landing_page(v, 400, "This link is incomplete", "The sign-up link has no purchase token. " UNKNOWN_PURCHASE_TEXT,
                     NULL, NULL, NULL);
        return;
    }
    if (shape != 0) {
        landing_count("malformed_token");
        landing_page(v, 400, UNKNOWN_PURCHASE_TITLE, UNKNOWN_PURCHASE_TEXT, NULL, NULL, NULL);
        return;
    }
    char binding[OIDC_BINDING_LEN], *url = NULL, *cookie = NULL;
    int rc = v->d->oidc ? oidc_begin(v->d->oidc, token, binding, &url) : OIDC_EUNAVAILABLE;
    if (rc) {
        log_warn("landing", "cannot start the buyer's sign-in", "request_id", v->request_id, "error",
                 oidc_error_name(rc));
        landing_count("signin_unavailable");
        landing_page(v, 503, "Sign-in is not available right now",
                     "We could not reach Microsoft to sign you in. Please reload this page in a few minutes.", NULL,
                     NULL, NULL);
        return;
    }
    /* The binding ties the pending sign-in to this browser: a state replayed from elsewhere fails. */
    if (!session_set_cookie(LANDING_SIGNIN_COOKIE, binding, v->d->cfg->landing_cookie_secure, 600, &cookie))
        httpd_add_header(v->res, "Set-Cookie", cookie);
    httpd_add_header(v->res, "Location", url);
    landing_count("signin_redirect");
    landing_page(v, 302, "Sign in to continue",
                 "Please sign in with your work, school or Microsoft account to see and confirm your purchase.", NULL,
                 "Sign in with Microsoft", url);
    free(cookie);
    free(url);
}

/* What each refused sign-in tells the buyer: one table. */
static const struct {
    int rc, status;
    const char *outcome, *title, *message;
} refusals[] = {
    {OIDC_ESTATE, 400, "bad_state", "This sign-in has expired or was already used",
     "For your security each sign-in works once, in the browser that started it, for ten minutes. "
     UNKNOWN_PURCHASE_TEXT},
    {OIDC_EDENIED, 400, "signin_denied", "Sign-in did not complete",
     "You cancelled the sign-in or Microsoft could not sign you in. " UNKNOWN_PURCHASE_TEXT},
    {OIDC_ECODE, 400, "code_refused", "We could not verify your sign-in",
     "Microsoft did not confirm this sign-in. Nothing was changed. " UNKNOWN_PURCHASE_TEXT},
    {OIDC_ETOKEN, 400, "bad_id_token", "We could not verify your sign-in",
     "The sign-in answer could not be verified. Nothing was changed. " UNKNOWN_PURCHASE_TEXT},
    {OIDC_ENONCE, 400, "wrong_nonce", "We could not verify your sign-in",
     "The sign-in answer does not belong to this sign-in. Nothing was changed. " UNKNOWN_PURCHASE_TEXT},
    {OIDC_EUNAVAILABLE, 503, "signin_unavailable", "Sign-in is not available right now",
     "We could not reach Microsoft to finish your sign-in. Please try again in a few minutes. "
     UNKNOWN_PURCHASE_TEXT},
};

static void refuse_signin(struct landing_visit *v, int rc, const char *detail)
{
    size_t i = 0, n = sizeof refusals / sizeof refusals[0];
    while (i < n && refusals[i].rc != rc)
        i++;
    if (i == n) /* anything else: the answer could not be verified */
        for (i = 0; refusals[i].rc != OIDC_ETOKEN; i++)
            ;
    log_warn("landing", "buyer sign-in refused", "request_id", v->request_id, "reason", oidc_error_name(rc), "detail",
             detail);
    landing_count(refusals[i].outcome);
    landing_page(v, refusals[i].status, refusals[i].title, refusals[i].message, NULL, NULL, NULL);
}

/* Resolve the purchase token into a subscription id; a refused token gets Microsoft's text. */
static int resolve(struct landing_visit *v, const char *token, char *sub_id, size_t size)
{
    struct mp_result mr = {.max_wait_ms = v->d->cfg->landing_max_wait_ms}; /* a browser is waiting */
    int rc = mp_resolve(v->d->mp, token, &mr);
    json_t *resolved = rc ? NULL : take_body(&mr);
    if (!rc && jl_string(resolved, "id", sub_id, size))
        rc = SAASD_EHTTP;
    int refused = rc && (mr.status == 400 || mr.status == 403 || mr.status == 404);
    if (rc)
        log_warn("landing", refused ? "token refused by Microsoft" : "resolve failed", "request_id", v->request_id,
                 "error", saasd_strerror(rc), "ms_request_id", mr.request_id, "detail", mr.message);
    if (refused) {
        landing_count("invalid_token");
        landing_page(v, 400, UNKNOWN_PURCHASE_TITLE, UNKNOWN_PURCHASE_TEXT, NULL, NULL, NULL);
    } else if (rc) {
        landing_count("resolve_error");
        landing_page(v, 503, "Please try again in a minute",
                     "We could not reach Microsoft to confirm your purchase; nothing was changed. Please try again in "
                     "a minute: " UNKNOWN_PURCHASE_TEXT,
                     NULL, NULL, NULL);
    }
    mp_result_clear(&mr);
    json_decref(resolved);
    return rc;
}

void landing_callback(struct landing_visit *v)
{
    const char *state = httpd_query(v->req, "state"), *code = httpd_query(v->req, "code");
    char binding[OIDC_BINDING_LEN + 8] = "", *clear = NULL;
    session_cookie_get(v->cookie, LANDING_SIGNIN_COOKIE, binding, sizeof binding);
    if (!session_set_cookie(LANDING_SIGNIN_COOKIE, "", v->d->cfg->landing_cookie_secure, 0, &clear))
        httpd_add_header(v->res, "Set-Cookie", clear); /* single use, whatever happens next */
    free(clear);
    const char *error = httpd_query(v->req, "error");
    if (!v->d->oidc) {
        refuse_signin(v, OIDC_EUNAVAILABLE, "starting");
        return;
    }
    if (error) {
        oidc_cancel(v->d->oidc, state, binding);
        refuse_signin(v, OIDC_EDENIED, error);
        return;
    }
    struct oidc_identity who;
    char *token = NULL, detail[128];
    int rc = oidc_finish(v->d->oidc, state, binding, code, &who, &token, detail, sizeof detail);
    if (rc) {
        refuse_signin(v, rc, detail);
        return;
    }
    struct session s = {0};
    rc = resolve(v, token, s.sub_id, sizeof s.sub_id);
    free(token);
    if (rc)
        return;
    snprintf(s.oid, sizeof s.oid, "%s", who.oid);
    snprintf(s.tid, sizeof s.tid, "%s", who.tid);
    snprintf(s.name, sizeof s.name, "%s", who.name);
    snprintf(s.email, sizeof s.email, "%s", who.email);
    s.exp = (long long)time(NULL) + v->d->cfg->landing_session_ttl_s;
    if (session_new_csrf(&s)) {
        landing_page(v, 500, "Something went wrong on our side", "Please reload this page.", NULL, NULL, NULL);
        return;
    }
    log_info("landing", "buyer signed in", "request_id", v->request_id, "sub_id", s.sub_id, "tid", s.tid, "oid", s.oid);
    landing_count("signed_in");
    landing_set_session(v, &s, v->d->cfg->landing_session_ttl_s);
    landing_see_other(v, "/landing/status");
}

/* Signing out deletes the cookie in this browser and records the session as signed out
 * (session_revoke.h), so a copy of the cookie taken elsewhere is refused too. The CSRF check
 * stops another site from signing the buyer out. */
void landing_signout(struct landing_visit *v)
{
    struct session s;
    int rc = landing_session(v, &s);
    if (rc == 0 && !landing_csrf_ok(v, &s)) {
        log_warn("landing", "sign-out refused: CSRF token missing or wrong", "request_id", v->request_id, "sub_id",
                 s.sub_id);
        landing_count("signout_bad_csrf");
        landing_page(v, 403, "Please sign out from the purchase page",
                     "This request did not come from your purchase page, so you are still signed in.", NULL,
                     "Back to your purchase", "/landing/status");
        return;
    }
    if (rc == 0 && (rc = session_revoke(v->d->store, &s, (long long)time(NULL))) != 0) {
        log_error("landing", "sign-out could not be recorded", "request_id", v->request_id, "sub_id", s.sub_id,
                  "error", saasd_strerror(rc));
        landing_count("signout_store_error");
        landing_page(v, 503, "We could not sign you out",
                     "Something went wrong on our side, so you are still signed in. Please try again in a moment.",
                     NULL, "Back to your purchase", "/landing/status");
        return;
    }
    landing_set_session(v, NULL, 0);
    if (rc == 0) {
        json_t *local = NULL; /* the offer's brand on the goodbye page too */
        if (record_get_sub(v->d, s.sub_id, &local) == 0)
            landing_set_offer(v, json_string_value(json_object_get(local, "offerId")));
        json_decref(local);
        log_info("landing", "buyer signed out", "request_id", v->request_id, "sub_id", s.sub_id);
    }
    landing_count(rc == 0 ? "signed_out" : "signout_without_session");
    landing_page(v, 200, "You are signed out",
                 "You have signed out of this page. To see your subscription again, open it in the Azure portal or "
                 "the Microsoft 365 admin center and select \"Manage Account\".",
                 NULL, NULL, NULL);
}
