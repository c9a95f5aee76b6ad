/* LMDB store: opening and closing the environment, reads, batch building and handing batches
 * to the writer thread (store_writer.c). Schema migration lives in store_migrate.c. */
#include "core/store.h"
#include "core/err.h"
#include "core/log.h"
#include "core/store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MAP_SIZE     ((size_t)64 << 20)
#define DEFAULT_MAP_SIZE_MAX ((size_t)16 << 30)
#define DEFAULT_MAX_GROUP    4096u
#define MAX_READERS          1024u

static const char *const db_names[STORE_DB_COUNT] = {
    [STORE_SUBSCRIPTIONS] = "subscriptions",
    [STORE_OPERATIONS] = "operations",
    [STORE_INBOX] = "inbox",
    [STORE_OUTBOX] = "outbox",
    [STORE_AUDIT] = "audit",
    [STORE_RULE_KV] = "rule_kv",
    [STORE_USAGE] = "usage",
    [STORE_OUTBOX_DUE] = "outbox_due",
    [STORE_OUTBOX_SUBS] = "outbox_subs",
    [STORE_TIMERS] = "timers",
    [STORE_EVENTS] = "events",
    [STORE_META] = "meta",
};

int store_mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:          return 0;
    case MDB_NOTFOUND:         return SAASD_ENOTFOUND;
    case MDB_KEYEXIST:         return SAASD_EEXIST;
    case MDB_MAP_FULL:         return SAASD_EFULL;
    case MDB_VERSION_MISMATCH: return SAASD_ESCHEMA;
    case MDB_INVALID:          return SAASD_ESCHEMA; /* not an LMDB file we understand */
    case MDB_READERS_FULL:     return SAASD_ERETRY;
    case MDB_BAD_VALSIZE:      return SAASD_ETOOBIG;
    case MDB_MAP_RESIZED:      return SAASD_ERETRY;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_PANIC:            return SAASD_EIO;
    case MDB_DBS_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
    case MDB_INCOMPATIBLE:
    case MDB_BAD_RSLOT:
    case MDB_BAD_TXN:
    case MDB_BAD_DBI:
    case MDB_TLS_FULL:         return SAASD_EINTERNAL;
    case ENOMEM:               return SAASD_ENOMEM;
    case EINVAL:               return SAASD_EINVAL;
    case ENOSPC:               return SAASD_EFULL;
    default:                   return SAASD_EIO; /* EIO, EACCES, ENOENT, ... from the file system */
    }
}

void store_be64_put(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t store_be64_get(const unsigned char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

/* ---- read side: the resize lock -------------------------------------------------------- */

/* A thread that already reads this store (store_get from a store_scan callback) must not take
 * the read lock again: with a writer queued on a writer-preferring rwlock that deadlocks. */
static _Thread_local struct store *reading_store;
static _Thread_local unsigned reading_depth;

static void read_lock(struct store *s)
{
    if (reading_store == s) {
        reading_depth++;
        return;
    }
    pthread_rwlock_rdlock(&s->resize_lock);
    if (!reading_store) {
        reading_store = s;
        reading_depth = 1;
    }
}

static void read_unlock(struct store *s)
{
    if (reading_store == s) {
        if (--reading_depth > 0)
            return;
        reading_store = NULL;
    }
    pthread_rwlock_unlock(&s->resize_lock);
}

static int db_valid(enum store_db db) { return (unsigned)db < STORE_DB_COUNT; }

/* ---- open / close ------------------------------------------------------------------------ */

static int open_databases(struct store *s)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) {
        rc = store_mdb_err(rc);
        goto fail;
    }
    for (int i = 0; i < STORE_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
        if (rc) {
            rc = store_mdb_err(rc);
            goto fail;
        }
    }
    rc = store_migrate(s, txn);
    if (rc)
        goto fail;
    s->seq_stored = s->next_seq;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        rc = store_mdb_err(rc);
        goto fail;
    }
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

static int init_sync(struct store *s)
{
    pthread_rwlockattr_t attr;
    if (pthread_rwlockattr_init(&attr))
        return SAASD_ENOMEM;
    /* The writer must get the map resized even while readers keep coming. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&s->resize_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc)
        return SAASD_ENOMEM;
    if (pthread_mutex_init(&s->mu, NULL))
        goto fail_rw;
    if (pthread_cond_init(&s->work_cv, NULL))
        goto fail_mu;
    if (pthread_mutex_init(&s->done_mu, NULL))
        goto fail_work;
    if (pthread_cond_init(&s->done_cv, NULL))
        goto fail_done_mu;
    return 0;
fail_done_mu:
    pthread_mutex_destroy(&s->done_mu);
fail_work:
    pthread_cond_destroy(&s->work_cv);
fail_mu:
    pthread_mutex_destroy(&s->mu);
fail_rw:
    pthread_rwlock_destroy(&s->resize_lock);
    return SAASD_ENOMEM;
}

static void destroy_sync(struct store *s)
{
    pthread_cond_destroy(&s->done_cv);
    pthread_mutex_destroy(&s->done_mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_rwlock_destroy(&s->resize_lock);
}

static void set_sizes(struct store *s, const struct store_options *opt)
{
    s->map_size = opt->map_size ? opt->map_size : DEFAULT_MAP_SIZE;
    s->map_size_max = opt->map_size_max ? opt->map_size_max : DEFAULT_MAP_SIZE_MAX;
    s->max_group = opt->max_group ? opt->max_group : DEFAULT_MAX_GROUP;
    if (s->map_size_max < s->map_size)
        s->map_size_max = s->map_size;
}

/* The LMDB environment in dir, checked before and after LMDB opens it. */
static int open_env(struct store *s, const char *dir, const struct store_options *opt)
{
    int rc = store_check_before_open(dir);
    if (rc)
        return rc;
    rc = mdb_env_create(&s->env);
    if (!rc)
        rc = mdb_env_set_maxdbs(s->env, STORE_DB_COUNT);
    if (!rc)
        rc = mdb_env_set_maxreaders(s->env, MAX_READERS);
    if (!rc)
        rc = mdb_env_set_mapsize(s->env, s->map_size);
    if (!rc) {
        /* NOTLS: a read transaction is not tied to its thread's TLS slot, so any number of
         * threads (and threads that come and go) can read. */
        unsigned flags = MDB_NOTLS | (opt->no_sync ? MDB_NOSYNC : 0);
        rc = mdb_env_open(s->env, dir, flags, 0600);
    }
    if (rc) {
        store_log_open_error(dir, rc, mdb_strerror(rc));
        return store_mdb_err(rc);
    }
    if ((rc = store_check_after_open(dir, s->env)) != 0)
        return rc;
    store_zero_init(s, opt->no_sync);
    /* An existing environment keeps its (possibly larger) map size. */
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize;
    if (s->map_size_max < s->map_size)
        s->map_size_max = s->map_size;
    return 0;
}

static int open_schema(struct store *s, const char *dir, const struct store_options *opt)
{
    int rc = open_databases(s);
    if (rc) {
        if (rc != SAASD_ESCHEMA)
            log_error("store", "cannot open databases", "dir", dir, "error", saasd_strerror(rc));
        return rc;
    }
    /* From here on a commit flushes its data pages but only writes its meta page: the next
     * flush covers it, and the writer reports batches only after that (store_writer.c). The
     * open transaction above still wrote its meta page synchronously. */
    if (!opt->no_sync) {
        rc = store_mdb_err(mdb_env_set_flags(s->env, MDB_NOMETASYNC, 1));
        if (rc)
            return rc;
        s->meta_deferred = 1;
    }
    s->stats.map_size = s->map_size;
    return 0;
}

/* The writer and its notifier (store_writer.c). */
static int start_threads(struct store *s)
{
    s->group = malloc(s->max_group * sizeof *s->group);
    if (!s->group)
        return SAASD_ENOMEM;
    if (pthread_create(&s->notifier, NULL, store_notifier_main, s))
        return SAASD_ENOMEM;
    s->notifier_started = 1;
    if (pthread_create(&s->writer, NULL, store_writer_main, s))
        return SAASD_ENOMEM;
    s->writer_started = 1;
    return 0;
}

/* What a failed store_open had set up, undone. */
static void discard(struct store *s, int have_sync)
{
    if (s->notifier_started) {
        pthread_mutex_lock(&s->done_mu);
        s->writer_finished = 1;
        pthread_cond_signal(&s->done_cv);
        pthread_mutex_unlock(&s->done_mu);
        pthread_join(s->notifier, NULL);
    }
    if (s->env)
        mdb_env_close(s->env);
    if (have_sync)
        destroy_sync(s);
    free(s->group);
    free(s->dir);
    free(s);
}

int store_open(const char *dir, const struct store_options *opt, struct store **out)
{
    struct store_options defaults = {0};
    struct store *s = NULL;
    int rc, have_sync = 0;

    *out = NULL;
    if (!dir || !*dir)
        return SAASD_EINVAL;
    if (!opt)
        opt = &defaults;
    s = calloc(1, sizeof *s);
    if (!s)
        return SAASD_ENOMEM;
    s->dir = strdup(dir);
    if (!s->dir) {
        rc = SAASD_ENOMEM;
        goto fail;
    }
    set_sizes(s, opt);
    if (mkdir(dir, 0700) && errno != EEXIST) {
        log_error("store", "cannot create directory", "dir", dir, "error", strerror(errno));
        rc = SAASD_EIO;
        goto fail;
    }
    rc = init_sync(s);
    if (rc)
        goto fail;
    have_sync = 1;
    if ((rc = open_env(s, dir, opt)) != 0 || (rc = open_schema(s, dir, opt)) != 0 || (rc = start_threads(s)) != 0)
        goto fail;
    char ver[16];
    snprintf(ver, sizeof ver, "%u", s->schema_version);
    log_debug("store", "opened", "dir", dir, "schema_version", ver);
    *out = s;
    return 0;
fail:
    discard(s, have_sync);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    /* The writer drains the queue before it returns. */
    if (s->writer_started)
        pthread_join(s->writer, NULL);
    /* ... and then tells the notifier, which reports every batch before it returns. */
    if (s->notifier_started)
        pthread_join(s->notifier, NULL);
    mdb_env_close(s->env);
    destroy_sync(s);
    free(s->group);
    free(s->dir);
    free(s);
}

/* ---- reads ---------------------------------------------------------------------------------- */

int store_get(struct store *s, enum store_db db, const void *key, size_t klen, void **val,
              size_t *vlen)
{
    MDB_txn *txn = NULL;
    int rc;

    *val = NULL;
    if (vlen)
        *vlen = 0;
    if (!db_valid(db) || !key || klen == 0)
        return SAASD_EINVAL;
    if (klen > STORE_MAX_KEY)
        return SAASD_ENOTFOUND; /* such a key cannot have been stored */
    read_lock(s);
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        rc = store_mdb_err(rc);
        goto fail;
    }
    MDB_val k = {klen, (void *)(uintptr_t)key}, v;
    rc = mdb_get(txn, s->dbi[db], &k, &v);
    if (rc) {
        rc = store_mdb_err(rc);
        goto fail;
    }
    char *copy = malloc(v.mv_size + 1);
    if (!copy) {
        rc = SAASD_ENOMEM;
        goto fail;
    }
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size] = 0;
    *val = copy;
    if (vlen)
        *vlen = v.mv_size;
    rc = 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    read_unlock(s);
    return rc;
}

int store_count(struct store *s, enum store_db db, size_t *out)
{
    MDB_txn *txn = NULL;
    MDB_stat st;
    *out = 0;
    if (!db_valid(db))
        return SAASD_EINVAL;
    read_lock(s);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (!rc)
        rc = mdb_stat(txn, s->dbi[db], &st);
    if (!rc)
        *out = st.ms_entries;
    if (txn)
        mdb_txn_abort(txn);
    read_unlock(s);
    return store_mdb_err(rc);
}

static int scan_impl(struct store *s, enum store_db db, const void *prefix, size_t plen, int from,
                     store_scan_fn fn, void *arg);

int store_scan(struct store *s, enum store_db db, const void *prefix, size_t plen,
               store_scan_fn fn, void *arg)
{
    return scan_impl(s, db, prefix, plen, 0, fn, arg);
}

int store_scan_from(struct store *s, enum store_db db, const void *start, size_t slen,
                    store_scan_fn fn, void *arg)
{
    return scan_impl(s, db, start, slen, 1, fn, arg);
}

/* from: key is where to start (every later key too); otherwise a prefix every key must have. */
static int scan_impl(struct store *s, enum store_db db, const void *prefix, size_t plen, int from,
                     store_scan_fn fn, void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc;

    if (!db_valid(db) || !fn || (plen && !prefix))
        return SAASD_EINVAL;
    if (plen > STORE_MAX_KEY && !from)
        return 0; /* no stored key can start with it */
    read_lock(s);
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (!rc)
        rc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (rc) {
        rc = store_mdb_err(rc);
        goto fail;
    }
    MDB_val k = {plen, (void *)(uintptr_t)prefix}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
    rc = 0;
    while (mrc == 0) {
        if (plen && !from && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
            break;
        rc = fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (rc)
            goto fail;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc && mrc != MDB_NOTFOUND)
        rc = store_mdb_err(mrc);
fail:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    read_unlock(s);
    return rc;
}

/* ---- batches -------------------------------------------------------------------------------- */

int store_batch_new(struct store_batch **out)
{
    struct store_batch *b = calloc(1, sizeof *b);
    *out = NULL;
    if (!b)
        return SAASD_ENOMEM;
    if (sem_init(&b->done_sem, 0, 0)) {
        free(b);
        return SAASD_ENOMEM;
    }
    b->ops = b->inline_ops;
    b->cap_ops = STORE_BATCH_INLINE_OPS;
    *out = b;
    return 0;
}

static int in_arena(const struct store_batch *b, const unsigned char *p)
{
    return p >= b->arena && p < b->arena + sizeof b->arena;
}

/* Room for n bytes: from the batch's arena while it lasts, else from the heap. */
static unsigned char *batch_mem(struct store_batch *b, size_t n)
{
    if (n <= sizeof b->arena - b->arena_used) {
        unsigned char *p = b->arena + b->arena_used;
        b->arena_used += n;
        return p;
    }
    return malloc(n);
}

void store_batch_clear(struct store_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_ops; i++)
        if (!in_arena(b, b->ops[i].key))
            free(b->ops[i].key); /* val shares the key's allocation */
    b->n_ops = 0;
    b->arena_used = 0;
    b->has_seq = 0;
}

void store_batch_free(struct store_batch *b)
{
    if (!b)
        return;
    store_batch_clear(b);
    sem_destroy(&b->done_sem);
    if (b->ops != b->inline_ops)
        free(b->ops);
    free(b);
}

/* Appends one operation; key (klen bytes, of which the first copy_klen are copied) and value
 * share one allocation. */
static int batch_add(struct store_batch *b, enum store_op_kind kind, enum store_db db,
                     const void *key, size_t copy_klen, size_t klen, const void *val, size_t vlen,
                     struct store_op **out)
{
    if (!b || !db_valid(db) || (copy_klen && !key) || (vlen && !val))
        return SAASD_EINVAL;
    if (klen == 0)
        return SAASD_EINVAL;
    if (klen > STORE_MAX_KEY)
        return SAASD_ETOOBIG;
    if (b->n_ops == b->cap_ops) {
        size_t cap = b->cap_ops * 2;
        struct store_op *ops = b->ops == b->inline_ops ? malloc(cap * sizeof *ops)
                                                        : realloc(b->ops, cap * sizeof *ops);
        if (!ops)
            return SAASD_ENOMEM;
        if (b->ops == b->inline_ops)
            memcpy(ops, b->inline_ops, b->n_ops * sizeof *ops);
        b->ops = ops;
        b->cap_ops = cap;
    }
    unsigned char *mem = batch_mem(b, klen + vlen + 1);
    if (!mem)
        return SAASD_ENOMEM;
    if (copy_klen)
        memcpy(mem, key, copy_klen);
    if (vlen)
        memcpy(mem + klen, val, vlen);
    struct store_op *op = &b->ops[b->n_ops++];
    *op = (struct store_op){.kind = kind, .db = db, .key = mem, .klen = klen,
                            .val = mem + klen, .vlen = vlen};
    if (out)
        *out = op;
    return 0;
}

int store_batch_put(struct store_batch *b, enum store_db db, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    return batch_add(b, STORE_OP_PUT, db, key, klen, klen, val, vlen, NULL);
}

int store_batch_del(struct store_batch *b, enum store_db db, const void *key, size_t klen)
{
    return batch_add(b, STORE_OP_DEL, db, key, klen, klen, NULL, 0, NULL);
}

int store_batch_require_absent(struct store_batch *b, enum store_db db, const void *key,
                               size_t klen)
{
    return batch_add(b, STORE_OP_ABSENT, db, key, klen, klen, NULL, 0, NULL);
}

int store_batch_append(struct store_batch *b, enum store_db db, const void *prefix, size_t plen,
                       const void *val, size_t vlen)
{
    if (plen > STORE_MAX_KEY - 8)
        return SAASD_ETOOBIG;
    return batch_add(b, STORE_OP_APPEND, db, prefix, plen, plen + 8, val, vlen, NULL);
}

int store_batch_update(struct store_batch *b, enum store_db db, const void *key, size_t klen,
                       store_update_fn fn, void *arg)
{
    struct store_op *op;
    if (!fn)
        return SAASD_EINVAL;
    int rc = batch_add(b, STORE_OP_UPDATE, db, key, klen, klen, NULL, 0, &op);
    if (rc)
        return rc;
    op->update = fn;
    op->update_arg = arg;
    return 0;
}

int store_batch_update_copy(struct store_batch *b, enum store_db db, const void *key, size_t klen,
                            store_update_fn fn, const void *arg, size_t arglen)
{
    struct store_op *op;
    if (!fn || !arg || !arglen)
        return SAASD_EINVAL;
    int rc = batch_add(b, STORE_OP_UPDATE, db, key, klen, klen, arg, arglen, &op);
    if (rc)
        return rc;
    op->update = fn;
    op->update_arg = op->val; /* the batch's own copy: lives as long as the batch */
    return 0;
}

void store_batch_after_group(struct store_batch *b, store_after_fn after, void *arg)
{
    b->after_fn = after;
    b->after_arg = arg;
}

int store_batch_seq(const struct store_batch *b, uint64_t *first)
{
    if (!b || !b->has_seq || b->rc != 0)
        return SAASD_ENOTFOUND;
    *first = b->first_seq;
    return 0;
}

/* ---- commit --------------------------------------------------------------------------------- */

/* Queues b; the caller holds s->mu. */
static int enqueue_locked(struct store *s, struct store_batch *b, store_done_fn done, void *arg)
{
    if (s->closing)
        return SAASD_ECLOSED;
    b->next = NULL;
    b->done_fn = done;
    b->done_arg = arg;
    b->rc = 0;
    b->full = 0;
    b->has_seq = 0;
    if (s->tail)
        s->tail->next = b;
    else
        s->head = b;
    s->tail = b;
    if (s->writer_idle)
        pthread_cond_signal(&s->work_cv);
    return 0;
}

/* Waiting here would never end: this is the thread that reports commits (a done callback),
 * or the writer needs the read lock we hold released before it can grow the map. */
static int would_deadlock(struct store *s)
{
    pthread_t self = pthread_self();
    return reading_store == s || pthread_equal(self, s->writer) ||
           pthread_equal(self, s->notifier);
}

int store_commit(struct store *s, struct store_batch *b)
{
    if (!s || !b)
        return SAASD_EINVAL;
    if (would_deadlock(s)) {
        log_error("store", "store_commit called from a scan or done callback (refused)");
        return SAASD_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    int rc = enqueue_locked(s, b, NULL, NULL);
    pthread_mutex_unlock(&s->mu);
    if (rc)
        return rc;
    while (sem_wait(&b->done_sem) != 0)
        ; /* EINTR */
    return b->rc;
}

int store_commit_async(struct store *s, struct store_batch *b, store_done_fn done, void *arg)
{
    if (!s || !b || !done)
        return SAASD_EINVAL;
    pthread_mutex_lock(&s->mu);
    int rc = enqueue_locked(s, b, done, arg);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void store_get_stats(struct store *s, struct store_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

int store_schema_version(struct store *s, unsigned *out)
{
    if (!s)
        return SAASD_EINVAL;
    *out = s->schema_version;
    return 0;
}
