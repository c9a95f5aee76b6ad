/* The service manager's end of sd_notify for the tests: an AF_UNIX datagram socket in a test
 * directory, as systemd's NOTIFY_SOCKET, and the notices saasd sends to it. Included by
 * tests/test_service_notify.c and tests/test_watchdog_wedged.c. */
#ifndef SAASD_NOTIFY_LISTEN_H
#define SAASD_NOTIFY_LISTEN_H

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Bind <dir>/notify.sock (its path into path, 512 bytes); the socket, or -1. */
static int notify_listen(const char *dir, char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(path, 512, "%s/notify.sock", dir);
    if (strlen(path) >= sizeof a.sun_path)
        return -1;
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The next notice (one datagram, NUL-terminated into msg) within timeout_ms: 1, or 0 when none came. */
static int notify_next(int fd, char *msg, size_t size, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return 0;
    ssize_t n = recv(fd, msg, size - 1, 0);
    msg[n > 0 ? n : 0] = 0;
    return n > 0;
}

/* 1 when the notice has the line (e.g. "READY=1"), as a whole line. */
static int notify_has(const char *msg, const char *line)
{
    size_t len = strlen(line);
    for (const char *p = msg; (p = strstr(p, line)) != NULL; p += len)
        if ((p == msg || p[-1] == '\n') && (p[len] == 0 || p[len] == '\n'))
            return 1;
    return 0;
}

/* The next notice within timeout_ms that is not a watchdog ping (those come at their own pace). */
static int notify_next_state(int fd, char *msg, size_t size, int timeout_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        int left = timeout_ms - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || !notify_next(fd, msg, size, left))
            return 0;
        if (!notify_has(msg, "WATCHDOG=1"))
            return 1;
    }
}

/* Watchdog pings received within ms; discards other notices. */
static int notify_count_pings(int fd, int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = 0;
    char msg[1024];
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        int left = ms - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return n;
        if (notify_next(fd, msg, sizeof msg, left))
            n += notify_has(msg, "WATCHDOG=1");
    }
}

#endif
