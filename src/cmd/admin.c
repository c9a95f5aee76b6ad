/* saasd admin: the operator's CLI over the daemon's loopback admin API (address and key from
 * the config). Prints the API's JSON answer; exit status 0 on 2xx, 1 otherwise. */
#include "cmd/args.h"
#include "cmd/cmd.h"

#include "core/config.h"
#include "core/err.h"
#include "core/http_client.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What JSON body a verb sends, made from its arguments (none when an optional argument is left out). */
enum body { BODY_NONE, BODY_TEXT, BODY_INTEGER, BODY_USAGE };

struct verb {
    const char *name;
    int nargs;        /* arguments after the verb; -n: up to n, all optional */
    const char *method;
    const char *path; /* "{}" stands for the next argument */
    enum body body;
    const char *key;  /* BODY_TEXT, BODY_INTEGER: {key: the last argument} */
    const char *usage;
};

static json_t *text_body(const char *key, const char **args, int nargs)
{
    return json_pack("{s:s}", key, args[nargs - 1]);
}

static json_t *integer_body(const char *key, const char **args, int nargs)
{
    return json_pack("{s:I}", key, (json_int_t)strtoll(args[nargs - 1], NULL, 10));
}

/* usage SUB DIMENSION QUANTITY */
static json_t *usage_body(const char *key, const char **args, int nargs)
{
    return json_pack("{s:s, s:s, s:f}", "subscriptionId", args[1], "dimension", args[2], "quantity",
                     strtod(args[nargs - 1], NULL));
}

/* Per body: how it is built from the arguments (args[0] is the verb), and whether the last
 * argument must be a number. */
static const struct {
    json_t *(*build)(const char *key, const char **args, int nargs);
    int numeric;
} bodies[] = {
    [BODY_NONE] = {NULL, 0},
    [BODY_TEXT] = {text_body, 0},
    [BODY_INTEGER] = {integer_body, 1},
    [BODY_USAGE] = {usage_body, 1},
};

static const struct verb verbs[] = {
    {"subscriptions", -2, "GET", "/admin/subscriptions", BODY_NONE, NULL,
     "[offer=OFFER] [status=STATUS]: list local subscriptions (fetched page by page)"},
    {"show", 1, "GET", "/admin/subscriptions/{}", BODY_NONE, NULL, "SUB: local record and Microsoft's view"},
    {"history", 1, "GET", "/admin/subscriptions/{}/history", BODY_NONE, NULL, "SUB: audit trail with rule hashes"},
    {"activate", 1, "POST", "/admin/subscriptions/{}/activate", BODY_NONE, NULL,
     "SUB: activate a pending subscription"},
    {"change-plan", 2, "POST", "/admin/subscriptions/{}/change-plan", BODY_TEXT, "planId", "SUB PLAN"},
    {"change-quantity", 2, "POST", "/admin/subscriptions/{}/change-quantity", BODY_INTEGER, "quantity", "SUB SEATS"},
    {"cancel", 1, "POST", "/admin/subscriptions/{}/cancel", BODY_NONE, NULL, "SUB: cancel at Microsoft"},
    {"timers", 0, "GET", "/admin/timers", BODY_NONE, NULL,
     "[--sub ID] [--offer ID] [--limit N] [--cursor C]: rule timers in due order (one page: next_cursor)"},
    {"timer-cancel", 2, "POST", "/admin/timers/{}/{}/cancel", BODY_NONE, NULL,
     "SUB NAME: cancel a rule timer (it never fires; the audit trail records it)"},
    {"outbox", 0, "GET", "/admin/outbox", BODY_NONE, NULL, "events waiting for a retry"},
    {"retry", 1, "POST", "/admin/outbox/{}/retry", BODY_NONE, NULL, "SEQ: retry an outbox entry now"},
    {"abandon", 1, "POST", "/admin/outbox/{}/abandon", BODY_NONE, NULL, "SEQ: give up on an outbox entry"},
    {"sinks", 0, "GET", "/admin/sinks", BODY_NONE, NULL,
     "event delivery per sink: delivered, pending, failing since, last error"},
    {"events", 0, "GET", "/admin/events", BODY_NONE, NULL, "stored events, oldest first"},
    {"rules", 0, "GET", "/admin/rules", BODY_NONE, NULL, "active rule generation and file hashes"},
    {"reload", 0, "POST", "/admin/rules/reload", BODY_NONE, NULL, "reload the rules"},
    {"promote", 0, "POST", "/admin/rules/promote", BODY_NONE, NULL,
     "make the shadow rules (rules.shadow_dir) the live rules"},
    {"reconcile", 0, "POST", "/admin/reconcile", BODY_NONE, NULL, "run one reconciliation pass now"},
    {"credential-check", 0, "POST", "/admin/credential/check", BODY_NONE, NULL,
     "fetch an Entra ID token now with the credential in force (after a reload: the new one)"},
    {"usage", 3, "POST", "/admin/usage", BODY_USAGE, NULL, "SUB DIMENSION QUANTITY: record metered usage now"},
    {"usage-list", 0, "GET", "/admin/usage", BODY_NONE, NULL, "metered usage per hour and whether it was sent"},
    {"usage-flush", 0, "POST", "/admin/usage/flush", BODY_NONE, NULL, "send the hours that are due now"},
    {"usage-reconcile", -1, "POST", "/admin/usage/reconcile", BODY_INTEGER, "days",
     "[DAYS]: compare the usage sent in the last DAYS (1..7, default 2) with Microsoft's record "
     "(quantities, and rows it does not bill: reconStatus)"},
    {"usage-recon-runs", 0, "GET", "/admin/usage/reconcile/runs", BODY_NONE, NULL,
     "the stored usage reconciliation runs (the last 30), newest first, without their findings"},
    {"usage-recon-run", 1, "GET", "/admin/usage/reconcile/runs/{}", BODY_NONE, NULL,
     "ID: one stored usage reconciliation run with its findings"},
    {"store-get", 2, "GET", "/admin/offers/{}/store/{}", BODY_NONE, NULL, "OFFER KEY: read the offer's ctx.store"},
    {"store-put", 3, "PUT", "/admin/offers/{}/store/{}", BODY_TEXT, "value",
     "OFFER KEY VALUE: write the offer's ctx.store"},
};

/* `subscriptions`: follow next_cursor page by page and print one JSON document
 * {"subscriptions":[...]} as the pages arrive (one page of 1000 at a time in memory), so a
 * million subscriptions never sit in memory at once on either side. filters: "offer=X" /
 * "status=Y" arguments. A page that fails or arrives cut short (the daemon truncates a page it
 * cannot finish) stops the listing with exit status 1 and leaves the document unclosed, so
 * what was printed is never mistaken for a complete list. */
static int list_pages(struct http_client *http, const char *base, const char *auth, const char *const *filters,
                      int nfilters)
{
    char query[1024] = "";
    size_t q = 0;
    for (int i = 0; i < nfilters; i++) {
        const char *eq = strchr(filters[i], '=');
        char *val = NULL;
        if (!eq || (strncmp(filters[i], "offer=", 6) && strncmp(filters[i], "status=", 7)) ||
            http_url_escape(eq + 1, &val)) {
            fprintf(stderr, "saasd admin subscriptions: filters are offer=OFFER and status=STATUS\n");
            return 2;
        }
        q += (size_t)snprintf(query + q, sizeof query - q, "&%.*s=%s", (int)(eq - filters[i]), filters[i], val);
        q = q < sizeof query ? q : sizeof query - 1;
        free(val);
    }
    char *cursor = NULL;
    size_t printed = 0;
    int status = 0;
    printf("{\"subscriptions\":[");
    do {
        char url[6000], *esc = NULL;
        if (cursor && http_url_escape(cursor, &esc))
            break;
        snprintf(url, sizeof url, "%s?limit=1000%s%s%s", base, query, esc ? "&cursor=" : "", esc ? esc : "");
        free(esc);
        free(cursor);
        cursor = NULL;
        struct http_header h[] = {{"Authorization", auth}};
        struct http_request rq = {.method = "GET", .url = url, .headers = h, .nheaders = 1, .timeout_ms = 120000};
        struct http_response rs = {0};
        int rc = http_client_do(http, &rq, &rs);
        json_t *page = rc ? NULL : json_loadb(rs.body, rs.body_len, 0, NULL);
        if (rc || rs.status != 200 || !page) {
            fprintf(stderr, "saasd admin: listing failed at %s: %s\n", url, rc ? saasd_strerror(rc) : "bad answer");
            status = 1;
        }
        size_t i;
        json_t *sub;
        json_array_foreach(json_object_get(page, "subscriptions"), i, sub)
        {
            char *one = json_dumps(sub, JSON_COMPACT | JSON_SORT_KEYS);
            printf("%s\n  %s", printed++ ? "," : "", one ? one : "null");
            free(one);
        }
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        cursor = next ? strdup(next) : NULL;
        json_decref(page);
        http_response_free(&rs);
        fflush(stdout);
    } while (cursor && !status);
    free(cursor);
    if (!status)
        printf("\n]}\n");
    return status;
}

/* Options that become the query of the one verb that takes them (GET /admin/timers). */
#define QUERY_VERB "timers"
static const char *query_values[4];
static const struct {
    const char *opt, *param;
} query_opts[] = {{"--sub", "sub"}, {"--offer", "offer"}, {"--limit", "limit"}, {"--cursor", "cursor"}};

/* "?sub=...&limit=..." from the query options given (escaped), into q; SAASD_ENOMEM or 0. */
static int query_text(char *q, size_t size)
{
    size_t o = 0;
    q[0] = 0;
    for (size_t i = 0; i < sizeof query_opts / sizeof query_opts[0]; i++) {
        char *esc = NULL;
        if (!query_values[i])
            continue;
        if (http_url_escape(query_values[i], &esc))
            return SAASD_ENOMEM;
        o += (size_t)snprintf(q + o, size - o, "%c%s=%s", o ? '&' : '?', query_opts[i].param, esc);
        o = o < size ? o : size - 1;
        free(esc);
    }
    return 0;
}

static void help(FILE *f)
{
    fprintf(f, "usage: saasd admin [--config FILE] <verb> [args]\n"
               "Calls the running daemon's admin API (admin.listen, admin key from the config;\n"
               "default config " CMD_DEFAULT_CONFIG ").\n\nverbs:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  %-16s %s\n", verbs[i].name, verbs[i].usage);
}

/* A number where the verb's body wants one ("quantity", "days", usage's QUANTITY). */
static int numeric_ok(const struct verb *v, const char *last)
{
    if (!bodies[v->body].numeric)
        return 1;
    char *end;
    strtod(last, &end);
    return *last && !*end;
}

int cmd_admin(int argc, char **argv)
{
    const char *config = NULL, *args[CMD_MAX_ARGS];
    const struct cmd_opt opts[] = {{"--config", "-c", &config, NULL},
                                   {query_opts[0].opt, NULL, &query_values[0], NULL},
                                   {query_opts[1].opt, NULL, &query_values[1], NULL},
                                   {query_opts[2].opt, NULL, &query_values[2], NULL},
                                   {query_opts[3].opt, NULL, &query_values[3], NULL},
                                   {NULL}};
    const struct cmd_spec spec = {"saasd admin [--config FILE] <verb> [args]  (verbs: --help)", help, opts, 1, -1};
    int nargs, status;
    if (cmd_parse(&spec, argc, argv, args, &nargs, &status))
        return status;
    const struct verb *v = NULL;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(args[0], verbs[i].name))
            v = &verbs[i];
    if (!v)
        return cmd_usage_error(&spec, "unknown admin verb '%s'", args[0]);
    if (v->nargs >= 0 ? nargs - 1 != v->nargs : nargs - 1 > -v->nargs)
        return cmd_usage_error(&spec, "'%s' takes %s%d argument%s: %s", v->name, v->nargs < 0 ? "at most " : "",
                               abs(v->nargs), abs(v->nargs) == 1 ? "" : "s", v->usage);
    for (int i = 1; !strcmp(v->name, "subscriptions") && i < nargs; i++)
        if (strncmp(args[i], "offer=", 6) && strncmp(args[i], "status=", 7))
            return cmd_usage_error(&spec, "'%s': filters are offer=OFFER and status=STATUS", args[i]);
    for (size_t i = 0; strcmp(v->name, QUERY_VERB) && i < sizeof query_opts / sizeof query_opts[0]; i++)
        if (query_values[i])
            return cmd_usage_error(&spec, "'%s' is an option of '" QUERY_VERB "' only", query_opts[i].opt);
    if (nargs > 1 && !numeric_ok(v, args[nargs - 1]))
        return cmd_usage_error(&spec, "'%s': '%s' is not a number", v->name, args[nargs - 1]);
    struct saasd_config *cfg = NULL;
    if (cmd_load_config(config, &cfg) != 0)
        return 2;
    if (!cfg->admin_enabled || !cfg->admin_key) {
        if (!cfg->admin_enabled)
            fprintf(stderr, "saasd admin: the admin API is disabled in %s (admin.enabled = 0)\n", cfg->path);
        else
            fprintf(stderr, "saasd admin: no admin key: %s does not exist yet (the daemon creates it on its first "
                            "start)\n", cfg->admin_key_file ? cfg->admin_key_file : "admin.key_file");
        config_free(cfg);
        return 2;
    }
    char path[1024], url[3400], auth[600], query[2048];
    size_t o = 0;
    int next = 1;
    for (const char *p = v->path; *p && o + 1 < sizeof path; p++) {
        char *esc = NULL;
        if (p[0] == '{' && p[1] == '}' && next < nargs) {
            http_url_escape(args[next++], &esc); /* a timer name may hold any character */
            o += (size_t)snprintf(path + o, sizeof path - o, "%s", esc ? esc : "");
            free(esc);
            o = o < sizeof path ? o : sizeof path - 1;
            p++;
        } else {
            path[o++] = *p;
        }
    }
    path[o] = 0;
    query_text(query, sizeof query);
    snprintf(url, sizeof url, "http://%s:%d%s%s", cfg->admin_addr, cfg->admin_port, path, query);
    snprintf(auth, sizeof auth, "Bearer %s", cfg->admin_key);
    char *body = NULL;
    if (bodies[v->body].build && nargs > 1) {
        json_t *j = bodies[v->body].build(v->key, args, nargs);
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
    }
    if (!strcmp(v->name, "subscriptions")) {
        struct http_client *lh = NULL;
        int st = http_client_new(NULL, &lh) ? 1 : list_pages(lh, url, auth, args + 1, nargs - 1);
        http_client_free(lh);
        free(body);
        config_free(cfg);
        return st;
    }
    struct http_header h[] = {{"Authorization", auth}, {"Content-Type", "application/json"}};
    struct http_request rq = {.method = v->method, .url = url, .headers = h, .nheaders = 2, .body = body,
                              .body_len = body ? strlen(body) : 0, .timeout_ms = 120000};
    struct http_client *http = NULL;
    struct http_response rs = {0};
    int rc = http_client_new(NULL, &http);
    if (!rc)
        rc = http_client_do(http, &rq, &rs);
    status = 1;
    if (rc) {
        fprintf(stderr, "saasd admin: cannot reach the daemon at %s: %s\n", url, saasd_strerror(rc));
    } else {
        json_t *j = json_loadb(rs.body, rs.body_len, 0, NULL);
        char *pretty = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        printf("%s\n", pretty ? pretty : rs.body);
        free(pretty);
        json_decref(j);
        status = rs.status >= 200 && rs.status < 300 ? 0 : 1;
    }
    http_response_free(&rs);
    http_client_free(http);
    free(body);
    config_free(cfg);
    return status;
}
