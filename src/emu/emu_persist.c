/* --data DIR: the whole emulator state (one JSON document) and the landing-token key are kept
 * in an LMDB environment in DIR, rewritten after every change, so a restarted emulator still
 * knows its offers, subscriptions, operations, usage and webhook log. Signing keys live next
 * to it as PEM files (emu_jwt.c). Without --data none of this runs. */
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/store.h"
#include "emu/emu_internal.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

int emu_persist_open(struct emu *e)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env, (size_t)1 << 30);
    if (rc == 0)
        rc = mdb_env_open(env, e->data_dir, MDB_NOTLS, 0600);
    if (rc != 0) {
        log_error("emulator", "cannot open the LMDB state", "dir", e->data_dir, "error", mdb_strerror(rc));
        if (env)
            mdb_env_close(env);
        return store_mdb_err(rc);
    }
    e->lmdb_env = env;
    return 0;
}

static int put(MDB_txn *txn, MDB_dbi dbi, const char *key, const void *val, size_t len)
{
    MDB_val k = {strlen(key), (void *)(uintptr_t)key}, v = {len, (void *)(uintptr_t)val};
    return mdb_put(txn, dbi, &k, &v, 0);
}

int emu_persist_load(struct emu *e)
{
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = mdb_txn_begin(e->lmdb_env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (rc != 0)
        goto fail;
    MDB_val k = {2, (void *)(uintptr_t)"db"}, v;
    if (mdb_get(txn, dbi, &k, &v) == 0) {
        json_t *db = json_loadb(v.mv_data, v.mv_size, 0, NULL);
        if (db && json_is_object(json_object_get(db, "subs")) && json_is_array(json_object_get(db, "deliveries"))) {
            json_decref(e->db);
            e->db = db;
        } else {
            json_decref(db);
            log_warn("emulator", "stored state unreadable; starting empty", "dir", e->data_dir);
        }
    }
    MDB_val lk = {11, (void *)(uintptr_t)"landing_key"}, lv;
    if (mdb_get(txn, dbi, &lk, &lv) == 0 && lv.mv_size == sizeof e->landing_key) {
        memcpy(e->landing_key, lv.mv_data, sizeof e->landing_key);
    } else {
        crypto_random(e->landing_key, sizeof e->landing_key);
        if ((rc = put(txn, dbi, "landing_key", e->landing_key, sizeof e->landing_key)) != 0)
            goto fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0)
        log_error("emulator", "cannot load the LMDB state", "error", mdb_strerror(rc));
    return store_mdb_err(rc);
}

void emu_persist_flush(struct emu *e)
{
    if (!e->dirty || !e->lmdb_env)
        return;
    char *s = json_dumps(e->db, JSON_COMPACT);
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = s ? mdb_txn_begin(e->lmdb_env, NULL, 0, &txn) : ENOMEM;
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (rc == 0)
        rc = put(txn, dbi, "db", s, strlen(s));
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    free(s);
    if (rc != 0)
        log_error("emulator", "cannot save the state", "error", mdb_strerror(rc));
    else
        e->dirty = 0;
}

void emu_persist_close(struct emu *e)
{
    if (e->lmdb_env)
        mdb_env_close(e->lmdb_env);
    e->lmdb_env = NULL;
}
