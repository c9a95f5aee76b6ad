/* Framing of the daemon <-> rule worker messages (src/engine/wire.c): what wire_recv takes from
 * a connection whatever way the bytes arrive (one read may hold several frames or part of one). */
#include "check.h"
#include "core/err.h"
#include "engine/limits.h"
#include "engine/wire.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

static void frame(struct wire_buf *b, enum wire_type type, const char *a, const char *c)
{
    wire_begin(b, type);
    wire_put_str(b, a);
    wire_put_str(b, c);
    uint32_t l = (uint32_t)(b->len - 4); /* as wire_send fills it in */
    memcpy(b->p, &l, 4);
}

static int pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK); /* the daemon's end */
    return 0;
}

static int64_t soon(void) { return limits_now_ns() + 2000 * 1000000LL; }

static void test_frames_sharing_a_read(void)
{
    int sv[2];
    if (pair(sv))
        abort();
    struct wire_buf a = {0}, b = {0};
    frame(&a, W_LOG, "first", NULL);
    frame(&b, W_RESULT, "second", "x");
    char both[256];
    memcpy(both, a.p, a.len);
    memcpy(both + a.len, b.p, b.len);
    if (write(sv[1], both, a.len + b.len) != (ssize_t)(a.len + b.len))
        abort();
    struct wire_rx rx = {0};
    struct wire_msg m1, m2;
    int r1 = wire_recv(sv[0], soon(), 1024, &rx, &m1);
    int r2 = wire_recv(sv[0], soon(), 1024, &rx, &m2);
    CHECK(r1 == 0 && m1.type == W_LOG && !strcmp(wire_str(&m1, 0), "first") && !wire_str(&m1, 1),
          "two frames arriving in one read: the first is taken whole, its absent field stays absent");
    CHECK(r2 == 0 && m2.type == W_RESULT && !strcmp(wire_str(&m2, 0), "second") && !strcmp(wire_str(&m2, 1), "x"),
          "two frames arriving in one read: the second is kept for the next call, not lost");
    CHECK(rx.len == 0, "nothing is left over once both frames are taken");
    wire_msg_free(&m1);
    wire_msg_free(&m2);
    wire_rx_free(&rx);
    wire_buf_free(&a);
    wire_buf_free(&b);
    close(sv[0]);
    close(sv[1]);
}

static void test_integers_exact(void)
{
    static const long long v[] = {0, 7, -1, 42, 1000000007, -2147483648LL, LLONG_MAX, LLONG_MIN};
    const size_t n = sizeof v / sizeof v[0];
    int sv[2];
    if (pair(sv))
        abort();
    struct wire_buf b = {0};
    wire_begin(&b, W_RESULT);
    for (size_t i = 0; i < n; i++)
        wire_put_int(&b, v[i]);
    struct wire_rx rx = {0};
    struct wire_msg m = {0};
    int rc = wire_send(sv[1], &b, soon());
    if (rc == 0)
        rc = wire_recv(sv[0], soon(), 1024, &rx, &m);
    int same = rc == 0 && m.n == n;
    for (size_t i = 0; same && i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "%lld", v[i]);
        same = !strcmp(wire_str(&m, i), want) && wire_int(&m, i, 1) == v[i];
    }
    CHECK(same, "integers travel as their exact decimal text: zero, negatives, LLONG_MIN and LLONG_MAX");
    wire_msg_free(&m);
    wire_rx_free(&rx);
    wire_buf_free(&b);
    close(sv[0]);
    close(sv[1]);
}

struct dribble {
    int fd;
    const char *p;
    size_t len;
};

static void *dribble_main(void *arg)
{
    struct dribble *d = arg;
    for (size_t i = 0; i < d->len; i++) {
        if (write(d->fd, d->p + i, 1) != 1)
            break;
        usleep(200);
    }
    return NULL;
}

static void test_frame_in_pieces(void)
{
    int sv[2];
    if (pair(sv))
        abort();
    struct wire_buf a = {0};
    char big[40000]; /* larger than one read's chunk */
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    frame(&a, W_STORE_VAL, "0", "small");
    struct dribble d = {sv[1], a.p, a.len};
    pthread_t t;
    pthread_create(&t, NULL, dribble_main, &d);
    struct wire_rx rx = {0};
    struct wire_msg m;
    int rc = wire_recv(sv[0], soon(), 1024, &rx, &m);
    pthread_join(t, NULL);
    CHECK(rc == 0 && m.type == W_STORE_VAL && !strcmp(wire_str(&m, 1), "small"),
          "a frame arriving a byte at a time is assembled before it is handed out");
    wire_msg_free(&m);
    struct wire_buf b = {0};
    frame(&b, W_RESULT, big, "end");
    if (write(sv[1], b.p, b.len) != (ssize_t)b.len)
        abort();
    rc = wire_recv(sv[0], soon(), 1u << 20, &rx, &m);
    CHECK(rc == 0 && m.f[0].len == strlen(big) && !strcmp(wire_str(&m, 1), "end"),
          "a frame larger than one read is read to its end");
    wire_msg_free(&m);
    wire_rx_free(&rx);
    wire_buf_free(&a);
    wire_buf_free(&b);
    close(sv[0]);
    close(sv[1]);
}

static void test_refusals(void)
{
    int sv[2];
    if (pair(sv))
        abort();
    struct wire_rx rx = {0};
    struct wire_msg m;
    int64_t t0 = limits_now_ns();
    int rc = wire_recv(sv[0], t0 + 100 * 1000000LL, 1024, &rx, &m);
    CHECK(rc == SAASD_ETIMEOUT, "nothing arriving before the deadline is a timeout");
    uint32_t huge = 1u << 30;
    if (write(sv[1], &huge, 4) != 4) /* the body never comes */
        abort();
    rc = wire_recv(sv[0], soon(), 1024, &rx, &m);
    CHECK(rc == SAASD_ETOOBIG, "a frame announced over the limit is refused before its body is waited for");
    wire_rx_free(&rx);
    struct wire_buf a = {0};
    frame(&a, W_LOG, "cut", "short");
    if (write(sv[1], a.p, a.len - 3) != (ssize_t)a.len - 3)
        abort();
    close(sv[1]);
    rc = wire_recv(sv[0], soon(), 1024, &rx, &m);
    CHECK(rc == SAASD_EIO, "a peer closing in the middle of a frame is an I/O error, not a short message");
    wire_rx_free(&rx);
    wire_buf_free(&a);
    close(sv[0]);
}

static void *late_main(void *arg)
{
    struct dribble *d = arg;
    usleep(500 * 1000);
    if (write(d->fd, d->p, d->len) != (ssize_t)d->len)
        abort();
    return NULL;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* deadline 0 means "no deadline", also on the daemon's non-blocking end: wire_recv must then
 * sleep in poll() until the frame comes, not go round read() and EAGAIN for half a second. */
static void test_no_deadline_waits(void)
{
    int sv[2];
    if (pair(sv))
        abort();
    struct wire_buf a = {0};
    frame(&a, W_RESULT, "late", NULL);
    struct dribble d = {sv[1], a.p, a.len};
    pthread_t t;
    pthread_create(&t, NULL, late_main, &d);
    struct wire_rx rx = {0};
    struct wire_msg m;
    int64_t cpu0 = thread_cpu_ns();
    int rc = wire_recv(sv[0], 0, 1024, &rx, &m);
    int64_t cpu_ms = (thread_cpu_ns() - cpu0) / 1000000;
    pthread_join(t, NULL);
    printf("# waiting 500 ms for a frame cost %lld ms of CPU\n", (long long)cpu_ms);
    CHECK(rc == 0 && m.type == W_RESULT && !strcmp(wire_str(&m, 0), "late"),
          "with no deadline a frame that comes late on a non-blocking end is still taken");
    CHECK(rc == 0 && cpu_ms < 50, "with no deadline a non-blocking end sleeps until the frame comes (no busy loop)");
    if (rc == 0)
        wire_msg_free(&m);
    wire_rx_free(&rx);
    wire_buf_free(&a);
    close(sv[0]);
    close(sv[1]);
}

/* The system call a thread is in (/proc/self/task/TID/syscall: its number first), -1 if none. */
static long syscall_of(pid_t tid)
{
    char path[64], buf[256] = "";
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *got = fgets(buf, sizeof buf, f);
    fclose(f);
    return got && buf[0] >= '0' && buf[0] <= '9' ? strtol(buf, NULL, 10) : -1;
}

struct waiter {
    int fd;
    struct wire_rx rx;
    int64_t deadline;
    int rc;
    pid_t tid;
    struct wire_msg m;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->tid = (pid_t)syscall(SYS_gettid);
    w->rc = wire_recv(w->fd, w->deadline, 1024, &w->rx, &w->m);
    return NULL;
}

/* The daemon's end as pool.c makes it (wire_daemon_end): a reply is waited for in read() itself
 * (one syscall per message, no poll() before it), and the deadline still holds. */
static void test_daemon_end_waits_in_read(void)
{
    int sv[2];
    struct waiter w = {.deadline = soon()};
    if (pair(sv) || wire_daemon_end(sv[0], &w.rx) != 0)
        abort();
    w.fd = sv[0];
    pthread_t t;
    pthread_create(&t, NULL, waiter_main, &w);
    long seen[40];
    int reads = 0, polls = 0;
    for (int i = 0; i < 40; i++) { /* sampled while it waits: 200 ms, twenty slices */
        usleep(5000);
        seen[i] = w.tid ? syscall_of(w.tid) : -1;
        reads += seen[i] == SYS_read;
        polls += seen[i] == SYS_poll || seen[i] == SYS_ppoll;
    }
    struct wire_buf a = {0};
    frame(&a, W_RESULT, "reply", NULL);
    if (write(sv[1], a.p, a.len) != (ssize_t)a.len)
        abort();
    pthread_join(t, NULL);
    printf("# while waiting for a reply: %d samples in read(), %d in poll()\n", reads, polls);
    CHECK(reads > 20 && polls < 5, "the daemon's end waits for a reply in read(), not in a poll() before each read");
    CHECK(w.rc == 0 && w.m.type == W_RESULT && !strcmp(wire_str(&w.m, 0), "reply"),
          "a reply coming after many read slices is taken whole");
    if (w.rc == 0)
        wire_msg_free(&w.m);
    struct wire_rx rx = w.rx;
    struct wire_msg m;
    int64_t t0 = limits_now_ns();
    int rc = wire_recv(sv[0], t0 + 100 * 1000000LL, 1024, &rx, &m);
    int64_t ms = (limits_now_ns() - t0) / 1000000;
    CHECK(rc == SAASD_ETIMEOUT && ms >= 100 && ms < 2000, "on the daemon's end nothing arriving before the deadline is a timeout");
    t0 = limits_now_ns();
    rc = wire_recv(sv[0], t0 + 2 * 1000000LL, 1024, &rx, &m);
    CHECK(rc == SAASD_ETIMEOUT, "a deadline nearer than one read slice is a timeout too");
    wire_rx_free(&rx);
    wire_buf_free(&a);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    test_frames_sharing_a_read();
    test_integers_exact();
    test_frame_in_pieces();
    test_refusals();
    test_no_deadline_waits();
    test_daemon_end_waits_in_read();
    return CHECK_DONE();
}
