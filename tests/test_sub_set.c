/* The inbox scans' set of passed-over subscriptions (src/daemon/sub_set.c): what was added is
 * found, nothing else is, a clear forgets everything, and growth keeps every id. */
#include "check.h"
#include "daemon/sub_set.h"

static void id_of(char *buf, size_t len, int i)
{
    snprintf(buf, len, "%08x-0000-4000-8000-%012d", (unsigned)i * 2654435761u, i);
}

int main(void)
{
    struct sub_set *s = NULL;
    CHECK(sub_set_new(&s) == 0 && s, "a new set is made");
    CHECK(!sub_set_has(s, "a") && sub_set_count(s) == 0, "a new set holds nothing");

    sub_set_add(s, "sub-1");
    sub_set_add(s, "sub-1");
    CHECK(sub_set_has(s, "sub-1") && sub_set_count(s) == 1, "an id added twice is in the set once");
    CHECK(!sub_set_has(s, "sub-") && !sub_set_has(s, "sub-10") && !sub_set_has(s, ""),
          "a prefix or an extension of an added id is not in the set");
    sub_set_add(s, "");
    CHECK(sub_set_has(s, "") && sub_set_count(s) == 2, "the empty id is an id like any other");

    sub_set_clear(s);
    CHECK(!sub_set_has(s, "sub-1") && !sub_set_has(s, "") && sub_set_count(s) == 0, "a clear forgets every id");

    /* far past the initial slots: growth must move every id over */
    char id[64];
    int added_ok = 1;
    for (int i = 0; i < 20000; i++) {
        id_of(id, sizeof id, i);
        added_ok &= sub_set_add(s, id) == 0;
    }
    int all = 1, none = 1;
    for (int i = 0; i < 20000; i++) {
        id_of(id, sizeof id, i);
        all &= sub_set_has(s, id);
        id_of(id, sizeof id, i + 20000);
        none &= !sub_set_has(s, id);
    }
    CHECK(added_ok && sub_set_count(s) == 20000, "20 000 distinct ids are added");
    CHECK(all, "every id added before the set grew is still found after it grew");
    CHECK(none, "no id that was not added is found in a grown set");

    /* many passes: each clear leaves only what was added since */
    int each_pass = 1;
    for (int pass = 0; pass < 1000; pass++) {
        sub_set_clear(s);
        id_of(id, sizeof id, pass);
        sub_set_add(s, id);
        char prev[64];
        id_of(prev, sizeof prev, pass ? pass - 1 : 1);
        each_pass &= sub_set_has(s, id) && !sub_set_has(s, prev) && sub_set_count(s) == 1;
    }
    CHECK(each_pass, "after each of 1 000 clears only the ids added since are in the set");
    sub_set_free(s);
    return CHECK_DONE();
}
