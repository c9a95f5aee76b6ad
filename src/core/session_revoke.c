#include "core/session_revoke.h"

#include "core/crypto.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys in the store's meta database: the prefix, then the SHA-256 (hex) of the CSRF token, so
 * the token itself, which a form still carries, is not kept. The value is the expiry. */
#define PREFIX "revoked-session/"
#define KEY_LEN (sizeof PREFIX - 1 + CRYPTO_SHA256_HEX_LEN - 1)

static void revoke_key(const struct session *s, char out[KEY_LEN + 1])
{
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_sha256_hex(s->csrf, strlen(s->csrf), hex);
    snprintf(out, KEY_LEN + 1, PREFIX "%s", hex);
}

struct prune {
    struct store_batch *b;
    long long now;
    int rc;
};

static int prune_expired(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct prune *p = arg;
    char exp[24];
    snprintf(exp, sizeof exp, "%.*s", (int)(vlen < sizeof exp ? vlen : sizeof exp - 1), (const char *)val);
    if (strtoll(exp, NULL, 10) < p->now)
        p->rc = store_batch_del(p->b, STORE_META, key, klen);
    return p->rc;
}

int session_revoke(struct store *st, const struct session *s, long long now)
{
    char key[KEY_LEN + 1], exp[24];
    struct prune p = {.now = now};
    if (!s->csrf[0])
        return SAASD_EINVAL; /* every session gets a token when it is opened */
    int rc = store_batch_new(&p.b);
    if (rc)
        return rc;
    rc = store_scan(st, STORE_META, PREFIX, sizeof PREFIX - 1, prune_expired, &p);
    if (!rc) {
        revoke_key(s, key);
        snprintf(exp, sizeof exp, "%lld", s->exp);
        rc = store_batch_put(p.b, STORE_META, key, strlen(key), exp, strlen(exp));
    }
    if (!rc)
        rc = store_commit(st, p.b);
    store_batch_free(p.b);
    return rc;
}

int session_revoked(struct store *st, const struct session *s)
{
    char key[KEY_LEN + 1];
    void *val = NULL;
    size_t vlen = 0;
    if (!s->csrf[0])
        return 0;
    revoke_key(s, key);
    int rc = store_get(st, STORE_META, key, strlen(key), &val, &vlen);
    free(val);
    return rc == 0 ? 1 : rc == SAASD_ENOTFOUND ? 0 : rc;
}
