/* The store's flush order: a batch is reported (store_commit returns, the async callback runs)
 * only once a device flush has followed the write of the meta page that made it visible, and
 * under load a commit costs one flush rather than two.
 *
 * The test program itself defines pwrite, writev, fdatasync and fsync: LMDB (a shared library)
 * and the store then call these, which trace every write to data.mdb and every flush before
 * passing the call on to libc. Each batch's value carries a marker ("FLUSHTEST-nnnnnn"), so the
 * trace shows which data write first carried it; that commit's meta page is the first one
 * written after it (LMDB writes a commit's data pages, then its meta page, on one thread). A
 * write through a descriptor opened with O_DSYNC counts as a write followed by a flush, which
 * is what it is. */
#include "check.h"
#include "core/err.h"
#include "core/store.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_BATCHES 4096
#define MAX_EVENTS 65536
#define MARK "FLUSHTEST-"

/* ---- the trace --------------------------------------------------------------------------- */

static atomic_long clock_seq = 1;               /* one tick per traced event */
static atomic_long first_write[MAX_BATCHES];    /* tick of the data write first carrying batch i */
static atomic_long acked[MAX_BATCHES];          /* tick of batch i's report */
static int ack_rc[MAX_BATCHES];
static long meta_tick[MAX_EVENTS];              /* meta page writes, in order (writer thread) */
static long flush_start[MAX_EVENTS], flush_end[MAX_EVENTS];
static atomic_int n_meta, n_flush;
static atomic_int tracing;

static long tick(void) { return atomic_fetch_add(&clock_seq, 1); }

static int is_data_mdb(int fd)
{
    char link[64], path[512];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 9)
        return 0;
    path[n] = 0;
    return strcmp(path + n - 9, "/data.mdb") == 0;
}

static void note_markers(const void *buf, size_t len, long t)
{
    const char *p = buf, *end = p + len;
    while (p < end && (p = memmem(p, (size_t)(end - p), MARK, sizeof MARK - 1)) != NULL) {
        p += sizeof MARK - 1;
        if (end - p < 6)
            break;
        int id = atoi((char[7]){p[0], p[1], p[2], p[3], p[4], p[5], 0});
        long none = 0;
        if (id >= 0 && id < MAX_BATCHES)
            atomic_compare_exchange_strong(&first_write[id], &none, t);
    }
}

static void note_flush(long start)
{
    int i = atomic_fetch_add(&n_flush, 1);
    if (i < MAX_EVENTS) {
        flush_start[i] = start;
        flush_end[i] = tick();
    }
}

static void note_write(int fd, const struct iovec *iov, int n, off_t off, ssize_t rc)
{
    if (rc <= 0 || !atomic_load(&tracing) || !is_data_mdb(fd))
        return;
    long t = tick();
    if (off >= 0 && off < 2 * 4096) { /* LMDB's two meta pages */
        int i = atomic_fetch_add(&n_meta, 1);
        if (i < MAX_EVENTS)
            meta_tick[i] = t;
    } else {
        for (int k = 0; k < n; k++)
            note_markers(iov[k].iov_base, iov[k].iov_len, t);
    }
    if (fcntl(fd, F_GETFL) & O_DSYNC)
        note_flush(t);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    ssize_t rc = real(fd, buf, count, offset);
    struct iovec v = {(void *)(uintptr_t)buf, count};
    note_write(fd, &v, 1, offset, rc);
    return rc;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    static ssize_t (*real)(int, const struct iovec *, int);
    if (!real)
        real = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    off_t at = lseek(fd, 0, SEEK_CUR); /* LMDB seeks before a writev: the data pages */
    ssize_t rc = real(fd, iov, iovcnt);
    note_write(fd, iov, iovcnt, at < 2 * 4096 ? 2 * 4096 : at, rc);
    return rc;
}

static int traced_sync(const char *name, int fd)
{
    static int (*real_fdatasync)(int), (*real_fsync)(int);
    if (!real_fdatasync) {
        real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
        real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    int traced = atomic_load(&tracing) && is_data_mdb(fd);
    long start = traced ? tick() : 0;
    int rc = name[1] == 'd' ? real_fdatasync(fd) : real_fsync(fd);
    if (traced && rc == 0)
        note_flush(start);
    return rc;
}

int fdatasync(int fd) { return traced_sync("fdatasync", fd); }
int fsync(int fd) { return traced_sync("fsync", fd); }

/* ---- checks ------------------------------------------------------------------------------- */

/* 1 when batch i was reported after a flush that started after its meta page was written. */
static int acked_after_flush_of_its_meta(int i)
{
    long w = atomic_load(&first_write[i]), a = atomic_load(&acked[i]);
    if (!w || !a)
        return 0;
    int nm = atomic_load(&n_meta), nf = atomic_load(&n_flush);
    long meta = 0;
    for (int m = 0; m < nm && m < MAX_EVENTS && !meta; m++)
        if (meta_tick[m] > w)
            meta = meta_tick[m];
    if (!meta || meta > a)
        return 0;
    for (int f = 0; f < nf && f < MAX_EVENTS; f++)
        if (flush_start[f] >= meta && flush_end[f] < a) /* >=: the O_DSYNC meta write itself */
            return 1;
    return 0;
}

static void reset_trace(void)
{
    for (int i = 0; i < MAX_BATCHES; i++) {
        atomic_store(&first_write[i], 0);
        atomic_store(&acked[i], 0);
        ack_rc[i] = -1;
    }
    atomic_store(&n_meta, 0);
    atomic_store(&n_flush, 0);
}

static void on_done(void *arg, int rc)
{
    int i = (int)(intptr_t)arg;
    ack_rc[i] = rc;
    atomic_store(&acked[i], tick());
}

static struct store_batch *marked_batch(int i, const char *key)
{
    struct store_batch *b;
    char v[64];
    snprintf(v, sizeof v, "{\"v\":\"" MARK "%06d\"}", i);
    if (store_batch_new(&b))
        abort();
    store_batch_put(b, STORE_AUDIT, key, strlen(key), v, strlen(v));
    return b;
}

static int wait_acked(int n)
{
    double until = check_now_ms() + 60000;
    for (int i = 0; i < n; i++)
        while (!atomic_load(&acked[i]))
            if (check_now_ms() > until)
                return 0;
            else
                usleep(1000);
    return 1;
}

/* One batch on a quiet store: nothing else will commit after it, so the store must flush on
 * its own before reporting it. */
static void quiet_batch_waits_for_a_flush_after_its_meta_page(const char *dir)
{
    struct store *s;
    CHECK(store_open(dir, NULL, &s) == 0, "a durable store opens");
    reset_trace();
    atomic_store(&tracing, 1);
    struct store_batch *b = marked_batch(0, "quiet");
    int rc = store_commit(s, b);
    atomic_store(&acked[0], tick());
    atomic_store(&tracing, 0);
    store_batch_free(b);
    CHECK(rc == 0, "a lone batch commits");
    CHECK(acked_after_flush_of_its_meta(0),
          "a lone batch is reported only after a flush that followed its commit's meta page write");
    store_close(s);
}

/* Thousands of batches in flight: every one is reported only after a flush covering its meta
 * page, and a commit costs fewer than two flushes (the next commit's data flush covers the
 * previous meta page). */
static void loaded_batches_wait_and_share_flushes(const char *dir)
{
    struct store *s;
    struct store_options opt = {.max_group = 64};
    CHECK(store_open(dir, &opt, &s) == 0, "the store opens again with groups of at most 64");
    reset_trace();
    atomic_store(&tracing, 1);
    struct store_stats before, after;
    store_get_stats(s, &before);
    const int n = 3000;
    int submitted = 1;
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%06d", (i * 7919) % n); /* spread over the database */
        struct store_batch *b = marked_batch(i, key);
        if (store_commit_async(s, b, on_done, (void *)(intptr_t)i) != 0) {
            store_batch_free(b);
            submitted = 0;
        }
    }
    int all = submitted && wait_acked(n);
    atomic_store(&tracing, 0);
    store_get_stats(s, &after);
    CHECK(all, "3000 async batches are all reported");
    int ok = 0, ordered = 0;
    for (int i = 0; i < n; i++) {
        ok += ack_rc[i] == 0;
        ordered += ack_rc[i] == 0 && acked_after_flush_of_its_meta(i);
    }
    printf("# %d committed, %d reported after a flush covering their meta page\n", ok, ordered);
    CHECK(ok == n, "every batch commits");
    CHECK(ordered == n, "every batch is reported only after a flush that followed its commit's meta page write");
    uint64_t txns = after.transactions - before.transactions;
    int flushes = atomic_load(&n_flush);
    printf("# %llu transactions, %d flushes (fdatasync, fsync or O_DSYNC writes of data.mdb)\n",
           (unsigned long long)txns, flushes);
    CHECK(txns > 10 && (double)flushes < 1.5 * (double)txns,
          "with batches queued behind it a commit costs one flush, not two");
    store_close(s);
}

/* A batch refused because of a key the previous commit wrote is reported only once that
 * commit is durable: otherwise a webhook could be answered "already recorded" for a record a
 * crash then undoes. */
static void refusal_waits_for_the_write_it_saw(const char *dir)
{
    struct store *s;
    CHECK(store_open(dir, NULL, &s) == 0, "the store opens a third time");
    reset_trace();
    atomic_store(&tracing, 1);
    const int pairs = 200;
    for (int p = 0; p < pairs; p++) {
        char key[32];
        snprintf(key, sizeof key, "guard%06d", p);
        struct store_batch *w = marked_batch(2 * p, key), *r;
        if (store_batch_new(&r))
            abort();
        store_batch_require_absent(r, STORE_AUDIT, key, strlen(key));
        store_batch_put(r, STORE_AUDIT, "never", 5, "x", 1);
        store_commit_async(s, w, on_done, (void *)(intptr_t)(2 * p));
        store_commit_async(s, r, on_done, (void *)(intptr_t)(2 * p + 1));
    }
    int all = wait_acked(2 * pairs);
    atomic_store(&tracing, 0);
    int refused = 0, after_durable = 0;
    for (int p = 0; p < pairs; p++) {
        if (ack_rc[2 * p] != 0 || ack_rc[2 * p + 1] != SAASD_EEXIST)
            continue;
        refused++;
        /* the refusal's report comes after a flush that covered the write it was refused by */
        long a = acked[2 * p + 1];
        atomic_store(&acked[2 * p + 1], 0);
        long saved = atomic_exchange(&acked[2 * p], a);
        after_durable += acked_after_flush_of_its_meta(2 * p);
        atomic_store(&acked[2 * p], saved);
        atomic_store(&acked[2 * p + 1], a);
    }
    CHECK(all && refused == pairs, "each guard behind a write of its key is refused");
    CHECK(after_durable == pairs,
          "a refusal is reported only after the write that caused it is durable");
    store_close(s);
}

int main(void)
{
    char *dir = check_tmpdir("flush");
    quiet_batch_waits_for_a_flush_after_its_meta_page(dir);
    loaded_batches_wait_and_share_flushes(dir);
    refusal_waits_for_the_write_it_saw(dir);
    check_rm_rf(dir);
    free(dir);
    return CHECK_DONE();
}
