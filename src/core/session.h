/* The landing page's session cookie: who signed in (from a verified ID token), which
 * subscription they are looking at, and the CSRF token their confirmation form must send back.
 * The value is base64url(JSON) "." base64url(HMAC-SHA256(key, JSON)); the key lives in the data
 * directory like the admin key. Nothing secret is in it: the MAC only stops forgery, and the
 * purchase token never goes into a cookie. */
#ifndef SAASD_SESSION_H
#define SAASD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#define SESSION_KEY_LEN 32
#define SESSION_COOKIE "saasd_session"
#define SESSION_CSRF_LEN 44 /* base64url of 32 random bytes + NUL */

struct session {
    char oid[64];    /* the buyer's object id in their tenant */
    char tid[64];    /* the buyer's tenant (organisation) */
    char name[256];
    char email[320]; /* email, else preferred_username */
    char sub_id[64]; /* the marketplace subscription this session is about */
    char csrf[SESSION_CSRF_LEN];
    long long exp;   /* epoch seconds */
};

/* The key in <data_dir>/session.key: read it, or create it (random, mode 0600) when missing.
 * 0, SAASD_EIO (unreadable, wrong size) or SAASD_ENOMEM. */
int session_key_load(const char *data_dir, uint8_t key[SESSION_KEY_LEN]);

/* A fresh random CSRF token into s->csrf. */
int session_new_csrf(struct session *s);

/* Cookie value for s (malloc'd into *out). 0 or SAASD_ENOMEM / SAASD_EINVAL. */
int session_encode(const uint8_t key[SESSION_KEY_LEN], const struct session *s, char **out);
/* Check the MAC, then the expiry against now. 0 and *out; SAASD_EAUTH (bad MAC or shape),
 * SAASD_ETIMEOUT (expired). */
int session_decode(const uint8_t key[SESSION_KEY_LEN], const char *value, long long now, struct session *out);

/* A Set-Cookie header value: HttpOnly, SameSite=Lax, Path=/landing, Secure when secure, and
 * Max-Age=max_age_s (0 deletes the cookie). malloc'd into *out. */
int session_set_cookie(const char *name, const char *value, int secure, int max_age_s, char **out);
/* The value of cookie name in a Cookie request header, copied into buf; NULL when absent or
 * longer than size. */
const char *session_cookie_get(const char *cookie_header, const char *name, char *buf, size_t size);

/* 1 when a and b are the same string (constant time in the length of b). */
int session_token_equal(const char *a, const char *b);

#endif
