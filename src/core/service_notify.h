/* What saasd tells its service manager: systemd's notification protocol (sd_notify(3)), sent
 * through Debian's libsystemd. Every call is a no-op returning 0 when NOTIFY_SOCKET is not set
 * (a run by hand, the tests, any other supervisor), so callers need no "under systemd?" check. */
#ifndef SAASD_SERVICE_NOTIFY_H
#define SAASD_SERVICE_NOTIFY_H

#include <stdint.h>

/* The notices, each one line of the protocol (service_notify.c's table; the README's
 * "The service" section mirrors it). */
enum service_notice {
    SERVICE_READY,     /* READY=1: the listeners accept and the store is open (also after a reload) */
    SERVICE_RELOADING, /* RELOADING=1 (with MONOTONIC_USEC): a SIGHUP rules reload begins */
    SERVICE_STOPPING,  /* STOPPING=1: a SIGTERM or SIGINT arrived, the daemon stops */
    SERVICE_WATCHDOG,  /* WATCHDOG=1: the daemon answered its own /healthz within the interval */
    SERVICE_STATUS,    /* the status text alone */
    SERVICE_NOTICE_COUNT
};

/* Send notice, with STATUS=status when status is not NULL (one line: any newline in it becomes
 * a space). 0 (also when there is no service manager to tell), SAASD_EIO when the send failed. */
int service_notify(enum service_notice notice, const char *status);

/* The watchdog interval the service manager set for this process (WATCHDOG_USEC, when
 * WATCHDOG_PID is unset or this process), in microseconds; 0 when there is none or no
 * NOTIFY_SOCKET to ping. */
uint64_t service_watchdog_usec(void);

#endif
