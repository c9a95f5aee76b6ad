/* A damaged store is refused at start with the file's name and what to do (a truncated
 * data.mdb used to crash with SIGBUS, an empty one to start silently empty); a map filled up
 * to map_size_max can be emptied again and what is freed takes large values without a
 * restart (deletes used to fail with SAASD_EFULL on a full map). */
#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "core/store.h"

#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY(s) (s), strlen(s)

static int put(struct store *s, const char *key, const void *val, size_t len)
{
    struct store_batch *b;
    store_batch_new(&b);
    store_batch_put(b, STORE_RULE_KV, KEY(key), val, len);
    int rc = store_commit(s, b);
    store_batch_free(b);
    return rc;
}

static void fill(const char *dir)
{
    struct store *s;
    store_open(dir, NULL, &s);
    char val[3000];
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%04d", i);
        memset(val, 'a' + i % 26, sizeof val);
        put(s, k, val, sizeof val);
    }
    store_close(s);
}

/* Open the store in a child (a SIGBUS must not take the test down); its stderr goes to log.
 * Returns the child's exit status (0 opened, 1 refused), or 128 + signal. */
static int open_in_child(const char *dir, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        struct store *s = NULL;
        int rc = store_open(dir, NULL, &s);
        if (rc == 0) {
            void *v;
            size_t n;
            for (int i = 0; i < 300; i++) { /* read everything: a truncated file faults here */
                char k[32];
                snprintf(k, sizeof k, "k%04d", i);
                if (store_get(s, STORE_RULE_KV, KEY(k), &v, &n) == 0)
                    free(v);
            }
            store_close(s);
        }
        _exit(rc == 0 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int log_has(const char *log, const char *a, const char *b)
{
    char buf[8192] = {0};
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    if (!strstr(buf, a) || !strstr(buf, b))
        printf("# log: %.600s\n", buf);
    return strstr(buf, a) && strstr(buf, b);
}

/* The bytes of data.mdb holding pages LMDB uses: the file itself is longer (the store's writer
 * keeps blocks written ahead of use), so cutting it in half need not cut a used page. */
static off_t used_bytes(const char *dir)
{
    MDB_env *env = NULL;
    MDB_envinfo info;
    MDB_stat ms;
    off_t used = 0;
    if (mdb_env_create(&env) == 0 && mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) == 0 &&
        mdb_env_info(env, &info) == 0 && mdb_env_stat(env, &ms) == 0)
        used = ((off_t)info.me_last_pgno + 1) * ms.ms_psize;
    if (env)
        mdb_env_close(env);
    return used;
}

static void damaged(const char *label, off_t size, const char *says)
{
    char *dir = check_tmpdir("store-damage");
    char data[600], log[600], name[300];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    snprintf(log, sizeof log, "%s.log", dir);
    fill(dir);
    off_t used = used_bytes(dir);
    CHECK(used > 0 && truncate(data, size < 0 ? used / 2 : size) == 0, "the store file is cut");
    int status = open_in_child(dir, log);
    snprintf(name, sizeof name, "a %s data.mdb is refused at open (child status %d, 1 = refused)", label, status);
    CHECK(status == 1, name);
    snprintf(name, sizeof name, "the refusal of a %s data.mdb names the file and says %s", label, says);
    CHECK(log_has(log, data, says), name);
    CHECK(log_has(log, "restore the data directory from a backup", "move data.mdb away"),
          "the refusal says what to do");
    unlink(log);
    check_rm_rf(dir);
    free(dir);
}

static int del(struct store *s, const char *key)
{
    struct store_batch *b;
    store_batch_new(&b);
    store_batch_del(b, STORE_RULE_KV, KEY(key));
    int rc = store_commit(s, b);
    store_batch_free(b);
    return rc;
}

static void full_map_is_reusable(void)
{
    char *dir = check_tmpdir("store-full");
    struct store_options opt = {.map_size = 1 << 20, .map_size_max = 2 << 20, .no_sync = 1}; /* not about fsync */
    struct store *s;
    CHECK(store_open(dir, &opt, &s) == 0, "a store with a 2 MiB map cap opens");
    char small[1000], k[32];
    memset(small, 'x', sizeof small);
    int n = 0;
    for (; n < 100000; n++) {
        snprintf(k, sizeof k, "s%06d", n);
        if (put(s, k, small, sizeof small) != 0)
            break;
    }
    snprintf(k, sizeof k, "s%06d", n);
    CHECK(n > 100 && put(s, k, small, sizeof small) == SAASD_EFULL, "the map fills up to map_size_max");
    int refused = 0, first_refused = -1;
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "s%06d", i);
        int r = del(s, k);
        refused += r != 0;
        if (r && first_refused < 0)
            first_refused = i;
    }
    struct store_stats st0;
    store_get_stats(s, &st0);
    printf("# first refused %d, map %llu grows %llu\n", first_refused, (unsigned long long)st0.map_size, (unsigned long long)st0.map_grows);
    char name[200];
    snprintf(name, sizeof name, "every delete on the full map goes through (%d of %d refused)", refused, n);
    CHECK(refused == 0, name);
    size_t len = 64 << 10;
    char *big = calloc(1, len);
    int fit = 0;
    for (int i = 0; i < 16; i++) { /* 1 MiB of large values into the freed space */
        snprintf(k, sizeof k, "big%02d", i);
        fit += put(s, k, big, len) == 0;
    }
    snprintf(name, sizeof name, "the freed space takes 64 KiB values again without a restart (%d of 16)", fit);
    CHECK(fit == 16, name);
    struct store_stats st;
    store_get_stats(s, &st);
    CHECK(st.map_size <= (2u << 20) + (1u << 20), "the map stayed within its cap plus the delete reserve");

    /* the reserve was given back: a second fill can be emptied again */
    int n2 = 0;
    for (; n2 < 100000; n2++) {
        snprintf(k, sizeof k, "t%06d", n2);
        if (put(s, k, small, sizeof small) != 0)
            break;
    }
    refused = 0;
    for (int i = 0; i < n2; i++) {
        snprintf(k, sizeof k, "t%06d", i);
        refused += del(s, k) != 0;
    }
    for (int i = 0; i < 16; i++) {
        snprintf(k, sizeof k, "big%02d", i);
        refused += del(s, k) != 0;
    }
    snprintf(name, sizeof name, "after a second fill every delete still goes through (%d refused)", refused);
    CHECK(n2 > 0 && refused == 0, name);
    free(big);
    store_close(s);
    check_rm_rf(dir);
    free(dir);
}

int main(void)
{
    log_set_level(LOG_WARN);
    damaged("truncated", -1, "truncated");
    damaged("zero-length", 0, "empty (0 bytes)");
    damaged("short (100 bytes)", 100, "cannot open the store");
    full_map_is_reusable();
    return CHECK_DONE();
}
