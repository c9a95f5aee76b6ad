/* Operator console: routes and sign-in.
 *
 * The console lives on the admin listener (loopback only) under /console. A browser cannot send
 * the admin API's Authorization header, so the admin key is typed once into a sign-in form; the
 * answer is a session cookie (saasd_console: HttpOnly, SameSite=Strict, Path=/console, 8 hours)
 * signed with HMAC-SHA256 under <data_dir>/console.key (its own key: a buyer's landing cookie
 * can never pass as an operator's). The session also carries a hash of the admin key, so
 * changing the key ends every session, and a CSRF token every form must send back.
 * GET never changes anything: each action is a GET confirmation page whose form POSTs. */
#include "daemon/console.h"
#include "daemon/console_internal.h"
#include "daemon/daemon.h"

#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/session_revoke.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COOKIE "saasd_console"
#define SESSION_S (8 * 3600)
#define OPERATOR "console-operator"

int console_path(const char *path)
{
    return !strcmp(path, "/console") || !strncmp(path, "/console/", 9);
}

/* <data_dir>/console.key: 32 random bytes, created on first use (mode 0600). */
static int console_key(struct daemon *d, uint8_t key[SESSION_KEY_LEN])
{
    return session_key_file_load(d->cfg->data_dir, "console.key", key);
}

/* First 32 hex digits of SHA-256(admin key): binds a session to the key it was opened with. */
static void key_tag(struct daemon *d, char out[CRYPTO_SHA256_HEX_LEN])
{
    const char *k = d->cfg->admin_key ? d->cfg->admin_key : "";
    crypto_sha256_hex(k, strlen(k), out);
    out[32] = 0;
}

/* 0 when the request carries a valid operator session (into c->s). */
static int signed_in(struct console *c)
{
    char value[4200], tag[CRYPTO_SHA256_HEX_LEN];
    uint8_t key[SESSION_KEY_LEN];
    const char *cookie = httpd_header(c->req, "Cookie");
    if (!c->d->cfg->admin_key || !cookie || !session_cookie_get(cookie, COOKIE, value, sizeof value) ||
        console_key(c->d, key))
        return SAASD_EAUTH;
    int rc = session_decode(key, value, (long long)time(NULL), &c->s);
    key_tag(c->d, tag);
    if (!rc && (strcmp(c->s.oid, OPERATOR) || strcmp(c->s.tid, tag)))
        rc = SAASD_EAUTH;
    if (!rc && session_revoked(c->d->store, &c->s) != 0)
        rc = SAASD_EAUTH; /* signed out (or the store cannot say: refuse) */
    return rc;
}

static void set_cookie(struct console *c, const char *value, int max_age)
{
    char header[4400];
    snprintf(header, sizeof header, COOKIE "=%s; Path=/console; HttpOnly; SameSite=Strict; Max-Age=%d", value, max_age);
    httpd_add_header(c->res, "Set-Cookie", header);
}

static void login_form(struct console *c, int status, const char *error)
{
    cpage_begin(c, "Sign in", NULL);
    if (error) {
        cpage_raw(c, "<p class=\"flash bad\">");
        cpage_text(c, error);
        cpage_raw(c, "</p>\n");
    }
    cpage_raw(c, "<form method=\"post\" action=\"/console/login\" class=\"card narrow\">\n"
                 "<label>Admin key <input type=\"password\" name=\"key\" autocomplete=\"current-password\" "
                 "autofocus required></label>\n<button type=\"submit\">Sign in</button>\n"
                 "<p class=\"muted\">The key is in the file named by <code>admin.key_file</code> "
                 "(default <code>&lt;data_dir&gt;/admin.key</code>).</p></form>\n");
    cpage_end(c, status);
}

static void login(struct console *c)
{
    char *given = NULL;
    const char *key = c->d->cfg->admin_key;
    httpd_form_value(c->req, "key", &given);
    int ok = key && given && strlen(given) == strlen(key) && crypto_equal(given, key, strlen(key));
    free(given);
    if (!ok) {
        log_warn("console", "sign-in refused: wrong admin key", "client_ip", httpd_client_ip(c->req));
        login_form(c, 401, "That is not the admin key.");
        return;
    }
    uint8_t skey[SESSION_KEY_LEN];
    struct session s = {0};
    char *value = NULL;
    snprintf(s.oid, sizeof s.oid, OPERATOR);
    char tag[CRYPTO_SHA256_HEX_LEN];
    key_tag(c->d, tag);
    memcpy(s.tid, tag, 33); /* 32 hex digits and the NUL */
    s.exp = (long long)time(NULL) + SESSION_S;
    if (console_key(c->d, skey) || session_new_csrf(&s) || session_encode(skey, &s, &value)) {
        cpage_message(c, 500, "Cannot sign in", "The console's key file could not be read or created.", NULL, NULL);
        return;
    }
    set_cookie(c, value, SESSION_S);
    free(value);
    log_info("console", "operator signed in", "client_ip", httpd_client_ip(c->req));
    cpage_see_other(c, "/console");
}

/* Also records the session as signed out, so a copy of the cookie is refused as well. */
static void logout(struct console *c)
{
    int rc = session_revoke(c->d->store, &c->s, (long long)time(NULL));
    if (rc) {
        log_error("console", "sign-out could not be recorded", "error", saasd_strerror(rc));
        cpage_message(c, 503, "Not signed out", "The sign-out could not be recorded; try again.", "/console", "Dashboard");
        return;
    }
    log_info("console", "operator signed out", "client_ip", httpd_client_ip(c->req));
    set_cookie(c, "", 0);
    cpage_see_other(c, "/console/login");
}

/* A POST must carry the session's CSRF token. */
static int csrf_ok(struct console *c)
{
    char *given = NULL;
    httpd_form_value(c->req, "csrf", &given);
    int ok = given && c->s.csrf[0] && session_token_equal(given, c->s.csrf);
    free(given);
    return ok;
}

static void page_list(struct console *c, const char *rest) { console_list(c); }
static void page_dashboard(struct console *c, const char *rest) { console_dashboard(c); }
static void page_queues(struct console *c, const char *rest) { console_queues(c); }
static void page_rules(struct console *c, const char *rest) { console_rules(c); }

/* /console/subscriptions/{id}[/{verb}]: the verb and the method pick the page. */
static const struct cpage_verb sub_pages[] = {
    {"GET", "", console_subscription},
    {"GET", "confirm", console_confirm},
    {"POST", "action", console_action},
};

static void page_sub(struct console *c, const char *rest)
{
    char id[160] = "", verb[32] = "";
    if (sscanf(rest, "%159[^/]/%31s", id, verb) < 1 || !id[0]) {
        cpage_message(c, 404, "Not found", "No such page.", "/console/subscriptions", "Subscriptions");
        return;
    }
    cpage_by_verb(c, sub_pages, sizeof sub_pages / sizeof sub_pages[0], id, verb, "/console/subscriptions",
                  "Subscriptions");
}

static void page_logout(struct console *c, const char *rest) { logout(c); }

/* Which handler serves (method, path); prefix routes get the rest of the path. */
static const struct route {
    const char *method, *path;
    int prefix;
    void (*fn)(struct console *c, const char *rest);
} routes[] = {
    {"GET", "/console", 0, page_dashboard},
    {"GET", "/console/subscriptions", 0, page_list},
    {"*", "/console/subscriptions/", 1, page_sub},
    {"GET", "/console/queues", 0, page_queues},
    {"*", "/console/sinks/", 1, console_sink_page},
    {"GET", "/console/rules", 0, page_rules},
    {"*", "/console/replay", 0, console_replay},
    {"POST", "/console/logout", 0, page_logout},
};

void console_handle(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    struct console c = {.d = d, .req = req, .res = res};
    const char *path = httpd_path(req), *method = httpd_method(req);
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!strcmp(path, "/console/login")) {
        if (get)
            login_form(&c, 200, NULL);
        else if (!strcmp(method, "POST"))
            login(&c);
        else
            cpage_message(&c, 405, "Not allowed", "Use the sign-in form.", "/console/login", "Sign in");
        return;
    }
    if (signed_in(&c) != 0) {
        if (get)
            cpage_see_other(&c, "/console/login");
        else
            cpage_message(&c, 403, "Sign in first", "This needs a signed-in operator.", "/console/login", "Sign in");
        return;
    }
    if (!get && !csrf_ok(&c)) {
        log_warn("console", "refused a form without the session's CSRF token", "path", path);
        cpage_message(&c, 403, "Form refused", "The form did not carry this session's token. Reload the page and try again.",
                      "/console", "Dashboard");
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        size_t n = strlen(r->path);
        int match = r->prefix ? !strncmp(path, r->path, n) : !strcmp(path, r->path);
        if (!match)
            continue;
        if (strcmp(r->method, "*") && strcmp(r->method, method) && !(get && !strcmp(r->method, "GET"))) {
            cpage_message(&c, 405, "Not allowed", "That method is not allowed here.", "/console", "Dashboard");
            return;
        }
        r->fn(&c, path + n);
        return;
    }
    cpage_message(&c, 404, "Not found", "No such console page.", "/console", "Dashboard");
}
