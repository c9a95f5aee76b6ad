/* saasd serve: run the daemon until SIGTERM/SIGINT; SIGHUP reloads the rules and the Entra ID
 * credential's files. Under systemd
 * (Type=notify) it reports READY=1 once it serves, RELOADING=1 then READY=1 around a SIGHUP
 * reload and STOPPING=1 on the way out (core/service_notify.h). */
#include "cmd/args.h"
#include "cmd/cmd.h"

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/service_notify.h"
#include "daemon/daemon.h"
#include "daemon/service.h"
#include "engine/engine.h"

#include <signal.h>
#include <stdio.h>

static void help(FILE *f)
{
    fprintf(f, "usage: saasd serve [--config FILE]\n"
               "Runs the daemon: landing page, webhook, inbox workers, reconciliation, admin API.\n"
               "--config FILE  the config (default " CMD_DEFAULT_CONFIG ")\n"
               "SIGHUP reloads the rules (a broken rule file keeps the old rules) and the Entra ID\n"
               "credential's files (a broken one keeps the current credential); SIGTERM stops.\n");
}

/* READY=1 with the status line: the listeners accept and the store is open (daemon_start
 * returned), or a reload finished. */
static void notify_ready(struct daemon *d)
{
    char status[512];
    service_status_text(d, status, sizeof status);
    service_notify(SERVICE_READY, status);
}

int cmd_serve(int argc, char **argv)
{
    const char *config = NULL, *args[CMD_MAX_ARGS];
    const struct cmd_opt opts[] = {{"--config", "-c", &config, NULL}, {NULL}};
    const struct cmd_spec spec = {"saasd serve [--config FILE]", help, opts, 0, 0};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
    struct saasd_config *cfg = NULL;
    if (cmd_load_config(config, &cfg) != 0)
        return 1;
    /* Signals are taken synchronously by this thread; every other thread inherits the mask. */
    sigset_t set;
    cmd_block_signals(&set, 1);

    struct daemon *d = NULL;
    int rc = daemon_start(cfg, &d);
    if (rc) {
        fprintf(stderr, "saasd serve: could not start: %s (see log above)\n", saasd_strerror(rc));
        return 1;
    }
    notify_ready(d);
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGHUP) {
            log_info("daemon", "SIGHUP: reloading rules and the Entra ID credential");
            service_notify(SERVICE_RELOADING, "reloading the rules and the Entra ID credential");
            daemon_reload(d);
            notify_ready(d);
            continue;
        }
        log_info("daemon", "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    service_notify(SERVICE_STOPPING, "stopping");
    daemon_stop(d);
    return 0;
}
