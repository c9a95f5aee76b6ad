/* The daemon as a systemd service: the status line it reports and the watchdog thread.
 * The watchdog pings (WATCHDOG=1) only while the daemon answers its own /healthz on the public
 * listener: that one request proves the event loop accepts and answers and the store takes a
 * durable write (health.c), the same liveness an operator's probe sees. A wedged event loop or
 * store stops the pings, and systemd restarts the service after WatchdogSec. */
#ifndef SAASD_SERVICE_H
#define SAASD_SERVICE_H

#include <stddef.h>

struct daemon;
struct service_watchdog;

/* One line for STATUS=: where the daemon listens and what rules it serves, e.g.
 * "serving 127.0.0.1:8080 (admin 127.0.0.1:8081); rules generation 1, 2 offers". */
void service_status_text(struct daemon *d, char *buf, size_t size);

/* Start the watchdog thread when systemd asked for one (service_watchdog_usec() > 0); *out is
 * NULL when it did not (nothing to stop). 0, SAASD_ENOMEM or SAASD_EINTERNAL. */
int service_watchdog_start(struct daemon *d, struct service_watchdog **out);
/* Stop and join the thread (w may be NULL). */
void service_watchdog_stop(struct service_watchdog *w);

#endif
