/* The landing page, split by what each file does (internal to src/daemon):
 *   landing.c          routing of /landing/... and the visit's shared state
 *   landing_signin.c   GET /landing?token= (start sign-in) and GET /landing/callback
 *   landing_confirm.c  POST /landing/confirm: the only request that provisions and activates
 *   landing_status.c   GET /landing/status: the subscription as Microsoft sees it now
 *   landing_fields.c   the offer's extra fields: form fragment and server-side validation
 *   landing_pages.c    brand, templates, the confirmation page and every state page
 * No GET changes anything at Microsoft or in the store's decisions. */
#ifndef SAASD_LANDING_H
#define SAASD_LANDING_H

#include "core/session.h"

#include <jansson.h>
#include <stdio.h>

struct daemon;
struct httpd_request;
struct httpd_response;

#define LANDING_SIGNIN_COOKIE "saasd_signin"

/* One visit. */
struct landing_visit {
    struct daemon *d;
    const struct httpd_request *req;
    struct httpd_response *res;
    const char *cookie;       /* the Cookie header, may be NULL */
    char request_id[40];
    char offer[136];          /* "" until the subscription is known: brand and template */
    json_t *landing;          /* the offer rule's landing table ({fields, brand}), may be NULL */
    const char *head_html;    /* extra <head> fragment (auto refresh), may be NULL */
    const char *signout_csrf; /* set once the visit has a valid session: pages offer "Sign out" */
};

/* landing.c */
void landing_count(const char *outcome);
/* Load the offer's landing table (fields, brand) once the offer is known. */
void landing_set_offer(struct landing_visit *v, const char *offer);
/* The session cookie of the visit: 0, SAASD_EAUTH (missing, forged), SAASD_ETIMEOUT (expired). */
int landing_session(struct landing_visit *v, struct session *s);
/* Add a Set-Cookie header for the session (max_age 0 deletes it). */
void landing_set_session(struct landing_visit *v, const struct session *s, int max_age_s);
/* 1 when the form of the visit carries s's CSRF token. */
int landing_csrf_ok(struct landing_visit *v, const struct session *s);
/* A 303 to path on this site. */
void landing_see_other(struct landing_visit *v, const char *location);

/* landing_signin.c */
void landing_start(struct landing_visit *v);
void landing_callback(struct landing_visit *v);

/* landing_confirm.c */
void landing_confirm(struct landing_visit *v);
/* POST /landing/signout: forget the session cookie (CSRF-checked like confirm). */
void landing_signout(struct landing_visit *v);

/* landing_status.c: the page for the session's subscription (confirmation or state). */
void landing_status(struct landing_visit *v);
/* The page for a visit without a valid session (rc from landing_session). */
void landing_refuse_session(struct landing_visit *v, int rc);
/* Render what the buyer should see for the subscription now: ms = Microsoft's current view
 * (NULL when unreachable), local = the stored record (NULL when none). */
void landing_show_state(struct landing_visit *v, const struct session *s, json_t *ms, json_t *local);

/* landing_fields.c */
/* The form inputs of the offer's fields with the answers so far (answers may be NULL) and
 * the error of each field (errors may be NULL), written to f. */
void landing_fields_form(FILE *f, json_t *landing, json_t *answers, json_t *errors);
/* Read and check every field of the offer from the POSTed form: *answers {name: value},
 * *errors {name: message} (empty when all pass). New references. */
void landing_fields_read(const struct httpd_request *req, json_t *landing, json_t **answers, json_t **errors);

/* landing_pages.c */
/* A page: title and message are text (escaped); body_html a fragment built from escaped values
 * (may be NULL); link (checked by html_link_ok) shown as a button. */
void landing_page(struct landing_visit *v, int status, const char *title, const char *message, const char *body_html,
                  const char *link_text, const char *link);
/* The confirmation page for sub (Microsoft's subscription object) and the signed-in buyer.
 * answers/errors: a refused form shown again (may be NULL). */
void landing_confirmation_page(struct landing_visit *v, int status, const struct session *s, json_t *sub,
                               json_t *answers, json_t *errors);
/* The purchase details (offer, plan's display name, seats, term ...) of sub as an escaped
 * fragment (malloc'd), NULL when sub is NULL. */
char *landing_details_html(struct landing_visit *v, json_t *sub);
/* 1 when the buyer signed in with the purchaser's or the beneficiary's tenant. */
int landing_tenant_matches(const struct session *s, json_t *sub);

#endif
