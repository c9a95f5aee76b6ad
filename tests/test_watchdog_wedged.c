/* The systemd watchdog pings only while the daemon is alive: with both threads of the public
 * listener's event loop wedged, /healthz cannot be answered and WATCHDOG=1 stops, so systemd
 * would restart the service; once the loop answers again the pings resume. The daemon runs
 * in-process under a WATCHDOG_USEC of this test, NOTIFY_SOCKET is a socket of this test, and
 * webhook_handle (which runs on the event loop) is wrapped (-Wl,--wrap=webhook_handle in the
 * Makefile) so that a /webhook request can hold its loop thread until the test lets it go. */
#include "it_support.h"
#include "notify_listen.h"

#include <pthread.h>

#define WATCHDOG_MS 1000 /* pings every 500 ms while alive */

static pthread_mutex_t wedge_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wedge_cond = PTHREAD_COND_INITIALIZER;
static int wedging; /* 1: each /webhook request holds its event-loop thread until it is 0 */
static int held;    /* event-loop threads held now */

void __real_webhook_handle(struct daemon *d, const struct httpd_request *req, struct httpd_response *res);
void __wrap_webhook_handle(struct daemon *d, const struct httpd_request *req, struct httpd_response *res);
void __wrap_webhook_handle(struct daemon *d, const struct httpd_request *req, struct httpd_response *res)
{
    pthread_mutex_lock(&wedge_lock);
    if (wedging) {
        held++;
        pthread_cond_broadcast(&wedge_cond);
        while (wedging)
            pthread_cond_wait(&wedge_cond, &wedge_lock);
        held--;
    }
    pthread_mutex_unlock(&wedge_lock);
    __real_webhook_handle(d, req, res);
}

/* 1 when `want` loop threads are held within 5 s. */
static int wait_held(int want)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&wedge_lock);
    while (held < want && pthread_cond_timedwait(&wedge_cond, &wedge_lock, &until) == 0)
        ;
    int ok = held >= want;
    pthread_mutex_unlock(&wedge_lock);
    return ok;
}

/* A /webhook request on a connection of its own, not waiting for the answer; the socket. */
static int send_webhook(unsigned short port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    const char req[] = "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}";
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
        printf("# could not send a webhook request\n");
    return fd;
}

/* Hold both threads of the public listener's event loop (httpd event_threads = 2): a held thread
 * accepts nothing, so the second request goes to the other one. 1 when both are held. */
static int wedge_loop(unsigned short port, int fds[2])
{
    pthread_mutex_lock(&wedge_lock);
    wedging = 1;
    pthread_mutex_unlock(&wedge_lock);
    fds[0] = send_webhook(port);
    int ok = wait_held(1);
    fds[1] = send_webhook(port);
    return ok && wait_held(2);
}

static void unwedge_loop(void)
{
    pthread_mutex_lock(&wedge_lock);
    wedging = 0;
    pthread_cond_broadcast(&wedge_cond);
    pthread_mutex_unlock(&wedge_lock);
}

int main(void)
{
    char dir[256], rules[512], sock[512], usec[32], self[32];
    struct emu *emu = it_setup("wedged", dir, rules);
    if (!emu)
        return CHECK_DONE();
    int fd = notify_listen(dir, sock);
    CHECK(fd >= 0, "the test's notify socket is bound");
    snprintf(usec, sizeof usec, "%d", WATCHDOG_MS * 1000);
    snprintf(self, sizeof self, "%d", (int)getpid());
    setenv("NOTIFY_SOCKET", sock, 1);
    setenv("WATCHDOG_USEC", usec, 1);
    setenv("WATCHDOG_PID", self, 1);
    struct daemon *d = fd >= 0 ? it_start_in(dir, 0, NULL) : NULL;
    if (d) {
        CHECK(d->watchdog != NULL, "under WATCHDOG_USEC and NOTIFY_SOCKET the daemon runs a watchdog thread");
        int alive = notify_count_pings(fd, 2 * WATCHDOG_MS);
        printf("# %d pings in %d ms while alive\n", alive, 2 * WATCHDOG_MS);
        CHECK(alive >= 2, "the watchdog pings while /healthz answers");

        int fds[2] = {-1, -1};
        int wedged = wedge_loop(httpd_port(d->public_httpd), fds);
        CHECK(wedged, "two /webhook requests hold both threads of the public event loop");
        notify_count_pings(fd, WATCHDOG_MS / 2); /* a check answered just before the wedge may still ping */
        int stalled = notify_count_pings(fd, 2 * WATCHDOG_MS);
        printf("# %d pings in %d ms while wedged\n", stalled, 2 * WATCHDOG_MS);
        CHECK(wedged && stalled == 0, "while the event loop is wedged the watchdog does not ping (systemd would restart)");

        unwedge_loop();
        int again = notify_count_pings(fd, 2 * WATCHDOG_MS);
        printf("# %d pings in %d ms after the loop was let go\n", again, 2 * WATCHDOG_MS);
        CHECK(again >= 2, "once the event loop answers again the pings resume");
        for (int i = 0; i < 2; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        daemon_stop(d);
        CHECK(notify_count_pings(fd, WATCHDOG_MS) == 0, "daemon_stop stops the watchdog: no ping after it");
    }
    if (fd >= 0)
        close(fd);
    emu_stop(emu);
    check_rm_rf(dir);
    return CHECK_DONE();
}
