/* Entra ID for buyers: the OpenID Connect authorization code flow with PKCE, as the v2.0
 * endpoints do it. GET /{tenant}/oauth2/v2.0/authorize validates the request and shows a
 * sign-in page listing the test users (emu_users.c); choosing one POSTs back to the same URL
 * (a GET never changes anything), which issues a single-use code and sends the browser to the
 * app's redirect URI. The token endpoint (emu_entra.c) hands authorization_code grants to
 * emu_code_redeem here, which checks the code, the redirect URI and the PKCE verifier and
 * returns an ID token signed with the emulator's key. Errors follow Entra: an unknown app or
 * an unregistered redirect URI is an error page (never a redirect), later request errors go
 * back to the app as error=...&error_description=AADSTS...; refusals at the token endpoint use
 * Entra's JSON envelope. Everything here runs with emu.lock held. */
#include "core/crypto.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "emu/emu_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CODE_LIFETIME_S 600   /* Entra's codes live about ten minutes */
#define ID_TOKEN_LIFETIME_S 3600
#define GRAPH_APP "00000003-0000-0000-c000-000000000000"

/* The authorize request's parameters, read from the query (GET) or the form (POST). */
enum { P_CLIENT, P_REDIRECT, P_RTYPE, P_RMODE, P_SCOPE, P_STATE, P_NONCE, P_CHALLENGE, P_METHOD, P_PROMPT,
       P_HINT, P_USER, P_COUNT };
static const char *const param_names[P_COUNT] = {
    "client_id", "redirect_uri", "response_type", "response_mode", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method", "prompt", "login_hint", "user"};

struct authz {
    char *p[P_COUNT];
    char tenant[128];
    const char *app_tid;  /* tenant of the app registration */
    json_t *reg;          /* its sign-in settings (borrowed) */
};

static void authz_read(const struct httpd_request *r, int post, struct authz *a)
{
    size_t n = 0;
    const char *body = post ? httpd_body(r, &n) : NULL;
    for (int i = 0; i < P_COUNT; i++) {
        const char *q = httpd_query(r, param_names[i]);
        a->p[i] = post ? emu_form_value(body, n, param_names[i]) : (q ? strdup(q) : NULL);
        if (!a->p[i] && post && q && i != P_USER) /* a POST form may carry the request in its URL */
            a->p[i] = strdup(q);
    }
    for (char *s = a->p[P_SCOPE]; s && *s; s++) /* scopes never hold '+': it is a space */
        if (*s == '+')
            *s = ' ';
}

static void authz_free(struct authz *a)
{
    for (int i = 0; i < P_COUNT; i++)
        free(a->p[i]);
}

/* ---- sign-in registrations: which apps may sign users in, from where, back to which URIs ---- */

static json_t *registrations(struct emu *e)
{
    json_t *s = json_object_get(e->db, "signin");
    if (!json_is_object(s)) {
        s = json_object();
        json_object_set_new(e->db, "signin", s);
    }
    return s;
}

json_t *emu_signin_reg(struct emu *e, const char *client) { return client ? json_object_get(registrations(e), client) : NULL; }

/* Who may sign in to an app, as the registration's "Supported account types" says. */
static const char *const audiences[] = {"AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount"};

int emu_signin_reg_put(struct emu *e, const char *client, const json_t *in, struct emu_error *err)
{
    json_t *uris = json_object_get(in, "redirectUris"), *aud = json_object_get(in, "signInAudience");
    json_t *name = json_object_get(in, "displayName");
    int aud_ok = !aud;
    for (size_t i = 0; aud && json_is_string(aud) && i < sizeof audiences / sizeof audiences[0]; i++)
        aud_ok |= !strcmp(json_string_value(aud), audiences[i]);
    size_t i;
    json_t *u;
    int uris_ok = !uris || json_is_array(uris);
    json_array_foreach(uris, i, u) uris_ok &= json_is_string(u) && (!strncmp(json_string_value(u), "http://", 7) ||
                                                                    !strncmp(json_string_value(u), "https://", 8));
    if (!emu_app_tenant(e, client, NULL) || !aud_ok || !uris_ok || (name && !json_is_string(name))) {
        emu_fail(err, 400, "BadArgument",
                 "sign-in settings of a known app: redirectUris (array of http(s) URLs), signInAudience "
                 "(AzureADMyOrg | AzureADMultipleOrgs | AzureADandPersonalMicrosoftAccount), displayName");
        return SAASD_EINVAL;
    }
    json_t *reg = emu_signin_reg(e, client);
    if (!reg) {
        reg = json_pack("{s:[],s:s}", "redirectUris", "signInAudience", "AzureADandPersonalMicrosoftAccount");
        json_object_set_new(registrations(e), client, reg);
    }
    if (uris)
        json_object_set(reg, "redirectUris", uris);
    if (aud)
        json_object_set(reg, "signInAudience", aud);
    if (name)
        json_object_set(reg, "displayName", name);
    e->dirty = 1;
    return 0;
}

/* "a b,c" -> ["a","b","c"] */
int emu_signin_reg_uris(struct emu *e, const char *client, const char *list)
{
    json_t *uris = json_array();
    char *copy = strdup(list ? list : "");
    for (char *save = NULL, *t = copy ? strtok_r(copy, " ,", &save) : NULL; t; t = strtok_r(NULL, " ,", &save))
        json_array_append_new(uris, json_string(t));
    free(copy);
    json_t *in = json_pack("{s:o}", "redirectUris", uris);
    struct emu_error err;
    int rc = in ? emu_signin_reg_put(e, client, in, &err) : SAASD_ENOMEM;
    json_decref(in);
    return rc;
}

static int redirect_registered(const json_t *reg, const char *uri)
{
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(reg, "redirectUris"), i, u)
        if (uri && !strcmp(json_string_value(u), uri))
            return 1;
    return 0;
}

/* ---- pages ---- */

static void page_head(FILE *f, const char *title)
{
    fprintf(f,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>%s</title><style>"
            "body{font-family:Segoe UI,Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}"
            "main{max-width:440px;margin:48px auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}"
            "h1{font-size:24px;font-weight:600;margin:0 0 16px}p.note{color:#555;font-size:13px}"
            "button.account{display:block;width:100%%;text-align:left;background:#fff;border:0;border-top:1px solid "
            "#ddd;padding:12px 8px;font-size:15px;cursor:pointer}button.account:hover{background:#e6e6e6}"
            "button.account small{display:block;color:#555}.banner{font-weight:600;color:#1b1b1b;margin-bottom:24px}"
            ".error{color:#a80000}code{word-break:break-all}</style></head><body><main>"
            "<div class=\"banner\">Microsoft (emulated)</div>",
            title);
}

static void page_reply(struct httpd_response *res, int status, char *html, size_t len)
{
    free(res->body);
    res->status = status;
    res->content_type = "text/html; charset=utf-8";
    res->body = html;
    res->body_len = len;
    httpd_add_header(res, "Cache-Control", "no-store");
    httpd_add_header(res, "X-Frame-Options", "DENY");
}

/* An error the user sees at Microsoft: the app is never called. */
static void error_page(struct emu *e, struct httpd_response *res, long code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_page(struct emu *e, struct httpd_response *res, long code, const char *fmt, ...)
{
    char msg[1024], trace[37], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emu_uuid(trace);
    emu_iso(emu_now_ms(e), ts);
    char *esc = emu_html_escape(msg), *html = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&html, &len);
    if (f) {
        page_head(f, "Sign in to your account");
        fprintf(f,
                "<h1>Sorry, but we're having trouble signing you in.</h1><p class=\"error\" id=\"error\">"
                "AADSTS%ld: %s</p><p class=\"note\">Request Id: %s<br>Timestamp: %s</p></main></body></html>",
                code, esc ? esc : "", trace, ts);
        fclose(f);
    }
    free(esc);
    char num[24];
    snprintf(num, sizeof num, "AADSTS%ld", code);
    log_info("emulator", "sign-in refused", "code", num, "reason", msg);
    page_reply(res, 400, html, html ? len : 0);
}

/* Back to the app: redirect_uri?k=v&...&state=... (302), or an auto-posting form. */
static void to_app(struct httpd_response *res, const struct authz *a, const char *const *kv)
{
    int form = a->p[P_RMODE] && !strcmp(a->p[P_RMODE], "form_post");
    char *html = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&html, &len);
    if (!f)
        return;
    const char *uri = a->p[P_REDIRECT];
    if (form) {
        char *action = emu_html_escape(uri);
        page_head(f, "Working...");
        fprintf(f, "<form method=\"post\" action=\"%s\" id=\"back\">", action ? action : "");
        free(action);
    } else {
        fprintf(f, "%s", uri);
    }
    char sep = strchr(uri, '?') ? '&' : '?';
    for (size_t i = 0; kv[i] && kv[i + 1]; i += 2) {
        char *v = NULL;
        if (form) {
            v = emu_html_escape(kv[i + 1]);
            fprintf(f, "<input type=\"hidden\" name=\"%s\" value=\"%s\">", kv[i], v ? v : "");
        } else if (http_url_escape(kv[i + 1], &v) == 0) {
            fprintf(f, "%c%s=%s", sep, kv[i], v);
            sep = '&';
        }
        free(v);
    }
    if (form)
        fprintf(f, "<noscript><button type=\"submit\">Continue</button></noscript></form>"
                   "<script>document.getElementById('back').submit()</script></main></body></html>");
    fclose(f);
    if (form) {
        page_reply(res, 200, html, len);
    } else {
        httpd_set_body(res, 302, "text/plain; charset=utf-8", "");
        httpd_add_header(res, "Location", html);
        httpd_add_header(res, "Cache-Control", "no-store");
        free(html);
    }
}

static void error_to_app(struct emu *e, struct httpd_response *res, const struct authz *a, const char *error,
                         long code, const char *msg)
{
    char desc[700];
    snprintf(desc, sizeof desc, "AADSTS%ld: %s", code, msg);
    const char *kv[7] = {"error", error, "error_description", desc, NULL};
    if (a->p[P_STATE]) {
        kv[4] = "state";
        kv[5] = a->p[P_STATE];
    }
    log_info("emulator", "sign-in error sent to the app", "error", error, "aadsts", desc);
    (void)e;
    to_app(res, a, kv);
}

static void signin_page(struct emu *e, struct httpd_response *res, const struct authz *a, const char *path)
{
    const char *shown = emu_jstr(a->reg, "displayName") ? emu_jstr(a->reg, "displayName") : a->p[P_CLIENT];
    char *html = NULL, *app = emu_html_escape(shown), *action = emu_html_escape(path);
    size_t len = 0;
    FILE *f = open_memstream(&html, &len);
    if (!f)
        return;
    page_head(f, "Sign in to your account");
    fprintf(f, "<h1>Pick an account</h1><p>to continue to <span id=\"app\">%s</span></p>"
               "<form method=\"post\" action=\"%s\" id=\"signin\">", app ? app : "", action ? action : "");
    for (int i = 0; i < P_COUNT; i++) {
        char *v = i == P_USER || !a->p[i] ? NULL : emu_html_escape(a->p[i]);
        if (v)
            fprintf(f, "<input type=\"hidden\" name=\"%s\" value=\"%s\">", param_names[i], v);
        free(v);
    }
    const char *k;
    json_t *u;
    json_object_foreach(json_object_get(e->db, "users"), k, u) {
        char *name = emu_html_escape(emu_jstr(u, "name")), *mail = emu_html_escape(emu_jstr(u, "email"));
        char *tn = emu_html_escape(emu_jstr(u, "tenantName"));
        fprintf(f, "<button class=\"account\" type=\"submit\" name=\"user\" value=\"%s\" data-email=\"%s\">%s"
                   "<small>%s</small><small>%s</small></button>",
                k, mail ? mail : "", name ? name : "", mail ? mail : "", tn ? tn : "");
        free(name);
        free(mail);
        free(tn);
    }
    fprintf(f, "</form><p class=\"note\">Test users of the saasd emulator; nobody types a password here.</p>"
               "</main></body></html>");
    fclose(f);
    free(app);
    free(action);
    page_reply(res, 200, html, len);
}

/* ---- checks ---- */

static int is_segment(const char *t) { return !strcmp(t, "common") || !strcmp(t, "organizations") || !strcmp(t, "consumers"); }

int emu_authority_known(struct emu *e, const char *t)
{
    return is_segment(t) || emu_tenant_known(e, t) || emu_user_tenant_known(e, t) || !strcmp(t, EMU_MSA_TENANT);
}

/* Why `u` may not sign in to the app through the tenant segment, or NULL when it may. */
static const char *user_refused(const struct authz *a, const json_t *u, char *why, size_t n)
{
    const char *aud = emu_jstr(a->reg, "signInAudience"), *tid = emu_jstr(u, "tenantId"), *mail = emu_jstr(u, "email");
    int personal = json_is_true(json_object_get(u, "personal"));
    if (!strcmp(a->tenant, "organizations") && personal)
        snprintf(why, n, "You can't sign in here with a personal account ('%s'). Use your work or school account "
                         "instead (the app asked for the 'organizations' endpoint).", mail);
    else if (!strcmp(a->tenant, "consumers") && !personal)
        snprintf(why, n, "'%s' is a work or school account; the 'consumers' endpoint takes personal accounts only.",
                 mail);
    else if (!is_segment(a->tenant) && strcmp(a->tenant, tid))
        snprintf(why, n, "User account '%s' from identity provider 'https://sts.windows.net/%s/' does not exist in "
                         "tenant '%s' and cannot access the application '%s' in that tenant.",
                 mail, tid, a->tenant, a->p[P_CLIENT]);
    else if (!strcmp(aud, "AzureADMyOrg") && strcmp(tid, a->app_tid))
        snprintf(why, n, "User account '%s' does not exist in tenant '%s' and cannot access the single-tenant "
                         "application '%s'.", mail, a->app_tid, a->p[P_CLIENT]);
    else if (!strcmp(aud, "AzureADMultipleOrgs") && personal)
        snprintf(why, n, "The application '%s' is not configured for personal Microsoft accounts ('%s').",
                 a->p[P_CLIENT], mail);
    else
        return NULL;
    return why;
}

static int scope_has(const char *scope, const char *want)
{
    size_t n = strlen(want);
    for (const char *p = scope; p && (p = strstr(p, want)); p += n)
        if ((p == scope || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
            return 1;
    return 0;
}

/* Checks whose failure the app hears about (the redirect URI is trusted by now); 1 = sent. */
static int request_refused(struct emu *e, struct httpd_response *res, const struct authz *a)
{
    const char *mode = a->p[P_RMODE], *method = a->p[P_METHOD];
    if (mode && strcmp(mode, "query") && strcmp(mode, "form_post"))
        error_to_app(e, res, a, "invalid_request", 900144,
                     "The provided value for 'response_mode' is not valid (this emulator answers 'query' and "
                     "'form_post').");
    else if (!a->p[P_RTYPE])
        error_to_app(e, res, a, "invalid_request", 900144,
                     "The request body must contain the following parameter: 'response_type'.");
    else if (strcmp(a->p[P_RTYPE], "code"))
        error_to_app(e, res, a, "unsupported_response_type", 700054,
                     "response_type other than 'code' is not enabled for the application (this emulator does the "
                     "authorization code flow).");
    else if (!a->p[P_SCOPE] || !*a->p[P_SCOPE])
        error_to_app(e, res, a, "invalid_request", 900144,
                     "The request body must contain the following parameter: 'scope'.");
    else if (!scope_has(a->p[P_SCOPE], "openid"))
        error_to_app(e, res, a, "invalid_scope", 70011, "The provided request must include an 'openid' scope value.");
    else if (method && strcmp(method, "S256") && strcmp(method, "plain"))
        error_to_app(e, res, a, "invalid_request", 501471,
                     "The code_challenge_method is not valid; supported values are 'S256' and 'plain'.");
    else if (method && !a->p[P_CHALLENGE])
        error_to_app(e, res, a, "invalid_request", 501471, "code_challenge_method was sent without code_challenge.");
    else if (a->p[P_CHALLENGE] && (strlen(a->p[P_CHALLENGE]) < 43 || strlen(a->p[P_CHALLENGE]) > 128))
        error_to_app(e, res, a, "invalid_request", 501471, "The code_challenge must be 43 to 128 characters long.");
    else if (a->p[P_PROMPT] && !strcmp(a->p[P_PROMPT], "none"))
        error_to_app(e, res, a, "login_required", 50058,
                     "A silent sign-in request was sent but no user is signed in (the emulator keeps no session).");
    else
        return 0;
    return 1;
}

/* The app and its redirect URI: an error page when either is wrong. 1 = answered. */
static int app_refused(struct emu *e, struct httpd_response *res, struct authz *a)
{
    const char *client = a->p[P_CLIENT];
    if (!emu_authority_known(e, a->tenant)) {
        error_page(e, res, 90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are "
                                  "signing into the correct cloud.", a->tenant);
    } else if (!client || !*client) {
        error_page(e, res, 900144, "The request body must contain the following parameter: 'client_id'.");
    } else if (!(a->app_tid = emu_app_tenant(e, client, NULL))) {
        error_page(e, res, 700016,
                   "Application with identifier '%s' was not found in the directory '%s'. This can happen if the "
                   "application has not been installed by the administrator of the tenant or consented to by any "
                   "user in the tenant. You might have sent your authentication request to the wrong tenant.",
                   client, a->tenant);
    } else if (!(a->reg = emu_signin_reg(e, client)) || !redirect_registered(a->reg, a->p[P_REDIRECT])) {
        error_page(e, res, 50011,
                   "The redirect URI '%s' specified in the request does not match the redirect URIs configured for "
                   "the application '%s'. Make sure the redirect URI sent in the request matches one added to your "
                   "application in the Azure portal.",
                   a->p[P_REDIRECT] ? a->p[P_REDIRECT] : "", client);
    } else if (!strcmp(emu_jstr(a->reg, "signInAudience"), "AzureADMyOrg") && is_segment(a->tenant)) {
        error_page(e, res, 50194,
                   "Application '%s' is not configured as a multi-tenant application. Usage of the /%s endpoint is "
                   "not supported for such applications. Use a tenant-specific endpoint or configure the "
                   "application to be multi-tenant.", client, a->tenant);
    } else {
        return 0;
    }
    return 1;
}

/* ---- the code ---- */

static void issue_code(struct emu *e, struct httpd_response *res, const struct authz *a, const json_t *u)
{
    uint8_t raw[48];
    char *code = NULL, sid[37];
    crypto_random(raw, sizeof raw);
    if (crypto_base64url_encode(raw, sizeof raw, &code) != 0)
        return;
    int64_t now = emu_now_ms(e) / 1000;
    json_t *rec = json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:s,s:s,s:s,s:I,s:b}", "client", a->p[P_CLIENT], "redirect",
                            a->p[P_REDIRECT], "challenge", a->p[P_CHALLENGE], "method",
                            a->p[P_CHALLENGE] ? (a->p[P_METHOD] ? a->p[P_METHOD] : "plain") : NULL, "nonce",
                            a->p[P_NONCE], "scope", a->p[P_SCOPE], "user", emu_jstr(u, "objectId"), "segment",
                            a->tenant, "exp", (json_int_t)(now + CODE_LIFETIME_S), "used", 0);
    json_object_set_new(e->codes, code, rec);
    emu_uuid(sid);
    const char *kv[7] = {"code", code, "session_state", sid, NULL};
    if (a->p[P_STATE]) {
        kv[4] = "state";
        kv[5] = a->p[P_STATE];
    }
    log_info("emulator", "buyer signed in", "oid", emu_jstr(u, "objectId"), "tid", emu_jstr(u, "tenantId"), "client",
             a->p[P_CLIENT]);
    to_app(res, a, kv);
    free(code);
}

/* GET shows the page; POST with user= signs that user in. */
static void authorize(struct emu *e, const struct httpd_request *r, struct httpd_response *res, const char *tenant)
{
    int post = !strcmp(httpd_method(r), "POST");
    struct authz a = {0};
    char why[700];
    snprintf(a.tenant, sizeof a.tenant, "%s", tenant);
    authz_read(r, post, &a);
    json_t *u = NULL;
    if (strcmp(httpd_method(r), "GET") && !post)
        error_page(e, res, 900561, "The endpoint only accepts GET and POST requests.");
    else if (app_refused(e, res, &a) || request_refused(e, res, &a))
        ; /* answered */
    else if (!post || !a.p[P_USER])
        signin_page(e, res, &a, httpd_path(r));
    else if (!(u = emu_user(e, a.p[P_USER])))
        error_page(e, res, 50034, "The user account '%s' does not exist in the directory.", a.p[P_USER]);
    else if (user_refused(&a, u, why, sizeof why))
        error_page(e, res, 50020, "%s", why);
    else
        issue_code(e, res, &a, u);
    authz_free(&a);
}

int emu_signin_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res, const char *tenant,
                     const char *rest)
{
    if (strcmp(rest, "/oauth2/v2.0/authorize"))
        return 0;
    authorize(e, r, res, tenant);
    return 1;
}

/* ---- the token endpoint's authorization_code grant ---- */

static int verifier_matches(const json_t *rec, const char *verifier)
{
    const char *challenge = emu_jstr(rec, "challenge"), *method = emu_jstr(rec, "method");
    if (!strcmp(method, "plain"))
        return strlen(challenge) == strlen(verifier) && crypto_equal(challenge, verifier, strlen(verifier));
    uint8_t h[CRYPTO_SHA256_LEN];
    char *b = NULL;
    crypto_sha256(verifier, strlen(verifier), h);
    int ok = crypto_base64url_encode(h, sizeof h, &b) == 0 && strlen(b) == strlen(challenge) &&
             crypto_equal(b, challenge, strlen(b));
    free(b);
    return ok;
}

/* A pairwise subject: the same user looks different to each app, as in Entra. */
static void pairwise_sub(const char *oid, const char *client, char out[64])
{
    char seed[200];
    uint8_t h[CRYPTO_SHA256_LEN];
    char *b = NULL;
    snprintf(seed, sizeof seed, "%s/%s", oid, client);
    crypto_sha256(seed, strlen(seed), h);
    crypto_base64url_encode(h, 32, &b);
    snprintf(out, 64, "%s", b ? b : oid);
    free(b);
}

/* ---- spoiled ID tokens, for testing a relying party's refusals (knob idTokenFault) ---- */

static void spoil_nonce(json_t *c, int64_t now)
{
    (void)now;
    json_object_set_new(c, "nonce", json_string("a-nonce-this-sign-in-never-sent"));
}

static void spoil_issuer(json_t *c, int64_t now)
{
    char iss[200];
    (void)now;
    snprintf(iss, sizeof iss, "https://sts.evil.example/%s/v2.0", emu_jstr(c, "tid"));
    json_object_set_new(c, "iss", json_string(iss));
}

static void spoil_times(json_t *c, int64_t now)
{
    json_object_set_new(c, "iat", json_integer(now - 7200));
    json_object_set_new(c, "nbf", json_integer(now - 7200));
    json_object_set_new(c, "exp", json_integer(now - 3600));
}

static void spoil_audience(json_t *c, int64_t now)
{
    (void)now;
    json_object_set_new(c, "aud", json_string("99999999-9999-4999-8999-999999999999"));
}

enum { SIG_OK, SIG_FLIPPED, SIG_FOREIGN_KEY };
static const struct {
    const char *name;
    void (*claims)(json_t *c, int64_t now);
    int sig;
} spoilers[] = {
    {"wrong-nonce", spoil_nonce, SIG_OK},      {"foreign-issuer", spoil_issuer, SIG_OK},
    {"expired", spoil_times, SIG_OK},          {"wrong-audience", spoil_audience, SIG_OK},
    {"bad-signature", NULL, SIG_FLIPPED},      {"unknown-key", NULL, SIG_FOREIGN_KEY},
};

int emu_id_token_fault_known(const char *name)
{
    for (size_t i = 0; name && i < sizeof spoilers / sizeof spoilers[0]; i++)
        if (!strcmp(name, spoilers[i].name))
            return 1;
    return 0;
}

/* Sign claims as the knob says: well, or spoiled in one named way. */
static int sign_id_token(struct emu *e, json_t *c, char **out)
{
    const char *fault = e->k.id_token_fault;
    size_t i = 0;
    while (fault && i < sizeof spoilers / sizeof spoilers[0] && strcmp(fault, spoilers[i].name))
        i++;
    if (!fault || i == sizeof spoilers / sizeof spoilers[0])
        return emu_sign_claims(e, c, out);
    log_warn("emulator", "issuing a spoiled ID token (idTokenFault)", "fault", fault);
    if (spoilers[i].claims && c)
        spoilers[i].claims(c, emu_now_ms(e) / 1000);
    if (spoilers[i].sig == SIG_FOREIGN_KEY) {
        struct emu_key k;
        int rc = emu_key_generate(&k);
        if (rc == 0)
            rc = c ? emu_jwt_sign(&k, c, out) : SAASD_ENOMEM;
        emu_key_free(&k);
        json_decref(c);
        return rc;
    }
    int rc = emu_sign_claims(e, c, out);
    if (rc == 0 && spoilers[i].sig == SIG_FLIPPED) {
        char *last = *out + strlen(*out) - 2; /* a signature byte, not the padding bits of the last char */
        *last = *last == 'A' ? 'B' : 'A';
    }
    return rc;
}

static int mint_id_token(struct emu *e, const json_t *rec, const json_t *u, char **out)
{
    char iss[512], sub[64];
    const char *tid = emu_jstr(u, "tenantId"), *client = emu_jstr(rec, "client");
    int64_t now = emu_now_ms(e) / 1000;
    emu_issuer_v2(e, tid, iss, sizeof iss);
    pairwise_sub(emu_jstr(u, "objectId"), client, sub);
    json_t *c = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "aud", client, "iss", iss, "azp",
                          client, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                          (json_int_t)(now + ID_TOKEN_LIFETIME_S), "tid", tid, "oid", emu_jstr(u, "objectId"), "sub",
                          sub, "name", emu_jstr(u, "name"), "preferred_username", emu_jstr(u, "email"), "email",
                          emu_jstr(u, "email"), "ver", "2.0");
    if (c && emu_jstr(rec, "nonce"))
        json_object_set_new(c, "nonce", json_string(emu_jstr(rec, "nonce")));
    if (c && json_is_true(json_object_get(u, "personal")))
        json_object_set_new(c, "idp", json_string("https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/"));
    return sign_id_token(e, c, out);
}

/* Graph access token for the scopes asked (the emulator serves no Graph; it is for shape). */
static int mint_graph_token(struct emu *e, const json_t *rec, const json_t *u, char **out)
{
    char iss[512];
    const char *tid = emu_jstr(u, "tenantId");
    int64_t now = emu_now_ms(e) / 1000;
    emu_issuer_v1(e, tid, iss, sizeof iss);
    json_t *c = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "aud", GRAPH_APP, "iss", iss, "appid",
                          emu_jstr(rec, "client"), "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                          (json_int_t)(now + e->k.token_lifetime_s), "tid", tid, "oid", emu_jstr(u, "objectId"),
                          "sub", emu_jstr(u, "objectId"), "scp", emu_jstr(rec, "scope"), "upn", emu_jstr(u, "email"),
                          "ver", "1.0");
    return emu_sign_claims(e, c, out);
}

/* Forget codes long past their expiry (kept until then to tell "already redeemed"). */
static void codes_expire(struct emu *e, int64_t now)
{
    const char *k;
    json_t *rec;
    void *tmp;
    json_object_foreach_safe(e->codes, tmp, k, rec)
        if (json_integer_value(json_object_get(rec, "exp")) + CODE_LIFETIME_S < now)
            json_object_del(e->codes, k);
}

/* Which refusal a redemption gets, or 0: the checks in the order Entra makes them. */
static int redeem_refused(struct emu *e, const json_t *rec, const char *client, const char *redirect,
                          const char *verifier, struct emu_refusal *why)
{
    int64_t now = emu_now_ms(e) / 1000;
    const char *err = "invalid_grant";
    long code = 0;
    const char *msg = NULL;
    char buf[512];
    if (!rec)
        code = 9002313, msg = "Invalid request. Request is malformed or invalid: the code is not one this "
                              "authority issued.";
    else if (json_integer_value(json_object_get(rec, "exp")) <= now)
        code = 70008, msg = "The provided authorization code or refresh token has expired due to inactivity. Send a "
                            "new interactive authorization request for this user and resource.";
    else if (json_is_true(json_object_get(rec, "used")))
        code = 54005, msg = "OAuth2 Authorization code was already redeemed, please retry with a new valid code or "
                            "use an existing refresh token.";
    else if (strcmp(emu_jstr(rec, "client"), client))
        code = 70000, msg = "Provided grant is invalid or malformed: the code was issued to another application.";
    else if (!redirect)
        err = "invalid_request", code = 900144, msg = "The request body must contain the following parameter: "
                                                      "'redirect_uri'.";
    else if (strcmp(emu_jstr(rec, "redirect"), redirect)) {
        snprintf(buf, sizeof buf, "The reply address '%s' does not match the reply address '%s' provided when "
                                  "requesting Authorization code.", redirect, emu_jstr(rec, "redirect"));
        code = 500112, msg = buf;
    } else if (emu_jstr(rec, "challenge") && !verifier)
        err = "invalid_request", code = 900144, msg = "The request body must contain the following parameter: "
                                                      "'code_verifier'.";
    else if (emu_jstr(rec, "challenge") && (strlen(verifier) < 43 || strlen(verifier) > 128))
        code = 501491, msg = "Invalid size of Code_Verifier: it must be 43 to 128 characters.";
    else if (emu_jstr(rec, "challenge") && !verifier_matches(rec, verifier))
        code = 501481, msg = "The Code_Verifier does not match the code_challenge supplied in the authorization "
                             "request.";
    if (!code)
        return 0;
    why->status = 400;
    why->error = err;
    why->code = code;
    snprintf(why->message, sizeof why->message, "%s", msg);
    return SAASD_EAUTH;
}

int emu_code_redeem(struct emu *e, const char *client, const char *body, size_t n, struct emu_refusal *why,
                    json_t **reply)
{
    char *code = emu_form_value(body, n, "code"), *redirect = emu_form_value(body, n, "redirect_uri");
    char *verifier = emu_form_value(body, n, "code_verifier");
    char *id_token = NULL, *access = NULL;
    codes_expire(e, emu_now_ms(e) / 1000);
    json_t *rec = code ? json_object_get(e->codes, code) : NULL, *u = NULL;
    int rc = 0;
    if (!code) {
        *why = (struct emu_refusal){.status = 400, .error = "invalid_request", .code = 900144};
        snprintf(why->message, sizeof why->message, "The request body must contain the following parameter: 'code'.");
        rc = SAASD_EAUTH;
    } else if ((rc = redeem_refused(e, rec, client, redirect, verifier, why)) == 0) {
        json_object_set_new(rec, "used", json_true()); /* single use, whatever happens next */
        u = emu_user(e, emu_jstr(rec, "user"));
        if (!u || mint_id_token(e, rec, u, &id_token) != 0 || mint_graph_token(e, rec, u, &access) != 0) {
            *why = (struct emu_refusal){.status = 500, .error = "temporarily_unavailable", .code = 50000};
            snprintf(why->message, sizeof why->message, "There was an error issuing a token.");
            rc = SAASD_EINTERNAL;
        } else {
            long life = e->k.token_lifetime_s;
            *reply = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "token_type", "Bearer", "scope", emu_jstr(rec, "scope"),
                               "expires_in", (json_int_t)life, "ext_expires_in", (json_int_t)life, "access_token",
                               access, "id_token", id_token);
            log_info("emulator", "buyer token issued", "kid", e->keys[0].kid, "tid", emu_jstr(u, "tenantId"), "client",
                     client);
        }
    }
    free(code);
    free(redirect);
    free(verifier);
    free(id_token);
    free(access);
    return rc;
}
