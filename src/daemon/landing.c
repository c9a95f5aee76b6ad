/* GET /landing?token=…: the customer arrives from Microsoft after buying (contract §3.3-3.5).
 * Resolve the token, keep the subscription, ask the offer's provision rule, activate, and tell
 * the customer what happened. A decision is made once per subscription: reloads and double
 * clicks see the stored decision instead of running provision or Activate again.
 * The page comes from rules/<offer>.html when it exists, else rules/default.html, else the
 * built-in template (placeholders {{title}}, {{message}}, {{link}}). */
#include "daemon/daemon.h"
#include "daemon/flows.h"
#include "daemon/html.h"
#include "daemon/landing_token.h"

#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp_client.h"
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEMPLATE_MAX (256 * 1024)

/* The offer's page template text (malloc'd), or NULL for the built-in one. Read on each
 * visit: landing traffic is light, and an edited template shows at once. */
static char *load_template(struct daemon *d, const char *offer)
{
    const char *names[2] = {offer, "default"};
    for (int i = 0; i < 2; i++) {
        const char *n = names[i];
        if (!n || !*n || n[0] == '.' || strchr(n, '/') || strlen(n) > 128)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.html", d->cfg->rules_dir, n);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char *text = malloc(TEMPLATE_MAX + 1);
        size_t len = text ? fread(text, 1, TEMPLATE_MAX, f) : 0;
        fclose(f);
        if (text) {
            text[len] = 0;
            return text;
        }
    }
    return NULL;
}

struct page_ctx {
    struct daemon *d;
    const char *offer; /* NULL before the subscription is known */
};

static void page(const struct page_ctx *pc, struct httpd_response *res, int status, const char *title,
                 const char *message, const char *link_text, const char *link)
{
    char *tpl = load_template(pc->d, pc->offer);
    char *html = html_render(tpl, title, message, link_text, link);
    httpd_set_body(res, status, "text/html; charset=utf-8", html ? html : "");
    free(html);
    free(tpl);
}

static void count(const char *outcome)
{
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    metrics_inc("saasd_landing_total", labels);
}

/* Render a stored provisioning decision (first visit or any later one). */
static void render_decision(const struct page_ctx *pc, struct httpd_response *res, json_t *local)
{
    json_t *prov = json_object_get(local, "provision");
    const char *decision = json_string_value(json_object_get(prov, "decision"));
    const char *message = json_string_value(json_object_get(prov, "message"));
    const char *redirect = json_string_value(json_object_get(prov, "redirect"));
    const char *status = json_string_value(json_object_get(local, "status"));
    if (decision && !strcmp(decision, "activated") && status && !strcmp(status, "Unsubscribed")) {
        page(pc, res, 200, "Subscription cancelled", "This subscription has been cancelled.", NULL, NULL);
    } else if (decision && !strcmp(decision, "activated")) {
        if (html_link_ok(redirect)) {
            httpd_add_header(res, "Location", redirect);
            page(pc, res, 302, "Your subscription is active", message ? message : "Your subscription is active.",
                 "Continue to the application", redirect);
        } else {
            page(pc, res, 200, "Your subscription is active", message ? message : "Your subscription is active. You can close this page.",
                 NULL, NULL);
        }
    } else if (decision && !strcmp(decision, "pending")) {
        page(pc, res, 200, "We are setting up your account",
             message ? message : "Your purchase is waiting for approval. We will activate it and let you know.", NULL, NULL);
    } else if (decision && !strcmp(decision, "rejected")) {
        page(pc, res, 200, "We could not accept this subscription",
             message ? message : "This purchase cannot be fulfilled. Please contact the vendor.", NULL, NULL);
    } else {
        page(pc, res, 200, "Subscription", "Your subscription is known to us.", NULL, NULL);
    }
}

void landing_handle(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    char request_id[CRYPTO_UUID_LEN];
    crypto_uuid(request_id);
    struct page_ctx pcs = {.d = d}, *pc = &pcs;
    const char *token = httpd_query(req, "token"); /* decoded exactly once, '+' kept */
    if (landing_token_check(token) != 0) { /* missing, or not a token at all */
        count("missing_token");
        page(pc, res, 400, "This link is incomplete",
             "The sign-up link has no token. Open your subscription in the Azure portal or the Microsoft 365 admin "
             "center and choose \"Configure account\" again.", NULL, NULL);
        return;
    }

    struct mp_result mr = {.max_wait_ms = d->cfg->landing_max_wait_ms}; /* a browser is waiting */
    int rc = mp_resolve(d->mp, token, &mr);
    if (rc) {
        int expired = mr.status == 400 || mr.status == 403 || mr.status == 404;
        log_warn("landing", expired ? "token refused by Microsoft" : "resolve failed", "request_id", request_id,
                 "error", saasd_strerror(rc), "ms_request_id", mr.request_id, "detail", mr.message);
        mp_result_clear(&mr);
        count(expired ? "invalid_token" : "resolve_error");
        if (expired)
            page(pc, res, 400, "This sign-up link has expired or is not valid",
                 "Open your subscription in the Azure portal or the Microsoft 365 admin center and choose "
                 "\"Configure account\" (or \"Manage account\") again to get a fresh link.", NULL, NULL);
        else
            page(pc, res, 503, "Please try again in a minute",
                 "We could not reach Microsoft to confirm your purchase. Reload this page in a minute.", NULL, NULL);
        return;
    }
    json_t *resolved = take_body(&mr);

    char sub_id[128];
    if (jl_string(resolved, "id", sub_id, sizeof sub_id)) {
        json_decref(resolved);
        count("resolve_error");
        page(pc, res, 502, "Please try again in a minute", "Microsoft's answer did not name a subscription.", NULL, NULL);
        return;
    }
    json_t *snapshot = jl_get(resolved, "subscription");
    json_incref(snapshot);
    if (!json_is_object(snapshot)) {
        json_decref(snapshot);
        snapshot = NULL;
        mr.max_wait_ms = d->cfg->landing_max_wait_ms;
        int grc = mp_get_subscription(d->mp, sub_id, &mr);
        snapshot = take_body(&mr);
        if (grc != 0 || !snapshot) {
            json_decref(resolved);
            count("resolve_error");
            page(pc, res, 503, "Please try again in a minute", "We could not read your subscription from Microsoft.", NULL, NULL);
            return;
        }
    }
    json_decref(resolved);

    daemon_lock_sub(d, sub_id);
    struct flow_outcome out;
    rc = flow_provision(d, sub_id, snapshot, request_id, &out);
    json_t *local = NULL;
    if (rc == 0 && record_get_sub(d, sub_id, &local) == 0) {
        count(out.ran_rule ? out.decision : "repeat");
        pcs.offer = json_string_value(json_object_get(local, "offerId"));
        render_decision(pc, res, local);
    } else if (rc == SAASD_ECONFLICT) {
        count("not_pending");
        pcs.offer = json_string_value(jl_get(snapshot, "offerId"));
        page(pc, res, 200, out.title, out.message, NULL, NULL);
    } else {
        count("error");
        page(pc, res, 503, "We could not finish setting up your account",
             "Something went wrong on our side. Reload this page in a minute; nothing was charged twice.", NULL, NULL);
    }
    daemon_unlock_sub(d, sub_id);
    json_decref(local);
    json_decref(snapshot);
}
