/* Reconciliation walks Microsoft's list page by page and stores each page's repairs together:
 * 30 subscriptions saasd never saw, listed 7 to a page, are all recorded locally in about one
 * batch per page (not one per subscription), and local records Microsoft does not list are
 * still flagged once the walk is complete. Passes started together (the periodic one and
 * POST /admin/reconcile) all finish: each holds many subscription lock stripes at once. */
#include "it_support.h"

#include <stdatomic.h>

#define BOUGHT 30
#define LOCAL_ONLY 3
#define MANY_UNLISTED 900 /* several chunks of 256, each holding most of the 64 stripes */
#define PASSERS 3
#define PASSES 4

static atomic_int passes_done;

static void *passer(void *arg)
{
    for (int i = 0; i < PASSES; i++) {
        reconcile_once(arg, NULL);
        passes_done++;
    }
    return NULL;
}

/* Until every pass has finished, or 0 after 120 s (passes stuck on each other's stripes). */
static int concurrent_passes_finish(struct daemon *d)
{
    struct store_batch *b = NULL;
    store_batch_new(&b);
    for (int i = 0; i < MANY_UNLISTED; i++) {
        char id[64], rec[200];
        snprintf(id, sizeof id, "%08x-0000-4000-8000-%012d", (unsigned)rand(), i);
        snprintf(rec, sizeof rec, "{\"id\":\"%s\",\"offerId\":\"recon-offer\",\"planId\":\"team\",\"status\":\"Subscribed\"}", id);
        store_batch_put(b, STORE_SUBSCRIPTIONS, id, strlen(id), rec, strlen(rec));
    }
    store_commit(d->store, b);
    store_batch_free(b);
    pthread_t t[PASSERS];
    for (int i = 0; i < PASSERS; i++) {
        pthread_create(&t[i], NULL, passer, d);
        usleep((useconds_t)(rand() % 20000));
    }
    for (long long until = it_now_ms() + 120000; it_now_ms() < until && passes_done < PASSERS * PASSES;)
        usleep(50 * 1000);
    if (passes_done < PASSERS * PASSES)
        return 0;
    for (int i = 0; i < PASSERS; i++)
        pthread_join(t[i], NULL);
    return 1;
}

int main(void)
{
    char dir[256], rules[512];
    struct emu *emu = NULL;
    struct daemon *d = it_setup_and_start("recon-pages", dir, rules, &emu);
    if (!d)
        return CHECK_DONE();
    long st = 0;
    json_decref(it_emu("PUT", "/_emulator/config", json_pack("{s:i}", "pageSize", 7), &st));
    it_offer("recon-offer");
    char subs[BOUGHT][128];
    for (int i = 0; i < BOUGHT; i++)
        free(it_purchase("recon-offer", 1, subs[i], sizeof subs[i]));
    struct store_batch *b = NULL;
    store_batch_new(&b);
    for (int i = 0; i < LOCAL_ONLY; i++) {
        char id[64], rec[200];
        snprintf(id, sizeof id, "0ca10000-0000-4000-8000-00000000000%d", i);
        snprintf(rec, sizeof rec, "{\"id\":\"%s\",\"offerId\":\"recon-offer\",\"planId\":\"team\",\"status\":\"Subscribed\"}", id);
        store_batch_put(b, STORE_SUBSCRIPTIONS, id, strlen(id), rec, strlen(rec));
    }
    store_commit(d->store, b);
    store_batch_free(b);

    struct store_stats before, after;
    store_get_stats(d->store, &before);
    json_t *r = it_admin("POST", "/admin/reconcile", NULL, &st);
    store_get_stats(d->store, &after);
    int recorded = 0;
    for (int i = 0; i < BOUGHT; i++) {
        json_t *rec = it_local(subs[i]);
        recorded += rec && !strcmp(it_str(rec, "status"), "PendingFulfillmentStart");
        json_decref(rec);
    }
    unsigned long batches = (unsigned long)(after.batches - before.batches);
    printf("# reconcile: HTTP %ld, %d of %d recorded, %lu batches\n", st, recorded, BOUGHT, batches);
    CHECK(st == 200 && recorded == BOUGHT, "a pass over 5 pages of 7 records every subscription saasd never saw");
    CHECK(batches >= 5 && batches <= 7,
          "the 30 repairs and the 3 flags are stored in one batch per page and one for the unlisted (not 33 batches)");
    int flagged = 0;
    for (int i = 0; i < LOCAL_ONLY; i++) {
        char id[64];
        snprintf(id, sizeof id, "0ca10000-0000-4000-8000-00000000000%d", i);
        json_t *rec = it_local(id);
        flagged += rec && json_is_true(json_object_get(rec, "missing_at_microsoft"));
        json_decref(rec);
    }
    CHECK(flagged == LOCAL_ONLY, "local subscriptions Microsoft does not list are flagged after the complete walk");
    json_decref(r);

    srand((unsigned)getpid());
    int finished = concurrent_passes_finish(d);
    printf("# %d of %d concurrent passes finished\n", (int)passes_done, PASSERS * PASSES);
    CHECK(finished, "3 reconciliation passes at once over 900 unlisted subscriptions all finish (no deadlock on the stripes)");
    if (!finished) /* its threads hold stripes forever: stopping the daemon would hang too */
        return CHECK_DONE();

    daemon_stop(d);
    emu_stop(emu);
    check_rm_rf(dir);
    return CHECK_DONE();
}
