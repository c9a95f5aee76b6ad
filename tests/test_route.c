/* The routers' path patterns (src/core/route.c): literal text matches only itself, each {part}
 * takes what route.h says and nothing else, and a part too long for its buffer does not match. */
#include "check.h"
#include "core/route.h"

int main(void)
{
    struct route_args a;
    CHECK(route_matches("/admin/rules", "/admin/rules", &a) && !*a.id && !*a.rest && !*a.tail,
          "a literal pattern matches its own path and captures nothing");
    CHECK(!route_matches("/admin/rules", "/admin/rules/", &a) && !route_matches("/admin/rules", "/admin/rule", &a) &&
              !route_matches("/admin/rules", "/admin/rulesx", &a),
          "a literal pattern does not match a longer, shorter or different path");
    CHECK(route_matches("/s/{id}/{rest}", "/s/abc/history/x", &a) && !strcmp(a.id, "abc") &&
              !strcmp(a.rest, "history/x"),
          "{id} takes one segment and {rest} the remainder, slashes included");
    CHECK(!route_matches("/s/{id}/{rest}", "/s/abc/", &a) && !route_matches("/s/{id}", "/s/", &a) &&
              !route_matches("/s/{id}", "/s/a/b", &a),
          "{id} and {rest} are never empty, and {id} never holds a slash");
    CHECK(route_matches("/o/{seq}/{rest}", "/o/42/retry", &a) && !strcmp(a.id, "42") &&
              !route_matches("/o/{seq}/{rest}", "/o/4x/retry", &a),
          "{seq} takes digits only");
    CHECK(route_matches("/u{tail}", "/u", &a) && !strcmp(a.tail, "") && route_matches("/u{tail}", "/u/flush", &a) &&
              !strcmp(a.tail, "/flush") && !route_matches("/u{tail}", "/ux", &a),
          "{tail} is nothing or starts with a slash");
    char long_id[200], path[260];
    memset(long_id, 'a', 160);
    long_id[160] = 0;
    snprintf(path, sizeof path, "/s/%s", long_id);
    CHECK(!route_matches("/s/{id}", path, &a), "an {id} longer than its buffer does not match (it is not cut)");
    long_id[159] = 0;
    snprintf(path, sizeof path, "/s/%s", long_id);
    CHECK(route_matches("/s/{id}", path, &a) && strlen(a.id) == 159, "an {id} that fits is taken whole");
    CHECK(route_row_matches("POST", "/r/{id}", "POST", "/r/x", &a) &&
              !route_row_matches("POST", "/r/{id}", "GET", "/r/x", &a) &&
              route_row_matches(NULL, "/r/{id}", "DELETE", "/r/x", &a) &&
              !route_row_matches(NULL, "/r/{id}", "GET", "/q/x", &a),
          "a table row matches only its own method (any, without one) and only its own pattern");
    return CHECK_DONE();
}
