/* GET /admin/subscriptions streams its page: a page far larger than libmicrohttpd's buffer
 * arrives whole and valid; records inserted while a page streams are neither lost nor
 * repeated (each refill resumes after the last key it read, in a fresh read transaction); a
 * page cut short by the daemon stopping is one the client can tell from a complete one. */
#include "it_support.h"

#include <curl/curl.h>

#define N_BIG 4000     /* records of about 5 KiB: 20 MiB in one page, more than loopback buffers */
#define PLAN_LEN 5000

static char plan[PLAN_LEN + 1];

static void big_id(char *id, size_t size, char prefix, int i)
{
    snprintf(id, size, "%c%07d-0000-4000-8000-000000000000", prefix, i);
}

static void put_range(struct store *s, char prefix, int from, int n)
{
    struct store_batch *b = NULL;
    store_batch_new(&b);
    for (int i = from; i < from + n; i++) {
        char id[64], *rec = malloc(PLAN_LEN + 256);
        big_id(id, sizeof id, prefix, i);
        snprintf(rec, PLAN_LEN + 256, "{\"id\":\"%s\",\"offerId\":\"big\",\"planId\":\"%s\",\"quantity\":%d,\"status\":\"Subscribed\"}",
                 id, plan, i);
        store_batch_put(b, STORE_SUBSCRIPTIONS, id, strlen(id), rec, strlen(rec));
        free(rec);
    }
    store_commit(s, b);
    store_batch_free(b);
}

/* One GET of the admin API with libcurl; `midway` runs once after 64 KiB have arrived. */
struct fetch {
    char *body;
    size_t len, cap;
    int chunked;
    void (*midway)(void);
    int midway_done;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct fetch *f = arg;
    size_t k = sz * n;
    if (f->len + k + 1 > f->cap) {
        f->cap = (f->len + k + 1) * 2;
        f->body = realloc(f->body, f->cap);
    }
    memcpy(f->body + f->len, p, k);
    f->len += k;
    f->body[f->len] = 0;
    if (f->midway && !f->midway_done && f->len >= 64 * 1024) {
        f->midway_done = 1;
        f->midway();
    }
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct fetch *f = arg;
    if (!strncasecmp(p, "Transfer-Encoding: chunked", 26))
        f->chunked = 1;
    return sz * n;
}

static CURLcode fetch(const char *path, struct fetch *f, long *status)
{
    char url[512], auth[128];
    snprintf(url, sizeof url, "%s%s", it_admin_url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", it_admin_key);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

static struct daemon *the_daemon;

/* While a page streams: 20 records before every listed id (behind the position), 20 between
 * existing ones near the end and 20 after all of them (ahead of it). */
static void insert_meanwhile(void)
{
    put_range(the_daemon->store, 'a', 0, 20);
    put_range(the_daemon->store, 'c', 0, 20);
    struct store_batch *b = NULL;
    store_batch_new(&b);
    for (int i = 0; i < 20; i++) {
        char id[64];
        snprintf(id, sizeof id, "b%07d-5555-4000-8000-000000000000", N_BIG - 100 + i);
        char rec[128];
        snprintf(rec, sizeof rec, "{\"id\":\"%s\",\"offerId\":\"big\",\"planId\":\"small\",\"status\":\"Subscribed\"}", id);
        store_batch_put(b, STORE_SUBSCRIPTIONS, id, strlen(id), rec, strlen(rec));
    }
    store_commit(the_daemon->store, b);
    store_batch_free(b);
}

static void stop_daemon(void)
{
    daemon_stop(the_daemon);
    the_daemon = NULL;
}

/* Every original record once, in strict id order; counts of the inserted kinds. */
static int check_listing(json_t *items, int *orig, int *behind, int *between, int *ahead)
{
    char last[160] = "";
    int ordered = 1;
    *orig = *behind = *between = *ahead = 0;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *id = it_str(it, "id");
        if (strcmp(id, last) <= 0)
            ordered = 0;
        snprintf(last, sizeof last, "%s", id);
        if (id[0] == 'a')
            (*behind)++;
        else if (id[0] == 'c')
            (*ahead)++;
        else if (strstr(id, "-5555-"))
            (*between)++;
        else if (strlen(it_str(it, "planId")) == PLAN_LEN)
            (*orig)++;
    }
    return ordered;
}

static void test_big_page(void)
{
    struct fetch f = {0};
    long st = 0;
    CURLcode rc = fetch("/admin/subscriptions?limit=1000", &f, &st);
    json_t *page = rc == CURLE_OK ? json_loadb(f.body, f.len, 0, NULL) : NULL;
    json_t *items = json_object_get(page, "subscriptions");
    int orig = 0, x1, x2, x3;
    int ordered = check_listing(items, &orig, &x1, &x2, &x3);
    char want_next[64];
    big_id(want_next, sizeof want_next, 'b', 999);
    CHECK(rc == CURLE_OK && st == 200 && f.chunked && f.len > 4 * 1000 * 1000,
          "a page of 1000 records of 5 KiB (5 MB, far beyond libmicrohttpd's 32 KiB buffer) is sent chunked, as it is read");
    CHECK(json_array_size(items) == 1000 && orig == 1000 && ordered && !strcmp(it_str(page, "next_cursor"), want_next),
          "the streamed page arrives complete and valid: 1000 whole records in id order and the next cursor");
    json_decref(page);
    free(f.body);
}

static void test_insert_while_streaming(void)
{
    struct fetch f = {.midway = insert_meanwhile};
    long st = 0;
    CURLcode rc = fetch("/admin/subscriptions?limit=5000", &f, &st);
    json_t *page = rc == CURLE_OK ? json_loadb(f.body, f.len, 0, NULL) : NULL;
    int orig = 0, behind = 0, between = 0, ahead = 0;
    int ordered = check_listing(json_object_get(page, "subscriptions"), &orig, &behind, &between, &ahead);
    CHECK(f.midway_done && page && orig == N_BIG && ordered && behind == 0,
          "records inserted while a page streams lose and repeat nothing: all 4000 once, in order, none of those "
          "inserted behind the position");
    CHECK(between == 20 && ahead == 20,
          "records inserted ahead of a streaming page's position are in it (each chunk reads a fresh snapshot)");
    json_decref(page);
    free(f.body);
}

static void test_pages_across_inserts(void)
{
    /* the walk of test_insert_while_streaming left 60 inserted records; walk everything again
     * in pages of 700 and insert behind and ahead of the cursor between pages */
    char cursor[160] = "", path[512];
    int seen_orig = 0, seen_new = 0, repeats = 0, pages = 0;
    char last[160] = "";
    for (;;) {
        snprintf(path, sizeof path, "/admin/subscriptions?limit=700%s%s", cursor[0] ? "&cursor=" : "", cursor);
        long st = 0;
        json_t *page = it_admin("GET", path, NULL, &st);
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(page, "subscriptions"), i, it)
        {
            const char *id = it_str(it, "id");
            repeats += strcmp(id, last) <= 0;
            snprintf(last, sizeof last, "%s", id);
            seen_orig += id[0] == 'b' && !strstr(id, "-5555-");
            seen_new += id[0] == 'd';
        }
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(page);
        if (!next || ++pages > 50)
            break;
        if (pages == 1) {
            put_range(the_daemon->store, 'a', 100, 5); /* behind the cursor */
            put_range(the_daemon->store, 'd', 0, 5);   /* ahead of it */
        }
    }
    CHECK(seen_orig == N_BIG && repeats == 0 && seen_new == 5,
          "following next_cursor across inserts lists every record once, in order, and those inserted ahead");
}

static void test_stop_midway(const char *dir)
{
    struct fetch f = {.midway = stop_daemon};
    long st = 0;
    CURLcode rc = fetch("/admin/subscriptions?limit=5000", &f, &st);
    json_t *page = json_loadb(f.body ? f.body : "", f.len, 0, NULL);
    CHECK(f.midway_done && st == 200 && (rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR) && !page,
          "a page cut short by the daemon stopping is a transfer error for the client (no final chunk) and not "
          "valid JSON: never a complete-looking 200");
    if (rc != CURLE_PARTIAL_FILE && rc != CURLE_RECV_ERROR)
        printf("# curl: %s, %zu bytes\n", curl_easy_strerror(rc), f.len);
    json_decref(page);
    free(f.body);

    /* the CLI against the stopped daemon: exit 1 and no closed document on stdout */
    char cmd[1400], out[4096] = "";
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/saasd admin --config %s/saasd.conf subscriptions 2>/dev/null", build, dir);
    FILE *p = popen(cmd, "r");
    size_t len = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[len] = 0;
    int cli_rc = p ? pclose(p) : -1;
    json_t *doc = json_loads(out, 0, NULL);
    CHECK(WIFEXITED(cli_rc) && WEXITSTATUS(cli_rc) == 1 && !doc,
          "a listing the CLI cannot finish exits 1 and leaves its document unclosed (not valid JSON)");
    json_decref(doc);
}

int main(void)
{
    memset(plan, 'p', PLAN_LEN);
    char dir[256], rules[512];
    struct emu *emu = NULL;
    the_daemon = it_setup_and_start("stream", dir, rules, &emu);
    if (!the_daemon)
        return CHECK_DONE();
    put_range(the_daemon->store, 'b', 0, N_BIG);
    test_big_page();
    test_insert_while_streaming();
    test_pages_across_inserts();
    test_stop_midway(dir);
    daemon_stop(the_daemon);
    emu_stop(emu);
    check_rm_rf(dir);
    return CHECK_DONE();
}
