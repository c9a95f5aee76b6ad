/* LMDB store: reads and writes, atomic batches, group commit, monotonic appends, consistent
 * snapshots under concurrent writes, schema migration, map growth and a map that cannot grow. */
#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "core/store.h"

#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY(s) (s), strlen(s)

/* Removes a test's LMDB directory. */
static void store_rmdir(const char *dir)
{
    char p[300];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static void be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

static uint64_t from_be64(const void *p)
{
    const unsigned char *c = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | c[i];
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int put1(struct store *s, enum store_db db, const char *k, const char *v)
{
    struct store_batch *b;
    if (store_batch_new(&b))
        return SAASD_ENOMEM;
    int rc = store_batch_put(b, db, KEY(k), v, strlen(v));
    if (!rc)
        rc = store_commit(s, b);
    store_batch_free(b);
    return rc;
}

static int value_is(struct store *s, enum store_db db, const char *k, const char *want)
{
    void *v;
    size_t n;
    if (store_get(s, db, KEY(k), &v, &n))
        return 0;
    int same = n == strlen(want) && !memcmp(v, want, n);
    free(v);
    return same;
}

/* ---- a gate: an update function that holds the writer until the test opens it ------------ */

/* While the writer waits in gate_update, the test queues more batches; they then form one
 * group, which lets a test put chosen batches into the same transaction. */
struct gate {
    sem_t entered, release;
};

static int gate_update(void *arg, const void *old, size_t oldlen, void **nv, size_t *nl)
{
    struct gate *g = arg;
    sem_post(&g->entered);
    sem_wait(&g->release);
    *nv = NULL;
    return 0;
}

struct async_result {
    atomic_int calls;
    atomic_int rc;
};

static void async_done(void *arg, int rc)
{
    struct async_result *r = arg;
    r->rc = rc;
    r->calls++;
}

/* Queues a gate batch and waits until the writer is inside it. */
static void gate_close(struct store *s, struct gate *g, struct async_result *r)
{
    struct store_batch *b;
    sem_init(&g->entered, 0, 0);
    sem_init(&g->release, 0, 0);
    store_batch_new(&b);
    store_batch_update(b, STORE_META, KEY("gate"), gate_update, g);
    store_commit_async(s, b, async_done, r);
    sem_wait(&g->entered);
}

static void wait_calls(struct async_result *r, int n)
{
    for (int i = 0; i < 10000 && r->calls < n; i++)
        usleep(1000);
}

/* ---- basics ---------------------------------------------------------------------------------- */

struct collect {
    char keys[16][32];
    int n;
    int stop_at;
};

static int collect_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct collect *c = arg;
    if (c->n < 16 && klen < 32) {
        memcpy(c->keys[c->n], key, klen);
        c->keys[c->n][klen] = 0;
    }
    c->n++;
    return c->stop_at && c->n == c->stop_at ? 42 : 0;
}

static void test_basics(void)
{
    char *dir = check_tmpdir("store-basic");
    struct store *s;
    CHECK(store_open(dir, NULL, &s) == 0, "a store opens in a fresh directory");
    unsigned ver = 0;
    store_schema_version(s, &ver);
    CHECK(ver == STORE_SCHEMA_VERSION, "a fresh store carries the current schema version");

    int rc = put1(s, STORE_SUBSCRIPTIONS, "sub-b", "{\"b\":1}");
    rc |= put1(s, STORE_SUBSCRIPTIONS, "sub-a", "{\"a\":1}");
    rc |= put1(s, STORE_SUBSCRIPTIONS, "sub-c", "{\"c\":1}");
    rc |= put1(s, STORE_SUBSCRIPTIONS, "other", "x");
    CHECK(rc == 0, "committed puts return 0");

    void *v = NULL;
    size_t n = 0;
    rc = store_get(s, STORE_SUBSCRIPTIONS, KEY("sub-a"), &v, &n);
    CHECK(rc == 0 && n == 7 && !strcmp(v, "{\"a\":1}"),
          "get returns the committed value, NUL-terminated");
    free(v);
    CHECK(store_get(s, STORE_OPERATIONS, KEY("sub-a"), &v, &n) == SAASD_ENOTFOUND && !v,
          "databases are separate: a key of one is absent from another");
    CHECK(store_get(s, STORE_SUBSCRIPTIONS, KEY("nope"), &v, &n) == SAASD_ENOTFOUND,
          "get of an absent key reports not found");

    CHECK(put1(s, STORE_SUBSCRIPTIONS, "sub-a", "{\"a\":2}") == 0 &&
              value_is(s, STORE_SUBSCRIPTIONS, "sub-a", "{\"a\":2}"),
          "a put overwrites the previous value");

    struct collect c = {0};
    rc = store_scan(s, STORE_SUBSCRIPTIONS, "sub-", 4, collect_fn, &c);
    CHECK(rc == 0 && c.n == 3 && !strcmp(c.keys[0], "sub-a") && !strcmp(c.keys[1], "sub-b") &&
              !strcmp(c.keys[2], "sub-c"),
          "scan visits exactly the keys with the prefix, in key order");
    struct collect all = {0};
    store_scan(s, STORE_SUBSCRIPTIONS, NULL, 0, collect_fn, &all);
    CHECK(all.n == 4 && !strcmp(all.keys[0], "other"), "scan with an empty prefix visits every key");
    size_t counted = 0;
    CHECK(store_count(s, STORE_SUBSCRIPTIONS, &counted) == 0 && counted == (size_t)all.n,
          "store_count gives the number of keys a full scan visits");
    struct collect stop = {.stop_at = 2};
    CHECK(store_scan(s, STORE_SUBSCRIPTIONS, "sub-", 4, collect_fn, &stop) == 42 && stop.n == 2,
          "a scan callback's non-zero return stops the scan and is returned");

    struct store_batch *b;
    store_batch_new(&b);
    store_batch_del(b, STORE_SUBSCRIPTIONS, KEY("sub-b"));
    store_batch_del(b, STORE_SUBSCRIPTIONS, KEY("never-there"));
    CHECK(store_commit(s, b) == 0 &&
              store_get(s, STORE_SUBSCRIPTIONS, KEY("sub-b"), &v, &n) == SAASD_ENOTFOUND,
          "del removes a key, and deleting an absent key is not an error");
    store_batch_free(b);

    char longkey[STORE_MAX_KEY + 2];
    memset(longkey, 'k', sizeof longkey);
    store_batch_new(&b);
    CHECK(store_batch_put(b, STORE_RULE_KV, longkey, sizeof longkey, "v", 1) == SAASD_ETOOBIG,
          "a key longer than LMDB accepts is refused when added to the batch");
    CHECK(store_batch_put(b, STORE_RULE_KV, "", 0, "v", 1) == SAASD_EINVAL,
          "an empty key is refused");
    store_batch_free(b);

    store_close(s);
    CHECK(store_open(dir, NULL, &s) == 0 && value_is(s, STORE_SUBSCRIPTIONS, "sub-a", "{\"a\":2}"),
          "committed data is there after close and reopen");
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

/* ---- atomic batches and guard keys -------------------------------------------------------------- */

static void test_batch_atomic(void)
{
    char *dir = check_tmpdir("store-atomic");
    struct store *s;
    store_open(dir, NULL, &s);
    put1(s, STORE_OPERATIONS, "op-1", "seen");

    struct store_stats before, after;
    struct gate g;
    struct async_result rg = {0}, r1 = {0}, r2 = {0}, r3 = {0};
    gate_close(s, &g, &rg);
    store_get_stats(s, &before);

    /* Three batches queued behind the gate: they will share one transaction. */
    struct store_batch *ok1, *dup, *ok2;
    store_batch_new(&ok1);
    store_batch_put(ok1, STORE_SUBSCRIPTIONS, KEY("s-1"), "one", 3);
    store_batch_new(&dup);
    store_batch_put(dup, STORE_SUBSCRIPTIONS, KEY("s-dup"), "dup", 3);
    store_batch_require_absent(dup, STORE_OPERATIONS, KEY("op-1"));
    store_batch_append(dup, STORE_INBOX, NULL, 0, "evt", 3);
    store_batch_new(&ok2);
    store_batch_require_absent(ok2, STORE_OPERATIONS, KEY("op-2"));
    store_batch_put(ok2, STORE_OPERATIONS, KEY("op-2"), "seen", 4);
    store_batch_put(ok2, STORE_SUBSCRIPTIONS, KEY("s-2"), "two", 3);
    store_commit_async(s, ok1, async_done, &r1);
    store_commit_async(s, dup, async_done, &r2);
    store_commit_async(s, ok2, async_done, &r3);
    sem_post(&g.release);
    wait_calls(&r3, 1);
    wait_calls(&rg, 1);
    store_get_stats(s, &after);

    CHECK(r1.calls == 1 && r1.rc == 0 && r3.calls == 1 && r3.rc == 0,
          "batches grouped with a refused batch still commit");
    CHECK(r2.calls == 1 && r2.rc == SAASD_EEXIST,
          "a batch whose guard key is present reports SAASD_EEXIST");
    void *v;
    size_t n;
    struct collect inbox = {0};
    store_scan(s, STORE_INBOX, NULL, 0, collect_fn, &inbox);
    CHECK(store_get(s, STORE_SUBSCRIPTIONS, KEY("s-dup"), &v, &n) == SAASD_ENOTFOUND &&
              inbox.n == 0,
          "a refused batch writes nothing, not even the operations before its guard");
    CHECK(value_is(s, STORE_SUBSCRIPTIONS, "s-1", "one") &&
              value_is(s, STORE_SUBSCRIPTIONS, "s-2", "two"),
          "the other batches' writes are all visible");
    /* Two transactions: the gate's own, then one for the three batches queued behind it. */
    CHECK(after.transactions - before.transactions == 2 &&
              after.batches_failed - before.batches_failed == 1,
          "the three batches shared one transaction (one fsync)");

    struct store_batch *b;
    store_batch_new(&b);
    store_batch_require_absent(b, STORE_OPERATIONS, KEY("op-3"));
    store_batch_put(b, STORE_OPERATIONS, KEY("op-3"), "seen", 4);
    int first = store_commit(s, b);
    int second = store_commit(s, b);
    CHECK(first == 0 && second == SAASD_EEXIST,
          "the same operation committed twice is applied once (second reports EEXIST)");
    store_batch_free(b);
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

/* store_batch_after_group: what the webhook handler relies on to wake the inbox workers once
 * per group instead of once per event. */
struct after_probe {
    struct async_result *done[3];
    atomic_int calls;
    int done_seen; /* done callbacks already run when the hook last ran (-1: never ran) */
};

static void after_hook(void *arg)
{
    struct after_probe *p = arg;
    p->done_seen = p->done[0]->calls + p->done[1]->calls + p->done[2]->calls;
    p->calls++;
}

static void test_after_group(void)
{
    char *dir = check_tmpdir("store-after");
    struct store *s;
    store_open(dir, NULL, &s);
    put1(s, STORE_OPERATIONS, "op-1", "seen");
    struct gate g;
    struct async_result rg = {0}, r[3] = {{0}}, rd = {0};
    struct after_probe p = {.done = {&r[0], &r[1], &r[2]}, .done_seen = -1};
    gate_close(s, &g, &rg);
    /* Two batches that commit and one refused, all with the hook, queued behind the gate: one
     * group. */
    const char *ops[3] = {"op-2", "op-1", "op-3"};
    for (int i = 0; i < 3; i++) {
        struct store_batch *b;
        store_batch_new(&b);
        store_batch_require_absent(b, STORE_OPERATIONS, KEY(ops[i]));
        store_batch_append(b, STORE_INBOX, NULL, 0, "evt", 3);
        store_batch_after_group(b, after_hook, &p);
        store_commit_async(s, b, async_done, &r[i]);
    }
    sem_post(&g.release);
    wait_calls(&r[2], 1);
    wait_calls(&rg, 1);
    for (int i = 0; i < 1000 && p.calls < 1; i++)
        usleep(1000);
    CHECK(p.calls == 1, "a group of several hooked batches calls the after-group hook once");
    CHECK(p.done_seen == 0, "the after-group hook runs before any done callback of its group (a committer told "
                            "of its batch may free what the hook uses)");

    /* A group whose only hooked batch is refused: no call. */
    struct gate g2;
    struct async_result rg2 = {0};
    gate_close(s, &g2, &rg2);
    struct store_batch *b;
    store_batch_new(&b);
    store_batch_require_absent(b, STORE_OPERATIONS, KEY("op-1"));
    store_batch_append(b, STORE_INBOX, NULL, 0, "evt", 3);
    store_batch_after_group(b, after_hook, &p);
    store_commit_async(s, b, async_done, &rd);
    sem_post(&g2.release);
    store_close(s); /* the notifier has reported everything once this returns */
    CHECK(rd.calls == 1 && rd.rc == SAASD_EEXIST && p.calls == 1,
          "a refused batch does not call the after-group hook (nothing new was stored)");
    store_rmdir(dir);
    free(dir);
}

/* ---- appends ---------------------------------------------------------------------------------- */

static int max_key_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    uint64_t *max = arg;
    uint64_t seq = from_be64((const char *)key + klen - 8);
    if (seq <= *max && *max != 0)
        return 1; /* out of order */
    *max = seq;
    return 0;
}

static int delete_all_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    return store_batch_del(arg, STORE_INBOX, key, klen);
}

/* Deletes every inbox entry, closes and reopens the store (*s), appends one entry: its
 * sequence number, 0 if that failed. */
static uint64_t seq_after_emptying(const char *dir, struct store **s, struct store_batch *b)
{
    store_batch_clear(b);
    store_scan(*s, STORE_INBOX, NULL, 0, delete_all_fn, b);
    store_commit(*s, b);
    store_close(*s);
    uint64_t seq = 0;
    store_batch_clear(b);
    if (store_open(dir, NULL, s) != 0)
        return 0;
    store_batch_append(b, STORE_INBOX, NULL, 0, "e", 1);
    if (store_commit(*s, b) != 0 || store_batch_seq(b, &seq) != 0)
        return 0;
    return seq;
}

static void test_append(void)
{
    char *dir = check_tmpdir("store-append");
    struct store *s;
    store_open(dir, NULL, &s);
    struct store_batch *b;
    store_batch_new(&b);
    store_batch_append(b, STORE_INBOX, NULL, 0, "e1", 2);
    store_batch_append(b, STORE_INBOX, NULL, 0, "e2", 2);
    store_batch_append(b, STORE_AUDIT, "sub-1", 5, "d1", 2);
    uint64_t first = 0, second = 0;
    int rc = store_commit(s, b);
    CHECK(rc == 0 && store_batch_seq(b, &first) == 0 && first >= 1,
          "a committed batch reports the sequence of its first append");
    store_batch_clear(b);
    store_batch_append(b, STORE_INBOX, NULL, 0, "e3", 2);
    store_commit(s, b);
    store_batch_seq(b, &second);
    CHECK(second == first + 3, "appends are numbered consecutively in commit order");

    unsigned char k[13];
    memcpy(k, "sub-1", 5);
    be64(k + 5, first + 2);
    void *v;
    size_t n;
    CHECK(store_get(s, STORE_AUDIT, k, sizeof k, &v, &n) == 0 && n == 2 && !memcmp(v, "d1", 2),
          "an append key is the prefix followed by the 8-byte big-endian sequence");
    free(v);
    uint64_t max = 0;
    CHECK(store_scan(s, STORE_INBOX, NULL, 0, max_key_fn, &max) == 0 && max == second,
          "appended keys scan in append order");
    /* An append whose key is not the last of its database (a prefix sorting before another's
     * keys): the writer's MDB_APPEND is refused and the ordinary put stores it. */
    store_batch_clear(b);
    store_batch_append(b, STORE_AUDIT, "sub-2", 5, "d2", 2);
    store_batch_append(b, STORE_AUDIT, "sub-0", 5, "d0", 2);
    rc = store_commit(s, b);
    uint64_t third = 0;
    store_batch_seq(b, &third);
    memcpy(k, "sub-0", 5);
    be64(k + 5, third + 1);
    CHECK(rc == 0 && store_get(s, STORE_AUDIT, k, sizeof k, &v, &n) == 0 && n == 2 && !memcmp(v, "d0", 2),
          "an append under a prefix that sorts before existing keys is stored too");
    if (rc == 0)
        free(v);

    /* Empty the inbox: a counter derived from existing keys would then start over. */
    uint64_t after = seq_after_emptying(dir, &s, b);
    CHECK(after > second, "append numbers keep growing across reopen, even after deletes");
    store_batch_free(b);
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

/* meta keeps a bound above every sequence number handed out, raised a block at a time rather
 * than with every commit: after more appends than any one block, over many commits, with the
 * store then emptied and reopened, new numbers must still be above every one used before. */
static void test_append_bound_raised(void)
{
    char *dir = check_tmpdir("store-append-bound");
    struct store *s;
    store_open(dir, NULL, &s);
    struct store_batch *b;
    store_batch_new(&b);
    uint64_t last = 0, seq = 0;
    int failed = 0;
    for (int commit = 0; commit < 25; commit++) {
        store_batch_clear(b);
        for (int i = 0; i < 500; i++)
            store_batch_append(b, STORE_INBOX, NULL, 0, "e", 1);
        failed |= store_commit(s, b) != 0 || store_batch_seq(b, &seq) != 0;
        last = seq + 499;
    }
    CHECK(!failed && last >= 12500, "12 500 appends over 25 commits are numbered");
    uint64_t after = seq_after_emptying(dir, &s, b);
    CHECK(after > last, "after reopening an emptied store, appends are numbered above every number used before");
    store_batch_free(b);
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

static int count_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (*(uint64_t *)arg)++;
    return 0;
}

/* The writer keeps data.mdb written (zeros) ahead of LMDB's last page, so that a commit does
 * not extend the file (and then sync ext4's allocation metadata too): the file is longer than
 * the pages in use, the store reopens with every value, and LMDB's pages stay intact. */
static void test_file_written_ahead(void)
{
    char *dir = check_tmpdir("store-ahead");
    struct store *s;
    store_open(dir, NULL, &s);
    struct store_batch *b;
    store_batch_new(&b);
    char val[3000];
    memset(val, 'v', sizeof val);
    int failed = 0;
    for (int commit = 0; commit < 20; commit++) {
        store_batch_clear(b);
        for (int i = 0; i < 20; i++)
            store_batch_append(b, STORE_INBOX, NULL, 0, val, sizeof val);
        failed |= store_commit(s, b) != 0;
    }
    store_batch_free(b);
    store_close(s);

    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    MDB_env *env = NULL;
    MDB_envinfo info;
    MDB_stat ms;
    int ok = !failed && stat(path, &st) == 0 && mdb_env_create(&env) == 0 &&
             mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) == 0 && mdb_env_info(env, &info) == 0 &&
             mdb_env_stat(env, &ms) == 0;
    long long used = ok ? ((long long)info.me_last_pgno + 1) * ms.ms_psize : 0;
    if (env)
        mdb_env_close(env);
    CHECK(ok && st.st_size >= used + (1 << 20),
          "data.mdb is written at least 1 MiB beyond the pages LMDB uses after 1.2 MB of commits");

    uint64_t n = 0;
    CHECK(store_open(dir, NULL, &s) == 0 && store_scan(s, STORE_INBOX, NULL, 0, count_fn, &n) == 0 && n == 400,
          "a store written ahead reopens with every committed entry");
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

/* ---- read-modify-write ------------------------------------------------------------------------- */

static int incr_update(void *arg, const void *old, size_t oldlen, void **nv, size_t *nl)
{
    uint64_t n = 0;
    if (old && oldlen == 8)
        n = from_be64(old);
    unsigned char *out = malloc(8);
    if (!out)
        return SAASD_ENOMEM;
    be64(out, n + 1);
    *nv = out;
    *nl = 8;
    return 0;
}

static int refuse_update(void *arg, const void *old, size_t oldlen, void **nv, size_t *nl)
{
    return SAASD_ECONFLICT;
}

struct incr_ctx {
    struct store *s;
    int n;
};

static void *incr_thread(void *arg)
{
    struct incr_ctx *c = arg;
    struct store_batch *b;
    store_batch_new(&b);
    store_batch_update(b, STORE_RULE_KV, "offer\0count", 11, incr_update, NULL);
    for (int i = 0; i < c->n; i++)
        store_commit(c->s, b);
    store_batch_free(b);
    return NULL;
}

static void test_update(void)
{
    char *dir = check_tmpdir("store-update");
    struct store *s;
    store_open(dir, NULL, &s);
    pthread_t t[4];
    struct incr_ctx c = {s, 250};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, incr_thread, &c);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    void *v = NULL;
    size_t n = 0;
    store_get(s, STORE_RULE_KV, "offer\0count", 11, &v, &n);
    CHECK(n == 8 && from_be64(v) == 1000,
          "read-modify-write from concurrent threads loses no update (4 x 250 = 1000)");
    free(v);

    struct store_batch *b;
    store_batch_new(&b);
    store_batch_put(b, STORE_RULE_KV, KEY("written-before-refusal"), "x", 1);
    store_batch_update(b, STORE_RULE_KV, "offer\0count", 11, refuse_update, NULL);
    int rc = store_commit(s, b);
    CHECK(rc == SAASD_ECONFLICT &&
              store_get(s, STORE_RULE_KV, KEY("written-before-refusal"), &v, &n) == SAASD_ENOTFOUND,
          "an update function's error fails its whole batch with that code");
    store_batch_free(b);
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

/* ---- async commit and close ------------------------------------------------------------------- */

static int commit_in_scan_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct store *s = arg;
    struct store_batch *b;
    store_batch_new(&b);
    store_batch_put(b, STORE_META, KEY("from-scan"), "x", 1);
    int rc = store_commit(s, b);
    store_batch_free(b);
    return rc == SAASD_EINVAL ? 7 : 1;
}

static void test_async_and_close(void)
{
    char *dir = check_tmpdir("store-async");
    struct store *s;
    store_open(dir, NULL, &s);
    struct async_result r = {0};
    int queued = 0, rc;
    for (int i = 0; i < 200; i++) {
        struct store_batch *b;
        char k[32];
        snprintf(k, sizeof k, "a-%03d", i);
        store_batch_new(&b);
        store_batch_put(b, STORE_OUTBOX, KEY(k), k, strlen(k));
        if (store_commit_async(s, b, async_done, &r) == 0)
            queued++;
    }
    store_close(s); /* must drain the 200 queued batches first */
    CHECK(queued == 200 && r.calls == 200 && r.rc == 0,
          "store_close calls back every queued async batch before it returns");
    store_open(dir, NULL, &s);
    struct collect c = {0};
    store_scan(s, STORE_OUTBOX, "a-", 2, collect_fn, &c);
    CHECK(c.n == 200, "batches queued before store_close are all durable after reopen");

    int devnull = open("/dev/null", O_WRONLY);
    log_set_fd(devnull); /* the refusal is logged as an error: expected here */
    rc = store_scan(s, STORE_OUTBOX, "a-", 2, commit_in_scan_fn, s);
    log_set_fd(2);
    close(devnull);
    CHECK(rc == 7,
          "store_commit from inside a scan callback is refused instead of deadlocking");
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

/* ---- consistent snapshots ------------------------------------------------------------------------ */

struct snap_ctx {
    struct store *s;
    atomic_int stop;
    atomic_long scans, torn, writes, get_errors;
};

struct pair_seen {
    char a[32], b[32];
    int seen;
};

static int pair_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct pair_seen *p = arg;
    char *dst = klen == 6 && !memcmp(key, "pair-a", 6) ? p->a : klen == 6 && !memcmp(key, "pair-b", 6) ? p->b : NULL;
    if (dst) {
        size_t n = vlen < 16 ? vlen : 16; /* the counter; the rest is padding */
        memcpy(dst, val, n);
        dst[n] = 0;
        p->seen++;
    }
    return 0;
}

static void *snap_reader(void *arg)
{
    struct snap_ctx *c = arg;
    while (!c->stop) {
        struct pair_seen p;
        memset(&p, 0, sizeof p);
        if (store_scan(c->s, STORE_RULE_KV, "pair-", 5, pair_fn, &p) != 0) {
            c->get_errors++;
            continue;
        }
        c->scans++;
        if (p.seen == 2 && strcmp(p.a, p.b) != 0)
            c->torn++;
        void *v;
        size_t n;
        int rc = store_get(c->s, STORE_RULE_KV, KEY("pair-a"), &v, &n);
        if (rc == 0)
            free(v);
        else if (rc != SAASD_ENOTFOUND)
            c->get_errors++;
    }
    return NULL;
}

static void *snap_writer(void *arg)
{
    struct snap_ctx *c = arg;
    char val[2048];
    memset(val, '.', sizeof val);
    double end = now_s() + 1.5;
    for (long i = 0; now_s() < end; i++) {
        struct store_batch *b;
        store_batch_new(&b);
        char counter[24];
        snprintf(counter, sizeof counter, "%016ld", i % 10000000000000000L);
        memcpy(val, counter, 16);
        store_batch_put(b, STORE_RULE_KV, KEY("pair-a"), val, sizeof val);
        store_batch_append(b, STORE_OUTBOX, NULL, 0, val, sizeof val); /* grows the map */
        store_batch_put(b, STORE_RULE_KV, KEY("pair-b"), val, sizeof val);
        if (store_commit(c->s, b) == 0)
            c->writes++;
        store_batch_free(b);
    }
    c->stop = 1;
    return NULL;
}

static void test_snapshots(void)
{
    char *dir = check_tmpdir("store-snap");
    struct store_options opt = {.map_size = 256 << 10, .no_sync = 1};
    struct store *s;
    store_open(dir, &opt, &s);
    struct snap_ctx c = {.s = s};
    pthread_t r[4], w;
    for (int i = 0; i < 4; i++)
        pthread_create(&r[i], NULL, snap_reader, &c);
    pthread_create(&w, NULL, snap_writer, &c);
    pthread_join(w, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(r[i], NULL);
    struct store_stats st;
    store_get_stats(s, &st);
    printf("# snapshots: %ld scans, %ld writes, %llu map grows\n", (long)c.scans, (long)c.writes,
           (unsigned long long)st.map_grows);
    CHECK(c.scans > 100 && c.writes > 100 && c.torn == 0 && c.get_errors == 0,
          "readers never see a half-applied batch (two keys written together always match)");
    CHECK(st.map_grows > 0, "the map grew while readers were reading, without errors");
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

/* ---- group commit ---------------------------------------------------------------------------- */

struct group_ctx {
    struct store *s;
    int thread;
    int n;
    atomic_int *failures;
};

static void *group_thread(void *arg)
{
    struct group_ctx *c = arg;
    struct store_batch *b;
    store_batch_new(&b);
    for (int i = 0; i < c->n; i++) {
        char k[32];
        snprintf(k, sizeof k, "t%d-%05d", c->thread, i);
        store_batch_clear(b);
        store_batch_put(b, STORE_RULE_KV, KEY(k), k, strlen(k));
        if (store_commit(c->s, b) != 0)
            (*c->failures)++;
    }
    store_batch_free(b);
    return NULL;
}

static void test_group_commit(void)
{
    char *dir = check_tmpdir("store-group");
    struct store *s;
    store_open(dir, NULL, &s); /* durable: every transaction is fsync'd */
    enum { THREADS = 8, PER_THREAD = 2000 };
    pthread_t t[THREADS];
    struct group_ctx c[THREADS];
    atomic_int failures = 0;
    double t0 = now_s();
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct group_ctx){s, i, PER_THREAD, &failures};
        pthread_create(&t[i], NULL, group_thread, &c[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    struct store_stats st;
    store_get_stats(s, &st);
    printf("# group commit: %llu batches in %llu transactions (%.1f per transaction), %llu extra flushes, "
           "%.0f batches/s\n",
           (unsigned long long)st.batches, (unsigned long long)st.transactions,
           (double)st.batches / (double)(st.transactions ? st.transactions : 1), (unsigned long long)st.syncs,
           (double)st.batches / dt);
    CHECK(failures == 0 && st.batches == THREADS * PER_THREAD,
          "every batch of 8 threads x 2000 commits succeeds");
    /* Without group commit this is 1.0. A batch is reported after the next commit's flush, so
     * 8 committers split into about two groups in flight (3.4-3.8 per transaction measured;
     * 4.2-4.5 when each commit waited for its own meta page flush). */
    CHECK(st.transactions * 2 <= st.batches,
          "concurrent committers share transactions (at least 2 batches per transaction on average)");
    struct collect probe = {0};
    store_scan(s, STORE_RULE_KV, "t7-01999", 8, collect_fn, &probe);
    CHECK(probe.n == 1, "the last batch of the last thread is readable");
    store_close(s);
    store_rmdir(dir);
    free(dir);
}

/* ---- schema ---------------------------------------------------------------------------------- */

/* Builds a version-0 environment with plain LMDB: no schema_version and no append_seq in
 * meta; inbox holds seq 1..5 and audit one key with seq 9. */
static int make_v0(const char *dir, const char *version_or_null)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi inbox, audit, meta;
    int rc = mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 8);
    rc |= mdb_env_open(env, dir, 0, 0600);
    rc |= mdb_txn_begin(env, NULL, 0, &txn);
    rc |= mdb_dbi_open(txn, "inbox", MDB_CREATE, &inbox);
    rc |= mdb_dbi_open(txn, "audit", MDB_CREATE, &audit);
    rc |= mdb_dbi_open(txn, "meta", MDB_CREATE, &meta);
    for (int i = 1; i <= 5; i++) {
        unsigned char k[8];
        be64(k, (uint64_t)i);
        MDB_val kv = {8, k}, vv = {5, "event"};
        rc |= mdb_put(txn, inbox, &kv, &vv, 0);
    }
    unsigned char ak[13];
    memcpy(ak, "sub-x", 5);
    be64(ak + 5, 9);
    MDB_val akv = {13, ak}, avv = {8, "decision"};
    rc |= mdb_put(txn, audit, &akv, &avv, 0);
    if (version_or_null) {
        MDB_val mk = {14, "schema_version"}, mv = {strlen(version_or_null), (void *)(uintptr_t)version_or_null};
        rc |= mdb_put(txn, meta, &mk, &mv, 0);
    }
    rc |= mdb_txn_commit(txn);
    mdb_env_close(env);
    return rc;
}

static void test_schema(void)
{
    char *dir = check_tmpdir("store-v0");
    CHECK(make_v0(dir, NULL) == 0, "a version-0 environment can be built by hand");
    struct store *s;
    int rc = store_open(dir, NULL, &s);
    unsigned ver = 0;
    if (rc == 0)
        store_schema_version(s, &ver);
    CHECK(rc == 0 && ver == STORE_SCHEMA_VERSION, "a version-0 store is migrated on open");
    struct store_batch *b;
    store_batch_new(&b);
    store_batch_append(b, STORE_INBOX, NULL, 0, "new", 3);
    uint64_t seq = 0;
    if (rc == 0) {
        store_commit(s, b);
        store_batch_seq(b, &seq);
    }
    CHECK(seq == 10, "after migration appends continue after the largest old sequence (9)");
    struct collect c = {0};
    if (rc == 0)
        store_scan(s, STORE_INBOX, NULL, 0, collect_fn, &c);
    void *v = NULL;
    size_t vlen = 0;
    if (rc == 0)
        store_get(s, STORE_AUDIT, "sub-x\0\0\0\0\0\0\0\x09", 13, &v, &vlen);
    CHECK(c.n == 6 && vlen == 8 && !memcmp(v, "decision", 8), "migration keeps the old data");
    free(v);
    store_batch_free(b);
    if (rc == 0)
        store_close(s);
    store_rmdir(dir);
    free(dir);

    /* A newer schema: refused with a log line, and the data is left alone. */
    dir = check_tmpdir("store-v99");
    make_v0(dir, "99");
    int fds[2];
    if (pipe(fds))
        abort();
    log_set_fd(fds[1]);
    s = NULL;
    rc = store_open(dir, NULL, &s);
    log_set_fd(2);
    close(fds[1]);
    static char logbuf[4096];
    ssize_t n = read(fds[0], logbuf, sizeof logbuf - 1);
    close(fds[0]);
    logbuf[n > 0 ? n : 0] = 0;
    CHECK(rc == SAASD_ESCHEMA && s == NULL, "a store with a newer schema is refused with SAASD_ESCHEMA");
    CHECK(strstr(logbuf, "newer than this build") && strstr(logbuf, "found_version=99"),
          "the refusal logs the version found on disk");
    MDB_env *env;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    MDB_val mk = {14, "schema_version"}, mv = {0, NULL};
    mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 8);
    txn = NULL;
    int ok = !mdb_env_open(env, dir, MDB_RDONLY, 0600) && !mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) &&
             !mdb_dbi_open(txn, "meta", 0, &meta) && !mdb_get(txn, meta, &mk, &mv) && mv.mv_size == 2 &&
             !memcmp(mv.mv_data, "99", 2);
    CHECK(ok, "a refused newer store is left untouched");
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    store_rmdir(dir);
    free(dir);
}

/* ---- map growth and a full map ------------------------------------------------------------------ */

static void test_map_growth(void)
{
    char *dir = check_tmpdir("store-grow");
    struct store_options opt = {.map_size = 256 << 10};
    struct store *s;
    store_open(dir, &opt, &s);
    enum { N = 1200, VLEN = 4000 }; /* about 4.8 MB into a 256 KiB map */
    char *val = malloc(VLEN);
    int fails = 0;
    for (int i = 0; i < N; i += 10) {
        struct store_batch *b;
        store_batch_new(&b);
        for (int j = i; j < i + 10; j++) {
            char k[32];
            snprintf(k, sizeof k, "big-%05d", j);
            memset(val, 'a' + j % 26, VLEN);
            store_batch_put(b, STORE_RULE_KV, KEY(k), val, VLEN);
        }
        fails += store_commit(s, b) != 0;
        store_batch_free(b);
    }
    struct store_stats st;
    store_get_stats(s, &st);
    int bad = 0;
    for (int j = 0; j < N; j++) {
        char k[32];
        void *v;
        size_t n;
        snprintf(k, sizeof k, "big-%05d", j);
        if (store_get(s, STORE_RULE_KV, KEY(k), &v, &n) || n != VLEN ||
            ((char *)v)[VLEN - 1] != 'a' + j % 26)
            bad++;
        else
            free(v);
    }
    printf("# map grew %llu times to %llu bytes\n", (unsigned long long)st.map_grows,
           (unsigned long long)st.map_size);
    CHECK(fails == 0 && bad == 0, "4.8 MB written into a 256 KiB map are all readable");
    CHECK(st.map_grows > 0 && st.map_size > (256 << 10), "the map grew to hold them");
    store_close(s);
    free(val);
    store_rmdir(dir);
    free(dir);
}

static void test_map_full(void)
{
    char *dir = check_tmpdir("store-full");
    struct store_options opt = {.map_size = 256 << 10, .map_size_max = 256 << 10};
    struct store *s;
    store_open(dir, &opt, &s);
    char small[1000];
    int fails = 0;
    for (int i = 0; i < 40; i++) {
        char k[32];
        snprintf(k, sizeof k, "keep-%02d", i);
        memset(small, '0' + i % 10, sizeof small);
        struct store_batch *b;
        store_batch_new(&b);
        store_batch_put(b, STORE_RULE_KV, KEY(k), small, sizeof small);
        fails += store_commit(s, b) != 0;
        store_batch_free(b);
    }
    CHECK(fails == 0, "a 256 KiB map takes 40 KB");

    /* A batch too big for the largest map, grouped with a small one. */
    size_t big_len = 1 << 20;
    char *big = calloc(1, big_len);
    struct gate g;
    struct async_result rg = {0}, rbig = {0}, rsmall = {0};
    gate_close(s, &g, &rg);
    struct store_batch *bb, *sb;
    store_batch_new(&bb);
    store_batch_put(bb, STORE_RULE_KV, KEY("too-big"), big, big_len);
    store_batch_new(&sb);
    store_batch_put(sb, STORE_RULE_KV, KEY("small-after"), "fits", 4);
    store_commit_async(s, bb, async_done, &rbig);
    store_commit_async(s, sb, async_done, &rsmall);
    sem_post(&g.release);
    wait_calls(&rsmall, 1);
    CHECK(rbig.calls == 1 && rbig.rc == SAASD_EFULL,
          "a batch that cannot fit in the largest map fails with SAASD_EFULL");
    CHECK(rsmall.calls == 1 && rsmall.rc == 0 && value_is(s, STORE_RULE_KV, "small-after", "fits"),
          "a small batch in the same group as the failed one still commits");
    void *v;
    size_t n;
    CHECK(store_get(s, STORE_RULE_KV, KEY("too-big"), &v, &n) == SAASD_ENOTFOUND,
          "the failed batch left nothing behind");
    CHECK(put1(s, STORE_RULE_KV, "later", "ok") == 0 && value_is(s, STORE_RULE_KV, "later", "ok"),
          "the store stays usable after a map-full failure");
    store_close(s);

    /* Reopen with room to grow: everything acknowledged is intact. */
    opt.map_size_max = 0;
    int rc = store_open(dir, &opt, &s);
    int bad = rc != 0;
    for (int i = 0; i < 40 && !rc; i++) {
        char k[32];
        snprintf(k, sizeof k, "keep-%02d", i);
        if (store_get(s, STORE_RULE_KV, KEY(k), &v, &n) || n != sizeof small ||
            ((char *)v)[0] != '0' + i % 10)
            bad++;
        else
            free(v);
    }
    CHECK(!bad, "after a map-full failure the store reopens with every acknowledged value");
    if (!rc) {
        struct store_batch *b;
        store_batch_new(&b);
        store_batch_put(b, STORE_RULE_KV, KEY("too-big"), big, big_len);
        CHECK(store_commit(s, b) == 0, "the big batch commits once the map may grow");
        store_batch_free(b);
        store_close(s);
    }
    free(big);
    store_rmdir(dir);
    free(dir);
}

int main(void)
{
    log_set_level(LOG_WARN);
    test_basics();
    test_batch_atomic();
    test_after_group();
    test_append();
    test_append_bound_raised();
    test_file_written_ahead();
    test_update();
    test_async_and_close();
    test_snapshots();
    test_group_commit();
    test_schema();
    test_map_growth();
    test_map_full();
    return CHECK_DONE();
}
