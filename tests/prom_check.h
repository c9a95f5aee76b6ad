/* A checker of the Prometheus text exposition format (version 0.0.4) with the rules
 * `promtool check metrics` applies, for tests: Debian's promtool comes with the whole
 * Prometheus server (96 MB installed, a system user), too much for a test dependency.
 * Checks: valid metric and label names, quoted and escaped label values, numeric values; every
 * family has HELP and TYPE before its samples and appears in one block only; no duplicate
 * series; counters end in _total and non-counters do not; histogram samples are _bucket (with
 * le), _sum and _count. Each problem goes to problem(line_no, text). Returns the count. */
#ifndef SAASD_PROM_CHECK_H
#define SAASD_PROM_CHECK_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROM_MAX_FAMILIES 256
#define PROM_MAX_SERIES 4096

struct prom_family {
    char name[128];
    char type[16];
    int help, closed;
};

struct prom_state {
    struct prom_family fam[PROM_MAX_FAMILIES];
    int nfam;
    char *series[PROM_MAX_SERIES];
    int nseries;
    int current; /* family of the block being read, -1 none */
    int problems;
    char last_problem[512];
};

static void prom_note(struct prom_state *st, int line, const char *msg)
{
    snprintf(st->last_problem, sizeof st->last_problem, "line %d: %s", line, msg);
    printf("# metrics line %d: %s\n", line, msg);
    st->problems++;
}

#define prom_problem(st, line, fmt, arg)                                                                              \
    do {                                                                                                             \
        char prom_msg_[400];                                                                                         \
        snprintf(prom_msg_, sizeof prom_msg_, fmt, arg);                                                             \
        prom_note(st, line, prom_msg_);                                                                              \
    } while (0)

static int prom_name_ok(const char *s, size_t n, int colon)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || (colon && s[0] == ':')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || (colon && s[i] == ':')))
            return 0;
    return 1;
}

static int prom_family_of(struct prom_state *st, const char *name, int create)
{
    for (int i = 0; i < st->nfam; i++)
        if (!strcmp(st->fam[i].name, name))
            return i;
    if (!create || st->nfam == PROM_MAX_FAMILIES)
        return -1;
    snprintf(st->fam[st->nfam].name, sizeof st->fam[0].name, "%s", name);
    return st->nfam++;
}

static int prom_ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcmp(s + n - m, suffix);
}

/* The family a sample name belongs to (histogram suffixes stripped when the base is one). */
static int prom_sample_family(struct prom_state *st, const char *name, const char **suffix)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    *suffix = "";
    int f = prom_family_of(st, name, 0);
    if (f >= 0)
        return f;
    for (int i = 0; i < 3; i++)
        if (prom_ends(name, sfx[i])) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(strlen(name) - strlen(sfx[i])), name);
            f = prom_family_of(st, base, 0);
            if (f >= 0 && !strcmp(st->fam[f].type, "histogram")) {
                *suffix = sfx[i];
                return f;
            }
        }
    return -1;
}

static void prom_enter(struct prom_state *st, int f, int line)
{
    if (st->current == f)
        return;
    if (st->current >= 0)
        st->fam[st->current].closed = 1;
    if (st->fam[f].closed)
        prom_problem(st, line, "family %s appears in two separate blocks", st->fam[f].name);
    st->current = f;
}

static void prom_comment(struct prom_state *st, const char *l, int line)
{
    char kind[8], name[128];
    int off = 0;
    if (sscanf(l, "# %7s %127s %n", kind, name, &off) < 2 || (strcmp(kind, "HELP") && strcmp(kind, "TYPE")))
        return; /* a plain comment */
    if (!prom_name_ok(name, strlen(name), 1))
        prom_problem(st, line, "invalid metric name %s", name);
    int f = prom_family_of(st, name, 1);
    if (f < 0)
        return;
    prom_enter(st, f, line);
    if (!strcmp(kind, "HELP")) {
        if (st->fam[f].help++)
            prom_problem(st, line, "second HELP for %s", name);
        if (!l[off])
            prom_problem(st, line, "empty HELP for %s", name);
        return;
    }
    if (st->fam[f].type[0])
        prom_problem(st, line, "second TYPE for %s", name);
    snprintf(st->fam[f].type, sizeof st->fam[f].type, "%s", l + off);
    const char *t = st->fam[f].type;
    if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") && strcmp(t, "summary") &&
        strcmp(t, "untyped"))
        prom_problem(st, line, "unknown TYPE %s", t);
    if (!strcmp(t, "counter") && !prom_ends(name, "_total"))
        prom_problem(st, line, "counter %s should have a _total suffix", name);
    if (strcmp(t, "counter") && prom_ends(name, "_total"))
        prom_problem(st, line, "non-counter %s should not have a _total suffix", name);
}

/* Label set {a="x",b="y"}: names valid and distinct, values quoted with valid escapes.
 * *has_le set when an le label is present. Returns the position after '}' or NULL. */
static const char *prom_labels(struct prom_state *st, const char *p, int line, int *has_le)
{
    char seen[16][64];
    int n = 0;
    p++;
    while (*p && *p != '}') {
        const char *eq = strchr(p, '=');
        if (!eq || eq[1] != '"' || !prom_name_ok(p, (size_t)(eq - p), 0) || (size_t)(eq - p) >= 64) {
            prom_problem(st, line, "bad label near %.40s", p);
            return NULL;
        }
        char lname[64];
        snprintf(lname, sizeof lname, "%.*s", (int)(eq - p), p);
        for (int i = 0; i < n; i++)
            if (!strcmp(seen[i], lname))
                prom_problem(st, line, "label %s twice", lname);
        if (n < 16)
            snprintf(seen[n++], 64, "%s", lname);
        *has_le |= !strcmp(lname, "le");
        for (p = eq + 2; *p && *p != '"'; p++)
            if (*p == '\\' && !(p[1] == '\\' || p[1] == '"' || p[1] == 'n')) {
                prom_problem(st, line, "bad escape in label %s", lname);
                return NULL;
            } else if (*p == '\\') {
                p++;
            }
        if (*p != '"') {
            prom_problem(st, line, "unterminated label value %s", lname);
            return NULL;
        }
        p++;
        if (*p == ',')
            p++;
    }
    return *p == '}' ? p + 1 : NULL;
}

static void prom_sample(struct prom_state *st, const char *l, int line)
{
    size_t n = strcspn(l, "{ ");
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)n, l);
    if (!prom_name_ok(l, n, 1)) {
        prom_problem(st, line, "invalid sample name in %.60s", l);
        return;
    }
    const char *suffix, *p = l + n;
    int has_le = 0;
    int f = prom_sample_family(st, name, &suffix);
    if (f < 0) {
        prom_problem(st, line, "sample %s without HELP/TYPE of its family", name);
        return;
    }
    prom_enter(st, f, line);
    if (!st->fam[f].help || !st->fam[f].type[0])
        prom_problem(st, line, "family %s has no HELP or no TYPE before its samples", st->fam[f].name);
    if (*p == '{' && !(p = prom_labels(st, p, line, &has_le)))
        return;
    if (!strcmp(st->fam[f].type, "histogram") && !*suffix)
        prom_problem(st, line, "histogram sample %s is not _bucket, _sum or _count", name);
    if (!strcmp(suffix, "_bucket") && !has_le)
        prom_problem(st, line, "histogram bucket %s without le", name);
    if (*p != ' ') {
        prom_problem(st, line, "no value in %.60s", l);
        return;
    }
    char *end;
    const char *v = p + 1;
    if (strcmp(v, "+Inf") && strcmp(v, "-Inf") && strcmp(v, "NaN") && (strtod(v, &end), *end && *end != ' '))
        prom_problem(st, line, "value is not a number: %.40s", v);
    size_t key = (size_t)(p - l);
    for (int i = 0; i < st->nseries; i++)
        if (strlen(st->series[i]) == key && !strncmp(st->series[i], l, key))
            prom_problem(st, line, "duplicate series %.80s", st->series[i]);
    if (st->nseries < PROM_MAX_SERIES)
        st->series[st->nseries++] = strndup(l, key);
}

static int prom_check(const char *text, struct prom_state *st)
{
    memset(st, 0, sizeof *st);
    st->current = -1;
    char *copy = strdup(text), *save = NULL;
    int line = 0;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        if (l[0] == '#')
            prom_comment(st, l, line);
        else if (l[0])
            prom_sample(st, l, line);
    }
    for (int i = 0; i < st->nfam; i++)
        if (!st->fam[i].help || !st->fam[i].type[0])
            prom_problem(st, line, "family %s lacks HELP or TYPE", st->fam[i].name);
    for (int i = 0; i < st->nseries; i++)
        free(st->series[i]);
    free(copy);
    return st->problems;
}

#endif
