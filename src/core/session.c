/* Signed session cookie of the landing page (see session.h). */
#include "core/session.h"
#include "core/crypto.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

int session_key_load(const char *data_dir, uint8_t key[SESSION_KEY_LEN])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/session.key", data_dir);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, key, SESSION_KEY_LEN);
        close(fd);
        return n == SESSION_KEY_LEN ? 0 : SAASD_EIO;
    }
    if (errno != ENOENT || crypto_random(key, SESSION_KEY_LEN))
        return SAASD_EIO;
    /* O_EXCL: two daemons starting on one data dir must not each keep a different key */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return errno == EEXIST ? session_key_load(data_dir, key) : SAASD_EIO;
    ssize_t w = write(fd, key, SESSION_KEY_LEN);
    int rc = w == SESSION_KEY_LEN && fsync(fd) == 0 ? 0 : SAASD_EIO;
    close(fd);
    return rc;
}

int session_new_csrf(struct session *s)
{
    uint8_t raw[32];
    char *t = NULL;
    if (crypto_random(raw, sizeof raw) || crypto_base64url_encode(raw, sizeof raw, &t))
        return SAASD_EINTERNAL;
    snprintf(s->csrf, sizeof s->csrf, "%s", t);
    free(t);
    return 0;
}

static int mac_b64(const uint8_t key[SESSION_KEY_LEN], const char *data, size_t len, char **out)
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    if (crypto_hmac_sha256(key, SESSION_KEY_LEN, data, len, mac))
        return SAASD_EINTERNAL;
    return crypto_base64url_encode(mac, sizeof mac, out);
}

int session_encode(const uint8_t key[SESSION_KEY_LEN], const struct session *s, char **out)
{
    *out = NULL;
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "oid", s->oid, "tid", s->tid, "name", s->name, "email",
                          s->email, "sub", s->sub_id, "csrf", s->csrf, "exp", (json_int_t)s->exp);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    char *body = NULL, *mac = NULL;
    int rc = SAASD_ENOMEM;
    if (text && !crypto_base64url_encode(text, strlen(text), &body) && !(rc = mac_b64(key, body, strlen(body), &mac))) {
        size_t n = strlen(body) + strlen(mac) + 2;
        if ((*out = malloc(n)) != NULL)
            snprintf(*out, n, "%s.%s", body, mac);
        else
            rc = SAASD_ENOMEM;
    }
    free(text);
    free(body);
    free(mac);
    return rc;
}

static void copy_field(json_t *j, const char *name, char *buf, size_t size)
{
    const char *v = json_string_value(json_object_get(j, name));
    snprintf(buf, size, "%s", v ? v : "");
}

int session_decode(const uint8_t key[SESSION_KEY_LEN], const char *value, long long now, struct session *out)
{
    memset(out, 0, sizeof *out);
    const char *dot = value ? strchr(value, '.') : NULL;
    if (!dot || strlen(value) > 4096)
        return SAASD_EAUTH;
    char *mac = NULL;
    uint8_t *text = NULL;
    size_t text_len = 0;
    json_t *j = NULL;
    int rc = SAASD_EAUTH;
    if (mac_b64(key, value, (size_t)(dot - value), &mac) || strlen(mac) != strlen(dot + 1) ||
        !crypto_equal(mac, dot + 1, strlen(mac)))
        goto done;
    if (crypto_base64url_decode(value, (size_t)(dot - value), &text, &text_len) ||
        !(j = json_loadb((const char *)text, text_len, 0, NULL)) || !json_is_integer(json_object_get(j, "exp")))
        goto done;
    copy_field(j, "oid", out->oid, sizeof out->oid);
    copy_field(j, "tid", out->tid, sizeof out->tid);
    copy_field(j, "name", out->name, sizeof out->name);
    copy_field(j, "email", out->email, sizeof out->email);
    copy_field(j, "sub", out->sub_id, sizeof out->sub_id);
    copy_field(j, "csrf", out->csrf, sizeof out->csrf);
    out->exp = json_integer_value(json_object_get(j, "exp"));
    rc = now < out->exp ? 0 : SAASD_ETIMEOUT;
done:
    free(mac);
    free(text);
    json_decref(j);
    return rc;
}

int session_set_cookie(const char *name, const char *value, int secure, int max_age_s, char **out)
{
    size_t n = strlen(name) + strlen(value) + 128;
    if (!(*out = malloc(n)))
        return SAASD_ENOMEM;
    snprintf(*out, n, "%s=%s; Path=/landing; Max-Age=%d; HttpOnly; SameSite=Lax%s", name, value, max_age_s,
             secure ? "; Secure" : "");
    return 0;
}

const char *session_cookie_get(const char *cookie_header, const char *name, char *buf, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *p = cookie_header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && !strncmp(p, name, nlen) && p[nlen] == '=') {
            size_t vlen = len - nlen - 1;
            if (vlen >= size)
                return NULL;
            memcpy(buf, p + nlen + 1, vlen);
            buf[vlen] = 0;
            return buf;
        }
        p += len;
    }
    return NULL;
}

int session_token_equal(const char *a, const char *b)
{
    size_t n = strlen(b);
    return a && strlen(a) == n && crypto_equal(a, b, n);
}
