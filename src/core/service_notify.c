/* sd_notify(3) through libsystemd: no protocol of our own (see service_notify.h). */
#include "core/service_notify.h"

#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

/* Each notice's line, and whether it carries MONOTONIC_USEC: systemd 253's Type=notify-reload
 * wants it beside RELOADING=1 to tell this reload from an older one; 252 ignores it. */
static const struct {
    const char *line; /* NULL: the status alone */
    int monotonic;
} notices[SERVICE_NOTICE_COUNT] = {
    [SERVICE_READY] = {"READY=1", 0},
    [SERVICE_RELOADING] = {"RELOADING=1", 1},
    [SERVICE_STOPPING] = {"STOPPING=1", 0},
    [SERVICE_WATCHDOG] = {"WATCHDOG=1", 0},
    [SERVICE_STATUS] = {NULL, 0},
};

/* "STATUS=..." on one line: a newline in status would start another assignment. */
static void append_status(char *msg, size_t size, const char *status)
{
    size_t len = strlen(msg);
    int n = snprintf(msg + len, size - len, "%sSTATUS=%s", len ? "\n" : "", status);
    if (n < 0)
        return;
    for (char *p = msg + len + (len ? 1 : 0); *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

int service_notify(enum service_notice notice, const char *status)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock || !*sock || (unsigned)notice >= SERVICE_NOTICE_COUNT)
        return 0;
    char msg[1024] = "";
    if (notices[notice].line)
        snprintf(msg, sizeof msg, "%s", notices[notice].line);
    if (notices[notice].monotonic) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof msg - len, "\nMONOTONIC_USEC=%llu",
                 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
    }
    if (status)
        append_status(msg, sizeof msg, status);
    if (!msg[0])
        return 0;
    return sd_notify(0, msg) < 0 ? SAASD_EIO : 0;
}

uint64_t service_watchdog_usec(void)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    uint64_t usec = 0;
    if (!sock || !*sock || sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    return usec;
}
