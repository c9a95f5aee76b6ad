/* The outbox's indexes (store.h: OUTBOX_DUE by retry time, OUTBOX_SUBS by subscription) follow
 * every OUTBOX write in the same transaction, whoever writes it (append, put, delete), and a
 * version-2 store gets them built by the migration. */
#include "check.h"
#include "core/err.h"
#include "core/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seen {
    int n;
    unsigned char key[64];
    size_t klen;
    char val[64];
};

static int collect(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct seen *s = arg;
    if (!s->n && klen <= sizeof s->key && vlen < sizeof s->val) {
        memcpy(s->key, key, klen);
        s->klen = klen;
        memcpy(s->val, val, vlen);
        s->val[vlen] = 0;
    }
    s->n++;
    return 0;
}

static struct seen scan(struct store *s, enum store_db db)
{
    struct seen out = {0};
    store_scan(s, db, NULL, 0, collect, &out);
    return out;
}

static uint64_t be64_at(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int commit_one(struct store *s, int del, enum store_db db, const void *key, size_t klen, const char *val,
                      uint64_t *seq)
{
    struct store_batch *b = NULL;
    int rc = store_batch_new(&b);
    if (!rc)
        rc = del ? store_batch_del(b, db, key, klen)
             : key ? store_batch_put(b, db, key, klen, val, strlen(val))
                   : store_batch_append(b, db, NULL, 0, val, strlen(val));
    if (!rc)
        rc = store_commit(s, b);
    if (!rc && seq)
        store_batch_seq(b, seq);
    store_batch_free(b);
    return rc;
}

/* The due index names (next_at, seq) -> sub; the by-subscription one (sub, seq) -> next_at. */
static int indexed_as(struct store *s, uint64_t seq, uint64_t next_at, const char *sub)
{
    struct seen due = scan(s, STORE_OUTBOX_DUE), by_sub = scan(s, STORE_OUTBOX_SUBS);
    size_t n = strlen(sub);
    return due.n == 1 && due.klen == 16 && be64_at(due.key) == next_at && be64_at(due.key + 8) == seq &&
           !strcmp(due.val, sub) && by_sub.n == 1 && by_sub.klen == n + 9 && !memcmp(by_sub.key, sub, n + 1) &&
           be64_at(by_sub.key + n + 1) == seq && be64_at((const unsigned char *)by_sub.val) == next_at;
}

static void test_writes(void)
{
    char *dir = check_tmpdir("outbox-index");
    struct store *s = NULL;
    CHECK(store_open(dir, NULL, &s) == 0, "a store opens");
    if (!s)
        return;
    uint64_t seq = 0;
    int rc = commit_one(s, 0, STORE_OUTBOX, NULL, 0,
                        "{\"next_at_ms\":5000,\"op_id\":\"op-1\",\"sub_id\":\"sub-a\",\"attempts\":1}", &seq);
    CHECK(rc == 0 && indexed_as(s, seq, 5000, "sub-a"), "an appended outbox entry is indexed by its retry time and subscription");
    unsigned char key[8];
    for (int i = 7; i >= 0; i--)
        key[i] = (unsigned char)(seq >> (8 * (7 - i)));
    rc = commit_one(s, 0, STORE_OUTBOX, key, 8, "{\"next_at_ms\":9000,\"op_id\":\"op-1\",\"sub_id\":\"sub-a\",\"attempts\":2}",
                    NULL);
    CHECK(rc == 0 && indexed_as(s, seq, 9000, "sub-a"), "rewriting an entry with a later retry time moves its index entries");
    rc = commit_one(s, 0, STORE_OUTBOX, key, 8, "{\"attempts\":3,\"sub_id\":\"sub-b\",\"next_at_ms\":0}", NULL);
    CHECK(rc == 0 && indexed_as(s, seq, 0, "sub-b"), "an entry in another member order is indexed by its parsed fields");
    rc = commit_one(s, 1, STORE_OUTBOX, key, 8, NULL, NULL);
    CHECK(rc == 0 && scan(s, STORE_OUTBOX_DUE).n == 0 && scan(s, STORE_OUTBOX_SUBS).n == 0,
          "deleting an outbox entry removes both of its index entries");
    store_close(s);

    /* A version-2 store: an outbox entry without index entries, as the old build left it. */
    store_open(dir, NULL, &s);
    commit_one(s, 0, STORE_OUTBOX, NULL, 0, "{\"next_at_ms\":7000,\"op_id\":\"op-2\",\"sub_id\":\"sub-c\"}", &seq);
    struct seen due = scan(s, STORE_OUTBOX_DUE), by_sub = scan(s, STORE_OUTBOX_SUBS);
    commit_one(s, 1, STORE_OUTBOX_DUE, due.key, due.klen, NULL, NULL);
    commit_one(s, 1, STORE_OUTBOX_SUBS, by_sub.key, by_sub.klen, NULL, NULL);
    commit_one(s, 0, STORE_META, "schema_version", 14, "2", NULL);
    int unindexed = scan(s, STORE_OUTBOX_DUE).n == 0 && scan(s, STORE_OUTBOX_SUBS).n == 0;
    store_close(s);
    s = NULL;
    rc = store_open(dir, NULL, &s);
    unsigned ver = 0;
    if (s)
        store_schema_version(s, &ver);
    CHECK(unindexed && rc == 0 && ver == STORE_SCHEMA_VERSION && indexed_as(s, seq, 7000, "sub-c"),
          "opening a version-2 store builds the outbox indexes from the entries waiting");
    store_close(s);
    check_rm_rf(dir);
    free(dir);
}

int main(void)
{
    test_writes();
    return CHECK_DONE();
}
