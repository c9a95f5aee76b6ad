/* The store's single writer thread: group commit.
 *
 * The writer takes every queued batch (up to max_group), opens one write transaction, applies
 * each batch atomically (so a refused batch leaves no trace and does not spoil the others),
 * commits once — one fsync for the whole group — and then wakes the
 * committers. Batches queued meanwhile form the next group, so the busier the store, the more
 * batches share an fsync. A second thread, the notifier, then wakes the committers (or calls
 * the async callbacks) while the writer already works on the next group.
 *
 * Map full: the group is rolled back, the map doubled (up to map_size_max) under the exclusive
 * side of the resize lock, and the group retried. A batch that still does not fit in the
 * largest map fails with SAASD_EFULL; the rest of its group commits. A batch of deletes only
 * may use a small reserve beyond map_size_max, so that a full map can always be emptied. */
#include "core/err.h"
#include "core/log.h"
#include "core/store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int apply_update(struct store *s, MDB_txn *txn, const struct store_op *op)
{
    MDB_val k = {op->klen, op->key}, v;
    int rc = mdb_get(txn, s->dbi[op->db], &k, &v);
    if (rc && rc != MDB_NOTFOUND)
        return store_mdb_err(rc);
    void *nv = NULL;
    size_t nl = 0;
    rc = op->update(op->update_arg, rc ? NULL : v.mv_data, rc ? 0 : v.mv_size, &nv, &nl);
    if (rc) {
        free(nv);
        return rc < 0 ? rc : SAASD_EINVAL;
    }
    if (!nv)
        return 0;
    MDB_val nval = {nl, nv};
    rc = mdb_put(txn, s->dbi[op->db], &k, &nval, 0);
    free(nv);
    return store_mdb_err(rc);
}

static int apply_op_raw(struct store *s, MDB_txn *txn, struct store_batch *b, struct store_op *op);

/* Outbox writes keep its two indexes in step, in the same transaction. */
static int apply_op(struct store *s, MDB_txn *txn, struct store_batch *b, struct store_op *op)
{
    if (op->db != STORE_OUTBOX || op->kind == STORE_OP_ABSENT)
        return apply_op_raw(s, txn, b, op);
    int rc = op->kind == STORE_OP_APPEND ? 0 : store_outbox_unindex(s, txn, op->key, op->klen);
    if (!rc)
        rc = apply_op_raw(s, txn, b, op);
    if (!rc && op->kind != STORE_OP_DEL)
        rc = store_outbox_index(s, txn, op->key, op->klen);
    return rc;
}

static int apply_op_raw(struct store *s, MDB_txn *txn, struct store_batch *b, struct store_op *op)
{
    MDB_dbi dbi = s->dbi[op->db];
    MDB_val k = {op->klen, op->key}, v = {op->vlen, op->val};
    int rc;

    switch (op->kind) {
    case STORE_OP_PUT:
        return store_mdb_err(mdb_put(txn, dbi, &k, &v, 0));
    case STORE_OP_DEL:
        rc = mdb_del(txn, dbi, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
    case STORE_OP_ABSENT:
        rc = mdb_get(txn, dbi, &k, &v);
        if (rc == 0)
            return SAASD_EEXIST;
        return rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
    case STORE_OP_APPEND:
        store_be64_put(op->key + op->klen - 8, s->next_seq);
        if (!b->has_seq) {
            b->has_seq = 1;
            b->first_seq = s->next_seq;
        }
        s->next_seq++;
        /* The key is usually the last of its database (the inbox's always is): MDB_APPEND skips
         * the search and fills leaf pages instead of splitting them in half, so a group writes
         * fewer pages. Under a prefix followed by another, LMDB refuses it with MDB_KEYEXIST
         * before changing anything, and the ordinary put follows. */
        rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
        if (rc == MDB_KEYEXIST)
            rc = mdb_put(txn, dbi, &k, &v, 0);
        return store_mdb_err(rc);
    case STORE_OP_UPDATE:
        return apply_update(s, txn, op);
    }
    return SAASD_EINTERNAL;
}

/* Fast path for batches of plain writes: every guard is checked first, then the writes go
 * straight into the group's transaction. LMDB's nested transactions allocate a 2 MiB dirty list
 * each, which made them the writer's main cost under load. A write that fails half-way
 * sets *poisoned: LMDB then refuses the whole transaction, so the caller aborts the group and
 * retries it, after growing the map or without this batch. */
static int apply_plain_batch(struct store *s, MDB_txn *txn, struct store_batch *b, int *poisoned)
{
    uint64_t seq_before = s->next_seq;
    b->has_seq = 0;
    for (size_t i = 0; i < b->n_ops; i++) {
        if (b->ops[i].kind != STORE_OP_ABSENT)
            continue;
        int rc = apply_op(s, txn, b, &b->ops[i]);
        if (rc)
            return rc; /* nothing written yet */
    }
    for (size_t i = 0; i < b->n_ops; i++) {
        if (b->ops[i].kind == STORE_OP_ABSENT)
            continue;
        int rc = apply_op(s, txn, b, &b->ops[i]);
        if (rc) {
            s->next_seq = seq_before;
            b->has_seq = 0;
            *poisoned = 1; /* LMDB marks the whole transaction failed after a failed put */
            return rc;
        }
    }
    return 0;
}

static int is_plain(const struct store_batch *b)
{
    for (size_t i = 0; i < b->n_ops; i++)
        if (b->ops[i].kind == STORE_OP_UPDATE)
            return 0;
    return 1;
}

/* Applies b inside a nested transaction of parent: all of b, or none of it. Used for batches
 * with read-modify-write callbacks, which may fail half-way. */
static int apply_batch(struct store *s, MDB_txn *parent, struct store_batch *b)
{
    uint64_t seq_before = s->next_seq;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, parent, 0, &txn);
    if (rc)
        return store_mdb_err(rc);
    b->has_seq = 0;
    for (size_t i = 0; i < b->n_ops && !rc; i++)
        rc = apply_op(s, txn, b, &b->ops[i]);
    if (rc) {
        mdb_txn_abort(txn);
        goto fail;
    }
    rc = store_mdb_err(mdb_txn_commit(txn));
    if (rc)
        goto fail;
    return 0;
fail:
    /* Nothing of b reached the parent: its sequence numbers were never seen by anyone. */
    s->next_seq = seq_before;
    b->has_seq = 0;
    return rc;
}

/* meta's append_seq is a bound, not the counter itself: every sequence number handed out is
 * below it, so none is reused after a restart (which goes on from the bound). Raising it by a
 * block at a time instead of writing it with every group spares LMDB one dirty page (the meta
 * database's leaf) in all but one commit of SEQ_BLOCK appends; a restart skips at most a block. */
#define SEQ_BLOCK 4096

static int write_seq(struct store *s, MDB_txn *txn, uint64_t bound)
{
    unsigned char be[8];
    store_be64_put(be, bound);
    MDB_val k = {sizeof STORE_META_SEQ - 1, STORE_META_SEQ}, v = {8, be};
    return store_mdb_err(mdb_put(txn, s->dbi[STORE_META], &k, &v, 0));
}

/* Deleting needs free pages too (LMDB copies every page it changes), so a map filled up to
 * map_size_max would refuse the very deletes that make room. Batches that only delete may
 * therefore grow the map past map_size_max by this reserve; what they free is then reused. */
static size_t delete_reserve(const struct store *s)
{
    size_t r = s->map_size_max / 100;
    return r > (1u << 20) ? r : (1u << 20);
}

static int deletes_only(const struct store_batch *b)
{
    for (size_t i = 0; b && i < b->n_ops; i++)
        if (b->ops[i].kind != STORE_OP_DEL)
            return 0;
    return b && b->n_ops > 0;
}

/* How far the map may grow for batch b. */
static size_t grow_limit(const struct store *s, const struct store_batch *b)
{
    return s->map_size_max + (deletes_only(b) ? delete_reserve(s) : 0);
}

static int can_grow(const struct store *s, const struct store_batch *b) { return s->map_size < grow_limit(s, b); }

/* The same for a commit that failed as a whole: the reserve when every live batch deletes only. */
static size_t group_limit(const struct store *s, struct store_batch **group, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!group[i]->full && !group[i]->failed_rc && !deletes_only(group[i]))
            return s->map_size_max;
    return s->map_size_max + delete_reserve(s);
}

/* Doubles the map, up to limit. No transaction of ours may be open: the writer has none at this
 * point and readers are held off by the exclusive side of the resize lock. */
static int grow_map(struct store *s, size_t limit)
{
    size_t next = s->map_size > limit / 2 ? limit : s->map_size * 2;
    pthread_rwlock_wrlock(&s->resize_lock);
    int rc = mdb_env_set_mapsize(s->env, next);
    pthread_rwlock_unlock(&s->resize_lock);
    if (rc) {
        log_error("store", "cannot grow map", "error", mdb_strerror(rc));
        return store_mdb_err(rc);
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize;
    char to[32];
    snprintf(to, sizeof to, "%zu", s->map_size);
    log_info("store", "map grown", "to_bytes", to);
    pthread_mutex_lock(&s->mu);
    s->stats.map_grows++;
    s->stats.map_size = s->map_size;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* After deletes grew the map into the reserve, shrink it back to map_size_max, or to the pages
 * in use when they reach past it (LMDB never maps less than that), so that later writes cannot
 * use up the reserve meant for the next deletes. */
static void give_back_reserve(struct store *s)
{
    if (s->map_size <= s->map_size_max)
        return;
    pthread_rwlock_wrlock(&s->resize_lock);
    int rc = mdb_env_set_mapsize(s->env, s->map_size_max); /* LMDB keeps at least the used size */
    pthread_rwlock_unlock(&s->resize_lock);
    MDB_envinfo info;
    if (rc == 0 && mdb_env_info(s->env, &info) == 0) {
        s->map_size = info.me_mapsize;
        pthread_mutex_lock(&s->mu);
        s->stats.map_size = s->map_size;
        pthread_mutex_unlock(&s->mu);
    }
}

/* Zeroing ahead. When a commit's pages extend data.mdb, ext4 allocates blocks, and the
 * commit's fdatasync then also writes the inode and the allocation metadata synchronously: two
 * more waits for the disk per group commit (a quarter of the writer's CPU under webhook load
 * on the development VM, and longer commits). So the writer keeps ZERO_CHUNK bytes past
 * LMDB's last page written with zeros and synced, between transactions: LMDB's commits then
 * only overwrite blocks that exist. The zeros are beyond every page LMDB uses (it reads only
 * the pages its meta page counts, and a file longer than that is normal for LMDB), so they
 * change nothing a reader sees; a crash in the middle leaves only unused zeros. At most the
 * map size is zeroed, and a failure (disk full) only stops the zeroing. */
#define ZERO_CHUNK (4u << 20)

void store_zero_init(struct store *s, int no_sync)
{
    struct stat st;
    MDB_stat ms;
    s->data_fd = -1;
    int fd;
    if (no_sync || mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0 || mdb_env_stat(s->env, &ms) != 0)
        return; /* without fsync there is no synchronous metadata write to spare */
    s->data_fd = fd;
    s->zeroed_to = st.st_size;
    s->page_size = ms.ms_psize;
}

static void zero_ahead(struct store *s)
{
    static const char zeros[64 * 1024];
    MDB_envinfo info;
    if (s->data_fd < 0 || mdb_env_info(s->env, &info) != 0)
        return;
    long long used = ((long long)info.me_last_pgno + 1) * s->page_size;
    long long end = used + ZERO_CHUNK;
    if (end > (long long)s->map_size)
        end = (long long)s->map_size;
    if (s->zeroed_to >= used + ZERO_CHUNK / 2 || s->zeroed_to >= end)
        return;
    long long at = s->zeroed_to > used ? s->zeroed_to : used;
    while (at < end) {
        size_t n = end - at < (long long)sizeof zeros ? (size_t)(end - at) : sizeof zeros;
        ssize_t w = pwrite(s->data_fd, zeros, n, at);
        if (w <= 0)
            break;
        at += w;
    }
    if (at < end || fdatasync(s->data_fd) != 0) {
        log_warn("store", "cannot write data.mdb ahead of use (commits go on, at the cost of a metadata sync each)",
                 "error", strerror(errno));
        s->data_fd = -1;
        return;
    }
    s->zeroed_to = at;
}

/* Applies and commits one group; sets every batch's rc. Returns 1 when a transaction was
 * committed. */
static int commit_group(struct store *s, struct store_batch **group, size_t n)
{
    for (size_t i = 0; i < n; i++)
        group[i]->full = group[i]->failed_rc = 0;
    for (;;) {
        uint64_t seq_before = s->next_seq;
        int need_grow = 0, retry_without = 0, rc;
        size_t limit = s->map_size_max;
        MDB_txn *txn;

        rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc) {
            rc = store_mdb_err(rc);
            goto fail_all;
        }
        for (size_t i = 0; i < n; i++) {
            struct store_batch *b = group[i];
            if (b->full) {
                b->rc = SAASD_EFULL;
                continue;
            }
            if (b->failed_rc) {
                b->rc = b->failed_rc;
                continue;
            }
            int poisoned = 0;
            b->rc = is_plain(b) ? apply_plain_batch(s, txn, b, &poisoned) : apply_batch(s, txn, b);
            if (poisoned && !(b->rc == SAASD_EFULL && can_grow(s, b))) {
                /* Half of b is in the transaction: drop the group, retry it without b. */
                b->failed_rc = b->rc == SAASD_EFULL ? SAASD_EFULL : b->rc;
                retry_without = 1;
                break;
            }
            if (b->rc == SAASD_EFULL) {
                if (can_grow(s, b)) {
                    limit = grow_limit(s, b);
                    need_grow = 1;
                    break;
                }
                b->full = 1; /* cannot fit in the largest map: only this batch fails */
            }
        }
        if (retry_without) {
            mdb_txn_abort(txn);
            s->next_seq = seq_before;
            for (size_t i = 0; i < n; i++)
                group[i]->has_seq = 0;
            continue;
        }
        if (need_grow) {
            mdb_txn_abort(txn);
        } else {
            uint64_t bound = s->next_seq > s->seq_stored ? s->next_seq + SEQ_BLOCK : 0;
            rc = bound ? write_seq(s, txn, bound) : 0;
            if (rc) {
                mdb_txn_abort(txn);
            } else {
                rc = store_mdb_err(mdb_txn_commit(txn)); /* frees txn either way */
                if (rc == 0) {
                    if (bound)
                        s->seq_stored = bound;
                    give_back_reserve(s);
                    return 1;
                }
            }
            limit = group_limit(s, group, n);
            if (rc != SAASD_EFULL || s->map_size >= limit)
                goto fail_all;
            need_grow = 1;
        }
        /* Nothing was committed: roll the sequence back and retry with a larger map. */
        s->next_seq = seq_before;
        rc = grow_map(s, limit);
        if (rc)
            goto fail_all;
        continue;
    fail_all:
        s->next_seq = seq_before;
        for (size_t i = 0; i < n; i++) {
            if (group[i]->rc == 0)
                group[i]->rc = rc;
            group[i]->has_seq = 0;
        }
        if (rc != SAASD_EFULL)
            log_error("store", "write transaction failed", "error", saasd_strerror(rc));
        return 0;
    }
}

/* Hands a chain of finished batches (linked by next) to the notifier. */
static void report(struct store *s, struct store_batch *head, struct store_batch *tail)
{
    if (!head)
        return;
    pthread_mutex_lock(&s->done_mu);
    if (s->done_tail)
        s->done_tail->next = head;
    else
        s->done_head = head;
    s->done_tail = tail;
    if (s->notifier_idle)
        pthread_cond_signal(&s->done_cv);
    pthread_mutex_unlock(&s->done_mu);
}

/* Deferred meta flush. With MDB_NOMETASYNC a commit fdatasyncs its data pages and then writes
 * its meta page without a flush: the commit is visible but a system crash may undo it (never
 * corrupt it: LMDB keeps the two newest snapshots' pages intact, and the older meta page is
 * durable). Its batches therefore wait here until a flush follows that meta write: the next
 * commit's data fdatasync (which covers every page of the file written before it), or
 * flush_unflushed() when nothing is queued. Every batch of a group waits, refused ones
 * included: a refusal (a guard key present) may rest on the previous, not yet flushed commit. */
static void flush_unflushed(struct store *s)
{
    struct store_batch *head = s->unflushed_head;
    if (!head)
        return;
    int rc = store_mdb_err(mdb_env_sync(s->env, 1));
    if (rc) {
        /* Durability unknown: no batch of these may be reported as committed. */
        log_error("store", "cannot flush committed transactions", "error", saasd_strerror(rc));
        for (struct store_batch *b = head; b; b = b->next)
            if (b->rc == 0)
                b->rc = rc;
    }
    pthread_mutex_lock(&s->mu);
    s->stats.syncs++;
    pthread_mutex_unlock(&s->mu);
    report(s, head, s->unflushed_tail);
    s->unflushed_head = s->unflushed_tail = NULL;
}

static uint64_t last_txnid(struct store *s)
{
    MDB_envinfo info;
    return mdb_env_info(s->env, &info) == 0 ? (uint64_t)info.me_last_txnid : 0;
}

/* Called after each group: reports what is durable now and keeps the rest waiting. */
static void settle_group(struct store *s, struct store_batch **group, size_t n, uint64_t txnid_before)
{
    if (!s->meta_deferred) {
        report(s, group[0], group[n - 1]); /* no_sync: nothing is ever waited for */
        return;
    }
    /* A new txnid means LMDB fdatasync'd this commit's data pages before writing its meta
     * page: that flush covered every earlier meta page. (A commit with no dirty page writes
     * and flushes nothing and leaves the txnid.) */
    if (last_txnid(s) != txnid_before && s->unflushed_head) {
        report(s, s->unflushed_head, s->unflushed_tail);
        s->unflushed_head = NULL;
    }
    if (s->unflushed_head)
        s->unflushed_tail->next = group[0];
    else
        s->unflushed_head = group[0];
    s->unflushed_tail = group[n - 1];
}

void *store_writer_main(void *arg)
{
    struct store *s = arg;
    pthread_setname_np(pthread_self(), "store-writer"); /* per-thread CPU in make bench */
    struct store_batch **group = s->group;
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&s->mu);
        if (!s->head && s->unflushed_head) {
            /* Nothing queued whose commit would flush for them: flush now. */
            pthread_mutex_unlock(&s->mu);
            flush_unflushed(s);
            continue;
        }
        while (!s->head && !s->closing) {
            s->writer_idle = 1;
            pthread_cond_wait(&s->work_cv, &s->mu);
            s->writer_idle = 0;
        }
        while (s->head && n < s->max_group) {
            group[n++] = s->head;
            s->head = s->head->next;
        }
        if (!s->head)
            s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        if (n == 0)
            break; /* closing, and the queue is drained (and flushed) */

        zero_ahead(s);
        uint64_t txnid_before = last_txnid(s);
        int committed = commit_group(s, group, n);

        uint64_t ok = 0;
        for (size_t i = 0; i < n; i++) {
            ok += group[i]->rc == 0;
            group[i]->next = i + 1 < n ? group[i + 1] : NULL;
        }
        pthread_mutex_lock(&s->mu);
        s->stats.transactions += (uint64_t)committed;
        s->stats.batches += ok;
        s->stats.batches_failed += n - ok;
        pthread_mutex_unlock(&s->mu);

        /* Hand what is durable to the notifier and go on with the next group: waking dozens
         * of committers takes as long as a commit, and they then compete with us for the CPU. */
        settle_group(s, group, n, txnid_before);
    }
    pthread_mutex_lock(&s->done_mu);
    s->writer_finished = 1;
    pthread_cond_signal(&s->done_cv);
    pthread_mutex_unlock(&s->done_mu);
    return NULL;
}

/* The distinct store_batch_after_group hooks of the batches one notifier pass reports. A pass
 * with more distinct hooks than fit (saasd has one) calls the extra ones at once: still before
 * any callback of the pass, only not coalesced. */
struct after_calls {
    struct { store_after_fn fn; void *arg; } call[4];
    size_t n;
};

static void after_add(struct after_calls *a, store_after_fn fn, void *arg)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->call[i].fn == fn && a->call[i].arg == arg)
            return;
    if (a->n < sizeof a->call / sizeof a->call[0]) {
        a->call[a->n].fn = fn;
        a->call[a->n].arg = arg;
        a->n++;
        return;
    }
    fn(arg);
}

static void after_run(const struct after_calls *a)
{
    for (size_t i = 0; i < a->n; i++)
        a->call[i].fn(a->call[i].arg);
}

void *store_notifier_main(void *arg)
{
    struct store *s = arg;
    pthread_setname_np(pthread_self(), "store-notify");
    for (;;) {
        pthread_mutex_lock(&s->done_mu);
        while (!s->done_head && !s->writer_finished) {
            s->notifier_idle = 1;
            pthread_cond_wait(&s->done_cv, &s->done_mu);
            s->notifier_idle = 0;
        }
        struct store_batch *b = s->done_head;
        s->done_head = s->done_tail = NULL;
        pthread_mutex_unlock(&s->done_mu);
        if (!b)
            break; /* the writer has finished and everything is reported */
        /* The after-group hooks first: once a batch is reported its committer may free it, and
         * may tear down what the hook uses (a daemon stopping once its last request is
         * answered). */
        struct after_calls after = {0};
        for (struct store_batch *x = b; x; x = x->next)
            if (x->after_fn && x->rc == 0)
                after_add(&after, x->after_fn, x->after_arg);
        after_run(&after);
        while (b) {
            struct store_batch *next = b->next;
            if (b->done_fn) {
                b->done_fn(b->done_arg, b->rc);
                store_batch_free(b);
            } else {
                sem_post(&b->done_sem); /* the committer may free b from here on */
            }
            b = next;
        }
    }
    return NULL;
}
