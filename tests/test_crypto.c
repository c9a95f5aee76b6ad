/* Crypto helpers: known-answer tests against published vectors. */
#include "check.h"
#include "core/crypto.h"
#include "core/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* crypto_id from several threads: ids of one run must never repeat (they are request ids). */
#define ID_THREADS 4
#define IDS_PER_THREAD 2000
static char ids[ID_THREADS * IDS_PER_THREAD][CRYPTO_UUID_LEN];

static void *make_ids(void *arg)
{
    char (*out)[CRYPTO_UUID_LEN] = arg;
    for (int i = 0; i < IDS_PER_THREAD; i++)
        if (crypto_id(out[i]) != 0)
            out[i][0] = 0;
    return NULL;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* Version 4 form: 8-4-4-4-12 lower-case hex, '4' first in the third group, 8-b in the fourth. */
static int v4_shaped(const char *u)
{
    if (strlen(u) != 36 || u[14] != '4' || !strchr("89ab", u[19]))
        return 0;
    for (int i = 0; i < 36; i++)
        if ((i == 8 || i == 13 || i == 18 || i == 23) ? u[i] != '-' : !strchr("0123456789abcdef", u[i]))
            return 0;
    return 1;
}

static void check_ids(void)
{
    pthread_t t[ID_THREADS];
    for (int i = 0; i < ID_THREADS; i++)
        pthread_create(&t[i], NULL, make_ids, ids[i * IDS_PER_THREAD]);
    for (int i = 0; i < ID_THREADS; i++)
        pthread_join(t[i], NULL);
    int shaped = 1, distinct = 1;
    for (size_t i = 0; i < ID_THREADS * IDS_PER_THREAD; i++)
        shaped &= v4_shaped(ids[i]);
    qsort(ids, ID_THREADS * IDS_PER_THREAD, CRYPTO_UUID_LEN, cmp_id);
    for (size_t i = 1; i < ID_THREADS * IDS_PER_THREAD; i++)
        distinct &= strcmp(ids[i - 1], ids[i]) != 0;
    CHECK(shaped, "correlation ids (crypto_id) are version-4 GUIDs");
    CHECK(distinct, "correlation ids never repeat, within a thread or across threads");
}

int main(void)
{
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
          "sha256 matches the FIPS 180-2 vector for 'abc'");

    uint8_t mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256("key", 3, "The quick brown fox jumps over the lazy dog", 43, mac);
    crypto_hex(mac, sizeof mac, hex);
    CHECK(!strcmp(hex, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"),
          "hmac-sha256 matches the published vector");

    char *enc = NULL;
    crypto_base64_encode("\xfb\xff", 2, &enc);
    CHECK(enc && !strcmp(enc, "+/8="), "base64 uses the standard alphabet with padding");
    free(enc);
    crypto_base64url_encode("\xfb\xff", 2, &enc);
    CHECK(enc && !strcmp(enc, "-_8"), "base64url uses - and _ and drops padding");
    free(enc);

    uint8_t *dec = NULL;
    size_t n = 0;
    CHECK(crypto_base64url_decode("-_8", 3, &dec, &n) == 0 && n == 2 && dec[0] == 0xfb && dec[1] == 0xff,
          "base64url decodes without padding");
    free(dec);
    CHECK(crypto_base64_decode("aGVsbG8=", 8, &dec, &n) == 0 && n == 5 && !memcmp(dec, "hello", 5),
          "base64 decodes with padding");
    free(dec);
    CHECK(crypto_base64url_decode("ab+c", 4, &dec, &n) == SAASD_EINVAL, "base64url refuses a '+' from the other alphabet");
    CHECK(crypto_base64url_decode("a$bc", 4, &dec, &n) == SAASD_EINVAL, "base64url refuses characters outside the alphabet");
    CHECK(crypto_base64url_decode("abcde", 5, &dec, &n) == SAASD_EINVAL, "base64url refuses an impossible length");

    char u1[CRYPTO_UUID_LEN], u2[CRYPTO_UUID_LEN];
    crypto_uuid(u1);
    crypto_uuid(u2);
    CHECK(strlen(u1) == 36 && u1[14] == '4' && u1[8] == '-' && strcmp(u1, u2) != 0,
          "uuids are random version-4 GUIDs");
    check_ids();
    CHECK(crypto_equal("abc", "abc", 3) && !crypto_equal("abc", "abd", 3), "constant-time compare tells equal from different");
    return CHECK_DONE();
}
