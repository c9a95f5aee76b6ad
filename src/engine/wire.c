/* Framing of the daemon <-> rule worker messages (see wire.h). Each field's bytes are followed
 * by a NUL on the wire, so a received field can be used as a C string in place. */
#include "engine/wire.h"
#include "core/err.h"
#include "engine/limits.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define WIRE_MAX_FIELDS 8192

static void reserve(struct wire_buf *b, size_t more)
{
    if (b->failed || b->cap - b->len >= more)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

void wire_begin(struct wire_buf *b, enum wire_type type)
{
    b->len = 0;
    b->failed = 0;
    reserve(b, 5);
    if (b->failed)
        return;
    memset(b->p, 0, 4);
    b->p[4] = (char)type;
    b->len = 5;
}

void wire_put(struct wire_buf *b, const void *p, size_t len)
{
    if (p && len >= WIRE_NULL) {
        b->failed = 1;
        return;
    }
    reserve(b, 4 + (p ? len + 1 : 0));
    if (b->failed)
        return;
    uint32_t l = p ? (uint32_t)len : WIRE_NULL;
    memcpy(b->p + b->len, &l, 4);
    b->len += 4;
    if (p) {
        memcpy(b->p + b->len, p, len);
        b->p[b->len + len] = '\0';
        b->len += len + 1;
    }
}

void wire_put_str(struct wire_buf *b, const char *s)
{
    wire_put(b, s, s ? strlen(s) : 0);
}

/* Decimal digits by hand: a call's frames carry a dozen numbers, and snprintf's format
 * machinery was a visible share of a rule worker's CPU per call. */
void wire_put_int(struct wire_buf *b, long long v)
{
    char num[24], *end = num + sizeof num, *d = end;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--d = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--d = '-';
    wire_put(b, d, (size_t)(end - d));
}

void wire_buf_free(struct wire_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Wait until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline_ns)
{
    for (;;) {
        int ms = -1;
        if (deadline_ns) {
            int64_t left = deadline_ns - limits_now_ns();
            if (left <= 0)
                return SAASD_ETIMEOUT;
            ms = (int)((left + 999999) / 1000000);
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return SAASD_EIO;
    }
}

int wire_daemon_end(int fd, struct wire_rx *rx)
{
    struct timeval slice = {.tv_sec = 0, .tv_usec = WIRE_SLICE_MS * 1000};
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &slice, sizeof slice) < 0)
        return SAASD_EIO;
    rx->sliced = 1;
    return 0;
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline_ns)
{
    while (len) {
        /* MSG_NOSIGNAL: a worker that died must not take the daemon (or a test) down by SIGPIPE */
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return SAASD_EIO; /* peer closed */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return SAASD_EIO;
        int rc = wait_fd(fd, POLLOUT, deadline_ns);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int wire_send(int fd, struct wire_buf *b, int64_t deadline_ns)
{
    if (b->failed || b->len < 5)
        return SAASD_ENOMEM;
    uint32_t l = (uint32_t)(b->len - 4);
    memcpy(b->p, &l, 4);
    return send_all(fd, b->p, b->len, deadline_ns);
}

static int parse(struct wire_msg *m, size_t len)
{
    m->type = (unsigned char)m->buf[0];
    size_t pos = 1, n = 0;
    while (pos < len) { /* count first, then fill */
        uint32_t l;
        if (len - pos < 4)
            return SAASD_EINVAL;
        memcpy(&l, m->buf + pos, 4);
        pos += 4;
        if (l != WIRE_NULL) {
            if (len - pos < (size_t)l + 1)
                return SAASD_EINVAL;
            pos += (size_t)l + 1;
        }
        if (++n > WIRE_MAX_FIELDS)
            return SAASD_EINVAL;
    }
    m->f = calloc(n ? n : 1, sizeof *m->f);
    if (!m->f)
        return SAASD_ENOMEM;
    pos = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t l;
        memcpy(&l, m->buf + pos, 4);
        pos += 4;
        if (l == WIRE_NULL)
            continue;
        m->f[i].p = m->buf + pos;
        m->f[i].len = l;
        pos += (size_t)l + 1;
    }
    m->n = n;
    return 0;
}

#define RX_CHUNK 16384 /* read at least this much at once: most frames fit, a few share a read */

/* Room for at least want bytes in rx (want <= max frame + 4, checked by the caller). */
static int rx_reserve(struct wire_rx *rx, size_t want)
{
    if (want < RX_CHUNK)
        want = RX_CHUNK;
    if (rx->cap >= want)
        return 0;
    char *p = realloc(rx->p, want);
    if (!p)
        return SAASD_ENOMEM;
    rx->p = p;
    rx->cap = want;
    return 0;
}

/* The first whole frame in rx into out (1), 0 when it is not all there, or an error. */
static int rx_take(struct wire_rx *rx, size_t max, struct wire_msg *out)
{
    uint32_t len;
    if (rx->len < 4)
        return 0;
    memcpy(&len, rx->p, 4);
    if (len < 1)
        return SAASD_EINVAL;
    if (len > max)
        return SAASD_ETOOBIG;
    if (rx->len - 4 < len)
        return 0;
    if (!(out->buf = malloc(len)))
        return SAASD_ENOMEM;
    memcpy(out->buf, rx->p + 4, len);
    rx->len -= 4 + (size_t)len;
    memmove(rx->p, rx->p + 4 + len, rx->len);
    int rc = parse(out, len);
    return rc < 0 ? rc : 1;
}

int wire_recv(int fd, int64_t deadline_ns, size_t max, struct wire_rx *rx, struct wire_msg *out)
{
    memset(out, 0, sizeof *out);
    int rc;
    while ((rc = rx_take(rx, max, out)) == 0) {
        uint32_t len = 0;
        if (rx->len >= 4)
            memcpy(&len, rx->p, 4);
        if ((rc = rx_reserve(rx, 4 + (size_t)len)) < 0)
            break;
        if (deadline_ns && deadline_ns - limits_now_ns() < (int64_t)WIRE_SLICE_MS * 1000000 &&
            (rc = wait_fd(fd, POLLIN, deadline_ns)) < 0)
            break; /* a read could sleep its whole slice past the deadline */
        ssize_t n = read(fd, rx->p + rx->len, rx->cap - rx->len);
        if (n > 0) {
            rx->len += (size_t)n;
            continue;
        }
        if (n == 0) {
            rc = SAASD_EIO; /* peer closed */
            break;
        }
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && rx->sliced) {
            if (deadline_ns && limits_now_ns() >= deadline_ns) { /* a slice passed with nothing */
                rc = SAASD_ETIMEOUT;
                break;
            }
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) { /* a non-blocking end: wait, even with no deadline */
            if ((rc = wait_fd(fd, POLLIN, deadline_ns)) < 0)
                break;
        } else if (errno != EINTR) {
            rc = SAASD_EIO;
            break;
        }
    }
    if (rc < 0)
        wire_msg_free(out);
    if (rx->len == 0 && rx->cap > 4 * RX_CHUNK) /* a large frame's room is not kept */
        wire_rx_free(rx);
    return rc < 0 ? rc : 0;
}

void wire_rx_free(struct wire_rx *rx)
{
    int sliced = rx->sliced;
    free(rx->p);
    memset(rx, 0, sizeof *rx);
    rx->sliced = sliced;
}

void wire_msg_free(struct wire_msg *m)
{
    free(m->buf);
    free(m->f);
    memset(m, 0, sizeof *m);
}

const char *wire_str(const struct wire_msg *m, size_t i)
{
    return i < m->n ? m->f[i].p : NULL;
}

long long wire_int(const struct wire_msg *m, size_t i, long long dflt)
{
    const char *s = wire_str(m, i);
    if (!s || !*s)
        return dflt;
    char *end;
    long long v = strtoll(s, &end, 10);
    return *end ? dflt : v;
}
