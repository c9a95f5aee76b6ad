/* End to end, a rule stuck inside a C function (string.rep of an empty string a maxinteger
 * times: no Lua instruction runs, so no hook can stop it) costs one call and nothing more:
 * its change gets the configured answer in time, other subscriptions' events are acted on, and
 * the daemon still stops promptly with such a call in flight. The daemon runs in-process
 * against the built-in emulator (rules.cpu_ms = 300, rules.on_timeout = reject). */
#include "it_support.h"

#include <pthread.h>

static const char *hang_rule =
    "return {\n"
    "  change_plan = function(sub, change, ctx) string.rep('', math.maxinteger) end,\n"
    "}\n";

static const char *ok_rule = "return { change_plan = function() return { accept = true } end }\n";

int main(void)
{
    char dir[256], rules[512], path[700];
    struct emu *emu = it_setup("it-hang", dir, rules);
    if (!emu)
        return CHECK_DONE();
    snprintf(path, sizeof path, "%s/it-hang.lua", rules);
    it_write_file(path, hang_rule);
    snprintf(path, sizeof path, "%s/it-ok.lua", rules);
    it_write_file(path, ok_rule);
    char conf[512];
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), "metering = { interval = 0 }\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return CHECK_DONE();
    it_offer("it-hang");
    it_offer("it-ok");
    char hang[64], ok[64];
    char *landing = it_purchase("it-hang", 2, hang, sizeof hang);
    CHECK(it_land(landing, NULL) == 200, "the first purchase is activated through the landing page");
    free(landing);
    landing = it_purchase("it-ok", 2, ok, sizeof ok);
    CHECK(it_land(landing, NULL) == 200, "the second purchase is activated through the landing page");
    free(landing);

    long long t0 = it_now_ms();
    char *op = it_customer(hang, "change-plan", json_pack("{s:s}", "planId", "business"));
    const char *fin = it_wait_op(op, 15000);
    long long took = it_now_ms() - t0;
    printf("# the hung change_plan's operation ended %s after %lld ms\n", fin, took);
    CHECK(!strcmp(fin, "Failed") && took < 8000,
          "a change_plan stuck inside a C function is stopped and refused inside the ACK window");
    free(op);

    op = it_customer(ok, "change-plan", json_pack("{s:s}", "planId", "business"));
    fin = it_wait_op(op, 15000);
    CHECK(!strcmp(fin, "Succeeded"), "after it, another subscription's change is acted on");
    free(op);

    /* stop the daemon while the next hung call is in flight */
    op = it_customer(hang, "change-plan", json_pack("{s:s}", "planId", "business"));
    usleep(150 * 1000);
    t0 = it_now_ms();
    daemon_stop(d);
    took = it_now_ms() - t0;
    printf("# daemon_stop with a hung rule call in flight: %lld ms\n", took);
    CHECK(took < 300 + 1500, "the daemon stops promptly while a rule is stuck inside a C function");
    free(op);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
