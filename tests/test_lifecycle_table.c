/* The README's life-cycle table mirrors the table the flow code reads (src/daemon/lifecycle.c):
 * one row per marketplace action, the same ACK, handler, local state, refusal, rerun and rule
 * error columns; and lookups use it (both request-source spellings included). */
#include "check.h"
#include "daemon/lifecycle.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CELLS 10

/* Split a Markdown table line "| a | b |" into trimmed cells; returns the count. */
static int cells_of(char *line, char *cells[MAX_CELLS])
{
    int n = 0;
    char *p = strchr(line, '|');
    while (p && n < MAX_CELLS) {
        char *start = p + 1, *end = strchr(start, '|');
        if (!end)
            break;
        *end = 0;
        while (*start == ' ')
            start++;
        for (char *t = end - 1; t >= start && *t == ' '; t--)
            *t = 0;
        cells[n++] = start;
        p = end;
    }
    return n;
}

/* The README row for action (cells copied into buf), or 0 cells. */
static int readme_row(const char *readme, const char *action, char *buf, size_t size, char *cells[MAX_CELLS])
{
    const char *sec = strstr(readme, "<!-- lifecycle-table");
    char want[96];
    snprintf(want, sizeof want, "\n| `%s` |", action);
    const char *row = sec ? strstr(sec, want) : NULL;
    if (!row)
        return 0;
    row++;
    const char *eol = strchr(row, '\n');
    size_t len = eol ? (size_t)(eol - row) : strlen(row);
    if (len >= size)
        return 0;
    memcpy(buf, row, len);
    buf[len] = 0;
    return cells_of(buf, cells);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

int main(void)
{
    char *readme = read_all("README.md");
    CHECK(readme && strstr(readme, "<!-- lifecycle-table"), "the README has the life-cycle table");
    size_t n;
    const struct lifecycle_action *rows = lifecycle_rows(&n);
    int rows_ok = 1, readme_rows = 0;
    for (size_t i = 0; readme && i < n; i++) {
        const struct lifecycle_action *r = &rows[i];
        char buf[1024], *c[MAX_CELLS], handler[64], state[64];
        int k = readme_row(readme, r->action, buf, sizeof buf, c);
        snprintf(handler, sizeof handler, "`%s`", r->handler);
        snprintf(state, sizeof state, "`%s`", r->status_after ? r->status_after : r->target_field);
        int ok = k >= 7 && !strcmp(c[1], r->ack ? "yes" : "no") && !strcmp(c[2], handler) && strstr(c[3], state) &&
                 !strcmp(c[4], lifecycle_refusal_text(r->refusal)) &&
                 !strncmp(c[5], r->rerun_when_final ? "yes" : "no", r->rerun_when_final ? 3 : 2) &&
                 (!r->once || strstr(c[5], "once")) &&
                 !strcmp(c[6], r->on_error == ON_ERROR_RETRY ? "retried" : "`rules.on_timeout`");
        if (!ok)
            printf("# README row for %s does not match lifecycle.c (%d cells)\n", r->action, k);
        rows_ok &= ok;
        readme_rows += k > 0;
    }
    CHECK(rows_ok && readme_rows == (int)n, "every row of the life-cycle table is in the README with the same columns");
    int count = 0;
    for (const char *p = readme ? strstr(readme, "<!-- lifecycle-table") : NULL; p && (p = strstr(p, "\n| `")); p++) {
        const char *end = strstr(readme, "<!-- /lifecycle-table");
        if (end && p > end)
            break;
        count++;
    }
    CHECK(count == (int)n, "the README's life-cycle table has no row the code does not have");
    CHECK(lifecycle_find("reinstate") && lifecycle_find("Reinstate")->refusal == REFUSAL_CANCEL &&
              lifecycle_find("Reinstate")->rerun_when_final,
          "a Reinstate runs its handler when Microsoft already decided, and a refusal cancels");
    CHECK(!lifecycle_find("Transfer"), "an action without a row (Transfer) is not acted on");
    json_t *a = json_pack("{s:s}", "operationRequestSource", "Partner");
    json_t *b = json_pack("{s:s}", "operationRequestedSource", "Partner");
    CHECK(!strcmp(lifecycle_request_source(a), "Partner") && !strcmp(lifecycle_request_source(b), "Partner"),
          "the request source is read under both of Microsoft's spellings");
    json_decref(a);
    json_decref(b);
    free(readme);
    return CHECK_DONE();
}
