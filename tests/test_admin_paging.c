/* GET /admin/subscriptions is paged: limit, cursor, offer and status filters; following
 * next_cursor visits every subscription exactly once in id order; the CLI follows the pages
 * and prints them all as one document. */
#include "it_support.h"

#define N_SUBS 2503 /* more than the CLI's page of 1000, so it must follow cursors */

static void put_subs(struct store *s)
{
    struct store_batch *b = NULL;
    store_batch_new(&b);
    for (int i = 0; i < N_SUBS; i++) {
        char id[64], rec[256];
        snprintf(id, sizeof id, "p%07d-0000-4000-8000-000000000000", i);
        snprintf(rec, sizeof rec, "{\"id\":\"%s\",\"offerId\":\"%s\",\"planId\":\"team\",\"quantity\":1,\"status\":\"%s\"}", id,
                 i % 3 ? "page-offer" : "other-offer", i % 2 ? "Subscribed" : "Suspended");
        store_batch_put(b, STORE_SUBSCRIPTIONS, id, strlen(id), rec, strlen(rec));
    }
    store_commit(s, b);
    store_batch_free(b);
}

/* Walk every page of `query`; returns how many items, checks order and no repeats. */
static int walk(const char *query, int limit, int *pages, int *ordered, int *max_page)
{
    char cursor[160] = "", path[512];
    int n = 0;
    char last[160] = "";
    *pages = 0;
    *ordered = 1;
    *max_page = 0;
    for (;;) {
        snprintf(path, sizeof path, "/admin/subscriptions?limit=%d%s%s%s", limit, query, cursor[0] ? "&cursor=" : "",
                 cursor);
        long st = 0;
        json_t *page = it_admin("GET", path, NULL, &st);
        json_t *items = json_object_get(page, "subscriptions");
        if (st != 200 || !json_is_array(items)) {
            json_decref(page);
            return -1;
        }
        (*pages)++;
        int count = (int)json_array_size(items);
        *max_page = count > *max_page ? count : *max_page;
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            const char *id = json_string_value(json_object_get(it, "id"));
            if (!id || strcmp(id, last) <= 0)
                *ordered = 0;
            snprintf(last, sizeof last, "%s", id ? id : "");
            n++;
        }
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(page);
        if (!next || *pages > N_SUBS)
            break;
    }
    return n;
}

int main(void)
{
    char dir[256], rules[512];
    struct emu *emu = NULL;
    struct daemon *d = it_setup_and_start("paging", dir, rules, &emu);
    if (!d)
        return CHECK_DONE();
    put_subs(d->store);
    int pages = 0, ordered = 0, max_page = 0;
    int n = walk("", 400, &pages, &ordered, &max_page);
    CHECK(n == N_SUBS && ordered && pages == 7 && max_page == 400,
          "following next_cursor with limit=400 lists all 2503 subscriptions once each, in id order, 7 pages of at most 400");
    int want_offer = 0, want_both = 0;
    for (int i = 0; i < N_SUBS; i++) {
        want_offer += i % 3 != 0;
        want_both += i % 3 != 0 && i % 2 == 0;
    }
    n = walk("&offer=PAGE-OFFER", 500, &pages, &ordered, &max_page);
    CHECK(n == want_offer && ordered, "offer= keeps only that offer's subscriptions (case-insensitively) across pages");
    n = walk("&offer=page-offer&status=suspended", 250, &pages, &ordered, &max_page);
    CHECK(n == want_both && ordered, "offer= and status= together keep the subscriptions matching both");
    long st = 0;
    json_decref(it_admin("GET", "/admin/subscriptions?limit=0", NULL, &st));
    long st_big = 0;
    json_decref(it_admin("GET", "/admin/subscriptions?limit=5001", NULL, &st_big));
    CHECK(st == 400 && st_big == 400, "a limit outside 1..5000 is refused with 400");
    long st_text = 0, st_empty = 0;
    json_decref(it_admin("GET", "/admin/subscriptions?limit=12abc", NULL, &st_text));
    json_decref(it_admin("GET", "/admin/subscriptions?limit=", NULL, &st_empty));
    CHECK(st_text == 400 && st_empty == 400, "a limit that is not a whole number, or empty, is refused with 400");
    json_t *first = it_admin("GET", "/admin/subscriptions", NULL, &st);
    CHECK(st == 200 && json_array_size(json_object_get(first, "subscriptions")) == 500 &&
              json_is_string(json_object_get(first, "next_cursor")),
          "without a limit a page holds 500 subscriptions and names the next cursor");
    json_decref(first);

    char cmd[1400];
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/saasd admin --config %s/saasd.conf subscriptions status=Subscribed 2>/dev/null", build, dir);
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    while (p && out && len + 1 < cap) {
        size_t got = fread(out + len, 1, cap - 1 - len, p);
        if (!got)
            break;
        len += got;
    }
    out[len] = 0;
    int cli_rc = p ? pclose(p) : -1;
    json_t *listed = json_loads(out, 0, NULL);
    CHECK(cli_rc == 0 && (int)json_array_size(json_object_get(listed, "subscriptions")) == N_SUBS / 2,
          "the CLI follows the pages (1000 each) and prints all 1251 Subscribed ones as one document");
    json_decref(listed);
    free(out);

    daemon_stop(d);
    emu_stop(emu);
    check_rm_rf(dir);
    return CHECK_DONE();
}
