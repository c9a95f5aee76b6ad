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

#endif
