/* `saasd emulate`: serve the built-in marketplace + Entra ID emulator until SIGINT/SIGTERM;
 * `saasd emulate rotate-key --data DIR`: rotate its signing key offline. */
#include "cmd/args.h"
#include "cmd/cmd.h"
#include "core/err.h"
#include "core/log.h"
#include "emu/emu.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: saasd emulate [--port P] [options]\n"
            "       saasd emulate rotate-key --data DIR\n"
            "\n"
            "Serves Microsoft's side of a SaaS offer on one loopback port: Entra ID token endpoint,\n"
            "OpenID metadata + JWKS, SaaS Fulfillment v2 + Operations, Metering, outbound webhooks,\n"
            "and a test-only control API under /_emulator/. Point any integration at it with\n"
            "authority = marketplace = http://127.0.0.1:P.\n"
            "\n"
            "options:\n"
            "  --port P                 listen port (default 8090; 0 = any free port)\n"
            "  --bind ADDR              listen address (default 127.0.0.1)\n"
            "  --public-url URL         base of the URLs it hands out (default http://ADDR:P)\n"
            "  --data DIR               keep state in LMDB + signing keys as PEM in DIR (default: memory)\n"
            "  --tenant ID              publisher tenant (default " EMU_DEFAULT_TENANT ")\n"
            "  --client-id ID           publisher app id (default " EMU_DEFAULT_CLIENT ")\n"
            "                           secret: env EMU_CLIENT_SECRET, default \"" EMU_DEFAULT_SECRET "\"\n"
            "  --client-cert FILE       register the PEM certificate in FILE for that app, so it can sign\n"
            "                           in with client assertions (a private key in FILE is ignored)\n"
            "  --publisher ID           publisherId on offers (default " EMU_DEFAULT_PUBLISHER ")\n"
            "  --issuer-base URL        iss = URL/<tid>/v2.0 (default " EMU_DEFAULT_ISSUER ";\n"
            "                           v1 tokens then use https://sts.windows.net/<tid>/)\n"
            "  --webhook-url URL        where webhooks go (also per offer / PUT /_emulator/config)\n"
            "  --landing-url URL        landing page base for purchases (default " EMU_DEFAULT_LANDING ")\n"
            "  --redirect-uri URIS      buyer sign-in redirect URIs registered for the app(s), space or comma\n"
            "                           separated (default <landing-url>/callback)\n"
            "  --signin-client-id ID    a separate multitenant app for buyer sign-in, in the publisher tenant;\n"
            "                           secret: env EMU_SIGNIN_SECRET, default \"" EMU_DEFAULT_SIGNIN_SECRET "\"\n"
            "  --page-size N            subscriptions per List page (default 100)\n"
            "  --ack-window-ms N        ChangePlan/ChangeQuantity/Reinstate auto-accept (default 10000)\n"
            "  --op-delay-ms N          publisher PATCH/DELETE completion delay (default 2000)\n"
            "  --token-lifetime S       access token lifetime in seconds (default 3599)\n"
            "  --landing-lifetime S     landing token lifetime in seconds (default 86400)\n"
            "  --webhook-timeout-ms N   per delivery attempt (default 10000)\n"
            "  --webhook-backoff-ms N   first retry delay, doubled per attempt, max 60 s (default 1000)\n"
            "  --webhook-attempts N     attempts before the delivery fails (default 10)\n"
            "  --no-seed                do not create the demo offer 'emulator-offer'\n"
            "  --log-level L            debug|info|warn|error (default info)\n"
            "\n"
            "Microsoft's surface: POST /{tenant}/oauth2/token, /{tenant}/oauth2/v2.0/token (client secret,\n"
            "  or client assertion signed with a registered certificate);\n"
            "  GET /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/.well-known/openid-configuration,\n"
            "  /{tenant}/discovery/v2.0/keys, /{tenant}/discovery/keys, /common/discovery/keys;\n"
            "  buyer sign-in: GET|POST /{tenant}/oauth2/v2.0/authorize (tenant = id, organizations, common,\n"
            "  consumers; code flow with PKCE, a page listing the test users), grant_type=authorization_code\n"
            "  at /{tenant}/oauth2/v2.0/token -> id_token (RS256, the emulator's key);\n"
            "  /api/saas/subscriptions[...] (resolve, activate, list, get, listAvailablePlans, PATCH, DELETE,\n"
            "  operations); POST /api/usageEvent, /api/batchUsageEvent; GET /api/usageEvents.\n"
            "\n"
            "control API (test only; JSON):\n"
            "  GET  /_emulator/health | /_emulator/config     PUT|PATCH /_emulator/config {knobs}\n"
            "       knobs: webhookUrl landingUrl pageSize ackWindowMs opDelayMs sendDelayMs tokenLifetimeS\n"
            "              landingTokenLifetimeS webhookTimeoutMs webhookBackoffMs webhookMaxAttempts clockOffsetS\n"
            "  POST /_emulator/clock/advance {seconds}\n"
            "  GET  /_emulator/apps   POST /_emulator/apps {tenantId, clientId, clientSecret?, certificate?}\n"
            "       (more publisher apps; certificate = PEM; redirectUris?, signInAudience? for buyer sign-in)\n"
            "  PATCH /_emulator/apps/CLIENT {redirectUris?, signInAudience?, displayName?}  (any app)\n"
            "  GET  /_emulator/users   POST /_emulator/users {email, name?, tenantId?, tenantName?, personal?}\n"
            "  GET  /_emulator/calls[?method=&path=GLOB]   (requests Microsoft's surfaces answered, oldest first)\n"
            "  GET|POST /_emulator/apps/CLIENT/certificates {certificate: PEM}   (client assertion credentials)\n"
            "  DELETE /_emulator/apps/CLIENT/certificates/X5T\n"
            "  GET  /_emulator/offers[/ID]    POST /_emulator/offers {offerId, clientId?, webhookUrl?, plans:[{planId,\n"
            "       isPricePerSeat?, minQuantity?, maxQuantity?, termUnit?, price?, dimensions?:[ids]}]}\n"
            "  POST /_emulator/purchases {offerId?, planId?, quantity?, name?, beneficiary?, purchaser?, autoRenew?,\n"
            "       csp?, autoActivate?} -> 201 {subscriptionId, landingUrl, token, subscription}\n"
            "  GET  /_emulator/subscriptions[/ID]\n"
            "  POST /_emulator/subscriptions/ID/landing-token {lifetimeS?}\n"
            "  POST /_emulator/subscriptions/ID/change-plan {planId} | change-quantity {quantity}\n"
            "       | suspend | reinstate | unsubscribe | renew  -> 202 operation + Operation-Location\n"
            "  GET  /_emulator/operations[?subscriptionId=] | /_emulator/operations/ID\n"
            "  GET  /_emulator/webhooks[?operationId=&subscriptionId=]   (deliveries, attempts, payloads)\n"
            "  GET  /_emulator/usage\n"
            "  POST /_emulator/faults {path (glob), method?, kind: 429|500|503|latency|drop, count?,\n"
            "       retryAfterS?, latencyMs?}    GET|DELETE /_emulator/faults\n"
            "  POST /_emulator/keys/rotate       POST /_emulator/tokens {kind: publisher|webhook, version?, clientId?}\n"
            "  POST /_emulator/reset             (drops subscriptions, operations, usage, deliveries, faults)\n"
            "  Microsoft emulator shape: PATCH /api/webhook/subscription/ID {planId|quantity},\n"
            "       POST /api/webhook/subscription/ID/{renew|suspend|unsubscribe|reinstate}\n");
}

static int arg_long(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int rotate_key(int argc, char **argv)
{
    const char *dir = NULL, *args[CMD_MAX_ARGS];
    const struct cmd_opt opts[] = {{"--data", NULL, &dir, NULL}, {NULL}};
    const struct cmd_spec spec = {"saasd emulate rotate-key --data DIR", usage, opts, 0, 0};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
    if (!dir)
        return cmd_usage_error(&spec, "--data DIR is required");
    char kid[64];
    int rc = emu_rotate_key_dir(dir, kid, sizeof kid);
    if (rc != 0) {
        fprintf(stderr, "saasd emulate rotate-key: failed on %s: %s\n", dir, saasd_strerror(rc));
        return 1;
    }
    printf("new signing key kid=%s (the previous key stays in the JWKS; an emulator running on this\n"
           "directory switches to it with its next request)\n",
           kid);
    return 0;
}

/* Numeric options: text from the command line, then checked and converted. */
struct num_opt {
    const char *name;
    const char *text;
    long min, max;
    long value;
};

static int parse_emulate_args(int argc, char **argv, struct emu_options *o)
{
    const char *port = NULL, *page = NULL, *ack = NULL, *opd = NULL, *tok = NULL, *land = NULL, *wto = NULL,
               *wbo = NULL, *watt = NULL, *level = NULL, *args[CMD_MAX_ARGS];
    int no_seed = 0;
    const struct cmd_opt opts[] = {
        {"--port", NULL, &port, NULL},           {"--bind", NULL, &o->bind_addr, NULL},
        {"--public-url", NULL, &o->public_url, NULL}, {"--data", NULL, &o->data_dir, NULL},
        {"--tenant", NULL, &o->tenant_id, NULL}, {"--client-id", NULL, &o->client_id, NULL},
        {"--client-cert", NULL, &o->client_cert_file, NULL}, {"--publisher", NULL, &o->publisher_id, NULL},
        {"--issuer-base", NULL, &o->issuer_base, NULL}, {"--webhook-url", NULL, &o->webhook_url, NULL},
        {"--landing-url", NULL, &o->landing_url, NULL}, {"--page-size", NULL, &page, NULL},
        {"--ack-window-ms", NULL, &ack, NULL},   {"--op-delay-ms", NULL, &opd, NULL},
        {"--token-lifetime", NULL, &tok, NULL},  {"--landing-lifetime", NULL, &land, NULL},
        {"--webhook-timeout-ms", NULL, &wto, NULL}, {"--webhook-backoff-ms", NULL, &wbo, NULL},
        {"--webhook-attempts", NULL, &watt, NULL}, {"--no-seed", NULL, NULL, &no_seed},
        {"--log-level", NULL, &level, NULL},     {"--redirect-uri", NULL, &o->redirect_uris, NULL},
        {"--signin-client-id", NULL, &o->signin_client_id, NULL}, {NULL}};
    const struct cmd_spec spec = {"saasd emulate [--port P] [options]  |  saasd emulate rotate-key --data DIR", usage,
                                  opts, 0, 0};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
    struct num_opt nums[] = {
        {"--port", port, 0, 65535, o->port},
        {"--page-size", page, 1, 1000000, o->page_size},
        {"--ack-window-ms", ack, 0, 1L << 40, o->ack_window_ms},
        {"--op-delay-ms", opd, 0, 1L << 40, o->op_delay_ms},
        {"--token-lifetime", tok, 1, 1L << 40, o->token_lifetime_s},
        {"--landing-lifetime", land, 1, 1L << 40, o->landing_lifetime_s},
        {"--webhook-timeout-ms", wto, 1, 1L << 40, o->webhook_timeout_ms},
        {"--webhook-backoff-ms", wbo, 0, 1L << 40, o->webhook_backoff_ms},
        {"--webhook-attempts", watt, 1, 1000000, o->webhook_max_attempts},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (nums[i].text && (arg_long(nums[i].text, &nums[i].value) || nums[i].value < nums[i].min ||
                             nums[i].value > nums[i].max))
            return cmd_usage_error(&spec, "bad value for %s: '%s' (a number from %ld to %ld)", nums[i].name,
                                   nums[i].text, nums[i].min, nums[i].max);
    o->port = (unsigned short)nums[0].value;
    o->page_size = (int)nums[1].value;
    o->ack_window_ms = nums[2].value;
    o->op_delay_ms = nums[3].value;
    o->token_lifetime_s = nums[4].value;
    o->landing_lifetime_s = nums[5].value;
    o->webhook_timeout_ms = nums[6].value;
    o->webhook_backoff_ms = nums[7].value;
    o->webhook_max_attempts = (int)nums[8].value;
    if (no_seed)
        o->seed = 0;
    enum log_level lvl;
    if (level && log_level_parse(level, &lvl) != 0)
        return cmd_usage_error(&spec, "bad value for --log-level: '%s' (debug, info, warn or error)", level);
    if (level)
        log_set_level(lvl);
    return -1;
}

int cmd_emulate(int argc, char **argv)
{
    if (argc > 0 && !strcmp(argv[0], "rotate-key"))
        return rotate_key(argc - 1, argv + 1);

    struct emu_options o;
    emu_options_defaults(&o);
    o.port = 8090;
    int status = parse_emulate_args(argc, argv, &o);
    if (status >= 0)
        return status;
    o.signin_client_secret = getenv("EMU_SIGNIN_SECRET");

    o.signin_client_secret = getenv("EMU_SIGNIN_SECRET");
    /* Signals are taken synchronously by this thread; every other thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct emu *e = NULL;
    int rc = emu_start(&o, &e);
    if (rc != 0) {
        fprintf(stderr, "saasd emulate: cannot start: %s\n", saasd_strerror(rc));
        return 1;
    }
    printf("saasd emulator listening on %s\n", emu_base_url(e));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("emulator", "stopping", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM");
    emu_stop(e);
    return 0;
}
