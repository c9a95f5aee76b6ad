/* Key templates of ctx.store prefetching (engine/prefetch.c): what is learned from a read,
 * which key a template gives for another subscription, and when a template is dropped. */
#include "check.h"
#include "engine/prefetch.h"

#include <string.h>

static int key_is(const struct prefetch *p, size_t i, const char *sub_id, const char *want)
{
    char buf[PREFETCH_KEY_MAX];
    size_t n = prefetch_key(p, i, sub_id, buf);
    return want ? n == strlen(want) && memcmp(buf, want, n) == 0 : n == 0;
}

static void test_learn(void)
{
    struct prefetch p = {0};
    prefetch_learn(&p, "sub-1", "seats:sub-1:count", 17);
    prefetch_learn(&p, "sub-2", "seats:sub-2:count", 17);
    prefetch_learn(&p, "sub-1", "global", 6);
    CHECK(p.n == 2, "a key read again for another subscription is the same template, learned once");
    CHECK(key_is(&p, 0, "sub-9", "seats:sub-9:count"),
          "a template made of the subscription id gives the key of the call's own subscription");
    CHECK(key_is(&p, 1, "sub-9", "global") && key_is(&p, 1, NULL, "global"),
          "a key without the id is a constant, sent for every call");
    CHECK(key_is(&p, 0, NULL, NULL), "a template made of the id gives no key for a call without one");
    prefetch_learn(&p, NULL, "other", 5);
    CHECK(p.n == 2, "nothing is learned from a call without a subscription id");
    char big[PREFETCH_KEY_MAX + 1];
    memset(big, 'k', sizeof big);
    prefetch_learn(&p, "sub-1", big, sizeof big);
    CHECK(p.n == 2, "a key longer than a template holds is not learned");
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        prefetch_learn(&p, "sub-1", k, strlen(k));
    }
    CHECK(p.n == PREFETCH_MAX, "at most PREFETCH_MAX templates are kept");
}

static void test_settle(void)
{
    struct prefetch p = {0};
    prefetch_learn(&p, "s", "a:s", 3);
    prefetch_learn(&p, "s", "b", 1);
    size_t sent[2] = {0, 1};
    for (int i = 0; i < PREFETCH_IDLE_MAX - 1; i++)
        prefetch_settle(&p, sent, 2, 1u << 0);
    CHECK(p.n == 2, "a template unused fewer than PREFETCH_IDLE_MAX calls in a row is kept");
    prefetch_settle(&p, sent, 2, 1u << 0);
    CHECK(p.n == 1 && key_is(&p, 0, "x", "a:x"),
          "a template sent and unused PREFETCH_IDLE_MAX calls in a row is dropped, the used one stays");
    size_t one[1] = {0};
    for (int i = 0; i < PREFETCH_IDLE_MAX - 1; i++)
        prefetch_settle(&p, one, 1, 0);
    prefetch_settle(&p, one, 1, 1);
    prefetch_settle(&p, one, 1, 0);
    CHECK(p.n == 1, "a use resets the count of unused calls");
}

int main(void)
{
    test_learn();
    test_settle();
    return CHECK_DONE();
}
