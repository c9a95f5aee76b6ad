/* saasd serve under a service manager: it speaks systemd's notification protocol to the socket
 * NOTIFY_SOCKET names (an AF_UNIX datagram socket of this test, as systemd's would be). READY=1
 * comes only once /healthz answers, RELOADING=1 then READY=1 around a SIGHUP reload, WATCHDOG=1
 * at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM before a clean exit; and without NOTIFY_SOCKET
 * none of this is in the way. The daemon is build/saasd, a child process; Microsoft is the
 * in-process emulator. */
#include "it_support.h"
#include "notify_listen.h"

#define WATCHDOG_MS 2000 /* WATCHDOG_USEC for the child: it should ping every 1000 ms */

static char dir[256], conf[512], saasd_bin[256], sock_path[512];
static unsigned short port;

/* Start build/saasd serve with stderr in <dir>/daemon.log; with NOTIFY_SOCKET and a watchdog
 * when notify is set. */
static pid_t start_serve(int notify)
{
    pid_t pid = fork();
    if (pid == 0) {
        char logpath[600], usec[32], self[32];
        snprintf(logpath, sizeof logpath, "%s/daemon.log", dir);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 2);
        snprintf(usec, sizeof usec, "%d", WATCHDOG_MS * 1000);
        snprintf(self, sizeof self, "%d", (int)getpid()); /* exec keeps the pid */
        setenv("WATCHDOG_USEC", usec, 1);
        setenv("WATCHDOG_PID", self, 1);
        if (notify)
            setenv("NOTIFY_SOCKET", sock_path, 1);
        else
            unsetenv("NOTIFY_SOCKET");
        execl(saasd_bin, saasd_bin, "serve", "--config", conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static long healthz_status(void)
{
    char url[256];
    long st = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
    json_decref(it_call("GET", url, NULL, NULL, &st, NULL));
    return st;
}

/* The exit status of pid within timeout_ms; -1 when it is still running (then it is killed). */
static int exit_status(pid_t pid, int timeout_ms)
{
    int status;
    for (int i = 0; i < timeout_ms / 10; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void check_ready(int fd)
{
    char msg[1024], want[128];
    int got = notify_next(fd, msg, sizeof msg, 20000);
    long st = got ? healthz_status() : 0; /* at once: no waiting for the daemon after READY=1 */
    CHECK(got && notify_has(msg, "READY=1"), "the first notice of saasd serve is READY=1");
    CHECK(st == 200, "when READY=1 arrives, /healthz already answers 200");
    snprintf(want, sizeof want, "STATUS=serving 127.0.0.1:%u (admin 127.0.0.1:", port);
    CHECK(strstr(msg, want) && strstr(msg, "rules generation 1, 1 offer"),
          "READY=1 carries a STATUS= line with the listen address, the admin listener and the offers loaded");
    if (!strstr(msg, want))
        printf("# notice: %s\n", msg);
}

/* Pings at about half the interval: the mean gap of five, between 0.8 and 1.6 times half. */
static void check_watchdog(int fd)
{
    char msg[1024];
    double first = 0, last = 0;
    int pings = 0, with_status = 0;
    while (pings < 6 && notify_next(fd, msg, sizeof msg, 3 * WATCHDOG_MS)) {
        if (!notify_has(msg, "WATCHDOG=1"))
            continue;
        last = check_now_ms();
        first = pings++ ? first : last;
        with_status += strstr(msg, "STATUS=serving") != NULL;
    }
    double gap = pings > 1 ? (last - first) / (pings - 1) : 0;
    printf("# %d watchdog pings, %.0f ms apart on average (WATCHDOG_USEC %d ms)\n", pings, gap, WATCHDOG_MS);
    CHECK(pings == 6, "with WATCHDOG_USEC set, saasd pings WATCHDOG=1 again and again");
    CHECK(gap >= 0.8 * WATCHDOG_MS / 2 && gap <= 1.6 * WATCHDOG_MS / 2,
          "the watchdog pings come at about half of WATCHDOG_USEC");
    CHECK(with_status == pings, "each ping refreshes the STATUS= line");
}

static void check_reload(int fd, pid_t pid)
{
    char msg[1024];
    kill(pid, SIGHUP);
    int got = notify_next_state(fd, msg, sizeof msg, 10000);
    CHECK(got && notify_has(msg, "RELOADING=1") && strstr(msg, "MONOTONIC_USEC="),
          "SIGHUP: RELOADING=1 (with MONOTONIC_USEC) comes first");
    got = notify_next_state(fd, msg, sizeof msg, 10000);
    CHECK(got && notify_has(msg, "READY=1") && strstr(msg, "STATUS=serving"),
          "SIGHUP: READY=1 with the status line follows once the reload is done");
    CHECK(healthz_status() == 200, "after the reload /healthz answers 200");
}

static void check_stop(int fd, pid_t pid)
{
    char msg[1024];
    kill(pid, SIGTERM);
    int got = notify_next_state(fd, msg, sizeof msg, 10000);
    CHECK(got && notify_has(msg, "STOPPING=1"), "SIGTERM: the daemon sends STOPPING=1");
    CHECK(exit_status(pid, 15000) == 0, "after STOPPING=1 saasd serve exits with status 0");
}

/* The daemon's log so far (log_level info) into buf. */
static void read_log(char *buf, size_t size)
{
    char logpath[600];
    snprintf(logpath, sizeof logpath, "%s/daemon.log", dir);
    FILE *f = fopen(logpath, "r");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
}

/* Without NOTIFY_SOCKET (by hand, under another supervisor) WATCHDOG_USEC alone starts nothing. */
static void check_without_socket(void)
{
    static char log[1 << 20];
    read_log(log, sizeof log);
    CHECK(strstr(log, "watchdog: pinging") != NULL, "with NOTIFY_SOCKET the daemon logged its watchdog's start");
    char logpath[600], kept[620];
    snprintf(logpath, sizeof logpath, "%s/daemon.log", dir);
    snprintf(kept, sizeof kept, "%s/daemon-notify.log", dir);
    rename(logpath, kept);
    pid_t pid = start_serve(0);
    long st = 0;
    for (int i = 0; i < 1000 && st != 200; i++, usleep(10 * 1000))
        st = healthz_status();
    kill(pid, SIGTERM);
    int status = exit_status(pid, 15000);
    read_log(log, sizeof log);
    CHECK(st == 200 && status == 0, "without NOTIFY_SOCKET saasd serve serves and stops on SIGTERM with status 0");
    CHECK(strstr(log, "watchdog: pinging") == NULL, "without NOTIFY_SOCKET no watchdog thread starts");
}

int main(void)
{
    char rules[512];
    struct emu *emu = it_setup("notify", dir, rules);
    if (!emu)
        return CHECK_DONE();
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(saasd_bin, sizeof saasd_bin, "%s/saasd", build);
    it_write_rule(rules, "notify-offer", "return {}\n");
    port = it_free_port();
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, port, it_free_port(), "log_level = \"info\"\n"); /* the watchdog's start line */
    int fd = notify_listen(dir, sock_path);
    CHECK(fd >= 0, "the test's notify socket is bound");
    if (fd >= 0) {
        pid_t pid = start_serve(1);
        check_ready(fd);
        check_watchdog(fd);
        check_reload(fd, pid);
        check_stop(fd, pid);
        close(fd);
        check_without_socket();
    }
    emu_stop(emu);
    check_rm_rf(dir);
    return CHECK_DONE();
}
