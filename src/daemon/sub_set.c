/* Set of subscription ids (see sub_set.h). */
#include "daemon/sub_set.h"

#include "core/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 256 /* a pass usually passes over a few dozen subscriptions */

struct slot {
    uint32_t epoch; /* the slot holds an id of this set only when it equals the set's epoch */
    uint32_t hash;
    size_t at;      /* the id's offset in names */
};

struct sub_set {
    struct slot *slots;
    size_t nslots; /* a power of two */
    size_t count;
    uint32_t epoch;
    char *names;   /* the ids, '\0'-terminated one after another (reset by a clear) */
    size_t names_len, names_cap;
};

static uint32_t hash_of(const char *id, size_t *len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    const char *p = id;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    *len = (size_t)(p - id);
    return h;
}

/* The slot holding id, or the free slot where it would go. */
static struct slot *find(const struct sub_set *s, const char *id, uint32_t h)
{
    size_t mask = s->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct slot *sl = &s->slots[i];
        if (sl->epoch != s->epoch || (sl->hash == h && !strcmp(s->names + sl->at, id)))
            return sl;
    }
}

int sub_set_new(struct sub_set **out)
{
    struct sub_set *s = calloc(1, sizeof *s);
    struct slot *slots = calloc(INITIAL_SLOTS, sizeof *slots);
    if (!s || !slots) {
        free(s);
        free(slots);
        return SAASD_ENOMEM;
    }
    s->slots = slots;
    s->nslots = INITIAL_SLOTS;
    s->epoch = 1; /* calloc'd slots (epoch 0) are free */
    *out = s;
    return 0;
}

void sub_set_free(struct sub_set *s)
{
    if (s) {
        free(s->slots);
        free(s->names);
    }
    free(s);
}

/* Twice the slots, the current ids moved over (kept at most half full: short probe runs). */
static int grow(struct sub_set *s)
{
    struct sub_set bigger = {.nslots = s->nslots * 2, .epoch = 1, .names = s->names};
    bigger.slots = calloc(bigger.nslots, sizeof *bigger.slots);
    if (!bigger.slots)
        return SAASD_ENOMEM;
    for (size_t i = 0; i < s->nslots; i++) {
        const struct slot *old = &s->slots[i];
        if (old->epoch != s->epoch)
            continue;
        struct slot *sl = find(&bigger, s->names + old->at, old->hash);
        *sl = *old;
        sl->epoch = bigger.epoch;
    }
    free(s->slots);
    s->slots = bigger.slots;
    s->nslots = bigger.nslots;
    s->epoch = bigger.epoch;
    return 0;
}

int sub_set_add(struct sub_set *s, const char *id)
{
    size_t len;
    uint32_t h = hash_of(id, &len);
    struct slot *sl = find(s, id, h);
    if (sl->epoch == s->epoch)
        return 0;
    if (s->names_len + len + 1 > s->names_cap) {
        size_t cap = s->names_cap ? s->names_cap * 2 : 4096;
        char *names = realloc(s->names, cap);
        if (!names)
            return SAASD_ENOMEM;
        s->names = names;
        s->names_cap = cap;
    }
    if ((s->count + 1) * 2 > s->nslots) {
        int rc = grow(s);
        if (rc)
            return rc;
        sl = find(s, id, h);
    }
    sl->epoch = s->epoch;
    sl->hash = h;
    sl->at = s->names_len;
    memcpy(s->names + s->names_len, id, len + 1);
    s->names_len += len + 1;
    s->count++;
    return 0;
}

int sub_set_has(const struct sub_set *s, const char *id)
{
    size_t len;
    uint32_t h = hash_of(id, &len);
    return find(s, id, h)->epoch == s->epoch;
}

void sub_set_clear(struct sub_set *s)
{
    s->count = 0;
    s->names_len = 0;
    if (++s->epoch == 0) { /* wrapped: slots of 2^32 clears ago would look current */
        memset(s->slots, 0, s->nslots * sizeof *s->slots);
        s->epoch = 1;
    }
}

size_t sub_set_count(const struct sub_set *s) { return s->count; }
