/* Shape of a landing token. The token is opaque (base64-like, sometimes URL-encoded JSON), so
 * only what it can never hold is refused: a mangled link then gets a 400 page at once instead
 * of a round trip to Microsoft, and nothing can be smuggled into the Resolve request. */
#include "daemon/landing_token.h"

#include "core/err.h"

int landing_token_check(const char *token)
{
    if (!token || !*token)
        return SAASD_ENOTFOUND;
    for (int n = 0; token[n]; n++) {
        unsigned char c = (unsigned char)token[n];
        if (n >= LANDING_TOKEN_MAX || c <= 0x20 || c >= 0x7f)
            return SAASD_EINVAL;
    }
    return 0;
}
