/* The rule worker's own backstop (src/engine/worker.c): a worker stuck inside a C function
 * while nobody is left to SIGKILL it (the daemon vanished or stopped answering) ends itself
 * by SIGALRM once the request has run its backstop (SAASD_RULE_WORKER_BACKSTOP_S, lowered
 * to 1 s here, + the call's cpu_ms); an idle worker lives on across the backstop's ticks. */
#include "check.h"
#include "core/err.h"
#include "engine/limits.h"
#include "engine/wire.h"
#include "engine/worker.h"

#include <signal.h>
#include <sys/wait.h>

static const char HANG[] =
    "return { change_quantity = function() string.rep('', math.maxinteger) end }\n";

static int load(struct worker *w, long *slot)
{
    struct rule_file f = {.offer_id = "hang", .path = "hang.lua", .source = (char *)(uintptr_t)HANG,
                          .len = sizeof HANG - 1, .sha256 = "0"};
    return worker_load(w, &f, "hang", 2000, 32u << 20, NULL, NULL, slot);
}

/* The worker's state after waiting up to ms: 0 running, else its wait status | 1 << 16. */
static int reaped(pid_t pid, double ms)
{
    double end = check_now_ms() + ms;
    int st;
    do {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st | 1 << 16;
        usleep(20000);
    } while (check_now_ms() < end);
    return 0;
}

int main(void)
{
    setenv("SAASD_RULE_WORKER_BACKSTOP_S", "1", 1);
    struct worker *w = NULL;
    long slot = -1;
    CHECK(worker_spawn(NULL, &w) == 0 && load(w, &slot) == 0, "a worker starts and loads a rule");
    if (!w || slot < 0)
        return CHECK_DONE();
    pid_t pid = w->pid;

    /* idle across several ticks of the backstop, then still answering */
    CHECK(reaped(pid, 2500) == 0, "an idle worker is not ended by its backstop's ticks");
    long again = -1;
    CHECK(load(w, &again) == 0 && again >= 0, "after idling across the ticks the worker still answers");

    /* a call stuck in C whose caller never kills it: sent by hand, its answer never read */
    struct wire_buf b = {0};
    wire_begin(&b, W_CALL);
    wire_put_int(&b, again);
    wire_put_str(&b, "hang");
    wire_put_int(&b, RULE_CHANGE_QUANTITY);
    wire_put_str(&b, "{\"id\":\"s1\"}");
    wire_put_str(&b, "{\"quantity\":2}");
    wire_put_int(&b, 1000); /* cpu_ms: the backstop is 1 s + 1 s */
    wire_put_int(&b, 32 << 20);
    wire_put_int(&b, 0);
    CHECK(wire_send(w->out, &b, limits_now_ns() + 2000000000LL) == 0, "the call is sent");
    wire_buf_free(&b);
    double t0 = check_now_ms();
    CHECK(reaped(pid, 1000) == 0, "a call is not ended by the backstop before its time");
    int st = reaped(pid, 30000);
    double took = check_now_ms() - t0;
    CHECK(st && WIFSIGNALED(st & 0xffff) && WTERMSIG(st & 0xffff) == SIGALRM,
          "a worker stuck in C with no one to kill it ends itself by SIGALRM at its backstop");
    printf("# ended after %.0f ms (backstop 2000 ms, ticks of 1 s)\n", took);
    CHECK(took < 20000, "it ends within a generous bound of its backstop");
    w->pid = 0; /* reaped here */
    w->dead = 1;
    worker_free(w);
    return CHECK_DONE();
}
