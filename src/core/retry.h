/* Retry timing shared by the Entra token cache and the marketplace client (contract §8.3):
 * exponential backoff with jitter, and Retry-After parsing (delta-seconds or HTTP-date). */
#ifndef SAASD_RETRY_H
#define SAASD_RETRY_H

struct retry_policy {
    int max_attempts;        /* total tries including the first */
    long base_ms;            /* delay before the first retry; doubles per retry */
    long cap_ms;             /* upper bound of one backoff delay */
    long retry_after_cap_ms; /* upper bound of an honoured Retry-After */
};

/* Delay before retry number `retry` (1 = first retry): base * 2^(retry-1) capped, with
 * "equal jitter" (uniform in [d/2, d]) so synchronized clients spread out. */
long retry_backoff_ms(const struct retry_policy *p, int retry);

/* Milliseconds a Retry-After header value asks for (delta-seconds or HTTP-date), capped at
 * cap_ms; -1 when value is NULL or unparsable. A date in the past yields 0. */
long retry_after_ms(const char *value, long cap_ms);

/* Sleep ms milliseconds (restarting after signals). */
void retry_sleep_ms(long ms);

#endif
