/* Messages between the daemon and its rule workers (engine-internal).
 *
 * A stream socket (socketpair AF_UNIX SOCK_STREAM: no size limit per message, unlike
 * SOCK_SEQPACKET whose messages must fit the socket buffer) carries frames:
 *   u32 length (of what follows, host order: both ends are the same build), u8 type,
 *   then fields, each u32 length + bytes; length WIRE_NULL marks an absent (NULL) field.
 * A frame is at most `max` bytes (the reader refuses larger ones before allocating).
 * The parent's socket is non-blocking and every send/receive has a deadline; the worker's is
 * blocking (deadline 0 = wait for ever: the parent is the one that kills). */
#ifndef SAASD_ENGINE_WIRE_H
#define SAASD_ENGINE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_NULL 0xffffffffu

/* Message types, both directions (the reply of each request is named next to it). */
enum wire_type {
    W_LOAD = 1,    /* parent: slot, path, source, cpu_ms          -> W_LOADED */
    W_LOADED,      /* worker: rc, tainted, problems...               */
    W_CALL,        /* parent: slot, path, offer, handler, sub, arg|NULL, cpu_ms, http_budget_ms */
    W_RESULT,      /* worker: result fields, then the writes (see worker.c) */
    W_STORE_GET,   /* worker: key                                  -> W_STORE_VAL */
    W_STORE_VAL,   /* parent: rc, value|NULL */
    W_HTTP,        /* worker: method, url, body|NULL, timeout_ms, name, value, ... -> W_HTTP_RESP */
    W_HTTP_RESP,   /* parent: error|NULL, status, headers, body */
    W_LOG,         /* worker: level, msg, name, value, ...   (no reply) */
    W_HELLO,       /* worker, once when it starts */
    W_LANDING,     /* parent: slot                                 -> W_LANDING_JSON */
    W_LANDING_JSON,/* worker: rc, the rule's landing table as JSON|NULL */
    W_EFFECT,      /* worker: kind, args... (no reply): ctx.meter / ctx.timer, kept by the
                      daemon until W_RESULT and applied only when the call succeeds */
};

struct wire_buf {
    char *p;
    size_t len, cap;
    int failed; /* an allocation failed: the frame is unusable */
};

struct wire_field {
    const char *p; /* NULL for an absent field; otherwise NUL-terminated (len excludes it) */
    size_t len;
};

struct wire_msg {
    int type;
    size_t n;
    struct wire_field *f;
    char *buf;
};

void wire_begin(struct wire_buf *b, enum wire_type type);
void wire_put(struct wire_buf *b, const void *p, size_t len); /* p NULL: absent field */
void wire_put_str(struct wire_buf *b, const char *s);          /* NULL: absent field */
void wire_put_int(struct wire_buf *b, long long v);
void wire_buf_free(struct wire_buf *b);

/* 0, SAASD_ETIMEOUT (deadline_ns passed, CLOCK_MONOTONIC; 0 = none), SAASD_EIO (peer gone),
 * SAASD_ENOMEM (the frame failed to build). */
int wire_send(int fd, struct wire_buf *b, int64_t deadline_ns);
/* Bytes read from a connection beyond the frames taken so far: one per connection end, zeroed
 * at first. A frame usually arrives whole, and the next may be right behind it (W_LOG, W_EFFECT
 * need no reply), so wire_recv reads whatever is there in one read() instead of the length and
 * then the body: a rule call costs that many fewer system calls on each side. */
struct wire_rx {
    char *p;
    size_t len, cap;
    int sliced; /* the end is blocking with slice timeouts (wire_daemon_end), kept by wire_rx_free */
};
void wire_rx_free(struct wire_rx *rx);

/* The daemon's end of a worker connection is blocking, with SO_RCVTIMEO and SO_SNDTIMEO of this
 * many milliseconds (pool.c): a read waits for the reply itself instead of a poll() before every
 * read (a syscall and a wake-up path less per message; a reply is rarely there the moment it is
 * asked for), and wakes up at least this often to look at the deadline. */
#define WIRE_SLICE_MS 10
/* Make fd such an end, read into rx: 0 or SAASD_EIO. */
int wire_daemon_end(int fd, struct wire_rx *rx);

/* Like wire_send; SAASD_ETOOBIG for a frame over max bytes, SAASD_EINVAL for a malformed one.
 * With a deadline it reads at once while more than WIRE_SLICE_MS are left (on the daemon's end
 * the read itself waits, one slice at a time), and waits for the fd with poll() when less is
 * left, or after a read on a non-blocking end found nothing: the deadline holds on both. Release with wire_msg_free. */
int wire_recv(int fd, int64_t deadline_ns, size_t max, struct wire_rx *rx, struct wire_msg *out);
void wire_msg_free(struct wire_msg *m);

/* Field i as a string / integer (absent or missing: NULL / dflt). */
const char *wire_str(const struct wire_msg *m, size_t i);
long long wire_int(const struct wire_msg *m, size_t i, long long dflt);

#endif
