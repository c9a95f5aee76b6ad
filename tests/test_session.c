/* The landing session cookie and the pages' link filter: what a browser can forge or smuggle. */
#include "check.h"
#include "core/err.h"
#include "core/session.h"
#include "core/session_revoke.h"
#include "core/store.h"
#include "daemon/html.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static struct session sample(long long exp)
{
    struct session s = {0};
    snprintf(s.oid, sizeof s.oid, "aaaaaaaa-0001-4000-8000-000000000001");
    snprintf(s.tid, sizeof s.tid, "44444444-4444-4444-8444-444444444444");
    snprintf(s.name, sizeof s.name, "Alex \"<b>\" Buyer");
    snprintf(s.email, sizeof s.email, "customer@contoso-customer.example");
    snprintf(s.sub_id, sizeof s.sub_id, "5e1f0000-0000-4000-8000-000000000001");
    session_new_csrf(&s);
    s.exp = exp;
    return s;
}

static void cookies(void)
{
    char *dir = check_tmpdir("session");
    uint8_t key[SESSION_KEY_LEN], again[SESSION_KEY_LEN], other[SESSION_KEY_LEN];
    char path[512];
    snprintf(path, sizeof path, "%s/session.key", dir);
    struct stat st;
    CHECK(session_key_load(dir, key) == 0 && stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
          "a missing session key is created in the data dir, mode 0600");
    CHECK(session_key_load(dir, again) == 0 && !memcmp(key, again, sizeof key),
          "the session key is read back on the next start (sessions survive a restart)");
    memset(other, 7, sizeof other);

    long long now = (long long)time(NULL);
    struct session s = sample(now + 600), out;
    char *v = NULL;
    CHECK(session_encode(key, &s, &v) == 0 && session_decode(key, v, now, &out) == 0 && !strcmp(out.oid, s.oid) &&
              !strcmp(out.name, s.name) && !strcmp(out.sub_id, s.sub_id) && !strcmp(out.csrf, s.csrf) &&
              strlen(out.csrf) == 43,
          "a session round-trips identity, subscription and a 256-bit CSRF token");
    CHECK(session_decode(other, v, now, &out) == SAASD_EAUTH, "a session signed with another key is refused");
    char *bad = strdup(v);
    char *dot = strchr(bad, '.');
    bad[1] = bad[1] == 'A' ? 'B' : 'A'; /* change the payload, keep the MAC */
    CHECK(session_decode(key, bad, now, &out) == SAASD_EAUTH && !out.oid[0],
          "a session whose payload was changed is refused and nothing of it is used");
    strcpy(bad, v);
    dot = strchr(bad, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    CHECK(session_decode(key, bad, now, &out) == SAASD_EAUTH, "a session with a bad MAC is refused");
    dot[1] = 0;
    CHECK(session_decode(key, bad, now, &out) == SAASD_EAUTH && session_decode(key, "", now, &out) == SAASD_EAUTH &&
              session_decode(key, NULL, now, &out) == SAASD_EAUTH,
          "a truncated, empty or missing session is refused");
    CHECK(session_decode(key, v, now + 601, &out) == SAASD_ETIMEOUT, "an expired session is refused as expired");
    free(bad);
    free(v);

    char *hdr = NULL;
    session_set_cookie(SESSION_COOKIE, "abc", 1, 1800, &hdr);
    CHECK(!strcmp(hdr, "saasd_session=abc; Path=/landing; Max-Age=1800; HttpOnly; SameSite=Lax; Secure"),
          "the cookie is HttpOnly, SameSite=Lax, Secure, scoped to /landing, short-lived");
    free(hdr);
    session_set_cookie(SESSION_COOKIE, "", 0, 0, &hdr);
    CHECK(!strstr(hdr, "Secure") && strstr(hdr, "Max-Age=0"), "plain-HTTP development drops Secure; Max-Age=0 deletes");
    free(hdr);
    char buf[64];
    CHECK(!strcmp(session_cookie_get("a=1; saasd_session=xyz; b=2", SESSION_COOKIE, buf, sizeof buf), "xyz") &&
              !session_cookie_get("xsaasd_session=1", SESSION_COOKIE, buf, sizeof buf) &&
              !session_cookie_get(NULL, SESSION_COOKIE, buf, sizeof buf),
          "the session cookie is found by its exact name only");
    CHECK(session_token_equal("abc", "abc") && !session_token_equal("abd", "abc") && !session_token_equal("ab", "abc") &&
              !session_token_equal(NULL, "abc"),
          "CSRF tokens compare equal only when identical");
    free(dir);
}

static void links(void)
{
    static const struct {
        const char *url;
        int ok;
    } cases[] = {
        {"https://app.contoso.example/welcome?a=1&b=2", 1},
        {"http://localhost:3000/x", 1},
        {"/app/start", 1},
        {"/\\evil.example", 0},
        {"//evil.example", 0},
        {"/%5Cevil.example", 0},
        {"/%5cevil.example", 0},
        {"/%2F/evil.example", 0},
        {"https://evil.example\\@app.example", 0},
        {"/ok\r\nSet-Cookie: x=1", 0},
        {"/ok\tx", 0},
        {"javascript:alert(1)", 0},
        {"https:/evil.example", 0},
        {"relative/path", 0},
        {"", 0},
    };
    int all = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (html_link_ok(cases[i].url) != cases[i].ok) {
            printf("# %s: got %d\n", cases[i].url, !cases[i].ok);
            all = 0;
        }
    CHECK(all && !html_link_ok(NULL),
          "a page links or redirects only to http(s) URLs and single-slash paths: no backslash, encoded backslash, "
          "protocol-relative path, control character or script URL");

    struct html_value v[] = {{"title", "<script>x</script>", NULL}, {"body", NULL, "<dl></dl>"}};
    char *page = html_fill("<h1>{{title}}</h1>{{body}}{{unknown}}", v, 2);
    CHECK(page && !strcmp(page, "<h1>&lt;script&gt;x&lt;/script&gt;</h1><dl></dl>{{unknown}}"),
          "templates are plain substitution: text escaped, fragments as built, unknown placeholders left alone");
    free(page);
}

/* Sign-out records: one per session, kept only while the session could still be presented. */
static void revocations(void)
{
    char *dir = check_tmpdir("revoke");
    struct store *st = NULL;
    if (store_open(dir, &(struct store_options){.no_sync = 1}, &st) != 0) {
        CHECK(0, "the store opens");
        free(dir);
        return;
    }
    struct session old = sample(1000), cur = sample(5000), other = sample(5000), blank = sample(5000);
    blank.csrf[0] = 0;
    CHECK(session_revoked(st, &old) == 0 && session_revoke(st, &old, 900) == 0 && session_revoked(st, &old) == 1 &&
              session_revoked(st, &other) == 0,
          "a signed-out session is recorded as such; another session of the same buyer is not");
    CHECK(session_revoke(st, &cur, 2000) == 0 && session_revoked(st, &cur) == 1 && session_revoked(st, &old) == 0,
          "a sign-out drops the records of sessions that have expired since (they are refused by their expiry)");
    CHECK(session_revoke(st, &blank, 2000) == SAASD_EINVAL && session_revoked(st, &blank) == 0,
          "a session without a token cannot be recorded, so it cannot sign out every token-less session at once");
    store_close(st);
    free(dir);
}

int main(void)
{
    cookies();
    links();
    revocations();
    return CHECK_DONE();
}
