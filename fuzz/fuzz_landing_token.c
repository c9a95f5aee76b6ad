/* libFuzzer target: the landing token path. Input: the raw `token` query value as it arrives
 * in GET /landing?token=…; it is URL-decoded once with libmicrohttpd (as the listener does) and
 * checked with landing_token_check() (src/daemon/landing_token.c).
 * Oracle besides the sanitizers: a token judged resolvable is one mp_resolve() will send (no
 * CR/LF, at most 8192 bytes, non-empty), so the landing page never turns a token it accepted
 * into a "try again" 503; a missing one is exactly the empty one. */
#include "core/err.h"
#include "daemon/landing_token.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 3 * LANDING_TOKEN_MAX)
        return 0;
    char *raw = malloc(size + 1);
    memcpy(raw, data, size);
    raw[size] = 0; /* a query value ends at its first NUL */
    size_t n = MHD_http_unescape(raw);
    int rc = landing_token_check(raw);
    size_t len = strlen(raw);
    if (rc == 0 && (len == 0 || len > 8192 || strpbrk(raw, "\r\n")))
        abort();
    if ((rc == SAASD_ENOTFOUND) != (len == 0) || (rc != 0 && rc != SAASD_ENOTFOUND && rc != SAASD_EINVAL))
        abort();
    (void)n;
    free(raw);
    return 0;
}
