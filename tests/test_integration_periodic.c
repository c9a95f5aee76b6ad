/* The periodic jobs run by themselves: reconciliation and the metering pass, each on its
 * configured interval, against the emulator; and they stop with the daemon. */
#include "it_support.h"

#include "core/metrics.h"

int main(void)
{
    char dir[256], conf[512], rules[512];
    struct emu *emu = it_setup("periodic", dir, rules);
    if (!emu)
        return CHECK_DONE();
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), "metering = { interval = 1, grace = 0 }\n");
    /* it_write_config turns reconciliation off: switch it on, every second. */
    FILE *f = fopen(conf, "a");
    fputs("reconcile = { interval = 1 }\n", f);
    fclose(f);
    char rule_path[600];
    snprintf(rule_path, sizeof rule_path, "%s/it-periodic.lua", rules); /* offers without a file are held pending */
    it_write_file(rule_path, "return {}\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();

    /* Usage two hours ago in a dimension the subscription's plan does not have: the pass sends
     * it and Microsoft refuses it, which is enough to see the pass run. */
    char sub[64], msg[1024];
    it_offer("it-periodic");
    char *landing = it_purchase("it-periodic", 1, sub, sizeof sub);
    CHECK(it_land(landing, NULL) == 200, "the purchase is activated through the landing page");
    free(landing);
    int64_t two_hours_ago = now_ms() - 2 * 3600 * 1000LL;
    CHECK(metering_record(d, sub, "api-calls", 3, two_hours_ago, NULL, msg, sizeof msg) == 0, "usage is recorded");
    long long until = it_now_ms() + 10000;
    while (it_now_ms() < until && (metrics_value("saasd_reconcile_runs_total", "result=\"ok\"") < 2 ||
                                   metrics_value("saasd_usage_events_total", "outcome=\"failed\"") < 1))
        usleep(50 * 1000);
    CHECK(metrics_value("saasd_reconcile_runs_total", "result=\"ok\"") >= 2,
          "reconciliation runs by itself on its interval");
    CHECK(metrics_value("saasd_usage_events_total", "outcome=\"failed\"") >= 1,
          "the metering pass runs by itself and settles closed hours");
    long long t0 = it_now_ms();
    daemon_stop(d);
    CHECK(it_now_ms() - t0 < 5000, "the periodic jobs stop with the daemon instead of finishing their interval");
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
