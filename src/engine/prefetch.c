/* Key templates of the ctx.store reads of one worker state (see prefetch.h). */
#include "engine/prefetch.h"

#include <string.h>

/* Where sub_id occurs in key, or (size_t)-1. */
static size_t find_id(const char *sub_id, const char *key, size_t klen)
{
    size_t idlen = sub_id ? strlen(sub_id) : 0;
    if (!idlen || idlen > klen)
        return (size_t)-1;
    for (size_t i = 0; i + idlen <= klen; i++)
        if (memcmp(key + i, sub_id, idlen) == 0)
            return i;
    return (size_t)-1;
}

static int same(const struct prefetch_tpl *t, const char *text, size_t len, size_t cut)
{
    return t->len == len && t->cut == cut && memcmp(t->text, text, len) == 0;
}

void prefetch_learn(struct prefetch *p, const char *sub_id, const char *key, size_t klen)
{
    if (!sub_id || p->n == PREFETCH_MAX || klen == 0 || klen >= PREFETCH_KEY_MAX)
        return; /* without the call's id a key made of it would be taken for a constant */
    char text[PREFETCH_KEY_MAX];
    size_t cut = find_id(sub_id, key, klen), len = klen;
    memcpy(text, key, klen);
    if (cut != (size_t)-1) { /* keep what is around the id */
        size_t idlen = strlen(sub_id);
        memmove(text + cut, key + cut + idlen, klen - cut - idlen);
        len = klen - idlen;
    }
    for (size_t i = 0; i < p->n; i++)
        if (same(&p->t[i], text, len, cut))
            return;
    struct prefetch_tpl *t = &p->t[p->n++];
    memcpy(t->text, text, len);
    t->len = len;
    t->cut = cut;
    t->idle = 0;
}

size_t prefetch_key(const struct prefetch *p, size_t i, const char *sub_id, char *buf)
{
    const struct prefetch_tpl *t = &p->t[i];
    if (t->cut == (size_t)-1) {
        memcpy(buf, t->text, t->len);
        return t->len;
    }
    size_t idlen = sub_id ? strlen(sub_id) : 0;
    if (!idlen || t->len + idlen >= PREFETCH_KEY_MAX)
        return 0;
    memcpy(buf, t->text, t->cut);
    memcpy(buf + t->cut, sub_id, idlen);
    memcpy(buf + t->cut + idlen, t->text + t->cut, t->len - t->cut);
    return t->len + idlen;
}

void prefetch_settle(struct prefetch *p, const size_t *sent, size_t nsent, unsigned used)
{
    for (size_t k = 0; k < nsent; k++)
        p->t[sent[k]].idle = used & (1u << k) ? 0 : p->t[sent[k]].idle + 1;
    size_t keep = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->t[i].idle < PREFETCH_IDLE_MAX)
            p->t[keep++] = p->t[i];
    p->n = keep;
}
