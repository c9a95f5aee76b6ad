/* Landing tokens: what can be sent to Microsoft's Resolve is told apart from what is missing
 * and from what can never be a marketplace token (one table, each row a guarantee). */
#include "check.h"
#include "core/err.h"
#include "daemon/landing_token.h"

int main(void)
{
    char *longest = malloc(LANDING_TOKEN_MAX + 1);
    memset(longest, 'A', LANDING_TOKEN_MAX);
    longest[LANDING_TOKEN_MAX] = 0;
    char *over = malloc(LANDING_TOKEN_MAX + 2);
    memset(over, 'A', LANDING_TOKEN_MAX + 1);
    over[LANDING_TOKEN_MAX + 1] = 0;
    const struct {
        const char *token;
        int want;
        const char *name;
    } rows[] = {
        {"ZXlKMGVYQWlPaUpLVjFRaUxDSmhiR2NpT2lKU1V6STFOaUo5+/==", 0, "a base64 token with + / = is resolvable"},
        {"%7B%22a%22%3A1%7D-_.~", 0, "a token that is still URL-encoded JSON is resolvable (opaque)"},
        {longest, 0, "a token of exactly the size limit is resolvable"},
        {NULL, SAASD_ENOTFOUND, "no token parameter is missing"},
        {"", SAASD_ENOTFOUND, "an empty token is missing"},
        {over, SAASD_EINVAL, "a token above the size limit is malformed"},
        {"abc\r\nx-evil: 1", SAASD_EINVAL, "a token with CR/LF (header splitting) is malformed"},
        {"abc def", SAASD_EINVAL, "a token with a blank ('+' decoded as space) is malformed"},
        {"abc\tdef", SAASD_EINVAL, "a token with a control character is malformed"},
        {"abc\x7f", SAASD_EINVAL, "a token with DEL is malformed"},
        {"abc\xc3\xa9", SAASD_EINVAL, "a token with non-ASCII bytes is malformed"},
        {"<script>", SAASD_EINVAL, "a token with markup is malformed"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        CHECK(landing_token_check(rows[i].token) == rows[i].want, rows[i].name);
    free(longest);
    free(over);
    return CHECK_DONE();
}
