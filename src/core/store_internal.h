/* Private to the store module (store.c, store_writer.c, store_migrate.c): the structures
 * behind the opaque handles of store.h. No other module includes this file. */
#ifndef SAASD_STORE_INTERNAL_H
#define SAASD_STORE_INTERNAL_H

#include "core/store.h"

#include <lmdb.h>
#include <pthread.h>
#include <semaphore.h>

#define STORE_META_VERSION "schema_version"
#define STORE_META_SEQ     "append_seq"

enum store_op_kind { STORE_OP_PUT, STORE_OP_DEL, STORE_OP_ABSENT, STORE_OP_APPEND, STORE_OP_UPDATE };

struct store_op {
    enum store_op_kind kind;
    enum store_db db;
    unsigned char *key;     /* owned; for APPEND: prefix followed by 8 bytes the writer fills */
    size_t klen;            /* for APPEND: prefix length + 8 */
    unsigned char *val;     /* owned (PUT, APPEND) */
    size_t vlen;
    store_update_fn update; /* UPDATE only */
    void *update_arg;
};

/* A small batch (a webhook's guard and inbox entry) keeps its operations and their keys and
 * values inside the batch itself: one allocation per batch instead of four, and the batch is
 * allocated on the event loop and freed on the notifier thread, where every extra chunk was a
 * locked trip through malloc's arena. Larger batches spill to the heap. */
#define STORE_BATCH_INLINE_OPS 4
#define STORE_BATCH_ARENA 1536

struct store_batch {
    struct store_op *ops;   /* inline_ops until more are needed */
    size_t n_ops, cap_ops;
    size_t arena_used;      /* bytes of arena handed out to keys and values */
    /* Commit state: the writer sets rc, then posts done_sem (synchronous commit: the
     * committer sleeps on its own semaphore, so the writer wakes exactly the committers whose
     * batches are done, and none of them has to retake store.mu). */
    struct store_batch *next; /* queue link, under store.mu */
    store_done_fn done_fn;    /* NULL for a synchronous commit */
    void *done_arg;
    store_after_fn after_fn;  /* store_batch_after_group: once per reported group */
    void *after_arg;
    sem_t done_sem;
    int rc;
    int full;                 /* hit the map limit and the map cannot grow: skip on retry */
    int failed_rc;            /* failed half-applied in the parent: skip it (with this rc) on the retry */
    int has_seq;
    uint64_t first_seq;
    struct store_op inline_ops[STORE_BATCH_INLINE_OPS];
    unsigned char arena[STORE_BATCH_ARENA];
};

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE_DB_COUNT];
    char *dir;
    size_t map_size_max;
    unsigned max_group;
    unsigned schema_version;

    /* Readers hold the read side while a read transaction is open; the writer takes the write
     * side only around mdb_env_set_mapsize(), which needs no transaction open in-process. */
    pthread_rwlock_t resize_lock;

    pthread_mutex_t mu;        /* guards everything below */
    pthread_cond_t work_cv;    /* writer waits for batches */
    struct store_batch *head, *tail;
    int writer_idle;           /* writer sleeps on work_cv: signal it (else it will look) */
    int closing;
    int writer_started;
    pthread_t writer;
    struct store_stats stats;

    pthread_mutex_t done_mu;   /* guards the done list: writer -> notifier */
    pthread_cond_t done_cv;
    struct store_batch *done_head, *done_tail;
    int notifier_idle;
    int writer_finished;
    int notifier_started;
    pthread_t notifier;

    /* Writer thread only (after open). */
    struct store_batch **group; /* max_group slots */
    size_t map_size;
    uint64_t next_seq;
    uint64_t seq_stored; /* meta's append_seq as committed: every number handed out is below it */
    int data_fd;         /* data.mdb (LMDB's descriptor), -1: no zeroing ahead (no_sync, or it failed) */
    long long zeroed_to; /* data.mdb holds written blocks up to this offset */
    unsigned page_size;
    /* MDB_NOMETASYNC (durable stores): a commit's meta page is written but not flushed, so its
     * batches are reported only after a later flush (the next commit's data fdatasync, or an
     * explicit one when nothing is queued). These are the batches waiting for it, linked by
     * next, oldest first. */
    int meta_deferred;
    struct store_batch *unflushed_head, *unflushed_tail;
};

/* The outbox indexes (store_outbox.c): drop the index entries of the OUTBOX value under key
 * (none when absent), or add those of its current value. Every OUTBOX write is bracketed by
 * the two, inside the same transaction. */
int store_outbox_unindex(struct store *s, MDB_txn *txn, const void *key, size_t klen);
int store_outbox_index(struct store *s, MDB_txn *txn, const void *key, size_t klen);

/* Runs in open's write transaction: brings META up to STORE_SCHEMA_VERSION, or refuses a
 * newer schema with SAASD_ESCHEMA. Sets s->schema_version and s->next_seq. */
int store_migrate(struct store *s, MDB_txn *txn);
/* store_check.c: an empty data.mdb (before mdb_env_open) and a truncated one (after) are
 * refused with SAASD_EIO and a log line naming the file and what to do. */
int store_check_before_open(const char *dir);
int store_check_after_open(const char *dir, MDB_env *env);
void store_log_open_error(const char *dir, int mdb_rc, const char *mdb_msg);

/* Writer and notifier thread bodies (store_writer.c). store_zero_init (at open) lets the
 * writer keep data.mdb's blocks written ahead of LMDB's last page. */
void store_zero_init(struct store *s, int no_sync);
void *store_writer_main(void *arg);
void *store_notifier_main(void *arg);


#endif
