/* Pages of the landing flow: the offer's template (rules/<offer>.html, else rules/default.html,
 * else the built-in one) filled with escaped values, the offer's brand from its rule's
 * landing.brand, and the fragments built here from escaped values: the purchase details, the
 * signed-in buyer, the confirmation form. */
#include "daemon/daemon.h"
#include "daemon/html.h"
#include "daemon/landing.h"

#include "core/config.h"
#include "core/httpd.h"
#include "core/json_lenient.h"
#include "core/mp_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEMPLATE_MAX (256 * 1024)
#define DEFAULT_COLOR "#0b5cad"

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

static const char *brand(struct landing_visit *v, const char *key)
{
    return json_string_value(json_object_get(json_object_get(v->landing, "brand"), key));
}

/* Footer: the support contact as a mailto: or https link when it is one, else as text. */
static char *support_html(const char *support)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    if (support) {
        int mail = strchr(support, '@') && !strchr(support, ' ') && !strchr(support, ':');
        int web = !strncmp(support, "https://", 8) && html_link_ok(support);
        fputs("Questions? Contact ", f);
        if (mail || web) {
            fprintf(f, "<a href=\"%s", mail ? "mailto:" : "");
            html_put(f, support);
            fputs("\">", f);
        }
        html_put(f, support);
        fputs(mail || web ? "</a>" : "", f);
    }
    fclose(f);
    return out;
}

/* The page's way on (a button link) and, for a signed-in buyer, the sign-out form. */
static char *link_html(const char *text, const char *url, const char *signout_csrf)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    if (html_link_ok(url)) {
        fputs("<p><a class=\"button\" href=\"", f);
        html_put(f, url);
        fputs("\">", f);
        html_put(f, text ? text : url);
        fputs("</a></p>\n", f);
    }
    if (signout_csrf) {
        fputs("<form class=\"signout\" method=\"post\" action=\"/landing/signout\">"
              "<input type=\"hidden\" name=\"csrf\" value=\"", f);
        html_put(f, signout_csrf);
        fputs("\"><button type=\"submit\" class=\"secondary\">Sign out</button></form>\n", f);
    }
    fclose(f);
    return out;
}

void landing_page(struct landing_visit *v, int status, const char *title, const char *message, const char *body_html,
                  const char *link_text, const char *link)
{
    char *tpl = load_template(v->d, v->offer);
    const char *logo_url = brand(v, "logo_url"), *product = brand(v, "product");
    char *logo = NULL, *support = support_html(brand(v, "support")), *link_frag = link_html(link_text, link, v->signout_csrf);
    if (logo_url && html_link_ok(logo_url)) {
        char *e = html_escape(logo_url), *alt = html_escape(product ? product : v->offer);
        if (e && alt && asprintf(&logo, "<img src=\"%s\" alt=\"%s logo\">", e, alt) < 0)
            logo = NULL;
        free(e);
        free(alt);
    }
    /* a template written before {{body}} existed still shows the details: after the message */
    char *message_html = NULL;
    int has_body = !tpl || strstr(tpl, "{{body}}");
    char *escaped = html_escape(message);
    if (escaped && asprintf(&message_html, "%s%s", escaped, has_body || !body_html ? "" : body_html) < 0)
        message_html = NULL;
    free(escaped);
    const char *color = brand(v, "color") ? brand(v, "color") : DEFAULT_COLOR;
    struct html_value values[] = {
        {"head", NULL, v->head_html},
        {"title", title, NULL},
        {"product", product ? product : v->offer[0] ? v->offer : "Your subscription", NULL},
        {"logo", NULL, logo ? logo : ""},
        {"color", color, NULL},
        {"accent", brand(v, "accent") ? brand(v, "accent") : color, NULL},
        {"message", NULL, message_html ? message_html : ""},
        {"body", NULL, body_html},
        {"link", NULL, link_frag},
        {"support", NULL, support},
    };
    char *html = html_fill(tpl, values, sizeof values / sizeof values[0]);
    httpd_set_body(v->res, status, "text/html; charset=utf-8", html ? html : "");
    /* pages carry a session's CSRF token and personal details: never cached, never framed */
    httpd_add_header(v->res, "Cache-Control", "no-store");
    httpd_add_header(v->res, "X-Frame-Options", "DENY");
    free(html);
    free(tpl);
    free(logo);
    free(support);
    free(link_frag);
    free(message_html);
}

int landing_tenant_matches(const struct session *s, json_t *sub)
{
    const char *p = json_string_value(json_object_get(json_object_get(sub, "purchaser"), "tenantId"));
    const char *b = json_string_value(json_object_get(json_object_get(sub, "beneficiary"), "tenantId"));
    return (p && !strcasecmp(p, s->tid)) || (b && !strcasecmp(b, s->tid));
}

static void dt(FILE *f, const char *term, const char *value)
{
    if (!value || !*value)
        return;
    fputs("<dt>", f);
    html_put(f, term);
    fputs("</dt><dd>", f);
    html_put(f, value);
    fputs("</dd>\n", f);
}

/* The plan's display name from List available plans, or NULL. */
static char *plan_name(struct landing_visit *v, json_t *sub)
{
    const char *id = json_string_value(json_object_get(sub, "id"));
    const char *plan = json_string_value(json_object_get(sub, "planId"));
    struct mp_result mr = {.max_wait_ms = v->d->cfg->landing_max_wait_ms};
    char *name = NULL;
    if (id && plan && mp_list_plans(v->d->mp, id, plan, &mr) == 0) {
        json_t *plans = take_body(&mr), *p;
        size_t i;
        json_array_foreach(json_object_get(plans, "plans"), i, p) {
            const char *dn = json_string_value(json_object_get(p, "displayName"));
            if (jl_string_is(p, "planId", plan) && dn && !name)
                name = strdup(dn);
        }
        json_decref(plans);
    }
    mp_result_clear(&mr);
    return name;
}

static const char *term_name(const char *unit)
{
    static const struct { const char *unit, *name; } terms[] = {
        {"P1M", "Monthly"}, {"P1Y", "Yearly"}, {"P2Y", "Two years"}, {"P3Y", "Three years"},
    };
    for (size_t i = 0; unit && i < sizeof terms / sizeof terms[0]; i++)
        if (!strcmp(unit, terms[i].unit))
            return terms[i].name;
    return unit;
}

static void purchase_details(FILE *f, struct landing_visit *v, json_t *sub)
{
    char *plan = plan_name(v, sub), seats[32] = "", dates[64] = "";
    json_t *term = json_object_get(sub, "term"), *q = json_object_get(sub, "quantity");
    const char *start = json_string_value(json_object_get(term, "startDate"));
    const char *end = json_string_value(json_object_get(term, "endDate"));
    if (json_is_integer(q))
        snprintf(seats, sizeof seats, "%lld", (long long)json_integer_value(q));
    if (start && end && strlen(start) >= 10 && strlen(end) >= 10 && strncmp(start, "0001", 4))
        snprintf(dates, sizeof dates, "%.10s to %.10s", start, end);
    char plan_text[400];
    const char *plan_id = json_string_value(json_object_get(sub, "planId"));
    snprintf(plan_text, sizeof plan_text, "%s%s%s%s", plan ? plan : plan_id ? plan_id : "", plan ? " (" : "",
             plan && plan_id ? plan_id : "", plan ? ")" : "");
    fputs("<h2>Your purchase</h2>\n<dl>\n", f);
    dt(f, "Offer", brand(v, "product") ? brand(v, "product") : json_string_value(json_object_get(sub, "offerId")));
    dt(f, "Subscription", json_string_value(json_object_get(sub, "name")));
    dt(f, "Plan", plan_text);
    dt(f, "Seats", seats);
    dt(f, "Billing term", term_name(json_string_value(json_object_get(term, "termUnit"))));
    dt(f, "Current term", dates);
    dt(f, "Free trial", json_is_true(json_object_get(sub, "isFreeTrial")) ? "Yes" : "No");
    dt(f, "Purchased by", json_string_value(json_object_get(json_object_get(sub, "purchaser"), "emailId")));
    dt(f, "For", json_string_value(json_object_get(json_object_get(sub, "beneficiary"), "emailId")));
    fputs("</dl>\n", f);
    free(plan);
}

static void buyer_details(FILE *f, const struct session *s, json_t *sub)
{
    fputs("<h2>You are signed in as</h2>\n<dl>\n", f);
    dt(f, "Name", s->name);
    dt(f, "E-mail", s->email);
    dt(f, "Organisation (tenant)", s->tid);
    fputs("</dl>\n", f);
    if (!landing_tenant_matches(s, sub))
        fputs("<p class=\"note\" role=\"note\">You are signed in with an account of another organisation than the "
              "one that bought this subscription. You can still confirm; if this is not the account you meant, "
              "sign out of Microsoft and open the link again.</p>\n",
              f);
}

char *landing_details_html(struct landing_visit *v, json_t *sub)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = sub ? open_memstream(&body, &len) : NULL;
    if (!f)
        return NULL;
    purchase_details(f, v, sub);
    fclose(f);
    return body;
}

void landing_confirmation_page(struct landing_visit *v, int status, const struct session *s, json_t *sub,
                               json_t *answers, json_t *errors)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (!f) {
        landing_page(v, 500, "Something went wrong on our side", "Please reload this page.", NULL, NULL, NULL);
        return;
    }
    purchase_details(f, v, sub);
    buyer_details(f, s, sub);
    if (json_object_size(errors))
        fputs("<p class=\"error\" role=\"alert\">Some answers need your attention; nothing was activated yet.</p>\n", f);
    fputs("<form method=\"post\" action=\"/landing/confirm\">\n<input type=\"hidden\" name=\"csrf\" value=\"", f);
    html_put(f, s->csrf);
    fputs("\">\n", f);
    landing_fields_form(f, v->landing, answers, errors);
    fputs("<button type=\"submit\">Confirm and activate</button>\n</form>\n", f);
    fclose(f);
    landing_page(v, status, "Confirm your purchase",
                 "Please check your purchase and your details. Your subscription starts when you confirm.", body, NULL,
                 NULL);
    free(body);
}
