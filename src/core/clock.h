#ifndef SAASD_CLOCK_H
#define SAASD_CLOCK_H
/* The monotonic clock in milliseconds: deadlines, timeouts and durations (never wall time,
 * which jumps). Inline: it sits on hot paths (every HTTP request, every token look-up). */
#include <time.h>

static inline long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The time ms from now on clock, as pthread_cond_timedwait wants its deadline (its condition
 * variable's clock: CLOCK_REALTIME unless set otherwise). */
static inline void clock_after_ms(clockid_t clock, long long ms, struct timespec *out)
{
    clock_gettime(clock, out);
    out->tv_sec += ms / 1000;
    out->tv_nsec += (ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

#endif
