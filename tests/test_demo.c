/* `make demo` (saasd run --demo) walks the whole life cycle against the built-in emulator with
 * the shipped rules; run in-process on free loopback ports with its output captured. */
#include "it_support.h"

#include "cmd/cmd.h"

/* Run `saasd run --demo --config conf` with stdout in out; returns the exit status. */
static int run_demo(char *conf, char *out, size_t size)
{
    char config_flag[] = "--config", demo_flag[] = "--demo";
    char *argv[] = {config_flag, conf, demo_flag};
    return check_run_captured(cmd_run, 3, argv, out, size);
}

int main(void)
{
    char *dir = check_tmpdir("demo");
    char conf[512], secret[512], text[2048], cwd[1024];
    snprintf(secret, sizeof secret, "%s/secret", dir);
    it_write_file(secret, "demo-secret\n");
    unsigned short emu_port = it_free_port(), public_port = it_free_port(), admin_port = it_free_port();
    snprintf(text, sizeof text,
             "listen = \"127.0.0.1:%u\"\n"
             "data_dir = \"%s/data\"\n"
             "log_level = \"error\"\n"
             "admin = { listen = \"127.0.0.1:%u\", key_file = \"%s/admin.key\" }\n"
             "entra = { authority = \"http://127.0.0.1:%u\", tenant_id = \"%s\", client_id = \"%s\", secret_file = \"%s\" }\n"
             "marketplace = { base_url = \"http://127.0.0.1:%u\" }\n"
             "rules = { dir = \"%s/rules\" }\n"
             "reconcile = { interval = 0 }\n"
             "metering = { interval = 0 }\n",
             public_port, dir, admin_port, dir, emu_port, EMU_DEFAULT_TENANT, EMU_DEFAULT_CLIENT, secret, emu_port,
             getcwd(cwd, sizeof cwd) ? cwd : ".");
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_file(conf, text);

    static char out[65536];
    int status = run_demo(conf, out, sizeof out);
    CHECK(status == 0 && strstr(out, "demo finished"), "the demo runs to its end and exits 0");
    CHECK(strstr(out, "sends the buyer to sign in with Entra ID") && strstr(out, "the buyer presses Confirm: HTTP 303"),
          "the demo's buyer signs in and activates by confirming on the landing page");
    CHECK(strstr(out, "change_plan:       saasd decided: accepted") != NULL, "the demo's plan change is accepted by the rule");
    CHECK(strstr(out, "change_quantity:   saasd decided: refused") && strstr(out, "6 seats are in use"),
          "the demo's seat reduction is refused by the rule with its reason");
    CHECK(strstr(out, "Microsoft: status=Unsubscribed plan=business quantity=0 | saasd: status=Unsubscribed plan=business quantity=0") != NULL,
          "the demo ends with both sides Unsubscribed");
    CHECK(strstr(out, "billed 0") && strstr(out, "billed 500") && strstr(out, "Microsoft recorded: api-calls 500 at"),
          "the demo's metered hour reaches Microsoft with only the calls above the allowance");
    if (!strstr(out, "demo finished"))
        printf("# demo output:\n# %.2000s\n", out);
    check_rm_rf(dir);
    free(dir);
    return CHECK_DONE();
}
