/* Schema versions of the store and the steps between them.
 *
 * META "schema_version" holds the version as decimal ASCII (absent = version 0). store_open()
 * calls store_migrate() inside its first write transaction: every step from the version on
 * disk up to STORE_SCHEMA_VERSION runs there, and the new version is written last, so a crash
 * during a migration leaves the old version and the old data. To change the layout: bump
 * STORE_SCHEMA_VERSION, add one step to `steps` below, document the version in store.h. */
#include "core/err.h"
#include "core/log.h"
#include "core/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct migration_step {
    unsigned from; /* migrates from this version to from + 1 */
    const char *what;
    int (*run)(struct store *s, MDB_txn *txn);
};

/* Largest sequence number used by an append key (prefix + be64) in db; 0 when none. With
 * by_last_key the db holds bare be64 keys, so its last key is the largest. */
static int max_seq_in(struct store *s, MDB_txn *txn, enum store_db db, int by_last_key,
                      uint64_t *max)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (rc)
        return store_mdb_err(rc);
    rc = mdb_cursor_get(cur, &k, &v, by_last_key ? MDB_LAST : MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size >= 8) {
            uint64_t seq = store_be64_get((const unsigned char *)k.mv_data + k.mv_size - 8);
            if (seq > *max)
                *max = seq;
        }
        if (by_last_key)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
}

static int write_next_seq(struct store *s, MDB_txn *txn, uint64_t next)
{
    unsigned char be[8];
    store_be64_put(be, next);
    MDB_val k = {sizeof STORE_META_SEQ - 1, STORE_META_SEQ}, v = {8, be};
    return store_mdb_err(mdb_put(txn, s->dbi[STORE_META], &k, &v, 0));
}

/* v0 kept no counter: appends were numbered after the largest key present. Record the next
 * number in META so appends stay monotonic even after old entries are deleted. */
static int step_v0_to_v1(struct store *s, MDB_txn *txn)
{
    uint64_t max = 0;
    int rc = max_seq_in(s, txn, STORE_INBOX, 1, &max);
    if (!rc)
        rc = max_seq_in(s, txn, STORE_OUTBOX, 1, &max);
    if (!rc)
        rc = max_seq_in(s, txn, STORE_AUDIT, 0, &max);
    if (!rc)
        rc = write_next_seq(s, txn, max + 1);
    return rc;
}

/* v2 adds the USAGE database, which store_open() creates with every other one: nothing to
 * move, only the version to record. */
static int step_v1_to_v2(struct store *s, MDB_txn *txn)
{
    (void)s;
    (void)txn;
    return 0;
}

/* v3 indexes the outbox by retry time and by subscription (store_outbox.c): build both from
 * the entries waiting now. */
static int step_v2_to_v3(struct store *s, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->dbi[STORE_OUTBOX], &cur);
    if (rc)
        return store_mdb_err(rc);
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    rc = 0;
    while (mrc == 0 && !rc) {
        unsigned char key[16];
        size_t klen = k.mv_size < sizeof key ? k.mv_size : sizeof key;
        memcpy(key, k.mv_data, klen); /* the index writes may move the page under the cursor */
        rc = store_outbox_index(s, txn, key, klen);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (!rc && mrc != MDB_NOTFOUND)
        rc = store_mdb_err(mrc);
    return rc;
}

/* v4 adds the TIMERS database (created by store_open() like the others): only the version. */
static int step_v3_to_v4(struct store *s, MDB_txn *txn)
{
    (void)s;
    (void)txn;
    return 0;
}

/* v5 adds the EVENTS database (created by store_open() like the others): only the version. */
static int step_v4_to_v5(struct store *s, MDB_txn *txn)
{
    (void)s;
    (void)txn;
    return 0;
}

static const struct migration_step steps[] = {
    {0, "record the append sequence counter in meta", step_v0_to_v1},
    {1, "add the usage database", step_v1_to_v2},
    {2, "index the outbox by retry time and by subscription", step_v2_to_v3},
    {3, "add the timers database", step_v3_to_v4},
    {4, "add the events database", step_v4_to_v5},
};

/* 0 and *present = 0 when the key is absent; SAASD_ESCHEMA when it is not a number. */
static int read_version(struct store *s, MDB_txn *txn, int *present, unsigned *version)
{
    MDB_val k = {sizeof STORE_META_VERSION - 1, STORE_META_VERSION}, v;
    int rc = mdb_get(txn, s->dbi[STORE_META], &k, &v);
    *present = 0;
    *version = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return store_mdb_err(rc);
    char buf[16];
    if (v.mv_size == 0 || v.mv_size >= sizeof buf)
        goto bad;
    memcpy(buf, v.mv_data, v.mv_size);
    buf[v.mv_size] = 0;
    char *end;
    unsigned long n = strtoul(buf, &end, 10);
    if (*end || buf[0] < '0' || buf[0] > '9' || n > 1000000)
        goto bad;
    *present = 1;
    *version = (unsigned)n;
    return 0;
bad:
    log_error("store", "schema_version in meta is not a number; refusing to open", "dir", s->dir);
    return SAASD_ESCHEMA;
}

static int is_empty(struct store *s, MDB_txn *txn, int *empty)
{
    *empty = 1;
    for (int i = 0; i < STORE_DB_COUNT; i++) {
        MDB_stat st;
        int rc = mdb_stat(txn, s->dbi[i], &st);
        if (rc)
            return store_mdb_err(rc);
        if (st.ms_entries)
            *empty = 0;
    }
    return 0;
}

int store_migrate(struct store *s, MDB_txn *txn)
{
    unsigned version;
    int present, empty, rc;
    char from[16], to[16];

    rc = read_version(s, txn, &present, &version);
    if (rc)
        return rc;
    snprintf(from, sizeof from, "%u", version);
    snprintf(to, sizeof to, "%u", (unsigned)STORE_SCHEMA_VERSION);
    if (version > STORE_SCHEMA_VERSION) {
        log_error("store", "schema on disk is newer than this build; refusing to open", "dir",
                  s->dir, "found_version", from, "supported_version", to);
        return SAASD_ESCHEMA;
    }
    rc = is_empty(s, txn, &empty);
    if (rc)
        return rc;
    if (version < STORE_SCHEMA_VERSION) {
        if (!empty)
            log_info("store", "migrating schema", "dir", s->dir, "from_version", from,
                     "to_version", to);
        for (; version < STORE_SCHEMA_VERSION; version++) {
            const struct migration_step *step = NULL;
            for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
                if (steps[i].from == version)
                    step = &steps[i];
            if (!step) {
                snprintf(from, sizeof from, "%u", version);
                log_error("store", "no migration step", "from_version", from);
                return SAASD_EINTERNAL;
            }
            if (!empty) {
                snprintf(from, sizeof from, "%u", version);
                log_info("store", "migration step", "from_version", from, "step", step->what);
            }
            rc = step->run(s, txn);
            if (rc) {
                log_error("store", "migration step failed; data unchanged", "step", step->what,
                          "error", saasd_strerror(rc));
                return rc;
            }
        }
        MDB_val k = {sizeof STORE_META_VERSION - 1, STORE_META_VERSION}, v = {strlen(to), to};
        rc = store_mdb_err(mdb_put(txn, s->dbi[STORE_META], &k, &v, 0));
        if (rc)
            return rc;
        if (empty)
            log_info("store", "created", "dir", s->dir, "schema_version", to);
    }
    s->schema_version = version;

    MDB_val k = {sizeof STORE_META_SEQ - 1, STORE_META_SEQ}, v;
    rc = mdb_get(txn, s->dbi[STORE_META], &k, &v);
    if (rc == 0 && v.mv_size == 8) {
        s->next_seq = store_be64_get(v.mv_data);
        return 0;
    }
    if (rc && rc != MDB_NOTFOUND)
        return store_mdb_err(rc);
    log_error("store", "append_seq missing or malformed in meta; refusing to open", "dir", s->dir);
    return SAASD_ESCHEMA;
}
