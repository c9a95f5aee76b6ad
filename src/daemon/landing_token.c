/* Shape of a landing token. The token is opaque: base64 or base64url text, sometimes still
 * URL-encoded. Anything outside those alphabets (a blank where a '+' was decoded twice, markup,
 * CR/LF, non-ASCII) cannot be a purchase: a mangled link then gets a 400 page at once instead
 * of a round trip to Microsoft, and nothing can be smuggled into the Resolve request. */
#include "daemon/landing_token.h"

#include "core/err.h"

#include <string.h>

/* base64 + base64url + what URL-encoding adds. */
static const char TOKEN_ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.~%";

int landing_token_check(const char *token)
{
    if (!token || !*token)
        return SAASD_ENOTFOUND;
    size_t n = strnlen(token, LANDING_TOKEN_MAX + 1);
    if (n > LANDING_TOKEN_MAX || strspn(token, TOKEN_ALPHABET) != n)
        return SAASD_EINVAL;
    return 0;
}
