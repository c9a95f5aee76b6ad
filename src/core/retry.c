#include "core/retry.h"
#include "core/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <curl/curl.h>

long retry_backoff_ms(const struct retry_policy *p, int retry)
{
    long d = p->base_ms > 0 ? p->base_ms : 1000;
    long cap = p->cap_ms > 0 ? p->cap_ms : 60000;
    for (int i = 1; i < retry && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    uint32_t r = 0;
    if (crypto_random(&r, sizeof r))
        r = (uint32_t)rand();
    long half = d / 2;
    return half + (half > 0 ? (long)(r % (uint32_t)(half + 1)) : 0);
}

long retry_after_ms(const char *value, long cap_ms)
{
    if (!value)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    if (!*value)
        return -1;
    long ms;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        long long s = strtoll(value, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (errno || *end || s < 0)
            return -1;
        ms = s > 86400 ? 86400000L : (long)s * 1000;
    } else {
        time_t when = curl_getdate(value, NULL); /* RFC 7231 HTTP-date */
        if (when < 0)
            return -1;
        time_t now = time(NULL);
        ms = when <= now ? 0 : when - now > 86400 ? 86400000L : (long)(when - now) * 1000;
    }
    if (cap_ms > 0 && ms > cap_ms)
        ms = cap_ms;
    return ms;
}

void retry_sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}
