/* Damage checks around mdb_env_open. LMDB takes an empty data.mdb for a new environment (a
 * store that lost its file would start silently empty) and maps a truncated one without
 * complaint (the first read past the end of the file is a SIGBUS). Both are refused here with
 * the file's name and what to do. */
#include "core/err.h"
#include "core/log.h"
#include "core/store_internal.h"

#include <stdio.h>
#include <sys/stat.h>

#define WHAT_TO_DO "restore the data directory from a backup, or move data.mdb away to start with an empty store"

int store_check_before_open(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) != 0 || st.st_size != 0)
        return 0; /* absent: a new store; present: checked after the open */
    log_error("store", "the store file is empty (0 bytes): it was truncated or lost, refusing to start with an empty "
              "store", "file", path, "fix", WHAT_TO_DO);
    return SAASD_EIO;
}

void store_log_open_error(const char *dir, int mdb_rc, const char *mdb_msg)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    log_error("store", "cannot open the store (a damaged or foreign data.mdb?)", "file", path, "error", mdb_msg,
              "fix", mdb_rc == MDB_INVALID || mdb_rc == MDB_VERSION_MISMATCH ? WHAT_TO_DO : "-");
}

int store_check_after_open(const char *dir, MDB_env *env)
{
    char path[4096];
    struct stat st;
    MDB_envinfo info;
    MDB_stat ms;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) != 0 || mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &ms) != 0)
        return 0;
    unsigned long long need = ((unsigned long long)info.me_last_pgno + 1) * ms.ms_psize;
    if ((unsigned long long)st.st_size >= need)
        return 0;
    char have_s[32], need_s[32];
    snprintf(have_s, sizeof have_s, "%lld", (long long)st.st_size);
    snprintf(need_s, sizeof need_s, "%llu", need);
    log_error("store", "the store file is truncated: it is shorter than the pages LMDB says are in use", "file", path,
              "bytes", have_s, "needed", need_s, "fix", WHAT_TO_DO);
    return SAASD_EIO;
}
