/* The command line is strict: every sub-command refuses unknown flags, flags without their
 * value and extra arguments with a usage line on stderr and exit status 2 (instead of
 * starting with the default config), and answers --help. Runs the built binary. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Run "$BUILD/saasd ARGS"; stderr (and stdout when want_stdout) into out; exit status. */
static int run(const char *args, int want_stdout, char *out, size_t size)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "timeout 20 %s/saasd %s 2>&1 %s", build, args, want_stdout ? "" : ">/dev/null");
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = 0;
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct refusal {
    const char *args;
    const char *says; /* on stderr, besides the usage line */
};

static const struct refusal refusals[] = {
    {"serve --conf /tmp/x.conf", "unknown option '--conf'"},
    {"serve --config", "option '--config' needs a value"},
    {"serve --bogus", "unknown option '--bogus'"},
    {"serve /tmp/alt.conf", "unexpected argument '/tmp/alt.conf'"},
    {"check-config --conf /tmp/x.conf", "unknown option '--conf'"},
    {"check-config examples/saasd.conf", "unexpected argument"},
    {"run --demo --bogus", "unknown option '--bogus'"},
    {"run extra", "unexpected argument 'extra'"},
    {"admin --config", "needs a value"},
    {"admin --verbose subscriptions", "unknown option '--verbose'"},
    {"admin subscriptions offer=a status=b extra", "'subscriptions' takes at most 2 arguments"},
    {"admin subscriptions extra", "filters are offer=OFFER and status=STATUS"},
    {"admin change-quantity SUB many", "'many' is not a number"},
    {"admin usage SUB api-calls lots", "'lots' is not a number"},
    {"admin usage-reconcile week", "'week' is not a number"},
    {"admin no-such-verb", "unknown admin verb"},
    {"rules check rules extra", "unexpected argument 'extra'"},
    {"rules check --dir rules", "unknown option '--dir'"},
    {"rules lint", "unknown rules command"},
    {"mp --config", "needs a value"},
    {"mp --bogus list", "unknown option '--bogus'"},
    {"emulate --port", "option '--port' needs a value"},
    {"emulate --port 99999", "bad value for --port"},
    {"emulate stray", "unexpected argument 'stray'"},
    {"emulate rotate-key", "--data DIR is required"},
    {"version --bogus", "unknown option"},
    {"version 1", "unexpected argument"},
};

static const char *const helps[] = {"serve", "run", "check-config", "admin", "rules check", "mp", "emulate",
                                    "version", "emulate rotate-key", "test"};

int main(void)
{
    char out[8192], args[256], name[512];
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        int st = run(refusals[i].args, 0, out, sizeof out);
        snprintf(name, sizeof name, "'saasd %s' exits 2 with a usage line and says %s", refusals[i].args,
                 refusals[i].says);
        CHECK(st == 2 && strstr(out, "usage: saasd") && strstr(out, refusals[i].says), name);
        if (st != 2 || !strstr(out, refusals[i].says))
            printf("# status %d, stderr: %.300s\n", st, out);
    }
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        snprintf(args, sizeof args, "%s --help", helps[i]);
        int st = run(args, 1, out, sizeof out);
        snprintf(name, sizeof name, "'saasd %s' prints its usage and exits 0", args);
        CHECK(st == 0 && strstr(out, "usage: saasd"), name);
    }
    /* check-config names its file with --config and only with it */
    int st = run("check-config --config /nonexistent/saasd.conf", 0, out, sizeof out);
    CHECK(st == 1 && strstr(out, "/nonexistent/saasd.conf"), "check-config --config validates the file it names");
    return CHECK_DONE();
}
