/* libFuzzer target: the webhook JWT verifier (src/core/jwt.c). The first byte picks what the
 * rest is:
 *   0  a compact token, verified as it stands (shape, base64url, JSON, alg/kid checks);
 *   1  a claims text, signed with the fixed test key, then verified, so mutations reach the
 *      claim checks (issuer, audience, caller, exp/nbf/iat) behind a valid signature;
 *   2  "header\nclaims", both chosen by the input, signed and verified;
 *   3  a JWKS document given to jwt_verifier_set_jwks() (key parsing).
 * Oracle besides the sanitizers: an accepted token has an exp in 0 .. year 9999 that has not
 * passed, and the tenant it was configured for. */
#include "core/config.h"
#include "core/jwt.h"
#include "core/jwt_sign.h"
#include "core/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "jwt_test_key.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define APP "0c1e5b7a-6d2f-4a44-9c1b-3a5c2e1f0a99"
#define KID "fuzz-kid"

static EVP_PKEY *key;
static struct jwt_verifier *verifier, *jwks_verifier;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jwt_verifier *new_verifier(void)
{
    struct jwt_verifier_options opt = {.tenant_id = TENANT, .audience = APP, .skew_s = 300, .cache_slots = 8};
    struct jwt_verifier *v = NULL;
    if (jwt_verifier_new(&opt, &v))
        abort();
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_set_level(LOG_ERROR);
    BIO *b = BIO_new_mem_buf(fuzz_jwt_key_pem, -1);
    key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    const char *kids[1] = {KID};
    char *jwks = NULL;
    if (!key || jwt_jwks_json(&key, kids, 1, &jwks))
        abort();
    verifier = new_verifier();
    jwks_verifier = new_verifier();
    if (jwt_verifier_set_jwks(verifier, jwks))
        abort();
    free(jwks);
    return 0;
}

static void verify_and_check(const char *token, size_t len)
{
    struct jwt_claims c;
    jwt_verifier_flush_cache(verifier); /* every input verified in full, not from the cache */
    if (jwt_verify(verifier, token, len, &c) != 0)
        return;
    long long now = (long long)time(NULL);
    if (c.exp <= 0 || c.exp > 253402300799LL || c.exp + 300 <= now || c.nbf < 0 || c.iat < 0 || strcasecmp(c.tid, TENANT))
        abort(); /* accepted something the checks promise to refuse */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384)
        return 0;
    int mode = data[0] % 4;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    char *tok = NULL;
    if (mode == 0) {
        verify_and_check(text, size - 1);
    } else if (mode == 1) {
        if (jwt_sign_rs256(key, KID, text, &tok) == 0)
            verify_and_check(tok, strlen(tok));
    } else if (mode == 2) {
        char *nl = strchr(text, '\n');
        if (nl) {
            *nl = 0;
            if (jwt_sign_rs256_header(key, text, nl + 1, &tok) == 0)
                verify_and_check(tok, strlen(tok));
        }
    } else {
        jwt_verifier_set_jwks(jwks_verifier, text);
    }
    free(tok);
    free(text);
    return 0;
}
