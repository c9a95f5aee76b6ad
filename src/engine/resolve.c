/* Which rule file decides which offer, made visible: whether an offer has a file of its own
 * (the rest fall back to the default rule), and the file-name checks of `rules check`. */
#include "engine/engine_internal.h"

#include "core/err.h"
#include "core/store.h"

#include <jansson.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int engine_offer_has_rule(struct engine *e, const char *offer_id)
{
    int found = 0;
    pthread_mutex_lock(&e->mu); /* the current generation cannot be swapped or freed meanwhile */
    const struct generation *g = e->current;
    for (size_t i = 0; g && offer_id && i + 1 < g->nfiles; i++)
        found |= !strcmp(g->files[i].offer_id, offer_id);
    pthread_mutex_unlock(&e->mu);
    return found;
}

int engine_offer_name_hint(const char *name, char *suggest, size_t size)
{
    /* Marketplace offer ids are lower case and usually use dashes; a file named with capitals
     * never matches the offerId Microsoft sends, one with underscores is a likely typo. */
    size_t n = strlen(name);
    int odd = 0;
    if (n + 1 > size)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char c = name[i];
        odd |= c == '_' || isupper((unsigned char)c);
        suggest[i] = c == '_' ? '-' : (char)tolower((unsigned char)c);
    }
    return odd;
}

static int seen_in(const char *const *list, const char *offer)
{
    for (size_t i = 0; list && list[i]; i++)
        if (!strcmp(list[i], offer))
            return 1;
    return 0;
}

static void name_warnings(const struct rule_file *files, size_t n, const char *const *seen, json_t *warnings)
{
    for (size_t i = 0; i + 1 < n; i++) {
        char suggest[160];
        const char *id = files[i].offer_id;
        if (seen_in(seen, id) || !engine_offer_name_hint(id, suggest, sizeof suggest))
            continue;
        json_array_append_new(warnings, json_sprintf("%s serves only an offer whose id is exactly '%s' (offer ids are "
                                                     "lower case and usually use dashes): if the offer id is %s, "
                                                     "rename it to %s.lua",
                                                     files[i].path, id, suggest, suggest));
    }
}

static void seen_warnings(const struct rule_file *files, size_t n, const char *const *seen, int unknown_default,
                          json_t *warnings)
{
    for (size_t i = 0; seen && seen[i]; i++) {
        int has = 0;
        for (size_t j = 0; j + 1 < n; j++)
            has |= !strcmp(files[j].offer_id, seen[i]);
        if (!has)
            json_array_append_new(warnings,
                                  json_sprintf("offer '%s' has subscriptions in the store but no rule file %s.lua: %s",
                                               seen[i], seen[i],
                                               unknown_default ? "the default rule decides it"
                                                               : "its new purchases are held pending"));
    }
}

int engine_resolution(const char *dir, const char *const *seen, int unknown_default, struct json_t **out)
{
    *out = NULL;
    struct rule_file *files = NULL;
    size_t n = 0;
    int rc = engine_read_dir(dir, &files, &n, NULL, NULL);
    if (rc < 0)
        return rc;
    json_t *offers = json_array(), *warnings = json_array();
    for (size_t i = 0; i + 1 < n; i++)
        json_array_append_new(offers, json_pack("{s:s, s:s, s:s}", "offer", files[i].offer_id, "file", files[i].path,
                                                "sha256", files[i].sha256));
    const struct rule_file *dflt = &files[n - 1];
    json_array_append_new(offers, json_pack("{s:s, s:s, s:s, s:s}", "offer", "*", "file", dflt->path, "sha256",
                                            dflt->sha256, "decides",
                                            unknown_default ? "every other offer (rules.unknown_offers = default)"
                                                            : "every other offer's changes; their provision is held "
                                                              "pending (rules.unknown_offers = pending)"));
    name_warnings(files, n, seen, warnings);
    seen_warnings(files, n, seen, unknown_default, warnings);
    for (size_t i = 0; i < n; i++) {
        free(files[i].offer_id);
        free(files[i].path);
        free(files[i].source);
    }
    free(files);
    *out = json_pack("{s:s, s:o, s:o}", "dir", dir, "offers", offers, "warnings", warnings);
    return *out ? 0 : SAASD_ENOMEM;
}

struct seen_list {
    char **v;
    size_t n, cap;
};

static int collect_offer(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct seen_list *l = arg;
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    const char *offer = json_string_value(json_object_get(rec, "offerId"));
    if (offer && !seen_in((const char *const *)l->v, offer) && l->n + 1 < 4096) {
        if (l->n + 2 > l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 16;
            char **v = realloc(l->v, cap * sizeof *v);
            if (!v) {
                json_decref(rec);
                return 1;
            }
            l->v = v;
            l->cap = cap;
        }
        l->v[l->n] = strdup(offer);
        l->v[l->n + 1] = NULL;
        l->n += l->v[l->n] != NULL;
    }
    json_decref(rec);
    return 0;
}

int engine_offers_in_store(struct store *s, char ***out)
{
    struct seen_list l = {0};
    int rc = store_scan(s, STORE_SUBSCRIPTIONS, NULL, 0, collect_offer, &l);
    if (rc < 0 || !l.v) {
        engine_offers_free(l.v);
        *out = calloc(1, sizeof **out);
        return rc < 0 ? rc : *out ? 0 : SAASD_ENOMEM;
    }
    *out = l.v;
    return 0;
}

void engine_offers_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}
