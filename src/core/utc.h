#ifndef SAASD_UTC_H
#define SAASD_UTC_H
/* Wall-clock times as the marketplace API, the admin API and the records write them: UTC,
 * "YYYY-MM-DDTHH:MM:SS" (then "Z", or fractions, per caller). Inline: small, and used in
 * many files that must agree on the form. */
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define UTC_TEXT_LEN 32

/* secs (Unix time) as "YYYY-MM-DDTHH:MM:SSZ" into buf. 0, or -1 (buf "") when it cannot be shown. */
static inline int utc_text(int64_t secs, char *buf, size_t size)
{
    time_t t = (time_t)secs;
    struct tm tm;
    if (size)
        buf[0] = 0;
    return gmtime_r(&t, &tm) && size && strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) ? 0 : -1;
}

/* "YYYY-MM-DDTHH:MM:SS" at the start of s (NULL allowed) into *secs (Unix time). Returns what
 * follows it ("Z", ".123Z", ...: each caller says what it accepts), or NULL when s does not
 * start with that form. */
static inline const char *utc_parse(const char *s, int64_t *secs)
{
    struct tm tm = {0};
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (rest)
        *secs = (int64_t)timegm(&tm);
    return rest;
}

#endif
