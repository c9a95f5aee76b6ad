/* Durability: a write the store acknowledged (store_commit returned 0) survives SIGKILL.
 *
 * A child process commits batches from several threads as fast as it can and reports each key
 * to the parent through a pipe only after store_commit() returned 0. The parent kills the
 * child with SIGKILL at a random moment, reopens the store and looks for every acknowledged
 * key. 20 rounds on the same directory; acknowledged keys of earlier rounds must survive too. */
#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "core/store.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 20, CHILD_THREADS = 4, REC = 32 };

struct child_ctx {
    struct store *s;
    int fd;
    int round;
    int thread;
};

static void value_for(const char *key, char *out, size_t n) { snprintf(out, n, "value-of-%s", key); }

/* A record is REC bytes: the key, NUL-padded. Writes below PIPE_BUF are atomic, so the parent
 * never sees half a record even when the child dies mid-write. */
static void *child_writer(void *arg)
{
    struct child_ctx *c = arg;
    struct store_batch *b;
    if (store_batch_new(&b))
        _exit(3);
    for (unsigned i = 0;; i++) {
        char rec[REC] = {0}, val[64];
        snprintf(rec, sizeof rec, "r%02d-t%d-%08u", c->round, c->thread, i);
        value_for(rec, val, sizeof val);
        store_batch_clear(b);
        store_batch_put(b, STORE_RULE_KV, rec, strlen(rec), val, strlen(val));
        store_batch_append(b, STORE_INBOX, NULL, 0, rec, strlen(rec));
        if (store_commit(c->s, b) != 0)
            _exit(4);
        if (write(c->fd, rec, REC) != REC)
            _exit(5);
    }
    return NULL;
}

static void child_main(const char *dir, int fd, int round)
{
    struct store *s;
    if (store_open(dir, NULL, &s))
        _exit(2);
    char ready[REC] = "READY";
    if (write(fd, ready, REC) != REC)
        _exit(5);
    pthread_t t[CHILD_THREADS];
    struct child_ctx c[CHILD_THREADS];
    for (int i = 0; i < CHILD_THREADS; i++) {
        c[i] = (struct child_ctx){s, fd, round, i};
        pthread_create(&t[i], NULL, child_writer, &c[i]);
    }
    for (;;)
        pause();
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct acked {
    char (*keys)[REC];
    size_t n, cap;
};

/* Reads whole records from fd into acked; returns -1 on EOF. */
static int drain(int fd, char *buf, size_t *have, struct acked *a, int *ready)
{
    ssize_t r = read(fd, buf + *have, 4096 - *have);
    if (r <= 0)
        return r == 0 || errno != EINTR ? -1 : 0;
    *have += (size_t)r;
    size_t off = 0;
    for (; *have - off >= REC; off += REC) {
        if (!strcmp(buf + off, "READY")) {
            *ready = 1;
            continue;
        }
        if (a->n == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 1024;
            a->keys = realloc(a->keys, a->cap * REC);
            if (!a->keys)
                abort();
        }
        memcpy(a->keys[a->n], buf + off, REC);
        a->keys[a->n][REC - 1] = 0;
        a->n++;
    }
    memmove(buf, buf + off, *have - off);
    *have -= off;
    return 0;
}

/* Kills the child at a random moment after it opened the store; collects every key it
 * acknowledged. Returns 0 when the child died by our SIGKILL. */
static int run_round(const char *dir, int round, struct acked *a, unsigned *delay_ms)
{
    int fds[2];
    if (pipe(fds))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        child_main(dir, fds[1], round);
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    size_t have = 0;
    int ready = 0, eof = 0;
    while (!ready && !eof)
        eof = drain(fds[0], buf, &have, a, &ready) < 0;
    *delay_ms = 5 + (unsigned)(rand() % 76);
    double deadline = now_ms() + *delay_ms;
    /* Keep reading while we wait, so the child never blocks on a full pipe. */
    while (!eof) {
        double left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, (int)left + 1) > 0)
            eof = drain(fds[0], buf, &have, a, &ready) < 0;
    }
    kill(pid, SIGKILL);
    while (!eof)
        eof = drain(fds[0], buf, &have, a, &ready) < 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : -1;
}

static int count_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (*(size_t *)arg)++;
    return 0;
}

int main(void)
{
    log_set_level(LOG_WARN);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    printf("# seed %u\n", seed);
    char *dir = check_tmpdir("store-crash");
    struct acked a = {0};
    int killed = 0, opened = 0, lost_rounds = 0, after_ok = 0, rounds_with_acks = 0;
    size_t lost_total = 0;

    for (int round = 0; round < ROUNDS; round++) {
        size_t before = a.n;
        unsigned delay = 0;
        fflush(stdout);
        if (run_round(dir, round, &a, &delay) == 0)
            killed++;
        if (a.n > before)
            rounds_with_acks++;

        struct store *s;
        if (store_open(dir, NULL, &s) != 0) {
            printf("# round %d: store did not reopen after SIGKILL\n", round);
            continue;
        }
        opened++;
        size_t lost = 0;
        for (size_t i = 0; i < a.n; i++) { /* this round's keys and every earlier round's */
            void *v;
            size_t n;
            char want[64];
            value_for(a.keys[i], want, sizeof want);
            if (store_get(s, STORE_RULE_KV, a.keys[i], strlen(a.keys[i]), &v, &n) == 0) {
                if (n != strlen(want) || memcmp(v, want, n))
                    lost++;
                free(v);
            } else {
                lost++;
            }
        }
        size_t entries = 0;
        int scan_rc = store_scan(s, STORE_RULE_KV, NULL, 0, count_fn, &entries);
        lost_total += lost;
        if (lost || scan_rc)
            lost_rounds++;

        char k[32], v[32];
        snprintf(k, sizeof k, "after-kill-%02d", round);
        snprintf(v, sizeof v, "written-after-%02d", round);
        struct store_batch *b;
        store_batch_new(&b);
        store_batch_put(b, STORE_META, k, strlen(k), v, strlen(v));
        int rc = store_commit(s, b);
        store_batch_free(b);
        void *got = NULL;
        size_t glen = 0;
        if (!rc && !store_get(s, STORE_META, k, strlen(k), &got, &glen) && glen == strlen(v) &&
            !memcmp(got, v, glen))
            after_ok++;
        free(got);
        printf("# round %2d: killed after %2u ms, %zu acknowledged this round, %zu in total, "
               "%zu missing, %zu keys on disk\n",
               round, delay, a.n - before, a.n, lost, entries);
        store_close(s);
    }

    CHECK(killed == ROUNDS, "the writer process was killed with SIGKILL in each of 20 rounds");
    CHECK(rounds_with_acks >= ROUNDS / 2 && a.n > 0,
          "kills landed while the writer was acknowledging commits");
    CHECK(opened == ROUNDS, "the environment opens cleanly after each of 20 SIGKILLs");
    CHECK(opened == ROUNDS && lost_rounds == 0 && lost_total == 0,
          "a write acknowledged as durable survives SIGKILL of the writer (20 rounds)");
    CHECK(after_ok == ROUNDS, "writes after each reopen are committed and readable");

    char p[300];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
    free(dir);
    free(a.keys);
    return CHECK_DONE();
}
